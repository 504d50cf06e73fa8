"""Link, IP and transport decode of one captured frame into a `Packet`.

`decode(raw, frags, weird)` turns a `RawPacket` into a `Packet` (or None for
frames that carry no IP datagram, fragments still waiting for the rest of
their datagram, and malformed frames). Malformed input never raises: its
anomaly is counted in `weird` under a short name (listed in `WEIRDS`).

Link types are a registry (`LINK_DECODERS`: LINKTYPE_ value -> function)
whose entries find where the IP header starts: Ethernet (802.1Q, QinQ
0x88a8/0x9100, VLAN 0, PPPoE sessions), Linux SLL and SLL2, raw IP, BSD
null/loopback and OpenBSD loop, PPP, and Apple PKTAP (which carries the
process name and pid and dispatches to its inner DLT). Each also says which
link-layer addresses the frame carries (`Packet.macs`): Ethernet's two, the
sender's alone in Linux cooked captures. ARP frames are not IP: with an `arp`
list, `decode` appends them there (`ArpFrame`) for the neighbour tracker.

This is the hot path: fields are read with precompiled `struct` unpackers at
fixed offsets on the frame's bytes, and `Packet` is a NamedTuple built with
`tuple.__new__` (a frozen dataclass costs several times more per packet).
"""

from __future__ import annotations

import functools
import socket
import struct
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

from analyzer.capture.ipfrag import FragmentTable
from analyzer.capture.reader import ProcessInfo, RawPacket

__all__ = [
    "LINK_DECODERS",
    "WEIRDS",
    "ArpFrame",
    "Decoder",
    "FragmentTable",
    "IcmpInfo",
    "LinkDecoder",
    "Packet",
    "Quoted",
    "decode",
    "ip_bytes",
    "ip_text",
    "mac_text",
]

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_PPPOE_SESSION = 0x8864
ETH_ARP = 0x0806
ARPHRD_ETHER = 1
_VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
MAX_VLAN_TAGS = 8
MAX_IPV6_EXT_HEADERS = 16

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_FRAGMENT = 44
PROTO_ESP = 50
PROTO_AH = 51
PROTO_ICMPV6 = 58
PROTO_NONE = 59
# IPv6 extension headers that share the (next header, length in 8-octet units) layout,
# plus the fragment header and AH; ESP ends the walk (its content is opaque).
_V6_EXT = frozenset({0, 43, PROTO_FRAGMENT, PROTO_AH, 60, 135, 139, 140})
_ICMP4_ERRORS = frozenset({3, 4, 5, 11, 12})
_ICMP6_ERRORS = frozenset({1, 2, 3, 4})
_PORTS_PROTOS = frozenset({PROTO_TCP, PROTO_UDP, 132, 136})  # TCP, UDP, SCTP, UDP-Lite

WEIRDS: dict[str, str] = {
    "unknown_linktype_<n>": "no decoder for this link type",
    "truncated_ethernet": "frame shorter than an Ethernet header",
    "truncated_vlan_header": "frame ends inside an 802.1Q tag",
    "too_many_vlan_tags": f"more than {MAX_VLAN_TAGS} stacked VLAN tags",
    "truncated_pppoe": "frame ends inside a PPPoE session header",
    "bad_pppoe_version": "PPPoE version/type other than 1/1",
    "truncated_ppp": "frame ends inside a PPP header",
    "truncated_sll": "frame shorter than a Linux cooked (SLL) header",
    "truncated_sll2": "frame shorter than a Linux cooked v2 (SLL2) header",
    "truncated_null": "frame shorter than a BSD loopback header",
    "truncated_pktap": "frame shorter than its PKTAP header",
    "bad_pktap_header_length": "PKTAP header length below 108 bytes",
    "truncated_ip_header": "frame ends inside the IPv4/IPv6 header",
    "bad_ip_version": "IP version field does not match the link layer's claim",
    "bad_ip_header_length": "IPv4 header length below 20 bytes",
    "bad_ip_total_length": "IPv4 total length below its header length",
    "ip_total_length_zero": "IP length 0 (segmentation offload): captured length used",
    "truncated_ip": "frame (not cut by a snaplen) shorter than the IP length",
    "truncated_ipv6_ext_header": "frame ends inside an IPv6 extension header",
    "ipv6_too_many_ext_headers": f"more than {MAX_IPV6_EXT_HEADERS} IPv6 extension headers",
    "ip_fragment_truncated": "fragment cut by the snaplen: decoded alone, not reassembled",
    "truncated_tcp_header": "frame ends inside the TCP header",
    "bad_tcp_header_length": "TCP data offset below 5 or beyond the segment",
    "truncated_udp_header": "frame ends inside the UDP header",
    "bad_udp_length": "UDP length below 8",
    "udp_length_mismatch": "UDP length differs from the IP payload length",
    "truncated_icmp_header": "frame ends inside the ICMP header",
    "ip_fragment_overlap": "fragment overlaps bytes received before (first kept)",
    "ip_fragment_inconsistent": "overlapping fragment bytes or datagram ends differ",
    "ip_fragment_timeout": "datagram dropped incomplete after the timeout",
    "ip_fragment_table_full": "oldest pending datagram evicted for a new one",
    "ip_fragment_too_large": "fragment ends past the maximum datagram size",
    "ip_fragment_too_many": "datagram in too many pieces",
}


