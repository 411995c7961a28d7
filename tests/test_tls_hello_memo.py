"""The hello parsers' memo (hellos equal but for random and session id) must give the same
objects as a fresh parse, never share mutable lists, and never keep hellos it must not."""

from __future__ import annotations

import dataclasses
import struct

from tls_helpers import alpn_ext, client_hello_body, ext, server_hello_body, sni_ext, u16s

from analyzer.dissect.tls import handshake as hs
from analyzer.dissect.tls.constants import HRR_RANDOM


def _tls12_hello(random: bytes, session_id: bytes) -> bytes:
    return client_hello_body(
        ciphers=[0x2A2A, 0xC02B, 0xC02F, 0x00FF],
        session_id=session_id,
        random=random,
        extensions=[
            sni_ext("memo.example"),
            ext(23, b""),
            ext(10, u16s([0x3A3A, 29, 23])),
            ext(11, b"\x01\x00"),
            ext(35, b""),
            alpn_ext([b"h2", b"http/1.1"]),
            ext(13, u16s([0x0403, 0x0804])),
        ],
    )


def _fresh(body: bytes, dtls: bool = False) -> hs.ClientHello:
    return hs._parse_client_hello(body, dtls)


def test_client_hello_memo_hit_equals_a_fresh_parse() -> None:
    hs._CH_MEMO.clear()
    first = hs.parse_client_hello(_tls12_hello(b"\x01" * 32, b"\x02" * 32))
    assert len(hs._CH_MEMO) == 1
    body = _tls12_hello(b"\x03" * 32, b"\x04" * 32)
    second = hs.parse_client_hello(body)
    assert dataclasses.astuple(second) == dataclasses.astuple(_fresh(body))
    assert second.random == b"\x03" * 32 and second.session_id == b"\x04" * 32
    for f in dataclasses.fields(second):  # no list is shared with the first hello
        value = getattr(second, f.name)
        if isinstance(value, list):
            assert value is not getattr(first, f.name)
    # a different session id length is another key (error offsets depend on it)
    body = _tls12_hello(b"\x05" * 32, b"")
    assert dataclasses.astuple(hs.parse_client_hello(body)) == dataclasses.astuple(_fresh(body))


def test_client_hello_memo_skips_key_shares_and_errors() -> None:
    hs._CH_MEMO.clear()
    share = struct.pack(">HHH", 36, 29, 32) + b"\x09" * 32
    hs.parse_client_hello(client_hello_body(extensions=[ext(51, share)]))
    hs.parse_client_hello(client_hello_body(extensions=[ext(10, b"\x00\x03\x00\x17\x00")]))  # odd length
    assert not hs._CH_MEMO
    body = client_hello_body(extensions=[ext(10, b"\x00\x03\x00\x17\x00")])
    assert hs.parse_client_hello(body).errors == _fresh(body).errors != []


def test_dtls_client_hello_memo_keeps_the_cookie() -> None:
    hs._CH_MEMO.clear()
    body = client_hello_body(version=0xFEFD, extensions=[ext(23, b"")])
    body = body[:35] + b"\x04cook" + body[35:]  # no session id: the cookie follows at byte 35
    a = hs.parse_client_hello(body, dtls=True)
    b = hs.parse_client_hello(body, dtls=True)
    assert a.cookie == b.cookie == b"cook"
    assert dataclasses.astuple(b) == dataclasses.astuple(_fresh(body, True))


def test_server_hello_memo_hit_equals_a_fresh_parse() -> None:
    hs._SH_MEMO.clear()
    exts = [ext(0xFF01, b"\x00"), ext(23, b""), alpn_ext([b"h2"]), ext(11, b"\x01\x00")]
    hs.parse_server_hello(server_hello_body(session_id=b"\x01" * 32, extensions=exts))
    assert len(hs._SH_MEMO) == 1
    for random in (b"\x07" * 32, HRR_RANDOM):
        body = server_hello_body(session_id=b"\x02" * 32, extensions=exts, random=random)
        sh = hs.parse_server_hello(body)
        assert dataclasses.astuple(sh) == dataclasses.astuple(hs._parse_server_hello(body))
        assert sh.is_hello_retry_request == (random == HRR_RANDOM)


def test_server_hello_memo_skips_key_shares_and_old_drafts() -> None:
    hs._SH_MEMO.clear()
    hs.parse_server_hello(server_hello_body(extensions=[ext(43, b"\x03\x04"), ext(51, b"\x00\x1d\x00\x01\x05")]))
    draft = struct.pack(">H", 0x7F12) + b"\x22" * 32 + struct.pack(">H", 0x1301)
    hs.parse_server_hello(draft)
    hs.parse_server_hello(draft)
    assert not hs._SH_MEMO
