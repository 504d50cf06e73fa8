"""Run the lab: build the network, start the servers, run each scenario under tcpdump, tear down.

    run_lab(out_dir, scenarios=None) -> list[ScenarioResult]
    main(argv) -> int                     # `python -m analyzer.lab --out DIR`

Writes <scenario>.pcap for every scenario, truth.json (scenario -> truth) and
README.md (what each capture shows) into out_dir, and the lab's CA
certificates into out_dir/ca/ so a reader can check the chains.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import analyzer
from analyzer.lab import addresses as A
from analyzer.lab import services as S
from analyzer.lab import truth as T
from analyzer.lab.netns import (
    LabError,
    Topology,
    netns_available,
)
from analyzer.lab.ownership import WORK_PREFIX, LabLock, remove_stale, start_watchdog
from analyzer.lab.pki import LabPki, build_pki
from analyzer.lab.procs import Supervisor
from analyzer.lab.readme import render_readme
from analyzer.lab.scenarios import ClientFiles, Scenario, Step, build_scenarios

CAPTURE = "tcpdump"


@dataclass(frozen=True, slots=True)
class StepResult:
    argv: tuple[str, ...]
    returncode: int | None  # None: killed at its timeout
    seconds: float
    stdout: str
    stderr: str
    expected_ok: bool

    @property
    def as_expected(self) -> bool:
        return (self.returncode == 0) == self.expected_ok


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    name: str
    pcap: Path
    truth: dict[str, Any]
    steps: tuple[StepResult, ...]
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The scenario ran and every client ended as the scenario was built to make it end."""
        return self.error is None and all(s.as_expected for s in self.steps)


def unavailable_reason() -> str | None:
    """Why the lab cannot run on this machine (not root, no netns, tools missing), or None."""
    reason = netns_available()
    if reason:
        return reason
    missing = S.missing_tools()
    if missing:
        return "lab tools missing (run .ci/lab-deps.sh): " + ", ".join(missing)
    return None


def _client_env() -> dict[str, str]:
    # The Python client runs as `python -m analyzer.lab.clients` inside the namespace.
    root = str(Path(analyzer.__file__).resolve().parent.parent)
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "PYTHONPATH": root, "LANG": "C.UTF-8"}


def _run_step(topo: Topology, step: Step) -> StepResult:
    started = time.monotonic()
    try:
        proc = subprocess.run(topo.exec(topo.client_ns(step.client), list(step.argv)), input=step.stdin,
                              capture_output=True, timeout=step.timeout, env=_client_env(), check=False)
        code: int | None = proc.returncode
        out, err = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:  # subprocess.run killed it
        code, out, err = None, exc.stdout or b"", exc.stderr or b""
    return StepResult(step.argv, code, round(time.monotonic() - started, 3),
                      out.decode(errors="replace")[-2000:], err.decode(errors="replace")[-2000:], step.expect_ok)


def _clear_connections(topo: Topology) -> None:
    """Abort sockets a scenario left behind (a dropped ClientHello keeps retransmitting after curl exits,
    a server waits on a client the firewall cut off) and forget the LAN neighbours it learned (their
    reachability probes come seconds later), so none of them reaches the next capture."""
    for ns in (*topo.clients, topo.apple, topo.control):
        topo.ns_sh(ns, ["ss", "-K", "-tn", "state", "connected"], check=False)
    topo.forget_neighbours()
    time.sleep(0.05)


def run_scenario(sc: Scenario, topo: Topology, sup: Supervisor, out_dir: Path) -> ScenarioResult:
    started = time.monotonic()
    pcap = out_dir / f"{sc.name}.pcap"
    pcap.unlink(missing_ok=True)
    steps: list[StepResult] = []
    error = None
    try:
        topo.set_rules([list(r) for r in sc.rules])
        try:
            S.capture_start(sup, CAPTURE, pcap, sc.capture)
            for step in sc.steps:
                steps.append(_run_step(topo, step))
            time.sleep(sc.settle)
        finally:
            S.capture_stop(sup, CAPTURE)  # also when tcpdump never got ready
            _clear_connections(topo)
            topo.set_rules([])
    except LabError as exc:
        error = str(exc)
    truth = {"scenario": sc.name, "pcap": pcap.name, "shows": sc.shows, "tags": list(sc.tags),
             "rules": [" ".join(r) for r in sc.rules], "capture": _capture_truth(topo, sc.capture),
             "clients": sorted({s.client for s in sc.steps}), **sc.truth}
    return ScenarioResult(sc.name, pcap, truth, tuple(steps), round(time.monotonic() - started, 3), error)


def _capture_truth(topo: Topology, where: str) -> dict[str, str]:
    ns, iface = topo.capture_point(where)
    return {"point": where, "interface": iface, "namespace": ns.removeprefix(f"{topo.prefix}-")}


def _topology_truth(topo: Topology) -> dict[str, Any]:
    return {
        "client_ip": A.CLIENT_IP, "router_ip": A.ROUTER_CLIENT_IP, "capture_interface": f"{topo.client_if} (client)",
        "client_ip6": A.CLIENT_IP6, "router_ip6": A.ROUTER_CLIENT_IP6, "router_mac": A.ROUTER_MAC,
        "lan_interface": f"{topo.lan_if} (router bridge: the span-port view of every client)",
        "clients": [{"name": c.name, "namespace": topo.client_ns(c.name).removeprefix(f"{topo.prefix}-"),
                     "mac": c.mac, "ip": c.ip, "ip6": c.ip6, "link_local": c.link_local, "resolver": c.resolver}
                    for c in A.CLIENTS],
        "apple_net6": A.APPLE_NET6, "aaaa_records": A.AAAA_RECORDS,
        "server_ttl": T.SERVER_TTL, "router_ttl": T.ROUTER_TTL,
        "a_records": A.A_RECORDS, "cname_chain": list(A.CNAME_CHAIN),
        "issuers": {"apple_auth": T.APPLE_AUTH_CA, "apple_public": T.APPLE_PUBLIC_CA, "apple_root": T.APPLE_ROOT,
                    "control_root": T.CONTROL_ROOT},
        "inspection": T.INSPECTION,
    }


