"""The frames the rules read, assembled once per evaluation.

Rules never join frames themselves: `build_facts` gives them, as Arrow columns (`Cols`, see
`analyzer.policy._cols`; since 2026-12-07 the facts never pass through pandas):

- `flow_cols`: the flows with `client_zone`, `server_zone`, `direction` added;
- `ftp_cols`: the data channels FTP control flows announced (empty when not given);
- `cert_cols`: every certificate seen (the chain rules read it);
- `session_cols`: one row per TLS / DTLS / QUIC session (the `tls` frame), with the flow's times,
  transport, zones and direction, and the facts of the session's *leaf* certificate from `certs`
  (columns prefixed ``leaf_``: ``leaf_not_before``, ``leaf_not_after``, ``leaf_key_type``,
  ``leaf_key_bits``, ``leaf_signature_hash``, ``leaf_self_signed``, ``leaf_subject_cn``, ...).
  ``seen`` is when the session was observed (the session's ``ts``, else the flow's start): every
  time-dependent judgement (expired, not yet valid, expiring) is made at that instant, never at
  the time of the run, so a capture audited a year later gives the same findings.

When no `tls` frame is given (the streamed audit, which reads no tls row, and an analysis that
built only `flows`), the sessions come from the flows' own TLS columns. In a run with the policy
stage the TLS family carries there every session fact the rules read (version, offered maximum
and supported versions, cipher, SNI, established, alert, SSL 2.0, the server's extensions, the SNI
match, the chain's fingerprints: the optional column group `tls_schema.SESSION_FACTS`, which the
stage's `reads_columns` asks for), so both give the same findings. A flow's session is the one its
tls row describes (the TLS family makes one per flow); its `ts` is then the flow's start, not the
ClientHello's time. Flows of a STARTTLS-style upgrade keep their `app_protocol` (smtp, ...): their
session's protocol is tls. A plain run's flows lack that group: their sessions are the TLS, DTLS
and QUIC flows' with the facts the other TLS columns hold, and the rules that need more (alerts,
chain, SNI match) judge nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from analyzer import dissect as registry
from analyzer.dissect.tls import schema as tls_schema
from analyzer.policy import _compute as pc
from analyzer.policy._cols import Cols, as_cols, fill, length, numpy_of
from analyzer.schema import arrow_type

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

__all__ = ["FLOW_READS", "LEAF_COLUMNS", "Facts", "build_facts", "conform", "conform_cols", "distinct", "empty_frame",
           "first_rows", "frame_cols", "positions", "read_schema"]

# certs columns copied onto each session as leaf_<name>
LEAF_COLUMNS = (
    "subject_cn", "issuer_cn", "san_dns", "not_before", "not_after", "key_type", "key_bits", "key_curve",
    "signature_algorithm", "signature_hash", "self_issued", "self_signed", "is_ca",
)

# flows columns copied onto each session
_FLOW_COLUMNS = ("ts_start", "ts_end", "transport", "client_zone", "server_zone", "direction")

# Every flows column the policy reads (rules, zones, verdicts, destinations, the streamed stage's
# FTP bookkeeping, the sessions made from flows when there is no tls frame). The streamed audit
# converts only these from each Arrow chunk and `judge` conforms only these: copying, selecting and
# concatenating the ~200 columns of a flows chunk, once per pandas operation, was a fifth of the
# stage's time. A rule reading a column not listed fails loudly (KeyError) in the streamed audit,
# and tests/policy/test_policy_stream.py compares it with `evaluate()` on whole frames.
FLOW_READS = (
    "uid", "ts_start", "ts_end", "transport", "client_ip", "client_port", "server_ip", "server_port",
    "vni", "gwlb_endpoint_id", "payload_bytes_to_server", "payload_bytes_to_client", "ip_bytes_to_server",
    "ip_bytes_to_client", "encrypted", "app_protocol", "credentials",  # credentials: made by judge()
    "starttls", "http_redirect_to_https",
    "http_host", "http_location", "ssh_protocol", "ssh_server_software", "ssh_client_software",
    "tls_version", "tls_client_max_version", "tls_cipher", "tls_server_name", "tls_established", "cert_sha256",
    "cert_chain", "tls_sni_matches_cert", "tls_alert_level", "tls_alert_description", "tls_alert_by",
    "tls_client_supported_versions", "tls_server_extensions", "tls_sslv2",
)

# flows' TLS columns -> tls frame columns, for the fallback when no tls frame is given
_FROM_FLOWS = {
    "app_protocol": "protocol", "tls_version": "version", "tls_client_max_version": "client_max_version",
    "tls_cipher": "cipher", "tls_server_name": "server_name", "tls_established": "established",
    "cert_sha256": "cert_sha256", "cert_chain": "cert_chain", "tls_sni_matches_cert": "sni_matches_cert",
    "tls_alert_level": "alert_level", "tls_alert_description": "alert_description", "tls_alert_by": "alert_by",
    "tls_client_supported_versions": "client_supported_versions", "tls_server_extensions": "server_extensions",
    "tls_sslv2": "sslv2",
}
_SESSION_PROTOCOLS = ("tls", "dtls", "quic")



@dataclass(frozen=True)
class Facts:
    """What the rules read (see the module docstring): Arrow columns."""

    flow_cols: Cols
    session_cols: Cols
    now: Any  # the evaluation's time (rules judge at each session's `seen`, never at this)
    memo: dict[str, Any] = field(default_factory=dict, repr=False)  # derived columns rules share
    ftp_cols: Cols | None = None  # the ftp_data frame (data channels FTP control flows announced)
    cert_cols: Cols | None = None  # the certs frame (every certificate seen: the chain rules read it)


def frame_cols(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> Cols:
    """A pandas frame's columns (`columns`: only those present of them) as Arrow `Cols` (strings
    large_string, timestamps ns UTC)."""
    names = list(frame.columns) if columns is None else [c for c in columns if c in frame.columns]
    return as_cols({name: pa.array(frame[name], from_pandas=True) for name in names})


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    """An empty frame with the declared schema."""
    from analyzer._pandas import pd

    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in columns.items()})


def conform(frame: pd.DataFrame | None, columns: dict[str, str]) -> pd.DataFrame:
    """`frame` with every declared column present (missing ones null, of their dtype)."""
    from analyzer._pandas import pd

    if frame is None:
        return empty_frame(columns)
    missing = {c: d for c, d in columns.items() if c not in frame.columns}
    if not missing:
        return frame
    extra = pd.DataFrame({c: pd.Series(index=frame.index, dtype=d) for c, d in missing.items()})
    return pd.concat([frame, extra], axis=1)


def conform_cols(cols: Mapping[str, pa.Array] | None, columns: Mapping[str, str]) -> Cols:
    """`cols` with every declared column present (missing ones all null, of their Arrow type)."""
    out: Cols = as_cols(cols) if cols is not None else {}
    n = length(out)
    for c, d in columns.items():
        if c not in out:
            out[c] = pa.nulls(n, arrow_type(d))
    return out


def read_schema(groups: Iterable[str] | None = ()) -> dict[str, str]:
    """The flows schema's columns the policy reads (FLOW_READS), with their dtypes: of a plain run's
    flows, and of the optional column groups named in `groups` (None: every group; the streamed
    stage reads the TLS session facts, which a run with it makes)."""
    return {c: d for c, d in registry.flow_schema(groups=groups).items() if c in FLOW_READS}


def _mask(a: pa.Array) -> np.ndarray:
    return numpy_of(fill(a, False))


def _session_rows(flows: Mapping[str, pa.Array]) -> tuple[np.ndarray, np.ndarray]:
    """(which flows have a TLS session, which of those are of the TLS family) as boolean masks."""
    family = _mask(pc.is_in(flows["app_protocol"], value_set=pa.array(_SESSION_PROTOCOLS, pa.large_string())))
    # tls_sslv2 is set on every flow with a session (an upgraded flow keeps its own app_protocol);
    # flows without the session facts (a run that did not make them) give the family's sessions,
    # with the facts the other TLS columns hold
    if "tls_sslv2" in flows:
        return family | numpy_of(pc.is_valid(flows["tls_sslv2"])), family
    return family, family


def _sessions_from_flows(flows: Mapping[str, pa.Array],
                         rows: tuple[np.ndarray, np.ndarray] | None = None) -> Cols:
    """TLS sessions from the flows' own TLS columns (the fallback when there is no tls frame)."""
    has, family = _session_rows(flows) if rows is None else rows
    at = pa.array(np.flatnonzero(has))
    taken = [c for c in _FROM_FLOWS if c in flows]
    out: Cols = {"uid": pc.take(flows["uid"], at), "ts": pc.take(flows["ts_start"], at)}
    for c in ("client_ip", "client_port", "server_ip", "server_port"):
        out[c] = pc.take(flows[c], at)
    for src in taken:
        out[_FROM_FLOWS[src]] = pc.take(flows[src], at)
    out["protocol"] = pc.if_else(pa.array(family[has]), out["protocol"], pa.scalar("tls", out["protocol"].type))
    # only the columns made from flows: the tls schema's other ~50 (fingerprints, offered lists, ...)
    # would be null here, and no rule reads them (a rule that did would fail loudly, KeyError); the
    # session facts a run did not make (flows without the tls_session group) are null columns
    absent = {dst: tls_schema.TLS[dst] for src, dst in _FROM_FLOWS.items() if src not in flows}
    return conform_cols(out, absent)


