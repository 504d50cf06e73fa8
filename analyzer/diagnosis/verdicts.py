"""Per-flow verdicts: did it work, and if not, where did it stop?

Policy only: reads the engine's records (TCP story, TLS/QUIC/NTP/HTTP facts,
RST and ICMP evidence) and the path baselines; parses nothing.
"""

from __future__ import annotations

from analyzer.diagnosis.model import Judgement, Verdict
from analyzer.diagnosis.paths import PathBaselines, closer_than_server, hops, hops_text
from analyzer.flows.records import FlowRecord, RstEvidence, Side
from analyzer.inspect import FlowFacts, TLSFacts
from analyzer.protocols.quic import QUICFlowState
from analyzer.protocols.tls_registry import alert_name

TCP, UDP = 6, 17
# A capture that ends within this long after a request cannot show that it went unanswered.
TOO_SOON = 1.0
ICMP_UNREACHABLE = {(4, 3), (6, 1)}  # (ip version, ICMP type) of destination unreachable


def _dur(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "?"
    return f"{(b - a):.1f} s" if b - a >= 1 else f"{(b - a) * 1000:.0f} ms"


def judge_reset(r: FlowRecord, rst: RstEvidence, baselines: PathBaselines) -> tuple[str, list[str]]:
    """Who made this RST: the client, the server, or a middlebox in the server's name."""
    if rst.sender is Side.CLIENT:
        return "client", [f"RST sent by the client {r.client_ip}"]
    evidence = closer_than_server(rst.ttl, r.server_ip, baselines, r.server.syn_ttl if r.synack_ts else None)
    if rst.packets_after > 0:
        evidence.append(f"the 'server' sent {rst.packets_after} more packets after its RST "
                        f"({rst.data_after} bytes): the real server never saw a reset (injected RST)")
    rtt = r.rtt_syn_synack
    if rst.since_peer is not None and rtt and rtt > 0.002 and rst.since_peer < rtt / 2:
        evidence.append(f"the RST came {rst.since_peer * 1000:.1f} ms after the client's packet, "
                        f"faster than the {rtt * 1000:.1f} ms round trip to the server allows")
    if evidence:
        return "middlebox", evidence
    return "server", [f"RST from {r.server_ip} with TTL {rst.ttl} ({hops_text(hops(rst.ttl))}), consistent with the server"]


def _first_server_rst(r: FlowRecord) -> RstEvidence | None:
    for x in r.rsts:
        if x.sender is Side.SERVER:
            return x
    return None


def _icmp_judgement(r: FlowRecord, baselines: PathBaselines) -> Judgement | None:
    for e in r.icmp_errors:
        if (r.ip_version, e.type) in ICMP_UNREACHABLE or (r.ip_version == 6 and e.type == 1):
            what = f"ICMP{'v6' if r.ip_version == 6 else ''} destination unreachable (code {e.code}) from {e.reporter}"
            if e.reporter != r.server_ip:
                return Judgement(Verdict.REFUSED, what, "middlebox",
                                 [f"{what}: a router or firewall on the path, not the server, refused it"])
            ev = closer_than_server(e.ttl, r.server_ip, baselines, None)
            return Judgement(Verdict.REFUSED, what, "middlebox" if ev else "server", [what, *ev])
    return None


def _tls_judgement(f: FlowFacts, t: TLSFacts, r: FlowRecord, capture_end: float) -> Judgement | None:
    s = t.session
    alert = s.last_alert
    if alert is not None and not alert.inferred and (alert.level == 2 or alert.level is None) and not s.established:
        who = "client" if alert.from_client else "server"
        name = alert.name or ("encrypted alert" if alert.encrypted else "alert")
        j = Judgement(Verdict.TLS_FAILED, f"TLS handshake failed: {who} sent {name}", None,
                      [f"{who} sent a fatal {name} alert" + (" (encrypted)" if alert.encrypted else "")])
        j.alert = f"{who}:{name}"
        return j
    if s.established:
        return Judgement(Verdict.OK, f"{s.version or 'TLS'} established" + (f" ({s.cipher})" if s.cipher else ""))
    if t.server_hello is None:
        if r.server.payload_bytes == 0 and not r.rsts and not r.icmp_errors:
            # The capture's end, not the flow's last packet: a live capture stopped long after
            # the last retransmission has shown the silence.
            if r.open_at_end and capture_end - (t.client_hello_ts or r.ts_start) < TOO_SOON:
                return Judgement(Verdict.INCOMPLETE, "the capture ends right after the ClientHello")
            retx = r.client.retransmissions
            return Judgement(Verdict.NO_RESPONSE,
                             "ClientHello never answered" + (f" (retransmitted {retx} times)" if retx else ""),
                             None, ["TCP handshake completed but the server sent no data: the ClientHello was "
                                    "dropped in transit, typical of an SNI/DPI filter"])
    if alert is not None and alert.inferred and not s.established:
        who = "client" if alert.from_client else "server"
        j = Judgement(Verdict.TLS_FAILED, f"{who} aborted the handshake (encrypted alert inferred from its size)",
                      None, [f"{who} sent an alert-sized encrypted record instead of its Finished"])
        j.alert = f"{who}:encrypted_alert"
        return j
    return None


def server_side_missing(r: FlowRecord) -> bool:
    """No packet from the server, yet the client went on past its SYN (ACKs, data, FINs).

    The client acknowledged a SYN-ACK that the capture does not hold: asymmetric
    routing, or a tap or span port that sees one direction. Nothing about the
    server's answer can be told from such a capture.
    """
    c = r.client
    return r.proto == TCP and r.server.packets == 0 and c.syn_count > 0 and c.packets > c.syn_count + c.rst_count


def payload_cut(r: FlowRecord) -> bool:
    """The capture's snaplen cut this connection's payload: handshakes in it cannot be read."""
    return any(w == "truncated_tcp_payload" for w, _ in r.weirds)


def judge_tcp(f: FlowFacts, baselines: PathBaselines, capture_end: float) -> Judgement:
    r = f.flow
    client_syn = "S" in r.history
    answered = r.synack_ts is not None
    srv_rst = _first_server_rst(r)
    icmp = _icmp_judgement(r, baselines)

    if not client_syn and r.truncated_start:
        # Midstream: the capture began after the handshake.
        if f.tls is not None and f.tls.client_hello is not None:
            tj = _tls_judgement(f, f.tls, r, capture_end)
            if tj is not None and tj.verdict is not Verdict.INCOMPLETE:
                return tj
        return Judgement(Verdict.INCOMPLETE, "the capture starts in the middle of this connection")

    if not answered:
        if icmp is not None:
            return icmp
        if srv_rst is not None:
            who, ev = judge_reset(r, srv_rst, baselines)
            return Judgement(Verdict.REFUSED, f"connection refused: RST in answer to the SYN ({who})", who, ev)
        if server_side_missing(r):
            return Judgement(Verdict.INCOMPLETE, "the server's side is not in the capture (the client acknowledged "
                             "an answer the capture does not hold)", None,
                             ["only the client's packets were captured: asymmetric routing or a one-way tap"])
        if r.rsts and all(x.sender is Side.CLIENT for x in r.rsts) and r.client.syn_count <= 1:
            return Judgement(Verdict.INCOMPLETE, "the client gave up before any answer could arrive")
        syns = r.client.syn_count
        span = _dur(r.syn_ts, r.ts_end)
        if r.open_at_end and capture_end - (r.syn_ts or r.ts_start) < TOO_SOON:
            return Judgement(Verdict.INCOMPLETE, "the capture ends right after the SYN")
        return Judgement(Verdict.NO_RESPONSE, f"{syns} SYN{'s' if syns != 1 else ''} over {span}, never answered",
                         None, [f"no SYN-ACK, RST or ICMP error came back for {syns} SYN(s): "
                                "silently dropped (firewall DROP or no route)"])

    # The TCP handshake completed.
    cut = payload_cut(r)
    if cut and f.tls is None and f.http is None and (r.client.payload_bytes or r.server.payload_bytes):
        return Judgement(Verdict.INCOMPLETE, "the capture's snaplen cut the payload: what was said cannot be read",
                         None, ["packets were captured shorter than they were on the wire (tcpdump -s)"])
    if f.http is not None and f.http.connect_target is not None:
        resp = f.http.response
        if resp is not None and resp.status >= 300:
            return Judgement(Verdict.REFUSED, f"proxy answered CONNECT {f.http.connect_target} with "
                             f"{resp.status} {resp.reason}", None,
                             [f"explicit proxy {r.server_ip}:{r.server_port} refused the tunnel ({resp.status})"])
        if resp is None:
            if r.server.payload_bytes:
                return Judgement(Verdict.INCOMPLETE, f"the proxy answered CONNECT {f.http.connect_target}, but "
                                 "its answer cannot be read" + (" (cut by the snaplen)" if cut else ""))
            return Judgement(Verdict.NO_RESPONSE, f"proxy never answered CONNECT {f.http.connect_target}")
    if f.tls is not None:
        tj = _tls_judgement(f, f.tls, r, capture_end)
        alert = f.tls.session.last_alert
        if cut and tj is not None and tj.verdict is Verdict.TLS_FAILED and alert is not None \
                and (alert.inferred or (alert.encrypted and not alert.name)):
            # With holes in the stream, an "alert" read from an encrypted record may be a
            # close_notify or a misread record: nothing to claim a failure on.
            return Judgement(Verdict.INCOMPLETE, "the capture's snaplen cut the TLS handshake: " + tj.reason)
        if tj is not None and not (tj.verdict is Verdict.NO_RESPONSE and srv_rst is not None):
            return tj
    server_data = r.server.payload_bytes > 0
    if srv_rst is not None and not (f.tls is not None and f.tls.session.established):
        who, ev = judge_reset(r, srv_rst, baselines)
        if server_data and f.tls is None:
            return Judgement(Verdict.OK, "data exchanged, then the server reset the connection")
        stage = "after the ClientHello" if f.tls is not None and f.tls.server_hello is None else "during the exchange"
        return Judgement(Verdict.RESET, f"reset {stage} by the {who}", who, ev)
    if icmp is not None and not server_data:
        return icmp
    if server_data or r.server.fin_ts is not None:
        return Judgement(Verdict.OK, "TCP exchange completed" if server_data else "connection opened and closed")
    if r.open_at_end:
        return Judgement(Verdict.INCOMPLETE, "the capture ends before the server sent data")
    if r.rsts and all(x.sender is Side.CLIENT for x in r.rsts):
        return Judgement(Verdict.OK, "connection opened, then closed by the client", "client")
    return Judgement(Verdict.OK, "TCP handshake completed")


def judge_udp(f: FlowFacts, baselines: PathBaselines, capture_end: float) -> Judgement:
    r = f.flow
    icmp = _icmp_judgement(r, baselines)
    answered = r.server.packets > 0
    if icmp is not None and not answered:
        return icmp
    what = "request"
    if f.ntp is not None:
        what = "NTP request"
        if f.ntp.replies:
            return Judgement(Verdict.OK, f"NTP answered (stratum {f.ntp.stratum})")
    elif f.quic is not None:
        what = "QUIC Initial"
        st = f.quic.state
        failed = _quic_tls_failure(st)
        if failed is not None:
            return failed
        if st.server_answered:
            return Judgement(Verdict.OK, "QUIC handshake answered" + (", 1-RTT data followed" if st.server_one_rtt else ""))
    elif answered:
        return Judgement(Verdict.OK, "answered")
    if answered:
        return Judgement(Verdict.OK, "the server sent datagrams")
    last_request = r.client.last_ts
    if r.open_at_end and last_request is not None and capture_end - last_request < TOO_SOON:
        return Judgement(Verdict.INCOMPLETE, f"the capture ends right after the {what}")
    n = r.client.packets
    return Judgement(Verdict.NO_RESPONSE, f"{n} {what}{'s' if n != 1 else ''} over {_dur(r.ts_start, r.ts_end)}, "
                     "never answered", None, ["no reply and no ICMP error: silently dropped"])


def _quic_tls_failure(st: QUICFlowState) -> Judgement | None:
    """A CONNECTION_CLOSE in an Initial carrying a TLS alert (RFC 9001 4.8: error 0x0100 + alert): the
    handshake failed, readable by anyone since Initials are protected only by the connection id."""
    close = st.connection_close
    if close is None or close.close.application or not 0x0100 <= close.close.error_code < 0x0200 \
            or st.server_one_rtt:
        return None
    code = close.close.error_code - 0x0100
    who = "client" if close.from_client else "server"
    j = Judgement(Verdict.TLS_FAILED, f"QUIC handshake failed: {who} closed with TLS alert {alert_name(code)}",
                  None, [f"{who} sent CONNECTION_CLOSE 0x{close.close.error_code:x} (TLS alert {alert_name(code)})"
                         + (f": {close.close.reason}" if close.close.reason else "")])
    j.alert = f"{who}:{alert_name(code)}"
    return j


def judge_flow(f: FlowFacts, baselines: PathBaselines, capture_end: float) -> Judgement:
    if f.flow.proto == TCP:
        return judge_tcp(f, baselines, capture_end)
    return judge_udp(f, baselines, capture_end)
