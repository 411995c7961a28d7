"""The seam between the flow table and the protocol dissectors, and what a dissector declares.

A dissector reads one `FlowPayload` (made by the flow table: `analyzer.flows.payload`) and returns
`Facts`; it states facts and never judges them (no thresholds or severities here; those are rules in
`policy/`). Like a Zeek protocol script that declares its `Info` record and creates its log stream,
a dissector declares what it fills:

- `columns`: the `.flows` columns it sets (`Column`: name, dtype, one-line description). The flows
  frame is the engine's base columns plus every registered dissector's columns, in registration
  order; two dissectors may declare the same column (TLS, DTLS and QUIC share theirs) only with the
  same dtype and group. A column of a `group` is made only in runs that read one of the group's
  columns (a stage's `reads_columns`: the policy reads the TLS family's session facts), so a run
  that does not read them neither computes them per flow nor carries them in its flows frame.
- `frames`: the frames it produces rows for (`FrameSpec`: name, schema, description, how rows of
  several flows merge, e.g. certificates de-duplicated by SHA-256).

`Facts.flow` keys and `Facts.rows` frames a dissector did not declare become an anomaly row at the
dissector boundary (naming the dissector), never a KeyError that ends the run.

A plaintext dissector can hand the rest of a stream to another dissector (`Facts.hand_over`), as
Zeek's SMTP analyzer does with `StartTLS()` -> `AddChildAnalyzer(SSL)`: the engine calls the child's
`dissect_from(flow, to_server_offset, to_client_offset)` and merges the facts (see `merge_handover`).

Dissectors are registered as prototypes (`analyzer.dissect.register`); each analysis makes its own
instances with `for_run(context)`, so caches belong to one run, never to the process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

# The payload types belong to the flows layer (it makes them); re-exported for dissector authors.
from analyzer.config import DissectOptions
from analyzer.flows.payload import Datagram, FlowPayload, StreamPrefix

if TYPE_CHECKING:
    from analyzer.keylog import KeyStore

__all__ = [
    "Column",
    "Datagram",
    "Dedup",
    "DissectContext",
    "DissectOptions",
    "Dissector",
    "Facts",
    "FlowPayload",
    "FrameSpec",
    "HandOver",
    "StreamPrefix",
    "merge_handover",
]


@dataclass(frozen=True, slots=True)
class Column:
    """A `.flows` column a dissector fills."""

    name: str
    dtype: str  # a declared dtype of analyzer.schema (string, boolean, Int32, datetime64[ns, UTC], ...)
    doc: str
    # None: made in every run; else the optional group of columns it belongs to, made (and in the
    # flows schema) only in a run whose plan reads one of them (`DissectContext.makes(group)`)
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Dedup:
    """Merge rule of a frame whose rows describe things, not flows: rows with the same `key` are one
    row (the first seen is kept); `count` names the column counting the rows merged into it, and
    `first_uid` the column set to the uid of the first flow that produced it."""

    key: str
    count: str | None = None
    first_uid: str | None = None


@dataclass(frozen=True, slots=True)
class FrameSpec:
    """A frame a dissector produces rows for.

    `schema`: column -> dtype (rows' keys must be declared here; `uid` is added from the flow where
    the schema has it and the row lacks it). `merge`: None appends rows; a `Dedup` merges them, and
    such a frame is complete only at the end, so it cannot stream to a sink. `table_columns`: the
    columns the CLI's terminal table shows by default (None: all)."""

    name: str
    schema: Mapping[str, str]
    doc: str
    merge: Dedup | None = None
    table_columns: tuple[str, ...] | None = None

    @property
    def streamable(self) -> bool:
        return self.merge is None


@dataclass(frozen=True, slots=True)
class DissectContext:
    """What one run tells its dissectors: the options, which frames anybody will read (a dissector
    may skip building rows of frames nobody wants), and which optional groups of flow columns the
    run makes (`Column.group`: a dissector fills those only when `makes(group)`; its other flow
    columns are always made)."""

    options: DissectOptions = field(default_factory=DissectOptions)
    frames: frozenset[str] = frozenset()
    # The run's fingerprint key (credentials.run_key), when the run spans processes (the Dask engine
    # gives every partition the driver's key, so one secret has one fingerprint across the run).
    key: bytes | None = field(default=None, repr=False, compare=False)
    # The run's TLS handshake secrets (analyzer.keylog.KeyStore: --keylog, and the Decryption Secrets
    # Blocks of its captures as they are read); None: nothing is decrypted.
    keys: KeyStore | None = field(default=None, repr=False, compare=False)
    # Bytes a dissector's certificate cache may hold (the run's memory budget's share, config.memory_shares).
    cert_cache_bytes: int | None = None
    # The optional column groups this run's flows frame has (`Column.group`; `Plan.groups`).
    groups: frozenset[str] = frozenset()

    def wants(self, *frames: str) -> bool:
        return any(f in self.frames for f in frames)

    def makes(self, group: str) -> bool:
        """Whether the run's flows frame has the optional column group `group` (`Column.group`)."""
        return group in self.groups


