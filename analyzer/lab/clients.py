"""The client "Mac": command lines for curl, openssl s_client, chronyd -Q and a Python ssl client.

Every client resolves names with the system resolver (glibc, through the
namespace's resolv.conf to the router's dnsmasq), so each lookup is real DNS
on the wire; pinned to IPv4, it asks only for A records (a dual-stack
scenario drops the pin: scenarios._curl_dual_stack) and has a
short, bounded timeout. Two trust stores stand for two kinds of client: the
pinning-like one trusts only the lab Apple root (and the control server's
root); the managed Mac also trusts the corporate inspection CAs.

`python -m analyzer.lab.clients tls|apns ...` is the Python ssl client; it
runs inside the client namespace and prints one JSON line of what happened.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
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


def http_request(host: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def chrony_query(name: str, pidfile: Path, timeout: int = 3) -> list[str]:
    """chronyd -Q: one NTP exchange with the server, print the offset, never set the clock."""
    return ["chronyd", "-4", "-Q", "-u", "root", "-t", str(timeout), f"pidfile {pidfile}",
            f"server {name} iburst maxsamples 1"]


def python_client(mode: str, host: str, cafile: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "analyzer.lab.clients", mode, host, "--cafile", str(cafile), *extra]


# --- the Python ssl client (runs inside the client namespace) ------------------------------

_TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def _context(cafile: str, tls: str | None, alpn: list[str]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    if tls:
        ctx.minimum_version = ctx.maximum_version = _TLS_VERSIONS[tls]
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def _attempt(addr: str, host: str, port: int, ctx: ssl.SSLContext, payload: bytes, timeout: float) -> dict[str, object]:
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
    except (OSError, ssl.SSLError) as exc:
        result.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def _client_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analyzer.lab.clients")
    parser.add_argument("mode", choices=["tls", "apns"])
    parser.add_argument("host")
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--tls", choices=sorted(_TLS_VERSIONS))
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    try:
        addr = str(socket.getaddrinfo(args.host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
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
