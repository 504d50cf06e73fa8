//! In-order bytes of one TCP direction, from the stream's first byte up to a cap
//! (Python reference: `analyzer/flows/reassembly.py`; see its module docstring for the
//! policy: first copy wins on overlaps, bounded pending list, gaps declared by ACKs,
//! per-direction cap and a table-wide `ReassemblyBudget`).
//!
//! The budget is shared by every reassembler of a table. Python holds a reference to it in
//! each reassembler; here the table owns it and passes `&mut ReassemblyBudget` into every
//! call that may touch it. `has_budget` mirrors Python's `_budget is not None` (it becomes
//! false after `release`): when false the passed budget is left alone.

use crate::record::StreamData;

/// Bytes one (offset, time) entry of `StreamReassembler::segments` costs against the budget
/// (reassembly.py `SEGMENT_COST`).
pub const SEGMENT_COST: u64 = 120;

/// Stream bytes held by all live reassemblers of a table, against one limit
/// (reassembly.py `ReassemblyBudget`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassemblyBudget {
    pub limit: u64,
    pub floor: u64,
    /// `2 * max(limit, floor)`: floors are granted only while the total stays under this.
    pub hard: u64,
    pub used: u64,
    /// What the (offset, time) segment entries of all directions cost (`SEGMENT_COST` each).
    pub segment_bytes: u64,
    /// Directions cut short by the budget (not by their own cap).
    pub refused: u64,
}

impl ReassemblyBudget {
    /// `ReassemblyBudget(limit, floor)`.
    pub fn new(limit: u64, floor: u64) -> ReassemblyBudget {
        ReassemblyBudget {
            limit,
            floor,
            hard: limit.max(floor).saturating_mul(2),
            used: 0,
            segment_bytes: 0,
            refused: 0,
        }
    }
}

/// An out-of-order range waiting for the hole before it to fill (reassembly.py `_Piece`).
#[derive(Debug, Clone)]
struct Piece {
    start: u64,
    end: u64,
    /// Bytes for [start, start + data.len()); None (or shorter) when past the cap.
    data: Option<Vec<u8>>,
    ts: f64,
}

/// One direction's reassembly state; one per TCP endpoint (reassembly.py `StreamReassembler`).
#[derive(Debug, Clone)]
pub struct StreamReassembler {
    cap: u64,
    max_segments: u64,
    max_pending: u64,
    /// Python's `_budget is not None`.
    has_budget: bool,
    buf: Vec<u8>,
    storing: bool,
    /// Sorted by start, non-overlapping.
    pending: Vec<Piece>,
    pending_held: u64,
    pending_cut: bool,
    late_hole: Option<(u64, u64)>,
    /// (stream offset, capture time) of each stored piece.
    pub segments: Vec<(u64, f64)>,
    /// First offset not yet covered in order (Zeek's last_reassem_seq - 1).
    pub next_off: u64,
    pub segments_truncated: bool,
    pub cut_by_cap: bool,
    pub cut_by_budget: bool,
    pub cut_by_gap: bool,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub overlap_conflicts: u64,
    /// Out-of-order pieces not buffered because the pending list was full.
    pub pending_dropped: u64,
}

impl StreamReassembler {
    /// `StreamReassembler(cap, max_segments, max_pending, budget)`; `has_budget` is
    /// `budget is not None` (the table always passes its budget).
    pub fn new(cap: u64, max_segments: u64, max_pending: u64, has_budget: bool) -> StreamReassembler {
        StreamReassembler {
            cap,
            max_segments,
            max_pending,
            has_budget,
            buf: Vec::new(),
            storing: true,
            pending: Vec::new(),
            pending_held: 0,
            pending_cut: false,
            late_hole: None,
            segments: Vec::new(),
            next_off: 0,
            segments_truncated: false,
            cut_by_cap: false,
            cut_by_budget: false,
            cut_by_gap: false,
            gaps: 0,
            gap_bytes: 0,
            overlap_conflicts: 0,
            pending_dropped: 0,
        }
    }

