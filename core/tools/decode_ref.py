"""Reference output of the Python decoder, for the Rust port's differential check.

    decode_ref.py dump OUT CAPTURE...      frames as `open_capture` reads them -> OUT
    decode_ref.py mutate IN OUT [--seed S] [--count N] [--section K]
                                           mutated copies of IN's frames -> OUT
    decode_ref.py ref DUMP                 analyzer.capture.decode.Decoder over DUMP -> stdout

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


def ref(path: str) -> None:
    out = sys.stdout
    dec: Decoder | None = None

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
            dec = Decoder()
            out.write(f"# {item}\n")
            continue
        if dec is None:
            dec = Decoder()
        pkt = dec(item)
        out.write("N\n" if pkt is None else fmt_packet(pkt) + "\n")
        for a in dec.arp:
            out.write(f"A {fbits(a.ts)} d{a.data.hex()} m{a.macs.hex()}\n")
        dec.arp.clear()
    end()


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


def main(argv: list[str]) -> None:
    cmd = argv[0]
    if cmd == "dump":
        dump(argv[1], argv[2:])
    elif cmd == "ref":
        ref(argv[1])
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
