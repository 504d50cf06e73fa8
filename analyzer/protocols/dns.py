"""DNS messages (RFC 1035, EDNS RFC 6891, SVCB/HTTPS RFC 9460): pure parsing.

`parse_message` turns one DNS message (a UDP payload, or one message of a TCP
stream cut by `split_tcp_messages`) into a frozen `DNSMessage`.

Names are kept as they were on the wire (case included) in presentation
form: labels joined by ".", no trailing dot, the root written ".". Bytes a
terminal or a log must not receive raw are escaped the RFC 1035 way: `\\.`
and `\\\\` for a dot or backslash inside a label, `\\DDD` (decimal) for
anything outside printable ASCII. `normalize_name` gives the form to compare
and key on.

Errors: a message whose header or question section cannot be framed raises
`ParseError` (kinds `dns_truncated`, `dns_name_loop`, `dns_bad_pointer`,
`dns_bad_label_type`). Damage that leaves the framing intact, or comes
later, does not throw away what was already read, because resolvers'
answers are what the analyzer needs most (nDPI and Wireshark read on in the
same way): a name over 255 octets is cut and kept, a record whose RDATA
does not decode keeps its raw bytes (`UndecodedRData`), a section that
breaks off ends there, and each problem's kind (`dns_name_too_long`,
`dns_bad_rdata`, ...) is listed in `DNSMessage.weirds` for the caller to
count.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from ._buffer import Buffer, ParseError
from .dns_registry import (
    EDNSOption,
    RRType,
    SvcParamKey,
    rcode_name,
    rrclass_name,
    rrtype_name,
)

__all__ = [
    "DNSMessage",
    "MXData",
    "OPTData",
    "Question",
    "RData",
    "RawRData",
    "ResourceRecord",
    "SOAData",
    "SRVData",
    "SVCBData",
    "TXTData",
    "TransactionKey",
    "UndecodedRData",
    "cname_chain",
    "normalize_name",
    "parse_message",
    "split_tcp_messages",
    "transaction_key",
]

TRUNCATED = "dns_truncated"
MAX_NAME_WIRE_LENGTH = 255  # RFC 1035 3.1, length octets and final zero included


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Question:
    name: str
    qtype: int
    qclass: int  # raw: mDNS puts its unicast-response flag in the top bit

    @property
    def normalized_name(self) -> str:
        return normalize_name(self.name)

    @property
    def type_name(self) -> str:
        return rrtype_name(self.qtype)


@dataclass(frozen=True, slots=True)
class MXData:
    preference: int
    exchange: str


@dataclass(frozen=True, slots=True)
class TXTData:
    strings: tuple[str, ...]  # each character-string, escaped


@dataclass(frozen=True, slots=True)
class SOAData:
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


@dataclass(frozen=True, slots=True)
class SRVData:
    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True, slots=True)
class SVCBData:
    """SVCB/HTTPS RDATA. priority 0 is AliasMode (target is an alias)."""

    priority: int
    target: str
    alpn: tuple[str, ...]
    no_default_alpn: bool
    port: int | None
    ipv4hint: tuple[str, ...]
    ipv6hint: tuple[str, ...]
    ech: bool  # an ECHConfigList is published: clients will encrypt the SNI
    params: tuple[tuple[int, str], ...]  # every SvcParam as (key, value hex)


@dataclass(frozen=True, slots=True)
class OPTData:
    """EDNS pseudo-record contents; the record's class and TTL hold these."""

    udp_payload_size: int
    extended_rcode_high: int  # upper 8 bits of the 12-bit rcode
    version: int
    dnssec_ok: bool
    options: tuple[tuple[int, str], ...]  # (option code, value hex)
    extended_errors: tuple[tuple[int, str], ...]  # RFC 8914 (info code, text)


@dataclass(frozen=True, slots=True)
class RawRData:
    """RDATA of a type this parser does not decode, as hex."""

    hex: str


@dataclass(frozen=True, slots=True)
class UndecodedRData:
    """RDATA that should have decoded but did not: the weird kind and the bytes."""

    kind: str
    hex: str


