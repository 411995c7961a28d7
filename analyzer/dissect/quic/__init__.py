"""QUIC dissector (RFC 9000/9001 v1, RFC 9369 v2, IETF drafts 22-34; Google QUIC by version only).

Importing this package registers `QuicDissector` with `analyzer.dissect.register`. The building
blocks are public for tests and reuse: Initial key derivation and packet unprotection, long-header
parsing, frame walking and CRYPTO reassembly, and the transport-parameter formatter.
"""

from __future__ import annotations

from analyzer.dissect import register
from analyzer.dissect.quic._crypto import (
    InitialKeys,
    decode_packet_number,
    hkdf_expand_label,
    hkdf_extract,
    initial_secrets,
    protect,
    unprotect,
)
from analyzer.dissect.quic._dissector import (
    MAX_DATAGRAMS,
    QuicDissector,
    dissect_quic,
    looks_like_quic,
    retry_integrity_ok,
)
from analyzer.dissect.quic._frames import ConnectionClose, CryptoStream, FrameSummary, parse_frames
from analyzer.dissect.quic._packets import (
    LongHeader,
    VersionInfo,
    parse_long_header,
    read_varint,
    version_info,
    version_name,
)
from analyzer.dissect.quic._tparams import format_transport_params, parse_transport_params

__all__ = [
    "DISSECTOR",
    "MAX_DATAGRAMS",
    "ConnectionClose",
    "CryptoStream",
    "FrameSummary",
    "InitialKeys",
    "LongHeader",
    "QuicDissector",
    "VersionInfo",
    "decode_packet_number",
    "dissect_quic",
    "format_transport_params",
    "hkdf_expand_label",
    "hkdf_extract",
    "initial_secrets",
    "looks_like_quic",
    "parse_frames",
    "parse_long_header",
    "parse_transport_params",
    "protect",
    "read_varint",
    "retry_integrity_ok",
    "unprotect",
    "version_info",
    "version_name",
]

DISSECTOR = register(QuicDissector())
