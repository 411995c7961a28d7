"""The `credentials` frame: logins seen on cleartext flows, with a keyed fingerprint, never the secret.

Not a dissector: the frame's one `FrameSpec` (shared by every dissector that produces rows: HTTP,
SMTP, IMAP, POP3, FTP, LDAP, SNMP, Telnet, VNC, SIP, PostgreSQL, MySQL, Redis, MQTT, MongoDB, AMQP,
memcached, XMPP, NNTP) and the helpers that make its rows.

A row: `uid`, `protocol` (http, smtp, imap, pop3, ftp, ldap, snmp, telnet, vnc, sip), `mechanism`,
`username` (kept: who logged in is what an auditor needs), `secret_in_clear` (was a reusable
secret readable on the wire), its `secret_length` in bytes, `secret_fingerprint` and `accepted`
(the server's answer, when seen).

Mechanisms (lower case): HTTP schemes `basic`, `bearer`, `digest`, `ntlm`, `negotiate` (others by
their scheme name); SASL mechanisms by name (`plain`, `login`, `cram-md5`, `digest-md5`, `xoauth2`,
`scram-sha-1`, ...); `login_command` (IMAP LOGIN), `user_pass` (POP3 and FTP USER/PASS), `apop`;
`simple` (LDAP simple bind), `community` (SNMP v1/v2c: the community string is the secret, no user
name), `login` (Telnet: the line typed at the password prompt), `vnc_auth` (VNC's DES challenge-
response), `plain` also for VeNCrypt Plain.
Challenge-response mechanisms (digest, ntlm, cram-md5, apop, scram-*, vnc_auth, PostgreSQL md5, MySQL's
scrambles) send no reusable secret: `secret_in_clear` False and no fingerprint.

The fingerprint is HMAC-SHA256 of the secret under a key of the run (32 random bytes made once per
analysis, see `run_key`), so within one run the same secret seen twice has the same fingerprint, and
nothing outside the run can test a guess against it. The secret itself, and any unkeyed hash of it,
never leaves this module's functions: not in a row, an anomaly detail, or an exception text.
"""

from __future__ import annotations

import binascii
import hmac
import os
from collections import OrderedDict

from analyzer.dissect.base import DissectContext, FrameSpec

__all__ = ["CREDENTIALS", "IN_CLEAR", "SaslExchange", "b64decode", "credential_row", "fingerprint", "run_key",
           "sasl_plain"]

CREDENTIALS = FrameSpec(
    "credentials",
    {
        "uid": "string",
        "protocol": "string",
        "mechanism": "string",
        "username": "string",
        "secret_in_clear": "boolean",
        "secret_length": "Int32",
        "secret_fingerprint": "string",
        "accepted": "boolean",
    },
    "One row per login seen in the clear: who, how, whether a reusable secret crossed the wire "
    "(its length and a per-run keyed fingerprint, never the secret)",
    table_columns=("uid", "protocol", "mechanism", "username", "secret_in_clear", "accepted"),
)

# Mechanisms whose exchange carries the secret itself (or a bearer token) readable on the wire.
IN_CLEAR = frozenset({"basic", "bearer", "plain", "login", "xoauth2", "oauthbearer", "login_command",
                      "user_pass", "simple", "community",
                      # the data stores and brokers: PostgreSQL's PasswordMessage, MySQL's
                      # mysql_clear_password plugin, Redis AUTH / HELLO AUTH, MQTT CONNECT's password,
                      # RabbitMQ's AMQPLAIN
                      "cleartext", "mysql_clear_password", "auth_command", "hello_auth", "connect_password",
                      "amqplain"})
MAX_USERNAME = 256

# A context without a key (one process) has its run's key kept here by the context's identity, so every
# dissector of one run (each makes its instance with for_run(context)) uses the same key. A few
# recent runs only: a key must not outlive its run for long, and memory stays bounded.
_KEYS: OrderedDict[int, tuple[DissectContext, bytes]] = OrderedDict()
_KEEP = 8


