"""The scenarios' truth speaks the report contract's vocabulary (no root needed: nothing runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from analyzer.catalogue.issuers import IssuerClassifier, IssuerKind, IssuerName, IssuerVerdict
from analyzer.catalogue import load_catalogue
from analyzer.lab import pki
from analyzer.lab import truth as T
from analyzer.lab.runner import main, scenario_names
from analyzer.lab.scenarios import ClientFiles, build_scenarios

SCHEMA = Path(__file__).resolve().parents[2].parent / "shared" / "contracts" / "report.schema.json"
SCENARIOS = build_scenarios(ClientFiles(Path("/unused"), Path("/unused"), Path("/unused")))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    if not SCHEMA.exists():
        pytest.skip(f"report contract not found at {SCHEMA}")
    return json.loads(SCHEMA.read_text())


def test_flow_and_dns_words_are_the_contracts(schema: dict[str, Any]) -> None:
    flow_props = schema["properties"]["flows"]["items"]["properties"]
    dns_props = schema["properties"]["dns"]["items"]["properties"]
    for sc in SCENARIOS:
        for f in sc.truth["flows"]:
            assert f["verdict"] in flow_props["verdict"]["enum"], sc.name
            assert f["reset_by"] in flow_props["reset_by"]["enum"], sc.name
            assert f["proto"] in flow_props["proto"]["enum"], sc.name
            if f["tls"] and f["tls"]["alert"]:
                assert f["tls"]["alert"]["from"] in flow_props["tls"]["properties"]["alert"]["properties"]["from"]["enum"]
        for d in sc.truth["dns"]:
            assert d["verdict"] in dns_props["verdict"]["enum"], sc.name
            assert d["transport"] in dns_props["transport"]["enum"]


def test_every_flow_says_what_a_test_can_check() -> None:
    for sc in SCENARIOS:
        for f in sc.truth["flows"]:
            assert f["names"], f"{sc.name}: a flow without a name cannot be attributed"
            if f["inspection_issuer"]:  # intercepted, by a named product or by a CA named like none
                assert f["verdict"] == "intercepted" and f["reply_ttl"] == 64
            assert f["inspection_product"] is None or f["inspection_issuer"], sc.name
            if f["reset_by"] == "middlebox" and f["proto"] == "tcp":
                assert f["reset_ttl"] == 64
            if f["tls"] and f["tls"]["certificates"]:
                assert f["tls"]["version"] == "TLS 1.2", "certificates travel in clear only up to TLS 1.2"


def test_inspection_issuers_are_named_like_the_products() -> None:
    assert pki.dn_string(pki.MITM_CA_DN) == "CN=mitmproxy, O=mitmproxy"
    assert pki.dn_string(pki.ZSCALER_INT_DN).startswith("CN=Zscaler Intermediate Root CA (zscalerthree.net) (t), ")
    assert pki.dn_string(pki.APPLE_PUBLIC_CA_DN).startswith("CN=Apple Public Server RSA CA 12 - G1, O=Apple Inc.")


def _classify(dn: dict[str, str]) -> IssuerVerdict:
    name = IssuerName(pki.dn_string(dn), dn.get("CN"), dn.get("O"), dn.get("OU"))
    return IssuerClassifier(load_catalogue(None, edition="current")).classify(name)


def test_each_inspection_ca_classifies_as_its_truth_says() -> None:
    """The packaged catalogue names the product truth.INSPECTION expects for each lab CA, and the CA
    named like no product is neither a product nor Apple (so the "unknown inspection CA" path runs)."""
    dns = {"mitmproxy": pki.MITM_CA_DN, "squid": pki.ZSCALER_INT_DN, "unknown_ca": pki.UNKNOWN_CA_DN}
    assert set(dns) == set(T.INSPECTION)
    for key, dn in dns.items():
        assert T.INSPECTION[key]["issuer"] == pki.dn_string(dn)
        verdict = _classify(dn)
        want = T.INSPECTION[key]["product"]
        if want is None:
            assert verdict.kind is IssuerKind.UNKNOWN, (key, verdict)
        else:
            assert verdict.kind is IssuerKind.INSPECTION and verdict.product is not None, (key, verdict)
            assert verdict.product.product == want
    assert _classify(pki.APPLE_AUTH_CA_DN).kind is IssuerKind.APPLE  # the classifier sees the lab's Apple CAs


def test_unknown_ca_scenarios_intercept_with_a_ca_named_like_no_product() -> None:
    """A trusting and a pinning client, each with the chain in clear, answered as an unidentified proxy."""
    by_name = {sc.name: sc for sc in SCENARIOS}
    for name, established in (("intercept_unknown_ca_tls12_trust", True), ("intercept_unknown_ca_tls12_reject", False)):
        (f,) = by_name[name].truth["flows"]
        assert f["inspection_product"] is None and f["inspection_issuer"] == pki.dn_string(pki.UNKNOWN_CA_DN)
        assert f["tls"]["version"] == "TLS 1.2" and f["tls"]["established"] is established
        assert [c["issuer"] for c in f["tls"]["certificates"]] == [f["inspection_issuer"]]
        assert (f["tls"]["alert"] or {}).get("description") == (None if established else "unknown_ca")
        assert by_name[name].truth["answer"]["headline"] == ["HTTPS inspection by an unidentified proxy"]


def test_scenario_names_are_unique_and_listed_by_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    names = scenario_names()
    assert len(names) == len(set(names)) == len(SCENARIOS)
    assert main(["--list"]) == 0
    assert capsys.readouterr().out.split() == names


def test_pki_builds_chains_the_servers_and_clients_use(tmp_path: Path) -> None:
    from cryptography import x509

    lab_pki = pki.build_pki(tmp_path)
    chain = x509.load_pem_x509_certificates(lab_pki.chain("gs").read_bytes())
    assert [c.subject.rfc4514_string() for c in chain] == [
        "CN=gs.apple.com", "CN=Apple Server Authentication CA,OU=Certification Authority,O=Apple Inc.,C=US"]
    assert chain[0].issuer == chain[1].subject
    root = x509.load_pem_x509_certificate(lab_pki.apple_root.read_bytes())
    assert chain[1].issuer == root.subject == root.issuer
    chain[0].verify_directly_issued_by(chain[1])
    chain[1].verify_directly_issued_by(root)
    mitm = (lab_pki.mitm_confdir / "mitmproxy-ca.pem").read_text()
    assert "PRIVATE KEY" in mitm and "BEGIN CERTIFICATE" in mitm
    unknown = x509.load_pem_x509_certificate((lab_pki.unknown_ca_confdir / "mitmproxy-ca.pem").read_bytes())
    assert "PRIVATE KEY" in (lab_pki.unknown_ca_confdir / "mitmproxy-ca.pem").read_text()
    assert unknown.subject == unknown.issuer  # a root: mitmproxy signs the forged leaves with it directly
    assert unknown.subject.rfc4514_string() == "CN=Acme Corp Web Filter CA,O=Acme Corp"
    managed = x509.load_pem_x509_certificates(lab_pki.trust_managed.read_bytes())
    assert {c.subject.rfc4514_string() for c in managed} >= {"CN=mitmproxy,O=mitmproxy",
                                                            "CN=Zscaler Root CA,OU=Zscaler Inc.,O=Zscaler Inc.,ST=California,C=US",
                                                            "CN=Acme Corp Web Filter CA,O=Acme Corp"}
    pinning = x509.load_pem_x509_certificates(lab_pki.trust_apple.read_bytes())
    assert unknown.subject not in {c.subject for c in pinning}


def test_every_scenario_states_its_answer() -> None:
    """Lab tests assert the answer (statuses, findings, advice), not only flow verdicts: every scenario says it."""
    statuses = {"working", "degraded", "blocked", "intercepted", "not_seen"}
    missing = [sc.name for sc in SCENARIOS if "answer" not in sc.truth]
    assert not missing, f"scenarios without an answer truth: {missing}"
    for sc in SCENARIOS:
        for host, want in sc.truth["answer"]["services"].items():
            assert want["status"] in statuses, (sc.name, host)
