"""Interception from a visible TLS 1.2 chain made by real software (openssl), and the rules under it.

tests/fixtures/local/make_tls12_issuers.sh: gs.apple.com served by openssl s_server with a chain from a
CA named like no product ("Acme Corp Web Filter CA") and from one named like a product in capitals
("FORTIGATE CA, O=FORTINET"); in each capture one client trusts the CA and one rejects it (unknown_ca).
"""

from __future__ import annotations

import factories as F
import pytest
from helpers_pcap import LOCAL

import analyzer
from analyzer.catalogue.issuers import IssuerClassifier, IssuerKind, IssuerName
from analyzer.diagnosis.dns import judge_dns
from analyzer.diagnosis.model import DNSVerdict, Verdict
from analyzer.catalogue.matcher import Matcher


@pytest.mark.parametrize(("pcap", "product", "issuer_cn", "confidence"), [
    ("tls12-unknown-ca.pcap", None, "Acme Corp Web Filter CA", "medium"),
    ("tls12-product-ca.pcap", "Fortinet", "FORTIGATE CA", "high"),
])
def test_a_substitute_chain_on_an_apple_host_is_interception(pcap: str, product: str | None, issuer_cn: str,
                                                              confidence: str) -> None:
    rep = analyzer.analyze(LOCAL / pcap).report
    trusting, rejecting = sorted(rep["flows"], key=lambda f: f["ts_start"])
    for f in (trusting, rejecting):
        assert f["verdict"] == "intercepted" and f["sni"] == "gs.apple.com"
        assert f["interception"]["product"] == product
        assert issuer_cn in f["interception"]["issuer"] and f["interception"]["confidence"] == confidence
    assert "trusts the substitute certificate" in trusting["reason"]
    assert rejecting["tls"]["alert"]["description"] == "unknown_ca"
    (row,) = rep["services"]
    assert row["host"] == "gs.apple.com" and row["status"] == "intercepted"
    assert "Exclude gs.apple.com from HTTPS inspection" in row["advice"]
    assert ("Fortinet" in row["advice"]) == (product == "Fortinet")
    (summary,) = rep["summary"]["interception"]
    assert summary["product"] == product
    assert rep["summary"]["headline"] == (f"HTTPS inspection by {product or 'an unidentified proxy'} on 1 service")


@pytest.mark.parametrize("cn", ["FortiGate CA", "FORTIGATE CA", "fortigate ca", "Fortinet_CA_SSL"])
def test_inspection_products_match_whatever_the_case(cn: str) -> None:
    v = IssuerClassifier(F.catalogue()).classify(IssuerName(f"CN={cn}", cn, None, None))
    assert v.kind is IssuerKind.INSPECTION and v.product is not None and v.product.product == "Fortinet"


def test_an_unknown_issuer_is_not_taken_for_apple() -> None:
    c = IssuerClassifier(F.catalogue())
    assert c.classify(IssuerName("CN=Acme Corp Web Filter CA", "Acme Corp Web Filter CA", "Acme Corp", None)).kind \
        is IssuerKind.UNKNOWN
    assert c.classify(IssuerName("CN=Apple Server Authentication CA", "Apple Server Authentication CA",
                                 "Apple Inc.", None)).kind is IssuerKind.APPLE


@pytest.mark.parametrize(("address", "apple", "verdict"), [
    ("0.0.0.0", True, DNSVerdict.SINKHOLED),
    ("127.0.0.1", False, DNSVerdict.SINKHOLED),
    ("10.10.10.10", True, DNSVerdict.SINKHOLED),  # a private address for a public Apple name
    ("192.168.1.5", False, DNSVerdict.OK),  # a private address for a private name is ordinary
    ("fd00::5", True, DNSVerdict.SINKHOLED),
    ("17.253.1.10", True, DNSVerdict.OK),
])
def test_dns_sinkhole_rules(address: str, apple: bool, verdict: DNSVerdict) -> None:
    name = "gs.apple.com" if apple else "nas.example.internal"
    j = judge_dns(F.dns(name, [address]), Matcher(F.catalogue()), F.catalogue().sinkholes)
    assert j.verdict is verdict, j.reason


@pytest.mark.parametrize(("rcode", "verdict"), [("NXDOMAIN", DNSVerdict.NXDOMAIN), ("SERVFAIL", DNSVerdict.SERVFAIL),
                                                ("REFUSED", DNSVerdict.REFUSED), (None, DNSVerdict.NO_RESPONSE)])
def test_dns_failure_rcodes(rcode: str | None, verdict: DNSVerdict) -> None:
    j = judge_dns(F.dns("gs.apple.com", [], rcode=rcode), Matcher(F.catalogue()), F.catalogue().sinkholes)
    assert j.verdict is verdict and j.entry is not None and j.entry.host == "gs.apple.com"


def test_a_rst_answering_the_syn_is_refused_not_reset() -> None:
    (f,) = F.run([F.facts(F.refused_syn())]).flows
    assert f.judgement.verdict is Verdict.REFUSED and "RST in answer to the SYN" in f.judgement.reason


def _judge(t: object) -> object:
    return judge_dns(t, Matcher(F.catalogue()), F.catalogue().sinkholes)  # type: ignore[arg-type]


def test_a_resolver_that_says_it_filtered_a_name_is_a_sinkhole_whatever_it_answered() -> None:
    import dataclasses
    t = dataclasses.replace(F.dns("gs.apple.com", ["17.253.1.10"]), extended_errors=("Blocked: policy",))
    j = _judge(t)
    assert j.verdict is DNSVerdict.SINKHOLED and "Blocked" in j.reason
    empty = dataclasses.replace(F.dns("gs.apple.com", []), extended_errors=("Filtered",), answers=())
    assert _judge(empty).verdict is DNSVerdict.SINKHOLED


def test_an_empty_noerror_answer_and_other_rcodes_are_not_failures() -> None:
    j = _judge(F.dns("gs.apple.com", []))
    assert j.verdict is DNSVerdict.OK and "empty answer" in j.reason
    assert _judge(F.dns("gs.apple.com", [], rcode="NOTIMP")).verdict is DNSVerdict.OK


def test_an_answer_names_its_chain_and_addresses() -> None:
    j = _judge(F.dns("mesu.apple.com", ["17.253.1.12"], cname=("mesu.apple.com.akadns.net",)))
    assert j.verdict is DNSVerdict.OK and "via mesu.apple.com.akadns.net" in j.reason and "17.253.1.12" in j.reason
