"""Reference output of the Python decoder, for the Rust port's differential check.

    decode_ref.py dump OUT CAPTURE...      frames as `open_capture` reads them -> OUT
    decode_ref.py mutate IN OUT [--seed S] [--count N] [--section K]
                                           mutated copies of IN's frames -> OUT
    decode_ref.py crafted OUT              frames built here for the paths fixtures miss -> OUT
    decode_ref.py shards DUMP              engine.raw_shard / shard_of of every frame -> stdout
    decode_ref.py ref DUMP [--nofrags]                 analyzer.capture.decode.Decoder over DUMP -> stdout

`core/examples/decode_dump.rs DUMP` prints the same lines with the Rust decoder, so
`diff <(decode_ref.py ref d) <(decode_dump d)` is the check.

Dump records (little-endian): tag u8; tag 2 starts a section (a new Decoder: one per
capture): u32 length + name; tag 1 is a frame: ts f64, linktype u32, wirelen u32,
iface u32, has_proc u8 [pid i64 (-1 None), name str, epid i64, ename str], data
(u32 length + bytes). A str is u32 length (0xFFFFFFFF: None) + UTF-8.

Lines: `# name` per section; per frame `N` (None) or `P` and every Packet field (floats as
the hex of their bits, bytes as hex, None as `-`); `A ts data macs` per ARP frame; at a
section's end (after `finish()`), `W name count` per weird, sorted by name.
"""

from __future__ import annotations

import random
import struct
import sys
from collections.abc import Iterator

from analyzer.capture.decode import Decoder, Packet
from analyzer.capture.reader import ProcessInfo, RawPacket, open_capture

NONE32 = 0xFFFFFFFF


def _str(s: str | None) -> bytes:
    if s is None:
        return struct.pack("<I", NONE32)
    b = s.encode("utf-8", "surrogatepass")
    return struct.pack("<I", len(b)) + b


def _int(v: int | None) -> bytes:
    return struct.pack("<q", -1 if v is None else v)


def frame_record(raw: RawPacket) -> bytes:
    ts, linktype, data, wirelen, iface, proc = raw
    out = [b"\x01", struct.pack("<dIII", ts, linktype & NONE32, wirelen & NONE32, iface & NONE32)]
    if proc is None:
        out.append(b"\x00")
    else:
        out += [b"\x01", _int(proc.pid), _str(proc.name), _int(proc.epid), _str(proc.ename)]
    out += [struct.pack("<I", len(data)), data]
    return b"".join(out)


def section_record(name: str) -> bytes:
    b = name.encode()
    return b"\x02" + struct.pack("<I", len(b)) + b


def read_dump(path: str) -> Iterator[str | RawPacket]:
    buf = open(path, "rb").read()
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        b = buf[pos : pos + n]
        pos += n
        return b

    def rstr() -> str | None:
        (n,) = struct.unpack("<I", take(4))
        return None if n == NONE32 else take(n).decode("utf-8", "surrogatepass")

    def rint() -> int | None:
        (v,) = struct.unpack("<q", take(8))
        return None if v == -1 else v

    while pos < len(buf):
        tag = take(1)[0]
        if tag == 2:
            (n,) = struct.unpack("<I", take(4))
            yield take(n).decode()
            continue
        ts, linktype, wirelen, iface = struct.unpack("<dIII", take(20))
        proc = None
        if take(1)[0]:
            pid = rint()
            name = rstr()
            epid = rint()
            ename = rstr()
            proc = ProcessInfo(pid, name, epid, ename)
        (n,) = struct.unpack("<I", take(4))
        data = take(n)
        yield RawPacket(ts, linktype, data, wirelen, iface, proc)


def fbits(x: float) -> str:
    return "%016x" % struct.unpack("<Q", struct.pack("<d", x))[0]


def opt(v: object) -> str:
    return "-" if v is None else str(v)


