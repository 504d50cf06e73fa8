//! The record walk on small static captures (every branch and weird) and on the project's
//! fixture captures, each fed whole, byte by byte and in odd chunks: the result must not
//! depend on where the chunks end. The expected values are the Python reader's.

use super::*;
use crate::packet::ProcessInfo;

/// What the walk handed out, owned: (ts bits, linktype, data, wirelen, iface, proc).
type Record = (u64, u32, Vec<u8>, u32, u32, Option<ProcessInfo>);

fn walk_chunks(input: &[u8], chunk: usize) -> (Result<(), CaptureError>, Vec<Record>, Summary) {
    let mut walker = Walker::new();
    let mut records = Vec::new();
    let mut result = Ok(());
    for part in input.chunks(chunk.max(1)) {
        result = walker.feed(part, &mut |raw| {
            records.push((raw.ts.to_bits(), raw.linktype, raw.data.to_vec(), raw.wirelen, raw.iface, raw.proc_))
        });
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = walker.finish();
    }
    (result, records, walker.summary())
}

/// The walk of `input`, checked to be the same whatever the chunk sizes.
///
/// With `WALK_TEST_DUMP=DIR` in the environment every input is also written to DIR, for
/// `core/tools/walk_ref.py --diff DIR` to check these tests' captures against Python.
fn walk(input: &[u8]) -> (Result<(), CaptureError>, Vec<Record>, Summary) {
    if let Some(dir) = std::env::var_os("WALK_TEST_DUMP") {
        let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        let _ = std::fs::write(std::path::Path::new(&dir).join(format!("{:016x}.pcap", hash)), input);
    }
    let whole = walk_chunks(input, input.len());
    for chunk in [1, 3, 7, 16, 17, 28, 4093] {
        let other = walk_chunks(input, chunk);
        assert_eq!(whole.0, other.0, "error, chunks of {}", chunk);
        assert_eq!(whole.1, other.1, "records, chunks of {}", chunk);
        let (mut a, mut b) = (whole.2.clone(), other.2.clone());
        // Bytes fed differ when a walk stopped early (the rest of the input is not fed).
        a.bytes_read = 0;
        b.bytes_read = 0;
        assert_eq!(a, b, "summary, chunks of {}", chunk);
    }
    whole
}

fn weirds(s: &Summary) -> Vec<(String, u64)> {
    s.weirds.0.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

fn w(name: &str, n: u64) -> (String, u64) {
    (name.to_string(), n)
}

// -- classic pcap -------------------------------------------------------------------------

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

/// A little-endian microsecond pcap header.
fn pcap_header(version: (u16, u16), snaplen: u32, linktype: u32) -> Vec<u8> {
    let mut h = vec![0xd4, 0xc3, 0xb2, 0xa1];
    h.extend_from_slice(&version.0.to_le_bytes());
    h.extend_from_slice(&version.1.to_le_bytes());
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&le32(snaplen));
    h.extend_from_slice(&le32(linktype));
    h
}

fn pcap_record(sec: u32, frac: u32, caplen: u32, wirelen: u32, data: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    for v in [sec, frac, caplen, wirelen] {
        r.extend_from_slice(&le32(v));
    }
    r.extend_from_slice(data);
    r
}

#[test]
fn pcap_records_and_times() {
    let mut file = pcap_header((2, 4), 65535, 1);
    file.extend(pcap_record(1_600_000_000, 123_456, 4, 60, b"abcd"));
    file.extend(pcap_record(1_600_000_001, 999_999, 0, 0, b""));
    let (result, records, s) = walk(&file);
    assert_eq!(result, Ok(()));
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].0, (1_600_000_000f64 + 123_456f64 * 1e-6).to_bits());
    assert_eq!((records[0].1, &records[0].2[..], records[0].3, records[0].4), (1, &b"abcd"[..], 60, 0));
    assert_eq!(records[1].2.len(), 0);
    assert_eq!((s.format, s.file_type, s.packets, s.bytes, s.snaplen), ("pcap", "pcap", 2, 4, 65535));
    assert_eq!(s.link_types, vec!["ether".to_string()]);
    assert!(!s.truncated);
    assert!(s.weirds.is_empty());
    assert_eq!(s.bytes_read, file.len() as u64);
}

