"""README.md for a lab run: what each capture shows, and how to look at it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from analyzer.lab import addresses as A
from analyzer.lab import truth as T

if TYPE_CHECKING:
    from analyzer.lab.runner import ScenarioResult
    from analyzer.lab.scenarios import Scenario


def _flow_line(f: dict[str, object]) -> str:
    server = f["server"]
    assert isinstance(server, dict)
    client = f.get("client")
    source = f"from {client['ip']} " if isinstance(client, dict) and client["ip"] != A.CLIENT_IP else ""
    bits = [f"{source}{f['proto']} {server['ip']}:{server['port']}", f"verdict={f['verdict']}"]
    for key in ("sni", "reset_by", "state", "inspection_product"):
        if f.get(key):
            bits.append(f"{key}={f[key]}")
    tls = f.get("tls")
    if isinstance(tls, dict):
        version = tls["version"] or f"no ServerHello (client offered {tls['offered']})"
        bits.append(f"{version}{'' if tls['established'] else ', not established'}")
        if tls.get("alert"):
            bits.append(f"alert={tls['alert']['description']}({tls['alert']['code']}) from {tls['alert']['from']}")
    proxy = f.get("proxy")
    if isinstance(proxy, dict):
        bits.append(f"CONNECT {proxy['connect_target']} -> {proxy['status']}")
    return "; ".join(bits)


def _dns_path(d: dict[str, dict[str, str]]) -> str:
    """"from CLIENT to SERVER: " where a lookup is not mac1's to the router's IPv4 address (other Macs, IPv6)."""
    client, server = d["client"]["ip"], d["server"]["ip"]
    return "" if (client, server) == (A.CLIENT_IP, A.ROUTER_CLIENT_IP) else f"from {client} to {server}: "


def render_readme(results: Sequence[ScenarioResult], scenarios: Sequence[Scenario], seconds: float) -> str:
    by_name = {s.name: s for s in scenarios}
    lines = [
        "# apple-net-analyzer lab captures",
        "",
        ("Each `<scenario>.pcap` was captured with tcpdump on the client \"Mac\" "
         f"({A.CLIENT_IP}) of a lab made of network namespaces: a router {A.ROUTER_CLIENT_IP} (firewall, dnsmasq, "
         "unbound, squid, mitmproxy) and servers in 17.0.0.0/8 (nginx, openssl s_server, chrony) plus a non-Apple "
         f"control server {A.CONTROL_IP}. Servers' packets reach the client with TTL {T.SERVER_TTL}; anything the "
         f"router makes itself (its DNS, proxies, injected resets, ICMP) with TTL {T.ROUTER_TTL}."),
        "",
        ("The certificates are throwaway lab copies named like Apple's CAs (\"Apple Root CA\", \"Apple Server "
         "Authentication CA\", \"Apple Public Server RSA CA 12 - G1\") and like inspection products (mitmproxy, "
         "Zscaler), plus one named like no product (\"Acme Corp Web Filter CA\"); `ca/` has the trust stores the clients used. `truth.json` says, per scenario, what was built: "
         "expected flows, DNS answers and verdicts in the words of the analyzer's JSON report."),
        "",
        f"Lab runtime: {seconds:.1f} s for {len(results)} scenarios.",
        "",
        "| scenario | what it shows | as built |",
        "|---|---|---|",
    ]
    for r in results:
        shows = by_name[r.name].shows.replace("|", "\\|")
        lines.append(f"| `{r.name}.pcap` | {shows} | {'yes' if r.ok else 'NO: ' + (r.error or 'client outcome differs')} |")
    lines += ["", "## Expected flows and lookups", ""]
    for r in results:
        lines.append(f"### {r.name}")
        where = r.truth.get("capture") or {}
        if where.get("point", "client") != "client":
            lines.append(f"- captured on {where['interface']} in the {where['namespace']} namespace")
        lines += [f"- flow: {_flow_line(f)}" for f in r.truth["flows"]]
        lines += [f"- dns: {_dns_path(d)}{d['query']} {d['qtype']} -> {d['rcode'] or 'no response'} "
                  f"({d['verdict']})" for d in r.truth["dns"]]
        if r.truth.get("rules"):
            lines.append("- router rules: " + "; ".join(
                f"`ip6tables {rule[3:]}`" if rule.startswith("-6 ") else f"`iptables {rule}`"
                for rule in r.truth["rules"]))
        lines.append("")
    lines += [
        "## Looking at them",
        "",
        "- `tshark -r tls12_ok.pcap -Y tls.handshake.certificate -V` shows the chain;",
        "  `-Y 'tcp.flags.reset==1' -T fields -e ip.src -e ip.ttl` tells injected resets (TTL 64) from the server's (63).",
        "- TLS 1.3 interception hides the certificate: compare the SYN-ACK/ServerHello TTL (64 = the router's proxy)",
        "  and look for the client's 19-byte encrypted alert record right after the server's flight.",
        "",
    ]
    return "\n".join(lines)
