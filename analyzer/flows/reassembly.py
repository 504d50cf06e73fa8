"""In-order bytes of one TCP direction, from the stream's first byte up to a cap.

Offsets are stream offsets: 0 is the first payload byte after the SYN (or,
midstream, the first sequence number seen, as Zeek numbers a partial
connection). The caller converts sequence numbers, wraparound included.

Policy, chosen to match Zeek's reassembler so that the gaps we count are the
gaps Zeek counts:

- Overlaps: the first bytes to arrive win (Zeek's DataBlockList keeps the
  stored block; so do Linux and the BSDs for in-window retransmissions). A
  later copy whose bytes differ is counted in `overlap_conflicts` (Zeek's
  `rexmit_inconsistency`), never applied.
- Reordering: segments beyond a hole wait in a bounded pending list until the
  hole fills.
- Gaps: a hole is declared only when the peer acknowledges past it (Zeek's
  `Undelivered`), because an unacknowledged hole may still be filled by a
  retransmission. From the first gap on, the stored prefix is frozen: what
  follows is not contiguous with it (`cut_by_gap`). One exception for the
  content, not the counters: when the very next segment of this direction
  fills exactly the hole just declared at the end of the prefix, the capture
  merely saw the peer's ACK first (two capture queues, a TAP's two legs), so
  its bytes are kept and the prefix goes on. The gap stays counted, as Zeek
  counts it (history 'G', missed bytes); the ClientHello is not lost.
- Cap: bytes past `cap` are not stored (`cut_by_cap`), but offsets, pending
  ranges and gaps keep being tracked, so counters stay right for the whole
  connection while memory stays bounded. A `ReassemblyBudget` shared by a
  table bounds the bytes of all directions together (`cut_by_budget`): the
  in-order prefixes and the out-of-order bytes waiting in pending lists alike,
  and never past `ReassemblyBudget.hard` (each direction's floor included), so
  a table full of flows that each send their floor stays bounded too.
"""

from __future__ import annotations

from bisect import bisect_right

from analyzer.dataclass_tools import fast_constructor
from analyzer.flows.records import StreamData

__all__ = ["EMPTY_STREAM", "ReassemblyBudget", "StreamData", "StreamReassembler"]


EMPTY_STREAM = StreamData(b"", (), 0, False, False, 0, 0, 0, 0, False, False)
"""The result for a direction that sent no payload (shared: records are immutable)."""


_make_stream = fast_constructor(StreamData)


class _Piece:
    """An out-of-order range waiting for the hole before it to fill."""

    __slots__ = ("data", "end", "start", "ts")

    def __init__(self, start: int, end: int, data: bytes | None, ts: float) -> None:
        self.start = start
        self.end = end
        self.data = data
        """Bytes for [start, start + len(data)); None or shorter when past the cap."""
        self.ts = ts


SEGMENT_COST = 120
"""Bytes one (offset, time) entry of `StreamReassembler.segments` takes (tuple, int, float, list slot)."""


def _start(piece: _Piece) -> int:
    return piece.start


class ReassemblyBudget:
    """Stream bytes held by all live reassemblers of a table, against one limit.

    The per-direction cap bounds one flow; this bounds them all (thousands of
    concurrent keep-alive connections would otherwise each fill their cap).
    Every direction may always hold its first `floor` bytes, enough for a
    ClientHello or a server's hello and certificates, so a busy table still
    sees each handshake; beyond the floor, bytes are kept only while the
    total is under `limit`.
    """

    __slots__ = ("floor", "hard", "limit", "refused", "segment_bytes", "used")

    def __init__(self, limit: int, floor: int) -> None:
        self.limit = limit
        self.floor = floor
        self.hard = 2 * max(limit, floor)
        """Floors are granted only while the total stays under this: the table's true bound."""
        self.used = 0
        self.segment_bytes = 0
        """What the (offset, time) segment entries of all directions cost (`SEGMENT_COST` each):
        entries stop being recorded (`segments_truncated`) once bytes and entries pass `hard`."""
        self.refused = 0
        """Directions cut short by the budget (not by their own cap)."""


