"""Issue 12, web classes: the captive portal, HTTP/3 beside TCP 443 and Private Relay scenarios are built as
they say (what the clients saw, what tshark reads on the wire) and the engine reads what the answer needs
(the portal's Location, the SNI inside aioquic's QUIC Initials)."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from analyzer.engine import EngineResult, run_engine
from analyzer.lab import addresses as A

pytestmark = pytest.mark.lab

UDP = 17


@functools.lru_cache(maxsize=None)
def _engine(path: str) -> EngineResult:
    return run_engine([path])


def _client_json(lab: Any, name: str) -> dict[str, Any]:
    """What the scenario's first client (the Python one: one JSON line) saw."""
    return json.loads(lab.results[name].steps[0].stdout.strip().splitlines()[-1])


def _tshark(pcap: Path, display_filter: str, *fields: str) -> list[list[str]]:
    argv = ["tshark", "-r", str(pcap), "-Y", display_filter, "-T", "fields", *[x for f in fields for x in ("-e", f)]]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def _quic_flows(res: EngineResult, server_ip: str) -> list[Any]:
    return [f for f in res.flows if f.flow.proto == UDP and f.flow.server_ip == server_ip and f.flow.server_port == 443]


def test_probe_without_portal_gets_apples_success(lab: Any) -> None:
    r = lab.results["captive_probe_ok"]
    assert r.steps[0].stdout.strip() == "200"
    rows = _tshark(r.pcap, "http.response", "ip.src", "ip.ttl", "http.response.code")
    assert rows == [[A.CAPTIVE_IP, "63", "200"]]


@pytest.mark.parametrize("name,server", [("captive_portal_http_302", A.CAPTIVE_IP),
                                         ("captive_portal_dns_hijack", A.PORTAL_IP)])
def test_probe_is_sent_to_the_portal(lab: Any, name: str, server: str) -> None:
    r = lab.results[name]
    status, location = r.steps[0].stdout.split()
    assert status == "302" and location.startswith(f"{A.PORTAL_LOGIN}?"), r.steps[0].stdout
    requests = _tshark(r.pcap, "http.request", "ip.dst", "http.host", "http.user_agent", "http.request.uri")
    assert requests[0] == [server, "captive.apple.com", "CaptiveNetworkSupport-481.100.2 wispr",
                           "/hotspot-detect.html"]
    # The gateway answers (TTL 64: no router hop in between), whether in Apple's name or as itself.
    answers = _tshark(r.pcap, "http.response.code == 302", "ip.src", "ip.ttl", "http.location")
    assert answers == [[server, "64", location]]


def test_portal_dns_answers_every_name_with_the_portal(lab: Any) -> None:
    r = lab.results["captive_portal_dns_hijack"]
    answers = _tshark(r.pcap, "dns.flags.response == 1", "dns.qry.name", "dns.a", "dns.resp.ttl")
    assert answers == [["captive.apple.com", A.PORTAL_IP, "1"], ["gs.apple.com", A.PORTAL_IP, "1"]]


def test_http3_fetch_works_and_the_engine_reads_its_initial(lab: Any) -> None:
    out = _client_json(lab, "http3_ok")
    assert [(a["transport"], a["ok"], a.get("status")) for a in out["attempts"]] == [("quic", True, 200)]
    (f,) = _quic_flows(_engine(str(lab.results["http3_ok"].pcap)), A.H3_IP)
    assert f.quic is not None and f.server_name == A.H3_NAME
    assert f.quic.state.server_answered


def test_http3_blocked_falls_back_to_tcp_within_the_deadline(lab: Any) -> None:
    out = _client_json(lab, "http3_udp_blocked_tcp_fallback")
    quic, tcp = out["attempts"]
    assert (quic["transport"], quic["ok"], tcp["transport"], tcp["ok"]) == ("quic", False, "tcp", True)
    assert quic["seconds"] < 2.0, "the fallback must come quickly, as in browsers"
    assert tcp["version"] == "TLSv1.3" and tcp["reply"].startswith("HTTP/1.1 200")
    res = _engine(str(lab.results["http3_udp_blocked_tcp_fallback"].pcap))
    (f,) = _quic_flows(res, A.H3_IP)
    assert f.server_name == A.H3_NAME and f.flow.server.packets == 0 and f.flow.client.packets >= 2
    # The kept-alive TCP connection outlives the last Initial by more than a second: the capture shows the drop.
    (t,) = [x for x in res.flows if x.flow.proto == 6 and x.flow.server_ip == A.H3_IP]
    assert t.flow.ts_end - f.flow.ts_end > 1.0


def test_private_relay_attempts_are_both_stopped(lab: Any) -> None:
    out = _client_json(lab, "private_relay_blocked")
    assert out["ok"] is False
    quic, tcp = out["attempts"]
    assert quic["transport"] == "quic" and "no handshake" in quic["error"]
    assert tcp["transport"] == "tcp" and "ConnectionRefused" in tcp["error"]
    (f,) = _quic_flows(_engine(str(lab.results["private_relay_blocked"].pcap)), A.MASK_IP)
    assert f.server_name == "mask.icloud.com" and f.flow.server.packets == 0
    # Without the relay the Mac goes on directly: the network itself works.
    assert lab.results["private_relay_blocked"].steps[2].stdout.startswith("200 ")


def test_relay_client_tries_both_ingresses_when_dns_says_they_do_not_exist(lab: Any) -> None:
    out = _client_json(lab, "private_relay_dns_nxdomain")
    assert [(a["transport"], a["ok"]) for a in out["attempts"]] == [("quic", False), ("tcp", False)]
    assert all("resolve" in a["error"] for a in out["attempts"]), out
    rows = _tshark(lab.results["private_relay_dns_nxdomain"].pcap, "dns.flags.response == 1", "dns.qry.name",
                   "dns.flags.rcode")
    assert rows == [["mask.icloud.com", "3"], ["mask-h2.icloud.com", "3"], ["gs.apple.com", "0"]]
