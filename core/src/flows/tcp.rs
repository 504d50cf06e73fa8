//! Zeek's TCP endpoint state machine, history letters and conn_state, ported
//! (Python reference: `analyzer/flows/tcp.py`, itself a port of Zeek's TCPSessionAdapter.cc,
//! TCP.cc, TCP_Endpoint.{h,cc}, Conn.cc and conn/main.zeek; names follow Zeek's).
//!
//! Pure: no clock, no I/O; times are packet timestamps passed in.
//!
//! Layout difference from Python: Python's `TCPSession` holds `orig`/`resp` references to
//! two `TCPEndpoint`s that the table also holds as `flow.eps` (indexed by physical side).
//! Here the session owns both endpoints in `eps`, indexed by physical side (`TCPEndpoint::side`),
//! and `orig_idx` says which one is the originator (`orig()`/`resp()` give Python's
//! `session.orig`/`session.resp`). Methods that Python calls with an endpoint take its side.
//! The table's shared `ReassemblyBudget` is passed into the calls that may store bytes.

use crate::flows::reassembly::{ReassemblyBudget, StreamReassembler};
use crate::record::EndReason;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;

/// Zeek's TCP_ENDPOINT_* (tcp.py `EndpointState` and its plain-int copies).
pub const INACTIVE: u8 = 0;
pub const SYN_SENT: u8 = 1;
pub const SYN_ACK_SENT: u8 = 2;
pub const PARTIAL: u8 = 3;
pub const ESTABLISHED: u8 = 4;
pub const CLOSED: u8 = 5;
pub const RESET: u8 = 6;

/// TCP_Endpoint::HistoryMasks; the responder's are shifted left by 16.
pub const HIST_SYN_PKT: u32 = 0x1;
pub const HIST_FIN_PKT: u32 = 0x2;
pub const HIST_RST_PKT: u32 = 0x4;
pub const HIST_FIN_RST_PKT: u32 = 0x8;
pub const HIST_DATA_PKT: u32 = 0x10;
pub const HIST_ACK_PKT: u32 = 0x20;
pub const HIST_MULTI_FLAG_PKT: u32 = 0x40;
/// Connection-level ('X': analysis partial), never shifted.
pub const HIST_UNKNOWN_PKT: u32 = 0x400;

pub const TOO_LARGE_SEQ_DELTA: i64 = 1_048_576;
/// `first_packet_seen` bits (tcp.py `_ORIG`, `_RESP`).
pub const FPS_ORIG: u8 = 1;
pub const FPS_RESP: u8 = 2;
/// SYN-ACK ISNs remembered per side (tcp.py `_MAX_ALT_ISNS`).
pub const MAX_ALT_ISNS: usize = 4;

/// Signed 32-bit difference a - b (Zeek's seq_delta; tcp.py `seq_delta`).
pub fn seq_delta(a: u32, b: u32) -> i64 {
    a.wrapping_sub(b) as i32 as i64
}

/// One side of a TCP connection (Zeek's TCP_Endpoint; tcp.py `TCPEndpoint`), plus its reassembler.
#[derive(Debug, Clone)]
pub struct TCPEndpoint {
    /// Which address of the flow this endpoint is (0: the first packet's source).
    pub side: usize,
    pub state: u8,
    pub prev_state: u8,
    pub is_orig: bool,
    pub start_seq: u32,
    pub last_seq: u32,
    pub ack_seq: u32,
    pub seq_wraps: u64,
    pub ack_wraps: u64,
    pub fin_seq: i64,
    pub fin_cnt: u64,
    pub rst_cnt: u64,
    pub did_close: bool,
    pub hist_last_syn: i64,
    pub hist_last_fin: i64,
    pub hist_last_rst: i64,
    pub rxmt_cnt: u64,
    pub rxmt_thresh: u64,
    pub win0_cnt: u64,
    pub win0_thresh: u64,
    pub gap_cnt: u64,
    pub gap_thresh: u64,
    pub chk_cnt: u64,
    pub chk_thresh: u64,
    pub start_time: f64,
    pub last_time: f64,
    /// Bytes in content gaps Zeek would report for this side (conn.log missed_bytes).
    pub missed_bytes: u64,
    pub reasm: StreamReassembler,
    /// Other ISNs this side's SYN-ACKs carried: the first `alt_isns_len` entries, in order.
    alt_isns: [u32; MAX_ALT_ISNS],
    alt_isns_len: usize,
}

impl TCPEndpoint {
    /// `TCPEndpoint(is_orig, reasm, side)`.
    pub fn new(is_orig: bool, reasm: StreamReassembler, side: usize) -> TCPEndpoint {
        TCPEndpoint {
            side,
            state: INACTIVE,
            prev_state: INACTIVE,
            is_orig,
            start_seq: 0,
            last_seq: 0,
            ack_seq: 0,
            seq_wraps: 0,
            ack_wraps: 0,
            fin_seq: 0,
            fin_cnt: 0,
            rst_cnt: 0,
            did_close: false,
            hist_last_syn: 0,
            hist_last_fin: 0,
            hist_last_rst: 0,
            rxmt_cnt: 0,
            rxmt_thresh: 1,
            win0_cnt: 0,
            win0_thresh: 1,
            gap_cnt: 0,
            gap_thresh: 1,
            chk_cnt: 0,
            chk_thresh: 1,
            start_time: 0.0,
            last_time: 0.0,
            missed_bytes: 0,
            reasm,
            alt_isns: [0; MAX_ALT_ISNS],
            alt_isns_len: 0,
        }
    }

    /// Python's `alt_isns` tuple: other ISNs this side's SYN-ACKs carried (Suricata's
    /// SYN/ACK queue); the peer's first ACK picks one.
    pub fn alt_isns(&self) -> &[u32] {
        &self.alt_isns[..self.alt_isns_len]
    }

    pub fn set_state(&mut self, new_state: u8) {
        if new_state != self.state {
            self.prev_state = self.state;
            self.state = new_state;
        }
    }

    pub fn init_seqs(&mut self, start: u32, last: u32) {
        self.start_seq = start;
        self.ack_seq = start;
        self.last_seq = last;
    }

    pub fn remember_isn(&mut self, isn: u32) {
        if !self.alt_isns().contains(&isn) && self.alt_isns_len < MAX_ALT_ISNS {
            self.alt_isns[self.alt_isns_len] = isn;
            self.alt_isns_len += 1;
        }
    }

    /// `alt_isns = tuple(i for i in alt_isns if i != isn)`.
    fn forget_isn(&mut self, isn: u32) {
        let mut kept = 0;
        for i in 0..self.alt_isns_len {
            let v = self.alt_isns[i];
            if v != isn {
                self.alt_isns[kept] = v;
                kept += 1;
            }
        }
        self.alt_isns_len = kept;
    }

    /// The peer has acknowledged this side's SYN (its ISN is the real one).
    pub fn isn_acked(&self) -> bool {
        self.ack_wraps > 0 || seq_delta(self.ack_seq, self.start_seq) > 0
    }

    pub fn update_last_seq(&mut self, seq: u32) {
        if seq < self.last_seq {
            self.seq_wraps += 1;
        }
        self.last_seq = seq;
    }

