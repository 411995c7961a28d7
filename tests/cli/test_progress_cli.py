"""The progress bar of `intransit` on a real terminal (a pty as standard error): drawn there, never
when standard error is a pipe, never with --quiet; and the output is the same byte for byte."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pty = pytest.importorskip("pty")

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "120", "TERM": "xterm"}


def run(args: list[str], tmp_path: Path, *, terminal: bool) -> tuple[int, bytes, bytes]:
    """(exit code, stdout, stderr) of `intransit ARGS`, stderr a pty when `terminal`. Standard output
    goes to a file: a pipe that nobody reads while the pty is drained could fill and block."""
    out_path = tmp_path / f"stdout-{len(list(tmp_path.iterdir()))}"
    with open(out_path, "wb") as out:
        if not terminal:
            proc = subprocess.run([sys.executable, "-m", "analyzer", *args], stdout=out, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, env=ENV, timeout=300, check=False)
            return proc.returncode, out_path.read_bytes(), proc.stderr
        master, slave = pty.openpty()
        proc2 = subprocess.Popen([sys.executable, "-m", "analyzer", *args], stdout=out, stderr=slave,
                                 stdin=subprocess.DEVNULL, env=ENV)
        os.close(slave)
        err = b""
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not data:
                break
            err += data
        os.close(master)
        code = proc2.wait(timeout=300)
    return code, out_path.read_bytes(), err


def bar_drawn(err: bytes) -> bool:
    return b"\r" in err.replace(b"\r\n", b"") and b"files " in err and b" pkts" in err


@pytest.fixture
def captures(tmp_path: Path) -> Path:
    """A few bundled captures (one compressed, one a duplicate: a warning) in a directory."""
    d = tmp_path / "in"
    d.mkdir()
    for name in ("tls13_openssl.pcap", "http_plain.pcap", "http_plain.pcap.gz", "ssh_openssh.pcap"):
        shutil.copy(CAPTURES / name, d / name)
    return d


@pytest.mark.parametrize("args", [["flows", "--format", "csv"], ["flows"], ["tls"],
                                  ["audit", "--vpc", "10.77.0.0/28", "--format", "jsonl"]])
def test_bar_on_a_terminal_only_and_the_output_is_the_same(args: list[str], captures: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    code_t, out_t, err_t = run([*args, str(captures)], work, terminal=True)
    code_p, out_p, err_p = run([*args, str(captures)], work, terminal=False)
    code_q, out_q, err_q = run([*args, str(captures), "--quiet"], work, terminal=True)
    assert code_t == code_p == code_q and code_t in (0, 1)
    assert out_t == out_p == out_q and out_t  # the frames, identical either way
    assert bar_drawn(err_t), err_t
    assert not bar_drawn(err_p) and b"\r" not in err_p, err_p
    assert not bar_drawn(err_q) and b"\r" not in err_q.replace(b"\r\n", b""), err_q
    # the warning (the duplicate) is shown above the bar, and the bar is erased at the end
    assert b"same content as" in err_t and b"same content as" in err_p
    assert err_t.rstrip(b" ").endswith(b"\r") or err_t.endswith(b"\n")
    # --quiet: the warning is counted, not shown; nothing else
    text_q = err_q.decode().replace("\r\n", "\n")
    lines_q = [ln for ln in text_q.splitlines() if ln.strip()]
    if args[0] != "audit":  # audit prints its summary on stderr for non-table formats
        assert lines_q == ["intransit: 1 warning not shown (--quiet); the anomalies and sources frames list them"]
    else:
        assert "intransit: 1 warning not shown (--quiet)" in text_q and "same content as" not in text_q


def test_global_quiet_and_errors_are_never_silenced(captures: Path, tmp_path: Path) -> None:
    code, out, err = run(["-q", "flows", str(captures / "tls13_openssl.pcap")], tmp_path, terminal=True)
    assert code == 0 and out and err == b""
    code, _out, err = run(["-q", "flows", str(tmp_path / "missing.pcap")], tmp_path, terminal=True)
    assert code == 2 and b"intransit: error:" in err and b"missing.pcap" in err
    code, _out, err = run(["flows", "--quiet", str(tmp_path / "missing.pcap")], tmp_path, terminal=True)
    assert code == 2 and b"intransit: error:" in err


def test_a_hostile_file_name_reaches_the_terminal_escaped(captures: Path, tmp_path: Path) -> None:
    hostile = captures / "a\x1b]0;owned\x07\x1b[2Jb.pcap"
    shutil.copy(CAPTURES / "tls13_openssl.pcap", hostile)
    (captures / "http_plain.pcap.gz").unlink()
    code, _out, err = run(["flows", "--format", "csv", str(captures)], tmp_path, terminal=True)
    assert code == 0 and bar_drawn(err)
    assert rb"a\x1b]0;owned\x07\x1b[2Jb.pcap" in err  # the first capture's name, drawn escaped
    assert b"\x1b" not in err and b"\x07" not in err, err
