"""Issue 6: the live pipeline without a live interface: filter, head keeper, writer, roll-up, CLI errors.

The pipeline runs here over real captures through the same pcapy batch
path (`open_offline_as_live`: libpcap applies the kernel filter in user
space when reading a file), so these tests need no root; tests/lab/
test_live_lab.py does the same over a real interface with tcpreplay.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import analyzer
import analyzer.inspect
from analyzer.capture.decode import decode
from analyzer.capture.reader import RawPacket, open_capture
from analyzer.catalogue import load_catalogue
from analyzer.dnsmap import NameMap
from analyzer.diagnosis import build_report, diagnose
from analyzer.engine import Engine, EngineConfig
from analyzer.errors import CaptureError
from analyzer.flows.config import FlowConfig
from analyzer.live.bpf import (
    DEFAULT_SMALL_UDP,
    FilterSpec,
    kernel_filter,
    resolve_filter,
)
from analyzer.live.heads import DEFAULT_SMALL_TCP, HeadKeeper, tcp_segment_matters
from analyzer.live.rolling import RollingNames, ServiceTally, _worse, view_table
from analyzer.live.session import LiveSession
from analyzer.live.source import (
    KernelStats,
    LiveCaptureError,
    check_interface,
    compile_user_filter,
    open_offline_as_live,
)
from analyzer.live.writer import PcapngWriter

try:
    import pcapy
except ImportError:  # the live extra is not installed: the tests that need libpcap's filter compiler skip
    pcapy = None
needs_pcapy = pytest.mark.skipif(pcapy is None, reason="pcapy-ng not installed (pip install 'apple-net-analyzer[live]')")
BACKENDS = [b for b, mod in (("pcapy", "pcapy"), ("scapy", "scapy")) if importlib.util.find_spec(mod) is not None]

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
ROOT = Path(analyzer.__file__).resolve().parent.parent
# One SYN and nothing after it (a real capture): whether it went unanswered depends only on how long
# the capture went on after it.
SYN_ONLY = CORPUS / "suricata-verify" / "tests" / "bug-6733-syn-packet-flow-output" / "input.pcap"
ETHERNET_CAPTURES = sorted(
    p for p in CORPUS.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.stat().st_size < 3_000_000
)


def corpus(name: str) -> Path:
    found = [p for p in CORPUS.rglob(name)]
    assert len(found) == 1, found
    return found[0]


@functools.lru_cache(maxsize=1)
def catalogue() -> Any:
    return load_catalogue(None, edition="current")


@functools.cache
def offline(path: str) -> dict[str, Any]:
    return analyzer.analyze(path).report


def live_replay(path: Path, tmp: Path, spec: FilterSpec | None = None, batch: int | None = None,
                **kw: Any) -> tuple[dict[str, Any], Path, LiveSession]:
    spec = spec or resolve_filter()
    src = open_offline_as_live(path, spec.kernel, spec.fallback)
    if batch:
        src.batch = batch
    out = tmp / (path.stem + ".live.pcapng")
    writer = PcapngWriter(out, src.linktype, src.snaplen, str(path), src.filter)
    session = LiveSession(src, spec, catalogue(), writer=writer, **kw)
    session.run(handle_signals=False, tick_every=0.0 if batch else 2.0)
    return session.report(), out, session


def verdicts(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted((f["proto"], f["client"]["ip"], f["client"]["port"], f["server"]["ip"], f["server"]["port"],
                   f["verdict"], f["reset_by"] or "", f["service"] or "") for f in report["flows"])


def dns_verdicts(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted((d["client"]["ip"], d["client"]["port"], d["query"], d["qtype"], d["verdict"])
                  for d in report["dns"])


# -- the kernel filter ------------------------------------------------------------------------------

@needs_pcapy
def test_kernel_filter_compiles_small_enough_for_the_kernel() -> None:
    with_vlan = pcapy.compile(1, 262144, kernel_filter(), 1, 0).get_bpf()
    plain = pcapy.compile(1, 262144, kernel_filter(vlan=False), 1, 0).get_bpf()
    assert len(plain) < len(with_vlan) < 4096  # BPF_MAXINSNS
    for linktype in (113, 276, 12, 0):  # SLL (`any`), SLL2, raw IP, BSD null: the fallback compiles
        assert pcapy.compile(linktype, 262144, resolve_filter().fallback, 1, 0).get_bpf()


def expected_kernel_keep(frame: bytes) -> bool | None:
    """The kernel filter's documented rules, written again from the decoded packet (untagged Ethernet only)."""
    if len(frame) < 14 or frame[12:14] not in (b"\x08\x00", b"\x86\xdd"):
        return None
    pkt = decode(RawPacket(0.0, 1, frame, len(frame)))
    if pkt is None or pkt.truncated:
        return None
    if pkt.ip_version == 6 and frame[14 + 6] in (0, 43, 44, 60):
        return True
    if pkt.fragmented:
        return True
    if pkt.proto == 6:
        return bool(pkt.tcp_flags & 0x07) or pkt.payload_len > 0
    if pkt.proto == 17:
        ports = {pkt.sport, pkt.dport}
        quic = 443 in ports and pkt.payload_len > 0 and pkt.payload[0] & 0x80 != 0
        return bool(ports & {53, 5353, 5355, 123}) or pkt.payload_len <= DEFAULT_SMALL_UDP or quic
    if pkt.proto == 1:
        return pkt.icmp is not None and pkt.icmp.type in (3, 4, 11, 12)
    if pkt.proto == 58:
        return pkt.icmp is not None and pkt.icmp.type < 128
    return False


