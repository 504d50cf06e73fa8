"""Every lab scenario: the firewall it sets, what the client runs, and the truth it records.

Scenarios run one after another on the same lab; each sets its own router
rules (iptables argv tails for the LAB_* chains) and gets its own capture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from analyzer.lab import addresses as A
from analyzer.lab import clients as C
from analyzer.lab import truth as T
from analyzer.lab.firewall import (
    Rule,
    dns_drop,
    drop,
    redirect,
    reject_icmp,
    reject_rst,
    sni_match,
)
from analyzer.lab.truth import Json


@dataclass(frozen=True, slots=True)
class Step:
    """One client command in a client's namespace, and whether it should succeed.

    client: which lab Mac runs it (addresses.CLIENTS; mac1 unless a scenario has several).
    """

    argv: tuple[str, ...]
    expect_ok: bool
    stdin: bytes = b""
    timeout: float = 10.0
    client: str = A.CLIENTS[0].name


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    shows: str  # one paragraph for the README: what the capture shows
    steps: tuple[Step, ...]
    truth: Json
    rules: tuple[Rule, ...] = ()
    settle: float = 0.3  # seconds of capture after the last step (late FINs, ICMP)
    tags: tuple[str, ...] = field(default=())
    capture: str = "client"  # Topology.capture_point: "client" (mac1), a client name (its own c0), "lan" (span)


@dataclass(frozen=True, slots=True)
class ClientFiles:
    trust_apple: Path
    trust_managed: Path
    scratch: Path  # pidfiles of client-side chronyd


# --- scenario helpers ------------------------------------------------------------------------

def _truth(flows: list[Json], dns: list[Json], **extra: object) -> Json:
    return {"flows": flows, "dns": dns, **extra}


def _https(name: str) -> str:
    return f"https://{name}/"


def _interception(f: ClientFiles, proxy: str, version: str, trusting: bool) -> Scenario:
    """gs.apple.com redirected into mitmproxy or squid; the client pins (rejects) or trusts the corporate CA.

    proxy: a key of truth.INSPECTION ("unknown_ca" is the second mitmproxy, whose CA names no product).
    """
    port = {"mitmproxy": A.MITM_PORT, "squid": A.SQUID_BUMP_PORT, "unknown_ca": A.UNKNOWN_CA_MITM_PORT}[proxy]
    name = "gs.apple.com"
    cafile = f.trust_managed if trusting else f.trust_apple
    tls_v = "1.2" if version == "TLS 1.2" else "1.3"
    info = T.INSPECTION[proxy]
    if proxy != "squid":  # the mitmdumps
        step = Step(tuple(C.curl(_https(name), cafile, tls=tls_v)), expect_ok=trusting)
        tool, alpn = "curl", T.CURL_ALPN
    else:
        step = Step(tuple(C.python_client("tls", name, cafile, "--tls", tls_v)), expect_ok=trusting)
        tool, alpn = "python ssl", T.PY_ALPN
    # mitmproxy signs leaves with its root directly (either CA); squid sends
    # the forged leaf and the Zscaler intermediate.
    forged = [T.cert(f"CN={name}", info["issuer"])]
    if proxy == "squid":
        forged.append(T.cert(T.ZSCALER_INT, T.ZSCALER_ROOT))
    clear = version == "TLS 1.2"
    if trusting:
        tls_info = T.tls(version, True, alpn=alpn, offered=version, certificates=forged if clear else None)
    else:
        # OpenSSL clients (curl, Python ssl) send this alert before switching
        # to their handshake keys, so it is in clear even in TLS 1.3.
        tls_info = T.tls(version, False, alpn=alpn, offered=version, certificates=forged if clear else None,
                         alert=T.alert("client", "unknown_ca", 48))
    who = "a managed Mac that trusts the corporate CA" if trusting else "a pinning client that trusts only Apple's root"
    if clear:
        seen = "The forged certificate and its issuer are in clear."
        if info["product"] is None:
            seen += (" The issuer is named like no inspection product the catalogue knows, nor like Apple's CAs: "
                     "the proxy is told by the issuer alone and must stay unnamed (\"an unidentified proxy\").")
    elif trusting:
        seen = "The certificate is encrypted: only the proxy's TTL of 64 on the SYN-ACK and ServerHello tells."
    else:
        seen = ("The certificate is encrypted; the proxy's TTL of 64 and the client's unknown_ca alert, which "
                "OpenSSL sends in clear even in TLS 1.3, tell.")
    return Scenario(
        name=f"intercept_{proxy}_{'tls12' if clear else 'tls13'}_{'trust' if trusting else 'reject'}",
        shows=(f"{version} to gs.apple.com, transparently intercepted by {info['software']} "
               f"(issuer {info['issuer']}); the client is {who}. {seen}"),
        rules=(redirect(A.GS_IP, 443, port),),
        steps=(step,),
        truth=_truth(
            [T.flow(A.GS_IP, 443, "intercepted", sni=name, tls_info=tls_info, inspection=proxy,
                    reply_ttl=T.ROUTER_TTL, client_tool=tool,
                    note="client completed the handshake through the proxy" if trusting
                    else "client aborted on the substitute certificate")],
            [T.resolved(name)],
            answer=_interception_answer(name, info["product"], clear, trusting, issuer=info["issuer"]),
        ),
        tags=("interception", proxy),
    )


def _interception_answer(host: str, product: str | None, clear: bool, trusting: bool, *,
                         issuer: str | None = None) -> Json:
    if not clear and trusting:
        # TLS 1.3 through a proxy the client trusts: no certificate and no alert on the wire. The TTL and
        # sometimes a ServerHello delay tell that a box nearer than the server answers, which a proxy that
        # splices does too: a transparent proxy, not interception, is what the capture can prove.
        return T.answer({host: "working"}, findings=["transparent_proxy"],
                        no_findings=["service_blocked", "tls_interception", "possible_tls_interception"])
    if clear and product is None:
        # A visible chain from a CA that names no product: intercepted, by an unidentified proxy; the advice
        # names the substitute issuer, the one thing the admin can look for on their own boxes.
        issuer_cn = (issuer or "").split(",")[0].removeprefix("CN=")
        return T.answer({host: "intercepted"}, findings=["tls_interception"],
                        advice={host: ["exclude", "inspection", issuer_cn]},
                        headline=["HTTPS inspection by an unidentified proxy"])
    named = [product] if clear and product else []
    return T.answer({host: "intercepted"}, findings=["tls_interception"],
                    advice={host: ["exclude", "inspection", *named]}, headline=["HTTPS inspection", *named])


def build_scenarios(f: ClientFiles) -> list[Scenario]:
    ta = f.trust_apple
    gs, mesu_name = "gs.apple.com", A.CNAME_CHAIN[0]
    courier = "1-courier.push.apple.com"
    apns_ok = T.tls("TLS 1.3", True, alpn=T.APNS_ALPN)
    chain_names = list(A.CNAME_CHAIN)
    mesu_dns = T.dns(mesu_name, "NOERROR", "ok", [
        T.cname(A.CNAME_CHAIN[0], A.CNAME_CHAIN[1]), T.cname(A.CNAME_CHAIN[1], A.CNAME_CHAIN[2]),
        T.a(A.CNAME_CHAIN[2], A.CNAME_TARGET_IP)])
    out = [
        Scenario(
            "tls13_ok",
            "DNS lookup of gs.apple.com, then a TLS 1.3 handshake and an HTTP/2 GET that succeed (curl).",
            (Step(tuple(C.curl(_https(gs), ta, tls="1.3")), True),),
            _truth([T.flow(A.GS_IP, 443, "ok", sni=gs, tls_info=T.tls("TLS 1.3", True, alpn=T.CURL_ALPN),
                           client_tool="curl")], [T.resolved(gs)],
                   answer=T.answer({"gs.apple.com": "working"}, no_findings=["possible_tls_interception", "tls_interception"])),
        ),
        Scenario(
            "tls12_ok",
            "TLS 1.2 to gsa.apple.com with openssl s_client: the certificate chain (gs.apple.com <- Apple Server "
            "Authentication CA <- Apple Root CA, lab copies) is visible in clear.",
            (Step(tuple(C.s_client("gsa.apple.com", 443, ta, ["-tls1_2"])), True, stdin=C.http_request("gsa.apple.com")),),
            _truth([T.flow(A.GS_IP, 443, "ok", sni="gsa.apple.com", client_tool="openssl s_client",
                           tls_info=T.tls("TLS 1.2", True, alpn=T.NO_ALPN, offered="TLS 1.2",
                                          certificates=T.chain_for(gs, T.APPLE_AUTH_CA)))],
                   [T.resolved("gsa.apple.com")],
                   answer=T.answer({"gsa.apple.com": "working"}, no_findings=["tls_interception", "certificate_anomaly"])),
        ),
        Scenario(
            "apns_5223_ok",
            "APNs-like client (Python ssl, ALPN apns-security-v3) connects to 1-courier.push.apple.com:5223 and "
            "exchanges data.",
            (Step(tuple(C.python_client("apns", courier, ta)), True),),
            _truth([T.flow(A.COURIER_IP, 5223, "ok", sni=courier, tls_info=apns_ok, client_tool="python ssl")],
                   [T.resolved(courier)],
                   answer=T.answer({"*.push.apple.com": "working"})),
        ),
        Scenario(
            "syn_blackholed",
            "The router drops everything to gs.apple.com:443: SYN and its retransmissions, no answer; curl gives up "
            "after 3 s.",
            (Step(tuple(C.curl(_https(gs), ta)), False),),
            _truth([T.flow(A.GS_IP, 443, "no_response", sni=None, names=[gs], state="S0", reply_ttl=None,
                           client_tool="curl", note="SYN retransmitted, never answered")], [T.resolved(gs)],
                   answer=T.answer({"gs.apple.com": "blocked"}, findings=["blocked_port"], advice={"gs.apple.com": ["allow", "443", "firewall", "dropped"]})),
            rules=(drop(A.GS_IP, 443),),
        ),
        Scenario(
            "rejected_rst",
            "The router rejects connections to gs.apple.com:443 with a TCP reset in the server's name: the RST "
            "carries the router's TTL (64), not the server's (63).",
            (Step(tuple(C.curl(_https(gs), ta)), False),),
            _truth([T.flow(A.GS_IP, 443, "refused", names=[gs], reset_by="middlebox", state="REJ",
                           reply_ttl=None, reset_ttl=T.ROUTER_TTL, client_tool="curl")], [T.resolved(gs)],
                   answer=T.answer({"gs.apple.com": "blocked"}, findings=["injected_reset", "service_blocked"], advice={"gs.apple.com": ["allow", "443", "firewall"]})),
            rules=(reject_rst(A.GS_IP, 443),),
        ),
        Scenario(
            "closed_port_rst",
            "gdmf.apple.com resolves to an Apple address where nothing listens on 443: the real server's kernel "
            "answers the SYN with RST (TTL 63).",
            (Step(tuple(C.curl(_https("gdmf.apple.com"), ta)), False),),
            _truth([T.flow(A.CLOSED_IP, 443, "refused", names=["gdmf.apple.com"], reset_by="server", state="REJ",
                           reply_ttl=None, reset_ttl=T.SERVER_TTL, client_tool="curl")],
                   [T.resolved("gdmf.apple.com")],
                   answer=T.answer({"gdmf.apple.com": "blocked"}, findings=["service_blocked"], no_findings=["injected_reset"], advice={"gdmf.apple.com": ["server"]}, no_advice={"gdmf.apple.com": ["allow tcp 443", "firewall"]})),
        ),
        Scenario(
            "apns_5223_blocked_443_fallback",
            "Port 5223 is dropped by the router: the APNs-like client's SYNs to 5223 go unanswered for 3 s, then it "
            "falls back to 443 on the same courier, which works.",
            (Step(tuple(C.python_client("apns", courier, ta)), True),),
            _truth([T.flow(A.COURIER_IP, 5223, "no_response", names=[courier], state="S0", reply_ttl=None,
                           client_tool="python ssl"),
                    T.flow(A.COURIER_IP, 443, "ok", sni=courier, tls_info=apns_ok, client_tool="python ssl")],
                   [T.resolved(courier)],
                   answer=T.answer({"*.push.apple.com": "degraded"}, findings=["service_degraded"], advice={"*.push.apple.com": ["5223", "fallback"]})),
            rules=(drop(A.COURIER_IP, 5223),),
        ),
        Scenario(
            "ntp_ok",
            "chronyd -Q looks up time.apple.com and gets an NTP answer from chrony on UDP 123.",
            (Step(tuple(C.chrony_query("time.apple.com", f.scratch / "chrony-q.pid")), True),),
            _truth([T.flow(A.TIME_IP, 123, "ok", proto="udp", names=["time.apple.com"], client_tool="chronyd -Q")],
                   [T.resolved("time.apple.com")],
                   answer=T.answer({"time.apple.com": "working"})),
        ),
        Scenario(
            "ntp_icmp_unreachable",
            "The router rejects NTP with ICMP port unreachable (sent from the router's own address 10.77.0.1, "
            "quoting the client's NTP request).",
            (Step(tuple(C.chrony_query("time.apple.com", f.scratch / "chrony-q.pid")), False),),
            _truth([T.flow(A.TIME_IP, 123, "refused", proto="udp", names=["time.apple.com"], reset_by="middlebox",
                           reply_ttl=None, icmp={"type": 3, "code": 3, "from": A.ROUTER_CLIENT_IP, "ttl": T.ROUTER_TTL},
                           client_tool="chronyd -Q")],
                   [T.resolved("time.apple.com")],
                   answer=T.answer({"time.apple.com": "blocked"}, findings=["service_blocked"], advice={"time.apple.com": ["udp 123"]})),
            rules=(reject_icmp(A.TIME_IP, 123),),
        ),
        Scenario(
            "ntp_no_reply",
            "The router drops NTP: the client's requests to time.apple.com:123 get no answer.",
            (Step(tuple(C.chrony_query("time.apple.com", f.scratch / "chrony-q.pid")), False),),
            _truth([T.flow(A.TIME_IP, 123, "no_response", proto="udp", names=["time.apple.com"], reply_ttl=None,
                           client_tool="chronyd -Q")], [T.resolved("time.apple.com")],
                   answer=T.answer({"time.apple.com": "blocked"}, findings=["blocked_port"], advice={"time.apple.com": ["udp 123", "dropped"]})),
            rules=(drop(A.TIME_IP, 123, "udp"),),
        ),
        Scenario(
            "dns_nxdomain",
            f"The resolver answers NXDOMAIN for {A.NXDOMAIN_NAME}; curl never connects.",
            (Step(tuple(C.curl(_https(A.NXDOMAIN_NAME), ta)), False),),
            _truth([], [T.dns(A.NXDOMAIN_NAME, "NXDOMAIN", "nxdomain")],
                   answer=T.answer({A.NXDOMAIN_NAME: "blocked"}, findings=["dns_nxdomain"], advice={A.NXDOMAIN_NAME: ["dns"]})),
        ),
        Scenario(
            "dns_sinkhole",
            f"A DNS filter answers {A.SINKHOLED_NAME} with 0.0.0.0 (dnsmasq address=); the client's connection "
            "goes to its own host and never reaches the wire.",
            (Step(tuple(C.curl(_https(A.SINKHOLED_NAME), ta)), False),),
            _truth([], [T.dns(A.SINKHOLED_NAME, "NOERROR", "sinkholed", [T.a(A.SINKHOLED_NAME, "0.0.0.0")])],
                   answer=T.answer({A.SINKHOLED_NAME: "blocked"}, findings=["dns_sinkhole"], advice={A.SINKHOLED_NAME: ["dns", "allow"]})),
        ),
        Scenario(
            "dns_servfail",
            f"dnsmasq forwards {A.SERVFAIL_NAME} to unbound, which finds the answer DNSSEC-bogus (a trust anchor "
            "for an unsigned zone): the client gets SERVFAIL.",
            (Step(tuple(C.curl(_https(A.SERVFAIL_NAME), ta)), False),),
            _truth([], [T.dns(A.SERVFAIL_NAME, "SERVFAIL", "servfail")],
                   answer=T.answer({A.SERVFAIL_NAME: "blocked"}, findings=["dns_servfail"], advice={A.SERVFAIL_NAME: ["resolver"]})),
        ),
        Scenario(
            "dns_no_response",
            f"The router silently drops DNS queries for {A.SILENT_NAME}: two queries, no answer.",
            (Step(tuple(C.curl(_https(A.SILENT_NAME), ta, timeout=4)), False),),
            _truth([], [T.dns(A.SILENT_NAME, None, "no_response")],
                   answer=T.answer({A.SILENT_NAME: "blocked"}, findings=["dns_no_response"], advice={A.SILENT_NAME: ["resolver"]})),
            rules=(dns_drop(A.SILENT_NAME),),
        ),
        Scenario(
            "dns_cname_chain",
            "mesu.apple.com -> mesu.apple.com.akadns.net -> mesu.apple.com.edgekey.net -> 17.253.1.12, then TLS 1.2 "
            "to that address (issuer Apple Public Server RSA CA 12 - G1 in clear).",
            (Step(tuple(C.curl(_https(mesu_name), ta, tls="1.2")), True),),
            _truth([T.flow(A.MESU_IP, 443, "ok", sni=mesu_name, names=chain_names, client_tool="curl",
                           tls_info=T.tls("TLS 1.2", True, alpn=T.CURL_ALPN, offered="TLS 1.2",
                                          certificates=T.chain_for(mesu_name, T.APPLE_PUBLIC_CA)))],
                   [mesu_dns],
                   answer=T.answer({"mesu.apple.com": "working"})),
        ),
        Scenario(
            "server_tls_alert",
            "openssl s_client offers only TLS 1.2 with AES128-SHA, which the server refuses: a fatal "
            "handshake_failure alert (40) from the server, in clear.",
            (Step(tuple(C.s_client(gs, 443, ta, ["-tls1_2", "-cipher", "AES128-SHA"])), False,
                  stdin=C.http_request(gs)),),
            _truth([T.flow(A.GS_IP, 443, "tls_failed", sni=gs, client_tool="openssl s_client",
                           tls_info=T.tls(None, False, alpn=T.NO_ALPN, offered="TLS 1.2",
                                          alert=T.alert("server", "handshake_failure", 40)))],
                   [T.resolved(gs)],
                   answer=T.answer({"gs.apple.com": "blocked"}, findings=["service_blocked"], advice={"gs.apple.com": ["handshake_failure"]})),
        ),
        Scenario(
            "server_tls_unrecognized_name",
            "configuration.apple.com resolves to the gs server, which does not host that name: nginx "
            "(ssl_reject_handshake) answers the ClientHello with a fatal unrecognized_name alert (112).",
            (Step(tuple(C.curl(_https("configuration.apple.com"), ta)), False),),
            _truth([T.flow(A.GS_IP, 443, "tls_failed", sni="configuration.apple.com", client_tool="curl",
                           tls_info=T.tls(None, False, alpn=T.CURL_ALPN,
                                          alert=T.alert("server", "unrecognized_name", 112)),
                           note="the alert comes instead of a ServerHello")],
                   [T.resolved("configuration.apple.com")],
                   answer=T.answer({"configuration.apple.com": "blocked"}, findings=["service_blocked"], advice={"configuration.apple.com": ["unrecognized_name"]})),
        ),
    ]
    for proxy in ("mitmproxy", "squid"):
        for version in ("TLS 1.2", "TLS 1.3"):
            for trusting in (False, True):
                out.append(_interception(f, proxy, version, trusting))
    proxy_url = f"http://{A.ROUTER_CLIENT_IP}:{A.PROXY_PORT}"
    auth_url = f"http://{A.ROUTER_CLIENT_IP}:{A.PROXY_AUTH_PORT}"
    out += [
        Scenario(
            "proxy_connect_allowed",
            "Explicit proxy (squid): CONNECT gs.apple.com:443 answered 200, then TLS to gs.apple.com inside the "
            "tunnel. The client does no DNS; the proxy resolves.",
            (Step(tuple(C.curl(_https(gs), ta, proxy=proxy_url)), True),),
            _truth([T.flow(A.ROUTER_CLIENT_IP, A.PROXY_PORT, "ok", sni=gs, reply_ttl=T.ROUTER_TTL,
                           tls_info=T.tls("TLS 1.3", True, alpn=T.CURL_ALPN), client_tool="curl",
                           proxy={"connect_target": "gs.apple.com:443", "status": 200})], [],
                   answer=T.answer({"gs.apple.com": "working"})),
        ),
        Scenario(
            "proxy_connect_denied",
            "Explicit proxy (squid) policy denies CONNECT gateway.icloud.com:443 with 403 Forbidden.",
            (Step(tuple(C.curl(_https("gateway.icloud.com"), ta, proxy=proxy_url)), False),),
            _truth([T.flow(A.ROUTER_CLIENT_IP, A.PROXY_PORT, "refused", names=["gateway.icloud.com"],
                           reply_ttl=T.ROUTER_TTL, client_tool="curl",
                           proxy={"connect_target": "gateway.icloud.com:443", "status": 403})], [],
                   answer=T.answer({"gateway.icloud.com": "blocked"}, findings=["service_blocked"], advice={"gateway.icloud.com": ["connect", "403"]})),
        ),
        Scenario(
            "proxy_connect_auth_required",
            "Explicit proxy (squid) that wants credentials: CONNECT gs.apple.com:443 answered 407 Proxy "
            "Authentication Required (APNs and other daemons cannot answer it).",
            (Step(tuple(C.curl(_https(gs), ta, proxy=auth_url)), False),),
            _truth([T.flow(A.ROUTER_CLIENT_IP, A.PROXY_AUTH_PORT, "refused", names=[gs], reply_ttl=T.ROUTER_TTL,
                           client_tool="curl", proxy={"connect_target": "gs.apple.com:443", "status": 407})], [],
                   answer=T.answer({"gs.apple.com": "blocked"}, findings=["service_blocked"], advice={"gs.apple.com": ["407", "authenticate"]})),
        ),
        Scenario(
            "sni_reset",
            "A DPI rule on the router matches 'identity.apple.com' in the ClientHello and answers with a TCP reset in "
            "the server's name (TTL 64); the server never sees the ClientHello.",
            (Step(tuple(C.curl(_https("identity.apple.com"), ta)), False),),
            _truth([T.flow(A.IDENTITY_IP, 443, "reset", sni="identity.apple.com", reset_by="middlebox", state="RSTR",
                           reset_ttl=T.ROUTER_TTL, tls_info=T.tls(None, False, alpn=T.CURL_ALPN), client_tool="curl",
                           note="SYN-ACK from the server (TTL 63), RST right after the ClientHello from the router (TTL 64)")],
                   [T.resolved("identity.apple.com")],
                   answer=T.answer({"identity.apple.com": "blocked"}, findings=["injected_reset", "service_blocked"], advice={"identity.apple.com": ["reset", "filter"]})),
            rules=(sni_match("identity.apple.com", "reset"),),
        ),
        Scenario(
            "sni_drop",
            "A DPI rule on the router drops every segment carrying 'gsa.apple.com': the TCP handshake completes, the "
            "ClientHello is retransmitted and never answered; curl gives up after 3 s.",
            (Step(tuple(C.curl(_https("gsa.apple.com"), ta)), False),),
            _truth([T.flow(A.GS_IP, 443, "no_response", sni="gsa.apple.com", client_tool="curl",
                           tls_info=T.tls(None, False, alpn=T.CURL_ALPN),
                           note="handshake done (server TTL 63), ClientHello retransmitted, no server data")],
                   [T.resolved("gsa.apple.com")],
                   answer=T.answer({"gsa.apple.com": "blocked"}, advice={"gsa.apple.com": ["sni"]})),
            rules=(sni_match("gsa.apple.com", "drop"),),
        ),
        _mixed_session(f),
    ]
    out += _web_scenarios(f)
    out += _service_scenarios(f)
    out += _starttls_scenarios(f)
    out += _dual_stack_scenarios(f)
    out += _span_port_scenarios(f)
    out += _unknown_ca_scenarios(f)
    return out


def _starttls_scenarios(f: ClientFiles) -> list[Scenario]:
    """Mail submission that upgrades in-band: the TLS comes after a clear-text SMTP dialogue."""
    host, sender, rcpt = "smtp.mail.me.com", "mac@lab.example.net", "someone@lab.example.net"
    return [
        Scenario(
            "starttls_mail_submission",
            f"A mail client (curl --ssl-reqd) submits one message to {host}:587, iCloud Mail's submission host "
            "(aiosmtpd in the lab): EHLO in clear, STARTTLS answered 220, then a TLS 1.3 handshake with SNI "
            f"{host} and the message inside it. The TLS is found after the clear-text dialogue, as Zeek's SMTP "
            "analyzer hands the stream to its SSL analyzer. The catalogue lists no mail host: the flow is "
            "attributed by Apple's 17.0.0.0/8.",
            (Step(tuple(C.curl_smtp_submission(host, A.SMTP_SUBMISSION_PORT, f.trust_apple, sender, rcpt)), True,
                  stdin=C.mail_message(sender, rcpt, "starttls lab")),),
            _truth([T.flow(A.SMTP_IP, A.SMTP_SUBMISSION_PORT, "ok", sni=host, client_tool="curl",
                           tls_info=T.tls("TLS 1.3", True, alpn=T.NO_ALPN),
                           note="SMTP EHLO and STARTTLS (220) in clear, then TLS 1.3")],
                   [T.resolved(host)],
                   answer=T.answer({"17.0.0.0/8": "working"},
                                   no_findings=["tls_interception", "possible_tls_interception", "service_blocked",
                                                "blocked_port", "undocumented_port"])),
            tags=("starttls",),
        ),
    ]


def _mixed_session(f: ClientFiles) -> Scenario:
    """A dozen flows of different outcomes in one capture, in the order a Mac waking up might make them."""
    ta, tm = f.trust_apple, f.trust_managed
    courier = "1-courier.push.apple.com"
    steps = [
        Step(tuple(C.curl(_https("gs.apple.com"), ta)), True),
        Step(tuple(C.curl("http://ocsp.apple.com/ocsp", ta)), True),
        Step(tuple(C.chrony_query("time.apple.com", f.scratch / "chrony-q.pid")), True),
        Step(tuple(C.python_client("apns", courier, ta)), True),
        Step(tuple(C.curl(_https(A.CNAME_CHAIN[0]), ta)), True),
        Step(tuple(C.curl(_https("identity.apple.com"), ta)), False),
        Step(tuple(C.curl(_https("gsa.apple.com"), ta)), False),
        Step(tuple(C.curl(_https("setup.icloud.com"), ta)), False),
        Step(tuple(C.curl(_https("gdmf.apple.com"), ta)), False),
        Step(tuple(C.curl(_https(A.SINKHOLED_NAME), ta)), False),
        Step(tuple(C.curl(_https(A.NXDOMAIN_NAME), ta)), False),
        Step(tuple(C.curl(_https(A.SILENT_NAME), ta, timeout=4)), False),
        Step(tuple(C.curl(_https("www.example.net"), tm)), True),
    ]
    apns_ok = T.tls("TLS 1.3", True, alpn=T.APNS_ALPN)
    flows = [
        T.flow(A.GS_IP, 443, "ok", sni="gs.apple.com", tls_info=T.tls("TLS 1.3", True, alpn=T.CURL_ALPN)),
        T.flow(A.OCSP_IP, 80, "ok", names=["ocsp.apple.com"], note="HTTP GET /ocsp, Host ocsp.apple.com"),
        T.flow(A.TIME_IP, 123, "ok", proto="udp", names=["time.apple.com"]),
        T.flow(A.COURIER_IP, 5223, "no_response", names=[courier], state="S0", reply_ttl=None),
        T.flow(A.COURIER_IP, 443, "ok", sni=courier, tls_info=apns_ok),
        T.flow(A.MESU_IP, 443, "ok", sni=A.CNAME_CHAIN[0], names=list(A.CNAME_CHAIN),
               tls_info=T.tls("TLS 1.3", True, alpn=T.CURL_ALPN)),
        T.flow(A.IDENTITY_IP, 443, "intercepted", sni="identity.apple.com", inspection="mitmproxy",
               reply_ttl=T.ROUTER_TTL, tls_info=T.tls("TLS 1.3", False, alpn=T.CURL_ALPN,
                                                         alert=T.alert("client", "unknown_ca", 48)),
               note="mitmproxy, TLS 1.3, pinning client aborts"),
        T.flow(A.GS_IP, 443, "reset", sni="gsa.apple.com", reset_by="middlebox", state="RSTR", reset_ttl=T.ROUTER_TTL,
               tls_info=T.tls(None, False, alpn=T.CURL_ALPN),
               note="SNI-based reset on the same address where gs.apple.com works"),
        T.flow(A.SETUP_IP, 443, "refused", names=["setup.icloud.com"], reset_by="middlebox", state="REJ",
               reply_ttl=None, reset_ttl=T.ROUTER_TTL),
        T.flow(A.CLOSED_IP, 443, "refused", names=["gdmf.apple.com"], reset_by="server", state="REJ",
               reply_ttl=None, reset_ttl=T.SERVER_TTL),
        T.flow(A.CONTROL_IP, 443, "ok", sni="www.example.net", tls_info=T.tls("TLS 1.3", True, alpn=T.CURL_ALPN),
               note="non-Apple control server (openssl s_server)"),
    ]
    dns = [T.resolved("gs.apple.com"), T.resolved("ocsp.apple.com"), T.resolved("time.apple.com"), T.resolved(courier),
           T.dns(A.CNAME_CHAIN[0], "NOERROR", "ok", [T.cname(A.CNAME_CHAIN[0], A.CNAME_CHAIN[1]),
                                                    T.cname(A.CNAME_CHAIN[1], A.CNAME_CHAIN[2]),
                                                    T.a(A.CNAME_CHAIN[2], A.CNAME_TARGET_IP)]),
           T.resolved("identity.apple.com"), T.resolved("gsa.apple.com"), T.resolved("setup.icloud.com"),
           T.resolved("gdmf.apple.com"),
           T.dns(A.SINKHOLED_NAME, "NOERROR", "sinkholed", [T.a(A.SINKHOLED_NAME, "0.0.0.0")]),
           T.dns(A.NXDOMAIN_NAME, "NXDOMAIN", "nxdomain"), T.dns(A.SILENT_NAME, None, "no_response"),
           T.resolved("www.example.net")]
    return Scenario(
        "mixed_session",
        "One capture, thirteen client actions like a Mac's: TLS 1.3 ok, OCSP over HTTP, NTP, APNs 5223 blackholed "
        "with 443 fallback, a CDN CNAME chain, a mitmproxy interception (TLS 1.3, rejected), an SNI reset of "
        "gsa.apple.com on the address where gs.apple.com works, a rejected setup.icloud.com, a closed port, a "
        "sinkholed, an NXDOMAIN and an unanswered lookup, and a non-Apple control server.",
        tuple(steps),
        _truth(flows, dns, answer=T.answer(
            {"gs.apple.com": "working", "ocsp.apple.com": "working", "time.apple.com": "working",
             "mesu.apple.com": "working", "*.push.apple.com": "degraded", "identity.apple.com": "intercepted",
             "gsa.apple.com": "blocked", "setup.icloud.com": "blocked", "gdmf.apple.com": "blocked",
             A.SINKHOLED_NAME: "blocked", A.NXDOMAIN_NAME: "blocked", A.SILENT_NAME: "blocked"},
            findings=["tls_interception", "injected_reset", "service_blocked", "service_degraded", "dns_sinkhole",
                      "dns_nxdomain", "dns_no_response"],
            no_findings=["possible_tls_interception"],
            advice={"*.push.apple.com": ["5223"], "identity.apple.com": ["exclude"],
                    "setup.icloud.com": ["firewall"], "gdmf.apple.com": ["server"], "gsa.apple.com": ["reset"]},
            no_advice={"gdmf.apple.com": ["allow tcp 443", "firewall"]})),
        rules=(drop(A.COURIER_IP, 5223), redirect(A.IDENTITY_IP, 443, A.MITM_PORT), sni_match("gsa.apple.com", "reset"),
               reject_rst(A.SETUP_IP, 443), dns_drop(A.SILENT_NAME)),
        settle=0.5,
        tags=("mixed",),
    )


# --- web: captive portal, HTTP/3 beside TCP 443, iCloud Private Relay blocked (issue 12) --------------

def _portal_redirect_http() -> Rule:
    """The hotspot gateway takes every HTTP connection of the client (not those to itself) to its portal."""
    return ("-t", "nat", "-A", "LAB_PRE", "-p", "tcp", "-s", A.CLIENT_IP, "!", "-d", A.PORTAL_IP, "--dport", "80",
            "-j", "REDIRECT", "--to-ports", "80")


def _dns_served_by(port: int) -> Rule:
    """The client's DNS to the gateway is answered by another resolver on the router (on `port`): the portal's
    (every name is the portal) or the Private-Relay-off one. The client still sees 10.77.0.1:53 answer."""
    return ("-t", "nat", "-A", "LAB_PRE", "-p", "udp", "-s", A.CLIENT_IP, "-d", A.ROUTER_CLIENT_IP, "--dport", "53",
            "-j", "REDIRECT", "--to-ports", str(port))


def _hijacked(name: str) -> Json:
    """A lookup the portal's DNS answered with its own address (a short TTL, as portals give)."""
    return T.dns(name, "NOERROR", "sinkholed", [T.a(name, A.PORTAL_IP, ttl=A.HIJACK_DNS_TTL)])


