"""Packet times no calendar holds, and clocks that go back (issue 17, item 2).

A pcapng interface with an extreme if_tsoffset or if_tsresol made every
report format but json/csv end in an OSError/OverflowError traceback, and a
good capture given beside it got no report at all. Such packets are now
skipped by the reader (weird `pcapng_time_out_of_range`: a time outside
1970..9999 cannot be placed among the others, and clamping it would fire
every flow timer), the time helpers never raise, a capture whose clock goes
back prints no negative duration, and a connection seen across a clock step
stays one connection. The captures are built by hand as
tests/fixtures/crafted/make_crafted.py builds its fixtures.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.capture.reader import open_capture
from analyzer.report.terminal_report import capture_line, format_ts, iso_ts

ROOT = Path(__file__).resolve().parents[1]
GOOD = ROOT / "samples" / "after_fix.pcap"  # a real capture (tcpdump in the lab)
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "crafted"))
from make_crafted import T0, V4_MAC, V4_SRV, end_opts, epb, eth, idb, opt, pcap, shb  # noqa: E402

sys.path.remove(str(ROOT / "tests" / "fixtures" / "crafted"))

IF_TSRESOL, IF_TSOFFSET = 9, 14


def segment(src: str, dst: str, sport: int, dport: int, flags: str, seq: int, ack: int, payload: bytes = b"") -> bytes:
    from scapy.layers.inet import IP, TCP
    from scapy.packet import Raw

    return eth(IP(src=src, dst=dst, ttl=64) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack,
                                                  window=65535) / Raw(payload), 0x0800)


SYN = segment(V4_MAC, V4_SRV, 50000, 443, "S", 1000, 0)

# Three interfaces: one sane (microseconds), one whose if_tsoffset is 2**62 s, one whose
# if_tsresol is 2**-0 (whole seconds) with a 2**64-1 tick time: both far past year 9999.
BAD_TIMES = (
    shb()
    + idb(1)
    + idb(1, options=opt(IF_TSOFFSET, struct.pack("<q", 1 << 62)) + end_opts())
    + idb(1, options=opt(IF_TSRESOL, bytes([0x80])) + end_opts())
    + idb(1, options=opt(IF_TSOFFSET, struct.pack("<q", -(1 << 40))) + end_opts())
    + epb(0, T0 * 10**6, SYN)
    + epb(1, T0 * 10**6, SYN)
    + epb(2, (1 << 64) - 1, SYN)
    + epb(3, T0 * 10**6, SYN)
)

FORMATS = ("table", "json", "jsonl", "md", "csv", "html")


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("times") / "bad_times.pcapng"
    path.write_bytes(BAD_TIMES)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True, text=True, timeout=120)


def test_reader_skips_and_counts_out_of_range_times(bad: Path) -> None:
    reader = open_capture(bad)
    packets = list(reader)
    assert [p.ts for p in packets] == [T0]
    assert reader.weird["pcapng_time_out_of_range"] == 3
    assert not reader.truncated


@pytest.mark.parametrize("fmt", FORMATS)
def test_analyze_reports_beside_a_good_capture(fmt: str, bad: Path) -> None:
    p = run("analyze", "--format", fmt, str(bad), str(GOOD))
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "Error" not in p.stderr
    if fmt == "json":
        caps = json.loads(p.stdout)["captures"]
        assert [c["packets"] for c in caps] == [1, 97]
        assert caps[0]["weird"] == {"pcapng_time_out_of_range": 3}
    elif fmt == "jsonl":
        caps = [e for e in map(json.loads, p.stdout.splitlines()) if e["event_type"] == "capture"]
        assert len(caps) == 2
    elif fmt != "csv":
        assert "97 packets" in p.stdout and "1 packet," in p.stdout  # both captures are in the report


@pytest.mark.parametrize("fmt", ("table", "json", "jsonl"))
def test_flows_reports_beside_a_good_capture(fmt: str, bad: Path) -> None:
    p = run("flows", "--format", fmt, str(bad), str(GOOD))
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert "pcapng_time_out_of_range" in p.stdout


@pytest.mark.parametrize("ts", [1e20, -1e20, 2.0**62, -(2.0**62), math.inf, -math.inf, math.nan, 253402300800.0])
def test_time_helpers_never_raise(ts: float) -> None:
    assert format_ts(ts) == "time out of range"
    assert iso_ts(ts) is None


def test_time_helpers_keep_ordinary_times() -> None:
    assert format_ts(T0 + 0.25) == "2023-11-14 22:13:20.250"
    assert iso_ts(T0 + 0.25) == "2023-11-14T22:13:20.250000+00:00"
    assert iso_ts(-1.5) == "1969-12-31T23:59:58.500000+00:00"


def test_no_negative_capture_duration() -> None:
    line = capture_line({"source": "x", "packets": 3, "first_ts": T0 + 100, "last_ts": T0})
    assert "-100" not in line and " s)" not in line
    assert "2023-11-14 22:15:00.000 to 2023-11-14 22:13:20.000 UTC (the clock went back)" in line
    line = capture_line({"source": "x", "packets": 3, "first_ts": T0, "last_ts": T0 + 2})
    assert line.endswith("2023-11-14 22:13:20.000 to 22:13:22.000 UTC (2.0 s)")


@pytest.fixture(scope="module")
def clock_step(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A connection to Apple whose SYN is stamped 100 s after the rest: the clock stepped back
    (more than FlowConfig.max_time_jump) between the SYN and the SYN-ACK."""
    c, s = V4_MAC, V4_SRV
    records = [
        (T0 + 100.0, SYN),
        (T0 + 0.010, segment(s, c, 443, 50000, "SA", 5000, 1001)),
        (T0 + 0.020, segment(c, s, 50000, 443, "A", 1001, 5001)),
        (T0 + 0.030, segment(c, s, 50000, 443, "PA", 1001, 5001, b"x" * 10)),
        (T0 + 0.040, segment(s, c, 443, 50000, "A", 5001, 1011)),
    ]
    path = tmp_path_factory.mktemp("step") / "clock_step.pcap"
    path.write_bytes(pcap(records, 1))
    return path


