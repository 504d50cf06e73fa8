"""StreamReassembler: order, retransmission, overlap, reordering, gaps, cap, bounds."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.flows.reassembly import EMPTY_STREAM, StreamReassembler

DATA = bytes(range(256)) * 40  # 10240 distinct-looking bytes


def test_in_order_segments_and_their_times() -> None:
    r = StreamReassembler(cap=1 << 20)
    r.data(0, DATA[:100], 1.0)
    r.data(100, DATA[100:300], 2.0)
    r.data(300, DATA[300:301], 3.0)
    res = r.result()
    assert res.data == DATA[:301]
    assert res.segments == ((0, 1.0), (100, 2.0), (300, 3.0))
    assert res.stream_bytes == 301
    assert not res.cut_by_cap and not res.cut_by_gap
    assert res.gaps == 0 and res.gap_bytes == 0
    assert res.overlap_conflicts == 0 and res.pending_bytes == 0
    assert not res.segments_truncated


def test_empty_direction_is_the_shared_empty_result() -> None:
    r = StreamReassembler(cap=1000)
    assert r.result() is EMPTY_STREAM
    assert EMPTY_STREAM.data == b"" and EMPTY_STREAM.segments == () and EMPTY_STREAM.stream_bytes == 0


def test_identical_retransmission_is_ignored() -> None:
    r = StreamReassembler(cap=1000)
    r.data(0, DATA[:50], 1.0)
    r.data(0, DATA[:50], 2.0)
    r.data(20, DATA[20:80], 3.0)  # half old, half new
    res = r.result()
    assert res.data == DATA[:80]
    assert res.segments == ((0, 1.0), (50, 3.0))
    assert res.overlap_conflicts == 0


def test_conflicting_retransmission_first_copy_wins() -> None:
    r = StreamReassembler(cap=1000)
    r.data(0, b"hello world", 1.0)
    r.data(6, b"WORLD!!", 2.0)  # overlaps "world" with other bytes, adds "!!"
    res = r.result()
    assert res.data == b"hello world!!"
    assert res.overlap_conflicts == 1


def test_reordering_waits_for_the_hole() -> None:
    r = StreamReassembler(cap=1000)
    r.data(10, DATA[10:20], 1.0)
    r.data(30, DATA[30:40], 2.0)
    assert r.prefix() == b"" and r.next_off == 0
    assert r.pending_bytes == 20
    r.data(0, DATA[:10], 3.0)
    assert r.prefix() == DATA[:20]
    r.data(20, DATA[20:30], 4.0)
    res = r.result()
    assert res.data == DATA[:40]
    assert res.segments == ((0, 3.0), (10, 1.0), (20, 4.0), (30, 2.0))
    assert res.pending_bytes == 0 and res.gaps == 0


def test_overlapping_out_of_order_pieces() -> None:
    r = StreamReassembler(cap=1000)
    r.data(20, DATA[20:40], 1.0)
    r.data(10, DATA[10:50], 2.0)  # covers the first piece and extends both ways
    r.data(15, b"\x00" * 10, 3.0)  # conflicts with held bytes
    r.data(0, DATA[:10], 4.0)
    res = r.result()
    assert res.data == DATA[:50]
    assert res.overlap_conflicts == 1


def test_ack_past_a_hole_declares_a_gap_and_freezes_the_prefix() -> None:
    r = StreamReassembler(cap=1000)
    r.data(0, DATA[:10], 1.0)
    r.data(20, DATA[20:30], 2.0)
    assert r.ack(10) == 0  # nothing missing below 10
    holes = r.ack(30)
    assert holes == 1
    res = r.result()
    assert res.data == DATA[:10]
    assert res.cut_by_gap and not res.cut_by_cap
    assert res.gaps == 1 and res.gap_bytes == 10
    assert res.stream_bytes == 30
    # Later data is counted but not stored: it is not contiguous with the prefix.
    r.data(30, DATA[30:40], 3.0)
    assert r.result().data == DATA[:10] and r.next_off == 40


def test_a_late_segment_filling_the_hole_just_declared_is_kept_but_the_gap_stays_counted() -> None:
    # The peer's ACK was captured before the data it acknowledges.
    r = StreamReassembler(cap=1000)
    r.data(0, DATA[:10], 1.0)
    assert r.ack(30) == 1
    r.data(10, DATA[10:40], 2.0)  # covers the hole [10, 30) and goes on
    r.data(40, DATA[40:50], 3.0)
    res = r.result()
    assert res.data == DATA[:50] and not res.cut_by_gap
    assert res.segments == ((0, 1.0), (10, 2.0), (40, 3.0))
    assert (res.gaps, res.gap_bytes, res.stream_bytes) == (1, 20, 50)  # Zeek's count


def test_only_the_next_segment_may_fill_the_hole() -> None:
    r = StreamReassembler(cap=1000)
    r.data(0, DATA[:10], 1.0)
    r.ack(30)
    r.data(30, DATA[30:40], 2.0)  # data after the hole first: the hole is a real loss
    r.data(10, DATA[10:30], 3.0)
    assert r.result().data == DATA[:10] and r.result().cut_by_gap
    # A segment that covers only part of the hole does not fill it either.
    r2 = StreamReassembler(cap=1000)
    r2.ack(20)
    r2.data(5, DATA[5:20], 1.0)
    assert r2.result().data == b"" and r2.result().cut_by_gap


def test_a_late_fill_respects_the_cap() -> None:
    r = StreamReassembler(cap=15)
    r.data(0, DATA[:10], 1.0)
    r.ack(30)
    r.data(10, DATA[10:30], 2.0)
    res = r.result()
    assert res.data == DATA[:15] and res.cut_by_cap and not res.cut_by_gap and res.stream_bytes == 30


def test_ack_beyond_everything_seen() -> None:
    r = StreamReassembler(cap=1000)
    r.data(0, DATA[:10], 1.0)
    assert r.ack(25) == 1
    assert r.gap_bytes == 15 and r.next_off == 25
    # Two holes under one ack count twice.
    r2 = StreamReassembler(cap=1000)
    r2.data(10, DATA[10:20], 1.0)
    r2.data(30, DATA[30:40], 1.0)
    assert r2.ack(50) == 3
    assert r2.gap_bytes == 10 + 10 + 10


def test_cap_cuts_and_keeps_counting() -> None:
    r = StreamReassembler(cap=100)
    r.data(0, DATA[:60], 1.0)
    r.data(60, DATA[60:100], 2.0)  # exactly fills the cap
    assert not r.result().cut_by_cap
    r.data(100, DATA[100:150], 3.0)
    res = r.result()
    assert res.data == DATA[:100]
    assert res.cut_by_cap and not res.cut_by_gap
    assert res.stream_bytes == 150
    assert res.segments == ((0, 1.0), (60, 2.0))
    r.data(150, DATA[150:200], 4.0)
    assert r.next_off == 200 and r.stored == 100


def test_cap_inside_a_segment() -> None:
    r = StreamReassembler(cap=50)
    r.data(0, DATA[:80], 1.0)
    res = r.result()
    assert res.data == DATA[:50] and res.cut_by_cap and res.stream_bytes == 80


def test_pending_beyond_the_cap_holds_no_bytes() -> None:
    r = StreamReassembler(cap=100)
    r.data(50, DATA[50:150], 1.0)  # straddles the cap
    r.data(200, DATA[200:300], 2.0)  # wholly beyond it: range only
    r.data(300, DATA[300:400], 3.0)  # coalesces with the previous range
    assert r.pending_bytes == 300
    r.data(0, DATA[:50], 4.0)
    res = r.result()
    assert res.data == DATA[:100]
    assert res.cut_by_cap
    assert res.stream_bytes == 150  # the hole 150..200 remains
    assert r.ack(400) == 1 and r.gap_bytes == 50 and r.next_off == 400
    assert not r.result().cut_by_gap  # the prefix had already stopped at the cap


def test_pending_list_is_bounded() -> None:
    r = StreamReassembler(cap=100_000, max_pending=4)
    for i in range(10):
        r.data(100 + 20 * i, DATA[100 + 20 * i : 110 + 20 * i], 1.0)
    assert r.pending_dropped == 6
    assert r.pending_bytes == 40


def test_segment_list_is_bounded() -> None:
    r = StreamReassembler(cap=100_000, max_segments=3)
    for i in range(5):
        r.data(i, DATA[i : i + 1], float(i))
    res = r.result()
    assert res.data == DATA[:5]
    assert res.segments == ((0, 0.0), (1, 1.0), (2, 2.0))
    assert res.segments_truncated


def test_zero_cap_stores_nothing() -> None:
    r = StreamReassembler(cap=0)
    r.data(0, DATA[:10], 1.0)
    res = r.result()
    assert res.data == b"" and res.stream_bytes == 10 and res.cut_by_cap


def test_multi_segment_client_hello_comes_out_whole() -> None:
    # A 1756-byte hybrid post-quantum ClientHello (Chrome 125, X25519Kyber768) from the
    # corpus, split as a 1280-byte MTU path would, delivered out of order with a duplicate.
    from test_flows import kyber_client_hello

    hello = kyber_client_hello()
    pieces = [(0, hello[:1228]), (1228, hello[1228:])]
    r = StreamReassembler(cap=256 * 1024)
    r.data(*pieces[1], 2.0)
    r.data(*pieces[1], 2.5)
    r.data(*pieces[0], 3.0)
    assert r.result().data == hello


_chunks = st.lists(st.integers(1, 300), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(_chunks, st.randoms(use_true_random=False), st.integers(0, 3000), st.booleans())
def test_any_arrival_order_yields_the_prefix(sizes: list[int], rnd: random.Random, cap: int, dup: bool) -> None:
    segs = []
    off = 0
    for n in sizes:
        segs.append((off, DATA[off : off + n]))
        off += n
    arrivals = segs + (segs[: len(segs) // 2] if dup else [])
    rnd.shuffle(arrivals)
    r = StreamReassembler(cap=cap)
    for i, (o, chunk) in enumerate(arrivals):
        r.data(o, chunk, float(i))
    res = r.result()
    assert res.data == DATA[: min(off, cap)]
    assert res.stream_bytes == off
    assert res.cut_by_cap == (off > cap)
    assert res.overlap_conflicts == 0 and res.gaps == 0 and res.pending_bytes == 0
    assert [s for s, _ in res.segments] == sorted(s for s, _ in res.segments)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5000), st.binary(max_size=200), st.booleans(), st.integers(0, 6000)),
        max_size=60,
    ),
    st.integers(0, 4000),
)
def test_hostile_input_keeps_invariants(ops: list[tuple[int, bytes, bool, int]], cap: int) -> None:
    r = StreamReassembler(cap=cap, max_segments=16, max_pending=8)
    for off, payload, do_ack, ack in ops:
        r.data(off, payload, 0.0)
        if do_ack:
            r.ack(ack)
        assert r.stored <= cap
        assert r.stored <= r.next_off
    res = r.result()
    assert len(res.data) <= cap and len(res.segments) <= 16
    assert res.gap_bytes >= 0 and res.pending_bytes >= 0


def test_a_late_fill_that_overlaps_the_prefix_with_other_bytes_is_a_conflict() -> None:
    r = StreamReassembler(cap=1000)
    r.data(0, DATA[:10], 1.0)
    r.ack(30)
    r.data(5, b"XXXXX" + DATA[10:30], 2.0)  # starts inside the prefix, with different bytes there
    res = r.result()
    assert res.data == DATA[:30] and res.overlap_conflicts == 1
