"""Each rule against the bundled captures (captures/manifest.json): it fires where it must and nowhere else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer import policy

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = json.loads((ROOT / "captures" / "manifest.json").read_text())["captures"]
VPC = ["10.77.0.0/24", "10.88.0.0/24", "10.89.0.0/24", "10.90.0.0/24", "10.82.0.0/24", "10.83.0.0/24",
       "fd77::/64"]

LEGACY = {"tls10_openssl.pcap", "tls11_openssl.pcap"}
RSA_KX = {"tls12_rc4_gnutls.pcap", "tls12_3des_gnutls.pcap"}
# HTTP, SMTP and FTP in the clear (captures/make_captures.sh), HTTP inside the mirror tunnels too
CLEARTEXT = {"http_plain.pcap", "http_basic_auth.pcap", "smtp_plain_auth.pcap", "ftp_login.pcap", "vxlan_kernel.pcap",
             "vxlan_mirror.pcap", "geneve_gwlb.pcap", "geneve_userspace.pcap"}
# the data stores and brokers in the clear (captures/make_data_captures.sh, manifest.data.json): those whose
# password crossed the wire in the clear, and the others (SCRAM, MySQL's scramble, no login)
DATA_SECRETS = {"postgresql_cleartext_ssl_refused.pcap", "redis_auth.pcap", "mqtt_password.pcap",
                "xmpp_plain_auth.pcap"}
DATA_CLEARTEXT = {*DATA_SECRETS, "postgresql_scram_no_ssl.pcap", "mariadb_no_ssl.pcap",
                  "mariadb_ssl_offered_not_used.pcap", "memcached_text.pcap"}

# rule -> captures (file names) where it must fire under the default profile; nowhere else
EXPECTED = {
    "tls-legacy-version": LEGACY,
    "tls-client-legacy-only": LEGACY,
    "tls-handshake-version-failure": {"tls_version_alert.pcap"},
    "aws-endpoint-legacy-tls": set(),
    "tls-weak-cipher": RSA_KX,
    "tls-no-forward-secrecy": RSA_KX,
    "cert-expired": {"cert_expired_tls12.pcap"},
    "cert-not-yet-valid": {"cert_not_yet_valid_tls12.pcap"},
    "cert-expiring": set(),
    "cert-self-signed": {"cert_self_signed_tls12.pcap"},
    "cert-weak-key": {"cert_rsa1024_tls12.pcap", *RSA_KX},  # the gnutls captures use the 1024-bit leaf
    "cert-weak-signature": {"cert_sha1_tls12.pcap"},
    "cert-name-mismatch": {"cert_sni_mismatch_tls12.pcap"},
    # the chains the recording sent are one 2048-bit SHA-256 test CA, valid until 2031
    "cert-chain-expired": set(),
    "cert-chain-weak": set(),
    # every VPC flow is internal here: cleartext is cleartext-internal; multi_if's loopback HTTP is
    # "external" (neither end in a VPC), which neither cleartext rule covers by default
    "cleartext-egress": set(),
    "cleartext-internal": CLEARTEXT,
    "cleartext-credentials": {"http_basic_auth.pcap", "smtp_plain_auth.pcap", "ftp_login.pcap"},
    "unknown-egress": set(),  # every flow is internal here
    # the plaintext rules (manifest): smtp_plain_auth's aiosmtpd runs without TLS, so its EHLO reply
    # offers no STARTTLS; smtp_starttls upgrades; ftp_login's EPSV + RETR data channel runs without
    # PROT P (cleartext), ftps_explicit's is TLS; OpenSSH speaks 2.0; no capture redirects to HTTPS
    "starttls-not-used": set(),
    "starttls-unavailable": {"smtp_plain_auth.pcap"},
    "ftp-data-unprotected": {"ftp_login.pcap"},
    "http-redirect-only": set(),
    "ssh-legacy": set(),
}


def _fired(result: policy.PolicyResult) -> dict[str, set[str]]:
    f = result.findings.merge(result.flows[["uid", "source"]], on="uid", how="left")
    out: dict[str, set[str]] = {}
    for rule, src in zip(f["rule"], f["source"], strict=True):
        out.setdefault(str(rule), set()).add(Path(str(src)).name)
    return out


@pytest.fixture(scope="module")
def sec09(captured):
    flows, tls, certs, credentials, ftp_data = captured
    return policy.evaluate(flows, tls, certs, zones=VPC, now="2026-12-06", credentials=credentials,
                           ftp_data=ftp_data)


def test_expected_table_covers_every_traffic_rule():
    assert set(EXPECTED) | {"cert-validity-too-long", "suppression-expired"} == set(policy.RULES)


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_rule_fires_exactly_where_expected(sec09, rule):
    assert _fired(sec09).get(rule, set()) == EXPECTED[rule]


def test_manifest_agrees_with_the_expectations():
    """The expectations follow from what the recording configured, not from our own output."""
    data = ROOT / "captures" / "manifest.data.json"
    if data.is_file():
        captures = json.loads(data.read_text())["captures"]
        assert {n for n, c in captures.items() if c["encrypted"] is False} == DATA_CLEARTEXT
        assert {n for n, c in captures.items() if any(x["secret_in_clear"] for x in c["credentials"])} == DATA_SECRETS
    assert {n for n, c in MANIFEST.items() if c.get("tls_version") in ("TLS 1.0", "TLS 1.1")} == LEGACY
    assert {n for n, c in MANIFEST.items() if str(c.get("tls_cipher", "")).startswith("TLS_RSA_")} == RSA_KX
    assert MANIFEST["tls_version_alert.pcap"]["tls_alert"] == "protocol_version"


def test_directions(sec09):
    fl = sec09.flows
    loop = fl["client_ip"] == "127.0.0.1"  # multi_if.pcapng's loopback HTTP: neither end in a VPC
    assert set(fl.loc[~loop, "direction"]) == {"internal"} and set(fl.loc[~loop, "client_zone"]) == {"vpc"}
    assert list(fl.loc[loop, "direction"]) == ["external"] and list(fl.loc[loop, "server_zone"]) == ["loopback"]


def test_validity_too_long_follows_the_issue_date(sec09):
    """Leaves issued 2026-11-28 for 397 days exceed SC-081v3's 200 days; the expired leaf (2020-2021,
    367 days under the 398-day limit) does not; the self-signed leaf is not publicly trusted: exempt."""
    fired = _fired(sec09)["cert-validity-too-long"]
    assert {"cert_good_chain_tls12.pcap", "cert_rsa1024_tls12.pcap", "cert_not_yet_valid_tls12.pcap"} <= fired
    assert not fired & {"cert_expired_tls12.pcap", "cert_self_signed_tls12.pcap", "tls13_openssl.pcap"}
    ev = sec09.findings.loc[sec09.findings["rule"] == "cert-validity-too-long", "evidence"]
    assert ev.str.contains("maximum 200 days").any() and ev.str.contains("maximum 47 days").any()


def test_certificates_are_judged_at_capture_time(captured):
    """Run 'in 2040': the good leaf (valid to 2027-12-30) is still not expired, because it was seen in 2026."""
    flows, tls, certs, _, _ = captured
    later = policy.evaluate(flows, tls, certs, zones=VPC, now="2040-01-01")
    assert _fired(later)["cert-expired"] == {"cert_expired_tls12.pcap"}


def test_expiring_runway_option(tmp_path, captured):
    flows, tls, certs, _, _ = captured
    prof = tmp_path / "runway.toml"
    prof.write_text('extends = "sec09"\n[rules.cert-expiring]\noptions = { runway_days = 400 }\n')
    fired = _fired(policy.evaluate(flows, tls, certs, zones=VPC, profile=prof))["cert-expiring"]
    assert "cert_good_chain_tls12.pcap" in fired  # expires 396 days after it was seen
    assert "cert_expired_tls12.pcap" not in fired  # already expired: cert-expired, not expiring


def test_strict_flags_cbc(captured):
    flows, tls, certs, _, _ = captured
    fired = _fired(policy.evaluate(flows, tls, certs, zones=VPC, profile="strict"))
    assert fired["tls-weak-cipher"] == RSA_KX | LEGACY  # ECDHE_RSA_WITH_AES_256_CBC_SHA under TLS 1.0/1.1
    sev = policy.evaluate(flows, tls, certs, zones=VPC, profile="strict").findings
    assert set(sev.loc[sev["rule"] == "tls-legacy-version", "severity"]) == {"critical"}


def test_aws_endpoint_rule_on_a_real_legacy_session(captured):
    """The TLS 1.0 capture, as if its SNI were an AWS API endpoint."""
    flows, tls, certs, _, _ = captured
    tls = tls.copy()
    uid = flows.loc[flows["source"].str.endswith("tls10_openssl.pcap"), "uid"].iloc[0]
    tls.loc[tls["uid"] == uid, "server_name"] = "sts.us-east-1.amazonaws.com"
    res = policy.evaluate(flows, tls, certs, zones=VPC)
    hit = res.findings[res.findings["rule"] == "aws-endpoint-legacy-tls"]
    assert list(hit["uid"]) == [uid]
    assert "sts.us-east-1.amazonaws.com: negotiated TLS 1.0" in hit["evidence"].iloc[0]


def test_verdicts(sec09):
    v = dict(zip(sec09.flows["source"].map(lambda s: Path(s).name), sec09.flows["verdict"], strict=False))
    assert v["tls10_openssl.pcap"] == "fail"
    assert v["cert_expired_tls12.pcap"] == "fail"
    assert v["tls13_openssl.pcap"] == "ok"
    assert v["cert_sni_mismatch_tls12.pcap"] == "warn"  # medium + low
    assert v["http_plain.pcap"] == "warn"  # cleartext-internal (low) since the HTTP dissector states it
    assert v["http_basic_auth.pcap"] == "fail"  # and a password in the clear (critical)
    assert v["tcp_rst_closed_port.pcap"] == "unknown"
    n = sec09.findings.groupby("uid").size()
    assert (sec09.flows["finding_count"] == sec09.flows["uid"].map(n).fillna(0)).all()


def test_frames_have_the_declared_schemas(sec09):
    assert dict(sec09.findings.dtypes.astype(str)) == policy.FINDINGS
    assert dict(sec09.destinations.dtypes.astype(str)) == policy.DESTINATIONS
    for col, dtype in policy.FLOW_COLUMNS.items():
        assert str(sec09.flows[col].dtype) == dtype


def test_finding_ids_are_stable_and_unique(captured, sec09):
    flows, tls, certs, credentials, ftp_data = captured
    again = policy.evaluate(flows.iloc[::-1], tls.iloc[::-1], certs, zones=VPC, now="2026-12-06",
                            credentials=credentials.iloc[::-1], ftp_data=ftp_data.iloc[::-1])
    assert sec09.findings["finding_id"].is_unique
    assert set(again.findings["finding_id"]) == set(sec09.findings["finding_id"])


def test_flows_only_analysis_still_judges_versions(captured):
    """Without the tls frame the flows' own TLS columns are used (what `analyze(frames=('flows',))` gives)."""
    flows, _, _, _, _ = captured
    fired = _fired(policy.evaluate(flows, None, None, zones=VPC))
    assert fired["tls-legacy-version"] == LEGACY
    assert fired["tls-weak-cipher"] == RSA_KX
    assert "cert-expired" not in fired


