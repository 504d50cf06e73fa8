"""Reading the compiled core's event buffer back into the Python engine's values.

The format is written by `core/src/events.rs` (the two files are one format and change
together): little-endian; an optional float is NaN for None, an optional integer -1;
byte strings and lists carry a u32 length (u32 max for a None byte string).
"""

from __future__ import annotations

import functools
import math
import struct
from collections import Counter
from collections.abc import Iterator
from typing import Any

from analyzer.capture.decode import (
    ArpFrame,
    IcmpInfo,
    Packet,
    Quoted,
    ip_text_cached,
    mac_text,
)
from analyzer.flows.community_id import community_id
from analyzer.flows.records import (
    Datagram,
    DirectionStats,
    EndReason,
    FlowRecord,
    IcmpError,
    RstEvidence,
    Side,
    StreamData,
    fast_constructor,
)
from analyzer.flows.table import flow_uid

__all__ = ["EV_ARP", "EV_DNS", "EV_FLOW", "EV_NDP", "read_events", "read_packet", "read_weirds"]

EV_FLOW, EV_DNS, EV_ARP, EV_NDP = 1, 2, 3, 4

_U8 = struct.Struct("<B").unpack_from
_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_Q = struct.Struct("<Q").unpack_from
_q = struct.Struct("<q").unpack_from
_D = struct.Struct("<d").unpack_from
_FLOW = struct.Struct("<Q2d2B4H5d3Q5B6IB16sB16sB16sB16s2I")
_FLOW_SIZE = _FLOW.size
_DIR = struct.Struct("<4Q3dQ2q2d6Q2B4IB")
_DIR_SIZE = _DIR.size
_DGRAM = struct.Struct("<dI").unpack_from
_TTL = struct.Struct("<BQ")
_IP_IDS: dict[int, struct.Struct] = {}
# core/src/events.rs PATTERNS and STATES: names sent as their index.
_PATTERNS = ("none", "single", "zero", "constant", "incrementing", "random")
_STATES = ("INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED", "RESET", "active", "inactive")
_UNLISTED = 255
_STREAM_TAIL = struct.Struct("<5Q4B")
_SEGMENT = struct.Struct("<Qd")
_RST = struct.Struct("<d2BqBH2IBI")
_RST_TAIL = struct.Struct("<2Bd2q2Q")
_ICMP_ERR_HEAD = struct.Struct("<d2B")
_ICMP_ERR_TAIL = struct.Struct("<2B2I")
_DNS_STRUCT = struct.Struct("<dB16sHB16sHI")
_DNS, _DNS_SIZE = _DNS_STRUCT.unpack_from, _DNS_STRUCT.size
_PKT_HEAD = struct.Struct("<dB")
_NONE32 = 0xFFFFFFFF
_END_REASONS = tuple(EndReason)
_SIDES = (Side.CLIENT, Side.SERVER)
_OPT_BOOL = (False, True, None)

_make_record = fast_constructor(FlowRecord)
_make_direction = fast_constructor(DirectionStats)
_make_stream = fast_constructor(StreamData)
_text: dict[bytes, str] = {}


def opt_float(v: float) -> float | None:
    """An optional float as events.rs writes it: NaN is None. (The per-flow readers inline
    `None if v != v else v`, the same test without a call.)"""
    return None if math.isnan(v) else v


def _opt_i(v: int) -> int | None:
    return None if v < 0 else v


def _interned(raw: bytes) -> str:
    """Short repeated strings (states, patterns, conn_state) made once."""
    s = _text.get(raw)
    if s is None:
        s = _text[raw] = raw.decode()
    return s


class _Cursor:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def u8(self) -> int:
        v: int = self.buf[self.pos]
        self.pos += 1
        return v

    def u16(self) -> int:
        (v,) = _U16(self.buf, self.pos)
        self.pos += 2
        return int(v)

    def u32(self) -> int:
        (v,) = _U32(self.buf, self.pos)
        self.pos += 4
        return int(v)

    def u64(self) -> int:
        (v,) = _Q(self.buf, self.pos)
        self.pos += 8
        return int(v)

    def opt_i(self) -> int | None:
        (v,) = _q(self.buf, self.pos)
        self.pos += 8
        return None if v < 0 else int(v)

    def f64(self) -> float:
        (v,) = _D(self.buf, self.pos)
        self.pos += 8
        return float(v)

    def bytes_(self) -> bytes:
        n = self.u32()
        p = self.pos
        self.pos = p + n
        return self.buf[p:p + n]

    def opt_bytes(self) -> bytes | None:
        (n,) = _U32(self.buf, self.pos)
        if n == _NONE32:
            self.pos += 4
            return None
        return self.bytes_()

    def opt_str(self) -> str | None:
        b = self.opt_bytes()
        return None if b is None else b.decode("utf-8", "replace")

    def addr(self) -> bytes:
        n = self.buf[self.pos]
        p = self.pos + 1
        self.pos = p + n
        return self.buf[p:p + n]

    def unpack(self, st: struct.Struct) -> tuple[Any, ...]:
        v = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return v


