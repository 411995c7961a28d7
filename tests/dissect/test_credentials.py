"""The credentials frame (analyzer/dissect/credentials.py): the secret never leaves the run.

For every bundled capture that carries a secret (its manifest entry names it), no output of any
command in any format (table, csv, jsonl, parquet; stdout and stderr) contains the secret or a base64
form of it; the credentials frame shows who logged in, how, and the secret's length and a keyed
fingerprint that differs between runs."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from analyzer import dissect
from analyzer.cli import main
from analyzer.dissect.base import DissectContext
from analyzer.dissect.credentials import CREDENTIALS, SaslExchange, credential_row, fingerprint, run_key

ROOT = Path(__file__).resolve().parents[2]
# every manifest of bundled captures (manifest.json, and manifest.<group>.json of later recordings)
MANIFEST = {name: entry for path in sorted((ROOT / "captures").glob("manifest*.json"))
            for name, entry in json.loads(path.read_text())["captures"].items()}


def _secrets(entry: dict[str, object]) -> list[tuple[str, str]]:
    """(username, password) pairs a manifest entry names."""
    out = []
    for key in ("http_basic_auth", "smtp_auth"):
        value = entry.get(key)
        if isinstance(value, dict):
            out.append((str(value["user"]), str(value["password"])))
    if "ftp_password" in entry:
        out.append((str(entry["ftp_user"]), str(entry["ftp_password"])))
    for cred in entry.get("credentials") or ():  # type: ignore[attr-defined]
        # the groups' manifests name them user/password (mail) or username/secret (data)
        secret = isinstance(cred, dict) and (cred.get("password") or cred.get("secret"))
        if secret:
            out.append((str(cred.get("user") or cred.get("username") or ""), str(secret)))
    return out


def _logins(entry: dict[str, object]) -> int:
    """Rows the credentials frame must have: one per login a group manifest lists, else the one login."""
    listed = entry.get("credentials")
    return len(listed) if isinstance(listed, list) and listed else 1


WITH_SECRETS = {name: _secrets(entry) for name, entry in MANIFEST.items() if _secrets(entry)}
COMMANDS = ["flows", "tls", "certs", "cert-links", "anomalies", "credentials", "ftp-data"]
FORMATS = ["table", "csv", "jsonl", "parquet"]


def forbidden(user: str, secret: str) -> list[bytes]:
    """The secret and its base64 forms: alone, after the user (HTTP Basic `user:secret`, SASL PLAIN
    `\\0user\\0secret`), and the part of its encoding that does not depend on what precedes it at
    each of the three alignments (at least 8 characters, so it cannot match by chance)."""
    raw = secret.encode()
    out = [raw, base64.b64encode(raw).rstrip(b"="), base64.b64encode(f"{user}:{secret}".encode()).rstrip(b"="),
           base64.b64encode(f"\0{user}\0{secret}".encode()).rstrip(b"=")]
    for k in (1, 2):
        enc = base64.b64encode(b"\0" * k + raw)
        whole = [enc[4 * g:4 * g + 4] for g in range(len(enc) // 4) if 3 * g >= k and 3 * g + 3 <= k + len(raw)]
        if len(b"".join(whole)) >= 8:
            out.append(b"".join(whole))
    return out


# Column names that contain the word "secret" (credentials' secret_*, TLS's extended_master_secret)
COLUMN_NAMES = sorted({c for schema in dissect.ALL.values() for c in schema if "secret" in c}, key=len, reverse=True)


def _scrub(data: bytes) -> bytes:
    """Output without column names: they contain the word the bundled captures use as the secret."""
    for name in COLUMN_NAMES:
        data = data.replace(name.encode(), b"")
    return data


@pytest.mark.parametrize("capture", sorted(WITH_SECRETS))
def test_no_output_contains_the_secret(capture: str, tmp_path: Path):
    assert len(WITH_SECRETS) >= 3  # http_basic_auth, smtp_plain_auth, ftp_login (and the groups' captures)
    path = str(ROOT / "captures" / capture)
    rows = 0
    for command in COMMANDS:
        for fmt in FORMATS:
            out = tmp_path / f"{command}.{fmt}"
            args = [command, path, "--format", fmt, *(["--out", str(out)] if fmt == "parquet" else [])]
            if command in ("flows", "credentials") and fmt == "table":
                args.append("--all-columns")
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, result.output
            blobs = [result.stdout_bytes, result.stderr_bytes]
            if fmt == "parquet":
                # the file less its Arrow schema (base64 of the column names, `secret_in_clear` among them)
                schema = (pq.read_metadata(out).metadata or {}).get(b"ARROW:schema", b"\0")
                blobs.append(out.read_bytes().replace(schema, b""))
                table = pq.read_table(out)
                blobs.append(json.dumps(table.to_pylist(), default=str).encode())
                if command == "credentials":
                    rows += table.num_rows
            for blob in blobs:
                for user, secret in WITH_SECRETS[capture]:
                    for needle in forbidden(user, secret):
                        assert needle not in _scrub(blob), (command, fmt, needle)
    assert rows == _logins(MANIFEST[capture])  # every login is reported, none of its secrets


def test_rows_keep_the_user_and_a_keyed_fingerprint_only():
    context = DissectContext(frames=frozenset({"credentials"}))
    key = run_key(context)
    assert run_key(context) == key and run_key(DissectContext()) != key and len(key) == 32
    row = credential_row(key, "smtp", "plain", b"alice", b"secret", True)
    assert row == {"protocol": "smtp", "mechanism": "plain", "username": "alice", "secret_in_clear": True,
                   "secret_length": 6, "secret_fingerprint": fingerprint(key, b"secret"), "accepted": True}
    assert row["secret_fingerprint"] != hashlib.sha256(b"secret").hexdigest()  # keyed, not a plain hash
    assert set(row) | {"uid"} == set(CREDENTIALS.schema)
    challenge = credential_row(key, "pop3", "apop", b"mrose", b"digest-not-a-secret", None)
    assert challenge["secret_in_clear"] is False and challenge["secret_fingerprint"] is None
    sasl = SaslExchange(b"LOGIN", None)
    assert sasl.add(base64.b64encode(b"bob")) and sasl.add(base64.b64encode(b"pw")) and not sasl.add(b"*")
    assert sasl.identity() == (b"bob", b"pw")


def test_a_key_of_the_users_makes_fingerprints_comparable_across_runs(tmp_path: Path):
    capture = str(ROOT / "captures" / "smtp_plain_auth.pcap")
    key = tmp_path / "key"
    key.write_bytes(b"k" * 31 + b"\n")

    def fingerprints(*extra: str) -> list[str]:
        result = CliRunner().invoke(main, ["credentials", capture, "--format", "jsonl", *extra])
        assert result.exit_code == 0, result.output
        assert b"k" * 31 not in result.stdout_bytes + result.stderr_bytes  # the key is never written
        return [json.loads(line)["secret_fingerprint"] for line in result.stdout.splitlines()]

    first, second = fingerprints("--credential-key-file", str(key)), fingerprints("--credential-key-file", str(key))
    assert first == second and len(first) == 1
    password = MANIFEST["smtp_plain_auth.pcap"]["smtp_auth"]["password"].encode()
    assert first[0] == fingerprint(b"k" * 31 + b"\n", password)
    assert fingerprints() != first  # without a key: a random one per run

    key.write_bytes(b"short")
    result = CliRunner().invoke(main, ["credentials", capture, "--credential-key-file", str(key)])
    assert result.exit_code == 2 and "16 to 1024 bytes" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["credentials", capture, "--credential-key-file", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "No such file" in result.output


def test_the_key_option_is_checked_and_never_shown():
    from analyzer.config import Options
    from analyzer.errors import UsageError

    opts = Options().with_values(credential_key=b"x" * 16)
    assert opts.dissect.credential_key == b"x" * 16 and "xxxxxxxx" not in repr(opts)
    with pytest.raises(UsageError, match="16 to 1024 bytes"):
        Options().with_values(credential_key=b"x" * 15)
    with pytest.raises(UsageError, match="16 to 1024 bytes"):
        Options().with_values(credential_key="a string key of enough length")
    assert run_key(DissectContext(opts.dissect)) == b"x" * 16
