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


def _rewrite(src: Path, dst: Path, *, drop_port: int | None = None, snaplen: int | None = None,
             twice: bool = False, late_from: tuple[int, float] | None = None) -> Path:
    """`src` without the packets from `drop_port`, with every frame cut to `snaplen` bytes
    (the wire length kept in the record header, as tcpdump -s writes it), or with every
    frame twice, 1 µs apart (a span port that mirrors both directions of two ports)."""
    with open(src, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        linktype = reader.datalink()
        records = list(reader)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen or 262144, linktype)]
    for i, (ts, buf) in enumerate(records):
        if late_from is not None and i >= late_from[0]:
            ts += late_from[1]  # frame late_from[0] (0-based) on comes this much later
        if drop_port is not None:
            ip = dpkt.ethernet.Ethernet(buf).data
            if isinstance(ip.data, dpkt.tcp.TCP) and ip.data.sport == drop_port:
                continue
        data = buf[:snaplen] if snaplen is not None else buf
        for t in (ts, ts + 1e-6) if twice else (ts,):
            sec = int(t)
            out.append(struct.pack("<IIII", sec, round((t - sec) * 1e6), len(data), len(buf)) + data)
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


def test_a_span_ports_duplicates_are_not_the_clients_retransmissions(tmp_path: Path) -> None:
    # Zeek (and our retransmission count) takes each copy for a retransmission; the
    # ServerHello-delay signal must not be switched off by them (Karn's rule is for real
    # retransmissions, as in sv-tfo-icloud, where the count stays).
    from analyzer.engine import run_engine

    (orig,) = run_engine([PQ]).flows
    (dup,) = run_engine([_rewrite(PQ, tmp_path / "twice.pcap", twice=True)]).flows
    c = dup.flow.client
    assert c.retransmissions > 0 and c.duplicates == c.retransmissions
    assert orig.flow.client.duplicates == 0 and dup.flow.server.duplicates == dup.flow.server.retransmissions
    assert dup.tls is not None and orig.tls is not None and dup.tls.session.version == orig.tls.session.version
    (tfo,) = [f for f in run_engine([CORPUS / "suricata-verify/tests/tcp-fastopen-10-syn-data-ignore/input.pcap"]).flows
              if f.flow.proto == 6]
    assert tfo.flow.client.retransmissions == 3 and tfo.flow.client.duplicates == 0
    rep_orig = analyzer.analyze(PQ).report
    rep_dup = analyzer.analyze(_rewrite(PQ, tmp_path / "twice.pcap", twice=True)).report
    assert [f["verdict"] for f in rep_dup["flows"]] == [f["verdict"] for f in rep_orig["flows"]]
    assert {f["kind"] for f in rep_dup["findings"]} == {f["kind"] for f in rep_orig["findings"]}


def test_the_serverhello_delay_signal_survives_duplicates_but_not_retransmissions(tmp_path: Path) -> None:
    from analyzer.diagnosis.interception import tls13_signals
    from analyzer.diagnosis.paths import PathBaselines
    from analyzer.engine import run_engine

    def delayed(path: Path) -> bool:
        (f,) = run_engine([path]).flows
        return any(s.name == "serverhello_delayed" for s in tls13_signals(f, PathBaselines.build([])))

    # The server's answer (frame 8 on) 80 ms late, as from a proxy that first fetched upstream.
    slow = _rewrite(PQ, tmp_path / "slow.pcap", late_from=(7, 0.08))
    assert delayed(slow)
    assert delayed(_rewrite(PQ, tmp_path / "slow-twice.pcap", late_from=(7, 0.08), twice=True))
    assert not delayed(PQ)  # 1 ms on loopback: nothing to say
    # sv-tfo-icloud: 3.7 s from the first copy of a ClientHello the client really resent.
    assert not delayed(CORPUS / "suricata-verify/tests/tcp-fastopen-10-syn-data-ignore/input.pcap")