def sname(s: str | None) -> str:
    return "-" if s is None else "s" + s.encode("utf-8", "surrogatepass").hex()


def fmt_packet(p: Packet) -> str:
    if p.icmp is None:
        icmp = "-"
    else:
        i = p.icmp
        q = i.quoted
        quoted = "-" if q is None else (
            f"{q.ip_version},{q.src.hex()},{q.dst.hex()},{q.proto},{q.sport},{q.dport},{q.seq},{opt(q.ip_id)}"
        )
        icmp = f"{i.type},{i.code},{i.rest},{i.mtu},{quoted}"
    return " ".join(
        [
            "P",
            fbits(p.ts),
            str(p.ip_version),
            p.src.hex(),
            p.dst.hex(),
            str(p.proto),
            str(p.ttl),
            opt(p.ip_id),
            str(int(p.df)),
            str(p.ip_len),
            str(p.sport),
            str(p.dport),
            str(p.tcp_flags),
            str(p.seq),
            str(p.ack),
            str(p.win),
            "o" + p.tcp_options.hex(),
            "d" + p.payload.hex(),
            str(p.payload_len),
            icmp,
            "v" + ",".join(map(str, p.vlan)),
            str(p.iface),
            sname(p.proc_name),
            opt(p.pid),
            str(int(p.fragmented)),
            "m" + p.macs.hex(),
        ]
    )


def ref(path: str, frags: bool = True) -> None:
    """`Decoder` per section; `frags=False`: `decode(raw, None, weird, arp)`, no reassembly."""
    out = sys.stdout
    dec: Decoder | None = None

    def new() -> Decoder:
        d = Decoder()
        if not frags:
            d.frags = None
        return d

    def end() -> None:
        if dec is None:
            return
        dec.finish()
        for name in sorted(dec.weird):
            if dec.weird[name]:
                out.write(f"W {name} {dec.weird[name]}\n")

    for item in read_dump(path):
        if isinstance(item, str):
            end()
            dec = new()
            out.write(f"# {item}\n")
            continue
        if dec is None:
            dec = new()
        pkt = dec(item)
        out.write("N\n" if pkt is None else fmt_packet(pkt) + "\n")
        for a in dec.arp:
            out.write(f"A {fbits(a.ts)} d{a.data.hex()} m{a.macs.hex()}\n")
        dec.arp.clear()
    end()


SHARD_COUNTS = (1, 2, 3, 5, 8, 64, 1000003)


def shards(path: str) -> None:
    """`S` + raw_shard per n (`-`: None) + shard_of per n (`-`: no packet), one line a frame."""
    from analyzer.engine import raw_shard, shard_of

    dec = Decoder()
    for item in read_dump(path):
        if isinstance(item, str):
            dec = Decoder()
            continue
        pkt = dec(item)
        dec.arp.clear()
        raws = ",".join(opt(raw_shard(item, n)) for n in SHARD_COUNTS)
        decoded = ",".join("-" if pkt is None else str(shard_of(pkt, n)) for n in SHARD_COUNTS)
        sys.stdout.write(f"S {raws} {decoded}\n")


def dump(out_path: str, captures: list[str]) -> None:
    n = 0
    with open(out_path, "wb") as out:
        for path in captures:
            try:
                reader = open_capture(path)
            except Exception as exc:  # noqa: BLE001 - not a capture: skipped, said on stderr
                print(f"skip {path}: {exc}", file=sys.stderr)
                continue
            out.write(section_record(path))
            for raw in reader:
                out.write(frame_record(raw))
                n += 1
    print(f"{n} frames from {len(captures)} files", file=sys.stderr)


