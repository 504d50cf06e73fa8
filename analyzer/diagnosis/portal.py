"""Captive portals: a network that answers for the internet until someone signs in.

Macs probe `http://captive.apple.com/hotspot-detect.html` and expect Apple's "Success" page. A portal answers
the probe itself, with a redirect to its login page (or 511 Network Authentication Required), and often
answers every DNS name with its own address. Neither is a DNS filter or a firewall blocking Apple: the Mac
shows the portal's sign-in sheet, and everything works after sign-in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import urlsplit

from analyzer.diagnosis.paths import ip_object
from analyzer.dnsmap import DNSTransaction
from analyzer.inspect import FlowFacts

PROBE_HOSTS = frozenset({"captive.apple.com"})
PROBE_PATHS = ("/hotspot-detect.html", "/library/test/success.html")
# Distinct names, all answered with one local address by one resolver: a portal's DNS. Fewer will do when
# that address is the local box that redirected the probe.
HIJACK_NAMES = 3


@dataclass(frozen=True, slots=True)
class Portal:
    url: str | None  # the login page (the probe's redirect target), when seen
    addresses: tuple[str, ...]  # where the portal answers: the probe's server, the hijacked DNS answer
    evidence: tuple[str, ...]
    probe_flows: tuple[str, ...]  # uids of the redirected probes
    hijacked_names: tuple[str, ...]  # names whose DNS answer was the portal's address

    def answered_by_portal(self, address: str) -> bool:
        return address in self.addresses


def _probe_redirect(f: FlowFacts) -> tuple[int, str | None] | None:
    """(status, Location) when this flow is a connectivity probe answered by something other than Apple."""
    h = f.http
    if h is None or h.request is None or h.response is None:
        return None
    req, resp = h.request, h.response
    host = (req.host or "").split(":", 1)[0].lower().rstrip(".")
    path = req.target.split("?", 1)[0]
    if host not in PROBE_HOSTS and not path.endswith(PROBE_PATHS):
        return None
    if 300 <= resp.status < 400 or resp.status == 511:
        return resp.status, resp.header("Location")
    return None


def _local(address: str) -> bool:
    ip = ip_object(address)
    return ip is not None and not ip.is_global and not ip.is_unspecified and not ip.is_loopback


def detect_portal(flows: list[FlowFacts], dns: list[DNSTransaction]) -> Portal | None:
    evidence: list[str] = []
    addresses: list[str] = []
    probes: list[str] = []
    url: str | None = None
    for f in flows:
        hit = _probe_redirect(f)
        if hit is None:
            continue
        status, location = hit
        r = f.flow
        probes.append(r.uid)
        addresses.append(r.server_ip)
        url = url or location
        evidence.append(f"the connectivity probe http://{(f.http.request.host if f.http and f.http.request else '')}"
                        f"{f.http.request.target if f.http and f.http.request else ''} was answered by "
                        f"{r.server_ip} with {status}" + (f" to {location}" if location else ""))
    # A portal's DNS answers every name with one address until sign-in; a DNS filter answers only the names
    # it blocks. So: several names, one local address, and no other address from that resolver until then.
    answered = sorted((t for t in dns if t.rcode == "NOERROR" and t.addresses), key=lambda t: t.ts)
    names_by_addr: dict[tuple[str, str], set[str]] = defaultdict(set)
    last_ts: dict[tuple[str, str], float] = {}
    for t in answered:
        if len(set(t.addresses)) == 1:
            key = (t.server_ip, t.addresses[0])
            names_by_addr[key].add(t.query.lower().rstrip("."))
            last_ts[key] = t.ts
    location_host = (urlsplit(url).hostname or "").lower() if url else ""
    hijacked: set[str] = set()
    for (resolver, addr), names in names_by_addr.items():
        names = names - {location_host}
        every = all(set(t.addresses) == {addr} for t in answered
                    if t.server_ip == resolver and t.ts <= last_ts[(resolver, addr)])
        # The probe's server address alone proves nothing of DNS: a transparent portal answers in the
        # genuine server's name, at the genuine address.
        if not _local(addr) or not ((every and len(names) >= HIJACK_NAMES) or addr in addresses):
            continue
        hijacked |= names
        if addr not in addresses:
            addresses.append(addr)
        shown = ", ".join(sorted(names)[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        evidence.append(f"{resolver} answered every name with the portal's address {addr} "
                        f"({len(names)} names: {shown})")
    if not probes and not hijacked:
        return None
    return Portal(url, tuple(dict.fromkeys(addresses)), tuple(evidence), tuple(probes), tuple(sorted(hijacked)))
