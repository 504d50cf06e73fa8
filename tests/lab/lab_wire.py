"""What is on the wire of a lab capture, read with tshark (an independent dissector, not our engine).

One tshark run per capture extracts the fields the lab tests need; `Packet`
holds one frame's values, `Capture` answers the questions the tests ask.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from analyzer.lab.addresses import CLIENTS

# Every address a lab client sends from: a span-port capture holds several Macs, a dual-stack one two families.
CLIENT_ADDRS = frozenset(a for c in CLIENTS for a in (c.ip, c.ip6, c.link_local))

FIELDS = (
    "frame.number", "frame.time_relative", "eth.src", "eth.dst", "ip.src", "ip.dst", "ip.ttl", "ip.proto",
    "ipv6.src", "ipv6.dst", "ipv6.hlim", "ipv6.nxt",
    "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.len", "tcp.analysis.retransmission",
    "udp.srcport", "udp.dstport",
    "tls.record.content_type", "tls.record.opaque_type", "tls.record.length", "tls.handshake.type",
    "tls.handshake.version", "tls.handshake.extensions.supported_version",
    "tls.handshake.extensions_server_name", "tls.handshake.extensions_alpn_str",
    "tls.alert_message.level", "tls.alert_message.desc", "tls.handshake.certificate",
    "dns.flags.response", "dns.flags.rcode", "dns.qry.name", "dns.qry.type",
    "dns.resp.name", "dns.resp.type", "dns.a", "dns.aaaa", "dns.cname", "dns.resp.ttl",
    "icmp.type", "icmp.code", "icmpv6.type",
    "http.request.method", "http.request.uri", "http.response.code",
    "ntp.flags.mode",
)
SEP, AGG = "\t", "\x1f"
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
TLS_VERSIONS = {0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}


@dataclass(frozen=True, slots=True)
class Packet:
    values: dict[str, tuple[str, ...]]

    def all(self, name: str) -> tuple[str, ...]:
        return self.values.get(name, ())

    def first(self, name: str) -> str | None:
        vals = self.all(name)
        return vals[0] if vals else None

    def ints(self, name: str) -> tuple[int, ...]:
        return tuple(int(v, 0) for v in self.all(name))

    # IP fields: the first occurrence is the outer header (an ICMP error quotes another). An IPv6
    # packet has the ipv6.* fields instead, its hop limit standing for the TTL.
    @property
    def ipv6(self) -> bool:
        return not self.all("ip.src") and bool(self.all("ipv6.src"))

    @property
    def src(self) -> str | None:
        return self.first("ipv6.src") if self.ipv6 else self.first("ip.src")

    @property
    def dst(self) -> str | None:
        return self.first("ipv6.dst") if self.ipv6 else self.first("ip.dst")

    @property
    def ttl(self) -> int:
        return int(self.all("ipv6.hlim" if self.ipv6 else "ip.ttl")[0])

    @property
    def mac(self) -> str | None:
        return self.first("eth.src")

    @property
    def proto(self) -> str | None:
        return self.first("ipv6.nxt") if self.ipv6 else self.first("ip.proto")

    @property
    def sport(self) -> int | None:
        v = self.first("tcp.srcport") or self.first("udp.srcport")
        return int(v) if v else None

    @property
    def dport(self) -> int | None:
        v = self.first("tcp.dstport") or self.first("udp.dstport")
        return int(v) if v else None

    @property
    def is_tcp(self) -> bool:
        return self.proto == "6"

    @property
    def is_udp(self) -> bool:
        return self.proto == "17"

    @property
    def is_icmp(self) -> bool:
        return bool(self.all("icmp.type") or self.all("icmpv6.type"))

    @property
    def flags(self) -> int:
        v = self.first("tcp.flags")
        return int(v, 16) if v else 0

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)

    @property
    def payload(self) -> int:
        v = self.first("tcp.len")
        return int(v) if v else 0

    @property
    def retransmission(self) -> bool:
        return bool(self.all("tcp.analysis.retransmission"))

    @property
    def hs_types(self) -> tuple[int, ...]:
        return self.ints("tls.handshake.type")

    @property
    def record_types(self) -> tuple[int, ...]:
        # TLS 1.3 records under encryption are dissected as opaque_type (always 23).
        return self.ints("tls.record.content_type") + self.ints("tls.record.opaque_type")

    def certificates(self) -> list[x509.Certificate]:
        return [x509.load_der_x509_certificate(bytes.fromhex(h.replace(":", "")))
                for h in self.all("tls.handshake.certificate")]


def _split(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split(AGG) if v != "") if value else ()


@functools.cache
def read(pcap: Path) -> Capture:
    argv = ["tshark", "-r", str(pcap), "-n", "-o", "tcp.desegment_tcp_streams:TRUE",
            "-d", "tcp.port==3129,http", "-T", "fields", "-E", f"separator={SEP}", "-E", "occurrence=a",
            "-E", f"aggregator={AGG}", "-E", "quote=n"]
    for name in FIELDS:
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    packets = []
    for line in out.splitlines():
        cols = line.split(SEP)
        packets.append(Packet({name: _split(col) for name, col in zip(FIELDS, cols)}))
    return Capture(pcap, tuple(packets))


@dataclass(frozen=True, slots=True)
class Capture:
    path: Path
    packets: tuple[Packet, ...]

    def conn(self, client: str, server: str, port: int, proto: str = "tcp") -> Conn:
        """All packets between client and server:port (every client port), in order."""
        pk = [p for p in self.packets
              if (p.is_tcp if proto == "tcp" else p.is_udp) and not p.is_icmp
              and ((p.src == client and p.dst == server and p.dport == port)
                   or (p.src == server and p.dst == client and p.sport == port))]
        return Conn(client, server, port, tuple(pk))

    def icmp(self) -> list[Packet]:
        """ICMPv4 errors (IPv6 neighbour discovery is not an error: see ndp())."""
        return [p for p in self.packets if p.all("icmp.type")]

    def ndp(self) -> list[Packet]:
        """IPv6 neighbour solicitations and advertisements (ICMPv6 135, 136)."""
        return [p for p in self.packets if set(p.all("icmpv6.type")) & {"135", "136"}]

    def dns_queries(self, name: str, qtype: str | None = None) -> list[Packet]:
        """Queries for a name (of one type, "1" for A, "28" for AAAA, when qtype is given)."""
        return [p for p in self.packets if p.first("dns.flags.response") in ("0", "False")
                and p.first("dns.qry.name") == name and qtype in (None, p.first("dns.qry.type"))]

    def dns_responses(self, name: str, qtype: str | None = None) -> list[Packet]:
        return [p for p in self.packets if p.first("dns.flags.response") in ("1", "True")
                and p.first("dns.qry.name") == name and qtype in (None, p.first("dns.qry.type"))]

    def endpoints(self) -> set[tuple[str, int]]:
        """(address, port) of every TCP/UDP server a lab client contacted (first packet's destination)."""
        out = set()
        for p in self.packets:
            opens = (p.is_tcp and p.has(TCP_SYN) and not p.has(TCP_ACK)) or (p.is_udp and not p.is_icmp)
            if opens and p.dst and p.dport and p.src in CLIENT_ADDRS:
                out.add((p.dst, p.dport))
        return out

    def macs(self) -> dict[str, set[str]]:
        """Source MAC -> the IP addresses it sent from: which addresses belong to one device."""
        out: dict[str, set[str]] = {}
        for p in self.packets:
            if p.mac and p.src:
                out.setdefault(p.mac, set()).add(p.src)
        return out


@dataclass(frozen=True, slots=True)
class Conn:
    client: str
    server: str
    port: int
    packets: tuple[Packet, ...]

    def split(self) -> list[Conn]:
        """One Conn per client port (per TCP connection or UDP socket), in order of first packet."""
        ports: dict[int | None, list[Packet]] = {}
        for p in self.packets:
            ports.setdefault(p.sport if p.src == self.client else p.dport, []).append(p)
        return [Conn(self.client, self.server, self.port, tuple(pk)) for pk in ports.values()]

    @property
    def c2s(self) -> list[Packet]:
        return [p for p in self.packets if p.src == self.client]

    @property
    def s2c(self) -> list[Packet]:
        return [p for p in self.packets if p.src == self.server]

    def syns(self) -> list[Packet]:
        return [p for p in self.c2s if p.has(TCP_SYN) and not p.has(TCP_ACK)]

    def synacks(self) -> list[Packet]:
        return [p for p in self.s2c if p.has(TCP_SYN) and p.has(TCP_ACK)]

    def resets(self, from_server: bool = True) -> list[Packet]:
        side = self.s2c if from_server else self.c2s
        return [p for p in side if p.has(TCP_RST)]

    def client_hellos(self) -> list[Packet]:
        return [p for p in self.c2s if 1 in p.hs_types]

    def server_hello(self) -> Packet | None:
        return next((p for p in self.s2c if 2 in p.hs_types), None)

    def selected_version(self) -> str | None:
        sh = self.server_hello()
        if sh is None:
            return None
        supported = sh.ints("tls.handshake.extensions.supported_version")
        raw = supported[0] if supported else sh.ints("tls.handshake.version")[0]
        return TLS_VERSIONS.get(raw, hex(raw))

    def certificates(self) -> list[x509.Certificate]:
        return [c for p in self.s2c for c in p.certificates()]

    def alerts(self, from_server: bool) -> list[tuple[int, int]]:
        """Cleartext alerts as (level, description)."""
        side = self.s2c if from_server else self.c2s
        out = []
        for p in side:
            out += list(zip(p.ints("tls.alert_message.level"), p.ints("tls.alert_message.desc")))
        return out

    def app_data_records(self, from_server: bool) -> int:
        side = self.s2c if from_server else self.c2s
        return sum(p.record_types.count(23) for p in side)
