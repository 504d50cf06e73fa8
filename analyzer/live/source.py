"""Live capture sources: packets from an interface, as `RawPacket`s, in batches.

Two backends read the same kernel filter from a Linux packet socket:

* `pcapy` (pcapy-ng, libpcap with its TPACKET_V3 memory-mapped ring):
  `next_batch` hands over up to a few hundred packets per call as one bytes
  object plus a packed header array, so the Python cost per packet is a
  slice and a tuple. The default when installed; see bench/bench_live.py for
  the measured difference.
* `scapy` (the design's original choice): scapy's L2ListenSocket with the
  kernel filter attached, read with `recv_raw` (no dissection), one
  `recvmsg` system call per packet.

Either way each frame becomes a `RawPacket` at once and is fed to the same
`Engine` as offline captures. Timestamps are microseconds, converted to
seconds exactly as the pcapng reader converts the `--write` file's
timestamps, so the live run and an offline run over its file see the same
floats.

`open_offline_as_live(path, ...)` reads a capture file through the same
pcapy batch path and filter (libpcap applies the filter in user space
offline): tests and benchmarks use it to check the live pipeline without
root.

Opening a source needs root or CAP_NET_RAW; reading from the open handle
does not: `apple-net live` gives up root as soon as `open_live` returns
(analyzer/live/privileges.py), so nothing here may need privileges after
the open (the scapy socket's promiscuous membership goes with the socket).

Errors users can fix are `LiveCaptureError` with a one-line message that
says what to do: no permission, no such interface, a bad filter, no backend.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

from analyzer.capture.reader import RawPacket
from analyzer.errors import AnalyzerError

__all__ = ["BACKENDS", "KernelStats", "LiveCaptureError", "LiveSource", "open_live", "open_offline_as_live"]

BACKENDS = ("auto", "pcapy", "scapy")
DEFAULT_SNAPLEN = 262_144
DEFAULT_BUFFER_MB = 128
DEFAULT_TIMEOUT_MS = 100
BATCH = 512

_new_raw = tuple.__new__
_HI = (1 << 32) / 1_000_000  # the pcapng reader's scale for if_tsresol 6
_LO = 1 / 1_000_000
Keep = Callable[[bytes], bool]

PERMISSION_HINT = ("capturing needs root or CAP_NET_RAW: run it with sudo, or once: "
                   "sudo setcap cap_net_raw,cap_net_admin=eip \"$(readlink -f \"$(command -v python3)\")\"")
INSTALL_HINT = "live capture needs pcapy-ng or scapy: pip install 'apple-net-analyzer[live]'"


class LiveCaptureError(AnalyzerError):
    """The capture cannot start; the message says what to do."""


class KernelStats(NamedTuple):
    """Cumulative counters of the capture socket since it opened."""

    received: int
    """Packets that passed the kernel filter (including those then dropped)."""
    dropped: int
    """Packets the kernel dropped because our buffer was full."""
    ifdropped: int
    """Packets the interface or driver dropped (not always known: 0)."""


class LiveSource(Protocol):
    iface: str
    linktype: int
    backend: str
    snaplen: int
    offline: bool
    exhausted: bool
    filter: str

    def read(self, keep: Keep | None = None) -> tuple[list[RawPacket], int]:
        """One batch: (kept packets, packets read). Empty after a timeout with no traffic."""

    def stats(self) -> KernelStats: ...

    def close(self) -> None: ...


def _ts(ticks: int) -> float:
    return (ticks >> 32) * _HI + (ticks & 0xFFFFFFFF) * _LO


def check_interface(iface: str) -> None:
    """LiveCaptureError unless `iface` exists (Linux `any` always does)."""
    if iface == "any":
        return
    try:
        socket.if_nametoindex(iface)
    except OSError:
        try:
            names = sorted(name for _i, name in socket.if_nameindex())
        except OSError:
            names = []
        known = f"; interfaces here: {', '.join(names)}" if names else ""
        raise LiveCaptureError(f"no interface {iface!r}{known} (see `ip link`)") from None


def _classify(iface: str, message: str) -> LiveCaptureError:
    text = message.lower()
    if "permission" in text or "not permitted" in text:
        return LiveCaptureError(f"cannot capture on {iface}: {PERMISSION_HINT}")
    if "no such device" in text or "doesn't exist" in text:
        return LiveCaptureError(f"no interface {iface!r} (see `ip link`)")
    return LiveCaptureError(f"cannot capture on {iface}: {message.strip().splitlines()[0] if message.strip() else '?'}")


# -- pcapy-ng ---------------------------------------------------------------------------------------

class PcapySource:
    """libpcap through pcapy-ng, read `BATCH` packets per call."""

    backend = "pcapy"

    def __init__(self, cap: object, iface: str, snaplen: int, offline: bool = False, timeout_ms: int = 0) -> None:
        self._cap = cap
        self._wait = timeout_ms / 1000
        self._fd = -1
        if not offline:
            cap.setnonblock(1)  # type: ignore[attr-defined]
            self._fd = cap.getfd()  # type: ignore[attr-defined]
        self.iface = iface
        self.snaplen = snaplen
        self.linktype = int(cap.datalink())  # type: ignore[attr-defined]
        self.offline = offline
        self.exhausted = False
        """Offline only: the file has no more packets."""
        self.filter = ""
        """The kernel filter in force."""
        self.batch = BATCH

    def read(self, keep: Keep | None = None) -> tuple[list[RawPacket], int]:
        import pcapy  # type: ignore[import-not-found]

        try:
            data, meta = self._cap.next_batch(self.batch)  # type: ignore[attr-defined]
            if not meta and not self.offline:
                # Non-blocking: wait for the kernel to hand over a block, at most the timeout.
                # (libpcap's own timeout never fires on an idle TPACKET_V3 socket.)
                select.select([self._fd], [], [], self._wait)
                data, meta = self._cap.next_batch(self.batch)  # type: ignore[attr-defined]
        except pcapy.PcapError as exc:
            if self.offline:
                self.exhausted = True
                return [], 0
            raise LiveCaptureError(f"capture on {self.iface} failed: {exc}") from None
        if not meta:
            self.exhausted = self.offline
            return [], 0
        words = memoryview(meta).cast("I")
        n = len(words) >> 2
        lt = self.linktype
        out: list[RawPacket] = []
        append = out.append
        for i in range(0, n << 2, 4):
            off = words[i + 2]
            caplen = words[i + 3]
            frame = data[off:off + caplen]
            if keep is not None and not keep(frame):
                continue
            # The batch header has no wire length: with a 256 KiB snaplen nothing is cut.
            append(_new_raw(RawPacket, (_ts(words[i] * 1_000_000 + words[i + 1]), lt, frame, caplen, 0, None)))
        return out, n

    def stats(self) -> KernelStats:
        try:
            recv, drop, ifdrop = self._cap.stats()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - offline handles have no statistics, whatever pcapy raises
            return KernelStats(0, 0, 0)
        return KernelStats(int(recv), int(drop), int(ifdrop))

    def close(self) -> None:
        close = getattr(self._cap, "close", None)
        if close is not None:
            close()


def _set_filter(cap: object, expr: str, iface: str, fallback: str | None = None) -> str:
    """Set `expr` (or `fallback` when `expr` does not compile for this link type); the one set."""
    import pcapy

    try:
        cap.setfilter(expr)  # type: ignore[attr-defined]
        return expr
    except pcapy.PcapError as exc:
        if fallback is not None:
            return _set_filter(cap, fallback, iface)
        raise LiveCaptureError(f"bad capture filter for {iface}: {exc}") from None


def compile_user_filter(expr: str, linktype: int) -> Keep:
    """A user expression as a predicate on frames (libpcap's BPF interpreter, in user space).

    Without pcapy-ng there is no user-space BPF: the predicate then keeps every frame."""
    try:
        import pcapy
    except ImportError:
        return lambda frame: True
    try:
        prog = pcapy.compile(linktype, DEFAULT_SNAPLEN, expr, 1, 0)
    except pcapy.PcapError as exc:
        raise LiveCaptureError(f"bad --bpf-also expression: {exc}") from None
    match = prog.filter
    return lambda frame: match(frame) != 0


def _open_pcapy(iface: str, expr: str, snaplen: int, buffer_mb: int, timeout_ms: int, promisc: bool,
                fallback: str | None) -> PcapySource:
    import pcapy

    try:
        cap = pcapy.create(iface)
        cap.set_snaplen(snaplen)
        cap.set_promisc(promisc)
        cap.set_timeout(timeout_ms)
        cap.set_buffer_size(buffer_mb << 20)
        cap.activate()
        ok = cap.datalink() >= 0
    except pcapy.PcapError:
        ok = False
    if not ok:
        # pcapy's activate() does not raise on failure; open_live says why.
        try:
            cap = pcapy.open_live(iface, snaplen, promisc, timeout_ms)
        except pcapy.PcapError as exc:
            raise _classify(iface, str(exc)) from None
    src = PcapySource(cap, iface, snaplen, timeout_ms=timeout_ms)
    if expr:
        src.filter = _set_filter(cap, expr, iface, fallback)
    return src


def open_offline_as_live(path: str | os.PathLike[str], expr: str = "", fallback: str | None = None) -> PcapySource:
    """A capture file through the live batch path and filter (needs pcapy-ng)."""
    try:
        import pcapy
    except ImportError:
        raise LiveCaptureError(INSTALL_HINT) from None
    try:
        cap = pcapy.open_offline(os.fspath(path))
    except pcapy.PcapError as exc:
        raise LiveCaptureError(f"{path}: {exc}") from None
    src = PcapySource(cap, os.fspath(path), DEFAULT_SNAPLEN, offline=True)
    if expr:
        src.filter = _set_filter(cap, expr, os.fspath(path), fallback)
    return src


# -- scapy ------------------------------------------------------------------------------------------

_ARPHRD_LINKTYPE = {1: 1, 772: 1, 65534: 101, 512: 9}  # ether, loopback, none (tun: raw IP), PPP
_SO_RCVBUFFORCE = 33
_SOL_PACKET = 263
_PACKET_STATISTICS = 6
_TPACKET_STATS = struct.Struct("=II")


class ScapySource:
    """scapy's L2ListenSocket, one `recv_raw` per packet until the batch timeout."""

    backend = "scapy"

    def __init__(self, sock: object, iface: str, snaplen: int, timeout_ms: int) -> None:
        self._sock = sock
        self.iface = iface
        self.snaplen = snaplen
        hatype = sock.ins.getsockname()[3]  # type: ignore[attr-defined]
        # Ethernet (and loopback's zero Ethernet header) unless the device has no link header at all.
        self.linktype = _ARPHRD_LINKTYPE.get(hatype, 1)
        self.offline = False
        self.exhausted = False
        self.filter = ""
        self._timeout = timeout_ms / 1000
        self._received = 0
        self._dropped = 0
        self._fd = sock.ins  # type: ignore[attr-defined]

    def read(self, keep: Keep | None = None) -> tuple[list[RawPacket], int]:
        out: list[RawPacket] = []
        n = 0
        recv = self._sock.recv_raw  # type: ignore[attr-defined]
        lt = self.linktype
        deadline = time.monotonic() + self._timeout
        while n < BATCH:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([self._fd], [], [], wait)[0]:
                break
            _cls, frame, ts = recv(self.snaplen)
            n += 1
            if frame is None:
                continue
            if keep is not None and not keep(frame):
                continue
            ticks = round(ts * 1_000_000)
            out.append(_new_raw(RawPacket, (_ts(ticks), lt, frame, len(frame), 0, None)))
        return out, n

    def stats(self) -> KernelStats:
        # PACKET_STATISTICS returns counts since the last call and resets them: accumulate.
        try:
            raw = self._fd.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, _TPACKET_STATS.size)
        except OSError:
            return KernelStats(self._received, self._dropped, 0)
        packets, drops = _TPACKET_STATS.unpack(raw)
        self._received += packets
        self._dropped += drops
        return KernelStats(self._received, self._dropped, 0)

    def close(self) -> None:
        self._sock.close()  # type: ignore[attr-defined]


