"""The report's figures: SVG data URIs whose text is drawn as paths, with wire strings escaped even in
the comments matplotlib writes beside each text, and the same bytes for the same frames."""

from __future__ import annotations

import base64
from xml.etree import ElementTree

import pandas as pd

from analyzer import plots
from analyzer.report.figures import report_figures, svg_data_uri

HOSTILE = "--><script>alert(1)</script><!--"


def _flows() -> pd.DataFrame:
    return pd.DataFrame({
        "server_ip": ["10.0.0.1"], "server_port": pd.array([80], dtype="Int32"),
        "encrypted": pd.array([False], dtype="boolean"), "ip_bytes_to_server": [1000], "ip_bytes_to_client": [5000],
        "tls_server_name": [HOSTILE], "source": ["a.pcap"],
        "ts_start": pd.to_datetime(["2026-01-01T00:00:00Z"]), "ts_end": pd.to_datetime(["2026-01-01T00:00:01Z"]),
        "tls_version": pd.array([None], dtype="string"), "direction": ["egress"],
    })


def svg_of(uri: str) -> str:
    head, _, data = uri.partition(",")
    assert head == "data:image/svg+xml;base64"
    return base64.b64decode(data).decode()


def test_svg_text_is_paths_and_wire_strings_stay_in_escaped_comments() -> None:
    svg = svg_of(svg_data_uri(plots.top_cleartext_destinations(_flows())))
    root = ElementTree.fromstring(svg)  # well-formed: the hostile label did not break out of its comment
    tags = {el.tag.rpartition("}")[2] for el in root.iter()}
    assert "script" not in tags and "text" not in tags and "path" in tags
    assert "<script>" not in svg and "&lt;script&gt;alert(1)" in svg
    assert svg == svg_of(svg_data_uri(plots.top_cleartext_destinations(_flows())))  # no date: reproducible


def test_report_figures_have_their_sections_and_subject() -> None:
    frames = {"flows": _flows(), "findings": pd.DataFrame({"rule": ["cleartext-egress"], "severity": ["high"]}),
              "destinations": pd.DataFrame({"grade": ["F", None]}), "certs": pd.DataFrame()}
    figures = report_figures(frames, "a.pcap (1 capture, 1 flow)")
    assert [f.section for f in figures] == ["traffic", "traffic", "findings", "destinations", "tls"]
    assert all(f.alt and f.uri.startswith("data:image/svg+xml;base64,") for f in figures)