class _Weird(Exception):
    """Internal: a malformed frame; `decode` counts it and returns None."""

    def __init__(self, kind: str) -> None:
        self.kind = kind


class Quoted(NamedTuple):
    """The offending datagram's header as quoted by an ICMP/ICMPv6 error."""

    ip_version: int
    src: bytes
    dst: bytes
    proto: int
    sport: int
    """0 when the quote is too short or the protocol has no ports."""
    dport: int
    seq: int
    """TCP sequence number of the quoted segment (0 if absent)."""
    ip_id: int | None


class IcmpInfo(NamedTuple):
    """ICMP or ICMPv6 header; `quoted` is set for error messages."""

    type: int
    code: int
    rest: int
    """The 32-bit field after the checksum (echo id/seq, MTU, pointer...)."""
    mtu: int
    """Next-hop MTU of 'fragmentation needed' (v4 3/4) or 'packet too big' (v6 2); else 0."""
    quoted: Quoted | None

    @property
    def is_error(self) -> bool:
        return self.quoted is not None


class Packet(NamedTuple):
    """One IP datagram with its transport header, ready for the flow table.

    Addresses are raw bytes (4 or 16); `ip_text` renders them. Fields of a
    transport the datagram does not carry are 0 / b"" / None.
    """

    ts: float
    ip_version: int
    src: bytes
    dst: bytes
    proto: int
    """Transport protocol after IPv6 extension headers (6 TCP, 17 UDP, 1/58 ICMP...)."""
    ttl: int
    """IPv4 TTL or IPv6 hop limit."""
    ip_id: int | None
    """IPv4 identification; IPv6 fragment identification if any, else None."""
    df: bool
    """IPv4 don't-fragment bit; True for IPv6 (routers never fragment it)."""
    ip_len: int
    """Datagram length from the IP header (IPv6: 40 + payload length; reassembled: whole)."""
    sport: int
    dport: int
    tcp_flags: int
    """The 8-bit TCP flags byte (FIN 0x01 ... CWR 0x80); the reserved/AE bits are left out."""
    seq: int
    ack: int
    win: int
    tcp_options: bytes
    payload: bytes
    """Transport payload as captured (ICMP: the bytes after its 8-byte header)."""
    payload_len: int
    """Transport payload length on the wire per the headers (> len(payload) if cut by a snaplen)."""
    icmp: IcmpInfo | None
    vlan: tuple[int, ...]
    """VLAN ids outermost first (VLAN 0 = priority tag)."""
    iface: int
    proc_name: str | None
    pid: int | None
    fragmented: bool
    """Reassembled from fragments, or (without a fragment table) one fragment."""
    macs: bytes = b""
    """Link-layer addresses as the frame has them: 12 bytes (Ethernet destination, then
    source), 6 (Linux cooked capture: the sender's only) or none (raw IP, loopback, PPP)."""

    @property
    def src_mac(self) -> bytes | None:
        """The frame's Ethernet source address (the sender, or the last router), if the link has one."""
        macs = self.macs
        return macs[6:] if len(macs) == 12 else macs if macs else None

    @property
    def dst_mac(self) -> bytes | None:
        macs = self.macs
        return macs[:6] if len(macs) == 12 else None

    @property
    def truncated(self) -> bool:
        """The capture holds less of the payload than was sent (snaplen)."""
        return len(self.payload) < self.payload_len

    @property
    def src_text(self) -> str:
        return ip_text(self.src)

    @property
    def dst_text(self) -> str:
        return ip_text(self.dst)