# A/AAAA give the address text, CNAME/NS/PTR/DNAME the target name.
RData = str | MXData | TXTData | SOAData | SRVData | SVCBData | OPTData | RawRData | UndecodedRData


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    name: str
    rtype: int
    rclass: int  # raw: for OPT it is the UDP payload size, for mDNS it carries cache-flush
    ttl: int  # raw: for OPT it carries extended rcode, version and flags
    data: RData

    @property
    def normalized_name(self) -> str:
        return normalize_name(self.name)

    @property
    def type_name(self) -> str:
        return rrtype_name(self.rtype)

    @property
    def class_name(self) -> str:
        return rrclass_name(self.rclass)


@dataclass(frozen=True, slots=True)
class DNSMessage:
    id: int
    qr: bool  # True for a response
    opcode: int
    aa: bool
    tc: bool
    rd: bool
    ra: bool
    ad: bool
    cd: bool
    rcode: int  # 12-bit when an OPT record extends it, else the header's 4 bits
    questions: tuple[Question, ...]
    answers: tuple[ResourceRecord, ...]
    authority: tuple[ResourceRecord, ...]
    additional: tuple[ResourceRecord, ...]
    edns: OPTData | None
    weirds: tuple[str, ...]  # problems that did not stop the parse, in order met

    @property
    def rcode_name(self) -> str:
        return rcode_name(self.rcode)

    @property
    def question(self) -> Question | None:
        return self.questions[0] if self.questions else None


# ---------------------------------------------------------------- names


# Bytes that stand for themselves in a label, and in a character-string.
_PLAIN_LABEL = re.compile(rb"[!-\-/-\[\]-~]*")
_PLAIN_TEXT = re.compile(rb"[ !#-\[\]-~]*")


def _escape_label(raw: bytes) -> str:
    if _PLAIN_LABEL.fullmatch(raw):
        return raw.decode("ascii")
    out: list[str] = []
    for byte in raw:
        if byte in (0x2E, 0x5C):  # "." and "\" inside a label
            out.append("\\" + chr(byte))
        elif 0x21 <= byte <= 0x7E:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def _escape_text(raw: bytes) -> str:
    """Escape a character-string (TXT, ALPN id, EDE text) for display."""
    if _PLAIN_TEXT.fullmatch(raw):
        return raw.decode("ascii")
    out: list[str] = []
    for byte in raw:
        if byte in (0x22, 0x5C):  # '"' and "\"
            out.append("\\" + chr(byte))
        elif 0x20 <= byte <= 0x7E:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def normalize_name(name: str) -> str:
    """The form to compare names by: ASCII lower case, no trailing dot.

    Only A-Z fold (RFC 4343); escapes such as `\\065` are left alone, so a
    hostile name cannot be made equal to a benign one by normalisation.
    """
    if name in ("", "."):
        return "."
    if name.endswith(".") and not name.endswith("\\."):
        name = name[:-1]
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _read_name(msg: bytes, start: int, weirds: list[str]) -> tuple[str, int]:
    """Decode the (possibly compressed) name at `start`.

    Returns the name and the offset just after it at its original place.
    Every pointer target is remembered, so any pointer cycle is caught the
    second time round (`dns_name_loop`). A name longer than the 255 octets
    RFC 1035 allows does not lose the message, since its end on the wire is
    still known: it is cut after the labels that fit, and
    `dns_name_too_long` goes to `weirds`.
    """
    labels: list[str] = []
    pos = start
    after: int | None = None
    wire_length = 1
    too_long = False
    visited: set[int] = set()
    size = len(msg)
    while True:
        if pos >= size:
            raise ParseError(TRUNCATED, f"name at {start} runs past the message")
        length = msg[pos]
        tag = length & 0xC0
        if tag == 0xC0:
            if pos + 1 >= size:
                raise ParseError(TRUNCATED, f"pointer at {pos} cut short")
            target = ((length & 0x3F) << 8) | msg[pos + 1]
            if after is None:
                after = pos + 2
            if too_long:
                break  # the end is known; nothing further would be kept
            if target in visited:
                raise ParseError("dns_name_loop", f"pointer to {target} revisited")
            if target >= size:
                raise ParseError("dns_bad_pointer", f"pointer to {target} past the end")
            visited.add(target)
            pos = target
            continue
        if tag:
            raise ParseError("dns_bad_label_type", f"label type {tag >> 6:#x} at {pos}")
        if length == 0:
            if after is None:
                after = pos + 1
            break
        if pos + 1 + length > size:
            raise ParseError(TRUNCATED, f"label at {pos} cut short")
        wire_length += length + 1
        if wire_length > MAX_NAME_WIRE_LENGTH and not too_long:
            too_long = True
            if after is not None:
                break
        if not too_long:
            labels.append(_escape_label(msg[pos + 1 : pos + 1 + length]))
        pos += 1 + length
    if too_long:
        weirds.append("dns_name_too_long")
    return (".".join(labels) if labels else "."), after


