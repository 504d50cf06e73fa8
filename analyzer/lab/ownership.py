"""Who owns a lab's namespaces, and what is left of a lab whose process died.

Every lab run holds a lock file, /run/apple-net-lab/<prefix>.lock, from
before its first namespace until after its teardown:

* The file is held with `flock`. The kernel releases that lock when the
  owner dies, however it dies (SIGKILL, the OOM killer), and only then, so
  "can I take the lock?" is an exact answer to "is the owner gone?": no
  guess from a pid that may have been reused, and a lab in another PID
  namespace that shares /run/netns (its pid means nothing here) still holds
  its lock and is left alone.
* The file names the owner: its pid, the boot id (/proc/sys/kernel/random/boot_id),
  its start time (field 22 of /proc/PID/stat), its PID namespace, and the
  lab's temporary work directory, so a cleanup knows what to remove and a
  person reading the file knows whose it was.

A watchdog process (`python -m analyzer.lab.ownership --watch LOCK`) waits
for the lock: when the lab ends normally it has removed the file first and
the watchdog just exits; when the lab died, the watchdog removes what it
left (kills every process in its namespaces, deletes the namespaces, their
/etc/netns dirs, the work directory and the lock). `apple-net lab --cleanup`
does the same for every stale lab, for when the watchdog died too.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from analyzer.lab.netns import NETNS_ETC, delete_netns, list_netns, pid_alive

LOCK_DIR = Path("/run/apple-net-lab")
WORK_PREFIX = "apple-net-lab-"  # + pid + random: a run's PKI, configs and logs
_PREFIX_RE = re.compile(r"^(anl(\d+))-")
_LOCK_SUFFIX = ".lock"


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot), None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name (which may hold spaces) start at field 3.
    return int(stat.rsplit(")", 1)[1].split()[19])


def pid_namespace(pid: int | str = "self") -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return ""


@dataclass(slots=True)
class LabLock:
    """The lock a running lab holds (see the module doc); release() after the teardown."""

    prefix: str
    path: Path
    _file: TextIO | None

    @classmethod
    def acquire(cls, prefix: str, work: Path | None = None, lock_dir: Path = LOCK_DIR) -> LabLock:
        lock_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        path = lock_dir / f"{prefix}{_LOCK_SUFFIX}"
        f = open(path, "a+")  # noqa: SIM115 - held for the lab's lifetime; close-on-exec (not inherited)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise RuntimeError(f"lab {prefix} is already running (lock {path} is held)") from None
        lock = cls(prefix, path, f)
        lock.record(work)
        return lock

    def record(self, work: Path | None) -> None:
        """Write the owner's identity (and the work directory, once it exists) into the held file."""
        assert self._file is not None
        pid = os.getpid()
        owner = {"prefix": self.prefix, "pid": pid, "boot_id": boot_id(), "start_time": start_time(pid),
                 "pid_namespace": pid_namespace(), "work": str(work) if work else None}
        self._file.seek(0)
        self._file.truncate()
        self._file.write(json.dumps(owner) + "\n")
        self._file.flush()

    def release(self) -> None:
        """Remove the file, then let go of the lock: a waiting watchdog then sees a lab that ended well."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        self._file.close()
        self._file = None


def read_owner(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def _take_if_stale(path: Path):  # type: ignore[no-untyped-def]
    """Yield the owner record while holding the lock of a dead lab; yield None when its owner lives."""
    try:
        f = open(path)  # noqa: SIM115
    except OSError:
        yield None
        return
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield None  # held: the owner (or a cleanup of it) is running
            return
        # Taken, but was it removed by an owner that ended well while we opened it? Then nothing is stale.
        try:
            same = os.fstat(f.fileno()).st_ino == path.stat().st_ino
        except OSError:
            same = False
        yield read_owner(path) if same else None


def remove_lab(prefix: str, owner: dict[str, Any], namespaces: list[str] | None = None) -> list[str]:
    """Remove what one dead lab left: processes in its namespaces, the namespaces, /etc/netns dirs, work dir."""
    removed = []
    names = namespaces if namespaces is not None else list_netns()
    for name in names:
        if name.startswith(prefix + "-"):
            delete_netns(name)  # kills what runs inside, by pid, first
            removed.append(name)
    for etc in NETNS_ETC.glob(f"{prefix}-*") if NETNS_ETC.is_dir() else ():
        shutil.rmtree(etc, ignore_errors=True)
    work = owner.get("work")
    if isinstance(work, str) and Path(work).name.startswith(WORK_PREFIX):
        shutil.rmtree(work, ignore_errors=True)
    return removed


def remove_stale(lock_dir: Path = LOCK_DIR, tmp: Path | None = None) -> list[str]:
    """Remove every lab whose owner is gone; leave running labs alone. Returns what was removed.

    A lab with a lock file is stale when its lock can be taken (its owner is dead). A namespace
    with no lock file at all comes from a lab older than the locks (or one between its probe and
    its lock): only then does the owner's pid decide, as it used to.
    """
    removed: list[str] = []
    namespaces = list_netns()
    locked: set[str] = set()
    for path in sorted(lock_dir.glob(f"anl*{_LOCK_SUFFIX}")) if lock_dir.is_dir() else ():
        prefix = path.name[: -len(_LOCK_SUFFIX)]
        locked.add(prefix)
        with _take_if_stale(path) as owner:
            if owner is None:
                continue
            gone = remove_lab(prefix, owner, namespaces)
            removed.extend(gone)
            removed.append(str(path))
            with contextlib.suppress(OSError):
                path.unlink()
    unlocked = {m.group(1): int(m.group(2)) for n in namespaces if (m := _PREFIX_RE.match(n))}
    for etc in NETNS_ETC.glob("anl*-*") if NETNS_ETC.is_dir() else ():
        if m := _PREFIX_RE.match(etc.name):
            unlocked.setdefault(m.group(1), int(m.group(2)))
    for prefix, pid in sorted(unlocked.items()):
        if prefix not in locked and not pid_alive(pid):
            removed.extend(remove_lab(prefix, {}, namespaces))
            removed.append(str(NETNS_ETC / f"{prefix}-*"))
    removed.extend(_remove_unowned_workdirs(tmp or Path(tempfile.gettempdir()), lock_dir))
    return removed


def _remove_unowned_workdirs(tmp: Path, lock_dir: Path) -> list[str]:
    """Work directories that no held lock names, whose creating pid is gone (labs older than the locks)."""
    owned = {read_owner(p).get("work") for p in lock_dir.glob(f"anl*{_LOCK_SUFFIX}")} if lock_dir.is_dir() else set()
    removed = []
    for path in tmp.glob(f"{WORK_PREFIX}*"):
        pid = path.name[len(WORK_PREFIX):].split("-", 1)[0]
        if str(path) not in owned and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


# -- the watchdog -----------------------------------------------------------------------------------

def start_watchdog(lock: LabLock) -> subprocess.Popen[bytes]:
    """A process that outlives the lab and removes its leftovers if it dies without its teardown.

    Its own session: a Ctrl-C or SIGHUP for the lab's terminal does not reach it.
    """
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "analyzer.lab.ownership", "--watch", str(lock.path)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)


def watch(path: Path) -> int:
    """Block until the lab holding `path` lets go; remove its leftovers unless it removed the file first."""
    try:
        f = open(path)  # noqa: SIM115
    except OSError:
        return 0  # the lab already ended
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)  # returns when the owner closed the file: its end, or its death
        try:
            same = os.fstat(f.fileno()).st_ino == path.stat().st_ino
        except OSError:
            return 0  # removed: the lab tore itself down
        if not same:
            return 0
        owner = read_owner(path)
        prefix = owner.get("prefix") or path.name[: -len(_LOCK_SUFFIX)]
        remove_lab(str(prefix), owner)
        with contextlib.suppress(OSError):
            path.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analyzer.lab.ownership")
    parser.add_argument("--watch", type=Path, required=True, metavar="LOCK")
    args = parser.parse_args(argv)
    return watch(args.watch)


if __name__ == "__main__":
    sys.exit(main())
