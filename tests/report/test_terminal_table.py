"""The default terminal table (analyzer.report.terminal): what an auditor reads first, within 120
columns on every bundled capture; --all-columns shows every column; times say they are UTC."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import analyzer
from analyzer.cli import main
from analyzer.report.terminal import cell_width, fit, flows_view, render, summary_table

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
BUNDLED = sorted(p for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng", ".gz"))
SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def cli(*args: str) -> str:
    r = CliRunner().invoke(main, ["--quiet", *args])
    assert r.exit_code == 0, (r.output, r.exception)
    return r.stdout


@pytest.fixture(scope="module")
def audited() -> analyzer.Analysis:
    with pytest.warns(UserWarning, match="same content"):
        return analyzer.audit([str(CAPTURES)], vpc=["10.77.0.0/28"])


@pytest.mark.parametrize("path", [CAPTURES, *BUNDLED], ids=lambda p: p.name)
def test_the_default_flows_table_fits_120_columns(path: Path) -> None:
    text = cli("flows", str(path))
    lines = text.splitlines()
    assert max(map(cell_width, lines)) <= 120, max(lines, key=len)
    if lines != ["(no rows)"]:
        assert lines[0].split()[:3] == ["ts_start", "client_ip", "server"]
        assert all(SECOND.match(ln.split()[0]) for ln in lines[1:]), lines[1:3]


@pytest.mark.parametrize("frame", ["tls", "certs", "credentials"])
def test_the_other_summary_tables_fit_too(frame: str) -> None:
    lines = cli(frame, str(CAPTURES)).splitlines()
    assert len(lines) > 1 and max(map(cell_width, lines)) <= 120


def test_the_flows_view_reads_who_where_protocol_protection_version(audited: analyzer.Analysis) -> None:
    view = flows_view(audited.flows)
    assert list(view.columns) == ["ts_start", "client_ip", "server", "server_name", "protocol", "protection",
                                  "tls_version", "verdict"]
    assert view["protection"].equals(audited.flows["protection"])
    text, dropped = summary_table("flows", audited.flows)
    assert dropped == [] and max(map(cell_width, text.splitlines())) <= 120
    # (an HTTP CONNECT tunnel's server name is its TLS SNI, captures/http_connect_tls.pcap)
    http = audited.flows["app_protocol"].eq("http") & audited.flows["http_host"].notna() & audited.flows[
        "tls_server_name"].isna()
    assert view.loc[http, "server_name"].tolist() == audited.flows.loc[http, "http_host"].tolist()
    v6 = audited.flows["server_ip"].str.contains(":")
    assert view.loc[v6, "server"].str.match(r"^\[[0-9a-f:]+\]:\d+$").all()
    unknown = audited.flows["app_protocol"].isna()
    assert (view.loc[unknown, "protocol"] == audited.flows.loc[unknown, "transport"]).all()


def test_encrypted_stands_in_for_protection_on_frames_without_it(audited: analyzer.Analysis) -> None:
    cols = list(flows_view(audited.flows.drop(columns=["protection"])).columns)
    assert "encrypted" in cols and "protection" not in cols


@pytest.mark.parametrize("frame", ["flows", "tls", "certs"])
def test_all_columns_shows_every_column(frame: str) -> None:
    lines = cli(frame, str(CAPTURES), "--all-columns").splitlines()
    expected = list(analyzer.dissect.ALL[frame])
    assert lines[0].split() == expected
    if frame == "flows":  # times with their zone, to the microsecond
        ts_start = [ln.split()[expected.index("ts_start")] for ln in lines[1:]]
        assert all(MICRO.match(t) for t in ts_start), ts_start[:3]


def _frame(**columns: list[object]) -> pd.DataFrame:
    return pd.DataFrame({k: pd.array(v, dtype="string") if all(isinstance(x, str | None) for x in v) else v
                         for k, v in columns.items()})


def test_names_keep_their_end_and_addresses_are_never_cut() -> None:
    df = _frame(client_ip=["2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"], server_name=["a" * 80 + ".example.com"],
                cipher=["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" * 2])
    cells, dropped = fit(df, 80)
    assert dropped == []
    assert cells["client_ip"] == ["2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"]
    assert cells["server_name"][0].startswith("…") and cells["server_name"][0].endswith("a.example.com")
    assert cells["cipher"][0].startswith("TLS_ECDHE") and cells["cipher"][0].endswith("…")
    text, _ = render(df, 80)
    assert max(map(cell_width, text.splitlines())) <= 80


def test_too_narrow_leaves_columns_out_least_important_first() -> None:
    df = _frame(ts_start=["2026-01-01T00:00:00Z"], client_ip=["2001:db8::1"], server=["[2001:db8::2]:443"],
                server_name=["www.example.com"], protocol=["tls"], verdict=["fail"])
    cells, dropped = fit(df, 70, drop_first=("ts_start",))
    assert dropped == ["ts_start"] and "verdict" in cells
    cells, dropped = fit(df, 40, drop_first=("ts_start",))
    assert dropped[0] == "ts_start" and next(iter(cells)) == "client_ip"


def test_wire_strings_are_escaped_and_wide_characters_measured() -> None:
    df = _frame(server_name=["\x1b]0;owned\x07.example", "-", None, "例え.テスト"])
    text, _ = render(df, 120)
    assert "\x1b" not in text and "\\x1b]0;owned\\x07.example" in text
    rows = text.splitlines()
    assert rows[2].strip() == "\\x2d" and rows[3].strip() == "-"  # a "-" from the wire is not "missing"
    assert cell_width("例え.テスト") == 11
    narrow, _ = render(_frame(server_name=["例え" * 20 + ".テスト"], x=["y" * 30]), 40)
    assert max(map(cell_width, narrow.splitlines())) <= 40


def test_times_are_utc_and_say_so() -> None:
    berlin = pd.Series(pd.to_datetime(["2026-06-01 12:00:00.5"]).tz_localize("Europe/Berlin"))
    text, _ = render(pd.DataFrame({"ts": berlin}), 120)
    assert text.splitlines()[1] == "2026-06-01T10:00:00.500000Z"
    assert render(pd.DataFrame({"n": [1, 22]}), 120)[0].splitlines() == [" n", " 1", "22"]  # numbers align right
