"""The report's summary model and its three renderings: numbers that agree with the frames, a baseline
that marks findings new / unchanged / resolved, HTML under a strict CSP with every wire string
escaped, Markdown whose tables a wire string cannot break, and JSON with stable keys."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from support.report_helpers import CN, HOST, SNI, USER_AGENT, VPC, hostile_capture

import analyzer
from analyzer.errors import UsageError
from analyzer.report import render_report
from analyzer.report.html import content_security_policy
from analyzer.report.markdown import md_text
from analyzer.report.summary import load_baseline, summarize

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
BUNDLED_VPC = "10.77.0.0/16"
# the JSON form's top-level keys, in order (README "Reports" documents each)
JSON_KEYS = ["schema", "tool", "generated_at", "subject", "verdict", "changes", "capture", "flows", "findings",
             "traffic", "destinations", "certificates", "tls", "coverage", "method"]


@pytest.fixture(scope="module")
def bundled() -> analyzer.Analysis:
    return analyzer.audit([str(CAPTURES)], vpc=[BUNDLED_VPC], on_problem=lambda p: None)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> analyzer.Analysis:
    path = hostile_capture(tmp_path_factory.mktemp("hostile") / "hostile.pcap")
    return analyzer.audit([str(path)], vpc=[VPC])


def test_numbers_agree_with_the_frames(bundled: analyzer.Analysis) -> None:
    n = summarize(bundled, vpc=[BUNDLED_VPC]).numbers
    flows, findings = bundled.flows, bundled.findings
    assert n["flows"]["total"] == len(flows)
    assert {k: n["flows"][k] for k in ("ok", "warn", "fail", "unknown")} == {
        k: int((flows["verdict"] == k).sum()) for k in ("ok", "warn", "fail", "unknown")}
    active = findings[findings["suppressed_by"].isna()]
    assert n["findings"]["total"] == len(active)
    assert n["findings"]["by_severity"]["critical"] == int((active["severity"] == "critical").sum())
    assert sum(r["findings"] for r in n["findings"]["by_rule"].values()) == len(active)
    traffic_flows = sum(c["flows"] for d in n["traffic"].values() for c in d.values())
    traffic_bytes = sum(c["bytes"] for d in n["traffic"].values() for c in d.values())
    assert traffic_flows == len(flows)
    assert traffic_bytes == int(flows["ip_bytes_to_server"].sum() + flows["ip_bytes_to_client"].sum())
    assert n["coverage"]["packets"] == bundled.stats["packets"] == int(bundled.sources["packets"].sum())
    # the duplicate http_plain.pcap.gz was not read, and says so
    assert n["coverage"]["captures_not_read"] == 1 and n["capture"]["captures"] == len(bundled.sources) - 1
    assert n["coverage"]["truncated_flows"] == int(flows["truncated"].sum()) >= 1  # snaplen96.pcap
    nj = n["coverage"]["not_judged"]
    assert nj["total"] == n["flows"]["unknown"] == nj["no_payload"] + nj["unrecognised_protocol"] + nj["undecided"]
    assert sum(nj["by_reason"].values()) <= nj["total"] and nj["by_reason"].get("no_payload", 0) == nj["no_payload"]
    assert n["tls"]["versions"]["TLS 1.3"] == int((bundled.tls["version"] == "TLS 1.3").sum()) > 0
    assert n["certificates"]["expired"] >= 1  # cert_expired_tls12.pcap
    assert sum(n["destinations"]["by_grade"].values()) == len(bundled.destinations)
    assert n["verdict"]["status"] == "fail" and n["verdict"]["sentence"].startswith("Fails the sec09 profile")


def test_the_per_capture_table(bundled: analyzer.Analysis) -> None:
    captures = summarize(bundled, vpc=[BUNDLED_VPC]).tables["captures"].set_index("source")
    snap = captures.loc[str(CAPTURES / "snaplen96.pcap")]
    assert snap["truncated_flows"] >= 1 and snap["status"] == "ok"
    assert captures.loc[str(CAPTURES / "http_plain.pcap.gz"), "status"] == "duplicate"
    assert int(captures["flows"].sum()) == len(bundled.flows)


def test_without_zones_the_sentence_says_nothing_is_egress() -> None:
    r = analyzer.audit([str(CAPTURES / "http_plain.pcap")])
    n = summarize(r).numbers
    assert "no VPC or zones given" in n["verdict"]["sentence"]
    assert "egress" not in n["traffic"]


def test_baseline_marks_new_unchanged_and_resolved(tmp_path: Path) -> None:
    old_run = analyzer.audit([str(CAPTURES / "tls10_openssl.pcap"), str(CAPTURES / "http_plain.pcap")],
                             vpc=[BUNDLED_VPC])
    path = tmp_path / "old.parquet"
    old_run.findings.to_parquet(path)
    new_run = analyzer.audit([str(CAPTURES / "tls10_openssl.pcap"), str(CAPTURES / "tls11_openssl.pcap")],
                             vpc=[BUNDLED_VPC])
    s = summarize(new_run, vpc=[BUNDLED_VPC], baseline=load_baseline(str(path)), baseline_name="old.parquet")
    old_ids = set(old_run.findings["finding_id"])
    new_ids = set(new_run.findings["finding_id"])
    assert s.numbers["changes"] == {"new": len(new_ids - old_ids), "unchanged": len(new_ids & old_ids),
                                    "resolved": len(old_ids - new_ids), "baseline": "old.parquet"}
    assert min(s.numbers["changes"]["new"], s.numbers["changes"]["unchanged"], s.numbers["changes"]["resolved"]) > 0
    assert s.sentence.startswith(f"Since the baseline: {len(new_ids - old_ids)} new findings")
    marked = s.tables["findings"].set_index("finding_id")["change"]
    assert all(marked[f] == ("unchanged" if f in old_ids else "new") for f in new_ids)
    assert set(s.tables["resolved"]["finding_id"]) == old_ids - new_ids
    # the resolved rule shows in its group even though nothing of it was found this time
    gone_rules = set(old_run.findings.set_index("finding_id").loc[list(old_ids - new_ids), "rule"])
    groups = {g["rule"]: g for g in s.rule_groups}
    assert all(groups[r]["resolved"] >= 1 for r in gone_rules)
    md = render_report(new_run, "md", vpc=[BUNDLED_VPC], baseline=load_baseline(str(path)), baseline_name="old")
    assert md.split("\n")[2].startswith("**Since the baseline:") and "| resolved |" in md


def test_a_bad_baseline_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        load_baseline(str(tmp_path / "nope.parquet"))
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(UsageError, match="not a findings Parquet file"):
        load_baseline(str(tmp_path / "x.parquet"))
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(UsageError, match="no column finding_id, rule, severity"):
        load_baseline(str(tmp_path / "other.parquet"))


def test_json_has_stable_keys_and_ascii_only(hostile: analyzer.Analysis, bundled: analyzer.Analysis) -> None:
    for result, vpc in ((bundled, BUNDLED_VPC), (hostile, VPC)):
        text = render_report(result, "json", vpc=[vpc])
        assert text.isascii()
        doc = json.loads(text)
        assert list(doc) == JSON_KEYS
        assert doc["schema"] == 1 and doc["tool"]["name"] == "intransit"
        assert set(doc["flows"]) == {"total", "ok", "warn", "fail", "unknown"}
        assert set(doc["coverage"]["not_judged"]) == {"total", "no_payload", "unrecognised_protocol", "undecided",
                                                      "by_reason"}
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    readme = readme[readme.index("### Reports"):readme.index("### Options and their defaults")]
    for key in JSON_KEYS:
        assert f"`{key}`" in readme, f"README does not document the JSON key {key}"


class _Page(HTMLParser):
    """Tags, attributes and text of a page, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        else:
            self.text.append(data)


