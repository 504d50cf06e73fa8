#!/usr/bin/env python3
"""Reference output of the Python flow table, for diffing against the Rust one.

    flows_ref.py CAPTURE DUMP [key=value ...]      decode CAPTURE, write the packets to DUMP
    flows_ref.py --gen SEED N DUMP [key=value ...] generate N adversarial packets into DUMP
    flows_ref.py --conv SEED N DUMP [key=value ...] generate N packets of whole connections into DUMP
    flows_ref.py --scan SEED N DUMP [key=value ...] a SYN scan of N hosts (timer heap compaction, eviction)
    flows_ref.py --dump DUMP [key=value ...]       replay an existing DUMP

In every mode the packets are read back from DUMP (so both engines see the same bytes), run
through `analyzer.flows.table.FlowTable` with `FlowConfig(key=value ...)` and one canonical line
per record is printed, in emission order, then the table's counters and weird counts.
`core/examples/flows_dump.rs` prints the same lines for the Rust table:

    python core/tools/flows_ref.py x.pcap /tmp/x.dump max_flows=4 > py.txt
    cargo run --release --offline --example flows_dump -- /tmp/x.dump max_flows=4 > rs.txt
    diff py.txt rs.txt

Canonical values: None `~`, bools `T`/`F`, ints in decimal, floats `f` + the IEEE bits in hex,
bytes `x` + hex, strings as they are when made of [A-Za-z0-9_^.:/-] only, else `h` + UTF-8 hex;
sequences `[a,b]`, records `{name=value ...}` in field order. Addresses are printed as packed
hex (the Rust record keeps them raw), the uid as its inputs (`dup/ts/src/sport/dst/dport/proto`),
`community_id` is left out (a function of the printed client/server 5-tuple).

Dump format (little endian): magic b"FLOWDMP1", then records: tag u8 (1 packet, 2 advance(ts),
0 end). Packet: ts f64, ip_version u8, src (u8 len, bytes), dst, proto u8, ttl u8, ip_id (u8
present, u32), df u8, ip_len u32, sport u16, dport u16, tcp_flags u8, seq u32, ack u32, win u16,
tcp_options (u32 len, bytes), payload (u32 len, bytes), payload_len u32, icmp (u8 present: type
u8, code u8, rest u32, mtu u32, quoted (u8 present: ip_version u8, src, dst, proto u8, sport u16,
dport u16, seq u32, ip_id)), vlan (u16 count, u16 each), iface u32, proc_name (u8 present, u32
len, UTF-8), pid (u8 present, u32), fragmented u8, macs (u8 len, bytes).
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import random
import re
import struct
import sys

import analyzer.flows.table as table_mod
from analyzer.capture.decode import Decoder, IcmpInfo, Packet, Quoted
from analyzer.capture.reader import open_capture
from analyzer.flows.config import FlowConfig
from analyzer.flows.table import FlowTable

MAGIC = b"FLOWDMP1"
TAG_END, TAG_PACKET, TAG_ADVANCE = 0, 1, 2


# -- dump writing / reading ----------------------------------------------------------------


def _opt_u32(v: int | None) -> bytes:
    return b"\x00\x00\x00\x00\x00" if v is None else b"\x01" + struct.pack("<I", v)


def _addr(a: bytes) -> bytes:
    assert len(a) in (4, 16), a
    return bytes([len(a)]) + a


def encode_packet(p: Packet) -> bytes:
    out = [
        struct.pack("<BdB", TAG_PACKET, p.ts, p.ip_version),
        _addr(p.src),
        _addr(p.dst),
        struct.pack("<BB", p.proto, p.ttl),
        _opt_u32(p.ip_id),
        struct.pack("<BIHHBIIH", p.df, p.ip_len, p.sport, p.dport, p.tcp_flags, p.seq, p.ack, p.win),
        struct.pack("<I", len(p.tcp_options)),
        p.tcp_options,
        struct.pack("<I", len(p.payload)),
        p.payload,
        struct.pack("<I", p.payload_len),
    ]
    icmp = p.icmp
    if icmp is None:
        out.append(b"\x00")
    else:
        out.append(struct.pack("<BBBII", 1, icmp.type, icmp.code, icmp.rest, icmp.mtu))
        q = icmp.quoted
        if q is None:
            out.append(b"\x00")
        else:
            out.append(struct.pack("<BB", 1, q.ip_version))
            out += [_addr(q.src), _addr(q.dst), struct.pack("<BHHI", q.proto, q.sport, q.dport, q.seq), _opt_u32(q.ip_id)]
    out.append(struct.pack("<H", len(p.vlan)) + b"".join(struct.pack("<H", v) for v in p.vlan))
    out.append(struct.pack("<I", p.iface))
    if p.proc_name is None:
        out.append(b"\x00")
    else:
        name = p.proc_name.encode("utf-8", "surrogatepass")
        out.append(b"\x01" + struct.pack("<I", len(name)) + name)
    out.append(_opt_u32(p.pid))
    out.append(struct.pack("<BB", p.fragmented, len(p.macs)) + p.macs)
    return b"".join(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.d = data
        self.i = 0

    def take(self, n: int) -> bytes:
        b = self.d[self.i : self.i + n]
        if len(b) != n:
            raise ValueError("dump truncated")
        self.i += n
        return b

    def un(self, fmt: str) -> tuple:
        s = struct.Struct("<" + fmt)
        return s.unpack(self.take(s.size))

    def addr(self) -> bytes:
        (n,) = self.un("B")
        return self.take(n)

    def opt_u32(self) -> int | None:
        present, v = self.un("BI")
        return v if present else None


def read_dump(path: str) -> list[tuple[int, object]]:
    with open(path, "rb") as f:
        r = _Reader(f.read())
    if r.take(8) != MAGIC:
        raise ValueError("not a flows dump")
    ops: list[tuple[int, object]] = []
    while True:
        (tag,) = r.un("B")
        if tag == TAG_END:
            return ops
        if tag == TAG_ADVANCE:
            ops.append((TAG_ADVANCE, r.un("d")[0]))
            continue
        ts, ipv = r.un("dB")
        src, dst = r.addr(), r.addr()
        proto, ttl = r.un("BB")
        ip_id = r.opt_u32()
        df, ip_len, sport, dport, flags, seq, ack, win = r.un("BIHHBIIH")
        opts = r.take(r.un("I")[0])
        payload = r.take(r.un("I")[0])
        (plen,) = r.un("I")
        icmp = None
        if r.un("B")[0]:
            itype, icode, rest, mtu = r.un("BBII")
            quoted = None
            if r.un("B")[0]:
                (qv,) = r.un("B")
                qs, qd = r.addr(), r.addr()
                qp, qsp, qdp, qseq = r.un("BHHI")
                quoted = Quoted(qv, qs, qd, qp, qsp, qdp, qseq, r.opt_u32())
            icmp = IcmpInfo(itype, icode, rest, mtu, quoted)
        (nv,) = r.un("H")
        vlan = tuple(r.un("H")[0] for _ in range(nv))
        (iface,) = r.un("I")
        proc_name = None
        if r.un("B")[0]:
            proc_name = r.take(r.un("I")[0]).decode("utf-8", "surrogatepass")
        pid = r.opt_u32()
        frag, nm = r.un("BB")
        macs = r.take(nm)
        ops.append((TAG_PACKET, Packet(ts, ipv, src, dst, proto, ttl, ip_id, bool(df), ip_len, sport, dport, flags,
                                       seq, ack, win, opts, payload, plen, icmp, vlan, iface, proc_name, pid,
                                       bool(frag), macs)))


def write_dump(path: str, ops: list[tuple[int, object]]) -> None:
    with open(path, "wb") as f:
        f.write(MAGIC)
        for tag, v in ops:
            if tag == TAG_PACKET:
                f.write(encode_packet(v))  # type: ignore[arg-type]
            else:
                f.write(struct.pack("<Bd", TAG_ADVANCE, v))
        f.write(bytes([TAG_END]))


def decode_capture(path: str) -> list[tuple[int, object]]:
    decoder = Decoder()
    ops: list[tuple[int, object]] = []
    for raw in open_capture(path):
        pkt = decoder(raw)
        if pkt is not None:
            ops.append((TAG_PACKET, pkt))
        decoder.arp.clear()
    return ops


# -- adversarial packets -----------------------------------------------------------------------


def generate(seed: int, n: int) -> list[tuple[int, object]]:
    """Packets on few 5-tuples with retransmissions, overlaps, RST storms, clock steps back."""
    rnd = random.Random(seed)
    v4 = [bytes([10, 0, 0, i]) for i in (1, 2, 3)]
    v6 = [bytes(15) + bytes([i]) for i in (1, 2)]
    ports = [80, 443, 5353, 40000, 50000, 1234, 0]
    ts = 1_700_000_000.0 + rnd.random()
    seqs: dict[tuple, int] = {}
    last: Packet | None = None
    ops: list[tuple[int, object]] = []
    flag_choices = [0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x19, 0x01, 0x06, 0x03, 0x22, 0x07, 0x00, 0x10,
                    0x10, 0x18, 0x18, 0x05, 0x13, 0x30]
    for _ in range(n):
        r = rnd.random()
        # the clock: small steps, sometimes a long idle, sometimes backwards (a little or a lot)
        step = rnd.random()
        if step < 0.80:
            ts += rnd.choice([0.0, 0.0001, 0.0005, 0.01, 0.2, 1.0])
        elif step < 0.90:
            ts += rnd.choice([3.0, 5.0, 6.0, 61.0, 301.0])
        elif step < 0.97:
            ts -= rnd.choice([0.5, 10.0])
        else:
            ts -= rnd.choice([61.0, 200.0, 1000.0])
        if r < 0.04:
            ops.append((TAG_ADVANCE, ts + rnd.choice([0.0, 1.0, 10.0, 100.0])))
            continue
        if r < 0.12 and last is not None:
            # the same packet again (a capture's copy, a retransmission), maybe a bit later
            p = last._replace(ts=ts) if rnd.random() < 0.5 else last
            ops.append((TAG_PACKET, p))
            continue
        fam = v4 if rnd.random() < 0.8 else v6
        src, dst = rnd.choice(fam), rnd.choice(fam)
        ipv = 4 if len(src) == 4 else 6
        sport, dport = rnd.choice(ports), rnd.choice(ports)
        kind = rnd.random()
        proto = 6 if kind < 0.6 else 17 if kind < 0.8 else (1 if ipv == 4 else 58) if kind < 0.97 else rnd.choice([47, 6, 17])
        ip_id = rnd.choice([None, 0, rnd.randrange(65536), 65535, 1]) if ipv == 4 else rnd.choice([None, None, 7])
        ttl = rnd.choice([64, 64, 64, 128, 63, 1, 255])
        payload = b""
        plen = 0
        if rnd.random() < 0.4:
            payload = rnd.choice([b"\x16\x03\x01\x00\x05\x01hello", b"\x16\x03\x03\x00\x05\x02hi", b"GET / HTTP/1.1\r\n",
                                  b"HTTP/1.1 200 OK\r\n", b"xyz" * rnd.randrange(1, 5), b"\x16\x03\x03\x00\x05\x0b"])
            plen = len(payload)
            if rnd.random() < 0.1:
                plen += rnd.randrange(1, 100)  # cut by the snaplen
        flags = seq = ack = win = 0
        opts = b""
        icmp = None
        fragmented = rnd.random() < 0.03
        if proto == 6:
            flags = rnd.choice(flag_choices)
            key = (src, sport, dst, dport)
            rkey = (dst, dport, src, sport)
            base = seqs.setdefault(key, rnd.choice([0, 1000, 0xFFFFFF00, 0x7FFFFFF0, rnd.randrange(1 << 32)]))
            how = rnd.random()
            if how < 0.6:
                seq = base
            elif how < 0.8:
                seq = (base - rnd.choice([1, 3, 100, 2000])) & 0xFFFFFFFF  # retransmission / overlap
            elif how < 0.9:
                seq = (base + rnd.choice([1, 5, 3000, 2000000])) & 0xFFFFFFFF  # a hole
            else:
                seq = rnd.randrange(1 << 32)
            seqs[key] = (seq + plen + (1 if flags & 0x03 else 0)) & 0xFFFFFFFF
            peer = seqs.get(rkey)
            ack = peer if peer is not None and rnd.random() < 0.8 else (rnd.randrange(1 << 32) if rnd.random() < 0.5 else 0)
            if peer is not None and rnd.random() < 0.1:
                ack = (peer + rnd.choice([1, 10, 5000, -3])) & 0xFFFFFFFF
            win = rnd.choice([0, 65535, 1024, 1024, 512])
            if flags & 0x02:
                opts = rnd.choice([b"", b"\x02\x04\x05\xb4", b"\x01\x01\x04\x02"])
            if fragmented and rnd.random() < 0.5:
                sport = dport = 0
        elif proto == 17:
            if fragmented and rnd.random() < 0.5:
                sport = dport = 0
        elif proto in (1, 58):
            sport = dport = 0
            if rnd.random() < 0.05:
                icmp = None
            elif rnd.random() < 0.5:
                t = rnd.choice([8, 0, 13, 14] if proto == 1 else [128, 129, 135, 136, 133])
                icmp = IcmpInfo(t, 0, rnd.randrange(1 << 32), 0, None)
            else:
                t = rnd.choice([3, 11] if proto == 1 else [1, 2, 3])
                qsrc, qdst = (dst, src) if rnd.random() < 0.6 else (src, dst)
                if rnd.random() < 0.2:
                    qsrc = rnd.choice(fam)
                q = Quoted(ipv, qsrc, qdst, rnd.choice([6, 17, 6, 1]), rnd.choice(ports), rnd.choice(ports),
                           rnd.randrange(1 << 32), rnd.choice([None, 5]))
                icmp = IcmpInfo(t, rnd.choice([0, 1, 3, 4]), 0, rnd.choice([0, 1280, 1500]), q)
        vlan = rnd.choice([(), (), (10,), (0, 20)])
        iface = rnd.choice([0, 0, 0, 1, 2])
        proc = rnd.choice([(None, None), (None, None), ("curl", 100), ("Safari", 200), (None, 7), ("a b", None)])
        macs = rnd.choice([b"", bytes(range(12)), bytes(range(6)), bytes(range(12, 24))])
        ip_len = 20 + plen + (20 if proto == 6 else 8)
        p = Packet(ts, ipv, src, dst, proto, ttl, ip_id, rnd.random() < 0.5, ip_len, sport, dport, flags, seq, ack,
                   win, opts, payload, plen, icmp, vlan, iface, proc[0], proc[1], fragmented, macs)
        ops.append((TAG_PACKET, p))
        last = p
    return ops


def generate_conversations(seed: int, n: int) -> list[tuple[int, object]]:
    """Whole TCP connections (handshakes, in-order data for the fast path, reordering,
    retransmissions with other bytes, holes the peer acknowledges, zero windows, FIN/RST
    storms, port reuse, midstream starts), UDP exchanges and ICMP errors quoting them,
    on a clock that mostly moves forward and sometimes steps back."""
    rnd = random.Random(seed)
    hosts = [bytes([192, 168, 1, i]) for i in range(1, 5)] + [bytes([10, 9, 0, i]) for i in range(1, 3)]
    hosts6 = [bytes([0x20, 0x01]) + bytes(13) + bytes([i]) for i in range(1, 3)]
    ts = 1_600_000_000.0 + rnd.random()
    ops: list[tuple[int, object]] = []
    conns: list[dict] = []
    payloads = [b"\x16\x03\x01\x02\x00\x01" + bytes(40), b"\x16\x03\x03\x00\x50\x02" + bytes(30),
                b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n", b"A" * 100, b"B" * 7]

    def pkt(src, dst, sport, dport, proto, flags=0, seq=0, ack=0, win=65535, payload=b"", plen=None,
            icmp=None, ttl=64, ip_id=None, proc=(None, None), iface=0, macs=b""):
        p = len(payload) if plen is None else plen
        return Packet(ts, 4 if len(src) == 4 else 6, src, dst, proto, ttl, ip_id, True, 40 + p, sport, dport, flags,
                      seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, win, b"\x02\x04\x05\xb4" if flags & 0x02 else b"", payload,
                      p, icmp, (), iface, proc[0], proc[1], False, macs)

    def new_conn() -> dict:
        fam = hosts if rnd.random() < 0.85 else hosts6
        c, s = rnd.sample(fam, 2)
        return {"c": c, "s": s, "cp": rnd.choice([40000, 50001, 50002, 1234, 5353]), "sp": rnd.choice([443, 80, 8443, 3000]),
                "cseq": rnd.choice([rnd.randrange(1 << 32), 0xFFFFFF00, 0x7FFFFF00]), "sseq": rnd.randrange(1 << 32),
                "phase": 0 if rnd.random() < 0.8 else 3, "cid": rnd.randrange(65536), "sid": rnd.randrange(65536),
                "proc": rnd.choice([(None, None), ("nsurlsessiond", 321), ("curl", 99)]), "ttl": rnd.choice([64, 128, 57])}

    calm = seed % 2 == 1  # odd seeds: long connections, few jumps (the fast path's traffic)
    for _ in range(n):
        step = rnd.random()
        if calm:
            step *= 0.9
        if step < 0.90:
            ts += rnd.choice([0.0, 0.00001, 0.0002, 0.003, 0.05, 0.3])
        elif step < 0.97:
            ts += rnd.choice([2.0, 4.0, 5.5, 30.0, 70.0, 400.0])
        elif step < 0.995:
            ts -= rnd.choice([0.1, 3.0])
        else:
            ts -= rnd.choice([100.0, 3600.0])
        if rnd.random() < 0.01:
            ops.append((TAG_ADVANCE, ts + (0.0 if calm else rnd.choice([0.0, 5.0, 100.0]))))
            continue
        if not conns or (len(conns) < 12 and rnd.random() < 0.05):
            conns.append(new_conn())
        k = rnd.random()
        if k < 0.08:
            # UDP: DNS-ish exchange between a connection's hosts
            cn = rnd.choice(conns)
            a, b = (cn["c"], cn["s"]) if rnd.random() < 0.6 else (cn["s"], cn["c"])
            ops.append((TAG_PACKET, pkt(a, b, rnd.choice([5353, 53000, 53]), rnd.choice([53, 53000, 123]), 17,
                                        payload=bytes([rnd.randrange(256)]) * rnd.randrange(0, 30), ip_id=rnd.randrange(65536))))
            continue
        if k < 0.11:
            cn = rnd.choice(conns)
            proto = 1 if len(cn["c"]) == 4 else 58
            q = Quoted(4 if proto == 1 else 6, cn["c"], cn["s"], rnd.choice([6, 17]), cn["cp"], cn["sp"], cn["cseq"] & 0xFFFFFFFF, None)
            icmp = IcmpInfo(3 if proto == 1 else 1, 4, 0, 1400, q) if rnd.random() < 0.7 else IcmpInfo(
                8 if proto == 1 else 128, 0, 5, 0, None)
            ops.append((TAG_PACKET, pkt(rnd.choice(hosts if proto == 1 else hosts6), cn["c"], 0, 0, proto, icmp=icmp, ttl=250)))
            continue
        cn = rnd.choice(conns)
        c, s, cp, sp = cn["c"], cn["s"], cn["cp"], cn["sp"]
        ph = cn["phase"]
        client_sends = rnd.random() < 0.55
        if client_sends:
            src, dst, spt, dpt, mine, theirs, idk = c, s, cp, sp, "cseq", "sseq", "cid"
        else:
            src, dst, spt, dpt, mine, theirs, idk = s, c, sp, cp, "sseq", "cseq", "sid"
        cn[idk] = (cn[idk] + rnd.choice([1, 1, 1, 0, 2, 3000])) & 0xFFFF
        ip_id = cn[idk] if len(src) == 4 else None
        common = dict(ip_id=ip_id, proc=cn["proc"] if client_sends else (None, None), ttl=cn["ttl"] if client_sends else 60,
                      iface=rnd.choice([0, 0, 0, 0, 1]), macs=bytes(range(12)) if client_sends else bytes(range(1, 13)))
        if ph == 0:  # SYN (sometimes repeated, sometimes with another ISN)
            if rnd.random() < 0.1:
                cn["cseq"] = rnd.randrange(1 << 32)
            ops.append((TAG_PACKET, pkt(c, s, cp, sp, 6, 0x02, cn["cseq"], 0, **{**common, "proc": cn["proc"]})))
            cn["phase"] = 1 if rnd.random() < 0.85 else 0
            continue
        if ph == 1:  # SYN-ACK
            if rnd.random() < 0.05:
                cn["sseq"] = rnd.randrange(1 << 32)
            ops.append((TAG_PACKET, pkt(s, c, sp, cp, 6, 0x12 if rnd.random() < 0.95 else 0x02, cn["sseq"], cn["cseq"] + 1)))
            cn["phase"] = 2 if rnd.random() < 0.9 else 1
            continue
        if ph == 2:  # the handshake's ACK
            cn["cseq"] += 1
            cn["sseq"] += 1
            ops.append((TAG_PACKET, pkt(c, s, cp, sp, 6, 0x10, cn["cseq"], cn["sseq"], **common)))
            cn["phase"] = 3
            continue
        if ph == 4:  # closed or reset: late packets, or reuse of the ports
            r = rnd.random()
            if r < 0.3:
                cn.update(new_conn() | {"c": c, "s": s, "cp": cp, "sp": sp})
            elif r < 0.6:
                ops.append((TAG_PACKET, pkt(src, dst, spt, dpt, 6, 0x10, cn[mine], cn[theirs], **common)))
            else:
                ops.append((TAG_PACKET, pkt(src, dst, spt, dpt, 6, 0x04, cn[mine] + rnd.choice([0, 0, 1, 5000]), 0, **common)))
            if rnd.random() < 0.1:
                conns.remove(cn)
            continue
        # established (or midstream)
        r = rnd.random()
        if calm:
            r = r * 0.88 if rnd.random() < 0.99 else rnd.choice([0.9, 0.95])
        if r < 0.55:  # in-order data (the fast path's case)
            data = rnd.choice(payloads)
            plen = len(data)
            if rnd.random() < 0.03:
                plen += 10  # cut by the snaplen
            ops.append((TAG_PACKET, pkt(src, dst, spt, dpt, 6, rnd.choice([0x18, 0x10]), cn[mine], cn[theirs], payload=data,
                                        plen=plen, **common)))
            cn[mine] += plen
        elif r < 0.70:  # pure ACK (sometimes acking past what was seen: a hole)
            ack = cn[theirs] + (rnd.choice([0, 100, 2000000]) if rnd.random() < 0.1 else 0)
            ops.append((TAG_PACKET, pkt(src, dst, spt, dpt, 6, 0x10, cn[mine], ack,
                                        win=0 if rnd.random() < 0.05 else 65535, **common)))
        elif r < 0.80:  # retransmission / overlap, maybe with other bytes; or a copy at once
            back = rnd.choice([7, 50, 100])
            data = bytes([rnd.choice([0x41, 0x42])]) * back
            ops.append((TAG_PACKET, pkt(src, dst, spt, dpt, 6, 0x18, cn[mine] - back, cn[theirs], payload=data, **common)))
            if rnd.random() < 0.3:
                ops.append((TAG_PACKET, pkt(src, dst, spt, dpt, 6, 0x18, cn[mine] - back, cn[theirs], payload=data, **common)))
        elif r < 0.88:  # out of order: a later segment first, the hole filled or not
            data = rnd.choice(payloads)
            ops.append((TAG_PACKET, pkt(src, dst, spt, dpt, 6, 0x18, cn[mine] + 50, cn[theirs], payload=data, **common)))
            if rnd.random() < 0.7:
                ops.append((TAG_PACKET, pkt(src, dst, spt, dpt, 6, 0x18, cn[mine], cn[theirs], payload=b"h" * 50, **common)))
                cn[mine] += 50 + len(data)
        elif r < 0.94:  # FIN
            ops.append((TAG_PACKET, pkt(src, dst, spt, dpt, 6, 0x11, cn[mine], cn[theirs], **common)))
            cn[mine] += 1
            if rnd.random() < 0.5:
                cn["phase"] = 4
        else:  # RST, sometimes a storm with changing sequence numbers
            for _i in range(rnd.choice([1, 1, 3, 12])):
                ops.append((TAG_PACKET, pkt(src, dst, spt, dpt, 6, rnd.choice([0x04, 0x14]),
                                            cn[mine] + rnd.choice([0, 0, 1, 1460, -5]), cn[theirs], **common)))
            cn["phase"] = 4
    return ops


def generate_scan(seed: int, n: int) -> list[tuple[int, object]]:
    """A SYN scan: n SYNs to distinct hosts at ~4000/s, some refused, some answered, some
    repeated, with a few idle gaps: many live flows and stale timer entries, so the heap is
    compacted (`_compact_timers`) and, with a small max_flows, flows are evicted."""
    rnd = random.Random(seed)
    me = bytes([10, 0, 0, 1])
    ops: list[tuple[int, object]] = []
    ts = 1000.0

    def syn_pkt(src, sp, dst, dp, flags, seq, ack):
        return Packet(ts, 4, src, dst, 6, 64, rnd.randrange(65536), True, 40, sp, dp, flags, seq & 0xFFFFFFFF,
                      ack & 0xFFFFFFFF, 1024, b"", b"", 0, None, (), 0, None, None, False, b"")

    for i in range(n):
        dst = bytes([10, 1, (i >> 8) & 255, i & 255])
        dp = rnd.choice([22, 80, 443, 8080])
        sp = 40000 + i % 20000
        ops.append((TAG_PACKET, syn_pkt(me, sp, dst, dp, 0x02, i * 7, 0)))
        r = rnd.random()
        if r < 0.3:
            ops.append((TAG_PACKET, syn_pkt(dst, dp, me, sp, 0x14, 0, i * 7 + 1)))
        elif r < 0.4:
            ops.append((TAG_PACKET, syn_pkt(dst, dp, me, sp, 0x12, i, i * 7 + 1)))
        elif r < 0.45:
            ops.append((TAG_PACKET, syn_pkt(me, sp, dst, dp, 0x02, i * 7, 0)))
        ts += rnd.choice([0.0001, 0.0002, 0.0003])
        if rnd.random() < 0.0005:
            ts += rnd.choice([10.0, 70.0])
        if rnd.random() < 0.0002:
            ops.append((TAG_ADVANCE, ts + 1.0))
    return ops


# -- canonical text ----------------------------------------------------------------------------

_SAFE = re.compile(r"[A-Za-z0-9_^.:/-]*")


def _packed(text: str) -> str:
    return ipaddress.ip_address(text).packed.hex()


def fmt(v: object, name: str = "") -> str:
    if v is None:
        return "~"
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, enum.Enum):
        return str(v.value)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "f" + struct.pack(">d", v).hex()
    if isinstance(v, (bytes, bytearray)):
        return "x" + bytes(v).hex()
    if isinstance(v, str):
        if name in ("client_ip", "server_ip", "reporter"):
            return _packed(v)
        if name in ("client_mac", "server_mac"):
            return v.replace(":", "")
        return v if _SAFE.fullmatch(v) else "h" + v.encode("utf-8", "surrogatepass").hex()
    if isinstance(v, (tuple, list)):
        return "[" + ",".join(fmt(x) for x in v) + "]"
    if dataclasses.is_dataclass(v):
        parts = []
        for f in dataclasses.fields(v):
            if f.name == "community_id":
                continue
            parts.append(f"{f.name}={fmt(getattr(v, f.name), f.name)}")
        return "{" + " ".join(parts) + "}"
    raise TypeError(type(v))


def _uid_inputs(dup: int, ts: float, src: bytes, sport: int, dst: bytes, dport: int, proto: int) -> str:
    return f"{dup}/{fmt(ts)}/{src.hex()}/{sport}/{dst.hex()}/{dport}/{proto}"


def parse_config(args: list[str]) -> FlowConfig:
    kw: dict[str, object] = {}
    defaults = FlowConfig()
    for a in args:
        k, _, v = a.partition("=")
        kw[k] = type(getattr(defaults, k))(float(v) if isinstance(getattr(defaults, k), float) else int(v))
    return FlowConfig(**kw)  # type: ignore[arg-type]


def run(ops: list[tuple[int, object]], config: FlowConfig, out) -> None:
    table_mod._uid = _uid_inputs  # the record's uid becomes its inputs (the Rust record carries those)
    table = FlowTable(config)
    w = out.write
    n = 0
    for tag, v in ops:
        if tag == TAG_PACKET:
            n += 1
            recs = table.add(v)  # type: ignore[arg-type]
            where = str(n)
        else:
            recs = table.advance(v)  # type: ignore[arg-type]
            where = f"a{n}"
        for rec in recs:
            w(f"R {where} {fmt(rec)}\n")
    w(f"S packets={table.packets} live={len(table)} next_timer={fmt(table.next_timer)}\n")
    for rec in table.flush():
        w(f"R end {fmt(rec)}\n")
    w(f"S live={len(table)} next_timer={fmt(table.next_timer)}\n")
    for k, c in sorted(table.weird.items()):
        w(f"W {fmt(k)} {c}\n")


def main(argv: list[str]) -> int:
    generators = {"--gen": generate, "--conv": generate_conversations, "--scan": generate_scan}
    if argv and argv[0] in generators:
        seed, n, dump, rest = int(argv[1]), int(argv[2]), argv[3], argv[4:]
        write_dump(dump, generators[argv[0]](seed, n))
    elif argv and argv[0] == "--dump":
        dump, rest = argv[1], argv[2:]
    elif len(argv) >= 2:
        cap, dump, rest = argv[0], argv[1], argv[2:]
        write_dump(dump, decode_capture(cap))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    config = parse_config(rest)
    run(read_dump(dump), config, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
