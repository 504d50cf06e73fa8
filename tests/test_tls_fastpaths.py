"""The fast paths of TLS inspection give exactly what the reference paths give.

* the direct-slicing hello parsers against the Buffer-cursor parsers (which
  define every error kind and weird), on real hellos and mutated ones;
* `analyze_exchange` against `analyze_direction` + `summarize_session`;
* the one-pass history merge and TLS 1.3 alert inference against the plain
  definitions (first segment completing each byte), for any event order;
* `inspect._times_at` against `inspect._ts_at`;
* the cached fingerprints against recomputation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from functools import cache

import pytest
from helpers_pcap import LOCAL, tcp_streams
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import inspect as flow_inspect
from analyzer.flows.records import StreamData
from analyzer.protocols import tls
from analyzer.protocols._buffer import ParseError
from analyzer.protocols.fingerprints import ja3, ja3_string, ja4, ja4_raw
from analyzer.protocols.tls import (
    ENCRYPTED_ALERT_LENGTHS,
    EncryptedRecord,
    Event,
    SessionAlert,
    analyze_direction,
    analyze_exchange,
    split_records,
    summarize_session,
)

PCAPS = [
    "zeek/testing/btest/Traces/tls/chrome-1250-tls-x25519-kyber.pcap",
    "zeek/testing/btest/Traces/tls/tls1.2.pcap",
    "zeek/testing/btest/Traces/tls/hrr.pcap",
    "zeek/testing/btest/Traces/tls/tls13-ech.pcap",
    "zeek/testing/btest/Traces/tls/tls13_psk_succesfull.pcap",
    "zeek/testing/btest/Traces/tls/tls13draft16-ff52.a01.pcap",
    str(LOCAL / "tls13-x25519mlkem768.pcap"),
    str(LOCAL / "tls13-client-rejects-cert.pcap"),
]


@cache
def _conns() -> list[tuple[bytes, bytes, list[tuple[bool, int]]]]:
    out = []
    for path in PCAPS:
        for conn in tcp_streams(path)[:2]:
            out.append((conn.client_data, conn.server_data, conn.arrival))
    return out


def _handshake_bodies(data: bytes) -> list[tuple[int, bytes]]:
    records, _ = split_records(data)
    hs = b"".join(r.body or b"" for r in records if r.content_type == 22)
    out = []
    pos = 0
    while len(hs) - pos >= 4:
        length = int.from_bytes(hs[pos + 1 : pos + 4], "big")
        out.append((hs[pos], hs[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    return out


@cache
def _hellos() -> tuple[list[bytes], list[bytes]]:
    clients: list[bytes] = []
    servers: list[bytes] = []
    for c, s, _ in _conns():
        for data in (c, s):
            for msg_type, body in _handshake_bodies(data):
                if msg_type == 1 and body not in clients:
                    clients.append(body)
                elif msg_type == 2 and body not in servers:
                    servers.append(body)
    return clients, servers


def _outcome(fn, data: bytes) -> object:  # type: ignore[no-untyped-def]
    try:
        return fn(data)
    except ParseError as exc:
        return ("ParseError", exc.kind, exc.detail)


def _length_fields(body: bytes, client: bool) -> tuple[list[int], list[int]]:
    """Offsets of a well-formed hello's length and type fields, and of each extension's first data bytes.

    The latter hold the lists' own lengths (and the first entries), which the
    extension parsers check.
    """
    fields = [34]
    pos = 35 + body[34]
    if client:
        fields += [pos, pos + 1]
        pos += 2 + int.from_bytes(body[pos : pos + 2], "big")
        fields.append(pos)
        pos += 1 + body[pos]
    else:
        pos += 3
    fields += [pos, pos + 1]
    pos += 2
    inner: list[int] = []
    while pos + 4 <= len(body):
        fields += range(pos, pos + 4)
        inner += range(pos + 4, pos + 8)
        pos += 4 + int.from_bytes(body[pos + 2 : pos + 4], "big")
    return [f for f in fields if f < len(body)], [f for f in inner if f < len(body)]


# --- hello parsers ---------------------------------------------------------------


def test_corpus_hellos_take_the_fast_path_and_match_the_cursor_parser() -> None:
    clients, servers = _hellos()
    assert len(clients) >= 8 and len(servers) >= 6
    for body in clients:
        assert tls._fast_client_hello(body) == tls._parse_client_hello_cursor(body)
    # The draft-16 ServerHello (no session id) fits the fast path too.
    for body in servers:
        assert tls._fast_server_hello(body) == tls._parse_server_hello_cursor(body)


@settings(max_examples=1500, deadline=None)
@given(st.booleans(), st.randoms(use_true_random=False))
def test_mutated_hellos_parse_exactly_as_the_cursor_parser(client: bool, rnd: random.Random) -> None:
    """Edits aimed mostly at length fields, where the two parsers' checks live."""
    clients, servers = _hellos()
    body = bytearray(rnd.choice(clients if client else servers))
    fields, inner = _length_fields(bytes(body), client)
    for _ in range(rnd.randint(1, 4)):
        where = rnd.random()
        pos = rnd.choice(inner) if where < 0.5 and inner else rnd.choice(fields) if where < 0.85 else rnd.randrange(len(body))
        if pos < len(body):
            body[pos] = rnd.choice([0, 1, 2, 3, 0x7F, 0xFF, (body[pos] + 1) % 256, (body[pos] - 1) % 256, rnd.randrange(256)])
    if rnd.random() < 0.2:
        del body[rnd.randrange(len(body) + 1) :]
    if rnd.random() < 0.1:
        body += body[-rnd.randint(1, 12) :]
    data = bytes(body)
    for public, reference in (
        (tls.parse_client_hello, tls._parse_client_hello_cursor),
        (tls.parse_server_hello, tls._parse_server_hello_cursor),
    ):
        assert _outcome(public, data) == _outcome(reference, data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_parse_exactly_as_the_cursor_parser(data: bytes) -> None:
    assert _outcome(tls.parse_client_hello, data) == _outcome(tls._parse_client_hello_cursor, data)
    assert _outcome(tls.parse_server_hello, data) == _outcome(tls._parse_server_hello_cursor, data)


def test_hello_weirds_come_from_the_cursor_parser() -> None:
    """Trailing bytes and a repeated extension are weirds on an otherwise parsed hello."""
    body = _hellos()[0][0]
    plain = tls.parse_client_hello(body)
    assert plain.weirds == ()

    trailing = tls.parse_client_hello(body + b"\x00")
    assert trailing.weirds == ("tls_trailing_hello_bytes",)
    assert dataclasses.replace(trailing, weirds=()) == plain

    pos = 35 + body[34]
    pos += 2 + int.from_bytes(body[pos : pos + 2], "big")
    pos += 1 + body[pos]  # the extensions block
    total = int.from_bytes(body[pos : pos + 2], "big")
    first = body[pos + 2 : pos + 6 + int.from_bytes(body[pos + 4 : pos + 6], "big")]
    repeated = body[:pos] + (total + len(first)).to_bytes(2, "big") + body[pos + 2 :] + first
    hello = tls.parse_client_hello(repeated)
    assert hello.weirds == ("tls_duplicate_extension",)
    assert hello.extensions == plain.extensions + (plain.extensions[0],)
    assert hello == tls._parse_client_hello_cursor(repeated)


# --- both directions at once ------------------------------------------------------


def _exchange_matches(client: bytes, server: bytes, arrival: list[tuple[bool, int]] | None) -> None:
    cdir = analyze_direction(client, from_client=True)
    sdir = analyze_direction(server, from_client=False)
    exchange = analyze_exchange(client, server, arrival=arrival)
    assert exchange.session == summarize_session(cdir, sdir, arrival=arrival)
    assert exchange.client_hello == cdir.client_hello
    assert exchange.server_hello == sdir.server_hello
    for got, direction in ((exchange.client_encrypted, cdir), (exchange.server_encrypted, sdir)):
        assert got == tuple((r.content_type, r.length, r.offset) for r in direction.encrypted_records)


def test_exchange_matches_the_directions_on_the_corpus() -> None:
    for client, server, arrival in _conns():
        _exchange_matches(client, server, arrival)
        _exchange_matches(client, server, None)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 1 << 16),
    st.lists(st.tuples(st.booleans(), st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6),
    st.integers(0, 1 << 16),
    st.booleans(),
)
def test_exchange_matches_the_directions_on_mutated_streams(
    which: int, edits: list[tuple[bool, int, int]], cut: int, timed: bool
) -> None:
    conns = _conns()
    client, server, arrival = conns[which % len(conns)]
    c, s = bytearray(client), bytearray(server)
    for to_client, pos, value in edits:
        target = c if to_client else s
        if target:
            target[pos % min(len(target), 700)] = value
    _exchange_matches(bytes(c), bytes(s[: len(s) - cut % (len(s) + 1)]), arrival if timed else None)


