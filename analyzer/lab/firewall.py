"""Router rules a scenario sets: argv tails for `iptables` (or `ip6tables`) on the lab's own LAB_* chains.

LAB_FWD filters what the router forwards (client <-> servers), LAB_IN what
reaches the router itself (its DNS), LAB_PRE (nat, IPv4 only) redirects into a
proxy. A rule for an IPv6 address starts with netns.IPV6_RULE ("-6"): the
topology hands it to ip6tables, so one scenario can act on both families.
"""

from __future__ import annotations

import ipaddress

Rule = tuple[str, ...]
IPV6_RULE = "-6"  # netns.Topology.set_rules hands such a rule to ip6tables


def _family(*addrs: str | None) -> Rule:
    """() for IPv4 rules, ("-6",) when the addresses (or networks) are IPv6; mixing the two is a scenario bug."""
    versions = {ipaddress.ip_network(a, strict=False).version for a in addrs if a}
    if len(versions) > 1:
        raise ValueError(f"one rule, two address families: {addrs}")
    return (IPV6_RULE,) if versions == {6} else ()


def _source(src: str | None) -> Rule:
    return ("-s", src) if src else ()


def drop(ip: str, port: int, proto: str = "tcp", *, src: str | None = None) -> Rule:
    """Drop what goes to ip:port (from one client address only, with src)."""
    return (*_family(ip, src), "-A", "LAB_FWD", "-p", proto, *_source(src), "-d", ip, "--dport", str(port),
            "-j", "DROP")


def reject_rst(ip: str, port: int, *, src: str | None = None) -> Rule:
    return (*_family(ip, src), "-A", "LAB_FWD", "-p", "tcp", *_source(src), "-d", ip, "--dport", str(port),
            "-j", "REJECT", "--reject-with", "tcp-reset")


def reject_icmp(ip: str, port: int) -> Rule:
    unreachable = "icmp6-port-unreachable" if _family(ip) else "icmp-port-unreachable"
    return (*_family(ip), "-A", "LAB_FWD", "-p", "udp", "-d", ip, "--dport", str(port),
            "-j", "REJECT", "--reject-with", unreachable)


def sni_match(name: str, action: str) -> Rule:
    """The DPI box: any TCP/443 segment carrying the name's bytes (the SNI in the ClientHello)."""
    tail = ("REJECT", "--reject-with", "tcp-reset") if action == "reset" else ("DROP",)
    return ("-A", "LAB_FWD", "-p", "tcp", "--dport", "443", "-m", "string", "--algo", "bm", "--string", name, "-j", *tail)


def dns_drop(name: str, *, ipv6: bool = False) -> Rule:
    """Silently drop DNS queries for one name (matched on its wire form: length-prefixed labels)."""
    wire = "".join(f"|{len(label):02x}|{label}" for label in name.split("."))
    return (*((IPV6_RULE,) if ipv6 else ()), "-A", "LAB_IN", "-p", "udp", "--dport", "53",
            "-m", "string", "--algo", "bm", "--hex-string", wire, "-j", "DROP")


def redirect(ip: str, port: int, to_port: int) -> Rule:
    return ("-t", "nat", "-A", "LAB_PRE", "-p", "tcp", "-d", ip, "--dport", str(port),
            "-j", "REDIRECT", "--to-ports", str(to_port))
