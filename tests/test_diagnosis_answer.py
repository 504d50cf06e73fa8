"""Issue 12: the answer an admin reads (status, findings, advice), one rule at a time, outside the lab.

Each test builds the few flow facts that a rule reads (tests/factories.py) and asserts the answer that
follows; a wrong rule fails here without root, namespaces or captures.
"""

from __future__ import annotations

import factories as F
import pytest

from analyzer.diagnosis.clients import Device, Devices, devices_matching
from analyzer.diagnosis.model import Status, Verdict
from analyzer.flows.records import Side

GS4, GS6 = "17.253.1.10", "2620:149:a44::10"
MAC = "02:00:00:00:00:02"


# -- (2) a name that was only looked up is not "working" ------------------------------------------

def test_resolved_but_not_contacted_is_not_seen_not_working() -> None:
    d = F.run([], [F.dns("gs.apple.com", [GS4])])
    r = F.row(d, "gs.apple.com")
    assert r.status is Status.NOT_SEEN
    assert any("resolved, not contacted" in e for e in r.evidence)
    assert "work" not in d.headline.lower() or "no connection" in d.headline.lower()


def test_working_needs_a_connection_that_worked() -> None:
    d = F.run([F.facts(F.record(), tls_facts=F.tls())], [F.dns("gs.apple.com", [GS4])])
    assert F.row(d, "gs.apple.com").status is Status.WORKING
    assert d.headline == "The one Apple service seen works (1 connection)"


# -- (1) dual-stack Macs -----------------------------------------------------------------------------

def _dual_stack(mac: str | None, v6_verdict: str = "dropped") -> F.Diagnosis:
    v6 = F.unanswered_syn("fd00::2", GS6, client_mac=mac) if v6_verdict == "dropped" else \
        F.record("fd00::2", GS6, client_mac=mac)
    v4 = F.record(F.CLIENT, GS4, client_mac=mac)
    dns = [F.dns("gs.apple.com", [GS4]), F.dns("gs.apple.com", [GS6], qtype="AAAA")]
    return F.run([F.facts(v6), F.facts(v4, tls_facts=F.tls())], dns)


def test_dual_stack_flow_keeps_the_name_asked_over_ipv4() -> None:
    d = _dual_stack(MAC)
    (v6,) = [f for f in d.flows if f.facts.flow.ip_version == 6]
    assert v6.attribution.entry is not None and v6.attribution.entry.host == "gs.apple.com"
    assert any("same MAC address" in e and MAC in e for e in v6.judgement.evidence), v6.judgement.evidence
    r = F.row(d, "gs.apple.com")
    assert r.status is Status.DEGRADED and r.clients.tried == 1
    assert not [s for s in d.services if s.entry.host.startswith("2620:149")]


def test_ipv6_advice_names_apples_ipv6_range_not_only_17_8() -> None:
    r = F.row(_dual_stack(MAC), "gs.apple.com")
    assert "2620:149::/32" in r.advice and "443" in r.advice and "IPv6" in r.advice
    assert "17.0.0.0/8" not in r.advice
    assert "fallback to IPv4 works" in r.advice


def test_without_link_evidence_a_lone_v4_and_one_v6_prefix_are_an_inferred_device() -> None:
    d = _dual_stack(None)
    (v6,) = [f for f in d.flows if f.facts.flow.ip_version == 6]
    assert v6.attribution.entry is not None and v6.attribution.entry.host == "gs.apple.com"
    assert any("inferred" in e for e in v6.judgement.evidence)


def test_a_router_mac_with_many_ipv4_clients_ties_nothing() -> None:
    recs = [F.record(f"10.0.0.{i}", GS4, client_mac=MAC) for i in range(2, 6)]
    devices = Devices.build(recs)
    assert devices.of("10.0.0.2").addresses == ("10.0.0.2",) and devices.of("10.0.0.2").tie is None


