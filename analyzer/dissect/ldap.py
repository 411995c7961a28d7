"""LDAP over TCP (RFC 4511): binds, StartTLS (RFC 4511 4.14, RFC 4513 3) and the SASL security layer,
facts only.

`app_protocol`: "ldap". Found by content on any port: the client's first bytes are an LDAPMessage
(SEQUENCE, messageID INTEGER, a request's [APPLICATION n] tag), or, with no client bytes, the
server's are one with a response's tag; 389 and 3268 are hints (636 and 3269 are LDAPS: TLS from
the first byte, the TLS dissector's).

What is read, per direction: LDAPMessages in order (at most `MAX_MESSAGES`), up to the StartTLS
exchange or the start of a SASL security layer. Responses are paired with requests by messageID.
- BindRequest (4.2): `ldap_bind_kind` simple, anonymous (simple, empty DN and password),
  unauthenticated (simple, a DN and an empty password: RFC 4513 5.1.2, it authenticates nobody),
  sasl or sicily (Microsoft's NTLM binds, tags [9]-[11]); `ldap_bind_dn` (cut), `ldap_sasl_mechanism`,
  `ldap_bind_result` (the BindResponse resultCode: 0 success, 49 invalidCredentials, 14
  saslBindInProgress for a step of a SASL exchange). A simple bind with a password is a
  `credentials` row (mechanism "simple", the DN as user name, the password's length and keyed
  fingerprint); SASL PLAIN likewise ("plain"); DIGEST-MD5 and CRAM-MD5 rows name the user and carry
  no reusable secret; GSSAPI, GSS-SPNEGO and EXTERNAL show no secret and make no row.
- ExtendedRequest 1.3.6.1.4.1.1466.20037 (StartTLS) and its ExtendedResponse: resultCode 0 hands the
  stream to TLS at the byte after each direction's message (`protection` "starttls"); `starttls`
  says completed or requested_refused, or offered_not_used when the server advertised the OID (a
  root DSE `supportedExtension` value) and the client did not ask. LDAP has no offer in the session
  itself, so otherwise the column stays unset.
- After a successful SASL bind whose mechanism can negotiate a security layer (GSSAPI, GSS-SPNEGO,
  DIGEST-MD5), messages that are not LDAPMessages but 4-byte length-prefixed buffers (RFC 4422 3.7)
  mean the layer is in effect: `protection` "sasl"; `encrypted` True for a Kerberos wrap token
  (RFC 4121 4.2.6.2) with the Sealed flag, False without it, undecided otherwise (NTLM sealing and
  signing look alike on the wire).
- Otherwise the session is cleartext: `encrypted` False, `protection` "none".

Anchors: Zeek's LDAP analyzer (`base/protocols/ldap/main.zeek`: ldap.log's `opcodes`, `results`,
`object` and `argument` of binds, "bind simple"/"SASL <mech>", and its StartTLS hand-over to SSL
in `ldap.spicy`); dpkt has no LDAP module, its `snmp.py` BER walk is the model of `ber.py`.
"""

from __future__ import annotations

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.ber import (
    ENUMERATED,
    INTEGER,
    OCTET_STRING,
    SEQUENCE,
    Element,
    children,
    header_length,
    integer,
    read,
)
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key, sasl_plain
from analyzer.dissect.lines import STARTTLS_COLUMN, cut, start_tls, starttls_state, tls_follows

__all__ = ["LDAPDissector", "parse_message"]

MAX_MESSAGES = 256
STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
BIND_REQUEST, BIND_RESPONSE, EXTENDED_REQUEST, EXTENDED_RESPONSE = 0x60, 0x61, 0x77, 0x78
# [APPLICATION n] tags of the protocol operations (RFC 4511 4.2-4.14), constructed or primitive as defined
REQUESTS = frozenset({0x60, 0x42, 0x63, 0x66, 0x68, 0x4A, 0x6C, 0x6E, 0x50, 0x77})
RESPONSES = frozenset({0x61, 0x64, 0x65, 0x73, 0x67, 0x69, 0x6B, 0x6D, 0x6F, 0x78, 0x79})
_LAYER_MECHANISMS = frozenset({"gssapi", "gss-spnego", "digest-md5"})

COLUMNS: tuple[Column, ...] = (
    Column("ldap_bind_kind", "string", "the first bind: simple, anonymous, unauthenticated, sasl or sicily"),
    Column("ldap_bind_dn", "string", "the first bind's DN (at most 256 characters)"),
    Column("ldap_sasl_mechanism", "string", "the first SASL bind's mechanism"),
    Column("ldap_bind_result", "Int32", "resultCode of the last BindResponse (0 success, 49 invalidCredentials)"),
    Column("ldap_messages", "Int32", "LDAPMessages read (both directions, before any TLS or SASL layer)"),
    STARTTLS_COLUMN,
)


class Message:
    """One LDAPMessage: its id, the operation's tag and element, and where the message ends."""

    __slots__ = ("end", "ident", "op", "tag")

    def __init__(self, ident: int, tag: int, op: Element, end: int) -> None:
        self.ident = ident
        self.tag = tag
        self.op = op
        self.end = end


