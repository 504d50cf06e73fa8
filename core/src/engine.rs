//! The core's engine: `analyzer/engine.py`'s per-packet loop (`Engine._feed`,
//! `_shard_decode`, `read`'s per-file bookkeeping) over the record walk, the decoder and the
//! flow table. What Python acts on (flows, DNS messages, ARP frames, NDP packets) goes out as
//! events in the order the Python engine acts on them (`events.rs`).

use std::panic::{self, AssertUnwindSafe};

use crate::capture::{CaptureError, Walker};
use crate::config::FlowConfig;
use crate::decode::{raw_shard, shard_of, Decoder};
use crate::events::Out;
use crate::flows::table::FlowTable;
use crate::packet::{Packet, ProcessInfo, RawPacket};
use crate::record::FlowRecord;
use crate::weird::Weirds;

fn file_error(e: &CaptureError, file: &FileState) -> String {
    e.message(&file.name, file.compressed, "")
}

const UDP: u8 = 17;
const ICMP6: u8 = 58;
/// Unicast DNS, mDNS and LLMNR (engine.py DNS_UDP_PORTS).
fn is_dns_port(p: u16) -> bool {
    p == 53 || p == 5353 || p == 5355
}

/// One file's walk and what `Engine.read` records about it.
pub struct FileState {
    pub walker: Walker,
    /// The reader's name (path or `<stdin>`) and whether its bytes came out of gzip: for
    /// the messages of `CaptureError`, which the walk gives as Python words them.
    pub name: String,
    pub compressed: bool,
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
    pub process_info: bool,
}

pub struct Core {
    pub shard: Option<(u32, u32)>,
    /// The reader's weirds and the fragments left at the end are the same in every shard: one counts them.
    pub counts_frames: bool,
    pub decoder: Decoder,
    pub table: FlowTable,
    pub file: Option<FileState>,
    /// Events for Python, drained by it after every call.
    pub out: Vec<u8>,
    records: Vec<FlowRecord>,
    scratch: Weirds,
    /// Internal errors (a panic on one packet): counted, the rest goes on.
    pub weird: Weirds,
    /// `--max-memory`: (limit in MiB, page size in bytes); the resident memory is looked at
    /// every `MEMORY_CHECK_EVERY` packets, as `Engine.feed` does.
    pub memory_limit: Option<(f64, u64)>,
    check_in: u64,
    /// Reading stopped at the memory limit: the rest of the input is not walked.
    pub stopped: bool,
}

/// Packets between two looks at the resident memory (engine.py MEMORY_CHECK_EVERY).
pub const MEMORY_CHECK_EVERY: u64 = 0x3FFF;

/// This process's resident memory in MiB (/proc/self/statm), None where it cannot be read.
fn resident_mb(page_size: u64) -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some((pages * page_size) as f64 / 1048576.0)
}

impl Core {
    pub fn new(config: FlowConfig, shard: Option<(u32, u32)>) -> Core {
        let shard = match shard {
            Some((k, n)) if n > 1 => Some((k, n)),
            _ => None,
        };
        Core {
            shard,
            counts_frames: match shard {
                None => true,
                Some((k, _)) => k == 0,
            },
            decoder: Decoder::new(),
            table: FlowTable::new(config),
            file: None,
            out: Vec::with_capacity(1 << 20),
            records: Vec::new(),
            scratch: Weirds::new(),
            weird: Weirds::new(),
            memory_limit: None,
            check_in: MEMORY_CHECK_EVERY,
            stopped: false,
        }
    }

    pub fn begin_file(&mut self, name: String, compressed: bool) {
        self.file = Some(FileState {
            walker: Walker::new(),
            name,
            compressed,
            first_ts: None,
            last_ts: None,
            process_info: false,
        });
    }

