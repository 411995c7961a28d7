"""TLS / DTLS protocol constants as lookup tables. Unknown codes give explicit names, never KeyError.

Sources: IANA "Transport Layer Security (TLS) Parameters" and "TLS Extensions" registries,
RFC 8446 (TLS 1.3), RFC 5246 (TLS 1.2), RFC 8701 (GREASE), RFC 9147 (DTLS 1.3).
"""

from __future__ import annotations

__all__ = [
    "ALERT_DESCRIPTIONS",
    "ALERT_LEVELS",
    "CONTENT_TYPES",
    "EXTENSION_NAMES",
    "GREASE",
    "HANDSHAKE_TYPES",
    "HRR_RANDOM",
    "NAMED_GROUPS",
    "SIGNATURE_SCHEMES",
    "SSL2_CIPHER_KINDS",
    "VERSION_NAMES",
    "alert_description_name",
    "alert_level_name",
    "extension_name",
    "group_name",
    "is_grease",
    "is_tls13",
    "signature_scheme_name",
    "version_name",
]

# RFC 8701: 0x0a0a, 0x1a1a, ... 0xfafa (cipher suites, extensions, groups, versions, sig algs).
GREASE: frozenset[int] = frozenset(((i << 4) | 0x0A) * 0x101 for i in range(16))


def is_grease(value: int) -> bool:
    return value in GREASE


# The random of a HelloRetryRequest (RFC 8446 section 4.1.3): SHA-256("HelloRetryRequest").
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

VERSION_NAMES: dict[int, str] = {
    0x0002: "SSL 2.0",
    0x0200: "SSL 2.0",  # as some stacks write it in an SSLv2 record
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
    0xFEFF: "DTLS 1.0",
    0x0100: "DTLS 1.0",  # OpenSSL's pre-RFC DTLS ("DTLS1_BAD_VER")
    0xFEFD: "DTLS 1.2",
    0xFEFC: "DTLS 1.3",
}
# TLS 1.3 drafts (0x7fXX) and Facebook's experimental draft (0xfb1a ...), named as Wireshark does.
for _d in range(0x0E, 0x1D):
    VERSION_NAMES[0x7F00 | _d] = f"TLS 1.3 (draft {_d})"
VERSION_NAMES[0xFB17] = "TLS 1.3 (Facebook draft 23)"
VERSION_NAMES[0xFB1A] = "TLS 1.3 (Facebook draft 26)"


def version_name(code: int | None) -> str | None:
    """ "TLS 1.2" for 0x0303; "GREASE" for GREASE; "unknown (0x1234)" otherwise; None for None."""
    if code is None:
        return None
    name = VERSION_NAMES.get(code)
    if name is not None:
        return name
    if code in GREASE:
        return "GREASE"
    return f"unknown (0x{code:04x})"


CONTENT_TYPES: dict[int, str] = {
    20: "change_cipher_spec",
    21: "alert",
    22: "handshake",
    23: "application_data",
    24: "heartbeat",
    25: "tls12_cid",
    26: "ack",
}

HANDSHAKE_TYPES: dict[int, str] = {
    0: "hello_request",
    1: "client_hello",
    2: "server_hello",
    3: "hello_verify_request",
    4: "new_session_ticket",
    5: "end_of_early_data",
    6: "hello_retry_request",
    8: "encrypted_extensions",
    9: "request_connection_id",
    10: "new_connection_id",
    11: "certificate",
    12: "server_key_exchange",
    13: "certificate_request",
    14: "server_hello_done",
    15: "certificate_verify",
    16: "client_key_exchange",
    17: "client_certificate_request",
    20: "finished",
    21: "certificate_url",
    22: "certificate_status",
    23: "supplemental_data",
    24: "key_update",
    25: "compressed_certificate",
    26: "ekt_key",
    254: "message_hash",
}

