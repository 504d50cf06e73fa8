"""Issue 4: what the engine extracts from each lab capture, against how the scenario was built."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from analyzer.engine import EngineResult, run_engine
from analyzer.lab.scenarios import ClientFiles, build_scenarios

from truth_match import TLS_VERSIONS, dn, dns_for, engine_flows_for

pytestmark = pytest.mark.lab

NAMES = [s.name for s in build_scenarios(ClientFiles(Path("/unused"), Path("/unused"), Path("/unused")))]


@functools.lru_cache(maxsize=None)
def _engine(path: str) -> EngineResult:
    return run_engine([path])


def scenario(lab: Any, name: str) -> tuple[dict[str, Any], EngineResult]:
    r = lab.results[name]
    return r.truth, _engine(str(r.pcap))


@pytest.mark.parametrize("name", NAMES)
def test_engine_sees_every_built_flow(lab: Any, name: str) -> None:
    truth, res = scenario(lab, name)
    assert not {k: v for k, v in res.weird.items() if k.startswith("internal_error")}
    for tf in truth["flows"]:
        ours = engine_flows_for(res, tf)
        assert ours, f"{name}: no flow to {tf['server']}"
        f = ours[-1] if tf["verdict"] == "ok" else ours[0]
        r = f.flow
        if tf.get("state"):
            assert {x.flow.conn_state for x in ours} == {tf["state"]}, [x.flow.history for x in ours]
        if tf.get("reply_ttl") is not None and tf["proto"] == "tcp":
            assert r.server.syn_ttl == tf["reply_ttl"]
        if tf.get("reset_ttl") is not None:
            assert tf["reset_ttl"] in {x.ttl for o in ours for x in o.flow.rsts if x.sender.value == "server"}
        if tf.get("icmp"):
            errors = [e for o in ours for e in o.flow.icmp_errors]
            assert errors, "ICMP error not tied to its flow"
            assert (errors[0].type, errors[0].code, errors[0].reporter) == (
                tf["icmp"]["type"], tf["icmp"]["code"], tf["icmp"]["from"])
        if tf.get("proxy"):
            assert f.http is not None and f.http.connect_target == tf["proxy"]["connect_target"]
            assert f.http.response is not None and f.http.response.status == tf["proxy"]["status"]
        if tf.get("sni"):
            assert any(o.server_name == tf["sni"] for o in ours)
        tls = tf.get("tls")
        if tls and tls.get("offered"):
            with_tls = [o for o in ours if o.tls is not None and o.tls.client_hello is not None]
            assert with_tls, "no ClientHello seen"
            t = with_tls[-1].tls
            assert t is not None
            if tls.get("alpn"):
                assert list(t.session.client_alpn) == tls["alpn"]
            if tls.get("version"):
                assert t.session.version == TLS_VERSIONS[tls["version"]]
            assert t.session.established == tls["established"]
            if tls.get("alert"):
                a = t.session.last_alert
                assert a is not None and a.name == tls["alert"]["description"]
                assert ("client" if a.from_client else "server") == tls["alert"]["from"]
            if tls.get("certificates_visible"):
                got = [(dn(c.subject), dn(c.issuer)) for c in t.certificates]
                want = [(dn(c["subject"]), dn(c["issuer"])) for c in tls["certificates"]]
                assert got == want
            else:
                assert not t.certificates


@pytest.mark.parametrize("name", [n for n in NAMES if any(True for _ in [0])])
def test_engine_dns_matches_truth(lab: Any, name: str) -> None:
    truth, res = scenario(lab, name)
    for td in truth["dns"]:
        ours = dns_for(res.dns, td)
        assert ours, f"{name}: no DNS transaction for {td['query']}"
        assert {t.rcode for t in ours} == {td["rcode"]}
        want = [(a["name"].lower(), a["type"], a["data"].lower()) for a in td["answers"]]
        got = [(a.name.lower().rstrip("."), a.type, a.data.lower().rstrip(".")) for a in ours[0].answers]
        assert got == want
        cnames = [a["data"] for a in td["answers"] if a["type"] == "CNAME"]
        if cnames:
            assert [n.lower() for n in ours[0].chain] == [td["query"].lower(), *[c.lower() for c in cnames]]