@needs_pcapy
def test_kernel_filter_does_what_its_documentation_says_on_real_packets() -> None:
    prog = pcapy.compile(1, 262144, kernel_filter(), 1, 0)
    seen: Counter[tuple[int, bool]] = Counter()
    for path in ETHERNET_CAPTURES:
        try:
            packets = [raw for raw in open_capture(path) if raw.linktype == 1]
        except CaptureError:  # the corpus holds deliberately broken files too
            continue
        for raw in packets:
            want = expected_kernel_keep(raw.data)
            if want is None:
                continue
            got = prog.filter(raw.data) != 0
            assert got == want, (path.name, raw.data[:80].hex())
            seen[(raw.data[23] if raw.data[12] == 8 else raw.data[20], got)] += 1
    # Both answers were exercised for TCP and UDP; ICMP errors and ICMPv6 neighbour discovery were met.
    assert seen[(6, True)] > 1000 and seen[(6, False)] > 1000
    assert seen[(17, True)] > 100 and seen[(17, False)] > 0
    assert seen[(1, True)] > 0 and seen[(58, False)] > 0, seen  # ICMP errors kept, ICMPv6 NDP not


def test_resolve_filter_replace_widen_and_none() -> None:
    default = resolve_filter()
    assert (default.origin, default.heads, default.also) == ("default", True, None)
    assert default.kernel == kernel_filter() and default.fallback == kernel_filter(vlan=False)
    widened = resolve_filter(also="tcp port 8443")
    assert widened.origin == "default+user" and widened.heads and widened.also == "tcp port 8443"
    assert widened.kernel == f"({kernel_filter()}) or (tcp port 8443)"
    replaced = resolve_filter("tcp port 443")
    assert (replaced.kernel, replaced.heads, replaced.origin) == ("tcp port 443", False, "user")
    for everything in ("", "all", "  "):
        spec = resolve_filter(everything)
        assert (spec.kernel, spec.heads, spec.origin) == ("", False, "none")
    assert resolve_filter("udp", "tcp").kernel == "(udp) or (tcp)"
    assert "first 12 data segments" in default.describe(12)
    assert replaced.describe(12) == "user: tcp port 443"


# -- the user-space stage ---------------------------------------------------------------------------

def frames_of(path: Path) -> list[bytes]:
    return [raw.data for raw in open_capture(path)]


