"""One live run: source -> filter (user-space stage) -> engine (+ --write file) -> roll-up -> report.

    session = LiveSession(source, spec, catalogue, writer=None, ...)
    session.run(duration=None, tick=callback)   # until duration, Ctrl-C/SIGTERM, or the end of a file
    report = session.report()                   # the final report dict, any offline renderer takes it

Single-threaded on purpose: the kernel's capture buffer is the only queue,
so the only way to lose packets is a full kernel buffer, and the kernel
counts that (`KernelStats.dropped`). At the end the session drains what the
kernel still holds; packets the kernel accepted that never reached the
engine are counted as our own backlog. Both go into the report's
`captures[0].dropped` and a weird, never lost silently.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from analyzer.capture.reader import linktype_name
from analyzer.catalogue.loader import Catalogue
from analyzer.engine import CaptureSummary, EngineConfig, make_engine
from analyzer.live.bpf import FilterSpec
from analyzer.live.heads import DEFAULT_HEAD_SEGMENTS, HeadKeeper
from analyzer.live.privileges import credentials
from analyzer.live.rolling import Rollup
from analyzer.live.source import KernelStats, LiveSource
from analyzer.live.writer import PcapngWriter

__all__ = ["LiveSession", "LiveStatus"]

log = logging.getLogger(__name__)

DRAIN_SECONDS = 2.0
"""At the end, how long to keep reading what the kernel still holds."""


@dataclass(frozen=True, slots=True)
class LiveStatus:
    """Counters at one moment of a run (for the view and the report)."""

    elapsed: float
    read: int
    """Packets read from the kernel."""
    kept: int
    """Packets fed to the engine (and written)."""
    shed: int
    """Packets the user-space filter stage left out on purpose (bulk)."""
    kernel: KernelStats
    backlog: int
    """Packets the kernel accepted that we never read (known at the end)."""
    active_flows: int
    flows_done: int
    dns: int
    lag: float
    """Seconds between the newest packet's time and the clock when it was processed (max of the run)."""

    @property
    def dropped(self) -> int:
        return self.kernel.dropped + self.backlog


class LiveSession:
    def __init__(self, source: LiveSource, spec: FilterSpec, catalogue: Catalogue, *,
                 writer: PcapngWriter | None = None, head_segments: int = DEFAULT_HEAD_SEGMENTS,
                 config: EngineConfig | None = None, max_flows: int = 100_000, max_dns: int = 100_000,
                 extra_keep: Callable[[bytes], bool] | None = None) -> None:
        self.source = source
        self.spec = spec
        self.engine = make_engine(config)
        self.writer = writer
        self.head_segments = head_segments
        self.keeper = (HeadKeeper(source.linktype, head_segments, extra=extra_keep) if spec.heads else None)
        self.rollup = Rollup(catalogue, max_flows=max_flows, max_dns=max_dns)
        self.read = 0
        self.kept = 0
        self.bytes = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.lag = 0.0
        self._offset = math.inf
        """Smallest (wall clock at reading - packet time) seen: maps the wall clock to the packets' clock."""
        self.max_roll = 0.0
        """Longest pause of reading for the periodic roll-up and view (seconds): the kernel buffer must span it."""
        self.started = time.monotonic()
        self.stopped_by: str | None = None
        self.stopped_at: float | None = None
        """When the capture was stopped (wall clock, `time.time()`); None for a file."""
        self._stop = False
        self._backlog = 0
        self._final_stats: KernelStats | None = None
        self._final: LiveStatus | None = None

    # -- control ------------------------------------------------------------------------------------
    def stop(self, why: str = "stopped", at: float | None = None) -> None:
        """Ask the loop to end after the current batch (safe from a signal handler).

        `at`: the moment the capture stopped, wall clock (default: now). A
        file read as a live source ends at its last packet instead.
        """
        if not self._stop:
            self.stopped_by = why
            if not self.source.offline:
                self.stopped_at = time.time() if at is None else at
        self._stop = True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop("interrupted" if signum == signal.SIGINT else "terminated")

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, duration: float | None = None, tick: Callable[[LiveStatus], None] | None = None,
            tick_every: float = 2.0, handle_signals: bool = True) -> None:
        """Capture until `duration` seconds, a signal, or the end of an offline source."""
        previous = {}
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        # Who parses the traffic, as the kernel sees it: after `apple-net live` gave up root, not root.
        log.debug("live session credentials: %s", credentials())
        self.started = time.monotonic()
        deadline = self.started + duration if duration else None
        next_tick = self.started + tick_every
        try:
            while not self._stop:
                self._batch()
                now = time.monotonic()
                if self.source.offline and self.source.exhausted:
                    self.stop("end of file")
                elif deadline is not None and now >= deadline:
                    self.stop("duration")
                if now >= next_tick:
                    next_tick = now + tick_every
                    self.roll()
                    if tick is not None:
                        tick(self.status())
                    self.max_roll = max(self.max_roll, time.monotonic() - now)
            self._drain()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _batch(self) -> int:
        keep = self.keeper.keep if self.keeper is not None else None
        packets, n = self.source.read(keep)
        self.read += n
        if not packets:
            return n
        self.engine.feed_batch(packets)
        write = self.writer.write if self.writer is not None else None
        for raw in packets:
            if write is not None:
                write(raw)
            self.bytes += len(raw.data)
        self.kept += len(packets)
        if self.first_ts is None:
            self.first_ts = packets[0].ts
        self.last_ts = packets[-1].ts
        if not self.source.offline:
            behind = time.time() - packets[-1].ts
            self.lag = max(self.lag, behind)
            self._offset = min(self._offset, behind)
        return n

    def _drain(self) -> None:
        """Read what the kernel had accepted when the stop came; what stays unread is our backlog.

        Packets that arrive after the stop are read if the drain meets them, but are
        no loss when it does not: the capture had ended.
        """
        if self.source.offline:
            return
        at_stop = self._final_stats = self.source.stats()
        owed = at_stop.received - at_stop.dropped
        end = time.monotonic() + DRAIN_SECONDS
        empty = 0
        # A block still filling is handed over at the block timeout: wait a few of them.
        while self.read < owed and empty < 5 and time.monotonic() < end:
            empty = 0 if self._batch() else empty + 1
        self._backlog = max(0, owed - self.read)

    def roll(self) -> None:
        """Judge finished records, drop what the report no longer needs, evict past the bounds."""
        self.rollup.step(self.engine, self.capture_summary())

    # -- results ------------------------------------------------------------------------------------
    @property
    def capture_end(self) -> float | None:
        """When the capture ended, on the packets' clock: the stop moment, or the last packet if later.

        The packets' clock is the kernel's wall clock, read later than it
        stamped: the stop moment minus the smallest delay seen between a
        packet's stamp and its reading. Whatever the two clocks' difference,
        that is never later than the true stop on the packets' clock (earlier
        by that smallest delay, with steady traffic well under the kernel's
        100 ms block timeout), so no silence is claimed that the capture did
        not see. None before the first packet.
        """
        if self.last_ts is None:
            return None
        if self.stopped_at is None or self._offset == math.inf:
            return self.last_ts
        return max(self.last_ts, self.stopped_at - self._offset)

    def status(self) -> LiveStatus:
        """The counters now; after `report()`, the report's own (every flow judged, none active)."""
        if self._final is not None:
            return self._final
        stats = self._final_stats or self.source.stats()
        return LiveStatus(time.monotonic() - self.started, self.read, self.kept,
                          self.keeper.shed if self.keeper is not None else 0, stats, self._backlog,
                          self.engine.open_flows, self.rollup.seen.flows, self.rollup.seen.dns, self.lag)

    def capture_summary(self, end: float | None = None) -> CaptureSummary:
        """The capture so far; `end`: its end if later than the last packet (the stop, at the final report)."""
        st = self.status()
        weird: list[tuple[str, int]] = []
        if st.kernel.dropped:
            weird.append(("capture_kernel_dropped", st.kernel.dropped))
        if st.backlog:
            weird.append(("capture_backlog_lost", st.backlog))
        if st.kernel.ifdropped:
            weird.append(("capture_interface_dropped", st.kernel.ifdropped))
        return CaptureSummary(
            source=f"live:{self.source.iface}", format=f"live-{self.source.backend}", packets=self.kept,
            bytes=self.bytes, first_ts=self.first_ts,
            last_ts=end if end is not None and self.last_ts is not None and end > self.last_ts else self.last_ts,
            link_types=(linktype_name(self.source.linktype),), truncated=False, dropped=st.dropped,
            weird=tuple(weird))

    def report(self) -> dict[str, Any]:
        """The final report (call after `run`); closes the source and the --write file."""
        st = self.status()
        end = self.capture_end
        if end is not None and self.last_ts is not None and end > self.last_ts:
            self.engine.advance(end)
        summary = self.capture_summary(end)
        self.engine.weird.update(dict(summary.weird))
        self.rollup.step(self.engine, summary)
        extra: dict[str, Any] = {
            "interface": self.source.iface,
            "backend": self.source.backend,
            "filter": self.spec.describe(self.head_segments),
            "kernel_filter": self.source.filter,
            "stopped_by": self.stopped_by,
            "last_packet_ts": self.last_ts,
            "seconds": round(st.elapsed, 3),
            "read": st.read,
            "shed": st.shed,
            "kernel": {"received": st.kernel.received, "dropped": st.kernel.dropped,
                       "ifdropped": st.kernel.ifdropped},
            "backlog_lost": st.backlog,
            "max_lag_seconds": round(self.lag, 3),
            "max_roll_seconds": round(self.max_roll, 3),
            "written": [str(p) for p in self.writer.paths] if self.writer is not None else [],
        }
        report = self.rollup.final_report(self.engine, summary, extra)
        # The run's counters counted what the roll-ups had judged; the flows and DNS transactions
        # still open at the end are judged only now: the last status says what the report says.
        judged = report["summary"]
        self._final = dataclasses.replace(st, active_flows=self.engine.open_flows, flows_done=judged["flows"],
                                          dns=sum(judged["dns_by_verdict"].values()))
        if self.writer is not None and summary.last_ts is not None:
            live = not self.source.offline  # a file has no kernel counts
            self.writer.close(end=summary.last_ts, accepted=st.kernel.received if live else None,
                              dropped=st.kernel.dropped if live else None)
        self.close()
        return report

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.source.close()
