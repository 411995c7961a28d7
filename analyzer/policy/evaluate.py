"""`evaluate()`: facts + zones + profile + suppressions -> findings, flow verdicts, destinations.

**Findings** (`FINDINGS` schema): one row per (rule, flow) an enabled rule flags, plus one per
expired suppression. `finding_id` is stable across runs: a 64-bit hash (pandas'
`hash_pandas_object`, fixed key; computed without pandas: `_ids`) of ``rule|uid``, or
``suppression-expired|<suppression id>``, as 16 hex digits; `uid` is itself deterministic per
flow. `server_name` is the SNI, else the leaf certificate's CN. `first_seen`/`last_seen` are the
flow's start and end. `suppressed_by` names the first suppression (in file order) that matches a
finding and has not expired.

**Flow verdict** (columns added to flows: `client_zone`, `server_zone`, `direction`, `verdict`,
`finding_count`), from the unsuppressed findings of the flow:

- ``fail``: a finding at the profile's `fail_at` severity or above (default high);
- ``warn``: a finding at `warn_at` or above (default low);
- ``ok``: neither, and the flow is encrypted (`encrypted` true);
- ``unknown``: neither, and encryption is undecided or absent without a rule that judged it (no
  payload, an unidentified protocol, a failed handshake, cleartext whose direction is unknown
  because no zone was given). Such flows are "not judged", never "ok".

`finding_count` counts the unsuppressed findings of the flow (info included).

**Destinations** (`DESTINATIONS` schema): one row per server name (SNI, else certificate CN, else
the server address), server port and server zone, with its flows, bytes (IP bytes both ways), the
share of flows and of bytes that were encrypted (over all its flows), the flows not judged, the
unsuppressed findings, the worst severity, and a score and grade:

    judged_share = encrypted bytes / bytes of judged flows (encrypted or cleartext)
    score = min(100 * judged_share, 100 - penalty[worst severity]), floored at 0
    penalty: info 0, low 15, medium 30, high 60, critical 100
    grade: A >= 90 > B >= 80 > C >= 70 > D >= 60 > F

A destination with no judged flow and no finding is not judged: score and grade null. So one
high finding caps a destination at 40 (F), one medium at 70 (C), one low at 85 (B); a destination
that carries a tenth of its bytes in the clear scores at most 90.

**Speed** (2026-12-06, `bench/policy_evaluate.py`: the bundled captures' frames tiled, about two
thirds of the flows flagged, so far more findings than real traffic gives): 30,720 flows in
0.36-0.44 s of CPU, 1,008,000 flows in 12-14 s of CPU (74-82k flows per CPU second), sec09 and
strict alike; wall time was about twice that on this shared 2-core machine. The zone lookup is a
small part (0.26 s CPU of the 1M case); the rest is the rules' column work and evidence strings
(built only for flagged rows), the joins of facts, and the findings frame.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from analyzer.dissect import flow_schema
from analyzer.policy import _compute as pc
from analyzer.policy._cols import STRING, Cols, as_cols, fill, from_codes, length, notnull, numpy_of, true
from analyzer.policy._ids import finding_ids
from analyzer.policy._rule import SEVERITIES, dt
from analyzer.policy.errors import PolicyError
from analyzer.policy.facts import (
    FLOW_READS,
    Facts,
    build_facts,
    conform,
    conform_cols,
    distinct,
    first_rows,
    frame_cols,
    positions,
    read_schema,
)
from analyzer.policy.profiles import Profile, load_profile
from analyzer.policy.rules import RULES, SUPPRESSION_EXPIRED
from analyzer.policy.rules_traffic import cleartext_mask
from analyzer.policy.suppressions import Suppression, load_suppressions, match_suppression
from analyzer.policy.zones import Zone, ZoneMap, build_zones, zone_cols
from analyzer.schema import arrow_type, frame_from_arrow, pandas_array

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DESTINATIONS", "FINDINGS", "FLOW_COLUMNS", "Judged", "PolicyResult", "add_destination_sums",
           "destination_sums", "destinations_from_sums", "evaluate", "grade", "judge", "sort_findings",
           "timestamp", "today", "worst_destinations"]

TS = "datetime64[ns, UTC]"

FINDINGS: dict[str, str] = {
    "finding_id": "string",
    "uid": "string",  # the flow (null for a suppression-expired finding)
    "rule": "string",
    "severity": "string",  # info, low, medium, high, critical (as the profile sets it)
    "direction": "string",
    "transport": "string",
    "client_ip": "string",
    "client_port": "Int32",
    "server_ip": "string",
    "server_port": "Int32",
    "server_name": "string",  # SNI, else the leaf certificate's CN
    "client_zone": "string",
    "server_zone": "string",
    "evidence": "string",  # built from the facts; wire strings quoted as they are (escape when printing)
    "first_seen": TS,
    "last_seen": TS,
    "profile": "string",
    "suppressed_by": "string",  # id of the suppression that silences it, else null
}

# columns evaluate() adds to the flows frame
FLOW_COLUMNS: dict[str, str] = {
    "client_zone": "string",
    "server_zone": "string",
    "direction": "string",
    "verdict": "string",  # ok, warn, fail, unknown
    "finding_count": "Int32",
}

DESTINATIONS: dict[str, str] = {
    "destination": "string",  # server name (SNI / certificate CN), else the server address
    "server_port": "Int32",
    "server_zone": "string",
    "flows": "Int64",
    "bytes": "Int64",
    "encrypted_flow_share": "Float64",
    "encrypted_byte_share": "Float64",
    "unjudged_flows": "Int64",
    "findings": "Int64",
    "worst_severity": "string",
    "score": "Int16",
    "grade": "string",
}

PENALTY = {"info": 0, "low": 15, "medium": 30, "high": 60, "critical": 100}
GRADES = ((90, "A"), (80, "B"), (70, "C"), (60, "D"), (0, "F"))
VERDICTS = ("ok", "warn", "fail", "unknown")


@dataclass(frozen=True)
class PolicyResult:
    """What `evaluate` returns."""

    findings: pd.DataFrame
    flows: pd.DataFrame
    destinations: pd.DataFrame
    profile: Profile
    zones: ZoneMap


def _with_credentials(flows: Cols, credentials: Mapping[str, pa.Array]) -> Cols:
    """`flows` plus a `credentials` column: per flow, the kinds of secrets it sent in the clear
    ("http basic, ftp user_pass"), from the credentials rows (never the secrets: they have none)."""
    creds = as_cols(credentials)
    clear = pa.array(true(creds["secret_in_clear"]))
    kinds: dict[str, list[str]] = {}  # per flow, its distinct kinds in order of appearance
    uids, protos, mechs = (pc.filter(creds[c], clear).to_pylist() for c in ("uid", "protocol", "mechanism"))
    for uid, proto, mech in zip(uids, protos, mechs, strict=True):
        if uid is None or proto is None or mech is None:
            continue
        kind = f"{proto} {mech}"
        seen = kinds.setdefault(str(uid), [])
        if kind not in seen:
            seen.append(kind)
    at = positions(pa.array(list(kinds), STRING), flows["uid"])
    values = pc.take(pa.array([", ".join(v) for v in kinds.values()], STRING), pa.array(at, mask=at < 0))
    return {**flows, "credentials": values}


def grade(score: float) -> str:
    """The A-F grade of a 0-100 score."""
    return next(g for floor, g in GRADES if score >= floor)


@lru_cache(maxsize=1)
def _default_zones() -> ZoneMap:
    return build_zones()


def _zone_map(zones: ZoneMap | str | Path | Sequence[str] | Sequence[Zone] | None) -> ZoneMap:
    if zones is None:
        return _default_zones()
    if isinstance(zones, ZoneMap):
        return zones
    if isinstance(zones, str | Path):
        return build_zones(zones=zones)
    items = list(zones)
    if all(isinstance(z, Zone) for z in items):
        return build_zones(zones=items)  # type: ignore[arg-type]
    return build_zones(vpc=[str(z) for z in items])


def _taker(at: np.ndarray) -> pa.Array:
    return pa.array(at, mask=at < 0) if (at < 0).any() else pa.array(at)


def _server_names(facts: Facts) -> pa.Array:
    """Per flow (rows of `facts.flow_cols`): SNI, else leaf certificate CN (first session of the flow)."""
    sessions, flows = facts.session_cols, facts.flow_cols
    name = pc.coalesce(pc.cast(sessions["server_name"], STRING), pc.cast(sessions["leaf_subject_cn"], STRING))
    fallback = pc.cast(flows["tls_server_name"], STRING)
    rows = facts.memo.get("session_rows")
    if rows is not None:  # each session is the one of the flow at `rows` (build_facts)
        at = np.full(len(fallback), -1, dtype=np.int64)
        at[rows] = np.arange(len(rows))
        return pc.coalesce(pc.take(name, _taker(at)), fallback)
    # each flow's first session with a name (pandas' groupby-first skipped nulls)
    named = pc.is_valid(name)
    uids, names = pc.filter(pc.cast(sessions["uid"], STRING), named), pc.filter(name, named)
    first = pa.array(first_rows(uids))
    uids, names = pc.take(uids, first), pc.take(names, first)
    keyed = pc.is_valid(uids)
    at = positions(pc.filter(uids, keyed), pc.cast(flows["uid"], STRING))
    return pc.coalesce(pc.take(pc.filter(names, keyed), _taker(at)), fallback)


_RAW = ("uid", "evidence", "rule", "severity")


def _rule_findings(facts: Facts, profile: Profile) -> Cols:
    """The enabled rules' hits: uid, evidence, rule, severity (one finding per rule and flow)."""
    uids: list[pa.Array] = []
    evidence: list[pa.Array] = []
    rules, severities = [], []
    for rid in profile.enabled():
        if rid == SUPPRESSION_EXPIRED:
            continue
        setting = profile.settings[rid]
        found = RULES[rid].predicate(facts, setting.options)
        uid, ev = pc.cast(found.uid, STRING), pc.cast(found.evidence, STRING)
        if not len(uid):
            continue
        if not distinct(uid):  # several sessions of one flow: one finding per flow (its first)
            keep = pa.array(first_rows(uid))
            uid, ev = pc.take(uid, keep), pc.take(ev, keep)
        uids.append(uid)
        evidence.append(ev)
        rules.append(rid)
        severities.append(setting.severity)
    if not uids:
        return {c: pa.array([], STRING) for c in _RAW}
    # each rule's id and severity spread over its rows by Arrow's take, not n Python strings
    which = np.repeat(np.arange(len(uids), dtype=np.int64), [len(u) for u in uids])
    return {"uid": pa.concat_arrays(uids), "evidence": pa.concat_arrays(evidence),
            "rule": from_codes(rules, which), "severity": from_codes(severities, which)}