    /// Bytes of the current file; the walk keeps a record cut by the chunk's end for the next.
    /// Err: the bytes are no capture (the message Python's `CaptureError` carries). After the
    /// memory limit stopped reading (`stopped`), nothing more is walked.
    pub fn feed_bytes(&mut self, chunk: &[u8]) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        let mut file = match self.file.take() {
            Some(f) => f,
            None => return Ok(()),
        };
        let result = {
            let walker = &mut file.walker;
            let first_ts = &mut file.first_ts;
            let last_ts = &mut file.last_ts;
            let process_info = &mut file.process_info;
            walker.feed_until(chunk, &mut |raw: RawPacket| {
                if first_ts.is_none() {
                    *first_ts = Some(raw.ts);
                }
                *last_ts = Some(raw.ts);
                if raw.proc_.is_some() {
                    *process_info = true;
                }
                self.feed_raw_guarded(&raw);
                self.memory_ok()
            })
        };
        let result = result.map_err(|e| file_error(&e, &file));
        self.file = Some(file);
        result
    }

    /// Frames handed over in a batch (a live capture), packed by `analyzer/native/engine.py`
    /// `pack_frames`: per frame `<dIIII` (ts, linktype, wirelen, iface, caplen), the frame's bytes,
    /// then a process flag byte (1: pid, name, epid, ename follow as in events.rs). Each is fed
    /// as `Engine.feed` would; a batch cut short ends at the last whole frame (counted weird
    /// `internal_error_frames`: the packing is ours, never the wire's).
    pub fn feed_frames(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            let frame = match FrameView::parse(buf) {
                Some(f) => f,
                None => {
                    self.weird.add("internal_error_frames");
                    return;
                }
            };
            buf = &buf[frame.len..];
            let raw = RawPacket {
                ts: frame.ts,
                linktype: frame.linktype,
                data: frame.data,
                wirelen: frame.wirelen,
                iface: frame.iface,
                proc_: frame.proc_,
            };
            self.feed_raw_guarded(&raw);
        }
    }

    /// `Engine.feed`'s countdown: false when this packet's check finds the limit passed.
    fn memory_ok(&mut self) -> bool {
        let (limit, page) = match self.memory_limit {
            Some(l) => l,
            None => return true,
        };
        self.check_in -= 1;
        if self.check_in != 0 {
            return true;
        }
        self.check_in = MEMORY_CHECK_EVERY;
        match resident_mb(page) {
            Some(rss) if rss > limit => {
                self.stopped = true;
                false
            }
            _ => true,
        }
    }

    /// End of the current file's bytes: a record cut by the end is counted, as the reader does.
    /// Err: the input was too short to be a capture (with its message).
    pub fn end_file(&mut self) -> Option<(FileState, Result<(), String>)> {
        let mut file = self.file.take()?;
        let r = file.walker.finish().map_err(|e| file_error(&e, &file));
        Some((file, r))
    }

    fn feed_raw_guarded(&mut self, raw: &RawPacket) {
        let r = panic::catch_unwind(AssertUnwindSafe(|| self.feed_raw(raw)));
        if r.is_err() {
            self.weird.add("internal_error_packet");
        }
    }

    /// `Engine._feed` after the process-info note.
    pub fn feed_raw(&mut self, raw: &RawPacket) {
        let pkt = match self.shard {
            None => self.decoder.decode(raw),
            Some((k, n)) => self.shard_decode(raw, k, n),
        };
        let pkt = match pkt {
            Some(p) => p,
            None => {
                if !self.decoder.arp.is_empty() {
                    let mut out = Out(&mut self.out);
                    for frame in self.decoder.arp.drain(..) {
                        out.arp(&frame);
                    }
                }
                return;
            }
        };
        self.dispatch(pkt);
    }

    /// A decoded packet: DNS and NDP to Python, then the flow table.
    pub fn dispatch(&mut self, pkt: Packet) {
        let mut out = Out(&mut self.out);
        if pkt.proto == UDP && (is_dns_port(pkt.dport) || is_dns_port(pkt.sport)) && !pkt.payload.is_empty() {
            out.dns(&pkt);
        } else if pkt.proto == ICMP6 {
            if let Some(icmp) = &pkt.icmp {
                if (133..=137).contains(&icmp.type_) {
                    out.ndp(&pkt);
                }
            }
        }
        self.table.add(pkt, &mut self.records);
        self.emit_records();
    }

    fn emit_records(&mut self) {
        if self.records.is_empty() {
            return;
        }
        let mut out = Out(&mut self.out);
        for rec in self.records.drain(..) {
            out.flow(&rec);
        }
    }

    /// `Engine._shard_decode`: only this shard's packets are decoded; the others move the clock.
    fn shard_decode(&mut self, raw: &RawPacket, k: u32, n: u32) -> Option<Packet> {
        let owner = raw_shard(raw, n);
        if let Some(o) = owner {
            if o != k {
                self.table.advance(raw.ts, &mut self.records);
                self.emit_records();
                return None;
            }
        }
        self.scratch.clear();
        let keep_arp = self.counts_frames;
        let pkt = self.decoder.decode_counting(raw, &mut self.scratch, keep_arp);
        let owner = match owner {
            Some(o) => o,
            None => match &pkt {
                Some(p) => shard_of(p, n),
                None => 0,
            },
        };
        if !self.scratch.is_empty() {
            if owner == k {
                self.decoder.weird.update(&self.scratch);
            }
            self.scratch.clear();
        }
        if owner != k {
            if let Some(p) = &pkt {
                self.table.advance(p.ts, &mut self.records);
                self.emit_records();
            }
            return None;
        }
        pkt
    }

    /// `Engine.advance`: the clock moves to `ts` with no packet (a live capture's stop).
    pub fn advance(&mut self, ts: f64) {
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            self.table.advance(ts, &mut self.records);
        }));
        if r.is_err() {
            self.weird.add("internal_error_packet");
        }
        self.emit_records();
    }

    /// `Engine.finish`'s part: fragments left are counted, every flow still open ends.
    pub fn finish(&mut self) {
        if self.counts_frames && panic::catch_unwind(AssertUnwindSafe(|| self.decoder.finish())).is_err() {
            self.weird.add("internal_error_decoder_finish");
        }
        if panic::catch_unwind(AssertUnwindSafe(|| self.table.flush(&mut self.records))).is_err() {
            self.weird.add("internal_error_packet");
        }
        self.emit_records();
    }

    /// decoder + table + internal weirds, as `Engine.finish` sums them.
    pub fn weirds(&self) -> Weirds {
        let mut w = self.weird.clone();
        w.update(&self.decoder.weird);
        w.update(&self.table.weird);
        w
    }
}

