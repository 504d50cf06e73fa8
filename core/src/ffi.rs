//! The C ABI: the only place with `unsafe`. Python (`analyzer/native/__init__.py`, ctypes)
//! makes one `Core` per engine, hands it file bytes in chunks, and after every call copies
//! the event buffer out (`anc_events`) before the next call reuses it.
//!
//! Every entry point checks its pointers, and catches a panic so that it never unwinds into
//! C (a panic is counted as a weird by the engine, or reported as an error here).

// Each unsafe operation keeps its own `unsafe` block with its SAFETY reason, inside the unsafe
// entry points too (the `unsafe_op_in_unsafe_fn` style newer Rust asks for); rustc 1.63 calls
// those blocks unnecessary.
#![allow(unused_unsafe)]

use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::slice;

use crate::config::FlowConfig;
use crate::engine::Core;
use crate::events::Out;

/// Bumped whenever a signature or the event format changes: Python refuses another version.
pub const ABI_VERSION: u32 = 1;

/// A core and the buffers Python reads after each call.
pub struct Handle {
    core: Core,
    /// A file's summary after `anc_end_file`, the engine's weirds after `anc_finish`.
    info: Vec<u8>,
    /// The message of the last error (`anc_feed`/`anc_end_file` returned non-zero).
    error: Vec<u8>,
}

fn guarded<F: FnOnce() -> i32>(f: F) -> i32 {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(-2)
}

#[no_mangle]
pub extern "C" fn anc_abi_version() -> u32 {
    ABI_VERSION
}

/// A new core; null on a null config. `shard_n` <= 1: no sharding.
/// # Safety
/// `config` is null or points to a live `FlowConfig`.
#[no_mangle]
pub unsafe extern "C" fn anc_new(config: *const FlowConfig, shard_k: u32, shard_n: u32) -> *mut Handle {
    if config.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: Python passes a pointer to a live FlowConfig (ctypes Structure of the same layout).
    let config = unsafe { *config };
    let shard = if shard_n > 1 { Some((shard_k, shard_n)) } else { None };
    match panic::catch_unwind(|| Core::new(config, shard)) {
        Ok(core) => Box::into_raw(Box::new(Handle { core, info: Vec::new(), error: Vec::new() })),
        Err(_) => ptr::null_mut(),
    }
}

/// # Safety
/// `h` is null or came from `anc_new` and is freed once.
#[no_mangle]
pub unsafe extern "C" fn anc_free(h: *mut Handle) {
    if !h.is_null() {
        // SAFETY: `h` came from anc_new and Python frees it once.
        drop(unsafe { Box::from_raw(h) });
    }
}

/// The `len` bytes at `ptr` (none for `len` 0); None for a null pointer with a length.
/// # Safety
/// A non-null `ptr` points to `len` readable bytes that outlive the returned slice (Python's
/// buffer for the duration of the call).
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    if ptr.is_null() {
        return None;
    }
    // SAFETY: see the function's contract.
    Some(unsafe { slice::from_raw_parts(ptr, len) })
}

fn handle<'a>(h: *mut Handle) -> Option<&'a mut Handle> {
    // SAFETY: a non-null `h` came from anc_new and is not used by two threads at once
    // (each Python engine owns its handle).
    unsafe { h.as_mut() }
}

/// A new file: `name` (UTF-8, `name_len` bytes) names it in error messages; `compressed`: its
/// bytes come out of gzip.
/// # Safety
/// `h` is null or from `anc_new`; `name` points to `name_len` readable bytes (or is null with 0).
#[no_mangle]
pub unsafe extern "C" fn anc_begin_file(h: *mut Handle, name: *const u8, name_len: usize, compressed: i32) -> i32 {
    let h = match handle(h) {
        Some(h) => h,
        None => return -1,
    };
    let name = match unsafe { bytes(name, name_len) } {
        Some(b) => b,
        None => return -1,
    };
    guarded(|| {
        h.core.out.clear();
        h.core.begin_file(String::from_utf8_lossy(name).into_owned(), compressed != 0);
        0
    })
}

/// Feed `len` bytes of the current file. 0: fine; 1: the file is not a capture from here on
/// (message in `anc_error`); 3: reading stopped at the memory limit (`anc_set_memory_limit`);
/// negative: a bug (counted by Python as an internal error).
/// # Safety
/// `h` is null or from `anc_new`; `data` points to `len` readable bytes (or is null with 0).
#[no_mangle]
pub unsafe extern "C" fn anc_feed(h: *mut Handle, data: *const u8, len: usize) -> i32 {
    let h = match handle(h) {
        Some(h) => h,
        None => return -1,
    };
    let chunk = match unsafe { bytes(data, len) } {
        Some(b) => b,
        None => return -1,
    };
    guarded(|| {
        h.core.out.clear();
        match h.core.feed_bytes(chunk) {
            Ok(()) if h.core.stopped => 3,
            Ok(()) => 0,
            Err(message) => {
                h.error = message.into_bytes();
                1
            }
        }
    })
}

