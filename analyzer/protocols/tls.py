"""TLS record and handshake parsing over one direction of a TCP stream (sans-I/O).

The flow table hands this module the first bytes of each direction of a TCP
connection, in order, possibly cut at a cap or a gap. Everything here is a
pure function of those bytes:

* `looks_like_tls` sniffs content (TLS runs on any port);
* `split_records` cuts the stream into records;
* `parse_client_hello` / `parse_server_hello` / `parse_certificate_message` /
  `parse_alert` parse single messages (the QUIC parser reuses
  `parse_client_hello` on the ClientHello carried in CRYPTO frames);
* `analyze_direction` walks one direction, reassembling handshake messages
  across records, and notes where the stream turns encrypted;
* `summarize_session` combines both directions into Zeek-like facts
  (version, cipher, established, ssl_history, alerts, certificate chain);
* `analyze_exchange` does both for a flow inspector in one go, without a
  dataclass per record (the same facts; the inspector runs it on every flow).

Recoverable oddities become weird names in `.weirds`; only the single-message
parsers raise, and only `ParseError`.

Speed: a capture has tens of thousands of sessions, so the hot path avoids
per-field cursor calls and per-record objects: hellos are read by direct
slicing (falling back to the Buffer-cursor parsers, which define every error
and weird, on anything unusual), records travel as tuples inside the module,
and the contents that repeat across a capture's hellos are parsed once
(bounded caches of pure functions, as for X.509).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from analyzer.dataclass_tools import fast_constructor
from analyzer.protocols._buffer import Buffer, ParseError
from analyzer.protocols.tls_registry import (
    PQ_GROUPS,
    AlertLevel,
    ContentType,
    ExtensionType,
    HandshakeType,
    TLSVersion,
    alert_name,
    cipher_name,
    is_grease,
    version_name,
)

__all__ = [
    "ENCRYPTED_ALERT_LENGTHS",
    "MAX_RECORD_LENGTH",
    "Alert",
    "ClientHello",
    "EncryptedRecord",
    "Event",
    "Extension",
    "HandshakeMessage",
    "ParseError",
    "ServerHello",
    "SessionAlert",
    "TLSDirection",
    "TLSExchange",
    "TLSRecord",
    "TLSSession",
    "analyze_direction",
    "analyze_exchange",
    "is_tls13",
    "looks_like_tls",
    "parse_alert",
    "parse_certificate_message",
    "parse_client_hello",
    "parse_server_hello",
    "split_records",
    "summarize_session",
    "tls_start",
]

# RFC 8446 5.2: a TLSCiphertext may carry up to 2^14 + 256 bytes; TLS 1.2
# allowed 2^14 + 2048. Anything longer is not TLS (or a desynchronised stream).
MAX_RECORD_LENGTH = (1 << 14) + 2048
# Application-data bodies are opaque; keep only small ones (alert-sized ones matter).
_KEEP_APPDATA_BODY = 64
# A handshake message longer than this is treated as garbage rather than buffered.
MAX_HANDSHAKE_LENGTH = 1 << 20

HRR_RANDOM = bytes.fromhex(
    "CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C"
)
_DOWNGRADE_TLS12 = b"DOWNGRD\x01"
_DOWNGRADE_TLS11 = b"DOWNGRD\x00"

# Encrypted TLS 1.3 record sizes: inner plaintext + 1 content-type byte + AEAD tag.
_AEAD_TAG = 16
ENCRYPTED_ALERT_LENGTHS = frozenset(
    {2 + 1 + _AEAD_TAG, 2 + 1 + 8}
)  # 19 (GCM/ChaCha), 11 (CCM_8)






# ---------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class TLSRecord:
    content_type: int
    version: int
    length: int
    offset: int  # of the 5-byte record header in the direction's stream
    body: bytes | None  # None for large application-data records


_make_record = fast_constructor(TLSRecord)
_APPLICATION_DATA = int(ContentType.APPLICATION_DATA)


def looks_like_tls(data: bytes) -> bool:
    """Whether a direction's first bytes look like a TLS record (or an SSLv2 ClientHello)."""
    if len(data) >= 3 and data[0] in (20, 21, 22, 23) and data[1] == 3 and data[2] <= 4:
        if len(data) < 5:
            return True
        length = (data[3] << 8) | data[4]
        return 0 < length <= MAX_RECORD_LENGTH
    return _looks_like_sslv2_client_hello(data)


def tls_start(data: bytes) -> int | None:
    """Offset where TLS begins: 0 normally, or after an RDP (TPKT/X.224) negotiation.

    RDP's "enhanced security" runs TLS on the same TCP stream right after an
    X.224 connection request/confirm carried in TPKT PDUs (03 00 len16).
    """
    if looks_like_tls(data):
        return 0  # the usual case, without slicing
    pos = 0
    for _ in range(4):
        if looks_like_tls(data[pos:]):
            return pos
        if len(data) - pos < 4 or data[pos] != 3 or data[pos + 1] != 0:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 4:
            return None
        pos += length
    return pos if looks_like_tls(data[pos:]) else None


def _looks_like_sslv2_client_hello(data: bytes) -> bool:
    # 2-byte header with the high bit set, msg type 1, version 0x0002 or 0x03xx.
    if len(data) < 5 or not data[0] & 0x80 or data[2] != 1:
        return False
    length = ((data[0] & 0x7F) << 8) | data[1]
    return length >= 9 and (data[3:5] == b"\x00\x02" or (data[3] == 3 and data[4] <= 4))


_RecordFields = tuple[int, int, int, int, bytes | None]  # TLSRecord's, in order
_record_header = struct.Struct(">BBBH").unpack_from  # type, version major, minor, length


def _split(data: bytes, pos: int = 0) -> tuple[list[_RecordFields], int, str | None]:
    """Records from `pos` on (as tuples), offsets in `data`; also where they end and why."""
    records: list[_RecordFields] = []
    append = records.append
    end = len(data)
    header = _record_header
    while end - pos >= 5:
        ctype, major, minor, length = header(data, pos)
        if length > MAX_RECORD_LENGTH:
            return records, pos, "tls_bad_record_length"
        if major != 3:
            return records, pos, "tls_bad_record_version"
        if not 20 <= ctype <= 26:
            return records, pos, "tls_unknown_content_type"
        body_end = pos + 5 + length
        if body_end > end:
            break  # stream cut inside this record: not an error
        keep = ctype != _APPLICATION_DATA or length <= _KEEP_APPDATA_BODY
        body = data[pos + 5 : body_end] if keep else None
        append((ctype, 0x0300 | minor, length, pos, body))
        pos = body_end
    return records, pos, None


def split_records(data: bytes) -> tuple[list[TLSRecord], int]:
    """Cut a stream into records; returns them and how many bytes they cover.

    A trailing partial record is left unconsumed (the stream was cut). A record
    header with an impossible length, a non-TLS version or an unknown content
    type raises ParseError.
    """
    records, consumed, error = _split(data)
    if error is not None:
        raise ParseError(error, f"at offset {consumed}")
    return [_make_record(*r) for r in records], consumed


# ---------------------------------------------------------------------------
# Hellos


@dataclass(frozen=True, slots=True)
class Extension:
    type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ClientHello:
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]  # wire order, GREASE kept
    compression_methods: tuple[int, ...]
    extensions: tuple[Extension, ...]  # wire order, GREASE kept
    server_name: str | None
    alpn: tuple[str, ...]
    alpn_raw: tuple[bytes, ...]
    supported_versions: tuple[int, ...]
    key_share_groups: tuple[int, ...]
    supported_groups: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    ec_point_formats: tuple[int, ...]
    has_ech: bool
    has_psk: bool
    has_early_data: bool
    session_ticket: bytes | None  # the session_ticket extension's content when present
    max_version: int  # highest non-GREASE supported_version, else legacy_version
    sslv2: bool = False  # parsed from an SSLv2-compatible ClientHello
    weirds: tuple[str, ...] = ()

    @property
    def extension_types(self) -> tuple[int, ...]:
        return tuple([e.type for e in self.extensions])

    @property
    def has_grease(self) -> bool:
        return any(is_grease(c) for c in self.cipher_suites) or any(
            is_grease(t) for t in self.extension_types
        )

    @property
    def cipher_suites_no_grease(self) -> tuple[int, ...]:
        return tuple(c for c in self.cipher_suites if not is_grease(c))

    @property
    def has_pq_key_share(self) -> bool:
        return any(g in PQ_GROUPS for g in self.key_share_groups)


