#!/usr/bin/env python3
"""Reference output of the Python TCP session and reassembler alone, for diffing against
`core/examples/tcp_dump.rs` (core/src/flows/tcp.rs, reassembly.rs).

    tcp_ref.py --gen SEED CASES OPS > /tmp/ops.txt     generate adversarial cases
    tcp_ref.py OPS_FILE > py.txt                        run them through analyzer.flows.tcp
    cargo run --release --offline --example tcp_dump -- OPS_FILE > rs.txt ; diff py.txt rs.txt

Ops file, one op a line (numbers decimal, floats as 16 hex digits of their IEEE bits):
  N cap max_segments max_pending budget_limit budget_floor max_history   a new case (session)
  P side flags seq ack plen win ts payload_hex|-                         TCPSession.packet
  U flags seq ts                                                          is_reuse(.., linger 5.0)
  F                                                                       flip_roles
  C side                                                                  bad_checksum
  E now                                                                   expire(now, 5.0, 5.0, 3.0)
  X side                                                                  reasm.release()
After every op one canonical state line; after each case the two StreamData results.
"""

from __future__ import annotations

import random
import struct
import sys

from analyzer.flows.reassembly import ReassemblyBudget, StreamReassembler
from analyzer.flows.tcp import TCPEndpoint, TCPSession


def fhex(x: float) -> str:
    return struct.pack(">d", x).hex()


def unhex(s: str) -> float:
    return struct.unpack(">d", bytes.fromhex(s))[0]


def opt(x) -> str:
    if x is None:
        return "~"
    if isinstance(x, float):
        return fhex(x)
    return str(x)


def b(x: bool) -> str:
    return "T" if x else "F"


def ep_line(ep: TCPEndpoint) -> str:
    r = ep.reasm
    return " ".join(
        str(v)
        for v in (
            ep.side, ep.state, ep.prev_state, b(ep.is_orig), ep.start_seq, ep.last_seq, ep.ack_seq,
            ep.seq_wraps, ep.ack_wraps, ep.fin_seq, ep.fin_cnt, ep.rst_cnt, b(ep.did_close),
            ep.hist_last_syn, ep.hist_last_fin, ep.hist_last_rst, ep.rxmt_cnt, ep.rxmt_thresh,
            ep.win0_cnt, ep.win0_thresh, ep.gap_cnt, ep.gap_thresh, ep.chk_cnt, ep.chk_thresh,
            fhex(ep.start_time), fhex(ep.last_time), ep.missed_bytes,
            "[" + ",".join(str(i) for i in ep.alt_isns) + "]",
            r.next_off, r.stored, r.gaps, r.gap_bytes, r.overlap_conflicts, r.pending_bytes,
            r.pending_dropped, b(r.cut_by_cap), b(r.cut_by_gap), b(r.cut_by_budget),
            b(r.segments_truncated), len(r.segments) if r.segments else 0,
            ep.size(0), ep.size(6),
        )
    )


def state_line(s: TCPSession, eps, budget: ReassemblyBudget) -> str:
    weird = ",".join(f"{k}:{v}" for k, v in sorted(s.weird.items())) if s.weird else ""
    nt = s.next_timer(5.0, 5.0, 3.0)
    return " | ".join(
        [
            ep_line(eps[0]),
            ep_line(eps[1]),
            f"o={s.orig.side} h={s.history_str or '-'} hs={s.hist_seen} p={b(s.is_partial)} "
            f"fps={s.first_packet_seen} a={b(s.is_active)} lt={fhex(s.last_time)} "
            f"d={opt(s.delete_at)} at={opt(s.attempt_at)} pc={opt(s.partial_close_at)} "
            f"w={weird or '-'} cs={s.conn_state()} nt={opt(nt)} ih={b(s.in_handshake())} cl={b(s.closed)}",
            f"bu={budget.used} bs={budget.segment_bytes} br={budget.refused}",
        ]
    )


