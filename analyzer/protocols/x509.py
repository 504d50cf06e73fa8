"""X.509 certificate facts via the `cryptography` package.

`parse_certificate(der)` turns one DER certificate into a frozen record. Only
an undecodable certificate raises (`ParseError("x509_bad_der")`); every field
read after that is guarded on its own, because real certificates carry
extensions that `cryptography` refuses to decode, and what did parse is
still worth reporting (the failures are listed in `.weirds`).

Distinguished names are rendered like Zeek's x509.log (OpenSSL's RFC 2253
printer): last RDN first, comma separated, OpenSSL short attribute names.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import (
    dsa,
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
)
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtensionOID, NameOID

from analyzer.protocols._buffer import ParseError

__all__ = ["Certificate", "parse_certificate", "parse_chain"]

# OpenSSL short names (what Zeek, OpenSSL and nDPI print), by OID.
_SHORT_NAMES: dict[str, str] = {
    NameOID.COMMON_NAME.dotted_string: "CN",
    NameOID.COUNTRY_NAME.dotted_string: "C",
    NameOID.LOCALITY_NAME.dotted_string: "L",
    NameOID.STATE_OR_PROVINCE_NAME.dotted_string: "ST",
    NameOID.STREET_ADDRESS.dotted_string: "street",
    NameOID.ORGANIZATION_NAME.dotted_string: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string: "OU",
    NameOID.SERIAL_NUMBER.dotted_string: "serialNumber",
    NameOID.SURNAME.dotted_string: "SN",
    NameOID.GIVEN_NAME.dotted_string: "GN",
    NameOID.TITLE.dotted_string: "title",
    NameOID.GENERATION_QUALIFIER.dotted_string: "generationQualifier",
    NameOID.X500_UNIQUE_IDENTIFIER.dotted_string: "x500UniqueIdentifier",
    NameOID.DN_QUALIFIER.dotted_string: "dnQualifier",
    NameOID.PSEUDONYM.dotted_string: "pseudonym",
    NameOID.USER_ID.dotted_string: "UID",
    NameOID.DOMAIN_COMPONENT.dotted_string: "DC",
    NameOID.EMAIL_ADDRESS.dotted_string: "emailAddress",
    NameOID.JURISDICTION_COUNTRY_NAME.dotted_string: "jurisdictionC",
    NameOID.JURISDICTION_LOCALITY_NAME.dotted_string: "jurisdictionL",
    NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME.dotted_string: "jurisdictionST",
    NameOID.BUSINESS_CATEGORY.dotted_string: "businessCategory",
    NameOID.POSTAL_ADDRESS.dotted_string: "postalAddress",
    NameOID.POSTAL_CODE.dotted_string: "postalCode",
    NameOID.INN.dotted_string: "INN",
    NameOID.OGRN.dotted_string: "OGRN",
    NameOID.SNILS.dotted_string: "SNILS",
    NameOID.UNSTRUCTURED_NAME.dotted_string: "unstructuredName",
    NameOID.ORGANIZATION_IDENTIFIER.dotted_string: "organizationIdentifier",
    "2.5.4.13": "description",
    "2.5.4.41": "name",
    "2.5.4.43": "initials",
}

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Certificate:
    subject: str  # RFC 4514 order and OpenSSL names, as in Zeek's x509.log
    issuer: str
    subject_attrs: tuple[tuple[str, str], ...]  # (short name, value) in DER order
    issuer_attrs: tuple[tuple[str, str], ...]
    subject_cn: str | None
    subject_o: str | None
    issuer_cn: str | None
    issuer_o: str | None
    serial: str  # upper-case hex, even length, as OpenSSL and Zeek print it
    version: int | None
    not_before: str | None  # ISO 8601, UTC, e.g. "2015-10-10T15:55:47Z"
    not_after: str | None
    not_before_epoch: float | None
    not_after_epoch: float | None
    san_dns: tuple[str, ...]
    san_ip: tuple[str, ...]
    san_email: tuple[str, ...]
    san_uri: tuple[str, ...]
    is_ca: bool | None  # None when basicConstraints is absent
    path_len: int | None
    self_issued: bool  # subject == issuer
    self_signed: bool  # self-issued and its signature verifies with its own key
    key_type: str | None  # "rsa", "ec", "ed25519", "ed448", "dsa"
    key_size: int | None
    key_curve: str | None
    signature_algorithm: str | None
    sha256: str
    sha1: str
    der: bytes
    weirds: tuple[str, ...]


def _guard(weirds: list[str], kind: str, fn: Callable[[], _T], default: _T) -> _T:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - cryptography raises many types on odd DER
        weirds.append(kind)
        return default


def _attr_value(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return value.hex()
    return value


def _name_attrs(name: x509.Name) -> tuple[tuple[str, str], ...]:
    out = []
    for rdn in name.rdns:
        for attr in rdn:
            key = _SHORT_NAMES.get(attr.oid.dotted_string, attr.oid.dotted_string)
            out.append((key, _attr_value(attr.value)))
    return tuple(out)


def _name_string(name: x509.Name) -> str:
    overrides = {
        x509.ObjectIdentifier(oid): short for oid, short in _SHORT_NAMES.items()
    }
    return name.rfc4514_string(attr_name_overrides=overrides)


def _first(attrs: tuple[tuple[str, str], ...], key: str) -> str | None:
    # The most specific (last) value wins, as in OpenSSL's lookups by position.
    values = [v for k, v in attrs if k == key]
    return values[-1] if values else None


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key_facts(cert: x509.Certificate) -> tuple[str | None, int | None, str | None]:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa", key.key_size, None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec", key.key_size, key.curve.name
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519", 256, None
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448", 456, None
    if isinstance(key, dsa.DSAPublicKey):
        return "dsa", key.key_size, None
    return type(key).__name__.lower(), None, None


def _sans(
    cert: x509.Certificate,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    try:
        ext = cert.extensions.get_extension_for_oid(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME
        )
    except x509.ExtensionNotFound:
        return (), (), (), ()
    san = ext.value
    assert isinstance(san, x509.SubjectAlternativeName)
    return (
        tuple(san.get_values_for_type(x509.DNSName)),
        tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        tuple(san.get_values_for_type(x509.RFC822Name)),
        tuple(san.get_values_for_type(x509.UniformResourceIdentifier)),
    )


def _basic_constraints(cert: x509.Certificate) -> tuple[bool | None, int | None]:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS)
    except x509.ExtensionNotFound:
        return None, None
    bc = ext.value
    assert isinstance(bc, x509.BasicConstraints)
    return bc.ca, bc.path_length


def _verify_signature(cert: x509.Certificate) -> None:
    # verify_directly_issued_by() refuses SHA-1 signatures, which old roots still
    # carry; checking the signature by hand keeps "self-signed" meaning what it says.
    key = cert.public_key()
    sig, tbs = cert.signature, cert.tbs_certificate_bytes
    hash_alg = cert.signature_hash_algorithm
    if isinstance(key, rsa.RSAPublicKey):
        pad = cert.signature_algorithm_parameters
        if hash_alg is None or not isinstance(pad, (padding.PKCS1v15, padding.PSS)):
            raise ValueError("unsupported RSA signature parameters")
        key.verify(sig, tbs, pad, hash_alg)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if hash_alg is None:
            raise ValueError("ECDSA without hash")
        key.verify(sig, tbs, ec.ECDSA(hash_alg))
    elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        key.verify(sig, tbs)
    elif isinstance(key, dsa.DSAPublicKey):
        if hash_alg is None:
            raise ValueError("DSA without hash")
        key.verify(sig, tbs, hash_alg)
    else:
        cert.verify_directly_issued_by(cert)


def _verifies_itself(cert: x509.Certificate) -> bool:
    try:
        _verify_signature(cert)
    except Exception:  # noqa: BLE001 - wrong signature, unsupported algorithm, bad key
        return False
    return True


def _serial_hex(serial: int) -> str:
    # Even number of upper-case digits, as OpenSSL (and so Zeek) print serials.
    text = format(serial, "X") if serial >= 0 else "-" + format(-serial, "X")
    return (
        text
        if len(text.lstrip("-")) % 2 == 0
        else text.replace(text.lstrip("-"), "0" + text.lstrip("-"))
    )


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = getattr(oid, "_name", None)  # cryptography's table of known OIDs
    return (
        name if isinstance(name, str) and name != "Unknown OID" else oid.dotted_string
    )


@functools.lru_cache(maxsize=2048)
def parse_certificate(der: bytes) -> Certificate:
    """Facts of one DER certificate; raises ParseError("x509_bad_der") if it cannot be decoded.

    Cached: a capture repeats a handful of certificates thousands of times (the
    benchmark: 8 distinct behind ~30,000 chains, 610 us per parse), and the
    result is a frozen value of the bytes alone. Errors are not cached.
    """
    # The facts below are read lazily by cryptography, and reading some (the
    # certificate policies of an odd certificate) warns too: those warnings are
    # weirds of the certificate as well, never console output (found by fuzzing).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CryptographyDeprecationWarning)
        cert = _read_certificate(der)
    if not caught:
        return cert
    late = tuple(_warning_weird(w) for w in caught)
    return replace(cert, weirds=tuple(dict.fromkeys(cert.weirds + late)))


def _warning_weird(w: warnings.WarningMessage) -> str:
    return "x509_bad_serial" if "serial number" in str(w.message) else "x509_deprecated_encoding"


def _read_certificate(der: bytes) -> Certificate:
    weirds: list[str] = []
    # cryptography warns (rather than fails) on some RFC 5280 violations such as a
    # non-positive serial; those are weirds of the certificate, not console output.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CryptographyDeprecationWarning)
        try:
            cert = x509.load_der_x509_certificate(der)
            serial = _serial_hex(cert.serial_number)
        except Exception as exc:  # noqa: BLE001 - ValueError and friends from the Rust decoder
            raise ParseError("x509_bad_der", str(exc)) from None
    weirds.extend(_warning_weird(w) for w in caught)
    empty: tuple[tuple[str, str], ...] = ()
    subject_attrs = _guard(
        weirds, "x509_bad_subject", lambda: _name_attrs(cert.subject), empty
    )
    issuer_attrs = _guard(
        weirds, "x509_bad_issuer", lambda: _name_attrs(cert.issuer), empty
    )
    subject = _guard(weirds, "x509_bad_subject", lambda: _name_string(cert.subject), "")
    issuer = _guard(weirds, "x509_bad_issuer", lambda: _name_string(cert.issuer), "")
    not_before_dt = _guard(
        weirds, "x509_bad_validity", lambda: cert.not_valid_before_utc, None
    )
    not_after_dt = _guard(
        weirds, "x509_bad_validity", lambda: cert.not_valid_after_utc, None
    )
    no_sans: tuple[
        tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]
    ] = ((), (), (), ())
    san_dns, san_ip, san_email, san_uri = _guard(
        weirds, "x509_bad_san", lambda: _sans(cert), no_sans
    )
    no_bc: tuple[bool | None, int | None] = (None, None)
    is_ca, path_len = _guard(
        weirds, "x509_bad_basic_constraints", lambda: _basic_constraints(cert), no_bc
    )
    no_key: tuple[str | None, int | None, str | None] = (None, None, None)
    key_type, key_size, key_curve = _guard(
        weirds, "x509_bad_public_key", lambda: _key_facts(cert), no_key
    )
    sig_alg = _guard(
        weirds,
        "x509_bad_signature_algorithm",
        lambda: _oid_name(cert.signature_algorithm_oid),
        None,
    )
    version = _guard(weirds, "x509_bad_version", lambda: cert.version.value + 1, None)
    raw_subject = _guard(
        weirds, "x509_bad_subject", lambda: cert.subject.public_bytes(), b""
    )
    raw_issuer = _guard(
        weirds, "x509_bad_issuer", lambda: cert.issuer.public_bytes(), b"?"
    )
    self_issued = raw_subject == raw_issuer
    return Certificate(
        subject=subject,
        issuer=issuer,
        subject_attrs=subject_attrs,
        issuer_attrs=issuer_attrs,
        subject_cn=_first(subject_attrs, "CN"),
        subject_o=_first(subject_attrs, "O"),
        issuer_cn=_first(issuer_attrs, "CN"),
        issuer_o=_first(issuer_attrs, "O"),
        serial=serial,
        version=version,
        not_before=_iso(not_before_dt) if not_before_dt else None,
        not_after=_iso(not_after_dt) if not_after_dt else None,
        not_before_epoch=not_before_dt.timestamp() if not_before_dt else None,
        not_after_epoch=not_after_dt.timestamp() if not_after_dt else None,
        san_dns=san_dns,
        san_ip=san_ip,
        san_email=san_email,
        san_uri=san_uri,
        is_ca=is_ca,
        path_len=path_len,
        self_issued=self_issued,
        self_signed=self_issued and _verifies_itself(cert),
        key_type=key_type,
        key_size=key_size,
        key_curve=key_curve,
        signature_algorithm=sig_alg,
        sha256=hashlib.sha256(der).hexdigest(),
        sha1=hashlib.sha1(der, usedforsecurity=False).hexdigest(),
        der=bytes(der),
        weirds=tuple(dict.fromkeys(weirds)),
    )


def parse_chain(
    ders: tuple[bytes, ...] | list[bytes],
) -> tuple[tuple[Certificate, ...], tuple[str, ...]]:
    """Parse each certificate of a chain; undecodable ones become weirds instead of raising."""
    certs: list[Certificate] = []
    weirds: list[str] = []
    for der in ders:
        try:
            certs.append(parse_certificate(der))
        except ParseError as exc:
            weirds.append(exc.kind)
    return tuple(certs), tuple(weirds)