def test_every_builtin_profile_runs(captured):
    flows, tls, certs, _, _ = captured
    for name in policy.BUILTIN_PROFILES:
        res = policy.evaluate(flows, tls, certs, zones=VPC, profile=name)
        assert (res.findings["profile"] == name).all()
        assert not res.findings.empty
    moz = policy.evaluate(flows, tls, certs, zones=VPC, profile="mozilla-intermediate").findings
    ev = moz.loc[moz["rule"] == "cert-validity-too-long", "evidence"]
    assert ev.str.contains("maximum 200 days").any()  # min(schedule, 366)
    nist = policy.evaluate(flows, tls, certs, zones=VPC, profile="nist-800-52r2").findings
    assert "cert-validity-too-long" not in set(nist["rule"])


def test_destinations(sec09):
    d = sec09.destinations
    weak = d[(d["destination"] == "weak.example.com") & (d["server_port"] == 443)].iloc[0]
    assert weak["flows"] == 3 and weak["worst_severity"] == "high" and weak["score"] == 40 and weak["grade"] == "F"
    good = d[(d["destination"] == "www.example.com") & (d["server_port"] == 8444)].iloc[0]
    assert good["score"] == 100 and good["grade"] == "A" and good["encrypted_flow_share"] == 1.0
    assert int(d["flows"].sum()) == len(sec09.flows)
    loop = d[d["destination"] == "127.0.0.1"].iloc[0]  # multi_if's HTTP in the clear: judged, nothing encrypted
    assert loop["encrypted_flow_share"] == 0.0 and loop["score"] == 0 and loop["grade"] == "F"


def test_data_captures_rules() -> None:
    """The data stores and brokers (make_data_captures.sh; the `captured` fixture judges only
    manifest.json's captures): cleartext-internal on the sessions in the clear, cleartext-credentials
    on those whose password crossed in the clear, neither on the TLS-upgraded ones."""
    import analyzer

    data = ROOT / "captures" / "manifest.data.json"
    names = sorted(json.loads(data.read_text())["captures"])
    judged = analyzer.audit([str(ROOT / "captures" / n) for n in names], vpc=VPC)
    source = dict(zip(judged.flows["uid"], judged.flows["source"].map(lambda s: Path(str(s)).name), strict=True))
    fired = judged.findings.assign(capture=judged.findings["uid"].map(source))
    assert set(fired.loc[fired["rule"] == "cleartext-internal", "capture"]) == DATA_CLEARTEXT
    assert set(fired.loc[fired["rule"] == "cleartext-credentials", "capture"]) == DATA_SECRETS
