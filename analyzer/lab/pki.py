"""Throwaway certificate authorities for one lab run.

Lab copies of Apple's CA names (so attribution can treat the issuer as Apple),
a non-Apple public-like CA for the control server, two corporate
inspection CAs named like real products (mitmproxy's default CA and a
Zscaler-like root + intermediate for squid's ssl-bump), and a third one
named like no product in signatures/issuers.toml (a corporate web filter's
own CA, for a second mitmproxy), so the "unknown inspection CA" path runs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

APPLE_ROOT_DN = {"CN": "Apple Root CA", "OU": "Apple Certification Authority", "O": "Apple Inc.", "C": "US"}
APPLE_AUTH_CA_DN = {"CN": "Apple Server Authentication CA", "OU": "Certification Authority", "O": "Apple Inc.", "C": "US"}
APPLE_PUBLIC_CA_DN = {"CN": "Apple Public Server RSA CA 12 - G1", "O": "Apple Inc.", "ST": "California", "C": "US"}
CONTROL_ROOT_DN = {"CN": "Lab Public Root CA", "O": "apple-net-analyzer lab", "C": "NL"}
MITM_CA_DN = {"CN": "mitmproxy", "O": "mitmproxy"}
ZSCALER_ROOT_DN = {"CN": "Zscaler Root CA", "OU": "Zscaler Inc.", "O": "Zscaler Inc.", "ST": "California", "C": "US"}
ZSCALER_INT_DN = {
    "CN": "Zscaler Intermediate Root CA (zscalerthree.net) (t)",
    "OU": "Zscaler Inc.",
    "O": "Zscaler Inc.",
    "ST": "California",
    "C": "US",
}
# Matches no [[inspection_product]] and no Apple issuer: IssuerClassifier says UNKNOWN (tested).
UNKNOWN_CA_DN = {"CN": "Acme Corp Web Filter CA", "O": "Acme Corp"}

# leaf file stem -> (issuing CA key, SAN names)
LEAVES: dict[str, tuple[str, tuple[str, ...]]] = {
    "gs": ("apple_auth", ("gs.apple.com", "gsa.apple.com")),
    "courier": ("apple_auth", ("*.push.apple.com", "courier.push.apple.com")),
    "identity": ("apple_auth", ("identity.apple.com",)),
    "mesu": ("apple_public", ("mesu.apple.com",)),
    "control": ("control_root", ("www.example.net",)),
    "cdn": ("apple_public", ("updates.cdn-apple.com",)),  # HTTP/3 + TCP 443 (scenarios._web_scenarios)
    "mask": ("apple_auth", ("mask.icloud.com", "mask-h2.icloud.com")),  # iCloud Private Relay ingress
    "tbsc": ("apple_auth", ("tbsc.apple.com",)),  # the TLS 1.3-only server
    "idmsa": ("apple_auth", ("idmsa.apple.com",)),  # the host the selective proxy splices
    "smtp": ("apple_public", ("smtp.mail.me.com",)),
}

_OIDS = {
    "CN": NameOID.COMMON_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "C": NameOID.COUNTRY_NAME,
}


def dn_string(dn: dict[str, str]) -> str:
    """The RFC 4514-like one-line form used in truth.json: CN first, as people write it."""
    return ", ".join(f"{k}={v}" for k, v in dn.items())


def _name(dn: dict[str, str]) -> x509.Name:
    # x509 names are stored most-significant first (C ... CN).
    return x509.Name([x509.NameAttribute(_OIDS[k], v) for k, v in reversed(list(dn.items()))])


@dataclass(frozen=True, slots=True)
class _Ca:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _build(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: _Ca | None,
    *,
    ca: bool,
    sans: tuple[str, ...] = (),
    days: int = 3650,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    else:
        usage = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
    builder = builder.add_extension(usage, critical=True)
    return builder.sign(signer_key, hashes.SHA256())


def _ca(dn: dict[str, str], issuer: _Ca | None = None) -> _Ca:
    key = _key()
    return _Ca(_build(_name(dn), key, issuer, ca=True), key)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@dataclass(frozen=True, slots=True)
class LabPki:
    """Paths of every PEM file the services and clients need."""

    dir: Path
    trust_apple: Path  # the pinning client: lab Apple root + the control server's root, nothing corporate
    trust_managed: Path  # the managed Mac: also trusts the mitmproxy, Zscaler and Acme roots
    apple_root: Path
    mitm_confdir: Path  # mitmproxy-ca.pem (key + cert) for --set confdir=
    squid_ca: Path  # Zscaler intermediate cert + key, squid's signing CA
    squid_chain: Path  # Zscaler intermediate + root, sent after the forged leaf
    unknown_ca_confdir: Path  # the second mitmproxy's confdir: mitmproxy-ca.pem of the Acme CA

    def chain(self, leaf: str) -> Path:
        """leaf cert followed by its intermediate, as nginx's ssl_certificate wants it."""
        return self.dir / f"{leaf}.chain.pem"

    def leaf(self, leaf: str) -> Path:
        return self.dir / f"{leaf}.pem"

    def intermediate(self, leaf: str) -> Path:
        """The issuing CA of a leaf (empty for the control server, whose root signs directly)."""
        return self.dir / f"{leaf}.ca.pem"

    def key(self, leaf: str) -> Path:
        return self.dir / f"{leaf}.key"