def run_key(context: DissectContext | None) -> bytes:
    """The fingerprint key of the run `context` belongs to: the user's (`credential_key`), else 32
    random bytes made on first use."""
    if context is None:
        return os.urandom(32)
    if context.options.credential_key is not None:  # the user's: fingerprints compare across runs
        return context.options.credential_key
    if context.key is not None:  # the run's, chosen once by an engine whose run spans processes
        return context.key
    held = _KEYS.get(id(context))
    if held is not None and held[0] is context:
        _KEYS.move_to_end(id(context))
        return held[1]
    key = os.urandom(32)
    _KEYS[id(context)] = (context, key)
    while len(_KEYS) > _KEEP:
        _KEYS.popitem(last=False)
    return key


def fingerprint(key: bytes, secret: bytes) -> str:
    """HMAC-SHA256 of the secret under the run's key, hex (never an unkeyed hash)."""
    return hmac.digest(key, secret, "sha256").hex()  # the one-shot C path (hmac.new costs ~60 µs)


def credential_row(key: bytes, protocol: str, mechanism: str, username: bytes | str | None,
                   secret: bytes | None, accepted: bool | None = None) -> dict[str, object]:
    """A `credentials` row. `secret` is the reusable secret when the mechanism sends one (None for
    challenge-response mechanisms); only its length and keyed fingerprint are kept."""
    if isinstance(username, bytes):
        username = username[:MAX_USERNAME * 4].decode("utf-8", "replace")
    in_clear = secret is not None and mechanism in IN_CLEAR
    return {
        "protocol": protocol,
        "mechanism": mechanism,
        "username": username[:MAX_USERNAME] if username else None,
        "secret_in_clear": in_clear,
        "secret_length": len(secret) if in_clear and secret is not None else None,
        "secret_fingerprint": fingerprint(key, secret) if in_clear and secret is not None else None,
        "accepted": accepted,
    }


def b64decode(raw: bytes) -> bytes | None:
    """Base64 from the wire (SASL responses, HTTP Basic), None when it is not valid base64."""
    raw = raw.strip()
    if len(raw) > 16384:
        return None
    try:
        return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4)) if raw else b""
    except (binascii.Error, ValueError):
        return None


def sasl_plain(message: bytes | None) -> tuple[bytes | None, bytes | None]:
    """(authcid, password) of a SASL PLAIN message (RFC 4616: authzid NUL authcid NUL passwd)."""
    if message is None:
        return None, None
    parts = message.split(b"\0")
    if len(parts) != 3:
        return None, None
    return parts[1] or parts[0], parts[2]


class SaslExchange:
    """A SASL exchange read line by line (SMTP AUTH, IMAP AUTHENTICATE, POP3 AUTH): the mechanism,
    an optional initial response, then the client's responses to the server's challenges. It gathers
    the username and the reusable secret for the mechanisms that send one in the clear."""

    __slots__ = ("mechanism", "responses")

    def __init__(self, mechanism: bytes, initial: bytes | None) -> None:
        self.mechanism = mechanism.decode("latin-1").lower()[:40]
        self.responses: list[bytes] = [] if initial is None or initial == b"=" else [initial]

    def add(self, response: bytes) -> bool:
        """A client line in the exchange; False when the client cancelled it ("*")."""
        if response.strip() == b"*":
            return False
        if len(self.responses) < 8:
            self.responses.append(response)
        return True

    def identity(self) -> tuple[bytes | None, bytes | None]:
        """(username, secret) where the mechanism shows them."""
        decoded = [b64decode(r) for r in self.responses]
        if self.mechanism == "plain" and decoded:
            return sasl_plain(decoded[0])
        if self.mechanism == "login":
            user = decoded[0] if decoded else None
            return user, decoded[1] if len(decoded) > 1 else None
        if self.mechanism == "cram-md5" and decoded and decoded[0]:
            return decoded[0].rsplit(b" ", 1)[0], None
        if self.mechanism == "xoauth2" and decoded and decoded[0]:
            fields = dict(f.split(b"=", 1) for f in decoded[0].split(b"\x01") if b"=" in f)
            token = fields.get(b"auth", b"")
            return fields.get(b"user"), token.split(b" ", 1)[-1] if token else None
        return None, None
