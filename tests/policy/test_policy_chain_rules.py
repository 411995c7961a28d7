"""The chain rules (certificates above the leaf) on hand-made sessions and certificates."""

from __future__ import annotations

from support.policy_helpers import T0, certs, flows, tls

from analyzer import policy
from analyzer._pandas import pd
from analyzer.dissect.tls import schema as tls_schema
from analyzer.policy.facts import frame_cols
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
    s = frame_cols(tls({"uid": "C0", "cert_chain": "a,b,zz"}, {"uid": "C1", "cert_chain": "a"}, {"uid": "C2"}))
    links = chain_links(s, frame_cols(certs(_cert("b", "CA"))))
    got = zip(links["row"].to_pylist(), links["position"].to_pylist(), links["sha256"].to_pylist(), strict=True)
    assert list(got) == [(0, 1, "b"), (0, 2, "zz")]
    assert links["subject_cn"].to_pylist() == ["CA", None]
    assert len(chain_links({k: v[1:] for k, v in s.items()}, frame_cols(certs()))["row"]) == 0
    assert set(tls_schema.CERTS) >= {"sha256", "signature_hash", "self_signed"}


def test_chain_links_splits_as_sent_and_takes_a_certificates_first_row():
    """Each part of the chain stripped of spaces, empty parts kept (they find no certificate), rows in
    (session, position) order; a sha256 the certs hold twice gives its first row."""
    s = frame_cols(tls({"uid": "C0", "cert_chain": "a, b ,,c"}, {"uid": "C1"}, {"uid": "C2", "cert_chain": "x,c,b"},
                       {"uid": "C3", "cert_chain": "a, b ,,c"}))
    links = chain_links(s, frame_cols(certs(_cert("c", "first"), _cert("b", "B"), _cert("c", "second"))))
    got = zip(links["row"].to_pylist(), links["position"].to_pylist(), links["sha256"].to_pylist(),
              links["subject_cn"].to_pylist(), strict=True)
    assert list(got) == [(0, 1, "b", "B"), (0, 2, "", None), (0, 3, "c", "first"), (2, 1, "c", "first"),
                         (2, 2, "b", "B"), (3, 1, "b", "B"), (3, 2, "", None), (3, 3, "c", "first")]


def test_chain_first_offender_per_session_and_its_flow():
    """Several sessions: each flagged once, by its first offending link, with its own flow's uid."""
    f = flows({"app_protocol": "tls", "encrypted": True}, {"app_protocol": "tls", "encrypted": True},
              {"app_protocol": "tls", "encrypted": True})
    t = tls({"uid": "C0", "version": "TLS 1.2", "cert_sha256": "a", "cert_chain": "a,ok,old,weak"},
            {"uid": "C1", "version": "TLS 1.2", "cert_sha256": "a", "cert_chain": "a,ok"},
            {"uid": "C2", "version": "TLS 1.2", "cert_sha256": "a", "cert_chain": "a,weak,old"})
    c = certs(_cert("a", "leaf"), _cert("ok", "Good CA"), _cert("old", "Old CA", not_after=T0 - DAY),
              _cert("weak", "Weak CA", key_type="EC", key_bits=None, signature_hash="MD5"))
    res = policy.evaluate(f, t, c, zones=["10.0.0.0/16"], now="2026-12-06")
    got = res.findings.loc[res.findings["rule"].str.startswith("cert-chain"), ["uid", "rule", "evidence"]]
    assert sorted(map(tuple, got.to_numpy().tolist())) == [
        ("C0", "cert-chain-expired", "chain certificate 2 (Old CA) expired 2026-11-28, seen 2026-11-29"),
        ("C0", "cert-chain-weak", "chain certificate 3 (Weak CA): signed with MD5"),
        ("C2", "cert-chain-expired", "chain certificate 2 (Old CA) expired 2026-11-28, seen 2026-11-29"),
        ("C2", "cert-chain-weak", "chain certificate 1 (Weak CA): signed with MD5")]
