"""HTTP/3 for the lab, on aioquic: a server for the "Apple" namespace and a client for the Mac.

    python -m analyzer.lab.http3 serve --listen IP,CHAIN,KEY [--listen ...]

serves GET over HTTP/3 on UDP 443 of each address, with that address's
certificate (one socket per address: a UDP socket bound to 0.0.0.0 would
answer from the link address, not from the address the client asked).
`fetch_h3()` is the client half: a real QUIC v1 handshake (aioquic's Initial,
SNI and ALPN h3 in its ClientHello) and one GET, with a short deadline so a
client whose UDP 443 is dropped can fall back to TCP as browsers do.

aioquic is imported here only, so the rest of the lab runs without it.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ProtocolNegotiated, QuicEvent

USER_AGENT = b"apple-net-lab-h3/1 (like nsurlsessiond)"


class _ServerProtocol(QuicConnectionProtocol):
    """Answers every HTTP/3 request with 200 and a one-line body naming the authority."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._h3: H3Connection | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self._h3 = H3Connection(self._quic)
        if self._h3 is None:
            return
        for ev in self._h3.handle_event(event):
            if isinstance(ev, HeadersReceived) and ev.stream_ended:
                headers = dict(ev.headers)
                body = b"%s ok over HTTP/3\n" % headers.get(b":authority", b"?")
                self._h3.send_headers(ev.stream_id, [(b":status", b"200"), (b"content-type", b"text/plain"),
                                                     (b"content-length", str(len(body)).encode())])
                self._h3.send_data(ev.stream_id, body, end_stream=True)
        self.transmit()


async def _serve(listens: list[tuple[str, str, str]], port: int) -> None:
    for ip, chain, key in listens:
        config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN, idle_timeout=10.0)
        config.load_cert_chain(chain, key)
        await serve(ip, port, configuration=config, create_protocol=_ServerProtocol)
        print(f"http3: serving {ip}:{port}", flush=True)
    await asyncio.Event().wait()  # until the Supervisor stops us


class _ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._h3 = H3Connection(self._quic)
        self._responses: dict[int, tuple[asyncio.Future[tuple[int, bytes]], list[H3Event]]] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        for ev in self._h3.handle_event(event):
            if isinstance(ev, (HeadersReceived, DataReceived)) and ev.stream_id in self._responses:
                future, got = self._responses[ev.stream_id]
                got.append(ev)
                if ev.stream_ended and not future.done():
                    status = next((int(v) for e in got if isinstance(e, HeadersReceived)
                                   for k, v in e.headers if k == b":status"), 0)
                    body = b"".join(e.data for e in got if isinstance(e, DataReceived))
                    future.set_result((status, body))

    async def get(self, authority: str, path: str) -> tuple[int, bytes]:
        stream_id = self._quic.get_next_available_stream_id()
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._responses[stream_id] = (future, [])
        self._h3.send_headers(stream_id, [(b":method", b"GET"), (b":scheme", b"https"),
                                          (b":authority", authority.encode()), (b":path", path.encode()),
                                          (b"user-agent", USER_AGENT)], end_stream=True)
        self.transmit()
        return await future


async def _fetch(addr: str, host: str, cafile: str, timeout: float, port: int) -> dict[str, object]:
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=host, idle_timeout=5.0)
    config.load_verify_locations(cafile)
    loop = asyncio.get_running_loop()
    # An IPv4 socket of our own: aioquic's connect() opens a dual-stack IPv6 one.
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _ClientProtocol(QuicConnection(configuration=config)), family=socket.AF_INET,
        local_addr=("0.0.0.0", 0))
    assert isinstance(protocol, _ClientProtocol)
    deadline = loop.time() + timeout
    try:
        protocol.connect((addr, port))
        await asyncio.wait_for(protocol.wait_connected(), timeout)
        status, body = await asyncio.wait_for(protocol.get(host, "/"), max(deadline - loop.time(), 0.1))
        return {"ok": status == 200, "status": status, "reply": body.decode(errors="replace")[:200]}
    finally:
        protocol.close()  # CONNECTION_CLOSE (in an Initial when the handshake never finished)
        try:
            await asyncio.wait_for(protocol.wait_closed(), 0.3)
        except (TimeoutError, asyncio.TimeoutError):
            pass
        transport.close()


def fetch_h3(addr: str, host: str, cafile: str, timeout: float = 1.0, port: int = 443) -> dict[str, object]:
    """GET https://host/ over HTTP/3 from addr:port; one JSON-able dict of what happened."""
    result: dict[str, object] = {"addr": addr, "port": port, "transport": "quic", "alpn": "h3"}
    started = time.monotonic()
    try:
        result.update(asyncio.run(_fetch(addr, host, cafile, timeout, port)))
    except (TimeoutError, asyncio.TimeoutError):
        result.update(ok=False, error=f"QUIC: no handshake within {timeout:g} s")
    except (OSError, ConnectionError) as exc:
        result.update(ok=False, error=f"QUIC: {type(exc).__name__}: {exc}")
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analyzer.lab.http3")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="HTTP/3 server on UDP PORT of each --listen address")
    s.add_argument("--listen", action="append", required=True, metavar="IP,CHAIN,KEY")
    s.add_argument("--port", type=int, default=443)
    args = parser.parse_args(argv)
    listens = []
    for spec in args.listen:
        ip, chain, key = spec.split(",")
        listens.append((ip, chain, key))
    asyncio.run(_serve(listens, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
