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
        todo!()
    }
    /// Python's `alt_isns` tuple.
    pub fn alt_isns(&self) -> &[u32] {
        &self.alt_isns[..self.alt_isns_len]
    }
    pub fn set_state(&mut self, new_state: u8) {
        todo!()
    }
    pub fn init_seqs(&mut self, start: u32, last: u32) {
        todo!()
    }
    pub fn remember_isn(&mut self, isn: u32) {
        todo!()
    }
    /// The peer has acknowledged this side's SYN (its ISN is the real one).
    pub fn isn_acked(&self) -> bool {
        todo!()
    }
    pub fn update_last_seq(&mut self, seq: u32) {
        todo!()
    }
    pub fn update_ack_seq(&mut self, seq: u32) {
        todo!()
    }
    pub fn no_data_acked(&self) -> bool {
        todo!()
    }
    /// Payload bytes by sequence numbers (Zeek's Size(): conn.log orig_bytes/resp_bytes);
    /// `peer_state` is the other endpoint's state.
    pub fn size(&self, peer_state: u8) -> u64 {
        todo!()
    }
    /// (relative seq, underflow) as Zeek's get_relative_seq.
    pub fn relative_seq(&self, cur: u32, last: u32, wraps: u64) -> (i64, bool) {
        todo!()
    }
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
    /// sides must differ); `orig` becomes the originator.
    pub fn new(orig: TCPEndpoint, resp: TCPEndpoint, max_history: u64) -> TCPSession {
        todo!()
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
        todo!()
    }
    /// `tuple(sorted(weird.items()))`, as the record holds it.
    pub fn sorted_weirds(&self) -> Vec<(String, u64)> {
        todo!()
    }
    pub fn add_history(&mut self, code: u8) {
        todo!()
    }
    /// One of our limits cut the analysis short: a weird, and 'X' once.
    pub fn limit_reached(&mut self, weird: &'static str) {
        todo!()
    }
    /// Zeek's CheckHistory for the endpoint at `side`: true if already seen.
    pub fn check_history(&mut self, side: usize, mask: u32, code: u8) -> bool {
        todo!()
    }
    /// `history_str`.
    pub fn history_str(&self) -> String {
        todo!()
    }
    /// Swap originator and responder (Zeek's FlipRoles; history gets '^').
    pub fn flip_roles(&mut self) {
        todo!()
    }
    /// Zeek's IsReuse for a packet on this 5-tuple: does it start a new connection?
    pub fn is_reuse(&mut self, flags: u8, seq: u32, ts: f64, linger: f64) -> bool {
        todo!()
    }
    /// Process one segment sent by the endpoint at physical `side` (Zeek's DeliverPacket).
    /// `plen` is the TCP payload length on the wire; `payload` the captured part of it.
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
        todo!()
    }
    /// A segment with a bad checksum: Zeek records 'C' and drops it.
    pub fn bad_checksum(&mut self, side: usize) {
        todo!()
    }
    /// Fire the timers due at `now`; the reason the connection ends (Closed, AttemptTimeout
    /// or PartialClose), or None.
    pub fn expire(&mut self, now: f64, attempt: f64, linger: f64, partial_close: f64) -> Option<EndReason> {
        todo!()
    }
    /// The earliest pending timer, or None.
    pub fn next_timer(&self, attempt: f64, linger: f64, partial_close: f64) -> Option<f64> {
        todo!()
    }
    /// Both sides still in handshake states.
    pub fn in_handshake(&self) -> bool {
        todo!()
    }
    /// The connection has finished (a close completed or a reset is pending).
    pub fn closed(&self) -> bool {
        self.delete_at.is_some()
    }
    pub fn conn_state(&self) -> &'static str {
        todo!()
    }
}

/// Zeek's conn_state() for TCP (tcp.py `conn_state`).
pub fn conn_state(os: u8, rs: u8, orig_size: u64, resp_size: u64, history: &[u8]) -> &'static str {
    todo!()
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