/// One frame of a `feed_frames` batch, every length checked where it is read.
struct FrameView<'a> {
    ts: f64,
    linktype: u32,
    wirelen: u32,
    iface: u32,
    data: &'a [u8],
    proc_: Option<ProcessInfo>,
    /// Bytes of the batch this frame took.
    len: usize,
}

impl<'a> FrameView<'a> {
    const HEAD: usize = 24;

    fn parse(buf: &'a [u8]) -> Option<FrameView<'a>> {
        let head = buf.get(..Self::HEAD)?;
        let u32_at = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&head[..8]);
        let caplen = u32_at(20) as usize;
        let data = buf.get(Self::HEAD..Self::HEAD.checked_add(caplen)?)?;
        let mut pos = Self::HEAD + caplen;
        let flag = *buf.get(pos)?;
        pos += 1;
        let proc_ = if flag == 1 {
            let mut r = Reader { buf, pos };
            let pid = r.opt_u32()?;
            let name = r.opt_str()?;
            let epid = r.opt_u32()?;
            let ename = r.opt_str()?;
            pos = r.pos;
            Some(ProcessInfo { pid, name, epid, ename })
        } else {
            None
        };
        Some(FrameView {
            ts: f64::from_le_bytes(ts),
            linktype: u32_at(8),
            wirelen: u32_at(12),
            iface: u32_at(16),
            data,
            proc_,
            len: pos,
        })
    }
}

/// The optional values of a packed frame's process information (events.rs encodings).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let b = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }
    /// `Option<Option<u32>>`: the outer None is a cut batch; an i64 of -1 is no value.
    fn opt_u32(&mut self) -> Option<Option<u32>> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        let v = i64::from_le_bytes(a);
        Some(if v < 0 { None } else { Some(v as u32) })
    }
    /// A u32 length (u32::MAX: no value) and UTF-8 bytes.
    fn opt_str(&mut self) -> Option<Option<String>> {
        let b = self.take(4)?;
        let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if n == u32::MAX {
            return Some(None);
        }
        let s = self.take(n as usize)?;
        Some(Some(String::from_utf8_lossy(s).into_owned()))
    }
}
