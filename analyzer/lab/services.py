"""The real software of the lab: configuration files and how each server starts.

Every server runs in the foreground under the Supervisor (so it is stopped by
its pid) and is ready only when its port is bound.

    apple ns:   nginx (TLS 1.2+1.3 on 443 and 5223, HTTP on 80; gs.apple.com
                also on IPv6), chronyd (NTP), aiosmtpd (SMTP submission with STARTTLS on 587);
                a second nginx for the service scenarios (a TLS 1.3-only host, the
                host the selective proxy splices)
    control ns: openssl s_server (a non-Apple TLS server; one per address family)
    router ns:  dnsmasq (the Macs' resolver on IPv4 and IPv6, A and AAAA), unbound
                (dnsmasq's upstream for the SERVFAIL name: DNSSEC bogus), squid
                (explicit proxy + ssl-bump), mitmdump, a second mitmdump whose CA is named like
                no product (Acme Corp Web Filter CA); a second squid with Debian's stock
                ACLs (SSL_ports) and a selective ssl-bump port (bumps one host by SNI, splices the others)
    web (start_web): nginx + aioquic HTTP/3 (apple ns); the hotspot portal's nginx, its
                every-name dnsmasq and a Private-Relay-off dnsmasq (router ns)
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from analyzer.lab import addresses as A
from analyzer.lab.netns import LabError, sh
from analyzer.lab.pki import LabPki
from analyzer.lab.procs import Supervisor, listening

MITM_VENV = Path(os.environ.get("APPLE_NET_LAB_MITM_VENV", "/opt/apple-net-lab/mitm-venv"))
SQUID_CERTGEN = Path("/usr/lib/squid/security_file_certgen")
SQUID_NCSA = Path("/usr/lib/squid/basic_ncsa_auth")
SERVER_CIPHERS = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"
PROXY_USER = ("lab", "lab-secret")
DENIED_CONNECT_DOMAIN = ".icloud.com"  # squid policy: CONNECT to iCloud is denied (403)


def mitmdump_path() -> Path:
    return MITM_VENV / "bin" / "mitmdump"


def missing_tools() -> list[str]:
    """Programs the lab needs that are not installed (see .ci/lab-deps.sh)."""
    tools = ["ip", "iptables", "ip6tables", "conntrack", "ethtool", "ss", "tcpdump", "nginx", "openssl",
             "chronyd", "dnsmasq", "unbound", "squid", "curl", "ntpdig"]
    missing = [t for t in tools if shutil.which(t) is None]
    missing += [str(p) for p in (SQUID_CERTGEN, SQUID_NCSA, mitmdump_path()) if not p.exists()]
    if importlib.util.find_spec("aioquic") is None:  # the HTTP/3 server and client (pip install .[test])
        missing.append("python package aioquic")
    missing += [f"python module {m}" for m in ("aiosmtpd",) if importlib.util.find_spec(m) is None]
    return missing


@dataclass(frozen=True, slots=True)
class ServiceDirs:
    root: Path

    def sub(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
        return path


def _nginx_main(d: Path, servers: list[str]) -> str:
    """An nginx of its own (pid, logs, temp dirs under d), so each scenario family keeps its servers apart."""
    temp = "\n".join(f"    {k}_temp_path {d}/tmp-{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""user root;
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
{temp}
    default_type text/plain;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers {SERVER_CIPHERS};
    keepalive_timeout 2s;
{''.join(servers)}
}}
"""