def _web_scenarios(f: ClientFiles) -> list[Scenario]:
    ta = f.trust_apple
    captive, h3 = "captive.apple.com", A.H3_NAME
    login = f"{A.PORTAL_LOGIN}?ap=lab-ap-1"
    portal_answer = {"findings": ["captive_portal"], "headline": ["captive portal"]}
    return [
        Scenario(
            "captive_probe_ok",
            "macOS's captive network probe without a portal: curl with the CaptiveNetworkSupport user agent GETs "
            "http://captive.apple.com/hotspot-detect.html and Apple's server (nginx) answers 200 \"Success\".",
            (Step(tuple(C.captive_probe()), True),),
            _truth([T.flow(A.CAPTIVE_IP, 80, "ok", names=[captive], client_tool="curl",
                           note="HTTP/1.0 GET /hotspot-detect.html, 200 Success")],
                   [T.resolved(captive)],
                   answer=T.answer({captive: "working"}, no_findings=["captive_portal", "dns_sinkhole"])),
            tags=("captive_portal",),
        ),
        Scenario(
            "captive_portal_http_302",
            "A hotspot before login: DNS is honest, but the gateway (iptables REDIRECT of every port-80 connection "
            "to its own nginx) answers the probe to captive.apple.com in the server's name (TTL 64, the server's "
            f"would be 63) with 302 to {A.PORTAL_LOGIN}; the client then loads the portal page, as the Mac's "
            "portal sheet does.",
            (Step(tuple(C.captive_probe()), True), Step(tuple(C.curl(login, ta)), True)),
            _truth([T.flow(A.CAPTIVE_IP, 80, "ok", names=[captive], reply_ttl=T.ROUTER_TTL,
                           client_tool="curl",
                           note=f"the gateway answers for captive.apple.com: 302 Location {login}&orig=..."),
                    T.flow(A.PORTAL_IP, 80, "ok", names=[A.PORTAL_NAME], reply_ttl=T.ROUTER_TTL, client_tool="curl",
                           note="the portal's login page, 200")],
                   [T.resolved(captive), T.resolved(A.PORTAL_NAME)],
                   answer=T.answer({captive: "blocked"}, **portal_answer, no_findings=["dns_sinkhole"],
                                   advice={captive: ["portal"]})),
            rules=(_portal_redirect_http(),),
            tags=("captive_portal",),
        ),
        Scenario(
            "captive_portal_dns_hijack",
            f"A hotspot before login whose DNS answers every name with the portal's address {A.PORTAL_IP} (dnsmasq "
            "address=/#/, TTL 1, the client's DNS redirected to it): the probe to captive.apple.com reaches the "
            "portal's nginx and gets 302 to the login page; https://gs.apple.com/ goes to the portal too, which "
            "refuses TCP 443 (its kernel's RST).",
            (Step(tuple(C.captive_probe()), True), Step(tuple(C.curl(_https("gs.apple.com"), ta)), False)),
            _truth([T.flow(A.PORTAL_IP, 80, "ok", names=[captive], reply_ttl=T.ROUTER_TTL, client_tool="curl",
                           note=f"the portal answers 302 Location {login}&orig=... to Host captive.apple.com"),
                    T.flow(A.PORTAL_IP, 443, "refused", names=["gs.apple.com"], reset_by="server", state="REJ",
                           reply_ttl=None, reset_ttl=T.ROUTER_TTL, client_tool="curl",
                           note="nothing listens on the portal's 443")],
                   [_hijacked(captive), _hijacked("gs.apple.com")],
                   answer=T.answer({captive: "blocked", "gs.apple.com": "blocked"}, **portal_answer,
                                   no_findings=["dns_sinkhole"],
                                   advice={captive: ["portal"], "gs.apple.com": ["portal"]})),
            rules=(_dns_served_by(A.HIJACK_DNS_PORT),),
            tags=("captive_portal",),
        ),
        Scenario(
            "http3_ok",
            f"HTTP/3 to {h3}, a CDN host the catalogue lists on TCP 443 only: an aioquic client sends a real QUIC "
            "v1 Initial (SNI and ALPN h3 inside) to UDP 443, where an aioquic server answers; the GET returns 200.",
            (Step(tuple(C.python_client("h3", h3, ta)), True),),
            _truth([T.flow(A.H3_IP, 443, "ok", proto="udp", sni=h3, client_tool="aioquic",
                           note="QUIC v1, TLS 1.3 inside, ALPN h3; HTTP/3 GET answered 200")],
                   [T.resolved(h3)],
                   answer=T.answer({h3: "working"}, no_findings=["undocumented_port", "service_degraded"])),
            tags=("http3",),
        ),
        Scenario(
            "http3_udp_blocked_tcp_fallback",
            f"The router drops UDP 443 to {h3}: the aioquic client's Initials go unanswered for 1 s, then it falls "
            "back to TLS on TCP 443 (Python ssl, HTTP/1.1), which works, as browsers and nsurlsessiond do; the "
            "kept-alive connection idles 1.2 s before the client closes it.",
            (Step(tuple(C.python_client("h3", h3, ta)), True),),
            _truth([T.flow(A.H3_IP, 443, "no_response", proto="udp", sni=h3, reply_ttl=None, client_tool="aioquic",
                           note="QUIC Initial retransmitted, never answered"),
                    T.flow(A.H3_IP, 443, "ok", sni=h3, tls_info=T.tls("TLS 1.3", True, alpn=T.PY_ALPN),
                           client_tool="python ssl", note="the TCP fallback")],
                   [T.resolved(h3)],
                   answer=T.answer({h3: "degraded"}, findings=["service_degraded"], no_findings=["undocumented_port"],
                                   advice={h3: ["fallback"]})),
            rules=(drop(A.H3_IP, 443, "udp"),),
            tags=("http3",),
        ),
        Scenario(
            "private_relay_blocked",
            "iCloud Private Relay turned off for the network the way Apple documents it: the router drops UDP 443 "
            "to mask.icloud.com (the client's QUIC Initials, ALPN h3, go unanswered for 1 s) and rejects TCP 443 "
            "to mask-h2.icloud.com with a reset (TTL 64), so the client's fallback fails too. The Mac goes on "
            "without the relay: a second later, https://gs.apple.com/ works directly.",
            (Step(tuple(C.python_client("h3", "mask.icloud.com", ta, "--tcp-host", "mask-h2.icloud.com")), False),
             # The pause lets the capture outlast the unanswered Initials (a capture that ends right after a
             # request cannot tell a drop from a slow answer).
             Step(("sleep", "1.2"), True),
             Step(tuple(C.curl(_https("gs.apple.com"), ta, tls="1.3")), True)),
            _truth([T.flow(A.MASK_IP, 443, "no_response", proto="udp", sni="mask.icloud.com", reply_ttl=None,
                           client_tool="aioquic", note="QUIC Initial retransmitted, never answered"),
                    T.flow(A.MASK_H2_IP, 443, "refused", names=["mask-h2.icloud.com"], reset_by="middlebox",
                           state="REJ", reply_ttl=None, reset_ttl=T.ROUTER_TTL, client_tool="python ssl"),
                    T.flow(A.GS_IP, 443, "ok", sni="gs.apple.com", client_tool="curl",
                           tls_info=T.tls("TLS 1.3", True, alpn=T.CURL_ALPN))],
                   [T.resolved("mask.icloud.com"), T.resolved("mask-h2.icloud.com"), T.resolved("gs.apple.com")],
                   # Intended by the admin, so not a failure: the rows are blocked, the finding says why, and the
                   # generic failure findings stay away.
                   answer=T.answer({"mask.icloud.com": "blocked", "mask-h2.icloud.com": "blocked",
                                    "gs.apple.com": "working"},
                                   findings=["private_relay_unavailable"],
                                   no_findings=["service_blocked", "blocked_port"],
                                   advice={"mask.icloud.com": ["private relay"], "mask-h2.icloud.com": ["private relay"]},
                                   headline=["Private Relay"])),
            rules=(drop(A.MASK_IP, 443, "udp"), reject_rst(A.MASK_H2_IP, 443)),
            tags=("private_relay", "http3"),
        ),
        Scenario(
            "private_relay_dns_nxdomain",
            "iCloud Private Relay turned off the way Apple recommends: the network's resolver (dnsmasq, local= for "
            "the two names, everything else forwarded) answers NXDOMAIN for mask.icloud.com and mask-h2.icloud.com, "
            "so the client never connects; https://gs.apple.com/ resolves and works directly.",
            (Step(tuple(C.python_client("h3", "mask.icloud.com", ta, "--tcp-host", "mask-h2.icloud.com")), False),
             Step(tuple(C.curl(_https("gs.apple.com"), ta, tls="1.3")), True)),
            _truth([T.flow(A.GS_IP, 443, "ok", sni="gs.apple.com", client_tool="curl",
                           tls_info=T.tls("TLS 1.3", True, alpn=T.CURL_ALPN))],
                   [*[T.dns(name, "NXDOMAIN", "nxdomain") for name in A.RELAY_NAMES], T.resolved("gs.apple.com")],
                   # Apple's documented switch, not a DNS filter gone wrong: no dns_nxdomain failure either.
                   answer=T.answer({"mask.icloud.com": "blocked", "mask-h2.icloud.com": "blocked",
                                    "gs.apple.com": "working"},
                                   findings=["private_relay_unavailable"],
                                   no_findings=["service_blocked", "dns_nxdomain"],
                                   advice={"mask.icloud.com": ["private relay"], "mask-h2.icloud.com": ["private relay"]},
                                   headline=["Private Relay"])),
            rules=(_dns_served_by(A.RELAY_OFF_DNS_PORT),),
            tags=("private_relay",),
        ),
    ]


