"""The diagnosis on captures taken the ways admins take them: one direction only, a short snaplen.

Real captures (tests/fixtures) rewritten as a one-way tap or `tcpdump -s 96` would have
recorded them; the verdicts must not turn into confident wrong ones. (An audit found a
one-way copy of a working TLS connection reported as "blocked: SYN never answered", and
intercepted or refused connections cut to 96 bytes reported as working.)
"""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
from helpers_pcap import CORPUS, LOCAL

import analyzer

PQ = LOCAL / "tls13-x25519mlkem768.pcap"  # one TLS 1.3 connection that works
SQUID = LOCAL / "http-proxy-squid.pcap"  # CONNECT to squid (13128/13129) answered 200, 403, 407, 500
HALF_DUPLEX = CORPUS / "zeek" / "testing" / "btest" / "Traces" / "ssh" / "ssh.client-side-half-duplex.pcap"


def _rewrite(src: Path, dst: Path, *, drop_port: int | None = None, snaplen: int | None = None) -> Path:
    """`src` without the packets from `drop_port`, or with every frame cut to `snaplen` bytes
    (the wire length kept in the record header, as tcpdump -s writes it)."""
    with open(src, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        linktype = reader.datalink()
        records = list(reader)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen or 262144, linktype)]
    for ts, buf in records:
        if drop_port is not None:
            ip = dpkt.ethernet.Ethernet(buf).data
            if isinstance(ip.data, dpkt.tcp.TCP) and ip.data.sport == drop_port:
                continue
        data = buf[:snaplen] if snaplen is not None else buf
        sec = int(ts)
        out.append(struct.pack("<IIII", sec, round((ts - sec) * 1e6), len(data), len(buf)) + data)
    dst.write_bytes(b"".join(out))
    return dst


def test_a_one_way_copy_of_a_working_connection_is_not_called_blocked(tmp_path: Path) -> None:
    rep = analyzer.analyze(_rewrite(PQ, tmp_path / "oneway.pcap", drop_port=48443)).report
    (flow,) = rep["flows"]
    assert flow["verdict"] == "incomplete" and "not in the capture" in flow["reason"]
    kinds = {f["kind"] for f in rep["findings"]}
    assert "one_sided_capture" in kinds and not kinds & {"blocked_port", "service_blocked"}


def test_zeeks_client_side_half_duplex_trace_is_recognised_as_one_sided() -> None:
    rep = analyzer.analyze(HALF_DUPLEX).report
    assert any(f["kind"] == "one_sided_capture" for f in rep["findings"])
    assert not any(f["verdict"] == "no_response" for f in rep["flows"] if f["proto"] == "tcp" and f["packets"]["c2s"] > 1)


def test_a_snaplen_cut_never_turns_a_refusal_or_a_connection_into_ok(tmp_path: Path) -> None:
    for snaplen in (96, 128):
        rep = analyzer.analyze(_rewrite(SQUID, tmp_path / f"s{snaplen}.pcap", snaplen=snaplen)).report
        proxied = [f for f in rep["flows"] if f["server"]["port"] in (13128, 13129)]
        assert proxied and all(f["verdict"] == "incomplete" for f in proxied), [
            (f["verdict"], f["reason"]) for f in proxied]
        cut = [f for f in rep["findings"] if f["kind"] == "snaplen_cut"]
        assert cut and "-s 0" in (cut[0]["advice"] or "")
    rep = analyzer.analyze(_rewrite(PQ, tmp_path / "pq96.pcap", snaplen=96)).report
    (flow,) = rep["flows"]
    assert flow["verdict"] == "incomplete" and flow["sni"] is None
    # Uncut, the same captures are judged as before.
    whole = analyzer.analyze(_rewrite(SQUID, tmp_path / "whole.pcap")).report
    assert {f["verdict"] for f in whole["flows"] if f["server"]["port"] in (13128, 13129)} >= {"ok", "refused"}
    assert not any(f["kind"] == "snaplen_cut" for f in whole["findings"])
