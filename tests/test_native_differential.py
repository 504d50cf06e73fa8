"""Issue 15: the compiled core and the Python engine give the same results, field for field.

Every capture under tests/fixtures and ../shared/corpus, with the default limits and with
tiny ones (eviction, caps, budget, history), sharded, and rewritten and mutated copies of
them (cut records, flipped bytes, one-sided, snaplen-cut, every frame twice). The lab's
captures get the same check in tests/lab/test_lab_native.py.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from helpers_pcap import FIXTURE_CAPTURES
from native_diff import (
    differences,
    need_core,
    payloads_kept,
    pcap_records,
    results,
    rewrites,
)

from analyzer import native
from analyzer.engine import EngineConfig, EngineResult, make_engine
from analyzer.flows.config import FlowConfig

SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CAPTURES = FIXTURE_CAPTURES + sorted(
    p for p in SHARED_CORPUS.rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap", ".gz"))
TINY = FlowConfig(max_flows=3, reassembly_budget=4096, reassembly_floor=512, reassembly_cap=2048,
                  max_segments=3, max_pending_segments=2, max_udp_datagrams=1, max_history=6, ip_id_samples=2,
                  max_rsts=1, max_icmp_errors=1, max_processes=1, tcp_idle_timeout=2.0, udp_idle_timeout=1.0,
                  icmp_idle_timeout=1.0, tcp_attempt_timeout=0.5, tcp_close_linger=0.2,
                  tcp_partial_close_timeout=0.1, max_time_jump=0.5)


def _id(p: Path) -> str:
    return p.name


@pytest.fixture(autouse=True)
def _core() -> None:
    need_core()


@pytest.mark.parametrize("path", CAPTURES, ids=_id)
def test_both_engines_agree_on_every_capture(path: Path) -> None:
    assert differences(*results([path])) == []


@pytest.mark.parametrize("path", CAPTURES, ids=_id)
def test_both_engines_agree_with_tiny_limits(path: Path) -> None:
    assert differences(*results([path], TINY)) == []


@pytest.mark.parametrize("path", CAPTURES[::3], ids=_id)
def test_both_engines_agree_per_shard(path: Path) -> None:
    for k in range(3):
        assert differences(*results([path], shard=(k, 3))) == [], f"shard {k} of 3"


FUZZ_FINDS = sorted((Path(__file__).parent / "fixtures" / "fuzz" / "native").glob("*"))


@pytest.mark.parametrize("path", FUZZ_FINDS, ids=_id)
def test_both_engines_agree_on_the_fuzzers_finds(path: Path) -> None:
    """Inputs on which the engines once differed (found by the fuzzers), kept as regressions."""
    assert differences(*results([path])) == []
    assert differences(*results([path], TINY)) == []


def test_several_files_make_one_table() -> None:
    paths = [p for p in CAPTURES if p.suffix == ".pcap"][:6]
    assert differences(*results(paths)) == []


PCAPS = [p for p in CAPTURES if p.suffix == ".pcap" and pcap_records(p.read_bytes()) is not None]


@pytest.mark.parametrize("path", PCAPS, ids=_id)
def test_both_engines_agree_on_mutated_copies(path: Path, tmp_path: Path) -> None:
    """Bytes flipped inside frames, frames cut or dropped, the file cut mid-record: the weirds must match too."""
    parsed = pcap_records(path.read_bytes())
    assert parsed is not None
    head, recs = parsed
    rng = random.Random(path.name)
    for round_ in range(4):
        out = [head]
        for hdr, frame in recs:
            r = rng.random()
            if r < 0.05:
                continue  # dropped
            buf = bytearray(frame)
            if buf and r < 0.35:
                for _ in range(rng.randint(1, 3)):
                    buf[rng.randrange(len(buf))] = rng.randrange(256)
            if buf and r > 0.9:
                cut = rng.randrange(len(buf) + 1)
                buf = buf[:cut]
                hdr = hdr[:8] + struct.pack("<I", cut) + hdr[12:]
            out.append(hdr + bytes(buf))
        blob = b"".join(out)
        if round_ == 3:
            blob = blob[: rng.randrange(24, len(blob) + 1)]  # the file cut mid-record
        mutated = tmp_path / f"m{round_}.pcap"
        mutated.write_bytes(blob)
        assert differences(*results([mutated])) == [], f"round {round_}"
        assert differences(*results([mutated], TINY)) == [], f"round {round_}, tiny limits"


@pytest.mark.parametrize("path", PCAPS[::2], ids=_id)
def test_both_engines_agree_on_rewritten_copies(path: Path, tmp_path: Path) -> None:
    """As a one-way tap, a 96-byte snaplen, a span port doubling every frame, a VLAN trunk and pcapng would record it."""
    for name, blob in rewrites(path.read_bytes()).items():
        p = tmp_path / f"{name}.pcap"
        p.write_bytes(blob)
        assert differences(*results([p])) == [], name


def test_the_default_engine_is_the_core_when_built() -> None:
    assert type(make_engine()).__name__ == "NativeEngine"
    assert type(make_engine(EngineConfig(engine="python"))).__name__ == "Engine"
    assert native.resolve_engine("python") == "python"


def _fed_in_batches(path: Path, engine: str, seed: int) -> EngineResult:
    """A capture's frames handed over as a live capture hands them: in batches (`feed_batch`)."""
    from analyzer.capture.reader import open_capture

    eng = make_engine(EngineConfig(engine=engine))
    frames = list(open_capture(path))
    rng = random.Random(seed)
    with payloads_kept():
        i = 0
        while i < len(frames):
            n = rng.choice([1, 2, 7, 64, 1000])
            eng.feed_batch(frames[i:i + n])
            i += n
        if frames:
            eng.advance(frames[-1].ts + 0.5)
        return eng.finish()


@pytest.mark.parametrize("path", CAPTURES[::2], ids=_id)
def test_both_engines_agree_on_frames_fed_in_batches(path: Path) -> None:
    py, nat = _fed_in_batches(path, "python", 1), _fed_in_batches(path, "native", 1)
    assert differences(py, nat) == []
    assert py.flows or not nat.flows
