"""Host-name normalisation shared by the catalogue and the matcher."""

from __future__ import annotations

import re

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


def normalize_name(name: str) -> str | None:
    """Lower-case, strip one trailing dot, convert Unicode labels to IDNA A-labels.

    Returns None when the text cannot be a DNS host name (so a hostile SNI never
    matches anything by accident).
    """
    n = name.strip().rstrip(".").lower()
    if not n or len(n) > 253:
        return None
    if not n.isascii():
        try:
            n = n.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = n.split(".")
    for label in labels:
        if not _LABEL.match(label):
            return None
    return n


def is_valid_pattern(host: str) -> bool:
    """`name` or `*.name` with a valid name below the star."""
    if host.startswith("*."):
        return normalize_name(host[2:]) is not None and "*" not in host[2:]
    return "*" not in host and normalize_name(host) is not None
