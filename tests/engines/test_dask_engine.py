"""The Dask engine gives the serial engine's frames: captures cut into byte ranges, rotated files cut at
arbitrary packets, N = 1..8, failing captures, the serial fallback, worker processes and a lost worker."""

from __future__ import annotations

import itertools
import os
import random
import signal
import struct
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from distributed import Client, LocalCluster
from support.engine_helpers import bench_capture, differences, failing_captures, run
from support.pcap_helpers import epb, idb, pcap_bytes, pcap_records, shb, spb, unknown_block, write_rotated

import analyzer
from analyzer.engines.dask import DaskEngine, partition_sources
from analyzer.engines.progress import Progress
from analyzer.sources.base import open_sources

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
PCAPS = sorted(p for p in CAPTURES.glob("*.pcap"))
OTHERS = sorted([*CAPTURES.glob("*.pcapng"), *CAPTURES.glob("*.gz")])


# every bundled pcap is slow (a minute or more here); these three cross every seam fast: TLS
# resumption (certs Dedup rows, two flows), STARTTLS hand-over, VXLAN mirroring
SAMPLE = [CAPTURES / n for n in ("tls12_resumption.pcap", "smtp_starttls.pcap", "vxlan_mirror.pcap")]
EVERY = [pytest.param(p, marks=pytest.mark.slow) if p not in SAMPLE else p for p in PCAPS]


@pytest.mark.parametrize("capture", EVERY, ids=lambda p: p.name)
def test_byte_ranges_give_the_serial_frames(client, capture):
    serial = run([capture])
    for n in range(1, 9):
        engine = DaskEngine(client, pieces=n)
        assert differences(serial, run([capture], engine)) == [], f"{n} byte ranges"
        assert "fallback" not in engine.last_run


@pytest.mark.parametrize("capture", EVERY, ids=lambda p: p.name)
def test_rotated_files_give_the_serial_frames(client, capture, tmp_path):
    _, records = pcap_records(capture)
    rng = random.Random(capture.name)
    for n in range(2, 9):
        cuts = rng.sample(range(1, len(records)), min(n - 1, len(records) - 1))
        out = tmp_path / str(n)
        out.mkdir()
        paths = write_rotated(capture, out, cuts)
        engine = DaskEngine(client)
        assert differences(run(paths), run(paths, engine)) == [], f"{n} rotated files, cut at {sorted(cuts)}"
        assert engine.last_run["partitions"] == len(paths)


COMPRESSED = sorted(CAPTURES.glob("*.gz"))
PCAPNGS = sorted(CAPTURES.glob("*.pcapng"))


@pytest.mark.parametrize("capture", COMPRESSED, ids=lambda p: p.name)
def test_compressed_is_one_partition(client, capture):
    engine = DaskEngine(client, pieces=4)
    assert differences(run([capture]), run([capture], engine)) == []
    assert engine.last_run["partitions"] == 1


