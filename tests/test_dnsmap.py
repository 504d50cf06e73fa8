"""DNS transactions: pairing, duplicates, unanswered queries, and the parse memo keyed without the id."""

from __future__ import annotations

import struct

from analyzer.dnsmap import DNSTracker, NameMap


def message(msg_id: int, name: str, response: bool, addr: bytes | None = None) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    flags = 0x8180 if response else 0x0100
    head = struct.pack("!HHHHHH", msg_id, flags, 1, 1 if addr else 0, 0, 0)
    body = labels + struct.pack("!HH", 1, 1)
    if addr:
        body += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + addr
    return head + body


def test_memoised_messages_keep_their_own_ids() -> None:
    tr = DNSTracker()
    for i, msg_id in enumerate((0x1111, 0x2222, 0x3333)):
        ts = 10.0 + i
        tr.feed(ts, "10.0.0.2", 5000 + i, "10.0.0.1", 53, message(msg_id, "gs.apple.com", False))
        tr.feed(ts + 0.01, "10.0.0.1", 53, "10.0.0.2", 5000 + i, message(msg_id, "gs.apple.com", True, bytes([17, 0, 0, 1])))
    done = tr.finish()
    assert [t.id for t in done] == [0x1111, 0x2222, 0x3333]
    assert all(t.rcode == "NOERROR" and t.addresses == ("17.0.0.1",) for t in done)
    assert len(tr._memo) == 2  # one query shape, one response shape, whatever the ids
    assert NameMap(done).lookup("10.0.0.2", "17.0.0.1", 20.0).query == "gs.apple.com"  # type: ignore[union-attr]


def test_duplicate_response_and_unanswered_query() -> None:
    tr = DNSTracker()
    tr.feed(1.0, "10.0.0.2", 5000, "10.0.0.1", 53, message(7, "xp.apple.com", False))
    tr.feed(1.1, "10.0.0.1", 53, "10.0.0.2", 5000, message(7, "xp.apple.com", True, bytes(4)))
    tr.feed(1.2, "10.0.0.1", 53, "10.0.0.2", 5000, message(7, "xp.apple.com", True, bytes(4)))
    tr.feed(2.0, "10.0.0.2", 5001, "10.0.0.1", 53, message(8, "albert.apple.com", False))
    done = tr.finish()
    assert [(t.query, t.rcode) for t in done] == [("xp.apple.com", "NOERROR"), ("albert.apple.com", None)]
    assert tr.weird["dns_duplicate_response"] == 1


def test_malformed_message_is_a_weird_also_when_memoised() -> None:
    tr = DNSTracker()
    bad = message(9, "a.b", False)[:-3]  # cut inside the question
    tr.feed(1.0, "10.0.0.2", 5000, "10.0.0.1", 53, bad)
    tr.feed(1.5, "10.0.0.2", 5000, "10.0.0.1", 53, bytes([0, 10]) + bad[2:])
    assert sum(tr.weird.values()) == 2
    assert tr.finish() == []


def test_retransmitted_queries_are_one_transaction_that_counts_them() -> None:
    # A stub resolver resends an unanswered query with the same id (the lab's dns_no_response
    # shows two copies); tshark lists each copy, we keep one transaction and say how many.
    tr = DNSTracker(pending_timeout=30.0)
    for ts in (1.0, 2.0, 4.0):
        tr.feed(ts, "10.0.0.2", 5000, "10.0.0.1", 53, message(7, "albert.apple.com", False))
    tr.feed(5.0, "10.0.0.2", 5001, "10.0.0.1", 53, message(8, "gs.apple.com", False))
    tr.feed(5.1, "10.0.0.2", 5001, "10.0.0.1", 53, message(8, "gs.apple.com", False))
    tr.feed(5.2, "10.0.0.1", 53, "10.0.0.2", 5001, message(8, "gs.apple.com", True, bytes([17, 0, 0, 1])))
    tr.feed(6.0, "10.0.0.1", 53, "10.0.0.2", 5009, message(9, "xp.apple.com", True, bytes([17, 0, 0, 2])))
    done = tr.finish()
    assert [(t.query, t.ts, t.rcode, t.queries) for t in done] == [
        ("albert.apple.com", 1.0, None, 3),  # the wait began at the first copy
        ("gs.apple.com", 5.0, "NOERROR", 2),
        ("xp.apple.com", 6.0, "NOERROR", 0),  # an answer to a query the capture does not hold
    ]


def test_no_response_evidence_says_how_often_the_client_asked() -> None:
    from analyzer.catalogue import load_catalogue
    from analyzer.catalogue.matcher import Matcher
    from analyzer.diagnosis.dns import judge_dns

    tr = DNSTracker()
    for ts in (1.0, 3.0):
        tr.feed(ts, "10.0.0.2", 5000, "10.0.0.1", 53, message(7, "albert.apple.com", False))
    (t,) = tr.finish()
    j = judge_dns(t, Matcher(load_catalogue()), ())
    assert j.verdict.value == "no_response" and j.reason == "no answer from 10.0.0.1 (asked 2 times)"


def test_a_query_past_the_timeout_is_unanswered_whatever_else_the_tracker_saw() -> None:
    # Whether a late answer pairs must not depend on when the periodic sweep ran, which
    # depends on the other packets a process sees (-j N gives each worker a part of them).
    def run(extra: bool) -> list[tuple[str, float, str | None, int]]:
        tr = DNSTracker(pending_timeout=30.0)
        tr.feed(0.0, "10.0.0.2", 5000, "10.0.0.1", 53, message(7, "gs.apple.com", False))
        if extra:  # unrelated traffic that makes the sweep run at 31 s, before the answer
            tr.feed(31.0, "10.0.0.3", 6000, "10.0.0.1", 53, message(8, "xp.apple.com", False))
        tr.feed(40.0, "10.0.0.1", 53, "10.0.0.2", 5000, message(7, "gs.apple.com", True, bytes([17, 0, 0, 1])))
        tr.feed(41.0, "10.0.0.2", 5001, "10.0.0.1", 53, message(9, "gs.apple.com", False))
        tr.feed(75.0, "10.0.0.2", 5001, "10.0.0.1", 53, message(9, "gs.apple.com", False))  # a new wait
        return [(t.query, t.ts, t.rcode, t.queries) for t in tr.finish() if t.query == "gs.apple.com"]

    assert run(False) == run(True) == [
        ("gs.apple.com", 0.0, None, 1),  # unanswered: the answer came 40 s later
        ("gs.apple.com", 40.0, "NOERROR", 0),  # an answer to no (live) query
        ("gs.apple.com", 41.0, None, 1),
        ("gs.apple.com", 75.0, None, 1),  # 34 s after the first copy: a query of its own
    ]
