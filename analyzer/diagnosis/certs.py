"""Certificate anomalies on any visible chain: self-signed, name mismatch, expired, spoofed CA, incomplete chain.

These are facts about the chain whatever the service; for Apple hosts the
interception stage weighs them too.
"""

from __future__ import annotations

from analyzer.diagnosis.interception import san_covers
from analyzer.inspect import TLSFacts


def certificate_anomalies(t: TLSFacts, at: float) -> list[str]:
    certs = t.certificates
    if not certs:
        return []
    leaf = certs[0]
    out: list[str] = []
    sni = t.session.server_name
    if leaf.self_signed:
        out.append(f"self-signed certificate ({leaf.subject})")
    if sni and not san_covers(leaf, sni):
        names = ", ".join(leaf.san_dns[:6]) or (leaf.subject_cn or "?")
        out.append(f"certificate name mismatch: {sni} vs {names}")
    if leaf.not_after_epoch is not None and leaf.not_after_epoch < at:
        out.append(f"certificate expired on {leaf.not_after}")
    if leaf.not_before_epoch is not None and leaf.not_before_epoch > at:
        out.append(f"certificate not valid before {leaf.not_before}")
    for c in certs[1:]:
        if c.is_ca and "x509_bad_public_key" in c.weirds:
            out.append(f"CA certificate {c.subject!r} carries a public key that cannot be used as sent "
                       "(explicit curve parameters: the CurveBall CA-spoofing technique, CVE-2020-0601)")
    if not leaf.self_issued and len(certs) == 1:
        out.append(f"the server sent only its own certificate, not the intermediate ({leaf.issuer}) that issued it")
    elif not leaf.self_issued and len(certs) > 1 and certs[1].subject != leaf.issuer:
        out.append(f"the chain is out of order or incomplete: {leaf.issuer} did not follow the leaf")
    return out