EXTENSION_NAMES: dict[int, str] = {
    0: "server_name",
    1: "max_fragment_length",
    2: "client_certificate_url",
    3: "trusted_ca_keys",
    4: "truncated_hmac",
    5: "status_request",
    6: "user_mapping",
    7: "client_authz",
    8: "server_authz",
    9: "cert_type",
    10: "supported_groups",
    11: "ec_point_formats",
    12: "srp",
    13: "signature_algorithms",
    14: "use_srtp",
    15: "heartbeat",
    16: "application_layer_protocol_negotiation",
    17: "status_request_v2",
    18: "signed_certificate_timestamp",
    19: "client_certificate_type",
    20: "server_certificate_type",
    21: "padding",
    22: "encrypt_then_mac",
    23: "extended_master_secret",
    24: "token_binding",
    25: "cached_info",
    26: "tls_lts",
    27: "compress_certificate",
    28: "record_size_limit",
    29: "pwd_protect",
    30: "pwd_clear",
    31: "password_salt",
    32: "ticket_pinning",
    33: "tls_cert_with_extern_psk",
    34: "delegated_credential",
    35: "session_ticket",
    36: "TLMSP",
    37: "TLMSP_proxying",
    38: "TLMSP_delegate",
    39: "supported_ekt_ciphers",
    41: "pre_shared_key",
    42: "early_data",
    43: "supported_versions",
    44: "cookie",
    45: "psk_key_exchange_modes",
    47: "certificate_authorities",
    48: "oid_filters",
    49: "post_handshake_auth",
    50: "signature_algorithms_cert",
    51: "key_share",
    52: "transparency_info",
    53: "connection_id (deprecated)",
    54: "connection_id",
    55: "external_id_hash",
    56: "external_session_id",
    57: "quic_transport_parameters",
    58: "ticket_request",
    59: "dnssec_chain",
    60: "sequence_number_encryption_algorithms",
    61: "rrc",
    17513: "application_settings",
    17613: "application_settings (new)",
    0xFD00: "ech_outer_extensions",
    0xFE0D: "encrypted_client_hello",
    0xFF01: "renegotiation_info",
    0xFFA5: "quic_transport_parameters (draft)",
    0xFFCE: "encrypted_server_name (draft)",
    13172: "next_protocol_negotiation",
    30031: "channel_id (old)",
    30032: "channel_id",
}


def extension_name(code: int) -> str:
    name = EXTENSION_NAMES.get(code)
    if name is not None:
        return name
    return "GREASE" if code in GREASE else f"unknown_{code}"


ALERT_LEVELS: dict[int, str] = {1: "warning", 2: "fatal"}

ALERT_DESCRIPTIONS: dict[int, str] = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed",
    22: "record_overflow",
    30: "decompression_failure",
    40: "handshake_failure",
    41: "no_certificate",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    52: "too_many_cids_requested",
    60: "export_restriction",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    111: "certificate_unobtainable",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    114: "bad_certificate_hash_value",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
    121: "ech_required",
}


def alert_level_name(code: int) -> str:
    return ALERT_LEVELS.get(code, f"unknown_{code}")


def alert_description_name(code: int) -> str:
    return ALERT_DESCRIPTIONS.get(code, f"unknown_{code}")


NAMED_GROUPS: dict[int, str] = {
    1: "sect163k1", 2: "sect163r1", 3: "sect163r2", 4: "sect193r1", 5: "sect193r2",
    6: "sect233k1", 7: "sect233r1", 8: "sect239k1", 9: "sect283k1", 10: "sect283r1",
    11: "sect409k1", 12: "sect409r1", 13: "sect571k1", 14: "sect571r1", 15: "secp160k1",
    16: "secp160r1", 17: "secp160r2", 18: "secp192k1", 19: "secp192r1", 20: "secp224k1",
    21: "secp224r1", 22: "secp256k1", 23: "secp256r1", 24: "secp384r1", 25: "secp521r1",
    26: "brainpoolP256r1", 27: "brainpoolP384r1", 28: "brainpoolP512r1", 29: "x25519", 30: "x448",
    31: "brainpoolP256r1tls13", 32: "brainpoolP384r1tls13", 33: "brainpoolP512r1tls13",
    34: "GC256A", 35: "GC256B", 36: "GC256C", 37: "GC256D", 38: "GC512A", 39: "GC512B",
    40: "GC512C", 41: "curveSM2",
    256: "ffdhe2048", 257: "ffdhe3072", 258: "ffdhe4096", 259: "ffdhe6144", 260: "ffdhe8192",
    0x0200: "MLKEM512", 0x0201: "MLKEM768", 0x0202: "MLKEM1024",
    0x11EB: "SecP256r1MLKEM768", 0x11EC: "X25519MLKEM768", 0x11ED: "SecP384r1MLKEM1024",
    0x6399: "X25519Kyber768Draft00", 0x639A: "SecP256r1Kyber768Draft00",
    0xFF01: "arbitrary_explicit_prime_curves", 0xFF02: "arbitrary_explicit_char2_curves",
}  # fmt: skip