# --- issue 12: real NTP clients, a selective proxy, a TLS version mismatch, squid's SSL_ports -------------

def _ntp_scenario(name: str, tool: str, argv: list[str], dropped: bool, how: str) -> Scenario:
    """One real NTP client asking time.apple.com, with NTP allowed or dropped by the router."""
    host = "time.apple.com"
    if dropped:
        flow = T.flow(A.TIME_IP, 123, "no_response", proto="udp", names=[host], reply_ttl=None, client_tool=tool,
                      note="requests (LI=3 when unsynchronised) never answered")
        answer = T.answer({host: "blocked"}, findings=["blocked_port"], no_findings=["undocumented_port"],
                          advice={host: ["udp 123"]})
        shows = f"{how} The router drops UDP 123: every request goes unanswered."
    else:
        flow = T.flow(A.TIME_IP, 123, "ok", proto="udp", names=[host], client_tool=tool)
        # A request read as QUIC would lose the NTP facts and show up as an odd port for the host.
        answer = T.answer({host: "working"}, no_findings=["undocumented_port", "service_blocked", "blocked_port"])
        shows = f"{how} NTP is allowed: the lab's chrony server answers each request."
    return Scenario(name, shows, (Step(tuple(argv), not dropped),), _truth([flow], [T.resolved(host)], answer=answer),
                    rules=(drop(A.TIME_IP, 123, "udp"),) if dropped else (), tags=("ntp", tool))


