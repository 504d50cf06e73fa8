"""The flow table: decoded packets in, one frozen `FlowRecord` out per finished flow.

Direction (who is the client, Zeek's originator):

- TCP: the sender of the first SYN. A first-seen SYN-ACK makes its receiver
  the client, with '^' in the history (as when Zeek flips a connection).
- Midstream TCP (no SYN seen): the side whose first payload is a TLS
  ClientHello or an HTTP request (or whose peer's first payload is a
  ServerHello or an HTTP response); before any payload, and when the payload
  says nothing, the port rule below. A flow whose roles change gets '^'.
- UDP, and TCP without content clues: if exactly one port is a service port
  (< 1024 or in `SERVICE_PORTS`), its side is the server; otherwise, if
  exactly one port is in the ephemeral range (>= 32768), its side is the
  client; otherwise the first sender. Zeek instead consults its `likely_server_ports`
  set; the two agree on ordinary traffic (see tests/test_flows.py).

Lifetime, as Zeek: a TCP flow ends `tcp_close_linger` after its close or
reset completes (late ACKs and RSTs still land in it), `tcp_attempt_timeout`
after an unanswered SYN, or after its idle timeout; a new SYN with another
ISN on a closed 5-tuple starts a new flow (port reuse). Timers are checked
lazily from a heap, before each packet whose time has reached the earliest
deadline, so a packet costs no timer work otherwise. When the table is full
the flow nearest to its own timeout is emitted early (`flow_table_full`).
Timestamps that go back by more than `max_time_jump` (merged captures) end
every flow first. Stream bytes of all flows share `reassembly_budget`.

Memory: finished flows hold no reference cycles, so they are freed by
reference counting the moment their record is built; an engine may relax
the cyclic garbage collector during a capture (it costs ~25% of this
table's time on short-flow traffic) without leaking.

Hot path: `add` is called for every decoded packet. Flows are looked up with
one dict probe on the packet's own 5-tuple (both directions are keys), state
lives in slotted objects, and the expensive parts (records, hashes, text
addresses) happen once per flow, when it finishes.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import heapq
import math
import struct
from collections.abc import Iterable, Sequence

from analyzer.capture.decode import Packet, ip_text, ip_text_cached, mac_text
from analyzer.flows.community_id import community_id, icmp_port_equivalents
from analyzer.flows.config import FlowConfig
from analyzer.flows.reassembly import ReassemblyBudget, StreamReassembler
from analyzer.flows.records import (
    Datagram,
    DirectionStats,
    EndReason,
    FlowRecord,
    IcmpError,
    RstEvidence,
    Side,
    StreamData,
    fast_constructor,
)
from analyzer.flows.tcp import (
    ACK,
    FIN,
    HIST_ACK_PKT,
    HIST_DATA_PKT,
    INACTIVE,
    RST,
    SYN,
    TOO_LARGE_SEQ_DELTA,
    URG,
    EndpointState,
    TCPEndpoint,
    TCPSession,
    udp_conn_state,
)

__all__ = ["SERVICE_PORTS", "WEIRDS", "FlowTable", "client_side_by_content", "client_side_by_ports"]

WEIRDS: dict[str, str] = {
    # Zeek's names (src/packet_analysis/protocol/tcp), raised where Zeek raises them.
    "SYN_seq_jump": "a SYN repeated with another ISN before any answer",
    "SYN_inside_connection": "a SYN on an established connection that carried data",
    "SYN_after_partial": "a SYN after midstream traffic from the same side",
    "SYN_after_close": "a SYN from a side that had sent its FIN",
    "SYN_after_reset": "a SYN from a side that had sent a RST",
    "SYN_with_data": "payload on a SYN (TCP Fast Open, or odd)",
    "TCP_christmas": "SYN and RST on one packet",
    "baroque_SYN": "SYN with URG",
    "bad_SYN_ack": "a SYN-ACK acknowledging nothing the originator sent",
    "simultaneous_open": "both sides sent a SYN",
    "unsolicited_SYN_response": "a SYN-ACK with no SYN seen",
    "connection_originator_SYN_ack": "the originator's first packet was a SYN-ACK",
    "repeated_SYN_with_ack": "the originator repeated its SYN as a SYN-ACK",
    "repeated_SYN_reply_wo_ack": "the responder answered a SYN with a SYN without ACK",
    "spontaneous_FIN": "a FIN as the first packet of a side",
    "spontaneous_RST": "a RST as the first packet of a connection",
    "inappropriate_FIN": "a FIN before the handshake completed",
    "FIN_advanced_last_seq": "a second FIN further in the sequence space",
    "FIN_after_reset": "a FIN from a side that had sent a RST",
    "data_after_reset": "payload from a side after its own RST (RST possibly injected)",
    "data_before_established": "payload before the SYN was answered",
    "possible_split_routing": "one side acknowledges data we never saw",
    "TCP_seq_underflow_or_misorder": "sequence number before the initial one",
    "TCP_ack_underflow_or_misorder": "acknowledgement before the initial sequence number",
    "truncated_tcp_payload": "payload cut by the snaplen: not reassembled",
    "active_connection_reuse": "a SYN with a new ISN on a connection still open",
    "premature_connection_reuse": "a SYN on a 5-tuple closed less than the linger time ago",
    # Ours.
    "history_truncated": "history letters beyond FlowConfig.max_history were dropped ('X')",
    "tcp_pending_full": "an out-of-order segment was dropped: pending list full ('X')",
    "flow_table_full": "a flow was emitted early to make room (FlowConfig.max_flows)",
    "reassembly_budget_exhausted": "a direction kept only its floor: the table's budget was spent",
    "time_went_backwards": "timestamps went back more than FlowConfig.max_time_jump: all flows emitted",
    "fragment_without_transport": "a non-first IP fragment without a fragment table: skipped",
    "flow_unhandled_ip_proto": "an IP protocol other than TCP, UDP, ICMP, ICMPv6: skipped",
    "icmp_without_header": "an ICMP packet the decoder could not read: skipped",
}
"""Weird names the flow table counts (`FlowTable.weird`, `FlowRecord.weirds`)."""

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMP6 = 58

SERVICE_PORTS = frozenset(
    {
        1080,  # SOCKS
        1194,  # OpenVPN
        1723,  # PPTP
        3128,  # HTTP proxy (squid)
        3478,  # STUN/TURN
        4500,  # IPsec NAT-T
        5223,  # APNs
        5228,  # Google push
        5349,  # STUN/TURN over TLS
        5353,  # mDNS
        5355,  # LLMNR
        8080,  # HTTP proxy
        8443,  # HTTPS alt
        8883,  # MQTT over TLS
    }
)
"""Ports >= 1024 that are services, not ephemeral ports, for the direction rule."""

EPHEMERAL_MIN = 32768
"""Lowest port of the common ephemeral ranges (Linux 32768-60999, IANA 49152-65535)."""

_HTTP_METHODS = (
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"CONNECT ",
    b"OPTIONS ",
    b"DELETE ",
    b"PATCH ",
    b"TRACE ",
)
_INF = math.inf
_JUMP_PACKETS = 3  # packets far behind the clock in a row that make a time jump
_DUPLICATE_WITHIN = 0.001  # s: no sender retransmits this fast; a capture's copy comes this close
_NOTHING: tuple[FlowRecord, ...] = ()
_STALE_FACTOR = 2  # the timer heap is compacted when it holds more than this many entries per live flow
_STALE_SLACK = 4096  # ... plus this many (a nearly empty table is not swept on every push)
_CONTROL = SYN | FIN | RST | URG
_HIST_DATA = HIST_DATA_PKT
_HIST_ACK = HIST_ACK_PKT


def client_side_by_ports(sport: int, dport: int) -> int:
    """0 if the packet's source is the client by the port rule, 1 if its destination is."""
    s_service = sport < 1024 or sport in SERVICE_PORTS
    d_service = dport < 1024 or dport in SERVICE_PORTS
    if d_service and not s_service:
        return 0
    if s_service and not d_service:
        return 1
    if not s_service and not d_service:
        # Two unregistered ports: one in the ephemeral range (Linux starts it at
        # 32768, BSD/macOS/Windows at 49152) against one below it: that one is
        # the client. Two ephemeral-looking ports say nothing.
        s_eph, d_eph = sport >= EPHEMERAL_MIN, dport >= EPHEMERAL_MIN
        if s_eph != d_eph:
            return 0 if s_eph else 1
    return 0