def _nginx_conf(d: Path, pki: LabPki) -> str:
    def tls_server(listen: str, names: str, leaf: str, body: str, h2: bool = True, also: str = "") -> str:
        extra = f"\n        listen {also} ssl{' http2' if h2 else ''};" if also else ""
        return f"""
    server {{
        listen {listen} ssl{' http2' if h2 else ''};{extra}
        server_name {names};
        ssl_certificate {pki.chain(leaf)};
        ssl_certificate_key {pki.key(leaf)};
        location / {{ return 200 "{body}\\n"; }}
    }}"""

    servers = [
        # Unknown SNI on the gs address: nginx refuses the handshake (unrecognized_name).
        f"""
    server {{
        listen {A.GS_IP}:443 ssl default_server;
        listen [{A.GS_IP6}]:443 ssl default_server;
        ssl_reject_handshake on;
    }}""",
        tls_server(f"{A.GS_IP}:443", "gs.apple.com gsa.apple.com", "gs", "gs ok", also=f"[{A.GS_IP6}]:443"),
        tls_server(f"{A.MESU_IP}:443", "mesu.apple.com", "mesu", "mesu ok"),
        tls_server(f"{A.IDENTITY_IP}:443", "identity.apple.com", "identity", "identity ok"),
        f"""
    server {{
        listen {A.OCSP_IP}:80;
        server_name ocsp.apple.com crl.apple.com;
        # Plain-text bodies: the paths are OCSP/CRL-like, the bodies are not
        # DER, so no dissector should take them for malformed OCSP.
        location / {{ return 200 "lab ocsp/crl responder\\n"; }}
    }}""",
    ]
    return _nginx_main(d, servers)


def start_nginx(sup: Supervisor, dirs: ServiceDirs, pki: LabPki) -> None:
    d = dirs.sub("nginx")
    conf = d / "nginx.conf"
    conf.write_text(_nginx_conf(d, pki))
    sup.start("nginx", sup.topo.apple, ["nginx", "-c", str(conf), "-p", str(d)],
              ready=listening(sup.topo, sup.topo.apple, "tcp", 80))


def start_control_server(sup: Supervisor, pki: LabPki) -> None:
    """openssl s_server accepts on one address: one process per address family."""
    for name, accept, addr in (("s_server", f"{A.CONTROL_IP}:443", A.CONTROL_IP),
                               ("s_server6", f"[{A.CONTROL_IP6}]:443", f"[{A.CONTROL_IP6}]")):
        argv = ["openssl", "s_server", "-accept", accept, "-www", "-quiet", "-naccept", "1000",
                "-cert", str(pki.chain("control")), "-key", str(pki.key("control"))]
        sup.start(name, sup.topo.control, argv, ready=listening(sup.topo, sup.topo.control, "tcp", 443, addr))


def start_courier(sup: Supervisor, pki: LabPki) -> None:
    """APNs-like courier: TLS with ALPN apns-security-v3 on 5223 and 443, echoing lines reversed; one
    s_server per address and port (IPv4, and IPv6 in Apple's APNs range)."""
    for port, addr in itertools.product((5223, 443), (A.COURIER_IP, f"[{A.COURIER_IP6}]")):
        argv = ["openssl", "s_server", "-accept", f"{addr}:{port}", "-rev", "-quiet", "-naccept", "1000",
                "-alpn", "apns-security-v3", "-cert", str(pki.leaf("courier")), "-key", str(pki.key("courier")),
                "-cert_chain", str(pki.intermediate("courier"))]
        ready = listening(sup.topo, sup.topo.apple, "tcp", port, addr)
        sup.start(f"courier-{port}" + ("-v6" if addr.startswith("[") else ""), sup.topo.apple, argv, ready=ready)


def start_chrony(sup: Supervisor, dirs: ServiceDirs) -> None:
    d = dirs.sub("chrony")
    conf = d / "chrony.conf"
    # No sources: "local stratum 1" makes it serve its own clock. -x: never
    # touch the host clock (namespaces share it).
    conf.write_text(f"pidfile {d}/chronyd.pid\nlocal stratum 1\nallow all\nbindaddress {A.TIME_IP}\n"
                    "port 123\ncmdport 0\n")
    sup.start("chronyd", sup.topo.apple, ["chronyd", "-d", "-x", "-u", "root", "-f", str(conf)],
              ready=listening(sup.topo, sup.topo.apple, "udp", 123))


def start_smtp_submission(sup: Supervisor, pki: LabPki) -> None:
    """smtp.mail.me.com-like mail submission: aiosmtpd's own CLI on 587, STARTTLS required before
    MAIL (its default once it has a certificate), every message accepted and discarded (Sink)."""
    argv = [sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
            "-l", f"{A.SMTP_IP}:{A.SMTP_SUBMISSION_PORT}",
            "--tlscert", str(pki.chain("smtp")), "--tlskey", str(pki.key("smtp"))]
    ready = listening(sup.topo, sup.topo.apple, "tcp", A.SMTP_SUBMISSION_PORT, A.SMTP_IP)
    sup.start("aiosmtpd", sup.topo.apple, argv, ready=ready)


