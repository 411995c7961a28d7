"""Profiles and suppressions from TOML written by the test; expired suppressions; their errors."""

from __future__ import annotations

import pytest
from support.policy_helpers import flows, tls

from analyzer import policy
from analyzer._pandas import pd
from analyzer.policy.profiles import load_profile

VPC = ["10.0.0.0/16"]


def _legacy_flows():
    f = flows(
        {"app_protocol": "tls", "encrypted": True, "server_ip": "198.51.100.1", "server_port": 443},
        {"app_protocol": "tls", "encrypted": True, "server_ip": "203.0.113.9", "server_port": 8443},
        {"app_protocol": "tls", "encrypted": True, "server_ip": "10.0.9.9", "server_port": 443},
    )
    t = tls(
        {"uid": "C0", "version": "TLS 1.0", "server_name": "legacy.partner.example"},
        {"uid": "C1", "version": "TLS 1.1", "server_name": "other.example"},
        {"uid": "C2", "version": "TLS 1.0", "server_name": "db.internal"},
    )
    return f, t


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_profiles_differ_where_the_sources_do():
    sec09, strict, nist, moz, pci = (load_profile(n) for n in policy.BUILTIN_PROFILES)
    assert sec09.name == "sec09" and load_profile(None).name == "sec09"
    assert strict.settings["tls-weak-cipher"].options["cbc"] is True
    assert sec09.settings["tls-weak-cipher"].options["cbc"] is False and nist.settings["tls-weak-cipher"].options[
        "cbc"] is False
    assert moz.settings["cert-validity-too-long"].options["max_days"] == 366
    assert not nist.settings["cert-validity-too-long"].enabled and not pci.settings["cert-validity-too-long"].enabled
    assert pci.settings["cleartext-egress"].severity == "critical"
    assert strict.fail_at == "medium"
    for p in (sec09, strict, nist, moz, pci):
        assert set(p.settings) == set(policy.RULES) and p.description


def test_user_profile(tmp_path):
    path = _write(tmp_path, "mine.toml", """
extends = "strict"
[verdict]
fail_at = "critical"
[rules.tls-legacy-version]
severity = "low"
options = { versions = ["SSL 3.0", "TLS 1.0"] }
[rules.unknown-egress]
enabled = false
""")
    p = load_profile(path)
    assert p.name == "mine" and p.fail_at == "critical" and p.warn_at == "info"  # warn_at from strict
    assert not p.settings["unknown-egress"].enabled
    assert p.settings["tls-weak-cipher"].options["cbc"] is True  # inherited
    f, t = _legacy_flows()
    res = policy.evaluate(f, t, zones=VPC, profile=path)
    legacy = res.findings[res.findings["rule"] == "tls-legacy-version"]
    assert set(legacy["uid"]) == {"C0", "C2"} and set(legacy["severity"]) == {"low"}  # TLS 1.1 not listed
    assert set(res.findings["profile"]) == {"mine"}


def test_profile_extends_a_file_next_to_it(tmp_path):
    _write(tmp_path, "base.toml", '[rules.cert-expiring]\noptions = { runway_days = 90 }\n')
    child = _write(tmp_path, "child.toml", 'name = "child"\nextends = "base.toml"\n')
    assert load_profile(child).settings["cert-expiring"].options["runway_days"] == 90


@pytest.mark.parametrize("text, message", [
    ('[rules.no-such-rule]\nenabled = false\n', "unknown rule"),
    ('[rules.cert-expiring]\noptions = { runway = 3 }\n', "has no option"),
    ('[rules.cert-expiring]\noptions = { runway_days = "30" }\n', "must be like"),
    ('[rules.tls-weak-cipher]\noptions = { cbc = 1 }\n', "must be like"),
    ('[rules.cert-expiring]\nseverity = "severe"\n', "severity must be one of"),
    ('[rules.cert-expiring]\nenabled = "no"\n', "true or false"),
    ('[verdict]\nfail_at = "low"\nwarn_at = "high"\n', "may not be above"),
    ('colour = "blue"\n', "unknown key"),
    ('extends = "loop.toml"\n', "too deeply"),
    ('[rules\n', "not valid TOML"),
])
def test_bad_profiles_are_one_line_errors(tmp_path, text, message):
    path = _write(tmp_path, "loop.toml", text)
    with pytest.raises(policy.PolicyError, match=message) as info:
        load_profile(path)
    assert "\n" not in str(info.value).strip()


def test_unknown_profile_name():
    with pytest.raises(policy.PolicyError, match="no such profile"):
        load_profile("sec10")


# --- suppressions -------------------------------------------------------------------------------