@dataclass(frozen=True, slots=True)
class ServerHello:
    legacy_version: int
    version: int  # selected version: supported_versions when present, else legacy
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int
    extensions: tuple[Extension, ...]
    selected_group: int | None  # key_share (a group only, in a HelloRetryRequest)
    is_hello_retry_request: bool
    downgrade: str | None  # "TLSv12" / "TLSv11" when the RFC 8446 sentinel is in random
    alpn: str | None
    has_psk: bool  # server accepted a pre-shared key (TLS 1.3 resumption)
    weirds: tuple[str, ...] = ()

    @property
    def extension_types(self) -> tuple[int, ...]:
        return tuple([e.type for e in self.extensions])

    @property
    def cipher_name(self) -> str:
        return cipher_name(self.cipher_suite)


_PRINTABLE = bytes(range(0x21, 0x7F))


def _printable_name(raw: bytes) -> str:
    """Host names are ASCII (A-labels); escape anything else instead of failing."""
    if not raw.translate(None, _PRINTABLE):  # every byte is printable
        return raw.decode("ascii")
    return "".join(
        chr(b) if 0x21 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw
    )


def _u16_list(data: bytes, length_size: int) -> tuple[int, ...]:
    buf = Buffer(data, "tls_bad_extension")
    body = buf.sub(buf.pull_uint8() if length_size == 1 else buf.pull_uint16())
    if body.remaining % 2:
        raise ParseError("tls_bad_extension", "odd list length")
    out = []
    while not body.eof():
        out.append(body.pull_uint16())
    return tuple(out)


def _parse_extensions(
    buf: Buffer, kind: str
) -> tuple[tuple[Extension, ...], list[str]]:
    weirds: list[str] = []
    if buf.eof():
        return (), weirds  # extensions are optional before TLS 1.2
    total = buf.pull_uint16()
    if total > buf.remaining:
        raise ParseError(kind, "extensions block longer than message")
    ext_buf = buf.sub(total)
    exts: list[Extension] = []
    while not ext_buf.eof():
        etype = ext_buf.pull_uint16()
        edata = ext_buf.pull_vector(2)
        exts.append(Extension(etype, edata))
    if not buf.eof():
        weirds.append("tls_trailing_hello_bytes")
    seen: set[int] = set()
    for e in exts:
        if e.type in seen:
            weirds.append("tls_duplicate_extension")
            break
        seen.add(e.type)
    return tuple(exts), weirds


def _parse_sni(data: bytes) -> str | None:
    buf = Buffer(data, "tls_bad_extension")
    lst = buf.sub(buf.pull_uint16())
    while not lst.eof():
        name_type = lst.pull_uint8()
        name = lst.pull_vector(2)
        if name_type == 0:
            return _printable_name(name)
    return None


def _parse_alpn(data: bytes) -> tuple[bytes, ...]:
    buf = Buffer(data, "tls_bad_extension")
    lst = buf.sub(buf.pull_uint16())
    out = []
    while not lst.eof():
        out.append(lst.pull_vector(1))
    return tuple(out)


def _parse_key_share_client(data: bytes) -> tuple[int, ...]:
    buf = Buffer(data, "tls_bad_extension")
    lst = buf.sub(buf.pull_uint16())
    out = []
    while not lst.eof():
        out.append(lst.pull_uint16())
        lst.pull_vector(2)
    return tuple(out)


def _alpn_text(raw: bytes) -> str:
    return (
        raw.decode("ascii")
        if raw.isascii()
        else raw.decode("latin-1").encode("unicode_escape").decode()
    )


# -- Direct-slicing hello parsers ---------------------------------------------
#
# Nearly every hello on the wire is well formed, and the Buffer cursor costs a
# method call and a bounds check per field. The functions below read a
# well-formed hello by slicing; at the first thing that is not plainly well
# formed (a short read, an odd list, anything that would become a weird) they
# raise `_Fallback` and the public parser reruns the cursor parser, which stays
# the definition of every error kind and weird.


class _Fallback(Exception):
    """Not a plainly well-formed hello: let the cursor parser decide."""


_EXT_SERVER_NAME = int(ExtensionType.SERVER_NAME)
_EXT_ALPN = int(ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION)
_EXT_SUPPORTED_VERSIONS = int(ExtensionType.SUPPORTED_VERSIONS)
_EXT_KEY_SHARE = int(ExtensionType.KEY_SHARE)
_EXT_KEY_SHARE_OLD = int(ExtensionType.KEY_SHARE_OLD)
_EXT_SUPPORTED_GROUPS = int(ExtensionType.SUPPORTED_GROUPS)
_EXT_SIGNATURE_ALGORITHMS = int(ExtensionType.SIGNATURE_ALGORITHMS)
_EXT_EC_POINT_FORMATS = int(ExtensionType.EC_POINT_FORMATS)
_EXT_SESSION_TICKET = int(ExtensionType.SESSION_TICKET)
_EXT_ECH = int(ExtensionType.ENCRYPTED_CLIENT_HELLO)
_EXT_PSK = int(ExtensionType.PRE_SHARED_KEY)
_EXT_EARLY_DATA = int(ExtensionType.EARLY_DATA)

_make_extension = fast_constructor(Extension)
_make_client_hello = fast_constructor(ClientHello)
_make_server_hello = fast_constructor(ServerHello)


_ext_header = struct.Struct(">HH").unpack_from


def _u16s(data: bytes, pos: int, nbytes: int) -> tuple[int, ...]:
    return struct.unpack_from(f">{nbytes >> 1}H", data, pos)


# Most extensions of a hello are byte-for-byte those of other hellos from the
# same client build: share one immutable Extension per distinct small content
# (key shares and pre-shared keys are larger and unique).
_SHARED_EXTENSION_MAX = 64
_shared_extension = functools.lru_cache(maxsize=2048)(_make_extension)


def _fast_extensions(
    data: bytes, pos: int
) -> tuple[tuple[Extension, ...], dict[int, bytes]]:
    """The extensions block at `pos`, which must end exactly at the end of `data`.

    Also returns each extension's data by type (there are no duplicates).
    """
    end = len(data)
    if pos == end:
        return (), {}
    if pos + 2 > end or pos + 2 + ((data[pos] << 8) | data[pos + 1]) != end:
        raise _Fallback  # short, longer than the message, or trailing bytes
    pos += 2
    exts: list[Extension] = []
    by_type: dict[int, bytes] = {}
    make = _make_extension
    share = _shared_extension
    header = _ext_header
    while pos < end:
        if pos + 4 > end:
            raise _Fallback
        etype, length = header(data, pos)
        start = pos + 4
        pos = start + length
        if pos > end:
            raise _Fallback
        edata = data[start:pos]
        exts.append((share if length <= _SHARED_EXTENSION_MAX else make)(etype, edata))
        by_type[etype] = edata
    if len(by_type) != len(exts):
        raise _Fallback  # a duplicate extension is a weird
    return tuple(exts), by_type


def _fast_vector_end(data: bytes, length_size: int) -> int:
    """End of the vector with a 1- or 2-byte length at the start of `data`."""
    if length_size == 1:
        end = 1 + data[0] if data else 0
    else:
        end = 2 + ((data[0] << 8) | data[1]) if len(data) >= 2 else 0
    if not end or end > len(data):
        raise _Fallback
    return end


