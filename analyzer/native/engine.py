"""`NativeEngine`: `analyzer.engine.Engine` with its per-packet loop in the compiled core.

The core walks the records, decodes, keeps the flow table and hands back, per chunk of
file bytes, the events the Python engine would have acted on, in its order: finished flows
(inspected here by the same `inspect_flow`), DNS messages for the same `DNSTracker`, ARP
frames and NDP packets for the same `NeighborTracker`. Everything after the flow table is
the Python engine's own code, so both engines give the same results
(tests/test_native_differential.py).

`--max-memory` is looked at by the core every 16383 packets, as the Python engine does, so
a stopped run covers the same packets. Frames from elsewhere (a live capture) come in
batches (`feed_batch`): one crossing per batch, since one per frame would cost more than
the core saves; a live batch is looked at for memory once, after it.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import struct
from collections import Counter
from collections.abc import Sequence
from typing import Any

from analyzer.capture.reader import RawPacket, open_capture
from analyzer.engine import (
    CaptureSummary,
    DNSSink,
    Engine,
    EngineConfig,
    FlowSink,
    ProgressFn,
    resident_mb,
)
from analyzer.errors import CaptureError
from analyzer.native import CFlowConfig, CoreUnavailable, load
from analyzer.native.events import (
    EV_ARP,
    EV_DNS,
    EV_FLOW,
    EV_NDP,
    _Cursor,
    opt_float,
    read_events,
    read_weirds,
)

__all__ = ["NativeEngine", "pack_frames"]

_FRAME = struct.Struct("<dIIII").pack
_NO_PROC = b"\0"


def _opt_int(v: int | None) -> bytes:
    return struct.pack("<q", -1 if v is None else v)


def _opt_text(v: str | None) -> bytes:
    if v is None:
        return b"\xff\xff\xff\xff"
    b = v.encode("utf-8", "surrogateescape")
    return struct.pack("<I", len(b)) + b


def pack_frames(packets: Sequence[RawPacket]) -> bytes:
    """Frames as core/src/engine.rs `Core::feed_frames` reads them: `<dIIII` (ts, linktype,
    wirelen, iface, caplen), the bytes, then 0, or 1 and the process (pid, name, epid, ename)."""
    parts: list[bytes] = []
    add = parts.append
    for ts, linktype, data, wirelen, iface, proc in packets:
        add(_FRAME(ts, linktype, wirelen, iface, len(data)))
        add(data)
        if proc is None:
            add(_NO_PROC)
        else:
            add(b"\1" + _opt_int(proc.pid) + _opt_text(proc.name) + _opt_int(proc.epid) + _opt_text(proc.ename))
    return b"".join(parts)


class NativeEngine(Engine):
    """The engine with the compiled core's packet loop for files (`read`); see the module docstring."""

    def __init__(self, config: EngineConfig | None = None, on_flow: FlowSink | None = None,
                 shard: tuple[int, int] | None = None, on_dns: DNSSink | None = None) -> None:
        super().__init__(config, on_flow, shard, on_dns)
        lib = load()
        if lib is None:
            raise CoreUnavailable("the compiled core is not available")
        self._lib = lib
        k, n = self._shard if self._shard is not None else (0, 1)
        cfg = CFlowConfig.of(self.config.flows)
        handle = lib.anc_new(ctypes.byref(cfg), k, n)
        if not handle:
            raise CoreUnavailable("the compiled core could not start")
        self._h = handle
        if self.max_memory_mb is not None:  # the core looks every 16383 packets, as Engine.feed
            lib.anc_set_memory_limit(handle, float(self.max_memory_mb), mmap.PAGESIZE)
        self._len = ctypes.c_size_t()
        self._finished_core = False

    def __del__(self) -> None:
        h, self._h = getattr(self, "_h", None), None
        if h:
            self._lib.anc_free(h)

    # -- the core's buffers --------------------------------------------------------
    def _buffer(self, fn: Any) -> bytes:
        ptr = fn(self._h, ctypes.byref(self._len))
        n = self._len.value
        return ctypes.string_at(ptr, n) if n else b""

    def _call(self, rc: int) -> None:
        if rc < 0:
            self._internal("packet", RuntimeError(f"compiled core error {rc}"))

    def _events(self) -> None:
        buf = self._buffer(self._lib.anc_events)
        if not buf:
            return
        for kind, value in read_events(buf):
            if kind == EV_FLOW:
                self._flow_done(value)
                continue
            try:
                if kind == EV_DNS:
                    self.dns.feed(*value)
                elif kind == EV_ARP:
                    self.neighbors.arp(value)
                elif kind == EV_NDP:
                    self.neighbors.ndp(value)
            except (OSError, MemoryError):
                raise
            except Exception as exc:  # the error boundary, as Engine._feed's
                self._internal("packet", exc)

    def _table_counts(self) -> tuple[int, int]:
        """(flows in the core's table now, packets given to it)."""
        flows, packets = ctypes.c_uint64(), ctypes.c_uint64()
        self._lib.anc_table_counts(self._h, ctypes.byref(flows), ctypes.byref(packets))
        return flows.value, packets.value

    @property
    def packets(self) -> int:
        return self._table_counts()[1]

    # -- files ---------------------------------------------------------------------
    def read(self, path: str | os.PathLike[str], progress: ProgressFn | None = None) -> CaptureSummary:
        reader = open_capture(path, self.config.max_bytes)
        total = 0
        with contextlib.suppress(OSError):
            total = os.path.getsize(path)
        lib, h = self._lib, self._h
        reading = self.stopped is None
        name = reader.name.encode("utf-8", "surrogateescape")
        self._call(lib.anc_begin_file(h, name, len(name), int(reader.compressed)))
        error = None
        try:
            if reading:
                for chunk in reader.chunks():
                    rc = lib.anc_feed(h, chunk, len(chunk))
                    if rc == 1:
                        raise CaptureError(self._buffer(lib.anc_error).decode("utf-8", "replace"))
                    if rc != 3:
                        self._call(rc)
                    self._events()
                    if progress is not None:
                        progress(reader.bytes_read, total)
                    if rc == 3:  # the core found the memory limit passed and stopped walking
                        self._memory_limit_reached(resident_mb())
                    if self.stopped is not None or lib.anc_walk_done(h) == 1:
                        break  # the Python reader stops pulling bytes where its walk stops (a gzip error after is unseen)
        finally:
            reader.close()
            rc = lib.anc_end_file(h)
            if rc == 1:
                error = self._buffer(lib.anc_error).decode("utf-8", "replace")
            else:
                self._call(rc)
            self._events()
        if error is not None:  # too short to be a capture: open_capture says so first, but the file may have changed
            raise CaptureError(error)
        info = self._buffer(lib.anc_info)
        return self._summary(reader, info, reading)

    def _summary(self, reader: Any, info: bytes, reading: bool) -> CaptureSummary:
        c = _Cursor(info)
        fmt = c.bytes_().decode()
        packets, nbytes = c.u64(), c.u64()
        link_types = tuple(c.bytes_().decode() for _ in range(c.u32()))
        truncated, process_info = bool(c.u8()), bool(c.u8())
        first_ts, last_ts = c.f64(), c.f64()
        counts_frames = bool(c.u8())
        weird: Counter[str] = Counter(reader.weird)
        read_weirds(c, weird)
        summary = CaptureSummary(
            source=reader.name,
            format=fmt or getattr(reader, "format", None),
            packets=packets,
            bytes=nbytes,
            first_ts=opt_float(first_ts),
            last_ts=opt_float(last_ts),
            link_types=link_types,
            truncated=truncated or bool(reader.truncated),
            dropped=None,
            weird=tuple(sorted((weird + self._stop_weird).items() if reading and self.stopped
                               else weird.items())),
            on_device="pktap" in link_types or process_info,
        )
        if counts_frames:
            self.weird.update(weird)
        self.captures.append(summary)
        return summary

    # -- the clock and the end -------------------------------------------------------
    def skip(self, times: list[float]) -> None:  # and so `advance`
        for t in times:
            self._call(self._lib.anc_advance(self._h, t))
        self._events()

    @property
    def open_flows(self) -> int:
        return self._table_counts()[0]

    def feed_batch(self, packets: Sequence[RawPacket]) -> None:
        """A batch of frames (a live capture) in one crossing: `pack_frames`, then the core."""
        if not packets:
            return
        if self.stopped is not None:
            self.unread += len(packets)
            return
        buf = pack_frames(packets)
        self._call(self._lib.anc_feed_frames(self._h, buf, len(buf)))
        self._events()
        self._check_in -= len(packets)
        if self._check_in <= 0:  # Engine.feed's look at the memory, once a batch passes the count
            self._check_memory()

    def feed(self, raw: RawPacket, owned: bool = False) -> None:
        """One frame: a batch of one (a crossing per frame: `feed_batch` is the way for many)."""
        self.feed_batch((raw,))

    def _end_packets(self) -> None:
        """The core ends its flows (events as any others) and hands over its decoder's and table's weirds."""
        if self._finished_core:
            return
        self._finished_core = True
        try:
            self._call(self._lib.anc_finish(self._h))
            self._events()
        except MemoryError:
            self._out_of_memory()
        read_weirds(_Cursor(self._buffer(self._lib.anc_info)), self.weird)

