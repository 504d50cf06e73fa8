#!/usr/bin/env python3
"""Prototype of a bulk (numpy, columnar) capture core, to size what the engine can reach.

    .venv/bin/python bench/prototype_bulk.py bench/data/bench.pcap [-o records.jsonl] [--counts-out c.json]
    .venv/bin/python bench/prototype_bulk.py --check                          # vs the engine, on the corpus
    .venv/bin/python bench/prototype_bulk.py --check bench/data/bench.pcap   # ... and on a capture

Not part of the package: bench/README.md says how it would be integrated. Per ~32 MB chunk
of a classic pcap:

1. a header walk in Python finds the record offsets; every L2-L4 field of every frame is then
   gathered at once with numpy fancy indexing (Ethernet + IPv4/IPv6 + TCP/UDP, the common
   case). Frames outside it (VLAN, fragments, IPv6 extension headers, other link types, cut
   frames; pcapng and gzip files wholesale) go one by one through the engine's own
   `analyzer.capture.decode.Decoder` and rejoin the columns as rows;
2. flows: the canonical 5-tuple is hashed to uint64 and grouped with np.unique per chunk.
   Python runs once per flow per chunk, and per packet only for "attention" packets: TCP
   SYN/FIN/RST, the first packet of each direction in the chunk, and packets after a pause
   of >= 3 s (the shortest timer). Those are the only packets that can end a flow or start a
   new one on the same 5-tuple; the rules are the engine's (Zeek's): port reuse by a new
   SYN, close linger 5 s, attempt timeout 5 s, partial close 3 s, idle 60 s (UDP, TCP in
   handshake) / 300 s;
3. per-flow counters (packets and IP bytes per direction, RSTs, last time) with np.bincount,
   added to each flow's Python object once per chunk;
4. payloads reach Python only for the client's first 16 KiB of a TCP flow until its
   ClientHello is complete (SNI), and for DNS over UDP, whose parse (the engine's
   `parse_message`) is memoised on the message minus its 2-byte id: resolvers repeat
   themselves (43 distinct messages among the 300,000 of the bench capture);
5. a flow is written out (JSON lines) as soon as no later packet can join it, so memory
   holds live flows only.

Not done here (the engine does it): Zeek history/conn_state, retransmission/gap accounting,
TTL/IP-ID statistics, reassembly beyond the ClientHello, TLS/QUIC/HTTP/NTP inspection,
certificates, JA3/JA4, ICMP flows, DNS over TCP. `--check` compares what both compute:
every TCP/UDP flow (5-tuple, client side, start time), its packets and IP bytes per
direction, its RST count, ClientHello presence and SNI, and the number of DNS-over-UDP
transactions.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import heapq
import json
import mmap
import os
import socket
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analyzer.capture.decode import Decoder, Packet
from analyzer.capture.reader import RawPacket, open_capture
from analyzer.flows.table import client_side_by_content, client_side_by_ports
from analyzer.protocols._buffer import ParseError
from analyzer.protocols.dns import DNSMessage, parse_message
from analyzer.protocols.dns_registry import rcode_name
from analyzer.protocols.tls import tls_start

try:
    import orjson

    _dumps = orjson.dumps
    JSON_LIB = "orjson"
except ImportError:  # plain json: the output step costs ~3x more
    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    JSON_LIB = "json"

CHUNK_BYTES = 32 << 20
HELLO_WINDOW = 16384  # client stream bytes searched for a ClientHello
M32 = 0xFFFFFFFF
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
TCP, UDP = 6, 17
# The engine's timers (analyzer.flows.config.FlowConfig defaults, Zeek's values).
LINGER, ATTEMPT, PARTIAL_CLOSE, UDP_IDLE, TCP_IDLE = 5.0, 5.0, 3.0, 60.0, 300.0
DNS_PENDING = 30.0  # EngineConfig.dns_pending_timeout
ATTENTION_GAP = 3.0  # the shortest timer: a pause this long is looked at in Python
DNS_CACHE_MAX = 65536
_INF = float("inf")
STAGE_CPU: collections.Counter[str] = collections.Counter()
"""CPU seconds per step (a few process_time() calls per chunk), printed with --timing."""
_clock = time.process_time
DNS_PORTS = (53, 5353, 5355)  # analyzer.engine.DNS_UDP_PORTS: DNS, mDNS, LLMNR

_U64 = np.uint64
_V4MAPPED = np.uint64(0xFFFF00000000)
_COLS = ("ts", "v6", "src_hi", "src_lo", "dst_hi", "dst_lo", "proto", "sport", "dport", "flags", "seq",
         "ip_len", "plen", "pay_start", "pay_end", "rec")
_DTYPES = {"ts": np.float64, "v6": bool, "src_hi": _U64, "src_lo": _U64, "dst_hi": _U64, "dst_lo": _U64}


# ---------------------------------------------------------------------------------------------
# 1. reading and bulk decode
# ---------------------------------------------------------------------------------------------

class Cols:
    """One chunk's TCP/UDP packets as equal-length numpy columns, in file order."""

    ts: np.ndarray
    v6: np.ndarray
    src_hi: np.ndarray
    src_lo: np.ndarray
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    proto: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    flags: np.ndarray
    seq: np.ndarray
    ip_len: np.ndarray
    plen: np.ndarray  # transport payload length per the headers
    pay_start: np.ndarray  # payload offset in buf, or -1: in side[rec]
    pay_end: np.ndarray
    rec: np.ndarray  # record number in the chunk (orders vector and one-by-one rows)

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.side: dict[int, bytes] = {}

    def __len__(self) -> int:
        return len(self.ts)

    def subset(self, rows: np.ndarray) -> Cols:
        c = Cols(self.buf)
        c.side = self.side
        for k in _COLS:
            setattr(c, k, getattr(self, k)[rows])
        return c

    def payload(self, row: int) -> bytes:
        s = int(self.pay_start[row])
        if s < 0:
            return self.side[int(self.rec[row])]
        return self.buf[s:int(self.pay_end[row])]


def _walk(buf: Any, endian: str, pos: int, n: int) -> tuple[list[int], int]:
    """Offsets of the complete records in buf[pos:n]; where the first incomplete one begins."""
    unpack = struct.Struct(endian + "I").unpack_from
    offs: list[int] = []
    app = offs.append
    while pos + 16 <= n:
        end = pos + 16 + unpack(buf, pos + 8)[0]
        if end > n:
            break
        app(pos)
        pos = end
    return offs, pos


HEAD_WINDOW = 16 + 14 + 40  # pcap record header, Ethernet, IPv6 (an IPv4 header fits in it)
L4_WINDOW = 20  # fixed TCP header (UDP's 8 bytes too)


