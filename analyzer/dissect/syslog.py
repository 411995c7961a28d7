"""Syslog over UDP (RFC 3164 and RFC 5424 over RFC 5426), facts only.

`app_protocol`: "syslog". Found by content: a datagram that starts with a PRI part `<N>` (N 0-191,
1-3 digits, no leading zero but `<0>`) followed by either the RFC 5424 VERSION (`1 `) or an RFC 3164
header (a `Mmm dd hh:mm:ss` timestamp) or, as many devices send, printable text (RFC 3164 4.3.3
accepts a message with a PRI and nothing else recognisable). Port 514 is a hint; off it only the
two RFC shapes are accepted (a bare `<N>` is too little to claim a flow on another port).

Facts: `syslog_facility` and `syslog_severity` (PRI = facility * 8 + severity) and `syslog_format`
(rfc5424, rfc3164 or other) of the first message, `syslog_hostname` (RFC 5424 HOSTNAME, or the
RFC 3164 HOSTNAME after the timestamp; cut), `syslog_messages`. Syslog over UDP is cleartext:
`encrypted` False, `protection` "none" (syslog over TLS, RFC 5425 on TCP 6514, is a TLS flow).

Anchors: Zeek's Syslog analyzer (`base/protocols/syslog/main.zeek`: facility, severity, message;
its `syslog-protocol.pac` reads the PRI the same way), RFC 5424 6.2 for the header fields.
"""

from __future__ import annotations

import re

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.lines import cut

__all__ = ["SyslogDissector", "parse_syslog"]

_PRI = re.compile(rb"<(0|[1-9][0-9]{0,2})>")
_RFC5424 = re.compile(rb"1 (\S{1,64}) (\S{1,255}) ")
_RFC3164 = re.compile(rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 0-3][0-9] "
                      rb"[0-2][0-9]:[0-5][0-9]:[0-6][0-9] (?:([!-~]{1,255}) )?")
_PRINTABLE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")

COLUMNS: tuple[Column, ...] = (
    Column("syslog_facility", "Int32", "facility of the first message (PRI / 8: 0 kern, 4 auth, 16-23 local0-7)"),
    Column("syslog_severity", "Int32", "severity of the first message (PRI % 8: 0 emerg ... 7 debug)"),
    Column("syslog_format", "string", "header of the first message: rfc5424, rfc3164 or other"),
    Column("syslog_hostname", "string", "the first message's HOSTNAME field (at most 256 characters)"),
    Column("syslog_messages", "Int32", "syslog messages read (of the flow's first 32 datagrams)"),
)


def parse_syslog(data: bytes) -> tuple[int, str, bytes | None] | None:
    """(PRI, format, hostname) of one datagram, None when it does not start with a PRI part."""
    m = _PRI.match(data)
    if m is None:
        return None
    pri = int(m.group(1))
    if pri > 191:
        return None
    rest = data[m.end():m.end() + 512]
    v5424 = _RFC5424.match(rest)
    if v5424 is not None:
        host = v5424.group(2)
        return pri, "rfc5424", None if host == b"-" else host
    v3164 = _RFC3164.match(rest)
    if v3164 is not None:
        return pri, "rfc3164", v3164.group(1)
    if _PRINTABLE.fullmatch(rest.rstrip(b"\r\n\0")[:512]) is not None and rest:
        return pri, "other", None
    return None


class SyslogDissector:
    """Syslog over UDP, found by its PRI header on any port."""

    name = "syslog"
    app_protocols = ("syslog",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"udp"})
    ports = frozenset({514})
    columns = COLUMNS
    frames = ()

    def for_run(self, context: DissectContext) -> SyslogDissector:
        return self

    def probe(self, flow: FlowPayload) -> bool:
        first = next((d.payload for d in flow.datagrams if d.payload), None)
        if first is None or first[:1] != b"<":
            return False
        parsed = parse_syslog(first)
        if parsed is None:
            return False
        return parsed[1] != "other" or flow.server_port == 514

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "syslog", "encrypted": False, "protection": "none"}
        count = bad = 0
        for dg in flow.datagrams:
            msg = parse_syslog(dg.payload)
            if msg is None:
                bad += 1
                continue
            count += 1
            if count == 1:
                pri, shape, host = msg
                out.update(syslog_facility=pri >> 3, syslog_severity=pri & 7, syslog_format=shape)
                if host:
                    out["syslog_hostname"] = cut(host)
        if bad:
            facts.anomaly("syslog_message_malformed", f"{bad} datagram(s) of the flow have no syslog PRI header")
        out["syslog_messages"] = count
        facts.flow.update(out)
        return facts


DISSECTOR = register(SyslogDissector())
