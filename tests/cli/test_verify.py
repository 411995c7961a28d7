"""`analyzer.verify` / `intransit verify`: the comparison rules on small hand-made frames (no
tshark needed), the CLI's exit codes and output with tshark faked at the seam, and end to end on
bundled captures with the real tshark through pyshark."""

from __future__ import annotations

import ast
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from analyzer import schema
from analyzer.cli import main
from analyzer.dissect.tls import schema as tls_schema
from analyzer.verify import (
    DISAGREEMENTS,
    FACTS,
    TSHARK_COLUMNS,
    compare,
    decode_as_for,
    tshark_version_name,
)

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
TSHARK = shutil.which("tshark")

C, S = "10.0.0.1", "10.0.0.2"


def ours(**over: object) -> pd.DataFrame:
    row: dict[str, object] = {
        "uid": "Cabc", "protocol": "tls", "ts": 1_700_000_000.0, "client_ip": C, "client_port": 40000,
        "server_ip": S, "server_port": 443, "version": "TLS 1.2",
        "cipher": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "cipher_code": 0xC02F,
        "server_name": "www.example.com", "alpn_offered": "h2,http/1.1", "alpn": "h2",
        "cert_sha256": "aa" * 32, "client_hello_count": 1, "server_hello_count": 1,
    }  # fmt: skip
    row.update(over)
    return schema.frame_from_rows([row], tls_schema.TLS)


def certs(not_before: float = 1_680_000_000.0, not_after: float = 1_690_000_000.0) -> pd.DataFrame:
    return schema.frame_from_rows(
        [{"sha256": "aa" * 32, "not_before": not_before, "not_after": not_after,
          "not_before_epoch": not_before, "not_after_epoch": not_after}], tls_schema.CERTS)  # fmt: skip


def theirs(**over: object) -> pd.DataFrame:
    """One oracle-format row, spelled as tshark spells things."""
    row: dict[str, object] = {
        "conv": "tcp:0", "transport": "tcp", "client_ip": C, "client_port": "40000", "server_ip": S,
        "server_port": "443", "first_frame": "1", "app_protocols": "tls", "ch_count": "1", "sh_count": "1",
        "negotiated_version": "TLSv1.2", "selected_cipher": "0xc02f", "sni": "www.example.com",
        "alpn_offered": "h2|http/1.1", "alpn_selected": "h2",
        # 1_680_000_000 = 2023-03-28 10:40:00, 1_690_000_000 = 2023-07-22 04:26:40
        "leaf_validity_tshark": "2023-03-28 10:40:00 (UTC)|2023-07-22 04:26:40 (UTC)",
    }  # fmt: skip
    row.update(over)
    return pd.DataFrame([{k: "" if v is None else str(v) for k, v in row.items()}])


def facts_that_differ(o: pd.DataFrame, t: pd.DataFrame, c: pd.DataFrame | None = None) -> set[str]:
    cmp = compare(o, t, certs() if c is None else c)
    assert list(cmp.disagreements.columns) == list(DISAGREEMENTS)
    return set(cmp.disagreements["fact"])


# --- the comparison rules ------------------------------------------------------------------------
def test_same_session_agrees_and_the_summary_says_so() -> None:
    cmp = compare(ours(), theirs(), certs())
    assert cmp.disagreements.empty
    assert cmp.total == 1 and cmp.agreeing == 1
    assert cmp.summary_line() == "1 sessions compared, 1 agree (100.0%)"
    assert bool(cmp.sessions["agree"].iloc[0]) is True


