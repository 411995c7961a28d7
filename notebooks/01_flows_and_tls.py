# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Encryption in transit: a first look at a capture
# Read the bundled captures, list the flows, and see which are encrypted and how.
# Set `CAPTURES` to your own pcap/pcapng files or directories (Traffic Mirroring VXLAN works as is).

# %%
# %matplotlib inline
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure  # object API: no pyplot state, renders the same in tests
from matplotlib.ticker import MaxNLocator

import analyzer

CAPTURES = [str(Path("..") / "captures") if Path("../captures").is_dir() else "captures"]
result = analyzer.analyze(CAPTURES)
result

# %% [markdown]
# One row per flow. `uid` joins every frame; `community_id` joins Zeek and Suricata logs.

# %%
flows = result.flows
flows[["client_ip", "server_ip", "server_port", "transport", "app_protocol", "tls_version", "tls_cipher",
       "tls_server_name"]].head(15)

# %% [markdown]
# ## How much is encrypted, and with what?

# %%
by_proto = flows.assign(app=flows["app_protocol"].fillna("unknown")).groupby("app").agg(
    flows=("uid", "count"), bytes=("ip_bytes_to_server", "sum"))
by_proto

# %%
versions = flows["tls_version"].dropna().value_counts().sort_index()
fig = Figure(figsize=(6, 3))
ax = fig.subplots()
ax.bar(versions.index.astype(str), versions.to_numpy())
ax.set_title("TLS/DTLS versions negotiated (flows)")
ax.set_ylabel("flows")
ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count: no tick at 2.5 flows
fig

# %% [markdown]
# ## Sessions and certificates
# `result.tls` has one row per TLS/DTLS/QUIC session; `result.certs` one row per distinct certificate.

# %%
result.tls[["server_name", "version", "cipher", "alpn", "established", "ja4", "cert_sha256"]].head(10)

# %%
certs = result.certs
certs[["subject_cn", "issuer_cn", "not_after", "key_type", "key_bits", "signature_hash", "self_signed"]]

# %% [markdown]
# Anything malformed or unexpected is a row in `result.anomalies`, never an exception.

# %%
assert isinstance(result.anomalies, pd.DataFrame)
result.anomalies.head()