/// Frames handed over one batch at a time (a live capture): see `Core::feed_frames` for the packing.
/// # Safety
/// `h` is null or from `anc_new`; `data` points to `len` readable bytes (or is null with 0).
#[no_mangle]
pub unsafe extern "C" fn anc_feed_frames(h: *mut Handle, data: *const u8, len: usize) -> i32 {
    let h = match handle(h) {
        Some(h) => h,
        None => return -1,
    };
    let buf = match unsafe { bytes(data, len) } {
        Some(b) => b,
        None => return -1,
    };
    guarded(|| {
        h.core.out.clear();
        h.core.feed_frames(buf);
        0
    })
}

/// 1 when the current file's walk has ended (damage past which no record can be found, or
/// the memory limit): Python reads no more of the file, as its own reader would not.
#[no_mangle]
pub extern "C" fn anc_walk_done(h: *mut Handle) -> i32 {
    match handle(h) {
        Some(h) => match &h.core.file {
            Some(f) => (f.walker.is_done() || h.core.stopped) as i32,
            None => 1,
        },
        None => -1,
    }
}

/// End of the current file: its summary goes to `anc_info`. 1: the input was too short to
/// be a capture (message in `anc_error`).
#[no_mangle]
pub extern "C" fn anc_end_file(h: *mut Handle) -> i32 {
    let h = match handle(h) {
        Some(h) => h,
        None => return -1,
    };
    guarded(|| {
        h.core.out.clear();
        h.info.clear();
        match h.core.end_file() {
            Some((file, result)) => {
                let counts = h.core.counts_frames;
                Out(&mut h.info).file_summary(&file, counts);
                match result {
                    Ok(()) => 0,
                    Err(message) => {
                        h.error = message.into_bytes();
                        1
                    }
                }
            }
            None => 0,
        }
    })
}

/// `--max-memory`: stop reading once the resident memory passes `limit_mb` MiB (looked at every
/// 16383 packets, as the Python engine does); `limit_mb` <= 0: no limit. `page_size`: bytes
/// per page of /proc/self/statm.
#[no_mangle]
pub extern "C" fn anc_set_memory_limit(h: *mut Handle, limit_mb: f64, page_size: u64) -> i32 {
    let h = match handle(h) {
        Some(h) => h,
        None => return -1,
    };
    h.core.memory_limit = if limit_mb > 0.0 { Some((limit_mb, page_size)) } else { None };
    0
}

/// Move the clock to `ts` with no packet (`Engine.advance`).
#[no_mangle]
pub extern "C" fn anc_advance(h: *mut Handle, ts: f64) -> i32 {
    let h = match handle(h) {
        Some(h) => h,
        None => return -1,
    };
    guarded(|| {
        h.core.out.clear();
        h.core.advance(ts);
        0
    })
}

/// End of input: the remaining flows go to the events, the engine's weirds to `anc_info`.
#[no_mangle]
pub extern "C" fn anc_finish(h: *mut Handle) -> i32 {
    let h = match handle(h) {
        Some(h) => h,
        None => return -1,
    };
    guarded(|| {
        h.core.out.clear();
        h.core.finish();
        h.info.clear();
        let w = h.core.weirds();
        Out(&mut h.info).weirds(&w);
        0
    })
}

fn buffer(b: &[u8], len: *mut usize) -> *const u8 {
    if !len.is_null() {
        // SAFETY: Python passes a pointer to a size_t it owns.
        unsafe { *len = b.len() };
    }
    b.as_ptr()
}

/// The events of the last call; valid until the next call on this handle.
#[no_mangle]
pub extern "C" fn anc_events(h: *mut Handle, len: *mut usize) -> *const u8 {
    match handle(h) {
        Some(h) => buffer(&h.core.out, len),
        None => buffer(&[], len),
    }
}

#[no_mangle]
pub extern "C" fn anc_info(h: *mut Handle, len: *mut usize) -> *const u8 {
    match handle(h) {
        Some(h) => buffer(&h.info, len),
        None => buffer(&[], len),
    }
}

#[no_mangle]
pub extern "C" fn anc_error(h: *mut Handle, len: *mut usize) -> *const u8 {
    match handle(h) {
        Some(h) => buffer(&h.error, len),
        None => buffer(&[], len),
    }
}

/// Flows in the table now (`len(FlowTable)`), and packets given to it.
/// # Safety
/// `h` is null or from `anc_new`; `flows` and `packets` are null or point to writable u64s.
#[no_mangle]
pub unsafe extern "C" fn anc_table_counts(h: *mut Handle, flows: *mut u64, packets: *mut u64) -> i32 {
    let h = match handle(h) {
        Some(h) => h,
        None => return -1,
    };
    // SAFETY: Python passes pointers to two u64 it owns (or null).
    unsafe {
        if !flows.is_null() {
            *flows = h.core.table.len() as u64;
        }
        if !packets.is_null() {
            *packets = h.core.table.packets;
        }
    }
    0
}
