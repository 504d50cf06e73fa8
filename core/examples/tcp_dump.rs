//! The Rust side of `core/tools/tcp_ref.py`: runs an ops file through `flows::tcp` and
//! `flows::reassembly` and prints the same canonical lines as the Python reference.
//!
//!     cargo run --release --offline --example tcp_dump -- OPS_FILE > rs.txt

use std::io::{BufWriter, Write};

use apple_net_core::flows::reassembly::{ReassemblyBudget, StreamReassembler};
use apple_net_core::flows::tcp::{TCPEndpoint, TCPSession};
use apple_net_core::record::EndReason;

fn fhex(x: f64) -> String {
    format!("{:016x}", x.to_bits())
}

fn unhex(s: &str) -> f64 {
    f64::from_bits(u64::from_str_radix(s, 16).expect("float bits"))
}

fn opt(x: Option<f64>) -> String {
    match x {
        None => "~".to_string(),
        Some(v) => fhex(v),
    }
}

fn b(x: bool) -> &'static str {
    if x {
        "T"
    } else {
        "F"
    }
}

fn hex(d: &[u8]) -> String {
    if d.is_empty() {
        return "-".to_string();
    }
    d.iter().map(|c| format!("{:02x}", c)).collect()
}

fn unhex_bytes(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

fn ep_line(ep: &TCPEndpoint) -> String {
    let r = &ep.reasm;
    let alt: Vec<String> = ep.alt_isns().iter().map(|i| i.to_string()).collect();
    let v: Vec<String> = vec![
        ep.side.to_string(),
        ep.state.to_string(),
        ep.prev_state.to_string(),
        b(ep.is_orig).to_string(),
        ep.start_seq.to_string(),
        ep.last_seq.to_string(),
        ep.ack_seq.to_string(),
        ep.seq_wraps.to_string(),
        ep.ack_wraps.to_string(),
        ep.fin_seq.to_string(),
        ep.fin_cnt.to_string(),
        ep.rst_cnt.to_string(),
        b(ep.did_close).to_string(),
        ep.hist_last_syn.to_string(),
        ep.hist_last_fin.to_string(),
        ep.hist_last_rst.to_string(),
        ep.rxmt_cnt.to_string(),
        ep.rxmt_thresh.to_string(),
        ep.win0_cnt.to_string(),
        ep.win0_thresh.to_string(),
        ep.gap_cnt.to_string(),
        ep.gap_thresh.to_string(),
        ep.chk_cnt.to_string(),
        ep.chk_thresh.to_string(),
        fhex(ep.start_time),
        fhex(ep.last_time),
        ep.missed_bytes.to_string(),
        format!("[{}]", alt.join(",")),
        r.next_off.to_string(),
        r.stored().to_string(),
        r.gaps.to_string(),
        r.gap_bytes.to_string(),
        r.overlap_conflicts.to_string(),
        r.pending_bytes().to_string(),
        r.pending_dropped.to_string(),
        b(r.cut_by_cap).to_string(),
        b(r.cut_by_gap).to_string(),
        b(r.cut_by_budget).to_string(),
        b(r.segments_truncated).to_string(),
        r.segments.len().to_string(),
        ep.size(0).to_string(),
        ep.size(6).to_string(),
    ];
    v.join(" ")
}

fn state_line(s: &TCPSession, budget: &ReassemblyBudget) -> String {
    let weird: Vec<String> = s.sorted_weirds().iter().map(|(k, v)| format!("{}:{}", k, v)).collect();
    let weird = if weird.is_empty() { "-".to_string() } else { weird.join(",") };
    let h = s.history_str();
    format!(
        "{} | {} | o={} h={} hs={} p={} fps={} a={} lt={} d={} at={} pc={} w={} cs={} nt={} ih={} cl={} | bu={} bs={} br={}",
        ep_line(&s.eps[0]),
        ep_line(&s.eps[1]),
        s.orig().side,
        if h.is_empty() { "-" } else { &h },
        s.hist_seen,
        b(s.is_partial),
        s.first_packet_seen,
        b(s.is_active),
        fhex(s.last_time),
        opt(s.delete_at),
        opt(s.attempt_at),
        opt(s.partial_close_at),
        weird,
        s.conn_state(),
        opt(s.next_timer(5.0, 5.0, 3.0)),
        b(s.in_handshake()),
        b(s.closed()),
        budget.used,
        budget.segment_bytes,
        budget.refused
    )
}

fn stream_line(r: &StreamReassembler) -> String {
    let d = r.result();
    let segs: Vec<String> = d.segments.iter().map(|(o, t)| format!("{}@{}", o, fhex(*t))).collect();
    format!(
        "S {} [{}] {} {} {} {} {} {} {} {} {} prefix={}",
        hex(&d.data),
        segs.join(","),
        d.stream_bytes,
        b(d.cut_by_cap),
        b(d.cut_by_gap),
        d.gaps,
        d.gap_bytes,
        d.overlap_conflicts,
        d.pending_bytes,
        b(d.segments_truncated),
        b(d.cut_by_budget),
        hex(r.prefix())
    )
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: tcp_dump OPS_FILE");
    let text = std::fs::read_to_string(&path).expect("read ops");
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut cur: Option<(TCPSession, ReassemblyBudget)> = None;
    for line in text.lines() {
        let a: Vec<&str> = line.split_whitespace().collect();
        if a.is_empty() {
            continue;
        }
        let n = |i: usize| -> u64 { a[i].parse().expect("number") };
        if a[0] == "N" {
            if let Some((s, _)) = &cur {
                for ep in &s.eps {
                    writeln!(out, "{}", stream_line(&ep.reasm)).unwrap();
                }
            }
            let (cap, segs, pend, limit, floor, hist) = (n(1), n(2), n(3), n(4), n(5), n(6));
            let budget = ReassemblyBudget::new(limit, floor);
            let e0 = TCPEndpoint::new(true, StreamReassembler::new(cap, segs, pend, true), 0);
            let e1 = TCPEndpoint::new(false, StreamReassembler::new(cap, segs, pend, true), 1);
            cur = Some((TCPSession::new(e0, e1, hist), budget));
            writeln!(out, "N {}", a[1..7].join(" ")).unwrap();
            continue;
        }
        let (s, budget) = cur.as_mut().expect("N first");
        let mut res = String::new();
        match a[0] {
            "P" => {
                let payload = unhex_bytes(a[8]);
                s.packet(
                    n(1) as usize,
                    n(2) as u8,
                    n(3) as u32,
                    n(4) as u32,
                    n(5) as u32,
                    n(6) as u16,
                    unhex(a[7]),
                    &payload,
                    budget,
                );
            }
            "U" => res = b(s.is_reuse(n(1) as u8, n(2) as u32, unhex(a[3]), 5.0)).to_string(),
            "F" => s.flip_roles(),
            "C" => s.bad_checksum(n(1) as usize),
            "E" => {
                res = match s.expire(unhex(a[1]), 5.0, 5.0, 3.0) {
                    None => "~",
                    Some(EndReason::Closed) => "closed",
                    Some(EndReason::AttemptTimeout) => "attempt_timeout",
                    Some(EndReason::PartialClose) => "partial_close",
                    Some(_) => "?",
                }
                .to_string()
            }
            "X" => {
                let side = n(1) as usize;
                s.eps[side].reasm.release(budget);
            }
            other => panic!("unknown op {}", other),
        }
        writeln!(out, "{} {} {}", a[0], res, state_line(s, budget)).unwrap();
    }
    if let Some((s, _)) = &cur {
        for ep in &s.eps {
            writeln!(out, "{}", stream_line(&ep.reasm)).unwrap();
        }
    }
}
