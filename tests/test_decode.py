"""Link/IP/transport decode: crafted encapsulations, real corpus frames, tshark as oracle, damage."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.capture import (
    LINK_DECODERS,
    Decoder,
    FragmentTable,
    IcmpInfo,
    Packet,
    Quoted,
    RawPacket,
    decode,
    ip_bytes,
    ip_text,
    mac_text,
    open_capture,
)

FIXTURES = Path(__file__).parent / "fixtures"
CORPUS = FIXTURES / "corpus"
CRAFTED = FIXTURES / "crafted"
T0 = 1_700_000_000
TSHARK = shutil.which("tshark")
ETHER = ("02:00:00:00:00:0b", "02:00:00:00:00:0a")
"""The crafted Ethernet frames' (destination, source) addresses."""
COOKED = ("02:00:00:00:00:00",)
"""A crafted Linux cooked header's address, the sender's only: the first 6 of its 8 bytes (tshark agrees)."""
NONE: tuple[str, ...] = ()
"""No link-layer addresses (raw IP, loopback, PPP)."""
RECORDS = [json.loads(line) for line in (CORPUS / "expected.jsonl").read_text().splitlines()]


def decode_file(path: Path) -> tuple[list[Packet | None], Counter[str]]:
    decoder = Decoder()
    packets = [decoder(raw) for raw in open_capture(path)]
    decoder.finish()
    return packets, decoder.weird


def view(p: Packet | None) -> dict[str, Any] | None:
    """Every field, addresses as text, for whole-record comparisons."""
    if p is None:
        return None
    d = p._asdict()
    d["src"], d["dst"] = p.src_text, p.dst_text
    d["macs"] = tuple(mac_text(p.macs[i : i + 6]) for i in range(0, len(p.macs), 6))
    return d


def packet(**fields: Any) -> dict[str, Any]:
    """A whole expected record: the defaults of a packet without that transport."""
    base: dict[str, Any] = {
        "ts": 0.0,
        "ip_version": 4,
        "src": "",
        "dst": "",
        "proto": 0,
        "sport": 0,
        "dport": 0,
        "ttl": 64,
        "ip_id": None,
        "df": True,
        "ip_len": 0,
        "tcp_flags": 0,
        "seq": 0,
        "ack": 0,
        "win": 0,
        "tcp_options": b"",
        "payload": b"",
        "payload_len": 0,
        "icmp": None,
        "vlan": (),
        "iface": 0,
        "proc_name": None,
        "pid": None,
        "fragmented": False,
        "macs": ETHER,
    }
    assert set(fields) <= set(base)
    base.update(fields)
    return base


SYN4 = {
    "ip_version": 4,
    "src": "192.0.2.10",
    "dst": "17.57.146.132",
    "proto": 6,
    "sport": 49152,
    "dport": 443,
    "ttl": 64,
    "ip_id": 0x1234,
    "df": True,
    "ip_len": 40,
    "tcp_flags": 0x02,
    "seq": 1000,
    "ack": 0,
    "win": 65535,
}
DNS6 = {
    "ip_version": 6,
    "src": "2001:db8::10",
    "dst": "2620:149:a44::1",
    "proto": 17,
    "sport": 5353,
    "dport": 53,
    "ttl": 255,
    "ip_id": None,
    "df": True,
    "ip_len": 60,
    "payload": b"\x12\x34" + bytes(10),
    "payload_len": 12,
}


# --- crafted encapsulations, every field ------------------------------------------------------


def test_qinq_and_vlan0() -> None:
    packets, weird = decode_file(CRAFTED / "qinq.pcap")
    assert [view(p) for p in packets] == [
        packet(ts=T0 + 0.1, vlan=(100, 200), **SYN4),  # 802.1ad outer, 802.1Q inner
        packet(ts=T0 + 0.2, vlan=(300, 400), **DNS6),  # old-style 0x9100 outer
        packet(ts=T0 + 0.3, vlan=(0,), **{**SYN4, "dport": 5223}),  # priority tag, VLAN 0
    ]
    assert not weird


