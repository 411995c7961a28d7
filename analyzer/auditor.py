"""`audit()`: an analysis judged by the policy layer, as one `Analysis`.

    import analyzer
    r = analyzer.audit(["captures/"], vpc=["10.77.0.0/16"], profile="sec09")   # this module's audit()
    r.findings        # one row per finding (analyzer.policy.FINDINGS)
    r.flows           # the flows, with client_zone, server_zone, direction, verdict, finding_count
    r.destinations    # one row per server: share encrypted, worst severity, score and grade
    r.tls, r.certs, r.anomalies, r.sources   # as analyze() gives them

The facts come from `analyze()` (every keyword of it is accepted), the judgement from
`analyzer.policy.evaluate`, kept apart as Zeek keeps its policy scripts apart from its analyzers.
`audit()` judges the frames whole, in memory. `audit_stream()` judges the same way chunk by chunk
as the analysis runs (`analyzer.policy.stage.PolicyStage` on the collector's stage hook), writing
the findings to a sink as they are made and keeping no frame: memory stays bounded however large
the capture (what `intransit audit --format csv|jsonl|parquet` uses). Both give the same findings
and destinations (tests/policy/test_policy_stream.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.errors import UsageError
from analyzer.pipeline import Analysis, analyze
from analyzer.policy import DESTINATIONS, FINDINGS, build_zones, evaluate
from analyzer.policy.stage import PolicyStage

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SEVERITIES", "StreamedAudit", "audit", "audit_stream", "fails"]

SEVERITIES = ("info", "low", "medium", "high", "critical")


def audit(paths: str | Iterable[str], *, vpc: Sequence[str] = (), zones: str | Path | None = None,
          aws_ip_ranges: str | Path | bool | None = None, profile: str | Path | None = None,
          suppressions: str | Path | None = None, now: Any = None, **analyze_options: Any) -> Analysis:
    """Analyse the captures and judge them. `vpc`: the VPC CIDRs (internal addresses); `zones`: a
    zones TOML file (named zones, peered VPCs, on-premises; VNI/GWLB mappings); `aws_ip_ranges`: a
    copy of AWS's ip-ranges.json instead of the bundled one (False: none); `profile`: sec09
    (default), strict, nist-800-52r2, mozilla-intermediate, pci-dss-4 or a profile TOML;
    `suppressions`: a suppressions TOML; `now`: the date suppressions expire against (default:
    today). Without `vpc` or `zones`, nothing is internal: no flow is called egress."""
    analyze_options.setdefault("frames", None)  # every frame: the rules read tls, certs and credentials
    zone_map = build_zones(vpc=list(vpc), zones=zones, aws_ip_ranges=aws_ip_ranges)
    facts = analyze(paths, **analyze_options)
    credentials = facts["credentials"] if "credentials" in facts.frame_names else None
    ftp_data = facts["ftp_data"] if "ftp_data" in facts.frame_names else None
    judged = evaluate(facts.flows, facts.tls, facts.certs, zones=zone_map, profile=profile,
                      suppressions=suppressions, now=now, credentials=credentials, ftp_data=ftp_data)
    frames: dict[str, pd.DataFrame] = {name: facts[name] for name in facts.frame_names}
    frames["flows"] = judged.flows
    frames["findings"] = judged.findings
    frames["destinations"] = judged.destinations
    schemas: dict[str, Mapping[str, str]] = {**facts.schemas, "findings": FINDINGS, "destinations": DESTINATIONS,
                                             "flows": {str(c): str(t) for c, t in judged.flows.dtypes.items()}}
    stats = {**facts.stats, "profile": judged.profile.name, "zones": [z.name for z in zone_map.zones]}
    return Analysis(frames, schemas=schemas, stats=stats)


class _Discard:
    """A flows sink that drops the chunks: a streamed audit keeps the judgement, not the flows."""

    def write(self, chunk: pd.DataFrame) -> None:
        pass

    def write_table(self, table: Any) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class StreamedAudit:
    """What `audit_stream` returns: the stage (its `tally`, `destinations()`, and `findings()` when no
    sink was given), the analysis (anomalies, sources; its flows frame is empty) and the profile."""

    stage: PolicyStage
    analysis: Analysis

    @property
    def profile(self) -> str:
        return self.stage.profile.name


def audit_stream(paths: str | Iterable[str], *, findings_sink: Any = None, vpc: Sequence[str] = (),
                 zones: str | Path | None = None, aws_ip_ranges: str | Path | bool | None = None,
                 profile: str | Path | None = None, suppressions: str | Path | None = None, now: Any = None,
                 **analyze_options: Any) -> StreamedAudit:
    """`audit()` in bounded memory: the findings go to `findings_sink` (a FrameSink: write(DataFrame))
    chunk by chunk as flows end, the destinations and the summary counts are kept (one row per
    destination). Same keywords as `audit()`; `frames` and `sinks` are the stream's own."""
    from analyzer.config import FlowOptions

    for own in ("frames", "sinks", "stages"):
        if analyze_options.pop(own, None) is not None:
            raise UsageError(f"audit_stream: {own} is set by the streamed audit itself")
    zone_map = build_zones(vpc=list(vpc), zones=zones, aws_ip_ranges=aws_ip_ranges)
    flow = FlowOptions()
    active = analyze_options.get("active_timeout") or flow.active_timeout
    idle = analyze_options.get("idle_timeout_tcp") or flow.idle_timeout_tcp
    stage = PolicyStage(zones=zone_map, profile=profile, suppressions=suppressions, now=now,
                        findings_sink=findings_sink, horizon_s=float(active) + float(idle) + 300.0)
    result = analyze(paths, frames=("flows",), sinks={"flows": _Discard()}, stages=[stage], **analyze_options)
    return StreamedAudit(stage, result)


def fails(findings: pd.DataFrame, fail_on: str) -> bool:
    """Whether any finding that is not suppressed reaches `fail_on` (a severity, or "never")."""
    if fail_on == "never" or not len(findings):
        return False
    floor = SEVERITIES.index(fail_on)
    active = findings[findings["suppressed_by"].isna()] if "suppressed_by" in findings else findings
    ranks = active["severity"].map({s: i for i, s in enumerate(SEVERITIES)})
    return bool((ranks >= floor).any())
