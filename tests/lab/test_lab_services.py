"""Issue 12, the service scenarios: real NTP clients, a selective proxy, a TLS version mismatch, squid's SSL_ports.

Each test first checks the capture itself with tshark (what the real software put on the wire, so the scenario
shows what it says it shows), then what the report makes of it beyond the answer truth that test_lab_answer.py
checks: how the flows are read (NTP is NTP, not QUIC) and which flows a selective proxy's interception touches.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lab_wire import TCP_RST, read

import analyzer
from analyzer.lab import addresses as A
from analyzer.lab import truth as T

pytestmark = pytest.mark.lab

# scenario -> (server, first byte of every request, verdicts its flows may get)
NTP_SCENARIOS: dict[str, tuple[str, int, set[str]]] = {
    "ntp_chronyd_daemon_ok": (A.TIME_IP, 0x23, {"ok"}),
    "ntp_chronyd_daemon_dropped": (A.TIME_IP, 0x23, {"no_response", "incomplete"}),
    "ntp_ntpdig_ok": (A.TIME_IP, 0xE3, {"ok"}),
    "ntp_ntpdig_dropped": (A.TIME_IP, 0xE3, {"no_response", "incomplete"}),
    "ntp_server_port_unreachable": (A.CLOSED_IP, 0xE3, {"refused"}),
}
SELECTIVE = "selective_proxy_bump_one_splice_rest"
TLS_ALERT_PROTOCOL_VERSION = 70


@functools.lru_cache(maxsize=None)
def _report(path: str) -> dict[str, Any]:
    return analyzer.analyze(path).report


def report(lab: Any, name: str) -> dict[str, Any]:
    return _report(str(lab.results[name].pcap))


def ntp_first_bytes(pcap: Path) -> list[tuple[int, int]]:
    """(client port, first byte) of every datagram the client sent to UDP 123, as tshark reads it."""
    out = subprocess.run(["tshark", "-r", str(pcap), "-n", "-Y", f"!icmp && ip.src=={A.CLIENT_IP} && udp.dstport==123",
                          "-T", "fields", "-e", "udp.srcport", "-e", "udp.payload"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    return [(int(port), int(payload.replace(":", "")[:2], 16)) for port, payload in rows]


@pytest.mark.parametrize("name", sorted(NTP_SCENARIOS))
def test_ntp_clients_put_their_own_first_byte_on_the_wire(lab: Any, name: str) -> None:
    """ntpdig says it is unsynchronised (LI=3: 0xe3, a QUIC long header's shape); chrony hides its state (0x23)."""
    server, first_byte, verdicts = NTP_SCENARIOS[name]
    pcap = lab.results[name].pcap
    requests = ntp_first_bytes(pcap)
    assert len(requests) >= 2, requests
    assert len({port for port, _ in requests}) == len(requests), "one socket per request"
    assert {byte for _, byte in requests} == {first_byte}
    cap = read(pcap)
    replies = cap.conn(A.CLIENT_IP, server, 123, "udp").s2c
    if verdicts == {"ok"}:
        assert replies and {p.first("ntp.flags.mode") for p in replies} == {"4"}
        assert {p.ttl for p in replies} == {T.SERVER_TTL}
    else:
        assert not replies
    if "refused" in verdicts:  # the server's own kernel: its address, its TTL, one error per request
        assert [(p.src, p.ttl) for p in cap.icmp()] == [(server, T.SERVER_TTL)] * len(requests)
    else:
        assert not cap.icmp()


@pytest.mark.parametrize("name", sorted(NTP_SCENARIOS))
def test_ntp_flows_are_read_as_ntp_not_quic(lab: Any, name: str) -> None:
    """Port 123 traffic that parses as NTP is NTP: an unsynchronised client's 0xe3 is no QUIC long header."""
    server, _, verdicts = NTP_SCENARIOS[name]
    host = next(h for h, ip in A.A_RECORDS.items() if ip == server and h.startswith("time"))
    r = report(lab, name)
    flows = [f for f in r["flows"] if f["proto"] == "udp" and f["server"]["port"] == 123]
    assert len(flows) >= 2
    for f in flows:
        assert f["app"] == "ntp" and f["quic"] is None, (f["app"], f["weird"])
        assert f["ntp"] is not None and f["ntp"]["requests"] == 1
        assert f["ntp"]["replies"] == (1 if verdicts == {"ok"} else 0)
        assert not [w for w in f["weird"] if w.startswith("quic")], f["weird"]
        assert "quic" not in f["reason"].lower(), f["reason"]
        assert f["service_host"] == host and f["port_documented"] is True
        assert f["verdict"] in verdicts, f["reason"]
    assert not [k for k in r["weird"] if k.startswith("quic")], r["weird"]


def _selective_flows(lab: Any) -> dict[str, dict[str, Any]]:
    flows = {f["sni"]: f for f in report(lab, SELECTIVE)["flows"] if f["proto"] == "tcp" and f["sni"]}
    assert set(flows) == {"gs.apple.com", "gsa.apple.com", A.BUMPED_NAME, A.SPLICED_NAME}
    return flows


def test_selective_proxy_bumps_one_host_and_leaves_the_others_genuine_on_the_wire(lab: Any) -> None:
    cap = read(lab.results[SELECTIVE].pcap)
    for sni in ("gs.apple.com", "gsa.apple.com"):  # not redirected: the real server's TTL, TLS 1.3 completes
        (c,) = [c for c in cap.conn(A.CLIENT_IP, A.GS_IP, 443).split()
                if {h.first("tls.handshake.extensions_server_name") for h in c.client_hellos()} == {sni}]
        assert {p.ttl for p in c.s2c} == {T.SERVER_TTL}
        assert c.selected_version() == "TLS 1.3" and c.app_data_records(from_server=True) >= 1
    bumped = cap.conn(A.CLIENT_IP, A.IDENTITY_IP, 443)
    assert {p.ttl for p in bumped.s2c} == {T.ROUTER_TTL}
    leaf = bumped.certificates()[0]
    assert leaf.subject.rfc4514_string() == f"CN={A.BUMPED_NAME}"
    assert leaf.issuer.rfc4514_string().startswith("CN=Zscaler Intermediate Root CA")
    assert bumped.alerts(from_server=False) == [(2, 48)]  # the pinning client's unknown_ca
    spliced = cap.conn(A.CLIENT_IP, A.SPLICED_IP, 443)
    assert {p.ttl for p in spliced.s2c} == {T.ROUTER_TTL}  # the proxy's TCP ...
    certs = spliced.certificates()  # ... carrying the real server's TLS: the genuine Apple chain
    assert certs[0].subject.rfc4514_string() == f"CN={A.SPLICED_NAME}"
    assert certs[0].issuer.rfc4514_string().startswith("CN=Apple Server Authentication CA,")
    assert certs[1].issuer.rfc4514_string().startswith("CN=Apple Root CA,")
    assert spliced.app_data_records(from_server=True) >= 1 and not spliced.alerts(from_server=False)


def test_selective_proxy_suspects_no_flow_it_did_not_intercept(lab: Any) -> None:
    """Guilt by association: another flow's substitute certificate is context, not evidence about this flow."""
    r = report(lab, SELECTIVE)
    flows = _selective_flows(lab)
    bumped = flows[A.BUMPED_NAME]
    assert bumped["verdict"] == "intercepted" and bumped["interception"]["product"] == "Zscaler"
    innocent = {flows[n]["id"]: n for n in ("gs.apple.com", "gsa.apple.com", A.SPLICED_NAME)}
    for fid, name in innocent.items():
        f = next(x for x in r["flows"] if x["id"] == fid)
        assert f["verdict"] == "ok" and f["interception"] is None, (name, f["reason"], f["evidence"])
        assert not [e for e in f["evidence"] if "interception" in e.lower()], (name, f["evidence"])
    for finding in r["findings"]:
        if finding["kind"] in ("possible_tls_interception", "tls_interception"):
            named = [innocent[i] for i in finding["flows"] if i in innocent]
            assert not named, f"{finding['kind']} names {named}: {finding['message']}"


def test_tls13_only_server_refuses_a_tls12_client_hello(lab: Any) -> None:
    name = "tls13_only_server_tls12_client"
    c = read(lab.results[name].pcap).conn(A.CLIENT_IP, A.TLS13_ONLY_IP, 443)
    (hello,) = c.client_hellos()
    assert max(hello.ints("tls.handshake.version")) == 0x0303 and not hello.ints(
        "tls.handshake.extensions.supported_version"), "the client offers TLS 1.2 at most"
    assert c.alerts(from_server=True) == [(2, TLS_ALERT_PROTOCOL_VERSION)] and c.server_hello() is None
    (f,) = [x for x in report(lab, name)["flows"] if x["server"]["ip"] == A.TLS13_ONLY_IP]
    assert f["verdict"] == "tls_failed" and f["sni"] == A.TLS13_ONLY_NAME
    assert f["tls"]["alert"]["description"] == "protocol_version" and f["tls"]["alert"]["from"] == "server"


def test_stock_squid_denies_connect_to_5223_only(lab: Any) -> None:
    name = "proxy_connect_5223_ssl_ports"
    c = read(lab.results[name].pcap).conn(A.CLIENT_IP, A.ROUTER_CLIENT_IP, A.STOCK_PROXY_PORT)
    assert [p.first("http.request.uri") for p in c.c2s if p.first("http.request.method") == "CONNECT"] == [
        "1-courier.push.apple.com:5223"]
    assert [int(x) for p in c.s2c for x in p.all("http.response.code")] == [403]
    assert not [p for p in c.s2c if p.has(TCP_RST)]
    (f,) = [x for x in report(lab, name)["flows"] if x["server"]["port"] == A.STOCK_PROXY_PORT]
    assert f["verdict"] == "refused" and f["service_host"] == "*.push.apple.com"
    assert f["proxy"]["connect_target"] == "1-courier.push.apple.com:5223" and f["proxy"]["status"] == 403
