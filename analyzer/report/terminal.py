"""The default terminal table: what an auditor reads first, in the width of a terminal.

`intransit flows` (and every frame command) prints a summary table unless `--all-columns` is given:
for flows, one line per flow with who (client_ip), to where (server address and port, server name),
protocol, protection, version and verdict - the columns of those that the frame has (`protection`
comes from the dissectors, `verdict` only from an audit) - and its start time. The table is made
to fit a width (120 columns unless the terminal says otherwise):

1. columns are separated by two spaces, strings left-aligned, numbers right-aligned;
2. when too wide, columns are left out, the least important first (the declared order's end; for
   flows the time first), until the rest would fit with every cut-able column at 12 cells;
3. then the widest cut-able columns are shortened together, a cell at a time, until the table fits:
   a server name keeps its end (`…mail.example.com`: the registered domain is at the end), anything
   else its start (`TLS_ECDHE_RSA_WITH…`, `2d7ad69169…`), the cut marked with `…`. Addresses and
   times are never cut: a shortened address would be another address.

Cells are made safe as in every table (analyzer.report.export): wire strings through
`text.printable`, a missing value is `-`, a string that is `-` itself is `\\x2d`. Times are UTC,
written with their zone as RFC 3339 does (`2026-11-29T01:56:37Z`): one token, unambiguous.

A table holds at most `TABLE_ROWS` rows (the CLI's --limit): a terminal table of 600k flows is read
by nobody, and building it took about 7 KB per flow (the whole frame, its view, every cell as text).
`TableSink` takes a frame chunk by chunk during the analysis (analyzer.pipeline.FrameSink) and keeps
only the first rows in the frame's order - for .flows, whose chunks come in the order flows ended,
the first by (ts_start, uid), selected as they come - and counts the others; the table is made of
those rows, the same bytes as the whole frame's table whenever the frame has no more rows than that.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence

import pyarrow as pa

from analyzer._pandas import pd
from analyzer.report.export import MISSING, _escape_terminal, utc_text

__all__ = ["DEFAULT_WIDTH", "TABLE_ROWS", "TableSink", "fit", "flows_view", "more_rows_note", "render",
           "summary_table", "utc_text"]

DEFAULT_WIDTH = 120
TABLE_ROWS = 1000  # rows a table shows at most by default (--limit); the others are counted
MIN_CUT = 12  # cells a cut column keeps at least
GAP = "  "

# Columns cut at their start (their end says the most): names; and never cut: addresses and times.
_KEEP_END = ("server_name", "host", "subject_cn", "sni", "source")
_NEVER_CUT = ("_ip", "ts", "ts_start", "ts_end", "server", "client", "not_before", "not_after")


def _server(flows: pd.DataFrame) -> pd.Series:
    """server_ip:server_port, an IPv6 address in brackets (RFC 3986); the address alone without a port."""
    ip = flows["server_ip"].astype("string")
    port = flows["server_port"].astype("Int64").astype("string")
    host = ip.where(~ip.str.contains(":", na=False, regex=False), "[" + ip + "]")
    return (host + ":" + port).fillna(ip).astype(object)


def flows_view(flows: pd.DataFrame) -> pd.DataFrame:
    """The flows as an auditor reads them first: ts_start (to the second), client_ip, server
    (address:port), server_name (the TLS SNI, else the HTTP Host), protocol (the application protocol,
    else the transport when none was recognised), protection (else encrypted, on frames made before
    that column), tls_version (TLS, DTLS and QUIC), and verdict when the flows were audited."""
    view: dict[str, pd.Series] = {}
    if "ts_start" in flows:
        view["ts_start"] = utc_text(flows["ts_start"], seconds=True)
    if "client_ip" in flows:
        view["client_ip"] = flows["client_ip"]
    if "server_ip" in flows and "server_port" in flows:
        view["server"] = _server(flows)
    names = [flows[c].astype("string") for c in ("tls_server_name", "http_host") if c in flows]
    if names:
        name = names[0]
        for more in names[1:]:
            name = name.fillna(more)
        view["server_name"] = name
    protocol = [flows[c].astype("string") for c in ("app_protocol", "transport") if c in flows]
    if protocol:
        view["protocol"] = protocol[0].fillna(protocol[-1])
    for column in ("protection" if "protection" in flows else "encrypted", "tls_version", "verdict"):
        if column in flows:
            view[column] = flows[column]
    return pd.DataFrame(view, index=flows.index)


def _cell(value: object) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, float):
        return MISSING if value != value else format(value, ".6g")
    return str(_escape_terminal(value))


def _cells(df: pd.DataFrame) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in df.columns:
        col = df[name]
        if isinstance(col.dtype, pd.DatetimeTZDtype) or col.dtype.kind == "M":
            col = utc_text(col)
        out[str(name)] = [_cell(v) for v in col.tolist()]
    return out


def _numeric(col: pd.Series) -> bool:
    return col.dtype.kind in "iuf" or str(col.dtype) in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16",
                                                         "UInt32", "UInt64", "Float32", "Float64")


def cell_width(text: str) -> int:
    """Terminal cells of `text`: wide East Asian characters take two, combining marks none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cut(text: str, cells: int, keep_end: bool) -> str:
    if cell_width(text) <= cells:
        return text
    kept: list[str] = []
    used = 1  # the ellipsis
    for c in (reversed(text) if keep_end else text):
        w = cell_width(c)
        if used + w > cells:
            break
        kept.append(c)
        used += w
    return "…" + "".join(reversed(kept)) if keep_end else "".join(kept) + "…"