class ArpFrame(NamedTuple):
    """An ARP frame kept for the neighbour tracker: the ARP message and the link's addresses."""

    ts: float
    data: bytes
    """The ARP message (after the Ethernet and VLAN headers), as captured."""
    macs: bytes
    """As `Packet.macs`."""


def mac_text(mac: bytes) -> str:
    """"aa:bb:cc:dd:ee:ff" (lower case) of a 6-byte address."""
    return mac.hex(":")


def ip_text(addr: bytes) -> str:
    """Dotted-quad or RFC 5952 text of a 4- or 16-byte address."""
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


ip_text_cached = functools.lru_cache(maxsize=4096)(ip_text)
"""`ip_text` for the per-flow and per-DNS-message paths, where a few addresses recur."""


def ip_bytes(text: str) -> bytes:
    """Inverse of `ip_text`; raises ValueError for text that is no address."""
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    except OSError as exc:
        raise ValueError(f"not an IP address: {text!r}") from exc


# --- link layer ------------------------------------------------------------------

_Link = tuple[int, int, tuple[int, ...], ProcessInfo | None, bytes]
"""(ethertype of the IP (or ARP) layer, its offset, VLAN ids, process from a PKTAP header,
link-layer addresses as `Packet.macs`)."""
LinkDecoder = Callable[[bytes, int], _Link | None]
"""Given a frame and where its link header starts: where IP starts, or None if not IP."""

_NO_VLAN: tuple[int, ...] = ()


def _ethertype(d: bytes, off: int, etype: int, macs: bytes) -> _Link | None:
    """Follow VLAN tags and PPPoE sessions from `etype` at `off` to IPv4/IPv6 (or ARP)."""
    vlan = _NO_VLAN
    while etype in _VLAN_TPIDS:
        if len(d) < off + 4:
            raise _Weird("truncated_vlan_header")
        if len(vlan) >= MAX_VLAN_TAGS:
            raise _Weird("too_many_vlan_tags")
        vlan += (((d[off] << 8) | d[off + 1]) & 0x0FFF,)
        etype = (d[off + 2] << 8) | d[off + 3]
        off += 4
    if etype == ETH_IPV4 or etype == ETH_IPV6 or etype == ETH_ARP:
        return etype, off, vlan, None, macs
    if etype == ETH_PPPOE_SESSION:
        if len(d) < off + 8:
            raise _Weird("truncated_pppoe")
        if d[off] != 0x11:
            raise _Weird("bad_pppoe_version")
        if d[off + 1] != 0:  # only session data (code 0) carries PPP frames
            return None
        net = _ppp_protocol(d, off + 6)
        if net is None:
            return None
        return net[0], net[1], vlan, None, macs
    return None


def _ether(d: bytes, off: int) -> _Link | None:
    if len(d) < off + 14:
        raise _Weird("truncated_ethernet")
    etype = (d[off + 12] << 8) | d[off + 13]
    if etype == ETH_IPV6 or etype == ETH_IPV4:
        return etype, off + 14, _NO_VLAN, None, d[off : off + 12]
    return _ethertype(d, off + 14, etype, d[off : off + 12])


def _ppp_protocol(d: bytes, off: int) -> tuple[int, int] | None:
    """PPP protocol field (1 byte if compressed: odd first byte) -> (ethertype, IP offset)."""
    if len(d) <= off:
        raise _Weird("truncated_ppp")
    if d[off] & 1:
        proto, off = d[off], off + 1
    else:
        if len(d) < off + 2:
            raise _Weird("truncated_ppp")
        proto, off = (d[off] << 8) | d[off + 1], off + 2
    if proto == 0x21:
        return ETH_IPV4, off
    if proto == 0x57:
        return ETH_IPV6, off
    return None


