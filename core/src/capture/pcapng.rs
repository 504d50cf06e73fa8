//! The pcapng block walk (draft-ietf-opsawg-pcapng) with Apple's Darwin extensions
//! (pcapng.py `check_first_block`, `_Walker`, `iter_pcapng`).
//!
//! Several sections, each with its own byte order, interfaces and process table; interfaces
//! of different link types, `if_tsresol` (power of 10 or of 2) and `if_tsoffset`; Enhanced,
//! Simple and obsolete Packet Blocks; Apple's process information blocks (type 0x80000001)
//! that EPB options 0x8001 (process) and 0x8003 (effective process) point into by index.
//! A block whose length fields are unusable ends the walk (no later block can be found
//! reliably); a bad packet block is skipped.

use super::endian::{ByteOrder, Field};
use super::tally::{Tally, Weird};
use super::{CaptureError, Step, MAX_RECORD};
use crate::packet::{ProcessInfo, RawPacket};

mod field {
    use super::Field;

    // Every block: type, length, body, the length again.
    pub const BLOCK_TYPE: Field = 0..4;
    pub const BLOCK_LENGTH: Field = 4..8;
    pub const TRAILER_LEN: usize = 4;
    /// The smallest block; also what the walk reads before it looks at a block
    /// (`while pos + 12 <= n` in `iter_pcapng`).
    pub const MIN_BLOCK_LEN: usize = 12;

    // Section Header Block.
    pub const BYTE_ORDER_MAGIC: Field = 8..12;
    pub const SHB_MAJOR: Field = 12..14;
    pub const SHB_MIN_LEN: usize = 28;
    /// What `check_first_block` needs of the file's head.
    pub const SHB_HEAD_LEN: usize = 16;

    // Interface Description Block.
    pub const IDB_LINKTYPE: Field = 8..10;
    pub const IDB_SNAPLEN: Field = 12..16;
    pub const IDB_OPTIONS: usize = 16;
    pub const IDB_MIN_LEN: usize = 20;

    // Enhanced Packet Block and the obsolete Packet Block (same layout but a 16-bit
    // interface id followed by a 16-bit drops count).
    pub const EPB_INTERFACE: Field = 8..12;
    pub const PB_INTERFACE: Field = 8..10;
    pub const TS_HIGH: Field = 12..16;
    pub const TS_LOW: Field = 16..20;
    pub const CAPLEN: Field = 20..24;
    pub const WIRELEN: Field = 24..28;
    pub const PACKET_DATA: usize = 28;
    pub const PACKET_MIN_LEN: usize = 32;

    // Simple Packet Block.
    pub const SPB_WIRELEN: Field = 8..12;
    pub const SPB_DATA: usize = 12;
    pub const SPB_MIN_LEN: usize = 16;

    // Apple's Darwin process information block.
    pub const PIB_PID: Field = 8..12;
    pub const PIB_OPTIONS: usize = 12;
    pub const PIB_MIN_LEN: usize = 16;

    // An option: code, length, value padded to 32 bits.
    pub const OPTION_CODE: Field = 0..2;
    pub const OPTION_LENGTH: Field = 2..4;
    pub const OPTION_HEADER_LEN: usize = 4;
}

/// Length of the Section Header Block's head that the format check needs.
pub const SHB_HEAD_LEN: usize = field::SHB_HEAD_LEN;

/// The first 4 bytes of a pcapng file (its first block's type).
pub const MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

const BT_SHB: u32 = 0x0A0D_0D0A;
const BT_IDB: u32 = 0x0000_0001;
const BT_PB: u32 = 0x0000_0002;
const BT_SPB: u32 = 0x0000_0003;
const BT_EPB: u32 = 0x0000_0006;
const BT_DARWIN_PIB: u32 = 0x8000_0001;
/// Blocks with nothing a packet needs: name resolution, interface statistics, IRIG/ARINC,
/// systemd journal, decryption secrets, custom blocks (pcapng.py `_IGNORED_BLOCKS`).
const IGNORED_BLOCKS: [u32; 8] = [0x4, 0x5, 0x7, 0x8, 0x9, 0xA, 0xBAD, 0x4000_0BAD];