# The list-valued extensions (versions, groups, signature algorithms, ALPN,
# the server name) repeat across a capture's hellos, which come from a few
# client builds and servers: their parses are cached by content. Failures
# raise, so they are not cached; nor are unusually long contents (left to
# the cursor parser), which keeps the caches small whatever the input.
_CACHED_MAX = 512


@functools.lru_cache(maxsize=1024)
def _fast_u16_list(data: bytes, length_size: int) -> tuple[int, ...]:
    if len(data) > _CACHED_MAX:
        raise _Fallback
    end = _fast_vector_end(data, length_size)
    if (end - length_size) & 1:
        raise _Fallback
    return _u16s(data, length_size, end - length_size)


@functools.lru_cache(maxsize=256)
def _fast_u8_list(data: bytes) -> tuple[int, ...]:
    if len(data) > _CACHED_MAX:
        raise _Fallback
    return tuple(data[1 : _fast_vector_end(data, 1)])


@functools.lru_cache(maxsize=1024)
def _fast_sni(data: bytes) -> str | None:
    if len(data) > _CACHED_MAX:
        raise _Fallback
    end = _fast_vector_end(data, 2)
    pos = 2
    while pos < end:
        if pos + 3 > end:
            raise _Fallback
        name_type = data[pos]
        start = pos + 3
        pos = start + ((data[pos + 1] << 8) | data[pos + 2])
        if pos > end:
            raise _Fallback
        if name_type == 0:
            if pos == start:
                raise _Fallback  # an empty name is a weird
            return _printable_name(data[start:pos])
    return None


def _fast_alpn(data: bytes) -> tuple[bytes, ...]:
    end = _fast_vector_end(data, 2)
    pos = 2
    out = []
    while pos < end:
        start = pos + 1
        pos = start + data[pos]
        if pos > end:
            raise _Fallback
        out.append(data[start:pos])
    return tuple(out)


@functools.lru_cache(maxsize=1024)
def _fast_client_alpn(data: bytes) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    """The protocols offered, raw and as text."""
    if len(data) > _CACHED_MAX:
        raise _Fallback
    raw = _fast_alpn(data)
    return raw, tuple([_alpn_text(a) for a in raw])


def _fast_key_share_groups(data: bytes) -> tuple[int, ...]:
    end = _fast_vector_end(data, 2)
    pos = 2
    out = []
    while pos < end:
        if pos + 4 > end:
            raise _Fallback
        group, length = _ext_header(data, pos)
        out.append(group)
        pos += 4 + length
        if pos > end:
            raise _Fallback
    return tuple(out)


def _fast_client_hello(data: bytes) -> ClientHello:
    n = len(data)
    if n < 35 or data[34] > 32:
        raise _Fallback
    legacy_version = (data[0] << 8) | data[1]
    pos = 35 + data[34]
    session_id = data[35:pos]
    if pos + 2 > n:
        raise _Fallback
    suites_len = (data[pos] << 8) | data[pos + 1]
    pos += 2
    if suites_len & 1 or pos + suites_len >= n:
        raise _Fallback  # odd, or no room for the compression methods
    suites = _u16s(data, pos, suites_len)
    pos += suites_len
    comp_end = pos + 1 + data[pos]
    if comp_end > n:
        raise _Fallback
    extensions, by_type = _fast_extensions(data, comp_end)

    # Each field from its extension, as the cursor parser reads it. Without
    # duplicates only the two key_share code points could both set one field
    # (the later would win there): leave that to the cursor parser.
    server_name: str | None = None
    edata = by_type.get(_EXT_SERVER_NAME)
    if edata:
        server_name = _fast_sni(edata)
    edata = by_type.get(_EXT_ALPN)
    alpn_raw, alpn = _fast_client_alpn(edata) if edata is not None else ((), ())
    edata = by_type.get(_EXT_SUPPORTED_VERSIONS)
    versions = _fast_u16_list(edata, 1) if edata is not None else ()
    edata = by_type.get(_EXT_KEY_SHARE)
    if edata is None:
        edata = by_type.get(_EXT_KEY_SHARE_OLD)
    elif _EXT_KEY_SHARE_OLD in by_type:
        raise _Fallback
    key_shares = _fast_key_share_groups(edata) if edata is not None else ()
    edata = by_type.get(_EXT_SUPPORTED_GROUPS)
    groups = _fast_u16_list(edata, 2) if edata is not None else ()
    edata = by_type.get(_EXT_SIGNATURE_ALGORITHMS)
    sigalgs = _fast_u16_list(edata, 2) if edata is not None else ()
    edata = by_type.get(_EXT_EC_POINT_FORMATS)
    point_formats = _fast_u8_list(edata) if edata is not None else ()
    max_version = _max_version(versions) if versions else None
    # Positional: keyword matching for 21 fields was a tenth of this function's time.
    return _make_client_hello(
        legacy_version,
        data[2:34],  # random
        session_id,
        suites,
        tuple(data[pos + 1 : comp_end]),  # compression_methods
        extensions,
        server_name,
        alpn,
        alpn_raw,
        versions,  # supported_versions
        key_shares,  # key_share_groups
        groups,  # supported_groups
        sigalgs,  # signature_algorithms
        point_formats,  # ec_point_formats
        _EXT_ECH in by_type,  # has_ech
        _EXT_PSK in by_type,  # has_psk
        _EXT_EARLY_DATA in by_type,  # has_early_data
        by_type.get(_EXT_SESSION_TICKET),  # session_ticket
        legacy_version if max_version is None else max_version,
        False,  # sslv2
        (),  # weirds
    )


@functools.lru_cache(maxsize=256)
def _max_version(versions: tuple[int, ...]) -> int | None:
    """The highest non-GREASE supported_version (clients send a few distinct lists)."""
    real_versions = [v for v in versions if not is_grease(v)]
    return max(real_versions, key=_version_rank) if real_versions else None


def parse_client_hello(body: bytes) -> ClientHello:
    """Parse a ClientHello handshake body (after the 4-byte handshake header)."""
    data = body if type(body) is bytes else bytes(body)
    try:
        return _fast_client_hello(data)
    except _Fallback:
        return _parse_client_hello_cursor(data)


def _parse_client_hello_cursor(body: bytes) -> ClientHello:
    """The reference ClientHello parser: every error kind and weird is decided here."""
    buf = Buffer(body, "tls_bad_client_hello")
    legacy_version = buf.pull_uint16()
    random = buf.pull_bytes(32)
    session_id = buf.pull_vector(1)
    if len(session_id) > 32:
        raise ParseError("tls_bad_client_hello", "session id longer than 32")
    suites_raw = buf.pull_vector(2)
    if len(suites_raw) % 2:
        raise ParseError("tls_bad_client_hello", "odd cipher suite length")
    suites = tuple(
        int.from_bytes(suites_raw[i : i + 2], "big")
        for i in range(0, len(suites_raw), 2)
    )
    compression = tuple(buf.pull_vector(1))
    extensions, weirds = _parse_extensions(buf, "tls_bad_client_hello")

    server_name: str | None = None
    alpn_raw: tuple[bytes, ...] = ()
    versions: tuple[int, ...] = ()
    key_shares: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    sigalgs: tuple[int, ...] = ()
    point_formats: tuple[int, ...] = ()
    ticket: bytes | None = None
    for ext in extensions:
        try:
            if ext.type == ExtensionType.SERVER_NAME and ext.data:
                server_name = _parse_sni(ext.data)
            elif ext.type == ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION:
                alpn_raw = _parse_alpn(ext.data)
            elif ext.type == ExtensionType.SUPPORTED_VERSIONS:
                versions = _u16_list(ext.data, 1)
            elif ext.type in (ExtensionType.KEY_SHARE, ExtensionType.KEY_SHARE_OLD):
                key_shares = _parse_key_share_client(ext.data)
            elif ext.type == ExtensionType.SUPPORTED_GROUPS:
                groups = _u16_list(ext.data, 2)
            elif ext.type == ExtensionType.SIGNATURE_ALGORITHMS:
                sigalgs = _u16_list(ext.data, 2)
            elif ext.type == ExtensionType.EC_POINT_FORMATS:
                point_formats = tuple(
                    Buffer(ext.data, "tls_bad_extension").pull_vector(1)
                )
            elif ext.type == ExtensionType.SESSION_TICKET:
                ticket = ext.data
        except ParseError:
            weirds.append(f"tls_bad_extension_{ext.type}")
    types = {e.type for e in extensions}
    real_versions = [v for v in versions if not is_grease(v)]
    if server_name is not None and server_name == "":
        weirds.append("tls_empty_server_name")
    return ClientHello(
        legacy_version=legacy_version,
        random=random,
        session_id=session_id,
        cipher_suites=suites,
        compression_methods=compression,
        extensions=extensions,
        server_name=server_name,
        alpn=tuple(_alpn_text(a) for a in alpn_raw),
        alpn_raw=alpn_raw,
        supported_versions=versions,
        key_share_groups=key_shares,
        supported_groups=groups,
        signature_algorithms=sigalgs,
        ec_point_formats=point_formats,
        has_ech=ExtensionType.ENCRYPTED_CLIENT_HELLO in types,
        has_psk=ExtensionType.PRE_SHARED_KEY in types,
        has_early_data=ExtensionType.EARLY_DATA in types,
        session_ticket=ticket,
        max_version=max(real_versions, key=_version_rank)
        if real_versions
        else legacy_version,
        weirds=tuple(weirds),
    )


