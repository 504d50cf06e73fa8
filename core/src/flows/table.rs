//! The flow table: decoded packets in, one `FlowRecord` out per finished flow
//! (Python reference: `analyzer/flows/table.py` `FlowTable`; its module docstring states the
//! direction rules, the lifetimes and the timers this file mirrors).
//!
//! Layout: flows live in a slab (`flows`, reused slots); both directions' 5-tuples are keys of
//! one hash map to (slot, physical side); timers are (deadline, serial) entries of a heap with
//! stale entries (`timers.rs`). Python's `_live` dict iterates in insertion order, which is
//! serial order: where that order is observable (flush, time jumps) the slots are sorted by
//! serial.
//!
//! The records, their order and the weird counts are checked against the Python table by
//! `core/tools/flows_diff.sh` (`flows_ref.py` for Python, `examples/flows_dump.rs` for this).

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};

use crate::config::FlowConfig;
use crate::packet::{Addr, Packet};
use crate::record::{Datagram, DirectionStats, EndReason, FlowRecord, IcmpError, Side, StreamData};
use crate::weird::Weirds;

use super::direction::{client_side_by_content, client_side_by_ports, icmp_port_equivalents};
use super::reassembly::{ReassemblyBudget, StreamReassembler};
use super::side::{RstOpen, SideStats};
use super::tcp::{
    udp_conn_state, TCPEndpoint, TCPSession, ACK, FIN, HIST_ACK_PKT, HIST_DATA_PKT, INACTIVE, RST,
    SYN, TOO_LARGE_SEQ_DELTA, URG,
};
use super::timers::{Timer, TimerHeap};

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMP6: u8 = 58;

/// Packets far behind the clock in a row that make a time jump (table.py `_JUMP_PACKETS`).
const JUMP_PACKETS: usize = 3;
/// No sender retransmits this fast; a capture's copy comes this close (s).
const DUPLICATE_WITHIN: f64 = 0.001;
/// The timer heap is compacted when it holds more than this many entries per live flow...
const STALE_FACTOR: usize = 2;
/// ... plus this many (a nearly empty table is not swept on every push).
const STALE_SLACK: usize = 4096;
const CONTROL: u8 = SYN | FIN | RST | URG;

/// `EndpointState` names, by state number (table.py `_STATE_NAMES`).
const STATE_NAMES: [&str; 7] = [
    "INACTIVE",
    "SYN_SENT",
    "SYN_ACK_SENT",
    "PARTIAL",
    "ESTABLISHED",
    "CLOSED",
    "RESET",
];

/// One direction's 5-tuple (table.py `_Key`: src, sport, dst, dport, proto).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    src: Addr,
    sport: u16,
    dst: Addr,
    dport: u16,
    proto: u8,
}

impl FlowKey {
    fn new(src: Addr, sport: u16, dst: Addr, dport: u16, proto: u8) -> FlowKey {
        FlowKey {
            src,
            sport,
            dst,
            dport,
            proto,
        }
    }
    fn reversed(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
            proto: self.proto,
        }
    }
}

impl Hash for FlowKey {
    /// Five words, whatever the address family: one probe costs a few multiplications.
    fn hash<H: Hasher>(&self, h: &mut H) {
        let (s0, s1) = addr_words(&self.src);
        let (d0, d1) = addr_words(&self.dst);
        h.write_u64(s0);
        h.write_u64(s1);
        h.write_u64(d0);
        h.write_u64(d1);
        let len = self.src.as_bytes().len() as u64;
        h.write_u64(
            self.sport as u64 | (self.dport as u64) << 16 | (self.proto as u64) << 32 | len << 40,
        );
    }
}

fn addr_words(a: &Addr) -> (u64, u64) {
    // Fixed-size reads per family: a variable-length copy would cost a memcpy call per probe.
    let raw = a.as_bytes();
    if raw.len() == 16 {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&raw[..8]);
        hi.copy_from_slice(&raw[8..16]);
        (u64::from_le_bytes(lo), u64::from_le_bytes(hi))
    } else if raw.len() == 4 {
        (
            u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as u64,
            0,
        )
    } else {
        (raw.iter().fold(0u64, |acc, &b| acc << 8 | b as u64), 1)
    }
}

/// The key maps' hasher: a multiply-rotate over whole words (std's SipHash costs several
/// times more per probe, and every packet probes), seeded per table from std's random keys
/// so a capture cannot be crafted against it in advance; a final avalanche spreads the bits
/// the map uses.
#[derive(Clone)]
struct KeyHashBuilder {
    seed: u64,
}

impl KeyHashBuilder {
    fn new() -> KeyHashBuilder {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        KeyHashBuilder { seed: h.finish() }
    }
}

impl BuildHasher for KeyHashBuilder {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.seed)
    }
}

struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u64(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(23) ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // murmur3's fmix64
        let mut k = self.0;
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    }
}

/// One live flow (table.py `_Flow`).
struct Flow {
    serial: u64,
    /// Flows started before this one at the same time with the same 5-tuple (for the uid).
    dup: u64,
    proto: u8,
    ipv: u8,
    vlan: Vec<u16>,
    /// The first packet's source and destination (ICMP: "ports" are the type equivalents).
    addrs: [Addr; 2],
    ports: [u16; 2],
    sides: [SideStats; 2],
    /// TCP only; it owns both endpoints (`session.eps[side]` is Python's `flow.eps[side]`).
    session: Option<Box<TCPSession>>,
    /// UDP/ICMP: the client's physical side (TCP's: `session.orig_idx`).
    orig_side: usize,
    flipped: bool,
    decided: bool,
    /// UDP/ICMP history (TCP's is in the session).
    hist: String,
    first_ts: f64,
    last_ts: f64,
    rsts: Vec<RstOpen>,
    rst_total: u64,
    icmp_errors: Vec<IcmpError>,
    icmp_count: u64,
    procs: Vec<(Option<String>, Option<u32>)>,
    iface: u32,
    ifaces: Option<BTreeSet<u32>>,
    /// The deadline of this flow's one valid timer entry (+inf: none).
    pushed: f64,
    syn_for_synack: Option<f64>,
}

impl Flow {
    fn new(
        serial: u64,
        pkt: &Packet,
        proto: u8,
        src: Addr,
        sport: u16,
        dst: Addr,
        dport: u16,
    ) -> Flow {
        Flow {
            serial,
            dup: 0,
            proto,
            ipv: pkt.ip_version,
            vlan: pkt.vlan.clone(),
            addrs: [src, dst],
            ports: [sport, dport],
            sides: [SideStats::default(), SideStats::default()],
            session: None,
            orig_side: 0,
            flipped: false,
            decided: true,
            hist: String::new(),
            first_ts: pkt.ts,
            last_ts: pkt.ts,
            rsts: Vec::new(),
            rst_total: 0,
            icmp_errors: Vec::new(),
            icmp_count: 0,
            procs: Vec::new(),
            iface: pkt.iface,
            ifaces: None,
            pushed: f64::INFINITY,
            syn_for_synack: None,
        }
    }

    fn key(&self) -> FlowKey {
        FlowKey::new(
            self.addrs[0],
            self.ports[0],
            self.addrs[1],
            self.ports[1],
            self.proto,
        )
    }

    /// table.py `_orig_side`.
    fn orig_side(&self) -> usize {
        match &self.session {
            Some(s) => s.orig_idx,
            None => self.orig_side,
        }
    }
}

