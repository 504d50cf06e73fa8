"""Zeek's TCP endpoint state machine, history letters and conn_state, ported.

Sources (zeek/zeek): src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc and
TCP.cc (per-packet processing, `UpdateStateMachine`, `IsReuse`,
`ConnectionClosed`, timers), src/analyzer/protocol/tcp/TCP_Endpoint.{h,cc}
(`Size`, history masks, scaled history), src/Conn.{h,cc} (`CheckHistory`,
`ScaledHistoryEntry`, `FlipRoles` adds '^'), TCP_Reassembler.cc (gaps from
ACKs) and scripts/base/protocols/conn/main.zeek (`conn_state`). Function and
variable names follow Zeek's so the two can be read side by side.

What we do not port, and why it does not change conn_state/history on real
traffic: checksum validation (packets come checksum-offloaded from the
capturing host; the decoder may mark bad ones, which we then count as 'C'
and drop, as Zeek does), window-scale recision weirds, the close deferral
while reassembled data is still pending delivery to an application analyzer
(Zeek's `DataPending`), and the periodic `ExpireTimer`, whose removals are
all covered by the close/reset/attempt/inactivity timers below.

One departure from Zeek, on purpose: when a side's SYN-ACKs carry different ISNs
(retransmitted SYNs answered by different backends), the peer's first ACK picks
the ISN, and a later SYN-ACK with another ISN no longer re-bases the side
(Suricata's SYN/ACK queue; Wireshark agrees). Zeek re-bases and loses every later
byte of that side (corpus: sv-tfo-icloud).

This module is pure: no clock, no I/O; times are packet timestamps passed in.
"""

from __future__ import annotations

import collections
import re
from enum import IntEnum

from analyzer.flows.reassembly import StreamReassembler

__all__ = [
    "ACK",
    "FIN",
    "PSH",
    "RST",
    "SYN",
    "URG",
    "EndpointState",
    "TCPEndpoint",
    "TCPSession",
    "conn_state",
    "seq_delta",
    "udp_conn_state",
]

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20


class EndpointState(IntEnum):
    """Zeek's TCP_ENDPOINT_* (the numbers Zeek scripts see as TCP_INACTIVE...)."""

    INACTIVE = 0
    SYN_SENT = 1
    SYN_ACK_SENT = 2
    PARTIAL = 3
    ESTABLISHED = 4
    CLOSED = 5
    RESET = 6


# Plain ints on the hot path (an IntEnum attribute lookup costs more).
INACTIVE = 0
SYN_SENT = 1
SYN_ACK_SENT = 2
PARTIAL = 3
ESTABLISHED = 4
CLOSED = 5
RESET = 6

# TCP_Endpoint::HistoryMasks; the responder's are shifted left by 16.
HIST_SYN_PKT = 0x1
HIST_FIN_PKT = 0x2
HIST_RST_PKT = 0x4
HIST_FIN_RST_PKT = 0x8
HIST_DATA_PKT = 0x10
HIST_ACK_PKT = 0x20
HIST_MULTI_FLAG_PKT = 0x40
HIST_UNKNOWN_PKT = 0x400  # connection-level ('X': analysis partial), never shifted

TOO_LARGE_SEQ_DELTA = 1048576
_M32 = 0xFFFFFFFF
_ORIG = 1
_RESP = 2
_HANDSHAKE = (INACTIVE, SYN_SENT, SYN_ACK_SENT)


def seq_delta(a: int, b: int) -> int:
    """Signed 32-bit difference a - b (Zeek's seq_delta)."""
    d = (a - b) & _M32
    return d - 0x100000000 if d & 0x80000000 else d


_MAX_ALT_ISNS = 4  # SYN-ACK ISNs remembered per side (Suricata's stream.max-synack-queued is 5)


