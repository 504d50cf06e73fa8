"""Typed catalogue records: what signatures/*.toml holds once validated."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class HostKind(StrEnum):
    EXACT = "exact"  # albert.apple.com
    WILDCARD = "wildcard"  # *.push.apple.com
    CIDR = "cidr"  # 17.248.128.0/18


class Proxy(StrEnum):
    YES = "yes"
    NO = "no"
    APNS_NOTE = "apns_note"
    UNKNOWN = "unknown"


class Status(StrEnum):
    LISTED = "listed"
    REMOVED_IN_CURRENT = "removed_in_current"
    SPELLING_VARIANT = "spelling_variant"
    GUIDANCE = "guidance"


def os_list_text(os_names: tuple[str, ...] | list[str]) -> str:
    """('iOS', 'iPadOS', 'macOS') -> 'iOS, iPadOS and macOS'; one OS -> 'macOS only' (the seed's 'Alleen
    macOS'); none -> ''."""
    names = list(os_names)
    if not names:
        return ""
    if len(names) == 1:
        return f"{names[0]} only"
    return ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True, slots=True)
class Section:
    key: str
    nl: str
    en: str
    order: int
    parent: str | None = None
    note_nl: str | None = None
    note_en: str | None = None

    def title(self, lang: str = "en") -> str:
        """The heading in `lang` ('en', or 'nl': the seed's Dutch heading, English where the seed has none)."""
        return (self.nl or self.en) if lang == "nl" else self.en


@dataclass(frozen=True, slots=True)
class Source:
    key: str
    title: str
    ref: str
    kind: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One documented (host or range, ports, transport) fact of one section."""

    id: str
    section: str
    host: str  # exactly as the document writes it
    host_kind: HostKind
    ports: tuple[int, ...]  # () = any port (firewall guidance)
    transport: str  # "tcp" | "udp" | "tcp+udp"
    protocol: str  # the document's column text: TCP, UDP, SSH, TCP+UDP
    os: tuple[str, ...]
    os_text: str
    description_nl: str
    description_en: str
    proxy: Proxy
    source: str
    ref: str
    editions: tuple[str, ...]
    file: str  # which signatures file defined it (for error messages and provenance)
    status: Status = Status.LISTED
    private_ca: bool = False
    port_roles: tuple[tuple[int, str], ...] = ()
    alpn: tuple[str, ...] = ()
    note: str | None = None
    confidence: str | None = None
    # Derived: the normalised name (exact) or the domain under the wildcard; None for CIDRs.
    domain: str | None = field(default=None, compare=False)
    network: IPNetwork | None = field(default=None, compare=False)

    def documents(self, port: int | None, transport: str | None) -> bool:
        """Whether this entry documents traffic on `port` over `transport` ("tcp"/"udp")."""
        if transport is not None and transport not in self.transport.split("+"):
            return False
        if port is None or not self.ports:
            return True
        return port in self.ports

    def port_role(self, port: int) -> str | None:
        for p, role in self.port_roles:
            if p == port:
                return role
        return None

    @property
    def os_en(self) -> str:
        """The OS cell in English, built from `os` ('macOS only', 'iOS, iPadOS and macOS'); `os_text`
        keeps the seed's Dutch cell verbatim ('Alleen macOS', 'iOS, iPadOS en macOS')."""
        return os_list_text(self.os)

    @property
    def in_current(self) -> bool:
        return "current" in self.editions

    @property
    def in_seed(self) -> bool:
        return "seed" in self.editions


@dataclass(frozen=True, slots=True)
class IssuerMatch:
    field: str  # cn | o | ou | dn
    contains: str  # lower-case substring


@dataclass(frozen=True, slots=True)
class AppleIssuer:
    name: str
    match: str  # "cn" exact | "cn_prefix"
    kind: str  # apple_public | apple_private | apple_root | third_party
    hosts: tuple[str, ...]
    source: str
    note: str | None
    file: str


@dataclass(frozen=True, slots=True)
class InspectionProduct:
    product: str
    match: tuple[IssuerMatch, ...]
    source: str
    note: str | None
    file: str


@dataclass(frozen=True, slots=True)
class Sinkhole:
    """An address DNS filters answer with instead of the real one (block page)."""

    network: IPNetwork
    product: str
    source: str
    note: str | None