def parse_message(data: bytes, pos: int) -> Message | None:
    """The LDAPMessage at `pos` (complete in `data`), None when malformed or truncated."""
    outer = read(data, pos)
    if outer is None or outer.tag != SEQUENCE:
        return None
    ident = read(data, outer.start, outer.end)
    if ident is None or ident.tag != INTEGER:
        return None
    op = read(data, ident.end, outer.end)
    if op is None:
        return None
    value = integer(data, ident)
    return Message(-1 if value is None else value, op.tag, op, outer.end)


def _messages(data: bytes) -> tuple[list[Message], int]:
    """The complete LDAPMessages from the start of `data` (stops at the first that is not one), and
    the offset after the last."""
    out: list[Message] = []
    pos = 0
    while len(out) < MAX_MESSAGES and pos < len(data):
        msg = parse_message(data, pos)
        if msg is None:
            break
        out.append(msg)
        pos = msg.end
    return out, pos


def _octets(data: bytes, e: Element | None) -> bytes:
    return data[e.start:e.end] if e is not None else b""


def _result_code(data: bytes, op: Element) -> int | None:
    """The resultCode (the first element of an LDAPResult-shaped response)."""
    first = read(data, op.start, op.end)
    return integer(data, first) if first is not None and first.tag == ENUMERATED else None


def _looks_like_start(data: bytes, tags: frozenset[int]) -> bool:
    """SEQUENCE, a length, INTEGER messageID of 1-4 bytes, then an operation tag among `tags`."""
    if len(data) < 7 or data[0] != SEQUENCE:
        return False
    n = data[1]
    pos = 2 + (n & 0x7F if n & 0x80 else 0)
    if n in (0x80, 0x85) or n > 0x84 or pos + 2 >= len(data) or data[pos] != INTEGER:
        return False
    size = data[pos + 1]
    return 1 <= size <= 4 and pos + 2 + size < len(data) and data[pos + 2 + size] in tags


def _truncated(data: bytes, pos: int) -> bool:
    """The bytes at `pos` start an LDAPMessage that the capture (or the byte budget) cut short."""
    head = header_length(data, pos)
    return head is not None and head[0] == SEQUENCE and pos + head[1] > len(data)


def _wrapped(data: bytes, pos: int) -> bool | None:
    """After a SASL bind: True when the bytes at `pos` are a length-prefixed SASL buffer (RFC 4422
    3.7) rather than an LDAPMessage; None when nothing follows."""
    if pos + 4 > len(data):
        return None
    if data[pos] == SEQUENCE and parse_message(data, pos) is not None:
        return False
    return int.from_bytes(data[pos:pos + 4], "big") > 0


def _sealed(data: bytes, pos: int) -> bool | None:
    """The Sealed flag (0x02) of a Kerberos V5 wrap token (RFC 4121 4.2.6.2: TOK_ID 05 04, Flags, Filler
    0xff) in the SASL buffer at `pos`; None when the buffer holds another token."""
    token = data[pos + 4:pos + 8]
    if len(token) == 4 and token[:2] == b"\x05\x04" and token[3] == 0xFF:
        return bool(token[2] & 0x02)
    return None


