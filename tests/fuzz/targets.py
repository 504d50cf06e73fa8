"""One fuzz target per parser: bytes in, a result or the package's own errors out.

A target returns normally or raises an *expected* error (ParseError, AnalyzerError and
its subclasses CaptureError...): anything else is a crash. Seeds come from the real
captures under tests/fixtures and samples/: whole files for the capture layers, and
per-protocol payloads extracted from them for the parsers (see `seeds`).
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

from analyzer.capture.decode import LINK_DECODERS, Decoder, decode
from analyzer.capture.reader import RawPacket, open_capture
from analyzer.errors import AnalyzerError
from analyzer.protocols import dns, http, neighbors, ntp, quic, starttls, tls, x509
from analyzer.protocols._buffer import ParseError

ROOT = Path(__file__).resolve().parents[2]
CAPTURE_DIRS = (ROOT / "tests" / "fixtures", ROOT / "samples")
CRASH_DIR = ROOT / "tests" / "fixtures" / "fuzz" / "crashes"
EXPECTED: tuple[type[BaseException], ...] = (ParseError, AnalyzerError)
"""The errors a parser may raise on bad input; everything else is a crash."""

MAX_STREAM = 1 << 14
"""Per-direction bytes kept as a seed: enough for a handshake, small enough to mutate fast."""


def _split(data: bytes) -> tuple[bytes, bytes]:
    """Two inputs (client, server) from one: the first two bytes say where the cut is."""
    if len(data) < 2:
        return data, b""
    cut = struct.unpack_from("!H", data)[0]
    rest = data[2:]
    cut = cut % (len(rest) + 1)
    return rest[:cut], rest[cut:]


def _join(a: bytes, b: bytes) -> bytes:
    """The inverse of `_split`, for seeds."""
    return struct.pack("!H", len(a)) + a + b


# ---------------------------------------------------------------------------
# Targets


def fuzz_tls(data: bytes) -> None:
    client, server = _split(data)
    tls.analyze_exchange(client, server)
    tls.analyze_direction(data, from_client=True)
    tls.split_records(data)
    tls.tls_start(data)
    for parse in (tls.parse_client_hello, tls.parse_server_hello, tls.parse_certificate_message, tls.parse_alert):
        try:
            parse(data)
        except ParseError:
            pass
    if len(data) > 4:  # a handshake message body after its 4-byte header
        for parse in (tls.parse_client_hello, tls.parse_server_hello):
            try:
                parse(data[4:])
            except ParseError:
                pass


def fuzz_quic(data: bytes) -> None:
    """A flow of datagrams: each chunk is a 2-byte length, a direction bit in its top, then the datagram."""
    quic.looks_like_quic(data)
    quic.is_client_initial(data)
    try:
        quic.split_datagram(data)
    except ParseError:
        pass
    quic.parse_gquic_client_hello(data)
    asm = quic.QUICInitialAssembler()
    pos = 0
    while pos + 2 <= len(data):
        (n,) = struct.unpack_from("!H", data, pos)
        pos += 2
        asm.feed(data[pos:pos + (n & 0x7FFF)], not n & 0x8000)
        pos += n & 0x7FFF
    asm.state


def fuzz_dns(data: bytes) -> None:
    try:
        msg = dns.parse_message(data)
    except ParseError:
        msg = None
    if msg is not None:
        msg.rcode_name
        q = msg.question
        if q is not None:
            q.normalized_name
            q.type_name
            dns.cname_chain(q.normalized_name, msg.answers)
        for rr in msg.answers:
            rr.normalized_name, rr.type_name, rr.class_name
        dns.transaction_key(msg, "c", "s")
    for m in dns.split_tcp_messages(data):
        try:
            dns.parse_message(m)
        except ParseError:
            pass


def fuzz_http(data: bytes) -> None:
    for parse in (http.parse_request_head, http.parse_response_head):
        weirds: list[str] = []
        msg = parse(data, weirds=weirds)
        if isinstance(msg, http.HTTPRequest):
            msg.host, msg.user_agent, msg.connect_target, msg.path, msg.is_ocsp, msg.is_crl
            msg.is_certificate_fetch
        elif msg is not None:
            msg.header("location")
    http.looks_like_http_request(data)
    http.looks_like_http_response(data)


def fuzz_ntp(data: bytes) -> None:
    try:
        pkt = ntp.parse_ntp(data)
    except ParseError:
        return
    pkt.mode_name, pkt.kiss_code, pkt.reference_id_text, pkt.synchronized
    ntp.is_reply_to(pkt, pkt)
    ntp.ntp_to_unix(pkt.transmit_ts)


def fuzz_x509(data: bytes) -> None:
    # The cache would keep every mutant alive: call the function under it.
    try:
        x509.parse_certificate.__wrapped__(data)
    except ParseError:
        pass


def fuzz_starttls(data: bytes) -> None:
    client, server = _split(data)
    starttls.find_upgrade(client, server)


def fuzz_neighbors(data: bytes) -> None:
    try:
        neighbors.parse_arp(data).claims
    except ParseError:
        pass
    if len(data) >= 3:  # NDP: type (133..137, as decode hands over), code, hop limit, then the ICMPv6 body
        try:
            msg = neighbors.parse_ndp(133 + data[0] % 5, data[1], data[2], data[3:], b"\xfe\x80" + b"\0" * 14)
            msg.claims(b"\xfe\x80" + b"\0" * 14)
        except ParseError:
            pass


LINK_TYPES = sorted(LINK_DECODERS)


def fuzz_decode(data: bytes) -> None:
    """A frame on the link type the first byte picks; several frames share one fragment table."""
    if not data:
        return
    linktype = LINK_TYPES[data[0] % len(LINK_TYPES)]
    frame = data[1:]
    dec = Decoder()
    dec(RawPacket(1.0, linktype, frame, len(frame)))
    dec(RawPacket(1.0, linktype, frame, len(frame) + 100))
    decode(RawPacket(1.0, linktype, frame, len(frame)))
    dec.finish()


def fuzz_reader(data: bytes) -> None:
    try:
        with open_capture(io.BytesIO(data)) as reader:
            for _ in reader:
                pass
    except AnalyzerError:
        pass


def _with_file(data: bytes, run: Callable[[str], None]) -> None:
    fd, path = tempfile.mkstemp(suffix=".pcap", prefix="fuzz-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        run(path)
    finally:
        os.unlink(path)


def fuzz_engine(data: bytes) -> None:
    from analyzer.engine import run_engine

    def run(path: str) -> None:
        try:
            run_engine([path])
        except AnalyzerError:
            pass

    _with_file(data, run)


def fuzz_analyze(data: bytes) -> None:
    """The whole product: engine, diagnosis, and every renderer on the report."""
    from analyzer.analysis import analyze
    from analyzer.report.csv_report import render_csv
    from analyzer.report.html import render_html
    from analyzer.report.jsonl import json_document, render_jsonl
    from analyzer.report.markdown import render_markdown
    from analyzer.report.terminal_report import render_terminal

    def run(path: str) -> None:
        try:
            report = analyze(path).report
        except AnalyzerError:
            return
        render_terminal(report, io.StringIO(), color=False)
        render_markdown(report)
        render_html(report)
        render_jsonl(report)
        json_document(report)
        for table in ("flows", "services", "dns", "findings"):
            render_csv(report, table)

    _with_file(data, run)


class CoreCrash(Exception):
    """The compiled core counted an internal error (a panic it caught) on an input."""


_TINY_FLOWS = dict(max_flows=3, reassembly_budget=4096, reassembly_floor=512, reassembly_cap=2048, max_segments=3,
                   max_pending_segments=2, max_udp_datagrams=1, max_history=6, ip_id_samples=2, max_rsts=1,
                   max_icmp_errors=1, max_processes=1, tcp_idle_timeout=2.0, udp_idle_timeout=1.0,
                   icmp_idle_timeout=1.0, tcp_attempt_timeout=0.5, tcp_close_linger=0.2,
                   tcp_partial_close_timeout=0.1, max_time_jump=0.5)
"""tests/test_native_differential.py TINY (and core/tests/fuzz.rs tiny_config): caps that bite on short inputs."""


@cache
def _recording_native_engine() -> type | None:
    """NativeEngine keeping the exceptions its error boundary counted, or None without the core."""
    from analyzer import native

    if not native.available():
        return None
    from analyzer.native.engine import NativeEngine

    class RecordingNativeEngine(NativeEngine):
        def _internal(self, where: str, exc: Exception) -> None:
            self.internal_errors.append(exc)
            super()._internal(where, exc)

    return RecordingNativeEngine


def fuzz_core(data: bytes) -> None:
    """A capture through the compiled core (`NativeEngine`), default and tiny limits: any
    `internal_error_*` weird (a panic the core caught, or an exception at the engine's error
    boundary) is a crash, as in core/tests/fuzz.rs. A no-op when the core is not built."""
    engine_class = _recording_native_engine()
    if engine_class is None:
        return
    from analyzer.engine import EngineConfig
    from analyzer.flows.config import FlowConfig

    def run(path: str) -> None:
        for config in (EngineConfig(engine="native"), EngineConfig(flows=FlowConfig(**_TINY_FLOWS), engine="native")):
            engine = engine_class(config)
            engine.internal_errors = []
            try:
                engine.read(path)
            except AnalyzerError:
                pass
            result = engine.finish()
            internal = sorted(f"{k}={v}" for k, v in result.weird.items() if k.startswith("internal_error"))
            if internal:
                first = next((e for e in engine.internal_errors if e.__traceback__ is not None), None)
                if first is not None and not isinstance(first, EXPECTED):
                    raise first  # its own traceback: the fault's place is the crash's signature
                raise CoreCrash(f"{', '.join(internal)}: {engine.internal_errors!r}"[:300]) from first

    _with_file(data, run)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "tls": fuzz_tls,
    "quic": fuzz_quic,
    "dns": fuzz_dns,
    "http": fuzz_http,
    "ntp": fuzz_ntp,
    "x509": fuzz_x509,
    "starttls": fuzz_starttls,
    "neighbors": fuzz_neighbors,
    "decode": fuzz_decode,
    "reader": fuzz_reader,
    "engine": fuzz_engine,
    "analyze": fuzz_analyze,
    "core": fuzz_core,
}


# ---------------------------------------------------------------------------
# Seeds from the real captures


def capture_files(max_size: int = 1 << 20) -> list[Path]:
    files = []
    for d in CAPTURE_DIRS:
        for p in sorted(d.rglob("*")):
            if p.is_file() and ".pcap" in p.name and "fuzz" not in p.relative_to(ROOT).parts and p.stat().st_size <= max_size:
                files.append(p)
    return files


@cache
def seeds() -> dict[str, tuple[bytes, ...]]:
    """Seeds per target, extracted once from every capture under tests/fixtures and samples/."""
    out: dict[str, list[bytes]] = {name: [] for name in TARGETS}
    streams: dict[tuple[bytes, int, bytes, int], bytearray] = {}
    quic_flows: dict[tuple[bytes, int, bytes, int], bytearray] = {}
    for path in capture_files():
        data = path.read_bytes()
        out["reader"].append(data)
        if len(data) <= 64 << 10:
            out["engine"].append(data)
            out["analyze"].append(data)
            out["core"].append(data)
        try:
            reader = open_capture(path)
            dec = Decoder()
            linkidx = {t: i for i, t in enumerate(LINK_TYPES)}
            for raw in reader:
                if raw.linktype in linkidx and len(out["decode"]) < 4000:
                    out["decode"].append(bytes([linkidx[raw.linktype]]) + raw.data)
                pkt = dec(raw)
                for arp in dec.arp:
                    out["neighbors"].append(arp.data)
                dec.arp.clear()
                if pkt is None:
                    continue
                ports = {pkt.sport, pkt.dport}
                if pkt.proto == 58 and pkt.icmp is not None and 133 <= pkt.icmp.type <= 137:
                    out["neighbors"].append(bytes([pkt.icmp.type - 133, pkt.icmp.code, 255]) + pkt.payload)
                if not pkt.payload:
                    continue
                if pkt.proto == 17:
                    if 53 in ports or 5353 in ports:
                        out["dns"].append(pkt.payload)
                    if 123 in ports:
                        out["ntp"].append(pkt.payload)
                    if 443 in ports:
                        key = (pkt.src, pkt.sport, pkt.dst, pkt.dport) if pkt.dport == 443 else (
                            pkt.dst, pkt.dport, pkt.src, pkt.sport)
                        buf = quic_flows.setdefault(key, bytearray())
                        if len(buf) < MAX_STREAM:
                            n = len(pkt.payload) | (0 if pkt.dport == 443 else 0x8000)
                            buf += struct.pack("!H", n) + pkt.payload
                elif pkt.proto == 6:
                    key = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
                    buf = streams.setdefault(key, bytearray())
                    if len(buf) < MAX_STREAM:
                        buf += pkt.payload
        except AnalyzerError:
            pass
    for (src, sport, dst, dport), buf in streams.items():
        client = bytes(buf)
        if sport < dport:  # the server's side (the lower port): taken with its client
            continue
        server = bytes(streams.get((dst, dport, src, sport), b""))
        pair = _join(client, server)
        if dport == 53:
            out["dns"].append(client)
            out["dns"].append(server)
        elif dport in (80, 8080, 3128, 8000):
            out["http"].append(client)
            out["http"].append(server)
        elif tls.looks_like_tls(client):
            out["tls"].append(pair)
            for direction in (tls.analyze_direction(client, from_client=True),
                              tls.analyze_direction(server, from_client=False)):
                out["x509"].extend(direction.certificates)
        elif dport in (25, 587, 110, 143, 21, 5222, 389, 5432, 3306):
            out["starttls"].append(pair)
        if client.startswith((b"CONNECT ", b"GET ", b"POST ", b"HTTP/")):
            out["http"].append(client)
        if server.startswith(b"HTTP/"):
            out["http"].append(server)
    out["quic"].extend(bytes(b) for b in quic_flows.values())
    # Hand-made minimal seeds so every target has something even without captures.
    out["starttls"] += [_join(b"EHLO x\r\nSTARTTLS\r\n", b"220 x ESMTP\r\n250-x\r\n250 STARTTLS\r\n220 go\r\n"),
                        _join(b"a1 STARTTLS\r\n", b"* OK IMAP4\r\na1 OK begin\r\n"),
                        _join(b"STLS\r\n", b"+OK POP3\r\n+OK\r\n")]
    out["ntp"].append(bytes([0x23]) + bytes(47))
    out["http"].append(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    return {name: tuple(dict.fromkeys(s)) or (b"",) for name, s in out.items()}


def crash_fixtures(target: str | None = None) -> list[tuple[str, Path]]:
    """Every kept crash input: (target, file)."""
    found = []
    if CRASH_DIR.is_dir():
        for d in sorted(CRASH_DIR.iterdir()):
            if d.is_dir() and d.name in TARGETS and (target is None or d.name == target):
                found += [(d.name, p) for p in sorted(d.iterdir()) if p.is_file()]
    return found
