"""The diagnosis on real captures from other projects: certificate anomalies, block pages, Apple traffic."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import analyzer

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
ENTRIES = {json.loads(line)["id"]: json.loads(line) for line in (CORPUS / "expected.jsonl").read_text().splitlines()}
SCHEMA = json.loads((Path(analyzer.__file__).parent / "report" / "report.schema.json").read_text())


@functools.lru_cache(maxsize=None)
def report(cid: str) -> dict[str, Any]:
    return analyzer.analyze(CORPUS / ENTRIES[cid]["file"]).report


def anomalies(cid: str) -> list[str]:
    return [e for f in report(cid)["findings"] if f["kind"] == "certificate_anomaly" for e in f["evidence"]]


@pytest.mark.parametrize("cid", sorted(ENTRIES))
def test_every_corpus_report_validates(cid: str) -> None:
    jsonschema.validate(report(cid), SCHEMA)


def test_self_signed_and_expired() -> None:
    found = anomalies("ndpi-selfsigned")
    assert any(a.startswith("self-signed certificate") for a in found)
    assert any(a.startswith("certificate expired on 2016-10-09") for a in found)  # nDPI: "TLS Cert Expired"
    assert any(a.startswith("self-signed certificate (CN=topsalon") for a in anomalies("ndpi-rdp-selfsigned"))


def test_block_page_substitution_is_a_sinkhole_and_a_name_mismatch() -> None:
    r = report("ndpi-malware-blockpage")
    (d,) = [d for d in r["dns"] if d["query"] == "www.internetbadguys.com"]
    assert d["verdict"] == "sinkholed" and "OpenDNS" in d["reason"]
    assert any(a.startswith("certificate name mismatch: www.internetbadguys.com vs api.opendns.com")
               for a in anomalies("ndpi-malware-blockpage"))


def test_name_mismatch_as_ndpi_reports() -> None:
    # nDPI: "TLS Cert Mismatch", www.ntop.org vs shop.ntop.org,www.shop.ntop.org
    assert "certificate name mismatch: www.ntop.org vs shop.ntop.org, www.shop.ntop.org" in anomalies("ndpi-http-ipv6")


def test_spoofed_root_curveball() -> None:
    assert any("CVE-2020-0601" in a and "INFIGO" in a for a in anomalies("ja4-badcurveball"))


def test_missing_intermediate() -> None:
    # Zeek's validate-certs: 'unable to get local issuer certificate' on the first connection.
    assert any("only its own certificate" in a and "Starfield" in a for a in anomalies("zeek-missing-intermediate"))


def test_iphone_capture_attributes_apple_flows_like_ndpi() -> None:
    r = report("ndpi-iphone")
    by_tuple = {(f["client"]["ip"], f["client"]["port"], f["server"]["ip"], f["server"]["port"]): f for f in r["flows"]}
    for fact in ENTRIES["ndpi-iphone"]["facts"]["apple_flows"]:
        proto, a, _, b = fact["flow"].split()
        (ci, cp), (si, sp) = (x.rsplit(":", 1) for x in (a, b))
        if sp == "53":
            # nDPI labels the DNS flow by its query (DNS.AppleiCloud); we keep DNS per transaction.
            assert any(d["query"] == fact["host"] and d["service"] for d in r["dns"]), fact
            continue
        f = by_tuple[(ci, int(cp), si, int(sp))]
        assert f["service"] is not None, fact
        if fact.get("host"):
            assert fact["host"] in f["names"] or fact["host"] == f["sni"]
    assert r["summary"]["headline"].startswith("All ")
    assert not [d for d in r["dns"] if d["server"]["ip"] in ("224.0.0.251", "ff02::fb")]


def test_icloud_over_tcp_fast_open_works_and_is_not_called_intercepted() -> None:
    # The ClientHello rides in a SYN the client resends for 3.7 s; the ServerHello comes
    # 11 ms after the last copy. Measured from the first copy the "delay" looked like a
    # proxy fetching upstream; by Karn's rule a retransmitted hello gives no delay sample.
    rep = report("sv-tfo-icloud")
    (flow,) = [f for f in rep["flows"] if f["proto"] == "tcp"]
    assert flow["sni"] == "icloud.com" and flow["verdict"] == "ok"
    assert flow["tls"]["version"] == "TLSv13" and flow["tls"]["established"]
    assert not [f for f in rep["findings"] if f["kind"] == "possible_tls_interception"]