def _dnsmasq_conf(d: Path) -> str:
    lines = [
        "keep-in-foreground", "no-resolv", "no-hosts", "no-poll", "bind-interfaces",
        "user=root", f"listen-address={A.ROUTER_CLIENT_IP}", f"listen-address={A.ROUTER_CLIENT_IP6}", "port=53",
        f"pid-file={d}/dnsmasq.pid",
        "log-queries", f"log-facility={d}/queries.log", "local-ttl=300", "cache-size=0",
        # Authoritative-like for these zones: unknown names are NXDOMAIN.
        "local=/apple.com/", "local=/icloud.com/", "local=/example.net/", "local=/akadns.net/", "local=/edgekey.net/",
    ]
    # One host-record per name: its A record, and its AAAA record where it has one.
    lines += [f"host-record={name},{ip}" + (f",{A.AAAA_RECORDS[name]}" if name in A.AAAA_RECORDS else "")
              for name, ip in A.A_RECORDS.items()]
    chain = A.CNAME_CHAIN
    lines += [f"cname={a},{b}" for a, b in itertools.pairwise(chain)]
    lines.append(f"host-record={chain[-1]},{A.CNAME_TARGET_IP}")
    lines.append(f"address=/{A.SINKHOLED_NAME}/0.0.0.0")
    lines.append(f"server=/{A.SERVFAIL_NAME}/127.0.0.1#{A.UNBOUND_PORT}")
    return "\n".join(lines) + "\n"


def start_dnsmasq(sup: Supervisor, dirs: ServiceDirs) -> None:
    d = dirs.sub("dnsmasq")
    conf = d / "dnsmasq.conf"
    conf.write_text(_dnsmasq_conf(d))
    sup.start("dnsmasq", sup.topo.router, ["dnsmasq", f"--conf-file={conf}"],
              ready=listening(sup.topo, sup.topo.router, "udp", 53))


def start_unbound(sup: Supervisor, dirs: ServiceDirs) -> None:
    d = dirs.sub("unbound")
    conf = d / "unbound.conf"
    zone = d / "servfail.zone"
    # SERVFAIL the way validating resolvers produce it: a trust anchor (DS)
    # for the zone, but the zone's data (an auth-zone standing in for its
    # authoritative servers) is unsigned, so validation ends "bogus". No
    # network, answer at once.
    zone.write_text(f"""$ORIGIN {A.SERVFAIL_NAME}.
$TTL 300
@ IN SOA ns hostmaster 1 3600 600 86400 300
@ IN NS ns
@ IN A {A.GS_IP}
ns IN A {A.GS_IP}
""")
    conf.write_text(f"""server:
  interface: 127.0.0.1@{A.UNBOUND_PORT}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{d}"
  pidfile: "{d}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  do-ip6: no
  num-threads: 1
  so-reuseport: no
  access-control: 127.0.0.0/8 allow
  module-config: "validator iterator"
  trust-anchor: "{A.SERVFAIL_NAME}. DS 12345 8 2 {'0123456789ABCDEF' * 4}"
auth-zone:
  name: "{A.SERVFAIL_NAME}."
  zonefile: "{zone}"
  for-downstream: no
  for-upstream: yes
  fallback-enabled: no
""")
    sup.start("unbound", sup.topo.router, ["unbound", "-d", "-c", str(conf)],
              ready=listening(sup.topo, sup.topo.router, "udp", A.UNBOUND_PORT))


def _squid_common(d: Path, hostname: str) -> str:
    """The settings every lab squid shares: no cache, the lab's resolver, files under d, user proxy."""
    return f"""cache deny all
dns_nameservers {A.ROUTER_CLIENT_IP}
hosts_file none
pinger_enable off
visible_hostname {hostname}
pid_filename {d}/squid.pid
cache_log {d}/cache.log
access_log {d}/access.log
coredump_dir {d}
cache_effective_user proxy
shutdown_lifetime 0 seconds
"""


