//! What a pass over a capture counts: packets, captured bytes, the anomalies ("weirds") the
//! record walk names, the link types and interfaces the file declares, the truncation flag.
//! Mirrors the `CaptureReader` attributes of reader.py that the walk updates (`packets`,
//! `bytes`, `weird`, `link_types`, `interfaces`, `truncated`).

use crate::weird::Weirds;

/// The anomalies of reader.py's `WEIRDS` that the record walk counts. The `gzip_*` ones are
/// not here: gunzipping stays in Python (`_Source`, `CaptureReader._refill`).
///
/// Counted in a fixed array indexed by this enum: no string is touched per packet; the
/// names appear only when a `Weirds` is built at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weird {
    PcapUnusualVersion,
    PcapCaplenExceedsSnaplen,
    PcapCaplenExceedsWirelen,
    PcapBogusCaplen,
    PcapTruncatedRecordHeader,
    PcapTruncatedRecord,
    PcapEmptyRecord,
    PcapngBadBlockLength,
    PcapngBlockLengthMismatch,
    PcapngBadByteOrderMagic,
    PcapngUnsupportedVersion,
    PcapngTruncatedBlock,
    PcapngUnknownBlock,
    PcapngBadInterfaceId,
    PcapngBadCaplen,
    PcapngCaplenExceedsWirelen,
    PcapngSpbWithoutInterface,
    PcapngBadOptionLength,
    PcapngBadTsresol,
    PcapngTimeOutOfRange,
    PcapngBadProcessIndex,
}

/// How many kinds `Weird` has.
pub const WEIRD_KINDS: usize = 21;

impl Weird {
    pub const ALL: [Weird; WEIRD_KINDS] = [
        Weird::PcapUnusualVersion,
        Weird::PcapCaplenExceedsSnaplen,
        Weird::PcapCaplenExceedsWirelen,
        Weird::PcapBogusCaplen,
        Weird::PcapTruncatedRecordHeader,
        Weird::PcapTruncatedRecord,
        Weird::PcapEmptyRecord,
        Weird::PcapngBadBlockLength,
        Weird::PcapngBlockLengthMismatch,
        Weird::PcapngBadByteOrderMagic,
        Weird::PcapngUnsupportedVersion,
        Weird::PcapngTruncatedBlock,
        Weird::PcapngUnknownBlock,
        Weird::PcapngBadInterfaceId,
        Weird::PcapngBadCaplen,
        Weird::PcapngCaplenExceedsWirelen,
        Weird::PcapngSpbWithoutInterface,
        Weird::PcapngBadOptionLength,
        Weird::PcapngBadTsresol,
        Weird::PcapngTimeOutOfRange,
        Weird::PcapngBadProcessIndex,
    ];

    /// The name reader.py's `WEIRDS` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Weird::PcapUnusualVersion => "pcap_unusual_version",
            Weird::PcapCaplenExceedsSnaplen => "pcap_caplen_exceeds_snaplen",
            Weird::PcapCaplenExceedsWirelen => "pcap_caplen_exceeds_wirelen",
            Weird::PcapBogusCaplen => "pcap_bogus_caplen",
            Weird::PcapTruncatedRecordHeader => "pcap_truncated_record_header",
            Weird::PcapTruncatedRecord => "pcap_truncated_record",
            Weird::PcapEmptyRecord => "pcap_empty_record",
            Weird::PcapngBadBlockLength => "pcapng_bad_block_length",
            Weird::PcapngBlockLengthMismatch => "pcapng_block_length_mismatch",
            Weird::PcapngBadByteOrderMagic => "pcapng_bad_byte_order_magic",
            Weird::PcapngUnsupportedVersion => "pcapng_unsupported_version",
            Weird::PcapngTruncatedBlock => "pcapng_truncated_block",
            Weird::PcapngUnknownBlock => "pcapng_unknown_block",
            Weird::PcapngBadInterfaceId => "pcapng_bad_interface_id",
            Weird::PcapngBadCaplen => "pcapng_bad_caplen",
            Weird::PcapngCaplenExceedsWirelen => "pcapng_caplen_exceeds_wirelen",
            Weird::PcapngSpbWithoutInterface => "pcapng_spb_without_interface",
            Weird::PcapngBadOptionLength => "pcapng_bad_option_length",
            Weird::PcapngBadTsresol => "pcapng_bad_tsresol",
            Weird::PcapngTimeOutOfRange => "pcapng_time_out_of_range",
            Weird::PcapngBadProcessIndex => "pcapng_bad_process_index",
        }
    }
}

/// One pcapng interface as `CaptureReader.interfaces` lists it: (linktype, if_name).
pub type InterfaceName = (u32, Option<String>);

/// The counters of one pass (reader.py `CaptureReader` attributes).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Packets handed out.
    pub packets: u64,
    /// Captured bytes of the packets handed out (the sum of their `data` lengths).
    pub bytes: u64,
    /// The file ended inside a record, or damage stopped the walk.
    pub truncated: bool,
    /// Distinct link type names, in the order the file declares them.
    pub link_types: Vec<String>,
    /// pcapng: every interface description, in file order across sections.
    pub interfaces: Vec<InterfaceName>,
    counts: [u64; WEIRD_KINDS],
}

impl Tally {
    #[inline]
    pub fn weird(&mut self, w: Weird) {
        self.counts[w as usize] += 1;
    }

    pub fn weird_n(&mut self, w: Weird, n: u64) {
        self.counts[w as usize] += n;
    }

    pub fn count(&self, w: Weird) -> u64 {
        self.counts[w as usize]
    }

    /// A packet of `caplen` captured bytes handed out.
    #[inline]
    pub fn packet(&mut self, caplen: usize) {
        self.packets += 1;
        self.bytes += caplen as u64;
    }

    /// pcapng.py `_Walker.interface`: the link type name joins `link_types` once.
    pub fn declare_link_type(&mut self, linktype: u32) {
        let name = super::linktype_name(linktype);
        if !self.link_types.contains(&name) {
            self.link_types.push(name);
        }
    }

    /// The weird counts by name (`CaptureReader.weird`), zero counts left out as a Counter does.
    pub fn weirds(&self) -> Weirds {
        let mut out = Weirds::new();
        for w in Weird::ALL.iter() {
            out.add_n(w.name(), self.count(*w));
        }
        out
    }
}
