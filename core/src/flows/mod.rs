//! The flow table, Zeek's TCP state machine and first-bytes reassembly
//! (Python reference: `analyzer/flows/table.py`, `tcp.py`, `reassembly.py`).
