"""Views of the frames: tables, files (CSV/JSONL/Parquet) and later HTML reports and plots."""

from analyzer.report.export import FORMATS, csv_safe, neutralize_csv, write_frame
from analyzer.report.stream import STREAM_FORMATS, FrameWriter, SortedSink, open_output

__all__ = ["FORMATS", "STREAM_FORMATS", "FrameWriter", "SortedSink", "csv_safe", "neutralize_csv", "open_output",
           "write_frame"]
