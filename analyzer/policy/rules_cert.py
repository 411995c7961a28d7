"""Rules about the server's certificate (the leaf the server sent), judged when the session was seen.

A passive observer sees the certificate only in TLS 1.2-and-earlier handshakes (and DTLS 1.2): in
TLS 1.3 and QUIC the Certificate message is encrypted (RFC 8446 §1.2), so these rules find nothing
there; such sessions are simply not judged on their certificate. Every time comparison is made at
the session's own timestamp (`seen`), never at the time of the run.

The rules look at the leaf only: the chain's CA certificates are the issuer's business and their
self-signatures are by design; a leaf signed by a weak CA key is not detected here (the chain is in
`tls.cert_chain` for a future `cert-chain-*` rule).

- **cert-expired**: `notAfter` is before the session (SEC09-BP02 anti-pattern: "certificates not
  monitored or replaced before expiry"; PCI DSS 4.0 4.2.1: certificates confirmed valid and not
  expired).
- **cert-not-yet-valid**: `notBefore` is after the session (a wrong clock, or a certificate deployed
  too early; clients reject it either way).
- **cert-expiring**: still valid, but expires within `runway_days` (default 30) of the session.
- **cert-self-signed**: the leaf is self-signed (subject = issuer and its own key verifies it):
  nothing vouches for the server (SEC09-BP02 anti-pattern "self-signed certificates for TLS";
  PCI DSS 4.0 4.2.1.d "certificates that cannot be verified as trusted are rejected").
- **cert-weak-key**: RSA/DSA below `min_rsa_bits` (2048) or EC below `min_ec_bits` (256): CA/B Forum
  BR §6.1.5, RFC 9325 §4.5, NIST SP 800-52r2, SEC09's "1024-bit RSA keys" anti-pattern.
- **cert-weak-signature**: the leaf's signature hash is MD5 or SHA-1 (or MD2/MD4): RFC 9155, RFC
  9325 §4.5, CA/B Forum BR §7.1.3.2 (SHA-1 banned for subscriber certificates since ballot 118,
  2014, and everywhere by ballot SC-097).
- **cert-name-mismatch**: the client asked for a name (SNI) that the certificate does not cover
  (`tls.sni_matches_cert` is false): a client that checks names refuses it, one that connects
  anyway is open to interception. Sessions without SNI are not judged.
- **cert-validity-too-long**: the validity period is longer than the CA/Browser Forum maximum for
  its issue date (BR §6.3.2, ballot SC-081v3, BR v2.2.6 of 2026-03-31): 398 days for certificates
  issued from 2020-09-01 to 2026-03-14, 200 days from 2026-03-15, 100 days from 2027-03-15, 47 days
  from 2029-03-15; older certificates by the limit of their day (825 days from 2018-03-01, 39 months
  from 2015-04-01, 60 months from 2012-07-01, none before: `BR_VALIDITY_SCHEDULE`). The issue date
  is taken from `notBefore` (BR §7.1.2.7: within 48 h of signing), and the period counts inclusively
  as the BR do: `notAfter - notBefore + 1 s`, any part of a day a whole day. The BRs bind publicly
  trusted CAs only: self-signed leaves are exempt (`exempt_self_signed`), and `private_issuers`
  (globs on the issuer CN) exempts a private PKI; `max_days` (0 = off) caps the limit further
  (Mozilla intermediate: 366 days).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from analyzer.policy import _compute as pc
from analyzer.policy._cols import (
    Hits,
    day,
    false,
    found,
    ints,
    isin,
    join,
    known,
    lower,
    nanos,
    pick,
    seconds,
    span,
    text,
    true,
)
from analyzer.policy._rule import Rule
from analyzer.policy.errors import PolicyError

if TYPE_CHECKING:
    from analyzer.policy.facts import Facts

__all__ = ["CERT_RULES", "validity_limit_days"]

SEC09 = "AWS Well-Architected SEC09-BP02 (Enforce encryption in transit)"
PCI = "PCI DSS 4.0 req. 4.2.1"
BR = "CA/Browser Forum TLS Baseline Requirements v2.2.6"
NIST = "NIST SP 800-52 Rev. 2"
MOZ = "Mozilla Server Side TLS 6.0 (intermediate)"

# CA/B Forum BR maximum validity: (issued on or after, maximum validity in days). The steps before
# 2026 are the limits in force when older certificates were issued (a certificate is judged by the
# rule of its issue date, so a 2016 certificate of three years was compliant): BR 1.0 (effective
# 2012-07-01) 60 months, 39 months from 2015-04-01, 825 days from 2018-03-01 (ballot 193), 398
# days from 2020-09-01 (ballot SC31); then ballot SC-081v3 (BR §6.3.2 of v2.2.6). Months are counted
# at their longest (60 months = 1827 days, 39 months = 1188 days). Before 2012-07-01 the BRs set no
# limit: nothing is flagged. The pre-2020 steps are from the BR change history as remembered, not
# checked against ../shared/data/policy-references.md (which gives the steps from 2026).
BR_VALIDITY_SCHEDULE = [["2012-07-01", 1827], ["2015-04-01", 1188], ["2018-03-01", 825], ["2020-09-01", 398],
                        ["2026-03-15", 200], ["2027-03-15", 100], ["2029-03-15", 47]]


def _before(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Where timestamp `a` is before `b`, both known (a comparison with NaT was false)."""
    return known(a) & known(b) & (nanos(a) < nanos(b))


