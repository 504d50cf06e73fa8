//! Classic pcap: the file header and the record walk, either byte order, micro- or
//! nanosecond times, the old-libpcap length swap (reader.py `CaptureReader._sniff`,
//! `_pcap_layout`, `_iter_pcap`, `_next_buffer`, `_bogus_record`, `_empty_run`).

use super::endian::{ByteOrder, Field};
use super::tally::{Tally, Weird};
use super::{linktype_name, Step, MAX_RECORD};
use crate::packet::RawPacket;

mod field {
    use super::Field;

    pub const MAGIC: Field = 0..4;
    pub const VERSION_MAJOR: Field = 4..6;
    pub const VERSION_MINOR: Field = 6..8;
    // 8..12 thiszone, 12..16 sigfigs: unused, as in reader.py.
    pub const SNAPLEN: Field = 16..20;
    pub const LINKTYPE: Field = 20..24;
    pub const FILE_HEADER_LEN: usize = 24;

    pub const TS_SEC: Field = 0..4;
    pub const TS_FRAC: Field = 4..8;
    pub const CAPLEN: Field = 8..12;
    pub const WIRELEN: Field = 12..16;
    pub const RECORD_HEADER_LEN: usize = 16;
}

/// Length of the file header.
pub const FILE_HEADER_LEN: usize = field::FILE_HEADER_LEN;

/// libpcap's and Wireshark's MAXIMUM_SNAPLEN (reader.py `PCAP_MAX_SNAPLEN`): the limit of a
/// file whose header declares no snaplen.
pub const PCAP_MAX_SNAPLEN: u32 = 262_144;

/// The top 6 bits of the header's link type field carry FCS information (libpcap LT_LINKTYPE).
const LINKTYPE_MASK: u32 = 0x03FF_FFFF;

/// What a pcap magic number says (reader.py `_MAGIC_PCAP`): byte order, seconds per
/// fraction tick, Wireshark's file type name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Magic {
    pub order: ByteOrder,
    pub scale: f64,
    pub file_type: &'static str,
}

impl Magic {
    /// The magic of `head` (its first 4 bytes), None when it is no pcap magic.
    pub fn of(head: &[u8]) -> Option<Magic> {
        let (order, scale, file_type) = match head.get(field::MAGIC)? {
            [0xd4, 0xc3, 0xb2, 0xa1] => (ByteOrder::Little, 1e-6, "pcap"),
            [0xa1, 0xb2, 0xc3, 0xd4] => (ByteOrder::Big, 1e-6, "pcap"),
            [0x4d, 0x3c, 0xb2, 0xa1] => (ByteOrder::Little, 1e-9, "nsecpcap"),
            [0xa1, 0xb2, 0x3c, 0x4d] => (ByteOrder::Big, 1e-9, "nsecpcap"),
            _ => return None,
        };
        Some(Magic { order, scale, file_type })
    }
}

/// A view over the 24-byte file header.
#[derive(Debug, Clone, Copy)]
pub struct FileHeader<'a> {
    buf: &'a [u8],
    magic: Magic,
}

impl<'a> FileHeader<'a> {
    /// The header at the start of `buf`; None when `buf` is shorter than a header or does not
    /// start with a pcap magic.
    pub fn new_checked(buf: &'a [u8]) -> Option<FileHeader<'a>> {
        let magic = Magic::of(buf)?;
        if buf.len() < field::FILE_HEADER_LEN {
            return None;
        }
        Some(FileHeader { buf, magic })
    }

    pub fn magic(&self) -> Magic {
        self.magic
    }

    /// (major, minor), compared as Python compares the tuple.
    pub fn version(&self) -> (u16, u16) {
        let o = self.magic.order;
        (o.u16(&self.buf[field::VERSION_MAJOR]), o.u16(&self.buf[field::VERSION_MINOR]))
    }

    pub fn snaplen(&self) -> u32 {
        self.magic.order.u32(&self.buf[field::SNAPLEN])
    }

    /// The LINKTYPE_ value, FCS bits masked off.
    pub fn linktype(&self) -> u32 {
        self.magic.order.u32(&self.buf[field::LINKTYPE]) & LINKTYPE_MASK
    }
}

/// A view over a 16-byte record header, lengths as the file has them (before any swap).
#[derive(Debug, Clone, Copy)]
struct RecordHeader<'a> {
    buf: &'a [u8],
    order: ByteOrder,
}

