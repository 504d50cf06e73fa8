"""QUIC Initial parsing: RFC test vectors, corpus captures against their baselines,
local aioquic captures (multi-Initial ClientHello, Retry, Version Negotiation,
CONNECTION_CLOSE), the flow record's `tls` object against Zeek's ssl.log, and
property tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from helpers_udp import CORPUS, LOCAL, Datagram, fmt, udp_datagrams
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.engine import run_engine
from analyzer.inspect import QUICFacts
from analyzer.protocols._buffer import ParseError
from analyzer.protocols.quic import (
    QUIC_V1,
    QUIC_V2,
    Ack,
    ConnectionClose,
    Crypto,
    LongHeader,
    PacketType,
    Padding,
    Ping,
    QUICClientHello,
    QUICConnectionClose,
    QUICEvent,
    QUICGoogleHello,
    QUICInitialAssembler,
    QUICOneRTT,
    QUICPacketSeen,
    QUICServerHello,
    QUICVersionNegotiation,
    QUICWeird,
    ShortHeader,
    decode_packet_number,
    decrypt_long_packet,
    initial_keys,
    initial_salt,
    initial_secrets,
    looks_like_quic,
    packet_keys,
    parse_frames,
    parse_gquic_client_hello,
    split_datagram,
    version_name,
)
from analyzer.protocols.tls import HRR_RANDOM, parse_client_hello, parse_server_hello
from analyzer.report.records import flow_dict, quic_tls_dict

EXPECTED = {
    rec["id"]: rec for rec in map(json.loads, (CORPUS / "expected.jsonl").read_text().splitlines())
}

# ------------------------------------------------------------ RFC 9001 appendix A (v1)

RFC_DCID = bytes.fromhex("8394c8f03e515708")

V1_CLIENT_SECRET = "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea"
V1_SERVER_SECRET = "3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b"
# The CRYPTO frame of A.2: a ClientHello for example.com offering ALPN "alpn".
RFC_CLIENT_FRAMES = bytes.fromhex(
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
    "75300901100f088394c8f03e51570806048000ffff"
) + bytes(917)
V1_CLIENT_PACKET = bytes.fromhex(
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
    "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
    "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
    "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
    "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
    "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
    "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
    "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
    "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
    "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
    "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
    "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
    "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
    "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
    "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
    "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
    "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
    "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
    "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
    "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
    "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
    "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
    "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
    "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
    "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
    "e221af44860018ab0856972e194cd934"
)
RFC_SERVER_FRAMES = bytes.fromhex(
    "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739"
    "88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94"
    "0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00"
    "020304"
)
V1_SERVER_PACKET = bytes.fromhex(
    "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a"
    "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3"
    "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
    "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4"
    "2158407dd074ee"
)

# ------------------------------------------------------------ RFC 9369 appendix A (v2)

V2_CLIENT_SECRET = "14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b"
V2_SERVER_SECRET = "0263db1782731bf4588e7e4d93b7463907cb8cd8200b5da55a8bd488eafc37c1"
V2_CLIENT_PACKET = bytes.fromhex(
    "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485"
    "dd04de806071bf03dceebfa162e75d6c96058bdbfb127cdfcbf903388e99ad04"
    "9f9a3dd4425ae4d0992cfff18ecf0fdb5a842d09747052f17ac2053d21f57c5d"
    "250f2c4f0e0202b70785b7946e992e58a59ac52dea6774d4f03b55545243cf1a"
    "12834e3f249a78d395e0d18f4d766004f1a2674802a747eaa901c3f10cda5500"
    "cb9122faa9f1df66c392079a1b40f0de1c6054196a11cbea40afb6ef5253cd68"
    "18f6625efce3b6def6ba7e4b37a40f7732e093daa7d52190935b8da58976ff33"
    "12ae50b187c1433c0f028edcc4c2838b6a9bfc226ca4b4530e7a4ccee1bfa2a3"
    "d396ae5a3fb512384b2fdd851f784a65e03f2c4fbe11a53c7777c023462239dd"
    "6f7521a3f6c7d5dd3ec9b3f233773d4b46d23cc375eb198c63301c21801f6520"
    "bcfb7966fc49b393f0061d974a2706df8c4a9449f11d7f3d2dcbb90c6b877045"
    "636e7c0c0fe4eb0f697545460c806910d2c355f1d253bc9d2452aaa549e27a1f"
    "ac7cf4ed77f322e8fa894b6a83810a34b361901751a6f5eb65a0326e07de7c12"
    "16ccce2d0193f958bb3850a833f7ae432b65bc5a53975c155aa4bcb4f7b2c4e5"
    "4df16efaf6ddea94e2c50b4cd1dfe06017e0e9d02900cffe1935e0491d77ffb4"
    "fdf85290fdd893d577b1131a610ef6a5c32b2ee0293617a37cbb08b847741c3b"
    "8017c25ca9052ca1079d8b78aebd47876d330a30f6a8c6d61dd1ab5589329de7"
    "14d19d61370f8149748c72f132f0fc99f34d766c6938597040d8f9e2bb522ff9"
    "9c63a344d6a2ae8aa8e51b7b90a4a806105fcbca31506c446151adfeceb51b91"
    "abfe43960977c87471cf9ad4074d30e10d6a7f03c63bd5d4317f68ff325ba3bd"
    "80bf4dc8b52a0ba031758022eb025cdd770b44d6d6cf0670f4e990b22347a7db"
    "848265e3e5eb72dfe8299ad7481a408322cac55786e52f633b2fb6b614eaed18"
    "d703dd84045a274ae8bfa73379661388d6991fe39b0d93debb41700b41f90a15"
    "c4d526250235ddcd6776fc77bc97e7a417ebcb31600d01e57f32162a8560cacc"
    "7e27a096d37a1a86952ec71bd89a3e9a30a2a26162984d7740f81193e8238e61"
    "f6b5b984d4d3dfa033c1bb7e4f0037febf406d91c0dccf32acf423cfa1e70710"
    "10d3f270121b493ce85054ef58bada42310138fe081adb04e2bd901f2f13458b"
    "3d6758158197107c14ebb193230cd1157380aa79cae1374a7c1e5bbcb80ee23e"
    "06ebfde206bfb0fcbc0edc4ebec309661bdd908d532eb0c6adc38b7ca7331dce"
    "8dfce39ab71e7c32d318d136b6100671a1ae6a6600e3899f31f0eed19e3417d1"
    "34b90c9058f8632c798d4490da4987307cba922d61c39805d072b589bd52fdf1"
    "e86215c2d54e6670e07383a27bbffb5addf47d66aa85a0c6f9f32e59d85a44dd"
    "5d3b22dc2be80919b490437ae4f36a0ae55edf1d0b5cb4e9a3ecabee93dfc6e3"
    "8d209d0fa6536d27a5d6fbb17641cde27525d61093f1b28072d111b2b4ae5f89"
    "d5974ee12e5cf7d5da4d6a31123041f33e61407e76cffcdcfd7e19ba58cf4b53"
    "6f4c4938ae79324dc402894b44faf8afbab35282ab659d13c93f70412e85cb19"
    "9a37ddec600545473cfb5a05e08d0b209973b2172b4d21fb69745a262ccde96b"
    "a18b2faa745b6fe189cf772a9f84cbfc"
)
V2_SERVER_PACKET = bytes.fromhex(
    "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698"
    "baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17"
    "f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2"
    "c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca8"
    "4bed8521e2e140"
)


def test_rfc9001_keys() -> None:
    # A.1: secrets from the DCID, then key, iv and hp.
    client, server = initial_secrets(RFC_DCID, QUIC_V1)
    assert (client.hex(), server.hex()) == (V1_CLIENT_SECRET, V1_SERVER_SECRET)
    keys = packet_keys(client, QUIC_V1)
    assert keys.key.hex() == "1f369613dd76d5467730efcbe3b1a22d"
    assert keys.iv.hex() == "fa044b2f42a3fd3b46fb255c"
    assert keys.hp.hex() == "9f50449e04a0e810283a1e9933adedd2"
    keys = initial_keys(RFC_DCID, QUIC_V1, from_client=False)
    assert keys.key.hex() == "cf3a5331653c364c88f0f379b6067e37"
    assert keys.iv.hex() == "0ac1493ca1905853b0bba03e"
    assert keys.hp.hex() == "c206b8d9b9f0f37644430b490eeaa314"


def test_rfc9369_keys() -> None:
    client, server = initial_secrets(RFC_DCID, QUIC_V2)
    assert (client.hex(), server.hex()) == (V2_CLIENT_SECRET, V2_SERVER_SECRET)
    keys = packet_keys(client, QUIC_V2)
    assert keys.key.hex() == "8b1a0bc121284290a29e0971b5cd045d"
    assert keys.iv.hex() == "91f73e2351d8fa91660e909f"
    assert keys.hp.hex() == "45b95e15235d6f45a6b19cbcb0294ba9"
    keys = initial_keys(RFC_DCID, QUIC_V2, from_client=False)
    assert keys.key.hex() == "82db637861d55e1d011f19ea71d5d2a7"
    assert keys.iv.hex() == "dd13c276499c0249d3310652"
    assert keys.hp.hex() == "edf6d05c83121201b436e16877593c3a"


@pytest.mark.parametrize(
    ("version", "packet", "plain_header"),
    [
        (QUIC_V1, V1_CLIENT_PACKET, "c300000001088394c8f03e5157080000449e00000002"),
        (QUIC_V2, V2_CLIENT_PACKET, "d36b3343cf088394c8f03e5157080000449e00000002"),
    ],
)
def test_rfc_client_initial_decrypts_exactly(version: int, packet: bytes, plain_header: str) -> None:
    (header,) = split_datagram(packet).packets
    assert isinstance(header, LongHeader)
    assert (header.version, header.packet_type, header.dcid, header.scid, header.token) == (
        version,
        PacketType.INITIAL,
        RFC_DCID,
        b"",
        b"",
    )
    assert (header.length, header.pn_offset, header.end, header.truncated) == (1182, 18, 1200, False)
    decrypted = decrypt_long_packet(packet, header, initial_keys(RFC_DCID, version, from_client=True))
    assert decrypted.packet_number == 2
    assert decrypted.header.hex() == plain_header
    assert decrypted.payload == RFC_CLIENT_FRAMES
    crypto, padding = parse_frames(decrypted.payload)
    assert isinstance(crypto, Crypto) and crypto.offset == 0 and len(crypto.data) == 241
    assert padding == Padding(917)
    hello = parse_client_hello(crypto.data[4:])
    assert (hello.server_name, hello.alpn) == ("example.com", ("alpn",))


@pytest.mark.parametrize(
    ("version", "packet", "plain_header"),
    [
        (QUIC_V1, V1_SERVER_PACKET, "c1000000010008f067a5502a4262b50040750001"),
        (QUIC_V2, V2_SERVER_PACKET, "d16b3343cf0008f067a5502a4262b50040750001"),
    ],
)
def test_rfc_server_initial_decrypts_exactly(version: int, packet: bytes, plain_header: str) -> None:
    (header,) = split_datagram(packet).packets
    assert isinstance(header, LongHeader) and header.packet_type == PacketType.INITIAL
    assert header.dcid == b"" and header.scid.hex() == "f067a5502a4262b5"
    decrypted = decrypt_long_packet(packet, header, initial_keys(RFC_DCID, version, from_client=False))
    assert (decrypted.packet_number, decrypted.header.hex()) == (1, plain_header)
    assert decrypted.payload == RFC_SERVER_FRAMES
    ack, crypto = parse_frames(decrypted.payload)
    assert ack == Ack(largest=0, delay=0, first_range=0, ranges=(), ecn=None)
    assert isinstance(crypto, Crypto) and crypto.offset == 0 and crypto.data[0] == 2
    server_hello = parse_server_hello(crypto.data[4:])
    assert (server_hello.version, server_hello.cipher_suite) == (0x0304, 0x1301)


def test_rfc_vectors_through_the_assembler() -> None:
    for version, client, server in ((1, V1_CLIENT_PACKET, V1_SERVER_PACKET), (QUIC_V2, V2_CLIENT_PACKET, V2_SERVER_PACKET)):
        asm = QUICInitialAssembler()
        events = asm.feed(client, True) + asm.feed(server, False)
        hellos = [e for e in events if isinstance(e, QUICClientHello)]
        assert len(hellos) == 1 and hellos[0].hello.server_name == "example.com"
        assert (hellos[0].version, hellos[0].dcid, hellos[0].initial_packets) == (version, RFC_DCID, 1)
        assert next(e for e in events if isinstance(e, QUICServerHello)).hello.cipher_suite == 0x1301
        state = asm.state
        assert (state.version, state.original_dcid, state.client_scid, state.server_scid) == (
            version,
            RFC_DCID,
            b"",
            bytes.fromhex("f067a5502a4262b5"),
        )
        assert state.server_answered and not state.client_one_rtt and not state.server_one_rtt


def test_wrong_keys_and_truncation_are_parse_errors() -> None:
    (header,) = split_datagram(V1_CLIENT_PACKET).packets
    assert isinstance(header, LongHeader)
    with pytest.raises(ParseError) as info:
        decrypt_long_packet(V1_CLIENT_PACKET, header, initial_keys(b"\x00" * 8, QUIC_V1, from_client=True))
    assert info.value.kind == "quic_decrypt_failed"
    (cut,) = split_datagram(V1_CLIENT_PACKET[:300]).packets
    assert isinstance(cut, LongHeader) and cut.truncated and cut.end == 300
    with pytest.raises(ParseError) as info:
        decrypt_long_packet(V1_CLIENT_PACKET[:300], cut, initial_keys(RFC_DCID, QUIC_V1, from_client=True))
    assert info.value.kind == "quic_truncated"


def test_packet_number_decoding_rfc9000_a3() -> None:
    assert decode_packet_number(0xA82F30EA, 0x9B32, 16) == 0xA82F9B32
    assert decode_packet_number(-1, 2, 32) == 2
    assert decode_packet_number(1, 0, 8) == 0  # an earlier packet arriving late


def test_versions_and_salts() -> None:
    assert [version_name(v) for v in (1, QUIC_V2, 0xFF00001D, 0x51303235, 0, 0x1A2A3A4A)] == [
        "1",
        "quicv2",
        "draft-29",
        "Q025",
        "version-negotiation",
        "unknown-1a2a3a4a",
    ]
    assert initial_salt(0xFF00001D) == initial_salt(0xFF000020) != initial_salt(0xFF00001C)
    assert initial_salt(0xFF000022) == initial_salt(QUIC_V1)
    assert initial_salt(0xFF000015) is None and initial_salt(0x1A2A3A4A) is None
    assert looks_like_quic(V1_CLIENT_PACKET) and looks_like_quic(V2_CLIENT_PACKET)
    assert not looks_like_quic(b"\x16\x03\x01\x02\x00\x01\x00") and not looks_like_quic(b"\xc0")


# ------------------------------------------------------------ driving flows


def _flows(datagrams: Iterable[Datagram]) -> dict[str, tuple[QUICInitialAssembler, list[tuple[int, QUICEvent]]]]:
    """One assembler per UDP flow, the client being whoever spoke first."""
    flows: dict[frozenset[tuple[str, int]], tuple[tuple[str, int], QUICInitialAssembler, list[tuple[int, QUICEvent]]]] = {}
    for d in datagrams:
        key = frozenset((d.src, d.dst))
        if key not in flows:
            flows[key] = (d.src, QUICInitialAssembler(), [])
        client, asm, events = flows[key]
        events += [(d.index, e) for e in asm.feed(d.payload, d.src == client)]
    return {fmt(client): (asm, events) for client, asm, events in flows.values()}


def _quic_datagrams(path: str) -> list[Datagram]:
    return [d for d in udp_datagrams(path) if 53 not in (d.src[1], d.dst[1])]


def _history(events: Iterable[QUICEvent]) -> str:
    """Our events as Zeek quic.log history letters (client upper case), first appearances only."""
    letters = ""
    for e in events:
        if isinstance(e, QUICPacketSeen):
            letter, client = {"initial": "I", "handshake": "H", "0rtt": "Z", "retry": "R", "unknown": "U"}.get(
                e.packet_type, ""
            ), e.from_client
        elif isinstance(e, QUICClientHello):
            letter, client = "S", True
        elif isinstance(e, QUICServerHello):
            letter, client = "S", False
        elif isinstance(e, QUICOneRTT):
            letter, client = "O", e.from_client
        elif isinstance(e, QUICConnectionClose):
            letter, client = "C", e.from_client
        else:
            continue
        letter = letter if client else letter.lower()
        if letter and letter not in letters:
            letters += letter
    return letters


def _zeek_log(path: str) -> list[dict[str, str]]:
    lines = (CORPUS / path).read_text().splitlines()
    fields = next(line for line in lines if line.startswith("#fields")).split("\t")[1:]
    return [dict(zip(fields, line.split("\t"))) for line in lines if not line.startswith("#")]


ZEEK_QUIC = [
    ("zeek-quic-chromium", "scripts.base.protocols.quic.chromium"),
    ("zeek-quicv2", "scripts.base.protocols.quic.quicv2-echo-443"),
]


@pytest.mark.parametrize(("capture_id", "baseline"), ZEEK_QUIC)
def test_zeek_quic_log(capture_id: str, baseline: str) -> None:
    rec = EXPECTED[capture_id]
    (fact,) = rec["facts"]["quic"]
    (row,) = _zeek_log(f"zeek/testing/btest/Baseline/{baseline}/quic.log")
    flows = _flows(_quic_datagrams(rec["file"]))
    asm, events = flows[fact["orig"]]
    state = asm.state
    assert state.version_name == fact["version"] == row["version"]
    assert state.client_hello is not None
    assert state.client_hello.server_name == fact["server_name"] and fact["server_name"] in rec["facts"]["quic_sni"]
    assert state.client_hello.alpn[0] == fact["client_protocol"]
    assert state.original_dcid is not None and state.original_dcid.hex() == row["client_initial_dcid"]
    assert (state.client_scid or b"").hex() == row["client_scid"].replace("(empty)", "")
    assert state.server_scid is not None and state.server_scid.hex() == row["server_scid"]
    # Zeek's history letters, in order of first appearance, are ours too:
    # Initial, hello, server Initial, ServerHello, Handshake, 1-RTT both ways.
    zeek_first = "".join(dict.fromkeys(fact["history"]))
    assert _history(e for _, e in events) == zeek_first == "ISishoHO"
    assert state.server_answered and state.client_one_rtt and state.server_one_rtt
    assert not [e for _, e in events if isinstance(e, QUICWeird)]


def _quic_records(path: str) -> list[dict[str, object]]:
    """The engine's flow records (what `apple-net flows --format json` writes) of the QUIC flows in a capture."""
    p = Path(path) if Path(path).is_absolute() else CORPUS / path
    return [flow_dict(f) for f in run_engine([p]).flows if f.app == "quic"]


