//! What one address of a flow sent (table.py `_Side`), and a RST being collected
//! (table.py `_Rst`). Indexed by physical side (0: the first packet's source), never flipped.

use std::collections::BTreeMap;

use crate::packet::Packet;
use crate::record::{RstEvidence, Side};

/// Per-side counters (table.py `_Side`). Containers stay empty until first used.
#[derive(Debug, Clone)]
pub struct SideStats {
    pub packets: u64,
    pub ip_bytes: u64,
    pub payload_bytes: u64,
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
    /// TTLs counted run-length: the common case (same TTL as the last packet) costs one
    /// comparison; runs go to `ttls` when the TTL changes. -1: no run yet.
    pub cur_ttl: i32,
    pub cur_ttl_n: u64,
    pub ttls: Option<BTreeMap<u8, u64>>,
    pub ip_ids: Vec<u32>,
    pub ipid_prev: i64,
    pub ipid_n: u64,
    pub ipid_zero: u64,
    pub ipid_same: u64,
    pub ipid_inc: u64,
    pub last_ttl: Option<u8>,
    pub last_ip_id: Option<u32>,
    /// First SYN or SYN-ACK this side sent.
    pub syn_ts: Option<f64>,
    pub synack_ts: Option<f64>,
    pub last_syn_ts: Option<f64>,
    pub syn_count: u64,
    pub syn_window: Option<u16>,
    pub syn_ttl: Option<u8>,
    pub syn_options: Vec<u8>,
    pub hs_ack_ts: Option<f64>,
    pub first_data_ts: Option<f64>,
    pub fin_ts: Option<f64>,
    pub rst_count: u64,
    /// RSTs of this side in the flow's `rsts` (Python: `rst_open` is not None).
    pub rst_open: u32,
    pub datagrams: Vec<crate::record::Datagram>,
    pub datagram_count: u64,
    /// TCP: the side's last segment, to tell a capture's duplicate from a retransmission (-1: none).
    pub last_seq: i64,
    pub last_plen: i64,
    pub duplicates: u64,
    /// Link-layer addresses of this side's first packet (`Packet.macs`).
    pub macs: Vec<u8>,
}

impl Default for SideStats {
    fn default() -> Self {
        SideStats {
            packets: 0,
            ip_bytes: 0,
            payload_bytes: 0,
            first_ts: None,
            last_ts: None,
            cur_ttl: -1,
            cur_ttl_n: 0,
            ttls: None,
            ip_ids: Vec::new(),
            ipid_prev: -1,
            ipid_n: 0,
            ipid_zero: 0,
            ipid_same: 0,
            ipid_inc: 0,
            last_ttl: None,
            last_ip_id: None,
            syn_ts: None,
            synack_ts: None,
            last_syn_ts: None,
            syn_count: 0,
            syn_window: None,
            syn_ttl: None,
            syn_options: Vec::new(),
            hs_ack_ts: None,
            first_data_ts: None,
            fin_ts: None,
            rst_count: 0,
            rst_open: 0,
            datagrams: Vec::new(),
            datagram_count: 0,
            last_seq: -1,
            last_plen: -1,
            duplicates: 0,
            macs: Vec::new(),
        }
    }
}

impl SideStats {
    /// A packet with another TTL than the run's: close the run (table.py `_ttl_run`).
    pub fn ttl_run(&mut self, ttl: u8) {
        if self.cur_ttl_n != 0 {
            let cur = self.cur_ttl as u8;
            let n = self.cur_ttl_n;
            *self
                .ttls
                .get_or_insert_with(BTreeMap::new)
                .entry(cur)
                .or_insert(0) += n;
        }
        self.cur_ttl = ttl as i32;
        self.cur_ttl_n = 1;
    }

    /// One packet's TTL.
    #[inline]
    pub fn ttl(&mut self, ttl: u8) {
        if ttl as i32 == self.cur_ttl {
            self.cur_ttl_n += 1;
        } else {
            self.ttl_run(ttl);
        }
    }

    /// One packet's IP ID (table.py `_ip_id`). `first_step`: count a step from the
    /// previous value even for the first sample (the Python fast path, `_account_fast`,
    /// has no `if n:` guard: its first step is taken from -1).
    #[inline]
    pub fn ip_id(&mut self, ip_id: u32, samples: u64, first_step: bool) {
        let n = self.ipid_n;
        if n < samples {
            self.ip_ids.push(ip_id);
        }
        self.ipid_n = n + 1;
        if ip_id == 0 {
            self.ipid_zero += 1;
        }
        if n != 0 || first_step {
            let step = (ip_id as i64 - self.ipid_prev) & 0xFFFF;
            if step == 0 {
                self.ipid_same += 1;
            } else if step < 1024 {
                // a counter, with other traffic interleaved
                self.ipid_inc += 1;
            }
        }
        self.ipid_prev = ip_id as i64;
    }

