"""Column-wise work on a chunk of classic pcap records, for `CaptureReader.shard_pass`.

A worker of `apple-net flows -j N` owns one shard of the flows but must see
every record's time. Building a `RawPacket` per record and reading its shard
in Python (`analyzer.engine.raw_shard`), then moving the flow table's clock,
cost each of two workers ~5 s of CPU on the 1.3 M-packet bench capture; here
the shard of every record of a chunk is computed at once with numpy, from the
same bytes and by the same rule, so only the worker's own records become
RawPackets.

numpy is imported by this module only, so commands that never shard do not
pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["UNDECIDED", "Split", "frame_shards", "record_headers", "split_records"]

UNDECIDED = -1
"""`frame_shards` value for a frame `raw_shard` cannot place: the engine decodes it to find out."""

_TCP, _UDP = 6, 17
_MUL = np.uint64(0x9E3779B97F4A7C15)  # engine._mix's multiplier
_HEADER = np.arange(16, dtype=np.int64)

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Split:
    """The complete records of one chunk, split for shard k: what the reader needs, as Python lists."""

    ts: list[float]
    """Every record's time, as the reader computes it."""
    mine: list[int]
    """Indices of the records shard k keeps: its own and the undecided ones."""
    starts: list[int]
    """Where each kept record's frame starts in the chunk."""
    caplens: list[int]
    wirelens: list[int]
    decided: list[bool]
    """False for a kept record whose shard only decoding tells."""
    over_snaplen: int
    """Records above the caplen limit: the reader's pcap_caplen_exceeds_snaplen."""
    over_wirelen: int
    """Records holding more than the wire length: pcap_caplen_exceeds_wirelen."""


def split_records(buf: bytes, offsets: list[int], endian: str, scale: float, swapped: int, limit: int,
                  linktype: int, k: int, n: int) -> Split:
    """The records whose headers start at `offsets` in buf, read as `CaptureReader._iter_pcap` reads them.

    `swapped`: 2 swaps caplen and wirelen always, 1 when caplen > wirelen
    (old libpcap versions), as the reader does.
    """
    frames = np.frombuffer(buf, np.uint8)
    offs = np.array(offsets, np.int64)
    sec, frac, caplen, wirelen = record_headers(frames, offs, endian)
    if swapped:
        swap = caplen > wirelen if swapped == 1 else np.ones(len(offs), dtype=bool)
        caplen, wirelen = np.where(swap, wirelen, caplen), np.where(swap, caplen, wirelen)
    # float64 operations in the reader's order (sec + frac * scale): the very same floats.
    ts = sec.astype(np.float64) + frac.astype(np.float64) * scale
    starts = offs + 16
    shards = frame_shards(frames, starts, caplen, linktype, n)
    mine = np.flatnonzero((shards == k) | (shards == UNDECIDED))
    return Split(
        ts=ts.tolist(),
        mine=mine.tolist(),
        starts=starts[mine].tolist(),
        caplens=caplen[mine].tolist(),
        wirelens=wirelen[mine].tolist(),
        decided=(shards[mine] != UNDECIDED).tolist(),
        over_snaplen=int(np.count_nonzero(caplen > limit)),
        over_wirelen=int(np.count_nonzero(caplen > wirelen)),
    )


def record_headers(frames: U8, offsets: I64, endian: str) -> tuple[I64, I64, I64, I64]:
    """The four fields of the 16-byte record headers at `offsets`: seconds, fraction, caplen, wirelen."""
    fields = frames[offsets[:, None] + _HEADER].view(endian + "u4").astype(np.int64)
    return fields[:, 0], fields[:, 1], fields[:, 2], fields[:, 3]


def frame_shards(frames: U8, starts: I64, caplens: I64, linktype: int, n: int) -> I64:
    """`engine.raw_shard(frame, n)` of every frame `frames[starts[i]:starts[i] + caplens[i]]`.

    `UNDECIDED` where raw_shard gives None (not untagged Ethernet IPv4/IPv6
    TCP/UDP, a fragment, a short frame, another link type). Every byte read
    lies inside its frame: bytes 12..23 of frames of 38 bytes or more, the
    addresses and ports only of the frames long enough for them.
    """
    out = np.full(len(starts), UNDECIDED, dtype=np.int64)
    if linktype != 1:
        return out
    rows = np.flatnonzero(caplens >= 38)
    s, c = starts[rows], caplens[rows]

    def at(base: I64, off: int | I64) -> I64:
        column: I64 = frames[base + off].astype(np.int64)
        return column

    ethertype = at(s, 12) << 8 | at(s, 13)
    version = at(s, 14) >> 4

    # IPv4: not a fragment (no MF flag, no offset), TCP or UDP, ports inside the frame.
    proto4 = at(s, 23)
    ihl_end = 14 + (at(s, 14) & 0x0F) * 4  # raw_shard takes the IHL as it is, even below 5
    v4 = ((ethertype == 0x0800) & (version == 4) & (at(s, 20) & 0x3F == 0) & (at(s, 21) == 0)
          & ((proto4 == _TCP) | (proto4 == _UDP)) & (c >= ihl_end + 4))
    sel = np.flatnonzero(v4)
    out[rows[sel]] = _shard(frames, s[sel], 26, 30, 4, ihl_end[sel], proto4[sel], n)

    # IPv6: TCP or UDP right after the fixed header (raw_shard looks no further).
    proto6 = at(s, 20)
    v6 = (ethertype == 0x86DD) & ((proto6 == _TCP) | (proto6 == _UDP)) & (c >= 58) & (version == 6)
    sel = np.flatnonzero(v6)
    # Only the last 5 bytes of each address reach the shard (see _shard): 22+11 and 38+11.
    out[rows[sel]] = _shard(frames, s[sel], 33, 49, 5, np.full(len(sel), 54, np.int64), proto6[sel], n)
    return out


def _shard(frames: U8, s: I64, src: int, dst: int, width: int, ports: I64, proto: I64, n: int) -> I64:
    """engine._mix of the frames at `s`, from `width` address bytes at src/dst and the ports at `ports`.

    _mix hashes x = ((a ^ b) << 8 | proto), a and b being address << 16 | port
    (up to 144 bits), as `(x * M) >> 29 & 0xFFFFFFFF`: bits 29..60 of the
    product. Those depend only on x mod 2**61, since the low 61 bits of a
    product depend only on the low 61 bits of its factors. So x mod 2**64 and
    a wrapping uint64 multiply give the same bits: x's low 64 bits are proto
    (8), the ports' XOR (16) and the low 40 bits, i.e. the last 5 bytes, of
    the addresses' XOR (all 32 bits of an IPv4 one).
    """
    x = np.zeros(len(s), dtype=np.uint64)
    for i in range(width):
        x = x << np.uint64(8) | (frames[s + src + i] ^ frames[s + dst + i]).astype(np.uint64)
    p = s + ports
    for i in range(2):  # sport ^ dport, high byte first
        x = x << np.uint64(8) | (frames[p + i] ^ frames[p + 2 + i]).astype(np.uint64)
    x = x << np.uint64(8) | proto.astype(np.uint64)
    h = (x * _MUL) >> np.uint64(29) & np.uint64(0xFFFFFFFF)
    shard: I64 = (h % np.uint64(n)).astype(np.int64)
    return shard