# --- ordering by arrival --------------------------------------------------------


def _first_completing(arrival: list[tuple[bool, int]], side: bool, end: int) -> int:
    for i, (from_client, delivered) in enumerate(arrival):
        if from_client == side and delivered >= end:
            return i
    return len(arrival)


def _reference_history(client: list[Event], server: list[Event], arrival: list[tuple[bool, int]]) -> str:
    tagged = [(_first_completing(arrival, True, e.end), 0, i, e.letter.upper()) for i, e in enumerate(client)]
    tagged += [(_first_completing(arrival, False, e.end), 1, i, e.letter) for i, e in enumerate(server)]
    return "".join(t[3] for t in sorted(tagged))[:100]


def _reference_inferred(
    client: list[EncryptedRecord], server: list[EncryptedRecord], arrival: list[tuple[bool, int]]
) -> list[bool]:
    """Sides (from_client) of the alerts inferred from alert-sized records after the peer's flight."""

    def sized(r: EncryptedRecord) -> bool:
        return r.content_type == 23 and r.length in ENCRYPTED_ALERT_LENGTHS

    c_recs = [r for r in client if r.content_type == 23]
    s_recs = [r for r in server if r.content_type == 23]
    out = []
    if s_recs:
        flight = _first_completing(arrival, False, s_recs[0].offset + 5 + s_recs[0].length)
        after = [r for r in c_recs if _first_completing(arrival, True, r.offset + 5 + r.length) > flight]
        if after and sized(after[0]):
            out.append(True)
    if c_recs:
        flight = _first_completing(arrival, True, c_recs[0].offset + 5 + c_recs[0].length)
        after = [r for r in s_recs if _first_completing(arrival, False, r.offset + 5 + r.length) > flight]
        if after and sized(after[0]):
            out.append(False)
    return out


