//! The Rust decoder over a frame dump written by `core/tools/decode_ref.py dump|mutate`,
//! printing the lines `decode_ref.py ref` prints with the Python decoder (see its doc for
//! both formats): `diff` the two.
//!
//! Usage: decode_dump DUMP [--shards | --bench N | --nofrags]
//! (--nofrags: `decode_ref.py ref --nofrags`; --shards: `decode_ref.py shards` lines; --bench: decode every frame N times, print the time)

use std::convert::TryInto;
use std::io::{self, BufWriter, Write};

use apple_net_core::decode::{decode, raw_shard, shard_of, Decoder};
use apple_net_core::packet::{Packet, ProcessInfo, RawPacket};

const NONE32: u32 = 0xFFFF_FFFF;

enum Item {
    Section(String),
    Frame { ts: f64, linktype: u32, wirelen: u32, iface: u32, proc_: Option<ProcessInfo>, data: Vec<u8> },
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn f64(&mut self) -> f64 {
        f64::from_bits(u64::from_le_bytes(self.take(8).try_into().unwrap()))
    }
    fn str_(&mut self) -> Option<String> {
        let n = self.u32();
        if n == NONE32 {
            return None;
        }
        Some(String::from_utf8(self.take(n as usize).to_vec()).expect("utf-8 name"))
    }
    fn int(&mut self) -> Option<u32> {
        let v = self.i64();
        if v == -1 {
            None
        } else {
            Some(v as u32)
        }
    }
    fn items(&mut self) -> Vec<Item> {
        let mut out = Vec::new();
        while self.pos < self.buf.len() {
            match self.u8() {
                2 => {
                    let n = self.u32() as usize;
                    out.push(Item::Section(String::from_utf8_lossy(self.take(n)).into_owned()));
                }
                _ => {
                    let ts = self.f64();
                    let linktype = self.u32();
                    let wirelen = self.u32();
                    let iface = self.u32();
                    let proc_ = if self.u8() != 0 {
                        let pid = self.int();
                        let name = self.str_();
                        let epid = self.int();
                        let ename = self.str_();
                        Some(ProcessInfo { pid, name, epid, ename })
                    } else {
                        None
                    };
                    let n = self.u32() as usize;
                    let data = self.take(n).to_vec();
                    out.push(Item::Frame { ts, linktype, wirelen, iface, proc_, data });
                }
            }
        }
        out
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push_str(&format!("{:02x}", x));
    }
    s
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "-".to_string(),
    }
}

fn fbits(x: f64) -> String {
    format!("{:016x}", x.to_bits())
}

fn fmt_packet(p: &Packet) -> String {
    let icmp = match &p.icmp {
        None => "-".to_string(),
        Some(i) => {
            let quoted = match &i.quoted {
                None => "-".to_string(),
                Some(q) => format!(
                    "{},{},{},{},{},{},{},{}",
                    q.ip_version,
                    hex(q.src.as_bytes()),
                    hex(q.dst.as_bytes()),
                    q.proto,
                    q.sport,
                    q.dport,
                    q.seq,
                    opt(q.ip_id)
                ),
            };
            format!("{},{},{},{},{}", i.type_, i.code, i.rest, i.mtu, quoted)
        }
    };
    let vlan: Vec<String> = p.vlan.iter().map(|v| v.to_string()).collect();
    let name = match &p.proc_name {
        None => "-".to_string(),
        Some(n) => format!("s{}", hex(n.as_bytes())),
    };
    [
        "P".to_string(),
        fbits(p.ts),
        p.ip_version.to_string(),
        hex(p.src.as_bytes()),
        hex(p.dst.as_bytes()),
        p.proto.to_string(),
        p.ttl.to_string(),
        opt(p.ip_id),
        (p.df as u8).to_string(),
        p.ip_len.to_string(),
        p.sport.to_string(),
        p.dport.to_string(),
        p.tcp_flags.to_string(),
        p.seq.to_string(),
        p.ack.to_string(),
        p.win.to_string(),
        format!("o{}", hex(&p.tcp_options)),
        format!("d{}", hex(&p.payload)),
        p.payload_len.to_string(),
        icmp,
        format!("v{}", vlan.join(",")),
        p.iface.to_string(),
        name,
        opt(p.pid),
        (p.fragmented as u8).to_string(),
        format!("m{}", hex(&p.macs)),
    ]
    .join(" ")
}

fn raw(item: &Item) -> Option<RawPacket<'_>> {
    match item {
        Item::Frame { ts, linktype, wirelen, iface, proc_, data } => Some(RawPacket {
            ts: *ts,
            linktype: *linktype,
            data,
            wirelen: *wirelen,
            iface: *iface,
            proc_: proc_.clone(),
        }),
        Item::Section(_) => None,
    }
}

fn end(dec: &mut Option<Decoder>, out: &mut impl Write) -> io::Result<()> {
    if let Some(dec) = dec.as_mut() {
        dec.finish();
        for (name, count) in &dec.weird.0 {
            if *count != 0 {
                writeln!(out, "W {} {}", name, count)?;
            }
        }
    }
    Ok(())
}

fn bench(items: &[Item], rounds: u32) {
    let raws: Vec<RawPacket<'_>> = items.iter().filter_map(raw).collect();
    let start = std::time::Instant::now();
    let mut decoded = 0u64;
    for _ in 0..rounds {
        let mut dec = Decoder::new();
        for r in &raws {
            if dec.decode(r).is_some() {
                decoded += 1;
            }
            dec.arp.clear();
        }
        dec.finish();
    }
    let n = raws.len() as f64 * rounds as f64;
    let secs = start.elapsed().as_secs_f64();
    eprintln!("{} frames x {}: {:.3} us/frame ({} packets)", raws.len(), rounds, secs * 1e6 / n, decoded);
}

/// `decode_ref.py shards`: the shard keys of every frame, for the n in `SHARD_COUNTS`.
fn shards(items: &[Item]) -> io::Result<()> {
    const SHARD_COUNTS: [u32; 7] = [1, 2, 3, 5, 8, 64, 1000003];
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut dec = Decoder::new();
    for item in items {
        let r = match raw(item) {
            Some(r) => r,
            None => {
                dec = Decoder::new();
                continue;
            }
        };
        let pkt = dec.decode(&r);
        dec.arp.clear();
        let raws: Vec<String> = SHARD_COUNTS.iter().map(|&n| opt(raw_shard(&r, n))).collect();
        let decoded: Vec<String> = SHARD_COUNTS
            .iter()
            .map(|&n| match &pkt {
                Some(p) => shard_of(p, n).to_string(),
                None => "-".to_string(),
            })
            .collect();
        writeln!(out, "S {} {}", raws.join(","), decoded.join(","))?;
    }
    Ok(())
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let buf = std::fs::read(&args[1])?;
    let items = Reader { buf: &buf, pos: 0 }.items();
    if args.len() > 2 && args[2] == "--shards" {
        return shards(&items);
    }
    if args.len() > 3 && args[2] == "--bench" {
        bench(&items, args[3].parse().expect("rounds"));
        return Ok(());
    }
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let nofrags = args.iter().any(|a| a == "--nofrags");
    let mut dec: Option<Decoder> = None;
    for item in &items {
        match item {
            Item::Section(name) => {
                end(&mut dec, &mut out)?;
                dec = Some(Decoder::new());
                writeln!(out, "# {}", name)?;
            }
            Item::Frame { .. } => {
                let d = dec.get_or_insert_with(Decoder::new);
                let r = raw(item).expect("a frame");
                let pkt = if nofrags {
                    // decode.py `decode(raw, None, weird, arp)`: fragments decoded alone.
                    decode(&r, None, &mut d.weird, Some(&mut d.arp))
                } else {
                    d.decode(&r)
                };
                match pkt {
                    None => writeln!(out, "N")?,
                    Some(p) => writeln!(out, "{}", fmt_packet(&p))?,
                }
                for a in d.arp.drain(..) {
                    writeln!(out, "A {} d{} m{}", fbits(a.ts), hex(&a.data), hex(&a.macs))?;
                }
            }
        }
    }
    end(&mut dec, &mut out)?;
    Ok(())
}
