"""Exported allow-lists work in the real consumers: a PAC engine and squid's own parser."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.catalogue import HostKind, load_catalogue
from analyzer.catalogue.export import export_cidrs, export_domains, export_pac, export_squid

APPLE_HOSTS = [
    "albert.apple.com", "gs.apple.com", "GS.APPLE.COM", "17-courier.push.apple.com", "api.push.apple.com",
    "p42-caldav.icloud.com", "swcdn.apple.com", "time.apple.com", "ocsp.digicert.com", "is1-ssl.mzstatic.com",
    "gateway.icloud.com", "upload.appleschoolcontent.com", "mesu.apple.com",
]
OTHER_HOSTS = ["www.example.com", "apple.com.evil.example", "notapple.com", "icloud.com.attacker.net", "pushapple.com"]


@pytest.fixture(scope="module")
def pac_text() -> str:
    return export_pac(load_catalogue(edition="current"), fallback="PROXY proxy.corp.example:3128")


def test_pac_in_a_real_pac_engine(pac_text: str) -> None:
    pacparser = pytest.importorskip("pacparser", reason="pacparser (PAC engine) not installed: pip install pacparser")
    pacparser.init()
    try:
        pacparser.parse_pac_string(pac_text)
        for host in APPLE_HOSTS:
            assert pacparser.find_proxy(f"https://{host}/", host) == "DIRECT", host
        for host in OTHER_HOSTS:
            assert pacparser.find_proxy(f"https://{host}/", host) == "PROXY proxy.corp.example:3128", host
        # Notarization ranges are matched for literal addresses only (no DNS lookups from the PAC file).
        assert pacparser.find_proxy("https://17.248.130.5/", "17.248.130.5") == "DIRECT"
        assert pacparser.find_proxy("https://18.0.0.1/", "18.0.0.1") == "PROXY proxy.corp.example:3128"
    finally:
        pacparser.cleanup()


def test_pac_has_every_named_host(pac_text: str) -> None:
    cat = load_catalogue(edition="current")
    for e in cat.entries:
        if e.host_kind is HostKind.EXACT and e.status.value != "guidance":
            assert e.domain is not None
            covered = f'"{e.domain}"' in pac_text or any(
                e.domain.endswith("." + w.domain) for w in cat.entries if w.host_kind is HostKind.WILDCARD and w.domain
                and w.status.value != "guidance"
            )
            assert covered, e.host


@pytest.mark.skipif(shutil.which("squid") is None, reason="squid not installed (apt-get install squid-openssl)")
def test_squid_acl_parses_with_squid(tmp_path: Path) -> None:
    acl = tmp_path / "apple.conf"
    acl.write_text(export_squid(load_catalogue(edition="current")))
    conf = tmp_path / "squid.conf"
    conf.write_text(
        "http_port 127.0.0.1:3999\n"
        "acl step1 at_step SslBump1\n"
        f'include "{acl}"\n'
        "ssl_bump peek step1\n"
        "ssl_bump bump all\n"
        "http_access deny all\n"
        f"pid_filename {tmp_path}/squid.pid\n"
        f"cache_log {tmp_path}/cache.log\n"
        "access_log none\n"
    )
    proc = subprocess.run(["squid", "-k", "parse", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "ERROR" not in out and "FATAL" not in out, out
    assert "ssl_bump splice apple_tls" in acl.read_text()
    # squid warns about overlapping domains: the exporter must leave none.
    assert "is a subdomain of" not in out, out


def test_domain_and_cidr_lists() -> None:
    cat = load_catalogue(edition="current")
    domains = export_domains(cat).splitlines()
    assert "*.push.apple.com" in domains and "albert.apple.com" in domains
    assert "*.apple.com" not in domains  # guidance only with --include-guidance
    assert "*.apple.com" in export_domains(cat, include_guidance=True).splitlines()
    cidrs = export_cidrs(cat).splitlines()
    assert "17.248.128.0/18" in cidrs
    for c in cidrs:
        ipaddress.ip_network(c)
    assert "17.0.0.0/8" in export_cidrs(cat, include_guidance=True).splitlines()


def test_cli_export_writes_file(tmp_path: Path) -> None:
    out = tmp_path / "apple.pac"
    proc = subprocess.run([sys.executable, "-m", "analyzer", "services", "export", "--format", "pac",
                           "--proxy", "PROXY p:1", "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.startswith("// Apple hosts") and 'return "PROXY p:1";' in text
