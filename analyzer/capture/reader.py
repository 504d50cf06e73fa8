"""Capture sources: pcap (micro/nanosecond, either byte order) and pcapng, plain or gzip.

`open_capture(path)` (`-` for standard input) recognises the format by its
magic number (never by the file name), reading the input once so that pipes
work, checks the file header at once (raising `CaptureError` with a one-line
message when the file is not a capture) and returns a `CaptureReader`.
Iterating the reader streams `RawPacket`s in file order, reading the file in
large chunks, so memory stays bounded whatever its size.
`reader.shard_pass(k, n)` is the pass of one worker of `apple-net flows -j N`
over a classic pcap: only shard k's records become `RawPacket`s.

Damage inside the file never raises: the reader stops or skips and counts a
named anomaly in `.weird`; a file that ends inside a record sets
`.truncated` and keeps every packet before the cut.

`RawPacket` is a NamedTuple rather than a frozen dataclass: this is the hot
path, and building a ten-field one with `tuple.__new__` measured 0.38 us
against 2.6 us for a frozen slotted dataclass (0.47 us unfrozen) on the
project machine; six slots rather than ten saved another ~10% of the walk.
"""

from __future__ import annotations

import collections
import gzip
import os
import stat
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, NamedTuple, Self

from analyzer.errors import CaptureError

__all__ = [
    "CHUNK_SIZE",
    "WEIRDS",
    "CaptureReader",
    "ProcessInfo",
    "RawPacket",
    "Skipped",
    "Undecided",
    "linktype_name",
    "open_capture",
]

CHUNK_SIZE = 1 << 20
"""Bytes read from the file per refill; records spanning chunks are stitched."""

STDIN = "-"
"""The file name that stands for standard input."""

STDIN_NAME = "<stdin>"

HEAD_SIZE = 64 * 1024
"""Bytes read at open time to recognise the format and check the first header."""

MAX_RECORD = 64 << 20
"""Larger pcap records or pcapng blocks are taken for corruption, not data."""

PCAP_MAX_SNAPLEN = 262144
"""libpcap's and Wireshark's MAXIMUM_SNAPLEN: larger records are suspicious."""

WEIRDS: dict[str, str] = {
    "pcap_unusual_version": "pcap version other than 2.4 (before 2.3 the two lengths are swapped)",
    "pcap_caplen_exceeds_snaplen": "record longer than the file's snaplen (or 262,144 without one): read",
    "pcap_caplen_exceeds_wirelen": "record holds more bytes than the frame had on the wire",
    "pcap_bogus_caplen": "record length above 64 MiB: taken for corruption, reading stops",
    "pcap_truncated_record_header": "file ends inside a record header",
    "pcap_truncated_record": "file ends inside a record's data",
    "pcapng_bad_block_length": "block length below the minimum, no multiple of 4 or above 64 MiB: reading stops",
    "pcapng_block_length_mismatch": "a block's two length fields differ: reading stops",
    "pcapng_bad_byte_order_magic": "section header with an unknown byte-order magic: reading stops",
    "pcapng_unsupported_version": "section of a pcapng major version other than 1: reading stops",
    "pcapng_truncated_block": "file ends inside a block",
    "pcapng_unknown_block": "block of an unknown type: skipped",
    "pcapng_bad_interface_id": "packet block naming an interface not described: skipped",
    "pcapng_bad_caplen": "packet block whose captured length exceeds the block: skipped",
    "pcapng_caplen_exceeds_wirelen": "packet holds more bytes than the frame had on the wire",
    "pcapng_spb_without_interface": "simple packet block before any interface: skipped",
    "pcapng_bad_option_length": "option running past its block: the rest of the options ignored",
    "pcapng_bad_tsresol": "unusable if_tsresol: microseconds assumed",
    "pcapng_time_out_of_range": "packet time before 1970 or past year 9999 (extreme if_tsoffset/if_tsresol): skipped",
    "pcapng_bad_process_index": "EPB process option pointing at no Darwin process block",
    "pcap_empty_record": "record of zero time, length and wire length (zero padding, a gzip bomb): skipped",
    "gzip_trailing_garbage": "bytes after the last gzip member that are no gzip member: ignored, the capture is whole",
    "gzip_truncated": "gzip stream ends early: packets before the cut kept",
    "gzip_corrupt": "gzip stream corrupt: packets before the damage kept",
}
"""Anomalies the readers count in `CaptureReader.weird`."""

