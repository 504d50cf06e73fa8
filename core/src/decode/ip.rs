//! IPv4, IPv6 (with extension headers and fragments) and the transport headers (TCP, UDP,
//! ICMP/ICMPv6 with the header an error quotes). Mirrors the "IP and transport" section of
//! `analyzer/capture/decode.py` (`_ipv4`, `_ipv6`, `_transport`, `_tcp`, `_quoted`).

use super::ipfrag::{FragKey, FragmentTable};
use super::link::{Process, VlanTags};
use super::wire::{be16, be32, byte, header, py_slice};
use super::Weird;
use crate::packet::{Addr, IcmpInfo, Packet, Quoted};
use crate::weird::Weirds;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
const PROTO_FRAGMENT: u8 = 44;
const PROTO_AH: u8 = 51;
pub const PROTO_ICMPV6: u8 = 58;
const PROTO_NONE: u8 = 59;
/// decode.py `MAX_IPV6_EXT_HEADERS`.
const MAX_IPV6_EXT_HEADERS: u32 = 16;

/// decode.py `_V6_EXT`: IPv6 extension headers that share the (next header, length in
/// 8-octet units) layout, plus the fragment header and AH; ESP ends the walk (opaque).
fn is_v6_ext(proto: u8) -> bool {
    matches!(proto, 0 | 43 | PROTO_FRAGMENT | PROTO_AH | 60 | 135 | 139 | 140)
}

/// decode.py `_ICMP4_ERRORS`.
fn is_icmp4_error(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

/// decode.py `_ICMP6_ERRORS`.
fn is_icmp6_error(t: u8) -> bool {
    matches!(t, 1..=4)
}

/// decode.py `_PORTS_PROTOS`: TCP, UDP, SCTP, UDP-Lite.
fn has_ports(proto: u8) -> bool {
    matches!(proto, PROTO_TCP | PROTO_UDP | 132 | 136)
}

/// Byte offsets of the IPv4 header (decode.py `_IP4`: `!BBHHHBBH4s4s`).
mod ipv4_field {
    pub const VHL: usize = 0;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTO: usize = 9;
    pub const SRC: std::ops::Range<usize> = 12..16;
    pub const DST: std::ops::Range<usize> = 16..20;
    pub const LEN: usize = 20;
}

/// Byte offsets of the IPv6 header (decode.py `_IP6`: `!IHBB16s16s`).
mod ipv6_field {
    pub const VTF: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: std::ops::Range<usize> = 8..24;
    pub const DST: std::ops::Range<usize> = 24..40;
    pub const LEN: usize = 40;
}

/// Byte offsets of the TCP header (decode.py `_TCP`: `!HHIIBBH`).
mod tcp_field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const LEN: usize = 20;
}

/// Byte offsets of the UDP header (decode.py `_UDP`: `!HHH`).
mod udp_field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const LEN: usize = 8;
}

fn addr4(b: &[u8; 20], r: std::ops::Range<usize>) -> Addr {
    let s = &b[r];
    Addr::v4([s[0], s[1], s[2], s[3]])
}

fn addr6(b: &[u8; 40], r: std::ops::Range<usize>) -> Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[r]);
    Addr::v6(a)
}

/// What the frame says besides its IP datagram: copied into every `Packet` it yields.
pub struct FrameInfo<'a> {
    pub ts: f64,
    pub wirelen: u32,
    pub iface: u32,
    pub vlan: VlanTags,
    pub process: Process<'a>,
    pub macs: &'a [u8],
}

/// The IP layer's share of a `Packet`.
struct IpFields {
    version: u8,
    src: Addr,
    dst: Addr,
    proto: u8,
    ttl: u8,
    ip_id: Option<u32>,
    df: bool,
    ip_len: usize,
    fragmented: bool,
}

/// decode.py `_Transport`: sport, dport, tcp_flags, seq, ack, win, tcp_options, payload,
/// payload_len, icmp.
struct Transport<'b> {
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    win: u16,
    options: &'b [u8],
    payload: &'b [u8],
    payload_len: usize,
    icmp: Option<IcmpInfo>,
}

