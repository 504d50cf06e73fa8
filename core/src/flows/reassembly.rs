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
            hard: 2 * limit.max(floor),
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
        todo!()
    }

    /// `data(off, payload, ts)`: a segment carrying `payload` at stream offset `off` arrived at `ts`.
    pub fn data(&mut self, off: u64, payload: &[u8], ts: f64, budget: &mut ReassemblyBudget) {
        todo!()
    }

    /// `ack(up_to)`: the peer acknowledged every byte below `up_to`; returns the holes declared.
    pub fn ack(&mut self, up_to: u64, budget: &mut ReassemblyBudget) -> u64 {
        todo!()
    }

    /// `release()`: give the bytes held back to the budget (the flow has finished).
    pub fn release(&mut self, budget: &mut ReassemblyBudget) {
        todo!()
    }

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
        todo!()
    }

    /// True when some out-of-order range waits (Python `bool(self._pending)`).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// `result()`: the frozen StreamData (all-default for a direction that sent no payload,
    /// Python's `EMPTY_STREAM`).
    pub fn result(&self) -> StreamData {
        todo!()
    }
}
