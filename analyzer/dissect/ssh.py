"""SSH: the version exchange and the cleartext key exchange (RFC 4253), facts only.

What is read, per direction, from the start of the stream:
- Section 4.2: the identification line `SSH-protoversion-softwareversion [SP comments] CR LF` (at most
  255 bytes with CR LF; LF alone is accepted as OpenSSH does). A server may send other lines
  first; up to 16 such lines are skipped. The line is kept as sent, cut to 255 characters.
- Section 6: binary packets (uint32 packet_length, byte padding_length, payload, padding) until
  SSH_MSG_NEWKEYS (21): after it that direction is encrypted and nothing more is read. From
  SSH_MSG_KEXINIT (20, section 7.1) the name-lists give the negotiated algorithms: for each
  category, the first algorithm of the client's list that the server also lists.

Facts (flow columns): the banners, software and protocol versions of both sides, the negotiated key
exchange, encryption (client to server) and MAC, and `encrypted`:
- True when both sides sent SSH_MSG_NEWKEYS, with a negotiated encryption algorithm other than "none";
- False when the negotiated encryption algorithm is "none" (RFC 4253 section 6.3 allows it; HPN-SSH
  offers it) and the keys were taken into use;
- True also from a one-sided view (the other direction not captured) whose side sent NEWKEYS after
  a KEXINIT offering no "none" encryption: the negotiated cipher is one of its list;
- None (undecided) otherwise: the key exchange not seen to completion, or SSH 1.x, whose binary
  protocol is not read here (the protocol version says it).

Modelled on Zeek's SSH analyzer (`base/protocols/ssh/main.zeek`: client/server banners,
`version`, negotiated `cipher_alg`/`mac_alg`/`kex_alg` from both KEXINITs) and dpkt's one-module-per-
protocol layout. Wire strings are hostile: they are kept as data (decoded as Latin-1, so every byte
survives), bounded in length, and never interpreted.
"""

from __future__ import annotations

import struct

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload

__all__ = ["SSHDissector", "parse_identification", "parse_kexinit"]

MAX_LINE = 255  # RFC 4253 4.2: the identification line with CR LF
MAX_PRE_LINES = 16  # other lines a server may send before its identification
MAX_PACKET = 256 * 1024  # RFC 4253 6.1 requires 35000; OpenSSH accepts up to 256 KiB
MAX_PACKETS = 64  # cleartext packets walked per direction before giving up
MAX_NAME_LIST = 4096  # characters of an algorithm name-list kept for negotiation
MSG_KEXINIT, MSG_NEWKEYS = 20, 21
_U32 = struct.Struct(">I")

COLUMNS: tuple[Column, ...] = (
    Column("ssh_protocol", "string", "SSH protocol version in use: 2.0, or 1.x (1.99 on both sides is 2.0)"),
    Column("ssh_client_software", "string", "the client's softwareversion from its identification line"),
    Column("ssh_server_software", "string", "the server's softwareversion from its identification line"),
    Column("ssh_client_banner", "string", "the client's identification line as sent (at most 255 characters)"),
    Column("ssh_server_banner", "string", "the server's identification line as sent (at most 255 characters)"),
    Column("ssh_kex", "string", "negotiated key exchange algorithm"),
    Column("ssh_cipher", "string", "negotiated encryption algorithm, client to server"),
    Column("ssh_mac", "string", "negotiated MAC algorithm, client to server (none with an AEAD cipher)"),
)


def parse_identification(data: bytes) -> tuple[str, str, str, int] | None:
    """(line, protoversion, softwareversion, offset after the line) of the first identification
    line in `data`, skipping other lines before it; None when there is none (yet)."""
    pos = 0
    for _ in range(MAX_PRE_LINES + 1):
        end = data.find(b"\n", pos, pos + MAX_LINE + 1)
        if end < 0:
            return None
        raw = data[pos:end].rstrip(b"\r")
        if raw.startswith(b"SSH-"):
            line = raw.decode("latin-1")
            ident = line.split(" ", 1)[0]
            parts = ident.split("-", 2)
            if len(parts) < 3 or not parts[1]:
                return None
            return line[:MAX_LINE], parts[1], parts[2], end + 1
        pos = end + 1
    return None


def _name_lists(payload: bytes, count: int, pos: int) -> list[list[str]] | None:
    lists = []
    for _ in range(count):
        if pos + 4 > len(payload):
            return None
        (n,) = _U32.unpack_from(payload, pos)
        pos += 4
        if n > len(payload) - pos:
            return None
        text = payload[pos:pos + min(n, MAX_NAME_LIST)].decode("latin-1")
        lists.append([name for name in text.split(",") if name])
        pos += n
    return lists


def parse_kexinit(payload: bytes) -> list[list[str]] | None:
    """The ten name-lists of an SSH_MSG_KEXINIT payload (message byte, 16-byte cookie, then
    kex, host key, enc c2s, enc s2c, mac c2s, mac s2c, compression c2s, s2c, languages c2s, s2c);
    None when malformed."""
    if len(payload) < 17 or payload[0] != MSG_KEXINIT:
        return None
    return _name_lists(payload, 10, 17)


