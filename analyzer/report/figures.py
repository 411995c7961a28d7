"""The report's figures: `analyzer.plots` drawn to SVG and embedded as `data:` URIs.

An `<img src="data:image/svg+xml;base64,...">` is what a strict Content-Security-Policy
(`img-src data:`) lets through, and an SVG shown as an image runs no script and loads nothing, so
a figure cannot carry the report out of its sandbox even if a wire string drawn in it were hostile
(matplotlib draws text as glyph paths: `svg.fonttype = path`). The SVG metadata's date is left out,
so the same frames give the same bytes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analyzer import plots

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["ReportFigure", "report_figures", "svg_data_uri"]


@dataclass(frozen=True)
class ReportFigure:
    """One embedded figure: the section it belongs to, its alternative text and its data URI."""

    section: str
    alt: str
    uri: str


def svg_data_uri(fig: Figure) -> str:
    """The figure as an SVG `data:` URI (text as paths; no date, so the output is reproducible)."""
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "intransit"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def report_figures(frames: Mapping[str, pd.DataFrame], subject: str) -> list[ReportFigure]:
    """The figures of the report's sections, each titled with the capture (`subject`)."""
    flows, certs = frames["flows"], frames["certs"]
    at = flows["ts_end"].max() if len(flows) else None
    wanted: list[tuple[str, str, Callable[[], Figure]]] = [
        ("traffic", "Share of bytes encrypted, in clear text and undecided, by direction",
         lambda: plots.protection_share(flows, subtitle=subject)),
        ("traffic", "Top cleartext egress destinations by bytes",
         lambda: plots.top_cleartext_destinations(flows, subtitle=subject)),
        ("findings", "Findings by rule, stacked by severity",
         lambda: plots.findings_by_rule(frames["findings"], subtitle=subject)),
        ("destinations", "Destinations by grade",
         lambda: plots.destinations_by_grade(frames["destinations"], subtitle=subject)),
        ("tls", "TLS versions negotiated over time",
         lambda: plots.tls_versions_over_time(flows, subtitle=subject)),
    ]
    if at is not None and len(certs):
        wanted.append(("certificates", "Days each certificate had left at the end of the capture",
                       lambda: plots.certificate_runway(certs, at, subtitle=subject)))
    out = []
    for section, alt, draw in wanted:
        fig: Any = draw()
        out.append(ReportFigure(section, alt, svg_data_uri(fig)))
    return out
