"""The Dask engine's distributed outputs: dask.dataframe collections that compute to the serial
frames, and a Parquet dataset written by the workers, partitioned by date and vantage, that reads
back as the serial frames (captures cut into byte ranges and rotated files, failing captures, FTP
links across partitions, the serial fallback, the CLI)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")

import pandas as pd
from support.engine_helpers import differences, failing_captures, run
from support.pcap_helpers import pcap_records, write_rotated

import analyzer
from analyzer.engines.dask import DaskEngine
from analyzer.engines.dask_output import Dataset, DistributedAnalysis
from analyzer.errors import UsageError

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
# TLS resumption (certs Dedup rows across flows), STARTTLS hand-over, VXLAN mirroring (a vantage)
SAMPLE = [CAPTURES / n for n in ("tls12_resumption.pcap", "smtp_starttls.pcap", "vxlan_mirror.pcap")]


def read_dataset(path: Path, frame_schema) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """A frame's dataset read back as a user would (pandas.read_parquet of the directory), without
    the partition columns; empty (with the schema) when no row was written."""
    if not path.exists():
        from analyzer import schema

        return schema.empty_frame(frame_schema)
    df = pd.read_parquet(path)
    return df.drop(columns=[c for c in ("date", "vantage") if c in df.columns])


def dataset_differences(serial, path: Path, frames) -> list[str]:  # type: ignore[no-untyped-def]
    """What differs between the serial frames and those read back from the dataset at `path`."""
    written = {name: read_dataset(path / name, serial.schemas[name]) for name in frames}
    return differences(_Frames(serial, frames), _Frames(written, frames, serial.stats))


class _Frames:
    """The few things `differences` reads of an analysis, for a subset of frames or a dict of them."""

    def __init__(self, source, names, stats=None) -> None:  # type: ignore[no-untyped-def]
        self.source, self.frame_names = source, tuple(names)
        self.stats = stats if stats is not None else source.stats

    def __getitem__(self, name):  # type: ignore[no-untyped-def]
        return self.source[name]


@pytest.mark.parametrize("capture", SAMPLE, ids=lambda p: p.name)
def test_dataframes_compute_to_the_serial_frames_in_byte_ranges(client, capture):
    serial = run([capture])
    for n in range(1, 9):
        engine = DaskEngine(client, pieces=n, output="dataframe")
        got = run([capture], engine)
        assert isinstance(got, DistributedAnalysis)
        assert differences(serial, got) == [], f"{n} byte ranges"
        # one partition per capture partition, and one for the boundary re-run when there was one
        assert got.dask["flows"].npartitions == engine.last_run["partitions"] + bool(engine.last_run["boundary_keys"])
        assert got.dask["certs"].npartitions == 1  # merged by key on a worker


PCAPS = sorted(CAPTURES.glob("*.pcap"))


@pytest.mark.slow
@pytest.mark.parametrize("capture", [p for p in PCAPS if p not in SAMPLE], ids=lambda p: p.name)
def test_every_bundled_pcap_as_dataframes(client, capture):
    """The other bundled pcaps, in 2 and 5 byte ranges (the driver-side engine's tests take each
    through 1-8): the worker-side finalize (dropped keys, Dedup merge, FTP links) on every capture."""
    serial = run([capture])
    for n in (2, 5):
        engine = DaskEngine(client, pieces=n, output="dataframe")
        assert differences(serial, run([capture], engine)) == [], f"{n} byte ranges"


def test_a_subset_of_frames(client):
    capture = SAMPLE[0]
    got = run([capture], DaskEngine(client, pieces=2, output="dataframe"), frames=("tls",))
    assert differences(run([capture], frames=("tls",)), got) == []
    assert len(got.tls) and not len(got.flows)


@pytest.mark.parametrize("capture", SAMPLE, ids=lambda p: p.name)
def test_dataframes_of_rotated_files(client, capture, tmp_path):
    _, records = pcap_records(capture)
    rng = random.Random(capture.name)
    for n in (2, 5, 8):
        cuts = rng.sample(range(1, len(records)), min(n - 1, len(records) - 1))
        out = tmp_path / str(n)
        out.mkdir()
        paths = write_rotated(capture, out, cuts)
        got = run(paths, DaskEngine(client, output="dataframe"))
        assert differences(run(paths), got) == [], f"{n} rotated files, cut at {sorted(cuts)}"


@pytest.mark.parametrize("capture", SAMPLE, ids=lambda p: p.name)
def test_the_dataset_reads_back_as_the_serial_frames(client, capture, tmp_path):
    serial = run([capture])
    frames = ("flows", "tls", "certs", "cert_links", "anomalies", "sources")
    for n in (1, 3, 8):
        out = tmp_path / f"ds{n}"
        engine = DaskEngine(client, pieces=n, output=Dataset(str(out)))
        result = run([capture], engine)
        assert result.stats["rows_written"]["flows"] == len(serial.flows)
        assert (out / "_SUCCESS").exists()
        assert dataset_differences(serial, out, frames) == [], f"{n} byte ranges"
        flows = pd.read_parquet(out / "flows")
        assert set(flows["date"].astype(str)) == set(serial.flows["ts_start"].dt.strftime("%Y-%m-%d"))
        want = {f"vni-{v}" for v in serial.flows["vni"].dropna()} or {"direct"}
        assert set(flows["vantage"].astype(str)) == want
        assert list(out.glob("flows/date=*/vantage=*/part-*.parquet"))


def test_rows_take_their_flows_date_and_vantage(client, tmp_path):
    capture = CAPTURES / "vxlan_mirror.pcap"
    out = tmp_path / "ds"
    run([capture], DaskEngine(client, pieces=3, output=Dataset(str(out))))
    flows = pd.read_parquet(out / "flows")
    tls = pd.read_parquet(out / "tls")
    assert len(tls)
    of_flow = dict(zip(flows["uid"], zip(flows["date"].astype(str), flows["vantage"].astype(str), strict=True),
                       strict=True))
    for uid, date, vantage in zip(tls["uid"], tls["date"].astype(str), tls["vantage"].astype(str), strict=True):
        assert of_flow[uid] == (date, vantage)


def test_partition_by_one_key_or_none(client, tmp_path):
    capture = CAPTURES / "vxlan_mirror.pcap"
    serial = run([capture])
    for keys in (("vantage",), ("date",), ()):
        out = tmp_path / ("-".join(keys) or "none")
        run([capture], DaskEngine(client, pieces=2, output=Dataset(str(out), partition_by=keys, frame="flows")))
        dirs = {p.name.split("=")[0] for p in out.iterdir() if p.is_dir()}
        assert dirs == set(keys[:1])
        back = read_dataset(out, serial.schemas["flows"])
        assert differences(_Frames(serial, ["flows"]), _Frames({"flows": back}, ["flows"], serial.stats)) == []
    with pytest.raises(UsageError):
        Dataset(str(tmp_path / "x"), partition_by=("day",))
    with pytest.raises(UsageError, match="not empty"):
        run([capture], DaskEngine(client, output=Dataset(str(tmp_path / "vantage"))))


def test_a_failing_capture_is_a_sources_row_of_the_dataset(client, tmp_path):
    """(The dataframe output: tests/engines/test_dask_engine.py, with the driver-side output.)"""
    paths = failing_captures(CAPTURES / "tls13_openssl.pcap", tmp_path)
    serial = run(paths)
    out = tmp_path / "ds"
    written = run(paths, DaskEngine(client, pieces=2, output=Dataset(str(out))))
    assert dataset_differences(serial, out, ("flows", "anomalies", "sources")) == []
    assert written.sources["status"].tolist() == serial.sources["status"].tolist()
    assert written.sources["status"].tolist() == ["ok", "partial", "failed"]


def test_ftp_links_across_partitions(client, tmp_path):
    """Control and data flows in different rotated files: the links (computed in the driver from
    the announcements and the flows at announced addresses only) are set on the workers."""
    path = CAPTURES / "ftp_login.pcap"
    _, records = pcap_records(path)
    serial = run([path])
    linked = serial.flows["ftp_control_uid"].notna().sum()
    assert linked
    for cuts in [[k] for k in range(1, len(records), 3)] + [list(range(1, len(records)))]:
        out = tmp_path / f"cut{cuts[0]}-{len(cuts)}"
        out.mkdir()
        paths = write_rotated(path, out, cuts)
        got = run(paths, DaskEngine(client, output="dataframe"))
        assert differences(run(paths), got) == [], f"rotated at {cuts}"
        assert got.flows["ftp_control_uid"].notna().sum() == linked


def test_the_serial_fallback_gives_the_same_outputs(client, tmp_path):
    """Captures recorded at different times, not in name order: read serially in the driver, then
    scattered as collections or written by the driver; the same frames either way."""
    paths = [CAPTURES / "vxlan_mirror.pcap", CAPTURES / "tls12_resumption.pcap", CAPTURES / "smtp_starttls.pcap"]
    serial = run(paths)
    engine = DaskEngine(client, output="dataframe")
    got = run(paths, engine)
    if "fallback" not in engine.last_run:
        pytest.skip("these captures are in time order: no fallback to test")
    assert differences(serial, got) == []
    out = tmp_path / "ds"
    run(paths, DaskEngine(client, output=Dataset(str(out))))
    assert dataset_differences(serial, out, ("flows", "tls", "certs", "sources")) == []
    # one frame without its flows: the rows still take their flows' date and vantage
    tls_only = tmp_path / "tls"
    run(paths, DaskEngine(client, output=Dataset(str(tls_only), frame="tls")), frames=("tls",))
    back = pd.read_parquet(tls_only)
    assert len(back) == len(serial.tls) and "unknown" not in set(back["vantage"].astype(str))
    assert "vni-4243" in set(back["vantage"].astype(str))


def test_outputs_refuse_what_they_cannot_do(client, tmp_path):
    with pytest.raises(UsageError, match="needs a client"):
        DaskEngine(output="dataframe")
    with pytest.raises(UsageError):
        DaskEngine(client, output="files")
    from analyzer.report.terminal import TableSink

    with pytest.raises(UsageError, match="sinks"):
        run([SAMPLE[0]], DaskEngine(client, output="dataframe"), sinks={"flows": TableSink(dict(analyzer.FLOWS))})


def test_cli_writes_a_partitioned_dataset(tmp_path):
    capture = CAPTURES / "vxlan_mirror.pcap"
    out = tmp_path / "flows"
    base = [sys.executable, "-m", "analyzer", "flows", str(capture), "--format", "parquet", "--out", str(out)]
    done = subprocess.run([*base, "--engine", "dask", "--workers", "1", "--partition-by", "date,vantage"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    serial = run([capture])
    assert list(out.glob("date=*/vantage=vni-*/part-*.parquet"))
    back = read_dataset(out, serial.schemas["flows"])
    assert differences(_Frames(serial, ["flows"]), _Frames({"flows": back}, ["flows"], serial.stats)) == []
    cap = str(capture)
    for args, said in (
            (["flows", cap, "--engine", "dask", "--format", "parquet", "--out", "a", "--partition-by", "date,day"],
             "--partition-by"),
            (["flows", cap, "--format", "parquet", "--out", "b", "--partition-by", "date"], "add --engine dask"),
            (["flows", cap, "--engine", "dask", "--format", "csv", "--out", "c", "--partition-by", "date"],
             "--format parquet --out DIR"),
            (["audit", cap, "--engine", "dask", "--format", "parquet", "--out", "d", "--partition-by", "date"],
             "goes with a frame command")):
        refused = subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True, text=True,
                                 cwd=tmp_path)
        assert refused.returncode == 2 and said in refused.stderr, (args, refused.stderr)
        assert "Traceback" not in refused.stderr
