"""The DataFrames read as text: no Python lists or dicts in a cell; the bundled samples are found from any folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import analyzer
from analyzer.analysis import readable
from analyzer.errors import AnalyzerError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def a() -> analyzer.Analysis:
    return analyzer.analyze(ROOT / "samples" / "mixed_session.pcap")


@pytest.mark.parametrize("table", ["services", "flows", "dns", "findings"])
def test_no_cell_holds_a_list_or_a_dict(a: analyzer.Analysis, table: str) -> None:
    df = getattr(a, table)
    assert len(df) > 0
    for column in df.columns:
        kinds = {type(v).__name__ for v in df[column] if isinstance(v, (list, tuple, dict, set))}
        assert not kinds, f"{table}.{column} holds {kinds}"
        df[column].value_counts(dropna=False)  # hashable: what pandas users do first
    df.drop_duplicates()


def test_lists_and_counts_read_as_text(a: analyzer.Analysis) -> None:
    services = a.services.set_index("id")
    report = {s["id"]: s for s in a.report["services"]}
    for sid, row in services.iterrows():
        assert row["ports"] == ", ".join(map(str, report[sid]["ports"]))
        assert row["by_verdict"] == ", ".join(f"{v} {n}" for v, n in report[sid]["by_verdict"].items())
    assert "intercepted 1" in set(services["by_verdict"])
    assert "443, 80" in set(services["ports"])
    # The report keeps the structure the DataFrames flatten.
    assert all(isinstance(s["ports"], list) for s in a.report["services"])
    chains = set(a.dns["chain"])
    assert "mesu.apple.com -> mesu.apple.com.akadns.net -> mesu.apple.com.edgekey.net" in chains
    evidence = a.findings["evidence"][a.findings["evidence"].str.contains(" | ", regex=False)]
    assert len(evidence) > 0  # several evidence lines of one finding, joined


def test_readable() -> None:
    assert readable([443]) == "443"
    assert readable([443, 80]) == "443, 80"
    assert readable([]) == ""
    assert readable({}) == ""
    assert readable({"ok": 3, "reset": 1}) == "ok 3, reset 1"
    assert readable(["a; b", "c"], " | ") == "a; b | c"
    assert readable({"tried": 2, "failed_clients": ["10.0.0.1", "10.0.0.2"], "none": None}) == \
        "tried 2, failed_clients 10.0.0.1/10.0.0.2"
    assert readable(None) is None and readable(7) == 7 and readable("x") == "x"


def test_samples_are_found_from_any_folder(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "import analyzer; print(analyzer.samples_path('after_fix.pcap'))"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == ROOT / "samples" / "after_fix.pcap"


def test_a_missing_sample_names_the_path() -> None:
    with pytest.raises(AnalyzerError, match=r"samples/no-such\.pcap: no such sample"):
        analyzer.samples_path("no-such.pcap")