def stream_line(r: StreamReassembler) -> str:
    d = r.result()
    segs = ",".join(f"{o}@{fhex(t)}" for o, t in d.segments)
    return (
        f"S {d.data.hex() or '-'} [{segs}] {d.stream_bytes} {b(d.cut_by_cap)} {b(d.cut_by_gap)} {d.gaps} "
        f"{d.gap_bytes} {d.overlap_conflicts} {d.pending_bytes} {b(d.segments_truncated)} {b(d.cut_by_budget)} "
        f"prefix={r.prefix().hex() or '-'}"
    )


def run(path: str) -> None:
    out = sys.stdout
    session = eps = budget = None

    def end_case() -> None:
        if session is not None:
            for ep in eps:
                out.write(stream_line(ep.reasm) + "\n")

    with open(path) as f:
        for line in f:
            a = line.split()
            if not a:
                continue
            op = a[0]
            if op == "N":
                end_case()
                cap, segs, pend, limit, floor, hist = (int(x) for x in a[1:7])
                budget = ReassemblyBudget(limit, floor)
                eps = (
                    TCPEndpoint(True, StreamReassembler(cap, segs, pend, budget), 0),
                    TCPEndpoint(False, StreamReassembler(cap, segs, pend, budget), 1),
                )
                session = TCPSession(eps[0], eps[1], hist)
                out.write(f"N {' '.join(a[1:7])}\n")
                continue
            res = ""
            if op == "P":
                side, flags, seq, ack, plen, win = (int(x) for x in a[1:7])
                ts = unhex(a[7])
                payload = b"" if a[8] == "-" else bytes.fromhex(a[8])
                session.packet(eps[side], flags, seq, ack, plen, win, ts, payload)
            elif op == "U":
                res = b(session.is_reuse(int(a[1]), int(a[2]), unhex(a[3]), 5.0))
            elif op == "F":
                session.flip_roles()
            elif op == "C":
                session.bad_checksum(eps[int(a[1])])
            elif op == "E":
                why = session.expire(unhex(a[1]), 5.0, 5.0, 3.0)
                res = why or "~"
            elif op == "X":
                eps[int(a[1])].reasm.release()
            out.write(f"{op} {res} {state_line(session, eps, budget)}\n")
    end_case()