def _ntp_client_scenarios(f: ClientFiles) -> list[Scenario]:
    chronyd = C.chrony_daemon("time.apple.com", f.scratch / "chronyd-client.pid")
    ntpdig = C.ntpdig("time.apple.com")
    chronyd_how = ("chronyd runs as the client's time daemon (`server time.apple.com iburst`, 1 s poll, never "
                   "setting the clock) and polls time.apple.com in a burst, one socket per request; chrony puts "
                   "LI=0 in client requests whatever its own state, so they start with 0x23.")
    ntpdig_how = ("ntpsec's ntpdig (SNTP) asks time.apple.com twice, each from a new socket; its requests start "
                  "with 0xe3 (LI=3 unsynchronised, version 4, client mode), which is also the shape of a QUIC long "
                  "header.")
    closed = "time-macos.apple.com"
    return [
        _ntp_scenario("ntp_chronyd_daemon_ok", "chronyd", chronyd, False, chronyd_how),
        _ntp_scenario("ntp_chronyd_daemon_dropped", "chronyd", chronyd, True, chronyd_how),
        _ntp_scenario("ntp_ntpdig_ok", "ntpdig", ntpdig, False, ntpdig_how),
        _ntp_scenario("ntp_ntpdig_dropped", "ntpdig", ntpdig, True, ntpdig_how),
        # closed_port_rst's twin for UDP: the server's own kernel refuses, not a firewall.
        Scenario(
            "ntp_server_port_unreachable",
            f"{closed} resolves to an Apple address where no NTP server runs: that host's own kernel answers "
            "each ntpdig request with ICMP port unreachable, sent from the server's address with its TTL (63), "
            "unlike ntp_icmp_unreachable where the router (10.77.0.1, TTL 64) refuses.",
            (Step(tuple(C.ntpdig(closed, timeout=1)), False),),
            _truth([T.flow(A.CLOSED_IP, 123, "refused", proto="udp", names=[closed], reset_by="server",
                           reply_ttl=None, icmp={"type": 3, "code": 3, "from": A.CLOSED_IP, "ttl": T.SERVER_TTL},
                           client_tool="ntpdig")],
                   [T.resolved(closed)],
                   answer=T.answer({closed: "blocked"}, findings=["service_blocked"],
                                   no_findings=["blocked_port", "undocumented_port"], advice={closed: ["server"]},
                                   no_advice={closed: ["allow udp 123", "firewall"]})),
            tags=("ntp", "ntpdig"),
        ),
    ]


