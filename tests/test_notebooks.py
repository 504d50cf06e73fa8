"""The notebooks run top to bottom on the bundled captures, through the public API only.

They are stored without outputs (a diff shows code, not base64 images), with
one papermill-style cell tagged "parameters" whose defaults point at the
bundled captures. Execution is with nbclient in the notebooks' own folder, as
Jupyter and `papermill --cwd notebooks` run them.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel", reason="nbclient needs a Python kernel (pip install 'apple-net-analyzer[notebooks]')")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["investigate", "compare"]
# What a notebook may import: the package (analyze, Analysis), its plots and the comparison.
PUBLIC_NAMES = {"analyzer", "analyzer.analyze", "analyzer.Analysis", "analyzer.plots", "analyzer.compare",
                "analyzer.compare.compare"}
# Parameter defaults: the bundled captures, relative to the notebooks' folder.
DEFAULTS = {"investigate": {"capture": "../samples/mixed_session.pcap", "edition": "current", "all_services": False,
                            "html_report": None},
            "compare": {"before": "../samples/mixed_session.pcap", "after": "../samples/after_fix.pcap",
                        "edition": "current"}}
SECONDS = 30  # each notebook, on the bundled captures


def load(name: str) -> Any:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def code_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def python_source(cell: Any) -> str:
    """The cell as Python: IPython magics (%matplotlib inline) dropped."""
    return "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))


def run(nb: Any, seconds: float = SECONDS) -> tuple[Any, float]:
    started = time.monotonic()
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    elapsed = time.monotonic() - started
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    return nb, elapsed


def outputs(nb: Any, kind: str) -> list[str]:
    """Every output of a MIME type ('text/plain', 'image/png'...) or stream text ('stream')."""
    found = []
    for cell in code_cells(nb):
        for out in cell.outputs:
            if kind == "stream" and out.output_type == "stream":
                found.append(out.text)
            elif out.output_type in ("execute_result", "display_data") and kind in out.data:
                found.append(out.data[kind])
    return found


def inject(nb: Any, **values: object) -> None:
    """What papermill does: a cell after the "parameters" cell that overrides its defaults."""
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{k} = {v!r}" for k, v in values.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))


# ---------------------------------------------------------------- how they are stored

@pytest.mark.parametrize("name", NAMES)
def test_stored_without_outputs(name: str) -> None:
    nb = load(name)
    nbformat.validate(nb)
    for cell in code_cells(nb):
        assert cell.outputs == [], cell.source[:60]
        assert cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("name", NAMES)
def test_parameters_cell_defaults_to_bundled_captures(name: str) -> None:
    cells = code_cells(load(name))
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is cells[0]
    values = {node.targets[0].id: ast.literal_eval(node.value)
              for node in ast.parse(tagged[0].source).body if isinstance(node, ast.Assign)}
    assert values == DEFAULTS[name]
    for key in ("capture", "before", "after"):
        if key in values:
            assert (NOTEBOOKS / values[key]).is_file(), values[key]


@pytest.mark.parametrize("name", NAMES)
def test_only_the_public_api(name: str) -> None:
    used = set()  # dotted names of what the notebook imports from the package
    for cell in code_cells(load(name)):
        for node in ast.walk(ast.parse(python_source(cell))):
            if isinstance(node, ast.Import):
                used |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                used |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                pytest.fail(f"private attribute {node.attr} used")
    ours = {m for m in used if m.split(".")[0] == "analyzer"}
    assert ours <= PUBLIC_NAMES, ours - PUBLIC_NAMES
    assert "analyzer" in ours


# ---------------------------------------------------------------- they run

@pytest.mark.slow
def test_investigate_runs_on_the_bundled_capture() -> None:
    nb, _ = run(load("investigate"))
    html = "\n".join(outputs(nb, "text/html"))
    assert ("<b>6 Apple services blocked; 1 Apple service degraded; HTTPS inspection by an unidentified proxy on 1 service; "
            "2 Apple names filtered in DNS</b>") in html
    # status grid, timeline, handshake RTT, CNAME chains: drawn and shown inline.
    assert len(outputs(nb, "image/png")) == 4
    streams = "".join(outputs(nb, "stream"))
    # The evidence printout and the Wireshark commands for each finding.
    assert "C7fc3a57795352d07fb  tcp gsa.apple.com:443  ->  reset: reset after the ClientHello by the middlebox" in streams
    assert ("wireshark -r ../samples/mixed_session.pcap -Y 'ip.addr==10.77.0.2 && ip.addr==17.253.1.10 && "
            "tcp.port==57112 && tcp.port==443'") in streams
    assert "set html_report to a path to write the HTML report" in streams


@pytest.mark.slow
def test_investigate_takes_parameters(tmp_path: Path) -> None:
    """As `papermill -p capture ... -p html_report ...` would run it."""
    nb = load("investigate")
    report = tmp_path / "after.html"
    inject(nb, capture=str(ROOT / "samples" / "after_fix.pcap"), html_report=str(report))
    nb, _ = run(nb)
    assert "<b>2 Apple services blocked</b>" in "\n".join(outputs(nb, "text/html"))
    page = report.read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == 4
    assert "<title>2 Apple services blocked - apple-net-analyzer</title>" in page


@pytest.mark.slow
def test_compare_runs_on_the_bundled_captures() -> None:
    nb, _ = run(load("compare"))
    streams = "".join(outputs(nb, "stream"))
    assert streams.startswith("1 service worse; 2 services better; 6 services no longer seen; 1 finding appeared; "
                              "3 findings disappeared; 6 findings not retested\n")
    assert "  time.apple.com: working -> blocked. Allow UDP 123 to time.apple.com" in streams
    assert len(outputs(nb, "image/png")) == 3  # status grid before, after; timeline after
    (markdown,) = outputs(nb, "text/markdown")
    assert markdown.startswith("# Before/after: 1 service worse;")


def test_a_missing_capture_says_what_to_set() -> None:
    nb = load("investigate")
    inject(nb, capture="no-such-capture.pcap")
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="set `capture` to a pcap or pcapng file"):
        run(nb, seconds=120)
