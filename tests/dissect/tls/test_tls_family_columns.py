"""One builder of the TLS-family columns (`analyzer.dissect.tls.columns`): TLS, DTLS and QUIC give
the same columns for the same hello facts, and every memo and cache belongs to a dissector
instance (a second instance shares nothing with the first; dissecting changes no module-level
container of analyzer.dissect)."""

from __future__ import annotations

import importlib
import pkgutil
import struct
from collections.abc import Callable

import pytest
from support.tls_helpers import (
    alpn_ext,
    client_hello_body,
    ext,
    flow_from_bytes,
    handshake,
    record,
    server_hello_body,
    sni_ext,
)
from support.udp_helpers import flow_from_payloads
from test_dtls import hs as dtls_hs
from test_dtls import record as dtls_record
from test_quic_flows import SCID_S, crypto, packet
from test_quic_vectors import DCID

import analyzer.dissect
from analyzer.dissect.base import Facts
from analyzer.dissect.dtls import DTLSDissector
from analyzer.dissect.quic import QuicDissector
from analyzer.dissect.tls import TLSDissector
from analyzer.dissect.tls.columns import FLOW_COLUMNS, SESSION_COLUMNS, TLS_ROW, HelloColumns
from analyzer.dissect.tls.handshake import parse_client_hello
from analyzer.dissect.tls.schema import TLS

_KEY_SHARE = ext(51, struct.pack(">HHH", 36, 29, 32) + b"\x07" * 32)
CH = client_hello_body(
    ciphers=(0x1301, 0x1302, 0xC02F),
    session_id=b"\x05" * 32,
    extensions=[
        sni_ext("same.example"), ext(10, b"\x00\x04\x00\x1d\x00\x17"), ext(11, b"\x01\x00"),
        ext(13, b"\x00\x04\x04\x03\x08\x04"), alpn_ext([b"h2"]), ext(43, b"\x04\x03\x04\x03\x03"), _KEY_SHARE,
        ext(23, b""),
    ],
)  # fmt: skip
SH = server_hello_body(
    cipher=0x1301,
    session_id=b"\x06" * 32,  # not an echo: no protocol may call the session resumed
    extensions=[ext(43, b"\x03\x04"), ext(51, struct.pack(">HH", 29, 32) + b"\x09" * 32)],
)

# Columns decided by the hellos alone, equal for the three protocols (JA4 / JA4S only differ in
# their transport letter).
HELLO_ROW_COLUMNS = (
    "version", "client_max_version", "client_legacy_version", "client_supported_versions", "cipher",
    "cipher_code", "client_ciphers", "client_cipher_count", "compression_methods", "client_extensions",
    "server_extensions", "server_name", "alpn_offered", "alpn", "supported_groups", "ec_point_formats",
    "signature_algorithms", "key_share_groups", "selected_group", "psk_offered", "session_ticket_offered",
    "early_data_offered", "ech_offered", "renegotiation_info", "extended_master_secret", "grease",
    "sslv2_client_hello", "hello_retry_request", "resumed", "session_id_len", "dh_bits", "established",
    "history", "ja3", "ja3_full", "ja3s", "ja3s_full", "client_hello_count", "server_hello_count", "sslv2",
)  # fmt: skip
HELLO_FLOW_COLUMNS = (
    "encrypted", "tls_version", "tls_client_max_version", "tls_cipher", "tls_server_name", "tls_alpn", "ja3",
    "ja3s", "tls_established", "cert_sha256", "cert_not_after", "cert_key_bits", "cert_self_signed",
)  # fmt: skip


def _tls(ch: bytes, sh: bytes, session: bool = False, rows: bool = True) -> Facts:
    app = record(23, b"\x17" * 40)  # the client's encrypted records: a TLS 1.3 session established
    return TLSDissector(strict=True, session=session, rows=rows).dissect(
        flow_from_bytes(record(22, handshake(1, ch)) + app + app, record(22, handshake(2, sh)))
    )


def _dtls_client_hello(ch: bytes) -> bytes:
    """The same ClientHello in DTLS layout: an empty cookie after the session id."""
    sid_end = 35 + ch[34]
    return ch[:sid_end] + b"\x00" + ch[sid_end:]


def _dtls(ch: bytes, sh: bytes, session: bool = False) -> Facts:
    client = dtls_record(22, dtls_hs(1, 0, _dtls_client_hello(ch)))
    server = dtls_record(22, dtls_hs(2, 0, sh), version=0xFEFD)
    app = dtls_record(23, b"\x11" * 30, epoch=1)  # application data: established
    return DTLSDissector(session).dissect(flow_from_payloads([(True, client), (False, server), (True, app)], 4433))


