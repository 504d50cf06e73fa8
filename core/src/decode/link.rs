//! The link layer: where a frame's IP (or ARP) layer starts, its VLAN ids, its link-layer
//! addresses and (PKTAP) its process. Mirrors the link section of `analyzer/capture/decode.py`
//! (`LINK_DECODERS` and the functions it names).

use super::wire::{be16, byte, header, le32};
use super::Weird;
use crate::packet::ProcessInfo;

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_IPV6: u16 = 0x86DD;
pub const ETH_PPPOE_SESSION: u16 = 0x8864;
pub const ETH_ARP: u16 = 0x0806;
const ARPHRD_ETHER: u8 = 1;
/// decode.py `MAX_VLAN_TAGS`.
pub const MAX_VLAN_TAGS: usize = 8;

/// decode.py `_VLAN_TPIDS`: 802.1Q, 802.1ad (QinQ) and the two pre-standard QinQ TPIDs.
fn is_vlan_tpid(etype: u16) -> bool {
    matches!(etype, 0x8100 | 0x88A8 | 0x9100 | 0x9200)
}

/// VLAN ids outermost first, at most `MAX_VLAN_TAGS`: kept inline so an untagged frame
/// allocates nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VlanTags {
    ids: [u16; MAX_VLAN_TAGS],
    len: u8,
}

impl VlanTags {
    pub fn as_slice(&self) -> &[u16] {
        &self.ids[..self.len as usize]
    }
    fn push(&mut self, id: u16) -> Result<(), Weird> {
        match self.ids.get_mut(self.len as usize) {
            Some(slot) => {
                *slot = id;
                self.len += 1;
                Ok(())
            }
            None => Err(Weird::TooManyVlanTags),
        }
    }
}

/// The process a frame names: the reader's (pcapng process blocks) or a PKTAP header's.
#[derive(Debug, Clone, Copy)]
pub enum Process<'a> {
    None,
    Reader(&'a ProcessInfo),
    /// PKTAP `pth_pid` (None when negative) and `pth_comm` up to its NUL (None when empty).
    Pktap { pid: Option<u32>, name: Option<&'a [u8]> },
}

impl<'a> Process<'a> {
    /// `ProcessInfo.name`; PKTAP names are decoded as decode.py `_cstr` does (UTF-8, errors
    /// replaced).
    pub fn name(&self) -> Option<String> {
        match *self {
            Process::None => None,
            Process::Reader(p) => p.name.clone(),
            Process::Pktap { name, .. } => name.map(|n| String::from_utf8_lossy(n).into_owned()),
        }
    }
    pub fn pid(&self) -> Option<u32> {
        match *self {
            Process::None => None,
            Process::Reader(p) => p.pid,
            Process::Pktap { pid, .. } => pid,
        }
    }
}

/// decode.py `_Link`: the ethertype of the IP (or ARP) layer, its offset, VLAN ids, the
/// process from a PKTAP header (`Process::None` otherwise), link-layer addresses.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    pub ethertype: u16,
    pub offset: usize,
    pub vlan: VlanTags,
    pub process: Process<'a>,
    pub macs: &'a [u8],
}

impl<'a> Link<'a> {
    fn plain(ethertype: u16, offset: usize) -> Link<'a> {
        Link { ethertype, offset, vlan: VlanTags::default(), process: Process::None, macs: &[] }
    }
}

/// decode.py `LinkDecoder`: given a frame and where its link header starts, where IP starts
/// (`Ok(None)`: not IP, nor ARP).
pub type LinkDecoder = for<'a> fn(&'a [u8], usize) -> Result<Option<Link<'a>>, Weird>;

/// decode.py `LINK_DECODERS`: LINKTYPE_ value -> decoder. Add an arm to support another.
pub fn link_decoder(linktype: u32) -> Option<LinkDecoder> {
    let f: LinkDecoder = match linktype {
        0 => null,
        1 => ether,
        9 => ppp,
        12 => raw, // DLT_RAW on most BSDs (and in PKTAP's pth_dlt)
        14 => raw, // DLT_RAW on OpenBSD
        101 => raw,
        108 => null,
        113 => sll,
        228 => raw4,
        229 => raw6,
        LINKTYPE_PKTAP => pktap,
        276 => sll2,
        _ => return None,
    };
    Some(f)
}