# -- generator ---------------------------------------------------------------------------

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def gen(seed: int, cases: int) -> None:
    rnd = random.Random(seed)
    out = sys.stdout
    for _ in range(cases):
        small = rnd.random() < 0.5
        cap = rnd.choice([0, 1, 5, 20, 64, 300]) if small else 256 * 1024
        segs = rnd.choice([0, 1, 2, 3, 8]) if small else 4096
        pend = rnd.choice([0, 1, 2, 3, 5]) if small else 256
        limit = rnd.choice([0, 10, 40, 100, 1000]) if small else 64 * 1024 * 1024
        floor = rnd.choice([0, 5, 30, 200]) if small else 32 * 1024
        hist = rnd.choice([0, 1, 2, 5, 8, 256])
        clean = rnd.random() < 0.5  # a proper connection with loss and reordering, few surprises
        if clean:
            hist = rnd.choice([8, 256, 256])
        out.write(f"N {cap} {segs} {pend} {limit} {floor} {hist}\n")
        isn = [rnd.choice([rnd.getrandbits(32), 0xFFFFFFFF - rnd.randrange(200), rnd.randrange(200), 0x7FFFFFF0])
               for _ in range(2)]
        streams = [bytes(rnd.getrandbits(8) for _ in range(600)) for _ in range(2)]
        sent = [0, 0]  # next offset each side sends
        acked = [0, 0]  # what each side acks of the other's stream
        ts = rnd.uniform(1e9, 2e9)
        n_ops = rnd.randrange(1, 60)
        if rnd.random() < 0.1:
            # sequence numbers that wrap, several times: huge strides, both directions acked
            pos = [isn[0], isn[1]]
            out.write(f"P 0 {SYN} {isn[0]} 0 0 65535 {fhex(ts)} -\n")
            out.write(f"P 1 {SYN | ACK} {isn[1]} {(isn[0] + 1) & 0xFFFFFFFF} 0 65535 {fhex(ts)} -\n")
            for _ in range(rnd.randrange(5, 40)):
                side_ = rnd.randrange(2)
                ts += 0.01
                pos[side_] += rnd.choice([1, 10, 1 << 20, 0x40000000, 0x7FFFFFF0, 0x90000000])
                pl = streams[side_][: rnd.choice([0, 5])]
                fl = rnd.choice([ACK, ACK | PSH, ACK | PSH, ACK | FIN, RST])
                out.write(f"P {side_} {fl} {pos[side_] & 0xFFFFFFFF} {(pos[1 - side_] + rnd.choice([0, 1, 7])) & 0xFFFFFFFF} "
                          f"{len(pl)} 65535 {fhex(ts)} {pl.hex() or '-'}\n")
            continue
        if clean:
            first = rnd.randrange(2)
            hs = [(first, SYN, isn[first], 0), (1 - first, SYN | ACK, isn[1 - first], isn[first] + 1),
                  (first, ACK, isn[first] + 1, isn[1 - first] + 1)]
            if rnd.random() < 0.2:
                hs.pop(rnd.randrange(3))  # a handshake packet the capture missed
            if rnd.random() < 0.1:
                # the SYN-ACK first, from the side the session calls originator, then a reuse check
                hs = [(0, SYN | ACK, isn[0], isn[1] + 1)]
                out.write(f"P 0 {SYN | ACK} {isn[0]} {(isn[1] + 1) & 0xFFFFFFFF} 0 65535 {fhex(ts)} -\n")
                out.write(f"U {SYN} {rnd.choice([isn[0], isn[1]])} {fhex(ts)}\n")
                hs = [(1, SYN, isn[1], 0), (1, ACK, isn[1] + 1, isn[0] + 1)]
            if rnd.random() < 0.2:
                rnd.shuffle(hs)
            for side_, flags_, seq_, ack_ in hs:
                ts += 0.01
                out.write(f"P {side_} {flags_} {seq_ & 0xFFFFFFFF} {ack_ & 0xFFFFFFFF} 0 65535 {fhex(ts)} -\n")
        for i_op in range(n_ops):
            r = rnd.random()
            if clean:
                if i_op == n_ops - 1 and rnd.random() < 0.7:
                    for side_ in rnd.sample([0, 1], 2):
                        ts += 0.01
                        seq_ = (isn[side_] + 1 + sent[side_]) & 0xFFFFFFFF
                        ack_ = (isn[1 - side_] + 1 + sent[1 - side_] + (1 if side_ != 0 else 0)) & 0xFFFFFFFF
                        out.write(f"P {side_} {FIN | ACK} {seq_} {ack_} 0 65535 {fhex(ts)} -\n")
                    if rnd.random() < 0.5:
                        # after the close: a late RST, data, a reused 5-tuple
                        for _ in range(rnd.randrange(1, 4)):
                            side_ = rnd.randrange(2)
                            ts += rnd.choice([0.01, 2.0, 6.0])
                            fl = rnd.choice([RST, RST | ACK, ACK | PSH, SYN, FIN | ACK])
                            seq_ = (isn[side_] + 1 + sent[side_] + rnd.choice([0, 0, 1, 5])) & 0xFFFFFFFF
                            pl = streams[side_][:rnd.choice([0, 3])] if fl & PSH else b""
                            out.write(f"P {side_} {fl} {seq_} {(isn[1 - side_] + 1 + sent[1 - side_]) & 0xFFFFFFFF} "
                                      f"{len(pl)} 65535 {fhex(ts)} {pl.hex() or '-'}\n")
                            if rnd.random() < 0.5:
                                out.write(f"U {rnd.choice([SYN, SYN | ACK])} "
                                          f"{rnd.choice([isn[0], isn[1], rnd.getrandbits(32)])} {fhex(ts + rnd.choice([1.0, 6.0]))}\n")
                    out.write(f"E {fhex(ts + 6.0)}\n")
                    break
                r = 0.15 + r * 0.85 if rnd.random() < 0.9 else r
            ts += rnd.choice([0.0, 0.001, 0.01, 0.5, 1.0, 3.5, 6.0])
            if rnd.random() < 0.05:
                ts -= rnd.choice([0.5, 10.0])
            if r < 0.04:
                out.write(f"U {rnd.choice([SYN, SYN | ACK, ACK])} {rnd.choice([isn[0], isn[1], rnd.getrandbits(32)])} {fhex(ts)}\n")
                continue
            if r < 0.06:
                out.write("F\n")
                continue
            if r < 0.08:
                out.write(f"C {rnd.randrange(2)}\n")
                continue
            if r < 0.14:
                out.write(f"E {fhex(ts + rnd.choice([0.0, 3.0, 5.0, 10.0]))}\n")
                continue
            if r < 0.15:
                out.write(f"X {rnd.randrange(2)}\n")
                continue
            side = rnd.randrange(2)
            other = 1 - side
            r2 = rnd.random()
            if clean and r2 < 0.2:
                r2 = 0.2 + r2 * 4  # no handshake-ish or random packets
            if r2 < 0.15:
                # handshake-ish
                flags = rnd.choice([SYN, SYN | ACK, SYN, SYN | ACK, SYN | ACK | FIN, SYN | RST, SYN | URG])
                if rnd.random() < 0.2:
                    isn[side] = rnd.getrandbits(32)  # a new ISN (SYN_seq_jump, alt ISNs)
                seq = isn[side]
                ack = (isn[other] + 1) & 0xFFFFFFFF if flags & ACK else 0
                plen = 0 if rnd.random() < 0.8 else rnd.randrange(1, 20)
                payload = streams[side][:plen]
            elif r2 < 0.2:
                # wholly random
                flags = rnd.getrandbits(6)
                seq = rnd.getrandbits(32)
                ack = rnd.getrandbits(32)
                plen = rnd.choice([0, 0, 1, 10])
                payload = bytes(rnd.getrandbits(8) for _ in range(plen))
            else:
                choice = rnd.random()
                if choice < 0.6:
                    off = sent[side]
                elif choice < 0.8:
                    off = max(0, sent[side] - rnd.randrange(0, 60))  # retransmission / overlap
                else:
                    off = sent[side] + rnd.randrange(1, 80)  # out of order
                plen = rnd.choice([0, 0, 1, 5, 10, 30, 60])
                off = min(off, 500)
                payload = bytearray(streams[side][off:off + plen])
                plen = len(payload)
                if plen and rnd.random() < 0.1:
                    payload[rnd.randrange(plen)] ^= 0xFF  # conflicting copy
                if plen and rnd.random() < 0.05:
                    payload = payload[: rnd.randrange(plen)]  # snaplen cut
                payload = bytes(payload)
                seq = (isn[side] + 1 + off) & 0xFFFFFFFF
                if choice < 0.6:
                    sent[side] = max(sent[side], off + plen)
                flags = ACK | (PSH if plen else 0)
                x = rnd.random()
                if clean:
                    x = 0.1 + x
                if x < 0.06:
                    flags |= FIN
                elif x < 0.1:
                    flags |= RST
                elif x < 0.12:
                    flags = RST
                elif x < 0.14:
                    flags &= ~ACK
                y = rnd.random()
                if y < 0.7:
                    acked[side] = max(acked[side], min(sent[other], acked[side] + rnd.randrange(0, 80)))
                elif y < 0.8:
                    acked[side] = acked[side] + rnd.randrange(1, 100)  # acks past what we saw: a gap
                ack = (isn[other] + 1 + acked[side] + (1 if rnd.random() < 0.05 else 0)) & 0xFFFFFFFF
            win = 0 if rnd.random() < 0.05 else rnd.choice([1, 65535])
            out.write(f"P {side} {flags} {seq} {ack} {plen} {win} {fhex(ts)} {payload.hex() or '-'}\n")


if __name__ == "__main__":
    if sys.argv[1] == "--gen":
        gen(int(sys.argv[2]), int(sys.argv[3]))
    else:
        run(sys.argv[1])