class TCPEndpoint:
    """One side of a TCP connection (Zeek's TCP_Endpoint), plus its reassembler."""

    __slots__ = (
        "ack_seq",
        "ack_wraps",
        "alt_isns",
        "chk_cnt",
        "chk_thresh",
        "did_close",
        "fin_cnt",
        "fin_seq",
        "gap_cnt",
        "gap_thresh",
        "hist_last_fin",
        "hist_last_rst",
        "hist_last_syn",
        "is_orig",
        "last_seq",
        "last_time",
        "missed_bytes",
        "prev_state",
        "reasm",
        "rst_cnt",
        "rxmt_cnt",
        "rxmt_thresh",
        "seq_wraps",
        "side",
        "start_seq",
        "start_time",
        "state",
        "win0_cnt",
        "win0_thresh",
    )

    def __init__(self, is_orig: bool, reasm: StreamReassembler, side: int = 0) -> None:
        self.side = side
        """Which address of the flow this endpoint is (0: the first packet's source)."""
        self.state = INACTIVE
        self.prev_state = INACTIVE
        self.is_orig = is_orig
        self.start_seq = 0
        self.last_seq = 0
        self.ack_seq = 0
        self.seq_wraps = 0
        self.ack_wraps = 0
        self.fin_seq = 0
        self.fin_cnt = 0
        self.rst_cnt = 0
        self.did_close = False
        self.hist_last_syn = 0
        self.hist_last_fin = 0
        self.hist_last_rst = 0
        self.rxmt_cnt = 0
        self.rxmt_thresh = 1
        self.win0_cnt = 0
        self.win0_thresh = 1
        self.gap_cnt = 0
        self.gap_thresh = 1
        self.chk_cnt = 0
        self.chk_thresh = 1
        self.start_time = 0.0
        self.last_time = 0.0
        self.missed_bytes = 0
        """Bytes in content gaps Zeek would report for this side (conn.log missed_bytes)."""
        self.reasm = reasm
        self.alt_isns: tuple[int, ...] = ()
        """Other ISNs this side's SYN-ACKs carried (Suricata's SYN/ACK queue): the peer's ACK picks one."""

    # Zeek's sequence-space helpers -------------------------------------------------

    def set_state(self, new_state: int) -> None:
        if new_state != self.state:
            self.prev_state = self.state
            self.state = new_state

    def init_seqs(self, start: int, last: int) -> None:
        self.start_seq = start
        self.ack_seq = start
        self.last_seq = last

    def remember_isn(self, isn: int) -> None:
        if isn not in self.alt_isns and len(self.alt_isns) < _MAX_ALT_ISNS:
            self.alt_isns += (isn,)

    def isn_acked(self) -> bool:
        """The peer has acknowledged this side's SYN (its ISN is the real one)."""
        return self.ack_wraps > 0 or seq_delta(self.ack_seq, self.start_seq & _M32) > 0

    def update_last_seq(self, seq: int) -> None:
        if seq < self.last_seq:
            self.seq_wraps += 1
        self.last_seq = seq

    def update_ack_seq(self, seq: int) -> None:
        if seq < self.ack_seq:
            self.ack_wraps += 1
        self.ack_seq = seq

    def no_data_acked(self) -> bool:
        ack = (self.ack_wraps << 32) + self.ack_seq
        return ack == self.start_seq or ack == self.start_seq + 1

    def size(self, peer_state: int) -> int:
        """Payload bytes by sequence numbers (Zeek's Size(): conn.log orig_bytes/resp_bytes).

        `peer_state` is the other endpoint's state. (Endpoints hold no reference to
        their peer: no reference cycle, so a finished flow is freed at once.)
        """
        if self.prev_state == SYN_SENT and self.state == RESET and peer_state == INACTIVE and not self.no_data_acked():
            # A half-open connection discovered and aborted: its seqs mean nothing.
            return 0
        last64 = (self.seq_wraps << 32) + self.last_seq
        ack64 = (self.ack_wraps << 32) + self.ack_seq
        size = (max(ack64, last64)) - self.start_seq
        size &= 0xFFFFFFFFFFFFFFFF  # uint64 arithmetic, as in Zeek
        if size != 0:
            size -= 1  # the SYN octet
        if self.fin_cnt > 0 and size != 0:
            size -= 1  # the FIN octet
        return size

    def relative_seq(self, cur: int, last: int, wraps: int) -> tuple[int, bool]:
        """(relative seq, underflow) as Zeek's get_relative_seq."""
        delta = seq_delta(cur, last)
        if delta < 0:
            if wraps and cur > last:
                wraps -= 1
        elif delta > 0 and cur < last:
            wraps += 1
        if wraps == 0:
            delta = seq_delta(cur, self.start_seq & _M32)
            return delta, delta < 0
        return (wraps << 32) + cur - self.start_seq, False