def _export_cas(pki: LabPki, out_dir: Path) -> None:
    ca_dir = out_dir / "ca"
    ca_dir.mkdir(exist_ok=True)
    shutil.copy(pki.trust_apple, ca_dir / "trust-apple.pem")
    shutil.copy(pki.trust_managed, ca_dir / "trust-managed.pem")


def run_lab(out_dir: Path | str, scenarios: Sequence[str] | None = None) -> list[ScenarioResult]:
    """Build the lab, run the named scenarios (all by default) and tear everything down.

    Raises LabError when the lab cannot run here or a server does not start.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reason = unavailable_reason()
    if reason:
        raise LabError(reason)
    remove_stale()
    topo = Topology.for_this_process()
    # The lock (and its watchdog) exist before the first namespace and outlive the teardown:
    # if this process dies without its teardown, the watchdog or `apple-net lab --cleanup` removes the rest.
    try:
        lock = LabLock.acquire(topo.prefix)
    except RuntimeError as exc:
        raise LabError(str(exc)) from None
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-"))
    lock.record(work)
    watchdog = start_watchdog(lock)
    work.chmod(0o755)  # squid and its helpers run as user proxy
    (work / "logs").mkdir()
    sup = Supervisor(topo, work / "logs")
    results: list[ScenarioResult] = []
    started = time.monotonic()
    try:
        topo.build()
        pki = build_pki(work / "pki")
        S.start_all(sup, S.ServiceDirs(work / "svc"), pki)
        scratch = work / "client"
        scratch.mkdir()
        all_scenarios = build_scenarios(ClientFiles(pki.trust_apple, pki.trust_managed, scratch))
        chosen = _select(all_scenarios, scenarios)
        for sc in chosen:
            results.append(run_scenario(sc, topo, sup, out))
        _export_cas(pki, out)
    finally:
        sup.stop_all()
        topo.teardown()
        logs = out / "logs"
        shutil.rmtree(logs, ignore_errors=True)
        shutil.copytree(work / "logs", logs, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        lock.release()  # the watchdog sees the lock file gone: a clean end, nothing for it to do
        try:
            watchdog.wait(timeout=5)
        except subprocess.TimeoutExpired:
            watchdog.kill()
    seconds = round(time.monotonic() - started, 1)
    truth = {"topology": _topology_truth(topo), "seconds": seconds,
             "scenarios": {r.name: {**r.truth, "observed": _observed(r)} for r in results}}
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    (out / "README.md").write_text(render_readme(results, chosen, seconds))
    return results


def _select(all_scenarios: list[Scenario], names: Sequence[str] | None) -> list[Scenario]:
    if names is None:
        return all_scenarios
    by_name = {s.name: s for s in all_scenarios}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise LabError(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[n] for n in names]


def scenario_names() -> list[str]:
    files = ClientFiles(Path("/nonexistent"), Path("/nonexistent"), Path("/nonexistent"))
    return [s.name for s in build_scenarios(files)]


def _observed(r: ScenarioResult) -> dict[str, Any]:
    return {
        "ok": r.ok, "error": r.error, "seconds": r.seconds,
        "clients": [{"argv": " ".join(s.argv), "returncode": s.returncode, "seconds": s.seconds,
                     "expected_ok": s.expected_ok, "stdout": s.stdout[-500:], "stderr": s.stderr[-500:]}
                    for s in r.steps],
    }


def _cleanup() -> int:
    if os.geteuid() != 0:
        print("apple-net lab: --cleanup needs root (it deletes network namespaces)", file=sys.stderr)
        return 2
    try:
        removed = remove_stale()
    except LabError as exc:
        print(f"apple-net lab: {exc}", file=sys.stderr)
        return 2
    for item in removed:
        print(f"removed {item}")
    print(f"{len(removed)} leftovers of dead labs removed" if removed else "no leftovers of dead labs")
    return 0


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through run_lab's teardown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apple-net lab", description=(
        "Build a network of namespaces with Apple-like servers, a firewall, DNS and interception proxies, and "
        "write one client-side capture per scenario with a README and truth.json. Needs root."))
    parser.add_argument("--out", type=Path, help="directory for the captures (required unless --list)")
    parser.add_argument("--scenario", action="append", dest="scenarios", metavar="NAME",
                        help="run only this scenario (repeatable); default: all")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--cleanup", action="store_true",
                        help="remove what labs killed without their teardown left (namespaces, /etc/netns dirs, "
                        "temporary folders, their processes) and exit; a running lab is left alone")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(scenario_names()))
        return 0
    if args.cleanup:
        return _cleanup()
    if args.out is None:
        parser.error("--out DIR is required")
    # SIGTERM and SIGHUP (a closed terminal) unwind through the teardown; SIGKILL is the watchdog's.
    previous = {sig: signal.signal(sig, _on_sigterm) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        results = run_lab(args.out, args.scenarios)
    except LabError as exc:
        print(f"apple-net lab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("apple-net lab: interrupted; namespaces and processes removed", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    bad = [r for r in results if not r.ok]
    for r in results:
        print(f"{'ok ' if r.ok else 'BAD'} {r.name:40s} {r.seconds:6.2f}s  {r.pcap}")
    print(f"{len(results)} scenarios, {len(bad)} not as built; captures in {args.out}")
    return 1 if bad else 0