def _col(win: np.ndarray, a: int, b: int, dt: str, out: Any = np.int64) -> np.ndarray:
    """Bytes a..b-1 of every row of a window read as dt (e.g. ">u2"), as a column of type out."""
    return np.ascontiguousarray(win[:, a:b]).view(dt).ravel().astype(out)


def decode_vec(buf: Any, offs: list[int], endian: str, scale: float, linktype: int,
               size: int) -> tuple[Cols, list[int]]:
    """Bulk decode of the records at `offs`; also the record numbers it left for the engine's decoder.

    Two gathers per chunk: the first HEAD_WINDOW bytes of every record and the L4_WINDOW bytes
    where its transport header starts (sliding_window_view: views, then one copy of N x W bytes).
    """
    o = np.array(offs, np.int64)
    if size < HEAD_WINDOW:  # a tiny file: every frame one by one
        c = Cols(buf)
        for k in _COLS:
            setattr(c, k, np.zeros(0, _DTYPES.get(k, np.int64)))
        return c, list(range(len(offs)))
    u8 = np.frombuffer(buf, np.uint8)
    fits = o <= size - HEAD_WINDOW  # the last few frames of the file may be shorter: one by one
    head = np.lib.stride_tricks.sliding_window_view(u8, HEAD_WINDOW)[np.minimum(o, size - HEAD_WINDOW)]
    e = endian
    ts = _col(head, 0, 4, e + "u4").astype(np.float64) + _col(head, 4, 8, e + "u4").astype(np.float64) * scale
    caplen = _col(head, 8, 12, e + "u4")
    if linktype == 1:
        etype = np.where(caplen >= 14, _col(head, 28, 30, ">u2"), 0)
    else:
        etype = np.zeros(len(o), np.int64)
    vhl = head[:, 30].astype(np.int64)
    total = _col(head, 32, 34, ">u2")
    plen6 = _col(head, 34, 36, ">u2")
    # IPv4: 20-byte header, no fragment, not cut; IPv6: TCP/UDP right after the fixed header.
    v4 = fits & (etype == 0x0800) & (caplen >= 34) & (vhl == 0x45) & ((_col(head, 36, 38, ">u2") & 0x3FFF) == 0) & (
        total >= 20) & (14 + total <= caplen)
    v6 = fits & (etype == 0x86DD) & (caplen >= 54) & ((vhl >> 4) == 6) & (plen6 > 0) & (54 + plen6 <= caplen)
    proto = np.where(v4, head[:, 39], np.where(v6, head[:, 36], -1)).astype(np.int64)
    d = o + 16
    p = np.where(v4, d + 34, d + 54)
    end = np.where(v4, d + 14 + total, d + 54 + plen6)
    room = end - p
    l4 = np.lib.stride_tricks.sliding_window_view(u8, L4_WINDOW)[np.minimum(p, size - L4_WINDOW)]
    offb = l4[:, 12].astype(np.int64)
    thl = (offb >> 4) << 2
    is_tcp = (v4 | v6) & (proto == TCP) & (room >= 20) & (thl >= 20) & (thl <= room)
    is_udp = (v4 | v6) & (proto == UDP) & (room >= 8) & (_col(l4, 4, 6, ">u2") == room)
    ok = is_tcp | is_udp
    sel = np.flatnonzero(ok)
    c = Cols(buf)
    hs, ls, v6s, tcps = head[sel], l4[sel], v6[sel], is_tcp[sel]
    c.ts = ts[sel]
    c.v6 = v6s
    src4 = _col(hs, 42, 46, ">u4").astype(_U64) | _V4MAPPED
    dst4 = _col(hs, 46, 50, ">u4").astype(_U64) | _V4MAPPED
    c.src_hi = np.where(v6s, _col(hs, 38, 46, ">u8", _U64), _U64(0))
    c.src_lo = np.where(v6s, _col(hs, 46, 54, ">u8", _U64), src4)
    c.dst_hi = np.where(v6s, _col(hs, 54, 62, ">u8", _U64), _U64(0))
    c.dst_lo = np.where(v6s, _col(hs, 62, 70, ">u8", _U64), dst4)
    c.proto = proto[sel]
    c.sport = _col(ls, 0, 2, ">u2")
    c.dport = _col(ls, 2, 4, ">u2")
    c.flags = np.where(tcps, ls[:, 13].astype(np.int64) | ((offb[sel] & 1) << 8), 0)
    c.seq = np.where(tcps, _col(ls, 4, 8, ">u4"), 0)
    c.ip_len = np.where(v4[sel], total[sel], 40 + plen6[sel])
    c.pay_start = np.where(tcps, p[sel] + thl[sel], p[sel] + 8)
    c.pay_end = end[sel]
    c.plen = c.pay_end - c.pay_start
    c.rec = sel.astype(np.int64)
    return c, np.flatnonzero(~ok).tolist()


def _add_rows(c: Cols, rows: list[tuple[int, Packet]]) -> None:
    """Append engine-decoded Packets as rows, then restore file order by record number."""
    if not rows:
        return
    vals: dict[str, list[Any]] = {k: [] for k in _COLS}
    for rec, p in rows:
        v6 = p.ip_version == 6
        vals["ts"].append(p.ts)
        vals["v6"].append(v6)
        for name, addr in (("src", p.src), ("dst", p.dst)):
            if v6:
                vals[name + "_hi"].append(int.from_bytes(addr[:8], "big"))
                vals[name + "_lo"].append(int.from_bytes(addr[8:], "big"))
            else:
                vals[name + "_hi"].append(0)
                vals[name + "_lo"].append(0xFFFF00000000 | int.from_bytes(addr, "big"))
        vals["proto"].append(p.proto)
        vals["sport"].append(p.sport)
        vals["dport"].append(p.dport)
        vals["flags"].append(p.tcp_flags)
        vals["seq"].append(p.seq)
        vals["ip_len"].append(p.ip_len)
        vals["plen"].append(p.payload_len)
        vals["pay_start"].append(-1)
        vals["pay_end"].append(-1)
        vals["rec"].append(rec)
        c.side[rec] = p.payload
    for k in _COLS:
        new = np.array(vals[k], dtype=_DTYPES.get(k, np.int64))
        setattr(c, k, np.concatenate([getattr(c, k), new]) if hasattr(c, k) else new)
    order = np.argsort(c.rec, kind="stable")
    for k in _COLS:
        setattr(c, k, getattr(c, k)[order])


