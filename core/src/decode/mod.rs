//! Link, IP and transport decode of one frame into a `Packet`, and IP fragment reassembly
//! (Python reference: `analyzer/capture/decode.py`, `analyzer/capture/ipfrag.py`), plus the
//! engine's shard keys (`analyzer/engine.py` `raw_shard`, `shard_of`).
//!
//! `decode(raw, frags, weird, arp)` turns a `RawPacket` into a `Packet`, or None for frames
//! that carry no IP datagram, fragments still waiting for the rest of their datagram, and
//! malformed frames. Malformed input never panics: its anomaly is counted in `weird` under
//! decode.py's name for it.

pub mod ip;
pub mod ipfrag;
pub mod link;
pub mod shard;
mod wire;

pub use ipfrag::{FragKey, FragMeta, FragmentTable};
pub use link::{link_decoder, Link, LinkDecoder, Process, VlanTags};
pub use shard::{raw_shard, shard_of};

use crate::packet::{ArpFrame, Packet, RawPacket};
use crate::weird::Weirds;
use ip::FrameInfo;
use link::{ETH_IPV4, ETH_IPV6};

/// decode.py `WEIRDS`: every weird the decoder and the fragment table count, with what it
/// means (`unknown_linktype_<n>` stands for the family).
pub const WEIRDS: &[(&str, &str)] = &[
    ("unknown_linktype_<n>", "no decoder for this link type"),
    ("truncated_ethernet", "frame shorter than an Ethernet header"),
    ("truncated_vlan_header", "frame ends inside an 802.1Q tag"),
    ("too_many_vlan_tags", "more than 8 stacked VLAN tags"),
    ("truncated_pppoe", "frame ends inside a PPPoE session header"),
    ("bad_pppoe_version", "PPPoE version/type other than 1/1"),
    ("truncated_ppp", "frame ends inside a PPP header"),
    ("truncated_sll", "frame shorter than a Linux cooked (SLL) header"),
    ("truncated_sll2", "frame shorter than a Linux cooked v2 (SLL2) header"),
    ("truncated_null", "frame shorter than a BSD loopback header"),
    ("truncated_pktap", "frame shorter than its PKTAP header"),
    ("bad_pktap_header_length", "PKTAP header length below 108 bytes"),
    ("truncated_ip_header", "frame ends inside the IPv4/IPv6 header"),
    ("bad_ip_version", "IP version field does not match the link layer's claim"),
    ("bad_ip_header_length", "IPv4 header length below 20 bytes"),
    ("bad_ip_total_length", "IPv4 total length below its header length"),
    ("ip_total_length_zero", "IP length 0 (segmentation offload): captured length used"),
    ("truncated_ip", "frame (not cut by a snaplen) shorter than the IP length"),
    ("truncated_ipv6_ext_header", "frame ends inside an IPv6 extension header"),
    ("ipv6_too_many_ext_headers", "more than 16 IPv6 extension headers"),
    ("ip_fragment_truncated", "fragment cut by the snaplen: decoded alone, not reassembled"),
    ("truncated_tcp_header", "frame ends inside the TCP header"),
    ("bad_tcp_header_length", "TCP data offset below 5 or beyond the segment"),
    ("truncated_udp_header", "frame ends inside the UDP header"),
    ("bad_udp_length", "UDP length below 8"),
    ("udp_length_mismatch", "UDP length differs from the IP payload length"),
    ("truncated_icmp_header", "frame ends inside the ICMP header"),
    ("ip_fragment_overlap", "fragment overlaps bytes received before (first kept)"),
    ("ip_fragment_inconsistent", "overlapping fragment bytes or datagram ends differ"),
    ("ip_fragment_timeout", "datagram dropped incomplete after the timeout"),
    ("ip_fragment_table_full", "oldest pending datagram evicted for a new one"),
    ("ip_fragment_too_large", "fragment ends past the maximum datagram size"),
    ("ip_fragment_too_many", "datagram in too many pieces"),
];

/// A malformed frame (decode.py `_Weird`): `decode` counts it and returns None.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weird {
    UnknownLinktype(u32),
    TruncatedEthernet,
    TruncatedVlanHeader,
    TooManyVlanTags,
    TruncatedPppoe,
    BadPppoeVersion,
    TruncatedPpp,
    TruncatedSll,
    TruncatedSll2,
    TruncatedNull,
    TruncatedPktap,
    BadPktapHeaderLength,
    TruncatedIpHeader,
    BadIpVersion,
    BadIpHeaderLength,
    BadIpTotalLength,
    TruncatedIpv6ExtHeader,
    Ipv6TooManyExtHeaders,
    TruncatedTcpHeader,
    BadTcpHeaderLength,
    TruncatedUdpHeader,
    TruncatedIcmpHeader,
}

