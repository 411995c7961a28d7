"""The `intransit` command: errors as one line (file, byte offset, what is wrong) and exit code 2,
kept partial results with a warning, --strict, every output format, --version/--help, stdin."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from scapy.layers.inet import IP, TCP, UDP
from scapy.packet import Raw
from support.pcap_helpers import ETHERNET, Section, eth, pcap_bytes, write_packets

import analyzer
from analyzer import dissect as registry
from analyzer import schema
from analyzer._version import __version__
from analyzer.cli import main
from analyzer.dissect.tls import schema as tls_schema

COMMANDS = ["flows", "tls", "certs", "anomalies"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def frames() -> list[bytes]:
    c, s = "10.0.0.1", "10.0.0.2"
    return [bytes(p) for p in (
        eth() / IP(src=c, dst=s) / TCP(sport=40000, dport=443, flags="S", seq=1),
        eth() / IP(src=s, dst=c) / TCP(sport=443, dport=40000, flags="SA", seq=9, ack=2),
        eth() / IP(src=c, dst=s) / UDP(sport=5353, dport=53) / Raw(b"query"),
        eth() / IP(src=c, dst=s) / UDP(sport=5354, dport=53) / Raw(b"query"),
    )]  # fmt: skip


FRAMES = frames()
GOOD = pcap_bytes([(1_700_000_000_000_000_000 + i * 1000, f) for i, f in enumerate(FRAMES)], nanos=True)
REC = [24]
for _f in FRAMES:
    REC.append(REC[-1] + 16 + len(_f))


def invoke(*args: str, input: bytes | None = None):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, list(args), input=input)
    # a crash would surface here as an exception other than SystemExit (the runner catches it)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.stderr
    return result


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


@pytest.fixture
def good(capture_file) -> Path:  # type: ignore[no-untyped-def]
    return capture_file("good.pcap", GOOD)


# ------------------------------------------------------------------------------- basics
def test_version_and_help():
    r = invoke("--version")
    assert r.exit_code == 0 and __version__ in r.stdout and "intransit" in r.stdout
    for args in ([], *([c] for c in COMMANDS)):
        for flag in ("--help", "-h"):
            r = invoke(*args, flag)
            assert r.exit_code == 0 and "Usage:" in r.stdout, (args, flag)
    assert "--format" in invoke("flows", "--help").stdout


def test_python_dash_m_version():
    out = subprocess.run(
        [sys.executable, "-m", "analyzer", "--version"], capture_output=True, text=True, timeout=300, env=ENV
    )
    assert out.returncode == 0, out.stderr
    assert __version__ in out.stdout and "Traceback" not in out.stderr


# ---------------------------------------------------------------------------- bad input
NG = Section().interface(ETHERNET, tsresol=9).packet(0, 1, FRAMES[0]).build()


@pytest.mark.parametrize(("name", "data", "words"), [
    ("empty", b"", ["byte 0", "empty file"]),
    ("wrong magic", b"\x89PNG\r\n\x1a\n" + bytes(64), ["byte 0", "not a pcap or pcapng"]),
    ("header cut", GOOD[:12], ["byte 12", "file header"]),
    ("absurd first record", GOOD[:24] + bytes(8) + b"\xff\xff\xff\x7f" + bytes(40), ["byte 24", "impossib"]),
    ("pcapng bad byte order", NG[:8] + b"\0\0\0\0" + NG[12:], ["byte 8", "byte-order"]),
    ("gzip garbage", b"\x1f\x8b" + bytes(100), ["byte 0", "decompression"]),
])  # fmt: skip
@pytest.mark.parametrize("command", ["flows", "anomalies"])
def test_nothing_readable_is_one_line_and_exit_2(tmp_path, name, data, words, command):
    path = tmp_path / "bad.pcap"
    path.write_bytes(data)
    r = invoke(command, str(path), "--format", "csv")
    assert r.exit_code == 2
    err = lines(r.stderr)
    assert len(err) == 1, err
    assert str(path) in err[0] and all(w in err[0] for w in words), err[0]


def test_missing_directory_glob_and_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    for arg, words in (
        (tmp_path / "nope.pcap", ["nope.pcap", "cannot open"]),
        (tmp_path / "*.nothing", ["*.nothing", "no file matches"]),
        (tmp_path / "empty", ["empty", "no capture files"]),
    ):
        r = invoke("flows", str(arg))
        assert r.exit_code == 2
        err = lines(r.stderr)
        assert len(err) == 1 and all(w in err[0] for w in words), err


def test_empty_directory_error_names_the_directory_plainly(tmp_path):
    (tmp_path / "empty").mkdir()
    r = invoke("flows", str(tmp_path / "empty"))
    assert lines(r.stderr)[0].startswith(f"intransit: error: {tmp_path / 'empty'}:")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    p = tmp_path / "locked.pcap"
    p.write_bytes(GOOD)
    p.chmod(0)
    r = invoke("flows", str(p))
    assert r.exit_code == 2 and "cannot open" in r.stderr


@pytest.mark.parametrize(
    ("data", "kept", "offset"),
    [
        (GOOD[:-3], 3, REC[3]),  # last record cut
        (GOOD[: REC[2]] + b"\0" * 8 + b"\xff\xff\xff\x7f" + b"\0" * 60, 2, REC[2]),  # absurd length mid-file
    ],
)
def test_mid_file_damage_keeps_rows_with_a_warning_and_strict_fails(tmp_path, data, kept, offset):
    path = tmp_path / "cut.pcap"
    path.write_bytes(data)
    r = invoke("flows", str(path), "--format", "csv", "--no-dissect")
    assert r.exit_code == 0
    df = pd.read_csv(io.StringIO(r.stdout))
    assert df["packets_to_server"].sum() + df["packets_to_client"].sum() == kept
    err = lines(r.stderr)
    assert len(err) == 1 and str(path) in err[0] and f"byte {offset}" in err[0] and "warning" in err[0], err
    r = invoke("flows", str(path), "--format", "csv", "--strict")
    assert r.exit_code == 2
    err = lines(r.stderr)
    assert len(err) == 1 and str(path) in err[0] and f"byte {offset}" in err[0], err
    assert r.stdout == ""


def test_one_bad_file_among_good_ones_keeps_the_rest(tmp_path, good):
    (tmp_path / "zz_bad.pcap").write_bytes(GOOD[:12])  # a pcap by its magic, cut in its header
    r = invoke("flows", str(tmp_path), "--format", "csv", "--no-dissect")
    assert r.exit_code == 0
    assert len(pd.read_csv(io.StringIO(r.stdout))) == 3
    r = invoke("flows", str(tmp_path), "--strict")
    assert r.exit_code == 2 and "zz_bad.pcap" in r.stderr


def test_one_bad_file_among_good_ones_is_named_on_stderr(tmp_path, good):
    (tmp_path / "zz_bad.pcap").write_bytes(GOOD[:12])  # a pcap by its magic, cut in its header
    r = invoke("flows", str(tmp_path), "--format", "csv", "--no-dissect")
    err = lines(r.stderr)
    # the file is cut 12 bytes in, inside its 24-byte header: that is the offset to report
    assert len(err) == 1 and "zz_bad.pcap" in err[0] and "byte 12" in err[0], err


# ------------------------------------------------------------------------------ formats
def _chdir_files(tmp_path, monkeypatch, names):  # type: ignore[no-untyped-def]
    """One capture per name, each with its own flow (flows spanning files would merge)."""
    monkeypatch.chdir(tmp_path)
    for k, n in enumerate(names):
        pkt = eth() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=6000 + k, dport=53) / Raw(b"q")
        Path(n).write_bytes(pcap_bytes([(1_000_000_000 * k, bytes(pkt))]))


def test_csv_neutralizes_formula_prefixes(tmp_path, monkeypatch):
    names = ["=HYPERLINK(1).pcap", "+cmd.pcap", "@SUM(1).pcap", "-2+3.pcap"]
    _chdir_files(tmp_path, monkeypatch, names)
    r = invoke("flows", "--format", "csv", "--no-dissect", "--", *names)
    assert r.exit_code == 0, r.stderr
    sources = set(pd.read_csv(io.StringIO(r.stdout))["source"])
    assert sources == {"'" + n for n in names}
    # plain numbers are not formulas: ports stay numbers
    assert ",6000," in r.stdout


def test_jsonl_round_trip(tmp_path, good):
    out = tmp_path / "flows.jsonl"
    r = invoke("flows", str(good), "--format", "jsonl", "--out", str(out), "--no-dissect")
    assert r.exit_code == 0 and r.stdout == ""
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert len(rows) == 3
    assert set(schema.FLOWS_CONTRACT) <= set(rows[0])
    expect = analyzer.analyze([str(good)], dissect=False).flows
    assert [r_["uid"] for r_ in rows] == expect["uid"].tolist()
    assert [r_["server_port"] for r_ in rows] == expect["server_port"].tolist()
    back = pd.read_json(out, lines=True)
    assert list(back.columns) == list(registry.FLOWS)


def test_parquet_round_trip_keeps_the_schema(tmp_path, good):
    out = tmp_path / "flows.parquet"
    r = invoke("flows", str(good), "--format", "parquet", "--out", str(out), "--no-dissect")
    assert r.exit_code == 0
    back = pd.read_parquet(out)
    assert list(back.columns) == list(registry.FLOWS)
    for col in schema.FLOWS_CONTRACT:
        assert str(back[col].dtype) == registry.FLOWS[col], col
    expect = analyzer.analyze([str(good)], dissect=False).flows
    pd.testing.assert_frame_equal(back, expect)


def test_parquet_needs_out(good):
    r = invoke("flows", str(good), "--format", "parquet")
    assert r.exit_code == 2 and len(lines(r.stderr)) == 1 and "--out" in r.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_empty_capture_gives_the_schema(tmp_path, command):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(pcap_bytes([]))
    frame = {"flows": registry.FLOWS, "tls": tls_schema.TLS, "certs": tls_schema.CERTS, "anomalies": schema.ANOMALIES}[
        command
    ]
    r = invoke(command, str(empty), "--format", "csv")
    assert r.exit_code == 0
    assert r.stdout.strip() == ",".join(frame)
    out = tmp_path / "e.parquet"
    assert invoke(command, str(empty), "--format", "parquet", "--out", str(out)).exit_code == 0
    back = pd.read_parquet(out)
    assert len(back) == 0 and list(back.columns) == list(frame)
    assert {c: str(t) for c, t in back.dtypes.items()} == dict(frame)
    assert invoke(command, str(empty), "--format", "jsonl").stdout == ""
    assert "(no rows)" in invoke(command, str(empty)).stdout


def test_table_format(good):
    r = invoke("flows", str(good), "--no-dissect")
    assert r.exit_code == 0 and "client_ip" in r.stdout and "10.0.0.1" in r.stdout


# -------------------------------------------------------------------------------- stdin
def test_stdin_in_a_real_process(tmp_path):
    """`tcpdump -w - | intransit flows -`: a compressed pcapng piped into a fresh process; the uids
    equal those of an in-process run (deterministic across processes)."""
    pkts = [
        eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=443, flags="S"),
        eth() / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=443, dport=40000, flags="SA"),
    ]
    path = write_packets(tmp_path / "in.pcap", pkts)
    data = gzip.compress(path.read_bytes())
    out = subprocess.run(
        [sys.executable, "-m", "analyzer", "flows", "-", "--format", "csv", "--no-dissect"],
        input=data,
        capture_output=True,
        timeout=300,
        env=ENV,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert b"Traceback" not in out.stderr
    df = pd.read_csv(io.StringIO(out.stdout.decode()))
    assert df["source"].tolist() == ["<stdin>"]  # stdin is named so in the source column
    assert df["uid"].tolist() == analyzer.analyze([str(path)], dissect=False).flows["uid"].tolist()
    bad = subprocess.run(
        [sys.executable, "-m", "analyzer", "tls", "-"],
        input=b"garbage" * 10,
        capture_output=True,
        timeout=300,
        env=ENV,
    )
    assert bad.returncode == 2
    err = lines(bad.stderr.decode())
    assert len(err) == 1 and "<stdin>" in err[0] and "byte 0" in err[0] and "Traceback" not in bad.stderr.decode()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) to make writes fail")
@pytest.mark.parametrize("fmt", ["table", "csv", "parquet"])
def test_a_failed_write_is_one_line_and_exit_2(fmt):
    """A full disk (here /dev/full: every write fails with ENOSPC) is a one-line error, no traceback."""
    capture = str(Path(__file__).resolve().parents[2] / "captures" / "http_plain.pcap")
    proc = subprocess.run([sys.executable, "-m", "analyzer", "flows", capture, "--format", fmt, "--out", "/dev/full"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("intransit: error:") and "No space left on device" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("args", "status"), [(["--version"], 0), (["flows", "/nonexistent.pcap"], 2)])
def test_the_command_ends_without_the_interpreter_teardown(args: list[str], status: int) -> None:
    """`intransit` ends once the command is done, skipping the interpreter's teardown (freeing every
    module: ~80M instructions); the exit status, the atexit handlers and unflushed output are kept."""
    code = ("import atexit, sys; from analyzer import cli\n"
            "class Torn:\n    def __del__(self): sys.stderr.write('torn down\\n')\n"
            "kept = Torn()\n"
            "atexit.register(lambda: sys.stdout.write('atexit ran'))  # no newline: flushed at the end\n"
            f"sys.argv = ['intransit', *{args!r}]; cli.run()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == status, proc.stderr
    assert proc.stdout.endswith("atexit ran")
    assert "torn down" not in proc.stderr and "Traceback" not in proc.stderr


def test_the_command_starts_no_blas_threads() -> None:
    """`intransit` uses no BLAS: numpy's OpenBLAS worker threads would only spin beside the run."""
    # pyarrow (imported by cli.run) starts jemalloc's purging thread, which sleeps: not counted
    code = ("import os; from analyzer import cli; cli.main = lambda **k: None; cli.run(); import numpy; "
            "names = [open(f'/proc/self/task/{t}/comm').read().strip() for t in os.listdir('/proc/self/task')]; "
            "print(os.environ['OPENBLAS_NUM_THREADS'], len([n for n in names if n != 'jemalloc_bg_thd']))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["1", "1"]
    env["OPENBLAS_NUM_THREADS"] = "2"  # a user's own setting is kept
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split()[0] == "2"
