"""A small std-lib mutation loop: seeds in, mutants through a target, crashes kept.

Mutations: bit flips, byte sets, inserts, deletes, block duplication, splices of two
seeds, and "interesting" integers written over a 1/2/4-byte field (length fields are
where parsers go wrong). Deterministic for a given random seed.
"""

from __future__ import annotations

import hashlib
import random
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz.targets import CRASH_DIR, EXPECTED

INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x3FFF, 0x4000, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
               0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
MAX_LEN = 1 << 16


def mutate(data: bytes, seeds: Sequence[bytes], rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(1 + int(rng.expovariate(0.7))):
        op = rng.randrange(8)
        n = len(buf)
        if op == 0 and n:
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[rng.randrange(n)] = rng.randrange(256)
        elif op == 2:
            i = rng.randrange(n + 1)
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and n:
            i = rng.randrange(n)
            del buf[i:i + rng.randint(1, min(64, n - i))]
        elif op == 4 and n:
            i = rng.randrange(n)
            j = min(n, i + rng.randint(1, 256))
            k = rng.randrange(n + 1)
            buf[k:k] = buf[i:j]
        elif op == 5:
            other = rng.choice(seeds)
            if other:
                i = rng.randrange(n + 1)
                j = rng.randrange(len(other) + 1)
                buf = buf[:i] + other[j:]
        elif op in (6, 7) and n:
            width = rng.choice((1, 2, 4))
            i = rng.randrange(max(1, n - width + 1))
            value = rng.choice(INTERESTING)
            value += rng.choice((-1, 0, 0, 1))
            value &= (1 << (8 * width)) - 1
            buf[i:i + width] = value.to_bytes(width, rng.choice(("big", "big", "little")))
    return bytes(buf[:MAX_LEN])


class UnexpectedWarning(Exception):
    """A warning escaped to the console while a target ran."""


@dataclass
class Crash:
    target: str
    data: bytes
    error: str
    path: Path | None = None


@dataclass
class Stats:
    target: str
    inputs: int = 0
    seconds: float = 0.0
    crashes: list[Crash] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0


def crash_signature(exc: BaseException) -> str:
    """Type and innermost frame: one kept input per distinct fault, not per mutant."""
    if isinstance(exc, UnexpectedWarning):
        return str(exc).split(": ", 1)[0]
    tb = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
    return f"{type(exc).__name__} at {where}"


def save_crash(target: str, data: bytes, directory: Path = CRASH_DIR) -> Path:
    d = directory / target
    d.mkdir(parents=True, exist_ok=True)
    path = d / hashlib.sha1(data, usedforsecurity=False).hexdigest()
    path.write_bytes(data)
    return path


def run(name: str, target: Callable[[bytes], None], seeds: Sequence[bytes], *, seconds: float | None = None,
        inputs: int | None = None, rng_seed: int = 0, save: bool = True,
        crash_dir: Path = CRASH_DIR, stop_on_crash: bool = False) -> Stats:
    """Run every seed once, then mutants until `inputs` have run or `seconds` have passed."""
    rng = random.Random(rng_seed)
    stats = Stats(name)
    seen: set[str] = set()
    start = time.monotonic()
    deadline = start + seconds if seconds is not None else None
    seeds = list(seeds) or [b""]
    # A warning would reach the console: the product says weirds, never noise. Recorded
    # (not raised, which code under a broad `except` would swallow), then a crash.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _loop(name, target, seeds, stats, seen, rng, inputs, deadline, save, crash_dir, stop_on_crash, caught)
    stats.seconds = time.monotonic() - start
    return stats


def _loop(name: str, target: Callable[[bytes], None], seeds: list[bytes], stats: Stats, seen: set[str],
          rng: random.Random, inputs: int | None, deadline: float | None, save: bool, crash_dir: Path,
          stop_on_crash: bool, caught: list[warnings.WarningMessage]) -> None:
    i = 0
    while True:
        if inputs is not None and stats.inputs >= inputs:
            break
        if deadline is not None and (stats.inputs & 15) == 0 and time.monotonic() >= deadline:
            break
        data = seeds[i] if i < len(seeds) else mutate(rng.choice(seeds), seeds, rng)
        i += 1
        stats.inputs += 1
        try:
            target(data)
            if caught:
                w = caught[0]
                caught.clear()
                raise UnexpectedWarning(f"{w.category.__name__} from {Path(w.filename).name}:{w.lineno}: {w.message}")
        except EXPECTED:
            pass
        except Exception as exc:  # noqa: BLE001 - any other exception is what we are looking for
            _record(stats, seen, name, data, exc, save, crash_dir)
            if stop_on_crash:
                break


def _record(stats: Stats, seen: set[str], name: str, data: bytes, exc: BaseException, save: bool,
            crash_dir: Path) -> None:
    sig = crash_signature(exc)
    if sig in seen:
        return
    seen.add(sig)
    crash = Crash(name, data, f"{sig}: {exc!r}"[:500])
    if save:
        crash.path = save_crash(name, data, crash_dir)
    stats.crashes.append(crash)
