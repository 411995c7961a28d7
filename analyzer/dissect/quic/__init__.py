"""QUIC dissector (RFC 9000/9001 v1, RFC 9369 v2, IETF drafts 22-34; Google QUIC by version only).

`_dissector.py` registers `QuicDissector` with `analyzer.dissect.register`. The building
blocks are public for tests and reuse: Initial key derivation and packet unprotection, long-header
parsing, frame walking and CRYPTO reassembly, and the transport-parameter formatter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analyzer._lazy import lazy_attributes

if TYPE_CHECKING:
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
        DISSECTOR,
        MAX_DATAGRAMS,
        QuicDissector,
        dissect_quic,
        retry_integrity_ok,
    )
    from analyzer.dissect.quic._frames import ConnectionClose, CryptoStream, FrameSummary, parse_frames
    from analyzer.dissect.quic._packets import (
        LongHeader,
        VersionInfo,
        looks_like_quic,
        parse_long_header,
        read_varint,
        version_info,
        version_name,
    )
    from analyzer.dissect.quic._tparams import format_transport_params, parse_transport_params

# Loaded on first use (the building blocks import `cryptography`): the registry reads QUIC's
# declarations (analyzer.dissect.tls.schema) without them when a run does no dissection.
# The dissector registers itself in `_dissector.py`.
_LAZY = {
    'ConnectionClose': 'analyzer.dissect.quic._frames',
    'CryptoStream': 'analyzer.dissect.quic._frames',
    'DISSECTOR': 'analyzer.dissect.quic._dissector',
    'FrameSummary': 'analyzer.dissect.quic._frames',
    'InitialKeys': 'analyzer.dissect.quic._crypto',
    'LongHeader': 'analyzer.dissect.quic._packets',
    'MAX_DATAGRAMS': 'analyzer.dissect.quic._dissector',
    'QuicDissector': 'analyzer.dissect.quic._dissector',
    'VersionInfo': 'analyzer.dissect.quic._packets',
    'decode_packet_number': 'analyzer.dissect.quic._crypto',
    'dissect_quic': 'analyzer.dissect.quic._dissector',
    'format_transport_params': 'analyzer.dissect.quic._tparams',
    'hkdf_expand_label': 'analyzer.dissect.quic._crypto',
    'hkdf_extract': 'analyzer.dissect.quic._crypto',
    'initial_secrets': 'analyzer.dissect.quic._crypto',
    'looks_like_quic': 'analyzer.dissect.quic._packets',
    'parse_frames': 'analyzer.dissect.quic._frames',
    'parse_long_header': 'analyzer.dissect.quic._packets',
    'parse_transport_params': 'analyzer.dissect.quic._tparams',
    'protect': 'analyzer.dissect.quic._crypto',
    'read_varint': 'analyzer.dissect.quic._packets',
    'retry_integrity_ok': 'analyzer.dissect.quic._dissector',
    'unprotect': 'analyzer.dissect.quic._crypto',
    'version_info': 'analyzer.dissect.quic._packets',
    'version_name': 'analyzer.dissect.quic._packets',
}

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

__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