#[test]
fn pcap_big_endian_nanoseconds_and_fcs_bits() {
    let mut file = vec![0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0];
    file.extend_from_slice(&0u32.to_be_bytes());
    file.extend_from_slice(&(0x1000_0000u32 | 113).to_be_bytes());
    for v in [7u32, 999_999_999, 2, 2] {
        file.extend_from_slice(&v.to_be_bytes());
    }
    file.extend_from_slice(b"xy");
    let (_, records, s) = walk(&file);
    assert_eq!(records[0].0, (7.0f64 + 999_999_999.0 * 1e-9).to_bits());
    assert_eq!(records[0].1, 113);
    assert_eq!((s.file_type, s.snaplen), ("nsecpcap", 0));
    assert_eq!(s.link_types, vec!["linux-sll".to_string()]);
}

#[test]
fn pcap_old_versions_swap_lengths() {
    // 2.2: always swapped (the first length field is the frame's, the second the data's).
    let mut file = pcap_header((2, 2), 0, 1);
    file.extend(pcap_record(1, 0, 100, 3, b"abc"));
    let (_, records, s) = walk(&file);
    assert_eq!((records[0].2.len(), records[0].3), (3, 100));
    assert_eq!(weirds(&s), vec![w("pcap_unusual_version", 1)]);
    // 2.3: swapped only when caplen > wirelen.
    let mut file = pcap_header((2, 3), 0, 1);
    file.extend(pcap_record(1, 0, 9, 2, b"ab"));
    file.extend(pcap_record(1, 0, 2, 9, b"ab"));
    let (_, records, _) = walk(&file);
    assert_eq!((records[0].2.len(), records[0].3), (2, 9));
    assert_eq!((records[1].2.len(), records[1].3), (2, 9));
}

#[test]
fn pcap_length_weirds_and_empty_records() {
    let mut file = pcap_header((2, 4), 2, 1);
    file.extend(pcap_record(1, 0, 3, 1, b"abc")); // over the snaplen and the wire length
    file.extend(vec![0u8; 48]); // three records of nothing
    file.extend(pcap_record(2, 0, 1, 1, b"z"));
    let (_, records, s) = walk(&file);
    assert_eq!(records.len(), 2);
    assert_eq!(
        weirds(&s),
        vec![w("pcap_caplen_exceeds_snaplen", 1), w("pcap_caplen_exceeds_wirelen", 1), w("pcap_empty_record", 3)]
    );
    assert_eq!((s.packets, s.bytes), (2, 4));
}

#[test]
fn pcap_truncated_inside_a_header_or_data() {
    let mut file = pcap_header((2, 4), 0, 1);
    file.extend(pcap_record(1, 0, 4, 4, b"abcd"));
    file.extend(&[1, 2, 3]);
    let (result, records, s) = walk(&file);
    assert_eq!((result, records.len(), s.truncated), (Ok(()), 1, true));
    assert_eq!(weirds(&s), vec![w("pcap_truncated_record_header", 1)]);

    // The cut record's caplen field, as the file has it, above the limit: counted too.
    let mut file = pcap_header((2, 4), 0, 1);
    file.extend(pcap_record(1, 0, 300_000, 300_000, b"abcd"));
    let (_, records, s) = walk(&file);
    assert_eq!((records.len(), s.truncated), (0, true));
    assert_eq!(weirds(&s), vec![w("pcap_caplen_exceeds_snaplen", 1), w("pcap_truncated_record", 1)]);
}

#[test]
fn pcap_bogus_caplen_stops() {
    let mut file = pcap_header((2, 4), 0, 1);
    file.extend(pcap_record(1, 0, (64 << 20) + 1, 10, b""));
    file.extend(pcap_record(1, 0, 1, 1, b"a"));
    let (_, records, s) = walk(&file);
    assert_eq!((records.len(), s.truncated), (0, true));
    assert_eq!(weirds(&s), vec![w("pcap_bogus_caplen", 1), w("pcap_caplen_exceeds_snaplen", 1)]);
}