@pytest.mark.parametrize(("capture_id", "baseline"), ZEEK_QUIC)
def test_quic_tls_record_is_zeeks_ssl_log(capture_id: str, baseline: str) -> None:
    (row,) = _zeek_log(f"zeek/testing/btest/Baseline/{baseline}/ssl.log")
    (fact,) = EXPECTED[capture_id]["facts"]["tls"]
    (rec,) = _quic_records(EXPECTED[capture_id]["file"])
    tls = rec["tls"]
    assert isinstance(tls, dict) and tls["transport"] == "quic"
    assert (tls["version"], tls["cipher"], tls["server_name"]) == (row["version"], row["cipher"], row["server_name"])
    assert (tls["version"], tls["cipher"]) == (fact["version"], fact["cipher"])
    assert tls["resumed"] is (row["resumed"] == "T") is (fact["resumed"] == "T")  # chromium: PSK accepted
    assert tls["ssl_history"] == row["ssl_history"] == "Cs"
    # Zeek writes established F although these handshakes completed (its
    # quic.log history has Handshake packets and 1-RTT both ways): its QUIC
    # analyzer gives the SSL analyzer only the CRYPTO data of Initials, and
    # the Finished messages travel in Handshake packets whose keys a passive
    # observer never has. `established` keeps that meaning (a TLS handshake
    # seen to finish); the QUIC handshake going on is `quic.server_one_rtt`.
    assert tls["established"] is False and row["established"] == "F"
    quic = rec["quic"]
    assert isinstance(quic, dict) and quic["server_one_rtt"] and quic["client_one_rtt"]
    # What Initials cannot show stays empty: the certificate chain (row:
    # cert_chain_fps "-") and the server's ALPN choice (next_protocol "-").
    assert tls["certificates"] == [] and row["cert_chain_fps"] == "-"
    assert tls["alpn"] == [] and row["next_protocol"] == "-"
    assert tls["client_alpn"] == quic["alpn"] and tls["ja4"] == quic["ja4"]


