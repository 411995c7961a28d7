"""The ClientHello shape (`client_hello_shape`) that the TLS dissector memoises a hello's columns by:
hellos of one shape must derive the same columns and differ only in what the shape cuts; the
shape must never be made for a hello whose cut or framed parts the parser would read differently;
and a hello of a known shape must give exactly the flow columns and rows of a full parse."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.tls_helpers import alpn_ext, client_hello_body, ext, flow_from_bytes, handshake, record, sni_ext, u16s

from analyzer.dissect.tls import dissector as tls_dissector
from analyzer.dissect.tls.columns import HelloColumns
from analyzer.dissect.tls.handshake import client_hello_shape, parse_client_hello
from analyzer.errors import ParseError


def _key_share(*entries: tuple[int, bytes]) -> bytes:
    body = b"".join(struct.pack(">HH", g, len(k)) + k for g, k in entries)
    return ext(51, struct.pack(">H", len(body)) + body)


def _hello(*, name: str = "a.example", random: bytes = b"\x11" * 32, session_id: bytes = b"\x05" * 32,
           key: bytes = b"\x33" * 32, padding: int = 10, ticket: bytes = b"", psk: bytes = b"\x00\x07abc",
           ciphers: tuple[int, ...] = (0x1301, 0x1302, 0xC02F), groups: tuple[int, ...] = (29, 23),
           alpn: tuple[bytes, ...] = (b"h2", b"http/1.1"), ems: bool = False) -> bytes:
    return client_hello_body(
        random=random, session_id=session_id, ciphers=ciphers,
        extensions=[
            sni_ext(name), ext(10, struct.pack(">H", 2 * len(groups)) + u16s(groups)), ext(11, b"\x01\x00"),
            ext(13, b"\x00\x04\x04\x03\x08\x04"), alpn_ext(list(alpn)), ext(43, b"\x04\x03\x04\x03\x03"),
            _key_share((29, key)), ext(35, ticket), ext(45, b"\x01\x01"), ext(21, b"\x00" * padding),
            *([ext(23, b"")] if ems else []), ext(41, psk),
        ],
    )


def _columns(body: bytes) -> dict[str, object]:
    ch = parse_client_hello(body)
    assert not ch.errors
    return HelloColumns("t").client(ch)


def test_the_shape_cuts_only_what_no_column_reads() -> None:
    base = _hello()
    shape, start, end = client_hello_shape(base) or (b"", 0, 0)
    assert base[start:end] == b"a.example"
    # random, session id, host name, key_share value, padding, PSK and ticket bodies are cut
    for other in (_hello(random=b"\x99" * 32), _hello(session_id=b""), _hello(name="much.longer.example.net"),
                  _hello(key=b"\x44" * 1216), _hello(padding=300), _hello(psk=b"\x00\x01z")):
        got = client_hello_shape(other)
        assert got is not None and got[0] == shape
        assert _columns(other) == _columns(base)
    # whatever a column reads is kept
    for other in (_hello(ticket=b"\x01\x02"), _hello(ciphers=(0x1301, 0xC02F)), _hello(groups=(29,)),
                  _hello(alpn=(b"h2",)), client_hello_body(extensions=[sni_ext("a.example")])):
        got = client_hello_shape(other)
        assert got is not None and got[0] != shape


@pytest.mark.parametrize(
    "extensions",
    [
        [sni_ext("a"), sni_ext("b")],  # a second server_name: the parser keeps the first
        [ext(0, b"")],  # an empty server_name
        [ext(0, b"\x00\x05\x01\x00\x02ab")],  # a name type other than host_name
        [ext(0, b"\x00\x09\x00\x00\x02ab\x00\x00\x02cd")],  # two names in the list
        [ext(51, b"\x00\x05\x00\x1d\x00\x01")],  # a key_share entry running past its list
        [ext(51, b"\x00\x04\x00\x1d\x00\x00\xff")],  # a byte after the key_share list
        [ext(51, b"\x00")],  # a key_share shorter than its length field
    ],
)
def test_no_shape_where_the_parser_reads_a_cut_part_differently(extensions: list[bytes]) -> None:
    assert client_hello_shape(client_hello_body(extensions=extensions)) is None


def test_no_shape_for_a_hello_without_extensions_or_with_a_bad_block() -> None:
    assert client_hello_shape(client_hello_body()) is None
    assert client_hello_shape(client_hello_body(extensions=[ext(23, b"")]) + b"\x00") is None
    cut = client_hello_body(extensions=[ext(23, b""), ext(10, b"\x00\x02\x00\x1d")])
    assert client_hello_shape(cut[:-1]) is None
    assert client_hello_shape(b"\x03\x03" + b"\x00" * 33 + b"\x21") is None  # session id length 33


# Kept extensions, drawn from a few choices.
_kept_ext = st.sampled_from([
    ext(10, b"\x00\x04\x00\x1d\x00\x17"), ext(10, b"\x00\x02\x00\x1d"), ext(10, b"\x00\x03\x00\x1d\x00"),
    ext(11, b"\x01\x00"), ext(13, b"\x00\x02\x04\x03"), alpn_ext([b"h2"]), alpn_ext([b"http/1.1"]),
    ext(16, b"\x00\x03\x02h2"), ext(43, b"\x02\x03\x04"), ext(43, b"\x04\x0a\x0a\x03\x04"), ext(23, b""),
    ext(0xFF01, b"\x00"), ext(42, b""), ext(45, b"\x01\x01"), ext(40, b"\x00\x00"), ext(0x0A0A, b""),
])


_CUT_KINDS = ["sni", "key_share", "ticket", "padding", "psk", "ech", "quic"]


@st.composite
def _cut_ext(draw: st.DrawFn, kind: str) -> bytes:
    """One instance of a cut extension: what the shape keeps of it (key_share groups, ticket
    emptiness) is drawn from a few values, what it cuts from many."""
    if kind == "sni":
        return sni_ext(draw(st.text(max_size=20)))
    if kind == "key_share":
        groups = draw(st.lists(st.sampled_from([29, 23, 0x0A0A]), max_size=2))
        return _key_share(*[(g, draw(st.binary(max_size=40))) for g in groups])
    code = {"ticket": 35, "padding": 21, "psk": 41, "ech": 0xFE0D, "quic": 57}[kind]
    return ext(code, draw(st.binary(max_size=3 if kind == "ticket" else 40)))


@st.composite
def _hello_pairs(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Two hellos with the same kept parts and independently drawn cut parts."""
    slots = draw(st.lists(st.one_of(_kept_ext, st.sampled_from(_CUT_KINDS)), min_size=1, max_size=7))
    version = draw(st.sampled_from([0x0301, 0x0303]))
    ciphers = draw(st.sampled_from([(0x1301,), (0x1301, 0xC02F), (0x0A0A, 0x00FF)]))

    def one() -> bytes:
        exts = [slot if isinstance(slot, bytes) else draw(_cut_ext(slot)) for slot in slots]
        return client_hello_body(version=version, ciphers=ciphers, random=draw(st.binary(min_size=32, max_size=32)),
                                 session_id=draw(st.binary(max_size=32)), extensions=exts)

    return one(), one()


