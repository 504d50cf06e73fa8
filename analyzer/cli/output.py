"""Where command output goes: stdout or a file given with -o.

A file is written atomically: into a temporary file beside it, renamed over
it only when everything was written. Ctrl-C, a render error or a full disk
leave the previous file as it was and no temporary file behind. The rename
replaces a symlink at PATH rather than writing through it, and the temporary
file is created with O_EXCL|O_NOFOLLOW, so a planted link is never followed.
Special files (/dev/full, a FIFO, anything under /dev or /proc, such as
/dev/stdout) cannot be renamed into: they are written directly; a block
device is refused.

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
from typing import BinaryIO, NoReturn, TextIO, cast

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


def require_stdout(path: str | None) -> None:
    """Before a long analysis: refuse at once when the output is stdout and stdout is closed."""
    if _is_stdout(path) and sys.stdout is None:
        raise AnalyzerError("cannot write to standard output: it is closed")


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


class _Guarded:
    """A binary output whose write errors are one AnalyzerError line naming it.

    Only the output's own errors: an OSError from reading input in the same
    block stays what it is.
    """

    def __init__(self, raw: BinaryIO, name: str, stdout: bool = False) -> None:
        self._raw = raw
        self._name = name
        self._stdout = stdout

    def _fail(self, exc: OSError) -> NoReturn:
        if self._stdout:
            _silence_stdout()
        raise AnalyzerError(f"cannot write {self._name}: {exc.strerror or exc}") from None

    def write(self, data: bytes) -> int:
        try:
            return self._raw.write(data)
        except BrokenPipeError:
            raise
        except OSError as exc:
            self._fail(exc)

    def flush(self) -> None:
        try:
            self._raw.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            self._fail(exc)

    def fileno(self) -> int:
        return self._raw.fileno()


def _discard(fh: BinaryIO, tmp: Path) -> None:
    with contextlib.suppress(OSError):
        fh.close()
    tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: int = REPORT_MODE) -> Iterator[BinaryIO]:
    """A new binary file that becomes `path` when the block ends without an exception; else nothing changes.

    Opening, finishing and renaming errors become one AnalyzerError line; the block's own exceptions pass.
    """
    target = Path(path)
    try:
        st = os.stat(target)  # follows a symlink: is what it names a device or a FIFO?
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise AnalyzerError(f"cannot write {path}: {exc.strerror}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise AnalyzerError(f"cannot write {path}: it is a directory")
    if st is not None and stat.S_ISBLK(st.st_mode):  # a disk: never a report's place, whatever linked to it
        raise AnalyzerError(f"cannot write {path}: it is a block device")
    if (st is not None and not stat.S_ISREG(st.st_mode)) or _in_dev_or_proc(target):
        # /dev/full, a FIFO, /dev/stdout (-> /proc/self/fd/1, perhaps a file): written as they are, since
        # renaming over them would replace the device node or the link, not write to what they stand for.
        yield from _special(target)
        return
    replacing = st is not None and not os.path.islink(target)
    if replacing:
        assert st is not None
        mode = stat.S_IMODE(st.st_mode)  # replacing a file: it keeps its permissions
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise AnalyzerError(f"cannot write {path}: {exc.strerror}") from None
    fh = os.fdopen(fd, "wb")
    try:
        if replacing:
            os.fchmod(fd, mode)  # exactly the old bits, whatever the umask
        yield fh
    except BaseException:  # the block's own error (a render bug, Ctrl-C, input unreadable): passed on as it is
        _discard(fh, tmp)
        raise
    try:
        fh.flush()
        os.fsync(fd)
        fh.close()
        os.replace(tmp, target)
    except OSError as exc:
        _discard(fh, tmp)
        raise AnalyzerError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        _discard(fh, tmp)
        raise


def _in_dev_or_proc(target: Path) -> bool:
    return any(str(p).startswith(("/dev/", "/proc/")) for p in (target.absolute(), Path(os.path.realpath(target))))


def _special(target: Path) -> Iterator[BinaryIO]:
    try:
        fh = open(target, "wb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise AnalyzerError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        yield fh
    except BaseException:
        with contextlib.suppress(OSError):
            fh.close()
        raise
    try:
        fh.close()
    except OSError as exc:
        raise AnalyzerError(f"cannot write {target}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def open_binary_output(path: str | None) -> Iterator[BinaryIO]:
    """A buffered binary stream to stdout or to the file given with -o, for output written as it is made."""
    if _is_stdout(path):
        if sys.stdout is None:
            raise AnalyzerError("cannot write to standard output: it is closed")
        out = _Guarded(sys.stdout.buffer, "to standard output", stdout=True)
        yield cast(BinaryIO, out)
        out.flush()
        return
    assert path is not None
    with atomic_file(path) as fh:
        yield cast(BinaryIO, _Guarded(fh, path))


def write_text(text: str, path: str | None) -> None:
    if _is_stdout(path):
        with stdout_errors() as out:
            out.write(text)
        return
    with open_binary_output(path) as fh:
        fh.write(text.encode("utf-8"))
