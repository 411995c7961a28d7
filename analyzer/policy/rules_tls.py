"""Rules about the TLS / DTLS / QUIC handshake: versions and cipher suites.

Each rule reads the `sessions` facts (one row per TLS, DTLS or QUIC session). Cipher-suite
properties come from the dissector's table (`analyzer.dissect.tls.ciphersuites`: kx, enc, mac and
flags); the policy layer imports that table, never the other way round.

- **tls-legacy-version**: the session *negotiated* SSL 2.0, SSL 3.0, TLS 1.0, TLS 1.1 or DTLS 1.0.
  SSL 2.0 (RFC 6176, DROWN), SSL 3.0 (RFC 7568, POODLE) and TLS 1.0/1.1 (RFC 8996) MUST NOT be
  used; SEC09-BP02 names SSL v3.0 as an anti-pattern and asks for TLS 1.2 at least; NIST SP
  800-52r2 §3.1: TLS 1.0 "shall not", TLS 1.1 "should not" for government-only servers; PCI DSS 4.0
  Appendix A2 forbids SSL/early TLS as a security control. Option `versions`.
- **tls-client-legacy-only**: the client's highest offered version is below TLS 1.2. Even where the
  server accepted it, this client breaks as soon as the server enforces TLS 1.2 (as every AWS API
  endpoint does since February 2024). Option `versions` (the offered maxima that count as legacy).
- **tls-handshake-version-failure**: a handshake ended by a `protocol_version` alert (RFC 8446
  §6.2): the two ends share no version. Usually a legacy client meeting a modern server, or the
  reverse; either way the connection did not happen.
- **aws-endpoint-legacy-tls**: an AWS service endpoint (SNI under `amazonaws.com` /
  `amazonaws.com.cn`, or a server address in an AWS zone) reached with, or refused for, a version
  below TLS 1.2. AWS announced TLS 1.2 as the minimum for all API endpoints in 2022 (original date
  2023-06-28, then a gradual rollout to 2023-12-31); SEC09-BP02 says versions below 1.2 were
  deprecated for AWS APIs "as of February 2024" (the issue's "since 2024" follows that wording).
  FIPS endpoints required TLS 1.2 from 2021-03-31 (AWS-2020-001). Such a client is already
  broken, or is about to be where an endpoint has not yet enforced it. Option `name_suffixes`,
  `aws_zones` (whether a server address in an ``aws:`` zone counts).
- **tls-weak-cipher**: the negotiated suite uses NULL encryption, EXPORT strength, anonymous key
  exchange, RC4, single DES / DES40, 3DES or an MD5 MAC (RFC 9325 §4.1, RFC 7465, RFC 5246 App.
  A.5, SWEET32 for 3DES); with option `cbc` also CBC-mode suites (RFC 9325 §4.2: SHOULD NOT
  unless encrypt_then_mac, extension 22, was negotiated: such sessions are not flagged), with
  `non_aead` every non-AEAD suite. CBC is allowed by NIST SP 800-52r2 (which only prefers GCM/CCM),
  so only the strict and Mozilla-intermediate profiles turn those on.
- **tls-no-forward-secrecy**: the key exchange is not ephemeral (static RSA key transport, static
  DH/ECDH, plain PSK, KRB5): a later leak of the server's private key decrypts every recorded
  session (RFC 9325 §4.1, SEC09's "secure TLS protocols and cipher suites", NIST SP 800-52r2
  §3.3.1 "ephemeral over static"). With option `flag_dhe` finite-field DHE counts too (RFC 9325
  SHOULD NOT; Mozilla 5.8+ intermediate keeps only ECDHE). TLS 1.3 suites always have forward
  secrecy except a psk_ke resumption, which the suite does not show and this rule cannot see.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer.policy._rule import Rule, hits, text

if TYPE_CHECKING:
    import pandas as pd

    from analyzer.policy.facts import Facts

__all__ = ["TLS_RULES"]

LEGACY_VERSIONS = ["SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1", "DTLS 1.0"]

SEC09 = "AWS Well-Architected SEC09-BP02 (Enforce encryption in transit)"
NIST = "NIST SP 800-52 Rev. 2 §3.1, §3.3.1"
MOZ = "Mozilla Server Side TLS 6.0 (intermediate)"
PCI = "PCI DSS 4.0 req. 4.2.1 and Appendix A2"
RFC9325 = "RFC 9325 (BCP 195) §4.1"


@lru_cache(maxsize=1)
def _suite_table() -> pd.DataFrame:
    """The dissector's cipher-suite table indexed by name (one row per suite)."""
    from analyzer.dissect.tls.ciphersuites import as_frame

    return as_frame(include_sslv2=True).drop_duplicates("name").set_index("name")


