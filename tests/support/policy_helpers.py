"""Hand-made frames for the policy tests: only the columns a test cares about; the rest are null."""

from __future__ import annotations

from typing import Any

from analyzer import dissect as registry
from analyzer._pandas import pd
from analyzer.dissect.tls import schema as tls_schema

T0 = pd.Timestamp("2026-11-29T00:00:00Z")


def frame(columns: dict[str, str], rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A frame with every declared column, typed; absent values null."""
    data = {c: pd.Series([r.get(c) for r in rows], dtype=d) for c, d in columns.items()}
    return pd.DataFrame(data)


def flows(*rows: dict[str, Any]) -> pd.DataFrame:
    """Flows with defaults: tcp, 10.0.0.1:40000 -> 203.0.113.5:443, seen at T0, 1000 bytes each way."""
    base = {"transport": "tcp", "client_ip": "10.0.0.1", "client_port": 40000, "server_ip": "203.0.113.5",
            "server_port": 443, "ts_start": T0, "ts_end": T0 + pd.Timedelta(seconds=1),
            "ip_bytes_to_server": 1000, "ip_bytes_to_client": 1000, "payload_bytes_to_server": 500,
            "payload_bytes_to_client": 500}
    full = [{**base, "uid": f"C{i}", **r} for i, r in enumerate(rows)]
    # every column a run's flows can have: the optional groups' too (a streamed audit's flows carry
    # the TLS session facts, analyzer.dissect.tls.schema.SESSION_FACTS)
    return frame(registry.flow_schema(groups=None), full)


def tls(*rows: dict[str, Any]) -> pd.DataFrame:
    """TLS sessions; each row needs a uid."""
    base = {"protocol": "tls", "ts": T0}
    return frame(tls_schema.TLS, [{**base, **r} for r in rows])


def certs(*rows: dict[str, Any]) -> pd.DataFrame:
    return frame(tls_schema.CERTS, list(rows))
