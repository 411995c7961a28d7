"""analyze() paces the cyclic collector for the run and gives the caller its settings back."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

import analyzer
from analyzer._gc import YOUNG_THRESHOLD, paced_gc

CAPTURE = str(Path(__file__).resolve().parents[1] / "captures" / "http_plain.pcap")


def test_settings_are_paced_during_the_run_and_restored_after() -> None:
    before = gc.get_threshold()
    seen: list[tuple[tuple[int, int, int], int]] = []

    @paced_gc
    def run() -> None:
        seen.append((gc.get_threshold(), gc.get_freeze_count()))
        analyzer.analyze([CAPTURE])  # nested: leaves the settings alone
        seen.append((gc.get_threshold(), gc.get_freeze_count()))

    run()
    assert seen[0][0][0] == YOUNG_THRESHOLD and seen[0][1] > 0
    assert seen[1][0] == seen[0][0] and seen[1][1] > 0  # (frozen objects may die meanwhile)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_an_error_restores_the_settings() -> None:
    before = gc.get_threshold()
    with pytest.raises(analyzer.CaptureError):
        analyzer.analyze(["/nonexistent/capture.pcap"])
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_callers_freeze_is_kept() -> None:
    gc.freeze()
    try:
        analyzer.analyze([CAPTURE])
        assert gc.get_freeze_count() > 0  # not unfrozen by the run
    finally:
        gc.unfreeze()
