"""The `intransit` command: a thin click shell over analyzer.analyze() and the report writers."""

from __future__ import annotations

import errno
import functools
import io
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import click

from analyzer._version import __version__
from analyzer.errors import IntransitError
from analyzer.report.text import printable

FLOW_TABLE_COLUMNS = (
    "ts_start", "transport", "client_ip", "client_port", "server_ip", "server_port",
    "packets_to_server", "packets_to_client", "ip_bytes_to_server", "ip_bytes_to_client", "conn_state",
    "vni", "app_protocol", "tls_version", "tls_cipher", "tls_server_name", "ja4",
)  # fmt: skip

# The frames the engine makes itself, with their commands' help; the registered dissectors add theirs.
ENGINE_FRAME_COMMANDS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "flows": ("One row per flow: endpoints, counters, TCP state, tunnel and dissected facts (TLS, SSH, ...).",
              FLOW_TABLE_COLUMNS),
    "anomalies": ("Malformed or unexpected input: damaged records, truncated headers, protocol violations.", None),
}


def _capture_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that reads captures (defined once; defaults from the value
    objects of analyzer.pipeline.Options, declared once there)."""
    from analyzer.config import MAX_FLOWS, MAX_PAYLOAD_BUDGET, MAX_TIMEOUT, MIN_FLOWS, DecodeOptions, FlowOptions

    flow, dec = FlowOptions(), DecodeOptions()
    options = [
        click.argument("paths", nargs=-1, required=True, metavar="PATH..."),
        click.option("--format", "fmt", type=click.Choice(["table", "csv", "jsonl", "parquet"]), default="table",
                     show_default=True, help="Output format."),
        click.option("--out", "out", type=click.Path(dir_okay=False, writable=True), default=None,
                     help="Write to this file instead of standard output (required for parquet)."),
        click.option("--all-columns", is_flag=True, help="Table format: show every column, not a summary."),
        click.option("--strict", is_flag=True, help="Treat any damaged capture as a fatal error."),
        click.option("--payload-budget", type=click.IntRange(0, MAX_PAYLOAD_BUDGET), default=flow.payload_budget,
                     show_default=True,
                     help="Bytes of payload kept per flow and direction for the dissectors."),
        click.option("--no-dissect", is_flag=True, help="Only count flows; skip TLS/QUIC/SSH/... dissection."),
        click.option("--tls-trim/--no-tls-trim", default=flow.tls_trim, show_default=True,
                     help="End a TLS stream's kept payload after the records the TLS dissector reads."),
        click.option("--vxlan-port", "vxlan_ports", type=click.IntRange(1, 65535), multiple=True,
                     help=f"Another UDP port carrying VXLAN, besides {', '.join(map(str, dec.vxlan_ports))} "
                          "(repeatable)."),
        click.option("--geneve-port", "geneve_ports", type=click.IntRange(1, 65535), multiple=True,
                     help=f"Another UDP port carrying GENEVE, besides {', '.join(map(str, dec.geneve_ports))} "
                          "(repeatable)."),
        click.option("--idle-timeout", type=click.FloatRange(0, MAX_TIMEOUT, min_open=True),
                     default=flow.idle_timeout_tcp, show_default=True,
                     help=f"Seconds of TCP inactivity that end a flow (UDP: the same scaled by "
                          f"{flow.idle_timeout_udp:g}/{flow.idle_timeout_tcp:g})."),
        click.option("--max-flows", type=click.IntRange(MIN_FLOWS, MAX_FLOWS), default=flow.max_flows,
                     show_default=True,
                     help="Live flows kept at most; beyond, the least recently active end early."),
        click.option("--ja4x", is_flag=True, help="Also compute JA4X (FoxIO License 1.1; see README)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _engine_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--engine/--scheduler/--workers: which engine runs the analysis (any command that calls
    _run_analysis can take them; its **opts carry them there)."""
    options = [
        click.option("--engine", "engine_name", type=click.Choice(["serial", "dask"]), default="serial",
                     show_default=True, help="serial: one process; dask: partitions on a Dask cluster, the same "
                                             "answer (needs intransit[dask])."),
        click.option("--scheduler", default=None, metavar="tcp://HOST:8786",
                     help="--engine dask: the Dask scheduler to use (default: a local cluster for the run)."),
        click.option("--workers", type=click.IntRange(1, 1024), default=None,
                     help="--engine dask without --scheduler: worker processes of the local cluster "
                          "(default: one per core)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _engine(engine_name: str = "serial", scheduler: str | None = None, workers: int | None = None) -> Any:
    """The engine the options name (None: analyze()'s default, the serial engine)."""
    from analyzer.errors import UsageError

    if engine_name != "dask":
        if scheduler is not None or workers is not None:
            raise UsageError("--scheduler and --workers go with --engine dask")
        return None
    if scheduler is not None and workers is not None:
        raise UsageError("--scheduler and --workers exclude each other (the scheduler's cluster has its workers)")
    try:
        import distributed  # noqa: F401

        from analyzer.engines.dask import DaskEngine
    except ImportError:
        raise UsageError("--engine dask needs Dask: pip install 'intransit[dask]'") from None

    def notice(text: str) -> None:
        click.echo(printable(f"intransit: {text}"), err=True)

    return DaskEngine(scheduler=scheduler, workers=workers, on_notice=notice)


def _run_analysis(paths: tuple[str, ...], strict: bool, payload_budget: int, no_dissect: bool, tls_trim: bool,
                  vxlan_ports: tuple[int, ...], geneve_ports: tuple[int, ...], idle_timeout: float,
                  max_flows: int, ja4x: bool, frames: tuple[str, ...] | None, sinks: dict[str, Any] | None = None,
                  runner: Callable[..., Any] | None = None, **more: Any) -> Any:
    import analyzer
    from analyzer.config import DecodeOptions, FlowOptions

    flow, dec = FlowOptions(), DecodeOptions()
    engine = _engine(more.pop("engine_name", "serial"), more.pop("scheduler", None), more.pop("workers", None))
    if engine is not None:
        more["engine"] = engine

    def on_problem(p: Any) -> None:
        where = f" at byte {p.offset}" if p.offset is not None else ""
        click.echo(printable(f"warning: {p.source}{where}: {p.detail}"), err=True)

    return (runner or analyzer.analyze)(
        list(paths), on_problem=on_problem, strict=strict, payload_budget=payload_budget,
        dissect=not no_dissect, tls_trim=tls_trim, vxlan_ports=tuple(dict.fromkeys((*dec.vxlan_ports, *vxlan_ports))),
        geneve_ports=tuple(dict.fromkeys((*dec.geneve_ports, *geneve_ports))),
        idle_timeout_tcp=idle_timeout, idle_timeout_udp=idle_timeout * flow.idle_timeout_udp / flow.idle_timeout_tcp,
        max_flows=max_flows, ja4x=ja4x, frames=frames, sinks=sinks, **more,
    )


def _stream(frame: str, fmt: str, out: str | None, paths: tuple[str, ...], opts: dict[str, Any]) -> None:
    """csv/jsonl/parquet: the frame goes to the output chunk by chunk during the analysis (sorted with
    bounded memory when its chunks come in another order), so memory does not grow with its rows.
    The output appears only once complete: an error leaves no partial file."""
    from analyzer.dissect import ALL
    from analyzer.pipeline import FRAME_ORDER
    from analyzer.report.stream import open_output

    with open_output(fmt, out, ALL[frame], sort_by=FRAME_ORDER.get(frame)) as sink:
        _run_analysis(paths, frames=(frame,), sinks={frame: sink}, **opts)


def _refuse_overwriting_an_input(paths: tuple[str, ...], out: str | None) -> None:
    """`--out` naming one of the captures would replace the evidence with the report: refuse."""
    from analyzer.errors import UsageError

    if not out or not os.path.exists(out):
        return
    for path in paths:
        try:
            same = path != "-" and os.path.isfile(path) and os.path.samefile(path, out)
        except OSError:
            same = False
        if same:
            raise UsageError(f"--out {out} is one of the captures given; choose another output file")


def _errors_to_exit(f: Callable[..., Any]) -> Callable[..., Any]:
    """User errors become one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out")
        try:
            _refuse_overwriting_an_input(kwargs.get("paths", ()), out)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)
                return f(*args, **kwargs)
        except IntransitError as exc:
            click.echo(printable(f"intransit: error: {exc}"), err=True)
            sys.exit(2)
        except ValueError as exc:  # bad option combinations detected by the writers
            click.echo(printable(f"intransit: error: {exc}"), err=True)
            sys.exit(2)
        except BrokenPipeError:
            sys.stderr.close()
            sys.exit(0)
        except OSError as exc:  # the system refused: a full disk, a vanished directory, ...
            # a write error (a full disk) names no file: the output is the file being written
            where = f"{exc.filename or out}: " if (exc.filename or out) and exc.errno != errno.EBADF else ""
            click.echo(printable(f"intransit: error: {where}{exc.strerror or exc}"), err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("intransit: interrupted", err=True)
            sys.exit(130)
        except Terminated as stop:
            import signal

            click.echo(f"intransit: stopped by {signal.Signals(stop.signum).name}", err=True)
            sys.exit(128 + stop.signum)

    return wrapper


class _FrameCommands(click.Group):
    """The `intransit` group: one command per frame (the engine's flows and anomalies, and every frame a
    registered dissector declares: tls, certs, ...), made from the registry when first listed or
    called, so `intransit --version` imports no dissector; plus the commands written here (verify)."""

    def _frames(self, engine_only: bool = False) -> dict[str, tuple[str, tuple[str, ...] | None, bool]]:
        from analyzer.dissect import declarations, frame_specs

        out: dict[str, tuple[str, tuple[str, ...] | None, bool]] = {
            name: (doc, cols, name == "flows") for name, (doc, cols) in ENGINE_FRAME_COMMANDS.items()}
        if not engine_only:  # the declarations only: listing commands imports no parser
            for name, spec in frame_specs(declarations()).items():
                out[name] = (spec.doc, spec.table_columns, spec.streamable)
        return out

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *(n.replace("_", "-") for n in self._frames())})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        frame = cmd_name.replace("-", "_")
        found = self._frames(engine_only=True).get(frame) or self._frames().get(frame)
        return None if found is None else _frame_command(frame, *found)


def _frame_command(frame: str, doc: str, table_columns: tuple[str, ...] | None, streamable: bool) -> click.Command:
    """`intransit FRAME PATH...`: the frame of an analysis of the captures, as a table or a file."""

    @_capture_options
    @_engine_options
    @_errors_to_exit
    def command(paths: tuple[str, ...], fmt: str, out: str | None, all_columns: bool, **opts: Any) -> None:
        if fmt != "table" and streamable:
            return _stream(frame, fmt, out, paths, opts)
        from analyzer.report import write_frame

        result = _run_analysis(paths, frames=() if frame == "anomalies" else (frame,), **opts)
        cols = None if (all_columns or fmt != "table") else (list(table_columns) if table_columns else None)
        write_frame(result[frame], fmt, out, columns=cols)

    params = list(reversed(getattr(command, "__click_params__", [])))  # as @click.command orders them
    return click.Command(frame.replace("_", "-"), callback=command, params=params, help=doc,
                         short_help=doc.split(":")[0].rstrip("."))


@click.group(cls=_FrameCommands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="intransit")
def main() -> None:
    """Audit encryption in transit from packet captures (pcap, pcapng, compressed, '-' for stdin)
    and AWS VPC Traffic Mirroring (VXLAN) / Gateway Load Balancer (GENEVE) encapsulation.

    \b
    Examples:
      intransit flows captures/
      intransit tls capture.pcapng --format csv --out tls.csv
      tcpdump -w - -i eth0 | intransit flows -
    """


def run() -> None:
    """The `intransit` command (the console script and `python -m analyzer`): `main` in a process
    of its own, with the collector paced for a batch run from start-up (`_gc.pace_process`), and
    pandas imported only by the commands that use it (`_pandas.defer_in_pyarrow`: the streaming
    csv/jsonl/parquet output works on Arrow tables; pandas' import is 0.6-0.9 s of every run)."""
    from analyzer._gc import pace_process
    from analyzer._pandas import defer_in_pyarrow

    # Nothing here uses BLAS: without this, importing numpy starts OpenBLAS worker threads that
    # spin on the same core as the run when it is pinned (callgrind: ~1% of a 200k-packet run).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    _stand_in_for_closed_streams()
    _signals_end_like_interrupts()
    pace_process()
    defer_in_pyarrow()
    main(prog_name="intransit")


class _ClosedStream(io.RawIOBase):
    """Stands in for a standard stream the caller closed (`<&-`, `>&-`: Python then has None): any
    use is an OSError that names the stream, which the commands turn into one line and exit 2."""

    def __init__(self, which: str) -> None:
        super().__init__()
        self.which = which

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise OSError(errno.EBADF, f"standard {self.which} is closed")

    def write(self, data: Any) -> int:
        raise OSError(errno.EBADF, f"standard {self.which} is closed")


def _stand_in_for_closed_streams() -> None:
    if sys.stdin is None:
        sys.stdin = io.TextIOWrapper(io.BufferedReader(_ClosedStream("input")))
    if sys.stdout is None:
        sys.stdout = io.TextIOWrapper(_ClosedStream("output"), write_through=True)
    if sys.stderr is None:  # nowhere to say anything: warnings and errors are dropped, the exit code stays
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived (`timeout`, systemd, Kubernetes, a closed terminal): unwinds like
    KeyboardInterrupt, so staged outputs and spill files are removed on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _signals_end_like_interrupts() -> None:
    import signal

    def raise_terminated(signum: int, frame: object) -> None:
        raise Terminated(signum)

    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, raise_terminated)


FINDING_TABLE_COLUMNS = ["severity", "rule", "direction", "client_ip", "server_ip", "server_port", "server_name",
                         "evidence", "suppressed_by"]


@main.command()
@_capture_options
@_engine_options
@click.option("--vpc", "vpc", multiple=True, metavar="CIDR", help="A CIDR of your VPC (repeatable): its addresses "
              "are internal, and traffic from them to outside every internal zone is egress.")
@click.option("--zones", "zones", type=click.Path(dir_okay=False), default=None,
              help="Zones TOML: named VPCs, peered VPCs, on-premises ranges, VNI/GWLB mappings.")
@click.option("--aws-ip-ranges", type=click.Path(dir_okay=False), default=None,
              help="AWS's ip-ranges.json to use instead of the bundled copy (see `intransit rules`).")
@click.option("--profile", default=None, metavar="NAME|FILE",
              help="sec09 (default), strict, nist-800-52r2, mozilla-intermediate, pci-dss-4, or a profile TOML.")
@click.option("--suppress", "suppressions", type=click.Path(dir_okay=False), default=None,
              help="Suppressions TOML: rule + match + reason + expiry.")
@click.option("--fail-on", type=click.Choice(["critical", "high", "medium", "low", "info", "never"]), default="high",
              show_default=True, help="Exit 1 when a finding (not suppressed) reaches this severity.")
@_errors_to_exit
def audit(paths: tuple[str, ...], fmt: str, out: str | None, all_columns: bool, vpc: tuple[str, ...],
          zones: str | None, aws_ip_ranges: str | None, profile: str | None, suppressions: str | None,
          fail_on: str, **opts: Any) -> None:
    """Judge the captures against a policy (AWS SEC09-BP02 by default): where each flow goes and
    whether its protection is acceptable. Prints a summary and the findings.

    Exit code 0 when no finding reaches --fail-on, 1 when one does, 2 on an input error: a CI gate.
    """
    from analyzer.auditor import audit as run_audit
    from analyzer.auditor import fails
    from analyzer.report import write_frame

    result = _run_analysis(paths, frames=None, runner=run_audit, vpc=vpc,
                           zones=zones, aws_ip_ranges=aws_ip_ranges, profile=profile, suppressions=suppressions,
                           **opts)
    findings = result.findings
    for line in _audit_summary(result, bool(vpc or zones), fail_on):
        click.echo(printable(line), err=fmt != "table" or out is not None)
    cols = None if (all_columns or fmt != "table") else FINDING_TABLE_COLUMNS
    if fmt != "table" or len(findings):
        write_frame(findings, fmt, out, columns=cols)
    sys.exit(1 if fails(findings, fail_on) else 0)


def _audit_summary(result: Any, zoned: bool, fail_on: str) -> list[str]:
    """The audit's summary: verdicts, findings by severity and rule, the worst destinations, and what
    was not judged and why."""
    flows, findings, dest = result.flows, result.findings, result.destinations
    verdicts = flows["verdict"].value_counts()
    active = findings[findings["suppressed_by"].isna()]
    by_severity = active["severity"].value_counts()
    lines = [f"audit ({result.stats.get('profile')}): {len(flows)} flows: " + ", ".join(
        f"{int(verdicts.get(v, 0))} {label}" for v, label in
        (("ok", "ok"), ("warn", "warn"), ("fail", "fail"), ("unknown", "not judged")))]
    lines.append(f"findings: {len(active)} (" + ", ".join(
        f"{s} {int(by_severity.get(s, 0))}" for s in ("critical", "high", "medium", "low", "info"))
        + f"); suppressed {len(findings) - len(active)}; fail-on {fail_on}")
    for (rule, severity), n in active.groupby(["rule", "severity"]).size().sort_values(ascending=False).items():
        lines.append(f"  {rule} ({severity}): {n}")
    if len(dest):
        worst = dest.sort_values(["score", "destination"]).head(5)
        lines.append("worst destinations: " + "; ".join(
            f"{d}:{p} {g} ({s})" for d, p, g, s in zip(worst["destination"], worst["server_port"], worst["grade"],
                                                     worst["score"], strict=True)))
    unjudged = flows[flows["verdict"] == "unknown"]
    if len(unjudged):
        no_payload = int(((unjudged["payload_bytes_to_server"].fillna(0) + unjudged["payload_bytes_to_client"]
                           .fillna(0)) == 0).sum())
        unknown = int(unjudged["app_protocol"].isna().sum()) - no_payload
        lines.append(f"not judged: {len(unjudged)} flows ({no_payload} without payload, {max(unknown, 0)} in a "
                     f"protocol not recognised, {len(unjudged) - no_payload - max(unknown, 0)} whose encryption "
                     "could not be decided)")
    if not zoned:
        lines.append("no --vpc or --zones given: no address is internal, so nothing is called egress")
    return lines


@main.command()
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "jsonl"]), default="table", show_default=True)
@click.option("--all-columns", is_flag=True, help="Table format: also options, facts read, references, rationale.")
@_errors_to_exit
def rules(fmt: str, all_columns: bool) -> None:
    """The policy rules: id, title, severity in each built-in profile, options and references."""
    from analyzer.policy import rules_table
    from analyzer.report import write_frame

    table = rules_table()
    if fmt == "table" and not all_columns:
        table = table[["rule", "title", "sec09", "strict", "nist-800-52r2", "mozilla-intermediate", "pci-dss-4"]]
    write_frame(table, fmt)


