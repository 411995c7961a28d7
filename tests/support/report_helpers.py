"""A capture whose wire strings are script and markup payloads, for the report's escaping tests.

One TLS 1.2 flow to 203.0.113.5:443 whose ClientHello SNI and whose certificate (CN and DNS name)
carry payloads, and one HTTP flow to 203.0.113.6:80 whose Host and User-Agent do. With
`--vpc 10.0.0.0/16` both are egress: the TLS one is judged (certificate findings quote the names),
the HTTP one is cleartext egress (the report's cleartext table shows Host and User-Agent). Each
payload, if it ran, would put "XSS" into document.title.
"""

from __future__ import annotations

from pathlib import Path

SNI = "x\"'><script>document.title='XSS-SNI'</script><img src=x onerror=\"document.title='XSS-IMG'\">.example"
CN = "<script>document.title='XSS-CN'</script>"  # a CN is at most 64 characters
HOST = "<script>document.title='XSS-HOST'</script>[a](http://evil.example)|`x`"
USER_AGENT = "</td></tr></table><svg onload=\"document.title='XSS-UA'\">\u202egnp.exe"
PAYLOADS = (SNI, CN, HOST)
VPC = "10.0.0.0/16"


def _tcp_exchange(client: str, server: str, sport: int, dport: int, to_server: bytes, to_client: bytes,
                  start: int) -> list:  # type: ignore[type-arg]
    from scapy.layers.inet import IP, TCP

    from support.pcap_helpers import eth

    c, s = dict(sport=sport, dport=dport), dict(sport=dport, dport=sport)
    cs, ss = 1000 + start, 5000 + start
    packets = [eth() / IP(src=client, dst=server) / TCP(flags="S", seq=cs, **c),
               eth() / IP(src=server, dst=client) / TCP(flags="SA", seq=ss, ack=cs + 1, **s),
               eth() / IP(src=client, dst=server) / TCP(flags="A", seq=cs + 1, ack=ss + 1, **c),
               eth() / IP(src=client, dst=server) / TCP(flags="PA", seq=cs + 1, ack=ss + 1, **c) / to_server,
               eth() / IP(src=server, dst=client) / TCP(flags="PA", seq=ss + 1, ack=cs + 1 + len(to_server), **s)
               / to_client,
               eth() / IP(src=client, dst=server) / TCP(flags="FA", seq=cs + 1 + len(to_server),
                                                        ack=ss + 1 + len(to_client), **c),
               eth() / IP(src=server, dst=client) / TCP(flags="FA", seq=ss + 1 + len(to_client),
                                                        ack=cs + 2 + len(to_server), **s),
               eth() / IP(src=client, dst=server) / TCP(flags="A", seq=cs + 2 + len(to_server),
                                                        ack=ss + 2 + len(to_client), **c)]
    return packets


def hostile_capture(path: Path) -> Path:
    """Write the capture (see the module) to `path`."""
    from support.pcap_helpers import write_packets
    from support.tls_helpers import (
        certificate_msg,
        client_hello_body,
        handshake,
        make_chain,
        record,
        server_hello_body,
        sni_ext,
    )

    hello = record(22, handshake(1, client_hello_body(extensions=[sni_ext(SNI)])))
    flight = record(22, handshake(2, server_hello_body()) + certificate_msg(make_chain(CN)) + handshake(14, b""))
    request = (f"GET / HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n\r\n").encode()
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
    packets = (_tcp_exchange("10.0.0.1", "203.0.113.5", 40000, 443, hello, flight, 0)
               + _tcp_exchange("10.0.0.1", "203.0.113.6", 40001, 80, request, response, 100))
    return write_packets(path, packets, start=1_717_200_000.0)  # 2024-06-01: the certificate is valid
