"""The fuzzing habit in CI: every target runs a fixed, seeded batch of mutants (under a minute in all),
and every crash ever kept under tests/fixtures/fuzz/crashes replays as a regression test.

A crash fails the test and names the input file it saved. The long run is `make fuzz` (bench/fuzz.py).
"""

from __future__ import annotations

import io
import warnings

import pytest

from analyzer.protocols import x509
from tests.fuzz.mutate import mutate, run
from tests.fuzz.targets import CRASH_DIR, TARGETS, crash_fixtures, fuzz_reader, seeds

# Inputs per target: each batch is one to four seconds on the 2-core CI machine (whole files through
# the engine are slow, parsers fast). The seeds all run first, then mutants.
BUDGET = {
    "tls": 30_000, "quic": 15_000, "dns": 60_000, "http": 60_000, "ntp": 80_000, "x509": 30_000,
    "starttls": 40_000, "neighbors": 80_000, "decode": 100_000, "reader": 30_000, "engine": 3_000,
    "analyze": 200, "core": 300,
}


def test_every_target_has_a_budget_and_seeds_from_real_captures() -> None:
    assert set(BUDGET) == set(TARGETS)
    found = seeds()
    # Real payloads, not just the hand-made fallbacks: each parser got something from the corpus.
    for name in ("tls", "quic", "dns", "http", "ntp", "x509", "neighbors", "decode", "reader", "engine", "core"):
        assert len(found[name]) >= 3, name


@pytest.mark.parametrize("name", list(TARGETS))
def test_fuzz_smoke(name: str, tmp_path) -> None:
    stats = run(name, TARGETS[name], seeds()[name], inputs=BUDGET[name], rng_seed=17, crash_dir=tmp_path)
    assert stats.inputs == BUDGET[name]
    assert not stats.crashes, "\n".join(
        f"{c.error}\n  input kept at {c.path} (move it to {CRASH_DIR / name}/ as a regression fixture)"
        for c in stats.crashes
    )


@pytest.mark.parametrize(
    ("name", "path"), crash_fixtures(), ids=[f"{n}-{p.name[:10]}" for n, p in crash_fixtures()]
)
def test_kept_crash_replays_cleanly(name: str, path) -> None:
    # Through the same loop as the fuzzer: an exception or an escaping warning fails it.
    stats = run(name, TARGETS[name], [path.read_bytes()], inputs=1, save=False)
    assert not stats.crashes, stats.crashes[0].error


def test_crashes_are_kept(tmp_path) -> None:
    """The loop itself: a target that crashes on some mutant has it saved, once per distinct fault."""

    def brittle(data: bytes) -> None:
        if len(data) > 6:
            raise IndexError("boom")

    stats = run("tls", brittle, [b"abcd"], inputs=2_000, rng_seed=1, crash_dir=tmp_path)
    assert len(stats.crashes) == 1
    kept = stats.crashes[0].path
    assert kept is not None and kept.parent == tmp_path / "tls" and len(kept.read_bytes()) > 6


def test_escaping_warning_is_a_crash(tmp_path) -> None:
    def noisy(data: bytes) -> None:
        warnings.warn("to the console", DeprecationWarning, stacklevel=1)

    stats = run("tls", noisy, [b"x"], inputs=10, crash_dir=tmp_path)
    assert [c.error.split(" from ")[0] for c in stats.crashes] == ["DeprecationWarning"]


def test_mutator_is_deterministic_and_bounded() -> None:
    import random

    a = [mutate(b"hello world" * 10, [b"seed"], random.Random(5)) for _ in range(3)]
    b = [mutate(b"hello world" * 10, [b"seed"], random.Random(5)) for _ in range(3)]
    assert a == b and a[0] != b"hello world" * 10


def test_x509_late_warning_is_a_weird_not_console_output() -> None:
    """Fuzz find (x509 target): a certificate whose policies extension holds UTF-8 in a VisibleString
    made cryptography warn on stderr when its SANs were read; now it is a counted weird."""
    fixtures = [p for n, p in crash_fixtures("x509")]
    assert fixtures, "the fuzz-found certificate is kept under tests/fixtures/fuzz/crashes/x509"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cert = x509.parse_certificate.__wrapped__(fixtures[0].read_bytes())
    assert "x509_deprecated_encoding" in cert.weirds


def test_reader_target_reads_a_real_capture() -> None:
    """The reader target is not vacuous: a real capture goes through it without an error."""
    data = next(s for s in seeds()["reader"] if len(s) > 1000)
    from analyzer.capture.reader import open_capture

    with open_capture(io.BytesIO(data)) as r:
        assert sum(1 for _ in r) > 0
    fuzz_reader(data)