    // -- input ---------------------------------------------------------------------

    /// `data(off, payload, ts)`: a segment carrying `payload` at stream offset `off` arrived at `ts`.
    pub fn data(&mut self, off: u64, payload: &[u8], ts: f64, budget: &mut ReassemblyBudget) {
        let mut off = off;
        let mut payload = payload;
        let end = off + payload.len() as u64;
        if let Some((h0, h1)) = self.late_hole.take() {
            // The next segment fills exactly the hole just declared: the capture saw the
            // peer's ACK first; keep its bytes and go on (the gap stays counted).
            if off <= h0 && end >= h1 && self.next_off == h1 {
                let skip = (h0 - off) as usize;
                if off < h0 {
                    self.compare_stored(off, &payload[..skip]);
                }
                self.storing = true;
                self.cut_by_gap = false;
                self.next_off = h0;
                self.append(h0, end, Some(&payload[skip..]), ts, budget);
                if !self.pending.is_empty() {
                    self.drain(budget);
                }
                return;
            }
        }
        let nxt = self.next_off;
        if end <= nxt {
            if off < self.buf.len() as u64 {
                self.compare_stored(off, payload);
            }
            return;
        }
        if off < nxt {
            let skip = (nxt - off) as usize;
            if off < self.buf.len() as u64 {
                self.compare_stored(off, &payload[..skip]);
            }
            payload = &payload[skip..];
            off = nxt;
        }
        if off == nxt {
            self.append(off, end, Some(payload), ts, budget);
            if !self.pending.is_empty() {
                self.drain(budget);
            }
        } else {
            self.insert_pending(off, end, payload, ts, budget);
        }
    }

    /// `ack(up_to)`: the peer acknowledged every byte below `up_to`. Holes below it become
    /// gaps (the receiver has the data, so the capture lost it); returns the holes declared.
    pub fn ack(&mut self, up_to: u64, budget: &mut ReassemblyBudget) -> u64 {
        if up_to <= self.next_off {
            return 0;
        }
        let mut holes = 0;
        while !self.pending.is_empty() && self.pending[0].start < up_to {
            let piece = self.pop_pending(budget);
            if piece.start > self.next_off {
                holes += 1;
                self.gap_bytes += piece.start - self.next_off;
                self.freeze_on_gap();
                self.next_off = piece.start;
            }
            self.append(piece.start, piece.end, piece.data.as_deref(), piece.ts, budget);
        }
        if up_to > self.next_off {
            holes += 1;
            self.gap_bytes += up_to - self.next_off;
            if self.storing && self.pending.is_empty() && self.buf.len() as u64 == self.next_off {
                self.late_hole = Some((self.next_off, up_to));
            }
            self.freeze_on_gap();
            self.next_off = up_to;
        }
        if !self.pending.is_empty() {
            self.drain(budget);
        }
        self.gaps += holes;
        holes
    }

    /// `release()`: give the bytes held back to the budget (the flow has finished).
    pub fn release(&mut self, budget: &mut ReassemblyBudget) {
        if self.has_budget {
            budget.used = budget.used.wrapping_sub(self.buf.len() as u64 + self.pending_held);
            budget.segment_bytes = budget
                .segment_bytes
                .wrapping_sub(self.segments.len() as u64 * SEGMENT_COST);
            self.pending_held = 0;
            self.has_budget = false;
        }
        self.buf = Vec::new();
        self.storing = false;
    }

    // -- output --------------------------------------------------------------------

    /// `stored`: bytes of contiguous prefix held so far.
    pub fn stored(&self) -> u64 {
        self.buf.len() as u64
    }

    /// `prefix()`: the contiguous prefix held so far.
    pub fn prefix(&self) -> &[u8] {
        &self.buf
    }

    /// `pending_bytes`: bytes of out-of-order ranges waiting.
    pub fn pending_bytes(&self) -> u64 {
        self.pending.iter().map(|p| p.end - p.start).sum()
    }

