"""The ServerHello memos (hellos equal but for random and session id; TLS 1.3 hellos equal but
for those and their key_share value) must give the same objects as a fresh parse, never share
mutable lists, and never keep hellos they must not."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.tls_helpers import alpn_ext, ext, server_hello_body

from analyzer.dissect.tls import handshake as hs
from analyzer.dissect.tls.constants import HRR_RANDOM


def _parse(body: bytes, memo: hs.HandshakeMemo) -> hs.ServerHello:
    return hs.parse_server_hello(body, memo=memo)


def _tls13(random: bytes, key: bytes, session_id: bytes = b"\x02" * 32) -> bytes:
    share = struct.pack(">HH", 29, len(key)) + key
    return server_hello_body(cipher=0x1301, session_id=session_id, random=random,
                             extensions=[ext(43, b"\x03\x04"), ext(51, share)])


def test_server_hello_memo_hit_equals_a_fresh_parse() -> None:
    memo = hs.HandshakeMemo()
    exts = [ext(0xFF01, b"\x00"), ext(23, b""), alpn_ext([b"h2"]), ext(11, b"\x01\x00")]
    first = _parse(server_hello_body(session_id=b"\x01" * 32, extensions=exts), memo)
    assert len(memo.sh) == 1
    for random in (b"\x07" * 32, HRR_RANDOM):
        body = server_hello_body(session_id=b"\x02" * 32, extensions=exts, random=random)
        sh = _parse(body, memo)
        assert dataclasses.astuple(sh) == dataclasses.astuple(hs._parse_server_hello(body, None))
        assert sh.is_hello_retry_request == (random == HRR_RANDOM)
        for f in dataclasses.fields(sh):  # no list is shared with the first hello
            value = getattr(sh, f.name)
            if isinstance(value, list):
                assert value is not getattr(first, f.name)
    assert len(memo.sh) == 1


def test_server_hello_memo_skips_errors_retry_requests_and_old_drafts() -> None:
    memo = hs.HandshakeMemo()
    _parse(server_hello_body(extensions=[ext(43, b"\x03\x04\x00")]), memo)  # bad supported_versions
    hrr = server_hello_body(random=HRR_RANDOM, extensions=[ext(43, b"\x03\x04"), ext(51, b"\x00\x1d")])
    _parse(hrr, memo)
    draft = struct.pack(">H", 0x7F12) + b"\x22" * 32 + struct.pack(">H", 0x1301)
    _parse(draft, memo)
    _parse(draft, memo)
    assert not memo.sh and not memo.sh_ks
    body = server_hello_body(extensions=[ext(43, b"\x03\x04\x00")])
    assert _parse(body, memo).errors == hs._parse_server_hello(body, None).errors != []


def test_tls13_server_hello_memo_puts_the_fresh_key_share_back(monkeypatch: pytest.MonkeyPatch) -> None:
    memo = hs.HandshakeMemo()
    calls = [0]
    real = hs._parse_server_hello

    def counting(data: bytes, memo_: hs.HandshakeMemo | None) -> hs.ServerHello:
        calls[0] += 1
        return real(data, memo_)

    _parse(_tls13(b"\x01" * 32, b"\x05" * 32), memo)
    assert len(memo.sh_ks) == 1 and not memo.sh
    monkeypatch.setattr(hs, "_parse_server_hello", counting)
    for random, key, hit in ((b"\x03" * 32, b"\x06" * 32, True), (b"\x04" * 32, b"\x08" * 31, False),
                             (b"\x05" * 32, b"\x09" * 1120, False)):
        body = _tls13(random, key)
        before = calls[0]
        sh = _parse(body, memo)
        assert calls[0] == before + (0 if hit else 1)  # another key length: another key
        assert dataclasses.astuple(sh) == dataclasses.astuple(real(body, None))
        assert dict(sh.extensions)[51].endswith(key)
    # a key whose length field does not tile its extension never shares a key with a good one
    good = _tls13(b"\x06" * 32, b"\x05" * 32)
    bad = good.replace(struct.pack(">HH", 29, 32), struct.pack(">HH", 29, 33))
    assert bad != good
    assert dataclasses.astuple(_parse(bad, memo)) == dataclasses.astuple(real(bad, None))


@settings(max_examples=300, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=3),
       cut=st.integers(0, 8))
def test_any_edit_of_a_memoised_hello_parses_as_a_fresh_parse(edits: list[tuple[int, int]], cut: int) -> None:
    """Whatever bytes follow a memoised TLS 1.3 ServerHello (edited anywhere, or cut), the memo
    answers exactly what a fresh parse answers, or both raise ParseError."""
    memo = hs.HandshakeMemo()
    base = _tls13(b"\x01" * 32, b"\x05" * 32)
    _parse(base, memo)  # into the memo
    data = bytearray(base)
    for pos, value in edits:
        data[pos % len(data)] = value
    body = bytes(data[: len(data) - cut])
    try:
        want = dataclasses.astuple(hs._parse_server_hello(body, None))
    except hs.ParseError:
        with pytest.raises(hs.ParseError):
            _parse(body, memo)
        return
    assert dataclasses.astuple(_parse(body, memo)) == want


def test_without_a_memo_nothing_is_kept() -> None:
    """The parsers keep nothing between calls unless given a memo: two memos share nothing."""
    body = _tls13(b"\x01" * 32, b"\x05" * 32)
    first, second = hs.HandshakeMemo(), hs.HandshakeMemo()
    _parse(body, first)
    assert first.sh_ks and not second.sh_ks and not second.sh
    assert dataclasses.astuple(hs.parse_server_hello(body)) == dataclasses.astuple(_parse(body, second))