/// Bidirectional flows from decoded packets (table.py `FlowTable`).
///
/// `add(pkt, out)` appends to `out` the records of flows that finished because of this
/// packet (timeouts reached by its timestamp, eviction, port reuse); call `flush(out)` at the
/// end of the capture for the rest. `weird` counts table events and, as flows finish, their
/// per-flow weirds.
pub struct FlowTable {
    pub config: FlowConfig,
    pub weird: Weirds,
    /// Packets given to `add`.
    pub packets: u64,
    pub flows_emitted: u64,
    keys: HashMap<FlowKey, (u32, u8), KeyHashBuilder>,
    flows: Vec<Option<Flow>>,
    free: Vec<u32>,
    live: usize,
    timers: TimerHeap,
    next_timer: f64,
    serial: u64,
    /// Flows started at this time, by first 5-tuple (for uids).
    dup_ts: f64,
    dup_keys: HashMap<FlowKey, u64, KeyHashBuilder>,
    /// The newest packet time seen.
    clock: f64,
    /// Consecutive packets far older than the clock.
    held: Vec<Packet>,
    budget: ReassemblyBudget,
}

impl FlowTable {
    pub fn new(config: FlowConfig) -> FlowTable {
        FlowTable {
            config,
            weird: Weirds::new(),
            packets: 0,
            flows_emitted: 0,
            keys: HashMap::with_hasher(KeyHashBuilder::new()),
            flows: Vec::new(),
            free: Vec::new(),
            live: 0,
            timers: TimerHeap::new(),
            next_timer: f64::INFINITY,
            serial: 0,
            dup_ts: f64::INFINITY,
            dup_keys: HashMap::with_hasher(KeyHashBuilder::new()),
            clock: f64::NEG_INFINITY,
            held: Vec::new(),
            budget: ReassemblyBudget::new(config.reassembly_budget, config.reassembly_floor),
        }
    }

    /// Live flows (`len(table)`).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The earliest pending timer deadline (+inf if none): `advance(ts)` below it only moves
    /// the clock (table.py `next_timer`).
    pub fn next_timer(&self) -> f64 {
        self.next_timer
    }

    /// The table's shared reassembly budget (read-only; for tests and statistics).
    pub fn budget(&self) -> &ReassemblyBudget {
        &self.budget
    }

    // -- input -------------------------------------------------------------------------

    /// Account one packet; the records of flows it finished go to `out` (table.py `add`).
    pub fn add(&mut self, pkt: Packet, out: &mut Vec<FlowRecord>) {
        self.packets += 1;
        let ts = pkt.ts;
        if ts >= self.next_timer {
            self.expire(ts, out);
        }
        if ts >= self.clock {
            self.clock = ts;
            if !self.held.is_empty() {
                self.release_held(out);
            }
        } else if ts < self.clock - self.config.max_time_jump {
            self.hold(pkt, out);
            return;
        } else if !self.held.is_empty() {
            self.release_held(out);
        }
        match pkt.proto {
            PROTO_TCP => {
                let entry = self.lookup(pkt.src, pkt.sport, pkt.dst, pkt.dport, PROTO_TCP);
                if let Some((slot, side)) = entry {
                    let flags = pkt.tcp_flags;
                    if flags & CONTROL == 0
                        && flags & ACK != 0
                        && pkt.win != 0
                        && self.fast_path(slot, side, &pkt)
                    {
                        return;
                    }
                }
                let mut pkt = pkt;
                self.tcp(&mut pkt, ts, out, entry);
            }
            PROTO_UDP => {
                let mut pkt = pkt;
                self.udp(&mut pkt, ts, out)
            }
            _ => {
                let mut pkt = pkt;
                self.process(&mut pkt, out)
            }
        }
    }

    /// Move the clock to a packet's time without the packet: what a shard does with the
    /// others' packets; timers fire as they would had the packet been added (table.py `advance`).
    pub fn advance(&mut self, ts: f64, out: &mut Vec<FlowRecord>) {
        if ts >= self.next_timer {
            self.expire(ts, out);
        }
        if ts >= self.clock {
            self.clock = ts;
        }
    }

    /// End of capture: emit every flow still in the table, oldest first (table.py `flush`).
    pub fn flush(&mut self, out: &mut Vec<FlowRecord>) {
        if !self.held.is_empty() {
            self.release_held(out);
        }
        for (_, slot) in self.live_in_order() {
            self.finish(slot, EndReason::EndOfCapture, out);
        }
        self.timers.clear();
        self.next_timer = f64::INFINITY;
    }

    /// Tie an ICMP error to the flow whose header it quotes; false if none matches
    /// (table.py `attach_icmp`). `add` calls it itself for ICMP errors.
    pub fn attach_icmp(&mut self, pkt: &Packet) -> bool {
        let icmp = match &pkt.icmp {
            Some(i) => i,
            None => return false,
        };
        let q = match &icmp.quoted {
            Some(q) => q,
            None => return false,
        };
        if q.proto != PROTO_TCP && q.proto != PROTO_UDP {
            return false;
        }
        let (slot, side) = match self.lookup(q.src, q.sport, q.dst, q.dport, q.proto) {
            Some(e) => e,
            None => return false,
        };
        let max = self.config.max_icmp_errors;
        let flow = match self.flows.get_mut(slot) {
            Some(Some(f)) => f,
            _ => return false,
        };
        flow.icmp_count += 1;
        if (flow.icmp_errors.len() as u64) < max {
            let about = if side == flow.orig_side() {
                Side::Client
            } else {
                Side::Server
            };
            flow.icmp_errors.push(IcmpError {
                ts: pkt.ts,
                type_: icmp.type_,
                code: icmp.code,
                reporter: pkt.src,
                ttl: pkt.ttl,
                about,
                mtu: icmp.mtu,
                quoted_seq: q.seq,
            });
        }
        true
    }

    fn lookup(
        &self,
        src: Addr,
        sport: u16,
        dst: Addr,
        dport: u16,
        proto: u8,
    ) -> Option<(usize, usize)> {
        self.keys
            .get(&FlowKey::new(src, sport, dst, dport, proto))
            .map(|&(slot, side)| (slot as usize, side as usize))
    }

    fn flow_mut(&mut self, slot: usize) -> Option<&mut Flow> {
        match self.flows.get_mut(slot) {
            Some(Some(f)) => Some(f),
            _ => None,
        }
    }

    fn flow(&self, slot: usize) -> Option<&Flow> {
        match self.flows.get(slot) {
            Some(Some(f)) => Some(f),
            _ => None,
        }
    }

