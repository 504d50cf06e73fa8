"""JA3/JA3S/JA4 against FoxIO's snapshots, Wireshark's JA3 and the JA4 spec's own example."""

from __future__ import annotations

import dataclasses
import re
from functools import cache
from pathlib import Path

import pytest
from helpers_pcap import CORPUS, LOCAL, TCPConn, tcp_streams

from analyzer.protocols.fingerprints import ja3, ja3_string, ja3s, ja4, ja4_raw
from analyzer.protocols.tls import (
    ClientHello,
    Extension,
    ServerHello,
    analyze_direction,
)

SNAPSHOTS = CORPUS / "ja4" / "rust" / "ja4" / "src" / "snapshots"


@cache
def streams(path: str) -> list[TCPConn]:
    return tcp_streams(path)


def hello(path: str, index: int = 0) -> ClientHello:
    ch = analyze_direction(
        streams(path)[index].client_data, from_client=True
    ).client_hello
    assert ch is not None
    return ch


def server_hello(path: str, index: int = 0) -> ServerHello:
    sh = analyze_direction(
        streams(path)[index].server_data, from_client=False
    ).server_hello
    assert sh is not None
    return sh


def _snapshot_rows() -> list[tuple[str, str, int, str, str]]:
    """(pcap, src, src_port, sni, ja4) for each TCP stream of each FoxIO insta snapshot."""
    rows = []
    for snap in sorted(SNAPSHOTS.glob("*.snap")):
        pcap = "ja4/pcap/" + snap.name.removeprefix("ja4__insta@").removesuffix(".snap")
        for block in snap.read_text().split("\n- stream:")[1:]:
            fields = dict(re.findall(r"^  (\w+): '?([^'\n]*)'?$", block, re.MULTILINE))
            if fields.get("transport") == "tcp" and "ja4" in fields:
                rows.append(
                    (
                        pcap,
                        fields["src"],
                        int(fields["src_port"]),
                        fields["tls_server_name"],
                        fields["ja4"],
                    )
                )
    return rows


def test_snapshots_found() -> None:
    assert len(_snapshot_rows()) == 5


@pytest.mark.parametrize(("pcap", "src", "sport", "sni", "expected"), _snapshot_rows())
def test_ja4_matches_foxio_snapshot(
    pcap: str, src: str, sport: int, sni: str, expected: str
) -> None:
    (conn,) = [c for c in streams(pcap) if c.client == (src, sport)]
    ch = analyze_direction(conn.client_data, from_client=True).client_hello
    assert ch is not None and ch.server_name == sni
    assert ja4(ch) == expected


# JA3 / JA3S digests computed by Wireshark 4.0.17 (tls.handshake.ja3 / ja3s) on the same packets.
WIRESHARK_JA3 = [
    (
        "ja4/pcap/badcurveball.pcap",
        0,
        "66918128f1b9b03303d77c6f2eefd128",
        "2d1eb5817ece335c24904f516ad5da12",
    ),
    (
        "ja4/pcap/browsers-x509.pcapng",
        0,
        "34fcb8e0ef812f18e760b52314a54fd0",
        "0f14538e1c9070becdad7739c67d6363",
    ),
    (
        "ja4/pcap/browsers-x509.pcapng",
        1,
        "6c320c139f0efe4d20c19f81dc01bbd8",
        "d52e85b996ca133fa608c8b9b9d2fe92",
    ),
    (
        "ja4/pcap/browsers-x509.pcapng",
        2,
        "7ceefd5eac15d9ed26735e1267acf4e7",
        "b898351eb5e266aefd3723d466935494",
    ),
    (
        "ja4/pcap/macos_tcp_flags.pcap",
        0,
        "6fa3244afc6bb6f9fad207b6b52af26b",
        "eb1d94daa7e0344597e756a1fb6e7054",
    ),
    (
        "zeek/testing/btest/Traces/tls/tls1.2.pcap",
        0,
        "bd9c99b3a0f752c3ab8b052a79e9de3e",
        "c253ec3ad88e42f8da4032682892f9a0",
    ),
    (
        "zeek/testing/btest/Traces/tls/chrome-1250-tls-x25519-kyber.pcap",
        0,
        "9d33d8206d4fec4c8b1423c728f4cd3c",
        "eb1d94daa7e0344597e756a1fb6e7054",
    ),
    (
        str(LOCAL / "tls13-x25519mlkem768.pcap"),
        0,
        "fe84d8d8100940fe056fd753a407ffb8",
        None,
    ),
]


@pytest.mark.parametrize(("pcap", "index", "ja3_md5", "ja3s_md5"), WIRESHARK_JA3)
def test_ja3_and_ja3s_match_wireshark(
    pcap: str, index: int, ja3_md5: str, ja3s_md5: str | None
) -> None:
    assert ja3(hello(pcap, index))[1] == ja3_md5
    if ja3s_md5 is not None:
        assert ja3s(server_hello(pcap, index))[1] == ja3s_md5