def client_side_by_content(payload: bytes) -> int | None:
    """0 if this payload is what a client sends first, 1 if a server's, None if unknown."""
    if len(payload) >= 6 and payload[0] == 0x16 and payload[1] == 0x03:
        if payload[5] == 0x01:
            return 0  # TLS ClientHello
        if payload[5] == 0x02:
            return 1  # TLS ServerHello
        return None
    if payload.startswith(b"HTTP/1."):
        return 1
    if payload.startswith(_HTTP_METHODS):
        return 0
    return None


def flow_uid(dup: int, ts: float, src: bytes, sport: int, dst: bytes, dport: int, proto: int) -> str:
    """A Zeek-like uid ("C" + 18 hex digits), the same for the same capture and config.

    Hashes the flow's first packet (time, 5-tuple) and `dup`, the number of
    flows that started before it at the same time with the same 5-tuple (0
    but for duplicated packets). Nothing else in the table goes in, so a flow
    gets the same uid when the capture's flows are split across processes.
    """
    return "C" + hashlib.blake2b(_UID_KEY(dup, ts, sport, dport, proto) + src + dst, digest_size=9).hexdigest()


_UID_KEY = struct.Struct("!QdHHB").pack
_STATE_NAMES = tuple(s.name for s in EndpointState)
_make_record = fast_constructor(FlowRecord)
_make_direction = fast_constructor(DirectionStats)
_make_datagram = fast_constructor(Datagram)
_SILENT = DirectionStats(
    0, 0, 0, 0, None, None, (), (), "none", "inactive", None, 0, None, None, b"", None, None, 0, 0, 0, 0, None, (), 0, 0
)
"""What a UDP/ICMP side that sent nothing looks like (shared: records are immutable)."""


class _Side:
    """What one address of a flow sent (indexed by physical side, never flipped)."""

    __slots__ = (
        "cur_ttl",
        "cur_ttl_n",
        "datagram_count",
        "datagrams",
        "duplicates",
        "fin_ts",
        "first_data_ts",
        "first_ts",
        "hs_ack_ts",
        "ip_bytes",
        "ip_ids",
        "ipid_inc",
        "ipid_n",
        "ipid_prev",
        "ipid_same",
        "ipid_zero",
        "last_ip_id",
        "last_plen",
        "last_seq",
        "last_syn_ts",
        "last_ts",
        "last_ttl",
        "macs",
        "packets",
        "payload_bytes",
        "rst_count",
        "rst_open",
        "syn_count",
        "syn_options",
        "syn_ts",
        "syn_ttl",
        "syn_window",
        "synack_ts",
        "ttls",
    )

    def __init__(self) -> None:
        self.packets = 0
        self.ip_bytes = 0
        self.payload_bytes = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        # TTLs are counted run-length: the common case (same TTL as the last
        # packet) costs one comparison; runs go to `ttls` when the TTL changes.
        self.cur_ttl = -1
        self.cur_ttl_n = 0
        self.ttls: dict[int, int] | None = None  # containers are made on first use
        self.ip_ids: list[int] | None = None
        self.ipid_prev = -1
        self.ipid_n = 0
        self.ipid_zero = 0
        self.ipid_same = 0
        self.ipid_inc = 0
        self.last_ttl: int | None = None
        self.last_ip_id: int | None = None
        self.syn_ts: float | None = None
        """First SYN or SYN-ACK this side sent."""
        self.synack_ts: float | None = None
        self.last_syn_ts: float | None = None
        self.syn_count = 0
        self.syn_window: int | None = None
        self.syn_ttl: int | None = None
        self.syn_options = b""
        self.hs_ack_ts: float | None = None
        self.first_data_ts: float | None = None
        self.fin_ts: float | None = None
        self.rst_count = 0
        self.rst_open: list[_Rst] | None = None  # this side's RSTs, counting what follows
        self.datagrams: list[Datagram] | None = None
        self.datagram_count = 0
        self.last_seq = -1  # TCP: the side's last segment, to tell a capture's duplicate from a retransmission
        self.last_plen = -1
        self.duplicates = 0
        self.macs = b""  # link-layer addresses of this side's first packet (Packet.macs)

    def ttl_counts(self) -> tuple[tuple[int, int], ...]:
        if self.ttls is None:
            return ((self.cur_ttl, self.cur_ttl_n),) if self.cur_ttl_n else ()
        ttls = dict(self.ttls)
        if self.cur_ttl_n:
            ttls[self.cur_ttl] = ttls.get(self.cur_ttl, 0) + self.cur_ttl_n
        return tuple(sorted(ttls.items()))

    def ip_id_pattern(self) -> str:
        n = self.ipid_n
        if n == 0:
            return "none"
        if n == 1:
            return "single"
        if self.ipid_zero == n:
            return "zero"
        steps = n - 1
        if self.ipid_same == steps:
            return "constant"
        if self.ipid_inc >= 0.9 * steps:
            return "incrementing"
        return "random"


