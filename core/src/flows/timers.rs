//! The flow table's timers (table.py `_heap`): a min-heap of (deadline, flow serial).
//!
//! A flow's one valid entry is the one whose deadline equals its `pushed`; older entries of
//! it, and those of finished flows, are stale: the table skips them when popped and sweeps
//! them out when they outnumber the live flows. Entries order by (deadline, serial) only, as
//! Python's tuples do; equal pairs are interchangeable, so the pop sequence is Python's.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One heap entry. `slot` says where the flow lives in the table; it is not part of the order.
#[derive(Debug, Clone, Copy)]
pub struct Timer {
    pub deadline: f64,
    pub serial: u64,
    pub slot: u32,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    /// Reversed (std's heap is a max-heap): the earliest deadline, then the lowest serial, on
    /// top. `total_cmp` is Python's float order for every deadline the table makes (no NaN
    /// reaches it, and no -0.0: deadlines are a time plus a positive delay), and stays a total
    /// order whatever comes, so a hostile timestamp cannot upset the heap.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .deadline
            .total_cmp(&self.deadline)
            .then_with(|| other.serial.cmp(&self.serial))
    }
}

/// The heap; stale entries included (the table decides which are valid).
#[derive(Debug, Default)]
pub struct TimerHeap {
    heap: BinaryHeap<Timer>,
}

impl TimerHeap {
    pub fn new() -> Self {
        TimerHeap {
            heap: BinaryHeap::new(),
        }
    }
    pub fn len(&self) -> usize {
        self.heap.len()
    }
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
    pub fn push(&mut self, t: Timer) {
        self.heap.push(t)
    }
    /// The earliest entry (`heap[0]`).
    pub fn peek(&self) -> Option<Timer> {
        self.heap.peek().copied()
    }
    pub fn pop(&mut self) -> Option<Timer> {
        self.heap.pop()
    }
    /// `heapq.heapreplace`: the top entry becomes `t`.
    pub fn replace_top(&mut self, t: Timer) {
        if let Some(mut top) = self.heap.peek_mut() {
            *top = t;
        }
    }
    pub fn clear(&mut self) {
        self.heap.clear()
    }
    /// Keep only the entries `keep` accepts, re-heapified (`_compact_timers`).
    pub fn retain<F: FnMut(&Timer) -> bool>(&mut self, keep: F) {
        let mut v = std::mem::take(&mut self.heap).into_vec();
        v.retain(keep);
        self.heap = BinaryHeap::from(v);
    }
    /// The earliest deadline, or +inf when empty (table.py `_next_timer` after a sweep).
    pub fn earliest(&self) -> f64 {
        match self.heap.peek() {
            Some(t) => t.deadline,
            None => f64::INFINITY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_order_by_deadline_then_serial() {
        let mut h = TimerHeap::new();
        for (d, s) in [(5.0, 2), (1.0, 9), (5.0, 1), (3.0, 4)] {
            h.push(Timer {
                deadline: d,
                serial: s,
                slot: 0,
            });
        }
        let got: Vec<(f64, u64)> = std::iter::from_fn(|| h.pop())
            .map(|t| (t.deadline, t.serial))
            .collect();
        assert_eq!(got, vec![(1.0, 9), (3.0, 4), (5.0, 1), (5.0, 2)]);
        assert_eq!(h.earliest(), f64::INFINITY);
    }

    #[test]
    fn replace_and_retain() {
        let mut h = TimerHeap::new();
        h.push(Timer {
            deadline: 1.0,
            serial: 1,
            slot: 0,
        });
        h.push(Timer {
            deadline: 2.0,
            serial: 2,
            slot: 1,
        });
        h.replace_top(Timer {
            deadline: 3.0,
            serial: 1,
            slot: 0,
        });
        assert_eq!(h.peek().map(|t| t.serial), Some(2));
        h.retain(|t| t.serial == 1);
        assert_eq!(h.len(), 1);
        assert_eq!(h.earliest(), 3.0);
    }
}
