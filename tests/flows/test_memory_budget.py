"""One memory budget for the run (issue 16 item 3): --memory-budget bounds the flow records, the
payload pages, the payloads in flight and the certificate cache; past a share the payload budget is
lowered, then the flows holding the most payload end early, each decision an anomalies row and one
stderr line per kind. The captures are made by the test and piped, never stored
(tests/support/memory_helpers)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.memory_helpers import concurrent_flows, pcap_chunks, peak_rss

import analyzer
from analyzer.cli import main
from analyzer.config import MIN_MEMORY_BUDGET, Options, memory_shares, parse_size
from analyzer.errors import UsageError
from analyzer.flows.table import FlowTable, record_limit

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def _flows_cmd(*extra: str) -> list[str]:
    return [sys.executable, "-m", "analyzer", "flows", "-", "--format", "csv", "--out", os.devnull, *extra]


@pytest.mark.slow
def test_concurrent_flows_each_sending_64k_stay_within_the_budget() -> None:
    """2,000 TCP connections each sending 64 KiB, none closing: 125 MiB of live payload. Before the
    budget this took ~576 MiB RSS (336 MiB over the interpreter); with --memory-budget 64M the run
    stays under the interpreter's own peak (the same command on one flow, measured here) + 64 MiB."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    baseline, rc, err = peak_rss(_flows_cmd("--memory-budget", "64M"), pcap_chunks(concurrent_flows(1)),
                                 cwd=str(ROOT), env=env)
    assert rc == 0, err
    peak, rc, err = peak_rss(_flows_cmd("--memory-budget", "64M"), pcap_chunks(concurrent_flows(2000)),
                             cwd=str(ROOT), env=env)
    assert rc == 0, err
    assert peak <= baseline + 64 * MiB, f"peak {peak / MiB:.0f} MiB, interpreter {baseline / MiB:.0f} MiB"
    lines = err.decode().splitlines()
    assert any("lowered the payload budget" in line for line in lines), lines


def _cli(data: bytes, *args: str) -> tuple[str, str]:
    r = CliRunner().invoke(main, [*args, "-"], input=data)
    assert r.exit_code == 0, (r.output, r.exception)
    return r.stdout, r.stderr


def _capture(n: int, per_flow: int) -> bytes:
    return b"".join(pcap_chunks(concurrent_flows(n, per_flow=per_flow)))


def test_past_the_payload_share_the_budget_is_lowered_and_said_once() -> None:
    """400 connections x 64 KiB against a 32 MiB budget (10 MiB of payload pages): the payload budget
    is halved until the prefixes fit; every flow is still one row; one anomalies row per decision
    and one stderr line for them all."""
    data = _capture(400, 65536)
    out, err = _cli(data, "anomalies", "--memory-budget", "32M", "--format", "csv")
    rows = [line for line in out.splitlines() if ",payload_budget_lowered," in line]
    assert rows, out
    assert err.count("lowered the payload budget") == 1 and "was 65536" in err, err
    flows, _ = _cli(data, "--quiet", "flows", "--memory-budget", "32M", "--format", "csv")
    assert len(flows.splitlines()) == 1 + 400  # nothing ended early: the prefixes were cut instead
    # the default budget holds them whole: no decision, nothing said
    out, err = _cli(data, "anomalies", "--format", "csv")
    assert "payload_budget_lowered" not in out and err == ""


def test_at_the_lowest_payload_budget_the_largest_flows_end_early() -> None:
    """3,000 connections x 4 KiB against 32 MiB (5,120 pages of 2 KiB; two pages a flow at the
    lowest budget): the flows holding the most payload end early, counted in anomalies, said once."""
    data = _capture(3000, 4 * 1460)
    out, err = _cli(data, "anomalies", "--memory-budget", "32M", "--format", "csv")
    assert ",flows_ended_memory," in out, out
    assert err.count("flows ended early to stay within the memory budget") == 1, err
    flows, _ = _cli(data, "--quiet", "flows", "--memory-budget", "32M", "--format", "csv")
    assert len(flows.splitlines()) > 1 + 3000  # those ended early went on as new (mid-stream) flows


def test_the_records_share_bounds_the_live_flows() -> None:
    opts = Options().with_values(memory_budget=MIN_MEMORY_BUDGET).flows
    limit = record_limit(opts)
    assert 16 <= limit < opts.max_flows
    table = FlowTable(opts)
    assert table.record_limit == limit
    assert limit * 1500 <= memory_shares(MIN_MEMORY_BUDGET).records  # ~1.9 KB a record
    assert record_limit(Options().flows) <= Options().flows.max_flows


def test_the_payload_pages_are_reserved_within_their_share_and_not_resident() -> None:
    opts = Options().flows
    table = FlowTable(opts)
    assert table.POOL.nbytes <= memory_shares(opts.memory_budget).table // 2 + 16 * table.page
    assert table.export_chunk * 4 * opts.payload_budget <= memory_shares(opts.memory_budget).in_flight


