"""Addresses, ports and host names of the lab: one table that every module reads.

The "Apple" servers sit inside 17.0.0.0/8, one address per role, so a capture
shows which server a flow went to and the firewall can act on one role alone.
"""

from __future__ import annotations

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
SMTP_IP = "17.253.1.87"  # smtp.mail.me.com (iCloud Mail submission): aiosmtpd, STARTTLS on 587
SMTP_SUBMISSION_PORT = 587
APPLE_ADDRS = (GS_IP, COURIER_IP, MESU_IP, TIME_IP, OCSP_IP, IDENTITY_IP, SETUP_IP, CLOSED_IP, SMTP_IP)

CONTROL_IP = "198.18.0.10"  # www.example.net: a non-Apple control server
CONTROL_ADDRS = (CONTROL_IP,)

PROXY_PORT = 3128  # squid explicit proxy (CONNECT)
PROXY_AUTH_PORT = 3129  # squid explicit proxy that asks for credentials (407)
SQUID_BUMP_PORT = 3130  # squid https_port intercept ssl-bump
MITM_PORT = 8080  # mitmdump --mode transparent
UNBOUND_PORT = 5353  # unbound on the router's loopback, behind dnsmasq

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
    "smtp.mail.me.com": SMTP_IP,
}
# The CDN chain Apple's download hosts use: name -> akadns -> edgekey -> A.
CNAME_CHAIN = ("mesu.apple.com", "mesu.apple.com.akadns.net", "mesu.apple.com.edgekey.net")
CNAME_TARGET_IP = MESU_IP
SINKHOLED_NAME = "xp.apple.com"  # a DNS filter answers 0.0.0.0
NXDOMAIN_NAME = "deviceenrollment.apple.com"  # the resolver says it does not exist
SERVFAIL_NAME = "iprofiles.apple.com"  # forwarded to unbound, which finds it DNSSEC-bogus
SILENT_NAME = "albert.apple.com"  # the firewall drops queries for it
