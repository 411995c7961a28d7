"""The policy as a collector stage: a streamed audit judges flows chunk by chunk, in bounded memory.

`PolicyStage` is an `analyzer.pipeline.Stage`: the collector hands it the rows of the frames it
`reads` (certs, credentials, ftp_data) as the dissectors make them, then each chunk of ended
flows (`on_flows`), whose rows it has then all seen. It reads no `tls` row: the TLS family carries
the session facts the rules read as flow columns (`facts`), so the TLS dissector makes no tls row
and keeps its fast ClientHello path in a streamed audit. Per chunk it runs `evaluate.judge` - the same
rules, zones and suppressions as `evaluate()` on a whole analysis - and

- writes the chunk's findings to `findings_sink` (a `FrameSink`: `write(DataFrame)`) as they are
  made, or keeps them when none is given;
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

from analyzer import schema
from analyzer.dissect import frame_specs
from analyzer.dissect.base import Column, FrameSpec
from analyzer.policy._rule import SEVERITIES, dt
from analyzer.policy.evaluate import (
    FINDINGS,
    FLOW_COLUMNS,
    VERDICTS,
    _expired_findings,
    _verdicts,
    _zone_map,
    add_destination_sums,
    destinations_from_sums,
    judge,
    sort_findings,
    timestamp,
)
from analyzer.policy.facts import FLOW_READS, LEAF_COLUMNS, empty_frame, read_schema
from analyzer.policy.profiles import Profile, RuleSetting, load_profile
from analyzer.policy.suppressions import Suppression, load_suppressions

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

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


def _reasons(flows: pd.DataFrame) -> np.ndarray:
    """Why each flow would be not judged: index into NOT_JUDGED."""
    payload = (flows["payload_bytes_to_server"].astype(dt.Int64).fillna(0)
               + flows["payload_bytes_to_client"].astype(dt.Int64).fillna(0)).to_numpy(dtype=np.int64)
    unknown = flows["app_protocol"].isna().to_numpy(dtype=bool)
    return np.select([payload == 0, unknown], [0, 1], default=2)


def tally(flows: pd.DataFrame, findings: pd.DataFrame) -> Tally:
    """The Tally of judged flows (with `verdict`) and their findings."""
    t = Tally(flows=len(flows))
    t.verdicts.update({str(k): int(n) for k, n in
                       flows["verdict"].astype(dt.string).fillna("unknown").value_counts().items()})
    unknown = (flows["verdict"] == "unknown").to_numpy(dtype=bool, na_value=False)
    # the reasons of every flow, kept for the unknown ones (selecting their rows first took every column)
    codes = np.bincount(_reasons(flows)[unknown], minlength=3) if unknown.any() else np.zeros(3, np.int64)
    t.not_judged.update({NOT_JUDGED[i]: int(n) for i, n in enumerate(codes) if n})
    if len(findings):
        t.findings.update(_finding_keys(findings))
    return t


def _only(profile: Profile, rule: str | None) -> Profile:
    """`profile` with `rule` alone enabled (None: `rule` disabled, the rest as they are)."""
    settings: dict[str, RuleSetting] = {}
    for rid, s in profile.settings.items():
        on = (rid == rule and s.enabled) if rule is not None else (s.enabled and rid != FTP_RULE)
        settings[rid] = replace(s, enabled=on)
    return replace(profile, settings=settings)


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
        self.now = timestamp(now)
        today = self.now.date()
        self.active = [s for s in sups if not s.expired(today)]
        self.expired = [s for s in sups if s.expired(today)]
        self.chunk_profile = _only(self.profile, None)
        ftp = self.profile.settings[FTP_RULE]
        self.ftp_profile = _only(self.profile, FTP_RULE) if ftp.enabled else None
        self.window_s = float(ftp.options.get("window_s", 300.0))
        self.horizon_s = horizon_s if horizon_s is not None else 3600.0 + 300.0 + self.window_s
        self.max_pending = max_pending
        self.sink = findings_sink
        self.kept: list[pd.DataFrame] = []
        self.rows: dict[str, list[dict[str, Any]]] = {f: [] for f in READS if f != "certs"}
        self.certs: dict[str, dict[str, Any]] = {}
        self.sums: list[pd.DataFrame] = []
        self.tally = Tally()
        self.flow_schema = read_schema(None)
        specs = frame_specs()
        self.frame_schemas: dict[str, dict[str, str]] = {
            f: {c: d for c, d in specs[f].schema.items() if c in _ROW_COLUMNS[f]} for f in READS if f in specs}
        self.ann: pd.DataFrame | None = None  # FTP announcements, with their control flow's times
        self.pending: pd.DataFrame | None = None  # flows ftp-data-unprotected could still flag
        self.latest: Any = None  # latest flow end seen
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
        from analyzer._pandas import pd

        started = time.process_time()
        sub = {n: d for n, d in self.flow_schema.items() if n in chunk}  # the columns the policy reads
        flows = schema.frame_from_arrow({n: chunk[n] for n in sub}, sub)
        credentials = self._take("credentials")
        ftp_data = self._take("ftp_data")
        certs = self._certs_of(flows)
        judged = judge(flows, None, certs, zones=self.zones, profile=self.chunk_profile, active=self.active,
                       now=self.now, credentials=credentials if len(credentials) else None, timings=self.timings)
        out = judged.flows
        findings = judged.findings
        worst = judged.worst.copy()
        count = out["finding_count"].to_numpy(dtype=np.int64).copy()
        chunk_tally = tally(out, findings)
        if self.ftp_profile is not None:
            late = self._ftp(out, judged, ftp_data, worst, count, chunk_tally)
            if len(late):
                findings = pd.concat([findings, late], ignore_index=True) if len(findings) else late
        self.tally.add(chunk_tally)
        self._emit(findings)
        self.sums.append(judged.sums)
        if len(self.sums) >= _FOLD_SUMS:
            self.sums = [add_destination_sums(self.sums)]
        code = _verdicts(out, worst, self.profile)
        columns: dict[str, Any] = {c: out[c].array for c in ("client_zone", "server_zone", "direction")}
        columns["verdict"] = np.asarray(VERDICTS, dtype=object)[code]
        columns["finding_count"] = count
        self.timings["stage"] += time.process_time() - started
        return columns, {}

    def finish(self) -> Mapping[str, list[dict[str, object]]]:
        exp = _expired_findings(self.expired, self.profile, self.now)
        if len(exp):
            self.tally.findings.update(_finding_keys(exp))
            self._emit(exp)
        return {}

    # --- results ---------------------------------------------------------------------------------

    def findings(self) -> pd.DataFrame:
        """The findings kept (no findings_sink given), in their reported order."""
        from analyzer._pandas import pd

        parts = [f for f in self.kept if len(f)]
        return sort_findings(pd.concat(parts, ignore_index=True)) if parts else empty_frame(FINDINGS)

    def destinations(self) -> pd.DataFrame:
        return destinations_from_sums(add_destination_sums(self.sums))

    # --- internals -------------------------------------------------------------------------------

    def _emit(self, findings: pd.DataFrame) -> None:
        if not len(findings):
            return
        findings = findings.astype(dt.of(FINDINGS))
        if self.sink is None:
            self.kept.append(findings)
        else:
            self.sink.write(findings.reset_index(drop=True))

    def _take(self, frame: str) -> pd.DataFrame:
        rows, self.rows[frame] = self.rows[frame], []
        frame_schema = self.frame_schemas.get(frame)
        if frame_schema is None:
            return empty_frame({"uid": "string"})
        return schema.frame_from_rows(rows, frame_schema)

    def _certs_of(self, flows: pd.DataFrame) -> pd.DataFrame | None:
        """The certificates of these flows' sessions (leaf and chain) that the stage has seen."""
        if "certs" not in self.frame_schemas:
            return None
        wanted: set[str] = set()
        if len(flows):  # each distinct fingerprint and chain once (a capture's sessions share a few)
            wanted.update(flows["cert_sha256"].dropna().unique().tolist())
            for chain in flows["cert_chain"].dropna().unique().tolist():
                wanted.update(c.strip() for c in str(chain).split(","))
        return schema.frame_from_rows([self.certs[k] for k in wanted if k in self.certs], self.frame_schemas["certs"])

    def _ftp(self, out: pd.DataFrame, judged: Any, ftp_data: pd.DataFrame, worst: np.ndarray, count: np.ndarray,
             chunk_tally: Tally) -> pd.DataFrame:
        """ftp-data-unprotected across chunks: keep this chunk's possible data flows and
        announcements, link them, and judge the linked flows with that rule alone. Updates `worst`
        and `count` of this chunk's flows and the tallies and sums of earlier ones in place."""
        from analyzer._pandas import pd

        enc = out["encrypted"].astype(dt.boolean)
        payload = (out["payload_bytes_to_server"].astype(dt.Int64).fillna(0)
                   + out["payload_bytes_to_client"].astype(dt.Int64).fillna(0)).to_numpy(dtype=np.int64)
        could = (~(enc == True).to_numpy(dtype=bool, na_value=False)  # noqa: E712
                 & (out["transport"].astype(dt.string) == "tcp").to_numpy(dtype=bool, na_value=False) & (payload > 0))
        if len(ftp_data):
            controls = out[out["uid"].isin(set(ftp_data["uid"].astype(str))).to_numpy(dtype=bool)]
            times = controls[["uid", "ts_start", "ts_end"]].rename(columns={"ts_start": "c_start", "ts_end": "c_end"})
            ann = ftp_data.merge(times, on="uid", how="left")
            self.ann = ann if self.ann is None else pd.concat([self.ann, ann], ignore_index=True)
        if could.any():
            keep = out.loc[could, [c for c in _PENDING if c in out]]
            for k, v in self._dest(out, could, judged).items():
                keep[k] = v
            keep["_worst"] = worst[could]
            keep["_reason"] = _reasons(out)[could]
            keep["_chunk_row"] = np.flatnonzero(could)
            keep["_chunk"] = True
            if self.pending is not None:
                self.pending["_chunk"] = False
            self.pending = keep if self.pending is None else pd.concat([self.pending, keep], ignore_index=True)
        ends = out["ts_end"].dropna()
        if len(ends):
            latest = ends.max()
            self.latest = latest if self.latest is None or latest > self.latest else self.latest
        late = empty_frame(FINDINGS)
        if self.ann is not None and self.pending is not None and len(self.ann) and len(self.pending):
            late = self._link(worst, count, chunk_tally)
        self._evict()
        return late

    @staticmethod
    def _dest(out: pd.DataFrame, rows: np.ndarray, judged: Any) -> dict[str, Any]:
        """Destination keys (name, port, zone) of the flows of `out` at `rows` (a mask), as destination_sums
        makes them (judged.names is aligned with `out`)."""
        names = judged.names[rows]
        # strings kept as pandas strings (a linked flow's row gives them back as str, as destination_sums has them)
        return {
            "_dest": names.fillna(out["server_ip"][rows].astype(dt.string)).fillna("?").array,
            "_port": out["server_port"][rows].astype(dt.Int64).fillna(-1).to_numpy(dtype=np.int64),
            "_zone": out["server_zone"][rows].astype(dt.string).fillna("?").array,
        }

    def _link(self, worst: np.ndarray, count: np.ndarray, chunk_tally: Tally) -> pd.DataFrame:
        from analyzer._pandas import pd

        assert self.ann is not None and self.pending is not None and self.ftp_profile is not None
        ann, pend = self.ann, self.pending
        keys = set(zip(ann["host"].astype(str), ann["port"].astype(dt.Int64).astype(str), strict=True))
        hit = np.fromiter((k in keys for k in zip(pend["server_ip"].astype(str),
                                                 pend["server_port"].astype(dt.Int64).astype(str), strict=True)),
                          bool, len(pend))
        if not hit.any():
            return empty_frame(FINDINGS)
        cand = pend[hit]
        controls = pd.DataFrame({"uid": ann["uid"], "ts_start": ann["c_start"], "ts_end": ann["c_end"],
                                 "transport": "ftp-control"}).drop_duplicates("uid")
        controls = controls[~controls["uid"].isin(set(cand["uid"].astype(str))).to_numpy(dtype=bool)]
        flows = pd.concat([cand[[c for c in _PENDING if c in cand]], controls], ignore_index=True)
        ftp_data = ann[["uid", "command", "host", "port", "protected"]]
        judged = judge(flows, None, None, zones=self.zones, profile=self.ftp_profile, active=self.active,
                       now=self.now, ftp_data=ftp_data)
        found = judged.findings
        if not len(found):
            return found
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        flagged = cand.set_index(cand["uid"].astype(str))
        delta_rows = []
        for uid, sev, sup in zip(found["uid"].astype(str), found["severity"].astype(str),
                                 found["suppressed_by"].notna(), strict=True):
            row = flagged.loc[uid].to_dict()
            old = int(row["_worst"])
            new = old if sup else max(old, rank[sev])
            one = 0 if sup else 1
            if bool(row["_chunk"]):  # a flow of this chunk: its columns are not made yet
                at = int(row["_chunk_row"])
                worst[at] = new
                count[at] += one
            # its verdict was counted (in this chunk's tally or an earlier one): move it
            before, after = _verdict_of(old, row, self.profile), _verdict_of(new, row, self.profile)
            if before != after:
                chunk_tally.verdicts[before] -= 1
                chunk_tally.verdicts[after] += 1
                if before == "unknown":
                    chunk_tally.not_judged[NOT_JUDGED[int(row["_reason"])]] -= 1
            delta_rows.append({"destination": row["_dest"], "server_port": int(row["_port"]),
                               "server_zone": row["_zone"], "worst": new, "findings": one})
        self._add_sums(delta_rows)
        chunk_tally.findings.update(_finding_keys(found))
        self.pending = pend[~pend["uid"].isin(set(found["uid"].astype(str))).to_numpy(dtype=bool)]
        return found

    def _add_sums(self, rows: list[dict[str, Any]]) -> None:
        from analyzer._pandas import pd

        delta = pd.DataFrame(rows)
        for c in ("flows", "bytes", "enc_flow", "enc_bytes", "decided", "decided_bytes"):
            delta[c] = 0
        delta = delta.astype({"server_port": np.int64, "worst": np.int64, "findings": np.int64})
        self.sums.append(delta)

    def _evict(self) -> None:
        from analyzer._pandas import pd

        if self.latest is None:
            return
        floor = self.latest - pd.Timedelta(seconds=self.horizon_s)
        if self.pending is not None and len(self.pending):
            old = (self.pending["ts_start"] < floor).to_numpy(dtype=bool, na_value=False)
            if len(self.pending) - old.sum() > self.max_pending:
                old = old | (np.arange(len(self.pending)) < len(self.pending) - self.max_pending)
            if old.any():
                self.stats["ftp_pending_evicted"] += int(old.sum())
                self.pending = self.pending[~old]
        if self.ann is not None and len(self.ann):
            old = (self.ann["c_end"] < floor).to_numpy(dtype=bool, na_value=False)
            if old.any():
                self.stats["ftp_announcements_evicted"] += int(old.sum())
                self.ann = self.ann[~old]


