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

from analyzer.policy._rule import Rule, day, dt, found, join, text

if TYPE_CHECKING:
    import pandas as pd

    from analyzer.policy.facts import Facts

__all__ = ["CHAIN_RULES", "chain_links"]

SEC09 = "AWS Well-Architected SEC09-BP02 (Enforce encryption in transit)"
BR = "CA/Browser Forum TLS Baseline Requirements v2.2.6"

_CERT_COLUMNS = ("sha256", "subject_cn", "not_before", "not_after", "key_type", "key_bits", "signature_hash",
                 "self_signed")


def chain_links(sessions: pd.DataFrame, certs: pd.DataFrame) -> pd.DataFrame:
    """One row per certificate above the leaf of each session's chain: the session's row number
    (`row`), `position` (1 = the leaf's issuer as sent) and the certificate's facts from `certs`
    (null when the certs frame does not have it). Pure: sessions need `cert_chain`."""
    from analyzer._pandas import pd
    from analyzer.policy.facts import _left_join
    from analyzer.policy.zones import strings_from_codes

    # each distinct chain split once (a capture's sessions share a few chains), then spread
    codes, chains = pd.factorize(sessions["cert_chain"].astype(dt.string), use_na_sentinel=True)
    above = [[p.strip() for p in str(c).split(",")][1:] for c in chains.tolist()]
    count_u = np.array([len(a) for a in above] + [0], dtype=np.int64)  # last: no chain
    codes = np.where(codes < 0, len(above), codes)
    has = count_u[codes] > 0
    if not has.any():
        return pd.DataFrame({"row": pd.Series(dtype=np.int64), "position": pd.Series(dtype=np.int64),
                             **{c: pd.Series(dtype=object) for c in _CERT_COLUMNS}})
    rows = np.flatnonzero(has)
    counts = count_u[codes[rows]]
    start_u = np.concatenate([[0], np.cumsum(count_u)[:-1]])
    first = np.cumsum(counts) - counts  # each session's first link in the output
    within = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(first, counts)
    at = np.repeat(start_u[codes[rows]], counts) + within
    flat = pd.DataFrame({"row": np.repeat(rows, counts),
                         "sha256": strings_from_codes([sha for a in above for sha in a], at),
                         "position": within + 1})
    facts = certs[[c for c in _CERT_COLUMNS if c in certs.columns]].drop_duplicates("sha256")
    return _left_join(flat, "sha256", facts.reset_index(drop=True), "sha256")


def _links(f: Facts) -> pd.DataFrame:
    if "chain" not in f.memo:
        from analyzer.dissect.tls import schema as tls_schema
        from analyzer.policy.facts import conform

        f.memo["chain"] = chain_links(f.sessions, conform(f.certs, tls_schema.CERTS))
    return f.memo["chain"]


def _first_per_session(f: Facts, links: pd.DataFrame, why: pd.Series) -> pd.DataFrame:
    """Hits: per session, the first offending link (lowest position) and why."""
    if not len(links):
        return found(f.sessions.iloc[:0], "")
    links = links.assign(_why=why.to_numpy()).sort_values(["row", "position"], kind="stable")
    first = links.drop_duplicates("row")
    rows = f.sessions[["uid"]].iloc[first["row"].to_numpy()]
    return found(rows, first["_why"].reset_index(drop=True).set_axis(rows.index))


def _first_bad(links: pd.DataFrame, bad: np.ndarray) -> np.ndarray:
    """Positions (in `links`) of each session's first offending link: links are in (row, position)
    order as chain_links makes them, so the first of each row's bad links."""
    at = np.flatnonzero(bad)
    rows = links["row"].to_numpy(dtype=np.int64)[at]
    keep = np.ones(len(at), dtype=bool)
    keep[1:] = rows[1:] != rows[:-1]
    return at[keep]


def chain_expired(f: Facts, opts: Mapping[str, Any]) -> pd.DataFrame:
    from analyzer._pandas import pd

    links = _links(f)
    if not len(links):
        return found(f.sessions.iloc[:0], "")
    row = links["row"].to_numpy(dtype=np.int64)
    seen = pd.Series(f.sessions["seen"].array.take(row), index=links.index).astype(dt("datetime64[ns, UTC]"))
    after = links["not_after"].astype(dt("datetime64[ns, UTC]"))
    before = links["not_before"].astype(dt("datetime64[ns, UTC]"))
    expired = (after < seen).to_numpy(dtype=bool, na_value=False)
    early = (before > seen).to_numpy(dtype=bool, na_value=False)
    # evidence for the first offending link of each session only (the others are not reported)
    at = _first_bad(links, expired | early)
    bad = links.iloc[at]
    what = join("expired ", day(after.iloc[at])).where(expired[at], join("valid only from ", day(before.iloc[at])))
    why = join("chain certificate ", bad["position"].astype(dt.string), " (", text(bad["subject_cn"]), ") ", what,
               ", seen ", day(seen.iloc[at]))
    rows = f.sessions[["uid"]].iloc[bad["row"].to_numpy()]
    return found(rows, pd.Series(why.array, index=rows.index))


def chain_weak(f: Facts, opts: Mapping[str, Any]) -> pd.DataFrame:
    links = _links(f)
    if not len(links):
        return found(f.sessions.iloc[:0], "")
    signer = ~links["self_signed"].astype(dt.boolean).to_numpy(dtype=bool, na_value=False)
    kind = links["key_type"].astype(dt.string).str.lower()
    bits = links["key_bits"].astype(dt.Int64)
    rsa = (kind.isin(["rsa", "dsa", "rsa-pss"]) & (bits < int(opts["min_rsa_bits"]))).fillna(False)
    ec = (kind.isin(["ec", "ecdsa"]) & (bits < int(opts["min_ec_bits"]))).fillna(False)
    weak_key = (rsa | ec).to_numpy(dtype=bool) & signer
    hashes = [str(h).lower() for h in opts["hashes"]]
    weak_sig = links["signature_hash"].astype(dt.string).str.lower().isin(hashes).to_numpy(dtype=bool, na_value=False)
    weak_sig = weak_sig & signer
    m = weak_key | weak_sig
    bad = links[m]
    cn = bad["subject_cn"].astype(dt.string).fillna("?")
    key_text = kind[m].fillna("?") + " key of " + bits[m].astype(dt.string).fillna("?") + " bits"
    sig_text = "signed with " + bad["signature_hash"].astype(dt.string).fillna("?")
    what = np.where(weak_key[m] & weak_sig[m], key_text + ", " + sig_text,
                    np.where(weak_key[m], key_text, sig_text))
    why: Any = "chain certificate " + bad["position"].astype(str) + " (" + cn + "): " + what
    return _first_per_session(f, bad, why)


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
