"""IANA DNS registries used by the DNS parser (the values we name, not all).

Source: IANA "Domain Name System (DNS) Parameters" and "DNS Service Bindings
(SVCB)" registries; RFC 6891 (EDNS), RFC 7873 (cookies), RFC 8914 (extended
errors), RFC 9460 (SVCB/HTTPS). Values not listed stay plain ints; the
`*_name` helpers render them the way Zeek/Wireshark do (`TYPE1234`).
"""

from __future__ import annotations

from enum import IntEnum


class RCode(IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5
    YXDOMAIN = 6
    YXRRSET = 7
    NXRRSET = 8
    NOTAUTH = 9
    NOTZONE = 10
    DSOTYPENI = 11
    BADVERS = 16  # also BADSIG in TSIG context
    BADKEY = 17
    BADTIME = 18
    BADMODE = 19
    BADNAME = 20
    BADALG = 21
    BADTRUNC = 22
    BADCOOKIE = 23


class Opcode(IntEnum):
    QUERY = 0
    IQUERY = 1
    STATUS = 2
    NOTIFY = 4
    UPDATE = 5
    DSO = 6


class RRType(IntEnum):
    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    PTR = 12
    HINFO = 13
    MX = 15
    TXT = 16
    RP = 17
    AAAA = 28
    LOC = 29
    SRV = 33
    NAPTR = 35
    DNAME = 39
    OPT = 41
    DS = 43
    SSHFP = 44
    RRSIG = 46
    NSEC = 47
    DNSKEY = 48
    NSEC3 = 50
    NSEC3PARAM = 51
    TLSA = 52
    CDS = 59
    CDNSKEY = 60
    SVCB = 64
    HTTPS = 65
    SPF = 99
    TKEY = 249
    TSIG = 250
    IXFR = 251
    AXFR = 252
    ANY = 255
    URI = 256
    CAA = 257


class RRClass(IntEnum):
    IN = 1
    CH = 3
    HS = 4
    NONE = 254
    ANY = 255


class SvcParamKey(IntEnum):
    MANDATORY = 0
    ALPN = 1
    NO_DEFAULT_ALPN = 2
    PORT = 3
    IPV4HINT = 4
    ECH = 5
    IPV6HINT = 6
    DOHPATH = 7
    OHTTP = 8


class EDNSOption(IntEnum):
    NSID = 3
    CLIENT_SUBNET = 8
    EXPIRE = 9
    COOKIE = 10
    TCP_KEEPALIVE = 11
    PADDING = 12
    CHAIN = 13
    KEY_TAG = 14
    EXTENDED_ERROR = 15


class ExtendedError(IntEnum):
    """RFC 8914 info codes; 15-18 are how filtering resolvers say 'blocked'."""

    OTHER = 0
    UNSUPPORTED_DNSKEY_ALGORITHM = 1
    UNSUPPORTED_DS_DIGEST_TYPE = 2
    STALE_ANSWER = 3
    FORGED_ANSWER = 4
    DNSSEC_INDETERMINATE = 5
    DNSSEC_BOGUS = 6
    SIGNATURE_EXPIRED = 7
    SIGNATURE_NOT_YET_VALID = 8
    DNSKEY_MISSING = 9
    RRSIGS_MISSING = 10
    NO_ZONE_KEY_BIT_SET = 11
    NSEC_MISSING = 12
    CACHED_ERROR = 13
    NOT_READY = 14
    BLOCKED = 15
    CENSORED = 16
    FILTERED = 17
    PROHIBITED = 18
    STALE_NXDOMAIN_ANSWER = 19
    NOT_AUTHORITATIVE = 20
    NOT_SUPPORTED = 21
    NO_REACHABLE_AUTHORITY = 22
    NETWORK_ERROR = 23
    INVALID_DATA = 24


def rcode_name(value: int) -> str:
    """NOERROR, NXDOMAIN, ... or RCODE<n> for unassigned values."""
    try:
        return RCode(value).name
    except ValueError:
        return f"RCODE{value}"


def rrtype_name(value: int) -> str:
    """A, AAAA, HTTPS, ... or TYPE<n> (RFC 3597 presentation)."""
    try:
        return RRType(value).name
    except ValueError:
        return f"TYPE{value}"


def rrclass_name(value: int) -> str:
    """IN, CH, ... or CLASS<n> (RFC 3597 presentation)."""
    try:
        return RRClass(value).name
    except ValueError:
        return f"CLASS{value}"