impl<'a> RecordHeader<'a> {
    fn new_checked(buf: &'a [u8], order: ByteOrder) -> Option<RecordHeader<'a>> {
        if buf.len() < field::RECORD_HEADER_LEN {
            return None;
        }
        Some(RecordHeader { buf, order })
    }
    fn ts_sec(&self) -> u32 {
        self.order.u32(&self.buf[field::TS_SEC])
    }
    fn ts_frac(&self) -> u32 {
        self.order.u32(&self.buf[field::TS_FRAC])
    }
    fn caplen(&self) -> u32 {
        self.order.u32(&self.buf[field::CAPLEN])
    }
    fn wirelen(&self) -> u32 {
        self.order.u32(&self.buf[field::WIRELEN])
    }
    /// All 16 bytes zero: zero padding or a gzip bomb, no record (reader.py `_EMPTY_RECORD`).
    fn is_empty(&self) -> bool {
        self.buf[..field::RECORD_HEADER_LEN].iter().all(|&b| b == 0)
    }
}

/// When the two lengths of a record header are the other way round (reader.py `swapped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LengthSwap {
    /// Version 2.4 and later.
    Never,
    /// Version 2.3: files may be either way; libpcap's sf-pcap.c swaps when caplen > wirelen.
    WhenCaplenExceedsWirelen,
    /// Before 2.3 libpcap wrote them the other way round.
    Always,
}

/// The state of a pass over a classic pcap's records (reader.py `_pcap_layout` + `_iter_pcap`).
#[derive(Debug, Clone)]
pub struct PcapWalk {
    order: ByteOrder,
    scale: f64,
    linktype: u32,
    /// The file's snaplen, or libpcap's maximum when it declares none.
    limit: u32,
    swap: LengthSwap,
}

impl PcapWalk {
    /// reader.py `_sniff` (pcap branch) and `_pcap_layout`: what reading the records needs;
    /// the link type and an unusual version go into `tally`.
    pub fn new(header: &FileHeader, tally: &mut Tally) -> PcapWalk {
        let version = header.version();
        if version != (2, 4) {
            tally.weird(Weird::PcapUnusualVersion);
        }
        let swap = if version < (2, 3) {
            LengthSwap::Always
        } else if version == (2, 3) {
            LengthSwap::WhenCaplenExceedsWirelen
        } else {
            LengthSwap::Never
        };
        let snaplen = header.snaplen();
        let linktype = header.linktype();
        tally.link_types = vec![linktype_name(linktype)];
        PcapWalk {
            order: header.magic().order,
            scale: header.magic().scale,
            linktype,
            limit: if snaplen != 0 { snaplen } else { PCAP_MAX_SNAPLEN },
            swap,
        }
    }

    /// The record at the start of `buf` (reader.py `_iter_pcap`'s inner loop).
    #[inline]
    pub fn step<'a>(&self, buf: &'a [u8], tally: &mut Tally) -> Step<'a> {
        let header = match RecordHeader::new_checked(buf, self.order) {
            Some(header) => header,
            None => return Step::Need(field::RECORD_HEADER_LEN),
        };
        if header.is_empty() {
            tally.weird(Weird::PcapEmptyRecord);
            return Step::Skip(field::RECORD_HEADER_LEN);
        }
        let (mut caplen, mut wirelen) = (header.caplen(), header.wirelen());
        let swap = match self.swap {
            LengthSwap::Never => false,
            LengthSwap::WhenCaplenExceedsWirelen => caplen > wirelen,
            LengthSwap::Always => true,
        };
        if swap {
            std::mem::swap(&mut caplen, &mut wirelen);
        }
        // Python tests this only when the record is not all in its buffer, but a record
        // above MAX_RECORD never is (its buffers hold at most a 1 MiB chunk past a record
        // boundary), so the test is the same made at once (reader.py `_bogus_record`).
        if caplen as usize > MAX_RECORD {
            tally.weird(Weird::PcapCaplenExceedsSnaplen);
            tally.weird(Weird::PcapBogusCaplen);
            return Step::Stop;
        }
        let end = field::RECORD_HEADER_LEN + caplen as usize;
        let data = match buf.get(field::RECORD_HEADER_LEN..end) {
            Some(data) => data,
            None => return Step::Need(end),
        };
        if caplen > self.limit {
            tally.weird(Weird::PcapCaplenExceedsSnaplen);
        }
        if caplen > wirelen {
            tally.weird(Weird::PcapCaplenExceedsWirelen);
        }
        tally.packet(data.len());
        // `sec + frac * scale` in Python: the same two f64 operations in the same order.
        let ts = header.ts_sec() as f64 + header.ts_frac() as f64 * self.scale;
        Step::Packet(end, RawPacket { ts, linktype: self.linktype, data, wirelen, iface: 0, proc_: None })
    }

    /// The input ended with `tail` unread (reader.py `_next_buffer` at the end of the file).
    pub fn finish(&self, tail: &[u8], tally: &mut Tally) {
        if tail.is_empty() {
            return;
        }
        tally.truncated = true;
        match RecordHeader::new_checked(tail, self.order) {
            None => tally.weird(Weird::PcapTruncatedRecordHeader),
            Some(header) => {
                tally.weird(Weird::PcapTruncatedRecord);
                // Python compares the caplen field as the file has it, before any swap.
                if header.caplen() > self.limit {
                    tally.weird(Weird::PcapCaplenExceedsSnaplen);
                }
            }
        }
    }
}
