//! A std-only mutation fuzzer over the whole core (issue 15): cargo-fuzz needs crates, which
//! cannot be fetched here, so this is a plain loop of seeded mutations of real captures.
//!
//! - `fuzz_core` (ignored; the long run): `FUZZ_SECONDS` (default 60) of mutants of every
//!   capture under ../tests/fixtures and the shared corpus, seeded from `FUZZ_SEED` or the clock:
//!   `cargo test --release --offline -- --ignored fuzz` (and in debug, where overflow checks
//!   turn arithmetic slips into panics: `cargo test --offline -- --ignored fuzz`).
//! - `fuzz_core_replay_and_quick` (CI): every kept crash in ../tests/fixtures/fuzz/crashes/core
//!   replays under every plan, then a few hundred mutants with a fixed seed.
//!
//! An input drives `engine::Core` as the C ABI does (`ffi.rs`): begin_file, feed_bytes in
//! chunks of random sizes, end_file and its summary, finish and the weirds, the event buffer
//! taken after every call; half of the runs with the tiny limits of
//! tests/test_native_differential.py (TINY), some sharded, some reading the input twice (one
//! flow table over two files, as `run_engine` over a split capture). Core catches a panic per
//! packet and counts `internal_error_packet`, so a crash is either a panic that got out or
//! any `internal_error_*` weird. The input is kept as crashes/core/<FNV-1a 64 of its bytes>
//! (also replayed by the Python "core" target, tests/fuzz/targets.py), minimised first.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apple_net_core::config::FlowConfig;
use apple_net_core::engine::Core;
use apple_net_core::events::{Out, EV_FLOW, EV_NDP};

// ---------------------------------------------------------------------------------------------
// Randomness and hashing

/// xorshift64* (Vigna): enough for mutation choices, reproducible from one u64.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Zero is xorshift's fixed point; mix the seed so nearby seeds diverge at once.
        Rng(fnv1a64(&seed.to_le_bytes()) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// FNV-1a 64: the crash file's name.
fn fnv1a64(data: &[u8]) -> u64 {
    fnv1a64_more(0xcbf2_9ce4_8422_2325, data)
}

/// FNV-1a 64 continued over more bytes (a digest of everything a run hands out).
fn fnv1a64_more(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

// ---------------------------------------------------------------------------------------------
// Seeds and kept crashes

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn crash_dir() -> PathBuf {
    manifest_dir().join("../tests/fixtures/fuzz/crashes/core")
}

/// The capture directories: the fixtures, and the shared corpus next to the checkout (two
/// levels up from core/ in the main checkout, three in a worktree under wt/), or `FUZZ_CORPUS`.
fn seed_dirs() -> Vec<PathBuf> {
    let m = manifest_dir();
    let mut dirs = vec![m.join("../tests/fixtures")];
    match std::env::var_os("FUZZ_CORPUS") {
        Some(d) => dirs.push(PathBuf::from(d)),
        None => {
            for up in ["../../shared/corpus", "../../../shared/corpus"] {
                let d = m.join(up);
                if d.is_dir() {
                    dirs.push(d);
                    break;
                }
            }
        }
    }
    dirs
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(_) => return,
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            // Kept crashes are replayed on their own, not mutated as seeds.
            if p.file_name().map_or(false, |n| n == "fuzz") {
                continue;
            }
            walk(&p, out);
        } else if let Some(ext) = p.extension().and_then(|e| e.to_str()) {
            if ext == "pcap" || ext == "pcapng" || ext == "cap" {
                out.push(p);
            }
        }
    }
}

/// Every capture (not gzipped) up to `max_size` bytes, deduplicated, in path order.
fn load_seeds(max_size: u64) -> Vec<Vec<u8>> {
    let mut paths = Vec::new();
    for d in seed_dirs() {
        walk(&d, &mut paths);
    }
    paths.sort();
    let mut seen = BTreeSet::new();
    let mut seeds = Vec::new();
    for p in paths {
        let small = fs::metadata(&p).map(|m| m.len() <= max_size).unwrap_or(false);
        if !small {
            continue;
        }
        if let Ok(data) = fs::read(&p) {
            if seen.insert(fnv1a64(&data)) {
                seeds.push(data);
            }
        }
    }
    seeds
}