def test_arp_and_ndp_bindings_tie_addresses_of_one_mac() -> None:
    recs = [F.record(F.CLIENT, GS4), F.record("2001:db8::2", GS6)]
    devices = Devices.build(recs, [(F.CLIENT, MAC), ("2001:db8::2", MAC), ("fe80::2", MAC)])
    dev = devices.of("2001:db8::2")
    assert dev.mac == MAC and dev.addresses == (F.CLIENT, "2001:db8::2", "fe80::2") and dev.tie == "mac"
    assert dev.label == f"{F.CLIENT} ({MAC})"


def test_client_selection_by_mac_cidr_or_address() -> None:
    devices = Devices([Device((F.CLIENT, "2001:db8::2"), MAC, "mac"), Device(("10.0.0.9",))])
    clients = [F.CLIENT, "2001:db8::2", "10.0.0.9"]
    assert [d.mac for d in devices_matching(devices, MAC.upper(), clients)] == [MAC]
    assert [d.addresses for d in devices_matching(devices, "10.0.0.8/31", clients)] == [("10.0.0.9",)]
    assert [d.mac for d in devices_matching(devices, "2001:db8::2", clients)] == [MAC]
    with pytest.raises(ValueError, match="not an IP address"):
        devices_matching(devices, "mac-of-bob", clients)


# -- (4) guilt by association ---------------------------------------------------------------------

def test_a_completed_tls13_flow_with_the_genuine_ttl_is_not_suspected() -> None:
    # A substitute chain on another flow is context, never evidence about this one.
    genuine = F.record(server_side=dict(syn_ttl=63, ttls=((63, 5),)))
    d = F.run([F.facts(genuine, tls_facts=F.tls())])
    (f,) = d.flows
    assert f.judgement.verdict is Verdict.OK and not f.judgement.evidence
    assert not F.kinds(d) & {"possible_tls_interception", "transparent_proxy", "tls_interception"}


def test_path_signals_alone_are_a_transparent_proxy_not_interception() -> None:
    # TTL 64 (0 hops) against the Apple servers' 63, and a ServerHello 200 ms after a 1 ms round trip:
    # a box nearer than the server answers TCP, which a splicing proxy does too.
    near = F.record(rtt_syn_synack=0.001, server_side=dict(syn_ttl=64, ttls=((64, 5),)))
    far = F.record(client=F.CLIENT, server="17.253.1.11", server_side=dict(syn_ttl=63, ttls=((63, 5),)))
    d = F.run([F.facts(near, tls_facts=F.tls(server_hello_ts=F.T0 + 0.22)),
               F.facts(far, tls_facts=F.tls("1-courier.push.apple.com"))])
    assert all(f.judgement.verdict is Verdict.OK for f in d.flows)
    assert "transparent_proxy" in F.kinds(d) and "possible_tls_interception" not in F.kinds(d)
    assert F.row(d, "gs.apple.com").status is Status.WORKING


def test_the_clients_refusal_and_a_nearer_box_together_are_interception() -> None:
    near = F.record(server_side=dict(syn_ttl=64, ttls=((64, 5),)))
    far = F.record(client=F.CLIENT, server="17.253.1.11", server_side=dict(syn_ttl=63, ttls=((63, 5),)))
    refused = F.tls(established=False, alert=F.alert("unknown_ca", from_client=True))
    d = F.run([F.facts(near, tls_facts=refused), F.facts(far, tls_facts=F.tls("1-courier.push.apple.com"))])
    (f,) = [x for x in d.flows if x.facts.flow.server_ip == GS4]
    assert f.judgement.verdict is Verdict.INTERCEPTED and f.judgement.interception is not None
    assert F.row(d, "gs.apple.com").status is Status.INTERCEPTED


