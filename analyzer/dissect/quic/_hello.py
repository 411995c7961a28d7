"""`tls` frame columns from a parsed ClientHello / ServerHello (shared by the QUIC and DTLS dissectors).

Column formats are the TLS dissector's (`analyzer.dissect.tls.dissector`), so rows from TLS, DTLS
and QUIC read alike: version names ("TLS 1.3", "DTLS 1.2", "GREASE"), cipher codes as 4-digit hex
and extension types as decimal in offered order, groups by name, signature schemes as 4-digit hex,
all comma-separated; an empty list is NA.
"""

from __future__ import annotations

from analyzer.dissect.tls.constants import group_name, version_name
from analyzer.dissect.tls.handshake import ClientHello, ServerHello

__all__ = ["cipher_name", "client_columns", "server_columns"]


def cipher_name(code: int) -> str:
    """IANA name of a cipher suite from the shared cipher table; hex when the table is absent."""
    try:
        from analyzer.dissect.tls import ciphersuites
    except ImportError:  # pragma: no cover - the table's module not written yet
        return f"unknown_0x{code:04x}"
    return str(ciphersuites.lookup(code).name)


def _csv(values: list[str]) -> str | None:
    return ",".join(values) if values else None


def client_columns(ch: ClientHello, sh: ServerHello | None = None) -> dict[str, object]:
    """The ClientHello-derived columns of a `tls` row (`sh` only refines extended_master_secret)."""
    return {
        "client_max_version": version_name(ch.max_version),
        "client_legacy_version": version_name(ch.legacy_version),
        "client_supported_versions": _csv([version_name(v) or "" for v in ch.supported_versions]),
        "client_ciphers": ",".join([f"{c:04x}" for c in ch.cipher_suites]),
        "client_cipher_count": len(ch.cipher_suites),
        "compression_methods": ",".join([str(m) for m in ch.compression_methods]),
        "client_extensions": ",".join([str(t) for t in ch.extension_types]),
        "server_name": ch.server_name,
        "alpn_offered": _csv(ch.alpn),
        "supported_groups": _csv([group_name(g) for g in ch.supported_groups]),
        "ec_point_formats": _csv([str(f) for f in ch.ec_point_formats]),
        "signature_algorithms": _csv([f"{s:04x}" for s in ch.signature_algorithms]),
        "key_share_groups": _csv([group_name(g) for g in ch.key_share_groups]),
        "psk_offered": ch.psk,
        "session_ticket_offered": ch.session_ticket,
        "early_data_offered": ch.early_data,
        "ech_offered": ch.ech,
        "renegotiation_info": ch.renegotiation_info,
        "extended_master_secret": ch.extended_master_secret and (sh is None or sh.extended_master_secret),
        "grease": ch.grease,
        "sslv2_client_hello": False,
        "session_id_len": len(ch.session_id),
    }


def server_columns(sh: ServerHello) -> dict[str, object]:
    """The ServerHello-derived columns of a `tls` row (a real ServerHello, not an HRR)."""
    return {
        "version": version_name(sh.version),
        "cipher": cipher_name(sh.cipher_suite),
        "cipher_code": sh.cipher_suite,
        "server_extensions": ",".join([str(t) for t in sh.extension_types]),
        "alpn": sh.alpn,
        "selected_group": group_name(sh.key_share_group) if sh.key_share_group is not None else None,
    }
