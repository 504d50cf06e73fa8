"""X.509 facts against Zeek's x509.log, nDPI's certificate lines and FoxIO's chain snapshots."""

from __future__ import annotations

import hashlib
import json
import warnings
from datetime import UTC, datetime
from functools import cache

import pytest
from helpers_pcap import CORPUS, find_conn, tcp_streams
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.protocols._buffer import ParseError
from analyzer.protocols.tls import analyze_direction
from analyzer.protocols.x509 import Certificate, parse_certificate, parse_chain

TLS12 = "zeek/testing/btest/Traces/tls/tls1.2.pcap"
BROWSERS = "ja4/pcap/browsers-x509.pcapng"
SELFSIGNED = "ndpi/tests/cfgs/default/pcap/selfsigned.pcap"
MISSING_INTERMEDIATE = "zeek/testing/btest/Traces/tls/missing-intermediate.pcap"
DER_INCOMPLETE = "suricata-verify/tests/bug-1450-04/tls_DER-incomplete-header.pcap"


@cache
def server_ders(
    path: str, orig: str | None = None, resp: str | None = None
) -> tuple[bytes, ...]:
    conns = tcp_streams(path)
    if orig is not None and resp is not None:
        conns = [find_conn(conns, orig, resp)]
    out: list[bytes] = []
    for conn in conns:
        out += analyze_direction(conn.server_data, from_client=False).certificates
    return tuple(out)


def chain(
    path: str, orig: str | None = None, resp: str | None = None
) -> tuple[Certificate, ...]:
    certs, weirds = parse_chain(server_ders(path, orig, resp))
    assert weirds == ()
    return certs


def _records() -> list[dict[str, object]]:
    return [
        json.loads(line)
        for line in (CORPUS / "expected.jsonl").read_text().splitlines()
    ]


def test_leaf_every_field() -> None:
    leaf = chain(TLS12)[0]
    assert leaf.subject == (
        "CN=*.taleo.net,OU=Comodo PremiumSSL Wildcard,OU=Web,O=Taleo Inc.,street=4140 Dublin Boulevard,"
        "street=Suite 400,L=Dublin,ST=CA,postalCode=94568,C=US"
    )
    assert (
        leaf.issuer
        == "CN=COMODO High-Assurance Secure Server CA,O=COMODO CA Limited,L=Salford,ST=Greater Manchester,C=GB"
    )
    assert leaf.subject_attrs[:3] == (
        ("C", "US"),
        ("postalCode", "94568"),
        ("ST", "CA"),
    )
    assert leaf.issuer_attrs[0] == ("C", "GB") and leaf.issuer_attrs[-1][0] == "CN"
    assert (leaf.subject_cn, leaf.subject_o) == ("*.taleo.net", "Taleo Inc.")
    assert (leaf.issuer_cn, leaf.issuer_o) == (
        "COMODO High-Assurance Secure Server CA",
        "COMODO CA Limited",
    )
    # openssl x509 -serial / -fingerprint -sha256 on the same DER
    assert leaf.serial == "99FAA8037A4EB2FAEF84EB5E55D5B8C8"
    assert (
        leaf.sha256
        == "95cb443934beda97627688546191ab1d3989a835592cebdd2434f9ad41324ce1"
    )
    assert (
        leaf.sha1
        == hashlib.sha1(leaf.der).hexdigest()
        == "3367a1824a6013c02a3e25bbe4da863387faf134"
    )
    assert leaf.version == 3
    assert (leaf.not_before, leaf.not_after) == (
        "2011-05-04T00:00:00Z",
        "2016-07-04T23:59:59Z",
    )
    assert (leaf.not_before_epoch, leaf.not_after_epoch) == (1304467200.0, 1467676799.0)
    assert leaf.san_dns == ("*.taleo.net", "taleo.net")
    assert leaf.san_ip == leaf.san_email == leaf.san_uri == ()
    assert leaf.is_ca is False and leaf.path_len is None
    assert not leaf.self_issued and not leaf.self_signed
    assert (leaf.key_type, leaf.key_size, leaf.key_curve) == ("rsa", 2048, None)
    assert leaf.signature_algorithm == "sha1WithRSAEncryption"
    assert leaf.weirds == ()