    /// (serial, slot) of every live flow, oldest first: Python's `_live` order.
    fn live_in_order(&self) -> Vec<(u64, usize)> {
        let mut v: Vec<(u64, usize)> = self
            .flows
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().map(|f| (f.serial, i)))
            .collect();
        v.sort_unstable();
        v
    }

    /// A packet far older than the newest: an outlier, or the start of a time jump (table.py `_hold`).
    fn hold(&mut self, pkt: Packet, out: &mut Vec<FlowRecord>) {
        self.held.push(pkt);
        if self.held.len() < JUMP_PACKETS {
            return;
        }
        // Confirmed: the capture went back in time. Start afresh, then replay; but a TCP
        // connection whose first held packet is no opening SYN is that same connection across
        // a clock step: it is kept, its timer re-armed from the new clock.
        self.weird.add("time_went_backwards");
        let mut continued: Vec<(u64, usize)> = Vec::new();
        let mut opened: Vec<u64> = Vec::new();
        for p in &self.held {
            if p.proto != PROTO_TCP {
                continue;
            }
            if let Some((slot, _)) = self.lookup(p.src, p.sport, p.dst, p.dport, p.proto) {
                if let Some(f) = self.flow(slot) {
                    if !opened.contains(&f.serial) {
                        opened.push(f.serial);
                        if p.tcp_flags & (SYN | ACK) != SYN {
                            continued.push((f.serial, slot));
                        }
                    }
                }
            }
        }
        for (serial, slot) in self.live_in_order() {
            if !continued.iter().any(|&(s, _)| s == serial) {
                self.finish(slot, EndReason::TimeJump, out);
            }
        }
        self.timers.clear();
        self.next_timer = f64::INFINITY;
        let mut clock = self.held[0].ts;
        for p in &self.held[1..] {
            if p.ts > clock {
                clock = p.ts;
            }
        }
        self.clock = clock;
        self.release_held(out);
        for (serial, slot) in continued {
            let alive = self.flow(slot).map_or(false, |f| f.serial == serial);
            if alive {
                let d = self.deadline(slot);
                self.push(slot, d);
            }
        }
    }

    fn release_held(&mut self, out: &mut Vec<FlowRecord>) {
        let held = std::mem::take(&mut self.held);
        for mut p in held {
            self.process(&mut p, out);
        }
    }

    /// `add` without the clock and the fast path (table.py `_process`; replayed packets are few).
    fn process(&mut self, pkt: &mut Packet, out: &mut Vec<FlowRecord>) {
        let proto = pkt.proto;
        if proto == PROTO_TCP {
            let entry = self.lookup(pkt.src, pkt.sport, pkt.dst, pkt.dport, PROTO_TCP);
            let ts = pkt.ts;
            self.tcp(pkt, ts, out, entry);
        } else if proto == PROTO_UDP {
            let ts = pkt.ts;
            self.udp(pkt, ts, out);
        } else if proto == PROTO_ICMP || proto == PROTO_ICMP6 {
            let (has_icmp, is_error) = match &pkt.icmp {
                None => (false, false),
                Some(i) => (true, i.quoted.is_some()),
            };
            if !has_icmp {
                self.weird.add("icmp_without_header");
            } else if !is_error || !self.attach_icmp(pkt) {
                let ts = pkt.ts;
                self.icmp(pkt, ts, out);
            }
        } else {
            self.weird.add("flow_unhandled_ip_proto");
        }
    }

    // -- TCP ---------------------------------------------------------------------------

    /// The fast path of `add`: an in-order ACK or data segment of an established flow whose
    /// history letters are already set changes nothing in Zeek's state machine but sequence
    /// numbers and counters. False (nothing changed) when the segment needs the full way.
    fn fast_path(&mut self, slot: usize, side: usize, pkt: &Packet) -> bool {
        let samples = self.config.ip_id_samples;
        let max_procs = self.config.max_processes;
        let flow = match self.flows.get_mut(slot) {
            Some(Some(f)) => f,
            _ => return false,
        };
        if !flow.decided {
            return false;
        }
        let session = match flow.session.as_mut() {
            Some(s) => s,
            None => return false,
        };
        let plen = pkt.payload_len;
        let seq = pkt.seq;
        {
            let ep = &session.eps[side];
            let peer = &session.eps[1 - side];
            let mut mask = if plen != 0 {
                HIST_DATA_PKT
            } else {
                HIST_ACK_PKT
            };
            if !ep.is_orig {
                mask <<= 16;
            }
            if !(seq == ep.last_seq
                && (3..=4).contains(&ep.state) // PARTIAL or ESTABLISHED
                && (3..=4).contains(&peer.state)
                && session.hist_seen & mask != 0
                && session.first_packet_seen == 3)
            {
                return false;
            }
        }
        if !fast_tcp(
            session,
            side,
            seq,
            pkt.ack,
            plen,
            &pkt.payload,
            pkt.ts,
            &mut self.budget,
        ) {
            return false;
        }
        account_fast(flow, side, pkt, pkt.ts, plen, samples, max_procs);
        true
    }

    /// table.py `_tcp`: the full way for a TCP segment.
    fn tcp(
        &mut self,
        pkt: &mut Packet,
        ts: f64,
        out: &mut Vec<FlowRecord>,
        entry: Option<(usize, usize)>,
    ) {
        let flags = pkt.tcp_flags;
        let (slot, side) = match entry {
            None => {
                if pkt.fragmented && pkt.sport == 0 && pkt.dport == 0 {
                    self.weird.add("fragment_without_transport");
                    return;
                }
                (self.new_tcp(pkt, ts, out), 0)
            }
            Some((slot, side)) => {
                let linger = self.config.tcp_close_linger;
                let reuse = flags & SYN != 0
                    && match self.flow_mut(slot).and_then(|f| f.session.as_mut()) {
                        Some(s) => s.is_reuse(flags, pkt.seq, ts, linger),
                        None => false,
                    };
                if reuse {
                    self.finish(slot, EndReason::Reused, out);
                    (self.new_tcp(pkt, ts, out), 0)
                } else {
                    (slot, side)
                }
            }
        };
        let cfg = self.config;
        let flow = match self.flows.get_mut(slot) {
            Some(Some(f)) => f,
            _ => return,
        };
        let plen = pkt.payload_len;
        if !flow.decided && plen > 0 {
            decide_by_content(flow, side, &pkt.payload);
        }
        if flags & RST != 0 {
            rst(flow, side, pkt, ts, cfg.max_rsts);
        } else if flow.sides[side].rst_open != 0 {
            rsts_followed(flow, side, plen);
        }
        {
            let st = &mut flow.sides[side];
            if plen != 0
                && pkt.seq as i64 == st.last_seq
                && plen as i64 == st.last_plen
                && st
                    .last_ts
                    .map_or(false, |last| ts - last < DUPLICATE_WITHIN)
                && (pkt.ip_id.is_none() || pkt.ip_id == st.last_ip_id)
            {
                // The same segment again at once (same IP ID): the capture's copy (a span port
                // mirroring both ways), not the sender's retransmission, though Zeek counts it as one.
                st.duplicates += 1;
            }
        }
        let session = match flow.session.as_mut() {
            Some(s) => s,
            None => return,
        };
        session.packet(
            side,
            flags,
            pkt.seq,
            pkt.ack,
            plen,
            pkt.win,
            ts,
            &pkt.payload,
            &mut self.budget,
        );

        if flow.sides[side].first_ts.is_none() {
            let st = &mut flow.sides[side];
            st.first_ts = Some(ts);
            st.macs = std::mem::take(&mut pkt.macs);
        }
        count(
            flow,
            side,
            pkt,
            ts,
            plen,
            flags & RST == 0,
            cfg.ip_id_samples,
        );
        let st = &mut flow.sides[side];
        st.last_seq = pkt.seq as i64;
        st.last_plen = plen as i64;
        if plen != 0 && st.first_data_ts.is_none() {
            st.first_data_ts = Some(ts);
        }
        let mut push_at: Option<f64> = None;
        if flags & (SYN | FIN | RST) != 0 {
            push_at = tcp_control(flow, side, pkt, flags, ts, &cfg);
        } else if flags & ACK != 0
            && flow.sides[side].hs_ack_ts.is_none()
            && flow.sides[1 - side].synack_ts.is_some()
        {
            // the first ACK after the peer's SYN-ACK: the handshake's third packet
            flow.sides[side].hs_ack_ts = Some(ts);
        }
        if pkt.proc_name.is_some() || pkt.pid.is_some() {
            proc_seen(flow, pkt, cfg.max_processes);
        }
        if pkt.iface != flow.iface {
            iface_seen(flow, pkt.iface);
        }
        if let Some(t) = push_at {
            self.push(slot, t);
        }
    }

    /// table.py `_new_tcp`: a TCP flow, its endpoints, and its roles.
    fn new_tcp(&mut self, pkt: &Packet, ts: f64, out: &mut Vec<FlowRecord>) -> usize {
        let slot = self.new_flow(
            pkt, PROTO_TCP, pkt.src, pkt.sport, pkt.dst, pkt.dport, ts, out,
        );
        let cfg = self.config;
        let r0 = StreamReassembler::new(
            cfg.reassembly_cap,
            cfg.max_segments,
            cfg.max_pending_segments,
            true,
        );
        let r1 = StreamReassembler::new(
            cfg.reassembly_cap,
            cfg.max_segments,
            cfg.max_pending_segments,
            true,
        );
        let mut session = TCPSession::new(
            TCPEndpoint::new(true, r0, 0),
            TCPEndpoint::new(false, r1, 1),
            cfg.max_history,
        );
        let flags = pkt.tcp_flags;
        let mut flipped = false;
        let mut decided = true;
        if flags & SYN != 0 {
            if flags & ACK != 0 {
                // A SYN-ACK first: its receiver is the client.
                session.flip_roles();
                flipped = true;
            }
        } else {
            let first = if pkt.payload_len != 0 {
                client_side_by_content(&pkt.payload)
            } else {
                None
            };
            let client = match first {
                Some(c) => c,
                None => client_side_by_ports(pkt.sport, pkt.dport),
            };
            if client == 1 {
                session.flip_roles();
                flipped = true;
            }
            decided = first.is_some();
        }
        if let Some(flow) = self.flow_mut(slot) {
            flow.session = Some(Box::new(session));
            flow.flipped = flipped;
            flow.decided = decided;
        }
        slot
    }

    // -- UDP / ICMP --------------------------------------------------------------------

    fn udp(&mut self, pkt: &mut Packet, ts: f64, out: &mut Vec<FlowRecord>) {
        let (src, sport, dst, dport) = (pkt.src, pkt.sport, pkt.dst, pkt.dport);
        let (slot, side) = match self.lookup(src, sport, dst, dport, PROTO_UDP) {
            Some(e) => e,
            None => {
                if pkt.fragmented && sport == 0 && dport == 0 {
                    self.weird.add("fragment_without_transport");
                    return;
                }
                let slot = self.new_flow(pkt, PROTO_UDP, src, sport, dst, dport, ts, out);
                if client_side_by_ports(sport, dport) == 1 {
                    if let Some(flow) = self.flow_mut(slot) {
                        flow.orig_side = 1;
                        flow.flipped = true;
                        flow.hist.push('^');
                    }
                }
                (slot, 0)
            }
        };
        self.datagram(slot, side, pkt, ts);
    }

    fn icmp(&mut self, pkt: &mut Packet, ts: f64, out: &mut Vec<FlowRecord>) {
        let (itype, icode) = match &pkt.icmp {
            Some(i) => (i.type_, i.code),
            None => return,
        };
        let (sp, dp, _one_way) = icmp_port_equivalents(pkt.proto, itype, icode);
        let (slot, side) = match self.lookup(pkt.src, sp, pkt.dst, dp, pkt.proto) {
            Some(e) => e,
            None => (
                self.new_flow(pkt, pkt.proto, pkt.src, sp, pkt.dst, dp, ts, out),
                0,
            ),
        };
        self.datagram(slot, side, pkt, ts);
    }

    fn datagram(&mut self, slot: usize, side: usize, pkt: &mut Packet, ts: f64) {
        let cfg = self.config;
        let flow = match self.flows.get_mut(slot) {
            Some(Some(f)) => f,
            _ => return,
        };
        if flow.sides[side].packets == 0 {
            let st = &mut flow.sides[side];
            st.first_ts = Some(ts);
            st.first_data_ts = Some(ts);
            st.macs = std::mem::take(&mut pkt.macs);
            if flow.proto == PROTO_UDP {
                let letter = if side == flow.orig_side { 'D' } else { 'd' };
                flow.hist.push(letter);
            }
        }
        count(
            flow,
            side,
            pkt,
            ts,
            pkt.payload_len,
            true,
            cfg.ip_id_samples,
        );
        let st = &mut flow.sides[side];
        st.datagram_count += 1;
        if st.datagram_count <= cfg.max_udp_datagrams {
            st.datagrams.push(Datagram {
                ts,
                payload: std::mem::take(&mut pkt.payload),
            });
        }
        if pkt.proc_name.is_some() || pkt.pid.is_some() {
            proc_seen(flow, pkt, cfg.max_processes);
        }
        if pkt.iface != flow.iface {
            iface_seen(flow, pkt.iface);
        }
    }

    // -- lifecycle ---------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn new_flow(
        &mut self,
        pkt: &Packet,
        proto: u8,
        src: Addr,
        sport: u16,
        dst: Addr,
        dport: u16,
        ts: f64,
        out: &mut Vec<FlowRecord>,
    ) -> usize {
        if self.live as u64 >= self.config.max_flows {
            self.weird.add("flow_table_full");
            self.evict_one(out);
        }
        self.serial += 1;
        let mut flow = Flow::new(self.serial, pkt, proto, src, sport, dst, dport);
        let k0 = FlowKey::new(src, sport, dst, dport, proto);
        if ts != self.dup_ts {
            self.dup_ts = ts;
            self.dup_keys.clear();
        }
        let dup = self.dup_keys.get(&k0).copied().unwrap_or(0);
        self.dup_keys.insert(k0, dup + 1);
        flow.dup = dup;
        let k1 = k0.reversed();
        let slot = match self.free.pop() {
            Some(s) => {
                self.flows[s as usize] = Some(flow);
                s as usize
            }
            None => {
                self.flows.push(Some(flow));
                self.flows.len() - 1
            }
        };
        self.keys.insert(k0, (slot as u32, 0));
        if k0 != k1 {
            self.keys.insert(k1, (slot as u32, 1));
        }
        self.live += 1;
        let cfg = &self.config;
        // TCP gets Zeek's UDP timeout until its handshake completes.
        let idle = if proto != PROTO_TCP && proto != PROTO_UDP {
            cfg.icmp_idle_timeout
        } else {
            cfg.udp_idle_timeout
        };
        self.push(slot, ts + idle);
        slot
    }

    /// table.py `_push`: the flow's one valid timer is now `deadline`.
    fn push(&mut self, slot: usize, deadline: f64) {
        let serial = match self.flow_mut(slot) {
            Some(f) => {
                f.pushed = deadline;
                f.serial
            }
            None => return,
        };
        self.timers.push(Timer {
            deadline,
            serial,
            slot: slot as u32,
        });
        if deadline < self.next_timer {
            self.next_timer = deadline;
        }
        if self.timers.len() > STALE_FACTOR * self.live + STALE_SLACK {
            self.compact_timers();
        }
    }

    /// Drop the stale timer entries (table.py `_compact_timers`): fires nothing.
    fn compact_timers(&mut self) {
        let flows = &self.flows;
        self.timers.retain(|t| valid(flows, t));
        self.next_timer = self.timers.earliest();
    }

    /// The earliest time at which this flow may end, given its state now (table.py `_deadline`).
    fn deadline(&self, slot: usize) -> f64 {
        let cfg = &self.config;
        let flow = match self.flow(slot) {
            Some(f) => f,
            None => return f64::INFINITY,
        };
        match &flow.session {
            None => {
                let idle = if flow.proto == PROTO_UDP {
                    cfg.udp_idle_timeout
                } else {
                    cfg.icmp_idle_timeout
                };
                flow.last_ts + idle
            }
            Some(session) => {
                let idle = if session.in_handshake() {
                    cfg.udp_idle_timeout
                } else {
                    cfg.tcp_idle_timeout
                };
                let best = session.last_time + idle;
                match session.next_timer(
                    cfg.tcp_attempt_timeout,
                    cfg.tcp_close_linger,
                    cfg.tcp_partial_close_timeout,
                ) {
                    Some(t) if t < best => t,
                    _ => best,
                }
            }
        }
    }

    /// Fire the flow's timers due at `now`: why it ends, or None (table.py `_end_reason`).
    fn end_reason(&mut self, slot: usize, now: f64) -> Option<EndReason> {
        let cfg = self.config;
        let flow = self.flow_mut(slot)?;
        // (last activity, idle timeout): UDP/ICMP by the flow, TCP by its session once no TCP timer fired.
        let (last, idle) = match flow.session.as_mut() {
            None => {
                let idle = if flow.proto == PROTO_UDP { cfg.udp_idle_timeout } else { cfg.icmp_idle_timeout };
                (flow.last_ts, idle)
            }
            Some(session) => {
                let why = session.expire(now, cfg.tcp_attempt_timeout, cfg.tcp_close_linger, cfg.tcp_partial_close_timeout);
                if why.is_some() {
                    return why;
                }
                let idle = if session.in_handshake() { cfg.udp_idle_timeout } else { cfg.tcp_idle_timeout };
                (session.last_time, idle)
            }
        };
        if last + idle <= now {
            Some(EndReason::IdleTimeout)
        } else {
            None
        }
    }

    /// table.py `_expire`: pop every timer due at `now`.
    fn expire(&mut self, now: f64, out: &mut Vec<FlowRecord>) {
        loop {
            let top = match self.timers.peek() {
                Some(t) if t.deadline <= now => t,
                _ => break,
            };
            self.timers.pop();
            if !valid(&self.flows, &top) {
                continue; // stale entry: a newer one exists, or the flow is gone
            }
            let slot = top.slot as usize;
            if let Some(f) = self.flow_mut(slot) {
                f.pushed = f64::INFINITY;
            }
            match self.end_reason(slot, now) {
                Some(why) => self.finish(slot, why, out),
                None => {
                    let nxt = self.deadline(slot);
                    self.push(slot, if nxt > now { nxt } else { now + 1e-6 });
                }
            }
        }
        self.next_timer = self.timers.earliest();
    }

    /// Emit the flow whose deadline is nearest (table.py `_evict_one`).
    fn evict_one(&mut self, out: &mut Vec<FlowRecord>) {
        while let Some(top) = self.timers.peek() {
            if !valid(&self.flows, &top) {
                self.timers.pop();
                continue;
            }
            let slot = top.slot as usize;
            let actual = self.deadline(slot);
            if actual > top.deadline {
                if let Some(f) = self.flow_mut(slot) {
                    f.pushed = actual;
                }
                self.timers.replace_top(Timer {
                    deadline: actual,
                    ..top
                });
                continue;
            }
            self.timers.pop();
            self.finish(slot, EndReason::Evicted, out);
            break;
        }
        self.next_timer = self.timers.earliest();
    }

    /// table.py `_finish`: the flow leaves the table, its record goes to `out`.
    fn finish(&mut self, slot: usize, reason: EndReason, out: &mut Vec<FlowRecord>) {
        let mut flow = match self.flows.get_mut(slot).and_then(|f| f.take()) {
            Some(f) => f,
            None => return,
        };
        self.free.push(slot as u32);
        self.live -= 1;
        let k0 = flow.key();
        for k in [k0, k0.reversed()] {
            if let Some(&(s, _)) = self.keys.get(&k) {
                if s as usize == slot {
                    self.keys.remove(&k);
                }
            }
        }
        if let Some(session) = &flow.session {
            for &(name, n) in &session.weird {
                self.weird.add_n(name, n);
            }
        }
        self.flows_emitted += 1;
        out.push(record(&mut flow, reason));
        if let Some(session) = flow.session.as_mut() {
            for ep in session.eps.iter_mut() {
                if ep.reasm.cut_by_budget {
                    self.weird.add("reassembly_budget_exhausted");
                }
                ep.reasm.release(&mut self.budget);
            }
        }
    }
}