def test_pppoe_sessions_and_ppp() -> None:
    packets, weird = decode_file(CRAFTED / "pppoe.pcap")
    assert [view(p) for p in packets] == [
        None,  # PPPoE discovery (0x8863): no IP
        packet(ts=T0 + 1.1, **SYN4),
        packet(ts=T0 + 1.2, **DNS6),
        None,  # PPP LCP inside the session
    ]
    packets, weird2 = decode_file(CRAFTED / "ppp.pcap")
    assert [view(p) for p in packets] == [
        packet(ts=T0 + 2.0, macs=NONE, **SYN4),
        packet(ts=T0 + 2.1, macs=NONE, **{**SYN4, "dport": 80}),  # address/control and protocol compressed
        packet(ts=T0 + 2.2, macs=NONE, **DNS6),
        None,
    ]
    assert not weird and not weird2


def test_linux_cooked_v1_and_v2() -> None:
    packets, _ = decode_file(CRAFTED / "sll.pcap")
    assert [view(p) for p in packets] == [packet(ts=T0 + 3.0, macs=COOKED, **SYN4), None]  # then ARP
    packets, _ = decode_file(CRAFTED / "sll2.pcap")
    assert [view(p) for p in packets] == [
        packet(
            ts=T0 + 3.2,
            ip_version=6,
            src="2001:db8::10",
            dst="2620:149:a44::1",
            proto=6,
            sport=50000,
            dport=443,
            ip_len=60,
            tcp_flags=0x02,
            win=8192,
            macs=COOKED,
        ),
        None,
    ]


def test_bsd_loopback_families_in_either_byte_order() -> None:
    udp = {
        "ip_version": 4,
        "src": "127.0.0.1",
        "dst": "127.0.0.1",
        "proto": 17,
        "sport": 50002,
        "dport": 53,
        "ip_id": 1,
        "df": False,
        "ip_len": 40,
        "payload": bytes(12),
        "payload_len": 12,
        "macs": NONE,
    }
    syn6 = {
        "ip_version": 6,
        "src": "::1",
        "dst": "::1",
        "proto": 6,
        "sport": 50001,
        "dport": 8443,
        "ip_len": 60,
        "tcp_flags": 2,
        "win": 8192,
        "macs": NONE,
    }
    packets, _ = decode_file(CRAFTED / "null.pcap")
    assert [view(p) for p in packets] == [
        packet(ts=T0 + 4.0, **udp),  # AF_INET little-endian
        packet(ts=T0 + 4.1, **udp),  # AF_INET big-endian
        packet(ts=T0 + 4.2, **syn6),  # 24: NetBSD/OpenBSD
        packet(ts=T0 + 4.3, **syn6),  # 28: FreeBSD
        packet(ts=T0 + 4.4, **syn6),  # 30: Darwin, big-endian
        None,  # AF 7 (OSI)
    ]
    packets, _ = decode_file(CRAFTED / "loop.pcap")
    # The last one has the family in little-endian, which Wireshark's DLT_LOOP
    # reader does not accept; no other value can be meant, so we do.
    assert [view(p) for p in packets] == [
        packet(ts=T0 + 4.6, **udp),
        packet(ts=T0 + 4.7, **syn6),
        packet(ts=T0 + 4.8, **syn6),
    ]


def test_raw_ip_link_types() -> None:
    assert [view(p) for p in decode_file(CRAFTED / "raw4.pcap")[0]] == [packet(ts=T0 + 5.0, macs=NONE, **SYN4)]
    assert [view(p) for p in decode_file(CRAFTED / "raw6.pcap")[0]] == [packet(ts=T0 + 5.1, macs=NONE, **DNS6)]
    assert [view(p) for p in decode_file(CRAFTED / "raw12.pcap")[0]] == [
        packet(ts=T0 + 5.2, macs=NONE, **SYN4),
        packet(ts=T0 + 5.3, macs=NONE, **DNS6),
    ]


def test_pktap_names_the_process() -> None:
    packets, weird = decode_file(CRAFTED / "pktap.pcap")
    tls_record = b"\x17\x03\x03\x00\x10" + bytes(16)
    assert [view(p) for p in packets] == [
        packet(
            ts=T0 + 6.0,
            **{
                **SYN4,
                "sport": 51000,
                "dport": 5223,
                "tcp_flags": 0x18,
                "ack": 2000,
                "ip_len": 61,
                "payload": tls_record,
                "payload_len": 21,
            },
            proc_name="apsd",
            pid=123,
        ),
        packet(ts=T0 + 6.1, **{**SYN4, "sport": 51001, "dst": "17.253.53.203"}, proc_name="softwareupdated", pid=456),
        packet(ts=T0 + 6.2, **{**DNS6, "dport": 5353}, proc_name="nsurlsessiond", pid=789, macs=NONE),  # inner DLT 12
        None,  # record type 0: no packet behind the header
    ]
    assert not weird