def build_pki(out: Path) -> LabPki:
    out.mkdir(parents=True, exist_ok=True)
    apple_root = _ca(APPLE_ROOT_DN)
    cas = {
        "apple_auth": _ca(APPLE_AUTH_CA_DN, apple_root),
        "apple_public": _ca(APPLE_PUBLIC_CA_DN, apple_root),
        "control_root": _ca(CONTROL_ROOT_DN),
    }
    for stem, (ca_name, sans) in LEAVES.items():
        ca = cas[ca_name]
        key = _key()
        cert = _build(_name({"CN": sans[0]}), key, ca, ca=False, sans=sans, days=90)
        intermediate = b"" if ca_name == "control_root" else _pem(ca.cert)
        (out / f"{stem}.pem").write_bytes(_pem(cert))
        (out / f"{stem}.ca.pem").write_bytes(intermediate)
        (out / f"{stem}.chain.pem").write_bytes(_pem(cert) + intermediate)
        (out / f"{stem}.key").write_bytes(_key_pem(key))
    mitm = _ca(MITM_CA_DN)
    zs_root = _ca(ZSCALER_ROOT_DN)
    zs_int = _ca(ZSCALER_INT_DN, zs_root)

    unknown = _ca(UNKNOWN_CA_DN)

    mitm_dir = _mitm_confdir(out / "mitmproxy", mitm)
    unknown_dir = _mitm_confdir(out / "mitmproxy-unknown-ca", unknown)
    (out / "zscaler-int.pem").write_bytes(_pem(zs_int.cert) + _key_pem(zs_int.key))
    (out / "zscaler-chain.pem").write_bytes(_pem(zs_int.cert) + _pem(zs_root.cert))
    (out / "apple-root.pem").write_bytes(_pem(apple_root.cert))
    apple_trust = _pem(apple_root.cert) + _pem(cas["control_root"].cert)
    (out / "trust-apple.pem").write_bytes(apple_trust)
    (out / "trust-managed.pem").write_bytes(apple_trust + _pem(mitm.cert) + _pem(zs_root.cert) + _pem(unknown.cert))
    for path in out.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # squid and chrony drop to their own users
    return LabPki(
        dir=out,
        trust_apple=out / "trust-apple.pem",
        trust_managed=out / "trust-managed.pem",
        apple_root=out / "apple-root.pem",
        mitm_confdir=mitm_dir,
        squid_ca=out / "zscaler-int.pem",
        squid_chain=out / "zscaler-chain.pem",
        unknown_ca_confdir=unknown_dir,
    )


def _mitm_confdir(d: Path, ca: _Ca) -> Path:
    """A mitmproxy confdir: mitmproxy takes its signing CA from mitmproxy-ca.pem (key + cert) there."""
    d.mkdir(exist_ok=True)
    (d / "mitmproxy-ca.pem").write_bytes(_key_pem(ca.key) + _pem(ca.cert))
    (d / "mitmproxy-ca-cert.pem").write_bytes(_pem(ca.cert))
    return d
