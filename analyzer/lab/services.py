"""The real software of the lab: configuration files and how each server starts.

Every server runs in the foreground under the Supervisor (so it is stopped by
its pid) and is ready only when its port is bound.

    apple ns:   nginx (TLS 1.2+1.3 on 443 and 5223, HTTP on 80; gs.apple.com
                also on IPv6), chronyd (NTP)
    control ns: openssl s_server (a non-Apple TLS server; one per address family)
    router ns:  dnsmasq (the Macs' resolver on IPv4 and IPv6, A and AAAA), unbound
                (dnsmasq's upstream for the SERVFAIL name: DNSSEC bogus), squid
                (explicit proxy + ssl-bump), mitmdump
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
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
             "chronyd", "dnsmasq", "unbound", "squid", "curl"]
    missing = [t for t in tools if shutil.which(t) is None]
    missing += [str(p) for p in (SQUID_CERTGEN, SQUID_NCSA, mitmdump_path()) if not p.exists()]
    return missing


@dataclass(frozen=True, slots=True)
class ServiceDirs:
    root: Path

    def sub(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
        return path


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
cache deny all
dns_nameservers {A.ROUTER_CLIENT_IP}
hosts_file none
pinger_enable off
visible_hostname lab-proxy.example.net
pid_filename {d}/squid.pid
cache_log {d}/cache.log
access_log {d}/access.log
coredump_dir {d}
cache_effective_user proxy
shutdown_lifetime 0 seconds
"""


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
    if not mitmdump_path().exists():
        raise LabError(f"mitmproxy not installed at {mitmdump_path()} (run .ci/lab-deps.sh)")
    argv = [str(mitmdump_path()), "--mode", "transparent", "--listen-port", str(A.MITM_PORT),
            "--set", f"confdir={pki.mitm_confdir}", "--set", f"ssl_verify_upstream_trusted_ca={pki.apple_root}",
            "--set", "termlog_verbosity=info", "--set", "flow_detail=1"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(pki.mitm_confdir), "LANG": "C.UTF-8"}
    sup.start("mitmdump", sup.topo.router, argv, env=env)


def mitmdump_ready(sup: Supervisor) -> None:
    sup.wait_ready("mitmdump", listening(sup.topo, sup.topo.router, "tcp", A.MITM_PORT), 30)


def start_all(sup: Supervisor, dirs: ServiceDirs, pki: LabPki) -> None:
    """Start every server; the slow starters (mitmdump, squid) run while the others come up."""
    start_mitmdump(sup, pki)
    start_squid(sup, dirs, pki)
    start_nginx(sup, dirs, pki)
    start_control_server(sup, pki)
    start_courier(sup, pki)
    start_chrony(sup, dirs)
    start_unbound(sup, dirs)
    start_dnsmasq(sup, dirs)
    squid_ready(sup)
    mitmdump_ready(sup)


def capture_start(sup: Supervisor, name: str, pcap: Path, where: str = "client") -> subprocess.Popen[bytes]:
    """tcpdump on a capture point (Topology.capture_point: the Mac's own interface, or the LAN bridge);
    returns once it says it is listening."""
    ns, iface = sup.topo.capture_point(where)
    argv = ["tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-s", "0", "-Z", "root", "-w", str(pcap)]
    return sup.start(name, ns, argv, ready=lambda: "listening on" in sup.log_tail(name), timeout=10)


def capture_stop(sup: Supervisor, name: str) -> None:
    """SIGINT lets tcpdump flush and close the file; then wait for it (bounded)."""
    sup.stop(name, sig=signal.SIGINT, timeout=5)