fn kept_crashes() -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    if let Ok(entries) = fs::read_dir(crash_dir()) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() {
                if let Ok(data) = fs::read(&p) {
                    found.push((p, data));
                }
            }
        }
    }
    found.sort();
    found
}

fn save_crash(data: &[u8]) -> PathBuf {
    let dir = crash_dir();
    let _ = fs::create_dir_all(&dir);
    let path = dir.join(format!("{:016x}", fnv1a64(data)));
    let _ = fs::write(&path, data);
    path
}

// ---------------------------------------------------------------------------------------------
// Where the records are: so that mutations hit length fields and whole records

/// One record (pcap) or block (pcapng) of a capture.
#[derive(Clone, Copy)]
struct Rec {
    start: usize,
    end: usize,
    /// Offsets of the record's 4-byte length fields (captured/original length; a block's
    /// total length at both ends).
    lens: [Option<usize>; 4],
    /// Offset of the timestamp's high/seconds word.
    ts: Option<usize>,
    /// First byte of the packet data.
    body: usize,
    /// Offset of a pcapng Interface Description Block's 16-bit link type.
    link: Option<usize>,
}

/// The records of `buf` as far as they parse, and whether its numbers are little-endian.
fn records(buf: &[u8]) -> (Vec<Rec>, bool) {
    let mut recs = Vec::new();
    if buf.len() < 24 {
        return (recs, true);
    }
    let magic = [buf[0], buf[1], buf[2], buf[3]];
    let le_magic = u32::from_le_bytes(magic);
    let classic_le = le_magic == 0xa1b2_c3d4 || le_magic == 0xa1b2_3c4d;
    let classic_be = u32::from_be_bytes(magic) == 0xa1b2_c3d4 || u32::from_be_bytes(magic) == 0xa1b2_3c4d;
    if classic_le || classic_be {
        let rd = |at: usize| -> usize {
            let w = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
            (if classic_le { u32::from_le_bytes(w) } else { u32::from_be_bytes(w) }) as usize
        };
        let mut pos = 24;
        while pos + 16 <= buf.len() && recs.len() < 100_000 {
            let end = match (pos + 16).checked_add(rd(pos + 8)) {
                Some(e) if e <= buf.len() => e,
                _ => break,
            };
            recs.push(Rec {
                start: pos,
                end,
                lens: [Some(pos + 8), Some(pos + 12), None, None],
                ts: Some(pos),
                body: pos + 16,
                link: None,
            });
            pos = end;
        }
        return (recs, classic_le);
    }
    if le_magic != 0x0a0d_0d0a || buf.len() < 12 {
        return (recs, true);
    }
    let little = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) == 0x1a2b_3c4d;
    let rd = |at: usize| -> usize {
        let w = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        (if little { u32::from_le_bytes(w) } else { u32::from_be_bytes(w) }) as usize
    };
    let mut pos = 0;
    while pos + 12 <= buf.len() && recs.len() < 100_000 {
        let total = rd(pos + 4);
        if total < 12 {
            break;
        }
        let end = match pos.checked_add(total) {
            Some(e) if e <= buf.len() => e,
            _ => break,
        };
        let kind = rd(pos);
        let mut rec = Rec {
            start: pos,
            end,
            lens: [Some(pos + 4), Some(end - 4), None, None],
            ts: None,
            body: pos + 8,
            link: None,
        };
        if kind == 6 && total >= 32 {
            // Enhanced Packet Block: interface, ts high, ts low, captured, original length.
            rec.lens[2] = Some(pos + 20);
            rec.lens[3] = Some(pos + 24);
            rec.ts = Some(pos + 12);
            rec.body = pos + 28;
        } else if kind == 1 && total >= 20 {
            rec.link = Some(pos + 8);
        } else if kind == 3 && total >= 16 {
            rec.lens[2] = Some(pos + 8); // Simple Packet Block: original length
            rec.body = pos + 12;
        }
        recs.push(rec);
        pos = end;
    }
    (recs, little)
}

