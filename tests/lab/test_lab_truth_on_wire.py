"""Every flow and lookup a scenario's truth promises is on the wire, as tshark dissects it.

The cases come from the scenario definitions themselves, so a scenario added
to analyzer/lab/scenarios.py is checked here without a new test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from lab_wire import TCP_ACK, TCP_RST, Capture, Conn, Packet, read

from analyzer.lab.scenarios import ClientFiles, build_scenarios

pytestmark = pytest.mark.lab

SCENARIOS = build_scenarios(ClientFiles(Path("/unused"), Path("/unused"), Path("/unused")))
FLOW_CASES = [pytest.param(s.name, f, id=f"{s.name}-{f['proto']}-{f['server']['ip']}:{f['server']['port']}")
              for s in SCENARIOS for f in s.truth["flows"]]
DNS_CASES = [pytest.param(s.name, d, id=f"{s.name}-{d['query']}") for s in SCENARIOS for d in s.truth["dns"]]
RCODES = {"NOERROR": 0, "SERVFAIL": 2, "NXDOMAIN": 3, "REFUSED": 5}
RR_TYPES = {"1": "A", "5": "CNAME", "28": "AAAA"}
QTYPES = {kind: code for code, kind in RR_TYPES.items()}
ALERT_FATAL = 2


def capture(lab: Any, name: str) -> Capture:
    return read(lab.results[name].pcap)


def dn(name: x509.Name) -> str:
    """CN first, ", "-separated: the form truth.json uses."""
    return name.rfc4514_string().replace(",", ", ")


def offered_version(hello: Packet) -> str:
    versions = hello.ints("tls.handshake.extensions.supported_version") or hello.ints("tls.handshake.version")
    return {0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}[max(versions)]


def check_tcp_shape(conn: Conn, flow: dict[str, Any]) -> None:
    assert conn.syns(), "no SYN from the client"
    server_rsts = conn.resets(from_server=True)
    others = [p for p in conn.s2c if not p.has(TCP_RST)]
    if flow["reply_ttl"] is None:
        assert not others, f"the server side answered: {[p.first('frame.number') for p in others]}"
    else:
        assert others, "nothing but resets came back"
        assert {p.ttl for p in others} == {flow["reply_ttl"]}
        assert conn.synacks(), "no SYN-ACK"
    if flow["reset_ttl"] is not None:
        assert server_rsts, "no RST in the server's name"
        assert {p.ttl for p in server_rsts} == {flow["reset_ttl"]}
    else:
        # Any RST in the server's name comes from the same sender as its other packets: nothing injected.
        assert {p.ttl for p in server_rsts} <= {flow["reply_ttl"]}
    if flow["state"] == "S0":
        assert not conn.s2c and len(conn.syns()) >= 2, "S0: SYN retransmitted, nothing back"
    if flow["state"] == "REJ":
        assert not conn.synacks() and server_rsts and all(p.has(TCP_ACK) for p in server_rsts)
    if flow["state"] == "RSTR":
        assert conn.synacks() and server_rsts


def check_tls(conn: Conn, flow: dict[str, Any]) -> None:
    tls = flow["tls"]
    hellos = conn.client_hellos()
    assert hellos, "no ClientHello"
    assert {h.first("tls.handshake.extensions_server_name") for h in hellos} == {flow["sni"]}
    assert list(hellos[0].all("tls.handshake.extensions_alpn_str")) == tls["alpn"]
    assert offered_version(hellos[0]) == tls["offered"]
    assert conn.selected_version() == tls["version"]
    on_wire = [{"subject": dn(c.subject), "issuer": dn(c.issuer)} for c in conn.certificates()]
    assert on_wire == tls["certificates"]
    alert = tls["alert"]
    expected = {"server": [], "client": []}
    if alert:
        expected[alert["from"]] = [(ALERT_FATAL, alert["code"])]
    assert conn.alerts(from_server=True) == expected["server"]
    assert conn.alerts(from_server=False) == expected["client"]
    # The client went on past the server's flight (ChangeCipherSpec or
    # encrypted records) exactly when the handshake was established.
    went_on = any(t in (20, 23) for p in conn.c2s for t in p.record_types)
    assert went_on == tls["established"]


def check_proxy(conn: Conn, flow: dict[str, Any]) -> None:
    proxy = flow["proxy"]
    methods = [(p.first("http.request.method"), p.first("http.request.uri")) for p in conn.c2s
               if p.first("http.request.method")]
    assert methods == [("CONNECT", proxy["connect_target"])]
    codes = [int(c) for p in conn.s2c for c in p.all("http.response.code")]
    assert codes == [proxy["status"]]


def check_udp(cap: Capture, conn: Conn, flow: dict[str, Any]) -> None:
    assert conn.c2s, "no datagram from the client"
    if flow["reply_ttl"] is None:
        assert not conn.s2c
    else:
        assert conn.s2c and {p.ttl for p in conn.s2c} == {flow["reply_ttl"]}
        if flow["server"]["port"] == 123:
            assert {p.first("ntp.flags.mode") for p in conn.s2c} == {"4"}
    if flow["sni"]:  # QUIC: tshark decrypts the client's Initials and reads the ClientHello's SNI
        assert {p.first("tls.handshake.extensions_server_name") for p in conn.c2s} - {None} == {flow["sni"]}
    icmps = cap.icmp()
    if flow["icmp"] is None:
        assert not icmps
        return
    want = flow["icmp"]
    assert icmps, "no ICMP error"
    for p in icmps:
        assert (p.src, p.ttl) == (want["from"], want["ttl"])
        assert (int(p.all("icmp.type")[0]), int(p.all("icmp.code")[0])) == (want["type"], want["code"])
        # The ICMP error quotes the client's datagram to the server: it is tied to this flow.
        assert p.all("ip.src")[1:] == (flow["client"]["ip"],) and p.all("ip.dst")[1:] == (flow["server"]["ip"],)
        assert p.all("udp.dstport") == (str(flow["server"]["port"]),)


@pytest.mark.parametrize("name,flow", FLOW_CASES)
def test_flow_is_on_the_wire(lab: Any, name: str, flow: dict[str, Any]) -> None:
    cap = capture(lab, name)
    conn = cap.conn(flow["client"]["ip"], flow["server"]["ip"], flow["server"]["port"], flow["proto"])
    if flow["proto"] == "udp":
        check_udp(cap, conn, flow)
        return
    conns = conn.split()
    if len(conns) > 1:  # several connections to one server: the SNI tells them apart
        conns = [c for c in conns if {h.first("tls.handshake.extensions_server_name") for h in c.client_hellos()}
                 == {flow["sni"]}]
    assert len(conns) == 1, f"{len(conns)} connections match this flow"
    conn = conns[0]
    check_tcp_shape(conn, flow)
    if flow["tls"] is not None:
        check_tls(conn, flow)
    if flow["proxy"] is not None:
        check_proxy(conn, flow)


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_no_flow_beyond_the_truth(lab: Any, name: str) -> None:
    truth = lab.results[name].truth
    expected = {(f["server"]["ip"], f["server"]["port"]) for f in truth["flows"]}
    expected |= {(d["server"]["ip"], d["server"]["port"]) for d in truth["dns"]}
    assert capture(lab, name).endpoints() == expected


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_no_lookup_beyond_the_truth(lab: Any, name: str) -> None:
    cap = capture(lab, name)
    asked = {(p.first("dns.qry.name"), RR_TYPES.get(p.first("dns.qry.type") or "", "?"))
             for p in cap.packets if p.first("dns.flags.response") in ("0", "False")}
    assert asked == {(d["query"], d["qtype"]) for d in lab.results[name].truth["dns"]}


def _answers(resp: Packet) -> list[dict[str, Any]]:
    data = {"A": list(resp.all("dns.a")), "AAAA": list(resp.all("dns.aaaa")), "CNAME": list(resp.all("dns.cname"))}
    out = []
    for rname, rtype, ttl in zip(resp.all("dns.resp.name"), resp.all("dns.resp.type"), resp.all("dns.resp.ttl")):
        kind = RR_TYPES[rtype]
        out.append({"name": rname, "type": kind, "data": data[kind].pop(0), "ttl": int(ttl)})
    return out


@pytest.mark.parametrize("name,lookup", DNS_CASES)
def test_lookup_is_on_the_wire(lab: Any, name: str, lookup: dict[str, Any]) -> None:
    cap = capture(lab, name)
    qtype, client = QTYPES[lookup["qtype"]], lookup["client"]["ip"]
    # A span-port capture holds several clients' lookups of one name: this lookup's are its client's.
    queries = [q for q in cap.dns_queries(lookup["query"], qtype) if q.src == client]
    assert queries, f"no {lookup['qtype']} query from {client}"
    assert {(q.dst, q.dport) for q in queries} == {(lookup["server"]["ip"], 53)}
    responses = [r for r in cap.dns_responses(lookup["query"], qtype) if r.dst == client]
    if lookup["rcode"] is None:
        assert not responses and len(queries) >= 2, "silence: the client asks again, nothing answers"
        return
    assert responses
    for resp in responses:
        assert int(resp.first("dns.flags.rcode") or -1) == RCODES[lookup["rcode"]]
        assert _answers(resp) == lookup["answers"]
