"""Protocol dissectors: payload prefixes -> facts. They state facts and never judge.

The registry: each dissector module registers a prototype (`register`) that declares the flow
columns it fills and the frames it produces (`analyzer.dissect.base`). From it come the flows
frame's schema (`flow_schema()`: the engine's base columns, then each dissector's, in registration
order), the frames an analysis can build (`frame_specs()`), and the CLI's commands. Adding a
protocol is one module that calls `register` plus its entry in `BUILTINS`.

`FLOWS` and `ALL` (the schemas of every frame by name) are computed from the registry on first use.
A column of an optional group (`Column.group`, e.g. the TLS family's session facts that the policy
reads) is in a run's flows schema only when the run's plan reads it; `FLOWS` is a plain run's schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from analyzer import schema
from analyzer.dissect.base import (
    Column,
    Datagram,
    Dedup,
    DissectContext,
    DissectOptions,
    Dissector,
    Facts,
    FlowPayload,
    FrameSpec,
    HandOver,
    StreamPrefix,
    declared,
    merge_handover,
)

__all__ = [
    "ALL",
    "BUILTINS",
    "FLOWS",
    "LIGHT_DECLARATIONS",
    "LIGHT_PROTOTYPES",
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
    "LightDissector",
    "StreamPrefix",
    "app_protocols",
    "column_groups",
    "declarations",
    "flow_columns",
    "flow_schema",
    "frame_specs",
    "merge_handover",
    "register",
    "registered",
]

# The built-in dissector modules (each registers its dissector when imported), in the order their
# dissectors are tried on a flow (after the port hints) and their columns appear in `.flows`.
BUILTINS = ("analyzer.dissect.tls.dissector", "analyzer.dissect.quic._dissector", "analyzer.dissect.dtls",
            "analyzer.dissect.ssh", "analyzer.dissect.http", "analyzer.dissect.smtp", "analyzer.dissect.imap",
            "analyzer.dissect.pop3", "analyzer.dissect.ftp",
            "analyzer.dissect.dns", "analyzer.dissect.ldap",
            "analyzer.dissect.snmp", "analyzer.dissect.telnet",
            "analyzer.dissect.ntp", "analyzer.dissect.syslog", "analyzer.dissect.rdp",
            "analyzer.dissect.vnc", "analyzer.dissect.sip", "analyzer.dissect.smb",
            "analyzer.dissect.ipsec", "analyzer.dissect.wireguard", "analyzer.dissect.openvpn",
            "analyzer.dissect.postgresql", "analyzer.dissect.mysql", "analyzer.dissect.redis",
            "analyzer.dissect.mqtt", "analyzer.dissect.mongodb",
            "analyzer.dissect.amqp", "analyzer.dissect.memcached", "analyzer.dissect.xmpp",
            "analyzer.dissect.nntp", "analyzer.dissect.socks",
            "analyzer.dissect.stun")

# Where a built-in whose implementation is costly to import declares its columns and frames
# (FLOW_COLUMNS, FRAMES), so that a run without dissection reads its schema without importing parsers
# and `cryptography`; the others are light and declare on their dissector class. A test checks that
# these equal the dissectors' own declarations.
LIGHT_DECLARATIONS = dict.fromkeys(BUILTINS[:3], "analyzer.dissect.tls.schema")

# Built-ins whose implementation is costly to import and which most runs never use (QUIC, DTLS: ~60M
# instructions of start-up together): until a run first needs one, the registry holds a
# `LightDissector` made from the module named here (NAME, APP_PROTOCOLS, TRANSPORTS, PORTS and the
# `probe(flow)` function) and from its LIGHT_DECLARATIONS (columns, frames). Its run instances import
# the implementation when their probe first claims a flow; importing it puts the real prototype in
# the light one's place in the registry. The same test checks these against the dissectors' own.
LIGHT_PROTOTYPES = {"analyzer.dissect.quic._dissector": "analyzer.dissect.quic._probe",
                    "analyzer.dissect.dtls": "analyzer.dissect._dtls_probe"}

_RANKS = {module: i for i, module in enumerate(BUILTINS)}

# Frames the engine itself makes; no dissector may declare them.
ENGINE_FRAMES = ("flows", "anomalies", "sources")

_REGISTRY: list[Dissector] = []
_loaded = False
# What the registered dissectors declare so far (flow_columns and frame_specs of _REGISTRY): each
# registration checks only its own declarations against these, not the whole registry again
# (with 33 built-ins, re-checking everything at each registration was ~25M instructions of start-up).
_registered_columns: dict[str, Column] = {}
_registered_frames: dict[str, FrameSpec] = {}


def register(dissector: Any) -> Any:
    """Add a dissector prototype. Later registrations are tried after earlier ones. Its declared
    columns and frames are checked here, so a mistake fails at import, not in the middle of a run."""
    global _registered_columns, _registered_frames
    for i, d in enumerate(_REGISTRY):
        if d.name == dissector.name:
            if isinstance(d, LightDissector) and d.module == type(dissector).__module__:
                _REGISTRY[i] = dissector  # the implementation of a light prototype, imported: it takes its place
                return dissector
            raise ValueError(f"a dissector named {dissector.name!r} is already registered")
    columns = dict(_registered_columns)
    _add_columns(columns, dissector)  # raises on a clash with the base or another dissector
    frames = dict(_registered_frames)
    _add_frames(frames, dissector)
    _REGISTRY.append(dissector)
    _registered_columns, _registered_frames = columns, frames
    return dissector


def registered() -> tuple[Dissector, ...]:
    """Registered dissector prototypes, importing the built-in ones on first use: the built-ins in
    BUILTINS order (whatever imported one of them first), then the others in registration order."""
    global _loaded
    if not _loaded:
        _loaded = True
        import importlib
        import sys

        for module in BUILTINS:
            if module in LIGHT_PROTOTYPES and module not in sys.modules:
                register(LightDissector(module))
            else:
                importlib.import_module(module)
    return tuple(sorted(_REGISTRY, key=_builtin_rank))  # stable: the others keep registration order


def app_protocols() -> dict[str, str]:
    """Every `app_protocol` value the registered dissectors declare (`app_protocols`), with the
    dissector that sets it: the vocabulary the README lists. One value belongs to one dissector."""
    out: dict[str, str] = {}
    for d in registered():
        for value in declared(d, "app_protocols"):
            if value in out and out[value] != d.name:
                raise ValueError(f"{d.name}: app_protocol {value!r} is already set by {out[value]}")
            out[value] = d.name
    return out


def _builtin_rank(dissector: Any) -> int:
    """The dissector's place in BUILTINS (its module or a package above it), len(BUILTINS) for others.
    Looked up by the module's name and its parents (a dict), not by scanning BUILTINS: declarations()
    asks for every dissector once per built-in, which with 31 built-ins was 65k string tests a run."""
    module = dissector.module if isinstance(dissector, LightDissector) else type(dissector).__module__
    while module:
        rank = _RANKS.get(module)
        if rank is not None:
            return rank
        module = module.rpartition(".")[0]
    return len(BUILTINS)


class _Declared:
    """A built-in's declarations read from its light module (see LIGHT_DECLARATIONS)."""

    def __init__(self, module: str) -> None:
        import importlib

        mod = importlib.import_module(LIGHT_DECLARATIONS[module])
        self.name = module.rsplit(".", 2)[-2] if module.endswith("dissector") else module.rsplit(".", 1)[-1]
        self.columns: tuple[Column, ...] = mod.FLOW_COLUMNS
        self.frames: tuple[FrameSpec, ...] = mod.FRAMES


