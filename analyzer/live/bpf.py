"""The default capture filter of `apple-net live`: keep what the analysis reads, shed the bulk.

On a busy span port almost every packet is bulk: full-sized data segments in
the middle of long transfers and the pure ACKs that answer them. The analysis
reads none of them. It needs the moments a connection's story changes (SYN,
SYN-ACK, FIN, RST, ICMP errors), the first messages of each connection
(ClientHello, server flight, HTTP request line), the small records around a
TLS 1.3 handshake (alerts, Finished), and DNS, NTP and QUIC handshakes.

The filter runs in two stages, because classic BPF is stateless and the most
important rule, "the first segments of each connection", needs a counter per
flow:

1. Kernel (this module, a libpcap expression; rejected packets are never
   copied to us):

       TCP    every SYN, FIN, RST, and every segment that carries data
              (pure ACKs, half of all bulk packets, are dropped here)
       UDP    ports 53, 5353, 5355 (DNS, mDNS, LLMNR) and 123 (NTP), whole
              port 443: QUIC long-header packets (Initial, Handshake, 0-RTT)
                        and datagrams of <= SMALL_UDP bytes (ACKs: 1-RTT followed)
              other ports: datagrams of <= SMALL_UDP bytes (STUN, DHCP,
                        NetBIOS, SSDP, keep-alives; not media or VPN bulk)
       ICMP   errors only (unreachable, source quench, time exceeded,
              parameter problem; ICMPv6 types 1-127)
       IP     every fragment (the first one alone says what the datagram is),
              IPv6 packets with hop-by-hop, routing or destination options

2. User space (`heads.HeadKeeper`): of each direction of each TCP connection
   the first N data segments, then only segments that still carry events:
   <= SMALL_TCP bytes (alerts, Finished), a TLS record or HTTP line start, DNS.

What the default LOSES, and how the design copes:

* Pure ACKs and mid-stream bulk. Per-flow packet and byte counts count kept
  packets only; the report names the filter that ran. The TCP story does not
  change: Zeek's state machine moves on the flags the filter keeps, and a
  data segment with ACK establishes a connection as the handshake's last ACK
  does (every lab scenario gives the verdicts of its whole capture: tests/lab/test_live_lab.py;
  so do the corpus captures listed in tests/test_live.py).
* Handshake messages longer than N segments (certificate chains beyond ~15
  KB): reassembly stops at the first shed segment. Raise N (`--head-segments`)
  or widen the filter.
* Large UDP datagrams on ports other than DNS/NTP and large QUIC short-header
  packets: a media or VPN flow whose one side only ever sends large datagrams
  looks unanswered. Apple's documented UDP services are NTP and QUIC (443).
* IPv6 TCP/UDP behind extension headers (rare outside fragments): classic BPF
  cannot walk the header chain.

The user can widen the default (`--bpf-also EXPR`, OR-ed in the kernel and
never shed in user space) or replace it (`--bpf EXPR`, no user-space stage;
`--bpf ''` captures everything). Every report names the filter in force.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_SMALL_UDP", "FilterSpec", "kernel_filter", "resolve_filter"]

DEFAULT_SMALL_UDP = 512
"""UDP datagrams up to this payload size pass on every port."""

_DNS_UDP_PORTS = (53, 5353, 5355)
_NTP_PORT = 123
_QUIC_PORT = 443
_ICMP4_ERRORS = (3, 4, 11, 12)


def _v4(small_udp: int) -> str:
    tcp_plen = "(ip[2:2] - ((ip[0] & 0x0f) << 2) - ((tcp[12] & 0xf0) >> 2))"
    udp_plen = "(udp[4:2] - 8)"
    dns = " or ".join(f"udp port {p}" for p in (*_DNS_UDP_PORTS, _NTP_PORT))
    icmp = " or ".join(f"icmp[0] = {t}" for t in _ICMP4_ERRORS)
    return (
        "(ip and ("
        "(ip[6:2] & 0x3fff != 0)"  # any fragment: MF set or offset > 0
        f" or (tcp and (tcp[13] & 0x07 != 0 or {tcp_plen} > 0))"
        f" or (udp and ({dns} or {udp_plen} <= {small_udp}"
        f" or (udp port {_QUIC_PORT} and {udp_plen} > 0 and udp[8] & 0x80 != 0)))"
        f" or (icmp and ({icmp}))"
        "))"
    )


def _v6(small_udp: int) -> str:
    # libpcap's tcp[]/udp[] read IPv4 only: the upper layer is at byte 40 when
    # no extension header comes first.
    def port(n: int) -> str:
        return f"ip6[40:2] = {n} or ip6[42:2] = {n}"

    tcp_plen = "(ip6[4:2] - ((ip6[52] & 0xf0) >> 2))"
    udp_plen = "(ip6[4:2] - 8)"
    dns = " or ".join(port(p) for p in (*_DNS_UDP_PORTS, _NTP_PORT))
    return (
        "(ip6 and ("
        "ip6[6] = 44 or ip6[6] = 0 or ip6[6] = 43 or ip6[6] = 60"  # fragment, HBH, routing, dest options
        f" or (ip6[6] = 6 and (ip6[53] & 0x07 != 0 or {tcp_plen} > 0))"
        f" or (ip6[6] = 17 and ({dns} or {udp_plen} <= {small_udp}"
        f" or (({port(_QUIC_PORT)}) and {udp_plen} > 0 and ip6[48] & 0x80 != 0)))"
        " or (ip6[6] = 58 and ip6[40] < 128)"  # ICMPv6 errors are types 1-127
        "))"
    )


def kernel_filter(small_udp: int = DEFAULT_SMALL_UDP, vlan: bool = True) -> str:
    """The kernel half of the default filter (libpcap syntax)."""
    core = f"{_v4(small_udp)} or {_v6(small_udp)}"
    if not vlan:
        return core
    # After `vlan` every offset moves by the tag: the same rules once more, for tagged frames.
    return f"{core} or (vlan and ({core}))"


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """The filter a capture runs with (written into the report)."""

    kernel: str
    """libpcap expression for the kernel; empty: every packet."""
    heads: bool
    """Whether the user-space stage (first N segments per flow, then events) runs."""
    also: str | None = None
    """A user expression OR-ed into the default; its packets are never shed."""
    origin: str = "default"
    """default | default+user | user | none"""
    fallback: str | None = None
    """The same filter without the 802.1Q repeat, for link types where `vlan` does not compile."""

    def describe(self, head_segments: int) -> str:
        if self.origin == "none":
            return "none (every packet)"
        if self.origin == "user":
            return f"user: {self.kernel}"
        text = f"default (kernel: SYN/FIN/RST, TCP data, DNS, NTP, QUIC, small UDP, ICMP errors; " \
               f"user space: first {head_segments} data segments per TCP direction, then events)"
        return text + (f" or user: {self.also}" if self.also else "")


def resolve_filter(replace: str | None = None, also: str | None = None, vlan: bool = True) -> FilterSpec:
    """`--bpf EXPR` replaces the default (`''` or `all`: no filter); `--bpf-also EXPR` widens it."""
    also = also.strip() if also and also.strip() else None
    if replace is not None:
        expr = "" if replace.strip() in ("", "all") else replace.strip()
        if also and expr:
            expr = f"({expr}) or ({also})"
        elif also:
            expr = ""
        return FilterSpec(expr, False, None, "user" if expr else "none")
    base, plain = kernel_filter(vlan=vlan), kernel_filter(vlan=False)
    if also:
        return FilterSpec(f"({base}) or ({also})", True, also, "default+user", f"({plain}) or ({also})")
    return FilterSpec(base, True, None, "default", plain)