# Corpus and local QUIC traces without a Zeek ssl.log: the ServerHello in the
# server's Initial as tshark 4.0 decrypts it (`-Y tls.handshake.type==2 -e
# tls.handshake.extensions.supported_version -e tls.handshake.ciphersuite`).
QUIC_SERVER_HELLOS = [
    ("tcpdump/tests/quic_handshake.pcap", {443: ("TLSv13", "TLS_AES_128_GCM_SHA256")}),
    ("tcpdump/tests/quic_handshake_truncated.pcap", {443: ("TLSv13", "TLS_AES_128_GCM_SHA256")}),
    ("suricata-verify/tests/quic-ietf/input.pcap", {443: ("TLSv13", "TLS_AES_256_GCM_SHA384")}),
    ("ndpi/tests/cfgs/default/pcap/quic_0RTT.pcap",
     {443: ("TLSv13", "TLS_AES_128_GCM_SHA256"), 4443: ("TLSv13", "TLS_AES_128_GCM_SHA256")}),
    (str(LOCAL / "quic-aioquic-big.pcap"), {4433: ("TLSv13", "TLS_AES_256_GCM_SHA384")}),
    (str(LOCAL / "quic-aioquic-retry.pcap"), {4433: ("TLSv13", "TLS_AES_256_GCM_SHA384")}),
    (str(LOCAL / "quic-aioquic-vn.pcap"), {4433: ("TLSv13", "TLS_AES_256_GCM_SHA384")}),
]


