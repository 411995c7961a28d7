"""The columns and frames the TLS family (TLS, DTLS, QUIC) declares: its flow columns, and the
`tls`, `certs` and `cert_links` frames. The three dissectors fill the same flow columns and make rows
of the same frames, so they declare the same objects (`analyzer.dissect.register` accepts a column or
frame declared by several dissectors when the declarations are equal).
"""

from __future__ import annotations

from analyzer.dissect.base import Column, Dedup, FrameSpec
from analyzer.schema import TS

# The optional flow column group (Column.group) of the session facts below.
SESSION_FACTS = "tls_session"

FLOW_COLUMNS: tuple[Column, ...] = (
    Column("tls_upgraded", "boolean", "TLS began after cleartext on the same flow (STARTTLS, SOCKS, SSLRequest)"),
    Column("tls_version", "string", "negotiated version: TLS 1.3, TLS 1.2, ..., SSL 3.0, DTLS 1.2"),
    Column("tls_client_max_version", "string", "highest version the client offered"),
    Column("tls_cipher", "string", "IANA name of the selected cipher suite"),
    Column("tls_server_name", "string", "SNI host name the client sent"),
    Column("tls_alpn", "string", "application protocol the server selected (ALPN)"),
    Column("ja3", "string", "JA3 of the ClientHello"),
    Column("ja3s", "string", "JA3S of the ServerHello"),
    Column("ja4", "string", "JA4 of the ClientHello (FoxIO, BSD-3-Clause)"),
    Column("ja4s", "string", "JA4S of the ServerHello (FoxIO, BSD-3-Clause)"),
    Column("tls_established", "boolean", "the handshake completed (both sides switched to encrypted records)"),
    Column("cert_sha256", "string", "SHA-256 of the server's leaf certificate (where visible: not in TLS 1.3)"),
    Column("cert_not_after", TS, "the leaf certificate's notAfter"),
    Column("cert_key_bits", "Int32", "the leaf certificate's key size (RSA modulus, EC curve bits)"),
    Column("cert_self_signed", "boolean", "the leaf certificate is self-signed (its own key verifies it)"),
    # The session facts the policy judges that the columns above lack (the same values as the tls
    # row's): an optional group (Column.group), made only in runs that read it (the streamed audit's
    # policy stage reads them instead of tls rows); a plain flows run neither computes nor has them.
    Column("cert_chain", "string", "SHA-256 fingerprints of the server's certificates, leaf first, comma-separated",
           SESSION_FACTS),
    Column("tls_sni_matches_cert", "boolean", "the leaf certificate covers the SNI host name (null: no SNI or no "
                                              "certificate seen)", SESSION_FACTS),
    Column("tls_alert_level", "string", "level of the session's alert (the first fatal one, else the first): "
                                        "warning, fatal", SESSION_FACTS),
    Column("tls_alert_description", "string", "description of that alert (protocol_version, handshake_failure, ...)",
           SESSION_FACTS),
    Column("tls_alert_by", "string", "who sent that alert: client or server", SESSION_FACTS),
    Column("tls_client_supported_versions", "string", "versions of the client's supported_versions extension, "
                                                      "comma-separated", SESSION_FACTS),
    Column("tls_server_extensions", "string", "extension types of the ServerHello, in order, comma-separated",
           SESSION_FACTS),
    Column("tls_sslv2", "boolean", "the session itself was SSL 2.0; set (true or false) on every flow with a "
                                   "TLS, DTLS or QUIC session", SESSION_FACTS),
    Column("tls_incomplete", "boolean", "a handshake message was cut (payload budget and its handshake extension, "
                                        "snap length, a lost segment, the stream's end): facts it carried are missing"),
    # the engine's column: a dissector that found a message cut sets it too (the pipeline ORs them)
    Column("truncated", "boolean", "some packet was cut by the snap length, or a handshake message was cut"),
    # DTLS only, and only when set: what else shared the 5-tuple (WebRTC, RFC 7983)
    Column("dtls_multiplexed", "string",
           "other protocols on the DTLS flow's 5-tuple by first byte (RFC 7983): stun, zrtp, turn_channel, "
           "rtp, rtcp"),
)

