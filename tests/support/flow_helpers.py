"""A `FlowPayload` of given bytes, for dissector unit tests (no capture, no flow table)."""

from __future__ import annotations

from analyzer.dissect.base import FlowPayload, StreamPrefix


def tcp_flow(client: bytes, server: bytes, port: int, *, uid: str = "C1", client_ip: str = "10.0.0.1",
             server_ip: str = "10.0.0.2", client_port: int = 50000) -> FlowPayload:
    """A TCP flow whose client sent `client` and whose server (on `port`) sent `server`."""
    return FlowPayload(uid=uid, transport="tcp", client_ip=client_ip, server_ip=server_ip, client_port=client_port,
                       server_port=port, ts_start=0.0, to_server=StreamPrefix(client), to_client=StreamPrefix(server))