# Link types worth trying a frame under (every decoder, plus unknown ones).
_LINKTYPES = [0, 1, 9, 12, 14, 101, 108, 113, 228, 229, 258, 276, 2, 147]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.random()
    if kind < 0.35 and b:  # flip a few bytes, mostly in the headers
        for _ in range(rng.randint(1, 4)):
            i = min(int(rng.expovariate(1 / 40)), len(b) - 1)
            b[i] = rng.randrange(256) if rng.random() < 0.5 else b[i] ^ (1 << rng.randrange(8))
    elif kind < 0.55:  # truncate
        b = b[: rng.randint(0, len(b))]
    elif kind < 0.7 and b:  # set a header byte to an interesting value
        i = min(int(rng.expovariate(1 / 30)), len(b) - 1)
        b[i] = rng.choice([0, 1, 2, 4, 5, 6, 0x11, 0x21, 0x2C, 0x3A, 0x40, 0x45, 0x46, 0x4F, 0x57, 0x60, 0x81, 0x86,
                           0x88, 0xDD, 0xFF, 0x20, 0x3F, 0x1F, 0x33, 0x3B, 0x8C])
    elif kind < 0.8 and b:  # 16-bit length-ish fields
        i = min(int(rng.expovariate(1 / 30)), len(b) - 2)
        if i >= 0:
            b[i : i + 2] = rng.choice([0, 1, 7, 8, 20, 40, len(b), len(b) + 8, 0xFFFF]).to_bytes(2, "big")
    elif kind < 0.9 and len(b) > 1:  # insert or delete bytes
        i = rng.randrange(len(b))
        if rng.random() < 0.5:
            del b[i : i + rng.randint(1, 8)]
        else:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    else:  # a few of everything
        for _ in range(rng.randint(2, 10)):
            if b:
                b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def mutate(in_path: str, out_path: str, seed: int, count: int, section: int) -> None:
    rng = random.Random(seed)
    frames = [r for r in read_dump(in_path) if not isinstance(r, str)]
    with open(out_path, "wb") as out:
        k = 0
        while k < count:
            # Runs of consecutive frames (fragments of one datagram, TCP flows), some mutated.
            start = rng.randrange(len(frames))
            rate = rng.choice([0.1, 0.5, 0.9])
            for raw in frames[start : start + rng.randint(1, 30)]:
                if k % section == 0:
                    out.write(section_record(f"mutated {seed}/{k}"))
                k += 1
                data = _mutate(rng, raw.data) if rng.random() < rate else raw.data
                linktype = raw.linktype if rng.random() < 0.95 else rng.choice(_LINKTYPES)
                wirelen = raw.wirelen if rng.random() < 0.9 else rng.choice([0, len(data), len(data) + 100, NONE32])
                ts = raw.ts if rng.random() < 0.95 else raw.ts + rng.choice([-100.0, 0.5, 31.0, 1e9])
                out.write(frame_record(RawPacket(ts, linktype, data, wirelen, raw.iface, raw.proc)))


# --- crafted frames: the paths the fixtures do not take -------------------------------

_MAC = bytes.fromhex("020000000001020000000002")
_A4, _B4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
_A6, _B6 = bytes.fromhex("20010db8" + "00" * 11 + "01"), bytes.fromhex("20010db8" + "00" * 11 + "02")


def _udp(sport: int, dport: int, payload: bytes, ulen: int | None = None) -> bytes:
    return struct.pack("!HHHH", sport, dport, len(payload) + 8 if ulen is None else ulen, 0) + payload


def _tcp(sport: int, dport: int, payload: bytes = b"", flags: int = 0x18, opts: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1000, 2000, (5 + len(opts) // 4) << 4, flags, 65535, 0, 0) + opts + payload


def _ip4(proto: int, payload: bytes, ident: int = 1, frag: int = 0, ttl: int = 64, src: bytes = _A4,
         dst: bytes = _B4, total: int | None = None, opts: bytes = b"") -> bytes:
    hl = 20 + len(opts)
    return struct.pack("!BBHHHBBH4s4s", 0x40 | hl // 4, 0, hl + len(payload) if total is None else total, ident,
                       frag, ttl, proto, 0, src, dst) + opts + payload


def _ip6(nh: int, payload: bytes, hlim: int = 64, src: bytes = _A6, dst: bytes = _B6, plen: int | None = None) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload) if plen is None else plen, nh, hlim, src, dst) + payload