def _version_rank(v: int) -> int:
    # TLS 1.3 drafts (0x7Fxx) rank just below the final 0x0304.
    if v >> 8 in (0x7F, 0x7E, 0xFB):
        return 0x0303_80 + (v & 0xFF)
    return v << 8


def _parse_sslv2_client_hello(data: bytes) -> tuple[ClientHello, int]:
    """SSLv2-compatible ClientHello (RFC 5246 E.2): 3-byte cipher specs, no extensions."""
    buf = Buffer(data, "tls_bad_client_hello")
    header = buf.pull_uint16()
    length = header & 0x7FFF
    msg = buf.sub(length)
    if msg.pull_uint8() != 1:
        raise ParseError("tls_bad_client_hello", "not an SSLv2 client hello")
    version = msg.pull_uint16()
    spec_len = msg.pull_uint16()
    sid_len = msg.pull_uint16()
    challenge_len = msg.pull_uint16()
    specs = msg.pull_bytes(spec_len)
    session_id = msg.pull_bytes(sid_len)
    challenge = msg.pull_bytes(challenge_len)
    if spec_len % 3:
        raise ParseError(
            "tls_bad_client_hello", "cipher spec length not a multiple of 3"
        )
    # Specs whose first byte is zero are TLS cipher suites; the others are SSLv2 kinds.
    suites = tuple(
        int.from_bytes(specs[i + 1 : i + 3], "big")
        for i in range(0, spec_len, 3)
        if specs[i] == 0
    )
    hello = ClientHello(
        legacy_version=version,
        random=challenge.rjust(32, b"\x00")[-32:],
        session_id=session_id,
        cipher_suites=suites,
        compression_methods=(0,),
        extensions=(),
        server_name=None,
        alpn=(),
        alpn_raw=(),
        supported_versions=(),
        key_share_groups=(),
        supported_groups=(),
        signature_algorithms=(),
        ec_point_formats=(),
        has_ech=False,
        has_psk=False,
        has_early_data=False,
        session_ticket=None,
        max_version=version,
        sslv2=True,
    )
    return hello, 2 + length


def _is_draft_without_session_id(version: int) -> bool:
    # TLS 1.3 drafts before 22 dropped legacy_session_id and compression from ServerHello.
    return (version >> 8 == 0x7F and (version & 0xFF) < 22) or version >> 8 == 0xFB


def _fast_server_hello(data: bytes) -> ServerHello:
    n = len(data)
    if n < 34:
        raise _Fallback
    legacy_version = (data[0] << 8) | data[1]
    random = data[2:34]
    if _is_draft_without_session_id(legacy_version):
        session_id = b""
        pos = 36
        if pos > n:
            raise _Fallback
        cipher = (data[34] << 8) | data[35]
        compression = 0
    else:
        if n < 35 or data[34] > 32:
            raise _Fallback
        start = 35
        pos = start + data[34] + 3
        if pos > n:
            raise _Fallback
        session_id = data[start : pos - 3]
        cipher = (data[pos - 3] << 8) | data[pos - 2]
        compression = data[pos - 1]
    extensions, by_type = _fast_extensions(data, pos)
    version = legacy_version
    group: int | None = None
    alpn: str | None = None
    for ext in extensions:
        etype, edata = ext.type, ext.data
        if etype == _EXT_SUPPORTED_VERSIONS:
            if len(edata) < 2:
                raise _Fallback
            version = (edata[0] << 8) | edata[1]
        elif etype == _EXT_KEY_SHARE or etype == _EXT_KEY_SHARE_OLD:
            if len(edata) < 2:
                raise _Fallback
            group = (edata[0] << 8) | edata[1]
        elif etype == _EXT_ALPN:
            protocols = _fast_alpn(edata)
            alpn = _alpn_text(protocols[0]) if protocols else None
    tail = random[-8:]
    return _make_server_hello(
        legacy_version,
        version,
        random,
        session_id,
        cipher,  # cipher_suite
        compression,  # compression_method
        extensions,
        group,  # selected_group
        random == HRR_RANDOM,  # is_hello_retry_request
        "TLSv12" if tail == _DOWNGRADE_TLS12 else "TLSv11" if tail == _DOWNGRADE_TLS11 else None,
        alpn,
        _EXT_PSK in by_type,  # has_psk
        (),  # weirds
    )


def parse_server_hello(body: bytes) -> ServerHello:
    """Parse a ServerHello (or HelloRetryRequest) body after the 4-byte header."""
    data = body if type(body) is bytes else bytes(body)
    try:
        return _fast_server_hello(data)
    except _Fallback:
        return _parse_server_hello_cursor(data)


def _parse_server_hello_cursor(body: bytes) -> ServerHello:
    """The reference ServerHello parser: every error kind and weird is decided here."""
    buf = Buffer(body, "tls_bad_server_hello")
    legacy_version = buf.pull_uint16()
    random = buf.pull_bytes(32)
    if _is_draft_without_session_id(legacy_version):
        session_id = b""
        cipher = buf.pull_uint16()
        compression = 0
    else:
        session_id = buf.pull_vector(1)
        if len(session_id) > 32:
            raise ParseError("tls_bad_server_hello", "session id longer than 32")
        cipher = buf.pull_uint16()
        compression = buf.pull_uint8()
    extensions, weirds = _parse_extensions(buf, "tls_bad_server_hello")
    is_hrr = random == HRR_RANDOM
    version = legacy_version
    group: int | None = None
    alpn: str | None = None
    for ext in extensions:
        try:
            if ext.type == ExtensionType.SUPPORTED_VERSIONS:
                version = Buffer(ext.data, "tls_bad_extension").pull_uint16()
            elif ext.type in (ExtensionType.KEY_SHARE, ExtensionType.KEY_SHARE_OLD):
                group = Buffer(ext.data, "tls_bad_extension").pull_uint16()
            elif ext.type == ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION:
                protocols = _parse_alpn(ext.data)
                alpn = _alpn_text(protocols[0]) if protocols else None
        except ParseError:
            weirds.append(f"tls_bad_extension_{ext.type}")
    tail = random[-8:]
    downgrade = (
        "TLSv12"
        if tail == _DOWNGRADE_TLS12
        else "TLSv11"
        if tail == _DOWNGRADE_TLS11
        else None
    )
    return ServerHello(
        legacy_version=legacy_version,
        version=version,
        random=random,
        session_id=session_id,
        cipher_suite=cipher,
        compression_method=compression,
        extensions=extensions,
        selected_group=group,
        is_hello_retry_request=is_hrr,
        downgrade=downgrade,
        alpn=alpn,
        has_psk=ExtensionType.PRE_SHARED_KEY in {e.type for e in extensions},
        weirds=tuple(weirds),
    )


