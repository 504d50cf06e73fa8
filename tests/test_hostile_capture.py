"""A capture whose wire strings are hostile (HTML, spreadsheet formulas, terminal escapes) comes out harmless.

The packets are hand-built (scapy, TLS bytes by struct): hostile input is
exactly what crafted packets are for. They run through the whole pipeline and
every output format.
"""

from __future__ import annotations

import csv
import io
import json
import struct
from html.parser import HTMLParser
import pytest

import analyzer
from analyzer.report.csv_report import render_csv
from analyzer.report.jsonl import render_jsonl
from analyzer.report.markdown import render_markdown
from analyzer.report.terminal_report import render_terminal

scapy = pytest.importorskip("scapy.all", reason="scapy not installed (pip install scapy)")

HOSTILE_SNI = '<script>alert(1)</script>=HYPERLINK("http://evil")\x1b]0;pwned\x07\x1b[5m\u202e.apple.com'
HOSTILE_DNS = "=cmd|' /C calc'!A0.<img src=x onerror=alert(2)>.apple.com"
HOSTILE_HOST = "+SUM(1)\x1b[2J@evil<b>x</b>"


def client_hello(sni: str) -> bytes:
    name = sni.encode("utf-8")
    sni_ext = struct.pack("!HBH", len(name) + 3, 0, len(name)) + name
    exts = struct.pack("!HH", 0, len(sni_ext)) + sni_ext
    body = b"\x03\x03" + b"\x11" * 32 + b"\x00" + struct.pack("!H", 2) + b"\x13\x01" + b"\x01\x00"
    body += struct.pack("!H", len(exts)) + exts
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def dns_response(name: str) -> bytes:
    labels = b"".join(bytes([len(p)]) + p for p in (x.encode() for x in name.split(".")) if p) + b"\x00"
    q = struct.pack("!HHHHHH", 0x4242, 0x8180, 1, 1, 0, 0) + labels + struct.pack("!HH", 1, 1)
    return q + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([17, 1, 2, 3])


def dns_query(name: str) -> bytes:
    labels = b"".join(bytes([len(p)]) + p for p in (x.encode() for x in name.split(".")) if p) + b"\x00"
    return struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", 1, 1)


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from scapy.all import IP, TCP, UDP, Ether, Raw, wrpcap

    c, s, r = "10.1.1.2", "17.1.2.3", "10.1.1.1"
    pkts = []
    t = 1_700_000_000.0

    def add(p, dt: float = 0.01) -> None:
        nonlocal t
        t += dt
        p.time = t
        pkts.append(Ether() / p)

    add(IP(src=c, dst=r) / UDP(sport=40000, dport=53) / Raw(dns_query(HOSTILE_DNS)))
    add(IP(src=r, dst=c, ttl=64) / UDP(sport=53, dport=40000) / Raw(dns_response(HOSTILE_DNS)))
    # TLS with a hostile SNI, reset by "the server" right after the ClientHello.
    add(IP(src=c, dst=s) / TCP(sport=50000, dport=443, flags="S", seq=1000))
    add(IP(src=s, dst=c, ttl=50) / TCP(sport=443, dport=50000, flags="SA", seq=5000, ack=1001))
    add(IP(src=c, dst=s) / TCP(sport=50000, dport=443, flags="A", seq=1001, ack=5001))
    ch = client_hello(HOSTILE_SNI)
    add(IP(src=c, dst=s) / TCP(sport=50000, dport=443, flags="PA", seq=1001, ack=5001) / Raw(ch))
    add(IP(src=s, dst=c, ttl=64) / TCP(sport=443, dport=50000, flags="R", seq=5001), 0.0005)
    # Plain HTTP with a hostile Host header to an Apple address.
    add(IP(src=c, dst=s) / TCP(sport=50001, dport=80, flags="S", seq=2000))
    add(IP(src=s, dst=c, ttl=50) / TCP(sport=80, dport=50001, flags="SA", seq=9000, ack=2001))
    req = f"GET /ocsp HTTP/1.1\r\nHost: {HOSTILE_HOST}\r\n\r\n".encode("utf-8", "surrogateescape")
    add(IP(src=c, dst=s) / TCP(sport=50001, dport=80, flags="PA", seq=2001, ack=9001) / Raw(req))
    add(IP(src=s, dst=c, ttl=50) / TCP(sport=80, dport=50001, flags="R", seq=9001))
    path = tmp_path_factory.mktemp("hostile") / "hostile.pcap"
    wrpcap(str(path), pkts)
    return analyzer.analyze(path).report


def test_hostile_strings_reach_the_report(hostile_report: dict) -> None:
    flows = hostile_report["flows"]
    # The TLS parser already shows non-printable SNI bytes as \xNN; printable markup stays as sent.
    sni = '<script>alert(1)</script>=HYPERLINK("http://evil")\\x1b]0;pwned\\x07\\x1b[5m\\xe2\\x80\\xae.apple.com'
    assert [f["sni"] for f in flows if f["sni"]] == [sni]
    assert any(d["query"].startswith("=cmd") for d in hostile_report["dns"])
    # The hostile SNI is not a host name: it can never match a catalogue entry by name.
    tls = next(f for f in flows if f["sni"] == sni)
    assert tls["attribution"] == "ip_range"
    assert tls["verdict"] == "reset" and tls["reset_by"] == "middlebox"


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)


def test_html_is_harmless(hostile_report: dict) -> None:
    from analyzer.report.html import render_html

    html_text = render_html(hostile_report)
    parser = _Collect()
    parser.feed(html_text)
    assert parser.tags.count("script") == 1  # only the report's own
    assert "img" not in parser.tags
    assert not [a for a, _ in parser.attrs if a.startswith("on")]
    assert "<script>alert(1)" not in html_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "\x1b" not in html_text and "\x07" not in html_text and "\u202e" not in html_text


def test_csv_has_no_formulas(hostile_report: dict) -> None:
    rows = list(csv.reader(io.StringIO(render_csv(hostile_report))))
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert any("HYPERLINK" in cell for row in rows for cell in row)


@pytest.mark.parametrize("color", [False, True])
def test_terminal_has_no_wire_escapes(hostile_report: dict, color: bool) -> None:
    out = io.StringIO()
    render_terminal(hostile_report, out, color=color)
    text = out.getvalue()
    assert "\x1b]" not in text and "\x07" not in text and "\x1b[5m" not in text and "\x1b[2J" not in text
    assert "\u202e" not in text
    if not color:
        assert "\x1b" not in text


def test_markdown_and_jsonl(hostile_report: dict) -> None:
    md = render_markdown(hostile_report)
    assert "<script" not in md and "<img" not in md and "\x1b" not in md
    for line in render_jsonl(hostile_report).splitlines():
        json.loads(line)

