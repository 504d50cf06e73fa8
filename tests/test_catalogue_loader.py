"""The catalogue schema: a good file loads, every kind of bad file gives one clear error naming file and entry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.catalogue import HostKind, Proxy, load_catalogue
from analyzer.errors import CatalogueError

SOURCES = """
[source.seed]
title = "seed"
ref = "seed.txt"
kind = "edition"
"""
SECTIONS = """
[section.device_setup]
nl = "Configuratie van het apparaat"
en = "Device setup"
order = 1
"""
GOOD_ENTRY = """
[[entry]]
id = "device_setup/albert.apple.com"
section = "device_setup"
host = "albert.apple.com"
ports = [443]
transport = "tcp"
protocol = "TCP"
os = ["iOS", "macOS"]
os_text = "iOS en macOS"
description = {nl = "Activering apparaat", en = "Device activation"}
proxy = "yes"
source = "seed"
ref = "seed:24"
editions = ["seed", "current"]
"""
ISSUERS = """
[[apple_issuer]]
name = "Apple Public Server RSA CA 12 - G1"
match = "cn"
kind = "apple_public"

[[inspection_product]]
product = "Zscaler"
match = [{field = "cn", contains = "Zscaler"}]
"""


def make_sigs(tmp_path: Path, entries: str = GOOD_ENTRY, *, sources: str = SOURCES, sections: str = SECTIONS,
              issuers: str = ISSUERS, extra_file: str | None = None) -> Path:
    root = tmp_path / "sigs"
    (root / "catalogue").mkdir(parents=True)
    (root / "sources.toml").write_text(sources)
    (root / "sections.toml").write_text(sections)
    (root / "issuers.toml").write_text(issuers)
    (root / "catalogue" / "seed.toml").write_text(entries)
    if extra_file is not None:
        (root / "catalogue" / "zz.toml").write_text(extra_file)
    return root


def test_good_catalogue_loads_with_typed_fields(tmp_path: Path) -> None:
    cat = load_catalogue(make_sigs(tmp_path), extra_issuer_files=[])
    (e,) = cat.entries
    assert e.id == "device_setup/albert.apple.com"
    assert e.host_kind is HostKind.EXACT and e.domain == "albert.apple.com"
    assert e.ports == (443,) and e.transport == "tcp" and e.proxy is Proxy.YES
    assert e.description_nl == "Activering apparaat" and e.file == "catalogue/seed.toml"
    assert e.documents(443, "tcp") and not e.documents(80, "tcp") and not e.documents(443, "udp")
    assert cat.apple_issuers[0].name == "Apple Public Server RSA CA 12 - G1"
    assert cat.inspection_products[0].match[0].contains == "zscaler"


def _replace(field: str, value: str) -> str:
    lines = [(f"{field} = {value}" if line.startswith(f"{field} =") else line) for line in GOOD_ENTRY.splitlines()]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (GOOD_ENTRY + 'colour = "red"\n', "entry 'device_setup/albert.apple.com': unknown key 'colour'"),
        (GOOD_ENTRY + GOOD_ENTRY, "entry 'device_setup/albert.apple.com': duplicate id"),
        (_replace("host", '"17.248.128.1/18"'), "is not a valid CIDR"),
        (_replace("host", '"17.300.0.0/8"'), "is not a valid CIDR"),
        (_replace("host", '"*albert.apple.com"'), "is not a host name or a *.domain wildcard"),
        (_replace("host", '"*.*.apple.com"'), "is not a host name or a *.domain wildcard"),
        (_replace("host", '"a..apple.com"'), "is not a host name or a *.domain wildcard"),
        (_replace("ports", "[0]"), "ports = [0] is not a list of ports 1-65535"),
        (_replace("ports", "[70000]"), "is not a list of ports 1-65535"),
        (_replace("ports", '["443"]'), "is not a list of ports 1-65535"),
        (_replace("ports", "[]"), "ports is empty"),
        (_replace("transport", '"sctp"'), "transport = 'sctp' is not one of tcp, udp, tcp+udp"),
        (_replace("section", '"nowhere"'), "section 'nowhere' is not defined in sections.toml"),
        (_replace("source", '"rumour"'), "source 'rumour' is not defined in sources.toml"),
        (_replace("editions", '["future"]'), "is not a non-empty list from seed, current"),
        (_replace("os", '["Windows"]'), "os = ['Windows']"),
        (GOOD_ENTRY.replace('ref = "seed:24"\n', ""), "missing key 'ref'"),
        (GOOD_ENTRY.replace("ports = [443]", "ports = [443\n"), "not valid TOML"),
        (GOOD_ENTRY + 'port_roles = {"5223" = "device"}\n', "port_roles names port 5223"),
        ("[entry]\nid = 'x'\n", "'entry' must be an array of tables"),
        ("[[entries]]\nid = 'x'\n", "unknown top-level key 'entries'"),
    ],
)
def test_malformed_entry_gives_one_clear_error(tmp_path: Path, entries: str, message: str) -> None:
    with pytest.raises(CatalogueError) as err:
        load_catalogue(make_sigs(tmp_path, entries), extra_issuer_files=[])
    text = str(err.value)
    assert "catalogue/seed.toml" in text
    assert message in text
    assert "\n" not in text


def test_duplicate_id_across_files_names_both(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"catalogue/zz.toml: entry 'device_setup/albert.apple.com': duplicate id \(first defined in catalogue/seed.toml\)"):
        load_catalogue(make_sigs(tmp_path, extra_file=GOOD_ENTRY), extra_issuer_files=[])


def test_bad_inspection_product_and_user_file(tmp_path: Path) -> None:
    root = make_sigs(tmp_path, issuers=ISSUERS + '\n[[inspection_product]]\nproduct = "X"\nmatch = [{field = "email", contains = "x"}]\n')
    with pytest.raises(CatalogueError, match=r"issuers.toml: inspection_product 'X': match = "):
        load_catalogue(root, extra_issuer_files=[])
    good = make_sigs(tmp_path / "2")
    user = tmp_path / "site.toml"
    user.write_text('[[inspection_product]]\nproduct = "ACME corporate proxy"\nmatch = [{field = "cn", contains = "ACME Inspection CA"}]\n')
    cat = load_catalogue(good, extra_issuer_files=[user])
    assert [p.product for p in cat.inspection_products] == ["Zscaler", "ACME corporate proxy"]
    assert cat.inspection_products[1].file == str(user)
    user.write_text('[[inspection_product]]\nproduct = "ACME"\nmatch = []\nextra = 1\n')
    with pytest.raises(CatalogueError, match=r"site.toml: inspection_product 'ACME': unknown key 'extra'"):
        load_catalogue(good, extra_issuer_files=[user])


def test_user_config_env_var_adds_site_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "site.toml"
    user.write_text('[[inspection_product]]\nproduct = "ACME corporate proxy"\nmatch = [{field = "cn", contains = "ACME"}]\n')
    monkeypatch.setenv("APPLE_NET_CONFIG", str(user))
    cat = load_catalogue(make_sigs(tmp_path))
    assert cat.inspection_products[-1].product == "ACME corporate proxy"


def test_missing_directory_and_bad_section(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="signatures directory not found"):
        load_catalogue(tmp_path / "nope", extra_issuer_files=[])
    bad = SECTIONS + 'colour = "x"\n'
    with pytest.raises(CatalogueError, match=r"sections.toml: section 'device_setup': unknown key 'colour'"):
        load_catalogue(make_sigs(tmp_path, sections=bad), extra_issuer_files=[])


def test_cli_reports_catalogue_error_in_one_line_without_traceback(tmp_path: Path) -> None:
    root = make_sigs(tmp_path, _replace("host", '"17.248.128.1/18"'))
    proc = subprocess.run([sys.executable, "-m", "analyzer", "services", "--signatures", str(root)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("apple-net: error: catalogue/seed.toml: entry 'device_setup/albert.apple.com': host")


def test_edition_filter(tmp_path: Path) -> None:
    removed = GOOD_ENTRY.replace('editions = ["seed", "current"]', 'editions = ["seed"]\nstatus = "removed_in_current"')
    cat = load_catalogue(make_sigs(tmp_path, removed), extra_issuer_files=[])
    assert len(cat.for_edition("seed").entries) == 1
    assert len(cat.for_edition("current").entries) == 0
    with pytest.raises(CatalogueError, match="unknown edition"):
        cat.for_edition("2019")

