"""One summary of an audit, computed once from its frames and rendered three ways (HTML, Markdown, JSON).

`summarize(result, ...)` reads an audit's frames (`analyzer.audit()`: flows with zones and verdicts,
findings, destinations, certs, tls, anomalies, sources) and returns a `Summary`: `numbers`, a
JSON-ready dict of counts with stable keys (documented in the README; `SCHEMA_VERSION` changes when a
key changes meaning), and `tables`, frames the HTML and Markdown views show (findings with evidence,
destinations, certificates, captures). The renderers (`report.html`, `report.markdown`) format; they
compute nothing, so the three views cannot disagree.

Wire strings (SNI, Host, User-Agent, certificate names, evidence) stay as they were captured here:
each renderer escapes them for its medium (HTML: autoescape + `printable`; Markdown: `md_text`; JSON:
ASCII-only escapes).

A `baseline` (a previous run's findings, `intransit audit --format parquet`) marks every finding
`new` or `unchanged` by its stable `finding_id`, and lists the baseline's findings that are no longer
found as `resolved` - what a weekly report is asked first. Zeek's and Suricata's run summaries
(`stats.log`, `eve` stats, `capture_loss.log`) are the model for the coverage part: say what was read,
what was lost or damaged and what was not judged, next to the verdict, never hidden behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Protocol

from analyzer._version import __version__
from analyzer.policy import RULES
from analyzer.policy.evaluate import FINDINGS, VERDICTS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SCHEMA_VERSION", "Frames", "Summary", "load_baseline", "summarize"]

SCHEMA_VERSION = 1
SEVERITIES_DESC = ("critical", "high", "medium", "low", "info")
PROTECTIONS = ("encrypted", "cleartext", "undecided")
DIRECTIONS = ("egress", "ingress", "internal", "cross_zone", "external", "unknown")
EXAMPLES_PER_RULE = 25  # evidence rows shown per rule in HTML / Markdown (all are in the findings file)
DESTINATIONS_SHOWN = 50
CERTIFICATES_SHOWN = 100
CLEARTEXT_SHOWN = 50


class Frames(Protocol):
    """What `summarize` reads: an `analyzer.Analysis` from `audit()` (frames by name, and stats)."""

    stats: dict[str, object]

    @property
    def frame_names(self) -> tuple[str, ...]: ...

    def __getitem__(self, name: str) -> pd.DataFrame: ...


@dataclass(frozen=True)
class Summary:
    """`numbers`: the JSON view (stable keys). `tables`: frames for the HTML / Markdown views.
    `rule_groups`: per rule (worst severity first), its counts and up to EXAMPLES_PER_RULE findings."""

    numbers: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    rule_groups: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sentence(self) -> str:
        return str(self.numbers["verdict"]["sentence"])


def load_baseline(path: str) -> pd.DataFrame:
    """A previous run's findings (Parquet, as `intransit audit --format parquet --out` writes them);
    a file that is not one is a one-line error."""
    from analyzer._pandas import pd
    from analyzer.errors import UsageError

    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise UsageError(f"--baseline {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"--baseline {path}: not a findings Parquet file ({str(exc).splitlines()[0]})") from None
    missing = [c for c in ("finding_id", "rule", "severity") if c not in frame.columns]
    if missing:
        raise UsageError(f"--baseline {path}: not a findings file (no column {', '.join(missing)}); "
                         "write one with `intransit audit --format parquet --out FILE`")
    for col, dtype in FINDINGS.items():
        if col not in frame:
            frame[col] = pd.Series(index=frame.index, dtype=dtype)
    return frame


def _protection(flows: pd.DataFrame) -> pd.Series:
    return flows["encrypted"].astype("boolean").map({True: "encrypted", False: "cleartext"}).fillna(
        "undecided").astype(str)


def _flow_bytes(flows: pd.DataFrame) -> pd.Series:
    return (flows["ip_bytes_to_server"].astype("Int64").fillna(0)
            + flows["ip_bytes_to_client"].astype("Int64").fillna(0)).astype("int64")


def _traffic(flows: pd.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    """{direction: {protection: {"flows": n, "bytes": n}}} for every direction seen (egress first)."""
    if not len(flows):
        return {}
    direction = flows["direction"].astype("string").fillna("unknown") if "direction" in flows else None
    frame = flows.assign(_d=direction if direction is not None else "unknown", _p=_protection(flows),
                         _b=_flow_bytes(flows))
    grouped = frame.groupby(["_d", "_p"])["_b"].agg(["size", "sum"])
    seen = [d for d in DIRECTIONS if d in grouped.index.get_level_values(0)]
    seen += sorted(set(grouped.index.get_level_values(0)) - set(seen))
    cells = {key: (int(row[0]), int(row[1])) for key, row in zip(grouped.index, grouped.to_numpy(), strict=True)}
    out: dict[str, dict[str, dict[str, int]]] = {}
    for d in seen:
        out[d] = {p: dict(zip(("flows", "bytes"), cells.get((d, p), (0, 0)), strict=True)) for p in PROTECTIONS}
    return out


def _not_judged(flows: pd.DataFrame) -> dict[str, Any]:
    """Flows with verdict `unknown`, by why: no payload at all, a protocol no dissector recognised,
    or a recognised protocol whose encryption could not be decided (a failed handshake, ...)."""
    if not len(flows) or "verdict" not in flows:
        return {"total": 0, "no_payload": 0, "unrecognised_protocol": 0, "undecided": 0, "by_reason": {}}
    unjudged = flows[flows["verdict"].eq("unknown").fillna(False).to_numpy(dtype=bool)]
    no_payload = ((unjudged["payload_bytes_to_server"].fillna(0) + unjudged["payload_bytes_to_client"].fillna(0))
                  == 0).to_numpy(dtype=bool)
    unrecognised = unjudged["app_protocol"].isna().to_numpy(dtype=bool) & ~no_payload
    by_reason: dict[str, int] = {}
    if "undecided_reason" in unjudged:
        counts = unjudged["undecided_reason"].dropna().value_counts().sort_index()
        by_reason = {str(k): int(v) for k, v in counts.items()}
    return {"total": len(unjudged), "no_payload": int(no_payload.sum()),
            "unrecognised_protocol": int(unrecognised.sum()),
            "undecided": int(len(unjudged) - no_payload.sum() - unrecognised.sum()), "by_reason": by_reason}


def _changes(findings: pd.DataFrame, baseline: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(findings with a `change` column: new / unchanged, or null without a baseline; the
    baseline's findings no longer found, with change = resolved)."""
    from analyzer._pandas import pd

    if baseline is None:
        return findings.assign(change=pd.Series(pd.NA, index=findings.index, dtype="string")), findings.iloc[:0]
    old = set(baseline["finding_id"].astype("string").dropna())
    now = findings["finding_id"].astype("string")
    marked = findings.assign(change=pd.Series(["unchanged" if f in old else "new" for f in now],
                                              index=findings.index, dtype="string"))
    gone = baseline[~baseline["finding_id"].astype("string").isin(set(now.dropna()))]
    resolved = gone.assign(change=pd.Series("resolved", index=gone.index, dtype="string"))
    return marked, resolved.reset_index(drop=True)


