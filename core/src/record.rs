//! The record of one finished flow, field for field `analyzer/flows/records.py`
//! (FlowRecord, DirectionStats, StreamData, RstEvidence, IcmpError, Datagram).
//!
//! Two departures, both because Python does them faster or with its own library:
//! addresses stay raw (`Addr`; Python renders the text with `ip_text`), and instead of
//! `uid` and `community_id` the record carries what they hash (`uid_dup` and the first
//! packet's 5-tuple `first_*`; Python computes both with hashlib as the Python table does).

use crate::packet::Addr;

/// Which side a piece of evidence is about (records.py `Side`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client = 0,
    Server = 1,
}

/// Why the table emitted the flow (records.py `EndReason`), in that enum's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Closed = 0,
    AttemptTimeout = 1,
    PartialClose = 2,
    IdleTimeout = 3,
    Reused = 4,
    Evicted = 5,
    EndOfCapture = 6,
    TimeJump = 7,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamData {
    pub data: Vec<u8>,
    pub segments: Vec<(u64, f64)>,
    pub stream_bytes: u64,
    pub cut_by_cap: bool,
    pub cut_by_gap: bool,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub overlap_conflicts: u64,
    pub pending_bytes: u64,
    pub segments_truncated: bool,
    pub cut_by_budget: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RstEvidence {
    pub ts: f64,
    pub sender: Side,
    pub ttl: u8,
    pub ip_id: Option<u32>,
    pub df: bool,
    pub window: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload_len: u32,
    pub rel_seq: Option<i64>,
    pub seq_at_next: Option<bool>,
    pub seq_at_peer_ack: Option<bool>,
    pub since_peer: Option<f64>,
    pub prev_ttl: Option<u8>,
    pub prev_ip_id: Option<u32>,
    pub packets_after: u64,
    pub data_after: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IcmpError {
    pub ts: f64,
    pub type_: u8,
    pub code: u8,
    /// Address of the host that sent the error (raw; Python renders the text).
    pub reporter: Addr,
    pub ttl: u8,
    pub about: Side,
    pub mtu: u32,
    pub quoted_seq: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Datagram {
    pub ts: f64,
    pub payload: Vec<u8>,
}

/// Zeek endpoint state names and the UDP/ICMP ones, as the strings records.py holds.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectionStats {
    pub packets: u64,
    pub ip_bytes: u64,
    pub payload_bytes: u64,
    pub zeek_bytes: u64,
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
    pub ttls: Vec<(u8, u64)>,
    pub ip_ids: Vec<u32>,
    pub ip_id_pattern: &'static str,
    pub state: &'static str,
    pub syn_ts: Option<f64>,
    pub syn_count: u64,
    pub syn_window: Option<u16>,
    pub syn_ttl: Option<u8>,
    pub syn_options: Vec<u8>,
    pub first_data_ts: Option<f64>,
    pub fin_ts: Option<f64>,
    pub rst_count: u64,
    pub retransmissions: u64,
    pub zero_windows: u64,
    pub missed_bytes: u64,
    pub stream: Option<StreamData>,
    pub datagrams: Vec<Datagram>,
    pub datagram_count: u64,
    pub duplicates: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlowRecord {
    /// `_uid`'s inputs: flows started before this one at the same time with the same 5-tuple,
    /// and the flow's first packet's time (`ts_start`) and 5-tuple as that packet had it.
    pub uid_dup: u64,
    pub first_src: Addr,
    pub first_sport: u16,
    pub first_dst: Addr,
    pub first_dport: u16,
    pub proto: u8,
    pub ip_version: u8,
    pub client_ip: Addr,
    pub client_port: u16,
    pub server_ip: Addr,
    pub server_port: u16,
    pub ts_start: f64,
    pub ts_end: f64,
    pub conn_state: String,
    pub history: String,
    pub client: DirectionStats,
    pub server: DirectionStats,
    pub syn_ts: Option<f64>,
    pub synack_ts: Option<f64>,
    pub ack_ts: Option<f64>,
    pub rtt_syn_synack: Option<f64>,
    pub rtt_synack_ack: Option<f64>,
    pub rsts: Vec<RstEvidence>,
    pub rst_total: u64,
    pub icmp_errors: Vec<IcmpError>,
    pub icmp_error_total: u64,
    pub processes: Vec<(Option<String>, Option<u32>)>,
    pub ifaces: Vec<u32>,
    pub vlan: Vec<u16>,
    /// Sorted by name (`tuple(sorted(weird.items()))`).
    pub weirds: Vec<(String, u64)>,
    pub missed_bytes: u64,
    pub truncated_start: bool,
    pub open_at_end: bool,
    pub end_reason: EndReason,
    pub flipped: bool,
    /// The source link address of the client's / server's first packet (`_source_mac` of its
    /// macs), raw: Python renders it with `mac_text`.
    pub client_mac: Option<Vec<u8>>,
    pub server_mac: Option<Vec<u8>>,
}