    pub fn update_ack_seq(&mut self, seq: u32) {
        if seq < self.ack_seq {
            self.ack_wraps += 1;
        }
        self.ack_seq = seq;
    }

    pub fn no_data_acked(&self) -> bool {
        let ack = (self.ack_wraps << 32).wrapping_add(self.ack_seq as u64);
        let start = self.start_seq as u64;
        ack == start || ack == start + 1
    }

    /// Payload bytes by sequence numbers (Zeek's Size(): conn.log orig_bytes/resp_bytes);
    /// `peer_state` is the other endpoint's state.
    pub fn size(&self, peer_state: u8) -> u64 {
        if self.prev_state == SYN_SENT && self.state == RESET && peer_state == INACTIVE && !self.no_data_acked() {
            // A half-open connection discovered and aborted: its seqs mean nothing.
            return 0;
        }
        let last64 = (self.seq_wraps << 32).wrapping_add(self.last_seq as u64);
        let ack64 = (self.ack_wraps << 32).wrapping_add(self.ack_seq as u64);
        // uint64 arithmetic, as in Zeek.
        let mut size = ack64.max(last64).wrapping_sub(self.start_seq as u64);
        size = size.saturating_sub(1); // the SYN octet
        if self.fin_cnt > 0 && size != 0 {
            size -= 1; // the FIN octet
        }
        size
    }

    /// (relative seq, underflow) as Zeek's get_relative_seq.
    pub fn relative_seq(&self, cur: u32, last: u32, wraps: u64) -> (i64, bool) {
        let mut wraps = wraps;
        let delta = seq_delta(cur, last);
        if delta < 0 {
            if wraps != 0 && cur > last {
                wraps -= 1;
            }
        } else if delta > 0 && cur < last {
            wraps += 1;
        }
        if wraps == 0 {
            let delta = seq_delta(cur, self.start_seq);
            return (delta, delta < 0);
        }
        (
            ((wraps << 32) as i64)
                .wrapping_add(cur as i64)
                .wrapping_sub(self.start_seq as i64),
            false,
        )
    }
}

/// Zeek's ScaledHistoryEntry counters of an endpoint.
#[derive(Clone, Copy)]
enum Scaled {
    Rxmt,
    Win0,
    Gap,
    Chk,
}

/// Both endpoints, the history string and the timers of one TCP connection (tcp.py `TCPSession`).
#[derive(Debug, Clone)]
pub struct TCPSession {
    /// Both endpoints, indexed by physical side (`eps[i].side == i`).
    pub eps: [TCPEndpoint; 2],
    /// Index in `eps` of the originator (Python `session.orig`).
    pub orig_idx: usize,
    /// This connection's weirds, in first-seen order (Python's Counter; empty = None).
    pub weird: Vec<(&'static str, u64)>,
    pub max_history: u64,
    /// History letters (ASCII).
    pub history: Vec<u8>,
    pub hist_seen: u32,
    pub is_partial: bool,
    pub first_packet_seen: u8,
    pub is_active: bool,
    pub last_time: f64,
    /// The connection ends at this time whatever happens (close complete or reset).
    pub delete_at: Option<f64>,
    /// Zeek's AttemptTimer.
    pub attempt_at: Option<f64>,
    /// Zeek's PartialCloseTimer.
    pub partial_close_at: Option<f64>,
}

impl TCPSession {
    /// `TCPSession(orig, resp, max_history)`: the endpoints go to `eps[ep.side]` (their
    /// sides must be 0 and 1); `orig` becomes the originator.
    pub fn new(orig: TCPEndpoint, resp: TCPEndpoint, max_history: u64) -> TCPSession {
        let mut orig = orig;
        let mut resp = resp;
        orig.is_orig = true;
        resp.is_orig = false;
        let orig_idx = if orig.side == 1 { 1 } else { 0 };
        orig.side = orig_idx;
        resp.side = 1 - orig_idx;
        let eps = if orig_idx == 0 { [orig, resp] } else { [resp, orig] };
        TCPSession {
            eps,
            orig_idx,
            weird: Vec::new(),
            max_history,
            history: Vec::new(),
            hist_seen: 0,
            is_partial: false,
            first_packet_seen: 0,
            is_active: true,
            last_time: 0.0,
            delete_at: None,
            attempt_at: None,
            partial_close_at: None,
        }
    }

    /// Python `session.orig`.
    pub fn orig(&self) -> &TCPEndpoint {
        &self.eps[self.orig_idx]
    }
    /// Python `session.resp`.
    pub fn resp(&self) -> &TCPEndpoint {
        &self.eps[1 - self.orig_idx]
    }
    pub fn orig_mut(&mut self) -> &mut TCPEndpoint {
        &mut self.eps[self.orig_idx]
    }
    pub fn resp_mut(&mut self) -> &mut TCPEndpoint {
        &mut self.eps[1 - self.orig_idx]
    }

    /// Count one weird for this connection (`_weird`).
    pub fn add_weird(&mut self, name: &'static str) {
        for entry in self.weird.iter_mut() {
            if entry.0 == name {
                entry.1 += 1;
                return;
            }
        }
        self.weird.push((name, 1));
    }

    /// `tuple(sorted(weird.items()))`, as the record holds it.
    pub fn sorted_weirds(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.weird.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        v.sort();
        v
    }

    // history -----------------------------------------------------------------------

    pub fn add_history(&mut self, code: u8) {
        // `len(history) < max_history - 1` with Python ints (max_history 0 stays signed).
        if (self.history.len() as i128) < self.max_history as i128 - 1 {
            self.history.push(code);
        } else {
            self.limit_reached("history_truncated");
        }
    }

    /// One of our limits cut the analysis short: a weird, and 'X' once (Zeek's
    /// LimitReachedWeird adds it through CheckHistory(HIST_UNKNOWN_PKT, 'X')).
    pub fn limit_reached(&mut self, weird: &'static str) {
        self.add_weird(weird);
        if self.hist_seen & HIST_UNKNOWN_PKT == 0 {
            self.hist_seen |= HIST_UNKNOWN_PKT;
            self.history.push(b'X');
        }
    }

    /// Zeek's CheckHistory for the endpoint at `side`: true if already seen; otherwise
    /// records it and returns false.
    pub fn check_history(&mut self, side: usize, mask: u32, code: u8) -> bool {
        let mut mask = mask;
        let mut code = code;
        if !self.eps[side].is_orig {
            mask <<= 16;
            code = code.to_ascii_lowercase();
        }
        if self.hist_seen & mask == 0 {
            self.hist_seen |= mask;
            self.add_history(code);
            return false;
        }
        true
    }

    /// `_ep_history`: the letter, lower case for the responder.
    fn ep_history(&mut self, side: usize, code: u8) {
        let code = if self.eps[side].is_orig { code } else { code.to_ascii_lowercase() };
        self.add_history(code);
    }