def _selective_proxy(f: ClientFiles) -> Scenario:
    """squid peeks at the SNI, bumps identity.apple.com and splices idmsa.apple.com; gs and gsa pass untouched."""
    ta = f.trust_apple
    gs, gsa, bumped, spliced = "gs.apple.com", "gsa.apple.com", A.BUMPED_NAME, A.SPLICED_NAME
    info = T.INSPECTION["squid"]
    forged = [T.cert(f"CN={bumped}", info["issuer"]), T.cert(T.ZSCALER_INT, T.ZSCALER_ROOT)]
    tls13 = T.tls("TLS 1.3", True, alpn=T.CURL_ALPN)
    steps = (
        Step(tuple(C.curl(_https(gs), ta, tls="1.3")), True),
        Step(tuple(C.curl(_https(bumped), ta, tls="1.2")), False),
        Step(tuple(C.curl(_https(gsa), ta, tls="1.3")), True),
        Step(tuple(C.curl(_https(spliced), ta, tls="1.2")), True),
    )
    flows = [
        T.flow(A.GS_IP, 443, "ok", sni=gs, tls_info=tls13, client_tool="curl",
               note="not redirected: the genuine server's TTL (63)"),
        T.flow(A.IDENTITY_IP, 443, "intercepted", sni=bumped, inspection="squid", reply_ttl=T.ROUTER_TTL,
               client_tool="curl", note="bumped: the substitute chain in clear, the pinning client aborts",
               tls_info=T.tls("TLS 1.2", False, alpn=T.CURL_ALPN, offered="TLS 1.2", certificates=forged,
                              alert=T.alert("client", "unknown_ca", 48))),
        T.flow(A.GS_IP, 443, "ok", sni=gsa, tls_info=tls13, client_tool="curl",
               note="not redirected, after the interception in the same capture"),
        T.flow(A.SPLICED_IP, 443, "ok", sni=spliced, reply_ttl=T.ROUTER_TTL, client_tool="curl",
               note="spliced by the proxy: its TCP (TTL 64), the real server's TLS (the genuine Apple chain)",
               tls_info=T.tls("TLS 1.2", True, alpn=T.CURL_ALPN, offered="TLS 1.2",
                              certificates=T.chain_for(spliced, T.APPLE_AUTH_CA))),
    ]
    dns = [T.resolved(gs), T.resolved(bumped), T.resolved(gsa), T.resolved(spliced)]
    return Scenario(
        "selective_proxy_bump_one_splice_rest",
        (f"A selective TLS-inspecting proxy (squid-openssl ssl-bump, the Zscaler-named CA): the router redirects "
         f"{bumped} and {spliced} into it; it peeks at the ClientHello, bumps {bumped} (TLS 1.2: the substitute "
         f"chain is in clear and the pinning client aborts with unknown_ca) and splices {spliced} (TLS 1.2 with the "
         f"genuine Apple chain through the proxy's TCP, TTL 64). {gs} and {gsa} are not redirected, as a "
         f"firewall's decryption policy lets exempted hosts pass: TLS 1.3 handshakes that complete with the real "
         f"server (its TTL, 63), before and after the interception. Only {bumped} is intercepted; nothing in the "
         f"other flows is a sign of interception."),
        steps,
        _truth(flows, dns, answer=T.answer(
            {bumped: "intercepted", gs: "working", gsa: "working", spliced: "working"},
            findings=["tls_interception"], no_findings=["possible_tls_interception", "certificate_anomaly"],
            advice={bumped: ["exclude", info["product"]]}, headline=["HTTPS inspection"])),
        rules=(redirect(A.IDENTITY_IP, 443, A.SELECTIVE_BUMP_PORT), redirect(A.SPLICED_IP, 443, A.SELECTIVE_BUMP_PORT)),
        tags=("interception", "squid", "selective"),
    )


