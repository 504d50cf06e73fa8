"""Issue 13: the chain rules (interception.assess_chain, certs.certificate_anomalies) and attribution's order,
one rule per test, with real DER certificates made here by `cryptography` and parsed by our x509 parser.
"""

from __future__ import annotations

import datetime as dt

import factories as F
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from analyzer.catalogue.issuers import IssuerClassifier
from analyzer.catalogue.matcher import Matcher
from analyzer.diagnosis.attribution import attribute
from analyzer.diagnosis.certs import certificate_anomalies
from analyzer.diagnosis.interception import assess_chain
from analyzer.diagnosis.model import Evidence
from analyzer.dnsmap import NameMap
from analyzer.protocols.x509 import Certificate, parse_certificate

NOW = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def _name(cn: str, o: str | None = None, ou: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if o:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    return x509.Name(attrs)


def chain(leaf: str = "gs.apple.com", *, sans: tuple[str, ...] | None = None, ca: tuple[str, str | None, str | None] =
          ("Apple Server Authentication CA", "Apple Inc.", None), self_signed: bool = False,
          expired: bool = False, send_ca: bool = True) -> tuple[Certificate, ...]:
    """A leaf for `leaf` issued by a CA named `ca` (CN, O, OU): real DER, parsed by analyzer.protocols.x509."""
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(*ca)
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
               .serial_number(1).not_valid_before(NOW - dt.timedelta(days=30))
               .not_valid_after(NOW + dt.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .sign(ca_key, hashes.SHA256()))
    subject = _name(leaf)
    issuer, key = (subject, leaf_key) if self_signed else (ca_name, ca_key)
    end = NOW - dt.timedelta(days=1) if expired else NOW + dt.timedelta(days=90)
    leaf_cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                 .public_key(leaf_key.public_key()).serial_number(2)
                 .not_valid_before(NOW - dt.timedelta(days=10)).not_valid_after(end)
                 .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in (sans or (leaf,))]),
                                critical=False)
                 .sign(key, hashes.SHA256()))
    ders = [leaf_cert.public_bytes(Encoding.DER)] + ([ca_cert.public_bytes(Encoding.DER)] if send_ca else [])
    return tuple(parse_certificate(d) for d in ders)


def _tls(certs: tuple[Certificate, ...], sni: str = "gs.apple.com") -> F.TLSFacts:
    t = F.tls(sni, version="TLSv12")
    return F.TLSFacts(t.session, t.client_hello, t.server_hello, certs, None, None, None, (), t.client_hello_ts,
                      t.server_hello_ts, False)


def _assess(certs: tuple[Certificate, ...], sni: str = "gs.apple.com", server: str = F.SERVER) -> object:
    facts = F.facts(F.record(F.CLIENT, server), tls_facts=_tls(certs, sni))
    a = attribute(facts, NameMap(), Matcher(F.catalogue()))
    return assess_chain(facts.tls, a, IssuerClassifier(F.catalogue()))  # type: ignore[arg-type]


# -- assess_chain ------------------------------------------------------------------------------------

def test_apples_own_issuer_is_not_interception() -> None:
    assert _assess(chain()) is None


def test_an_unknown_issuer_on_an_apple_host_is_interception_by_an_unknown_product() -> None:
    i = _assess(chain(ca=("Acme Corp Web Filter CA", "Acme Corp", None)))
    assert i is not None and i.product is None and "Acme Corp Web Filter CA" in (i.issuer or "")
    assert i.confidence == "medium"


def test_an_unknown_issuer_with_a_name_mismatch_is_high_confidence() -> None:
    i = _assess(chain("proxy.acme.example", ca=("Acme Corp Web Filter CA", "Acme Corp", None)))
    assert i is not None and i.confidence == "high"
    assert any("do not cover gs.apple.com" in e for e in i.evidence)


def test_an_unknown_issuer_on_a_non_apple_host_is_nobodys_business() -> None:
    assert _assess(chain("www.example.net", ca=("Acme Corp Web Filter CA", "Acme Corp", None)),
                   sni="www.example.net", server="192.0.2.7") is None


@pytest.mark.parametrize("ca", [("Zscaler Root CA", "Zscaler Inc.", None), ("Some CA", "FORTINET", None),
                                ("FortiGate CA", None, None), ("Intermediate", "Palo Alto Networks", "Decrypt")])
