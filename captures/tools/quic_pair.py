#!/usr/bin/env python3
"""Tiny HTTP/3 server and client over QUIC v1 with aioquic, used to record captures/quic_aioquic.pcap.

    quic_pair.py server --host 10.77.0.20 --port 443 --cert chain.pem --key key.pem
    quic_pair.py client --host 10.77.0.20 --port 443 --sni www.example.com --path /

The server answers every GET with a short text body and runs until killed; the client makes one
request, prints the status and closes the connection (CONNECTION_CLOSE).
"""

import argparse
import asyncio
import ssl
import sys

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent
from aioquic.quic.packet import QuicProtocolVersion

BODY = b"hello over HTTP/3\n" * 8


class ServerProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._h3: H3Connection | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if self._h3 is None:
            self._h3 = H3Connection(self._quic)
        for ev in self._h3.handle_event(event):
            if isinstance(ev, HeadersReceived) and ev.stream_ended:
                self._h3.send_headers(
                    ev.stream_id,
                    [
                        (b":status", b"200"),
                        (b"server", b"aioquic"),
                        (b"content-type", b"text/plain"),
                        (b"content-length", str(len(BODY)).encode()),
                    ],
                )
                self._h3.send_data(ev.stream_id, BODY, end_stream=True)
                self.transmit()


class ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._h3 = H3Connection(self._quic)
        self.done: asyncio.Future[int] = asyncio.get_event_loop().create_future()
        self.status = 0

    def get(self, authority: str, path: str) -> None:
        sid = self._quic.get_next_available_stream_id()
        self._h3.send_headers(
            sid,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
                (b"user-agent", b"aioquic-capture/1"),
            ],
            end_stream=True,
        )
        self.transmit()

    def quic_event_received(self, event: QuicEvent) -> None:
        for ev in self._h3.handle_event(event):
            if isinstance(ev, HeadersReceived):
                self.status = int(dict(ev.headers).get(b":status", b"0"))
            if isinstance(ev, (HeadersReceived, DataReceived)) and ev.stream_ended and not self.done.done():
                self.done.set_result(self.status)


async def run_server(a: argparse.Namespace) -> None:
    cfg = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    cfg.load_cert_chain(a.cert, a.key)
    await serve(a.host, a.port, configuration=cfg, create_protocol=ServerProtocol)
    print("quic server ready", flush=True)
    await asyncio.Event().wait()


async def run_client(a: argparse.Namespace) -> int:
    cfg = QuicConfiguration(
        is_client=True,
        alpn_protocols=H3_ALPN,
        server_name=a.sni,
        verify_mode=ssl.CERT_NONE,
        supported_versions=[QuicProtocolVersion.VERSION_1],
    )
    async with connect(a.host, a.port, configuration=cfg, create_protocol=ClientProtocol) as proto:
        assert isinstance(proto, ClientProtocol)
        proto.get(a.sni, a.path)
        status = await asyncio.wait_for(proto.done, 10)
        print(f"HTTP/3 status {status}", flush=True)
        proto.close()
        await proto.wait_closed()
    return 0 if status == 200 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("role", choices=["server", "client"])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--sni", default="www.example.com")
    ap.add_argument("--path", default="/")
    a = ap.parse_args()
    if a.role == "server":
        asyncio.run(run_server(a))
        return 0
    return asyncio.run(run_client(a))


if __name__ == "__main__":
    sys.exit(main())
