"""Engine records as plain dicts (the serialisation edge): flows and DNS transactions.

Field names follow the report contract (`report.schema.json`: id, proto,
client, server, state, history, sni, tls, quic, proxy...) and Zeek/Suricata
where the contract is silent (uid, community_id, conn_state). Strings from the
wire are kept as they are here; each renderer escapes for where they go.
"""

from __future__ import annotations

from typing import Any

from analyzer.dnsmap import DNSTransaction
from analyzer.engine import CaptureSummary
from analyzer.flows.records import DirectionStats, FlowRecord
from analyzer.inspect import FlowFacts, QUICFacts, TLSFacts
from analyzer.neighbors import NeighborBinding
from analyzer.protocols.starttls import Upgrade
from analyzer.protocols.tls import ClientHello
from analyzer.protocols.tls_registry import alert_name, cipher_name, version_name
from analyzer.protocols.x509 import Certificate

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}


def _cert(c: Certificate) -> dict[str, Any]:
    return {
        "subject": c.subject,
        "issuer": c.issuer,
        "serial": c.serial,
        "sha256": c.sha256,
        "issuer_cn": c.issuer_cn,
        "subject_cn": c.subject_cn,
        "not_before": c.not_before,
        "not_after": c.not_after,
        "san": list(c.san_dns),
        "self_signed": c.self_signed,
        "is_ca": c.is_ca,
    }


def _client_hello_facts(ch: ClientHello | None) -> dict[str, Any]:
    """What the ClientHello says of itself, the same over TCP and in QUIC Initials."""
    return {
        "client_max_version": version_name(ch.max_version) if ch is not None else None,
        "ech": ch.has_ech if ch is not None else None,
        "pq_key_share": ch.has_pq_key_share if ch is not None else None,
    }


def tls_dict(t: TLSFacts) -> dict[str, Any]:
    s = t.session
    alert = None
    if s.last_alert is not None:
        a = s.last_alert
        alert = {
            "from": "client" if a.from_client else "server",
            "level": {1: "warning", 2: "fatal"}.get(a.level, str(a.level)) if a.level is not None else "unknown",
            "description": (a.name or alert_name(a.description)) if a.description is not None
            else ("encrypted" if a.encrypted else "unknown"),
            "code": a.description if a.description is not None else -1,
            "encrypted": a.encrypted,
            "inferred": a.inferred,
        }
    ch = t.client_hello
    return {
        "version": s.version,
        "cipher": s.cipher,
        "alpn": [s.alpn] if s.alpn else [],
        "client_alpn": list(s.client_alpn),
        "established": s.established,
        "resumed": s.resumed,
        "hello_retry_request": s.hello_retry_request,
        "alert": alert,
        "ssl_history": s.ssl_history,
        "server_name": s.server_name,
        "certificates": [_cert(c) for c in t.certificates],
        "ja3": t.ja3,
        "ja3s": t.ja3s,
        "ja4": t.ja4,
        "ja4s": None,  # JA4S is under the FoxIO licence (no commercial use): not computed
        **_client_hello_facts(ch),
        "tunnelled": t.tunnelled,
        "transport": "tcp",
        "encrypted_records": [
            {"ts": r.ts, "from": "client" if r.from_client else "server", "type": r.content_type, "length": r.length}
            for r in t.encrypted_records[:32]
        ],
    }


def starttls_dict(u: Upgrade) -> dict[str, Any]:
    """The in-band upgrade: what the client asked and what the server answered (454, NO, -ERR: refused)."""
    return {
        "protocol": u.protocol.value,
        "command": u.command,
        "reply": u.reply,
        "accepted": u.accepted,
        "client_tls_offset": u.client_tls,
        "server_tls_offset": u.server_tls,
    }


# RFC 9001 4.8: a TLS alert closes a QUIC connection with error code 0x0100 + AlertDescription.
_QUIC_CRYPTO_ERROR = range(0x0100, 0x0200)


