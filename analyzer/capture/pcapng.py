"""pcapng block walker (draft-ietf-opsawg-pcapng), with Apple's Darwin extensions.

Handles several sections (each with its own byte order, interfaces and
process table), interfaces of different link types, `if_tsresol` (power of
10 or of 2) and `if_tsoffset`, Enhanced, Simple and obsolete Packet Blocks,
and Apple's process information blocks (type 0x80000001: pid, name) that EPB
options 0x8001 (process) and 0x8003 (effective process) point into by index.

Every packet carries the link type of *its* interface (dpkt applies the first
interface's to all). Damage is counted in the reader's `weird` counter: a
block whose length fields are unusable ends the walk (`truncated` is set, as
no later block can be found reliably); a bad packet block is skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from analyzer.errors import CaptureError

if TYPE_CHECKING:
    from analyzer.capture.reader import CaptureReader, ProcessInfo, RawPacket, _Source

__all__ = ["check_first_block", "iter_pcapng"]

BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_PB = 0x00000002
BT_SPB = 0x00000003
BT_EPB = 0x00000006
BT_DARWIN_PIB = 0x80000001
# Blocks with nothing a packet needs: name resolution, interface statistics,
# IRIG/ARINC, systemd journal, decryption secrets, custom blocks.
_IGNORED_BLOCKS = frozenset({0x4, 0x5, 0x7, 0x8, 0x9, 0xA, 0xBAD, 0x40000BAD})

OPT_ENDOFOPT = 0
IF_NAME = 2
IF_TSRESOL = 9
IF_TSOFFSET = 14
PIB_NAME = 2
EPB_PIB_INDEX = 0x8001
EPB_E_PIB_INDEX = 0x8003

TS_MIN = 0.0
TS_MAX = 253402300800.0
"""Packet times outside [1970, year 10000) are skipped (weird `pcapng_time_out_of_range`):
only an extreme if_tsoffset or if_tsresol makes them, and `datetime` cannot hold them."""

_BOM_LE = b"\x4d\x3c\x2b\x1a"
_BOM_BE = b"\x1a\x2b\x3c\x4d"


def _section_endian(bom: bytes) -> str | None:
    if bom == _BOM_LE:
        return "<"
    if bom == _BOM_BE:
        return ">"
    return None


def check_first_block(head: bytes, name: str) -> None:
    """Raise CaptureError unless `head` starts with a usable Section Header Block."""
    if len(head) < 16:
        raise CaptureError(f"{name}: pcapng section header cut short ({len(head)} bytes)")
    endian = _section_endian(head[8:12])
    if endian is None:
        raise CaptureError(f"{name}: pcapng section header has a bad byte-order magic ({head[8:12].hex()})")
    blen, _bom, major = struct.unpack_from(endian + "IIH", head, 4)
    if blen < 28 or blen % 4:
        raise CaptureError(f"{name}: pcapng section header has a bad length ({blen})")
    if major != 1:
        raise CaptureError(f"{name}: pcapng version {major} is not supported")


def _tsresol(value: int) -> int | None:
    """Ticks per second for an if_tsresol byte, None if unusable."""
    exp = value & 0x7F
    if value & 0x80:
        return 1 << exp if exp <= 63 else None
    return 10**exp if exp <= 19 else None


class _Walker:
    """State of one pass: current section's byte order, interfaces and processes."""

    def __init__(self, reader: CaptureReader) -> None:
        self.r = reader
        self.weird = reader.weird
        # Per interface in the current section: (linktype, seconds per 2**32
        # ticks, seconds per tick, offset s, snaplen, ordinal). Float scales:
        # two multiplications are cheaper than a 64-bit integer division.
        self.ifaces: list[tuple[int, float, float, int, int, int]] = []
        self.procs: list[tuple[int, str | None]] = []
        self.set_endian("<")

    def set_endian(self, endian: str) -> None:
        self.endian = endian
        self.u16x2 = struct.Struct(endian + "HH").unpack_from
        self.u32 = struct.Struct(endian + "I").unpack_from
        self.u32x2 = struct.Struct(endian + "II").unpack_from
        self.i64 = struct.Struct(endian + "q").unpack_from
        self.epb = struct.Struct(endian + "IIIIIII").unpack_from
        self.pb = struct.Struct(endian + "HHIIII").unpack_from

    def options(self, buf: bytes, pos: int, end: int) -> Iterator[tuple[int, bytes]]:
        """(code, value) of each option in buf[pos:end] up to opt_endofopt."""
        while pos + 4 <= end:
            code, length = self.u16x2(buf, pos)
            if code == OPT_ENDOFOPT:
                return
            vend = pos + 4 + length
            if vend > end:
                self.weird["pcapng_bad_option_length"] += 1
                return
            yield code, buf[pos + 4 : vend]
            pos = pos + 4 + ((length + 3) & ~3)

    def section(self, buf: bytes, pos: int, end: int) -> bool:
        """A new section: forget interfaces and processes. False if unusable."""
        major = self.u16x2(buf, pos + 12)[0]
        if major != 1:
            self.weird["pcapng_unsupported_version"] += 1
            return False
        self.ifaces = []
        self.procs = []
        return True

    def interface(self, buf: bytes, pos: int, end: int) -> None:
        if end - pos < 20:
            self.weird["pcapng_bad_block_length"] += 1
            return
        linktype = self.u16x2(buf, pos + 8)[0]
        snaplen = self.u32(buf, pos + 12)[0]
        ticks = 1_000_000
        offset = 0
        if_name: str | None = None
        for code, value in self.options(buf, pos + 16, end - 4):
            if code == IF_TSRESOL and len(value) >= 1:
                resol = _tsresol(value[0])
                if resol is None:
                    self.weird["pcapng_bad_tsresol"] += 1
                else:
                    ticks = resol
            elif code == IF_TSOFFSET and len(value) >= 8:
                offset = self.i64(value, 0)[0]
            elif code == IF_NAME:
                if_name = value.rstrip(b"\0").decode("utf-8", "replace")
        r = self.r
        ordinal = len(r.interfaces)
        r.interfaces.append((linktype, if_name))
        from analyzer.capture.reader import linktype_name

        name = linktype_name(linktype)
        if name not in r.link_types:
            r.link_types.append(name)
        self.ifaces.append((linktype, (1 << 32) / ticks, 1 / ticks, offset, snaplen, ordinal))

    def process(self, buf: bytes, pos: int, end: int) -> None:
        if end - pos < 16:
            self.weird["pcapng_bad_block_length"] += 1
            return
        pid = self.u32(buf, pos + 8)[0]
        name: str | None = None
        for code, value in self.options(buf, pos + 12, end - 4):
            if code == PIB_NAME:
                name = value.rstrip(b"\0").decode("utf-8", "replace")
        self.procs.append((pid, name))

    def epb_process(self, buf: bytes, pos: int, end: int) -> ProcessInfo | None:
        """The process and effective process that EPB options point to."""
        proc: tuple[int, str | None] | None = None
        eproc: tuple[int, str | None] | None = None
        for code, value in self.options(buf, pos, end):
            if code in (EPB_PIB_INDEX, EPB_E_PIB_INDEX) and len(value) == 4:
                index = self.u32(value, 0)[0]
                if index >= len(self.procs):
                    self.weird["pcapng_bad_process_index"] += 1
                elif code == EPB_PIB_INDEX:
                    proc = self.procs[index]
                else:
                    eproc = self.procs[index]
        if proc is None and eproc is None:
            return None
        from analyzer.capture.reader import ProcessInfo

        return ProcessInfo(
            proc[0] if proc else None,
            proc[1] if proc else None,
            eproc[0] if eproc else None,
            eproc[1] if eproc else None,
        )