def _pcap_chunks(f: BinaryIO, endian: str, scale: float, linktype: int, decoder: Decoder) -> Iterator[Cols]:
    """The file mapped read-only; each chunk's pages are dropped from our RSS once decoded
    (they stay in the page cache), so memory does not grow with the file."""
    size = os.fstat(f.fileno()).st_size
    if size <= 24:
        return
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    rec_hdr = struct.Struct(endian + "IIII").unpack_from
    page = mmap.PAGESIZE
    pos = 24
    while pos < size:
        limit = min(size, pos + CHUNK_BYTES)
        t0 = _clock()
        offs, nxt = _walk(mm, endian, pos, limit)
        if not offs:
            if limit == size or size - pos < 16:
                return  # a record cut by the end of the file is dropped, as the engine's reader does
            limit = min(size, pos + 16 + rec_hdr(mm, pos)[2])  # one record longer than a chunk
            offs, nxt = _walk(mm, endian, pos, limit)
            if not offs:
                return
        t1 = _clock()
        STAGE_CPU["1 walk: pcap record headers (Python loop)"] += t1 - t0
        c, slow = decode_vec(mm, offs, endian, scale, linktype, size)
        t2 = _clock()
        STAGE_CPU["2 decode: numpy gathers of L2-L4 fields"] += t2 - t1
        rows = []
        for i in slow:
            sec, frac, caplen, wirelen = rec_hdr(mm, offs[i])
            s = offs[i] + 16
            pkt = decoder(RawPacket(sec + frac * scale, linktype, mm[s:s + caplen], wirelen, 0, None))
            if pkt is not None and pkt.proto in (TCP, UDP):
                rows.append((i, pkt))
        _add_rows(c, rows)
        STAGE_CPU["2b decode: frames outside the bulk path, one by one"] += _clock() - t2
        yield c
        lo = pos - pos % page
        hi = nxt - nxt % page
        if hi > lo:
            mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
        pos = nxt


def _slow_chunks(path: Path, decoder: Decoder) -> Iterator[Cols]:
    """pcapng, gzip, old pcap versions: the engine's reader and decoder, then columns."""
    rows: list[tuple[int, Packet]] = []
    for i, raw in enumerate(open_capture(path)):
        pkt = decoder(raw)
        if pkt is not None and pkt.proto in (TCP, UDP):
            rows.append((i, pkt))
        if len(rows) >= 65536:
            c = Cols(b"")
            _add_rows(c, rows)
            yield c
            rows = []
    if rows:
        c = Cols(b"")
        _add_rows(c, rows)
        yield c


def iter_chunks(path: Path, decoder: Decoder) -> Iterator[Cols]:
    with open(path, "rb") as f:
        head = f.read(24)
        magic = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
                 b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}.get(head[:4])
        if magic is not None and len(head) == 24 and struct.unpack_from(magic[0] + "HH", head, 4) == (2, 4):
            linktype = struct.unpack_from(magic[0] + "I", head, 20)[0] & 0x03FFFFFF
            yield from _pcap_chunks(f, magic[0], magic[1], linktype, decoder)
            return
    yield from _slow_chunks(path, decoder)


# ---------------------------------------------------------------------------------------------
# 2.-3. flows
# ---------------------------------------------------------------------------------------------

class Flow:
    """A live flow. Direction 0/1 = sent from the lower / the higher endpoint of the key.

    No __slots__: the class attributes are the defaults, so creating one of the ~145,000
    flows of the bench capture costs five assignments (bit masks: `sent`, `closed`).
    """

    orig = 0  # direction whose sender is the client
    decided = True
    pk0 = pk1 = by0 = by1 = rst = 0
    sent = closed = 0  # bit d set: direction d sent a packet / a FIN or RST
    start_seq: list[int | None] | None = None
    delete_at: float | None = None
    attempt_at: float | None = None
    partial_at: float | None = None
    in_hs = True
    base: int | None = None  # client stream offset 0 (ISN + 1), for the ClientHello window
    pieces: list[tuple[int, bytes]] | None = None
    hello = False
    sni: str | None = None
    deadline = 0.0

    def __init__(self, key: tuple[int, ...], serial: int, ts: float) -> None:
        self.key = key
        self.serial = serial
        self.first_ts = ts
        self.last_ts = ts
        self.done_hello = key[4] != TCP

    def end_time(self, idle: bool = True) -> float:
        """When the flow ends if no packet comes: the engine's earliest firing timer."""
        if self.key[4] != TCP:
            return self.last_ts + UDP_IDLE if idle else _INF
        best = (self.last_ts + (UDP_IDLE if self.in_hs else TCP_IDLE)) if idle else _INF
        t = self.delete_at
        if t is not None and t + LINGER < best:
            best = t + LINGER
        t = self.attempt_at
        if t is not None and t + ATTEMPT < best and not self.sent >> (1 - self.orig) & 1:
            best = t + ATTEMPT
        t = self.partial_at
        if t is not None and t + PARTIAL_CLOSE < best and self.sent == 3 and self.closed != 3:
            best = t + PARTIAL_CLOSE
        return best


