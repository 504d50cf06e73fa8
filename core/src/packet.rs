//! The values that pass between the core's stages, field for field the Python engine's
//! (`analyzer/capture/reader.py` RawPacket/ProcessInfo, `analyzer/capture/decode.py`
//! Packet/IcmpInfo/Quoted/ArpFrame). Same names, same order, same meaning: the
//! differential test compares what both engines make of them.

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address as raw bytes, as the Python engine keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr {
    len: u8,
    bytes: [u8; 16],
}

impl Addr {
    pub fn v4(b: [u8; 4]) -> Addr {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&b);
        Addr { len: 4, bytes }
    }
    pub fn v6(b: [u8; 16]) -> Addr {
        Addr { len: 16, bytes: b }
    }
    /// From a 4- or 16-byte slice; None for any other length.
    pub fn from_slice(s: &[u8]) -> Option<Addr> {
        match s.len() {
            4 => Some(Addr::v4([s[0], s[1], s[2], s[3]])),
            16 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(s);
                Some(Addr::v6(b))
            }
            _ => None,
        }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
    pub fn is_v4(&self) -> bool {
        self.len == 4
    }
    /// The address as a big-endian integer (Python's `int.from_bytes(addr)`), for shard keys.
    pub fn as_u128(&self) -> u128 {
        let mut v: u128 = 0;
        for &b in self.as_bytes() {
            v = (v << 8) | b as u128;
        }
        v
    }
}

impl Default for Addr {
    fn default() -> Self {
        Addr { len: 4, bytes: [0u8; 16] }
    }
}

/// The process that sent or received a packet (Apple pcapng process blocks / PKTAP).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ProcessInfo {
    pub pid: Option<u32>,
    pub name: Option<String>,
    pub epid: Option<u32>,
    pub ename: Option<String>,
}

/// One captured frame as the file holds it (reader.py `RawPacket`). `data` borrows the
/// reader's buffer: the record walk copies nothing.
#[derive(Debug, Clone)]
pub struct RawPacket<'a> {
    pub ts: f64,
    pub linktype: u32,
    pub data: &'a [u8],
    pub wirelen: u32,
    pub iface: u32,
    pub proc_: Option<ProcessInfo>,
}

/// The offending datagram's header as quoted by an ICMP/ICMPv6 error (decode.py `Quoted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted {
    pub ip_version: u8,
    pub src: Addr,
    pub dst: Addr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ip_id: Option<u32>,
}

/// ICMP or ICMPv6 header (decode.py `IcmpInfo`); `quoted` is set for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpInfo {
    pub type_: u8,
    pub code: u8,
    pub rest: u32,
    pub mtu: u32,
    pub quoted: Option<Quoted>,
}

impl IcmpInfo {
    pub fn is_error(&self) -> bool {
        self.quoted.is_some()
    }
}

/// One IP datagram with its transport header, ready for the flow table (decode.py `Packet`).
/// Fields of a transport the datagram does not carry are 0 / empty / None.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub ts: f64,
    pub ip_version: u8,
    pub src: Addr,
    pub dst: Addr,
    pub proto: u8,
    pub ttl: u8,
    pub ip_id: Option<u32>,
    pub df: bool,
    pub ip_len: u32,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub tcp_options: Vec<u8>,
    pub payload: Vec<u8>,
    pub payload_len: u32,
    pub icmp: Option<IcmpInfo>,
    pub vlan: Vec<u16>,
    pub iface: u32,
    pub proc_name: Option<String>,
    pub pid: Option<u32>,
    pub fragmented: bool,
    /// Link-layer addresses as the frame has them: 12 bytes (Ethernet destination then
    /// source), 6 (Linux cooked: the sender's only) or none.
    pub macs: Vec<u8>,
}

impl Packet {
    /// The capture holds less of the payload than was sent (snaplen).
    pub fn truncated(&self) -> bool {
        (self.payload.len() as u64) < self.payload_len as u64
    }
    pub fn src_mac(&self) -> Option<&[u8]> {
        match self.macs.len() {
            12 => Some(&self.macs[6..]),
            0 => None,
            _ => Some(&self.macs[..]),
        }
    }
}

/// An ARP frame kept for the neighbour tracker (decode.py `ArpFrame`).
#[derive(Debug, Clone, PartialEq)]
pub struct ArpFrame {
    pub ts: f64,
    pub data: Vec<u8>,
    pub macs: Vec<u8>,
}
