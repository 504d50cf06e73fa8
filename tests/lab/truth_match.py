"""Matching the lab's truth (how each scenario was built) to what the engine and the diagnosis report."""

from __future__ import annotations

import ipaddress
from typing import Any

TLS_VERSIONS = {"TLS 1.2": "TLSv12", "TLS 1.3": "TLSv13"}


def dn(text: str) -> str:
    """Distinguished names compared without the spacing after commas."""
    return ",".join(part.strip() for part in text.split(","))


def same_ip(a: object, b: object) -> bool:
    """Two addresses are one, however they are written (IPv6 has several spellings)."""
    try:
        return ipaddress.ip_address(str(a)) == ipaddress.ip_address(str(b))
    except ValueError:
        return False


def engine_flows_for(res: Any, truth_flow: dict[str, Any]) -> list[Any]:
    """The engine's flows for one built flow: same protocol, server address and port, and client address
    (several Macs in one capture, or one Mac's IPv4 and IPv6 addresses, are different clients here)."""
    server = truth_flow["server"]
    proto = {"tcp": 6, "udp": 17}[truth_flow["proto"]]
    flows = [f for f in res.flows if f.flow.proto == proto and same_ip(f.flow.server_ip, server["ip"])
             and f.flow.server_port == server["port"] and same_ip(f.flow.client_ip, truth_flow["client"]["ip"])]
    if truth_flow.get("sni"):
        # Several built flows can share one server address (gs and gsa.apple.com): the SNI tells them apart.
        flows = [f for f in flows if f.server_name == truth_flow["sni"]]
    return flows


def report_flows_for(report: dict[str, Any], truth_flow: dict[str, Any]) -> list[dict[str, Any]]:
    server = truth_flow["server"]
    flows = [f for f in report["flows"] if f["proto"] == truth_flow["proto"]
             and same_ip(f["server"]["ip"], server["ip"]) and f["server"]["port"] == server["port"]
             and same_ip(f["client"]["ip"], truth_flow["client"]["ip"])]
    if truth_flow.get("sni"):
        flows = [f for f in flows if f["sni"] == truth_flow["sni"]]
    elif truth_flow.get("names") and len({f["verdict"] for f in flows}) > 1:
        flows = [f for f in flows if truth_flow["names"][0] in f["names"]]
    return flows


def dns_for(transactions: list[Any], truth_dns: dict[str, Any]) -> list[Any]:
    """The engine's transactions for one built lookup: same name, type, client and server address."""
    q = truth_dns["query"].lower()
    return [t for t in transactions if t.query.lower().rstrip(".") == q and t.qtype == truth_dns["qtype"]
            and same_ip(t.client_ip, truth_dns["client"]["ip"]) and same_ip(t.server_ip, truth_dns["server"]["ip"])]


def report_dns_for(report: dict[str, Any], truth_dns: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's DNS transactions for one built lookup: same name, type and client address."""
    q = truth_dns["query"].lower()
    return [d for d in report["dns"] if d["query"].lower().rstrip(".") == q and d["qtype"] == truth_dns["qtype"]
            and same_ip(d["client"]["ip"], truth_dns["client"]["ip"])]