    /// True when some out-of-order range waits (Python `bool(self._pending)`).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// `result()`: the frozen StreamData (all-default for a direction that sent no payload,
    /// Python's `EMPTY_STREAM`).
    pub fn result(&self) -> StreamData {
        if self.next_off == 0 && self.pending.is_empty() {
            return StreamData::default();
        }
        StreamData {
            data: self.buf.clone(),
            segments: self.segments.clone(),
            stream_bytes: self.next_off,
            cut_by_cap: self.cut_by_cap,
            cut_by_gap: self.cut_by_gap,
            gaps: self.gaps,
            gap_bytes: self.gap_bytes,
            overlap_conflicts: self.overlap_conflicts,
            pending_bytes: self.pending_bytes(),
            segments_truncated: self.segments_truncated,
            cut_by_budget: self.cut_by_budget,
        }
    }

    // -- internals -----------------------------------------------------------------

    /// `_freeze_on_gap`: bytes after a hole are not contiguous with the prefix we hold.
    fn freeze_on_gap(&mut self) {
        if self.storing {
            self.cut_by_gap = true;
            self.storing = false;
        }
    }

    /// `_append`: extend the in-order stream from `start` (<= next_off) to `end`.
    fn append(&mut self, start: u64, end: u64, data: Option<&[u8]>, ts: f64, budget: &mut ReassemblyBudget) {
        let nxt = self.next_off;
        if end <= nxt {
            if let Some(data) = data {
                if start < self.buf.len() as u64 {
                    self.compare_stored(start, data);
                }
            }
            return;
        }
        if self.storing {
            let mut stored: u64 = 0;
            let mut by_budget = false;
            if let Some(data) = data {
                let skip = nxt - start;
                if skip > 0 {
                    self.compare_stored(start, slice(data, 0, skip));
                }
                let have = self.buf.len() as i128;
                // Signed and wide, as Python's ints: the budget's `used` may stand above
                // `limit`, and limits set from Python may be as large as u64 allows.
                let mut room = self.cap as i128 - have;
                if self.has_budget {
                    let used = budget.used as i128;
                    let mut allow = budget.limit as i128 - used;
                    let floor_room = (budget.floor as i128 - have).min(budget.hard as i128 - used);
                    allow = allow.max(floor_room);
                    if allow < room {
                        room = allow.max(0);
                        by_budget = true;
                    }
                }
                // data[skip : skip + room], Python's clamping slice (room >= 0 here).
                let room = if room > u64::MAX as i128 { u64::MAX } else { room.max(0) as u64 };
                let piece = slice(data, skip, skip.saturating_add(room));
                if !piece.is_empty() {
                    self.buf.extend_from_slice(piece);
                    stored = piece.len() as u64;
                    if self.has_budget {
                        budget.used += stored;
                    }
                    if self.has_budget && budget.used.saturating_add(budget.segment_bytes) >= budget.hard {
                        // Tiny segments must not outgrow the bytes they time.
                        self.segments_truncated = true;
                    } else if self.segments.is_empty() {
                        // Python makes the list on first use, whatever max_segments says.
                        self.segments.push((nxt, ts));
                        if self.has_budget {
                            budget.segment_bytes += SEGMENT_COST;
                        }
                    } else if (self.segments.len() as u64) < self.max_segments {
                        self.segments.push((nxt, ts));
                        if self.has_budget {
                            budget.segment_bytes += SEGMENT_COST;
                        }
                    } else {
                        self.segments_truncated = true;
                    }
                }
            } else if self.pending_cut {
                by_budget = true; // a pending piece whose bytes the budget refused
            }
            if nxt + stored < end {
                // Only a limit stops a contiguous piece from being kept whole.
                self.storing = false;
                if by_budget {
                    self.cut_by_budget = true;
                    if self.has_budget {
                        budget.refused += 1;
                    }
                } else {
                    self.cut_by_cap = true;
                }
            }
        }
        self.next_off = end;
    }

