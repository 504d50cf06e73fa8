"""NTP parser: macOS against Apple's time servers (corpus), chrony on loopback, properties."""

from __future__ import annotations

import datetime
import subprocess

import pytest
from helpers_udp import CORPUS, Datagram, fmt, udp_payloads
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.protocols._buffer import ParseError
from analyzer.protocols.ntp import (
    NTPMode,
    NTPPacket,
    is_reply_to,
    ntp_to_unix,
    parse_ntp,
)

CERT_TOO_LONG = "ndpi/tests/cfgs/default/pcap/tls_certificate_too_long.pcap"

# chronyd 4.3 answering `chronyd -Q "server 127.0.0.1 port 11123 iburst
# maxsamples 3"` on loopback (server: `local stratum 8`); client requests
# carry a random transmit timestamp, as chrony does not reveal its clock.
CHRONY = [
    (
        "23000620000000000000000000000000000000000000000000000000000000000000000000000000694914d7e480be98",
        "240806e700000000000000007f7f0101eeb4d8fd9517d169694914d7e480be98eeb4d8ff2dbef8b1eeb4d8ff2dc6af5a",
    ),
    (
        "230006200000000000000000000000000000000000000000000000000000000000000000000000004d3347a2ca024e19",
        "240806e700000000000000007f7f0101eeb4d8fd9517d1694d3347a2ca024e19eeb4d9013628d257eeb4d901362d21f6",
    ),
    (
        "2300062000000000000000000000000000000000000000000000000000000000000000000000000043235f8119ff3f1c",
        "240806e700000000000000007f7f0101eeb4d8fd9517d16943235f8119ff3f1ceeb4d9033cbe7123eeb4d9033cc1fdd6",
    ),
]


def _utc(ts: int) -> str:
    seconds = ntp_to_unix(ts)
    assert seconds is not None
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="microseconds")


def _apple_ntp() -> list[tuple[Datagram, NTPPacket]]:
    return [(d, parse_ntp(d.payload)) for d in udp_payloads(CERT_TOO_LONG, 123)]


def test_macos_against_time_apple_com() -> None:
    packets = _apple_ntp()
    # nDPI: four NTP flows 192.168.1.121:<port> <-> 17.253.54.251:123, one
    # packet each way (DNS in the same capture: time-macos.apple.com ->
    # 17.253.54.251).
    assert [(d.index, fmt(d.src)) for d, _ in packets] == [
        (99, "192.168.1.121:49216"),
        (102, "17.253.54.251:123"),
        (259, "192.168.1.121:50288"),
        (260, "17.253.54.251:123"),
        (284, "192.168.1.121:65099"),
        (287, "17.253.54.251:123"),
        (310, "192.168.1.121:56865"),
        (311, "17.253.54.251:123"),
    ]
    for (dq, request), (dr, response) in zip(packets[::2], packets[1::2]):
        assert dq.src == dr.dst
        # macOS sends an all-zero request: version 4, mode 3, no timestamps.
        assert request == NTPPacket(0, 4, 3, 0, 0, 0, 0.0, 0.0, b"\x00" * 4, 0, 0, 0, 0, 0)
        assert request.mode_name == "CLIENT" and not request.synchronized
        # tshark: li 0, vn 4, mode 4, stratum 1, ppoll 3, precision 235 (-21),
        # refid 53484d00 ("SHM", a GPS shared-memory refclock), reftime
        # 2021-07-13 09:21:13.549249942, origin NULL.
        assert (response.leap, response.version, response.mode, response.stratum) == (0, 4, 4, 1)
        assert (response.poll, response.precision, response.root_delay) == (3, -21, 0.0)
        assert response.reference_id == b"SHM\x00" and response.reference_id_text == "SHM"
        assert _utc(response.reference_ts) == "2021-07-13T09:21:13.549250+00:00"
        assert response.origin_ts == 0 and ntp_to_unix(response.origin_ts) is None
        assert response.synchronized and response.kiss_code is None and response.extra_length == 0
        assert is_reply_to(request, response) and not is_reply_to(response, request)
    receive_times = [_utc(r.receive_ts) for _, r in packets[1::2]]
    assert receive_times == [
        "2021-07-13T09:21:17.832689+00:00",
        "2021-07-13T09:21:19.444044+00:00",
        "2021-07-13T09:21:20.174484+00:00",
        "2021-07-13T09:21:20.814989+00:00",
    ]
    # tshark's rootdispersion 11..14 are the raw 16.16 values.
    assert [r.root_dispersion * 65536 for _, r in packets[1::2]] == [11, 12, 13, 14]


