"""Matching the lab's truth (how each scenario was built) to what the engine and the diagnosis report."""

from __future__ import annotations

from typing import Any

TLS_VERSIONS = {"TLS 1.2": "TLSv12", "TLS 1.3": "TLSv13"}


def dn(text: str) -> str:
    """Distinguished names compared without the spacing after commas."""
    return ",".join(part.strip() for part in text.split(","))


def engine_flows_for(res: Any, truth_flow: dict[str, Any]) -> list[Any]:
    server = truth_flow["server"]
    proto = {"tcp": 6, "udp": 17}[truth_flow["proto"]]
    flows = [f for f in res.flows if f.flow.proto == proto and f.flow.server_ip == server["ip"]
             and f.flow.server_port == server["port"] and f.flow.client_ip == truth_flow["client"]["ip"]]
    if truth_flow.get("sni"):
        # Several built flows can share one server address (gs and gsa.apple.com): the SNI tells them apart.
        flows = [f for f in flows if f.server_name == truth_flow["sni"]]
    return flows


def report_flows_for(report: dict[str, Any], truth_flow: dict[str, Any]) -> list[dict[str, Any]]:
    server = truth_flow["server"]
    flows = [f for f in report["flows"] if f["proto"] == truth_flow["proto"] and f["server"]["ip"] == server["ip"]
             and f["server"]["port"] == server["port"] and f["client"]["ip"] == truth_flow["client"]["ip"]]
    if truth_flow.get("sni"):
        flows = [f for f in flows if f["sni"] == truth_flow["sni"]]
    elif truth_flow.get("names") and len({f["verdict"] for f in flows}) > 1:
        flows = [f for f in flows if truth_flow["names"][0] in f["names"]]
    return flows


def dns_for(transactions: list[Any], truth_dns: dict[str, Any]) -> list[Any]:
    q = truth_dns["query"].lower()
    return [t for t in transactions if t.query.lower().rstrip(".") == q and t.qtype == truth_dns["qtype"]]
