"""The bundled sample against how it was built: samples/mixed_session.pcap is the lab's `mixed_session` capture.

Other tests compare the sample's report to output copied from the analyzer
itself, which cannot tell a wrong verdict from a right one. The lab scenario
that made the capture says what each flow and lookup must be judged
(analyzer/lab/scenarios.py `_mixed_session`): this test holds the diagnosis
of the sample to that truth, with the lab's own matchers, without root and
in about a second.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import analyzer
from analyzer.lab.scenarios import ClientFiles, build_scenarios

HERE = Path(__file__).parent
SAMPLE = HERE.parent / "samples" / "mixed_session.pcap"


def _lab_helper(name: str) -> ModuleType:
    """tests/lab/NAME.py, the module the lab tests import under that name (tests/lab is not a package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "lab" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


report_flows_for = _lab_helper("truth_match").report_flows_for
answer_problems = _lab_helper("answer_match").answer_problems


@functools.cache
def truth() -> dict[str, Any]:
    # The scenario's truth does not depend on the client's files: dummy paths, as the lab's own tests build it.
    scenarios = {s.name: s for s in build_scenarios(ClientFiles(Path("/unused"), Path("/unused"), Path("/unused")))}
    return scenarios["mixed_session"].truth


@functools.cache
def report() -> dict[str, Any]:
    return analyzer.analyze(str(SAMPLE)).report


def test_the_sample_is_the_scenarios_capture() -> None:
    # The matchers compare client addresses: the sample must come from the lab's client, or nothing matches.
    assert {tf["client"]["ip"] for tf in truth()["flows"]} == {f["client"]["ip"] for f in report()["flows"]}


def test_each_built_flow_has_its_verdict_and_reset_by() -> None:
    matched: list[str] = []
    for tf in truth()["flows"]:
        ours = report_flows_for(report(), tf)
        where = f"{tf['server']['ip']}:{tf['server']['port']} {tf.get('sni') or tf['names']}"
        # The sample holds no retries: exactly one flow per built flow.
        assert len(ours) == 1, (where, [(f["verdict"], f["reason"]) for f in ours])
        (f,) = ours
        assert (f["verdict"], f["reset_by"]) == (tf["verdict"], tf["reset_by"]), (where, f["reason"], f["evidence"])
        assert set(tf["names"]) <= set(f["names"]) | {f["sni"]}, (where, f["names"])
        if tf["verdict"] == "intercepted":
            # TLS 1.3: the substitute chain is encrypted, so the product may stay unnamed, never misnamed.
            assert f["interception"] is not None and f["interception"]["product"] in {tf["inspection_product"], None}
        else:
            assert f["interception"] is None, (where, f["interception"])
        matched.append(f["id"])
    assert len(set(matched)) == len(truth()["flows"]), "two built flows matched one reported flow"
    # Every other flow is a DNS lookup to the lab's resolver: nothing the scenario did not build is judged.
    others = [f for f in report()["flows"] if f["id"] not in matched]
    assert others and all((f["proto"], f["server"]["port"]) == ("udp", 53) for f in others), others


def test_dns_flows_fail_only_where_a_lookup_went_unanswered() -> None:
    others = [f for f in report()["flows"] if (f["proto"], f["server"]["port"]) == ("udp", 53)]
    unanswered = [td for td in truth()["dns"] if td["verdict"] == "no_response"]
    assert sorted(f["verdict"] for f in others) == sorted(["no_response"] * len(unanswered)
                                                          + ["ok"] * (len(others) - len(unanswered)))


def test_each_built_lookup_has_its_dns_verdict() -> None:
    for td in truth()["dns"]:
        ours = [d for d in report()["dns"] if d["query"].lower() == td["query"].lower() and d["qtype"] == td["qtype"]]
        assert len(ours) == 1, (td["query"], ours)
        (d,) = ours
        assert (d["verdict"], d["rcode"]) == (td["verdict"], td["rcode"]), (td["query"], d["reason"])
        assert [(a["name"], a["type"], a["data"]) for a in d["answers"]] == [
            (a["name"], a["type"], a["data"]) for a in td["answers"]], td["query"]
        if td["verdict"] != "ok":
            assert d["service"], f"{td['query']}: a failing Apple name must be tied to its service"
    assert len(report()["dns"]) == len(truth()["dns"])


def test_the_answer_is_the_scenarios() -> None:
    # Service statuses, finding kinds, advice words and headline, as the lab checks them on a fresh capture.
    problems = answer_problems(truth()["answer"], report())
    assert not problems, "\n".join(problems)
