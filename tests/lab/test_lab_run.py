"""The lab run itself: every scenario ran as built, captures are small and stay inside the lab, nothing is left."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import dpkt
import pytest

from analyzer.lab import addresses as A
from analyzer.lab.netns import NETNS_ETC, list_netns
from analyzer.lab.runner import WORK_PREFIX
from analyzer.lab.scenarios import ClientFiles, build_scenarios

pytestmark = pytest.mark.lab

REQUIRED = (
    "tls13_ok", "tls12_ok", "apns_5223_ok", "syn_blackholed", "rejected_rst", "closed_port_rst",
    "apns_5223_blocked_443_fallback", "ntp_ok", "ntp_icmp_unreachable", "ntp_no_reply",
    "dns_nxdomain", "dns_sinkhole", "dns_servfail", "dns_no_response", "dns_cname_chain", "server_tls_alert",
    "intercept_mitmproxy_tls12_reject", "intercept_mitmproxy_tls12_trust",
    "intercept_mitmproxy_tls13_reject", "intercept_mitmproxy_tls13_trust",
    "intercept_squid_tls12_reject", "intercept_squid_tls12_trust",
    "intercept_squid_tls13_reject", "intercept_squid_tls13_trust",
    "proxy_connect_allowed", "proxy_connect_denied", "sni_reset", "sni_drop", "mixed_session",
    "dual_stack_v6_dropped_v4_fallback", "dual_stack_v6_dropped_no_fallback", "dual_stack_dns_v6_connect_v4",
    "dual_stack_apns_v6_5223_dropped", "span_three_macs_one_blocked",
    # issue 12's other network classes and issue 13's unknown inspection CA
    "ntp_chronyd_daemon_ok", "ntp_chronyd_daemon_dropped", "ntp_ntpdig_ok", "ntp_ntpdig_dropped",
    "ntp_server_port_unreachable", "selective_proxy_bump_one_splice_rest", "tls13_only_server_tls12_client",
    "proxy_connect_5223_ssl_ports", "captive_probe_ok", "captive_portal_http_302", "captive_portal_dns_hijack",
    "http3_ok", "http3_udp_blocked_tcp_fallback", "private_relay_blocked", "private_relay_dns_nxdomain",
    "starttls_mail_submission", "intercept_unknown_ca_tls12_trust", "intercept_unknown_ca_tls12_reject",
)
SCENARIOS = {s.name: s for s in build_scenarios(ClientFiles(Path("/unused"), Path("/unused"), Path("/unused")))}
ALL = list(SCENARIOS)
# The lab's own prefixes; for IPv6 also link-local and link-scope multicast (neighbour discovery) on the LAN.
LAB_NETS = [ipaddress.ip_network(n) for n in ("10.77.0.0/16", "17.0.0.0/8", "198.18.0.0/15", A.LAB_NET6,
                                              A.APPLE_NET6, A.CONTROL_NET6, "fe80::/10", "ff02::/16")]


def test_every_required_scenario_ran(lab: Any) -> None:
    assert set(REQUIRED) <= set(lab.results) == set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_scenario_ran_as_built(lab: Any, name: str) -> None:
    result = lab.results[name]
    assert result.error is None
    for step in result.steps:
        assert step.as_expected, (f"{' '.join(step.argv)} -> {step.returncode} (expected "
                                  f"{'success' if step.expected_ok else 'failure'}): {step.stderr or step.stdout}")


@pytest.mark.parametrize("name", ALL)
def test_capture_is_small_and_never_leaves_the_lab(lab: Any, name: str) -> None:
    pcap = lab.results[name].pcap
    assert 24 < pcap.stat().st_size < 1_000_000
    with pcap.open("rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        assert reader.datalink() == dpkt.pcap.DLT_EN10MB
        frames = [dpkt.ethernet.Ethernet(buf) for _ts, buf in reader]
    ips = [f.data for f in frames if isinstance(f.data, (dpkt.ip.IP, dpkt.ip6.IP6))]
    assert [ip for ip in ips if isinstance(ip, dpkt.ip.IP)], "no IPv4 packet"
    if "ipv6" not in SCENARIOS[name].tags:
        # IPv6 is on in every namespace, but only a dual-stack scenario may use it: the others' captures
        # stay what they were (no router solicitation, no MLD report, no neighbour discovery).
        assert not [f for f in frames if f.type == dpkt.ethernet.ETH_TYPE_IP6], "IPv6 in an IPv4-only scenario"
    for ip in ips:
        for raw in (ip.src, ip.dst):
            addr = ipaddress.ip_address(raw)
            assert any(addr in net for net in LAB_NETS), f"{addr} is outside the lab"


def test_truth_json_and_readme_describe_every_scenario(lab: Any) -> None:
    truth = json.loads((lab.out / "truth.json").read_text())
    assert list(truth["scenarios"]) == ALL
    for name, entry in truth["scenarios"].items():
        assert entry["pcap"] == f"{name}.pcap" and (lab.out / entry["pcap"]).exists()
        assert entry["observed"]["ok"] is True
    readme = (lab.out / "README.md").read_text()
    assert all(f"`{name}.pcap`" in readme for name in ALL)
    assert (lab.out / "ca" / "trust-apple.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_lab_is_fast_enough_for_ci(lab: Any) -> None:
    assert lab.seconds < 180


def test_teardown_left_no_namespace_and_no_process(lab: Any) -> None:
    prefix = f"anl{os.getpid()}-"
    assert not [ns for ns in list_netns() if ns.startswith(prefix)]
    assert not list(NETNS_ETC.glob(f"{prefix}*"))
    # Every server's command line names the run's work directory, apple-net-lab-<pid>-*.
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    assert not [line for line in ps.splitlines() if f"{WORK_PREFIX}{os.getpid()}-" in line]