// ---------------------------------------------------------------------------------------------
// Mutations

const INTERESTING8: [u8; 9] = [0, 1, 0x7f, 0x80, 0xff, 0x40, 0x0f, 0x10, 0xfe];
const INTERESTING32: [u32; 16] =
    [0, 1, 2, 4, 8, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];
/// Mutants stay below this: whole captures are fed, and long ones only slow the loop.
const MAX_LEN: usize = 1 << 19;

fn put32(buf: &mut [u8], at: usize, v: u32, little: bool) {
    if at + 4 <= buf.len() {
        let b = if little { v.to_le_bytes() } else { v.to_be_bytes() };
        buf[at..at + 4].copy_from_slice(&b);
    }
}

fn get32(buf: &[u8], at: usize, little: bool) -> u32 {
    if at + 4 > buf.len() {
        return 0;
    }
    let w = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
    if little {
        u32::from_le_bytes(w)
    } else {
        u32::from_be_bytes(w)
    }
}

/// A position biased towards the first bytes of a record's packet (the headers the decoder
/// reads), else anywhere.
fn spot(buf: &[u8], recs: &[Rec], rng: &mut Rng) -> Option<usize> {
    if buf.is_empty() {
        return None;
    }
    if !recs.is_empty() && !rng.chance(4) {
        let r = rng.pick(recs);
        if r.end > r.body {
            let span = (r.end - r.body).min(96);
            return Some(r.body + rng.below(span));
        }
    }
    Some(rng.below(buf.len()))
}