def _quic(ch: bytes, sh: bytes, session: bool = False) -> Facts:
    client = packet(crypto(0, handshake(1, ch)) + bytes(1200))
    server = packet(crypto(0, handshake(2, sh)), dcid=b"", scid=SCID_S, key_dcid=DCID, server=True)
    return QuicDissector(session=session).dissect(flow_from_payloads([(True, client), (False, server)]))


PROTOCOLS: dict[str, Callable[..., Facts]] = {"tls": _tls, "dtls": _dtls, "quic": _quic}


def _row(facts: Facts) -> dict[str, object]:
    rows = facts.rows["tls"]
    assert len(rows) == 1
    return rows[0]


def test_same_hellos_give_the_same_columns_over_tls_dtls_and_quic() -> None:
    facts = {name: make(CH, SH) for name, make in PROTOCOLS.items()}
    for name, f in facts.items():
        assert tuple(f.flow) == FLOW_COLUMNS, name  # every key, always in the same order
        assert list(_row(f)) == list(TLS_ROW) and set(TLS_ROW) == set(TLS), name
        assert f.flow["app_protocol"] == name
        assert _row(f)["ja4"] == f.flow["ja4"] and str(f.flow["ja4"]).startswith(name[0] + "13d"), name
        assert str(f.flow["ja4s"]).startswith(name[0] + "13"), name
    tls = facts["tls"]
    assert tls.flow["tls_established"] is True and tls.flow["tls_server_name"] == "same.example"
    assert _row(tls)["history"] == "Cs" and _row(tls)["client_ciphers"] == "1301,1302,c02f"
    # QUIC's one rule of its own: the negotiated ALPN travels encrypted, so the sole offered value
    # of an established session is taken (RFC 9001 8.1); TLS and DTLS read the ServerHello's.
    assert facts["quic"].flow["tls_alpn"] == _row(facts["quic"])["alpn"] == "h2"
    assert tls.flow["tls_alpn"] is None and facts["dtls"].flow["tls_alpn"] is None
    for name in ("dtls", "quic"):
        for col in HELLO_FLOW_COLUMNS:
            if not (name == "quic" and col == "tls_alpn"):
                assert facts[name].flow[col] == tls.flow[col], (name, col)
        for col in ("ja4", "ja4s"):
            assert str(facts[name].flow[col])[1:] == str(tls.flow[col])[1:], (name, col)
        for col in HELLO_ROW_COLUMNS:
            if not (name == "quic" and col == "alpn"):
                assert _row(facts[name])[col] == _row(tls)[col], (name, col)
        for col in ("ja4_r", "ja4s_r"):
            assert str(_row(facts[name])[col])[1:] == str(_row(tls)[col])[1:], (name, col)


# the session facts (SESSION_COLUMNS) and the tls row's columns they copy
SESSION_FROM_ROW = {
    "cert_chain": "cert_chain", "tls_sni_matches_cert": "sni_matches_cert", "tls_alert_level": "alert_level",
    "tls_alert_description": "alert_description", "tls_alert_by": "alert_by",
    "tls_client_supported_versions": "client_supported_versions", "tls_server_extensions": "server_extensions",
    "tls_sslv2": "sslv2",
}  # fmt: skip


def test_the_session_facts_are_the_tls_rows_and_only_asked_for() -> None:
    """With `session` (a run whose flows have the optional group SESSION_FACTS) the three protocols
    add the session facts after their other columns, with their tls row's values; without, none."""
    assert tuple(SESSION_FROM_ROW) == SESSION_COLUMNS
    for name, make in PROTOCOLS.items():
        facts = make(CH, SH, True)
        assert tuple(facts.flow) == FLOW_COLUMNS + SESSION_COLUMNS, name
        row = _row(facts)
        for col, in_row in SESSION_FROM_ROW.items():
            assert facts.flow[col] == row[in_row], (name, col)
        assert facts.flow["tls_sslv2"] is False and facts.flow["tls_client_supported_versions"], name
        assert not set(SESSION_COLUMNS) & set(make(CH, SH).flow), name
    # the flows-mode TLS path (no tls row: memoised hellos) gives the same facts
    fast = _tls(CH, SH, session=True, rows=False)
    assert "tls" not in fast.rows
    assert {c: fast.flow[c] for c in SESSION_COLUMNS} == {c: _tls(CH, SH, True).flow[c] for c in SESSION_COLUMNS}


