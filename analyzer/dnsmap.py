"""DNS transactions (queries paired with responses) and the per-client address -> names map.

DNS is handled per message, not per flow: a resolver may reuse one 5-tuple for
thousands of queries, and every one matters. The map answers "which names had
this client just resolved to this server address?", the evidence that labels
SNI-less flows (APNs on 5223, QUIC, ECH).

Memory stays bounded on captures of any length: queries wait at most
`pending_timeout` of capture time (and at most `max_pending` at once), the
recently-answered set is pruned with them and held under twice that, the parse
memo holds at most `MEMO_SIZE` messages and `MEMO_BYTES` bytes, and with an
`on_transaction` callback finished transactions are handed over, not kept.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from analyzer.dataclass_tools import fast_constructor
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
    cname_chain,
    parse_message,
)
from analyzer.protocols.dns_registry import ExtendedError, RRType, rcode_name
from analyzer.protocols.dns_registry import rrtype_name as type_name

ADDRESS_TYPES = (RRType.A, RRType.AAAA)
MEMO_SIZE = 4096  # distinct messages (the benchmark has 43)
MEMO_BYTES = 4 << 20  # and their bytes: a DNS-over-TCP message can be 64 KB
MDNS_PORT = 5353
# A compression pointer to offset 0 or 1 reads the id as a name; such a body
# cannot be memoised on the bytes after the id.
_POINTERS_INTO_ID = (b"\xc0\x00", b"\xc0\x01")


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
    queries: int  # copies of the query seen (retransmissions share one id); 0 when none was

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


@dataclass(frozen=True, slots=True)
class _Message:
    """All the tracker takes from one message: pure functions of its bytes after the id.

    Computed once per distinct message body and memoised, so a resolver's
    thousandth answer for the same name costs a dict lookup, not a parse.
    The response-side fields are empty for a query (it never answers).
    """

    error: str | None  # the ParseError kind when the message does not parse
    response: bool  # QR bit
    weirds: tuple[str, ...]
    question: tuple[str, int, int]  # (normalised name, qtype, qclass), or ("", 0, 0): pairs query and response
    query: str  # wire spelling, or the first record's owner when there is no question (mDNS)
    qtype: str
    rcode: str
    answers: tuple[Answer, ...]
    chain: tuple[str, ...]
    addresses: tuple[str, ...]
    hints: tuple[str, ...]
    truncated: bool
    extended_errors: tuple[str, ...]


_NO_QUESTION = ("", 0, 0)
_NEVER = float("-inf")


def _unparsable(kind: str) -> _Message:
    return _Message(kind, False, (), _NO_QUESTION, "", "", "", (), (), (), (), False, ())


def _digest(payload: bytes) -> _Message:
    try:
        msg = parse_message(payload)
    except ParseError as exc:
        return _unparsable(exc.kind)
    q = msg.question
    question = _NO_QUESTION
    if q is not None:
        qname, qtype = q.name, type_name(q.qtype)
        question = (q.normalized_name, q.qtype, q.qclass)
    elif msg.answers:
        # mDNS announcements carry no question: name them by their first record, as Zeek does.
        qname, qtype = msg.answers[0].name, type_name(msg.answers[0].rtype)
    else:
        qname, qtype = "", ""
    if not msg.qr:
        return _Message(None, False, msg.weirds, question, qname, qtype, "", (), (), (), (), False, ())
    chain: list[str] = []
    addresses: tuple[str, ...] = ()
    if qname:
        path = cname_chain(qname, msg.answers)
        addr_set = {str(rr.data) for rr in msg.answers if rr.rtype in ADDRESS_TYPES}
        chain = [p for p in path if p not in addr_set]
        addresses = tuple(p for p in path if p in addr_set)
    return _Message(
        None, True, msg.weirds, question, qname, qtype, rcode_name(msg.rcode), _answers(msg), tuple(chain),
        addresses, _hints(msg), msg.tc, _extended_errors(msg),
    )


# Positional, in field order; skips the frozen dataclass __init__ (one transaction per response).
_new_transaction = fast_constructor(DNSTransaction)

# (client ip, client port, server ip, server port, id, question): TransactionKey's fields, flat.
_Key = tuple[str, int, str, int, int, tuple[str, int, int]]


class DNSTracker:
    """Pairs DNS queries with responses by (client, server, id, question).

    Without `on_transaction`, finished transactions are kept and `finish()`
    returns them sorted by time. With it, each transaction is passed to the
    callback as soon as it is complete (answered; an answer without a query;
    a query unanswered for `pending_timeout`, or still waiting at `finish()`),
    in that order of completion, and nothing is kept.
    """

    def __init__(self, pending_timeout: float = 30.0, max_pending: int = 100_000,
                 on_transaction: Callable[[DNSTransaction], None] | None = None) -> None:
        self.pending_timeout = pending_timeout
        self.max_pending = max_pending  # the recently-answered set holds up to twice as many
        self._pending: dict[_Key, tuple[float, _Message, str, int]] = {}  # first time, query, transport, copies
        self._answered: dict[_Key, float] = {}  # recently paired, to spot duplicate responses
        self._memo: dict[bytes, _Message] = {}  # keyed on the message without its id
        self._memo_bytes = 0
        self.transactions: list[DNSTransaction] = []
        self._emit: Callable[[DNSTransaction], None] = (
            on_transaction if on_transaction is not None else self.transactions.append
        )
        self.weird: Counter[str] = Counter()
        self._last_expire = 0.0

    def _learn(self, payload: bytes) -> _Message:
        """A memo miss: parse, derive, and memoise when the id cannot change the result.

        Resolvers see the same few questions and answers again and again (the
        benchmark: 300,000 messages, 43 distinct once the id is set aside).
        """
        message = _digest(payload)
        if len(payload) < 12:
            return message
        body = payload[2:]
        if _POINTERS_INTO_ID[0] in body or _POINTERS_INTO_ID[1] in body or len(body) > MEMO_BYTES:
            return message  # maybe a name read from the id (or just such bytes in an address): parse each time
        if len(self._memo) >= MEMO_SIZE or self._memo_bytes + len(body) > MEMO_BYTES:
            self._memo.clear()
            self._memo_bytes = 0
        self._memo[body] = message
        self._memo_bytes += len(body)
        return message

    def feed(self, ts: float, src: str, sport: int, dst: str, dport: int, payload: bytes, transport: str = "udp") -> None:
        m = self._memo.get(payload[2:])
        if m is None:
            m = self._learn(payload)
        if m.error is not None:
            self.weird[m.error] += 1
            return
        for w in m.weirds:
            self.weird[w] += 1
        msg_id = payload[0] << 8 | payload[1]
        if not m.response:
            key = (src, sport, dst, dport, msg_id, m.question)
            waiting = self._pending.get(key)
            if waiting is not None:
                if ts - waiting[0] <= self.pending_timeout:
                    # A retransmitted query: keep the first time, the wait began then.
                    self._pending[key] = (waiting[0], waiting[1], waiting[2], waiting[3] + 1)
                    return
                # The first went unanswered for the whole timeout: decided here, not by when the
                # sweep runs (which depends on which packets this process sees: -j N).
                del self._pending[key]
                self._emit(self._unanswered(key, *waiting))
            if len(self._pending) >= self.max_pending:
                self.weird["dns_pending_table_full"] += 1
                self._expire(ts, force=True)
            self._pending[key] = (ts, m, transport, 1)
        else:
            key = (dst, dport, src, sport, msg_id, m.question)
            pending = self._pending.pop(key, None)
            if pending is not None and ts - pending[0] > self.pending_timeout:
                self._emit(self._unanswered(key, *pending))  # too late to be its answer (see above)
                pending = None
            if pending is None:
                if ts - self._answered.get(key, _NEVER) < self.pending_timeout:
                    # A second answer to one question (the resolver answered a retransmitted query too).
                    self.weird["dns_duplicate_response"] += 1
                    return
                if sport != MDNS_PORT and dport != MDNS_PORT:
                    # mDNS announcements are unsolicited by design; elsewhere an answer to no query is odd.
                    self.weird["dns_unmatched_response"] += 1
                self._emit(_new_transaction(
                    ts, dst, dport, src, sport, transport, msg_id, m.query, m.qtype, m.rcode, ts, m.answers,
                    m.chain, m.addresses, m.hints, False, m.truncated, m.extended_errors, m.weirds, 0,
                ))
            else:
                qts, query, _, asked = pending
                self._answered[key] = ts
                if len(self._answered) >= 2 * self.max_pending:
                    self._trim_answered(ts)
                self._emit(_new_transaction(
                    qts, dst, dport, src, sport, transport, msg_id, m.query, m.qtype, m.rcode, ts, m.answers,
                    m.chain, m.addresses, m.hints, True, m.truncated, m.extended_errors, query.weirds + m.weirds,
                    asked,
                ))
        if ts - self._last_expire > self.pending_timeout:
            self._expire(ts)

    def _unanswered(self, key: _Key, ts: float, query: _Message, transport: str, asked: int) -> DNSTransaction:
        client, cport, server, sport, msg_id, _ = key
        return _new_transaction(
            ts, client, cport, server, sport, transport, msg_id, query.query, query.qtype, None, None, (),
            (), (), (), True, False, (), query.weirds, asked,
        )

    def _trim_answered(self, now: float) -> None:
        """The recently-answered set reached twice `max_pending`: drop what the timeout already
        made useless and, if more than `max_pending` answers remain within one timeout, the oldest."""
        horizon = now - self.pending_timeout
        answered = {k: t for k, t in self._answered.items() if t >= horizon}
        if len(answered) > self.max_pending:
            self.weird["dns_answered_table_full"] += 1
            keys = list(answered)[len(answered) - self.max_pending:]
            answered = {k: answered[k] for k in keys}
        self._answered = answered

    def _expire(self, now: float, force: bool = False) -> None:
        """Queries waiting since before `now - pending_timeout` become unanswered transactions.

        Runs whenever capture time has moved on by `pending_timeout` since the
        last run (so nothing waits much past twice the timeout), and when the
        table is full (`force`: the oldest-inserted half goes, whatever its age).
        """
        self._last_expire = now
        horizon = now - self.pending_timeout
        self._answered = {k: t for k, t in self._answered.items() if t >= horizon}
        pending = self._pending
        for key, (ts, query, transport, asked) in list(pending.items()):
            if ts < horizon or force:
                del pending[key]
                self._emit(self._unanswered(key, ts, query, transport, asked))
                if force and len(pending) < self.max_pending // 2:
                    break

    def finish(self) -> list[DNSTransaction]:
        """End of capture: queries still waiting become unanswered transactions.

        Returns the kept transactions sorted by time (the query's): all of
        them, or none when an `on_transaction` callback took them.
        """
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
    """Per client, server address -> the resolutions that produced it, in time order.

    Built from a finished list, or grown one transaction at a time with
    `add` as a streaming engine hands them over: the lookups are the same
    whether the transactions come in the list's order or in the order the
    tracker completed them, because resolutions answered at the same instant
    are ordered by their query's time, as the tracker's sorted list orders
    them (then by arrival, which both orders share).
    """

    def __init__(self, transactions: Iterable[DNSTransaction] = ()) -> None:
        self._map: dict[tuple[str, str], list[Resolution]] = {}
        self._times: dict[tuple[str, str], list[float]] = {}
        for t in transactions:
            self.add(t)

    def add(self, transaction: DNSTransaction) -> None:
        """Take in one transaction (unanswered ones and those without addresses change nothing)."""
        t = transaction
        rts = t.response_ts
        if rts is None:
            return
        for addr in (*t.addresses, *t.hint_addresses):
            key = (t.client_ip, addr)
            times = self._times.get(key)
            resolution = Resolution(rts, t.query, t.chain, t)
            if times is None:
                self._times[key] = [rts]
                self._map[key] = [resolution]
                continue
            items = self._map[key]
            if rts > times[-1]:
                times.append(rts)
                items.append(resolution)
                continue
            i = bisect.bisect_right(times, rts)
            while i and times[i - 1] == rts and items[i - 1].transaction.ts > t.ts:
                i -= 1
            times.insert(i, rts)
            items.insert(i, resolution)

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
