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
- **aws-endpoint-legacy-tls**: an AWS service endpoint reached with, or refused for, a version
  below TLS 1.2. An AWS endpoint is an SNI under `amazonaws.com` / `amazonaws.com.cn` (option
  `name_suffixes`), or, for a session without SNI, a server address in an AWS zone of one of the
  services in `zone_services` (default AMAZON, S3, DYNAMODB: the ranges of AWS's own endpoints;
  not EC2, CLOUDFRONT, GLOBALACCELERATOR and the like, whose addresses serve customers' own
  endpoints, which the TLS 1.2 minimum did not cover). AWS announced TLS 1.2 as the minimum for
  all API endpoints in 2022 (original date 2023-06-28, then a gradual rollout to 2023-12-31);
  SEC09-BP02 says versions below 1.2 were deprecated for AWS APIs "as of February 2024" (the
  issue's "since 2024" follows that wording). FIPS endpoints required TLS 1.2 from 2021-03-31
  (AWS-2020-001). Such a client is already broken, or is about to be where an endpoint has not
  yet enforced it.
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
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from analyzer.policy import _compute as pc
from analyzer.policy._cols import (
    STRING,
    Hits,
    eq,
    fill,
    found,
    from_codes,
    ints,
    isin,
    join,
    lower,
    notnull,
    only_strings,
    pick,
    strings,
    take,
    text,
    true,
    where,
)
from analyzer.policy._rule import Rule

if TYPE_CHECKING:
    from analyzer.policy.facts import Facts

__all__ = ["TLS_RULES"]

LEGACY_VERSIONS = ["SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1", "DTLS 1.0"]

SEC09 = "AWS Well-Architected SEC09-BP02 (Enforce encryption in transit)"
NIST = "NIST SP 800-52 Rev. 2 §3.1, §3.3.1"
MOZ = "Mozilla Server Side TLS 6.0 (intermediate)"
PCI = "PCI DSS 4.0 req. 4.2.1 and Appendix A2"
RFC9325 = "RFC 9325 (BCP 195) §4.1"

# the boolean attributes of a suite the rules read
_FLAGS = ("null_cipher", "export", "anonymous", "rc4", "des", "triple_des", "cbc", "aead", "known", "scsv",
          "grease", "forward_secrecy", "tls13")


@dataclass(frozen=True)
class _Suites:
    """The dissector's cipher-suite table (constants), one row per distinct suite name (the first
    of a name: the 2-byte suites before the SSLv2 kinds), plus a last row for an unknown or absent
    cipher: its flags false, its strings null."""

    names: pa.Array  # large_string, without the last row
    flags: dict[str, np.ndarray]  # attribute -> bool per row (last row false)
    kx: list[str | None]  # per row (last row None)
    mac: list[str | None]


@lru_cache(maxsize=1)
def _suite_table() -> _Suites:
    from analyzer.dissect.tls.ciphersuites import CipherSuite, all_sslv2, all_suites

    first: dict[str, CipherSuite] = {}
    for s in (*all_suites(), *all_sslv2()):
        first.setdefault(s.name, s)
    suites = list(first.values())
    flags = {c: np.array([bool(getattr(s, c)) for s in suites] + [False], dtype=bool) for c in _FLAGS}
    return _Suites(strings([s.name for s in suites]), flags, [s.kx for s in suites] + [None],
                   [s.mac for s in suites] + [None])


def _suite_rows(f: Facts) -> np.ndarray:
    """Per session, the row of `_suite_table()` of its negotiated cipher (the last row for an
    unknown or absent one), made once per evaluation: the rules read the attributes of the table's
    rows and spread them by position (a hash lookup per session, in Arrow)."""
    if "suites" not in f.memo:
        table = _suite_table()
        at = pc.index_in(pc.cast(f.session_cols["cipher"], STRING), value_set=table.names)
        f.memo["suites"] = ints(at, len(table.names))
    return f.memo["suites"]


def _suite_flag(f: Facts, col: str) -> np.ndarray:
    """A boolean suite attribute per session."""
    return _suite_table().flags[col][_suite_rows(f)]


def legacy_version(f: Facts, opts: Mapping[str, Any]) -> Hits:
    s = f.session_cols
    version = s["version"]
    sslv2 = true(s["sslv2"]) & ~notnull(version)
    if sslv2.any():
        version = where(sslv2, "SSL 2.0", version)
    m = isin(version, only_strings(opts["versions"]))
    x = pick({**s, "_version": version}, m, "_version", "protocol")
    return found(x, join("negotiated ", text(x["_version"]), " (", text(x["protocol"]), ")"))


def client_legacy_only(f: Facts, opts: Mapping[str, Any]) -> Hits:
    s = f.session_cols
    m = isin(s["client_max_version"], only_strings(opts["versions"]))
    x = pick(s, m, "client_max_version", "version")
    return found(x, join("client offers at most ", text(x["client_max_version"]), "; negotiated ",
                         text(x["version"], "nothing")))


def handshake_version_failure(f: Facts, opts: Mapping[str, Any]) -> Hits:
    s = f.session_cols
    m = eq(s["alert_description"], "protocol_version")
    x = pick(s, m, "alert_by", "alert_level", "client_supported_versions", "client_max_version", "server_name")
    offered = pc.coalesce(pc.cast(x["client_supported_versions"], STRING), pc.cast(x["client_max_version"], STRING))
    return found(x, join(text(x["alert_by"], "one side"), " sent a ", text(x["alert_level"], ""),
                         " protocol_version alert; client offered ", text(offered), " (SNI ",
                         text(x["server_name"], "none"), ")"))


def aws_endpoint_legacy(f: Facts, opts: Mapping[str, Any]) -> Hits:
    s = f.session_cols
    legacy = only_strings(opts["versions"])
    negotiated = isin(s["version"], legacy)
    refused = ~notnull(s["version"]) & isin(s["client_max_version"], legacy)
    # the name and zone string work only for the sessions below TLS 1.2 (few), not for every session
    old = np.flatnonzero(negotiated | refused)
    aws = np.zeros(len(negotiated), dtype=bool)
    o = take(s, old, ["server_name", "server_zone"])
    suffixes = tuple(str(x).lower() for x in opts["name_suffixes"])
    if suffixes:
        name = pc.utf8_rtrim(lower(pc.cast(o["server_name"], STRING)), characters=".")
        ends = np.zeros(len(old), dtype=bool)
        for suffix in suffixes:
            ends |= true(pc.ends_with(name, suffix))
        aws[old] = ends
    services = [str(v) for v in opts["zone_services"]]
    if services:
        zone = pc.cast(o["server_zone"], STRING)
        # "aws:SERVICE:...": the second ":"-separated part (nothing after "aws:" but ":" gives "")
        service = pc.list_element(pc.split_pattern(pc.utf8_slice_codeunits(zone, 4), ":", max_splits=1),
                                  pa.scalar(0, pa.int32()))
        in_zone = true(pc.starts_with(zone, "aws:")) & isin(service, services)
        aws[old] |= in_zone & ~notnull(o["server_name"])  # without SNI, the address decides
    m = aws & (negotiated | refused)
    x = pick(s, m, "version", "client_max_version", "server_name", "server_zone", "server_ip")
    what = where(negotiated[m], join("negotiated ", text(x["version"])),
                 join("handshake failed; client offers at most ", text(x["client_max_version"])))
    who = text(pc.coalesce(*(pc.cast(x[c], STRING) for c in ("server_name", "server_zone", "server_ip"))))
    return found(x, join(who, ": ", what, "; AWS endpoints require TLS 1.2 or later"))


def weak_cipher(f: Facts, opts: Mapping[str, Any]) -> Hits:
    s = f.session_cols
    table = _suite_table()
    rows = _suite_rows(f)

    def flag(col: str) -> np.ndarray:
        return _suite_flag(f, col)

    classes = set(opts["classes"])
    md5 = np.array([mac == "MD5" for mac in table.mac], dtype=bool)
    reasons: list[tuple[str, np.ndarray]] = [
        ("null", flag("null_cipher")), ("export", flag("export")), ("anon", flag("anonymous") & ~flag("null_cipher")),
        ("rc4", flag("rc4")), ("des", flag("des")), ("3des", flag("triple_des")), ("md5", md5[rows]),
    ]
    reasons = [(n, r) for n, r in reasons if n in classes]
    if opts["cbc"]:
        cbc = flag("cbc")
        etm = np.zeros(len(cbc), dtype=bool)
        if cbc.any():  # encrypt_then_mac (extension 22) negotiated: CBC is not the problem (RFC 9325 §4.2)
            # extension 22 among the comma-separated codes, compared whole
            exts = pc.cast(take(s, cbc, ["server_extensions"])["server_extensions"], STRING)
            etm[cbc] = true(pc.match_substring(join(",", fill(exts, ""), ","), ",22,"))
        reasons.append(("cbc", cbc & ~etm))
    if opts["non_aead"]:
        reasons.append(("non-aead", ~flag("aead") & flag("known") & ~flag("scsv") & ~flag("grease")))
    m = np.zeros(len(rows), dtype=bool)
    for _, r in reasons:
        m |= r
    x = pick(s, m, "cipher")
    # per flagged session, its reasons in the order of `reasons`, comma-separated: one text per
    # distinct combination
    bits = np.zeros(int(m.sum()), dtype=np.int64)
    for i, (_, r) in enumerate(reasons):
        bits |= r[m].astype(np.int64) << i
    combos, codes = np.unique(bits, return_inverse=True)
    why = [",".join(n for i, (n, _) in enumerate(reasons) if int(c) >> i & 1) for c in combos]
    return found(x, join("cipher ", text(x["cipher"]), ": ", from_codes(why, codes.reshape(-1))))


def no_forward_secrecy(f: Facts, opts: Mapping[str, Any]) -> Hits:
    s = f.session_cols
    table = _suite_table()
    rows = _suite_rows(f)
    known = _suite_flag(f, "known") & ~_suite_flag(f, "scsv")
    fs = _suite_flag(f, "forward_secrecy")
    m = known & ~fs & ~_suite_flag(f, "tls13") & ~_suite_flag(f, "grease")
    if opts["flag_dhe"]:
        dhe = np.array([kx in ("DHE", "DHE_PSK") for kx in table.kx], dtype=bool)
        m |= known & dhe[rows]
    x = pick(s, m, "cipher")
    return found(x, join("cipher ", text(x["cipher"]), ": key exchange ", text(from_codes(table.kx, rows[m]))))


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
                 "zone_services": ["AMAZON", "S3", "DYNAMODB"]},
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
