//! apple-net-analyzer's compiled packet core: the per-packet loop of `analyzer/engine.py`
//! (record walk -> decode -> flow table) in Rust, standard library only, behind a C ABI
//! (`ffi`). The Python engine is the reference: every stage here mirrors a Python module
//! named in its doc comment, and `tests/test_native_differential.py` keeps both equal.
//!
//! No `unsafe` outside `ffi`.

pub mod capture;
pub mod config;
pub mod decode;
pub mod flows;
pub mod packet;
pub mod record;
pub mod weird;
pub mod engine;
pub mod events;
pub mod ffi;
