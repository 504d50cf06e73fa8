"""Issue 13: every per-flow verdict rule (analyzer/diagnosis/verdicts.py, paths.py) tested directly.

One row per branch: the facts a rule reads, changed one at a time from an ordinary connection
(tests/factories.py), and the verdict, reset_by and reason words that must follow.
"""

from __future__ import annotations

from typing import Any

import factories as F
import pytest

from analyzer.diagnosis.model import Verdict
from analyzer.diagnosis.paths import PathBaselines, closer_than_server, hops, initial_ttl
from analyzer.diagnosis.verdicts import judge_flow, judge_reset, payload_cut, server_side_missing
from analyzer.flows.records import IcmpError, Side
from analyzer.inspect import NTPFacts

END = F.T0 + 60  # the capture went on for a minute: silence was awaited
NO_SERVER = dict(packets=0, ip_bytes=0, payload_bytes=0, zeek_bytes=0, first_ts=None, last_ts=None, ttls=(),
                 syn_ts=None, syn_count=0, syn_ttl=None, fin_ts=None, first_data_ts=None, state="INACTIVE")


def judge(facts: Any, baselines: PathBaselines | None = None, end: float = END) -> Any:
    return judge_flow(facts, baselines or PathBaselines({}, F.Counter()), end)


def icmp(reporter: str, ttl: int = 64, type_: int = 3, code: int = 3) -> IcmpError:
    return IcmpError(F.T0 + 0.01, type_, code, reporter, ttl, Side.CLIENT, 0, 0)


# -- TCP: no SYN-ACK ----------------------------------------------------------------------------------

def test_unanswered_syns_are_no_response() -> None:
    j = judge(F.facts(F.unanswered_syn(syns=3)))
    assert j.verdict is Verdict.NO_RESPONSE and "3 SYNs" in j.reason and "never answered" in j.reason


def test_a_syn_the_capture_ends_right_after_is_incomplete() -> None:
    r = F.unanswered_syn(syns=1, open_at_end=True, ts_end=F.T0 + 0.2)
    assert judge(F.facts(r), end=F.T0 + 0.5).verdict is Verdict.INCOMPLETE
    assert judge(F.facts(r), end=F.T0 + 5).verdict is Verdict.NO_RESPONSE  # the silence was seen


@pytest.mark.parametrize(("ttl", "reset_by"), [(63, "server"), (64, "middlebox")])
def test_a_rst_answering_the_syn_is_refused_by_whoever_made_it(ttl: int, reset_by: str) -> None:
    # The Apple servers of this capture are 1 hop away (TTL 63): a RST at 64 came from nearer.
    base = PathBaselines({}, F.Counter({1: 3}))
    j = judge(F.facts(F.refused_syn(ttl=ttl)), base)
    assert j.verdict is Verdict.REFUSED and j.reset_by == reset_by


@pytest.mark.parametrize(("reporter", "ttl", "reset_by"), [
    ("10.0.0.1", 64, "middlebox"),  # a router on the path refused
    (F.SERVER, 63, "server"),  # the server's own port unreachable, from its distance
    (F.SERVER, 64, "middlebox"),  # in the server's name, but from nearer than the server is
])
def test_icmp_unreachable_is_refused_by_the_reporter(reporter: str, ttl: int, reset_by: str) -> None:
    r = F.unanswered_syn(icmp_errors=(icmp(reporter, ttl),), icmp_error_total=1)
    base = PathBaselines({F.SERVER: F.Counter({63: 2})}, F.Counter({1: 2}))
    j = judge(F.facts(r), base)
    assert j.verdict is Verdict.REFUSED and j.reset_by == reset_by and "unreachable" in j.reason


def test_a_client_that_gave_up_at_once_is_incomplete() -> None:
    r = F.unanswered_syn(syns=1, rsts=(F.rst(sender=Side.CLIENT),), rst_total=1)
    assert judge(F.facts(r)).verdict is Verdict.INCOMPLETE