def _squid_conf(d: Path, pki: LabPki) -> str:
    return f"""# explicit proxy (CONNECT), an authenticating one, and transparent ssl-bump
http_port {A.ROUTER_CLIENT_IP}:{A.PROXY_PORT}
http_port {A.ROUTER_CLIENT_IP}:{A.PROXY_AUTH_PORT} name=authport
https_port {A.SQUID_BUMP_PORT} intercept ssl-bump tls-cert={pki.squid_ca} generate-host-certificates=on dynamic_cert_mem_cache_size=4MB
sslcrtd_program {SQUID_CERTGEN} -s {d}/ssl_db -M 4MB
sslcrtd_children 2 startup=1 idle=1
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile={pki.apple_root}
auth_param basic program {SQUID_NCSA} {d}/passwd
auth_param basic realm apple-net-analyzer lab
acl authport myportname authport
acl authed proxy_auth REQUIRED
acl CONNECT method CONNECT
acl icloud dstdomain {DENIED_CONNECT_DOMAIN}
http_access deny authport !authed
http_access deny CONNECT icloud
http_access allow all
{_squid_common(d, "lab-proxy.example.net")}"""


def start_squid(sup: Supervisor, dirs: ServiceDirs, pki: LabPki) -> None:
    d = dirs.sub("squid")
    conf = d / "squid.conf"
    conf.write_text(_squid_conf(d, pki))
    hashed = sh(["openssl", "passwd", "-apr1", PROXY_USER[1]]).stdout.strip()
    (d / "passwd").write_text(f"{PROXY_USER[0]}:{hashed}\n")
    shutil.rmtree(d / "ssl_db", ignore_errors=True)
    sh([str(SQUID_CERTGEN), "-c", "-s", str(d / "ssl_db"), "-M", "4MB"])
    sh(["chown", "-R", "proxy:proxy", str(d)])
    sup.start("squid", sup.topo.router, ["squid", "-N", "-f", str(conf)])


def squid_ready(sup: Supervisor) -> None:
    sup.wait_ready("squid", listening(sup.topo, sup.topo.router, "tcp", A.SQUID_BUMP_PORT), 20)


def start_mitmdump(sup: Supervisor, pki: LabPki) -> None:
    _start_transparent_mitmdump(sup, "mitmdump", A.MITM_PORT, pki.mitm_confdir, pki)


def mitmdump_ready(sup: Supervisor) -> None:
    sup.wait_ready("mitmdump", listening(sup.topo, sup.topo.router, "tcp", A.MITM_PORT), 30)


def _start_transparent_mitmdump(sup: Supervisor, name: str, port: int, confdir: Path, pki: LabPki) -> None:
    """mitmdump --mode transparent on the router, signing forged leaves with the CA in confdir."""
    if not mitmdump_path().exists():
        raise LabError(f"mitmproxy not installed at {mitmdump_path()} (run .ci/lab-deps.sh)")
    argv = [str(mitmdump_path()), "--mode", "transparent", "--listen-port", str(port),
            "--set", f"confdir={confdir}", "--set", f"ssl_verify_upstream_trusted_ca={pki.apple_root}",
            "--set", "termlog_verbosity=info", "--set", "flow_detail=1"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(confdir), "LANG": "C.UTF-8"}
    sup.start(name, sup.topo.router, argv, env=env)


# --- the inspection proxy whose CA is named like no product (scenarios._unknown_ca_scenarios) ---

def start_unknown_ca_mitmdump(sup: Supervisor, pki: LabPki) -> None:
    """A second mitmdump: a corporate web filter with its own CA ("Acme Corp Web Filter CA"), which no
    [[inspection_product]] names, so the analyzer must detect it from the issuer alone and leave it unnamed."""
    _start_transparent_mitmdump(sup, "mitmdump-unknown-ca", A.UNKNOWN_CA_MITM_PORT, pki.unknown_ca_confdir, pki)


def unknown_ca_mitmdump_ready(sup: Supervisor) -> None:
    sup.wait_ready("mitmdump-unknown-ca", listening(sup.topo, sup.topo.router, "tcp", A.UNKNOWN_CA_MITM_PORT), 30)


# --- servers of the service scenarios (NTP clients, selective proxy, TLS version mismatch, SSL_ports) ---

