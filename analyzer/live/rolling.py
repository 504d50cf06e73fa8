"""Days of live capture in bounded memory: periodic roll-up, eviction, and the rolling services view.

The engine keeps every finished flow and DNS transaction until `finish()`,
which an offline capture can afford and a span port running for days cannot.
`Rollup.step(engine)` runs every few seconds:

1. New records are judged at once (the same `diagnose`, over just the new
   batch, with a names map that remembers earlier DNS answers) and counted
   per service: the live view's numbers.
2. Reassembled stream bytes of new flows are dropped (the report never
   shows them; they are most of a finished flow's memory).
3. Past `max_flows` kept flows (or `max_dns` DNS transactions), the oldest
   quarter is evicted: its verdicts are already counted, so they move into
   the rolled-up tally and the records go.

The final report (`final_report`) diagnoses the kept records exactly as
`apple-net analyze` would; when nothing was evicted it *is* the offline
report of the same packets. Evicted records come back as counts: they are
added to `summary`, to each service's `flows`/`by_verdict` (and its status
re-judged), and the report gains `rolled_up` saying how many and over which
time span. A flow's verdict in the roll-up was judged with the context of
its own batch (cross-flow TLS 1.3 signals, TTL baselines), so it can differ
in rare cases from what one pass over everything would say.

`LiveView` draws the services table in place (rich.live) when stdout is a
terminal.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from analyzer.catalogue.loader import Catalogue
from analyzer.diagnosis import build_report, diagnose
from analyzer.diagnosis.diagnose import Diagnosis
from analyzer.diagnosis.model import FAILURES, Status
from analyzer.dnsmap import DNSTransaction, NameMap, Resolution
from analyzer.engine import CaptureSummary, Engine, EngineResult
from analyzer.inspect import FlowFacts

__all__ = ["LiveView", "RollingNames", "Rollup", "ServiceTally", "Tally"]

DNS_PORTS = frozenset({53, 5353, 5355})
_FAILED = frozenset(v.value for v in FAILURES)


class RollingNames(NameMap):
    """NameMap that grows as DNS answers arrive and forgets the least recently answered pairs.

    Lookups follow NameMap exactly: the latest resolution of `server_ip` by
    `client_ip` answered at or before the flow's start.
    """

    def __init__(self, max_pairs: int = 100_000, per_pair: int = 8) -> None:
        self._map: dict[tuple[str, str], list[Resolution]] = OrderedDict()
        self._times: dict[tuple[str, str], list[float]] = {}
        self.max_pairs = max_pairs
        self.per_pair = per_pair
        self.forgotten = 0

    def add_all(self, transactions: list[DNSTransaction]) -> None:
        m = self._map
        assert isinstance(m, OrderedDict)
        for t in transactions:
            if t.response_ts is None:
                continue
            for addr in (*t.addresses, *t.hint_addresses):
                key = (t.client_ip, addr)
                items = m.get(key)
                if items is None:
                    items = m[key] = []
                    self._times[key] = []
                else:
                    m.move_to_end(key)
                times = self._times[key]
                i = bisect.bisect_right(times, t.response_ts)
                times.insert(i, t.response_ts)
                items.insert(i, Resolution(t.response_ts, t.query, t.chain, t))
                if len(items) > self.per_pair:
                    del items[0], times[0]
        while len(m) > self.max_pairs:
            key, _ = m.popitem(last=False)
            del self._times[key]
            self.forgotten += 1

    def __len__(self) -> int:
        return len(self._map)


@dataclass(slots=True)
class ServiceTally:
    id: str
    host: str
    section: str
    flows: int = 0
    by_verdict: Counter[str] = field(default_factory=Counter)
    dns: int = 0
    dns_failed: int = 0
    problem: str | None = None
    """The latest failure's reason, for the view."""

    @property
    def status(self) -> Status:
        failed = sum(n for v, n in self.by_verdict.items() if v in _FAILED and v != "intercepted") + self.dns_failed
        if self.by_verdict.get("intercepted"):
            return Status.INTERCEPTED
        if failed and self.by_verdict.get("ok"):
            return Status.DEGRADED
        if failed:
            return Status.BLOCKED
        return Status.WORKING if self.flows or self.dns else Status.NOT_SEEN