    /// Zeek's ScaledHistoryEntry: the letter at the 1st, 10th, 100th... event.
    fn scaled(&mut self, side: usize, code: u8, which: Scaled) {
        let ep = &mut self.eps[side];
        let (cnt, thresh) = match which {
            Scaled::Rxmt => (&mut ep.rxmt_cnt, &mut ep.rxmt_thresh),
            Scaled::Win0 => (&mut ep.win0_cnt, &mut ep.win0_thresh),
            Scaled::Gap => (&mut ep.gap_cnt, &mut ep.gap_thresh),
            Scaled::Chk => (&mut ep.chk_cnt, &mut ep.chk_thresh),
        };
        let mut n = *cnt + 1;
        let t = *thresh;
        let fire = n == t;
        if fire {
            if t * 10 > 0xFFFF_FFFF {
                n = 0;
            } else {
                *thresh = t * 10;
            }
        }
        *cnt = n;
        if fire {
            self.ep_history(side, code);
        }
    }

    /// `history_str`.
    pub fn history_str(&self) -> String {
        // Letters are ASCII: every byte is a char.
        self.history.iter().map(|&b| b as char).collect()
    }

    // roles -------------------------------------------------------------------------

    /// Swap originator and responder (Zeek's FlipRoles; history gets '^').
    pub fn flip_roles(&mut self) {
        self.orig_idx = 1 - self.orig_idx;
        self.orig_mut().is_orig = true;
        self.resp_mut().is_orig = false;
        let fps = self.first_packet_seen;
        self.first_packet_seen = (if fps & FPS_ORIG != 0 { FPS_RESP } else { 0 }) | (if fps & FPS_RESP != 0 { FPS_ORIG } else { 0 });
        self.is_partial = false;
        self.add_history(b'^');
    }

    /// Zeek's IsReuse for a packet on this 5-tuple: does it start a new connection?
    pub fn is_reuse(&mut self, flags: u8, seq: u32, ts: f64, linger: f64) -> bool {
        if flags & SYN == 0 {
            return false;
        }
        let mut conn_orig = self.orig_idx;
        if flags & ACK != 0 {
            if self.orig().state != INACTIVE {
                return false; // not a half connection
            }
            conn_orig = 1 - self.orig_idx;
        }
        let (o_state, o_closed) = (self.orig().state, self.orig().did_close);
        let (r_state, r_closed, r_start) = (self.resp().state, self.resp().did_close, self.resp().start_seq);
        let c_state = self.eps[conn_orig].state;
        if !(o_closed || r_closed) {
            if seq == self.eps[conn_orig].start_seq {
                return false;
            }
            if flags & ACK == 0 && c_state == SYN_ACK_SENT && r_state == INACTIVE && seq == r_start {
                return false; // SYN and SYN-ACK seen reversed: the packet flips roles
            }
            self.add_weird(if c_state == SYN_SENT { "SYN_seq_jump" } else { "active_connection_reuse" });
        } else if ((o_state != INACTIVE && !o_closed) || (r_state != INACTIVE && !r_closed))
            && o_state != RESET
            && r_state != RESET
        {
            self.add_weird("active_connection_reuse");
        } else if ts - self.last_time < linger && o_state != RESET && r_state != RESET {
            self.add_weird("premature_connection_reuse");
        }
        true
    }

    // per packet --------------------------------------------------------------------

    /// Process one segment sent by the endpoint at physical `side` (Zeek's
    /// TCPAnalyzer::DeliverPacket). `plen` is the TCP payload length on the wire;
    /// `payload` the captured part of it (shorter when the snaplen cut the packet).
    #[allow(clippy::too_many_arguments)]
    pub fn packet(
        &mut self,
        side: usize,
        flags: u8,
        seq: u32,
        ack: u32,
        plen: u32,
        win: u16,
        ts: f64,
        payload: &[u8],
        budget: &mut ReassemblyBudget,
    ) {
        let e = side;
        let p = 1 - side;
        let is_orig = self.eps[e].is_orig;
        let syn = flags & SYN != 0;
        let fin = flags & FIN != 0;
        let rst = flags & RST != 0;
        // SetPartialStatus
        if is_orig {
            if self.first_packet_seen & FPS_ORIG == 0 {
                self.is_partial = !syn || flags & ACK != 0;
            }
        } else if self.first_packet_seen & FPS_RESP == 0 && !self.is_partial {
            self.is_partial = !syn;
        }

        let mut seg_len = plen as i64;
        if syn {
            seg_len += 1;
        }
        if fin {
            seg_len += 1;
        }
        if rst {
            seg_len -= plen as i64;
        }
        let seq_one_past = (seq as i64 + seg_len) as u32;

        let stale_synack = self.init_endpoint(e, flags, seq, seq_one_past, ts);
        let (rel_seq, seq_underflow) = if stale_synack {
            // Numbered in its own ISN's space: relative seq 0, like a repeated SYN-ACK;
            // its data (if any) is not ours.
            (0, true)
        } else {
            let ep = &self.eps[e];
            let r = ep.relative_seq(seq, ep.last_seq, ep.seq_wraps);
            if r.1 && !rst {
                self.add_weird("TCP_seq_underflow_or_misorder");
            }
            r
        };

        self.update_history(flags, e, rel_seq, plen);
        // update_window: only the zero-window history letter is kept.
        if win == 0 && !rst && self.eps[p].state != CLOSED && self.eps[e].state != RESET {
            self.scaled(e, b'W', Scaled::Win0);
        }

        if !self.orig().did_close || !self.resp().did_close {
            self.last_time = ts;
        }

        if syn {
            if rst {
                self.add_weird("TCP_christmas");
            }
            if flags & URG != 0 {
                self.add_weird("baroque_SYN");
            }
            if plen > 0 {
                self.add_weird("SYN_with_data");
            }
        }
        if fin {
            let ep = &mut self.eps[e];
            ep.fin_cnt += 1;
            ep.fin_seq = rel_seq + seg_len;
        }
        if rst {
            self.eps[e].rst_cnt += 1;
        }

        let mut rel_ack: i64 = 0;
        if flags & ACK != 0 {
            if self.eps[p].alt_isns_len > 0 && !syn && !rst {
                self.pick_isn(p, ack);
            }
            if self.eps[p].state == INACTIVE {
                rel_ack = 1;
                self.init_peer(p, e, flags, ack);
            } else {
                let peer = &self.eps[p];
                let (r, ack_underflow) = peer.relative_seq(ack, peer.ack_seq, peer.ack_wraps);
                rel_ack = r;
                if ack_underflow {
                    rel_ack = 0;
                    self.add_weird("TCP_ack_underflow_or_misorder");
                } else if !rst {
                    let delta_ack = seq_delta(ack, self.eps[p].ack_seq);
                    if !(ack == 0 && delta_ack > TOO_LARGE_SEQ_DELTA) && delta_ack > 0 {
                        self.eps[p].update_ack_seq(ack);
                    }
                }
            }
        }

        // A stale SYN-ACK's numbers are another ISN's: they must not move this side's last seq.
        let delta_last = if stale_synack { 0 } else { self.update_last_seq(e, seq_one_past, flags, plen) };
        self.eps[e].last_time = ts;

        let do_close = self.update_state_machine(ts, e, p, seq, ack, plen, delta_last, flags);

        if flags & ACK != 0 {
            self.ack_received(p, e, rel_ack, budget);
        }

        if !is_orig {
            self.first_packet_seen |= FPS_RESP;
        } else {
            self.first_packet_seen |= FPS_ORIG;
        }

        if plen > 0 && !rst && !seq_underflow {
            if (payload.len() as u64) < plen as u64 {
                self.add_weird("truncated_tcp_payload");
            } else {
                let off = if syn { rel_seq } else { rel_seq - 1 };
                if off >= 0 {
                    let reasm = &mut self.eps[e].reasm;
                    let dropped = reasm.pending_dropped;
                    reasm.data(off as u64, &payload[..plen as usize], ts, budget);
                    if reasm.pending_dropped != dropped {
                        self.limit_reached("tcp_pending_full");
                    }
                }
            }
        }

        if do_close {
            self.connection_closed(e, p);
        }
    }