def _rule_groups(findings: pd.DataFrame, resolved: pd.DataFrame) -> list[dict[str, Any]]:
    """Per rule, worst severity first: title, severity, counts (active, suppressed, new, resolved)
    and the first findings with their evidence."""
    groups: list[dict[str, Any]] = []
    rank = {s: i for i, s in enumerate(SEVERITIES_DESC)}
    rules = set(findings["rule"].dropna().astype(str)) | set(resolved["rule"].dropna().astype(str))
    for rid in rules:
        mine = findings[findings["rule"].eq(rid).fillna(False).to_numpy(dtype=bool)]
        gone = resolved[resolved["rule"].eq(rid).fillna(False).to_numpy(dtype=bool)]
        active = mine[mine["suppressed_by"].isna().to_numpy(dtype=bool)]
        seen = (mine if len(mine) else gone)["severity"].dropna().astype(str)
        severity = min(seen, key=lambda s: rank.get(s, 9)) if len(seen) else "info"
        rule = RULES.get(rid)
        groups.append({
            "rule": rid, "title": rule.title if rule else rid, "severity": severity,
            "findings": len(active), "suppressed": len(mine) - len(active),
            "new": int(mine["change"].eq("new").fillna(False).sum()), "resolved": len(gone),
            "examples": mine.head(EXAMPLES_PER_RULE), "resolved_examples": gone.head(EXAMPLES_PER_RULE),
        })
    groups.sort(key=lambda g: (rank.get(g["severity"], 9), -g["findings"], g["rule"]))
    return groups