    /// The counters every packet updates (table.py `_count`, and `_account_fast`'s inlined
    /// copy of it, whose IP ID step has no first-sample guard: `fast`). `remember`: keep this
    /// packet's TTL/IP ID as the side's last, for judging a later RST (a RST itself must not
    /// become its own baseline).
    #[inline]
    pub fn count(
        &mut self,
        pkt: &Packet,
        ts: f64,
        plen: u32,
        remember: bool,
        samples: u64,
        fast: bool,
    ) {
        self.packets += 1;
        self.ip_bytes += pkt.ip_len as u64;
        self.payload_bytes += plen as u64;
        self.last_ts = Some(ts);
        self.ttl(pkt.ttl);
        if let Some(ip_id) = pkt.ip_id {
            self.ip_id(ip_id, samples, fast);
        }
        if remember {
            self.last_ttl = Some(pkt.ttl);
            self.last_ip_id = pkt.ip_id;
        }
    }

    /// (TTL, packets) sorted by TTL (`_Side.ttl_counts`).
    pub fn ttl_counts(&self) -> Vec<(u8, u64)> {
        match &self.ttls {
            None => {
                if self.cur_ttl_n != 0 {
                    vec![(self.cur_ttl as u8, self.cur_ttl_n)]
                } else {
                    Vec::new()
                }
            }
            Some(ttls) => {
                let mut all = ttls.clone();
                if self.cur_ttl_n != 0 {
                    *all.entry(self.cur_ttl as u8).or_insert(0) += self.cur_ttl_n;
                }
                all.into_iter().collect()
            }
        }
    }

    /// `_Side.ip_id_pattern`.
    pub fn ip_id_pattern(&self) -> &'static str {
        let n = self.ipid_n;
        if n == 0 {
            return "none";
        }
        if n == 1 {
            return "single";
        }
        if self.ipid_zero == n {
            return "zero";
        }
        let steps = n - 1;
        if self.ipid_same == steps {
            return "constant";
        }
        if self.ipid_inc as f64 >= 0.9 * steps as f64 {
            return "incrementing";
        }
        "random"
    }
}

/// A RST being collected (table.py `_Rst`): its evidence, whose `packets_after`/`data_after`
/// grow until the flow ends, and the physical side that sent it (`record` says client or server).
#[derive(Debug, Clone)]
pub struct RstOpen {
    pub side: usize,
    pub ev: RstEvidence,
}

impl RstOpen {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        side: usize,
        pkt: &Packet,
        rel_seq: Option<i64>,
        at_next: Option<bool>,
        at_peer_ack: Option<bool>,
        since_peer: Option<f64>,
        prev_ttl: Option<u8>,
        prev_ip_id: Option<u32>,
    ) -> RstOpen {
        RstOpen {
            side,
            ev: RstEvidence {
                ts: pkt.ts,
                sender: Side::Client, // decided by `record`, once the roles are final
                ttl: pkt.ttl,
                ip_id: pkt.ip_id,
                df: pkt.df,
                window: pkt.win,
                seq: pkt.seq,
                ack: pkt.ack,
                flags: pkt.tcp_flags,
                payload_len: pkt.payload_len,
                rel_seq,
                seq_at_next: at_next,
                seq_at_peer_ack: at_peer_ack,
                since_peer,
                prev_ttl,
                prev_ip_id,
                packets_after: 0,
                data_after: 0,
            },
        }
    }

    /// `_Rst.record(orig_side)`.
    pub fn record(&self, orig_side: usize) -> RstEvidence {
        let mut ev = self.ev.clone();
        ev.sender = if self.side == orig_side { Side::Client } else { Side::Server };
        ev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_runs() {
        let mut s = SideStats::default();
        assert!(s.ttl_counts().is_empty());
        s.ttl(64);
        s.ttl(64);
        assert_eq!(s.ttl_counts(), vec![(64, 2)]);
        s.ttl(1);
        s.ttl(64);
        assert_eq!(s.ttl_counts(), vec![(1, 1), (64, 3)]);
    }

    #[test]
    fn ip_id_patterns() {
        let mut s = SideStats::default();
        assert_eq!(s.ip_id_pattern(), "none");
        s.ip_id(5, 8, false);
        assert_eq!(s.ip_id_pattern(), "single");
        s.ip_id(6, 8, false);
        s.ip_id(7, 8, false);
        assert_eq!(s.ip_id_pattern(), "incrementing");
        let mut z = SideStats::default();
        z.ip_id(0, 8, false);
        z.ip_id(0, 8, false);
        assert_eq!(z.ip_id_pattern(), "zero");
        let mut c = SideStats::default();
        c.ip_id(9, 1, false);
        c.ip_id(9, 1, false);
        assert_eq!(c.ip_id_pattern(), "constant");
        assert_eq!(c.ip_ids, vec![9]);
        let mut r = SideStats::default();
        r.ip_id(9, 8, false);
        r.ip_id(30000, 8, false);
        r.ip_id(9, 8, false);
        assert_eq!(r.ip_id_pattern(), "random");
        // The fast path's first step is taken from -1: 65535 counts as "same".
        let mut f = SideStats::default();
        f.ip_id(65535, 8, true);
        assert_eq!(f.ipid_same, 1);
    }
}
