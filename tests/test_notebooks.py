"""The notebooks run top to bottom on the bundled captures, through the public API only.

They are stored without outputs (a diff shows code, not base64 images), with
one papermill-style cell tagged "parameters" whose defaults (None) mean the
bundled captures, found from the package. Execution is with nbclient in a
folder that has no samples/ (they must run from any folder), and with the exact
commands of the README's Notebooks section (papermill, jupyter nbconvert).
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

import analyzer

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
# Parameter defaults: None means the bundled captures (analyzer.samples_path).
DEFAULTS = {"investigate": {"capture": None, "edition": "current", "all_services": False, "html_report": None},
            "compare": {"before": None, "after": None, "edition": "current"}}
SAMPLE = ROOT / "samples" / "mixed_session.pcap"
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
    # Run in a folder without samples/: the defaults must not depend on the working folder.
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": tempfile.gettempdir()}}).execute()
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
    sources = "\n".join(c.source for c in cells)
    for sample in re.findall(r'samples_path\("([^"]+)"\)', sources):
        assert analyzer.samples_path(sample).is_file()
    assert sources.count("samples_path(") == (1 if name == "investigate" else 2)


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
    assert (f"wireshark -r {shlex.quote(str(SAMPLE))} -Y 'ip.addr==10.77.0.2 && ip.addr==17.253.1.10 && "
            "tcp.port==57112 && tcp.port==443'") in streams
    assert "set html_report to a path to write the HTML report" in streams
    tables = "\n".join(outputs(nb, "text/html") + outputs(nb, "text/plain"))
    assert "<td>443, 80, 5223, 2197</td>" in tables  # APNs' ports as text, not a list
    assert "<td>intercepted 1</td>" in tables  # verdict counts, not a dict
    assert not re.search(r"<td>(\[\d|\[\]|\{\}|\[')", tables), "a list or dict shown as Python"


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


# ---------------------------------------------------------------- the README's commands

README_TOOLS = {"papermill": "papermill", "jupyter lab": "jupyterlab", "jupyter nbconvert": "nbconvert"}


def readme_commands() -> list[str]:
    """The command lines of the README's Notebooks section (its indented block)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Notebooks", 1)[1].split("\n### ", 1)[0]
    return [line[4:].split("  #", 1)[0].strip() for line in section.splitlines() if line.startswith("    ")]


def notebooks_extra() -> set[str]:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["notebooks"]
    return {re.split(r"[<>=!~\[ ]", req, maxsplit=1)[0].lower() for req in extra}


def test_the_extra_installs_every_tool_the_instructions_use() -> None:
    commands = readme_commands()
    assert "pip install '.[notebooks]'" in commands
    instructions = "\n".join(commands + [c.source for n in NAMES for c in load(n).cells if c.cell_type == "markdown"])
    used = {package for tool, package in README_TOOLS.items() if re.search(rf"`?{tool} ", instructions)}
    assert used == set(README_TOOLS.values())  # the README shows each of them
    assert used | {"nbclient", "ipykernel", "matplotlib"} <= notebooks_extra()


@pytest.mark.slow
def test_the_readme_commands_run_from_another_folder(tmp_path: Path) -> None:
    """Exactly the README's papermill and nbconvert lines, in a folder with the notebooks but no samples/."""
    tools = Path(sys.executable).parent
    if not (tools / "papermill").exists() or not (tools / "jupyter-nbconvert").exists():
        pytest.skip("papermill and nbconvert are not installed (pip install '.[notebooks]')")
    (tmp_path / "notebooks").symlink_to(NOTEBOOKS)
    shutil.copy(ROOT / "samples" / "mixed_session.pcap", tmp_path / "problem.pcap")
    shutil.copy(ROOT / "samples" / "after_fix.pcap", tmp_path / "fixed.pcap")
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"}
    runnable = [c for c in readme_commands() if c.startswith(("papermill ", "jupyter nbconvert "))]
    assert len(runnable) == 3, runnable
    for command in runnable:
        proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-2000:]}"
    investigated = nbformat.read(tmp_path / "problem.ipynb", as_version=4)
    assert ("<b>6 Apple services blocked; 1 Apple service degraded; HTTPS inspection by an unidentified proxy on "
            "1 service; 2 Apple names filtered in DNS</b>") in "\n".join(outputs(investigated, "text/html"))
    page = (tmp_path / "problem.html").read_text(encoding="utf-8")
    assert "wireshark -r problem.pcap -Y" in page and len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 4
    compared = nbformat.read(tmp_path / "change.ipynb", as_version=4)
    assert "".join(outputs(compared, "stream")).startswith("1 service worse; 2 services better;")
