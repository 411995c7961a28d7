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
import pyarrow as pa

from analyzer.policy import _compute as pc
from analyzer.policy._cols import (
    STRING,
    Cols,
    Hits,
    eq,
    false,
    found,
    ints,
    isin,
    join,
    known,
    length,
    lower,
    nanos,
    no_hits,
    notnull,
    only_strings,
    pick,
    take,
    text,
    true,
    where,
)
from analyzer.policy._rule import Rule

if TYPE_CHECKING:
    from analyzer.policy.facts import Facts

__all__ = ["FTP_DATA_COLUMNS", "LINK_COLUMNS", "PLAIN_RULES", "link_ftp_data"]

SEC09 = "AWS Well-Architected SEC09-BP02 (Enforce encryption in transit)"
PCI = "PCI DSS 4.0 req. 4.2.1"
RFC8314 = "RFC 8314 (Cleartext Considered Obsolete) §3-4"
STRIP = "RFC 3207 §6; RFC 7457 §2.1 (STARTTLS / SSL stripping)"

# the columns of the ftp_data frame the policy reads (analyzer.dissect.ftp.FTP_DATA)
FTP_DATA_COLUMNS = {"uid": "string", "command": "string", "host": "string", "port": "Int32", "protected": "boolean"}
# the columns `link_ftp_data` gives (Arrow: large_string, bool)
LINK_COLUMNS = {"uid": "string", "control_uid": "string", "command": "string", "protected": "boolean"}


def _not_encrypted(fl: Cols) -> np.ndarray:
    return ~true(fl["encrypted"])  # null: not shown encrypted


def starttls_not_used(f: Facts, opts: Mapping[str, Any]) -> Hits:
    fl = f.flow_cols
    m = eq(fl["starttls"], "offered_not_used") & _not_encrypted(fl)
    x = pick(fl, m, "app_protocol", "server_port")
    return found(x, join("server offered STARTTLS; the client went on in the clear (", text(x["app_protocol"]),
                         " port ", text(x["server_port"]), ")"))


def starttls_unavailable(f: Facts, opts: Mapping[str, Any]) -> Hits:
    fl = f.flow_cols
    m = isin(fl["starttls"], only_strings(opts["states"])) & _not_encrypted(fl)
    protocols = [str(p).lower() for p in opts["protocols"]]
    if protocols:
        m &= isin(lower(fl["app_protocol"]), protocols)
    x = pick(fl, m, "app_protocol", "server_port", "starttls")
    state = pc.cast(x["starttls"], STRING)
    said = where(eq(state, "not_offered"), "never offered", where(eq(state, "requested_refused"), "refused", state))
    return found(x, join(text(x["app_protocol"]), " server ", text(said),
                         " STARTTLS; the session stayed in the clear (port ", text(x["server_port"]), ")"))


def _window_ns(seconds: float) -> int:
    """`pd.Timedelta(seconds=seconds)` in nanoseconds (as pandas makes it: truncated)."""
    return int(seconds * 1_000_000_000)


def _empty_links() -> Cols:
    return {"uid": pa.array([], STRING), "control_uid": pa.array([], STRING), "command": pa.array([], STRING),
            "protected": pa.array([], pa.bool_())}


