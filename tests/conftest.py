"""Shared pytest fixtures only (helpers live in the *_helpers.py modules next to this file)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def capture_file(tmp_path: Path) -> Callable[..., Path]:
    """Write bytes as a file in tmp_path and return its path: capture_file("name.pcap", data)."""

    def write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write