def test_html_is_self_contained_under_a_strict_csp(hostile: analyzer.Analysis) -> None:
    html = render_report(hostile, "html", vpc=[VPC])
    page = _Page()
    page.feed(html)
    names = [t for t, _ in page.tags]
    assert not {"script", "link", "iframe", "object", "embed", "svg", "base", "form"} & set(names), names
    csp = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    digest = base64.b64encode(hashlib.sha256(page.style.encode()).digest()).decode()
    assert csp == [f"default-src 'none'; img-src data:; style-src 'sha256-{digest}'; base-uri 'none'; "
                   "form-action 'none'"] == [content_security_policy(page.style)]
    assert names.index("meta") < names.index("style")  # the policy is in force before anything else
    images = [a["src"] for t, a in page.tags if t == "img"]
    assert len(images) >= 5 and all(str(src).startswith("data:image/svg+xml;base64,") for src in images)
    for tag, attrs in page.tags:  # nothing but data: URIs in any attribute that could load
        for name in ("src", "href", "action", "srcset", "poster", "background"):
            assert attrs.get(name) is None or str(attrs[name]).startswith("data:"), (tag, attrs)
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
    text = "".join(page.text)
    for payload in (SNI, CN, HOST):
        assert payload in text, payload  # shown as text, whole
    assert "</td></tr></table><svg onload=" in text  # the User-Agent, as text
    assert "\\x80" in text and "\x80" not in html  # a C1 control from the wire is shown as an escape
    assert "Test Root" in text and "cleartext-egress" in text


