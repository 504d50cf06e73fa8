"""The lab's HTTP/3 server and client (analyzer/lab/http3.py, aioquic) on loopback: no namespaces, no root.

The web scenarios rely on both: a real QUIC handshake and GET that works, and a client that gives up within
its deadline when nothing answers, so that the TCP fallback comes quickly.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("aioquic")

from analyzer.lab import pki  # noqa: E402
from analyzer.lab.http3 import fetch_h3  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab_pki(tmp_path_factory: pytest.TempPathFactory) -> pki.LabPki:
    return pki.build_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server(lab_pki: pki.LabPki) -> Iterator[int]:
    port = _free_udp_port()
    spec = f"127.0.0.1,{lab_pki.chain('cdn')},{lab_pki.key('cdn')}"
    proc = subprocess.Popen([sys.executable, "-m", "analyzer.lab.http3", "serve", "--listen", spec, "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # printed once the socket is bound
        assert line.startswith("http3: serving 127.0.0.1:"), line
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_get_over_http3(server: int, lab_pki: pki.LabPki) -> None:
    r = fetch_h3("127.0.0.1", "updates.cdn-apple.com", str(lab_pki.trust_apple), timeout=3.0, port=server)
    assert r["ok"] is True, r
    assert r["status"] == 200
    assert r["reply"] == "updates.cdn-apple.com ok over HTTP/3\n"


def test_wrong_name_fails_the_handshake(server: int, lab_pki: pki.LabPki) -> None:
    # The certificate names updates.cdn-apple.com only: a client that checks it must not get through.
    r = fetch_h3("127.0.0.1", "mask.icloud.com", str(lab_pki.trust_apple), timeout=1.0, port=server)
    assert r["ok"] is False and "status" not in r, r
    assert str(r["error"]).startswith("QUIC: ConnectionError"), r  # closed by the TLS failure, not a timeout


def test_silence_ends_at_the_deadline(lab_pki: pki.LabPki) -> None:
    port = _free_udp_port()  # nothing listens: on loopback the kernel's ICMP is ignored by the UDP socket
    started = time.monotonic()
    r = fetch_h3("127.0.0.1", "updates.cdn-apple.com", str(lab_pki.trust_apple), timeout=0.5, port=port)
    assert r["ok"] is False and "error" in r, r
    assert time.monotonic() - started < 2.0
