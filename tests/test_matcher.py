"""Name and address matching: exact beats wildcard, longest suffix / prefix wins, normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.catalogue import HostKind, Matcher, load_catalogue

HEAD = """
[source.t]
title = "t"
ref = "t"
kind = "edition"
"""
SECTIONS = """
[section.a]
nl = "A"
en = "A"
order = 1
[section.b]
nl = "B"
en = "B"
order = 2
[section.firewalls]
nl = "Firewalls"
en = "Firewalls"
order = 3
"""


def entry(ident: str, host: str, ports: list[int], transport: str = "tcp", section: str = "a", status: str = "listed") -> str:
    return f"""
[[entry]]
id = "{ident}"
section = "{section}"
host = "{host}"
ports = {ports}
transport = "{transport}"
protocol = "{transport.upper()}"
os = []
os_text = ""
description = {{nl = "", en = ""}}
proxy = "no"
source = "t"
ref = "t:1"
editions = ["seed", "current"]
status = "{status}"
"""


@pytest.fixture(scope="module")
def matcher(tmp_path_factory: pytest.TempPathFactory) -> Matcher:
    root = tmp_path_factory.mktemp("sigs")
    (root / "catalogue").mkdir()
    (root / "sources.toml").write_text(HEAD)
    (root / "sections.toml").write_text(SECTIONS)
    (root / "issuers.toml").write_text("")
    entries = [
        entry("a/gs", "gs.apple.com", [443]),
        entry("b/gs", "gs.apple.com", [443, 80], section="b"),
        entry("a/push", "*.push.apple.com", [443, 80, 5223, 2197]),
        entry("a/itunes-wild", "*.itunes.apple.com", [443, 80]),
        entry("a/itunes", "itunes.apple.com", [443]),
        entry("a/time", "time.apple.com", [123], transport="udp"),
        entry("a/idn", "*.xn--bcher-kva.example", [443]),
        entry("fw/apple", "*.apple.com", [], section="firewalls", status="guidance"),
        entry("fw/17", "17.0.0.0/8", [], section="firewalls", status="guidance"),
        entry("a/notary", "17.248.128.0/18", [443]),
        entry("a/apns6", "2620:149:a44::/48", [5223, 443]),
        entry("a/apple6", "2620:149::/32", [443]),
    ]
    (root / "catalogue" / "t.toml").write_text("".join(entries))
    return Matcher(load_catalogue(root, extra_issuer_files=[]))


def ids(m: object) -> list[str]:
    return [e.id for e in m.entries]  # type: ignore[attr-defined]


def test_exact_beats_wildcard_and_keeps_every_section(matcher: Matcher) -> None:
    m = matcher.match_name("gs.apple.com")
    assert m is not None and m.kind is HostKind.EXACT and m.rule == "exact name"
    assert ids(m) == ["a/gs", "b/gs"]
    assert [e.id for e in m.documented(80, "tcp")] == ["b/gs"]
    assert m.best_entry(80, "tcp").id == "b/gs"
    assert m.best_entry(443, "tcp").id == "a/gs"
    # The broader guidance is still listed, after the exact match.
    assert [x.pattern for x in matcher.name_matches("gs.apple.com")] == ["gs.apple.com", "*.apple.com"]
    assert ids(matcher.match_name("itunes.apple.com")) == ["a/itunes"]


def test_longest_suffix_wins_at_any_depth(matcher: Matcher) -> None:
    m = matcher.match_name("17-courier.push.apple.com")
    assert m is not None and m.pattern == "*.push.apple.com"
    assert m.rule == "wildcard *.push.apple.com (longest matching suffix .push.apple.com)"
    assert matcher.match_name("a.b.push.apple.com").pattern == "*.push.apple.com"  # type: ignore[union-attr]
    assert matcher.match_name("buy.itunes.apple.com").pattern == "*.itunes.apple.com"  # type: ignore[union-attr]
    assert matcher.match_name("www.apple.com").pattern == "*.apple.com"  # type: ignore[union-attr]
    # The wildcard's own domain is covered and says so.
    apex = matcher.match_name("push.apple.com")
    assert apex is not None and apex.pattern == "*.push.apple.com" and "itself" in apex.rule


def test_normalisation_case_trailing_dot_idna(matcher: Matcher) -> None:
    for name in ("GS.Apple.COM", "gs.apple.com.", "Gs.Apple.Com."):
        assert ids(matcher.match_name(name)) == ["a/gs", "b/gs"]
    assert matcher.match_name("www.bücher.example").pattern == "*.xn--bcher-kva.example"  # type: ignore[union-attr]
    assert matcher.match_name("www.xn--bcher-kva.example.").pattern == "*.xn--bcher-kva.example"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["apple.com.evil.example", "notapple.com", "evilpush.apple.co", "", ".", "a..b",
                                  "<script>.apple.com", "x\x1b[31m.apple.com", "x" * 300 + ".apple.com"])
def test_non_matches_and_hostile_names(matcher: Matcher, name: str) -> None:
    assert matcher.match_name(name) is None


def test_ip_longest_prefix_v4_v6(matcher: Matcher) -> None:
    m = matcher.match_ip("17.248.130.5")
    assert m is not None and m.pattern == "17.248.128.0/18" and m.rule == "longest prefix 17.248.128.0/18"
    assert [x.pattern for x in matcher.ip_matches("17.248.130.5")] == ["17.248.128.0/18", "17.0.0.0/8"]
    assert matcher.match_ip("17.1.2.3").pattern == "17.0.0.0/8"  # type: ignore[union-attr]
    assert matcher.match_ip("18.1.2.3") is None
    assert matcher.match_ip("2620:149:a44::10").pattern == "2620:149:a44::/48"  # type: ignore[union-attr]
    assert matcher.match_ip("2620:149:1::1").pattern == "2620:149::/32"  # type: ignore[union-attr]
    assert matcher.match_ip("2620:14a::1") is None
    assert matcher.match_ip("not-an-ip") is None
    assert matcher.lookup("17.248.130.5")[0].pattern == "17.248.128.0/18"
    assert matcher.lookup("gs.apple.com")[0].pattern == "gs.apple.com"


def test_port_and_transport_documentation(matcher: Matcher) -> None:
    m = matcher.match_name("time.apple.com")
    assert m is not None
    assert m.documented(123, "udp") and not m.documented(123, "tcp")
    guidance = matcher.match_ip("17.9.9.9")
    assert guidance is not None and guidance.documented(8443, "tcp")  # guidance covers any port
    push = matcher.match_name("1-courier.push.apple.com")
    assert push is not None and push.documented(5223, "tcp") and not push.documented(5228, "tcp")


def test_cache_returns_same_answers(matcher: Matcher) -> None:
    first = matcher.name_matches("x.push.apple.com")
    assert matcher.name_matches("x.push.apple.com") is first
