# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Batch report: a folder of captures, summarised
# The normal input is a directory of rotated mirror captures (a day of them). Read them all in one run
# (a flow that spans two files is one flow), judge them against the policy, and show the summary, what
# was read, and the plots. Set `CAPTURES` to your folder and `VPC_CIDRS` to your VPC.

# %%
# %matplotlib inline
import sys
from pathlib import Path

import pandas as pd

import analyzer
from analyzer import plots
from analyzer.report.progress import ProgressBar
from analyzer.report.style import highlight_problems

CAPTURES = [str(Path("..") / "captures") if Path("../captures").is_dir() else "captures"]
VPC_CIDRS = ["10.77.0.0/28", "10.88.0.0/28", "10.89.0.0/28", "10.90.0.0/28", "fd77::/123",
             "10.81.0.0/24", "10.82.0.0/24", "10.83.0.0/24"]  # the recording scripts of the capture groups

bar = ProgressBar(sys.stderr)  # files, packets, bytes per second and time left while it reads
try:
    result = analyzer.audit(CAPTURES, vpc=VPC_CIDRS, on_progress=bar)
finally:
    bar.close()
flows, findings, destinations = result.flows, result.findings, result.destinations

# %% [markdown]
# ## The summary
# The verdict in one sentence, then the counts.

# %%
SEVERITIES = ["critical", "high", "medium", "low", "info"]
active = findings[findings["suppressed_by"].isna()]
by_severity = active["severity"].value_counts().reindex(SEVERITIES, fill_value=0)
verdicts = flows["verdict"].value_counts().reindex(["ok", "warn", "fail", "unknown"], fill_value=0)
worst = next((s for s in SEVERITIES if by_severity[s]), None)
print(f"{len(flows)} flows in {int(result.sources['status'].isin(['ok', 'partial']).sum())} captures "
      f"({result.stats['profile']} profile): "
      + (f"{len(active)} findings, the worst {worst}." if worst else "no finding."))
pd.DataFrame({"flows": verdicts}).T

# %%
pd.DataFrame({"findings": by_severity}).T

# %% [markdown]
# ## What was read
# One row per capture: packets, and whether it was read whole (`ok`), in part (`partial`, with the byte
# offset where reading stopped), passed over (`skipped`) or found to be a copy of another (`duplicate`).
# Nothing is judged from what was not read.

# %%
result.sources

# %%
result.anomalies.groupby(["layer", "kind"], dropna=False)["count"].sum().rename("count").reset_index()

# %% [markdown]
# ## Protection
# Share of bytes and of flows that were encrypted, in clear text, or undecided, by direction.

# %%
share_bytes = plots.protection_share(flows, weight="bytes")
share_bytes

# %%
share_flows = plots.protection_share(flows, weight="flows")
share_flows

# %%
versions = plots.tls_versions_over_time(flows)
versions

# %%
cleartext_top = plots.top_cleartext_destinations(flows)
cleartext_top

# %% [markdown]
# ## Findings
# By rule and severity, then the findings themselves (problem rows stand out).

# %%
by_rule = plots.findings_by_rule(findings)
by_rule

# %%
highlight_problems(active[["severity", "rule", "direction", "client_ip", "server_ip", "server_port", "server_name",
                           "evidence"]].head(25))

# %% [markdown]
# ## Destinations
# One row per server: share encrypted, worst severity, a 0-100 score and an A-F grade.

# %%
grades = plots.destinations_by_grade(destinations)
grades

# %%
highlight_problems(destinations.sort_values(["score", "destination"], na_position="last"))

# %% [markdown]
# ## Certificates
# Days each certificate had left when the captures were taken (not today): expired ones are marked.

# %%
runway = plots.certificate_runway(result.certs, at=flows["ts_start"].max())
runway

# %% [markdown]
# ## The report
# The same audit as one self-contained HTML page (it works offline: figures embedded, no script, a
# strict Content-Security-Policy) and its Markdown summary, which is what a pull request or a CI job
# summary would show. `intransit report captures/ --vpc ... --out report.html` writes the same page.

# %%
import tempfile  # noqa: E402

from IPython.display import Markdown  # noqa: E402

from analyzer.report import render_report  # noqa: E402

report_path = Path(tempfile.gettempdir()) / "intransit_batch_report.html"
report_path.write_text(render_report(result, "html", vpc=VPC_CIDRS), encoding="utf-8")
print(f"wrote {report_path}: {report_path.stat().st_size:,} bytes")
Markdown(render_report(result, "md", vpc=VPC_CIDRS))
