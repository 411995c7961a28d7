#!/usr/bin/env python3
"""Peer: nfstream (C/nDPI) NFStreamer(source=FILE).to_pandas().

Copied from ../shared/bench/peers/nfstream_run.py; only this docstring and the formatting differ.
usage: nfstream_run.py default|nodpi N_METERS FILE
  default: nfstream's defaults (n_dissections=20: nDPI labels the application)
  nodpi:   n_dissections=0 (flow metering only)
"""

import sys

from nfstream import NFStreamer

mode, meters, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kw = {"n_meters": meters}
if mode == "nodpi":
    kw["n_dissections"] = 0
df = NFStreamer(source=path, **kw).to_pandas()
print(f"flows={len(df)} packets={int(df['bidirectional_packets'].sum())}")