    /// A segment with a bad checksum: Zeek records 'C' and drops it.
    pub fn bad_checksum(&mut self, side: usize) {
        self.add_weird("bad_TCP_checksum");
        self.scaled(side, b'C', Scaled::Chk);
    }

    // Zeek's static helpers, in TCP.cc order ------------------------------------------

    /// Zeek's Init_Endpoint; true for a stale SYN-ACK, whose numbers are then ignored.
    fn init_endpoint(&mut self, e: usize, flags: u8, first_seg_seq: u32, last_seq: u32, t: f64) -> bool {
        let peer_state = self.eps[1 - e].state;
        let syn = flags & SYN != 0;
        let ep = &self.eps[e];
        let state = ep.state;
        if syn
            && ep.alt_isns_len > 0
            && state != ESTABLISHED
            && state != PARTIAL
            && ep.isn_acked()
            && ep.alt_isns().contains(&first_seg_seq)
        {
            // Another copy of a SYN-ACK already known to be stale, e.g. after the close.
            return true;
        }
        if state == INACTIVE {
            let ep = &mut self.eps[e];
            let mut last_seq = last_seq;
            if syn {
                ep.start_seq = first_seg_seq;
                ep.ack_seq = first_seg_seq;
            } else {
                // Partial connection: number as though a SYN had been seen.
                ep.start_seq = first_seg_seq.wrapping_sub(1);
                ep.ack_seq = first_seg_seq.wrapping_sub(1);
                last_seq = first_seg_seq;
            }
            ep.last_seq = last_seq;
            ep.start_time = t;
        } else if state == SYN_SENT || state == SYN_ACK_SENT {
            if syn && first_seg_seq != ep.start_seq {
                self.add_weird("SYN_seq_jump");
                let ep = &mut self.eps[e];
                if flags & ACK != 0 {
                    let old = ep.start_seq;
                    ep.remember_isn(old);
                }
                ep.init_seqs(first_seg_seq, last_seq);
            }
        } else if state == ESTABLISHED || state == PARTIAL {
            if syn {
                if ep.size(peer_state) > 0 {
                    self.add_weird("SYN_inside_connection");
                }
                if first_seg_seq != self.eps[e].start_seq {
                    self.add_weird("SYN_seq_jump");
                    let ep = &mut self.eps[e];
                    if flags & ACK != 0 && ep.isn_acked() {
                        // Zeek re-bases on any SYN here. But a SYN-ACK with another ISN after
                        // the peer acknowledged ours is a stale copy (a load balancer's other
                        // backend answering a retransmitted SYN): re-basing would lose every
                        // later byte of this side. Suricata and Wireshark keep the acked ISN.
                        ep.remember_isn(first_seg_seq);
                        return true;
                    }
                    if flags & ACK != 0 {
                        let old = ep.start_seq;
                        ep.remember_isn(old); // the peer's ACK may still pick it
                    }
                }
                self.eps[e].init_seqs(first_seg_seq, last_seq);
            }
        } else if state == RESET && syn && ep.prev_state == INACTIVE {
            // Seqs came from a RST (maybe injected); the SYN is more trustworthy.
            self.eps[e].init_seqs(first_seg_seq, last_seq);
        }
        false
    }

    /// `_update_history`: the letters of one segment.
    fn update_history(&mut self, flags: u8, e: usize, rel_seq: i64, plen: u32) {
        let syn = flags & SYN != 0;
        let fin = flags & FIN != 0;
        let rst = flags & RST != 0;
        let bits_set = syn as u8 + fin as u8 + rst as u8;
        if bits_set > 1 {
            if fin && rst {
                self.check_history(e, HIST_FIN_RST_PKT, b'I');
            } else {
                self.check_history(e, HIST_MULTI_FLAG_PKT, b'Q');
            }
        } else if bits_set == 1 {
            if syn {
                let code = if flags & ACK != 0 { b'H' } else { b'S' };
                if self.check_history(e, HIST_SYN_PKT, code) && rel_seq != self.eps[e].hist_last_syn {
                    self.ep_history(e, code);
                }
                self.eps[e].hist_last_syn = rel_seq;
            }
            if fin {
                // A FIN's sequence number counts after its data.
                let at = rel_seq + plen as i64;
                if self.check_history(e, HIST_FIN_PKT, b'F') && at != self.eps[e].hist_last_fin {
                    self.ep_history(e, b'F');
                }
                self.eps[e].hist_last_fin = at;
            }
            if rst {
                if self.check_history(e, HIST_RST_PKT, b'R') && rel_seq != self.eps[e].hist_last_rst {
                    self.ep_history(e, b'R');
                }
                self.eps[e].hist_last_rst = rel_seq;
            }
        } else if plen != 0 {
            self.check_history(e, HIST_DATA_PKT, b'D');
        } else if flags & ACK != 0 {
            self.check_history(e, HIST_ACK_PKT, b'A');
        }
    }

    /// `_pick_isn`: the first ACK of the peer's SYN-ACK chooses among the ISNs its
    /// SYN-ACKs carried.
    fn pick_isn(&mut self, p: usize, ack: u32) {
        let peer = &mut self.eps[p];
        if peer.isn_acked() || ack == peer.start_seq.wrapping_add(1) {
            return;
        }
        if peer.reasm.next_off != 0 || peer.reasm.pending_bytes() != 0 {
            return; // its data is already numbered from the latest ISN: re-basing would splice two streams
        }
        for i in 0..peer.alt_isns_len {
            let isn = peer.alt_isns[i];
            if ack == isn.wrapping_add(1) {
                let old = peer.start_seq;
                peer.forget_isn(isn);
                peer.remember_isn(old);
                peer.init_seqs(isn, ack);
                peer.hist_last_syn = 0;
                return;
            }
        }
    }

    /// `_init_peer`: the first ACK numbers a peer seen for the first time.
    fn init_peer(&mut self, p: usize, e: usize, flags: u8, ack_seq: u32) {
        let st = self.eps[e].state;
        if flags & (SYN | FIN | RST) == 0
            && (st == SYN_SENT || st == SYN_ACK_SENT || st == ESTABLISHED)
            && self.weird.is_empty()
        {
            // We sent a SYN that has not roused the other side, yet we ack its data
            // (Zeek reports it only if the connection had no weird yet).
            self.add_weird("possible_split_routing");
        }
        let start = ack_seq.wrapping_sub(1);
        let peer = &mut self.eps[p];
        peer.start_seq = start;
        peer.ack_seq = start;
        peer.last_seq = start;
    }