_EVENTS = st.lists(st.tuples(st.sampled_from("cshixknfgl"), st.integers(0, 400)), max_size=8)
_RECORDS = st.lists(st.tuples(st.sampled_from([23, 23, 23, 21, 22]), st.sampled_from([19, 11, 53, 300]), st.integers(0, 400)), max_size=6)
_ARRIVAL = st.lists(st.tuples(st.booleans(), st.integers(0, 500)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(_EVENTS, _EVENTS, _RECORDS, _RECORDS, _ARRIVAL, st.booleans())
def test_history_and_inferred_alerts_follow_their_definitions(
    c_events: list[tuple[str, int]],
    s_events: list[tuple[str, int]],
    c_records: list[tuple[int, int, int]],
    s_records: list[tuple[int, int, int]],
    arrival: list[tuple[bool, int]],
    in_stream_order: bool,
) -> None:
    """Any event and record order (summarize_session takes any TLSDirection), stream order or not."""
    if in_stream_order:
        c_events, s_events = sorted(c_events, key=lambda e: e[1]), sorted(s_events, key=lambda e: e[1])
        c_records, s_records = sorted(c_records, key=lambda r: r[2]), sorted(s_records, key=lambda r: r[2])
    client, server = (
        dataclasses.replace(d, events=(), encrypted_records=()) for d in _tls13_directions()
    )
    client = dataclasses.replace(
        client,
        events=tuple(Event(letter, end) for letter, end in c_events),
        encrypted_records=tuple(EncryptedRecord(*r) for r in c_records),
    )
    server = dataclasses.replace(
        server,
        events=tuple(Event(letter, end) for letter, end in s_events),
        encrypted_records=tuple(EncryptedRecord(*r) for r in s_records),
    )
    session = summarize_session(client, server, arrival=arrival)
    assert session.ssl_history == _reference_history(list(client.events), list(server.events), arrival)
    inferred = [a.from_client for a in session.alerts if a.inferred]
    assert inferred == _reference_inferred(list(client.encrypted_records), list(server.encrypted_records), arrival)
    assert all(a == SessionAlert(a.from_client, None, None, None, True, True) for a in session.alerts if a.inferred)


@cache
def _tls13_directions() -> tuple[tls.TLSDirection, tls.TLSDirection]:
    client, server, _ = _conns()[0]
    return analyze_direction(client, from_client=True), analyze_direction(server, from_client=False)


# --- record timing in the flow inspector ------------------------------------------


def _stream(segments: list[tuple[int, float]], size: int) -> StreamData:
    return StreamData(bytes(size), tuple(segments), size, False, False, 0, 0, 0, 0, False)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 300), st.floats(0, 100, allow_nan=False)), max_size=10),
    st.lists(st.integers(0, 320), max_size=10),
)
def test_record_times_match_the_per_offset_lookup(segments: list[tuple[int, float]], offsets: list[int]) -> None:
    """Segments need not be in order for the one-pass lookup to agree (offsets are in stream order)."""
    stream = _stream(segments, 320)
    offsets = sorted(offsets)
    assert flow_inspect._times_at(stream, offsets) == [flow_inspect._ts_at(stream, o) for o in offsets]
    assert flow_inspect._times_at(None, offsets) == [None] * len(offsets)