def is_tls13(version: int) -> bool:
    return version == TLSVersion.TLSV13 or version >> 8 in (0x7F, 0x7E, 0xFB)


# ---------------------------------------------------------------------------
# Certificates and alerts


def parse_certificate_message(
    body: bytes, *, tls13: bool | None = None
) -> tuple[bytes, ...]:
    """DER certificates of a Certificate handshake body, leaf first.

    `tls13=None` tries the TLS <= 1.2 layout first and falls back to the TLS 1.3
    one (request context and per-certificate extensions).
    """
    if tls13 is None:
        try:
            return _parse_cert_list(body, tls13=False)
        except ParseError:
            return _parse_cert_list(body, tls13=True)
    return _parse_cert_list(body, tls13=tls13)


def _parse_cert_list(body: bytes, *, tls13: bool) -> tuple[bytes, ...]:
    buf = Buffer(body, "tls_bad_certificate_message")
    if tls13:
        buf.pull_vector(1)  # certificate_request_context
    lst = buf.sub(buf.pull_uint24())
    if not buf.eof():
        raise ParseError("tls_bad_certificate_message", "bytes after certificate list")
    certs = []
    while not lst.eof():
        der = lst.pull_vector(3)
        if not der:
            raise ParseError("tls_bad_certificate_message", "empty certificate")
        certs.append(der)
        if tls13:
            lst.pull_vector(2)  # per-certificate extensions
    return tuple(certs)


@dataclass(frozen=True, slots=True)
class Alert:
    level: int | None  # None when encrypted
    description: int | None
    offset: int  # of the record carrying it
    encrypted: bool = False
    inferred: bool = False  # judged from an encrypted record's size only

    @property
    def name(self) -> str | None:
        return None if self.description is None else alert_name(self.description)

    @property
    def fatal(self) -> bool | None:
        return None if self.level is None else self.level == AlertLevel.FATAL


def parse_alert(body: bytes, offset: int = 0) -> tuple[Alert, ...]:
    """Plaintext alerts of one alert record body (two bytes each)."""
    if not body or len(body) % 2:
        raise ParseError("tls_bad_alert", f"alert body of {len(body)} bytes")
    return tuple(
        _make_alert(body[i], body[i + 1], offset, False, False)
        for i in range(0, len(body), 2)
    )


# ---------------------------------------------------------------------------
# One direction


@dataclass(frozen=True, slots=True)
class HandshakeMessage:
    msg_type: int
    length: int
    offset: int  # of the 4-byte handshake header in the stream
    end: int  # stream offset just past the record that completed the message


@dataclass(frozen=True, slots=True)
class EncryptedRecord:
    content_type: int
    length: int
    offset: int


@dataclass(frozen=True, slots=True)
class Event:
    """One plaintext happening for ssl_history: a Zeek letter and where it ended."""

    letter: str  # lower case; summarize_session upper-cases client letters
    end: int


@dataclass(frozen=True, slots=True)
class TLSDirection:
    from_client: bool
    is_tls: bool
    records: tuple[TLSRecord, ...]
    handshakes: tuple[HandshakeMessage, ...]
    client_hellos: tuple[ClientHello, ...]
    server_hellos: tuple[ServerHello, ...]
    certificates: tuple[bytes, ...]  # DER, from the first plaintext Certificate message
    server_key_exchange_group: int | None
    alerts: tuple[Alert, ...]
    ccs_count: int
    encrypted: bool  # the direction switched to encrypted records
    encrypted_offset: int | None
    encrypted_records: tuple[EncryptedRecord, ...]
    events: tuple[Event, ...]
    consumed: int
    truncated: bool  # ended inside a record or handshake message
    weirds: tuple[str, ...]

    @property
    def client_hello(self) -> ClientHello | None:
        return self.client_hellos[0] if self.client_hellos else None

    @property
    def server_hello(self) -> ServerHello | None:
        """The final ServerHello (not a HelloRetryRequest) when there is one."""
        return _final_server_hello(self.server_hellos)

    @property
    def application_data_records(self) -> tuple[EncryptedRecord, ...]:
        return tuple(
            [r for r in self.encrypted_records if r.content_type == _APPLICATION_DATA]
        )


_HANDSHAKE_LETTERS = {
    HandshakeType.HELLO_REQUEST: "h",
    HandshakeType.CLIENT_HELLO: "c",
    HandshakeType.SERVER_HELLO: "s",
    HandshakeType.HELLO_VERIFY_REQUEST: "v",
    HandshakeType.NEW_SESSION_TICKET: "t",
    HandshakeType.END_OF_EARLY_DATA: "e",
    HandshakeType.HELLO_RETRY_REQUEST: "j",
    HandshakeType.ENCRYPTED_EXTENSIONS: "o",
    HandshakeType.CERTIFICATE: "x",
    HandshakeType.SERVER_KEY_EXCHANGE: "k",
    HandshakeType.CERTIFICATE_REQUEST: "r",
    HandshakeType.SERVER_HELLO_DONE: "n",
    HandshakeType.CERTIFICATE_VERIFY: "y",
    HandshakeType.CLIENT_KEY_EXCHANGE: "g",
    HandshakeType.FINISHED: "f",
    HandshakeType.CERTIFICATE_URL: "w",
    HandshakeType.CERTIFICATE_STATUS: "u",
    HandshakeType.SUPPLEMENTAL_DATA: "a",
    HandshakeType.KEY_UPDATE: "p",
    HandshakeType.MESSAGE_HASH: "m",
}


def _looks_like_plain_hello(body: bytes | None, from_client: bool) -> bool:
    """After a CCS, is this handshake record still a plaintext hello?

    With TLS 1.3 middlebox compatibility a CCS precedes the second ClientHello
    (after a HelloRetryRequest) and the server's CCS follows its HRR but precedes
    the real ServerHello. An encrypted TLS 1.2 Finished would have to start with
    the right type byte and a sane length and version by chance.
    """
    if body is None or len(body) < 6:
        return False
    wanted = 1 if from_client else 2  # client_hello, server_hello
    length = (body[1] << 16) | (body[2] << 8) | body[3]
    return body[0] == wanted and 38 <= length <= 0xFFFF and body[4] in (3, 0x7F)


def _server_key_exchange_group(body: bytes) -> int | None:
    # ECDHE params start with curve_type 3 (named_curve) and the group.
    if len(body) >= 3 and body[0] == 3:
        return int.from_bytes(body[1:3], "big")
    return None


_CCS = int(ContentType.CHANGE_CIPHER_SPEC)
_ALERT = int(ContentType.ALERT)
_HANDSHAKE = int(ContentType.HANDSHAKE)
_HEARTBEAT = int(ContentType.HEARTBEAT)
_HS_CLIENT_HELLO = int(HandshakeType.CLIENT_HELLO)
_HS_SERVER_HELLO = int(HandshakeType.SERVER_HELLO)
_HS_CERTIFICATE = int(HandshakeType.CERTIFICATE)
_HS_SERVER_KEY_EXCHANGE = int(HandshakeType.SERVER_KEY_EXCHANGE)
_HS_CLIENT_KEY_EXCHANGE = int(HandshakeType.CLIENT_KEY_EXCHANGE)
# Zeek's letter by handshake type number; unknown and unlettered types are "z".
_LETTER_BY_TYPE = {int(t): letter for t, letter in _HANDSHAKE_LETTERS.items()}

_make_event = fast_constructor(Event)
_make_encrypted = fast_constructor(EncryptedRecord)
_make_handshake = fast_constructor(HandshakeMessage)
_make_alert = fast_constructor(Alert)
_make_direction = fast_constructor(TLSDirection)