@settings(max_examples=500, deadline=None)
@given(_hello_pairs())
def test_hellos_of_one_shape_derive_the_same_columns(pair: tuple[bytes, bytes]) -> None:
    a, b = pair
    sa, sb = client_hello_shape(a), client_hello_shape(b)
    for body, shape in ((a, sa), (b, sb)):
        if shape is not None:
            ch = parse_client_hello(body)  # a shape is only made for a hello that parses
            assert ch.server_name == (body[shape[1]:shape[2]].decode("utf-8", "backslashreplace")
                                      if shape[2] else None)
    if sa is not None and sb is not None and sa[0] == sb[0]:
        ca, cb = parse_client_hello(a), parse_client_hello(b)
        if not ca.errors and not cb.errors:
            assert HelloColumns("t").client(ca) == HelloColumns("t").client(cb)
            assert (ca.key_share_groups, ca.session_ticket_data) == (cb.key_share_groups, cb.session_ticket_data)
        else:  # errors come from kept parts only, so both hellos have the same
            assert ca.errors == cb.errors


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_give_a_shape_or_none(data: bytes) -> None:
    shape = client_hello_shape(data)
    if shape is not None:
        try:
            parse_client_hello(data)
        except ParseError:  # pragma: no cover - the assertion below says what went wrong
            pytest.fail("a shape was made for a hello the parser rejects")