#[test]
fn sink_may_end_the_pass() {
    let mut file = pcap_header((2, 4), 0, 1);
    for i in 0..5 {
        file.extend(pcap_record(i, 0, 2, 2, b"ab"));
    }
    file.extend(&[9, 9]); // would be a truncated header
    let mut walker = Walker::new();
    let mut seen = 0;
    walker
        .feed_until(&file, &mut |_| {
            seen += 1;
            seen < 2
        })
        .unwrap();
    assert!(walker.is_done());
    walker.finish().unwrap();
    let s = walker.summary();
    assert_eq!((seen, s.packets, s.bytes, s.truncated), (2, 2, 4, false));
    assert!(s.weirds.is_empty());
}

// -- errors: not a capture ---------------------------------------------------------------------

#[test]
fn not_a_capture() {
    let (result, _, _) = walk(b"");
    assert_eq!(result, Err(CaptureError::Empty));
    assert_eq!(
        CaptureError::Empty.message("x.pcap", false, ""),
        "x.pcap: empty file, not a capture"
    );
    let (result, _, _) = walk(b"this is text");
    let error = result.unwrap_err();
    assert_eq!(error.message("a", false, ""), "a: not a pcap or pcapng capture (file starts with 74686973)");
    assert_eq!(error.message("a", true, ""), "a: not a pcap or pcapng capture (gzip data starts with 74686973)");
    let (result, _, _) = walk(b"\x01\x02");
    assert_eq!(result, Err(CaptureError::NotACapture { head: vec![1, 2] }));

    let (result, _, _) = walk(&pcap_header((2, 4), 0, 1)[..20]);
    let error = result.unwrap_err();
    assert_eq!(error, CaptureError::PcapHeaderCutShort { got: 20 });
    assert_eq!(
        error.message("f", true, " (gzip stream cut short or corrupt)"),
        "f: pcap file header cut short (20 of 24 bytes) (gzip stream cut short or corrupt)"
    );
    // A header alone is a capture of no packet.
    let (result, records, s) = walk(&pcap_header((2, 4), 0, 1));
    assert_eq!((result, records.len(), s.truncated), (Ok(()), 0, false));
}

#[test]
fn pcapng_first_block_errors() {
    let (result, _, _) = walk(&[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a]);
    assert_eq!(result, Err(CaptureError::PcapngHeaderCutShort { got: 12 }));
    let head = |bom: [u8; 4], len: u8, major: u8| {
        let mut h = vec![0x0a, 0x0d, 0x0d, 0x0a, len, 0, 0, 0];
        h.extend_from_slice(&bom);
        h.extend_from_slice(&[major, 0, 0, 0]);
        h
    };
    let le = [0x4d, 0x3c, 0x2b, 0x1a];
    let error = walk(&head([1, 2, 3, 4], 28, 1)).0.unwrap_err();
    assert_eq!(error.message("n", false, ""), "n: pcapng section header has a bad byte-order magic (01020304)");
    let error = walk(&head(le, 26, 1)).0.unwrap_err();
    assert_eq!(error.message("n", false, ""), "n: pcapng section header has a bad length (26)");
    let error = walk(&head(le, 28, 2)).0.unwrap_err();
    assert_eq!(error.message("n", false, ""), "n: pcapng version 2 is not supported");
    // A usable head of a block the file then cuts: a truncated capture, no error.
    let (result, _, s) = walk(&head(le, 28, 1));
    assert_eq!((result, s.truncated), (Ok(()), true));
    assert_eq!(weirds(&s), vec![w("pcapng_truncated_block", 1)]);
}

// -- pcapng --------------------------------------------------------------------------------

/// pcapng blocks in either byte order, as tests/fixtures/crafted/make_crafted.py writes them.
struct Ng {
    big: bool,
}