class LightDissector:
    """A built-in's prototype made from its light module (see LIGHT_PROTOTYPES) without importing its
    implementation (`module`). Its run instances (`for_run`) import the implementation and make its
    run instance when their probe first claims a flow, and hand it their flows from then on; a
    prototype's own `dissect` (a caller that skips `for_run`) goes to the implementation's prototype."""

    def __init__(self, module: str, context: DissectContext | None = None) -> None:
        import importlib

        light = importlib.import_module(LIGHT_PROTOTYPES[module])
        declared_in = importlib.import_module(LIGHT_DECLARATIONS[module])
        self.module = module
        self.name: str = light.NAME
        self.app_protocols: tuple[str, ...] = light.APP_PROTOCOLS
        self.transports: frozenset[str] = light.TRANSPORTS
        self.ports: frozenset[int] = light.PORTS
        self.columns: tuple[Column, ...] = declared_in.FLOW_COLUMNS
        self.frames: tuple[FrameSpec, ...] = declared_in.FRAMES
        self.probe = light.probe  # a plain function: no wrapper on every flow offered
        self._context = context
        self._run: Any = None  # this run's instance of the implementation, once a flow needed it

    def __repr__(self) -> str:
        return f"LightDissector({self.module!r})"

    def implementation(self) -> Any:
        """The implementation's registered prototype (importing its module registers it)."""
        import importlib

        return importlib.import_module(self.module).DISSECTOR

    def for_run(self, context: DissectContext) -> LightDissector:
        return LightDissector(self.module, context)

    def dissect(self, flow: FlowPayload) -> Facts:
        run = self._run
        if run is None:
            run = self.implementation()
            if self._context is not None:  # a run instance: the implementation's, kept for the run
                for_run = getattr(run, "for_run", None)
                run = self._run = for_run(self._context) if callable(for_run) else run
        return run.dissect(flow)


