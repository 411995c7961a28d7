"""Suppressions: time-boxed, reasoned exceptions (TOML).

::

    [[suppress]]
    id = "legacy-payroll"               # optional; default "<file name>#<n>"
    rule = "tls-legacy-version"         # a rule id, or "*" for every rule
    cidr = ["10.20.0.0/24"]             # optional: the client OR the server address is inside
    server_name = "*.payroll.example"   # optional: glob on the finding's server name (case-insensitive)
    port = [443, 8443]                  # optional: the server port
    zone = "on-prem"                    # optional: glob on the client OR the server zone
    reason = "vendor appliance, replacement ordered (CHG-1234)"
    expires = 2027-03-31                # a TOML date: last day the suppression holds

A finding is suppressed when every criterion given matches (at least one besides `rule` is
required, so a suppression cannot silence a rule everywhere by accident). Suppressed findings are
kept, with `suppressed_by` naming the suppression; they no longer count for the verdict. A
suppression whose `expires` is before the evaluation date (`now`, by default today) silences
nothing and becomes a `suppression-expired` finding itself.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer.policy.errors import PolicyError
from analyzer.policy.rules import RULES
from analyzer.policy.zones import _cidr_bounds, _to_key, pack_addresses

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Suppression", "load_suppressions", "match_suppression"]

_KEYS = {"id", "rule", "cidr", "server_name", "port", "zone", "reason", "expires"}


@dataclass(frozen=True)
class Suppression:
    """One suppression entry."""

    id: str
    rule: str
    reason: str
    expires: dt.date
    cidrs: tuple[str, ...] = ()
    server_names: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    zones: tuple[str, ...] = ()

    def expired(self, today: dt.date) -> bool:
        """Whether the suppression no longer holds on `today` (it holds through `expires`)."""
        return self.expires < today


def _as_list(value: Any, kind: type, where: str, key: str) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, kind) and not isinstance(v, bool) for v in items):
        raise PolicyError(f"{where}: {key} must be a {kind.__name__} or a list of them")
    return items


def _parse(doc: dict[str, Any], where: str, stem: str) -> tuple[Suppression, ...]:
    if set(doc) - {"suppress"}:
        raise PolicyError(f"{where}: unknown key(s) {sorted(set(doc) - {'suppress'})}; use [[suppress]] entries")
    entries = doc.get("suppress", [])
    if not isinstance(entries, list):
        raise PolicyError(f"{where}: 'suppress' must be an array of tables ([[suppress]])")
    out = []
    for n, e in enumerate(entries, 1):
        at = f"{where}: suppression {n}"
        if not isinstance(e, dict):
            raise PolicyError(f"{at} is not a table")
        bad = set(e) - _KEYS
        if bad:
            raise PolicyError(f"{at}: unknown key(s) {sorted(bad)}")
        rule = e.get("rule")
        if rule != "*" and rule not in RULES:
            raise PolicyError(f"{at}: unknown rule {rule!r}")
        reason = e.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise PolicyError(f"{at}: a reason is required")
        expires = e.get("expires")
        if isinstance(expires, dt.datetime):
            expires = expires.date()
        if not isinstance(expires, dt.date):
            raise PolicyError(f"{at}: expires must be a TOML date (e.g. expires = 2027-03-31)")
        cidrs = _as_list(e.get("cidr", []), str, at, "cidr")
        for c in cidrs:
            _cidr_bounds(c)
        names = _as_list(e.get("server_name", []), str, at, "server_name")
        ports = _as_list(e.get("port", []), int, at, "port")
        zones = _as_list(e.get("zone", []), str, at, "zone")
        if not (cidrs or names or ports or zones):
            raise PolicyError(f"{at}: give at least one of cidr, server_name, port, zone")
        sid = e.get("id", f"{stem}#{n}")
        if not isinstance(sid, str) or not sid:
            raise PolicyError(f"{at}: id must be a non-empty string")
        out.append(Suppression(sid, str(rule), reason.strip(), expires, tuple(cidrs),
                               tuple(x.lower() for x in names), tuple(ports), tuple(zones)))
    ids = [s.id for s in out]
    if len(set(ids)) != len(ids):
        raise PolicyError(f"{where}: suppression ids must be unique")
    return tuple(out)


def load_suppressions(source: str | Path | Sequence[Suppression] | None) -> tuple[Suppression, ...]:
    """Suppressions from a TOML file (format in the module docstring), or as given."""
    if source is None:
        return ()
    if not isinstance(source, str | Path):
        return tuple(source)
    path = Path(source)
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read suppressions: {exc}") from exc
    return _parse(doc, str(path), path.name)


def _in_cidrs(addresses: pa.Array, cidrs: Sequence[str]) -> np.ndarray:
    from analyzer.policy import _compute as pc
    from analyzer.policy._cols import fill, numpy_of

    encoded = pc.dictionary_encode(addresses)
    codes = numpy_of(fill(encoded.indices, -1)).astype(np.int64, copy=False)
    keys, valid = pack_addresses(encoded.dictionary.to_pylist())
    inside = np.zeros(len(encoded.dictionary), dtype=bool)
    for c in cidrs:
        lo, hi, _ = _cidr_bounds(c)
        inside |= valid & (keys >= np.array(_to_key(lo), dtype="S17")) & (keys <= np.array(_to_key(hi), dtype="S17"))
    return np.where(codes >= 0, inside[np.clip(codes, 0, None)], False)


def _glob(values: pa.Array, patterns: Sequence[str]) -> np.ndarray:
    """Case-insensitive glob (Python's lower-casing) over each distinct value once."""
    from analyzer.policy import _compute as pc
    from analyzer.policy._cols import isin

    uniq = [u for u in pc.unique(values).to_pylist() if u is not None]
    keep = [u for u in uniq if any(fnmatch.fnmatchcase(str(u).lower(), p.lower()) for p in patterns)]
    return isin(values, keep)


def match_suppression(findings: Mapping[str, pa.Array], s: Suppression) -> np.ndarray:
    """Which findings (FINDINGS columns as Arrow arrays) `s` matches (regardless of its expiry)."""
    from analyzer.policy._cols import eq, isin, length

    mask = np.ones(length(findings), dtype=bool)
    if s.rule != "*":
        mask &= eq(findings["rule"], s.rule)
    if s.cidrs:
        mask &= _in_cidrs(findings["client_ip"], s.cidrs) | _in_cidrs(findings["server_ip"], s.cidrs)
    if s.server_names:
        mask &= _glob(findings["server_name"], s.server_names)
    if s.ports:
        mask &= isin(findings["server_port"], list(s.ports))
    if s.zones:
        mask &= _glob(findings["client_zone"], s.zones) | _glob(findings["server_zone"], s.zones)
    return mask