def _ppp(d: bytes, off: int) -> _Link | None:
    # Address/control 0xff 0x03 may be compressed away (RFC 1661 ACFC).
    if len(d) >= off + 2 and d[off] == 0xFF and d[off + 1] == 0x03:
        off += 2
    net = _ppp_protocol(d, off)
    return None if net is None else (net[0], net[1], _NO_VLAN, None, b"")


def _sll(d: bytes, off: int) -> _Link | None:
    if len(d) < off + 16:
        raise _Weird("truncated_sll")
    # The address field is the sender's, for packets sent and received alike.
    ether = d[off + 2] == 0 and d[off + 3] == ARPHRD_ETHER and d[off + 4] == 0 and d[off + 5] == 6
    return _ethertype(d, off + 16, (d[off + 14] << 8) | d[off + 15], d[off + 6 : off + 12] if ether else b"")


def _sll2(d: bytes, off: int) -> _Link | None:
    if len(d) < off + 20:
        raise _Weird("truncated_sll2")
    ether = d[off + 8] == 0 and d[off + 9] == ARPHRD_ETHER and d[off + 11] == 6
    return _ethertype(d, off + 20, (d[off] << 8) | d[off + 1], d[off + 12 : off + 18] if ether else b"")


def _raw(d: bytes, off: int) -> _Link | None:
    if len(d) <= off:
        raise _Weird("truncated_ip_header")
    version = d[off] >> 4
    if version == 4:
        return ETH_IPV4, off, _NO_VLAN, None, b""
    if version == 6:
        return ETH_IPV6, off, _NO_VLAN, None, b""
    raise _Weird("bad_ip_version")


def _raw4(d: bytes, off: int) -> _Link | None:
    return ETH_IPV4, off, _NO_VLAN, None, b""


def _raw6(d: bytes, off: int) -> _Link | None:
    return ETH_IPV6, off, _NO_VLAN, None, b""


# BSD address families: AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD,
# OpenBSD, BSD/OS), 28 (FreeBSD, DragonFly) or 30 (Darwin).
_NULL_AF = {2: ETH_IPV4, 24: ETH_IPV6, 28: ETH_IPV6, 30: ETH_IPV6}


def _null(d: bytes, off: int) -> _Link | None:
    """DLT_NULL (host byte order) and DLT_LOOP (network order): take either order."""
    if len(d) < off + 4:
        raise _Weird("truncated_null")
    family = int.from_bytes(d[off : off + 4], "little")
    if family > 0xFFFF:
        family = int.from_bytes(d[off : off + 4], "big")
    etype = _NULL_AF.get(family)
    return None if etype is None else (etype, off + 4, _NO_VLAN, None, b"")


PKTAP_MIN_HEADER = 108
PKTAP_REC_PACKET = 1
_PKTAP = struct.Struct("<III24sIIIIi20sIHHi20s").unpack_from


def _pktap(d: bytes, off: int) -> _Link | None:
    """Apple PKTAP: per-packet interface and process header, then the inner frame.

    Fields are little-endian (every Apple machine that writes them is); the
    header length allows for longer future headers.
    """
    if len(d) < off + PKTAP_MIN_HEADER:
        raise _Weird("truncated_pktap")
    (hdrlen, rectype, dlt, _ifname, _flags, _pf, _pre, _post, pid, comm, _svc, _iftype, _ifunit, epid, ecomm) = _PKTAP(
        d, off
    )
    if hdrlen < PKTAP_MIN_HEADER:
        raise _Weird("bad_pktap_header_length")
    if len(d) < off + hdrlen:
        raise _Weird("truncated_pktap")
    if rectype != PKTAP_REC_PACKET:
        return None
    inner = LINK_DECODERS.get(dlt)
    if inner is None or inner is _pktap:
        raise _Weird(f"unknown_linktype_{dlt}")
    link = inner(d, off + hdrlen)
    if link is None:
        return None
    proc = ProcessInfo(
        pid if pid >= 0 else None,
        _cstr(comm),
        epid if epid >= 0 and epid != pid else None,
        _cstr(ecomm) if epid >= 0 and epid != pid else None,
    )
    return link[0], link[1], link[2], proc, link[4]


