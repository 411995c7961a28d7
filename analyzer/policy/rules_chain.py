"""Rules about the certificates *above* the leaf: the intermediates a server sent in its chain.

The leaf rules (`rules_cert`) judge the server's own certificate. A chain is only as strong as its
weakest signing link: a leaf signed by an intermediate with a 1024-bit key, or an intermediate that
expired, makes validation fail (or succeed for the wrong reasons) whatever the leaf says. These rules
read each session's `cert_chain` (SHA-256 fingerprints, leaf first, as the server sent them) and the
`certs` frame, and judge positions 1 and up at the time the session was seen. Certificates that are
self-signed (roots some servers append) are left out of the key and signature checks: a trust
anchor's own signature is never verified, and its key is trusted by configuration, not by chain.
As with the leaf, TLS 1.3 and QUIC chains are encrypted and not judged.

- **cert-chain-expired**: a certificate of the chain above the leaf was expired, or not yet valid,
  when the session was seen (RFC 5280 §6.1.3: every certificate of the path must be valid at the
  time of validation; the 2020 AddTrust root expiry broke clients that were sent the expired cross-
  certificate). Zeek's `validate-certs.zeek` reports the same through OpenSSL's path validation.
- **cert-chain-weak**: an intermediate (not self-signed) with an RSA/DSA key below `min_rsa_bits`
  (2048) or an EC key below `min_ec_bits` (256), or signed with MD2/MD4/MD5/SHA-1 (`hashes`): CA/B
  BR §6.1.5 and §7.1.3.2, RFC 9155, RFC 9325 §4.5; Zeek's `weak-keys.zeek` checks the host
  certificate's key only, this extends it to the signing certificates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from analyzer.policy import _compute as pc
from analyzer.policy._cols import (
    STRING,
    Cols,
    Hits,
    day,
    ints,
    isin,
    join,
    known,
    lower,
    nanos,
    no_hits,
    strings,
    text,
    true,
    where,
)
from analyzer.policy._rule import Rule
from analyzer.policy.rules_cert import weak_key_mask

if TYPE_CHECKING:
    from analyzer.policy.facts import Facts

__all__ = ["CHAIN_RULES", "chain_links"]

SEC09 = "AWS Well-Architected SEC09-BP02 (Enforce encryption in transit)"
BR = "CA/Browser Forum TLS Baseline Requirements v2.2.6"

_CERT_COLUMNS = ("sha256", "subject_cn", "not_before", "not_after", "key_type", "key_bits", "signature_hash",
                 "self_signed")


def _positions(at: np.ndarray) -> pa.Array:
    """Positions for Arrow's take (-1: a null row)."""
    return pa.array(at, mask=at < 0) if (at < 0).any() else pa.array(at)


def chain_links(sessions: Mapping[str, pa.Array], certs: Mapping[str, pa.Array] | None) -> Cols:
    """One row per certificate above the leaf of each session's chain: the session's row number
    (`row`), `position` (1 = the leaf's issuer as sent) and the certificate's facts from `certs`
    (the first row of its sha256; null when the certs do not have it). Pure: sessions need
    `cert_chain` (Arrow columns, `analyzer.policy._cols`)."""
    chain = sessions["cert_chain"]
    # each distinct chain split once (a capture's sessions share a few chains), then spread
    coded = pc.dictionary_encode(pc.cast(chain, STRING))
    above = [[p.strip() for p in c.split(",")][1:] for c in coded.dictionary.to_pylist()]
    count_u = np.array([len(a) for a in above] + [0], dtype=np.int64)  # last: no chain
    codes = ints(coded.indices, len(above))
    rows = np.flatnonzero(count_u[codes] > 0)
    counts = count_u[codes[rows]]
    start_u = np.concatenate([[0], np.cumsum(count_u)[:-1]])
    first = np.cumsum(counts) - counts  # each session's first link in the output
    within = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(first, counts)
    at = np.repeat(start_u[codes[rows]], counts) + within
    sha = pc.take(strings([sha for a in above for sha in a]), pa.array(at, pa.int64()))
    out: Cols = {"row": pa.array(np.repeat(rows, counts), pa.int64()), "sha256": sha,
                 "position": pa.array(within + 1, pa.int64())}
    if certs is None or "sha256" not in certs:
        return out
    # each link's certificate found by Arrow's hash lookup (the first row of a sha256 repeated)
    found_at = pc.index_in(sha, value_set=pc.cast(certs["sha256"], STRING))
    cert = _positions(ints(found_at, -1))
    for c in _CERT_COLUMNS[1:]:
        if c in certs:
            out[c] = pc.take(certs[c], cert)
    return out


