"""Without the compiled core the package runs on the Python engine, and says so in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers_pcap import SAMPLE


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("APPLE_NET_")}
    e.update(env)
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True, text=True, env=e,
                          timeout=300, check=False)


def test_without_the_core_flows_run_on_the_python_engine_with_one_notice_line() -> None:
    r = _run("flows", str(SAMPLE), "--format", "jsonl", APPLE_NET_NO_CORE="1")
    assert r.returncode == 0, r.stderr
    notices = [line for line in r.stderr.splitlines() if "compiled core" in line]
    assert notices == ["apple-net: compiled core disabled by APPLE_NET_NO_CORE: using the Python engine "
                       "(slower; same results)"]
    assert any(json.loads(line).get("event_type") == "flow" for line in r.stdout.splitlines())


def test_asking_for_the_core_when_it_is_missing_is_a_one_line_error() -> None:
    r = _run("flows", str(SAMPLE), "--engine", "native", APPLE_NET_NO_CORE="1")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and "compiled core" in r.stderr


@pytest.mark.parametrize("engine", ["python", "native"])
def test_the_engine_option_is_honoured(engine: str) -> None:
    from analyzer import native

    if engine == "native" and not native.available():
        pytest.skip("compiled core not built")
    r = _run("flows", str(SAMPLE), "--engine", engine, "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    assert "compiled core" not in r.stderr
