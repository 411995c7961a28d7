"""The `intransit` command: a thin click shell over analyzer.analyze() and the report writers."""

from __future__ import annotations

import errno
import functools
import io
import os
import shutil
import sys
import warnings
from collections.abc import Callable
from typing import Any

import click

from analyzer._version import __version__
from analyzer.errors import IntransitError
from analyzer.report.text import printable

# The flows' default table is a view made of them (analyzer.report.terminal.flows_view: who, to
# where, protocol, protection, version, verdict); these are the columns it reads.
FLOW_TABLE_COLUMNS = ("ts_start", "client_ip", "server_ip", "server_port", "tls_server_name", "http_host",
                      "app_protocol", "transport", "protection", "encrypted", "tls_version", "verdict")

# The frames the engine makes itself, with their commands' help; the registered dissectors add theirs.
ENGINE_FRAME_COMMANDS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "flows": ("One row per flow: endpoints, counters, TCP state, tunnel and dissected facts (TLS, SSH, ...).",
              FLOW_TABLE_COLUMNS),
    "anomalies": ("Malformed or unexpected input: damaged records, truncated headers, protocol violations.", None),
}


def _capture_options(f: Callable[..., Any], *, frame_output: bool = True) -> Callable[..., Any]:
    """Options shared by every command that reads captures (defined once; defaults from the value
    objects of analyzer.pipeline.Options, declared once there). `frame_output`: with the frame
    commands' --format/--out/--all-columns (`report` declares its own)."""
    from analyzer.config import MAX_FLOWS, MAX_PAYLOAD_BUDGET, MAX_TIMEOUT, MIN_FLOWS, DecodeOptions, FlowOptions

    flow, dec = FlowOptions(), DecodeOptions()
    outputs = [
        click.option("--format", "fmt", type=click.Choice(["table", "csv", "jsonl", "parquet"]), default="table",
                     show_default=True, help="Output format."),
        click.option("--out", "out", type=click.Path(dir_okay=False, writable=True), default=None,
                     help="Write to this file instead of standard output (required for parquet)."),
        click.option("--all-columns", is_flag=True,
                     help="Table format: every column, uncut (the default is a summary that fits the terminal)."),
        click.option("--limit", type=click.IntRange(0), default=TABLE_ROWS, show_default=True, metavar="ROWS",
                     help="Table format: rows shown at most, the first (flows: the earliest; audit: the most "
                          "severe findings); the others are counted on stderr. 0: every row (memory grows "
                          "with them)."),
    ]
    options = [
        click.argument("paths", nargs=-1, required=True, metavar="PATH..."),
        *(outputs if frame_output else []),
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
        click.option("--memory-budget", type=_SizeType(), default=flow.memory_budget, show_default=True,
                     metavar="SIZE",
                     help="Memory the analysis may hold besides the interpreter (e.g. 768M, 2G): flow records, "
                          "payload, certificates; past it the payload budget is lowered, then the flows "
                          "holding the most payload end early (anomalies and one warning line each)."),
        click.option("--ja4x", is_flag=True, help="Also compute JA4X (FoxIO License 1.1; see README)."),
        click.option("--credential-key-file", type=click.Path(dir_okay=False), default=None,
                     help="Key (a file of 16-1024 bytes) for the credentials' fingerprints, so that two runs "
                          "see the same secret reused; default: a random key per run."),
        click.option("--keylog", "keylog", type=click.Path(dir_okay=False), multiple=True, metavar="FILE",
                     help="NSS key log (SSLKEYLOGFILE) whose handshake secrets decrypt TLS 1.3 and QUIC handshakes "
                          "to read their certificates (never application data; repeatable)."),
        click.option("-q", "--quiet", is_flag=True, help=QUIET_HELP),
    ]
    for option in reversed(options):
        f = option(f)
    return f


class _SizeType(click.ParamType):
    """A byte size with an optional binary unit (768M, 2GiB, 805306368), checked against the
    memory budget's range at the option (config.parse_size, MIN/MAX_MEMORY_BUDGET)."""

    name = "size"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        from analyzer.config import MAX_MEMORY_BUDGET, MIN_MEMORY_BUDGET, parse_size
        from analyzer.errors import UsageError

        if isinstance(value, int) and not isinstance(value, bool):
            size = value
        else:
            try:
                size = parse_size(value)
            except UsageError as exc:
                self.fail(str(exc), param, ctx)
        if not MIN_MEMORY_BUDGET <= size <= MAX_MEMORY_BUDGET:
            self.fail(f"{value!r} is not within {MIN_MEMORY_BUDGET >> 20} MiB to {MAX_MEMORY_BUDGET >> 40} TiB",
                      param, ctx)
        return size


