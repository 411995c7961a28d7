"""A hypothesis fuzz target for EVERY registered dissector, generated from the registry: a dissector
added to BUILTINS (or registered by a plugin before the suite runs) is fuzzed without a line here.

Seeds are real: the flows of the bundled captures (captures/*.pcap*) that the dissector claims (its
probe accepts the flow and its dissect names one of its own `app_protocols`). A test fails when a
registered dissector claims none, so a new protocol cannot land without captures to fuzz from.
Each example takes one seed flow and damages it the way a capture or an attacker can: each
direction's stream cut, bytes set, inserted, deleted and duplicated (hypothesis draws each edit, so a
failure shrinks to the fewest), the prefix flags changed (mid-stream start, a gap, budget hit),
datagrams dropped, repeated and reordered; or plain random bytes.

Properties, for `probe`, `dissect` and (where a dissector takes hand-overs) `dissect_from` at drawn
offsets: nothing raises; the facts name only declared flow columns (plus the encryption state every
dissector sets) with values of their declared dtypes, `app_protocol` among the declared values, rows
only of declared frames with declared keys; damage becomes `anomalies` rows; each input takes bounded
time. CI runs `examples(...)` per dissector; INTRANSIT_FUZZ_EXAMPLES=N runs N (tests/HARDENING_NOTES.md).
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fuzz_helpers import examples, fuzz_settings, mutate
from support.fuzz_seeds import crafted_seeds

from analyzer import schema
from analyzer.config import DecodeOptions, FlowOptions
from analyzer.decode import decode
from analyzer.dissect import registered
from analyzer.dissect.base import Column, Datagram, DissectContext, Facts, FlowPayload, StreamPrefix, declared
from analyzer.errors import CaptureError
from analyzer.flows.table import FlowTable
from analyzer.sources.readers import read_capture

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
SEEDS_PER_DISSECTOR = 6
STATE = {"app_protocol": "string", "encrypted": "boolean", "protection": "string", "undecided_reason": "string"}
# Per input, best of three timings of the slowest input seen: a scheduler stall on a shared machine
# does not repeat, work that blows up with the input does. Generous: a 2-core machine shared by
# several test workers; the dissectors' own fuzz tests bound their typical inputs at 50 ms.
SLOW = 0.5
_INSERTS = (b"\x00", b"\xff\xff\xff\x7f", b"\r\n", b"\x16\x03\x01", b"\x80", b"{99999}\r\n", b"<", b"\x30\x84")


def _names() -> list[str]:
    return [d.name for d in registered()]


def _instance(name: str) -> Any:
    proto = next(d for d in registered() if d.name == name)
    frames = frozenset(f.name for f in declared(proto, "frames"))
    for_run = getattr(proto, "for_run", None)
    return for_run(DissectContext(frames=frames)) if callable(for_run) else proto


@cache
def _capture_flows() -> tuple[FlowPayload, ...]:
    """The ended flows (with payload) of every bundled capture."""
    out: list[FlowPayload] = []
    options = DecodeOptions(vxlan_ports=(4789, 8472))
    for path in sorted(CAPTURES.iterdir()):
        if not path.name.endswith((".pcap", ".pcapng", ".pcap.gz")):
            continue
        table = FlowTable(FlowOptions())
        try:
            ended = [e for batch in read_capture(str(path)) for e in table.update(decode(batch, options))]
        except CaptureError:
            continue
        for chunk in [*ended, *table.flush()]:
            out.extend(chunk.payloads)
    return tuple(out)


@cache
def seeds(name: str) -> tuple[FlowPayload, ...]:
    """Up to SEEDS_PER_DISSECTOR flows of the bundled captures that dissector `name` claims, else
    the crafted sessions of tests/support/fuzz_seeds.py (also only those it claims)."""
    d = _instance(name)
    own = set(declared(d, "app_protocols"))
    found: list[FlowPayload] = []
    for fp in [*_capture_flows(), *crafted_seeds().get(name, [])]:
        if fp.transport not in d.transports or not d.probe(fp):
            continue
        if d.dissect(fp).flow.get("app_protocol") in own:
            found.append(fp)
            if len(found) >= SEEDS_PER_DISSECTOR:
                break
    return tuple(found)


@st.composite
def _stream(draw, prefix: StreamPrefix) -> StreamPrefix:  # type: ignore[no-untyped-def]
    data = mutate(draw, prefix.data, _INSERTS)
    gap = draw(st.sampled_from([None, None, len(data)]))
    return StreamPrefix(data, start_known=draw(st.booleans()) if draw(st.booleans()) else prefix.start_known,
                        gap_at=gap, gap_len=draw(st.integers(1, 1 << 20)) if gap is not None else 0,
                        budget_hit=draw(st.booleans()), segments=prefix.segments)


@st.composite
def _datagrams(draw, datagrams: list[Datagram]) -> list[Datagram]:  # type: ignore[no-untyped-def]
    out = list(datagrams[:40])
    if out and draw(st.booleans()):
        out = draw(st.permutations(out))
    if out and draw(st.booleans()):
        del out[draw(st.integers(0, len(out) - 1))]
    if out and draw(st.booleans()):
        out.insert(draw(st.integers(0, len(out))), out[draw(st.integers(0, len(out) - 1))])
    edits = draw(st.lists(st.integers(0, max(len(out) - 1, 0)), max_size=3))
    for k in edits:
        if out:
            out[k] = replace(out[k], payload=mutate(draw, out[k].payload, _INSERTS))
    if not out or draw(st.integers(0, 9)) == 0:
        out.append(Datagram(0.0, draw(st.booleans()), draw(st.binary(max_size=1500))))
    return out


@st.composite
def damaged_flow(draw, name: str) -> FlowPayload:  # type: ignore[no-untyped-def]
    """A seed flow of dissector `name`, damaged; one in eight is random bytes on the seed's ports."""
    seed = draw(st.sampled_from(seeds(name)))
    fp = replace(seed, datagrams=list(seed.datagrams))
    if draw(st.integers(0, 7)) == 0:
        blank = StreamPrefix()
        fp.to_server = replace(blank, data=draw(st.binary(max_size=2048)))
        fp.to_client = replace(blank, data=draw(st.binary(max_size=2048)))
        fp.datagrams = [Datagram(0.0, draw(st.booleans()), draw(st.binary(max_size=1500)))
                        for _ in range(draw(st.integers(0, 4)))]
        return fp
    if seed.transport == "tcp":
        fp.to_server = draw(_stream(seed.to_server))
        fp.to_client = draw(_stream(seed.to_client))
    else:
        fp.datagrams = draw(_datagrams(seed.datagrams))
    return fp