def _cuttable(name: str) -> bool:
    return not (name in _NEVER_CUT or name.endswith("_ip"))


def _keeps_end(name: str) -> bool:
    return any(k in name for k in _KEEP_END)


def fit(df: pd.DataFrame, width: int = DEFAULT_WIDTH, *, drop_first: Sequence[str] = ()) -> tuple[
        dict[str, list[str]], list[str]]:
    """The cells of `df` (made safe) fitted to `width` terminal cells (see the module docstring), and
    the columns left out. `drop_first`: columns to leave out before any other."""
    cells = _cells(df)
    widths = {n: max([cell_width(n), *(cell_width(c) for c in cs)]) for n, cs in cells.items()}
    floors = {n: min(widths[n], max(MIN_CUT, cell_width(n))) if _cuttable(n) else widths[n] for n in widths}

    def total(ws: dict[str, int]) -> int:
        return sum(ws.values()) + len(GAP) * max(len(ws) - 1, 0)

    # first leave out what cannot fit even with every cut-able column at its floor...
    dropped: list[str] = []
    order = [*(n for n in drop_first if n in widths), *reversed([n for n in widths if n not in drop_first])]
    while total(floors) > width and len(floors) > 1:
        gone = order.pop(0)
        dropped.append(gone)
        for d in (widths, floors, cells):
            del d[gone]
    # ...then cut the widest columns down together, a cell at a time (the narrower ones stay whole)
    excess = total(widths) - width
    while excess > 0:
        over = [n for n in widths if widths[n] > floors[n]]
        if not over:
            break
        top = max(widths[n] for n in over)
        for n in over:
            if widths[n] == top and excess > 0:
                widths[n] -= 1
                excess -= 1
    for n in cells:
        if any(cell_width(c) > widths[n] for c in cells[n]):
            cells[n] = [_cut(c, widths[n], _keeps_end(n)) for c in cells[n]]
    return cells, dropped