def _ext(nh: int, body: bytes = b"\0" * 6) -> bytes:
    return bytes([nh, (len(body) + 2) // 8 - 1]) + body


def _frag6(nh: int, off: int, more: bool, ident: int) -> bytes:
    return struct.pack("!BBHI", nh, 0, off | int(more), ident)


def _eth(etype: int, payload: bytes, vlans: tuple[tuple[int, int], ...] = ()) -> bytes:
    tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in vlans)
    if vlans:  # the first TPID sits in the Ethernet type field
        first, rest = vlans[0], vlans[1:]
        tags = struct.pack("!H", first[1]) + b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in rest)
        return _MAC + struct.pack("!H", first[0]) + tags + struct.pack("!H", etype) + payload
    return _MAC + struct.pack("!H", etype) + payload


def _pktap(inner: bytes, dlt: int = 1, pid: int = 123, comm: bytes = b"Safari", epid: int = 77,
           ecomm: bytes = b"nsurlsessiond", hdrlen: int = 108, rectype: int = 1) -> bytes:
    h = struct.pack("<III24sIIIIi20sIHHi20s", hdrlen, rectype, dlt, b"en0", 0, 0, 0, 0, pid, comm, 0, 6, 0, epid, ecomm)
    return h + bytes(max(0, hdrlen - 108)) + inner


