//! Unit tests of the decoder: small static frames asserting every field, the fragment
//! table's limits, the shard keys against values computed by `analyzer/engine.py`, and real
//! fixture captures against the Python decoder's counts. (The full differential check, every
//! field of every frame of every fixture plus mutated frames, is `core/tools/decode_ref.py`
//! with `examples/decode_dump.rs`.)

use super::*;
use crate::packet::{Addr, ProcessInfo, RawPacket};

fn raw(linktype: u32, data: &[u8]) -> RawPacket<'_> {
    RawPacket { ts: 1.5, linktype, data, wirelen: data.len() as u32, iface: 3, proc_: None }
}

/// Ethernet, IPv4 (id 0x1234, DF, ttl 64), UDP 5353 -> 53 with 4 payload bytes.
static ETH_UDP4: [u8; 46] = [
    0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00, //
    0x45, 0, 0, 32, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, //
    0x14, 0xE9, 0, 53, 0, 12, 0, 0, b'a', b'b', b'c', b'd',
];

#[test]
fn ethernet_ipv4_udp_every_field() {
    let mut dec = Decoder::new();
    let p = dec.decode(&raw(1, &ETH_UDP4)).expect("a packet");
    assert_eq!(p.ts, 1.5);
    assert_eq!((p.ip_version, p.proto, p.ttl, p.ip_id, p.df, p.ip_len), (4, 17, 64, Some(0x1234), true, 32));
    assert_eq!(p.src, Addr::v4([10, 0, 0, 1]));
    assert_eq!(p.dst, Addr::v4([10, 0, 0, 2]));
    assert_eq!((p.sport, p.dport, p.tcp_flags, p.seq, p.ack, p.win), (5353, 53, 0, 0, 0, 0));
    assert_eq!(p.payload, b"abcd");
    assert_eq!(p.payload_len, 4);
    assert!(p.tcp_options.is_empty() && p.icmp.is_none() && p.vlan.is_empty());
    assert_eq!((p.iface, p.proc_name.clone(), p.pid, p.fragmented), (3, None, None, false));
    assert_eq!(p.macs, &ETH_UDP4[..12]);
    assert!(dec.weird.is_empty());
}

#[test]
fn vlan_tags_and_their_limit() {
    let mut frame = ETH_UDP4[..12].to_vec();
    for i in 0..8u16 {
        frame.extend_from_slice(&[if i == 0 { 0x88 } else { 0x81 }, if i == 0 { 0xA8 } else { 0x00 }]);
        frame.extend_from_slice(&(0x3000 | i).to_be_bytes());
    }
    frame.extend_from_slice(&ETH_UDP4[12..]);
    let mut dec = Decoder::new();
    let p = dec.decode(&raw(1, &frame)).expect("8 tags decode");
    assert_eq!(p.vlan, vec![0, 1, 2, 3, 4, 5, 6, 7]);
    // A ninth tag is one too many.
    let mut nine = frame[..12].to_vec();
    nine.extend_from_slice(&[0x81, 0x00, 0x00, 0x09]);
    nine.extend_from_slice(&frame[12..]);
    assert!(dec.decode(&raw(1, &nine)).is_none());
    assert_eq!(dec.weird.get("too_many_vlan_tags"), 1);
    assert!(dec.decode(&raw(1, &frame[..16])).is_none());
    assert_eq!(dec.weird.get("truncated_vlan_header"), 1);
}

#[test]
fn short_frames_and_unknown_link_types_are_weirds() {
    let mut dec = Decoder::new();
    assert!(dec.decode(&raw(1, &ETH_UDP4[..13])).is_none());
    assert!(dec.decode(&raw(147, &ETH_UDP4)).is_none());
    assert!(dec.decode(&raw(1, &ETH_UDP4[..30])).is_none());
    assert!(dec.decode(&raw(113, &ETH_UDP4[..15])).is_none());
    assert!(dec.decode(&raw(258, &ETH_UDP4)).is_none());
    for (name, n) in [
        ("truncated_ethernet", 1),
        ("unknown_linktype_147", 1),
        ("truncated_ip_header", 1),
        ("truncated_sll", 1),
        ("truncated_pktap", 1),
    ] {
        assert_eq!(dec.weird.get(name), n, "{}", name);
    }
    // Every prefix of a frame decodes without panicking.
    for cut in 0..ETH_UDP4.len() {
        for linktype in [0, 1, 9, 12, 101, 108, 113, 228, 229, 258, 276] {
            dec.decode(&raw(linktype, &ETH_UDP4[..cut]));
        }
    }
}