def _service_nginx_conf(d: Path, pki: LabPki) -> str:
    """A TLS 1.3-only host, and the host that the selective proxy splices (TLS 1.2 and 1.3).

    A second nginx with its own addresses: each server is the only one on its socket, so its
    ssl_protocols holds for the whole handshake (nginx takes the protocols of a socket's default server).
    """
    return _nginx_main(d, [f"""
    server {{
        listen {A.TLS13_ONLY_IP}:443 ssl http2;
        server_name {A.TLS13_ONLY_NAME};
        ssl_protocols TLSv1.3;
        ssl_certificate {pki.chain("tbsc")};
        ssl_certificate_key {pki.key("tbsc")};
        location / {{ return 200 "tls 1.3 only\n"; }}
    }}
    server {{
        listen {A.SPLICED_IP}:443 ssl http2;
        server_name {A.SPLICED_NAME};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {pki.chain("idmsa")};
        ssl_certificate_key {pki.key("idmsa")};
        location / {{ return 200 "idmsa ok\n"; }}
    }}"""])


def start_service_nginx(sup: Supervisor, dirs: ServiceDirs, pki: LabPki) -> None:
    d = dirs.sub("nginx-svc")
    conf = d / "nginx.conf"
    conf.write_text(_service_nginx_conf(d, pki))
    sup.start("nginx-svc", sup.topo.apple, ["nginx", "-c", str(conf), "-p", str(d)],
              ready=listening(sup.topo, sup.topo.apple, "tcp", 443, A.SPLICED_IP))


def _stock_squid_conf(d: Path, pki: LabPki) -> str:
    """squid as shipped (Debian's access rules, verbatim in substance) plus a selective ssl-bump port.

    The explicit port denies CONNECT to any port but 443 (`http_access deny CONNECT !SSL_ports`), which
    is what stops APNs on 5223 behind many proxies. The intercept port peeks at the ClientHello (step 1),
    then bumps the one host named in `bumped` and splices every other name: the spliced client talks TLS
    with the real server through the proxy's TCP connections.
    """
    return f"""# Debian's stock access rules
acl localnet src 10.0.0.0/8
acl SSL_ports port 443
acl Safe_ports port 80          # http
acl Safe_ports port 21          # ftp
acl Safe_ports port 443         # https
acl Safe_ports port 70          # gopher
acl Safe_ports port 210         # wais
acl Safe_ports port 1025-65535  # unregistered ports
acl Safe_ports port 280         # http-mgmt
acl Safe_ports port 488         # gss-http
acl Safe_ports port 591         # filemaker
acl Safe_ports port 777         # multiling http
acl CONNECT method CONNECT
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localhost manager
http_access deny manager
http_access allow localnet
http_access allow localhost
http_access deny all
http_port {A.ROUTER_CLIENT_IP}:{A.STOCK_PROXY_PORT}
# selective TLS inspection: bump one host, splice the rest (by SNI)
https_port {A.SELECTIVE_BUMP_PORT} intercept ssl-bump tls-cert={pki.squid_ca} generate-host-certificates=on dynamic_cert_mem_cache_size=4MB
sslcrtd_program {SQUID_CERTGEN} -s {d}/ssl_db -M 4MB
sslcrtd_children 2 startup=1 idle=1
acl step1 at_step SslBump1
acl bumped ssl::server_name {A.BUMPED_NAME}
ssl_bump peek step1
ssl_bump bump bumped
ssl_bump splice all
tls_outgoing_options cafile={pki.apple_root}
{_squid_common(d, "lab-stock-proxy.example.net")}"""


def start_stock_squid(sup: Supervisor, dirs: ServiceDirs, pki: LabPki) -> None:
    d = dirs.sub("squid-stock")
    conf = d / "squid.conf"
    conf.write_text(_stock_squid_conf(d, pki))
    shutil.rmtree(d / "ssl_db", ignore_errors=True)
    sh([str(SQUID_CERTGEN), "-c", "-s", str(d / "ssl_db"), "-M", "4MB"])
    sh(["chown", "-R", "proxy:proxy", str(d)])
    # -n: its own service name, so its IPC names never meet the first squid's.
    sup.start("squid-stock", sup.topo.router, ["squid", "-N", "-n", "squidstock", "-f", str(conf)])