def test_the_clients_refusal_alone_is_a_possible_interception_on_its_own_evidence() -> None:
    refused = F.tls(established=False, alert=F.alert("unknown_ca", from_client=True))
    d = F.run([F.facts(F.record(), tls_facts=refused)])
    (f,) = d.flows
    assert f.judgement.verdict is Verdict.TLS_FAILED
    (finding,) = [x for x in d.findings if x.kind == "possible_tls_interception"]
    assert finding.flows == (f.id,) and any("unknown_ca" in e for e in finding.evidence)


# -- (5) captive portals --------------------------------------------------------------------------

def test_a_redirected_connectivity_probe_is_a_captive_portal() -> None:
    probe = F.record(F.CLIENT, "10.0.0.1", sport=80)
    h = F.http(target="/hotspot-detect.html", host="captive.apple.com", status=302, reason="Found",
               headers=[("Location", "http://portal.example/login")])
    d = F.run([F.facts(probe, http_facts=h)], [F.dns("captive.apple.com", ["10.0.0.1"])])
    assert d.portal is not None and d.portal.url == "http://portal.example/login"
    (finding,) = [x for x in d.findings if x.kind == "captive_portal"]
    assert "http://portal.example/login" in finding.message
    assert "dns_sinkhole" not in F.kinds(d)
    r = F.row(d, "captive.apple.com")
    assert r.status is Status.BLOCKED and "portal" in r.advice and "sign" in r.advice
    assert "DNS filter" not in r.advice
    assert d.headline.startswith("Captive portal (http://portal.example/login)")


def test_dns_that_answers_every_name_with_one_local_address_is_a_portal() -> None:
    names = ["gs.apple.com", "captive.apple.com", "www.example.net", "xp.apple.com"]
    d = F.run([], [F.dns(n, ["192.168.4.1"], ts=F.T0 + i) for i, n in enumerate(names)])
    assert d.portal is not None and d.portal.addresses == ("192.168.4.1",)
    assert "captive_portal" in F.kinds(d) and "dns_sinkhole" not in F.kinds(d)
    assert all(x.captive for x in d.dns)


def test_a_dns_filter_sinkholing_some_names_is_not_a_portal() -> None:
    txs = [F.dns("xp.apple.com", ["192.168.4.1"], ts=F.T0), F.dns("a.example", ["192.168.4.1"], ts=F.T0 + 1),
           F.dns("b.example", ["192.168.4.1"], ts=F.T0 + 2), F.dns("gs.apple.com", [GS4], ts=F.T0 + 1.5)]
    d = F.run([], txs)
    assert d.portal is None
    assert "dns_sinkhole" in F.kinds(d)


# -- (6) advice follows the evidence ----------------------------------------------------------------

def test_a_refusal_with_the_servers_own_ttl_does_not_ask_to_open_the_firewall() -> None:
    ok = F.record(F.CLIENT, "17.253.1.11", server_side=dict(syn_ttl=63, ttls=((63, 5),)))
    d = F.run([F.facts(F.refused_syn(ttl=63)), F.facts(ok, tls_facts=F.tls("1-courier.push.apple.com"))],
              [F.dns("gdmf.apple.com", [GS4])])
    (f,) = [x for x in d.flows if x.facts.flow.server_ip == GS4]
    assert f.judgement.verdict is Verdict.REFUSED and f.judgement.reset_by == "server"
    advice = F.row(d, "gdmf.apple.com").advice
    assert "server itself refused" in advice and "Allow" not in advice and "firewall" not in advice


def test_a_refusal_from_a_nearer_box_asks_for_the_firewall_rule() -> None:
    ok = F.record(F.CLIENT, "17.253.1.11", server_side=dict(syn_ttl=63, ttls=((63, 5),)))
    d = F.run([F.facts(F.refused_syn(ttl=64)), F.facts(ok, tls_facts=F.tls("1-courier.push.apple.com"))],
              [F.dns("gdmf.apple.com", [GS4])])
    (f,) = [x for x in d.flows if x.facts.flow.server_ip == GS4]
    assert f.judgement.verdict is Verdict.REFUSED and f.judgement.reset_by == "middlebox"
    advice = F.row(d, "gdmf.apple.com").advice
    assert "Allow TCP 443 to gdmf.apple.com (or 17.0.0.0/8): a firewall on the path rejects it." in advice
    assert "injected_reset" in F.kinds(d)