    /// `_update_last_seq`: returns the signed advance of `last_seq`.
    fn update_last_seq(&mut self, e: usize, last_seq: u32, flags: u8, plen: u32) -> i64 {
        let ep = &mut self.eps[e];
        let delta_last = seq_delta(last_seq, ep.last_seq);
        if flags & (SYN | RST) != 0 && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&delta_last) {
            // Do not trust wild SYN/RST sequence numbers.
        } else if flags & FIN != 0 && ep.last_seq == ep.start_seq.wrapping_add(1) {
            ep.update_last_seq(last_seq); // only SYN and FIN seen (> 2 GB connections)
        } else if ep.state == RESET {
            // Do not trust anything after a RST.
        } else if delta_last > 0 {
            ep.update_last_seq(last_seq);
        } else if plen > 0 {
            self.scaled(e, b'T', Scaled::Rxmt);
        }
        delta_last
    }

    /// `_ack_received`: the data of endpoint `e` is acknowledged up to relative seq
    /// `rel_ack` by `p` (TCP_Reassembler::AckReceived).
    fn ack_received(&mut self, e: usize, p: usize, rel_ack: i64, budget: &mut ReassemblyBudget) {
        let mut rel_ack = rel_ack;
        let ep = &self.eps[e];
        if ep.fin_cnt > 0 && rel_ack >= ep.fin_seq {
            rel_ack = ep.fin_seq - 1;
        }
        let up_to = rel_ack - 1; // stream offset
        if up_to <= ep.reasm.next_off as i64 {
            return;
        }
        if rel_ack <= 2 && self.is_partial {
            // Faked-up partial ISN: a first ACK complaining about octet 1 or 2 means nothing.
            return;
        }
        let reasm = &mut self.eps[e].reasm;
        let before = reasm.gap_bytes;
        let holes = reasm.ack(up_to as u64, budget);
        let after = reasm.gap_bytes;
        if holes != 0 && clean(&self.eps[e]) && clean(&self.eps[p]) {
            for _ in 0..holes {
                self.scaled(e, b'G', Scaled::Gap);
            }
            self.eps[e].missed_bytes += after - before;
        }
    }

