"""Sharding a capture's flows over processes: the shard read off raw bytes is the decoded packet's.

`apple-net flows -j N` is checked record for record against one process in
tests/test_cli_flows.py; this checks the two shard functions agree frame by
frame on every fixture capture, and that both directions of a flow (and ICMP
errors about it) land in one shard.
"""

from __future__ import annotations

import pytest
from helpers_pcap import FIXTURE_CAPTURES, SAMPLE

from analyzer.capture.decode import decode
from analyzer.capture.reader import open_capture
from analyzer.engine import raw_shard, shard_of

CAPTURES = [*FIXTURE_CAPTURES, SAMPLE]


def test_raw_shard_agrees_with_the_decoded_packet() -> None:
    fast = slow = 0
    for path in CAPTURES:
        for raw in open_capture(path):
            pkt = decode(raw)
            quick = raw_shard(raw, 7)
            if quick is None:
                slow += 1
                continue
            fast += 1
            if pkt is not None:
                assert quick == shard_of(pkt, 7), (path, raw.ts)
    assert fast > 2000 and slow > 200  # both paths are exercised


@pytest.mark.parametrize("n", [2, 3, 5])
def test_both_directions_and_icmp_errors_share_a_shard(n: int) -> None:
    by_flow: dict[tuple[object, ...], set[int]] = {}
    icmp_checked = 0
    for path in CAPTURES:
        for raw in open_capture(path):
            pkt = decode(raw)
            if pkt is None:
                continue
            if pkt.proto in (6, 17):
                ends = sorted([(pkt.src, pkt.sport), (pkt.dst, pkt.dport)])
                by_flow.setdefault((path, *ends, pkt.proto), set()).add(shard_of(pkt, n))
            elif pkt.icmp is not None and pkt.icmp.quoted is not None and pkt.icmp.quoted.proto in (6, 17):
                q = pkt.icmp.quoted
                ends = sorted([(q.src, q.sport), (q.dst, q.dport)])
                key = (path, *ends, q.proto)
                if key in by_flow:
                    icmp_checked += 1
                    by_flow[key].add(shard_of(pkt, n))
    assert all(len(s) == 1 for s in by_flow.values())
    assert len({next(iter(s)) for s in by_flow.values()}) == n  # flows do spread over every shard
    assert icmp_checked > 0