@dataclass(frozen=True, slots=True)
class HandOver:
    """The rest of a stream goes to dissector `to`, from these byte offsets of each direction."""

    to: str
    to_server_offset: int
    to_client_offset: int


@dataclass(slots=True)
class Facts:
    """What a dissector learned about one flow.

    - `flow`: columns joined into the `.flows` frame for this flow (declared `Column`s).
    - `rows`: rows for other frames, keyed by frame name; each row a plain dict whose keys are
      declared in that frame's schema. `anomalies` rows are always accepted.
    - `handover`: set by `hand_over` when the rest of the stream belongs to another protocol.
    """

    flow: dict[str, object] = field(default_factory=dict)
    rows: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    handover: HandOver | None = None

    def add_row(self, frame: str, row: dict[str, object]) -> None:
        self.rows.setdefault(frame, []).append(row)

    def anomaly(self, kind: str, detail: str, offset: int | None = None) -> None:
        """Record something malformed or unexpected; never raise for wire data."""
        self.add_row("anomalies", {"kind": kind, "detail": detail[:500], "offset": offset})

    def hand_over(self, to: str, to_server_offset: int, to_client_offset: int) -> None:
        """Give the stream from these offsets (one per direction) to dissector `to` (STARTTLS)."""
        self.handover = HandOver(to, to_server_offset, to_client_offset)

    def merge(self, other: Facts) -> None:
        for key, value in other.flow.items():
            self.flow.setdefault(key, value)
        for frame, rows in other.rows.items():
            self.rows.setdefault(frame, []).extend(rows)


def merge_handover(parent: Facts, child: Facts) -> Facts:
    """The facts of a flow whose stream a parent handed to a child. The child's flow columns win
    (the upgraded session decides whether the flow is encrypted), except `app_protocol`, which stays
    the parent's (the application speaks SMTP; TLS protects it), and `protection` "starttls", which
    the parent names when the hand-over is an upgrade of its own session (an HTTP CONNECT tunnel is
    not: its TLS stays "tls"). The parent's `undecided_reason` goes when the child decided; rows of
    both are kept. A child's null never erases a value the parent knew, except in the encryption
    state (a SOCKS target host is the flow's `tls_server_name` when the ClientHello gave none)."""
    flow = {**parent.flow}
    for key, value in child.flow.items():
        if value is not None or key in _STATE or flow.get(key) is None:
            flow[key] = value
    if "app_protocol" in parent.flow:
        flow["app_protocol"] = parent.flow["app_protocol"]
    if parent.flow.get("protection") == "starttls":
        flow["protection"] = "starttls"
    if child.flow.get("encrypted") is not None and "undecided_reason" not in child.flow:
        flow.pop("undecided_reason", None)
    rows: dict[str, list[dict[str, object]]] = {k: list(v) for k, v in parent.rows.items()}
    for frame, more in child.rows.items():
        rows.setdefault(frame, []).extend(more)
    return Facts(flow=flow, rows=rows, handover=child.handover)


_STATE = frozenset({"app_protocol", "encrypted", "protection", "undecided_reason"})


class Dissector(Protocol):
    """A protocol dissector. Register a prototype with `analyzer.dissect.register`.

    Optional methods the engine uses when present:
    - `for_run(context) -> Dissector`: this run's instance (default: the prototype itself, for
      dissectors with no cache and no options);
    - `dissect_from(flow, to_server_offset, to_client_offset) -> Facts`: accept a hand-over;
    - `find_start(flow) -> (to_server_offset, to_client_offset) | None`: where this protocol begins
      after a cleartext prefix in a flow that no dissector claimed (the content-search fallback).
    """

    name: str
    # The `app_protocol` values it sets: lower-case names, each owned by one dissector (the README's
    # vocabulary; a value not declared here becomes an anomaly). Every flow it claims also gets
    # `encrypted`, and `protection` (analyzer.dissect.vocabulary.PROTECTIONS); when `encrypted` stays
    # null it may say why in `undecided_reason` (vocabulary.UNDECIDED_REASONS).
    app_protocols: tuple[str, ...]
    transports: frozenset[str]
    # Port hints: flows on these server ports are offered to this dissector first. Content
    # probes still decide (TLS is found on any port).
    ports: frozenset[int]
    columns: tuple[Column, ...]
    frames: tuple[FrameSpec, ...]

    def probe(self, flow: FlowPayload) -> bool:
        """Cheap look at the first bytes: is this flow probably mine?"""
        ...

    def dissect(self, flow: FlowPayload) -> Facts:
        """Return the facts. Must not raise on any wire bytes: record anomalies instead."""
        ...


def declared(dissector: Any, attr: str) -> tuple[Any, ...]:
    """A dissector's `columns` or `frames` (none declared: empty)."""
    return tuple(getattr(dissector, attr, ()) or ())