def _pull_name(msg: bytes, buf: Buffer, weirds: list[str]) -> str:
    name, after = _read_name(msg, buf.pos, weirds)
    buf.pull_bytes(after - buf.pos)
    return name


# ---------------------------------------------------------------- RDATA


class _RDataReader:
    """A cursor over one record's RDATA that can still follow name pointers."""

    __slots__ = ("buf", "end", "msg", "start", "weirds")

    def __init__(self, msg: bytes, start: int, length: int, weirds: list[str]) -> None:
        self.msg = msg
        self.weirds = weirds
        self.start = start
        self.end = start + length
        self.buf = Buffer(msg[start : self.end], "dns_bad_rdata")

    def name(self) -> str:
        here = self.start + self.buf.pos
        name, after = _read_name(self.msg, here, self.weirds)
        if after > self.end:
            raise ParseError("dns_bad_rdata", "name runs past the record")
        self.buf.pull_bytes(after - here)
        return name

    def done(self) -> None:
        if not self.buf.eof():
            raise ParseError("dns_bad_rdata", f"{self.buf.remaining} trailing bytes")


def _address(raw: bytes) -> str:
    if len(raw) == 4:
        return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    return str(ipaddress.IPv6Address(raw))  # RFC 5952 canonical text


def _rdata_a(r: _RDataReader) -> RData:
    if r.buf.remaining != 4:
        raise ParseError("dns_bad_rdata", f"A record of {r.buf.remaining} bytes")
    return _address(r.buf.pull_bytes(4))


def _rdata_aaaa(r: _RDataReader) -> RData:
    if r.buf.remaining != 16:
        raise ParseError("dns_bad_rdata", f"AAAA record of {r.buf.remaining} bytes")
    return _address(r.buf.pull_bytes(16))


def _rdata_name(r: _RDataReader) -> RData:
    name = r.name()
    r.done()
    return name


def _rdata_mx(r: _RDataReader) -> RData:
    preference = r.buf.pull_uint16()
    data = MXData(preference, r.name())
    r.done()
    return data


def _rdata_txt(r: _RDataReader) -> RData:
    strings: list[str] = []
    while not r.buf.eof():
        strings.append(_escape_text(r.buf.pull_vector(1)))
    return TXTData(tuple(strings))


def _rdata_soa(r: _RDataReader) -> RData:
    mname, rname = r.name(), r.name()
    b = r.buf
    data = SOAData(mname, rname, b.pull_uint32(), b.pull_uint32(), b.pull_uint32(), b.pull_uint32(), b.pull_uint32())
    r.done()
    return data


def _rdata_srv(r: _RDataReader) -> RData:
    b = r.buf
    priority, weight, port = b.pull_uint16(), b.pull_uint16(), b.pull_uint16()
    data = SRVData(priority, weight, port, r.name())
    r.done()
    return data


def _addresses(raw: bytes, size: int) -> tuple[str, ...]:
    if not raw or len(raw) % size:
        raise ParseError("dns_bad_svcparam", f"address hint of {len(raw)} bytes")
    return tuple(_address(raw[i : i + size]) for i in range(0, len(raw), size))


def _alpn_ids(raw: bytes) -> tuple[str, ...]:
    ids = Buffer(raw, "dns_bad_svcparam")
    out: list[str] = []
    while not ids.eof():
        out.append(_escape_text(ids.pull_vector(1)))
    return tuple(out)


