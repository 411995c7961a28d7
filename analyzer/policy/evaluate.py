"""`evaluate()`: facts + zones + profile + suppressions -> findings, flow verdicts, destinations.

**Findings** (`FINDINGS` schema): one row per (rule, flow) an enabled rule flags, plus one per
expired suppression. `finding_id` is stable across runs: a 64-bit hash (pandas'
`hash_pandas_object`, fixed key) of ``rule|uid``, or ``suppression-expired|<suppression id>``, as 16
hex digits; `uid` is itself deterministic per flow. `server_name` is the SNI, else the leaf
certificate's CN. `first_seen`/`last_seen` are the flow's start and end. `suppressed_by` names the
first suppression (in file order) that matches a finding and has not expired.

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

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer.dissect import flow_schema
from analyzer.policy._cols import Hits
from analyzer.policy._rule import SEVERITIES, dt
from analyzer.policy.errors import PolicyError
from analyzer.policy.facts import Facts, build_facts, conform, distinct, empty_frame, positions, read_schema
from analyzer.policy.profiles import Profile, load_profile
from analyzer.policy.rules import RULES, SUPPRESSION_EXPIRED
from analyzer.policy.rules_traffic import cleartext
from analyzer.policy.suppressions import Suppression, load_suppressions, match_suppression
from analyzer.policy.zones import Zone, ZoneMap, build_zones, strings_from_codes, zone_flows

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DESTINATIONS", "FINDINGS", "FLOW_COLUMNS", "Judged", "PolicyResult", "add_destination_sums",
           "destination_sums", "destinations_from_sums", "evaluate", "grade", "judge", "sort_findings",
           "timestamp"]

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


def _with_credentials(flows: pd.DataFrame, credentials: pd.DataFrame) -> pd.DataFrame:
    """`flows` plus a `credentials` column: per flow, the kinds of secrets it sent in the clear
    ("http basic, ftp user_pass"), from the credentials frame (never the secrets: it has none)."""
    from analyzer._pandas import pd

    clear = credentials[credentials["secret_in_clear"].astype(dt.boolean).to_numpy(dtype=bool, na_value=False)]
    kind = (clear["protocol"].astype(dt.string) + " " + clear["mechanism"].astype(dt.string)).astype(object)
    pairs = pd.DataFrame({"uid": clear["uid"].astype(str).to_numpy(), "kind": kind.to_numpy()}).dropna()
    # the distinct kinds of each flow in order of appearance, joined (one Python join per flow, not
    # a lambda per group over a Series)
    pairs = pairs.drop_duplicates()
    kinds = pd.Series({uid: ", ".join(group) for uid, group in pairs.groupby("uid", sort=False)["kind"]},
                      dtype=object)
    # each flow's kinds found by Arrow's hash lookup of its uid (a Series.map converted every uid to Python)
    import pyarrow as pa
    import pyarrow.compute as pc

    uids = pa.array(flows["uid"].astype(dt.string).array)
    at = pc.index_in(uids, value_set=pa.array([str(u) for u in kinds.index], type=uids.type))
    values = pa.array([str(v) for v in kinds.tolist()], type=uids.type).take(at)
    return flows.assign(credentials=pd.array(values, dtype=dt.string))


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


def _finding_ids(keys: pd.Series) -> pd.Series:
    """Stable 16-hex-digit ids of key strings."""
    import pyarrow as pa

    from analyzer._pandas import pd

    hashed = pd.util.hash_pandas_object(keys.astype(object), index=False).to_numpy(dtype=np.uint64)
    # 16 hex digits each, in one pass over the big-endian bytes (an f-string per id was 5x slower)
    hexed = np.frombuffer(hashed.astype(">u8").tobytes().hex().encode("ascii"), dtype="S16")
    return pd.Series(pd.array(pa.array(hexed, type=pa.binary(16)).cast(pa.string()), dtype=dt.string),
                     index=keys.index)


def _server_names(facts: Facts) -> pd.Series:
    """Per flow (index of `facts.flows`): SNI, else leaf certificate CN (first session of the flow)."""
    from analyzer._pandas import pd

    sessions, flows = facts.sessions, facts.flows
    name = sessions["server_name"].astype(dt.string).fillna(sessions["leaf_subject_cn"].astype(dt.string))
    fallback = flows["tls_server_name"].astype(dt.string)
    rows = facts.memo.get("session_rows")
    if rows is not None:  # each session is the one of the flow at `rows` (build_facts)
        at = np.full(len(flows), -1, dtype=np.int64)
        at[rows] = np.arange(len(rows))
        by_flow = pd.Series(name.array.take(at, allow_fill=True), index=flows.index)
        return by_flow.fillna(fallback)
    per_uid = name.groupby(sessions["uid"].astype(dt.string), sort=False).first()
    by_flow = flows["uid"].astype(dt.string).map(per_uid)
    return by_flow.astype(dt.string).fillna(fallback)


def _rule_findings(facts: Facts, profile: Profile) -> pd.DataFrame:
    from analyzer._pandas import pd

    parts, rules, severities = [], [], []
    for rid in profile.enabled():
        if rid == SUPPRESSION_EXPIRED:
            continue
        setting = profile.settings[rid]
        found = RULES[rid].predicate(facts, setting.options)
        if isinstance(found, Hits):  # a rule written over Arrow columns (analyzer.policy._cols)
            found = pd.DataFrame({"uid": pd.array(found.uid, dtype=dt.string),
                                  "evidence": pd.array(found.evidence, dtype=dt.string)})
        if len(found):
            if not distinct(found["uid"].array):
                found = found.drop_duplicates("uid")  # several sessions of one flow: one finding per flow
            parts.append(found[["uid", "evidence"]])
            rules.append(rid)
            severities.append(setting.severity)
    if not parts:
        return pd.DataFrame({"uid": pd.Series(dtype=dt.string), "rule": pd.Series(dtype=dt.string),
                             "severity": pd.Series(dtype=dt.string), "evidence": pd.Series(dtype=dt.string)})
    raw = pd.concat(parts, ignore_index=True)
    # each rule's id and severity spread over its rows by Arrow's take, not n Python strings
    which = np.repeat(np.arange(len(parts), dtype=np.int32), [len(p) for p in parts])
    return raw.assign(rule=strings_from_codes(rules, which), severity=strings_from_codes(severities, which))


def _expired_findings(expired: list[Suppression], profile: Profile, now: pd.Timestamp) -> pd.DataFrame:
    from analyzer._pandas import pd

    setting = profile.settings[SUPPRESSION_EXPIRED]
    if not expired or not setting.enabled:
        return empty_frame(FINDINGS)
    ids = _finding_ids(pd.Series([f"{SUPPRESSION_EXPIRED}|{s.id}" for s in expired], dtype=dt.string))
    rows: dict[str, list[str]] = {
        "rule": [SUPPRESSION_EXPIRED] * len(expired),
        "severity": [setting.severity] * len(expired),
        "evidence": [f"suppression {s.id} for rule {s.rule} expired {s.expires.isoformat()} (reason: {s.reason})"
                     for s in expired],
        "profile": [profile.name] * len(expired),
    }
    frame = pd.DataFrame({k: pd.Series(v, dtype=dt.string) for k, v in rows.items()})
    frame["finding_id"] = ids.to_numpy()
    for col, dtype in FINDINGS.items():
        if col not in frame:
            frame[col] = pd.Series(index=frame.index, dtype=dtype)
    return frame[list(FINDINGS)]


def _findings_frame(raw: pd.DataFrame, per_flow: dict[str, pd.Series], flow_uids: pd.Index,
                    profile_name: str) -> pd.DataFrame:
    """The FINDINGS frame of the rules' findings (`raw`: uid, evidence, rule, severity), with their
    flow's columns (`per_flow`, aligned with `flow_uids`: the first flow of a uid), ids and profile."""
    from analyzer._pandas import pd

    if not len(raw):
        return empty_frame(FINDINGS)
    uid = raw["uid"].astype(dt.string)
    if distinct(flow_uids):  # each finding's flow by position, its columns taken (a merge cost ~3x)
        at = positions(flow_uids, uid)
        cols = {c: v.array.take(at, allow_fill=True) for c, v in per_flow.items()}
    else:
        per = pd.DataFrame({"uid": pd.Series(flow_uids, index=per_flow["direction"].index), **per_flow})
        per = per.drop_duplicates("uid")
        joined = raw[["uid"]].assign(uid=uid).merge(per, on="uid", how="left")
        cols = {c: joined[c].array for c in per_flow}
    n = len(raw)
    out = {"finding_id": _finding_ids(raw["rule"].astype(dt.string) + "|" + uid).array, "uid": uid.array,
           "rule": raw["rule"].array, "severity": raw["severity"].array, **cols, "evidence": raw["evidence"].array,
           "profile": strings_from_codes([profile_name], np.zeros(n, dtype=np.int32)),
           "suppressed_by": pd.array([None] * n, dtype=dt.string)}
    return pd.DataFrame({c: out[c] for c in FINDINGS}, copy=False).astype(dt.of(FINDINGS))