def _cstr(field: bytes) -> str | None:
    name = field.split(b"\0", 1)[0]
    return name.decode("utf-8", "replace") if name else None


LINK_DECODERS: dict[int, LinkDecoder] = {
    0: _null,
    1: _ether,
    9: _ppp,
    12: _raw,  # DLT_RAW on most BSDs (and in PKTAP's pth_dlt)
    14: _raw,  # DLT_RAW on OpenBSD
    101: _raw,
    108: _null,
    113: _sll,
    228: _raw4,
    229: _raw6,
    258: _pktap,
    276: _sll2,
}
"""LINKTYPE_ value -> decoder. Add an entry to support another link type."""


# --- IP and transport ---------------------------------------------------------------

_IP4 = struct.Struct("!BBHHHBBH4s4s").unpack_from
_IP6 = struct.Struct("!IHBB16s16s").unpack_from
_V6FRAG = struct.Struct("!BBHI").unpack_from
_TCP = struct.Struct("!HHIIBBH").unpack_from
_UDP = struct.Struct("!HHH").unpack_from
_ICMP = struct.Struct("!BBHI").unpack_from
_PORTS = struct.Struct("!HH").unpack_from
_PORTS_SEQ = struct.Struct("!HHI").unpack_from
_new = tuple.__new__

_Transport = tuple[int, int, int, int, int, int, bytes, bytes, int, IcmpInfo | None]
"""sport, dport, tcp_flags, seq, ack, win, tcp_options, payload, payload_len, icmp."""


def _tcp(d: bytes, p: int, cap_end: int, end: int) -> tuple[int, int, int, int, int, int, int]:
    """TCP header at d[p:]: sport, dport, flags, seq, ack, win, header length."""
    if cap_end - p < 20:
        raise _Weird("truncated_tcp_header")
    sport, dport, seq, ack, offb, flags, win = _TCP(d, p)
    thl = (offb >> 4) << 2
    if thl < 20 or p + thl > end:
        raise _Weird("bad_tcp_header_length")
    if p + thl > cap_end:
        raise _Weird("truncated_tcp_header")
    return sport, dport, flags, seq, ack, win, thl


def _transport(
    proto: int, b: bytes, p: int, cap_end: int, wire_end: int, whole: bool, weird: Counter[str] | None
) -> _Transport:
    """Parse the transport header at b[p:wire_end] (captured up to cap_end).

    `whole` is False for a lone fragment, whose UDP length cannot be checked.
    """
    if proto == PROTO_TCP:
        sport, dport, flags, seq, ack, win, thl = _tcp(b, p, cap_end, wire_end)
        options = b"" if thl == 20 else b[p + 20 : p + thl]
        return sport, dport, flags, seq, ack, win, options, b[p + thl : cap_end], wire_end - p - thl, None
    if proto == PROTO_UDP:
        if cap_end - p < 8:
            raise _Weird("truncated_udp_header")
        sport, dport, ulen = _UDP(b, p)
        if whole and ulen != wire_end - p:
            if ulen == 0:
                pass  # jumbogram or segmentation offload: the IP length rules
            elif ulen < 8:
                if weird is not None:
                    weird["bad_udp_length"] += 1
            else:
                if weird is not None:
                    weird["udp_length_mismatch"] += 1
                if p + ulen < wire_end:  # the rest is link-layer padding
                    wire_end = p + ulen
                    cap_end = min(cap_end, wire_end)
        return sport, dport, 0, 0, 0, 0, b"", b[p + 8 : cap_end], wire_end - p - 8, None
    if proto == PROTO_ICMP or proto == PROTO_ICMPV6:
        if cap_end - p < 8:
            raise _Weird("truncated_icmp_header")
        itype, code, _sum, rest = _ICMP(b, p)
        quoted = None
        mtu = 0
        if proto == PROTO_ICMP:
            if itype in _ICMP4_ERRORS:
                quoted = _quoted(b, p + 8, cap_end, 4)
                if itype == 3 and code == 4:
                    mtu = rest & 0xFFFF
        elif itype in _ICMP6_ERRORS:
            quoted = _quoted(b, p + 8, cap_end, 6)
            if itype == 2:
                mtu = rest
        icmp = _new(IcmpInfo, (itype, code, rest, mtu, quoted))
        return 0, 0, 0, 0, 0, 0, b"", b[p + 8 : cap_end], wire_end - p - 8, icmp
    return 0, 0, 0, 0, 0, 0, b"", b[p:cap_end], wire_end - p, None


