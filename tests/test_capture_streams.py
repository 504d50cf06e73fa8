"""Captures read through a pipe, a FIFO, process substitution, `zcat |` and `-` (issue 17, item 1).

The reader used to open its input twice (a 64 KB peek to recognise the
format, then the real pass): on a pipe the second open started mid-stream and
`analyze` printed "No Apple traffic found ... 0 packets" with exit 0. Every
input is now read once through one stream; these tests give the real sample
capture (tcpdump in the lab) through each kind of stream and expect what the
file itself gives.
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from analyzer.capture.reader import RawPacket, Skipped, Undecided, open_capture
from analyzer.errors import CaptureError

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "after_fix.pcap"
CLI = f"{shlex.quote(sys.executable)} -m analyzer"


def sh(script: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """A bash command line (pipes, process substitution), the CLI spelt $CLI."""
    return subprocess.run(["bash", "-c", script], input=stdin, capture_output=True, timeout=120,
                          env={**os.environ, "CLI": CLI})


def captures(p: subprocess.CompletedProcess[bytes]) -> list[dict[str, Any]]:
    assert p.returncode == 0, p.stderr.decode()
    result: list[dict[str, Any]] = json.loads(p.stdout)["captures"]
    return result


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    """What the sample file itself gives: the reference for every stream."""
    (cap,) = captures(sh(f"$CLI analyze --format json {SAMPLE}"))
    assert cap["packets"] == 97 and not cap["truncated"]
    return cap


@pytest.fixture(scope="module")
def gz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gz") / "sample.pcap.gz"
    path.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    return path


def same(cap: dict[str, Any], expected: dict[str, Any]) -> None:
    for key in ("packets", "bytes", "truncated", "first_ts", "last_ts"):
        assert cap[key] == expected[key], key


@pytest.mark.parametrize("how", ["dash", "dev_stdin", "zcat_pipe", "process_substitution", "zcat_substitution"])
def test_analyze_reads_a_stream_whole(how: str, expected: dict[str, Any], gz: Path) -> None:
    script = {
        "dash": f"cat {SAMPLE} | $CLI analyze --format json -",
        "dev_stdin": f"cat {SAMPLE} | $CLI analyze --format json /dev/stdin",
        "zcat_pipe": f"zcat {gz} | $CLI analyze --format json -",
        "process_substitution": f"$CLI analyze --format json <(cat {SAMPLE})",
        "zcat_substitution": f"$CLI analyze --format json <(zcat {gz})",
    }[how]
    (cap,) = captures(sh(script))
    same(cap, expected)


def test_gzip_through_a_pipe(expected: dict[str, Any], gz: Path) -> None:
    """The gzip magic is peeked on the stream, never by reopening it."""
    (cap,) = captures(sh(f"cat {gz} | $CLI analyze --format json -"))
    same(cap, expected)


def test_table_names_stdin(expected: dict[str, Any]) -> None:
    p = sh(f"cat {SAMPLE} | $CLI analyze -")
    assert p.returncode == 0, p.stderr.decode()
    out = p.stdout.decode()
    assert "<stdin>: 97 packets" in out
    assert "No Apple traffic" not in out


def test_stdin_beside_a_file(expected: dict[str, Any]) -> None:
    caps = captures(sh(f"cat {SAMPLE} | $CLI analyze --format json {SAMPLE} -"))
    assert [c["packets"] for c in caps] == [97, 97]


def test_stdin_twice_is_a_usage_error() -> None:
    p = sh(f"cat {SAMPLE} | $CLI analyze - -")
    assert p.returncode == 2
    assert p.stderr.decode().strip().endswith("standard input (-) can be given only once")


def fifo_writer(fifo: Path, data: bytes) -> threading.Thread:
    def write() -> None:
        with open(fifo, "wb") as fh:  # blocks until the reader opens the FIFO
            fh.write(data)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    return t


def test_fifo_read_once(tmp_path: Path) -> None:
    fifo = tmp_path / "cap.fifo"
    os.mkfifo(fifo)
    writer = fifo_writer(fifo, SAMPLE.read_bytes())
    reader = open_capture(fifo)
    assert not reader.rereadable
    packets = list(reader)
    writer.join(5)
    assert len(packets) == 97 and reader.packets == 97 and not reader.truncated
    assert packets[0].ts == open_capture(SAMPLE).__iter__().__next__().ts
    with pytest.raises(CaptureError, match="read only once"):
        list(reader)


def test_fifo_through_the_cli(tmp_path: Path, expected: dict[str, Any]) -> None:
    fifo = tmp_path / "cap.fifo"
    os.mkfifo(fifo)
    p = subprocess.Popen(["bash", "-c", f"cat {SAMPLE} > {fifo}"])
    try:
        (cap,) = captures(sh(f"$CLI analyze --format json {fifo}"))
    finally:
        p.wait(10)
    same(cap, expected)


def test_regular_file_is_read_again() -> None:
    reader = open_capture(SAMPLE)
    assert reader.rereadable
    assert len(list(reader)) == len(list(reader)) == 97


def test_shard_pass_over_a_pipe() -> None:
    """The numpy shard pass (analyzer/capture/bulk.py) reads a non-seekable stream as it reads a file."""
    def shard_items(reader: Any) -> tuple[int, int]:
        mine = times = 0
        for item in reader.shard_pass(0, 2):
            if isinstance(item, Skipped):
                times += len(item.ts)
            else:
                assert isinstance(item, (RawPacket, Undecided))
                mine += 1
                times += 1
        return mine, times

    from_file = shard_items(open_capture(SAMPLE))
    rfd, wfd = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(wfd, SAMPLE.read_bytes()), os.close(wfd)), daemon=True)
    writer.start()
    with os.fdopen(rfd, "rb") as pipe:
        assert from_file == shard_items(open_capture(pipe)) and from_file[1] == 97
    writer.join(5)


def test_flows_workers_on_a_stream_fall_back_to_one_process(gz: Path) -> None:
    from_file = sh(f"$CLI flows --format jsonl -j 2 {SAMPLE}")
    p = sh(f"zcat {gz} | $CLI flows --format jsonl -j 2 -")
    assert p.returncode == 0, p.stderr.decode()
    assert b"is a stream, not a file: reading it in one process" in p.stderr
    assert p.stderr.count(b"\n") == 1
    flows = sorted(line for line in p.stdout.splitlines() if b'"event_type":"flow"' in line)
    assert flows and flows == sorted(line for line in from_file.stdout.splitlines()
                                     if b'"event_type":"flow"' in line)


def test_flows_reads_stdin(expected: dict[str, Any]) -> None:
    p = sh(f"cat {SAMPLE} | $CLI flows --format json -")
    assert p.returncode == 0, p.stderr.decode()
    (cap,) = json.loads(p.stdout)["captures"]
    assert cap["packets"] == 97 and cap["source"] == "<stdin>"
