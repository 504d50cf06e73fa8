"""Link-layer identity: Ethernet addresses on flows, and the IP->MAC bindings ARP and NDP state.

Parsers are checked on hand-built messages (every field, every malformed
case); the engine on real captures: tests/fixtures/local/dual-stack-*.pcap,
made by make_dual_stack.sh (the Linux kernel's own ARP and Neighbor Discovery
between two network namespaces, curl and ping over IPv4 and IPv6).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import jsonschema
import pytest
from helpers_pcap import LOCAL
from hypothesis import given, settings
from hypothesis import strategies as st

import analyzer
from analyzer.capture import Decoder, RawPacket, ip_bytes
from analyzer.cli import main
from analyzer.engine import EngineConfig, EngineResult, run_engine
from analyzer.neighbors import NeighborBinding, NeighborSource, NeighborTracker, merge_bindings
from analyzer.protocols.neighbors import WEIRDS, ArpMessage, NdpMessage, ParseError, parse_arp, parse_ndp
from analyzer.report.records import capture_dict, flow_dict, neighbor_dict

CRAFTED = Path(__file__).parent / "fixtures" / "crafted"
VETH = LOCAL / "dual-stack-veth.pcap"
ANY = LOCAL / "dual-stack-any.pcap"
SCHEMA = json.loads((Path(analyzer.__file__).parent / "report" / "report.schema.json").read_text())

MAC = bytes.fromhex("027700000002")  # the "Mac" of make_dual_stack.sh
SRV = bytes.fromhex("027700000001")
MAC_TEXT, SRV_TEXT = "02:77:00:00:00:02", "02:77:00:00:00:01"
BROADCAST = b"\xff" * 6


def arp(op: int, sha: bytes, spa: str, tha: bytes, tpa: str, *, head: bytes = b"\x00\x01\x08\x00\x06\x04") -> bytes:
    return head + struct.pack("!H", op) + sha + ip_bytes(spa) + tha + ip_bytes(tpa)


def lla(kind: int, mac: bytes) -> bytes:
    return bytes([kind, 1]) + mac


def v6(text: str) -> bytes:
    return ip_bytes(text)


# --- ARP ---------------------------------------------------------------------------------


def test_arp_request_states_the_sender_only() -> None:
    msg = parse_arp(arp(1, MAC, "10.77.0.2", bytes(6), "10.77.0.1") + bytes(18))  # Ethernet padding after it
    assert msg == ArpMessage(1, MAC, v6("10.77.0.2"), bytes(6), v6("10.77.0.1"))
    assert msg.claims == ((v6("10.77.0.2"), MAC),)


def test_arp_reply_states_both_pairs() -> None:
    msg = parse_arp(arp(2, SRV, "10.77.0.1", MAC, "10.77.0.2"))
    assert msg.claims == ((v6("10.77.0.1"), SRV), (v6("10.77.0.2"), MAC))


def test_arp_probe_and_odd_addresses_claim_nothing() -> None:
    assert parse_arp(arp(1, MAC, "0.0.0.0", bytes(6), "10.77.0.2")).claims == ()  # RFC 5227 probe
    assert parse_arp(arp(2, BROADCAST, "10.77.0.1", BROADCAST, "10.77.0.2")).claims == ()
    assert parse_arp(arp(2, bytes.fromhex("01005e000001"), "10.77.0.1", bytes(6), "10.77.0.2")).claims == ()
    gratuitous = parse_arp(arp(2, MAC, "10.77.0.2", MAC, "10.77.0.2"))
    assert gratuitous.claims == ((v6("10.77.0.2"), MAC),)  # stated once, not twice


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x00\x01\x08\x00\x06", "arp_truncated"),
        (arp(1, MAC, "10.77.0.2", bytes(6), "10.77.0.1")[:27], "arp_truncated"),
        (arp(1, MAC, "10.77.0.2", bytes(6), "10.77.0.1", head=b"\x00\x06\x08\x00\x06\x04"), "arp_unsupported"),
        (arp(1, MAC, "10.77.0.2", bytes(6), "10.77.0.1", head=b"\x00\x01\x86\xdd\x06\x04"), "arp_unsupported"),
        (arp(1, MAC, "10.77.0.2", bytes(6), "10.77.0.1", head=b"\x00\x01\x08\x00\x08\x04"), "arp_bad_lengths"),
        (arp(3, MAC, "10.77.0.2", bytes(6), "10.77.0.1"), "arp_unknown_opcode"),
    ],
)
def test_malformed_arp_is_a_named_error(data: bytes, kind: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_arp(data)
    assert err.value.kind == kind and kind in WEIRDS


# --- NDP ---------------------------------------------------------------------------------


def test_neighbor_solicitation_binds_its_source_to_the_source_lla() -> None:
    body = v6("fd77::1") + lla(1, MAC)
    msg = parse_ndp(135, 0, 255, body, v6("fd77::a11:b0b"))
    assert msg == NdpMessage(135, v6("fd77::1"), MAC, None)
    assert msg.claims(v6("fd77::a11:b0b")) == ((v6("fd77::a11:b0b"), MAC),)


def test_neighbor_advertisement_binds_its_target_to_the_target_lla() -> None:
    body = v6("fd77::2") + bytes([14, 1]) + bytes(6) + lla(2, MAC)  # an unknown option first (skipped)
    msg = parse_ndp(136, 0, 255, body, v6("fd77::2"))
    assert msg == NdpMessage(136, v6("fd77::2"), None, MAC)
    assert msg.claims(v6("fe80::1")) == ((v6("fd77::2"), MAC),)  # the target, whatever the source


def test_router_solicitation_advertisement_and_redirect() -> None:
    rs = parse_ndp(133, 0, 255, lla(1, MAC), v6("fe80::77:ff:fe00:2"))
    assert rs == NdpMessage(133, None, MAC, None)
    ra_body = struct.pack("!II", 0, 0) + bytes([3, 4, 64, 0xC0]) + bytes(28) + lla(1, SRV)  # prefix info, then SLLA
    ra = parse_ndp(134, 0, 255, ra_body, v6("fe80::1"))
    assert ra.source_lla == SRV and ra.claims(v6("fe80::1")) == ((v6("fe80::1"), SRV),)
    redirect = parse_ndp(137, 0, 255, v6("fe80::9") + v6("2620:149::1") + lla(2, MAC), v6("fe80::1"))
    assert redirect.claims(v6("fe80::1")) == ((v6("fe80::9"), MAC),)


def test_ndp_claims_nothing_it_should_not() -> None:
    dad = parse_ndp(135, 0, 255, v6("fd77::2"), bytes(16))  # DAD probe: unspecified source, no option
    assert dad.claims(bytes(16)) == ()
    multicast_target = parse_ndp(136, 0, 255, v6("ff02::1") + lla(2, MAC), v6("fe80::1"))
    assert multicast_target.claims(v6("fe80::1")) == ()
    group_mac = parse_ndp(136, 0, 255, v6("fd77::2") + lla(2, bytes.fromhex("333300000001")), v6("fd77::2"))
    assert group_mac.claims(v6("fd77::2")) == ()
    infiniband = parse_ndp(135, 0, 255, v6("fd77::1") + bytes([1, 3]) + bytes(22), v6("fd77::2"))
    assert infiniband.source_lla is None  # a 20-byte link-layer address: not Ethernet


@pytest.mark.parametrize(
    ("icmp_type", "code", "hlim", "body", "kind"),
    [
        (135, 0, 254, v6("fd77::1") + lla(1, MAC), "ndp_bad_hop_limit"),  # forwarded: not from the link
        (135, 1, 255, v6("fd77::1") + lla(1, MAC), "ndp_bad_code"),
        (136, 0, 255, v6("fd77::1")[:15], "ndp_truncated"),
        (134, 0, 255, bytes(7), "ndp_truncated"),
        (135, 0, 255, v6("fd77::1") + b"\x01\x00" + MAC, "ndp_bad_option_length"),  # length 0
        (135, 0, 255, v6("fd77::1") + b"\x01\x02" + MAC, "ndp_bad_option_length"),  # runs past the end
        (135, 0, 255, v6("fd77::1") + b"\x01", "ndp_bad_option_length"),
    ],
)
def test_malformed_ndp_is_a_named_error(icmp_type: int, code: int, hlim: int, body: bytes, kind: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_ndp(icmp_type, code, hlim, body, v6("fd77::2"))
    assert err.value.kind == kind and kind in WEIRDS


def test_a_source_lla_from_the_unspecified_address_is_an_error() -> None:
    with pytest.raises(ParseError) as err:
        parse_ndp(135, 0, 255, v6("fd77::1") + lla(1, MAC), bytes(16))
    assert err.value.kind == "ndp_lla_from_unspecified"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([133, 134, 135, 136, 137]), st.integers(0, 1), st.binary(min_size=16, max_size=16))
def test_any_bytes_give_a_message_or_the_parsers_own_error(data: bytes, icmp_type: int, code: int, src: bytes) -> None:
    for parse in (lambda: parse_arp(data), lambda: parse_ndp(icmp_type, code, 255, data, src).claims(src)):
        try:
            parse()
        except ParseError as exc:
            assert exc.kind in WEIRDS


# --- the tracker ---------------------------------------------------------------------------


def test_tracker_is_bounded_and_counts_what_it_drops() -> None:
    decoder = Decoder()
    tracker = NeighborTracker(max_bindings=2)
    for i, ip in enumerate(["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.3"]):
        frame = SRV + MAC + b"\x08\x06" + arp(1, bytes([2, 0, 0, 0, 0, int(ip[-1])]), ip, bytes(6), "10.0.0.9")
        assert decoder(RawPacket(100.0 + i, 1, frame, len(frame))) is None
    for frame in decoder.arp:
        tracker.arp(frame)
    # 10.0.0.2 was stated longest ago when 10.0.0.3 came: it goes.
    assert [(b.ip, b.count, b.first_ts, b.last_ts) for b in tracker.bindings()] == [
        ("10.0.0.1", 2, 100.0, 102.0),
        ("10.0.0.3", 1, 103.0, 103.0),
    ]
    assert tracker.weird == {"neighbor_table_full": 1}


def test_arp_inside_vlan_tags_reaches_the_tracker_with_its_link_addresses() -> None:
    frame = BROADCAST + MAC + b"\x81\x00\x00\x64\x08\x06" + arp(1, MAC, "10.77.0.2", bytes(6), "10.77.0.1")
    decoder = Decoder()
    assert decoder(RawPacket(5.0, 1, frame, len(frame))) is None
    assert [(f.ts, f.macs, f.data[:8]) for f in decoder.arp] == [(5.0, BROADCAST + MAC, frame[18:26])]


def test_cooked_captures_keep_the_senders_address_for_arp() -> None:
    for name in ("sll.pcap", "sll2.pcap"):
        result = run_engine([CRAFTED / name])
        # make_crafted.py packs a 10-byte hex string into SLL's 8-byte address field: 02:00:00:00:00:00 is sent.
        assert [(b.ip, b.mac, b.source) for b in result.neighbors] == [("192.0.2.10", "02:00:00:00:00:0a", "arp")]
        assert result.flows[0].flow.client_mac == "02:00:00:00:00:00"


def test_merged_shards_add_up() -> None:
    a = [NeighborBinding("fd77::2", MAC_TEXT, NeighborSource.NDP, 5.0, 6.0, 2)]
    b = [
        NeighborBinding("10.77.0.2", MAC_TEXT, NeighborSource.ARP, 1.0, 1.0, 1),
        NeighborBinding("fd77::2", MAC_TEXT, NeighborSource.NDP, 3.0, 4.0, 1),
    ]
    assert merge_bindings([a, b]) == [
        NeighborBinding("10.77.0.2", MAC_TEXT, NeighborSource.ARP, 1.0, 1.0, 1),
        NeighborBinding("fd77::2", MAC_TEXT, NeighborSource.NDP, 3.0, 6.0, 3),
    ]


# --- real captures ---------------------------------------------------------------------------

EXPECTED_BINDINGS = [
    ("10.77.0.1", SRV_TEXT, "arp"),  # the ARP reply's sender
    ("10.77.0.2", MAC_TEXT, "arp"),  # the request's sender, the reply's target
    ("fd77::1", SRV_TEXT, "ndp"),  # NA target
    ("fd77::2", MAC_TEXT, "ndp"),  # NA target: the server asked for it
    ("fd77::a11:b0b", MAC_TEXT, "ndp"),  # NS source (the Mac's second global address)
    ("fe80::77:ff:fe00:1", SRV_TEXT, "ndp"),  # RS source, NA target
    ("fe80::77:ff:fe00:2", MAC_TEXT, "ndp"),  # RS and NS source
]


@pytest.fixture(scope="module", params=[VETH, ANY], ids=["ethernet", "linux-sll2"])
def dual_stack(request: pytest.FixtureRequest) -> EngineResult:
    return run_engine([request.param])


def test_one_host_has_the_same_mac_on_its_ipv4_and_ipv6_flows(dual_stack: EngineResult) -> None:
    http = sorted((f.flow.client_ip, f.flow.client_mac, f.flow.server_ip, f.flow.server_mac)
                  for f in dual_stack.flows if f.flow.proto == 6)
    assert http == [
        ("10.77.0.2", MAC_TEXT, "10.77.0.1", SRV_TEXT),
        ("fd77::2", MAC_TEXT, "fd77::1", SRV_TEXT),
        ("fd77::a11:b0b", MAC_TEXT, "fd77::1", SRV_TEXT),
    ]
    # Every flow the Mac started, over any of its four addresses, carries its MAC; the server's, the server's.
    for f in dual_stack.flows:
        r = f.flow
        mine = r.client_ip in ("10.77.0.2", "fd77::2", "fd77::a11:b0b", "fe80::77:ff:fe00:2")
        if mine or r.client_ip in ("10.77.0.1", "fd77::1", "fe80::77:ff:fe00:1"):
            assert r.client_mac == (MAC_TEXT if mine else SRV_TEXT), r
            assert r.server_mac in (None, SRV_TEXT if mine else MAC_TEXT), r


def test_arp_and_ndp_bind_every_address_to_its_host(dual_stack: EngineResult) -> None:
    assert [(b.ip, b.mac, b.source) for b in dual_stack.neighbors] == EXPECTED_BINDINGS
    by_ip = {b.ip: b for b in dual_stack.neighbors}
    assert by_ip["10.77.0.2"].count == 2 and by_ip["10.77.0.1"].count == 1
    assert all(b.first_ts <= b.last_ts for b in dual_stack.neighbors)
    assert not dual_stack.weird
    assert not dual_stack.captures[0].on_device


def test_serialised_records_carry_the_macs_and_fit_the_schema(dual_stack: EngineResult) -> None:
    report = {
        "tool": {"name": "apple-net-analyzer", "version": "0"}, "schema_version": 1,
        "captures": [capture_dict(c) for c in dual_stack.captures],
        "summary": {"flows": 0, "apple_flows": 0, "by_verdict": {}}, "services": [], "dns": [], "findings": [],
        "flows": [], "neighbors": [neighbor_dict(b) for b in dual_stack.neighbors],
    }
    jsonschema.validate(report, SCHEMA)
    endpoint = SCHEMA["$defs"]["endpoint"]
    flows = [flow_dict(f) for f in dual_stack.flows]
    for d in flows:
        jsonschema.validate(d["client"], endpoint)
        jsonschema.validate(d["server"], endpoint)
    assert {(d["client"]["ip"], d["client"]["mac"]) for d in flows if d["proto"] == "tcp"} == {
        ("10.77.0.2", MAC_TEXT), ("fd77::2", MAC_TEXT), ("fd77::a11:b0b", MAC_TEXT)}
    assert report["neighbors"][0] == {"ip": "10.77.0.1", "mac": SRV_TEXT, "source": "arp",
                                      "first_ts": dual_stack.neighbors[0].first_ts,
                                      "last_ts": dual_stack.neighbors[0].last_ts, "count": 1}
    assert report["captures"][0]["on_device"] is False


@pytest.mark.parametrize("workers", ["1", "2"])
def test_flows_jsonl_writes_the_bindings_once(tmp_path: Path, workers: str) -> None:
    out = tmp_path / "out.jsonl"
    assert main(["flows", str(VETH), "--format", "jsonl", "-o", str(out), "-j", workers]) == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    neighbors = [e for e in events if e["event_type"] == "neighbor"]
    assert [(e["neighbor"]["ip"], e["neighbor"]["mac"], e["neighbor"]["source"]) for e in neighbors] == EXPECTED_BINDINGS
    assert all(e["src_ip"] == e["neighbor"]["ip"] and e["src_mac"] == e["neighbor"]["mac"] for e in neighbors)
    flows = [e["flow"] for e in events if e["event_type"] == "flow" and e["flow"]["proto"] == "tcp"]
    assert sorted((f["client"]["ip"], f["client"]["mac"], f["server"]["mac"]) for f in flows) == [
        ("10.77.0.2", MAC_TEXT, SRV_TEXT), ("fd77::2", MAC_TEXT, SRV_TEXT), ("fd77::a11:b0b", MAC_TEXT, SRV_TEXT)]


def test_the_bindings_table_limit_is_the_engines_config() -> None:
    result = run_engine([VETH], EngineConfig(max_neighbors=3))
    # 7 bindings for 3 places: 4 evictions, and 2 more for two link-local ones stated again after theirs.
    assert len(result.neighbors) == 3 and result.weird["neighbor_table_full"] == 6
    assert {b.ip for b in result.neighbors} <= {ip for ip, _, _ in EXPECTED_BINDINGS}


def test_captures_taken_on_the_device_say_so() -> None:
    assert run_engine([CRAFTED / "pktap.pcap"]).captures[0].on_device  # PKTAP link type
    assert run_engine([CRAFTED / "darwin_process.pcapng"]).captures[0].on_device  # Apple process blocks
    assert not run_engine([CRAFTED / "qinq.pcap"]).captures[0].on_device
    pktap = run_engine([CRAFTED / "pktap.pcap"])
    # PKTAP's inner Ethernet header gives the MAC; its raw-IP inner link (DLT 12) none.
    assert sorted((f.flow.client_mac or "-") for f in pktap.flows) == ["-", "02:00:00:00:00:0a", "02:00:00:00:00:0a"]


def test_malformed_arp_and_ndp_frames_become_weirds_in_the_engine(tmp_path: Path) -> None:
    def ndp_frame(hlim: int, body: bytes) -> bytes:
        icmp = bytes([135, 0, 0, 0]) + bytes(4) + body  # checksum not checked
        ip6 = struct.pack("!IHBB", 0x60000000, len(icmp), 58, hlim) + v6("fd77::2") + v6("ff02::1:ff00:1")
        return SRV + MAC + b"\x86\xdd" + ip6 + icmp

    frames = [
        SRV + MAC + b"\x08\x06" + arp(1, MAC, "10.77.0.2", bytes(6), "10.77.0.1")[:20],  # cut inside the addresses
        SRV + MAC + b"\x08\x06" + arp(9, MAC, "10.77.0.2", bytes(6), "10.77.0.1"),
        ndp_frame(64, v6("fd77::1") + lla(1, MAC)),  # a routed "NDP" message
        ndp_frame(255, v6("fd77::1") + b"\x01\x00" + MAC),
        ndp_frame(255, v6("fd77::1") + lla(1, MAC)),  # the one good message
    ]
    path = tmp_path / "hostile-neighbors.pcap"
    records = b"".join(struct.pack("<IIII", 1000 + i, 0, len(f), len(f)) + f for i, f in enumerate(frames))
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + records)
    result = run_engine([path])
    assert {k: v for k, v in result.weird.items() if k.startswith(("arp_", "ndp_"))} == {
        "arp_truncated": 1, "arp_unknown_opcode": 1, "ndp_bad_hop_limit": 1, "ndp_bad_option_length": 1}
    assert [(b.ip, b.mac, b.first_ts) for b in result.neighbors] == [("fd77::2", MAC_TEXT, 1004.0)]
    assert not any(k.startswith("internal_error") for k in result.weird)