@pytest.mark.parametrize(("from_client", "words"), [
    (False, ["protocol_version", "at most TLS 1.2", "requires TLS 1.3"]),
    (True, ["protocol_version", "client refuses"]),
])
def test_protocol_version_advice_says_what_each_side_offered(from_client: bool, words: list[str]) -> None:
    t = F.tls(version=None, established=False, has_server_hello=from_client, max_version=0x0303,
              alert=F.alert("protocol_version", from_client=from_client))
    d = F.run([F.facts(F.record(server_side=dict(payload_bytes=7)), tls_facts=t)], [F.dns("gs.apple.com", [GS4])])
    advice = F.row(d, "gs.apple.com").advice
    for w in words:
        assert w in advice, advice


@pytest.mark.parametrize(("status", "port", "words", "absent"), [
    (403, 5223, ["SSL_ports", "acl SSL_ports port 5223", "Safe_ports"], ["authenticate"]),
    (403, 443, ["policy answered 403"], ["SSL_ports"]),
    (407, 443, ["407", "cannot authenticate"], ["SSL_ports"]),
])
def test_connect_refusal_advice(status: int, port: int, words: list[str], absent: list[str]) -> None:
    proxy = F.record(F.CLIENT, "10.0.0.1", sport=3128)
    h = F.http("CONNECT", f"1-courier.push.apple.com:{port}", host=f"1-courier.push.apple.com:{port}",
               status=status, reason="Forbidden")
    d = F.run([F.facts(proxy, http_facts=h)])
    (r,) = [s for s in d.services if s.status is Status.BLOCKED]
    for w in words:
        assert w in r.advice, r.advice
    for w in absent:
        assert w not in r.advice, r.advice


# -- (7) QUIC and UDP 443 ----------------------------------------------------------------------------

def _quic_state(answered: bool, sni: str = "mesu.apple.com") -> object:
    from analyzer.inspect import QUICFacts
    from analyzer.protocols.quic import QUICFlowState
    st = QUICFlowState(version=1, original_dcid=b"\1" * 8, client_scid=b"\2" * 8,
                       server_scid=b"\3" * 8 if answered else None, client_hello=F.client_hello(sni),
                       server_hello=None, server_answered=answered, client_packet_types=frozenset(),
                       server_packet_types=frozenset(), client_one_rtt=False, server_one_rtt=answered, retry=False,
                       version_negotiation=None, connection_close=None, gquic_hello=None, hello_retry_request=False)
    return QUICFacts(st, None)


def test_http3_on_udp_443_for_a_tcp_443_host_is_not_an_undocumented_port() -> None:
    q = F.record(F.CLIENT, "17.253.1.12", proto=17, sport=443)
    d = F.run([F.facts(q, quic=_quic_state(True))], [F.dns("mesu.apple.com", ["17.253.1.12"])])
    assert F.row(d, "mesu.apple.com").status is Status.WORKING
    assert "undocumented_port" not in F.kinds(d)


def test_udp_443_dropped_with_tcp_fallback_is_degraded_and_says_the_fallback_works() -> None:
    q = F.record(F.CLIENT, "17.253.1.12", proto=17, sport=443,
                 server_side=dict(packets=0, ip_bytes=0, payload_bytes=0, ttls=(), first_ts=None, last_ts=None))
    t = F.record(F.CLIENT, "17.253.1.12", ts_start=F.T0 + 1.5, ts_end=F.T0 + 3)
    d = F.run([F.facts(q, quic=_quic_state(False)), F.facts(t, tls_facts=F.tls("mesu.apple.com"))],
              [F.dns("mesu.apple.com", ["17.253.1.12"])])
    r = F.row(d, "mesu.apple.com")
    assert r.status is Status.DEGRADED
    assert "fallback to TCP 443 works" in r.advice and "UDP 443" in r.advice
    assert "undocumented_port" not in F.kinds(d)