def _empty_findings() -> Cols:
    return {c: pa.nulls(0, arrow_type(d)) for c, d in FINDINGS.items()}


def _expired_findings(expired: list[Suppression], profile: Profile, now: Any = None) -> Cols:
    """The suppression-expired findings (FINDINGS columns) of expired suppressions."""
    setting = profile.settings[SUPPRESSION_EXPIRED]
    if not expired or not setting.enabled:
        return _empty_findings()
    n = len(expired)
    given: dict[str, pa.Array] = {
        "finding_id": finding_ids(pa.array([f"{SUPPRESSION_EXPIRED}|{s.id}" for s in expired], STRING)),
        "rule": pa.array([SUPPRESSION_EXPIRED] * n, STRING),
        "severity": pa.array([setting.severity] * n, STRING),
        "evidence": pa.array([f"suppression {s.id} for rule {s.rule} expired {s.expires.isoformat()} "
                              f"(reason: {s.reason})" for s in expired], STRING),
        "profile": pa.array([profile.name] * n, STRING),
    }
    return {c: given[c] if c in given else pa.nulls(n, arrow_type(d)) for c, d in FINDINGS.items()}


def _findings_cols(raw: Cols, per_flow: Cols, flow_uids: pa.Array, profile_name: str, unique: bool) -> Cols:
    """The FINDINGS columns of the rules' findings (`raw`: uid, evidence, rule, severity), with their
    flow's columns (`per_flow`, aligned with `flow_uids`: the first flow of a uid), ids and profile.
    `unique`: whether `flow_uids` are distinct."""
    n = length(raw)
    if not n:
        return _empty_findings()
    uid = raw["uid"]
    if not unique:  # the first flow of each uid
        first = pa.array(first_rows(flow_uids))
        flow_uids = pc.take(flow_uids, first)
        per_flow = {c: pc.take(v, first) for c, v in per_flow.items()}
    at = _taker(positions(flow_uids, uid))  # each finding's flow by position, its columns taken
    out: Cols = {
        "finding_id": finding_ids(pc.binary_join_element_wise(raw["rule"], uid, pa.scalar("|", STRING))),
        "uid": uid, "rule": raw["rule"], "severity": raw["severity"],
        **{c: pc.take(v, at) for c, v in per_flow.items()},
        "evidence": raw["evidence"], "profile": from_codes([profile_name], np.zeros(n, dtype=np.int64)),
        "suppressed_by": pa.nulls(n, STRING),
    }
    return {c: _typed(out[c], d) for c, d in FINDINGS.items()}