_LINKTYPE_NAMES: dict[int, str] = {
    # Wireshark's short encapsulation names, so `.link_types` can be compared
    # with `capinfos`/`tshark` output.
    0: "null",
    1: "ether",
    9: "ppp",
    12: "rawip",
    14: "rawip",
    101: "rawip",
    108: "loop",
    113: "linux-sll",
    228: "rawip4",
    229: "rawip6",
    258: "pktap",
    276: "linux-sll2",
}


def linktype_name(linktype: int) -> str:
    """Wireshark's short name of a LINKTYPE_ value, or `linktype_<n>`."""
    return _LINKTYPE_NAMES.get(linktype, f"linktype_{linktype}")


class ProcessInfo(NamedTuple):
    """The process that sent or received a packet (Apple pcapng / PKTAP)."""

    pid: int | None
    name: str | None
    epid: int | None = None
    """Effective process: the one a daemon acted for (e.g. nsurlsessiond for an app)."""
    ename: str | None = None


class RawPacket(NamedTuple):
    """One captured frame as the file holds it, before any decoding.

    Six slots only (caplen and the process fields are derived properties):
    building this tuple is the single biggest per-packet cost of reading.
    """

    ts: float
    """Seconds since the epoch (interface offset and resolution applied)."""
    linktype: int
    """LINKTYPE_ of the interface that captured this frame."""
    data: bytes
    wirelen: int
    """Length of the frame on the wire (>= caplen when a snaplen cut it)."""
    iface: int = 0
    """Interface ordinal in the file (pcapng: counted across sections; pcap: 0)."""
    proc: ProcessInfo | None = None
    """Process information from Apple's pcapng process blocks, if any."""

    @property
    def caplen(self) -> int:
        """Captured length: `len(data)`."""
        return len(self.data)

    @property
    def proc_name(self) -> str | None:
        return self.proc.name if self.proc is not None else None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def eproc_name(self) -> str | None:
        return self.proc.ename if self.proc is not None else None

    @property
    def epid(self) -> int | None:
        return self.proc.epid if self.proc is not None else None


class Undecided(NamedTuple):
    """A record of a shard pass whose shard only decoding tells (VLAN, fragment, other link type...)."""

    raw: RawPacket


class Skipped(NamedTuple):
    """Consecutive records of a shard pass that other shards own: their times, in file order."""

    ts: list[float]


_EMPTY_RECORD = bytes(16)
_ZEROS = memoryview(bytes(CHUNK_SIZE))

_new_raw = tuple.__new__
_Header = Callable[[bytes, int], tuple[Any, ...]]  # struct.Struct("IIII").unpack_from
_MAGIC_PCAP = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6, "pcap"),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6, "pcap"),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9, "nsecpcap"),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9, "nsecpcap"),
}
_MAGIC_PCAPNG = b"\x0a\x0d\x0d\x0a"
_MAGIC_GZIP = b"\x1f\x8b"


