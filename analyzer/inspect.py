"""Application-layer facts of one finished flow: which protocol it spoke and what it said.

The flow table hands over the reassembled first bytes of each TCP direction and
the first UDP datagrams; content sniffers (not ports) pick the parser, because
APNs speaks TLS on 5223 and proxies on 3128/8080. Everything here is pure: a
FlowRecord in, a FlowFacts out; parser errors become weirds on the flow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter, itemgetter

from analyzer.dataclass_tools import fast_constructor
from analyzer.flows.reassembly import StreamData
from analyzer.flows.records import FlowRecord
from analyzer.protocols import http, ntp, quic, tls
from analyzer.protocols._buffer import ParseError
from analyzer.protocols.fingerprints import ja3, ja3s, ja4
from analyzer.protocols.starttls import Upgrade, find_upgrade
from analyzer.protocols.x509 import Certificate, parse_chain

TCP, UDP = 6, 17


@dataclass(frozen=True, slots=True)
class TimedRecord:
    """A TLS record after the handshake went encrypted: what a TLS 1.3 diagnosis can still see."""

    ts: float | None
    from_client: bool
    content_type: int
    length: int


@dataclass(frozen=True, slots=True)
class TLSFacts:
    session: tls.TLSSession
    client_hello: tls.ClientHello | None
    server_hello: tls.ServerHello | None
    certificates: tuple[Certificate, ...]  # the server's chain, leaf first
    ja3: str | None
    ja3s: str | None
    ja4: str | None
    encrypted_records: tuple[TimedRecord, ...]  # both directions, in capture order
    client_hello_ts: float | None
    server_hello_ts: float | None
    tunnelled: bool  # inside an HTTP CONNECT tunnel


@dataclass(frozen=True, slots=True)
class HTTPFacts:
    request: http.HTTPRequest | None
    response: http.HTTPResponse | None

    @property
    def connect_target(self) -> str | None:
        """host:port of a CONNECT; None also when the target is malformed (inspection noted the weird)."""
        try:
            t = self.request.connect_target if self.request is not None else None
        except ParseError:
            return None
        return f"{t.host}:{t.port}" if t is not None else None


@dataclass(frozen=True, slots=True)
class QUICFacts:
    """The QUIC handshake as far as Initial packets show it: the TLS hellos, never the certificates."""

    state: quic.QUICFlowState
    ja4: str | None
    ja3: str | None = None  # of the ClientHello inside the client's Initials, as Suricata logs for QUIC
    ja3s: str | None = None


@dataclass(frozen=True, slots=True)
class NTPFacts:
    requests: int
    replies: int  # server packets answering a client request
    stratum: int | None
    kiss_code: str | None


@dataclass(frozen=True, slots=True)
class FlowFacts:
    flow: FlowRecord
    app: str | None  # tls | http | http-connect | quic | ntp | dns | smtp-starttls, smtp (imap, pop3, ftp, xmpp) | None
    tls: TLSFacts | None = None
    http: HTTPFacts | None = None
    quic: QUICFacts | None = None
    ntp: NTPFacts | None = None
    weirds: tuple[str, ...] = ()
    starttls: Upgrade | None = None  # an in-band upgrade to TLS, accepted or refused

    @property
    def server_name(self) -> str | None:
        if self.tls is not None and self.tls.session.server_name:
            return self.tls.session.server_name
        if self.quic is not None:
            st = self.quic.state
            if st.client_hello is not None:
                return st.client_hello.server_name
            if st.gquic_hello is not None:
                return st.gquic_hello.server_name
        return None


# -- TCP ---------------------------------------------------------------------

def _ts_at(stream: StreamData | None, offset: int) -> float | None:
    """Capture time of the segment that carried stream byte `offset`."""
    if stream is None or not stream.segments:
        return None
    best = None
    for start, ts in stream.segments:
        if start > offset:
            break
        best = ts
    return best


def _times_at(stream: StreamData | None, offsets: list[int]) -> list[float | None]:
    """`_ts_at` for each of `offsets`, which must not decrease, in one pass over the segments.

    `_ts_at` takes the segment before the first one starting past the offset;
    for a larger offset that first one can only come later, so one cursor
    serves every offset.
    """
    if stream is None or not stream.segments:
        return [None] * len(offsets)
    segs = stream.segments
    n = len(segs)
    i = 0
    out: list[float | None] = []
    for offset in offsets:
        while i < n and segs[i][0] <= offset:
            i += 1
        out.append(segs[i - 1][1] if i else None)
    return out


def _arrival(client: StreamData | None, server: StreamData | None, c_base: int, s_base: int) -> list[tuple[bool, int]]:
    """Per segment in capture order: (from_client, bytes of that direction delivered so far, from the TLS start)."""
    events: list[tuple[float, bool, int]] = []
    for stream, from_client, base in ((client, True, c_base), (server, False, s_base)):
        if stream is None:
            continue
        segs = stream.segments
        # Each segment's bytes end where the next one starts; the last one's at the end of the data.
        ends = [start for start, _ in segs[1:]]
        ends.append(len(stream.data))
        events += [(ts, from_client, end - base) for (_, ts), end in zip(segs, ends) if end > base]
    events.sort(key=itemgetter(0))
    return [(fc, n) for _, fc, n in events]


def _record_sort_key(r: TimedRecord) -> tuple[bool, float]:
    return (r.ts is None, r.ts or 0.0)


_record_ts = attrgetter("ts")


# Built once per TLS flow or per encrypted record: skip the frozen dataclasses' __init__.
_make_timed = fast_constructor(TimedRecord)
_make_tls_facts = fast_constructor(TLSFacts)
_make_flow_facts = fast_constructor(FlowFacts)


def _tls(flow: FlowRecord, c_data: bytes, s_data: bytes, c_base: int, s_base: int, tunnelled: bool) -> tuple[TLSFacts, list[str]]:
    cstream, sstream = flow.client.stream, flow.server.stream
    exchange = tls.analyze_exchange(c_data, s_data, arrival=_arrival(cstream, sstream, c_base, s_base))
    session = exchange.session
    weirds = list(session.weirds)  # each direction's, client first
    certs, cert_weirds = parse_chain(session.cert_chain)
    weirds.extend(cert_weirds)
    ch, sh = exchange.client_hello, exchange.server_hello
    timed: list[TimedRecord] = []
    untimed = False
    for recs, from_client, stream, base in (
        (exchange.client_encrypted, True, cstream, c_base),
        (exchange.server_encrypted, False, sstream, s_base),
    ):
        if recs:
            times = _times_at(stream, [base + offset for _, _, offset in recs])
            untimed = untimed or None in times
            timed += [_make_timed(ts, from_client, ctype, length) for ts, (ctype, length, _) in zip(times, recs)]
    # Capture order, untimed records last; when all are timed that is plain time order.
    timed.sort(key=_record_sort_key if untimed else _record_ts)
    ch_ts = _ts_at(cstream, c_base) if ch is not None else None
    sh_ts = _ts_at(sstream, s_base) if sh is not None else None
    facts = _make_tls_facts(
        session=session, client_hello=ch, server_hello=sh, certificates=certs,
        ja3=ja3(ch)[1] if ch is not None else None,
        ja3s=ja3s(sh)[1] if sh is not None else None,
        ja4=ja4(ch, "t") if ch is not None else None,
        encrypted_records=tuple(timed), client_hello_ts=ch_ts, server_hello_ts=sh_ts, tunnelled=tunnelled,
    )
    return facts, weirds


def _inspect_tcp(flow: FlowRecord) -> FlowFacts:
    c_data = flow.client.stream.data if flow.client.stream is not None else b""
    s_data = flow.server.stream.data if flow.server.stream is not None else b""
    if not c_data and not s_data:
        return FlowFacts(flow, None)
    start = tls.tls_start(c_data) if c_data else None
    if start is not None or (not c_data and tls.looks_like_tls(s_data)):
        facts, weirds = _tls(flow, c_data[start or 0:], s_data, start or 0, 0, tunnelled=False)
        return _make_flow_facts(flow, "tls", facts, None, None, None, tuple(weirds), None)
    if http.looks_like_http_request(c_data):
        # Each side on its own: a bad line in one head must not cost the other, or a tunnel's TLS.
        http_weirds: list[str] = []
        req = resp = None
        try:
            req = http.parse_request_head(c_data, weirds=http_weirds)
        except ParseError as exc:
            http_weirds.append(exc.kind)
        if http.looks_like_http_response(s_data):
            try:
                resp = http.parse_response_head(s_data, weirds=http_weirds)
            except ParseError as exc:
                http_weirds.append(exc.kind)
        facts_http = HTTPFacts(req, resp)
        if req is not None and req.method == "CONNECT":
            if facts_http.connect_target is None:
                http_weirds.append("http_bad_connect_target")
            tunnel_tls = None
            if resp is not None and 200 <= resp.status < 300:
                c_rest, s_rest = c_data[req.head_length:], s_data[resp.head_length:]
                if tls.looks_like_tls(c_rest):
                    tunnel_tls, tunnel_weirds = _tls(flow, c_rest, s_rest, req.head_length, resp.head_length,
                                                     tunnelled=True)
                    http_weirds += tunnel_weirds
            return FlowFacts(flow, "http-connect", tls=tunnel_tls, http=facts_http, weirds=tuple(http_weirds))
        return FlowFacts(flow, "http", http=facts_http, weirds=tuple(http_weirds))
    upgrade = find_upgrade(c_data, s_data)
    if upgrade is not None:
        return _inspect_starttls(flow, c_data, s_data, upgrade)
    if flow.server_port == 53 or flow.client_port == 53:
        return FlowFacts(flow, "dns")
    return FlowFacts(flow, None)


def _inspect_starttls(flow: FlowRecord, c_data: bytes, s_data: bytes, upgrade: Upgrade) -> FlowFacts:
    """A clear-text dialogue that asked for TLS: the TLS after an accepted upgrade, as Zeek's analyzers hand it on.

    `app` says both, in the spirit of Zeek's conn.log service "smtp,ssl": `smtp-starttls`
    when TLS followed the upgrade, the bare protocol (`smtp`) when it was refused or no
    TLS followed; `starttls` keeps the command and the server's answer either way.
    """
    weirds = list(upgrade.weirds)
    facts = None
    if upgrade.client_tls is not None or upgrade.server_tls is not None:
        c_base = upgrade.client_tls if upgrade.client_tls is not None else len(c_data)
        s_base = upgrade.server_tls if upgrade.server_tls is not None else len(s_data)
        facts, tls_weirds = _tls(flow, c_data[c_base:], s_data[s_base:], c_base, s_base, tunnelled=False)
        weirds += tls_weirds
    app = f"{upgrade.protocol}-starttls" if facts is not None else str(upgrade.protocol)
    return FlowFacts(flow, app, tls=facts, weirds=tuple(weirds), starttls=upgrade)


# -- UDP ---------------------------------------------------------------------

def _timeline(flow: FlowRecord) -> list[tuple[float, bool, bytes]]:
    items = [(d.ts, True, d.payload) for d in flow.client.datagrams]
    items += [(d.ts, False, d.payload) for d in flow.server.datagrams]
    items.sort(key=lambda x: x[0])
    return items


def _inspect_quic(flow: FlowRecord) -> FlowFacts:
    asm = quic.QUICInitialAssembler()
    weirds: list[str] = []
    for _, from_client, payload in _timeline(flow):
        for ev in asm.feed(payload, from_client):
            if isinstance(ev, quic.QUICWeird):
                weirds.append(ev.kind)
    state = asm.state
    ch, sh = state.client_hello, state.server_hello
    facts = QUICFacts(
        state,
        ja4=ja4(ch, "q") if ch is not None else None,
        ja3=ja3(ch)[1] if ch is not None else None,
        ja3s=ja3s(sh)[1] if sh is not None else None,
    )
    return FlowFacts(flow, "quic", quic=facts, weirds=tuple(weirds))


def _inspect_ntp(flow: FlowRecord) -> FlowFacts:
    requests: list[ntp.NTPPacket] = []
    replies = 0
    stratum: int | None = None
    kiss: str | None = None
    weirds: list[str] = []
    for _, from_client, payload in _timeline(flow):
        try:
            pkt = ntp.parse_ntp(payload)
        except ParseError as exc:
            weirds.append(exc.kind)
            continue
        if from_client:
            requests.append(pkt)
        elif any(ntp.is_reply_to(r, pkt) for r in requests) or (requests and pkt.mode == ntp.NTPMode.SERVER):
            replies += 1
            stratum = pkt.stratum
            kiss = pkt.kiss_code or kiss
    return FlowFacts(flow, "ntp", ntp=NTPFacts(len(requests), replies, stratum, kiss), weirds=tuple(weirds))


def _parses_as_ntp(payload: bytes) -> bool:
    """An NTP packet of a time-carrying mode (1-5); control modes 6/7 and mode 0 are not enough."""
    try:
        return ntp.parse_ntp(payload).mode != ntp.NTPMode.RESERVED
    except ParseError:
        return False


_DNS_OPCODES = frozenset({0, 1, 2, 4, 5, 6})  # QUERY, IQUERY, STATUS, NOTIFY, UPDATE, DSO (IANA)


def _parses_as_dns(payload: bytes) -> bool:
    """A DNS header with a question and a known opcode. Only the header: the DNS map parses every
    message in full anyway, and a full parse here would cost each DNS flow ~45 us for nothing."""
    return len(payload) >= 12 and payload[4:6] != b"\x00\x00" and (payload[2] >> 3) & 0x0F in _DNS_OPCODES


def _inspect_dns(flow: FlowRecord) -> FlowFacts:
    return FlowFacts(flow, "dns")  # the DNS map reads the messages; the flow only says what it carried


@dataclass(frozen=True, slots=True)
class PortProtocol:
    """A protocol that owns a UDP port: on that port it is tried before content sniffing.

    Content sniffing cannot tell every protocol apart: an NTP request from an
    unsynchronised client (ntpdig) starts 0xe3 0x00 0x00 0x00 0x00, a QUIC
    long header of version 0, that is a Version Negotiation. So the order is:
    a padded QUIC client Initial (`quic.is_client_initial`, which no other
    protocol resembles) is QUIC on any port; then the first client datagram
    goes to the parser of each protocol owning one of the flow's ports, and
    the first that reads it wins; then QUIC sniffing; and failing that the
    port's inspector runs anyway, so that its parse errors become its weirds.
    """

    name: str
    ports: frozenset[int]
    parses: Callable[[bytes], bool]
    inspect: Callable[[FlowRecord], FlowFacts]

    def owns(self, flow: FlowRecord) -> bool:
        return flow.server_port in self.ports or flow.client_port in self.ports


UDP_PORT_PROTOCOLS: tuple[PortProtocol, ...] = (
    PortProtocol("ntp", frozenset({123}), _parses_as_ntp, _inspect_ntp),
    PortProtocol("dns", frozenset({53}), _parses_as_dns, _inspect_dns),
)


def _inspect_udp(flow: FlowRecord) -> FlowFacts:
    first = flow.client.datagrams[0].payload if flow.client.datagrams else b""
    if quic.is_client_initial(first):
        return _inspect_quic(flow)
    owners = [p for p in UDP_PORT_PROTOCOLS if p.owns(flow)]
    for p in owners:
        if p.parses(first):
            return p.inspect(flow)
    if first and (quic.looks_like_quic(first) or quic.parse_gquic_client_hello(first) is not None):
        return _inspect_quic(flow)
    if owners:
        return owners[0].inspect(flow)
    return FlowFacts(flow, None)


INSPECTORS: dict[int, Callable[[FlowRecord], FlowFacts]] = {TCP: _inspect_tcp, UDP: _inspect_udp}


def inspect_flow(flow: FlowRecord) -> FlowFacts:
    inspector = INSPECTORS.get(flow.proto)
    if inspector is None:
        return FlowFacts(flow, None)
    return inspector(flow)
