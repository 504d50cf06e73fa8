"""Give up root once the capture handle is open: parse hostile traffic as an unprivileged user.

    target = drop_target(user)          # whom to become: -Z USER, else the sudo user, else nobody; None: stay
    check_writable(target, paths)       # the report and --write files are written after the drop
    drop_privileges(target)             # clear supplementary groups, set every gid and uid; verified
    drop_capabilities()                 # not root but allowed by capabilities (setcap): give those up
    credentials()                       # Uid:/Gid:/Groups: of /proc/self/status (what the session logs)

Like tcpdump's `-Z`: the packet socket stays open (the kernel checked the
privilege when it was opened, not on each read), everything after it runs as
the target user. Setting the real, effective and saved ids leaves no way
back, and the kernel clears the capability sets on leaving uid 0. What
writing the report needs is checked before the drop, as the target user
(a child process that drops first and asks the kernel), so a run never
ends with a report that cannot be written.
"""

from __future__ import annotations

import ctypes
import os
import pwd
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from analyzer.errors import AnalyzerError

__all__ = ["PrivilegeError", "Target", "check_readable", "check_writable", "credentials", "drop_capabilities", "drop_privileges", "drop_target"]

FALLBACK_USER = "nobody"


class PrivilegeError(AnalyzerError):
    """Root could not be given up as asked; the message says why (one line)."""


@dataclass(frozen=True, slots=True)
class Target:
    """The user the capture continues as."""

    name: str
    uid: int
    gid: int


def drop_target(user: str | None, environ: Mapping[str, str] | None = None,
                euid: int | None = None) -> Target | None:
    """Whom to become after opening the capture; None to stay as we are.

    `user`: -Z's value (a name or a numeric uid); without it the user who ran
    sudo (SUDO_UID/SUDO_GID), else `nobody`. Not running as root: nothing to
    give up (-Z naming another user is then an error). `-Z root`: stay root.
    """
    env = os.environ if environ is None else environ
    euid = os.geteuid() if euid is None else euid
    if user is not None:
        target = _lookup(user)
        if euid != 0:
            if target.uid != euid:
                raise PrivilegeError(f"-Z {user}: only root can switch to another user (running as uid {euid})")
            return None
        return None if target.uid == 0 else target
    if euid != 0:
        return None
    sudo_uid, sudo_gid = env.get("SUDO_UID", ""), env.get("SUDO_GID", "")
    if sudo_uid.isdigit() and int(sudo_uid) != 0:
        uid = int(sudo_uid)
        try:
            entry = pwd.getpwuid(uid)
            name, gid = entry.pw_name, entry.pw_gid
        except KeyError:
            name, gid = str(uid), uid
        return Target(name, uid, int(sudo_gid) if sudo_gid.isdigit() else gid)
    return _lookup(FALLBACK_USER)


def _lookup(user: str) -> Target:
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"-Z {user}: no such user") from None
    return Target(entry.pw_name, entry.pw_uid, entry.pw_gid)


def check_writable(target: Target, paths: Iterable[tuple[str, str | None]]) -> None:
    """PrivilegeError unless `target` can create files in each (option, path)'s folder.

    The report (-o) and every --write file (rotated, written through a temporary file and
    renamed) are created after the drop. Asked of the kernel by a child that drops first.
    """
    for option, path in paths:
        if not path or path == "-":
            continue
        folder = Path(path).resolve().parent
        if not _allowed(target, folder, os.W_OK | os.X_OK):
            raise PrivilegeError(f"{option} {path}: user {target.name} cannot create files in {folder}, and the "
                                 f"capture runs as {target.name} once the interface is open; choose a folder "
                                 f"{target.name} can write, -Z USER for another user, or -Z root")


def check_readable(target: Target, package: Path) -> None:
    """PrivilegeError unless `target` can read the installed package (modules load after the drop too)."""
    if not _allowed(target, package, os.R_OK | os.X_OK):
        raise PrivilegeError(f"user {target.name} cannot read the analyzer's files in {package}; "
                             "install it where every user can read it, or use -Z root")


def _allowed(target: Target, path: Path, mode: int) -> bool:
    """Would `target` be granted `mode` on `path`? (asked as the target, in a child process)"""
    pid = os.fork()
    if pid == 0:  # the child: become the target, ask, exit; never return into the caller's code
        code = 2
        try:
            _become(target)
            code = 0 if os.access(path, mode) else 1
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise PrivilegeError(f"cannot drop root to user {target.name} (uid {target.uid}, gid {target.gid}): "
                             "not permitted here (no CAP_SETUID/CAP_SETGID?)")
    return code == 0


def _become(target: Target) -> None:
    os.setgroups([])
    os.setresgid(target.gid, target.gid, target.gid)
    os.setresuid(target.uid, target.uid, target.uid)


def drop_privileges(target: Target) -> None:
    """Become `target` for good: no supplementary groups, every gid and uid set. PrivilegeError on failure."""
    try:
        _become(target)
    except OSError as exc:
        raise PrivilegeError(f"cannot drop root to user {target.name} (uid {target.uid}, gid {target.gid}): "
                             f"{exc.strerror or exc}") from None
    if (os.getresuid() != (target.uid,) * 3 or os.getresgid() != (target.gid,) * 3
            or set(os.getgroups()) - {target.gid}):
        raise PrivilegeError(f"dropping root to user {target.name} did not take: uids {os.getresuid()}, "
                             f"gids {os.getresgid()}, groups {os.getgroups()}")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise PrivilegeError(f"dropped root to user {target.name}, yet could become root again")


_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32))


def drop_capabilities() -> None:
    """Not root but holding capabilities (`setcap cap_net_raw...` on python): give them all up.

    What root's drop does implicitly (the kernel clears the sets on leaving uid 0)
    for a user the capture was allowed by capabilities. PrivilegeError on failure.
    """
    if not int(_status("CapEff") or "0", 16) and not int(_status("CapPrm") or "0", 16):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()  # all zero: no capability in any set
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(f"cannot give up capabilities: {os.strerror(err)}")
    if int(_status("CapEff") or "0", 16) or int(_status("CapPrm") or "0", 16):
        raise PrivilegeError("gave up capabilities, yet some remain")


def _status(key: str) -> str:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == key:
                return value.strip()
    except OSError:
        pass
    return ""


def credentials() -> dict[str, str]:
    """This process's ids as the kernel reports them (/proc/self/status Uid:, Gid:, Groups:, CapEff:)."""
    wanted = ("Uid", "Gid", "Groups", "CapEff")
    out: dict[str, str] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in wanted:
                out[key] = " ".join(value.split())
    except OSError:
        pass
    return out