def test_chrony_requests_pair_by_origin_timestamp() -> None:
    pairs = [(parse_ntp(bytes.fromhex(q)), parse_ntp(bytes.fromhex(r))) for q, r in CHRONY]
    for request, response in pairs:
        assert (request.version, request.mode, request.poll, request.precision) == (4, 3, 6, 32)
        assert request.transmit_ts != 0 and request.origin_ts == request.receive_ts == 0
        assert (response.mode, response.stratum, response.precision) == (4, 8, -25)
        assert response.reference_id_text == "127.127.1.1"  # chrony's local reference
        assert response.origin_ts == request.transmit_ts
        assert is_reply_to(request, response)
    # Crossed pairs do not match: the echo identifies the request.
    assert not is_reply_to(pairs[0][0], pairs[1][1])
    assert not is_reply_to(pairs[0][0], pairs[0][0])


def test_kiss_of_death_and_unsynchronised() -> None:
    reply = bytearray(bytes.fromhex(CHRONY[0][1]))
    reply[1] = 0  # stratum 0
    reply[12:16] = b"RATE"
    kod = parse_ntp(bytes(reply))
    assert kod.kiss_code == "RATE" and not kod.synchronized and kod.reference_id_text == "RATE"
    reply[0] = 0xE4  # leap 3 (alarm), version 4, mode 4
    reply[1] = 2
    alarm = parse_ntp(bytes(reply))
    assert alarm.leap == 3 and not alarm.synchronized and alarm.kiss_code is None


def test_errors_and_extensions() -> None:
    request = bytes.fromhex(CHRONY[0][0])
    with pytest.raises(ParseError) as info:
        parse_ntp(request[:47])
    assert info.value.kind == "ntp_truncated"
    with pytest.raises(ParseError) as info:
        parse_ntp(b"\x16\x01\x00\x01" + bytes(8))  # ntpq READSTAT, mode 6
    assert info.value.kind == "ntp_control_message"
    with pytest.raises(ParseError) as info:
        parse_ntp(b"\x03" + request[1:])  # version 0
    assert info.value.kind == "ntp_bad_version"
    with_mac = parse_ntp(request + bytes(20))
    assert with_mac.extra_length == 20 and NTPMode(with_mac.mode) is NTPMode.CLIENT


def test_era_handling() -> None:
    assert ntp_to_unix(0) is None
    assert ntp_to_unix(2_208_988_800 << 32) == 0.0
    # Seconds with the top bit clear are read as era 1 (after 2036-02-07).
    assert ntp_to_unix(1 << 32) == (1 << 32) + 1 - 2_208_988_800


@pytest.mark.skipif(not (CORPUS / CERT_TOO_LONG).exists(), reason="corpus missing")
def test_ntp_fields_agree_with_tshark() -> None:
    # Skips only where tshark is not installed; a tshark that runs and fails is a failure, not a skip.
    # (The name avoids "lab": `-k 'not lab'` once deselected it; select the lab by its marker.)
    try:
        proc = subprocess.run(
            ["tshark", "-r", str(CORPUS / CERT_TOO_LONG), "-Y", "ntp", "-T", "fields", "-e", "ntp.flags.mode", "-e", "ntp.stratum"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except FileNotFoundError:
        pytest.skip("tshark not installed (apt-get install tshark)")
    assert proc.returncode == 0, f"tshark failed (exit {proc.returncode}): {proc.stderr}"
    ours = [f"{p.mode}\t{p.stratum}" for _, p in _apple_ntp()]
    assert ours and proc.stdout.split("\n")[:-1] == ours


SEEDS = [bytes.fromhex(h) for pair in CHRONY for h in pair] + [d.payload for d, _ in _apple_ntp()]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_packets_only_parse_or_raise(seed: bytes, data: st.DataObject) -> None:
    raw = bytearray(seed[: data.draw(st.integers(0, len(seed)))])
    for _ in range(data.draw(st.integers(0, 4))):
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        packet = parse_ntp(bytes(raw))
    except ParseError as exc:
        assert exc.kind in ("ntp_truncated", "ntp_bad_version", "ntp_control_message")
        return
    assert 0 <= packet.leap <= 3 and 1 <= packet.version <= 4 and packet.mode not in (6, 7)
    assert packet.reference_id_text.isprintable() and packet.mode_name
    assert all(c.isprintable() for c in packet.kiss_code or "")
    for ts in (packet.reference_ts, packet.origin_ts, packet.receive_ts, packet.transmit_ts):
        ntp_to_unix(ts)


@given(st.binary(max_size=80))
def test_random_bytes(raw: bytes) -> None:
    try:
        parse_ntp(raw)
    except ParseError:
        pass