@main.command()
@_capture_options
@click.option("--tshark", "tshark_path", default=None, metavar="PATH",
              help="tshark binary to use (default: tshark on PATH).")
@_errors_to_exit
def verify(paths: tuple[str, ...], fmt: str, out: str | None, all_columns: bool, tshark_path: str | None,
           **opts: Any) -> None:
    """A second opinion: tshark (through pyshark) re-dissects every TLS/DTLS/QUIC handshake and
    each session is compared with ours (version, cipher, SNI, ALPN, certificate validity).

    Prints the disagreements session by session, then "N sessions compared, M agree (x%)"
    (on stderr for csv/jsonl/parquet). Exit code 0 when everything agrees, 1 when something
    disagrees, 2 on errors (tshark missing included).
    """
    from analyzer.report import write_frame
    from analyzer.verify import preflight, verify_captures

    preflight(paths, tshark_path)  # tshark missing, stdin: say so before the analysis
    result = _run_analysis(paths, frames=("flows", "tls", "certs"), **opts)
    cmp = verify_captures(list(paths), analysis=result, tshark_path=tshark_path)
    for note in cmp.notes:
        click.echo(printable(f"warning: {note}"), err=True)
    df = cmp.disagreements
    if fmt == "table" and len(df):
        df = df.fillna({"ours": "-", "tshark": "-"})
    if fmt == "table" and not all_columns:
        df = df.drop(columns=["uid"])
    if fmt != "table" or len(df):
        write_frame(df, fmt, out)
    line = cmp.summary_line()
    click.echo(line, err=fmt != "table" or out is not None)
    sys.exit(1 if len(cmp.disagreements) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