def test_head_keeper_keeps_flow_heads_and_events_and_sheds_bulk() -> None:
    # A TLS 1.2 connection whose server flight spans three segments, the middle one
    # neither starting a record nor carrying PSH: the kernel's rules alone lose it.
    frames = frames_of(corpus("tls1.2.pcap"))
    keeper = HeadKeeper(1, head_segments=1)
    kept = [keeper.keep(f) for f in frames]
    lengths = [decode(RawPacket(0.0, 1, f, len(f))).payload_len for f in frames]  # type: ignore[union-attr]
    # Everything without payload passes (pure ACKs never reach this stage in live use).
    assert all(k for k, n in zip(kept, lengths) if n == 0)
    # The first data segment of each direction is kept, the server flight's middle segment is shed...
    shed = [i for i, k in enumerate(kept) if not k]
    assert shed and all(lengths[i] > DEFAULT_SMALL_TCP for i in shed)
    assert keeper.shed == len(shed) and keeper.shed_bytes == sum(len(frames[i]) for i in shed)
    # ...and with the default head size nothing of this handshake is.
    default = HeadKeeper(1)
    assert all(default.keep(f) for f in frames) and default.shed == 0
    # The FIN closed both directions: no state is left behind.
    assert len(default) == 0


def test_head_keeper_forgets_oldest_flows_past_its_bound() -> None:
    # Connections seen midstream (no SYN, no FIN) are remembered from their first data segment.
    frames = frames_of(corpus("http_ipv6.pcap")) + frames_of(corpus("browsers-x509.pcapng"))
    keeper = HeadKeeper(1, head_segments=4, max_flows=2)
    for f in frames:
        keeper.keep(f)
    assert len(keeper) <= 2
    assert keeper.flows_forgotten > 0


@needs_pcapy
def test_head_keeper_extra_user_filter_is_never_shed() -> None:
    frames = frames_of(corpus("tls1.2.pcap"))
    everything = HeadKeeper(1, head_segments=0, extra=compile_user_filter("tcp port 443", 1))
    assert all(everything.keep(f) for f in frames) and everything.shed == 0
    nothing = HeadKeeper(1, head_segments=0, extra=compile_user_filter("udp", 1))
    assert not all(nothing.keep(f) for f in frames) and nothing.shed > 0
    with pytest.raises(LiveCaptureError, match="bad --bpf-also"):
        compile_user_filter("tcp port", 1)


def test_tcp_segment_matters() -> None:
    big = bytes(500)
    assert tcp_segment_matters(b"\x15\x03\x03\x00\x02\x02\x28", 443, 50000)  # a TLS alert
    assert tcp_segment_matters(b"\x17\x03\x03" + big, 443, 50000)  # a record start, whatever its size
    assert not tcp_segment_matters(b"\x17\x02\x03" + big, 443, 50000)  # no TLS version byte
    assert not tcp_segment_matters(b"\x18\x03\x03" + big, 443, 50000)  # not a TLS content type
    assert tcp_segment_matters(b"GET /" + big, 50000, 80) and tcp_segment_matters(b"HTTP/1.1 200" + big, 80, 50000)
    assert tcp_segment_matters(b"CONNECT x:443" + big, 50000, 3128)
    assert not tcp_segment_matters(b"XGET /" + big, 50000, 80)
    assert tcp_segment_matters(big, 53, 50000) and tcp_segment_matters(big, 50000, 53)
    assert not tcp_segment_matters(big, 443, 50000)
    assert tcp_segment_matters(bytes(DEFAULT_SMALL_TCP), 443, 50000)
    assert not tcp_segment_matters(bytes(DEFAULT_SMALL_TCP + 1), 443, 50000)


@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=200), linktype=st.sampled_from([1, 0, 12, 101, 113, 276, 228, 229, 9999]),
       cut=st.integers(min_value=0, max_value=120))
def test_head_keeper_never_raises_on_damaged_frames(frame: bytes, linktype: int, cut: int) -> None:
    real = frames_of(corpus("tls1.2.pcap"))[3]
    keeper = HeadKeeper(linktype, head_segments=0)
    for data in (frame, real[:cut] + frame, real[:cut]):
        assert keeper.keep(data) in (True, False)


# -- the writer ---------------------------------------------------------------------------------------

