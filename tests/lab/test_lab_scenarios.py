"""Facts particular to one scenario: timing, retransmissions, who sent a reset, what interception looks like."""

from __future__ import annotations

from typing import Any

import pytest
from lab_wire import TCP_ACK, TCP_RST, Capture, Conn, read

from analyzer.lab import addresses as A
from analyzer.lab import truth as T

pytestmark = pytest.mark.lab


def conn(lab: Any, name: str, server: str, port: int, proto: str = "tcp") -> Conn:
    return read(lab.results[name].pcap).conn(A.CLIENT_IP, server, port, proto)


def cap(lab: Any, name: str) -> Capture:
    return read(lab.results[name].pcap)


def t(p: Any) -> float:
    return float(p.first("frame.time_relative"))


def test_syn_blackholed_retransmits_one_syn_until_the_client_gives_up(lab: Any) -> None:
    c = conn(lab, "syn_blackholed", A.GS_IP, 443)
    syns = c.syns()
    assert len({p.sport for p in syns}) == 1, "one connection attempt, retransmitted"
    assert len(syns) >= 3 and all(p.retransmission for p in syns[1:])
    assert not c.s2c
    assert 1.8 <= t(syns[-1]) - t(syns[0]) <= 3.5  # RTO 1 s, 2 s; curl gives up at 3 s


def test_rejected_rst_comes_at_once_from_the_router_in_the_servers_name(lab: Any) -> None:
    c = conn(lab, "rejected_rst", A.GS_IP, 443)
    (syn,), (rst,) = c.syns(), c.resets()
    assert rst.src == A.GS_IP and rst.ttl == T.ROUTER_TTL
    assert rst.has(TCP_RST) and rst.has(TCP_ACK) and rst.payload == 0
    assert t(rst) - t(syn) < 0.2


def test_closed_port_rst_comes_from_the_real_server(lab: Any) -> None:
    c = conn(lab, "closed_port_rst", A.CLOSED_IP, 443)
    (rst,) = c.resets()
    assert rst.ttl == T.SERVER_TTL  # one hop behind the router, unlike rejected_rst's 64


def test_apns_falls_back_to_443_after_5223_times_out(lab: Any) -> None:
    c5223 = conn(lab, "apns_5223_blocked_443_fallback", A.COURIER_IP, 5223)
    c443 = conn(lab, "apns_5223_blocked_443_fallback", A.COURIER_IP, 443)
    assert len(c5223.syns()) >= 2 and not c5223.s2c
    first_443 = c443.syns()[0]
    assert t(first_443) - t(c5223.syns()[0]) >= 2.9  # the 3 s connect timeout
    assert c443.selected_version() == "TLS 1.3" and c443.app_data_records(from_server=True) >= 2


def test_ntp_ok_is_a_client_request_and_a_server_reply(lab: Any) -> None:
    c = conn(lab, "ntp_ok", A.TIME_IP, 123, "udp")
    assert [p.first("ntp.flags.mode") for p in c.packets] == ["3", "4"]


def test_ntp_icmp_unreachable_quotes_each_request(lab: Any) -> None:
    capture = cap(lab, "ntp_icmp_unreachable")
    requests = capture.conn(A.CLIENT_IP, A.TIME_IP, 123, "udp").c2s
    errors = capture.icmp()
    assert len(errors) == len(requests) >= 1
    for req, err in zip(requests, errors):
        assert err.src == A.ROUTER_CLIENT_IP and err.all("icmp.type") == ("3",) and err.all("icmp.code") == ("3",)
        assert err.sport == req.sport  # the quoted datagram is this request
        assert 0 <= t(err) - t(req) < 0.2


def test_ntp_no_reply_retries_without_answer(lab: Any) -> None:
    c = conn(lab, "ntp_no_reply", A.TIME_IP, 123, "udp")
    assert len(c.c2s) >= 2 and not c.s2c and not cap(lab, "ntp_no_reply").icmp()


