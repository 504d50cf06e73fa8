"""The HTML report of a real analysis, with its figures, in headless Chromium.

`Analysis.to_html()` of the bundled capture is opened from a file:// URL with
no network: the DOM Chromium built is checked (the script ran under the page's
Content-Security-Policy, the headline, the services table, the four figures),
then a 1280x2000 screenshot, what a user sees first, is checked for the answer
at the top (headline text, the status badges in their colours, the services
table below), and a tall screenshot for the figures actually being painted.

Needs Debian's `chromium` (apt-get install -y chromium); skipped without it.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

import numpy as np
from matplotlib.image import imread

import analyzer
from analyzer import plots

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "mixed_session.pcap"
# The report's palette (analyzer/report/html.py): the status badges.
BADGES = {"blocked": (0xCF, 0x22, 0x2E), "intercepted": (0x82, 0x50, 0xDF), "degraded": (0x9A, 0x67, 0x00),
          "working": (0x1A, 0x7F, 0x37)}
INK = (0x1F, 0x23, 0x28)  # body text


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(chromium() is None,
                                 reason="headless Chromium not installed (Debian: apt-get install -y chromium)")]


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    browser = chromium()
    assert browser is not None
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions", f"--user-data-dir={profile}",
         "--hide-scrollbars", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True)


def screenshot(page: Path, tmp: Path, name: str, height: int) -> Any:
    shot = tmp / f"{name}.png"
    browse(page, tmp / f"profile-{name}", f"--screenshot={shot}", f"--window-size=1280,{height}")
    try:
        from PIL import Image
    except ImportError:  # matplotlib reads PNG too, only slower (floats)
        return np.rint(imread(shot)[..., :3] * 255).astype(np.int16)
    with Image.open(shot) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


def near(pixels: Any, colour: tuple[int, int, int], tolerance: int = 6) -> int:
    """How many pixels are within `tolerance` of a colour (room for colour management)."""
    return int((np.abs(pixels - np.array(colour, dtype=np.int16)).max(axis=-1) <= tolerance).sum())


class DOM(HTMLParser):
    """The few things the test reads back from the serialised DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.html_attrs: dict[str, str | None] = {}
        self.headline = ""
        self.service_rows: list[str | None] = []
        self.service_count = ""
        self.figures: list[dict[str, str | None]] = []
        self.filters = 0
        self.copy_buttons = 0
        self.nav: list[str] = []

    def inside(self, tag: str, **attrs: str) -> bool:
        return any(t == tag and all(a.get(k) == v for k, v in attrs.items()) for t, a in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.html_attrs = a
        if tag == "tr" and self.inside("table", id="services-table") and self.inside("tbody"):
            self.service_rows.append(a.get("data-status"))
        if tag == "img" and self.inside("section", id="figures"):
            self.figures.append(a)
        if tag == "code" and a.get("class") == "filter":
            self.filters += 1
        if tag == "button" and a.get("class") == "copy":
            self.copy_buttons += 1
        if tag not in ("img", "input", "meta", "br", "link"):
            self.stack.append((tag, a))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.inside("p", **{"class": "headline"}):
            self.headline += data
        if self.inside("span", id="service-count"):
            self.service_count += data
        if self.inside("nav") and self.inside("a"):
            self.nav.append(data)


@pytest.fixture(scope="module")
def analysis() -> analyzer.Analysis:
    return analyzer.analyze(SAMPLE)


@pytest.fixture(scope="module")
def page(analysis: analyzer.Analysis, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(analysis.to_html(), encoding="utf-8")
    return path


def test_dom_has_the_answer_services_and_figures(analysis: analyzer.Analysis, page: Path, tmp_path: Path) -> None:
    dom = DOM()
    dom.feed(browse(page, tmp_path / "profile", "--virtual-time-budget=3000", "--dump-dom").stdout)
    # Our script ran under the page's Content-Security-Policy: it marks the document and wires the controls.
    assert dom.html_attrs.get("data-js") == "ready" and dom.html_attrs.get("class") == "js"
    assert dom.service_count == "12 of 12 shown"
    assert dom.copy_buttons == dom.filters > 0
    assert dom.headline == analysis.headline
    assert dom.service_rows == ["blocked"] * 6 + ["intercepted", "degraded"] + ["working"] * 4
    assert dom.nav == ["Services", "Findings", "Figures", "Flows", "DNS", "Captures"]
    assert [f["alt"] for f in dom.figures] == list(plots.figures(analysis))
    assert all((f["src"] or "").startswith("data:image/png;base64,") for f in dom.figures)


def test_first_screen_shows_the_answer(page: Path, tmp_path: Path) -> None:
    pixels = screenshot(page, tmp_path, "first", 2000)
    assert pixels.shape == (2000, 1280, 3)
    assert pixels.std() > 20  # not a blank page
    top = pixels[:300]
    # The headline in dark ink within the first 130 pixels, then the badges: one per status, in its colour.
    assert near(pixels[:130], INK, tolerance=30) > 2000
    for status, colour in BADGES.items():
        assert near(top, colour) > 300, status
    # Below: the services table with its status badges (6 blocked rows) on the same first screen.
    assert near(pixels[300:1400], BADGES["blocked"]) > 6 * 300


def test_figures_are_painted(analysis: analyzer.Analysis, page: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.html"
    bare.write_text(analysis.to_html(figures={}), encoding="utf-8")
    with_figures = screenshot(page, tmp_path, "tall", 9000)
    without = screenshot(bare, tmp_path, "bare", 9000)
    # The status grid's working tiles and the plots' green markers: thousands of green pixels more.
    green = near(with_figures, BADGES["working"]) - near(without, BADGES["working"])
    purple = near(with_figures, BADGES["intercepted"]) - near(without, BADGES["intercepted"])
    assert green > 20000 and purple > 3000
