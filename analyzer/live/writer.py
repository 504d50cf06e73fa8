"""`--write FILE`: keep what the live analyzer saw as pcapng, rotating by size.

The file holds exactly the packets the engine was fed (after both stages of
the filter), so `apple-net analyze` on it gives the live run's verdicts. The
interface description block names the capture filter (`if_filter`) and the
interface, so a reader of the file later knows what it does not contain.

Rotation: when a file reaches `max_bytes`, it is closed and the next one
opened: FILE, then FILE's stem with .1, .2, ... before the suffix
(`cap.pcapng`, `cap.1.pcapng`, ...). With `keep` set, only the newest `keep`
files stay on disk; the older ones are deleted as new ones open, so the disk
use is bounded (`keep * max_bytes`). Each file is a complete pcapng file.

The files hold DNS names, SNI and the first data segments (plaintext HTTP,
proxy credentials): each is created 0600, as a new temporary file beside its
name (O_EXCL|O_NOFOLLOW: a planted symlink is never followed), and renamed to
its name when it is closed or rotated. A name that already exists, a symlink
included, is replaced, never written through; a reader never sees a half file.

A live capture ends when it is stopped, not at its last packet; `close(end=)`
records that moment in an interface statistics block (`isb_endtime`, with
the kernel's `isb_filteraccept` and `isb_osdrop`) at the end of the last
file, where dumpcap writes its own: the silence after the last packet is
part of the capture, and the file says how long it was. (The offline
reader does not read it yet: `analyze` on the file judges at its last
packet, so a request the live run saw go unanswered in that silence can
read `incomplete` there.)
"""

from __future__ import annotations

import os
import secrets
import struct
from pathlib import Path
from typing import BinaryIO

from analyzer.capture.reader import RawPacket
from analyzer.errors import AnalyzerError

__all__ = ["DEFAULT_ROTATE_BYTES", "PcapngWriter"]

DEFAULT_ROTATE_BYTES = 256 << 20
CAPTURE_MODE = 0o600

_BT_SHB, _BT_IDB, _BT_EPB, _BT_ISB = 0x0A0D0D0A, 0x00000001, 0x00000006, 0x00000005
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_END, _OPT_COMMENT = 0, 1
_SHB_USERAPPL = 4
_IF_NAME, _IF_TSRESOL, _IF_FILTER = 2, 9, 11
_ISB_ENDTIME, _ISB_FILTERACCEPT, _ISB_OSDROP = 3, 6, 7
_TSRESOL_USEC = 6
_EPB_HEAD = struct.Struct("<IIIIIII")  # type, length, interface, ts high, ts low, caplen, wirelen


def _option(code: int, value: bytes) -> bytes:
    pad = (-len(value)) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def _block(btype: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


def _header(linktype: int, snaplen: int, iface: str, bpf: str, app: str) -> bytes:
    shb = struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1)
    shb += _option(_SHB_USERAPPL, app.encode()) + _option(_OPT_END, b"")
    idb = struct.pack("<HHI", linktype, 0, snaplen)
    idb += _option(_IF_NAME, iface.encode())
    idb += _option(_IF_TSRESOL, bytes([_TSRESOL_USEC]))
    if bpf:
        idb += _option(_IF_FILTER, b"\0" + bpf.encode())  # type 0: a libpcap filter string
    idb += _option(_OPT_END, b"")
    return _block(_BT_SHB, shb) + _block(_BT_IDB, idb)


def _ticks(ts: float) -> tuple[int, int]:
    """A time in the interface's resolution (microseconds), as pcapng's high and low words."""
    ticks = round(ts * 1_000_000)
    return ticks >> 32, ticks & 0xFFFFFFFF


def _statistics(end: float, accepted: int | None, dropped: int | None) -> bytes:
    """The interface statistics block of a capture that ended at `end` (interface 0)."""
    hi, lo = _ticks(end)
    isb = struct.pack("<III", 0, hi, lo) + _option(_ISB_ENDTIME, struct.pack("<II", hi, lo))
    if accepted is not None:
        isb += _option(_ISB_FILTERACCEPT, struct.pack("<Q", accepted))
    if dropped is not None:
        isb += _option(_ISB_OSDROP, struct.pack("<Q", dropped))
    isb += _option(_OPT_END, b"")
    return _block(_BT_ISB, isb)