def positions(keys: pa.Array, values: pa.Array) -> np.ndarray:
    """For each of `values`, the position of the same value among `keys` (distinct), -1 where none
    (what `pd.Index(keys).get_indexer(values)` gave), by Arrow's hash lookup."""
    at = pc.index_in(values, value_set=pc.cast(keys, values.type))
    return numpy_of(fill(at, -1)).astype(np.int64, copy=False)


def first_rows(values: pa.Array) -> np.ndarray:
    """The positions of the first row of each distinct value (nulls one value), in row order: the
    rows `drop_duplicates` keeps."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    codes = numpy_of(pc.index_in(values, value_set=pc.unique(values))).astype(np.int64, copy=False)
    _, first = np.unique(codes, return_index=True)
    return np.sort(first)


def distinct(values: Any) -> bool:
    """Whether an array holds no value twice (Arrow's hash count: no copy, no sort)."""
    arr = values if isinstance(values, pa.Array) else pa.array(getattr(values, "array", values))
    return bool(pc.count_distinct(arr, mode="all").as_py() == len(values))


def _join(left: Cols, on: str, right: Cols, key: str) -> Cols:
    """`left` plus the columns of `right` (but `key`) of the row whose `key` equals `on`, null where
    none; `right`'s keys are distinct (its first row of each taken). A left merge, by position."""
    if not distinct(right[key]):
        right = {c: pc.take(a, pa.array(first_rows(right[key]))) for c, a in right.items()}
    at = positions(right[key], left[on])
    take = pa.array(at, mask=at < 0)
    return {**left, **{c: pc.take(a, take) for c, a in right.items() if c != key}}


def build_facts(
    flows: Mapping[str, pa.Array], zoned: Mapping[str, pa.Array], tls: Mapping[str, pa.Array] | None,
    certs: Mapping[str, pa.Array] | None, now: Any, ftp_data: Mapping[str, pa.Array] | None = None,
) -> Facts:
    """Join the columns once for every rule (see the module docstring). `zoned` is `zone_cols(flows)`."""
    from analyzer.policy.rules_plain import FTP_DATA_COLUMNS

    flows = conform_cols(flows, read_schema())
    zflows: Cols = {**flows, **as_cols(zoned)}
    memo: dict[str, Any] = {"unique_flows": distinct(zflows["uid"])}
    certs_cols = conform_cols(certs, tls_schema.CERTS)
    if tls is None and memo["unique_flows"]:
        # each session is its flow's own (one per flow): the flow's columns taken by position, no join
        has = _session_rows(flows)
        rows = np.flatnonzero(has[0])
        memo["session_rows"] = rows
        sessions = _sessions_from_flows(flows, has)
        at = pa.array(rows)
        sessions.update({c: pc.take(zflows[c], at) for c in _FLOW_COLUMNS})
    else:
        tls_cols = _sessions_from_flows(flows) if tls is None else conform_cols(tls, tls_schema.TLS)
        sessions = _join(tls_cols, "uid", {c: zflows[c] for c in ("uid", *_FLOW_COLUMNS)}, "uid")
    leaf = {"sha256": certs_cols["sha256"], **{f"leaf_{c}": certs_cols[c] for c in LEAF_COLUMNS}}
    sessions = _join(sessions, "cert_sha256", leaf, "sha256")
    sessions["seen"] = pc.if_else(pc.is_valid(sessions["ts"]), sessions["ts"], sessions["ts_start"])
    return Facts(zflows, sessions, now, memo=memo, ftp_cols=conform_cols(ftp_data, FTP_DATA_COLUMNS),
                 cert_cols=certs_cols)