class _Source:
    """The capture's byte stream: plain or gunzipped, with bytes already read
    at open time (a stream cannot be rewound) served first."""

    __slots__ = ("_error", "_gz", "_owned", "_prefix", "_raw")

    def __init__(self, raw: BinaryIO, owned: bool, prefix: bytes = b"") -> None:
        self._raw = raw
        self._owned = owned
        self._prefix = prefix
        self._error: Exception | None = None
        self._gz: gzip.GzipFile | None = None
        if not prefix and _peek(raw, 2) == _MAGIC_GZIP:
            self._gz = gzip.GzipFile(fileobj=raw, mode="rb")

    @property
    def compressed(self) -> bool:
        return self._gz is not None

    @property
    def regular(self) -> bool:
        """The underlying file is a regular file (it can be opened again from its start)."""
        try:
            return stat.S_ISREG(os.fstat(self._raw.fileno()).st_mode)
        except (OSError, AttributeError, ValueError):
            return False

    def unread(self, data: bytes) -> None:
        """Serve `data` again before what comes next: peek without consuming."""
        self._prefix = data + self._prefix

    def read(self, n: int) -> bytes:
        """Up to n bytes (fewer only at the end); raises what gzip raises.

        An error after some bytes were read is kept for the next call, so the
        bytes before a corrupt or cut gzip stream are never lost.
        """
        parts: list[bytes] = []
        got = 0
        if self._prefix:  # bytes given back by unread come before a pending error
            part = self._prefix[:n]
            self._prefix = self._prefix[n:]
            parts.append(part)
            got = len(part)
        if self._error is not None:
            if parts:
                return parts[0]
            error, self._error = self._error, None
            raise error
        while got < n:
            try:
                # gzip: read1 hands out what it decompressed before a cut or a
                # corrupt block; read() would drop it with the exception.
                part = self._gz.read1(n - got) if self._gz is not None else self._raw.read(n - got)
            except (OSError, EOFError, zlib.error) as exc:
                if not parts:
                    raise
                self._error = exc
                break
            if not part:
                break
            parts.append(part)
            got += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    @property
    def failed(self) -> bool:
        """A gzip error is waiting to be raised by the next read."""
        return self._error is not None

    def tell(self) -> int:
        """Bytes consumed from the underlying file (compressed bytes for gzip), for progress."""
        try:
            return int(self._raw.tell())
        except (OSError, AttributeError, ValueError):
            return 0

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()
        if self._owned:
            self._raw.close()