def test_pcapng_darwin_process_reaches_the_packet() -> None:
    packets, _ = decode_file(CRAFTED / "darwin_process.pcapng")
    assert [(p.proc_name, p.pid) for p in packets if p is not None] == [
        ("apsd", 123),
        ("softwareupdated", 456),
        (None, None),
        (None, None),
    ]


def test_pcapng_interfaces_of_different_link_types() -> None:
    packets, weird = decode_file(CRAFTED / "multi_section.pcapng")
    cut = packet(
        ts=T0 + 8.5,
        iface=2,
        macs=COOKED,
        **{**SYN4, "tcp_flags": 0x18, "ack": 2000, "ip_len": 140, "payload": bytes(8), "payload_len": 100},
    )
    assert [view(p) for p in packets] == [
        packet(ts=T0 + 8.123456789, **SYN4),
        packet(
            ts=T0 + 8.5,
            iface=1,
            ip_version=6,
            src="2001:db8::10",
            dst="2620:149:a44::1",
            proto=6,
            sport=50003,
            dport=443,
            ip_len=60,
            tcp_flags=2,
            win=8192,
            macs=NONE,
        ),
        cut,  # SPB cut to 64 bytes by the snaplen: 8 of 100 payload bytes
        packet(ts=T0 + 9.0, iface=2, macs=COOKED, **SYN4),
        packet(ts=T0 + 9.000001, iface=2, macs=COOKED, **{**SYN4, "dport": 80}),
    ]
    assert packets[2] is not None and packets[2].truncated and packets[0] is not None and not packets[0].truncated
    assert not weird  # a snaplen cut is not an anomaly


def test_ipv4_fragments_out_of_order_overlap_and_timeout() -> None:
    packets, weird = decode_file(CRAFTED / "ipv4_frags.pcap")
    frag = {
        "ip_version": 4,
        "src": "198.51.100.53",
        "dst": "192.0.2.10",
        "proto": 17,
        "sport": 53,
        "ttl": 57,
        "df": False,
        "fragmented": True,
    }
    assert [view(p) for p in packets] == [
        None,  # last piece first
        None,
        packet(
            ts=T0 + 11.2,
            **frag,
            dport=5353,
            ip_id=0x0BAD,
            ip_len=2028,
            payload=bytes(i % 251 for i in range(2000)),
            payload_len=2000,
        ),
        None,
        None,  # overlaps bytes 16-24 of the first piece with other bytes
        # First come, first kept: the overlap's bytes 24-40 arrived before the real
        # second piece, so they stay (the classic evasion, counted twice below).
        packet(
            ts=T0 + 11.5,
            **frag,
            dport=5354,
            ip_id=0x0BAE,
            ip_len=68,
            payload=b"A" * 16 + b"B" * 16 + b"A" * 8,
            payload_len=40,
        ),
        None,  # first piece of a datagram that never completes
    ]
    assert weird == {"ip_fragment_overlap": 2, "ip_fragment_inconsistent": 2, "ip_fragment_timeout": 1}


def test_fragments_without_a_table_are_decoded_alone() -> None:
    raws = list(open_capture(CRAFTED / "ipv4_frags.pcap"))
    weird: Counter[str] = Counter()
    alone = [decode(raw, None, weird) for raw in raws[:3]]
    assert [(p.fragmented, p.sport, p.dport, len(p.payload), p.payload_len) for p in alone if p] == [
        (True, 0, 0, 408, 408),  # offset 1600: no transport header
        (True, 53, 5353, 792, 792),  # offset 0: ports, partial payload
        (True, 0, 0, 800, 800),
    ]
    assert not weird