def test_writer_round_trip_and_interface_options(tmp_path: Path) -> None:
    src = corpus("tls13-ech.pcap")
    packets = list(open_capture(src))
    out = tmp_path / "w.pcapng"
    w = PcapngWriter(out, 1, 262144, "en0", "tcp or udp")
    for raw in packets:
        w.write(raw)
    w.close()
    back = list(open_capture(out))
    assert [(round(r.ts * 1e6), r.linktype, r.data, r.wirelen) for r in back] == \
           [(round(r.ts * 1e6), r.linktype, r.data, r.wirelen) for r in packets]
    reader = open_capture(out)
    list(reader)
    assert reader.interfaces == [(1, "en0")] and not reader.weird and not reader.truncated
    if shutil.which("tshark"):
        fields = subprocess.run(["tshark", "-r", str(out), "-c", "1", "-T", "fields", "-e", "frame.interface_name"],
                                capture_output=True, text=True, check=True).stdout.strip()
        assert fields == "en0"
        capinfos = subprocess.run(["capinfos", "-c", str(out)], capture_output=True, text=True, check=True).stdout
        assert f"Number of packets:   {len(packets)}" in capinfos


def statistics_blocks(path: Path) -> list[dict[int, bytes]]:
    """The options of each interface statistics block of a little-endian pcapng file, by code."""
    data = path.read_bytes()
    out: list[dict[int, bytes]] = []
    pos = 0
    while pos + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, pos)
        if btype == 5:
            opts: dict[int, bytes] = {}
            o = pos + 20
            while o + 4 <= pos + blen - 4:
                code, olen = struct.unpack_from("<HH", data, o)
                if code == 0:
                    break
                opts[code] = data[o + 4:o + 4 + olen]
                o += 4 + olen + (-olen) % 4
            out.append(opts)
        pos += blen
    return out


def test_writer_records_the_stop_in_an_interface_statistics_block(tmp_path: Path) -> None:
    packets = list(open_capture(SYN_ONLY))
    end = packets[-1].ts + 6.5
    out = tmp_path / "w.pcapng"
    w = PcapngWriter(out, 1, 262144, "en0", "tcp")
    for raw in packets:
        w.write(raw)
    w.close(end=end, accepted=10, dropped=2)
    ticks = round(end * 1_000_000)
    assert statistics_blocks(out) == [{3: struct.pack("<II", ticks >> 32, ticks & 0xFFFFFFFF),
                                       6: struct.pack("<Q", 10), 7: struct.pack("<Q", 2)}]
    reader = open_capture(out)
    assert len(list(reader)) == len(packets) and not reader.weird and not reader.truncated
    if shutil.which("capinfos"):
        capinfos = subprocess.run(["capinfos", str(out)], capture_output=True, text=True, check=True).stdout
        assert "Number of stat entries = 1" in capinfos
    # Closed without a stop moment (an error path): no statistics.
    w = PcapngWriter(out, 1, 262144, "en0")
    w.close()
    assert statistics_blocks(out) == []


def test_writer_rotates_by_size_and_keeps_the_newest(tmp_path: Path) -> None:
    packets = list(open_capture(corpus("browsers-x509.pcapng")))
    w = PcapngWriter(tmp_path / "cap.pcapng", 1, 262144, "en0", max_bytes=8192)
    for raw in packets:
        w.write(raw)
    w.close()
    assert len(w.paths) > 3 and w.paths[1].name == "cap.1.pcapng" and w.packets == len(packets)
    assert all(p.stat().st_size <= 8192 or len(list(open_capture(p))) == 1 for p in w.paths)
    again = [r.data for p in w.paths for r in open_capture(p)]
    assert again == [r.data for r in packets]
    kept = PcapngWriter(tmp_path / "ring.pcapng", 1, 262144, "en0", max_bytes=8192, keep=2)
    for raw in packets:
        kept.write(raw)
    kept.close()
    assert len(kept.paths) == 2 and kept.deleted == len(w.paths) - 2
    assert sorted(p.name for p in tmp_path.glob("ring*")) == sorted(p.name for p in kept.paths)


# -- the whole pipeline over real captures ---------------------------------------------------------------

# Captures where the default filter changes nothing the report judges (every lab scenario is such
# a capture too: tests/lab/test_live_lab.py).
SAME_VERDICTS = ["tls1.2.pcap", "ecdhe.pcap", "missing-intermediate.pcap", "tls_verylong_certificate.pcap",
                 "malware.pcap", "iphone.pcap", "hrr.pcap", "tls13-ech.pcap", "chrome-1250-tls-x25519-kyber.pcap",
                 "rst-inject-rae.pcap", "pop3.pcap", "dns_tcp.pcap", "quic_handshake.pcap", "selfsigned.pcap"]


@needs_pcapy
@pytest.mark.parametrize("name", SAME_VERDICTS)
def test_live_pipeline_gives_the_offline_verdicts(name: str, tmp_path: Path) -> None:
    path = corpus(name)
    report, written, session = live_replay(path, tmp_path)
    cap = report["captures"][0]
    assert cap["stopped_by"] == "end of file" and cap["dropped"] == 0
    assert cap["packets"] == session.kept == cap["read"] - cap["shed"]
    assert cap["last_ts"] == cap["last_packet_ts"]  # a file ends at its last packet, as offline
    assert session.status().flows_done == report["summary"]["flows"]
    # The live report is the offline report of the file it wrote...
    again = offline(str(written))
    for key in ("flows", "dns", "services", "findings", "summary", "weird"):
        assert report[key] == again[key], key
    # ...and judges every flow and DNS transaction as the offline report of everything does.
    full = offline(str(path))
    assert verdicts(report) == verdicts(full)
    assert dns_verdicts(report) == dns_verdicts(full)
    assert "rolled_up" not in report


@needs_pcapy
def test_what_the_default_filter_loses_is_what_it_documents(tmp_path: Path) -> None:
    # A keep-alive-only connection seen midstream carries nothing but pure ACKs: the kernel drops
    # them, so the flow is absent (it was judged `incomplete` offline anyway); so is QUIC on a port
    # other than 443 whose packets are all large.
    report, _, _ = live_replay(corpus("http_ipv6.pcap"), tmp_path)
    full = offline(str(corpus("http_ipv6.pcap")))
    lost = set(verdicts(full)) - set(verdicts(report))
    assert lost and all(v[0] in ("tcp", "udp") for v in lost)
    assert {v[5] for v in lost if v[0] == "tcp"} == {"incomplete"}
    report_q, _, _ = live_replay(corpus("quic_0RTT.pcap"), tmp_path)
    assert len(report_q["flows"]) < len(offline(str(corpus("quic_0RTT.pcap")))["flows"])
    # Replacing the filter with everything brings them back.
    report_all, _, _ = live_replay(corpus("http_ipv6.pcap"), tmp_path, resolve_filter(""))
    assert verdicts(report_all) == verdicts(full)


@needs_pcapy
def test_head_segments_too_small_breaks_tls12_and_the_default_does_not(tmp_path: Path) -> None:
    report, _, session = live_replay(corpus("tls1.2.pcap"), tmp_path, head_segments=1)
    assert session.keeper is not None and session.keeper.shed > 0
    assert [f["verdict"] for f in report["flows"] if f["proto"] == "tcp"] == ["tls_failed"]
    report, _, _ = live_replay(corpus("tls1.2.pcap"), tmp_path)
    assert [f["verdict"] for f in report["flows"] if f["proto"] == "tcp"] == ["ok"]


@needs_pcapy
def test_rollup_bounds_memory_and_keeps_the_counts(tmp_path: Path) -> None:
    # Flows that finish mid-capture and DNS answers, judged in batches of 16 packets and evicted past 4.
    # Short timers so that flows end while the capture runs, not only at its end.
    config = EngineConfig(flows=FlowConfig(tcp_close_linger=0.01, udp_idle_timeout=1.0, tcp_idle_timeout=5.0))
    path = corpus("tls_certificate_too_long.pcap")
    report, written, _ = live_replay(path, tmp_path, batch=16, max_flows=4, max_dns=4, config=config)
    full = analyzer.analyze(written, config=config).report  # the same packets, one pass, nothing evicted
    rolled = report["rolled_up"]
    assert rolled["flows"] > 0 and rolled["dns"] > 0 and rolled["first_ts"] <= rolled["last_ts"]
    assert len(report["flows"]) + rolled["flows"] == report["summary"]["flows"] == full["summary"]["flows"]
    assert len(report["dns"]) + rolled["dns"] == len(full["dns"])
    assert report["summary"]["by_verdict"] == full["summary"]["by_verdict"]
    assert report["summary"]["dns_by_verdict"] == full["summary"]["dns_by_verdict"]
    assert report["summary"]["apple_flows"] == full["summary"]["apple_flows"]
    assert {s["id"]: (s["flows"], s["by_verdict"], s["dns_queries"]) for s in report["services"]} == \
           {s["id"]: (s["flows"], s["by_verdict"], s["dns_queries"]) for s in full["services"]}


