"""Issue 5: the diagnosis of every lab scenario against how it was built (verdict, reset_by, interception, DNS)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import analyzer
from analyzer.lab.scenarios import ClientFiles, build_scenarios

from truth_match import dn, report_dns_for, report_flows_for

pytestmark = pytest.mark.lab

NAMES = [s.name for s in build_scenarios(ClientFiles(Path("/unused"), Path("/unused"), Path("/unused")))]
SCHEMA = json.loads((Path(analyzer.__file__).parent / "report" / "report.schema.json").read_text())
FAILING = {"no_response", "refused", "reset", "tls_failed", "intercepted"}


@functools.lru_cache(maxsize=None)
def _analysis(path: str) -> Any:
    return analyzer.analyze(path)


def scenario(lab: Any, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    r = lab.results[name]
    return r.truth, _analysis(str(r.pcap)).report


@pytest.mark.parametrize("name", NAMES)
def test_flow_verdicts(lab: Any, name: str) -> None:
    truth, report = scenario(lab, name)
    jsonschema.validate(report, SCHEMA)
    for tf in truth["flows"]:
        ours = report_flows_for(report, tf)
        assert ours, f"no flow to {tf['server']}"
        verdicts = {f["verdict"] for f in ours}
        if _undetectable_interception(tf):
            # TLS 1.3 through a proxy the client trusts: no certificate, no alert. Only the proxy's TTL
            # (0 hops for a public Apple address) and sometimes a ServerHello delay show, and a proxy that
            # correctly splices Apple hosts looks the same on the wire. Path signs alone are not interception:
            # the flow stays ok, with the signs in its evidence and a transparent_proxy finding.
            (f,) = ours
            assert f["verdict"] == "ok", (f["verdict"], f["reason"])
            assert any(e.startswith("transparent proxy") for e in f["evidence"]), f["evidence"]
            assert any(x["kind"] == "transparent_proxy" and f["id"] in x["flows"] for x in report["findings"])
            continue
        # Several flows for one built flow are retries (SYN retransmissions on new ports, a second NTP
        # request): each is the built verdict, or `incomplete` when the capture ended before it could be judged.
        assert tf["verdict"] in verdicts, [(f["verdict"], f["reason"]) for f in ours]
        assert verdicts <= {tf["verdict"], "incomplete"}, [(f["verdict"], f["reason"]) for f in ours]
        judged = [f for f in ours if f["verdict"] == tf["verdict"]]
        if tf["reset_by"] is not None or tf["verdict"] in {"reset", "refused"}:
            assert {f["reset_by"] for f in judged} == {tf["reset_by"]}, [f["evidence"] for f in judged]
        for f in judged:
            assert set(tf["names"]) <= set(f["names"]) | {f["sni"]}, f["names"]
            if f["verdict"] != "ok" or tf["names"]:
                assert f["service"] is not None or not tf["names"][0].endswith(("apple.com", "icloud.com"))
            assert f["reason"]
            assert f["wireshark_filter"] and tf["server"]["ip"] in f["wireshark_filter"]
        if tf["verdict"] == "intercepted":
            inter = [f["interception"] for f in judged]
            assert all(i is not None for i in inter)
            visible = bool(tf["tls"] and tf["tls"].get("certificates_visible"))
            if visible:
                # The chain is in clear (TLS 1.2): the product must be named from the issuer, and the issuer
                # reported is the forged leaf's.
                assert {i["product"] for i in inter} == {tf["inspection_product"]}
                assert {dn(i["issuer"]) for i in inter} == {dn(tf["inspection_issuer"])}
                if tf["inspection_product"] is not None:
                    assert all(i["confidence"] == "high" for i in inter)
                else:
                    # A CA named like no product: not Apple's is all the chain says (the leaf covers the name,
                    # is not self-signed), so the proxy stays unnamed; the issuer is what the admin can look for.
                    assert all(i["confidence"] in {"high", "medium"} for i in inter), inter
            else:
                # TLS 1.3: the certificate is encrypted. The product can only be named when another flow in
                # the same capture shows the substitute chain; alone, the proxy stays unnamed but detected.
                assert {i["product"] for i in inter} <= {tf["inspection_product"], None}
                assert all(f["evidence"] for f in judged)


def _undetectable_interception(tf: dict[str, Any]) -> bool:
    tls = tf.get("tls") or {}
    return (tf["verdict"] == "intercepted" and tls.get("established") is True
            and not tls.get("certificates_visible"))


@pytest.mark.parametrize("name", NAMES)
def test_dns_verdicts(lab: Any, name: str) -> None:
    truth, report = scenario(lab, name)
    for td in truth["dns"]:
        ours = report_dns_for(report, td)
        assert ours and {d["verdict"] for d in ours} == {td["verdict"]}, [(d["verdict"], d["reason"]) for d in ours]
        if td["verdict"] != "ok":
            assert all(d["service"] for d in ours), "a blocked Apple name must be tied to its service"


@pytest.mark.parametrize("name", NAMES)
def test_services_status_and_advice(lab: Any, name: str) -> None:
    truth, report = scenario(lab, name)
    failing_flows = [tf for tf in truth["flows"] if tf["verdict"] in FAILING and not _undetectable_interception(tf)]
    failing_dns = [td for td in truth["dns"] if td["verdict"] != "ok"]
    headline = report["summary"]["headline"]
    captive = "captive_portal" in truth.get("answer", {}).get("findings", [])
    if not failing_flows and not failing_dns and not captive:
        assert headline.startswith(("All ", "The one ")), headline
        assert all(s["status"] == "working" for s in report["services"])
        assert not [f for f in report["findings"] if f["severity"] == "error"]
        return
    assert not headline.startswith(("All ", "The one ", "No Apple")), headline
    bad = [s for s in report["services"] if s["status"] in ("blocked", "degraded", "intercepted")]
    assert bad
    for s in bad:
        assert s["advice"], s
        assert s["evidence"], s
    # Private Relay blocked is Apple's documented switch, maybe intended: an info finding, not a failure.
    maybe_intended = "private_relay_unavailable" in truth.get("answer", {}).get("findings", [])
    assert any(f["severity"] in (("info",) if maybe_intended else ()) + ("error", "warning") and f["advice"]
               for f in report["findings"])
    # A sinkholed or NXDOMAIN Apple name leaves no TCP on the wire: the service must still show as blocked.
    for td in failing_dns:
        svc = [d["service"] for d in report["dns"] if d["query"].lower() == td["query"].lower()][0]
        row = [s for s in report["services"] if s["id"] == svc][0]
        assert row["status"] in ("blocked", "degraded"), row
        assert any(td["query"] in e for e in row["evidence"]), row["evidence"]


def test_fallback_makes_apns_degraded(lab: Any) -> None:
    _, report = scenario(lab, "apns_5223_blocked_443_fallback")
    rows = [s for s in report["services"] if s["host"] == "*.push.apple.com"]
    assert [r["status"] for r in rows] == ["degraded"]
    assert rows[0]["by_verdict"] == {"no_response": 1, "ok": 1}
    assert "5223" in rows[0]["advice"]
    assert any("works" in e for e in rows[0]["evidence"])


def test_retries_count_as_one_attempt(lab: Any) -> None:
    _, report = scenario(lab, "syn_blackholed")
    (row,) = [s for s in report["services"] if s["status"] == "blocked"]
    assert row["attempts"] == 1


def test_managed_mac_interception_explains_pinning(lab: Any) -> None:
    _, report = scenario(lab, "intercept_mitmproxy_tls12_trust")
    (f,) = [f for f in report["flows"] if f["verdict"] == "intercepted"]
    assert f["tls"]["established"] is True
    assert "pin" in f["reason"] and "mitmproxy" in f["reason"]
    assert report["summary"]["interception"][0]["product"] == "mitmproxy"
