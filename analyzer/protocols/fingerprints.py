"""TLS client/server fingerprints: JA3, JA3S and JA4.

JA3/JA3S follow Salesforce's definition (BSD-3). JA4 follows FoxIO's
technical_details/JA4.md (JA4 itself is BSD-3). The other JA4+ methods
(JA4S, JA4X, JA4T, ...) are under the FoxIO License, which bars commercial
use, so they are deliberately not implemented here.

A capture holds thousands of hellos from a few dozen client builds, so the
fingerprints are computed once per distinct input (the fields each one reads)
and cached, like X.509 parsing. Inputs with more than `_CACHED_VALUES` code
points (no real client sends that many) bypass the caches, so what they hold
stays small whatever the capture.
"""

from __future__ import annotations

import functools
import hashlib
from typing import NamedTuple

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


_CACHED_VALUES = 256


def _dash(values: list[int]) -> str:
    return "-".join(str(v) for v in values)


def _ja3_uncached(
    version: int,
    ciphers: tuple[int, ...],
    extension_types: tuple[int, ...],
    groups: tuple[int, ...],
    point_formats: tuple[int, ...],
) -> tuple[str, str]:
    s = ",".join(
        (
            str(version),
            _dash([c for c in ciphers if not is_grease(c)]),
            _dash([t for t in extension_types if not is_grease(t)]),
            _dash([g for g in groups if not is_grease(g)]),
            _dash(list(point_formats)),
        )
    )
    return s, hashlib.md5(s.encode(), usedforsecurity=False).hexdigest()


_ja3 = functools.lru_cache(maxsize=4096)(_ja3_uncached)


def ja3_string(ch: ClientHello) -> str:
    """SSLVersion,Ciphers,Extensions,EllipticCurves,ECPointFormats (decimal, GREASE removed)."""
    return ja3(ch)[0]


def ja3(ch: ClientHello) -> tuple[str, str]:
    exts = ch.extension_types
    small = (
        len(ch.cipher_suites) + len(exts) + len(ch.supported_groups) + len(ch.ec_point_formats)
        <= _CACHED_VALUES
    )
    return (_ja3 if small else _ja3_uncached)(
        ch.legacy_version,
        ch.cipher_suites,
        exts,
        ch.supported_groups,
        ch.ec_point_formats,
    )


def _ja3s_uncached(version: int, cipher: int, extension_types: tuple[int, ...]) -> tuple[str, str]:
    s = ",".join(
        (
            str(version),
            str(cipher),
            _dash([t for t in extension_types if not is_grease(t)]),
        )
    )
    return s, hashlib.md5(s.encode(), usedforsecurity=False).hexdigest()


_ja3s = functools.lru_cache(maxsize=4096)(_ja3s_uncached)


def ja3s_string(sh: ServerHello) -> str:
    """SSLVersion,Cipher,Extensions (decimal)."""
    return ja3s(sh)[0]


def ja3s(sh: ServerHello) -> tuple[str, str]:
    exts = sh.extension_types
    return (_ja3s if len(exts) <= _CACHED_VALUES else _ja3s_uncached)(
        sh.legacy_version, sh.cipher_suite, exts
    )


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12] if text else _EMPTY_HASH


def _ja4_version(key: _JA4Input) -> str:
    # The spec: the highest supported_versions entry (GREASE ignored) when the
    # extension is present, else the ClientHello's legacy version.
    version = key.legacy_version
    if ExtensionType.SUPPORTED_VERSIONS in key.extension_types:
        real = [v for v in key.supported_versions if not is_grease(v)]
        if real:
            version = max(real)
    return _JA4_VERSIONS.get(version, "00")


def _is_alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def _ja4_alpn(first: bytes) -> str:
    if not first:
        return "00"
    if _is_alnum(first[0]) and _is_alnum(first[-1]):
        # A one-character value is both the first and the last character.
        return chr(first[0]) + chr(first[-1])
    # Non-alphanumeric first or last byte: first and last hex digit of the value.
    hexed = first.hex()
    return hexed[0] + hexed[-1]


class _JA4Input(NamedTuple):
    """The ClientHello fields JA4 reads (a cache key)."""

    transport: str
    legacy_version: int
    cipher_suites: tuple[int, ...]
    extension_types: tuple[int, ...]
    supported_versions: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    first_alpn: bytes  # empty when there is no ALPN


def _ja4_input(ch: ClientHello, transport: str) -> _JA4Input:
    return _JA4Input(
        transport,
        ch.legacy_version,
        ch.cipher_suites,
        ch.extension_types,
        ch.supported_versions,
        ch.signature_algorithms,
        ch.alpn_raw[0] if ch.alpn_raw else b"",
    )


def _ja4_parts(key: _JA4Input, original_order: bool) -> tuple[str, str, str]:
    ciphers = [c for c in key.cipher_suites if not is_grease(c)]
    exts = [t for t in key.extension_types if not is_grease(t)]
    sigalgs = [s for s in key.signature_algorithms if not is_grease(s)]
    sni = "d" if ExtensionType.SERVER_NAME in exts else "i"
    head = (
        f"{key.transport}{_ja4_version(key)}{sni}"
        f"{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}{_ja4_alpn(key.first_alpn)}"
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


def _ja4_uncached(key: _JA4Input) -> str:
    head, ciphers, exts = _ja4_parts(key, original_order=False)
    return f"{head}_{_hash12(ciphers)}_{_hash12(exts)}"


_ja4 = functools.lru_cache(maxsize=4096)(_ja4_uncached)


def ja4(ch: ClientHello, transport: str = "t") -> str:
    """JA4 of a ClientHello; transport is "t" (TCP), "q" (QUIC) or "d" (DTLS)."""
    key = _ja4_input(ch, transport)
    small = (
        len(key.cipher_suites)
        + len(key.extension_types)
        + len(key.supported_versions)
        + len(key.signature_algorithms)
        + len(key.first_alpn)
        <= _CACHED_VALUES
    )
    return (_ja4 if small else _ja4_uncached)(key)


def ja4_raw(
    ch: ClientHello, transport: str = "t", *, original_order: bool = False
) -> str:
    """JA4_r (sorted) or JA4_ro (wire order) raw form, for debugging a fingerprint."""
    head, ciphers, exts = _ja4_parts(_ja4_input(ch, transport), original_order)
    return f"{head}_{ciphers}_{exts}"
