"""NTP packets (RFC 5905, SNTP RFC 4330): pure parsing of the 48-byte header.

What the analyzer asks of NTP: did a client's request (mode 3) get a server
reply (mode 4), and was that reply usable (synchronised stratum, no
Kiss-o'-Death)? `parse_ntp` reads one UDP payload; `is_reply_to` pairs a
request with a response the way the client itself checks it.

Errors: `ParseError` with kinds `ntp_truncated` (under 48 bytes),
`ntp_bad_version` (not 1-4) and `ntp_control_message` (modes 6 and 7, ntpq
and ntpdc management traffic, whose layout differs and which says nothing
about time service).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum

from ._buffer import Buffer, ParseError

__all__ = ["NTPMode", "NTPPacket", "is_reply_to", "ntp_to_unix", "parse_ntp"]

HEADER_LENGTH = 48
_NTP_TO_UNIX = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
_ERA = 1 << 32


class NTPMode(IntEnum):
    RESERVED = 0
    SYMMETRIC_ACTIVE = 1
    SYMMETRIC_PASSIVE = 2
    CLIENT = 3
    SERVER = 4
    BROADCAST = 5
    CONTROL = 6
    PRIVATE = 7


@dataclass(frozen=True, slots=True)
class NTPPacket:
    leap: int  # 3 = clock not synchronised (alarm)
    version: int
    mode: int
    stratum: int  # 0 = unspecified or Kiss-o'-Death, 16 = unsynchronised
    poll: int  # log2 seconds
    precision: int  # log2 seconds
    root_delay: float  # seconds
    root_dispersion: float  # seconds
    reference_id: bytes
    reference_ts: int  # timestamps: raw 64-bit NTP format, 0 = unset
    origin_ts: int
    receive_ts: int
    transmit_ts: int
    extra_length: int  # bytes after the header: extension fields, MAC, NTS

    @property
    def mode_name(self) -> str:
        return NTPMode(self.mode).name

    @property
    def kiss_code(self) -> str | None:
        """The Kiss-o'-Death code (DENY, RSTR, RATE, ...) of a stratum-0 reply."""
        if self.stratum != 0 or self.mode not in (NTPMode.SERVER, NTPMode.SYMMETRIC_PASSIVE):
            return None
        return _ascii(self.reference_id)

    @property
    def reference_id_text(self) -> str:
        """ASCII for stratum 0-1 (kiss code, refclock such as GPS), else an IPv4 address.

        (NTPv4 servers synchronised over IPv6 put a hash there, which reads
        as an address too; nothing in the packet tells them apart.)
        """
        if self.stratum <= 1:
            return _ascii(self.reference_id)
        return str(ipaddress.IPv4Address(self.reference_id))

    @property
    def synchronized(self) -> bool:
        return self.leap != 3 and 1 <= self.stratum <= 15


def _ascii(raw: bytes) -> str:
    text = raw.rstrip(b"\x00")
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in text)


def _short_format(value: int) -> float:
    """NTP short format: 16.16 fixed-point seconds."""
    return value / 65536


def _signed8(value: int) -> int:
    return value - 256 if value >= 128 else value


def parse_ntp(data: bytes) -> NTPPacket:
    """Parse the NTP header at the start of a UDP payload."""
    if not data:
        raise ParseError("ntp_truncated", "empty payload")
    mode = data[0] & 0x07
    version = (data[0] >> 3) & 0x07
    if mode in (NTPMode.CONTROL, NTPMode.PRIVATE):
        raise ParseError("ntp_control_message", f"mode {mode}")
    if not 1 <= version <= 4:
        raise ParseError("ntp_bad_version", f"version {version}")
    buf = Buffer(data, "ntp_truncated")
    first = buf.pull_uint8()
    stratum = buf.pull_uint8()
    poll = _signed8(buf.pull_uint8())
    precision = _signed8(buf.pull_uint8())
    root_delay = _short_format(buf.pull_uint32())
    root_dispersion = _short_format(buf.pull_uint32())
    reference_id = buf.pull_bytes(4)
    reference_ts, origin_ts, receive_ts, transmit_ts = (buf.pull_uint64() for _ in range(4))
    return NTPPacket(
        leap=first >> 6,
        version=version,
        mode=mode,
        stratum=stratum,
        poll=poll,
        precision=precision,
        root_delay=root_delay,
        root_dispersion=root_dispersion,
        reference_id=reference_id,
        reference_ts=reference_ts,
        origin_ts=origin_ts,
        receive_ts=receive_ts,
        transmit_ts=transmit_ts,
        extra_length=buf.remaining,
    )


def is_reply_to(request: NTPPacket, response: NTPPacket) -> bool:
    """True when `response` is a server's answer to client `request`.

    The client's own test (RFC 5905 8, "bogus packet"): the reply's origin
    timestamp must echo the request's transmit timestamp. Some clients
    (macOS, chrony in its default privacy mode for some fields) send zeros
    or random bits there; a zero echo still matches a zero request, which
    is then only as strong as the 4-tuple the caller paired them on.
    """
    return (
        request.mode == NTPMode.CLIENT
        and response.mode == NTPMode.SERVER
        and response.origin_ts == request.transmit_ts
    )


def ntp_to_unix(timestamp: int) -> float | None:
    """Seconds since 1970 for a raw 64-bit NTP timestamp; None for 0 (unset).

    Era-aware the SNTP way (RFC 4330 3): a seconds field with its top bit
    clear is taken as after 2036-02-07, in era 1.
    """
    if timestamp == 0:
        return None
    seconds, fraction = timestamp >> 32, timestamp & 0xFFFFFFFF
    if not seconds & 0x80000000:
        seconds += _ERA
    return seconds - _NTP_TO_UNIX + fraction / _ERA
