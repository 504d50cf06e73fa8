//! The record walk: classic pcap and pcapng from bytes fed in chunks
//! (Python reference: `analyzer/capture/reader.py`, `analyzer/capture/pcapng.py`).
//!
//! Python reads the file (or the gunzipped stream) and hands its bytes to a [`Walker`] in
//! chunks of any size; the walker hands out a [`RawPacket`] per record, borrowing the chunk
//! (or, for a record that spans chunks, the few bytes it kept of the previous one). The
//! first bytes decide the format; bytes that are no capture give the [`CaptureError`]
//! Python's `open_capture` raises. Damage inside the file never errors: it is counted as a
//! weird, and a record the input ends inside sets `truncated`, as in the Python reader.
//!
//! ```
//! use apple_net_core::capture::Walker;
//! let mut walker = Walker::new();
//! let mut packets = 0;
//! let file: &[u8] = &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0,
//!                     0, 0, 4, 0, 1, 0, 0, 0];
//! for chunk in file.chunks(5) {
//!     walker.feed(chunk, &mut |_raw| packets += 1).unwrap();
//! }
//! walker.finish().unwrap();
//! assert_eq!(walker.summary().format, "pcap");
//! ```

mod endian;
pub mod pcap;
pub mod pcapng;
mod tally;

pub use self::tally::{InterfaceName, Tally, Weird};

use crate::packet::RawPacket;
use crate::weird::Weirds;

/// Larger pcap records or pcapng blocks are taken for corruption, not data
/// (reader.py `MAX_RECORD`).
pub const MAX_RECORD: usize = 64 << 20;

/// Wireshark's short name of a LINKTYPE_ value, or `linktype_<n>` (reader.py `linktype_name`).
pub fn linktype_name(linktype: u32) -> String {
    let known = match linktype {
        0 => "null",
        1 => "ether",
        9 => "ppp",
        12 | 14 | 101 => "rawip",
        108 => "loop",
        113 => "linux-sll",
        228 => "rawip4",
        229 => "rawip6",
        258 => "pktap",
        276 => "linux-sll2",
        _ => return format!("linktype_{}", linktype),
    };
    known.to_string()
}

/// Why the input is no capture: what reader.py `_sniff` and pcapng.py `check_first_block`
/// raise `CaptureError` for. [`CaptureError::message`] writes Python's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureError {
    /// No byte at all.
    Empty,
    /// The first bytes (up to 4) are no pcap or pcapng magic.
    NotACapture { head: Vec<u8> },
    /// A pcap magic but fewer than 24 bytes in all.
    PcapHeaderCutShort { got: usize },
    /// A pcapng magic but fewer than 16 bytes in all.
    PcapngHeaderCutShort { got: usize },
    PcapngBadByteOrderMagic { magic: [u8; 4] },
    PcapngBadLength { length: u32 },
    PcapngUnsupportedVersion { major: u16 },
}

impl CaptureError {
    /// The message of Python's `CaptureError`. `name` is the reader's name (the path,
    /// `<stdin>`...), `compressed` whether the bytes came out of gzip, `head_note` what
    /// reader.py appends when the gzip stream failed within the head (`_head_note`:
    /// `" (gzip stream cut short or corrupt)"` or empty).
    pub fn message(&self, name: &str, compressed: bool, head_note: &str) -> String {
        match self {
            CaptureError::Empty => format!("{}: empty file, not a capture", name),
            CaptureError::NotACapture { head } => format!(
                "{}: not a pcap or pcapng capture ({} starts with {})",
                name,
                if compressed { "gzip data" } else { "file" },
                hex(head)
            ),
            CaptureError::PcapHeaderCutShort { got } => {
                format!("{}: pcap file header cut short ({} of 24 bytes){}", name, got, head_note)
            }
            CaptureError::PcapngHeaderCutShort { got } => {
                format!("{}: pcapng section header cut short ({} bytes)", name, got)
            }
            CaptureError::PcapngBadByteOrderMagic { magic } => {
                format!("{}: pcapng section header has a bad byte-order magic ({})", name, hex(magic))
            }
            CaptureError::PcapngBadLength { length } => {
                format!("{}: pcapng section header has a bad length ({})", name, length)
            }
            CaptureError::PcapngUnsupportedVersion { major } => {
                format!("{}: pcapng version {} is not supported", name, major)
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push_str(&format!("{:02x}", b));
    }
    out
}

/// What one record or block at the start of a buffer comes to. The format walks return it;
/// the [`Walker`] moves through the input by it.
#[derive(Debug)]
pub enum Step<'a> {
    /// The record is not all there: this many bytes from its start are needed (always more
    /// than the buffer holds). Nothing was counted.
    Need(usize),
    /// A record or block of this many bytes that gives no packet (counted if it had to be).
    Skip(usize),
    /// A record or block of this many bytes and its packet (counted).
    Packet(usize, RawPacket<'a>),
    /// Damage past which no record can be found: the walk ends, the capture is truncated.
    Stop,
}

/// Which format the first bytes said.
#[derive(Debug, Clone)]
enum Format {
    /// Not enough bytes yet to tell.
    Sniffing,
    Pcap(pcap::PcapWalk),
    Pcapng(pcapng::PcapngWalk),
}

impl Format {
    #[inline]
    fn step<'a>(&mut self, buf: &'a [u8], tally: &mut Tally) -> Step<'a> {
        match self {
            Format::Pcap(walk) => walk.step(buf, tally),
            Format::Pcapng(walk) => walk.step(buf, tally),
            // Never walked before the format is known; asking for more is harmless.
            Format::Sniffing => Step::Need(buf.len() + 1),
        }
    }
}