const LINKTYPE_PKTAP: u32 = 258;

/// decode.py `_ethertype`: follow VLAN tags and PPPoE sessions from `etype` at `off`.
fn ethertype<'a>(d: &'a [u8], mut off: usize, mut etype: u16, macs: &'a [u8]) -> Result<Option<Link<'a>>, Weird> {
    let mut vlan = VlanTags::default();
    while is_vlan_tpid(etype) {
        let tag = header::<4>(d, off, Weird::TruncatedVlanHeader)?;
        if vlan.as_slice().len() >= MAX_VLAN_TAGS {
            return Err(Weird::TooManyVlanTags);
        }
        vlan.push(be16(tag, 0) & 0x0FFF)?;
        etype = be16(tag, 2);
        off += 4;
    }
    if etype == ETH_IPV4 || etype == ETH_IPV6 || etype == ETH_ARP {
        return Ok(Some(Link { ethertype: etype, offset: off, vlan, process: Process::None, macs }));
    }
    if etype == ETH_PPPOE_SESSION {
        // version/type, code, session id, length: 6 bytes, then the PPP protocol.
        let h = header::<8>(d, off, Weird::TruncatedPppoe)?;
        if h[0] != 0x11 {
            return Err(Weird::BadPppoeVersion);
        }
        if h[1] != 0 {
            return Ok(None); // only session data (code 0) carries PPP frames
        }
        return Ok(ppp_protocol(d, off + 6)?.map(|(etype, off)| Link {
            ethertype: etype,
            offset: off,
            vlan,
            process: Process::None,
            macs,
        }));
    }
    Ok(None)
}

/// decode.py `_ether`: Ethernet II (destination, source, type) then tags.
fn ether(d: &[u8], off: usize) -> Result<Option<Link<'_>>, Weird> {
    let h = header::<14>(d, off, Weird::TruncatedEthernet)?;
    let macs = &h[..12];
    let etype = be16(h, 12);
    if etype == ETH_IPV6 || etype == ETH_IPV4 {
        return Ok(Some(Link { ethertype: etype, offset: off + 14, vlan: VlanTags::default(), process: Process::None, macs }));
    }
    ethertype(d, off + 14, etype, macs)
}

/// decode.py `_ppp_protocol`: the PPP protocol field (1 byte when compressed: odd first
/// byte) -> (ethertype, IP offset); None for anything but IPv4/IPv6.
fn ppp_protocol(d: &[u8], off: usize) -> Result<Option<(u16, usize)>, Weird> {
    if d.len() <= off {
        return Err(Weird::TruncatedPpp);
    }
    let first = byte(d, off);
    let (proto, off) = if first & 1 != 0 {
        (first as u16, off + 1)
    } else {
        let h = header::<2>(d, off, Weird::TruncatedPpp)?;
        (be16(h, 0), off + 2)
    };
    Ok(match proto {
        0x21 => Some((ETH_IPV4, off)),
        0x57 => Some((ETH_IPV6, off)),
        _ => None,
    })
}

/// decode.py `_ppp`. Address/control 0xff 0x03 may be compressed away (RFC 1661 ACFC).
fn ppp(d: &[u8], mut off: usize) -> Result<Option<Link<'_>>, Weird> {
    if d.len() >= off + 2 && byte(d, off) == 0xFF && byte(d, off + 1) == 0x03 {
        off += 2;
    }
    Ok(ppp_protocol(d, off)?.map(|(etype, off)| Link::plain(etype, off)))
}

/// decode.py `_sll`: Linux cooked capture v1 (16 bytes). The address field is the
/// sender's, for packets sent and received alike.
fn sll(d: &[u8], off: usize) -> Result<Option<Link<'_>>, Weird> {
    let h = header::<16>(d, off, Weird::TruncatedSll)?;
    let ether = h[2] == 0 && h[3] == ARPHRD_ETHER && h[4] == 0 && h[5] == 6;
    let macs: &[u8] = if ether { &h[6..12] } else { &[] };
    ethertype(d, off + 16, be16(h, 14), macs)
}

