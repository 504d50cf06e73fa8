"""Is a TLS-inspecting proxy substituting certificates on Apple connections?

TLS <= 1.2 shows the chain: an issuer outside Apple's own (and outside the
public CAs of the CRL/OCSP hosts) on an Apple host is a substitute; a known
inspection product's CA names the product. Hosts on Apple's private CA (gs,
gsa, gdmf) are expected to chain to it.

TLS 1.3 hides the chain, so the evidence is indirect, and never one weak
signal alone, and never another flow's: a flow is suspected only on its own
signals. They come in two kinds. The path tells that a box nearer than the
server answers TCP in its name (TTL / hop count, a ServerHello that waits on an
upstream connection): a transparent proxy, which may well splice (pass TLS
through untouched), as a selective proxy does for the hosts it exempts. The
handshake tells that the client refused what it was shown (a certificate
rejection alert, or an abort right after the server's first flight). Only both
together say "intercepted"; the path alone is a transparent proxy, reported as
such; another connection's substitute certificate is context (it may name the
product), never evidence about this one.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.catalogue.issuers import IssuerClassifier, IssuerKind, IssuerName
from analyzer.diagnosis.model import Attribution, Interception
from analyzer.diagnosis.paths import PathBaselines, closer_than_server
from analyzer.inspect import FlowFacts, TLSFacts
from analyzer.protocols.x509 import Certificate

CERT_REJECTION_ALERTS = frozenset({"unknown_ca", "bad_certificate", "certificate_unknown", "unsupported_certificate",
                                   "access_denied", "decrypt_error"})


def _issuer(c: Certificate) -> IssuerName:
    ou = next((v for k, v in c.issuer_attrs if k == "OU"), None)
    return IssuerName(c.issuer, c.issuer_cn, c.issuer_o, ou)


def _subject_as_issuer(c: Certificate) -> IssuerName:
    ou = next((v for k, v in c.subject_attrs if k == "OU"), None)
    return IssuerName(c.subject, c.subject_cn, c.subject_o, ou)


def san_covers(cert: Certificate, name: str) -> bool:
    n = name.lower().rstrip(".")
    names = [s.lower() for s in cert.san_dns] or ([cert.subject_cn.lower()] if cert.subject_cn else [])
    for s in names:
        if s == n:
            return True
        if s.startswith("*.") and n.count(".") == s.count(".") and n.endswith(s[1:]):
            return True
    return False


def assess_chain(t: TLSFacts, attribution: Attribution, classifier: IssuerClassifier) -> Interception | None:
    """Interception judged from a visible certificate chain (TLS <= 1.2, or a decrypted one)."""
    certs = t.certificates
    if not certs:
        return None
    leaf = certs[0]
    evidence: list[str] = []
    # A known inspection product anywhere in the chain (issuer of any cert, or a CA cert's own subject).
    for c in certs:
        for who in (_issuer(c), _subject_as_issuer(c)):
            v = classifier.classify(who)
            if v.kind is IssuerKind.INSPECTION and v.product is not None:
                evidence.append(f"certificate issuer {leaf.issuer!r} ({v.matched_on}: {v.product.product})")
                return Interception(v.product.product, leaf.issuer, "high", tuple(evidence + _leaf_oddities(t, leaf)))
    if not attribution.is_apple:
        return None
    verdict = classifier.classify(_issuer(leaf))
    if verdict.kind is IssuerKind.APPLE:
        return None
    oddities = _leaf_oddities(t, leaf)
    evidence.append(f"leaf issued by {leaf.issuer!r}, which is not one of the issuers Apple's services present")
    confidence = "high" if oddities else "medium"
    return Interception(None, leaf.issuer, confidence, tuple(evidence + oddities))


def _leaf_oddities(t: TLSFacts, leaf: Certificate) -> list[str]:
    out = []
    sni = t.session.server_name
    if sni and not san_covers(leaf, sni):
        out.append(f"the certificate's names ({', '.join(leaf.san_dns[:5]) or leaf.subject_cn}) do not cover {sni}")
    if leaf.self_signed:
        out.append("the server's certificate is self-signed")
    return out


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    weight: int
    text: str

    @property
    def from_path(self) -> bool:
        """A path signal: something nearer than the server answers TCP for it (not proof of decryption)."""
        return self.name in PATH_SIGNALS


PATH_SIGNALS = frozenset({"server_nearer", "serverhello_delayed"})


def tls13_signals(f: FlowFacts, baselines: PathBaselines) -> list[Signal]:
    """Indirect evidence of interception on a TLS flow whose chain is not visible."""
    t = f.tls
    r = f.flow
    if t is None or t.server_hello is None:
        return []
    signals: list[Signal] = []
    alert = t.session.last_alert
    if alert is not None and alert.from_client and not t.session.established:
        if not alert.encrypted and alert.name in CERT_REJECTION_ALERTS:
            signals.append(Signal("client_rejected_certificate", 3,
                                  f"the client rejected the server's certificate (fatal {alert.name} alert) right "
                                  "after the server's first flight: Apple's clients trust Apple's certificates"))
        elif alert.inferred or alert.encrypted:
            signals.append(Signal("client_aborted", 2,
                                  "the client aborted after the server's first flight (an alert-sized encrypted "
                                  "record instead of its Finished)"))
    ttl = r.server.syn_ttl
    if ttl is not None:
        near = closer_than_server(ttl, r.server_ip, baselines, None)
        if near:
            signals.append(Signal("server_nearer", 2, "the TLS server answering for this Apple address: " + near[0]))
    rtt = r.rtt_syn_synack
    # Karn's rule: once the client retransmitted, which copy of its ClientHello the
    # ServerHello answers is unknown (a TCP Fast Open SYN resent for seconds, sv-tfo-icloud),
    # so the delay is no evidence. A span port's duplicates are not retransmissions.
    if t.client_hello_ts is not None and t.server_hello_ts is not None and rtt is not None \
            and r.client.retransmissions <= r.client.duplicates:
        delay = t.server_hello_ts - t.client_hello_ts
        if delay > 5 * rtt and delay - rtt > 0.010:
            signals.append(Signal("serverhello_delayed", 1,
                                  f"the ServerHello took {delay * 1000:.0f} ms while the TCP round trip was "
                                  f"{rtt * 1000:.1f} ms: the answering box fetched something upstream first"))
    return signals


def judge_signals(signals: list[Signal], repeated: bool) -> Interception | None:
    """Interception needs the client's own refusal AND a box nearer than the server; anything less is None.

    `repeated`: the same refusal pattern on several Apple connections of the capture (adds weight, not a kind).
    """
    handshake = [s for s in signals if not s.from_path]
    path = [s for s in signals if s.from_path]
    if not handshake or not path:
        return None
    if repeated:
        signals = [*signals, Signal("repeated", 1, "the same pattern repeats on several Apple connections")]
    score = sum(s.weight for s in signals)
    if score < 4:
        return None
    confidence = "high" if score >= 6 else "medium"
    return Interception(None, None, confidence, tuple(s.text for s in signals))
