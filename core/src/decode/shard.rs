//! Which of n shards a packet's flow belongs to (Python reference: `analyzer/engine.py`
//! `_mix`, `raw_shard`, `shard_of`): the same for both directions of a flow.

use super::ip::{PROTO_TCP, PROTO_UDP};
use crate::packet::{Packet, RawPacket};

/// engine.py `_mix`: the shard of a flow from its two endpoints packed as ints
/// (address << 16 | port).
///
/// Python computes `(((a ^ b) << 8 | proto) * 0x9E3779B97F4A7C15) >> 29 & 0xFFFFFFFF` on
/// unbounded ints. Bits 29..60 of a product depend only on the factors' low 61 bits, so
/// the product of the low 64 bits, wrapping, has the same bits there. `n` must be >= 1.
pub fn mix(a: u128, b: u128, proto: u8, n: u32) -> u32 {
    let x = (((a ^ b) << 8) | proto as u128) as u64;
    let h = (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 29) & 0xFFFF_FFFF;
    (h % n as u64) as u32
}

/// An address's bytes as a big-endian integer (Python `int.from_bytes(b)`), then
/// `<< 16 | port`; the bits above 128 are dropped, which `mix` never reads.
fn endpoint(addr: &[u8], port: u16) -> u128 {
    let mut v: u128 = 0;
    for &byte in addr {
        v = (v << 8) | byte as u128;
    }
    (v << 16) | port as u128
}

/// engine.py `raw_shard`: `shard_of` read straight off an untagged Ethernet IPv4/IPv6
/// TCP/UDP frame; None for any other frame (then the caller decodes to find out).
pub fn raw_shard(raw: &RawPacket<'_>, n: u32) -> Option<u32> {
    if raw.linktype != 1 {
        return None;
    }
    let d = raw.data;
    if d.len() < 38 {
        return None;
    }
    if d[12] == 8 && d[13] == 0 {
        if d[14] >> 4 != 4 || d[20] & 0x3F != 0 || d[21] != 0 {
            return None; // not v4, or a fragment (MF or an offset)
        }
        let proto = d[23];
        if proto != PROTO_TCP && proto != PROTO_UDP {
            return None;
        }
        let t = 14 + (d[14] & 0x0F) as usize * 4;
        let ports = d.get(t..t + 4)?;
        let sport = u16::from_be_bytes([ports[0], ports[1]]);
        let dport = u16::from_be_bytes([ports[2], ports[3]]);
        return Some(mix(endpoint(&d[26..30], sport), endpoint(&d[30..34], dport), proto, n));
    }
    if d[12] == 0x86 && d[13] == 0xDD {
        let proto = d[20];
        if (proto != PROTO_TCP && proto != PROTO_UDP) || d.len() < 58 || d[14] >> 4 != 6 {
            return None;
        }
        let sport = u16::from_be_bytes([d[54], d[55]]);
        let dport = u16::from_be_bytes([d[56], d[57]]);
        return Some(mix(endpoint(&d[22..38], sport), endpoint(&d[38..54], dport), proto, n));
    }
    None
}

/// engine.py `shard_of`: which of n shards a decoded packet's flow belongs to. ICMP errors
/// go with the flow whose header they quote, so they still find it.
pub fn shard_of(pkt: &Packet, n: u32) -> u32 {
    let proto = pkt.proto;
    if proto == PROTO_TCP || proto == PROTO_UDP {
        return mix(endpoint(pkt.src.as_bytes(), pkt.sport), endpoint(pkt.dst.as_bytes(), pkt.dport), proto, n);
    }
    if let Some(q) = pkt.icmp.as_ref().and_then(|i| i.quoted.as_ref()) {
        if q.proto == PROTO_TCP || q.proto == PROTO_UDP {
            return mix(endpoint(q.src.as_bytes(), q.sport), endpoint(q.dst.as_bytes(), q.dport), q.proto, n);
        }
    }
    mix(endpoint(pkt.src.as_bytes(), 0), endpoint(pkt.dst.as_bytes(), 0), proto, n)
}