#[test]
fn arp_frames_are_kept_with_their_macs() {
    let mut frame = ETH_UDP4[..12].to_vec();
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    let mut dec = Decoder::new();
    assert!(dec.decode(&raw(1, &frame)).is_none());
    assert_eq!(dec.arp.len(), 1);
    assert_eq!(dec.arp[0].data, vec![0, 1, 8, 0, 6, 4, 0, 1]);
    assert_eq!(dec.arp[0].macs, &ETH_UDP4[..12]);
    // The shard path keeps them only when asked.
    let mut scratch = Weirds::new();
    dec.decode_counting(&raw(1, &frame), &mut scratch, false);
    assert_eq!(dec.arp.len(), 1);
    dec.decode_counting(&raw(1, &frame[..13]), &mut scratch, true);
    assert_eq!(scratch.get("truncated_ethernet"), 1);
    assert!(dec.weird.is_empty());
}

fn pktap_header(dlt: u32, pid: i32, comm: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 108];
    h[0..4].copy_from_slice(&108u32.to_le_bytes());
    h[4..8].copy_from_slice(&1u32.to_le_bytes());
    h[8..12].copy_from_slice(&dlt.to_le_bytes());
    h[52..56].copy_from_slice(&pid.to_le_bytes());
    h[56..56 + comm.len()].copy_from_slice(comm);
    h
}

#[test]
fn pktap_names_the_process() {
    let mut frame = pktap_header(1, 4242, b"Safari\0junk");
    frame.extend_from_slice(&ETH_UDP4);
    let reader_proc = ProcessInfo { pid: Some(1), name: Some("reader".to_string()), epid: None, ename: None };
    let mut r = raw(258, &frame);
    r.proc_ = Some(reader_proc.clone());
    let mut dec = Decoder::new();
    let p = dec.decode(&r).expect("a packet");
    assert_eq!((p.proc_name.as_deref(), p.pid), (Some("Safari"), Some(4242)));
    assert_eq!(p.macs, &ETH_UDP4[..12]);
    // Negative pid, invalid UTF-8 (replaced, as Python's "replace"), empty name.
    let mut frame = pktap_header(1, -1, b"caf\xc3");
    frame.extend_from_slice(&ETH_UDP4);
    let p = dec.decode(&raw(258, &frame)).expect("a packet");
    assert_eq!((p.proc_name.as_deref(), p.pid), (Some("caf\u{fffd}"), None));
    let mut frame = pktap_header(1, 7, b"");
    frame.extend_from_slice(&ETH_UDP4);
    assert_eq!(dec.decode(&raw(258, &frame)).expect("a packet").proc_name, None);
    // Without PKTAP the reader's process stays.
    let mut r = raw(1, &ETH_UDP4);
    r.proc_ = Some(reader_proc);
    assert_eq!(dec.decode(&r).expect("a packet").proc_name.as_deref(), Some("reader"));
    // PKTAP inside PKTAP is no link type.
    let mut frame = pktap_header(258, 1, b"x");
    frame.extend_from_slice(&ETH_UDP4);
    assert!(dec.decode(&raw(258, &frame)).is_none());
    assert_eq!(dec.weird.get("unknown_linktype_258"), 1);
}

/// IPv4 (raw, linktype 228) ICMP port unreachable quoting a UDP datagram.
#[test]
fn icmp_error_quotes_the_offending_header() {
    let mut quoted = ETH_UDP4[14..].to_vec();
    quoted.truncate(28);
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quoted);
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 1, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1];
    let total = (ip.len() + icmp.len()) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&icmp);
    let mut dec = Decoder::new();
    let p = dec.decode(&raw(228, &ip)).expect("a packet");
    let i = p.icmp.clone().expect("icmp");
    assert_eq!((i.type_, i.code, i.mtu), (3, 3, 0));
    let q = i.quoted.expect("quoted");
    assert_eq!((q.ip_version, q.proto, q.sport, q.dport, q.seq, q.ip_id), (4, 17, 5353, 53, 0, Some(0x1234)));
    assert_eq!((q.src, q.dst), (Addr::v4([10, 0, 0, 1]), Addr::v4([10, 0, 0, 2])));
    // Shard: the error goes with the flow it quotes (engine.py shard_of).
    let flow = dec.decode(&raw(1, &ETH_UDP4)).expect("a packet");
    assert_eq!(shard_of(&p, 7), shard_of(&flow, 7));
}

fn ipv4_fragment(ident: u16, offset: usize, more: bool, payload: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
    ip[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&ident.to_be_bytes());
    let frag = (offset >> 3) as u16 | if more { 0x2000 } else { 0 };
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(payload);
    ip
}