def group_name(code: int) -> str:
    name = NAMED_GROUPS.get(code)
    if name is not None:
        return name
    return "GREASE" if code in GREASE else f"unknown_0x{code:04x}"


SIGNATURE_SCHEMES: dict[int, str] = {
    0x0201: "rsa_pkcs1_sha1", 0x0202: "dsa_sha1", 0x0203: "ecdsa_sha1",
    0x0301: "rsa_pkcs1_sha224", 0x0302: "dsa_sha224", 0x0303: "ecdsa_sha224",
    0x0401: "rsa_pkcs1_sha256", 0x0402: "dsa_sha256", 0x0403: "ecdsa_secp256r1_sha256",
    0x0420: "rsa_pkcs1_sha256_legacy",
    0x0501: "rsa_pkcs1_sha384", 0x0502: "dsa_sha384", 0x0503: "ecdsa_secp384r1_sha384",
    0x0520: "rsa_pkcs1_sha384_legacy",
    0x0601: "rsa_pkcs1_sha512", 0x0602: "dsa_sha512", 0x0603: "ecdsa_secp521r1_sha512",
    0x0620: "rsa_pkcs1_sha512_legacy",
    0x0101: "rsa_pkcs1_md5", 0x0102: "dsa_md5", 0x0103: "ecdsa_md5",
    0x0704: "eccsi_sha256", 0x0705: "iso_ibs1", 0x0706: "iso_ibs2", 0x0707: "iso_chinese_ibs",
    0x0708: "sm2sig_sm3", 0x0709: "gostr34102012_256a", 0x070A: "gostr34102012_256b",
    0x070B: "gostr34102012_256c", 0x070C: "gostr34102012_256d", 0x070D: "gostr34102012_512a",
    0x070E: "gostr34102012_512b", 0x070F: "gostr34102012_512c",
    0x0804: "rsa_pss_rsae_sha256", 0x0805: "rsa_pss_rsae_sha384", 0x0806: "rsa_pss_rsae_sha512",
    0x0807: "ed25519", 0x0808: "ed448",
    0x0809: "rsa_pss_pss_sha256", 0x080A: "rsa_pss_pss_sha384", 0x080B: "rsa_pss_pss_sha512",
    0x081A: "ecdsa_brainpoolP256r1tls13_sha256", 0x081B: "ecdsa_brainpoolP384r1tls13_sha384",
    0x081C: "ecdsa_brainpoolP512r1tls13_sha512",
    0x0904: "mldsa44", 0x0905: "mldsa65", 0x0906: "mldsa87",
}  # fmt: skip


def signature_scheme_name(code: int) -> str:
    name = SIGNATURE_SCHEMES.get(code)
    if name is not None:
        return name
    return "GREASE" if code in GREASE else f"unknown_0x{code:04x}"


# SSL 2.0 cipher kinds (3 bytes), as sent in SSLv2 CLIENT-HELLO / SERVER-HELLO / CLIENT-MASTER-KEY.
SSL2_CIPHER_KINDS: dict[int, str] = {
    0x010080: "SSL2_RC4_128_WITH_MD5",
    0x020080: "SSL2_RC4_128_EXPORT40_WITH_MD5",
    0x030080: "SSL2_RC2_128_CBC_WITH_MD5",
    0x040080: "SSL2_RC2_128_CBC_EXPORT40_WITH_MD5",
    0x050080: "SSL2_IDEA_128_CBC_WITH_MD5",
    0x060040: "SSL2_DES_64_CBC_WITH_MD5",
    0x0700C0: "SSL2_DES_192_EDE3_CBC_WITH_MD5",
    0x080080: "SSL2_RC4_64_WITH_MD5",
}


def is_tls13(version: int | None) -> bool:
    """TLS 1.3 or one of its drafts (0x7fXX, Facebook's 0xfb17 / 0xfb1a)."""
    if version is None:
        return False
    return version == 0x0304 or version >> 8 == 0x7F or version in (0xFB17, 0xFB1A)