/// The counters of a pass, as the engine's `CaptureSummary` and `CaptureReader` give them.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// "pcap" (either time resolution) or "pcapng"; "" until the first bytes told.
    pub format: &'static str,
    /// Wireshark's file type name: "pcap", "nsecpcap" or "pcapng" ("" until known).
    pub file_type: &'static str,
    pub packets: u64,
    /// Captured bytes of all packets handed out.
    pub bytes: u64,
    /// Distinct link type names the file declares (pcap header; pcapng IDBs in file order).
    pub link_types: Vec<String>,
    /// pcapng: (linktype, if_name) per interface in file order across sections; pcap: none.
    pub interfaces: Vec<InterfaceName>,
    /// pcap: the header's snaplen; pcapng: 0 (as `CaptureReader.snaplen`).
    pub snaplen: u32,
    /// The input ended inside a record, or damage stopped the walk.
    pub truncated: bool,
    pub weirds: Weirds,
    /// Bytes fed so far. reader.py's `bytes_read` counts bytes of the *file* (compressed
    /// ones for gzip) read in its own chunks: Python keeps that one.
    pub bytes_read: u64,
}

/// How many bytes the format check needs at most: a pcap file header.
const SNIFF_LEN: usize = pcap::FILE_HEADER_LEN;

/// A streaming walk over one capture's bytes (one pass of reader.py `CaptureReader`).
///
/// Feed it the input in order with [`Walker::feed`], then call [`Walker::finish`]. Only an
/// incomplete record is copied between chunks: whole records are handed out borrowing the
/// chunk itself.
#[derive(Debug, Clone)]
pub struct Walker {
    format: Format,
    file_type: &'static str,
    snaplen: u32,
    tally: Tally,
    /// Unconsumed bytes of earlier chunks: the start of a record they did not complete (or,
    /// while sniffing, the head of the file).
    tail: Vec<u8>,
    bytes_fed: u64,
    /// The walk is over (damage stopped it, the sink asked, or `finish` ran): input is ignored.
    done: bool,
    error: Option<CaptureError>,
}

impl Default for Walker {
    fn default() -> Self {
        Walker::new()
    }
}

impl Walker {
    pub fn new() -> Walker {
        Walker {
            format: Format::Sniffing,
            file_type: "",
            snaplen: 0,
            tally: Tally::default(),
            tail: Vec::new(),
            bytes_fed: 0,
            done: false,
            error: None,
        }
    }

    /// Walk `chunk`, the input's next bytes, handing each packet to `sink`.
    ///
    /// Errs when the first bytes are no capture (then on every later call too).
    pub fn feed(&mut self, chunk: &[u8], sink: &mut dyn FnMut(RawPacket)) -> Result<(), CaptureError> {
        self.feed_until(chunk, &mut |raw| {
            sink(raw);
            true
        })
    }

