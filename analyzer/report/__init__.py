"""Views of the frames: tables, files (CSV/JSONL/Parquet), and the audit report (HTML, Markdown, JSON).

Names load on first use: the streaming writers (analyzer.report.stream) work on Arrow tables and
must not pull in pandas, which the table/file writers of whole frames (analyzer.report.export) use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analyzer._lazy import lazy_attributes

if TYPE_CHECKING:
    from analyzer.report.document import REPORT_FORMATS, render_report
    from analyzer.report.export import FORMATS, csv_safe, neutralize_csv, write_frame
    from analyzer.report.stream import STREAM_FORMATS, FrameWriter, SortedSink, open_output

_LAZY = {
    "REPORT_FORMATS": "analyzer.report.document",
    "render_report": "analyzer.report.document",
    "FORMATS": "analyzer.report.export",
    "csv_safe": "analyzer.report.export",
    "neutralize_csv": "analyzer.report.export",
    "write_frame": "analyzer.report.export",
    "STREAM_FORMATS": "analyzer.report.stream",
    "FrameWriter": "analyzer.report.stream",
    "SortedSink": "analyzer.report.stream",
    "open_output": "analyzer.report.stream",
}

__all__ = ["FORMATS", "REPORT_FORMATS", "STREAM_FORMATS", "FrameWriter", "SortedSink", "csv_safe", "neutralize_csv",
           "open_output", "render_report", "write_frame"]


__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