/// Whether a heap entry stands for its flow's current deadline (table.py `_valid_timer`).
fn valid(flows: &[Option<Flow>], t: &Timer) -> bool {
    match flows.get(t.slot as usize) {
        Some(Some(f)) => f.serial == t.serial && f.pushed == t.deadline,
        _ => false,
    }
}

/// The part of `TCPSession.packet` an in-order segment exercises (table.py `_fast_tcp`).
/// False, having changed nothing, when the segment needs the full treatment after all (an
/// ACK that is old, wild or reveals a gap; sequence numbers past 2 GiB without a wrap; a
/// payload cut by the snaplen).
#[allow(clippy::too_many_arguments)]
fn fast_tcp(
    session: &mut TCPSession,
    side: usize,
    seq: u32,
    ack: u32,
    plen: u32,
    payload: &[u8],
    ts: f64,
    budget: &mut ReassemblyBudget,
) -> bool {
    {
        let (first, second) = session.eps.split_at_mut(1);
        let (ep, peer) = if side == 0 {
            (&mut first[0], &mut second[0])
        } else {
            (&mut second[0], &mut first[0])
        };
        let off: i128 = if ep.seq_wraps != 0 {
            ((ep.seq_wraps as i128) << 32) + seq as i128 - ep.start_seq as i128 - 1
        } else {
            let d = seq.wrapping_sub(ep.start_seq);
            if !(0 < d && d < 0x8000_0000) {
                return false;
            }
            d as i128 - 1
        };
        if plen != 0 && ((payload.len() as u64) < plen as u64 || off != ep.reasm.next_off as i128) {
            return false;
        }
        let delta_ack = ack.wrapping_sub(peer.ack_seq);
        if delta_ack != 0 {
            if delta_ack as i64 >= TOO_LARGE_SEQ_DELTA || peer.ack_wraps != 0 {
                return false;
            }
            let rel_ack = ack.wrapping_sub(peer.start_seq);
            if rel_ack >= 0x8000_0000 || rel_ack as i128 - 1 > peer.reasm.next_off as i128 {
                return false; // an underflow or a gap: let the full path judge
            }
            if ack < peer.ack_seq {
                peer.ack_wraps += 1;
            }
            peer.ack_seq = ack;
        }
        ep.last_time = ts;
        if plen != 0 {
            let last = seq.wrapping_add(plen);
            if last < seq {
                ep.seq_wraps += 1;
            }
            ep.last_seq = last;
            ep.reasm
                .data(off as u64, &payload[..plen as usize], ts, budget);
        }
    }
    session.last_time = ts;
    true
}

