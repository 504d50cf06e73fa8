"""Before/after: what a firewall or proxy change did to Apple services.

    >>> from analyzer.compare import compare
    >>> c = compare(analyze("before.pcapng"), analyze("after.pcapng"))
    >>> c.worse, c.better, c.appeared, c.disappeared
    >>> print(c.to_text())

Both sides are Analyses or their report dicts (a saved `--format json`
report works too). A service absent from one side was not exercised there:
it is "not seen", never "fixed", because a capture in which nobody opened the
App Store says nothing about whether the App Store works.

Findings are matched by (kind, service), not by message: messages hold
addresses and ports that change between captures while the problem stays the
same. Findings tied to no service are matched by (kind, message). A finding
whose service the after capture never exercised is "not_retested", not
"disappeared".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from analyzer.report.escape import for_markdown, for_terminal

if TYPE_CHECKING:
    from analyzer.analysis import Analysis

NOT_SEEN = "not_seen"
# Blocked and intercepted are equally broken for a device (Apple rejects intercepted TLS).
_HEALTH = {"blocked": 0, "intercepted": 0, "degraded": 1, "working": 2}
_SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}


class Change(StrEnum):
    WORSE = "worse"
    BETTER = "better"
    CHANGED = "changed"  # different, equally bad (blocked <-> intercepted)
    NEWLY_SEEN = "newly_seen"  # exercised only in the after capture
    NO_LONGER_SEEN = "no_longer_seen"  # exercised only in the before capture: not tested, not fixed
    SAME = "same"


# Worst news first: what a change broke, then what it fixed.
CHANGE_ORDER = (Change.WORSE, Change.BETTER, Change.CHANGED, Change.NEWLY_SEEN, Change.NO_LONGER_SEEN, Change.SAME)


class FindingChange(StrEnum):
    """In this order in a Comparison: new problems, problems left, problems gone, problems not looked at again."""

    APPEARED = "appeared"
    PERSISTING = "persisting"
    DISAPPEARED = "disappeared"  # its service was exercised again and the finding is gone
    NOT_RETESTED = "not_retested"  # gone only because the after capture never exercised its service


@dataclass(frozen=True, slots=True)
class ServiceDelta:
    id: str
    host: str
    section: str
    before: str  # status, "not_seen" when the before capture never exercised it
    after: str
    change: Change
    before_verdicts: Mapping[str, int]
    after_verdicts: Mapping[str, int]
    advice: str | None  # after's advice; before's when after never exercised the service

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "host": self.host, "section": self.section, "before": self.before,
                "after": self.after, "change": self.change.value, "before_verdicts": dict(self.before_verdicts),
                "after_verdicts": dict(self.after_verdicts), "advice": self.advice}


@dataclass(frozen=True, slots=True)
class FindingDelta:
    change: FindingChange
    severity: str
    kind: str
    service: str | None
    message: str
    before_count: int
    after_count: int
    wireshark_filter: str | None  # to find it in the capture where it is (after, else before)

    def to_dict(self) -> dict[str, Any]:
        return {"change": self.change.value, "severity": self.severity, "kind": self.kind, "service": self.service,
                "message": self.message, "before_count": self.before_count, "after_count": self.after_count,
                "wireshark_filter": self.wireshark_filter}


@dataclass(frozen=True, slots=True)
class Side:
    headline: str
    sources: tuple[str, ...]
    services_by_status: Mapping[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"headline": self.headline, "sources": list(self.sources),
                "services_by_status": dict(self.services_by_status)}


@dataclass(frozen=True, slots=True)
class Comparison:
    before: Side
    after: Side
    services: tuple[ServiceDelta, ...]  # every service of either side, worst change first
    findings: tuple[FindingDelta, ...]  # in FindingChange order; errors first in each

    def _services(self, change: Change) -> tuple[ServiceDelta, ...]:
        return tuple(s for s in self.services if s.change is change)

    def _findings(self, change: FindingChange) -> tuple[FindingDelta, ...]:
        return tuple(f for f in self.findings if f.change is change)

    @property
    def changed(self) -> tuple[ServiceDelta, ...]:
        """Services whose status differs between the captures (not_seen included)."""
        return tuple(s for s in self.services if s.change is not Change.SAME)

    @property
    def worse(self) -> tuple[ServiceDelta, ...]:
        return self._services(Change.WORSE)

    @property
    def better(self) -> tuple[ServiceDelta, ...]:
        return self._services(Change.BETTER)

    @property
    def no_longer_seen(self) -> tuple[ServiceDelta, ...]:
        return self._services(Change.NO_LONGER_SEEN)

    @property
    def appeared(self) -> tuple[FindingDelta, ...]:
        return self._findings(FindingChange.APPEARED)

    @property
    def disappeared(self) -> tuple[FindingDelta, ...]:
        return self._findings(FindingChange.DISAPPEARED)

    @property
    def persisting(self) -> tuple[FindingDelta, ...]:
        return self._findings(FindingChange.PERSISTING)

    @property
    def not_retested(self) -> tuple[FindingDelta, ...]:
        return self._findings(FindingChange.NOT_RETESTED)

    @property
    def regressed(self) -> bool:
        """A service got worse or an error-level finding appeared."""
        return bool(self.worse) or any(f.severity == "error" for f in self.appeared)

    @property
    def headline(self) -> str:
        counts = [(len(self._services(c)), text) for c, text in (
            (Change.WORSE, "worse"), (Change.BETTER, "better"), (Change.CHANGED, "changed"),
            (Change.NEWLY_SEEN, "newly seen"), (Change.NO_LONGER_SEEN, "no longer seen"))]
        parts = [f"{n} service{'s' if n != 1 else ''} {text}" for n, text in counts if n]
        parts += [f"{n} finding{'s' if n != 1 else ''} {text}" for n, text in (
            (len(self.appeared), "appeared"), (len(self.disappeared), "disappeared"),
            (len(self.not_retested), "not retested")) if n]
        return "; ".join(parts) if parts else "No change in service status or findings"

    def to_dict(self) -> dict[str, Any]:
        return {"headline": self.headline, "regressed": self.regressed, "before": self.before.to_dict(),
                "after": self.after.to_dict(), "services": [s.to_dict() for s in self.services],
                "findings": [f.to_dict() for f in self.findings]}

    def to_text(self) -> str:
        """Plain text for a terminal or a notebook; wire strings have their control characters made visible."""
        t = for_terminal
        lines = [t(self.headline), "",
                 f"before: {t(self.before.headline)}  [{t(', '.join(self.before.sources))}]",
                 f"after:  {t(self.after.headline)}  [{t(', '.join(self.after.sources))}]"]
        changed = self.changed
        if changed:
            lines += ["", "Services whose status changed:"]
            width = max(len(s.host) for s in changed)
            for s in changed:
                lines.append(f"  {_CHANGE_TEXT[s.change]:<15} {t(s.host):<{width}}  {s.before} -> {s.after}"
                             f"  ({t(s.section)})")
        same = len(self.services) - len(changed)
        if same:
            lines += ["", f"{same} service{'s' if same != 1 else ''} unchanged."]
        for change, title in ((FindingChange.APPEARED, "Findings that appeared:"),
                              (FindingChange.PERSISTING, "Findings in both:"),
                              (FindingChange.DISAPPEARED, "Findings that disappeared:"),
                              (FindingChange.NOT_RETESTED, _NOT_RETESTED_TITLE)):
            group = self._findings(change)
            if group:
                lines += ["", title]
                lines += [f"  [{f.severity}] {t(f.message)}  ({f.kind})" for f in group]
        return "\n".join(lines) + "\n"


    def to_markdown(self) -> str:
        """A Markdown summary for a ticket or a change record; wire strings escaped."""
        m = for_markdown
        lines = [f"# Before/after: {m(self.headline)}", "",
                 f"- **Before**: {m(self.before.headline)} ({m(', '.join(self.before.sources))})",
                 f"- **After**: {m(self.after.headline)} ({m(', '.join(self.after.sources))})", "",
                 "## Services", ""]
        if self.services:
            lines += ["| Change | Host | Section | Before | After |", "|---|---|---|---|---|"]
            lines += [f"| {_words(s.change)} | {m(s.host)} | {m(s.section)} | {m(s.before)} | {m(s.after)} |"
                      for s in self.services]
        else:
            lines.append("No Apple service in either capture.")
        lines += ["", "## Findings", ""]
        if self.findings:
            lines += ["| Change | Severity | Finding | Kind | Before | After |", "|---|---|---|---|---|---|"]
            lines += [f"| {_words(f.change)} | {f.severity} | {m(f.message)} | {m(f.kind)} | {f.before_count} "
                      f"| {f.after_count} |" for f in self.findings]
        else:
            lines.append("No findings in either capture.")
        return "\n".join(lines) + "\n"


_NOT_RETESTED_TITLE = "Findings not retested (their service is not in the after capture):"


def _words(value: StrEnum) -> str:
    return value.value.replace("_", " ")


_CHANGE_TEXT = {Change.WORSE: "WORSE", Change.BETTER: "better", Change.CHANGED: "changed",
                Change.NEWLY_SEEN: "newly seen", Change.NO_LONGER_SEEN: "no longer seen", Change.SAME: "same"}


class ReportError(ValueError):
    """A report dict (a saved JSON report, say) that does not have the shape compare reads."""


_MAX_COUNT = 2**63  # counts beyond this are no capture's


def _want(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise ReportError(f"{where} must be {what}")


def _optional_text(value: Any, where: str) -> None:
    _want(value is None or isinstance(value, str), where, "a string or null")


def _counts(value: Any, where: str) -> None:
    if value is None:
        return
    _want(isinstance(value, Mapping), where, "an object of counts")
    for k, n in value.items():
        _want(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < _MAX_COUNT, f"{where}.{k}",
              "a count (a whole number from 0 to 2^63)")


def _list_of_objects(value: Any, where: str) -> Sequence[Mapping[str, Any]]:
    if value is None:
        return []
    _want(isinstance(value, list) and all(isinstance(x, Mapping) for x in value), where, "a list of objects")
    return value  # type: ignore[no-any-return]


def check_report(report: Any) -> Mapping[str, Any]:
    """`report` if every field compare reads has the type the report schema gives it, else ReportError.

    Only those fields: an older or newer report with more or fewer others compares fine.
    """
    _want(isinstance(report, Mapping), "the report", "a JSON object")
    summary = report.get("summary")
    if summary is not None:
        _want(isinstance(summary, Mapping), "summary", "an object")
        _optional_text(summary.get("headline"), "summary.headline")
        _counts(summary.get("services_by_status"), "summary.services_by_status")
    for n, c in enumerate(_list_of_objects(report.get("captures"), "captures")):
        _optional_text(c.get("source"), f"captures[{n}].source")
    for n, sv in enumerate(_list_of_objects(report.get("services"), "services")):
        _want(isinstance(sv.get("id"), str), f"services[{n}].id", "a string")
        for key in ("status", "host", "section", "section_en", "advice"):
            _optional_text(sv.get(key), f"services[{n}].{key}")
        _counts(sv.get("by_verdict"), f"services[{n}].by_verdict")
    for n, f in enumerate(_list_of_objects(report.get("findings"), "findings")):
        for key in ("kind", "service", "message", "severity", "wireshark_filter"):
            _optional_text(f.get(key), f"findings[{n}].{key}")
    return report


def _report(source: Analysis | Mapping[str, Any]) -> Mapping[str, Any]:
    report = getattr(source, "report", source)
    if not isinstance(report, Mapping):
        raise TypeError(f"expected an Analysis or its report dict, got {type(source).__name__}")
    return check_report(report)


def _side(report: Mapping[str, Any]) -> Side:
    summary = report.get("summary") or {}
    return Side(str(summary.get("headline") or ""),
                tuple(str(c.get("source")) for c in report.get("captures") or []),
                dict(summary.get("services_by_status") or {}))


def _change(before: str, after: str) -> Change:
    if before == after:
        return Change.SAME
    if before == NOT_SEEN:
        return Change.NEWLY_SEEN
    if after == NOT_SEEN:
        return Change.NO_LONGER_SEEN
    b, a = _HEALTH.get(before), _HEALTH.get(after)
    if b is None or a is None or a == b:
        return Change.CHANGED
    return Change.BETTER if a > b else Change.WORSE


def _service_deltas(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> list[ServiceDelta]:
    b_by = {str(s["id"]): s for s in before}
    a_by = {str(s["id"]): s for s in after}
    ids = list(b_by) + [i for i in a_by if i not in b_by]
    out = []
    for i in ids:
        b, a = b_by.get(i, {}), a_by.get(i, {})
        either = a or b
        b_status, a_status = str(b.get("status", NOT_SEEN)), str(a.get("status", NOT_SEEN))
        out.append(ServiceDelta(i, str(either.get("host") or i), str(either.get("section_en") or either.get("section")),
                                b_status, a_status, _change(b_status, a_status), dict(b.get("by_verdict") or {}),
                                dict(a.get("by_verdict") or {}),
                                # A service fixed in after has no advice left; one not retested keeps before's.
                                b.get("advice") if a_status == NOT_SEEN else a.get("advice")))
    rank = {c: n for n, c in enumerate(CHANGE_ORDER)}
    # Within a kind of change, the most broken first (after's status, or before's when after never saw it).
    out.sort(key=lambda s: (rank[s.change], _HEALTH.get(s.after, _HEALTH.get(s.before, 3)), s.section, s.host))
    return out


def _finding_key(f: Mapping[str, Any]) -> tuple[str, str]:
    return (str(f.get("kind")), str(f["service"]) if f.get("service") else "message:" + str(f.get("message")))


def _finding_deltas(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]],
                    untested: set[str]) -> list[FindingDelta]:
    groups: dict[tuple[str, str], tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]] = {}
    for side, findings in ((0, before), (1, after)):
        for f in findings:
            groups.setdefault(_finding_key(f), ([], []))[side].append(f)
    out = []
    for b, a in groups.values():
        shown = (a or b)[0]
        change = (FindingChange.PERSISTING if a and b else FindingChange.APPEARED if a
                  else FindingChange.NOT_RETESTED if shown.get("service") in untested else FindingChange.DISAPPEARED)
        severities = [str(f.get("severity")) for f in (a or b)]
        severity = min(severities, key=lambda s: _SEVERITY_RANK.get(s, 3))
        out.append(FindingDelta(change, severity, str(shown.get("kind")), shown.get("service"),
                                str(shown.get("message")), len(b), len(a), shown.get("wireshark_filter")))
    rank = {c: n for n, c in enumerate(FindingChange)}
    out.sort(key=lambda f: (rank[f.change], _SEVERITY_RANK.get(f.severity, 3), f.kind, f.service or ""))
    return out


def compare(before: Analysis | Mapping[str, Any], after: Analysis | Mapping[str, Any]) -> Comparison:
    """What changed from `before` to `after`: service status and findings."""
    b, a = _report(before), _report(after)
    services = _service_deltas(b.get("services") or [], a.get("services") or [])
    untested = {s.id for s in services if s.after == NOT_SEEN}
    return Comparison(_side(b), _side(a), tuple(services),
                      tuple(_finding_deltas(b.get("findings") or [], a.get("findings") or [], untested)))
