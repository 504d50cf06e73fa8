"""Builders for a scenario's truth: what was built, in the words of the JSON report contract.

Field names follow contracts/report.schema.json (flows[].server, sni, names,
verdict, reset_by, tls{version, established, alpn, alert}, proxy{connect_target,
status}; dns[].query, qtype, rcode, answers, verdict). Extra keys say what the
report cannot yet carry: which product intercepted (`inspection_product`),
who generated a packet (`middlebox_ttl`), and `visible`: which facts are in
clear on the wire, so a test knows what it may demand of the engine.
"""

from __future__ import annotations

from typing import Any

from analyzer.lab import addresses as A
from analyzer.lab import pki

Json = dict[str, Any]

APPLE_AUTH_CA = pki.dn_string(pki.APPLE_AUTH_CA_DN)
APPLE_PUBLIC_CA = pki.dn_string(pki.APPLE_PUBLIC_CA_DN)
APPLE_ROOT = pki.dn_string(pki.APPLE_ROOT_DN)
CONTROL_ROOT = pki.dn_string(pki.CONTROL_ROOT_DN)
MITM_CA = pki.dn_string(pki.MITM_CA_DN)
ZSCALER_INT = pki.dn_string(pki.ZSCALER_INT_DN)
ZSCALER_ROOT = pki.dn_string(pki.ZSCALER_ROOT_DN)
UNKNOWN_CA = pki.dn_string(pki.UNKNOWN_CA_DN)

# Product name the analyzer should report for each interception CA (None: a CA
# named like no product, which must be detected but left unnamed), the real
# software that did the interception in the lab, and the forged leaf's issuer.
INSPECTION: dict[str, dict[str, str | None]] = {
    "mitmproxy": {"product": "mitmproxy", "software": "mitmproxy (mitmdump --mode transparent)", "issuer": MITM_CA},
    "squid": {"product": "Zscaler", "software": "squid-openssl ssl-bump with a Zscaler-named CA", "issuer": ZSCALER_INT},
    "unknown_ca": {"product": None, "issuer": UNKNOWN_CA,
                   "software": "mitmproxy (mitmdump --mode transparent) with a corporate CA named like no product"},
}

# Who put a packet on the wire, seen from the client: servers are one hop
# behind the router (TTL 64 - 1); the router, its proxies and its firewall
# answer with a fresh TTL of 64.
SERVER_TTL = 63
ROUTER_TTL = 64


def cert(subject: str, issuer: str) -> Json:
    return {"subject": subject, "issuer": issuer}


def chain_for(leaf_cn: str, issuer: str, root: str | None = APPLE_ROOT) -> list[Json]:
    """The chain a server sends: leaf, then its issuing CA (none for a root-issued leaf)."""
    out = [cert(f"CN={leaf_cn}", issuer)]
    if root is not None:
        out.append(cert(issuer, root))
    return out


def tls(
    version: str | None,
    established: bool,
    *,
    alpn: list[str],
    offered: str = "TLS 1.3",
    alert: Json | None = None,
    certificates: list[Json] | None = None,
) -> Json:
    """TLS truth.

    version: what the ServerHello chose (None when no ServerHello came back);
    offered: the highest version in the ClientHello; alpn: the protocols the
    client offered (the server's choice is encrypted in TLS 1.3);
    certificates and alert: only where they travel in clear.
    """
    return {
        "version": version,
        "offered": offered,
        "established": established,
        "alpn": alpn,
        "alert": alert,
        "certificates": certificates or [],
        "certificates_visible": bool(certificates),
    }


# ALPN lists the lab's clients offer.
CURL_ALPN = ["h2", "http/1.1"]
PY_ALPN = ["http/1.1"]
APNS_ALPN = ["apns-security-v3"]
NO_ALPN: list[str] = []


def alert(sender: str, description: str, code: int) -> Json:
    return {"from": sender, "level": "fatal", "description": description, "code": code}


