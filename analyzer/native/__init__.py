"""The binding to the compiled packet core (`core/`, Rust, behind a C ABI).

Two engines sit behind one interface (`analyzer.engine.Engine`):

- `analyzer.engine.Engine`: the Python engine, the reference and the fallback;
- `analyzer.native.engine.NativeEngine`: the same engine whose per-packet loop (record walk,
  decode, flow table) runs in the compiled core; inspection, DNS, neighbours, diagnosis and
  reports stay the Python ones.

`pip install` builds the core when a Rust toolchain is there (setuptools-rust, optional);
without one the package installs and runs on the Python engine, and `notice()` says so once.
`APPLE_NET_ENGINE=python` (or `--engine python`) chooses the Python engine anyway;
`APPLE_NET_CORE_LIB=/path/to/libapple_net_core.so` loads another build of the core.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
from typing import Any

from analyzer.errors import AnalyzerError
from analyzer.flows.config import FlowConfig

__all__ = ["ABI_VERSION", "CoreUnavailable", "available", "load", "notice", "resolve_engine"]

ABI_VERSION = 1
"""`anc_abi_version()` of the core this binding reads (core/src/ffi.rs ABI_VERSION)."""
ENGINES = ("native", "python")


class CoreUnavailable(AnalyzerError):
    """The compiled core was asked for and is not there (or is another version)."""


class CFlowConfig(ctypes.Structure):
    """core/src/config.rs FlowConfig, field for field."""

    _fields_ = [
        ("reassembly_cap", ctypes.c_uint64),
        ("reassembly_budget", ctypes.c_uint64),
        ("reassembly_floor", ctypes.c_uint64),
        ("max_segments", ctypes.c_uint64),
        ("max_pending_segments", ctypes.c_uint64),
        ("max_udp_datagrams", ctypes.c_uint64),
        ("tcp_idle_timeout", ctypes.c_double),
        ("udp_idle_timeout", ctypes.c_double),
        ("icmp_idle_timeout", ctypes.c_double),
        ("tcp_attempt_timeout", ctypes.c_double),
        ("tcp_close_linger", ctypes.c_double),
        ("tcp_partial_close_timeout", ctypes.c_double),
        ("max_flows", ctypes.c_uint64),
        ("max_time_jump", ctypes.c_double),
        ("ip_id_samples", ctypes.c_uint64),
        ("max_rsts", ctypes.c_uint64),
        ("max_icmp_errors", ctypes.c_uint64),
        ("max_history", ctypes.c_uint64),
        ("max_processes", ctypes.c_uint64),
    ]

    @classmethod
    def of(cls, config: FlowConfig) -> CFlowConfig:
        return cls(*(getattr(config, name) for name, _ in cls._fields_))


_lib: Any = None
_why_not: str | None = None
_noticed = False


def _candidates() -> list[str]:
    override = os.environ.get("APPLE_NET_CORE_LIB")
    if override:
        return [override]
    here = os.path.dirname(__file__)
    return sorted(glob.glob(os.path.join(here, "_core*.so")) + glob.glob(os.path.join(here, "_core*.dylib"))
                  + glob.glob(os.path.join(here, "_core*.pyd")))


def _bind(lib: Any) -> None:
    c = ctypes
    vp, u8p, szp = c.c_void_p, c.POINTER(c.c_uint8), c.POINTER(c.c_size_t)
    lib.anc_abi_version.restype = c.c_uint32
    lib.anc_new.argtypes = [c.POINTER(CFlowConfig), c.c_uint32, c.c_uint32]
    lib.anc_new.restype = vp
    lib.anc_free.argtypes = [vp]
    lib.anc_free.restype = None
    for name in ("anc_end_file", "anc_finish", "anc_walk_done"):
        getattr(lib, name).argtypes = [vp]
        getattr(lib, name).restype = c.c_int32
    lib.anc_begin_file.argtypes = [vp, c.c_char_p, c.c_size_t, c.c_int32]
    lib.anc_begin_file.restype = c.c_int32
    for name in ("anc_feed", "anc_feed_frames"):
        getattr(lib, name).argtypes = [vp, c.c_char_p, c.c_size_t]
        getattr(lib, name).restype = c.c_int32
    lib.anc_set_memory_limit.argtypes = [vp, c.c_double, c.c_uint64]
    lib.anc_set_memory_limit.restype = c.c_int32
    lib.anc_advance.argtypes = [vp, c.c_double]
    lib.anc_advance.restype = c.c_int32
    for name in ("anc_events", "anc_info", "anc_error"):
        getattr(lib, name).argtypes = [vp, szp]
        getattr(lib, name).restype = u8p
    lib.anc_table_counts.argtypes = [vp, c.POINTER(c.c_uint64), c.POINTER(c.c_uint64)]
    lib.anc_table_counts.restype = c.c_int32


def load() -> Any:
    """The core's ctypes library, or None (`why_not()` says why)."""
    global _lib, _why_not
    if _lib is not None or _why_not is not None:
        return _lib
    if os.environ.get("APPLE_NET_NO_CORE"):
        _why_not = "disabled by APPLE_NET_NO_CORE"
        return None
    paths = _candidates()
    if not paths:
        _why_not = "not built (no Rust toolchain when the package was installed)"
        return None
    errors = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            version = lib.anc_abi_version()
        except (OSError, AttributeError) as exc:
            errors.append(f"{path}: {exc}")
            continue
        if version != ABI_VERSION:
            errors.append(f"{path}: ABI version {version}, this package reads {ABI_VERSION}")
            continue
        _bind(lib)
        _lib = lib
        return lib
    _why_not = "; ".join(errors)
    return None


def available() -> bool:
    return load() is not None


def why_not() -> str | None:
    load()
    return _why_not


def notice() -> None:
    """One line on stderr, once per process, when the core is missing and the Python engine runs."""
    global _noticed
    if _noticed:
        return
    _noticed = True
    sys.stderr.write(f"apple-net: compiled core {why_not()}: using the Python engine (slower; same results)\n")


def resolve_engine(choice: str | None) -> str:
    """"native" or "python" for a choice of "native", "python" or None/"auto" (native when built).

    The environment's APPLE_NET_ENGINE stands for a missing choice. Asking for "native" when
    the core is not there raises CoreUnavailable; "auto" falls back with `notice()`.
    """
    if choice in (None, "", "auto"):
        choice = os.environ.get("APPLE_NET_ENGINE") or "auto"
    if choice == "python":
        return "python"
    if choice not in ("native", "auto"):
        raise ValueError(f"unknown engine {choice!r}: native, python or auto")
    if available():
        return "native"
    if choice == "native":
        raise CoreUnavailable(f"the compiled core is {why_not()}")
    notice()
    return "python"
