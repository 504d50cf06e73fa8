"""Addresses, ports and host names of the lab: one table that every module reads.

The "Apple" servers sit inside 17.0.0.0/8, one address per role, so a capture
shows which server a flow went to and the firewall can act on one role alone;
the ones a dual-stack scenario needs also have an address in Apple's IPv6
range 2620:149::/32. The LAN holds several client "Macs" (a span port sees
them all); each has a fixed MAC, an IPv4 address, a global-looking IPv6
address and the link-local one the kernel derives from its MAC.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

LAB_NET = "10.77.0.0/16"
CLIENT_IP = "10.77.0.2"
ROUTER_CLIENT_IP = "10.77.0.1"  # the Mac's gateway, DNS server and explicit proxy
ROUTER_APPLE_IP = "10.77.1.1"
APPLE_LINK_IP = "10.77.1.2"
ROUTER_CONTROL_IP = "10.77.2.1"
CONTROL_LINK_IP = "10.77.2.2"

GS_IP = "17.253.1.10"  # gs.apple.com, gsa.apple.com: TLS 1.2 + 1.3 on 443, HTTP on 80
COURIER_IP = "17.253.1.11"  # 1-courier.push.apple.com: TLS on 5223 and 443
MESU_IP = "17.253.1.12"  # CDN edge at the end of mesu.apple.com's CNAME chain
TIME_IP = "17.253.1.13"  # time.apple.com: chrony on UDP 123
OCSP_IP = "17.253.1.14"  # ocsp.apple.com / crl.apple.com: plain HTTP on 80
IDENTITY_IP = "17.253.1.15"  # identity.apple.com: TLS 443 (the mixed session's intercepted host)
SETUP_IP = "17.253.1.16"  # setup.icloud.com: the router rejects every connection to it
CLOSED_IP = "17.253.1.20"  # an Apple address where nothing listens
TLS13_ONLY_IP = "17.253.1.17"  # tbsc.apple.com: nginx that accepts TLS 1.3 only
SPLICED_IP = "17.253.1.18"  # idmsa.apple.com: TLS 1.2, behind the selective proxy, which splices it
SMTP_IP = "17.253.1.87"  # smtp.mail.me.com (iCloud Mail submission): aiosmtpd, STARTTLS on 587
SMTP_SUBMISSION_PORT = 587
APPLE_ADDRS = (GS_IP, COURIER_IP, MESU_IP, TIME_IP, OCSP_IP, IDENTITY_IP, SETUP_IP, CLOSED_IP,
               TLS13_ONLY_IP, SPLICED_IP, SMTP_IP)

CONTROL_IP = "198.18.0.10"  # www.example.net: a non-Apple control server
CONTROL_ADDRS = (CONTROL_IP,)

# IPv6. The LAN prefix is global-looking on purpose: with a ULA source, glibc's
# (and macOS's) RFC 6724 address selection prefers IPv4 for a global
# destination, and the dual-stack Mac would never try IPv6 first. Nothing is
# routed outside the lab, so the prefix never meets its real owner.
LAB_NET6 = "2a0e:77::/48"
ROUTER_CLIENT_IP6 = "2a0e:77::1"  # the router on the LAN; dnsmasq listens here too
ROUTER_APPLE_IP6 = "2a0e:77:0:1::1"
APPLE_LINK_IP6 = "2a0e:77:0:1::2"
ROUTER_CONTROL_IP6 = "2a0e:77:0:2::1"
CONTROL_LINK_IP6 = "2a0e:77:0:2::2"
APPLE_NET6 = "2620:149::/32"  # Apple's IPv6 range (catalogue: 2620:149::/32, 2403:300::/32)
# gs.apple.com on IPv6 (nginx, the same server blocks as GS_IP). Not in 2620:149:a44::/48: Apple lists that
# /48 for APNs, and the catalogue would then take a gs.apple.com flow for push by its address alone.
GS_IP6 = "2620:149:af0::10"
COURIER_IP6 = "2620:149:a44::11"  # 1-courier.push.apple.com on IPv6: inside the /48 Apple lists for APNs
APPLE_ADDRS6 = (GS_IP6, COURIER_IP6)
CONTROL_NET6 = "2001:2::/48"  # benchmarking range, the IPv6 sibling of 198.18.0.0/15
CONTROL_IP6 = "2001:2::10"  # www.example.net on IPv6 (a second openssl s_server)
CONTROL_ADDRS6 = (CONTROL_IP6,)


@dataclass(frozen=True, slots=True)
class LabClient:
    """One client "Mac" on the LAN: its own namespace, MAC and addresses."""

    name: str  # what a scenario step names (Step.client) and the truth lists
    ip: str
    ip6: str
    mac: str  # fixed, so the link-local address and the capture are the same every run
    resolver: str  # the one nameserver in its resolv.conf

    @property
    def link_local(self) -> str:
        return link_local(self.mac)


def link_local(mac: str) -> str:
    """The EUI-64 link-local address the kernel derives from a MAC (addr_gen_mode 0)."""
    b = bytes.fromhex(mac.replace(":", ""))
    eui = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


CLIENT_IP6 = "2a0e:77::2"
CLIENT_MAC = "02:77:00:00:00:02"
ROUTER_MAC = "02:77:00:00:00:01"  # the router's LAN bridge
# mac1 is the client of every single-client scenario (its namespace is the old
# "client"); mac2 and mac3 share the LAN for span-port scenarios; mac4 asks its
# DNS over IPv6 (its resolver is the router's IPv6 address).
CLIENTS = (
    LabClient("mac1", CLIENT_IP, CLIENT_IP6, CLIENT_MAC, ROUTER_CLIENT_IP),
    LabClient("mac2", "10.77.0.3", "2a0e:77::3", "02:77:00:00:00:03", ROUTER_CLIENT_IP),
    LabClient("mac3", "10.77.0.4", "2a0e:77::4", "02:77:00:00:00:04", ROUTER_CLIENT_IP),
    LabClient("mac4", "10.77.0.5", "2a0e:77::5", "02:77:00:00:00:05", ROUTER_CLIENT_IP6),
)
CLIENTS_BY_NAME = {c.name: c for c in CLIENTS}

PROXY_PORT = 3128  # squid explicit proxy (CONNECT)
PROXY_AUTH_PORT = 3129  # squid explicit proxy that asks for credentials (407)
SQUID_BUMP_PORT = 3130  # squid https_port intercept ssl-bump
MITM_PORT = 8080  # mitmdump --mode transparent
UNKNOWN_CA_MITM_PORT = 8081  # a second mitmdump, signing with a CA named like no product (pki.UNKNOWN_CA_DN)
UNBOUND_PORT = 5353  # unbound on the router's loopback, behind dnsmasq
STOCK_PROXY_PORT = 3132  # second squid, stock Debian ACLs (SSL_ports): explicit proxy (CONNECT)
SELECTIVE_BUMP_PORT = 3133  # second squid: https_port intercept, bumps one host by SNI, splices the rest

# name -> A record served by dnsmasq (exact names, no wildcards)
A_RECORDS: dict[str, str] = {
    "gs.apple.com": GS_IP,
    "gsa.apple.com": GS_IP,
    "1-courier.push.apple.com": COURIER_IP,
    "time.apple.com": TIME_IP,
    "ocsp.apple.com": OCSP_IP,
    "crl.apple.com": OCSP_IP,
    "identity.apple.com": IDENTITY_IP,
    "gdmf.apple.com": CLOSED_IP,
    "configuration.apple.com": GS_IP,  # a name the gs server does not host (unrecognized_name)
    "setup.icloud.com": SETUP_IP,
    "www.example.net": CONTROL_IP,
    "tbsc.apple.com": TLS13_ONLY_IP,
    "idmsa.apple.com": SPLICED_IP,
    "time-macos.apple.com": CLOSED_IP,  # DNS gives an address where no NTP server runs
    "smtp.mail.me.com": SMTP_IP,
}
# name -> AAAA record. Only names a dual-stack scenario needs: a client that is
# not pinned to IPv4 prefers IPv6 when a name has one. Every client of the
# older scenarios is pinned to IPv4 (curl -4, s_client -4, chronyd -4, AF_INET)
# and so asks only for A records.
AAAA_RECORDS: dict[str, str] = {
    "gs.apple.com": GS_IP6,
    "1-courier.push.apple.com": COURIER_IP6,
    "www.example.net": CONTROL_IP6,
}
# The CDN chain Apple's download hosts use: name -> akadns -> edgekey -> A.
CNAME_CHAIN = ("mesu.apple.com", "mesu.apple.com.akadns.net", "mesu.apple.com.edgekey.net")
CNAME_TARGET_IP = MESU_IP
SINKHOLED_NAME = "xp.apple.com"  # a DNS filter answers 0.0.0.0
NXDOMAIN_NAME = "deviceenrollment.apple.com"  # the resolver says it does not exist
SERVFAIL_NAME = "iprofiles.apple.com"  # forwarded to unbound, which finds it DNSSEC-bogus
SILENT_NAME = "albert.apple.com"  # the firewall drops queries for it

# --- web: captive portal, HTTP/3 and iCloud Private Relay (scenarios._web_scenarios) ---
CAPTIVE_IP = "17.253.7.1"  # captive.apple.com: nginx answers the probe with Apple's "Success" page on 80
H3_IP = "17.253.7.2"  # updates.cdn-apple.com: nginx on TCP 443 and an aioquic HTTP/3 server on UDP 443
MASK_IP = "17.253.7.3"  # mask.icloud.com: Private Relay's QUIC ingress (aioquic on UDP 443)
MASK_H2_IP = "17.253.7.4"  # mask-h2.icloud.com: Private Relay's TCP ingress (nginx on TCP 443)
APPLE_ADDRS += (CAPTIVE_IP, H3_IP, MASK_IP, MASK_H2_IP)
H3_NAME = "updates.cdn-apple.com"  # a CDN download host the catalogue lists on TCP 443 only
PORTAL_IP = ROUTER_CLIENT_IP  # the hotspot's gateway serves its own portal (nginx on the router, port 80)
PORTAL_NAME = "portal.lab-hotspot.example"
PORTAL_LOGIN = f"http://{PORTAL_NAME}/login"
HIJACK_DNS_PORT = 5354  # the portal's dnsmasq: every name -> PORTAL_IP (the client's DNS is redirected to it)
HIJACK_DNS_TTL = 1  # portals answer with tiny TTLs, so that the real answers come back right after login
RELAY_OFF_DNS_PORT = 5355  # a resolver that turns Private Relay off Apple's way: NXDOMAIN for the mask names
RELAY_NAMES = ("mask.icloud.com", "mask-h2.icloud.com")
A_RECORDS.update({
    "captive.apple.com": CAPTIVE_IP,
    H3_NAME: H3_IP,
    "mask.icloud.com": MASK_IP,
    "mask-h2.icloud.com": MASK_H2_IP,
    PORTAL_NAME: PORTAL_IP,
})
TLS13_ONLY_NAME = "tbsc.apple.com"
SPLICED_NAME = "idmsa.apple.com"
BUMPED_NAME = "identity.apple.com"  # the one host the selective proxy bumps (decrypts)