class Prototype:
    def __init__(self, out: BinaryIO | None, keep: bool = False, part: tuple[int, int] | None = None) -> None:
        self.out = out
        self.part = part  # (i, n): handle the flows whose hash is i modulo n
        self.keep = keep  # --check: keep each flow's comparable facts
        self.kept: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.live: dict[tuple[int, ...], Flow] = {}
        # Expiry: flows bucketed by the whole second of their deadline (stale entries skipped).
        self.wheel: dict[int, list[Flow]] = {}
        self.wheel_keys: list[int] = []
        self.retired: list[Flow] = []
        self.serial = 0
        self.now = 0.0
        self.flows = 0
        self.flows_by_proto: collections.Counter[str] = collections.Counter()
        self.hellos = 0
        self.no_sni = 0
        self.sni: collections.Counter[str] = collections.Counter()
        self.rst_flows = 0
        self.packets = 0
        self.ip_text: dict[tuple[bool, int, int], str] = {}
        self.dns = DNSPart(self)
        self.decoder = Decoder()
        self.written = 0

    # -- per chunk ------------------------------------------------------------------------------

    def chunk(self, c: Cols, _mine: bool = False) -> None:
        n = len(c)
        if not n:
            return
        sh, sl, dh, dl, sp, dp = c.src_hi, c.src_lo, c.dst_hi, c.dst_lo, c.sport, c.dport
        swap = (sh > dh) | ((sh == dh) & ((sl > dl) | ((sl == dl) & (sp > dp))))
        a_hi, a_lo, b_hi, b_lo = np.where(swap, dh, sh), np.where(swap, dl, sl), np.where(swap, sh, dh), np.where(
            swap, sl, dl)
        pa, pb = np.where(swap, dp, sp), np.where(swap, sp, dp)
        pk = (c.proto | (c.v6.astype(np.int64) << 8) | (pa << 16) | (pb << 32)).astype(_U64)
        h = _mix(_mix(_mix(_mix(a_hi ^ _U64(0x9E3779B97F4A7C15)) ^ a_lo) ^ b_hi) ^ b_lo) ^ _mix(pk)
        if self.part is not None and not _mine:
            # several processes: this one keeps the flows whose hash falls to it (DNS too: a
            # query and its answer share the 5-tuple)
            i, parts = self.part
            self.chunk(c.subset(np.flatnonzero(h % _U64(parts) == _U64(i))), _mine=True)
            return
        self.packets += n
        t0 = _clock()
        _, first, inv = np.unique(h, return_index=True, return_inverse=True)
        order = np.argsort(inv, kind="stable")
        counts = np.bincount(inv)
        gstart = np.zeros(len(counts), np.int64)
        np.cumsum(counts[:-1], out=gstart[1:])
        ts_o = c.ts[order]
        fl_o = c.flags[order]
        dir_o = swap[order].astype(np.int64)
        tcp_o = c.proto[order] == TCP
        grp_first = np.zeros(n, bool)
        grp_first[gstart] = True
        gap = np.empty(n)
        gap[0] = 0.0
        gap[1:] = ts_o[1:] - ts_o[:-1]
        # the first packet of each (flow, direction) in the chunk
        gd = inv[order] * 2 + dir_o
        _, fgd = np.unique(gd, return_index=True)
        first_dir = np.zeros(n, bool)
        first_dir[fgd] = True
        att = grp_first | first_dir | (gap >= ATTENTION_GAP) | (tcp_o & ((fl_o & (SYN | FIN | RST)) != 0))
        att_pos = np.flatnonzero(att)
        # Python work: per flow group and per attention packet.
        keys = list(zip(a_hi[first].tolist(), a_lo[first].tolist(), b_hi[first].tolist(), b_lo[first].tolist(),
                        c.proto[first].tolist(), c.v6[first].tolist(), pa[first].tolist(), pb[first].tolist()))
        seg_flow = np.full(n, -1, np.int64)
        cflows: list[Flow] = []
        att_l = att_pos.tolist()
        att_ts = ts_o[att_pos].tolist()
        att_fl = fl_o[att_pos].tolist()
        att_dir = dir_o[att_pos].tolist()
        seq_o = c.seq[order]
        att_seq = seq_o[att_pos].tolist()
        prev_ts = np.concatenate([[0.0], ts_o[:-1]])[att_pos].tolist()
        att_plen = c.plen[order][att_pos].tolist()
        att_row = order[att_pos].tolist()
        gbound = np.searchsorted(att_pos, np.append(gstart, n)).tolist()
        gstart_l = gstart.tolist()
        counts_l = counts.tolist()
        full: dict[str, list[Any]] = {}  # per-packet lists, made only if a timer splits between attention packets

        def packet_lists() -> dict[str, list[Any]]:
            if not full:
                full.update(ts=ts_o.tolist(), fl=fl_o.tolist(), dir=dir_o.tolist(), seq=seq_o.tolist(),
                            plen=c.plen[order].tolist(), row=order.tolist())
            return full

        def split_quiet(flow: Flow, lo: int, hi: int) -> Flow:
            """Packets lo..hi-1 (no attention packet among them) past the flow's close/attempt
            timers start new flows, as the engine's lazy timers make them."""
            while lo < hi:
                e = flow.end_time(idle=False)
                pl = packet_lists()
                if pl["ts"][hi - 1] < e:
                    break
                j = bisect.bisect_left(pl["ts"], e, lo, hi)
                if j >= hi:
                    break
                self._retire(flow)
                flow = self._new_flow(key, pl["ts"][j], pl["fl"][j], pl["dir"][j], pl["plen"][j], c, pl["row"][j])
                cflows.append(flow)
                seg_flow[j] = len(cflows) - 1
                self._control(flow, pl["ts"][j], pl["fl"][j], pl["dir"][j], pl["seq"][j])
                flow.sent |= 1 << pl["dir"][j]
                flow.last_ts = pl["ts"][j]
                lo = j + 1
            return flow

        t1 = _clock()
        STAGE_CPU["3 flows: keys, np.unique grouping, attention marks (numpy)"] += t1 - t0
        for g, key in enumerate(keys):
            flow = self.live.get(key)
            a0, a1 = gbound[g], gbound[g + 1]
            gs = gstart_l[g]
            ge = gs + counts_l[g]
            is_tcp = key[4] == TCP
            prev_pos = gs
            for k in range(a0, a1):
                pos, ts, fl, dr = att_l[k], att_ts[k], att_fl[k], att_dir[k]
                if flow is not None:
                    if pos != gs:
                        if is_tcp and pos > prev_pos + 1 and prev_ts[k] >= flow.end_time(idle=False):
                            flow = split_quiet(flow, prev_pos + 1, pos)
                        if prev_ts[k] > flow.last_ts:  # noqa: PLR1730 - max() costs a call per packet here
                            flow.last_ts = prev_ts[k]
                    if ts >= flow.end_time() or (fl & SYN and not fl & ACK and is_tcp and self._reuse(
                            flow, att_seq[k])):
                        self._retire(flow)
                        flow = None
                if flow is None:
                    flow = self._new_flow(key, ts, fl, dr, att_plen[k], c, att_row[k])
                    cflows.append(flow)
                    seg_flow[pos] = len(cflows) - 1
                elif pos == gs:
                    cflows.append(flow)
                    seg_flow[pos] = len(cflows) - 1
                if is_tcp:
                    self._control(flow, ts, fl, dr, att_seq[k])
                flow.sent |= 1 << dr
                if ts > flow.last_ts:  # noqa: PLR1730 - max() costs a call per packet here
                    flow.last_ts = ts
                prev_pos = pos
            assert flow is not None
            if is_tcp and ge > prev_pos + 1:
                flow = split_quiet(flow, prev_pos + 1, ge)
            self.live[key] = flow
        t2 = _clock()
        STAGE_CPU["4 flows: Python per flow group and per attention packet"] += t2 - t1
        # every packet to its flow: forward fill from the segment starts
        idx = np.where(seg_flow >= 0, np.arange(n), 0)
        np.maximum.accumulate(idx, out=idx)
        fid = seg_flow[idx]
        k2 = len(cflows)
        cnt2 = np.bincount(fid * 2 + dir_o, minlength=2 * k2).tolist()
        byt2 = np.bincount(fid * 2 + dir_o, weights=c.ip_len[order], minlength=2 * k2).astype(np.int64).tolist()
        rst = np.bincount(fid, weights=(tcp_o & ((fl_o & RST) != 0)), minlength=k2).astype(np.int64).tolist()
        last_pos = np.zeros(k2, np.int64)
        np.maximum.at(last_pos, fid, np.arange(n))
        last_ts_l = ts_o[last_pos].tolist()
        for i, f in enumerate(cflows):
            n0, n1 = cnt2[2 * i], cnt2[2 * i + 1]
            f.pk0 += n0
            f.pk1 += n1
            f.by0 += byt2[2 * i]
            f.by1 += byt2[2 * i + 1]
            f.rst += rst[i]
            if last_ts_l[i] > f.last_ts:  # noqa: PLR1730 - max() costs a call per packet here
                f.last_ts = last_ts_l[i]
            if n0:
                f.sent |= 1
            if n1:
                f.sent |= 2
        self.now = max(self.now, float(c.ts.max()))
        t3 = _clock()
        STAGE_CPU["5 flows: counters (bincount) added to the flow objects"] += t3 - t2
        self._payloads(c, order, fid, dir_o, tcp_o, cflows)
        for f in self.retired:
            self._finish(f)
        self.retired.clear()
        t4 = _clock()
        STAGE_CPU["6 ClientHello: client payloads, SNI"] += t4 - t3
        self.dns.chunk(c)
        t5 = _clock()
        STAGE_CPU["7 DNS: memoised parse, pairing, records"] += t5 - t4
        live = self.live
        for f in cflows:
            if live.get(f.key) is f:
                self._schedule(f, f.end_time())
        self._expire(self.now)
        STAGE_CPU["8 flow end: timers, records, JSON"] += _clock() - t5

    def _schedule(self, f: Flow, d: float) -> None:
        if d == f.deadline:
            return
        f.deadline = d
        b = int(d)
        lst = self.wheel.get(b)
        if lst is None:
            self.wheel[b] = [f]
            heapq.heappush(self.wheel_keys, b)
        else:
            lst.append(f)

    def _reuse(self, flow: Flow, seq: int) -> bool:
        """The engine's is_reuse for a SYN without ACK."""
        if flow.closed:
            return True
        return flow.start_seq is None or seq != flow.start_seq[flow.orig]

    def _new_flow(self, key: tuple[int, ...], ts: float, fl: int, dr: int, plen: int, c: Cols, row: int) -> Flow:
        self.serial += 1
        f = Flow(key, self.serial, ts)
        if key[4] == TCP:
            if fl & SYN:
                f.orig = dr if not fl & ACK else 1 - dr
            else:
                sender_port, other_port = (key[6], key[7]) if dr == 0 else (key[7], key[6])
                role = client_side_by_content(c.payload(row)) if plen else None
                client = role if role is not None else client_side_by_ports(sender_port, other_port)
                f.orig = dr if client == 0 else 1 - dr
                f.decided = role is not None
        else:
            sender_port, other_port = (key[6], key[7]) if dr == 0 else (key[7], key[6])
            f.orig = dr if client_side_by_ports(sender_port, other_port) == 0 else 1 - dr
        return f

    @staticmethod
    def _control(f: Flow, ts: float, fl: int, dr: int, seq: int) -> None:
        """What a TCP attention packet changes in the timers (Zeek's state machine, reduced)."""
        first_of_side = not f.sent >> dr & 1
        if first_of_side:
            if f.start_seq is None:
                f.start_seq = [None, None]
            f.start_seq[dr] = seq
        if fl & SYN:
            if not fl & ACK:
                if first_of_side and dr == f.orig:
                    f.attempt_at = ts
                    f.base = (seq + 1) & M32
            else:
                f.in_hs = False
        else:
            f.in_hs = False
        if fl & (FIN | RST) and not f.closed >> dr & 1:
            f.closed |= 1 << dr
            peer = 1 - dr
            if fl & RST or f.closed >> peer & 1 or not f.sent >> peer & 1:
                f.delete_at = ts  # Zeek: delete at LastTime + tcp_close_delay
                f.attempt_at = None
                f.partial_at = None
            elif first_of_side:
                f.partial_at = ts
        elif fl & RST and f.delete_at is None:
            f.delete_at = ts

    # -- ClientHello --------------------------------------------------------------------------

    def _payloads(self, c: Cols, order: np.ndarray, fid: np.ndarray, dir_o: np.ndarray, tcp_o: np.ndarray,
                  cflows: list[Flow]) -> None:
        want = np.array([not f.done_hello for f in cflows], bool)
        if not want.any():
            return
        plen_o = c.plen[order]
        cand = tcp_o & (plen_o > 0) & want[fid]
        undecided = [i for i, f in enumerate(cflows) if not f.decided]
        if undecided:  # midstream flows: the first payload decides who is the client, as in the engine
            pos = np.flatnonzero(cand & np.isin(fid, undecided))
            for j in pos.tolist():
                f = cflows[int(fid[j])]
                if f.decided:
                    continue
                f.decided = True
                role = client_side_by_content(c.payload(int(order[j])))
                if role is not None:
                    f.orig = int(dir_o[j]) if role == 0 else 1 - int(dir_o[j])
        client = np.array([f.orig for f in cflows], np.int64)
        pos = np.flatnonzero(cand & (dir_o == client[fid]))
        if not len(pos):
            return
        touched: dict[int, Flow] = {}
        rows = order[pos]
        seqs = c.seq[rows].tolist()
        buf, side = c.buf, c.side
        for j, seq, row, ps, pe in zip(fid[pos].tolist(), seqs, rows.tolist(), c.pay_start[rows].tolist(),
                                       c.pay_end[rows].tolist()):
            f = cflows[j]
            if f.done_hello:
                continue
            if f.base is None:
                f.base = seq
            off = (seq - f.base) & M32
            if off >= HELLO_WINDOW:
                continue
            if f.pieces is None:
                f.pieces = []
            f.pieces.append((off, buf[ps:pe] if ps >= 0 else side[int(c.rec[row])]))
            touched[j] = f
        for f in touched.values():
            self._try_hello(f)

    def _try_hello(self, f: Flow) -> None:
        assert f.pieces is not None
        f.pieces.sort(key=lambda p: p[0])
        data = bytearray()
        for off, pay in f.pieces:
            if off > len(data):
                break
            if off + len(pay) > len(data):
                data += pay[len(data) - off:]
        res = _hello_in_stream(bytes(data[:HELLO_WINDOW]))
        if res is None and len(data) < HELLO_WINDOW:
            return  # wait for more bytes
        f.done_hello = True
        f.pieces = None
        if res is not None and res[0]:
            f.hello = True
            f.sni = res[1]

    # -- finishing and output ---------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        keys, wheel, live = self.wheel_keys, self.wheel, self.live
        while keys and keys[0] <= now:
            b = keys[0]
            due = wheel[b]
            keep = []
            for f in due:
                if live.get(f.key) is not f or int(f.deadline) != b:
                    continue  # gone, or rescheduled to a later bucket
                if f.deadline <= now:
                    actual = f.end_time()
                    if actual <= now:
                        self._finish(f)
                    else:
                        f.deadline = 0.0
                        self._schedule(f, actual)
                else:
                    keep.append(f)
            if keep:
                wheel[b] = keep
                break  # this second is not over yet
            del wheel[b]
            heapq.heappop(keys)

    def _text(self, v6: bool, hi: int, lo: int) -> str:
        k = (v6, hi, lo)
        t = self.ip_text.get(k)
        if t is None:
            if v6:
                t = socket.inet_ntop(socket.AF_INET6, hi.to_bytes(8, "big") + lo.to_bytes(8, "big"))
            else:
                t = socket.inet_ntop(socket.AF_INET, (lo & M32).to_bytes(4, "big"))
            if len(self.ip_text) < 100_000:
                self.ip_text[k] = t
        return t

    def _retire(self, f: Flow) -> None:
        """Ended by a later packet of its 5-tuple: written once this chunk's counters are in."""
        if self.live.get(f.key) is f:
            del self.live[f.key]
        self.retired.append(f)

    def _finish(self, f: Flow) -> None:
        if self.live.get(f.key) is f:
            del self.live[f.key]
        if f.pieces and not f.done_hello:
            self._finish_hello(f)
        a_hi, a_lo, b_hi, b_lo, proto, v6, pa, pb = f.key
        o = f.orig
        ends = ((a_hi, a_lo, pa), (b_hi, b_lo, pb))
        (ch, cl, cp), (sh, sl, sp) = ends[o], ends[1 - o]
        cip, sip = self._text(v6, ch, cl), self._text(v6, sh, sl)
        proto_name = "tcp" if proto == TCP else "udp"
        cpk, spk, cby, sby = (f.pk0, f.pk1, f.by0, f.by1) if o == 0 else (f.pk1, f.pk0, f.by1, f.by0)
        self.flows += 1
        self.flows_by_proto[proto_name] += 1
        if f.rst:
            self.rst_flows += 1
        if f.hello:
            self.hellos += 1
            if f.sni:
                self.sni[f.sni] += 1
            else:
                self.no_sni += 1
        rec = {"event_type": "flow", "proto": proto_name, "client": {"ip": cip, "port": cp},
               "server": {"ip": sip, "port": sp}, "ts_start": f.first_ts, "ts_end": f.last_ts,
               "packets": {"c2s": cpk, "s2c": spk}, "bytes": {"c2s": cby, "s2c": sby},
               "rst": f.rst, "tls_client_hello": f.hello, "sni": f.sni}
        self._write(rec)
        if self.keep:
            self.kept[(proto_name, cip, cp, sip, sp, round(f.first_ts, 6))] = (
                cpk, spk, cby, sby, f.rst, f.hello, f.sni)

    def _finish_hello(self, f: Flow) -> None:
        assert f.pieces is not None
        f.pieces.sort(key=lambda p: p[0])
        data = bytearray()
        for off, pay in f.pieces:
            if off > len(data):
                break
            if off + len(pay) > len(data):
                data += pay[len(data) - off:]
        res = _hello_in_stream(bytes(data))
        f.done_hello = True
        f.pieces = None
        if res is not None and res[0]:
            f.hello = True
            f.sni = res[1]

    def _write(self, rec: dict[str, Any]) -> None:
        line = _dumps(rec)
        self.written += len(line) + 1
        if self.out is not None:
            self.out.write(line)
            self.out.write(b"\n")

    def finish(self) -> None:
        for f in sorted(self.live.values(), key=lambda f: f.serial):
            self._finish(f)
        self.wheel.clear()
        self.wheel_keys.clear()
        self.dns.finish()

    def counts(self) -> dict[str, Any]:
        return {"packets": self.packets, "flows": self.flows, "flows_by_proto": dict(self.flows_by_proto),
                "client_hellos": self.hellos, "client_hellos_without_sni": self.no_sni,
                "sni": dict(self.sni.most_common()), "dns_transactions": self.dns.transactions,
                "dns_cache": {"hits": self.dns.hits, "misses": self.dns.misses},
                "flows_with_rst": self.rst_flows, "json_bytes": self.written, "json": JSON_LIB}


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorised (uint64 arithmetic wraps)."""
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _hello_in_stream(data: bytes) -> tuple[bool, str | None] | None:
    """client_hello_sni where the engine looks: at 0, or after RDP's X.224 preamble (tls_start)."""
    if data and data[0] == 3:
        start = tls_start(data)
        if start is None:
            return None if len(data) < 64 else (False, None)
        data = data[start:]
    return client_hello_sni(data)


