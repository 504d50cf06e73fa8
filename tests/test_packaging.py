"""A normal (non-editable) install ships the signatures inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_signatures(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("apple_net_analyzer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT / "signatures").as_posix() for p in (ROOT / "signatures").rglob("*.toml")}
    assert shipped, "no signatures found in the source tree"
    for rel in shipped:
        assert f"analyzer/signatures/{rel}" in names, rel
    assert "analyzer/py.typed" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    # `pip install '.[notebooks]'` brings what the README's notebook commands run (jupyter lab, papermill, nbconvert).
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    requires = [line for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:") and 'extra == "notebooks"' in line]
    for package in ("jupyterlab", "papermill", "nbconvert", "ipykernel"):
        assert any(line.split()[1].startswith(package) for line in requires), (package, requires)
