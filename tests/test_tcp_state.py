"""Zeek's endpoint state machine, history letters and conn_state, on crafted segments.

Each expectation is derived from the Zeek code paths named in analyzer/flows/tcp.py
(UpdateInactiveState, UpdateSYN_SentState, UpdateEstablishedState, ...), not
read back from our output.
"""

from __future__ import annotations

import collections

import pytest
from test_flows import Conv, feed

from analyzer.capture.decode import Packet
from analyzer.flows import EndReason, FlowConfig, FlowRecord, conn_state, udp_conn_state
from analyzer.flows.reassembly import StreamReassembler
from analyzer.flows.tcp import (
    CLOSED,
    ESTABLISHED,
    INACTIVE,
    PARTIAL,
    RESET,
    SYN_ACK_SENT,
    SYN_SENT,
    EndpointState,
    TCPEndpoint,
    TCPSession,
    seq_delta,
)


def one(pkts: list) -> FlowRecord:  # type: ignore[type-arg]
    recs, _ = feed(pkts)
    assert len(recs) == 1, [(r.history, r.conn_state) for r in recs]
    return recs[0]


def handshake(conv: Conv) -> list:  # type: ignore[type-arg]
    return [conv.c("S"), conv.s("SA"), conv.c("A")]


# --- one crafted connection per conn_state ---------------------------------------------


def test_s0_attempt_without_reply() -> None:
    c = Conv()
    r = one([c.c("S")])
    assert (r.conn_state, r.history) == ("S0", "S")
    assert (r.client.state, r.server.state) == ("SYN_SENT", "INACTIVE")


def test_s1_established_not_terminated() -> None:
    c = Conv()
    r = one(handshake(c))
    assert (r.conn_state, r.history) == ("S1", "ShA")
    assert (r.client.state, r.server.state) == ("ESTABLISHED", "ESTABLISHED")
    assert r.open_at_end


def test_sf_normal_close() -> None:
    c = Conv()
    r = one(
        handshake(c)
        + [
            c.c("PA", b"GET / HTTP/1.1\r\n\r\n"),
            c.s("A"),
            c.s("PA", b"HTTP/1.1 200 OK\r\n\r\n"),
            c.c("A"),
            c.c("FA"),
            c.s("FA"),
            c.c("A"),
        ]
    )
    # S h A, D (request), a (pure ACK), d (answer), F, f.
    assert (r.conn_state, r.history) == ("SF", "ShADadFf")
    assert (r.client.zeek_bytes, r.server.zeek_bytes) == (18, 19)
    assert r.end_reason is EndReason.END_OF_CAPTURE and not r.open_at_end  # closed, linger pending


def test_rej_rejected_syn() -> None:
    c = Conv()
    r = one([c.c("S"), c.s("RA")])
    assert (r.conn_state, r.history) == ("REJ", "Sr")
    (rst,) = r.rsts
    assert rst.sender.value == "server" and rst.ack == 1001


def test_s2_originator_close_unanswered() -> None:
    c = Conv()
    r = one(handshake(c) + [c.c("FA")])
    assert (r.conn_state, r.history) == ("S2", "ShAF")


def test_s3_responder_close_unanswered() -> None:
    c = Conv()
    r = one(handshake(c) + [c.s("FA")])
    assert (r.conn_state, r.history) == ("S3", "ShAf")


def test_rsto_originator_abort() -> None:
    c = Conv()
    r = one(handshake(c) + [c.c("RA")])
    assert (r.conn_state, r.history) == ("RSTO", "ShAR")


def test_rstr_responder_reset() -> None:
    c = Conv()
    # The typical SNI filter: reset right after the ClientHello ("ShADr").
    r = one(handshake(c) + [c.c("PA", b"\x16\x03\x01\x00\x05hello"), c.s("RA")])
    assert (r.conn_state, r.history) == ("RSTR", "ShADr")
    (rst,) = r.rsts
    assert rst.seq_at_next is True and rst.seq_at_peer_ack is True
    assert rst.since_peer == pytest.approx(0.01)


def test_rstos0_syn_then_rst() -> None:
    c = Conv()
    r = one([c.c("S"), c.c("R")])
    assert (r.conn_state, r.history) == ("RSTOS0", "SR")