class CaptureReader:
    """A capture file opened for streaming. Iterate it for `RawPacket`s.

    The input is opened once: the first iteration goes on with the stream
    whose head was read at open time. A later iteration reopens a regular
    file and restarts the counters; a pipe, FIFO, `-` (standard input) or a
    file object can be iterated once. The attributes
    describe the last (or current) pass; `packets` and `bytes` are brought up
    to date at every chunk refill and when the pass ends.
    """

    def __init__(self, source: str | os.PathLike[str] | BinaryIO, max_bytes: int | None = None) -> None:
        self._path: str | None = None
        self.max_bytes = max_bytes
        """Stop with CaptureError past this many bytes of capture data (after gunzip) in one pass."""
        self._data_read = 0
        self._stream: _Source | None = None
        self.format = ""
        """"pcap" (either time resolution) or "pcapng"."""
        self.file_type = ""
        """Wireshark's file type name: "pcap", "nsecpcap" or "pcapng"."""
        self.compressed = False
        self.link_types: list[str] = []
        """Distinct link type names the file declares (pcap header; pcapng IDBs, filled as they are read)."""
        self.interfaces: list[tuple[int, str | None]] = []
        """pcapng: (linktype, if_name) per interface, in file order across sections."""
        self.snaplen = 0
        self.truncated = False
        """The file ended inside a record (or a record was unreadable): reading stopped there."""
        self.weird: collections.Counter[str] = collections.Counter()
        self.packets = 0
        self.bytes = 0
        """Captured bytes of all packets read."""
        self.bytes_read = 0
        """Bytes of the file consumed so far (compressed bytes for gzip), updated per chunk: for progress."""
        self._current: Iterator[object] | None = None
        self._head_note = ""
        self._endian = "<"
        self._scale = 1e-6
        self._linktype = 0
        self._version = (2, 4)
        self.rereadable = False
        """A regular file: every iteration reopens it. A pipe, FIFO or stdin can be iterated once."""
        if isinstance(source, (str, os.PathLike)) and os.fspath(source) != STDIN:
            self._path = os.fspath(source)
            self.name = self._path
            src = self._open()
        else:
            stdin = not isinstance(source, (str, os.PathLike))
            raw: BinaryIO = source if stdin else sys.stdin.buffer  # type: ignore[assignment]
            self.name = str(getattr(raw, "name", "<stream>")) if stdin else STDIN_NAME
            try:
                src = _Source(raw, owned=False)
            except OSError as exc:
                raise CaptureError(f"cannot read {self.name}: {exc}") from None
        # The input is read once, through this one stream: the head read here to
        # recognise the format is served again by the first pass. Reopening the
        # path instead would start a pipe or FIFO mid-stream (issue 17).
        try:
            self._head = self._read_head(src)
            self._sniff()
        except BaseException:
            src.close()
            raise
        src.unread(self._head)
        self._stream = src
        self.rereadable = self._path is not None and src.regular

    # -- opening ----------------------------------------------------------------

    def _open(self) -> _Source:
        assert self._path is not None
        try:
            raw = open(self._path, "rb")  # noqa: SIM115 - owned by the _Source
        except OSError as exc:
            raise CaptureError(f"cannot open {self._path}: {exc.strerror or exc}") from None
        try:
            return _Source(raw, owned=True)
        except OSError as exc:
            raw.close()
            raise CaptureError(f"cannot read {self._path}: {exc.strerror or exc}") from None

    def _read_head(self, src: _Source) -> bytes:
        self.compressed = src.compressed
        try:
            head = src.read(HEAD_SIZE)
            self._head_note = " (gzip stream cut short or corrupt)" if src.failed else ""
            return head
        except EOFError:
            raise CaptureError(f"{self.name}: gzip stream cut short before the capture header") from None
        except (OSError, zlib.error) as exc:
            raise CaptureError(f"{self.name}: unreadable: {exc}") from None

    def _sniff(self) -> None:
        head = self._head
        magic = head[:4]
        if magic in _MAGIC_PCAP:
            endian, scale, file_type = _MAGIC_PCAP[magic]
            if len(head) < 24:
                raise CaptureError(
                    f"{self.name}: pcap file header cut short ({len(head)} of 24 bytes){self._head_note}"
                )
            major, minor, _zone, _sigfigs, snaplen, lt_field = struct.unpack_from(endian + "HHiIII", head, 4)
            self.format = "pcap"
            self.file_type = file_type
            self.snaplen = snaplen
            self._endian = endian
            self._scale = scale
            self._version = (major, minor)
            # The top 6 bits of the field carry FCS information (libpcap LT_LINKTYPE).
            self._linktype = lt_field & 0x03FFFFFF
            self.link_types = [linktype_name(self._linktype)]
        elif magic == _MAGIC_PCAPNG:
            from analyzer.capture.pcapng import check_first_block

            check_first_block(head, self.name)
            self.format = "pcapng"
            self.file_type = "pcapng"
        elif not head:
            raise CaptureError(f"{self.name}: empty file, not a capture")
        else:
            what = "gzip data" if self.compressed else "file"
            raise CaptureError(f"{self.name}: not a pcap or pcapng capture ({what} starts with {head[:4].hex()})")

    # -- iteration --------------------------------------------------------------

    def __iter__(self) -> Iterator[RawPacket]:
        src = self._start()
        if self.format == "pcapng":
            from analyzer.capture.pcapng import iter_pcapng

            self.link_types = []
            self.interfaces = []
            packets = iter_pcapng(self, src)
        else:
            packets = self._iter_pcap(src)
        self._current = packets
        return packets

    def chunks(self) -> Iterator[bytes]:
        """A pass over the capture's bytes (after gunzip) in chunks, from its first byte, for a
        record walk done elsewhere (the compiled core, `analyzer.native`).

        The same stream, `max_bytes` limit, counters of bytes read and gzip weirds as a
        pass of `__iter__`; the walk's own counters (packets, bytes, truncated records)
        are the walker's to keep.
        """
        src = self._start()
        try:
            while chunk := self._refill(src, 0):
                yield chunk
        finally:
            src.close()

    def shard_pass(self, k: int, n: int) -> Iterator[RawPacket | Undecided | Skipped]:
        """A pass over a classic pcap for shard k of n, by `analyzer.engine.raw_shard`'s rule.

        In file order: shard k's records as `RawPacket`s, the records whose
        shard only decoding tells as `Undecided`, and the times of the other
        shards' records as `Skipped` runs (a worker still needs every time for
        its timers). The counters end as after a plain pass. Only for classic
        pcap: pcapng needs its per-block walk anyway.
        """
        if self.format != "pcap":
            raise ValueError(f"{self.name}: a shard pass needs a classic pcap, not {self.format}")
        items = self._iter_pcap_shard(self._start(), k, n)
        self._current = items
        return items

    def _start(self) -> _Source:
        """The byte stream of a new pass, the counters reset."""
        if self._stream is not None:
            src, self._stream = self._stream, None
        elif self._path is None or not self.rereadable:
            raise CaptureError(f"{self.name}: a stream can be read only once")
        else:
            src = self._open()
        self.truncated = False
        self.weird = collections.Counter()
        self.packets = 0
        self.bytes = 0
        self.bytes_read = 0
        self._data_read = 0
        return src

    def close(self) -> None:
        """End the current pass early and close its file (counters keep their values)."""
        current, self._current = self._current, None
        close = getattr(current, "close", None)
        if close is not None:
            close()
        if self._stream is not None:  # opened, never iterated
            stream, self._stream = self._stream, None
            stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _refill(self, src: _Source, need: int) -> bytes:
        """At least `need` bytes if the file has them (CHUNK_SIZE at least); b"" at the end.

        A corrupt or cut gzip stream is treated like an end of file inside a record.
        """
        try:
            chunk = src.read(max(need, CHUNK_SIZE))
            self.bytes_read = src.tell()
            self._data_read += len(chunk)
            if self.max_bytes is not None and self._data_read > self.max_bytes:
                # A gzip bomb's last line of defence: one message, no report.
                raise CaptureError(f"{self.name}: more than {self.max_bytes} bytes of capture data "
                                   f"(from {self.bytes_read} bytes of file): stopped by --max-bytes")
            return chunk
        except EOFError:
            self.weird["gzip_truncated"] += 1
        except gzip.BadGzipFile as exc:
            if str(exc).startswith("Not a gzipped file"):
                # Raised only where a next member would start: every member before
                # was whole, so nothing of the capture is missing (gzip(1) warns alike).
                self.weird["gzip_trailing_garbage"] += 1
                return b""
            self.weird["gzip_corrupt"] += 1
        except (OSError, zlib.error):
            self.weird["gzip_corrupt"] += 1
        self.truncated = True
        return b""

    def _pcap_layout(self) -> tuple[_Header, int, int]:
        """What reading this pcap's records needs: header unpacker, caplen limit, length swap (0/1/2)."""
        if self._version != (2, 4):
            self.weird["pcap_unusual_version"] += 1
        # A record above the snaplen (or, without one, libpcap's maximum) is
        # counted but read when the file holds it; one above MAX_RECORD cannot
        # be data: reading stops there.
        limit = self.snaplen or PCAP_MAX_SNAPLEN
        # libpcap before 2.3 wrote the two lengths the other way round; 2.3
        # files may be either way (libpcap's sf-pcap.c does the same swap).
        # 2: always swap, 1: swap when caplen > wirelen.
        if self._version < (2, 3):
            swapped = 2
        elif self._version == (2, 3):
            swapped = 1
        else:
            swapped = 0
        return struct.Struct(self._endian + "IIII").unpack_from, limit, swapped

    def _next_buffer(self, src: _Source, buf: bytes, pos: int, need: int, hdr: _Header, limit: int) -> bytes | None:
        """What is unread of buf (from pos) joined to the next chunk, so that `need` bytes from
        pos are there if the file has them; None at the end of the file, a record it cut counted."""
        chunk = self._refill(src, need - (len(buf) - pos))
        if chunk:
            return buf[pos:] + chunk
        n = len(buf)
        if pos < n:
            self.truncated = True
            if pos + 16 > n:
                self.weird["pcap_truncated_record_header"] += 1
            else:
                self.weird["pcap_truncated_record"] += 1
                if hdr(buf, pos)[2] > limit:
                    self.weird["pcap_caplen_exceeds_snaplen"] += 1
        return None

    def _bogus_record(self) -> None:
        """A record longer than MAX_RECORD cannot be data: the file is corrupt from there on."""
        self.weird["pcap_caplen_exceeds_snaplen"] += 1
        self.weird["pcap_bogus_caplen"] += 1
        self.truncated = True

    def _iter_pcap(self, src: _Source) -> Iterator[RawPacket]:
        weird = self.weird
        hdr, limit, swapped = self._pcap_layout()
        scale = self._scale
        linktype = self._linktype
        new = _new_raw
        raw_packet = RawPacket
        packets = 0
        nbytes = 0
        # Captured bytes are summed per chunk (bytes walked minus record
        # headers) rather than per packet: one addition less on the hot path.
        pos = chunk_pos = chunk_packets = 0
        try:
            buf = self._refill(src, 0)
            if len(buf) < 24:  # the file changed since open_capture
                self.truncated = True
                return
            pos = chunk_pos = 24
            while True:
                n = len(buf)
                need = 16
                while pos + 16 <= n:
                    sec, frac, caplen, wirelen = hdr(buf, pos)
                    if not caplen and not (sec or frac or wirelen):
                        # Records of nothing, skipped as one run (bytes compared, not parsed).
                        run = _empty_run(buf, pos)
                        weird["pcap_empty_record"] += run >> 4
                        pos += run
                        chunk_pos += run  # no captured bytes in them
                        continue
                    if swapped and (swapped == 2 or caplen > wirelen):
                        caplen, wirelen = wirelen, caplen
                    end = pos + 16 + caplen
                    if end > n:
                        if caplen > MAX_RECORD:
                            self._bogus_record()
                            return
                        need = end - pos
                        break
                    if caplen > wirelen or caplen > limit:
                        if caplen > limit:
                            weird["pcap_caplen_exceeds_snaplen"] += 1
                        if caplen > wirelen:
                            weird["pcap_caplen_exceeds_wirelen"] += 1
                    packets += 1
                    data = buf[pos + 16 : end]
                    pos = end
                    yield new(raw_packet, (sec + frac * scale, linktype, data, wirelen, 0, None))
                nbytes += pos - chunk_pos - 16 * (packets - chunk_packets)
                chunk_pos, chunk_packets = pos, packets
                self.packets = packets
                self.bytes = nbytes
                nxt = self._next_buffer(src, buf, pos, need, hdr, limit)
                if nxt is None:
                    return
                buf = nxt
                pos = chunk_pos = 0
        finally:
            self.packets = packets
            self.bytes = nbytes + pos - chunk_pos - 16 * (packets - chunk_packets)
            src.close()

    def _iter_pcap_shard(self, src: _Source, k: int, n: int) -> Iterator[RawPacket | Undecided | Skipped]:
        """`_iter_pcap` for shard k of n: per chunk, the records are found first, then split at once.

        Counting as `_iter_pcap` does, so both passes leave the same counters.
        """
        from analyzer.capture.bulk import split_records  # numpy: only for shard passes

        hdr, limit, swapped = self._pcap_layout()
        weird = self.weird
        linktype = self._linktype
        new = _new_raw
        raw_packet = RawPacket
        packets = nbytes = 0
        pos = chunk_pos = chunk_packets = 0
        try:
            buf = self._refill(src, 0)
            if len(buf) < 24:  # the file changed since open_capture
                self.truncated = True
                return
            pos = chunk_pos = 24
            while True:
                offsets, pos, need, empty = _record_offsets(buf, pos, hdr, swapped)
                if empty:
                    weird["pcap_empty_record"] += empty
                    chunk_pos += 16 * empty  # no captured bytes in them
                if offsets:
                    packets += len(offsets)
                    split = split_records(buf, offsets, self._endian, self._scale, swapped, limit, linktype, k, n)
                    if split.over_snaplen:
                        weird["pcap_caplen_exceeds_snaplen"] += split.over_snaplen
                    if split.over_wirelen:
                        weird["pcap_caplen_exceeds_wirelen"] += split.over_wirelen
                    ts = split.ts
                    after = 0  # the first record not handed out yet
                    for i, start, caplen, wirelen, decided in zip(
                        split.mine, split.starts, split.caplens, split.wirelens, split.decided, strict=True
                    ):
                        if i > after:
                            yield Skipped(ts[after:i])
                        raw = new(raw_packet, (ts[i], linktype, buf[start : start + caplen], wirelen, 0, None))
                        yield raw if decided else Undecided(raw)
                        after = i + 1
                    if after < len(ts):
                        yield Skipped(ts[after:])
                if need - 16 > MAX_RECORD:
                    self._bogus_record()
                    return
                nbytes += pos - chunk_pos - 16 * (packets - chunk_packets)
                chunk_pos, chunk_packets = pos, packets
                self.packets = packets
                self.bytes = nbytes
                nxt = self._next_buffer(src, buf, pos, need, hdr, limit)
                if nxt is None:
                    return
                buf = nxt
                pos = chunk_pos = 0
        finally:
            self.packets = packets
            self.bytes = nbytes + pos - chunk_pos - 16 * (packets - chunk_packets)
            src.close()