impl Ng {
    fn u16(&self, v: u16) -> [u8; 2] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn block(&self, btype: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let len = body.len() as u32 + 12;
        let mut b = self.u32(btype).to_vec();
        b.extend_from_slice(&self.u32(len));
        b.extend(body);
        b.extend_from_slice(&self.u32(len));
        b
    }
    fn opt(&self, code: u16, value: &[u8]) -> Vec<u8> {
        let mut o = self.u16(code).to_vec();
        o.extend_from_slice(&self.u16(value.len() as u16));
        o.extend_from_slice(value);
        while o.len() % 4 != 0 {
            o.push(0);
        }
        o
    }
    fn shb(&self) -> Vec<u8> {
        let mut body = self.u32(0x1A2B_3C4D).to_vec();
        body.extend_from_slice(&self.u16(1));
        body.extend_from_slice(&self.u16(0));
        body.extend_from_slice(&[0xff; 8]);
        self.block(0x0A0D_0D0A, &body)
    }
    fn idb(&self, linktype: u16, snaplen: u32, options: &[u8]) -> Vec<u8> {
        let mut body = self.u16(linktype).to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&self.u32(snaplen));
        body.extend_from_slice(options);
        self.block(1, &body)
    }
    fn epb(&self, iface: u32, ticks: u64, data: &[u8], wirelen: u32, options: &[u8]) -> Vec<u8> {
        let mut body = self.u32(iface).to_vec();
        body.extend_from_slice(&self.u32((ticks >> 32) as u32));
        body.extend_from_slice(&self.u32(ticks as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(&self.u32(wirelen));
        body.extend_from_slice(data);
        while body.len() % 4 != 0 {
            body.push(0);
        }
        body.extend_from_slice(options);
        self.block(6, &body)
    }
    fn pib(&self, pid: u32, name: &[u8]) -> Vec<u8> {
        let mut body = self.u32(pid).to_vec();
        body.extend(self.opt(2, name));
        self.block(0x8000_0001, &body)
    }
    fn spb(&self, wirelen: u32, data: &[u8]) -> Vec<u8> {
        let mut body = self.u32(wirelen).to_vec();
        body.extend_from_slice(data);
        self.block(3, &body)
    }
}

#[test]
fn pcapng_sections_interfaces_processes() {
    let le = Ng { big: false };
    let be = Ng { big: true };
    let mut file = le.shb();
    // Interface 0: nanoseconds, one second of offset, a name.
    let mut opts = le.opt(9, &[9]);
    opts.extend(le.opt(14, &1i64.to_le_bytes()));
    opts.extend(le.opt(2, b"en0\0"));
    opts.extend(le.opt(0, b""));
    file.extend(le.idb(1, 0, &opts));
    file.extend(le.pib(123, b"apsd\0"));
    file.extend(le.pib(456, b"software\xffupdated"));
    let mut popts = le.opt(0x8001, &le.u32(1));
    popts.extend(le.opt(0x8003, &le.u32(0)));
    popts.extend(le.opt(0x8001, &le.u32(7))); // no such process
    file.extend(le.epb(0, 1_600_000_000_123_456_789, b"hello", 5, &popts));
    file.extend(le.block(4, b"name resolution")); // ignored
    file.extend(le.block(0x1234, b"")); // unknown
    // A second section, big-endian: interfaces and processes start again, ordinals go on.
    file.extend(be.shb());
    file.extend(be.idb(101, 3, &be.opt(9, &[0x80 | 10]))); // 1/1024 s
    file.extend(be.spb(10, b"0123456789ab"));
    file.extend(be.epb(0, 2048, b"abc", 2, &be.opt(0x8001, &be.u32(0))));
    file.extend(be.epb(1, 0, b"", 0, b""));
    file.extend(be.spb(10, b"0123456789ab")); // the last packet's time
    let (result, records, s) = walk(&file);
    assert_eq!(result, Ok(()));
    assert_eq!(records.len(), 4);
    let ticks = 1_600_000_000_123_456_789u64;
    let ts0 = (ticks >> 32) as u32 as f64 * (4_294_967_296.0 / 1e9) + (ticks as u32) as f64 * (1.0 / 1e9) + 1.0;
    assert_eq!(records[0].0, ts0.to_bits());
    assert_eq!((records[0].1, &records[0].2[..], records[0].4), (1, &b"hello"[..], 0));
    assert_eq!(
        records[0].5,
        Some(ProcessInfo {
            pid: Some(456),
            name: Some("software\u{fffd}updated".to_string()),
            epid: Some(123),
            ename: Some("apsd".to_string())
        })
    );
    // SPB before any packet of the section: the time of the first section's packet; the
    // snaplen of 3 cuts it.
    assert_eq!((records[1].0, &records[1].2[..], records[1].3, records[1].4), (ts0.to_bits(), &b"012"[..], 10, 1));
    assert_eq!((records[2].0, records[2].1, records[2].4, &records[2].5), (2.0f64.to_bits(), 101, 1, &None));
    assert_eq!(records[3].0, 2.0f64.to_bits());
    assert_eq!(s.link_types, vec!["ether".to_string(), "rawip".to_string()]);
    assert_eq!(s.interfaces, vec![(1, Some("en0".to_string())), (101, None)]);
    assert_eq!((s.format, s.file_type, s.packets, s.bytes, s.truncated), ("pcapng", "pcapng", 4, 14, false));
    assert_eq!(
        weirds(&s),
        vec![
            w("pcapng_bad_interface_id", 1),
            w("pcapng_bad_process_index", 1),
            w("pcapng_caplen_exceeds_wirelen", 1),
            w("pcapng_unknown_block", 1)
        ]
    );
}

#[test]
fn pcapng_skipped_packet_blocks() {
    let ng = Ng { big: false };
    let mut file = ng.shb();
    file.extend(ng.spb(4, b"abcd")); // before any interface
    file.extend(ng.idb(1, 0, &ng.opt(9, &[20]))); // 10**20: unusable, microseconds kept
    file.extend(ng.epb(0, 1_000_000, b"ok", 2, b""));
    let mut bad = ng.epb(0, 0, b"abcd", 4, b"");
    bad[20..24].copy_from_slice(&ng.u32(9)); // caplen past the block
    file.extend(bad);
    file.extend(ng.block(6, &[0; 12])); // too short for an EPB
    let mut idb = ng.opt(14, &(-10i64).to_le_bytes());
    idb.extend(ng.opt(9, &[0]));
    file.extend(ng.idb(1, 0, &idb)); // whole seconds, 10 s before 1970
    file.extend(ng.epb(1, 5, b"old", 3, b"")); // 5 s - 10 s: out of range
    file.extend(ng.epb(1, 20, b"new", 3, &ng.opt(0x8001, &[0, 0, 0]))); // no process table: options unread
    let (result, records, s) = walk(&file);
    assert_eq!(result, Ok(()));
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].0, 1.0f64.to_bits());
    assert_eq!(records[1].0, 10.0f64.to_bits());
    assert_eq!(
        weirds(&s),
        vec![
            w("pcapng_bad_block_length", 1),
            w("pcapng_bad_caplen", 1),
            w("pcapng_bad_tsresol", 1),
            w("pcapng_spb_without_interface", 1),
            w("pcapng_time_out_of_range", 1)
        ]
    );
}

