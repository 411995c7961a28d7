"""XMPP core (RFC 6120): the stream header, stream features, STARTTLS (section 5) and SASL (section
6) in the clear, facts only.

`app_protocol`: "xmpp". Found by content on any port (5222 client-to-server and 5269
server-to-server are hints; XEP-0368 direct TLS on 5223 is the TLS dissector's flow): either
direction opens with an XML stream header (`<?xml ...?>` and/or `<stream:stream`) naming the
streams namespace `http://etherx.jabber.org/streams` within its first 512 bytes.

The stream is XML, but only a few top-level elements matter here, and they are found with bounded
byte searches rather than an XML parser (hostile input cannot make it expensive): the client's
stream header (`to`: the domain; default namespace jabber:client or jabber:server), the server's
`<stream:features>` (a `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>` offer, `<required/>`
inside it, and the SASL `<mechanism>` names), the client's `<starttls/>` and the server's
`<proceed/>` or `<failure/>`. After `<proceed/>` the stream is handed to the TLS dissector from
the byte after the client's `<starttls .../>` element and after the server's `<proceed .../>`
element (protection "starttls"; Zeek's XMPP analyzer does the same).

`credentials` rows for SASL in the clear: `<auth mechanism='PLAIN'>base64</auth>` (and the
`<response>` elements that follow it), read as the line protocols' SASL exchanges are
(`analyzer.dissect.credentials.SaslExchange`); `<success/>` or `<failure/>` says `accepted`.
"""

from __future__ import annotations

import re

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, SaslExchange, credential_row, run_key
from analyzer.dissect.lines import STARTTLS_COLUMN, cut, lazy_pattern, start_tls, starttls_state, tls_follows

__all__ = ["XMPPDissector"]

STREAMS_NS = b"http://etherx.jabber.org/streams"
TLS_NS = b"urn:ietf:params:xml:ns:xmpp-tls"
SASL_NS = b"urn:ietf:params:xml:ns:xmpp-sasl"
MAX_READ = 65536  # bytes of each direction searched
MAX_ELEMENT = 4096  # an element's start tag is looked for within this many bytes
MAX_RESPONSES = 8
_ATTR = lazy_pattern(rb"""\s(to|xmlns)\s*=\s*['"]([^'"]{0,255})['"]""")
_MECHANISM = lazy_pattern(rb"<mechanism>\s*([A-Za-z0-9_\-]{1,40})\s*</mechanism>")
_AUTH = lazy_pattern(rb"""<auth\b[^>]{0,512}?mechanism\s*=\s*['"]([A-Za-z0-9_\-]{1,40})['"][^>]{0,512}?(/>|>)""")
_RESPONSE = lazy_pattern(rb"<response\b[^>]{0,512}?(/>|>([^<]{0,16384})</response>)")
_TAG = lazy_pattern(rb"<(?:[a-zA-Z0-9_]{1,32}:)?(starttls|proceed|failure|success|stream:features|features)\b")

COLUMNS: tuple[Column, ...] = (
    Column("xmpp_domain", "string", "the `to` of the client's stream header (the server's domain)"),
    Column("xmpp_stream", "string", "c2s (jabber:client) or s2s (jabber:server), from the stream header"),
    Column("xmpp_starttls_required", "boolean", "the server's STARTTLS offer says <required/>"),
    Column("xmpp_mechanisms", "string", "SASL mechanisms offered in the clear, space-separated"),
    STARTTLS_COLUMN,
)


def _element_end(data: bytes, start: int) -> int:
    """The offset after the element that starts at `start`: after `/>` of an empty element, or
    after its closing tag; -1 when it is not complete in the data."""
    close = data.find(b">", start, start + MAX_ELEMENT)
    if close < 0:
        return -1
    if data[close - 1:close] == b"/":
        return close + 1
    name = re.match(rb"<([^\s/>]{1,64})", data[start:close + 1])
    if name is None:
        return -1
    end = data.find(b"</" + name.group(1) + b">", close, close + MAX_ELEMENT)
    return -1 if end < 0 else end + len(name.group(1)) + 3


def _sasl_answer(server: bytes, tag: bytes) -> int:
    """Where the server's first SASL `<success>` / `<failure>` is (-1: none): the element in the
    xmpp-sasl namespace (a STARTTLS `<failure>` is in xmpp-tls)."""
    at = server.find(tag)
    for _ in range(8):
        if at < 0 or SASL_NS in server[at:at + 256]:
            return at
        at = server.find(tag, at + 1)
    return -1


