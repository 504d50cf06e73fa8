"""Router rules a scenario sets: argv tails for `iptables` on the lab's own LAB_* chains.

LAB_FWD filters what the router forwards (client <-> servers), LAB_IN what
reaches the router itself (its DNS), LAB_PRE (nat) redirects into a proxy.
"""

from __future__ import annotations

Rule = tuple[str, ...]


def drop(ip: str, port: int, proto: str = "tcp") -> Rule:
    return ("-A", "LAB_FWD", "-p", proto, "-d", ip, "--dport", str(port), "-j", "DROP")


def reject_rst(ip: str, port: int) -> Rule:
    return ("-A", "LAB_FWD", "-p", "tcp", "-d", ip, "--dport", str(port), "-j", "REJECT", "--reject-with", "tcp-reset")


def reject_icmp(ip: str, port: int) -> Rule:
    return ("-A", "LAB_FWD", "-p", "udp", "-d", ip, "--dport", str(port),
            "-j", "REJECT", "--reject-with", "icmp-port-unreachable")


def sni_match(name: str, action: str) -> Rule:
    """The DPI box: any TCP/443 segment carrying the name's bytes (the SNI in the ClientHello)."""
    tail = ("REJECT", "--reject-with", "tcp-reset") if action == "reset" else ("DROP",)
    return ("-A", "LAB_FWD", "-p", "tcp", "--dport", "443", "-m", "string", "--algo", "bm", "--string", name, "-j", *tail)


def dns_drop(name: str) -> Rule:
    """Silently drop DNS queries for one name (matched on its wire form: length-prefixed labels)."""
    wire = "".join(f"|{len(label):02x}|{label}" for label in name.split("."))
    return ("-A", "LAB_IN", "-p", "udp", "--dport", "53", "-m", "string", "--algo", "bm", "--hex-string", wire, "-j", "DROP")


def redirect(ip: str, port: int, to_port: int) -> Rule:
    return ("-t", "nat", "-A", "LAB_PRE", "-p", "tcp", "-d", ip, "--dport", str(port),
            "-j", "REDIRECT", "--to-ports", str(to_port))
