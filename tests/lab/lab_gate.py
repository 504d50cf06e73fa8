"""Whether a lab that cannot run is a skip or a failure.

On a developer's machine without root the lab tests skip, with the reason.
Where the lab is expected (CI, `make test` as root), `APPLE_NET_REQUIRE_LAB=1`
turns that skip into a failure: a run that silently skipped the only check of
several diagnosis branches must not pass.
"""

from __future__ import annotations

from collections.abc import Mapping

REQUIRE_ENV = "APPLE_NET_REQUIRE_LAB"


def lab_required(environ: Mapping[str, str]) -> bool:
    """True when the environment says the lab must run: APPLE_NET_REQUIRE_LAB set to anything but '', '0', 'no'."""
    return environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "no", "false")


def unavailable_outcome(reason: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """("fail" or "skip", message) for a lab that cannot run for `reason`."""
    if lab_required(environ):
        return "fail", f"lab required ({REQUIRE_ENV}=1) but it cannot run: {reason}"
    return "skip", f"lab skipped: {reason} (set {REQUIRE_ENV}=1 to make this a failure)"
