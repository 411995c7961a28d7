"""Streamed outputs: `intransit flows|tls --format csv|jsonl|parquet` and analyzer.report.stream.

What is streamed equals what write_frame writes from the in-memory frame of analyze(): the same bytes
for CSV and JSON Lines, an equal frame (dtypes included) for Parquet. Tiny chunk, run and batch sizes
and fan-in (many runs, several merge passes) change nothing; an error leaves neither an output file
nor spill files; formula-looking strings from the wire stay neutralized in CSV.
"""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scapy.layers.inet import IP, TCP, UDP
from scapy.packet import Raw
from support.pcap_helpers import eth, pcap_bytes, write_packets
from support.tls_helpers import client_hello_body, handshake, record, server_hello_body, sni_ext

import analyzer
import analyzer.flows.table as flow_table
from analyzer import dissect as registry
from analyzer import pipeline, schema
from analyzer.cli import main
from analyzer.dissect.tls import schema as tls_schema
from analyzer.report import FrameWriter, SortedSink, open_output, stream, write_frame

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
BENCH_200K = ROOT / "bench" / "data" / "bench_200k.pcap"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
FORMATS = ["csv", "jsonl", "parquet"]
SCHEMAS = {"flows": registry.FLOWS, "tls": tls_schema.TLS}
HOSTILE_SNI = ["=HYPERLINK(1)", "+cmd", "@SUM(1)", "-2+3", "ok.example"]


@pytest.fixture(scope="module")
def reference() -> analyzer.Analysis:
    return analyzer.analyze([str(CAPTURES)])


def expected(df: pd.DataFrame, fmt: str, path: Path) -> bytes:
    write_frame(df, fmt, str(path))
    return path.read_bytes()


def assert_same_output(got: Path, df: pd.DataFrame, fmt: str, tmp_path: Path) -> None:
    """`got` holds what write_frame(df, fmt) writes (Parquet: reads back to an equal frame)."""
    assert got.exists(), got
    if fmt == "parquet":
        back = pd.read_parquet(got)
        pd.testing.assert_frame_equal(back, df)
        pd.testing.assert_frame_equal(back, pd.read_parquet(io.BytesIO(expected(df, fmt, tmp_path / "ref.parquet"))))
    else:
        want = expected(df, fmt, tmp_path / f"ref.{fmt}")
        assert got.read_bytes() == want