def _quoted(b: bytes, p: int, end: int, version: int) -> Quoted | None:
    """The IP and transport header quoted in an ICMP error, or None if unreadable."""
    ip_id: int | None = None
    if version == 4:
        if end - p < 20 or b[p] >> 4 != 4:
            return None
        vhl, _tos, _len, ip_id, _frag, _ttl, proto, _sum, src, dst = _IP4(b, p)
        q = p + ((vhl & 15) << 2)
    else:
        if end - p < 40 or b[p] >> 4 != 6:
            return None
        _vtf, _plen, proto, _hlim, src, dst = _IP6(b, p)
        q = p + 40
        for _ in range(MAX_IPV6_EXT_HEADERS):
            if proto not in _V6_EXT or end - q < 8:
                break
            if proto == PROTO_FRAGMENT:
                ip_id = _V6FRAG(b, q)[3]
                step = 8
            elif proto == PROTO_AH:
                step = (b[q + 1] + 2) << 2
            else:
                step = (b[q + 1] + 1) << 3
            proto = b[q]
            q += step
    sport = dport = seq = 0
    if proto in _PORTS_PROTOS and end - q >= 4:
        if proto == PROTO_TCP and end - q >= 8:
            sport, dport, seq = _PORTS_SEQ(b, q)
        else:
            sport, dport = _PORTS(b, q)
    return _new(Quoted, (version, src, dst, proto, sport, dport, seq, ip_id))


_Frags = FragmentTable[tuple[int, int, int, int]]


def _ipv4(
    ts: float,
    d: bytes,
    off: int,
    wirelen: int,
    iface: int,
    vlan: tuple[int, ...],
    proc: ProcessInfo | None,
    frags: _Frags | None,
    weird: Counter[str] | None,
    macs: bytes,
) -> Packet | None:
    n = len(d)
    if n - off < 20:
        raise _Weird("truncated_ip_header")
    vhl, _tos, total, ip_id, fragf, ttl, proto, _sum, src, dst = _IP4(d, off)
    if vhl != 0x45:  # the usual version 4, 20-byte header: one test
        if vhl >> 4 != 4:
            raise _Weird("bad_ip_version")
        if vhl & 15 < 5:
            raise _Weird("bad_ip_header_length")
        if n - off < (vhl & 15) << 2:
            raise _Weird("truncated_ip_header")
    hl = (vhl & 15) << 2
    if total < hl:
        if total:
            raise _Weird("bad_ip_total_length")
        total = n - off
        if weird is not None:
            weird["ip_total_length_zero"] += 1
    end = off + total
    cap_end = end
    if end > n:
        cap_end = n
        if wirelen <= n and weird is not None:  # not a snaplen cut: the frame lies
            weird["truncated_ip"] += 1
    p = off + hl
    pname = pid = None
    if proc is not None:
        pname, pid = proc.name, proc.pid
    fragmented = whole = False
    if not fragf & 0x3FFF:  # neither MF nor an offset
        if proto == PROTO_TCP and cap_end - p >= 20:  # the common case, inline (_tcp has the checks)
            sport, dport, seq, ack, offb, flags, win = _TCP(d, p)
            thl = (offb >> 4) << 2
            if thl < 20 or p + thl > cap_end:
                sport, dport, flags, seq, ack, win, thl = _tcp(d, p, cap_end, end)
            # fmt: off
            return _new(Packet, (
                ts, 4, src, dst, 6, ttl, ip_id, fragf & 0x4000 != 0, total,
                sport, dport, flags, seq, ack, win,
                b"" if thl == 20 else d[p + 20 : p + thl],
                d[p + thl : cap_end] if cap_end > p + thl else b"", end - p - thl, None,
                vlan, iface, pname, pid, False, macs,
            ))
            # fmt: on
        if proto == PROTO_UDP and cap_end - p >= 8:  # DNS, QUIC, NTP: inline too
            sport, dport, ulen = _UDP(d, p)
            if ulen == end - p:  # otherwise _transport counts the anomaly
                # fmt: off
                return _new(Packet, (
                    ts, 4, src, dst, 17, ttl, ip_id, fragf & 0x4000 != 0, total,
                    sport, dport, 0, 0, 0, 0, b"", d[p + 8 : cap_end], ulen - 8, None,
                    vlan, iface, pname, pid, False, macs,
                ))
                # fmt: on
        whole = True
    else:
        fragmented = True
        foff = (fragf & 0x1FFF) << 3
        if frags is not None and cap_end == end:
            meta = (ttl, ip_id, fragf, hl)
            got = frags.add((4, src, dst, proto, ip_id), foff, fragf & 0x2000 != 0, d[p:end], ts, meta, weird)
            if got is None:
                return None
            (ttl, ip_id, fragf, hl), d = got
            p = 0
            end = cap_end = len(d)
            total = hl + end
            whole = True
        elif frags is not None and weird is not None:
            weird["ip_fragment_truncated"] += 1
    if fragmented and not whole and foff:  # a later piece, alone: no transport header here
        transport: _Transport = (0, 0, 0, 0, 0, 0, b"", d[p:cap_end], end - p, None)
    else:
        transport = _transport(proto, d, p, cap_end, end, whole, weird)
    ip = (ts, 4, src, dst, proto, ttl, ip_id, fragf & 0x4000 != 0, total)
    return _new(Packet, ip + transport + (vlan, iface, pname, pid, fragmented, macs))


