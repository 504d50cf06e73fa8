//! IPv4 and IPv6 fragment reassembly in a bounded table (Python reference:
//! `analyzer/capture/ipfrag.py` `FragmentTable`).
//!
//! Fragments are keyed by the caller (IPv4: src, dst, protocol, id; IPv6: src, dst, id) and
//! kept until every byte from 0 to the end given by the last fragment (MF clear) has
//! arrived; then the datagram's payload is returned. Limits, each a counted weird:
//! "ip_fragment_timeout", "ip_fragment_table_full", "ip_fragment_too_large",
//! "ip_fragment_too_many". Overlaps: first come, first kept ("ip_fragment_overlap",
//! "ip_fragment_inconsistent").

use std::collections::{BTreeMap, HashMap};

use crate::packet::Addr;
use crate::weird::Weirds;

/// The datagram a fragment belongs to: decode.py's `(4, src, dst, proto, id)` and
/// `(6, src, dst, id)` (IPv6 keys carry proto 0: the version keeps the two kinds apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub version: u8,
    pub src: Addr,
    pub dst: Addr,
    pub proto: u8,
    pub id: u32,
}

/// What the caller needs to rebuild the packet from the first fragment's header
/// (decode.py: IPv4 `(ttl, ip_id, fragf, hl)`, IPv6 `(hlim, next header, unfragmentable, 0)`).
pub type FragMeta = [u32; 4];

/// ipfrag.py `_Datagram`.
#[derive(Debug)]
struct Datagram {
    first_ts: f64,
    buf: Vec<u8>,
    /// Received byte ranges, sorted and merged.
    spans: Vec<(usize, usize)>,
    total: Option<usize>,
    meta: Option<FragMeta>,
    pieces: u64,
}

/// ipfrag.py `FragmentTable`: pending datagrams, oldest first. Time is packet time, passed in.
#[derive(Debug)]
pub struct FragmentTable {
    pub max_datagrams: usize,
    pub max_bytes: usize,
    /// Bytes of the pending datagrams' buffers.
    pub held: usize,
    pub timeout: f64,
    pub max_size: usize,
    pub max_fragments: u64,
    /// The OrderedDict as two maps: key -> insertion number, insertion number -> datagram.
    index: HashMap<FragKey, u64>,
    pending: BTreeMap<u64, (FragKey, Datagram)>,
    next_seq: u64,
}

impl Default for FragmentTable {
    fn default() -> Self {
        FragmentTable::new(4096, 30.0, 65535, 512, 16 << 20)
    }
}

const TIMEOUT: &str = "ip_fragment_timeout";
const TABLE_FULL: &str = "ip_fragment_table_full";

