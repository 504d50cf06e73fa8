//! What the core hands Python: one byte buffer of events in the order the Python engine
//! would have acted on them (a DNS message before the flows its packet finished, as
//! `Engine._feed` does). Python reads it back in `analyzer/native/events.py`; the two
//! files are one format and change together.
//!
//! Little-endian throughout. Optional numbers: f64 NaN, or an i64 of -1, means None (no
//! value on the wire is ever NaN or negative where this is used). Lengths: u16 for lists the
//! config caps below 65536, u32 for byte strings.

use crate::packet::{Addr, ArpFrame, Packet};
use crate::record::{DirectionStats, FlowRecord, StreamData};

pub const EV_FLOW: u8 = 1;
pub const EV_DNS: u8 = 2;
pub const EV_ARP: u8 = 3;
pub const EV_NDP: u8 = 4;

/// `DirectionStats.ip_id_pattern` and `.state` go as their index in these lists (events.py
/// has the same lists); a name not listed goes as `UNLISTED` and its text.
pub const PATTERNS: &[&str] = &["none", "single", "zero", "constant", "incrementing", "random"];
pub const STATES: &[&str] = &[
    "INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED", "RESET", "active", "inactive",
];
pub const UNLISTED: u8 = 255;

fn code(list: &[&str], name: &str) -> u8 {
    list.iter().position(|x| *x == name).map(|i| i as u8).unwrap_or(UNLISTED)
}

/// Appends values to the event buffer.
pub struct Out<'a>(pub &'a mut Vec<u8>);

