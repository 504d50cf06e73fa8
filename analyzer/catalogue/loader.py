"""Load and validate the signatures directory into a `Catalogue`.

The schema is checked here, once, at load: unknown keys, wrong types, duplicate
ids, bad CIDRs, ports or host patterns give one `CatalogueError` naming the
file and the entry. Nothing downstream re-checks.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from analyzer.catalogue.model import (
    AppleIssuer,
    Entry,
    HostKind,
    InspectionProduct,
    IssuerMatch,
    Proxy,
    Section,
    Sinkhole,
    Source,
    Status,
)
from analyzer.catalogue.names import is_valid_pattern, normalize_name
from analyzer.errors import CatalogueError

EDITIONS = ("seed", "current")
OS_NAMES = frozenset({"iOS", "iPadOS", "tvOS", "macOS", "watchOS", "visionOS"})
TRANSPORTS = frozenset({"tcp", "udp", "tcp+udp"})
PROTOCOLS = frozenset({"TCP", "UDP", "SSH", "TCP+UDP"})
_ID = re.compile(r"^[a-z0-9._/*:+-]+$")
USER_CONFIG_ENV = "APPLE_NET_CONFIG"

Check = Callable[[Any], bool]


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_port_list(v: Any) -> bool:
    return isinstance(v, list) and all(_is_int(x) and 1 <= x <= 65535 for x in v)


def _is_table(v: Any) -> bool:
    return isinstance(v, dict)


# key -> (required, check, what the value must be)
ENTRY_KEYS: dict[str, tuple[bool, Check, str]] = {
    "id": (True, lambda v: _is_str(v) and bool(_ID.match(v)), "a lower-case id of [a-z0-9._/*:+-]"),
    "section": (True, _is_str, "a section key"),
    "host": (True, _is_str, "a host name, *.wildcard or CIDR"),
    "ports": (True, _is_port_list, "a list of ports 1-65535"),
    "transport": (True, lambda v: v in TRANSPORTS, "one of tcp, udp, tcp+udp"),
    "protocol": (True, lambda v: v in PROTOCOLS, "one of TCP, UDP, SSH, TCP+UDP"),
    "os": (True, lambda v: _is_str_list(v) and set(v) <= OS_NAMES, f"a list from {sorted(OS_NAMES)}"),
    "os_text": (True, _is_str, "a string"),
    "description": (
        True,
        lambda v: _is_table(v) and set(v) == {"nl", "en"} and all(_is_str(x) for x in v.values()),
        "a table {nl = ..., en = ...}",
    ),
    "proxy": (True, lambda v: v in {p.value for p in Proxy}, "one of yes, no, apns_note, unknown"),
    "source": (True, _is_str, "a key of sources.toml"),
    "ref": (True, _is_str, "a reference to the source row"),
    "editions": (
        True,
        lambda v: _is_str_list(v) and bool(v) and set(v) <= set(EDITIONS),
        "a non-empty list from seed, current",
    ),
    "status": (False, lambda v: v in {s.value for s in Status}, "one of " + ", ".join(s.value for s in Status)),
    "private_ca": (False, _is_bool, "true or false"),
    "port_roles": (
        False,
        lambda v: _is_table(v) and all(k.isdigit() and 1 <= int(k) <= 65535 and _is_str(r) for k, r in v.items()),
        'a table {"5223" = "role", ...}',
    ),
    "alpn": (False, _is_str_list, "a list of ALPN ids"),
    "note": (False, _is_str, "a string"),
    "confidence": (False, lambda v: v in {"high", "medium", "low"}, "one of high, medium, low"),
}

SECTION_KEYS: dict[str, tuple[bool, Check, str]] = {
    "nl": (True, _is_str, "the Dutch heading"),
    "en": (True, _is_str, "the English name"),
    "order": (True, _is_int, "an integer"),
    "parent": (False, _is_str, "a section key"),
    "note_nl": (False, _is_str, "a string"),
    "note_en": (False, _is_str, "a string"),
}

SOURCE_KEYS: dict[str, tuple[bool, Check, str]] = {
    "title": (True, _is_str, "a string"),
    "ref": (True, _is_str, "a string"),
    "kind": (True, lambda v: v in {"edition", "related", "research", "user"}, "edition, related, research or user"),
}

APPLE_ISSUER_KEYS: dict[str, tuple[bool, Check, str]] = {
    "name": (True, _is_str, "the issuer CN"),
    "match": (True, lambda v: v in {"cn", "cn_prefix"}, "cn or cn_prefix"),
    "kind": (
        True,
        lambda v: v in {"apple_public", "apple_private", "apple_root", "third_party"},
        "apple_public, apple_private, apple_root or third_party",
    ),
    "hosts": (False, _is_str_list, "a list of host names"),
    "source": (False, _is_str, "a string"),
    "note": (False, _is_str, "a string"),
}

_MATCH_FIELDS = {"cn", "o", "ou", "dn"}

def _is_cidr(v: Any) -> bool:
    try:
        ipaddress.ip_network(v, strict=True)
    except (TypeError, ValueError):
        return False
    return True


SINKHOLE_KEYS: dict[str, tuple[bool, Check, str]] = {
    "address": (True, _is_cidr, "an address or CIDR"),
    "product": (True, _is_str, "the product answering with it"),
    "source": (True, _is_str, "where the fact comes from"),
    "note": (False, _is_str, "a string"),
}

PRODUCT_KEYS: dict[str, tuple[bool, Check, str]] = {
    "product": (True, _is_str, "the product name"),
    "match": (
        True,
        lambda v: isinstance(v, list)
        and all(
            _is_table(m) and set(m) == {"field", "contains"} and m["field"] in _MATCH_FIELDS and _is_str(m["contains"])
            and m["contains"].strip()
            for m in v
        ),
        'a list of {field = "cn"|"o"|"ou"|"dn", contains = "text"}',
    ),
    "source": (False, _is_str, "a string"),
    "note": (False, _is_str, "a string"),
}


def _check_keys(table: Any, schema: dict[str, tuple[bool, Check, str]], where: str) -> None:
    if not isinstance(table, dict):
        raise CatalogueError(f"{where}: must be a table")
    unknown = sorted(set(table) - set(schema))
    if unknown:
        raise CatalogueError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(schema)})")
    for key, (required, check, what) in schema.items():
        if key not in table:
            if required:
                raise CatalogueError(f"{where}: missing key {key!r}")
            continue
        if not check(table[key]):
            raise CatalogueError(f"{where}: {key} = {table[key]!r} is not {what}")


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{label}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise CatalogueError(f"{label}: cannot read: {exc.strerror}") from None


def _classify_host(host: str, where: str) -> tuple[HostKind, str | None, Any]:
    if "/" in host:
        try:
            net = ipaddress.ip_network(host, strict=True)
        except ValueError as exc:
            raise CatalogueError(f"{where}: host {host!r} is not a valid CIDR ({exc})") from None
        return HostKind.CIDR, None, net
    if not is_valid_pattern(host):
        raise CatalogueError(f"{where}: host {host!r} is not a host name or a *.domain wildcard")
    if host.startswith("*."):
        return HostKind.WILDCARD, normalize_name(host[2:]), None
    return HostKind.EXACT, normalize_name(host), None


def _entry(raw: dict[str, Any], label: str, index: int, sections: dict[str, Section], sources: dict[str, Source]) -> Entry:
    ident = raw.get("id") if isinstance(raw, dict) else None
    where = f"{label}: entry {ident!r}" if isinstance(ident, str) else f"{label}: entry #{index + 1}"
    _check_keys(raw, ENTRY_KEYS, where)
    if raw["section"] not in sections:
        raise CatalogueError(f"{where}: section {raw['section']!r} is not defined in sections.toml")
    if raw["source"] not in sources:
        raise CatalogueError(f"{where}: source {raw['source']!r} is not defined in sources.toml")
    kind, domain, network = _classify_host(raw["host"], where)
    status = Status(raw.get("status", Status.LISTED.value))
    if not raw["ports"] and status is not Status.GUIDANCE:
        raise CatalogueError(f"{where}: ports is empty; only status = \"guidance\" entries may mean any port")
    roles = raw.get("port_roles", {})
    for p in roles:
        if int(p) not in raw["ports"]:
            raise CatalogueError(f"{where}: port_roles names port {p}, which is not in ports")
    return Entry(
        id=raw["id"],
        section=raw["section"],
        host=raw["host"],
        host_kind=kind,
        ports=tuple(raw["ports"]),
        transport=raw["transport"],
        protocol=raw["protocol"],
        os=tuple(raw["os"]),
        os_text=raw["os_text"],
        description_nl=raw["description"]["nl"],
        description_en=raw["description"]["en"],
        proxy=Proxy(raw["proxy"]),
        source=raw["source"],
        ref=raw["ref"],
        editions=tuple(raw["editions"]),
        file=label,
        status=status,
        private_ca=raw.get("private_ca", False),
        port_roles=tuple(sorted((int(p), r) for p, r in roles.items())),
        alpn=tuple(raw.get("alpn", ())),
        note=raw.get("note"),
        confidence=raw.get("confidence"),
        domain=domain,
        network=network,
    )


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Everything under signatures/, validated. `entries` holds all editions; filter with `for_edition`."""

    sections: dict[str, Section]
    sources: dict[str, Source]
    entries: tuple[Entry, ...]
    apple_issuers: tuple[AppleIssuer, ...]
    inspection_products: tuple[InspectionProduct, ...]
    edition: str | None = None
    sinkholes: tuple[Sinkhole, ...] = ()

    def for_edition(self, edition: str | None) -> "Catalogue":
        if edition is None:
            return self
        if edition not in EDITIONS:
            raise CatalogueError(f"unknown edition {edition!r} (choose from {', '.join(EDITIONS)})")
        kept = tuple(e for e in self.entries if edition in e.editions)
        return Catalogue(self.sections, self.sources, kept, self.apple_issuers, self.inspection_products, edition,
                         self.sinkholes)

    def entry(self, entry_id: str) -> Entry:
        for e in self.entries:
            if e.id == entry_id:
                return e
        raise KeyError(entry_id)

    def section_of(self, entry: Entry) -> Section:
        return self.sections[entry.section]