def client_hello_sni(data: bytes) -> tuple[bool, str | None] | None:
    """(True, SNI or None) for a ClientHello at the start of data, (False, None) if the stream
    is not a TLS handshake, None if more bytes are needed. Handshake messages may span records."""
    if len(data) < 6:
        return None if not data or data[0] == 0x16 else (False, None)
    if data[0] != 0x16 or data[1] != 3 or data[5] != 1:
        return (False, None)
    hs = bytearray()
    pos = 0
    need = None
    while need is None or len(hs) < need:
        if len(data) - pos < 5:
            return None
        if data[pos] != 0x16:
            return (False, None)
        rlen = (data[pos + 3] << 8) | data[pos + 4]
        if len(data) - pos - 5 < rlen:
            hs += data[pos + 5:]
            if need is None and len(hs) >= 4:
                need = 4 + int.from_bytes(hs[1:4], "big")
            return None if need is None or len(hs) < need else _sni_of(bytes(hs[4:need]))
        hs += data[pos + 5:pos + 5 + rlen]
        pos += 5 + rlen
        if need is None and len(hs) >= 4:
            need = 4 + int.from_bytes(hs[1:4], "big")
    return _sni_of(bytes(hs[4:need]))


def _sni_of(body: bytes) -> tuple[bool, str | None]:
    """SNI of a ClientHello body (the engine's _printable_name for odd bytes)."""
    try:
        p = 34
        p += 1 + body[p]  # session id
        p += 2 + int.from_bytes(body[p:p + 2], "big")  # cipher suites
        p += 1 + body[p]  # compression methods
        if p + 2 > len(body):
            return (True, None)
        end = p + 2 + int.from_bytes(body[p:p + 2], "big")
        p += 2
        while p + 4 <= end:
            etype = int.from_bytes(body[p:p + 2], "big")
            elen = int.from_bytes(body[p + 2:p + 4], "big")
            if etype == 0:
                q = p + 6
                while q + 3 <= p + 4 + elen:
                    nlen = int.from_bytes(body[q + 1:q + 3], "big")
                    if body[q] == 0:
                        raw = body[q + 3:q + 3 + nlen]
                        if all(0x21 <= b < 0x7F for b in raw):
                            return (True, raw.decode("ascii"))
                        return (True, "".join(chr(b) if 0x21 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}"
                                              for b in raw))
                    q += 3 + nlen
                return (True, None)
            p += 4 + elen
        return (True, None)
    except IndexError:
        return (True, None)