def test_session_facts_carry_the_alert() -> None:
    alert = dtls_record(21, b"\x02\x28")  # fatal handshake_failure
    client = dtls_record(22, dtls_hs(1, 0, _dtls_client_hello(CH)))
    facts = DTLSDissector(True).dissect(flow_from_payloads([(True, client), (False, alert)], 4433))
    flow = facts.flow
    assert (flow["tls_alert_level"], flow["tls_alert_description"], flow["tls_alert_by"]) == (
        "fatal", "handshake_failure", "server")
    tls_alert = record(21, b"\x02\x46")  # fatal protocol_version, from the server
    for rows in (True, False):
        got = TLSDissector(strict=True, session=True, rows=rows).dissect(
            flow_from_bytes(record(22, handshake(1, CH)), tls_alert)).flow
        assert (got["tls_alert_level"], got["tls_alert_description"], got["tls_alert_by"]) == (
            "fatal", "protocol_version", "server"), rows


def test_an_empty_cipher_list_reads_the_same_everywhere() -> None:
    """A hello offering no cipher suite: "" (the mandatory list was read, and is empty), as the
    other mandatory lists (compression methods, extensions); the DTLS/QUIC copy used to say ""
    and the TLS one NA."""
    ch = client_hello_body(ciphers=(), extensions=[sni_ext("none.example")])
    for transport in "tdq":
        cols = HelloColumns(transport).client(parse_client_hello(ch))
        assert cols["client_ciphers"] == "" and cols["client_cipher_count"] == 0
    for name, make in PROTOCOLS.items():
        row = _row(make(ch, SH))
        assert row["client_ciphers"] == "" and row["client_cipher_count"] == 0, name


def test_a_retry_request_group_is_the_selected_group_everywhere() -> None:
    """Without a final ServerHello, the group a HelloRetryRequest asked for (TLS did so; the DTLS
    and QUIC copies did not)."""
    from analyzer.dissect.tls.constants import HRR_RANDOM

    hrr = server_hello_body(cipher=0x1301, random=HRR_RANDOM, extensions=[ext(43, b"\x03\x04"), ext(51, b"\x00\x17")])
    for name, make in PROTOCOLS.items():
        row = _row(make(CH, hrr))
        assert row["hello_retry_request"] is True and row["selected_group"] == "secp256r1", name
        assert row["server_hello_count"] == 1 and row["sslv2"] is False, name


def test_dtls_alert_says_who_and_takes_the_first_fatal_in_arrival_order() -> None:
    alert = dtls_record(21, b"\x02\x28")  # fatal handshake_failure
    warn = dtls_record(21, b"\x01\x00")  # warning close_notify
    client = dtls_record(22, dtls_hs(1, 0, _dtls_client_hello(CH)))
    flow = flow_from_payloads([(True, client), (False, warn), (True, alert), (False, alert)], 4433)
    row = _row(DTLSDissector().dissect(flow))
    assert (row["alert_level"], row["alert_description"], row["alert_by"]) == ("fatal", "handshake_failure", "client")
    assert row["failure_reason"] == "client alert: handshake_failure" and row["history"] == "ClLl"


def test_quic_close_alert_says_who() -> None:
    from test_quic_flows import V1_CLIENT_PROTECTED, varint

    close = b"\x1c" + varint(0x100 + 40) + varint(0x06) + varint(0)
    srv = packet(close, dcid=b"", scid=SCID_S, key_dcid=DCID, server=True)
    row = _row(QuicDissector().dissect(flow_from_payloads([(True, V1_CLIENT_PROTECTED), (False, srv)])))
    assert (row["alert_level"], row["alert_by"]) == ("fatal", "server")


# --- caches belong to an instance ------------------------------------------------------------


def _tls_flows() -> list[Facts]:
    d = TLSDissector(rows=False)
    return [d.dissect(flow_from_bytes(record(22, handshake(1, CH)), record(22, handshake(2, SH))))]


def test_a_second_tls_dissector_shares_no_cache_with_the_first() -> None:
    first = TLSDissector(rows=False)
    flow = flow_from_bytes(record(22, handshake(1, CH)), record(22, handshake(2, SH)) + record(21, b"\x02\x28"))
    first.dissect(flow)
    first.dissect(flow)
    full = TLSDissector()
    full.dissect(flow)
    assert first.hellos._shapes and first.hellos._server and first.memo.sh_ks
    assert full.hellos._client and full.memo.vec16 and full.plans._memo
    second = TLSDissector(rows=False)
    assert not (second.hellos._shapes or second.hellos._client or second.hellos._server)
    assert not (second.memo.sh or second.memo.sh_ks or second.memo.vec16 or second.memo.alpn or second.memo.versions)
    assert not second.plans._memo and second.certs._cache is None and not second.certs._sni
    for attr in ("hellos", "memo", "plans", "certs"):
        assert getattr(first, attr) is not getattr(second, attr) is not getattr(full, attr)
    # and the second gives the first's answer from its own memos
    assert second.dissect(flow).flow == first.dissect(flow).flow


