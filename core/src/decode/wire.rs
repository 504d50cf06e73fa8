//! Reading fixed-size headers off a frame without panics: one checked read of N bytes where
//! the Python reference checks its length, then fields by constant index (smoltcp's
//! `new_checked` + `mod field`, with the bounds check done once by the array conversion).

use std::convert::TryInto;

use super::Weird;

/// The N bytes at `at`, or `err` when the frame ends before them.
///
/// Callers have already done the Python reference's own length test (which names the
/// weird); this read repeats it against the slice itself, so a mistake in that test is a
/// counted weird, never an out-of-bounds panic.
#[inline]
pub fn header<const N: usize>(d: &[u8], at: usize, err: Weird) -> Result<&[u8; N], Weird> {
    match at.checked_add(N).and_then(|end| d.get(at..end)) {
        Some(s) => s.try_into().map_err(|_| err),
        None => Err(err),
    }
}

/// Python's `d[a:b]` for non-negative a and b: clamped to the slice, empty when a >= b.
#[inline]
pub fn py_slice(d: &[u8], a: usize, b: usize) -> &[u8] {
    let b = if b < d.len() { b } else { d.len() };
    if a >= b {
        &[]
    } else {
        &d[a..b]
    }
}

#[inline]
pub fn be16(h: &[u8], at: usize) -> u16 {
    match h.get(at..at + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

#[inline]
pub fn be32(h: &[u8], at: usize) -> u32 {
    match h.get(at..at + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

#[inline]
pub fn le32(h: &[u8], at: usize) -> u32 {
    match h.get(at..at + 4) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// One byte, or 0 past the end (only used where the length was checked just before).
#[inline]
pub fn byte(d: &[u8], at: usize) -> u8 {
    match d.get(at) {
        Some(b) => *b,
        None => 0,
    }
}
