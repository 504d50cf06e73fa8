"""Issue 12: the answer an admin reads (service statuses, finding kinds, advice words) for every lab scenario.

A right flow verdict under a wrong answer is a wrong product: each scenario's truth says what the report's
services, findings, advice and headline must say, and this test holds the diagnosis of the real capture to it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

import analyzer
from analyzer.lab.scenarios import ClientFiles, build_scenarios

from answer_match import answer_problems

pytestmark = pytest.mark.lab

SCENARIOS = build_scenarios(ClientFiles(Path("/unused"), Path("/unused"), Path("/unused")))


@functools.lru_cache(maxsize=None)
def _report(path: str) -> dict[str, Any]:
    return analyzer.analyze(path).report


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS if "answer" in s.truth])
def test_answer(lab: Any, name: str) -> None:
    r = lab.results[name]
    problems = answer_problems(r.truth["answer"], _report(str(r.pcap)))
    assert not problems, "\n".join(problems)