def quic_tls_dict(q: QUICFacts) -> dict[str, Any]:
    """The TLS handshake carried in QUIC Initials, in the same shape as a TCP flow's `tls`.

    `transport` is "quic". What Initials cannot show stays empty: the
    certificates, the server's ALPN choice (both in encrypted Handshake
    packets) and encrypted records. `established` keeps Zeek's meaning, and
    Zeek's ssl.log says F for every QUIC connection, completed ones included,
    because its QUIC analyzer hands the SSL analyzer only the Initial CRYPTO
    data, where no Finished is ever seen. Whether the QUIC handshake went on
    is in the flow's `quic` object (`server_one_rtt`). `ssl_history` is the
    letters Zeek writes for the same data: C (ClientHello), s (ServerHello).
    """
    st = q.state
    ch, sh = st.client_hello, st.server_hello
    alert = None
    close = st.connection_close
    if close is not None and not close.close.application and close.close.error_code in _QUIC_CRYPTO_ERROR:
        code = close.close.error_code - 0x0100
        alert = {"from": "client" if close.from_client else "server", "level": "fatal",
                 "description": alert_name(code), "code": code, "encrypted": False, "inferred": False}
    chosen = sh if sh is not None and not sh.is_hello_retry_request else None  # a HelloRetryRequest chose nothing yet
    return {
        "version": version_name(chosen.version) if chosen is not None else None,
        "cipher": cipher_name(chosen.cipher_suite) if chosen is not None else None,
        "alpn": [sh.alpn] if sh is not None and sh.alpn else [],
        "client_alpn": list(ch.alpn) if ch is not None else [],
        "established": False,
        "resumed": chosen.has_psk if chosen is not None else False,  # Zeek: the server accepted a PSK
        "hello_retry_request": st.hello_retry_request,
        "alert": alert,
        "ssl_history": ("C" if ch is not None else "") + ("s" if sh is not None else ""),
        "server_name": ch.server_name if ch is not None else None,
        "certificates": [],
        "ja3": q.ja3,
        "ja3s": q.ja3s,
        "ja4": q.ja4,
        "ja4s": None,  # JA4S is under the FoxIO licence (no commercial use): not computed
        **_client_hello_facts(ch),
        "tunnelled": False,
        "transport": "quic",
        "encrypted_records": [],
    }


def _direction(d: DirectionStats) -> dict[str, Any]:
    ttls = d.ttls
    return {
        "packets": d.packets,
        "ip_bytes": d.ip_bytes,
        "payload_bytes": d.payload_bytes,
        "ttls": {str(ttls[0][0]): ttls[0][1]} if len(ttls) == 1 else {str(ttl): n for ttl, n in ttls},
        "ip_id_pattern": d.ip_id_pattern,
        "state": d.state,
        "syn_count": d.syn_count,
        "syn_window": d.syn_window,
        "retransmissions": d.retransmissions,
        "missed_bytes": d.missed_bytes,
    }