impl<'b> Transport<'b> {
    /// No transport header: the bytes are all payload (unknown protocol, a later fragment).
    fn opaque(payload: &'b [u8], payload_len: usize) -> Transport<'b> {
        Transport { sport: 0, dport: 0, flags: 0, seq: 0, ack: 0, win: 0, options: &[], payload, payload_len, icmp: None }
    }
}

fn packet(f: &FrameInfo<'_>, ip: IpFields, t: Transport<'_>) -> Packet {
    Packet {
        ts: f.ts,
        ip_version: ip.version,
        src: ip.src,
        dst: ip.dst,
        proto: ip.proto,
        ttl: ip.ttl,
        ip_id: ip.ip_id,
        df: ip.df,
        ip_len: ip.ip_len as u32,
        sport: t.sport,
        dport: t.dport,
        tcp_flags: t.flags,
        seq: t.seq,
        ack: t.ack,
        win: t.win,
        tcp_options: t.options.to_vec(),
        payload: t.payload.to_vec(),
        payload_len: t.payload_len as u32,
        icmp: t.icmp,
        vlan: f.vlan.as_slice().to_vec(),
        iface: f.iface,
        proc_name: f.process.name(),
        pid: f.process.pid(),
        fragmented: ip.fragmented,
        macs: f.macs.to_vec(),
    }
}

/// decode.py `_tcp`: the TCP header at d[p..]: the checks, then its fields and length.
fn tcp(d: &[u8], p: usize, cap_end: usize, end: usize) -> Result<Transport<'_>, Weird> {
    if cap_end < p + tcp_field::LEN {
        return Err(Weird::TruncatedTcpHeader);
    }
    let h = header::<{ tcp_field::LEN }>(d, p, Weird::TruncatedTcpHeader)?;
    let thl = ((h[tcp_field::DATA_OFFSET] >> 4) as usize) << 2;
    if thl < 20 || p + thl > end {
        return Err(Weird::BadTcpHeaderLength);
    }
    if p + thl > cap_end {
        return Err(Weird::TruncatedTcpHeader);
    }
    Ok(Transport {
        sport: be16(h, tcp_field::SRC_PORT),
        dport: be16(h, tcp_field::DST_PORT),
        flags: h[tcp_field::FLAGS],
        seq: be32(h, tcp_field::SEQ),
        ack: be32(h, tcp_field::ACK),
        win: be16(h, tcp_field::WINDOW),
        options: py_slice(d, p + 20, p + thl),
        payload: py_slice(d, p + thl, cap_end),
        payload_len: end - p - thl,
        icmp: None,
    })
}

/// decode.py `_transport`: the transport header at b[p..wire_end] (captured up to cap_end).
/// `whole` is false for a lone fragment, whose UDP length cannot be checked.
fn transport<'b>(
    proto: u8,
    b: &'b [u8],
    p: usize,
    mut cap_end: usize,
    mut wire_end: usize,
    whole: bool,
    weird: &mut Weirds,
) -> Result<Transport<'b>, Weird> {
    if proto == PROTO_TCP {
        return tcp(b, p, cap_end, wire_end);
    }
    if proto == PROTO_UDP {
        if cap_end < p + udp_field::LEN {
            return Err(Weird::TruncatedUdpHeader);
        }
        let h = header::<{ udp_field::LEN }>(b, p, Weird::TruncatedUdpHeader)?;
        let ulen = be16(h, udp_field::LENGTH) as usize;
        if whole && ulen != wire_end - p {
            if ulen == 0 {
                // jumbogram or segmentation offload: the IP length rules
            } else if ulen < 8 {
                weird.add("bad_udp_length");
            } else {
                weird.add("udp_length_mismatch");
                if p + ulen < wire_end {
                    // the rest is link-layer padding
                    wire_end = p + ulen;
                    cap_end = cap_end.min(wire_end);
                }
            }
        }
        let mut t = Transport::opaque(py_slice(b, p + 8, cap_end), wire_end - p - 8);
        t.sport = be16(h, udp_field::SRC_PORT);
        t.dport = be16(h, udp_field::DST_PORT);
        return Ok(t);
    }
    if proto == PROTO_ICMP || proto == PROTO_ICMPV6 {
        if cap_end < p + 8 {
            return Err(Weird::TruncatedIcmpHeader);
        }
        let h = header::<8>(b, p, Weird::TruncatedIcmpHeader)?;
        let (itype, code, rest) = (h[0], h[1], be32(h, 4));
        let mut quoted = None;
        let mut mtu = 0;
        if proto == PROTO_ICMP {
            if is_icmp4_error(itype) {
                quoted = quote(b, p + 8, cap_end, 4);
                if itype == 3 && code == 4 {
                    mtu = rest & 0xFFFF;
                }
            }
        } else if is_icmp6_error(itype) {
            quoted = quote(b, p + 8, cap_end, 6);
            if itype == 2 {
                mtu = rest;
            }
        }
        let mut t = Transport::opaque(py_slice(b, p + 8, cap_end), wire_end - p - 8);
        t.icmp = Some(IcmpInfo { type_: itype, code, rest, mtu, quoted });
        return Ok(t);
    }
    Ok(Transport::opaque(py_slice(b, p, cap_end), wire_end - p))
}