def test_only_the_clients_side_captured_is_incomplete_not_no_response() -> None:
    r = F.record(synack_ts=None, server_side=NO_SERVER, client_side=dict(packets=6, syn_count=1))
    assert server_side_missing(r)
    j = judge(F.facts(r))
    assert j.verdict is Verdict.INCOMPLETE and "not in the capture" in j.reason


def test_a_midstream_connection_is_incomplete() -> None:
    r = F.record(history="DdA", truncated_start=True)
    assert judge(F.facts(r)).verdict is Verdict.INCOMPLETE


# -- TCP: after the handshake ----------------------------------------------------------------------------

def test_data_both_ways_is_ok() -> None:
    j = judge(F.facts(F.record()))
    assert j.verdict is Verdict.OK and j.reason == "TCP exchange completed"


def test_a_server_reset_after_its_data_is_still_ok() -> None:
    r = F.record(rsts=(F.rst(),), rst_total=1)
    assert judge(F.facts(r)).verdict is Verdict.OK


@pytest.mark.parametrize(("ttl", "after", "reset_by"), [(63, 0, "server"), (64, 0, "middlebox"), (63, 3, "middlebox")])
def test_a_reset_after_the_client_hello(ttl: int, after: int, reset_by: str) -> None:
    r = F.record(rsts=(F.rst(ttl=ttl, packets_after=after),), rst_total=1,
                 server_side=dict(payload_bytes=0, syn_ttl=63, ttls=((63, 1), (ttl, 1))))
    j = judge(F.facts(r, tls_facts=F.tls(version=None, established=False, has_server_hello=False)))
    assert j.verdict is Verdict.RESET and j.reset_by == reset_by and "after the ClientHello" in j.reason


def test_a_client_hello_never_answered_is_no_response() -> None:
    r = F.record(server_side=dict(payload_bytes=0), client_side=dict(retransmissions=2))
    j = judge(F.facts(r, tls_facts=F.tls(version=None, established=False, has_server_hello=False)))
    assert j.verdict is Verdict.NO_RESPONSE and "retransmitted 2 times" in j.reason


def test_a_client_hello_the_capture_ends_right_after_is_incomplete() -> None:
    r = F.record(server_side=dict(payload_bytes=0), open_at_end=True)
    t = F.tls(version=None, established=False, has_server_hello=False, client_hello_ts=F.T0 + 0.02)
    assert judge(F.facts(r, tls_facts=t), end=F.T0 + 0.5).verdict is Verdict.INCOMPLETE
    assert judge(F.facts(r, tls_facts=t), end=F.T0 + 10).verdict is Verdict.NO_RESPONSE


@pytest.mark.parametrize(("from_client", "who"), [(False, "server"), (True, "client")])
def test_a_fatal_alert_fails_the_handshake(from_client: bool, who: str) -> None:
    t = F.tls(version=None, established=False, alert=F.alert("handshake_failure", from_client))
    j = judge(F.facts(F.record(), tls_facts=t))
    assert j.verdict is Verdict.TLS_FAILED and j.alert == f"{who}:handshake_failure"


def test_an_alert_inferred_from_its_size_fails_the_handshake() -> None:
    t = F.tls(established=False, alert=F.alert("", True, encrypted=True, inferred=True))
    j = judge(F.facts(F.record(), tls_facts=t))
    assert j.verdict is Verdict.TLS_FAILED and j.alert == "client:encrypted_alert"


def test_established_tls_is_ok_with_its_version() -> None:
    j = judge(F.facts(F.record(), tls_facts=F.tls()))
    assert j.verdict is Verdict.OK and j.reason.startswith("TLSv13 established")


@pytest.mark.parametrize(("status", "verdict"), [(200, Verdict.OK), (403, Verdict.REFUSED), (407, Verdict.REFUSED)])
def test_a_proxy_connect_answer(status: int, verdict: Verdict) -> None:
    h = F.http("CONNECT", "gs.apple.com:443", host="gs.apple.com:443", status=status)
    r = F.record(F.CLIENT, "10.0.0.1", sport=3128)
    j = judge(F.facts(r, http_facts=h))
    assert j.verdict is verdict
    if verdict is Verdict.REFUSED:
        assert f"with {status}" in j.reason