def _suite_flags(sessions: pd.DataFrame) -> pd.DataFrame:
    """Suite attributes for each session's negotiated cipher (all false/null when unknown or absent)."""
    table = _suite_table()
    found = table.reindex(sessions["cipher"].astype("string").to_numpy())
    found.index = sessions.index
    return found


def _legacy_version(s: pd.DataFrame, opts: Mapping[str, Any]) -> pd.DataFrame:
    version = s["version"].astype("string")
    sslv2 = s["sslv2"].astype("boolean").fillna(False)
    version = version.mask(sslv2 & version.isna(), "SSL 2.0")
    mask = version.isin(list(opts["versions"])).fillna(False)
    evidence = "negotiated " + text(version) + " (" + text(s["protocol"]) + ")"
    return hits(s, mask, evidence)


def legacy_version(f: Facts, opts: Mapping[str, Any]) -> pd.DataFrame:
    return _legacy_version(f.sessions, opts)


def client_legacy_only(f: Facts, opts: Mapping[str, Any]) -> pd.DataFrame:
    s = f.sessions
    offered = s["client_max_version"].astype("string")
    mask = offered.isin(list(opts["versions"])).fillna(False)
    evidence = "client offers at most " + text(offered) + "; negotiated " + text(s["version"], "nothing")
    return hits(s, mask, evidence)


def handshake_version_failure(f: Facts, opts: Mapping[str, Any]) -> pd.DataFrame:
    s = f.sessions
    mask = (s["alert_description"].astype("string") == "protocol_version").fillna(False)
    evidence = (text(s["alert_by"], "one side") + " sent a " + text(s["alert_level"], "") + " protocol_version alert;"
                + " client offered " + text(s["client_supported_versions"].fillna(s["client_max_version"]))
                + " (SNI " + text(s["server_name"], "none") + ")")
    return hits(s, mask, evidence)


def aws_endpoint_legacy(f: Facts, opts: Mapping[str, Any]) -> pd.DataFrame:
    s = f.sessions
    name = s["server_name"].astype("string").str.lower().str.rstrip(".")
    suffixes = tuple(str(x).lower() for x in opts["name_suffixes"])
    by_name = name.str.endswith(suffixes).fillna(False) if suffixes else name.notna() & False
    by_zone = s["server_zone"].astype("string").str.startswith("aws:").fillna(False)
    aws = by_name | (by_zone if opts["aws_zones"] else False)
    legacy = list(opts["versions"])
    negotiated = s["version"].astype("string").isin(legacy).fillna(False)
    refused = (s["version"].isna() & s["client_max_version"].astype("string").isin(legacy).fillna(False))
    mask = aws & (negotiated | refused)
    what = ("negotiated " + text(s["version"])).where(
        negotiated, "handshake failed; client offers at most " + text(s["client_max_version"]))
    who = text(s["server_name"].fillna(s["server_zone"]).fillna(s["server_ip"]))
    evidence = who + ": " + what + "; AWS endpoints require TLS 1.2 or later"
    return hits(s, mask, evidence)


def weak_cipher(f: Facts, opts: Mapping[str, Any]) -> pd.DataFrame:
    from analyzer._pandas import pd

    s = f.sessions
    t = _suite_flags(s)

    def flag(col: str) -> pd.Series:
        return t[col].astype("boolean").fillna(False)

    classes = set(opts["classes"])
    reasons: list[tuple[str, pd.Series]] = [
        ("null", flag("null_cipher")), ("export", flag("export")), ("anon", flag("anonymous") & ~flag("null_cipher")),
        ("rc4", flag("rc4")), ("des", flag("des")), ("3des", flag("triple_des")),
        ("md5", (t["mac"].astype("string") == "MD5").fillna(False)),
    ]
    reasons = [(n, m) for n, m in reasons if n in classes]
    if opts["cbc"]:
        etm = s["server_extensions"].astype("string").fillna("").str.split(",").apply(lambda xs: "22" in xs)
        reasons.append(("cbc", flag("cbc") & ~etm.astype(bool)))
    if opts["non_aead"]:
        reasons.append(("non-aead", ~flag("aead") & flag("known") & ~flag("scsv") & ~flag("grease")))
    if not reasons:
        return hits(s, np.zeros(len(s), dtype=bool), "")
    mask = np.zeros(len(s), dtype=bool)
    why = pd.Series("", index=s.index, dtype="string")
    for name, m in reasons:
        mv = m.to_numpy(dtype=bool)
        mask |= mv
        why = why.where(~mv, why + np.where(why.str.len().to_numpy() > 0, ",", "") + name)
    evidence = "cipher " + text(s["cipher"]) + ": " + why
    return hits(s, mask, evidence)