/// decode.py `_quoted`: the IP and transport header quoted in an ICMP error, or None if
/// unreadable. The quote is often cut short, so every read is checked against `end`.
fn quote(b: &[u8], p: usize, end: usize, version: u8) -> Option<Quoted> {
    let b = py_slice(b, 0, end); // nothing past `end` belongs to the quote
    let src;
    let dst;
    let mut proto;
    let mut q;
    let mut ip_id;
    if version == 4 {
        if end < p + 20 || byte(b, p) >> 4 != 4 {
            return None;
        }
        let h = header::<{ ipv4_field::LEN }>(b, p, Weird::TruncatedIpHeader).ok()?;
        src = addr4(h, ipv4_field::SRC);
        dst = addr4(h, ipv4_field::DST);
        proto = h[ipv4_field::PROTO];
        ip_id = Some(be16(h, ipv4_field::IDENT) as u32);
        q = p + (((h[ipv4_field::VHL] & 15) as usize) << 2);
    } else {
        if end < p + 40 || byte(b, p) >> 4 != 6 {
            return None;
        }
        let h = header::<{ ipv6_field::LEN }>(b, p, Weird::TruncatedIpHeader).ok()?;
        src = addr6(h, ipv6_field::SRC);
        dst = addr6(h, ipv6_field::DST);
        proto = h[ipv6_field::NEXT_HEADER];
        ip_id = None;
        q = p + 40;
        for _ in 0..MAX_IPV6_EXT_HEADERS {
            if !is_v6_ext(proto) || end < q + 8 {
                break;
            }
            let ext = header::<8>(b, q, Weird::TruncatedIpv6ExtHeader).ok()?;
            let step = if proto == PROTO_FRAGMENT {
                ip_id = Some(be32(ext, 4));
                8
            } else if proto == PROTO_AH {
                (ext[1] as usize + 2) << 2
            } else {
                (ext[1] as usize + 1) << 3
            };
            proto = ext[0];
            q += step;
        }
    }
    let (mut sport, mut dport, mut seq) = (0, 0, 0);
    if has_ports(proto) && end >= q + 4 {
        if proto == PROTO_TCP && end >= q + 8 {
            let h = header::<8>(b, q, Weird::TruncatedTcpHeader).ok()?;
            sport = be16(h, 0);
            dport = be16(h, 2);
            seq = be32(h, 4);
        } else {
            let h = header::<4>(b, q, Weird::TruncatedUdpHeader).ok()?;
            sport = be16(h, 0);
            dport = be16(h, 2);
        }
    }
    Some(Quoted { ip_version: version, src, dst, proto, sport, dport, seq, ip_id })
}