@pytest.mark.parametrize(("path", "expected"), QUIC_SERVER_HELLOS, ids=lambda v: Path(v).name if isinstance(v, str) else "")
def test_quic_traces_carry_their_tls_version(path: str, expected: dict[int, tuple[str, str]]) -> None:
    records = _quic_records(path)
    got = {}
    for rec in records:
        tls, server = rec["tls"], rec["server"]
        assert isinstance(tls, dict) and isinstance(server, dict)
        assert tls["transport"] == "quic" and tls["established"] is False
        got[server["port"]] = (tls["version"], tls["cipher"])
    assert got == expected


def test_quic_crypto_error_is_the_tls_alert() -> None:
    # aioquic's server closes with 0x178 = 0x100 + 120 (RFC 9001 4.8): the TLS
    # alert no_application_protocol, sent instead of a ServerHello.
    (rec,) = _quic_records(str(LOCAL / "quic-aioquic-close.pcap"))
    tls = rec["tls"]
    assert isinstance(tls, dict)
    assert (tls["version"], tls["cipher"], tls["ssl_history"]) == (None, None, "C")
    assert tls["alert"] == {"from": "server", "level": "fatal", "description": "no_application_protocol",
                            "code": 120, "encrypted": False, "inferred": False}
    assert tls["client_alpn"] == ["nope"] and tls["server_name"] == "gateway.icloud.com"