def test_dns_servfail_and_silence(lab: Any) -> None:
    servfail = cap(lab, "dns_servfail").dns_responses(A.SERVFAIL_NAME)
    assert servfail and {p.first("dns.flags.rcode") for p in servfail} == {"2"}
    silent = cap(lab, "dns_no_response")
    assert len(silent.dns_queries(A.SILENT_NAME)) == 2 and not silent.dns_responses(A.SILENT_NAME)


def test_dns_cname_chain_then_tls_to_the_edge_address(lab: Any) -> None:
    capture = cap(lab, "dns_cname_chain")
    (resp,) = capture.dns_responses(A.CNAME_CHAIN[0])
    assert resp.all("dns.resp.name") == A.CNAME_CHAIN
    assert resp.all("dns.cname") == A.CNAME_CHAIN[1:] and resp.all("dns.a") == (A.CNAME_TARGET_IP,)
    c = capture.conn(A.CLIENT_IP, A.CNAME_TARGET_IP, 443)
    assert t(c.syns()[0]) > t(resp)
    assert c.certificates()[0].issuer.rfc4514_string().startswith("CN=Apple Public Server RSA CA 12 - G1")


def test_tls12_ok_shows_the_whole_apple_chain(lab: Any) -> None:
    certs = conn(lab, "tls12_ok", A.GS_IP, 443).certificates()
    names = [(c.subject.rfc4514_string(), c.issuer.rfc4514_string()) for c in certs]
    assert names[0][0] == "CN=gs.apple.com" and names[0][1].startswith("CN=Apple Server Authentication CA,")
    assert names[1][1].startswith("CN=Apple Root CA,")


def test_tls13_ok_hides_the_certificate(lab: Any) -> None:
    c = conn(lab, "tls13_ok", A.GS_IP, 443)
    assert c.selected_version() == "TLS 1.3" and c.certificates() == []


@pytest.mark.parametrize("proxy,issuer_cn", [("mitmproxy", "mitmproxy"),
                                             ("squid", "Zscaler Intermediate Root CA (zscalerthree.net) (t)")])
@pytest.mark.parametrize("verdict", ["reject", "trust"])
def test_tls12_interception_shows_the_product_ca(lab: Any, proxy: str, issuer_cn: str, verdict: str) -> None:
    c = conn(lab, f"intercept_{proxy}_tls12_{verdict}", A.GS_IP, 443)
    leaf = c.certificates()[0]
    assert leaf.issuer.rfc4514_string().startswith(f"CN={issuer_cn},")
    assert leaf.subject.rfc4514_string().startswith("CN=gs.apple.com")


@pytest.mark.parametrize("proxy", ["mitmproxy", "squid"])
@pytest.mark.parametrize("verdict", ["reject", "trust"])
def test_tls13_interception_is_told_by_ttl_not_by_certificate(lab: Any, proxy: str, verdict: str) -> None:
    c = conn(lab, f"intercept_{proxy}_tls13_{verdict}", A.GS_IP, 443)
    genuine = conn(lab, "tls13_ok", A.GS_IP, 443)
    assert c.certificates() == [] and c.selected_version() == "TLS 1.3"
    assert c.synacks()[0].ttl == T.ROUTER_TTL != genuine.synacks()[0].ttl
    assert c.server_hello() is not None and c.server_hello().ttl == T.ROUTER_TTL


@pytest.mark.parametrize("proxy", ["mitmproxy", "squid"])
def test_tls13_rejection_alert_is_in_clear_from_openssl_clients(lab: Any, proxy: str) -> None:
    """Surprise: OpenSSL aborts before it switches to handshake keys, so TLS 1.3 still shows unknown_ca."""
    c = conn(lab, f"intercept_{proxy}_tls13_reject", A.GS_IP, 443)
    assert c.alerts(from_server=False) == [(2, 48)]
    alert_pkt = next(p for p in c.c2s if 21 in p.record_types)
    assert alert_pkt.all("tls.record.length") == ("2",)
    assert t(alert_pkt) > t(c.server_hello())


