"""Where command output goes: stdout or a file given with -o."""

from __future__ import annotations

import sys
from pathlib import Path

from analyzer.errors import AnalyzerError


def write_text(text: str, path: str | None) -> None:
    if path is None or path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise AnalyzerError(f"cannot write {path}: {exc.strerror}") from None