fn mutate(seed: &[u8], seeds: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut buf = seed.to_vec();
    let rounds = 1 + (rng.next().trailing_zeros() as usize).min(6);
    for _ in 0..rounds {
        let (recs, little) = records(&buf);
        match rng.below(15) {
            0 | 1 => {
                // bit flip
                if let Some(i) = spot(&buf, &recs, rng) {
                    buf[i] ^= 1 << rng.below(8);
                }
            }
            2 => {
                if let Some(i) = spot(&buf, &recs, rng) {
                    buf[i] = *rng.pick(&INTERESTING8);
                }
            }
            3 => {
                if let Some(i) = spot(&buf, &recs, rng) {
                    buf[i] = rng.next() as u8;
                }
            }
            4 => {
                // a 16-bit field inside a packet (IP total length, UDP length, ports...): network order mostly
                if let Some(i) = spot(&buf, &recs, rng) {
                    if i + 2 <= buf.len() {
                        let v = (*rng.pick(&INTERESTING32) as u16).wrapping_add(rng.below(3) as u16).wrapping_sub(1);
                        let b = if rng.chance(4) { v.to_le_bytes() } else { v.to_be_bytes() };
                        buf[i..i + 2].copy_from_slice(&b);
                    }
                }
            }
            5 | 6 => {
                // a record's length field: 0, tiny, the record's own length +-, huge
                if !recs.is_empty() {
                    let r = *rng.pick(&recs);
                    let fields: Vec<usize> = r.lens.iter().flatten().copied().collect();
                    let at = *rng.pick(&fields);
                    let old = get32(&buf, at, little);
                    let v = match rng.below(4) {
                        0 => *rng.pick(&INTERESTING32),
                        1 => old.wrapping_add(rng.below(9) as u32).wrapping_sub(4),
                        2 => old.wrapping_add(4 * rng.below(5) as u32).wrapping_sub(8),
                        _ => (rng.next() as u32) % 0x20000,
                    };
                    put32(&mut buf, at, v, little);
                }
            }
            7 => {
                // truncation: at a record boundary give or take a few bytes, or anywhere
                if !buf.is_empty() {
                    let cut = if !recs.is_empty() && rng.chance(2) {
                        let r = rng.pick(&recs);
                        let edge = if rng.chance(2) { r.start } else { r.end };
                        (edge + rng.below(9)).saturating_sub(4).min(buf.len())
                    } else {
                        rng.below(buf.len() + 1)
                    };
                    buf.truncate(cut);
                }
            }
            8 => {
                // splice: our head, then another input's tail from one of its records
                let other = rng.pick(seeds);
                let (orecs, _) = records(other);
                let from = if !orecs.is_empty() && !rng.chance(4) {
                    rng.pick(&orecs).start
                } else {
                    rng.below(other.len() + 1)
                };
                let keep =
                    if !recs.is_empty() && !rng.chance(4) { rng.pick(&recs).end } else { rng.below(buf.len() + 1) };
                buf.truncate(keep);
                buf.extend_from_slice(&other[from..]);
            }
            9 => {
                // repeat a record (1..8 times), right after itself or somewhere else
                if !recs.is_empty() {
                    let r = *rng.pick(&recs);
                    let rec = buf[r.start..r.end].to_vec();
                    let at = if rng.chance(2) { r.end } else { rng.pick(&recs).start };
                    let times = 1 + rng.below(8);
                    let mut tail = buf.split_off(at);
                    for _ in 0..times {
                        buf.extend_from_slice(&rec);
                    }
                    buf.append(&mut tail);
                }
            }
            10 => {
                // drop a record, or a run of bytes
                if !recs.is_empty() && rng.chance(2) {
                    let r = *rng.pick(&recs);
                    buf.drain(r.start..r.end);
                } else if !buf.is_empty() {
                    let i = rng.below(buf.len());
                    let n = 1 + rng.below(64usize.min(buf.len() - i));
                    buf.drain(i..i + n);
                }
            }
            11 => {
                // insert random bytes
                let i = rng.below(buf.len() + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                let mut tail = buf.split_off(i);
                buf.extend_from_slice(&bytes);
                buf.append(&mut tail);
            }
            12 => {
                // a timestamp: back in time, far ahead, zero, or the same as another record's
                if !recs.is_empty() {
                    let r = *rng.pick(&recs);
                    if let Some(at) = r.ts {
                        let old = get32(&buf, at, little);
                        let v = match rng.below(5) {
                            0 => 0,
                            1 => old.wrapping_sub(1 + rng.below(120) as u32),
                            2 => old.wrapping_add(1 + rng.below(4000) as u32),
                            3 => *rng.pick(&INTERESTING32),
                            _ => rng.pick(&recs).ts.map_or(0, |o| get32(&buf, o, little)),
                        };
                        put32(&mut buf, at, v, little);
                        if rng.chance(2) {
                            // the sub-second word too
                            let sub = *rng.pick(&[0u32, 999_999, 1_000_000, 0xffff_ffff]);
                            put32(&mut buf, at + 4, sub, little);
                        }
                    }
                }
            }
            13 => {
                // another link type: the same frames through another decoder (pcap header or a pcapng IDB)
                let link = *rng.pick(&[0u32, 1, 9, 12, 14, 101, 108, 113, 228, 229, 258, 276, 127, 0xffff]);
                let idbs: Vec<usize> = recs.iter().filter_map(|r| r.link).collect();
                if !idbs.is_empty() {
                    let at = *rng.pick(&idbs);
                    let b = if little { (link as u16).to_le_bytes() } else { (link as u16).to_be_bytes() };
                    buf[at..at + 2].copy_from_slice(&b);
                } else if !recs.is_empty() && recs[0].start == 24 {
                    // classic pcap: its records start after the 24-byte file header, link type last
                    put32(&mut buf, 20, link, little);
                }
            }
            _ => {
                // swap two records (order of packets within a flow)
                if recs.len() >= 2 {
                    let i = rng.below(recs.len() - 1);
                    let (a, b) = (recs[i], recs[i + 1]);
                    let mut swapped = buf[b.start..b.end].to_vec();
                    swapped.extend_from_slice(&buf[a.start..a.end]);
                    let _removed: Vec<u8> = buf.splice(a.start..b.end, swapped).collect();
                }
            }
        }
        buf.truncate(MAX_LEN);
    }
    buf
}

// ---------------------------------------------------------------------------------------------
// One run of the core

/// tests/test_native_differential.py TINY: every cap and timeout small, so evictions, budget
/// cuts and timeouts happen on short inputs.
fn tiny_config() -> FlowConfig {
    FlowConfig {
        max_flows: 3,
        reassembly_budget: 4096,
        reassembly_floor: 512,
        reassembly_cap: 2048,
        max_segments: 3,
        max_pending_segments: 2,
        max_udp_datagrams: 1,
        max_history: 6,
        ip_id_samples: 2,
        max_rsts: 1,
        max_icmp_errors: 1,
        max_processes: 1,
        tcp_idle_timeout: 2.0,
        udp_idle_timeout: 1.0,
        icmp_idle_timeout: 1.0,
        tcp_attempt_timeout: 0.5,
        tcp_close_linger: 0.2,
        tcp_partial_close_timeout: 0.1,
        max_time_jump: 0.5,
    }
}

/// How chunks are cut when feeding.
#[derive(Clone, Copy, Debug)]
enum Chunks {
    Whole,
    Fixed(usize),
    /// Random sizes from this seed (1..16, ..4096, ..65536 bytes).
    Random(u64),
}

/// How one input is run: config, shard, chunking, and whether it is read twice into one table.
#[derive(Clone, Copy, Debug)]
struct Plan {
    tiny: bool,
    shard: Option<(u32, u32)>,
    chunks: Chunks,
    twice: bool,
    /// Move the clock past the file's last packet between files (`Engine.advance`).
    advance: bool,
    /// Also run the input whole and compare: the walk keeps a record cut by a chunk's end
    /// for the next, so the events, summaries and weirds must not depend on the chunking.
    compare: bool,
}

impl Plan {
    fn random(rng: &mut Rng) -> Plan {
        Plan {
            tiny: rng.chance(2),
            shard: match rng.below(8) {
                0 => Some((0, 2)),
                1 => Some((1, 2)),
                2 => Some((rng.below(3) as u32, 3)),
                _ => None,
            },
            chunks: match rng.below(6) {
                0 => Chunks::Whole,
                1 => Chunks::Fixed(1 + rng.below(24)),
                _ => Chunks::Random(rng.next()),
            },
            twice: rng.chance(6),
            advance: rng.chance(6),
            compare: rng.chance(8),
        }
    }

    /// The plans a kept crash is replayed under: both configs, sharded or not, whole and cut.
    fn fixed() -> Vec<Plan> {
        let mut plans = Vec::new();
        for &tiny in &[false, true] {
            for &shard in &[None, Some((0, 2)), Some((1, 2))] {
                for &chunks in &[Chunks::Whole, Chunks::Fixed(1), Chunks::Fixed(13), Chunks::Random(1)] {
                    for &twice in &[false, true] {
                        let compare = !matches!(chunks, Chunks::Whole);
                        plans.push(Plan { tiny, shard, chunks, twice, advance: twice, compare });
                    }
                }
            }
        }
        plans
    }
}

thread_local! {
    /// Where this thread's panics happened (file:line: message), caught or not.
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Panics are recorded (for the crash's signature) instead of printed: a crash repeats
/// thousands of times in a run. Other threads' panics (another test failing) still print.
fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let fuzzing = std::thread::current().name().map_or(false, |n| n.contains("fuzz"));
            if !fuzzing {
                return default(info);
            }
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                s.to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "?".to_string()
            };
            let at = info.location().map_or("?".to_string(), |l| format!("{}:{}", l.file(), l.line()));
            PANICS.with(|p| p.borrow_mut().push(format!("{}: {}", at, msg)));
        }));
    });
}

