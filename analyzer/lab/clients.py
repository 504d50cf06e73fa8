"""The client "Mac": command lines for curl, openssl s_client, chronyd, ntpdig and a Python ssl client.

Every client resolves names with the system resolver (glibc, through the
namespace's resolv.conf to the router's dnsmasq), so each lookup is real DNS
on the wire; pinned to IPv4, it asks only for A records (a dual-stack
scenario drops the pin: scenarios._curl_dual_stack) and has a
short, bounded timeout. Two trust stores stand for two kinds of client: the
pinning-like one trusts only the lab Apple root (and the control server's
root); the managed Mac also trusts the corporate inspection CAs.

`python -m analyzer.lab.clients tls|apns|h3 ...` is the Python client (ssl; h3: aioquic
HTTP/3, then TLS on TCP 443 when QUIC gets no answer); it runs inside the
client namespace and prints one JSON line of what happened.
`python -m analyzer.lab.clients chronyd ...` runs chronyd as the client
daemon a Mac-like host runs, for a bounded time, and says whether it
selected its server.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path


def curl(url: str, cafile: Path, *, tls: str | None = None, proxy: str | None = None, timeout: float = 3.0) -> list[str]:
    """curl over IPv4; tls is "1.2" (at most 1.2), "1.3" (only 1.3) or None (default: 1.2..1.3)."""
    argv = ["curl", "-4", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{http_connect} %{http_version}\\n",
            "--cacert", str(cafile), "--connect-timeout", f"{timeout:g}", "--max-time", f"{timeout:g}"]
    if tls == "1.2":
        argv += ["--tlsv1.2", "--tls-max", "1.2"]
    elif tls == "1.3":
        argv += ["--tlsv1.3"]
    if proxy:
        argv += ["--proxy", proxy]
    return [*argv, url]


def s_client(host: str, port: int, cafile: Path, extra: list[str], sni: str | None = None) -> list[str]:
    """openssl s_client that fails on a bad chain; the caller feeds an HTTP request on stdin."""
    return ["openssl", "s_client", "-4", "-quiet", "-verify_return_error", "-CAfile", str(cafile),
            "-connect", f"{host}:{port}", "-servername", sni or host, *extra]


def curl_smtp_submission(host: str, port: int, cafile: Path, sender: str, rcpt: str,
                         timeout: float = 5.0) -> list[str]:
    """curl submitting one message, read from stdin, over SMTP that must upgrade with STARTTLS (--ssl-reqd)."""
    return ["curl", "-4", "-sS", "--ssl-reqd", "--cacert", str(cafile), "--connect-timeout", f"{timeout:g}",
            "--max-time", f"{timeout:g}", "--mail-from", sender, "--mail-rcpt", rcpt, "--upload-file", "-",
            f"smtp://{host}:{port}"]


def mail_message(sender: str, rcpt: str, subject: str) -> bytes:
    return f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nSent from the lab's Mac.\r\n".encode()


def http_request(host: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def chrony_query(name: str, pidfile: Path, timeout: int = 3) -> list[str]:
    """chronyd -Q: one NTP exchange with the server, print the offset, never set the clock."""
    return ["chronyd", "-4", "-Q", "-u", "root", "-t", str(timeout), f"pidfile {pidfile}",
            f"server {name} iburst maxsamples 1"]


CAPTIVE_PROBE_URL = "http://captive.apple.com/hotspot-detect.html"
CAPTIVE_USER_AGENT = "CaptiveNetworkSupport-481.100.2 wispr"  # what macOS's captive network probe sends


def captive_probe(url: str = CAPTIVE_PROBE_URL, timeout: float = 3.0) -> list[str]:
    """curl as macOS's captive network probe: HTTP/1.0 GET with its user agent, no redirect following.

    Prints the status and where a redirect points ("302 http://portal/..."; "200 " when Apple answered)."""
    return ["curl", "-4", "-sS", "--http1.0", "-A", CAPTIVE_USER_AGENT, "-o", "/dev/null",
            "-w", "%{http_code} %{redirect_url}\\n", "--connect-timeout", f"{timeout:g}",
            "--max-time", f"{timeout:g}", url]


def python_client(mode: str, host: str, cafile: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "analyzer.lab.clients", mode, host, "--cafile", str(cafile), *extra]


def chrony_daemon(name: str, pidfile: Path, seconds: float = 3.0) -> list[str]:
    """chronyd as a running client daemon (`server NAME iburst`), stopped once it selects the server or
    after `seconds`. Unlike `chronyd -Q` it keeps polling, as the time daemon of a real host does.

    chrony sends LI=0 in client requests whatever its own state (it hides the state of its clock), so its
    requests start with 0x23, not the 0xe3 of ntpd and ntpdig."""
    return [sys.executable, "-m", "analyzer.lab.clients", "chronyd", name, "--pidfile", str(pidfile),
            "--seconds", f"{seconds:g}"]


def ntpdig(name: str, samples: int = 2, timeout: int = 2) -> list[str]:
    """ntpsec's SNTP client: one request per sample, each from a new socket, LI=3 (unsynchronised) in the
    first byte (0xe3); it only prints the offset (no -S/-s: the clock is never touched)."""
    return ["ntpdig", "-4", "-t", str(timeout), "-p", str(samples), "-g", "200", name]


# --- the Python ssl client (runs inside the client namespace) ------------------------------

_TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def _context(cafile: str, tls: str | None, alpn: list[str]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    if tls:
        ctx.minimum_version = ctx.maximum_version = _TLS_VERSIONS[tls]
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def _attempt(addr: str, host: str, port: int, ctx: ssl.SSLContext, payload: bytes, timeout: float,
             hold: float = 0.0) -> dict[str, object]:
    """One TLS connection: handshake, send payload, read the first reply; keep it open `hold` s more."""
    result: dict[str, object] = {"addr": addr, "port": port}
    started = time.monotonic()
    try:
        with (socket.create_connection((addr, port), timeout=timeout) as raw,
              ctx.wrap_socket(raw, server_hostname=host) as tls):
            cipher = tls.cipher()
            result.update(version=tls.version(), cipher=cipher[0] if cipher else None,
                          alpn=tls.selected_alpn_protocol())
            tls.sendall(payload)
            result["reply"] = tls.recv(200).decode(errors="replace")
            result["ok"] = True
            time.sleep(hold)
    except (OSError, ssl.SSLError) as exc:
        result.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def _resolve(host: str) -> str:
    return str(socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])


def _h3_with_fallback(host: str, addr: str | None, args: argparse.Namespace) -> list[dict[str, object]]:
    """HTTP/3 first, as Safari and nsurlsessiond do for a host known to speak it; when QUIC gets no handshake
    within a second (or the name does not resolve), the same request over TLS on TCP 443 (to --tcp-host:
    Private Relay's mask-h2)."""
    from analyzer.lab.http3 import fetch_h3  # aioquic: needed by this mode only

    if addr is None:
        attempts: list[dict[str, object]] = [{"transport": "quic", "ok": False, "error": f"resolve {host} failed"}]
    else:
        attempts = [fetch_h3(addr, host, args.cafile, timeout=args.quic_timeout)]
    if not attempts[-1]["ok"]:
        tcp_host = args.tcp_host or host
        try:
            tcp_addr = _resolve(tcp_host) if tcp_host != host or addr is None else addr
        except OSError as exc:
            return [*attempts, {"transport": "tcp", "ok": False, "error": f"resolve {tcp_host}: {exc}"}]
        ctx = _context(args.cafile, args.tls, ["http/1.1"])
        # A keep-alive request, and the connection idles a while before the client closes it, as URL
        # loading systems pool connections (the capture so goes on past the abandoned QUIC attempt).
        keep_alive = f"GET / HTTP/1.1\r\nHost: {tcp_host}\r\n\r\n".encode()
        attempts.append({"transport": "tcp", **_attempt(tcp_addr, tcp_host, 443, ctx, keep_alive, args.timeout,
                                                          hold=args.keep_alive)})
    return attempts


def _chronyd_argv(host: str, pidfile: str) -> list[str]:
    # Directives on the command line replace the configuration file. -x: never touch the clock (the
    # namespaces share the host's); -d: stay in the foreground and log to stderr; cmdport 0: no chronyc.
    # A 1 s poll: iburst's four samples come within about a second instead of 2 s apart (about 4 s to
    # select the source), so the scenario stays short; the packets are the same.
    return ["chronyd", "-4", "-d", "-x", "-u", "root", f"pidfile {pidfile}", "cmdport 0",
            f"server {host} iburst minpoll 0 maxpoll 0"]


def _run_chronyd(host: str, pidfile: str, seconds: float) -> int:
    """Run the daemon until it logs "Selected source" or `seconds` pass; stop it; report as one JSON line."""
    proc = subprocess.Popen(_chronyd_argv(host, pidfile), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    started = time.monotonic()
    log: list[str] = []
    selected = False
    buffered = b""
    try:
        while not selected and time.monotonic() - started < seconds and proc.poll() is None:
            ready, _, _ = select.select([proc.stderr], [], [], 0.1)
            if not ready:
                continue
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                log.append(f"{time.monotonic() - started:.2f} {text}")
                selected = selected or "Selected source" in text
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)
    print(json.dumps({"ok": selected, "seconds": round(time.monotonic() - started, 3), "log": log[-12:]}))
    return 0 if selected else 1


def _client_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analyzer.lab.clients")
    parser.add_argument("mode", choices=["tls", "apns", "h3", "chronyd"])
    parser.add_argument("host")
    parser.add_argument("--cafile")
    parser.add_argument("--pidfile", help="chronyd: its pidfile (a scratch path of the lab run)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--tls", choices=sorted(_TLS_VERSIONS))
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--quic-timeout", type=float, default=1.0, help="h3: seconds before the TCP fallback")
    parser.add_argument("--tcp-host", help="h3: the host of the TCP fallback (default: the same host)")
    parser.add_argument("--keep-alive", type=float, default=1.2, help="h3: seconds the fallback connection idles")
    args = parser.parse_args(argv)
    if args.mode == "h3":
        try:
            h3_addr: str | None = _resolve(args.host)
        except OSError:
            h3_addr = None  # a relay client tries its TCP ingress all the same
        attempts = _h3_with_fallback(args.host, h3_addr, args)
        print(json.dumps({"ok": bool(attempts[-1]["ok"]), "attempts": attempts}))
        return 0 if attempts[-1]["ok"] else 1
    if args.mode == "chronyd":
        if not args.pidfile:
            parser.error("--pidfile is required for chronyd")
        return _run_chronyd(args.host, args.pidfile, args.seconds)
    if not args.cafile:
        parser.error("--cafile is required for tls and apns")
    try:
        addr = _resolve(args.host)
    except OSError as exc:
        print(json.dumps({"ok": False, "error": f"resolve: {exc}"}))
        return 1
    if args.mode == "tls":
        ctx = _context(args.cafile, args.tls, ["http/1.1"])
        attempts = [_attempt(addr, args.host, args.port, ctx, http_request(args.host), args.timeout)]
    else:
        # APNs: courier on 5223 first; if that fails, the same host on 443.
        ctx = _context(args.cafile, args.tls, ["apns-security-v3"])
        attempts = []
        for port in (5223, 443):
            attempts.append(_attempt(addr, args.host, port, ctx, b"apns-lab-ping\n", args.timeout))
            if attempts[-1]["ok"]:
                break
    print(json.dumps({"ok": bool(attempts[-1]["ok"]), "attempts": attempts}))
    return 0 if attempts[-1]["ok"] else 1


if __name__ == "__main__":
    sys.exit(_client_main())
