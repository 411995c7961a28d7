"""The frames the rules read, assembled once per evaluation.

Rules never join frames themselves: `build_facts` gives them

- `flows`: the flows frame with `client_zone`, `server_zone`, `direction` added;
- `ftp_data`: the data channels FTP control flows announced (empty when not given);
- `sessions`: one row per TLS / DTLS / QUIC session (the `tls` frame), with the flow's times,
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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer import dissect as registry
from analyzer.dissect.tls import schema as tls_schema
from analyzer.policy._cols import Cols

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

__all__ = ["FLOW_READS", "LEAF_COLUMNS", "Facts", "build_facts", "conform", "distinct", "empty_frame", "frame_cols",
           "positions", "read_schema"]

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
    """What the rules read (see the module docstring)."""

    flows: pd.DataFrame
    sessions: pd.DataFrame
    now: pd.Timestamp
    memo: dict[str, Any] = field(default_factory=dict, repr=False)  # derived columns rules share
    ftp_data: pd.DataFrame | None = None  # the ftp_data frame (data channels FTP control flows announced)
    certs: pd.DataFrame | None = None  # the certs frame (every certificate seen: the chain rules read it)

    # The same frames as Arrow columns (`analyzer.policy._cols`), which rules are being moved to:
    # made on first use from the pandas frames above (transitional, 2026-12-07: the facts will be
    # built as Arrow columns and the pandas frames go)
    @property
    def flow_cols(self) -> Cols:
        return self._cols("flows", self.flows)

    @property
    def session_cols(self) -> Cols:
        return self._cols("sessions", self.sessions)

    @property
    def cert_cols(self) -> Cols | None:
        return None if self.certs is None else self._cols("certs", self.certs)

    @property
    def ftp_cols(self) -> Cols | None:
        return None if self.ftp_data is None else self._cols("ftp_data", self.ftp_data)

    def _cols(self, key: str, frame: pd.DataFrame) -> Cols:
        made = self.memo.get("cols:" + key)
        if made is None:
            made = self.memo["cols:" + key] = frame_cols(frame)
        return made


def frame_cols(frame: pd.DataFrame) -> Cols:
    """A pandas frame's columns as Arrow `Cols` (strings large_string, timestamps ns UTC)."""
    import pyarrow as pa

    from analyzer.policy._cols import as_cols

    return as_cols({name: pa.array(frame[name], from_pandas=True) for name in frame.columns})


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


def read_schema(groups: Iterable[str] | None = ()) -> dict[str, str]:
    """The flows schema's columns the policy reads (FLOW_READS), with their dtypes: of a plain run's
    flows, and of the optional column groups named in `groups` (None: every group; the streamed
    stage reads the TLS session facts, which a run with it makes)."""
    return {c: d for c, d in registry.flow_schema(groups=groups).items() if c in FLOW_READS}