def test_a_proxy_that_never_answers_connect_is_no_response() -> None:
    h = F.http("CONNECT", "gs.apple.com:443", host="gs.apple.com:443")
    r = F.record(F.CLIENT, "10.0.0.1", sport=3128, server_side=dict(payload_bytes=0))
    assert judge(F.facts(r, http_facts=h)).verdict is Verdict.NO_RESPONSE


def test_a_snaplen_cut_payload_cannot_be_judged() -> None:
    r = F.record(weirds=(("truncated_tcp_payload", 3),))
    assert payload_cut(r)
    assert judge(F.facts(r)).verdict is Verdict.INCOMPLETE


# -- UDP ---------------------------------------------------------------------------------------------

def _udp(**kw: Any) -> Any:
    return F.record(proto=17, sport=123, **kw)


def test_ntp_answered_is_ok_with_its_stratum() -> None:
    j = judge(F.facts(_udp(), ntp=NTPFacts(1, 1, 2, None)))
    assert j.verdict is Verdict.OK and "stratum 2" in j.reason


def test_ntp_unanswered_is_no_response() -> None:
    r = _udp(server_side=NO_SERVER, client_side=dict(packets=2))
    j = judge(F.facts(r, ntp=NTPFacts(2, 0, None, None)))
    assert j.verdict is Verdict.NO_RESPONSE and "2 NTP requests" in j.reason


def test_a_udp_request_the_capture_ends_right_after_is_incomplete() -> None:
    r = _udp(server_side=NO_SERVER, client_side=dict(packets=1, last_ts=F.T0 + 0.1), open_at_end=True)
    assert judge(F.facts(r, ntp=NTPFacts(1, 0, None, None)), end=F.T0 + 0.5).verdict is Verdict.INCOMPLETE


def test_a_udp_port_unreachable_from_a_router_is_refused() -> None:
    r = _udp(server_side=NO_SERVER, icmp_errors=(icmp("10.0.0.1"),), icmp_error_total=1)
    j = judge(F.facts(r, ntp=NTPFacts(1, 0, None, None)))
    assert j.verdict is Verdict.REFUSED and j.reset_by == "middlebox"


def test_any_answer_on_other_udp_is_ok() -> None:
    assert judge(F.facts(F.record(proto=17, sport=4500))).verdict is Verdict.OK


# -- paths: TTLs and hops --------------------------------------------------------------------------------

@pytest.mark.parametrize(("ttl", "initial", "n"), [(1, 32, 31), (32, 32, 0), (33, 64, 31), (63, 64, 1), (64, 64, 0),
                                                   (65, 128, 63), (128, 128, 0), (200, 255, 55), (255, 255, 0)])
def test_hops_from_the_nearest_initial_ttl(ttl: int, initial: int, n: int) -> None:
    assert initial_ttl(ttl) == initial and hops(ttl) == n


def test_closer_than_the_servers_own_synack() -> None:
    ev = closer_than_server(64, F.SERVER, PathBaselines({}, F.Counter()), own_synack_ttl=52)
    assert ev and "own SYN-ACK TTL 52" in ev[0]
    assert closer_than_server(52, F.SERVER, PathBaselines({}, F.Counter()), own_synack_ttl=52) == []


def test_closer_than_the_servers_usual_ttl_in_other_flows() -> None:
    base = PathBaselines({F.SERVER: F.Counter({52: 4})}, F.Counter())
    ev = closer_than_server(64, F.SERVER, base, None)
    assert ev and "usual TTL 52" in ev[0]


