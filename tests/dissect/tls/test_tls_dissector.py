"""The TLS dissector over crafted flows: sessions, failures, fragmentation, odd starts, schemas."""

from __future__ import annotations

import hashlib
import struct
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.tls_helpers import (
    alpn_ext,
    certificate_msg,
    client_hello_body,
    ext,
    flow_from_bytes,
    handshake,
    make_chain,
    record,
    records,
    server_hello_body,
    sni_ext,
    u16s,
)

import analyzer.dissect as dissect
from analyzer import dissect as registry
from analyzer import schema
from analyzer.dissect.base import Facts, FlowPayload, StreamPrefix
from analyzer.dissect.tls import TLSDissector, find_tls_start, looks_like_tls
from analyzer.dissect.tls import schema as tls_schema
from analyzer.dissect.tls.constants import HRR_RANDOM

CCS = record(20, b"\x01")
SNI = "www.example.org"


@lru_cache(maxsize=1)
def chain() -> tuple[bytes, ...]:
    return tuple(make_chain(SNI))


def ch12(**kw: object) -> bytes:
    exts = [
        sni_ext(SNI),
        ext(10, u16s([29, 23])),
        ext(11, b"\x01\x00"),
        ext(13, u16s([0x0403, 0x0804])),
        alpn_ext([b"h2", b"http/1.1"]),
        ext(23, b""),
        ext(0xFF01, b"\x00"),
    ]
    extra = kw.pop("extra", [])
    return handshake(1, client_hello_body(ciphers=[0xC02F, 0xC030, 0x009E], extensions=exts + list(extra), **kw))  # type: ignore[arg-type]


def ske_ecdhe(group: int = 29) -> bytes:
    return handshake(12, struct.pack(">BHB", 3, group, 32) + b"P" * 32 + b"\x04\x03\x00\x04sign")


def tls12_session(cipher: int = 0xC02F, ske: bytes | None = None) -> tuple[bytes, bytes]:
    client = (
        record(22, ch12(), 0x0301)
        + record(22, handshake(16, b"\x20" + b"K" * 32))
        + CCS
        + record(22, b"E" * 40)
        + record(23, b"A" * 80)
    )
    sh = handshake(
        2,
        server_hello_body(
            cipher=cipher,
            session_id=b"\x07" * 32,
            extensions=[ext(0xFF01, b"\x00"), alpn_ext([b"h2"]), ext(23, b""), ext(35, b"")],
        ),
    )
    server = (
        record(
            22,
            sh + certificate_msg(list(chain())) + (ske if ske is not None else ske_ecdhe()) + handshake(14, b""),
        )
        + record(22, handshake(4, b"\x00\x00\x01\x00\x00\x04tick"))
        + CCS
        + record(22, b"F" * 40)
        + record(23, b"B" * 200)
    )
    return client, server


def tls13_hello(extra: list[bytes] | None = None, share: bytes = b"\x00\x1d\x00\x20" + b"k" * 32) -> bytes:
    exts = [
        sni_ext(SNI),
        ext(43, b"\x04\x03\x04\x03\x03"),
        ext(10, u16s([29, 23])),
        ext(13, u16s([0x0403])),
        ext(51, struct.pack(">H", len(share)) + share),
        ext(45, b"\x01\x01"),
        *(extra or []),
    ]
    return handshake(1, client_hello_body(ciphers=[0x1301, 0x1302], session_id=b"\x01" * 32, extensions=exts))


def sh13(extra: list[bytes] | None = None, random: bytes = b"\x22" * 32) -> bytes:
    exts = [ext(43, b"\x03\x04"), ext(51, b"\x00\x1d\x00\x20" + b"s" * 32), *(extra or [])]
    return handshake(2, server_hello_body(cipher=0x1301, session_id=b"\x01" * 32, extensions=exts, random=random))