def _crafted_frames() -> Iterator[str | RawPacket]:
    t = 1_700_000_000.25
    def raw(data: bytes, linktype: int = 1, ts: float | None = None, wirelen: int | None = None,
            proc: ProcessInfo | None = None) -> RawPacket:
        return RawPacket(t if ts is None else ts, linktype, data, len(data) if wirelen is None else wirelen, 0, proc)

    yield "crafted link layers"
    u4 = _ip4(17, _udp(5353, 53, b"hello"))
    u6 = _ip6(17, _udp(5353, 53, b"hello6"))
    for n in (1, 2, 7, 8, 9, 12):
        for tpid in (0x8100, 0x88A8, 0x9100, 0x9200):
            yield raw(_eth(0x0800, u4, tuple((tpid, 0x2000 | i) for i in range(n))))
    yield raw(_eth(0x86DD, u6, ((0x88A8, 0), (0x8100, 4095))))
    yield raw(_eth(0x0800, u4, ((0x8100, 5),))[:16])
    arp = bytes.fromhex("0001080006040001") + _MAC[6:] + _A4 + bytes(6) + _B4
    yield raw(_eth(0x0806, arp))
    yield raw(_eth(0x0806, arp, ((0x8100, 9),)))
    for ver, code, proto in ((0x11, 0, b"\x00\x21"), (0x11, 0, b"\x21"), (0x11, 0, b"\x00\x57"), (0x11, 0, b"\x57"),
                             (0x11, 0, b"\xc0\x21"), (0x11, 9, b"\x00\x21"), (0x12, 0, b"\x00\x21"), (0x11, 0, b"")):
        ip = u6 if proto in (b"\x00\x57", b"\x57") else u4
        pppoe = struct.pack("!BBHH", ver, code, 1, len(ip) + 2) + proto + (ip if proto else b"")
        yield raw(_eth(0x8864, pppoe))
        yield raw(_eth(0x8864, pppoe, ((0x8100, 3),)))
        yield raw(_eth(0x8864, pppoe)[:20])
    for hdr in (b"\xff\x03\x00\x21", b"\x00\x21", b"\x21", b"\xff\x03\x57", b"\xff\x03\xc0\x21", b"\xff\x03", b"\xff", b""):
        yield raw(hdr + (u6 if b"\x57" in hdr else u4), 9)
        yield raw(hdr, 9)
    for fam in (2, 24, 28, 30, 7):
        for order in ("little", "big"):
            yield raw(fam.to_bytes(4, order) + (u4 if fam == 2 else u6), 0)
            yield raw(fam.to_bytes(4, order) + (u4 if fam == 2 else u6), 108)
    yield raw(b"\x02\x00", 0)
    for ha, alen in ((1, 6), (1, 8), (772, 0), (1, 0)):
        sll = struct.pack("!HHH8sH", 0, ha, alen, _MAC[6:] + b"\0\0", 0x0800)
        yield raw(sll + u4, 113)
        yield raw(struct.pack("!HHH8sH", 0, ha, alen, _MAC[6:] + b"\0\0", 0x0806) + arp, 113)
        sll2 = struct.pack("!HHIHBB8s", 0x86DD, 0, 2, ha, 0, alen, _MAC[6:] + b"\0\0")
        yield raw(sll2 + u6, 276)
        yield raw(sll2[:19], 276)
        yield raw(struct.pack("!HHH8sH", 0, ha, alen, _MAC[6:] + b"\0\0", 0x8100) + b"\x00\x07\x08\x00" + u4, 113)
    for lt in (12, 14, 101, 228, 229):
        yield raw(u4, lt)
        yield raw(u6, lt)
        yield raw(b"", lt)
        yield raw(b"\x50" + u4[1:], lt)

    yield "crafted pktap"
    proc = ProcessInfo(9, "reader-proc", None, None)
    for comm in (b"Safari", b"", b"\xff\xfe", b"caf\xc3\xa9", b"bad\xc3", b"x\xe2\x82", b"\xf0\x9f\x98\x80ok",
                 b"\xed\xa0\x80s", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"a\0b", b"12345678901234567890"):
        for pid, epid in ((123, 77), (-1, -1), (5, 5), (0, -3)):
            yield raw(_pktap(_eth(0x0800, u4), comm=comm, pid=pid, epid=epid))
    yield raw(_pktap(_eth(0x0800, u4)), 258, proc=proc)
    yield raw(_eth(0x0800, u4), 1, proc=proc)
    yield raw(_pktap(_eth(0x0806, arp)), 258)
    yield raw(_pktap(u6, dlt=12), 258)
    yield raw(_pktap(b"\x1e\0\0\0" + u6, dlt=0), 258)
    yield raw(_pktap(u4, dlt=258), 258)
    yield raw(_pktap(u4, dlt=999), 258)
    yield raw(_pktap(u4, dlt=12, hdrlen=156), 258)
    yield raw(_pktap(u4, dlt=12, hdrlen=100), 258)
    yield raw(_pktap(u4, dlt=12, hdrlen=4000), 258)
    yield raw(_pktap(u4, dlt=12, rectype=2), 258)
    yield raw(_pktap(b"", dlt=1), 258)
    yield raw(_pktap(u4, dlt=12)[:107], 258)
    yield raw(_pktap(_pktap(u4, dlt=12), dlt=258), 258)

    yield "crafted ipv4"
    for vhl in (0x45, 0x46, 0x44, 0x4F, 0x55, 0x65):
        d = bytearray(_ip4(6, _tcp(1, 2, b"x"), opts=bytes(4)))
        d[0] = vhl
        yield raw(_eth(0x0800, bytes(d)))
    for total in (0, 10, 19, 20, 40, 200):
        yield raw(_eth(0x0800, _ip4(17, _udp(1, 2, b"abcdef"), total=total)))
        yield raw(_eth(0x0800, _ip4(6, _tcp(1, 2, b"abcdef"), total=total)), wirelen=1000)
    for ulen in (0, 3, 8, 10, 14, 30):
        yield raw(_eth(0x0800, _ip4(17, _udp(1, 2, b"abcdef", ulen=ulen))))
        yield raw(_eth(0x0800, _ip4(17, _udp(1, 2, b"abcdef", ulen=ulen)) + bytes(6)))
        yield raw(_eth(0x86DD, _ip6(17, _udp(1, 2, b"abcdef", ulen=ulen))))
    for opts in (b"", bytes.fromhex("020405b4"), bytes.fromhex("0101080a0000000100000002")):
        yield raw(_eth(0x0800, _ip4(6, _tcp(1, 2, b"data", opts=opts))))
        yield raw(_eth(0x86DD, _ip6(6, _tcp(1, 2, b"data", opts=opts))))
    for doff in (0x00, 0x40, 0x50, 0x60, 0xF0):
        seg = bytearray(_tcp(1, 2, b"data"))
        seg[12] = doff
        yield raw(_eth(0x0800, _ip4(6, bytes(seg))))
        yield raw(_eth(0x0800, _ip4(6, bytes(seg)))[:40])
        yield raw(_eth(0x86DD, _ip6(6, bytes(seg))))
    for proto in (1, 58, 50, 132, 47):
        yield raw(_eth(0x0800, _ip4(proto, b"\x08\x00\0\0\0\x01\0\x02ping")))
        yield raw(_eth(0x0800, _ip4(proto, b"\x08\x00\0\0")))

    yield "crafted icmp errors"
    inner4 = _ip4(6, _tcp(443, 5555, b"payload"), src=_B4, dst=_A4)
    inner4u = _ip4(17, _udp(53, 5353, b"q"), src=_B4, dst=_A4)
    for typ, code in ((3, 4), (3, 3), (11, 0), (4, 0), (5, 1), (12, 0), (0, 0), (8, 0)):
        for inner in (inner4, inner4u, inner4[:24], inner4[:28], inner4[:20], inner4[:19], b""):
            icmp = struct.pack("!BBHI", typ, code, 0, 0x0001FFEE) + inner
            yield raw(_eth(0x0800, _ip4(1, icmp)))
    bad = bytearray(inner4)
    bad[0] = 0x42
    yield raw(_eth(0x0800, _ip4(1, struct.pack("!BBHI", 3, 1, 0, 0) + bytes(bad))))
    bad[0] = 0x65
    yield raw(_eth(0x0800, _ip4(1, struct.pack("!BBHI", 3, 1, 0, 0) + bytes(bad))))
    inner6 = _ip6(6, _tcp(443, 5555, b"payload"), src=_B6, dst=_A6)
    inner6x = _ip6(0, _ext(44) + _frag6(51, 0, True, 0xABCDEF) + bytes([17, 1, 0, 0]) + bytes(8) + _udp(1, 2, b"z"),
                   src=_B6, dst=_A6)
    inner6deep = _ip6(0, b"".join(_ext(0) for _ in range(20)), src=_B6, dst=_A6)
    for typ, code in ((1, 4), (2, 0), (3, 0), (4, 1), (128, 0), (135, 0)):
        for inner in (inner6, inner6x, inner6deep, inner6[:44], inner6[:48], inner6[:40], inner6[:39], inner6x[:60]):
            icmp = struct.pack("!BBHI", typ, code, 0, 1280) + inner
            yield raw(_eth(0x86DD, _ip6(58, icmp)))
    yield raw(_eth(0x86DD, _ip6(58, struct.pack("!BBHI", 1, 0, 0, 0) + inner4)))
    yield raw(_eth(0x0800, _ip4(1, struct.pack("!BBHI", 3, 0, 0, 0) + inner6)))
    yield raw(_eth(0x86DD, _ip6(58, b"\x01\x00\x00")))

    yield "crafted ipv6 extension headers"
    for n in (1, 15, 16, 17, 20):
        chain = b"".join(_ext(0) for _ in range(n - 1)) + _ext(6)
        yield raw(_eth(0x86DD, _ip6(0, chain + _tcp(1, 2, b"x"))))
    for nh in (43, 60, 135, 139, 140):
        yield raw(_eth(0x86DD, _ip6(nh, _ext(17) + _udp(1, 2, b"e"))))
    ah = bytes([6, 4]) + bytes(22)
    yield raw(_eth(0x86DD, _ip6(51, ah + _tcp(1, 2, b"ah"))))
    yield raw(_eth(0x86DD, _ip6(51, ah[:10])))
    yield raw(_eth(0x86DD, _ip6(0, bytes([6, 5]) + bytes(6) + _tcp(1, 2))))
    yield raw(_eth(0x86DD, _ip6(0, bytes([6, 0]))))
    yield raw(_eth(0x86DD, _ip6(50, b"esp-opaque")))
    yield raw(_eth(0x86DD, _ip6(59, b"")))
    yield raw(_eth(0x86DD, _ip6(59, b"trailing", plen=0)))
    yield raw(_eth(0x86DD, _ip6(17, _udp(1, 2, b"jumbo"), plen=0)))
    yield raw(_eth(0x86DD, _ip6(17, _udp(1, 2, b"cut"), plen=200)))
    yield raw(_eth(0x86DD, _ip6(17, _udp(1, 2, b"cut"), plen=200)), wirelen=400)
    yield raw(_eth(0x86DD, _ip6(44, _frag6(17, 0, False, 99) + _udp(1, 2, b"atomic"))))
    d = bytearray(_eth(0x86DD, u6))
    d[14] = 0x45
    yield raw(bytes(d))

    yield "crafted ipv6 fragments"
    body = _udp(4000, 4001, bytes(range(256)) * 4)
    pieces = [(o, body[o : o + 256]) for o in range(0, len(body), 256)]
    def f6(o: int, chunk: bytes, more: bool, ident: int, pre: bytes = b"", nh: int = 17) -> bytes:
        first = 44 if not pre else 0
        return _eth(0x86DD, _ip6(first, pre + _frag6(nh, o, more, ident) + chunk))
    for ident, order in ((1, [0, 1, 2, 3, 4]), (2, [4, 3, 2, 1, 0]), (3, [2, 0, 4, 1, 3]), (4, [0, 1, 1, 3, 4, 2])):
        for i in order:
            o, chunk = pieces[i]
            yield raw(f6(o, chunk, i != 4, ident))
    for i in range(5):  # behind a hop-by-hop header
        o, chunk = pieces[i]
        yield raw(f6(o, chunk, i != 4, 5, pre=_ext(44)))
    o, chunk = pieces[1]
    yield raw(f6(0, pieces[0][1], True, 6))
    yield raw(f6(o, chunk, True, 6))
    yield raw(f6(o, bytes(len(chunk)), True, 6))  # inconsistent overlap
    yield raw(f6(o - 8, chunk[:100], True, 6))
    yield raw(f6(2 * 256, pieces[2][1] + pieces[3][1] + pieces[4][1], False, 6))
    yield raw(f6(2 * 256, pieces[2][1], False, 6))  # a second, different end
    # A lone later piece, a truncated one, and a second fragment header inside the reassembled payload.
    yield raw(f6(256, pieces[1][1], True, 7)[:100], wirelen=400)
    yield raw(f6(0, pieces[0][1], True, 8)[:100], wirelen=400)
    nested = _frag6(17, 8, False, 55) + body[:64]
    yield raw(f6(0, nested[:32], True, 9, nh=44))
    yield raw(f6(32, nested[32:], False, 9, nh=44))
    nested0 = _frag6(17, 0, True, 56) + body[:64]
    yield raw(f6(0, nested0[:32], True, 10, nh=44))
    yield raw(f6(32, nested0[32:], False, 10, nh=44))
    yield raw(f6(0, _tcp(1, 2, b"reassembled tcp")[:16], True, 11, nh=6))
    yield raw(f6(16, _tcp(1, 2, b"reassembled tcp")[16:], False, 11, nh=6))
    yield raw(f6(0, b"\x80\x00\x00\x00\x00\x01\x00\x01ping", True, 12, nh=58))
    yield raw(f6(16, b"", False, 12, nh=58))
    yield raw(f6(16, b"", False, 12, nh=58), ts=t + 40)
    yield raw(f6(0, b"12345678", True, 13, nh=58), ts=t + 100)
    yield raw(f6(8, b"12345678", False, 13, nh=58), ts=t + 131)

    yield "crafted ipv4 fragments"
    def f4(o: int, chunk: bytes, more: bool, ident: int, proto: int = 17, df: bool = False, ttl: int = 64) -> bytes:
        return _eth(0x0800, _ip4(proto, chunk, ident=ident, frag=(o >> 3) | (0x2000 if more else 0) | (0x4000 if df else 0),
                                 ttl=ttl))
    for ident, order in ((1, [0, 1, 2, 3, 4]), (2, [4, 3, 2, 1, 0]), (3, [1, 0, 0, 2, 4, 3])):
        for k, i in enumerate(order):
            o, chunk = pieces[i]
            yield raw(f4(o, chunk, i != 4, ident, ttl=64 - k), ts=t + k * 0.001)
    yield raw(f4(0, pieces[0][1], True, 4)[:60], wirelen=400)
    yield raw(f4(256, pieces[1][1], True, 4)[:60], wirelen=400)
    yield raw(f4(256, pieces[1][1], True, 4)[:60])
    yield raw(f4(0, _tcp(5, 6, b"frag tcp"), True, 5, proto=6, df=True))
    yield raw(f4(28, b"tail", False, 5, proto=6))
    yield raw(f4(0, _tcp(5, 6, b"x")[:12], True, 6, proto=6))
    yield raw(f4(12, _tcp(5, 6, b"x")[12:], False, 6, proto=6))
    yield raw(f4(65528, b"0123456789abcdef", False, 7))
    yield raw(f4(0, b"01234567", False, 8))  # offset 0, MF clear: not a fragment
    yield raw(f4(8, b"01234567", False, 8))
    yield raw(f4(0, b"", True, 9))
    yield raw(f4(0, b"", False, 9))
    for k in range(520):
        yield raw(f4(8 * k, b"01234567", True, 10))
    yield raw(f4(8 * 521, b"01234567", False, 10))
    for k in range(300):
        yield raw(f4(0, bytes(60000), True, 1000 + k), ts=t + 1 + k * 1e-3)
    for k in range(4200):
        yield raw(f4(8, b"01234567", True, k & 0xFFFF, proto=17 + (k >> 16)), ts=t + 2 + k * 1e-4)
    yield raw(f4(0, b"late", False, 1), ts=t + 33)
    yield raw(f4(0, b"nan", True, 20), ts=float("nan"))
    yield raw(f4(8, b"nan", False, 20), ts=t + 34)


def crafted(out_path: str) -> None:
    n = 0
    with open(out_path, "wb") as out:
        for item in _crafted_frames():
            if isinstance(item, str):
                out.write(section_record(item))
            else:
                out.write(frame_record(item))
                n += 1
    print(f"{n} crafted frames", file=sys.stderr)


def main(argv: list[str]) -> None:
    cmd = argv[0]
    if cmd == "dump":
        dump(argv[1], argv[2:])
    elif cmd == "shards":
        shards(argv[1])
    elif cmd == "crafted":
        crafted(argv[1])
    elif cmd == "ref":
        ref(argv[1], frags="--nofrags" not in argv)
    elif cmd == "mutate":
        args = argv[3:]
        kw = {"--seed": 0, "--count": 10000, "--section": 500}
        for i in range(0, len(args), 2):
            kw[args[i]] = int(args[i + 1])
        mutate(argv[1], argv[2], kw["--seed"], kw["--count"], kw["--section"])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
