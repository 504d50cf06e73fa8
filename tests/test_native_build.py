"""The compiled core builds with the oldest Rust it supports (Debian stable's) and passes its own tests.

`cargo test` with Debian's cargo and rustc (`/usr/bin`, installed by .ci/lab-deps.sh): the
crate must stay within rustc 1.63 (Cargo.toml `rust-version`) because that is the toolchain
`make` installs on a fresh Debian machine. The crate's own unit tests run in the same step,
in a debug build: overflow checks on (a wrapped length panics there), and no LTO to wait for.
A scratch target directory keeps this build apart from the installed one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_CARGO, DEBIAN_RUSTC = Path("/usr/bin/cargo"), Path("/usr/bin/rustc")
REQUIRE = os.environ.get("APPLE_NET_REQUIRE_CORE", "") not in ("", "0")

pytestmark = pytest.mark.slow


def _toolchain() -> tuple[str, str]:
    if DEBIAN_CARGO.exists() and DEBIAN_RUSTC.exists():
        return str(DEBIAN_CARGO), str(DEBIAN_RUSTC)
    if REQUIRE:
        pytest.fail("Debian's cargo and rustc are not installed (.ci/lab-deps.sh installs them)")
    pytest.skip("Debian's cargo and rustc are not installed")


def test_the_core_builds_and_passes_its_unit_tests_with_debian_stables_rust(tmp_path: Path) -> None:
    cargo, rustc = _toolchain()
    version = subprocess.run([rustc, "--version"], capture_output=True, text=True, check=True).stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARGO", "RUSTUP", "RUSTC"))}
    env.update(RUSTC=rustc, CARGO_TARGET_DIR=str(tmp_path / "target"), CARGO_NET_OFFLINE="true",
               CARGO_HOME=str(tmp_path / "cargo-home"), PATH="/usr/bin:/bin")
    r = subprocess.run([cargo, "test", "--offline", "--manifest-path", str(ROOT / "core" / "Cargo.toml")],
                       capture_output=True, text=True, env=env, timeout=1200, check=False)
    assert r.returncode == 0, f"{version}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    assert "test result: ok" in r.stdout
    shutil.rmtree(tmp_path / "target", ignore_errors=True)