# One row per TLS / DTLS / QUIC session (a flow normally carries one).
TLS: dict[str, str] = {
    "uid": "string",
    "protocol": "string",  # tls, dtls, quic
    "ts": TS,
    "client_ip": "string",
    "client_port": "Int32",
    "server_ip": "string",
    "server_port": "Int32",
    "version": "string",  # negotiated: "TLS 1.3", "DTLS 1.2", "SSL 3.0", ...
    "client_max_version": "string",
    "record_version": "string",
    "client_legacy_version": "string",
    "client_supported_versions": "string",  # comma-separated names, GREASE as "GREASE"
    "cipher": "string",  # IANA name of the selected suite
    "cipher_code": "Int32",
    "client_ciphers": "string",  # hex codes, comma-separated, in offered order
    "client_cipher_count": "Int32",
    "compression_methods": "string",
    "client_extensions": "string",  # extension type numbers in offered order
    "server_extensions": "string",
    "server_name": "string",
    "alpn_offered": "string",
    "alpn": "string",
    "supported_groups": "string",
    "ec_point_formats": "string",
    "signature_algorithms": "string",
    "key_share_groups": "string",
    "selected_group": "string",
    "psk_offered": "boolean",
    "session_ticket_offered": "boolean",
    "early_data_offered": "boolean",
    "ech_offered": "boolean",
    "renegotiation_info": "boolean",
    "extended_master_secret": "boolean",
    "grease": "boolean",
    "sslv2_client_hello": "boolean",
    "hello_retry_request": "boolean",
    "resumed": "boolean",
    "session_id_len": "Int32",
    "dh_bits": "Int32",  # ServerKeyExchange finite-field DH prime size, where visible
    "established": "boolean",
    "history": "string",  # compact handshake history, Zeek ssl_history letters
    "alert_level": "string",
    "alert_description": "string",
    "alert_by": "string",  # client or server: who sent the alert in alert_level/alert_description
    "failure_reason": "string",
    "cert_visible": "boolean",  # False for TLS 1.3 / QUIC: the certificate is encrypted
    "cert_chain": "string",  # SHA-256 fingerprints, leaf first, comma-separated
    "cert_sha256": "string",
    "sni_matches_cert": "boolean",
    "client_cert_chain": "string",
    "ja3": "string",
    "ja3_full": "string",
    "ja3s": "string",
    "ja3s_full": "string",
    "ja4": "string",
    "ja4_r": "string",
    "ja4s": "string",
    "ja4s_r": "string",
    "ja4x": "string",
    "quic_version": "string",
    "quic_transport_params": "string",
    "client_hello_count": "Int16",  # 2 after a HelloRetryRequest
    "server_hello_count": "Int16",  # HelloRetryRequest included
    # Why reading each direction stopped: encrypted, end, gap, budget, truncated, not_tls, error,
    # record_limit, no_record_boundary (mid-stream pickup without a record header found).
    "client_stop": "string",
    "server_stop": "string",
    "sslv2": "boolean",  # the session itself was SSL 2.0 (not only an SSLv2-compatible hello)
}

# One row per distinct certificate, keyed by SHA-256 fingerprint (the row is made by dissect/x509).
CERTS: dict[str, str] = {
    "sha256": "string",  # lowercase hex of the DER bytes
    "sha1": "string",  # lowercase hex of the DER bytes (Zeek x509.log and blocklists use it)
    "subject": "string",  # RFC 4514
    "issuer": "string",
    "subject_cn": "string",
    "issuer_cn": "string",
    "san_dns": "string",  # comma-separated
    "san_ip": "string",
    "serial": "string",
    "not_before": TS,  # NaT when outside the datetime64[ns] range (e.g. 9999-12-31 "no expiry")
    "not_after": TS,
    "not_before_epoch": "Float64",  # the same instants as exact epoch seconds, any year
    "not_after_epoch": "Float64",
    "key_type": "string",  # rsa, dsa, ec, ed25519, ed448, x25519, x448, dh, unknown
    "key_bits": "Int32",  # RSA/DSA/DH modulus bits, EC curve size, ed25519 256, ed448 448
    "key_curve": "string",
    "key_algorithm": "string",  # SubjectPublicKeyInfo algorithm (name or dotted OID)
    "signature_algorithm": "string",
    "signature_hash": "string",
    "self_issued": "boolean",
    "self_signed": "boolean",  # issuer == subject and the signature verifies with its own key
    "is_ca": "boolean",
    "version": "Int8",
    "parse_error": "string",  # set when the DER cannot be loaded: the row then has only sha256
    "field_errors": "string",  # fields that failed on their own ("extensions: ...; ...")
    "first_seen_uid": "string",
    "sessions": "Int64",  # how many sessions presented it
}

# Links sessions to certificates (chain position), one row per (uid, position).
CERT_LINKS: dict[str, str] = {
    "uid": "string",
    "sha256": "string",
    "position": "Int16",  # 0 = leaf
    "sent_by": "string",  # server or client
}

FRAMES: tuple[FrameSpec, ...] = (
    FrameSpec("tls", TLS, "One row per TLS, DTLS or QUIC session: versions, cipher, SNI, ALPN, fingerprints, "
              "certificate.",
              table_columns=("ts", "protocol", "client_ip", "server_ip", "server_port", "version", "cipher",
                             "server_name", "alpn", "established", "history", "ja4", "ja4s", "cert_sha256")),
    FrameSpec("certs", CERTS, "One row per distinct certificate seen (keyed by SHA-256 fingerprint).",
              merge=Dedup(key="sha256", count="sessions", first_uid="first_seen_uid"),
              table_columns=("sha256", "subject_cn", "issuer_cn", "not_after", "key_type", "key_bits",
                             "signature_hash", "self_signed", "sessions")),
    FrameSpec("cert_links", CERT_LINKS, "Which session presented which certificate, at which chain position."),
)
