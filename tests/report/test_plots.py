"""Every plot renders to a PNG that is not blank and carries its labels, on real analyses and on
empty frames; wire strings are drawn as text."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

import analyzer
from analyzer import plots

CAPTURES = Path(__file__).resolve().parents[2] / "captures"


@pytest.fixture(scope="module")
def result() -> analyzer.Analysis:
    return analyzer.analyze([str(CAPTURES)], on_problem=lambda p: None)


def rendered(fig: Figure) -> np.ndarray:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    buf.seek(0)
    return imread(buf)


def texts(fig: Figure) -> str:
    return " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def assert_drawn(fig: Figure, *words: str) -> None:
    image = rendered(fig)
    assert image.std() > 0.01, "the figure is blank"
    got = texts(fig)
    for word in words:
        assert word in got, (word, got[:300])


def test_protection_share(result: analyzer.Analysis) -> None:
    fig = plots.protection_share(result.flows)
    assert_drawn(fig, "Encrypted and cleartext traffic by app protocol", "share of bytes (%)", "encrypted",
                 "undecided", "tls")
    by_direction = result.flows.assign(direction=np.where(result.flows["server_port"] == 443, "egress", "internal"))
    assert_drawn(plots.protection_share(by_direction, weight="flows"), "by direction", "egress", "share of flows")
    with pytest.raises(ValueError):
        plots.protection_share(result.flows, weight="packets")


def test_tls_versions_over_time_has_integer_counts(result: analyzer.Analysis) -> None:
    fig = plots.tls_versions_over_time(result.flows)
    assert_drawn(fig, "TLS versions negotiated over time", "TLS 1.3", "TLS 1.2", "flows", "UTC")
    ticks = fig.axes[0].get_yticks()
    assert np.allclose(ticks, np.round(ticks))


def test_top_cleartext_destinations_and_wire_strings() -> None:
    flows = pd.DataFrame({
        "server_ip": ["10.0.0.1", "10.0.0.2"], "server_port": pd.array([80, 21], dtype="Int32"),
        "encrypted": pd.array([False, False], dtype="boolean"), "ip_bytes_to_server": [1000, 50],
        "ip_bytes_to_client": [5000, 70], "tls_server_name": [None, "$x$<script>"],
        "source": ["a.pcap", "a.pcap"],
    })
    fig = plots.top_cleartext_destinations(flows)
    assert_drawn(fig, "Top cleartext destinations", "10.0.0.1:80", "bytes in clear text", "6.0 kB")
    assert "\\$x\\$<script>:21" in texts(fig)  # drawn literally, not as mathtext


def test_certificate_runway(result: analyzer.Analysis) -> None:
    at = result.flows["ts_end"].max()
    fig = plots.certificate_runway(result.certs, at)
    assert_drawn(fig, "Certificate expiry runway", "days left on", "expired.example.com")
    widths = [p.get_width() for p in fig.axes[0].patches]
    assert min(widths) < 0 < max(widths)  # the expired certificate is below zero


def test_findings_and_grades() -> None:
    findings = pd.DataFrame({"rule": ["tls-legacy-version", "tls-legacy-version", "cert-expired"],
                             "severity": ["high", "medium", "high"]})
    assert_drawn(plots.findings_by_rule(findings), "Findings by rule", "tls-legacy-version", "high", "findings")
    dest = pd.DataFrame({"grade": ["A", "A", "F", "C"]})
    fig = plots.destinations_by_grade(dest)
    assert_drawn(fig, "Destinations by grade", "destinations")
    assert [round(p.get_height()) for p in fig.axes[0].patches] == [2, 1, 1]


@pytest.mark.parametrize("name", ["protection_share", "tls_versions_over_time", "top_cleartext_destinations"])
def test_empty_analyses_draw_a_message(name: str) -> None:
    empty = analyzer.analyze([str(CAPTURES / "tcp_rst_closed_port.pcap")], on_problem=lambda p: None).flows
    assert_drawn(getattr(plots, name)(empty.iloc[0:0]), "no ")


def test_legends_sit_below_the_axes(result: analyzer.Analysis) -> None:
    """A legend inside the axes covered the longest bars; each is now the figure's, under the axes."""
    for fig in (plots.protection_share(result.flows), plots.tls_versions_over_time(result.flows),
                plots.findings_by_rule(pd.DataFrame({"rule": ["a", "b"], "severity": ["high", "low"]}))):
        assert fig.axes[0].get_legend() is None and len(fig.legends) == 1
        fig.canvas.draw()
        legend = fig.legends[0].get_window_extent()
        assert legend.y1 <= fig.axes[0].get_window_extent().y0  # entirely below the axes


def test_ungraded_destinations_and_subtitles() -> None:
    dest = pd.DataFrame({"grade": pd.array(["A", None, "F"], dtype="string")})
    fig = plots.destinations_by_grade(dest, subtitle="day1.pcap (3 flows)")
    assert_drawn(fig, "not judged", "day1.pcap (3 flows)", "grade (A best, F worst)")
    assert "<NA>" not in texts(fig)
    findings = pd.DataFrame({"rule": ["cert-expired"], "severity": ["high"]})
    assert_drawn(plots.findings_by_rule(findings, subtitle="day1.pcap"), "day1.pcap")


def test_long_wire_names_are_cut_in_tick_labels() -> None:
    name = "a" * 200 + ".example"
    flows = pd.DataFrame({
        "server_ip": ["10.0.0.1"], "server_port": pd.array([80], dtype="Int32"),
        "encrypted": pd.array([False], dtype="boolean"), "ip_bytes_to_server": [1000], "ip_bytes_to_client": [5000],
        "tls_server_name": [name], "source": ["a.pcap"],
    })
    fig = plots.top_cleartext_destinations(flows)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["a" * 35 + "…" + "a.example:80"] and len(labels[0]) == 48  # the port is kept
