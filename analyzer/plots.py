"""Plots of an analysis: each a function from frames to a matplotlib `Figure`.

matplotlib's object API only (`Figure`, never pyplot's global state), so a figure renders the same in
a notebook (a `Figure` displays itself), in a test and in a report. Readable by default: count axes
take integer ticks, axes say their unit, colours come from the Okabe-Ito palette (distinguishable with
the common colour-vision deficiencies), and the title says what was analysed (`subtitle`, by default
the capture names in the frame's `source` column).

Plots of facts work on any analysis; those of judgements (`findings_by_rule`, `destinations_by_grade`)
take the policy layer's frames, and `protection_share` groups by `direction` when the flows carry it.
Wire strings (server names) are drawn as text, never interpreted: matplotlib's mathtext is turned
off for them (a `$` in an SNI stays a dollar).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analyzer.report.units import human_bytes

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "OKABE_ITO",
    "certificate_runway",
    "destinations_by_grade",
    "findings_by_rule",
    "protection_share",
    "tls_versions_over_time",
    "top_cleartext_destinations",
]

# Okabe & Ito (2008), "Color Universal Design": orange, sky blue, bluish green, yellow, blue,
# vermillion, reddish purple, grey.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")
PROTECTION_COLOURS = {"encrypted": "#009E73", "cleartext": "#D55E00", "undecided": "#999999"}
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
SEVERITY_COLOURS = {"critical": "#CC79A7", "high": "#D55E00", "medium": "#E69F00", "low": "#56B4E9",
                    "info": "#999999"}
GRADE_COLOURS = {"A": "#009E73", "B": "#56B4E9", "C": "#F0E442", "D": "#E69F00", "E": "#D55E00",
                 "F": "#D55E00"}


def _subtitle(frame: pd.DataFrame, subtitle: str | None) -> str:
    if subtitle is not None:
        return subtitle
    if "source" not in frame or not len(frame):
        return ""
    names = sorted({PurePath(str(s)).name for s in frame["source"].dropna().unique()})
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{shown} ({len(frame):,} flows)" if shown else ""


def _figure(title: str, subtitle: str, size: tuple[float, float] = (8.0, 4.0)) -> tuple[Figure, Any]:
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    fig.suptitle(title, fontsize="large", fontweight="bold")
    if subtitle:
        ax.set_title(_literal(subtitle), fontsize="small", color="#444444")
    return fig, ax


def _literal(text: str) -> str:
    """Text drawn as it is: matplotlib would read `$...$` as mathtext."""
    return text.replace("$", r"\$")


def _label(text: str, width: int = 48) -> str:
    """A tick label of a wire string: drawn literally, and cut to `width` characters (keeping the end,
    where a destination's port is) so that one long name cannot squeeze the bars out of the figure."""
    if len(text) > width:
        text = text[: width - 13] + "…" + text[-12:]
    return _literal(text)


def _legend(fig: Figure, ax: Any) -> None:
    """The legend in one row under the axes, where it covers no bar."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=max(len(labels), 1), fontsize="small",
               frameon=False)


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this analysis", ha="center", va="center", transform=ax.transAxes,
            color="#444444")
    ax.set_xticks([])
    ax.set_yticks([])


def _protection(flows: pd.DataFrame) -> pd.Series:
    """encrypted / cleartext / undecided per flow, from the `encrypted` fact (NA: undecided)."""
    enc = flows["encrypted"]
    return enc.map({True: "encrypted", False: "cleartext"}).fillna("undecided").astype(str)


def protection_share(flows: pd.DataFrame, *, by: str | None = None, weight: str = "bytes",
                     subtitle: str | None = None) -> Figure:
    """Share of flows (or bytes) encrypted, in clear text, and undecided, per group: per `direction`
    (egress, ingress, internal, ...) when the flows carry it (the policy layer adds it), else per
    application protocol. `weight` is "bytes" (IP bytes both ways) or "flows"."""
    if weight not in ("bytes", "flows"):
        raise ValueError("weight must be 'bytes' or 'flows'")
    by = by or ("direction" if "direction" in flows else "app_protocol")
    fig, ax = _figure(f"Encrypted and cleartext traffic by {by.replace('_', ' ')}", _subtitle(flows, subtitle))
    if not len(flows):
        _empty(ax, "flows")
        return fig
    frame = flows.assign(protection=_protection(flows), group=flows[by].astype("string").fillna("unknown"))
    if weight == "bytes":
        frame = frame.assign(w=flows["ip_bytes_to_server"].fillna(0) + flows["ip_bytes_to_client"].fillna(0))
    else:
        frame = frame.assign(w=1)
    table = frame.pivot_table(index="group", columns="protection", values="w", aggfunc="sum", fill_value=0)
    totals = table.sum(axis=1)
    table = table.loc[totals.sort_values().index]
    share = table.div(totals.where(totals > 0, 1), axis=0) * 100
    left: Any = 0.0
    for name, colour in PROTECTION_COLOURS.items():
        if name not in share:
            continue
        ax.barh([_literal(str(g)) for g in share.index], share[name].to_numpy(), left=left, color=colour,
                label=name)
        left = left + share[name].to_numpy()
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"share of {'bytes' if weight == 'bytes' else 'flows'} (%)")
    _legend(fig, ax)
    for y, total in enumerate(totals.loc[share.index]):
        label = human_bytes(total) if weight == "bytes" else f"{int(total):,} flows"
        ax.text(100, y, f" {label}", va="center", fontsize="x-small", clip_on=False)
    return fig




def tls_versions_over_time(flows: pd.DataFrame, *, freq: str | None = None, subtitle: str | None = None) -> Figure:
    """Flows per negotiated TLS/DTLS version in each time bin (stacked bars); `freq` is a pandas
    frequency ("1h", "1D"); by default one that gives at most about 24 bins."""
    from analyzer._pandas import pd

    fig, ax = _figure("TLS versions negotiated over time", _subtitle(flows, subtitle))
    tls = flows[flows["tls_version"].notna()] if len(flows) else flows
    if not len(tls):
        _empty(ax, "TLS sessions")
        return fig
    start, end = tls["ts_start"].min(), tls["ts_start"].max()
    if freq is None:
        span = max((end - start).total_seconds(), 1.0)
        steps = [("1s", 1), ("1min", 60), ("5min", 300), ("15min", 900), ("1h", 3600), ("6h", 21600),
                 ("1D", 86400), ("7D", 604800)]
        freq = next((f for f, s in steps if span / s <= 24), "30D")
    bins = tls["ts_start"].dt.floor(freq)
    table = pd.crosstab(bins, tls["tls_version"].astype(str)).sort_index()
    order = sorted(table.columns, key=_version_rank)
    bottom = None
    labels = [t.strftime("%Y-%m-%d %H:%M:%S UTC" if freq.endswith("s") else "%Y-%m-%d %H:%M UTC")
              for t in table.index]
    for i, version in enumerate(order):
        values = table[version].to_numpy()
        ax.bar(range(len(labels)), values, bottom=bottom, label=version, color=_version_colour(version, i))
        bottom = values if bottom is None else bottom + values
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize="x-small")
    ax.set_xlabel(f"time bin ({freq})")
    ax.set_ylabel("flows")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(fig, ax)
    return fig


_VERSION_RANK = {"SSL 2.0": 0, "SSL 3.0": 1, "TLS 1.0": 2, "DTLS 1.0": 2, "TLS 1.1": 3, "TLS 1.2": 4,
                 "DTLS 1.2": 4, "TLS 1.3": 5, "DTLS 1.3": 5}


def _version_rank(version: str) -> tuple[int, str]:
    return _VERSION_RANK.get(version, 9), version


def _version_colour(version: str, i: int) -> str:
    rank = _VERSION_RANK.get(version)
    if rank is None:
        return OKABE_ITO[7]
    return ("#CC79A7", "#D55E00", "#E69F00", "#F0E442", "#56B4E9", "#009E73")[rank]


def _destination(flows: pd.DataFrame) -> pd.Series:
    """The server as a person names it: the SNI (or another name column) when known, else its
    address, with the port."""
    name = flows["server_ip"].astype("string")
    for column in ("server_name", "http_host", "tls_server_name"):
        if column in flows:
            name = flows[column].astype("string").fillna(name)
    return name + ":" + flows["server_port"].astype("string").fillna("-")


def top_cleartext_destinations(flows: pd.DataFrame, *, n: int = 10, egress_only: bool = True,
                               subtitle: str | None = None) -> Figure:
    """The destinations that received the most bytes in clear text (`encrypted` False), egress only
    when the flows carry `direction` (the policy layer adds it) and `egress_only` is set."""
    fig, ax = _figure("Top cleartext destinations" + (" (egress)" if egress_only and "direction" in flows else ""),
                      _subtitle(flows, subtitle))
    clear = flows[flows["encrypted"].eq(False).fillna(False)] if len(flows) else flows
    if egress_only and "direction" in clear:
        clear = clear[clear["direction"].eq("egress").fillna(False)]
    if not len(clear):
        _empty(ax, "cleartext flows")
        return fig
    volume = (clear["ip_bytes_to_server"].fillna(0) + clear["ip_bytes_to_client"].fillna(0)).astype("float64")
    top = volume.groupby(_destination(clear)).sum().sort_values().tail(n)
    ax.barh([_label(str(d)) for d in top.index], top.to_numpy(), color=PROTECTION_COLOURS["cleartext"])
    ax.set_xlabel("bytes in clear text (both directions)")
    for y, v in enumerate(top.to_numpy()):
        ax.text(v, y, f" {human_bytes(float(v))}", va="center", fontsize="x-small")
    return fig


def certificate_runway(certs: pd.DataFrame, at: Any, *, n: int = 20, subtitle: str | None = None) -> Figure:
    """Days each certificate had left at `at`, the moment that matters: the capture's (e.g.
    `result.flows.ts_end.max()`), not the run's; expired certificates are drawn below zero in
    vermillion. The `n` closest to expiry are shown."""
    from analyzer._pandas import pd

    fig, ax = _figure("Certificate expiry runway", subtitle or "")
    dated = certs[certs["not_after"].notna()] if len(certs) else certs
    if not len(dated):
        _empty(ax, "certificates with a validity date")
        return fig
    when = pd.Timestamp(at)
    if when.tzinfo is None:
        when = when.tz_localize("UTC")
    days = ((dated["not_after"] - when).dt.total_seconds() / 86400).astype("float64")
    names = dated["subject_cn"].astype("string").fillna(dated["sha256"].str.slice(0, 12))
    order = days.sort_values().head(n).index
    values = days.loc[order].to_numpy()
    colours = [PROTECTION_COLOURS["cleartext"] if d < 0 else "#0072B2" for d in values]
    ax.barh([_label(str(x)) for x in names.loc[order]], values, color=colours)
    ax.axvline(0, color="#444444", linewidth=0.8)
    ax.set_xlabel(f"days left on {when:%Y-%m-%d} (negative: expired)")
    return fig


def findings_by_rule(findings: pd.DataFrame, *, subtitle: str | None = None) -> Figure:
    """Findings per rule, stacked by severity (the policy layer's `findings` frame)."""
    from analyzer._pandas import pd

    fig, ax = _figure("Findings by rule and severity", subtitle or "")
    if not len(findings):
        _empty(ax, "findings")
        return fig
    table = pd.crosstab(findings["rule"].astype(str), findings["severity"].astype(str))
    table = table.loc[table.sum(axis=1).sort_values().index]
    left = None
    for severity in [s for s in SEVERITY_ORDER if s in table] + [s for s in table if s not in SEVERITY_ORDER]:
        values = table[severity].to_numpy()
        ax.barh(list(table.index), values, left=left, label=severity,
                color=SEVERITY_COLOURS.get(str(severity), "#999999"))
        left = values if left is None else left + values
    ax.set_xlabel("findings")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(fig, ax)
    return fig


def destinations_by_grade(destinations: pd.DataFrame, *, grades: Sequence[str] = ("A", "B", "C", "D", "E", "F"),
                          subtitle: str | None = None) -> Figure:
    """Destinations per grade (the policy layer's `destinations` frame)."""
    fig, ax = _figure("Destinations by grade", subtitle or "")
    if not len(destinations):
        _empty(ax, "destinations")
        return fig
    # a destination without a grade (nothing judged) is its own bar, in grey, never "<NA>"
    counts = destinations["grade"].astype("string").fillna("not judged").value_counts()
    shown = [g for g in grades if g in counts.index] + sorted(g for g in counts.index if g not in grades)
    ax.bar(shown, [int(counts[g]) for g in shown], color=[GRADE_COLOURS.get(g, "#999999") for g in shown])
    ax.set_xlabel("grade (A best, F worst)")
    ax.set_ylabel("destinations")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig
