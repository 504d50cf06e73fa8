//! Prints what the core's record walk makes of a capture, one canonical line per record and
//! then the pass's counters, for `diff` against `core/tools/walk_ref.py` (the Python reader).
//!
//! usage: walk_dump PATH [--chunk N | --random-chunks SEED] [--name NAME] [--gzip] [--head-note]
//!
//! The file is fed in chunks of N bytes (default 4093, an odd size, so records straddle
//! chunks), or of pseudo-random sizes from 1 to 8192. PATH must be the capture itself: a
//! gzip file is inflated by the caller (`--gzip` only says so, for error messages; `--name`
//! is the name Python's messages use, by default PATH).

use apple_net_core::capture::Walker;
use apple_net_core::packet::RawPacket;
use std::io::Write;

/// CRC-32 (IEEE, zlib's `crc32`) of `data`.
fn crc32(table: &[u32; 256], data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *slot = c;
    }
    table
}

fn opt_num(v: Option<u32>) -> String {
    match v {
        Some(n) => n.to_string(),
        None => "-".to_string(),
    }
}

fn opt_text(v: &Option<String>) -> String {
    match v {
        Some(s) => s.bytes().map(|b| format!("{:02x}", b)).collect::<String>() + "h",
        None => "-".to_string(),
    }
}

fn line(out: &mut Vec<u8>, table: &[u32; 256], raw: RawPacket) {
    let (pid, name, epid, ename) = match &raw.proc_ {
        Some(p) => (opt_num(p.pid), opt_text(&p.name), opt_num(p.epid), opt_text(&p.ename)),
        None => ("-".into(), "-".into(), "-".into(), "-".into()),
    };
    let _ = writeln!(
        out,
        "rec {:016x} {} {} {:08x} {} {} {} {} {} {}",
        raw.ts.to_bits(),
        raw.linktype,
        raw.data.len(),
        crc32(table, raw.data),
        raw.wirelen,
        raw.iface,
        pid,
        name,
        epid,
        ename
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut path: Option<String> = None;
    let mut name: Option<String> = None;
    let mut chunk = 4093usize;
    let mut seed: Option<u64> = None;
    let mut gzip = false;
    let mut head_note = "";
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--chunk" => {
                i += 1;
                chunk = args[i].parse().expect("--chunk N");
            }
            "--random-chunks" => {
                i += 1;
                seed = Some(args[i].parse().expect("--random-chunks SEED"));
            }
            "--name" => {
                i += 1;
                name = Some(args[i].clone());
            }
            "--gzip" => gzip = true,
            "--head-note" => head_note = " (gzip stream cut short or corrupt)",
            other => path = Some(other.to_string()),
        }
        i += 1;
    }
    let path = path.expect("usage: walk_dump PATH [--chunk N] [--name NAME] [--gzip]");
    let name = name.unwrap_or_else(|| path.clone());
    let data = std::fs::read(&path).expect("readable file");
    let table = crc_table();
    let mut out: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut walker = Walker::new();
    let mut state = seed.unwrap_or(0).wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut pos = 0;
    let mut result = Ok(());
    while pos < data.len() && result.is_ok() && !walker.is_done() {
        let size = match seed {
            Some(_) => {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                1 + ((state >> 33) % 8192) as usize
            }
            None => chunk,
        };
        let end = (pos + size).min(data.len());
        result = walker.feed(&data[pos..end], &mut |raw| line(&mut out, &table, raw));
        pos = end;
    }
    if result.is_ok() {
        result = walker.finish();
    }
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if let Err(error) = result {
        let _ = writeln!(w, "error {}", error.message(&name, gzip, head_note));
        return;
    }
    let _ = w.write_all(&out);
    let s = walker.summary();
    let _ = writeln!(w, "format {} {}", s.format, s.file_type);
    let _ = writeln!(w, "packets {}", s.packets);
    let _ = writeln!(w, "bytes {}", s.bytes);
    let _ = writeln!(w, "link_types {}", s.link_types.join(","));
    let interfaces: Vec<String> = s.interfaces.iter().map(|(lt, n)| format!("{}:{}", lt, opt_text(n))).collect();
    let _ = writeln!(w, "interfaces {}", interfaces.join(","));
    let _ = writeln!(w, "snaplen {}", s.snaplen);
    let _ = writeln!(w, "truncated {}", s.truncated as u8);
    for (k, v) in &s.weirds.0 {
        let _ = writeln!(w, "weird {} {}", k, v);
    }
    let _ = writeln!(w, "bytes_read {}", s.bytes_read);
}