#[test]
fn ipv4_fragments_reassemble_in_any_order() {
    let udp: Vec<u8> = [&ETH_UDP4[34..42], &[7u8; 16][..]].concat();
    let mut udp = udp;
    udp[4..6].copy_from_slice(&24u16.to_be_bytes());
    let a = ipv4_fragment(9, 0, true, &udp[..16]);
    let b = ipv4_fragment(9, 16, false, &udp[16..]);
    let mut dec = Decoder::new();
    assert!(dec.decode(&raw(228, &b)).is_none());
    let p = dec.decode(&raw(228, &a)).expect("reassembled");
    assert_eq!((p.sport, p.dport, p.ip_len, p.payload_len, p.fragmented), (5353, 53, 44, 16, true));
    assert_eq!(p.payload, vec![7u8; 16]);
    assert!(dec.frags.is_empty());
    // A lone later piece without a table: no transport header.
    let p = decode(&raw(228, &b), None, &mut Weirds::new(), None).expect("alone");
    assert_eq!((p.sport, p.payload_len, p.fragmented), (0, 8, true));
    // Incomplete at the end: a timeout.
    dec.decode(&raw(228, &a));
    dec.finish();
    assert_eq!(dec.weird.get("ip_fragment_timeout"), 1);
}

fn key(id: u32) -> FragKey {
    FragKey { version: 4, src: Addr::v4([1, 1, 1, 1]), dst: Addr::v4([2, 2, 2, 2]), proto: 17, id }
}

#[test]
fn fragment_table_overlaps_first_kept() {
    let mut t = FragmentTable::default();
    let mut w = Weirds::new();
    assert!(t.add(key(1), 0, true, b"AAAAAAAA", 0.0, [1, 0, 0, 0], &mut w).is_none());
    assert!(t.add(key(1), 4, true, b"BBBBBBBB", 0.0, [2, 0, 0, 0], &mut w).is_none());
    let (meta, data) = t.add(key(1), 12, false, b"CC", 0.0, [3, 0, 0, 0], &mut w).expect("complete");
    assert_eq!(meta, [1, 0, 0, 0]);
    assert_eq!(data, b"AAAAAAAABBBBCC");
    assert_eq!((w.get("ip_fragment_overlap"), w.get("ip_fragment_inconsistent")), (1, 1));
    assert_eq!(t.held, 0);
}

#[test]
fn fragment_table_limits() {
    let mut w = Weirds::new();
    let mut t = FragmentTable::new(2, 30.0, 100, 3, 1 << 20);
    t.add(key(1), 8, true, b"x", 0.0, [0; 4], &mut w);
    t.add(key(2), 8, true, b"x", 0.0, [0; 4], &mut w);
    t.add(key(3), 8, true, b"x", 0.0, [0; 4], &mut w);
    assert_eq!((w.get("ip_fragment_table_full"), t.len()), (1, 2));
    t.add(key(3), 96, true, b"12345", 0.0, [0; 4], &mut w);
    assert_eq!(w.get("ip_fragment_too_large"), 1);
    for off in [0, 16, 24, 32] {
        t.add(key(4), off, true, b"x", 0.0, [0; 4], &mut w);
    }
    assert_eq!(w.get("ip_fragment_too_many"), 1);
    t.add(key(5), 8, true, b"x", 30.5, [0; 4], &mut w);
    assert_eq!(w.get("ip_fragment_timeout"), 1);
    let mut t = FragmentTable::new(10, 30.0, 65535, 10, 100);
    t.add(key(1), 0, true, &[0; 60], 0.0, [0; 4], &mut w);
    t.add(key(2), 0, true, &[0; 60], 0.0, [0; 4], &mut w);
    assert_eq!((w.get("ip_fragment_table_full"), t.len(), t.held), (2, 1, 60));
}

/// Values computed with `analyzer.engine._mix` (Python's unbounded ints).
#[test]
fn mix_matches_python() {
    let a6 = (0x2001_0db8_0000_0000_0000_0000_0000_0001u128 << 16) | 443;
    let b6 = (0x2001_0db8_0000_0000_0000_0000_0000_00ffu128 << 16) | 51515;
    assert_eq!(shard::mix(a6, b6, 6, 1000003), 828253);
    assert_eq!(shard::mix(a6, b6, 17, 7), 4);
    assert_eq!(shard::mix(b6, a6, 6, 1000003), 828253);
    let a4 = (0x0A00_0001u128 << 16) | 53;
    let b4 = (0xC0A8_0114u128 << 16) | 5353;
    assert_eq!(shard::mix(a4, b4, 17, 1000003), 803653);
    assert_eq!(shard::mix(a4, b4, 17, 64), 15);
    assert_eq!(shard::mix(0, 0, 1, 5), 1);
    // (1 << 144) - 1 in Python: the bits above 128 never reach the result.
    assert_eq!(shard::mix(u128::MAX, 0, 255, 4294967295), 239350324);
    let r = raw(1, &ETH_UDP4);
    let p = Decoder::new().decode(&r).expect("a packet");
    for n in [1, 2, 3, 64, 1000003] {
        assert_eq!(raw_shard(&r, n), Some(shard_of(&p, n)));
    }
}

