//! Integers in a capture's byte order (pcap: the magic's; pcapng: each section's).

/// A byte range inside a header, as smoltcp's `wire` modules name them.
pub type Field = core::ops::Range<usize>;

/// The byte order of a pcap file or of a pcapng section (`"<"` / `">"` in the Python `struct`
/// formats of reader.py and pcapng.py).
///
/// The readers take the slice of a `Field` (`&b[field::SNAPLEN]`): the views checked the
/// buffer's length once in their constructor, so the field is there and has its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    pub fn u16(self, s: &[u8]) -> u16 {
        let b = [s[0], s[1]];
        match self {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        }
    }

    pub fn u32(self, s: &[u8]) -> u32 {
        let b = [s[0], s[1], s[2], s[3]];
        match self {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        }
    }

    pub fn i64(self, s: &[u8]) -> i64 {
        let b = [s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]];
        match self {
            ByteOrder::Little => i64::from_le_bytes(b),
            ByteOrder::Big => i64::from_be_bytes(b),
        }
    }
}
