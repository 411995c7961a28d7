"""The table format in bounded memory (issue 16 item 4): a table shows at most --limit rows (1000 by
default; flows: the earliest), kept by a TableSink during the analysis, and says on stderr how many
it left out; within the limit it is the whole frame's table, byte for byte."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from support.pcap_helpers import pcap_bytes

import analyzer
from analyzer.cli import main
from analyzer.report import write_frame
from analyzer.report.terminal import TABLE_ROWS, TableSink, more_rows_note, summary_table

ROOT = Path(__file__).resolve().parents[2]
FLOWS_ORDER = ("ts_start", "uid")


def udp_frame(i: int) -> bytes:
    """Ethernet/IPv4/UDP from 10.1.x.y:(1024 + i % 50000) to 10.2.0.1:53: a flow of its own for every
    i < 100,000 (the address repeats after 65,536, the port then differs)."""
    payload = b"\x00" * 8
    src = bytes([10, 1, (i >> 8) & 0xFF, i & 0xFF])
    udp = struct.pack(">HHHH", 1024 + i % 50000, 53, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, bytes([10, 2, 0, 1]))
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + udp


def one_packet_flows(path: Path, n: int, *, reverse: bool = False) -> Path:
    """n one-packet UDP flows, 1 ms apart (in reverse order of address when `reverse`)."""
    order = range(n - 1, -1, -1) if reverse else range(n)
    path.write_bytes(pcap_bytes((1_700_000_000_000_000_000 + k * 1_000_000, udp_frame(i)) for k, i in enumerate(order)))
    return path


def cli(*args: str) -> tuple[str, str]:
    r = CliRunner().invoke(main, ["--quiet", *args])
    assert r.exit_code == 0, (r.output, r.exception)
    return r.stdout, r.stderr


# ------------------------------------------------------------------------------------ the sink

def _frame(n: int) -> pa.Table:
    rng = np.random.default_rng(7)
    ts = rng.integers(0, n // 3, n) * 1_000_000_000  # ties on ts_start: uid breaks them
    uid = pa.array([f"C{v:08d}" for v in rng.permutation(n)], pa.large_string())
    return pa.table({"ts_start": pa.array(ts, pa.timestamp("ns", "UTC")), "uid": uid, "n": np.arange(n)})


SCHEMA = {"ts_start": "datetime64[ns, UTC]", "uid": "string", "n": "Int64"}


@pytest.mark.parametrize("limit", [1, 7, 100, 0])
def test_the_sink_keeps_the_first_rows_in_the_frames_order_and_counts_the_rest(limit: int) -> None:
    whole = _frame(5000)
    sink = TableSink(SCHEMA, limit=limit, sort_by=FLOWS_ORDER)
    most = 0
    for start in range(0, 5000, 333):  # chunks in another order than the frame's, as flows end
        sink.write_table(whole.slice(start, 333))
        most = max(most, sink._kept_rows)
    expected = whole.to_pandas().sort_values(list(FLOWS_ORDER), kind="stable").head(limit or None)
    got = sink.frame()
    assert got["n"].tolist() == expected["n"].tolist()
    assert sink.more == (5000 - limit if limit else 0)
    if limit:  # bounded: twice the limit plus one chunk, whatever the frame's length
        assert most < 2 * limit + 333


def test_without_an_order_the_first_rows_come_as_written() -> None:
    whole = _frame(1000)
    sink = TableSink(SCHEMA, limit=250)
    for start in range(0, 1000, 100):
        sink.write(whole.slice(start, 100).to_pandas())
    assert sink.frame()["n"].tolist() == list(range(250)) and sink.more == 750
    assert sink._kept_rows == 250


def test_an_empty_sink_gives_the_schema() -> None:
    got = TableSink(SCHEMA).frame()
    assert len(got) == 0 and list(got.columns) == list(SCHEMA)
    assert more_rows_note(1) == ("… and 1 more row (use --format csv|jsonl|parquet --out FILE for all of them, "
                                 "or --limit)")


# ------------------------------------------------------------------------------------ the command

def test_within_the_limit_the_table_is_the_whole_frames(tmp_path: Path) -> None:
    cap = one_packet_flows(tmp_path / "u.pcap", 40, reverse=True)
    flows = analyzer.analyze([str(cap)], frames=("flows",)).flows
    out, err = cli("flows", str(cap))
    assert out == summary_table("flows", flows)[0] and err == ""
    out, err = cli("flows", str(cap), "--all-columns", "--limit", "40")
    whole = tmp_path / "whole.txt"
    write_frame(flows, "table", str(whole))
    assert out == whole.read_text() and err == ""


def test_past_the_limit_the_earliest_rows_and_a_count(tmp_path: Path) -> None:
    cap = one_packet_flows(tmp_path / "u.pcap", 40, reverse=True)
    flows = analyzer.analyze([str(cap)], frames=("flows",)).flows
    out, err = cli("flows", str(cap), "--limit", "15")
    assert out == summary_table("flows", flows.head(15))[0]
    assert err == more_rows_note(25) + "\n"
    lines = out.splitlines()
    assert len(lines) == 16 and lines[1].split()[1] == "10.1.0.39"  # the first packet's flow, first
    out, err = cli("flows", str(cap), "--limit", "15", "--all-columns")
    assert len(out.splitlines()) == 16 and "uid" in out.splitlines()[0] and err == more_rows_note(25) + "\n"
    out, err = cli("flows", str(cap), "--limit", "0")
    assert len(out.splitlines()) == 41 and err == ""


def test_other_frames_and_the_audit_are_cut_too(tmp_path: Path) -> None:
    out, err = cli("certs", str(ROOT / "captures"), "--limit", "2")
    whole, _ = cli("certs", str(ROOT / "captures"), "--limit", "0")
    assert len(out.splitlines()) == 3 and more_rows_note(len(whole.splitlines()) - 3) + "\n" in err
    audit = ["--quiet", "audit", str(ROOT / "captures"), "--fail-on", "never"]
    r, whole = (CliRunner().invoke(main, [*audit, "--limit", n]) for n in ("3", "0"))
    assert r.exit_code == whole.exit_code == 0, r.output
    rows = whole.stdout.splitlines()
    header = next(i for i, line in enumerate(rows) if line.startswith("severity"))
    assert len(rows) - header - 1 > 3, whole.stdout
    got = r.stdout.splitlines()  # the summary, then the 3 most severe findings (fitted to their own widths)
    assert len(got) == header + 4 and got[:header] == rows[:header]
    assert [line.split()[0] for line in got[header:]] == [line.split()[0] for line in rows[header:header + 4]]
    assert rows[header + 1].split()[0] == "critical"
    assert more_rows_note(len(rows) - header - 4) in r.stderr


def _peak_rss_mb(*args: str) -> tuple[float, str]:
    """Peak RSS (MB) of `intransit ARGS` in a process of its own (getrusage of its children: only it)."""
    probe = ("import resource, subprocess, sys\n"
             "r = subprocess.run([sys.executable, '-m', 'analyzer', *sys.argv[1:]], capture_output=True, text=True)\n"
             "assert r.returncode == 0, r.stderr\n"
             "sys.stderr.write(r.stderr)\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n")
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    return float(done.stdout), done.stderr


def test_a_table_of_many_flows_stays_in_bounded_memory(tmp_path: Path) -> None:
    """100k one-packet flows (--max-flows 1024: the flow table stays small, so what grows is the output):
    the default table stays well below the whole frame's table (--limit 0), and says what it left out."""
    cap = one_packet_flows(tmp_path / "many.pcap", 100_000)
    bounded, err = _peak_rss_mb("flows", str(cap), "--quiet", "--max-flows", "1024")
    assert more_rows_note(100_000 - TABLE_ROWS) in err
    whole, _ = _peak_rss_mb("flows", str(cap), "--quiet", "--max-flows", "1024", "--limit", "0")
    assert bounded < whole - 50, (bounded, whole)  # measured: 316 MB and 575 MB (50k flows: 397 and 479)


def test_the_anomalies_table_goes_through_the_sink_unchanged(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="same content"):
        anomalies = analyzer.analyze([str(ROOT / "captures")], frames=()).anomalies
    whole = tmp_path / "whole.txt"
    write_frame(anomalies, "table", str(whole))
    out, _ = cli("anomalies", str(ROOT / "captures"))
    assert len(anomalies) and out == whole.read_text()


def test_the_cli_default_is_the_tables() -> None:
    from analyzer.cli import TABLE_ROWS as CLI_ROWS

    assert CLI_ROWS == TABLE_ROWS
