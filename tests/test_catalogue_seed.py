"""The service catalogue (signatures/) against its source, the Dutch seed text.

Three independent views must agree: the seed text itself (read here with a small, tolerant table
reader), the hand-typed table in tests/expected_seed_rows.py, and signatures/catalogue/seed.toml.
The TOML files are read with tomllib directly, so these tests do not depend on the loader.
"""

from __future__ import annotations

import collections
import ipaddress
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from expected_seed_rows import EXPECTED_SEED_ROWS, REMOVED_IN_CURRENT, SEED_HEADINGS

REPO = Path(__file__).resolve().parents[1]
SIGNATURES = REPO / "signatures"
CATALOGUE_FILES = ("seed", "current", "related")
SEED_FILE = Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_59330621222caff7.txt"

ENTRY_REQUIRED = {"id", "section", "host", "ports", "transport", "protocol", "os", "os_text",
                  "description", "proxy", "source", "ref", "editions"}
ENTRY_OPTIONAL = {"status", "private_ca", "port_roles", "alpn", "note", "confidence"}
OS_NAMES = {"iOS", "iPadOS", "tvOS", "macOS", "watchOS", "visionOS"}
PROTOCOL_TRANSPORT = {"TCP": {"tcp"}, "UDP": {"udp"}, "SSH": {"tcp"}, "TCP+UDP": {"tcp+udp"}}
ID_RE = re.compile(r"^[a-z0-9._/*-]+$")
NAME_RE = re.compile(r"^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]*[a-z][a-z0-9-]*$")


# ------------------------------------------------------------------------------ loading

def _load(name: str) -> dict[str, Any]:
    with (SIGNATURES / name).open("rb") as f:
        return tomllib.load(f)


def _entries(kind: str) -> list[dict[str, Any]]:
    data = _load(f"catalogue/{kind}.toml")
    assert set(data) == {"entry"}, f"{kind}.toml: only [[entry]] tables are allowed"
    entries: list[dict[str, Any]] = data["entry"]
    return entries


@pytest.fixture(scope="module")
def catalogue() -> dict[str, list[dict[str, Any]]]:
    return {kind: _entries(kind) for kind in CATALOGUE_FILES}


@pytest.fixture(scope="module")
def sections() -> dict[str, dict[str, Any]]:
    data = _load("sections.toml")
    assert set(data) == {"section"}
    result: dict[str, dict[str, Any]] = data["section"]
    return result


@pytest.fixture(scope="module")
def seed_text() -> str:
    if not SEED_FILE.exists():
        pytest.skip(f"seed text not available at {SEED_FILE}")
    return SEED_FILE.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------ seed reader

HEADER_RE = re.compile(r"^Hosts Poort(?:en)? Protocol")
HOST_TOKEN_RE = re.compile(r"^(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$|^[0-9A-Fa-f:.]+/\d{1,3}$")
ROW_RE = re.compile(r"^(?P<host>\S+) (?P<ports>\d+(?:, \d+)*) (?P<protocol>TCP\+UDP|TCP|UDP|SSH)(?: (?P<rest>.*))?$")
_OS = r"(?:iOS|iPadOS|tvOS|watchOS|macOS|visionOS)"
OS_CELL_RE = re.compile(rf"^(?P<os>Alleen {_OS}|{_OS}(?:,[ \u00a0]{_OS})*(?: en {_OS})?)(?=\s|$)")
APNS_PROXY_CELL = "Meer informatie over APNs en proxy's."
# A run of blanks that holds at least one ordinary space separates cells; a lone no-break space
# inside a phrase ("Apple\u00a0ID") is part of the text and is kept.
SEPARATOR_RE = re.compile(r"[ \t\u00a0]*[ \t][ \t\u00a0]*")


def _blank(line: str) -> bool:
    return not line.strip()


def _starts_row(line: str) -> bool:
    parts = line.split(maxsplit=1)
    return bool(parts) and HOST_TOKEN_RE.match(parts[0]) is not None