def test_rstrh_synack_then_rst_without_syn() -> None:
    c = Conv()
    r = one([c.s("SA"), c.s("R")])
    # The SYN-ACK came first: its receiver is the client ('^'), the responder sent h, r.
    assert (r.conn_state, r.history) == ("RSTRH", "^hr")
    assert r.flipped and r.truncated_start


def test_sh_syn_then_fin() -> None:
    c = Conv()
    r = one([c.c("S"), c.c("F")])
    assert (r.conn_state, r.history) == ("SH", "SF")
    assert dict(r.weirds)["inappropriate_FIN"] == 1


def test_shr_synack_then_fin() -> None:
    c = Conv()
    r = one([c.s("SA"), c.s("FA")])
    assert (r.conn_state, r.history) == ("SHR", "^hf")


def test_oth_midstream() -> None:
    c = Conv()
    r = one([c.c("A", seq=5000, ack=9000), c.s("A", seq=9000, ack=5000)])
    assert (r.conn_state, r.history) == ("OTH", "Aa")
    assert (r.client.state, r.server.state) == ("PARTIAL", "PARTIAL")
    assert r.truncated_start and not r.flipped


def test_conn_state_function_table() -> None:
    # Straight from main.zeek's conn_state(), including REJ for two resets with no bytes.
    assert conn_state(RESET, RESET, 0, 0, "SRr") == "REJ"
    assert conn_state(RESET, RESET, 5, 0, "ShADRr") == "RSTR"
    assert conn_state(ESTABLISHED, RESET, 0, 0, "") == "RSTR"
    assert conn_state(PARTIAL, RESET, 0, 0, "") == "RSTRH"
    assert conn_state(RESET, INACTIVE, 0, 0, "^SR") == "RSTOS0"
    assert conn_state(RESET, INACTIVE, 0, 0, "SaR") == "RSTOS0"
    assert conn_state(RESET, INACTIVE, 0, 0, "SaFR") == "OTH"  # zeek: conn_state-RST-behavior
    assert conn_state(RESET, INACTIVE, 0, 0, "R") == "OTH"
    assert conn_state(RESET, PARTIAL, 0, 0, "SAR") == "OTH"
    assert conn_state(RESET, ESTABLISHED, 0, 0, "") == "RSTO"
    assert conn_state(SYN_ACK_SENT, INACTIVE, 0, 0, "H") == "OTH"
    assert conn_state(SYN_SENT, PARTIAL, 0, 0, "") == "OTH"
    assert conn_state(INACTIVE, INACTIVE, 0, 0, "") == "OTH"
    assert udp_conn_state(True, True) == "SF"
    assert udp_conn_state(True, False) == "S0"
    assert udp_conn_state(False, True) == "SHR"
    assert udp_conn_state(False, False) == "OTH"
    assert [s.name for s in EndpointState] == [
        "INACTIVE",
        "SYN_SENT",
        "SYN_ACK_SENT",
        "PARTIAL",
        "ESTABLISHED",
        "CLOSED",
        "RESET",
    ]


# --- history letters --------------------------------------------------------------------


def test_a_and_d_are_recorded_once_per_direction() -> None:
    c = Conv()
    pkts = handshake(c)
    for i in range(5):
        pkts += [c.c("PA", b"x" * 10), c.s("A"), c.s("PA", b"y" * 10), c.c("A")]
    r = one(pkts)
    assert r.history == "ShADad"


def test_syn_repeats_only_with_a_new_sequence_number() -> None:
    c = Conv()
    syn = c.c("S")
    again = c.c("S", seq=1000)  # the same ISN: a retransmission, no new letter
    r = one([syn, again, c.s("SA")])
    assert r.history == "Sh"
    assert r.client.syn_count == 2 and r.server.syn_count == 1
    # The SYN-ACK answered the last SYN: the RTT is measured from it.
    assert r.rtt_syn_synack == pytest.approx(0.01)
    assert r.syn_ts == syn.ts and r.synack_ts == pytest.approx(syn.ts + 0.02)


