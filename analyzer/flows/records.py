"""The frozen per-flow record the flow table emits when a flow finishes.

Field names follow Zeek's conn.log where one exists (`uid`, `community_id`,
`conn_state`, `history`, `missed_bytes`); "client"/"server" are Zeek's
originator/responder after our direction rules (see `table.py`).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from enum import StrEnum

from analyzer.dataclass_tools import fast_constructor

__all__ = [
    "Datagram",
    "DirectionStats",
    "EndReason",
    "FlowRecord",
    "IcmpError",
    "RstEvidence",
    "Side",
    "StreamData",
    "fast_constructor",
]


@dataclass(frozen=True, slots=True)
class StreamData:
    """The frozen result for one direction."""

    data: bytes
    """The contiguous prefix of the stream (at most the cap)."""
    segments: tuple[tuple[int, float], ...]
    """(stream offset, capture time) of each piece that built `data`, in offset order:
    the time each byte range arrived, so TLS records can be timed."""
    stream_bytes: int
    """Bytes of the stream covered in order, including past the cap and across gaps
    (the reassembler's final offset)."""
    cut_by_cap: bool
    """`data` stops because the cap was reached."""
    cut_by_gap: bool
    """`data` stops at a hole the peer acknowledged past (packet loss or capture drop)."""
    gaps: int
    """Holes declared (each counts once, like Zeek's content_gap events)."""
    gap_bytes: int
    """Bytes in those holes."""
    overlap_conflicts: int
    """Retransmitted or overlapping bytes that differed from the first copy."""
    pending_bytes: int
    """Bytes seen beyond a hole that was never filled nor acknowledged (end of capture)."""
    segments_truncated: bool
    """The `segments` list hit its limit; later pieces are in `data` without a time."""
    cut_by_budget: bool = False
    """`data` stops because the table's reassembly budget was spent (FlowConfig.reassembly_budget)."""


class Side(StrEnum):
    CLIENT = "client"
    SERVER = "server"


class EndReason(StrEnum):
    """Why the table emitted the flow."""

    CLOSED = "closed"
    """A FIN exchange or a RST completed, and the linger time passed."""
    ATTEMPT_TIMEOUT = "attempt_timeout"
    """A SYN stayed unanswered for the attempt timeout (Zeek's connection_attempt)."""
    PARTIAL_CLOSE = "partial_close"
    """One side's first packet was a FIN and the other never closed (Zeek's partial close)."""
    IDLE_TIMEOUT = "idle_timeout"
    REUSED = "reused"
    """A new SYN on the same 5-tuple started a new connection (port reuse)."""
    EVICTED = "evicted"
    """The table was full."""
    END_OF_CAPTURE = "end_of_capture"
    TIME_JUMP = "time_jump"
    """The capture's timestamps went back by more than FlowConfig.max_time_jump."""


@dataclass(frozen=True, slots=True)
class RstEvidence:
    """One RST packet with what is needed to judge whether it was injected."""

    ts: float
    sender: Side
    ttl: int
    ip_id: int | None
    df: bool
    window: int
    seq: int
    ack: int
    flags: int
    payload_len: int
    rel_seq: int | None
    """Sequence number relative to the sender's initial one (None: nothing seen from it before)."""
    seq_at_next: bool | None
    """seq equals the sender's next sequence number as seen so far (None: nothing seen before)."""
    seq_at_peer_ack: bool | None
    """seq equals the last acknowledgement number the receiver sent, i.e. what it expects."""
    since_peer: float | None
    """Seconds since the last packet from the other side (an on-path filter answers fast)."""
    prev_ttl: int | None
    """TTL of the sender's last non-RST packet before this RST."""
    prev_ip_id: int | None
    """IP-ID of the sender's last non-RST packet before this RST."""
    packets_after: int
    """Non-RST packets the same side sent after this RST (Suricata's suspected_rst_inject
    when > 0: a genuine RST ends its sender's side)."""
    data_after: int
    """Payload bytes the same side sent after this RST (Zeek's data_after_reset)."""

    @property
    def suspected_injection(self) -> bool:
        return self.packets_after > 0


@dataclass(frozen=True, slots=True)
class IcmpError:
    """An ICMP/ICMPv6 error whose quoted header names this flow."""

    ts: float
    type: int
    code: int
    reporter: str
    """Address of the host that sent the error (a router, or the destination)."""
    ttl: int
    """TTL/hop limit of the ICMP packet itself."""
    about: Side
    """The side whose packet the error quotes (usually the client's packet to the server)."""
    mtu: int
    """Next-hop MTU of 'fragmentation needed' / 'packet too big', else 0."""
    quoted_seq: int
    """TCP sequence number in the quoted header (0 when absent)."""


@dataclass(frozen=True, slots=True)
class Datagram:
    ts: float
    payload: bytes


@dataclass(frozen=True, slots=True)
class DirectionStats:
    """What one side sent."""

    packets: int
    ip_bytes: int
    """Sum of IP total lengths (Zeek's orig_ip_bytes/resp_ip_bytes)."""
    payload_bytes: int
    """Transport payload bytes on the wire, retransmissions included."""
    zeek_bytes: int
    """Zeek's orig_bytes/resp_bytes: TCP by sequence numbers, UDP by datagram lengths."""
    first_ts: float | None
    last_ts: float | None
    ttls: tuple[tuple[int, int], ...]
    """(TTL or hop limit, packets) sorted by TTL."""
    ip_ids: tuple[int, ...]
    """The first IP-ID values (IPv4; IPv6 only for fragments)."""
    ip_id_pattern: str
    """Over all packets: "incrementing", "zero", "constant", "random", "single" or "none"."""
    state: str
    """TCP: Zeek's endpoint state name (ESTABLISHED, RESET...); UDP/ICMP: "active"/"inactive"."""
    syn_ts: float | None
    """First SYN (client) or SYN-ACK (server) this side sent."""
    syn_count: int
    """SYNs or SYN-ACKs this side sent (retransmissions included)."""
    syn_window: int | None
    syn_ttl: int | None
    syn_options: bytes
    """Raw TCP options of that first SYN/SYN-ACK (the JA4T/JA4TS material)."""
    first_data_ts: float | None
    fin_ts: float | None
    rst_count: int
    retransmissions: int
    """Zeek's retransmission count (data at or below what was already sent)."""
    zero_windows: int
    missed_bytes: int
    """Bytes of this side's stream in content gaps, as Zeek counts them."""
    stream: StreamData | None
    """TCP: the reassembled prefix of what this side sent."""
    datagrams: tuple[Datagram, ...]
    """UDP: the first datagrams this side sent."""
    datagram_count: int
    duplicates: int = 0
    """TCP: data segments seen twice at once, same IP ID: the capture's copies, counted in
    `retransmissions` as Zeek counts them."""

    @property
    def ttl_counts(self) -> collections.Counter[int]:
        return collections.Counter(dict(self.ttls))


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """One finished flow: Zeek's conn.log record plus the evidence our diagnosis needs."""

    uid: str
    community_id: str
    proto: int
    """IP protocol: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6 (others: no ports)."""
    ip_version: int
    client_ip: str
    client_port: int
    """ICMP: the type (Zeek's convention); see `icmp_port_equivalents`."""
    server_ip: str
    server_port: int
    """ICMP: the code or the counterpart type."""
    ts_start: float
    ts_end: float
    conn_state: str
    history: str
    client: DirectionStats
    server: DirectionStats
    syn_ts: float | None
    synack_ts: float | None
    ack_ts: float | None
    """The client's first ACK after the SYN-ACK (third packet of the handshake)."""
    rtt_syn_synack: float | None
    """From the SYN that was answered (the last one before the SYN-ACK) to the SYN-ACK."""
    rtt_synack_ack: float | None
    rsts: tuple[RstEvidence, ...]
    rst_total: int
    icmp_errors: tuple[IcmpError, ...]
    icmp_error_total: int
    processes: tuple[tuple[str | None, int | None], ...]
    """(process name, pid) pairs from PKTAP metadata, in order of first appearance."""
    ifaces: tuple[int, ...]
    vlan: tuple[int, ...]
    weirds: tuple[tuple[str, int], ...]
    missed_bytes: int
    truncated_start: bool
    """Midstream: no SYN from the client was seen."""
    open_at_end: bool
    """The capture ended while the flow was still open."""
    end_reason: EndReason
    flipped: bool
    """Roles were assigned against the first packet's direction ('^' in Zeek's history)."""
    client_mac: str | None = None
    """Ethernet source address ("aa:bb:cc:dd:ee:ff") of the client's first packet: the client's own
    where the capture is on its link. None when the link layer has none (raw IP, loopback)."""
    server_mac: str | None = None
    """The same for the server's first packet: the server's own when it is on the capture's link,
    else the last router's (the next hop). None also when the server sent nothing."""

    @property
    def duration(self) -> float:
        """Seconds from the first packet to the last; never negative (a connection kept across a
        backwards clock step ends "before" it began: its length is unknown, not below zero)."""
        return max(0.0, self.ts_end - self.ts_start)

    @property
    def proc_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for name, _ in self.processes if name))

    @property
    def orig_pkts(self) -> int:
        return self.client.packets

    @property
    def resp_pkts(self) -> int:
        return self.server.packets