def _open_scapy(iface: str, expr: str, snaplen: int, buffer_mb: int, timeout_ms: int, promisc: bool,
                fallback: str | None) -> ScapySource:
    import logging

    from scapy.arch.linux import L2ListenSocket
    from scapy.config import conf
    from scapy.error import Scapy_Exception

    conf.bufsize = buffer_mb << 20
    # scapy warns on stderr when it cannot name the link layer; we read raw frames, that is fine.
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    try:
        sock = L2ListenSocket(iface=iface, filter=expr or None, promisc=promisc)
        # scapy asks for SO_RCVBUF, which the kernel caps at net.core.rmem_max (~200 KB): as root, force it.
        with contextlib.suppress(OSError):
            sock.ins.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, buffer_mb << 20)
    except PermissionError as exc:
        raise _classify(iface, str(exc)) from None
    except OSError as exc:
        raise _classify(iface, exc.strerror or str(exc)) from None
    except Scapy_Exception as exc:
        if fallback is not None:
            return _open_scapy(iface, fallback, snaplen, buffer_mb, timeout_ms, promisc, None)
        raise LiveCaptureError(f"bad capture filter for {iface}: {exc}") from None
    src = ScapySource(sock, iface, snaplen, timeout_ms)
    src.filter = expr
    return src