def test_a_payload_budget_too_large_for_the_memory_budget_is_lowered_from_the_start() -> None:
    opts = Options().with_values(memory_budget=MIN_MEMORY_BUDGET, payload_budget=16 << 20).flows
    table = FlowTable(opts)
    assert table.budget_lowered_to and table.budget_lowered_to < 16 << 20
    assert [kind for kind, _, _ in table.memory_events] == ["payload_budget_lowered"]


def test_the_certificate_cache_gets_its_share() -> None:
    from analyzer.pipeline import Collector, Plan

    opts = Options().with_values(memory_budget=64 * MiB)
    collector = Collector(opts, Plan.make(opts))
    assert collector.dissection is not None
    tls = collector.dissection.by_name["tls"]
    assert tls.cert_cache.max_bytes == memory_shares(64 * MiB).cert_cache


def test_the_certificate_cache_stays_within_its_bytes() -> None:
    from support.memory_helpers import _leaf_template

    from analyzer.dissect.x509 import CertificateCache

    leaf = _leaf_template()
    cache = CertificateCache(max_bytes=100_000)
    for i in range(200):
        der = leaf.der[: leaf.serial_at] + b"\x5a" + i.to_bytes(15, "big") + leaf.der[leaf.serial_at + 16 :]
        row = cache.parse(der)
        assert row["sha256"] in cache  # the one just parsed is always kept
        assert cache.bytes <= 100_000
    assert cache.evictions > 0 and len(cache) < 200


@pytest.mark.parametrize(("text", "value"), [("805306368", 768 * MiB), ("768M", 768 * MiB), ("768MiB", 768 * MiB),
                                             ("2g", 2 << 30), ("1.5G", 3 << 29), ("64 MB", 64 * MiB)])
def test_sizes(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "lots", "-1M", "12X", "nanM", "1e400"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


@pytest.mark.parametrize("value", ["1M", "31M", "2T", "junk"])
def test_the_option_checks_its_range_in_one_line(value: str, tmp_path: Path) -> None:
    cap = tmp_path / "x.pcap"
    cap.write_bytes(_capture(1, 10))
    r = CliRunner().invoke(main, ["flows", str(cap), "--memory-budget", value])
    assert r.exit_code == 2 and "--memory-budget" in r.output and "Traceback" not in r.output
    with pytest.raises(UsageError):
        Options().with_values(memory_budget=parse_size(value) if value[0].isdigit() else value)


def test_the_default_budget_changes_nothing_on_a_bundled_capture() -> None:
    cap = ROOT / "captures" / "cert_good_chain_tls12.pcap"
    a = analyzer.analyze([str(cap)])
    b = analyzer.analyze([str(cap)], memory_budget=1 << 40)
    assert a.flows.equals(b.flows) and a.certs.equals(b.certs)


def test_a_tls_limit_past_the_budget_never_writes_past_the_flows_pages(tmp_path: Path) -> None:
    """The TLS framing limit (the end of the third record from the first application-data record)
    can lie beyond the payload budget; the kernel used it in place of the budget and wrote past the
    flow's page table (into the other direction's pages). Now the budget always bounds it."""
    from support.pcap_helpers import table_run, tcp_session, write_packets

    def rec(ctype: int, n: int, fill: bytes) -> bytes:
        return bytes([ctype, 3, 3]) + n.to_bytes(2, "big") + fill * n

    # the third record from the first application-data one starts within the budget, ends far past it
    client = rec(22, 200, b"h") + rec(23, 100, b"a") + rec(23, 100, b"b") + rec(23, 16000, b"c") + rec(23, 900, b"d")
    server = rec(22, 300, b"s") + b"".join(rec(23, 900, bytes([65 + k])) for k in range(4))
    packets = tcp_session(b"", b"", dport=443)[:3]
    from scapy.layers.inet import IP, TCP
    from support.pcap_helpers import eth

    seq_c, seq_s = 1001, 5001
    for off in range(0, len(client), 1400):
        packets.append(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=443, flags="PA",
                       seq=seq_c + off, ack=seq_s) / client[off : off + 1400])
    for off in range(0, len(server), 1400):
        packets.append(eth() / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=443, dport=40000, flags="PA",
                       seq=seq_s + off, ack=seq_c) / server[off : off + 1400])
    path = write_packets(tmp_path / "tls.pcap", packets)
    _, payloads = table_run(path, payload_budget=4096)
    (fp,) = payloads.values()
    assert fp.to_server.data == client[:4096] and fp.to_server.budget_hit
    assert fp.to_client.data == server[: len(fp.to_client.data)] and len(fp.to_client.data) >= 4096 - 2048