def _rdata_svcb(r: _RDataReader) -> RData:
    b = r.buf
    priority = b.pull_uint16()
    target = r.name()
    alpn: tuple[str, ...] = ()
    port: int | None = None
    v4: tuple[str, ...] = ()
    v6: tuple[str, ...] = ()
    no_default_alpn = ech = False
    params: list[tuple[int, str]] = []
    while not b.eof():
        key = b.pull_uint16()
        value = b.pull_vector(2)
        params.append((key, value.hex()))
        if key == SvcParamKey.ALPN:
            alpn = _alpn_ids(value)
        elif key == SvcParamKey.NO_DEFAULT_ALPN:
            no_default_alpn = True
        elif key == SvcParamKey.PORT:
            port = Buffer(value, "dns_bad_svcparam").pull_uint16()
        elif key == SvcParamKey.IPV4HINT:
            v4 = _addresses(value, 4)
        elif key == SvcParamKey.IPV6HINT:
            v6 = _addresses(value, 16)
        elif key == SvcParamKey.ECH:
            ech = True
    return SVCBData(priority, target, alpn, no_default_alpn, port, v4, v6, ech, tuple(params))


def _opt_data(rclass: int, ttl: int, r: _RDataReader) -> OPTData:
    b = r.buf
    options: list[tuple[int, str]] = []
    errors: list[tuple[int, str]] = []
    while not b.eof():
        code = b.pull_uint16()
        value = b.pull_vector(2)
        options.append((code, value.hex()))
        if code == EDNSOption.EXTENDED_ERROR:
            if len(value) < 2:
                raise ParseError("dns_bad_edns_option", "extended error shorter than 2 bytes")
            errors.append((int.from_bytes(value[:2], "big"), _escape_text(value[2:])))
    return OPTData(
        udp_payload_size=rclass,
        extended_rcode_high=ttl >> 24,
        version=(ttl >> 16) & 0xFF,
        dnssec_ok=bool(ttl & 0x8000),
        options=tuple(options),
        extended_errors=tuple(errors),
    )


_RDATA_DECODERS: dict[int, Callable[[_RDataReader], RData]] = {
    RRType.A: _rdata_a,
    RRType.AAAA: _rdata_aaaa,
    RRType.CNAME: _rdata_name,
    RRType.NS: _rdata_name,
    RRType.PTR: _rdata_name,
    RRType.DNAME: _rdata_name,
    RRType.MX: _rdata_mx,
    RRType.TXT: _rdata_txt,
    RRType.SOA: _rdata_soa,
    RRType.SRV: _rdata_srv,
    RRType.SVCB: _rdata_svcb,
    RRType.HTTPS: _rdata_svcb,
}


# ---------------------------------------------------------------- messages


def _record(msg: bytes, buf: Buffer, weirds: list[str]) -> ResourceRecord:
    """One resource record; RDATA that does not decode is kept raw, its kind in `weirds`."""
    name = _pull_name(msg, buf, weirds)
    rtype, rclass, ttl = buf.pull_uint16(), buf.pull_uint16(), buf.pull_uint32()
    length = buf.pull_uint16()
    start = buf.pos
    raw = buf.pull_bytes(length)
    reader = _RDataReader(msg, start, length, weirds)
    data: RData
    try:
        if rtype == RRType.OPT:
            data = _opt_data(rclass, ttl, reader)
        elif rtype in _RDATA_DECODERS:
            data = _RDATA_DECODERS[rtype](reader)
        else:
            data = RawRData(raw.hex())
    except ParseError as exc:
        weirds.append(exc.kind)
        data = UndecodedRData(exc.kind, raw.hex())
    return ResourceRecord(name, rtype, rclass, ttl, data)