def _record_offsets(buf: bytes, pos: int, hdr: _Header, swapped: int) -> tuple[list[int], int, int, int]:
    """Where the complete records from pos on start; where the first incomplete one (or the end) is;
    how many bytes from there it needs (16 for a header, 16 + caplen for a whole record); how many
    empty records (all 16 header bytes zero) were skipped on the way."""
    n = len(buf)
    offsets: list[int] = []
    append = offsets.append
    empty = 0
    while pos + 16 <= n:
        sec, frac, caplen, wirelen = hdr(buf, pos)
        if not caplen and not (sec or frac or wirelen):
            run = _empty_run(buf, pos)
            empty += run >> 4
            pos += run
            continue
        if swapped and (swapped == 2 or caplen > wirelen):
            caplen = wirelen
        end = pos + 16 + caplen
        if end > n:
            return offsets, pos, end - pos, empty
        append(pos)
        pos = end
    return offsets, pos, 16, empty


def _empty_run(buf: bytes, pos: int) -> int:
    """Bytes from pos (a record boundary, its 16 header bytes zero) that are whole all-zero records.

    Each is a record of nothing: no time, no length. A gzip bomb is made of
    them (1 GiB of zeros in 1 MB of gzip); parsed one by one they cost ~1 us
    each, compared here with memcmp in doubling then halving steps.
    """
    room = (len(buf) - pos) // 16 * 16
    run = 16
    step = 16
    while step >= 16:
        step = min(step, room - run, len(_ZEROS))
        if step >= 16 and buf.startswith(_ZEROS[:step], pos + run):
            run += step
            step *= 2
        else:
            step = step // 32 * 16
    return run


def open_capture(source: str | os.PathLike[str] | BinaryIO, max_bytes: int | None = None) -> CaptureReader:
    """Open a pcap or pcapng capture (optionally gzip-compressed) for streaming.

    `max_bytes`: a pass raises CaptureError once it has read more capture data (after gunzip).

    Raises `CaptureError` (one-line message) when the file cannot be opened or
    is not a capture; never for damage inside it (see `CaptureReader.weird`).
    """
    return CaptureReader(source, max_bytes)


def _peek(f: BinaryIO, n: int) -> bytes:
    """The first n bytes, leaving the stream where it was (or rewound)."""
    peek = getattr(f, "peek", None)
    if peek is not None:
        data: bytes = peek(n)[:n]
        return data
    pos = f.tell()
    data = f.read(n)
    f.seek(pos)
    return data
