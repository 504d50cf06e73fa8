"""What to change, per service, written from the evidence the flows carry.

Each sentence follows what the packets showed: a SYN dropped in silence asks for a firewall rule; a RST made
by a middlebox in the server's name asks for the filter rule to go; a RST with the server's own TTL says the
server refused, and no firewall change will help; a proxy's 403 on 5223 names squid's port ACLs; a TLS
version alert says what each side offered.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from analyzer.catalogue.loader import Catalogue
from analyzer.catalogue.model import Entry, HostKind
from analyzer.catalogue.model import Status as EntryStatus
from analyzer.diagnosis.paths import ip_object

TCP, UDP = 6, 17
TLS_VERSION_TEXT = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}
PRIVATE_RELAY_HOSTS = frozenset({"mask.icloud.com", "mask-h2.icloud.com"})
PRIVATE_RELAY_ADVICE = (
    "Blocking mask.icloud.com (QUIC, UDP 443) and mask-h2.icloud.com (TCP 443) is Apple's documented way to turn "
    "off iCloud Private Relay for a network: Macs and iPhones then say Private Relay is unavailable here. If that "
    "is not intended, allow UDP 443 to mask.icloud.com and TCP 443 to mask-h2.icloud.com (for blocking, Apple "
    "recommends a fast NXDOMAIN answer for these names over dropped packets).")


@dataclass(frozen=True, slots=True)
class AppleRanges:
    """Apple's address blocks from the catalogue's firewall guidance: what to allow when names cannot be used."""

    networks: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]

    @classmethod
    def of(cls, catalogue: Catalogue) -> AppleRanges:
        nets = [(e.network, e.host) for e in catalogue.entries
                if e.status is EntryStatus.GUIDANCE and e.host_kind is HostKind.CIDR and e.network is not None]
        return cls(tuple(sorted(nets, key=lambda n: (n[0].version, str(n[0])))))  # type: ignore[arg-type]

    def text(self, server_ips: list[str]) -> str:
        """The blocks holding these servers, else every block of their address families ("17.0.0.0/8")."""
        chosen: list[str] = []
        families = set()
        for ip in server_ips:
            addr = ip_object(ip)
            if addr is None:
                continue
            families.add(addr.version)
            for net, host in self.networks:
                if addr.version == net.version and addr in net and host not in chosen:
                    chosen.append(host)
        if not chosen:
            chosen = [host for net, host in self.networks if net.version in (families or {4})]
        return " and ".join(chosen) if chosen else "Apple's address ranges"


def tls_version_text(code: int | None) -> str:
    return TLS_VERSION_TEXT.get(code or 0, f"version 0x{code:04x}" if code else "an unknown version")


def protocol_version_advice(host: str, alert_from_client: bool, client_max: int | None,
                            server_version: int | None) -> str:
    """A TLS handshake that failed on the version: say what each side offered or chose."""
    offered = tls_version_text(client_max)
    if alert_from_client:
        chose = tls_version_text(server_version)
        return (f"TLS to {host} fails on the protocol version (the client's fatal protocol_version alert): the server "
                f"chose {chose}, which the client refuses (it offered up to {offered}). If a proxy or firewall "
                "answers in the server's name, it is the one choosing the old version: make it pass this host "
                "untouched.")
    wants = "TLS 1.3" if client_max == 0x0303 else "a newer version than the client offers"
    return (f"TLS to {host} fails on the protocol version (the server's fatal protocol_version alert): the client "
            f"offered at most {offered}, and the server requires {wants}. Update or reconfigure the client (Apple's "
            "services require TLS 1.2 or later, some TLS 1.3), or, if a proxy or TLS-terminating firewall offers "
            "the old version in the client's name, make it pass this host untouched.")


def connect_denied_advice(target: str, proxy: str, status: int, reason: str) -> str:
    port = target.rsplit(":", 1)[-1]
    if status == 407:
        return (f"Allow CONNECT to {target} on the proxy {proxy} (it answered 407); Apple services cannot "
                "authenticate to proxies.")
    if port != "443":
        return (f"The proxy {proxy} refuses CONNECT to {target} ({status} {reason}): squid's stock ACLs allow "
                f"CONNECT only to SSL_ports (443). Add `acl SSL_ports port {port}` and `acl Safe_ports port "
                f"{port}` before `http_access deny CONNECT !SSL_ports` (or the same rule in your proxy), or let "
                f"the Macs reach port {port} directly.")
    return f"Allow CONNECT to {target} on the proxy {proxy}: its policy answered {status} {reason}."


def server_refused_advice(host: str, port_text: str, servers: list[str], names: list[str]) -> str:
    where = ", ".join(servers[:3])
    asked = ", ".join(names[:3]) or host
    return (f"The server itself refused {port_text} ({where}: its reset carries the server's own TTL): nothing "
            "on the path blocked it, and opening a port will not help. Usually Apple serves this port only "
            f"from some of its addresses, or DNS gave a wrong address for {asked} (check what your resolver "
            "answers against a public one), or a transparent proxy answers in the server's name.")


def is_private_relay(entry: Entry) -> bool:
    return entry.host in PRIVATE_RELAY_HOSTS
