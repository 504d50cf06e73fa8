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
  (version, cipher, established, ssl_history, alerts, certificate chain).

Recoverable oddities become weird names in `.weirds`; only the single-message
parsers raise, and only `ParseError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
    "TLSRecord",
    "TLSSession",
    "analyze_direction",
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


def looks_like_tls(data: bytes) -> bool:
    """Whether a direction's first bytes look like a TLS record (or an SSLv2 ClientHello)."""
    if len(data) >= 3 and data[0] in (20, 21, 22, 23) and data[1] == 3 and data[2] <= 4:
        if len(data) < 5:
            return True
        length = int.from_bytes(data[3:5], "big")
        return 0 < length <= MAX_RECORD_LENGTH
    return _looks_like_sslv2_client_hello(data)


def tls_start(data: bytes) -> int | None:
    """Offset where TLS begins: 0 normally, or after an RDP (TPKT/X.224) negotiation.

    RDP's "enhanced security" runs TLS on the same TCP stream right after an
    X.224 connection request/confirm carried in TPKT PDUs (03 00 len16).
    """
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


def _split(data: bytes) -> tuple[list[TLSRecord], int, str | None]:
    records: list[TLSRecord] = []
    pos = 0
    end = len(data)
    while end - pos >= 5:
        ctype = data[pos]
        version = (data[pos + 1] << 8) | data[pos + 2]
        length = (data[pos + 3] << 8) | data[pos + 4]
        if length > MAX_RECORD_LENGTH:
            return records, pos, "tls_bad_record_length"
        if data[pos + 1] != 3:
            return records, pos, "tls_bad_record_version"
        if not 20 <= ctype <= 26:
            return records, pos, "tls_unknown_content_type"
        if end - pos - 5 < length:
            break  # stream cut inside this record: not an error
        keep = ctype != ContentType.APPLICATION_DATA or length <= _KEEP_APPDATA_BODY
        body = data[pos + 5 : pos + 5 + length] if keep else None
        records.append(TLSRecord(ctype, version, length, pos, body))
        pos += 5 + length
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
    return records, consumed


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
        return tuple(e.type for e in self.extensions)

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
        return tuple(e.type for e in self.extensions)

    @property
    def cipher_name(self) -> str:
        return cipher_name(self.cipher_suite)


def _printable_name(raw: bytes) -> str:
    """Host names are ASCII (A-labels); escape anything else instead of failing."""
    if all(0x21 <= b < 0x7F for b in raw):
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


def parse_client_hello(body: bytes) -> ClientHello:
    """Parse a ClientHello handshake body (after the 4-byte handshake header)."""
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


def parse_server_hello(body: bytes) -> ServerHello:
    """Parse a ServerHello (or HelloRetryRequest) body after the 4-byte header."""
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
    return tuple(Alert(body[i], body[i + 1], offset) for i in range(0, len(body), 2))


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
        for sh in reversed(self.server_hellos):
            if not sh.is_hello_retry_request:
                return sh
        return self.server_hellos[-1] if self.server_hellos else None

    @property
    def application_data_records(self) -> tuple[EncryptedRecord, ...]:
        return tuple(
            r
            for r in self.encrypted_records
            if r.content_type == ContentType.APPLICATION_DATA
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


_KNOWN_HS = frozenset(int(t) for t in HandshakeType)


def _looks_like_plain_hello(body: bytes | None, from_client: bool) -> bool:
    """After a CCS, is this handshake record still a plaintext hello?

    With TLS 1.3 middlebox compatibility a CCS precedes the second ClientHello
    (after a HelloRetryRequest) and the server's CCS follows its HRR but precedes
    the real ServerHello. An encrypted TLS 1.2 Finished would have to start with
    the right type byte and a sane length and version by chance.
    """
    if body is None or len(body) < 6:
        return False
    wanted = HandshakeType.CLIENT_HELLO if from_client else HandshakeType.SERVER_HELLO
    length = int.from_bytes(body[1:4], "big")
    return body[0] == wanted and 38 <= length <= 0xFFFF and body[4] in (3, 0x7F)


def _server_key_exchange_group(body: bytes) -> int | None:
    # ECDHE params start with curve_type 3 (named_curve) and the group.
    if len(body) >= 3 and body[0] == 3:
        return int.from_bytes(body[1:3], "big")
    return None


def analyze_direction(data: bytes, *, from_client: bool) -> TLSDirection:
    """Walk one direction's bytes; never raises on malformed input."""
    weirds: list[str] = []
    start = tls_start(data)
    if start is None:
        return _empty_direction(from_client, weirds=("tls_not_tls",) if data else ())

    client_hellos: list[ClientHello] = []
    events: list[Event] = []
    if _looks_like_sslv2_client_hello(data[start:]):
        try:
            hello, length = _parse_sslv2_client_hello(data[start:])
        except ParseError as exc:
            return _empty_direction(from_client, weirds=(exc.kind,))
        start += length
        client_hellos.append(hello)
        events.append(Event("c", start))

    records, consumed, error = _split(data[start:])
    records = [
        TLSRecord(r.content_type, r.version, r.length, r.offset + start, r.body)
        for r in records
    ]
    consumed += start
    if error is not None:
        weirds.append(error)
    truncated = error is None and consumed < len(data)

    handshakes: list[HandshakeMessage] = []
    server_hellos: list[ServerHello] = []
    certificates: tuple[bytes, ...] = ()
    cert_seen = False
    ske_group: int | None = None
    alerts: list[Alert] = []
    encrypted_records: list[EncryptedRecord] = []
    ccs_count = 0
    encrypted = False
    encrypted_offset: int | None = None
    after_ccs = False
    hs_buf = bytearray()
    # Handshake bytes are numbered across records; hs_start is the number of
    # hs_buf[0], hs_map maps the first byte of each record body to its offset.
    hs_start = 0
    hs_map: list[tuple[int, int]] = []
    hs_broken = False

    def stream_offset(pos: int) -> int:
        base_pos, base_off = 0, 0
        for p, off in hs_map:
            if p > pos:
                break
            base_pos, base_off = p, off
        return base_off + (pos - base_pos)

    def go_encrypted(offset: int) -> None:
        nonlocal encrypted, encrypted_offset
        if not encrypted:
            encrypted = True
            encrypted_offset = offset
            if hs_buf:
                weirds.append("tls_handshake_interrupted")

    for rec in records:
        ctype = rec.content_type
        rec_end = rec.offset + 5 + rec.length
        if ctype == ContentType.CHANGE_CIPHER_SPEC:
            ccs_count += 1
            after_ccs = True
            events.append(Event("i", rec_end))
            if rec.body != b"\x01":
                weirds.append("tls_bad_change_cipher_spec")
            continue
        if ctype == ContentType.ALERT:
            body = rec.body or b""
            if len(body) == 2 and body[0] in (1, 2):
                alerts.extend(parse_alert(body, rec.offset))
                events.append(Event("l", rec_end))
            elif encrypted or after_ccs:
                alerts.append(Alert(None, None, rec.offset, encrypted=True))
                encrypted_records.append(EncryptedRecord(ctype, rec.length, rec.offset))
            else:
                weirds.append("tls_bad_alert")
            continue
        if ctype == ContentType.APPLICATION_DATA:
            go_encrypted(rec.offset)
            encrypted_records.append(EncryptedRecord(ctype, rec.length, rec.offset))
            continue
        if ctype != ContentType.HANDSHAKE:
            if encrypted:
                encrypted_records.append(EncryptedRecord(ctype, rec.length, rec.offset))
            else:
                events.append(
                    Event("b" if ctype == ContentType.HEARTBEAT else "q", rec_end)
                )
            continue
        # Handshake record: plaintext unless the stream has turned encrypted.
        plain = not encrypted and not after_ccs
        if not plain and not hs_buf and _looks_like_plain_hello(rec.body, from_client):
            plain = True
        if after_ccs and not plain:
            go_encrypted(rec.offset)
        if not plain or hs_broken:
            encrypted_records.append(EncryptedRecord(ctype, rec.length, rec.offset))
            continue
        body = rec.body or b""
        if not body:
            weirds.append("tls_empty_handshake_record")
            continue
        hs_map.append((hs_start + len(hs_buf), rec.offset + 5))
        hs_buf += body
        while len(hs_buf) >= 4:
            msg_type = hs_buf[0]
            length = int.from_bytes(hs_buf[1:4], "big")
            if length > MAX_HANDSHAKE_LENGTH:
                weirds.append("tls_handshake_too_long")
                hs_broken = True
                hs_buf.clear()
                break
            if len(hs_buf) < 4 + length:
                break
            msg_body = bytes(hs_buf[4 : 4 + length])
            offset = stream_offset(hs_start)
            del hs_buf[: 4 + length]
            hs_start += 4 + length
            handshakes.append(HandshakeMessage(msg_type, length, offset, rec_end))
            letter = (
                _HANDSHAKE_LETTERS.get(HandshakeType(msg_type), "z")
                if msg_type in _KNOWN_HS
                else "z"
            )
            if msg_type == HandshakeType.CLIENT_HELLO:
                if not from_client:
                    weirds.append("tls_client_hello_from_server")
                try:
                    client_hellos.append(parse_client_hello(msg_body))
                except ParseError as exc:
                    weirds.append(exc.kind)
            elif msg_type == HandshakeType.SERVER_HELLO:
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
                        events.append(Event(letter, rec_end))
                        go_encrypted(rec_end)
                        if hs_buf:
                            # The rest of this record is already ciphertext-bound data.
                            weirds.append("tls_plaintext_after_server_hello")
                            hs_buf.clear()
                        break
            elif msg_type == HandshakeType.CERTIFICATE and not cert_seen:
                cert_seen = True
                try:
                    certificates = parse_certificate_message(msg_body)
                except ParseError as exc:
                    weirds.append(exc.kind)
            elif msg_type == HandshakeType.SERVER_KEY_EXCHANGE:
                ske_group = _server_key_exchange_group(msg_body)
            events.append(Event(letter, rec_end))
    if hs_buf and not encrypted:
        truncated = True
    return TLSDirection(
        from_client=from_client,
        is_tls=True,
        records=tuple(records),
        handshakes=tuple(handshakes),
        client_hellos=tuple(client_hellos),
        server_hellos=tuple(server_hellos),
        certificates=certificates,
        server_key_exchange_group=ske_group,
        alerts=tuple(alerts),
        ccs_count=ccs_count,
        encrypted=encrypted,
        encrypted_offset=encrypted_offset,
        encrypted_records=tuple(encrypted_records),
        events=tuple(events),
        consumed=consumed,
        truncated=truncated,
        weirds=tuple(weirds),
    )


def _empty_direction(from_client: bool, weirds: tuple[str, ...]) -> TLSDirection:
    return TLSDirection(
        from_client=from_client,
        is_tls=False,
        records=(),
        handshakes=(),
        client_hellos=(),
        server_hellos=(),
        certificates=(),
        server_key_exchange_group=None,
        alerts=(),
        ccs_count=0,
        encrypted=False,
        encrypted_offset=None,
        encrypted_records=(),
        events=(),
        consumed=0,
        truncated=False,
        weirds=weirds,
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


def _is_alert_sized(rec: EncryptedRecord) -> bool:
    return (
        rec.content_type == ContentType.APPLICATION_DATA
        and rec.length in ENCRYPTED_ALERT_LENGTHS
    )


def _established(
    client: TLSDirection, server: TLSDirection, sh: ServerHello | None
) -> bool:
    if sh is None:
        return False
    if is_tls13(sh.version):
        # The server's encrypted flight went out; the client answered with an
        # encrypted record that is not alert-sized (its Finished is 53 or 69
        # bytes), or application data flows both ways.
        client_records = [
            r
            for r in client.encrypted_records
            if r.content_type == ContentType.APPLICATION_DATA
        ]
        if not server.encrypted_records and not client_records:
            return False
        if any(not _is_alert_sized(r) for r in client_records) and (
            server.encrypted_records or len(client_records) > 1
        ):
            return True
        return len(client_records) > 1 and len(server.application_data_records) > 1
    # TLS <= 1.2: both sides changed cipher spec and sent their (encrypted) Finished.
    return (
        client.ccs_count > 0
        and server.ccs_count > 0
        and bool(client.encrypted_records)
        and bool(server.encrypted_records)
    )


def _resumed(
    ch: ClientHello | None, sh: ServerHello | None, client: TLSDirection
) -> bool:
    """Zeek's rule: echoed session id (TLS <= 1.2), accepted PSK (1.3), or ticket without key exchange."""
    if ch is None or sh is None:
        return False
    if is_tls13(sh.version):
        return ch.has_psk and sh.has_psk
    if (
        ch.session_id
        and ch.session_id != b"\x00" * 32
        and ch.session_id == sh.session_id
    ):
        return True
    key_exchange = any(
        m.msg_type == HandshakeType.CLIENT_KEY_EXCHANGE for m in client.handshakes
    )
    return bool(ch.session_ticket) and client.ccs_count > 0 and not key_exchange


def _chunk_index(
    arrival: Sequence[tuple[bool, int]], from_client: bool, end: int
) -> int:
    """Index of the segment that completed the byte `end` of one direction."""
    for i, (side, delivered) in enumerate(arrival):
        if side == from_client and delivered >= end:
            return i
    return len(arrival)


def _infer_tls13_alerts(
    client: TLSDirection,
    server: TLSDirection,
    established: bool,
    arrival: Sequence[tuple[bool, int]] | None,
) -> list[SessionAlert]:
    """TLS 1.3 alerts hidden in 19-byte application_data records, judged by size.

    With arrival order: the client's first encrypted record after the server's
    flight, or the server's first one after the client's flight, being
    alert-sized means a rejected handshake. Without it only a session that
    did not get established is judged, by the client's first record or the
    server's last one.
    """
    out: list[SessionAlert] = []
    c_recs = client.application_data_records
    s_recs = server.application_data_records
    if arrival is None:
        if established:
            return out
        if c_recs and _is_alert_sized(c_recs[0]):
            out.append(SessionAlert(True, None, None, None, True, True))
        elif len(s_recs) > 1 and _is_alert_sized(s_recs[-1]):
            out.append(SessionAlert(False, None, None, None, True, True))
        return out

    def idx(side: bool, rec: EncryptedRecord) -> int:
        return _chunk_index(arrival, side, rec.offset + 5 + rec.length)

    if s_recs:
        server_flight = idx(False, s_recs[0])
        after = [r for r in c_recs if idx(True, r) > server_flight]
        if after and _is_alert_sized(after[0]):
            out.append(SessionAlert(True, None, None, None, True, True))
    if c_recs:
        client_flight = idx(True, c_recs[0])
        after = [r for r in s_recs if idx(False, r) > client_flight]
        if after and _is_alert_sized(after[0]):
            out.append(SessionAlert(False, None, None, None, True, True))
    return out


def _merge_by_arrival(
    client: Sequence[Event],
    server: Sequence[Event],
    arrival: Sequence[tuple[bool, int]],
) -> list[tuple[bool, str]]:
    tagged = [
        (_chunk_index(arrival, True, e.end), 0, i, True, e.letter)
        for i, e in enumerate(client)
    ]
    tagged += [
        (_chunk_index(arrival, False, e.end), 1, i, False, e.letter)
        for i, e in enumerate(server)
    ]
    tagged.sort()
    return [(t[3], t[4]) for t in tagged]


def _merge_by_turns(
    client: Sequence[Event], server: Sequence[Event]
) -> list[tuple[bool, str]]:
    """Interleave the two directions by handshake causality when no timing is known.

    The client speaks first; each side keeps the floor until it sent what the
    peer must answer: the client after a ClientHello or its CCS, the server
    after ServerHelloDone, after a HelloRetryRequest (and the CCS that may
    follow it), after a TLS 1.3 ServerHello (and its compatibility CCS), or
    after its own CCS.
    """
    out: list[tuple[bool, str]] = []
    ci = si = 0
    while ci < len(client) or si < len(server):
        while ci < len(client):
            letter = client[ci].letter
            ci += 1
            out.append((True, letter))
            nxt = client[ci].letter if ci < len(client) else None
            if letter == "c" or (letter == "i" and nxt != "c"):
                break
        while si < len(server):
            letter = server[si].letter
            si += 1
            out.append((False, letter))
            nxt = server[si].letter if si < len(server) else None
            if letter in ("n", "i") or (
                letter in ("j", "s") and nxt not in _SERVER_FLIGHT_CONTINUES
            ):
                break
    return out


# Server letters that continue a flight after a ServerHello (or an HRR's CCS).
_SERVER_FLIGHT_CONTINUES = frozenset("xkrntuio")


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
    ch = client.client_hello
    sh = server.server_hello
    established = _established(client, server, sh)

    alerts: list[SessionAlert] = []
    for side in (client, server):
        for a in side.alerts:
            alerts.append(
                SessionAlert(
                    side.from_client, a.level, a.description, a.name, a.encrypted, False
                )
            )
    if sh is not None and is_tls13(sh.version):
        alerts.extend(_infer_tls13_alerts(client, server, established, arrival))
    plaintext = [a for a in alerts if not a.encrypted]
    last_alert = plaintext[-1] if plaintext else (alerts[-1] if alerts else None)

    if arrival is not None:
        merged = _merge_by_arrival(client.events, server.events, arrival)
    else:
        merged = _merge_by_turns(client.events, server.events)
    history = "".join(
        letter.upper() if is_client else letter for is_client, letter in merged
    )

    version_code = sh.version if sh is not None else None
    client_certs: tuple[bytes, ...] = client.certificates
    return TLSSession(
        version=version_name(version_code) if version_code is not None else None,
        version_code=version_code,
        cipher=sh.cipher_name if sh is not None else None,
        cipher_code=sh.cipher_suite if sh is not None else None,
        server_name=ch.server_name if ch is not None else None,
        client_alpn=ch.alpn if ch is not None else (),
        alpn=sh.alpn if sh is not None else None,
        established=established,
        resumed=_resumed(ch, sh, client),
        hello_retry_request=any(s.is_hello_retry_request for s in server.server_hellos),
        alerts=tuple(alerts),
        last_alert=last_alert,
        ssl_history=history[:100],
        cert_chain=server.certificates,
        client_cert_chain=client_certs,
        weirds=client.weirds + server.weirds,
    )
