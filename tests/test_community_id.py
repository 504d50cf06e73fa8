"""Community ID v1 against the spec's own baselines.

Vectors: corelight/community-id-spec @c4ec2bc, baseline/baseline_deflt.json
(seed 0) and baseline/baseline_seed1.json (seed 1), BSD-3-Clause. Each row is
(proto, saddr, daddr, sport, dport, expected); for ICMP the "ports" are the
message type and code (the spec's port-equivalents are derived from them).
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.flows.community_id import community_id, icmp_port_equivalents

_ROWS = [
    (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 136),
    (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 136, 135),
    (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 135, 136),
    (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 136, 135),
    (58, "3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0),
    (58, "3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", 1, 4),
    (58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2", 128, 129),
    (58, "3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", 129, 128),
    (58, "fe80::200:86ff:fe05:80da", "ff02::2", 133, 134),
    (58, "fe80::260:97ff:fe07:69ea", "ff02::1", 134, 133),
    (1, "192.168.0.89", "192.168.0.1", 8, 0),
    (1, "192.168.0.1", "192.168.0.89", 0, 8),
    (1, "10.0.0.1", "10.0.0.2", 11, 0),
    (6, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", 63943, 25),
    (6, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", 25, 63943),
    (132, "192.168.170.8", "192.168.170.56", 7, 7),
    (132, "192.168.170.56", "192.168.170.8", 7, 7),
    (6, "128.232.110.120", "66.35.250.204", 34855, 80),
    (6, "66.35.250.204", "128.232.110.120", 80, 34855),
    (17, "192.168.1.52", "8.8.8.8", 54585, 53),
    (17, "8.8.8.8", "192.168.1.52", 53, 54585),
    (46, "10.1.12.1", "10.1.12.2", None, None),
    (46, "10.1.12.2", "10.1.12.1", None, None),
]
_SEED0 = [
    "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
    "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
    "1:zavyT/cezQr1fmImYCwYnMXbgck=",
    "1:zavyT/cezQr1fmImYCwYnMXbgck=",
    "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=",
    "1:hLZd0XGWojozrvxqE0dWB1iM6R0=",
    "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=",
    "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=",
    "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=",
    "1:pkvHqCL88/tg1k4cPigmZXUtL00=",
    "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
    "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
    "1:YHxtAirCG//0OzkcVAukqKQN9xM=",
    "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
    "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
    "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
    "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
    "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
    "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
    "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
    "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
    "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=",
    "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=",
]
_SEED1 = [
    "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=",
    "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=",
    "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=",
    "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=",
    "1:lVEtCZpYu84Xqaa++3lXFyuu2n4=",
    "1:W8MHwXpWzpoSTD+cGcaJr4u0ys8=",
    "1:GfZxjAkDk2MkegpBYHV6tadtFXQ=",
    "1:GfZxjAkDk2MkegpBYHV6tadtFXQ=",
    "1:L7Ka0ZMYu+J3bL4ulW2PrqyXNo8=",
    "1:K/ee5UCqAMAQXDorP5nSa2CGLjc=",
    "1:03g6IloqVBdcZlPyX8r0hgoE7kA=",
    "1:03g6IloqVBdcZlPyX8r0hgoE7kA=",
    "1:XjUibYHaafLQ3pxQeiMI8g25q20=",
    "1:eJYTW6AOzFLlSUoESovMjnu7rMw=",
    "1:eJYTW6AOzFLlSUoESovMjnu7rMw=",
    "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=",
    "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=",
    "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
    "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
    "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
    "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
    "1:rYir8gphR31noO9iDRQmF/BteEI=",
    "1:rYir8gphR31noO9iDRQmF/BteEI=",
]


@pytest.mark.parametrize(("row", "expected"), list(zip(_ROWS, _SEED0, strict=True)))
def test_spec_baseline_seed0(row: tuple[int, str, str, int | None, int | None], expected: str) -> None:
    proto, src, dst, sport, dport = row
    assert community_id(src, dst, proto, sport, dport) == expected
    # Packed addresses give the same hash as text.
    packed = community_id(ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed, proto, sport, dport)
    assert packed == expected


@pytest.mark.parametrize(("row", "expected"), list(zip(_ROWS, _SEED1, strict=True)))
def test_spec_baseline_seed1(row: tuple[int, str, str, int | None, int | None], expected: str) -> None:
    proto, src, dst, sport, dport = row
    assert community_id(src, dst, proto, sport, dport, seed=1) == expected


def test_icmp_port_equivalents() -> None:
    assert icmp_port_equivalents(1, 8, 0) == (8, 0, False)  # echo request <-> reply
    assert icmp_port_equivalents(1, 0, 0) == (0, 8, False)
    assert icmp_port_equivalents(1, 13, 0) == (13, 14, False)  # timestamp
    assert icmp_port_equivalents(1, 3, 3) == (3, 3, True)  # port unreachable: one-way, code kept
    assert icmp_port_equivalents(1, 11, 1) == (11, 1, True)
    assert icmp_port_equivalents(58, 128, 0) == (128, 129, False)
    assert icmp_port_equivalents(58, 135, 0) == (135, 136, False)
    assert icmp_port_equivalents(58, 144, 0) == (144, 145, False)
    assert icmp_port_equivalents(58, 1, 4) == (1, 4, True)
    # ICMPv4 numbering does not apply to ICMPv6 and vice versa.
    assert icmp_port_equivalents(58, 8, 0) == (8, 0, True)
    assert icmp_port_equivalents(1, 128, 0) == (128, 0, True)


def test_icmp_one_way_keeps_order() -> None:
    # A one-way message is not canonicalised: each direction has its own ID.
    a = community_id("10.0.0.1", "10.0.0.2", 1, 3, 3)
    b = community_id("10.0.0.2", "10.0.0.1", 1, 3, 3)
    assert a != b


def test_equal_endpoints() -> None:
    # Same address and port on both sides: order cannot matter.
    assert community_id("127.0.0.1", "127.0.0.1", 17, 5353, 5353) == community_id(
        "127.0.0.1", "127.0.0.1", 17, 5353, 5353
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("10.0.0.1", "::1", 6, 1, 2), "families differ"),
        (("10.0.0.1", "10.0.0.2", 6, 1, 2, 65536), "seed"),
        (("10.0.0.1", "10.0.0.2", 6, 1, 70000), "16 bits"),
        ((b"\x01\x02\x03", b"\x01\x02\x03", 6, 1, 2), "4 or 16 bytes"),
    ],
)
def test_errors(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        community_id(*args)  # type: ignore[arg-type]


def test_bad_text_address() -> None:
    with pytest.raises(ValueError):
        community_id("not-an-ip", "10.0.0.1", 6, 1, 2)


_v4 = st.binary(min_size=4, max_size=4)
_v6 = st.binary(min_size=16, max_size=16)
_port = st.integers(0, 0xFFFF)


@given(st.one_of(st.tuples(_v4, _v4), st.tuples(_v6, _v6)), _port, _port, st.sampled_from([6, 17, 132]))
def test_symmetric_for_ported_protocols(addrs: tuple[bytes, bytes], sp: int, dp: int, proto: int) -> None:
    a, b = addrs
    forward = community_id(a, b, proto, sp, dp)
    assert forward == community_id(b, a, proto, dp, sp)
    assert forward.startswith("1:") and len(forward) == 30


@given(st.tuples(_v4, _v4), st.sampled_from([(8, 0), (0, 0), (13, 0), (14, 0), (15, 0), (16, 0), (17, 0), (18, 0)]))
def test_symmetric_for_icmp_pairs(addrs: tuple[bytes, bytes], tc: tuple[int, int]) -> None:
    a, b = addrs
    itype, code = tc
    back_type = icmp_port_equivalents(1, itype, code)[1]
    assert community_id(a, b, 1, itype, code) == community_id(b, a, 1, back_type, 0)