/// decode.py `_ipv4`.
pub fn ipv4(
    f: &FrameInfo<'_>,
    d: &[u8],
    off: usize,
    frags: Option<&mut FragmentTable>,
    weird: &mut Weirds,
) -> Result<Option<Packet>, Weird> {
    let n = d.len();
    if n < off + 20 {
        return Err(Weird::TruncatedIpHeader);
    }
    let h = header::<{ ipv4_field::LEN }>(d, off, Weird::TruncatedIpHeader)?;
    let vhl = h[ipv4_field::VHL];
    if vhl != 0x45 {
        // the usual version 4, 20-byte header: one test
        if vhl >> 4 != 4 {
            return Err(Weird::BadIpVersion);
        }
        if vhl & 15 < 5 {
            return Err(Weird::BadIpHeaderLength);
        }
        if n - off < ((vhl & 15) as usize) << 2 {
            return Err(Weird::TruncatedIpHeader);
        }
    }
    let hl = ((vhl & 15) as usize) << 2;
    let mut total = be16(h, ipv4_field::TOTAL_LEN) as usize;
    let ip_id = be16(h, ipv4_field::IDENT);
    let fragf = be16(h, ipv4_field::FRAG);
    let ttl = h[ipv4_field::TTL];
    let proto = h[ipv4_field::PROTO];
    let src = addr4(h, ipv4_field::SRC);
    let dst = addr4(h, ipv4_field::DST);
    if total < hl {
        if total != 0 {
            return Err(Weird::BadIpTotalLength);
        }
        total = n - off;
        weird.add("ip_total_length_zero");
    }
    let end = off + total;
    let mut cap_end = end;
    if end > n {
        cap_end = n;
        if f.wirelen as u64 <= n as u64 {
            weird.add("truncated_ip"); // not a snaplen cut: the frame lies
        }
    }
    let p = off + hl;
    let ip = |ttl: u8, ip_id: u16, fragf: u16, total: usize, fragmented: bool| IpFields {
        version: 4,
        src,
        dst,
        proto,
        ttl,
        ip_id: Some(ip_id as u32),
        df: fragf & 0x4000 != 0,
        ip_len: total,
        fragmented,
    };
    if fragf & 0x3FFF == 0 {
        // Neither MF nor an offset. The common cases (TCP; UDP with a consistent length)
        // are decode.py's inline fast paths, which give what `transport` gives.
        let t = transport(proto, d, p, cap_end, end, true, weird)?;
        return Ok(Some(packet(f, ip(ttl, ip_id, fragf, total, false), t)));
    }
    let foff = ((fragf & 0x1FFF) as usize) << 3;
    match frags {
        Some(frags) if cap_end == end => {
            let key = FragKey { version: 4, src, dst, proto, id: ip_id as u32 };
            let meta = [ttl as u32, ip_id as u32, fragf as u32, hl as u32];
            let data = py_slice(d, p, end);
            let (meta, payload) = match frags.add(key, foff, fragf & 0x2000 != 0, data, f.ts, meta, weird) {
                Some(got) => got,
                None => return Ok(None),
            };
            let [ttl, ip_id, fragf, hl] = meta;
            let len = payload.len();
            let t = transport(proto, &payload, 0, len, len, true, weird)?;
            let ipf = ip(ttl as u8, ip_id as u16, fragf as u16, hl as usize + len, true);
            Ok(Some(packet(f, ipf, t)))
        }
        frags => {
            if frags.is_some() {
                weird.add("ip_fragment_truncated");
            }
            let t = if foff != 0 {
                // a later piece, alone: no transport header here
                Transport::opaque(py_slice(d, p, cap_end), end - p)
            } else {
                transport(proto, d, p, cap_end, end, false, weird)?
            };
            Ok(Some(packet(f, ip(ttl, ip_id, fragf, total, true), t)))
        }
    }
}

/// The IPv6 header's fields and the extension walk's state (decode.py `_ipv6` locals).
struct V6 {
    src: Addr,
    dst: Addr,
    hlim: u8,
    ip_len: usize,
    ip_id: Option<u32>,
    fragmented: bool,
    hops: u32,
}

impl V6 {
    fn ip(&self, proto: u8, fragmented: bool) -> IpFields {
        IpFields {
            version: 6,
            src: self.src,
            dst: self.dst,
            proto,
            ttl: self.hlim,
            ip_id: self.ip_id,
            df: true,
            ip_len: self.ip_len,
            fragmented,
        }
    }
}

