"""Declared schemas of every frame the package returns (column name -> pandas dtype), in one place.

Empty input gives an empty frame with the schema, never None. Column names follow one scheme:
Elastic Common Schema words where one exists, flattened with underscores. The `.flows` names
listed in FLOWS_CONTRACT are relied on by later work and by external checks: never rename them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import numpy as np
import pandas as pd

Schema = Mapping[str, str]

TS = "datetime64[ns, UTC]"

FLOWS: dict[str, str] = {
    "uid": "string",
    "community_id": "string",
    "ts_start": TS,
    "ts_end": TS,
    "duration": "float64",
    "transport": "string",  # tcp, udp, icmp, icmp6, esp, gre, ... or ip-<n>
    "ip_version": "Int8",
    "client_ip": "string",
    "client_port": "Int32",
    "server_ip": "string",
    "server_port": "Int32",
    "client_by": "string",  # how the client was decided: syn, synack, port, icmp, first_packet, or
    # continued: the part of a conversation after an active-timeout split keeps the earlier part's client
    "packets_to_server": "Int64",
    "packets_to_client": "Int64",
    "ip_bytes_to_server": "Int64",
    "ip_bytes_to_client": "Int64",
    "payload_bytes_to_server": "Int64",
    "payload_bytes_to_client": "Int64",
    "tcp_flags_to_server": "string",  # letters of flags seen: S A F R P U E C
    "tcp_flags_to_client": "string",
    "conn_state": "string",  # Zeek conn_state letters (S0, S1, SF, REJ, RSTO, RSTR, OTH, ...)
    "retransmitted_bytes": "Int64",
    "missing_bytes": "Int64",  # holes in the reassembled prefixes (Zeek's missed_bytes, prefix only)
    "truncated": "boolean",  # some packet was cut by snaplen / mirror PacketLength
    "vni": "Int64",  # VXLAN/GENEVE VNI of the innermost tunnel carrying the flow
    "tunnel": "string",  # tunnel kinds crossed, e.g. "geneve/vxlan" (a set in fixed order, not nesting order)
    "outer_src_ip": "string",
    "outer_dst_ip": "string",
    "gwlb_endpoint_id": "string",  # AWS GWLB GENEVE TLVs (class 0x0108 types 1, 2, 3)
    "gwlb_attachment_id": "string",
    "gwlb_flow_cookie": "string",
    "vlan": "Int32",
    "source": "string",  # capture file the flow was first seen in
    # --- dissection (joined from the dissectors' Facts.flow) ---
    "app_protocol": "string",
    "encrypted": "boolean",
    "tls_upgraded": "boolean",  # TLS began after cleartext on the same flow (STARTTLS, SOCKS, SSLRequest)
    "tls_version": "string",
    "tls_client_max_version": "string",
    "tls_cipher": "string",
    "tls_server_name": "string",
    "tls_alpn": "string",
    "ja3": "string",
    "ja3s": "string",
    "ja4": "string",
    "ja4s": "string",
    "tls_established": "boolean",
    "cert_sha256": "string",
    "cert_not_after": TS,
    "cert_key_bits": "Int32",
    "cert_self_signed": "boolean",
}

FLOWS_CONTRACT: tuple[str, ...] = (
    "uid", "community_id", "ts_start", "ts_end", "transport", "client_ip", "client_port",
    "server_ip", "server_port", "packets_to_server", "packets_to_client", "ip_bytes_to_server",
    "ip_bytes_to_client", "payload_bytes_to_server", "payload_bytes_to_client", "vni",
    "outer_src_ip", "outer_dst_ip", "truncated",
    "app_protocol", "encrypted", "tls_version", "tls_client_max_version", "tls_cipher",
    "tls_server_name", "tls_alpn", "ja3", "ja3s", "ja4", "ja4s", "tls_established",
    "cert_sha256", "cert_not_after", "cert_key_bits", "cert_self_signed",
)  # fmt: skip

# One row per TLS / DTLS / QUIC session (a flow normally carries one). Owned by dissect/tls.
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

# One row per distinct certificate, keyed by SHA-256 fingerprint. Owned by dissect/x509.
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

ANOMALIES: dict[str, str] = {
    "source": "string",
    "uid": "string",
    "ts": TS,
    "layer": "string",  # source, decode, flow, dissect
    "kind": "string",
    "detail": "string",
    "offset": "Int64",
    "count": "Int64",
}

ALL: dict[str, dict[str, str]] = {
    "flows": FLOWS,
    "tls": TLS,
    "certs": CERTS,
    "cert_links": CERT_LINKS,
    "anomalies": ANOMALIES,
}


_EMPTY: dict[tuple[tuple[str, str], ...], pd.DataFrame] = {}


def empty_frame(schema: Schema) -> pd.DataFrame:
    """An empty frame with the declared columns and dtypes (a copy of one made once per schema:
    a run makes several, and a Series per column cost ~30 ms per frame; pd.array costs a third)."""
    key = tuple(schema.items())
    template = _EMPTY.get(key)
    if template is None:
        columns = {name: pd.array([], dtype=cast(Any, dtype)) for name, dtype in schema.items()}
        template = _EMPTY[key] = pd.DataFrame(columns)
    return template.copy()


def conform(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Give `df` exactly the schema's columns (missing ones filled with NA) in order and dtypes."""
    out = {}
    for name, dtype in schema.items():
        if name in df.columns:
            col = df[name]
            if dtype == TS and not isinstance(col.dtype, pd.DatetimeTZDtype):
                col = _to_timestamp(col)
            out[name] = col.astype(cast(Any, dtype)) if str(col.dtype) != dtype else col
        else:
            out[name] = pd.Series(index=df.index, dtype=dtype)  # all missing, in the column's own NA
    return pd.DataFrame(out, index=df.index)