def _cleartext(flows: pd.DataFrame) -> pd.DataFrame:
    """Cleartext flows grouped by where they went and what spoke (direction, server, port, protocol,
    HTTP Host and User-Agent), egress first, then by bytes: what to fix first."""
    from analyzer._pandas import pd

    cols = ["direction", "server_ip", "server_port", "app_protocol", "http_host", "http_user_agent"]
    if not len(flows):
        return pd.DataFrame({c: pd.Series(dtype="string") for c in [*cols, "flows", "bytes"]})
    clear = flows[flows["encrypted"].astype("boolean").eq(False).fillna(False).to_numpy(dtype=bool)]
    keys = pd.DataFrame({c: (clear[c].astype("string").fillna("-") if c in clear else
                             pd.Series("-", index=clear.index, dtype="string")) for c in cols})
    keys["bytes"] = _flow_bytes(clear)
    grouped = keys.groupby(cols, sort=False)["bytes"].agg(["size", "sum"]).reset_index()
    grouped = grouped.rename(columns={"size": "flows", "sum": "bytes"})
    grouped["_egress"] = grouped["direction"].ne("egress")
    return (grouped.sort_values(["_egress", "bytes", "server_ip"], ascending=[True, False, True], kind="stable")
            .drop(columns="_egress").reset_index(drop=True))


