"""A gzip bomb and gzip trailing garbage (issue 17, item 5).

1 MB of gzip holding 1 GiB of zero records cost over two minutes: each
16-byte record of nothing (no time, no length) became a packet. Runs of them
are now skipped with a byte comparison and counted as `pcap_empty_record`;
what is left is the inflating itself. Bytes after the last gzip member that
are no gzip member are `gzip_trailing_garbage`, not a truncated capture.
"""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzer.capture.reader import open_capture

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "after_fix.pcap"  # a real capture (tcpdump in the lab)
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
MIB = 1 << 20


def bomb(mib: int, head: bytes = PCAP_HEADER, tail: bytes = b"") -> bytes:
    """A pcap header, `mib` MiB of zeros (1 MiB gzip members, ~1 KB each: built at once), then `tail`."""
    zeros = gzip.compress(bytes(MIB), compresslevel=9, mtime=0)
    return gzip.compress(head, mtime=0) + zeros * mib + (gzip.compress(tail, mtime=0) if tail else b"")


@pytest.fixture(scope="module")
def big_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "bomb.pcap.gz"
    path.write_bytes(bomb(256))
    assert path.stat().st_size < 300_000  # 256 MiB of records in < 300 KB
    return path


def test_gzip_bomb_is_read_in_seconds(big_bomb: Path) -> None:
    reader = open_capture(big_bomb)
    start = time.perf_counter()
    packets = sum(1 for _ in reader)
    elapsed = time.perf_counter() - start
    assert packets == 0 and reader.packets == 0 and reader.bytes == 0
    assert reader.weird == {"pcap_empty_record": 256 * MIB // 16}
    assert not reader.truncated
    # Inflating 256 MiB takes ~1 s; one RawPacket per record took minutes.
    assert elapsed < 8, elapsed


def test_empty_records_between_real_ones(tmp_path: Path) -> None:
    """Zero runs of any length (also one not a multiple of a record, ending inside the next
    record's leading zero bytes) leave every real packet and its bytes as they were."""
    data = SAMPLE.read_bytes()
    header, records = data[:24], data[24:]
    # Split the real records and put zero runs of various lengths between them.
    parts, pos, n = [], 0, 0
    while pos < len(records):
        caplen = struct.unpack_from("<I", records, pos + 8)[0]
        parts.append(records[pos : pos + 16 + caplen])
        parts.append(bytes(16 * (n % 5)))
        pos += 16 + caplen
        n += 1
    path = tmp_path / "padded.pcap"
    path.write_bytes(header + b"".join(parts))
    plain, padded = open_capture(SAMPLE), open_capture(path)
    assert list(plain) == list(padded)
    assert (padded.packets, padded.bytes) == (plain.packets, plain.bytes) == (97, 20925)
    assert padded.weird == {"pcap_empty_record": sum(i % 5 for i in range(97))}
    # The numpy shard pass skips them alike.
    sharded = open_capture(path)
    assert sum(1 for _ in sharded.shard_pass(0, 2)) > 0
    assert (sharded.packets, sharded.bytes, sharded.weird) == (padded.packets, padded.bytes, padded.weird)


def test_cli_on_a_bomb_answers(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pcap.gz"
    path.write_bytes(bomb(64, tail=SAMPLE.read_bytes()[24:]))  # the sample's packets after the zeros
    p = subprocess.run([sys.executable, "-m", "analyzer", "analyze", "--format", "json", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    (cap,) = json.loads(p.stdout)["captures"]
    assert cap["packets"] == 97 and cap["weird"] == {"pcap_empty_record": 64 * MIB // 16}


@pytest.mark.parametrize("garbage", [b"garbage after the member", b"\x00\x01junk"])
def test_gzip_trailing_garbage_is_its_own_weird(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "trailing.pcap.gz"
    path.write_bytes(gzip.compress(SAMPLE.read_bytes(), mtime=0) + garbage)
    reader = open_capture(path)
    assert len(list(reader)) == 97
    assert reader.weird == {"gzip_trailing_garbage": 1}
    assert not reader.truncated


def test_cut_gzip_is_still_truncation(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(gzip.compress(SAMPLE.read_bytes(), mtime=0)[:-100])
    reader = open_capture(path)
    assert 0 < len(list(reader)) < 97
    assert reader.truncated and reader.weird["gzip_truncated"] == 1


@pytest.mark.parametrize("command", [("analyze",), ("flows", "--format", "jsonl"),
                                     ("flows", "--format", "jsonl", "-j", "2")])
def test_max_bytes_refuses_a_bomb_in_one_line(big_bomb: Path, command: tuple[str, ...]) -> None:
    start = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "analyzer", *command, "--max-bytes", "16M", str(big_bomb)],
                       capture_output=True, text=True, timeout=60)
    assert time.perf_counter() - start < 15
    assert p.returncode == 2
    assert p.stderr.strip() == (f"apple-net: error: {big_bomb}: more than {16 * MIB} bytes of capture data "
                                f"(from {p.stderr.split('(from ')[1].split(' ')[0]} bytes of file): "
                                "stopped by --max-bytes")
    assert "Traceback" not in p.stderr


def test_max_bytes_lets_a_smaller_capture_through() -> None:
    p = subprocess.run([sys.executable, "-m", "analyzer", "analyze", "--format", "json", "--max-bytes", "1M",
                        str(SAMPLE)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["captures"][0]["packets"] == 97


@pytest.mark.parametrize(("text", "size"), [("20G", 20 << 30), ("500M", 500 << 20), ("1.5K", 1536), ("64", 64),
                                            ("2GiB", 2 << 30)])
def test_max_bytes_sizes(text: str, size: int) -> None:
    from analyzer.cli.analyze import byte_size

    assert byte_size(text) == size


@pytest.mark.parametrize("text", ["0", "-1", "lots", "", "nan"])
def test_max_bytes_bad_sizes_are_usage_errors(text: str) -> None:
    p = subprocess.run([sys.executable, "-m", "analyzer", "analyze", "--max-bytes", text, str(SAMPLE)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--max-bytes" in p.stderr and "Traceback" not in p.stderr