def check_facts(d: Any, facts: Facts) -> None:
    """The facts are as `d` declared them (what the engine would otherwise turn into anomalies)."""
    assert isinstance(facts, Facts)
    columns = {**STATE, **{c.name: c.dtype for c in declared(d, "columns")}}
    undeclared = set(facts.flow) - set(columns)
    assert not undeclared, f"{d.name}: undeclared flow columns {sorted(undeclared)}"
    for key, value in facts.flow.items():
        schema.arrow_column([value], columns[key])  # a value of the wrong type would fail the frame
    protocols = set(declared(d, "app_protocols"))
    if protocols and facts.flow.get("app_protocol") is not None:
        assert facts.flow["app_protocol"] in protocols
    frames = {f.name: f.schema for f in declared(d, "frames")}
    for frame, rows in facts.rows.items():
        if frame == "anomalies":
            for row in rows:
                assert set(row) == {"kind", "detail", "offset"} and isinstance(row["kind"], str)
                assert row["offset"] is None or isinstance(row["offset"], int)
            continue
        assert frame in frames, f"{d.name}: rows of undeclared frame {frame!r}"
        for row in rows:
            assert set(row) <= set(frames[frame]), f"{d.name}: {frame} keys {sorted(set(row) - set(frames[frame]))}"
            for key, value in row.items():
                schema.arrow_column([value], frames[frame][key])