/// Per-side counters for a fast-path segment (table.py `_account_fast`).
fn account_fast(
    flow: &mut Flow,
    side: usize,
    pkt: &Packet,
    ts: f64,
    plen: u32,
    samples: u64,
    max_procs: u64,
) {
    flow.last_ts = ts;
    let st = &mut flow.sides[side];
    // Python's fast path takes the first IP ID step from -1 (no `if n:` guard): mirrored.
    st.count(pkt, ts, plen, true, samples, true);
    st.last_seq = pkt.seq as i64;
    st.last_plen = plen as i64;
    let open = st.rst_open != 0;
    if plen != 0 && st.first_data_ts.is_none() {
        st.first_data_ts = Some(ts);
    }
    if open {
        rsts_followed(flow, side, plen);
    }
    if pkt.proc_name.is_some() || pkt.pid.is_some() {
        proc_seen(flow, pkt, max_procs);
    }
    if pkt.iface != flow.iface {
        iface_seen(flow, pkt.iface);
    }
}

/// A non-RST packet of `side`: each of its RSTs counts what followed.
fn rsts_followed(flow: &mut Flow, side: usize, plen: u32) {
    for open in flow.rsts.iter_mut().filter(|open| open.side == side) {
        open.ev.packets_after += 1;
        open.ev.data_after += plen as u64;
    }
}

/// table.py `_decide_by_content`: a midstream flow's first payload may say who the client is.
fn decide_by_content(flow: &mut Flow, side: usize, payload: &[u8]) {
    flow.decided = true;
    let role = match client_side_by_content(payload) {
        Some(r) => r,
        None => return,
    };
    let client = if role == 0 { side } else { 1 - side };
    if client != flow.orig_side() {
        if let Some(session) = flow.session.as_mut() {
            session.flip_roles();
        }
        flow.flipped = !flow.flipped;
    }
}

