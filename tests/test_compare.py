"""Before/after comparison over the two bundled lab captures.

samples/mixed_session.pcap is the "before" (samples/README.md says what the lab
built into it). samples/after_fix.pcap merges six lab scenarios (mergecap of
/work lab captures tls13_ok, tls12_ok, apns_5223_ok, dns_cname_chain,
closed_port_rst, ntp_icmp_unreachable; timestamps moved one hour later with
editcap -t 3600): gs/gsa/APNs-5223/mesu work, gdmf is still refused by its
server, and NTP is now rejected with ICMP. So every kind of change is in it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import analyzer
from analyzer.cli import main
from analyzer.compare import Change, Comparison, FindingChange, _change, compare

ROOT = Path(__file__).resolve().parent.parent
BEFORE = ROOT / "samples" / "mixed_session.pcap"
AFTER = ROOT / "samples" / "after_fix.pcap"

@pytest.fixture(scope="module")
def before() -> analyzer.Analysis:
    return analyzer.analyze(BEFORE)


@pytest.fixture(scope="module")
def after() -> analyzer.Analysis:
    return analyzer.analyze(AFTER)


@pytest.fixture(scope="module")
def comparison(before: analyzer.Analysis, after: analyzer.Analysis) -> Comparison:
    return compare(before, after)


def test_service_changes(comparison: Comparison) -> None:
    rows = [(s.change.value, s.host, s.before, s.after) for s in comparison.services]
    assert rows == [
        ("worse", "time.apple.com", "working", "blocked"),
        ("better", "gsa.apple.com", "blocked", "working"),
        ("better", "*.push.apple.com", "degraded", "working"),
        # Not exercised after the change: neither fixed nor broken. Blocked ones first, then by section.
        ("no_longer_seen", "deviceenrollment.apple.com", "blocked", "not_seen"),
        ("no_longer_seen", "identity.apple.com", "intercepted", "not_seen"),
        ("no_longer_seen", "setup.icloud.com", "blocked", "not_seen"),
        ("no_longer_seen", "albert.apple.com", "blocked", "not_seen"),
        ("no_longer_seen", "xp.apple.com", "blocked", "not_seen"),
        ("no_longer_seen", "ocsp.apple.com", "working", "not_seen"),
        ("same", "gdmf.apple.com", "blocked", "blocked"),
        ("same", "gs.apple.com", "working", "working"),
        ("same", "mesu.apple.com", "working", "working"),
    ]
    time = comparison.services[0]
    assert time.id == "device_setup/time.apple.com" and time.section == "Device setup"
    assert dict(time.before_verdicts) == {"ok": 1} and dict(time.after_verdicts) == {"refused": 2}
    assert time.advice == "Allow UDP 123 to time.apple.com (or 17.0.0.0/8): a firewall on the path rejects it."
    gsa = comparison.services[1]
    assert gsa.advice is None  # fixed: no advice left over from before
    identity = next(s for s in comparison.services if s.host == "identity.apple.com")
    assert identity.advice is not None and identity.advice.startswith("Exclude identity.apple.com from HTTPS")
    assert [s.host for s in comparison.worse] == ["time.apple.com"]
    assert [s.host for s in comparison.better] == ["gsa.apple.com", "*.push.apple.com"]
    assert len(comparison.no_longer_seen) == 6 and len(comparison.changed) == 9


def test_finding_changes(comparison: Comparison) -> None:
    rows = [(f.change.value, f.severity, f.kind, f.service, f.before_count, f.after_count)
            for f in comparison.findings]
    assert rows == [
        ("appeared", "error", "service_blocked", "device_setup/time.apple.com", 0, 1),
        ("persisting", "error", "service_blocked", "device_management/gdmf.apple.com", 1, 1),
        ("disappeared", "error", "service_blocked", "apple_id/gsa.apple.com", 1, 0),
        ("disappeared", "warning", "injected_reset", "apple_id/gsa.apple.com", 1, 0),
        ("disappeared", "warning", "service_degraded", "device_management/*.push.apple.com", 1, 0),
        ("not_retested", "error", "dns_no_response", "device_setup/albert.apple.com", 1, 0),
        ("not_retested", "error", "dns_nxdomain", "device_management/deviceenrollment.apple.com", 1, 0),
        ("not_retested", "error", "dns_sinkhole", "software_updates/xp.apple.com", 1, 0),
        ("not_retested", "error", "service_blocked", "device_management/setup.icloud.com", 1, 0),
        ("not_retested", "error", "tls_interception", "device_management/identity.apple.com", 1, 0),
        ("not_retested", "warning", "injected_reset", "device_management/setup.icloud.com", 1, 0),
    ]
    appeared = comparison.appeared[0]
    assert appeared.message == "time.apple.com (device_setup) is blocked"
    # The filter points into the capture where the finding is: the after one, NTP to 17.253.1.13.
    assert appeared.wireshark_filter is not None and "ip.addr==17.253.1.13" in appeared.wireshark_filter
    assert "udp.port==123" in appeared.wireshark_filter
    assert comparison.regressed is True
    assert comparison.headline == ("1 service worse; 2 services better; 6 services no longer seen; "
                                   "1 finding appeared; 3 findings disappeared; 6 findings not retested")


def test_reversed_is_the_mirror(before: analyzer.Analysis, after: analyzer.Analysis) -> None:
    back = compare(after, before)
    changes = {s.host: s.change for s in back.services}
    assert changes["time.apple.com"] is Change.BETTER
    assert changes["gsa.apple.com"] is Change.WORSE and changes["*.push.apple.com"] is Change.WORSE
    assert [s.host for s in back.services if s.change is Change.NEWLY_SEEN] == [
        "deviceenrollment.apple.com", "identity.apple.com", "setup.icloud.com", "albert.apple.com",
        "xp.apple.com", "ocsp.apple.com"]
    # Seen only in the (new) after capture: they appear, they are not "not retested".
    assert len(back.appeared) == 9 and not back.not_retested
    assert [f.service for f in back.disappeared] == ["device_setup/time.apple.com"]
    assert back.regressed is True


def test_same_capture_twice_changes_nothing(before: analyzer.Analysis) -> None:
    c = compare(before, before)
    assert c.changed == () and not c.appeared and not c.disappeared and not c.not_retested
    assert len(c.persisting) == len(before.report["findings"]) == 10
    # Two injected resets of different services stay two findings; counts per key match.
    assert all(f.before_count == f.after_count == 1 for f in c.persisting)
    assert c.regressed is False
    assert c.headline == "No change in service status or findings"


def test_all_services_report_equals_the_seen_only_one(before: analyzer.Analysis) -> None:
    """A service listed as not_seen (all_services=True) is the same as one left out."""
    full = analyzer.analyze(BEFORE, all_services=True)
    c = compare(full, before)
    assert c.changed == ()
    assert len(c.services) == len(full.report["services"]) > 150


@pytest.mark.parametrize(("old", "new", "change"), [
    ("blocked", "working", Change.BETTER), ("intercepted", "degraded", Change.BETTER),
    ("degraded", "working", Change.BETTER), ("working", "degraded", Change.WORSE),
    ("working", "intercepted", Change.WORSE), ("blocked", "intercepted", Change.CHANGED),
    ("intercepted", "blocked", Change.CHANGED), ("not_seen", "blocked", Change.NEWLY_SEEN),
    ("working", "not_seen", Change.NO_LONGER_SEEN), ("working", "working", Change.SAME),
    ("working", "some_future_status", Change.CHANGED),
])
def test_status_change_table(old: str, new: str, change: Change) -> None:
    assert _change(old, new) is change


def test_findings_match_by_kind_and_service_not_message(before: analyzer.Analysis) -> None:
    moved = copy.deepcopy(before.report)
    for f in moved["findings"]:
        if f["kind"] == "injected_reset":
            f["message"] = f["message"].replace("17.253.1.", "17.253.9.")  # the same reset, another address
    # A capture-level finding (no service) is matched by its message.
    moved["findings"].append({"severity": "info", "kind": "capture_truncated", "service": None, "flows": [],
                              "message": "after.pcap ends inside a packet record", "evidence": [],
                              "advice": None, "wireshark_filter": None})
    c = compare(before, moved)
    assert [(f.change, f.kind) for f in c.appeared] == [(FindingChange.APPEARED, "capture_truncated")]
    assert not c.disappeared and len(c.persisting) == 10
    assert c.regressed is False  # an info finding appearing is no regression


def test_to_dict_is_json(comparison: Comparison) -> None:
    d = json.loads(json.dumps(comparison.to_dict()))
    assert d["headline"] == comparison.headline and d["regressed"] is True
    assert d["before"]["sources"] == [str(BEFORE)] and d["after"]["sources"] == [str(AFTER)]
    assert d["before"]["services_by_status"] == {"blocked": 6, "degraded": 1, "intercepted": 1, "working": 4}
    assert d["after"]["services_by_status"] == {"blocked": 2, "working": 4}
    assert d["services"][0] == {"id": "device_setup/time.apple.com", "host": "time.apple.com",
                                "section": "Device setup", "before": "working", "after": "blocked",
                                "change": "worse", "before_verdicts": {"ok": 1}, "after_verdicts": {"refused": 2},
                                "advice": "Allow UDP 123 to time.apple.com (or 17.0.0.0/8): a firewall on the path "
                                          "rejects it."}
    assert [f["change"] for f in d["findings"]].count("not_retested") == 6


def test_to_text(comparison: Comparison) -> None:
    text = comparison.to_text()
    lines = text.splitlines()
    assert lines[0] == comparison.headline
    assert lines[2].startswith("before: 6 Apple services blocked; 1 Apple service degraded;")
    assert lines[3] == f"after:  2 Apple services blocked  [{AFTER}]"
    assert "  WORSE           time.apple.com              working -> blocked  (Device setup)" in lines
    assert "3 services unchanged." in lines
    assert "Findings not retested (their service is not in the after capture):" in lines
    assert "  [error] time.apple.com (device_setup) is blocked  (service_blocked)" in lines


def _hostile(report: dict[str, Any]) -> dict[str, Any]:
    r = copy.deepcopy(report)
    r["services"][0]["host"] = "evil\x1b]0;pwned\x07<b>*x*</b>"
    r["findings"][0]["message"] = "\x1b[31mred\x1b[0m | pipe"
    return r


def test_text_and_markdown_escape_wire_strings(before: analyzer.Analysis, after: analyzer.Analysis) -> None:
    c = compare(_hostile(before.report), after)
    text = c.to_text()
    assert "\x1b" not in text and "\x07" not in text
    assert "evil\\x1b]0;pwned\\x07<b>*x*</b>" in text
    md = c.to_markdown()
    assert "\x1b" not in md and "<b>" not in md
    assert "evil\\\\x1b\\]0;pwned\\\\x07&lt;b&gt;\\*x\\*&lt;/b&gt;" in md
    assert "red\\\\x1b\\[0m \\| pipe" in md  # a pipe cannot split the table row


def test_markdown_tables(comparison: Comparison) -> None:
    md = comparison.to_markdown().splitlines()
    assert md[0] == "# Before/after: " + comparison.headline
    assert "| worse | time.apple.com | Device setup | working | blocked |" in md
    assert "| better | \\*.push.apple.com | Device management | degraded | working |" in md
    assert "| appeared | error | time.apple.com \\(device\\_setup\\) is blocked | service\\_blocked | 0 | 1 |" in md
    rows = [line for line in md if line.startswith("| ")]
    assert all(line.count(" | ") in (4, 5) for line in rows)  # 5 or 6 columns, nothing spilled


# ---------------------------------------------------------------- the command

def test_cli_json_matches_the_api(capsys: pytest.CaptureFixture[str], comparison: Comparison) -> None:
    assert main(["compare", str(BEFORE), str(AFTER), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == comparison.to_dict()


def test_cli_table_and_markdown(capsys: pytest.CaptureFixture[str], comparison: Comparison) -> None:
    assert main(["compare", str(BEFORE), str(AFTER)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == comparison.headline
    assert "Services whose status changed" in out and "3 services unchanged." in out
    row = next(line for line in out.splitlines() if "time.apple.com" in line and "worse" in line)
    assert "working" in row and "blocked" in row
    assert "\x1b" not in out  # not a terminal: plain
    assert main(["compare", str(BEFORE), str(AFTER), "--format", "md"]) == 0
    assert capsys.readouterr().out == comparison.to_markdown()


def test_cli_fail_on_regression(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(BEFORE), str(AFTER), "--fail-on-regression", "--format", "json"]) == 1
    assert main(["compare", str(BEFORE), str(BEFORE), "--fail-on-regression", "--format", "json"]) == 0
    capsys.readouterr()


def test_cli_accepts_a_saved_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         comparison: Comparison) -> None:
    saved = tmp_path / "before.json"
    assert main(["analyze", str(BEFORE), "--format", "json", "-o", str(saved)]) == 0
    assert main(["compare", str(saved), str(AFTER), "--format", "json", "-o", str(tmp_path / "c.json")]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "c.json").read_text()) == comparison.to_dict()


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(tmp_path / "missing.pcap"), str(AFTER)]) == 2
    assert "missing.pcap: no such file" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text('{"not": "a report"}')
    assert main(["compare", str(other), str(AFTER)]) == 2
    assert "not an apple-net report" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text('{"services": [')
    assert main(["compare", str(broken), str(AFTER)]) == 2
    assert "not a JSON report" in capsys.readouterr().err