def _to_timestamp(col: pd.Series) -> pd.Series:
    """Integers are epoch nanoseconds, floats epoch seconds (NaN/None -> NaT; out of range -> NaT)."""
    if col.dtype.kind in "iu":
        return pd.to_datetime(col, unit="ns", utc=True)
    if col.dtype == object:
        col = pd.to_numeric(col, errors="coerce")
    if col.dtype.kind == "f":
        # out-of-range dates (certificates valid until 9999) become NaT rather than an error
        ok = col.between(-9.2e9, 9.2e9)
        return pd.to_datetime(col.where(ok), unit="s", utc=True, errors="coerce")
    return pd.to_datetime(col, utc=True, errors="coerce")


def frame_from_rows(rows: Iterable[Mapping[str, object]], schema: Schema) -> pd.DataFrame:
    """Build a schema-conformant frame from dict rows (unknown keys are an error: declare them)."""
    rows = list(rows)
    if not rows:
        return empty_frame(schema)
    first = tuple(rows[0])
    if all(tuple(r) == first for r in rows):
        # the usual case (one dissector's rows, same keys in the same order): transpose in C
        columns = dict(zip(first, (list(c) for c in zip(*(r.values() for r in rows), strict=True)), strict=True))
    else:
        keys: dict[str, None] = {}
        for r in rows:
            keys.update(dict.fromkeys(r))
        columns = {k: [r.get(k) for r in rows] for k in keys}
    unknown = set(columns) - set(schema)
    if unknown:
        raise KeyError(f"columns not declared in the schema: {sorted(unknown)}")
    return frame_from_columns(columns, schema, len(rows))


def frame_from_columns(columns: Mapping[str, Any], schema: Schema, length: int) -> pd.DataFrame:
    """A schema-conformant frame from columns (numpy arrays or lists; None is missing), each converted
    once, straight to its declared dtype: no per-column type inference, no second conversion.
    Columns the schema lacks are an error; columns absent from `columns` are all missing."""
    return pd.DataFrame(typed_columns(columns, schema, length))


def typed_columns(columns: Mapping[str, Any], schema: Schema, length: int) -> dict[str, Any]:
    """The arrays `frame_from_columns` makes a frame of: every schema column, in its dtype."""
    unknown = set(columns) - set(schema)
    if unknown:
        raise KeyError(f"columns not declared in the schema: {sorted(unknown)}")
    out: dict[str, Any] = {}
    for name, dtype in schema.items():
        values = columns.get(name)
        out[name] = _column([None] * length if values is None else values, dtype)
    return out


def _column(values: Any, dtype: str) -> Any:
    if dtype == TS:
        return _to_timestamp(pd.Series(values, dtype=None if len(values) else float)).astype(cast(Any, TS)).array
    if isinstance(values, np.ndarray) and values.dtype != object:
        if values.dtype.kind == "f" and dtype[0] in "IU":  # NaN marks a missing integer
            return pd.Series(values).astype(cast(Any, dtype)).array
        return pd.array(values, dtype=cast(Any, dtype))
    if dtype == "float64":
        return np.asarray(values, dtype=float)
    values = list(values) if isinstance(values, np.ndarray) else values
    fast = _from_python_objects(values, dtype)
    return fast if fast is not None else pd.array(values, dtype=cast(Any, dtype))


_ARROW_TYPES = {"string": "large_string", "Int8": "int8", "Int16": "int16", "Int32": "int32", "Int64": "int64",
                "boolean": "bool_"}  # fmt: skip


def _from_python_objects(values: list, dtype: str) -> Any:
    """A list of str/int/bool and None straight through Arrow's C++ converter (3-5x faster than
    pandas' per-element checks); None when a value does not fit the type exactly (pandas then
    converts, with its own rules, e.g. str() of a non-string)."""
    arrow_type = _ARROW_TYPES.get(dtype)
    if arrow_type is None:
        return None
    import pyarrow as pa

    try:
        arr = pa.array(values, type=getattr(pa, arrow_type)())
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    if dtype == "string":
        out = pd.arrays.ArrowStringArray(pa.chunked_array([arr]))
        return out if out.dtype == pd.StringDtype() else None
    mask = arr.is_null().to_numpy(zero_copy_only=False)
    data = arr.fill_null(False if dtype == "boolean" else 0).to_numpy(zero_copy_only=False)
    if dtype == "boolean":
        return pd.arrays.BooleanArray(data.astype(bool), mask)
    return pd.arrays.IntegerArray(data.astype(dtype.lower()), mask)