def sectioned_pcapng(source: Path, path: Path) -> Path:
    """The packets of classic pcap `source` as a pcapng of three sections (little-, big-, little-
    endian) with two interfaces each (microsecond and nanosecond ticks, the second with a time
    offset of 1000 s taken back from its ticks), packets alternating between them, a Simple Packet
    Block now and then (it takes the time of the packet before it), and an unknown block: every
    kind of block a cut must step over or carry to the range after it."""
    _, records = pcap_records(source)
    sections = []
    for s, chunk in enumerate((records[: len(records) // 3], records[len(records) // 3 : 2 * len(records) // 3],
                               records[2 * len(records) // 3 :])):
        order = ">" if s == 1 else "<"
        blocks = [shb(order), idb(1, order, tsresol=6), unknown_block(order=order),
                  idb(1, order, tsresol=9, tsoffset=1000)]
        for k, rec in enumerate(chunk):
            sec, usec, caplen, _ = struct.unpack("<IIII", rec[:16])
            data = rec[16 : 16 + caplen]
            ns = sec * 1_000_000_000 + usec * 1000
            if k % 7 == 6:
                blocks.append(spb(data, order))
            elif k % 2:
                blocks.append(epb(1, ns - 1000 * 1_000_000_000, data, order))
            else:
                blocks.append(epb(0, ns // 1000, data, order))
        sections.append(b"".join(blocks))
    path.write_bytes(b"".join(sections))
    return path


@pytest.mark.parametrize("capture", PCAPNGS, ids=lambda p: p.name)
def test_pcapng_byte_ranges_give_the_serial_frames(client, capture):
    serial = run([capture])
    for n in range(1, 9):
        engine = DaskEngine(client, pieces=n)
        assert differences(serial, run([capture], engine)) == [], f"{n} byte ranges"
        assert "fallback" not in engine.last_run


def test_a_sectioned_pcapng_in_byte_ranges(client, tmp_path):
    """Cut 1..8 ways, each range after the first carries its section's header and interfaces: the
    serial frames, and the cuts fall in every section (ranges do start after a section change)."""
    path = sectioned_pcapng(CAPTURES / "tls12_resumption.pcap", tmp_path / "sections.pcapng")
    serial = run([path])
    assert serial.stats["packets"] == len(pcap_records(CAPTURES / "tls12_resumption.pcap")[1])
    headers = set()
    for n in range(1, 9):
        engine = DaskEngine(client, pieces=n)
        assert differences(serial, run([path], engine)) == [], f"{n} byte ranges"
        parts = partition_sources(open_sources([str(path)]), workers=2, pieces=n)
        assert (len(parts) > 1) == (n > 1) and len(parts) <= n  # (two cuts may meet in one large packet)
        headers |= {p.header[8:12] for p in parts if p.header}
        for p in parts[1:]:
            assert struct.unpack_from(">I" if p.header[8:12] == b"\x1a\x2b\x3c\x4d" else "<I",
                                      path.read_bytes(), p.start or 0)[0] == 6  # an EPB starts there
    assert headers == {b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"}  # ranges in both byte orders


def test_all_bundled_captures_at_once_fall_back_to_the_serial_table(client):
    """They were recorded at different times, not in name order: time goes backwards between
    partitions, so the engine reads them serially (and says so) rather than guess."""
    paths = [*PCAPS, *OTHERS]
    engine = DaskEngine(client)
    seen: list[Progress] = []
    assert differences(run(paths), run(paths, engine, on_progress=seen.append)) == []
    assert seen[-1].bytes_done == seen[-1].bytes_total and seen[-1].files_done == seen[-1].files_total  # once
    assert "time goes backwards" in str(engine.last_run.get("fallback"))
    assert any("serial table" in note for note in engine.notes)


def test_the_partitions_cut_at_records(tmp_path):
    frames = [bytes(60 + k) for k in range(100)]
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap_bytes([(1_700_000_000_000_000_000 + k, f) for k, f in enumerate(frames)]))
    parts = partition_sources(open_sources([str(path)]), workers=2, pieces=4)
    assert len(parts) == 4
    assert parts[0].start == 24 and parts[-1].end == path.stat().st_size
    record_starts = [24]
    for f in frames:
        record_starts.append(record_starts[-1] + 16 + len(f))
    for a, b in itertools.pairwise(parts):
        assert a.end == b.start
        assert b.start == record_starts[b.first_index]  # a record starts there, and that many come before
    assert [p.first_index for p in parts] == sorted({p.first_index for p in parts})


@pytest.mark.parametrize("output", [None, "dataframe"])  # frames back to the driver, or kept on the workers
def test_a_failing_capture_is_a_sources_row(client, tmp_path, output):
    paths = failing_captures(CAPTURES / "tls13_openssl.pcap", tmp_path)
    _, bad, unreadable = paths
    serial = run(paths)
    dask = run(paths, DaskEngine(client, pieces=2, output=output))
    assert differences(serial, dask) == []
    status = dict(zip(dask.sources["source"], dask.sources["status"], strict=True))
    assert status[str(bad)] == "partial" and status[str(unreadable)] == "failed"
    with pytest.raises(analyzer.CaptureError):
        run([unreadable], DaskEngine(client))


@pytest.fixture(scope="module")
def bench_pcap(tmp_path_factory):
    path = bench_capture(tmp_path_factory.mktemp("bench") / "bench_30k.pcap", 30_000)
    if path is None:
        pytest.skip("../shared/bench/make_pcap.py is not here: the benchmark capture cannot be made")
    return path


@pytest.mark.slow
def test_benchmark_capture_in_byte_ranges_and_rotated_files(client, bench_pcap, tmp_path):
    serial = run([bench_pcap])
    boundary = []
    for n in range(1, 9):
        engine = DaskEngine(client, pieces=n)
        assert differences(serial, run([bench_pcap], engine)) == [], f"{n} byte ranges"
        assert "fallback" not in engine.last_run
        boundary.append(engine.last_run["boundary_keys"])
    assert boundary[0] == 0 and min(boundary[1:]) > 0  # flows do cross the cuts: the merge is exercised
    _, records = pcap_records(bench_pcap)
    rng = random.Random(8)
    for n in (2, 5, 8):
        out = tmp_path / str(n)
        out.mkdir()
        paths = write_rotated(bench_pcap, out, rng.sample(range(1, len(records)), n - 1))
        assert differences(run(paths), run(paths, DaskEngine(client))) == [], f"{n} rotated files"


@pytest.mark.slow
def test_worker_processes_and_a_lost_worker(bench_pcap):
    """Real worker processes; one is killed while it runs a partition: the scheduler re-runs its
    tasks elsewhere and the answer is still the serial one."""
    serial = run([bench_pcap])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        engine = DaskEngine(c, pieces=8)
        got: list[object] = []
        thread = threading.Thread(target=lambda: got.append(run([bench_pcap], engine)))
        thread.start()
        victim = None
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline and thread.is_alive():
            busy = [w for w, tasks in c.processing().items() if any("intransit-part" in str(t) for t in tasks)]
            if busy:
                victim = busy[0]
                pid = c.run(os.getpid, workers=[victim])[victim]
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        thread.join(300)
        assert victim is not None, "no partition was seen running"
        assert got and differences(serial, got[0]) == []  # type: ignore[arg-type]
        assert victim not in c.scheduler_info()["workers"]


@pytest.mark.slow
def test_cli_engine_dask(tmp_path):
    import subprocess
    import sys

    paths = [str(CAPTURES / "tls13_openssl.pcap"), str(CAPTURES / "ssh_openssh.pcap")]
    base = [sys.executable, "-m", "analyzer", "flows", *paths, "--format", "csv"]
    serial = subprocess.run(base, capture_output=True, text=True, check=True)
    dask = subprocess.run([*base, "--engine", "dask", "--workers", "1"], capture_output=True, text=True, check=True)
    assert dask.stdout == serial.stdout
    assert "dask dashboard: http://" in dask.stderr
    refused = subprocess.run([*base, "--workers", "2"], capture_output=True, text=True)
    assert refused.returncode == 2 and "go with --engine dask" in refused.stderr


def test_a_busy_default_dashboard_port_is_no_warning():
    """distributed's default dashboard port (8787) held by something else: the engine's own local
    cluster takes a free port instead of warning (under `filterwarnings = error` the warning was an
    error, and two test workers or a user's running cluster hold 8787)."""
    import socket

    holder = socket.socket()
    try:
        holder.bind(("0.0.0.0", 8787))
        holder.listen()
    except OSError:
        pass  # already held by someone else: the case under test either way
    try:
        capture = CAPTURES / "tls12_resumption.pcap"
        engine = DaskEngine(workers=1, processes=False)
        assert differences(run([capture]), run([capture], engine)) == []
    finally:
        holder.close()


def test_ftp_data_links_across_partitions(client, tmp_path):
    """The data channel and its control flow in different rotated files (every cut into two files,
    and each packet a file of its own): the flows' ftp_control_uid and the ftp_data rows' data_uid
    are the serial ones. The link is made in the driver from every partition's announcements."""
    path = CAPTURES / "ftp_login.pcap"  # (ftps_explicit announces nothing in the clear: no link)
    _, records = pcap_records(path)
    serial = run([path])
    linked = serial.flows["ftp_control_uid"].notna().sum()
    assert linked, "the capture has a linked data channel"
    for cuts in [[k] for k in range(1, len(records))] + [list(range(1, len(records)))]:
        out = tmp_path / f"cut{cuts[0]}-{len(cuts)}"
        out.mkdir()
        paths = write_rotated(path, out, cuts)
        engine = DaskEngine(client)
        got = run(paths, engine)
        assert differences(run(paths), got) == [], f"rotated at {cuts}"
        assert got.flows["ftp_control_uid"].notna().sum() == linked


def test_a_stage_reading_the_tls_session_facts_gets_them_from_the_workers(client):
    """The workers' dissectors make the optional column group the driver's stage reads (the policy
    stage's TLS session facts, Plan.groups): the flows and the verdict are the serial run's (a
    certificate not covering the SNI, seen only through tls_sni_matches_cert)."""
    from analyzer.dissect.tls.columns import SESSION_COLUMNS
    from analyzer.policy.stage import PolicyStage

    capture = [CAPTURES / "cert_sni_mismatch_tls12.pcap"]
    engine = DaskEngine(client, pieces=2)
    got = analyzer.analyze(capture, frames=("flows",), stages=[PolicyStage(zones=["10.0.0.0/8"])], engine=engine)
    serial = analyzer.analyze(capture, frames=("flows",), stages=[PolicyStage(zones=["10.0.0.0/8"])])
    assert engine.last_run["partitions"] == 2 and "fallback" not in engine.last_run
    columns = [*SESSION_COLUMNS, "verdict"]
    assert got.flows[columns].equals(serial.flows[columns])
    assert bool(got.flows["tls_sni_matches_cert"].eq(False).any()) and set(got.flows["verdict"]) == {"warn"}


@pytest.mark.parametrize("name", ["cert_expired_tls12.pcap", "ftp_login.pcap", "pop3_user_pass_no_tls.pcap"])
def test_a_stage_reading_row_frames_gets_the_workers_rows(client, name):
    """The policy stage reads certs, credentials and ftp_data rows (Stage.reads) that the run does not
    keep: the workers make them anyway and the driver feeds them to the stage before the flows, so
    the findings are the serial run's (the certificate and credential findings were lost when the
    capture was split into partitions)."""
    from analyzer.policy.stage import PolicyStage

    capture = [CAPTURES / name]
    stages = {"dask": PolicyStage(zones=["10.0.0.0/8"]), "serial": PolicyStage(zones=["10.0.0.0/8"])}
    engine = DaskEngine(client, pieces=2)
    got = analyzer.analyze(capture, frames=("flows",), stages=[stages["dask"]], engine=engine)
    serial = analyzer.analyze(capture, frames=("flows",), stages=[stages["serial"]])
    assert engine.last_run["partitions"] == 2 and "fallback" not in engine.last_run
    assert got.flows[["uid", "verdict", "finding_count"]].equals(serial.flows[["uid", "verdict", "finding_count"]])
    mine, theirs = stages["dask"].findings(), stages["serial"].findings()
    assert len(theirs) and mine[["uid", "rule", "evidence"]].equals(theirs[["uid", "rule", "evidence"]])
    assert set(theirs["rule"]) & {"cert-expired", "cleartext-credentials"}
    assert len(got["certs"]) == len(got["credentials"]) == 0  # fed to the stage, not kept


def test_progress_follows_the_tasks(client, tmp_path):
    """on_progress with the dask engine: the engine still distributes (it did read serially when
    analyze() wrapped the sources for metering), and the bytes advance as partitions end, to the
    total, with a snapshot per partition."""
    capture = CAPTURES / "tls12_resumption.pcap"
    _, records = pcap_records(capture)
    paths = write_rotated(capture, tmp_path, [len(records) // 3, 2 * len(records) // 3])
    seen: list[Progress] = []
    engine = DaskEngine(client, pieces=2)
    got = run(paths, engine, on_progress=seen.append)
    assert differences(run(paths), got) == []
    assert engine.last_run["partitions"] == 6 and "fallback" not in engine.last_run
    total = sum(p.stat().st_size for p in paths)
    done = [s.bytes_done for s in seen]
    assert done == sorted(done) and done[-1] == total and seen[-1].bytes_total == total
    assert len(set(done)) >= 6  # one step per partition at least
    assert seen[-1].files_done == 3 and seen[-1].packets == len(records)
    assert [s.files_done for s in seen] == sorted(s.files_done for s in seen)


def test_results_through_the_spool_or_in_band(client, tmp_path):
    """Workers that see the driver's spool directory leave their results there as Arrow IPC files
    (mapped by the driver, removed with the directory); otherwise, or with spool=False, the same IPC
    bytes come back as task results. Either way the serial frames."""
    from analyzer.engines.dask import Spool, pack

    capture = SAMPLE[0]
    serial = run([capture])
    base = tmp_path / "spool"
    base.mkdir()
    spooled = DaskEngine(client, pieces=3, spool=str(base))
    assert differences(serial, run([capture], spooled)) == []
    assert spooled.last_run["spooled"] == 3 and list(base.iterdir()) == []
    in_band = DaskEngine(client, pieces=3, spool=False)
    assert differences(serial, run([capture], in_band)) == []
    assert in_band.last_run["spooled"] == 0
    from analyzer.engines.dask import PartResult

    unseen = pack(PartResult(0), Spool(str(tmp_path / "elsewhere"), ".driver-x"))  # another host's spool
    assert unseen.packed is not None and unseen.packed.path is None and unseen.packed.data is not None


def test_boundary_keys_against_a_plain_reading_of_the_rule():
    """The numpy boundary check against the rule read plainly, key by key, on random partitions:
    a key's partition joins the previous one when its first packet comes within the idle timeout
    of the latest packet of the key before it; segments of two partitions or more are re-run."""
    import numpy as np

    from analyzer.config import Options
    from analyzer.engines.dask import PartResult, boundary_keys

    options = Options()
    f = options.flows
    limits = {6: f.idle_timeout_tcp, 17: f.idle_timeout_udp, 1: f.idle_timeout_other}
    rng = np.random.default_rng(15)
    exercised = 0
    for _ in range(200):
        results = []
        for p in range(int(rng.integers(1, 7))):
            n = int(rng.integers(0, 30))
            proto = rng.choice([6, 17, 1], n).astype(np.uint64)
            keys = (rng.integers(0, 40, n).astype(np.uint64) << np.uint64(8)) | proto
            first = rng.integers(0, 10**12, n) + p * 10**11
            results.append(PartResult(p, keys=keys, first=first, last=first + rng.integers(0, 10**11, n)))
        expected: dict[int, set[int]] = {}
        for key in {int(k) for r in results for k in r.keys}:
            seen = [(r.index, min(int(a) for k, a in zip(r.keys, r.first, strict=True) if k == key),
                     max(int(b) for k, b in zip(r.keys, r.last, strict=True) if k == key))
                    for r in results if key in r.keys]
            latest = None
            for j, (part, first, last) in enumerate(seen):
                if latest is not None and first - latest <= int(limits[key & 0xFF] * 1e9):
                    expected.setdefault(part, set()).add(key)
                    expected.setdefault(seen[j - 1][0], set()).add(key)
                latest = last if latest is None else max(latest, last)
        got = boundary_keys(results, options)
        assert {p: set(v.tolist()) for p, v in got.items()} == expected
        assert all(list(v) == sorted(v) for v in got.values())
        exercised += bool(expected)
    assert exercised > 50


@pytest.mark.parametrize("name", ["tls13_openssl", "cert_good_chain_tls13"])
def test_a_pcapng_with_decryption_secrets_in_byte_ranges(client, tmp_path, name):
    """A pcapng carrying its own Decryption Secrets Block (editcap --inject-secrets), cut 1..4 ways:
    the TLS 1.3 certificates the secrets reveal are the serial run's in every cut (each range after
    the first carries the DSB; the cutter once took it for an interface description)."""
    import shutil
    import subprocess

    if shutil.which("editcap") is None:
        pytest.skip("editcap (tshark's package) is not installed")
    path = tmp_path / f"{name}-dsb.pcapng"
    subprocess.run(["editcap", "--inject-secrets", f"tls,{CAPTURES / (name + '.keylog')}",
                    str(CAPTURES / (name + ".pcap")), str(path)], check=True, capture_output=True)
    serial = run([path])
    assert serial.flows["cert_sha256"].notna().any()  # the secrets were applied
    for n in range(1, 5):
        engine = DaskEngine(client, pieces=n)
        assert differences(serial, run([path], engine)) == [], f"{n} byte ranges"
