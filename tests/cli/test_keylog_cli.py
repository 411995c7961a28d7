"""`--keylog FILE` on the command line: every output format of every command that reads captures,
with a right key, a wrong key and a key log with lines not understood, never contains a secret of
the key log (nor its text); a bad key log file is a one-line error (exit 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from analyzer.cli import main

ROOT = Path(__file__).resolve().parents[2]
PCAP = ROOT / "captures" / "cert_good_chain_tls13.pcap"
KEYLOG = ROOT / "captures" / "cert_good_chain_tls13.keylog"
FRAME_COMMANDS = ("flows", "anomalies", "tls", "certs", "cert-links", "credentials", "ftp-data")


def _secrets(*paths: Path) -> set[str]:
    found = set()
    for path in paths:
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and not line.startswith("#"):
                found.add(parts[2].lower())
    return found


@pytest.fixture(scope="module")
def keylogs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keylogs")
    text = KEYLOG.read_text()
    wrong = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].endswith("HANDSHAKE_TRAFFIC_SECRET"):
            parts[2] = parts[2][::-1]  # the same hex, reversed: another key of the same length
        wrong.append(" ".join(parts))
    (d / "wrong.keylog").write_text("\n".join(wrong) + "\n")
    (d / "mixed.keylog").write_text("not a key log line 00ff00ff00ff\n" + text)
    return {"right": KEYLOG, "wrong": d / "wrong.keylog", "mixed": d / "mixed.keylog"}


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.stdout + result.stderr


def _assert_clean(text: str, secrets: set[str]) -> None:
    low = text.lower()
    for secret in secrets:
        # the whole secret, and any 16-byte piece of it (a cut cell must not leak half a key either)
        assert secret not in low
        assert not any(secret[i : i + 32] in low for i in range(0, len(secret) - 31, 8))


# (command, format) runs per key log: every frame command in the text formats with the right key
# (the rows then hold the decrypted certificates); parquet and the wrong/mixed key logs on the frames
# they touch (tls, certs, anomalies, flows): ~1 s per run on a busy machine.
RUNS = {
    "right": [(c, f) for c in FRAME_COMMANDS for f in ("table", "csv", "jsonl")]
             + [(c, "parquet") for c in ("tls", "certs", "anomalies")],
    "wrong": [(c, f) for c in ("flows", "tls", "certs", "anomalies") for f in ("table", "csv")],
    "mixed": [(c, f) for c in ("flows", "tls", "certs", "anomalies") for f in ("table", "csv")],
}


@pytest.mark.parametrize("which", ["right", "wrong", "mixed"])
def test_no_output_of_any_frame_command_holds_a_secret(tmp_path, keylogs, which):
    secrets = _secrets(KEYLOG, keylogs["wrong"])
    for command, fmt in RUNS[which]:
        out = tmp_path / f"{command}.{fmt}"
        args = [command, str(PCAP), "--keylog", str(keylogs[which]), "--format", fmt, "--all-columns"]
        if fmt == "parquet":
            args += ["--out", str(out)]
        code, text = _invoke(*args)
        assert code == 0, text
        if fmt == "parquet":
            text += out.read_bytes().decode("latin-1") + pd.read_parquet(out).to_csv()
        _assert_clean(text, secrets)
        if command == "certs" and fmt == "csv":
            assert ("www.example.com" in text) == (which != "wrong")
        if command == "anomalies" and fmt == "csv":
            assert ("tls_decryption_failed" in text) == (which == "wrong")
        if which == "mixed":
            assert "1 of" in text and "line 1" in text  # the warning counts the line, never quotes it
            assert "00ff00ff00ff" not in text


@pytest.mark.parametrize("which", ["right", "wrong"])
def test_audit_and_report_hold_no_secret(tmp_path, keylogs, which):
    secrets = _secrets(KEYLOG, keylogs["wrong"])
    for fmt in ("table", "csv", "jsonl"):
        code, text = _invoke("audit", str(PCAP), "--keylog", str(keylogs[which]), "--vpc", "10.77.0.0/24",
                             "--format", fmt, "--fail-on", "never")
        assert code == 0, text
        _assert_clean(text, secrets)
    for fmt in ("html", "md", "json"):
        out = tmp_path / f"report.{fmt}"
        code, text = _invoke("report", str(PCAP), "--keylog", str(keylogs[which]), "--vpc", "10.77.0.0/24",
                             "--format", fmt, "--out", str(out))
        assert code == 0, text
        _assert_clean(text + out.read_text(), secrets)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark (the oracle) is not installed")
def test_verify_with_the_key_log_agrees_with_tshark_and_holds_no_secret(keylogs):
    code, text = _invoke("verify", str(PCAP), "--keylog", str(KEYLOG))
    assert code == 0 and "1 agree (100.0%)" in text, text
    _assert_clean(text, _secrets(KEYLOG))
    code, text = _invoke("verify", str(PCAP), "--keylog", str(KEYLOG), "--keylog", str(keylogs["wrong"]))
    assert code == 2 and "one --keylog" in text


def test_a_bad_key_log_is_a_one_line_error(tmp_path):
    for path, words in ((tmp_path / "missing", "cannot be read"), (PCAP, "not an NSS key log")):
        code, text = _invoke("tls", str(PCAP), "--keylog", str(path))
        assert code == 2 and words in text
        assert len(text.strip().splitlines()) == 1 and "Traceback" not in text
