"""Rules about whether a flow is encrypted at all, by direction.

These rules read the flows' `encrypted` and `app_protocol` facts. A flow whose encryption the
dissectors could not decide (no payload, an unknown protocol, a one-sided or mid-stream view:
`encrypted` null) is **not judged**: it is never called cleartext. Only `encrypted == False`
with an identified application protocol counts as cleartext. Until the plaintext dissectors (HTTP,
SMTP, FTP, ...) land, plaintext flows have `app_protocol` and `encrypted` null, so today these
rules mostly find nothing on real captures; they start working when those facts appear.

A handshake of an encrypting protocol that failed (`app_protocol` tls/dtls/quic/ssh with
`encrypted == False`) is not cleartext: no application data was exchanged in the clear, and the
TLS rules judge why it failed.

- **cleartext-egress**: a cleartext application protocol crossing the VPC boundary (direction
  `egress`, and by default `ingress` too: the answer to an inbound request leaves the VPC as
  well; SEC09-BP02: only encrypted protocols for data leaving the VPC, "plain HTTP to or from
  public resources" is an anti-pattern; PCI DSS 4.0 4.2.1: strong cryptography over open, public
  networks). Option `directions`. Needs zones: with direction `unknown` nothing is egress.
- **cleartext-internal**: cleartext inside one internal zone or between internal zones
  (`internal`, `cross_zone`): SEC09-BP02 asks internal traffic to be encrypted "according to your
  requirements", so the default severity is lower.
- **cleartext-credentials**: a credential (HTTP Basic, FTP PASS, SMTP/IMAP/POP3 AUTH PLAIN/LOGIN,
  ...) sent in the clear, in any direction. Reads the flows column `credentials` (the kind of
  credential seen, null when none), which the plaintext dissectors will provide; without that
  column the rule finds nothing.
- **unknown-egress**: payload leaving the VPC (direction `egress`) whose protocol nobody
  identified (`app_protocol` null, payload bytes > 0): not judged, but worth knowing (info).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from analyzer.policy._cols import (
    Cols,
    Hits,
    false,
    found,
    ints,
    isin,
    join,
    lower,
    no_hits,
    notnull,
    only_strings,
    pick,
    text,
    true,
)
from analyzer.policy._rule import Rule

if TYPE_CHECKING:

    from analyzer.policy.facts import Facts

__all__ = ["ENCRYPTING_PROTOCOLS", "TRAFFIC_RULES", "cleartext_mask", "cleartext_of"]

SEC09 = "AWS Well-Architected SEC09-BP02 (Enforce encryption in transit)"
PCI = "PCI DSS 4.0 req. 4.2.1"

# protocols whose failed handshake is not cleartext application data
ENCRYPTING_PROTOCOLS = ["tls", "dtls", "quic", "ssh", "ipsec", "wireguard", "openvpn"]


def cleartext_of(flows: Cols) -> np.ndarray:
    """True where the flow is known to be unencrypted and its protocol is a cleartext one."""
    proto = flows["app_protocol"]
    return false(flows["encrypted"]) & notnull(proto) & ~isin(lower(proto), ENCRYPTING_PROTOCOLS)


def cleartext_mask(f: Facts) -> np.ndarray:
    """`cleartext_of(f.flow_cols)`, made once per evaluation (two rules and the destinations read it)."""
    if "cleartext" not in f.memo:
        f.memo["cleartext"] = cleartext_of(f.flow_cols)
    return f.memo["cleartext"]


def cleartext_by_direction(f: Facts, opts: Mapping[str, Any]) -> Hits:
    fl = f.flow_cols
    m = cleartext_mask(f) & isin(fl["direction"], only_strings(opts["directions"]))
    x = pick(fl, m, "app_protocol", "direction", "client_zone", "server_zone", "server_port")
    return found(x, join(text(x["app_protocol"]), " in the clear, ", text(x["direction"]), " ", text(x["client_zone"]),
                         " -> ", text(x["server_zone"]), " port ", text(x["server_port"])))


def cleartext_credentials(f: Facts, opts: Mapping[str, Any]) -> Hits:
    fl = f.flow_cols
    if "credentials" not in fl:
        return no_hits()
    cred = fl["credentials"]
    m = notnull(cred) & ~isin(cred, [""]) & ~true(fl["encrypted"])
    x = pick(fl, m, "credentials", "app_protocol", "direction", "server_port")
    return found(x, join(text(x["credentials"]), " credential in the clear over ", text(x["app_protocol"]), ", ",
                         text(x["direction"]), " port ", text(x["server_port"])))


def unknown_egress(f: Facts, opts: Mapping[str, Any]) -> Hits:
    fl = f.flow_cols
    payload = ints(fl["payload_bytes_to_server"]) + ints(fl["payload_bytes_to_client"])
    m = isin(fl["direction"], only_strings(opts["directions"])) & ~notnull(fl["app_protocol"]) & (payload > 0)
    x = pick(fl, m, "server_zone", "server_port")
    return found(x, join(text(pa.array(payload[m])), " payload bytes, protocol not identified, to ",
                         text(x["server_zone"]), " port ", text(x["server_port"])))


TRAFFIC_RULES = (
    Rule(
        id="cleartext-egress",
        title="Cleartext protocol crossing the VPC boundary",
        severity="high",
        rationale="SEC09-BP02: use only encrypted protocols for data leaving the VPC; plain HTTP to "
        "or from public resources is an anti-pattern.",
        references=(SEC09, PCI),
        predicate=cleartext_by_direction,
        options={"directions": ["egress", "ingress"]},
        reads="flows",
        needs="app_protocol/encrypted of plaintext protocols (plaintext dissectors)",
    ),
    Rule(
        id="cleartext-internal",
        title="Cleartext protocol inside or between internal zones",
        severity="low",
        rationale="SEC09-BP02: internal traffic is encrypted according to your requirements; "
        "east-west cleartext is exposed to anyone who can mirror or reach the path.",
        references=(SEC09,),
        predicate=cleartext_by_direction,
        options={"directions": ["internal", "cross_zone"]},
        reads="flows",
        needs="app_protocol/encrypted of plaintext protocols (plaintext dissectors)",
    ),
    Rule(
        id="cleartext-credentials",
        title="Credentials sent in the clear",
        severity="critical",
        rationale="A password or token sent unencrypted is readable by anyone on the path, in any "
        "direction, and stays valid after the capture.",
        references=(SEC09, PCI, "RFC 8314"),
        predicate=cleartext_credentials,
        reads="flows",
        needs="flows.credentials (plaintext dissectors)",
    ),
    Rule(
        id="unknown-egress",
        title="Unidentified payload leaving the VPC",
        severity="info",
        rationale="Traffic leaving the VPC whose protocol nobody identified cannot be judged; it is "
        "listed so that it is not mistaken for a clean bill.",
        references=(SEC09,),
        predicate=unknown_egress,
        options={"directions": ["egress"]},
        reads="flows",
    ),
)