def test_ecdsa_leaf_and_even_length_serial() -> None:
    leaf = chain(BROWSERS, "172.27.7.31:54525", "68.67.160.117:443")[0]
    assert (leaf.key_type, leaf.key_size, leaf.key_curve) == ("ec", 256, "secp256r1")
    assert leaf.signature_algorithm == "ecdsa-with-SHA256"
    assert leaf.serial == "0C673E377885E4052335497A28F97F50"
    assert leaf.san_dns == ("*.adnxs.com", "adnxs.com")


def test_self_signed_roots_verify_their_own_signature() -> None:
    root = chain(TLS12)[2]
    # AddTrust External CA Root is signed with SHA-1, which cryptography's
    # verify_directly_issued_by() refuses; the manual check still recognises it.
    assert root.self_issued and root.self_signed and root.is_ca
    (cert,) = chain(SELFSIGNED)
    assert (
        cert.self_signed
        and cert.subject == "O=ntop.org,ST=Some-State,C=IT"
        and cert.subject_cn is None
    )


def test_bad_der() -> None:
    ders = server_ders(DER_INCOMPLETE)
    assert len(ders) == 1 and len(ders[0]) == 9
    with pytest.raises(ParseError) as err:
        parse_certificate(ders[0])
    assert err.value.kind == "x509_bad_der"
    certs, weirds = parse_chain(ders)
    assert certs == () and weirds == ("x509_bad_der",)


def test_der_violations_in_extensions_keep_the_other_fields() -> None:
    """www.cviis.org encodes BasicConstraints cA=FALSE explicitly (a DER default), which
    cryptography refuses for every extension; Zeek still logged the connection."""
    (leaf,) = chain(MISSING_INTERMEDIATE, "192.168.4.149:58529", "128.32.169.140:443")
    assert leaf.weirds == ("x509_bad_san", "x509_bad_basic_constraints")
    assert (
        leaf.subject == "CN=www.cviis.org,OU=Domain Control Validated"
        and leaf.subject_cn == "www.cviis.org"
    )
    assert (
        leaf.not_before == "2014-04-17T16:44:04Z"
        and leaf.san_dns == ()
        and leaf.is_ca is None
    )
    assert leaf.serial == "2B24AAE3F69783" and leaf.key_type == "rsa"


def test_zero_serial_is_a_weird_not_a_warning() -> None:
    ders = server_ders(MISSING_INTERMEDIATE, "192.168.4.149:58530", "72.167.102.91:443")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        root = parse_certificate(ders[2])
    assert root.subject_cn == "Starfield Root Certificate Authority - G2"
    assert (
        root.serial == "00" and root.weirds == ("x509_bad_serial",) and root.self_signed
    )
    assert parse_certificate(ders[1]).serial == "07"
    leaf = parse_certificate(ders[0])
    assert (
        "jurisdictionC=US" in leaf.subject
        and "businessCategory=Private Organization" in leaf.subject
    )


# --- baselines ---------------------------------------------------------------------


def _zeek_cert_rows() -> list[tuple[str, str, dict[str, object]]]:
    return [
        (str(r["id"]), str(r["file"]), c)
        for r in _records()
        for c in r["facts"].get("certs", [])
    ]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("cid", "path", "fact"), _zeek_cert_rows())
def test_zeek_x509_log(cid: str, path: str, fact: dict[str, object]) -> None:
    matches = [c for c in chain(path) if c.subject == fact["subject"]]
    assert matches, f"{cid}: no certificate with subject {fact['subject']}"
    cert = matches[0]
    assert cert.issuer == fact["issuer"]
    assert f"{cert.not_before_epoch:.6f}" == fact["not_valid_before"]
    assert f"{cert.not_after_epoch:.6f}" == fact["not_valid_after"]
    assert ("T" if cert.is_ca else "F") == fact["is_ca"]
    assert list(cert.san_dns) == fact.get("san_dns", [])
    assert (cert == chain(path)[0]) == (fact["host_cert"] == "T")