def expired(f: Facts, opts: Mapping[str, Any]) -> Hits:
    s = f.session_cols
    m = _before(s["leaf_not_after"], s["seen"])
    x = pick(s, m, "leaf_subject_cn", "leaf_not_after", "seen")
    return found(x, join("certificate ", text(x["leaf_subject_cn"]), " expired ", day(x["leaf_not_after"]), ", seen ",
                         day(x["seen"])))


def not_yet_valid(f: Facts, opts: Mapping[str, Any]) -> Hits:
    s = f.session_cols
    m = _before(s["seen"], s["leaf_not_before"])
    x = pick(s, m, "leaf_subject_cn", "leaf_not_before", "seen")
    return found(x, join("certificate ", text(x["leaf_subject_cn"]), " valid only from ", day(x["leaf_not_before"]),
                         ", seen ", day(x["seen"])))


def _days_ns(days: float) -> int:
    """`pd.Timedelta(days=days)` in nanoseconds (the same float arithmetic, truncated)."""
    return int(float(days) * 24 * 3600 * 1_000_000_000)


def expiring(f: Facts, opts: Mapping[str, Any]) -> Hits:
    s = f.session_cols
    after, seen = s["leaf_not_after"], s["seen"]
    runway = _days_ns(opts["runway_days"])
    left, fits = span(nanos(after), nanos(seen))
    # still valid (after >= seen) and expiring within the runway (after < seen + runway)
    m = known(after) & known(seen) & fits & (left >= 0) & (left < runway)
    x = pick(s, m, "leaf_subject_cn", "leaf_not_after", "seen")
    # the days left rounded as pandas' `round(1)` did (numpy's: scaled by 10, rounded half to even)
    days = np.round(seconds(left[m]) / 86_400, 1)
    return found(x, join("certificate ", text(x["leaf_subject_cn"]), " expires ", day(x["leaf_not_after"]), ", ",
                         text(pa.array(days, pa.float64())), " days after it was seen (runway ",
                         str(opts["runway_days"]), " days)"))


def self_signed(f: Facts, opts: Mapping[str, Any]) -> Hits:
    s = f.session_cols
    x = pick(s, true(s["leaf_self_signed"]), "leaf_subject_cn", "leaf_issuer_cn")
    return found(x, join("self-signed certificate ", text(x["leaf_subject_cn"]), " (issuer ", text(x["leaf_issuer_cn"]),
                         ")"))


def weak_key(f: Facts, opts: Mapping[str, Any]) -> Hits:
    s = f.session_cols
    kind, bits = lower(s["leaf_key_type"]), s["leaf_key_bits"]
    m = weak_key_mask(kind, bits, opts)
    x = pick(s, m, "leaf_subject_cn", "leaf_key_type", "leaf_key_bits")
    return found(x, join("certificate ", text(x["leaf_subject_cn"]), ": ", text(lower(x["leaf_key_type"])), " key of ",
                         text(x["leaf_key_bits"]), " bits"))


