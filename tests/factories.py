"""Tiny deterministic factories for the diagnosis's inputs, in the style of mitmproxy's `tflow()`.

Every value a rule reads can be set by name; everything else has the value of an ordinary connection:
`tcp_flow()` is a TCP connection from 10.0.0.2 to gs.apple.com's lab address that completed its
handshake and exchanged data, `tls()` a TLS 1.3 session that was established. Rules are tested by
changing one fact and asserting the verdict, status, finding or advice that follows.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Iterable
from typing import Any

from analyzer.catalogue import load_catalogue
from analyzer.diagnosis.diagnose import Diagnosis, diagnose
from analyzer.dnsmap import Answer, DNSTransaction, NameMap
from analyzer.engine import CaptureSummary, EngineResult
from analyzer.flows.records import DirectionStats, EndReason, FlowRecord, RstEvidence, Side
from analyzer.inspect import FlowFacts, HTTPFacts, NTPFacts, TLSFacts
from analyzer.protocols import http as H
from analyzer.protocols import tls as T
from analyzer.protocols.tls_registry import AlertDescription

CLIENT, SERVER = "10.0.0.2", "17.253.1.10"
T0 = 1_800_000_000.0
_uids = itertools.count(1)
_CATALOGUE = None


def catalogue() -> Any:
    global _CATALOGUE
    if _CATALOGUE is None:
        _CATALOGUE = load_catalogue(None, edition="current")
    return _CATALOGUE


def side(**kw: Any) -> DirectionStats:
    base: dict[str, Any] = dict(
        packets=5, ip_bytes=600, payload_bytes=300, zeek_bytes=300, first_ts=T0, last_ts=T0 + 1, ttls=((63, 5),),
        ip_ids=(), ip_id_pattern="incrementing", state="ESTABLISHED", syn_ts=T0, syn_count=1, syn_window=65535,
        syn_ttl=63, syn_options=b"", first_data_ts=T0 + 0.1, fin_ts=T0 + 1, rst_count=0, retransmissions=0,
        zero_windows=0, missed_bytes=0, stream=None, datagrams=(), datagram_count=0)
    base.update(kw)
    return DirectionStats(**base)


def rst(sender: Side = Side.SERVER, ttl: int = 63, **kw: Any) -> RstEvidence:
    base: dict[str, Any] = dict(
        ts=T0 + 0.01, sender=sender, ttl=ttl, ip_id=None, df=True, window=0, seq=1, ack=1, flags=0x14,
        payload_len=0, rel_seq=1, seq_at_next=True, seq_at_peer_ack=True, since_peer=0.01, prev_ttl=None,
        prev_ip_id=None, packets_after=0, data_after=0)
    base.update(kw)
    return RstEvidence(**base)


def record(client: str = CLIENT, server: str = SERVER, *, proto: int = 6, cport: int = 50000, sport: int = 443,
           client_side: dict[str, Any] | None = None, server_side: dict[str, Any] | None = None,
           **kw: Any) -> FlowRecord:
    """A flow record; `client_side`/`server_side` override the DirectionStats of each side."""
    v6 = ":" in client
    base: dict[str, Any] = dict(
        uid=f"C{next(_uids):017d}", community_id="1:x", proto=proto, ip_version=6 if v6 else 4,
        client_ip=client, client_port=cport, server_ip=server, server_port=sport, ts_start=T0, ts_end=T0 + 1,
        conn_state="SF" if proto == 6 else "SF", history="ShADadFf" if proto == 6 else "Dd",
        client=side(**(client_side or {})), server=side(**(server_side or {})), syn_ts=T0 if proto == 6 else None,
        synack_ts=T0 + 0.01 if proto == 6 else None, ack_ts=T0 + 0.02 if proto == 6 else None,
        rtt_syn_synack=0.01 if proto == 6 else None, rtt_synack_ack=0.01 if proto == 6 else None,
        rsts=(), rst_total=0, icmp_errors=(), icmp_error_total=0, processes=(), ifaces=(), vlan=(), weirds=(),
        missed_bytes=0, truncated_start=False, open_at_end=False, end_reason=EndReason.CLOSED, flipped=False)
    names = {f.name for f in dataclasses.fields(FlowRecord)}
    if "client_mac" in names:
        base.setdefault("client_mac", None)
        base.setdefault("server_mac", None)
    base.update(kw)
    return FlowRecord(**base)


def unanswered_syn(client: str = CLIENT, server: str = SERVER, sport: int = 443, syns: int = 3, **kw: Any) -> FlowRecord:
    """SYNs that nothing answered (conn_state S0)."""
    kw.setdefault("ts_end", kw.get("ts_start", T0) + 3)
    return record(client, server, sport=sport, conn_state="S0", history="S", synack_ts=None, ack_ts=None,
                  rtt_syn_synack=None, rtt_synack_ack=None,
                  client_side=dict(packets=syns, syn_count=syns, payload_bytes=0, zeek_bytes=0, fin_ts=None,
                                   first_data_ts=None, state="SYN_SENT"),
                  server_side=dict(packets=0, ip_bytes=0, payload_bytes=0, zeek_bytes=0, first_ts=None, last_ts=None,
                                   ttls=(), syn_ts=None, syn_count=0, syn_ttl=None, fin_ts=None, first_data_ts=None,
                                   state="INACTIVE"), **kw)


def refused_syn(client: str = CLIENT, server: str = SERVER, sport: int = 443, ttl: int = 63, **kw: Any) -> FlowRecord:
    """A SYN answered by a RST (conn_state REJ); `ttl` is the RST's."""
    return record(client, server, sport=sport, conn_state="REJ", history="Sr", synack_ts=None, ack_ts=None,
                  rtt_syn_synack=None, rtt_synack_ack=None, rsts=(rst(ttl=ttl, rel_seq=None, seq_at_next=None),),
                  rst_total=1,
                  client_side=dict(packets=1, payload_bytes=0, zeek_bytes=0, fin_ts=None, first_data_ts=None),
                  server_side=dict(packets=1, payload_bytes=0, zeek_bytes=0, ttls=((ttl, 1),), syn_ts=None,
                                   syn_count=0, syn_ttl=None, fin_ts=None, first_data_ts=None, rst_count=1,
                                   state="RESET"), **kw)