def parse_message(data: bytes) -> DNSMessage:
    """Parse one DNS message. See the module docstring for what raises."""
    msg = bytes(data)
    buf = Buffer(msg, TRUNCATED)
    ident, flags = buf.pull_uint16(), buf.pull_uint16()
    qdcount, ancount, nscount, arcount = (buf.pull_uint16() for _ in range(4))
    weirds: list[str] = []
    questions = tuple(
        Question(_pull_name(msg, buf, weirds), buf.pull_uint16(), buf.pull_uint16()) for _ in range(qdcount)
    )

    sections: list[list[ResourceRecord]] = [[], [], []]
    broken = False
    for section, count in zip(sections, (ancount, nscount, arcount)):
        for _ in range(count):
            if broken:
                break
            try:
                record = _record(msg, buf, weirds)
            except ParseError as exc:
                weirds.append(exc.kind)
                broken = True  # the framing is lost: nothing after can be trusted
                break
            section.append(record)

    edns: OPTData | None = None
    for record in sections[2]:
        if isinstance(record.data, OPTData):
            if edns is not None:
                weirds.append("dns_multiple_opt")
                continue
            edns = record.data
    rcode = flags & 0x000F
    if edns is not None:
        rcode |= edns.extended_rcode_high << 4

    return DNSMessage(
        id=ident,
        qr=bool(flags & 0x8000),
        opcode=(flags >> 11) & 0x0F,
        aa=bool(flags & 0x0400),
        tc=bool(flags & 0x0200),
        rd=bool(flags & 0x0100),
        ra=bool(flags & 0x0080),
        ad=bool(flags & 0x0020),
        cd=bool(flags & 0x0010),
        rcode=rcode,
        questions=questions,
        answers=tuple(sections[0]),
        authority=tuple(sections[1]),
        additional=tuple(sections[2]),
        edns=edns,
        weirds=tuple(weirds),
    )


def split_tcp_messages(stream: bytes) -> list[bytes]:
    """Cut a DNS-over-TCP byte stream into messages (RFC 1035 4.2.2).

    Each message is preceded by a 2-byte length. An incomplete message at the
    end (more data to come, or a capture that stopped) is left out.
    """
    messages: list[bytes] = []
    pos = 0
    while pos + 2 <= len(stream):
        length = int.from_bytes(stream[pos : pos + 2], "big")
        if pos + 2 + length > len(stream):
            break
        messages.append(bytes(stream[pos + 2 : pos + 2 + length]))
        pos += 2 + length
    return messages


# ---------------------------------------------------------------- answers


_ADDRESS_TYPES = (RRType.A, RRType.AAAA)


def cname_chain(query_name: str, answers: Sequence[ResourceRecord]) -> list[str]:
    """The resolution path: [query_name, cname, ..., final name, addresses...].

    CNAME records are followed by owner name (case-insensitively), whatever
    their order in the section; the first CNAME of an owner wins. A chain
    that comes back to a name already on it stops there. The A/AAAA records
    follow, in answer order, without duplicates: those owned by any name on
    the chain, which in a well-formed answer means the last one, and in a
    broken one (an address next to a CNAME for the same owner, as in nDPI's
    malformed_dns capture) still keeps the address a stub resolver reading
    the section in order would have used. Names keep their wire spelling.
    """
    targets: dict[str, str] = {}
    for rr in answers:
        if rr.rtype == RRType.CNAME and isinstance(rr.data, str):
            targets.setdefault(rr.normalized_name, rr.data)
    chain = [query_name]
    current = normalize_name(query_name)
    seen = {current}
    while current in targets:
        target = targets[current]
        key = normalize_name(target)
        if key in seen:
            break
        chain.append(target)
        seen.add(key)
        current = key
    addresses: list[str] = []
    for rr in answers:
        owned = rr.rtype in _ADDRESS_TYPES and rr.normalized_name in seen
        if owned and isinstance(rr.data, str) and rr.data not in addresses:
            addresses.append(rr.data)
    return chain + addresses


@dataclass(frozen=True, slots=True)
class TransactionKey:
    client: Hashable
    server: Hashable
    id: int
    qname: str  # normalised
    qtype: int
    qclass: int


def transaction_key(msg: DNSMessage, client: Hashable, server: Hashable) -> TransactionKey:
    """The key a query and its response share.

    The caller passes the endpoints in client/server orientation for both
    (the response's destination is the client). The first question is part
    of the key so a reused id or a spoofed answer for another name does not
    pair; a message without a question gets an empty name and type 0.
    """
    q = msg.question
    if q is None:
        return TransactionKey(client, server, msg.id, "", 0, 0)
    return TransactionKey(client, server, msg.id, q.normalized_name, q.qtype, q.qclass)
