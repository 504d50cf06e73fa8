"""English counts in one place: "1 service", "2 services", "1 process", "3 processes", "2 proxies".

Every count in a sentence of the diagnosis and of the renderers goes through `count` (or `plural`
when the number is written elsewhere), so singular and plural always agree with the number.
Labels such as "Services (1)" are not sentences and need no agreement.
"""

from __future__ import annotations

# Verbs and words the rules below get wrong; a noun's own plural can also be passed as `many`.
_IRREGULAR = {"is": "are", "was": "were", "has": "have", "works": "work", "fails": "fail", "this": "these",
              "that": "those", "it": "they", "its": "their"}
_VOWELS = frozenset("aeiou")


def _plural_of(noun: str) -> str:
    head, _, last = noun.rpartition(" ")  # "Apple service" -> the last word takes the plural
    word = last or noun
    if word in _IRREGULAR:
        many = _IRREGULAR[word]
    elif word.endswith(("s", "x", "z", "ch", "sh")):
        many = word + "es"  # process, address, box, match
    elif word.endswith("y") and len(word) > 1 and word[-2].lower() not in _VOWELS:
        many = word[:-1] + "ies"  # entry, proxy (not day, key)
    else:
        many = word + "s"
    return f"{head} {many}" if head else many


def plural(n: int, noun: str, many: str | None = None) -> str:
    """`noun` for one (and minus one), else its plural (`many`, the irregular table, the rules), without
    the number."""
    if abs(n) == 1:
        return noun
    if many is not None:
        return many
    return _plural_of(noun)


def count(n: int, noun: str, many: str | None = None) -> str:
    """ "1 service", "0 services", "2 connections", "3 processes"."""
    return f"{n} {plural(n, noun, many)}"