def test_ja3_string_removes_grease() -> None:
    ch = hello("zeek/testing/btest/Traces/tls/chrome-1250-tls-x25519-kyber.pcap")
    assert ja3_string(ch) == (
        "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
        "35-13-11-10-27-17513-51-16-43-23-65281-5-45-65037-18-0,25497-29-23-24,0"
    )
    s, _ = ja3s(
        server_hello("zeek/testing/btest/Traces/tls/chrome-1250-tls-x25519-kyber.pcap")
    )
    assert s == "771,4865,51-43"


def _spec_hello() -> ClientHello:
    """The example of technical_details/JA4.md, on a real hello's other fields."""
    base = hello("ja4/pcap/macos_tcp_flags.pcap")
    ciphers = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014, 0x009C,
               0x009D, 0x002F, 0x0035)  # fmt: skip
    exts = (0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023, 0x0012, 0x002B,
            0xFF01, 0x000B, 0x000A, 0x0015)  # fmt: skip
    return dataclasses.replace(
        base,
        cipher_suites=(0x0A0A,) + ciphers,
        extensions=(Extension(0x1A1A, b""),) + tuple(Extension(t, b"") for t in exts),
        signature_algorithms=(
            0x0403,
            0x0804,
            0x0401,
            0x0503,
            0x0805,
            0x0501,
            0x0806,
            0x0601,
        ),
        supported_versions=(0x2A2A, 0x0304, 0x0303),
        alpn_raw=(b"h2", b"http/1.1"),
    )


def test_ja4_spec_example() -> None:
    ch = _spec_hello()
    assert ja4(ch) == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert ja4_raw(ch) == (
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
        "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_"
        "0403,0804,0401,0503,0805,0501,0806,0601"
    )
    assert ja4_raw(ch, original_order=True).startswith("t13d1516h2_1301,1302,1303,c02b")
    assert ja4(ch, "q").startswith("q13d1516h2_")
    # "If there are no signature algorithms ... the string ends without an underscore": 6d807ffa2a79.
    assert ja4(dataclasses.replace(ch, signature_algorithms=())).endswith(
        "_6d807ffa2a79"
    )


def test_ja4_ignores_grease_in_signature_algorithms() -> None:
    ch = _spec_hello()
    greased = dataclasses.replace(
        ch, signature_algorithms=(0x0A0A,) + ch.signature_algorithms
    )
    assert ja4(greased) == ja4(ch)


@pytest.mark.parametrize(
    ("alpn", "expected"),
    [
        ((), "00"),
        ((b"",), "00"),
        ((b"h2",), "h2"),
        ((b"http/1.1",), "h1"),
        ((b"a",), "aa"),
        ((b"\xab",), "ab"),
        ((b"\xab\xcd",), "ad"),
        ((b"\x30\xab",), "3b"),
        ((b"\x30\x31\xab\xcd",), "3d"),
        ((b"\x30\xab\xcd\x31",), "01"),
    ],
)
def test_ja4_alpn_rules(alpn: tuple[bytes, ...], expected: str) -> None:
    assert ja4(dataclasses.replace(_spec_hello(), alpn_raw=alpn))[8:10] == expected


def test_ja4_empty_lists_and_versions() -> None:
    ch = _spec_hello()
    empty = dataclasses.replace(
        ch, cipher_suites=(), extensions=(), signature_algorithms=(), alpn_raw=()
    )
    # No supported_versions extension any more: the legacy version (TLS 1.2) counts.
    assert ja4(empty) == "t12i000000_000000000000_000000000000"
    tls12 = hello("zeek/testing/btest/Traces/tls/tls1.2.pcap")
    assert ja4(tls12).startswith(
        "t12i800500_"
    )  # no SNI, 80 ciphers, 5 extensions, no ALPN
    many = dataclasses.replace(ch, cipher_suites=tuple(range(0x0100, 0x0100 + 120)))
    assert ja4(many)[4:6] == "99"
    draft = dataclasses.replace(ch, supported_versions=(0x7F1C,))
    assert ja4(draft).startswith("t00d")


def test_ja4_post_quantum_hello() -> None:
    ch = hello(str(LOCAL / "tls13-x25519mlkem768.pcap"))
    assert ja4(ch) == "t13d3012h2_1d37bd780c83_0d46a1bf4a7c"


def test_no_licensed_ja4_plus_methods() -> None:
    import analyzer.protocols.fingerprints as fp

    assert not any(
        name.lower().startswith(("ja4s", "ja4x", "ja4t", "ja4h", "ja4l"))
        for name in dir(fp)
    )


def test_snapshot_dir_exists() -> None:
    assert Path(SNAPSHOTS).is_dir()
