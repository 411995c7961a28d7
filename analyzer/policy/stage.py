"""The policy as a collector stage: a streamed audit judges flows chunk by chunk, in bounded memory.

`PolicyStage` is an `analyzer.pipeline.Stage`: the collector hands it the rows of the frames it
`reads` (certs, credentials, ftp_data) as the dissectors make them, then each chunk of ended
flows (`on_flows`), whose rows it has then all seen. It reads no `tls` row: the TLS family carries
the session facts the rules read as flow columns (`facts`), so the TLS dissector makes no tls row
and keeps its fast ClientHello path in a streamed audit. Per chunk it runs `evaluate.judge` - the same
rules, zones and suppressions as `evaluate()` on a whole analysis - and

- writes the chunk's findings to `findings_sink` as they are made (an Arrow table to its
  `write_table` when it has one, as `analyzer.report.stream`'s sinks do, else a pandas frame to
  its `write`), or keeps them when none is given;
- adds the chunk's zone, verdict and finding-count columns to the flows (its `columns`);
- adds the chunk's destination sums (flows, bytes, encrypted shares, worst severity) to a running
  total, from which `destinations()` makes the destinations frame at the end;
- counts verdicts, findings by rule and severity, and flows not judged (`tally`), for the summary.

What it keeps between chunks is small: the certificates seen (one row per distinct certificate,
as the collector's own `certs` frame keeps them), the destination sums (one row per destination),
the tallies, and what ftp-data-unprotected needs across chunks. That rule links a data flow to the
announcement its control flow made; the control flow usually ends after its data flows, so its
`ftp_data` rows arrive in a later chunk than the data flow. The stage keeps the flows that rule
could flag (TCP, payload, not shown encrypted: their few columns) for `horizon_s` seconds of
capture time after the latest flow end seen (the active timeout plus the idle timeout plus the
rule's window by default: no control flow ending later can have started before), and at most
`max_pending` of them; and the announcements (with their control flow's times) as long. A finding
made late counts where the data flow's destination and verdict were counted. Beyond those bounds
a link is missed (said in `stats`), never a wrong finding made.

Everything per chunk is Arrow columns and numpy (`analyzer.policy._cols`): a streamed audit
never imports pandas for the policy (issue 12 §6); `findings()` and `destinations()`, the API's
frames, are made in pandas at the end.

Certificates: a session's certificate rows reach the stage before the session's flow chunk
(the dissector made both from the same flow), so the certificate rules judge each chunk in full.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from analyzer import schema
from analyzer.dissect import frame_specs
from analyzer.dissect.base import Column, FrameSpec
from analyzer.policy import _compute as pc
from analyzer.policy._cols import STRING, Cols, as_cols, eq, fill, ints, length, nanos, notnull, numpy_of, true
from analyzer.policy._rule import SEVERITIES
from analyzer.policy.evaluate import (
    FINDINGS,
    FLOW_COLUMNS,
    VERDICTS,
    _expired_findings,
    _typed,
    _verdicts,
    _zone_map,
    add_destination_sums,
    destinations_from_sums,
    findings_frame,
    judge,
    today,
    worst_destinations,
)
from analyzer.policy.facts import FLOW_READS, LEAF_COLUMNS, first_rows, positions, read_schema
from analyzer.policy.profiles import Profile, RuleSetting, load_profile
from analyzer.policy.suppressions import Suppression, load_suppressions

if TYPE_CHECKING:
    import pandas as pd

    from analyzer.policy.zones import Zone, ZoneMap

__all__ = ["PolicyStage", "Tally", "tally"]

FTP_RULE = "ftp-data-unprotected"
READS = ("certs", "credentials", "ftp_data")
# flows columns a pending FTP data flow keeps: what judge() reads to make its finding and zones
_PENDING = ("uid", "ts_start", "ts_end", "transport", "client_ip", "client_port", "server_ip", "server_port",
            "payload_bytes_to_server", "payload_bytes_to_client", "ip_bytes_to_server", "ip_bytes_to_client",
            "encrypted", "app_protocol", "tls_server_name", "vni", "gwlb_endpoint_id")
_FOLD_SUMS = 64  # chunks of destination sums added up at a time
NOT_JUDGED = ("no payload", "protocol not recognised", "encryption not decided")
# the columns of the row frames the rules read (the rest are left null: converting every column of
# every TLS row per chunk was a third of the stage's time). tests/policy/test_policy_stream.py
# checks that the streamed findings equal the in-memory ones, which read every column.
_ROW_COLUMNS = {
    "certs": ("sha256", *LEAF_COLUMNS),
    "credentials": ("uid", "protocol", "mechanism", "secret_in_clear"),
    "ftp_data": ("uid", "command", "host", "port", "protected"),
}


@dataclass
class Tally:
    """Counts for the audit summary: flows by verdict, findings by (rule, severity, suppressed),
    flows not judged by reason (NOT_JUDGED). They add up over chunks."""

    flows: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    findings: Counter[tuple[str, str, bool]] = field(default_factory=Counter)
    not_judged: Counter[str] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        self.flows += other.flows
        self.verdicts.update(other.verdicts)
        self.findings.update(other.findings)
        self.not_judged.update(other.not_judged)

    def worst_active(self) -> int:
        """Rank of the most severe finding not suppressed (-1: none)."""
        return max((SEVERITIES.index(sev) for (_, sev, sup), n in self.findings.items() if n and not sup), default=-1)


def _reasons(flows: Mapping[str, pa.Array]) -> np.ndarray:
    """Why each flow would be not judged: index into NOT_JUDGED."""
    payload = ints(flows["payload_bytes_to_server"]) + ints(flows["payload_bytes_to_client"])
    unknown = ~notnull(flows["app_protocol"])
    return np.select([payload == 0, unknown], [0, 1], default=2)


def _as_cols(frame: Any, names: Sequence[str]) -> Cols:
    """Columns of Arrow `Cols`, or of a pandas frame (the table format's results)."""
    if isinstance(frame, Mapping):
        return as_cols({c: frame[c] for c in names if c in frame})
    from analyzer.policy.facts import frame_cols

    return frame_cols(frame, names)


def tally(flows: Mapping[str, pa.Array] | pd.DataFrame, findings: Mapping[str, pa.Array] | pd.DataFrame) -> Tally:
    """The Tally of judged flows (with `verdict`) and their findings (Arrow columns, or pandas frames)."""
    fl = _as_cols(flows, ("verdict", "payload_bytes_to_server", "payload_bytes_to_client", "app_protocol"))
    found = _as_cols(findings, ("rule", "severity", "suppressed_by"))
    t = Tally(flows=length(fl))
    if not t.flows:
        t.findings.update(_finding_keys(found))
        return t
    verdict = fill(fl["verdict"], "unknown")
    counts = pc.value_counts(verdict)
    t.verdicts.update({str(v): int(n) for v, n in zip(counts.field("values").to_pylist(),
                                                       counts.field("counts").to_pylist(), strict=True)})
    unknown = eq(fl["verdict"], "unknown")
    # the reasons of every flow, kept for the unknown ones (selecting their rows first took every column)
    codes = np.bincount(_reasons(fl)[unknown], minlength=3) if unknown.any() else np.zeros(3, np.int64)
    t.not_judged.update({NOT_JUDGED[i]: int(n) for i, n in enumerate(codes) if n})
    t.findings.update(_finding_keys(found))
    return t


def _only(profile: Profile, rule: str | None) -> Profile:
    """`profile` with `rule` alone enabled (None: `rule` disabled, the rest as they are)."""
    settings: dict[str, RuleSetting] = {}
    for rid, s in profile.settings.items():
        on = (rid == rule and s.enabled) if rule is not None else (s.enabled and rid != FTP_RULE)
        settings[rid] = replace(s, enabled=on)
    return replace(profile, settings=settings)


def _concat(parts: Sequence[Mapping[str, pa.Array]], names: Sequence[str], types: Mapping[str, pa.DataType]) -> Cols:
    """Row-wise concatenation of column sets (a column missing from a part: nulls)."""
    out: Cols = {}
    for c in names:
        arrays = [pc.cast(p[c], types[c]) if c in p else pa.nulls(length(p), types[c]) for p in parts]
        out[c] = pa.concat_arrays(arrays)
    return out


def _rows_of(cols: Mapping[str, pa.Array], rows: np.ndarray) -> Cols:
    at = pa.array(np.flatnonzero(rows) if rows.dtype == bool else rows)
    return {c: pc.take(a, at) for c, a in cols.items()}


class PolicyStage:
    """The policy layer as a collector stage (see the module docstring)."""

    name: str = "policy"
    columns: tuple[Column, ...] = tuple(Column(c, d, "policy: " + c.replace("_", " ")) for c, d in FLOW_COLUMNS.items())
    frames: tuple[FrameSpec, ...] = ()
    reads: tuple[str, ...] = READS
    # the flows columns it reads: a run with this stage makes the TLS family's session facts
    # (their optional column group), which plain runs leave out
    reads_columns: tuple[str, ...] = FLOW_READS

    def __init__(self, *, zones: ZoneMap | str | Path | Sequence[str] | Sequence[Zone] | None = None,
                 profile: Profile | str | Path | None = None,
                 suppressions: str | Path | Sequence[Suppression] | None = None, now: Any = None,
                 findings_sink: Any = None, horizon_s: float | None = None, max_pending: int = 262144) -> None:
        self.zones = _zone_map(zones)
        self.profile = load_profile(profile)
        sups = load_suppressions(suppressions)
        self.now = now
        day = today(now)
        self.active = [s for s in sups if not s.expired(day)]
        self.expired = [s for s in sups if s.expired(day)]
        self.chunk_profile = _only(self.profile, None)
        ftp = self.profile.settings[FTP_RULE]
        self.ftp_profile = _only(self.profile, FTP_RULE) if ftp.enabled else None
        self.window_s = float(ftp.options.get("window_s", 300.0))
        self.horizon_s = horizon_s if horizon_s is not None else 3600.0 + 300.0 + self.window_s
        self.max_pending = max_pending
        self.sink = findings_sink
        self.kept: list[Cols] = []
        self.rows: dict[str, list[dict[str, Any]]] = {f: [] for f in READS if f != "certs"}
        self.certs: dict[str, dict[str, Any]] = {}
        self.sums: list[pa.Table] = []
        self.tally = Tally()
        self.flow_schema = read_schema(None)
        specs = frame_specs()
        self.frame_schemas: dict[str, dict[str, str]] = {
            f: {c: d for c, d in specs[f].schema.items() if c in _ROW_COLUMNS[f]} for f in READS if f in specs}
        self.ann: Cols | None = None  # FTP announcements, with their control flow's times (c_start, c_end)
        self.pending: Cols | None = None  # flows ftp-data-unprotected could still flag
        self.latest: int | None = None  # latest flow end seen (ns since the epoch)
        self.stats: dict[str, int] = {"ftp_pending_evicted": 0, "ftp_announcements_evicted": 0}
        # CPU seconds: zones (lookup), rules (predicates), judge (judge() in all), stage (on_flows in all)
        self.timings: dict[str, float] = {"zones": 0.0, "rules": 0.0, "judge": 0.0, "stage": 0.0}

    # --- the Stage protocol ----------------------------------------------------------------------

    def on_rows(self, frame: str, uid: str, rows: list[dict[str, Any]]) -> None:
        keep = _ROW_COLUMNS[frame]
        if frame == "certs":
            for row in rows:
                key = str(row.get("sha256"))
                if key not in self.certs:
                    self.certs[key] = {k: row[k] for k in keep if k in row}
            return
        target = self.rows[frame]
        for row in rows:
            kept = {k: row[k] for k in keep if k in row}
            kept.setdefault("uid", uid)
            target.append(kept)

    def on_flows(self, chunk: Mapping[str, pa.Array]) -> tuple[Mapping[str, Any], Mapping[str, list[dict[str, Any]]]]:
        started = time.process_time()
        flows = as_cols({n: chunk[n] for n in self.flow_schema if n in chunk})  # the columns the policy reads
        credentials = self._take("credentials")
        ftp_data = self._take("ftp_data")
        certs = self._certs_of(flows)
        judged = judge(flows, None, certs, zones=self.zones, profile=self.chunk_profile, active=self.active,
                       now=self.now, credentials=credentials if length(credentials) else None, timings=self.timings)
        out = judged.flows
        findings = judged.findings
        worst = judged.worst.copy()
        count = ints(out["finding_count"]).copy()
        chunk_tally = tally(out, findings)
        if self.ftp_profile is not None:
            late = self._ftp(out, judged, ftp_data, worst, count, chunk_tally)
            if length(late):
                findings = _concat([findings, late], list(FINDINGS), {c: a.type for c, a in findings.items()})
        self.tally.add(chunk_tally)
        self._emit(findings)
        self.sums.append(judged.sums)
        if len(self.sums) >= _FOLD_SUMS:
            self.sums = [add_destination_sums(self.sums)]
        code = _verdicts(out, worst, self.profile)
        columns: dict[str, Any] = {c: out[c] for c in ("client_zone", "server_zone", "direction")}
        columns["verdict"] = pa.array(np.asarray(VERDICTS, dtype=object)[code], STRING)
        columns["finding_count"] = pa.array(count.astype(np.int32))
        self.timings["stage"] += time.process_time() - started
        return columns, {}

    def finish(self) -> Mapping[str, list[dict[str, object]]]:
        exp = _expired_findings(self.expired, self.profile, self.now)
        if length(exp):
            self.tally.findings.update(_finding_keys(exp))
            self._emit(exp)
        return {}

    # --- results ---------------------------------------------------------------------------------

    def findings(self) -> pd.DataFrame:
        """The findings kept (no findings_sink given), in their reported order (a pandas frame)."""
        return findings_frame(self.kept)

    def destination_sums(self) -> pa.Table:
        """The destination sums of every chunk so far, added up (one row per destination)."""
        self.sums = [add_destination_sums(self.sums)]
        return self.sums[0]

    def destinations(self) -> pd.DataFrame:
        return destinations_from_sums(self.destination_sums())

    def worst_destinations(self, k: int = 5) -> list[tuple[str, str, str, str]]:
        """The summary's worst destinations (`evaluate.worst_destinations`), without pandas."""
        return worst_destinations(self.destination_sums(), k)

    # --- internals -------------------------------------------------------------------------------

    def _emit(self, findings: Cols) -> None:
        if not length(findings):
            return
        findings = {c: _typed(findings[c], d) for c, d in FINDINGS.items()}
        if self.sink is None:
            self.kept.append(findings)
        elif hasattr(self.sink, "write_table"):
            self.sink.write_table(pa.table(findings, schema=schema.arrow_schema(FINDINGS)))
        else:
            self.sink.write(schema.frame_from_arrow(findings, FINDINGS))

    def _take(self, frame: str) -> Cols:
        rows, self.rows[frame] = self.rows[frame], []
        frame_schema = self.frame_schemas.get(frame)
        if frame_schema is None:
            return {"uid": pa.array([], STRING)}
        return as_cols(schema.arrow_from_rows(rows, frame_schema))

    def _certs_of(self, flows: Cols) -> Cols | None:
        """The certificates of these flows' sessions (leaf and chain) that the stage has seen."""
        if "certs" not in self.frame_schemas:
            return None
        wanted: set[str] = set()
        if length(flows):  # each distinct fingerprint and chain once (a capture's sessions share a few)
            wanted.update(v for v in pc.unique(flows["cert_sha256"]).to_pylist() if v is not None)
            for chain in pc.unique(flows["cert_chain"]).to_pylist():
                if chain is not None:
                    wanted.update(c.strip() for c in str(chain).split(","))
        rows = [self.certs[k] for k in wanted if k in self.certs]
        return as_cols(schema.arrow_from_rows(rows, self.frame_schemas["certs"]))

    def _ftp(self, out: Cols, judged: Any, ftp_data: Cols, worst: np.ndarray, count: np.ndarray,
             chunk_tally: Tally) -> Cols:
        """ftp-data-unprotected across chunks: keep this chunk's possible data flows and
        announcements, link them, and judge the linked flows with that rule alone. Updates `worst`
        and `count` of this chunk's flows and the tallies and sums of earlier ones in place."""
        payload = ints(out["payload_bytes_to_server"]) + ints(out["payload_bytes_to_client"])
        could = ~true(out["encrypted"]) & eq(out["transport"], "tcp") & (payload > 0)
        if length(ftp_data):
            # each announcement with its control flow's times (the control flow of this chunk, if it is)
            at = positions(out["uid"], pc.cast(ftp_data["uid"], STRING))
            taker = pa.array(at, mask=at < 0)
            ann = {**ftp_data, "c_start": pc.take(out["ts_start"], taker), "c_end": pc.take(out["ts_end"], taker)}
            self.ann = ann if self.ann is None else _concat([self.ann, ann], list(ann),
                                                            {c: a.type for c, a in ann.items()})
        if could.any():
            keep = _rows_of({c: out[c] for c in _PENDING if c in out}, could)
            keep.update(self._dest(out, could, judged))
            keep["_worst"] = pa.array(worst[could])
            keep["_reason"] = pa.array(_reasons(out)[could].astype(np.int64))
            keep["_chunk_row"] = pa.array(np.flatnonzero(could).astype(np.int64))
            keep["_chunk"] = pa.array(np.ones(int(could.sum()), dtype=bool))
            if self.pending is not None:
                self.pending["_chunk"] = pa.array(np.zeros(length(self.pending), dtype=bool))
            self.pending = keep if self.pending is None else _concat(
                [self.pending, keep], list(keep), {c: a.type for c, a in keep.items()})
        ends = nanos(out["ts_end"])[notnull(out["ts_end"])]
        if len(ends):
            latest = int(ends.max())
            self.latest = latest if self.latest is None or latest > self.latest else self.latest
        late: Cols = {}
        if self.ann is not None and self.pending is not None and length(self.ann) and length(self.pending):
            late = self._link(worst, count, chunk_tally)
        self._evict()
        return late

    @staticmethod
    def _dest(out: Cols, rows: np.ndarray, judged: Any) -> Cols:
        """Destination keys (name, port, zone) of the flows of `out` at `rows` (a mask), as destination_sums
        makes them (judged.names is aligned with `out`)."""
        at = pa.array(np.flatnonzero(rows))
        return {
            "_dest": pc.coalesce(pc.take(judged.names, at), pc.cast(pc.take(out["server_ip"], at), STRING),
                                 pa.scalar("?", STRING)),
            "_port": fill(pc.cast(pc.take(out["server_port"], at), pa.int64()), -1),
            "_zone": fill(pc.cast(pc.take(out["server_zone"], at), STRING), "?"),
        }

    def _link(self, worst: np.ndarray, count: np.ndarray, chunk_tally: Tally) -> Cols:
        assert self.ann is not None and self.pending is not None and self.ftp_profile is not None
        ann, pend = self.ann, self.pending
        keys = set(zip(ann["host"].to_pylist(), ann["port"].to_pylist(), strict=True))
        hit = np.fromiter((k in keys for k in zip(pend["server_ip"].to_pylist(), pend["server_port"].to_pylist(),
                                                   strict=True)), bool, length(pend))
        if not hit.any():
            return {}
        cand = _rows_of(pend, hit)
        # the control flows (each once), but those that are candidates themselves
        first = first_rows(ann["uid"])
        ctrl_uid = pc.cast(pc.take(ann["uid"], pa.array(first)), STRING)
        keep = ~numpy_of(fill(pc.is_in(ctrl_uid, value_set=pc.cast(cand["uid"], STRING)), False))
        at = pa.array(first[keep])
        n_ctrl = int(keep.sum())
        controls = {"uid": pc.filter(ctrl_uid, pa.array(keep)), "ts_start": pc.take(ann["c_start"], at),
                    "ts_end": pc.take(ann["c_end"], at), "transport": pa.array(["ftp-control"] * n_ctrl, STRING)}
        names = [c for c in _PENDING if c in cand]
        flows = _concat([{c: cand[c] for c in names}, controls], names, {c: cand[c].type for c in names})
        ftp_data = {c: ann[c] for c in ("uid", "command", "host", "port", "protected")}
        judged = judge(flows, None, None, zones=self.zones, profile=self.ftp_profile, active=self.active,
                       now=self.now, ftp_data=ftp_data)
        found = judged.findings
        if not length(found):
            return {}
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        cand_uid = pc.cast(cand["uid"], STRING).to_pylist()
        row_of = {u: i for i, u in reversed(list(enumerate(cand_uid)))}
        cand_rows = {c: cand[c].to_pylist() for c in ("_worst", "_chunk", "_chunk_row", "_reason", "encrypted",
                                                      "_dest", "_port", "_zone")}
        delta_rows: list[dict[str, Any]] = []
        for uid, sev, sup in zip(found["uid"].to_pylist(), found["severity"].to_pylist(),
                                 notnull(found["suppressed_by"]).tolist(), strict=True):
            i = row_of[uid]
            old = int(cand_rows["_worst"][i])
            new = old if sup else max(old, rank[sev])
            one = 0 if sup else 1
            if cand_rows["_chunk"][i]:  # a flow of this chunk: its columns are not made yet
                at_row = int(cand_rows["_chunk_row"][i])
                worst[at_row] = new
                count[at_row] += one
            # its verdict was counted (in this chunk's tally or an earlier one): move it
            encrypted = cand_rows["encrypted"][i]
            before, after = self._verdict_of(old, encrypted), self._verdict_of(new, encrypted)
            if before != after:
                chunk_tally.verdicts[before] -= 1
                chunk_tally.verdicts[after] += 1
                if before == "unknown":
                    chunk_tally.not_judged[NOT_JUDGED[int(cand_rows["_reason"][i])]] -= 1
            delta_rows.append({"destination": cand_rows["_dest"][i], "server_port": int(cand_rows["_port"][i]),
                               "server_zone": cand_rows["_zone"][i], "worst": new, "findings": one})
        self._add_sums(delta_rows)
        chunk_tally.findings.update(_finding_keys(found))
        linked = numpy_of(fill(pc.is_in(pc.cast(pend["uid"], STRING), value_set=found["uid"]), False))
        self.pending = _rows_of(pend, ~linked)
        return found

    def _verdict_of(self, worst: int, encrypted: bool | None) -> str:
        enc = pa.array([encrypted], pa.bool_())
        return VERDICTS[int(_verdicts({"encrypted": enc}, np.array([worst], dtype=np.int64), self.profile)[0])]

    def _add_sums(self, rows: list[dict[str, Any]]) -> None:
        n = len(rows)
        zero = np.zeros(n, dtype=np.int64)
        delta = {
            "destination": pa.array([r["destination"] for r in rows], STRING),
            "server_port": pa.array([r["server_port"] for r in rows], pa.int64()),
            "server_zone": pa.array([r["server_zone"] for r in rows], STRING),
            **{c: zero for c in ("flows", "bytes", "enc_flow", "enc_bytes", "decided", "decided_bytes")},
            "findings": pa.array([r["findings"] for r in rows], pa.int64()),
            "worst": pa.array([r["worst"] for r in rows], pa.int64()),
        }
        self.sums.append(pa.table(delta, schema=self.sums[0].schema if self.sums else None))

    def _evict(self) -> None:
        if self.latest is None:
            return
        floor = self.latest - round(self.horizon_s * 1e9)
        if self.pending is not None and length(self.pending):
            start = self.pending["ts_start"]
            old = notnull(start) & (nanos(start) < floor)
            if length(self.pending) - old.sum() > self.max_pending:
                old = old | (np.arange(length(self.pending)) < length(self.pending) - self.max_pending)
            if old.any():
                self.stats["ftp_pending_evicted"] += int(old.sum())
                self.pending = _rows_of(self.pending, ~old)
        if self.ann is not None and length(self.ann):
            end = self.ann["c_end"]
            old = notnull(end) & (nanos(end) < floor)
            if old.any():
                self.stats["ftp_announcements_evicted"] += int(old.sum())
                self.ann = _rows_of(self.ann, ~old)


def _finding_keys(findings: Mapping[str, pa.Array]) -> dict[tuple[str, str, bool], int]:
    """How many findings per (rule, severity, suppressed): the Tally's keys."""
    if not length(findings):
        return {}
    rule = pc.dictionary_encode(fill(pc.cast(findings["rule"], STRING), "nan"))
    sev = pc.dictionary_encode(fill(pc.cast(findings["severity"], STRING), "nan"))
    ns = len(sev.dictionary)
    sup = notnull(findings["suppressed_by"]).astype(np.int64)
    # one integer key per (rule, severity, suppressed), counted by numpy
    key = (numpy_of(rule.indices).astype(np.int64) * ns + numpy_of(sev.indices)) * 2 + sup
    keys, counts = np.unique(key, return_counts=True)
    rules, sevs = rule.dictionary.to_pylist(), sev.dictionary.to_pylist()
    return {(str(rules[k // 2 // ns]), str(sevs[k // 2 % ns]), bool(k % 2)): int(n)
            for k, n in zip(keys.tolist(), counts.tolist(), strict=True)}
