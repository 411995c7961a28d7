"""Reference tables as frames, for notebooks and reports (the dissectors keep them as constants)."""

from __future__ import annotations

from dataclasses import fields

from analyzer._pandas import pd
from analyzer.dissect.tls.ciphersuites import CipherSuite, all_sslv2, all_suites

__all__ = ["cipher_suites"]


def cipher_suites(include_sslv2: bool = False) -> pd.DataFrame:
    """The TLS cipher-suite table (analyzer.dissect.tls.ciphersuites) as a frame: one row per suite,
    with its kx/auth/enc/mode/mac/bits flags and a `hex` column."""
    suites = all_suites() + all_sslv2() if include_sslv2 else all_suites()
    names = [f.name for f in fields(CipherSuite)]
    df = pd.DataFrame([[getattr(s, n) for n in names] for s in suites], columns=names)
    df.insert(1, "hex", [s.hex for s in suites])
    for col in ("hex", "name", "kx", "auth", "enc", "mode", "mac"):
        df[col] = df[col].astype("string")
    df["bits"] = df["bits"].astype("int32")
    return df
