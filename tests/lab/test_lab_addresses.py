"""The lab's address table and firewall rules hold together (no root needed: nothing runs)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from analyzer.catalogue import load_catalogue
from analyzer.catalogue.matcher import Matcher
from analyzer.lab import addresses as A
from analyzer.lab.firewall import IPV6_RULE, drop, reject_icmp, reject_rst
from analyzer.lab.netns import LabError, Topology
from analyzer.lab.scenarios import ClientFiles, build_scenarios

SCENARIOS = build_scenarios(ClientFiles(Path("/unused"), Path("/unused"), Path("/unused")))


def test_every_client_has_its_own_mac_and_addresses_inside_the_lab() -> None:
    lan, lan6 = ipaddress.ip_network("10.77.0.0/24"), ipaddress.ip_network(A.LAB_NET6)
    for field in ("name", "ip", "ip6", "mac"):
        values = [getattr(c, field) for c in A.CLIENTS]
        assert len(set(values)) == len(values), field
    for c in A.CLIENTS:
        assert ipaddress.ip_address(c.ip) in lan and ipaddress.ip_address(c.ip6) in lan6
        assert ipaddress.ip_address(c.link_local).is_link_local
        assert c.resolver in (A.ROUTER_CLIENT_IP, A.ROUTER_CLIENT_IP6)
        assert int(c.mac.split(":")[0], 16) & 0x03 == 0x02, "locally administered unicast, like a Mac's private address"
    assert A.CLIENTS[0].ip == A.CLIENT_IP and A.CLIENTS[0].ip6 == A.CLIENT_IP6
    # RFC 4291 appendix A: U/L bit flipped, ff:fe in the middle.
    assert A.link_local("02:77:00:00:00:02") == "fe80::77:ff:fe00:2"


def test_aaaa_records_are_apple_or_control_addresses() -> None:
    for name, ip in A.AAAA_RECORDS.items():
        assert name in A.A_RECORDS, "a dual-stack name has an A record too"
        home = A.APPLE_NET6 if A.A_RECORDS[name] in A.APPLE_ADDRS else A.CONTROL_NET6
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(home), name


def test_the_gs_ipv6_address_is_apples_range_and_nothing_narrower() -> None:
    """The catalogue knows 2620:149::/32 (firewall guidance) and APNs' /48s in it: gs.apple.com's lab address
    must fall only in the /32, or a gs.apple.com flow would look like push traffic by its address alone."""
    matcher = Matcher(load_catalogue())
    assert [m.pattern for m in matcher.ip_matches(A.GS_IP6)] == [A.APPLE_NET6]
    # The courier, on the other hand, sits where Apple's APNs documentation puts it.
    assert [m.pattern for m in matcher.ip_matches(A.COURIER_IP6)] == ["2620:149:a44::/48", A.APPLE_NET6]


def test_firewall_rules_pick_the_address_family() -> None:
    assert drop(A.GS_IP, 443)[0] == "-A"
    assert drop(A.GS_IP6, 443)[:2] == (IPV6_RULE, "-A")
    assert drop(A.APPLE_NET6, 443)[0] == IPV6_RULE
    assert reject_icmp(A.GS_IP6, 123)[-1] == "icmp6-port-unreachable"
    rule = reject_rst(A.GS_IP, 443, src=A.CLIENTS[1].ip)
    assert rule[rule.index("-s") + 1] == A.CLIENTS[1].ip
    with pytest.raises(ValueError):
        drop(A.GS_IP6, 443, src=A.CLIENT_IP)


def test_every_step_names_a_lab_client_and_every_capture_point_exists() -> None:
    topo = Topology("anl0")
    for sc in SCENARIOS:
        topo.capture_point(sc.capture)
        for step in sc.steps:
            assert step.client in A.CLIENTS_BY_NAME, (sc.name, step.client)
    with pytest.raises(LabError):
        topo.capture_point("nowhere")
    assert topo.client == "anl0-client" and topo.client_ns("mac2") == "anl0-client2"


def test_ipv6_flows_and_lookups_use_the_clients_ipv6_address() -> None:
    """Truth of a dual-stack flow names the address the client really used, not CLIENT_IP."""
    client_addrs = {a for c in A.CLIENTS for a in (c.ip, c.ip6)}
    for sc in SCENARIOS:
        for f in [*sc.truth["flows"], *sc.truth["dns"]]:
            client, server = (ipaddress.ip_address(f[k]["ip"]) for k in ("client", "server"))
            assert str(client) in client_addrs, sc.name
            assert client.version == server.version, (sc.name, f)
            if client.version == 6:
                assert "ipv6" in sc.tags, sc.name