def link_ftp_data(ftp_data: Cols, flows: Cols, window_s: float = 300.0) -> Cols:
    """The data flows FTP control flows announced: one row per data flow (`LINK_COLUMNS`: uid,
    control_uid, command, protected), sorted by uid, from `ftp_data` rows (uid = the control flow)
    and `flows` (Arrow columns, `analyzer.policy._cols`).

    A data flow is a TCP flow, not the control flow itself, whose (server_ip, server_port) is the
    announced (host, port) - in passive mode the FTP server listens there, in active mode the client
    does and the server connects to it, so the announced end is the data flow's server either way -
    and which started no earlier than its control flow and at most `window_s` seconds after the
    control flow's end (the first row of that uid in `flows`). A control flow absent from `flows`,
    or a time unknown, links nothing. Where several announcements fit one data flow, that of the
    control flow started last wins; of one control flow's announcements of that port, the first."""
    if not length(ftp_data) or not length(flows):
        return _empty_links()
    ann = take(ftp_data, notnull(ftp_data["host"]) & notnull(ftp_data["port"]),
               ["uid", "command", "host", "port", "protected"])
    if not length(ann):
        return _empty_links()
    uid = pc.cast(flows["uid"], STRING)
    # per announcement, its control flow's times (its first row in flows)
    ctl = ints(pc.index_in(pc.cast(ann["uid"], STRING), value_set=uid), -1)
    start, start_known = nanos(flows["ts_start"]), known(flows["ts_start"])
    end, end_known = nanos(flows["ts_end"]), known(flows["ts_end"])
    c_ok = (ctl >= 0) & start_known[ctl] & end_known[ctl]
    c_start, c_end = start[ctl], end[ctl]
    # join announcements and TCP flows on (host, port) = (server_ip, server_port): one int64 key each,
    # (position of the host among the announced hosts, port offset), exact
    hosts = pc.cast(ann["host"], STRING)
    a_host = ints(pc.index_in(hosts, value_set=hosts), -1)
    f_host = ints(pc.index_in(pc.cast(flows["server_ip"], STRING), value_set=hosts), -1)
    a_port, f_port = ints(ann["port"]), ints(flows["server_port"])
    cand = np.flatnonzero(eq(flows["transport"], "tcp") & (f_host >= 0) & notnull(flows["server_port"]))
    lo_port = min(int(a_port.min()), int(f_port[cand].min()) if len(cand) else 0)
    hi_port = max(int(a_port.max()), int(f_port[cand].max()) if len(cand) else 0)
    span = hi_port - lo_port + 1
    a_key = a_host * span + (a_port - lo_port)
    f_key = f_host[cand] * span + (f_port[cand] - lo_port)
    order = np.argsort(f_key, kind="stable")
    f_sorted, cand = f_key[order], cand[order]
    first = np.searchsorted(f_sorted, a_key, "left")
    count = np.searchsorted(f_sorted, a_key, "right") - first
    # the pairs (announcement ai, flow fj), by announcement then flow
    ai = np.repeat(np.arange(len(a_key)), count)
    fj = cand[np.repeat(first, count) + np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)]
    d_start = start[fj]
    keep = (c_ok[ai] & start_known[fj] & (d_start >= c_start[ai]) & (d_start <= c_end[ai] + _window_ns(float(window_s)))
            & ~true(pc.equal(pc.take(uid, pa.array(fj)), pc.take(pc.cast(ann["uid"], STRING), pa.array(ai)))))
    ai, fj = ai[keep], fj[keep]
    if not len(ai):
        return _empty_links()
    # per data flow (uid), the pair of the latest control flow's start, the first such pair on a tie
    # (uid's rank: equal uids equal, a null last; the later control start first; the pair's order)
    d_uid = pc.take(uid, pa.array(fj))
    rank = np.where(notnull(d_uid), ints(pc.rank(d_uid, sort_keys="ascending", tiebreaker="dense")), len(fj) + 1)
    at = np.lexsort((np.arange(len(ai)), -c_start[ai], rank))
    at = at[np.concatenate([[True], rank[at][1:] != rank[at][:-1]])]
    ai, fj = ai[at], fj[at]
    a_at, f_at = pa.array(ai), pa.array(fj)
    return {"uid": pc.take(uid, f_at), "control_uid": pc.take(pc.cast(ann["uid"], STRING), a_at),
            "command": pc.take(pc.cast(ann["command"], STRING), a_at), "protected": pc.take(ann["protected"], a_at)}


def ftp_data_unprotected(f: Facts, opts: Mapping[str, Any]) -> Hits:
    fl = f.flow_cols
    ftp = f.ftp_cols
    if ftp is None:
        return no_hits()
    links = link_ftp_data(ftp, fl, float(opts["window_s"]))
    at = ints(pc.index_in(links["uid"], value_set=pc.cast(fl["uid"], STRING)), -1)
    links = take(links, at >= 0)
    d = take(fl, at[at >= 0], ["uid", "encrypted", "payload_bytes_to_server", "payload_bytes_to_client"])
    payload = ints(d["payload_bytes_to_server"]) + ints(d["payload_bytes_to_client"])
    unprotected = ~true(links["protected"])
    m = ~true(d["encrypted"]) & (payload > 0) & (unprotected | false(d["encrypted"]))
    x = pick({**d, "_control": links["control_uid"], "_command": links["command"]}, m, "_control", "_command")
    return found(x, join("FTP data channel in the clear (", text(x["_command"]), " on control flow ",
                         text(x["_control"]), ", PROT P not in force), ", text(pa.array(payload[m])), " payload bytes"))


def http_redirect_only(f: Facts, opts: Mapping[str, Any]) -> Hits:
    fl = f.flow_cols
    m = true(fl["http_redirect_to_https"]) & _not_encrypted(fl)
    x = pick(fl, m, "http_host", "http_location")
    return found(x, join("http://", text(x["http_host"]), " answered with a redirect to ", text(x["http_location"]),
                         ": the first request went in the clear"))


def ssh_legacy(f: Facts, opts: Mapping[str, Any]) -> Hits:
    fl = f.flow_cols
    m = true(pc.starts_with(pc.cast(fl["ssh_protocol"], STRING), "1."))
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
