"""Views of the frames: tables, files (CSV/JSONL/Parquet) and later HTML reports and plots.

Names load on first use: the streaming writers (analyzer.report.stream) work on Arrow tables and
must not pull in pandas, which the table/file writers of whole frames (analyzer.report.export) use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analyzer.report.export import FORMATS, csv_safe, neutralize_csv, write_frame
    from analyzer.report.stream import STREAM_FORMATS, FrameWriter, SortedSink, open_output

_LAZY = {
    "FORMATS": "analyzer.report.export",
    "csv_safe": "analyzer.report.export",
    "neutralize_csv": "analyzer.report.export",
    "write_frame": "analyzer.report.export",
    "STREAM_FORMATS": "analyzer.report.stream",
    "FrameWriter": "analyzer.report.stream",
    "SortedSink": "analyzer.report.stream",
    "open_output": "analyzer.report.stream",
}

__all__ = ["FORMATS", "STREAM_FORMATS", "FrameWriter", "SortedSink", "csv_safe", "neutralize_csv", "open_output",
           "write_frame"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'analyzer.report' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
