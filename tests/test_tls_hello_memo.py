"""The hello parsers' memos (hellos equal but for random and session id; TLS 1.3 hellos equal but
for those and their key_share values) must give the same objects as a fresh parse, never share
mutable lists, and never keep hellos they must not."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


def _tls13_hello(random: bytes, session_id: bytes, keys: list[tuple[int, bytes]]) -> bytes:
    entries = b"".join(struct.pack(">HH", g, len(k)) + k for g, k in keys)
    return client_hello_body(
        ciphers=[0x1301, 0x1302, 0x1303],
        session_id=session_id,
        random=random,
        extensions=[
            sni_ext("memo13.example"),
            ext(10, u16s([0x11EC, 29, 23])),
            ext(43, b"\x04\x03\x04\x03\x03"),
            ext(51, struct.pack(">H", len(entries)) + entries),
            ext(13, u16s([0x0403, 0x0804])),
            ext(45, b"\x01\x01"),
        ],
    )


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = hs._parse_client_hello

    def counting(data: bytes, dtls: bool) -> hs.ClientHello:
        calls[0] += 1
        return real(data, dtls)

    monkeypatch.setattr(hs, "_parse_client_hello", counting)
    return calls


def test_tls13_client_hello_memo_puts_the_fresh_key_share_back(monkeypatch: pytest.MonkeyPatch) -> None:
    hs._CH_MEMO.clear()
    hs._CH_KS_MEMO.clear()
    calls = _count_parses(monkeypatch)
    hs.parse_client_hello(_tls13_hello(b"\x01" * 32, b"\x02" * 32, [(0x11EC, b"\x05" * 1216), (29, b"\x06" * 32)]))
    assert len(hs._CH_KS_MEMO) == 1 and not hs._CH_MEMO
    body = _tls13_hello(b"\x03" * 32, b"\x04" * 32, [(0x11EC, b"\x07" * 1216), (29, b"\x08" * 32)])
    second = hs.parse_client_hello(body)
    assert calls[0] == 1  # a memo hit
    assert dataclasses.astuple(second) == dataclasses.astuple(_fresh(body))
    assert dict(second.extensions)[51].endswith(b"\x08" * 32)
    # other key lengths, another group or session id length: other keys, parsed afresh
    for keys, sid in (
        ([(29, b"\x09" * 32)], b"\x04" * 32),
        ([(0x11EC, b"\x07" * 1216), (23, b"\x08" * 65)], b"\x04" * 32),
        ([(0x11EC, b"\x07" * 1216), (29, b"\x08" * 32)], b""),
    ):
        body = _tls13_hello(b"\x0a" * 32, sid, keys)
        before = calls[0]
        got = hs.parse_client_hello(body)
        assert calls[0] == before + 1  # a miss
        assert dataclasses.astuple(got) == dataclasses.astuple(_fresh(body))


def test_malformed_key_shares_are_not_memoised_and_keep_their_errors() -> None:
    hs._CH_KS_MEMO.clear()
    good = _tls13_hello(b"\x01" * 32, b"", [(29, b"\x05" * 32)])
    hs.parse_client_hello(good)
    # the entry claims 33 key bytes where 32 are present: the list length still matches the body
    bad = good.replace(struct.pack(">HH", 29, 32), struct.pack(">HH", 29, 33))
    assert bad != good
    got = hs.parse_client_hello(bad)
    assert got.errors and got.errors == _fresh(bad).errors
    assert len(hs._CH_KS_MEMO) == 1


def test_tls13_server_hello_memo_puts_the_fresh_key_share_back() -> None:
    hs._SH_MEMO.clear()
    hs._SH_KS_MEMO.clear()

    def body(random: bytes, key: bytes) -> bytes:
        share = struct.pack(">HH", 29, len(key)) + key
        return server_hello_body(cipher=0x1301, session_id=b"\x02" * 32, random=random,
                                 extensions=[ext(43, b"\x03\x04"), ext(51, share)])

    hs.parse_server_hello(body(b"\x01" * 32, b"\x05" * 32))
    assert len(hs._SH_KS_MEMO) == 1 and not hs._SH_MEMO
    for random, key in ((b"\x03" * 32, b"\x06" * 32), (HRR_RANDOM, b"\x07" * 32), (b"\x04" * 32, b"\x08" * 31)):
        b = body(random, key)
        sh = hs.parse_server_hello(b)
        assert dataclasses.astuple(sh) == dataclasses.astuple(hs._parse_server_hello(b))
        assert dict(sh.extensions)[51].endswith(key)


@settings(max_examples=300, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=3),
       cut=st.integers(0, 8))
def test_any_edit_of_a_memoised_hello_parses_as_a_fresh_parse(edits: list[tuple[int, int]], cut: int) -> None:
    """Whatever bytes follow a memoised TLS 1.3 hello (edited anywhere, or cut), the memo answers
    exactly what a fresh parse answers, or both raise ParseError."""
    cbase = _tls13_hello(b"\x01" * 32, b"\x02" * 32, [(0x11EC, b"\x05" * 1216), (29, b"\x06" * 32)])
    share = struct.pack(">HH", 29, 32) + b"\x05" * 32
    sbase = server_hello_body(cipher=0x1301, session_id=b"\x02" * 32, extensions=[ext(43, b"\x03\x04"),
                                                                                  ext(51, share)])
    for base, memoised, fresh in ((cbase, hs.parse_client_hello, lambda b: hs._parse_client_hello(b, False)),
                                  (sbase, hs.parse_server_hello, hs._parse_server_hello)):
        memoised(base)  # into the memo
        data = bytearray(base)
        for pos, value in edits:
            data[pos % len(data)] = value
        body = bytes(data[: len(data) - cut])
        try:
            want = dataclasses.astuple(fresh(body))
        except hs.ParseError:
            with pytest.raises(hs.ParseError):
                memoised(body)
            continue
        assert dataclasses.astuple(memoised(body)) == want