class TCPSession:
    """Both endpoints, the history string and the timers of one TCP connection."""

    __slots__ = (
        "attempt_at",
        "delete_at",
        "first_packet_seen",
        "hist_seen",
        "history",
        "is_active",
        "is_partial",
        "last_time",
        "max_history",
        "orig",
        "partial_close_at",
        "resp",
        "weird",
    )

    def __init__(self, orig: TCPEndpoint, resp: TCPEndpoint, max_history: int = 256) -> None:
        orig.is_orig = True
        resp.is_orig = False
        self.orig = orig
        self.resp = resp
        self.weird: collections.Counter[str] | None = None
        """This connection's weirds (made on the first one)."""
        self.max_history = max_history
        self.history: list[str] = []
        self.hist_seen = 0
        self.is_partial = False
        self.first_packet_seen = 0
        self.is_active = True
        self.last_time = 0.0
        self.delete_at: float | None = None
        """The connection ends at this time whatever happens (close complete or reset)."""
        self.attempt_at: float | None = None
        """Zeek's AttemptTimer: at this time, a still unanswered SYN ends the attempt."""
        self.partial_close_at: float | None = None
        """Zeek's PartialCloseTimer."""

    def _weird(self, name: str) -> None:
        weird = self.weird
        if weird is None:
            weird = self.weird = collections.Counter()
        weird[name] += 1

    # history -----------------------------------------------------------------------

    def add_history(self, code: str) -> None:
        history = self.history
        if len(history) < self.max_history - 1:
            history.append(code)
        else:
            self.limit_reached("history_truncated")

    def limit_reached(self, weird: str) -> None:
        """One of our limits cut the analysis short: a weird, and 'X' once (Zeek's
        LimitReachedWeird adds it through CheckHistory(HIST_UNKNOWN_PKT, 'X'))."""
        self._weird(weird)
        if not self.hist_seen & HIST_UNKNOWN_PKT:
            self.hist_seen |= HIST_UNKNOWN_PKT
            self.history.append("X")

    def check_history(self, ep: TCPEndpoint, mask: int, code: str) -> bool:
        """Zeek's CheckHistory: True if already seen; otherwise records it and returns False."""
        if not ep.is_orig:
            mask <<= 16
            code = code.lower()
        if self.hist_seen & mask == 0:
            self.hist_seen |= mask
            self.add_history(code)
            return False
        return True

    def _ep_history(self, ep: TCPEndpoint, code: str) -> None:
        self.add_history(code if ep.is_orig else code.lower())

    def _scaled(self, ep: TCPEndpoint, code: str, counter: str, thresh: str) -> None:
        """Zeek's ScaledHistoryEntry: the letter at the 1st, 10th, 100th... event."""
        n = getattr(ep, counter) + 1
        t = getattr(ep, thresh)
        if n == t:
            self._ep_history(ep, code)
            if t * 10 > _M32:
                n = 0
            else:
                setattr(ep, thresh, t * 10)
        setattr(ep, counter, n)

    @property
    def history_str(self) -> str:
        return "".join(self.history)

    # roles -------------------------------------------------------------------------

    def flip_roles(self) -> None:
        """Swap originator and responder (Zeek's FlipRoles; history gets '^')."""
        self.orig, self.resp = self.resp, self.orig
        self.orig.is_orig = True
        self.resp.is_orig = False
        fps = self.first_packet_seen
        self.first_packet_seen = (_RESP if fps & _ORIG else 0) | (_ORIG if fps & _RESP else 0)
        self.is_partial = False
        self.add_history("^")

    def is_reuse(self, flags: int, seq: int, ts: float, linger: float) -> bool:
        """Zeek's IsReuse for a packet on this 5-tuple: does it start a new connection?"""
        if not flags & SYN:
            return False
        conn_orig = self.orig
        if flags & ACK:
            if self.orig.state != INACTIVE:
                return False  # not a half connection
            conn_orig = self.resp
        orig, resp = self.orig, self.resp
        if not (orig.did_close or resp.did_close):
            if seq == conn_orig.start_seq & _M32:
                return False
            if (
                not flags & ACK
                and conn_orig.state == SYN_ACK_SENT
                and resp.state == INACTIVE
                and seq == resp.start_seq & _M32
            ):
                return False  # SYN and SYN-ACK seen reversed: the packet flips roles
            self._weird("SYN_seq_jump" if conn_orig.state == SYN_SENT else "active_connection_reuse")
        elif (
            ((orig.state != INACTIVE and not orig.did_close) or (resp.state != INACTIVE and not resp.did_close))
            and orig.state != RESET
            and resp.state != RESET
        ):
            self._weird("active_connection_reuse")
        elif ts - self.last_time < linger and orig.state != RESET and resp.state != RESET:
            self._weird("premature_connection_reuse")
        return True

    # per packet --------------------------------------------------------------------

    def packet(
        self,
        ep: TCPEndpoint,
        flags: int,
        seq: int,
        ack: int,
        plen: int,
        win: int,
        ts: float,
        payload: bytes,
    ) -> None:
        """Process one segment sent by `ep` (Zeek's TCPAnalyzer::DeliverPacket).

        `plen` is the TCP payload length on the wire; `payload` the captured
        part of it (shorter when the snaplen cut the packet).
        """
        peer = self.resp if ep is self.orig else self.orig
        is_orig = ep.is_orig
        syn = flags & SYN
        fin = flags & FIN
        rst = flags & RST
        # SetPartialStatus
        if is_orig:
            if not self.first_packet_seen & _ORIG:
                self.is_partial = not syn or bool(flags & ACK)
        elif not self.first_packet_seen & _RESP and not self.is_partial:
            self.is_partial = not syn

        seg_len = plen
        if syn:
            seg_len += 1
        if fin:
            seg_len += 1
        if rst:
            seg_len -= plen
        seq_one_past = (seq + seg_len) & _M32

        stale_synack = self._init_endpoint(ep, flags, seq, seq_one_past, ts)
        if stale_synack:
            # Numbered in its own ISN's space: relative seq 0, like a repeated SYN-ACK; its data (if any) is not ours.
            rel_seq, seq_underflow = 0, True
        else:
            rel_seq, seq_underflow = ep.relative_seq(seq, ep.last_seq, ep.seq_wraps)
            if seq_underflow and not rst:
                self._weird("TCP_seq_underflow_or_misorder")

        self._update_history(flags, ep, rel_seq, plen)
        # update_window: only the zero-window history letter is kept.
        if win == 0 and not rst and peer.state != CLOSED and ep.state != RESET:
            self._scaled(ep, "W", "win0_cnt", "win0_thresh")

        if not self.orig.did_close or not self.resp.did_close:
            self.last_time = ts

        if syn:
            if rst:
                self._weird("TCP_christmas")
            if flags & URG:
                self._weird("baroque_SYN")
            if plen > 0:
                self._weird("SYN_with_data")
        if fin:
            ep.fin_cnt += 1
            ep.fin_seq = rel_seq + seg_len
        if rst:
            ep.rst_cnt += 1

        rel_ack = 0
        if flags & ACK:
            if peer.alt_isns and not syn and not rst:
                self._pick_isn(peer, ack)
            if peer.state == INACTIVE:
                rel_ack = 1
                self._init_peer(peer, ep, flags, ack)
            else:
                rel_ack, ack_underflow = peer.relative_seq(ack, peer.ack_seq, peer.ack_wraps)
                if ack_underflow:
                    rel_ack = 0
                    self._weird("TCP_ack_underflow_or_misorder")
                elif not rst:
                    delta_ack = seq_delta(ack, peer.ack_seq)
                    if not (ack == 0 and delta_ack > TOO_LARGE_SEQ_DELTA) and delta_ack > 0:
                        peer.update_ack_seq(ack)

        # A stale SYN-ACK's numbers are another ISN's: they must not move this side's last seq.
        delta_last = 0 if stale_synack else self._update_last_seq(ep, seq_one_past, flags, plen)
        ep.last_time = ts

        do_close = self._update_state_machine(ts, ep, peer, seq, ack, plen, delta_last, flags)

        if flags & ACK:
            self._ack_received(peer, ep, rel_ack)

        if not is_orig:
            if not self.first_packet_seen & _RESP:
                self.first_packet_seen |= _RESP
        elif not self.first_packet_seen & _ORIG:
            self.first_packet_seen |= _ORIG

        if plen > 0 and not rst and not seq_underflow:
            if len(payload) < plen:
                self._weird("truncated_tcp_payload")
            else:
                off = rel_seq if syn else rel_seq - 1
                if off >= 0:
                    reasm = ep.reasm
                    dropped = reasm.pending_dropped
                    reasm.data(off, payload if len(payload) == plen else payload[:plen], ts)
                    if reasm.pending_dropped != dropped:
                        self.limit_reached("tcp_pending_full")

        if do_close:
            self._connection_closed(ep, peer)

    def bad_checksum(self, ep: TCPEndpoint) -> None:
        """A segment with a bad checksum: Zeek records 'C' and drops it."""
        self._weird("bad_TCP_checksum")
        self._scaled(ep, "C", "chk_cnt", "chk_thresh")

    # Zeek's static helpers, in TCP.cc order ------------------------------------------

    def _init_endpoint(self, ep: TCPEndpoint, flags: int, first_seg_seq: int, last_seq: int, t: float) -> bool:
        """Zeek's Init_Endpoint; True for a stale SYN-ACK, whose numbers are then ignored."""
        state = ep.state
        if flags & SYN and ep.alt_isns and state != ESTABLISHED and state != PARTIAL and ep.isn_acked() \
                and first_seg_seq in ep.alt_isns:
            return True  # another copy of a SYN-ACK already known to be stale (see below), e.g. after the close
        if state == INACTIVE:
            if flags & SYN:
                ep.start_seq = first_seg_seq
                ep.ack_seq = first_seg_seq
            else:
                # Partial connection: number as though a SYN had been seen.
                ep.start_seq = (first_seg_seq - 1) & _M32
                ep.ack_seq = (first_seg_seq - 1) & _M32
                last_seq = first_seg_seq
            ep.last_seq = last_seq
            ep.start_time = t
        elif state == SYN_SENT or state == SYN_ACK_SENT:
            if flags & SYN and first_seg_seq != ep.start_seq & _M32:
                self._weird("SYN_seq_jump")
                if flags & ACK:
                    ep.remember_isn(ep.start_seq & _M32)
                ep.init_seqs(first_seg_seq, last_seq)
        elif state == ESTABLISHED or state == PARTIAL:
            if flags & SYN:
                if ep.size(self.resp.state if ep is self.orig else self.orig.state) > 0:
                    self._weird("SYN_inside_connection")
                if first_seg_seq != ep.start_seq & _M32:
                    self._weird("SYN_seq_jump")
                    if flags & ACK and ep.isn_acked():
                        # Zeek re-bases on any SYN here. But a SYN-ACK with another ISN
                        # after the peer acknowledged ours is a stale copy (a load
                        # balancer's other backend answering a retransmitted SYN):
                        # re-basing would lose every later byte of this side.
                        # Suricata (SYN/ACK queue) and Wireshark keep the acked ISN.
                        ep.remember_isn(first_seg_seq)
                        return True
                    if flags & ACK:
                        ep.remember_isn(ep.start_seq & _M32)  # the peer's ACK may still pick it
                ep.init_seqs(first_seg_seq, last_seq)
        elif state == RESET and flags & SYN and ep.prev_state == INACTIVE:
            # Seqs came from a RST (maybe injected); the SYN is more trustworthy.
            ep.init_seqs(first_seg_seq, last_seq)
        return False

    def _update_history(self, flags: int, ep: TCPEndpoint, rel_seq: int, plen: int) -> None:
        syn = flags & SYN
        fin = flags & FIN
        rst = flags & RST
        bits_set = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
        if bits_set > 1:
            if fin and rst:
                self.check_history(ep, HIST_FIN_RST_PKT, "I")
            else:
                self.check_history(ep, HIST_MULTI_FLAG_PKT, "Q")
        elif bits_set == 1:
            if syn:
                code = "H" if flags & ACK else "S"
                if self.check_history(ep, HIST_SYN_PKT, code) and rel_seq != ep.hist_last_syn:
                    self._ep_history(ep, code)
                ep.hist_last_syn = rel_seq
            if fin:
                # A FIN's sequence number counts after its data.
                if self.check_history(ep, HIST_FIN_PKT, "F") and rel_seq + plen != ep.hist_last_fin:
                    self._ep_history(ep, "F")
                ep.hist_last_fin = rel_seq + plen
            if rst:
                if self.check_history(ep, HIST_RST_PKT, "R") and rel_seq != ep.hist_last_rst:
                    self._ep_history(ep, "R")
                ep.hist_last_rst = rel_seq
        elif plen:
            self.check_history(ep, HIST_DATA_PKT, "D")
        elif flags & ACK:
            self.check_history(ep, HIST_ACK_PKT, "A")

    def _pick_isn(self, peer: TCPEndpoint, ack: int) -> None:
        """The first ACK of the peer's SYN-ACK chooses among the ISNs its SYN-ACKs carried.

        Several SYN-ACKs with different ISNs (retransmitted SYNs answered by
        different backends) leave `peer` on the latest; this ACK says which
        one the connection uses.
        """
        if peer.isn_acked() or ack == (peer.start_seq + 1) & _M32:
            return
        if peer.reasm.next_off or peer.reasm.pending_bytes:
            return  # its data is already numbered from the latest ISN: re-basing would splice two streams
        for isn in peer.alt_isns:
            if ack == (isn + 1) & _M32:
                old = peer.start_seq & _M32
                peer.alt_isns = tuple(i for i in peer.alt_isns if i != isn)
                peer.remember_isn(old)
                peer.init_seqs(isn, ack)
                peer.hist_last_syn = 0
                return

    def _init_peer(self, peer: TCPEndpoint, ep: TCPEndpoint, flags: int, ack_seq: int) -> None:
        if not flags & (SYN | FIN | RST) and ep.state in (SYN_SENT, SYN_ACK_SENT, ESTABLISHED) and not self.weird:
            # We sent a SYN that has not roused the other side, yet we ack its data
            # (Zeek reports it only if the connection had no weird yet).
            self._weird("possible_split_routing")
        start = (ack_seq - 1) & _M32
        peer.start_seq = start
        peer.ack_seq = start
        peer.last_seq = start

    def _update_last_seq(self, ep: TCPEndpoint, last_seq: int, flags: int, plen: int) -> int:
        delta_last = seq_delta(last_seq, ep.last_seq)
        if flags & (SYN | RST) and (delta_last > TOO_LARGE_SEQ_DELTA or delta_last < -TOO_LARGE_SEQ_DELTA):
            pass  # do not trust wild SYN/RST sequence numbers
        elif flags & FIN and ep.last_seq == (ep.start_seq + 1) & _M32:
            ep.update_last_seq(last_seq)  # only SYN and FIN seen (> 2 GB connections)
        elif ep.state == RESET:
            pass  # do not trust anything after a RST
        elif delta_last > 0:
            ep.update_last_seq(last_seq)
        elif plen > 0:
            self._scaled(ep, "T", "rxmt_cnt", "rxmt_thresh")
        return delta_last

    def _ack_received(self, ep: TCPEndpoint, peer: TCPEndpoint, rel_ack: int) -> None:
        """`ep`'s data is acknowledged up to relative seq `rel_ack` (TCP_Reassembler::AckReceived)."""
        if ep.fin_cnt > 0 and rel_ack >= ep.fin_seq:
            rel_ack = ep.fin_seq - 1
        reasm = ep.reasm
        up_to = rel_ack - 1  # stream offset
        if up_to <= reasm.next_off:
            return
        if rel_ack <= 2 and self.is_partial:
            # Faked-up partial ISN: a first ACK complaining about octet 1 or 2 means nothing.
            return
        before = reasm.gap_bytes
        holes = reasm.ack(up_to)
        if holes and _clean(ep) and _clean(peer):
            for _ in range(holes):
                self._scaled(ep, "G", "gap_cnt", "gap_thresh")
            ep.missed_bytes += reasm.gap_bytes - before

    # UpdateStateMachine ------------------------------------------------------------

    def _update_state_machine(
        self,
        t: float,
        ep: TCPEndpoint,
        peer: TCPEndpoint,
        base_seq: int,
        ack_seq: int,
        plen: int,
        delta_last: int,
        flags: int,
    ) -> bool:
        state = ep.state
        if state == INACTIVE:
            return self._inactive(t, ep, peer, base_seq, ack_seq, plen, flags)
        if state == SYN_SENT or state == SYN_ACK_SENT:
            return self._syn_sent(ep, peer, plen, flags)
        if state == ESTABLISHED or state == PARTIAL:
            return self._established(ep, peer, flags)
        if state == CLOSED:
            return self._closed(t, ep, peer, delta_last, flags)
        # RESET
        if flags & SYN:
            self._weird("SYN_after_reset")
        if flags & FIN:
            self._weird("FIN_after_reset")
        if plen > 0 and not flags & RST:
            self._weird("data_after_reset")
        return False

    def _inactive(
        self,
        t: float,
        ep: TCPEndpoint,
        peer: TCPEndpoint,
        base_seq: int,
        ack_seq: int,
        plen: int,
        flags: int,
    ) -> bool:
        do_close = False
        is_orig = ep.is_orig  # as Zeek, keep the value from before any flip below
        if flags & SYN:
            if is_orig:
                if flags & ACK:
                    self._weird("connection_originator_SYN_ack")
                    ep.set_state(SYN_ACK_SENT)
                else:
                    ep.set_state(SYN_SENT)
                self.attempt_at = t  # the table adds the attempt delay
            else:
                if flags & ACK:
                    if peer.state not in (INACTIVE, PARTIAL) and not _seq_between(
                        ack_seq, peer.start_seq & _M32, peer.last_seq
                    ):
                        self._weird("bad_SYN_ack")
                elif peer.state == SYN_ACK_SENT and base_seq == ep.start_seq & _M32:
                    # SYN and SYN-ACK seen reversed: flip and establish.
                    self.is_partial = False
                    self.flip_roles()
                    peer.set_state(ESTABLISHED)
                    self.first_packet_seen |= _ORIG
                else:
                    self._weird("simultaneous_open")
                if peer.state == SYN_SENT:
                    peer.set_state(ESTABLISHED)
                elif peer.state == INACTIVE:
                    self._weird("unsolicited_SYN_response")
                ep.set_state(ESTABLISHED)
        if flags & FIN:
            ep.set_state(CLOSED)
            do_close = True
            if peer.state != PARTIAL and not flags & SYN:
                self._weird("spontaneous_FIN")
        if flags & RST:
            ep.set_state(RESET)
            is_reject = False
            if is_orig:
                # Our peer is established: we saw a SYN-ACK but no SYN (a reverse scan).
                is_reject = peer.state == ESTABLISHED
            else:
                is_reject = peer.state in (SYN_SENT, SYN_ACK_SENT)
            do_close = True
            if not is_reject and peer.state == INACTIVE:
                self._weird("spontaneous_RST")
        if ep.state == INACTIVE:
            if not is_orig and plen == 0 and self.orig.state == SYN_SENT:
                pass  # some stacks ack a SYN before answering it
            elif flags & ACK and peer.state == ESTABLISHED:
                # SYN-ACK seen, SYN missed, now a pure ACK: establish.
                ep.set_state(ESTABLISHED)
                self.is_partial = False
                self.first_packet_seen |= _ORIG if is_orig else _RESP
            else:
                ep.set_state(PARTIAL)
        return do_close

    def _syn_sent(self, ep: TCPEndpoint, peer: TCPEndpoint, plen: int, flags: int) -> bool:
        do_close = False
        if flags & SYN:
            if ep.is_orig:
                if flags & ACK and not flags & (FIN | RST) and ep.state != SYN_ACK_SENT:
                    self._weird("repeated_SYN_with_ack")
            elif not flags & ACK and ep.state != SYN_SENT:
                self._weird("repeated_SYN_reply_wo_ack")
        if flags & FIN:
            if peer.state in (INACTIVE, SYN_SENT):
                self._weird("inappropriate_FIN")
            ep.set_state(CLOSED)
            do_close = True
        if flags & RST:
            ep.set_state(RESET)
            self.is_active = False  # ConnectionReset
            do_close = True
        elif plen > 0:
            self._weird("data_before_established")
        return do_close

    def _established(self, ep: TCPEndpoint, peer: TCPEndpoint, flags: int) -> bool:
        do_close = False
        if flags & SYN and ep.state == PARTIAL and peer.state == INACTIVE and not flags & ACK:
            self._weird("SYN_after_partial")
            ep.set_state(SYN_SENT)
        if flags & FIN and not flags & RST:
            ep.set_state(CLOSED)
            if peer.state == RESET and peer.prev_state == CLOSED:
                # The peer sent FIN then RST: that was a normal close.
                peer.set_state(CLOSED)
            do_close = True
        if flags & RST:
            ep.set_state(RESET)
            do_close = True
            if peer.state != RESET or peer.prev_state != ESTABLISHED:
                self.is_active = False  # ConnectionReset
        return do_close

    def _closed(self, t: float, ep: TCPEndpoint, peer: TCPEndpoint, delta_last: int, flags: int) -> bool:
        do_close = False
        if flags & SYN:
            self._weird("SYN_after_close")
        if flags & FIN and delta_last > 0:
            self._weird("FIN_advanced_last_seq")
        # A RST after our FIN, unless the peer also closed (FIN exchange done).
        if flags & RST and peer.state != CLOSED:
            ep.set_state(RESET)
            if not ep.did_close:
                do_close = True
            # Zeek's ResetTimer (tcp_reset_delay): the table adds the delay.
            if self.is_active and self.delete_at is None:
                self.delete_at = t
        return do_close

    def _connection_closed(self, ep: TCPEndpoint, peer: TCPEndpoint) -> None:
        if ep.did_close:
            return
        ep.did_close = True
        close_complete = ep.state == RESET or peer.did_close or peer.state == INACTIVE
        if close_complete:
            # CancelTimers(), then delete at LastTime + tcp_close_delay.
            self.attempt_at = None
            self.partial_close_at = None
            self.delete_at = self.last_time
        elif ep.prev_state == INACTIVE:
            # The first thing this side did was close.
            self.partial_close_at = self.last_time

    # timers --------------------------------------------------------------------------

    def expire(
        self,
        now: float,
        attempt: float,
        linger: float,
        partial_close: float,
    ) -> str | None:
        """Fire the timers due at `now`; the reason the connection ends, or None."""
        if self.delete_at is not None and now >= self.delete_at + linger:
            return "closed"
        if self.attempt_at is not None and now >= self.attempt_at + attempt:
            self.attempt_at = None
            if self.is_active and self.orig.state in (SYN_SENT, SYN_ACK_SENT) and self.resp.state == INACTIVE:
                return "attempt_timeout"
        if self.partial_close_at is not None and now >= self.partial_close_at + partial_close:
            self.partial_close_at = None
            orig, resp = self.orig, self.resp
            if (
                self.is_active
                and orig.state != INACTIVE
                and resp.state != INACTIVE
                and not (orig.did_close and resp.did_close)
                and orig.state != RESET
                and resp.state != RESET
            ):
                return "partial_close"
        return None

    def next_timer(self, attempt: float, linger: float, partial_close: float) -> float | None:
        """The earliest pending timer, or None."""
        best: float | None = None
        if self.delete_at is not None:
            best = self.delete_at + linger
        if self.attempt_at is not None:
            t = self.attempt_at + attempt
            best = t if best is None or t < best else best
        if self.partial_close_at is not None:
            t = self.partial_close_at + partial_close
            best = t if best is None or t < best else best
        return best

    def in_handshake(self) -> bool:
        """Both sides still in handshake states: Zeek keeps the UDP inactivity timeout."""
        return self.orig.state in _HANDSHAKE and self.resp.state in _HANDSHAKE

    @property
    def closed(self) -> bool:
        """The connection has finished (a close completed or a reset is pending)."""
        return self.delete_at is not None

    def conn_state(self) -> str:
        orig, resp = self.orig, self.resp
        return conn_state(orig.state, resp.state, orig.size(resp.state), resp.size(orig.state), self.history_str)


