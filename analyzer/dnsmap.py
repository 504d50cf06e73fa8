"""DNS transactions (queries paired with responses) and the per-client address -> names map.

DNS is handled per message, not per flow: a resolver may reuse one 5-tuple for
thousands of queries, and every one matters. The map answers "which names had
this client just resolved to this server address?", the evidence that labels
SNI-less flows (APNs on 5223, QUIC, ECH).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import cast

from analyzer.protocols._buffer import ParseError
from analyzer.protocols.dns import (
    DNSMessage,
    MXData,
    RawRData,
    RData,
    SOAData,
    SRVData,
    SVCBData,
    TXTData,
    UndecodedRData,
)
from analyzer.protocols.dns import TransactionKey, cname_chain, parse_message, transaction_key
from analyzer.protocols.dns_registry import ExtendedError, RRType, rcode_name
from analyzer.protocols.dns_registry import rrtype_name as type_name

ADDRESS_TYPES = (RRType.A, RRType.AAAA)
MEMO_SIZE = 4096
MDNS_PORT = 5353


@dataclass(frozen=True, slots=True)
class Answer:
    name: str
    type: str
    data: str
    ttl: int


@dataclass(frozen=True, slots=True)
class DNSTransaction:
    ts: float  # the query's time (the response's when no query was seen)
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    transport: str  # udp | tcp
    id: int
    query: str  # wire spelling, escaped
    qtype: str
    rcode: str | None  # None: no response seen
    response_ts: float | None
    answers: tuple[Answer, ...]
    chain: tuple[str, ...]  # query -> CNAME ... -> final name (names only)
    addresses: tuple[str, ...]  # the A/AAAA at the end of the chain
    hint_addresses: tuple[str, ...]  # HTTPS/SVCB ipv4hint/ipv6hint
    query_seen: bool
    truncated: bool  # TC bit
    extended_errors: tuple[str, ...]  # RFC 8914 info codes (Blocked, Filtered...)
    weirds: tuple[str, ...]

    @property
    def rtt(self) -> float | None:
        if self.response_ts is None or not self.query_seen:
            return None
        return self.response_ts - self.ts


def rdata_text(data: RData) -> str:
    """One readable value per record, as Zeek's dns.log writes answers (the target for SRV/MX/SVCB)."""
    if isinstance(data, str):
        return data
    if isinstance(data, (SRVData, SVCBData)):
        return data.target
    if isinstance(data, MXData):
        return data.exchange
    if isinstance(data, TXTData):
        return " ".join(data.strings)
    if isinstance(data, SOAData):
        return data.mname
    if isinstance(data, (RawRData, UndecodedRData)):
        return data.hex
    return "EDNS"


def _answers(msg: DNSMessage) -> tuple[Answer, ...]:
    return tuple(Answer(rr.name, type_name(rr.rtype), rdata_text(rr.data), rr.ttl) for rr in msg.answers)


def _hints(msg: DNSMessage) -> tuple[str, ...]:
    out: list[str] = []
    for rr in msg.answers:
        if isinstance(rr.data, SVCBData):
            out.extend((*rr.data.ipv4hint, *rr.data.ipv6hint))
    return tuple(dict.fromkeys(out))


def _extended_errors(msg: DNSMessage) -> tuple[str, ...]:
    edns = msg.edns
    if edns is None:
        return ()
    out = []
    for code, text in edns.extended_errors:
        try:
            name = ExtendedError(code).name
        except ValueError:
            name = f"EDE{code}"
        out.append(f"{name}: {text}" if text else name)
    return tuple(out)