    /// `_drain`: pending pieces that now touch the in-order stream join it.
    fn drain(&mut self, budget: &mut ReassemblyBudget) {
        while !self.pending.is_empty() && self.pending[0].start <= self.next_off {
            let piece = self.pop_pending(budget);
            self.append(piece.start, piece.end, piece.data.as_deref(), piece.ts, budget);
        }
    }

    /// `_compare_stored`: count a conflict if `payload` at `off` differs from bytes already held.
    fn compare_stored(&mut self, off: u64, payload: &[u8]) {
        let have = self.buf.len() as u64;
        let stop = have.min(off + payload.len() as u64);
        if stop > off && self.buf[off as usize..stop as usize] != payload[..(stop - off) as usize] {
            self.overlap_conflicts += 1;
        }
    }

    /// Index of the first pending piece whose start is > `x` (`bisect_right(pending, x, key=_start)`).
    fn bisect_right(&self, x: u64) -> usize {
        self.pending.partition_point(|p| p.start <= x)
    }

    /// `_insert_pending`: keep the parts of an out-of-order segment no pending piece covers.
    fn insert_pending(&mut self, off: u64, end: u64, payload: &[u8], ts: f64, budget: &mut ReassemblyBudget) {
        let cap = self.cap;
        // Keep bytes only below the cap and only while the prefix can still use them.
        let keep = self.storing && off < cap;
        // Most segments fill one hole: no allocation for the common case.
        let mut holes: Vec<(u64, u64)> = Vec::new();
        let mut cur = off;
        let mut i = self.bisect_right(off).saturating_sub(1);
        let mut conflict = false;
        while cur < end && i < self.pending.len() {
            let old = &self.pending[i];
            if old.end <= cur {
                i += 1;
                continue;
            }
            if old.start >= end {
                break;
            }
            if old.start > cur {
                holes.push((cur, old.start));
            }
            let lo = old.start.max(cur);
            let hi = old.end.min(end);
            if !conflict {
                if let Some(od) = &old.data {
                    let a = slice(od, lo - old.start, hi - old.start);
                    let b0 = lo - off;
                    if a != slice(payload, b0, b0 + a.len() as u64) {
                        conflict = true;
                    }
                }
            }
            cur = hi;
            i += 1;
        }
        if cur < end {
            holes.push((cur, end));
        }
        if conflict {
            self.overlap_conflicts += 1;
        }
        for (ps, pe) in holes {
            let idx = self.bisect_right(ps);
            let mut data: Option<Vec<u8>> = if keep && ps < cap {
                Some(slice(payload, ps - off, pe.min(cap) - off).to_vec())
            } else {
                None
            };
            if data.is_none() && idx > 0 {
                let prev = &mut self.pending[idx - 1];
                if prev.data.is_none() && prev.end == ps {
                    prev.end = pe; // coalesce data-less ranges: memory stays bounded
                    continue;
                }
            }
            if self.pending.len() as u64 >= self.max_pending {
                self.pending_dropped += 1;
                return;
            }
            if self.has_budget {
                if let Some(d) = &data {
                    let n = d.len() as u64;
                    if budget.used.saturating_add(n) > budget.hard {
                        data = None; // kept as a range: the prefix will stop here, cut by the budget
                        self.pending_cut = true;
                    } else {
                        budget.used += n;
                        self.pending_held += n;
                    }
                }
            }
            self.pending.insert(idx, Piece { start: ps, end: pe, data, ts });
        }
    }

    /// `_pop_pending`: the first pending piece, its bytes given back to the budget
    /// (`append` counts what it keeps).
    fn pop_pending(&mut self, budget: &mut ReassemblyBudget) -> Piece {
        let piece = self.pending.remove(0);
        if self.has_budget {
            if let Some(d) = &piece.data {
                budget.used = budget.used.wrapping_sub(d.len() as u64);
                self.pending_held = self.pending_held.wrapping_sub(d.len() as u64);
            }
        }
        piece
    }
}

