"""`make test` sets everything up itself: system packages as root, the lab skipped in one line otherwise.

The Makefile runs here for real, with its two outside effects swapped for stand-ins
through its own variables: SYSTEM_DEPS (the package installer's command, `bash .ci/lab-deps.sh`) and
VENV (whose bin/python records how pytest was called). AS_ROOT plays the uid.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB_SKIPPED = "lab skipped: not root"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def make_test(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
              pytest_rc: int = 0) -> subprocess.CompletedProcess[str]:
    venv = tmp_path / "venv"
    _script(venv / "bin" / "python",
            f'echo "pytest $*"; echo "require=${{APPLE_NET_REQUIRE_LAB:-unset}}"; exit {pytest_rc}')
    (venv / ".installed").touch()  # newer than pyproject.toml: the venv counts as set up
    deps = _script(tmp_path / "deps.sh", 'echo "system packages installed"')  # SYSTEM_DEPS: a command
    environ = {k: v for k, v in os.environ.items() if k not in ("APPLE_NET_REQUIRE_LAB", "MAKEFLAGS", "MAKELEVEL")}
    environ.update(env or {})
    return subprocess.run(["make", "-s", "-C", str(ROOT), "test", f"VENV={venv}", f"SYSTEM_DEPS={deps}", *args],
                          capture_output=True, text=True, timeout=60, env=environ)


def test_as_root_installs_the_system_packages_before_running_everything(tmp_path: Path) -> None:
    proc = make_test(tmp_path, "AS_ROOT=1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "system packages installed"
    (run,) = [line for line in lines if line.startswith("pytest ")]
    assert run == "pytest -m pytest -q -p no:cacheprovider"  # the whole suite: no marker filter
    assert "require=1" in lines  # the lab gate: a lab that cannot run fails
    assert LAB_SKIPPED not in proc.stdout


def test_as_root_the_lab_gate_can_be_relaxed(tmp_path: Path) -> None:
    proc = make_test(tmp_path, "AS_ROOT=1", env={"APPLE_NET_REQUIRE_LAB": "0"})
    assert "require=0" in proc.stdout.splitlines()


def test_not_root_skips_the_lab_in_one_line_at_the_end(tmp_path: Path) -> None:
    proc = make_test(tmp_path, "AS_ROOT=0")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "system packages installed" not in lines
    assert "pytest -m pytest -q -p no:cacheprovider -m not lab" in lines
    assert lines[-1].startswith(LAB_SKIPPED)
    assert sum("lab" in line for line in lines if not line.startswith("pytest ")) == 1
    assert proc.stderr == ""


def test_not_root_a_failing_suite_still_fails_and_still_says_why_the_lab_is_missing(tmp_path: Path) -> None:
    proc = make_test(tmp_path, "AS_ROOT=0", pytest_rc=1)
    assert proc.returncode != 0
    assert proc.stdout.splitlines()[-1].startswith(LAB_SKIPPED)


def test_not_root_but_lab_required_runs_the_lab_tests(tmp_path: Path) -> None:
    # Whoever demands the lab gets the lab tests, which then fail (lab_gate) instead of vanishing.
    proc = make_test(tmp_path, "AS_ROOT=0", env={"APPLE_NET_REQUIRE_LAB": "1"})
    assert "pytest -m pytest -q -p no:cacheprovider" in proc.stdout.splitlines()
    assert LAB_SKIPPED not in proc.stdout


def test_the_uid_decides_by_default(tmp_path: Path) -> None:
    proc = make_test(tmp_path)
    assert ("system packages installed" in proc.stdout) == (os.geteuid() == 0)
    assert (LAB_SKIPPED in proc.stdout) == (os.geteuid() != 0)


def test_ci_runs_exactly_the_readme_command_and_has_no_package_list_of_its_own() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    # The README's command, then only the check that a machine without Rust still installs and
    # passes on the Python engine (issue 15), which needs the venv `make test` made.
    assert commands[-3:] == ["make test", "unset APPLE_NET_REQUIRE_CORE", "bash .ci/no-rust-check.sh"]
    assert "    make test\n" in (ROOT / "README.md").read_text()
    assert "lab-deps" not in "\n".join(commands)  # make test runs it
    installs = [c for c in commands if "apt-get install" in c]
    assert installs == ["apt-get install -y -qq --no-install-recommends make >/dev/null"]


def test_one_package_list_holds_what_the_lab_and_the_other_tests_use() -> None:
    proc = subprocess.run(["bash", str(ROOT / ".ci" / "lab-deps.sh"), "--list"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    listed = proc.stdout.split()
    assert len(listed) == len(set(listed))
    # The lab's servers and tools, and what CI used to install apart from them.
    assert {"tcpdump", "nginx", "squid-openssl", "chrony", "dnsmasq", "unbound", "iptables", "conntrack", "ethtool",
            "tshark", "libndpi-bin", "chromium", "fonts-dejavu-core", "python3-venv", "make"} <= set(listed)


def test_as_root_the_packages_come_before_the_venv_that_needs_python3_venv(tmp_path: Path) -> None:
    proc = subprocess.run(["make", "-n", "-C", str(ROOT), "test", "AS_ROOT=1", f"VENV={tmp_path / 'fresh'}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    deps = lines.index("bash .ci/lab-deps.sh")
    venv = next(i for i, line in enumerate(lines) if " -m venv " in line)
    tests = next(i for i, line in enumerate(lines) if " -m pytest " in line)
    assert deps < venv < tests
