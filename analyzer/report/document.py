"""`render_report`: an audit's summary as HTML, Markdown or JSON, computed once and rendered once.

    import analyzer
    from analyzer.report import render_report
    r = analyzer.audit(["captures/"], vpc=["10.0.0.0/16"])
    html = render_report(r, "html", vpc=["10.0.0.0/16"])

The keys of the JSON form are documented in README.md ("Reports"); `summary.SCHEMA_VERSION` is
raised when one changes meaning.
"""

from __future__ import annotations

import json
from typing import Any

from analyzer.report.summary import Frames, Summary, summarize

__all__ = ["REPORT_FORMATS", "render_json", "render_report"]

REPORT_FORMATS = ("html", "md", "json")


def render_json(summary: Summary) -> str:
    """The summary's numbers as JSON: stable keys in a stable order, ASCII only (a wire string's
    controls and bidi characters become \\u escapes)."""
    return json.dumps(summary.numbers, indent=2, ensure_ascii=True) + "\n"


def render_report(result: Frames, fmt: str, **summary_options: Any) -> str:
    """The report of an audit (`analyzer.audit()`'s result) in `fmt` (html, md or json);
    `summary_options` are `summarize`'s (vpc, zones, profile, baseline, ...)."""
    if fmt not in REPORT_FORMATS:
        raise ValueError(f"report format must be one of {', '.join(REPORT_FORMATS)}, not {fmt!r}")
    summary = summarize(result, **summary_options)
    if fmt == "json":
        return render_json(summary)
    if fmt == "md":
        from analyzer.report.markdown import render_markdown

        return render_markdown(summary)
    from analyzer.report.figures import report_figures
    from analyzer.report.html import render_html

    frames = {name: result[name] for name in ("flows", "findings", "destinations", "certs")}
    return render_html(summary, report_figures(frames, str(summary.numbers["subject"])))
