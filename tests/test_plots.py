"""Figures from the public API, over the bundled lab capture samples/mixed_session.pcap.

What the capture holds is known from the lab that made it (samples/README.md):
which services work, which are blocked and how, the mesu.apple.com CNAME
chain, the DNS sinkhole, NXDOMAIN and unanswered lookup. The tests read the
drawn artists back (tick labels, legend entries, text boxes, tile colours), so
a figure that shows the wrong thing fails, not only one that crashes.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from matplotlib import cbook
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

import analyzer
from analyzer import plots
from analyzer.errors import AnalyzerError

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "mixed_session.pcap"
NO_APPLE = ROOT / "tests" / "fixtures" / "corpus" / "zeek" / "testing" / "btest" / "Traces" / "tls" / "tls1.2.pcap"
HOSTILE = ROOT / "tests" / "fixtures" / "reports" / "hostile.json"

# Rows of the timeline: Apple services in the order the session first touched them (DNS lookup first).
TIMELINE_ROWS = ["gs.apple.com", "ocsp.apple.com", "time.apple.com", "*.push.apple.com", "mesu.apple.com",
                 "identity.apple.com", "gsa.apple.com", "setup.icloud.com", "gdmf.apple.com", "xp.apple.com",
                 "deviceenrollment.apple.com", "albert.apple.com"]


@pytest.fixture(scope="module")
def analysis() -> analyzer.Analysis:
    return analyzer.analyze(SAMPLE)


def _texts(fig: Figure) -> list[str]:
    """Text drawn in the axes (arrows are Annotations without text: left out)."""
    return [t.get_text() for ax in fig.axes for t in ax.texts if t.get_text()]


def _legend(fig: Figure) -> list[str]:
    legend = fig.axes[0].get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


def _render(fig: Figure) -> None:
    """Draw for real: mathtext and layout errors surface only here."""
    fig.savefig(io.BytesIO(), format="png", dpi=50)


def _png_size(uri: str) -> tuple[int, int]:
    data = base64.b64decode(uri.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ---------------------------------------------------------------- timeline

def test_timeline_rows_markers_and_legend(analysis: analyzer.Analysis) -> None:
    fig = plots.timeline(analysis)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == TIMELINE_ROWS
    assert _legend(fig) == ["ok", "no_response", "refused", "reset", "intercepted", "DNS ok", "DNS nxdomain",
                            "DNS no_response", "DNS sinkholed"]
    # Ports written beside the first attempt of each kind: the APNs fallback from 5223 to 443 reads at a glance.
    assert sorted(_texts(fig)) == sorted(["tcp/443", "tcp/80", "udp/123", "tcp/5223", "tcp/443", "tcp/443",
                                          "tcp/443", "tcp/443", "tcp/443", "tcp/443"])
    assert ax.get_xlabel() == "seconds since the first packet (Wireshark's relative time)"
    _render(fig)


def test_timeline_blackholed_syn_is_a_long_bar(analysis: analyzer.Analysis) -> None:
    """APNs on 5223: SYN at 0.311 s, retransmitted, abandoned; tshark shows frames 42-44 at 0.311/1.335/2.359 s."""
    ax = plots.timeline(analysis).axes[0]
    push = TIMELINE_ROWS.index("*.push.apple.com")
    bars = [seg for c in ax.collections if isinstance(c, LineCollection) for seg in c.get_segments()]
    on_row = [seg for seg in bars if seg[0][1] == push]
    assert len(on_row) == 2  # 5223 blackholed, then the 443 fallback that worked
    bar = max(on_row, key=lambda seg: seg[1][0] - seg[0][0])
    (x0, _), (x1, _) = bar
    assert x0 == pytest.approx(0.3107, abs=0.001)
    assert x1 == pytest.approx(2.359, abs=0.01)
    # Only the blackholed SYN lasted long enough to draw a visible bar.
    assert all(seg[1][0] - seg[0][0] < 0.05 for seg in bars if seg is not bar)


def test_timeline_include_other_adds_the_non_apple_server(analysis: analyzer.Analysis) -> None:
    ax = plots.timeline(analysis, include_other=True).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == TIMELINE_ROWS + ["other: www.example.net"]


# ---------------------------------------------------------------- handshake RTT

def test_handshake_rtt_values_and_missing_synacks(analysis: analyzer.Analysis) -> None:
    fig = plots.handshake_rtt(analysis)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    # Fastest first; the connections with no SYN-ACK at the bottom.
    assert labels == ["gs.apple.com  tcp/443", "identity.apple.com  tcp/443", "ocsp.apple.com  tcp/80",
                      "mesu.apple.com  tcp/443", "*.push.apple.com  tcp/443", "gsa.apple.com  tcp/443",
                      "*.push.apple.com  tcp/5223", "gdmf.apple.com  tcp/443", "setup.icloud.com  tcp/443"]
    points = {round(y): x for c in ax.collections if isinstance(c, PathCollection) for x, y in c.get_offsets()}
    # gsa.apple.com: SYN at 3.391289 s, SYN-ACK at 3.391413 s in tshark: 0.124 ms.
    assert points[labels.index("gsa.apple.com  tcp/443")] == pytest.approx(0.124, abs=0.002)
    assert set(points) == set(range(6))
    assert sorted(_texts(fig)) == ["no SYN-ACK: no_response 1", "no SYN-ACK: refused 1", "no SYN-ACK: refused 1"]
    assert _legend(fig) == ["ok", "reset", "intercepted"]
    assert ax.get_xscale() == "linear"
    _render(fig)


# ---------------------------------------------------------------- CNAME chains

def test_cname_chains_show_the_cdn_chain_and_each_failure(analysis: analyzer.Analysis) -> None:
    fig = plots.cname_chains(analysis)
    texts = _texts(fig)
    for box in ["mesu.apple.com  (A)", "mesu.apple.com.akadns.net", "mesu.apple.com.edgekey.net", "17.253.1.12",
                "xp.apple.com  (A)", "sinkholed: 0.0.0.0", "deviceenrollment.apple.com  (A)",
                "NXDOMAIN (no address)", "albert.apple.com  (A)", "no answer", "gs.apple.com  (A)", "17.253.1.10"]:
        assert box in texts, box
    # 12 Apple names: a query box and an answer box each, plus mesu's two CNAMEs and four column titles.
    assert len(texts) == 12 * 2 + 2 + 4
    assert texts[:4] == ["name looked up", "CNAME", "CNAME", "answer"]
    arrows = [t for t in fig.axes[0].texts if not t.get_text()]
    assert len(arrows) == 12 + 2  # into each answer, and into each of mesu's CNAMEs
    assert not any("example.net" in t for t in texts)
    assert "www.example.net  (A)" in _texts(plots.cname_chains(analysis, include_other=True))
    _render(fig)


# ---------------------------------------------------------------- status grid

def _tiles(fig: Figure) -> list[str]:
    return [to_hex(p.get_facecolor()) for p in fig.axes[0].patches if isinstance(p, Rectangle)]


def test_status_grid_sections_in_document_order(analysis: analyzer.Analysis) -> None:
    fig = plots.status_grid(analysis)
    texts = _texts(fig)
    apple_id = "Apple Account (Apple ID)"
    order = ["Device setup", "Device management", "Software updates", "Certificate validation", apple_id]
    assert [t for t in texts if t in order] == order
    tiles = _tiles(fig)
    assert sorted(tiles) == sorted([plots.STATUS_COLORS["blocked"]] * 6 + [plots.STATUS_COLORS["working"]] * 4
                                   + [plots.STATUS_COLORS["intercepted"], plots.STATUS_COLORS["degraded"]])
    assert "blocked \u00b7 reset 1" in texts  # gsa.apple.com
    assert "blocked \u00b7 DNS only" in texts  # xp, deviceenrollment, albert: nothing ever connected
    assert "degraded \u00b7 no_response 1, ok 1" in texts
    assert _legend(fig) == ["blocked", "intercepted", "degraded", "working"]
    _render(fig)


def test_status_grid_of_a_bare_report_keeps_first_seen_order(analysis: analyzer.Analysis) -> None:
    fig = plots.status_grid(analysis.report)  # no catalogue: sections in the order the report lists them
    first = [s["section_en"] for s in analysis.report["services"]]
    order = list(dict.fromkeys(first))
    texts = [t.replace("\n", " ") for t in _texts(fig)]
    assert [t for t in texts if t in order] == order
    assert len(_tiles(fig)) == 12


def test_status_grid_with_all_services_shows_the_whole_document() -> None:
    full = analyzer.analyze(SAMPLE, all_services=True)
    tiles = _tiles(plots.status_grid(full))
    assert len(tiles) == len(full.report["services"]) > 150
    assert tiles.count(plots.STATUS_COLORS["not_seen"]) == len(tiles) - 12


# ---------------------------------------------------------------- all figures, HTML

def test_figures_for_html_are_png_data_uris(analysis: analyzer.Analysis) -> None:
    uris = plots.figures_for_html(analysis, dpi=50)
    assert list(uris) == ["Service status by section of Apple's document", "Connection attempts per service over time",
                          "TCP handshake RTT per service", "DNS chains behind Apple names"]
    for uri in uris.values():
        assert re.fullmatch(r"data:image/png;base64,[A-Za-z0-9+/]+={0,2}", uri)
    # 12 x 4.3 inches at 50 dpi for the grid of 12 services in 5 section bands.
    assert _png_size(uris["Service status by section of Apple's document"]) == (600, 215)


def test_png_is_not_blank(analysis: analyzer.Analysis) -> None:
    from matplotlib.image import imread

    uri = plots.figure_to_data_uri(plots.timeline(analysis), dpi=40)
    pixels = imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert pixels.std() > 0.05


def test_figures_are_not_pyplot_figures(analysis: analyzer.Analysis) -> None:
    """No pyplot registry: nothing to close, nothing kept alive between calls."""
    for fig in plots.figures(analysis).values():
        assert fig.canvas.manager is None


def test_analysis_to_html_embeds_figures(analysis: analyzer.Analysis, monkeypatch: pytest.MonkeyPatch) -> None:
    html = analysis.to_html()
    section = html[html.index('<section id="figures">'):]
    section = section[:section.index("</section>")]
    assert section.count('<img src="data:image/png;base64,') == 4
    assert '<a href="#figures">Figures</a>' in html
    assert 'id="figures"' not in analysis.to_html(figures={})
    given = analysis.to_html(figures={"Mine": plots.figure_to_data_uri(plots.status_grid(analysis), dpi=20)})
    assert given.count("data:image/png;base64,") == 1 and "<figcaption>Mine</figcaption>" in given
    # matplotlib missing: the report is still written, without figures.
    monkeypatch.setattr(plots, "available", lambda: False)
    assert 'id="figures"' not in analysis.to_html()


def test_missing_matplotlib_gives_the_install_hint(analysis: analyzer.Analysis,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # what `import` sees when it is not installed
    assert plots.available() is False
    with pytest.raises(plots.PlotsUnavailable, match=re.escape("pip install 'apple-net-analyzer[plots]'")) as err:
        plots.timeline(analysis)
    assert isinstance(err.value, ImportError) and isinstance(err.value, AnalyzerError)
    assert 'id="figures"' not in analysis.to_html()


# ---------------------------------------------------------------- nothing to show, hostile strings

def test_a_capture_without_apple_traffic_draws_placeholders() -> None:
    a = analyzer.analyze(NO_APPLE)
    assert plots.figures(a) == {}
    assert plots.figures_for_html(a) == {}
    for draw, message in [(plots.timeline, "No connection attempt to an Apple service in this capture"),
                          (plots.handshake_rtt, "No TCP connection to an Apple service in this capture"),
                          (plots.cname_chains, "No DNS lookup of an Apple name in this capture"),
                          (plots.status_grid, "No Apple service in this report")]:
        fig = draw(a)
        assert [t.get_text() for t in fig.texts] == [message]
        _render(fig)


def _hostile_report(analysis: analyzer.Analysis) -> dict[str, Any]:
    """The real report with wire strings replaced by hostile ones: mathtext, controls, a 300-character name."""
    report = copy.deepcopy(analysis.report)
    wire = json.loads(HOSTILE.read_text())["services"][0]["host"]
    evil = ["$\\frac{1}{$", "a$b$c\x1b[31m\u202e", "x" * 300, wire]
    for i, s in enumerate(report["services"]):
        s["host"] = evil[i % len(evil)]
        s["section_en"] = evil[(i + 1) % len(evil)]
    for i, d in enumerate(report["dns"]):
        d["query"] = evil[i % len(evil)]
        d["chain"] = [d["query"], "$^{$.cdn.example", "y" * 200]
        d["addresses"] = ["$$", *d["addresses"]]
    for f in report["flows"]:
        f["sni"] = evil[0]
    return report


@pytest.mark.parametrize("draw", [plots.timeline, plots.handshake_rtt, plots.cname_chains, plots.status_grid])
def test_wire_strings_are_shown_literally(analysis: analyzer.Analysis, draw: Any) -> None:
    fig = draw(_hostile_report(analysis))
    labels = [t.get_text() for ax in fig.axes for t in [*ax.texts, *ax.get_yticklabels()]]
    assert labels
    for text in labels:
        assert not cbook.is_math_text(text), text  # no "$...$" left for mathtext to read
        assert "\x1b" not in text and "\u202e" not in text
        assert all(len(line) <= 60 for line in text.split("\n")), text
    _render(fig)


def test_wire_strings_in_hostile_fixture_render() -> None:
    report = json.loads(HOSTILE.read_text())
    for fig in plots.figures(report).values():
        _render(fig)


def test_rejects_what_is_not_a_report() -> None:
    with pytest.raises(TypeError, match="expected an Analysis or its report dict"):
        plots.timeline(["not", "a", "report"])  # type: ignore[arg-type]