class StreamReassembler:
    """One direction's reassembly state; one per TCP endpoint."""

    __slots__ = (
        "_budget",
        "_buf",
        "_cap",
        "_late_hole",
        "_max_pending",
        "_max_segments",
        "_pending",
        "_pending_cut",
        "_pending_held",
        "_storing",
        "cut_by_budget",
        "cut_by_cap",
        "cut_by_gap",
        "gap_bytes",
        "gaps",
        "next_off",
        "overlap_conflicts",
        "pending_dropped",
        "segments",
        "segments_truncated",
    )

    def __init__(
        self,
        cap: int,
        max_segments: int = 4096,
        max_pending: int = 256,
        budget: ReassemblyBudget | None = None,
    ) -> None:
        self._cap = cap
        self._max_segments = max_segments
        self._max_pending = max_pending
        self._budget = budget
        self._buf = bytearray()
        self._storing = True
        # Lists are made on first use: most directions never need them, and fewer
        # containers per flow means less work for the garbage collector.
        self._pending: list[_Piece] | None = None  # sorted by start, non-overlapping
        self._pending_held = 0  # bytes of pending pieces' data, counted in the budget
        self._pending_cut = False  # a pending piece's bytes were refused by the budget
        self.segments: list[tuple[int, float]] | None = None
        self.next_off = 0
        """First offset not yet covered in order (Zeek's last_reassem_seq - 1)."""
        self.segments_truncated = False
        self.cut_by_cap = False
        self.cut_by_budget = False
        self.cut_by_gap = False
        self.gaps = 0
        self.gap_bytes = 0
        self.overlap_conflicts = 0
        self.pending_dropped = 0
        """Out-of-order pieces not buffered because the pending list was full."""
        self._late_hole: tuple[int, int] | None = None  # a gap the next segment may still fill (see above)

    # -- input -----------------------------------------------------------------

    def data(self, off: int, payload: bytes, ts: float) -> None:
        """A segment carrying `payload` at stream offset `off` (>= 0) arrived at `ts`."""
        end = off + len(payload)
        if self._late_hole is not None:
            hole, self._late_hole = self._late_hole, None
            if off <= hole[0] and end >= hole[1] and self.next_off == hole[1]:
                if off < hole[0]:
                    self._compare_stored(off, payload[: hole[0] - off])
                self._storing = True
                self.cut_by_gap = False
                self.next_off = hole[0]
                self._append(hole[0], end, payload[hole[0] - off:], ts)
                if self._pending:
                    self._drain()
                return
        nxt = self.next_off
        if end <= nxt:
            if off < len(self._buf):
                self._compare_stored(off, payload)
            return
        if off < nxt:
            if off < len(self._buf):
                self._compare_stored(off, payload[: nxt - off])
            payload = payload[nxt - off :]
            off = nxt
        if off == nxt:
            self._append(off, end, payload, ts)
            if self._pending:
                self._drain()
        else:
            self._insert_pending(off, end, payload, ts)

    def ack(self, up_to: int) -> int:
        """The peer acknowledged every byte below offset `up_to`.

        Holes below `up_to` become gaps: the data there will not come (the
        receiver has it, so the capture lost it). Returns the number of holes
        declared; their size is added to `gap_bytes`.
        """
        if up_to <= self.next_off:
            return 0
        holes = 0
        pending = self._pending
        while pending and pending[0].start < up_to:
            piece = self._pop_pending(pending)
            if piece.start > self.next_off:
                holes += 1
                self.gap_bytes += piece.start - self.next_off
                self._freeze_on_gap()
                self.next_off = piece.start
            self._append(piece.start, piece.end, piece.data, piece.ts)
        if up_to > self.next_off:
            holes += 1
            self.gap_bytes += up_to - self.next_off
            if self._storing and not pending and len(self._buf) == self.next_off:
                self._late_hole = (self.next_off, up_to)
            self._freeze_on_gap()
            self.next_off = up_to
        if pending:
            self._drain()
        self.gaps += holes
        return holes

    def release(self) -> None:
        """Give the bytes held back to the budget (the flow has finished)."""
        budget = self._budget
        if budget is not None:
            budget.used -= len(self._buf) + self._pending_held
            budget.segment_bytes -= len(self.segments) * SEGMENT_COST if self.segments else 0
            self._pending_held = 0
            self._budget = None
        self._buf = bytearray()
        self._storing = False

    # -- output ----------------------------------------------------------------

    @property
    def stored(self) -> int:
        """Bytes of contiguous prefix held so far."""
        return len(self._buf)

    def prefix(self) -> bytes:
        """The contiguous prefix held so far (a copy)."""
        return bytes(self._buf)

    @property
    def pending_bytes(self) -> int:
        return sum(p.end - p.start for p in self._pending) if self._pending else 0

    def result(self) -> StreamData:
        if not self.next_off and not self._pending:
            return EMPTY_STREAM
        return _make_stream(
            bytes(self._buf),
            tuple(self.segments) if self.segments else (),
            self.next_off,
            self.cut_by_cap,
            self.cut_by_gap,
            self.gaps,
            self.gap_bytes,
            self.overlap_conflicts,
            self.pending_bytes,
            self.segments_truncated,
            self.cut_by_budget,
        )

    # -- internals -------------------------------------------------------------

    def _freeze_on_gap(self) -> None:
        if self._storing:
            # Bytes after a hole are not contiguous with the prefix we hold.
            self.cut_by_gap = True
            self._storing = False

    def _append(self, start: int, end: int, data: bytes | None, ts: float) -> None:
        """Extend the in-order stream from `start` (<= next_off) to `end`."""
        nxt = self.next_off
        if end <= nxt:
            if data is not None and start < len(self._buf):
                self._compare_stored(start, data)
            return
        if self._storing:
            stored = 0
            by_budget = False
            if data is not None:
                skip = nxt - start
                if skip > 0:
                    self._compare_stored(start, data[:skip])
                buf = self._buf
                have = len(buf)
                room = self._cap - have
                budget = self._budget
                if budget is not None:
                    allow = budget.limit - budget.used
                    floor_room = min(budget.floor - have, budget.hard - budget.used)
                    allow = max(allow, floor_room)
                    if allow < room:
                        room = max(0, allow)
                        by_budget = True
                piece = data[skip : skip + room]
                if piece:
                    buf += piece
                    stored = len(piece)
                    if budget is not None:
                        budget.used += stored
                    segments = self.segments
                    if budget is not None and budget.used + budget.segment_bytes >= budget.hard:
                        self.segments_truncated = True  # tiny segments must not outgrow the bytes they time
                    elif segments is None:
                        self.segments = [(nxt, ts)]
                        if budget is not None:
                            budget.segment_bytes += SEGMENT_COST
                    elif len(segments) < self._max_segments:
                        segments.append((nxt, ts))
                        if budget is not None:
                            budget.segment_bytes += SEGMENT_COST
                    else:
                        self.segments_truncated = True
            elif self._pending_cut:
                by_budget = True  # a pending piece whose bytes the budget refused
            if nxt + stored < end:
                # Only a limit stops a contiguous piece from being kept whole.
                self._storing = False
                if by_budget:
                    self.cut_by_budget = True
                    assert self._budget is not None
                    self._budget.refused += 1
                else:
                    self.cut_by_cap = True
        self.next_off = end

    def _drain(self) -> None:
        pending = self._pending
        while pending and pending[0].start <= self.next_off:
            piece = self._pop_pending(pending)
            self._append(piece.start, piece.end, piece.data, piece.ts)

    def _compare_stored(self, off: int, payload: bytes) -> None:
        """Count a conflict if `payload` at `off` differs from bytes already held."""
        buf = self._buf
        stop = min(len(buf), off + len(payload))
        if stop > off and buf[off:stop] != payload[: stop - off]:
            self.overlap_conflicts += 1

    def _insert_pending(self, off: int, end: int, payload: bytes, ts: float) -> None:
        pending = self._pending
        if pending is None:
            pending = self._pending = []
        cap = self._cap
        # Keep bytes only below the cap and only while the prefix can still use them.
        keep = self._storing and off < cap
        holes: list[tuple[int, int]] = []
        cur = off
        i = max(bisect_right(pending, off, key=_start) - 1, 0)
        conflict = False
        while cur < end and i < len(pending):
            old = pending[i]
            if old.end <= cur:
                i += 1
                continue
            if old.start >= end:
                break
            if old.start > cur:
                holes.append((cur, old.start))
            lo, hi = max(old.start, cur), min(old.end, end)
            if old.data is not None and not conflict:
                a = old.data[lo - old.start : hi - old.start]
                if a != payload[lo - off : lo - off + len(a)]:
                    conflict = True
            cur = hi
            i += 1
        if cur < end:
            holes.append((cur, end))
        if conflict:
            self.overlap_conflicts += 1
        for ps, pe in holes:
            idx = bisect_right(pending, ps, key=_start)
            data = payload[ps - off : min(pe, cap) - off] if keep and ps < cap else None
            if data is None and idx > 0:
                prev = pending[idx - 1]
                if prev.data is None and prev.end == ps:
                    prev.end = pe  # coalesce data-less ranges: memory stays bounded
                    continue
            if len(pending) >= self._max_pending:
                self.pending_dropped += 1
                return
            budget = self._budget
            if data is not None and budget is not None:
                if budget.used + len(data) > budget.hard:
                    data = None  # kept as a range: the prefix will stop here, cut by the budget
                    self._pending_cut = True
                else:
                    budget.used += len(data)
                    self._pending_held += len(data)
            pending.insert(idx, _Piece(ps, pe, data, ts))

    def _pop_pending(self, pending: list[_Piece]) -> _Piece:
        """The first pending piece, its bytes given back to the budget (`_append` counts what it keeps)."""
        piece = pending.pop(0)
        if piece.data is not None and self._budget is not None:
            self._budget.used -= len(piece.data)
            self._pending_held -= len(piece.data)
        return piece