def test_fin_and_rst_repeat_when_the_sequence_number_changes() -> None:
    c = Conv()
    pkts = handshake(c) + [c.c("FA")]
    pkts.append(c.c("FA", seq=1001))  # the same FIN again: no letter
    pkts.append(c.c("FA", seq=1005))  # a FIN further on: F again
    r = one(pkts)
    assert r.history == "ShAFF"
    c2 = Conv()
    pkts = handshake(c2) + [c2.s("R", seq=70001), c2.s("R", seq=70001), c2.s("R", seq=70100)]
    r2 = one(pkts)
    assert r2.history == "ShArr" and r2.rst_total == 3 and len(r2.rsts) == 3


def test_retransmissions_are_logarithmic() -> None:
    c = Conv()
    pkts = handshake(c)
    seg = c.c("PA", b"z" * 100)
    pkts.append(seg)
    for n in range(100):
        pkts.append(c.c("PA", b"z" * 100, seq=1001))
    r = one(pkts)
    # T at the 1st, 10th and 100th retransmission.
    assert r.history == "ShADTTT"
    assert r.client.retransmissions == 100


def test_zero_window() -> None:
    c = Conv()
    pkts = handshake(c) + [c.c("PA", b"q" * 10), c.s("A", win=0)]
    pkts += [c.s("A", win=0) for _ in range(9)]
    r = one(pkts)
    assert r.history == "ShADaww"  # the first and the tenth zero window
    assert r.server.zero_windows == 10


def test_zero_window_in_a_reset_is_not_counted() -> None:
    c = Conv()
    r = one(handshake(c) + [c.s("RA", win=0)])
    assert r.history == "ShAr" and r.server.zero_windows == 0


def test_gap_acknowledged_by_the_peer() -> None:
    c = Conv()
    pkts = handshake(c) + [c.c("PA", b"a" * 100)]
    c.c("PA", b"b" * 100)  # lost in the capture
    pkts += [c.c("PA", b"c" * 100), c.s("A")]
    r = one(pkts)
    assert r.history == "ShADaG"  # 'a' before 'G': the ACK is processed before its gap check
    assert r.missed_bytes == 100 and r.client.missed_bytes == 100
    stream = r.client.stream
    assert stream is not None
    assert stream.data == b"a" * 100 and stream.cut_by_gap and stream.gap_bytes == 100
    assert stream.stream_bytes == 300


def test_gaps_in_a_partial_connection_are_not_history() -> None:
    # Zeek reports gaps only when both sides are established (or cleanly closing).
    c = Conv()
    pkts = [c.c("A", b"a" * 10, seq=5000, ack=9000), c.s("A", seq=9000, ack=5020)]
    r = one(pkts)
    assert "G" not in r.history and r.missed_bytes == 0
    assert r.client.stream is not None and r.client.stream.gap_bytes == 10


def test_fin_rst_together_is_inconsistent() -> None:
    c = Conv()
    r = one(handshake(c) + [c.c("FRA")])
    assert r.history == "ShAI"


def test_syn_fin_together_is_multi_flag() -> None:
    c = Conv()
    r = one([c.c("SF")])
    assert r.history == "Q"


def test_bad_checksum_letter_is_logarithmic() -> None:
    o = TCPEndpoint(True, StreamReassembler(100))
    resp = TCPEndpoint(False, StreamReassembler(100), 1)
    s = TCPSession(o, resp)
    for _ in range(10):
        s.bad_checksum(o)
    s.bad_checksum(resp)
    assert s.history_str == "CCc" and s.weird == collections.Counter({"bad_TCP_checksum": 11})


def test_history_cap_ends_with_x() -> None:
    c = Conv()
    pkts = handshake(c)
    pkts += [c.s("R", seq=70001 + i) for i in range(20)]
    recs, table = feed(pkts, FlowConfig(max_history=8))
    (r,) = recs
    assert r.history == "ShArrrrX" and len(r.history) == 8
    assert table.weird["history_truncated"] == 16  # 20 RSTs: 4 letters kept


def test_pending_overflow_marks_analysis_partial() -> None:
    c = Conv()
    pkts = handshake(c)
    for i in range(4):
        pkts.append(c.c("PA", b"p" * 10, seq=1101 + 20 * i))
    r = one(pkts)
    recs, table = feed(pkts, FlowConfig(max_pending_segments=2))
    assert "X" not in r.history
    assert recs[0].history.endswith("X") and table.weird["tcp_pending_full"] == 2