/// `data[lo:hi]` with Python's clamping (both bounds non-negative).
fn slice(data: &[u8], lo: u64, hi: u64) -> &[u8] {
    let n = data.len() as u64;
    let hi = hi.min(n);
    let lo = lo.min(hi);
    &data[lo as usize..hi as usize]
}

#[cfg(test)]
mod tests {
    //! Expected values are what `analyzer/flows/reassembly.py` gives for the same calls.
    use super::*;

    fn none() -> ReassemblyBudget {
        ReassemblyBudget::new(0, 0)
    }

    fn plain(cap: u64) -> StreamReassembler {
        StreamReassembler::new(cap, 4096, 256, false)
    }

    #[test]
    fn in_order_pieces_are_kept_with_their_times() {
        let mut b = none();
        let mut r = plain(100);
        r.data(0, b"abc", 1.0, &mut b);
        r.data(3, b"def", 2.0, &mut b);
        let d = r.result();
        assert_eq!(d.data, b"abcdef".to_vec());
        assert_eq!(d.segments, vec![(0, 1.0), (3, 2.0)]);
        assert_eq!(d.stream_bytes, 6);
        assert_eq!(b, none()); // no budget: left alone
    }

    #[test]
    fn first_copy_wins_and_a_differing_overlap_is_counted() {
        let mut b = none();
        let mut r = plain(100);
        r.data(0, b"abc", 1.0, &mut b);
        r.data(1, b"xcdE", 2.0, &mut b);
        let d = r.result();
        assert_eq!(d.data, b"abcdE".to_vec());
        assert_eq!(d.overlap_conflicts, 1);
        assert_eq!(d.segments, vec![(0, 1.0), (3, 2.0)]);
    }

    #[test]
    fn out_of_order_waits_then_drains() {
        let mut b = none();
        let mut r = plain(100);
        r.data(3, b"def", 1.0, &mut b);
        r.data(8, b"gh", 1.5, &mut b);
        assert_eq!(r.pending_bytes(), 5);
        assert_eq!(r.result().stream_bytes, 0);
        assert_eq!(r.result().data, Vec::<u8>::new());
        r.data(0, b"abc", 2.0, &mut b);
        let d = r.result();
        assert_eq!(d.data, b"abcdef".to_vec());
        assert_eq!(d.segments, vec![(0, 2.0), (3, 1.0)]);
        assert_eq!((d.stream_bytes, d.pending_bytes), (6, 2));
    }

    #[test]
    fn differing_pending_overlap_is_counted() {
        let mut b = none();
        let mut r = plain(100);
        r.data(3, b"def", 1.0, &mut b);
        r.data(2, b"XdEf", 1.5, &mut b);
        assert_eq!(r.overlap_conflicts, 1);
        assert_eq!(r.pending_bytes(), 4);
    }

    #[test]
    fn ack_past_a_hole_declares_a_gap() {
        let mut b = none();
        let mut r = plain(100);
        r.data(0, b"ab", 1.0, &mut b);
        assert_eq!(r.ack(5, &mut b), 1);
        r.data(5, b"fg", 2.0, &mut b);
        let d = r.result();
        assert_eq!(d.data, b"ab".to_vec());
        assert_eq!((d.stream_bytes, d.cut_by_gap, d.gaps, d.gap_bytes), (7, true, 1, 3));
    }

    #[test]
    fn next_segment_filling_the_late_hole_keeps_the_prefix() {
        let mut b = none();
        let mut r = plain(100);
        r.data(0, b"ab", 1.0, &mut b);
        assert_eq!(r.ack(5, &mut b), 1);
        r.data(2, b"cdefg", 2.0, &mut b);
        let d = r.result();
        assert_eq!(d.data, b"abcdefg".to_vec());
        assert_eq!((d.stream_bytes, d.cut_by_gap, d.gaps, d.gap_bytes), (7, false, 1, 3));
        assert_eq!(d.segments, vec![(0, 1.0), (2, 2.0)]);
    }