def _server_initial(dcid: bytes, scid: bytes, pn: int, frames: bytes) -> bytes:
    """A server Initial (QUIC v1) protected as RFC 9001 5 says: for hand-built handshakes only."""
    keys = initial_keys(dcid, QUIC_V1, from_client=False)
    body_length = 4 + len(frames) + 16  # packet number, frames, AEAD tag
    header = (bytes([0xC3]) + QUIC_V1.to_bytes(4, "big") + bytes([len(scid)]) + scid + bytes([len(dcid)]) + dcid
              + b"\x00" + (0x4000 | body_length).to_bytes(2, "big") + pn.to_bytes(4, "big"))
    nonce = (int.from_bytes(keys.iv, "big") ^ pn).to_bytes(12, "big")
    sealed = AESGCM(keys.key).encrypt(nonce, frames, header)
    encryptor = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()
    mask = encryptor.update(sealed[:16]) + encryptor.finalize()
    pn_at = len(header) - 4
    protected = bytes([header[0] ^ (mask[0] & 0x0F)]) + header[1:pn_at] + bytes(
        b ^ m for b, m in zip(header[pn_at:], mask[1:5]))
    return protected + sealed


def _server_hello_message(random: bytes, extensions: bytes) -> bytes:
    body = b"\x03\x03" + random + b"\x00" + b"\x13\x01" + b"\x00" + len(extensions).to_bytes(2, "big") + extensions
    return b"\x02" + len(body).to_bytes(3, "big") + body


def test_hello_retry_request_then_server_hello() -> None:
    # Hand-built: the server answers the RFC 9001 client Initial with a
    # HelloRetryRequest (x25519 wanted), then, in its next Initial, the
    # ServerHello that counts. The record reports the final one.
    versions = b"\x00\x2b\x00\x02\x03\x04"
    hrr = _server_hello_message(HRR_RANDOM, versions + b"\x00\x33\x00\x02\x00\x1d")
    final = _server_hello_message(bytes(range(32)), versions + b"\x00\x33\x00\x24\x00\x1d\x00\x20" + bytes(32))
    scid = bytes.fromhex("f067a5502a4262b5")

    def crypto(offset: int, data: bytes) -> bytes:
        return b"\x06" + bytes([offset]) + (0x4000 | len(data)).to_bytes(2, "big") + data + bytes(20)

    asm = QUICInitialAssembler()
    asm.feed(V1_CLIENT_PACKET, True)
    first = asm.feed(_server_initial(RFC_DCID, scid, 0, crypto(0, hrr)), False)
    second = asm.feed(_server_initial(RFC_DCID, scid, 1, crypto(len(hrr), final)), False)
    assert [e.hello.is_hello_retry_request for e in first + second if isinstance(e, QUICServerHello)] == [True, False]
    state = asm.state
    assert state.hello_retry_request and state.server_hello is not None
    assert state.server_hello.random == bytes(range(32))
    facts = QUICFacts(state, ja4=None)
    tls = quic_tls_dict(facts)
    assert (tls["version"], tls["cipher"], tls["hello_retry_request"]) == ("TLSv13", "TLS_AES_128_GCM_SHA256", True)
    # Only the HelloRetryRequest seen (the capture ends): no version chosen yet.
    asm = QUICInitialAssembler()
    asm.feed(V1_CLIENT_PACKET, True)
    asm.feed(_server_initial(RFC_DCID, scid, 0, crypto(0, hrr)), False)
    tls = quic_tls_dict(QUICFacts(asm.state, ja4=None))
    assert (tls["version"], tls["cipher"], tls["hello_retry_request"], tls["ssl_history"]) == (None, None, True, "Cs")