const OPT_ENDOFOPT: u16 = 0;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;
const PIB_NAME: u16 = 2;
const EPB_PIB_INDEX: u16 = 0x8001;
const EPB_E_PIB_INDEX: u16 = 0x8003;

/// Packet times outside [1970, year 10000) are skipped (weird `pcapng_time_out_of_range`):
/// only an extreme if_tsoffset or if_tsresol makes them (pcapng.py `TS_MIN`, `TS_MAX`).
const TS_MIN: f64 = 0.0;
const TS_MAX: f64 = 253_402_300_800.0;

/// The byte order a Section Header Block's byte-order magic says (pcapng.py `_section_endian`).
fn section_order(bom: &[u8]) -> Option<ByteOrder> {
    match bom {
        [0x4d, 0x3c, 0x2b, 0x1a] => Some(ByteOrder::Little),
        [0x1a, 0x2b, 0x3c, 0x4d] => Some(ByteOrder::Big),
        _ => None,
    }
}

/// pcapng.py `check_first_block`: the error a file's head gets unless it starts with a
/// usable Section Header Block. `head` is the whole input when it is shorter than
/// `SHB_HEAD_LEN`.
pub fn check_first_block(head: &[u8]) -> Result<(), CaptureError> {
    if head.len() < field::SHB_HEAD_LEN {
        return Err(CaptureError::PcapngHeaderCutShort { got: head.len() });
    }
    let bom = &head[field::BYTE_ORDER_MAGIC];
    let order = match section_order(bom) {
        Some(order) => order,
        None => return Err(CaptureError::PcapngBadByteOrderMagic { magic: [bom[0], bom[1], bom[2], bom[3]] }),
    };
    let length = order.u32(&head[field::BLOCK_LENGTH]);
    if (length as usize) < field::SHB_MIN_LEN || length % 4 != 0 {
        return Err(CaptureError::PcapngBadLength { length });
    }
    let major = order.u16(&head[field::SHB_MAJOR]);
    if major != 1 {
        return Err(CaptureError::PcapngUnsupportedVersion { major });
    }
    Ok(())
}

/// Ticks per second for an if_tsresol byte, None if unusable (pcapng.py `_tsresol`).
fn tsresol(value: u8) -> Option<u64> {
    let exp = u32::from(value & 0x7F);
    if value & 0x80 != 0 {
        if exp <= 63 {
            Some(1u64 << exp)
        } else {
            None
        }
    } else if exp <= 19 {
        Some(10u64.pow(exp))
    } else {
        None
    }
}

/// An option's text: trailing NULs dropped, bad UTF-8 replaced
/// (`value.rstrip(b"\0").decode("utf-8", "replace")`: both replace maximal invalid subparts).
fn option_text(value: &[u8]) -> String {
    let mut end = value.len();
    while end > 0 && value[end - 1] == 0 {
        end -= 1;
    }
    String::from_utf8_lossy(&value[..end]).into_owned()
}

/// The options in an options area, up to opt_endofopt (pcapng.py `_Walker.options`).
/// An option running past the area ends the walk with `overran` set (weird
/// `pcapng_bad_option_length`, counted by the caller once the loop is over).
struct Options<'a> {
    area: &'a [u8],
    pos: usize,
    order: ByteOrder,
    overran: bool,
}