def test_a_product_ca_anywhere_in_the_chain_names_the_product(ca: tuple[str, str | None, str | None]) -> None:
    i = _assess(chain(ca=ca))
    assert i is not None and i.product is not None and i.confidence == "high"


def test_a_product_ca_names_itself_even_for_a_non_apple_host() -> None:
    i = _assess(chain("www.example.net", ca=("Zscaler Root CA", "Zscaler Inc.", None)), sni="www.example.net",
                server="192.0.2.7")
    assert i is not None and i.product == "Zscaler"


# -- certificate anomalies ------------------------------------------------------------------------------

@pytest.mark.parametrize(("kw", "words"), [
    (dict(self_signed=True, send_ca=False), "self-signed"),
    (dict(sans=("other.example",)), "name mismatch"),
    (dict(expired=True), "expired"),
    (dict(send_ca=False), "only its own certificate"),
])
def test_certificate_anomalies(kw: dict[str, object], words: str) -> None:
    found = certificate_anomalies(_tls(chain(**kw)), NOW.timestamp())  # type: ignore[arg-type]
    assert any(words in a for a in found), found


def test_a_good_chain_has_no_anomaly() -> None:
    assert certificate_anomalies(_tls(chain()), NOW.timestamp()) == []


def test_a_wildcard_covers_one_label_only() -> None:
    (leaf, _) = chain("x", sans=("*.apple.com",))
    from analyzer.diagnosis.interception import san_covers
    assert san_covers(leaf, "gs.apple.com") and not san_covers(leaf, "a.b.apple.com")


# -- attribution order ------------------------------------------------------------------------------------

def test_sni_wins_over_dns_and_address() -> None:
    facts = F.facts(F.record(), tls_facts=F.tls("gsa.apple.com"))
    names = NameMap([F.dns("gs.apple.com", [F.SERVER])])
    a = attribute(facts, names, Matcher(F.catalogue()))
    assert a.evidence is Evidence.SNI and a.entry is not None and a.entry.host == "gsa.apple.com"
    assert a.names == ("gsa.apple.com", "gs.apple.com")


def test_dns_names_a_flow_without_sni() -> None:
    a = attribute(F.facts(F.record()), NameMap([F.dns("gdmf.apple.com", [F.SERVER])]), Matcher(F.catalogue()))
    assert a.evidence is Evidence.DNS and a.entry is not None and a.entry.host == "gdmf.apple.com"


def test_dns_answered_after_the_flow_began_does_not_name_it() -> None:
    late = F.dns("gdmf.apple.com", [F.SERVER], ts=F.T0 + 5)
    a = attribute(F.facts(F.record()), NameMap([late]), Matcher(F.catalogue()))
    assert a.evidence is Evidence.IP_RANGE


def test_an_apple_address_without_a_name_falls_back_to_the_range() -> None:
    a = attribute(F.facts(F.record()), NameMap(), Matcher(F.catalogue()))
    assert a.evidence is Evidence.IP_RANGE and a.entry is not None


def test_an_apple_only_port_to_anywhere_is_apns() -> None:
    r = F.record(F.CLIENT, "192.0.2.7", sport=5223)
    a = attribute(F.facts(r), NameMap(), Matcher(F.catalogue()))
    assert a.evidence is Evidence.PORT_ONLY and a.entry is not None and "push" in a.entry.host


def test_a_connect_target_names_the_tunnel_and_its_port() -> None:
    h = F.http("CONNECT", "1-courier.push.apple.com:5223", host="1-courier.push.apple.com:5223", status=200)
    a = attribute(F.facts(F.record(F.CLIENT, "10.0.0.1", sport=3128), http_facts=h), NameMap(),
                  Matcher(F.catalogue()))
    assert a.evidence is Evidence.CONNECT and a.port == 5223 and a.port_documented is True


def test_a_non_apple_flow_has_no_entry() -> None:
    a = attribute(F.facts(F.record(F.CLIENT, "192.0.2.7"), tls_facts=F.tls("www.example.net")), NameMap(),
                  Matcher(F.catalogue()))
    assert a.entry is None and not a.is_apple