/// decode.py `_ipv6`.
pub fn ipv6(
    f: &FrameInfo<'_>,
    d: &[u8],
    off: usize,
    frags: Option<&mut FragmentTable>,
    weird: &mut Weirds,
) -> Result<Option<Packet>, Weird> {
    let n = d.len();
    if n < off + 40 {
        return Err(Weird::TruncatedIpHeader);
    }
    let h = header::<{ ipv6_field::LEN }>(d, off, Weird::TruncatedIpHeader)?;
    if be32(h, ipv6_field::VTF) >> 28 != 6 {
        return Err(Weird::BadIpVersion);
    }
    let mut plen = be16(h, ipv6_field::PAYLOAD_LEN) as usize;
    let proto = h[ipv6_field::NEXT_HEADER];
    let p = off + 40;
    if plen == 0 && proto != PROTO_NONE && n > p {
        plen = n - p; // jumbogram or segmentation offload
        weird.add("ip_total_length_zero");
    }
    let end = p + plen;
    let mut cap_end = end;
    if end > n {
        cap_end = n;
        if f.wirelen as u64 <= n as u64 {
            weird.add("truncated_ip");
        }
    }
    let v6 = V6 {
        src: addr6(h, ipv6_field::SRC),
        dst: addr6(h, ipv6_field::DST),
        hlim: h[ipv6_field::HOP_LIMIT],
        ip_len: 40 + plen,
        ip_id: None,
        fragmented: false,
        hops: 0,
    };
    // decode.py's inline TCP/UDP fast paths give what the walk gives for these: skip to it.
    ipv6_walk(f, d, off, p, cap_end, end, proto, v6, frags, weird)
}

/// The extension header walk of decode.py `_ipv6` from `p` with next header `proto`, then
/// the transport. After reassembly it goes on over the reassembled payload (`d` is then
/// that buffer, `off` unused).
#[allow(clippy::too_many_arguments)]
fn ipv6_walk(
    f: &FrameInfo<'_>,
    d: &[u8],
    off: usize,
    mut p: usize,
    cap_end: usize,
    end: usize,
    mut proto: u8,
    mut v6: V6,
    mut frags: Option<&mut FragmentTable>,
    weird: &mut Weirds,
) -> Result<Option<Packet>, Weird> {
    let mut whole = true;
    while is_v6_ext(proto) {
        v6.hops += 1;
        if v6.hops > MAX_IPV6_EXT_HEADERS {
            return Err(Weird::Ipv6TooManyExtHeaders);
        }
        if cap_end < p + 8 {
            return Err(Weird::TruncatedIpv6ExtHeader);
        }
        let ext = header::<8>(d, p, Weird::TruncatedIpv6ExtHeader)?;
        if proto != PROTO_FRAGMENT {
            let step = if proto == PROTO_AH { (ext[1] as usize + 2) << 2 } else { (ext[1] as usize + 1) << 3 };
            proto = ext[0];
            p += step;
            if p > cap_end {
                return Err(Weird::TruncatedIpv6ExtHeader);
            }
            continue;
        }
        let nxt = ext[0];
        let fo = be16(ext, 2);
        let ip_id = be32(ext, 4);
        v6.ip_id = Some(ip_id);
        let foff = (fo & 0xFFF8) as usize;
        let more = fo & 1 != 0;
        proto = nxt;
        p += 8;
        if foff == 0 && !more {
            continue; // atomic fragment (RFC 6946): nothing to reassemble
        }
        if cap_end == end && !v6.fragmented {
            if let Some(table) = frags.take() {
                v6.fragmented = true;
                let meta = [v6.hlim as u32, nxt as u32, (p - 8 - off) as u32, 0];
                let key = FragKey { version: 6, src: v6.src, dst: v6.dst, proto: 0, id: ip_id };
                let data = py_slice(d, p, end);
                let (meta, payload) = match table.add(key, foff, more, data, f.ts, meta, weird) {
                    Some(got) => got,
                    None => return Ok(None),
                };
                v6.hlim = meta[0] as u8;
                let unfragmentable = meta[2] as usize;
                let len = payload.len();
                v6.ip_len = unfragmentable + len;
                // On over the reassembled payload. The table stays given, as in Python: a
                // second fragment header there counts "ip_fragment_truncated" (below).
                return ipv6_walk(f, &payload, 0, 0, len, len, meta[1] as u8, v6, Some(table), weird);
            }
        }
        if frags.is_some() {
            weird.add("ip_fragment_truncated");
        }
        v6.fragmented = true;
        whole = false;
        if foff != 0 {
            // a later piece, alone: no transport header here
            let t = Transport::opaque(py_slice(d, p, cap_end), end - p);
            return Ok(Some(packet(f, v6.ip(proto, true), t)));
        }
    }
    let t = transport(proto, d, p, cap_end, end, whole, weird)?;
    let fragmented = v6.fragmented;
    Ok(Some(packet(f, v6.ip(proto, fragmented), t)))
}
