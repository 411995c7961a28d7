"""SMB over TCP (MS-SMB2, MS-CIFS), facts only: the dialect, and whether the session is encrypted.

Framing: each message travels in a 4-byte session header (RFC 1002 4.3.1 / MS-SMB2 2.1: type 0x00 and
a 24-bit length on port 445; on port 139 the NetBIOS session request (0x81) and its answer (0x82)
come first and are skipped). What a message starts with decides what it is:
- `\\xfeSMB`: an SMB2/3 message (64-byte header, MS-SMB2 2.2.1), possibly a compound chain
  (NextCommand);
- `\\xfdSMB`: an SMB 3 TRANSFORM_HEADER (2.2.41): the message inside is encrypted (AES-CCM/GCM);
- `\\xfcSMB`: a COMPRESSION_TRANSFORM_HEADER (2.2.42): compressed, not encrypted (counted only);
- `\\xffSMB`: SMB1 (MS-CIFS 2.2.3.1); a client's SMB1 NEGOTIATE offering "SMB 2.???" is the usual
  start of an SMB2 session and is answered by an SMB2 NEGOTIATE response.

Facts read:
- NEGOTIATE request (2.2.3): the dialects offered; response (2.2.4): the selected dialect, the
  server's SecurityMode (signing enabled/required: integrity, not confidentiality) and Capabilities
  (SMB2_GLOBAL_CAP_ENCRYPTION 0x40, the SMB 3.0/3.0.2 way to offer encryption), and in 3.1.1 the
  negotiate contexts (2.2.3.1): SMB2_ENCRYPTION_CAPABILITIES lists the ciphers (request: offered;
  response: the one selected).
- SESSION_SETUP response (2.2.6): SessionFlags SMB2_SESSION_FLAG_ENCRYPT_DATA (0x4: every later
  message of the session is encrypted), IS_GUEST, IS_NULL; the request's security buffer: NTLMSSP
  (MS-NLMP 2.2.1.3 AUTHENTICATE_MESSAGE: domain and user names) or Kerberos (the krb5 OID in SPNEGO).
- SMB1 NEGOTIATE response: the dialect the server picked from the client's list ("NT LM 0.12").

`encrypted`: True when transform headers are seen (protection "smb3"), or when the session setup
answered SMB2_SESSION_FLAG_ENCRYPT_DATA (all that follows is encrypted, even if the capture stops
there); False when SMB commands after the session setup travel in the clear, or the server speaks
SMB1 (which has no encryption); else undecided (`handshake_incomplete`: only the negotiation seen).
Signing (smb_signing_required) proves integrity only and never makes a flow `encrypted`.

Credentials: an NTLM AUTHENTICATE message gives a `credentials` row (mechanism "ntlm": a challenge
response, no reusable secret crosses the wire, `secret_in_clear` False) with "DOMAIN\\user" as the
username and `accepted` from the SESSION_SETUP status. Anonymous (empty user) logins give none.

Anchors: Zeek's SMB analyzer (scripts/base/protocols/smb/smb2-main.zeek: dialect from
smb2_negotiate_response, `smb2_transform_header` event; ntlm.log user/domain) and Wireshark's
packet-smb2.c field layout; the byte layout is MS-SMB2's.
"""

from __future__ import annotations

import struct

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key

__all__ = ["CIPHERS", "DIALECTS", "SMBDissector", "ntlm_identity"]

MAX_RECORDS = 256  # session messages walked per direction
MAX_CHAIN = 16  # compound SMB2 messages in one record
MAX_DIALECTS = 64
MAX_CONTEXTS = 16
SMB2, SMB1, TRANSFORM, COMPRESSED = b"\xfeSMB", b"\xffSMB", b"\xfdSMB", b"\xfcSMB"
_MAGICS = (SMB2, SMB1, TRANSFORM, COMPRESSED)
NEGOTIATE, SESSION_SETUP, LOGOFF, ECHO = 0, 1, 2, 13
FLAG_RESPONSE = 0x1
CAP_ENCRYPTION = 0x40
SIGNING_REQUIRED = 0x2
SESSION_ENCRYPT_DATA, SESSION_IS_GUEST, SESSION_IS_NULL = 0x4, 0x1, 0x2
CTX_ENCRYPTION = 0x0002
STATUS_OK, STATUS_MORE_PROCESSING = 0, 0xC0000016
DIALECTS = {0x0202: "2.0.2", 0x0210: "2.1", 0x0222: "2.2.2", 0x0224: "2.2.4", 0x0300: "3.0", 0x0302: "3.0.2",
            0x0310: "3.1", 0x0311: "3.1.1", 0x02FF: "2.???"}
