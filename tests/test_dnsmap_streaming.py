"""DNSTracker's streaming callback and bounds, NameMap.add, and the memo's blind spot (names read from the id).

Messages come from corpus captures (iPhone, Wikipedia, nDPI's malformed and
ambiguous-name DNS); the pairing rules themselves are in test_dnsmap.py.
"""

from __future__ import annotations

import struct

import pytest
from helpers_udp import udp_datagrams
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import dnsmap
from analyzer.dnsmap import DNSTracker, DNSTransaction, NameMap

CAPTURES = [
    "ndpi/tests/cfgs/default/pcap/iphone.pcap",
    "zeek/testing/btest/Traces/wikipedia.pcap",
    "ndpi/tests/cfgs/default/pcap/malformed_dns.pcap",
    "ndpi/tests/cfgs/default/pcap/dns_ambiguous_names.pcap",
]
DNS_PORTS = {53, 5353, 5355}
Feed = tuple[float, str, int, str, int, bytes]


def _feeds(path: str) -> list[Feed]:
    return [(d.ts, d.src[0], d.src[1], d.dst[0], d.dst[1], d.payload)
            for d in udp_datagrams(path) if DNS_PORTS & {d.src[1], d.dst[1]} and d.payload]


ALL = [f for path in CAPTURES for f in _feeds(path)]


def _run(feeds: list[Feed], **kw: object) -> tuple[DNSTracker, list[DNSTransaction], list[DNSTransaction]]:
    """(tracker, what the callback got in order, what finish returned)."""
    got: list[DNSTransaction] = []
    tr = DNSTracker(**kw, on_transaction=got.append)  # type: ignore[arg-type]
    for f in feeds:
        tr.feed(*f)
    return tr, got, tr.finish()


def _probe_times(transactions: list[DNSTransaction]) -> list[float]:
    times = {0.0, float("inf")}
    for t in transactions:
        if t.response_ts is not None:
            times |= {t.response_ts, t.response_ts - 1e-6, t.response_ts + 1e-6}
    return sorted(times)


@pytest.mark.parametrize("path", CAPTURES)
def test_callback_gets_what_finish_would_return(path: str) -> None:
    feeds = _feeds(path)
    kept = DNSTracker()
    for f in feeds:
        kept.feed(*f)
    expected = kept.finish()
    assert expected
    tr, got, returned = _run(feeds)
    assert returned == [] and tr.transactions == []
    # Same transactions, every field; the list is the callback's order sorted stably by time.
    assert sorted(got, key=lambda t: t.ts) == expected
    assert tr.weird == kept.weird


def test_callback_hands_over_at_completion() -> None:
    feeds = _feeds("ndpi/tests/cfgs/default/pcap/iphone.pcap")
    got: list[DNSTransaction] = []
    tr = DNSTracker(on_transaction=got.append)
    answered = 0
    for f in feeds:
        before = len(got)
        tr.feed(*f)
        if len(got) > before:
            # Only a response (paired or not) hands one over here: the capture spans < 30 s.
            assert len(got) == before + 1 and got[-1].response_ts == f[0] and got[-1].server_ip == f[1]
            answered += 1
    assert answered == len(got) > 0
    tr.finish()
    # Unanswered queries come at finish, after every answered one.
    assert all(t.rcode is None for t in got[answered:]) and len(got) > answered


def test_unanswered_query_is_handed_over_once_the_timeout_passes() -> None:
    query, response = _query_and_response()
    got: list[DNSTransaction] = []
    tr = DNSTracker(pending_timeout=5.0, on_transaction=got.append)
    tr.feed(100.0, "10.0.0.2", 5000, "10.0.0.1", 53, query)
    tr.feed(103.0, "10.0.0.2", 5001, "10.0.0.1", 53, query[:1] + b"\x99" + query[2:])
    assert got == []
    tr.feed(106.0, "10.0.0.1", 53, "10.0.0.2", 5001, response[:1] + b"\x99" + response[2:])
    # The answer is handed over, then the query of 100.0, now over 5 s old, as unanswered.
    assert [(t.client_port, t.rcode, t.ts) for t in got] == [(5001, "NOERROR", 103.0), (5000, None, 100.0)]
    tr.feed(106.1, "10.0.0.1", 53, "10.0.0.2", 5000, response)  # too late: an answer to no query
    assert [(t.client_port, t.rcode, t.query_seen) for t in got] == [
        (5001, "NOERROR", True), (5000, None, True), (5000, "NOERROR", False)]
    assert tr.weird["dns_unmatched_response"] == 1
    assert tr.finish() == [] and len(got) == 3