#[test]
fn pcapng_damage_that_stops() {
    let ng = Ng { big: false };
    let base = {
        let mut f = ng.shb();
        f.extend(ng.idb(1, 0, b""));
        f
    };
    // Lengths that disagree.
    let mut file = base.clone();
    let mut block = ng.epb(0, 0, b"ab", 2, b"");
    let n = block.len();
    block[n - 4] ^= 4;
    file.extend(block);
    file.extend(ng.epb(0, 0, b"ab", 2, b""));
    let (_, records, s) = walk(&file);
    assert_eq!((records.len(), s.truncated), (0, true));
    assert_eq!(weirds(&s), vec![w("pcapng_block_length_mismatch", 1)]);
    // A length no block has.
    let mut file = base.clone();
    file.extend_from_slice(&ng.u32(6));
    file.extend_from_slice(&ng.u32(30));
    file.extend_from_slice(&[0; 24]);
    let (_, _, s) = walk(&file);
    assert_eq!(weirds(&s), vec![w("pcapng_bad_block_length", 1)]);
    // A section of an unknown byte order, or of version 2.
    let mut file = base.clone();
    let mut shb = ng.shb();
    shb[8..12].copy_from_slice(&[9, 9, 9, 9]);
    file.extend(shb);
    let (_, _, s) = walk(&file);
    assert_eq!((weirds(&s), s.truncated), (vec![w("pcapng_bad_byte_order_magic", 1)], true));
    let mut file = base.clone();
    let mut shb = ng.shb();
    shb[12] = 2;
    file.extend(shb);
    let (_, _, s) = walk(&file);
    assert_eq!(weirds(&s), vec![w("pcapng_unsupported_version", 1)]);
    // An option running past its block: the rest ignored, the interface kept.
    let mut file = ng.shb();
    let mut opts = ng.opt(2, b"eth0");
    opts.extend_from_slice(&ng.u16(9));
    opts.extend_from_slice(&ng.u16(40));
    file.extend(ng.idb(1, 0, &opts));
    let (_, _, s) = walk(&file);
    assert_eq!(s.interfaces, vec![(1, Some("eth0".to_string()))]);
    assert_eq!(weirds(&s), vec![w("pcapng_bad_option_length", 1)]);
}

