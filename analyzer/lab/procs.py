"""Start processes inside the lab's namespaces and always end them, by pid, with bounded waits."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.lab.netns import LabError, Topology


@dataclass(slots=True)
class Supervisor:
    """Owns every long-running process of one lab run.

    Each process gets its own session (so its pid is also its process group
    id and helpers it forks die with it); stop_all() is safe to call twice.
    Each also gets SIGKILL when the lab process dies (PR_SET_PDEATHSIG), so a
    lab killed without its teardown takes its daemons along. The kernel
    forgets that wish when a daemon changes its user (squid, tcpdump,
    unbound do) or forks a worker: the lab's watchdog (ownership.py) kills
    those by namespace.
    """

    topo: Topology
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(
        self,
        name: str,
        ns: str,
        argv: list[str],
        *,
        ready: Callable[[], bool] | None = None,
        timeout: float = 15.0,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        if name in self.procs:
            raise LabError(f"process {name!r} already started")
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - the child keeps it
        try:
            proc = subprocess.Popen(
                self.topo.exec(ns, argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
                env=env,
            )
        finally:
            log.close()
        self.procs[name] = proc
        if ready is not None:
            self.wait_ready(name, ready, timeout)
        return proc

    def wait_ready(self, name: str, ready: Callable[[], bool], timeout: float) -> None:
        proc = self.procs[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError(f"{name} exited with {proc.returncode}: {self.log_tail(name)}")
            if ready():
                return
            time.sleep(0.05)
        raise LabError(f"{name} not ready after {timeout}s: {self.log_tail(name)}")

    def log_tail(self, name: str, size: int = 600) -> str:
        try:
            data = (self.log_dir / f"{name}.log").read_bytes()
        except OSError:
            return ""
        return data[-size:].decode(errors="replace").strip()

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 3.0) -> int | None:
        """Signal the process (group), wait at most `timeout`, then SIGKILL; return its exit code."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            _signal_group(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    pass
        # Helpers that outlived a clean exit of their leader still share its group.
        _signal_group(proc.pid, signal.SIGKILL)
        return proc.returncode

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None]:
    """A `preexec_fn`: the child gets SIGKILL when this process (its parent) dies, even by SIGKILL.

    Strictly when the parent *thread* that started it ends: start daemons from the thread that runs
    the whole lab (run_lab runs on the caller's thread), never from a short-lived worker thread.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def arm() -> None:  # runs in the child between fork and exec: no allocation-heavy work
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the wish was made
            os._exit(1)

    return arm


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def listening(topo: Topology, ns: str, proto: str, port: int, addr: str | None = None) -> Callable[[], bool]:
    """A readiness probe: is something in `ns` listening on [addr:]port (tcp) or bound to it (udp)?"""
    flag = "-Hltn" if proto == "tcp" else "-Hlun"
    where = f"src {addr}:{port}" if addr else f"sport = :{port}"

    def probe() -> bool:
        out = topo.ns_sh(ns, ["ss", flag, where], timeout=5, check=False).stdout
        return bool(out.strip())

    return probe