def no_forward_secrecy(f: Facts, opts: Mapping[str, Any]) -> pd.DataFrame:
    s = f.sessions
    t = _suite_flags(s)
    known = t["known"].astype("boolean").fillna(False) & ~t["scsv"].astype("boolean").fillna(False)
    fs = t["forward_secrecy"].astype("boolean").fillna(False)
    kx = t["kx"].astype("string")
    mask = known & ~fs & ~t["tls13"].astype("boolean").fillna(False) & ~t["grease"].astype("boolean").fillna(False)
    if opts["flag_dhe"]:
        mask = mask | (known & kx.isin(["DHE", "DHE_PSK"]).fillna(False))
    evidence = "cipher " + text(s["cipher"]) + ": key exchange " + text(kx)
    return hits(s, mask, evidence)


_VERSIONS_NOTE = "versions below TLS 1.2, as the dissector names them"

TLS_RULES = (
    Rule(
        id="tls-legacy-version",
        title="Legacy SSL/TLS version negotiated",
        severity="high",
        rationale="SSL 2.0/3.0 and TLS 1.0/1.1 are broken or deprecated (RFC 6176, 7568, 8996); "
        "SEC09-BP02 requires TLS 1.2 or later.",
        references=(SEC09, NIST, MOZ, PCI, "RFC 8996", "RFC 7568", "RFC 6176"),
        predicate=legacy_version,
        options={"versions": LEGACY_VERSIONS},
    ),
    Rule(
        id="tls-client-legacy-only",
        title="Client cannot offer TLS 1.2",
        severity="medium",
        rationale="A client whose highest offered version is below TLS 1.2 breaks as soon as the "
        "server enforces TLS 1.2, and is downgraded wherever it still succeeds.",
        references=(SEC09, NIST, "RFC 8996"),
        predicate=client_legacy_only,
        options={"versions": LEGACY_VERSIONS},
    ),
    Rule(
        id="tls-handshake-version-failure",
        title="Handshake refused for its protocol version",
        severity="low",
        rationale="A protocol_version alert means the two ends share no acceptable version: a "
        "legacy client or server is still trying, and this connection failed.",
        references=(SEC09, "RFC 8446 §6.2", "RFC 5246 §7.2.2"),
        predicate=handshake_version_failure,
    ),
    Rule(
        id="aws-endpoint-legacy-tls",
        title="AWS endpoint reached with TLS below 1.2",
        severity="high",
        rationale="AWS API endpoints require TLS 1.2 (deprecated below 1.2 as of February 2024 per "
        "SEC09-BP02; FIPS endpoints since 2021-03-31): this client is broken or about to be.",
        references=(SEC09, "AWS Security Blog 2022-06-28: TLS 1.2 to become the minimum for all AWS API endpoints",
                    "AWS Security Bulletin AWS-2020-001"),
        predicate=aws_endpoint_legacy,
        options={"versions": LEGACY_VERSIONS, "name_suffixes": [".amazonaws.com", ".amazonaws.com.cn"],
                 "aws_zones": True},
    ),
    Rule(
        id="tls-weak-cipher",
        title="Weak cipher suite negotiated",
        severity="high",
        rationale="NULL, EXPORT, anonymous, RC4, DES, 3DES and MD5-MAC suites give no or too little "
        "protection (RFC 9325 §4.1, RFC 7465, SWEET32); SEC09-BP02 lists RC4 as an anti-pattern.",
        references=(SEC09, RFC9325, "RFC 7465", "RFC 9325 §4.2 (CBC)", NIST, MOZ,
                    "PCI DSS 4.0 glossary: strong cryptography"),
        predicate=weak_cipher,
        options={"classes": ["null", "export", "anon", "rc4", "des", "3des", "md5"], "cbc": False,
                 "non_aead": False},
    ),
    Rule(
        id="tls-no-forward-secrecy",
        title="Key exchange without forward secrecy",
        severity="medium",
        rationale="With static RSA or static (EC)DH key exchange, whoever later obtains the server's "
        "private key can decrypt every recorded session.",
        references=(RFC9325, "RFC 9325 §4.2.1", NIST, MOZ, SEC09),
        predicate=no_forward_secrecy,
        options={"flag_dhe": False},
    ),
)