impl<'a> Options<'a> {
    fn new(area: &'a [u8], order: ByteOrder) -> Options<'a> {
        Options { area, pos: 0, order, overran: false }
    }

    fn count_overrun(&self, tally: &mut Tally) {
        if self.overran {
            tally.weird(Weird::PcapngBadOptionLength);
        }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<(u16, &'a [u8])> {
        let start = self.pos;
        let header = self.area.get(start..start + field::OPTION_HEADER_LEN)?;
        let code = self.order.u16(&header[field::OPTION_CODE]);
        if code == OPT_ENDOFOPT {
            self.pos = self.area.len();
            return None;
        }
        let length = self.order.u16(&header[field::OPTION_LENGTH]) as usize;
        let value_start = start + field::OPTION_HEADER_LEN;
        let value = match self.area.get(value_start..value_start + length) {
            Some(value) => value,
            None => {
                self.overran = true;
                self.pos = self.area.len();
                return None;
            }
        };
        self.pos = value_start + ((length + 3) & !3);
        Some((code, value))
    }
}

/// A view over one whole block whose two length fields were checked and agree.
#[derive(Clone, Copy)]
struct Block<'a> {
    buf: &'a [u8],
    order: ByteOrder,
}

impl<'a> Block<'a> {
    fn len(&self) -> usize {
        self.buf.len()
    }
    fn u16(&self, f: Field) -> u16 {
        self.order.u16(&self.buf[f])
    }
    fn u32(&self, f: Field) -> u32 {
        self.order.u32(&self.buf[f])
    }
    /// The options from `start` to the trailing length; the caller has checked
    /// `start + 4 <= len`.
    fn options(&self, start: usize) -> Options<'a> {
        Options::new(&self.buf[start..self.buf.len() - field::TRAILER_LEN], self.order)
    }
}

/// One interface of the current section (pcapng.py `_Walker.ifaces` tuples).
#[derive(Debug, Clone)]
struct Interface {
    linktype: u32,
    /// Seconds per 2**32 ticks: `(1 << 32) / ticks`, as Python computes it.
    hi_scale: f64,
    /// Seconds per tick: `1 / ticks`.
    lo_scale: f64,
    /// if_tsoffset, seconds.
    offset: i64,
    snaplen: u32,
    /// Position in the file across sections (`RawPacket.iface`).
    ordinal: u32,
}

/// One Darwin process information block of the current section: (pid, name).
#[derive(Debug, Clone)]
struct Process {
    pid: u32,
    name: Option<String>,
}

/// The state of a pass over a pcapng file: the current section's byte order, interfaces and
/// processes, and the last packet time (pcapng.py `_Walker` and `iter_pcapng`'s locals).
#[derive(Debug, Clone)]
pub struct PcapngWalk {
    order: ByteOrder,
    ifaces: Vec<Interface>,
    procs: Vec<Process>,
    /// The time of the last packet with one, given to Simple Packet Blocks (which have none).
    last_ts: f64,
}

impl Default for PcapngWalk {
    fn default() -> Self {
        PcapngWalk::new()
    }
}

impl PcapngWalk {
    pub fn new() -> PcapngWalk {
        PcapngWalk { order: ByteOrder::Little, ifaces: Vec::new(), procs: Vec::new(), last_ts: 0.0 }
    }