def weak_key_mask(kind: pa.Array, bits: pa.Array, opts: Mapping[str, Any]) -> np.ndarray:
    """RSA/DSA keys below `min_rsa_bits`, EC keys below `min_ec_bits` (`kind` lower-cased; unknown
    bits: not judged). The chain rules judge the certificates above the leaf by the same test."""
    b, ok = ints(bits), known(bits)
    rsa = isin(kind, ["rsa", "dsa", "rsa-pss"]) & ok & (b < int(opts["min_rsa_bits"]))
    ec = isin(kind, ["ec", "ecdsa"]) & ok & (b < int(opts["min_ec_bits"]))
    return rsa | ec


def weak_signature(f: Facts, opts: Mapping[str, Any]) -> Hits:
    s = f.session_cols
    m = isin(lower(s["leaf_signature_hash"]), [str(v).lower() for v in opts["hashes"]])
    x = pick(s, m, "leaf_subject_cn", "leaf_signature_algorithm")
    return found(x, join("certificate ", text(x["leaf_subject_cn"]), " signed with ",
                         text(x["leaf_signature_algorithm"])))


def name_mismatch(f: Facts, opts: Mapping[str, Any]) -> Hits:
    s = f.session_cols
    m = false(s["sni_matches_cert"])  # null: not judged
    x = pick(s, m, "server_name", "leaf_san_dns", "leaf_subject_cn")
    return found(x, join("SNI ", text(x["server_name"]), " not covered by certificate for ",
                         text(pc.coalesce(x["leaf_san_dns"], x["leaf_subject_cn"]))))


def _utc_ns(when: Any) -> int:
    """A schedule date (a TOML date or datetime, or its ISO text) as UTC epoch nanoseconds, as
    `pd.Timestamp(str(when), tz="UTC")` read it: a time without an offset is UTC. Only ISO 8601
    (pandas also guessed other spellings); PolicyError otherwise."""
    try:
        t = datetime.fromisoformat(str(when))
    except ValueError:
        raise PolicyError(f"cert-validity-too-long: schedule date {str(when)!r} is not an ISO 8601 date") from None
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    delta = t - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


@lru_cache(maxsize=16)
def _steps(schedule: tuple[tuple[str, float], ...]) -> tuple[np.ndarray, np.ndarray]:
    # a date beyond the nanosecond range (which pandas refused) bounds every timestamp from outside it
    lo, hi = np.iinfo(np.int64).min + 1, np.iinfo(np.int64).max
    steps = sorted((min(max(_utc_ns(d), lo), hi), float(n)) for d, n in schedule)
    return np.array([t for t, _ in steps], dtype=np.int64), np.array([n for _, n in steps], dtype=float)


def validity_limit_days(not_before: pa.Array, schedule: Sequence[Sequence[Any]]) -> np.ndarray:
    """The BR maximum validity (days) for certificates issued at `not_before` (a timestamp column;
    NaN when unknown or issued before the schedule's first step)."""
    starts, limits = _steps(tuple((str(d), float(n)) for d, n in schedule))
    ok = known(not_before)
    if not len(starts):
        return np.full(len(ok), np.nan)
    i = np.searchsorted(starts, nanos(not_before), side="right") - 1
    return np.where(ok & (i >= 0), limits[np.clip(i, 0, None)], np.nan)


def _int_text(values: np.ndarray) -> pa.Array:
    """Whole numbers held as floats as evidence text ("201"; NaN "?"), as pandas' Int64 -> string did
    (a fraction raises, as that cast did)."""
    values = np.asarray(values, dtype=float)
    return text(pc.cast(pa.array(values, pa.float64(), mask=np.isnan(values)), pa.int64()))


def validity_too_long(f: Facts, opts: Mapping[str, Any]) -> Hits:
    s = f.session_cols
    nb, na = s["leaf_not_before"], s["leaf_not_after"]
    diff, fits = span(nanos(na), nanos(nb))
    both = known(nb) & known(na)
    # the span in seconds (too long for int64 nanoseconds: ~292 years, which pandas refused, in float)
    span_s = np.where(fits, seconds(diff), (nanos(na).astype(float) - nanos(nb).astype(float)) / 1e9)
    span_s = np.where(both, span_s, np.nan)
    # BR §6.3.2: inclusive of both ends (+1 s), any fraction of a day counts as a day
    days = np.ceil((span_s + 1.0) / 86_400)
    limit = validity_limit_days(nb, list(opts["schedule"]))
    if opts["max_days"]:
        limit = np.fmin(limit, float(opts["max_days"]))
    mask = np.nan_to_num(days, nan=0.0) > np.nan_to_num(limit, nan=np.inf)
    if opts["exempt_self_signed"]:
        mask &= ~true(s["leaf_self_signed"])
    globs = [str(g).lower() for g in opts["private_issuers"]]
    if globs:
        issuers = lower(s["leaf_issuer_cn"])
        uniq = pc.unique(pc.drop_null(issuers)).to_pylist()
        mask &= ~isin(issuers, [u for u in uniq if any(fnmatch.fnmatchcase(u, g) for g in globs)])
    x = pick(s, mask, "leaf_subject_cn", "leaf_not_before")
    return found(x, join("certificate ", text(x["leaf_subject_cn"]), " valid ", _int_text(days[mask]), " days from ",
                         day(x["leaf_not_before"]), "; maximum ", _int_text(limit[mask]), " days"))