def test_suppressions_match_and_keep_the_finding(tmp_path):
    path = _write(tmp_path, "s.toml", """
[[suppress]]
id = "partner"
rule = "tls-legacy-version"
server_name = "*.PARTNER.example"
reason = "partner appliance, replacement due"
expires = 2027-06-30

[[suppress]]
rule = "*"
cidr = "10.0.9.0/24"
port = [443]
zone = "vp?"
reason = "database migration"
expires = 2027-06-30
""")
    f, t = _legacy_flows()
    res = policy.evaluate(f, t, zones=VPC, suppressions=path, now="2027-06-30")
    legacy = res.findings[res.findings["rule"] == "tls-legacy-version"].set_index("uid")
    assert legacy.loc["C0", "suppressed_by"] == "partner"
    assert legacy.loc["C2", "suppressed_by"] == "s.toml#2"
    assert pd.isna(legacy.loc["C1", "suppressed_by"])
    # suppressed findings no longer count for the verdict
    v = dict(zip(res.flows["uid"], res.flows["verdict"], strict=True))
    assert v == {"C0": "ok", "C1": "fail", "C2": "ok"}
    assert list(res.flows["finding_count"]) == [0, 1, 0]
    assert "suppression-expired" not in set(res.findings["rule"])


def test_expired_suppression_is_a_finding_and_suppresses_nothing(tmp_path):
    path = _write(tmp_path, "s.toml", """
[[suppress]]
id = "old"
rule = "tls-legacy-version"
server_name = "legacy.partner.example"
reason = "temporary"
expires = 2026-01-31
""")
    f, t = _legacy_flows()
    res = policy.evaluate(f, t, zones=VPC, suppressions=path, now="2026-02-01")
    assert res.findings["suppressed_by"].isna().all()
    exp = res.findings[res.findings["rule"] == "suppression-expired"]
    assert len(exp) == 1 and exp["uid"].isna().all() and exp["severity"].iloc[0] == "low"
    assert exp["evidence"].iloc[0] == ("suppression old for rule tls-legacy-version expired 2026-01-31"
                                       " (reason: temporary)")
    # still valid on its last day
    same_day = policy.evaluate(f, t, zones=VPC, suppressions=path, now="2026-01-31T23:00:00Z")
    assert "suppression-expired" not in set(same_day.findings["rule"])
    # a stable id, and the strict profile's severity
    again = policy.evaluate(f, t, zones=VPC, suppressions=path, now="2026-03-01", profile="strict")
    e2 = again.findings[again.findings["rule"] == "suppression-expired"]
    assert list(e2["finding_id"]) == list(exp["finding_id"]) and e2["severity"].iloc[0] == "medium"


@pytest.mark.parametrize("text, message", [
    ('[[suppress]]\nrule = "tls-legacy-version"\nport = 443\nexpires = 2027-01-01\n', "reason is required"),
    ('[[suppress]]\nrule = "tls-legacy-version"\nport = 443\nreason = "x"\n', "expires must be"),
    ('[[suppress]]\nrule = "tls-legacy-version"\nport = 443\nreason = "x"\nexpires = "soon"\n', "expires must be"),
    ('[[suppress]]\nrule = "tls-legacy-version"\nreason = "x"\nexpires = 2027-01-01\n', "at least one of"),
    ('[[suppress]]\nrule = "nope"\nport = 443\nreason = "x"\nexpires = 2027-01-01\n', "unknown rule"),
    ('[[suppress]]\nrule = "*"\ncidr = "10.0.0.0/40"\nreason = "x"\nexpires = 2027-01-01\n', "not a CIDR"),
    ('[[suppress]]\nrule = "*"\nport = "https"\nreason = "x"\nexpires = 2027-01-01\n', "port must be"),
    ('[[suppress]]\nrule = "*"\nport = 1\nreason = "x"\nexpires = 2027-01-01\nwhy = 1\n', "unknown key"),
    ('[[suppress]]\nid = "a"\nrule = "*"\nport = 1\nreason = "x"\nexpires = 2027-01-01\n'
     '[[suppress]]\nid = "a"\nrule = "*"\nport = 2\nreason = "x"\nexpires = 2027-01-01\n', "unique"),
])
def test_bad_suppressions_are_one_line_errors(tmp_path, text, message):
    path = _write(tmp_path, "s.toml", text)
    with pytest.raises(policy.PolicyError, match=message):
        policy.load_suppressions(path)


def test_rules_table_documents_every_rule():
    import analyzer.policy.rules_cert as rc
    import analyzer.policy.rules_chain as rch
    import analyzer.policy.rules_plain as rp
    import analyzer.policy.rules_tls as rt
    import analyzer.policy.rules_traffic as rtr

    t = policy.rules_table()
    assert list(t["rule"]) == list(policy.RULES)
    for name in policy.BUILTIN_PROFILES:
        assert set(t[name]) <= {"off", "info", "low", "medium", "high", "critical"}
    assert (t["references"].str.len() > 0).all() and (t["rationale"].str.len() > 0).all()
    docs = (rc.__doc__ or "") + (rt.__doc__ or "") + (rtr.__doc__ or "") + (rp.__doc__ or "") + (rch.__doc__ or "")
    for rid in policy.RULES:
        if rid != "suppression-expired":
            assert f"**{rid}**" in docs, rid  # each rule explained for users in its module docstring