def test_google_quic_has_no_tls_record() -> None:
    # gQUIC Q0xx hellos are QUIC crypto, not TLS: nothing to put in `tls`.
    (rec,) = [r for r in _quic_records(EXPECTED["ndpi-http-ipv6"]["file"])]
    assert rec["tls"] is None and rec["sni"] == "www.google.it"


def test_zeek_quicv2_client_hello_repeated_initials() -> None:
    # "ISIIisho...": the client sent three Initials before the server spoke;
    # the hello was complete after the first.
    _, events = _flows(_quic_datagrams(EXPECTED["zeek-quicv2"]["file"]))["127.0.0.1:49320"]
    initials = [i for i, e in events if isinstance(e, QUICPacketSeen) and e.from_client and e.packet_type == "initial"]
    assert initials[:3] == [1, 2, 3]
    (hello,) = [e for _, e in events if isinstance(e, QUICClientHello)]
    assert (hello.version, hello.initial_packets) == (QUIC_V2, 1)
    assert hello.dcid.hex() == "fa603212c8688817af3d3238735bc7"


def test_suricata_quic_ietf_draft29() -> None:
    rec = EXPECTED["sv-quic-ietf"]
    ((asm, events),) = _flows(_quic_datagrams(rec["file"])).values()
    hello = asm.state.client_hello
    # The corpus notes call this a "QUIC draft-29 Initial"; its baseline
    # (test.yaml) says nothing of the version, and the wire says 0x00000001:
    # QUIC v1 carrying the ALPN of HTTP/3 draft 29 ("h3-29"), as msquic
    # offered in 2021. We report version 1.
    assert hello is not None and asm.state.version_name == "1"
    assert split_datagram(_quic_datagrams(rec["file"])[0].payload).packets[0].version == QUIC_V1  # type: ignore[union-attr]
    # test.yaml: quic.extensions[1] is server_name "msquic.net", [2] alpn "h3-29".
    assert [e.type for e in hello.extensions[1:3]] == [0, 16]
    assert [hello.server_name] == rec["facts"]["quic_sni"] == rec["facts"]["tshark"]["quic_sni"]
    assert hello.alpn[0] == "h3-29"
    assert _history(e for _, e in events) == "ISishoHO"


def test_ndpi_quic_0rtt() -> None:
    rec = EXPECTED["ndpi-quic-0rtt"]
    flows = _flows(_quic_datagrams(rec["file"]))
    google, _ = flows["192.168.2.100:51972"]
    local, local_events = flows["[::1]:60459"]
    snis = [a.state.client_hello.server_name for a in (google, local) if a.state.client_hello]
    assert sorted(snis) == sorted(rec["facts"]["quic_sni"]) == sorted(rec["facts"]["tshark"]["quic_sni"])
    # nDPI: "QUIC ver: V-1" / "Draft-28", "(Advertised) ALPNs: h3" / "h3-32".
    assert (google.state.version_name, local.state.version_name) == ("1", "draft-28")
    assert google.state.client_hello.alpn == ("h3",)  # type: ignore[union-attr]
    assert local.state.client_hello.alpn == ("h3-32",)  # type: ignore[union-attr]
    # 0-RTT packets were captured before the Initial they follow.
    assert PacketType.ZERO_RTT in google.state.client_packet_types
    assert google.state.client_one_rtt and google.state.server_one_rtt
    # Disagreement: nDPI's risk info for the [::1]:4443 flow says "No server
    # to client traffic", yet its own packet counts show 1 packet each way,
    # and that server datagram holds an Initial whose ServerHello decrypts
    # with the server keys, a Handshake and a 1-RTT packet with a greased
    # fixed bit (RFC 9287). The server did answer; nDPI judged after its
    # first DPI packet.
    assert local.state.server_answered and local.state.server_hello is not None
    assert local.state.server_one_rtt
    assert local.state.server_packet_types == {PacketType.INITIAL, PacketType.HANDSHAKE, PacketType.ONE_RTT}
    assert not [e for _, e in local_events if isinstance(e, QUICWeird)]


_TCPDUMP_QUIC = re.compile(r"quic, (initial|handshake|protected)(?:, (dcid|scid) ([0-9a-f]+))?(?:, length (\d+))?")