def test_ipv6_extension_headers_fragments_ah_esp() -> None:
    packets, weird = decode_file(CRAFTED / "ipv6_frag_ext.pcap")
    v6 = {"ip_version": 6, "src": "2001:db8::10", "dst": "2620:149:a44::1"}
    assert [view(p) for p in packets] == [
        None,
        # hop-by-hop, destination options, routing, then the fragment header
        packet(
            ts=T0 + 12.1,
            **v6,
            proto=17,
            sport=5353,
            dport=443,
            ip_id=0xCAFE,
            ip_len=1872,
            fragmented=True,
            payload=bytes(i % 253 for i in range(1800)),
            payload_len=1800,
        ),
        packet(ts=T0 + 12.2, **v6, proto=6, sport=50004, dport=443, ip_len=84, tcp_flags=2, win=8192),  # behind AH
        packet(
            ts=T0 + 12.3, **v6, proto=50, ip_len=80, payload=b"\0\0\x02\0\0\0\0\x01" + b"\x99" * 32, payload_len=40
        ),  # ESP: opaque
        packet(
            ts=T0 + 12.4,
            ip_version=6,
            src="2001:db8::10",
            dst="ff02::1",
            proto=58,
            ip_len=56,
            icmp=IcmpInfo(128, 0, (7 << 16) | 9, 0, None),
        ),
    ]
    assert not weird


def test_ip_and_tcp_options() -> None:
    packets, weird = decode_file(CRAFTED / "options.pcap")
    mss, sack_ok, timestamps, nop, wscale = (
        b"\x02\x04\x05\xb4",
        b"\x04\x02",
        b"\x08\x0a" + bytes([0, 0, 0, 1, 0, 0, 0, 0]),
        b"\x01",
        b"\x03\x03\x07",
    )
    assert [view(p) for p in packets] == [
        packet(
            ts=T0 + 14.0,
            **{**SYN4, "sport": 49153, "seq": 7, "ip_id": 0x2222, "df": False, "ip_len": 64},
            tcp_options=mss + sack_ok + timestamps + nop + wscale,
        ),  # 24-byte IP header (router alert)
        packet(
            ts=T0 + 14.1,
            ip_version=4,
            src="192.0.2.10",
            dst="17.253.34.125",
            proto=17,
            sport=123,
            dport=123,
            ip_id=0x2223,
            df=False,
            ip_len=80,
            payload=b"\x23" + bytes(47),
            payload_len=48,
        ),  # 4 NOP options
    ]
    assert not weird


def test_icmp_errors_quote_the_flow() -> None:
    packets, weird = decode_file(CRAFTED / "icmp_errors.pcap")
    me, ntp_server, apns = ip_bytes("192.0.2.10"), ip_bytes("17.253.34.125"), ip_bytes("17.57.146.132")
    ntp = Quoted(4, me, ntp_server, 17, 123, 123, 0, 0x4242)
    tls = Quoted(4, me, apns, 6, 51002, 443, 0x01020304, 0x4343)
    tls6 = Quoted(6, ip_bytes("2001:db8::10"), ip_bytes("2620:149:a44::1"), 6, 51003, 443, 0x0A0B0C0D, None)
    got = [(p.src_text, p.proto, p.icmp, p.ip_len, p.payload_len) for p in packets if p]
    assert got == [
        ("203.0.113.1", 1, IcmpInfo(3, 3, 0, 0, ntp), 56, 28),  # port unreachable for NTP
        ("203.0.113.2", 1, IcmpInfo(3, 4, 1400, 1400, tls), 56, 28),  # fragmentation needed, MTU 1400
        ("203.0.113.3", 1, IcmpInfo(11, 0, 0, 0, ntp), 56, 28),  # time exceeded
        ("2001:db8::1", 58, IcmpInfo(1, 1, 0, 0, tls6), 1280, 1232),  # administratively prohibited
        ("2001:db8::2", 58, IcmpInfo(2, 0, 1280, 1280, tls6), 1280, 1232),  # packet too big
        ("192.0.2.10", 1, IcmpInfo(8, 0, (0x77 << 16) | 3, 0, None), 32, 4),  # echo: no quote
    ]
    assert all(p is not None and p.icmp is not None for p in packets)
    assert [p.icmp.is_error for p in packets if p and p.icmp] == [True] * 5 + [False]
    assert not weird


# --- real frames from the corpus -----------------------------------------------------------


def test_real_icmp_port_unreachable_from_an_iphone() -> None:
    raws = list(open_capture(CORPUS / "ndpi/tests/cfgs/default/pcap/iphone.pcap"))
    p = decode(raws[192])
    assert p is not None and p.icmp is not None
    assert (p.src_text, p.dst_text, p.proto, p.icmp.type, p.icmp.code) == ("192.168.2.17", "192.168.2.1", 1, 3, 3)
    q = p.icmp.quoted
    assert q is not None
    assert (ip_text(q.src), ip_text(q.dst), q.proto, q.sport, q.dport) == ("192.168.2.1", "192.168.2.17", 17, 53, 63377)