# ---------------------------------------------------------------------------------------------
# 4. DNS over UDP
# ---------------------------------------------------------------------------------------------

class DNSPart:
    """Queries paired with responses as analyzer.dnsmap.DNSTracker pairs them, with the
    parse memoised on the message without its id."""

    def __init__(self, owner: Prototype) -> None:
        self.owner = owner
        self.cache: dict[bytes, tuple[DNSMessage, tuple[Any, ...]] | None] = {}
        self.pending: dict[tuple[Any, ...], tuple[float, tuple[Any, ...]]] = {}
        self.answered: dict[tuple[Any, ...], float] = {}
        self.transactions = 0
        self.hits = self.misses = 0
        self.last_expire = 0.0

    def chunk(self, c: Cols) -> None:
        rows = np.flatnonzero((c.proto == UDP) & (c.plen > 0) & (np.isin(c.sport, DNS_PORTS) | np.isin(c.dport,
                                                                                                   DNS_PORTS)))
        if not len(rows):
            return
        ts_l = c.ts[rows].tolist()
        v6_l = c.v6[rows].tolist()
        # one int per endpoint (address and port): compact keys for the pending/answered tables
        src = ((c.src_hi[rows].astype(object) << 80) | (c.src_lo[rows].astype(object) << 16) | c.sport[rows]).tolist()
        dst = ((c.dst_hi[rows].astype(object) << 80) | (c.dst_lo[rows].astype(object) << 16) | c.dport[rows]).tolist()
        cache = self.cache
        buf, side, recs = c.buf, c.side, c.rec
        for i, (row, ps, pe) in enumerate(zip(rows.tolist(), c.pay_start[rows].tolist(), c.pay_end[rows].tolist())):
            payload = buf[ps:pe] if ps >= 0 else side[int(recs[row])]
            if len(payload) < 12:
                continue
            body = payload[2:]
            hit = cache.get(body, False)
            if hit is False:
                self.misses += 1
                try:
                    msg = parse_message(payload)
                except ParseError:
                    hit = None
                else:
                    q = msg.question
                    qkey = (q.normalized_name, q.qtype, q.qclass) if q is not None else ("", 0, 0)
                    hit = (msg, (qkey, msg.qr, rcode_name(msg.rcode) if msg.qr else None,
                                 q.name if q is not None else ""))
                if len(cache) >= DNS_CACHE_MAX:
                    cache.clear()
                cache[body] = hit
            else:
                self.hits += 1
            if hit is None:
                continue
            qkey, qr, rcode, qname = hit[1]
            ident = (payload[0] << 8) | payload[1]
            ts = ts_l[i]
            v6 = v6_l[i]
            if not qr:
                key = (v6, src[i], dst[i], ident, qkey)
                if key not in self.pending:
                    self.pending[key] = (ts, hit[1])
            else:
                key = (v6, dst[i], src[i], ident, qkey)
                pend = self.pending.pop(key, None)
                if pend is None:
                    if ts - self.answered.get(key, -1e18) < DNS_PENDING:
                        continue  # a second answer to one question: the engine counts a weird
                else:
                    self.answered[key] = ts
                self._emit(ts if pend is None else pend[0], v6, dst[i], src[i], ident, qname, rcode, ts)
            if ts - self.last_expire > DNS_PENDING:
                self._expire(ts)

    def _emit(self, ts: float, v6: bool, client: int, server: int, ident: int, qname: str, rcode: str | None,
              rts: float | None) -> None:
        self.transactions += 1
        o = self.owner
        o._write({"event_type": "dns", "ts": ts,
                  "client": {"ip": o._text(v6, client >> 80, (client >> 16) & 0xFFFFFFFFFFFFFFFF),
                             "port": client & 0xFFFF},
                  "server": {"ip": o._text(v6, server >> 80, (server >> 16) & 0xFFFFFFFFFFFFFFFF),
                             "port": server & 0xFFFF},
                  "id": ident, "query": qname, "rcode": rcode, "response_ts": rts})

    def _expire(self, now: float, everything: bool = False) -> None:
        self.last_expire = now
        horizon = now - DNS_PENDING
        self.answered = {k: t for k, t in self.answered.items() if t >= horizon}
        for key, (ts, info) in list(self.pending.items()):
            if ts < horizon or everything:
                del self.pending[key]
                v6, client, server, ident, _ = key
                self._emit(ts, v6, client, server, ident, info[3], None, None)

    def finish(self) -> None:
        self._expire(float("inf"), everything=True)


