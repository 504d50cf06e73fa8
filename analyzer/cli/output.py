"""Where command output goes: stdout or a file given with -o.

A file is written atomically: into a temporary file beside it, renamed over
it only when everything was written. Ctrl-C, a render error or a full disk
leave the previous file as it was and no temporary file behind. The rename
replaces a symlink at PATH rather than writing through it, and the temporary
file is created with O_EXCL|O_NOFOLLOW, so a planted link is never followed.
Special files (/dev/full, a FIFO, /dev/stdout) cannot be renamed into: they
are written directly.

A new report is 0644 (less the umask): it holds names and verdicts, not
payload; an existing file keeps its permission bits. Any failure to write
(stdout included: closed, full) is one AnalyzerError line, exit 2; a reader
that went away (`| head`) stays the quiet BrokenPipeError main() expects.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from analyzer.errors import AnalyzerError

REPORT_MODE = 0o644


def _is_stdout(path: str | None) -> bool:
    return path is None or path == "-"


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null: what is still buffered for it must not fail again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


@contextlib.contextmanager
def stdout_errors() -> Iterator[TextIO]:
    """sys.stdout, with a closed or failing stdout turned into one AnalyzerError line."""
    out = sys.stdout
    if out is None:  # started with fd 1 closed (`>&-`)
        raise AnalyzerError("cannot write to standard output: it is closed")
    try:
        yield out
        out.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        _silence_stdout()
        raise AnalyzerError(f"cannot write to standard output: {exc.strerror or exc}") from None


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: int = REPORT_MODE) -> Iterator[BinaryIO]:
    """A new binary file that becomes `path` when the block ends without an exception; else nothing changes.

    OSError (here or in the block) becomes one AnalyzerError line.
    """
    target = Path(path)
    try:
        st = os.stat(target)  # follows a symlink: is what it names a device or a FIFO?
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise AnalyzerError(f"cannot write {path}: {exc.strerror}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise AnalyzerError(f"cannot write {path}: it is a directory")
        yield from _special(target)
        return
    if st is not None and not os.path.islink(target):
        mode = stat.S_IMODE(st.st_mode)  # replacing a file: it keeps its permissions
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise AnalyzerError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            if st is not None and not os.path.islink(target):
                os.fchmod(fh.fileno(), mode)  # exactly the old bits, whatever the umask
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise AnalyzerError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _special(target: Path) -> Iterator[BinaryIO]:
    try:
        with open(target, "wb") as fh:
            yield fh
    except OSError as exc:
        raise AnalyzerError(f"cannot write {target}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def open_binary_output(path: str | None) -> Iterator[BinaryIO]:
    """A buffered binary stream to stdout or to the file given with -o, for output written as it is made."""
    if _is_stdout(path):
        with stdout_errors() as out:
            yield out.buffer
            out.buffer.flush()
        return
    assert path is not None
    with atomic_file(path) as fh:
        yield fh


def write_text(text: str, path: str | None) -> None:
    if _is_stdout(path):
        with stdout_errors() as out:
            out.write(text)
        return
    with open_binary_output(path) as fh:
        fh.write(text.encode("utf-8"))
