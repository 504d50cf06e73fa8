"""QUIC long headers and Initial packets, seen passively (RFC 9000, 9001, 9369).

What a passive observer can read of a QUIC connection: the long-header
packets of the handshake (version, connection ids), and the Initial packets,
whose keys anyone can derive from the client's first Destination Connection
ID. Decrypting the client's Initials gives the ClientHello (SNI, ALPN);
the server's give its ServerHello and any CONNECTION_CLOSE it sent instead.

Layers, each usable alone:

* `split_datagram` cuts one UDP payload into its coalesced packets;
* `initial_keys` / `decrypt_long_packet` remove header protection and
  AEAD-decrypt an Initial (AES-128-GCM, the `cryptography` package);
* `parse_frames` reads the frames an Initial may carry;
* `QUICInitialAssembler` is the per-flow, sans-I/O state machine: feed it
  datagrams, it returns events; CRYPTO data is reassembled by offset across
  packets and datagrams (post-quantum ClientHellos span two or more Initials,
  sometimes sent out of order) and handed to `tls.parse_client_hello`.

Google QUIC (Q0xx) sends its hello unencrypted; `parse_gquic_client_hello`
reads the SNI from it.

Errors: the pure functions raise only `ParseError` (kinds `quic_*`); the
assembler never raises and reports anomalies as `QUICWeird` events.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from ._buffer import Buffer, ParseError
from .tls import ClientHello, ServerHello, parse_client_hello, parse_server_hello

__all__ = [
    "QUIC_V1",
    "QUIC_V2",
    "Ack",
    "CoalescedPackets",
    "ConnectionClose",
    "Crypto",
    "DecryptedPacket",
    "Frame",
    "GQUICHello",
    "LongHeader",
    "PacketKeys",
    "PacketType",
    "Padding",
    "Ping",
    "QUICClientHello",
    "QUICConnectionClose",
    "QUICEvent",
    "QUICFlowState",
    "QUICGoogleHello",
    "QUICInitialAssembler",
    "QUICOneRTT",
    "QUICPacket",
    "QUICPacketSeen",
    "QUICServerHello",
    "QUICVersionNegotiation",
    "QUICWeird",
    "ShortHeader",
    "decode_packet_number",
    "decrypt_long_packet",
    "hkdf_expand_label",
    "initial_keys",
    "initial_salt",
    "initial_secrets",
    "is_client_initial",
    "looks_like_quic",
    "packet_keys",
    "parse_frames",
    "parse_gquic_client_hello",
    "split_datagram",
    "version_name",
]

QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF
MAX_CID_LENGTH = 20  # RFC 9000 17.2, for the versions we know
TRUNCATED = "quic_truncated"

# Initial salts (RFC 9001 5.2, RFC 9369 3.3.1, and the drafts before them).
_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
_SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
_SALT_D29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")  # drafts 29-32
_SALT_D23 = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")  # drafts 23-28
_SALT_D22 = bytes.fromhex("7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a")
# Facebook's mvfst versions reuse draft salts (as Wireshark and nDPI map them).
_MVFST = {0xFACEB001: _SALT_D22, 0xFACEB002: _SALT_D23, 0xFACEB00E: _SALT_D23}


class PacketType(StrEnum):
    INITIAL = "initial"
    ZERO_RTT = "0rtt"
    HANDSHAKE = "handshake"
    RETRY = "retry"
    VERSION_NEGOTIATION = "version_negotiation"
    UNKNOWN = "unknown"  # a long header of a version we cannot read further
    ONE_RTT = "1rtt"


# Long packet type bits: v1 and its drafts, then v2, which rotated them.
_TYPES_V1 = (PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE, PacketType.RETRY)
_TYPES_V2 = (PacketType.RETRY, PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE)


def _draft(version: int) -> int | None:
    return version & 0xFF if version >> 8 == 0xFF0000 else None


def initial_salt(version: int) -> bytes | None:
    """The Initial salt of a version we can decrypt, else None."""
    if version == QUIC_V1:
        return _SALT_V1
    if version == QUIC_V2:
        return _SALT_V2
    if version in _MVFST:
        return _MVFST[version]
    draft = _draft(version)
    if draft is None or draft < 22:
        return None
    if draft >= 33:
        return _SALT_V1
    if draft >= 29:
        return _SALT_D29
    return _SALT_D23 if draft >= 23 else _SALT_D22


def _known(version: int) -> bool:
    return initial_salt(version) is not None


def version_name(version: int) -> str:
    """Zeek's names where it has them ("1", "quicv2", "draft-29"), else hex or the gQUIC tag."""
    if version == 0:
        return "version-negotiation"
    if version == QUIC_V1:
        return "1"
    if version == QUIC_V2:
        return "quicv2"
    draft = _draft(version)
    if draft is not None:
        return f"draft-{draft}"
    if version in _MVFST:
        return f"mvfst ({version:08x})"
    if version >> 24 in (0x51, 0x54) and all(0x30 <= (version >> s) & 0xFF <= 0x39 for s in (0, 8, 16)):
        return version.to_bytes(4, "big").decode("ascii")  # Q046, T051 ...
    return f"unknown-{version:x}"


