"""A lab killed without its teardown leaves nothing behind, and a running lab is never taken for a dead one.

Real namespaces and processes: one real lab run (`python -m analyzer.lab`)
killed with SIGKILL mid-scenario, and small stand-in labs (a process that
holds a lab lock and runs a daemon in a namespace) for the watchdog and the
stale-lock cases.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from analyzer.lab.netns import NETNS_ETC, list_netns, netns_available
from analyzer.lab.ownership import LOCK_DIR, WORK_PREFIX, read_owner, remove_stale

from lab_gate import unavailable_outcome

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(autouse=True)
def _needs_netns() -> None:
    reason = netns_available()
    if reason:
        outcome, message = unavailable_outcome(reason, os.environ)
        (pytest.fail if outcome == "fail" else pytest.skip)(message)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _always_root(pid: int) -> bool:
    """Every uid and gid (real, effective, saved, filesystem) still 0: the kernel kept its PR_SET_PDEATHSIG."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return False
    ids = [v for line in lines if line.startswith(("Uid:", "Gid:")) for v in line.split()[1:]]
    return len(ids) == 8 and set(ids) == {"0"}


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _ns_pids(names: list[str]) -> set[int]:
    pids: set[int] = set()
    for ns in names:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False).stdout
        pids.update(int(p) for p in out.split())
    return pids


def _wait(pred, timeout: float, step: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


def _cleanup() -> str:
    proc = subprocess.run([sys.executable, "-m", "analyzer", "lab", "--cleanup"], capture_output=True, text=True,
                          env=ENV, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _leftovers(prefix: str) -> list[str]:
    found = [n for n in list_netns() if n.startswith(prefix + "-")]
    found += [str(p) for p in NETNS_ETC.glob(f"{prefix}-*")]
    found += [str(p) for p in Path("/tmp").glob(f"{WORK_PREFIX}{prefix[3:]}-*")]
    if (LOCK_DIR / f"{prefix}.lock").exists():
        found.append(str(LOCK_DIR / f"{prefix}.lock"))
    return found


_STAND_IN = textwrap.dedent("""
    import os, subprocess, sys, tempfile, time
    from analyzer.lab.netns import NETNS_ETC, sh
    from analyzer.lab.ownership import WORK_PREFIX, LabLock, start_watchdog
    prefix = f"anl{os.getpid()}"
    work = tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-")
    lock = LabLock.acquire(prefix, work)
    ns = prefix + "-client"
    sh(["ip", "netns", "add", ns])
    (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
    daemon = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "120"], start_new_session=True)
    if sys.argv[1] == "watch":
        start_watchdog(lock)
    print(daemon.pid, flush=True)
    time.sleep(120)
""")


def _stand_in(watch: bool) -> tuple[subprocess.Popen[str], str, int]:
    """A process that owns a lab (lock, namespace, /etc/netns dir, work dir) with a daemon in a session of its own."""
    proc = subprocess.Popen([sys.executable, "-c", _STAND_IN, "watch" if watch else "plain"], stdout=subprocess.PIPE,
                            text=True, env=ENV)
    assert proc.stdout is not None
    daemon = int(proc.stdout.readline())
    return proc, f"anl{proc.pid}", daemon


def test_killed_lab_loses_its_daemons_and_cleanup_removes_the_rest(tmp_path: Path) -> None:
    lab = subprocess.Popen([sys.executable, "-m", "analyzer.lab", "--out", str(tmp_path), "--scenario", "tls13_ok"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, start_new_session=True)
    prefix = f"anl{lab.pid}"
    lock = LOCK_DIR / f"{prefix}.lock"
    try:
        # Mid-run: every server is up and tcpdump is writing the scenario's capture. Freeze the lab there
        # (it still holds its lock, its daemons run on) so the checks below race nothing.
        assert _wait(lambda: (tmp_path / "tls13_ok.pcap").exists() or lab.poll() is not None, 40, 0.02), "too slow"
        os.kill(lab.pid, signal.SIGSTOP)
        assert lab.poll() is None, lab.stderr.read() if lab.stderr else ""
        owner = read_owner(lock)
        assert owner["pid"] == lab.pid and owner["boot_id"] and owner["start_time"] and owner["work"]
        names = [n for n in list_netns() if n.startswith(prefix + "-")]
        daemons = _children(lab.pid)
        in_ns = _ns_pids(names)
        servers = _ns_pids([f"{prefix}-apple"])  # the apple side runs servers only, no client steps
        assert len(names) >= 4 and daemons and servers

        # A running lab is not a leftover.
        _cleanup()
        assert sorted(n for n in list_netns() if n.startswith(prefix + "-")) == sorted(names)
        assert lock.exists() and Path(owner["work"]).is_dir() and all(_alive(p) for p in servers)

        # Kill the watchdog first: what dies now dies of PR_SET_PDEATHSIG alone.
        watchdogs = [int(d.name) for d in Path("/proc").iterdir()
                     if d.name.isdigit() and str(lock).encode() in _cmdline(int(d.name))]
        assert watchdogs, "no watchdog for the lab"
        for pid in watchdogs:
            os.kill(pid, signal.SIGKILL)
        keep_root = [p for p in daemons if _always_root(p)]  # a daemon that changed its user lost the wish
        assert keep_root
        os.kill(lab.pid, signal.SIGKILL)
        lab.wait(5)
        assert _wait(lambda: not any(_alive(p) for p in keep_root), 5), [_cmdline(p) for p in keep_root if _alive(p)]
        assert _leftovers(prefix), "nothing left to clean up: the test would prove nothing"

        out = _cleanup()
        assert names[0] in out
        assert _leftovers(prefix) == []
        assert not any(_alive(p) for p in in_ns)
    finally:
        if lab.poll() is None:
            os.kill(lab.pid, signal.SIGKILL)
            lab.wait(5)
        remove_stale()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_watchdog_removes_a_killed_lab() -> None:
    proc, prefix, daemon = _stand_in(watch=True)
    try:
        assert _alive(daemon) and _leftovers(prefix)
        proc.kill()
        proc.wait(5)
        assert _wait(lambda: not _leftovers(prefix) and not _alive(daemon), 10), _leftovers(prefix)
    finally:
        proc.kill()
        proc.wait(5)
        remove_stale()


def test_cleanup_leaves_a_running_lab_and_removes_a_dead_one_whose_pid_lives() -> None:
    running, running_prefix, running_daemon = _stand_in(watch=False)
    dead, dead_prefix, dead_daemon = _stand_in(watch=False)
    try:
        dead.kill()
        dead.wait(5)
        # The dead lab's lock names a pid that is alive again (reuse): the lock, not the pid, decides.
        lock = LOCK_DIR / f"{dead_prefix}.lock"
        lock.write_text(lock.read_text().replace(f'"pid": {dead.pid}', f'"pid": {os.getpid()}'))
        out = _cleanup()
        assert f"{dead_prefix}-client" in out
        assert _leftovers(dead_prefix) == [] and not _alive(dead_daemon)
        assert len(_leftovers(running_prefix)) == 4 and _alive(running_daemon)  # ns, /etc/netns, work, lock
    finally:
        running.kill()
        running.wait(5)
        remove_stale()
        assert _leftovers(running_prefix) == []