def flow(
    server_ip: str,
    port: int,
    verdict: str,
    *,
    proto: str = "tcp",
    sni: str | None = None,
    names: list[str] | None = None,
    reset_by: str | None = None,
    state: str | None = None,
    tls_info: Json | None = None,
    proxy: Json | None = None,
    inspection: str | None = None,
    icmp: Json | None = None,
    reply_ttl: int | None = SERVER_TTL,
    reset_ttl: int | None = None,
    note: str = "",
    client_tool: str = "",
    client_ip: str = A.CLIENT_IP,
) -> Json:
    """One flow as built. client_ip: the address the client used (a dual-stack Mac's IPv6 address, or
    another Mac's); TTLs are IPv6 hop limits for an IPv6 flow (the same 64 and 63 in the lab)."""
    info = INSPECTION.get(inspection or "")
    return {
        "proto": proto,
        "client": {"ip": client_ip},
        "server": {"ip": server_ip, "port": port},
        "verdict": verdict,
        "reset_by": reset_by,
        "state": state,
        "sni": sni,
        "names": names if names is not None else ([sni] if sni else []),
        "tls": tls_info,
        "proxy": proxy,
        "inspection_product": info["product"] if info else None,
        "inspection_software": info["software"] if info else None,
        "inspection_issuer": info["issuer"] if info else None,
        "icmp": icmp,
        # TTL of what answers the client in the server's name: its non-RST
        # packets (None: none came) and its RSTs (None: no RST expected; the
        # middlebox's 64 when the firewall injects it).
        "reply_ttl": reply_ttl,
        "reset_ttl": reset_ttl,
        "note": note,
        "client_tool": client_tool,
    }


def dns(
    query: str,
    rcode: str | None,
    verdict: str,
    answers: list[Json] | None = None,
    qtype: str = "A",
    *,
    client_ip: str = A.CLIENT_IP,
    server_ip: str = A.ROUTER_CLIENT_IP,
) -> Json:
    """One lookup as built; client_ip/server_ip: the addresses it travelled between (IPv6 for a Mac whose
    resolver is the router's IPv6 address)."""
    return {
        "client": {"ip": client_ip},
        "server": {"ip": server_ip, "port": 53},
        "transport": "udp",
        "query": query,
        "qtype": qtype,
        "rcode": rcode,
        "answers": answers or [],
        "verdict": verdict,
    }


def a(name: str, ip: str, ttl: int = 300) -> Json:
    return {"name": name, "type": "A", "data": ip, "ttl": ttl}


def aaaa(name: str, ip: str, ttl: int = 300) -> Json:
    return {"name": name, "type": "AAAA", "data": ip, "ttl": ttl}


def cname(name: str, target: str, ttl: int = 300) -> Json:
    return {"name": name, "type": "CNAME", "data": target, "ttl": ttl}


def resolved(name: str, qtype: str = "A", *, client_ip: str = A.CLIENT_IP, server_ip: str = A.ROUTER_CLIENT_IP) -> Json:
    """A successful A (or AAAA) lookup of a name dnsmasq knows; AAAA for a name without one is NOERROR, empty."""
    if qtype == "AAAA":
        answers = [aaaa(name, A.AAAA_RECORDS[name])] if name in A.AAAA_RECORDS else []
    else:
        answers = [a(name, A.A_RECORDS[name])]
    return dns(name, "NOERROR", "ok", answers, qtype, client_ip=client_ip, server_ip=server_ip)


def answer(
    services: dict[str, str | Json] | None = None,
    *,
    findings: list[str] | None = None,
    no_findings: list[str] | None = None,
    advice: dict[str, list[str]] | None = None,
    no_advice: dict[str, list[str]] | None = None,
    headline: list[str] | None = None,
) -> Json:
    """The answer an admin reads for a scenario: what the report must say, not only the flow verdicts.

    services: catalogue host -> status ("working", "degraded", "blocked", "intercepted", "not_seen"), or a dict
    {"status": ..., "clients_tried": n, "clients_failed": n} where the clients count matters (span ports);
    every report row with that host must have that status. findings: finding kinds that must be present;
    no_findings: kinds that must be absent. advice / no_advice: host -> words (case-insensitive) that the
    row's advice must contain / must not contain. headline: words the headline must contain.
    """
    return {
        "services": {h: (v if isinstance(v, dict) else {"status": v}) for h, v in (services or {}).items()},
        "findings": findings or [],
        "no_findings": no_findings or [],
        "advice": advice or {},
        "no_advice": no_advice or {},
        "headline": headline or [],
    }