def alert(name: str, from_client: bool, *, encrypted: bool = False, inferred: bool = False) -> T.SessionAlert:
    code = None if encrypted else AlertDescription[name.upper()].value
    return T.SessionAlert(from_client, None if encrypted else 2, code, None if encrypted else name, encrypted, inferred)


def client_hello(sni: str | None = "gs.apple.com", max_version: int = 0x0304) -> T.ClientHello:
    return T.ClientHello(0x0303, b"\0" * 32, b"", (0x1301,), (0,), (), sni, (), (),
                         (max_version,) if max_version == 0x0304 else (), (), (), (), (), False, False, False, None,
                         max_version)


def server_hello(version: int = 0x0304) -> T.ServerHello:
    return T.ServerHello(0x0303, version, b"\1" * 32, b"", 0x1301, 0, (), None, False, None, None, False)


def tls(sni: str | None = "gs.apple.com", *, version: str | None = "TLSv13", established: bool = True,
        alert: T.SessionAlert | None = None, certificates: tuple[Any, ...] = (), has_server_hello: bool = True,
        max_version: int = 0x0304, client_hello_ts: float | None = T0 + 0.02,
        server_hello_ts: float | None = T0 + 0.03) -> TLSFacts:
    session = T.TLSSession(version, 0x0304 if version == "TLSv13" else 0x0303 if version else None,
                           "TLS_AES_128_GCM_SHA256" if version else None, 0x1301 if version else None, sni, (), None,
                           established, False, False, (alert,) if alert else (), alert, "", (), (), ())
    sh_version = {"TLSv13": 0x0304, "TLSv12": 0x0303}.get(version or "", 0x0303)
    return TLSFacts(session, client_hello(sni, max_version), server_hello(sh_version) if has_server_hello else None,
                    tuple(certificates), None, None, None, (), client_hello_ts,
                    server_hello_ts if has_server_hello else None, False)


def http(method: str = "GET", target: str = "/", host: str | None = None, status: int | None = None,
         reason: str = "", headers: Iterable[tuple[str, str]] = ()) -> HTTPFacts:
    req_headers = ((("Host", host),) if host else ())
    req = H.HTTPRequest(method, target, "HTTP/1.1", req_headers, 100)
    resp = H.HTTPResponse("HTTP/1.1", status, reason, tuple(headers), 100) if status is not None else None
    return HTTPFacts(req, resp)


def facts(r: FlowRecord, *, app: str | None = None, tls_facts: TLSFacts | None = None,
          http_facts: HTTPFacts | None = None, ntp: NTPFacts | None = None, quic: Any = None) -> FlowFacts:
    if app is None:
        app = "tls" if tls_facts else "http" if http_facts else "ntp" if ntp else "quic" if quic else None
    return FlowFacts(r, app, tls=tls_facts, http=http_facts, quic=quic, ntp=ntp)


def dns(query: str, addresses: Iterable[str] = (), *, client: str = CLIENT, server: str = "10.0.0.1",
        rcode: str | None = "NOERROR", ts: float = T0 - 1, qtype: str = "A", queries: int = 1,
        cname: Iterable[str] = ()) -> DNSTransaction:
    addrs = tuple(addresses)
    chain = (query, *cname)
    answers = tuple(Answer(chain[-1], "AAAA" if ":" in a else "A", a, 300) for a in addrs)
    return DNSTransaction(ts, client, 53000, server, 53, "udp", 1, query, qtype, rcode,
                          None if rcode is None else ts + 0.01, answers, chain, addrs, (), True, False, (), (),
                          queries)


def engine_result(flows: Iterable[FlowFacts], transactions: Iterable[DNSTransaction] = (), *,
                  link_types: tuple[str, ...] = ("ether",), **extra: Any) -> EngineResult:
    flows = list(flows)
    transactions = list(transactions)
    ends = [f.flow.ts_end for f in flows] + [t.ts for t in transactions]
    last = max(ends, default=T0) + 30  # the capture went on: silence was awaited, not cut short
    cap = CaptureSummary("test.pcap", "pcap", 10, 1000, T0 - 2, last, link_types, False, None, (),
                         on_device="pktap" in link_types)
    return EngineResult([cap], flows, transactions, NameMap(transactions), Counter(), **extra)


def run(flows: Iterable[FlowFacts], transactions: Iterable[DNSTransaction] = (), **kw: Any) -> Diagnosis:
    """The whole diagnosis of these flows and DNS transactions against the shipped catalogue."""
    extra = {k: kw.pop(k) for k in list(kw) if k in ("link_types", "neighbors")}
    return diagnose(engine_result(flows, transactions, **extra), catalogue(), **kw)


def row(d: Diagnosis, host: str) -> Any:
    """The one service row for `host` (fails when there is none or several)."""
    (r,) = [s for s in d.services if s.entry.host == host]
    return r


def kinds(d: Diagnosis) -> set[str]:
    return {f.kind for f in d.findings}