def _query_and_response() -> tuple[bytes, bytes]:
    """The first A query of the iPhone capture and its answer."""
    feeds = _feeds("ndpi/tests/cfgs/default/pcap/iphone.pcap")
    tr = DNSTracker()
    for f in feeds:
        tr.feed(*f)
    t = next(t for t in tr.finish() if t.qtype == "A" and t.addresses)
    key = (t.client_ip, t.client_port, t.server_ip, t.server_port)
    query = next(f[5] for f in feeds if f[1:5] == key and f[5][:2] == t.id.to_bytes(2, "big"))
    response = next(f[5] for f in feeds if f[1:5] == (key[2], key[3], key[0], key[1]) and f[5][:2] == t.id.to_bytes(2, "big"))
    return query, response


def test_pending_queries_stay_bounded_on_a_long_capture() -> None:
    query, _ = _query_and_response()
    got: list[DNSTransaction] = []
    tr = DNSTracker(pending_timeout=30.0, on_transaction=got.append)
    peak = 0
    # Two hours of one unanswered query a second: the table holds at most about twice the timeout's worth.
    for i in range(7200):
        tr.feed(1000.0 + i, "10.0.0.2", 1024 + i % 60000, "10.0.0.1", 53, query)
        peak = max(peak, len(tr._pending))
    assert 30 <= peak <= 61
    assert len(got) + len(tr._pending) == 7200
    tr.finish()
    assert len(got) == 7200 and not tr._pending and not tr._answered and tr.transactions == []


def test_pending_table_full_gives_up_the_oldest_half() -> None:
    query, _ = _query_and_response()
    got: list[DNSTransaction] = []
    tr = DNSTracker(max_pending=10, on_transaction=got.append)
    for i in range(25):
        tr.feed(1.0 + i * 0.01, "10.0.0.2", 5000 + i, "10.0.0.1", 53, query)
        assert len(tr._pending) <= 10
    assert tr.weird["dns_pending_table_full"] == 3
    assert [t.client_port for t in got] == list(range(5000, 5018))  # oldest first, 6 each time
    assert all(t.rcode is None and t.query_seen for t in got)


def test_answered_set_is_capped_within_one_timeout() -> None:
    query, response = _query_and_response()
    tr = DNSTracker(max_pending=10, on_transaction=lambda t: None)
    for i in range(50):
        port = 5000 + i
        tr.feed(1.0 + i * 0.01, "10.0.0.2", port, "10.0.0.1", 53, query)
        tr.feed(1.001 + i * 0.01, "10.0.0.1", 53, "10.0.0.2", port, response)
        assert len(tr._answered) < 20
    assert tr.weird["dns_answered_table_full"] == 4
    # The latest answers are remembered: a duplicate of the last one is still caught.
    tr.feed(1.6, "10.0.0.1", 53, "10.0.0.2", 5049, response)
    assert tr.weird["dns_duplicate_response"] == 1 and tr.weird["dns_unmatched_response"] == 0
    # An old one was forgotten: its duplicate now reads as an answer to no query.
    tr.feed(1.6, "10.0.0.1", 53, "10.0.0.2", 5000, response)
    assert tr.weird["dns_unmatched_response"] == 1


def test_answers_older_than_the_timeout_are_dropped_without_a_weird() -> None:
    query, response = _query_and_response()
    tr = DNSTracker(pending_timeout=1.0, max_pending=10, on_transaction=lambda t: None)
    for i in range(100):
        port = 5000 + i
        tr.feed(1.0 + i * 0.2, "10.0.0.2", port, "10.0.0.1", 53, query)
        tr.feed(1.001 + i * 0.2, "10.0.0.1", 53, "10.0.0.2", port, response)
        assert len(tr._answered) <= 11
    assert "dns_answered_table_full" not in tr.weird


def test_memo_is_capped_by_entries_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dnsmap, "MEMO_SIZE", 8)
    tr = DNSTracker(on_transaction=lambda t: None)
    reference = DNSTracker()
    bodies = {f[5][2:] for f in ALL}
    assert len(bodies) > 20
    for f in ALL:
        tr.feed(*f)
        reference.feed(*f)
        assert len(tr._memo) <= 8
    assert tr.weird == reference.weird
    monkeypatch.setattr(dnsmap, "MEMO_BYTES", 1000)
    tr = DNSTracker()
    for f in ALL:
        tr.feed(*f)
        assert tr._memo_bytes == sum(map(len, tr._memo)) <= 1000
    assert tr.finish() == reference.finish()


