"""matplotlib figures of an analysis, for notebooks and the HTML report.

Every function takes an `Analysis` (or its `.report` dict) and returns a
`matplotlib.figure.Figure` built without pyplot: no global figure registry, no
backend switch, nothing to close, safe in a web server or a test. In Jupyter,
`%matplotlib inline` shows a returned Figure like any other.

    >>> from analyzer import plots
    >>> plots.timeline(analysis)             # connection attempts per service, coloured by verdict
    >>> plots.handshake_rtt(analysis)        # SYN -> SYN-ACK per service
    >>> plots.cname_chains(analysis)         # the DNS answers behind each Apple name
    >>> plots.status_grid(analysis)          # status of every service, by section of Apple's document
    >>> plots.figures_for_html(analysis)     # {title: "data:image/png;base64,..."} for the HTML report

Strings from the wire (DNS names, SNI) go through `_label`: control characters
made visible, `$` escaped so matplotlib never reads a name as mathtext, and
long names shortened so one hostile name cannot stretch a figure.

matplotlib is optional (the "plots" extra); it is imported only when a figure
is drawn, and its absence raises `PlotsUnavailable` with the install hint.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analyzer.errors import AnalyzerError
from analyzer.report.escape import for_terminal
from analyzer.report.terminal_report import counts_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from analyzer.analysis import Analysis

INSTALL_HINT = "figures need matplotlib: pip install 'apple-net-analyzer[plots]'"

# The HTML report's palette (analyzer/report/html.py), so a figure and the table beside it agree.
STATUS_COLORS = {"blocked": "#cf222e", "intercepted": "#8250df", "degraded": "#9a6700", "working": "#1a7f37",
                 "not_seen": "#d0d7de"}
STATUS_ORDER = ("blocked", "intercepted", "degraded", "working", "not_seen")
# Colour and marker per flow verdict: the marker shape keeps verdicts apart for colour-blind readers.
VERDICT_STYLES = {"ok": ("#1a7f37", "o"), "no_response": ("#e16f24", "X"), "refused": ("#cf222e", "s"),
                  "reset": ("#82071e", "D"), "tls_failed": ("#bf3989", "v"), "intercepted": ("#8250df", "P"),
                  "incomplete": ("#8c959f", ".")}
DNS_COLORS = {"ok": "#1a7f37", "nxdomain": "#cf222e", "servfail": "#cf222e", "refused": "#cf222e",
              "no_response": "#e16f24", "sinkholed": "#82071e"}
_OTHER_COLOR = "#6e7781"
_CNAME_COLOR = "#ddf4ff"


class PlotsUnavailable(AnalyzerError, ImportError):
    """matplotlib is not installed. An ImportError too, so `except ImportError` keeps working."""


def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotsUnavailable(INSTALL_HINT) from exc
    return Figure


def available() -> bool:
    """Whether matplotlib can be imported (the HTML report embeds figures only then)."""
    try:
        _figure_class()
    except PlotsUnavailable:
        return False
    return True


def _report(source: Analysis | Mapping[str, Any]) -> Mapping[str, Any]:
    report = getattr(source, "report", source)
    if not isinstance(report, Mapping):
        raise TypeError(f"expected an Analysis or its report dict, got {type(source).__name__}")
    return report


def _label(value: object, limit: int = 36) -> str:
    """A wire string made safe for matplotlib text: visible controls, no mathtext, bounded length."""
    text = for_terminal("" if value is None else str(value))
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return text.replace("$", r"\$")


def _empty(fig: Figure, message: str) -> Figure:
    fig.text(0.5, 0.5, message, ha="center", va="center", color=_OTHER_COLOR, fontsize=11)
    return fig


def _start_time(report: Mapping[str, Any]) -> float:
    """Time zero: the first packet, as Wireshark's relative time counts (for one capture)."""
    starts = [c["first_ts"] for c in report.get("captures") or [] if c.get("first_ts") is not None]
    starts += [f["ts_start"] for f in report.get("flows") or [] if f.get("ts_start") is not None]
    starts += [d["ts"] for d in report.get("dns") or [] if d.get("ts") is not None]
    return min(starts) if starts else 0.0