@needs_pcapy
def test_rollup_drops_stream_bytes_of_judged_flows() -> None:
    # The reassembled bytes are most of a finished flow's memory; the report never shows them.
    spec = resolve_filter()
    src = open_offline_as_live(corpus("tls13-ech.pcap"), spec.kernel)
    # The Python engine: its table is reached into below, for records the engine has not yet released.
    session = LiveSession(src, spec, catalogue(), config=EngineConfig(engine="python"))
    session.run(handle_signals=False)
    # Flows still open at the end of the file, inspected as finish() would.
    session.engine.flows.extend(analyzer.inspect.inspect_flow(r) for r in session.engine.table.flush())
    before = [f.flow.client.stream for f in session.engine.flows]
    assert any(s is not None and s.data for s in before)
    session.roll()
    assert all(f.flow.client.stream is None and f.flow.server.stream is None for f in session.engine.flows)
    assert session.rollup.seen.flows == len(session.engine.flows)


# -- the end of a live capture: silence is time too ------------------------------------------------

def report_until(path: Path, stop: float | None) -> dict[str, Any]:
    """The offline report of `path` had its capture stopped at `stop` (packet time), as a live one is."""
    engine = Engine()
    cap = engine.read(path)
    if stop is not None:
        engine.advance(stop)
        engine.captures = [dataclasses.replace(cap, last_ts=stop)]
    result = engine.finish()
    return build_report(result, diagnose(result, catalogue()), catalogue())


def test_engine_judges_the_silence_between_the_last_packet_and_the_stop() -> None:
    (syn,) = report_until(SYN_ONLY, None)["flows"]
    t = syn["ts_start"]
    assert (syn["verdict"], syn["end_reason"], syn["open_at_end"]) == ("incomplete", "end_of_capture", True)
    # Stopped half a second after the SYN: still too soon to call it unanswered.
    (f,) = report_until(SYN_ONLY, t + 0.5)["flows"]
    assert (f["verdict"], f["end_reason"], f["open_at_end"]) == ("incomplete", "end_of_capture", True)
    # Two seconds: unanswered, though its attempt timer (5 s) has not fired yet.
    (f,) = report_until(SYN_ONLY, t + 2.0)["flows"]
    assert (f["verdict"], f["end_reason"], f["open_at_end"]) == ("no_response", "end_of_capture", True)
    # Six: the attempt timer fired in the silence, as a packet at that time would have made it fire.
    report = report_until(SYN_ONLY, t + 6.0)
    (f,) = report["flows"]
    assert (f["verdict"], f["end_reason"], f["open_at_end"]) == ("no_response", "attempt_timeout", False)
    assert f["ts_end"] == t and report["captures"][0]["last_ts"] == t + 6.0
    # A stop before the clock changes nothing.
    assert report_until(SYN_ONLY, t - 1.0)["flows"][0]["verdict"] == "incomplete"