def dissect_bytes(
    to_server: bytes, to_client: bytes = b"", *, dissector: TLSDissector | None = None, **kw: object
) -> tuple[Facts, dict[str, object]]:
    d = dissector or TLSDissector(strict=True)
    facts = d.dissect(flow_from_bytes(to_server, to_client, **kw))  # type: ignore[arg-type]
    rows = facts.rows.get("tls", [])
    assert len(rows) <= 1
    return facts, (rows[0] if rows else {})


def assert_schemas(facts: Facts) -> None:
    assert set(facts.flow) <= set(registry.FLOWS)
    for frame, rows in facts.rows.items():
        sch = registry.ALL[frame]
        for row in rows:
            assert set(row) <= set(sch), (frame, set(row) - set(sch))
        schema.frame_from_rows(rows, sch)
    for row in facts.rows.get("tls", []):
        assert set(row) == set(tls_schema.TLS)


# --- complete sessions ------------------------------------------------------------------------


def test_tls12_full_handshake() -> None:
    facts, t = dissect_bytes(*tls12_session())
    assert t["history"] == "CsxknGIti"  # Zeek's ssl_history for the same exchange
    assert t["established"] is True and t["failure_reason"] is None
    assert t["version"] == "TLS 1.2" and t["client_max_version"] == "TLS 1.2"
    assert t["record_version"] == "TLS 1.0" and t["client_legacy_version"] == "TLS 1.2"
    assert t["cipher"] == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" and t["cipher_code"] == 0xC02F
    assert t["server_name"] == SNI and t["alpn_offered"] == "h2,http/1.1" and t["alpn"] == "h2"
    assert t["selected_group"] == "x25519" and t["dh_bits"] is None
    assert t["client_ciphers"] == "c02f,c030,009e" and t["client_cipher_count"] == 3
    assert t["client_extensions"] == "0,10,11,13,16,23,65281"
    assert t["supported_groups"] == "x25519,secp256r1" and t["signature_algorithms"] == "0403,0804"
    assert t["extended_master_secret"] is True and t["renegotiation_info"] is True
    assert t["resumed"] is False and t["hello_retry_request"] is False
    leaf, root = chain()
    sha_leaf, sha_root = hashlib.sha256(leaf).hexdigest(), hashlib.sha256(root).hexdigest()
    assert t["cert_visible"] is True and t["cert_chain"] == f"{sha_leaf},{sha_root}" and t["cert_sha256"] == sha_leaf
    assert t["ja3"] and t["ja4"].startswith("t12d0307h2_") and t["ja4s"].startswith("t1204h2_c02f_")
    assert t["ja4x"] is None  # FoxIO License 1.1: only with ja4x=True
    # both directions stop two records after they turned encrypted: the work is bounded
    assert t["client_stop"] == "encrypted" and t["server_stop"] == "encrypted"
    assert [r["sha256"] for r in facts.rows["certs"]] == [sha_leaf, sha_root]
    assert facts.rows["cert_links"] == [
        {"uid": "X1", "sha256": sha_leaf, "position": 0, "sent_by": "server"},
        {"uid": "X1", "sha256": sha_root, "position": 1, "sent_by": "server"},
    ]
    fl = facts.flow
    assert fl["app_protocol"] == "tls" and fl["encrypted"] is True and fl["tls_established"] is True
    assert fl["tls_version"] == "TLS 1.2" and fl["tls_cipher"] == t["cipher"] and fl["tls_alpn"] == "h2"
    assert fl["tls_server_name"] == SNI and fl["cert_sha256"] == sha_leaf
    assert fl["ja3"] == t["ja3"] and fl["ja4"] == t["ja4"] and fl["ja4s"] == t["ja4s"] and fl["ja3s"] == t["ja3s"]
    assert "anomalies" not in facts.rows
    assert_schemas(facts)