/// table.py `_rst`: count a RST and keep its evidence (up to `max_rsts` per flow).
fn rst(flow: &mut Flow, side: usize, pkt: &Packet, ts: f64, max_rsts: u64) {
    flow.sides[side].rst_count += 1;
    flow.rst_total += 1;
    if flow.rsts.len() as u64 >= max_rsts {
        return;
    }
    let session = match &flow.session {
        Some(s) => s,
        None => return,
    };
    let ep = &session.eps[side];
    let peer = &session.eps[1 - side];
    let seq = pkt.seq;
    let mut rel_seq = None;
    let mut at_next = None;
    if ep.state != INACTIVE {
        rel_seq = Some(ep.relative_seq(seq, ep.last_seq, ep.seq_wraps).0);
        at_next = Some(seq == ep.last_seq);
    }
    // What the receiver expects next: the highest ACK it sent for our data.
    let mut at_peer_ack = None;
    if peer.state != INACTIVE && ep.ack_seq != ep.start_seq {
        at_peer_ack = Some(seq == ep.ack_seq);
    }
    let since_peer = flow.sides[1 - side].last_ts.map(|last| ts - last);
    let st = &flow.sides[side];
    let ev = RstOpen::new(
        side,
        pkt,
        rel_seq,
        at_next,
        at_peer_ack,
        since_peer,
        st.last_ttl,
        st.last_ip_id,
    );
    flow.sides[side].rst_open += 1;
    flow.rsts.push(ev);
}

/// table.py `_tcp_control`: SYN/FIN times; returns the deadline to push if the session's
/// next timer is now earlier than the flow's.
fn tcp_control(
    flow: &mut Flow,
    side: usize,
    pkt: &mut Packet,
    flags: u8,
    ts: f64,
    cfg: &FlowConfig,
) -> Option<f64> {
    if flags & SYN != 0 && flags & RST == 0 {
        let other_last_syn = flow.sides[1 - side].last_syn_ts;
        let st = &mut flow.sides[side];
        st.syn_count += 1;
        st.last_syn_ts = Some(ts);
        if st.syn_ts.is_none() {
            st.syn_ts = Some(ts);
            st.syn_window = Some(pkt.win);
            st.syn_ttl = Some(pkt.ttl);
            st.syn_options = std::mem::take(&mut pkt.tcp_options);
        }
        if flags & ACK != 0 && st.synack_ts.is_none() {
            st.synack_ts = Some(ts);
            flow.syn_for_synack = other_last_syn;
        }
    }
    if flags & FIN != 0 && flow.sides[side].fin_ts.is_none() {
        flow.sides[side].fin_ts = Some(ts);
    }
    let session = flow.session.as_ref()?;
    match session.next_timer(
        cfg.tcp_attempt_timeout,
        cfg.tcp_close_linger,
        cfg.tcp_partial_close_timeout,
    ) {
        Some(t) if t < flow.pushed => Some(t),
        _ => None,
    }
}

/// Per-side counters every packet updates (table.py `_count`); see `SideStats::count`.
fn count(
    flow: &mut Flow,
    side: usize,
    pkt: &Packet,
    ts: f64,
    plen: u32,
    remember: bool,
    samples: u64,
) {
    flow.last_ts = ts;
    flow.sides[side].count(pkt, ts, plen, remember, samples, false);
}

/// table.py `_proc`: (process name, pid) pairs in order of first appearance, up to `max`.
fn proc_seen(flow: &mut Flow, pkt: &Packet, max: u64) {
    let name = pkt.proc_name.as_deref();
    if flow
        .procs
        .iter()
        .any(|(n, p)| n.as_deref() == name && *p == pkt.pid)
    {
        return;
    }
    if (flow.procs.len() as u64) < max {
        flow.procs.push((pkt.proc_name.clone(), pkt.pid));
    }
}

/// table.py `_iface`.
fn iface_seen(flow: &mut Flow, iface: u32) {
    let first = flow.iface;
    flow.ifaces
        .get_or_insert_with(|| std::iter::once(first).collect())
        .insert(iface);
}

/// The source link address in a `Packet.macs` value (table.py `_source_mac`, raw).
fn source_mac(macs: &[u8]) -> Option<Vec<u8>> {
    match macs.len() {
        0 => None,
        12 => Some(macs[6..].to_vec()),
        _ => Some(macs.to_vec()),
    }
}

/// table.py `_record`: the flow's record. Moves the flow's owned data (datagrams, errors...)
/// into it: the flow is finished.
fn record(flow: &mut Flow, reason: EndReason) -> FlowRecord {
    let o = flow.orig_side();
    let r = 1 - o;
    let proto = flow.proto;
    let (history, conn_state, open_at_end, weirds, missed_bytes) = match &flow.session {
        Some(session) => (
            session.history_str(),
            session.conn_state().to_string(),
            reason == EndReason::EndOfCapture && !session.closed(),
            session.sorted_weirds(),
            session.eps[0].missed_bytes + session.eps[1].missed_bytes,
        ),
        None => {
            let cs = if proto == PROTO_UDP {
                udp_conn_state(flow.sides[o].packets > 0, flow.sides[r].packets > 0)
            } else {
                "OTH"
            };
            (
                flow.hist.clone(),
                cs.to_string(),
                reason == EndReason::EndOfCapture,
                Vec::new(),
                0,
            )
        }
    };
    let (cs, ss) = (&flow.sides[o], &flow.sides[r]);
    let syn_ts = match cs.syn_ts {
        Some(t) if cs.synack_ts != Some(t) => Some(t),
        _ => None,
    };
    let synack_ts = ss.synack_ts;
    let ack_ts = cs.hs_ack_ts;
    let rtt1 = match (synack_ts, flow.syn_for_synack) {
        (Some(sa), Some(s)) if sa >= s => Some(sa - s),
        _ => None,
    };
    let rtt2 = match (ack_ts, synack_ts) {
        (Some(a), Some(sa)) => Some(a - sa),
        _ => None,
    };
    let truncated_start = proto == PROTO_TCP && cs.syn_count == 0;
    let client_mac = source_mac(&cs.macs);
    let server_mac = source_mac(&ss.macs);
    let rsts = flow.rsts.iter().map(|ev| ev.record(o)).collect();
    let ifaces = match &flow.ifaces {
        None => vec![flow.iface],
        Some(set) => set.iter().copied().collect(),
    };
    let client = direction(flow, o);
    let server = direction(flow, r);
    FlowRecord {
        uid_dup: flow.dup,
        first_src: flow.addrs[0],
        first_sport: flow.ports[0],
        first_dst: flow.addrs[1],
        first_dport: flow.ports[1],
        proto,
        ip_version: flow.ipv,
        client_ip: flow.addrs[o],
        client_port: flow.ports[o],
        server_ip: flow.addrs[r],
        server_port: flow.ports[r],
        ts_start: flow.first_ts,
        ts_end: flow.last_ts,
        conn_state,
        history,
        client,
        server,
        syn_ts,
        synack_ts,
        ack_ts,
        rtt_syn_synack: rtt1,
        rtt_synack_ack: rtt2,
        rsts,
        rst_total: flow.rst_total,
        icmp_errors: std::mem::take(&mut flow.icmp_errors),
        icmp_error_total: flow.icmp_count,
        processes: std::mem::take(&mut flow.procs),
        ifaces,
        vlan: std::mem::take(&mut flow.vlan),
        weirds,
        missed_bytes,
        truncated_start,
        open_at_end,
        end_reason: reason,
        flipped: flow.flipped,
        client_mac,
        server_mac,
    }
}

