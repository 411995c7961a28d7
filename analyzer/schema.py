"""Declared schemas of every frame the package returns (column name -> pandas dtype), in one place.

Empty input gives an empty frame with the schema, never None. Columns are converted once, to Arrow
arrays of the dtype's Arrow type (`arrow_columns`): the pipeline collects and streams Arrow tables,
and a pandas frame is made of them only when one is asked for (`frame_from_arrow`), so the CLI's
streaming output never imports pandas (see analyzer._pandas). Column names follow one scheme:
Elastic Common Schema words where one exists, flattened with underscores. The `.flows` names
listed in FLOWS_CONTRACT are relied on by later work and by external checks: never rename them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

Schema = Mapping[str, str]

TS = "datetime64[ns, UTC]"

# The engine's flow columns. The `.flows` frame is these, then the columns the registered dissectors
# declare (analyzer.dissect.flow_schema: TLS's tls_*, ja3/ja4, cert_*; SSH's ssh_*; ...).
FLOWS_BASE: dict[str, str] = {
    "uid": "string",
    "community_id": "string",
    "ts_start": TS,
    "ts_end": TS,
    "duration": "float64",
    "transport": "string",  # tcp, udp, icmp, icmp6, esp, gre, ... or ip-<n>
    "ip_version": "Int8",
    "client_ip": "string",
    "client_port": "Int32",
    "server_ip": "string",
    "server_port": "Int32",
    "client_by": "string",  # how the client was decided: syn, synack, port, icmp, first_packet, or
    # continued: the part of a conversation after an active-timeout split keeps the earlier part's client
    "packets_to_server": "Int64",
    "packets_to_client": "Int64",
    "ip_bytes_to_server": "Int64",
    "ip_bytes_to_client": "Int64",
    "payload_bytes_to_server": "Int64",
    "payload_bytes_to_client": "Int64",
    "tcp_flags_to_server": "string",  # letters of flags seen: S A F R P U E C
    "tcp_flags_to_client": "string",
    "conn_state": "string",  # Zeek conn_state letters (S0, S1, SF, REJ, RSTO, RSTR, OTH, ...)
    "retransmitted_bytes": "Int64",
    "missing_bytes": "Int64",  # holes in the reassembled prefixes (Zeek's missed_bytes, prefix only)
    "truncated": "boolean",  # some packet was cut by snaplen / mirror PacketLength, or a TLS handshake message
    "vni": "Int64",  # VXLAN/GENEVE VNI of the innermost tunnel carrying the flow
    "tunnel": "string",  # tunnel kinds crossed, e.g. "geneve/vxlan" (a set in fixed order, not nesting order)
    "outer_src_ip": "string",
    "outer_dst_ip": "string",
    "gwlb_endpoint_id": "string",  # AWS GWLB GENEVE TLVs (class 0x0108 types 1, 2, 3)
    "gwlb_attachment_id": "string",
    "gwlb_flow_cookie": "string",
    "vlan": "Int32",
    "source": "string",  # capture file the flow was first seen in
    # --- the encryption state (analyzer.dissect.vocabulary): every dissector sets app_protocol,
    # encrypted and protection for the flows it claims; the engine says why `encrypted` is null ---
    "app_protocol": "string",  # one lower-case name of analyzer.dissect.vocabulary.APP_PROTOCOLS
    "encrypted": "boolean",  # null only when nothing could be decided: see undecided_reason
    "protection": "string",  # the mechanism: tls, dtls, quic, ssh, starttls, ..., none (vocabulary.PROTECTIONS)
    "undecided_reason": "string",  # why `encrypted` is null (vocabulary.UNDECIDED_REASONS)
    "payload_shape": "string",  # unrecognised payload only: printable or binary (never guessed from the port)
    # what the capture saw of the flow: both, client_only, server_only (one direction only: a
    # one-sided mirror filter), mid_stream (both directions, but not the TCP start)
    "visibility": "string",
}

FLOWS_CONTRACT: tuple[str, ...] = (
    "uid", "community_id", "ts_start", "ts_end", "transport", "client_ip", "client_port",
    "server_ip", "server_port", "packets_to_server", "packets_to_client", "ip_bytes_to_server",
    "ip_bytes_to_client", "payload_bytes_to_server", "payload_bytes_to_client", "vni",
    "outer_src_ip", "outer_dst_ip", "truncated",
    "app_protocol", "encrypted", "protection", "undecided_reason", "tls_version", "tls_client_max_version",
    "tls_cipher", "tls_server_name", "tls_alpn", "ja3", "ja3s", "ja4", "ja4s", "tls_established",
    "cert_sha256", "cert_not_after", "cert_key_bits", "cert_self_signed",
)  # fmt: skip

ANOMALIES: dict[str, str] = {
    "source": "string",
    "uid": "string",
    "ts": TS,
    "layer": "string",  # source, decode, flow, dissect
    "kind": "string",
    "detail": "string",
    "offset": "Int64",
    "count": "Int64",
}

# The flow table's anomaly kinds (layer "flow"): live flows ended or payload cut to stay within a bound.
FLOW_ANOMALY_KINDS: dict[str, str] = {
    "flows_evicted": "the least recently active flows ended early: more live flows than max_flows, or than "
                     "the memory budget's share for flow records allows",
    "payload_budget_lowered": "the payload pages reached the memory budget's share: the payload budget of "
                              "every flow was halved (down to two pages) and live prefixes cut to it",
    "flows_ended_memory": "the payload pages reached the memory budget's share at the lowest payload "
                          "budget: the flows holding the most payload ended early",
}

# One row per capture read (made by the engine).
SOURCES: dict[str, str] = {
    "source": "string", "packets": "Int64", "status": "string", "problem": "string", "offset": "Int64",
}  # fmt: skip


# The Arrow type of each declared dtype, and the pandas metadata (pandas_type, numpy_type, metadata)
# pyarrow writes for a column of that dtype: a file written from Arrow tables reads back into the
# declared dtypes, exactly as if written from the frame (tests compare with pa.Schema.from_pandas).
_ARROW: dict[str, tuple[Callable[[], pa.DataType], str, str, dict[str, str] | None]] = {
    "string": (pa.large_string, "object", "string", None),
    "Int8": (pa.int8, "int8", "Int8", None),
    "Int16": (pa.int16, "int16", "Int16", None),
    "Int32": (pa.int32, "int32", "Int32", None),
    "Int64": (pa.int64, "int64", "Int64", None),
    "boolean": (pa.bool_, "bool", "boolean", None),
    "float64": (pa.float64, "float64", "float64", None),
    "Float64": (pa.float64, "float64", "Float64", None),
    TS: (lambda: pa.timestamp("ns", tz="UTC"), "datetimetz", "datetime64[ns]", {"timezone": "UTC"}),
}
_PYTHON_TYPE = {"boolean": bool, "Int8": int, "Int16": int, "Int32": int, "Int64": int}
# the value types a column of that Python type may hold: exactly it, or None (missing)
_NONE_OR: dict[type, frozenset[type]] = {t: frozenset((t, type(None))) for t in (bool, int, float)}
_NAT = np.iinfo(np.int64).min  # pandas' NaT as int64 nanoseconds
_SECONDS_RANGE = 9.2e9  # epoch seconds beyond this are out of datetime64[ns] range: NaT, not an error
_ARROW_SCHEMAS: dict[tuple[tuple[str, str], ...], pa.Schema] = {}


def arrow_type(dtype: str) -> pa.DataType:
    """The Arrow type a column of a declared pandas dtype is collected and written as (one instance
    per dtype: Arrow types are immutable, and the registry's checks and every chunk's conversion
    ask for them per column, ~16k times at start-up)."""
    made = _ARROW_TYPES.get(dtype)
    if made is None:
        entry = _ARROW.get(dtype)
        if entry is None:
            raise KeyError(f"dtype {dtype!r} has no Arrow type; declared dtypes: {', '.join(_ARROW)}")
        made = _ARROW_TYPES[dtype] = entry[0]()
    return made


_ARROW_TYPES: dict[str, pa.DataType] = {}


def arrow_schema(schema: Schema) -> pa.Schema:
    """The Arrow schema of a declared schema, with the "pandas" metadata that restores its dtypes
    when a file written from it is read into pandas (made without importing pandas)."""
    key = tuple(schema.items())
    cached = _ARROW_SCHEMAS.get(key)
    if cached is None:
        columns = []
        for name, dtype in schema.items():
            _, pandas_type, numpy_type, meta = _ARROW[dtype]
            columns.append({"name": name, "field_name": name, "pandas_type": pandas_type,
                            "numpy_type": numpy_type, "metadata": meta})
        pandas_meta = {"index_columns": [], "column_indexes": [], "columns": columns, "attributes": {},
                       "creator": {"library": "pyarrow", "version": pa.__version__},
                       "pandas_version": _pandas_version()}
        fields = [pa.field(name, arrow_type(dtype)) for name, dtype in schema.items()]
        cached = _ARROW_SCHEMAS[key] = pa.schema(fields, metadata={b"pandas": json.dumps(pandas_meta).encode()})
    return cached


def _pandas_version() -> str:
    """pandas' version without importing pandas, nor importlib.metadata (~10 ms of start-up): from the
    name of its installed dist-info directory, else from the metadata (tests compare with pandas')."""
    import importlib.util
    import os

    loaded = sys.modules.get("pandas")
    if loaded is not None:
        return str(loaded.__version__)
    spec = importlib.util.find_spec("pandas")
    site = os.path.dirname(os.path.dirname(spec.origin)) if spec and spec.origin else None
    found = [n for n in (os.listdir(site) if site else []) if n.startswith("pandas-") and n.endswith(".dist-info")]
    if len(found) == 1:
        return found[0][len("pandas-"):-len(".dist-info")]
    from importlib.metadata import version

    pandas_version = version("pandas")
    return str(pandas_version)


_EMPTY: dict[tuple[tuple[str, str], ...], pd.DataFrame] = {}


def empty_frame(schema: Schema) -> pd.DataFrame:
    """An empty frame with the declared columns and dtypes (a copy of one made once per schema:
    a run makes several, and a Series per column cost ~30 ms per frame; pd.array costs a third)."""
    from analyzer._pandas import pd

    key = tuple(schema.items())
    template = _EMPTY.get(key)
    if template is None:
        columns = {name: pd.array([], dtype=cast(Any, dtype)) for name, dtype in schema.items()}
        template = _EMPTY[key] = pd.DataFrame(columns)
    return template.copy()


def conform(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Give `df` exactly the schema's columns (missing ones filled with NA) in order and dtypes."""
    from analyzer._pandas import pd

    out = {}
    for name, dtype in schema.items():
        if name in df.columns:
            col = df[name]
            if dtype == TS and not isinstance(col.dtype, pd.DatetimeTZDtype):
                col = _to_timestamp(col)
            out[name] = col.astype(cast(Any, dtype)) if str(col.dtype) != dtype else col
        else:
            out[name] = pd.Series(index=df.index, dtype=dtype)  # all missing, in the column's own NA
    return pd.DataFrame(out, index=df.index)


def _to_timestamp(col: pd.Series) -> pd.Series:
    """Integers are epoch nanoseconds, floats epoch seconds (NaN/None -> NaT; out of range -> NaT)."""
    from analyzer._pandas import pd

    if col.dtype.kind in "iu":
        return pd.to_datetime(col, unit="ns", utc=True)
    if col.dtype == object:
        col = pd.to_numeric(col, errors="coerce")
    if col.dtype.kind == "f":
        # out-of-range dates (certificates valid until 9999) become NaT rather than an error
        ok = col.between(-_SECONDS_RANGE, _SECONDS_RANGE)
        return pd.to_datetime(col.where(ok), unit="s", utc=True, errors="coerce")
    return pd.to_datetime(col, utc=True, errors="coerce")


def _columns_of_rows(rows: list[Mapping[str, object]], schema: Schema) -> dict[str, list[object]]:
    first = tuple(rows[0])
    if all(tuple(r) == first for r in rows):
        # the usual case (one dissector's rows, same keys in the same order): transpose in C
        columns = dict(zip(first, (list(c) for c in zip(*(r.values() for r in rows), strict=True)), strict=True))
    else:
        keys: dict[str, None] = {}
        for r in rows:
            keys.update(dict.fromkeys(r))
        columns = {k: [r.get(k) for r in rows] for k in keys}
    unknown = set(columns) - set(schema)
    if unknown:
        raise KeyError(f"columns not declared in the schema: {sorted(unknown)}")
    return columns


def arrow_from_rows(rows: Iterable[Mapping[str, object]], schema: Schema) -> dict[str, pa.Array]:
    """The schema's columns, as Arrow arrays, of dict rows (unknown keys are an error: declare them)."""
    rows = list(rows)
    if not rows:
        return arrow_columns({}, schema, 0)
    return arrow_columns(_columns_of_rows(rows, schema), schema, len(rows))


def frame_from_rows(rows: Iterable[Mapping[str, object]], schema: Schema) -> pd.DataFrame:
    """Build a schema-conformant frame from dict rows (unknown keys are an error: declare them)."""
    rows = list(rows)
    if not rows:
        return empty_frame(schema)
    return frame_from_columns(_columns_of_rows(rows, schema), schema, len(rows))


def frame_from_columns(columns: Mapping[str, Any], schema: Schema, length: int) -> pd.DataFrame:
    """A schema-conformant frame from columns (numpy arrays or lists; None is missing), each converted
    once, straight to its declared dtype: no per-column type inference, no second conversion.
    Columns the schema lacks are an error; columns absent from `columns` are all missing."""
    return frame_from_arrow(arrow_columns(columns, schema, length), schema)


def typed_columns(columns: Mapping[str, Any], schema: Schema, length: int) -> dict[str, Any]:
    """The pandas arrays `frame_from_columns` makes a frame of: every schema column, in its dtype."""
    return {name: pandas_array(arr, schema[name]) for name, arr in arrow_columns(columns, schema, length).items()}


def arrow_columns(columns: Mapping[str, Any], schema: Schema, length: int) -> dict[str, pa.Array]:
    """Every schema column as an Arrow array of its dtype's Arrow type (`arrow_type`), from numpy
    arrays or lists (None is missing); columns absent from `columns` are all missing, columns the
    schema lacks are an error. The values are those pandas would make of them in the dtype:
    conversions Arrow does exactly are done in Arrow, the others by pandas' own rules."""
    unknown = set(columns) - set(schema)
    if unknown:
        raise KeyError(f"columns not declared in the schema: {sorted(unknown)}")
    out: dict[str, pa.Array] = {}
    nulls: dict[str, pa.Array] = {}  # one all-missing array per dtype, shared (Arrow arrays are immutable)
    for name, dtype in schema.items():
        values = columns.get(name)
        if values is None:
            missing = nulls.get(dtype)
            if missing is None:
                missing = nulls[dtype] = pa.nulls(length, arrow_type(dtype))
            out[name] = missing
        else:
            out[name] = arrow_column(values, dtype)
    return out


def arrow_column(values: Any, dtype: str) -> pa.Array:
    """One column (a numpy array or a list; None is missing) in the Arrow type of a declared dtype,
    with the values pandas would make of it in that dtype. An Arrow array is taken as it is (cast
    to the dtype's Arrow type)."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
        atype = arrow_type(dtype)
        return values if values.type == atype else values.cast(atype)
    exact = _exact_arrow(values, dtype)
    if exact is not None:
        return exact
    return _arrow_of_pandas(_pandas_column(values, dtype), dtype)


def _exact_arrow(values: Any, dtype: str) -> pa.Array | None:
    """Conversions where Arrow gives exactly what pandas would (None: leave it to pandas)."""
    atype = arrow_type(dtype)
    if isinstance(values, np.ndarray) and values.dtype != object:
        kind = values.dtype.kind
        if dtype == TS:
            if kind == "i":  # epoch nanoseconds
                ns = values.astype(np.int64, copy=False)
                return pa.array(ns, pa.int64(), mask=ns == _NAT).view(atype)
            return _seconds_to_timestamps(values) if kind == "f" else None
        if dtype == "float64" and kind in "fiu":
            return pa.array(values.astype(np.float64, copy=False), atype, from_pandas=True)
        if dtype == "boolean" and kind == "b":
            return pa.array(values, atype)
        if dtype[0] == "I":
            if kind == "f":  # NaN marks a missing integer
                missing = np.isnan(values)
                whole = values[~missing]
                if not np.array_equal(whole, np.trunc(whole)) or (len(whole) and np.abs(whole).max() >= 2**53):
                    return None
                values, mask = np.where(missing, 0, values).astype(np.int64), missing
            elif kind in "iu":
                mask = None
            else:
                return None
            try:
                return pa.array(values, atype, mask=mask)  # a value out of the type's range raises
            except (pa.ArrowException, OverflowError):
                return None
        return None
    if dtype == TS:
        values = list(values) if isinstance(values, np.ndarray) else values
        if set(map(type, values)) <= _NONE_OR[float]:  # epoch seconds (pandas: numeric -> float)
            return _seconds_to_timestamps(np.array([np.nan if v is None else v for v in values], np.float64))
        return None
    if dtype == "float64":
        return pa.array(np.asarray(values, dtype=float), atype, from_pandas=True)
    if dtype not in ("string", "boolean", "Int8", "Int16", "Int32", "Int64"):
        return None
    # str/int/bool and None straight through Arrow's C++ converter (3-5x faster than pandas'
    # per-element checks); a value that does not fit the type exactly goes to pandas, which converts
    # with its own rules (e.g. str() of a non-string)
    seq = list(values) if isinstance(values, np.ndarray) else values
    # the types of the values, gathered in C (a generator testing each value cost 10x more)
    if dtype != "string" and not set(map(type, seq)) <= _NONE_OR[_PYTHON_TYPE[dtype]]:
        return None  # Arrow would take 1.5 as the integer 1, or 1 as True: pandas decides (or refuses)
    try:
        return pa.array(seq, atype)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None


def _seconds_to_timestamps(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds as timestamps; NaN and out-of-range values NaT (certificates valid until 9999).
    Fractions are rounded as pandas' to_datetime(unit="s") does: whole part truncated, fraction
    rounded to 9 digits, then scaled (equal on millions of values; tests compare the two)."""
    seconds = seconds.astype(np.float64, copy=False)
    ok = (seconds >= -_SECONDS_RANGE) & (seconds <= _SECONDS_RANGE)  # NaN compares False
    values = np.where(ok, seconds, 0.0)
    whole = values.astype(np.int64)
    fraction = np.round(values - whole, 9)
    ns = whole * 1_000_000_000 + (fraction * 1_000_000_000).astype(np.int64)
    return pa.array(ns, pa.int64(), mask=~ok).view(arrow_type(TS))


def _pandas_column(values: Any, dtype: str) -> Any:
    """pandas' conversion of a column to a dtype (what the Arrow conversions above must equal)."""
    from analyzer._pandas import pd

    if dtype == TS:
        return _to_timestamp(pd.Series(values, dtype=None if len(values) else float)).astype(cast(Any, TS)).array
    if isinstance(values, np.ndarray) and values.dtype != object:
        if values.dtype.kind == "f" and dtype[0] in "IU":  # NaN marks a missing integer
            return pd.Series(values).astype(cast(Any, dtype)).array
        return pd.array(values, dtype=cast(Any, dtype))
    if dtype == "float64":
        return np.asarray(values, dtype=float)
    return pd.array(list(values) if isinstance(values, np.ndarray) else values, dtype=cast(Any, dtype))


def _arrow_of_pandas(arr: Any, dtype: str) -> pa.Array:
    atype = arrow_type(dtype)
    if dtype == TS:
        return pa.array(np.asarray(arr.asi8), pa.int64(), mask=np.asarray(arr.isna())).view(atype)
    if isinstance(arr, np.ndarray):
        return pa.array(arr, atype, from_pandas=True)
    out = pa.array(arr, type=atype)  # pandas extension arrays convert themselves (__arrow_array__)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def pandas_array(arr: pa.Array | pa.ChunkedArray, dtype: str) -> Any:
    """A pandas array of a declared dtype from its Arrow column (the inverse of `arrow_column`)."""
    from analyzer._pandas import pd

    if dtype == "string":
        chunked = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr], arr.type)
        out = pd.arrays.ArrowStringArray(chunked)
        return out if out.dtype == pd.StringDtype() else pd.array(chunked.to_pylist(), dtype="string")
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if dtype == TS:
        ns = arr.view(pa.int64()).fill_null(_NAT).to_numpy()
        return pd.Series(ns.view("M8[ns]"), copy=False).dt.tz_localize("UTC").array
    if dtype == "float64":
        return arr.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    mask = arr.is_null().to_numpy(zero_copy_only=False)
    data = arr.fill_null(False if dtype == "boolean" else 0).to_numpy(zero_copy_only=False)
    if dtype == "boolean":
        return pd.arrays.BooleanArray(data.astype(bool), mask)
    if dtype == "Float64":
        return pd.arrays.FloatingArray(data.astype(np.float64), mask)
    return pd.arrays.IntegerArray(data.astype(dtype.lower()), mask)


def frame_from_arrow(columns: Mapping[str, pa.Array | pa.ChunkedArray] | pa.Table, schema: Schema) -> pd.DataFrame:
    """The pandas frame, in the declared dtypes, of Arrow columns made by `arrow_columns`."""
    from analyzer._pandas import pd

    if isinstance(columns, pa.Table):
        columns = {name: columns.column(name) for name in columns.column_names}
    return pd.DataFrame({name: pandas_array(columns[name], dtype) for name, dtype in schema.items()}, copy=False)