def _service_scenarios(f: ClientFiles) -> list[Scenario]:
    ta = f.trust_apple
    courier = "1-courier.push.apple.com"
    tls13_host = A.TLS13_ONLY_NAME
    stock_proxy = f"http://{A.ROUTER_CLIENT_IP}:{A.STOCK_PROXY_PORT}"
    return [
        *_ntp_client_scenarios(f),
        _selective_proxy(f),
        Scenario(
            "tls13_only_server_tls12_client",
            f"{tls13_host} is served by nginx with `ssl_protocols TLSv1.3`; openssl s_client offers at most TLS 1.2: "
            "the server answers the ClientHello with a fatal protocol_version alert (70), in clear.",
            (Step(tuple(C.s_client(tls13_host, 443, ta, ["-tls1_2"])), False, stdin=C.http_request(tls13_host)),),
            _truth([T.flow(A.TLS13_ONLY_IP, 443, "tls_failed", sni=tls13_host, client_tool="openssl s_client",
                           tls_info=T.tls(None, False, alpn=T.NO_ALPN, offered="TLS 1.2",
                                          alert=T.alert("server", "protocol_version", 70)),
                           note="the alert comes instead of a ServerHello")],
                   [T.resolved(tls13_host)],
                   answer=T.answer({tls13_host: "blocked"}, findings=["service_blocked"],
                                   no_findings=["tls_interception", "possible_tls_interception"],
                                   advice={tls13_host: ["protocol_version", "TLS 1.2", "TLS 1.3"]})),
            tags=("tls",),
        ),
        Scenario(
            "proxy_connect_5223_ssl_ports",
            f"Explicit proxy with squid's stock ACLs (`http_access deny CONNECT !SSL_ports`, SSL_ports = 443): "
            f"CONNECT {courier}:5223 is answered 403 Forbidden, so APNs' own port never gets through the proxy.",
            (Step(tuple(C.curl(f"https://{courier}:5223/", ta, proxy=stock_proxy)), False),),
            _truth([T.flow(A.ROUTER_CLIENT_IP, A.STOCK_PROXY_PORT, "refused", names=[courier], reply_ttl=T.ROUTER_TTL,
                           client_tool="curl", proxy={"connect_target": f"{courier}:5223", "status": 403})], [],
                   answer=T.answer({"*.push.apple.com": "blocked"}, findings=["service_blocked"],
                                   advice={"*.push.apple.com": ["SSL_ports", "5223"]})),
            tags=("proxy",),
        ),
    ]