@pytest.mark.parametrize(("capture_id", "out"), [("td-quic-null", "quic_handshake.out"), ("td-quic-snaplen-trunc", "quic_handshake_truncated.out")])
def test_tcpdump_quic_packets(capture_id: str, out: str) -> None:
    rec = EXPECTED[capture_id]
    datagrams = _quic_datagrams(rec["file"])
    facts = rec["facts"]["quic_packets"]
    lines = [m for m in map(_TCPDUMP_QUIC.search, (CORPUS / "tcpdump/tests" / out).read_text().splitlines()) if m]
    assert len(datagrams) == len(facts) == len(lines) == 18
    for d, fact, line in zip(datagrams, facts, lines):
        assert (d.index, fmt(d.src), fmt(d.dst)) == (fact["pkt"], fact["src"], fact["dst"])
        first = split_datagram(d.payload).packets[0]
        if fact["type"] == "protected":
            assert isinstance(first, ShortHeader)
            if line.group(2):  # tcpdump names the DCID it knows from the handshake
                assert d.payload[1:9].hex() == line.group(3)
            continue
        assert isinstance(first, LongHeader) and first.packet_type == fact["type"]
        assert first.truncated == fact["truncated"] == d.truncated
        cid = first.dcid if line.group(2) == "dcid" else first.scid
        assert (cid.hex(), first.length) == (line.group(3), int(line.group(4)))
    asm, events = _flows(datagrams)[facts[0]["src"]]
    state = asm.state
    assert state.server_answered and state.client_one_rtt and state.server_one_rtt
    weirds = [e.kind for _, e in events if isinstance(e, QUICWeird)]
    if capture_id == "td-quic-null":
        assert state.client_hello is not None
        assert [state.client_hello.server_name] == rec["facts"]["tshark"]["quic_sni"]
        assert weirds == []
    else:
        # The snaplen cut both client Initials: no SNI can be had (tshark
        # lists none either), but the server's complete Initial still
        # decrypts with keys from the truncated packet's DCID.
        assert state.client_hello is None and "quic_sni" not in rec["facts"]["tshark"]
        assert state.server_hello is not None
        assert weirds == ["quic_truncated", "quic_truncated"]


def test_ndpi_gquic_q025_hello() -> None:
    rec = EXPECTED["ndpi-http-ipv6"]
    flows = _flows(d for d in _quic_datagrams(rec["file"]) if 443 in (d.src[1], d.dst[1]))
    asm, events = flows["[2a00:d40:1:3:7aac:c0ff:fea7:d4c]:45931"]
    (hello,) = [e.hello for _, e in events if isinstance(e, QUICGoogleHello)]
    # nDPI reports the SNI of this Google QUIC flow; tshark (per the corpus
    # README) does not extract gQUIC SNIs. nDPI is right: Q025 sends its
    # CHLO in clear and its SNI tag says www.google.it.
    assert [hello.server_name] == rec["facts"]["quic_sni"]
    assert (version_name(hello.version), hello.user_agent) == ("Q025", "Chrome/46.0.2490.80 Linux x86_64")
    assert asm.state.version_name == "Q025" and asm.state.gquic_hello == hello
    assert [e for _, e in events if not isinstance(e, QUICGoogleHello)] == []


# ------------------------------------------------------------ local aioquic captures


def _local(name: str) -> list[Datagram]:
    return udp_datagrams(LOCAL / f"quic-aioquic-{name}.pcap")


def test_client_hello_spanning_two_initials() -> None:
    datagrams = _local("big")
    ((_, events),) = _flows(datagrams).values()
    (hello,) = [(i, e) for i, e in events if isinstance(e, QUICClientHello)]
    assert hello[0] == 2 and hello[1].initial_packets == 2
    assert hello[1].hello.server_name == "gateway.icloud.com"
    assert hello[1].hello.alpn == ("h3",) + tuple(f"x-padding-protocol-{i:03d}" for i in range(60))
    assert _history(e for _, e in events) == "ISishHOo"
    # The CRYPTO stream really is cut between the two packets.
    chunks: dict[int, bytes] = {}
    per_packet = []
    for d in datagrams[:2]:
        (header,) = split_datagram(d.payload).packets
        assert isinstance(header, LongHeader)
        packet = decrypt_long_packet(d.payload, header, initial_keys(header.dcid, QUIC_V1, from_client=True))
        frames = [f for f in parse_frames(packet.payload) if isinstance(f, Crypto)]
        per_packet.append(len(frames))
        chunks.update((f.offset, f.data) for f in frames)
    assert all(per_packet) and min(chunks) == 0
    stream = b"".join(chunks[o] for o in sorted(chunks))
    assert sorted(chunks) == [sum(len(chunks[p]) for p in sorted(chunks) if p < o) for o in sorted(chunks)]
    assert stream[0] == 1 and int.from_bytes(stream[1:4], "big") == len(stream) - 4 > 1200
    assert parse_client_hello(stream[4:]) == hello[1].hello


def test_client_hello_initials_out_of_order() -> None:
    first, second = _local("big")[:2]
    asm = QUICInitialAssembler()
    assert not [e for e in asm.feed(second.payload, True) if isinstance(e, QUICClientHello)]
    (hello,) = [e for e in asm.feed(first.payload, True) if isinstance(e, QUICClientHello)]
    assert hello.hello.server_name == "gateway.icloud.com" and hello.initial_packets == 2
    # A retransmission of either packet adds nothing.
    assert not [e for e in asm.feed(second.payload, True) if isinstance(e, QUICClientHello)]


def test_retry() -> None:
    datagrams = _local("retry")
    ((asm, events),) = _flows(datagrams).values()
    retry = next(e for _, e in events if isinstance(e, QUICPacketSeen) and e.packet_type == PacketType.RETRY)
    hellos = [e for _, e in events if isinstance(e, QUICClientHello)]
    # The client repeats its hello to the DCID the Retry chose; the keys come
    # from that DCID, and the server's Initial decrypts with them too.
    assert [h.dcid for h in hellos] == [asm.state.original_dcid, retry.scid]
    assert all(h.hello.server_name == "gateway.icloud.com" for h in hellos)
    assert asm.state.retry and asm.state.server_hello is not None
    assert _history(e for _, e in events) == "ISrishHOo"