# --- direction and flips ------------------------------------------------------------------


def test_synack_before_syn_flips_once() -> None:
    # SYN-ACK captured before its SYN (two interfaces): flipped at creation (Zeek flips it
    # too: the sender's port 443 is a likely server port). The late SYN leaves the client
    # in SYN_SENT, since the SYN-ACK that would establish it was already processed, so
    # Zeek's conn_state is OTH, not S1; the SYN is no port reuse (its seq is the ISN the
    # SYN-ACK acknowledged).
    c = Conv()
    synack = c.s("SA", ack=1001)
    syn = c.c("S")
    r = one([synack, syn, c.c("A")])
    assert (r.history, r.conn_state) == ("^hSA", "OTH")
    assert (r.client.state, r.server.state) == ("SYN_SENT", "ESTABLISHED")
    assert r.client_port == 50000 and r.flipped


def test_originator_synack_then_syn_reversal_as_zeek() -> None:
    # Zeek's own reversal path (UpdateInactiveState): the originator sent a SYN-ACK and the
    # responder's SYN carries the SYN-ACK's peer ISN: roles flip mid-history ("Hs^").
    a = TCPEndpoint(True, StreamReassembler(100), 0)
    b = TCPEndpoint(False, StreamReassembler(100), 1)
    s = TCPSession(a, b)
    s.packet(a, 0x12, 5000, 1001, 0, 1000, 1.0, b"")
    assert a.state == SYN_ACK_SENT and s.weird is not None and s.weird["connection_originator_SYN_ack"] == 1
    s.packet(b, 0x02, 1000, 0, 0, 1000, 1.1, b"")
    assert s.history_str == "Hs^"
    assert s.orig is b and s.resp is a
    assert (a.state, b.state) == (ESTABLISHED, ESTABLISHED)


def test_port_reuse_after_close_starts_a_new_flow() -> None:
    c = Conv()
    first = handshake(c) + [c.c("FA"), c.s("FA"), c.c("A")]
    c2 = Conv(isn_c=900_000, isn_s=800_000, t0=c.t + 1.0)
    second = handshake(c2)
    recs, table = feed(first + second)
    assert [(r.history, r.conn_state, r.end_reason) for r in recs] == [
        ("ShAFf", "SF", EndReason.REUSED),
        ("ShA", "S1", EndReason.END_OF_CAPTURE),
    ]
    assert table.weird["premature_connection_reuse"] == 1  # within the 5 s linger
    assert recs[0].uid != recs[1].uid


def test_syn_with_a_new_isn_while_unanswered_is_a_new_attempt() -> None:
    c = Conv()
    recs, table = feed([c.c("S"), c.c("S", seq=123456)])
    assert [(r.history, r.end_reason) for r in recs] == [("S", EndReason.REUSED), ("S", EndReason.END_OF_CAPTURE)]
    assert table.weird["SYN_seq_jump"] == 1


def _synack_with(conv: Conv, isn: int) -> Packet:
    """A SYN-ACK carrying `isn` (not the conversation's own), answering the client's SYN."""
    return conv.s("SA", seq=isn)


def test_stale_synack_with_another_isn_after_the_handshake_keeps_the_acked_isn() -> None:
    # The sv-tfo-icloud shape: two backends answer the retransmitted SYNs with different
    # ISNs; the client acks one, then a late copy of the other arrives. Zeek re-bases on
    # it and loses every later byte of the server (gap, missed bytes); Suricata's SYN/ACK
    # queue and Wireshark keep the ISN the client acknowledged.
    c = Conv(isn_s=70_000)
    reply = b"HTTP/1.1 200 OK\r\n\r\n"
    r = one([c.c("S"), c.s("SA"), c.c("A"), c.c("PA", b"GET / HTTP/1.1\r\n\r\n"),
             _synack_with(c, 5_000_000), c.s("PA", reply), c.c("A"),
             _synack_with(c, 5_000_000)])
    assert r.history == "ShADd"
    assert r.missed_bytes == 0 and "G" not in r.history.upper()
    assert r.server.stream is not None and r.server.stream.data == reply
    assert r.server.zeek_bytes == len(reply)
    assert dict(r.weirds)["SYN_seq_jump"] == 2  # Zeek's count: every SYN with another ISN


