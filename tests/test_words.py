"""analyzer/words.py: the one place where counts and nouns agree."""

from __future__ import annotations

import pytest

from analyzer.words import count, plural


@pytest.mark.parametrize(("noun", "many"), [
    ("service", "services"), ("flow", "flows"), ("connection", "connections"), ("client", "clients"),
    ("Apple service", "Apple services"), ("catalogue service", "catalogue services"),
    ("Apple name", "Apple names"), ("process", "processes"), ("address", "addresses"), ("box", "boxes"),
    ("match", "matches"), ("hash", "hashes"), ("entry", "entries"), ("proxy", "proxies"),
    ("day", "days"), ("key", "keys"), ("packet", "packets"), ("byte", "bytes"),
    ("is", "are"), ("was", "were"), ("works", "work"), ("fails", "fail"), ("this", "these"),
])
def test_plural_rules(noun: str, many: str) -> None:
    assert plural(2, noun) == many
    assert plural(0, noun) == many
    assert plural(1, noun) == noun


def test_count_agrees_with_the_number() -> None:
    assert count(1, "service") == "1 service"
    assert count(0, "service") == "0 services"
    assert count(2, "catalogue service") == "2 catalogue services"
    assert count(1, "catalogue service") == "1 catalogue service"
    assert count(3, "process") == "3 processes"
    assert count(-1, "byte") == "-1 byte"
    assert count(2, "person", "people") == "2 people"  # an explicit plural wins
    assert count(1, "person", "people") == "1 person"
    assert f"{count(1, 'Apple service')} {plural(1, 'works')}" == "1 Apple service works"
    assert f"{count(4, 'Apple service')} {plural(4, 'works')}" == "4 Apple services work"
