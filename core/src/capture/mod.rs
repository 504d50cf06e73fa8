//! The record walk: classic pcap and pcapng from bytes fed in chunks
//! (Python reference: `analyzer/capture/reader.py`, `analyzer/capture/pcapng.py`).
