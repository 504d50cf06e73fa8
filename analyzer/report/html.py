"""One self-contained HTML report that works offline.

No CDN, fonts or external files: inline CSS, a small inline script (sorting and
filtering the services table, copy buttons, expand/collapse), figures as
data: URIs. Every string from the report passes through `for_html` (text and
attribute values alike); element ids are our own (flow-0, flow-1 ...), never
wire strings. No report data is embedded for the script: it works on the DOM.

Defence in depth: a Content-Security-Policy meta tag allows only our own
script and style (by SHA-256 hash) and data: images, so even a string that
escaped escaping could neither run script nor load anything.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from analyzer.report.escape import for_html
from analyzer.report.terminal_report import (
    PROBLEM_VERDICTS,
    SEVERITY_ORDER,
    SEVERITY_TITLES,
    STATUS_ORDER,
    alert_text,
    capture_line,
    counts_text,
    endpoint,
    flow_name,
    format_ts,
    headline,
    status_sort_key,
)
from analyzer.words import count

_STYLE = """
:root{--fg:#1f2328;--muted:#59636e;--bg:#fff;--panel:#f6f8fa;--line:#d1d9e0;--accent:#0969da;
--working:#1a7f37;--degraded:#9a6700;--blocked:#cf222e;--intercepted:#8250df;--not_seen:#6e7781;--info:#0969da}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;--panel:#151b23;--line:#3d444d;
--accent:#4493f8;--working:#3fb950;--degraded:#d29922;--blocked:#f85149;--intercepted:#ab7df8;--not_seen:#9198a1;
--info:#4493f8}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI","Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:1400px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:20px;margin:8px 0 4px;color:var(--muted);font-weight:600}
h2{font-size:18px;margin:32px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:20px 0 8px}
.headline{font-size:24px;font-weight:700;margin:4px 0 12px}
.badges{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.badge{display:inline-block;border-radius:999px;padding:1px 10px;font-weight:600;font-size:12px;color:#fff;
background:var(--not_seen);white-space:nowrap}
.badges .badge{font-size:14px;padding:4px 14px}
.s-working,.v-ok{background:var(--working)}
.s-degraded,.sev-warning{background:var(--degraded)}
.s-blocked,.v-no_response,.v-refused,.v-reset,.v-tls_failed,.sev-error,.d-nxdomain,.d-servfail,.d-refused,
.d-sinkholed,.d-no_response{background:var(--blocked)}
.s-intercepted,.v-intercepted{background:var(--intercepted)}
.sev-info{background:var(--info)}
.v-incomplete,.s-not_seen{background:var(--not_seen)}
.d-ok{background:var(--working)}
.meta,.muted{color:var(--muted)}
.meta{margin:2px 0}
.alert-box{border-left:4px solid var(--intercepted);background:var(--panel);padding:8px 12px;margin:8px 0}
nav{position:sticky;top:0;background:var(--bg);border-bottom:1px solid var(--line);padding:6px 0;z-index:1}
nav a{margin-right:16px;color:var(--accent);text-decoration:none}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--panel);position:sticky;top:34px}
td.num,th.num{text-align:right}
th button{font:inherit;font-weight:600;background:none;border:0;padding:0;color:inherit;cursor:pointer}
th button::after{content:" \\2195";color:var(--muted)}
th[aria-sort=ascending] button::after{content:" \\2191"}
th[aria-sort=descending] button::after{content:" \\2193"}
tr.problem td{background:color-mix(in srgb,var(--blocked) 7%,transparent)}
.controls{display:flex;flex-wrap:wrap;gap:12px;align-items:center;margin:8px 0}
.controls input[type=search]{padding:4px 8px;min-width:260px;border:1px solid var(--line);border-radius:6px;
background:var(--bg);color:var(--fg)}
.needs-js{display:none}
html.js .needs-js{display:flex}
.finding{border:1px solid var(--line);border-radius:8px;padding:8px 12px;margin:8px 0}
.finding.sev-border-error{border-left:4px solid var(--blocked)}
.finding.sev-border-warning{border-left:4px solid var(--degraded)}
.finding.sev-border-info{border-left:4px solid var(--info)}
.finding h4{margin:2px 0 6px;font-size:14px}
.finding ul{margin:4px 0 4px 20px;padding:0}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:6px 0}
.kv dt{color:var(--muted)}
.kv dd{margin:0;overflow-wrap:anywhere}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;overflow-wrap:anywhere}
td.host{white-space:nowrap;overflow-wrap:normal}
code.filter{background:var(--panel);border:1px solid var(--line);border-radius:4px;padding:1px 4px}
button.copy{margin-left:6px;font-size:11px;padding:0 6px;cursor:pointer}
details.flow{border:1px solid var(--line);border-radius:6px;margin:4px 0;padding:0 10px}
details.flow[open]{padding-bottom:8px}
details.flow summary{cursor:pointer;padding:5px 0;overflow-wrap:anywhere}
details.flow summary .badge{margin-right:6px}
.figure{margin:12px 0}
.figure img{max-width:100%;height:auto;border:1px solid var(--line);background:#fff}
footer{margin-top:40px;color:var(--muted);font-size:12px}
"""

_SCRIPT = """
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var table = document.getElementById("services-table");
  if (table && table.tBodies.length) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      var button = th.querySelector("button");
      if (!button) { return; }
      button.addEventListener("click", function () {
        var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        var numeric = th.getAttribute("data-type") === "num";
        var key = function (row) {
          var cell = row.cells[col];
          var v = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
          return numeric ? (parseFloat(v) || 0) : v.toLowerCase();
        };
        var sorted = Array.prototype.slice.call(body.rows).sort(function (a, b) {
          var x = key(a), y = key(b);
          return dir * (x < y ? -1 : x > y ? 1 : 0);
        });
        sorted.forEach(function (row) { body.appendChild(row); });
      });
    });
    var box = document.getElementById("service-filter");
    var checks = document.querySelectorAll("input[name=status-filter]");
    var count = document.getElementById("service-count");
    var apply = function () {
      var q = box.value.trim().toLowerCase();
      var on = {};
      Array.prototype.forEach.call(checks, function (c) { on[c.value] = c.checked; });
      var shown = 0;
      rows.forEach(function (row) {
        var ok = on[row.getAttribute("data-status")] !== false &&
          (!q || row.textContent.toLowerCase().indexOf(q) !== -1);
        row.hidden = !ok;
        if (ok) { shown += 1; }
      });
      count.textContent = shown + " of " + rows.length + " shown";
    };
    box.addEventListener("input", apply);
    Array.prototype.forEach.call(checks, function (c) { c.addEventListener("change", apply); });
    apply();
  }
  Array.prototype.forEach.call(document.querySelectorAll("code.filter"), function (code) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.addEventListener("click", function () {
      var done = function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 1500);
      };
      var select = function () {
        var range = document.createRange();
        range.selectNodeContents(code);
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        try { if (document.execCommand("copy")) { done(); } } catch (e) { /* selected: Ctrl+C works */ }
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(code.textContent).then(done, select);
      } else {
        select();
      }
    });
    code.insertAdjacentElement("afterend", button);
  });
  var setAll = function (open) {
    Array.prototype.forEach.call(document.querySelectorAll("details.flow"), function (d) { d.open = open; });
  };
  var expand = document.getElementById("expand-flows");
  var collapse = document.getElementById("collapse-flows");
  if (expand) { expand.addEventListener("click", function () { setAll(true); }); }
  if (collapse) { collapse.addEventListener("click", function () { setAll(false); }); }
  var openTarget = function () {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id ? document.getElementById(id) : null;
    if (el && el.tagName === "DETAILS") { el.open = true; el.scrollIntoView(); }
  };
  window.addEventListener("hashchange", openTarget);
  openTarget();
  document.documentElement.setAttribute("data-js", "ready");
})();
"""

# data:image/png;base64,<base64>; anything else could make the page load from elsewhere.
_DATA_URI = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/]+={0,2}")


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy() -> str:
    return (f"default-src 'none'; img-src data:; style-src {_csp_hash(_STYLE)}; "
            f"script-src {_csp_hash(_SCRIPT)}; base-uri 'none'; form-action 'none'")


def _h(value: object) -> str:
    return for_html("" if value is None else str(value))


def _cls(prefix: str, value: object) -> str:
    """A CSS class from an enum-like value: only [a-z_] survives, so no wire string shapes markup."""
    return prefix + re.sub(r"[^a-z_]", "", str(value).lower())


def _badge(prefix: str, value: object) -> str:
    return f'<span class="badge {_cls(prefix, value)}">{_h(value)}</span>'


def _list(items: Iterable[object]) -> str:
    return "<ul>" + "".join(f"<li>{_h(i)}</li>" for i in items) + "</ul>"


def _kv(pairs: Sequence[tuple[str, str]]) -> str:
    """A definition list; values are already HTML (callers escape)."""
    return '<dl class="kv">' + "".join(f"<dt>{_h(k)}</dt><dd>{v}</dd>" for k, v in pairs if v) + "</dl>"


def _filter_code(value: object, element_id: str) -> str:
    return f'<code class="filter" id="{element_id}">{_h(value)}</code>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, table_id: str = "",
           row_classes: Sequence[str] = ()) -> str:
    """Cells are already HTML (callers escape)."""
    head = "".join(f"<th>{_h(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if i < len(row_classes) and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# ---------------------------------------------------------------- sections

def _answer(report: Mapping[str, Any]) -> str:
    summary = report.get("summary") or {}
    parts = ['<header id="answer">', "<h1>Apple services on this network</h1>",
             f'<p class="headline">{_h(headline(report))}</p>']
    by_status = summary.get("services_by_status") or {}
    statuses = [s for s in STATUS_ORDER if by_status.get(s)] + sorted(
        s for s in by_status if s not in STATUS_ORDER and by_status.get(s))
    if statuses:
        parts.append('<div class="badges">' + "".join(
            f'<span class="badge {_cls("s-", s)}">{_h(by_status[s])} {_h(s).replace("_", " ")}</span>'
            for s in statuses) + "</div>")
    verdicts = counts_text(summary.get("by_verdict"), ("intercepted", "tls_failed", "reset", "refused",
                                                       "no_response", "incomplete", "ok"))
    parts.append(f'<p class="meta">{_h(count(int(summary.get("flows") or 0), "flow"))}, '
                 f'{_h(summary.get("apple_flows", 0))} '
                 f"to Apple services{': ' + _h(verdicts) if verdicts else ''}</p>")
    dns = counts_text(summary.get("dns_by_verdict"))
    if dns:
        parts.append(f'<p class="meta">DNS: {_h(dns)}</p>')
    for capture in report.get("captures") or []:
        parts.append(f'<p class="meta">Capture {_h(capture_line(capture))}</p>')
    for item in summary.get("interception") or []:
        services = ", ".join(map(str, item.get("services") or []))
        n = len(item.get("services") or [])
        parts.append(
            '<div class="alert-box"><strong>HTTPS inspection by '
            f"{_h(item.get('product') or 'an unknown product')}</strong> "
            f"({_h(item.get('confidence') or '?')} confidence) on {count(n, 'service')}: {_h(services)}"
            + (f'<br><span class="muted">issuer</span> <span class="mono">{_h(item["issuer"])}</span>'
               if item.get("issuer") else "")
            + "</div>")
    parts.append("</header>")
    return "\n".join(parts)


def _nav(has_figures: bool) -> str:
    links = [("services", "Services"), ("findings", "Findings")]
    if has_figures:
        links.append(("figures", "Figures"))
    links += [("flows", "Flows"), ("dns", "DNS"), ("captures", "Captures")]
    return "<nav>" + "".join(f'<a href="#{i}">{t}</a>' for i, t in links) + "</nav>"


# (header, attributes): data-type=num sorts by number (the cell's data-sort if it has one, else its text).
_SERVICE_COLUMNS = (("Status", " data-type=num"), ("Section", ""), ("Host", ""), ("Ports", " data-type=num"),
                    ("Protocol", ""), ("Flows", " class=num data-type=num"),
                    ("Attempts", " class=num data-type=num"), ("Verdicts", ""), ("Names seen", ""), ("Advice", ""))


def _services(report: Mapping[str, Any]) -> str:
    services = sorted(report.get("services") or [], key=status_sort_key)
    out = [f'<section id="services"><h2>Services ({len(services)})</h2>']
    if not services:
        return out[0] + "<p>No Apple service seen in the capture.</p></section>"
    present = [s for s in STATUS_ORDER if any(x.get("status") == s for x in services)]
    present += sorted({str(x.get("status")) for x in services} - set(STATUS_ORDER))
    checks = "".join(
        f'<label><input type="checkbox" name="status-filter" value="{_h(s)}" checked> '
        f"{_badge('s-', s)}</label>" for s in present)
    out.append('<div class="controls needs-js"><input type="search" id="service-filter" '
               'placeholder="Filter services (host, name, advice...)" aria-label="Filter services">'
               f'{checks}<span id="service-count" class="muted"></span></div>')
    head = "".join(f'<th{attrs}><button type="button">{_h(name)}</button></th>' for name, attrs in _SERVICE_COLUMNS)
    rows = []
    for s in services:
        status = str(s.get("status", ""))
        rank = STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)
        ports = s.get("ports") or []
        evidence = s.get("evidence") or []
        advice = _h(s.get("advice") or "")
        if evidence:
            advice += f"<details><summary>evidence ({len(evidence)})</summary>{_list(evidence)}</details>"
        cls = ' class="problem"' if status in ("blocked", "intercepted", "degraded") else ""
        rows.append(
            f'<tr data-status="{_h(status)}"{cls}>'
            f'<td data-sort="{rank}">{_badge("s-", status)}</td>'
            f"<td>{_h(s.get('section_en') or s.get('section'))}</td>"
            f'<td class="mono host" title="{_h(s.get("id"))}">{_h(s.get("host"))}</td>'
            f'<td data-sort="{_h(ports[0] if ports else 0)}">{_h(" ".join(map(str, ports)))}</td>'
            f"<td>{_h(s.get('protocol'))}</td>"
            f'<td class="num">{_h(s.get("flows", 0))}</td>'
            f'<td class="num">{_h(s.get("attempts", ""))}</td>'
            f"<td>{_h(counts_text(s.get('by_verdict')))}</td>"
            f'<td class="mono">{_h(", ".join(map(str, s.get("names") or [])))}</td>'
            f"<td>{advice}</td></tr>")
    out.append(f'<table id="services-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')
    out.append("</section>")
    return "\n".join(out)


def _findings(report: Mapping[str, Any], anchors: Mapping[str, str]) -> str:
    findings = list(report.get("findings") or [])
    out = [f'<section id="findings"><h2>Findings ({len(findings)})</h2>']
    if not findings:
        out.append("<p>No problems found.</p>")
    severities = SEVERITY_ORDER + tuple(sorted({str(f.get("severity")) for f in findings} - set(SEVERITY_ORDER)))
    n = 0
    for severity in severities:
        group = [f for f in findings if str(f.get("severity")) == severity]
        if not group:
            continue
        out.append(f"<h3>{_h(SEVERITY_TITLES.get(severity, severity))} ({len(group)})</h3>")
        for f in group:
            flow_links = ", ".join(
                f'<a href="#{anchors[i]}" class="mono">{_h(i)}</a>' if i in anchors else f'<span class="mono">{_h(i)}</span>'
                for i in map(str, f.get("flows") or []))
            pairs = [("Service", f'<span class="mono">{_h(f.get("service"))}</span>' if f.get("service") else ""),
                     ("Flows", flow_links),
                     ("Evidence", _list(f.get("evidence") or []) if f.get("evidence") else ""),
                     ("Advice", _h(f.get("advice")) if f.get("advice") else ""),
                     ("Wireshark", _filter_code(f["wireshark_filter"], f"finding-filter-{n}")
                      if f.get("wireshark_filter") else "")]
            out.append(f'<article class="finding {_cls("sev-border-", severity)}">'
                       f"<h4>{_badge('sev-', severity)} {_h(f.get('message'))} "
                       f'<span class="muted mono">{_h(f.get("kind"))}</span></h4>{_kv(pairs)}</article>')
            n += 1
    out.append("</section>")
    return "\n".join(out)


def _figures(figures: Mapping[str, str]) -> str:
    out = ['<section id="figures"><h2>Figures</h2>']
    for title, uri in figures.items():
        if not _DATA_URI.fullmatch(uri):
            raise ValueError(f"figure {title!r}: expected a base64 data:image URI, so the report stays offline")
        out.append(f'<figure class="figure"><img src="{_h(uri)}" alt="{_h(title)}">'
                   f"<figcaption>{_h(title)}</figcaption></figure>")
    out.append("</section>")
    return "\n".join(out)


def _certificates(certs: Sequence[Mapping[str, Any]]) -> str:
    rows = [(_h(c.get("subject")), _h(c.get("issuer")), _h(", ".join(map(str, c.get("san") or []))),
             _h(f"{c.get('not_before', '?')} to {c.get('not_after', '?')}"),
             f'<span class="mono">{_h(c.get("sha256"))}</span>') for c in certs]
    return _table(("Subject", "Issuer", "SAN", "Valid", "SHA-256"), rows)


def _flow(f: Mapping[str, Any], anchor: str) -> str:
    tls = f.get("tls") or {}
    quic = f.get("quic") or {}
    proxy = f.get("proxy") or {}
    http = f.get("http") or {}
    interception = f.get("interception") or {}
    name = flow_name(f)
    summary = (f"{_badge('v-', f.get('verdict'))}<span class=\"mono\">{_h(f.get('proto'))} "
               f"{_h(endpoint(f.get('client')))} &rarr; {_h(endpoint(f.get('server')))}</span>"
               f"{' <strong>' + _h(name) + '</strong>' if name else ''}"
               f"{' <span class=muted>' + _h(f.get('service')) + '</span>' if f.get('service') else ''}"
               f"{' &mdash; ' + _h(f.get('reason')) if f.get('reason') else ''}")
    packets, volume = f.get("packets") or {}, f.get("bytes") or {}
    pairs: list[tuple[str, str]] = [
        ("Flow id", f'<span class="mono">{_h(f.get("id"))}</span>'),
        ("Time (UTC)", _h(f"{format_ts(f.get('ts_start'))} to {format_ts(f.get('ts_end'), date=False)}")),
        ("State / history", _h(f"{f.get('state') or '-'} / {f.get('history') or '-'}")),
        ("Packets c/s", _h(f"{packets.get('c2s', '?')} / {packets.get('s2c', '?')}") if packets else ""),
        ("Bytes c/s", _h(f"{volume.get('c2s', '?')} / {volume.get('s2c', '?')}") if volume else ""),
        ("Names", f'<span class="mono">{_h(", ".join(map(str, f.get("names") or [])))}</span>'
         if f.get("names") else ""),
        ("Attribution", _h(f.get("attribution"))),
        ("Verdict", _h(f.get("verdict"))),
        ("Reset by", _h(f.get("reset_by"))),
        ("Reason", _h(f.get("reason"))),
        ("TLS", _h(" ".join(str(x) for x in (tls.get("version"), tls.get("cipher")) if x)
                   + (f", ALPN {', '.join(map(str, tls.get('alpn') or []))}" if tls.get("alpn") else "")
                   + ("" if not tls else ", established" if tls.get("established") else ", not established"))),
        ("TLS alert", _h(alert_text(tls))),
        ("JA4", f'<span class="mono">{_h(tls.get("ja4"))}</span>' if tls.get("ja4") else ""),
        ("QUIC", _h(" ".join(str(x) for x in (quic.get("version"), quic.get("sni")) if x))),
        ("HTTP Host", _h(http.get("host"))),
        ("CONNECT", _h(" ".join(str(x) for x in (proxy.get("connect_target"), proxy.get("status"))
                               if x is not None))),
        ("Interception", _h(" ".join(str(x) for x in (
            interception.get("product"), interception.get("issuer") and f"(issuer {interception.get('issuer')})",
            interception.get("confidence") and f"[{interception.get('confidence')} confidence]") if x))),
        ("Processes", _h(", ".join(f"{p.get('name')} ({p.get('pid')})" for p in f.get("processes") or []))),
        ("Evidence", _list(f.get("evidence") or []) if f.get("evidence") else ""),
        ("Certificates", _certificates(tls.get("certificates") or []) if tls.get("certificates") else ""),
        ("Wireshark", _filter_code(f["wireshark_filter"], f"{anchor}-filter") if f.get("wireshark_filter") else ""),
    ]
    return f'<details class="flow" id="{anchor}"><summary>{summary}</summary>{_kv(pairs)}</details>'


def _flows(report: Mapping[str, Any], anchors: Mapping[str, str]) -> str:
    flows = list(report.get("flows") or [])
    problems = [f for f in flows if f.get("verdict") in PROBLEM_VERDICTS]
    others = [f for f in flows if f.get("verdict") not in PROBLEM_VERDICTS]
    out = [f'<section id="flows"><h2>Flows ({len(flows)})</h2>',
           ('<div class="controls needs-js"><button type="button" id="expand-flows">Expand all</button>'
            '<button type="button" id="collapse-flows">Collapse all</button></div>')]
    groups = ((f"With problems ({len(problems)})", problems), (f"Working or not judged ({len(others)})", others))
    for title, group in groups:
        out.append(f"<h3>{_h(title)}</h3>")
        out += [_flow(f, anchors[str(f.get("id"))]) for f in group]
    out.append("</section>")
    return "\n".join(out)


def _dns_row(d: Mapping[str, Any]) -> tuple[str, ...]:
    answers = ", ".join(f"{a.get('type')} {a.get('data')}" for a in d.get("answers") or [])
    chain = " -> ".join(map(str, d.get("chain") or []))
    return (_h(format_ts(d.get("ts"))), _h(endpoint(d.get("client"))), _h(endpoint(d.get("server"))),
            f'<span class="mono">{_h(d.get("query"))}</span>', _h(d.get("qtype")),
            _h(d.get("rcode") or "no response"), _badge("d-", d.get("verdict")),
            f'<span class="mono">{_h(answers)}</span>', f'<span class="mono">{_h(chain)}</span>',
            f'<span class="mono">{_h(d.get("service"))}</span>', _h(d.get("reason")))


def _dns(report: Mapping[str, Any]) -> str:
    dns = list(report.get("dns") or [])
    out = [f'<section id="dns"><h2>DNS ({len(dns)})</h2>']
    if not dns:
        return out[0] + "<p>No DNS transactions in the capture.</p></section>"
    rows = [_dns_row(d) for d in dns]
    out.append(_table(("Time (UTC)", "Client", "Resolver", "Query", "Type", "Rcode", "Verdict", "Answers",
                       "CNAME chain", "Service", "Reason"), rows,
                      row_classes=["problem" if d.get("verdict") != "ok" else "" for d in dns]))
    out.append("</section>")
    return "\n".join(out)


def _captures(report: Mapping[str, Any]) -> str:
    captures = list(report.get("captures") or [])
    rows = [(_h(c.get("source")), _h(c.get("format", "")), _h(c.get("packets")), _h(c.get("bytes", "")),
             _h(format_ts(c.get("first_ts"))), _h(format_ts(c.get("last_ts"))),
             _h(", ".join(map(str, c.get("link_types") or []))), _h("yes" if c.get("truncated") else "no"),
             _h(c.get("dropped") if c.get("dropped") is not None else ""),
             _h(", ".join(f"{k} {v}" for k, v in sorted((c.get("weird") or {}).items()))))
            for c in captures]
    out = ['<section id="captures"><h2>Captures</h2>',
           _table(("Source", "Format", "Packets", "Bytes", "First (UTC)", "Last (UTC)", "Link types", "Truncated",
                   "Dropped", "Weird"), rows)]
    weird = report.get("weird") or {}
    out.append("<h3>Weird counters</h3>")
    if weird:
        out.append(_table(("Kind", "Count"), ((f'<span class="mono">{_h(k)}</span>', _h(v))
                                              for k, v in sorted(weird.items()))))
    else:
        out.append("<p>None: every packet parsed as expected.</p>")
    out.append("</section>")
    return "\n".join(out)


def render_html(report: Mapping[str, Any], figures: Mapping[str, str] | None = None) -> str:
    """The whole report as one HTML document.

    `figures` maps a title to a base64 data:image URI (PNG from matplotlib);
    given, they appear in a "Figures" section after the findings.
    """
    flows = report.get("flows") or []
    anchors = {str(f.get("id")): f"flow-{i}" for i, f in enumerate(flows)}
    tool = report.get("tool") or {}
    body = [_answer(report), _nav(bool(figures)), _services(report), _findings(report, anchors)]
    if figures:
        body.append(_figures(figures))
    body += [_flows(report, anchors), _dns(report), _captures(report),
             (f"<footer>{_h(tool.get('name', 'apple-net-analyzer'))} {_h(tool.get('version', ''))}, "
              f"report schema {_h(report.get('schema_version', ''))}. Times are UTC.</footer>")]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy()}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_h(headline(report))} - apple-net-analyzer</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + f"\n</main>\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )
