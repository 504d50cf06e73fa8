"""The lab's network: four namespaces joined by veth pairs, and nothing else.

    client "Mac" 10.77.0.2 --- 10.77.0.1 router 10.77.1.1 --- 10.77.1.2 apple (17.253.1.x on lo)
                                             10.77.2.1 --- 10.77.2.2 control (198.18.0.10 on lo)

No namespace has a link to the host or a default route: a packet for any
address the lab does not own has no route and never leaves the machine.
Namespace names carry the creating process id (``anl<pid>-client``) so that a
later run can tell leftovers of a dead run from a lab that is still running.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from analyzer.lab.addresses import (
    APPLE_ADDRS,
    APPLE_LINK_IP,
    CLIENT_IP,
    CONTROL_ADDRS,
    CONTROL_LINK_IP,
    LAB_NET,
    ROUTER_APPLE_IP,
    ROUTER_CLIENT_IP,
    ROUTER_CONTROL_IP,
)

NETNS_ETC = Path("/etc/netns")
_PREFIX_RE = re.compile(r"^anl(\d+)-")
# iptables chains the scenarios own; the built-in chains only jump to them, so
# a scenario's rules go away with one flush.
LAB_CHAINS = (("filter", "FORWARD", "LAB_FWD"), ("filter", "INPUT", "LAB_IN"), ("nat", "PREROUTING", "LAB_PRE"))


class LabError(RuntimeError):
    """The lab could not be built or a step of it failed."""


def sh(argv: list[str], timeout: float = 10.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one command with a bounded wait; raise LabError with its stderr on failure."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout}s: {' '.join(argv)}") from exc
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} -> {proc.returncode}: {proc.stderr.strip()[:500]}")
    return proc


def netns_available() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, iptables, tcpdump)"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    probe = f"anl{os.getpid()}-probe"
    try:
        sh(["ip", "netns", "add", probe], timeout=5)
        sh(["ip", "netns", "del", probe], timeout=5)
    except (LabError, OSError) as exc:
        return f"`ip netns` is unavailable: {exc}"
    return None


def pid_alive(pid: int) -> bool:
    """True while the process runs; a zombie (killed, not yet reaped) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def list_netns() -> list[str]:
    out = sh(["ip", "netns", "list"], timeout=5).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def delete_netns(name: str) -> None:
    """Kill what still runs inside a namespace (by pid), then delete it and its /etc/netns dir."""
    pids = sh(["ip", "netns", "pids", name], timeout=5, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    deadline = time.monotonic() + 3
    while pids and time.monotonic() < deadline:
        pids = sh(["ip", "netns", "pids", name], timeout=5, check=False).stdout.split()
        time.sleep(0.05)
    sh(["ip", "netns", "del", name], timeout=10, check=False)
    shutil.rmtree(NETNS_ETC / name, ignore_errors=True)


def remove_stale() -> list[str]:
    """Delete namespaces left by lab runs whose process is gone; return their names."""
    removed = []
    for name in list_netns():
        match = _PREFIX_RE.match(name)
        if match and not pid_alive(int(match.group(1))):
            delete_netns(name)
            removed.append(name)
    return removed


@dataclass(frozen=True, slots=True)
class Topology:
    """Names of the lab's namespaces and interfaces for one run."""

    prefix: str

    @classmethod
    def for_this_process(cls) -> Topology:
        return cls(prefix=f"anl{os.getpid()}")

    @property
    def client(self) -> str:
        return f"{self.prefix}-client"

    @property
    def router(self) -> str:
        return f"{self.prefix}-router"

    @property
    def apple(self) -> str:
        return f"{self.prefix}-apple"

    @property
    def control(self) -> str:
        return f"{self.prefix}-control"

    @property
    def all(self) -> tuple[str, ...]:
        return (self.client, self.router, self.apple, self.control)

    client_if = "c0"

    def exec(self, ns: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def ns_sh(self, ns: str, argv: list[str], timeout: float = 10.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh(self.exec(ns, argv), timeout=timeout, check=check)

    def build(self) -> None:
        """Create namespaces, links, addresses and routes; tear down on any failure."""
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise

    def _build(self) -> None:
        for ns in self.all:
            sh(["ip", "netns", "add", ns])
            # The client resolves through the router's dnsmasq: `ip netns exec`
            # bind-mounts this file over /etc/resolv.conf. One try, 1 s, so a
            # silent resolver costs the client little time.
            etc = NETNS_ETC / ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text(f"nameserver {ROUTER_CLIENT_IP}\noptions timeout:1 attempts:2\n")
            (etc / "hosts").write_text("127.0.0.1 localhost\n")
            # No IPv6: it would only add router solicitations and MLD noise.
            for key in ("all", "default"):
                self.ns_sh(ns, ["sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"])
            self.ns_sh(ns, ["ip", "link", "set", "lo", "up"])
        self._veth(self.client, "c0", CLIENT_IP, self.router, "r0", ROUTER_CLIENT_IP, 24)
        self._veth(self.router, "r1", ROUTER_APPLE_IP, self.apple, "a0", APPLE_LINK_IP, 30)
        self._veth(self.router, "r2", ROUTER_CONTROL_IP, self.control, "k0", CONTROL_LINK_IP, 30)
        self.ns_sh(self.router, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for addr in APPLE_ADDRS:
            self.ns_sh(self.apple, ["ip", "addr", "add", f"{addr}/32", "dev", "lo"])
        for addr in CONTROL_ADDRS:
            self.ns_sh(self.control, ["ip", "addr", "add", f"{addr}/32", "dev", "lo"])
        # Routes only towards lab prefixes; no default route anywhere.
        for prefix in ("17.0.0.0/8", "198.18.0.0/15", LAB_NET):
            self.ns_sh(self.client, ["ip", "route", "add", prefix, "via", ROUTER_CLIENT_IP])
        self.ns_sh(self.router, ["ip", "route", "add", "17.0.0.0/8", "via", APPLE_LINK_IP])
        self.ns_sh(self.router, ["ip", "route", "add", "198.18.0.0/15", "via", CONTROL_LINK_IP])
        self.ns_sh(self.apple, ["ip", "route", "add", LAB_NET, "via", ROUTER_APPLE_IP])
        self.ns_sh(self.control, ["ip", "route", "add", LAB_NET, "via", ROUTER_CONTROL_IP])
        for table, parent, chain in LAB_CHAINS:
            self.ns_sh(self.router, ["iptables", "-t", table, "-N", chain])
            self.ns_sh(self.router, ["iptables", "-t", table, "-A", parent, "-j", chain])

    def _veth(self, ns_a: str, if_a: str, ip_a: str, ns_b: str, if_b: str, ip_b: str, plen: int) -> None:
        # Create inside ns_a so the host namespace never holds either end.
        self.ns_sh(ns_a, ["ip", "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])
        for ns, ifname, ip in ((ns_a, if_a, ip_a), (ns_b, if_b, ip_b)):
            self.ns_sh(ns, ["ip", "addr", "add", f"{ip}/{plen}", "dev", ifname])
            self.ns_sh(ns, ["ip", "link", "set", ifname, "up"])
            # Offloads off: the capture then holds wire-sized segments with
            # correct checksums, as a capture on a Mac's en0 mostly does.
            self.ns_sh(ns, ["ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off", "gro", "off"], check=False)

    def set_rules(self, rules: list[list[str]]) -> None:
        """Replace the scenario firewall: flush the LAB chains, then add each `iptables` argv tail."""
        for table, _parent, chain in LAB_CHAINS:
            self.ns_sh(self.router, ["iptables", "-t", table, "-F", chain])
        # Forget NAT and filter state of earlier scenarios so a REDIRECT does
        # not outlive the scenario that set it.
        self.ns_sh(self.router, ["conntrack", "-F"], check=False)
        for rule in rules:
            self.ns_sh(self.router, ["iptables", *rule])

    def teardown(self) -> None:
        for ns in self.all:
            if ns in list_netns():
                delete_netns(ns)
            else:
                shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
