"""The report as one self-contained HTML file (Jinja2, autoescaped, under a strict CSP).

The file works offline and asks for nothing: its style is one inline `<style>` allowed by its
SHA-256 hash, its figures are `data:` URIs (`report.figures`), and it has no script. The
Content-Security-Policy meta tag says so to the browser (`default-src 'none'; img-src data:;
style-src 'sha256-...'`; `base-uri` and `form-action` 'none' as well, which default-src does not
cover), so even a string that escaped escaping could neither run nor load anything.

Every value reaches the page through Jinja2's autoescape; wire strings go through the `wire` filter
first (`report.text.printable`: controls, bidi overrides and undecodable bytes shown as escapes, so
a U+202E in an SNI cannot reverse what the reader sees).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from analyzer.report.text import printable

if TYPE_CHECKING:
    import jinja2

    from analyzer.report.figures import ReportFigure
    from analyzer.report.summary import Summary

__all__ = ["content_security_policy", "render_html"]


@lru_cache(maxsize=1)
def _css() -> str:
    return resources.files("analyzer.report").joinpath("templates/report.css").read_text(encoding="utf-8")


def content_security_policy(css: str) -> str:
    """The page's policy: nothing may load but `data:` images and the one inline style (by hash)."""
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return (f"default-src 'none'; img-src data:; style-src 'sha256-{digest}'; base-uri 'none'; "
            "form-action 'none'")


def wire(value: Any) -> str:
    """A string from the wire (or any cell), shown as text: null -> '-', controls escaped."""
    from analyzer._pandas import pd

    if value is None or (not isinstance(value, list | tuple) and pd.isna(value)):
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(printable(str(v)) for v in value)
    return printable(str(value))


def number(value: Any) -> str:
    from analyzer._pandas import pd

    if value is None or pd.isna(value):
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def nbytes(value: Any) -> str:
    from analyzer.report.units import human_bytes

    return human_bytes(float(value or 0))


def share(value: Any) -> str:
    from analyzer._pandas import pd

    return "-" if value is None or pd.isna(value) else f"{100 * float(value):.0f}%"


def when(value: Any) -> str:
    from analyzer._pandas import pd

    if value is None or pd.isna(value):
        return "-"
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S UTC")


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("analyzer.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(wire=wire, number=number, nbytes=nbytes, share=share, when=when)
    return env


def _rows(frame: Any) -> list[dict[str, Any]]:
    return [dict(zip(frame.columns, row, strict=True)) for row in frame.itertuples(index=False, name=None)]


def render_html(summary: Summary, figures: Sequence[ReportFigure] = ()) -> str:
    """The report page of `summary`, with `figures` placed in their sections."""
    css = _css()
    by_section: dict[str, list[ReportFigure]] = {}
    for fig in figures:
        by_section.setdefault(fig.section, []).append(fig)
    t = summary.tables
    groups = [{**g, "examples": _rows(g["examples"]), "resolved_examples": _rows(g["resolved_examples"])}
              for g in summary.rule_groups]
    return _environment().get_template("report.html.j2").render(
        n=summary.numbers, css=css, csp=content_security_policy(css), figures=by_section, groups=groups,
        captures=_rows(t["captures"]), cleartext=_rows(t["cleartext"]), destinations=_rows(t["destinations"]),
        certificates=_rows(t["certificates"]), versions=_rows(t["versions"]), ciphers=_rows(t["ciphers"]),
        destinations_total=summary.numbers["destinations"]["total"],
        certificates_total=summary.numbers["certificates"]["total"],
    )