def is_heading(lines: list[str], i: int) -> bool:
    """A short stand-alone line between blank lines that is not a sentence, cell or row."""
    text = lines[i].strip()
    before_blank = i == 0 or _blank(lines[i - 1])
    after_blank = i + 1 >= len(lines) or _blank(lines[i + 1])
    return (bool(text) and before_blank and after_blank and len(text) <= 60
            and not text.endswith((".", ":")) and not text[0].isdigit() and text != "Ja"
            and not _starts_row(text) and not HEADER_RE.match(text))


def _is_intro(lines: list[str], i: int) -> bool:
    """A paragraph (a table's intro sentence) after a blank line: it ends the previous row."""
    text = lines[i].strip()
    return i > 0 and _blank(lines[i - 1]) and len(text) > 40 and text.endswith((".", ":"))


def _collapse(text: str) -> str:
    return SEPARATOR_RE.sub(" ", text).strip(" \t\u00a0")


@dataclass(frozen=True, slots=True)
class TextRow:
    line: int            # 1-based line of the host
    heading: str         # nearest heading above the row
    host: str
    ports: tuple[int, ...]
    protocol: str
    os_text: str
    description: str
    proxy: str


def read_seed_rows(text: str) -> Iterator[TextRow]:
    """Rows start with a host, wildcard or CIDR; the other cells may follow on later lines."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _starts_row(line)]
    heading = ""
    stops = {i for i in range(len(lines))
             if is_heading(lines, i) or HEADER_RE.match(lines[i]) or _is_intro(lines, i)}
    for i, line in enumerate(lines):
        if is_heading(lines, i):
            heading = line.strip()
        if i not in starts:
            continue
        end = i + 1
        while end < len(lines) and end not in stops and not _starts_row(lines[end]):
            end += 1
        joined = _collapse(" ".join(part for part in lines[i:end] if not _blank(part)))
        m = ROW_RE.match(joined)
        if m is None:
            continue  # a line that merely begins with a name; not a table row
        rest = m["rest"] or ""
        os_match = OS_CELL_RE.match(rest)
        os_text = os_match["os"] if os_match else ""
        rest = rest[len(os_text):].strip()
        if rest.endswith(APNS_PROXY_CELL):
            proxy, rest = "apns_note", rest[: -len(APNS_PROXY_CELL)].strip()
        elif rest == "Ja" or rest.endswith(" Ja"):
            proxy, rest = "yes", rest[:-2].strip()
        else:
            proxy = "no"
        yield TextRow(i + 1, heading, m["host"], tuple(int(p) for p in m["ports"].split(", ")),
                      m["protocol"], os_text, rest, proxy)


def seed_headings(text: str) -> list[str]:
    lines = text.splitlines()
    return [lines[i].strip() for i in range(len(lines)) if is_heading(lines, i)]


def _plain(text: str) -> str:
    return text.replace("\u00a0", " ")


# ------------------------------------------------------------------------------ (1) text vs catalogue

def test_reader_reads_broken_rows(seed_text: str) -> None:
    rows = {(r.line, r.host): r for r in read_seed_rows(seed_text)}
    gdmf = rows[(42, "gdmf.apple.com")]
    assert (gdmf.ports, gdmf.protocol, gdmf.proxy) == ((443,), "TCP", "yes")
    fba = rows[(172, "fba.apple.com")]
    assert (fba.ports, fba.os_text, fba.proxy) == ((443,), "iOS,\u00a0iPadOS, tvOS en macOS", "yes")
    assert fba.description == "Wordt in Feedbackassistent gebruikt om feedback door te geven en te bekijken"
    suconfig = rows[(132, "suconfig.apple.com")]
    assert (suconfig.description, suconfig.proxy) == ("Configuratie", "no")
    xp_cdn = rows[(135, "xp-cdn.apple.com")]
    assert (xp_cdn.description, xp_cdn.proxy) == ("Rapportage", "yes")
    push = rows[(39, "*.push.apple.com")]
    assert (push.ports, push.description, push.proxy) == ((443, 80, 5223, 2197), "Pushberichten", "apns_note")
    sftp = rows[(58, "upload.appleschoolcontent.com")]
    assert (sftp.ports, sftp.protocol, sftp.os_text, sftp.description) == ((22,), "SSH", "", "SFTP-uploads")
    assert rows[(248, "mask.icloud.com")].protocol == "UDP"
    assert len(rows) == len(EXPECTED_SEED_ROWS)


def _seed_key(e: dict[str, Any]) -> tuple[Any, ...]:
    return (int(e["ref"].removeprefix("seed:")), e["host"], tuple(e["ports"]), e["transport"], e["protocol"],
            e["os_text"], e["description"]["nl"], e["proxy"])


def test_every_seed_text_row_is_in_the_catalogue_and_nothing_else(
        seed_text: str, catalogue: dict[str, list[dict[str, Any]]]) -> None:
    transport = {"TCP": "tcp", "UDP": "udp", "SSH": "tcp"}
    from_text = collections.Counter(
        (r.line, r.host, r.ports, transport[r.protocol], r.protocol, r.os_text, r.description, r.proxy)
        for r in read_seed_rows(seed_text))
    from_catalogue = collections.Counter(_seed_key(e) for e in catalogue["seed"])
    assert from_text - from_catalogue == collections.Counter(), "rows in the seed text missing from seed.toml"
    assert from_catalogue - from_text == collections.Counter(), "seed.toml rows the seed text lacks"


def test_seed_rows_sit_under_their_heading(
        seed_text: str, catalogue: dict[str, list[dict[str, Any]]], sections: dict[str, dict[str, Any]]) -> None:
    heading_of = {(r.line, r.host): r.heading for r in read_seed_rows(seed_text)}
    for e in catalogue["seed"]:
        heading = heading_of[(int(e["ref"].removeprefix("seed:")), e["host"])]
        names = {sections[e["section"]]["nl"]}
        names |= {s["nl"] for s in sections.values() if s.get("parent") == e["section"]}
        assert heading in names, (e["id"], heading)


# ------------------------------------------------------------------------------ (2) hand table vs catalogue

def test_seed_toml_equals_the_hand_typed_table(catalogue: dict[str, list[dict[str, Any]]]) -> None:
    got = sorted((int(e["ref"].removeprefix("seed:")), e["section"], e["host"], tuple(e["ports"]),
                  e["protocol"], e["proxy"]) for e in catalogue["seed"])
    assert got == sorted(EXPECTED_SEED_ROWS)
    assert len(catalogue["seed"]) == 106
    assert all(e["source"] == "seed" and e["ref"].startswith("seed:") for e in catalogue["seed"])


def test_seed_row_ids_are_section_slash_host(catalogue: dict[str, list[dict[str, Any]]]) -> None:
    for e in catalogue["seed"]:
        assert e["id"] == f"{e['section']}/{e['host']}"


def test_rows_in_several_sections_stay_one_entry_per_section(catalogue: dict[str, list[dict[str, Any]]]) -> None:
    ports = {(e["section"], e["host"]): e["ports"] for e in catalogue["seed"]}
    assert ports[("device_setup", "gs.apple.com")] == [443]
    assert ports[("software_updates", "gs.apple.com")] == [443, 80]
    assert ports[("software_updates", "appldnld.apple.com")] == [80]
    assert ports[("carrier_updates", "appldnld.apple.com")] == [80]
    assert ports[("app_store", "itunes.apple.com")] == [443, 80]
    assert ports[("carrier_updates", "itunes.apple.com")] == [443]


def test_special_rows(catalogue: dict[str, list[dict[str, Any]]]) -> None:
    by_id = {e["id"]: e for e in catalogue["seed"]}
    sftp = by_id["asm_abm/upload.appleschoolcontent.com"]
    assert (sftp["protocol"], sftp["transport"], sftp["ports"]) == ("SSH", "tcp", [22])
    relay = by_id["icloud/mask.icloud.com"]
    assert (relay["protocol"], relay["transport"], relay["ports"]) == ("UDP", "udp", [443])
    assert by_id["device_management/*.push.apple.com"]["proxy"] == "apns_note"
    for host_id in ("device_setup/time.apple.com", "device_setup/time-ios.apple.com",
                    "device_setup/time-macos.apple.com"):
        assert (by_id[host_id]["transport"], by_id[host_id]["ports"]) == ("udp", [123])
    assert by_id["content_caching_server/suconfig.apple.com"]["description"]["nl"] == "Configuratie"
    assert by_id["device_setup/gs.apple.com"]["description"] == {"nl": "", "en": ""}


def test_os_list_follows_os_text(catalogue: dict[str, list[dict[str, Any]]]) -> None:
    for e in catalogue["seed"]:
        found = re.findall(r"iPadOS|tvOS|watchOS|macOS|visionOS|\biOS\b", e["os_text"])
        assert e["os"] == found, e["id"]


# ------------------------------------------------------------------------------ (3) headings

def test_every_seed_heading_is_a_section(sections: dict[str, dict[str, Any]]) -> None:
    names = {_plain(s["nl"]) for s in sections.values()}
    missing = [h for h in SEED_HEADINGS if h not in names]
    assert not missing


def test_headings_in_the_text_are_the_hand_typed_ones(seed_text: str, sections: dict[str, dict[str, Any]]) -> None:
    found = seed_headings(seed_text)
    assert [_plain(h) for h in found] == list(SEED_HEADINGS)
    exact = {s["nl"] for s in sections.values()}
    assert [h for h in found if h not in exact] == [], "sections.toml must carry headings verbatim"


def test_section_notes_are_verbatim(seed_text: str, sections: dict[str, dict[str, Any]]) -> None:
    lines = {line.strip().removeprefix("• ") for line in seed_text.splitlines()}
    for key, s in sections.items():
        for part in s.get("note_nl", "").splitlines():
            assert part in lines, (key, part)


def test_sections_are_well_formed(sections: dict[str, dict[str, Any]]) -> None:
    orders = [s["order"] for s in sections.values()]
    assert len(orders) == len(set(orders))
    for key, s in sections.items():
        assert set(s) <= {"nl", "en", "order", "parent", "note_nl", "note_en"}, key
        assert s["en"], key
        assert s.get("parent", key) in sections


# ------------------------------------------------------------------------------ all entries

def _all(catalogue: dict[str, list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    for kind in CATALOGUE_FILES:
        yield from catalogue[kind]


def test_ids_unique_and_well_formed(catalogue: dict[str, list[dict[str, Any]]]) -> None:
    ids = [e["id"] for e in _all(catalogue)]
    assert [i for i, n in collections.Counter(ids).items() if n > 1] == []
    assert [i for i in ids if not ID_RE.match(i)] == []


def test_entries_are_well_formed(catalogue: dict[str, list[dict[str, Any]]],
                                 sections: dict[str, dict[str, Any]]) -> None:
    sources = _load("sources.toml")["source"]
    for e in _all(catalogue):
        where = e["id"]
        assert ENTRY_REQUIRED <= set(e) <= ENTRY_REQUIRED | ENTRY_OPTIONAL, where
        assert e["section"] in sections, where
        assert e["source"] in sources, where
        assert e["transport"] in PROTOCOL_TRANSPORT[e["protocol"]], where
        assert set(e["os"]) <= OS_NAMES, where
        assert set(e["description"]) == {"nl", "en"}, where
        assert e["proxy"] in {"yes", "no", "apns_note", "unknown"}, where
        assert e["editions"] and set(e["editions"]) <= {"seed", "current"}, where
        assert e.get("status", "listed") in {"listed", "removed_in_current", "spelling_variant", "guidance"}, where
        assert e.get("confidence", "high") in {"high", "medium", "low"}, where
        if e.get("confidence") in {"medium", "low"}:
            assert e.get("note"), f"{where}: an inferred fact needs a note"
        assert all(isinstance(p, int) and 1 <= p <= 65535 for p in e["ports"]), where
        assert len(set(e["ports"])) == len(e["ports"]), where
        assert bool(e["ports"]) != (e.get("status") == "guidance"), f"{where}: [] ports only for guidance"
        assert 433 not in e["ports"], f"{where}: 433 is a typo for 443 in one scrape"
        for port, role in e.get("port_roles", {}).items():
            assert int(port) in e["ports"] and role, where
        assert all(isinstance(a, str) and a for a in e.get("alpn", [])), where


def test_hosts_are_names_wildcards_or_cidrs(catalogue: dict[str, list[dict[str, Any]]]) -> None:
    for e in _all(catalogue):
        host = e["host"]
        if "/" in host:
            ipaddress.ip_network(host, strict=True)  # raises on a bad or host-bits-set CIDR
        else:
            assert NAME_RE.match(host), host
            assert "*" not in host[1:], host


def test_current_edition(catalogue: dict[str, list[dict[str, Any]]]) -> None:
    seed = {(e["section"], e["host"]): e for e in catalogue["seed"]}
    removed = {k for k, e in seed.items() if e.get("status") == "removed_in_current"}
    assert removed == REMOVED_IN_CURRENT
    for key in removed:
        assert seed[key]["editions"] == ["seed"]
    assert seed[("software_updates", "swcdn.apple.com")]["editions"] == ["seed"]
    still = [k for k, e in seed.items() if k not in removed and k[1] != "swcdn.apple.com"]
    assert all(seed[k]["editions"] == ["seed", "current"] for k in still)

    current = {e["id"]: e for e in catalogue["current"]}
    assert all(e["editions"] == ["current"] and e.get("status") != "removed_in_current"
               for e in current.values())
    assert current["software_updates/swcdn.apple.com/current"]["ports"] == [80, 443]
    assert current["apple_id/account.apple.com"]["ports"] == [443]
    variants = {e["host"] for e in current.values() if e.get("status") == "spelling_variant"}
    assert variants == {"playground-assets-cdn.apple.com", "playground-cdn.apple.com"}
    # A current row for a seed host in the same section would duplicate it: only changed rows may.
    same = [i for i, e in current.items() if (e["section"], e["host"]) in seed]
    assert sorted(same) == ["icloud/*.icloud-content.com/udp", "software_updates/swcdn.apple.com/current"]


def test_private_ca_hosts(catalogue: dict[str, list[dict[str, Any]]]) -> None:
    private = {e["host"] for e in _all(catalogue) if e.get("private_ca")}
    assert private == {"gs.apple.com", "gsa.apple.com", "gdmf.apple.com", "*.ess.apple.com"}
    for e in catalogue["seed"]:
        if e["host"] in {"gs.apple.com", "gsa.apple.com", "gdmf.apple.com"}:
            assert e.get("private_ca") is True, e["id"]


def test_related_apns_facts(catalogue: dict[str, list[dict[str, Any]]]) -> None:
    related = {e["id"]: e for e in catalogue["related"]}
    ranges = {e["host"] for e in related.values() if e["section"] == "apns" and "/" in e["host"]}
    assert ranges == {"17.249.0.0/16", "17.252.0.0/16", "17.57.144.0/22", "17.188.128.0/18", "17.188.20.0/23",
                      "2620:149:a44::/48", "2403:300:a42::/48", "2403:300:a51::/48", "2a01:b740:a42::/48"}
    for e in related.values():
        if e["host"] in ranges:
            assert e["ports"] == [5223, 443, 2197]
            assert e["port_roles"] == {"5223": "device", "443": "fallback", "2197": "provider"}
    courier = related["apns/courier"]
    assert (courier["host"], courier["ports"]) == ("*.push.apple.com", [5223, 443])
    assert courier["alpn"] == ["apns-security-v3", "apns-security-v2"]
    for host in ("api.push.apple.com", "api.sandbox.push.apple.com"):
        assert related[f"apns/{host}"]["ports"] == [443, 2197]
    guidance = {e["host"]: e for e in related.values() if e.get("status") == "guidance"}
    assert guidance["*.apple.com"]["ports"] == [] and guidance["17.0.0.0/8"]["ports"] == []
    assert guidance["*.apple.com"]["ref"] == "seed:271" == guidance["17.0.0.0/8"]["ref"]


# ------------------------------------------------------------------------------ issuers

PUBLIC_CA_NAMES = (
    "DigiCert Global Root G2", "DigiCert Global G2 TLS RSA SHA256 2020 CA1", "DigiCert SHA2 Secure Server CA",
    "Entrust Certification Authority - L1K", "GeoTrust Global CA", "GeoTrust RSA CA 2018",
    "Symantec Class 3 Secure Server CA - G4", "VeriSign Class 3 Public Primary Certification Authority - G5",
    "USERTrust RSA Certification Authority", "Sectigo RSA Domain Validation Secure Server CA",
    "Let's Encrypt", "R3", "E1", "ISRG Root X1", "GTS CA 1C3", "GTS Root R1", "Google Trust Services",
    "Amazon RSA 2048 M01", "Amazon", "Microsoft Azure TLS Issuing CA 01", "Microsoft Corporation",
    "GlobalSign RSA OV SSL CA 2018", "GlobalSign nv-sa", "Cloudflare Inc ECC CA-3", "Cloudflare, Inc.",
    "Akamai Technologies, Inc.", "QuoVadis Global SSL ICA G3", "COMODO RSA Domain Validation Secure Server CA",
    "DigiCert Inc", "Entrust, Inc.", "Apple Inc.", "Certification Authority", "Cisco Systems", "IdenTrust",
)


def test_issuers_file(catalogue: dict[str, list[dict[str, Any]]]) -> None:
    data = _load("issuers.toml")
    assert set(data) == {"apple_issuer", "inspection_product"}
    sources = _load("sources.toml")["source"]
    apple_names = []
    for issuer in data["apple_issuer"]:
        assert set(issuer) <= {"name", "match", "kind", "hosts", "source", "note"}
        assert issuer["match"] in {"cn", "cn_prefix"}
        assert issuer["kind"] in {"apple_public", "apple_private", "apple_root", "third_party"}
        assert issuer["source"] in sources
        apple_names.append(issuer["name"])
    assert {"Apple Server Authentication CA", "Apple Root CA", "Apple Public Server RSA CA 12 - G1",
            "USERTrust RSA Certification Authority"} <= set(apple_names)
    products = []
    for product in data["inspection_product"]:
        assert set(product) <= {"product", "match", "source", "note"}
        assert product["source"] in sources and product["note"]
        products.append(product["product"])
        for rule in product["match"]:
            assert set(rule) == {"field", "contains"} and rule["field"] in {"cn", "o", "ou", "dn"}
            needle = rule["contains"].lower()
            assert needle == needle.strip() and len(needle) >= 6, (product["product"], needle)
            hits = [n for n in (*apple_names, *PUBLIC_CA_NAMES) if needle in n.lower()]
            assert hits == [], (product["product"], needle, hits)
    assert len(products) == len(set(products))
    for wanted in ("Zscaler", "Fortinet", "Netskope", "mitmproxy", "Charles", "Fiddler", "Proxyman", "Squid"):
        assert wanted in products