def _finding_keys(findings: pd.DataFrame) -> dict[tuple[str, str, bool], int]:
    """How many findings per (rule, severity, suppressed): the Tally's keys."""
    from analyzer._pandas import pd

    if not len(findings):
        return {}
    rules, rule_names = pd.factorize(findings["rule"].astype(str))
    sevs, sev_names = pd.factorize(findings["severity"].astype(str))
    sup = findings["suppressed_by"].notna().to_numpy(dtype=np.int64)
    # one integer key per (rule, severity, suppressed), counted by numpy
    keys, counts = np.unique((rules.astype(np.int64) * len(sev_names) + sevs) * 2 + sup, return_counts=True)
    return {(str(rule_names[k // 2 // len(sev_names)]), str(sev_names[k // 2 % len(sev_names)]), bool(k % 2)): int(n)
            for k, n in zip(keys.tolist(), counts.tolist(), strict=True)}


def _one(row: Any) -> pd.DataFrame:
    from analyzer._pandas import pd

    return pd.DataFrame({"encrypted": pd.array([row["encrypted"]], dtype=dt.boolean)})


def _verdict_of(worst: int, row: Any, profile: Profile) -> str:
    return VERDICTS[int(_verdicts(_one(row), np.array([worst], dtype=np.int64), profile)[0])]