/// What one run did: for the rates and the weird names seen.
#[derive(Default)]
struct Ran {
    packets: u64,
    events: u64,
    weirds: BTreeMap<String, u64>,
    /// FNV-1a of every event, error message, file summary and the weirds, in order.
    digest: u64,
}

impl Ran {
    fn mix(&mut self, bytes: &[u8]) {
        self.digest = fnv1a64_more(self.digest, bytes);
    }
}

/// The event buffer after a call: what a reader would see first must be an event kind.
fn take_events(core: &mut Core, ran: &mut Ran) {
    if !core.out.is_empty() {
        let kind = core.out[0];
        assert!((EV_FLOW..=EV_NDP).contains(&kind), "event buffer starts with kind {}", kind);
        ran.events += core.out.len() as u64;
        ran.mix(&core.out);
        core.out.clear();
    }
}

fn feed(core: &mut Core, data: &[u8], chunks: Chunks, ran: &mut Ran) {
    let mut rng = Rng::new(match chunks {
        Chunks::Random(s) => s,
        _ => 0,
    });
    let mut pos = 0;
    while pos < data.len() {
        let n = match chunks {
            Chunks::Whole => data.len(),
            Chunks::Fixed(n) => n,
            Chunks::Random(_) => match rng.below(3) {
                0 => 1 + rng.below(16),
                1 => 1 + rng.below(4096),
                _ => 1 + rng.below(65536),
            },
        };
        let end = (pos + n).min(data.len());
        let r = core.feed_bytes(&data[pos..end]);
        take_events(core, ran);
        if let Err(message) = r {
            ran.mix(message.as_bytes());
            return; // CaptureError: NativeEngine.read stops reading the file
        }
        pos = end;
    }
}