def stock_squid_ready(sup: Supervisor) -> None:
    sup.wait_ready("squid-stock", listening(sup.topo, sup.topo.router, "tcp", A.SELECTIVE_BUMP_PORT), 20)


def start_service_servers(sup: Supervisor, dirs: ServiceDirs, pki: LabPki) -> None:
    """The servers only the service scenarios use (the second squid is waited for in start_all)."""
    start_stock_squid(sup, dirs, pki)
    start_service_nginx(sup, dirs, pki)


def start_all(sup: Supervisor, dirs: ServiceDirs, pki: LabPki) -> None:
    """Start every server; the slow starters (mitmdump, squid) run while the others come up."""
    start_mitmdump(sup, pki)
    start_unknown_ca_mitmdump(sup, pki)
    start_squid(sup, dirs, pki)
    start_service_servers(sup, dirs, pki)
    start_nginx(sup, dirs, pki)
    start_control_server(sup, pki)
    start_courier(sup, pki)
    start_chrony(sup, dirs)
    start_smtp_submission(sup, pki)
    start_unbound(sup, dirs)
    start_dnsmasq(sup, dirs)
    start_web(sup, dirs, pki)
    squid_ready(sup)
    stock_squid_ready(sup)
    mitmdump_ready(sup)
    unknown_ca_mitmdump_ready(sup)


# --- web: captive portal, HTTP/3 and iCloud Private Relay (scenarios._web_scenarios) -------------

# Apple's answer to the captive network probe when nothing is in the way.
CAPTIVE_SUCCESS = "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"


def _web_apple_conf(d: Path, pki: LabPki) -> str:
    def tls(ip: str, name: str, leaf: str, extra: str = "") -> str:
        return f"""
    server {{
        listen {ip}:443 ssl http2;
        server_name {name};
        ssl_certificate {pki.chain(leaf)};
        ssl_certificate_key {pki.key(leaf)};
        location / {{ {extra}return 200 "{name} ok\\n"; }}
    }}"""

    return _nginx_main(d, [
        f"""
    server {{
        listen {A.CAPTIVE_IP}:80;
        server_name captive.apple.com;
        location / {{ default_type text/html; return 200 "{CAPTIVE_SUCCESS}"; }}
    }}""",
        # Alt-Svc: how a client learns that the host also answers HTTP/3 on UDP 443.
        tls(A.H3_IP, A.H3_NAME, "cdn", extra="add_header Alt-Svc 'h3=\":443\"; ma=86400' always; "),
        tls(A.MASK_H2_IP, "mask-h2.icloud.com", "mask"),
    ])


def _portal_conf(d: Path) -> str:
    # Every request that is not for the portal itself is sent to the login page, with where it wanted to go:
    # what a hotspot gateway (nodogsplash, CoovaChilli, a hotel's) does to the probe and to everything else.
    return _nginx_main(d, [f"""
    server {{
        listen {A.PORTAL_IP}:80 default_server;
        location / {{ return 302 "{A.PORTAL_LOGIN}?ap=lab-ap-1&orig=http%3A%2F%2F$host$request_uri"; }}
    }}
    server {{
        listen {A.PORTAL_IP}:80;
        server_name {A.PORTAL_NAME};
        location / {{ default_type text/html; return 200 "<html><body>Lab Hotspot: accept the terms to go online</body></html>"; }}
    }}"""])


def _hijack_dnsmasq_conf(d: Path) -> str:
    """The portal's resolver before login: every name, Apple's too, is the portal's own address."""
    return "\n".join([
        "keep-in-foreground", "no-resolv", "no-hosts", "no-poll", "bind-interfaces", "user=root",
        f"listen-address={A.ROUTER_CLIENT_IP}", f"port={A.HIJACK_DNS_PORT}", f"pid-file={d}/dnsmasq.pid",
        "log-queries", f"log-facility={d}/queries.log", f"local-ttl={A.HIJACK_DNS_TTL}", "cache-size=0",
        f"address=/#/{A.PORTAL_IP}",
    ]) + "\n"