def default_signatures_dir() -> Path:
    """The signatures shipped with the package (works for editable and normal installs)."""
    return Path(str(resources.files("analyzer.signatures")))


def _issuer_files(directory: Path, extra: Iterable[Path]) -> list[tuple[Path, str]]:
    files = [(directory / "issuers.toml", "issuers.toml")]
    for p in extra:
        files.append((p, str(p)))
    return files


def user_config_files() -> list[Path]:
    """The user's own inspection-CA files: $APPLE_NET_CONFIG, else ~/.config/apple-net/issuers.toml if present."""
    env = os.environ.get(USER_CONFIG_ENV)
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    home = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "apple-net" / "issuers.toml"
    try:
        return [home] if home.is_file() else []
    except OSError:  # a HOME this user may not read (sudo -u nobody keeping HOME=/root): no user file
        return []


def load_catalogue(
    directory: str | Path | None = None,
    *,
    edition: str | None = None,
    extra_issuer_files: Iterable[str | Path] | None = None,
) -> Catalogue:
    """Load signatures from `directory` (default: the packaged ones) plus the user's issuer files."""
    root = Path(directory) if directory is not None else default_signatures_dir()
    if not root.is_dir():
        raise CatalogueError(f"{root}: signatures directory not found")
    missing = [name for name in ("sources.toml", "sections.toml", "issuers.toml") if not (root / name).is_file()]
    if not any((root / "catalogue").glob("*.toml")):
        missing.append("catalogue/*.toml")
    if missing:
        raise CatalogueError(f"{root}: not a signatures folder: no {', '.join(missing)} in it (a signatures folder "
                             "holds sources.toml, sections.toml, issuers.toml and catalogue/*.toml, as "
                             f"{default_signatures_dir()} does)")
    extra = [Path(p) for p in extra_issuer_files] if extra_issuer_files is not None else user_config_files()

    sources: dict[str, Source] = {}
    for key, raw in _read_toml(root / "sources.toml", "sources.toml").get("source", {}).items():
        _check_keys(raw, SOURCE_KEYS, f"sources.toml: source {key!r}")
        sources[key] = Source(key, raw["title"], raw["ref"], raw["kind"])

    sections: dict[str, Section] = {}
    for key, raw in _read_toml(root / "sections.toml", "sections.toml").get("section", {}).items():
        _check_keys(raw, SECTION_KEYS, f"sections.toml: section {key!r}")
        sections[key] = Section(key, raw["nl"], raw["en"], raw["order"], raw.get("parent"), raw.get("note_nl"), raw.get("note_en"))
    for s in sections.values():
        if s.parent is not None and s.parent not in sections:
            raise CatalogueError(f"sections.toml: section {s.key!r}: parent {s.parent!r} is not defined")

    entries: list[Entry] = []
    seen: dict[str, str] = {}
    cat_dir = root / "catalogue"
    if not cat_dir.is_dir():
        raise CatalogueError(f"{cat_dir}: catalogue directory not found")
    for path in sorted(cat_dir.glob("*.toml")):
        label = f"catalogue/{path.name}"
        doc = _read_toml(path, label)
        unknown = sorted(set(doc) - {"entry"})
        if unknown:
            raise CatalogueError(f"{label}: unknown top-level key {unknown[0]!r} (only [[entry]] tables are allowed)")
        raw_entries = doc.get("entry", [])
        if not isinstance(raw_entries, list):
            raise CatalogueError(f"{label}: 'entry' must be an array of tables ([[entry]])")
        for i, raw in enumerate(raw_entries):
            e = _entry(raw, label, i, sections, sources)
            if e.id in seen:
                raise CatalogueError(f"{label}: entry {e.id!r}: duplicate id (first defined in {seen[e.id]})")
            seen[e.id] = label
            entries.append(e)

    apple_issuers: list[AppleIssuer] = []
    products: list[InspectionProduct] = []
    for path, label in _issuer_files(root, extra):
        doc = _read_toml(path, label)
        unknown = sorted(set(doc) - {"apple_issuer", "inspection_product"})
        if unknown:
            raise CatalogueError(f"{label}: unknown top-level key {unknown[0]!r}")
        for i, raw in enumerate(doc.get("apple_issuer", [])):
            name = raw.get("name") if isinstance(raw, dict) else None
            _check_keys(raw, APPLE_ISSUER_KEYS, f"{label}: apple_issuer {name or '#' + str(i + 1)!r}")
            apple_issuers.append(
                AppleIssuer(raw["name"], raw["match"], raw["kind"], tuple(raw.get("hosts", ())), raw.get("source", ""), raw.get("note"), label)
            )
        for i, raw in enumerate(doc.get("inspection_product", [])):
            name = raw.get("product") if isinstance(raw, dict) else None
            _check_keys(raw, PRODUCT_KEYS, f"{label}: inspection_product {name or '#' + str(i + 1)!r}")
            matches = tuple(IssuerMatch(m["field"], m["contains"].lower()) for m in raw["match"])
            products.append(InspectionProduct(raw["product"], matches, raw.get("source", ""), raw.get("note"), label))

    sinkholes: list[Sinkhole] = []
    dns_file = root / "dns.toml"
    if dns_file.is_file():
        doc = _read_toml(dns_file, "dns.toml")
        unknown = sorted(set(doc) - {"sinkhole"})
        if unknown:
            raise CatalogueError(f"dns.toml: unknown top-level key {unknown[0]!r}")
        for i, raw in enumerate(doc.get("sinkhole", [])):
            _check_keys(raw, SINKHOLE_KEYS, f"dns.toml: sinkhole #{i + 1}")
            sinkholes.append(Sinkhole(ipaddress.ip_network(raw["address"]), raw["product"], raw["source"], raw.get("note")))

    cat = Catalogue(sections, sources, tuple(entries), tuple(apple_issuers), tuple(products), None, tuple(sinkholes))
    return cat.for_edition(edition)
