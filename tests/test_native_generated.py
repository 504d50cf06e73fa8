"""Issue 15: both engines agree on generated captures (hypothesis), not only on captured ones.

Packets among a few hosts and ports with TCP flags, sequence and acknowledgement numbers
near each side's ISN (and sometimes anywhere), payloads that look like TLS, HTTP, DNS or
nothing, UDP to DNS/NTP/QUIC ports, ICMP errors quoting the other packets, duplicated
frames, and times that mostly move on and sometimes go back: the kind of sequences where a
state machine ported by hand would drift from its reference.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from native_diff import differences, need_core, results

from analyzer.flows.config import FlowConfig

HOSTS = [bytes([10, 0, 0, i]) for i in (1, 2, 3)]
PORTS = [443, 53, 80, 5223, 123, 40000, 40001, 51000]
FLAGS = [0x02, 0x12, 0x10, 0x18, 0x11, 0x01, 0x04, 0x14, 0x06, 0x03, 0x19, 0x00, 0x29]
PAYLOADS = [b"", b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", b"\x16\x03\x03\x00\x04\x02\x00\x00\x00",
            b"GET / HTTP/1.1\r\nHost: gs.apple.com\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n",
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x05apple\x03com\x00\x00\x01\x00\x01",
            b"\x23" + bytes(47), b"x" * 30]
SMALL = FlowConfig(max_flows=4, reassembly_budget=2048, reassembly_floor=64, reassembly_cap=256, max_segments=4,
                   max_pending_segments=2, max_udp_datagrams=2, max_history=10, tcp_attempt_timeout=0.3,
                   tcp_close_linger=0.2, tcp_partial_close_timeout=0.1, udp_idle_timeout=0.5,
                   icmp_idle_timeout=0.5, tcp_idle_timeout=1.0, max_time_jump=0.4)


def _csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def _ip(src: bytes, dst: bytes, proto: int, body: bytes, ttl: int, ip_id: int) -> bytes:
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), ip_id, 0x4000, ttl, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", _csum(h)) + h[12:] + body


packet = st.fixed_dictionaries({
    "kind": st.sampled_from(["tcp"] * 6 + ["udp", "udp", "icmp"]),
    "a": st.integers(0, 2), "b": st.integers(0, 2), "sp": st.sampled_from(PORTS), "dp": st.sampled_from(PORTS),
    "flags": st.sampled_from(FLAGS), "seq": st.integers(-3, 60), "ack": st.integers(-3, 60),
    "wild": st.integers(0, 9), "raw_seq": st.integers(0, 2**32 - 1), "payload": st.sampled_from(PAYLOADS),
    "dt": st.sampled_from([0.0, 0.0001, 0.01, 0.05, 0.2, 0.6, 2.0, -0.3, -1.5]), "ttl": st.sampled_from([64, 63, 1]),
    "twice": st.integers(0, 15), "ip_id": st.integers(0, 3),
})


def _capture(packets: list[dict[str, object]]) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)]  # raw IPv4
    t = 1_700_000_000.0
    frames: list[bytes] = []
    isn = {}
    for i, p in enumerate(packets):
        t += p["dt"]  # type: ignore[operator]
        src, dst = HOSTS[p["a"]], HOSTS[p["b"]]  # type: ignore[index]
        sp, dp = p["sp"], p["dp"]
        pl: bytes = p["payload"]  # type: ignore[assignment]
        ip_id = i * 7 + p["ip_id"]  # type: ignore[operator]
        if p["kind"] == "tcp":
            key, back = (src, sp, dst, dp), (dst, dp, src, sp)
            base = isn.setdefault(key, 1000 * (len(isn) + 1) + 4_000_000_000 * (len(isn) % 2))
            peer = isn.setdefault(back, 1000 * (len(isn) + 1))
            seq = (p["raw_seq"] if p["wild"] == 0 else base + p["seq"]) & 0xFFFFFFFF  # type: ignore[operator]
            ack = (peer + p["ack"]) & 0xFFFFFFFF  # type: ignore[operator]
            body = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 0x50, p["flags"], 65535, 0, 0) + pl
            frame = _ip(src, dst, 6, body, p["ttl"], ip_id)  # type: ignore[arg-type]
        elif p["kind"] == "udp":
            body = struct.pack("!HHHH", sp, dp, 8 + len(pl), 0) + pl
            frame = _ip(src, dst, 17, body, p["ttl"], ip_id)  # type: ignore[arg-type]
        else:  # an ICMP error quoting an earlier frame (or port unreachable about nothing)
            quoted = frames[-1][:28] if frames else _ip(dst, src, 17, struct.pack("!HHHH", dp, sp, 8, 0), 64, 1)[:28]
            body = struct.pack("!BBHI", 3, 3 if p["wild"] else 4, 0, 1400 if not p["wild"] else 0) + quoted
            body = body[:2] + struct.pack("!H", _csum(body)) + body[4:]
            frame = _ip(dst, src, 1, body, p["ttl"], ip_id)  # type: ignore[arg-type]
        frames.append(frame)
        for k in range(2 if p["twice"] == 0 else 1):  # a span port's copy, 1 µs later
            ts = t + k * 1e-6
            sec = int(ts)
            out.append(struct.pack("<IIII", sec, int(round((ts - sec) * 1e6)) % 1_000_000, len(frame), len(frame)))
            out.append(frame)
    return b"".join(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(st.lists(packet, min_size=1, max_size=60))
def test_both_engines_agree_on_generated_packets(tmp_path: Path, packets: list[dict[str, object]]) -> None:
    need_core()
    path = tmp_path / "gen.pcap"
    path.write_bytes(_capture(packets))
    assert differences(*results([path])) == []
    assert differences(*results([path], SMALL)) == []


@pytest.fixture(autouse=True)
def _core() -> None:
    need_core()
