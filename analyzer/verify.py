"""A second opinion on the TLS facts: tshark (Wireshark's dissectors, driven through pyshark)
re-dissects the captures, and every TLS / DTLS / QUIC session is compared with our `.tls` rows.

    >>> from analyzer.verify import verify
    >>> bad = verify(["captures/tls12_ecdhe_openssl.pcap"])   # one row per (session, fact) that differs
    >>> bad.attrs["summary"]["text"]
    '1 sessions compared, 1 agree (100.0%)'

Three pieces, usable on their own:

- `tshark_sessions(path, decode_as=...)`: tshark's view, one row per TCP/UDP conversation that
  carried a TLS/DTLS handshake message, in the column format of the shared corpus oracle
  (`../shared/corpus/oracle_tshark.py`: `negotiated_version` "TLSv1.2", `selected_cipher`
  "0xc02b", `alpn_offered` "h2|http/1.1", `leaf_validity_tshark`, ...). The oracle CSVs shipped
  with the corpus can therefore be compared exactly like a live tshark run.
- `compare(ours, theirs, certs)`: joins our `.tls` rows (plus the leaf certificate's validity from
  `.certs`) to tshark's rows by transport and the two endpoints (unordered, so a different
  client/server guess still pairs them; several sessions on one 5-tuple pair in time order) and
  compares the facts in `FACTS`. Returns a `Comparison` (per-session frame + disagreements).
- `verify(paths, **options)`: `analyze()` + `tshark_sessions()` per capture + `compare()`.

The facts compared, after normalising tshark's spelling to ours:

- `session`: both sides saw a TLS handshake on this conversation (a row on one side only, with
  handshake facts, is a disagreement).
- `version`: the negotiated version, tshark's spelling turned into ours by this module's own
  table ("TLSv1.2" -> "TLS 1.2", "TLSv1.3-draft28" -> "TLS 1.3 (draft 28)",
  "DTLSv1.0(OpenSSL-pre)" -> "DTLS 1.0", SSLv2 -> "SSL 2.0").
- `cipher`: the selected suite by its code (our `cipher_code`, tshark's `selected_cipher`; an
  SSLv2 CIPHER-KIND is 3 bytes). Each side is shown with its own name: ours from our `cipher`,
  tshark's from tshark's value strings (`tshark -G values`).

The oracle shares no code with what it checks: nothing here comes from `analyzer.dissect` (a test
parses this module's imports), so a wrong entry in the dissector's tables cannot hide itself here.
- `sni`, `alpn_offered` (the first ClientHello), `alpn` (selected, from the ServerHello).
- `cert_validity`: the server leaf's notBefore/notAfter, to the second. tshark's own rendering
  (x509af UTCTime / GeneralizedTime) is preferred to the oracle's `cryptography` columns, because
  our certificates are parsed with `cryptography` too.

What a passive observer cannot see is not counted against either side (the row's `unverifiable`
column names it, with the reason in `UNVERIFIABLE`):
- QUIC (RFC 9001 section 4.2) is TLS 1.3 by definition: we report "TLS 1.3" for a QUIC session
  whose ServerHello was not seen, tshark reports nothing;
- the ALPN selected in QUIC / TLS 1.3 travels in the encrypted EncryptedExtensions: we infer it
  when the client offered one protocol and the handshake went on, tshark reports nothing;
- TLS 1.3 / QUIC certificates are encrypted; tshark decrypts them when the pcapng carries a
  key log (Decryption Secrets Block) while we, passive, do not.

tshark details handled here:
- Only handshake packets are decoded to JSON: display filter `tls.handshake.type or
  dtls.handshake.type` (`tls.handshake` would miss SSLv2 records, which have no Handshake
  subtree; QUIC CRYPTO frames are dissected by the TLS dissector so they match, while the 1-RTT
  QUIC packets, which carry no facts, are not decoded, hence no bare `quic` in the filter).
- Decode-as: a first, light tshark pass (`-J "frame ip ipv6 tcp udp"`) finds ClientHellos that
  tshark left undissected or to another dissector (TLS on an odd port, inside RDP, after an IRC
  STARTTLS) and the conversations tshark already dissects as TLS. The server ports of the first,
  plus the ports our `.tls` saw TLS / DTLS / QUIC on, are decoded as such, except where tshark
  already finds TLS by itself (forcing it there can hide it, e.g. when our client/server guess
  differs from tshark's) and ports whose protocol upgrades to TLS after cleartext (STARTTLS:
  tshark follows the upgrade itself). The second opinion thus does not depend only on our ports.
- TCP reassembly preferences are the corpus oracle's (`TSHARK_PREFS`).
- pyshark is driven on a private event loop closed afterwards, and its end-of-capture cleanup is
  replaced (`_capture_class`), so no asyncio warning or "Unknown child process" leaks out and a
  damaged capture gives the sessions read before the damage plus a note, not an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from analyzer import schema
from analyzer._pandas import pd
from analyzer.errors import CaptureError, IntransitError, UsageError

if TYPE_CHECKING:
    from analyzer.pipeline import Analysis

__all__ = [
    "DISAGREEMENTS",
    "FACTS",
    "TSHARK_COLUMNS",
    "UNVERIFIABLE",
    "Comparison",
    "TsharkMissing",
    "compare",
    "decode_as_for",
    "ours_sessions",
    "preflight",
    "tshark_cipher_names",
    "tshark_sessions",
    "tshark_version_name",
    "verify",
    "verify_captures",
]

FACTS: tuple[str, ...] = ("session", "version", "cipher", "sni", "alpn_offered", "alpn", "cert_validity")

UNVERIFIABLE: dict[str, str] = {
    "quic_version": "QUIC is TLS 1.3 by definition (RFC 9001 4.2); tshark saw no ServerHello",
    "encrypted_alpn": "the selected ALPN is in the encrypted EncryptedExtensions (TLS 1.3 / QUIC)",
    "decrypted_cert": "TLS 1.3 / QUIC certificate: tshark decrypted it with the capture's key log",
}

# The disagreements frame, one row per (session, fact).
DISAGREEMENTS: dict[str, str] = {
    "source": "string",
    "transport": "string",
    "client_ip": "string",
    "client_port": "Int32",
    "server_ip": "string",
    "server_port": "Int32",
    "uid": "string",  # ours (NA when only tshark saw the session)
    "conv": "string",  # tshark's conversation, "tcp:<tcp.stream>" / "udp:<udp.stream>"
    "fact": "string",
    "ours": "string",
    "tshark": "string",
}

# Columns of `tshark_sessions()` (a subset of the corpus oracle's, same names and spelling).
TSHARK_COLUMNS: dict[str, str] = {
    "file": "string",
    "conv": "string",
    "transport": "string",
    "client_ip": "string",
    "client_port": "Int32",
    "server_ip": "string",
    "server_port": "Int32",
    "client_by": "string",
    "first_frame": "Int64",
    "app_protocols": "string",
    "decode_as": "string",
    "ch_count": "Int32",
    "ch_legacy_version": "string",
    "ch_supported_versions": "string",
    "sni": "string",
    "alpn_offered": "string",
    "sslv2_ch": "Int8",
    "hrr": "Int8",
    "sh_count": "Int32",
    "negotiated_version": "string",
    "selected_cipher": "string",
    "alpn_selected": "string",
    "server_cert_count": "Int32",
    "client_cert_count": "Int32",
    "leaf_validity_tshark": "string",
}

# Ports whose protocol starts in cleartext and may upgrade to TLS (STARTTLS, SSLRequest, ...):
# tshark follows the upgrade itself; a decode-as there would hide it.
STARTTLS_PORTS = frozenset({21, 23, 25, 110, 119, 143, 194, 389, 587, 1433, 2525, 3306, 4190, 5222,
                            5269, 5432, 6667, 8008})  # fmt: skip

TSHARK_PREFS = {
    "tls.desegment_ssl_records": "TRUE",
    "tcp.desegment_tcp_streams": "TRUE",
    "tcp.reassemble_out_of_order": "TRUE",
}
# `tls.handshake.type`, not `tls.handshake`: SSLv2 records have the first and not the second
DISPLAY_FILTER = "tls.handshake.type or dtls.handshake.type"
# ClientHellos tshark did not dissect as TLS / DTLS (the corpus oracle's discovery filter)
# and, to know where tshark needs no help, the hellos it did dissect
DISCOVERY_FILTER = ("(tcp.payload[0:2] == 16:03 && tcp.payload[5] == 01 && !tls) || "
                    "(udp.payload[0:2] == 16:fe && udp.payload[13] == 01 && !dtls) || "
                    "tls.handshake.type == 1 || tls.handshake.type == 2 || "
                    "dtls.handshake.type == 1 || dtls.handshake.type == 2")

_HRR_RANDOM = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
# tshark's (and the corpus oracle's) version spelling
_TSHARK_VERSIONS = {
    0x0002: "SSLv2", 0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2",
    0x0304: "TLSv1.3", 0xFEFF: "DTLSv1.0", 0xFEFD: "DTLSv1.2", 0xFEFC: "DTLSv1.3",
    0x0100: "DTLSv1.0(OpenSSL-pre)",
}  # fmt: skip
_TSHARK_VERSION_CODES = {name: code for code, name in _TSHARK_VERSIONS.items()}
_TSHARK_VERSION_CODES["TLSv1"] = 0x0301  # tshark's Protocol column spelling
# Our spelling of a version code (the `.tls` `version` column), kept here on purpose: the oracle
# does not borrow the dissector's table (RFC 6101, 2246, 4346, 5246, 8446; DTLS RFC 4347, 6347, 9147).
_OUR_VERSIONS = {
    0x0002: "SSL 2.0", 0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
    0x0304: "TLS 1.3", 0xFEFF: "DTLS 1.0", 0x0100: "DTLS 1.0", 0xFEFD: "DTLS 1.2", 0xFEFC: "DTLS 1.3",
}  # fmt: skip


class TsharkMissing(IntransitError):
    """tshark (Wireshark's command-line dissector) is not installed or not runnable."""


# --------------------------------------------------------------------------------- normalising
def _our_version_name(code: int) -> str:
    """Our spelling of a version code: "TLS 1.2"; TLS 1.3 drafts "TLS 1.3 (draft 28)" (0x7f1c) and
    Facebook's "TLS 1.3 (Facebook draft 26)" (0xfb1a), as Wireshark names them; else
    "unknown (0x1234)"."""
    name = _OUR_VERSIONS.get(code)
    if name is not None:
        return name
    if code >> 8 == 0x7F:
        return f"TLS 1.3 (draft {code & 0xFF})"
    if code >> 8 == 0xFB:
        return f"TLS 1.3 (Facebook draft {code & 0xFF})"
    return f"unknown (0x{code:04x})"


def tshark_version_name(value: object) -> str | None:
    """Our name for a version as tshark / the oracle spells it: "TLSv1.2" -> "TLS 1.2",
    "TLSv1.3-draft28" -> "TLS 1.3 (draft 28)", "0x7f1c" -> "TLS 1.3 (draft 28)"; None if empty."""
    text = _text(value)
    if text is None:
        return None
    code = _TSHARK_VERSION_CODES.get(text)
    if code is None:
        m = re.fullmatch(r"TLSv1\.3-draft(\d+)", text)
        if m:
            code = 0x7F00 | int(m.group(1))
        elif re.fullmatch(r"TLSv1\.3-fb-draft(\d+)", text):
            code = 0xFB00 | int(text.rsplit("draft", 1)[1])
        elif re.fullmatch(r"0x[0-9a-fA-F]{1,4}", text):
            code = int(text, 16)
        else:
            return text
    return _our_version_name(code)


def _cipher_code(code: int) -> str:
    """The comparable text of a cipher code: "0xc02b"; an SSLv2 CIPHER-KIND "0x0700c0"."""
    return f"0x{code:04x}" if code <= 0xFFFF else f"0x{code:06x}"


def _theirs_cipher(value: object) -> str | None:
    """tshark's selected cipher ("0xc02b", several "|"-joined: the first) as `_cipher_code` text."""
    text = _text(value)
    if text is None:
        return None
    first = text.split("|")[0]
    try:
        return _cipher_code(int(first, 16))
    except ValueError:
        return first


def _ours_cipher(value: object) -> str | None:
    n = _num(value)
    return None if n is None else _cipher_code(int(n))


def _named(code: str | None, name: str | None) -> str | None:
    """A cipher code as shown: "TLS_AES_128_GCM_SHA256 (0x1301)", or the code alone."""
    if code is None or not name or name == code:
        return code
    return f"{name} ({code})"


@functools.cache
def _value_strings(exe: str) -> dict[str, dict[int, str]]:
    """tshark's value strings (`tshark -G values`): {field: {value: name}}; {} when it fails."""
    import subprocess

    try:
        out = subprocess.run([exe, "-G", "values"], capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    names: dict[str, dict[int, str]] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "V" and parts[1] in _CIPHER_FIELDS:
            with contextlib.suppress(ValueError):
                names.setdefault(parts[1], {})[int(parts[2], 0)] = parts[3]
    return names


_CIPHER_FIELDS = ("tls.handshake.ciphersuite", "tls.handshake.cipherspec")


def tshark_cipher_names(tshark_path: str | None = None) -> dict[int, str]:
    """tshark's own names of cipher codes (TLS/DTLS suites, and SSLv2 CIPHER-KINDs, whose 3-byte
    codes do not collide with the 2-byte ones), from its value strings; {} if tshark cannot say."""
    strings = _value_strings(_tshark_path(tshark_path))
    return {**strings.get("tls.handshake.cipherspec", {}), **strings.get("tls.handshake.ciphersuite", {})}


def _text(value: object) -> str | None:
    """A non-empty string, or None for NA / NaN / ""."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value)
    return text if text != "" else None


def _alpn_list(value: object, sep: str) -> str | None:
    text = _text(value)
    if text is None:
        return None
    return ",".join(text.split(sep))


_UTC_TIME = re.compile(r"(-?\d{1,4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.\d+)? \(UTC\)")
_ABS_TIME = re.compile(r"([A-Z][a-z]{2}) +(\d{1,2}), (-?\d{1,4}) (\d\d):(\d\d):(\d\d)(?:\.\d+)? UTC")
_ISO_TIME = re.compile(r"(-?\d{1,4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"), start=1)}  # fmt: skip


def _epoch(text: str) -> float | None:
    """Epoch seconds of a time as tshark renders UTCTime ("2023-03-24 08:50:30 (UTC)") or
    GeneralizedTime ("Sep  1, 2015 13:33:37.000000000 UTC"), or ISO "2023-03-24T08:50:30Z"."""
    text = text.strip()
    fields: tuple[int, ...] | None = None
    for rx in (_UTC_TIME, _ISO_TIME):
        m = rx.fullmatch(text)
        if m:
            fields = tuple(int(x) for x in m.groups())
    m = _ABS_TIME.fullmatch(text)
    if m and m.group(1) in _MONTHS:
        fields = (int(m.group(3)), _MONTHS[m.group(1)], int(m.group(2)), *(int(x) for x in m.groups()[3:]))
    if fields is None:
        return None
    y, mo, d, h, mi, s = fields
    # proleptic Gregorian arithmetic, so years outside datetime's range still compare exactly
    days = _days_from_civil(y, mo, d)
    return float(days * 86400 + h * 3600 + mi * 60 + s)


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"epoch {epoch:.0f}"


def _validity_text(nb: float | None, na: float | None) -> str | None:
    if nb is None and na is None:
        return None
    return f"{_iso(nb)}/{_iso(na)}"


def _theirs_validity(row: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The leaf's (notBefore, notAfter) from tshark's rendering, else the oracle's ISO columns."""
    tshark = _text(row.get("leaf_validity_tshark"))
    if tshark and "|" in tshark:
        a, b = tshark.split("|", 1)
        nb, na = _epoch(a), _epoch(b)
        if nb is not None and na is not None:
            return nb, na
    nb_text, na_text = _text(row.get("leaf_not_before")), _text(row.get("leaf_not_after"))
    nb = _epoch(nb_text) if nb_text else None
    na = _epoch(na_text) if na_text else None
    return nb, na


def _num(value: object) -> float | None:
    if value is None or value is pd.NA:
        return None
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


# ------------------------------------------------------------------------------------ our side
def ours_sessions(tls: pd.DataFrame, certs: pd.DataFrame | None = None,
                  flows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our `.tls` rows with the facts `compare` needs: `leaf_not_before` / `leaf_not_after`
    (epoch seconds of the leaf certificate, from `.certs`) and `source` (from `.flows`)."""
    out = tls.copy()
    if certs is not None and len(certs) and "cert_sha256" in out.columns:
        # the exact epoch columns: the timestamp ones are NaT outside datetime64[ns] (year 9999)
        by_sha = certs.drop_duplicates("sha256").set_index("sha256")
        out["leaf_not_before"] = out["cert_sha256"].map(by_sha["not_before_epoch"]).astype("Float64")
        out["leaf_not_after"] = out["cert_sha256"].map(by_sha["not_after_epoch"]).astype("Float64")
    if flows is not None and len(flows) and "source" in flows.columns and "source" not in out.columns:
        out["source"] = out["uid"].map(flows.drop_duplicates("uid").set_index("uid")["source"])
    return out


def decode_as_for(tls: pd.DataFrame) -> dict[str, str]:
    """pyshark `decode_as` for the server ports our `.tls` saw TLS / DTLS / QUIC on."""
    out: dict[str, str] = {}
    if not len(tls):
        return out
    for proto_value, port_value in zip(tls["protocol"], tls["server_port"], strict=True):
        proto, number = _text(proto_value), _num(port_value)
        if number is None:
            continue
        port = int(number)
        if proto == "tls" and port not in STARTTLS_PORTS:
            out[f"tcp.port=={port}"] = "tls"
        elif proto == "dtls":
            out[f"udp.port=={port}"] = "dtls"
        elif proto == "quic" and port != 443:
            out[f"udp.port=={port}"] = "quic"
    return dict(sorted(out.items(), key=lambda kv: (kv[0][:3], int(kv[0].split("==")[1]))))


# ----------------------------------------------------------------------------------- comparing
@dataclass
class Comparison:
    """The outcome of `compare`: one row per session (`sessions`: `agree`, `differs` = the facts
    that differ, `unverifiable` = facts tshark cannot see) and one per disagreeing fact."""

    sessions: pd.DataFrame
    disagreements: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.sessions)

    @property
    def agreeing(self) -> int:
        return int(self.sessions["agree"].sum()) if len(self.sessions) else 0

    @property
    def percent(self) -> float:
        return 100.0 * self.agreeing / self.total if self.total else 100.0

    def summary(self) -> dict[str, object]:
        return {"sessions": self.total, "agree": self.agreeing, "percent": round(self.percent, 2),
                "text": self.summary_line(), "notes": list(self.notes)}

    def summary_line(self) -> str:
        pct = f"{self.percent:.1f}%" if self.total else "n/a"
        return f"{self.total} sessions compared, {self.agreeing} agree ({pct})"


def _key(transport: object, a_ip: object, a_port: object, b_ip: object, b_port: object,
         source: object = None) -> tuple[object, ...]:
    ends = sorted([(str(a_ip), _int(a_port)), (str(b_ip), _int(b_port))])
    return (None if source is None or source is pd.NA else str(source), str(transport), *ends[0], *ends[1])


def _int(value: object) -> int:
    n = _num(value)
    return int(n) if n is not None else -1


_OURS_HANDSHAKE = ("version", "cipher", "server_name", "alpn_offered", "alpn", "client_ciphers",
                   "cert_sha256", "ja4", "ja4s")  # fmt: skip


def _ours_facts(r: Mapping[str, Any]) -> dict[str, str | None]:
    return {
        "version": _text(r.get("version")),
        "cipher": _ours_cipher(r.get("cipher_code")),
        "sni": _text(r.get("server_name")),
        "alpn_offered": _alpn_list(r.get("alpn_offered"), ","),
        "alpn": _alpn_list(r.get("alpn"), ","),
        "cert_validity": _validity_text(_num(r.get("leaf_not_before")), _num(r.get("leaf_not_after"))),
    }


def _theirs_facts(r: Mapping[str, Any]) -> dict[str, str | None]:
    nb, na = _theirs_validity(r)
    return {
        "version": tshark_version_name(r.get("negotiated_version")),
        "cipher": _theirs_cipher(r.get("selected_cipher")),
        "sni": _text(r.get("sni")),
        "alpn_offered": _alpn_list(r.get("alpn_offered"), "|"),
        "alpn": _alpn_list(r.get("alpn_selected"), "|"),
        "cert_validity": _validity_text(nb, na),
    }


_ESCAPED_BYTE = re.compile(r"\\x[0-9a-fA-F]{2}")


def _same(fact: str, ours: str | None, theirs: str | None) -> bool:
    """Equal, once our escapes of bytes that are not UTF-8 ("\\xba", Python's backslashreplace)
    are rendered as tshark renders those bytes: U+FFFD each."""
    if ours == theirs:
        return True
    if ours is None or theirs is None or fact not in ("sni", "alpn_offered", "alpn"):
        return False
    return _ESCAPED_BYTE.sub("\ufffd", ours) == theirs


def _is_quic(ours: Mapping[str, Any] | None, theirs: Mapping[str, Any] | None) -> bool:
    if ours is not None and _text(ours.get("protocol")) == "quic":
        return True
    return theirs is not None and "quic" in str(_text(theirs.get("app_protocols")) or "").split("|")


def _unverifiable(fact: str, ours: dict[str, str | None], theirs: dict[str, str | None],
                  quic: bool) -> str | None:
    """The UNVERIFIABLE reason when this difference is one tshark cannot see, else None."""
    o, t = ours[fact], theirs[fact]
    tls13 = (ours["version"] or theirs["version"] or "").startswith(("TLS 1.3", "DTLS 1.3")) or quic
    if fact == "version" and quic and t is None and o == "TLS 1.3":
        return "quic_version"
    if fact == "alpn" and tls13 and t is None and o is not None:
        return "encrypted_alpn"
    if fact == "cert_validity" and tls13 and o is None and t is not None:
        return "decrypted_cert"
    return None


def _theirs_is_session(r: Mapping[str, Any]) -> bool:
    return (_num(r.get("ch_count")) or 0) > 0 or (_num(r.get("sh_count")) or 0) > 0


def _ours_is_session(r: Mapping[str, Any]) -> bool:
    if (_num(r.get("client_hello_count")) or 0) > 0 or (_num(r.get("server_hello_count")) or 0) > 0:
        return True
    return any(_text(r.get(c)) is not None for c in _OURS_HANDSHAKE)


def compare(ours: pd.DataFrame, theirs: pd.DataFrame, certs: pd.DataFrame | None = None, *,
            cipher_names: Mapping[int, str] | None = None) -> Comparison:
    """Compare our `.tls` rows with tshark's per-conversation rows (`tshark_sessions()` or a
    corpus oracle CSV read with `pd.read_csv(..., dtype=str, keep_default_na=False)`).

    `certs` (our `.certs`) gives the leaf validity; without it, `ours` must already carry
    `leaf_not_before` / `leaf_not_after` (see `ours_sessions`), or certificate validity is only
    compared where tshark saw none. When both frames have a `source` column it is part of the
    join key (one frame for several captures). Ciphers are compared by code; `cipher_names`
    (`tshark_cipher_names()`) names tshark's side in the output, ours is named by our `cipher`."""
    names = dict(cipher_names or {})
    if certs is not None and "leaf_not_before" not in ours.columns:
        ours = ours_sessions(ours, certs)
    use_source = "source" in ours.columns and "source" in theirs.columns
    # a row of ours without handshake facts only counts when tshark has the session
    o_rows: list[dict[str, Any]] = [{str(k): v for k, v in r.items()} for r in ours.to_dict("records")]
    t_rows: list[dict[str, Any]] = [{str(k): v for k, v in r.items()} for r in theirs.to_dict("records")]
    t_rows = [r for r in t_rows if _theirs_is_session(r)]

    def o_key(r: Mapping[str, Any]) -> tuple[object, ...]:
        transport = "tcp" if _text(r.get("protocol")) == "tls" else "udp"
        return _key(transport, r.get("client_ip"), r.get("client_port"), r.get("server_ip"),
                    r.get("server_port"), r.get("source") if use_source else None)

    def t_key(r: Mapping[str, Any]) -> tuple[object, ...]:
        return _key(r.get("transport"), r.get("client_ip"), r.get("client_port"), r.get("server_ip"),
                    r.get("server_port"), r.get("source") if use_source else None)

    o_by: dict[tuple[object, ...], list[dict[str, Any]]] = {}
    for r in sorted(o_rows, key=lambda r: str(r.get("ts"))):
        o_by.setdefault(o_key(r), []).append(r)
    t_by: dict[tuple[object, ...], list[dict[str, Any]]] = {}
    for r in sorted(t_rows, key=lambda r: _num(r.get("first_frame")) or 0):
        t_by.setdefault(t_key(r), []).append(r)

    sessions: list[dict[str, object]] = []
    bad: list[dict[str, object]] = []
    for key in sorted(set(o_by) | set(t_by), key=lambda k: tuple(str(x) for x in k)):
        os_, ts_ = o_by.get(key, []), t_by.get(key, [])
        for i in range(max(len(os_), len(ts_))):
            o = os_[i] if i < len(os_) else None
            t = ts_[i] if i < len(ts_) else None
            if t is None and o is not None and not _ours_is_session(o):
                continue  # e.g. TLS picked up mid-stream: no handshake for either side to describe
            base = o if o is not None else t
            assert base is not None
            ident: dict[str, object] = {
                "source": base.get("source") if use_source else None,
                "transport": key[1],
                "client_ip": base.get("client_ip"),
                "client_port": _int(base.get("client_port")),
                "server_ip": base.get("server_ip"),
                "server_port": _int(base.get("server_port")),
                "uid": o.get("uid") if o is not None else None,
                "conv": t.get("conv") if t is not None else None,
            }
            differs: list[str] = []
            unverifiable: list[str] = []
            of = _ours_facts(o) if o is not None else dict.fromkeys(FACTS[1:])
            tf = _theirs_facts(t) if t is not None else dict.fromkeys(FACTS[1:])
            # as shown: the compared values, ciphers with each side's own name
            o_shown = {**of, "cipher": _named(of["cipher"], _text(o.get("cipher")) if o is not None else None)}
            t_code = tf["cipher"]
            t_name = names.get(int(t_code, 16)) if t_code is not None and t_code.startswith("0x") else None
            t_shown = {**tf, "cipher": _named(t_code, t_name)}
            if o is None or t is None:
                differs.append("session")
                bad.append({**ident, "fact": "session", "ours": "TLS session" if o is not None else None,
                            "tshark": "TLS session" if t is not None else None})
            else:
                quic = _is_quic(o, t)
                for fact in FACTS[1:]:
                    if _same(fact, of[fact], tf[fact]):
                        continue
                    reason = _unverifiable(fact, of, tf, quic)
                    if reason is not None:
                        unverifiable.append(f"{fact}:{reason}")
                        continue
                    differs.append(fact)
                    bad.append({**ident, "fact": fact, "ours": o_shown[fact], "tshark": t_shown[fact]})
            sessions.append({**ident, "agree": not differs, "differs": ",".join(differs) or None,
                             "unverifiable": ",".join(unverifiable) or None,
                             **{f"ours_{k}": v for k, v in o_shown.items()},
                             **{f"tshark_{k}": v for k, v in t_shown.items()}})
    session_schema = {**{k: v for k, v in DISAGREEMENTS.items() if k not in ("fact", "ours", "tshark")},
                      "agree": "boolean", "differs": "string", "unverifiable": "string",
                      **{f"{side}_{k}": "string" for side in ("ours", "tshark") for k in FACTS[1:]}}
    return Comparison(
        sessions=schema.frame_from_rows(sessions, session_schema),
        disagreements=schema.frame_from_rows(bad, DISAGREEMENTS),
    )


# ------------------------------------------------------------------------------ tshark's side
def _as_list(v: object) -> list[Any]:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _find_all(o: object, key: str) -> list[Any]:
    """Every value of `key` anywhere below `o` (lists flattened), in document order."""
    res: list[Any] = []
    if isinstance(o, dict):
        for k, v in o.items():
            if k == key:
                res.extend(_as_list(v))
            else:
                res.extend(_find_all(v, key))
    elif isinstance(o, list):
        for x in o:
            res.extend(_find_all(x, key))
    return res


_Handshakes = list[tuple[str | None, dict[str, Any]]]


def _handshakes(o: object, pfx: str, record: str | None = None,
                out: _Handshakes | None = None) -> _Handshakes:
    """(record version, handshake dict) for every dict holding '<pfx>.handshake.type'."""
    if out is None:
        out = []
    if isinstance(o, dict):
        rv = o.get(pfx + ".record.version", record)
        if isinstance(rv, list):
            rv = rv[0]
        if pfx + ".handshake.type" in o:
            out.append((rv, o))
        for v in o.values():
            if isinstance(v, (dict, list)):
                _handshakes(v, pfx, rv, out)
    elif isinstance(o, list):
        for x in o:
            _handshakes(x, pfx, record, out)
    return out


def _first(v: object) -> str | None:
    lst = _as_list(v)
    return str(lst[0]) if lst else None


def _vname(v: str | None) -> str:
    if not v:
        return ""
    try:
        code = int(v, 16)
    except ValueError:
        return v
    if code in _TSHARK_VERSIONS:
        return _TSHARK_VERSIONS[code]
    if code >> 8 == 0x7F:
        return f"TLSv1.3-draft{code & 0xFF}"
    if code == 0xFB1A:
        return "TLSv1.3-fb-draft26"
    return f"0x{code:04x}"


def _is_grease(v: str) -> bool:
    try:
        n = int(v, 16)
    except ValueError:
        return False
    return (n & 0x0F0F) == 0x0A0A and (n >> 8) == (n & 0xFF)


def _packet_layers(pkt: Any) -> tuple[int, list[str], dict[str, list[dict[str, Any]]]]:
    """(frame number, frame.protocols, {layer name: [dicts, outermost first]}) of a pyshark
    JSON packet. pyshark keeps each layer's JSON tree in `_all_fields` (duplicates of a layer,
    e.g. the inner IP header of a tunnel, in `duplicate_layers`); the trees are walked as the
    corpus oracle walks `tshark -T json` output."""
    frame = pkt.frame_info._all_fields
    protos = str(frame.get("frame.protocols", "")).split(":")
    layers: dict[str, list[dict[str, Any]]] = {}
    for layer in pkt.layers:
        trees = [layer._all_fields, *(d._all_fields for d in getattr(layer, "duplicate_layers", []))]
        layers.setdefault(layer.layer_name, []).extend(t for t in trees if isinstance(t, dict))
    return int(pkt.number), protos, layers


def _endpoints(protos: list[str],
               layers: dict[str, list[dict[str, Any]]]) -> tuple[str, str, str, str, int, str] | None:
    """(transport, src ip, src port, dst ip, dst port, "<transport>:<stream>") of the innermost
    TCP/UDP header of a packet, None for a header quoted in an ICMP error."""
    positions = [i for i, p in enumerate(protos) if p in ("tcp", "udp")]
    if not positions:
        return None
    tpos = positions[-1]
    transport = protos[tpos]
    if any(p in ("icmp", "icmpv6") for p in protos[:tpos]):
        return None  # a header quoted inside an ICMP error
    t_index = protos[:tpos].count(transport)
    t_layers = layers.get(transport, [])
    if t_index >= len(t_layers):
        return None
    t = t_layers[t_index]
    ip_name = next((p for p in reversed(protos[:tpos]) if p in ("ip", "ipv6")), None)
    src = dst = ""
    if ip_name is not None:
        ips = layers.get(ip_name, [])
        k = protos[:tpos].count(ip_name) - 1
        if 0 <= k < len(ips):
            pf = "ip" if ip_name == "ip" else "ipv6"
            src, dst = str(_first(ips[k].get(f"{pf}.src")) or ""), str(_first(ips[k].get(f"{pf}.dst")) or "")
    sport = _first(t.get(f"{transport}.srcport")) or ""
    dport = _first(t.get(f"{transport}.dstport")) or ""
    stream = _first(t.get(f"{transport}.stream")) or ""
    return transport, src, sport, dst, int(dport or 0), f"{transport}:{stream}"


@dataclass
class _Conv:
    conv: str
    transport: str
    first: tuple[str, str, str, str]  # src ip, src port, dst ip, dst port of the first handshake packet
    first_frame: int
    apps: list[str] = field(default_factory=list)
    hs: list[tuple[int, str, str | None, dict[str, Any], tuple[str, str]]] = field(default_factory=list)


def _summarise(c: _Conv, file: str, decode_as: str) -> dict[str, object]:
    """One oracle-format row from a conversation's handshake messages (the oracle's rules: the
    first ClientHello, the last real (non-HRR) ServerHello, the first server Certificate)."""
    chs, shs, certs, cmks = [], [], [], []
    for item in c.hs:
        _, pfx, rv, h, _src = item
        t = _first(h.get(pfx + ".handshake.type"))
        v2 = rv == "0x0002"  # SSLv2 framing: 1 CLIENT-HELLO, 2 CLIENT-MASTER-KEY, 4 SERVER-HELLO
        complete = (pfx + ".handshake.version" in h) or v2
        if t == "1" and complete:
            chs.append(item)
        elif (t == "2" and not v2 and complete) or (t == "4" and v2):
            shs.append(item)
        elif t == "2" and v2:
            cmks.append(item)
        if t == "11" or (t == "4" and v2):
            certs.append(item)
    if chs:
        client = chs[0][4]
        by = "client_hello"
    elif shs:
        src = shs[0][4]
        client = (c.first[2], c.first[3]) if (c.first[0], c.first[1]) == src else (c.first[0], c.first[1])
        by = "server_hello"
    else:
        client = (c.first[0], c.first[1])
        by = "first_packet"
    s_ip, s_port, d_ip, d_port = c.first
    server = (d_ip, d_port) if client == (s_ip, s_port) else (s_ip, s_port)
    out: dict[str, object] = {
        "file": file, "conv": c.conv, "transport": c.transport, "client_ip": client[0],
        "client_port": int(client[1] or -1), "server_ip": server[0], "server_port": int(server[1] or -1),
        "client_by": by, "first_frame": c.first_frame, "app_protocols": "|".join(c.apps),
        "decode_as": decode_as or None, "ch_count": len(chs), "sh_count": len(shs),
    }  # fmt: skip
    if chs:
        _, pfx, rv, h, _ = chs[0]
        p = pfx + ".handshake."
        out["ch_legacy_version"] = _vname(_first(h.get(p + "version")))
        sv = _find_all(h, p + "extensions.supported_version")
        out["ch_supported_versions"] = "|".join("GREASE" if _is_grease(x) else _vname(x) for x in sv) or None
        out["sslv2_ch"] = int(bool(_find_all(h, p + "cipherspec")) or rv == "0x0002")
        out["sni"] = "|".join(_find_all(h, p + "extensions_server_name")) or None
        out["alpn_offered"] = "|".join(_find_all(h, p + "extensions_alpn_str")) or None
    real = []
    hrr = 0
    for item in shs:
        _, pfx, rv, h, _ = item
        rnd = "".join(str(x) for x in _find_all(h, pfx + ".handshake.random")[:1]).replace(":", "").lower()
        if rnd == _HRR_RANDOM:
            hrr = 1
        else:
            real.append(item)
    out["hrr"] = hrr
    if real:
        _, pfx, rv, h, _ = real[-1]
        p = pfx + ".handshake."
        sv = _find_all(h, p + "extensions.supported_version")
        out["negotiated_version"] = _vname(sv[-1]) if sv else _vname(_first(h.get(p + "version")))
        cs = _find_all(h, p + "ciphersuite")
        if rv == "0x0002":  # SSLv2: the client picks the cipher, in CLIENT-MASTER-KEY
            out["negotiated_version"] = "SSLv2"
            cs = _find_all(cmks[-1][3], p + "cipherspec") if cmks else []
        if cs:
            out["selected_cipher"] = "|".join(str(x).lower() for x in cs)
        out["alpn_selected"] = "|".join(_find_all(h, p + "extensions_alpn_str")) or None
    srv_chains: list[tuple[str, dict[str, Any], list[Any]]] = []
    cli_chains: list[tuple[str, dict[str, Any], list[Any]]] = []
    for _, pfx, _rv, h, src in certs:
        ders = _find_all(h, pfx + ".handshake.certificate")
        (cli_chains if src == client else srv_chains).append((pfx, h, ders))
    out["server_cert_count"] = sum(len(d) for _, _, d in srv_chains)
    out["client_cert_count"] = sum(len(d) for _, _, d in cli_chains)
    with_ders = [x for x in srv_chains if x[2]]
    if with_ders:
        pfx, h, _ = with_ders[0]
        trees = _find_all(h, pfx + ".handshake.certificate_tree")
        if trees:
            validity = _find_all(trees[0], "x509af.validity_element")
            if validity and isinstance(validity[0], dict):
                times = []
                for side in ("x509af.notBefore_tree", "x509af.notAfter_tree"):
                    t = validity[0].get(side, {})
                    value = _first(t.get("x509af.utcTime")) or _first(t.get("x509af.generalizedTime")) \
                        if isinstance(t, dict) else None
                    times.append(value or "")
                if any(times):
                    out["leaf_validity_tshark"] = "|".join(times)
    return out


def _walk_packets(packets: Iterable[Any], file: str, decode_as: str) -> pd.DataFrame:
    convs: dict[str, _Conv] = {}
    for pkt in packets:
        number, protos, layers = _packet_layers(pkt)
        ends = _endpoints(protos, layers)
        if ends is None:
            continue
        transport, src, sport, dst, dport, conv = ends
        c = convs.get(conv)
        if c is None:
            c = convs[conv] = _Conv(conv, transport, (src, sport, dst, str(dport)), number)
        tpos = max(i for i, p in enumerate(protos) if p == transport)
        for p in protos[tpos + 1:]:
            if p in ("tls", "dtls", "quic") and p not in c.apps:
                c.apps.append(p)
        for layer_name, pfx in (("tls", "tls"), ("dtls", "dtls"), ("quic", "tls")):
            for tree in layers.get(layer_name, []):
                for rv, h in _handshakes(tree, pfx):
                    c.hs.append((number, pfx, rv, h, (src, sport)))
    rows = [_summarise(c, file, decode_as) for c in convs.values()]
    return schema.frame_from_rows(rows, TSHARK_COLUMNS)


def _tshark_path(tshark_path: str | None) -> str:
    """The tshark to run: `tshark_path` (a file, or a bare command name looked up on PATH), else
    tshark on PATH. Raises `TsharkMissing` saying which of the two was not found."""
    if tshark_path is None:
        found = shutil.which("tshark")
        if found is None:
            raise TsharkMissing("tshark is not installed or not on PATH (verify needs Wireshark's tshark): "
                                "install it (apt-get install tshark) or name it with --tshark PATH")
        return found
    if os.path.isdir(tshark_path):
        raise TsharkMissing(f"the tshark given ({tshark_path}) is a directory, not a program")
    if os.path.exists(tshark_path):
        if not os.access(tshark_path, os.X_OK):
            raise TsharkMissing(f"the tshark given ({tshark_path}) is not executable")
        return tshark_path
    found = shutil.which(tshark_path) if os.path.basename(tshark_path) == tshark_path else None
    if found is None:
        where = "is not a command on PATH" if os.path.basename(tshark_path) == tshark_path else "does not exist"
        raise TsharkMissing(f"the tshark given ({tshark_path}) {where}")
    return found


@functools.cache
def _capture_class() -> Any:
    """pyshark's FileCapture with a cleanup that cannot lose tshark's exit status.

    pyshark kills tshark at the end of the packets even when it has already exited; asyncio's
    `Process.kill()` goes through `Popen.send_signal()`, whose `poll()` reaps the child before
    asyncio's child watcher does, so the watcher logs "Unknown child process pid N, will report
    returncode 255" and pyshark then raises TSharkCrashException from `close()` (and again from
    `__del__`, on a closed loop). Here tshark is given time to exit by itself after the last
    packet, killed only if it does not, and its exit status is kept instead of raised."""
    import pyshark

    class _FileCapture(pyshark.FileCapture):
        exit_status: int | None = None

        async def _cleanup_subprocess(self, process: Any) -> None:
            if process.returncode is None and self._eof_reached:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 30)
            if process.returncode is None:
                with contextlib.suppress(TimeoutError, ProcessLookupError):
                    process.kill()
                    await asyncio.wait_for(process.wait(), 5)
            self._running_processes.discard(process)
            self.exit_status = process.returncode

    return _FileCapture


def _with_capture(path: str, display_filter: str, decode_as: Mapping[str, str], exe: str,
                  notes: list[str] | None, use: Callable[[Iterable[Any]], Any], light: bool = False,
                  keylog_file: str | None = None) -> Any:
    """Run tshark over `path` through pyshark and hand the packets to `use`; cleans up the
    process and the private event loop whatever happens. `light`: JSON of the frame, IP and
    transport layers only (tshark's -J), for passes that need only addresses and ports.
    `keylog_file`: an NSS key log tshark decrypts TLS 1.3 / QUIC handshakes with (tls.keylog_file)."""
    prefs = dict(TSHARK_PREFS)
    if keylog_file is not None:
        prefs["tls.keylog_file"] = keylog_file
    loop = asyncio.new_event_loop()  # our own loop, closed below: no global loop left behind
    try:
        cap = _capture_class()(
            path, display_filter=display_filter, keep_packets=False, use_json=True, only_summaries=False,
            decode_as=dict(decode_as) or None, override_prefs=prefs, tshark_path=exe,
            eventloop=loop, custom_parameters=["-J", "frame ip ipv6 tcp udp"] if light else None,
        )  # fmt: skip
        try:
            result = use(cap)
        finally:
            cap.close()
        if cap.exit_status and notes is not None:
            why = cap._last_error_line or f"exit status {cap.exit_status}"
            note = f"{path}: tshark stopped early ({why}); compared what it read before that"
            if note not in notes:
                notes.append(note)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
    return result


def _discover(packets: Iterable[Any]) -> tuple[dict[str, str], set[str]]:
    """(decode-as for the server ports of hellos tshark left undissected, the "<transport>.port==N"
    of both ends of every conversation tshark already dissects as TLS / DTLS / QUIC)."""
    undissected: dict[str, str] = {}
    seen: set[str] = set()
    for pkt in packets:
        _, protos, layers = _packet_layers(pkt)
        ends = _endpoints(protos, layers)
        if ends is None:
            continue
        transport, _, sport, _, dport, _ = ends
        tpos = max(i for i, p in enumerate(protos) if p == transport)
        if any(p in ("tls", "dtls", "quic", "ssl") for p in protos[tpos + 1:]):
            seen.update((f"{transport}.port=={sport}", f"{transport}.port=={dport}"))
        else:
            undissected[f"{transport}.port=={dport}"] = "tls" if transport == "tcp" else "dtls"
    return undissected, seen


def tshark_sessions(path: str, decode_as: Mapping[str, str] | None = None, *, discover: bool = True,
                    tshark_path: str | None = None, notes: list[str] | None = None,
                    keylog_file: str | None = None) -> pd.DataFrame:
    """tshark's view of one capture through pyshark: one row per TCP/UDP conversation that carried
    a TLS/DTLS handshake message (QUIC included), columns `TSHARK_COLUMNS` (oracle format).

    `decode_as` is pyshark's {"tcp.port==8443": "tls"}. With `discover` (the default) a first,
    cheap tshark pass also looks for ClientHellos that tshark left undissected or to another
    dissector (TLS on an unusual port, inside RDP, after an IRC STARTTLS, ...) and decodes their
    server ports as TLS / DTLS, as the corpus oracle does: the second opinion does not depend only
    on the ports we found TLS on. If tshark stops early (a damaged capture), the conversations
    read before that point are returned and a line is added to `notes`. `keylog_file`: an NSS key
    log for tshark's handshake decryption (as our `keylog`). Raises `TsharkMissing` when tshark is
    not installed."""
    exe = _tshark_path(tshark_path)
    decode = dict(decode_as or {})
    if discover:
        undissected, seen = _with_capture(path, DISCOVERY_FILTER, {}, exe, notes, _discover, light=True)
        decode = {k: v for k, v in decode.items() if k not in seen}  # tshark finds those itself
        decode.update({k: v for k, v in undissected.items() if k not in decode})
    decode_text = "|".join(f"{k},{v}" for k, v in decode.items())
    frame: pd.DataFrame = _with_capture(path, DISPLAY_FILTER, decode, exe, notes,
                                        lambda packets: _walk_packets(packets, path, decode_text),
                                        keylog_file=keylog_file)
    return frame


# --------------------------------------------------------------------------------------- verify
def preflight(paths: str | Iterable[str], tshark_path: str | None = None) -> tuple[list[str], str]:
    """(capture files, tshark binary), or the error `verify` would end with, before any work:
    `TsharkMissing`, `UsageError` for standard input, `CaptureError` when no file matches."""
    from analyzer.sources.readers import expand_paths

    files = expand_paths(list(paths) if not isinstance(paths, str) else [paths])
    if "-" in files:
        raise UsageError("verify needs capture files: tshark cannot re-read standard input")
    if not files:
        raise CaptureError(str(paths), None, "no capture files found")
    return files, _tshark_path(tshark_path)


def verify_captures(paths: str | Iterable[str], *, analysis: Analysis | None = None,
                    tshark_path: str | None = None, on_problem: Callable[[Any], None] | None = None,
                    keylog_file: str | None = None, **options: object) -> Comparison:
    """`verify` with the full `Comparison` (per-session frame included). `analysis`: the result
    of `analyze(paths, ...)` when the caller already has it (options are then not allowed).
    `keylog_file`: the key log tshark decrypts with (default: `options["keylog"]` when it is one
    path), so both sides see the same TLS 1.3 certificates."""
    from analyzer.pipeline import analyze

    files, exe = preflight(paths, tshark_path)
    given = options.get("keylog")
    if keylog_file is None and isinstance(given, (str, os.PathLike)):
        keylog_file = str(os.fspath(given))
    if analysis is None:
        forwarded: dict[str, Any] = dict(options)  # analyze() checks them (typed ones included)
        analysis = analyze(files, on_problem=on_problem, **forwarded)
    elif options:
        raise UsageError("verify_captures: pass analysis options or an analysis, not both")
    ours = ours_sessions(analysis.tls, analysis.certs, analysis.flows)
    if "source" not in ours.columns:
        ours["source"] = pd.Series(pd.NA, index=ours.index, dtype="string")
    notes: list[str] = []
    theirs = []
    for f in files:
        t = tshark_sessions(f, decode_as_for(ours[ours["source"] == f]), tshark_path=exe, notes=notes,
                            keylog_file=keylog_file)
        t["source"] = f
        theirs.append(t)
    cmp = compare(ours, pd.concat(theirs, ignore_index=True), cipher_names=tshark_cipher_names(exe))
    cmp.notes.extend(notes)
    return cmp


def verify(paths: str | Iterable[str], *, analysis: Analysis | None = None, tshark_path: str | None = None,
           on_problem: Callable[[Any], None] | None = None, **options: object) -> pd.DataFrame:
    """Analyse the captures, re-dissect each with tshark (through pyshark), compare the TLS sessions.

    Returns the disagreements (schema `DISAGREEMENTS`: one row per session and differing fact,
    session by session; empty when everything agrees). `.attrs["summary"]` holds {"sessions",
    "agree", "percent", "text", "notes"}; `text` is "N sessions compared, M agree (x%)".
    `verify_captures` returns the whole `Comparison` instead. Options are `analyzer.analyze`'s;
    or pass `analysis`, the result of `analyze(paths, ...)`, when you already have it. Raises
    `TsharkMissing` when tshark is not installed."""
    cmp = verify_captures(paths, analysis=analysis, tshark_path=tshark_path, on_problem=on_problem,
                          **options)  # type: ignore[arg-type]  # keylog_file among them, or analyze()'s
    out = cmp.disagreements
    out.attrs["summary"] = cmp.summary()
    return out
