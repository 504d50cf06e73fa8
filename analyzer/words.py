"""English counts in one place: "1 service", "2 services", "1 flow", "3 flows"."""

from __future__ import annotations

_IRREGULAR = {"is": "are", "was": "were", "works": "work", "fails": "fail", "this": "these", "entry": "entries",
              "address": "addresses", "proxy": "proxies"}


def plural(n: int, noun: str, many: str | None = None) -> str:
    """`noun` for one, else its plural (the irregular table, else `noun + "s"`), without the number."""
    if n == 1:
        return noun
    if many is not None:
        return many
    return _IRREGULAR.get(noun, noun + "s")


def count(n: int, noun: str, many: str | None = None) -> str:
    """ "1 service", "0 services", "2 connections"."""
    return f"{n} {plural(n, noun, many)}"