def _typed(a: pa.Array, dtype: str) -> pa.Array:
    want = arrow_type(dtype)
    return a if a.type == want else pc.cast(a, want)


def _per_flow(flow_uids: pa.Array, findings: Cols, unique: bool) -> tuple[np.ndarray, np.ndarray]:
    """(worst unsuppressed severity rank per flow, -1 for none; unsuppressed finding count per flow);
    `unique`: whether `flow_uids` are distinct."""
    n = len(flow_uids)
    if not unique:  # a flow's uid is unique (a repeated one raises, as it always did)
        raise PolicyError("a flow uid appears more than once in the flows")
    worst = np.full(n, -1, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    if not length(findings):
        return worst, count
    live = pa.array(~notnull(findings["suppressed_by"]) & notnull(findings["uid"]))
    row = positions(flow_uids, pc.filter(findings["uid"], live))
    sev = pc.filter(findings["severity"], live)
    rank = numpy_of(fill(pc.index_in(sev, value_set=pa.array(SEVERITIES, sev.type)), -1)).astype(np.int64)
    ok = row >= 0
    np.maximum.at(worst, row[ok], rank[ok])
    count = np.bincount(row[ok], minlength=n).astype(np.int64)
    return worst, count


def _verdicts(flows: Mapping[str, pa.Array], worst: np.ndarray, profile: Profile) -> np.ndarray:
    """Verdict code per flow (index into VERDICTS)."""
    encrypted = true(flows["encrypted"])
    fail_at, warn_at = SEVERITIES.index(profile.fail_at), SEVERITIES.index(profile.warn_at)
    code = np.select([worst >= fail_at, worst >= warn_at, encrypted], [2, 1, 0], default=3)
    return code.astype(np.int32)


DEST_KEYS = ["destination", "server_port", "server_zone"]
# per-destination sums that add up over chunks of flows (worst: the maximum severity rank, -1 none)
DEST_SUMS = ["flows", "bytes", "enc_flow", "enc_bytes", "decided", "decided_bytes", "findings"]
_SUMS_SCHEMA = pa.schema([("destination", STRING), ("server_port", pa.int64()), ("server_zone", STRING),
                          *[(c, pa.int64()) for c in DEST_SUMS], ("worst", pa.int64())])


def _ints(a: pa.Array) -> np.ndarray:
    return numpy_of(fill(a, 0)).astype(np.int64, copy=False)


def _codes(a: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(code per row, distinct values) of a column without nulls (Arrow's hash, no sort)."""
    encoded = pc.dictionary_encode(a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a)
    return numpy_of(encoded.indices).astype(np.int64, copy=False), encoded.dictionary


def _group_sums(t: pa.Table) -> pa.Table:
    """One row per destination key of per-row (or per-part) sums: the sums added, worst the maximum
    (numpy over hashed keys: Arrow's group_by runs in Acero, whose import imports pandas)."""
    dest, dest_u = _codes(t.column("destination"))
    port, port_u = _codes(t.column("server_port"))
    zone, zone_u = _codes(t.column("server_zone"))
    key = (dest * len(port_u) + port) * len(zone_u) + zone
    ukeys, inverse = np.unique(key, return_inverse=True)
    inverse = inverse.reshape(-1)
    n = len(ukeys)

    def total(c: str) -> np.ndarray:
        out = np.zeros(n, dtype=np.int64)
        np.add.at(out, inverse, numpy_of(t.column(c)).astype(np.int64, copy=False))
        return out

    worst = np.full(n, -1, dtype=np.int64)
    np.maximum.at(worst, inverse, numpy_of(t.column("worst")).astype(np.int64, copy=False))
    columns = {
        "destination": pc.take(dest_u, pa.array(ukeys // (len(port_u) * len(zone_u)))),
        "server_port": pc.take(port_u, pa.array((ukeys // len(zone_u)) % len(port_u))),
        "server_zone": pc.take(zone_u, pa.array(ukeys % len(zone_u))),
        **{c: total(c) for c in DEST_SUMS}, "worst": worst,
    }
    return pa.table(columns, schema=_SUMS_SCHEMA)


def destination_sums(flows: Mapping[str, pa.Array], worst_f: np.ndarray, count_f: np.ndarray, names: pa.Array,
                     clear: np.ndarray) -> pa.Table:
    """Per (destination, server_port, server_zone) of `flows` (zoned Arrow columns): the sums the
    destinations frame is made of (`destinations_from_sums`), as an Arrow table. Sums of several
    chunks of flows add up (`add_destination_sums`), so a streamed audit keeps these, not the flows.
    A missing port is -1, a missing zone "?". `clear`: the cleartext mask (`cleartext_mask`)."""
    n = len(worst_f)
    if n == 0:
        return _SUMS_SCHEMA.empty_table()
    encm = true(flows["encrypted"])
    # decided: encrypted, or cleartext application data; a failed handshake or an undecided flow is
    # neither, so it counts as not judged rather than as unencrypted
    decided = encm | np.asarray(clear, dtype=bool)
    b = _ints(flows["ip_bytes_to_server"]) + _ints(flows["ip_bytes_to_client"])
    rows = pa.table({
        "destination": pc.coalesce(pc.cast(names, STRING), pc.cast(flows["server_ip"], STRING), pa.scalar("?", STRING)),
        "server_port": fill(pc.cast(flows["server_port"], pa.int64()), -1),
        "server_zone": fill(pc.cast(flows["server_zone"], STRING), "?"),
        "flows": np.ones(n, dtype=np.int64), "bytes": b, "enc_flow": encm.astype(np.int64),
        "enc_bytes": np.where(encm, b, 0), "decided": decided.astype(np.int64),
        "decided_bytes": np.where(decided, b, 0), "findings": np.asarray(count_f, dtype=np.int64),
        "worst": np.asarray(worst_f, dtype=np.int64),
    })
    return _group_sums(rows)


def add_destination_sums(parts: Sequence[pa.Table]) -> pa.Table:
    """The sums of several chunks' `destination_sums`, one row per destination."""
    parts = [p for p in parts if len(p)]
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return _SUMS_SCHEMA.empty_table()
    return _group_sums(pa.concat_tables(parts))


def _scored(g: pa.Table) -> dict[str, np.ndarray]:
    """Per row of destination sums: shares, score (NaN: not judged) and grade (None: not judged)."""
    col = {c: numpy_of(g.column(c)).astype(np.int64, copy=False) for c in (*DEST_SUMS, "worst")}
    flows_n = col["flows"].astype(float)
    bytes_n = col["bytes"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        flow_share = col["enc_flow"].astype(float) / flows_n
        byte_share = np.where(bytes_n > 0, col["enc_bytes"].astype(float) / bytes_n, np.nan)
        judged_share = np.where(col["decided_bytes"] > 0,
                                col["enc_bytes"].astype(float) / col["decided_bytes"].astype(float),
                                np.where(col["decided"] > 0, flow_share, np.nan))
    worst = col["worst"]
    penalty = np.array([PENALTY[s] for s in SEVERITIES] + [0], dtype=float)[worst]  # -1 -> last (0)
    judged = (col["decided"] > 0) | (worst >= SEVERITIES.index("low"))  # info alone judges nothing
    base = np.where(np.isnan(judged_share), 100.0, 100.0 * judged_share)
    score = np.clip(np.minimum(base, 100.0 - penalty), 0, 100).round()
    grades = np.array([grade(x) if j else None for x, j in zip(score.tolist(), judged.tolist(), strict=True)],
                      dtype=object)
    return {**col, "flow_share": flow_share, "byte_share": byte_share, "score": np.where(judged, score, np.nan),
            "grade": grades}


def destinations_from_sums(g: pa.Table) -> pd.DataFrame:
    """The destinations frame (DESTINATIONS) of `destination_sums`: shares, worst severity, score, grade."""
    if len(g) == 0:
        return frame_from_arrow({c: pa.nulls(0, arrow_type(d)) for c, d in DESTINATIONS.items()}, DESTINATIONS)
    g = pc.take(g, pc.sort_indices(g, sort_keys=[(k, "ascending") for k in DEST_KEYS]))
    s = _scored(g)
    port = numpy_of(g.column("server_port")).astype(np.int64, copy=False)
    zone = g.column("server_zone").combine_chunks()
    columns = {
        "destination": g.column("destination").combine_chunks(),
        "server_port": pa.array(port, pa.int64(), mask=port < 0),
        "server_zone": pc.if_else(pc.equal(zone, pa.scalar("?", zone.type)), pa.scalar(None, zone.type), zone),
        "flows": pa.array(s["flows"]), "bytes": pa.array(s["bytes"]),
        "encrypted_flow_share": pa.array(s["flow_share"], from_pandas=True),
        "encrypted_byte_share": pa.array(s["byte_share"], from_pandas=True),
        "unjudged_flows": pa.array(s["flows"] - s["decided"]), "findings": pa.array(s["findings"]),
        "worst_severity": from_codes(SEVERITIES, s["worst"]),
        "score": pa.array(s["score"], from_pandas=True),
        "grade": pa.array(s["grade"], STRING),
    }
    out = frame_from_arrow({c: pc.cast(columns[c], arrow_type(d)) for c, d in DESTINATIONS.items()}, DESTINATIONS)
    return out.sort_values(["score", "bytes", "destination", "server_port", "server_zone"],
                           ascending=[True, False, True, True, True], na_position="last",
                           kind="stable").reset_index(drop=True)


def worst_destinations(g: pa.Table, k: int = 5) -> list[tuple[str, str, str, str]]:
    """The `k` worst destinations of destination sums as (destination, port, grade, score) texts, in
    the order the audit summary lists them: `destinations_from_sums(g)` sorted by score, then
    destination (stable; not judged last), its first `k` rows, a missing value "<NA>" (as pandas
    printed it). Without pandas: the streamed audit's summary."""
    if len(g) == 0:
        return []
    s = _scored(g)
    dest = g.column("destination").to_pylist()
    port = numpy_of(g.column("server_port")).astype(np.int64, copy=False)
    zone = g.column("server_zone").to_pylist()
    score = s["score"]
    missing = np.isnan(score)
    # destinations_from_sums' order (score, bytes descending, destination, port, zone; a missing
    # score, port or zone last), then pandas' stable sort by (score, destination) over it
    order = sorted(range(len(dest)), key=lambda i: (
        bool(missing[i]), 0.0 if missing[i] else float(score[i]), dest[i], -int(s["bytes"][i]),
        bool(port[i] < 0), int(port[i]), zone[i] == "?", zone[i]))
    out = []
    for i in order[:k]:
        out.append((str(dest[i]), "<NA>" if port[i] < 0 else str(int(port[i])),
                    "<NA>" if s["grade"][i] is None else str(s["grade"][i]),
                    "<NA>" if missing[i] else str(int(score[i]))))
    return out


def timestamp(now: Any) -> pd.Timestamp:
    """`now` (None: the current time) as a UTC timestamp; PolicyError when it is not a time."""
    from analyzer._pandas import pd

    try:
        stamp = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    except (ValueError, TypeError) as exc:
        raise PolicyError(f"not a date or time: {now!r}") from exc
    if stamp is pd.NaT:
        raise PolicyError(f"not a date or time: {now!r}")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def today(now: Any) -> _dt.date:
    """The UTC date of `now` (None: today), as `timestamp(now).date()`, without pandas for a date,
    a datetime or an ISO 8601 text (anything else goes through `timestamp`)."""
    if now is None:
        return _dt.datetime.now(_dt.UTC).date()
    if isinstance(now, _dt.datetime):
        return (now if now.tzinfo is None else now.astimezone(_dt.UTC)).date()
    if isinstance(now, _dt.date):
        return now
    if isinstance(now, str):
        try:
            parsed = _dt.datetime.fromisoformat(now.strip())
        except ValueError:
            return timestamp(now).date()
        return (parsed if parsed.tzinfo is None else parsed.astimezone(_dt.UTC)).date()
    return timestamp(now).date()


@dataclass(frozen=True)
class Judged:
    """What `judge` makes of some flows (Arrow columns): their findings (FINDINGS columns, not
    sorted, no suppression-expired), the flows with zones, verdicts and finding counts, their
    destination sums and each flow's worst severity rank."""

    findings: Cols
    flows: Cols
    sums: pa.Table
    worst: np.ndarray
    names: pa.Array  # per flow: SNI, else leaf certificate CN (the destination's name)


def judge(flows: Mapping[str, pa.Array], tls: Mapping[str, pa.Array] | None, certs: Mapping[str, pa.Array] | None,
          *, zones: ZoneMap, profile: Profile, active: Sequence[Suppression], now: Any,
          credentials: Mapping[str, pa.Array] | None = None, ftp_data: Mapping[str, pa.Array] | None = None,
          timings: dict[str, float] | None = None) -> Judged:
    """The rules of `profile` over these flows and the facts of their sessions (Arrow columns,
    `analyzer.policy._cols`), suppressed by the `active` suppressions: the work of `evaluate` that
    is the same on the whole analysis and on each chunk of a streamed one
    (`analyzer.policy.stage`), whose results add up. `timings`, when given, accumulates CPU seconds
    spent: `zones` (the zone lookup), `rules` (the predicates) and `judge` (all of this call)."""
    t0 = time.process_time()
    fl = conform_cols(flows, read_schema())
    if credentials is not None and length(credentials) and "credentials" not in fl:
        fl = _with_credentials(fl, credentials)
    t1 = time.process_time()
    zoned = zone_cols(fl, zones)
    t2 = time.process_time()
    facts = build_facts(fl, zoned, tls, certs, now, ftp_data)
    zf = facts.flow_cols
    names = _server_names(facts)

    t3 = time.process_time()
    raw = _rule_findings(facts, profile)
    t4 = time.process_time()
    per_flow = {
        "direction": zf["direction"], "transport": zf["transport"], "client_ip": zf["client_ip"],
        "client_port": zf["client_port"], "server_ip": zf["server_ip"], "server_port": zf["server_port"],
        "server_name": names, "client_zone": zf["client_zone"], "server_zone": zf["server_zone"],
        "first_seen": zf["ts_start"], "last_seen": zf["ts_end"],
    }
    flow_uids = pc.cast(zf["uid"], STRING)
    unique = bool(facts.memo["unique_flows"])  # distinct uids (build_facts counted them once)
    findings = _findings_cols(raw, per_flow, flow_uids, profile.name, unique)
    if length(findings) and active:
        open_ = np.ones(length(findings), dtype=bool)
        by = np.full(length(findings), -1, dtype=np.int64)
        for i, s in enumerate(active):
            m = match_suppression(findings, s) & open_
            by[m] = i
            open_ &= ~m
        findings["suppressed_by"] = from_codes([s.id for s in active], by)

    worst, count = _per_flow(flow_uids, findings, unique)
    code = _verdicts(zf, worst, profile)
    out_flows = {**zf, "verdict": from_codes(VERDICTS, code), "finding_count": pa.array(count.astype(np.int32))}
    sums = destination_sums(zf, worst, count, names, cleartext_mask(facts))
    if timings is not None:
        for key, spent in (("zones", t2 - t1), ("rules", t4 - t3), ("judge", time.process_time() - t0)):
            timings[key] = timings.get(key, 0.0) + spent
    return Judged(findings, out_flows, sums, worst, names)


def findings_frame(parts: Sequence[Mapping[str, pa.Array]]) -> pd.DataFrame:
    """The FINDINGS frame (pandas, declared dtypes) of findings columns, in their reported order."""
    parts = [p for p in parts if length(p)]
    cols = {c: pa.concat_arrays([_typed(p[c], d) for p in parts]) if parts else pa.nulls(0, arrow_type(d))
            for c, d in FINDINGS.items()}
    return sort_findings(frame_from_arrow(cols, FINDINGS))


def sort_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """Findings in their reported order: most severe first, then rule, first seen, flow."""
    if len(findings):
        order = findings["severity"].map({s: -i for i, s in enumerate(SEVERITIES)})
        findings = (findings.assign(_o=order).sort_values(["_o", "rule", "first_seen", "uid"], kind="stable",
                                                          na_position="last")
                    .drop(columns="_o").reset_index(drop=True))
    return findings.astype(dt.of(FINDINGS))


def evaluate(
    flows: pd.DataFrame,
    tls: pd.DataFrame | None = None,
    certs: pd.DataFrame | None = None,
    *,
    zones: ZoneMap | str | Path | Sequence[str] | Sequence[Zone] | None = None,
    profile: Profile | str | Path | None = None,
    suppressions: str | Path | Sequence[Suppression] | None = None,
    now: Any = None,
    credentials: pd.DataFrame | None = None,
    ftp_data: pd.DataFrame | None = None,
) -> PolicyResult:
    """Judge the frames of an analysis (`analyze()`'s flows, tls, certs).

    `zones`: a `ZoneMap` (`build_zones`), a zones TOML path, VPC CIDRs, or None (no internal zone:
    directions are unknown). `profile`: a built-in name (default sec09), a profile TOML path or a
    `Profile`. `suppressions`: a suppressions TOML path or `Suppression` objects. `now`: the date
    suppressions are judged at (default: the current time, UTC); it never affects certificate
    rules, which judge at the time each session was seen. `credentials`: the analysis' credentials
    frame (the plaintext dissectors'): each flow that sent a secret in the clear gets a
    `credentials` column ("http basic", "ftp user_pass", ...) that cleartext-credentials reads.
    `ftp_data`: the analysis' ftp_data frame (data channels announced by FTP control flows), which
    ftp-data-unprotected links to the data flows.

    The frames are judged as Arrow columns (`judge`); the results are pandas frames again.
    """
    zmap = _zone_map(zones)
    prof = load_profile(profile)
    sups = load_suppressions(suppressions)
    stamp = timestamp(now)
    day = stamp.date()
    active = [s for s in sups if not s.expired(day)]
    full = conform(flows, flow_schema()).reset_index(drop=True)

    def cols(frame: pd.DataFrame | None) -> Cols | None:
        return None if frame is None else frame_cols(frame)

    judged = judge(frame_cols(full, FLOW_READS), cols(tls), cols(certs), zones=zmap, profile=prof, active=active,
                   now=stamp, credentials=cols(credentials), ftp_data=cols(ftp_data))
    exp = _expired_findings([s for s in sups if s.expired(day)], prof, stamp)
    # the judged flows frame: every flows column, then the columns the policy adds
    out = full.copy()
    added = {c: "string" for c in ("credentials",) if c in judged.flows and c not in full.columns}
    for c, d in {**added, **FLOW_COLUMNS}.items():
        out[c] = pandas_array(pc.cast(judged.flows[c], arrow_type(d)), d)
    return PolicyResult(findings_frame([judged.findings, exp]), out, destinations_from_sums(judged.sums), prof, zmap)
