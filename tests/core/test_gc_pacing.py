"""analyze() paces the cyclic collector for the run and gives the caller its settings back."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

import analyzer
from analyzer._gc import YOUNG_THRESHOLD, paced_gc

CAPTURE = str(Path(__file__).resolve().parents[2] / "captures" / "http_plain.pcap")


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


def test_the_command_paces_the_collector_from_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """`intransit` (console script and `python -m analyzer`) raises the young threshold before the
    imports of pandas and pyarrow, whose allocations otherwise ran ~175 collections."""
    from analyzer import cli

    seen: list[tuple[int, int, int]] = []
    monkeypatch.setattr(cli, "main", lambda **kwargs: seen.append(gc.get_threshold()))
    before = gc.get_threshold()
    try:
        cli.run()
    finally:
        gc.set_threshold(*before)
    assert seen and seen[0][0] == max(YOUNG_THRESHOLD, before[0]) and seen[0][1:] == before[1:]
    import tomllib

    scripts = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["intransit"] == "analyzer.cli:run"


def test_a_run_under_a_larger_threshold_still_freezes_and_keeps_it() -> None:
    before = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD * 2, *before[1:])
    try:
        seen: list[tuple[tuple[int, int, int], int]] = []

        @paced_gc
        def run() -> None:
            seen.append((gc.get_threshold(), gc.get_freeze_count()))

        run()
        assert seen[0][0][0] == YOUNG_THRESHOLD * 2 and seen[0][1] > 0
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD * 2 and gc.get_freeze_count() == 0
    finally:
        gc.set_threshold(*before)
