"""A lab that cannot run is a skip on a developer's machine and a failure where it is required (no root needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab_gate import REQUIRE_ENV, lab_required, unavailable_outcome

ROOT = Path(__file__).resolve().parents[2]
ONE_LAB_TEST = "tests/lab/test_lab_scenarios.py::test_syn_blackholed_retransmits_one_syn_until_the_client_gives_up"


@pytest.mark.parametrize(("value", "required"), [
    (None, False), ("", False), ("0", False), ("no", False), ("false", False),
    ("1", True), ("yes", True), ("true", True), (" 1 ", True),
])
def test_which_values_require_the_lab(value: str | None, required: bool) -> None:
    env = {} if value is None else {REQUIRE_ENV: value}
    assert lab_required(env) is required


def test_an_unavailable_lab_fails_only_where_required() -> None:
    reason = "the lab needs root (network namespaces, iptables, tcpdump)"
    outcome, message = unavailable_outcome(reason, {REQUIRE_ENV: "1"})
    assert outcome == "fail" and reason in message and REQUIRE_ENV in message
    outcome, message = unavailable_outcome(reason, {})
    assert outcome == "skip" and reason in message


def _run_one_lab_test(tmp_path: Path, require: str) -> subprocess.CompletedProcess[str]:
    # An empty PATH hides `ip` (and, for root, nothing else is probed first): the lab cannot run, whoever we are.
    # The lab fixture decides before building anything, so this takes as long as collecting one file.
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_ENV}
    env.update(PATH=str(tmp_path), PYTHONPATH=str(ROOT), **{REQUIRE_ENV: require})
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rsE", ONE_LAB_TEST],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_the_lab_fixture_fails_the_run_when_required(tmp_path: Path) -> None:
    proc = _run_one_lab_test(tmp_path, "1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "lab required" in proc.stdout and "1 error" in proc.stdout, proc.stdout


def test_the_lab_fixture_skips_when_not_required(tmp_path: Path) -> None:
    proc = _run_one_lab_test(tmp_path, "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lab skipped" in proc.stdout and "1 skipped" in proc.stdout, proc.stdout


def _make_test_env(extra: dict[str, str]) -> str:
    # `make test` with PY replaced by printenv: the recipe's environment, without installing or running anything.
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_ENV} | extra
    # SYSTEM_DEPS=true: as root `make test` would first install the system packages (.ci/lab-deps.sh).
    proc = subprocess.run(["make", "-s", "-o", "venv", "test", "SYSTEM_DEPS=true", f"PY=printenv {REQUIRE_ENV} #"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=True)
    return proc.stdout.strip()


def test_make_test_requires_the_lab_as_root_only() -> None:
    assert _make_test_env({}) == ("1" if os.geteuid() == 0 else "0")
    assert _make_test_env({REQUIRE_ENV: "0"}) == "0"  # a root without netns can say so


def test_ci_requires_the_lab_before_running_the_tests() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert lines.index(f"export {REQUIRE_ENV}=1") < lines.index("make test")
