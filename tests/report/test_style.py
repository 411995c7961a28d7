"""analyzer.report.style: problem rows stand out in a notebook, and wire strings stay inert HTML text."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import analyzer
from analyzer.report.style import LEVEL_STYLES, highlight_problems, problem_levels

pytest.importorskip("jinja2")  # pandas' Styler renders with it

CAPTURES = Path(__file__).resolve().parents[2] / "captures"


@pytest.fixture(scope="module")
def audited() -> analyzer.Analysis:
    with pytest.warns(UserWarning, match="same content"):
        return analyzer.audit([str(CAPTURES)], vpc=["10.77.0.0/28"])


def _row_styles(html_text: str) -> dict[int, str]:
    """row number -> the CSS declarations that apply to its cells (from the Styler's <style>)."""
    out: dict[int, str] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", html_text.split("</style>")[0]):
        for row in set(re.findall(r"_row(\d+)_col\d+", selectors)):
            out[int(row)] = out.get(int(row), "") + " ".join(body.split())
    return out


def test_levels_follow_verdict_then_severity_then_grade_then_encrypted() -> None:
    df = pd.DataFrame({
        "verdict": ["fail", "warn", "ok", None, None, None, "unknown"],
        "severity": ["info", "critical", "critical", "medium", None, None, None],
        "encrypted": pd.array([True, True, False, True, False, True, True], dtype="boolean"),
    })
    assert problem_levels(df).tolist() == ["fail", "warn", "", "warn", "fail", "", "unknown"]
    grades = pd.DataFrame({"grade": ["A", "C", "F", None], "worst_severity": [None, None, None, "low"]})
    assert problem_levels(grades).tolist() == ["", "warn", "fail", "low"]
    assert problem_levels(pd.DataFrame({"x": [1, 2]})).tolist() == ["", ""]


def test_the_frames_of_an_audit_are_highlighted(audited: analyzer.Analysis) -> None:
    flows = audited.flows
    html_text = highlight_problems(flows[["client_ip", "server_ip", "app_protocol", "verdict"]]).to_html()
    styles = _row_styles(html_text)
    for i, verdict in enumerate(flows["verdict"]):
        expected = {"fail": "font-weight: bold", "warn": "#F8DFA6", "unknown": "#EBEBEB"}.get(verdict)
        if expected is None:
            assert i not in styles or "background" not in styles[i], (i, verdict)
        else:
            assert expected in styles[i], (i, verdict, styles.get(i))
    findings = highlight_problems(audited.findings[["rule", "severity", "server_ip"]]).to_html()
    worst = audited.findings["severity"].isin(["critical", "high"])
    assert sum("font-weight: bold" in s for s in _row_styles(findings).values()) == int(worst.sum()) > 0
    assert highlight_problems(audited.destinations).to_html()


def test_cleartext_stands_out_before_any_policy() -> None:
    with pytest.warns(UserWarning, match="same content"):
        facts = analyzer.analyze([str(CAPTURES)])
    view = facts.flows[["server_ip", "app_protocol", "encrypted"]]
    styles = _row_styles(highlight_problems(view).to_html())
    clear = [i for i, e in enumerate(view["encrypted"].eq(False).fillna(False)) if e]
    assert clear and all(LEVEL_STYLES["fail"].split(";")[0] in styles[i] for i in clear)


def test_wire_strings_are_inert_html() -> None:
    payload = '<script>alert("sni")</script><img src=x onerror=alert(1)>'
    df = pd.DataFrame({
        "server_name": pd.array([payload, "a\u202egnp.exe", None], dtype="string"),
        "http_host": [payload, "x&y", None],
        "verdict": ["fail", "ok", "warn"],
    }, index=pd.Index(["<b>row</b>", "r2", "r3"]))
    df.columns = pd.Index(["server_name", "http_host", "<i>verdict</i>"])
    html_text = highlight_problems(df).to_html()
    body = html_text.split("</style>", 1)[1]
    assert "<script" not in body and "<img" not in body and "<b>" not in body and "<i>" not in body
    assert "&lt;script&gt;alert(&quot;sni&quot;)&lt;/script&gt;" in body
    assert "x&amp;y" in body and "a\\u202egnp.exe" in body and "\u202e" not in body
    assert "&lt;b&gt;row&lt;/b&gt;" in body and "&lt;i&gt;verdict&lt;/i&gt;" in body
    assert ">-</td>" in body  # missing values: one spelling
