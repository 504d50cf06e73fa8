"""Real NTP clients on UDP 123 are NTP, never QUIC (issue 12, item 3).

Captures from tests/fixtures/local/make_ntp_clients.sh: chronyd -Q, a
chronyd that selects the server and keeps polling, ntpsec's ntpd and ntpdig,
each asking chrony for time.apple.com with NTP allowed and with the server's
firewall dropping it. ntpdig's request (0xe3, then zeros) is what QUIC
sniffing used to take for a Version Negotiation; the port-ownership tests
show the rule, not one port, decides.
"""

from __future__ import annotations

from pathlib import Path

import dpkt
import pytest
from helpers_udp import LOCAL, udp_datagrams, udp_payloads

import analyzer
from analyzer.engine import run_engine
from analyzer.inspect import FlowFacts
from analyzer.protocols.quic import is_client_initial, looks_like_quic

TIME_APPLE = "17.253.34.125"

# capture -> (client, NTP answered, NTP flows, client requests in all, first byte of the requests)
CAPTURES = {
    "ntp-chronyd-q": ("chronyd -Q", True, 1, 1, 0x23),
    "ntp-chronyd-sync": ("chronyd", True, 34, 34, 0x23),
    "ntp-ntpd": ("ntpd", True, 1, 6, 0x23),
    "ntp-ntpdig": ("ntpdig", True, 1, 1, 0xE3),
    "ntp-chronyd-q-dropped": ("chronyd -Q", False, 2, 2, 0x23),
    "ntp-ntpd-dropped": ("ntpd", False, 1, 2, 0x23),
    "ntp-ntpdig-dropped": ("ntpdig", False, 1, 1, 0xE3),
}


def _ntp_flows(path: Path) -> list[FlowFacts]:
    return [f for f in run_engine([path]).flows if f.flow.server_port == 123]


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_real_clients_are_ntp(name: str) -> None:
    _, answered, n_flows, n_requests, first_byte = CAPTURES[name]
    path = LOCAL / f"{name}.pcap"
    requests = [d.payload for d in udp_payloads(path, 123) if d.dst == (TIME_APPLE, 123)]
    assert len(requests) == n_requests and {r[0] for r in requests} == {first_byte}
    flows = _ntp_flows(path)
    assert len(flows) == n_flows
    assert sum(f.ntp.requests for f in flows if f.ntp is not None) == n_requests
    for f in flows:
        assert f.app == "ntp" and f.quic is None and f.ntp is not None
        assert f.flow.server_ip == TIME_APPLE
        assert not [w for w in f.weirds if w.startswith("quic_")]
        if answered:
            assert (f.ntp.replies, f.ntp.stratum, f.ntp.kiss_code) == (f.ntp.requests, 2, None)
        else:
            assert f.ntp.replies == 0 and f.flow.server.packets == 0


def test_the_lookups_are_dns() -> None:
    # The other owned port of the registry: each capture's lookups of time.apple.com.
    for name in CAPTURES:
        flows = [f for f in run_engine([LOCAL / f"{name}.pcap"]).flows if f.flow.server_port == 53]
        assert flows and {f.app for f in flows} == {"dns"} and not any(f.weirds for f in flows)


def test_ntpdig_request_is_what_quic_sniffing_mistook() -> None:
    # The reason for the rule: on its own this datagram passes the QUIC test.
    (request,) = [d.payload for d in udp_payloads(LOCAL / "ntp-ntpdig.pcap", 123) if d.dst == (TIME_APPLE, 123)]
    assert request[:5] == b"\xe3\x00\x00\x00\x00" and len(request) == 48
    assert looks_like_quic(request) and not is_client_initial(request)


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_the_answer_names_time_apple_com(name: str) -> None:
    # Each client resolved time.apple.com first (dnsmasq in the server namespace).
    _, answered, _, _, _ = CAPTURES[name]
    a = analyzer.analyze(LOCAL / f"{name}.pcap")
    ntp = a.flows[a.flows.server_port == 123]
    assert set(ntp.service) == {"device_setup/time.apple.com"}
    assert all("time.apple.com" in names for names in ntp.names)
    assert set(ntp.verdict) == ({"ok"} if answered else {"no_response"})
    (row,) = a.services[a.services.host == "time.apple.com"].itertuples()
    assert row.status == ("working" if answered else "blocked")


# -- the rule, on ports the captures did not use ------------------------------------------


def _rehome(src: Path, dst: Path, old: int, new: int) -> Path:
    """Copy an Ethernet capture with UDP port `old` renamed `new` (checksum 0: not computed)."""
    with src.open("rb") as fin, dst.open("wb") as fout:
        reader = dpkt.pcap.Reader(fin)
        writer = dpkt.pcap.Writer(fout, linktype=reader.datalink())
        for ts, buf in reader:
            eth = dpkt.ethernet.Ethernet(buf)
            udp = eth.data.data
            if isinstance(udp, dpkt.udp.UDP):
                udp.sport = new if udp.sport == old else udp.sport
                udp.dport = new if udp.dport == old else udp.dport
                udp.sum = 0
            writer.writepkt(bytes(eth), ts)
    return dst


def _udp_apps(path: Path) -> list[str | None]:
    return [f.app for f in run_engine([path]).flows if f.flow.proto == 17 and f.flow.server_port != 53]


def test_off_its_port_the_ntpdig_request_is_sniffed_as_quic(tmp_path: Path) -> None:
    # Content alone cannot tell; only the port's owner can claim the packet.
    moved = _rehome(LOCAL / "ntp-ntpdig.pcap", tmp_path / "ntp-on-4123.pcap", 123, 4123)
    assert _udp_apps(moved) == ["quic"]


def test_a_padded_quic_initial_stays_quic_on_an_owned_port(tmp_path: Path) -> None:
    # aioquic's first Initial here starts 0xcd, which parses as an NTPv1
    # broadcast header; a 1,200-byte client Initial of QUIC v1 is QUIC anyway.
    src = LOCAL / "quic-aioquic-big.pcap"
    first = udp_datagrams(src)[0].payload
    assert first[0] == 0xCD and is_client_initial(first)
    moved = _rehome(src, tmp_path / "quic-on-123.pcap", 4433, 123)
    (f,) = [f for f in run_engine([moved]).flows]
    assert f.app == "quic" and f.ntp is None
    assert f.quic is not None and f.quic.state.client_hello is not None
    assert f.quic.state.client_hello.server_name == "gateway.icloud.com"