def _seq_between(seq: int, low: int, high: int) -> bool:
    if seq_delta(high, low) >= 0:
        return seq_delta(seq, low) >= 0 and seq_delta(seq, high) <= 0
    return seq_delta(seq, low) >= 0 or seq_delta(seq, high) <= 0


def _clean(ep: TCPEndpoint) -> bool:
    return ep.state == ESTABLISHED or (ep.state == CLOSED and ep.prev_state == ESTABLISHED)


_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*", re.DOTALL)


def conn_state(os: int, rs: int, orig_size: int, resp_size: int, history: str) -> str:
    """Zeek's conn_state() for TCP (scripts/base/protocols/conn/main.zeek)."""
    o_inactive = os == INACTIVE or os == PARTIAL
    r_inactive = rs == INACTIVE or rs == PARTIAL
    if rs == RESET:
        if os in (SYN_SENT, SYN_ACK_SENT) or (os == RESET and orig_size == 0 and resp_size == 0):
            return "REJ"
        if o_inactive:
            return "RSTRH"
        return "RSTR"
    if os == RESET:
        if r_inactive:
            if _RSTOS0.fullmatch(history):
                return "RSTOS0"
            return "OTH"
        return "RSTO"
    if rs == CLOSED and os == CLOSED:
        return "SF"
    if os == CLOSED:
        return "SH" if r_inactive else "S2"
    if rs == CLOSED:
        return "SHR" if o_inactive else "S3"
    if os == SYN_SENT and rs == INACTIVE:
        return "S0"
    if os == ESTABLISHED and rs == ESTABLISHED:
        return "S1"
    return "OTH"


def udp_conn_state(orig_active: bool, resp_active: bool) -> str:
    """Zeek's conn_state() for UDP: each side is active once it sent a datagram."""
    if orig_active:
        return "SF" if resp_active else "S0"
    return "SHR" if resp_active else "OTH"