def read_packet(c: _Cursor) -> Packet:
    ts, ipv = c.unpack(_PKT_HEAD)
    src, dst = c.addr(), c.addr()
    proto, ttl = c.u8(), c.u8()
    ip_id = c.opt_i()
    df = bool(c.u8())
    ip_len = c.u32()
    sport, dport = c.u16(), c.u16()
    flags = c.u8()
    seq, ack = c.u32(), c.u32()
    win = c.u16()
    options, payload = c.bytes_(), c.bytes_()
    payload_len = c.u32()
    icmp = None
    if c.u8():
        itype, icode, rest, mtu = c.u8(), c.u8(), c.u32(), c.u32()
        quoted = None
        if c.u8():
            qv = c.u8()
            qsrc, qdst = c.addr(), c.addr()
            qproto, qsport, qdport, qseq = c.u8(), c.u16(), c.u16(), c.u32()
            quoted = Quoted(qv, qsrc, qdst, qproto, qsport, qdport, qseq, c.opt_i())
        icmp = IcmpInfo(itype, icode, rest, mtu, quoted)
    vlan = tuple(c.u16() for _ in range(c.u32()))
    iface = c.u32()
    proc_name = c.opt_str()
    pid = c.opt_i()
    fragmented = bool(c.u8())
    macs = c.bytes_()
    return Packet(ts, ipv, src, dst, proto, ttl, ip_id, df, ip_len, sport, dport, flags, seq, ack, win,
                  options, payload, payload_len, icmp, vlan, iface, proc_name, pid, fragmented, macs)


def _stream(buf: bytes, p: int) -> tuple[StreamData, int]:
    (n,) = _U32(buf, p)
    p += 4
    data = buf[p:p + n]
    p += n
    (n,) = _U32(buf, p)
    p += 4
    segments = tuple(_SEGMENT.iter_unpack(buf[p:p + n * 16])) if n else ()
    p += n * 16
    stream_bytes, gaps, gap_bytes, conflicts, pending, cap, gap, seg_trunc, budget = _STREAM_TAIL.unpack_from(buf, p)
    return _make_stream(data, segments, stream_bytes, bool(cap), bool(gap), gaps, gap_bytes, conflicts, pending,
                        bool(seg_trunc), bool(budget)), p + _STREAM_TAIL.size


def _ip_ids(buf: bytes, p: int, n: int) -> tuple[int, ...]:
    st = _IP_IDS.get(n)
    if st is None:
        st = _IP_IDS[n] = struct.Struct(f"<{n}I")
    return st.unpack_from(buf, p)


def _name(buf: bytes, p: int) -> tuple[str, int]:
    (n,) = _U32(buf, p)
    return buf[p + 4:p + 4 + n].decode(), p + 4 + n


def _direction(buf: bytes, p: int) -> tuple[DirectionStats, int]:
    (packets, ip_bytes, payload_bytes, zeek_bytes, first_ts, last_ts, syn_ts, syn_count, syn_window, syn_ttl,
     first_data_ts, fin_ts, rst_count, rxmt, win0, missed, dgram_count, duplicates,
     pattern, state, n_ttls, n_ids, n_options, n_dgrams, has_stream) = _DIR.unpack_from(buf, p)
    p += _DIR_SIZE
    if pattern == _UNLISTED:
        pattern, p = _name(buf, p)
    else:
        pattern = _PATTERNS[pattern]
    if state == _UNLISTED:
        state, p = _name(buf, p)
    else:
        state = _STATES[state]
    if n_ttls == 1:
        ttls: tuple[tuple[int, int], ...] = (_TTL.unpack_from(buf, p),)
    else:
        ttls = tuple(_TTL.iter_unpack(buf[p:p + 9 * n_ttls])) if n_ttls else ()
    p += 9 * n_ttls
    ip_ids = _ip_ids(buf, p, n_ids) if n_ids else ()
    p += 4 * n_ids
    syn_options = buf[p:p + n_options] if n_options else b""
    p += n_options
    stream = None
    if has_stream:
        stream, p = _stream(buf, p)
    datagrams: tuple[Datagram, ...] = ()
    if n_dgrams:
        out = []
        for _ in range(n_dgrams):
            ts, n = _DGRAM(buf, p)
            p += 12
            out.append(Datagram(ts, buf[p:p + n]))
            p += n
        datagrams = tuple(out)
    return _make_direction(
        packets, ip_bytes, payload_bytes, zeek_bytes, None if first_ts != first_ts else first_ts,
        None if last_ts != last_ts else last_ts, ttls, ip_ids, pattern, state,
        None if syn_ts != syn_ts else syn_ts, syn_count, None if syn_window < 0 else syn_window,
        None if syn_ttl < 0 else syn_ttl, syn_options, None if first_data_ts != first_data_ts else first_data_ts,
        None if fin_ts != fin_ts else fin_ts, rst_count, rxmt, win0, missed, stream, datagrams, dgram_count,
        duplicates), p