CIPHERS = {1: "AES-128-CCM", 2: "AES-128-GCM", 3: "AES-256-CCM", 4: "AES-256-GCM"}
_KRB5_OIDS = (b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02", b"\x2a\x86\x48\x82\xf7\x12\x01\x02\x02")  # krb5, MS krb5
_U16, _U32 = struct.Struct("<H"), struct.Struct("<I")

COLUMNS: tuple[Column, ...] = (
    Column("smb_version", "string", "SMB protocol family in use: smb2 (SMB 2 and 3) or smb1"),
    Column("smb_dialect", "string", "dialect the server selected: 2.0.2, 2.1, 3.0, 3.0.2, 3.1.1, or NT LM 0.12 (SMB1)"),
    Column("smb_dialects_offered", "string", "dialects the client offered in its NEGOTIATE request, comma-separated"),
    Column("smb_encryption_capable", "boolean",
           "the server's NEGOTIATE response offers encryption (SMB2_GLOBAL_CAP_ENCRYPTION or a 3.1.1 cipher)"),
    Column("smb_ciphers_offered", "string", "encryption ciphers the client offered (3.1.1 negotiate context)"),
    Column("smb_cipher", "string", "encryption cipher the server selected (3.1.1 negotiate context)"),
    Column("smb_session_encrypt", "boolean", "a SESSION_SETUP response set SMB2_SESSION_FLAG_ENCRYPT_DATA"),
    Column("smb_encrypted_messages", "Int32", "SMB 3 transform headers (encrypted messages) seen, both directions"),
    Column("smb_signing_required", "boolean",
           "the server requires message signing (integrity only: signing does not encrypt)"),
    Column("smb_auth", "string", "authentication seen in SESSION_SETUP: ntlm, kerberos, anonymous, guest"),
)


def _u16(b: bytes, at: int) -> int:
    return _U16.unpack_from(b, at)[0] if at + 2 <= len(b) else 0


def _u32(b: bytes, at: int) -> int:
    return _U32.unpack_from(b, at)[0] if at + 4 <= len(b) else 0


def records(data: bytes) -> list[bytes]:
    """The session messages of one direction (NetBIOS session header: type, 24-bit length); a
    message cut by the end of the prefix is kept as far as it goes."""
    out: list[bytes] = []
    pos = 0
    for _ in range(MAX_RECORDS):
        if pos + 4 > len(data):
            break
        kind = data[pos]
        length = int.from_bytes(data[pos + 1:pos + 4], "big")
        if kind == 0x00:
            out.append(data[pos + 4:pos + 4 + length])
        elif kind not in (0x81, 0x82, 0x83, 0x84, 0x85):  # NetBIOS session request/answers, keep-alive
            break  # not a session header: the rest is not framed as we expect
        pos += 4 + length
    return out


def ntlm_identity(blob: bytes) -> tuple[str, str] | None:
    """(domain, user) of an NTLMSSP AUTHENTICATE_MESSAGE (MS-NLMP 2.2.1.3) found in a security
    buffer (raw or inside SPNEGO); None when there is none."""
    at = blob.find(b"NTLMSSP\x00")
    if at < 0 or _u32(blob, at + 8) != 3:
        return None
    msg = blob[at:]
    flags = _u32(msg, 60)

    def field(offset: int) -> str:
        length, where = _u16(msg, offset), _u32(msg, offset + 4)
        raw = msg[where:where + min(length, 512)] if where + length <= len(msg) else b""
        if flags & 0x1:  # NTLMSSP_NEGOTIATE_UNICODE
            return raw.decode("utf-16-le", "replace")
        return raw.decode("latin-1")

    return field(28), field(36)


class _State:
    """What the messages of both directions showed."""

    __slots__ = (
        "auth",
        "capable",
        "cipher",
        "ciphers_offered",
        "cleartext_after_setup",
        "dialect",
        "offered",
        "session_encrypt",
        "setup_status",
        "signing_required",
        "smb1_server",
        "transforms",
        "user",
        "version",
    )

    def __init__(self) -> None:
        self.version: str | None = None
        self.dialect: str | None = None
        self.offered: list[str] = []
        self.ciphers_offered: list[str] = []
        self.cipher: str | None = None
        self.capable: bool | None = None
        self.signing_required: bool | None = None
        self.session_encrypt: bool | None = None
        self.auth: str | None = None
        self.user: tuple[str, str] | None = None
        self.setup_status: int | None = None
        self.transforms = 0
        self.cleartext_after_setup = False
        self.smb1_server = False


def _contexts(msg: bytes, offset: int, count: int) -> list[tuple[int, bytes]]:
    """SMB 3.1.1 negotiate contexts (MS-SMB2 2.2.3.1): (type, data), 8-byte aligned from `offset`
    (relative to the SMB2 header)."""
    out = []
    pos = offset
    for _ in range(min(count, MAX_CONTEXTS)):
        if pos + 8 > len(msg):
            break
        kind, length = _u16(msg, pos), _u16(msg, pos + 2)
        out.append((kind, msg[pos + 8:pos + 8 + length]))
        pos += (8 + length + 7) & ~7
    return out


def _cipher_list(data: bytes) -> list[str]:
    count = _u16(data, 0)
    return [CIPHERS.get(_u16(data, 2 + 2 * i), f"0x{_u16(data, 2 + 2 * i):04x}")
            for i in range(min(count, (len(data) - 2) // 2, 8))]


def _smb2(st: _State, msg: bytes) -> None:
    """One SMB2 message (header at 0, body at 64)."""
    command, flags, status = _u16(msg, 12), _u32(msg, 16), _u32(msg, 8)
    response = bool(flags & FLAG_RESPONSE)
    st.version = "smb2"
    if command == NEGOTIATE and not response and _u16(msg, 64) == 36:
        count = _u16(msg, 66)
        st.offered = [DIALECTS.get(_u16(msg, 100 + 2 * i), f"0x{_u16(msg, 100 + 2 * i):04x}")
                      for i in range(min(count, MAX_DIALECTS, max(0, (len(msg) - 100) // 2)))]
        if "3.1.1" in st.offered:
            for kind, data in _contexts(msg, _u32(msg, 92), _u16(msg, 96)):
                if kind == CTX_ENCRYPTION:
                    st.ciphers_offered = _cipher_list(data)
    elif command == NEGOTIATE and response and _u16(msg, 64) == 65 and status == STATUS_OK:
        revision = _u16(msg, 68)
        if revision != 0x02FF:  # the wildcard answer to an SMB1 negotiate: the real one follows
            st.dialect = DIALECTS.get(revision, f"0x{revision:04x}")
        st.signing_required = bool(_u16(msg, 66) & SIGNING_REQUIRED)
        capable = bool(_u32(msg, 88) & CAP_ENCRYPTION)
        if revision == 0x0311:
            for kind, data in _contexts(msg, _u32(msg, 124), _u16(msg, 70)):
                if kind == CTX_ENCRYPTION:
                    chosen = _cipher_list(data)
                    st.cipher = chosen[0] if chosen else None
                    capable = capable or (bool(chosen) and _u16(data, 2) != 0)  # 0: no common cipher
        if revision != 0x02FF:
            st.capable = capable
    elif command == SESSION_SETUP and not response and _u16(msg, 64) == 25:
        blob = msg[_u16(msg, 76):_u16(msg, 76) + _u16(msg, 78)]
        ident = ntlm_identity(blob)
        if ident is not None:
            st.auth, st.user = "ntlm", ident
        elif any(oid in blob for oid in _KRB5_OIDS) and st.auth is None:
            st.auth = "kerberos"
    elif command == SESSION_SETUP and response and _u16(msg, 64) == 9:
        if status != STATUS_MORE_PROCESSING:
            st.setup_status = status
        if status == STATUS_OK:
            session_flags = _u16(msg, 66)
            st.session_encrypt = bool(session_flags & SESSION_ENCRYPT_DATA)
            if session_flags & SESSION_IS_NULL:
                st.auth = "anonymous"
            elif session_flags & SESSION_IS_GUEST:
                st.auth = "guest"
    elif command not in (NEGOTIATE, SESSION_SETUP, ECHO):
        st.cleartext_after_setup = True


def _smb1(st: _State, msg: bytes, to_client: bool) -> None:
    """An SMB1 message: the NEGOTIATE exchange names the dialect; anything else is SMB1 in use."""
    command = msg[4] if len(msg) > 4 else -1
    if command != 0x72:  # SMB_COM_NEGOTIATE
        st.version = st.version or "smb1"
        st.cleartext_after_setup = True
        return
    if not to_client:  # the client's dialect strings: 0x02 "name" NUL ...
        count = _u16(msg, 33)
        names = [n[1:].decode("latin-1")[:32] for n in msg[35:35 + count].split(b"\x00") if n[:1] == b"\x02"]
        st.offered = names[:MAX_DIALECTS]
        st.version = st.version or "smb1"
        return
    if len(msg) > 34 and msg[32] >= 1:  # WordCount >= 1: DialectIndex
        index = _u16(msg, 33)
        st.smb1_server, st.version = True, "smb1"
        if index < len(st.offered):
            st.dialect = st.offered[index]


def _walk(st: _State, data: bytes, to_client: bool) -> None:
    for record in records(data):
        magic = record[:4]
        if magic == TRANSFORM:
            st.transforms += 1
        elif magic == SMB2:
            pos = 0
            for _ in range(MAX_CHAIN):
                msg = record[pos:]
                if len(msg) < 64 or msg[:4] != SMB2:
                    break
                _smb2(st, msg)
                nxt = _u32(msg, 20)
                if nxt < 64:  # NextCommand 0 ends the chain
                    break
                pos += nxt
        elif magic == SMB1:
            _smb1(st, record, to_client)


class SMBDissector:
    """SMB1/SMB2/SMB3 over TCP (direct TCP 445, NetBIOS session service 139)."""

    name = "smb"
    app_protocols = ("smb",)
    transports = frozenset({"tcp"})
    ports = frozenset({445, 139})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> SMBDissector:
        return SMBDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        for data in (flow.to_server.data, flow.to_client.data):
            if len(data) >= 8 and data[0] == 0 and data[4:8] in _MAGICS:
                return True
            if len(data) >= 4 and data[0] == 0x81 and flow.server_port == 139:  # NetBIOS session request
                return any(r[:4] in _MAGICS for r in records(data)[:2])
        return False

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        st = _State()
        _walk(st, flow.to_server.data, False)
        _walk(st, flow.to_client.data, True)
        out: dict[str, object] = {"app_protocol": "smb", "smb_version": st.version, "smb_dialect": st.dialect,
                                  "smb_encrypted_messages": st.transforms}
        if st.offered:
            out["smb_dialects_offered"] = ",".join(st.offered)[:256]
        if st.ciphers_offered:
            out["smb_ciphers_offered"] = ",".join(st.ciphers_offered)
        for column, value in (("smb_encryption_capable", st.capable), ("smb_cipher", st.cipher),
                              ("smb_session_encrypt", st.session_encrypt),
                              ("smb_signing_required", st.signing_required), ("smb_auth", st.auth)):
            if value is not None:
                out[column] = value
        if st.transforms or st.session_encrypt:
            out.update(encrypted=True, protection="smb3")
        elif st.smb1_server or st.cleartext_after_setup:
            out.update(encrypted=False, protection="none")
        else:  # only the negotiation (or nothing readable): what follows would decide
            out.update(protection="smb3" if st.capable else "none", undecided_reason="handshake_incomplete")
        if st.user is not None and st.user[1] and self.rows:
            domain, user = st.user
            name = f"{domain}\\{user}" if domain else user
            accepted = None if st.setup_status is None else st.setup_status == STATUS_OK
            facts.add_row("credentials", credential_row(self.key, "smb", "ntlm", name, None, accepted))
        facts.flow.update({k: v for k, v in out.items() if v is not None})
        return facts


DISSECTOR = register(SMBDissector())
