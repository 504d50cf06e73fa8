"""Nothing reaches the PAC file's JavaScript but PAC return values and escaped strings (issue 17, item 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import analyzer.catalogue.export as export
from analyzer.catalogue import load_catalogue
from analyzer.catalogue.export import export_pac, pac_return_value

ROOT = Path(__file__).resolve().parents[1]
INJECTIONS = [
    'PROXY "; alert(1); "',
    'PROXY a.example:1"; return "PROXY evil.example:1',
    "PROXY a.example:1\n}; function FindProxyForURL(u, h) { return 'DIRECT'; } //",
    "PROXY a.example:1; DIRECT; PROXY b.example:2 +1",
    "PROXY a.example:1\\",
    "PROXY ::1:3128",  # an IPv6 literal must be bracketed
    "PROXY [::g]:3128",
    "PROXY 300.1.1.1:3128",
    "PROXY a.example:0",
    "PROXY a.example:65536",
    "PROXY a.example",
    "PROXY -a.example:3128",
    "PROXY a..example:3128",
    "FTP a.example:21",
    "",
    "PROXY a.example:3128;",
    "PROXY a\u2028.example:3128",
]


@pytest.fixture()
def pac() -> Iterator[Any]:
    pacparser = pytest.importorskip("pacparser", reason="pacparser (PAC engine) not installed: pip install pacparser")
    pacparser.init()
    try:
        yield pacparser
    finally:
        pacparser.cleanup()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)


@pytest.mark.parametrize("value", INJECTIONS)
def test_a_value_outside_the_pac_grammar_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        pac_return_value(value)
    with pytest.raises(ValueError):
        export_pac(load_catalogue(edition="current"), fallback=value)


def test_the_injection_is_refused_by_the_cli_with_one_line() -> None:
    proc = cli("services", "export", "--format", "pac", "--proxy", 'PROXY "; alert(1); "')
    assert proc.returncode == 2 and proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("apple-net services export: error: argument --proxy: not a ")


@pytest.mark.parametrize("value,expected", [
    ("PROXY proxy.corp.example:3128", "PROXY proxy.corp.example:3128"),
    ("DIRECT", "DIRECT"),
    ("proxy 10.0.0.1:8080 ;  DIRECT", "PROXY 10.0.0.1:8080; DIRECT"),
    ("PROXY [2001:db8::1]:3128; SOCKS5 127.0.0.1:1080; DIRECT",
     "PROXY [2001:db8::1]:3128; SOCKS5 127.0.0.1:1080; DIRECT"),
    ("HTTPS secure-proxy.example:443; HTTP p_2.example:80; SOCKS s.example:1080; SOCKS4 s4.example:1080",
     "HTTPS secure-proxy.example:443; HTTP p_2.example:80; SOCKS s.example:1080; SOCKS4 s4.example:1080"),
])
def test_valid_values_evaluate_in_a_real_pac_engine(pac: Any, value: str, expected: str) -> None:
    proc = cli("services", "export", "--format", "pac", "--proxy", value)
    assert proc.returncode == 0, proc.stderr
    pac.parse_pac_string(proc.stdout)
    assert pac.find_proxy("https://www.example.com/", "www.example.com") == expected
    assert pac.find_proxy("https://gs.apple.com/", "gs.apple.com") == "DIRECT"


def test_catalogue_strings_are_escaped_in_the_javascript(pac: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Host patterns come from the catalogue (a --signatures directory is anyone's file): a quote in one must
    # stay inside its string literal.
    evil = 'x.example": 1}; return "PROXY evil.example:1"; var y = {"z'
    names = ([evil, "back\\slash.example", "line\u2028sep.example"], ['w.example"]; return "PROXY evil.example:2"; //'])
    monkeypatch.setattr(export, "_names", lambda _entries: names)
    text = export_pac(load_catalogue(edition="current"), fallback="PROXY proxy.corp.example:3128")
    pac.parse_pac_string(text)
    assert pac.find_proxy("https://www.example.com/", "www.example.com") == "PROXY proxy.corp.example:3128"
    assert pac.find_proxy("https://x.example/", "x.example") == "PROXY proxy.corp.example:3128"