def invoke(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture
def tiny(monkeypatch):  # type: ignore[no-untyped-def]
    """Every size shrunk: flows end and reach the sinks a few at a time, each run holds 5 rows, batches 3,
    merges take 2 runs at a time (so several passes), row groups 4 rows."""
    monkeypatch.setattr(flow_table, "EXPORT_CHUNK", 2)
    monkeypatch.setattr(flow_table, "EXPORT_CHUNK_WITH_PAYLOAD", 2)
    monkeypatch.setattr(pipeline, "FLOW_ROWS_PER_FRAME", 3)
    monkeypatch.setattr(pipeline, "ROWS_PER_CHUNK", 4)
    monkeypatch.setattr(stream, "RUN_ROWS", 5)
    monkeypatch.setattr(stream, "BATCH_ROWS", 3)
    monkeypatch.setattr(stream, "FAN_IN", 2)
    monkeypatch.setattr(stream, "ROW_GROUP_ROWS", 4)


class Recorder:
    """A FrameSink keeping the chunks it is given."""

    def __init__(self) -> None:
        self.chunks: list[pd.DataFrame] = []
        self.closed = False

    def write(self, chunk: pd.DataFrame) -> None:
        self.chunks.append(chunk)

    def close(self) -> None:
        self.closed = True


# ------------------------------------------------------------------------ the CLI, end to end
@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_flows_file_equals_in_memory(tmp_path, reference, fmt):
    out, spill = tmp_path / "out" / f"flows.{fmt}", tmp_path / "spill"
    out.parent.mkdir()
    spill.mkdir()
    r = subprocess.run([sys.executable, "-m", "analyzer", "flows", str(CAPTURES), "--format", fmt, "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env={**ENV, "TMPDIR": str(spill)})
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert_same_output(out, reference.flows, fmt, tmp_path)
    assert os.listdir(out.parent) == [out.name] and os.listdir(spill) == []  # no staging or spill file left


@pytest.mark.parametrize("command", ["flows", "tls"])
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_cli_stdout_equals_in_memory(reference, command, fmt):
    r = invoke(command, str(CAPTURES), "--format", fmt)
    assert r.exit_code == 0, r.stderr
    want = io.StringIO()
    write_frame(getattr(reference, command), fmt, stream=want)
    assert len(getattr(reference, command)) and r.stdout == want.getvalue()


@pytest.mark.parametrize("command", ["flows", "tls"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_with_tiny_chunks_runs_and_fan_in_equals_in_memory(tmp_path, reference, tiny, command, fmt):
    out = tmp_path / f"{command}.{fmt}"
    r = invoke(command, str(CAPTURES), "--format", fmt, "--out", str(out))
    assert r.exit_code == 0, r.stderr
    # .tls is in dissection order, which follows the order flows end: with the same tiny sizes
    in_memory = getattr(analyzer.analyze([str(CAPTURES)]), command)
    assert_same_output(out, in_memory, fmt, tmp_path)
    if command == "flows":  # sorted: the same whatever the sizes
        pd.testing.assert_frame_equal(in_memory, reference.flows)


# ------------------------------------------------------------------------ the sink API
def test_analyze_hands_chunks_to_sinks_in_the_frames_order(tiny):
    reference = analyzer.analyze([str(CAPTURES)])
    flows, tls = Recorder(), Recorder()
    r = analyzer.analyze([str(CAPTURES)], sinks={"flows": flows, "tls": tls})
    assert not flows.closed and not tls.closed  # the caller closes
    for name, rec in (("flows", flows), ("tls", tls)):
        assert len(getattr(r, name)) == 0
        assert {c: str(t) for c, t in getattr(r, name).dtypes.items()} == SCHEMAS[name]
        assert len(rec.chunks) > 3
        for chunk in rec.chunks:
            assert {c: str(t) for c, t in chunk.dtypes.items()} == SCHEMAS[name]
    got_tls = pd.concat(tls.chunks, ignore_index=True)
    pd.testing.assert_frame_equal(got_tls, reference.tls)
    got_flows = pd.concat(flows.chunks, ignore_index=True)
    assert not got_flows["ts_start"].is_monotonic_increasing  # flow-end order: the sorting is needed
    order = np.lexsort((np.asarray(got_flows["uid"], dtype=object), got_flows["ts_start"].array.asi8))
    pd.testing.assert_frame_equal(got_flows.take(order).reset_index(drop=True), reference.flows)
    # the other frames are as without sinks
    pd.testing.assert_frame_equal(r.certs, reference.certs)
    pd.testing.assert_frame_equal(r.anomalies, reference.anomalies)


@pytest.mark.parametrize("fmt", FORMATS)
def test_sorted_sink_many_runs_and_merge_passes(tmp_path, reference, fmt):
    out = tmp_path / f"flows.{fmt}"
    writer = FrameWriter(fmt, str(out), registry.FLOWS, batch_rows=3, row_group_rows=4)
    with SortedSink(writer, pipeline.FRAME_ORDER["flows"], run_rows=4, batch_rows=3, fan_in=3) as sink:
        analyzer.analyze([str(CAPTURES)], sinks={"flows": sink})
        assert not out.exists()  # nothing appears before the sink is closed
    assert sink.runs >= len(reference.flows) // 4 and sink.merge_passes >= 2
    assert_same_output(out, reference.flows, fmt, tmp_path)


@pytest.mark.parametrize("seed", range(4))
def test_sorted_sink_is_a_stable_sort(tmp_path, seed):
    """Many equal keys (and missing timestamps): rows with equal (ts_start, uid) keep the order they
    were written in, as np.lexsort over the whole frame keeps them."""
    rng = np.random.default_rng(seed)
    n = 500
    ts = rng.integers(0, 6, n) * 1_000_000_000
    frame = schema.frame_from_columns({
        "ts_start": np.where(rng.random(n) < 0.1, np.nan, ts / 1e9),
        "uid": [f"C{k}" for k in rng.integers(0, 4, n)],
        "duration": np.arange(n, dtype=float),  # the position written: shows any reordering of ties
    }, registry.FLOWS, n)
    out = tmp_path / "sorted.parquet"
    writer = FrameWriter("parquet", str(out), registry.FLOWS)
    with SortedSink(writer, ("ts_start", "uid"), run_rows=int(rng.integers(3, 60)), batch_rows=int(rng.integers(1, 9)),
                    fan_in=int(rng.integers(2, 5))) as sink:
        start = 0
        while start < n:  # chunks of random sizes, as flows end
            size = int(rng.integers(1, 80))
            sink.write(frame.iloc[start:start + size].reset_index(drop=True))
            start += size
    order = np.lexsort((np.asarray(frame["uid"], dtype=object), frame["ts_start"].array.asi8))
    assert frame["ts_start"].isna().any() and sink.merge_passes >= 1
    pd.testing.assert_frame_equal(pd.read_parquet(out), frame.take(order).reset_index(drop=True))


@pytest.mark.parametrize("seed", range(4))
def test_sorted_sink_passes_ordered_input_on(tmp_path, seed):
    """Rows written in order (a Dask run's partitions, each sorted on its worker) are neither sorted
    nor merged again (`SortedSink.ordered`: held in memory up to hold_bytes, spilled unsorted beyond);
    one chunk out of place and the same rows are sorted and merged as before. Both give the stable
    sort of the whole frame (ties, missing timestamps)."""
    rng = np.random.default_rng(seed)
    n = 400
    ts = rng.integers(0, 6, n) * 1_000_000_000
    frame = schema.frame_from_columns({
        "ts_start": np.where(rng.random(n) < 0.1, np.nan, ts / 1e9),
        "uid": [f"C{k}" for k in rng.integers(0, 4, n)],
        "duration": np.arange(n, dtype=float),
    }, registry.FLOWS, n)
    order = np.lexsort((np.asarray(frame["uid"], dtype=object), frame["ts_start"].array.asi8))
    want = frame.take(order).reset_index(drop=True)
    cuts = sorted({0, n, *rng.integers(1, n, 12).tolist()})
    chunks = [want.iloc[a:b].reset_index(drop=True) for a, b in itertools.pairwise(cuts)]
    swapped = [*chunks]
    swapped[-1], swapped[-2] = swapped[-2], swapped[-1]  # the last two out of place: unordered from there
    for parts, ordered, hold in ((chunks, True, 0), (chunks, True, None), (swapped, False, 0), (swapped, False, None)):
        out = tmp_path / f"sorted-{ordered}-{hold}.parquet"
        with SortedSink(FrameWriter("parquet", str(out), registry.FLOWS), ("ts_start", "uid"),
                        run_rows=int(rng.integers(3, 60)), batch_rows=int(rng.integers(1, 9)), fan_in=3,
                        hold_bytes=hold) as sink:
            for part in parts:
                sink.write(part)
        assert sink.ordered is ordered
        # in order: held in memory (by default) or spilled as runs that are not merged; else sorted and merged
        assert sink.runs == 0 if ordered and hold is None else sink.runs > 1
        assert (sink.merge_passes == 0) if ordered else (sink.merge_passes >= 1)
        written = pd.concat(parts, ignore_index=True)  # stable: ties keep the order written
        again = np.lexsort((np.asarray(written["uid"], dtype=object), written["ts_start"].array.asi8))
        pd.testing.assert_frame_equal(pd.read_parquet(out), written.take(again).reset_index(drop=True))
        if ordered:
            pd.testing.assert_frame_equal(pd.read_parquet(out), want)


def test_csv_datetimes_keep_the_whole_columns_resolution(tmp_path, reference):
    """pandas writes every cell of a datetime column with the finest resolution found in that column:
    a first chunk of whole seconds must still get the microseconds a later chunk has."""
    flows = reference.flows.copy()
    half = len(flows) // 2
    flows.loc[: half - 1, "ts_start"] = flows.loc[: half - 1, "ts_start"].dt.floor("s")
    flows.loc[:, "ts_end"] = flows["ts_end"].dt.floor("s")
    flows.loc[len(flows) - 1, "ts_end"] += pd.Timedelta(nanoseconds=7)  # one nanosecond value, in the last chunk
    assert flows["cert_not_after"].notna().any()
    for fmt in FORMATS:
        out = tmp_path / f"res.{fmt}"
        with FrameWriter(fmt, str(out), registry.FLOWS, batch_rows=5) as writer:
            for start in range(0, len(flows), 7):
                writer.write(flows.iloc[start:start + 7].reset_index(drop=True))
        assert_same_output(out, flows, fmt, tmp_path)
    text = (tmp_path / "res.csv").read_text()
    assert ".000000000+00:00" in text.splitlines()[1]  # the nanosecond at the end reached the first row


def test_tls_frame_streams_in_dissection_order(tmp_path, reference):
    for fmt in FORMATS:
        out = tmp_path / f"tls.{fmt}"
        with open_output(fmt, str(out), tls_schema.TLS) as sink:
            analyzer.analyze([str(CAPTURES)], sinks={"tls": sink}, frames=("tls",))
        assert_same_output(out, reference.tls, fmt, tmp_path)


def test_empty_capture_streams_the_schema(tmp_path):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(pcap_bytes([]))
    for fmt in FORMATS:
        out = tmp_path / f"e.{fmt}"
        with open_output(fmt, str(out), registry.FLOWS, sort_by=pipeline.FRAME_ORDER["flows"]) as sink:
            analyzer.analyze([str(empty)], sinks={"flows": sink})
        assert_same_output(out, schema.empty_frame(registry.FLOWS), fmt, tmp_path)


def test_bad_sink_requests_are_usage_errors(tmp_path):
    with pytest.raises(analyzer.UsageError, match="certs"):
        analyzer.analyze([str(CAPTURES)], sinks={"certs": Recorder()})
    with pytest.raises(analyzer.UsageError, match="frames"):
        analyzer.analyze([str(CAPTURES)], sinks={"tls": Recorder()}, frames=("flows",))
    with pytest.raises(ValueError, match="--out"):
        open_output("parquet", None, registry.FLOWS)
    with pytest.raises(ValueError, match="table"):
        open_output("table", str(tmp_path / "t.txt"), registry.FLOWS)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------ errors leave nothing
@pytest.mark.parametrize("command", ["flows", "tls"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_unreadable_capture_leaves_no_output_and_no_temp_files(tmp_path, command, fmt):
    bad, out_dir, spill = tmp_path / "bad.pcap", tmp_path / "out", tmp_path / "spill"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    out_dir.mkdir()
    spill.mkdir()
    out = out_dir / f"result.{fmt}"
    r = subprocess.run([sys.executable, "-m", "analyzer", command, str(bad), "--format", fmt, "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env={**ENV, "TMPDIR": str(spill)})
    assert r.returncode == 2
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and str(bad) in err[0] and "not a pcap or pcapng" in err[0], err
    assert os.listdir(out_dir) == [] and os.listdir(spill) == []


def _later_and_cut(tmp_path: Path) -> list[str]:
    """A good capture much later than the bundled ones (their flows end and reach the sinks), then one
    cut inside its last record (fatal with strict=True)."""
    pkt = bytes(eth() / IP(src="10.9.0.1", dst="10.9.0.2") / UDP(sport=1000, dport=53) / Raw(b"q"))
    later, cut = tmp_path / "later.pcap", tmp_path / "cut.pcap"
    later.write_bytes(pcap_bytes([(2_000_000_000 * 10**9, pkt)], nanos=True))
    cut.write_bytes(pcap_bytes([(2_000_000_001 * 10**9 + i, pkt) for i in range(3)], nanos=True)[:-3])
    return [*sorted(str(p) for p in CAPTURES.glob("*.pcap")), str(later), str(cut)]


@pytest.mark.parametrize("command", ["flows", "tls"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_error_after_chunks_were_written_leaves_the_old_output_and_no_temp_files(tmp_path, monkeypatch, tiny,
                                                                                  command, fmt):
    paths = _later_and_cut(tmp_path)
    out_dir, spill = tmp_path / "out", tmp_path / "spill"
    out_dir.mkdir()
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))
    out = out_dir / f"result.{fmt}"
    out.write_bytes(b"previous run")
    written = []
    for cls in (stream.SortedSink, stream.FrameWriter):  # analyze() hands Arrow chunks to either sink
        def spy(self, table, original=cls.write_table):  # type: ignore[no-untyped-def]
            written.append(table.num_rows)
            original(self, table)

        monkeypatch.setattr(cls, "write_table", spy)
    r = invoke(command, *paths, "--format", fmt, "--out", str(out), "--strict")
    assert r.exit_code == 2 and "cut.pcap" in r.stderr
    assert sum(written) > 5  # rows had been handed to the sink before the error
    assert sorted(os.listdir(out_dir)) == [out.name] and out.read_bytes() == b"previous run"
    assert os.listdir(spill) == []


# ------------------------------------------------------------------------ hostile strings
def _hostile_sni_capture(path: Path) -> Path:
    pkts = []
    for k, sni in enumerate(HOSTILE_SNI):
        c, s, cp = "10.0.0.1", "10.0.0.2", 40000 + k
        ch = record(22, handshake(1, client_hello_body(extensions=[sni_ext(sni)])))
        sh = record(22, handshake(2, server_hello_body()))
        pkts += [
            eth() / IP(src=c, dst=s) / TCP(sport=cp, dport=443, flags="S", seq=100),
            eth() / IP(src=s, dst=c) / TCP(sport=443, dport=cp, flags="SA", seq=500, ack=101),
            eth() / IP(src=c, dst=s) / TCP(sport=cp, dport=443, flags="PA", seq=101, ack=501) / Raw(ch),
            eth() / IP(src=s, dst=c) / TCP(sport=443, dport=cp, flags="PA", seq=501, ack=101 + len(ch)) / Raw(sh),
        ]
    return write_packets(path, pkts)


@pytest.mark.parametrize(("command", "column"), [("flows", "tls_server_name"), ("tls", "server_name")])
def test_streamed_csv_neutralizes_hostile_server_names(tmp_path, tiny, command, column):
    cap = _hostile_sni_capture(tmp_path / "sni.pcap")
    out = tmp_path / "out.csv"
    assert invoke(command, str(cap), "--format", "csv", "--out", str(out)).exit_code == 0
    names = pd.read_csv(out, dtype=str)[column].tolist()
    assert sorted(names) == sorted(("'" + n if n[0] in "=+-@" else n) for n in HOSTILE_SNI)
    frame = getattr(analyzer.analyze([str(cap)]), command)
    assert sorted(frame[column]) == sorted(HOSTILE_SNI)  # the frame itself keeps what was on the wire
    assert_same_output(out, frame, "csv", tmp_path)


# ------------------------------------------------------------------------ a realistic capture
@pytest.mark.slow
@pytest.mark.skipif(not BENCH_200K.exists(), reason=f"{BENCH_200K} is absent (made by bench/run_bench.py)")
def test_bench_capture_streams_like_in_memory(tmp_path):
    ref = analyzer.analyze([str(BENCH_200K)])
    assert len(ref.flows) > 5000
    for fmt in ("parquet", "csv"):
        out = tmp_path / f"flows.{fmt}"
        r = subprocess.run([sys.executable, "-m", "analyzer", "flows", str(BENCH_200K), "--format", fmt,
                            "--out", str(out)], capture_output=True, text=True, timeout=600, env=ENV)
        assert r.returncode == 0, r.stderr
        assert_same_output(out, ref.flows, fmt, tmp_path)
    out = tmp_path / "small_runs.parquet"
    writer = FrameWriter("parquet", str(out), registry.FLOWS, batch_rows=256)
    with SortedSink(writer, pipeline.FRAME_ORDER["flows"], run_rows=1000, batch_rows=256, fan_in=4) as sink:
        analyzer.analyze([str(BENCH_200K)], sinks={"flows": sink}, frames=("flows",))
    assert sink.merge_passes >= 1
    pd.testing.assert_frame_equal(pd.read_parquet(out), ref.flows)
    out = tmp_path / "tls.jsonl"
    with FrameWriter("jsonl", str(out), tls_schema.TLS) as tls_sink:
        analyzer.analyze([str(BENCH_200K)], sinks={"tls": tls_sink}, frames=("tls",))
    assert_same_output(out, ref.tls, "jsonl", tmp_path)