def _per_flow(flow_uids: pd.Index, findings: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(worst unsuppressed severity rank per flow, -1 for none; unsuppressed finding count per flow)."""
    from analyzer._pandas import pd

    live = (findings["suppressed_by"].isna() & findings["uid"].notna()).to_numpy(dtype=bool)
    uids = findings["uid"].astype(dt.string)[live]
    if distinct(flow_uids):
        row = positions(flow_uids, uids)
    else:  # a flow's uid is unique (a repeated one raises, as it always did)
        row = pd.Index(flow_uids).get_indexer(pd.Index(uids))
    codes, names = findings["severity"].astype(dt.string)[live].factorize()
    table = np.array([SEVERITIES.index(str(v)) for v in names] + [-1], dtype=np.int64)
    rank = table[np.where(codes < 0, len(names), codes)]
    ok = row >= 0
    n = len(flow_uids)
    worst = np.full(n, -1, dtype=np.int64)
    np.maximum.at(worst, row[ok], rank[ok])
    count = np.bincount(row[ok], minlength=n).astype(np.int64)
    return worst, count


def _verdicts(flows: pd.DataFrame, worst: np.ndarray, profile: Profile) -> np.ndarray:
    """Verdict code per flow (index into VERDICTS)."""
    encrypted = (flows["encrypted"].astype(dt.boolean) == True).to_numpy(dtype=bool, na_value=False)  # noqa: E712
    fail_at, warn_at = SEVERITIES.index(profile.fail_at), SEVERITIES.index(profile.warn_at)
    code = np.select([worst >= fail_at, worst >= warn_at, encrypted], [2, 1, 0], default=3)
    return code.astype(np.int32)


DEST_KEYS = ["destination", "server_port", "server_zone"]
# per-destination sums that add up over chunks of flows (worst: the maximum severity rank, -1 none)
DEST_SUMS = ["flows", "bytes", "enc_flow", "enc_bytes", "decided", "decided_bytes", "findings"]


def destination_sums(flows: pd.DataFrame, worst_f: np.ndarray, count_f: np.ndarray, names: pd.Series,
                     clear: np.ndarray | None = None) -> pd.DataFrame:
    """Per (destination, server_port, server_zone) of `flows` (zoned): the sums the destinations
    frame is made of (`destinations_from_sums`). Sums of several chunks of flows add up
    (`add_destination_sums`), so a streamed audit keeps these, not the flows. A missing port is -1,
    a missing zone "?"."""
    from analyzer._pandas import pd

    if len(flows) == 0:
        return pd.DataFrame({"destination": pd.Series(dtype=object), "server_port": pd.Series(dtype=np.int64),
                             "server_zone": pd.Series(dtype=object),
                             **{c: pd.Series(dtype=np.int64) for c in (*DEST_SUMS, "worst")}})
    enc = flows["encrypted"].astype(dt.boolean)
    # decided: encrypted, or cleartext application data; a failed handshake or an undecided flow is
    # neither, so it counts as not judged rather than as unencrypted
    if clear is None:  # `cleartext(flows)`, unless the rules made it (cleartext_mask)
        clear = cleartext(flows).to_numpy(dtype=bool)
    decided = (enc == True).to_numpy(dtype=bool, na_value=False) | clear  # noqa: E712
    nbytes = (flows["ip_bytes_to_server"].astype(dt.Int64).fillna(0)
              + flows["ip_bytes_to_client"].astype(dt.Int64).fillna(0))
    # group by (destination, port, zone) with factorized keys and numpy sums: pandas' groupby-agg
    # over three object keys was a fifth of evaluate() on large captures
    dest = names.fillna(flows["server_ip"].astype(dt.string)).fillna("?")
    port_codes, port_u = pd.factorize(flows["server_port"].astype(dt.Int64).fillna(-1))
    dest_codes, dest_u = pd.factorize(dest)
    zone_codes, zone_u = pd.factorize(flows["server_zone"].astype(dt.string).fillna("?"))
    key = (dest_codes.astype(np.int64) * len(port_u) + port_codes) * len(zone_u) + zone_codes
    ukeys, inverse = np.unique(key, return_inverse=True)
    n = len(ukeys)
    b = nbytes.to_numpy(dtype=np.int64)
    encm = enc.to_numpy(dtype=bool, na_value=False)

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=values.astype(float), minlength=n).astype(np.int64)

    worst_g = np.full(n, -1, dtype=np.int64)
    np.maximum.at(worst_g, inverse, worst_f)
    return pd.DataFrame({
        "destination": np.asarray(dest_u.tolist(), dtype=object)[ukeys // (len(port_u) * len(zone_u))],
        "server_port": np.asarray(port_u.tolist(), dtype=np.int64)[(ukeys // len(zone_u)) % len(port_u)],
        "server_zone": np.asarray(zone_u.tolist(), dtype=object)[ukeys % len(zone_u)],
        "flows": np.bincount(inverse, minlength=n).astype(np.int64), "bytes": total(b), "enc_flow": total(encm),
        "enc_bytes": total(np.where(encm, b, 0)), "decided": total(decided),
        "decided_bytes": total(np.where(decided, b, 0)), "findings": total(count_f), "worst": worst_g,
    })


def add_destination_sums(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The sums of several chunks' `destination_sums`, one row per destination."""
    from analyzer._pandas import pd

    parts = [p for p in parts if len(p)]
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return destination_sums(pd.DataFrame(), np.zeros(0, np.int64), np.zeros(0, np.int64), pd.Series(dtype="string"))
    both = pd.concat(parts, ignore_index=True)
    agg = {**dict.fromkeys(DEST_SUMS, "sum"), "worst": "max"}
    return both.groupby(DEST_KEYS, sort=False, as_index=False).agg(agg)


def destinations_from_sums(g: pd.DataFrame) -> pd.DataFrame:
    """The destinations frame (DESTINATIONS) of `destination_sums`: shares, worst severity, score, grade."""
    from analyzer._pandas import pd

    if len(g) == 0:
        return empty_frame(DESTINATIONS)
    g = g.sort_values(DEST_KEYS, kind="stable").reset_index(drop=True)
    flows_n = g["flows"].to_numpy(dtype=float)
    bytes_n = g["bytes"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        flow_share = g["enc_flow"].to_numpy(dtype=float) / flows_n
        byte_share = np.where(bytes_n > 0, g["enc_bytes"].to_numpy(dtype=float) / bytes_n, np.nan)
        judged_share = np.where(g["decided_bytes"].to_numpy() > 0,
                                g["enc_bytes"].to_numpy(dtype=float) / g["decided_bytes"].to_numpy(dtype=float),
                                np.where(g["decided"].to_numpy() > 0, flow_share, np.nan))
    worst = g["worst"].to_numpy(dtype=np.int64)
    penalty = np.array([PENALTY[s] for s in SEVERITIES] + [0], dtype=float)[worst]  # -1 -> last (0)
    judged = (g["decided"].to_numpy() > 0) | (worst >= SEVERITIES.index("low"))  # info alone judges nothing
    base = np.where(np.isnan(judged_share), 100.0, 100.0 * judged_share)
    score = np.clip(np.minimum(base, 100.0 - penalty), 0, 100).round()
    grades = np.array([grade(x) for x in score], dtype=object)
    port = g["server_port"].astype(dt.Int64)
    zone = g["server_zone"].astype(dt.string)
    out = pd.DataFrame({
        "destination": g["destination"].astype(dt.string),
        "server_port": port.mask(port < 0).astype(dt.Int32),
        "server_zone": zone.mask(zone == "?"),
        "flows": g["flows"].astype(dt.Int64),
        "bytes": g["bytes"].astype(dt.Int64),
        "encrypted_flow_share": pd.Series(flow_share, index=g.index).astype(dt.Float64),
        "encrypted_byte_share": pd.Series(byte_share, index=g.index).astype(dt.Float64),
        "unjudged_flows": (g["flows"] - g["decided"]).astype(dt.Int64),
        "findings": g["findings"].astype(dt.Int64),
        "worst_severity": strings_from_codes(SEVERITIES, worst),
        "score": pd.Series(np.where(judged, score, np.nan), index=g.index).astype(dt.Float64).astype(dt.Int16),
        "grade": pd.Series(grades, index=g.index).where(judged).astype(dt.string),
    })
    return out.sort_values(["score", "bytes", "destination", "server_port", "server_zone"],
                           ascending=[True, False, True, True, True], na_position="last",
                           kind="stable").reset_index(drop=True)


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


@dataclass(frozen=True)
class Judged:
    """What `judge` makes of some flows: their findings (not sorted, no suppression-expired), the
    flows with zones and verdicts, their destination sums and each flow's worst severity rank."""

    findings: pd.DataFrame
    flows: pd.DataFrame
    sums: pd.DataFrame
    worst: np.ndarray
    names: pd.Series  # per flow: SNI, else leaf certificate CN (the destination's name)


def judge(flows: pd.DataFrame, tls: pd.DataFrame | None, certs: pd.DataFrame | None, *, zones: ZoneMap,
          profile: Profile, active: Sequence[Suppression], now: pd.Timestamp,
          credentials: pd.DataFrame | None = None, ftp_data: pd.DataFrame | None = None,
          timings: dict[str, float] | None = None) -> Judged:
    """The rules of `profile` over these flows and the facts of their sessions, suppressed by the
    `active` suppressions: the work of `evaluate` that is the same on the whole analysis and on
    each chunk of a streamed one (`analyzer.policy.stage`), whose results add up. `timings`, when
    given, accumulates CPU seconds spent: `zones` (the zone lookup), `rules` (the predicates) and
    `judge` (all of this call)."""
    from analyzer._pandas import pd

    t0 = time.process_time()
    flows = conform(flows, read_schema()).reset_index(drop=True)
    if credentials is not None and len(credentials) and "credentials" not in flows.columns:
        flows = _with_credentials(flows, credentials)
    t1 = time.process_time()
    zoned = zone_flows(flows, zones) if len(flows) else empty_frame(
        {"client_zone": "string", "server_zone": "string", "direction": "string"})
    t2 = time.process_time()
    facts = build_facts(flows, zoned, tls, certs, now, ftp_data)
    zf = facts.flows
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
    flow_uids = pd.Index(zf["uid"].astype(dt.string))
    findings = _findings_frame(raw, per_flow, flow_uids, profile.name)
    if len(findings):
        open_ = np.ones(len(findings), dtype=bool)
        by = np.full(len(findings), None, dtype=object)
        for s in active:
            m = match_suppression(findings, s) & open_
            by[m] = s.id
            open_ &= ~m
        findings["suppressed_by"] = pd.array(by, dtype=dt.string)

    worst, count = _per_flow(flow_uids, findings)
    code = _verdicts(zf, worst, profile)
    out_flows = zf.copy()
    out_flows["verdict"] = strings_from_codes(VERDICTS, code)
    out_flows["finding_count"] = pd.array(count, dtype=dt.Int32)
    sums = destination_sums(zf, worst, count, names, facts.memo.get("cleartext"))
    if timings is not None:
        for key, spent in (("zones", t2 - t1), ("rules", t4 - t3), ("judge", time.process_time() - t0)):
            timings[key] = timings.get(key, 0.0) + spent
    return Judged(findings, out_flows, sums, worst, names)


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
    """
    from analyzer._pandas import pd

    zmap = _zone_map(zones)
    prof = load_profile(profile)
    sups = load_suppressions(suppressions)
    stamp = timestamp(now)
    today = stamp.date()
    active = [s for s in sups if not s.expired(today)]
    # the judged flows frame has every flows column (judge conforms only those the rules read)
    judged = judge(conform(flows, flow_schema()), tls, certs, zones=zmap, profile=prof, active=active, now=stamp,
                   credentials=credentials, ftp_data=ftp_data)
    findings = judged.findings
    exp = _expired_findings([s for s in sups if s.expired(today)], prof, stamp)
    if len(exp):
        findings = pd.concat([findings, exp], ignore_index=True) if len(findings) else exp
    return PolicyResult(sort_findings(findings), judged.flows, destinations_from_sums(judged.sums), prof, zmap)
