"""Rules about plaintext protocols that could have been protected: STARTTLS, FTP data, HTTP redirects, SSH 1.

These read facts the plaintext dissectors state on the flows (`starttls`, `http_redirect_to_https`,
`ssh_protocol`) and the `ftp_data` frame (one row per data channel an FTP control flow announced).
A flow whose facts are null is not judged by them.

- **starttls-not-used**: the server offered an upgrade to TLS (SMTP/IMAP `STARTTLS`, POP3 `STLS`,
  FTP `AUTH TLS` in FEAT, LDAP/XMPP/NNTP/database equivalents: flows column `starttls` ==
  ``offered_not_used``) and the client went on in the clear. RFC 8314 (cleartext considered
  obsolete), RFC 3207 §6 / RFC 7457 §2.1: from one vantage point this is also what STARTTLS stripping
  looks like (an on-path attacker removing the client's STARTTLS or the server's 220), so the
  finding is worth a look even where the client is configured to require TLS.
- **starttls-unavailable**: a protocol with an in-band upgrade whose server never offered it
  (`starttls` == ``not_offered``) or refused it when asked (``requested_refused``): every session
  with that server is cleartext (RFC 8314 §3, §4; RFC 4217 for FTP; RFC 4513 §3 for LDAP). Option
  `protocols`: the `app_protocol` values judged; empty (the default) judges every protocol whose
  dissector states `starttls`, so a new dissector that sets the column with the same vocabulary
  (see `analyzer.dissect.lines.starttls_state`) is judged without a change here. Option `states`.
- **ftp-data-unprotected**: an FTP data channel seen in the clear: a data flow whose address and
  port an FTP control flow announced (PASV/EPSV: the server's; PORT/EPRT: the client's, which the
  server connects to) while `PROT P` was not in force (RFC 4217 §8-9: the default `PROT C` leaves
  file contents and listings in cleartext even where the control channel is protected), and which
  carried payload without being seen as encrypted. The data flow is found by `link_ftp_data` (pure:
  ftp_data rows x flows on (host, port) = (server_ip, server_port), TCP, started during the control
  session). Option `window_s`: seconds after the control flow's end a data flow may still start
  (the control flow may end first when a capture splits it).
- **http-redirect-only**: a cleartext HTTP request answered with a redirect to `https://` on the
  same host (`http_redirect_to_https`). The redirect is what SEC09-BP02 recommends for plain HTTP
  listeners, but the client reached HTTPS *only through* that cleartext first request: its path,
  cookies and headers crossed in the clear, and an on-path attacker can answer it instead of the
  redirect (RFC 7457 §2.1 "SSL stripping"). HSTS (RFC 6797; Mozilla 6.0 recommends
  `hsts_min_age` two years) or HTTPS links remove the first cleartext request.
- **ssh-legacy**: SSH protocol 1 (`ssh_protocol` 1.x; "1.99" on both sides is 2.0 and not flagged):
  SSH-1 has no integrity protection worth the name (CRC-32 compensation attack, CVE-2001-0144) and
  was retired by RFC 4253; OpenSSH removed it in 7.6 (2017). SEC09-BP02: no deprecated protocol
  components.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer.policy._rule import Rule, as_mask, dt, found, join, pick, text

if TYPE_CHECKING:
    import pandas as pd

    from analyzer.policy.facts import Facts

__all__ = ["FTP_DATA_COLUMNS", "PLAIN_RULES", "link_ftp_data"]

SEC09 = "AWS Well-Architected SEC09-BP02 (Enforce encryption in transit)"
PCI = "PCI DSS 4.0 req. 4.2.1"
RFC8314 = "RFC 8314 (Cleartext Considered Obsolete) §3-4"
STRIP = "RFC 3207 §6; RFC 7457 §2.1 (STARTTLS / SSL stripping)"

# the columns of the ftp_data frame the policy reads (analyzer.dissect.ftp.FTP_DATA)
FTP_DATA_COLUMNS = {"uid": "string", "command": "string", "host": "string", "port": "Int32", "protected": "boolean"}


def _not_encrypted(fl: pd.DataFrame) -> np.ndarray:
    return ~as_mask(fl["encrypted"].astype(dt.boolean) == True)  # noqa: E712  (null: not shown encrypted)


def starttls_not_used(f: Facts, opts: Mapping[str, Any]) -> pd.DataFrame:
    fl = f.flows
    m = as_mask(fl["starttls"].astype(dt.string) == "offered_not_used") & _not_encrypted(fl)
    x = pick(fl, m, "app_protocol", "server_port")
    return found(x, join("server offered STARTTLS; the client went on in the clear (", text(x["app_protocol"]),
                         " port ", text(x["server_port"]), ")"))


def starttls_unavailable(f: Facts, opts: Mapping[str, Any]) -> pd.DataFrame:
    fl = f.flows
    state = fl["starttls"].astype(dt.string)
    m = as_mask(state.isin(list(opts["states"]))) & _not_encrypted(fl)
    protocols = [str(p).lower() for p in opts["protocols"]]
    if protocols:
        m &= as_mask(fl["app_protocol"].astype(dt.string).str.lower().isin(protocols))
    x = pick(fl, m, "app_protocol", "server_port", "starttls")
    said = x["starttls"].astype(dt.string).map({"not_offered": "never offered",
                                                "requested_refused": "refused"}).fillna(x["starttls"])
    return found(x, join(text(x["app_protocol"]), " server ", text(said),
                         " STARTTLS; the session stayed in the clear (port ", text(x["server_port"]), ")"))


def link_ftp_data(ftp_data: pd.DataFrame, flows: pd.DataFrame, window_s: float = 300.0) -> pd.DataFrame:
    """The data flows FTP control flows announced: one row per data flow (uid, control_uid, command,
    protected), from `ftp_data` rows (uid = the control flow) and `flows`.

    A data flow is a TCP flow, not the control flow itself, whose (server_ip, server_port) is the
    announced (host, port) - in passive mode the FTP server listens there, in active mode the client
    does and the server connects to it, so the announced end is the data flow's server either way -
    and which started no earlier than its control flow and at most `window_s` seconds after the
    control flow's end. A control flow absent from `flows` gives no time bound. Where several
    announcements fit one data flow, the latest before it wins (a port reused in one session)."""
    from analyzer._pandas import pd

    out_cols = {"uid": "string", "control_uid": "string", "command": "string", "protected": "boolean"}
    empty = pd.DataFrame({c: pd.Series(dtype=d) for c, d in out_cols.items()})
    if not len(ftp_data) or not len(flows):
        return empty
    ann = pd.DataFrame({
        "control_uid": ftp_data["uid"].astype(dt.string).to_numpy(dtype=object),
        "command": ftp_data["command"].astype(dt.string).to_numpy(dtype=object),
        "host": ftp_data["host"].astype(dt.string).to_numpy(dtype=object),
        "port": ftp_data["port"].astype(dt.Int64).to_numpy(dtype="float64", na_value=np.nan),
        "protected": ftp_data["protected"].astype(dt.boolean).astype(object).to_numpy(),
    }).dropna(subset=["host", "port"])
    times = flows[["uid", "ts_start", "ts_end"]].drop_duplicates("uid")
    ann = ann.merge(times.rename(columns={"uid": "control_uid", "ts_start": "c_start", "ts_end": "c_end"}),
                    on="control_uid", how="left")
    tcp = flows[(flows["transport"].astype(dt.string) == "tcp").to_numpy(dtype=bool, na_value=False)]
    cand = pd.DataFrame({
        "uid": tcp["uid"].astype(dt.string).to_numpy(dtype=object),
        "host": tcp["server_ip"].astype(dt.string).to_numpy(dtype=object),
        "port": tcp["server_port"].astype(dt.Int64).to_numpy(dtype="float64", na_value=np.nan),
        "d_start": tcp["ts_start"].to_numpy(),
    })
    j = ann.merge(cand, on=["host", "port"], how="inner")
    if not len(j):
        return empty
    start = pd.to_datetime(j["d_start"], utc=True)
    c_start = pd.to_datetime(j["c_start"], utc=True)
    c_end = pd.to_datetime(j["c_end"], utc=True)
    after = (start >= c_start).fillna(True)  # no control flow: no bound
    before = (start <= c_end + pd.Timedelta(seconds=float(window_s))).fillna(True)
    j = j[(after & before).to_numpy(dtype=bool) & (j["uid"] != j["control_uid"]).to_numpy(dtype=bool)]
    j = j.assign(_c=c_start[j.index]).sort_values(["uid", "_c"], ascending=[True, False], na_position="last",
                                                  kind="stable").drop_duplicates("uid")
    return pd.DataFrame({c: j[c].to_numpy() for c in out_cols}).astype(out_cols)


def ftp_data_unprotected(f: Facts, opts: Mapping[str, Any]) -> pd.DataFrame:
    from analyzer._pandas import pd

    fl = f.flows
    if f.ftp_data is None:
        return found(fl.iloc[:0], "")
    links = link_ftp_data(f.ftp_data, fl, float(opts["window_s"]))
    if not len(links):
        return found(fl.iloc[:0], "")
    row = fl.reset_index(drop=True)
    at = np.asarray(pd.Index(row["uid"].astype(object)).get_indexer(links["uid"].astype(object)))
    links = links[at >= 0]
    at = at[at >= 0]
    d = row.iloc[at]
    enc = d["encrypted"].astype(dt.boolean)
    payload = (d["payload_bytes_to_server"].astype(dt.Int64).fillna(0)
               + d["payload_bytes_to_client"].astype(dt.Int64).fillna(0)).to_numpy(dtype=np.int64)
    unprotected = ~as_mask(links["protected"].astype(dt.boolean))
    m = ~as_mask(enc == True) & (payload > 0) & (unprotected | as_mask(enc == False))  # noqa: E712
    x = d[m].assign(_control=links["control_uid"].to_numpy()[m], _command=links["command"].to_numpy()[m],
                    _payload=payload[m])
    return found(x, join("FTP data channel in the clear (", text(x["_command"]), " on control flow ",
                         text(x["_control"]), ", PROT P not in force), ", text(x["_payload"]), " payload bytes"))


def http_redirect_only(f: Facts, opts: Mapping[str, Any]) -> pd.DataFrame:
    fl = f.flows
    m = as_mask(fl["http_redirect_to_https"].astype(dt.boolean)) & _not_encrypted(fl)
    x = pick(fl, m, "http_host", "http_location")
    return found(x, join("http://", text(x["http_host"]), " answered with a redirect to ", text(x["http_location"]),
                         ": the first request went in the clear"))


def ssh_legacy(f: Facts, opts: Mapping[str, Any]) -> pd.DataFrame:
    fl = f.flows
    version = fl["ssh_protocol"].astype(dt.string)
    m = as_mask(version.str.startswith("1."))
    x = pick(fl, m, "ssh_protocol", "ssh_server_software", "ssh_client_software")
    return found(x, join("SSH protocol ", text(x["ssh_protocol"]), " (server ", text(x["ssh_server_software"]),
                         ", client ", text(x["ssh_client_software"]), ")"))


PLAIN_RULES = (
    Rule(
        id="starttls-not-used",
        title="STARTTLS offered but the client stayed in the clear",
        severity="medium",
        rationale="The server could protect the session and the client did not ask; from one vantage "
        "point this is also what STARTTLS stripping by an on-path attacker looks like.",
        references=(RFC8314, STRIP, SEC09),
        predicate=starttls_not_used,
        reads="flows",
    ),
    Rule(
        id="starttls-unavailable",
        title="Server without STARTTLS (mail, directory, file, database protocols)",
        severity="medium",
        rationale="A server that never offers (or refuses) the upgrade to TLS forces every session, "
        "credentials included, into the clear; implicit TLS or STARTTLS is expected (RFC 8314).",
        references=(RFC8314, "RFC 4217 (FTP over TLS)", "RFC 4513 §3 (LDAP StartTLS)", SEC09),
        predicate=starttls_unavailable,
        options={"protocols": [], "states": ["not_offered", "requested_refused"]},
        reads="flows",
    ),
    Rule(
        id="ftp-data-unprotected",
        title="FTP data channel in the clear",
        severity="medium",
        rationale="Without PROT P the FTP data channel (file contents, listings) is cleartext even "
        "where AUTH TLS protects the control channel (RFC 4217 §8-9).",
        references=("RFC 4217 §8-9 (PROT C is the default)", SEC09, PCI),
        predicate=ftp_data_unprotected,
        options={"window_s": 300.0},
        reads="flows, ftp_data",
    ),
    Rule(
        id="http-redirect-only",
        title="HTTPS reached only through a cleartext redirect",
        severity="low",
        rationale="The first request (path, cookies, headers) went in the clear and could have been "
        "answered by an on-path attacker instead of the redirect; HSTS or https:// links avoid it.",
        references=(SEC09, "RFC 7457 §2.1 (SSL stripping)", "RFC 6797 (HSTS)",
                    "Mozilla Server Side TLS 6.0 (hsts_min_age 63072000)"),
        predicate=http_redirect_only,
        reads="flows",
    ),
    Rule(
        id="ssh-legacy",
        title="SSH protocol 1",
        severity="high",
        rationale="SSH-1 is broken (CRC-32 compensation attack, no real integrity) and retired by "
        "RFC 4253; OpenSSH removed it in 2017.",
        references=("RFC 4253 §5 (compatibility with old SSH versions)", SEC09),
        predicate=ssh_legacy,
        reads="flows",
    ),
)