# ---------------------------------------------------------------- headers


@dataclass(frozen=True, slots=True)
class LongHeader:
    start: int  # offset of the packet in the datagram
    end: int  # offset just past it (what was captured of it when truncated)
    first_byte: int  # as on the wire: the low bits are still protected
    version: int
    packet_type: PacketType
    dcid: bytes
    scid: bytes
    token: bytes  # Initial: the address-validation token; Retry: the retry token
    length: int  # the Length field (packet number + payload), 0 when absent
    pn_offset: int  # offset of the packet number in the datagram, -1 when absent
    truncated: bool  # the datagram ends before the Length field says
    supported_versions: tuple[int, ...] = ()  # Version Negotiation only


@dataclass(frozen=True, slots=True)
class ShortHeader:
    start: int
    end: int
    first_byte: int


QUICPacket = LongHeader | ShortHeader


@dataclass(frozen=True, slots=True)
class CoalescedPackets:
    packets: tuple[QUICPacket, ...]
    weird: str | None  # why the rest of the datagram was not read, if it was not


def looks_like_quic(data: bytes) -> bool:
    """A long-header packet of a version we know, or a Version Negotiation."""
    if len(data) < 7 or not data[0] & 0x80:
        return False
    version = int.from_bytes(data[1:5], "big")
    return version == 0 or _known(version)


MIN_CLIENT_INITIAL_DATAGRAM = 1200  # RFC 9000 14.1: clients pad datagrams with Initials to this size


def is_client_initial(data: bytes) -> bool:
    """A client's first flight beyond doubt: an Initial of a version we know in a datagram padded to
    1,200 bytes. Other protocols' packets can pass `looks_like_quic` (an unsynchronised NTP request
    is 0xe3 then zeros: a Version Negotiation); nothing else is shaped like this, whatever the port.
    """
    if len(data) < MIN_CLIENT_INITIAL_DATAGRAM or data[0] & 0xC0 != 0xC0:
        return False
    version = int.from_bytes(data[1:5], "big")
    if version == 0 or not _known(version):
        return False
    types = _TYPES_V2 if version == QUIC_V2 else _TYPES_V1
    return types[(data[0] >> 4) & 0x03] == PacketType.INITIAL