def _service_hosts(report: Mapping[str, Any]) -> dict[str, str]:
    return {str(s["id"]): str(s.get("host") or s["id"]) for s in report.get("services") or []}


# ---------------------------------------------------------------- timeline

@dataclass(frozen=True, slots=True)
class _Attempt:
    row: str
    start: float
    end: float
    verdict: str
    port: str
    dns: bool  # a lookup of the service's name rather than a connection


def _is_dns_flow(flow: Mapping[str, Any]) -> bool:
    return flow.get("app") == "dns" or (flow.get("server") or {}).get("port") in (53, 853, 5353)


def _attempts(report: Mapping[str, Any], include_other: bool) -> list[_Attempt]:
    hosts = _service_hosts(report)
    t0 = _start_time(report)
    out = []
    for f in report.get("flows") or []:
        service = f.get("service")
        if service:
            row = hosts.get(str(service), str(service))
        elif include_other and not _is_dns_flow(f):
            server = f.get("server") or {}
            row = "other: " + str(f.get("sni") or (f.get("names") or [None])[0] or server.get("ip"))
        else:
            continue
        start = float(f.get("ts_start") or t0) - t0
        end = float(f.get("ts_end") or f.get("ts_start") or t0) - t0
        port = f"{f.get('proto', '')}/{(f.get('server') or {}).get('port', '?')}"
        out.append(_Attempt(row, start, max(end, start), str(f.get("verdict")), port, False))
    for d in report.get("dns") or []:
        if d.get("service"):
            ts = float(d.get("ts") or t0) - t0
            out.append(_Attempt(hosts.get(str(d["service"]), str(d["service"])), ts, ts, str(d.get("verdict")),
                                "dns", True))
    return out


def timeline(source: Analysis | Mapping[str, Any], *, include_other: bool = False) -> Figure:
    """Connection attempts per Apple service over time, one row per service, coloured by verdict.

    A marker is where a flow began, the bar behind it how long it lasted
    (a blackholed SYN shows as a long bar ending in nothing); the port is
    written beside the first attempt of each kind, so a 5223-to-443 fallback
    reads at a glance. Thin diamonds are DNS lookups of the service's name,
    which is all a service blocked in DNS ever shows. `include_other` adds
    non-Apple flows (DNS flows excepted: they are the diamonds).
    """
    report = _report(source)
    attempts = _attempts(report, include_other)
    rows: list[str] = []
    for a in sorted(attempts, key=lambda a: (a.start, a.dns)):
        if a.row not in rows:
            rows.append(a.row)
    Figure = _figure_class()
    fig = Figure(figsize=(11, max(2.6, 0.42 * len(rows) + 1.6)), layout="constrained")
    if not attempts:
        return _empty(fig, "No connection attempt to an Apple service in this capture")
    ax = fig.subplots()
    y_of = {row: i for i, row in enumerate(rows)}
    span = max(a.end for a in attempts) or 1.0
    labelled: set[tuple[str, str, str]] = set()
    seen_legend: set[str] = set()
    for a in attempts:
        y = y_of[a.row]
        if a.dns:
            color = DNS_COLORS.get(a.verdict, _OTHER_COLOR)
            name = f"DNS {a.verdict}"
            ax.scatter([a.start], [y - 0.22], marker="d", s=40, facecolors="white", edgecolors=color, linewidths=1.4,
                       zorder=3, label=None if name in seen_legend else name)
            seen_legend.add(name)
            continue
        color, marker = VERDICT_STYLES.get(a.verdict, (_OTHER_COLOR, "o"))
        if a.end > a.start:
            ax.hlines(y, a.start, a.end, colors=color, linewidth=5, alpha=0.35, zorder=1)
        ax.scatter([a.start], [y], marker=marker, s=70, color=color, edgecolors="white", linewidths=0.6, zorder=4,
                   label=None if a.verdict in seen_legend else a.verdict)
        seen_legend.add(a.verdict)
        if (a.row, a.port, a.verdict) not in labelled:
            labelled.add((a.row, a.port, a.verdict))
            ax.annotate(a.port, (a.start, y), xytext=(6, 5), textcoords="offset points", fontsize=7, color=color)
    ax.set_yticks(range(len(rows)), [_label(r) for r in rows], fontsize=9)
    ax.set_ylim(len(rows) - 0.5, -0.6)
    ax.set_xlim(-0.02 * span, span * 1.06)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel("seconds since the first packet (Wireshark's relative time)")
    ax.set_title("Connection attempts per Apple service, coloured by verdict", loc="left", fontsize=12)
    _legend(ax, bbox_to_anchor=(1.01, 1.0))
    return fig


