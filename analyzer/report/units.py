"""Quantities as a person reads them, shared by the plots and the report (no heavy import here: the
Markdown and JSON reports draw nothing and must not load matplotlib)."""

from __future__ import annotations

__all__ = ["human_bytes"]


def human_bytes(n: float) -> str:
    """A byte count in decimal units: 950 B, 12.3 kB, 4.5 MB, ... TB."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"
