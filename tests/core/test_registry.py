"""The seams of the foundation: the dissector registry and its declarations, per-run dissectors,
the hand-over of a stream, the checks at the dissector boundary, the stage hook and the engine and
source seams. Doubles stand in for protocols and stages; the captures are real."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import analyzer
from analyzer import dissect as registry
from analyzer import schema
from analyzer.dissect import Column, Dedup, DissectContext, Facts, FlowPayload, FrameSpec
from analyzer.dissect.tls.columns import SESSION_COLUMNS
from analyzer.dissect.tls.schema import FLOW_COLUMNS as TLS_COLUMNS
from analyzer.dissect.tls.schema import SESSION_FACTS
from analyzer.engines import SerialEngine
from analyzer.pipeline import Collector, Options, Plan
from analyzer.sources.base import CaptureFile, open_sources

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
STARTTLS = str(CAPTURES / "smtp_starttls.pcap")


def quiet(_: object) -> None:
    pass


# ------------------------------------------------------------------------------------ doubles
class MailDouble:
    """A plaintext dissector that claims the SMTP flow and hands the stream to TLS after STARTTLS:
    the client's command line and the server's 220 reply are the last cleartext bytes."""

    name = "mail-double"
    transports = frozenset({"tcp"})
    ports = frozenset({25})
    columns = (Column("mail_double_lines", "Int32", "cleartext lines the client sent"),)
    frames = ()

    def probe(self, flow: FlowPayload) -> bool:
        return flow.to_client.data.startswith(b"220")

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts(flow={"app_protocol": "smtp", "encrypted": False})
        client, server = flow.to_server.data, flow.to_client.data
        command = client.find(b"STARTTLS\r\n")
        if command < 0:
            return facts
        to_server = command + len(b"STARTTLS\r\n")
        reply = server.find(b"220 ", server.find(b"STARTTLS"))
        to_client = server.index(b"\r\n", reply) + 2
        facts.flow["mail_double_lines"] = client[:to_server].count(b"\r\n")
        facts.hand_over("tls", to_server, to_client)
        return facts


class Sloppy:
    """Sets a column and a frame it did not declare, and a declared one."""

    name = "sloppy"
    transports = frozenset({"tcp"})
    ports = frozenset()
    columns = (Column("sloppy_ok", "string", "declared"),)
    frames = (FrameSpec("sloppy_rows", {"uid": "string", "n": "Int64"}, "rows"),)

    def probe(self, flow: FlowPayload) -> bool:
        return True

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts(flow={"sloppy_ok": "yes", "sloppy_secret": "no"})
        facts.add_row("sloppy_rows", {"n": 1})
        facts.add_row("sloppy_rows", {"n": 2, "extra": 3})
        facts.add_row("nobody_declared_me", {"x": 1})
        return facts


class Crasher:
    name = "crasher"
    transports = frozenset({"tcp", "udp"})
    ports = frozenset()
    columns = ()
    frames = ()

    def probe(self, flow: FlowPayload) -> bool:
        return True

    def dissect(self, flow: FlowPayload) -> Facts:
        raise RuntimeError("bug in a dissector")


class ChunkCounter:
    """A stage: a column per flow (the size of its chunk) and one summary row at the end."""

    name = "chunk-counter"
    columns = (Column("chunk_size", "Int64", "flows in the chunk this flow was judged in"),)
    frames = (FrameSpec("chunk_summary", {"chunks": "Int64", "flows": "Int64"}, "one row per run"),)

    def __init__(self) -> None:
        self.chunks = self.flows = 0
        self.seen_columns: list[str] = []

    def on_flows(self, chunk: Mapping[str, pa.Array]) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        n = len(chunk["uid"])
        self.chunks += 1
        self.flows += n
        self.seen_columns = list(chunk)
        return {"chunk_size": [n] * n}, {}

    def finish(self) -> dict[str, list[dict[str, Any]]]:
        return {"chunk_summary": [{"chunks": self.chunks, "flows": self.flows}]}


# ------------------------------------------------------------------------------------ registry
def test_flows_schema_is_base_plus_declared_columns_in_registration_order():
    names = [d.name for d in registry.registered()]
    assert names[:4] == ["tls", "quic", "dtls", "ssh"]
    flows = registry.FLOWS
    assert list(flows)[: len(schema.FLOWS_BASE)] == list(schema.FLOWS_BASE)
    declared = list(flows)[len(schema.FLOWS_BASE):]
    # (TLS also sets `truncated`; its optional session facts are not in a plain run's flows)
    own = [c.name for c in TLS_COLUMNS if c.name not in schema.FLOWS_BASE and c.group is None]
    assert declared[: len(own)] == own
    assert "ssh_client_software" in declared and set(schema.FLOWS_CONTRACT) <= set(flows)
    assert flows == analyzer.FLOWS


def test_an_optional_column_group_is_made_only_in_runs_that_read_it():
    """The TLS family's session facts (Column.group) are in the flows schema, and in the dissectors'
    context, only when a stage of the run reads one of them."""
    session = [c.name for c in TLS_COLUMNS if c.group == SESSION_FACTS]
    assert session == list(SESSION_COLUMNS)
    assert not set(session) & set(registry.FLOWS)
    every = registry.flow_schema(groups=None)
    assert registry.flow_schema(groups=[SESSION_FACTS]) == every
    own = [c.name for c in TLS_COLUMNS if c.name not in schema.FLOWS_BASE]
    assert [c for c in every if c in own] == own  # in their declared place
    assert registry.column_groups(None, ["tls_version", "cert_chain"]) == {SESSION_FACTS}
    assert registry.column_groups(None, ["tls_version", "no_such_column"]) == frozenset()

    class Reader(ChunkCounter):
        reads_columns = ("tls_alert_description",)

    plain = Plan.make(Options(), stages=[ChunkCounter()])
    reading = Plan.make(Options(), stages=[Reader()])
    assert plain.groups == frozenset() and not set(session) & set(plain.schemas["flows"])
    assert reading.groups == {SESSION_FACTS} and set(session) <= set(reading.schemas["flows"])
    assert Collector(Options(), reading).context.makes(SESSION_FACTS)
    assert not Collector(Options(), plain).context.makes(SESSION_FACTS)
    flows = analyzer.analyze([STARTTLS], frames=("flows",), stages=[Reader()], on_problem=quiet).flows
    assert flows["tls_sslv2"].notna().any() and list(flows.columns) == list(reading.schemas["flows"])


def test_a_column_is_declared_in_one_group():
    class Regroup:
        name = "regroup"
        transports = frozenset({"tcp"})
        ports = frozenset()
        columns = (Column("tls_version", "string", "TLS's column, put in a group", "mine"),)
        frames = ()

    with pytest.raises(ValueError, match="group"):
        registry.flow_schema([*registry.registered(), Regroup()])


def test_declarations_are_checked_when_registering():
    class Clash:
        name = "clash"
        transports = frozenset({"tcp"})
        ports = frozenset()
        columns = (Column("tls_version", "Int32", "same name as TLS's, other dtype"),)
        frames = ()

    with pytest.raises(ValueError, match="tls_version"):
        registry.flow_schema([*registry.registered(), Clash()])
    Clash.columns = (Column("packets_to_server", "string", "a base column"),)
    with pytest.raises(ValueError, match="base flow column"):
        registry.flow_schema([Clash()])
    Clash.columns = ()
    Clash.frames = (FrameSpec("tls", {"uid": "string"}, "not TLS's tls"),)
    with pytest.raises(ValueError, match="declared differently"):
        registry.frame_specs([*registry.registered(), Clash()])
    Clash.frames = (FrameSpec("flows", {"uid": "string"}, "the engine's"),)
    with pytest.raises(ValueError, match="made by the engine"):
        registry.frame_specs([Clash()])
    Clash.frames = (FrameSpec("things", {"uid": "string"}, "x", merge=Dedup(key="sha")),)
    with pytest.raises(ValueError, match="merges by 'sha'"):
        registry.frame_specs([Clash()])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.registered()[0])


def test_a_run_with_no_dissectors_has_only_the_engine_columns_and_frames():
    r = analyzer.analyze([STARTTLS], dissectors=[], on_problem=quiet)
    assert list(r.flows.columns) == list(schema.FLOWS_BASE)
    assert r.frame_names == ("flows", "anomalies", "sources")
    assert r.flows["app_protocol"].isna().all()
    with pytest.raises(analyzer.UsageError, match="unknown frame"):
        analyzer.analyze([STARTTLS], dissectors=[], frames=("tls",))


def test_each_run_gets_its_own_dissector_instances():
    protos = registry.registered()
    context = DissectContext(frames=frozenset({"tls"}))
    tls = protos[0]
    one, two = tls.for_run(context), tls.for_run(context)  # type: ignore[attr-defined]
    assert one is not two and one is not tls
    assert one.cert_cache is not two.cert_cache
    assert one.rows and not tls.for_run(DissectContext()).rows  # type: ignore[attr-defined]
    assert tls.for_run(DissectContext(options=analyzer.Options().dissect.__class__(ja4x=True))).ja4x  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------ hand-over
def test_a_plaintext_dissector_hands_the_stream_to_tls():
    """STARTTLS through the hand-over gives the TLS facts the content-search fallback gives, with
    the application protocol of the parent and its own column."""
    without_smtp = [d for d in registry.registered() if d.name != "smtp"]  # the built-in SMTP would claim it
    fallback = analyzer.analyze([STARTTLS], on_problem=quiet, dissectors=without_smtp)
    handed = analyzer.analyze([STARTTLS], on_problem=quiet, dissectors=[MailDouble(), *without_smtp])
    builtin = analyzer.analyze([STARTTLS], on_problem=quiet)  # analyzer.dissect.smtp hands over the same way
    a, b, c = fallback.flows.iloc[0], handed.flows.iloc[0], builtin.flows.iloc[0]
    assert a["app_protocol"] == "tls" and b["app_protocol"] == "smtp" and c["app_protocol"] == "smtp"
    assert b["mail_double_lines"] == 2 and pd.isna(a.get("mail_double_lines"))
    for col in [c.name for c in TLS_COLUMNS if c.group is None] + ["encrypted"]:
        assert (pd.isna(a[col]) and pd.isna(b[col])) or a[col] == b[col], col
        assert (pd.isna(a[col]) and pd.isna(c[col])) or a[col] == c[col], col
    assert bool(b["tls_upgraded"]) and bool(b["encrypted"]) and b["tls_version"] == "TLS 1.3"
    for other in (handed, builtin):
        pd.testing.assert_frame_equal(fallback.tls, other.tls)
        pd.testing.assert_frame_equal(fallback.certs, other.certs)


def test_a_hand_over_to_nobody_is_an_anomaly():
    class Lost(MailDouble):
        def dissect(self, flow: FlowPayload) -> Facts:
            facts = super().dissect(flow)
            facts.hand_over("no-such-protocol", 0, 0)
            return facts

    r = analyzer.analyze([STARTTLS], on_problem=quiet, dissectors=[Lost(), *registry.registered()])
    assert r.flows.iloc[0]["app_protocol"] == "smtp" and pd.isna(r.flows.iloc[0]["tls_version"])
    row = r.anomalies[r.anomalies["kind"] == "handover_refused"].iloc[0]
    assert "mail-double" in row["detail"] and "no-such-protocol" in row["detail"]
    assert row["uid"] == r.flows.iloc[0]["uid"] and row["layer"] == "dissect"


# ------------------------------------------------------------------------------------ boundary
def test_undeclared_facts_are_anomalies_and_the_declared_ones_stay():
    r = analyzer.analyze([str(CAPTURES / "http_plain.pcap")], on_problem=quiet, dissectors=[Sloppy()])
    assert (r.flows["sloppy_ok"] == "yes").all() and "sloppy_secret" not in r.flows
    assert list(r.sloppy_rows["n"]) == [1] * len(r.flows)  # the row with an undeclared key is dropped
    kinds = r.anomalies.groupby("kind")["detail"].first()
    assert "sloppy: flow column 'sloppy_secret'" in kinds["undeclared_column"]
    assert "nobody_declared_me" in kinds["undeclared_frame"]
    assert r.anomalies["detail"].str.contains("'extra'").any()


def test_a_dissector_that_raises_loses_nothing_else():
    r = analyzer.analyze([str(CAPTURES)], on_problem=quiet, dissectors=[Crasher(), *registry.registered()])
    full = analyzer.analyze([str(CAPTURES)], on_problem=quiet)
    assert len(r.flows) == len(full.flows)
    errors = r.anomalies[r.anomalies["kind"] == "dissector_error"]
    assert len(errors) and errors["detail"].str.startswith("crasher: RuntimeError: bug in a dissector").all()


# ------------------------------------------------------------------------------------ stages
def test_a_stage_sees_every_flows_chunk_and_adds_its_column_and_frame():
    stage = ChunkCounter()
    r = analyzer.analyze([str(CAPTURES)], on_problem=quiet, stages=[stage])
    assert stage.flows == len(r.flows) and (r.flows["chunk_size"] == len(r.flows)).all()
    assert "tls_version" in stage.seen_columns  # it runs after the dissectors' columns are joined
    assert r.chunk_summary.to_dict("records") == [{"chunks": 1, "flows": len(r.flows)}]
    assert str(r.flows["chunk_size"].dtype) == "Int64"


def test_a_stage_runs_chunk_by_chunk_on_streamed_flows(monkeypatch):
    import analyzer.flows.table as table
    import analyzer.pipeline as pipeline

    monkeypatch.setattr(pipeline, "FLOW_ROWS_PER_FRAME", 5)
    monkeypatch.setattr(table, "EXPORT_CHUNK_WITH_PAYLOAD", 1)  # export ended flows at once
    written: list[pd.DataFrame] = []

    class Sink:
        def write(self, chunk: pd.DataFrame) -> None:
            written.append(chunk)

        def close(self) -> None: ...

    stage = ChunkCounter()
    # flows end while the captures are read (idle timeouts of a millisecond), so several chunks come
    analyzer.analyze([str(CAPTURES)], on_problem=quiet, stages=[stage], sinks={"flows": Sink()}, frames=("flows",),
                     idle_timeout_tcp=1e-3, idle_timeout_udp=1e-3)
    assert stage.chunks == len(written) > 1
    assert all((c["chunk_size"] == len(c)).all() for c in written)


def test_a_stage_may_not_replace_existing_columns():
    class Bad(ChunkCounter):
        columns = (Column("tls_version", "string", "x"),)

    with pytest.raises(analyzer.UsageError, match="exists already"):
        analyzer.analyze([STARTTLS], stages=[Bad()])


# ------------------------------------------------------------------------------------ engine, sources
def test_the_engine_and_sources_seams_take_doubles():
    class Twice:
        """A source double: the packets of one capture, read twice (a replay)."""

        name = "replayed"

        def batches(self) -> Iterator[Any]:
            yield from CaptureFile(STARTTLS).batches()

    seen: list[str] = []

    class Recording(SerialEngine):
        def run(self, sources, options, collector, on_problem):  # type: ignore[no-untyped-def]
            seen.extend(s.name for s in sources)
            return super().run(sources, options, collector, on_problem)

    r = analyzer.analyze([], sources=[Twice()], engine=Recording(), on_problem=quiet)
    direct = analyzer.analyze([STARTTLS], on_problem=quiet)
    assert seen == ["replayed"] and list(r.sources["source"]) == ["replayed"]
    pd.testing.assert_frame_equal(r.flows.drop(columns="source"), direct.flows.drop(columns="source"))
    assert [s.name for s in open_sources([str(CAPTURES / "http_plain.pcap")])] == [str(CAPTURES / "http_plain.pcap")]


# ------------------------------------------------------------------------------------ configuration
def test_options_are_declared_once_and_checked():
    opts = Options().with_values(payload_budget=1024, ja4x=True, frames=["flows"], vxlan_ports=[4789, 8472])
    assert opts.flows.payload_budget == 1024 and opts.dissect.ja4x and opts.output.frames == ("flows",)
    assert opts.decode.vxlan_ports == (4789, 8472) and Options().flows.payload_budget == 65536
    with pytest.raises(analyzer.UsageError, match="unknown option"):
        Options().with_values(payload_bugdet=1)
    with pytest.raises(analyzer.UsageError, match="max_flows"):
        Options().with_values(max_flows=3)
    with pytest.raises(analyzer.UsageError, match="not a string"):
        Options().with_values(frames="flows")
    a = analyzer.analyze([STARTTLS], options=Options().with_values(dissect=False), on_problem=quiet)
    assert a.flows["app_protocol"].isna().all() and len(a.tls) == 0
    b = analyzer.analyze([STARTTLS], options=Options().with_values(dissect=False), dissect=True, on_problem=quiet)
    assert b.flows.iloc[0]["app_protocol"] == "smtp"  # a keyword overrides the Options given


def test_cli_defaults_are_the_declared_ones():
    from click.testing import CliRunner

    from analyzer.cli import main

    text = " ".join(CliRunner().invoke(main, ["flows", "--help"]).output.split())
    flows = Options().flows
    assert f"[default: {flows.payload_budget};" in text and f"[default: {flows.max_flows};" in text
    assert f"[default: {flows.idle_timeout_tcp};" in text


def test_every_registered_frame_has_a_command():
    from click.testing import CliRunner

    from analyzer.cli import main

    out = CliRunner().invoke(main, ["--help"], terminal_width=200).output
    for name in ("flows", "anomalies", *registry.frame_specs()):
        assert f"  {name.replace('_', '-')} " in out, name
    result = CliRunner().invoke(main, ["cert-links", str(CAPTURES / "tls12_ecdhe_openssl.pcap"), "--format", "csv"])
    assert result.exit_code == 0 and result.output.splitlines()[0] == "uid,sha256,position,sent_by"


def test_the_builtin_order_does_not_depend_on_import_order():
    """A test (or a user) that imports one dissector module first must not reorder the registry."""
    import subprocess
    import sys

    code = ("import analyzer.dissect.ftp, analyzer.dissect.ssh; from analyzer import dissect; "
            "print(','.join(d.name for d in dissect.registered()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    code = "from analyzer import dissect; print(','.join(d.name for d in dissect.registered()))"
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == plain.stdout.strip()
    assert out.stdout.startswith("tls,quic,dtls,ssh,http,smtp,imap,pop3,ftp,")


def test_a_run_without_dissection_imports_no_parser():
    """The flows schema comes from the declarations: `--no-dissect` (and listing the commands) imports
    neither the TLS/QUIC/DTLS parsers nor `cryptography` (start-up was +0.5G instructions without this)."""
    import subprocess
    import sys

    code = ("import sys, analyzer; r = analyzer.analyze('captures/http_plain.pcap', dissect=False); "
            "from analyzer.cli import main; main.list_commands(None); "
            "print(len(r.flows.columns), sorted(m for m in sys.modules if m.startswith(('cryptography', "
            "'analyzer.dissect.tls.records', 'analyzer.dissect.quic._', 'analyzer.dissect.dtls'))))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         cwd=root)
    assert out.stdout.split() == [str(len(registry.FLOWS)), "[]"]


def test_light_declarations_equal_the_dissectors_own():
    import importlib

    for module, light in registry.LIGHT_DECLARATIONS.items():
        declared = importlib.import_module(light)
        real = importlib.import_module(module).DISSECTOR
        assert real.columns == declared.FLOW_COLUMNS, module
        assert real.frames == declared.FRAMES, module
    assert [d.name for d in registry.declarations()] == [d.name for d in registry.registered()]


def test_light_prototypes_equal_the_dissectors_own():
    """A light prototype (LIGHT_PROTOTYPES) declares and probes as its implementation does, and its
    implementation, once imported, takes its place in the registry."""
    import importlib

    from analyzer.flows.payload import Datagram, FlowPayload

    assert set(registry.LIGHT_PROTOTYPES) <= set(registry.LIGHT_DECLARATIONS)
    for module in registry.LIGHT_PROTOTYPES:
        light = registry.LightDissector(module)
        real = importlib.import_module(module).DISSECTOR
        for attr in ("name", "app_protocols", "transports", "ports", "columns", "frames"):
            assert getattr(light, attr) == getattr(real, attr), (module, attr)
        for method in ("resync", "find_start", "dissect_from"):  # a light prototype does not forward these
            assert not hasattr(real, method) and not hasattr(light, method), (module, method)
        assert real in registry.registered() and light.implementation() is real
        assert [d.name for d in registry.registered()].count(real.name) == 1
        for payload in (b"", b"\x16\xfe\xfd" + bytes(8) + b"\x00\x00", b"\xc0\x00\x00\x00\x01" + bytes(40)):
            flow = FlowPayload("u", "udp", "10.0.0.1", "10.0.0.2", 5000, 443, 0.0)
            flow.datagrams.append(Datagram(0.0, True, payload))
            assert light.probe(flow) == real.probe(flow), (module, payload)


def test_a_light_prototype_imports_its_implementation_on_first_dissect():
    """Dissection in a fresh process: QUIC and DTLS stay light until a flow of theirs is dissected,
    and the facts are the implementation's."""
    import subprocess
    import sys

    code = ("import sys, analyzer; from analyzer import dissect; "
            "r = analyzer.analyze('captures/http_plain.pcap'); "
            "print(sorted(m for m in sys.modules "
            "if m.startswith(('analyzer.dissect.quic._d', 'analyzer.dissect.dtls'))), "
            "[type(d).__name__ for d in dissect.registered()][1:3]); "
            "r = analyzer.analyze('captures/quic_aioquic.pcap'); "
            "print(sorted(m for m in sys.modules if m.startswith('analyzer.dissect.quic._d')), "
            "[type(d).__name__ for d in dissect.registered()][1:3], sorted(set(r.flows.app_protocol.dropna())))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         cwd=root)
    assert out.stdout.splitlines() == [
        "[] ['LightDissector', 'LightDissector']",
        "['analyzer.dissect.quic._dissector'] ['QuicDissector', 'LightDissector'] ['quic']",
    ]