def _legend(ax: Any, **kwargs: Any) -> None:
    """Verdicts in a fixed order (worked first, then each failure; DNS after), not in drawing order."""
    order = [*VERDICT_STYLES, *(f"DNS {v}" for v in DNS_COLORS)]
    handles, labels = ax.get_legend_handles_labels()
    pairs = sorted(zip(labels, handles, strict=True), key=lambda p: order.index(p[0]) if p[0] in order else len(order))
    ax.legend([h for _, h in pairs], [lbl for lbl, _ in pairs], loc="upper left", fontsize=8, title="verdict",
              title_fontsize=8, frameon=False, **kwargs)


# ---------------------------------------------------------------- handshake RTT

def _rtt_rows(report: Mapping[str, Any]) -> dict[str, list[tuple[float | None, str]]]:
    """Per "host tcp/port": (SYN -> SYN-ACK seconds or None when no SYN-ACK came, verdict)."""
    hosts = _service_hosts(report)
    rows: dict[str, list[tuple[float | None, str]]] = {}
    for f in report.get("flows") or []:
        if not f.get("service") or f.get("proto") != "tcp":
            continue
        row = f"{hosts.get(str(f['service']), str(f['service']))}  tcp/{(f.get('server') or {}).get('port', '?')}"
        rtt = (f.get("rtt") or {}).get("syn_synack")
        rows.setdefault(row, []).append((float(rtt) if rtt is not None else None, str(f.get("verdict"))))
    return rows