class RetimedSource:
    """Capture files as a live interface fed at a fixed rate: `per_batch` packets a read, stamped when read
    by a kernel clock `skew` seconds off ours (the original timing is gone, as with `tcpreplay --pps`).
    Once every packet is read, Ctrl-C comes `silence` seconds later (the stop, given explicitly)."""

    backend = "retimed"
    offline = False
    exhausted = False
    filter = ""
    snaplen = 262_144
    iface = "retimed0"

    def __init__(self, paths: list[Path], skew: float, silence: float, per_batch: int = 8) -> None:
        self.packets = [raw for p in paths for raw in open_capture(p)]
        self.linktype = self.packets[0].linktype
        self.skew, self.silence, self.per_batch = skew, silence, per_batch
        self.received = 0
        self.stamped: list[float] = []
        self.session: LiveSession | None = None

    def read(self, keep: Any = None) -> tuple[list[RawPacket], int]:
        if not self.packets:
            assert self.session is not None
            self.session.stop("interrupted", at=time.time() + self.silence)
            return [], 0
        batch, self.packets = self.packets[:self.per_batch], self.packets[self.per_batch:]
        now = time.time() + self.skew
        out = [raw._replace(ts=now - (len(batch) - i) * 1e-6) for i, raw in enumerate(batch)]  # stamped, then read
        self.stamped.extend(r.ts for r in out)
        self.received += len(out)
        return out, len(out)

    def stats(self) -> KernelStats:
        return KernelStats(self.received, 0, 0)

    def close(self) -> None:
        pass


def test_live_capture_ends_when_stopped_on_the_packets_clock(tmp_path: Path) -> None:
    # A TLS session, then a SYN that nothing answers, replayed at a fixed rate; stopped 6 s later.
    # The kernel's clock runs an hour behind ours: the stop is mapped onto the packets' clock.
    src = RetimedSource([corpus("tls1.2.pcap"), SYN_ONLY], skew=-3600.0, silence=6.0)
    spec = resolve_filter("")
    written = tmp_path / "w.pcapng"
    session = LiveSession(src, spec, catalogue(), writer=PcapngWriter(written, src.linktype, src.snaplen, src.iface))
    src.session = session
    session.run(handle_signals=False)
    report = session.report()
    cap = report["captures"][0]
    assert cap["stopped_by"] == "interrupted" and cap["last_packet_ts"] == src.stamped[-1]
    assert 6.0 - 0.1 < cap["last_ts"] - cap["last_packet_ts"] < 6.0 + 0.5  # not an hour off
    # The file it wrote says when the capture ended.
    (isb,) = statistics_blocks(written)
    hi, lo = struct.unpack("<II", isb[3])
    assert ((hi << 32) | lo) == round(cap["last_ts"] * 1_000_000)
    assert struct.unpack("<Q", isb[6]) == (len(src.stamped),) and struct.unpack("<Q", isb[7]) == (0,)
    syn = [f for f in report["flows"] if f["server"]["port"] == 25]
    assert [(f["verdict"], f["end_reason"], f["open_at_end"]) for f in syn] == \
           [("no_response", "attempt_timeout", False)]
    # Everything else is judged as offline, the original timing notwithstanding.
    others = [v for v in verdicts(report) if v[4] != 25]
    assert others == verdicts(offline(str(corpus("tls1.2.pcap"))))
    # The last status line counts what the report counts.
    st = session.status()
    assert (st.flows_done, st.active_flows) == (report["summary"]["flows"], 0)
    assert st.dns == sum(report["summary"]["dns_by_verdict"].values())


def test_live_capture_without_a_stop_moment_ends_at_its_last_packet() -> None:
    # Stopped before any silence (or a file read as a live source): nothing is claimed past the last packet.
    src = RetimedSource([SYN_ONLY], skew=0.0, silence=0.0)
    session = LiveSession(src, resolve_filter(""), catalogue())
    src.session = session
    session.run(handle_signals=False)
    report = session.report()
    cap = report["captures"][0]
    assert cap["last_ts"] - cap["last_packet_ts"] < 0.5
    assert [f["verdict"] for f in report["flows"]] == ["incomplete"]