#[test]
fn tsresol_values() {
    assert_eq!(pcapng_tsresol(6), Some(1_000_000));
    assert_eq!(pcapng_tsresol(19), Some(10_000_000_000_000_000_000));
    assert_eq!(pcapng_tsresol(20), None);
    assert_eq!(pcapng_tsresol(0x80 | 63), Some(1 << 63));
    assert_eq!(pcapng_tsresol(0x80 | 64), None);
}

fn pcapng_tsresol(v: u8) -> Option<u64> {
    // Through a one-interface file: the time of a packet at tick 2**32 + 1 tells the scale.
    let ng = Ng { big: false };
    let mut file = ng.shb();
    file.extend(ng.idb(1, 0, &ng.opt(9, &[v])));
    file.extend(ng.epb(0, 1, b"", 0, b""));
    let (_, records, s) = walk(&file);
    if s.weirds.get("pcapng_bad_tsresol") == 1 {
        return None;
    }
    let ts = f64::from_bits(records[0].0);
    Some((1.0 / ts).round() as u64)
}

// -- the project's captures ----------------------------------------------------------------------

fn fixture(path: &str) -> Option<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    std::fs::read(dir.join(path)).ok()
}

#[test]
fn fixture_darwin_process() {
    let data = match fixture("crafted/darwin_process.pcapng") {
        Some(data) => data,
        None => return,
    };
    let (result, records, s) = walk(&data);
    assert_eq!(result, Ok(()));
    // The Python reader's values (core/tools/walk_ref.py).
    assert_eq!((s.packets, s.bytes, s.truncated), (4, 237, false));
    assert_eq!(weirds(&s), vec![w("pcapng_bad_process_index", 1)]);
    assert_eq!(s.interfaces, vec![(1, Some("en0".to_string()))]);
    assert_eq!(records[0].0, 0x41d954fc41c00000);
    assert_eq!(records[1].0, 0x41d954fc41c001a3);
    assert_eq!(
        records[1].5,
        Some(ProcessInfo {
            pid: Some(456),
            name: Some("softwareupdated".to_string()),
            epid: Some(123),
            ename: Some("apsd".to_string())
        })
    );
}

#[test]
fn fixture_multi_section() {
    let data = match fixture("crafted/multi_section.pcapng") {
        Some(data) => data,
        None => return,
    };
    let (_, records, s) = walk(&data);
    assert_eq!((s.packets, s.bytes), (5, 290));
    assert_eq!(s.link_types, vec!["ether".to_string(), "rawip".to_string(), "linux-sll".to_string()]);
    assert_eq!(weirds(&s), vec![w("pcapng_unknown_block", 1)]);
    let ifaces: Vec<u32> = records.iter().map(|r| r.4).collect();
    assert_eq!(ifaces, vec![0, 1, 2, 2, 2]);
    assert_eq!(records[2].0, 0x41d954fc42200000);
}

#[test]
fn fixture_nsec_big_endian() {
    let data = match fixture("crafted/nsec_be.pcap") {
        Some(data) => data,
        None => return,
    };
    let (_, records, s) = walk(&data);
    assert_eq!((s.file_type, s.packets, s.bytes, s.snaplen), ("nsecpcap", 2, 128, 65535));
    assert_eq!(records[0].0, 0x41d954fc4287e6b7);
    assert_eq!(records[1].0, 0x41d954fc42c00000);
}

/// Every capture of the fixtures walks the same in any chunking, without error and whole.
#[test]
fn fixtures_chunk_invariant() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/corpus");
    let mut stack = vec![dir];
    let mut walked = 0;
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext != "pcap" && ext != "pcapng" {
                continue;
            }
            let data = std::fs::read(&path).unwrap_or_default();
            let (result, _, s) = walk(&data);
            assert_eq!(result, Ok(()), "{}", path.display());
            assert!(s.format == "pcap" || s.format == "pcapng");
            walked += 1;
        }
    }
    assert!(walked == 0 || walked > 10);
}
