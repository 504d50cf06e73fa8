"""TLS client/server fingerprints: JA3, JA3S and JA4.

JA3/JA3S follow Salesforce's definition (BSD-3). JA4 follows FoxIO's
technical_details/JA4.md (JA4 itself is BSD-3). The other JA4+ methods
(JA4S, JA4X, JA4T, ...) are under the FoxIO License, which bars commercial
use, so they are deliberately not implemented here.
"""

from __future__ import annotations

import hashlib

from analyzer.protocols.tls import ClientHello, ServerHello
from analyzer.protocols.tls_registry import ExtensionType, is_grease

__all__ = ["ja3", "ja3_string", "ja3s", "ja3s_string", "ja4", "ja4_raw"]

_EMPTY_HASH = "000000000000"

_JA4_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}


def _dash(values: list[int]) -> str:
    return "-".join(str(v) for v in values)


def ja3_string(ch: ClientHello) -> str:
    """SSLVersion,Ciphers,Extensions,EllipticCurves,ECPointFormats (decimal, GREASE removed)."""
    return ",".join(
        (
            str(ch.legacy_version),
            _dash([c for c in ch.cipher_suites if not is_grease(c)]),
            _dash([t for t in ch.extension_types if not is_grease(t)]),
            _dash([g for g in ch.supported_groups if not is_grease(g)]),
            _dash(list(ch.ec_point_formats)),
        )
    )


def ja3(ch: ClientHello) -> tuple[str, str]:
    s = ja3_string(ch)
    return s, hashlib.md5(s.encode(), usedforsecurity=False).hexdigest()


def ja3s_string(sh: ServerHello) -> str:
    """SSLVersion,Cipher,Extensions (decimal)."""
    return ",".join(
        (
            str(sh.legacy_version),
            str(sh.cipher_suite),
            _dash([t for t in sh.extension_types if not is_grease(t)]),
        )
    )


def ja3s(sh: ServerHello) -> tuple[str, str]:
    s = ja3s_string(sh)
    return s, hashlib.md5(s.encode(), usedforsecurity=False).hexdigest()


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12] if text else _EMPTY_HASH


def _ja4_version(ch: ClientHello) -> str:
    # The spec: the highest supported_versions entry (GREASE ignored) when the
    # extension is present, else the ClientHello's legacy version.
    version = ch.legacy_version
    if ExtensionType.SUPPORTED_VERSIONS in ch.extension_types:
        real = [v for v in ch.supported_versions if not is_grease(v)]
        if real:
            version = max(real)
    return _JA4_VERSIONS.get(version, "00")


def _is_alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def _ja4_alpn(ch: ClientHello) -> str:
    if not ch.alpn_raw or not ch.alpn_raw[0]:
        return "00"
    first = ch.alpn_raw[0]
    if _is_alnum(first[0]) and _is_alnum(first[-1]):
        # A one-character value is both the first and the last character.
        return chr(first[0]) + chr(first[-1])
    # Non-alphanumeric first or last byte: first and last hex digit of the value.
    hexed = first.hex()
    return hexed[0] + hexed[-1]


def _ja4_parts(
    ch: ClientHello, transport: str, original_order: bool
) -> tuple[str, str, str]:
    ciphers = [c for c in ch.cipher_suites if not is_grease(c)]
    exts = [t for t in ch.extension_types if not is_grease(t)]
    sigalgs = [s for s in ch.signature_algorithms if not is_grease(s)]
    sni = "d" if ExtensionType.SERVER_NAME in exts else "i"
    head = (
        f"{transport}{_ja4_version(ch)}{sni}"
        f"{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}{_ja4_alpn(ch)}"
    )
    if not original_order:
        ciphers = sorted(ciphers)
        exts = sorted(
            t
            for t in exts
            if t
            not in (
                ExtensionType.SERVER_NAME,
                ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION,
            )
        )
    cipher_text = ",".join(f"{c:04x}" for c in ciphers)
    ext_text = ",".join(f"{t:04x}" for t in exts)
    if ext_text and sigalgs:
        ext_text += "_" + ",".join(f"{s:04x}" for s in sigalgs)
    return head, cipher_text, ext_text


def ja4(ch: ClientHello, transport: str = "t") -> str:
    """JA4 of a ClientHello; transport is "t" (TCP), "q" (QUIC) or "d" (DTLS)."""
    head, ciphers, exts = _ja4_parts(ch, transport, original_order=False)
    return f"{head}_{_hash12(ciphers)}_{_hash12(exts)}"


def ja4_raw(
    ch: ClientHello, transport: str = "t", *, original_order: bool = False
) -> str:
    """JA4_r (sorted) or JA4_ro (wire order) raw form, for debugging a fingerprint."""
    head, ciphers, exts = _ja4_parts(ch, transport, original_order=original_order)
    return f"{head}_{ciphers}_{exts}"
