"""The lab runs once per test session, into a temporary directory, and every lab test reads its captures.

Skips (with the reason) only where the lab cannot exist: not root, or no
`ip netns`; and fails instead where the lab is expected (APPLE_NET_REQUIRE_LAB=1,
set by .ci/run and by `make test` as root, see lab_gate.py). Missing lab software
is an error, not a skip: CI installs it with .ci/lab-deps.sh and must run these tests.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from analyzer.lab.netns import netns_available
from analyzer.lab.runner import ScenarioResult, run_lab

from lab_gate import unavailable_outcome


@dataclass(frozen=True, slots=True)
class LabRun:
    out: Path
    results: dict[str, ScenarioResult]
    seconds: float


_RUNS: list[LabRun] = []  # the one run, for the terminal summary
_LAB_TESTS: set[str] = set()  # node ids of tests marked lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> LabRun:
    reason = netns_available()
    if reason:
        outcome, message = unavailable_outcome(reason, os.environ)
        if outcome == "fail":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("lab")
    started = time.monotonic()
    results = run_lab(out)
    run = LabRun(out, {r.name: r for r in results}, time.monotonic() - started)
    _RUNS.append(run)
    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _LAB_TESTS.update(item.nodeid for item in items if item.get_closest_marker("lab"))
    # `-m 'not lab'` is how a run leaves the lab out: a test that needs the lab must carry the marker.
    unmarked = [item.nodeid for item in items
                if "lab" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("lab")]
    if unmarked:
        raise pytest.UsageError(f"tests use the lab fixture without @pytest.mark.lab: {unmarked[:5]}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    stats = terminalreporter.stats
    lab_tests = {outcome: sum(1 for r in stats.get(outcome, []) if getattr(r, "nodeid", None) in _LAB_TESTS)
                 for outcome in ("passed", "failed", "error", "skipped")}
    if not any(lab_tests.values()):
        return
    if _RUNS:
        run = _RUNS[0]
        as_built = sum(1 for r in run.results.values() if r.ok)
        line = (f"lab: {len(run.results)} scenarios ran ({as_built} as built) in {run.seconds:.1f} s; "
                f"lab tests: {lab_tests['passed']} passed, {lab_tests['failed'] + lab_tests['error']} failed, "
                f"{lab_tests['skipped']} skipped")
    else:
        line = (f"lab: no scenario ran; lab tests: {lab_tests['skipped']} skipped, "
                f"{lab_tests['failed'] + lab_tests['error']} failed")
    terminalreporter.write_sep("-", line)