# --- fingerprints ---------------------------------------------------------------


@pytest.mark.parametrize("index", range(6))
def test_cached_fingerprints_equal_a_fresh_computation(index: int) -> None:
    clients, _ = _hellos()
    ch = tls.parse_client_hello(clients[index % len(clients)])
    text, digest = ja3(ch)
    assert text == ja3_string(ch)
    assert digest == hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
    for transport in ("t", "q", "d"):
        fp = ja4(ch, transport)
        head, ciphers, exts = ja4_raw(ch, transport).split("_", 2)
        assert fp.startswith(transport) and fp.split("_")[0] == head
        for part, raw in zip(fp.split("_")[1:], (ciphers, exts), strict=True):
            assert part == (hashlib.sha256(raw.encode()).hexdigest()[:12] if raw else "000000000000")
    # An equal hello parsed again (new objects) gives the same strings.
    again = tls.parse_client_hello(clients[index % len(clients)])
    assert again is not ch and (ja3(again), ja4(again)) == ((text, digest), ja4(ch))


def test_long_inputs_stay_out_of_the_caches() -> None:
    """Hostile hellos with huge lists parse and fingerprint as usual without filling the caches."""
    from analyzer.protocols import fingerprints

    body = _hellos()[0][0]
    pos = 35 + body[34]
    suites_len = int.from_bytes(body[pos : pos + 2], "big")
    pos += 2 + suites_len
    pos += 1 + body[pos]  # the extensions block
    groups = b"".join((0x1000 + i).to_bytes(2, "big") for i in range(400))
    ext = (10).to_bytes(2, "big") + (len(groups) + 2).to_bytes(2, "big") + len(groups).to_bytes(2, "big") + groups
    # Replace supported_groups by the long list.
    exts = body[pos + 2 :]
    kept = b""
    while exts:
        length = int.from_bytes(exts[2:4], "big")
        if int.from_bytes(exts[:2], "big") != 10:
            kept += exts[: 4 + length]
        exts = exts[4 + length :]
    hostile = body[:pos] + (len(kept) + len(ext)).to_bytes(2, "big") + kept + ext
    ja3(tls.parse_client_hello(body))  # the other extensions' entries
    before = (tls._fast_u16_list.cache_info().currsize, fingerprints._ja3.cache_info().currsize)
    hello = tls.parse_client_hello(hostile)
    assert hello == tls._parse_client_hello_cursor(hostile)
    assert len(hello.supported_groups) == 400 and hello.weirds == ()
    big = dataclasses.replace(hello, cipher_suites=tuple(range(0x100, 0x200)))
    assert ja3(big) == fingerprints._ja3_uncached(
        big.legacy_version, big.cipher_suites, big.extension_types, big.supported_groups, big.ec_point_formats
    )
    assert ja4(big).startswith("t13d99")
    after = (tls._fast_u16_list.cache_info().currsize, fingerprints._ja3.cache_info().currsize)
    assert after == before