def render(df: pd.DataFrame, width: int = DEFAULT_WIDTH, *, drop_first: Sequence[str] = ()) -> tuple[str, list[str]]:
    """`df` as a table at most `width` cells wide (fit), one line per row after a header line; and
    the columns left out to fit."""
    if not len(df):
        return "(no rows)\n", []
    cells, dropped = fit(df, width, drop_first=drop_first)
    right = {n for n in cells if _numeric(df[n])}
    widths = {n: max([cell_width(n), *(cell_width(c) for c in cs)]) for n, cs in cells.items()}

    def pad(text: str, name: str) -> str:
        room = " " * (widths[name] - cell_width(text))
        return room + text if name in right else text + room

    names = list(cells)
    lines = [GAP.join(pad(n, n) for n in names).rstrip()]
    for i in range(len(df)):
        lines.append(GAP.join(pad(cells[n][i], n) for n in names).rstrip())
    return "\n".join(lines) + "\n", dropped


def summary_table(frame: str, df: pd.DataFrame, columns: Sequence[str] | None = None,
                  width: int = DEFAULT_WIDTH) -> tuple[str, list[str]]:
    """The default table of a frame command and the columns left out to fit: the flows view for
    `flows`, else the declared `columns` (FrameSpec.table_columns; None: all), fitted to `width`."""
    if frame == "flows":
        return render(flows_view(df), width, drop_first=("ts_start",))
    if columns:
        df = df[[c for c in columns if c in df.columns]]
    return render(df, width)


class TableSink:
    """A FrameSink that keeps the first `limit` rows of a frame (0: every row) and counts them all.

    With `sort_by` the rows kept are the first in that order (stable: equal keys keep the order they
    came in, as the frame's own sort does): the chunks are gathered until they hold twice `limit`
    rows, then sorted and cut back to `limit`. Memory: about 2 x `limit` rows plus one chunk,
    whatever the frame's length. Without `sort_by`, the first rows in the order they come (the
    frame's order for every frame but .flows)."""

    def __init__(self, frame_schema: Mapping[str, str], *, limit: int = TABLE_ROWS,
                 sort_by: Sequence[str] | None = None) -> None:
        from analyzer.schema import arrow_schema

        self.schema = dict(frame_schema)
        self.arrow_schema = arrow_schema(self.schema)
        self.limit, self.by = limit, tuple(sort_by or ())
        self.rows = 0  # every row written
        self._kept: list[pa.Table] = []
        self._kept_rows = 0

    def write(self, chunk: pd.DataFrame) -> None:
        self.write_table(pa.Table.from_pandas(chunk, schema=self.arrow_schema, preserve_index=False))

    def write_table(self, table: pa.Table) -> None:
        n = table.num_rows
        self.rows += n
        if self.limit and not self.by:
            n = min(n, self.limit - self._kept_rows)
            table = table.slice(0, n)
        if n <= 0:
            return
        self._kept.append(table)
        self._kept_rows += n
        if self.limit and self.by and self._kept_rows >= 2 * self.limit:
            self._cut()

    def _cut(self) -> None:
        """Keep the first `limit` rows (in `by` order when given) of those gathered."""
        from analyzer.report.stream import _sorted

        if not self._kept:
            return
        table = pa.concat_tables(self._kept)
        if self.by:
            table = _sorted(table, self.by)
        if self.limit:
            table = table.slice(0, self.limit)
        self._kept, self._kept_rows = [table], table.num_rows

    @property
    def more(self) -> int:
        """Rows written but not kept."""
        return self.rows - min(self._kept_rows, self.limit or self._kept_rows)

    def frame(self) -> pd.DataFrame:
        """The rows kept, as a frame of the declared schema (the frame's dtypes), in the frame's order."""
        from analyzer.schema import empty_frame, frame_from_arrow

        self._cut()
        if not self._kept:
            return empty_frame(self.schema)
        return frame_from_arrow(self._kept[0], self.schema)

    def close(self) -> None:
        """Nothing to release (the rows kept are read with frame())."""


def more_rows_note(more: int) -> str:
    """The line said (on stderr) under a table that left rows out."""
    return (f"… and {more} more row{'s' if more != 1 else ''} (use --format csv|jsonl|parquet --out FILE "
            "for all of them, or --limit)")
