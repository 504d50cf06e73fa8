"""Where command output goes: stdout or a file given with -o."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

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


@contextlib.contextmanager
def open_binary_output(path: str | None) -> Iterator[BinaryIO]:
    """A buffered binary stream to stdout or to the file given with -o, for output written as it is made."""
    if path is None or path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        f = open(path, "wb")  # noqa: SIM115 - closed below, after the caller's writes
    except OSError as exc:
        raise AnalyzerError(f"cannot write {path}: {exc.strerror}") from None
    with f:
        yield f