class DNSTracker:
    """Pairs DNS queries with responses by (client, server, id, question)."""

    def __init__(self, pending_timeout: float = 30.0, max_pending: int = 100_000) -> None:
        self.pending_timeout = pending_timeout
        self.max_pending = max_pending
        self._pending: dict[TransactionKey, tuple[float, DNSMessage, str]] = {}
        self._answered: dict[TransactionKey, float] = {}  # recently paired, to spot duplicate responses
        self._memo: dict[bytes, DNSMessage | ParseError] = {}
        self.transactions: list[DNSTransaction] = []
        self.weird: Counter[str] = Counter()
        self._last_expire = 0.0

    def _parse(self, payload: bytes) -> DNSMessage:
        """parse_message, memoised on the message without its id.

        Resolvers see the same few questions and answers again and again (the
        benchmark: 300,000 messages, 43 distinct once the id is set aside), and a
        parse costs ~60 us where copying a parsed message with another id costs ~3.
        """
        if len(payload) < 12:
            return parse_message(payload)
        key = payload[2:]
        hit = self._memo.get(key)
        if hit is None:
            try:
                hit = parse_message(payload)
            except ParseError as exc:
                hit = exc
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = hit
        if isinstance(hit, ParseError):
            raise hit
        msg_id = int.from_bytes(payload[:2], "big")
        return hit if hit.id == msg_id else dataclasses.replace(hit, id=msg_id)

    def feed(self, ts: float, src: str, sport: int, dst: str, dport: int, payload: bytes, transport: str = "udp") -> None:
        try:
            msg = self._parse(payload)
        except ParseError as exc:
            self.weird[exc.kind] += 1
            return
        for w in msg.weirds:
            self.weird[w] += 1
        if not msg.qr:
            key = transaction_key(msg, (src, sport), (dst, dport))
            if key in self._pending:
                # A retransmitted query: keep the first time, the wait began then.
                return
            if len(self._pending) >= self.max_pending:
                self.weird["dns_pending_table_full"] += 1
                self._expire(ts, force=True)
            self._pending[key] = (ts, msg, transport)
        else:
            key = transaction_key(msg, (dst, dport), (src, sport))
            pending = self._pending.pop(key, None)
            if pending is None and ts - self._answered.get(key, float("-inf")) < self.pending_timeout:
                # A second answer to one question (the resolver answered a retransmitted query too).
                self.weird["dns_duplicate_response"] += 1
                return
            if pending is None:
                if sport != MDNS_PORT and dport != MDNS_PORT:
                    # mDNS announcements are unsolicited by design; elsewhere an answer to no query is odd.
                    self.weird["dns_unmatched_response"] += 1
                self.transactions.append(self._transaction(ts, dst, dport, src, sport, transport, None, msg, ts))
            else:
                qts, query, _ = pending
                self._answered[key] = ts
                self.transactions.append(self._transaction(qts, dst, dport, src, sport, transport, query, msg, ts))
        if ts - self._last_expire > self.pending_timeout:
            self._expire(ts)

    def _transaction(self, ts: float, client: str, cport: int, server: str, sport: int, transport: str,
                     query: DNSMessage | None, response: DNSMessage | None, rts: float | None) -> DNSTransaction:
        msg = response if response is not None else query
        assert msg is not None
        q = msg.question
        if q is not None:
            qname, qtype = q.name, type_name(q.qtype)
        elif msg.answers:
            # mDNS announcements carry no question: name them by their first record, as Zeek does.
            qname, qtype = msg.answers[0].name, type_name(msg.answers[0].rtype)
        else:
            qname, qtype = "", ""
        chain: list[str] = []
        addresses: tuple[str, ...] = ()
        if response is not None and qname:
            path = cname_chain(qname, response.answers)
            addr_set = {str(rr.data) for rr in response.answers if rr.rtype in ADDRESS_TYPES}
            chain = [p for p in path if p not in addr_set]
            addresses = tuple(p for p in path if p in addr_set)
        weirds = tuple((query.weirds if query else ()) + (response.weirds if response else ()))
        return DNSTransaction(
            ts=ts, client_ip=client, client_port=cport, server_ip=server, server_port=sport, transport=transport,
            id=msg.id, query=qname, qtype=qtype,
            rcode=rcode_name(response.rcode) if response is not None else None,
            response_ts=rts if response is not None else None,
            answers=_answers(response) if response is not None else (),
            chain=tuple(chain), addresses=addresses,
            hint_addresses=_hints(response) if response is not None else (),
            query_seen=query is not None, truncated=bool(response and response.tc),
            extended_errors=_extended_errors(response) if response is not None else (), weirds=weirds,
        )

    def _expire(self, now: float, force: bool = False) -> None:
        self._last_expire = now
        horizon = now - self.pending_timeout
        self._answered = {k: t for k, t in self._answered.items() if t >= horizon}
        for key, (ts, msg, transport) in list(self._pending.items()):
            if ts < horizon or force:
                del self._pending[key]
                client, cport = cast(tuple[str, int], key.client)
                server, sport = cast(tuple[str, int], key.server)
                self.transactions.append(self._transaction(ts, client, cport, server, sport, transport, msg, None, None))
                if force and len(self._pending) < self.max_pending // 2:
                    break

    def finish(self) -> list[DNSTransaction]:
        """End of capture: queries still waiting become unanswered transactions, all sorted by time."""
        self._expire(float("inf"), force=False)
        self.transactions.sort(key=lambda t: t.ts)
        return self.transactions


@dataclass(frozen=True, slots=True)
class Resolution:
    ts: float  # when the answer arrived
    query: str
    names: tuple[str, ...]  # the chain: query name first, CNAME targets after
    transaction: DNSTransaction


class NameMap:
    """Per client, server address -> the resolutions that produced it, in time order."""

    def __init__(self, transactions: list[DNSTransaction]) -> None:
        self._map: dict[tuple[str, str], list[Resolution]] = defaultdict(list)
        for t in transactions:
            if t.response_ts is None:
                continue
            for addr in (*t.addresses, *t.hint_addresses):
                self._map[(t.client_ip, addr)].append(Resolution(t.response_ts, t.query, t.chain, t))
        self._times: dict[tuple[str, str], list[float]] = {}
        for key, items in self._map.items():
            items.sort(key=lambda r: r.ts)
            self._times[key] = [r.ts for r in items]

    def lookup(self, client_ip: str, server_ip: str, ts: float) -> Resolution | None:
        """The latest resolution of `server_ip` by `client_ip` answered at or before `ts`."""
        times = self._times.get((client_ip, server_ip))
        if not times:
            return None
        i = bisect.bisect_right(times, ts)
        if i == 0:
            return None
        return self._map[(client_ip, server_ip)][i - 1]

    def all_for(self, client_ip: str, server_ip: str) -> list[Resolution]:
        return list(self._map.get((client_ip, server_ip), ()))