class _Rst:
    """A RST being collected; `packets_after`/`data_after` grow until the flow ends."""

    __slots__ = (
        "ack",
        "at_next",
        "at_peer_ack",
        "data_after",
        "df",
        "flags",
        "ip_id",
        "packets_after",
        "payload_len",
        "prev_ip_id",
        "prev_ttl",
        "rel_seq",
        "seq",
        "side",
        "since_peer",
        "ts",
        "ttl",
        "window",
    )

    def __init__(
        self,
        side: int,
        pkt: Packet,
        rel_seq: int | None,
        at_next: bool | None,
        at_peer_ack: bool | None,
        since_peer: float | None,
        prev_ttl: int | None,
        prev_ip_id: int | None,
    ) -> None:
        self.ts = pkt.ts
        self.side = side
        self.ttl = pkt.ttl
        self.ip_id = pkt.ip_id
        self.df = pkt.df
        self.window = pkt.win
        self.seq = pkt.seq
        self.ack = pkt.ack
        self.flags = pkt.tcp_flags
        self.payload_len = pkt.payload_len
        self.rel_seq = rel_seq
        self.at_next = at_next
        self.at_peer_ack = at_peer_ack
        self.since_peer = since_peer
        self.prev_ttl = prev_ttl
        self.prev_ip_id = prev_ip_id
        self.packets_after = 0
        self.data_after = 0

    def record(self, orig_side: int) -> RstEvidence:
        return RstEvidence(
            ts=self.ts,
            sender=Side.CLIENT if self.side == orig_side else Side.SERVER,
            ttl=self.ttl,
            ip_id=self.ip_id,
            df=self.df,
            window=self.window,
            seq=self.seq,
            ack=self.ack,
            flags=self.flags,
            payload_len=self.payload_len,
            rel_seq=self.rel_seq,
            seq_at_next=self.at_next,
            seq_at_peer_ack=self.at_peer_ack,
            since_peer=self.since_peer,
            prev_ttl=self.prev_ttl,
            prev_ip_id=self.prev_ip_id,
            packets_after=self.packets_after,
            data_after=self.data_after,
        )


_Key = tuple[bytes, int, bytes, int, int]


class _Flow:
    __slots__ = (
        "addrs",
        "alive",
        "decided",
        "dup",
        "eps",
        "first_ts",
        "flipped",
        "hist",
        "icmp_count",
        "icmp_errors",
        "iface",
        "ifaces",
        "ipv",
        "keys",
        "last_ts",
        "orig_side",
        "ports",
        "procs",
        "proto",
        "pushed",
        "rst_total",
        "rsts",
        "serial",
        "session",
        "sides",
        "syn_for_synack",
        "vlan",
        "weird",
    )

    def __init__(self, serial: int, pkt: Packet, proto: int, src: bytes, sport: int, dst: bytes, dport: int) -> None:
        self.serial = serial
        self.dup = 0
        self.proto = proto
        self.ipv = pkt.ip_version
        self.vlan = pkt.vlan
        self.addrs = (src, dst)
        self.ports = (sport, dport)
        self.sides = (_Side(), _Side())
        self.session: TCPSession | None = None
        self.eps: tuple[TCPEndpoint, TCPEndpoint] | None = None
        self.orig_side = 0
        self.flipped = False
        self.decided = True
        self.hist = ""  # UDP/ICMP history (TCP's is in the session)
        self.first_ts = pkt.ts
        self.last_ts = pkt.ts
        self.weird: collections.Counter[str] | None = None  # UDP/ICMP (TCP's: session.weird)
        self.rsts: list[_Rst] | None = None
        self.rst_total = 0
        self.icmp_errors: list[IcmpError] | None = None
        self.icmp_count = 0
        self.procs: dict[tuple[str | None, int | None], None] | None = None
        self.iface = pkt.iface
        self.ifaces: set[int] | None = None
        self.alive = True
        self.pushed = _INF
        self.syn_for_synack: float | None = None
        self.keys: tuple[_Key, ...] = ()


_GONE = (_Side(), _Side())


@functools.lru_cache(maxsize=1024)
def _source_mac(macs: bytes) -> str | None:
    """The source address in a `Packet.macs` value, as text (cached: a capture holds few distinct ones)."""
    if len(macs) == 12:
        return mac_text(macs[6:])
    return mac_text(macs) if macs else None