TABLE_ROWS = 1000  # = analyzer.report.terminal.TABLE_ROWS (not imported here: `intransit --help` stays light)

QUIET_HELP = ("No progress bar, and the warnings about damaged or skipped input counted in one line "
              "instead of shown (errors are always shown).")


def _quiet(quiet: bool) -> bool:
    """--quiet given to the command or to `intransit` itself."""
    ctx = click.get_current_context(silent=True)
    return quiet or bool(ctx is not None and ctx.find_root().params.get("quiet"))


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError, OSError):  # closed or replaced
        return False


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
        click.option("--partition-by", "partition_by", default=None, metavar="date,vantage",
                     callback=_partition_keys,
                     help="--engine dask, a frame command with --format parquet: --out DIR becomes a Parquet "
                          "dataset written by the workers, Hive-partitioned by these keys (date: UTC day of "
                          "the flow's start; vantage: the mirror session, see README)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _partition_keys(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    """--partition-by date,vantage -> ("date", "vantage"): each key known, once."""
    if value is None:
        return None
    from analyzer.engines.dask_output import PARTITION_KEYS

    keys = tuple(k.strip() for k in value.split(",") if k.strip())
    if not keys or len(set(keys)) != len(keys) or any(k not in PARTITION_KEYS for k in keys):
        raise click.BadParameter(f"give {', '.join(PARTITION_KEYS)} or both, comma-separated, not {value!r}")
    return keys


def _engine(engine_name: str = "serial", scheduler: str | None = None, workers: int | None = None,
            dataset: tuple[str, tuple[str, ...], str] | None = None) -> Any:
    """The engine the options name (None: analyze()'s default, the serial engine); `dataset`
    (--out DIR, --partition-by keys, the frame): the Dask workers write the frame as a dataset."""
    from analyzer.errors import UsageError

    if dataset is not None and engine_name != "dask":
        raise UsageError("--partition-by: the dataset is written by the Dask workers; add --engine dask")
    if engine_name != "dask":
        if scheduler is not None or workers is not None:
            raise UsageError("--scheduler and --workers go with --engine dask")
        return None
    if scheduler is not None and workers is not None:
        raise UsageError("--scheduler and --workers exclude each other (the scheduler's cluster has its workers)")
    try:
        import distributed  # noqa: F401

        from analyzer.engines.dask import DaskEngine
        from analyzer.engines.dask_output import Dataset
    except ImportError:
        raise UsageError("--engine dask needs Dask: pip install 'intransit[dask]'") from None

    def notice(text: str) -> None:
        click.echo(printable(f"intransit: {text}"), err=True)

    output = Dataset(dataset[0], dataset[1], frame=dataset[2]) if dataset is not None else None
    return DaskEngine(scheduler=scheduler, workers=workers, on_notice=notice, output=output)


def _run_analysis(paths: tuple[str, ...], strict: bool, payload_budget: int, no_dissect: bool, tls_trim: bool,
                  vxlan_ports: tuple[int, ...], geneve_ports: tuple[int, ...], idle_timeout: float,
                  max_flows: int, ja4x: bool, frames: tuple[str, ...] | None, sinks: dict[str, Any] | None = None,
                  memory_budget: int | None = None,
                  runner: Callable[..., Any] | None = None, credential_key_file: str | None = None,
                  quiet: bool = False, keylog: tuple[str, ...] = (), **more: Any) -> Any:
    """The analysis the command asked for, with its warnings on stderr and, when stderr is a terminal
    and --quiet is not given, a progress bar there (erased when the analysis ends). Under --quiet the
    warnings are counted in one line at the end instead: the run stays quiet, yet never hides that
    some input was damaged or skipped (the anomalies and sources frames say what)."""
    import analyzer
    from analyzer.config import DecodeOptions, FlowOptions

    flow, dec = FlowOptions(), DecodeOptions()
    quiet = _quiet(quiet)
    bar = _progress_bar() if not quiet and _stderr_is_terminal() else None
    hidden = 0
    dataset, partition_by = more.pop("dataset", None), more.pop("partition_by", None)
    if partition_by is not None and dataset is None:
        from analyzer.errors import UsageError

        raise UsageError("--partition-by goes with a frame command (flows, tls, ...) and --format parquet --out DIR")
    engine = _engine(more.pop("engine_name", "serial"), more.pop("scheduler", None), more.pop("workers", None),
                     dataset)
    if engine is not None:
        more["engine"] = engine

    def on_problem(p: Any) -> None:
        nonlocal hidden
        where = f" at byte {p.offset}" if p.offset is not None else ""
        line = printable(f"warning: {p.source}{where}: {p.detail}")
        if quiet:
            hidden += 1
        elif bar is not None:
            bar.message(line)
        else:
            click.echo(line, err=True)

    try:
        return (runner or analyzer.analyze)(
            list(paths), on_problem=on_problem, strict=strict, payload_budget=payload_budget,
            dissect=not no_dissect, tls_trim=tls_trim,
            vxlan_ports=tuple(dict.fromkeys((*dec.vxlan_ports, *vxlan_ports))),
            geneve_ports=tuple(dict.fromkeys((*dec.geneve_ports, *geneve_ports))),
            idle_timeout_tcp=idle_timeout,
            idle_timeout_udp=idle_timeout * flow.idle_timeout_udp / flow.idle_timeout_tcp,
            max_flows=max_flows, memory_budget=memory_budget, ja4x=ja4x, frames=frames, sinks=sinks,
            credential_key=_read_key(credential_key_file), keylog=list(keylog) or None, on_progress=bar, **more,
        )
    finally:
        if bar is not None:
            bar.close()
        if hidden:
            click.echo(f"intransit: {hidden} warning{'s' if hidden > 1 else ''} not shown (--quiet); the anomalies "
                       "and sources frames list them", err=True)


def _progress_bar() -> Any:
    """The progress bar on stderr (imported only when shown: its module and unicodedata are ~12M
    instructions of start-up that a run writing to a file or a pipe does not need)."""
    from analyzer.report.progress import ProgressBar

    return ProgressBar(sys.stderr)


def _read_key(path: str | None) -> bytes | None:
    """The credential key file's bytes (a trailing newline, as `head -c 32 /dev/urandom | base64 >
    key` leaves, is part of the key: the file is the key, byte for byte)."""
    if path is None:
        return None
    from analyzer.config import MAX_KEY_BYTES, MIN_KEY_BYTES

    try:
        with open(path, "rb") as f:
            key = f.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise click.UsageError(printable(f"--credential-key-file {path}: {exc.strerror or exc}")) from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        size = len(key) if len(key) <= MAX_KEY_BYTES else "more"
        raise click.UsageError(printable(f"--credential-key-file {path}: a key is {MIN_KEY_BYTES} to "
                                         f"{MAX_KEY_BYTES} bytes, this file has {size}"))
    return key


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


def _table_width(out: str | None) -> int:
    """The terminal's width when the table goes to one, else 120 columns (a file, a pipe: the same
    output wherever it is run)."""
    from analyzer.report.terminal import DEFAULT_WIDTH

    try:
        if out is None and sys.stdout.isatty():
            return max(shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns, 40)
    except (AttributeError, ValueError, OSError):
        pass
    return DEFAULT_WIDTH


def _table(frame: str, paths: tuple[str, ...], out: str | None, all_columns: bool,
           table_columns: tuple[str, ...] | None, streamable: bool, limit: int, opts: dict[str, Any]) -> None:
    """The table format: at most `limit` rows (0: all), then a line on stderr counting the others.
    A frame that can go to a sink goes to a TableSink, which keeps only those rows during the
    analysis: the memory of the table does not grow with the frame (the whole frame is never made)."""
    from analyzer.report import write_frame
    from analyzer.report.terminal import TableSink, more_rows_note

    if streamable:
        from analyzer.dissect import ALL
        from analyzer.pipeline import FRAME_ORDER

        sink = TableSink(ALL[frame], limit=limit, sort_by=FRAME_ORDER.get(frame))
        _run_analysis(paths, frames=() if frame == "anomalies" else (frame,), sinks={frame: sink}, **opts)
        df, more = sink.frame(), sink.more
    else:  # a frame merged by key (one row per certificate, ...): made whole, then cut
        df = _run_analysis(paths, frames=(frame,), **opts)[frame]
        more = max(len(df) - limit, 0) if limit else 0
        if more:
            df = df.head(limit)
    if all_columns or not table_columns:
        write_frame(df, "table", out)
    else:
        _summary_table(frame, df, table_columns, out, _quiet(opts.get("quiet", False)))
    if more:
        click.echo(more_rows_note(more), err=True)


def _summary_table(frame: str, df: Any, columns: tuple[str, ...], out: str | None, quiet: bool) -> None:
    """The default table: what is read first, fitted to the terminal (analyzer.report.terminal); a
    note on stderr (a terminal's only) names the columns left out to fit."""
    from analyzer.report.terminal import summary_table

    width = _table_width(out)
    text, dropped = summary_table(frame, df, columns, width)
    if out is None:
        sys.stdout.write(text)
    else:
        with open(out, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    if dropped and not quiet and _stderr_is_terminal():
        click.echo(f"({len(dropped)} column{'s' if len(dropped) > 1 else ''} left out to fit {width} columns: "
                   f"{', '.join(dropped)}; --all-columns shows every column)", err=True)


def _dataset(frame: str, fmt: str, out: str | None, keys: tuple[str, ...], paths: tuple[str, ...],
             opts: dict[str, Any]) -> None:
    """--partition-by: the frame as a Parquet dataset at --out DIR, written by the Dask workers."""
    from analyzer.errors import UsageError

    if fmt != "parquet" or out is None:
        raise UsageError("--partition-by writes a Parquet dataset: give --format parquet --out DIR")
    result = _run_analysis(paths, frames=() if frame == "anomalies" else (frame,), dataset=(out, keys, frame), **opts)
    if not _quiet(opts.get("quiet", False)):
        rows = result.stats.get("rows_written", {}).get(frame, 0)
        click.echo(printable(f"intransit: {rows} row{'' if rows == 1 else 's'} of {frame} written to {out} "
                             f"(partitioned by {', '.join(keys)})"), err=True)


def _frame_command(frame: str, doc: str, table_columns: tuple[str, ...] | None, streamable: bool) -> click.Command:
    """`intransit FRAME PATH...`: the frame of an analysis of the captures, as a table or a file."""

    @_capture_options
    @_engine_options
    @_errors_to_exit
    def command(paths: tuple[str, ...], fmt: str, out: str | None, all_columns: bool, limit: int,
                **opts: Any) -> None:
        keys = opts.pop("partition_by", None)
        if keys is not None:
            return _dataset(frame, fmt, out, keys, paths, opts)
        if fmt == "table":
            return _table(frame, paths, out, all_columns, table_columns, streamable or frame == "anomalies", limit,
                          opts)
        if streamable:
            return _stream(frame, fmt, out, paths, opts)
        from analyzer.report import write_frame

        result = _run_analysis(paths, frames=() if frame == "anomalies" else (frame,), **opts)
        write_frame(result[frame], fmt, out)

    params = list(reversed(getattr(command, "__click_params__", [])))  # as @click.command orders them
    return click.Command(frame.replace("_", "-"), callback=command, params=params, help=doc,
                         short_help=doc.split(":")[0].rstrip("."))


@click.group(cls=_FrameCommands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="intransit")
@click.option("-q", "--quiet", is_flag=True, help=QUIET_HELP + " Also accepted after the command.")
def main(quiet: bool) -> None:
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
    from analyzer._process import tune_process

    tune_process()  # the native libraries' memory and threads (before numpy and pyarrow load)
    _stand_in_for_closed_streams()
    _signals_end_like_interrupts()
    pace_process()
    defer_in_pyarrow()
    try:
        main(prog_name="intransit")  # click ends the process with SystemExit, success included
    except SystemExit as stop:
        if stop.code is not None and not isinstance(stop.code, int):
            raise
        _exit_without_teardown(stop.code or 0)


def _exit_without_teardown(code: int) -> None:
    """End the process once the command is done, without the interpreter's teardown: freeing every
    module and object, and full garbage collections over a heap of pyarrow, numpy, click and the
    dissectors (callgrind: ~80M instructions, 2% of a 200k-packet run, the same on 1,000 packets).
    Everything the command wrote is closed by then (outputs are committed before the command
    returns); what the teardown would still do that matters is done here: the atexit handlers, and
    flushing the standard streams. When a flush fails (a closed pipe), or threads are still running,
    the ordinary exit is taken, so such cases keep Python's own behaviour and exit status."""
    import atexit
    import threading

    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            sys.exit(code)
    os._exit(code)


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


FINDING_TABLE_COLUMNS = ("severity", "rule", "direction", "client_ip", "server_ip", "server_port", "server_name",
                         "evidence", "suppressed_by")


def _policy_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The policy's options (zones, profile, suppressions), shared by `audit` and `report`."""
    options = [
        click.option("--vpc", "vpc", multiple=True, metavar="CIDR", help="A CIDR of your VPC (repeatable): its "
                     "addresses are internal, and traffic from them to outside every internal zone is egress."),
        click.option("--zones", "zones", type=click.Path(dir_okay=False), default=None,
                     help="Zones TOML: named VPCs, peered VPCs, on-premises ranges, VNI/GWLB mappings."),
        click.option("--aws-ip-ranges", type=click.Path(dir_okay=False), default=None,
                     help="AWS's ip-ranges.json to use instead of the bundled copy (see `intransit rules`)."),
        click.option("--profile", default=None, metavar="NAME|FILE",
                     help="sec09 (default), strict, nist-800-52r2, mozilla-intermediate, pci-dss-4, or a profile "
                          "TOML."),
        click.option("--suppress", "suppressions", type=click.Path(dir_okay=False), default=None,
                     help="Suppressions TOML: rule + match + reason + expiry."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command()
@_capture_options
@_engine_options
@_policy_options
@click.option("--fail-on", type=click.Choice(["critical", "high", "medium", "low", "info", "never"]), default="high",
              show_default=True, help="Exit 1 when a finding (not suppressed) reaches this severity.")
@_errors_to_exit
def audit(paths: tuple[str, ...], fmt: str, out: str | None, all_columns: bool, limit: int, vpc: tuple[str, ...],
          zones: str | None, aws_ip_ranges: str | None, profile: str | None, suppressions: str | None,
          fail_on: str, **opts: Any) -> None:
    """Judge the captures against a policy (AWS SEC09-BP02 by default): where each flow goes and
    whether its protection is acceptable. Prints a summary and the findings.

    With --format csv, jsonl or parquet the findings are written as flows end, in bounded memory
    (in the order flows ended); the table format judges the whole analysis and sorts them (most
    severe first). Exit code 0 when no finding reaches --fail-on, 1 when one does, 2 on an input
    error: a CI gate.
    """
    from analyzer.auditor import audit as run_audit
    from analyzer.auditor import audit_stream
    from analyzer.policy.stage import tally

    policy: dict[str, Any] = {"vpc": vpc, "zones": zones, "aws_ip_ranges": aws_ip_ranges, "profile": profile,
              "suppressions": suppressions}
    zoned = bool(vpc or zones)
    if fmt != "table":
        from analyzer.policy import FINDINGS
        from analyzer.report.stream import open_output

        _refuse_overwriting_an_input(paths, out)
        with open_output(fmt, out, dict(FINDINGS)) as sink:
            streamed = _run_analysis(paths, frames=None, runner=_without_frames(audit_stream), findings_sink=sink,
                                     **policy, **opts)
        # the summary from the stage's tally and destination sums: no pandas on the streamed path
        counts, worst, profile_name = streamed.stage.tally, streamed.stage.worst_destinations(5), streamed.profile
    else:
        result = _run_analysis(paths, frames=None, runner=run_audit, **policy, **opts)
        counts, worst = tally(result.flows, result.findings), _worst_destinations(result.destinations, 5)
        profile_name = str(result.stats.get("profile"))
    for line in _audit_summary(profile_name, counts, worst, zoned, fail_on):
        click.echo(printable(line), err=fmt != "table" or out is not None)
    if fmt == "table" and len(result.findings):
        findings = result.findings  # most severe first: the first rows are the worst
        more = max(len(findings) - limit, 0) if limit else 0
        if more:
            findings = findings.head(limit)
        if all_columns:
            from analyzer.report import write_frame  # (imports pandas: the table format's results are frames)

            write_frame(findings, fmt, out)
        else:  # fitted to the terminal like the frame commands' tables (the evidence cut, never the addresses)
            _summary_table("findings", findings, FINDING_TABLE_COLUMNS, out, _quiet(bool(opts.get("quiet"))))
        if more:
            from analyzer.report.terminal import more_rows_note

            click.echo(more_rows_note(more), err=True)
    floor = SEVERITY_ORDER.index(fail_on) if fail_on != "never" else len(SEVERITY_ORDER)
    sys.exit(1 if counts.worst_active() >= floor else 0)


SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")


def _without_frames(runner: Callable[..., Any]) -> Callable[..., Any]:
    """`runner` called without the frames/sinks keywords _run_analysis passes (the streamed audit sets its own)."""
    def call(*args: Any, frames: Any = None, sinks: Any = None, **kwargs: Any) -> Any:
        return runner(*args, **kwargs)
    return call


def _worst_destinations(dest: Any, k: int) -> list[tuple[str, str, str, str]]:
    """The `k` worst rows of a destinations frame (lowest score, then name) as (destination, port,
    grade, score) texts; `analyzer.policy.evaluate.worst_destinations` gives the same from the sums."""
    worst = dest.sort_values(["score", "destination"]).head(k)
    return [(str(d), str(p), str(g), str(s)) for d, p, g, s in zip(worst["destination"], worst["server_port"],
                                                                  worst["grade"], worst["score"], strict=True)]


def _audit_summary(profile: str, counts: Any, worst: list[tuple[str, str, str, str]], zoned: bool,
                   fail_on: str) -> list[str]:
    """The audit's summary from its tally (analyzer.policy.stage.Tally) and worst destinations
    (`_worst_destinations`): verdicts, findings by severity and rule, the worst destinations, and
    what was not judged and why."""
    v = counts.verdicts
    lines = [f"audit ({profile}): {counts.flows} flows: " + ", ".join(
        f"{int(v.get(key, 0))} {label}" for key, label in
        (("ok", "ok"), ("warn", "warn"), ("fail", "fail"), ("unknown", "not judged")))]
    active = {(r, s): n for (r, s, sup), n in counts.findings.items() if not sup and n}
    suppressed = sum(n for (_, _, sup), n in counts.findings.items() if sup)
    by_severity = {s: sum(n for (_, sev), n in active.items() if sev == s) for s in SEVERITY_ORDER}
    lines.append(f"findings: {sum(active.values())} (" + ", ".join(
        f"{s} {by_severity[s]}" for s in reversed(SEVERITY_ORDER))
        + f"); suppressed {suppressed}; fail-on {fail_on}")
    for (rule, severity), n in sorted(active.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {rule} ({severity}): {n}")
    if worst:
        lines.append("worst destinations: " + "; ".join(f"{d}:{p} {g} ({s})" for d, p, g, s in worst))
    nj = counts.not_judged
    total = int(v.get("unknown", 0))
    if total:
        no_payload, unknown = int(nj.get("no payload", 0)), int(nj.get("protocol not recognised", 0))
        lines.append(f"not judged: {total} flows ({no_payload} without payload, {unknown} in a "
                     f"protocol not recognised, {total - no_payload - unknown} whose encryption "
                     "could not be decided)")
    if not zoned:
        lines.append("no --vpc or --zones given: no address is internal, so nothing is called egress")
    return lines


@main.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="The report file ('-': standard output).")
@click.option("--format", "fmt", type=click.Choice(["html", "md", "json"]), default="html", show_default=True,
              help="html: one self-contained page; md: Markdown for a pull request or CI summary; json: the numbers.")
@click.option("--baseline", type=click.Path(dir_okay=False), default=None, metavar="OLD_FINDINGS.parquet",
              help="A previous run's findings (`intransit audit --format parquet --out FILE`): mark each finding "
                   "new, unchanged or resolved.")
@functools.partial(_capture_options, frame_output=False)
@_engine_options
@_policy_options
@_errors_to_exit
def report(paths: tuple[str, ...], out: str, fmt: str, vpc: tuple[str, ...], zones: str | None,
           aws_ip_ranges: str | None, profile: str | None, suppressions: str | None, baseline: str | None,
           **opts: Any) -> None:
    """Audit the captures (as `audit` does) and write one report: the verdict, egress traffic by
    protection, findings by rule with evidence, destinations with grades, certificates, TLS
    versions and ciphers, coverage per capture, and the method. Exit 0 when written, 2 on an error.
    """
    from analyzer.auditor import audit as run_audit
    from analyzer.report import render_report
    from analyzer.report.summary import load_baseline

    if out != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(out))):  # say so before the analysis
        raise OSError(errno.ENOENT, "no such directory", out)
    old = load_baseline(baseline) if baseline else None  # a bad baseline fails before the analysis
    result = _run_analysis(paths, frames=None, runner=run_audit, vpc=vpc, zones=zones, aws_ip_ranges=aws_ip_ranges,
                           profile=profile, suppressions=suppressions, **opts)
    text = render_report(result, fmt, vpc=list(vpc), zones=zones, profile=profile, suppressions=suppressions,
                         aws_ip_ranges=aws_ip_ranges, baseline=old, baseline_name=baseline)
    _write_text(text, out)


def _write_text(text: str, out: str) -> None:
    """`text` to `out` ('-': stdout), whole or not at all: written beside it, then renamed."""
    import tempfile

    if out == "-":
        click.echo(text, nl=False)
        return
    folder = os.path.dirname(os.path.abspath(out))
    fd, staged = tempfile.mkstemp(prefix=".intransit-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(staged, out)
    except OSError as exc:  # a full disk, a directory named as --out: name the output, not the staged file
        os.unlink(staged) if os.path.exists(staged) else None
        raise OSError(exc.errno, exc.strerror, out) from None
    except BaseException:
        if os.path.exists(staged):
            os.unlink(staged)
        raise


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
def verify(paths: tuple[str, ...], fmt: str, out: str | None, all_columns: bool, limit: int, tshark_path: str | None,
           **opts: Any) -> None:
    """A second opinion: tshark (through pyshark) re-dissects every TLS/DTLS/QUIC handshake and
    each session is compared with ours (version, cipher, SNI, ALPN, certificate validity).

    Prints the disagreements session by session, then "N sessions compared, M agree (x%)"
    (on stderr for csv/jsonl/parquet). Exit code 0 when everything agrees, 1 when something
    disagrees, 2 on errors (tshark missing included).
    """
    from analyzer.errors import UsageError
    from analyzer.report import write_frame
    from analyzer.verify import preflight, verify_captures

    preflight(paths, tshark_path)  # tshark missing, stdin: say so before the analysis
    keylogs = opts.get("keylog") or ()
    if len(keylogs) > 1:  # tshark takes one key log file: merging them would write the secrets to another file
        raise UsageError("verify takes one --keylog (tshark reads one key log file)")
    result = _run_analysis(paths, frames=("flows", "tls", "certs"), **opts)
    cmp = verify_captures(list(paths), analysis=result, tshark_path=tshark_path,
                          keylog_file=keylogs[0] if keylogs else None)
    for note in cmp.notes:
        click.echo(printable(f"warning: {note}"), err=True)
    df = cmp.disagreements
    if fmt == "table" and len(df):
        df = df.fillna({"ours": "-", "tshark": "-"})
    if fmt == "table" and not all_columns:
        df = df.drop(columns=["uid"])
    more = max(len(df) - limit, 0) if fmt == "table" and limit else 0
    if fmt != "table" or len(df):
        write_frame(df.head(limit) if more else df, fmt, out)
    if more:
        from analyzer.report.terminal import more_rows_note

        click.echo(more_rows_note(more), err=True)
    line = cmp.summary_line()
    click.echo(line, err=fmt != "table" or out is not None)
    sys.exit(1 if len(cmp.disagreements) else 0)


@main.command()
@click.option("--bind", default="0.0.0.0", show_default=True, help="Local address to receive on (:: for both).")
@click.option("--port", "ports", type=click.IntRange(0, 65535), multiple=True, default=(4789,), show_default=True,
              help="UDP port of the VXLAN stream (repeatable; 0: any free port, said on stderr).")
@click.option("--geneve-port", "geneve_ports", type=click.IntRange(0, 65535), multiple=True, default=(6081,),
              show_default=True, help="UDP port of the GENEVE stream (Gateway Load Balancer; repeatable).")
@click.option("--no-geneve", is_flag=True, help="Do not open a GENEVE port.")
@click.option("--allow", multiple=True, metavar="CIDR",
              help="Accept datagrams only from these mirror sources (repeatable); others are dropped and counted.")
@click.option("--vpc", "vpc", multiple=True, metavar="CIDR", help="A CIDR of your VPC (repeatable), as for audit.")
@click.option("--zones", type=click.Path(dir_okay=False), default=None, help="Zones TOML, as for audit.")
@click.option("--aws-ip-ranges", type=click.Path(dir_okay=False), default=None, help="As for audit.")
@click.option("--profile", default=None, metavar="NAME|FILE", help="Policy profile, as for audit (default sec09).")
@click.option("--suppress", "suppressions", type=click.Path(dir_okay=False), default=None, help="As for audit.")
@click.option("--window", default="60s", show_default=True, help="Length of a window (60s, 5m, 1h).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory of the windows' files (flows, tls, certs, credentials, anomalies, findings, stats).")
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl"]), default="parquet", show_default=True)
@click.option("--pcap-out", type=click.Path(file_okay=False), default=None,
              help="Also write the received datagrams as pcap files here (read back with `intransit flows`).")
@click.option("--rotate", default="100M", show_default=True, help="Size of each --pcap-out file.")
@click.option("--rcvbuf", default="32M", show_default=True,
              help="Socket receive buffer to ask for (the size granted is said on stderr and in the stats).")
@click.option("--queue", "queue_size", default="256M", show_default=True,
              help="Batches received but not yet analysed, at most (the receive thread's buffers, used only "
                   "while the analysis is behind); beyond, the socket buffer (--rcvbuf) holds what arrives.")
@click.option("--dedup-window", default="50ms", show_default=True,
              help="A packet seen again from another mirror source within this time is a duplicate (0 disables).")
@click.option("--max-flows", type=click.IntRange(16, 1 << 24), default=1 << 18, show_default=True,
              help="Live flows kept at most; beyond, the least recently active end early.")
@click.option("--payload-budget", type=click.IntRange(0, 64 << 20), default=65536, show_default=True,
              help="Bytes of payload kept per flow and direction for the dissectors.")
@click.option("--no-dissect", is_flag=True, help="Only count flows.")
@click.option("--memory-budget", type=_SizeType(), default=None, metavar="SIZE",
              help="Memory the analysis may hold, as for flows/audit (default 768M): flow records, payload pages, "
                   "flows waiting for dissection, certificates. A mirror of many short flows fills the payload "
                   "pages first (a DNS flow holds two pages for its idle timeout): the payload budget is then "
                   "lowered and flows end early (anomalies rows).")
@click.option("--no-shed", is_flag=True,
              help="Dissect every flow even when the analysis is behind (the socket overflows instead: kernel drops). "
                   "By default, ended flows that can wait no longer while an eighth of the receive queue is in use (or "
                   "after 0.1 s of such work in one batch's turn) are counted and judged without their dissection "
                   "(undecided_reason \"shed\").")
@click.option("--idle-timeout", type=click.FloatRange(0, 365 * 86400.0, min_open=True), default=300.0,
              show_default=True, help="Seconds of TCP inactivity that end a flow (UDP: scaled by 60/300).")
@_errors_to_exit
def listen(bind: str, ports: tuple[int, ...], geneve_ports: tuple[int, ...], no_geneve: bool, allow: tuple[str, ...],
           vpc: tuple[str, ...], zones: str | None, aws_ip_ranges: str | None, profile: str | None,
           suppressions: str | None, window: str, out_dir: str, fmt: str, pcap_out: str | None, rotate: str,
           rcvbuf: str, queue_size: str, dedup_window: str, max_flows: int, payload_budget: int, no_dissect: bool,
           memory_budget: int | None, no_shed: bool, idle_timeout: float) -> None:
    """Be a VPC Traffic Mirroring target: receive the VXLAN (UDP 4789) / GENEVE (UDP 6081) stream,
    analyse and judge it continuously, and write each window's files to --out.

    A flow is written in the window it ends in; each file appears complete (temporary name, then
    rename), stats-*.jsonl last. SIGTERM/SIGINT: stop receiving, drain the socket, end every open
    flow, write the last window, exit 0.
    """
    from analyzer.engines.live import live_main

    sys.exit(live_main(bind=bind, ports=ports, geneve_ports=() if no_geneve else geneve_ports, allow=allow,
                       vpc=vpc, zones=zones, aws_ip_ranges=aws_ip_ranges, profile=profile,
                       suppressions=suppressions, window=window, out_dir=out_dir, fmt=fmt, pcap_out=pcap_out,
                       rotate=rotate, rcvbuf=rcvbuf, queue_size=queue_size, dedup_window=dedup_window,
                       max_flows=max_flows,
                       payload_budget=payload_budget, no_dissect=no_dissect, idle_timeout=idle_timeout,
                       say=lambda line: click.echo(printable(line), err=True), shed=not no_shed,
                       memory_budget=memory_budget))


@main.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--to", "target", required=True, metavar="HOST:PORT", help="Where to send the VXLAN stream.")
@click.option("--vni", type=click.IntRange(0, (1 << 24) - 1), default=1, show_default=True, help="The VXLAN VNI.")
@click.option("--rate", type=click.FloatRange(0, min_open=True), default=None, help="Packets per second.")
@click.option("--speed", type=click.FloatRange(0, min_open=True), default=None,
              help="A multiple of the capture's own pace (1: as captured). Neither: as fast as possible.")
@_errors_to_exit
def replay(capture: str, target: str, vni: int, rate: float | None, speed: float | None) -> None:
    """Send a capture as a Traffic Mirroring stream: one VXLAN datagram per packet, in order, paced."""
    from analyzer.sources.replay import parse_target
    from analyzer.sources.replay import replay as send

    host, port = parse_target(target)
    stats = send(capture, host, port, vni=vni, rate=rate, speed=speed)
    click.echo(printable(f"replay: {stats.line()}"), err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