def test_version_negotiation() -> None:
    ((asm, events),) = _flows(_local("vn")).values()
    (vn,) = [e for _, e in events if isinstance(e, QUICVersionNegotiation)]
    assert vn.versions == (QUIC_V2,)
    hellos = [e for _, e in events if isinstance(e, QUICClientHello)]
    assert [h.version for h in hellos] == [QUIC_V1, QUIC_V2]
    assert asm.state.version_name == "quicv2" and asm.state.version_negotiation == (QUIC_V2,)
    assert asm.state.server_hello is not None and asm.state.server_one_rtt


def test_server_connection_close_in_initial() -> None:
    ((asm, events),) = _flows(_local("close")).values()
    (close,) = [e for _, e in events if isinstance(e, QUICConnectionClose)]
    # aioquic: "Error: 376, reason: No common ALPN protocols, frame_type: 6":
    # 0x178 is CRYPTO_ERROR for the TLS alert no_application_protocol (120).
    assert close == QUICConnectionClose(False, ConnectionClose(0x178, 0x06, "No common ALPN protocols"))
    assert not close.close.application
    state = asm.state
    assert state.client_hello is not None and state.client_hello.alpn == ("nope",)
    assert state.server_answered and state.server_hello is None and state.connection_close == close
    assert not state.client_one_rtt and not state.server_one_rtt


# ------------------------------------------------------------ datagram splitting and frames


def test_split_coalesced_and_padding() -> None:
    d = _local("big")[4]  # client Initial + Handshake + 1-RTT in one datagram
    packets = split_datagram(d.payload).packets
    assert [p.packet_type if isinstance(p, LongHeader) else "short" for p in packets] == ["initial", "handshake", "short"]
    assert packets[0].start == 0 and packets[1].start == packets[0].end and packets[2].end == len(d.payload)
    assert split_datagram(V1_SERVER_PACKET + bytes(40)).weird is None
    assert split_datagram(V1_SERVER_PACKET + b"\x00\x17").weird == "quic_trailing_bytes"
    with pytest.raises(ParseError) as info:
        split_datagram(b"\x00\x01\x02")
    assert info.value.kind == "quic_not_quic"


def test_frames() -> None:
    assert parse_frames(b"\x01\x00\x00") == (Ping(), Padding(2))
    assert parse_frames(bytes.fromhex("030501010203040506070000")) == (Ack(5, 1, 2, ((3, 4),), (5, 6, 7)), Padding(2))
    close = parse_frames(bytes.fromhex("1d0a02681b"))
    assert close == (ConnectionClose(10, None, "h\\x1b"),) and close[0].application
    with pytest.raises(ParseError) as info:
        parse_frames(b"\x08\x00")  # STREAM frames never ride in Initials
    assert info.value.kind == "quic_unexpected_frame"


def test_gquic_parser_ignores_ietf_quic() -> None:
    assert parse_gquic_client_hello(V1_CLIENT_PACKET) is None
    assert parse_gquic_client_hello(b"\x0d" + bytes(30)) is None


# ------------------------------------------------------------ properties


def _seed_datagrams() -> list[bytes]:
    seeds = [V1_CLIENT_PACKET, V2_SERVER_PACKET]
    for rec_id in ("zeek-quic-chromium", "zeek-quicv2", "sv-quic-ietf", "ndpi-quic-0rtt", "td-quic-snaplen-trunc"):
        seeds += [d.payload for d in _quic_datagrams(EXPECTED[rec_id]["file"])[:6]]
    seeds += [d.payload for d in _local("retry")[:4]]
    return seeds


SEEDS = _seed_datagrams()


def _mutate(data: st.DataObject, seed: bytes) -> bytes:
    raw = bytearray(seed)
    choice = data.draw(st.integers(0, 2))
    if choice == 0:
        for _ in range(data.draw(st.integers(1, 6))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    elif choice == 1:
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    else:
        # Header bytes matter most: mutate within the first 64.
        pos = data.draw(st.integers(0, min(63, len(raw) - 1)))
        raw[pos] = data.draw(st.integers(0, 255))
    return bytes(raw)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_datagrams_only_parse_or_raise(seed: bytes, data: st.DataObject) -> None:
    raw = _mutate(data, seed)
    try:
        coalesced = split_datagram(raw)
    except ParseError as exc:
        assert exc.kind.startswith("quic_")
        return
    for packet in coalesced.packets:
        assert 0 <= packet.start < packet.end <= len(raw)
        if isinstance(packet, LongHeader) and packet.packet_type in (PacketType.INITIAL, PacketType.HANDSHAKE):
            try:
                decrypted = decrypt_long_packet(raw, packet, initial_keys(packet.dcid, packet.version, from_client=True))
                parse_frames(decrypted.payload)
            except ParseError as exc:
                assert exc.kind.startswith("quic_")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SEEDS), st.booleans()), min_size=1, max_size=6), st.data())
def test_assembler_never_raises(feed: list[tuple[bytes, bool]], data: st.DataObject) -> None:
    asm = QUICInitialAssembler()
    for seed, from_client in feed:
        raw = _mutate(data, seed) if data.draw(st.booleans()) else seed
        for event in asm.feed(raw, from_client):
            assert isinstance(
                event,
                (QUICPacketSeen, QUICOneRTT, QUICVersionNegotiation, QUICClientHello, QUICServerHello, QUICConnectionClose, QUICGoogleHello, QUICWeird),
            )
    asm.state  # noqa: B018 - the snapshot must build in any state


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(raw: bytes) -> None:
    for parse in (split_datagram, parse_frames, parse_gquic_client_hello):
        try:
            parse(raw)
        except ParseError:
            pass
    QUICInitialAssembler().feed(raw, True)