def flow_dict(f: FlowFacts) -> dict[str, Any]:
    r: FlowRecord = f.flow
    proto = PROTO_NAMES.get(r.proto, str(r.proto))
    out: dict[str, Any] = {
        "id": r.uid,
        "uid": r.uid,
        "community_id": r.community_id,
        "proto": proto,
        "client": {"ip": r.client_ip, "port": r.client_port, "mac": r.client_mac},
        "server": {"ip": r.server_ip, "port": r.server_port, "mac": r.server_mac},
        "ts_start": r.ts_start,
        "ts_end": r.ts_end,
        # FlowRecord.duration, without the property call: never negative (a connection kept across
        # a backwards clock step ends "before" it began; its length is unknown, not below zero).
        "duration": max(0.0, r.ts_end - r.ts_start),
        "state": r.conn_state,
        "history": r.history,
        "app": f.app,
        "packets": {"c2s": r.client.packets, "s2c": r.server.packets},
        "bytes": {"c2s": r.client.ip_bytes, "s2c": r.server.ip_bytes},
        "sni": f.server_name,
        "tls": tls_dict(f.tls) if f.tls is not None else None,
        "quic": None,
        "proxy": None,
        "http": None,
        "ntp": None,
        "starttls": None,
        "rtt": {"syn_synack": r.rtt_syn_synack, "synack_ack": r.rtt_synack_ack},
        "rsts": [
            {"ts": x.ts, "from": x.sender.value, "ttl": x.ttl, "ip_id": x.ip_id, "window": x.window,
             "seq_at_next": x.seq_at_next, "since_peer": x.since_peer, "prev_ttl": x.prev_ttl,
             "packets_after": x.packets_after, "data_after": x.data_after}
            for x in r.rsts
        ] if r.rsts else [],
        "icmp": [
            {"ts": e.ts, "type": e.type, "code": e.code, "reporter": e.reporter, "ttl": e.ttl, "about": e.about.value}
            for e in r.icmp_errors
        ] if r.icmp_errors else [],
        "client_stats": _direction(r.client),
        "server_stats": _direction(r.server),
        "processes": [{"name": n, "pid": p} for n, p in r.processes] if r.processes else [],
        "truncated_start": r.truncated_start,
        "open_at_end": r.open_at_end,
        "end_reason": r.end_reason.value,
        "weird": sorted(set(f.weirds) | {w for w, _ in r.weirds}) if f.weirds or r.weirds else [],
    }
    if f.quic is not None:
        st = f.quic.state
        ch = st.client_hello
        out["quic"] = {
            "version": st.version_name,
            "sni": ch.server_name if ch is not None else None,
            "alpn": list(ch.alpn) if ch is not None else [],
            "server_answered": st.server_answered,
            "client_one_rtt": st.client_one_rtt,
            "server_one_rtt": st.server_one_rtt,
            "ja4": f.quic.ja4,
        }
        if ch is not None or st.server_hello is not None:
            out["tls"] = quic_tls_dict(f.quic)
    if f.http is not None:
        req, resp = f.http.request, f.http.response
        out["http"] = {
            "method": req.method if req else None,
            "host": req.host if req else None,
            "target": req.target if req else None,
            "status": resp.status if resp else None,
            "ocsp": req.is_ocsp if req else False,
            "crl": req.is_crl if req else False,
        }
        if f.http.connect_target is not None:
            out["proxy"] = {"connect_target": f.http.connect_target, "status": resp.status if resp else None}
    if f.starttls is not None:
        out["starttls"] = starttls_dict(f.starttls)
    if f.ntp is not None:
        out["ntp"] = {"requests": f.ntp.requests, "replies": f.ntp.replies, "stratum": f.ntp.stratum,
                      "kiss_code": f.ntp.kiss_code}
    return out


def capture_dict(c: CaptureSummary) -> dict[str, Any]:
    return {"source": c.source, "format": c.format, "packets": c.packets, "bytes": c.bytes,
            "first_ts": c.first_ts, "last_ts": c.last_ts, "link_types": list(c.link_types),
            "truncated": c.truncated, "dropped": c.dropped, "weird": dict(c.weird), "on_device": c.on_device}


def neighbor_dict(b: NeighborBinding) -> dict[str, Any]:
    """One ARP/NDP binding: the report's top-level `neighbors` array holds these."""
    return {"ip": b.ip, "mac": b.mac, "source": b.source.value, "first_ts": b.first_ts, "last_ts": b.last_ts,
            "count": b.count}


def dns_dict(t: DNSTransaction) -> dict[str, Any]:
    return {
        "ts": t.ts,
        "client": {"ip": t.client_ip, "port": t.client_port},
        "server": {"ip": t.server_ip, "port": t.server_port},
        "transport": t.transport,
        "id": t.id,
        "query": t.query,
        "qtype": t.qtype,
        "rcode": t.rcode,
        "rtt": t.rtt,
        "answers": [{"name": a.name, "type": a.type, "data": a.data, "ttl": a.ttl} for a in t.answers],
        "chain": list(t.chain),
        "addresses": list(t.addresses),
        "extended_errors": list(t.extended_errors),
        "queries": t.queries,
    }
