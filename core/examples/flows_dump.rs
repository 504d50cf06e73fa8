//! The Rust flow table on a packet dump, printing what `core/tools/flows_ref.py` prints for
//! the Python one (see that file for the dump format and the canonical lines):
//!
//!     cargo run --release --offline --example flows_dump -- DUMP [key=value ...]

use std::fmt::Write as _;

use apple_net_core::config::FlowConfig;
use apple_net_core::flows::FlowTable;
use apple_net_core::packet::{Addr, IcmpInfo, Packet, Quoted};
use apple_net_core::record::{DirectionStats, EndReason, FlowRecord, Side, StreamData};

// -- dump reading ------------------------------------------------------------------------

#[allow(clippy::large_enum_variant)]
enum Op {
    Packet(Packet),
    Advance(f64),
}

struct Cursor<'a> {
    d: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.d.len() - self.i < n {
            return Err("dump truncated".into());
        }
        let s = &self.d[self.i..self.i + n];
        self.i += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f64(&mut self) -> Result<f64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }
    fn addr(&mut self) -> Result<Addr, String> {
        let n = self.u8()? as usize;
        Addr::from_slice(self.take(n)?).ok_or_else(|| "bad address length".to_string())
    }
    fn opt_u32(&mut self) -> Result<Option<u32>, String> {
        let present = self.u8()?;
        let v = self.u32()?;
        Ok(if present != 0 { Some(v) } else { None })
    }
    fn bytes32(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}

fn read_dump(data: &[u8]) -> Result<Vec<Op>, String> {
    let mut c = Cursor { d: data, i: 0 };
    if c.take(8)? != b"FLOWDMP1" {
        return Err("not a flows dump".into());
    }
    let mut ops = Vec::new();
    loop {
        match c.u8()? {
            0 => return Ok(ops),
            2 => ops.push(Op::Advance(c.f64()?)),
            1 => {
                let ts = c.f64()?;
                let ip_version = c.u8()?;
                let src = c.addr()?;
                let dst = c.addr()?;
                let proto = c.u8()?;
                let ttl = c.u8()?;
                let ip_id = c.opt_u32()?;
                let df = c.u8()? != 0;
                let ip_len = c.u32()?;
                let sport = c.u16()?;
                let dport = c.u16()?;
                let tcp_flags = c.u8()?;
                let seq = c.u32()?;
                let ack = c.u32()?;
                let win = c.u16()?;
                let tcp_options = c.bytes32()?;
                let payload = c.bytes32()?;
                let payload_len = c.u32()?;
                let icmp = if c.u8()? != 0 {
                    let type_ = c.u8()?;
                    let code = c.u8()?;
                    let rest = c.u32()?;
                    let mtu = c.u32()?;
                    let quoted = if c.u8()? != 0 {
                        let ip_version = c.u8()?;
                        let src = c.addr()?;
                        let dst = c.addr()?;
                        let proto = c.u8()?;
                        let sport = c.u16()?;
                        let dport = c.u16()?;
                        let seq = c.u32()?;
                        let ip_id = c.opt_u32()?;
                        Some(Quoted {
                            ip_version,
                            src,
                            dst,
                            proto,
                            sport,
                            dport,
                            seq,
                            ip_id,
                        })
                    } else {
                        None
                    };
                    Some(IcmpInfo {
                        type_,
                        code,
                        rest,
                        mtu,
                        quoted,
                    })
                } else {
                    None
                };
                let nv = c.u16()? as usize;
                let mut vlan = Vec::with_capacity(nv);
                for _ in 0..nv {
                    vlan.push(c.u16()?);
                }
                let iface = c.u32()?;
                let proc_name = if c.u8()? != 0 {
                    Some(
                        String::from_utf8(c.bytes32()?)
                            .map_err(|_| "bad process name".to_string())?,
                    )
                } else {
                    None
                };
                let pid = c.opt_u32()?;
                let fragmented = c.u8()? != 0;
                let nm = c.u8()? as usize;
                let macs = c.take(nm)?.to_vec();
                ops.push(Op::Packet(Packet {
                    ts,
                    ip_version,
                    src,
                    dst,
                    proto,
                    ttl,
                    ip_id,
                    df,
                    ip_len,
                    sport,
                    dport,
                    tcp_flags,
                    seq,
                    ack,
                    win,
                    tcp_options,
                    payload,
                    payload_len,
                    icmp,
                    vlan,
                    iface,
                    proc_name,
                    pid,
                    fragmented,
                    macs,
                }));
            }
            t => return Err(format!("bad tag {}", t)),
        }
    }
}

fn parse_config(args: &[String]) -> Result<FlowConfig, String> {
    let mut c = FlowConfig::default();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| format!("not key=value: {}", a))?;
        let int = || v.parse::<u64>().map_err(|e| format!("{}: {}", k, e));
        let float = || v.parse::<f64>().map_err(|e| format!("{}: {}", k, e));
        match k {
            "reassembly_cap" => c.reassembly_cap = int()?,
            "reassembly_budget" => c.reassembly_budget = int()?,
            "reassembly_floor" => c.reassembly_floor = int()?,
            "max_segments" => c.max_segments = int()?,
            "max_pending_segments" => c.max_pending_segments = int()?,
            "max_udp_datagrams" => c.max_udp_datagrams = int()?,
            "tcp_idle_timeout" => c.tcp_idle_timeout = float()?,
            "udp_idle_timeout" => c.udp_idle_timeout = float()?,
            "icmp_idle_timeout" => c.icmp_idle_timeout = float()?,
            "tcp_attempt_timeout" => c.tcp_attempt_timeout = float()?,
            "tcp_close_linger" => c.tcp_close_linger = float()?,
            "tcp_partial_close_timeout" => c.tcp_partial_close_timeout = float()?,
            "max_flows" => c.max_flows = int()?,
            "max_time_jump" => c.max_time_jump = float()?,
            "ip_id_samples" => c.ip_id_samples = int()?,
            "max_rsts" => c.max_rsts = int()?,
            "max_icmp_errors" => c.max_icmp_errors = int()?,
            "max_history" => c.max_history = int()?,
            "max_processes" => c.max_processes = int()?,
            _ => return Err(format!("unknown config key {}", k)),
        }
    }
    Ok(c)
}

// -- canonical text (flows_ref.py `fmt`) ---------------------------------------------------

fn f(v: f64) -> String {
    format!("f{:016x}", v.to_bits())
}

fn of(v: Option<f64>) -> String {
    v.map_or_else(|| "~".to_string(), f)
}

fn oi<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "~".to_string(), |x| x.to_string())
}

fn ob(v: Option<bool>) -> String {
    v.map_or_else(|| "~".to_string(), |x| b(x).to_string())
}

fn b(v: bool) -> &'static str {
    if v {
        "T"
    } else {
        "F"
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for x in bytes {
        let _ = write!(s, "{:02x}", x);
    }
    s
}

fn xb(bytes: &[u8]) -> String {
    format!("x{}", hex(bytes))
}

fn s(v: &str) -> String {
    let safe = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_^.:/-".contains(c));
    if safe {
        v.to_string()
    } else {
        format!("h{}", hex(v.as_bytes()))
    }
}

fn list<T, F: Fn(&T) -> String>(v: &[T], each: F) -> String {
    let items: Vec<String> = v.iter().map(each).collect();
    format!("[{}]", items.join(","))
}

fn side(v: Side) -> &'static str {
    match v {
        Side::Client => "client",
        Side::Server => "server",
    }
}

fn reason(v: EndReason) -> &'static str {
    match v {
        EndReason::Closed => "closed",
        EndReason::AttemptTimeout => "attempt_timeout",
        EndReason::PartialClose => "partial_close",
        EndReason::IdleTimeout => "idle_timeout",
        EndReason::Reused => "reused",
        EndReason::Evicted => "evicted",
        EndReason::EndOfCapture => "end_of_capture",
        EndReason::TimeJump => "time_jump",
    }
}

fn stream(v: &StreamData) -> String {
    format!(
        "{{data={} segments={} stream_bytes={} cut_by_cap={} cut_by_gap={} gaps={} gap_bytes={} overlap_conflicts={} pending_bytes={} segments_truncated={} cut_by_budget={}}}",
        xb(&v.data),
        list(&v.segments, |&(o, t)| format!("[{},{}]", o, f(t))),
        v.stream_bytes,
        b(v.cut_by_cap),
        b(v.cut_by_gap),
        v.gaps,
        v.gap_bytes,
        v.overlap_conflicts,
        v.pending_bytes,
        b(v.segments_truncated),
        b(v.cut_by_budget),
    )
}

fn direction(d: &DirectionStats) -> String {
    format!(
        "{{packets={} ip_bytes={} payload_bytes={} zeek_bytes={} first_ts={} last_ts={} ttls={} ip_ids={} ip_id_pattern={} state={} syn_ts={} syn_count={} syn_window={} syn_ttl={} syn_options={} first_data_ts={} fin_ts={} rst_count={} retransmissions={} zero_windows={} missed_bytes={} stream={} datagrams={} datagram_count={} duplicates={}}}",
        d.packets,
        d.ip_bytes,
        d.payload_bytes,
        d.zeek_bytes,
        of(d.first_ts),
        of(d.last_ts),
        list(&d.ttls, |&(t, n)| format!("[{},{}]", t, n)),
        list(&d.ip_ids, |x| x.to_string()),
        s(d.ip_id_pattern),
        s(d.state),
        of(d.syn_ts),
        d.syn_count,
        oi(d.syn_window),
        oi(d.syn_ttl),
        xb(&d.syn_options),
        of(d.first_data_ts),
        of(d.fin_ts),
        d.rst_count,
        d.retransmissions,
        d.zero_windows,
        d.missed_bytes,
        d.stream.as_ref().map_or_else(|| "~".to_string(), stream),
        list(&d.datagrams, |g| format!("{{ts={} payload={}}}", f(g.ts), xb(&g.payload))),
        d.datagram_count,
        d.duplicates,
    )
}