def _ipv6(
    ts: float,
    d: bytes,
    off: int,
    wirelen: int,
    iface: int,
    vlan: tuple[int, ...],
    proc: ProcessInfo | None,
    frags: _Frags | None,
    weird: Counter[str] | None,
    macs: bytes,
) -> Packet | None:
    n = len(d)
    if n - off < 40:
        raise _Weird("truncated_ip_header")
    vtf, plen, proto, hlim, src, dst = _IP6(d, off)
    if vtf >> 28 != 6:
        raise _Weird("bad_ip_version")
    p = off + 40
    if plen == 0 and proto != PROTO_NONE and n > p:
        plen = n - p  # jumbogram or segmentation offload
        if weird is not None:
            weird["ip_total_length_zero"] += 1
    end = p + plen
    cap_end = end
    if end > n:
        cap_end = n
        if wirelen <= n and weird is not None:
            weird["truncated_ip"] += 1
    ip_len = 40 + plen
    pname = pid = None
    if proc is not None:
        pname, pid = proc.name, proc.pid
    if proto == PROTO_TCP and cap_end - p >= 20:  # the common case, inline (_tcp has the checks)
        sport, dport, seq, ack, offb, flags, win = _TCP(d, p)
        thl = (offb >> 4) << 2
        if thl < 20 or p + thl > cap_end:
            sport, dport, flags, seq, ack, win, thl = _tcp(d, p, cap_end, end)
        # fmt: off
        return _new(Packet, (
            ts, 6, src, dst, 6, hlim, None, True, ip_len,
            sport, dport, flags, seq, ack, win,
            b"" if thl == 20 else d[p + 20 : p + thl],
            d[p + thl : cap_end] if cap_end > p + thl else b"", end - p - thl, None,
            vlan, iface, pname, pid, False, macs,
        ))
        # fmt: on
    if proto == PROTO_UDP and cap_end - p >= 8:  # DNS, QUIC, NTP: inline too
        sport, dport, ulen = _UDP(d, p)
        if ulen == end - p:  # otherwise _transport counts the anomaly
            # fmt: off
            return _new(Packet, (
                ts, 6, src, dst, 17, hlim, None, True, ip_len,
                sport, dport, 0, 0, 0, 0, b"", d[p + 8 : cap_end], ulen - 8, None,
                vlan, iface, pname, pid, False, macs,
            ))
            # fmt: on
    ip_id: int | None = None
    fragmented = False
    whole = True
    hops = 0
    while proto in _V6_EXT:
        hops += 1
        if hops > MAX_IPV6_EXT_HEADERS:
            raise _Weird("ipv6_too_many_ext_headers")
        if cap_end - p < 8:
            raise _Weird("truncated_ipv6_ext_header")
        if proto != PROTO_FRAGMENT:
            step = (d[p + 1] + 2) << 2 if proto == PROTO_AH else (d[p + 1] + 1) << 3
            proto = d[p]
            p += step
            if p > cap_end:
                raise _Weird("truncated_ipv6_ext_header")
            continue
        nxt, _res, fo, ip_id = _V6FRAG(d, p)
        foff = fo & 0xFFF8
        more = fo & 1
        proto = nxt
        p += 8
        if not foff and not more:  # atomic fragment (RFC 6946): nothing to reassemble
            continue
        if frags is not None and cap_end == end and not fragmented:
            fragmented = True
            meta = (hlim, nxt, p - 8 - off, 0)
            got = frags.add((6, src, dst, ip_id), foff, more != 0, d[p:end], ts, meta, weird)
            if got is None:
                return None
            (hlim, proto, unfragmentable, _), d = got
            ip_len = unfragmentable + len(d)
            p = 0
            end = cap_end = len(d)
            continue
        if frags is not None and weird is not None:
            weird["ip_fragment_truncated"] += 1
        fragmented = True
        whole = False
        if foff:  # a later piece, alone: no transport header here
            transport: _Transport = (0, 0, 0, 0, 0, 0, b"", d[p:cap_end], end - p, None)
            return _new(
                Packet,
                (ts, 6, src, dst, proto, hlim, ip_id, True, ip_len) + transport + (vlan, iface, pname, pid, True, macs),
            )
    transport = _transport(proto, d, p, cap_end, end, whole, weird)
    return _new(
        Packet,
        (ts, 6, src, dst, proto, hlim, ip_id, True, ip_len) + transport + (vlan, iface, pname, pid, fragmented, macs),
    )