/// A fault: what happened, and its signature (where it panicked, without the messages,
/// which hold values): one kept input per signature.
struct Crash {
    error: String,
    signature: String,
}

/// `run_once`, and when the plan says so the same whole: a crash too when the chunking
/// changed anything handed out.
fn run_core(data: &[u8], plan: &Plan) -> Result<Ran, Crash> {
    let ran = run_once(data, plan)?;
    if !plan.compare || matches!(plan.chunks, Chunks::Whole) {
        return Ok(ran);
    }
    let whole = run_once(data, &Plan { chunks: Chunks::Whole, ..*plan })?;
    if whole.digest != ran.digest || whole.packets != ran.packets {
        return Err(Crash {
            error: format!(
                "chunks {:?} change the result: {} packets, {} event bytes; whole: {} packets, {} event bytes",
                plan.chunks, ran.packets, ran.events, whole.packets, whole.events
            ),
            signature: "chunking changes the result".to_string(),
        });
    }
    Ok(ran)
}

/// The core over `data` under `plan`, as the C ABI drives it. Err: the crash (a panic that
/// got out, or `internal_error_*` weirds: a panic Core caught).
fn run_once(data: &[u8], plan: &Plan) -> Result<Ran, Crash> {
    quiet_panics();
    PANICS.with(|p| p.borrow_mut().clear());
    let mut ran = Ran::default();
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let config = if plan.tiny { tiny_config() } else { FlowConfig::default() };
        let mut core = Core::new(config, plan.shard);
        let mut info = Vec::new();
        for _ in 0..(1 + plan.twice as usize) {
            core.begin_file("fuzz.pcap".to_string(), false);
            feed(&mut core, data, plan.chunks, &mut ran);
            if let Some((file, result)) = core.end_file() {
                take_events(&mut core, &mut ran);
                if let Err(message) = result {
                    ran.mix(message.as_bytes());
                }
                info.clear();
                Out(&mut info).file_summary(&file, core.counts_frames);
                ran.mix(&info);
                if plan.advance {
                    if let Some(t) = file.last_ts {
                        core.advance(t + 0.3);
                        take_events(&mut core, &mut ran);
                    }
                }
            }
        }
        core.finish();
        take_events(&mut core, &mut ran);
        let w = core.weirds();
        info.clear();
        Out(&mut info).weirds(&w);
        ran.mix(&info);
        ran.packets += core.table.packets;
        w
    }));
    let panics = PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()));
    let places: BTreeSet<&str> = panics.iter().map(|p| p.split(": ").next().unwrap_or("?")).collect();
    let signature = places.into_iter().collect::<Vec<_>>().join(" ");
    match result {
        Err(_) => Err(Crash { error: format!("panic: {}", panics.join(" | ")), signature }),
        Ok(w) => {
            let internal: Vec<String> =
                w.0.iter()
                    .filter(|(k, _)| k.starts_with("internal_error"))
                    .map(|(k, v)| format!("{}={}", k, v))
                    .collect();
            if !internal.is_empty() {
                return Err(Crash {
                    error: format!("{} from panic {}", internal.join(","), panics.join(" | ")),
                    signature,
                });
            }
            ran.weirds = w.0;
            Ok(ran)
        }
    }
}