# --- dual-stack Macs and several Macs in one capture (issue 12) ------------------------------------

def _curl_dual_stack(url: str, cafile: Path, *, happy_eyeballs_ms: int, timeout: float = 3.0) -> tuple[str, ...]:
    """curl as a dual-stack Mac runs it: not pinned to IPv4, so it asks A and AAAA and tries IPv6 first.

    happy_eyeballs_ms: how long the IPv6 attempt runs alone before curl starts IPv4 beside it (curl's
    default is 200 ms; longer, the dropped SYN is retransmitted first; beyond the timeout, IPv6 alone).
    """
    argv = [a for a in C.curl(url, cafile, timeout=timeout) if a != "-4"]
    return tuple([*argv[:-1], "--happy-eyeballs-timeout-ms", str(happy_eyeballs_ms), argv[-1]])


def _dual_stack_scenarios(f: ClientFiles) -> list[Scenario]:
    """The Mac asks its IPv4 resolver for A and AAAA and connects over IPv6; a firewall drops IPv6 443 to
    Apple's IPv6 range. The named service row must carry the IPv6 flow, and the advice name 2620:149::/32."""
    ta, tm, gs = f.trust_apple, f.trust_managed, "gs.apple.com"
    v6_dropped = T.flow(A.GS_IP6, 443, "no_response", names=[gs], state="S0", reply_ttl=None, client_tool="curl",
                        client_ip=A.CLIENT_IP6, note="IPv6 SYN retransmitted, never answered (ip6tables DROP)")
    both_lookups = [T.resolved(gs), T.resolved(gs, "AAAA")]
    v6_advice = {gs: [A.APPLE_NET6, "443"]}
    mac4 = A.CLIENTS_BY_NAME["mac4"]
    courier = "1-courier.push.apple.com"
    # openssl s_client not pinned to IPv4: it asks A and AAAA and connects to the first address glibc
    # sorts (IPv6, both ends global), with no happy eyeballs: a dropped port stalls it until the step's end.
    apns = tuple(a for a in C.s_client(courier, 5223, ta, ["-alpn", "apns-security-v3", "-no_ign_eof"]) if a != "-4")
    apns_443 = tuple(a for a in C.s_client(courier, 443, ta, ["-alpn", "apns-security-v3", "-no_ign_eof"])
                     if a != "-4")
    return [
        Scenario(
            "dual_stack_v6_dropped_v4_fallback",
            "A dual-stack Mac (curl, not pinned to IPv4) asks its IPv4 resolver for gs.apple.com's A and AAAA "
            f"records and connects to {A.GS_IP6} first; the router's ip6tables drops IPv6 TCP 443 to Apple's "
            "range, so the SYN is retransmitted into silence until curl's happy eyeballs (1.5 s here) starts "
            f"IPv4, which works. The DNS is IPv4, the dropped flow IPv6 from {A.CLIENT_IP6}: only the Mac's "
            "MAC address (or the capture being the Mac's own) ties the two together.",
            (Step(_curl_dual_stack(_https(gs), ta, happy_eyeballs_ms=1500), True),),
            _truth([v6_dropped,
                    T.flow(A.GS_IP, 443, "ok", sni=gs, tls_info=T.tls("TLS 1.3", True, alpn=T.CURL_ALPN),
                           client_tool="curl", note="the IPv4 fallback")],
                   both_lookups,
                   answer=T.answer({gs: "degraded", A.APPLE_NET6: "not_seen"}, findings=["service_degraded"],
                                   advice=v6_advice,
                                   no_advice={gs: ["17.0.0.0/8"]})),
            rules=(drop(A.APPLE_NET6, 443),),
            tags=("ipv6", "dual_stack"),
        ),
        Scenario(
            "dual_stack_v6_dropped_no_fallback",
            "The same dual-stack Mac and the same ip6tables DROP of IPv6 TCP 443 to Apple's range, but the "
            "IPv6 attempt runs alone (happy eyeballs longer than the 3 s connect timeout, like a network "
            "where IPv4 to Apple is no way out): curl asks A and AAAA over IPv4, retransmits its IPv6 SYN and "
            "gives up. The non-Apple control server answers over IPv6 (curl -6 to www.example.net), so IPv6 "
            "itself works and only Apple's range is dropped.",
            (Step(tuple(a if a != "-4" else "-6" for a in C.curl(_https("www.example.net"), tm)), True),
             Step(_curl_dual_stack(_https(gs), ta, happy_eyeballs_ms=5000), False)),
            _truth([T.flow(A.CONTROL_IP6, 443, "ok", sni="www.example.net", client_ip=A.CLIENT_IP6,
                           tls_info=T.tls("TLS 1.3", True, alpn=T.CURL_ALPN), client_tool="curl -6",
                           note="non-Apple control server over IPv6 (openssl s_server)"),
                    v6_dropped],
                   [T.resolved("www.example.net"), T.resolved("www.example.net", "AAAA"), *both_lookups],
                   answer=T.answer({gs: "blocked", A.APPLE_NET6: "not_seen"}, findings=["blocked_port"],
                                   advice=v6_advice,
                                   no_advice={gs: ["17.0.0.0/8"]})),
            rules=(drop(A.APPLE_NET6, 443),),
            tags=("ipv6", "dual_stack"),
        ),
        Scenario(
            "dual_stack_dns_v6_connect_v4",
            f"The other way round: a Mac whose resolver is the router's IPv6 address ({mac4.resolver}) asks for "
            f"gs.apple.com over IPv6 from {mac4.ip6} and connects over IPv4 from {mac4.ip} (curl -4); the "
            "router rejects IPv4 TCP 443 to gs.apple.com with a reset. The lookup and the refused flow share "
            "only the Mac's MAC address; the capture is that Mac's own interface.",
            (Step(tuple(C.curl(_https(gs), ta)), False, client=mac4.name),),
            _truth([T.flow(A.GS_IP, 443, "refused", names=[gs], reset_by="middlebox", state="REJ", reply_ttl=None,
                           reset_ttl=T.ROUTER_TTL, client_tool="curl -4", client_ip=mac4.ip)],
                   [T.resolved(gs, client_ip=mac4.ip6, server_ip=mac4.resolver)],
                   answer=T.answer({gs: "blocked", "17.0.0.0/8": "not_seen"}, findings=["service_blocked"],
                                   advice={gs: ["443"]},
                                   no_advice={gs: ["2620:149"]})),
            rules=(reject_rst(A.GS_IP, 443),),
            capture=mac4.name,
            tags=("ipv6", "dual_stack"),
        ),
        Scenario(
            "dual_stack_apns_v6_5223_dropped",
            "An APNs-like client (openssl s_client, ALPN apns-security-v3, not pinned to IPv4) asks its IPv4 "
            f"resolver for {courier}'s A and AAAA records and connects over IPv6 to {A.COURIER_IP6} (Apple's "
            "APNs range 2620:149:a44::/48); ip6tables drops port 5223 there, so it stalls until given up after "
            "3 s, and the next attempt on 443 over IPv6 works. The push service is degraded, and only on IPv6.",
            (Step(apns, False, stdin=b"apns-lab-ping\n", timeout=3.0),
             Step(apns_443, True, stdin=b"apns-lab-ping\n")),
            _truth([T.flow(A.COURIER_IP6, 5223, "no_response", names=[courier], state="S0", reply_ttl=None,
                           client_ip=A.CLIENT_IP6, client_tool="openssl s_client",
                           note="IPv6 SYN to 5223 retransmitted, never answered (ip6tables DROP)"),
                    T.flow(A.COURIER_IP6, 443, "ok", sni=courier, client_ip=A.CLIENT_IP6,
                           tls_info=T.tls("TLS 1.3", True, alpn=T.APNS_ALPN), client_tool="openssl s_client")],
                   [T.resolved(courier), T.resolved(courier, "AAAA")],
                   answer=T.answer({"*.push.apple.com": "degraded", "2620:149:a44::/48": "not_seen"},
                                   findings=["service_degraded"], advice={"*.push.apple.com": ["5223", "2620:149:"]},
                                   no_advice={"*.push.apple.com": ["17.0.0.0/8"]})),
            rules=(drop(A.COURIER_IP6, 5223),),
            tags=("ipv6", "dual_stack", "apns"),
        ),
    ]