// --- real captures ------------------------------------------------------------------

/// Frames of a little-endian microsecond classic pcap (every fixture used here is one).
type Frames = Vec<(f64, Vec<u8>, u32)>;

fn pcap_frames(path: &str) -> Option<(u32, Frames)> {
    let buf = std::fs::read(path).ok()?;
    let le32 = |at: usize| u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
    assert_eq!(&buf[..4], b"\xd4\xc3\xb2\xa1");
    let linktype = le32(20);
    let mut frames = Vec::new();
    let mut pos = 24;
    while pos + 16 <= buf.len() {
        let (sec, usec, caplen, wirelen) = (le32(pos), le32(pos + 4), le32(pos + 8) as usize, le32(pos + 12));
        let data = buf[pos + 16..pos + 16 + caplen].to_vec();
        frames.push((sec as f64 + usec as f64 / 1e6, data, wirelen));
        pos += 16 + caplen;
    }
    Some((linktype, frames))
}

/// (packets decoded, frames without one, weirds) as `analyzer.capture.decode.Decoder` gives
/// them for the fixture (numbers from `decode_ref.py ref`).
#[test]
fn fixture_captures_decode_as_python_does() {
    type Case<'a> = (&'a str, usize, usize, &'a [(&'a str, u64)]);
    let cases: [Case<'_>; 6] = [
        ("ipv4_frags", 2, 5, &[("ip_fragment_inconsistent", 2), ("ip_fragment_overlap", 2), ("ip_fragment_timeout", 1)]),
        ("pktap", 3, 1, &[]),
        ("qinq", 3, 0, &[]),
        ("pppoe", 2, 2, &[]),
        ("icmp_errors", 6, 0, &[]),
        ("ipv6_frag_ext", 4, 1, &[]),
    ];
    for (name, packets, nones, weirds) in cases.iter() {
        let path = format!("{}/../tests/fixtures/crafted/{}.pcap", env!("CARGO_MANIFEST_DIR"), name);
        let (linktype, frames) = pcap_frames(&path).expect("the fixture capture");
        let mut dec = Decoder::new();
        let (mut got, mut none) = (0, 0);
        for (ts, data, wirelen) in &frames {
            let r = RawPacket { ts: *ts, linktype, data, wirelen: *wirelen, iface: 0, proc_: None };
            match dec.decode(&r) {
                Some(_) => got += 1,
                None => none += 1,
            }
        }
        dec.finish();
        assert_eq!((got, none), (*packets, *nones), "{}", name);
        let expected: Vec<(String, u64)> = weirds.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let counted: Vec<(String, u64)> = dec.weird.0.iter().map(|(k, v)| (k.clone(), *v)).collect();
        assert_eq!(counted, expected, "{}", name);
    }
}

#[test]
fn every_weird_name_is_listed() {
    let listed: Vec<&str> = WEIRDS.iter().map(|(name, _)| *name).collect();
    let mut w = Weirds::new();
    for weird in [
        Weird::TruncatedEthernet,
        Weird::TruncatedVlanHeader,
        Weird::TooManyVlanTags,
        Weird::TruncatedPppoe,
        Weird::BadPppoeVersion,
        Weird::TruncatedPpp,
        Weird::TruncatedSll,
        Weird::TruncatedSll2,
        Weird::TruncatedNull,
        Weird::TruncatedPktap,
        Weird::BadPktapHeaderLength,
        Weird::TruncatedIpHeader,
        Weird::BadIpVersion,
        Weird::BadIpHeaderLength,
        Weird::BadIpTotalLength,
        Weird::TruncatedIpv6ExtHeader,
        Weird::Ipv6TooManyExtHeaders,
        Weird::TruncatedTcpHeader,
        Weird::BadTcpHeaderLength,
        Weird::TruncatedUdpHeader,
        Weird::TruncatedIcmpHeader,
    ] {
        let name = weird.name().expect("a fixed name");
        assert!(listed.contains(&name), "{}", name);
        weird.count(&mut w);
    }
    Weird::UnknownLinktype(7).count(&mut w);
    assert_eq!(w.get("unknown_linktype_7"), 1);
}