/// Smaller input, same fault: drop records, then cut the tail, then drop byte runs.
fn minimise(data: &[u8], plan: &Plan, sig: &str) -> Vec<u8> {
    let still = |d: &[u8]| match run_core(d, plan) {
        Err(c) => c.signature == sig,
        Ok(_) => false,
    };
    let mut best = data.to_vec();
    let started = Instant::now();
    let budget = Duration::from_secs(60);
    // whole records, from the last (later records depend on earlier ones less often)
    loop {
        let (recs, _) = records(&best);
        let mut shrunk = false;
        for r in recs.iter().rev() {
            if started.elapsed() > budget {
                break;
            }
            let mut d = best[..r.start].to_vec();
            d.extend_from_slice(&best[r.end..]);
            if still(&d) {
                best = d;
                shrunk = true;
                break;
            }
        }
        if !shrunk || started.elapsed() > budget {
            break;
        }
    }
    // byte runs, halving
    let mut n = best.len() / 2;
    while n >= 1 && started.elapsed() < budget {
        let mut i = 0;
        while i + n <= best.len() && started.elapsed() < budget {
            let mut d = best[..i].to_vec();
            d.extend_from_slice(&best[i + n..]);
            if still(&d) {
                best = d;
            } else {
                i += n;
            }
        }
        n /= 2;
    }
    best
}

/// A crash found: reproduced under a fixed plan if it can be (so the kept file replays in CI),
/// minimised, kept. Returns the kept path and the error.
fn keep(data: &[u8], plan: &Plan, crash: &Crash) -> (PathBuf, String) {
    let sig = crash.signature.as_str();
    let mut use_plan = *plan;
    for p in Plan::fixed() {
        if let Err(c) = run_core(data, &p) {
            if c.signature == sig {
                use_plan = p;
                break;
            }
        }
    }
    let small = minimise(data, &use_plan, sig);
    let path = save_crash(&small);
    (path, format!("{} (plan {:?}, {} bytes, minimised from {})", crash.error, use_plan, small.len(), data.len()))
}

// ---------------------------------------------------------------------------------------------
// The loops

struct Stats {
    inputs: u64,
    bytes: u64,
    packets: u64,
    weirds: BTreeMap<String, u64>,
    crashes: Vec<(PathBuf, String)>,
}

/// Every seed once, then mutants, until `inputs` or `until`.
fn fuzz_loop(seeds: &[Vec<u8>], seed: u64, inputs: Option<u64>, until: Option<Instant>) -> Stats {
    let mut rng = Rng::new(seed);
    let mut stats = Stats { inputs: 0, bytes: 0, packets: 0, weirds: BTreeMap::new(), crashes: Vec::new() };
    let mut seen = BTreeSet::new();
    let mut i = 0usize;
    loop {
        if inputs.map_or(false, |n| stats.inputs >= n) || until.map_or(false, |t| Instant::now() >= t) {
            break;
        }
        let data = if i < seeds.len() { seeds[i].clone() } else { mutate(rng.pick::<Vec<u8>>(seeds), seeds, &mut rng) };
        i += 1;
        let plan = Plan::random(&mut rng);
        stats.inputs += 1;
        stats.bytes += data.len() as u64 * (1 + plan.twice as u64);
        match run_core(&data, &plan) {
            Ok(ran) => {
                stats.packets += ran.packets;
                for (k, v) in ran.weirds {
                    *stats.weirds.entry(k).or_insert(0) += v;
                }
            }
            Err(c) => {
                if seen.insert(c.signature.clone()) && stats.crashes.len() < 16 {
                    eprintln!("fuzz: crash {}", c.error);
                    stats.crashes.push(keep(&data, &plan, &c));
                    eprintln!(
                        "fuzz: kept {}",
                        stats.crashes.last().map_or(String::new(), |c| c.0.display().to_string())
                    );
                }
            }
        }
    }
    stats
}