def test_rolling_names_answer_like_name_map() -> None:
    dns = analyzer.analyze(corpus("iphone.pcap")).result.dns
    reference = NameMap(dns)
    rolling = RollingNames()
    rolling.add_all(dns[: len(dns) // 2])
    rolling.add_all(dns[len(dns) // 2:])
    pairs = {(t.client_ip, a) for t in dns for a in t.addresses}
    assert pairs
    for client, addr in pairs:
        for t in (0.0, *(d.ts + 0.5 for d in dns), float("inf")):
            assert rolling.lookup(client, addr, t) == reference.lookup(client, addr, t)
    small = RollingNames(max_pairs=1)
    small.add_all(dns)
    assert len(small) == 1 and small.forgotten == len(pairs) - 1


def test_service_status_and_merge_rules() -> None:
    t = ServiceTally("x", "x.apple.com", "s")
    assert t.status.value == "not_seen"
    t.flows, t.by_verdict = 2, Counter(ok=2)
    assert t.status.value == "working"
    t.by_verdict["reset"] += 1
    assert t.status.value == "degraded"
    t.by_verdict = Counter(reset=1)
    assert t.status.value == "blocked"
    t.by_verdict["intercepted"] = 1
    assert t.status.value == "intercepted"
    assert _worse("working", "blocked") == "degraded"
    assert _worse("not_seen", "blocked") == "blocked"
    assert _worse("blocked", "blocked") == "blocked"
    assert _worse("working", "intercepted") == "intercepted"
    assert _worse("not_seen", "working") == "working"


@needs_pcapy
def test_view_table_renders_services(tmp_path: Path) -> None:
    from rich.console import Console

    report, _, session = live_replay(corpus("iphone.pcap"), tmp_path)
    console = Console(width=160, record=True, force_terminal=False)
    console.print(view_table(session.rollup.seen, "apple-net live on en0"))
    text = console.export_text()
    assert "apple-net live on en0" in text and "status" in text
    hosts = {r.host for r in session.rollup.seen.services.values()}
    assert hosts and all(h[:20] in text for h in hosts)
    # Each service's row carries its status, and the view counted every lookup the final report holds.
    rows = text.splitlines()
    for t in session.rollup.seen.services.values():
        assert any(t.host[:20] in r and t.status.value in r for r in rows), t.host
    assert session.rollup.seen.dns == len(report["dns"]) > 0


# -- sources and the command ---------------------------------------------------------------------------

def test_missing_interface_is_a_clear_error() -> None:
    with pytest.raises(LiveCaptureError, match="no interface 'nosuch0'"):
        check_interface("nosuch0")
    check_interface("lo")
    check_interface("any")


def run_cli(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*prefix, sys.executable, "-m", "analyzer", "live", *args], capture_output=True,
                          text=True, timeout=120, env=env, check=False)


def test_cli_missing_interface_one_line_exit_2() -> None:
    proc = run_cli("-i", "nosuch0", "--duration", "1")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("apple-net: error: no interface 'nosuch0'") and "ip link" in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to drop CAP_NET_RAW")
def test_cli_without_cap_net_raw_says_what_to_do() -> None:
    assert BACKENDS
    for backend in BACKENDS:
        proc = run_cli("-i", "lo", "--duration", "1", "--backend", backend,
                       prefix=("setpriv", "--inh-caps=-all", "--bounding-set=-net_raw,-net_admin", "--"))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "CAP_NET_RAW" in proc.stderr and "sudo" in proc.stderr


@needs_pcapy
def test_cli_bad_filter_is_a_clear_error() -> None:
    proc = run_cli("--replay", str(corpus("tls1.2.pcap")), "--bpf", "tcp port")
    assert proc.returncode == 2 and proc.stderr.startswith("apple-net: error: bad capture filter")
    assert "Traceback" not in proc.stderr


@needs_pcapy
@pytest.mark.parametrize("fmt", ["json", "jsonl", "md", "csv", "html", "table"])
def test_cli_replay_writes_every_offline_format(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"report.{fmt}"
    written = tmp_path / "w.pcapng"
    proc = run_cli("--replay", str(corpus("tls13-ech.pcap")), "--format", fmt, "-o", str(out),
                   "--write", str(written))
    assert proc.returncode == 0, proc.stderr
    assert "end of file" in proc.stderr and "dropped 0" in proc.stderr
    text = out.read_text()
    assert text.strip()
    if fmt == "json":
        report = json.loads(text)
        assert report["captures"][0]["written"] == [str(written)]
        # The last status line counts what the report counts (not only what the roll-ups had judged).
        assert f"flows {report['summary']['flows']} done, 0 active" in proc.stderr
        assert report["flows"] == offline(str(written))["flows"]