class FlowTable:
    """Bidirectional flows from decoded packets; see the module docstring for the rules.

    `add(pkt)` returns the records of flows that finished because of this
    packet (timeouts reached by its timestamp, eviction, port reuse); call
    `flush()` at the end of the capture for the rest. `weird` counts table
    events and, as flows finish, their per-flow weirds.
    """

    def __init__(self, config: FlowConfig | None = None) -> None:
        self.config = config if config is not None else FlowConfig()
        self.weird: collections.Counter[str] = collections.Counter()
        # Both directions' 5-tuples are keys; the value says which side sent it.
        self._keys: dict[_Key, tuple[_Flow, int]] = {}
        self._live: dict[int, _Flow] = {}
        # Timers: (deadline, flow serial). A flow's one valid entry is the one whose deadline
        # equals its `pushed`; older entries of it, and those of finished flows, are stale:
        # skipped when popped, and swept out by `_compact_timers` once they outnumber the
        # live flows, so neither they nor the flows they named outlive their use.
        self._heap: list[tuple[float, int]] = []
        self._next_timer = _INF
        self._serial = 0
        self._dup_ts = _INF  # flows started at this time, by 5-tuple (for uids)
        self._dup_keys: dict[_Key, int] = {}
        self._out: list[FlowRecord] = []  # reused until a record goes into it
        self._clock = -_INF  # the newest packet time seen
        self._held: list[Packet] = []  # consecutive packets far older than the clock
        cfg = self.config
        self._ip_id_samples = cfg.ip_id_samples
        self._max_datagrams = cfg.max_udp_datagrams
        self._max_jump = cfg.max_time_jump
        self._budget = ReassemblyBudget(cfg.reassembly_budget, cfg.reassembly_floor)
        self.packets = 0
        """Packets given to `add`."""
        self.flows_emitted = 0

    def __len__(self) -> int:
        return len(self._live)

    # -- input -----------------------------------------------------------------

    def add(self, pkt: Packet) -> Sequence[FlowRecord]:
        """Account one packet; returns the records of flows it finished.

        Usually nothing finishes: then the result is a shared empty tuple, so
        the common case allocates nothing. Otherwise a new list.
        """
        self.packets += 1
        ts = pkt.ts
        out = self._out
        if ts >= self._next_timer:
            self._expire(ts, out)
        if ts >= self._clock:
            self._clock = ts
            if self._held:
                self._release_held(out)
        elif ts < self._clock - self._max_jump:
            self._hold(pkt, out)
            if out:
                self._out = []
                return out
            return _NOTHING
        elif self._held:
            self._release_held(out)
        proto = pkt.proto
        if proto == PROTO_TCP:
            entry = self._keys.get((pkt.src, pkt.sport, pkt.dst, pkt.dport, PROTO_TCP))
            flags = pkt.tcp_flags
            if entry is not None and not flags & _CONTROL and flags & ACK and pkt.win:
                # Fast path: an in-order ACK or data segment of an established flow
                # whose history letters are already set changes nothing in Zeek's
                # state machine but sequence numbers and counters. Everything that
                # could matter (control flags, zero window, reordering,
                # retransmission, a first 'A'/'D', gaps) goes the full way.
                flow, side = entry
                session = flow.session
                eps = flow.eps
                assert session is not None and eps is not None
                ep = eps[side]
                peer = eps[1 - side]
                seq = pkt.seq
                plen = pkt.payload_len
                mask = _HIST_DATA if plen else _HIST_ACK
                if not ep.is_orig:
                    mask <<= 16
                if (
                    seq == ep.last_seq
                    and 3 <= ep.state <= 4  # PARTIAL or ESTABLISHED
                    and 3 <= peer.state <= 4
                    and session.hist_seen & mask
                    and session.first_packet_seen == 3
                    and flow.decided
                    and self._fast_tcp(session, ep, peer, seq, pkt.ack, plen, pkt.payload, ts)
                ):
                    self._account_fast(flow, side, pkt, ts, plen)
                    if out:
                        self._out = []
                        return out
                    return _NOTHING
            self._tcp(pkt, ts, out, entry)
        elif proto == PROTO_UDP:
            self._udp(pkt, ts, out)
        else:
            self._process(pkt, out)
        if out:
            self._out = []
            return out
        return _NOTHING

    @property
    def next_timer(self) -> float:
        """The earliest pending timer deadline (inf if none): `advance(ts)` below it only moves the clock."""
        return self._next_timer

    def advance(self, ts: float) -> Sequence[FlowRecord]:
        """Move the clock to a packet's time without the packet: what a shard does with the others' packets.

        Timers fire as they would had the packet been added, so a flow ends
        for the same reason in one table as in the shard that holds it.
        """
        out = self._out
        if ts >= self._next_timer:
            self._expire(ts, out)
        if ts >= self._clock:
            self._clock = ts
        if out:
            self._out = []
            return out
        return _NOTHING

    def add_many(self, packets: Iterable[Packet | None]) -> list[FlowRecord]:
        """`add` for each packet (None entries skipped); nothing is flushed."""
        out: list[FlowRecord] = []
        add = self.add
        for pkt in packets:
            if pkt is not None:
                recs = add(pkt)
                if recs:
                    out.extend(recs)
        return out

    def flush(self) -> list[FlowRecord]:
        """End of capture: emit every flow still in the table, oldest first."""
        out: list[FlowRecord] = []
        if self._held:
            self._release_held(out)
        for flow in list(self._live.values()):
            self._finish(flow, EndReason.END_OF_CAPTURE, out)
        self._heap.clear()
        self._next_timer = _INF
        return out

    def _hold(self, pkt: Packet, out: list[FlowRecord]) -> None:
        """A packet far older than the newest: an outlier, or the start of a time jump."""
        held = self._held
        held.append(pkt)
        if len(held) < _JUMP_PACKETS:
            return
        # Confirmed: the capture went back in time. Start afresh, then replay;
        # but a TCP connection whose first held packet is no opening SYN is
        # that same connection across a clock step: ending it would split it
        # in two, the first half a false no_response. It is kept, its timer
        # re-armed from the new clock. (A SYN again is another connection on
        # the same ports, as in two copies of a capture appended.)
        self.weird["time_went_backwards"] += 1
        keys = self._keys
        continued: dict[int, _Flow] = {}
        opened: set[int] = set()
        for p in held:
            entry = keys.get((p.src, p.sport, p.dst, p.dport, p.proto)) if p.proto == PROTO_TCP else None
            if entry is not None and entry[0].serial not in opened:
                opened.add(entry[0].serial)
                if p.tcp_flags & (SYN | ACK) != SYN:
                    continued[entry[0].serial] = entry[0]
        for flow in list(self._live.values()):
            if flow.serial not in continued:
                self._finish(flow, EndReason.TIME_JUMP, out)
        self._heap.clear()
        self._next_timer = _INF
        self._clock = max(p.ts for p in held)
        self._release_held(out)
        for flow in continued.values():
            if flow.alive:
                self._push(flow, self._deadline(flow))

    def _release_held(self, out: list[FlowRecord]) -> None:
        held, self._held = self._held, []
        for p in held:
            self._process(p, out)

    def _process(self, pkt: Packet, out: list[FlowRecord]) -> None:
        """`add` without the clock and the fast path (replayed packets are few)."""
        proto = pkt.proto
        if proto == PROTO_TCP:
            self._tcp(pkt, pkt.ts, out, self._keys.get((pkt.src, pkt.sport, pkt.dst, pkt.dport, PROTO_TCP)))
        elif proto == PROTO_UDP:
            self._udp(pkt, pkt.ts, out)
        elif proto == PROTO_ICMP or proto == PROTO_ICMP6:
            icmp = pkt.icmp
            if icmp is None:
                self.weird["icmp_without_header"] += 1
            elif icmp.quoted is None or not self.attach_icmp(pkt):
                self._icmp(pkt, pkt.ts, out)
        else:
            self.weird["flow_unhandled_ip_proto"] += 1

    def attach_icmp(self, pkt: Packet) -> bool:
        """Tie an ICMP error to the flow whose header it quotes. False if none matches.

        `add` calls this itself for ICMP errors (and makes an ICMP flow of
        those that match nothing); call it directly only for packets not
        given to `add`.
        """
        icmp = pkt.icmp
        if icmp is None or icmp.quoted is None:
            return False
        q = icmp.quoted
        if q.proto != PROTO_TCP and q.proto != PROTO_UDP:
            return False
        entry = self._keys.get((q.src, q.sport, q.dst, q.dport, q.proto))
        if entry is None:
            return False
        flow, side = entry
        flow.icmp_count += 1
        if flow.icmp_errors is None:
            flow.icmp_errors = []
        if len(flow.icmp_errors) < self.config.max_icmp_errors:
            flow.icmp_errors.append(
                IcmpError(
                    ts=pkt.ts,
                    type=icmp.type,
                    code=icmp.code,
                    reporter=ip_text(pkt.src),
                    ttl=pkt.ttl,
                    about=Side.CLIENT if side == self._orig_side(flow) else Side.SERVER,
                    mtu=icmp.mtu,
                    quoted_seq=q.seq,
                )
            )
        return True

    # -- TCP -------------------------------------------------------------------

    @staticmethod
    def _fast_tcp(
        session: TCPSession,
        ep: TCPEndpoint,
        peer: TCPEndpoint,
        seq: int,
        ack: int,
        plen: int,
        payload: bytes,
        ts: float,
    ) -> bool:
        """The part of `TCPSession.packet` that an in-order segment exercises.

        Returns False, having changed nothing, when the segment needs the full
        treatment after all (an ACK that is old, wild or reveals a gap; sequence
        numbers past 2 GiB without a wrap; a payload cut by the snaplen).
        """
        if ep.seq_wraps:
            off = (ep.seq_wraps << 32) + seq - ep.start_seq - 1
        else:
            d = (seq - ep.start_seq) & 0xFFFFFFFF
            if not 0 < d < 0x80000000:
                return False
            off = d - 1
        if plen and (len(payload) < plen or off != ep.reasm.next_off):
            return False
        delta_ack = (ack - peer.ack_seq) & 0xFFFFFFFF
        if delta_ack:
            if delta_ack >= TOO_LARGE_SEQ_DELTA or peer.ack_wraps:
                return False
            rel_ack = (ack - peer.start_seq) & 0xFFFFFFFF
            if rel_ack >= 0x80000000 or rel_ack - 1 > peer.reasm.next_off:
                return False  # an underflow or a gap: let the full path judge
            if ack < peer.ack_seq:
                peer.ack_wraps += 1
            peer.ack_seq = ack
        session.last_time = ts
        ep.last_time = ts
        if plen:
            last = (seq + plen) & 0xFFFFFFFF
            if last < seq:
                ep.seq_wraps += 1
            ep.last_seq = last
            ep.reasm.data(off, payload if len(payload) == plen else payload[:plen], ts)
        return True

    def _account_fast(self, flow: _Flow, side: int, pkt: Packet, ts: float, plen: int) -> None:
        """Per-side counters for a fast-path segment (the full path's, minus the rare parts)."""
        st = flow.sides[side]
        st.packets += 1
        st.ip_bytes += pkt.ip_len
        st.payload_bytes += plen
        st.last_ts = ts
        st.last_seq = pkt.seq
        st.last_plen = plen
        flow.last_ts = ts
        ttl = pkt.ttl
        if ttl == st.cur_ttl:
            st.cur_ttl_n += 1
        else:
            self._ttl_run(st, ttl)
        ip_id = pkt.ip_id
        if ip_id is not None:
            n = st.ipid_n
            if n < self._ip_id_samples:
                if st.ip_ids is None:
                    st.ip_ids = [ip_id]
                else:
                    st.ip_ids.append(ip_id)
            st.ipid_n = n + 1
            if ip_id == 0:
                st.ipid_zero += 1
            step = (ip_id - st.ipid_prev) & 0xFFFF
            if step == 0:
                st.ipid_same += 1
            elif step < 1024:
                st.ipid_inc += 1
            st.ipid_prev = ip_id
        st.last_ttl = ttl
        st.last_ip_id = ip_id
        if st.rst_open is not None:
            for ev in st.rst_open:
                ev.packets_after += 1
                ev.data_after += plen
        if plen and st.first_data_ts is None:
            st.first_data_ts = ts
        if pkt.proc_name is not None or pkt.pid is not None:
            self._proc(flow, pkt)
        if pkt.iface != flow.iface:
            self._iface(flow, pkt.iface)

    def _tcp(self, pkt: Packet, ts: float, out: list[FlowRecord], entry: tuple[_Flow, int] | None) -> None:
        flags = pkt.tcp_flags
        if entry is None:
            if pkt.fragmented and pkt.sport == 0 and pkt.dport == 0:
                self.weird["fragment_without_transport"] += 1
                return
            flow = self._new_tcp(pkt, ts, out)
            side = 0
        else:
            flow, side = entry
            session = flow.session
            assert session is not None
            if flags & SYN and session.is_reuse(flags, pkt.seq, ts, self.config.tcp_close_linger):
                self._finish(flow, EndReason.REUSED, out)
                flow = self._new_tcp(pkt, ts, out)
                side = 0
        session = flow.session
        eps = flow.eps
        assert session is not None and eps is not None
        ep = eps[side]
        plen = pkt.payload_len
        payload = pkt.payload
        st = flow.sides[side]

        if not flow.decided and plen > 0:
            self._decide_by_content(flow, side, payload)
        if flags & RST:
            self._rst(flow, side, pkt, ts, ep, eps[1 - side])
        elif st.rst_open is not None:
            for ev in st.rst_open:
                ev.packets_after += 1
                ev.data_after += plen

        if plen and pkt.seq == st.last_seq and plen == st.last_plen and st.last_ts is not None \
                and ts - st.last_ts < _DUPLICATE_WITHIN and (pkt.ip_id is None or pkt.ip_id == st.last_ip_id):
            # The same segment again at once (same IP ID): the capture's copy (a span port mirroring
            # both ways), not the sender's retransmission, though Zeek counts it as one.
            st.duplicates += 1
        session.packet(ep, flags, pkt.seq, pkt.ack, plen, pkt.win, ts, payload)

        if st.first_ts is None:
            st.first_ts = ts
            st.macs = pkt.macs
        self._count(flow, st, pkt, ts, plen, remember=not flags & RST)
        st.last_seq = pkt.seq
        st.last_plen = plen
        if plen and st.first_data_ts is None:
            st.first_data_ts = ts
        if flags & (SYN | FIN | RST):
            self._tcp_control(flow, side, st, pkt, flags, ts)
        elif flags & ACK and st.hs_ack_ts is None and flow.sides[1 - side].synack_ts is not None:
            st.hs_ack_ts = ts  # the first ACK after the peer's SYN-ACK: the handshake's third packet
        if pkt.proc_name is not None or pkt.pid is not None:
            self._proc(flow, pkt)
        if pkt.iface != flow.iface:
            self._iface(flow, pkt.iface)

    def _new_tcp(self, pkt: Packet, ts: float, out: list[FlowRecord]) -> _Flow:
        flow = self._new_flow(pkt, PROTO_TCP, pkt.src, pkt.sport, pkt.dst, pkt.dport, ts, out)
        cfg = self.config
        cap, segs, pend, budget = cfg.reassembly_cap, cfg.max_segments, cfg.max_pending_segments, self._budget
        ep0 = TCPEndpoint(True, StreamReassembler(cap, segs, pend, budget), 0)
        ep1 = TCPEndpoint(False, StreamReassembler(cap, segs, pend, budget), 1)
        flow.eps = (ep0, ep1)
        session = TCPSession(ep0, ep1, cfg.max_history)
        flow.session = session
        flags = pkt.tcp_flags
        if flags & SYN:
            if flags & ACK:
                # A SYN-ACK first: its receiver is the client.
                session.flip_roles()
                flow.flipped = True
        else:
            first = client_side_by_content(pkt.payload) if pkt.payload_len else None
            client = first if first is not None else client_side_by_ports(pkt.sport, pkt.dport)
            if client == 1:
                session.flip_roles()
                flow.flipped = True
            flow.decided = first is not None
        return flow

    def _decide_by_content(self, flow: _Flow, side: int, payload: bytes) -> None:
        flow.decided = True
        role = client_side_by_content(payload)
        if role is None:
            return
        client = side if role == 0 else 1 - side
        if client != self._orig_side(flow):
            session = flow.session
            assert session is not None
            session.flip_roles()
            flow.flipped = not flow.flipped

    def _tcp_control(self, flow: _Flow, side: int, st: _Side, pkt: Packet, flags: int, ts: float) -> None:
        if flags & SYN and not flags & RST:
            st.syn_count += 1
            st.last_syn_ts = ts
            if st.syn_ts is None:
                st.syn_ts = ts
                st.syn_window = pkt.win
                st.syn_ttl = pkt.ttl
                st.syn_options = pkt.tcp_options
            if flags & ACK and st.synack_ts is None:
                st.synack_ts = ts
                flow.syn_for_synack = flow.sides[1 - side].last_syn_ts
        if flags & FIN and st.fin_ts is None:
            st.fin_ts = ts
        session = flow.session
        assert session is not None
        cfg = self.config
        t = session.next_timer(cfg.tcp_attempt_timeout, cfg.tcp_close_linger, cfg.tcp_partial_close_timeout)
        if t is not None and t < flow.pushed:
            self._push(flow, t)

    def _rst(self, flow: _Flow, side: int, pkt: Packet, ts: float, ep: TCPEndpoint, peer: TCPEndpoint) -> None:
        st = flow.sides[side]
        st.rst_count += 1
        flow.rst_total += 1
        if flow.rsts is None:
            flow.rsts = []
        if len(flow.rsts) >= self.config.max_rsts:
            return
        seq = pkt.seq
        rel_seq: int | None = None
        at_next: bool | None = None
        if ep.state != INACTIVE:
            rel_seq, _ = ep.relative_seq(seq, ep.last_seq, ep.seq_wraps)
            at_next = seq == ep.last_seq
        # What the receiver expects next: the highest ACK it sent for our data.
        at_peer_ack: bool | None = None
        if peer.state != INACTIVE and ep.ack_seq != ep.start_seq:
            at_peer_ack = seq == ep.ack_seq
        other = flow.sides[1 - side]
        ev = _Rst(
            side,
            pkt,
            rel_seq,
            at_next,
            at_peer_ack,
            None if other.last_ts is None else ts - other.last_ts,
            st.last_ttl,
            st.last_ip_id,
        )
        if st.rst_open is None:
            st.rst_open = []
        st.rst_open.append(ev)
        flow.rsts.append(ev)

    # -- UDP / ICMP ------------------------------------------------------------

    def _udp(self, pkt: Packet, ts: float, out: list[FlowRecord]) -> None:
        src = pkt.src
        sport = pkt.sport
        entry = self._keys.get((src, sport, pkt.dst, pkt.dport, PROTO_UDP))
        if entry is None:
            if pkt.fragmented and sport == 0 and pkt.dport == 0:
                self.weird["fragment_without_transport"] += 1
                return
            flow = self._new_flow(pkt, PROTO_UDP, src, sport, pkt.dst, pkt.dport, ts, out)
            if client_side_by_ports(sport, pkt.dport) == 1:
                flow.orig_side = 1
                flow.flipped = True
                flow.hist = "^"
            side = 0
        else:
            flow, side = entry
        self._datagram(flow, side, pkt, ts)

    def _icmp(self, pkt: Packet, ts: float, out: list[FlowRecord]) -> None:
        icmp = pkt.icmp
        assert icmp is not None
        sp, dp, _one_way = icmp_port_equivalents(pkt.proto, icmp.type, icmp.code)
        entry = self._keys.get((pkt.src, sp, pkt.dst, dp, pkt.proto))
        if entry is None:
            flow = self._new_flow(pkt, pkt.proto, pkt.src, sp, pkt.dst, dp, ts, out)
            side = 0
        else:
            flow, side = entry
        self._datagram(flow, side, pkt, ts)

    def _datagram(self, flow: _Flow, side: int, pkt: Packet, ts: float) -> None:
        st = flow.sides[side]
        if st.packets == 0:
            st.first_ts = ts
            st.first_data_ts = ts
            st.macs = pkt.macs
            if flow.proto == PROTO_UDP:
                flow.hist += "D" if side == flow.orig_side else "d"
        self._count(flow, st, pkt, ts, pkt.payload_len, remember=True)
        st.datagram_count += 1
        if st.datagram_count <= self._max_datagrams:
            if st.datagrams is None:
                st.datagrams = [_make_datagram(ts, pkt.payload)]
            else:
                st.datagrams.append(_make_datagram(ts, pkt.payload))
        if pkt.proc_name is not None or pkt.pid is not None:
            self._proc(flow, pkt)
        if pkt.iface != flow.iface:
            self._iface(flow, pkt.iface)

    # -- shared per-packet helpers ----------------------------------------------

    def _count(self, flow: _Flow, st: _Side, pkt: Packet, ts: float, plen: int, *, remember: bool) -> None:
        """Per-side counters every packet updates (the TCP fast path inlines its own copy for speed).

        `remember`: keep this packet's TTL/IP-ID as the side's last, for judging a later RST
        (a RST itself must not become its own baseline).
        """
        st.packets += 1
        st.ip_bytes += pkt.ip_len
        st.payload_bytes += plen
        st.last_ts = ts
        flow.last_ts = ts
        ttl = pkt.ttl
        if ttl == st.cur_ttl:
            st.cur_ttl_n += 1
        else:
            self._ttl_run(st, ttl)
        ip_id = pkt.ip_id
        if ip_id is not None:
            self._ip_id(st, ip_id)
        if remember:
            st.last_ttl = ttl
            st.last_ip_id = ip_id

    @staticmethod
    def _ttl_run(st: _Side, ttl: int) -> None:
        if st.cur_ttl_n:
            ttls = st.ttls
            if ttls is None:
                ttls = st.ttls = {}
            ttls[st.cur_ttl] = ttls.get(st.cur_ttl, 0) + st.cur_ttl_n
        st.cur_ttl = ttl
        st.cur_ttl_n = 1

    def _ip_id(self, st: _Side, ip_id: int) -> None:
        n = st.ipid_n
        if n < self._ip_id_samples:
            if st.ip_ids is None:
                st.ip_ids = [ip_id]
            else:
                st.ip_ids.append(ip_id)
        st.ipid_n = n + 1
        if ip_id == 0:
            st.ipid_zero += 1
        if n:
            step = (ip_id - st.ipid_prev) & 0xFFFF
            if step == 0:
                st.ipid_same += 1
            elif step < 1024:  # a counter, with other traffic interleaved
                st.ipid_inc += 1
        st.ipid_prev = ip_id

    def _proc(self, flow: _Flow, pkt: Packet) -> None:
        procs = flow.procs
        if procs is None:
            procs = flow.procs = {}
        key = (pkt.proc_name, pkt.pid)
        if key not in procs and len(procs) < self.config.max_processes:
            procs[key] = None

    @staticmethod
    def _iface(flow: _Flow, iface: int) -> None:
        if flow.ifaces is None:
            flow.ifaces = {flow.iface}
        flow.ifaces.add(iface)

    @staticmethod
    def _orig_side(flow: _Flow) -> int:
        session = flow.session
        return session.orig.side if session is not None else flow.orig_side

    # -- lifecycle ---------------------------------------------------------------

    def _new_flow(
        self,
        pkt: Packet,
        proto: int,
        src: bytes,
        sport: int,
        dst: bytes,
        dport: int,
        ts: float,
        out: list[FlowRecord],
    ) -> _Flow:
        if len(self._live) >= self.config.max_flows:
            self.weird["flow_table_full"] += 1
            self._evict_one(out)
        self._serial += 1
        flow = _Flow(self._serial, pkt, proto, src, sport, dst, dport)
        k0 = (src, sport, dst, dport, proto)
        if ts != self._dup_ts:
            self._dup_ts = ts
            self._dup_keys.clear()
        dup = self._dup_keys.get(k0, 0)
        self._dup_keys[k0] = dup + 1
        flow.dup = dup
        k1 = (dst, dport, src, sport, proto)
        keys = self._keys
        if k0 == k1:
            flow.keys = (k0,)
            keys[k0] = (flow, 0)
        else:
            flow.keys = (k0, k1)
            keys[k0] = (flow, 0)
            keys[k1] = (flow, 1)
        self._live[flow.serial] = flow
        cfg = self.config
        # TCP gets Zeek's UDP timeout until its handshake completes.
        idle = cfg.icmp_idle_timeout if proto != PROTO_TCP and proto != PROTO_UDP else cfg.udp_idle_timeout
        self._push(flow, ts + idle)
        return flow

    def _push(self, flow: _Flow, deadline: float) -> None:
        flow.pushed = deadline
        heap = self._heap
        heapq.heappush(heap, (deadline, flow.serial))
        if deadline < self._next_timer:
            self._next_timer = deadline
        if len(heap) > _STALE_FACTOR * len(self._live) + _STALE_SLACK:
            self._compact_timers()

    def _compact_timers(self) -> None:
        """Drop the stale timer entries: bounds the heap by the live flows, fires nothing.

        Each live flow has exactly one valid entry and (deadline, serial) pairs are
        distinct, so the heap's pop order of the valid entries, and with it every
        timer's outcome, is the same with or without the stale ones.
        """
        live = self._live
        heap = [e for e in self._heap if (f := live.get(e[1])) is not None and f.pushed == e[0]]
        heapq.heapify(heap)
        self._heap = heap
        self._next_timer = heap[0][0] if heap else _INF

    def _valid_timer(self, deadline: float, serial: int) -> _Flow | None:
        """The flow a heap entry stands for, or None if the entry is stale."""
        flow = self._live.get(serial)
        return flow if flow is not None and flow.pushed == deadline else None

    def _deadline(self, flow: _Flow) -> float:
        """The earliest time at which this flow may end, given its state now."""
        cfg = self.config
        session = flow.session
        if session is None:
            idle = cfg.udp_idle_timeout if flow.proto == PROTO_UDP else cfg.icmp_idle_timeout
            return flow.last_ts + idle
        idle = cfg.udp_idle_timeout if session.in_handshake() else cfg.tcp_idle_timeout
        best = session.last_time + idle
        t = session.next_timer(cfg.tcp_attempt_timeout, cfg.tcp_close_linger, cfg.tcp_partial_close_timeout)
        return t if t is not None and t < best else best

    def _end_reason(self, flow: _Flow, now: float) -> EndReason | None:
        """Fire the flow's timers due at `now`: why it ends, or None."""
        cfg = self.config
        session = flow.session
        if session is None:
            idle = cfg.udp_idle_timeout if flow.proto == PROTO_UDP else cfg.icmp_idle_timeout
            return EndReason.IDLE_TIMEOUT if flow.last_ts + idle <= now else None
        why = session.expire(now, cfg.tcp_attempt_timeout, cfg.tcp_close_linger, cfg.tcp_partial_close_timeout)
        if why is not None:
            return EndReason(why)
        idle = cfg.udp_idle_timeout if session.in_handshake() else cfg.tcp_idle_timeout
        if session.last_time + idle <= now:
            return EndReason.IDLE_TIMEOUT
        return None

    def _expire(self, now: float, out: list[FlowRecord]) -> None:
        while self._heap and self._heap[0][0] <= now:
            deadline, serial = heapq.heappop(self._heap)
            flow = self._valid_timer(deadline, serial)
            if flow is None:
                continue  # stale entry: a newer one exists, or the flow is gone
            flow.pushed = _INF
            why = self._end_reason(flow, now)
            if why is not None:
                self._finish(flow, why, out)
            else:
                nxt = self._deadline(flow)
                self._push(flow, nxt if nxt > now else now + 1e-6)  # may compact: re-read self._heap
        heap = self._heap
        self._next_timer = heap[0][0] if heap else _INF

    def _evict_one(self, out: list[FlowRecord]) -> None:
        """Emit the flow whose deadline is nearest (for one kind of flow: the least active)."""
        heap = self._heap
        while heap:
            deadline, serial = heap[0]
            flow = self._valid_timer(deadline, serial)
            if flow is None:
                heapq.heappop(heap)
                continue
            actual = self._deadline(flow)
            if actual > deadline:
                flow.pushed = actual
                heapq.heapreplace(heap, (actual, serial))
                continue
            heapq.heappop(heap)
            self._finish(flow, EndReason.EVICTED, out)
            break
        self._next_timer = heap[0][0] if heap else _INF

    def _finish(self, flow: _Flow, reason: EndReason, out: list[FlowRecord]) -> None:
        flow.alive = False
        keys = self._keys
        for k in flow.keys:
            entry = keys.get(k)
            if entry is not None and entry[0] is flow:
                del keys[k]
        del self._live[flow.serial]
        weird = flow.session.weird if flow.session is not None else flow.weird
        if weird:
            self.weird.update(weird)
        self.flows_emitted += 1
        out.append(self._record(flow, reason, weird))
        if flow.eps is not None:
            for ep in flow.eps:
                if ep.reasm.cut_by_budget:
                    self.weird["reassembly_budget_exhausted"] += 1
                ep.reasm.release()
        # Timer entries no longer hold flows, but the caller may: drop
        # everything heavy now.
        flow.session = None
        flow.eps = None
        flow.sides = _GONE
        flow.rsts = flow.icmp_errors = None
        flow.procs = None

    # -- records -----------------------------------------------------------------

    def _record(self, flow: _Flow, reason: EndReason, weird: collections.Counter[str] | None) -> FlowRecord:
        o = self._orig_side(flow)
        r = 1 - o
        session = flow.session
        addr_o, addr_r = flow.addrs[o], flow.addrs[r]
        port_o, port_r = flow.ports[o], flow.ports[r]
        proto = flow.proto
        cs, ss = flow.sides[o], flow.sides[r]
        if session is not None:
            history = session.history_str
            conn_state = session.conn_state()
            open_at_end = reason == EndReason.END_OF_CAPTURE and not session.closed
        else:
            history = flow.hist
            conn_state = udp_conn_state(cs.packets > 0, ss.packets > 0) if proto == PROTO_UDP else "OTH"
            open_at_end = reason == EndReason.END_OF_CAPTURE
        syn_ts = cs.syn_ts if cs.syn_ts is not None and cs.syn_ts != cs.synack_ts else None
        synack_ts = ss.synack_ts
        ack_ts = cs.hs_ack_ts
        rtt1 = None
        if synack_ts is not None and flow.syn_for_synack is not None and synack_ts >= flow.syn_for_synack:
            rtt1 = synack_ts - flow.syn_for_synack
        rtt2 = ack_ts - synack_ts if ack_ts is not None and synack_ts is not None else None
        eps = flow.eps
        return _make_record(
            uid=flow_uid(flow.dup, flow.first_ts, flow.addrs[0], flow.ports[0], flow.addrs[1], flow.ports[1], proto),
            community_id=community_id(addr_o, addr_r, proto, port_o, port_r),
            proto=proto,
            ip_version=flow.ipv,
            client_ip=ip_text_cached(addr_o),
            client_port=port_o,
            server_ip=ip_text_cached(addr_r),
            server_port=port_r,
            ts_start=flow.first_ts,
            ts_end=flow.last_ts,
            conn_state=conn_state,
            history=history,
            client=self._direction(flow, o),
            server=self._direction(flow, r),
            syn_ts=syn_ts,
            synack_ts=synack_ts,
            ack_ts=ack_ts,
            rtt_syn_synack=rtt1,
            rtt_synack_ack=rtt2,
            rsts=tuple(ev.record(o) for ev in flow.rsts) if flow.rsts else (),
            rst_total=flow.rst_total,
            icmp_errors=tuple(flow.icmp_errors) if flow.icmp_errors else (),
            icmp_error_total=flow.icmp_count,
            processes=tuple(flow.procs) if flow.procs else (),
            ifaces=(flow.iface,) if flow.ifaces is None else tuple(sorted(flow.ifaces)),
            vlan=flow.vlan,
            weirds=tuple(sorted(weird.items())) if weird else (),
            missed_bytes=eps[0].missed_bytes + eps[1].missed_bytes if eps is not None else 0,
            truncated_start=proto == PROTO_TCP and not cs.syn_count,
            open_at_end=open_at_end,
            end_reason=reason,
            flipped=flow.flipped,
            client_mac=_source_mac(cs.macs),
            server_mac=_source_mac(ss.macs),
        )

    @staticmethod
    def _direction(flow: _Flow, side: int) -> DirectionStats:
        st = flow.sides[side]
        if not st.packets and flow.eps is None:
            return _SILENT  # the usual other side of a multicast or unanswered UDP flow
        if flow.eps is not None:
            ep = flow.eps[side]
            state = _STATE_NAMES[ep.state]
            zeek_bytes = ep.size(flow.eps[1 - side].state)
            stream: StreamData | None = ep.reasm.result()
            rxmt, win0, missed = ep.rxmt_cnt, ep.win0_cnt, ep.missed_bytes
        else:
            state = "active" if st.packets else "inactive"
            zeek_bytes = st.payload_bytes
            stream = None
            rxmt = win0 = missed = 0
        return _make_direction(
            packets=st.packets,
            ip_bytes=st.ip_bytes,
            payload_bytes=st.payload_bytes,
            zeek_bytes=zeek_bytes,
            first_ts=st.first_ts,
            last_ts=st.last_ts,
            ttls=st.ttl_counts(),
            ip_ids=tuple(st.ip_ids) if st.ip_ids else (),
            ip_id_pattern=st.ip_id_pattern(),
            state=state,
            syn_ts=st.syn_ts,
            syn_count=st.syn_count,
            syn_window=st.syn_window,
            syn_ttl=st.syn_ttl,
            syn_options=st.syn_options,
            first_data_ts=st.first_data_ts,
            fin_ts=st.fin_ts,
            rst_count=st.rst_count,
            retransmissions=rxmt,
            zero_windows=win0,
            missed_bytes=missed,
            stream=stream,
            datagrams=tuple(st.datagrams) if st.datagrams else (),
            datagram_count=st.datagram_count,
            duplicates=st.duplicates,
        )
