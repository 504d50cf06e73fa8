"""Flows: bidirectional TCP/UDP/ICMP flows with Zeek's conn_state and history,
the first bytes of each TCP direction reassembled, and the evidence (RSTs,
ICMP errors, TTLs, IP-IDs, timings) the diagnosis needs. One frozen
`FlowRecord` per finished flow.
"""

from analyzer.flows.community_id import community_id, icmp_port_equivalents
from analyzer.flows.config import FlowConfig
from analyzer.flows.reassembly import StreamData, StreamReassembler
from analyzer.flows.records import (
    Datagram,
    DirectionStats,
    EndReason,
    FlowRecord,
    IcmpError,
    RstEvidence,
    Side,
)
from analyzer.flows.table import FlowTable
from analyzer.flows.tcp import EndpointState, conn_state, udp_conn_state

__all__ = [
    "Datagram",
    "DirectionStats",
    "EndReason",
    "EndpointState",
    "FlowConfig",
    "FlowRecord",
    "FlowTable",
    "IcmpError",
    "RstEvidence",
    "Side",
    "StreamData",
    "StreamReassembler",
    "community_id",
    "conn_state",
    "icmp_port_equivalents",
    "udp_conn_state",
]