def _certificates(certs: pd.DataFrame, at: Any) -> pd.DataFrame:
    """Certificates with the days each had left at `at` (the end of the capture), soonest first."""
    from analyzer._pandas import pd

    cols = ["subject_cn", "issuer_cn", "san_dns", "not_after", "key_type", "key_bits", "signature_algorithm",
            "self_signed", "sessions", "sha256"]
    frame = certs[[c for c in cols if c in certs]].copy()
    if at is None or not len(frame):
        frame["days_left"] = pd.Series(dtype="Int64")
        return frame
    days = ((frame["not_after"] - at).dt.total_seconds() // 86400).astype("Int64")
    frame["days_left"] = days
    return frame.sort_values(["days_left", "subject_cn"], na_position="last", kind="stable").reset_index(drop=True)


def _captures(sources: pd.DataFrame, flows: pd.DataFrame, anomalies: pd.DataFrame) -> pd.DataFrame:
    """Per capture: status, packets, flows, flows cut short (a packet cut by the snaplen / mirror
    packet length, or a TLS-family handshake message cut), anomalies (summing each row's count), and
    the problem when it was not read whole."""
    from analyzer._pandas import pd

    frame = sources[["source", "status", "packets", "problem"]].copy().reset_index(drop=True)
    src = frame["source"].astype("string")
    if len(flows) and "source" in flows:
        per = flows.groupby(flows["source"].astype("string"))
        frame["flows"] = src.map(per.size()).fillna(0).astype("Int64")
        trunc = flows["truncated"].astype("boolean").fillna(False).astype("int64")
        frame["truncated_flows"] = src.map(trunc.groupby(flows["source"].astype("string")).sum()).fillna(0).astype(
            "Int64")
    else:
        frame["flows"] = pd.array([0] * len(frame), dtype="Int64")
        frame["truncated_flows"] = pd.array([0] * len(frame), dtype="Int64")
    if len(anomalies):
        counts = anomalies["count"].astype("Int64").fillna(1).groupby(anomalies["source"].astype("string")).sum()
        frame["anomalies"] = src.map(counts).fillna(0).astype("Int64")
    else:
        frame["anomalies"] = pd.array([0] * len(frame), dtype="Int64")
    return frame[["source", "status", "packets", "flows", "truncated_flows", "anomalies", "problem"]]


def _subject(captures: pd.DataFrame, n_flows: int) -> str:
    """What the capture was, for titles: its file names (the first three) and the size."""
    names = [PurePath(str(s)).name for s in captures["source"].astype(str)] if len(captures) else []
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    if not names:
        return "no capture"
    return f"{shown} ({len(names)} capture{'s' * (len(names) != 1)}, {n_flows:,} flow{'s' * (n_flows != 1)})"


def _sentence(verdicts: dict[str, int], by_severity: dict[str, int], profile: str, egress: dict[str, Any],
              changes: dict[str, int] | None, zoned: bool) -> tuple[str, str]:
    """(status, one sentence): what changed first when there is a baseline, then the verdict."""
    total = sum(verdicts.values())
    if verdicts["fail"]:
        status = "fail"
    elif verdicts["warn"]:
        status = "warn"
    elif verdicts["ok"]:
        status = "pass"
    else:
        status = "not judged"
    worst = [f"{by_severity[s]} {s}" for s in SEVERITIES_DESC if by_severity[s]]
    head = {"fail": f"Fails the {profile} profile", "warn": f"Passes the {profile} profile with warnings",
            "pass": f"Passes the {profile} profile",
            "not judged": f"Nothing could be judged against the {profile} profile"}[status]
    parts = [f"{head}: {verdicts['fail']} of {total} flow{'s' * (total != 1)} fail and {verdicts['warn']} warn"]
    parts[0] += f" ({', '.join(worst)} findings)" if worst else " (no finding)"
    clear_egress = egress.get("egress", {}).get("cleartext", {}).get("flows", 0)
    if zoned:
        parts.append(f"{clear_egress} egress flow{'s' * (clear_egress != 1)} in clear text")
    else:
        parts.append("no VPC or zones given, so no flow is called egress")
    if verdicts["unknown"]:
        parts.append(f"{verdicts['unknown']} not judged")
    sentence = "; ".join(parts) + "."
    if changes is not None:
        sentence = (f"Since the baseline: {changes['new']} new finding{'s' * (changes['new'] != 1)}, "
                    f"{changes['resolved']} resolved, {changes['unchanged']} unchanged. ") + sentence
    return status, sentence


def _names(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _iso(ts: Any) -> str | None:
    from analyzer._pandas import pd

    return None if ts is None or pd.isna(ts) else pd.Timestamp(ts).isoformat()


def summarize(result: Frames, *, vpc: Sequence[str] = (), zones: str | None = None, profile: str | None = None,
              suppressions: str | None = None, aws_ip_ranges: str | None = None,
              baseline: pd.DataFrame | None = None, baseline_name: str | None = None,
              generated_at: Any = None) -> Summary:
    """The summary of an audit (`analyzer.audit()`'s result); `vpc`, `zones`, `profile`,
    `suppressions`, `aws_ip_ranges` as given to the audit (for the method section); `baseline`: a
    previous run's findings (`load_baseline`); `generated_at`: when (default: now)."""
    from analyzer._pandas import pd

    flows, findings, dest = result["flows"], result["findings"], result["destinations"]
    certs, tls = result["certs"], result["tls"]
    anomalies, sources = result["anomalies"], result["sources"]
    generated = pd.Timestamp.now(tz="UTC") if generated_at is None else pd.Timestamp(generated_at)
    zoned = bool(vpc) or zones is not None
    profile_name = str(result.stats.get("profile") or profile or "sec09")

    first = flows["ts_start"].min() if len(flows) else None
    last = flows["ts_end"].max() if len(flows) else None
    verdict_counts = flows["verdict"].value_counts() if "verdict" in flows else pd.Series(dtype="int64")
    verdicts = {v: int(verdict_counts.get(v, 0)) for v in VERDICTS}

    marked, resolved = _changes(findings, baseline)
    active = marked[marked["suppressed_by"].isna().to_numpy(dtype=bool)]
    sev = active["severity"].value_counts()
    by_severity = {s: int(sev.get(s, 0)) for s in SEVERITIES_DESC}
    groups = _rule_groups(marked, resolved)
    changes = None if baseline is None else {
        "new": int(marked["change"].eq("new").fillna(False).sum()),
        "unchanged": int(marked["change"].eq("unchanged").fillna(False).sum()),
        "resolved": len(resolved),
    }
    traffic = _traffic(flows)
    status, sentence = _sentence(verdicts, by_severity, profile_name, traffic, changes, zoned)

    captures = _captures(sources, flows, anomalies)
    read = captures[captures["status"].isin(["ok", "damaged", "truncated"]) | captures["packets"].fillna(0).gt(0)]
    grades = dest["grade"].astype("string").fillna("not judged").value_counts() if len(dest) else pd.Series(
        dtype="int64")
    cert_table = _certificates(certs, last)
    versions = tls["version"].astype("string").dropna().value_counts() if len(tls) else pd.Series(dtype="int64")
    ciphers = tls["cipher"].astype("string").dropna().value_counts() if len(tls) else pd.Series(dtype="int64")
    anomaly_kinds = (anomalies["count"].astype("Int64").fillna(1).groupby(
        anomalies["layer"].astype("string") + "/" + anomalies["kind"].astype("string")).sum()
        if len(anomalies) else pd.Series(dtype="int64"))

    numbers: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "tool": {"name": "intransit", "version": __version__},
        "generated_at": _iso(generated),
        "subject": _subject(read, len(flows)),
        "verdict": {"status": status, "sentence": sentence},
        "changes": None if changes is None else {**changes, "baseline": baseline_name},
        "capture": {"first_packet": _iso(first), "last_packet": _iso(last), "captures": len(read),
                    "packets": int(sources["packets"].fillna(0).sum()), "flows": len(flows)},
        "flows": {"total": len(flows), **verdicts},
        "findings": {"total": len(active), "suppressed": len(marked) - len(active), "by_severity": by_severity,
                     "by_rule": {g["rule"]: {"severity": g["severity"], "findings": g["findings"],
                                             "suppressed": g["suppressed"],
                                             **({"new": g["new"], "resolved": g["resolved"]} if changes else {})}
                                 for g in groups}},
        "traffic": traffic,
        "destinations": {"total": len(dest), "by_grade": {str(k): int(v) for k, v in sorted(grades.items())}},
        "certificates": {"total": len(certs),
                         "expired": int(cert_table["days_left"].lt(0).fillna(False).sum()),
                         "expiring_30_days": int(cert_table["days_left"].between(0, 29).fillna(False).sum()),
                         "self_signed": int(cert_table["self_signed"].astype("boolean").fillna(False).sum())
                         if "self_signed" in cert_table else 0},
        "tls": {"sessions": len(tls), "versions": {str(k): int(v) for k, v in versions.items()},
                "ciphers": {str(k): int(v) for k, v in ciphers.items()}},
        "coverage": {"captures_read": len(read), "captures_not_read": len(captures) - len(read),
                     "packets": int(sources["packets"].fillna(0).sum()),
                     "truncated_flows": int(captures["truncated_flows"].sum()),
                     "anomalies": int(anomaly_kinds.sum()) if len(anomaly_kinds) else 0,
                     "anomalies_by_kind": {str(k): int(v) for k, v in anomaly_kinds.items()},
                     "not_judged": _not_judged(flows)},
        "method": {"profile": profile_name, "vpc": list(vpc), "zones_file": zones,
                   "zones": _names(result.stats.get("zones")),
                   "suppressions_file": suppressions, "aws_ip_ranges": aws_ip_ranges or "bundled"},
    }
    tables = {
        "captures": captures,
        "cleartext": _cleartext(flows).head(CLEARTEXT_SHOWN),
        "destinations": dest.head(DESTINATIONS_SHOWN),
        "certificates": cert_table.head(CERTIFICATES_SHOWN),
        "versions": versions.rename_axis("version").reset_index(name="sessions"),
        "ciphers": ciphers.rename_axis("cipher").reset_index(name="sessions"),
        "findings": marked,
        "resolved": resolved,
    }
    return Summary(numbers, tables, groups)