    #[test]
    fn ack_over_pending_pieces_counts_each_hole() {
        let mut b = none();
        let mut r = plain(100);
        r.data(0, b"ab", 1.0, &mut b);
        r.data(4, b"ef", 1.0, &mut b);
        assert_eq!(r.ack(7, &mut b), 2);
        let d = r.result();
        assert_eq!(d.data, b"ab".to_vec());
        assert_eq!((d.stream_bytes, d.gaps, d.gap_bytes, d.pending_bytes), (7, 2, 3, 0));
    }

    #[test]
    fn cap_stops_storing_but_not_counting() {
        let mut b = none();
        let mut r = plain(4);
        r.data(0, b"abcdef", 1.0, &mut b);
        r.data(6, b"gh", 2.0, &mut b);
        let d = r.result();
        assert_eq!(d.data, b"abcd".to_vec());
        assert_eq!((d.stream_bytes, d.cut_by_cap), (8, true));
    }

    #[test]
    fn segment_list_is_bounded() {
        let mut b = none();
        let mut r = StreamReassembler::new(100, 1, 256, false);
        r.data(0, b"ab", 1.0, &mut b);
        r.data(2, b"cd", 2.0, &mut b);
        let d = r.result();
        assert_eq!(d.segments, vec![(0, 1.0)]);
        assert!(d.segments_truncated);
        // Python makes the list on first use even when the limit is 0.
        let mut r = StreamReassembler::new(100, 0, 256, false);
        r.data(0, b"ab", 1.0, &mut b);
        assert_eq!(r.result().segments, vec![(0, 1.0)]);
    }

    #[test]
    fn full_pending_list_drops() {
        let mut b = none();
        let mut r = StreamReassembler::new(100, 4096, 1, false);
        r.data(3, b"d", 1.0, &mut b);
        r.data(6, b"g", 1.0, &mut b);
        assert_eq!(r.pending_dropped, 1);
        assert_eq!(r.pending_bytes(), 1);
    }

    #[test]
    fn budget_is_shared_floor_and_refusals() {
        let mut b = ReassemblyBudget::new(4, 2);
        assert_eq!(b.hard, 8);
        let mut r1 = StreamReassembler::new(100, 4096, 256, true);
        let mut r2 = StreamReassembler::new(100, 4096, 256, true);
        r1.data(0, b"abcdef", 1.0, &mut b);
        assert_eq!(r1.result().data, b"abcd".to_vec());
        assert!(r1.cut_by_budget);
        assert_eq!((b.used, b.segment_bytes, b.refused), (4, 120, 1));
        // The second direction still gets its floor; its segment entry would pass `hard`.
        r2.data(0, b"xyz", 1.0, &mut b);
        let d = r2.result();
        assert_eq!(d.data, b"xy".to_vec());
        assert!(d.segments.is_empty() && d.segments_truncated && d.cut_by_budget);
        assert_eq!((b.used, b.segment_bytes, b.refused), (6, 120, 2));
        r1.release(&mut b);
        assert_eq!((b.used, b.segment_bytes, b.refused), (2, 0, 2));
        assert_eq!(r1.stored(), 0);
    }

    #[test]
    fn pending_bytes_past_the_hard_bound_become_a_range() {
        let mut b = ReassemblyBudget::new(4, 2);
        let mut r = StreamReassembler::new(100, 4096, 256, true);
        r.data(5, b"0123456789", 1.0, &mut b);
        assert_eq!((r.pending_bytes(), b.used), (10, 0));
        r.data(0, b"abcde", 2.0, &mut b);
        let d = r.result();
        assert_eq!(d.data, b"abcd".to_vec());
        assert_eq!((d.stream_bytes, d.cut_by_budget), (15, true));
        assert_eq!((b.used, b.segment_bytes, b.refused), (4, 120, 1));
    }

    #[test]
    fn no_payload_is_the_empty_stream() {
        let r = plain(100);
        assert_eq!(r.result(), StreamData::default());
    }
}
