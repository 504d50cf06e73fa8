"""`apple-net analyze --csv-of TABLE` and `--wide`: the options and what they write."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.report.csv_report import COLUMNS, DNS_COLUMNS, FINDING_COLUMNS, SERVICE_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "mixed_session.pcap"


def run(*args: str, columns: str = "80") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": columns}
    return subprocess.run([sys.executable, "-m", "analyzer", "analyze", str(SAMPLE), *args], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.mark.parametrize(("table", "columns", "rows"), [
    (None, COLUMNS, 24), ("flows", COLUMNS, 24), ("services", SERVICE_COLUMNS, 12), ("dns", DNS_COLUMNS, 13),
    ("findings", FINDING_COLUMNS, 10)])
def test_csv_of(table: str | None, columns: tuple[str, ...], rows: int) -> None:
    p = run("--format", "csv", *(("--csv-of", table) if table else ()))
    assert p.returncode == 0, p.stderr
    parsed = list(csv.reader(io.StringIO(p.stdout, newline="")))
    assert tuple(parsed[0]) == columns and len(parsed) == 1 + rows
    # What the file holds is said on stderr, never inside the data.
    assert f"CSV of the {table or 'flows'} table" in p.stderr


def test_csv_of_is_checked_and_documented() -> None:
    bad = run("--format", "csv", "--csv-of", "packets")
    assert bad.returncode == 2 and "--csv-of" in bad.stderr
    helptext = subprocess.run([sys.executable, "-m", "analyzer", "analyze", "--help"], capture_output=True,
                              text=True, timeout=60, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "--csv-of flows|services|dns|findings" in helptext
    assert "one row per connection" in helptext and "--wide" in helptext


def test_wide_shows_every_column_and_the_advice() -> None:
    narrow = run()
    wide = run("--wide")
    assert narrow.returncode == wide.returncode == 0
    header = next(line for line in wide.stdout.splitlines() if line.startswith("status "))
    assert header.split() == ["status", "section", "host", "ports", "flows", "attempts", "verdicts", "names",
                              "seen", "reason", "advice"]
    assert "Exclude identity.apple.com from HTTPS inspection" in wide.stdout.split("Findings (")[0]
    assert "Exclude identity.apple.com from HTTPS inspection" not in narrow.stdout.split("Findings (")[0]
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    # The paragraphs under the table still fit the terminal.
    assert max(len(line) for line in wide.stdout.split("Findings (")[1].splitlines()) <= 80