def test_dtls_and_quic_instances_share_nothing() -> None:
    a, b = DTLSDissector(), DTLSDissector()
    a.dissect(_dtls_flow := flow_from_payloads([(True, dtls_record(22, dtls_hs(1, 0, _dtls_client_hello(CH))))], 4433))
    assert a.state.hellos._client and not b.state.hellos._client and a.state.memo is not b.state.memo
    assert b.dissect(_dtls_flow).flow == a.dissect(_dtls_flow).flow
    q, r = QuicDissector(), QuicDissector()
    quic_flow = flow_from_payloads([(True, packet(crypto(0, handshake(1, CH)) + bytes(1200)))])
    q.dissect(quic_flow)
    assert q.state.keys.entries and not r.state.keys.entries and not r.state.hellos._client


def _containers() -> dict[str, int]:
    """Size of every module-level dict / list / set / bytearray of analyzer.dissect's modules."""
    sizes: dict[str, int] = {}
    for info in pkgutil.walk_packages(analyzer.dissect.__path__, "analyzer.dissect."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, dict | list | set | bytearray) and not name.startswith("__"):
                sizes[f"{info.name}.{name}"] = len(value)
    return sizes


@pytest.mark.parametrize("make", [_tls, _dtls, _quic])
def test_dissecting_changes_no_module_level_container(make: Callable[[bytes, bytes], Facts]) -> None:
    before = _containers()
    make(CH, SH)
    make(client_hello_body(ciphers=(0x1234,), extensions=[alpn_ext([b"x"])]), SH)
    _tls_flows()
    assert _containers() == before


def test_the_tls_family_never_imports_pandas() -> None:
    """Frames belong to the collector: dissect/ (TLS, DTLS, QUIC, x509, the cipher table) runs
    without pandas."""
    import subprocess
    import sys

    code = (
        "import sys, analyzer.dissect.tls, analyzer.dissect.dtls, analyzer.dissect.quic, analyzer.dissect.x509\n"
        "from analyzer.dissect.tls import ciphersuites\n"
        "from analyzer.dissect.x509 import CertificateCache\n"
        "ciphersuites.as_rows(True); list(CertificateCache().rows())\n"
        "assert 'pandas' not in sys.modules, 'pandas imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_hello_cut_is_said_over_tls_dtls_and_quic() -> None:
    """Issue 16 item 5: a ClientHello whose second half was not captured (a TCP segment, a DTLS
    fragment, a QUIC CRYPTO frame) gives an anomaly, `tls_incomplete` and the flow's `truncated`,
    in each of the three protocols; the whole hello gives `tls_incomplete` False."""
    whole = {name: make(CH, SH) for name, make in PROTOCOLS.items()}
    for name, f in whole.items():
        assert f.flow["tls_incomplete"] is False and f.flow["truncated"] is None, name
    tls_hello = record(22, handshake(1, CH))
    tls = TLSDissector(strict=True).dissect(flow_from_bytes(tls_hello[: len(tls_hello) // 2], b""))
    body = _dtls_client_hello(CH)
    half = dtls_record(22, dtls_hs(1, 0, body, 0, 60))  # the first 60 bytes; the other fragment was lost
    dtls = DTLSDissector().dissect(flow_from_payloads(
        [(True, half), (False, dtls_record(22, dtls_hs(2, 0, SH), version=0xFEFD))], 4433))
    message = handshake(1, CH)
    quic = QuicDissector().dissect(flow_from_payloads([(True, packet(crypto(0, message[:80]) + bytes(1200)))]))
    kinds = {"tls": "tls_handshake_cut_short", "dtls": "dtls_handshake_cut", "quic": "quic_handshake_cut"}
    for name, f in {"tls": tls, "dtls": dtls, "quic": quic}.items():
        assert f.flow["tls_incomplete"] is True and f.flow["truncated"] is True, name
        assert f.flow["tls_server_name"] is None, name
        assert [a["kind"] for a in f.rows["anomalies"] if a["kind"] == kinds[name]] == [kinds[name]], name