def _parse_long(data: bytes, start: int) -> LongHeader:
    buf = Buffer(data[start:], TRUNCATED)
    first = buf.pull_uint8()
    version = buf.pull_uint32()
    dcid = buf.pull_vector(1)
    scid = buf.pull_vector(1)
    size = len(data)
    if version == 0:
        rest = buf.rest()
        if not rest or len(rest) % 4:
            raise ParseError("quic_bad_version_negotiation", f"{len(rest)} bytes of versions")
        versions = tuple(int.from_bytes(rest[i : i + 4], "big") for i in range(0, len(rest), 4))
        return LongHeader(
            start, size, first, 0, PacketType.VERSION_NEGOTIATION, dcid, scid, b"", 0, -1, False, versions
        )
    if not _known(version):
        # Past the connection ids a long header is version-specific; the
        # invariants (RFC 8999) say nothing of where the packet ends.
        return LongHeader(start, size, first, version, PacketType.UNKNOWN, dcid, scid, b"", 0, -1, False)
    if len(dcid) > MAX_CID_LENGTH or len(scid) > MAX_CID_LENGTH:
        raise ParseError("quic_bad_cid_length", f"{len(dcid)}/{len(scid)} bytes")
    types = _TYPES_V2 if version == QUIC_V2 else _TYPES_V1
    packet_type = types[(first >> 4) & 0x03]
    if packet_type == PacketType.RETRY:
        rest = buf.rest()
        if len(rest) < 16:
            raise ParseError("quic_bad_retry", "shorter than its integrity tag")
        return LongHeader(start, size, first, version, packet_type, dcid, scid, rest[:-16], 0, -1, False)
    token = buf.pull_bytes(buf.pull_varint()) if packet_type == PacketType.INITIAL else b""
    length = buf.pull_varint()
    pn_offset = start + buf.pos
    declared_end = pn_offset + length
    return LongHeader(
        start,
        min(declared_end, size),
        first,
        version,
        packet_type,
        dcid,
        scid,
        token,
        length,
        pn_offset,
        declared_end > size,
    )


def split_datagram(data: bytes, short_dcid: bytes | None = None) -> CoalescedPackets:
    """Cut one UDP payload into QUIC packets (RFC 9000 12.2).

    Long-header packets carry their length; a short-header packet has none
    and takes the rest of the datagram. A short header is recognised by its
    fixed bit, or, since peers may grease that bit (RFC 9287), by starting
    with `short_dcid` (the connection id short headers in this direction
    carry) when the caller knows it. Bytes after the last packet that do not
    start one (some stacks pad datagrams) end the walk: zeros silently,
    anything else with the weird `quic_trailing_bytes`. Raises `ParseError`
    only when the first packet itself cannot be read.
    """
    packets: list[QUICPacket] = []
    pos = 0
    weird: str | None = None
    while pos < len(data):
        first = data[pos]
        if first & 0x80:
            try:
                header = _parse_long(data, pos)
            except ParseError as exc:
                if not packets:
                    raise
                weird = exc.kind
                break
            packets.append(header)
            if header.end <= pos:  # zero-length packet: cannot progress
                weird = "quic_bad_length"
                break
            pos = header.end
        elif first & 0x40 or (short_dcid and data[pos + 1 : pos + 1 + len(short_dcid)] == short_dcid):
            packets.append(ShortHeader(pos, len(data), first))
            break
        else:
            if not packets:
                raise ParseError("quic_not_quic", f"first byte {first:#04x}")
            if any(data[pos:]):
                weird = "quic_trailing_bytes"
            break
    return CoalescedPackets(tuple(packets), weird)


# ---------------------------------------------------------------- keys


@dataclass(frozen=True, slots=True)
class PacketKeys:
    key: bytes  # AES-128-GCM key
    iv: bytes
    hp: bytes  # header protection key


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    mac = hmac.HMAC(salt, hashes.SHA256())
    mac.update(ikm)
    return mac.finalize()