class PcapngWriter:
    """Writes RawPackets of one interface to FILE, rotating by size."""

    def __init__(self, path: str | os.PathLike[str], linktype: int, snaplen: int, iface: str, bpf: str = "",
                 max_bytes: int = DEFAULT_ROTATE_BYTES, keep: int | None = None, app: str = "apple-net live") -> None:
        if max_bytes < 4096:
            raise ValueError("max_bytes must be at least 4096")
        if keep is not None and keep < 1:
            raise ValueError("keep must be >= 1")
        self.base = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self._header = _header(linktype, snaplen, iface, bpf, app)
        self.paths: list[Path] = []
        """Files written and still on disk, oldest first."""
        self.deleted = 0
        self.packets = 0
        self._fh: BinaryIO | None = None
        self._tmp: Path | None = None
        self._size = 0
        self._index = 0
        self._open()

    def _name(self, index: int) -> Path:
        if index == 0:
            return self.base
        suffix = "".join(self.base.suffixes[-1:]) or ".pcapng"
        stem = self.base.name.removesuffix(suffix)
        return self.base.with_name(f"{stem}.{index}{suffix}")

    def _open(self) -> None:
        path = self._name(self._index)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, CAPTURE_MODE)
        except OSError as exc:
            raise AnalyzerError(f"cannot write {path}: {exc.strerror}") from None
        fh = os.fdopen(fd, "wb")  # closed in _finish()
        try:
            os.fchmod(fd, CAPTURE_MODE)  # whatever the umask
            fh.write(self._header)
        except OSError as exc:
            fh.close()
            tmp.unlink(missing_ok=True)
            raise AnalyzerError(f"cannot write {path}: {exc.strerror}") from None
        self._fh = fh
        self._tmp = tmp
        self._size = len(self._header)
        self.paths.append(path)
        if self.keep is not None:
            while len(self.paths) > self.keep:
                old = self.paths.pop(0)
                old.unlink(missing_ok=True)
                self.deleted += 1

    def _finish(self) -> None:
        """Close the file being written and give it its name (replacing whatever had that name)."""
        fh, tmp = self._fh, self._tmp
        if fh is None or tmp is None:
            return
        self._fh = self._tmp = None
        try:
            fh.close()
            os.replace(tmp, self.paths[-1])
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise AnalyzerError(f"cannot write {self.paths[-1]}: {exc.strerror}") from None

    def write(self, raw: RawPacket) -> None:
        fh = self._fh
        if fh is None:
            raise ValueError("writer is closed")
        data = raw.data
        caplen = len(data)
        ticks = round(raw.ts * 1_000_000)  # as _ticks, inline: this runs for every packet
        pad = (-caplen) % 4
        length = 32 + caplen + pad
        if self._size + length > self.max_bytes and self._size > len(self._header):
            self.rotate()
            fh = self._fh
            assert fh is not None
        try:
            fh.write(_EPB_HEAD.pack(_BT_EPB, length, 0, ticks >> 32, ticks & 0xFFFFFFFF, caplen, raw.wirelen))
            fh.write(data)
            fh.write(b"\0" * pad + struct.pack("<I", length))
        except OSError as exc:  # a full disk: one line, not a traceback from inside the capture loop
            raise AnalyzerError(f"cannot write {self.paths[-1]}: {exc.strerror}") from None
        self._size += length
        self.packets += 1

    def rotate(self) -> None:
        self._finish()
        self._index += 1
        self._open()

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self, end: float | None = None, accepted: int | None = None, dropped: int | None = None) -> None:
        """Close the last file; `end`: when the capture stopped (packet clock), recorded with the kernel's
        counts of packets its filter accepted and it dropped."""
        if self._fh is not None:
            try:
                if end is not None:
                    self._fh.write(_statistics(end, accepted, dropped))
            finally:
                self._finish()