def handshake_rtt(source: Analysis | Mapping[str, Any]) -> Figure:
    """TCP handshake round-trip time (SYN -> SYN-ACK, seen from the capture point) per Apple service.

    One dot per connection, coloured by its verdict; a black tick marks the
    median. Connections that never got a SYN-ACK are counted on the right.
    Something much nearer than the rest (a far shorter RTT for one service)
    is often a proxy or firewall answering in the server's name.
    """
    report = _report(source)
    rows = _rtt_rows(report)
    Figure = _figure_class()
    names = sorted(rows, key=lambda r: (min((v for v, _ in rows[r] if v is not None), default=math.inf), r))
    fig = Figure(figsize=(11, max(2.6, 0.42 * len(names) + 1.6)), layout="constrained")
    if not rows:
        return _empty(fig, "No TCP connection to an Apple service in this capture")
    ax = fig.subplots()
    values = [v * 1000 for r in names for v, _ in rows[r] if v is not None]
    log = bool(values) and min(values) > 0 and max(values) / min(values) > 50
    seen_legend: set[str] = set()
    for y, row in enumerate(names):
        measured = [(v * 1000, verdict) for v, verdict in rows[row] if v is not None]
        for ms, verdict in measured:
            color, marker = VERDICT_STYLES.get(verdict, (_OTHER_COLOR, "o"))
            ax.scatter([ms], [y], marker=marker, s=60, color=color, edgecolors="white", linewidths=0.6, zorder=3,
                       label=None if verdict in seen_legend else verdict)
            seen_legend.add(verdict)
        if measured:
            median = sorted(ms for ms, _ in measured)[len(measured) // 2]
            ax.plot([median, median], [y - 0.3, y + 0.3], color="black", linewidth=1.2, zorder=4)
        missing = Counter(verdict for v, verdict in rows[row] if v is None)
        if missing:
            ax.annotate("no SYN-ACK: " + counts_text(missing), (1.0, y), xycoords=("axes fraction", "data"), xytext=(6, 0),
                        textcoords="offset points", va="center", fontsize=8, color=STATUS_COLORS["blocked"])
    ax.set_yticks(range(len(names)), [_label(n, 44) for n in names], fontsize=9)
    ax.set_ylim(len(names) - 0.5, -0.5)
    if log:
        ax.set_xscale("log")
    elif values:
        ax.set_xlim(0, max(values) * 1.15)
    else:
        ax.set_xticks([])
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel("SYN \u2192 SYN-ACK (milliseconds)" + (", log scale" if log else ""))
    ax.set_title("TCP handshake RTT per Apple service", loc="left", fontsize=12)
    if seen_legend:
        _legend(ax, bbox_to_anchor=(1.12, 1.0))
    return fig


# ---------------------------------------------------------------- CNAME chains

@dataclass(frozen=True, slots=True)
class _Chain:
    query: str
    chain: tuple[str, ...]  # the query first, then each CNAME target
    addresses: tuple[str, ...]
    qtypes: tuple[str, ...]
    verdict: str
    rcode: str | None


def _chains(report: Mapping[str, Any], include_other: bool = False) -> list[_Chain]:
    """One row per distinct (name, chain, verdict); A and AAAA answers of one name merge."""
    merged: dict[tuple[str, tuple[str, ...], str], dict[str, Any]] = {}
    for d in report.get("dns") or []:
        if not d.get("service") and not include_other:
            continue
        query = str(d.get("query"))
        chain = tuple(str(n) for n in d.get("chain") or [query]) or (query,)
        key = (query, chain, str(d.get("verdict")))
        slot = merged.setdefault(key, {"addresses": [], "qtypes": [], "rcode": d.get("rcode")})
        for addr in d.get("addresses") or []:
            if addr not in slot["addresses"]:
                slot["addresses"].append(str(addr))
        if d.get("qtype") and d["qtype"] not in slot["qtypes"]:
            slot["qtypes"].append(str(d["qtype"]))
    return [_Chain(q, c, tuple(v["addresses"]), tuple(v["qtypes"]), verdict, v["rcode"])
            for (q, c, verdict), v in merged.items()]


def _outcome(c: _Chain) -> tuple[str, str]:
    """The last box of a chain: its text and colour."""
    if c.verdict == "ok" and c.addresses:
        shown = list(c.addresses[:3]) + ([f"+{len(c.addresses) - 3} more"] if len(c.addresses) > 3 else [])
        return "\n".join(_label(a, 40) for a in shown), "#dafbe1"
    if c.verdict == "sinkholed":
        return "sinkholed: " + _label(", ".join(c.addresses[:2]), 30), "#ffebe9"
    if c.verdict == "no_response":
        return "no answer", "#fff1e5"
    return _label(c.rcode or c.verdict, 20) + ("" if c.addresses else " (no address)"), "#ffebe9"


def cname_chains(source: Analysis | Mapping[str, Any], *, include_other: bool = False) -> Figure:
    """Each Apple name looked up, the CNAME chain behind it and where it ended.

    query -> CNAME -> ... -> addresses, or the failure (NXDOMAIN, SERVFAIL,
    no answer, a sinkhole address). A name that leads into a CDN shows which
    CDN names a DNS filter or firewall must allow as well.
    """
    report = _report(source)
    chains = _chains(report, include_other)
    Figure = _figure_class()
    width = max((len(c.chain) for c in chains), default=1) + 1
    fig = Figure(figsize=(max(8.0, 2.7 * width), max(2.2, 0.55 * len(chains) + 1.0)), layout="constrained")
    if not chains:
        return _empty(fig, "No DNS lookup of an Apple name in this capture")
    ax = fig.subplots()
    ax.set_xlim(-0.55, width - 0.45)
    ax.set_ylim(len(chains) - 0.5, -0.7)
    ax.axis("off")
    box = {"boxstyle": "round,pad=0.35", "linewidth": 0.8}
    arrow = {"arrowstyle": "->", "color": "#59636e", "linewidth": 1, "shrinkA": 2, "shrinkB": 2}
    for x, title in enumerate(["name looked up"] + ["CNAME"] * (width - 2) + ["answer"]):
        ax.text(x, -0.6, title, ha="center", va="center", fontsize=8, color=_OTHER_COLOR)
    for y, c in enumerate(chains):
        qcolor = DNS_COLORS.get(c.verdict, _OTHER_COLOR)
        qtext = _label(c.query) + (f"  ({'/'.join(c.qtypes)})" if c.qtypes else "")
        previous = ax.text(0, y, qtext, ha="center", va="center", fontsize=8, family="monospace",
                           bbox={**box, "facecolor": "white", "edgecolor": qcolor, "linewidth": 1.6})
        for x, name in enumerate(c.chain[1:], start=1):
            t = ax.text(x, y, _label(name), ha="center", va="center", fontsize=8, family="monospace",
                        bbox={**box, "facecolor": _CNAME_COLOR, "edgecolor": "#54aeff"})
            ax.annotate("", xy=(0, 0.5), xycoords=t, xytext=(1, 0.5), textcoords=previous, arrowprops=arrow)
            previous = t
        text, fill = _outcome(c)
        t = ax.text(width - 1, y, text, ha="center", va="center", fontsize=8, family="monospace",
                    bbox={**box, "facecolor": fill, "edgecolor": qcolor})
        ax.annotate("", xy=(0, 0.5), xycoords=t, xytext=(1, 0.5), textcoords=previous, arrowprops=arrow)
    ax.set_title("DNS behind Apple names: name \u2192 CNAME chain \u2192 answer", loc="left", fontsize=12)
    return fig


# ---------------------------------------------------------------- status grid

def _section_order(source: Analysis | Mapping[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """Section rank and entry rank in Apple's document, from the analysis' catalogue when there is one."""
    catalogue = getattr(source, "catalogue", None)
    if catalogue is None:
        return {}, {}
    sections = {str(k): int(s.order) for k, s in catalogue.sections.items()}
    entries = {str(e.id): i for i, e in enumerate(catalogue.entries)}
    return sections, entries


def _grid_sections(source: Analysis | Mapping[str, Any]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    report = _report(source)
    section_rank, entry_rank = _section_order(source)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    titles: dict[str, str] = {}
    for s in report.get("services") or []:
        key = str(s.get("section"))
        groups.setdefault(key, []).append(s)
        titles[key] = str(s.get("section_en") or key)
    # Without a catalogue (a bare report dict) sections keep the order they first appear in.
    first_seen = {k: i for i, k in enumerate(groups)}
    keys = sorted(groups, key=lambda k: (section_rank.get(k, 1000 + first_seen[k]), k))
    return [(titles[k], sorted(groups[k], key=lambda s: (entry_rank.get(str(s.get("id")), 10**6),
                                                          str(s.get("host"))))) for k in keys]


def status_grid(source: Analysis | Mapping[str, Any], *, columns: int = 4) -> Figure:
    """Every service in the report as a tile coloured by status, one band per section of Apple's document.

    Analyse with `all_services=True` to see the whole document, the services
    the capture never touched in grey.
    """
    groups = _grid_sections(source)
    Figure = _figure_class()
    from matplotlib.patches import Patch, Rectangle

    columns = max(1, columns)
    bands = [max(1, math.ceil(len(services) / columns)) for _, services in groups]
    height = sum(bands)
    fig = Figure(figsize=(12, max(2.2, 0.5 * height + 1.3)), layout="constrained")
    if not groups:
        return _empty(fig, "No Apple service in this report")
    ax = fig.subplots()
    label_width = 1.55
    ax.set_xlim(-label_width, columns)
    ax.set_ylim(height + 0.05, -0.05)
    ax.axis("off")
    top = 0
    present: list[str] = []
    for (title, services), band in zip(groups, bands, strict=True):
        ax.text(-0.06, top + 0.5, "\n".join(textwrap.wrap(_label(title, 56), 28)), ha="right", va="center",
                fontsize=9, fontweight="bold")
        ax.axhline(top, color="#d1d9e0", linewidth=0.6)
        for i, s in enumerate(services):
            status = str(s.get("status"))
            if status not in present:
                present.append(status)
            fill = STATUS_COLORS.get(status, _OTHER_COLOR)
            x, y = i % columns, top + i // columns
            ax.add_patch(Rectangle((x + 0.03, y + 0.08), 0.94, 0.84, facecolor=fill, edgecolor="white"))
            ink = "#1f2328" if status == "not_seen" else "white"
            # What the tile's status rests on: the connections' verdicts, or only DNS when nothing connected.
            detail = counts_text(s.get("by_verdict")) or ("DNS only" if s.get("dns_queries") else "")
            detail = status.replace("_", " ") + (f" \u00b7 {detail}" if detail else "")
            ax.text(x + 0.5, y + 0.4, _label(s.get("host"), 28), ha="center", va="center", fontsize=7.5,
                    family="monospace", color=ink, fontweight="bold")
            ax.text(x + 0.5, y + 0.72, _label(detail, 40), ha="center", va="center", fontsize=7, color=ink)
        top += band
    order = [s for s in STATUS_ORDER if s in present] + [s for s in present if s not in STATUS_ORDER]
    ax.legend(handles=[Patch(facecolor=STATUS_COLORS.get(s, _OTHER_COLOR), label=s.replace("_", " "))
                       for s in order], loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=len(order),
              fontsize=8, frameon=False)
    edition = _report(source).get("edition")
    ax.set_title("Service status by section of Apple's document" + (f" ({_label(edition, 20)} edition)"
                                                                     if edition else ""), loc="left", fontsize=12)
    return fig


# ---------------------------------------------------------------- all figures, and for HTML

# (title, draw, has data) in the order the HTML report shows them.
_FIGURES: tuple[tuple[str, Callable[[Any], Figure], Callable[[Any], bool]], ...] = (
    ("Service status by section of Apple's document", status_grid, lambda s: bool(_grid_sections(s))),
    ("Connection attempts per service over time", timeline, lambda s: bool(_attempts(_report(s), False))),
    ("TCP handshake RTT per service", handshake_rtt, lambda s: bool(_rtt_rows(_report(s)))),
    ("DNS chains behind Apple names", cname_chains, lambda s: bool(_chains(_report(s)))),
)


def figures(source: Analysis | Mapping[str, Any]) -> dict[str, Figure]:
    """Every figure that has something to show, by title."""
    return {title: draw(source) for title, draw, has_data in _FIGURES if has_data(source)}


def figure_to_data_uri(fig: Figure, *, dpi: int = 100) -> str:
    """A PNG data: URI, the only kind of image the HTML report's Content-Security-Policy lets in."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def figures_for_html(source: Analysis | Mapping[str, Any], *, dpi: int = 100) -> dict[str, str]:
    """{title: "data:image/png;base64,..."} for `render_html(report, figures=...)`."""
    return {title: figure_to_data_uri(fig, dpi=dpi) for title, fig in figures(source).items()}


__all__: Sequence[str] = ("INSTALL_HINT", "PlotsUnavailable", "available", "cname_chains", "figure_to_data_uri",
                          "figures", "figures_for_html", "handshake_rtt", "status_grid", "timeline")