def test_tls12_certificate_facts_come_from_x509() -> None:
    pytest.importorskip("analyzer.dissect.x509")
    facts, t = dissect_bytes(*tls12_session())
    assert t["sni_matches_cert"] is True
    assert facts.flow["cert_not_after"] == pytest.approx(1711843200.0)  # 2024-01-01 + 90 days
    assert facts.flow["cert_self_signed"] is False
    root_row = facts.rows["certs"][1]
    assert root_row["self_signed"] is True and root_row["first_seen_uid"] == "X1"


def test_a_run_reading_certs_alone_gets_them_without_link_rows() -> None:
    """The streamed audit reads `certs` only: its dissector makes no `cert_links` rows, and the same
    certificate rows and flow columns as a run that keeps every frame."""
    from analyzer.dissect.base import DissectContext

    full, _t = dissect_bytes(*tls12_session(), dissector=TLSDissector(strict=True, rows=False, cert_rows=True))
    audit = TLSDissector(strict=True).for_run(DissectContext(frames=frozenset({"certs"})))
    assert audit.cert_rows and not audit.rows and not audit.certs.link_rows
    facts, _ = dissect_bytes(*tls12_session(), dissector=audit)
    assert "cert_links" not in facts.rows and len(full.rows["cert_links"]) == 2
    assert facts.rows["certs"] == full.rows["certs"]
    assert facts.flow == full.flow
    links = TLSDissector(strict=True).for_run(DissectContext(frames=frozenset({"cert_links"})))
    assert links.certs.link_rows
    facts, _ = dissect_bytes(*tls12_session(), dissector=links)
    assert facts.rows["cert_links"] == full.rows["cert_links"]
def test_cert_frames_make_only_the_certificate_rows_the_run_reads() -> None:
    """A run that reads the certs but not the cert_links (a streamed audit feeds the certs to its
    policy stage) gets the same certs rows, leaf facts and chain, and no cert_links rows; with
    neither frame, the tls row's chain columns alone."""
    pytest.importorskip("analyzer.dissect.x509")
    full, t = dissect_bytes(*tls12_session())
    certs_only, _ = dissect_bytes(*tls12_session(), dissector=TLSDissector(
        rows=False, cert_rows=True, cert_frames=("certs",), session=True, strict=True))
    assert certs_only.rows["certs"] == full.rows["certs"] and "cert_links" not in certs_only.rows
    assert certs_only.flow["cert_chain"] == t["cert_chain"] and certs_only.flow["cert_sha256"] == t["cert_sha256"]
    assert certs_only.flow["cert_not_after"] == full.flow["cert_not_after"]
    neither, t2 = dissect_bytes(*tls12_session(), dissector=TLSDissector(cert_frames=(), strict=True))
    assert "certs" not in neither.rows and "cert_links" not in neither.rows
    assert t2["cert_chain"] == t["cert_chain"] and neither.flow == full.flow


def test_ja4x_is_opt_in() -> None:
    _f, t = dissect_bytes(*tls12_session(), dissector=TLSDissector(ja4x=True, strict=True))
    parts = str(t["ja4x"]).split(",")
    assert len(parts) == 2 and all(len(p) == 38 for p in parts)


def test_dhe_prime_size() -> None:
    prime = b"\xc7" + b"\x11" * 383  # 3072 bits
    ske = handshake(12, struct.pack(">H", len(prime)) + prime + b"\x00\x01\x02" + b"\x00\x02YY" + b"\x04\x01\x00\x00")
    _f, t = dissect_bytes(*tls12_session(cipher=0x009E, ske=ske))
    assert t["cipher"] == "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"
    assert t["dh_bits"] == 3072 and t["selected_group"] is None


def test_tls13_handshake() -> None:
    client = record(22, tls13_hello(), 0x0301) + CCS + record(23, b"F" * 53) + record(23, b"D" * 300)
    server = record(22, sh13()) + CCS + record(23, b"x" * 2000) + record(23, b"y" * 300)
    facts, t = dissect_bytes(client, server)
    assert t["history"] == "CsiI"
    assert t["version"] == "TLS 1.3" and t["cipher"] == "TLS_AES_128_GCM_SHA256"
    assert t["established"] is True and t["cert_visible"] is False and t["cert_chain"] is None
    assert t["selected_group"] == "x25519" and t["key_share_groups"] == "x25519"
    assert t["client_supported_versions"] == "TLS 1.3,TLS 1.2"
    assert t["resumed"] is False
    assert t["server_stop"] == "encrypted" and t["client_stop"] == "end"
    assert facts.flow["encrypted"] is True and facts.flow["tls_version"] == "TLS 1.3"
    assert_schemas(facts)