@pytest.mark.parametrize(
    ("tshark", "ours_name"),
    [
        ("TLSv1", "TLS 1.0"), ("TLSv1.0", "TLS 1.0"), ("TLSv1.1", "TLS 1.1"), ("TLSv1.2", "TLS 1.2"),
        ("TLSv1.3", "TLS 1.3"), ("SSLv3", "SSL 3.0"), ("SSLv2", "SSL 2.0"), ("DTLSv1.0", "DTLS 1.0"),
        ("DTLSv1.2", "DTLS 1.2"), ("DTLSv1.3", "DTLS 1.3"), ("DTLSv1.0(OpenSSL-pre)", "DTLS 1.0"),
        ("TLSv1.3-draft28", "TLS 1.3 (draft 28)"), ("TLSv1.3-draft14", "TLS 1.3 (draft 14)"),
        ("TLSv1.3-fb-draft26", "TLS 1.3 (Facebook draft 26)"), ("0x7f17", "TLS 1.3 (draft 23)"), ("", None),
    ],
)  # fmt: skip
def test_tshark_version_names_become_ours(tshark: str, ours_name: str | None) -> None:
    assert tshark_version_name(tshark) == ours_name


def test_each_fact_is_compared() -> None:
    assert facts_that_differ(ours(version="TLS 1.1"), theirs()) == {"version"}
    assert facts_that_differ(ours(cipher_code=0x0005, cipher="TLS_RSA_WITH_RC4_128_SHA"), theirs()) == {"cipher"}
    assert facts_that_differ(ours(server_name="example.org"), theirs()) == {"sni"}
    assert facts_that_differ(ours(alpn_offered="http/1.1,h2"), theirs()) == {"alpn_offered"}  # order counts
    assert facts_that_differ(ours(alpn=None), theirs()) == {"alpn"}
    assert facts_that_differ(ours(), theirs(), certs(not_after=1_690_000_001.0)) == {"cert_validity"}
    assert facts_that_differ(ours(cert_sha256=None), theirs()) == {"cert_validity"}
    assert set(FACTS) == {"session", "version", "cipher", "sni", "alpn_offered", "alpn", "cert_validity"}


def test_ciphers_compare_by_code_sslv2_kinds_too() -> None:
    o = ours(version="SSL 2.0", cipher_code=0x0700C0, cipher="SSL2_DES_192_EDE3_CBC_WITH_MD5", alpn=None,
             alpn_offered=None)  # fmt: skip
    t = theirs(negotiated_version="SSLv2", selected_cipher="0x0700c0", alpn_selected="", alpn_offered="")
    assert facts_that_differ(o, t) == set()
    assert facts_that_differ(o, theirs(negotiated_version="SSLv2", selected_cipher="0x010080", alpn_selected="",
                                       alpn_offered="")) == {"cipher"}  # fmt: skip


