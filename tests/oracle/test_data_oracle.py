"""The data-store, broker and remaining STARTTLS dissectors (postgresql, mysql, redis, mqtt, memcached,
xmpp, nntp, amqp, mongodb) against tshark, the independent
oracle: every TCP conversation tshark decodes as one of these protocols gets the same `app_protocol`
from us (agreement >= 97% over the set, each disagreement listed in EXPECTED_DISAGREEMENTS and
explained in tests/oracle/ORACLE_DATA_NOTES.md). Conversations come from the corpus's tshark oracle
(oracle/<source>/<file>.csv, `app_protocols`, computed by tshark 4.0.17) and, for the bundled
captures of make_data_captures.sh, from running tshark here. Skips cleanly without the corpus or
tshark."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from support.oracle_helpers import agreement

import analyzer

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("INTRANSIT_CORPUS", ROOT.parent / "shared" / "corpus"))
# tshark's protocol names -> ours
NAMES = {"pgsql": "postgresql", "mysql": "mysql", "resp": "redis", "mqtt": "mqtt", "memcache": "memcached",
         "xmpp": "xmpp", "nntp": "nntp", "amqp": "amqp", "mongo": "mongodb"}
_DATA_MANIFEST = ROOT / "captures" / "manifest.data.json"
BUNDLED = sorted(ROOT / "captures" / n for n in json.loads(_DATA_MANIFEST.read_text())["captures"]) \
    if _DATA_MANIFEST.is_file() else []

# (capture name, tshark's protocol, server port) -> what we say (ORACLE_DATA_NOTES.md says why)
EXPECTED_DISAGREEMENTS: dict[tuple[str, str, int], str | None] = {}

Key = frozenset[tuple[str, int]]


def corpus_conversations() -> dict[Path, dict[Key, str]]:
    """Per corpus capture: the TCP conversations whose tshark `app_protocols` name one of ours."""
    out: dict[Path, dict[Key, str]] = {}
    for table in sorted((CORPUS / "oracle").rglob("*.csv")):
        if table.name == "crosscheck.csv" or table.name.endswith(".with_secrets.csv"):
            continue
        with table.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("transport") != "tcp":
                    continue
                ours = [NAMES[p] for p in row["app_protocols"].split("|") if p in NAMES]
                if ours:
                    key = frozenset({(row["client_ip"], int(row["client_port"])),
                                     (row["server_ip"], int(row["server_port"]))})
                    out.setdefault(CORPUS / row["file"], {})[key] = ours[0]
    return out


def tshark_conversations(path: Path) -> dict[Key, str]:
    """The same, by running tshark on a bundled capture."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", " || ".join(NAMES), "-T", "fields",
                          "-E", "separator=\t", "-e", "frame.protocols", "-e", "ip.src", "-e", "tcp.srcport",
                          "-e", "ip.dst", "-e", "tcp.dstport"],
                         capture_output=True, text=True, timeout=120, check=False).stdout
    seen: dict[Key, str] = {}
    for line in out.splitlines():
        cells = line.split("\t")
        found = [NAMES[x] for x in cells[0].split(":") if x in NAMES]
        if found and len(cells) == 5:
            seen.setdefault(frozenset({(cells[1], int(cells[2])), (cells[3], int(cells[4]))}), found[0])
    return seen


def ours(path: Path) -> dict[Key, str | None]:
    flows = analyzer.analyze([str(path)], on_problem=lambda p: None).flows
    out: dict[Key, str | None] = {}
    for row in flows[flows["transport"] == "tcp"].itertuples():
        key = frozenset({(str(row.client_ip), int(row.client_port)), (str(row.server_ip), int(row.server_port))})
        out[key] = None if pd.isna(row.app_protocol) else str(row.app_protocol)
    return out


def comparisons() -> list[tuple[Path, str, str | None, int]]:
    """(capture, tshark's protocol, ours, lower port) for each conversation tshark names as ours."""
    oracle = corpus_conversations()
    if shutil.which("tshark") is not None:
        for path in BUNDLED:
            oracle[path] = tshark_conversations(path)
    out = []
    for path, conversations in sorted(oracle.items()):
        if not path.is_file():
            continue
        mine = ours(path)
        for key, theirs in conversations.items():
            out.append((path, theirs, mine.get(key), min(p for _, p in key)))
    return out