class LDAPDissector:
    """LDAP over TCP, found by content (an LDAPMessage) on any port."""

    name = "ldap"
    app_protocols = ("ldap",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({389, 3268})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> LDAPDissector:
        return LDAPDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        client = flow.to_server.data
        if client:
            return _looks_like_start(client, REQUESTS)
        return _looks_like_start(flow.to_client.data, RESPONSES)

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        cdata, sdata = flow.to_server.data, flow.to_client.data
        requests, cend = _messages(cdata)
        responses, send = _messages(sdata)
        out: dict[str, object] = {"app_protocol": "ldap"}
        by_id: dict[int, list[Message]] = {}
        for r in responses:
            by_id.setdefault(r.ident, []).append(r)
        requested = accepted = layered = False
        handed: bool | None = None
        for req in requests:
            answers = by_id.get(req.ident, [])
            if req.tag == BIND_REQUEST:
                result = self._bind(facts, out, cdata, sdata, req, answers)
                mech = str(out.get("ldap_sasl_mechanism", "")).lower()
                if result == 0 and mech in _LAYER_MECHANISMS:
                    at = (req.end, max((a.end for a in answers), default=0))
                    if _wrapped(cdata, at[0]) or _wrapped(sdata, at[1]):
                        layered = True
                        self._layer(out, cdata, sdata, *at)
                        break
            elif req.tag == EXTENDED_REQUEST and self._is_starttls(cdata, req):
                requested = True
                ext = next((a for a in answers if a.tag == EXTENDED_RESPONSE), None)
                if ext is not None and _result_code(sdata, ext.op) == 0:
                    accepted = True
                    handed = start_tls(facts, "ldap", cdata, req.end, ext.end)
                elif ext is None and tls_follows(cdata, req.end):
                    # the answer is not in this view (one-sided), but the client went on in TLS,
                    # which it does only after a success (RFC 4511 4.14.2)
                    accepted = handed = True
                    facts.hand_over("tls", req.end, send if tls_follows(sdata, send) else len(sdata))
                break
        if not cdata and responses and responses[-1].tag == EXTENDED_RESPONSE and tls_follows(sdata, send) \
                and _result_code(sdata, responses[-1].op) == 0:
            # a server-only view: a successful extended response, then the server's TLS
            requested = accepted = handed = True
            facts.hand_over("tls", 0, send)
        # each direction's messages stop by themselves where TLS or a SASL layer starts
        out["ldap_messages"] = len(requests) + len(responses)
        if requested:
            out["starttls"] = starttls_state(True, True, accepted)
        elif STARTTLS_OID in sdata[:send]:
            out["starttls"] = "offered_not_used"
        if "protection" not in out:
            if not accepted or handed is False:
                out.update(encrypted=False, protection="none")
            elif handed:
                out["protection"] = "starttls"
            else:
                out.update(protection="starttls", undecided_reason="upgrade_not_seen")
        if cend < len(cdata) and not accepted and not layered and len(requests) < MAX_MESSAGES \
                and flow.to_server.start_known and not _truncated(cdata, cend):
            facts.anomaly("ldap_message_malformed", "client: bytes that are not an LDAPMessage", cend)
        facts.flow.update(out)
        return facts

    def _bind(self, facts: Facts, out: dict[str, object], cdata: bytes, sdata: bytes, req: Message,
              answers: list[Message]) -> int | None:
        """Facts of one BindRequest (version, name, authentication) and its response; its resultCode."""
        parts = children(cdata, req.op, 3)
        response = next((a for a in answers if a.tag == BIND_RESPONSE), None)
        result = _result_code(sdata, response.op) if response is not None else None
        if result is not None:
            out["ldap_bind_result"] = result
        if len(parts) < 3 or parts[1].tag != OCTET_STRING:
            facts.anomaly("ldap_bind_malformed", "a BindRequest without version, name and authentication", req.op.start)
            return result
        dn, auth = _octets(cdata, parts[1]), parts[2]
        accepted = None if result is None else result == 0
        kind: str
        if auth.tag == 0x80:  # [0] simple
            password = _octets(cdata, auth)
            kind = "simple" if password else ("unauthenticated" if dn else "anonymous")
            if password and self.rows:
                facts.add_row("credentials", credential_row(self.key, "ldap", "simple", dn, password, accepted))
        elif auth.tag == 0xA3:  # [3] SaslCredentials
            kind = "sasl"
            sasl = children(cdata, auth, 2)
            mech = _octets(cdata, sasl[0]) if sasl and sasl[0].tag == OCTET_STRING else b""
            creds = _octets(cdata, sasl[1]) if len(sasl) > 1 else None
            name = cut(mech, 40)
            out.setdefault("ldap_sasl_mechanism", name)
            self._sasl_row(facts, name.lower(), creds, accepted)
        elif auth.tag in (0x89, 0x8A, 0x8B):  # Microsoft sicily: NTLM package discovery / negotiate / response
            kind = "sicily"
        else:
            kind = f"tag_{auth.tag:#04x}"
        out.setdefault("ldap_bind_kind", kind)
        if kind != "sasl" or "ldap_bind_dn" not in out:
            out.setdefault("ldap_bind_dn", cut(dn))
        return result

    def _sasl_row(self, facts: Facts, mech: str, creds: bytes | None, accepted: bool | None) -> None:
        if not self.rows or creds is None:
            return
        if mech == "plain":
            user, secret = sasl_plain(creds)
            facts.add_row("credentials", credential_row(self.key, "ldap", "plain", user, secret, accepted))
        elif mech == "cram-md5" and creds:
            facts.add_row("credentials", credential_row(self.key, "ldap", "cram-md5", creds.rsplit(b" ", 1)[0],
                                                        None, accepted))
        elif mech == "digest-md5" and b"username=" in creds:
            user = creds.split(b"username=", 1)[1].split(b",", 1)[0].strip(b'"')
            facts.add_row("credentials", credential_row(self.key, "ldap", "digest-md5", user, None, accepted))

    @staticmethod
    def _is_starttls(cdata: bytes, req: Message) -> bool:
        name = read(cdata, req.op.start, req.op.end)
        return name is not None and name.tag == 0x80 and cdata[name.start:name.end] == STARTTLS_OID

    @staticmethod
    def _layer(out: dict[str, object], cdata: bytes, sdata: bytes, cpos: int, spos: int) -> None:
        """The SASL security layer is in effect from these offsets: sealed or not, where it shows."""
        sealed = _sealed(cdata, cpos) if cpos + 8 <= len(cdata) else None
        if sealed is None and spos + 8 <= len(sdata):
            sealed = _sealed(sdata, spos)
        out["protection"] = "sasl"
        if sealed is None:
            out["undecided_reason"] = "undecided"
        else:
            out["encrypted"] = sealed


DISSECTOR = register(LDAPDissector())