def _links(f: Facts) -> Cols:
    if "chain" not in f.memo:
        f.memo["chain"] = chain_links(f.session_cols, f.cert_cols)
    return f.memo["chain"]


def _first_bad(row: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Positions (in the links) of each session's first offending link: links are in (row, position)
    order as chain_links makes them, so the first of each row's bad links."""
    at = np.flatnonzero(bad)
    rows = row[at]
    keep = np.ones(len(at), dtype=bool)
    keep[1:] = rows[1:] != rows[:-1]
    return at[keep]


def _take(a: pa.Array, at: np.ndarray) -> pa.Array:
    return pc.take(a, pa.array(at, pa.int64()))


def chain_expired(f: Facts, opts: Mapping[str, Any]) -> Hits:
    links = _links(f)
    if not len(links["row"]) or "not_after" not in links:
        return no_hits()
    s = f.session_cols
    row = ints(links["row"])
    seen = _take(s["seen"], row)
    after, before = links["not_after"], links["not_before"]
    sn, ok = nanos(seen), known(seen)
    expired = ok & known(after) & (nanos(after) < sn)
    early = ok & known(before) & (nanos(before) > sn)
    # evidence for the first offending link of each session only (the others are not reported)
    at = _first_bad(row, expired | early)
    what = where(expired[at], join("expired ", day(_take(after, at))),
                 join("valid only from ", day(_take(before, at))))
    why = join("chain certificate ", text(_take(links["position"], at)), " (", text(_take(links["subject_cn"], at)),
               ") ", what, ", seen ", day(_take(seen, at)))
    return Hits(pc.cast(_take(s["uid"], row[at]), STRING), why)


def chain_weak(f: Facts, opts: Mapping[str, Any]) -> Hits:
    links = _links(f)
    if not len(links["row"]) or "key_type" not in links:
        return no_hits()
    signer = ~true(links["self_signed"])
    kind = lower(links["key_type"])
    weak_key = weak_key_mask(kind, links["key_bits"], opts) & signer
    hashes = [str(h).lower() for h in opts["hashes"]]
    weak_sig = isin(lower(links["signature_hash"]), hashes) & signer
    row = ints(links["row"])
    # evidence for the first offending link of each session only
    at = _first_bad(row, weak_key | weak_sig)
    wk, ws = weak_key[at], weak_sig[at]
    key_text = join(text(_take(kind, at)), " key of ", text(_take(links["key_bits"], at)), " bits")
    sig_text = join("signed with ", text(_take(links["signature_hash"], at)))
    what = where(wk & ws, join(key_text, ", ", sig_text), where(wk, key_text, sig_text))
    why = join("chain certificate ", text(_take(links["position"], at)), " (", text(_take(links["subject_cn"], at)),
               "): ", what)
    return Hits(pc.cast(_take(f.session_cols["uid"], row[at]), STRING), why)


CHAIN_RULES = (
    Rule(
        id="cert-chain-expired",
        title="Expired or not yet valid certificate in the chain",
        severity="medium",
        rationale="Every certificate of the path must be valid when it is used (RFC 5280 §6.1.3); an "
        "expired intermediate breaks validation for clients that build the path from it.",
        references=("RFC 5280 §6.1.3", SEC09, "PCI DSS 4.0 req. 4.2.1"),
        predicate=chain_expired,
        reads="sessions, certs",
    ),
    Rule(
        id="cert-chain-weak",
        title="Weak key or signature in the chain",
        severity="medium",
        rationale="A leaf is only as strong as the keys and hashes that sign it: a 1024-bit or SHA-1 "
        "intermediate can be forged whatever the leaf's own strength.",
        references=(BR + " §6.1.5, §7.1.3.2", "RFC 9155", "RFC 9325 §4.5", SEC09),
        predicate=chain_weak,
        options={"min_rsa_bits": 2048, "min_ec_bits": 256, "hashes": ["md2", "md4", "md5", "sha1"]},
        reads="sessions, certs",
    ),
)