def test_closer_than_apple_servers_overall() -> None:
    base = PathBaselines({}, F.Counter({12: 5}))
    assert "nearer than the Apple servers" in closer_than_server(60, F.SERVER, base, None)[0]
    assert closer_than_server(50, F.SERVER, base, None) == []  # 14 hops: farther, not nearer


def test_zero_hops_for_a_public_address_is_the_local_segment() -> None:
    assert "0 hops" in closer_than_server(64, "17.0.0.1", PathBaselines({}, F.Counter()), None)[0]
    assert closer_than_server(64, "10.0.0.9", PathBaselines({}, F.Counter()), None) == []  # a LAN host is 0 hops


def test_a_reset_faster_than_the_round_trip_is_a_middleboxs() -> None:
    r = F.record(rtt_syn_synack=0.040)
    who, ev = judge_reset(r, F.rst(ttl=63, since_peer=0.001), PathBaselines({}, F.Counter()))
    assert who == "middlebox" and any("faster than" in e for e in ev)
    who, _ = judge_reset(r, F.rst(ttl=63, since_peer=0.039), PathBaselines({}, F.Counter()))
    assert who == "server"


def test_baselines_keep_only_genuine_answered_servers() -> None:
    answered = F.record(server_side=dict(syn_ttl=52))
    unanswered = F.unanswered_syn()
    b = PathBaselines.build([(answered, True, True), (unanswered, True, True),
                             (F.record(server_side=dict(syn_ttl=64)), True, False)])
    assert b.server_ttl(F.SERVER) == 52 and b.usual_apple_hops() == 12


# -- the rest of the TCP story -----------------------------------------------------------------------------

def test_icmpv6_unreachable_is_refused() -> None:
    r = F.unanswered_syn("2001:db8::2", "2620:149:a44::10",
                         icmp_errors=(icmp("2001:db8::1", ttl=64, type_=1, code=4),), icmp_error_total=1)
    j = judge(F.facts(r))
    assert j.verdict is Verdict.REFUSED and j.reset_by == "middlebox" and "ICMPv6" in j.reason


def test_an_icmpv4_type_that_is_not_unreachable_does_not_refuse() -> None:
    r = F.unanswered_syn(icmp_errors=(icmp("10.0.0.1", type_=11, code=0),), icmp_error_total=1)  # time exceeded
    assert judge(F.facts(r)).verdict is Verdict.NO_RESPONSE


def test_an_inferred_alert_in_a_snaplen_cut_stream_claims_no_failure() -> None:
    r = F.record(weirds=(("truncated_tcp_payload", 2),))
    t = F.tls(established=False, alert=F.alert("", True, encrypted=True, inferred=True))
    j = judge(F.facts(r, tls_facts=t))
    assert j.verdict is Verdict.INCOMPLETE and "snaplen" in j.reason


def test_a_reset_after_the_server_hello_is_during_the_exchange() -> None:
    r = F.record(rsts=(F.rst(ttl=63),), rst_total=1, server_side=dict(payload_bytes=900))
    t = F.tls(version=None, established=False)
    j = judge(F.facts(r, tls_facts=t))
    assert j.verdict is Verdict.RESET and "during the exchange" in j.reason and j.reset_by == "server"


@pytest.mark.parametrize(("kw", "verdict", "words"), [
    (dict(server_side=dict(payload_bytes=0)), Verdict.OK, "opened and closed"),
    (dict(server_side=dict(payload_bytes=0, fin_ts=None), open_at_end=True), Verdict.INCOMPLETE, "before the server"),
    (dict(server_side=dict(payload_bytes=0, fin_ts=None), rsts=(F.rst(sender=Side.CLIENT),), rst_total=1),
     Verdict.OK, "closed by the client"),
    (dict(server_side=dict(payload_bytes=0, fin_ts=None)), Verdict.OK, "handshake completed"),
])
def test_a_handshake_without_server_data(kw: dict[str, Any], verdict: Verdict, words: str) -> None:
    j = judge(F.facts(F.record(**kw)))
    assert j.verdict is verdict and words in j.reason, j.reason