class _Walk(NamedTuple):
    """One direction walked: TLSDirection's facts, with tuples for the per-record ones.

    A session has dozens of records, events and handshake messages; inside this
    module they stay plain tuples, and only `analyze_direction` turns them into
    the public dataclasses (the field order of each tuple is the dataclass's).
    """

    from_client: bool
    is_tls: bool
    records: Sequence[_RecordFields]
    handshakes: Sequence[tuple[int, int, int, int]]  # HandshakeMessage's
    client_hellos: Sequence[ClientHello]
    server_hellos: Sequence[ServerHello]
    certificates: tuple[bytes, ...]
    server_key_exchange_group: int | None
    alerts: Sequence[Alert]
    ccs_count: int
    encrypted: bool
    encrypted_offset: int | None
    encrypted_records: Sequence[tuple[int, int, int]]  # EncryptedRecord's
    events: Sequence[tuple[str, int]]  # Event's
    consumed: int
    truncated: bool
    weirds: Sequence[str]


def _not_tls(from_client: bool, weirds: list[str]) -> _Walk:
    return _Walk(from_client, False, [], [], [], [], (), None, [], 0, False, None, [], [], 0, False, weirds)


def _stream_offset(hs_map: list[tuple[int, int]], pos: int) -> int:
    """Stream offset of handshake byte number `pos` (see `_walk`)."""
    base_pos, base_off = 0, 0
    for p, off in hs_map:
        if p > pos:
            break
        base_pos, base_off = p, off
    return base_off + (pos - base_pos)


def _walk(data: bytes, from_client: bool) -> _Walk:
    """Walk one direction's bytes; never raises on malformed input."""
    weirds: list[str] = []
    start = tls_start(data)
    if start is None:
        return _not_tls(from_client, ["tls_not_tls"] if data else [])

    client_hellos: list[ClientHello] = []
    events: list[tuple[str, int]] = []
    if _looks_like_sslv2_client_hello(data[start:]):
        try:
            hello, length = _parse_sslv2_client_hello(data[start:])
        except ParseError as exc:
            return _not_tls(from_client, [exc.kind])
        start += length
        client_hellos.append(hello)
        events.append(("c", start))

    records, consumed, error = _split(data, start)
    if error is not None:
        weirds.append(error)
    truncated = error is None and consumed < len(data)

    handshakes: list[tuple[int, int, int, int]] = []
    server_hellos: list[ServerHello] = []
    certificates: tuple[bytes, ...] = ()
    cert_seen = False
    ske_group: int | None = None
    alerts: list[Alert] = []
    encrypted_records: list[tuple[int, int, int]] = []
    ccs_count = 0
    encrypted = False
    encrypted_offset: int | None = None
    after_ccs = False
    # An incomplete handshake message waiting for the next record's bytes.
    pending = b""
    # Handshake bytes are numbered across records; hs_start is the number of
    # the next message's first byte, hs_map maps the first byte of each
    # record body to its stream offset.
    hs_start = 0
    hs_map: list[tuple[int, int]] = []
    hs_broken = False

    # Turning encrypted (three places below): note where, and whether a
    # handshake message was left incomplete.
    for ctype, _, rec_length, rec_offset, rec_body in records:
        if ctype == _APPLICATION_DATA:  # most records, once the handshake is over
            if not encrypted:
                encrypted, encrypted_offset = True, rec_offset
                if pending:
                    weirds.append("tls_handshake_interrupted")
            encrypted_records.append((ctype, rec_length, rec_offset))
            continue
        rec_end = rec_offset + 5 + rec_length
        if ctype == _CCS:
            ccs_count += 1
            after_ccs = True
            events.append(("i", rec_end))
            if rec_body != b"\x01":
                weirds.append("tls_bad_change_cipher_spec")
            continue
        if ctype == _ALERT:
            body = rec_body or b""
            if len(body) == 2 and body[0] in (1, 2):
                alerts.extend(parse_alert(body, rec_offset))
                events.append(("l", rec_end))
            elif encrypted or after_ccs:
                alerts.append(_make_alert(None, None, rec_offset, True, False))
                encrypted_records.append((ctype, rec_length, rec_offset))
            else:
                weirds.append("tls_bad_alert")
            continue
        if ctype != _HANDSHAKE:
            if encrypted:
                encrypted_records.append((ctype, rec_length, rec_offset))
            else:
                events.append(("b" if ctype == _HEARTBEAT else "q", rec_end))
            continue
        # Handshake record: plaintext unless the stream has turned encrypted.
        plain = not encrypted and not after_ccs
        if not plain and not pending and _looks_like_plain_hello(rec_body, from_client):
            plain = True
        if after_ccs and not plain and not encrypted:
            encrypted, encrypted_offset = True, rec_offset
            if pending:
                weirds.append("tls_handshake_interrupted")
        if not plain or hs_broken:
            encrypted_records.append((ctype, rec_length, rec_offset))
            continue
        body = rec_body or b""
        if not body:
            weirds.append("tls_empty_handshake_record")
            continue
        # Messages are read from `buf`, this record's body after any carried
        # bytes; those from pos `carried` on lie in this record.
        carried = len(pending)
        hs_map.append((hs_start + carried, rec_offset + 5))
        buf = pending + body if pending else body
        buf_end = len(buf)
        pos = 0
        while buf_end - pos >= 4:
            msg_type = buf[pos]
            length = (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]
            if length > MAX_HANDSHAKE_LENGTH:
                weirds.append("tls_handshake_too_long")
                hs_broken = True
                pos = buf_end  # dropped
                break
            msg_end = pos + 4 + length
            if msg_end > buf_end:
                break
            msg_body = buf[pos + 4 : msg_end]
            if pos >= carried:
                # Starts in this record: what _stream_offset finds too, since the
                # numbers in hs_map only grow (dropped bytes end the parsing or
                # follow a whole message).
                offset = rec_offset + 5 + (pos - carried)
            else:
                offset = _stream_offset(hs_map, hs_start)
            pos = msg_end
            hs_start += 4 + length
            handshakes.append((msg_type, length, offset, rec_end))
            letter = _LETTER_BY_TYPE.get(msg_type, "z")
            if msg_type == _HS_CLIENT_HELLO:
                if not from_client:
                    weirds.append("tls_client_hello_from_server")
                try:
                    client_hellos.append(parse_client_hello(msg_body))
                except ParseError as exc:
                    weirds.append(exc.kind)
            elif msg_type == _HS_SERVER_HELLO:
                if from_client:
                    weirds.append("tls_server_hello_from_client")
                try:
                    sh = parse_server_hello(msg_body)
                except ParseError as exc:
                    weirds.append(exc.kind)
                else:
                    server_hellos.append(sh)
                    if sh.is_hello_retry_request:
                        letter = "j"
                    elif is_tls13(sh.version):
                        # Everything after a TLS 1.3 ServerHello is encrypted.
                        events.append((letter, rec_end))
                        if not encrypted:
                            encrypted, encrypted_offset = True, rec_end
                            if pos < buf_end:
                                weirds.append("tls_handshake_interrupted")
                        if pos < buf_end:
                            # The rest of this record is already ciphertext-bound data.
                            weirds.append("tls_plaintext_after_server_hello")
                            pos = buf_end
                        break
            elif msg_type == _HS_CERTIFICATE and not cert_seen:
                cert_seen = True
                try:
                    certificates = parse_certificate_message(msg_body)
                except ParseError as exc:
                    weirds.append(exc.kind)
            elif msg_type == _HS_SERVER_KEY_EXCHANGE:
                ske_group = _server_key_exchange_group(msg_body)
            events.append((letter, rec_end))
        pending = buf[pos:] if pos < buf_end else b""
    if pending and not encrypted:
        truncated = True
    return _Walk(
        from_client,
        True,
        records,
        handshakes,
        client_hellos,
        server_hellos,
        certificates,
        ske_group,
        alerts,
        ccs_count,
        encrypted,
        encrypted_offset,
        encrypted_records,
        events,
        consumed,
        truncated,
        weirds,
    )