def test_real_sll2_pings() -> None:
    packets, weird = decode_file(CORPUS / "zeek/testing/btest/Traces/linux_dlt_sll2.pcap")
    assert [
        (p.ip_version, p.src_text, p.dst_text, p.proto, p.icmp.type, p.ttl, p.ip_len) for p in packets if p and p.icmp
    ] == [
        (4, "192.0.2.1", "192.0.2.1", 1, 8, 64, 84),
        (4, "192.0.2.1", "192.0.2.1", 1, 0, 64, 84),
        (6, "fe80::8c36:6ff:fe44:acaf", "fe80::8c36:6ff:fe44:acaf", 58, 128, 64, 104),
        (6, "fe80::8c36:6ff:fe44:acaf", "fe80::8c36:6ff:fe44:acaf", 58, 129, 64, 104),
    ]
    assert packets[4:] == [None, None]  # ARP, RARP
    assert not weird


def test_real_vlans() -> None:
    packets, _ = decode_file(CORPUS / "suricata-verify/tests/eve-flow-vlan/input.pcap")
    assert [p.vlan for p in packets if p] == [(6,), (1, 10)]  # Suricata: flows with vlan [6] and [1, 10]
    packets, _ = decode_file(CORPUS / "zeek/testing/btest/Traces/http-vlan-0.pcap")
    assert {p.vlan for p in packets if p} == {(0,)}  # Zeek: vlan 0


def test_real_truncated_ethernet_frame() -> None:
    packets, weird = decode_file(CORPUS / "zeek/testing/btest/Traces/trunc/trunc-hdr.pcap")
    assert packets == [None] and weird == {"truncated_ethernet": 1}


def test_real_tso_segments_use_the_captured_length() -> None:
    # ja4 browsers-x509: offloaded segments captured before the NIC split them;
    # three of them carry IP total length 0 (frames 12, 41, 48).
    weird: Counter[str] = Counter()
    zero_length = []
    for number, raw in enumerate(open_capture(CORPUS / "ja4/pcap/browsers-x509.pcapng"), start=1):
        before = weird["ip_total_length_zero"]
        p = decode(raw, None, weird)
        if weird["ip_total_length_zero"] > before:
            assert p is not None
            zero_length.append((number, p.proto, p.ip_len, len(raw.data) - 14, len(p.payload), p.payload_len))
    assert zero_length == [
        (12, 6, 2133, 2133, 2093, 2093),
        (41, 6, 2002, 2002, 1962, 1962),
        (48, 6, 1607, 1607, 1567, 1567),
    ]


# --- tshark as the oracle ------------------------------------------------------------------

_L4 = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "esp": 50, "sctp": 132, "gre": 47, "igmp": 2}
_FIELDS = [
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "tcp.payload",
    "udp.payload",
]
Tuple5 = tuple[int, str, str, int | None, int | None, int | None]
Frame = tuple[Tuple5, str] | None
"""tshark's view of one frame: its 5-tuple and TCP/UDP payload (hex), or None if no IP."""


CUT_SHORT = {CORPUS / r["file"] for r in RECORDS
             if any("cut short" in e for e in r["facts"].get("tshark", {}).get("capinfos_error", []))}