impl Weird {
    /// decode.py's name for it (`WEIRDS`); None for `UnknownLinktype`, whose name carries
    /// the number (`count` formats it).
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Weird::UnknownLinktype(_) => return None,
            Weird::TruncatedEthernet => "truncated_ethernet",
            Weird::TruncatedVlanHeader => "truncated_vlan_header",
            Weird::TooManyVlanTags => "too_many_vlan_tags",
            Weird::TruncatedPppoe => "truncated_pppoe",
            Weird::BadPppoeVersion => "bad_pppoe_version",
            Weird::TruncatedPpp => "truncated_ppp",
            Weird::TruncatedSll => "truncated_sll",
            Weird::TruncatedSll2 => "truncated_sll2",
            Weird::TruncatedNull => "truncated_null",
            Weird::TruncatedPktap => "truncated_pktap",
            Weird::BadPktapHeaderLength => "bad_pktap_header_length",
            Weird::TruncatedIpHeader => "truncated_ip_header",
            Weird::BadIpVersion => "bad_ip_version",
            Weird::BadIpHeaderLength => "bad_ip_header_length",
            Weird::BadIpTotalLength => "bad_ip_total_length",
            Weird::TruncatedIpv6ExtHeader => "truncated_ipv6_ext_header",
            Weird::Ipv6TooManyExtHeaders => "ipv6_too_many_ext_headers",
            Weird::TruncatedTcpHeader => "truncated_tcp_header",
            Weird::BadTcpHeaderLength => "bad_tcp_header_length",
            Weird::TruncatedUdpHeader => "truncated_udp_header",
            Weird::TruncatedIcmpHeader => "truncated_icmp_header",
        })
    }

    /// Count it in `weird`.
    pub fn count(self, weird: &mut Weirds) {
        match self.name() {
            Some(name) => weird.add(name),
            None => {
                if let Weird::UnknownLinktype(n) = self {
                    weird.add(&format!("unknown_linktype_{}", n));
                }
            }
        }
    }
}

/// decode.py `decode`: decode one frame. None: not IP, a fragment held for reassembly, or
/// malformed (counted in `weird`, as are survivable anomalies of decoded frames).
///
/// An ARP frame (also None) is appended to `arp` when it is given. With `frags`, IPv4/IPv6
/// fragments are held until their datagram is complete, which is returned with the last
/// fragment's timestamp; without, each fragment is decoded alone (`fragmented` set,
/// transport ports only in the first). Python's `weird=None` is a scratch `Weirds` here.
pub fn decode(
    raw: &RawPacket<'_>,
    frags: Option<&mut FragmentTable>,
    weird: &mut Weirds,
    arp: Option<&mut Vec<ArpFrame>>,
) -> Option<Packet> {
    match try_decode(raw, frags, weird, arp) {
        Ok(pkt) => pkt,
        Err(w) => {
            w.count(weird);
            None
        }
    }
}

fn try_decode(
    raw: &RawPacket<'_>,
    frags: Option<&mut FragmentTable>,
    weird: &mut Weirds,
    arp: Option<&mut Vec<ArpFrame>>,
) -> Result<Option<Packet>, Weird> {
    let d = raw.data;
    let decoder = match link_decoder(raw.linktype) {
        Some(f) => f,
        None => return Err(Weird::UnknownLinktype(raw.linktype)),
    };
    // decode.py's untagged-Ethernet shortcut past the registry gives what `ether` gives.
    let link = match decoder(d, 0)? {
        Some(link) => link,
        None => return Ok(None),
    };
    let process = match (link.process, &raw.proc_) {
        (Process::None, Some(p)) => Process::Reader(p),
        (process, _) => process,
    };
    let frame = FrameInfo { ts: raw.ts, wirelen: raw.wirelen, iface: raw.iface, vlan: link.vlan, process, macs: link.macs };
    if link.ethertype == ETH_IPV4 {
        return ip::ipv4(&frame, d, link.offset, frags, weird);
    }
    if link.ethertype == ETH_IPV6 {
        return ip::ipv6(&frame, d, link.offset, frags, weird);
    }
    if let Some(arp) = arp {
        let data = d.get(link.offset..).unwrap_or(&[]);
        arp.push(ArpFrame { ts: raw.ts, data: data.to_vec(), macs: link.macs.to_vec() });
    }
    Ok(None)
}

/// decode.py `Decoder`: `decode` bound to one fragment table and one weird counter (one
/// per capture). ARP frames collect in `arp` until the caller takes them.
#[derive(Debug, Default)]
pub struct Decoder {
    pub frags: FragmentTable,
    pub weird: Weirds,
    pub arp: Vec<ArpFrame>,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    pub fn with_frags(frags: FragmentTable) -> Self {
        Decoder { frags, weird: Weirds::new(), arp: Vec::new() }
    }

    /// `Decoder.__call__`: decode into this decoder's table, weirds and ARP list.
    pub fn decode(&mut self, raw: &RawPacket<'_>) -> Option<Packet> {
        decode(raw, Some(&mut self.frags), &mut self.weird, Some(&mut self.arp))
    }

    /// The engine's shard path (`Engine._shard_decode`): this decoder's fragment table, but
    /// weirds counted into `weird` (the scratch counter the caller adds to `self.weird` when
    /// its shard owns the packet) and ARP frames kept only when `keep_arp`.
    pub fn decode_counting(&mut self, raw: &RawPacket<'_>, weird: &mut Weirds, keep_arp: bool) -> Option<Packet> {
        let arp = if keep_arp { Some(&mut self.arp) } else { None };
        decode(raw, Some(&mut self.frags), weird, arp)
    }

    /// `Decoder.finish`: end of capture: datagrams still incomplete count as timed out.
    pub fn finish(&mut self) {
        self.frags.flush(&mut self.weird);
    }
}

#[cfg(test)]
mod tests;