impl FragmentTable {
    pub fn new(max_datagrams: usize, timeout: f64, max_size: usize, max_fragments: u64, max_bytes: usize) -> Self {
        FragmentTable {
            max_datagrams,
            max_bytes,
            held: 0,
            timeout,
            max_size,
            max_fragments,
            index: HashMap::new(),
            pending: BTreeMap::new(),
            next_seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn oldest_seq(&self) -> Option<u64> {
        self.pending.keys().next().copied()
    }

    fn remove(&mut self, seq: u64) -> Option<Datagram> {
        let (key, dgram) = self.pending.remove(&seq)?;
        self.index.remove(&key);
        self.held -= dgram.buf.len();
        Some(dgram)
    }

    /// ipfrag.py `expire`: drop datagrams whose first fragment is older than the timeout.
    pub fn expire(&mut self, now: f64, weird: &mut Weirds) -> u64 {
        let mut dropped = 0;
        while let Some((&seq, (_, dgram))) = self.pending.iter().next() {
            if dgram.first_ts + self.timeout >= now {
                break;
            }
            self.remove(seq);
            dropped += 1;
        }
        weird.add_n(TIMEOUT, dropped);
        dropped
    }

    /// ipfrag.py `flush`: forget every pending datagram (end of capture), counted as timeouts.
    pub fn flush(&mut self, weird: &mut Weirds) -> u64 {
        let dropped = self.pending.len() as u64;
        self.pending.clear();
        self.index.clear();
        self.held = 0;
        weird.add_n(TIMEOUT, dropped);
        dropped
    }

    /// ipfrag.py `add`: add one fragment; (meta of the offset-0 fragment, payload) once the
    /// datagram is complete.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        key: FragKey,
        offset: usize,
        more: bool,
        data: &[u8],
        ts: f64,
        meta: FragMeta,
        weird: &mut Weirds,
    ) -> Option<(FragMeta, Vec<u8>)> {
        self.expire(ts, weird);
        let seq = match self.index.get(&key) {
            Some(&seq) => seq,
            None => {
                if self.pending.len() >= self.max_datagrams {
                    if let Some(old) = self.oldest_seq() {
                        self.remove(old);
                    }
                    weird.add(TABLE_FULL);
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                let dgram = Datagram { first_ts: ts, buf: Vec::new(), spans: Vec::new(), total: None, meta: None, pieces: 0 };
                self.pending.insert(seq, (key, dgram));
                self.index.insert(key, seq);
                seq
            }
        };
        let end = offset + data.len();
        let (max_size, max_fragments) = (self.max_size, self.max_fragments);
        let dgram = &mut self.pending.get_mut(&seq)?.1;
        dgram.pieces += 1;
        if end > max_size || dgram.pieces > max_fragments {
            self.remove(seq);
            weird.add(if end > max_size { "ip_fragment_too_large" } else { "ip_fragment_too_many" });
            return None;
        }
        if offset == 0 && dgram.meta.is_none() {
            dgram.meta = Some(meta); // first come, first kept, like the bytes
        }
        if !more {
            match dgram.total {
                None => dgram.total = Some(end),
                Some(total) if total != end => weird.add("ip_fragment_inconsistent"),
                Some(_) => {}
            }
        }
        let had = dgram.buf.len();
        store(dgram, offset, end, data, weird);
        let grown = dgram.buf.len();
        self.held += grown - had;
        while self.held > self.max_bytes && self.pending.len() > 1 {
            // The datagram this fragment belongs to stays: the next oldest goes.
            let victim = self.pending.keys().copied().find(|&s| s != seq);
            match victim {
                Some(old) => {
                    self.remove(old);
                }
                None => break,
            }
            weird.add(TABLE_FULL);
        }
        let complete = {
            let dgram = &self.pending.get(&seq)?.1;
            match (dgram.total, dgram.spans.first(), dgram.meta) {
                (Some(total), Some(&(start, stop)), Some(_)) => start == 0 && stop >= total,
                _ => false,
            }
        };
        if !complete {
            return None;
        }
        let dgram = self.remove(seq)?;
        let total = dgram.total.unwrap_or(0);
        let mut buf = dgram.buf;
        buf.truncate(total);
        dgram.meta.map(|m| (m, buf))
    }
}

/// ipfrag.py `_store`: copy the bytes of [offset, end) not received yet; merge the spans.
fn store(dgram: &mut Datagram, offset: usize, end: usize, data: &[u8], weird: &mut Weirds) {
    let buf = &mut dgram.buf;
    if buf.len() < end {
        buf.resize(end, 0);
    }
    let mut cursor = offset;
    let mut overlap = false;
    let mut inconsistent = false;
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(dgram.spans.len() + 1);
    let (mut new_start, mut new_end) = (offset, end);
    for &(start, stop) in &dgram.spans {
        if stop < offset || start > end {
            merged.push((start, stop));
            continue;
        }
        // This span touches or overlaps the new fragment.
        let lo = start.max(offset);
        let hi = stop.min(end);
        if lo < hi {
            overlap = true;
            if buf[lo..hi] != data[lo - offset..hi - offset] {
                inconsistent = true;
            }
            if cursor < lo {
                buf[cursor..lo].copy_from_slice(&data[cursor - offset..lo - offset]);
            }
            cursor = cursor.max(hi);
        }
        new_start = new_start.min(start);
        new_end = new_end.max(stop);
    }
    if cursor < end {
        // Spans are sorted, so no received byte lies in [cursor, end) any more.
        buf[cursor..end].copy_from_slice(&data[cursor - offset..]);
    }
    merged.push((new_start, new_end));
    merged.sort_unstable();
    dgram.spans = merged;
    if overlap {
        weird.add("ip_fragment_overlap");
    }
    if inconsistent {
        weird.add("ip_fragment_inconsistent");
    }
}
