"""Tiny dpkt-based TCP stream reassembler for tests only.

The real engine (flows/) is built elsewhere; this helper exists so protocol
tests can pull the in-order payload of each direction of a TCP connection out
of a corpus capture without depending on that engine. It keys connections by
4-tuple, orders segments by sequence number relative to the initial sequence
number (the SYN's, when seen), drops retransmitted bytes and stops a direction
at the first hole, which is what the engine hands the TLS layer too.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from pathlib import Path

import dpkt

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
LOCAL = Path(__file__).parent / "fixtures" / "local"
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "mixed_session.pcap"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_CAPTURES = sorted(
    p for p in FIXTURES.rglob("*")
    if p.suffix in (".pcap", ".pcapng", ".cap", ".gz") and "not_a_capture" not in p.name
    and "fuzz" not in p.relative_to(FIXTURES).parts
)
"""Every capture under tests/fixtures (corpus, crafted, local), for tests that run them all. Not the
fuzzers' finds under fixtures/fuzz: damaged on purpose, so peers such as tshark refuse them."""

Endpoint = tuple[str, int]

_RAW_LINKTYPES = {12, 14, 101}
_NULL_LINKTYPES = {0, 108}


@dataclasses.dataclass
class _Half:
    isn: int | None = None
    first_seq: int | None = None
    segments: list[tuple[int, bytes]] = dataclasses.field(default_factory=list)
    order: list[int] = dataclasses.field(
        default_factory=list
    )  # global packet index per segment
    syn_seen: bool = False


@dataclasses.dataclass
class TCPConn:
    client: Endpoint
    server: Endpoint
    client_data: bytes
    server_data: bytes
    client_gap: bool
    server_gap: bool
    # Capture order of data segments: (from_client, bytes of that direction
    # contiguously delivered after the segment), for ordering events across directions.
    arrival: list[tuple[bool, int]] = dataclasses.field(default_factory=list)

    def label(self) -> str:
        return f"{_fmt(self.client)}->{_fmt(self.server)}"


def _fmt(ep: Endpoint) -> str:
    ip, port = ep
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _ip_from_link(linktype: int, frame: bytes) -> dpkt.Packet | None:
    try:
        if linktype == 1:
            eth = dpkt.ethernet.Ethernet(frame)
            inner = eth.data
        elif linktype in _NULL_LINKTYPES:
            inner = frame[4:]
        elif linktype in _RAW_LINKTYPES:
            inner = frame
        elif linktype == 113:
            inner = frame[16:]
        elif linktype == 276:
            inner = frame[20:]
        else:
            return None
        if isinstance(inner, (dpkt.ip.IP, dpkt.ip6.IP6)):
            return inner
        if not isinstance(inner, bytes) or not inner:
            return None
        version = inner[0] >> 4
        if version == 4:
            return dpkt.ip.IP(inner)
        if version == 6:
            return dpkt.ip6.IP6(inner)
    except (dpkt.UnpackError, IndexError, ValueError):
        return None
    return None


def _addr(ip: dpkt.Packet, raw: bytes) -> str:
    family = socket.AF_INET6 if isinstance(ip, dpkt.ip6.IP6) else socket.AF_INET
    return str(ipaddress.ip_address(socket.inet_ntop(family, raw)))


def _packets(path: Path) -> list[tuple[int, bytes]]:
    with path.open("rb") as fh:
        magic = fh.read(4)
        fh.seek(0)
        reader: dpkt.pcap.Reader | dpkt.pcapng.Reader
        if magic == b"\x0a\x0d\x0d\x0a":
            reader = dpkt.pcapng.Reader(fh)
        else:
            reader = dpkt.pcap.Reader(fh)
        linktype = reader.datalink()
        out: list[tuple[int, bytes]] = []
        try:
            for _ts, frame in reader:
                out.append((linktype, bytes(frame)))
        except (dpkt.NeedData, dpkt.UnpackError, ValueError):
            pass  # file cut short: keep what was read
        return out


def _assemble(half: _Half) -> tuple[bytes, bool]:
    base = half.isn + 1 if half.isn is not None else half.first_seq
    if base is None:
        return b"", False
    out = bytearray()
    gap = False
    for rel, payload in sorted(((s - base) % (1 << 32), p) for s, p in half.segments):
        if rel > len(out):
            gap = True
            break
        out += payload[len(out) - rel :]
    return bytes(out), gap


def tcp_streams(path: Path | str) -> list[TCPConn]:
    """Reassembled TCP connections of a capture, in order of first packet."""
    p = Path(path)
    if not p.is_absolute():
        p = CORPUS / p
    halves: dict[tuple[Endpoint, Endpoint], _Half] = {}
    order: list[frozenset[Endpoint]] = []
    packet_index = 0
    client_of: dict[frozenset[Endpoint], Endpoint] = {}
    for linktype, frame in _packets(p):
        ip = _ip_from_link(linktype, frame)
        if ip is None or not isinstance(ip.data, dpkt.tcp.TCP):
            continue
        tcp = ip.data
        src = (_addr(ip, ip.src), tcp.sport)
        dst = (_addr(ip, ip.dst), tcp.dport)
        key = frozenset((src, dst))
        if key not in client_of:
            order.append(key)
            syn_only = tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK
            synack = tcp.flags & dpkt.tcp.TH_SYN and tcp.flags & dpkt.tcp.TH_ACK
            if syn_only:
                client_of[key] = src
            elif synack:
                client_of[key] = dst
            else:  # mid-stream start: the lower port is most likely the server
                client_of[key] = src if tcp.sport > tcp.dport else dst
        half = halves.setdefault((src, dst), _Half())
        if tcp.flags & dpkt.tcp.TH_SYN:
            half.isn = tcp.seq
            half.syn_seen = True
        data = bytes(tcp.data)
        if data:
            seq = (tcp.seq + 1) % (1 << 32) if tcp.flags & dpkt.tcp.TH_SYN else tcp.seq
            if half.first_seq is None:
                half.first_seq = seq
            half.segments.append((seq, data))
            half.order.append(packet_index)
            packet_index += 1
    conns: list[TCPConn] = []
    for key in order:
        client = client_of[key]
        (server,) = key - {client} if len(key) == 2 else (client,)
        chalf = halves.get((client, server), _Half())
        shalf = halves.get((server, client), _Half())
        cdata, cgap = _assemble(chalf)
        sdata, sgap = _assemble(shalf)
        arrival = sorted(_arrival(chalf, True) + _arrival(shalf, False))
        conns.append(
            TCPConn(
                client,
                server,
                cdata,
                sdata,
                cgap,
                sgap,
                [(fc, n) for _, fc, n in arrival],
            )
        )
    return conns


def _arrival(half: _Half, from_client: bool) -> list[tuple[int, bool, int]]:
    """(packet index, from_client, contiguous bytes after it) for each data segment."""
    base = half.isn + 1 if half.isn is not None else half.first_seq
    if base is None:
        return []
    have: list[tuple[int, int]] = []
    out = []
    for idx, (seq, payload) in zip(half.order, half.segments):
        rel = (seq - base) % (1 << 32)
        have.append((rel, rel + len(payload)))
        end = 0
        for start, stop in sorted(have):
            if start > end:
                break
            end = max(end, stop)
        out.append((idx, from_client, end))
    return out


def find_conn(conns: list[TCPConn], orig: str, resp: str) -> TCPConn:
    for c in conns:
        if _fmt(c.client) == orig and _fmt(c.server) == resp:
            return c
        if _fmt(c.client) == resp and _fmt(c.server) == orig:
            return c
    raise KeyError(f"{orig} -> {resp} not in capture")
