"""The lab's network: namespaces joined by veth pairs and one bridge, and nothing else.

    mac1 "Mac" 10.77.0.2 --+
    mac2       10.77.0.3 --+-- br0 10.77.0.1 router 10.77.1.1 --- 10.77.1.2 apple (17.253.1.x on lo)
    mac3       10.77.0.4 --+                        10.77.2.1 --- 10.77.2.2 control (198.18.0.10 on lo)
    mac4       10.77.0.5 --+

Every link is dual-stack: the LAN is 2a0e:77::/64 (the router ::1, the Macs
::2..::5, each also with its EUI-64 link-local address), the apple namespace
holds addresses in Apple's 2620:149::/32 and the control one 2001:2::10. The
clients hang off a bridge in the router namespace, like Macs on one switch; a
capture on that bridge is the span-port view of all of them, a capture on a
Mac's own c0 the view from that Mac. IPv6 router advertisements, router solicitations and
duplicate address detection are off: addresses are static and usable at once,
and an idle IPv4-only scenario puts no IPv6 packet on the wire.

No namespace has a link to the host or a default route: a packet for any
address the lab does not own has no route and never leaves the machine.
Namespace names carry the creating process id (``anl<pid>-client``); which of
them belong to a lab that is still running, and the removal of a dead lab's
leftovers, is ownership.py's business (a lock file, not the pid).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from analyzer.lab.addresses import (
    APPLE_ADDRS,
    APPLE_ADDRS6,
    APPLE_LINK_IP,
    APPLE_LINK_IP6,
    APPLE_NET6,
    CLIENTS,
    CLIENTS_BY_NAME,
    CONTROL_ADDRS,
    CONTROL_ADDRS6,
    CONTROL_LINK_IP,
    CONTROL_LINK_IP6,
    CONTROL_NET6,
    LAB_NET,
    LAB_NET6,
    ROUTER_APPLE_IP,
    ROUTER_APPLE_IP6,
    ROUTER_CLIENT_IP,
    ROUTER_CLIENT_IP6,
    ROUTER_CONTROL_IP,
    ROUTER_CONTROL_IP6,
    ROUTER_MAC,
    LabClient,
)
from analyzer.lab.firewall import IPV6_RULE  # a rule (argv tail) starting with it goes to ip6tables

NETNS_ETC = Path("/etc/netns")
# iptables chains the scenarios own; the built-in chains only jump to them, so
# a scenario's rules go away with one flush. ip6tables has the filter chains
# (no IPv6 proxy redirect in the lab).
LAB_CHAINS = (("filter", "FORWARD", "LAB_FWD"), ("filter", "INPUT", "LAB_IN"), ("nat", "PREROUTING", "LAB_PRE"))
LAB_CHAINS6 = (("filter", "FORWARD", "LAB_FWD"), ("filter", "INPUT", "LAB_IN"))
LAN_IF = "br0"  # the router's LAN bridge: where a span port would see every Mac
# Per-namespace IPv6 settings: static addresses only (no RA, no RS, no DAD
# delay), EUI-64 link-local addresses. Set on "default" before any interface
# exists and on "all" for what already does (lo).
_IPV6_SYSCTLS = ("accept_ra=0", "router_solicitations=0", "accept_dad=0", "dad_transmits=0", "addr_gen_mode=0",
                 "disable_ipv6=0")


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


@dataclass(frozen=True, slots=True)
class Topology:
    """Names of the lab's namespaces and interfaces for one run."""

    prefix: str

    @classmethod
    def for_this_process(cls) -> Topology:
        return cls(prefix=f"anl{os.getpid()}")

    @property
    def client(self) -> str:
        """The first Mac's namespace (mac1): every single-client scenario runs here."""
        return self.client_ns(CLIENTS[0].name)

    def client_ns(self, name: str) -> str:
        """The namespace of the lab client called `name` (see addresses.CLIENTS)."""
        if name not in CLIENTS_BY_NAME:
            raise LabError(f"unknown lab client {name!r}; known: {', '.join(CLIENTS_BY_NAME)}")
        index = [c.name for c in CLIENTS].index(name)
        return f"{self.prefix}-client" if index == 0 else f"{self.prefix}-client{index + 1}"

    @property
    def clients(self) -> tuple[str, ...]:
        return tuple(self.client_ns(c.name) for c in CLIENTS)

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
        return (*self.clients, self.router, self.apple, self.control)

    client_if = "c0"
    lan_if = LAN_IF

    def capture_point(self, where: str) -> tuple[str, str]:
        """(namespace, interface) to capture on: "client" is mac1's own interface, a client's name (mac4)
        that client's own interface, "lan" the router's bridge (the span-port view of every client)."""
        if where == "client":
            return self.client, self.client_if
        if where == "lan":
            return self.router, self.lan_if
        if where in CLIENTS_BY_NAME:
            return self.client_ns(where), self.client_if
        raise LabError(f"unknown capture point {where!r} (client, lan or one of {', '.join(CLIENTS_BY_NAME)})")

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
            # A client resolves through the router's dnsmasq: `ip netns exec`
            # bind-mounts this file over /etc/resolv.conf. One try, 1 s, so a
            # silent resolver costs the client little time.
            client = next((c for c in CLIENTS if self.client_ns(c.name) == ns), None)
            resolver = client.resolver if client else ROUTER_CLIENT_IP
            etc = NETNS_ETC / ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text(f"nameserver {resolver}\noptions timeout:1 attempts:2\n")
            (etc / "hosts").write_text("127.0.0.1 localhost\n")
            for key in ("all", "default"):
                for setting in _IPV6_SYSCTLS:
                    self.ns_sh(ns, ["sysctl", "-qw", f"net.ipv6.conf.{key}.{setting}"])
            self.ns_sh(ns, ["ip", "link", "set", "lo", "up"])
        self._lan()
        for client in CLIENTS:
            self._client(client)
        self._veth(self.router, "r1", (ROUTER_APPLE_IP, 30, ROUTER_APPLE_IP6),
                   self.apple, "a0", (APPLE_LINK_IP, 30, APPLE_LINK_IP6))
        self._veth(self.router, "r2", (ROUTER_CONTROL_IP, 30, ROUTER_CONTROL_IP6),
                   self.control, "k0", (CONTROL_LINK_IP, 30, CONTROL_LINK_IP6))
        self.ns_sh(self.router, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        self.ns_sh(self.router, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
        for addr in APPLE_ADDRS:
            self.ns_sh(self.apple, ["ip", "addr", "add", f"{addr}/32", "dev", "lo"])
        for addr in APPLE_ADDRS6:
            self.ns_sh(self.apple, ["ip", "-6", "addr", "add", f"{addr}/128", "dev", "lo"])
        for addr in CONTROL_ADDRS:
            self.ns_sh(self.control, ["ip", "addr", "add", f"{addr}/32", "dev", "lo"])
        for addr in CONTROL_ADDRS6:
            self.ns_sh(self.control, ["ip", "-6", "addr", "add", f"{addr}/128", "dev", "lo"])
        # Routes only towards lab prefixes; no default route anywhere.
        for client in CLIENTS:
            ns = self.client_ns(client.name)
            for prefix in ("17.0.0.0/8", "198.18.0.0/15", LAB_NET):
                self.ns_sh(ns, ["ip", "route", "add", prefix, "via", ROUTER_CLIENT_IP])
            for prefix in (APPLE_NET6, CONTROL_NET6, LAB_NET6):
                self.ns_sh(ns, ["ip", "-6", "route", "add", prefix, "via", ROUTER_CLIENT_IP6])
        self.ns_sh(self.router, ["ip", "route", "add", "17.0.0.0/8", "via", APPLE_LINK_IP])
        self.ns_sh(self.router, ["ip", "route", "add", "198.18.0.0/15", "via", CONTROL_LINK_IP])
        self.ns_sh(self.router, ["ip", "-6", "route", "add", APPLE_NET6, "via", APPLE_LINK_IP6])
        self.ns_sh(self.router, ["ip", "-6", "route", "add", CONTROL_NET6, "via", CONTROL_LINK_IP6])
        self.ns_sh(self.apple, ["ip", "route", "add", LAB_NET, "via", ROUTER_APPLE_IP])
        self.ns_sh(self.control, ["ip", "route", "add", LAB_NET, "via", ROUTER_CONTROL_IP])
        self.ns_sh(self.apple, ["ip", "-6", "route", "add", LAB_NET6, "via", ROUTER_APPLE_IP6])
        self.ns_sh(self.control, ["ip", "-6", "route", "add", LAB_NET6, "via", ROUTER_CONTROL_IP6])
        for table, parent, chain in LAB_CHAINS:
            self.ns_sh(self.router, ["iptables", "-t", table, "-N", chain])
            self.ns_sh(self.router, ["iptables", "-t", table, "-A", parent, "-j", chain])
        for table, parent, chain in LAB_CHAINS6:
            self.ns_sh(self.router, ["ip6tables", "-t", table, "-N", chain])
            self.ns_sh(self.router, ["ip6tables", "-t", table, "-A", parent, "-j", chain])

    def _lan(self) -> None:
        """The router's LAN side: a bridge (the switch the Macs share) holding the router's LAN addresses."""
        r = self.router
        self.ns_sh(r, ["ip", "link", "add", LAN_IF, "address", ROUTER_MAC, "type", "bridge", "stp_state", "0",
                       "forward_delay", "0", "mcast_snooping", "0"])
        self.ns_sh(r, ["ip", "addr", "add", f"{ROUTER_CLIENT_IP}/24", "dev", LAN_IF])
        self.ns_sh(r, ["ip", "-6", "addr", "add", f"{ROUTER_CLIENT_IP6}/64", "dev", LAN_IF, "nodad"])
        self.ns_sh(r, ["ip", "link", "set", LAN_IF, "up"])
        self._offloads_off(r, LAN_IF)
        # Where the host has br_netfilter loaded, bridged frames would also pass iptables; the lab's rules
        # are for what the router routes, so switch that off in this namespace (absent: nothing to do).
        for family in ("iptables", "ip6tables", "arptables"):
            self.ns_sh(r, ["sysctl", "-qw", f"net.bridge.bridge-nf-call-{family}=0"], check=False)

    def _client(self, client: LabClient) -> None:
        """One Mac: a veth c0 (its fixed MAC) in its namespace, the peer a port of the router's bridge."""
        ns = self.client_ns(client.name)
        index = [c.name for c in CLIENTS].index(client.name)
        port = "r0" if index == 0 else f"r0{index + 1}"  # mac1's peer keeps the single-client lab's name
        self.ns_sh(ns, ["ip", "link", "add", "c0", "address", client.mac, "type", "veth",
                        "peer", "name", port, "netns", self.router])
        self.ns_sh(ns, ["ip", "addr", "add", f"{client.ip}/24", "dev", "c0"])
        self.ns_sh(ns, ["ip", "-6", "addr", "add", f"{client.ip6}/64", "dev", "c0", "nodad"])
        # A bridge port is layer 2 only: no addresses of its own, no MLD reports.
        self.ns_sh(self.router, ["sysctl", "-qw", f"net.ipv6.conf.{port}.disable_ipv6=1"])
        self.ns_sh(self.router, ["ip", "link", "set", port, "master", LAN_IF])
        for where, ifname in ((ns, "c0"), (self.router, port)):
            self.ns_sh(where, ["ip", "link", "set", ifname, "up"])
            self._offloads_off(where, ifname)

    def _veth(self, ns_a: str, if_a: str, addrs_a: tuple[str, int, str], ns_b: str, if_b: str,
              addrs_b: tuple[str, int, str]) -> None:
        """A point-to-point link; each end gets (IPv4, prefix length, IPv6 in a /64)."""
        # Create inside ns_a so the host namespace never holds either end.
        self.ns_sh(ns_a, ["ip", "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])
        for ns, ifname, (ip, plen, ip6) in ((ns_a, if_a, addrs_a), (ns_b, if_b, addrs_b)):
            self.ns_sh(ns, ["ip", "addr", "add", f"{ip}/{plen}", "dev", ifname])
            self.ns_sh(ns, ["ip", "-6", "addr", "add", f"{ip6}/64", "dev", ifname, "nodad"])
            self.ns_sh(ns, ["ip", "link", "set", ifname, "up"])
            self._offloads_off(ns, ifname)

    def _offloads_off(self, ns: str, ifname: str) -> None:
        # Offloads off: the capture then holds wire-sized segments with
        # correct checksums, as a capture on a Mac's en0 mostly does.
        self.ns_sh(ns, ["ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off", "gro", "off"], check=False)

    def set_rules(self, rules: list[list[str]]) -> None:
        """Replace the scenario firewall: flush the LAB chains, then add each argv tail.

        A tail goes to `iptables`, or to `ip6tables` when it starts with IPV6_RULE (see firewall.py).
        """
        for table, _parent, chain in LAB_CHAINS:
            self.ns_sh(self.router, ["iptables", "-t", table, "-F", chain])
        for table, _parent, chain in LAB_CHAINS6:
            self.ns_sh(self.router, ["ip6tables", "-t", table, "-F", chain])
        # Forget NAT and filter state of earlier scenarios so a REDIRECT does
        # not outlive the scenario that set it.
        self.ns_sh(self.router, ["conntrack", "-F"], check=False)
        self.ns_sh(self.router, ["conntrack", "-F", "-f", "ipv6"], check=False)
        for rule in rules:
            if rule and rule[0] == IPV6_RULE:
                self.ns_sh(self.router, ["ip6tables", *rule[1:]])
            else:
                self.ns_sh(self.router, ["iptables", *rule])

    def forget_neighbours(self) -> None:
        """Drop the LAN's IPv6 neighbour entries, and the IPv4 ones of every Mac but mac1.

        A neighbour entry used in one scenario is re-checked seconds later (a unicast NS or ARP probe), in
        whatever capture runs then: an IPv4-only scenario must not show IPv6 neighbour discovery, nor a
        span capture a Mac that took no part in it. mac1's ARP entry for the router stays, as it always
        has in the single-client lab.
        """
        for client in CLIENTS:
            ns = self.client_ns(client.name)
            self.ns_sh(ns, ["ip", "-6", "neigh", "flush", "dev", self.client_if], check=False)
            if client is not CLIENTS[0]:
                self.ns_sh(ns, ["ip", "-4", "neigh", "flush", "dev", self.client_if], check=False)
                self.ns_sh(self.router, ["ip", "-4", "neigh", "flush", "to", client.ip], check=False)
        self.ns_sh(self.router, ["ip", "-6", "neigh", "flush", "dev", LAN_IF], check=False)

    def teardown(self) -> None:
        for ns in self.all:
            if ns in list_netns():
                delete_netns(ns)
            else:
                shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
