"""make_synscan.py - a SYN scan capture: N distinct TCP flows of one unanswered SYN each.

    python bench/make_synscan.py OUT.pcap [--flows 1000000] [--gap-us 10]

The worst case for a flow table's memory: every packet starts a flow that never
ends on its own before the table is full (masscan at 100 k packets/s by default).
One host (10.0.0.1) scans 10.x.y.z:443 from changing source ports, each frame an
Ethernet/IPv4/TCP SYN of 54 bytes, so 1 M flows make a 70 MB classic pcap. The
packets are hand-built on purpose: the point is the count of distinct flows, which
no real client on this machine can produce in seconds (tests/test_memory_bounds.py
and bench/bench_memory.py use it; nothing is sent anywhere).
"""

from __future__ import annotations

import argparse
import struct
import sys

_ETH = bytes.fromhex("020000000002" "020000000001" "0800")
_SRC = bytes([10, 0, 0, 1])


def _checksum(data: bytes) -> int:
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def syn_frame(i: int) -> bytes:
    """The i-th SYN: destination 10.(1 + i >> 16).(i >> 8).(i), source port 1024 + i % 60000."""
    dst = bytes([10, 1 + (i >> 16 & 0xFF), i >> 8 & 0xFF, i & 0xFF])
    sport = 1024 + i % 60000
    tcp = struct.pack("!HHIIBBHHH", sport, 443, (i * 2654435761) & 0xFFFFFFFF, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = _SRC + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0x4000, 64, 6, 0, _SRC, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return _ETH + ip + tcp


def write_synscan(path: str, flows: int, gap_us: int = 10, start: int = 1_700_000_000) -> None:
    """Write `flows` SYNs to a classic pcap (microsecond times, `gap_us` apart)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        rec = struct.Struct("<IIII")
        buf = []
        for i in range(flows):
            frame = syn_frame(i)
            t = i * gap_us
            buf.append(rec.pack(start + t // 1_000_000, t % 1_000_000, len(frame), len(frame)) + frame)
            if len(buf) >= 65536:
                f.write(b"".join(buf))
                buf.clear()
        f.write(b"".join(buf))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--gap-us", type=int, default=10)
    args = ap.parse_args(argv)
    write_synscan(args.out, args.flows, args.gap_us)
    return 0


if __name__ == "__main__":
    sys.exit(main())