def _ndpi_rows() -> list[tuple[str, str, dict[str, object]]]:
    rows = []
    for r in _records():
        for t in r["facts"].get("tls", []):  # type: ignore[attr-defined]
            if "issuer" in t and "orig" in t:
                rows.append((str(r["id"]), str(r["file"]), t))
    return rows


def _utc(epoch: float | None) -> str:
    assert epoch is not None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize(("cid", "path", "fact"), _ndpi_rows())
def test_ndpi_certificate_lines(cid: str, path: str, fact: dict[str, object]) -> None:
    """nDPI prints names in DER order joined by ', ' and the validity in UTC."""
    leaf = chain(path, str(fact["orig"]), str(fact["resp"]))[0]
    assert ", ".join(f"{k}={v}" for k, v in leaf.issuer_attrs) == fact["issuer"]
    assert ", ".join(f"{k}={v}" for k, v in leaf.subject_attrs) == fact["subject"]
    assert (
        f"{_utc(leaf.not_before_epoch)} - {_utc(leaf.not_after_epoch)}"
        == fact["validity"]
    )
    if "server_names" in fact:
        assert list(leaf.san_dns) == fact["server_names"]
    if "Self-signed Cert" in fact.get("risks", []):  # type: ignore[operator]
        assert leaf.self_signed


def test_ndpi_rows_present() -> None:
    ids = {cid for cid, _, _ in _ndpi_rows()}
    assert {"ndpi-selfsigned", "ndpi-malware-blockpage", "ndpi-rdp-selfsigned", "ndpi-http-ipv6", "ndpi-iphone",
            "ndpi-verylong-cert", "ndpi-cert-too-long"} <= ids  # fmt: skip


def _ja4_chain_rows() -> list[tuple[str, str, dict[str, object]]]:
    return [
        (str(r["id"]), str(r["file"]), t)
        for r in _records()
        for t in r["facts"].get("tls", [])  # type: ignore[attr-defined]
        if "cert_chain" in t
    ]


@pytest.mark.parametrize(("cid", "path", "fact"), _ja4_chain_rows())
def test_ja4_snapshot_chains(cid: str, path: str, fact: dict[str, object]) -> None:
    certs = chain(path, str(fact["orig"]), str(fact["resp"]))
    got = [
        {
            "subject_cn": c.subject_cn,
            "issuer_cn": c.issuer_cn,
            "subject_o": c.subject_o,
            "issuer_o": c.issuer_o,
        }
        for c in certs
    ]
    assert got == fact["cert_chain"]


def test_curveball_root_with_explicit_curve_still_yields_its_fields() -> None:
    leaf, root = chain("ja4/pcap/badcurveball.pcap")
    assert (leaf.subject_cn, leaf.issuer_cn, root.subject_cn) == (
        "SANS ISC DShield Test",
        "INFIGO",
        "INFIGO",
    )
    # CVE-2020-0601: the spoofed "root" spells out explicit EC curve parameters, which
    # cryptography refuses to load as a key. Everything else still parses; the key is a weird.
    assert root.weirds == ("x509_bad_public_key",)
    assert (root.key_type, root.key_size, root.key_curve) == (None, None, None)
    assert root.self_issued and not root.self_signed  # its signature cannot be checked
    assert root.subject == "CN=INFIGO,O=INFIGO IS,ST=Zagreb,C=HR" and root.is_ca
    assert root.sha256 == hashlib.sha256(root.der).hexdigest()
    assert leaf.weirds == () and leaf.key_type == "ec"


# --- property test ------------------------------------------------------------------

_DER = server_ders(TLS12)[0]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(_DER) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    ),
    st.integers(0, 40),
)
def test_mutated_der_parses_or_raises_bad_der(
    edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(_DER)
    for pos, value in edits:
        data[pos] = value
    try:
        cert = parse_certificate(bytes(data[: len(data) - cut]))
    except ParseError as exc:
        assert exc.kind == "x509_bad_der"
    else:
        assert all(w.startswith("x509_") for w in cert.weirds)