@dataclass(slots=True)
class Tally:
    """Counts of judged records: totals and per service."""

    flows: int = 0
    apple_flows: int = 0
    by_verdict: Counter[str] = field(default_factory=Counter)
    dns: int = 0
    dns_by_verdict: Counter[str] = field(default_factory=Counter)
    services: dict[str, ServiceTally] = field(default_factory=dict)
    first_ts: float | None = None
    last_ts: float | None = None

    def _span(self, ts: float) -> None:
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)

    def _service(self, entry: Any) -> ServiceTally:
        row = self.services.get(entry.id)
        if row is None:
            row = self.services[entry.id] = ServiceTally(entry.id, entry.host, entry.section)
        return row

    def add_flow(self, outcome: FlowOutcome) -> None:
        self.flows += 1
        self.by_verdict[outcome.verdict] += 1
        self._span(outcome.ts)
        if outcome.entry is not None:
            self.apple_flows += 1
        if outcome.entry is not None and not outcome.dns_flow:
            row = self._service(outcome.entry)
            row.flows += 1
            row.by_verdict[outcome.verdict] += 1
            if outcome.verdict in _FAILED:
                row.problem = outcome.reason

    def add_dns(self, outcome: DNSOutcome) -> None:
        self.dns += 1
        self.dns_by_verdict[outcome.verdict] += 1
        self._span(outcome.ts)
        if outcome.entry is not None:
            row = self._service(outcome.entry)
            row.dns += 1
            if outcome.verdict != "ok":
                row.dns_failed += 1
                row.problem = outcome.reason


@dataclass(frozen=True, slots=True)
class FlowOutcome:
    ts: float
    entry: Any
    verdict: str
    reason: str
    dns_flow: bool


@dataclass(frozen=True, slots=True)
class DNSOutcome:
    ts: float
    entry: Any
    verdict: str
    reason: str


def _is_dns_flow(f: FlowFacts) -> bool:
    return f.flow.server_port in DNS_PORTS or f.flow.client_port in DNS_PORTS


def _strip(f: FlowFacts) -> FlowFacts:
    """The flow without its reassembled stream bytes (inspection is done; the report never shows them)."""
    r = f.flow
    if (r.client.stream is None or not r.client.stream.data) and (r.server.stream is None or not r.server.stream.data):
        return f
    flow = dataclasses.replace(r, client=dataclasses.replace(r.client, stream=None),
                               server=dataclasses.replace(r.server, stream=None))
    return dataclasses.replace(f, flow=flow)