fn record(r: &FlowRecord) -> String {
    let uid = format!(
        "{}/{}/{}/{}/{}/{}/{}",
        r.uid_dup,
        f(r.ts_start),
        hex(r.first_src.as_bytes()),
        r.first_sport,
        hex(r.first_dst.as_bytes()),
        r.first_dport,
        r.proto
    );
    let rsts = list(&r.rsts, |e| {
        format!(
            "{{ts={} sender={} ttl={} ip_id={} df={} window={} seq={} ack={} flags={} payload_len={} rel_seq={} seq_at_next={} seq_at_peer_ack={} since_peer={} prev_ttl={} prev_ip_id={} packets_after={} data_after={}}}",
            f(e.ts),
            side(e.sender),
            e.ttl,
            oi(e.ip_id),
            b(e.df),
            e.window,
            e.seq,
            e.ack,
            e.flags,
            e.payload_len,
            oi(e.rel_seq),
            ob(e.seq_at_next),
            ob(e.seq_at_peer_ack),
            of(e.since_peer),
            oi(e.prev_ttl),
            oi(e.prev_ip_id),
            e.packets_after,
            e.data_after
        )
    });
    let icmp = list(&r.icmp_errors, |e| {
        format!(
            "{{ts={} type={} code={} reporter={} ttl={} about={} mtu={} quoted_seq={}}}",
            f(e.ts),
            e.type_,
            e.code,
            hex(e.reporter.as_bytes()),
            e.ttl,
            side(e.about),
            e.mtu,
            e.quoted_seq
        )
    });
    let procs = list(&r.processes, |(n, p)| {
        format!(
            "[{},{}]",
            n.as_deref().map_or_else(|| "~".to_string(), s),
            oi(*p)
        )
    });
    let mac = |m: &Option<Vec<u8>>| m.as_deref().map_or_else(|| "~".to_string(), hex);
    format!(
        "{{uid={} proto={} ip_version={} client_ip={} client_port={} server_ip={} server_port={} ts_start={} ts_end={} conn_state={} history={} client={} server={} syn_ts={} synack_ts={} ack_ts={} rtt_syn_synack={} rtt_synack_ack={} rsts={} rst_total={} icmp_errors={} icmp_error_total={} processes={} ifaces={} vlan={} weirds={} missed_bytes={} truncated_start={} open_at_end={} end_reason={} flipped={} client_mac={} server_mac={}}}",
        uid,
        r.proto,
        r.ip_version,
        hex(r.client_ip.as_bytes()),
        r.client_port,
        hex(r.server_ip.as_bytes()),
        r.server_port,
        f(r.ts_start),
        f(r.ts_end),
        s(&r.conn_state),
        s(&r.history),
        direction(&r.client),
        direction(&r.server),
        of(r.syn_ts),
        of(r.synack_ts),
        of(r.ack_ts),
        of(r.rtt_syn_synack),
        of(r.rtt_synack_ack),
        rsts,
        r.rst_total,
        icmp,
        r.icmp_error_total,
        procs,
        list(&r.ifaces, |x| x.to_string()),
        list(&r.vlan, |x| x.to_string()),
        list(&r.weirds, |(n, c)| format!("[{},{}]", s(n), c)),
        r.missed_bytes,
        b(r.truncated_start),
        b(r.open_at_end),
        reason(r.end_reason),
        b(r.flipped),
        mac(&r.client_mac),
        mac(&r.server_mac),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: flows_dump DUMP [key=value ...]");
        std::process::exit(2);
    }
    let data = match std::fs::read(&args[0]) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: {}", args[0], e);
            std::process::exit(1);
        }
    };
    let (ops, config) =
        match read_dump(&data).and_then(|ops| parse_config(&args[1..]).map(|c| (ops, c))) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("{}", e);
                std::process::exit(1);
            }
        };
    if let Some(reps) = std::env::var_os("FLOWS_DUMP_BENCH") {
        // Time the table alone: the packets are read and copied before the clock starts.
        let reps: usize = reps.to_str().and_then(|s| s.parse().ok()).unwrap_or(3);
        let mut best = f64::INFINITY;
        let mut n = 0usize;
        for _ in 0..reps {
            let copy: Vec<Op> = ops
                .iter()
                .map(|op| match op {
                    Op::Packet(p) => Op::Packet(p.clone()),
                    Op::Advance(t) => Op::Advance(*t),
                })
                .collect();
            n = copy.len();
            let mut table = FlowTable::new(config);
            let mut recs = Vec::new();
            let start = std::time::Instant::now();
            for op in copy {
                match op {
                    Op::Packet(p) => table.add(p, &mut recs),
                    Op::Advance(ts) => table.advance(ts, &mut recs),
                }
                recs.clear();
            }
            table.flush(&mut recs);
            let el = start.elapsed().as_secs_f64();
            if el < best {
                best = el;
            }
        }
        eprintln!(
            "{} ops, best of {}: {:.3} ms, {:.1} ns/op",
            n,
            reps,
            best * 1e3,
            best * 1e9 / n as f64
        );
        return;
    }
    let timing = std::env::var_os("FLOWS_DUMP_TIME").is_some();
    let mut table = FlowTable::new(config);
    let mut text = String::new();
    let mut recs = Vec::new();
    let mut n = 0u64;
    let start = std::time::Instant::now();
    for op in ops {
        let at = match op {
            Op::Packet(p) => {
                n += 1;
                table.add(p, &mut recs);
                n.to_string()
            }
            Op::Advance(ts) => {
                table.advance(ts, &mut recs);
                format!("a{}", n)
            }
        };
        for r in recs.drain(..) {
            if !timing {
                let _ = writeln!(text, "R {} {}", at, record(&r));
            }
        }
    }
    let _ = writeln!(
        text,
        "S packets={} live={} next_timer={}",
        table.packets,
        table.len(),
        f(table.next_timer())
    );
    table.flush(&mut recs);
    if timing {
        eprintln!("{} packets in {:?}", n, start.elapsed());
    }
    for r in recs.drain(..) {
        let _ = writeln!(text, "R end {}", record(&r));
    }
    let _ = writeln!(
        text,
        "S live={} next_timer={}",
        table.len(),
        f(table.next_timer())
    );
    for (k, c) in &table.weird.0 {
        let _ = writeln!(text, "W {} {}", s(k), c);
    }
    print!("{}", text);
}