@cache
def tshark_frames(path: Path) -> list[Frame]:
    """(IP version, src, dst, L4 protocol, sport, dport) and payload per frame, as tshark sees them.

    First occurrences only: the outer IP header of ICMP errors and tunnels,
    the quoted transport header of ICMP errors.
    """
    assert TSHARK is not None
    cmd = [TSHARK, "-r", str(path), "-T", "fields", "-E", "occurrence=f"]
    for field in _FIELDS:
        cmd += ["-e", field]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    # tshark exits 2 after the packets it could read of a capture cut short; any other failure means the
    # oracle did not run, and a comparison against nothing must not pass.
    if proc.returncode != 0 and not (proc.returncode == 2 and path in CUT_SHORT):
        pytest.fail(f"tshark exited {proc.returncode} on {path.name}: {proc.stderr.strip()}", pytrace=False)
    out = proc.stdout
    rows: list[Frame] = []
    for line in out.splitlines():
        row = dict(zip(_FIELDS, line.split("\t"), strict=True))
        layers = row["frame.protocols"].split(":")
        ip_layers = [i for i, name in enumerate(layers) if name in ("ip", "ipv6")]
        if not ip_layers:
            rows.append(None)
            continue
        first = ip_layers[0]
        version = 4 if layers[first] == "ip" else 6
        proto = next((_L4[name] for name in layers[first + 1 :] if name in _L4), None)
        src, dst = (row["ip.src"], row["ip.dst"]) if version == 4 else (row["ipv6.src"], row["ipv6.dst"])
        ports: tuple[int | None, int | None] = (None, None)
        if proto in (6, 1, 58) and row["tcp.srcport"]:
            ports = int(row["tcp.srcport"]), int(row["tcp.dstport"])
        elif proto in (17, 1, 58) and row["udp.srcport"]:
            ports = int(row["udp.srcport"]), int(row["udp.dstport"])
        payload = row["tcp.payload"] if proto == 6 else row["udp.payload"] if proto == 17 else ""
        rows.append(((version, src, dst, proto, *ports), payload))
    return rows


def our_tuple(p: Packet) -> Tuple5:
    ports: tuple[int | None, int | None] = (None, None)
    if p.proto in (6, 17):
        ports = p.sport, p.dport
    elif p.icmp and p.icmp.quoted and p.icmp.quoted.proto in (6, 17) and p.icmp.quoted.sport:
        ports = p.icmp.quoted.sport, p.icmp.quoted.dport
    return (p.ip_version, p.src_text, p.dst_text, p.proto, *ports)


DIFF_FILES = [CORPUS / r["file"] for r in RECORDS if r["id"] != "sv-der-incomplete"] + sorted(
    path for path in CRAFTED.glob("*.pcap*") if path.name != "not_a_capture.pcap"
)


@pytest.fixture(scope="module")
def tshark_all() -> dict[Path, list[Frame]]:
    if TSHARK is None:
        pytest.skip("tshark not installed")
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(DIFF_FILES, pool.map(tshark_frames, DIFF_FILES), strict=True))


def test_a_failing_tshark_fails_the_oracle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shim = tmp_path / "tshark"
    shim.write_text('#!/bin/sh\necho "tshark: broken on purpose" >&2\nexit 1\n')
    shim.chmod(0o755)
    monkeypatch.setitem(globals(), "TSHARK", str(shim))  # tshark_frames reads the module's TSHARK
    with pytest.raises(pytest.fail.Exception, match="broken on purpose"):
        tshark_frames.__wrapped__(DIFF_FILES[0])


@pytest.mark.parametrize("path", DIFF_FILES, ids=[p.name for p in DIFF_FILES])
def test_five_tuples_and_payloads_equal_tsharks(path: Path, tshark_all: dict[Path, list[Frame]]) -> None:
    expected = tshark_all[path]
    packets, _ = decode_file(path)
    assert len(packets) == len(expected)
    compared = payloads = 0
    for number, (ours, theirs) in enumerate(zip(packets, expected, strict=True), start=1):
        where = f"{path.name} frame {number}"
        if ours is None:
            # Fragments held for reassembly show up in tshark as IP with undecoded data.
            assert theirs is None or theirs[0][3] is None, where
            continue
        if theirs is None:
            assert path.name == "loop.pcap" and number == 3, where  # see test_bsd_loopback...
            continue
        five, payload = theirs
        if five[3] is None and ours.proto not in (6, 17, 1, 58):
            five = (*five[:3], ours.proto, None, None)  # tshark names no layer for this protocol
        assert our_tuple(ours) == five, where
        compared += 1
        if payload:  # tshark shows no payload field for an empty one
            assert ours.payload.hex() == payload, where
            payloads += 1
    assert compared or not any(expected)
    if "wikipedia" in path.name:
        assert (compared, payloads) == (126, 78)  # 136 frames, 10 not IP: the test really compares


# --- fragment table -------------------------------------------------------------------