def test_the_clients_ack_picks_among_synack_isns() -> None:
    # Two SYN-ACKs with different ISNs before the client answers; the client acks the
    # first, so the server's data is numbered from it, not from the latest SYN-ACK.
    c = Conv(isn_s=70_000)
    reply = b"HTTP/1.1 200 OK\r\n\r\n"
    # c.s("SA") carries ISN 70000 (the conversation's own: later segments follow it).
    r = one([c.c("S"), c.s("SA"), _synack_with(c, 9_000_000), c.c("A"), c.c("PA", b"GET / HTTP/1.1\r\n\r\n"),
             c.s("PA", reply), c.c("A")])
    assert r.history == "ShADd" and r.missed_bytes == 0
    assert r.server.stream is not None and r.server.stream.data == reply
    assert r.server.zeek_bytes == len(reply)


def test_a_stale_synack_within_a_megabyte_does_not_move_the_sides_numbers() -> None:
    c = Conv(isn_s=70_000)
    reply = b"HTTP/1.1 200 OK\r\n\r\n"
    r = one([c.c("S"), c.s("SA"), c.c("A"), c.c("PA", b"GET / HTTP/1.1\r\n\r\n"),
             _synack_with(c, 570_000), c.s("PA", reply), c.c("A")])
    assert r.server.zeek_bytes == len(reply) and r.history == "ShADd" and r.server.retransmissions == 0


def test_the_ack_does_not_rebase_a_side_whose_data_is_already_numbered() -> None:
    # TCP Fast Open through two backends: data already came in the latest ISN's numbering
    # when the client's ACK names the other ISN. Re-basing would splice two backends'
    # bytes into one stream; the stream keeps the first numbering, as Zeek's would.
    c = Conv(isn_s=70_000)
    r = one([c.c("S", b"GET / HTTP/1.1\r\n\r\n"), c.s("SA"), _synack_with(c, 9_000_000),
             c.s("PA", b"BACKEND-B", seq=9_000_001, ack=1000 + 1 + 18),
             c.c("A"), c.s("PA", b"BACKEND-A")])
    assert r.server.stream is not None and r.server.stream.data == b"BACKEND-B"


def test_a_synack_with_a_new_isn_before_any_ack_still_rebases_as_zeek_does() -> None:
    # Without an ACK for either, Zeek's rule stands: the latest SYN-ACK's ISN is used.
    c = Conv(isn_s=70_000)
    recs, table = feed([c.c("S"), c.s("SA"), _synack_with(c, 9_000_000)])
    assert table.weird["SYN_seq_jump"] == 1
    assert [r.history for r in recs] == ["Sh"]


def test_syn_after_reset_is_a_new_flow() -> None:
    c = Conv()
    recs, _ = feed([c.c("S"), c.s("RA"), c.c("S", seq=1000)])
    assert [(r.history, r.conn_state) for r in recs] == [("Sr", "REJ"), ("S", "S0")]


def test_seq_delta_is_signed_32_bit() -> None:
    assert seq_delta(5, 3) == 2
    assert seq_delta(3, 5) == -2
    assert seq_delta(2, 0xFFFFFFFF) == 3
    assert seq_delta(0xFFFFFFFF, 2) == -3
    assert (CLOSED, RESET) == (5, 6)


def test_sequence_wraparound() -> None:
    c = Conv(isn_c=0xFFFFFF00, isn_s=0xFFFFFFF0)
    data = bytes(range(256)) * 4
    pkts = handshake(c)
    for i in range(0, len(data), 100):
        pkts += [c.c("PA", data[i : i + 100]), c.s("A")]
    pkts += [c.s("PA", b"r" * 50), c.c("A"), c.c("FA"), c.s("FA"), c.c("A")]
    r = one(pkts)
    assert (r.conn_state, r.history) == ("SF", "ShADadFf")
    assert r.client.stream is not None and r.client.stream.data == data
    assert r.server.stream is not None and r.server.stream.data == b"r" * 50
    assert (r.client.zeek_bytes, r.server.zeek_bytes) == (1024, 50)
    assert r.client.retransmissions == 0 and r.weirds == ()
