"""The engine's state columns (visibility, undecided_reason) computed once per frame chunk, by codes,
equal what the per-batch computation with np.isin on strings gave (kept here as the reference)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from analyzer.pipeline import _state_columns, undecided_reasons, visibility

STARTED = ("syn", "synack", "continued")


def reference_visibility(cols: dict[str, Any]) -> np.ndarray:
    to_server = np.asarray(cols["packets_to_server"])
    to_client = np.asarray(cols["packets_to_client"])
    out = np.full(len(to_server), "both", object)
    tcp = np.asarray(cols["transport"] == "tcp", bool)
    out[tcp & ~np.isin(cols["client_by"], STARTED)] = "mid_stream"
    out[to_client == 0] = "client_only"
    out[to_server == 0] = "server_only"
    return out


def reference_reasons(cols: dict[str, Any], extra: dict[str, Any], n: int, dissected: bool,
                      seen: np.ndarray | None) -> np.ndarray:
    def is_none(v: np.ndarray) -> np.ndarray:
        return np.asarray(v == None, bool)  # noqa: E711

    enc = extra.get("encrypted")
    undecided = np.ones(n, bool) if enc is None else is_none(enc)
    given = extra.get("undecided_reason")
    out = np.full(n, None, object) if given is None else given.copy()
    out[~undecided] = None
    payload = np.asarray(cols["payload_bytes_to_server"]) + np.asarray(cols["payload_bytes_to_client"])
    empty = undecided & (payload <= 0)
    out[empty] = "no_payload"
    rest = undecided & ~empty & is_none(out)
    if not dissected:
        out[rest] = "not_dissected"
        return out
    app = extra.get("app_protocol")
    claimed = np.zeros(n, bool) if app is None else ~is_none(app)
    out[rest & ~claimed] = "unknown_protocol"
    out[rest & claimed] = "undecided"
    if seen is not None:
        vague = undecided & np.isin(out, ("undecided", "handshake_incomplete"))
        one_sided = (seen == "client_only") | (seen == "server_only")
        out[vague & one_sided] = "one_sided"
        out[vague & (seen == "mid_stream")] = "mid_stream"
        lost = np.asarray(cols["truncated"], bool) | (np.asarray(cols["missing_bytes"]) > 0)
        out[vague & lost & ~one_sided] = "truncated"
    return out


def random_chunk(rng: np.random.Generator, n: int, with_extra: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    def objects(choices: list[Any]) -> np.ndarray:
        return np.array([choices[i] for i in rng.integers(0, len(choices), n)], dtype=object)

    cols = {"packets_to_server": rng.integers(0, 3, n), "packets_to_client": rng.integers(0, 3, n),
            "transport": objects(["tcp", "udp", "icmp"]),
            "client_by": objects(["first_packet", "syn", "synack", "port", "icmp", "continued"]),
            "payload_bytes_to_server": rng.integers(0, 3, n), "payload_bytes_to_client": rng.integers(0, 3, n),
            "truncated": rng.integers(0, 2, n).astype(bool),
            "missing_bytes": rng.integers(0, 3, n) * (rng.random(n) < 0.2)}
    extra: dict[str, Any] = {}
    if with_extra:
        extra = {"encrypted": objects([True, False, None, None]), "app_protocol": objects(["tls", "ssh", None]),
                 "undecided_reason": objects([None, None, "undecided", "handshake_incomplete", "upgrade_not_seen"])}
    return cols, extra


@pytest.mark.parametrize("dissected", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_state_columns_equal_the_per_batch_reference(seed: int, dissected: bool) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    cols, extra = random_chunk(rng, n, with_extra=dissected and seed % 3 != 0)
    seen = reference_visibility(cols)
    assert visibility(cols).tolist() == seen.tolist()
    want = reference_reasons(cols, extra, n, dissected, seen).tolist()
    assert undecided_reasons(cols, extra, n, dissected, seen).tolist() == want
    unseen = reference_reasons(cols, extra, n, dissected, None).tolist()
    assert undecided_reasons(cols, extra, n, dissected).tolist() == unseen
    # the fold's path: lists as _flow_frame makes them of object columns, computed in place
    columns: dict[str, Any] = {**cols, **{k: list(v) for k, v in extra.items()},
                               "transport": list(cols["transport"]), "client_by": list(cols["client_by"])}
    _state_columns(columns, n, dissected)
    assert columns["visibility"].tolist() == seen.tolist()
    assert columns["undecided_reason"].tolist() == want


def test_state_columns_over_several_batches_equal_each_batch() -> None:
    """Computed on the concatenation of batches (some without dissector columns), as per batch."""
    rng = np.random.default_rng(7)
    batches = [random_chunk(rng, int(rng.integers(1, 60)), with_extra=i % 2 == 0) for i in range(5)]
    want_seen: list[object] = []
    want: list[object] = []
    for cols, extra in batches:
        n = len(cols["transport"])
        seen = reference_visibility(cols)
        want_seen += seen.tolist()
        want += reference_reasons(cols, extra, n, True, seen).tolist()
    total = sum(len(c["transport"]) for c, _ in batches)
    columns: dict[str, Any] = {}
    for name in batches[0][0]:
        parts = [c[name] for c, _ in batches]
        columns[name] = list(np.concatenate(parts)) if parts[0].dtype == object else np.concatenate(parts)
    for name in ("encrypted", "app_protocol", "undecided_reason"):
        columns[name] = [v for c, e in batches for v in (e[name] if name in e else [None] * len(c["transport"]))]
    _state_columns(columns, total, True)
    assert columns["visibility"].tolist() == want_seen
    assert columns["undecided_reason"].tolist() == want
