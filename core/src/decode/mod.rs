//! Link, IP and transport decode of one frame into a `Packet`, and IP fragment reassembly
//! (Python reference: `analyzer/capture/decode.py`, `analyzer/capture/ipfrag.py`).