def iter_pcapng(reader: CaptureReader, src: _Source) -> Iterator[RawPacket]:
    """Stream the packets of a pcapng file; counters and weirds go to `reader`."""
    from analyzer.capture.reader import MAX_RECORD, RawPacket

    new = tuple.__new__
    raw_packet = RawPacket
    w = _Walker(reader)
    weird = reader.weird
    packets = 0
    nbytes = 0
    last_ts = 0.0
    # Locals for the EPB fast path; refreshed whenever a block changes them.
    epb = w.epb
    u32 = w.u32
    ifaces = w.ifaces
    n_ifaces = 0
    try:
        buf = reader._refill(src, 0)
        pos = 0
        while True:
            n = len(buf)
            need = 12
            while pos + 12 <= n:
                if pos + 28 <= n:
                    # Read an EPB's fixed fields at once; other blocks use the first two.
                    btype, blen, iface, hi, lo, caplen, wirelen = epb(buf, pos)
                else:
                    btype, blen = w.u32x2(buf, pos)
                if btype == BT_SHB:
                    endian = _section_endian(buf[pos + 8 : pos + 12])
                    if endian is None:
                        weird["pcapng_bad_byte_order_magic"] += 1
                        reader.truncated = True
                        return
                    if endian != w.endian:
                        w.set_endian(endian)
                        epb = w.epb
                        u32 = w.u32
                        blen = u32(buf, pos + 4)[0]
                if blen < 12 or blen % 4 or blen > MAX_RECORD:
                    weird["pcapng_bad_block_length"] += 1
                    reader.truncated = True
                    return
                end = pos + blen
                if end > n:
                    need = blen
                    break
                if u32(buf, end - 4)[0] != blen:
                    weird["pcapng_block_length_mismatch"] += 1
                    reader.truncated = True
                    return
                if btype == BT_EPB or btype == BT_PB:
                    if blen < 32:
                        weird["pcapng_bad_block_length"] += 1
                        pos = end
                        continue
                    if btype == BT_PB:
                        iface, _drops, hi, lo, caplen, wirelen = w.pb(buf, pos + 8)
                    if caplen > blen - 32:
                        weird["pcapng_bad_caplen"] += 1
                        pos = end
                        continue
                    if iface >= n_ifaces:
                        weird["pcapng_bad_interface_id"] += 1
                        pos = end
                        continue
                    linktype, hi_scale, lo_scale, offset, _snap, ordinal = ifaces[iface]
                    ts = hi * hi_scale + lo * lo_scale + offset
                    if not TS_MIN <= ts < TS_MAX:
                        # Skipped, not clamped: a time no calendar holds cannot be placed
                        # among the other packets' times, and clamping would fire every
                        # flow timer (or none); the count says how many were lost.
                        weird["pcapng_time_out_of_range"] += 1
                        pos = end
                        continue
                    last_ts = ts
                    proc = None
                    if w.procs:
                        opts = pos + 28 + ((caplen + 3) & ~3)
                        if opts + 4 <= end - 4:
                            proc = w.epb_process(buf, opts, end - 4)
                    if caplen > wirelen:
                        weird["pcapng_caplen_exceeds_wirelen"] += 1
                    packets += 1
                    nbytes += caplen
                    data = buf[pos + 28 : pos + 28 + caplen]
                    pos = end
                    yield new(raw_packet, (last_ts, linktype, data, wirelen, ordinal, proc))
                    continue
                elif btype == BT_SPB:
                    if not w.ifaces:
                        weird["pcapng_spb_without_interface"] += 1
                    elif blen < 16:
                        weird["pcapng_bad_block_length"] += 1
                    else:
                        linktype, _hs, _ls, _offset, snaplen, ordinal = w.ifaces[0]
                        wirelen = w.u32(buf, pos + 8)[0]
                        caplen = min(wirelen, blen - 16)
                        if snaplen:
                            caplen = min(caplen, snaplen)
                        packets += 1
                        nbytes += caplen
                        # An SPB has no timestamp: keep time moving with the last one seen.
                        yield new(
                            RawPacket, (last_ts, linktype, buf[pos + 12 : pos + 12 + caplen], wirelen, ordinal, None)
                        )
                elif btype == BT_IDB:
                    w.interface(buf, pos, end)
                    n_ifaces = len(ifaces)
                elif btype == BT_SHB:
                    if blen < 28 or not w.section(buf, pos, end):
                        if blen < 28:
                            weird["pcapng_bad_block_length"] += 1
                        reader.truncated = True
                        return
                    ifaces = w.ifaces
                    n_ifaces = 0
                elif btype == BT_DARWIN_PIB:
                    w.process(buf, pos, end)
                elif btype not in _IGNORED_BLOCKS:
                    weird["pcapng_unknown_block"] += 1
                pos = end
            reader.packets = packets
            reader.bytes = nbytes
            chunk = reader._refill(src, need - (n - pos))
            if not chunk:
                if pos < n:
                    reader.truncated = True
                    weird["pcapng_truncated_block"] += 1
                return
            buf = buf[pos:] + chunk
            pos = 0
    finally:
        reader.packets = packets
        reader.bytes = nbytes
        src.close()