def available_backend(backend: str = "auto") -> str:
    """The backend `open_live` would use, or LiveCaptureError naming what to install."""
    if backend not in BACKENDS:
        raise LiveCaptureError(f"unknown capture backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    order = ("pcapy", "scapy") if backend == "auto" else (backend,)
    for name in order:
        try:
            __import__("pcapy" if name == "pcapy" else "scapy.arch.linux")
        except ImportError:
            continue
        return name
    raise LiveCaptureError(INSTALL_HINT if backend == "auto" else f"backend {backend} is not installed; {INSTALL_HINT}")


def open_live(iface: str, expr: str, backend: str = "auto", snaplen: int = DEFAULT_SNAPLEN,
              buffer_mb: int = DEFAULT_BUFFER_MB, timeout_ms: int = DEFAULT_TIMEOUT_MS,
              promisc: bool = True, fallback: str | None = None) -> LiveSource:
    """Open `iface` with the kernel filter `expr` ('' = everything; `fallback` if `expr` does not
    compile for the interface's link type). Raises LiveCaptureError."""
    name = available_backend(backend)
    check_interface(iface)
    if name == "pcapy":
        return _open_pcapy(iface, expr, snaplen, buffer_mb, timeout_ms, promisc, fallback)
    return _open_scapy(iface, expr, snaplen, buffer_mb, timeout_ms, promisc, fallback)