def hkdf_expand_label(secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """TLS 1.3 HKDF-Expand-Label (RFC 8446 7.1) with SHA-256."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def initial_secrets(dcid: bytes, version: int) -> tuple[bytes, bytes]:
    """(client, server) Initial secrets from the client's first DCID (RFC 9001 5.2)."""
    salt = initial_salt(version)
    if salt is None:
        raise ParseError("quic_unknown_version", f"no Initial salt for {version:#010x}")
    initial = _hkdf_extract(salt, dcid)
    return (
        hkdf_expand_label(initial, b"client in", b"", 32),
        hkdf_expand_label(initial, b"server in", b"", 32),
    )


def packet_keys(secret: bytes, version: int) -> PacketKeys:
    """Key, IV and header-protection key; v2 renamed the labels (RFC 9369 3.3.2)."""
    prefix = b"quicv2 " if version == QUIC_V2 else b"quic "
    return PacketKeys(
        hkdf_expand_label(secret, prefix + b"key", b"", 16),
        hkdf_expand_label(secret, prefix + b"iv", b"", 12),
        hkdf_expand_label(secret, prefix + b"hp", b"", 16),
    )


def initial_keys(dcid: bytes, version: int, *, from_client: bool) -> PacketKeys:
    client, server = initial_secrets(dcid, version)
    return packet_keys(client if from_client else server, version)


# ---------------------------------------------------------------- decryption


@dataclass(frozen=True, slots=True)
class DecryptedPacket:
    packet_number: int
    header: bytes  # the header with protection removed
    payload: bytes  # the frames


def decode_packet_number(largest: int, truncated: int, bits: int) -> int:
    """RFC 9000 appendix A.3; `largest` is -1 before any packet of the space."""
    expected = largest + 1
    window = 1 << bits
    half = window // 2
    candidate = (expected & ~(window - 1)) | truncated
    if candidate <= expected - half and candidate < (1 << 62) - window:
        return candidate + window
    if candidate > expected + half and candidate >= window:
        return candidate - window
    return candidate


def decrypt_long_packet(data: bytes, header: LongHeader, keys: PacketKeys, largest_pn: int = -1) -> DecryptedPacket:
    """Remove header protection from and decrypt one Initial/Handshake/0-RTT packet."""
    if header.pn_offset < 0:
        raise ParseError("quic_not_protected", f"{header.packet_type} packets carry no payload")
    if header.truncated:
        raise ParseError(TRUNCATED, "packet cut short by the capture")
    sample_at = header.pn_offset + 4
    if sample_at + 16 > header.end:
        raise ParseError("quic_packet_too_short", "no room for the header protection sample")
    encryptor = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()
    mask = encryptor.update(data[sample_at : sample_at + 16]) + encryptor.finalize()
    first = data[header.start] ^ (mask[0] & 0x0F)
    pn_length = (first & 0x03) + 1
    pn_raw = bytes(b ^ m for b, m in zip(data[header.pn_offset : header.pn_offset + pn_length], mask[1:]))
    packet_number = decode_packet_number(largest_pn, int.from_bytes(pn_raw, "big"), 8 * pn_length)
    plain_header = bytes([first]) + data[header.start + 1 : header.pn_offset] + pn_raw
    nonce = (int.from_bytes(keys.iv, "big") ^ packet_number).to_bytes(12, "big")
    try:
        payload = AESGCM(keys.key).decrypt(nonce, data[header.pn_offset + pn_length : header.end], plain_header)
    except InvalidTag:
        raise ParseError("quic_decrypt_failed", "AEAD tag mismatch") from None
    return DecryptedPacket(packet_number, plain_header, payload)


# ---------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class Padding:
    length: int


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Ack:
    largest: int
    delay: int
    first_range: int
    ranges: tuple[tuple[int, int], ...]  # (gap, length) pairs after the first
    ecn: tuple[int, int, int] | None


@dataclass(frozen=True, slots=True)
class Crypto:
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionClose:
    error_code: int
    frame_type: int | None  # None for the application variant (0x1d)
    reason: str  # escaped: printable ASCII only

    @property
    def application(self) -> bool:
        return self.frame_type is None


Frame = Padding | Ping | Ack | Crypto | ConnectionClose


def _escape(raw: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)


def parse_frames(payload: bytes) -> tuple[Frame, ...]:
    """The frames of a decrypted Initial or Handshake packet (RFC 9000 12.4).

    Only the types those packets may carry are understood; anything else is
    `quic_unexpected_frame`, since a frame's length depends on its type.
    """
    buf = Buffer(payload, "quic_bad_frame")
    frames: list[Frame] = []
    while not buf.eof():
        start = buf.pos
        kind = buf.pull_varint()
        if kind == 0x00:
            while not buf.eof() and payload[buf.pos] == 0:
                buf.pull_uint8()
            frames.append(Padding(buf.pos - start))
        elif kind == 0x01:
            frames.append(Ping())
        elif kind in (0x02, 0x03):
            largest, delay, count, first = (buf.pull_varint() for _ in range(4))
            ranges = tuple((buf.pull_varint(), buf.pull_varint()) for _ in range(count))
            ecn = (buf.pull_varint(), buf.pull_varint(), buf.pull_varint()) if kind == 0x03 else None
            frames.append(Ack(largest, delay, first, ranges, ecn))
        elif kind == 0x06:
            offset = buf.pull_varint()
            frames.append(Crypto(offset, buf.pull_bytes(buf.pull_varint())))
        elif kind in (0x1C, 0x1D):
            code = buf.pull_varint()
            frame_type = buf.pull_varint() if kind == 0x1C else None
            reason = _escape(buf.pull_bytes(buf.pull_varint()))
            frames.append(ConnectionClose(code, frame_type, reason))
        else:
            raise ParseError("quic_unexpected_frame", f"frame type {kind:#x} at {start}")
    return tuple(frames)


# ---------------------------------------------------------------- gQUIC


@dataclass(frozen=True, slots=True)
class GQUICHello:
    version: int
    server_name: str | None
    user_agent: str | None


def _gquic_version(data: bytes) -> int | None:
    if len(data) < 14:
        return None
    if data[0] & 0x80:  # Q046 and later: an IETF-style long header
        at = 1
    elif data[0] & 0x01:  # earlier: public header with the version flag
        at = 9 if data[0] & 0x08 else 1
    else:
        return None
    version = int.from_bytes(data[at : at + 4], "big")
    # Q050 and later encrypt the hello like IETF QUIC; we do not read those.
    if version >> 24 != 0x51 or version.to_bytes(4, "big")[1:] >= b"050":
        return None
    return version


def parse_gquic_client_hello(data: bytes) -> GQUICHello | None:
    """The SNI/UAID of a Google QUIC (Q0xx before Q050) client hello, if this is one.

    Those versions send the CHLO handshake message in clear: a tag-value map
    ("CHLO", entry count, then (tag, end offset) pairs and the values).
    Returns None for anything else; raises `ParseError` for a broken CHLO.
    """
    version = _gquic_version(data)
    if version is None:
        return None
    at = data.find(b"CHLO", 5)
    if at < 0:
        return None
    buf = Buffer(data[at + 4 :], "gquic_bad_chlo")
    count = int.from_bytes(buf.pull_bytes(2), "little")
    buf.pull_bytes(2)
    entries = [(buf.pull_bytes(4), int.from_bytes(buf.pull_bytes(4), "little")) for _ in range(count)]
    values = buf.rest()
    fields: dict[bytes, str] = {}
    previous = 0
    for tag, end in entries:
        if end < previous or end > len(values):
            raise ParseError("gquic_bad_chlo", f"tag {tag!r} ends at {end}")
        fields[tag] = _escape(values[previous:end])
        previous = end
    return GQUICHello(version, fields.get(b"SNI\x00"), fields.get(b"UAID"))


# ---------------------------------------------------------------- assembler


@dataclass(frozen=True, slots=True)
class QUICPacketSeen:
    """One long-header packet (every one), as Zeek's quic history counts them."""

    from_client: bool
    packet_type: PacketType
    version: int
    dcid: bytes
    scid: bytes
    truncated: bool


@dataclass(frozen=True, slots=True)
class QUICOneRTT:
    """The first short-header (1-RTT) packet in one direction."""

    from_client: bool


@dataclass(frozen=True, slots=True)
class QUICVersionNegotiation:
    versions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class QUICClientHello:
    version: int
    dcid: bytes  # the DCID the keys came from (the client's original one)
    scid: bytes
    hello: ClientHello
    initial_packets: int  # client Initials with CRYPTO data that it took (the first repeats count too)


@dataclass(frozen=True, slots=True)
class QUICServerHello:
    version: int
    hello: ServerHello


@dataclass(frozen=True, slots=True)
class QUICConnectionClose:
    from_client: bool
    close: ConnectionClose


@dataclass(frozen=True, slots=True)
class QUICGoogleHello:
    hello: GQUICHello


@dataclass(frozen=True, slots=True)
class QUICWeird:
    kind: str
    from_client: bool


QUICEvent = (
    QUICPacketSeen
    | QUICOneRTT
    | QUICVersionNegotiation
    | QUICClientHello
    | QUICServerHello
    | QUICConnectionClose
    | QUICGoogleHello
    | QUICWeird
)


@dataclass(frozen=True, slots=True)
class QUICFlowState:
    version: int | None  # the client's first long header's, or the one it chose after Version Negotiation
    original_dcid: bytes | None
    client_scid: bytes | None
    server_scid: bytes | None
    client_hello: ClientHello | None
    server_hello: ServerHello | None  # the final one: a HelloRetryRequest only when nothing followed it
    hello_retry_request: bool
    server_answered: bool  # any QUIC packet from the server
    client_packet_types: frozenset[PacketType]
    server_packet_types: frozenset[PacketType]
    client_one_rtt: bool
    server_one_rtt: bool
    retry: bool
    version_negotiation: tuple[int, ...] | None
    connection_close: QUICConnectionClose | None  # the last one read in an Initial
    gquic_hello: GQUICHello | None

    @property
    def version_name(self) -> str | None:
        return None if self.version is None else version_name(self.version)


class _CryptoStream:
    """One direction's Initial CRYPTO stream, reassembled by offset."""

    __slots__ = ("chunks", "consumed", "full", "limit")

    def __init__(self, limit: int) -> None:
        self.chunks: dict[int, bytes] = {}
        self.consumed = 0  # bytes already handed out as complete messages
        self.limit = limit
        self.full = False

    def add(self, offset: int, data: bytes) -> bool:
        """Store a chunk; False once the stream would exceed the limit."""
        if offset + len(data) > self.limit:
            self.full = True
            return False
        if offset + len(data) > self.consumed and len(data) > len(self.chunks.get(offset, b"")):
            self.chunks[offset] = data
        return True

    def _contiguous(self) -> bytes:
        out = bytearray()
        base = self.consumed
        for offset in sorted(self.chunks):
            if offset > base + len(out):
                break
            out += self.chunks[offset][base + len(out) - offset :]
        return bytes(out)

    def messages(self) -> list[tuple[int, bytes]]:
        """Complete handshake messages (type, body) not handed out before."""
        data = self._contiguous()
        out: list[tuple[int, bytes]] = []
        pos = 0
        while len(data) - pos >= 4:
            length = int.from_bytes(data[pos + 1 : pos + 4], "big")
            if len(data) - pos - 4 < length:
                break
            out.append((data[pos], data[pos + 4 : pos + 4 + length]))
            pos += 4 + length
        if pos:
            self.consumed += pos
            self.chunks = {o: c for o, c in self.chunks.items() if o + len(c) > self.consumed}
        return out


_CLIENT_HELLO = 1
_SERVER_HELLO = 2


class QUICInitialAssembler:
    """Per-flow, sans-I/O reader of a QUIC handshake.

    Feed every UDP payload of one flow, saying which side sent it; each call
    returns the events it produced. It holds only this flow's state, never
    raises, and never looks at a clock. Short-header (1-RTT) datagrams cost a
    byte test once the first one of a direction has been reported.

    Create one for a flow whose first datagram `looks_like_quic` (or is a
    Google QUIC hello): a short header has no version or length to check, so
    the assembler takes any datagram with the fixed bit set for 1-RTT.
    """

    def __init__(self, *, max_crypto_bytes: int = 1 << 16) -> None:
        self._version: int | None = None
        self._original_dcid: bytes | None = None
        self._key_dcid: bytes | None = None  # original DCID, or the Retry's SCID after a Retry
        self._client_scid: bytes | None = None
        self._server_scid: bytes | None = None
        self._keys: dict[tuple[bytes, int, bool], PacketKeys] = {}
        self._largest_pn = {True: -1, False: -1}
        self._streams = {True: _CryptoStream(max_crypto_bytes), False: _CryptoStream(max_crypto_bytes)}
        self._max_crypto = max_crypto_bytes
        self._crypto_packets = 0
        self._client_hello: ClientHello | None = None
        self._server_hello: ServerHello | None = None
        self._hello_retry_request = False
        self._types: dict[bool, set[PacketType]] = {True: set(), False: set()}
        self._one_rtt = {True: False, False: False}
        self._server_answered = False
        self._retry = False
        self._vn: tuple[int, ...] | None = None
        self._close: QUICConnectionClose | None = None
        self._gquic: GQUICHello | None = None

    @property
    def state(self) -> QUICFlowState:
        return QUICFlowState(
            version=self._version,
            original_dcid=self._original_dcid,
            client_scid=self._client_scid,
            server_scid=self._server_scid,
            client_hello=self._client_hello,
            server_hello=self._server_hello,
            hello_retry_request=self._hello_retry_request,
            server_answered=self._server_answered,
            client_packet_types=frozenset(self._types[True]),
            server_packet_types=frozenset(self._types[False]),
            client_one_rtt=self._one_rtt[True],
            server_one_rtt=self._one_rtt[False],
            retry=self._retry,
            version_negotiation=self._vn,
            connection_close=self._close,
            gquic_hello=self._gquic,
        )

    def feed(self, datagram: bytes, from_client: bool) -> list[QUICEvent]:
        data = bytes(datagram)
        if data and not data[0] & 0x80 and self._one_rtt[from_client]:
            return []  # the common case after the handshake: nothing new to learn
        if self._gquic is not None:
            return []  # Google QUIC after its hello: nothing more we can read
        if from_client and _gquic_version(data) is not None:
            return self._gquic_hello(data)
        events: list[QUICEvent] = []
        # Short headers carry the peer's connection id: the client's SCID
        # towards the client, the server's towards the server.
        short_dcid = self._server_scid if from_client else self._client_scid
        try:
            coalesced = split_datagram(data, short_dcid)
        except ParseError as exc:
            return [QUICWeird(exc.kind, from_client)]
        if not from_client and coalesced.packets:
            self._server_answered = True
        for packet in coalesced.packets:
            if isinstance(packet, ShortHeader):
                if not self._one_rtt[from_client]:
                    self._one_rtt[from_client] = True
                    self._types[from_client].add(PacketType.ONE_RTT)
                    events.append(QUICOneRTT(from_client))
                continue
            events += self._long(data, packet, from_client)
        if coalesced.weird:
            events.append(QUICWeird(coalesced.weird, from_client))
        return events

    def _gquic_hello(self, data: bytes) -> list[QUICEvent]:
        try:
            hello = parse_gquic_client_hello(data)
        except ParseError as exc:
            return [QUICWeird(exc.kind, True)]
        if hello is None:
            return []
        self._gquic = hello
        self._version = hello.version
        return [QUICGoogleHello(hello)]

    def _long(self, data: bytes, header: LongHeader, from_client: bool) -> list[QUICEvent]:
        events: list[QUICEvent] = [
            QUICPacketSeen(from_client, header.packet_type, header.version, header.dcid, header.scid, header.truncated)
        ]
        self._types[from_client].add(header.packet_type)
        if header.packet_type == PacketType.VERSION_NEGOTIATION:
            if not from_client:
                # The client starts over in another version: new CRYPTO
                # streams, new packet number spaces.
                self._vn = header.supported_versions
                self._restart()
                events.append(QUICVersionNegotiation(header.supported_versions))
            return events
        if from_client:
            if self._version is None or (self._vn is not None and header.packet_type == PacketType.INITIAL):
                self._version = header.version  # the first, or the one chosen after Version Negotiation
            if self._original_dcid is None and header.packet_type in (PacketType.INITIAL, PacketType.ZERO_RTT):
                self._original_dcid = self._key_dcid = header.dcid
            if self._client_scid is None:
                self._client_scid = header.scid
        elif self._server_scid is None and header.packet_type != PacketType.UNKNOWN:
            self._server_scid = header.scid
        if header.packet_type == PacketType.UNKNOWN:
            events.append(QUICWeird("quic_unknown_version", from_client))
        elif header.packet_type == PacketType.RETRY and not from_client:
            # The client restarts with the Retry's SCID as DCID, and the
            # Initial keys are derived from that from now on (RFC 9001 5.2).
            self._retry = True
            self._key_dcid = header.scid
            self._restart()
        elif header.packet_type == PacketType.INITIAL:
            events += self._initial(data, header, from_client)
        return events

    def _restart(self) -> None:
        self._largest_pn = {True: -1, False: -1}
        self._streams = {True: _CryptoStream(self._max_crypto), False: _CryptoStream(self._max_crypto)}
        self._crypto_packets = 0

    def _keys_for(self, dcid: bytes, version: int, from_client: bool) -> PacketKeys:
        key = (dcid, version, from_client)
        if key not in self._keys:
            self._keys[key] = initial_keys(dcid, version, from_client=from_client)
        return self._keys[key]

    def _decrypt(self, data: bytes, header: LongHeader, from_client: bool) -> DecryptedPacket:
        basis = self._key_dcid if self._key_dcid is not None else header.dcid
        largest = self._largest_pn[from_client]
        try:
            return decrypt_long_packet(data, header, self._keys_for(basis, header.version, from_client), largest)
        except ParseError as exc:
            # A client Initial under keys of its own DCID: the capture began
            # after the first Initial, or a new connection reuses the 4-tuple.
            if exc.kind != "quic_decrypt_failed" or not from_client or header.dcid == basis:
                raise
            packet = decrypt_long_packet(data, header, self._keys_for(header.dcid, header.version, True), -1)
            self._key_dcid = header.dcid
            self._restart()
            return packet

    def _initial(self, data: bytes, header: LongHeader, from_client: bool) -> list[QUICEvent]:
        try:
            packet = self._decrypt(data, header, from_client)
            frames = parse_frames(packet.payload)
        except ParseError as exc:
            return [QUICWeird(exc.kind, from_client)]
        self._largest_pn[from_client] = max(self._largest_pn[from_client], packet.packet_number)
        events: list[QUICEvent] = []
        stream = self._streams[from_client]
        carried = False
        for frame in frames:
            if isinstance(frame, Crypto):
                carried = True
                if not stream.full and not stream.add(frame.offset, frame.data):
                    events.append(QUICWeird("quic_crypto_buffer_full", from_client))
            elif isinstance(frame, ConnectionClose):
                self._close = QUICConnectionClose(from_client, frame)
                events.append(self._close)
        if carried and from_client:
            self._crypto_packets += 1
        for msg_type, body in stream.messages():
            events += self._handshake_message(msg_type, body, header, from_client)
        return events

    def _handshake_message(self, msg_type: int, body: bytes, header: LongHeader, from_client: bool) -> list[QUICEvent]:
        try:
            if from_client and msg_type == _CLIENT_HELLO:
                hello = parse_client_hello(body)
                if self._client_hello is None:
                    self._client_hello = hello
                dcid = self._key_dcid if self._key_dcid is not None else header.dcid
                packets, self._crypto_packets = self._crypto_packets, 0
                return [QUICClientHello(header.version, dcid, header.scid, hello, packets)]
            if not from_client and msg_type == _SERVER_HELLO:
                server_hello = parse_server_hello(body)
                # Keep the first ServerHello, unless it was a HelloRetryRequest:
                # then the one that answers the client's second ClientHello.
                if self._server_hello is None or self._server_hello.is_hello_retry_request:
                    self._server_hello = server_hello
                self._hello_retry_request |= server_hello.is_hello_retry_request
                return [QUICServerHello(header.version, server_hello)]
        except ParseError as exc:
            return [QUICWeird(exc.kind, from_client)]
        return [QUICWeird("quic_unexpected_handshake_message", from_client)]

