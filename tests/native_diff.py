"""Run both engines on one capture and say where their results differ (tests only).

The payload bytes of each record are compared too: the engine frees them once inspected
(`analyzer.engine._release_payload`), so `results` keeps them for the comparison.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

import analyzer.engine as engine_mod
from analyzer import native
from analyzer.engine import EngineConfig, EngineResult, run_engine
from analyzer.flows.config import FlowConfig

REQUIRE_CORE = os.environ.get("APPLE_NET_REQUIRE_CORE", "") not in ("", "0")


def need_core() -> None:
    """Skip without the compiled core, except where it is required (CI builds it: .ci/run)."""
    if not native.available():
        if REQUIRE_CORE:
            pytest.fail(f"APPLE_NET_REQUIRE_CORE is set and the compiled core is {native.why_not()}")
        pytest.skip(f"compiled core {native.why_not()}")


@contextlib.contextmanager
def payloads_kept() -> Iterator[None]:
    saved = engine_mod._release_payload
    engine_mod._release_payload = lambda rec: None
    try:
        yield
    finally:
        engine_mod._release_payload = saved


def results(paths: Sequence[str | os.PathLike[str]], flows: FlowConfig | None = None,
            shard: tuple[int, int] | None = None) -> tuple[EngineResult, EngineResult]:
    """(python, native) results of the same captures and limits; payloads kept."""
    out = []
    for engine in ("python", "native"):
        cfg = EngineConfig(flows=flows or FlowConfig(), engine=engine)
        with payloads_kept():
            out.append(run_engine([os.fspath(p) for p in paths], cfg, shard=shard))
    return out[0], out[1]


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if a == b:
        return None
    if dataclasses.is_dataclass(a) and type(a) is type(b):
        for f in dataclasses.fields(a):
            d = _first_difference(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
            if d:
                return d
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{path}: {len(a)} python vs {len(b)} native items"
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
    ra, rb = repr(a), repr(b)
    return f"{path}: python {ra[:300]} != native {rb[:300]}"


def differences(py: EngineResult, nat: EngineResult) -> list[str]:
    """Every way the two results differ (empty: equal), each with the first differing field."""
    out = []
    for name in ("captures", "flows", "dns", "neighbors"):
        d = _first_difference(getattr(py, name), getattr(nat, name), name)
        if d:
            out.append(d)
    if py.weird != nat.weird:
        keys = sorted(set(py.weird) | set(nat.weird))
        out.append("weird: " + ", ".join(f"{k} {py.weird[k]} vs {nat.weird[k]}" for k in keys
                                         if py.weird[k] != nat.weird[k]))
    return out


# --- rewritten copies of a capture (classic little-endian pcap in, bytes out) --------------

_LE_MAGIC = b"\xd4\xc3\xb2\xa1"


def pcap_records(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
    """A little-endian microsecond pcap's file header and its (record header, frame) pairs."""
    if data[:4] != _LE_MAGIC or len(data) < 24:
        return None
    out, pos = [], 24
    while pos + 16 <= len(data):
        caplen = int.from_bytes(data[pos + 8:pos + 12], "little")
        out.append((data[pos:pos + 16], data[pos + 16:pos + 16 + caplen]))
        pos += 16 + caplen
    return data[:24], out


def _with_caplen(hdr: bytes, caplen: int) -> bytes:
    return hdr[:8] + caplen.to_bytes(4, "little") + hdr[12:]


def rewrites(data: bytes) -> dict[str, bytes]:
    """The capture as other taps would have recorded it: one side only (every other frame), a
    96-byte snaplen, every frame twice (a span port mirroring both ports), Ethernet frames in
    an 802.1Q tag, and the same records as pcapng with nanosecond times."""
    parsed = pcap_records(data)
    if parsed is None:
        return {}
    head, recs = parsed
    linktype = int.from_bytes(head[20:24], "little") & 0x03FFFFFF
    out = {
        "oneway": head + b"".join(h + f for i, (h, f) in enumerate(recs) if i % 2 == 0),
        "snap96": head + b"".join(_with_caplen(h, min(96, len(f))) + f[:96] for h, f in recs),
        "twice": head + b"".join(h + f for h, f in recs for _ in (0, 1)),
    }
    if linktype == 1:
        vlan = []
        for h, f in recs:
            if len(f) >= 14:
                f = f[:12] + b"\x81\x00\x00\x2a" + f[12:]
                h = _with_caplen(h, len(f))[:12] + (int.from_bytes(h[12:16], "little") + 4).to_bytes(4, "little")
            vlan.append(h + f)
        out["vlan"] = head + b"".join(vlan)
    out["pcapng"] = to_pcapng(linktype, recs)
    return out


def _block(kind: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = (12 + len(body)).to_bytes(4, "little")
    return kind.to_bytes(4, "little") + n + body + n


def to_pcapng(linktype: int, recs: list[tuple[bytes, bytes]]) -> bytes:
    """The records as one pcapng section with an if_tsresol of 9 (nanoseconds)."""
    shb = _block(0x0A0D0D0A, b"\x4d\x3c\x2b\x1a" + (1).to_bytes(2, "little") + (0).to_bytes(2, "little")
                 + (-1).to_bytes(8, "little", signed=True))
    tsresol = (9).to_bytes(2, "little") + (1).to_bytes(2, "little") + b"\x09\0\0\0" + b"\0\0\0\0"
    idb = _block(1, linktype.to_bytes(2, "little") + b"\0\0" + (262144).to_bytes(4, "little") + tsresol)
    parts = [shb, idb]
    for h, f in recs:
        sec, usec, _caplen, wirelen = (int.from_bytes(h[i:i + 4], "little") for i in (0, 4, 8, 12))
        ts = sec * 1_000_000_000 + usec * 1000
        parts.append(_block(6, (0).to_bytes(4, "little") + (ts >> 32).to_bytes(4, "little")
                            + (ts & 0xFFFFFFFF).to_bytes(4, "little") + len(f).to_bytes(4, "little")
                            + wirelen.to_bytes(4, "little") + f))
    return b"".join(parts)