def test_fragment_table_limits() -> None:
    table: FragmentTable[str] = FragmentTable(max_datagrams=2, timeout=10.0, max_size=100, max_fragments=3)
    weird: Counter[str] = Counter()
    assert table.add("a", 0, True, b"x" * 8, 0.0, "meta-a", weird) is None
    assert table.add("b", 0, True, b"y" * 8, 1.0, "meta-b", weird) is None
    assert table.add("c", 0, True, b"z" * 8, 2.0, "meta-c", weird) is None  # evicts "a"
    assert weird == {"ip_fragment_table_full": 1} and len(table) == 2
    assert table.add("a", 8, False, b"x" * 8, 3.0, "meta-a2", weird) is None  # "a" is gone: starts anew
    assert table.add("c", 8, False, b"z" * 8, 4.0, "meta-c2", weird) == ("meta-c", b"z" * 16)
    assert table.add("b", 96, False, b"y" * 8, 5.0, "m", weird) is None  # ends past 100
    assert weird["ip_fragment_too_large"] == 1
    assert table.add("d", 0, True, b"1" * 8, 6.0, "m", weird) is None
    assert table.add("d", 8, True, b"2" * 8, 6.0, "m", weird) is None
    assert table.add("d", 8, True, b"2" * 8, 6.0, "m", weird) is None
    assert table.add("d", 16, False, b"3" * 8, 6.0, "m", weird) is None  # a 4th piece
    assert weird["ip_fragment_too_many"] == 1
    assert table.add("e", 0, True, b"e" * 8, 30.0, "m", weird) is None  # "a" (t=3) times out
    assert weird["ip_fragment_timeout"] == 1
    assert table.flush(weird) == 1 and weird["ip_fragment_timeout"] == 2 and len(table) == 0


def test_fragment_table_first_bytes_win() -> None:
    table: FragmentTable[int] = FragmentTable()
    weird: Counter[str] = Counter()
    assert table.add("k", 8, True, b"BBBBBBBB", 0.0, 1, weird) is None
    assert table.add("k", 4, True, b"CCCCCCCC", 0.0, 2, weird) is None  # 8..12 overlap, differ
    assert table.add("k", 16, False, b"DD", 0.0, 3, weird) is None
    assert table.add("k", 0, True, b"AAAA", 0.0, 4, weird) == (4, b"AAAACCCCBBBBBBBBDD")
    assert weird == {"ip_fragment_overlap": 1, "ip_fragment_inconsistent": 1}


# --- damage never raises --------------------------------------------------------------


@lru_cache(maxsize=1)
def sample_frames() -> list[RawPacket]:
    frames: list[RawPacket] = []
    for path in sorted(CRAFTED.glob("*.pcap")) + [CORPUS / "ndpi/tests/cfgs/default/pcap/iphone.pcap"]:
        if path.name != "not_a_capture.pcap":
            frames += list(open_capture(path))[:40]
    return frames


@settings(max_examples=600, deadline=None)
@given(
    index=st.integers(min_value=0),
    cut=st.integers(min_value=0, max_value=2000),
    flips=st.lists(st.tuples(st.integers(min_value=0, max_value=200), st.integers(0, 255)), max_size=6),
    linktype=st.sampled_from([None, *LINK_DECODERS, 147]),
)
def test_mutated_frames_decode_or_count_a_weird(
    index: int, cut: int, flips: list[tuple[int, int]], linktype: int | None
) -> None:
    frames = sample_frames()
    raw = frames[index % len(frames)]
    data = bytearray(raw.data[:cut])
    for pos, value in flips:
        if data:
            data[pos % len(data)] = value
    mutant = raw._replace(data=bytes(data), linktype=raw.linktype if linktype is None else linktype)
    weird: Counter[str] = Counter()
    table: FragmentTable[tuple[int, int, int, int]] = FragmentTable()
    p = decode(mutant, table, weird)
    assert p is None or isinstance(p, Packet)
    if p is not None:
        assert p.ip_version in (4, 6) and len(p.src) == len(p.dst) == (4 if p.ip_version == 4 else 16)
        assert 0 <= p.sport < 65536 and 0 <= p.dport < 65536


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from(sorted(LINK_DECODERS)))
def test_random_frames_decode_or_count_a_weird(data: bytes, linktype: int) -> None:
    weird: Counter[str] = Counter()
    p = decode(RawPacket(0.0, linktype, data, len(data)), FragmentTable(), weird)
    assert p is None or isinstance(p, Packet)
    assert sum(weird.values()) <= 2