def test_each_side_of_a_cipher_disagreement_is_shown_with_its_own_name() -> None:
    """Our name comes from our `cipher` column, tshark's from tshark's value strings: neither from
    the dissector's table (the oracle does not share its code)."""
    t = theirs(selected_cipher="0x0005")
    cmp = compare(ours(), t, certs(), cipher_names={5: "TLS_RSA_WITH_RC4_128_SHA"})
    row = cmp.disagreements.iloc[0]
    assert (row["fact"], row["ours"], row["tshark"]) == (
        "cipher", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (0xc02f)", "TLS_RSA_WITH_RC4_128_SHA (0x0005)")
    row = compare(ours(), t, certs()).disagreements.iloc[0]  # tshark's names unknown: its code
    assert row["tshark"] == "0x0005"


def test_verify_imports_nothing_from_the_dissectors_it_checks() -> None:
    """An oracle must not share code with what it checks (issue 10, item 3)."""
    import analyzer.verify

    tree = ast.parse(Path(analyzer.verify.__file__).read_text())
    imported = []
    for node in ast.walk(tree):  # function bodies and `if TYPE_CHECKING:` blocks included
        if isinstance(node, ast.Import):
            imported += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import in verify.py"
            imported += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert "analyzer.dissect" not in node.value or "`analyzer.dissect`" in node.value  # no importlib
    assert imported and not [m for m in imported if m == "analyzer.dissect" or m.startswith("analyzer.dissect.")]
    assert [m for m in imported if m.startswith("analyzer.")]  # the walk did see the package's imports


def test_certificate_validity_from_tshark_generalized_time_or_the_oracle_iso_columns() -> None:
    # GeneralizedTime as tshark renders it (absolute time); a year past 2038 and one before 1970
    nb, na = -86400.0, 4_102_444_800.0  # 1969-12-31, 2100-01-01
    t = theirs(leaf_validity_tshark="Dec 31, 1969 00:00:00.000000000 UTC|Jan  1, 2100 00:00:00.000000000 UTC")
    assert facts_that_differ(ours(), t, certs(nb, na)) == set()
    # no tshark rendering (the oracle misses GeneralizedTime): its `cryptography` columns are used
    t = theirs(leaf_validity_tshark="", leaf_not_before="1969-12-31T00:00:00Z",
               leaf_not_after="2100-01-01T00:00:00Z")
    assert facts_that_differ(ours(), t, certs(nb, na)) == set()


def test_bytes_that_are_not_utf8_match_tshark_replacement_characters() -> None:
    # ours keeps the bytes (backslash escapes); tshark shows U+FFFD for each
    o = ours(alpn_offered="\\xba\\xad,http/1.1", alpn=None)
    t = theirs(alpn_offered="\ufffd\ufffd|http/1.1", alpn_selected="")
    assert facts_that_differ(o, t) == set()
    assert facts_that_differ(ours(alpn_offered="\\xba,http/1.1", alpn=None), t) == {"alpn_offered"}


def test_what_a_passive_observer_cannot_see_is_not_held_against_either_side() -> None:
    quic = ours(protocol="quic", version="TLS 1.3", cipher=None, cipher_code=None, alpn_offered="h3", alpn="h3",
                cert_sha256=None, client_hello_count=None)  # fmt: skip
    t = theirs(transport="udp", conv="udp:0", app_protocols="quic|tls", sh_count="0", negotiated_version="",
               selected_cipher="", alpn_offered="h3", alpn_selected="", leaf_validity_tshark="")  # fmt: skip
    cmp = compare(quic, t, certs())
    assert cmp.disagreements.empty, cmp.disagreements
    assert cmp.sessions["unverifiable"].iloc[0] == "version:quic_version,alpn:encrypted_alpn"
    # a TLS 1.3 certificate tshark decrypted with the pcapng's key log
    tls13 = ours(version="TLS 1.3", cipher="TLS_AES_128_GCM_SHA256", cipher_code=0x1301, alpn=None, cert_sha256=None)
    t13 = theirs(negotiated_version="TLSv1.3", selected_cipher="0x1301", alpn_selected="")
    cmp = compare(tls13, t13, certs())
    assert cmp.disagreements.empty and cmp.sessions["unverifiable"].iloc[0] == "cert_validity:decrypted_cert"
    # ... but a TLS 1.2 certificate we missed is a disagreement
    assert facts_that_differ(ours(cert_sha256=None), theirs()) == {"cert_validity"}


def test_sessions_seen_by_one_side_only() -> None:
    other = theirs(client_port="40001", conv="tcp:1")
    cmp = compare(ours(), pd.concat([theirs(), other]), certs())
    assert cmp.total == 2 and cmp.agreeing == 1
    row = cmp.disagreements.iloc[0]
    got = (row["fact"], row["conv"], pd.isna(row["ours"]), row["tshark"])
    assert got == ("session", "tcp:1", True, "TLS session")
    # ours alone, with handshake facts: a disagreement; without any (TLS picked up mid-stream): skipped
    cmp = compare(ours(), theirs(client_port="1"), certs())
    assert set(cmp.disagreements["fact"]) == {"session"} and cmp.total == 2
    bare = ours(version=None, cipher=None, cipher_code=None, server_name=None, alpn_offered=None, alpn=None,
                cert_sha256=None, client_hello_count=0, server_hello_count=0)  # fmt: skip
    assert compare(bare, theirs(client_port="1"), certs()).total == 1


def test_endpoints_join_unordered_and_several_sessions_pair_in_time_order() -> None:
    # tshark took the other end for the client: still the same conversation
    swapped = theirs(client_ip=S, client_port="443", server_ip=C, server_port="40000")
    assert facts_that_differ(ours(), swapped) == set()
    # port reuse: two sessions on one 5-tuple, paired first with first
    second = ours(uid="C2", ts=2.0, version="TLS 1.3", cipher="TLS_AES_128_GCM_SHA256", cipher_code=0x1301, alpn=None,
                  cert_sha256=None)
    o = pd.concat([ours(uid="C1", ts=1.0, version="TLS 1.2"), second])
    t = pd.concat([theirs(conv="tcp:0", first_frame="1"),
                   theirs(conv="tcp:1", first_frame="9", negotiated_version="TLSv1.3",
                          selected_cipher="0x1301", alpn_selected="", leaf_validity_tshark="")])  # fmt: skip
    cmp = compare(o, t, certs())
    assert cmp.total == 2 and cmp.disagreements.empty
    assert list(cmp.sessions["uid"]) == ["C1", "C2"] and list(cmp.sessions["conv"]) == ["tcp:0", "tcp:1"]


def test_the_oracle_column_set_is_what_tshark_sessions_returns() -> None:
    assert {"negotiated_version", "selected_cipher", "sni", "alpn_offered", "alpn_selected",
            "leaf_validity_tshark", "ch_count", "sh_count", "conv"} <= set(TSHARK_COLUMNS)  # fmt: skip


def test_decode_as_for_the_ports_we_saw_tls_on_but_not_starttls_ports() -> None:
    rows = [
        {"protocol": "tls", "server_port": 8444}, {"protocol": "tls", "server_port": 443},
        {"protocol": "tls", "server_port": 25}, {"protocol": "dtls", "server_port": 4433},
        {"protocol": "quic", "server_port": 443}, {"protocol": "quic", "server_port": 4434},
    ]  # fmt: skip
    got = decode_as_for(schema.frame_from_rows(rows, tls_schema.TLS))
    assert got == {"tcp.port==443": "tls", "tcp.port==8444": "tls", "udp.port==4433": "dtls",
                   "udp.port==4434": "quic"}  # fmt: skip


# --- the command, tshark faked at the seam ----------------------------------------------------
def _fake_tshark(monkeypatch: pytest.MonkeyPatch, edit: dict[str, str]) -> None:
    import analyzer.verify as v

    def fake_sessions(path: str, decode_as: object = None, **kw: object) -> pd.DataFrame:
        t = theirs(client_ip="10.77.0.10", server_ip="10.77.0.20")
        for k, val in edit.items():
            t[k] = val
        return t

    monkeypatch.setattr(v, "_tshark_path", lambda p: "/usr/bin/tshark")
    monkeypatch.setattr(v, "tshark_sessions", fake_sessions)
    monkeypatch.setattr(v, "tshark_cipher_names", lambda p=None: {5: "TLS_RSA_WITH_RC4_128_SHA"})


def test_cli_exit_1_and_the_disagreements_when_tshark_disagrees(monkeypatch: pytest.MonkeyPatch) -> None:
    cap = str(CAPTURES / "tls12_ecdhe_openssl.pcap")
    _fake_tshark(monkeypatch, {"client_port": "40154", "selected_cipher": "0x0005"})
    r = CliRunner().invoke(main, ["verify", cap])
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert "TLS_RSA_WITH_RC4_128_SHA" in r.stdout and "cipher" in r.stdout
    assert lines[-1].startswith("1 sessions compared, 0 agree (0.0%)")
    r = CliRunner().invoke(main, ["verify", cap, "--format", "csv"])
    assert r.exit_code == 1
    df = pd.read_csv(__import__("io").StringIO(r.stdout))
    assert list(df.columns) == list(DISAGREEMENTS) and set(df["fact"]) >= {"cipher"}
    assert "1 sessions compared, 0 agree" in r.stderr  # the summary stays out of the CSV


def _verify_with_tshark(tshark: str) -> str:
    r = CliRunner().invoke(main, ["verify", str(CAPTURES / "tls13_port8444.pcap"), "--tshark", tshark])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.output
    return r.stderr


def test_cli_tshark_given_and_not_found_says_so_in_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-tshark")
    assert _verify_with_tshark(missing) == f"intransit: error: the tshark given ({missing}) does not exist\n"
    plain = tmp_path / "tshark-not-executable"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    assert _verify_with_tshark(str(plain)).endswith(f"the tshark given ({plain}) is not executable\n")
    assert _verify_with_tshark(str(tmp_path)).endswith(f"the tshark given ({tmp_path}) is a directory, not a program\n")
    assert _verify_with_tshark("no-such-tshark-command").endswith(
        "the tshark given (no-such-tshark-command) is not a command on PATH\n")


def test_cli_tshark_not_on_path_says_how_to_name_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    r = CliRunner().invoke(main, ["verify", str(CAPTURES / "tls13_port8444.pcap")])
    assert r.exit_code == 2
    assert r.stderr.startswith("intransit: error: tshark is not installed") and r.stderr.count("\n") == 1
    assert "--tshark PATH" in r.stderr


def test_a_tshark_given_by_path_is_used(tmp_path: Path) -> None:
    from analyzer.verify import _tshark_path

    exe = tmp_path / "my-tshark"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert _tshark_path(str(exe)) == str(exe)
    if TSHARK is not None:
        assert _tshark_path("tshark") == TSHARK and os.access(TSHARK, os.X_OK)


def test_cli_stdin_is_refused() -> None:
    r = CliRunner().invoke(main, ["verify", "-"], input=b"")
    assert r.exit_code == 2 and "standard input" in r.stderr


# --- end to end, real tshark through pyshark -----------------------------------------------------
# TLS 1.2 with a certificate, DTLS, TLS on a port tshark does not associate with TLS, QUIC (with
# facts tshark cannot see), and a VXLAN-mirrored session (the tunnel options must reach analyze)
E2E = ["tls12_ecdhe_openssl.pcap", "dtls12_openssl.pcap", "tls13_port8444.pcap", "quic_aioquic.pcap",
       "vxlan_mirror.pcap"]  # fmt: skip


@pytest.mark.tshark
@pytest.mark.slow
def test_cli_end_to_end_on_bundled_captures_agrees_with_tshark() -> None:
    if TSHARK is None:
        pytest.skip("tshark is not installed: the end-to-end verify test runs the real tshark")
    paths = [str(CAPTURES / name) for name in E2E]
    start = time.monotonic()
    r = CliRunner().invoke(main, ["verify", *paths])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().splitlines()[-1] == "5 sessions compared, 5 agree (100.0%)"
    assert time.monotonic() - start < 120


@pytest.mark.tshark
def test_verify_api_gives_every_fact_for_tls12_with_a_certificate() -> None:
    if TSHARK is None:
        pytest.skip("tshark is not installed: this test runs the real tshark")
    from analyzer.verify import verify, verify_captures

    bad = verify(str(CAPTURES / "tls12_ecdhe_openssl.pcap"))
    assert bad.empty and bad.attrs["summary"]["text"] == "1 sessions compared, 1 agree (100.0%)"
    s = verify_captures(str(CAPTURES / "tls12_ecdhe_openssl.pcap")).sessions.iloc[0]
    assert s["tshark_version"] == "TLS 1.2" and s["tshark_cipher"] == "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 (0xc030)"
    assert s["ours_cipher"] == s["tshark_cipher"]
    assert s["tshark_sni"] == "www.example.com" and s["tshark_alpn_offered"] == "h2,http/1.1"
    assert s["tshark_alpn"] == "http/1.1" and s["tshark_cert_validity"] == s["ours_cert_validity"]
    assert s["tshark_cert_validity"].count("Z") == 2