class XMPPDissector:
    """XMPP over TCP, found by its stream header on any port."""

    name = "xmpp"
    app_protocols = ("xmpp",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({5222, 5269})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> XMPPDissector:
        return XMPPDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        for data in (flow.to_server.data, flow.to_client.data):
            opens = data[:1] == b"<" or (data[:1].isspace() and data[:16].lstrip()[:1] == b"<")
            if opens and STREAMS_NS in data[:512]:
                return True
        return False

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        client, server = flow.to_server.data[:MAX_READ], flow.to_client.data[:MAX_READ]
        out: dict[str, object] = {"app_protocol": "xmpp"}
        header_at = client.find(b"<stream:stream", 0, 1024)
        if header_at >= 0:
            header = client[header_at:client.find(b">", header_at, header_at + MAX_ELEMENT) + 1]
            attrs = {k: v for k, v in _ATTR().findall(header)}
            if b"to" in attrs:
                out["xmpp_domain"] = cut(attrs[b"to"])
            if attrs.get(b"xmlns") in (b"jabber:client", b"jabber:server"):
                out["xmpp_stream"] = "c2s" if attrs[b"xmlns"] == b"jabber:client" else "s2s"
        # the server's tags in order: features (the offer), proceed / failure (the STARTTLS answer)
        offered = required = False
        proceed_end = -1
        features_seen = False
        for match in _TAG().finditer(server):
            tag = match.group(1)
            if tag in (b"stream:features", b"features") and not features_seen:
                features_seen = True
                end = _element_end(server, match.start())
                features = server[match.start():end if end >= 0 else len(server)]
                tls_at = features.find(b"<starttls")
                if tls_at >= 0 and TLS_NS in features[tls_at:tls_at + 256]:
                    offered = True
                    tls_end = _element_end(features, tls_at)
                    required = b"<required" in features[tls_at:tls_end if tls_end >= 0 else len(features)]
                mechanisms = [m.decode("latin-1") for m in _MECHANISM().findall(features)]
                if mechanisms:
                    out["xmpp_mechanisms"] = " ".join(mechanisms[:16])
            elif tag == b"proceed" and TLS_NS in server[match.start():match.start() + 256]:
                proceed_end = _element_end(server, match.start())
                break
        requested_at = -1
        for match in re.finditer(rb"<starttls\b", client):
            if TLS_NS in client[match.start():match.start() + 256]:
                requested_at = match.start()
                break
        requested = requested_at >= 0
        # a server-only view shows the <proceed/> without the request it answers
        accepted = proceed_end >= 0 and (requested or not client)
        if requested and not accepted and not server:
            # a client-only view: the client starts TLS only after <proceed/> (RFC 6120 5.4.3.3)
            request_end = _element_end(client, requested_at)
            accepted = request_end >= 0 and tls_follows(client, request_end)
        if requested and not accepted and not self._tls_failure(server):  # no answer in the capture
            out.update(protection="starttls", undecided_reason="handshake_incomplete")
            facts.flow.update(out)
            return facts
        if features_seen or requested:
            out["starttls"] = starttls_state(offered, requested, accepted)
            if offered:
                out["xmpp_starttls_required"] = required
        handed: bool | None = None
        if accepted and not client:
            handed = tls_follows(server, proceed_end) or None
            if handed:
                facts.hand_over("tls", 0, proceed_end)
        elif accepted:
            request_end = _element_end(client, requested_at)
            handed = start_tls(facts, "xmpp", flow.to_server.data, request_end if request_end >= 0 else len(client),
                               max(proceed_end, 0))
        cleartext_client = client[:requested_at] if requested else client
        if self.rows:
            self._sasl(facts, cleartext_client, server[:proceed_end] if proceed_end >= 0 else server)
        if not accepted or handed is False:
            out.update(encrypted=False, protection="none")
        else:
            out["protection"] = "starttls"
            if handed is None:
                out["undecided_reason"] = "upgrade_not_seen"
        facts.flow.update(out)
        return facts

    @staticmethod
    def _tls_failure(server: bytes) -> bool:
        """The server refused STARTTLS: a `<failure>` in the xmpp-tls namespace."""
        at = server.find(b"<failure")
        for _ in range(8):
            if at < 0:
                return False
            if TLS_NS in server[at:at + 256]:
                return True
            at = server.find(b"<failure", at + 1)
        return False

    def _sasl(self, facts: Facts, client: bytes, server: bytes) -> None:
        auth = _AUTH().search(client)
        if auth is None:
            return
        initial = None
        if auth.group(2) == b">":
            end = client.find(b"</auth>", auth.end(), auth.end() + 16384)
            initial = client[auth.end():end] if end >= 0 else None
        exchange = SaslExchange(auth.group(1), initial)
        for response in list(_RESPONSE().finditer(client, auth.end()))[:MAX_RESPONSES]:
            exchange.add(response.group(2) or b"")
        success, failure = _sasl_answer(server, b"<success"), _sasl_answer(server, b"<failure")
        accepted = None if success < 0 and failure < 0 else success >= 0 and (failure < 0 or success < failure)
        name, secret = exchange.identity()
        facts.add_row("credentials", credential_row(self.key, "xmpp", exchange.mechanism, name, secret, accepted))


DISSECTOR = register(XMPPDissector())
