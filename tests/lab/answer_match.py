"""Matching a scenario's `answer` truth (analyzer.lab.truth.answer) to the report an admin reads."""

from __future__ import annotations

from typing import Any


def answer_problems(answer: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """Every way the report's answer differs from the scenario's truth (empty: it matches)."""
    problems: list[str] = []
    rows_by_host: dict[str, list[dict[str, Any]]] = {}
    for s in report["services"]:
        rows_by_host.setdefault(s["host"], []).append(s)
    for host, want in answer["services"].items():
        rows = rows_by_host.get(host, [])
        if want["status"] == "not_seen" and not rows:
            continue
        statuses = sorted({r["status"] for r in rows})
        if statuses != [want["status"]]:
            problems.append(f"{host}: status {statuses or 'absent'}, want {want['status']} "
                            f"(evidence: {[e for r in rows for e in r['evidence']][:4]})")
            continue
        for key in ("clients_tried", "clients_failed"):
            if key in want:
                got = [(r.get("clients") or {}).get(key.removeprefix("clients_")) for r in rows]
                if got != [want[key]] * len(rows):
                    problems.append(f"{host}: {key} {got}, want {want[key]}")
    kinds = {f["kind"] for f in report["findings"]}
    for k in answer["findings"]:
        if k not in kinds:
            problems.append(f"finding {k} missing (have {sorted(kinds)})")
    for k in answer["no_findings"]:
        if k in kinds:
            msgs = [f["message"] for f in report["findings"] if f["kind"] == k]
            problems.append(f"finding {k} present but must not be: {msgs[:2]}")
    for host, words in answer["advice"].items():
        text = " ".join(r["advice"] or "" for r in rows_by_host.get(host, [])).lower()
        for w in words:
            if w.lower() not in text:
                problems.append(f"{host}: advice lacks {w!r}: {text[:300]!r}")
    for host, words in answer["no_advice"].items():
        text = " ".join(r["advice"] or "" for r in rows_by_host.get(host, [])).lower()
        for w in words:
            if w.lower() in text:
                problems.append(f"{host}: advice must not say {w!r}: {text[:300]!r}")
    headline = report["summary"]["headline"].lower()
    for w in answer["headline"]:
        if w.lower() not in headline:
            problems.append(f"headline lacks {w!r}: {report['summary']['headline']!r}")
    return problems
