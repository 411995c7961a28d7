"""The ServerHello memos (hellos equal but for random and session id; TLS 1.3 hellos equal but
for those and their key_share value) must give the same objects as a fresh parse, never share
mutable lists, and never keep hellos they must not."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tls_helpers import alpn_ext, ext, server_hello_body

from analyzer.dissect.tls import handshake as hs
from analyzer.dissect.tls.constants import HRR_RANDOM


def _clear() -> None:
    hs._SH_MEMO.clear()
    hs._SH_KS_MEMO.clear()


def _tls13(random: bytes, key: bytes, session_id: bytes = b"\x02" * 32) -> bytes:
    share = struct.pack(">HH", 29, len(key)) + key
    return server_hello_body(cipher=0x1301, session_id=session_id, random=random,
                             extensions=[ext(43, b"\x03\x04"), ext(51, share)])


def test_server_hello_memo_hit_equals_a_fresh_parse() -> None:
    _clear()
    exts = [ext(0xFF01, b"\x00"), ext(23, b""), alpn_ext([b"h2"]), ext(11, b"\x01\x00")]
    first = hs.parse_server_hello(server_hello_body(session_id=b"\x01" * 32, extensions=exts))
    assert len(hs._SH_MEMO) == 1
    for random in (b"\x07" * 32, HRR_RANDOM):
        body = server_hello_body(session_id=b"\x02" * 32, extensions=exts, random=random)
        sh = hs.parse_server_hello(body)
        assert dataclasses.astuple(sh) == dataclasses.astuple(hs._parse_server_hello(body))
        assert sh.is_hello_retry_request == (random == HRR_RANDOM)
        for f in dataclasses.fields(sh):  # no list is shared with the first hello
            value = getattr(sh, f.name)
            if isinstance(value, list):
                assert value is not getattr(first, f.name)
    assert len(hs._SH_MEMO) == 1


def test_server_hello_memo_skips_errors_retry_requests_and_old_drafts() -> None:
    _clear()
    hs.parse_server_hello(server_hello_body(extensions=[ext(43, b"\x03\x04\x00")]))  # bad supported_versions
    hrr = server_hello_body(random=HRR_RANDOM, extensions=[ext(43, b"\x03\x04"), ext(51, b"\x00\x1d")])
    hs.parse_server_hello(hrr)
    draft = struct.pack(">H", 0x7F12) + b"\x22" * 32 + struct.pack(">H", 0x1301)
    hs.parse_server_hello(draft)
    hs.parse_server_hello(draft)
    assert not hs._SH_MEMO and not hs._SH_KS_MEMO
    body = server_hello_body(extensions=[ext(43, b"\x03\x04\x00")])
    assert hs.parse_server_hello(body).errors == hs._parse_server_hello(body).errors != []


def test_tls13_server_hello_memo_puts_the_fresh_key_share_back(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear()
    calls = [0]
    real = hs._parse_server_hello

    def counting(data: bytes) -> hs.ServerHello:
        calls[0] += 1
        return real(data)

    hs.parse_server_hello(_tls13(b"\x01" * 32, b"\x05" * 32))
    assert len(hs._SH_KS_MEMO) == 1 and not hs._SH_MEMO
    monkeypatch.setattr(hs, "_parse_server_hello", counting)
    for random, key, hit in ((b"\x03" * 32, b"\x06" * 32, True), (b"\x04" * 32, b"\x08" * 31, False),
                             (b"\x05" * 32, b"\x09" * 1120, False)):
        body = _tls13(random, key)
        before = calls[0]
        sh = hs.parse_server_hello(body)
        assert calls[0] == before + (0 if hit else 1)  # another key length: another key
        assert dataclasses.astuple(sh) == dataclasses.astuple(real(body))
        assert dict(sh.extensions)[51].endswith(key)
    # a key whose length field does not tile its extension never shares a key with a good one
    good = _tls13(b"\x06" * 32, b"\x05" * 32)
    bad = good.replace(struct.pack(">HH", 29, 32), struct.pack(">HH", 29, 33))
    assert bad != good
    assert dataclasses.astuple(hs.parse_server_hello(bad)) == dataclasses.astuple(real(bad))


@settings(max_examples=300, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=3),
       cut=st.integers(0, 8))
def test_any_edit_of_a_memoised_hello_parses_as_a_fresh_parse(edits: list[tuple[int, int]], cut: int) -> None:
    """Whatever bytes follow a memoised TLS 1.3 ServerHello (edited anywhere, or cut), the memo
    answers exactly what a fresh parse answers, or both raise ParseError."""
    base = _tls13(b"\x01" * 32, b"\x05" * 32)
    hs.parse_server_hello(base)  # into the memo
    data = bytearray(base)
    for pos, value in edits:
        data[pos % len(data)] = value
    body = bytes(data[: len(data) - cut])
    try:
        want = dataclasses.astuple(hs._parse_server_hello(body))
    except hs.ParseError:
        with pytest.raises(hs.ParseError):
            hs.parse_server_hello(body)
        return
    assert dataclasses.astuple(hs.parse_server_hello(body)) == want