@pytest.mark.parametrize("name,target,status", [
    ("proxy_connect_allowed", "gs.apple.com:443", 200),
    ("proxy_connect_denied", "gateway.icloud.com:443", 403),
    ("proxy_connect_auth_required", "gs.apple.com:443", 407),
])
def test_explicit_proxy_connect(lab: Any, name: str, target: str, status: int) -> None:
    port = A.PROXY_AUTH_PORT if name.endswith("auth_required") else A.PROXY_PORT
    c = conn(lab, name, A.ROUTER_CLIENT_IP, port)
    assert [p.first("http.request.uri") for p in c.c2s if p.first("http.request.method") == "CONNECT"] == [target]
    assert [int(x) for p in c.s2c for x in p.all("http.response.code")] == [status]
    assert not cap(lab, name).dns_queries("gs.apple.com"), "with a proxy the client does no DNS"


def test_sni_reset_answers_the_client_hello_with_an_injected_rst(lab: Any) -> None:
    c = conn(lab, "sni_reset", A.IDENTITY_IP, 443)
    (hello,) = c.client_hellos()
    (rst,) = c.resets()
    assert c.synacks()[0].ttl == T.SERVER_TTL and rst.ttl == T.ROUTER_TTL
    assert 0 <= t(rst) - t(hello) < 0.2
    assert not [p for p in c.s2c if p.payload > 0], "the server never answered the ClientHello"


def test_sni_drop_retransmits_the_client_hello_into_silence(lab: Any) -> None:
    c = conn(lab, "sni_drop", A.GS_IP, 443)
    hellos = [p for p in c.c2s if p.payload > 0]
    assert len(hellos) >= 3 and all(p.retransmission for p in hellos[1:])
    assert c.synacks() and not [p for p in c.s2c if p.payload > 0 or p.has(TCP_RST)]


def test_mixed_session_has_a_dozen_flows_with_every_outcome(lab: Any) -> None:
    truth = lab.results["mixed_session"].truth
    assert len(truth["flows"]) >= 11 and len(truth["dns"]) >= 12
    verdicts = {f["verdict"] for f in truth["flows"]}
    assert verdicts == {"ok", "no_response", "intercepted", "reset", "refused"}
    dns_verdicts = {d["verdict"] for d in truth["dns"]}
    assert dns_verdicts == {"ok", "sinkholed", "nxdomain", "no_response"}
    # gs.apple.com works and gsa.apple.com is reset on the same address: only the SNI differs.
    c = conn(lab, "mixed_session", A.GS_IP, 443)
    by_sni = {p.first("tls.handshake.extensions_server_name"): p.sport for p in c.client_hellos()}
    assert set(by_sni) == {"gs.apple.com", "gsa.apple.com"}
    reset_ports = {p.dport for p in c.resets()}
    assert reset_ports == {by_sni["gsa.apple.com"]}


# --- dual-stack Macs and several Macs in one capture ---------------------------------------------

def test_dual_stack_asks_a_and_aaaa_over_ipv4_then_tries_ipv6_before_ipv4(lab: Any) -> None:
    capture = cap(lab, "dual_stack_v6_dropped_v4_fallback")
    for qtype in ("1", "28"):  # A and AAAA, both to the router's IPv4 address
        (q,) = capture.dns_queries("gs.apple.com", qtype)
        assert (q.src, q.dst) == (A.CLIENT_IP, A.ROUTER_CLIENT_IP)
    (aaaa,) = capture.dns_responses("gs.apple.com", "28")
    assert aaaa.all("dns.aaaa") == (A.GS_IP6,)
    v6 = capture.conn(A.CLIENT_IP6, A.GS_IP6, 443)
    v4 = capture.conn(A.CLIENT_IP, A.GS_IP, 443)
    assert len(v6.syns()) >= 2 and not v6.s2c, "the IPv6 SYN is retransmitted into silence"
    assert {p.ttl for p in v6.syns()} == {64}  # the hop limit, in the TTL's place
    assert 1.4 <= t(v4.syns()[0]) - t(v6.syns()[0]) <= 2.0  # happy eyeballs set to 1.5 s
    assert v4.selected_version() == "TLS 1.3" and v4.app_data_records(from_server=True) >= 2
    # One Mac: its IPv4 and IPv6 addresses leave from one MAC address.
    assert capture.macs()[A.CLIENT_MAC] >= {A.CLIENT_IP, A.CLIENT_IP6}