def _span_port_scenarios(f: ClientFiles) -> list[Scenario]:
    """Several Macs in one capture, taken on the router's LAN bridge as a span port would."""
    ta, gs = f.trust_apple, "gs.apple.com"
    mac1, mac2, mac3 = (A.CLIENTS_BY_NAME[n] for n in ("mac1", "mac2", "mac3"))
    ok = T.tls("TLS 1.3", True, alpn=T.CURL_ALPN)
    return [
        Scenario(
            "span_three_macs_one_blocked",
            f"A span-port capture (the router's LAN bridge) of three Macs using gs.apple.com one after another: "
            f"{mac1.ip} and {mac3.ip} get through, while a rule for {mac2.ip} alone (a per-device ACL) drops its "
            "SYNs to gs.apple.com:443 until curl gives up after 3 s. Each Mac does its own lookup from its own "
            "address and MAC. The service works for 2 of 3 Macs: degraded, with the failing Mac named.",
            (Step(tuple(C.curl(_https(gs), ta)), True, client=mac1.name),
             Step(tuple(C.curl(_https(gs), ta)), False, client=mac2.name),
             Step(tuple(C.curl(_https(gs), ta)), True, client=mac3.name)),
            _truth([T.flow(A.GS_IP, 443, "ok", sni=gs, tls_info=ok, client_tool="curl", client_ip=mac1.ip),
                    T.flow(A.GS_IP, 443, "no_response", names=[gs], state="S0", reply_ttl=None, client_tool="curl",
                           client_ip=mac2.ip, note="this Mac's SYNs dropped by a rule on its source address"),
                    T.flow(A.GS_IP, 443, "ok", sni=gs, tls_info=ok, client_tool="curl", client_ip=mac3.ip)],
                   [T.resolved(gs, client_ip=m.ip) for m in (mac1, mac2, mac3)],
                   answer=T.answer({gs: {"status": "degraded", "clients_tried": 3, "clients_failed": 1}},
                                   findings=["service_degraded"], no_findings=["service_blocked"])),
            rules=(drop(A.GS_IP, 443, src=mac2.ip),),
            capture="lan",
            tags=("span_port", "several_clients"),
        ),
    ]


# --- interception by a proxy whose CA is named like no product (issue 13) -------------------------

def _unknown_ca_scenarios(f: ClientFiles) -> list[Scenario]:
    """TLS 1.2 to gs.apple.com through the second mitmdump ("Acme Corp Web Filter CA"): a managed Mac that
    trusts the CA, and a pinning client that rejects it (unknown_ca). The chain is in clear; its issuer is
    neither Apple's nor any catalogued product's, so the interception must be found and left unnamed."""
    return [_interception(f, "unknown_ca", "TLS 1.2", trusting) for trusting in (True, False)]