CERT_RULES = (
    Rule(
        id="cert-expired",
        title="Certificate expired when seen",
        severity="high",
        rationale="An expired certificate is refused by clients that check, and accepted only by "
        "clients that check nothing; SEC09-BP02 names unmonitored expiry as an anti-pattern.",
        references=(SEC09, PCI, "RFC 5280 §4.1.2.5"),
        predicate=expired,
    ),
    Rule(
        id="cert-not-yet-valid",
        title="Certificate not yet valid when seen",
        severity="high",
        rationale="A certificate used before its notBefore is refused by clients that check.",
        references=(SEC09, PCI, "RFC 5280 §4.1.2.5"),
        predicate=not_yet_valid,
    ),
    Rule(
        id="cert-expiring",
        title="Certificate expires soon",
        severity="medium",
        rationale="Certificates must be replaced before they expire (SEC09-BP02 anti-pattern: "
        "certificates not monitored or replaced before expiry).",
        references=(SEC09,),
        predicate=expiring,
        options={"runway_days": 30},
    ),
    Rule(
        id="cert-self-signed",
        title="Self-signed server certificate",
        severity="high",
        rationale="Nothing vouches for a self-signed certificate: clients must skip verification to "
        "accept it, which also accepts an interceptor (SEC09-BP02 anti-pattern).",
        references=(SEC09, "PCI DSS 4.0 req. 4.2.1.d"),
        predicate=self_signed,
    ),
    Rule(
        id="cert-weak-key",
        title="Weak certificate key",
        severity="high",
        rationale="RSA keys below 2048 bits and EC keys below 256 bits are below 112-bit security "
        "(BR §6.1.5, RFC 9325 §4.5; SEC09-BP02 anti-pattern: 1024-bit RSA keys).",
        references=(SEC09, BR + " §6.1.5", "RFC 9325 §4.5", NIST, "PCI DSS 4.0 glossary: strong cryptography"),
        predicate=weak_key,
        options={"min_rsa_bits": 2048, "min_ec_bits": 256},
    ),
    Rule(
        id="cert-weak-signature",
        title="Certificate signed with MD5 or SHA-1",
        severity="high",
        rationale="MD5 and SHA-1 signatures can be forged by collision (RFC 9155); the CA/B Forum "
        "banned SHA-1 for subscriber certificates.",
        references=(BR + " §7.1.3.2", "RFC 9155", "RFC 9325 §4.5", MOZ),
        predicate=weak_signature,
        options={"hashes": ["md2", "md4", "md5", "sha1"]},
    ),
    Rule(
        id="cert-name-mismatch",
        title="Certificate does not cover the requested name",
        severity="medium",
        rationale="The certificate does not name the server the client asked for (SNI): a checking "
        "client refuses it, a client that goes on could be talking to anyone.",
        references=(SEC09, "RFC 6125", PCI),
        predicate=name_mismatch,
    ),
    Rule(
        id="cert-validity-too-long",
        title="Certificate validity longer than the CA/B Forum maximum",
        severity="low",
        rationale="Publicly trusted certificates may not be valid longer than BR §6.3.2 allows for "
        "their issue date (398/200/100/47 days, ballot SC-081v3); longer lifetimes keep "
        "compromised keys and stale validation in use.",
        references=(BR + " §6.3.2 (ballot SC-081v3)", MOZ + " maximum_certificate_lifespan"),
        predicate=validity_too_long,
        options={"schedule": BR_VALIDITY_SCHEDULE, "max_days": 0, "exempt_self_signed": True,
                 "private_issuers": []},
    ),
)
