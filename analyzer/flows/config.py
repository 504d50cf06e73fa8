"""The one frozen object that holds every limit of the flow table.

Defaults follow Zeek where Zeek has a knob (its `init-bare.zeek` values are
named next to each field) so that conn_state/history come out as Zeek logs
them; the buffer caps are ours. Hitting a cap is a counted weird, never a
silent drop.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FlowConfig"]


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """Limits and timeouts of `FlowTable`. All times are in seconds of packet time."""

    reassembly_cap: int = 256 * 1024
    """Bytes of each TCP direction kept in order from the stream's start. 256 KiB
    holds a TLS 1.2 handshake with a long certificate chain several times over."""

    reassembly_budget: int = 64 * 1024 * 1024
    """Stream bytes held by all live flows together. Past it, each direction keeps only
    its first `reassembly_floor` bytes (`StreamData.cut_by_budget`; weird
    `reassembly_budget_exhausted`). Thousands of concurrent keep-alive connections
    would otherwise each hold a full cap. Out-of-order bytes waiting for a hole count
    too, and floors, pending bytes and (offset, time) segment entries together stop at
    twice the budget (`ReassemblyBudget.hard`), so a full table of flows stays bounded."""

    reassembly_floor: int = 32 * 1024
    """Bytes every direction may hold whatever the budget: a ClientHello, or a server
    hello with a long certificate chain."""

    max_segments: int = 4096
    """(stream offset, timestamp) entries kept per direction for timing records;
    beyond it the offsets list stops growing (weird `tcp_segment_list_full`)."""

    max_pending_segments: int = 256
    """Out-of-order segments buffered per direction while waiting for a hole to fill
    (weird `tcp_pending_full` when exceeded: the extra segment is dropped)."""

    max_udp_datagrams: int = 16
    """UDP datagrams kept per direction (DNS, NTP, QUIC Initials); later ones are counted only."""

    tcp_idle_timeout: float = 300.0
    """Zeek `tcp_inactivity_timeout`: an established TCP flow with no packet for this long ends."""

    udp_idle_timeout: float = 60.0
    """Zeek `udp_inactivity_timeout`; also what Zeek applies to TCP flows still in their handshake."""

    icmp_idle_timeout: float = 60.0
    """Zeek `icmp_inactivity_timeout`."""

    tcp_attempt_timeout: float = 5.0
    """Zeek `tcp_attempt_delay`: a SYN still unanswered this long after it was sent ends the
    attempt (a later packet on the same 5-tuple starts a new flow, as in Zeek)."""

    tcp_close_linger: float = 5.0
    """Zeek `tcp_close_delay`/`tcp_reset_delay`: a closed or reset flow stays in the table this
    long so late ACKs and RSTs land in it, then it is emitted."""

    tcp_partial_close_timeout: float = 3.0
    """Zeek `tcp_partial_close_delay`: a FIN as the very first packet of one side, with the
    other side still open, ends the flow after this long."""

    max_flows: int = 100_000
    """Flows held at once; when full, the flow nearest its own timeout is emitted early
    (weird `flow_table_full`). A live flow costs about 2 KB (UDP) or 4 KB (TCP) plus its
    stream bytes (bounded by `reassembly_budget`), so the table stays under ~0.5 GB."""

    max_time_jump: float = 60.0
    """Packets this much older than the newest one seen (three in a row: a single corrupt
    timestamp is ignored) mean the capture went back in time (files merged out of order,
    a clock step): every flow is emitted and the table starts afresh (weird
    `time_went_backwards`), instead of keeping flows whose timers can no longer fire.
    Smaller jitter (multi-interface pcapng) is absorbed."""

    ip_id_samples: int = 8
    """IP-ID values kept per direction (the pattern is judged over all packets)."""

    max_rsts: int = 32
    """RST packets kept with full evidence per flow (all are counted)."""

    max_icmp_errors: int = 16
    """ICMP errors kept per flow (all are counted)."""

    max_history: int = 256
    """Letters kept in `history` (Zeek has no cap; a RST flood with changing sequence
    numbers would otherwise grow it without bound). Weird `history_truncated`."""

    max_processes: int = 8
    """Distinct (process name, pid) pairs kept per flow from PKTAP metadata."""

    def __post_init__(self) -> None:
        for name in (
            "reassembly_cap",
            "reassembly_budget",
            "reassembly_floor",
            "max_segments",
            "max_pending_segments",
            "max_udp_datagrams",
            "ip_id_samples",
            "max_rsts",
            "max_icmp_errors",
            "max_processes",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"FlowConfig.{name} must be >= 0")
        if self.max_flows < 1:
            raise ValueError("FlowConfig.max_flows must be >= 1")
        if self.max_history < 1:
            raise ValueError("FlowConfig.max_history must be >= 1")
        for name in (
            "tcp_idle_timeout",
            "udp_idle_timeout",
            "icmp_idle_timeout",
            "tcp_attempt_timeout",
            "tcp_close_linger",
            "tcp_partial_close_timeout",
            "max_time_jump",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"FlowConfig.{name} must be > 0")