def test_tls13_lone_short_client_record_is_a_probable_encrypted_alert() -> None:
    client = record(22, tls13_hello()) + CCS + record(23, b"a" * 19)
    server = record(22, sh13()) + CCS + record(23, b"x" * 2000)
    _f, t = dissect_bytes(client, server, reset=True)
    assert t["established"] is False
    assert "encrypted alert" in str(t["failure_reason"])


def test_tls13_psk_resumption() -> None:
    client = record(22, tls13_hello(extra=[ext(41, b"\x00\x07" + b"i" * 7)])) + record(23, b"F" * 53)
    server = record(22, sh13(extra=[ext(41, b"\x00\x00")])) + record(23, b"x" * 80)
    _f, t = dissect_bytes(client, server)
    assert t["psk_offered"] is True and t["resumed"] is True and t["history"] == "Cs"


def test_hello_retry_request() -> None:
    hrr = handshake(
        2,
        server_hello_body(
            cipher=0x1301,
            session_id=b"\x01" * 32,
            random=HRR_RANDOM,
            extensions=[ext(43, b"\x03\x04"), ext(51, b"\x00\x17")],
        ),
    )
    client = record(22, tls13_hello()) + CCS + record(22, tls13_hello()) + record(23, b"F" * 53)
    server = record(22, hrr) + CCS + record(22, sh13()) + record(23, b"x" * 80)
    _f, t = dissect_bytes(client, server)
    assert t["history"] == "CjiICs"  # as Zeek logs it
    assert t["hello_retry_request"] is True and t["client_hello_count"] == 2 and t["server_hello_count"] == 2
    assert t["established"] is True and t["selected_group"] == "x25519"


def test_session_id_resumption() -> None:
    sid = b"\x42" * 32
    client = record(22, ch12(session_id=sid)) + CCS + record(22, b"E" * 40) + record(23, b"A" * 50)
    sh = handshake(2, server_hello_body(cipher=0xC02F, session_id=sid))
    server = record(22, sh) + CCS + record(22, b"F" * 40)
    _f, t = dissect_bytes(client, server)
    assert t["resumed"] is True and t["history"] == "CsiI" and t["cert_visible"] is False
    assert t["established"] is True and t["session_id_len"] == 32


def test_ticket_resumption_without_key_exchange() -> None:
    client = record(22, ch12(extra=[ext(35, b"T" * 100)])) + CCS + record(22, b"E" * 40)
    server = record(22, handshake(2, server_hello_body(cipher=0xC02F, session_id=b"\x55" * 32))) + CCS
    _f, t = dissect_bytes(client, server)
    assert t["session_ticket_offered"] is True and t["resumed"] is True


# --- failures ---------------------------------------------------------------------------------


def test_fatal_alert_is_a_failed_handshake() -> None:
    facts, t = dissect_bytes(record(22, ch12()), record(21, b"\x02\x28"))
    assert t["history"] == "Cl"
    assert t["established"] is False and t["version"] is None
    assert t["alert_level"] == "fatal" and t["alert_description"] == "handshake_failure" and t["alert_by"] == "server"
    assert t["failure_reason"] == "server alert: handshake_failure"
    assert facts.flow["encrypted"] is False and facts.flow["tls_established"] is False


def test_client_alert_after_certificate() -> None:
    client, server = tls12_session()
    client = record(22, ch12()) + record(21, b"\x02\x30")
    _f, t = dissect_bytes(client, server)
    assert t["failure_reason"] == "client alert: unknown_ca" and t["established"] is False
    assert t["history"].startswith("CsxknL")