    /// [`Walker::feed`] with a sink that may end the pass early by returning false (as
    /// closing the Python generator does: that packet counted, the rest unread, no
    /// truncation).
    pub fn feed_until(&mut self, chunk: &[u8], sink: &mut dyn FnMut(RawPacket) -> bool) -> Result<(), CaptureError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        self.bytes_fed += chunk.len() as u64;
        if self.done {
            return Ok(());
        }
        let mut rest = chunk;
        if let Format::Sniffing = self.format {
            let take = (SNIFF_LEN - self.tail.len()).min(rest.len());
            self.tail.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            match self.sniff(false) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(error) => return Err(error),
            }
        }
        if !self.tail.is_empty() {
            rest = self.complete_tail(rest, sink);
            if !self.tail.is_empty() || self.done {
                return Ok(());
            }
        }
        let mut pos = 0;
        while !self.done {
            let step = self.format.step(&rest[pos..], &mut self.tally);
            match step {
                Step::Need(_) => {
                    // Keep the incomplete record, and only it.
                    self.tail.extend_from_slice(&rest[pos..]);
                    break;
                }
                Step::Skip(len) => pos += len,
                Step::Packet(len, raw) => {
                    pos += len;
                    if !sink(raw) {
                        self.done = true;
                    }
                }
                Step::Stop => self.stop(),
            }
        }
        Ok(())
    }

    /// Finish the record the tail holds the start of, from `rest`'s first bytes (only as many
    /// as it needs are copied). Returns what is left of `rest`; the tail is empty unless
    /// `rest` ran out first.
    fn complete_tail<'c>(&mut self, mut rest: &'c [u8], sink: &mut dyn FnMut(RawPacket) -> bool) -> &'c [u8] {
        while !self.tail.is_empty() && !self.done {
            let step = self.format.step(&self.tail, &mut self.tally);
            let consumed = match step {
                Step::Need(need) => {
                    let missing = need.saturating_sub(self.tail.len());
                    if missing == 0 || rest.is_empty() {
                        // (missing == 0 cannot be: a Need is always more than the buffer.)
                        return rest;
                    }
                    let take = missing.min(rest.len());
                    self.tail.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    continue;
                }
                Step::Skip(len) => len,
                Step::Packet(len, raw) => {
                    if !sink(raw) {
                        self.done = true;
                    }
                    len
                }
                Step::Stop => {
                    self.stop();
                    return rest;
                }
            };
            // The tail holds no more than the record it completed, so this empties it.
            self.tail.drain(..consumed.min(self.tail.len()));
        }
        rest
    }

    /// Damage past which nothing can be read: the rest of the input is ignored.
    fn stop(&mut self) {
        self.tally.truncated = true;
        self.done = true;
        self.tail = Vec::new();
    }

    /// Decide the format from the head kept in the tail (reader.py `_sniff`). Ok(false): too
    /// few bytes yet. At the end of the input (`at_end`) too few bytes are an error.
    fn sniff(&mut self, at_end: bool) -> Result<bool, CaptureError> {
        let head = &self.tail[..];
        let decided = if head.is_empty() {
            if at_end {
                Err(CaptureError::Empty)
            } else {
                Ok(false)
            }
        } else if let Some(magic) = pcap::Magic::of(head) {
            match pcap::FileHeader::new_checked(head) {
                Some(header) => {
                    self.file_type = magic.file_type;
                    self.snaplen = header.snaplen();
                    self.format = Format::Pcap(pcap::PcapWalk::new(&header, &mut self.tally));
                    self.tail.drain(..pcap::FILE_HEADER_LEN);
                    Ok(true)
                }
                None if at_end => Err(CaptureError::PcapHeaderCutShort { got: head.len() }),
                None => Ok(false),
            }
        } else if head.len() >= 4 && head[..4] == pcapng::MAGIC {
            if head.len() < pcapng::SHB_HEAD_LEN && !at_end {
                Ok(false)
            } else {
                pcapng::check_first_block(head).map(|()| {
                    self.file_type = "pcapng";
                    self.format = Format::Pcapng(pcapng::PcapngWalk::new());
                    // The section header stays in the tail: the walk reads it as a block.
                    true
                })
            }
        } else if head.len() < 4 && !at_end {
            Ok(false)
        } else {
            Err(CaptureError::NotACapture { head: head[..head.len().min(4)].to_vec() })
        };
        if let Err(error) = &decided {
            self.error = Some(error.clone());
            self.done = true;
            self.tail = Vec::new();
        }
        decided
    }

    /// The end of the input: a record it cut counts as truncated (reader.py `_next_buffer`,
    /// pcapng.py at the end of `iter_pcapng`); an input too short to tell its format errs.
    /// Call once; Python calls it also when gunzipping fails (`_refill`).
    pub fn finish(&mut self) -> Result<(), CaptureError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        if let Format::Sniffing = self.format {
            // Any decision possible was made as the bytes came: what is left is an error.
            self.sniff(true)?;
        }
        if !self.done {
            match &self.format {
                Format::Pcap(walk) => walk.finish(&self.tail, &mut self.tally),
                Format::Pcapng(walk) => walk.finish(&self.tail, &mut self.tally),
                Format::Sniffing => {}
            }
            self.done = true;
            self.tail = Vec::new();
        }
        Ok(())
    }

    /// The walk is over: more input would be ignored (damage stopped it, the sink ended it,
    /// or the input was no capture). Python stops reading the file then.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The counters so far (complete after `finish`).
    pub fn summary(&self) -> Summary {
        let format = match self.format {
            Format::Sniffing => "",
            Format::Pcap(_) => "pcap",
            Format::Pcapng(_) => "pcapng",
        };
        Summary {
            format,
            file_type: self.file_type,
            packets: self.tally.packets,
            bytes: self.tally.bytes,
            link_types: self.tally.link_types.clone(),
            interfaces: self.tally.interfaces.clone(),
            snaplen: self.snaplen,
            truncated: self.tally.truncated,
            weirds: self.tally.weirds(),
            bytes_read: self.bytes_fed,
        }
    }

    /// The live counters, without building a `Summary`.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }
}


#[cfg(test)]
mod tests;
