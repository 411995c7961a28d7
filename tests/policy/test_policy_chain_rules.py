"""The chain rules (certificates above the leaf) on hand-made sessions and certificates."""

from __future__ import annotations

from support.policy_helpers import T0, certs, flows, tls

from analyzer import policy
from analyzer._pandas import pd
from analyzer.dissect.tls import schema as tls_schema
from analyzer.policy.rules_chain import chain_links

DAY = pd.Timedelta(days=1)
GOOD = {"not_before": T0 - 300 * DAY, "not_after": T0 + 300 * DAY, "key_type": "rsa", "key_bits": 2048,
        "signature_hash": "sha256", "self_signed": False}


def _cert(sha: str, cn: str, **kw):
    return {"sha256": sha, "subject_cn": cn, **GOOD, **kw}


def _case(*chain_certs, chain: str | None = None):
    f = flows({"app_protocol": "tls", "encrypted": True})
    shas = [c["sha256"] for c in chain_certs]
    t = tls({"uid": "C0", "version": "TLS 1.2", "cert_sha256": shas[0], "cert_chain": chain or ",".join(shas)})
    return f, t, certs(*chain_certs)


def _found(f, t, c, rule):
    res = policy.evaluate(f, t, c, zones=["10.0.0.0/16"], now="2026-12-06")
    return list(res.findings.loc[res.findings["rule"] == rule, "evidence"])


def test_good_chain_is_not_flagged():
    f, t, c = _case(_cert("a", "leaf"), _cert("b", "Issuing CA"), _cert("r", "Root", signature_hash="sha1",
                                                                      key_bits=1024, self_signed=True))
    assert _found(f, t, c, "cert-chain-weak") == [] and _found(f, t, c, "cert-chain-expired") == []


def test_expired_and_not_yet_valid_intermediates():
    f, t, c = _case(_cert("a", "leaf"), _cert("b", "Old CA", not_after=T0 - DAY))
    assert _found(f, t, c, "cert-chain-expired") == [
        "chain certificate 1 (Old CA) expired 2026-11-28, seen 2026-11-29"]
    f, t, c = _case(_cert("a", "leaf"), _cert("b", "Early CA", not_before=T0 + DAY))
    assert _found(f, t, c, "cert-chain-expired") == [
        "chain certificate 1 (Early CA) valid only from 2026-11-30, seen 2026-11-29"]
    # the leaf's own dates are the leaf rules' business
    f, t, c = _case(_cert("a", "leaf", not_after=T0 - DAY), _cert("b", "CA"))
    assert _found(f, t, c, "cert-chain-expired") == []


def test_weak_intermediate_key_or_signature_first_offender():
    f, t, c = _case(_cert("a", "leaf"), _cert("b", "CA 1", signature_hash="sha1"),
                    _cert("d", "CA 2", key_type="ec", key_bits=224))
    assert _found(f, t, c, "cert-chain-weak") == ["chain certificate 1 (CA 1): signed with sha1"]
    f, t, c = _case(_cert("a", "leaf"), _cert("b", "CA 1", key_bits=1024, signature_hash="md5"))
    assert _found(f, t, c, "cert-chain-weak") == ["chain certificate 1 (CA 1): rsa key of 1024 bits, signed with md5"]


def test_chain_links_is_pure_and_tolerates_unknown_certificates():
    s = tls({"uid": "C0", "cert_chain": "a,b,zz"}, {"uid": "C1", "cert_chain": "a"}, {"uid": "C2"})
    links = chain_links(s, certs(_cert("b", "CA")))
    assert list(zip(links["row"], links["position"], links["sha256"], strict=True)) == [(0, 1, "b"), (0, 2, "zz")]
    assert pd.isna(links.loc[links["sha256"] == "zz", "subject_cn"]).all()
    assert chain_links(s.iloc[1:], certs()).empty
    assert set(tls_schema.CERTS) >= {"sha256", "signature_hash", "self_signed"}