def test_markdown_cells_cannot_be_broken_by_wire_strings(hostile: analyzer.Analysis) -> None:
    md = render_report(hostile, "md", vpc=[VPC])
    for block in re.split(r"\n\n", md):
        rows = [line for line in block.split("\n") if line.startswith("| ")]
        if rows:
            widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
            assert len(widths) == 1, block  # every row has the header's number of cells
    assert "<script" not in md and "<svg" not in md and "](" not in md.replace("\\](", "")
    assert "&lt;script&gt;document.title='XSS-HOST'&lt;/script&gt;\\[a\\](http" in md
    assert "\\`x\\`" in md


@pytest.mark.parametrize(("raw", "shown"), [
    ("a|b", "a\\|b"), ("`rm`", "\\`rm\\`"), ("<b>", "&lt;b&gt;"), ("[x](y)", "\\[x\\](y)"),
    ("@team", "&#64;team"), ("#12", "&#35;12"), ("\u202egnp.exe", "\\\\u202egnp.exe"), ("a\nb", "a\\\\x0ab"),
    ("*bold* _it_ ~s~", "\\*bold\\* \\_it\\_ \\~s\\~"), (None, "-"), (pd.NA, "-"), (["a|", "b"], "a\\|, b"),
])
def test_md_text(raw: object, shown: str) -> None:
    assert md_text(raw) == shown


def test_user_agent_with_bidi_is_escaped_everywhere(hostile: analyzer.Analysis) -> None:
    assert USER_AGENT.endswith("\u202egnp.exe")
    for fmt in ("html", "md", "json"):
        text = render_report(hostile, fmt, vpc=[VPC])
        assert "\u202e" not in text and "\x80" not in text, fmt


def test_templates_are_package_data() -> None:
    """A wheel carries only the data files pyproject names: every template file must match a glob
    (a wheel built on 2026-12-06 held analyzer/report/templates/report.html.j2 and report.css)."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    folder = root / "analyzer" / "report"
    files = [p.relative_to(folder).as_posix() for p in (folder / "templates").iterdir()]
    assert files and all(any(fnmatch.fnmatch(f, g) for g in globs["analyzer.report"]) for f in files), files


def test_an_empty_capture_renders_every_format(tmp_path: Path) -> None:
    from support.pcap_helpers import pcap_bytes

    path = tmp_path / "empty.pcap"
    path.write_bytes(pcap_bytes([]))
    r = analyzer.audit([str(path)])
    doc = json.loads(render_report(r, "json"))
    assert doc["flows"]["total"] == 0 and doc["capture"]["first_packet"] is None
    assert doc["verdict"] == {"status": "not judged", "sentence": "Nothing could be judged against the sec09 profile: "
                              "0 of 0 flows fail and 0 warn (no finding); no VPC or zones given, so no flow is "
                              "called egress."}
    assert "No findings." in render_report(r, "md") and "No findings." in render_report(r, "html")


@pytest.mark.parametrize(("n", "shown"), [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (12345, "12.3 kB"),
                                          (3e9, "3.0 GB"), (5e12, "5.0 TB"), (7e15, "7,000.0 TB")])
def test_human_bytes(n: float, shown: str) -> None:
    from analyzer.report.units import human_bytes

    assert human_bytes(n) == shown


def test_markdown_and_json_load_no_matplotlib() -> None:
    import subprocess
    import sys

    code = ("import sys, analyzer; from analyzer.report import render_report; "
            "r = analyzer.audit(['captures/tls13_openssl.pcap']); render_report(r, 'md'); render_report(r, 'json'); "
            "print('matplotlib' in sys.modules)")
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=300)
    assert run.stdout.strip() == "False", run.stderr