class _Side:
    """What one direction showed: its identification and the cleartext packets that follow."""

    __slots__ = ("ident", "kexinit", "newkeys", "problem")

    def __init__(self) -> None:
        self.ident: tuple[str, str, str, int] | None = None
        self.kexinit: list[list[str]] | None = None
        self.newkeys = False
        self.problem: tuple[str, str, int] | None = None


def _read_side(data: bytes) -> _Side:
    side = _Side()
    side.ident = parse_identification(data)
    if side.ident is None or (not side.ident[1].startswith("2") and side.ident[1] != "1.99"):
        return side  # no identification, or SSH 1.x: its binary protocol is not read
    pos = side.ident[3]
    for _ in range(MAX_PACKETS):
        if pos + 5 > len(data):
            return side
        (length,) = _U32.unpack_from(data, pos)
        padding = data[pos + 4]
        if length < 5 or length > MAX_PACKET or padding >= length:  # RFC 4253 6: padding >= 4, < length
            side.problem = ("ssh_packet_invalid", f"packet length {length}, padding {padding}", pos)
            return side
        if pos + 4 + length > len(data):
            return side  # the rest is not in the prefix
        payload = data[pos + 5:pos + 4 + length - padding]
        if payload:
            if payload[0] == MSG_KEXINIT and side.kexinit is None:
                side.kexinit = parse_kexinit(payload)
                if side.kexinit is None:
                    side.problem = ("ssh_kexinit_malformed", "name-lists overrun the packet", pos)
            elif payload[0] == MSG_NEWKEYS:
                side.newkeys = True
                return side
        pos += 4 + length
    return side


def _one_side_encrypts(side: _Side, other: bytes) -> bool:
    """Only this side was captured (`other`: the other direction's bytes, empty), and it took new
    keys (NEWKEYS) after a KEXINIT whose encryption lists (both directions, RFC 4253 7.1) do not
    offer "none": whatever was negotiated, what it sends after NEWKEYS is encrypted."""
    if other or not side.newkeys or side.kexinit is None or len(side.kexinit) < 4:
        return False
    return "none" not in side.kexinit[2] and "none" not in side.kexinit[3]


def _negotiated(client: list[str], server: list[str]) -> str | None:
    """RFC 4253 7.1: the first algorithm on the client's list that is also on the server's."""
    offered = set(server)
    return next((name for name in client if name in offered), None)


def _protocol(client: str | None, server: str | None) -> str | None:
    versions = [v for v in (client, server) if v is not None]
    if not versions:
        return None
    if all(v in ("2.0", "1.99") for v in versions):
        return "2.0"
    return next((v for v in versions if v != "1.99"), versions[0])


class SSHDissector:
    """SSH over TCP, found by content (an identification line) on any port."""

    name = "ssh"
    app_protocols = ("ssh",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({22, 2222})
    columns = COLUMNS
    frames = ()

    def for_run(self, context: DissectContext) -> SSHDissector:
        return self

    def probe(self, flow: FlowPayload) -> bool:
        """An identification line starts either direction (servers speak first)."""
        return flow.to_client.data.startswith(b"SSH-") or flow.to_server.data.startswith(b"SSH-")

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        client = _read_side(flow.to_server.data)
        server = _read_side(flow.to_client.data)
        for who, side, prefix in (("client", client, flow.to_server), ("server", server, flow.to_client)):
            if side.problem is not None:
                facts.anomaly(side.problem[0], f"{who}: {side.problem[1]}", side.problem[2])
            elif side.ident is None and prefix.data and prefix.start_known:
                facts.anomaly("ssh_no_identification", f"{who}: no SSH identification line in the first bytes", 0)
        cv = client.ident[1] if client.ident else None
        sv = server.ident[1] if server.ident else None
        out: dict[str, object] = {"app_protocol": "ssh", "ssh_protocol": _protocol(cv, sv)}
        if client.ident:
            out["ssh_client_banner"], out["ssh_client_software"] = client.ident[0], client.ident[2]
        if server.ident:
            out["ssh_server_banner"], out["ssh_server_software"] = server.ident[0], server.ident[2]
        cipher = None
        if client.kexinit and server.kexinit:
            c, s = client.kexinit, server.kexinit
            out["ssh_kex"] = _negotiated(c[0], s[0])
            cipher = out["ssh_cipher"] = _negotiated(c[2], s[2])
            aead = cipher is not None and (cipher.startswith("chacha20-poly1305") or "gcm" in cipher)
            out["ssh_mac"] = "none" if aead else _negotiated(c[4], s[4])
        if client.newkeys and server.newkeys and cipher is not None:
            out["encrypted"] = cipher != "none"
            out["protection"] = "ssh" if cipher != "none" else "none"
        elif _one_side_encrypts(client, flow.to_client.data) or _one_side_encrypts(server, flow.to_server.data):
            # a one-sided view: the negotiated cipher is one of this side's, none of which is "none"
            out["encrypted"], out["protection"] = True, "ssh"
        else:
            out["protection"] = "ssh"
            out["undecided_reason"] = "handshake_incomplete"
        facts.flow.update({k: v for k, v in out.items() if v is not None})
        return facts


DISSECTOR = register(SSHDissector())