def _rst(c: _Cursor) -> RstEvidence:
    ts, sender, ttl, ip_id, df, window, seq, ack, flags, plen = c.unpack(_RST)
    rel_seq = None
    if c.u8():
        (rel_seq,) = _q(c.buf, c.pos)
        c.pos += 8
    at_next, at_ack, since_peer, prev_ttl, prev_ip_id, after, data_after = c.unpack(_RST_TAIL)
    return RstEvidence(ts, _SIDES[sender], ttl, _opt_i(ip_id), bool(df), window, seq, ack, flags, plen, rel_seq,
                       _OPT_BOOL[at_next], _OPT_BOOL[at_ack], opt_float(since_peer), _opt_i(prev_ttl),
                       _opt_i(prev_ip_id), after, data_after)


def _icmp_error(c: _Cursor) -> IcmpError:
    ts, itype, code = c.unpack(_ICMP_ERR_HEAD)
    reporter = ip_text_cached(c.addr())
    ttl, about, mtu, qseq = c.unpack(_ICMP_ERR_TAIL)
    return IcmpError(ts, itype, code, reporter, ttl, _SIDES[about], mtu, qseq)


@functools.lru_cache(maxsize=1024)
def _mac(raw: bytes | None) -> str | None:
    """A link-layer address as text (cached: a capture holds few distinct ones)."""
    return None if raw is None else mac_text(raw)


def read_flow(c: _Cursor) -> FlowRecord:
    buf = c.buf
    (dup, ts_start, ts_end, proto, ipv, first_sport, first_dport, cport, sport, syn_ts, synack_ts, ack_ts, rtt1,
     rtt2, rst_total, icmp_total, missed, trunc_start, open_at_end, flipped, reason, _pad,
     n_rsts, n_icmp, n_procs, n_ifaces, n_vlan, n_weirds, n1, a1, n2, a2, n3, a3, n4, a4, n_state, n_hist,
     ) = _FLOW.unpack_from(buf, c.pos)
    p = c.pos + _FLOW_SIZE
    first_src, first_dst, client, server = a1[:n1], a2[:n2], a3[:n3], a4[:n4]
    conn_state = _interned(buf[p:p + n_state])
    p += n_state
    history = buf[p:p + n_hist].decode()
    p += n_hist
    cdir, p = _direction(buf, p)
    sdir, p = _direction(buf, p)
    c.pos = p
    rsts = tuple(_rst(c) for _ in range(n_rsts)) if n_rsts else ()
    icmp_errors = tuple(_icmp_error(c) for _ in range(n_icmp)) if n_icmp else ()
    processes = tuple((c.opt_str(), c.opt_i()) for _ in range(n_procs)) if n_procs else ()
    ifaces = tuple(c.u32() for _ in range(n_ifaces))
    vlan = tuple(c.u16() for _ in range(n_vlan)) if n_vlan else ()
    weirds = tuple((_interned(c.bytes_()), c.u64()) for _ in range(n_weirds)) if n_weirds else ()
    client_mac, server_mac = _mac(c.opt_bytes()), _mac(c.opt_bytes())
    return _make_record(
        flow_uid(dup, ts_start, first_src, first_sport, first_dst, first_dport, proto),
        community_id(client, server, proto, cport, sport),
        proto, ipv, ip_text_cached(client), cport, ip_text_cached(server), sport, ts_start, ts_end, conn_state,
        history, cdir, sdir, None if syn_ts != syn_ts else syn_ts, None if synack_ts != synack_ts else synack_ts,
        None if ack_ts != ack_ts else ack_ts, None if rtt1 != rtt1 else rtt1, None if rtt2 != rtt2 else rtt2, rsts,
        rst_total, icmp_errors, icmp_total, processes, ifaces, vlan, weirds, missed, bool(trunc_start),
        bool(open_at_end), _END_REASONS[reason], bool(flipped), client_mac, server_mac)


def read_weirds(c: _Cursor, into: Counter[str]) -> None:
    """Weird counts as events.rs `weirds` writes them (u32 n, then name and u64 count), added to `into`."""
    for _ in range(c.u32()):
        name = c.bytes_().decode()
        into[name] += c.u64()


Event = tuple[int, Any]


def read_events(buf: bytes) -> Iterator[Event]:
    """(kind, value) per event: a FlowRecord, a DNS message tuple (ts, src, sport, dst, dport,
    payload) with text addresses, an ArpFrame, or an NDP Packet."""
    c = _Cursor(buf)
    n = len(buf)
    while c.pos < n:
        kind = c.u8()
        if kind == EV_FLOW:
            yield kind, read_flow(c)
        elif kind == EV_DNS:
            ts, ns, src, sport, nd, dst, dport, size = _DNS(buf, c.pos)
            p = c.pos + _DNS_SIZE
            c.pos = p + size
            yield kind, (ts, ip_text_cached(src[:ns]), sport, ip_text_cached(dst[:nd]), dport, buf[p:p + size])
        elif kind == EV_ARP:
            ts = c.f64()
            yield kind, ArpFrame(ts, c.bytes_(), c.bytes_())
        elif kind == EV_NDP:
            yield kind, read_packet(c)
        else:
            raise ValueError(f"unknown core event {kind} at {c.pos - 1}")

