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
# # Egress investigation: what leaves the VPC unprotected?
# Given the VPC's CIDRs, find the traffic that leaves it in clear text or over legacy TLS, then drill
# into one destination: its flows, its certificates, the fingerprints of the clients that talk to it.
#
# In the bundled captures the clients sit in `10.77.0.0/28` (and, behind VXLAN/GENEVE mirroring, in
# `10.88-90.0.0/28`); the servers at `.20` play the outside world. Set `CAPTURES` and `VPC_CIDRS` to yours.

# %%
# %matplotlib inline
from pathlib import Path

import pandas as pd

import analyzer
from analyzer import plots
from analyzer.report.style import highlight_problems

CAPTURES = [str(Path("..") / "captures") if Path("../captures").is_dir() else "captures"]
VPC_CIDRS = ["10.77.0.0/28", "10.88.0.0/28", "10.89.0.0/28", "10.90.0.0/28", "fd77::/123",
             "10.81.0.0/24", "10.82.0.0/24", "10.83.0.0/24"]  # the recording scripts of the capture groups
LEGACY_TLS = ["SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1", "DTLS 1.0"]

result = analyzer.audit(CAPTURES, vpc=VPC_CIDRS)  # facts (analyze) judged by the sec09 profile
flows = result.flows
result

# %% [markdown]
# ## Where does the traffic go, and how much of it is protected?
# `direction` comes from the zones: egress is from the VPC to outside every internal zone.
# A flow whose protection could not be decided (no payload, unknown protocol) is *undecided*, never cleartext.

# %%
protection = flows["encrypted"].map({True: "encrypted", False: "cleartext"}).fillna("undecided").rename("protection")
pd.crosstab(flows["direction"], protection, margins=True, margins_name="all")

# %%
share = plots.protection_share(flows, weight="bytes")
share

# %% [markdown]
# ## Cleartext and legacy-TLS egress
# Problem rows stand out (`analyzer.report.style.highlight_problems`: verdict, then severity, grade,
# `encrypted`); strings from the wire are shown as inert text.

# %%
egress = flows[flows["direction"] == "egress"]
cleartext = egress[egress["encrypted"].eq(False).fillna(False)]
legacy = egress[egress["tls_version"].isin(LEGACY_TLS).fillna(False)]
print(f"{len(egress)} egress flows: {len(cleartext)} in clear text, {len(legacy)} over legacy TLS")
COLUMNS = ["ts_start", "client_ip", "server_ip", "server_port", "app_protocol", "tls_version", "tls_server_name",
           "http_host", "verdict", "finding_count"]
highlight_problems(pd.concat([cleartext, legacy])[COLUMNS].sort_values("ts_start"))

# %%
cleartext_top = plots.top_cleartext_destinations(flows)
cleartext_top

# %% [markdown]
# What the policy says about that egress, rule by rule (suppressed findings are kept, marked).

# %%
egress_findings = result.findings[result.findings["direction"] == "egress"]
highlight_problems(egress_findings.groupby(["rule", "severity"], sort=False).size().rename("findings")
                   .reset_index().sort_values("findings", ascending=False))

# %%
by_rule = plots.findings_by_rule(egress_findings)
by_rule

# %% [markdown]
# ## Drill into one destination
# The worst-scored destination that showed a certificate (a score of 0-100 and a grade per server; see
# `analyzer/policy/evaluate.py`). Change `DESTINATION` to look at another.

# %%
destinations = result.destinations
with_certs = set(flows.loc[flows["cert_sha256"].notna(), "tls_server_name"].dropna())
tls_destinations = destinations[(destinations["encrypted_flow_share"] > 0)
                                & destinations["destination"].isin(with_certs)]
worst = tls_destinations.sort_values(["score", "findings"], ascending=[True, False]).iloc[0]
DESTINATION, PORT = worst["destination"], int(worst["server_port"])
highlight_problems(destinations[destinations["destination"] == DESTINATION])

# %% [markdown]
# Its flows: a destination is its server name (SNI, else the HTTP Host), or its address when it has none.

# %%
name = flows["tls_server_name"].fillna(flows["http_host"])
mine = flows[((name == DESTINATION) | (flows["server_ip"] == DESTINATION)).fillna(False)
             & (flows["server_port"] == PORT)]
highlight_problems(mine[COLUMNS + ["tls_cipher"]])

# %% [markdown]
# Its TLS sessions and the fingerprints on both sides: JA3/JA4 name the client software, JA3S/JA4S the
# server's answer. One client fingerprint across many flows is one piece of software.

# %%
sessions = result.tls[result.tls["uid"].isin(mine["uid"])]
highlight_problems(sessions[["ts", "client_ip", "version", "cipher", "server_name", "established", "ja4", "ja4s",
                             "ja3"]])

# %%
sessions.groupby(["ja4", "version"], dropna=False).size().rename("sessions").reset_index()

# %% [markdown]
# Its certificates (through `cert_links`: which session was shown which certificate, leaf first).

# %%
links = result.cert_links[result.cert_links["uid"].isin(sessions["uid"])]
certs = result.certs[result.certs["sha256"].isin(links["sha256"])]
certs[["subject_cn", "issuer_cn", "not_before", "not_after", "key_type", "key_bits", "signature_hash",
       "self_signed", "sessions"]]

# %% [markdown]
# The same destination in pictures: its TLS versions over the capture, and how long its certificates had
# left when they were seen (the capture's time, not today's).

# %%
versions = plots.tls_versions_over_time(mine, subtitle=f"{DESTINATION}:{PORT}")
versions

# %%
runway = plots.certificate_runway(certs, at=mine["ts_start"].max(), subtitle=f"{DESTINATION}:{PORT}")
runway

# %% [markdown]
# Every finding about it, with its evidence: what to fix, and where.

# %%
about = result.findings[result.findings["uid"].isin(mine["uid"])]
highlight_problems(about[["severity", "rule", "client_ip", "server_name", "evidence", "suppressed_by"]])