/// table.py `_direction`: what one physical side sent.
fn direction(flow: &mut Flow, side: usize) -> DirectionStats {
    let (state, zeek_bytes, stream, rxmt, win0, missed): (
        &'static str,
        u64,
        Option<StreamData>,
        u64,
        u64,
        u64,
    ) = match &flow.session {
        Some(session) => {
            let ep = &session.eps[side];
            let peer_state = session.eps[1 - side].state;
            (
                STATE_NAMES
                    .get(ep.state as usize)
                    .copied()
                    .unwrap_or("INACTIVE"),
                ep.size(peer_state),
                Some(ep.reasm.result()),
                ep.rxmt_cnt,
                ep.win0_cnt,
                ep.missed_bytes,
            )
        }
        None => {
            let st = &flow.sides[side];
            (
                if st.packets != 0 {
                    "active"
                } else {
                    "inactive"
                },
                st.payload_bytes,
                None,
                0,
                0,
                0,
            )
        }
    };
    let st = &mut flow.sides[side];
    DirectionStats {
        packets: st.packets,
        ip_bytes: st.ip_bytes,
        payload_bytes: st.payload_bytes,
        zeek_bytes,
        first_ts: st.first_ts,
        last_ts: st.last_ts,
        ttls: st.ttl_counts(),
        ip_ids: std::mem::take(&mut st.ip_ids),
        ip_id_pattern: st.ip_id_pattern(),
        state,
        syn_ts: st.syn_ts,
        syn_count: st.syn_count,
        syn_window: st.syn_window,
        syn_ttl: st.syn_ttl,
        syn_options: std::mem::take(&mut st.syn_options),
        first_data_ts: st.first_data_ts,
        fin_ts: st.fin_ts,
        rst_count: st.rst_count,
        retransmissions: rxmt,
        zero_windows: win0,
        missed_bytes: missed,
        stream,
        datagrams: std::mem::take(&mut st.datagrams),
        datagram_count: st.datagram_count,
        duplicates: st.duplicates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{IcmpInfo, Quoted};

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];
    const R: [u8; 4] = [10, 0, 0, 254];

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        ts: f64,
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
        data: &[u8],
    ) -> Packet {
        Packet {
            ts,
            ip_version: 4,
            src: Addr::v4(src),
            dst: Addr::v4(dst),
            proto: PROTO_TCP,
            ttl: 64,
            ip_id: Some(1),
            df: true,
            ip_len: 40 + data.len() as u32,
            sport,
            dport,
            tcp_flags: flags,
            seq,
            ack,
            win: 65535,
            tcp_options: Vec::new(),
            payload: data.to_vec(),
            payload_len: data.len() as u32,
            icmp: None,
            vlan: Vec::new(),
            iface: 0,
            proc_name: None,
            pid: None,
            fragmented: false,
            macs: Vec::new(),
        }
    }

    fn udp(ts: f64, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, data: &[u8]) -> Packet {
        let mut p = tcp(ts, src, sport, dst, dport, 0, 0, 0, data);
        p.proto = PROTO_UDP;
        p.win = 0;
        p
    }

    fn table() -> FlowTable {
        FlowTable::new(FlowConfig::default())
    }

    /// A whole connection: handshake, a request and its answer, FIN both ways.
    fn connection(t: &mut FlowTable, out: &mut Vec<FlowRecord>, ts: f64, sport: u16) {
        let (c, s) = (1000u32, 5000u32);
        t.add(tcp(ts, A, sport, B, 443, SYN, c, 0, b""), out);
        t.add(
            tcp(ts + 0.010, B, 443, A, sport, SYN | ACK, s, c + 1, b""),
            out,
        );
        t.add(
            tcp(ts + 0.011, A, sport, B, 443, ACK, c + 1, s + 1, b""),
            out,
        );
        t.add(
            tcp(
                ts + 0.012,
                A,
                sport,
                B,
                443,
                ACK | 0x08,
                c + 1,
                s + 1,
                b"\x16\x03\x01\x00\x01\x01",
            ),
            out,
        );
        t.add(
            tcp(
                ts + 0.020,
                B,
                443,
                A,
                sport,
                ACK,
                s + 1,
                c + 7,
                b"\x16\x03\x03\x00\x01\x02\x00",
            ),
            out,
        );
        // in order again: the fast path
        t.add(
            tcp(ts + 0.021, A, sport, B, 443, ACK, c + 7, s + 8, b"more"),
            out,
        );
        t.add(
            tcp(ts + 0.022, B, 443, A, sport, ACK, s + 8, c + 11, b""),
            out,
        );
        t.add(
            tcp(ts + 0.030, A, sport, B, 443, FIN | ACK, c + 11, s + 8, b""),
            out,
        );
        t.add(
            tcp(ts + 0.031, B, 443, A, sport, FIN | ACK, s + 8, c + 12, b""),
            out,
        );
        t.add(
            tcp(ts + 0.032, A, sport, B, 443, ACK, c + 12, s + 9, b""),
            out,
        );
    }

    #[test]
    fn a_closed_connection_ends_after_the_linger() {
        let mut t = table();
        let mut out = Vec::new();
        connection(&mut t, &mut out, 100.0, 50000);
        assert!(out.is_empty());
        assert_eq!(t.len(), 1);
        // The SYN's attempt timer (stale by now: it fires nothing) is still the heap's first.
        assert_eq!(t.next_timer(), 105.0);
        t.advance(105.0, &mut out);
        assert!(out.is_empty());
        t.advance(106.0, &mut out);
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!(r.end_reason, EndReason::Closed);
        assert_eq!(r.conn_state, "SF");
        assert_eq!(r.history, "ShADdaFf");
        assert_eq!(r.client_ip, Addr::v4(A));
        assert_eq!(r.client.packets, 6);
        assert_eq!(r.server.packets, 4);
        assert_eq!(r.client.zeek_bytes, 10);
        let stream = r
            .client
            .stream
            .as_ref()
            .map(|s| s.data.clone())
            .unwrap_or_default();
        assert_eq!(stream, b"\x16\x03\x01\x00\x01\x01more".to_vec());
        assert_eq!(r.synack_ts, Some(100.010));
        assert_eq!(r.rtt_syn_synack, Some(100.010 - 100.0));
        assert!(!r.flipped && !r.truncated_start && !r.open_at_end);
        assert_eq!(t.len(), 0);
        assert_eq!(t.flows_emitted, 1);
    }

    #[test]
    fn a_synack_first_makes_its_receiver_the_client() {
        let mut t = table();
        let mut out = Vec::new();
        t.add(tcp(1.0, B, 443, A, 50000, SYN | ACK, 5, 11, b""), &mut out);
        t.flush(&mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].flipped);
        assert_eq!(out[0].client_ip, Addr::v4(A));
        assert_eq!(out[0].history, "^h");
        assert_eq!(out[0].first_src, Addr::v4(B));
        assert_eq!(out[0].end_reason, EndReason::EndOfCapture);
        assert!(out[0].open_at_end);
    }

    #[test]
    fn midstream_roles_follow_the_content() {
        let mut t = table();
        let mut out = Vec::new();
        // Ports say nothing (two ephemeral ones); the second side's ClientHello decides.
        t.add(tcp(1.0, A, 40000, B, 50000, ACK, 1, 1, b""), &mut out);
        t.add(
            tcp(
                1.1,
                B,
                50000,
                A,
                40000,
                ACK | 0x08,
                1,
                1,
                b"\x16\x03\x01\x00\x01\x01",
            ),
            &mut out,
        );
        t.flush(&mut out);
        assert_eq!(out[0].client_ip, Addr::v4(B));
        assert!(out[0].flipped);
        assert!(out[0].truncated_start);
    }

    #[test]
    fn udp_port_rule_and_history() {
        let mut t = table();
        let mut out = Vec::new();
        t.add(udp(1.0, B, 53, A, 40000, b"answer"), &mut out);
        t.add(udp(1.5, A, 40000, B, 53, b"query"), &mut out);
        t.flush(&mut out);
        let r = &out[0];
        assert_eq!(r.history, "^dD");
        assert_eq!(r.conn_state, "SF");
        assert_eq!(r.client_ip, Addr::v4(A));
        assert_eq!(r.server.datagrams.len(), 1);
        assert_eq!(r.server.datagrams[0].payload, b"answer".to_vec());
        assert_eq!(r.client.state, "active");
    }

    #[test]
    fn an_unanswered_syn_times_out() {
        let mut t = table();
        let mut out = Vec::new();
        t.add(tcp(10.0, A, 50000, B, 443, SYN, 1, 0, b""), &mut out);
        t.add(tcp(14.0, A, 50001, B, 443, SYN, 1, 0, b""), &mut out);
        assert!(out.is_empty());
        t.add(udp(15.0, A, 1, B, 2, b""), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end_reason, EndReason::AttemptTimeout);
        assert_eq!(out[0].conn_state, "S0");
        assert_eq!(out[0].client_port, 50000);
    }

    #[test]
    fn a_full_table_evicts_the_nearest_deadline() {
        let mut t = FlowTable::new(FlowConfig {
            max_flows: 2,
            ..FlowConfig::default()
        });
        let mut out = Vec::new();
        t.add(udp(1.0, A, 40000, B, 53, b"q"), &mut out); // deadline 61
        t.add(tcp(2.0, A, 50000, B, 443, SYN, 1, 0, b""), &mut out); // attempt deadline 7
        t.add(udp(3.0, A, 40001, B, 53, b"q"), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end_reason, EndReason::Evicted);
        assert_eq!(out[0].proto, PROTO_TCP);
        assert_eq!(t.weird.get("flow_table_full"), 1);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_syn_with_a_new_isn_after_the_close_reuses_the_ports() {
        let mut t = table();
        let mut out = Vec::new();
        connection(&mut t, &mut out, 100.0, 50000);
        t.add(tcp(101.0, A, 50000, B, 443, SYN, 777, 0, b""), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end_reason, EndReason::Reused);
        assert_eq!(t.len(), 1);
        assert_eq!(t.weird.get("premature_connection_reuse"), 1);
    }

    #[test]
    fn the_clock_going_back_ends_every_flow_but_a_continued_connection() {
        let mut t = table();
        let mut out = Vec::new();
        connection(&mut t, &mut out, 1000.0, 50000);
        t.add(udp(1000.5, A, 40000, B, 53, b"q"), &mut out);
        t.add(tcp(1000.6, A, 50001, B, 443, ACK, 1, 1, b""), &mut out);
        // One outlier is held, then released when the clock is seen again.
        t.add(udp(10.0, A, 40002, B, 53, b"old"), &mut out);
        assert_eq!(t.len(), 3);
        t.add(udp(1000.7, A, 40000, B, 53, b"q"), &mut out);
        assert_eq!(t.len(), 4);
        assert_eq!(t.weird.get("time_went_backwards"), 0);
        // Three in a row: a time jump. The connection on 50001 continues (no SYN).
        t.add(tcp(20.0, A, 50001, B, 443, ACK, 1, 1, b""), &mut out);
        t.add(udp(20.1, A, 40003, B, 53, b"q"), &mut out);
        t.add(udp(20.2, A, 40004, B, 53, b"q"), &mut out);
        assert_eq!(t.weird.get("time_went_backwards"), 1);
        let jumped: Vec<u16> = out
            .iter()
            .filter(|r| r.end_reason == EndReason::TimeJump)
            .map(|r| r.client_port)
            .collect();
        assert_eq!(jumped, vec![50000, 40000, 40002]);
        assert_eq!(t.len(), 3);
        out.clear();
        t.flush(&mut out);
        let ports: Vec<u16> = out.iter().map(|r| r.client_port).collect();
        assert_eq!(ports, vec![50001, 40003, 40004]);
        assert_eq!(out[0].client.packets, 2);
    }

    #[test]
    fn icmp_errors_attach_to_the_flow_they_quote() {
        let mut t = table();
        let mut out = Vec::new();
        t.add(tcp(1.0, A, 50000, B, 443, SYN, 1, 0, b""), &mut out);
        let mut err = udp(1.1, R, 0, A, 0, b"");
        err.proto = PROTO_ICMP;
        let quoted = Quoted {
            ip_version: 4,
            src: Addr::v4(A),
            dst: Addr::v4(B),
            proto: PROTO_TCP,
            sport: 50000,
            dport: 443,
            seq: 1,
            ip_id: None,
        };
        err.icmp = Some(IcmpInfo {
            type_: 3,
            code: 4,
            rest: 0,
            mtu: 1400,
            quoted: Some(quoted.clone()),
        });
        t.add(err.clone(), &mut out);
        // The same error about a flow the table does not hold is a flow of its own.
        let mut other = err.clone();
        if let Some(i) = other.icmp.as_mut() {
            i.quoted = Some(Quoted { sport: 1, ..quoted });
        }
        t.add(other, &mut out);
        let mut echo = err;
        echo.icmp = Some(IcmpInfo {
            type_: 8,
            code: 0,
            rest: 0,
            mtu: 0,
            quoted: None,
        });
        t.add(echo, &mut out);
        t.flush(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].icmp_error_total, 1);
        assert_eq!(out[0].icmp_errors[0].reporter, Addr::v4(R));
        assert_eq!(out[0].icmp_errors[0].about, Side::Client);
        assert_eq!(out[0].icmp_errors[0].mtu, 1400);
        assert_eq!(
            (out[1].proto, out[1].client_port, out[1].server_port),
            (PROTO_ICMP, 3, 4)
        );
        assert_eq!(
            (
                out[2].client_port,
                out[2].server_port,
                out[2].conn_state.as_str()
            ),
            (8, 0, "OTH")
        );
    }

    #[test]
    fn unhandled_packets_are_counted() {
        let mut t = table();
        let mut out = Vec::new();
        let mut gre = udp(1.0, A, 0, B, 0, b"");
        gre.proto = 47;
        t.add(gre, &mut out);
        let mut icmp = udp(1.0, A, 0, B, 0, b"");
        icmp.proto = PROTO_ICMP;
        t.add(icmp, &mut out);
        let mut frag = udp(1.0, A, 0, B, 0, b"");
        frag.fragmented = true;
        t.add(frag, &mut out);
        assert_eq!(t.len(), 0);
        assert_eq!(t.packets, 3);
        assert_eq!(t.weird.get("flow_unhandled_ip_proto"), 1);
        assert_eq!(t.weird.get("icmp_without_header"), 1);
        assert_eq!(t.weird.get("fragment_without_transport"), 1);
    }

    #[test]
    fn rst_evidence_counts_what_follows() {
        let mut t = table();
        let mut out = Vec::new();
        connection(&mut t, &mut out, 100.0, 50000);
        t.add(tcp(100.5, B, 443, A, 50000, RST, 5009, 0, b""), &mut out);
        t.add(
            tcp(100.6, B, 443, A, 50000, ACK, 5009, 1012, b"late"),
            &mut out,
        );
        t.flush(&mut out);
        let r = &out[0];
        assert_eq!(r.rst_total, 1);
        assert_eq!(r.rsts[0].sender, Side::Server);
        assert_eq!(r.rsts[0].packets_after, 1);
        assert_eq!(r.rsts[0].data_after, 4);
        assert_eq!(r.rsts[0].seq_at_next, Some(true));
    }

    #[test]
    fn duplicates_are_told_from_retransmissions() {
        let mut t = table();
        let mut out = Vec::new();
        connection(&mut t, &mut out, 100.0, 50000);
        let p = tcp(100.1, A, 50001, B, 443, ACK, 10, 10, b"data");
        t.add(p.clone(), &mut out);
        t.add(
            Packet {
                ts: 100.1005,
                ..p.clone()
            },
            &mut out,
        );
        t.add(Packet { ts: 100.5, ..p }, &mut out);
        t.flush(&mut out);
        let r = out
            .iter()
            .find(|r| r.first_sport == 50001)
            .map(|r| r.client.duplicates);
        assert_eq!(r, Some(1));
    }
}