/// decode.py `_sll2`: Linux cooked capture v2 (20 bytes, protocol first).
fn sll2(d: &[u8], off: usize) -> Result<Option<Link<'_>>, Weird> {
    let h = header::<20>(d, off, Weird::TruncatedSll2)?;
    let ether = h[8] == 0 && h[9] == ARPHRD_ETHER && h[11] == 6;
    let macs: &[u8] = if ether { &h[12..18] } else { &[] };
    ethertype(d, off + 20, be16(h, 0), macs)
}

/// decode.py `_raw`: the IP version nibble says which.
fn raw(d: &[u8], off: usize) -> Result<Option<Link<'_>>, Weird> {
    if d.len() <= off {
        return Err(Weird::TruncatedIpHeader);
    }
    match byte(d, off) >> 4 {
        4 => Ok(Some(Link::plain(ETH_IPV4, off))),
        6 => Ok(Some(Link::plain(ETH_IPV6, off))),
        _ => Err(Weird::BadIpVersion),
    }
}

fn raw4(_d: &[u8], off: usize) -> Result<Option<Link<'_>>, Weird> {
    Ok(Some(Link::plain(ETH_IPV4, off)))
}

fn raw6(_d: &[u8], off: usize) -> Result<Option<Link<'_>>, Weird> {
    Ok(Some(Link::plain(ETH_IPV6, off)))
}

/// decode.py `_null`: DLT_NULL (host byte order) and DLT_LOOP (network order): either order.
/// BSD address families: AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD, OpenBSD, BSD/OS),
/// 28 (FreeBSD, DragonFly) or 30 (Darwin).
fn null(d: &[u8], off: usize) -> Result<Option<Link<'_>>, Weird> {
    let h = header::<4>(d, off, Weird::TruncatedNull)?;
    let mut family = le32(h, 0);
    if family > 0xFFFF {
        family = u32::from_be_bytes(*h);
    }
    Ok(match family {
        2 => Some(Link::plain(ETH_IPV4, off + 4)),
        24 | 28 | 30 => Some(Link::plain(ETH_IPV6, off + 4)),
        _ => None,
    })
}

/// decode.py `PKTAP_MIN_HEADER`.
const PKTAP_MIN_HEADER: usize = 108;
const PKTAP_REC_PACKET: u32 = 1;

/// Byte offsets of `struct pktap_header` (little-endian: decode.py `_PKTAP`).
mod pktap_field {
    pub const HDRLEN: usize = 0;
    pub const RECTYPE: usize = 4;
    pub const DLT: usize = 8;
    pub const PID: usize = 52;
    pub const COMM: std::ops::Range<usize> = 56..76;
}

/// decode.py `_pktap`: Apple PKTAP, a per-packet interface and process header, then the
/// inner frame of link type `pth_dlt`. The header length allows for longer future headers.
/// Only the process name and pid reach the `Packet`, so the effective process is not read.
fn pktap(d: &[u8], off: usize) -> Result<Option<Link<'_>>, Weird> {
    let h = header::<PKTAP_MIN_HEADER>(d, off, Weird::TruncatedPktap)?;
    let hdrlen = le32(h, pktap_field::HDRLEN) as u64;
    if hdrlen < PKTAP_MIN_HEADER as u64 {
        return Err(Weird::BadPktapHeaderLength);
    }
    if (d.len() as u64) < off as u64 + hdrlen {
        return Err(Weird::TruncatedPktap);
    }
    if le32(h, pktap_field::RECTYPE) != PKTAP_REC_PACKET {
        return Ok(None);
    }
    let dlt = le32(h, pktap_field::DLT);
    let inner = match link_decoder(dlt) {
        Some(f) if dlt != LINKTYPE_PKTAP => f,
        _ => return Err(Weird::UnknownLinktype(dlt)),
    };
    let mut link = match inner(d, off + hdrlen as usize)? {
        Some(link) => link,
        None => return Ok(None),
    };
    let pid = le32(h, pktap_field::PID) as i32;
    let comm = &h[pktap_field::COMM];
    let name = comm.split(|&b| b == 0).next().filter(|n| !n.is_empty());
    link.process = Process::Pktap { pid: if pid >= 0 { Some(pid as u32) } else { None }, name };
    Ok(Some(link))
}