def analyze_direction(data: bytes, *, from_client: bool) -> TLSDirection:
    """Walk one direction's bytes; never raises on malformed input."""
    w = _walk(data, from_client)
    return _make_direction(
        from_client=w.from_client,
        is_tls=w.is_tls,
        records=tuple([_make_record(*r) for r in w.records]),
        handshakes=tuple([_make_handshake(*m) for m in w.handshakes]),
        client_hellos=tuple(w.client_hellos),
        server_hellos=tuple(w.server_hellos),
        certificates=w.certificates,
        server_key_exchange_group=w.server_key_exchange_group,
        alerts=tuple(w.alerts),
        ccs_count=w.ccs_count,
        encrypted=w.encrypted,
        encrypted_offset=w.encrypted_offset,
        encrypted_records=tuple([_make_encrypted(*r) for r in w.encrypted_records]),
        events=tuple([_make_event(*e) for e in w.events]),
        consumed=w.consumed,
        truncated=w.truncated,
        weirds=tuple(w.weirds),
    )


def _walk_of(d: TLSDirection) -> _Walk:
    """The inverse of `analyze_direction`'s conversion, for `summarize_session`."""
    return _Walk(
        d.from_client,
        d.is_tls,
        [(r.content_type, r.version, r.length, r.offset, r.body) for r in d.records],
        [(m.msg_type, m.length, m.offset, m.end) for m in d.handshakes],
        d.client_hellos,
        d.server_hellos,
        d.certificates,
        d.server_key_exchange_group,
        d.alerts,
        d.ccs_count,
        d.encrypted,
        d.encrypted_offset,
        [(r.content_type, r.length, r.offset) for r in d.encrypted_records],
        [(e.letter, e.end) for e in d.events],
        d.consumed,
        d.truncated,
        d.weirds,
    )


# ---------------------------------------------------------------------------
# Both directions


@dataclass(frozen=True, slots=True)
class SessionAlert:
    from_client: bool
    level: int | None
    description: int | None
    name: str | None
    encrypted: bool
    inferred: bool


@dataclass(frozen=True, slots=True)
class TLSSession:
    version: str | None  # Zeek spelling: "TLSv12", "TLSv13", "TLSv13-draft16"
    version_code: int | None
    cipher: str | None
    cipher_code: int | None
    server_name: str | None
    client_alpn: tuple[str, ...]
    alpn: str | None  # the server's selection
    established: bool
    resumed: bool
    hello_retry_request: bool
    alerts: tuple[SessionAlert, ...]
    last_alert: (
        SessionAlert | None
    )  # the last plaintext alert, else an encrypted or inferred one
    ssl_history: str
    cert_chain: tuple[bytes, ...]  # the server's, leaf first
    client_cert_chain: tuple[bytes, ...]
    weirds: tuple[str, ...]


_make_session_alert = fast_constructor(SessionAlert)
_make_session = fast_constructor(TLSSession)
# Names of wire values: a capture repeats a handful of versions and suites.
_version_name = functools.lru_cache(maxsize=1024)(version_name)
_cipher_name = functools.lru_cache(maxsize=1024)(cipher_name)


def _is_alert_sized(rec: tuple[int, int, int]) -> bool:
    return rec[0] == _APPLICATION_DATA and rec[1] in ENCRYPTED_ALERT_LENGTHS


def _final_server_hello(hellos: Sequence[ServerHello]) -> ServerHello | None:
    """The final ServerHello (not a HelloRetryRequest) when there is one."""
    for sh in reversed(hellos):
        if not sh.is_hello_retry_request:
            return sh
    return hellos[-1] if hellos else None


def _established(
    client: _Walk,
    server: _Walk,
    sh: ServerHello | None,
    tls13: bool,
    client_records: Sequence[tuple[int, int, int]],
    server_records: Sequence[tuple[int, int, int]],
) -> bool:
    """`client_records`/`server_records`: each side's application_data records (TLS 1.3 only)."""
    if sh is None:
        return False
    if tls13:
        # The server's encrypted flight went out; the client answered with an
        # encrypted record that is not alert-sized (its Finished is 53 or 69
        # bytes), or application data flows both ways.
        if not server.encrypted_records and not client_records:
            return False
        if any(length not in ENCRYPTED_ALERT_LENGTHS for _, length, _ in client_records) and (
            server.encrypted_records or len(client_records) > 1
        ):
            return True
        return len(client_records) > 1 and len(server_records) > 1
    # TLS <= 1.2: both sides changed cipher spec and sent their (encrypted) Finished.
    return (
        client.ccs_count > 0
        and server.ccs_count > 0
        and bool(client.encrypted_records)
        and bool(server.encrypted_records)
    )


def _resumed(ch: ClientHello | None, sh: ServerHello | None, tls13: bool, client: _Walk) -> bool:
    """Zeek's rule: echoed session id (TLS <= 1.2), accepted PSK (1.3), or ticket without key exchange."""
    if ch is None or sh is None:
        return False
    if tls13:
        return ch.has_psk and sh.has_psk
    if (
        ch.session_id
        and ch.session_id != b"\x00" * 32
        and ch.session_id == sh.session_id
    ):
        return True
    key_exchange = any(m[0] == _HS_CLIENT_KEY_EXCHANGE for m in client.handshakes)
    return bool(ch.session_ticket) and client.ccs_count > 0 and not key_exchange


def _chunk_index(arrival: Sequence[tuple[bool, int]], from_client: bool, end: int) -> int:
    """Index of the segment that completed the byte `end` of one direction."""
    for i, (side, delivered) in enumerate(arrival):
        if side == from_client and delivered >= end:
            return i
    return len(arrival)


def _chunk_indices(
    arrival: Sequence[tuple[bool, int]], from_client: bool, ends: Iterable[int]
) -> list[int]:
    """`_chunk_index` of each of `ends` of one direction, in one scan.

    Ends come in stream order (they do not decrease), so the answer cannot move
    back and one cursor serves them all; a smaller end restarts the scan.
    """
    out: list[int] = []
    n = len(arrival)
    i = 0
    previous = -1
    for end in ends:
        if end < previous:
            i = 0
        previous = end
        while i < n:
            side, delivered = arrival[i]
            if side == from_client and delivered >= end:
                break
            i += 1
        out.append(i)
    return out


def _first_after(
    records: Sequence[tuple[int, int, int]],
    side: bool,
    flight: int,
    arrival: Sequence[tuple[bool, int]],
) -> tuple[int, int, int] | None:
    """The first record of `side` completed by a segment after index `flight`.

    One cursor over `arrival` as in `_chunk_indices` (records are in stream order).
    """
    n = len(arrival)
    i = 0
    previous = -1
    for r in records:
        end = r[2] + 5 + r[1]
        if end < previous:
            i = 0
        previous = end
        while i < n:
            s, delivered = arrival[i]
            if s == side and delivered >= end:
                break
            i += 1
        if i > flight:
            return r
    return None