def _session_rows(flows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(which flows have a TLS session, which of those are of the TLS family) as boolean masks."""
    family = flows["app_protocol"].isin(list(_SESSION_PROTOCOLS)).to_numpy(dtype=bool, na_value=False)
    # tls_sslv2 is set on every flow with a session (an upgraded flow keeps its own app_protocol);
    # flows without the session facts (a run that did not make them) give the family's sessions,
    # with the facts the other TLS columns hold
    has = family | flows["tls_sslv2"].notna().to_numpy(dtype=bool) if "tls_sslv2" in flows.columns else family
    return has, family


def _sessions_from_flows(flows: pd.DataFrame, rows: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """TLS sessions from the flows' own TLS columns (the fallback when there is no tls frame)."""
    from analyzer._pandas import pd

    has, family = _session_rows(flows) if rows is None else rows
    taken = [c for c in _FROM_FLOWS if c in flows.columns]
    # only the columns a session takes (a take per column: the flows frame has every column the policy reads)
    sub = flows.loc[has, ["uid", "ts_start", "client_ip", "client_port", "server_ip", "server_port", *taken]]
    out = {"uid": sub["uid"], "ts": sub["ts_start"], "client_ip": sub["client_ip"], "client_port": sub["client_port"],
           "server_ip": sub["server_ip"], "server_port": sub["server_port"]}
    for src in taken:
        out[_FROM_FLOWS[src]] = sub[src]
    out["protocol"] = sub["app_protocol"].where(family[has], "tls")
    # only the columns made from flows: the tls schema's other ~50 (fingerprints, offered lists, ...)
    # would be null here, and no rule reads them (a rule that did would fail loudly, KeyError); the
    # session facts a run did not make (flows without the tls_session group) are null columns
    frame = pd.DataFrame(out).reset_index(drop=True)
    absent = {dst: tls_schema.TLS[dst] for src, dst in _FROM_FLOWS.items() if src not in flows.columns}
    return conform(frame, absent) if absent else frame


def _arrow_strings(values: Any) -> Any:
    """The Arrow string array of a pandas string Series / Index / array, else None."""
    import pyarrow as pa

    from analyzer._pandas import pd

    array = getattr(values, "array", values)
    if not isinstance(array, pd.arrays.ArrowStringArray):
        return None
    out = pa.array(array)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out  # no chunk: an empty array


def positions(keys: Any, values: Any) -> np.ndarray:
    """For each of `values`, the position of the same value among `keys` (distinct), -1 where none:
    `pd.Index(keys).get_indexer(values)`, by Arrow's hash lookup for strings (pandas turned every
    string of both into a Python object first)."""
    import pyarrow.compute as pc

    from analyzer._pandas import pd

    k, v = _arrow_strings(keys), _arrow_strings(values)
    if k is None or v is None:
        return np.asarray(pd.Index(keys).get_indexer(values), dtype=np.int64)
    at = pc.index_in(v, value_set=k.cast(v.type))
    return np.asarray(pc.fill_null(at, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def distinct(values: Any) -> bool:
    """Whether an array holds no value twice (Arrow's hash count: no copy, no sort)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return bool(pc.count_distinct(pa.array(getattr(values, "array", values)), mode="all").as_py() == len(values))


def _left_join(left: pd.DataFrame, on: str, right: pd.DataFrame, key: str) -> pd.DataFrame:
    """`left.merge(right, left_on=on, right_on=key, how="left")` without `key`, for a `right` whose keys
    are unique: each right row found by position and its columns taken (a merge cost ~5x more: it
    sorts and re-blocks both frames). Same rows, order, values and dtypes: right columns of extension
    dtypes only (their take fills a missing key with their own null) and no name in both frames, else
    the merge itself."""
    from analyzer._pandas import pd

    extra = [c for c in right.columns if c != key]
    plain = not all(isinstance(right[c].dtype, pd.api.extensions.ExtensionDtype) for c in extra)
    if plain or set(extra) & set(left.columns):
        joined = left.merge(right, left_on=on, right_on=key, how="left", validate="many_to_one")
        return joined.drop(columns=key) if key != on else joined
    at = positions(right[key], left[on])
    taken = {c: right[c].array.take(at, allow_fill=True) for c in extra}
    return pd.concat([left, pd.DataFrame(taken, index=left.index)], axis=1)


def build_facts(
    flows: pd.DataFrame, zoned: pd.DataFrame, tls: pd.DataFrame | None, certs: pd.DataFrame | None,
    now: pd.Timestamp, ftp_data: pd.DataFrame | None = None,
) -> Facts:
    """Join the frames once for every rule (see the module docstring). `zoned` is `zone_flows(flows)`."""
    from analyzer._pandas import pd

    flows = conform(flows, read_schema())
    zflows = pd.concat([flows, zoned], axis=1)
    memo: dict[str, Any] = {"unique_flows": distinct(zflows["uid"].array)}
    certs_frame = conform(certs, tls_schema.CERTS)
    if tls is None and memo["unique_flows"]:
        # each session is its flow's own (one per flow): the flow's columns taken by position, no join
        has = _session_rows(flows)
        rows = np.flatnonzero(has[0])
        memo["session_rows"] = rows
        tls_frame = _sessions_from_flows(flows, has)
        taken = {c: zflows[c].array.take(rows) for c in _FLOW_COLUMNS}
        sessions = pd.concat([tls_frame, pd.DataFrame(taken, index=tls_frame.index)], axis=1)
    else:
        tls_frame = _sessions_from_flows(flows) if tls is None else conform(tls, tls_schema.TLS)
        per_flow = zflows[["uid", *_FLOW_COLUMNS]]
        if not memo["unique_flows"]:
            per_flow = per_flow.drop_duplicates("uid")
        sessions = _left_join(tls_frame.reset_index(drop=True), "uid", per_flow, "uid")
    leaf = certs_frame[["sha256", *LEAF_COLUMNS]].drop_duplicates("sha256")
    leaf = leaf.rename(columns={c: f"leaf_{c}" for c in LEAF_COLUMNS})
    sessions = _left_join(sessions, "cert_sha256", leaf, "sha256")
    seen = sessions["ts"].where(sessions["ts"].notna(), sessions["ts_start"])
    sessions["seen"] = seen
    from analyzer.policy.rules_plain import FTP_DATA_COLUMNS

    return Facts(zflows, sessions, now, memo=memo, ftp_data=conform(ftp_data, FTP_DATA_COLUMNS), certs=certs_frame)