def test_reset_before_the_handshake_finished() -> None:
    _client, server = tls12_session()
    server = server[: server.index(handshake(4, b"\x00\x00\x01\x00\x00\x04tick")) - 5]  # up to ServerHelloDone
    _f, t = dissect_bytes(record(22, ch12()), server, reset=True)
    assert t["established"] is False
    assert t["failure_reason"] == "reset before handshake completed (last: server server_hello_done)"


def test_server_answering_plain_http() -> None:
    _f, t = dissect_bytes(record(22, ch12()), b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert t["failure_reason"] == "server answered with non-TLS data" and t["server_stop"] == "not_tls"


# --- fragmentation and odd starts -------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 100, 1000])
def test_client_hello_fragmented_over_records(size: int) -> None:
    pq = struct.pack(">HH", 0x11EC, 1216) + b"q" * 1216 + b"\x00\x1d\x00\x20" + b"k" * 32
    hello = tls13_hello(share=pq)
    whole, _ = dissect_bytes(record(22, hello) + record(23, b"F" * 53), record(22, sh13()))
    split, t = dissect_bytes(records(22, hello, size) + record(23, b"F" * 53), record(22, sh13()))
    assert t["key_share_groups"] == "X25519MLKEM768,x25519"
    assert t["ja4"] == whole.rows["tls"][0]["ja4"] and t["ja3"] == whole.rows["tls"][0]["ja3"]
    assert t["history"] == "Cs" and "anomalies" not in split.rows


def test_server_flight_coalesced_or_split_gives_the_same_facts() -> None:
    msgs = (
        handshake(2, server_hello_body(cipher=0xC02F))
        + certificate_msg(list(chain()))
        + ske_ecdhe()
        + handshake(14, b"")
    )
    coalesced, _ = dissect_bytes(record(22, ch12()), record(22, msgs))
    split, _ = dissect_bytes(record(22, ch12()), records(22, msgs, 50))
    one_each, _ = dissect_bytes(
        record(22, ch12()),
        b"".join(
            record(22, m)
            for m in (
                handshake(2, server_hello_body(cipher=0xC02F)),
                certificate_msg(list(chain())),
                ske_ecdhe(),
                handshake(14, b""),
            )
        ),
    )
    for facts in (coalesced, split, one_each):
        t = facts.rows["tls"][0]
        assert t["history"] == "Csxkn" and t["cert_chain"] and t["selected_group"] == "x25519"


def test_stream_cut_by_budget_or_gap() -> None:
    data = record(22, tls13_hello())
    flow = flow_from_bytes(data[:100], record(22, sh13())[:30])
    flow.to_server.budget_hit = True
    flow.to_client.gap_at = 30
    facts = TLSDissector(strict=True).dissect(flow)
    t = facts.rows["tls"][0]
    assert t["client_stop"] == "budget" and t["server_stop"] == "gap"
    assert t["ja4"] is None and t["version"] is None
    # a message cut by the budget, or by a lost segment, is said (a padded hello must not hide; a
    # lost segment hides as much): an anomaly per direction, tls_incomplete and the flow truncated
    assert [a["kind"] for a in facts.rows["anomalies"]] == ["tls_handshake_cut_by_gap", "tls_handshake_cut_by_budget"]
    assert facts.flow["tls_incomplete"] is True and facts.flow["truncated"] is True
    whole = TLSDissector(strict=True).dissect(flow_from_bytes(data, record(22, sh13())))
    assert whole.flow["tls_incomplete"] is False and whole.flow["truncated"] is None
    assert "anomalies" not in whole.rows


def test_mid_stream_pickup_resynchronises() -> None:
    tail = b"z" * 37  # the end of a record whose start was not captured
    client = tail + record(23, b"c" * 100) + record(23, b"d" * 100)
    server = record(23, b"s" * 500)[5 + 300 :] + record(23, b"t" * 100)
    flow = flow_from_bytes(client, server)
    flow.to_server.start_known = False
    flow.to_client.start_known = False
    d = TLSDissector(strict=True)
    assert d.probe(flow)
    facts = d.dissect(flow)
    t = facts.rows["tls"][0]
    assert t["established"] is True and t["history"] == "" and t["ja4"] is None
    assert t["record_version"] == "TLS 1.2"


def test_direction_guessed_wrong_by_the_flow_layer() -> None:
    client, server = tls12_session()
    _facts, t = dissect_bytes(server, client)  # roles swapped
    assert t["history"].startswith("^Csxkn")
    assert t["client_port"] == 443 and t["server_port"] == 50000
    assert t["server_name"] == SNI and t["established"] is True


# bytes dense in what the two patterns look for: record types 0x15/0x16, versions 3.x, hello types
_NEAR_TLS = st.lists(st.sampled_from([b"\x16", b"\x15", b"\x03", b"\x01", b"\x02", b"\x00", b"\x04", b"\x48",
                                      b"A", b"\x16\x03\x01\x00\x30", b"\x01\x00\x00\x2c\x03\x03",
                                      b"\x02\x00\x00\x2c\x03\x03", b"\x15\x03\x03\x00\x02\x02"]),
                     max_size=60).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(_NEAR_TLS, _NEAR_TLS, st.integers(0, 70000))
def test_tls_start_search_equals_the_patterns_search(client, server, pad):
    """find_tls_start only tries the patterns where their literal starts occur: the same offsets as
    re's search over the first 64 KiB (the padding moves matches across that limit)."""
    from analyzer.dissect.tls.records import _CH_RE, _SH_RE, SEARCH_LIMIT

    for c, s in ((client, server), (b"x" * pad + client, b"y" * pad + server)):
        m = _CH_RE.search(c, 0, SEARCH_LIMIT)
        sh = _SH_RE.search(s, 0, SEARCH_LIMIT)
        expected = None if m is None else (m.start(), None if sh is None else sh.start())
        assert find_tls_start(c, s) == expected


def test_starttls_offsets_are_found() -> None:
    client = b"EHLO mail.example\r\nSTARTTLS\r\n" + record(22, ch12()) + CCS
    server = b"220 mx ESMTP\r\n250 ok\r\n220 go ahead\r\n" + record(22, handshake(2, server_hello_body())) + CCS
    assert find_tls_start(client, server) == (client.index(b"\x16\x03"), server.index(b"\x16\x03"))
    assert find_tls_start(b"EHLO x\r\nQUIT\r\n", server) is None
    d = TLSDissector(strict=True)
    flow = flow_from_bytes(client, server, server_port=25)
    assert not d.probe(flow)  # the probe only claims flows that start with TLS
    facts = d.dissect(flow)
    assert facts.rows["tls"][0]["history"] == "CsiI" and facts.flow["tls_server_name"] == SNI
    offset_facts = d.dissect_from(flow, client.index(b"\x16\x03"), server.index(b"\x16\x03"))
    assert offset_facts.rows["tls"][0]["history"] == "CsiI"


def test_sslv2_compatible_hello_then_tls() -> None:
    ciphers = bytes.fromhex("01008000002f000035")
    body = b"\x01\x03\x01" + struct.pack(">HHH", len(ciphers), 0, 16) + ciphers + b"c" * 16
    client = struct.pack(">H", 0x8000 | len(body)) + body + record(22, handshake(16, b"k" * 34), 0x0301) + CCS
    server = (
        record(22, handshake(2, server_hello_body(version=0x0301, cipher=0x002F)) + handshake(14, b""), 0x0301) + CCS
    )
    d = TLSDissector(strict=True)
    assert d.probe(flow_from_bytes(client, b""))
    _f, t = dissect_bytes(client, server)
    assert t["sslv2_client_hello"] is True and t["sslv2"] is False
    assert t["version"] == "TLS 1.0" and t["client_max_version"] == "TLS 1.0"
    assert t["client_ciphers"] == "010080,00002f,000035"
    assert t["ja3"] is None and t["ja4"] is None
    assert t["history"] == "CsnGIi" and t["established"] is True


def test_sslv2_session() -> None:
    (leaf, _root) = chain()
    ciphers = bytes.fromhex("0100800700c0")
    hello = b"\x01\x00\x02" + struct.pack(">HHH", len(ciphers), 0, 16) + ciphers + b"c" * 16
    server_hello = b"\x04\x00\x01\x00\x02" + struct.pack(">HHH", len(leaf), 3, 16) + leaf + b"\x07\x00\xc0" + b"i" * 16
    cmk = b"\x02\x07\x00\xc0" + struct.pack(">HHH", 0, 64, 8) + b"m" * 72
    v2 = lambda b: struct.pack(">H", 0x8000 | len(b)) + b  # noqa: E731
    facts, t = dissect_bytes(v2(hello) + v2(cmk) + v2(b"\xffencrypted"), v2(server_hello) + v2(b"\xffenc"))
    assert t["version"] == "SSL 2.0" and t["sslv2"] is True and t["established"] is True
    assert t["cipher"] == "SSL2_DES_192_EDE3_CBC_WITH_MD5" or "DES_192_EDE3" in str(t["cipher"])
    assert t["cert_sha256"] == hashlib.sha256(leaf).hexdigest()
    assert facts.flow["tls_version"] == "SSL 2.0"


def test_not_tls_gives_no_facts() -> None:
    d = TLSDissector(strict=True)
    flow = flow_from_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n", server_port=443)
    assert not d.probe(flow)
    facts = d.dissect(flow)
    assert facts.flow == {} and facts.rows == {}
    assert d.dissect(FlowPayload("u", "tcp", "a", "b", 1, 2, 0.0)).rows == {}


def test_probe_finds_tls_on_any_port() -> None:
    d = TLSDissector()
    assert d.probe(flow_from_bytes(record(22, ch12()), b"", server_port=8081))
    assert d.probe(flow_from_bytes(b"", record(21, b"\x02\x28"), server_port=1))
    assert d.probe(flow_from_bytes(b"\x16\x03\x01", b""))  # a cut header is still suggestive
    assert not d.probe(flow_from_bytes(b"SSH-2.0-OpenSSH_9.6\r\n", b""))
    assert looks_like_tls(record(23, b"x")) and not looks_like_tls(b"\x17\x02\x03\x00\x01x")


# --- hostile input ----------------------------------------------------------------------------


def test_garbage_after_a_record_is_an_anomaly() -> None:
    facts, t = dissect_bytes(record(22, ch12()) + b"\x99\x99\x99\x99\x99\x99", b"")
    kinds = [a["kind"] for a in facts.rows["anomalies"]]
    assert kinds == ["tls_bad_record_header"] and t["client_stop"] == "error"
    assert_schemas(facts)


def test_absurd_lengths_are_anomalies() -> None:
    huge = record(22, b"\x01\xff\xff\xff" + b"x" * 100)
    facts, t = dissect_bytes(huge, b"")
    assert [a["kind"] for a in facts.rows["anomalies"]] == ["tls_handshake_too_large"]
    overflow = struct.pack(">BHH", 23, 0x0303, 30000) + b"x" * 30000
    facts, _t = dissect_bytes(overflow, b"")
    assert [a["kind"] for a in facts.rows["anomalies"]] == ["tls_record_overflow"]
    bad_hello = record(22, handshake(1, b"\x03\x03" + b"r" * 32 + b"\x40" + b"s" * 64))
    facts, t = dissect_bytes(bad_hello, b"")
    assert [a["kind"] for a in facts.rows["anomalies"]] == ["tls_handshake_malformed"]
    assert t["history"] == "C" and t["ja4"] is None
    many = client_hello_body(extensions=[ext(1000 + (i % 60000), b"") for i in range(5000)])
    facts, t = dissect_bytes(records(22, handshake(1, many), 16384), b"")
    assert t["client_extensions"].count(",") == 4999 and t["ja4"].startswith("t12i0399")


def test_internal_errors_are_contained_unless_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    import analyzer.dissect.tls.dissector as mod

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(mod, "decide", boom)
    flow = flow_from_bytes(record(22, ch12()), b"")
    facts = TLSDissector().dissect(flow)
    assert facts.rows["anomalies"][0]["kind"] == "tls_internal_error"
    with pytest.raises(RuntimeError):
        TLSDissector(strict=True).dissect(flow)


# --- timing and the registry ------------------------------------------------------------------


def test_history_follows_capture_time_when_given() -> None:
    client, server = tls12_session()
    flow = flow_from_bytes(client, server)
    # client bytes arrive at t=1 (hello) and t=3 (the rest); server bytes at t=2
    first = len(record(22, ch12(), 0x0301))
    flow.to_server.times = [(0, 1.0), (first, 3.0)]
    flow.to_client.times = [(0, 2.0)]
    t = TLSDissector(strict=True).dissect(flow).rows["tls"][0]
    assert t["ts"] == 1.0
    assert t["history"] == "CsxkntiGI"  # the server's second flight is dated t=2 too


def test_registered_with_the_core() -> None:
    found = [d for d in dissect.registered() if d.name == "tls"]
    assert len(found) == 1
    d = found[0]
    assert d.transports == frozenset({"tcp"})
    assert {443, 465, 636, 853, 993, 995, 5061, 8443} <= d.ports
    assert isinstance(d, TLSDissector) and d.ja4x is False


def test_empty_streamprefix_defaults() -> None:
    flow = FlowPayload("u", "tcp", "a", "b", 1, 2, 0.0, to_server=StreamPrefix(record(22, ch12())))
    facts = TLSDissector(strict=True).dissect(flow)
    t = facts.rows["tls"][0]
    assert t["server_stop"] is None and t["history"] == "C" and t["established"] is False
    # a hello with nothing after it and nothing from the server: undecided, not cleartext
    assert t["failure_reason"] is None and facts.flow["encrypted"] is None
    assert facts.flow["undecided_reason"] == "handshake_incomplete"


# --- bounded work -----------------------------------------------------------------------------


@pytest.mark.slow
def test_work_is_bounded_by_the_handshake_not_the_stream() -> None:
    """Megabytes of application data or 1-byte records must not make a flow expensive (a loose
    bound: it catches quadratic or unbounded walks, not small slowdowns). CPU time
    of this process, not wall time: on a loaded machine the wall clock also counts the time other
    processes had the core (a 1.05 s "walk" was seen at load 9, against 3 ms quiet), and with the
    garbage collector paused: a full collection of an xdist worker's heap is not the walk's cost."""
    import gc
    import time

    client, server = tls12_session()
    bulk_client = client + record(23, b"a" * 16000) * 64
    bulk_server = server + record(23, b"b" * 16000) * 64
    tiny_records = records(22, ch12() * 300, 1)  # 1-byte records up to the record limit
    d = TLSDissector(strict=True)
    for to_server, to_client in ((client, server), (bulk_client, bulk_server), (tiny_records, server)):
        d.dissect(flow_from_bytes(to_server, to_client))  # warm the memos and the x509 cache
    gc.collect()
    gc.disable()
    try:
        t0 = time.process_time()
        for _ in range(200):
            d.dissect(flow_from_bytes(bulk_client, bulk_server))
        per_flow = (time.process_time() - t0) / 200
        assert per_flow < 2e-3, per_flow
        t0 = time.process_time()
        facts = d.dissect(flow_from_bytes(tiny_records, server))
        assert time.process_time() - t0 < 1.0
    finally:
        gc.enable()
    assert [a["kind"] for a in facts.rows["anomalies"]] == ["tls_record_limit"]