    // UpdateStateMachine ------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn update_state_machine(
        &mut self,
        t: f64,
        e: usize,
        p: usize,
        base_seq: u32,
        ack_seq: u32,
        plen: u32,
        delta_last: i64,
        flags: u8,
    ) -> bool {
        let state = self.eps[e].state;
        if state == INACTIVE {
            return self.inactive(t, e, p, base_seq, ack_seq, plen, flags);
        }
        if state == SYN_SENT || state == SYN_ACK_SENT {
            return self.syn_sent(e, p, plen, flags);
        }
        if state == ESTABLISHED || state == PARTIAL {
            return self.established(e, p, flags);
        }
        if state == CLOSED {
            return self.closed_state(t, e, p, delta_last, flags);
        }
        // RESET
        if flags & SYN != 0 {
            self.add_weird("SYN_after_reset");
        }
        if flags & FIN != 0 {
            self.add_weird("FIN_after_reset");
        }
        if plen > 0 && flags & RST == 0 {
            self.add_weird("data_after_reset");
        }
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn inactive(&mut self, t: f64, e: usize, p: usize, base_seq: u32, ack_seq: u32, plen: u32, flags: u8) -> bool {
        let mut do_close = false;
        let is_orig = self.eps[e].is_orig; // as Zeek, keep the value from before any flip below
        if flags & SYN != 0 {
            if is_orig {
                if flags & ACK != 0 {
                    self.add_weird("connection_originator_SYN_ack");
                    self.eps[e].set_state(SYN_ACK_SENT);
                } else {
                    self.eps[e].set_state(SYN_SENT);
                }
                self.attempt_at = Some(t); // the table adds the attempt delay
            } else {
                let peer_state = self.eps[p].state;
                if flags & ACK != 0 {
                    let peer = &self.eps[p];
                    if peer_state != INACTIVE
                        && peer_state != PARTIAL
                        && !seq_between(ack_seq, peer.start_seq, peer.last_seq)
                    {
                        self.add_weird("bad_SYN_ack");
                    }
                } else if peer_state == SYN_ACK_SENT && base_seq == self.eps[e].start_seq {
                    // SYN and SYN-ACK seen reversed: flip and establish.
                    self.is_partial = false;
                    self.flip_roles();
                    self.eps[p].set_state(ESTABLISHED);
                    self.first_packet_seen |= FPS_ORIG;
                } else {
                    self.add_weird("simultaneous_open");
                }
                let peer_state = self.eps[p].state;
                if peer_state == SYN_SENT {
                    self.eps[p].set_state(ESTABLISHED);
                } else if peer_state == INACTIVE {
                    self.add_weird("unsolicited_SYN_response");
                }
                self.eps[e].set_state(ESTABLISHED);
            }
        }
        if flags & FIN != 0 {
            self.eps[e].set_state(CLOSED);
            do_close = true;
            if self.eps[p].state != PARTIAL && flags & SYN == 0 {
                self.add_weird("spontaneous_FIN");
            }
        }
        if flags & RST != 0 {
            self.eps[e].set_state(RESET);
            let peer_state = self.eps[p].state;
            let is_reject = if is_orig {
                // Our peer is established: we saw a SYN-ACK but no SYN (a reverse scan).
                peer_state == ESTABLISHED
            } else {
                peer_state == SYN_SENT || peer_state == SYN_ACK_SENT
            };
            do_close = true;
            if !is_reject && peer_state == INACTIVE {
                self.add_weird("spontaneous_RST");
            }
        }
        if self.eps[e].state == INACTIVE {
            if !is_orig && plen == 0 && self.orig().state == SYN_SENT {
                // Some stacks ack a SYN before answering it.
            } else if flags & ACK != 0 && self.eps[p].state == ESTABLISHED {
                // SYN-ACK seen, SYN missed, now a pure ACK: establish.
                self.eps[e].set_state(ESTABLISHED);
                self.is_partial = false;
                self.first_packet_seen |= if is_orig { FPS_ORIG } else { FPS_RESP };
            } else {
                self.eps[e].set_state(PARTIAL);
            }
        }
        do_close
    }

    fn syn_sent(&mut self, e: usize, p: usize, plen: u32, flags: u8) -> bool {
        let mut do_close = false;
        if flags & SYN != 0 {
            let ep = &self.eps[e];
            if ep.is_orig {
                if flags & ACK != 0 && flags & (FIN | RST) == 0 && ep.state != SYN_ACK_SENT {
                    self.add_weird("repeated_SYN_with_ack");
                }
            } else if flags & ACK == 0 && ep.state != SYN_SENT {
                self.add_weird("repeated_SYN_reply_wo_ack");
            }
        }
        if flags & FIN != 0 {
            let ps = self.eps[p].state;
            if ps == INACTIVE || ps == SYN_SENT {
                self.add_weird("inappropriate_FIN");
            }
            self.eps[e].set_state(CLOSED);
            do_close = true;
        }
        if flags & RST != 0 {
            self.eps[e].set_state(RESET);
            self.is_active = false; // ConnectionReset
            do_close = true;
        } else if plen > 0 {
            self.add_weird("data_before_established");
        }
        do_close
    }

    fn established(&mut self, e: usize, p: usize, flags: u8) -> bool {
        let mut do_close = false;
        if flags & SYN != 0 && self.eps[e].state == PARTIAL && self.eps[p].state == INACTIVE && flags & ACK == 0 {
            self.add_weird("SYN_after_partial");
            self.eps[e].set_state(SYN_SENT);
        }
        if flags & FIN != 0 && flags & RST == 0 {
            self.eps[e].set_state(CLOSED);
            let peer = &mut self.eps[p];
            if peer.state == RESET && peer.prev_state == CLOSED {
                // The peer sent FIN then RST: that was a normal close.
                peer.set_state(CLOSED);
            }
            do_close = true;
        }
        if flags & RST != 0 {
            self.eps[e].set_state(RESET);
            do_close = true;
            let peer = &self.eps[p];
            if peer.state != RESET || peer.prev_state != ESTABLISHED {
                self.is_active = false; // ConnectionReset
            }
        }
        do_close
    }

    /// `_closed` (the CLOSED state's branch).
    fn closed_state(&mut self, t: f64, e: usize, p: usize, delta_last: i64, flags: u8) -> bool {
        let mut do_close = false;
        if flags & SYN != 0 {
            self.add_weird("SYN_after_close");
        }
        if flags & FIN != 0 && delta_last > 0 {
            self.add_weird("FIN_advanced_last_seq");
        }
        // A RST after our FIN, unless the peer also closed (FIN exchange done).
        if flags & RST != 0 && self.eps[p].state != CLOSED {
            self.eps[e].set_state(RESET);
            if !self.eps[e].did_close {
                do_close = true;
            }
            // Zeek's ResetTimer (tcp_reset_delay): the table adds the delay.
            if self.is_active && self.delete_at.is_none() {
                self.delete_at = Some(t);
            }
        }
        do_close
    }

    /// `_connection_closed`.
    fn connection_closed(&mut self, e: usize, p: usize) {
        if self.eps[e].did_close {
            return;
        }
        self.eps[e].did_close = true;
        let ep = &self.eps[e];
        let peer = &self.eps[p];
        let close_complete = ep.state == RESET || peer.did_close || peer.state == INACTIVE;
        if close_complete {
            // CancelTimers(), then delete at LastTime + tcp_close_delay.
            self.attempt_at = None;
            self.partial_close_at = None;
            self.delete_at = Some(self.last_time);
        } else if ep.prev_state == INACTIVE {
            // The first thing this side did was close.
            self.partial_close_at = Some(self.last_time);
        }
    }

    // timers --------------------------------------------------------------------------

    /// Fire the timers due at `now`; the reason the connection ends (Closed, AttemptTimeout
    /// or PartialClose), or None.
    pub fn expire(&mut self, now: f64, attempt: f64, linger: f64, partial_close: f64) -> Option<EndReason> {
        if let Some(d) = self.delete_at {
            if now >= d + linger {
                return Some(EndReason::Closed);
            }
        }
        if let Some(a) = self.attempt_at {
            if now >= a + attempt {
                self.attempt_at = None;
                let os = self.orig().state;
                if self.is_active && (os == SYN_SENT || os == SYN_ACK_SENT) && self.resp().state == INACTIVE {
                    return Some(EndReason::AttemptTimeout);
                }
            }
        }
        if let Some(pc) = self.partial_close_at {
            if now >= pc + partial_close {
                self.partial_close_at = None;
                let (o, r) = (self.orig(), self.resp());
                if self.is_active
                    && o.state != INACTIVE
                    && r.state != INACTIVE
                    && !(o.did_close && r.did_close)
                    && o.state != RESET
                    && r.state != RESET
                {
                    return Some(EndReason::PartialClose);
                }
            }
        }
        None
    }

    /// The earliest pending timer, or None.
    // `!(t < b)`: Python's `min` keeps the first of two values unless the second is smaller, NaN included.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn next_timer(&self, attempt: f64, linger: f64, partial_close: f64) -> Option<f64> {
        let mut best: Option<f64> = None;
        if let Some(d) = self.delete_at {
            best = Some(d + linger);
        }
        if let Some(a) = self.attempt_at {
            let t = a + attempt;
            best = match best {
                Some(b) if !(t < b) => Some(b),
                _ => Some(t),
            };
        }
        if let Some(pc) = self.partial_close_at {
            let t = pc + partial_close;
            best = match best {
                Some(b) if !(t < b) => Some(b),
                _ => Some(t),
            };
        }
        best
    }

    /// Both sides still in handshake states: Zeek keeps the UDP inactivity timeout.
    pub fn in_handshake(&self) -> bool {
        self.orig().state <= SYN_ACK_SENT && self.resp().state <= SYN_ACK_SENT
    }

    /// The connection has finished (a close completed or a reset is pending).
    pub fn closed(&self) -> bool {
        self.delete_at.is_some()
    }

    /// `conn_state()` of this connection.
    pub fn conn_state(&self) -> &'static str {
        let (o, r) = (self.orig(), self.resp());
        conn_state(o.state, r.state, o.size(r.state), r.size(o.state), &self.history)
    }
}

/// `_seq_between`.
fn seq_between(seq: u32, low: u32, high: u32) -> bool {
    if seq_delta(high, low) >= 0 {
        seq_delta(seq, low) >= 0 && seq_delta(seq, high) <= 0
    } else {
        seq_delta(seq, low) >= 0 || seq_delta(seq, high) <= 0
    }
}

/// `_clean`: established, or closed from established.
fn clean(ep: &TCPEndpoint) -> bool {
    ep.state == ESTABLISHED || (ep.state == CLOSED && ep.prev_state == ESTABLISHED)
}

/// `_RSTOS0.fullmatch(history)` for `\^?S[^HAFGIQ]*R.*` (DOTALL): after an optional '^'
/// and an 'S', an 'R' comes before any of H A F G I Q.
fn rstos0_history(history: &[u8]) -> bool {
    let h = if history.first() == Some(&b'^') { &history[1..] } else { history };
    if h.first() != Some(&b'S') {
        return false;
    }
    for &c in &h[1..] {
        match c {
            b'R' => return true,
            b'H' | b'A' | b'F' | b'G' | b'I' | b'Q' => return false,
            _ => {}
        }
    }
    false
}

