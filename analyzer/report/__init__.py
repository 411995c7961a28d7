"""Views of the frames: tables, files (CSV/JSONL/Parquet) and later HTML reports and plots."""

from analyzer.report.export import FORMATS, neutralize_csv, write_frame

__all__ = ["FORMATS", "neutralize_csv", "write_frame"]