def declarations() -> tuple[Any, ...]:
    """What every built-in and registered dissector declares, without importing the built-ins whose
    implementation is costly (a run without dissection needs the schema, not the parsers): objects
    with `name`, `columns` and `frames`, in registry order."""
    import importlib
    import sys

    light: dict[int, _Declared] = {}
    for rank, module in enumerate(BUILTINS):  # in order: importing one may import a later one
        if module in LIGHT_DECLARATIONS and module not in sys.modules:
            light[rank] = _Declared(module)
        else:
            importlib.import_module(module)
    # the registry grouped by rank once (ranking it per built-in was 33 x 33 rank look-ups a call)
    by_rank: dict[int, list[Any]] = {}
    for d in _REGISTRY:
        by_rank.setdefault(_builtin_rank(d), []).append(d)
    out: list[Any] = []
    for rank in range(len(BUILTINS)):
        if rank in light:
            out.append(light[rank])
        else:
            out.extend(by_rank.get(rank, ()))
    out.extend(by_rank.get(len(BUILTINS), ()))
    return tuple(out)


def flow_columns(dissectors: Iterable[Any] | None = None, groups: Iterable[str] | None = ()) -> dict[str, Column]:
    """The flow columns the dissectors declare (all registered ones by default), by name: those of
    no group, and those of the optional column groups named in `groups` (`Column.group`; None: of
    every group)."""
    out: dict[str, Column] = {}
    for d in declarations() if dissectors is None else dissectors:
        _add_columns(out, d)
    if groups is None:
        return out
    made = frozenset(groups)
    return {name: c for name, c in out.items() if c.group is None or c.group in made}


def column_groups(dissectors: Iterable[Any] | None, columns: Iterable[str]) -> frozenset[str]:
    """The optional column groups (`Column.group`) of the declared flow columns named in `columns`
    (what a run must make for a stage that reads those columns)."""
    names = list(columns)
    if not names:  # (a plain run: the declarations are not read again)
        return frozenset()
    declared_columns = flow_columns(dissectors, None)
    return frozenset(g for g in (declared_columns[n].group for n in names if n in declared_columns)
                     if g is not None)


def _add_columns(out: dict[str, Column], d: Any) -> None:
    """Add the flow columns `d` declares to `out` (the columns of the dissectors before it), checked."""
    for column in declared(d, "columns"):
        schema.arrow_type(column.dtype)  # an unknown dtype is a declaration error
        base = schema.FLOWS_BASE.get(column.name)
        seen = out.get(column.name)
        if base is not None and base != column.dtype:
            raise ValueError(f"{d.name}: column {column.name!r} is a base flow column of dtype {base}")
        if seen is not None and seen.dtype != column.dtype:
            raise ValueError(f"{d.name}: column {column.name!r} declared as {column.dtype}, "
                             f"elsewhere as {seen.dtype}")
        if seen is not None and seen.group != column.group:
            raise ValueError(f"{d.name}: column {column.name!r} declared in group {column.group!r}, "
                             f"elsewhere in {seen.group!r}")
        if base is None and seen is None:
            out[column.name] = column


def flow_schema(dissectors: Iterable[Any] | None = None, groups: Iterable[str] | None = ()) -> dict[str, str]:
    """The `.flows` schema: the engine's base columns, then the dissectors' declared columns (of the
    optional column groups, those named in `groups`; None: every group). `FLOWS` is a plain run's:
    no optional group."""
    return {**schema.FLOWS_BASE, **{c.name: c.dtype for c in flow_columns(dissectors, groups).values()}}


def frame_specs(dissectors: Iterable[Any] | None = None) -> dict[str, FrameSpec]:
    """The frames the dissectors produce (all registered ones by default), by name. Several
    dissectors may produce one frame (TLS, DTLS and QUIC make `tls` rows) with the same spec."""
    out: dict[str, FrameSpec] = {}
    for d in declarations() if dissectors is None else dissectors:
        _add_frames(out, d)
    return out


def _add_frames(out: dict[str, FrameSpec], d: Any) -> None:
    """Add the frames `d` declares to `out` (the frames of the dissectors before it), checked."""
    for spec in declared(d, "frames"):
        if spec.name in ENGINE_FRAMES:
            raise ValueError(f"{d.name}: frame {spec.name!r} is made by the engine")
        for dtype in spec.schema.values():
            schema.arrow_type(dtype)
        if spec.merge is not None and spec.merge.key not in spec.schema:
            raise ValueError(f"{d.name}: frame {spec.name!r} merges by {spec.merge.key!r}, not in its schema")
        seen = out.get(spec.name)
        if seen is not None and seen != spec:
            raise ValueError(f"{d.name}: frame {spec.name!r} is declared differently by another dissector")
        out.setdefault(spec.name, spec)


def __getattr__(name: str) -> Any:
    if name == "FLOWS":
        return flow_schema()
    if name == "ALL":
        return {"flows": flow_schema(), **{n: dict(s.schema) for n, s in frame_specs().items()},
                "anomalies": schema.ANOMALIES}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
