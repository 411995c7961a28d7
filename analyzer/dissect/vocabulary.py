"""The words of a flow's encryption state: `protection` and `undecided_reason` (see README, "Flow
encryption state"). `app_protocol` values are declared by each dissector (`app_protocols`) and
gathered by `analyzer.dissect.app_protocols()`; these two vocabularies are the engine's.

- `encrypted`: True or False for every flow that carried payload in a recognised protocol; null only
  where nothing could be decided, and then `undecided_reason` says why.
- `protection`: the mechanism protecting (or meant to protect) the flow. It names the mechanism even
  when the handshake did not complete (`encrypted` then says whether it took effect): an SMTP
  session that sent STARTTLS is "starttls" whether or not the TLS handshake is in the capture.
"""

from __future__ import annotations

__all__ = ["PROTECTIONS", "UNDECIDED_REASONS", "protection_of_tls_family"]

PROTECTIONS: dict[str, str] = {
    "tls": "TLS from the first byte (or after a proxy exchange: SOCKS, HTTP CONNECT)",
    "dtls": "DTLS",
    "quic": "QUIC (TLS 1.3 inside QUIC; Google QUIC's own crypto)",
    "ssh": "SSH transport encryption",
    "starttls": "TLS after a cleartext upgrade on the same flow: SMTP/IMAP/POP3/FTP/LDAP/XMPP/NNTP STARTTLS, "
                "PostgreSQL SSLRequest, MySQL CLIENT_SSL",
    "smb3": "SMB 3 encryption (transform header)",
    "ipsec": "IPsec: IKE-negotiated ESP (here: IKE and ESP in UDP)",
    "wireguard": "WireGuard",
    "openvpn": "OpenVPN",
    "kerberos": "Kerberos-protected session (wrap tokens)",
    "gssapi": "GSS-API security layer (FTP AUTH GSSAPI, SASL GSSAPI with confidentiality)",
    "sasl": "a SASL security layer negotiated in the protocol",
    "snmpv3": "SNMPv3 USM privacy (encrypted PDUs)",
    "rdp": "RDP standard security (RC4, the server's own key exchange)",
    "nts": "Network Time Security (NTS-KE over TLS, authenticated NTP)",
    "srtp": "SRTP media keyed by DTLS (WebRTC)",
    "none": "no protection: the application protocol in the clear",
}

UNDECIDED_REASONS: dict[str, str] = {
    "no_payload": "the flow carried no payload in either direction (a handshake only, a scan, a refused connection)",
    "unknown_protocol": "payload that no dissector recognised (payload_shape says printable or binary)",
    "not_dissected": "dissection was off for this run (--no-dissect)",
    "handshake_incomplete": "the protocol was recognised but its handshake was not seen to the point that decides",
    "upgrade_not_seen": "the server accepted an upgrade (STARTTLS, SSLRequest) and nothing followed in the capture",
    "tunnel": "an HTTP CONNECT or proxy tunnel carrying something other than TLS",
    "truncated": "the capture lost bytes of the flow (snap length, the mirror's PacketLength, missing segments) "
                 "where they would decide",
    "mid_stream": "the capture starts in the middle of the session and the framing does not prove encryption",
    "one_sided": "only one direction was captured and it does not prove encryption",
    "dissector_error": "the dissector failed on this flow (an anomalies row says how)",
    "shed": "intransit listen was behind (its receive queue filling) and counted this flow without dissecting "
            "it, to keep receiving (the window's `shed` counter; `listen --no-shed` never sheds)",
    "undecided": "the dissector recognised the protocol and did not say why it could not decide",
}

_TLS_FAMILY = {"tls": "tls", "dtls": "dtls", "quic": "quic", "gquic": "quic"}


def protection_of_tls_family(app_protocol: str) -> str:
    """The protection a TLS-family dissector names for its own flows."""
    return _TLS_FAMILY.get(app_protocol, "tls")
