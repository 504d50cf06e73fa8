"""`live --write` captures: 0600, atomic per rotated file, never through a symlink (issue 17, item 7)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.capture.reader import open_capture
from analyzer.errors import AnalyzerError
from analyzer.live.writer import PcapngWriter

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "mixed_session.pcap"


def mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def test_captures_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        w = PcapngWriter(tmp_path / "cap.pcapng", 1, 262144, "en0", max_bytes=8192)
        for raw in open_capture(SAMPLE):
            w.write(raw)
        w.close()
    finally:
        os.umask(old)
    assert len(w.paths) > 1
    assert [mode(p) for p in w.paths] == [0o600] * len(w.paths)


def test_a_file_gets_its_name_only_when_closed_or_rotated(tmp_path: Path) -> None:
    packets = list(open_capture(SAMPLE))
    w = PcapngWriter(tmp_path / "cap.pcapng", 1, 262144, "en0", max_bytes=8192)
    w.write(packets[0])
    w.flush()
    # Being written: only a hidden temporary file, 0600; no half file under the name.
    (part,) = list(tmp_path.iterdir())
    assert part.name.startswith(".cap.pcapng.") and part.name.endswith(".part") and mode(part) == 0o600
    for raw in packets[1:]:
        w.write(raw)
    rotated = [p for p in w.paths[:-1]]
    assert rotated and all(p.is_file() for p in rotated)  # the finished ones carry their names already
    assert not w.paths[-1].exists()
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in w.paths)
    assert [r.data for p in w.paths for r in open_capture(p)] == [r.data for r in packets]


def test_a_symlink_at_the_name_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    victim.chmod(0o644)
    for name in ("cap.pcapng", "cap.1.pcapng"):
        (tmp_path / name).symlink_to(victim)
    w = PcapngWriter(tmp_path / "cap.pcapng", 1, 262144, "en0", max_bytes=8192)
    for raw in open_capture(SAMPLE):
        w.write(raw)
    w.close()
    assert victim.read_bytes() == b"precious" and mode(victim) == 0o644
    for p in w.paths[:2]:
        assert not p.is_symlink() and mode(p) == 0o600 and len(list(open_capture(p))) > 0


def test_a_full_disk_is_an_analyzer_error(tmp_path: Path) -> None:
    w = PcapngWriter(tmp_path / "cap.pcapng", 1, 262144, "en0")
    assert w._fh is not None
    w._fh.close()
    w._fh = open("/dev/full", "wb", buffering=0)  # the disk fills while capturing
    with pytest.raises(AnalyzerError, match="No space left on device"):
        w.write(next(iter(open_capture(SAMPLE))))


def test_live_write_through_the_cli_replaces_a_symlink(tmp_path: Path) -> None:
    pytest.importorskip("pcapy", reason="pcapy-ng not installed (pip install 'apple-net-analyzer[live]')")
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link = tmp_path / "seen.pcapng"
    link.symlink_to(victim)
    proc = subprocess.run([sys.executable, "-m", "analyzer", "live", "--replay", str(SAMPLE), "--write", str(link),
                           "--format", "json", "-o", str(tmp_path / "report.json")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_bytes() == b"precious"
    assert not link.is_symlink() and mode(link) == 0o600 and len(list(open_capture(link))) > 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".part", ".tmp"))]