def test_dual_stack_without_fallback_never_tries_ipv4_and_ipv6_itself_works(lab: Any) -> None:
    capture = cap(lab, "dual_stack_v6_dropped_no_fallback")
    assert not capture.conn(A.CLIENT_IP, A.GS_IP, 443).packets
    v6 = capture.conn(A.CLIENT_IP6, A.GS_IP6, 443)
    assert len(v6.syns()) >= 3 and not v6.s2c
    control = capture.conn(A.CLIENT_IP6, A.CONTROL_IP6, 443)
    assert control.synacks()[0].ttl == T.SERVER_TTL and control.selected_version() == "TLS 1.3"


def test_apns_over_ipv6_stalls_on_5223_and_works_on_443_never_touching_ipv4(lab: Any) -> None:
    capture = cap(lab, "dual_stack_apns_v6_5223_dropped")
    c5223 = capture.conn(A.CLIENT_IP6, A.COURIER_IP6, 5223)
    c443 = capture.conn(A.CLIENT_IP6, A.COURIER_IP6, 443)
    assert len(c5223.syns()) >= 2 and not c5223.s2c
    assert t(c443.syns()[0]) - t(c5223.syns()[0]) >= 2.9  # the step gave up after 3 s
    assert c443.selected_version() == "TLS 1.3"
    assert c443.client_hellos()[0].all("tls.handshake.extensions_alpn_str") == ("apns-security-v3",)
    assert not [p for p in capture.packets if p.is_tcp and not p.ipv6], "no IPv4 connection at all"
    assert capture.dns_queries("1-courier.push.apple.com", "28"), "the AAAA lookup went over IPv4"


def test_dns_over_ipv6_and_the_connection_over_ipv4_share_one_mac(lab: Any) -> None:
    mac4 = A.CLIENTS_BY_NAME["mac4"]
    capture = cap(lab, "dual_stack_dns_v6_connect_v4")
    (q,) = capture.dns_queries("gs.apple.com")
    assert (q.src, q.dst, q.first("dns.qry.type")) == (mac4.ip6, A.ROUTER_CLIENT_IP6, "1")
    c = capture.conn(mac4.ip, A.GS_IP, 443)
    (rst,) = c.resets()
    assert rst.ttl == T.ROUTER_TTL and t(c.syns()[0]) > t(q)
    assert q.mac == c.syns()[0].mac == mac4.mac


def test_span_capture_holds_three_macs_and_only_one_is_blocked(lab: Any) -> None:
    capture = cap(lab, "span_three_macs_one_blocked")
    macs = {c.mac: c for c in A.CLIENTS[:3]}
    seen = capture.macs()
    assert set(macs) <= set(seen), "every Mac is on the span port"
    for mac, client in macs.items():
        assert client.ip in seen[mac] and not seen[mac] - {client.ip, client.ip6, client.link_local}
    for client in A.CLIENTS[:3]:
        c = capture.conn(client.ip, A.GS_IP, 443)
        if client.name == "mac2":
            assert len(c.syns()) >= 3 and not c.s2c, "this Mac's SYNs are dropped"
        else:
            assert c.synacks() and c.selected_version() == "TLS 1.3"
        (q,) = [p for p in capture.dns_queries("gs.apple.com") if p.src == client.ip]
        assert q.mac == client.mac


def test_ipv4_only_scenarios_ask_only_for_a_records(lab: Any) -> None:
    """The lab's AAAA records must not leak into the older scenarios: their clients are pinned to IPv4."""
    for name in ("tls13_ok", "mixed_session", "proxy_connect_allowed"):
        capture = cap(lab, name)
        assert not [p for p in capture.packets if p.first("dns.qry.type") == "28"], name
        assert not [p for p in capture.packets if p.ipv6], name