    /// The block at the start of `buf` (the body of `iter_pcapng`'s inner loop).
    pub fn step<'a>(&mut self, buf: &'a [u8], tally: &mut Tally) -> Step<'a> {
        if buf.len() < field::MIN_BLOCK_LEN {
            return Step::Need(field::MIN_BLOCK_LEN);
        }
        let block_type = self.order.u32(&buf[field::BLOCK_TYPE]);
        if block_type == BT_SHB {
            // A section says its byte order before its length can be read. The type reads
            // the same in both orders.
            match section_order(&buf[field::BYTE_ORDER_MAGIC]) {
                Some(order) => self.order = order,
                None => {
                    tally.weird(Weird::PcapngBadByteOrderMagic);
                    return Step::Stop;
                }
            }
        }
        let length = self.order.u32(&buf[field::BLOCK_LENGTH]) as usize;
        if length < field::MIN_BLOCK_LEN || length % 4 != 0 || length > MAX_RECORD {
            tally.weird(Weird::PcapngBadBlockLength);
            return Step::Stop;
        }
        let block = match buf.get(..length) {
            Some(block) => Block { buf: block, order: self.order },
            None => return Step::Need(length),
        };
        if block.u32(length - field::TRAILER_LEN..length) as usize != length {
            tally.weird(Weird::PcapngBlockLengthMismatch);
            return Step::Stop;
        }
        match block_type {
            BT_EPB | BT_PB => return self.packet_block(block, block_type == BT_PB, tally),
            BT_SPB => return self.simple_packet_block(block, tally),
            BT_IDB => self.interface(block, tally),
            BT_SHB => {
                if length < field::SHB_MIN_LEN {
                    tally.weird(Weird::PcapngBadBlockLength);
                    return Step::Stop;
                }
                if !self.section(block, tally) {
                    return Step::Stop;
                }
            }
            BT_DARWIN_PIB => self.process(block, tally),
            other => {
                if !IGNORED_BLOCKS.contains(&other) {
                    tally.weird(Weird::PcapngUnknownBlock);
                }
            }
        }
        Step::Skip(length)
    }

    /// The input ended with `tail` unread (`iter_pcapng` at the end of the file).
    pub fn finish(&self, tail: &[u8], tally: &mut Tally) {
        if !tail.is_empty() {
            tally.truncated = true;
            tally.weird(Weird::PcapngTruncatedBlock);
        }
    }

    /// A new section: interfaces and processes forgotten (pcapng.py `_Walker.section`).
    /// False if unusable.
    fn section(&mut self, block: Block, tally: &mut Tally) -> bool {
        if block.u16(field::SHB_MAJOR) != 1 {
            tally.weird(Weird::PcapngUnsupportedVersion);
            return false;
        }
        self.ifaces.clear();
        self.procs.clear();
        true
    }

    /// pcapng.py `_Walker.interface`.
    fn interface(&mut self, block: Block, tally: &mut Tally) {
        if block.len() < field::IDB_MIN_LEN {
            tally.weird(Weird::PcapngBadBlockLength);
            return;
        }
        let linktype = u32::from(block.u16(field::IDB_LINKTYPE));
        let snaplen = block.u32(field::IDB_SNAPLEN);
        let mut ticks: u64 = 1_000_000;
        let mut offset: i64 = 0;
        let mut if_name: Option<String> = None;
        let mut options = block.options(field::IDB_OPTIONS);
        for (code, value) in &mut options {
            if code == IF_TSRESOL && !value.is_empty() {
                match tsresol(value[0]) {
                    Some(resolution) => ticks = resolution,
                    None => tally.weird(Weird::PcapngBadTsresol),
                }
            } else if code == IF_TSOFFSET && value.len() >= 8 {
                offset = self.order.i64(&value[..8]);
            } else if code == IF_NAME {
                if_name = Some(option_text(value));
            }
        }
        options.count_overrun(tally);
        let ordinal = tally.interfaces.len() as u32;
        tally.interfaces.push((linktype, if_name));
        tally.declare_link_type(linktype);
        // Python divides two ints (correctly rounded); both are exact in f64 (2**32, and
        // 10**k for k <= 19 or 2**k for k <= 63), so one f64 division is the same value.
        let ticks = ticks as f64;
        self.ifaces.push(Interface {
            linktype,
            hi_scale: 4_294_967_296.0 / ticks,
            lo_scale: 1.0 / ticks,
            offset,
            snaplen,
            ordinal,
        });
    }

    /// pcapng.py `_Walker.process`.
    fn process(&mut self, block: Block, tally: &mut Tally) {
        if block.len() < field::PIB_MIN_LEN {
            tally.weird(Weird::PcapngBadBlockLength);
            return;
        }
        let pid = block.u32(field::PIB_PID);
        let mut name: Option<String> = None;
        let mut options = block.options(field::PIB_OPTIONS);
        for (code, value) in &mut options {
            if code == PIB_NAME {
                name = Some(option_text(value));
            }
        }
        options.count_overrun(tally);
        self.procs.push(Process { pid, name });
    }

    /// An Enhanced or obsolete Packet Block (`iter_pcapng`'s EPB/PB branch).
    fn packet_block<'a>(&mut self, block: Block<'a>, obsolete: bool, tally: &mut Tally) -> Step<'a> {
        let length = block.len();
        if length < field::PACKET_MIN_LEN {
            tally.weird(Weird::PcapngBadBlockLength);
            return Step::Skip(length);
        }
        let iface = if obsolete {
            u32::from(block.u16(field::PB_INTERFACE))
        } else {
            block.u32(field::EPB_INTERFACE)
        };
        let caplen = block.u32(field::CAPLEN) as usize;
        let wirelen = block.u32(field::WIRELEN);
        if caplen > length - field::PACKET_MIN_LEN {
            tally.weird(Weird::PcapngBadCaplen);
            return Step::Skip(length);
        }
        let interface = match self.ifaces.get(iface as usize) {
            Some(interface) => interface,
            None => {
                tally.weird(Weird::PcapngBadInterfaceId);
                return Step::Skip(length);
            }
        };
        let (high, low) = (block.u32(field::TS_HIGH), block.u32(field::TS_LOW));
        // `hi * hi_scale + lo * lo_scale + offset`: the same f64 operations in Python's order.
        let ts = high as f64 * interface.hi_scale + low as f64 * interface.lo_scale + interface.offset as f64;
        if !(TS_MIN..TS_MAX).contains(&ts) {
            // Skipped, not clamped: a time no calendar holds cannot be placed among the
            // other packets' times.
            tally.weird(Weird::PcapngTimeOutOfRange);
            return Step::Skip(length);
        }
        let (linktype, ordinal) = (interface.linktype, interface.ordinal);
        self.last_ts = ts;
        let mut proc_ = None;
        if !self.procs.is_empty() {
            let options = field::PACKET_DATA + ((caplen + 3) & !3);
            if options + field::OPTION_HEADER_LEN <= length - field::TRAILER_LEN {
                proc_ = self.packet_process(block.options(options), tally);
            }
        }
        if caplen as u64 > u64::from(wirelen) {
            tally.weird(Weird::PcapngCaplenExceedsWirelen);
        }
        tally.packet(caplen);
        let data = &block.buf[field::PACKET_DATA..field::PACKET_DATA + caplen];
        Step::Packet(length, RawPacket { ts, linktype, data, wirelen, iface: ordinal, proc_ })
    }

    /// The process and effective process that a packet block's options point to
    /// (pcapng.py `_Walker.epb_process`).
    fn packet_process(&self, mut options: Options, tally: &mut Tally) -> Option<ProcessInfo> {
        let mut process: Option<&Process> = None;
        let mut effective: Option<&Process> = None;
        for (code, value) in &mut options {
            if (code == EPB_PIB_INDEX || code == EPB_E_PIB_INDEX) && value.len() == 4 {
                let index = self.order.u32(value) as usize;
                match self.procs.get(index) {
                    None => tally.weird(Weird::PcapngBadProcessIndex),
                    Some(found) if code == EPB_PIB_INDEX => process = Some(found),
                    Some(found) => effective = Some(found),
                }
            }
        }
        options.count_overrun(tally);
        if process.is_none() && effective.is_none() {
            return None;
        }
        Some(ProcessInfo {
            pid: process.map(|p| p.pid),
            name: process.and_then(|p| p.name.clone()),
            epid: effective.map(|p| p.pid),
            ename: effective.and_then(|p| p.name.clone()),
        })
    }

    /// A Simple Packet Block: the first interface of the section, the last packet's time.
    fn simple_packet_block<'a>(&mut self, block: Block<'a>, tally: &mut Tally) -> Step<'a> {
        let length = block.len();
        let interface = match self.ifaces.first() {
            Some(interface) => interface,
            None => {
                tally.weird(Weird::PcapngSpbWithoutInterface);
                return Step::Skip(length);
            }
        };
        if length < field::SPB_MIN_LEN {
            tally.weird(Weird::PcapngBadBlockLength);
            return Step::Skip(length);
        }
        let wirelen = block.u32(field::SPB_WIRELEN);
        let mut caplen = (wirelen as usize).min(length - field::SPB_MIN_LEN);
        if interface.snaplen != 0 {
            caplen = caplen.min(interface.snaplen as usize);
        }
        tally.packet(caplen);
        let data = &block.buf[field::SPB_DATA..field::SPB_DATA + caplen];
        Step::Packet(
            length,
            RawPacket {
                ts: self.last_ts,
                linktype: interface.linktype,
                data,
                wirelen,
                iface: interface.ordinal,
                proc_: None,
            },
        )
    }
}
