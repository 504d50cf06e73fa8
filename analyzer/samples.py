"""The bundled sample captures (samples/ in the source tree), found from the package, not the working folder.

The notebooks default to them, so they run from any folder: `jupyter lab` in the
notebooks' folder, `papermill notebooks/investigate.ipynb ...` from the
repository, or anywhere else. They live beside the package in a source checkout
(and so in an editable install, as `make` makes); a wheel does not carry them.
"""

from __future__ import annotations

from pathlib import Path

from analyzer.errors import AnalyzerError

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def samples_path(name: str = "") -> Path:
    """samples/NAME (or the folder itself); AnalyzerError, naming the folder, when it is not there."""
    path = SAMPLES / name
    if not path.exists():
        raise AnalyzerError(f"{path}: no such sample; the bundled captures are in the source tree's samples/ "
                            "folder, which this installation does not have (pass your own capture's path)")
    return path