class Rollup:
    """Judges records as they finish, keeps memory bounded, and builds the final report."""

    def __init__(self, catalogue: Catalogue, max_flows: int = 100_000, max_dns: int = 100_000,
                 max_name_pairs: int = 100_000) -> None:
        if max_flows < 4 or max_dns < 4:
            raise ValueError("max_flows and max_dns must be >= 4")
        self.catalogue = catalogue
        self.max_flows = max_flows
        self.max_dns = max_dns
        self.names = RollingNames(max_name_pairs)
        self.seen = Tally()
        """Every judged record (kept and evicted): the live view."""
        self.rolled = Tally()
        """Evicted records only: added to the final report."""
        self._flow_outcomes: list[FlowOutcome] = []  # aligned with engine.flows[:len(...)]
        self._dns_outcomes: list[DNSOutcome] = []  # aligned with engine.dns.transactions
        self.rolled_weird: Counter[str] = Counter()

    @property
    def evicted(self) -> bool:
        return self.rolled.flows > 0 or self.rolled.dns > 0

    def step(self, engine: Engine, capture: CaptureSummary) -> None:
        flows = engine.flows
        start = len(self._flow_outcomes)
        dns_list = engine.dns.transactions
        new_dns = dns_list[len(self._dns_outcomes):]
        if start == len(flows) and not new_dns:
            return
        batch = [_strip(f) for f in flows[start:]]
        flows[start:] = batch
        self.names.add_all(new_dns)
        diag = diagnose(EngineResult([capture], batch, new_dns, self.names, Counter()), self.catalogue)
        self._record(batch, diag)
        if len(flows) > self.max_flows:
            self._evict_flows(engine, len(flows) - self.max_flows * 3 // 4)
        if len(dns_list) > self.max_dns:
            self._evict_dns(engine, len(dns_list) - self.max_dns * 3 // 4)

    def _record(self, batch: list[FlowFacts], diag: Diagnosis) -> None:
        # diagnose() judges TCP and UDP flows only; the others get an empty outcome to stay aligned.
        judged = {id(f.facts): f for f in diag.flows}
        for f in batch:
            res = judged.get(id(f))
            if res is None:
                out = FlowOutcome(f.flow.ts_start, None, "", "", False)
            else:
                out = FlowOutcome(f.flow.ts_start, res.attribution.entry, res.judgement.verdict.value,
                                  res.judgement.reason, _is_dns_flow(f))
                self.seen.add_flow(out)
            self._flow_outcomes.append(out)
        for d in diag.dns:
            out_d = DNSOutcome(d.transaction.ts, d.judgement.entry, d.judgement.verdict.value, d.judgement.reason)
            self.seen.add_dns(out_d)
            self._dns_outcomes.append(out_d)

    def _evict_flows(self, engine: Engine, n: int) -> None:
        for out in self._flow_outcomes[:n]:
            if out.verdict:
                self.rolled.add_flow(out)
        del self._flow_outcomes[:n]
        del engine.flows[:n]

    def _evict_dns(self, engine: Engine, n: int) -> None:
        for out in self._dns_outcomes[:n]:
            self.rolled.add_dns(out)
        del self._dns_outcomes[:n]
        del engine.dns.transactions[:n]

    # -- the final report ---------------------------------------------------------------------------

    def final_report(self, engine: Engine, capture: CaptureSummary,
                     extra_capture: dict[str, Any] | None = None) -> dict[str, Any]:
        """Flush the engine and build the report: exact for kept records, counts for evicted ones."""
        engine.captures = [capture]
        result = engine.finish()
        if self.evicted:
            self.names.add_all(result.dns)
            result.names = self.names
        report = build_report(result, diagnose(result, self.catalogue), self.catalogue)
        if extra_capture:
            report["captures"][0].update(extra_capture)
        if self.evicted:
            merge_rolled(report, self.rolled, self.catalogue)
        return report


def merge_rolled(report: dict[str, Any], rolled: Tally, catalogue: Catalogue) -> None:
    """Add evicted records' counts into a report built from the kept ones."""
    s = report["summary"]
    s["flows"] += rolled.flows
    s["apple_flows"] += rolled.apple_flows
    s["by_verdict"] = dict(sorted((Counter(s["by_verdict"]) + rolled.by_verdict).items()))
    s["dns_by_verdict"] = dict(sorted((Counter(s["dns_by_verdict"]) + rolled.dns_by_verdict).items()))
    by_id = {row["id"]: row for row in report["services"]}
    entries = {e.id: e for e in catalogue.entries}
    for sid, t in rolled.services.items():
        row = by_id.get(sid)
        if row is None:
            e = entries.get(sid)
            sec = catalogue.sections.get(e.section) if e is not None else None
            row = by_id[sid] = {
                "id": sid, "section": t.section, "section_en": sec.en if sec else t.section,
                "section_nl": sec.nl if sec else "", "host": t.host, "ports": list(e.ports) if e else [],
                "protocol": e.protocol if e else None, "flows": 0, "attempts": 0, "dns_queries": 0,
                "by_verdict": {}, "status": Status.NOT_SEEN.value, "advice": None, "names": [],
                "evidence": [], "source": e.source if e else None, "ref": e.ref if e else None,
                "proxy": e.proxy.value if e else None,
            }
            report["services"].append(row)
        row["flows"] += t.flows
        row["attempts"] += t.flows  # an upper bound: retries inside evicted windows are not regrouped
        row["dns_queries"] += t.dns
        row["by_verdict"] = dict(sorted((Counter(row["by_verdict"]) + t.by_verdict).items()))
        row["status"] = _worse(row["status"], t.status.value)
        if t.problem and row["status"] != "working":
            row["evidence"] = [*row["evidence"], f"earlier (rolled up): {t.problem}"][:10]
    rank = {"intercepted": 0, "blocked": 1, "degraded": 2, "working": 3, "not_seen": 4}
    report["services"].sort(key=lambda r: (rank.get(r["status"], 5), r["host"]))
    s["services_by_status"] = dict(sorted(Counter(r["status"] for r in report["services"]).items()))
    report["rolled_up"] = {"flows": rolled.flows, "dns": rolled.dns, "first_ts": rolled.first_ts,
                           "last_ts": rolled.last_ts,
                           "note": "records evicted to bound memory: counted in summary and services, not listed"}


def _worse(a: str, b: str) -> str:
    """Combine two service statuses: intercepted > degraded (ok and failures) > blocked > working."""
    if "intercepted" in (a, b):
        return "intercepted"
    failing = {a, b} & {"blocked", "degraded"}
    if not failing:
        return "working" if "working" in (a, b) else a
    if "degraded" in failing:
        return "degraded"
    return "degraded" if "working" in (a, b) else "blocked"


# -- the rolling view ----------------------------------------------------------------------------------

STATUS_STYLE = {"intercepted": "bold magenta", "blocked": "bold red", "degraded": "yellow", "working": "green"}


def view_table(tally: Tally, header: str, limit: int = 25) -> Any:
    """The services table of the live view (a rich renderable)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from analyzer.report.escape import for_terminal

    table = Table(title=Text(header), title_justify="left", header_style="bold", expand=False)
    for col in ("status", "service", "flows", "ok", "failed", "dns", "last problem"):
        table.add_column(col, overflow="fold", justify="right" if col in ("flows", "ok", "failed", "dns") else "left")
    rank = {"intercepted": 0, "blocked": 1, "degraded": 2, "working": 3, "not_seen": 4}
    rows = sorted(tally.services.values(), key=lambda r: (rank[r.status.value], -r.flows, r.host))
    for r in rows[:limit]:
        failed = sum(n for v, n in r.by_verdict.items() if v in _FAILED)
        st = r.status.value
        table.add_row(Text(st, style=STATUS_STYLE.get(st, "")), Text(for_terminal(r.host)), str(r.flows),
                      str(r.by_verdict.get("ok", 0)), str(failed), str(r.dns),
                      Text(for_terminal(r.problem or "")[:90]))
    more = len(rows) - limit
    verdicts = ", ".join(f"{v} {n}" for v, n in sorted(tally.by_verdict.items())) or "none yet"
    foot = Text(f"flows {tally.flows} ({tally.apple_flows} Apple): {verdicts}"
                + (f"; {more} more services" if more > 0 else ""))
    return Group(table, foot)


class LiveView:
    """The in-place services view on a terminal; a no-op elsewhere."""

    def __init__(self, enabled: bool, console: Any = None) -> None:
        self.enabled = enabled
        self._live: Any = None
        if enabled:
            from rich.live import Live

            self._live = Live(console=console, auto_refresh=False, transient=False, redirect_stderr=False)
            self._live.start()

    def update(self, renderable_fn: Callable[[], Any]) -> None:
        if self._live is not None:
            self._live.update(renderable_fn(), refresh=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