def test_unknown_linktype_is_counted() -> None:
    weird: Counter[str] = Counter()
    assert decode(RawPacket(0.0, 147, b"\0" * 40, 40), None, weird) is None
    assert weird == {"unknown_linktype_147": 1}


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (bytes.fromhex("0200000000000200000000000800") + bytes.fromhex("4500"), "truncated_ip_header"),
        (bytes.fromhex("0200000000000200000000000800") + bytes.fromhex("65") + bytes(19), "bad_ip_version"),
        (
            bytes.fromhex("0200000000000200000000000800") + bytes.fromhex("4400001400000000400600000a0000010a000002"),
            "bad_ip_header_length",
        ),
        (
            bytes.fromhex("0200000000000200000000000800") + bytes.fromhex("4500001000000000400600000a0000010a000002"),
            "bad_ip_total_length",
        ),
        (
            bytes.fromhex("0200000000000200000000000800")
            + bytes.fromhex("4500001e00000000400600000a0000010a000002")
            + bytes(10),
            "truncated_tcp_header",
        ),
        (
            bytes.fromhex("0200000000000200000000000800")
            + bytes.fromhex("4500002800000000400600000a0000010a000002")
            + bytes.fromhex("0001000200000000000000004002ffff00000000"),
            "bad_tcp_header_length",
        ),
        (
            bytes.fromhex("0200000000000200000000000800")
            + bytes.fromhex("4500001800000000401100000a0000010a000002")
            + bytes(4),
            "truncated_udp_header",
        ),
        (bytes.fromhex("020000000000020000000000") + bytes.fromhex("8100"), "truncated_vlan_header"),
        (bytes.fromhex("0200000000000200000000008864") + bytes.fromhex("2100000000020021"), "bad_pppoe_version"),
        (
            bytes.fromhex("0200000000000200000000000800")
            + bytes.fromhex("4500001800000000400100000a0000010a000002")
            + bytes(4),
            "truncated_icmp_header",
        ),
    ],
)
def test_malformed_frames_name_their_weird(frame: bytes, kind: str) -> None:
    weird: Counter[str] = Counter()
    assert decode(RawPacket(0.0, 1, frame, len(frame)), None, weird) is None
    assert weird == {kind: 1}


def test_survivable_anomalies_are_counted_and_decoded() -> None:
    eth = bytes.fromhex("0200000000000200000000000800")
    weird: Counter[str] = Counter()
    # UDP length 20 inside a 28-byte IP payload, then 8 bytes of padding.
    ip = bytes.fromhex("4500003000000000401100000a0000010a000002")
    udp = bytes.fromhex("0035d6d800140000") + b"x" * 12 + b"PADPADPA"
    p = decode(RawPacket(0.0, 1, eth + ip + udp, 62), None, weird)
    assert p is not None and p.payload == b"x" * 12 and p.payload_len == 12
    assert weird == {"udp_length_mismatch": 1}
    # IP says 60 bytes, the (uncut) frame has 40: decoded, counted.
    weird.clear()
    ip = bytes.fromhex("4500003c00000000400600000a0000010a000002")
    tcp = bytes.fromhex("0001000200000000000000005002ffff00000000")
    p = decode(RawPacket(0.0, 1, eth + ip + tcp, 54), None, weird)
    assert p is not None and p.payload_len == 20 and p.truncated and weird == {"truncated_ip": 1}
    # The same frame cut by a snaplen (wire length 74) is no anomaly.
    weird.clear()
    assert decode(RawPacket(0.0, 1, eth + ip + tcp, 74), None, weird) is not None and not weird


def test_ip_text_round_trip() -> None:
    for text in ("192.0.2.10", "2001:db8::10", "::1", "fe80::8c36:6ff:fe44:acaf"):
        assert ip_text(ip_bytes(text)) == text
    with pytest.raises(ValueError, match="not an IP address"):
        ip_bytes("apple.com")


@pytest.mark.slow
def test_decoding_speed(tmp_path: Path) -> None:
    """Read and decode 100k real frames at >= 100k packets/s (about 300k/s measured; see the report)."""
    source = (CORPUS / "zeek/testing/btest/Traces/ssh/ssh.client-side-half-duplex.pcap").read_bytes()
    path = tmp_path / "big.pcap"
    path.write_bytes(source[:24] + source[24:] * 120)
    start = time.process_time()
    decoder = Decoder()
    decoded = sum(1 for raw in open_capture(path) if decoder(raw) is not None)
    elapsed = time.process_time() - start
    assert decoded == 838 * 120
    assert decoded / elapsed >= 100_000, f"{decoded / elapsed:,.0f} packets/s"