def test_a_name_read_from_the_id_is_not_memoised() -> None:
    # Hand-made (no software writes this): the question is a pointer to offset 0, so its
    # first label is the id's low byte; the flags' high byte (RD) then reads as a
    # 1-byte label holding the low byte (0), and qdcount's high byte ends the name.
    def query(msg_id: int) -> bytes:
        return struct.pack("!HHHHHH", msg_id, 0x0100, 1, 0, 0, 0) + b"\xc0\x00" + struct.pack("!HH", 1, 1)

    tr = DNSTracker()
    tr.feed(1.0, "10.0.0.2", 5000, "10.0.0.1", 53, query(0x0141))
    tr.feed(2.0, "10.0.0.2", 5000, "10.0.0.1", 53, query(0x0142))
    done = tr.finish()
    assert [(t.id, t.query, t.qtype, t.rcode) for t in done] == [(0x0141, "A.\\000", "A", None), (0x0142, "B.\\000", "A", None)]
    assert tr._memo == {}


def test_name_map_add_matches_the_list_in_stream_order() -> None:
    _, streamed, _ = _run(ALL)
    offline = DNSTracker()
    for f in ALL:
        offline.feed(*f)
    listed = offline.finish()
    built = NameMap(listed)
    grown = NameMap()
    for t in streamed:
        grown.add(t)
    pairs = {(t.client_ip, a) for t in listed for a in (*t.addresses, *t.hint_addresses) if t.response_ts is not None}
    assert len(pairs) > 50
    for client, addr in pairs:
        assert grown.all_for(client, addr) == built.all_for(client, addr)
        for ts in _probe_times(listed):
            assert grown.lookup(client, addr, ts) == built.lookup(client, addr, ts)
    assert grown.lookup("10.9.9.9", "1.1.1.1", 1e12) is None


def _resolved(query: str, ts: float, rts: float, addr: str = "17.253.1.1") -> DNSTransaction:
    return DNSTransaction(ts, "10.0.0.2", 5000, "10.0.0.1", 53, "udp", 1, query, "A", "NOERROR", rts, (),
                          (query,), (addr,), (), True, False, (), (), 1)


def test_name_map_add_orders_answers_of_one_instant_as_the_list_does() -> None:
    # Three answers arriving at the same instant; the tracker completes them in arrival
    # order (c, a, b) and its list sorts them by query time (a, b, c).
    a, b, c = _resolved("a.apple.com", 1.0, 5.0), _resolved("b.apple.com", 2.0, 5.0), _resolved("c.apple.com", 3.0, 5.0)
    later = _resolved("d.apple.com", 0.5, 4.0)
    built = NameMap([later, a, b, c])
    assert built.lookup("10.0.0.2", "17.253.1.1", 5.0) == dnsmap.Resolution(5.0, "c.apple.com", ("c.apple.com",), c)
    grown = NameMap()
    for t in (c, later, a, b):
        grown.add(t)
    assert grown.all_for("10.0.0.2", "17.253.1.1") == built.all_for("10.0.0.2", "17.253.1.1")
    assert [r.query for r in grown.all_for("10.0.0.2", "17.253.1.1")] == ["d.apple.com", "a.apple.com", "b.apple.com", "c.apple.com"]
    grown.add(_resolved("unanswered.apple.com", 6.0, None))  # type: ignore[arg-type]
    assert len(grown.all_for("10.0.0.2", "17.253.1.1")) == 4


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(ALL) - 1), st.integers(0, 0xFFFF), st.integers(0, 40),
                          st.integers(0, 255), st.integers(-1, 600)), max_size=80),
       st.sampled_from([1.0, 30.0]), st.sampled_from([2, 5, 100_000]))
def test_streaming_equals_kept_on_mutated_messages(
        picks: list[tuple[int, int, int, int, int]], timeout: float, max_pending: int) -> None:
    feeds: list[Feed] = []
    now = 0.0
    for index, msg_id, step, byte, where in picks:
        _ts, src, sport, dst, dport, payload = ALL[index]
        payload = msg_id.to_bytes(2, "big") + payload[2:]
        if 0 <= where < len(payload):
            payload = payload[:where] + bytes([byte]) + payload[where + 1:] if byte % 2 else payload[:where]
        now += step / 8
        feeds.append((now, src, sport, dst, dport, payload))
    kept = DNSTracker(timeout, max_pending)
    for f in feeds:
        kept.feed(*f)
    listed = kept.finish()
    tr, got, returned = _run(feeds, pending_timeout=timeout, max_pending=max_pending)
    assert returned == [] and sorted(got, key=lambda t: t.ts) == listed and tr.weird == kept.weird
    grown = NameMap()
    for t in got:
        grown.add(t)
    built = NameMap(listed)
    for t in listed:
        for addr in (*t.addresses, *t.hint_addresses):
            assert grown.all_for(t.client_ip, addr) == built.all_for(t.client_ip, addr)