@pytest.mark.tshark
def test_agreement_with_tshark():
    if not (CORPUS / "oracle").is_dir():
        pytest.skip(f"the shared corpus is not at {CORPUS} (set INTRANSIT_CORPUS)")
    results = comparisons()
    result = agreement(((p.name, t, m, port) for p, t, m, port in results), EXPECTED_DISAGREEMENTS)
    seen = {name: counts[0] for name, counts in result.by_protocol.items()}
    assert result.total >= 20, result
    assert all(seen.get(p, 0) >= 3 for p in ("postgresql", "mysql", "mqtt")), result
    assert not result.unexplained, result.unexplained
    assert result.share >= 0.97, result
    for key in EXPECTED_DISAGREEMENTS:  # each listed disagreement is still one
        assert any((p.name, t, port) == key and t != m for p, t, m, port in results), key


def test_cleartext_credentials_of_the_corpus_have_rows():
    """The corpus captures tagged with cleartext credentials of these protocols (pgsql_password,
    mysql_login, mqtt_credentials) give a credentials row per login tshark shows, and the ones
    that send a reusable secret say so."""
    cases = {"pcaps/ndpi/pgsql.pcap": [("md5", "oryx"), ("md5", "oryx"), ("scram-sha-256", "test")],
             "pcaps/zeek/postgresql/psql-aws-ssl-disable.pcap": [("md5", "zeek")],
             "pcaps/ndpi/mysql.pcapng": [("mysql_native_password", "admin")],
             "pcaps/suricata-verify/mqtt311-pub-userpass/input.pcap": [("connect_password", "user")]}
    if not (CORPUS / "pcaps").is_dir():
        pytest.skip(f"the shared corpus is not at {CORPUS} (set INTRANSIT_CORPUS)")
    for name, expected in cases.items():
        result = analyzer.analyze([str(CORPUS / name)], on_problem=lambda p: None)
        creds = result.credentials.merge(result.flows[["uid", "ts_start"]], on="uid").sort_values("ts_start")
        assert list(zip(creds["mechanism"], creds["username"], strict=True)) == expected, name
        assert list(creds["secret_in_clear"]) == [m == "connect_password" for m, _ in expected], name


def test_probes_fire_only_on_their_protocol():
    """Each probe of these dissectors, run on every flow of every corpus capture and every bundled
    capture (not only on the flows the engine would offer it), fires only on conversations of its
    own protocol: tshark's in the corpus, the data manifest's in captures/. So a port hint can never
    make one of them take another protocol's flow."""
    if not (CORPUS / "oracle").is_dir():
        pytest.skip(f"the shared corpus is not at {CORPUS} (set INTRANSIT_CORPUS)")
    import csv as _csv

    from analyzer.decode import DecodeOptions, decode
    from analyzer.dissect import registered
    from analyzer.errors import CaptureError
    from analyzer.flows.table import FlowTable
    from analyzer.pipeline import Options
    from analyzer.sources.readers import read_capture

    mine = [d for d in registered() if d.name in set(NAMES.values())]
    oracle = corpus_conversations()
    manifest = json.loads(_DATA_MANIFEST.read_text())["captures"] if _DATA_MANIFEST.is_file() else {}
    with (CORPUS / "manifest.csv").open(newline="") as fh:
        corpus = [CORPUS / r["file"] for r in _csv.DictReader(fh)]
    bundled = sorted(p for p in (ROOT / "captures").iterdir() if p.name.endswith((".pcap", ".pcapng")))
    fired = wrong = 0
    for path in [*corpus, *bundled]:
        table = FlowTable(Options().flows)
        try:
            ended = [e for batch in read_capture(str(path)) for e in table.update(decode(batch, DecodeOptions()))]
        except CaptureError:
            continue  # the corpus's broken files
        ended.extend(table.flush())
        for fp in (fp for e in ended for fp in e.payloads):
            key = frozenset({(fp.client_ip, fp.client_port), (fp.server_ip, fp.server_port)})
            for d in mine:
                if fp.transport not in d.transports or not d.probe(fp):
                    continue
                fired += 1
                expected = (manifest[path.name]["app_protocol"] if path.name in manifest
                            else oracle.get(path, {}).get(key))
                wrong += expected != d.name
                assert expected == d.name, (path.name, d.name, fp.server_port)
    assert fired >= 30 and wrong == 0
