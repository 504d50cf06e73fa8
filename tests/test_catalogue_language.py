"""English by default, the seed's Dutch on request: `apple-net services` and `services lookup`.

The data keeps the seed edition's Dutch headings, OS cells and descriptions verbatim; what a user
reads is English unless they ask for `--lang nl` (or read the JSON, which carries both).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from analyzer.catalogue import load_catalogue
from analyzer.catalogue.model import os_list_text
from analyzer.cli import main

SIGNATURES = str(Path(__file__).resolve().parent.parent / "signatures")
DUTCH = ("Alleen", " en ", "Apparaatbeheer", "Configuratie", "authenticatie", "Instellingen")


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def test_os_list_text() -> None:
    assert os_list_text(("macOS",)) == "macOS only"
    assert os_list_text(["iOS", "iPadOS"]) == "iOS and iPadOS"
    assert os_list_text(("iOS", "iPadOS", "tvOS", "macOS")) == "iOS, iPadOS, tvOS and macOS"
    assert os_list_text(()) == ""


def test_every_entry_has_english_os_text_and_keeps_the_dutch() -> None:
    cat = load_catalogue(SIGNATURES)
    seed = [e for e in cat.entries if e.os_text]
    assert seed, "the seed's OS cells are kept"
    for e in cat.entries:
        assert not any(word in e.os_en for word in ("Alleen", " en ")), e.id
        assert (e.os_en == "") == (e.os == ())
        if e.os_text.startswith("Alleen"):
            assert e.os_en == f"{e.os[0]} only"
    sections = load_catalogue(SIGNATURES).sections
    assert sections["apple_id"].title() == "Apple Account (Apple ID)"
    assert sections["apple_id"].title("nl") == "Apple\u00a0ID"
    assert sections["device_management"].title("nl") == "Apparaatbeheer"


def test_services_list_is_english_unless_asked() -> None:
    code, out = run("services", "--signatures", SIGNATURES, "--section", "device_setup")
    assert code == 0
    assert "iOS, iPadOS, tvOS and macOS" in out or "macOS only" in out
    assert "Device setup" in out
    for word in DUTCH:
        assert word not in out, word
    code, nl = run("services", "--signatures", SIGNATURES, "--section", "device_setup", "--lang", "nl")
    assert code == 0
    assert "Configuratie van het apparaat" in nl and " en macOS" in nl


@pytest.mark.parametrize("target", ["gsa.apple.com", "mdmenrollment.apple.com:443"])
def test_lookup_is_english_unless_asked(target: str) -> None:
    code, out = run("services", "lookup", "--signatures", SIGNATURES, target)
    assert code == 0
    for word in DUTCH:
        assert word not in out, (word, out)
    assert "Apple ID (Apple Account in the current English edition)" not in out
    code, nl = run("services", "lookup", "--signatures", SIGNATURES, "--lang", "nl", target)
    assert code == 0
    first = next(line for line in nl.splitlines() if line.startswith("    - "))
    english = next(line for line in out.splitlines() if line.startswith("    - "))
    assert first != english  # the Dutch heading leads, the English one follows in brackets
    code, raw = run("services", "lookup", "--signatures", SIGNATURES, "--format", "json", target)
    entry = json.loads(raw)["matches"][0]["entries"][0]
    assert {"section", "section_nl", "os", "os_en", "os_text", "description", "description_nl"} <= set(entry)


def test_gsa_lookup_lines() -> None:
    _, out = run("services", "lookup", "--signatures", SIGNATURES, "gsa.apple.com")
    assert "    - Apple Account (Apple ID): TCP 443 (iOS, iPadOS, tvOS and macOS); proxy: yes" in out
    assert "      Apple ID authentication" in out
    _, nl = run("services", "lookup", "--signatures", SIGNATURES, "--lang", "nl", "gsa.apple.com")
    assert "    - Apple\u00a0ID (Apple Account (Apple ID)): TCP 443 (iOS, iPadOS, tvOS en macOS); proxy: yes" in nl
    assert "      Apple\u00a0ID-authenticatie" in nl