fn report(label: &str, stats: &Stats, seconds: f64) -> String {
    let mut s = format!(
        "{}: {} inputs in {:.1} s ({:.0}/s), {:.1} MB fed, {} packets into the table ({:.0}/s), {} weird names seen (besides unknown_linktype_*), {} crashes",
        label,
        stats.inputs,
        seconds,
        stats.inputs as f64 / seconds.max(1e-9),
        stats.bytes as f64 / 1e6,
        stats.packets,
        stats.packets as f64 / seconds.max(1e-9),
        stats.weirds.keys().filter(|k| !k.starts_with("unknown_linktype_")).count(),
        stats.crashes.len()
    );
    for (p, e) in &stats.crashes {
        s.push_str(&format!("\n  {}\n    kept at {}", e, p.display()));
    }
    s
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `f` on a thread named for the fuzzer (the panic hook records its panics quietly).
fn on_fuzz_thread<T: Send + 'static, F: FnOnce() -> T + Send + 'static>(f: F) -> T {
    let t = std::thread::Builder::new().name("fuzz-core".to_string()).stack_size(64 << 20).spawn(f);
    match t.map(|h| h.join()) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic::resume_unwind(e),
        Err(e) => panic!("cannot start the fuzz thread: {}", e),
    }
}

/// The long run: `FUZZ_SECONDS` (default 60) from `FUZZ_SEED` (default: the clock).
#[test]
#[ignore]
fn fuzz_core() {
    let seconds = env_u64("FUZZ_SECONDS").unwrap_or(60);
    let seed = env_u64("FUZZ_SEED")
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1));
    let verbose = std::env::var_os("FUZZ_WEIRDS").is_some();
    let out = on_fuzz_thread(move || {
        let seeds = load_seeds(1 << 20);
        assert!(!seeds.is_empty(), "no captures under {:?}", seed_dirs());
        let started = Instant::now();
        let stats = fuzz_loop(&seeds, seed, None, Some(started + Duration::from_secs(seconds)));
        let elapsed = started.elapsed().as_secs_f64();
        let mut text =
            format!("seed {}, {} seed captures\n{}", seed, seeds.len(), report("fuzz_core", &stats, elapsed));
        if verbose {
            for (k, v) in &stats.weirds {
                text.push_str(&format!("\n  {:8} {}", v, k));
            }
        }
        (stats.crashes.is_empty(), text)
    });
    eprintln!("{}", out.1);
    assert!(out.0, "{}", out.1);
}

/// CI: kept crashes replay cleanly under every fixed plan, then a few hundred mutants of the
/// small seeds with a fixed seed.
#[test]
fn fuzz_core_replay_and_quick() {
    let out = on_fuzz_thread(|| {
        let mut failures = Vec::new();
        for (path, data) in kept_crashes() {
            for plan in Plan::fixed() {
                if let Err(c) = run_core(&data, &plan) {
                    failures.push(format!("{}: {} (plan {:?})", path.display(), c.error, plan));
                    break;
                }
            }
        }
        let seeds = load_seeds(64 << 10);
        let started = Instant::now();
        let n = 400;
        let stats = fuzz_loop(&seeds, 20261207, Some(seeds.len() as u64 + n), None);
        let text = report("quick", &stats, started.elapsed().as_secs_f64());
        for (p, e) in &stats.crashes {
            failures.push(format!("{}: {}", p.display(), e));
        }
        (failures, text)
    });
    eprintln!("{}", out.1);
    assert!(out.0.is_empty(), "{}", out.0.join("\n"));
}