impl<'a> Out<'a> {
    fn u8(&mut self, v: u8) {
        self.0.push(v)
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes())
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes())
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes())
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes())
    }
    fn opt_f64(&mut self, v: Option<f64>) {
        self.f64(v.unwrap_or(f64::NAN))
    }
    fn opt_u(&mut self, v: Option<u64>) {
        self.i64(v.map(|x| x as i64).unwrap_or(-1))
    }
    fn bool(&mut self, v: bool) {
        self.u8(v as u8)
    }
    /// A list length; callers keep lists within the u16 range (config caps).
    fn count(&mut self, n: usize) {
        self.u32(n as u32)
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b)
    }
    fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.u32(u32::MAX),
            Some(b) => self.bytes(b),
        }
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes())
    }
    fn opt_str(&mut self, s: Option<&str>) {
        self.opt_bytes(s.map(|s| s.as_bytes()))
    }
    /// An address in a fixed 17 bytes (length, then 16 bytes, zero-padded): part of a fixed struct.
    fn addr17(&mut self, a: &Addr) {
        let b = a.as_bytes();
        self.u8(b.len() as u8);
        self.0.extend_from_slice(b);
        self.0.extend_from_slice(&[0u8; 16][..16 - b.len()]);
    }

    fn addr(&mut self, a: &Addr) {
        let b = a.as_bytes();
        self.u8(b.len() as u8);
        self.0.extend_from_slice(b)
    }

    /// One struct ("<dB16sHB16sHI"), then the message.
    pub fn dns(&mut self, pkt: &Packet) {
        self.u8(EV_DNS);
        self.f64(pkt.ts);
        self.addr17(&pkt.src);
        self.u16(pkt.sport);
        self.addr17(&pkt.dst);
        self.u16(pkt.dport);
        self.bytes(&pkt.payload);
    }

    pub fn arp(&mut self, frame: &ArpFrame) {
        self.u8(EV_ARP);
        self.f64(frame.ts);
        self.bytes(&frame.data);
        self.bytes(&frame.macs);
    }

    pub fn ndp(&mut self, pkt: &Packet) {
        self.u8(EV_NDP);
        self.packet(pkt);
    }

    /// Every field of a Packet, in decode.py's order (also the decode stage's test output).
    pub fn packet(&mut self, p: &Packet) {
        self.f64(p.ts);
        self.u8(p.ip_version);
        self.addr(&p.src);
        self.addr(&p.dst);
        self.u8(p.proto);
        self.u8(p.ttl);
        self.opt_u(p.ip_id.map(|x| x as u64));
        self.bool(p.df);
        self.u32(p.ip_len);
        self.u16(p.sport);
        self.u16(p.dport);
        self.u8(p.tcp_flags);
        self.u32(p.seq);
        self.u32(p.ack);
        self.u16(p.win);
        self.bytes(&p.tcp_options);
        self.bytes(&p.payload);
        self.u32(p.payload_len);
        match &p.icmp {
            None => self.u8(0),
            Some(icmp) => {
                self.u8(1);
                self.u8(icmp.type_);
                self.u8(icmp.code);
                self.u32(icmp.rest);
                self.u32(icmp.mtu);
                match &icmp.quoted {
                    None => self.u8(0),
                    Some(q) => {
                        self.u8(1);
                        self.u8(q.ip_version);
                        self.addr(&q.src);
                        self.addr(&q.dst);
                        self.u8(q.proto);
                        self.u16(q.sport);
                        self.u16(q.dport);
                        self.u32(q.seq);
                        self.opt_u(q.ip_id.map(|x| x as u64));
                    }
                }
            }
        }
        self.count(p.vlan.len());
        for v in &p.vlan {
            self.u16(*v);
        }
        self.u32(p.iface);
        self.opt_str(p.proc_name.as_deref());
        self.opt_u(p.pid.map(|x| x as u64));
        self.bool(p.fragmented);
        self.bytes(&p.macs);
    }

    pub fn flow(&mut self, r: &FlowRecord) {
        self.u8(EV_FLOW);
        // The fixed part: one struct for Python ("<Q2d2B4H5d3Q5B6I4(B16s)2I"): numbers, list
        // lengths, the four addresses, the lengths of conn_state and history.
        self.u64(r.uid_dup);
        self.f64(r.ts_start);
        self.f64(r.ts_end);
        self.u8(r.proto);
        self.u8(r.ip_version);
        self.u16(r.first_sport);
        self.u16(r.first_dport);
        self.u16(r.client_port);
        self.u16(r.server_port);
        self.opt_f64(r.syn_ts);
        self.opt_f64(r.synack_ts);
        self.opt_f64(r.ack_ts);
        self.opt_f64(r.rtt_syn_synack);
        self.opt_f64(r.rtt_synack_ack);
        self.u64(r.rst_total);
        self.u64(r.icmp_error_total);
        self.u64(r.missed_bytes);
        self.bool(r.truncated_start);
        self.bool(r.open_at_end);
        self.bool(r.flipped);
        self.u8(r.end_reason as u8);
        self.u8(0); // padding byte, keeps the struct format simple
        for n in [r.rsts.len(), r.icmp_errors.len(), r.processes.len(), r.ifaces.len(), r.vlan.len(), r.weirds.len()] {
            self.count(n);
        }
        self.addr17(&r.first_src);
        self.addr17(&r.first_dst);
        self.addr17(&r.client_ip);
        self.addr17(&r.server_ip);
        self.count(r.conn_state.len());
        self.count(r.history.len());
        // The variable part.
        self.0.extend_from_slice(r.conn_state.as_bytes());
        self.0.extend_from_slice(r.history.as_bytes());
        self.direction(&r.client);
        self.direction(&r.server);
        for e in &r.rsts {
            self.f64(e.ts);
            self.u8(e.sender as u8);
            self.u8(e.ttl);
            self.opt_u(e.ip_id.map(|x| x as u64));
            self.bool(e.df);
            self.u16(e.window);
            self.u32(e.seq);
            self.u32(e.ack);
            self.u8(e.flags);
            self.u32(e.payload_len);
            match e.rel_seq {
                None => self.u8(0),
                Some(v) => {
                    self.u8(1);
                    self.i64(v)
                }
            }
            self.u8(opt_bool(e.seq_at_next));
            self.u8(opt_bool(e.seq_at_peer_ack));
            self.opt_f64(e.since_peer);
            self.opt_u(e.prev_ttl.map(|x| x as u64));
            self.opt_u(e.prev_ip_id.map(|x| x as u64));
            self.u64(e.packets_after);
            self.u64(e.data_after);
        }
        for e in &r.icmp_errors {
            self.f64(e.ts);
            self.u8(e.type_);
            self.u8(e.code);
            self.addr(&e.reporter);
            self.u8(e.ttl);
            self.u8(e.about as u8);
            self.u32(e.mtu);
            self.u32(e.quoted_seq);
        }
        for (name, pid) in &r.processes {
            self.opt_str(name.as_deref());
            self.opt_u(pid.map(|x| x as u64));
        }
        for i in &r.ifaces {
            self.u32(*i);
        }
        for v in &r.vlan {
            self.u16(*v);
        }
        for (name, n) in &r.weirds {
            self.str(name);
            self.u64(*n);
        }
        self.opt_bytes(r.client_mac.as_deref());
        self.opt_bytes(r.server_mac.as_deref());
    }

    fn direction(&mut self, d: &DirectionStats) {
        // Fixed part, one struct for Python ("<4Q3dQ2q2d6Q2B4IB"): the numbers, then the codes
        // of the two names and the lengths of what follows.
        self.u64(d.packets);
        self.u64(d.ip_bytes);
        self.u64(d.payload_bytes);
        self.u64(d.zeek_bytes);
        self.opt_f64(d.first_ts);
        self.opt_f64(d.last_ts);
        self.opt_f64(d.syn_ts);
        self.u64(d.syn_count);
        self.opt_u(d.syn_window.map(|x| x as u64));
        self.opt_u(d.syn_ttl.map(|x| x as u64));
        self.opt_f64(d.first_data_ts);
        self.opt_f64(d.fin_ts);
        self.u64(d.rst_count);
        self.u64(d.retransmissions);
        self.u64(d.zero_windows);
        self.u64(d.missed_bytes);
        self.u64(d.datagram_count);
        self.u64(d.duplicates);
        let pattern = code(PATTERNS, d.ip_id_pattern);
        let state = code(STATES, d.state);
        self.u8(pattern);
        self.u8(state);
        self.count(d.ttls.len());
        self.count(d.ip_ids.len());
        self.count(d.syn_options.len());
        self.count(d.datagrams.len());
        self.bool(d.stream.is_some());
        // Variable part: a name without a code, then the lists.
        if pattern == UNLISTED {
            self.str(d.ip_id_pattern);
        }
        if state == UNLISTED {
            self.str(d.state);
        }
        for (ttl, n) in &d.ttls {
            self.u8(*ttl);
            self.u64(*n);
        }
        for v in &d.ip_ids {
            self.u32(*v);
        }
        self.0.extend_from_slice(&d.syn_options);
        if let Some(s) = &d.stream {
            self.stream(s)
        }
        for g in &d.datagrams {
            self.f64(g.ts);
            self.bytes(&g.payload);
        }
    }

    fn stream(&mut self, s: &StreamData) {
        self.bytes(&s.data);
        self.count(s.segments.len());
        for (off, ts) in &s.segments {
            self.u64(*off);
            self.f64(*ts);
        }
        // "<5Q4B"
        self.u64(s.stream_bytes);
        self.u64(s.gaps);
        self.u64(s.gap_bytes);
        self.u64(s.overlap_conflicts);
        self.u64(s.pending_bytes);
        self.bool(s.cut_by_cap);
        self.bool(s.cut_by_gap);
        self.bool(s.segments_truncated);
        self.bool(s.cut_by_budget);
    }
}

fn opt_bool(v: Option<bool>) -> u8 {
    match v {
        None => 2,
        Some(b) => b as u8,
    }
}

impl<'a> Out<'a> {
    /// The engine's weird counts: u32 n, then (name, count) pairs.
    pub fn weirds(&mut self, w: &crate::weird::Weirds) {
        self.count(w.0.len());
        for (k, v) in &w.0 {
            self.str(k);
            self.u64(*v);
        }
    }

    /// What `Engine.read` puts in its CaptureSummary that only the walk knows, and the reader's
    /// weirds (counted into the engine's only by the process that counts frames: `counts_frames`).
    pub fn file_summary(&mut self, f: &crate::engine::FileState, counts_frames: bool) {
        let s = f.walker.summary();
        self.str(s.format);
        self.u64(s.packets);
        self.u64(s.bytes);
        self.count(s.link_types.len());
        for name in &s.link_types {
            self.str(name);
        }
        self.bool(s.truncated);
        self.bool(f.process_info);
        self.opt_f64(f.first_ts);
        self.opt_f64(f.last_ts);
        self.bool(counts_frames);
        self.weirds(&s.weirds);
    }
}