def _relay_off_dnsmasq_conf(d: Path) -> str:
    """A resolver for a network that turns iCloud Private Relay off as Apple documents: NXDOMAIN for the
    relay's names, every other name forwarded to the lab's resolver."""
    return "\n".join([
        "keep-in-foreground", "no-resolv", "no-hosts", "no-poll", "bind-interfaces", "user=root",
        f"listen-address={A.ROUTER_CLIENT_IP}", f"port={A.RELAY_OFF_DNS_PORT}", f"pid-file={d}/dnsmasq.pid",
        "log-queries", f"log-facility={d}/queries.log", "cache-size=0", f"server={A.ROUTER_CLIENT_IP}#53",
        *[f"local=/{name}/" for name in A.RELAY_NAMES],
    ]) + "\n"


def _lab_python_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "PYTHONPATH": root, "LANG": "C.UTF-8"}


def start_web(sup: Supervisor, dirs: ServiceDirs, pki: LabPki) -> None:
    """Apple side: nginx (captive probe's Success page, TCP 443 of the HTTP/3 and mask-h2 hosts) and the
    aioquic HTTP/3 server (UDP 443 of updates.cdn-apple.com and mask.icloud.com). Router: the hotspot's
    portal (nginx on port 80), its DNS that answers every name with the portal, and a resolver that answers
    NXDOMAIN for Private Relay's names (two dnsmasq, each on a port of its own that a scenario redirects the
    client's DNS to)."""
    d = dirs.sub("nginx-web")
    (d / "nginx.conf").write_text(_web_apple_conf(d, pki))
    sup.start("nginx-web", sup.topo.apple, ["nginx", "-c", str(d / "nginx.conf"), "-p", str(d)],
              ready=listening(sup.topo, sup.topo.apple, "tcp", 443, A.MASK_H2_IP))
    listens = [f"{A.H3_IP},{pki.chain('cdn')},{pki.key('cdn')}", f"{A.MASK_IP},{pki.chain('mask')},{pki.key('mask')}"]
    argv = [sys.executable, "-m", "analyzer.lab.http3", "serve", *[x for spec in listens for x in ("--listen", spec)]]
    sup.start("http3", sup.topo.apple, argv, env=_lab_python_env(),
              ready=listening(sup.topo, sup.topo.apple, "udp", 443, A.MASK_IP))
    p = dirs.sub("portal")
    (p / "nginx.conf").write_text(_portal_conf(p))
    sup.start("portal", sup.topo.router, ["nginx", "-c", str(p / "nginx.conf"), "-p", str(p)],
              ready=listening(sup.topo, sup.topo.router, "tcp", 80, A.PORTAL_IP))
    h = dirs.sub("dnsmasq-hijack")
    (h / "dnsmasq.conf").write_text(_hijack_dnsmasq_conf(h))
    sup.start("dnsmasq-hijack", sup.topo.router, ["dnsmasq", f"--conf-file={h / 'dnsmasq.conf'}"],
              ready=listening(sup.topo, sup.topo.router, "udp", A.HIJACK_DNS_PORT))
    r = dirs.sub("dnsmasq-relay-off")
    (r / "dnsmasq.conf").write_text(_relay_off_dnsmasq_conf(r))
    sup.start("dnsmasq-relay-off", sup.topo.router, ["dnsmasq", f"--conf-file={r / 'dnsmasq.conf'}"],
              ready=listening(sup.topo, sup.topo.router, "udp", A.RELAY_OFF_DNS_PORT))


def capture_start(sup: Supervisor, name: str, pcap: Path, where: str = "client") -> subprocess.Popen[bytes]:
    """tcpdump on a capture point (Topology.capture_point: the Mac's own interface, or the LAN bridge);
    returns once it says it is listening."""
    ns, iface = sup.topo.capture_point(where)
    argv = ["tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-s", "0", "-Z", "root", "-w", str(pcap)]
    return sup.start(name, ns, argv, ready=lambda: "listening on" in sup.log_tail(name), timeout=10)


def capture_stop(sup: Supervisor, name: str) -> None:
    """SIGINT lets tcpdump flush and close the file; then wait for it (bounded)."""
    sup.stop(name, sig=signal.SIGINT, timeout=5)