def test_private_relay_blocked_is_reported_as_maybe_intended() -> None:
    q = F.record(F.CLIENT, "17.253.1.30", proto=17, sport=443,
                 server_side=dict(packets=0, ip_bytes=0, payload_bytes=0, ttls=(), first_ts=None, last_ts=None))
    d = F.run([F.facts(q, quic=_quic_state(False, "mask.icloud.com")), F.facts(F.unanswered_syn(F.CLIENT, "17.253.1.31"))],
              [F.dns("mask.icloud.com", ["17.253.1.30"]), F.dns("mask-h2.icloud.com", ["17.253.1.31"])])
    (finding,) = [x for x in d.findings if x.kind == "private_relay_unavailable"]
    assert finding.severity.value == "info" and "may be intended" in finding.message
    assert "service_blocked" not in F.kinds(d) and "blocked_port" not in F.kinds(d)
    assert "Private Relay unavailable" in d.headline and "blocked" not in d.headline


# -- several Macs in one capture ----------------------------------------------------------------------

def test_service_rows_count_clients_and_name_the_failed_ones() -> None:
    flows = [F.facts(F.record(f"10.0.0.{i}", GS4), tls_facts=F.tls()) for i in (2, 3, 4)]
    flows.append(F.facts(F.unanswered_syn("10.0.0.9", GS4)))
    d = F.run(flows, [F.dns("gs.apple.com", [GS4], client=f"10.0.0.{i}") for i in (2, 3, 4, 9)])
    r = F.row(d, "gs.apple.com")
    assert r.status is Status.DEGRADED
    assert (r.clients.tried, r.clients.ok, r.clients.failed, r.clients.failed_clients) == (4, 3, 1, ["10.0.0.9"])
    (finding,) = [x for x in d.findings if x.service == r.entry.id]
    assert "for 1 of 4 clients" in finding.message


def test_client_option_looks_at_one_device() -> None:
    flows = [F.facts(F.record("10.0.0.2", GS4), tls_facts=F.tls()), F.facts(F.unanswered_syn("10.0.0.9", GS4))]
    dns = [F.dns("gs.apple.com", [GS4], client=c) for c in ("10.0.0.2", "10.0.0.9")]
    assert F.row(F.run(flows, dns, client="10.0.0.9"), "gs.apple.com").status is Status.BLOCKED
    assert F.row(F.run(flows, dns, client="10.0.0.2/32"), "gs.apple.com").status is Status.WORKING


def test_dns_filter_names_the_client() -> None:
    d = F.run([], [F.dns("xp.apple.com", ["0.0.0.0"])])
    (finding,) = [x for x in d.findings if x.kind == "dns_sinkhole"]
    assert finding.wireshark_filter == 'dns.qry.name == "xp.apple.com" && ip.addr==10.0.0.2'


def test_retried_syns_on_one_port_pair_are_one_filter_clause() -> None:
    a = F.unanswered_syn(cport=50001)
    b = F.unanswered_syn(cport=50001, ts_start=F.T0 + 4, ts_end=F.T0 + 6)
    d = F.run([F.facts(a), F.facts(b)], [F.dns("gs.apple.com", [GS4])])
    (finding,) = [x for x in d.findings if x.kind == "blocked_port"]
    assert finding.wireshark_filter.count("tcp.port==50001") == 1


def test_process_names_from_a_pktap_capture_are_in_the_finding() -> None:
    r = F.unanswered_syn(processes=(("apsd", 101),))
    d = F.run([F.facts(r)], [F.dns("gs.apple.com", [GS4])], link_types=("PKTAP",))
    (finding,) = [x for x in d.findings if x.kind == "blocked_port"]
    assert "apsd" in finding.message and any("apsd" in e for e in finding.evidence)


