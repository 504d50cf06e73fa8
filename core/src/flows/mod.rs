//! The flow table, Zeek's TCP state machine and first-bytes reassembly
//! (Python reference: `analyzer/flows/table.py`, `tcp.py`, `reassembly.py`).
//!
//! - `table`: `FlowTable`, decoded packets in, one `FlowRecord` out per finished flow.
//! - `direction`: who is the client (port and content rules of table.py).
//! - `side`: what one address of a flow sent (table.py `_Side`, `_Rst`).
//! - `timers`: the table's deadline heap with stale entries (table.py `_heap`).
//! - `tcp`, `reassembly`: Zeek's endpoint state machine and the stream prefix.

pub mod direction;
pub mod reassembly;
pub mod side;
pub mod table;
pub mod tcp;
pub mod timers;

pub use table::FlowTable;
