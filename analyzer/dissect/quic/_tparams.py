"""QUIC transport parameters (RFC 9000 section 18, RFC 9368, extensions) as a compact string.

`format_transport_params(raw)` turns the body of the quic_transport_parameters TLS extension (0x39,
or 0xffa5 in drafts 27-32) into "name=value" items joined by commas, in wire order:
integer parameters as decimal, connection ids and tokens as hex, flags as the bare name, reserved
(GREASE, id = 31 * N + 27) parameters as "GREASE", unknown ids as "0x<id>=<hex>". Values longer
than 32 bytes are shown by their first 32 bytes in hex followed by "..". The output is capped at
1000 characters; a malformed list ends with "!malformed".
"""

from __future__ import annotations

from analyzer.dissect.quic._packets import read_varint, version_name
from analyzer.errors import NeedMoreData

__all__ = ["format_transport_params", "parse_transport_params"]

_INT = "int"
_HEX = "hex"
_FLAG = "flag"
_VERSIONS = "versions"
_TEXT = "text"

# id -> (name, kind)
_PARAMS: dict[int, tuple[str, str]] = {
    0x00: ("original_destination_connection_id", _HEX),
    0x01: ("max_idle_timeout", _INT),
    0x02: ("stateless_reset_token", _HEX),
    0x03: ("max_udp_payload_size", _INT),
    0x04: ("initial_max_data", _INT),
    0x05: ("initial_max_stream_data_bidi_local", _INT),
    0x06: ("initial_max_stream_data_bidi_remote", _INT),
    0x07: ("initial_max_stream_data_uni", _INT),
    0x08: ("initial_max_streams_bidi", _INT),
    0x09: ("initial_max_streams_uni", _INT),
    0x0A: ("ack_delay_exponent", _INT),
    0x0B: ("max_ack_delay", _INT),
    0x0C: ("disable_active_migration", _FLAG),
    0x0D: ("preferred_address", _HEX),
    0x0E: ("active_connection_id_limit", _INT),
    0x0F: ("initial_source_connection_id", _HEX),
    0x10: ("retry_source_connection_id", _HEX),
    0x11: ("version_information", _VERSIONS),  # RFC 9368
    0x20: ("max_datagram_frame_size", _INT),  # RFC 9221
    0x2AB2: ("grease_quic_bit", _FLAG),  # RFC 9287
    0x173E: ("discard", _HEX),
    0x26AB: ("google_handshake_message", _HEX),
    0x3127: ("initial_rtt", _INT),  # Chromium
    0x3128: ("google_connection_options", _TEXT),
    0x3129: ("user_agent", _TEXT),  # Chromium (older builds)
    0x4752: ("google_version", _HEX),
    0xFF73DB: ("version_information_draft", _VERSIONS),
    0xFF02DE1A: ("min_ack_delay", _INT),  # draft-ietf-quic-ack-frequency
    0xFF04DE1A: ("min_ack_delay", _INT),
    0xFF04DE1B: ("min_ack_delay", _INT),
    0x0F739BBC1B666D05: ("enable_multipath", _INT),
    0x0F739BBC1B666D06: ("enable_multipath", _INT),
}

_MAX_PARAMS = 64
_MAX_OUT = 1000


def parse_transport_params(raw: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    """([(id, value)], malformed) in wire order; at most 64 parameters are returned."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    end = len(raw)
    try:
        while pos < end and len(out) < _MAX_PARAMS:
            pid, pos = read_varint(raw, pos, end)
            ln, pos = read_varint(raw, pos, end)
            if pos + ln > end:
                return out, True
            out.append((pid, raw[pos : pos + ln]))
            pos += ln
    except NeedMoreData:
        return out, True
    return out, False


def _hex(value: bytes) -> str:
    if len(value) > 32:
        return value[:32].hex() + ".."
    return value.hex()


def _format_one(pid: int, value: bytes) -> str:
    if pid % 31 == 27:
        return "GREASE"
    known = _PARAMS.get(pid)
    if known is None:
        return f"0x{pid:x}={_hex(value)}"
    name, kind = known
    if kind == _FLAG:
        return name if not value else f"{name}={_hex(value)}"
    if kind == _INT:
        try:
            n, used = read_varint(value, 0)
        except NeedMoreData:
            return f"{name}={_hex(value)}"
        return f"{name}={n}" if used == len(value) else f"{name}={_hex(value)}"
    if kind == _VERSIONS:
        if value and len(value) % 4 == 0:
            vs = [version_name(int.from_bytes(value[i : i + 4], "big")) for i in range(0, len(value), 4)]
            return f"{name}={vs[0]}/{'|'.join(vs[1:])}"
        return f"{name}={_hex(value)}"
    if kind == _TEXT:
        text = value[:64].decode("ascii", "backslashreplace").replace(",", "\\x2c")
        return f"{name}={text}"
    return f"{name}={_hex(value)}"


def format_transport_params(raw: bytes) -> str:
    params, malformed = parse_transport_params(raw)
    items = [_format_one(pid, value) for pid, value in params]
    if malformed:
        items.append("!malformed")
    text = ",".join(items)
    if len(text) > _MAX_OUT:
        text = text[: _MAX_OUT - 2] + ".."
    return text