def _infer_tls13_alerts(
    established: bool,
    arrival: Sequence[tuple[bool, int]] | None,
    c_recs: Sequence[tuple[int, int, int]],
    s_recs: Sequence[tuple[int, int, int]],
) -> list[SessionAlert]:
    """TLS 1.3 alerts hidden in 19-byte application_data records, judged by size.

    `c_recs`/`s_recs` are each side's application_data records. With arrival
    order: the client's first encrypted record after the server's flight, or
    the server's first one after the client's flight, being alert-sized means
    a rejected handshake. Without it only a session that did not get
    established is judged, by the client's first record or the server's last
    one.
    """
    out: list[SessionAlert] = []
    if arrival is None:
        if established:
            return out
        if c_recs and _is_alert_sized(c_recs[0]):
            out.append(_make_session_alert(True, None, None, None, True, True))
        elif len(s_recs) > 1 and _is_alert_sized(s_recs[-1]):
            out.append(_make_session_alert(False, None, None, None, True, True))
        return out

    if s_recs:
        _, length, offset = s_recs[0]
        server_flight = _chunk_index(arrival, False, offset + 5 + length)
        after = _first_after(c_recs, True, server_flight, arrival)
        if after is not None and _is_alert_sized(after):
            out.append(_make_session_alert(True, None, None, None, True, True))
    if c_recs:
        _, length, offset = c_recs[0]
        client_flight = _chunk_index(arrival, True, offset + 5 + length)
        after = _first_after(s_recs, False, client_flight, arrival)
        if after is not None and _is_alert_sized(after):
            out.append(_make_session_alert(False, None, None, None, True, True))
    return out


def _merge_by_arrival(
    client: Sequence[tuple[str, int]],
    server: Sequence[tuple[str, int]],
    arrival: Sequence[tuple[bool, int]],
) -> list[str]:
    """History letters (the client's upper-cased) ordered by the segment that completed each event.

    Ties (events completed by one segment) keep stream order; events no
    segment completed come last, the client's first.
    """
    c_ends = [end for _, end in client]
    s_ends = [end for _, end in server]
    if c_ends != sorted(c_ends) or s_ends != sorted(s_ends):
        c_index = _chunk_indices(arrival, True, c_ends)
        s_index = _chunk_indices(arrival, False, s_ends)
        tagged = [(j, 0, i, e[0].upper()) for i, (e, j) in enumerate(zip(client, c_index))]
        tagged += [(j, 1, i, e[0]) for i, (e, j) in enumerate(zip(server, s_index))]
        tagged.sort()
        return [t[3] for t in tagged]
    # Ends in stream order (what _walk makes): one pass over the segments,
    # each taking the events of its side that it completes.
    out: list[str] = []
    ci = si = 0
    c_count, s_count = len(client), len(server)
    for from_client, delivered in arrival:
        if from_client:
            while ci < c_count and c_ends[ci] <= delivered:
                out.append(client[ci][0].upper())
                ci += 1
        else:
            while si < s_count and s_ends[si] <= delivered:
                out.append(server[si][0])
                si += 1
        if ci == c_count and si == s_count:
            break
    out += [letter.upper() for letter, _ in client[ci:]]
    out += [letter for letter, _ in server[si:]]
    return out


def _merge_by_turns(
    client: Sequence[tuple[str, int]], server: Sequence[tuple[str, int]]
) -> list[str]:
    """History letters (the client's upper-cased) interleaved by handshake causality, without timing.

    The client speaks first; each side keeps the floor until it sent what the
    peer must answer: the client after a ClientHello or its CCS, the server
    after ServerHelloDone, after a HelloRetryRequest (and the CCS that may
    follow it), after a TLS 1.3 ServerHello (and its compatibility CCS), or
    after its own CCS.
    """
    out: list[str] = []
    ci = si = 0
    while ci < len(client) or si < len(server):
        while ci < len(client):
            letter = client[ci][0]
            ci += 1
            out.append(letter.upper())
            nxt = client[ci][0] if ci < len(client) else None
            if letter == "c" or (letter == "i" and nxt != "c"):
                break
        while si < len(server):
            letter = server[si][0]
            si += 1
            out.append(letter)
            nxt = server[si][0] if si < len(server) else None
            if letter in ("n", "i") or (
                letter in ("j", "s") and nxt not in _SERVER_FLIGHT_CONTINUES
            ):
                break
    return out


# Server letters that continue a flight after a ServerHello (or an HRR's CCS).
_SERVER_FLIGHT_CONTINUES = frozenset("xkrntuio")


def _summarize(
    client: _Walk,
    server: _Walk,
    arrival: Sequence[tuple[bool, int]] | None,
    ch: ClientHello | None,
    sh: ServerHello | None,
) -> TLSSession:
    """`ch`/`sh`: the client's first ClientHello and the server's final ServerHello."""
    tls13 = sh is not None and is_tls13(sh.version)
    c_recs: list[tuple[int, int, int]] = []
    s_recs: list[tuple[int, int, int]] = []
    if tls13:
        c_recs = [r for r in client.encrypted_records if r[0] == _APPLICATION_DATA]
        s_recs = [r for r in server.encrypted_records if r[0] == _APPLICATION_DATA]
    established = _established(client, server, sh, tls13, c_recs, s_recs)

    alerts: list[SessionAlert] = []
    if client.alerts or server.alerts:
        alerts = [
            _make_session_alert(side.from_client, a.level, a.description, a.name, a.encrypted, False)
            for side in (client, server)
            for a in side.alerts
        ]
    if tls13:
        alerts.extend(_infer_tls13_alerts(established, arrival, c_recs, s_recs))
    last_alert = None
    if alerts:
        plaintext = [a for a in alerts if not a.encrypted]
        last_alert = plaintext[-1] if plaintext else alerts[-1]

    if arrival is not None:
        merged = _merge_by_arrival(client.events, server.events, arrival)
    else:
        merged = _merge_by_turns(client.events, server.events)
    history = "".join(merged)

    version_code = sh.version if sh is not None else None
    return _make_session(
        _version_name(version_code) if version_code is not None else None,  # version
        version_code,
        _cipher_name(sh.cipher_suite) if sh is not None else None,  # cipher
        sh.cipher_suite if sh is not None else None,  # cipher_code
        ch.server_name if ch is not None else None,  # server_name
        ch.alpn if ch is not None else (),  # client_alpn
        sh.alpn if sh is not None else None,  # alpn
        established,
        _resumed(ch, sh, tls13, client),  # resumed
        any(s.is_hello_retry_request for s in server.server_hellos),  # hello_retry_request
        tuple(alerts),
        last_alert,
        history[:100],  # ssl_history
        server.certificates,  # cert_chain
        client.certificates,  # client_cert_chain
        tuple(client.weirds) + tuple(server.weirds),  # weirds
    )


def summarize_session(
    client: TLSDirection,
    server: TLSDirection,
    *,
    arrival: Sequence[tuple[bool, int]] | None = None,
) -> TLSSession:
    """Zeek-like session facts from both directions.

    `arrival`, when the caller knows it, lists in capture order (from_client,
    bytes of that direction delivered so far) for each segment; it orders
    events exactly. Without it the history is interleaved by handshake
    causality, which matches Zeek for ordinary handshakes.
    """
    return _summarize(
        _walk_of(client), _walk_of(server), arrival, client.client_hello, server.server_hello
    )


@dataclass(frozen=True, slots=True)
class TLSExchange:
    """Both directions of a connection analysed at once: what a flow inspector needs.

    The same facts as `summarize_session(analyze_direction(...), ...)` without
    building a dataclass per record: the encrypted records are plain
    (content_type, length, offset) tuples, in stream order.
    """

    session: TLSSession  # its weirds are the client's then the server's
    client_hello: ClientHello | None  # TLSDirection.client_hello of the client
    server_hello: ServerHello | None  # TLSDirection.server_hello of the server
    client_encrypted: tuple[tuple[int, int, int], ...]
    server_encrypted: tuple[tuple[int, int, int], ...]


_make_exchange = fast_constructor(TLSExchange)


def analyze_exchange(
    client_data: bytes,
    server_data: bytes,
    *,
    arrival: Sequence[tuple[bool, int]] | None = None,
) -> TLSExchange:
    """Walk both directions and summarize the session (see `summarize_session` for `arrival`)."""
    client = _walk(client_data, True)
    server = _walk(server_data, False)
    ch = client.client_hellos[0] if client.client_hellos else None
    sh = _final_server_hello(server.server_hellos)
    return _make_exchange(
        _summarize(client, server, arrival, ch, sh),
        ch,
        sh,
        tuple(client.encrypted_records),
        tuple(server.encrypted_records),
    )