def run_once(d: Any, fp: FlowPayload, offsets: tuple[int, int]) -> float:
    """probe, dissect and (if the dissector takes hand-overs) dissect_from; the time dissecting took."""
    started = time.perf_counter()
    if fp.transport in d.transports:
        d.probe(fp)
    check_facts(d, d.dissect(fp))
    dissect_from = getattr(d, "dissect_from", None)
    if callable(dissect_from) and fp.transport == "tcp":
        check_facts(d, dissect_from(fp, min(offsets[0], len(fp.to_server.data)),
                                    min(offsets[1], len(fp.to_client.data))))
    return time.perf_counter() - started


def test_every_registered_dissector_has_seed_flows():
    """The fuzz target of a dissector is only as good as its seeds: each claims a flow of a bundled
    capture or a crafted session."""
    missing = [name for name in _names() if not seeds(name)]
    assert not missing, (f"no flow of captures/ nor of support/fuzz_seeds.py is claimed by {missing}: add a "
                         "capture (captures/make_*.sh) or a crafted session")


def test_the_registry_is_fuzzed_whole():
    """One parametrized target per registered dissector: the list below is the registry's."""
    assert len(_names()) >= 31
    assert sorted(_names()) == sorted(p.values[0] for p in _PARAMS)


_PARAMS = [pytest.param(name, id=name) for name in _names()]


@pytest.mark.parametrize("name", [p.values[0] for p in _PARAMS])
def test_damaged_flows_of_every_dissector(name: str):
    d = _instance(name)
    if not seeds(name):
        pytest.fail(f"{name}: no seed flow in captures/")
    slowest: list[tuple[float, FlowPayload, tuple[int, int]]] = []
    inputs = [0]

    @fuzz_settings(examples(60))
    @given(fp=damaged_flow(name), offsets=st.tuples(st.integers(0, 4096), st.integers(0, 4096)))
    def target(fp: FlowPayload, offsets: tuple[int, int]) -> None:
        inputs[0] += 1
        took = run_once(d, fp, offsets)
        if not slowest or took > slowest[0][0]:
            slowest[:] = [(took, fp, offsets)]

    started = time.perf_counter()
    target()
    assert slowest
    worst, fp, offsets = slowest[0]
    best = min(run_once(d, fp, offsets) for _ in range(3))
    assert best < SLOW, f"{name}: {fp!r:.2000}"
    # (shown by pytest -rP: the long run's count of inputs and duration per dissector)
    print(f"fuzz {name}: {inputs[0]} inputs in {time.perf_counter() - started:.1f} s, "
          f"slowest {worst * 1000:.1f} ms ({best * 1000:.2f} ms timed again)")


class _Broken:
    """A dissector that breaks each property once, to show the target's checks can fail."""

    name = "broken"
    app_protocols = ("broken",)
    transports = frozenset({"tcp"})
    ports = frozenset({1})
    columns = (Column("broken_count", "Int32", "a count"),)
    frames = ()

    def __init__(self, flow: dict[str, object], rows: dict[str, list[dict[str, object]]] | None = None) -> None:
        self.facts = Facts(flow=flow, rows=rows or {})

    def probe(self, flow: FlowPayload) -> bool:
        return True

    def dissect(self, flow: FlowPayload) -> Facts:
        return self.facts


@pytest.mark.parametrize(("flow", "rows"), [
    ({"broken_other": 1}, None),  # an undeclared column
    ({"broken_count": "many"}, None),  # a value not of the declared dtype
    ({"app_protocol": "http"}, None),  # an app_protocol it does not own
    ({}, {"tls": [{"uid": "C"}]}),  # rows of a frame it does not declare
    ({}, {"anomalies": [{"kind": "x", "detail": "y"}]}),  # an anomaly row without its offset
])
def test_the_checks_catch_a_broken_dissector(flow, rows):
    fp = seeds(_names()[0])[0]
    with pytest.raises((AssertionError, ValueError, TypeError)):
        run_once(_Broken(flow, rows), fp, (0, 0))