/// Zeek's conn_state() for TCP (tcp.py `conn_state`).
pub fn conn_state(os: u8, rs: u8, orig_size: u64, resp_size: u64, history: &[u8]) -> &'static str {
    let o_inactive = os == INACTIVE || os == PARTIAL;
    let r_inactive = rs == INACTIVE || rs == PARTIAL;
    if rs == RESET {
        if os == SYN_SENT || os == SYN_ACK_SENT || (os == RESET && orig_size == 0 && resp_size == 0) {
            return "REJ";
        }
        if o_inactive {
            return "RSTRH";
        }
        return "RSTR";
    }
    if os == RESET {
        if r_inactive {
            if rstos0_history(history) {
                return "RSTOS0";
            }
            return "OTH";
        }
        return "RSTO";
    }
    if rs == CLOSED && os == CLOSED {
        return "SF";
    }
    if os == CLOSED {
        return if r_inactive { "SH" } else { "S2" };
    }
    if rs == CLOSED {
        return if o_inactive { "SHR" } else { "S3" };
    }
    if os == SYN_SENT && rs == INACTIVE {
        return "S0";
    }
    if os == ESTABLISHED && rs == ESTABLISHED {
        return "S1";
    }
    "OTH"
}

/// Zeek's conn_state() for UDP: each side is active once it sent a datagram.
pub fn udp_conn_state(orig_active: bool, resp_active: bool) -> &'static str {
    if orig_active {
        if resp_active {
            "SF"
        } else {
            "S0"
        }
    } else if resp_active {
        "SHR"
    } else {
        "OTH"
    }
}

#[cfg(test)]
mod tests {
    //! Each history letter rule and conn_state, on small hand-made connections. The
    //! expected values are what `analyzer/flows/tcp.py` gives for the same packets.
    use super::*;

    const C: u32 = 1000;
    const S: u32 = 5000;