def test_rst_sender_side_enum_is_what_the_factory_uses() -> None:
    assert F.rst().sender is Side.SERVER


def test_a_capture_on_the_mac_ties_the_local_ends_of_its_sockets() -> None:
    v4 = F.record(F.CLIENT, GS4, processes=(("apsd", 101),))
    v6 = F.record("2001:db8::7", GS6, processes=(("apsd", 101),))
    inbound_peer = F.record("192.0.2.9", F.CLIENT, sport=22)  # no process metadata: not tied
    dev = Devices.build([v4, v6, inbound_peer], on_device=True).of("2001:db8::7")
    assert dev.addresses == (F.CLIENT, "2001:db8::7") and dev.tie == "pktap"
    assert "PKTAP" in (dev.tie_text() or "")
    assert Devices.build([v4, v6, inbound_peer]).of("2001:db8::7").tie is None  # two v4 clients: no inference


def test_a_quic_close_carrying_a_tls_alert_is_a_failed_handshake() -> None:
    from helpers_pcap import LOCAL

    import analyzer
    (f,) = analyzer.analyze(LOCAL / "quic-aioquic-close.pcap").report["flows"]
    assert f["verdict"] == "tls_failed" and "no_application_protocol" in f["reason"]


def test_some_clients_failing_is_not_called_a_fallback() -> None:
    flows = [F.facts(F.record(f"10.0.0.{i}", GS4), tls_facts=F.tls()) for i in (2, 3)]
    flows.append(F.facts(F.unanswered_syn("10.0.0.9", GS4)))
    d = F.run(flows, [F.dns("gs.apple.com", [GS4], client=f"10.0.0.{i}") for i in (2, 3, 9)])
    advice = F.row(d, "gs.apple.com").advice
    assert "works for the other clients" in advice and "1 of 3 clients" in advice and "fallback" not in advice


def test_the_headline_names_what_is_degraded() -> None:
    ok = F.facts(F.record(F.CLIENT, "17.253.1.11"), tls_facts=F.tls("1-courier.push.apple.com", version="TLSv13"))
    dropped = F.facts(F.unanswered_syn(F.CLIENT, "17.253.1.11", sport=5223))
    d = F.run([ok, dropped, F.facts(F.refused_syn(ttl=64))],
              [F.dns("1-courier.push.apple.com", ["17.253.1.11"]), F.dns("gdmf.apple.com", [GS4])])
    assert d.headline == "1 Apple service blocked; 1 Apple service degraded", d.headline


def test_a_real_dual_stack_capture_ties_the_hosts_addresses_by_mac() -> None:
    # tests/fixtures/local/make_dual_stack.sh: two namespaces on a veth, the kernel's own ARP and NDP.
    from helpers_pcap import LOCAL

    import analyzer
    rep = analyzer.analyze(LOCAL / "dual-stack-veth.pcap").report
    (dev,) = rep["devices"]
    assert dev["tie"] == "mac" and dev["mac"] == "02:77:00:00:00:02"
    assert {"10.77.0.2", "fd77::2", "fe80::77:ff:fe00:2"} <= set(dev["addresses"])
    assert {(n["ip"], n["mac"]) for n in rep["neighbors"]} >= {("10.77.0.2", "02:77:00:00:00:02")}


def test_a_slow_serverhello_alone_is_no_finding() -> None:
    # The server's own TTL; only the ServerHello came 200 ms after a 1 ms round trip (a busy server).
    slow = F.record(rtt_syn_synack=0.001, server_side=dict(syn_ttl=63, ttls=((63, 5),)))
    d = F.run([F.facts(slow, tls_facts=F.tls(server_hello_ts=F.T0 + 0.22))])
    (f,) = d.flows
    assert f.judgement.verdict is Verdict.OK and any(e.startswith("timing: ") for e in f.judgement.evidence)
    assert not F.kinds(d)