def _session(hello: bytes) -> bytes:
    return record(22, handshake(1, hello))


def _server_hello(session_id: bytes = b"") -> bytes:
    # TLS 1.2 ServerHello echoing `session_id` (resumption), with extended_master_secret
    body = (b"\x03\x03" + b"\x22" * 32 + bytes((len(session_id),)) + session_id + b"\xc0\x2f\x00"
            + struct.pack(">H", 4) + ext(23, b""))
    return record(22, handshake(2, body))


@pytest.mark.parametrize("rows", [True, False])
def test_a_hello_of_a_known_shape_gives_what_a_full_parse_gives(rows: bool) -> None:
    # what the shape cuts varies hello to hello: the host name (non-UTF-8 and a formula too), the
    # random, the session id (echoed by the server: resumption), the key share, the ticket's body
    hellos = [_hello(), _hello(name="b.example", key=b"\x01" * 65, random=b"\x02" * 32),
              _hello(name="\u00e9.example", session_id=b""), _hello(ticket=b"\x05"), _hello(ticket=b"\x06\x07"),
              _hello(name="=cmd|' /C calc'!A0", session_id=b"\x09" * 16)]
    raw = _hello(name="xxxx")
    hellos.append(raw.replace(b"xxxx", b"\xff\xfe\x00<"))
    hellos += [_hello(ems=True), _hello(ems=True, name="c.example", session_id=b"\x05" * 32)]
    warm = tls_dissector.TLSDissector(rows=rows)
    for round_ in range(2):  # the first round fills the memo, the second reads it
        for hello in hellos:
            for answer in (b"", _server_hello(), _server_hello(b"\x05" * 32), _server_hello(b"\x09" * 16)):
                flow = flow_from_bytes(_session(hello), answer)
                fresh = tls_dissector.TLSDissector(rows=rows)  # an empty memo: a full parse
                got, want = warm.dissect(flow), fresh.dissect(flow)
                assert got.flow == want.flow, round_
                assert got.rows == want.rows, round_
    # the shapes: with and without a ticket's body, with and without extended_master_secret
    assert len(warm.hellos._shapes) == 3
    assert sum(type(h).__name__ == "ShapedHello" for h in _client_hellos(warm, hellos[1])) == 1


def _client_hellos(d: tls_dissector.TLSDissector, hello: bytes) -> list[object]:
    from analyzer.dissect.tls.records import Side

    side = Side(True)
    flow = flow_from_bytes(_session(hello), b"")
    d.walker.walk(side, flow.to_server, 0, None, tls_dissector.Facts())
    return list(side.client_hellos)


@pytest.mark.parametrize("rows", [True, False])
def test_no_shape_is_kept_of_a_hello_with_a_problem(rows: bool) -> None:
    bad = client_hello_body(extensions=[sni_ext("a.example"), ext(10, b"\x00\x03\x00\x1d\x00")])  # odd list
    d = tls_dissector.TLSDissector(rows=rows)
    for _ in range(2):
        facts = d.dissect(flow_from_bytes(_session(bad), b""))
        assert [a["kind"] for a in facts.rows.get("anomalies", [])] == ["tls_extension_malformed"]
    assert not d.hellos._shapes


def test_shape_memo_is_bounded() -> None:
    long_alpn = _hello(alpn=(b"x" * 200,) * 11)  # a shape over 2 KiB is not kept
    flows_only = tls_dissector.TLSDissector(rows=False)
    flows_only.dissect(flow_from_bytes(_session(long_alpn), b""))
    assert not flows_only.hellos._shapes
    for i in range(2100):
        flows_only.hellos.remember_shape(i.to_bytes(4, "big"), parse_client_hello(_hello()))
    assert 0 < len(flows_only.hellos._shapes) <= 2048