def decode(
    raw: RawPacket, frags: _Frags | None = None, weird: Counter[str] | None = None, arp: list[ArpFrame] | None = None
) -> Packet | None:
    """Decode one frame. None: not IP, a fragment held for reassembly, or malformed.

    An ARP frame (also None) is appended to `arp` when it is given.

    Malformed frames (and survivable anomalies of decoded ones) are counted in
    `weird` when it is given. With `frags`, IPv4/IPv6 fragments are held until
    their datagram is complete, which is returned with the last fragment's
    timestamp; without, each fragment is decoded alone (`fragmented` set,
    transport ports only in the first).
    """
    ts, linktype, d, wirelen, iface, proc = raw
    try:
        # Untagged Ethernet is most of all traffic: skip the registry for it.
        if linktype == 1 and len(d) >= 14 and d[12] == 8 and d[13] == 0:
            return _ipv4(ts, d, 14, wirelen, iface, _NO_VLAN, proc, frags, weird, d[:12])
        decoder = LINK_DECODERS.get(linktype)
        if decoder is None:
            raise _Weird(f"unknown_linktype_{linktype}")
        link = decoder(d, 0)
        if link is None:
            return None
        etype, off, vlan, link_proc, macs = link
        if link_proc is not None:
            proc = link_proc
        if etype == ETH_IPV4:
            return _ipv4(ts, d, off, wirelen, iface, vlan, proc, frags, weird, macs)
        if etype == ETH_IPV6:
            return _ipv6(ts, d, off, wirelen, iface, vlan, proc, frags, weird, macs)
        if arp is not None:
            arp.append(_new(ArpFrame, (ts, d[off:], macs)))
        return None
    except _Weird as exc:
        if weird is not None:
            weird[exc.kind] += 1
        return None


class Decoder:
    """`decode` bound to one fragment table and one weird counter (one per capture).

    ARP frames collect in `arp` until the caller takes them.
    """

    def __init__(self, frags: _Frags | None = None) -> None:
        self.frags: _Frags | None = frags if frags is not None else FragmentTable()
        self.weird: Counter[str] = Counter()
        self.arp: list[ArpFrame] = []

    def __call__(self, raw: RawPacket) -> Packet | None:
        return decode(raw, self.frags, self.weird, self.arp)

    def finish(self) -> None:
        """End of capture: datagrams still incomplete are counted as timed out."""
        if self.frags is not None:
            self.frags.flush(self.weird)