    struct Pkt(usize, u8, u32, u32, &'static [u8], u16);

    fn run(pkts: &[Pkt], max_history: u64) -> TCPSession {
        let mut budget = ReassemblyBudget::new(1 << 20, 1 << 16);
        let e0 = TCPEndpoint::new(true, StreamReassembler::new(1000, 100, 10, true), 0);
        let e1 = TCPEndpoint::new(false, StreamReassembler::new(1000, 100, 10, true), 1);
        let mut s = TCPSession::new(e0, e1, max_history);
        for p in pkts {
            s.packet(p.0, p.1, p.2, p.3, p.4.len() as u32, p.5, 1.0, p.4, &mut budget);
        }
        s
    }

    fn handshake() -> Vec<Pkt> {
        vec![
            Pkt(0, SYN, C, 0, b"", 1000),
            Pkt(1, SYN | ACK, S, C + 1, b"", 1000),
            Pkt(0, ACK, C + 1, S + 1, b"", 1000),
        ]
    }

    fn with_handshake(more: Vec<Pkt>) -> Vec<Pkt> {
        let mut v = handshake();
        v.extend(more);
        v
    }

    fn weirds(s: &TCPSession) -> Vec<(String, u64)> {
        s.sorted_weirds()
    }

    #[test]
    fn seq_delta_is_signed_32_bit() {
        assert_eq!(seq_delta(5, 3), 2);
        assert_eq!(seq_delta(3, 5), -2);
        assert_eq!(seq_delta(1, 0xFFFF_FFFF), 2);
        assert_eq!(seq_delta(0x8000_0000, 0), -0x8000_0000);
    }

    #[test]
    fn normal_connection_is_sf() {
        let mut s = run(
            &with_handshake(vec![
                Pkt(0, ACK | PSH, C + 1, S + 1, b"hello", 1000),
                Pkt(1, ACK | PSH, S + 1, C + 6, b"world!", 1000),
                Pkt(0, FIN | ACK, C + 6, S + 7, b"", 1000),
                Pkt(1, FIN | ACK, S + 7, C + 7, b"", 1000),
                Pkt(0, ACK, C + 7, S + 8, b"", 1000),
            ]),
            256,
        );
        assert_eq!(s.history_str(), "ShADdFf");
        assert_eq!(s.conn_state(), "SF");
        assert_eq!(s.orig().size(s.resp().state), 5);
        assert_eq!(s.resp().size(s.orig().state), 6);
        assert_eq!(s.resp().reasm.result().data, b"world!".to_vec());
        assert!(s.weird.is_empty());
        assert!(s.closed());
        assert_eq!(s.expire(6.0, 5.0, 5.0, 3.0), Some(EndReason::Closed));
    }

    #[test]
    fn lone_syn_is_s0_and_times_out() {
        let mut s = run(&[Pkt(0, SYN, C, 0, b"", 1000)], 256);
        assert_eq!(s.history_str(), "S");
        assert_eq!(s.conn_state(), "S0");
        assert!(s.in_handshake());
        assert_eq!(s.next_timer(5.0, 5.0, 3.0), Some(6.0));
        assert_eq!(s.expire(5.9, 5.0, 5.0, 3.0), None);
        assert_eq!(s.expire(6.0, 5.0, 5.0, 3.0), Some(EndReason::AttemptTimeout));
        assert_eq!(s.attempt_at, None);
    }

    #[test]
    fn rst_answering_syn_is_rej_lower_case_r() {
        let s = run(&[Pkt(0, SYN, C, 0, b"", 1000), Pkt(1, RST | ACK, 0, C + 1, b"", 1000)], 256);
        assert_eq!(s.history_str(), "Sr");
        assert_eq!(s.conn_state(), "REJ");
    }

    #[test]
    fn repeated_syn_letter_only_when_seq_moves() {
        let s = run(
            &[Pkt(0, SYN, C, 0, b"", 1000), Pkt(0, SYN, C, 0, b"", 1000), Pkt(0, SYN, C + 7, 0, b"", 1000)],
            256,
        );
        // The third SYN re-bases (SYN_seq_jump) so its relative seq is 0 again: no second 'S'.
        assert_eq!(s.history_str(), "S");
        assert_eq!(weirds(&s), vec![("SYN_seq_jump".to_string(), 1)]);
    }

    #[test]
    fn retransmission_letter_is_scaled() {
        let mut v = handshake();
        for _ in 0..12 {
            v.push(Pkt(0, ACK | PSH, C + 1, S + 1, b"hello", 1000));
        }
        let s = run(&v, 256);
        // 'D' for the first, 'T' at the 1st and 10th retransmission.
        assert_eq!(s.history_str(), "ShADTT");
        assert_eq!(s.orig().rxmt_cnt, 11);
        assert_eq!(s.orig().rxmt_thresh, 100);
        assert_eq!(s.conn_state(), "S1");
    }

    #[test]
    fn zero_window_letter() {
        let s = run(
            &with_handshake(vec![Pkt(1, ACK, S + 1, C + 1, b"", 0), Pkt(1, ACK, S + 1, C + 1, b"", 0)]),
            256,
        );
        assert_eq!(s.history_str(), "ShAaw");
        assert_eq!(s.resp().win0_cnt, 2);
    }

    #[test]
    fn ack_past_data_is_a_gap() {
        let s = run(
            &with_handshake(vec![
                Pkt(1, ACK | PSH, S + 1, C + 1, b"abc", 1000),
                Pkt(0, ACK, C + 1, S + 14, b"", 1000),
            ]),
            256,
        );
        assert_eq!(s.history_str(), "ShAdg");
        assert_eq!(s.resp().missed_bytes, 10);
        let r = s.resp().reasm.result();
        assert_eq!((r.gaps, r.gap_bytes, r.cut_by_gap), (1, 10, true));
        assert_eq!(r.data, b"abc".to_vec());
    }

    #[test]
    fn ack_seen_before_its_data_keeps_the_prefix() {
        let s = run(
            &with_handshake(vec![
                Pkt(0, ACK, C + 1, S + 4, b"", 1000),
                Pkt(1, ACK | PSH, S + 1, C + 1, b"abc", 1000),
                Pkt(1, ACK | PSH, S + 4, C + 1, b"def", 1000),
            ]),
            256,
        );
        assert_eq!(s.history_str(), "ShAgd");
        let r = s.resp().reasm.result();
        assert_eq!(r.data, b"abcdef".to_vec());
        assert_eq!((r.gaps, r.gap_bytes, r.cut_by_gap), (1, 3, false));
    }

    #[test]
    fn fin_rst_and_multi_flag_letters() {
        let s = run(&with_handshake(vec![Pkt(0, FIN | RST | ACK, C + 1, S + 1, b"", 1000)]), 256);
        assert_eq!(s.history_str(), "ShAI");
        assert_eq!(s.conn_state(), "RSTO");
        let s = run(&[Pkt(0, SYN | FIN, C, 0, b"", 1000)], 256);
        assert_eq!(s.history_str(), "Q");
        assert_eq!(s.conn_state(), "SH");
        let s = run(&[Pkt(0, SYN | RST, C, 0, b"", 1000)], 256);
        assert_eq!(s.history_str(), "Q");
        assert_eq!(
            weirds(&s),
            vec![("TCP_christmas".to_string(), 1), ("spontaneous_RST".to_string(), 1)]
        );
    }

    #[test]
    fn bad_checksum_letter() {
        let mut s = run(&handshake(), 256);
        s.bad_checksum(1);
        s.bad_checksum(1);
        assert_eq!(s.history_str(), "ShAc");
        assert_eq!(weirds(&s), vec![("bad_TCP_checksum".to_string(), 2)]);
    }

    #[test]
    fn flip_adds_caret_and_swaps_letters() {
        let mut budget = ReassemblyBudget::new(1 << 20, 1 << 16);
        let e0 = TCPEndpoint::new(true, StreamReassembler::new(1000, 100, 10, true), 0);
        let e1 = TCPEndpoint::new(false, StreamReassembler::new(1000, 100, 10, true), 1);
        let mut s = TCPSession::new(e0, e1, 256);
        // The SYN-ACK comes first from side 0: the table flips, its receiver is the client.
        s.flip_roles();
        assert_eq!(s.orig_idx, 1);
        s.packet(0, SYN | ACK, S, C + 1, 0, 1000, 1.0, b"", &mut budget);
        s.packet(1, ACK, C + 1, S + 1, 0, 1000, 1.1, b"", &mut budget);
        assert_eq!(s.history_str(), "^hA");
        assert_eq!(s.conn_state(), "S1");
        assert!(s.eps[1].is_orig && !s.eps[0].is_orig);
    }

    #[test]
    fn history_cap_adds_x_once() {
        let s = run(&with_handshake(vec![Pkt(0, ACK | PSH, C + 1, S + 1, b"hello", 1000)]), 3);
        assert_eq!(s.history_str(), "ShX");
        assert_eq!(weirds(&s), vec![("history_truncated".to_string(), 2)]);
    }

    #[test]
    fn resets_and_half_closes() {
        let s = run(&[Pkt(0, SYN, C, 0, b"", 1000), Pkt(0, RST, C + 1, 0, b"", 1000)], 256);
        assert_eq!((s.history_str().as_str(), s.conn_state()), ("SR", "RSTOS0"));
        let s = run(&with_handshake(vec![Pkt(0, RST | ACK, C + 1, S + 1, b"", 1000)]), 256);
        assert_eq!((s.history_str().as_str(), s.conn_state()), ("ShAR", "RSTO"));
        let s = run(&with_handshake(vec![Pkt(1, RST | ACK, S + 1, C + 1, b"", 1000)]), 256);
        assert_eq!((s.history_str().as_str(), s.conn_state()), ("ShAr", "RSTR"));
        let s = run(&[Pkt(0, SYN, C, 0, b"", 1000), Pkt(0, FIN, C + 1, 0, b"", 1000)], 256);
        assert_eq!((s.history_str().as_str(), s.conn_state()), ("SF", "SH"));
        assert_eq!(weirds(&s), vec![("inappropriate_FIN".to_string(), 1)]);
    }

    #[test]
    fn midstream_connection_is_partial() {
        let s = run(
            &[Pkt(0, ACK | PSH, C + 1, S + 1, b"hello", 1000), Pkt(1, ACK | PSH, S + 1, C + 6, b"x", 1000)],
            256,
        );
        assert_eq!((s.history_str().as_str(), s.conn_state()), ("Dd", "OTH"));
        assert_eq!(s.orig().size(s.resp().state), 5);
        assert_eq!(s.resp().reasm.result().data, b"x".to_vec());
    }

    #[test]
    fn syn_with_data_counts_as_retransmission_like_zeek() {
        let s = run(&[Pkt(0, SYN | URG, C, 0, b"xy", 1000)], 256);
        assert_eq!(s.history_str(), "ST");
        assert_eq!(weirds(&s), vec![("SYN_with_data".to_string(), 1), ("baroque_SYN".to_string(), 1)]);
    }

    #[test]
    fn reuse_after_close() {
        let mut s = run(
            &with_handshake(vec![
                Pkt(0, FIN | ACK, C + 1, S + 1, b"", 1000),
                Pkt(1, FIN | ACK, S + 1, C + 2, b"", 1000),
            ]),
            256,
        );
        assert!(!s.is_reuse(ACK, C + 9, 2.0, 5.0));
        assert!(s.is_reuse(SYN, C + 9, 2.0, 5.0));
        assert_eq!(weirds(&s), vec![("premature_connection_reuse".to_string(), 1)]);
        assert!(s.is_reuse(SYN, C + 9, 7.0, 5.0));
        assert_eq!(weirds(&s), vec![("premature_connection_reuse".to_string(), 1)]);
    }

    #[test]
    fn rstos0_pattern() {
        assert!(rstos0_history(b"SR"));
        assert!(rstos0_history(b"^SdR"));
        assert!(rstos0_history(b"SsR"));
        assert!(rstos0_history(b"ShR")); // case-sensitive: only the originator's letters stop it
        assert!(!rstos0_history(b"SHR"));
        assert!(rstos0_history(b"S\nR"));
        assert!(!rstos0_history(b"R"));
        assert!(!rstos0_history(b"S"));
        assert!(!rstos0_history(b"^^SR"));
        assert_eq!(conn_state(RESET, INACTIVE, 0, 0, b"SR"), "RSTOS0");
        assert_eq!(conn_state(RESET, INACTIVE, 0, 0, b"SAR"), "OTH");
    }

    #[test]
    fn udp_states() {
        assert_eq!(udp_conn_state(true, true), "SF");
        assert_eq!(udp_conn_state(true, false), "S0");
        assert_eq!(udp_conn_state(false, true), "SHR");
        assert_eq!(udp_conn_state(false, false), "OTH");
    }
}