def test_clock_step_keeps_one_connection(clock_step: Path) -> None:
    p = run("flows", "--format", "json", str(clock_step))
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert [(f["history"], f["end_reason"]) for f in d["flows"]] == [("ShADa", "end_of_capture")]
    assert d["weird"] == {"time_went_backwards": 1}


def test_clock_step_is_no_false_no_response(clock_step: Path) -> None:
    p = run("analyze", "--format", "json", str(clock_step))
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert [f["verdict"] for f in report["flows"]] == ["incomplete"]
    assert report["flows"][0]["duration"] >= 0  # kept across the step: ends "before" it began (issue 17)
    assert "no_response" not in report["summary"]["by_verdict"]
    assert report["summary"]["services_by_status"].get("blocked") is None
    p = run("analyze", str(clock_step))
    assert "UTC (the clock went back)" in p.stdout and "-99" not in p.stdout


def test_table_keeps_a_connection_across_a_clock_step_but_not_an_appended_copy() -> None:
    """The flow table's rule itself: held packets that continue a TCP connection keep it;
    a SYN on the same ports after the jump (two copies of a capture appended) starts afresh."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from test_flows import Conv, feed
    finally:
        sys.path.remove(str(ROOT / "tests"))
    from analyzer.flows import EndReason

    def copy(shift: float) -> list:  # type: ignore[type-arg]
        c = Conv(t0=1000.0 + shift)
        return [c.c("S"), c.s("SA"), c.c("A"), c.c("PA", b"GET / HTTP/1.1\r\n\r\n"), c.s("A")]

    step = copy(0.0)
    step[0] = step[0]._replace(ts=step[0].ts + 100.0)
    recs, table = feed(step)
    assert table.weird["time_went_backwards"] == 1
    assert [(r.history, r.end_reason) for r in recs] == [("ShADa", EndReason.END_OF_CAPTURE)]
    recs, table = feed(copy(100.0) + copy(0.0))
    assert [(r.history, r.end_reason) for r in recs] == [
        ("ShADa", EndReason.TIME_JUMP),
        ("ShADa", EndReason.END_OF_CAPTURE),
    ]