# ---------------------------------------------------------------------------------------------
# driver, check
# ---------------------------------------------------------------------------------------------

def run(path: Path, out: BinaryIO | None, keep: bool = False, part: tuple[int, int] | None = None) -> Prototype:
    proto = Prototype(out, keep, part)
    for c in iter_chunks(path, proto.decoder):
        proto.chunk(c)
    t0 = _clock()
    proto.finish()
    STAGE_CPU["8 flow end: timers, records, JSON"] += _clock() - t0
    return proto


def _worker(args: tuple[Path, str, int, int, bool]) -> tuple[dict[str, Any], dict[Any, Any], float]:
    path, output, i, parts, keep = args
    t0 = time.process_time()
    dest = output if output == "/dev/null" else f"{output}.{i}"
    with open(dest, "wb", buffering=1 << 20) as out:
        proto = run(path, out, keep, (i, parts))
    return proto.counts(), proto.kept, time.process_time() - t0


def run_parallel(path: Path, output: str, parts: int, keep: bool = False) -> tuple[dict[str, Any], dict[Any, Any], float]:
    """`parts` forked processes, each reading (mmap) and bulk-decoding the whole file but keeping
    only its share of the flows; counts merged. Output: one JSON lines file per process."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(parts) as pool:
        results = pool.map(_worker, [(path, output, i, parts, keep) for i in range(parts)])
    counts: dict[str, Any] = {}
    kept: dict[Any, Any] = {}
    cpu = 0.0
    for part, k, c in results:
        kept.update(k)
        cpu += c
        for key, v in part.items():
            if isinstance(v, dict):
                acc = counts.setdefault(key, {})
                for kk, vv in v.items():
                    acc[kk] = acc.get(kk, 0) + vv if isinstance(vv, int) else vv
            elif isinstance(v, int) and not isinstance(v, bool):
                counts[key] = counts.get(key, 0) + v
            else:
                counts[key] = v
    return counts, kept, cpu


def engine_facts(path: Path) -> tuple[dict[tuple[Any, ...], tuple[Any, ...]], int, float]:
    from analyzer.engine import run_engine

    t0 = time.process_time()
    res = run_engine([path])
    cpu = time.process_time() - t0
    facts: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for f in res.flows:
        r = f.flow
        if r.proto not in (TCP, UDP):
            continue
        ch = f.tls.client_hello if f.tls is not None and not f.tls.tunnelled else None
        facts[("tcp" if r.proto == TCP else "udp", r.client_ip, r.client_port, r.server_ip, r.server_port,
               round(r.ts_start, 6))] = (r.client.packets, r.server.packets, r.client.ip_bytes, r.server.ip_bytes,
                                         r.rst_total, ch is not None, ch.server_name if ch is not None else None)
    dns_udp = sum(1 for t in res.dns if t.transport == "udp")
    if len(res.flows) > 10_000:  # what the engine's result holds on to (bench/README.md, memory)
        stream_bytes = segs = records = 0
        for f in res.flows:
            for d in (f.flow.client, f.flow.server):
                if d.stream is not None:
                    stream_bytes += len(d.stream.data)
                    segs += len(d.stream.segments)
            if f.tls is not None:
                records += len(f.tls.encrypted_records)
        print(f"     engine result retains {stream_bytes / 2**20:.0f} MiB of reassembled stream bytes, "
              f"{segs:,} segment timestamps, {records:,} TLS record entries in {len(res.flows):,} flows", flush=True)
    return facts, dns_udp, cpu


def check(paths: list[Path], workers: int = 1) -> int:
    """Engine vs prototype, flow by flow, on each capture; exit status 1 on any difference."""
    total_flows = total_bad = 0
    bad_files = 0
    fields = ("c_pkts", "s_pkts", "c_bytes", "s_bytes", "rst", "client_hello", "sni")
    for path in paths:
        ref, ref_dns, ref_cpu = engine_facts(path)
        t0 = time.process_time()
        if workers > 1:
            counts, got, cpu = run_parallel(path, "/dev/null", workers, keep=True)
            dns = counts["dns_transactions"]
        else:
            proto = run(path, None, keep=True)
            cpu = time.process_time() - t0
            got, dns = proto.kept, proto.dns.transactions
        missing = [k for k in ref if k not in got]
        extra = [k for k in got if k not in ref]
        diff = [k for k in ref if k in got and ref[k] != got[k]]
        dns_ok = ref_dns == dns
        bad = len(missing) + len(extra) + len(diff)
        total_flows += len(ref)
        total_bad += bad
        status = "ok" if not bad and dns_ok else "DIFF"
        bad_files += status != "ok"
        print(f"{status:4} {path}: {len(ref)} flows, dns {ref_dns}/{dns}, engine {ref_cpu:.2f} s, "
              f"prototype {cpu:.2f} s" + (f"; missing {len(missing)} extra {len(extra)} differing {len(diff)}"
                                         if bad else ""))
        for k in diff[:3]:
            d = {f: (a, b) for f, a, b in zip(fields, ref[k], got[k]) if a != b}
            print(f"     {k}: engine vs prototype {d}")
        for k in missing[:3]:
            print(f"     only in engine: {k} {dict(zip(fields, ref[k]))}")
        for k in extra[:3]:
            print(f"     only in prototype: {k} {dict(zip(fields, got[k]))}")
    print(f"{len(paths)} captures, {total_flows} engine flows, {total_bad} flow differences, "
          f"{bad_files} captures with a difference")
    return 1 if bad_files else 0


def corpus_files() -> list[Path]:
    root = REPO / "tests" / "fixtures" / "corpus"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".pcap", ".pcapng", ".cap", ".gz"))


def main() -> int:
    global CHUNK_BYTES
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("-o", "--output", default="/dev/null", help="JSON lines of flows and DNS transactions")
    ap.add_argument("--counts-out", type=Path, help="write the counts (for bench_engine.py) here")
    ap.add_argument("--check", action="store_true", help="compare with analyzer.engine (corpus + FILES)")
    ap.add_argument("--chunk-mb", type=int, default=32, help="MiB of capture per chunk (default 32)")
    ap.add_argument("--workers", type=int, default=1, help="processes, each taking a share of the flows")
    ap.add_argument("--timing", action="store_true", help="print CPU seconds per step")
    args = ap.parse_args()
    CHUNK_BYTES = args.chunk_mb << 20
    if args.check:
        return check(corpus_files() + list(args.files), args.workers)
    if len(args.files) != 1:
        ap.error("one capture file")
    t0 = time.process_time()
    if args.workers > 1:
        counts, _, cpu = run_parallel(args.files[0], args.output, args.workers)
        counts |= {"cpu": round(time.process_time() - t0 + cpu, 2), "workers": args.workers}
    else:
        with open(args.output, "wb", buffering=1 << 20) as out:
            proto = run(args.files[0], out)
        counts = proto.counts() | {"cpu": round(time.process_time() - t0, 2), "workers": 1}
    counts["summary"] = (f"{counts['flows']:,} flows {counts['flows_by_proto']}, {counts['client_hellos']:,} "
                         f"ClientHellos ({counts['client_hellos_without_sni']:,} without SNI), "
                         f"{counts['dns_transactions']:,} DNS-over-UDP transactions, "
                         f"{counts['flows_with_rst']:,} flows with RST, cpu {counts['cpu']} s")
    if args.workers == 1:
        counts["steps_cpu"] = {k: round(v, 2) for k, v in sorted(STAGE_CPU.items())}
    if args.timing:
        for k, v in sorted(STAGE_CPU.items()):
            print(f"{v:6.2f} s  {k}")
        print(f"{counts['cpu']:6.2f} s  total CPU after the imports")
    if args.counts_out:
        args.counts_out.write_text(json.dumps(counts))
    else:
        print(json.dumps(counts, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
