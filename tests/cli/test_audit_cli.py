"""`intransit audit` and `intransit rules` end to end on the bundled captures, and `analyzer.audit`."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

import analyzer
from analyzer import policy

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = str(ROOT / "captures")


def intransit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


def test_audit_gates_on_severity_and_writes_the_findings():
    # the captures of make_captures.sh (manifest.json): 48 flows; other groups' captures have their own tests
    main = [str(ROOT / "captures" / n) for n in sorted(json.loads((ROOT / "captures" / "manifest.json").read_text())
                                                         ["captures"])]
    r = intransit("audit", *main, "--vpc", "10.0.0.0/8", "--format", "csv")
    assert r.returncode == 1, r.stderr  # high findings: the gate fails
    findings = pd.read_csv(io.StringIO(r.stdout))
    assert {"cert-expired", "cert-weak-key", "tls-legacy-version", "tls-weak-cipher"} <= set(findings["rule"])
    assert list(findings.columns) == list(policy.FINDINGS)
    summary = [line for line in r.stderr.splitlines() if not line.startswith("warning: ")]
    # the flow count grows with the bundled captures (each group's make_*_captures.sh adds some)
    assert re.match(r"audit \(sec09\): \d+ flows: \d+ ok, \d+ warn, \d+ fail", summary[0]), summary[0]
    assert any(line.startswith("findings: ") and "fail-on high" in line for line in summary)
    assert any(line.startswith("not judged: ") for line in summary)
    assert intransit("audit", *main, "--vpc", "10.0.0.0/8", "--fail-on", "never").returncode == 0


def test_audit_without_zones_says_nothing_is_egress():
    r = intransit("audit", str(ROOT / "captures" / "tls13_openssl.pcap"))
    assert r.returncode == 0, r.stderr
    assert "no --vpc or --zones given: no address is internal, so nothing is called egress" in r.stdout


def test_suppressions_silence_findings_until_they_expire(tmp_path: Path):
    rules = ["cert-expired", "cert-not-yet-valid", "cert-self-signed", "cert-weak-key", "cert-weak-signature",
             "tls-legacy-version", "tls-weak-cipher", "cleartext-credentials"]
    text = "".join(f'[[suppress]]\nrule = "{rule}"\ncidr = ["10.0.0.0/8"]\nreason = "lab"\nexpires = {{date}}\n\n'
                   for rule in rules)
    live = tmp_path / "live.toml"
    live.write_text(text.replace("{date}", "2099-01-01"))
    r = intransit("audit", CAPTURES, "--vpc", "10.0.0.0/8", "--suppress", str(live), "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    found = pd.read_json(io.StringIO(r.stdout), lines=True)
    assert found[found["rule"].isin(rules)]["suppressed_by"].notna().all()
    expired = tmp_path / "old.toml"
    expired.write_text(text.replace("{date}", "2020-01-01"))
    r = intransit("audit", CAPTURES, "--vpc", "10.0.0.0/8", "--suppress", str(expired), "--format", "jsonl")
    assert r.returncode == 1
    assert "suppression-expired" in set(pd.read_json(io.StringIO(r.stdout), lines=True)["rule"])


def test_bad_policy_input_is_one_line_and_exit_2(tmp_path: Path):
    for args, words in ((["--profile", "nope"], "profile"), (["--vpc", "10.0.0.0/33"], "10.0.0.0/33"),
                        (["--zones", str(tmp_path / "absent.toml")], "absent.toml")):
        r = intransit("audit", str(ROOT / "captures" / "tls13_openssl.pcap"), *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        assert r.stderr.startswith("intransit: error:") and words in r.stderr, (args, r.stderr)
        assert len(r.stderr.splitlines()) == 1, r.stderr


def test_rules_lists_every_rule_with_its_profiles():
    r = intransit("rules", "--format", "csv")
    assert r.returncode == 0
    table = pd.read_csv(io.StringIO(r.stdout))
    assert set(table["rule"]) == set(policy.rules_table()["rule"])
    assert {"sec09", "strict", "nist-800-52r2", "mozilla-intermediate", "pci-dss-4"} <= set(table.columns)


def test_the_api_equals_the_policy_on_the_analysis():
    result = analyzer.audit([CAPTURES], vpc=["10.0.0.0/8"], now="2026-12-06", on_problem=lambda p: None)
    facts = analyzer.analyze([CAPTURES], on_problem=lambda p: None)
    judged = policy.evaluate(facts.flows, facts.tls, facts.certs, zones=["10.0.0.0/8"], now="2026-12-06",
                             credentials=facts.credentials, ftp_data=facts.ftp_data)
    pd.testing.assert_frame_equal(result.findings, judged.findings)
    pd.testing.assert_frame_equal(result.flows, judged.flows)
    assert {"findings", "destinations", "tls", "certs", "sources"} <= set(result.frame_names)


def test_streamed_output_equals_the_api(tmp_path: Path):
    """--format csv/jsonl/parquet judge chunk by chunk (PolicyStage): the same findings as analyzer.audit,
    in flow-end order rather than by severity, and the same summary as the table format."""
    out = tmp_path / "f.parquet"
    r = intransit("audit", CAPTURES, "--vpc", "10.0.0.0/8", "--format", "parquet", "--out", str(out))
    assert r.returncode == 1, r.stderr
    got = pd.read_parquet(out).sort_values("finding_id").reset_index(drop=True)
    want = analyzer.audit([CAPTURES], vpc=["10.0.0.0/8"], on_problem=lambda p: None).findings
    want = want.sort_values("finding_id").reset_index(drop=True)
    assert list(got.columns) == list(policy.FINDINGS)
    assert got["finding_id"].tolist() == want["finding_id"].tolist()
    assert got["evidence"].tolist() == want["evidence"].tolist()
    table = intransit("audit", CAPTURES, "--vpc", "10.0.0.0/8", "--out", str(tmp_path / "t.txt"))
    assert table.returncode == 1
    summary = [line for line in r.stderr.splitlines() if not line.startswith("warning: ")]
    assert summary == [line for line in table.stderr.splitlines() if not line.startswith("warning: ")]


def test_the_findings_table_fits_120_columns_and_all_columns_shows_the_evidence_whole():
    args = ("audit", CAPTURES, "--vpc", "10.0.0.0/8", "--fail-on", "never")
    fitted, whole = intransit(*args), intransit(*args, "--all-columns")
    assert fitted.returncode == whole.returncode == 0, fitted.stderr
    table = fitted.stdout.splitlines()[fitted.stdout.splitlines().index(next(
        line for line in fitted.stdout.splitlines() if line.startswith("severity "))):]
    assert len(table) > 10 and max(len(line) for line in table) <= 120
    assert "evidence" in table[0] and "client_ip" in table[0]
    wide = whole.stdout.splitlines()
    assert max(len(line) for line in wide) > 120 and "finding_id" in next(w for w in wide if "severity" in w)
