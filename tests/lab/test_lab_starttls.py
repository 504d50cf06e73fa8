"""Issue 12 (9): mail submission with STARTTLS in the lab. The TLS after the clear-text SMTP dialogue is seen.

The generic lab tests already hold this scenario's flow to its truth (SNI, TLS
version, on the wire with tshark); this one says what only a STARTTLS flow
has: the upgrade command, the server's 220, and TLS found after them.
"""

from __future__ import annotations

from typing import Any

import pytest

import analyzer
from analyzer.lab.addresses import SMTP_IP, SMTP_SUBMISSION_PORT

pytestmark = pytest.mark.lab


def test_starttls_submission_carries_sni_version_and_upgrade(lab: Any) -> None:
    report = analyzer.analyze(str(lab.results["starttls_mail_submission"].pcap)).report
    (flow,) = [f for f in report["flows"]
               if f["server"]["ip"] == SMTP_IP and f["server"]["port"] == SMTP_SUBMISSION_PORT]
    assert (flow["app"], flow["sni"], flow["verdict"]) == ("smtp-starttls", "smtp.mail.me.com", "ok")
    assert flow["tls"]["version"] == "TLSv13" and flow["tls"]["established"] is True
    up = flow["starttls"]
    assert (up["protocol"], up["command"], up["accepted"]) == ("smtp", "STARTTLS", True)
    assert up["reply"].startswith("220 ")
    # TLS starts after the clear text on both sides: EHLO and STARTTLS, the greeting, EHLO's and STARTTLS's replies.
    assert up["client_tls_offset"] > len("EHLO x\r\nSTARTTLS\r\n") and up["server_tls_offset"] > 3 * len("220 \r\n")
    (row,) = [s for s in report["services"] if s["host"] == "17.0.0.0/8"]  # no mail host in the catalogue
    assert row["status"] == "working"
