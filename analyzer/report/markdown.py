"""The report as Markdown, for a pull-request comment or a CI job summary (GitHub-flavoured tables).

The same `Summary` as the HTML page, shorter: the verdict sentence first (what changed first when
there is a baseline), the counts, findings per rule with a few examples, the worst destinations,
certificates close to expiry and coverage. Wire strings are neutralised with `md_text`: controls
and bidi overrides shown as escapes (`report.text.printable`), Markdown punctuation backslash-escaped
(a `|` would end a table cell, a backtick open code, `[`/`]` make a link), `<`, `>` and `&` as HTML
entities (GitHub renders inline HTML), and `@` and `#` as entities too (mentions, issue links). Values
sit inside table cells and sentences, never at a line's start, so list and heading markers need no
escape.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from analyzer.report.text import printable

if TYPE_CHECKING:
    from analyzer.report.summary import Summary

__all__ = ["md_text", "render_markdown"]

EXAMPLES = 5  # findings shown per rule
DESTINATIONS = 10
CERTIFICATES = 10
CLEARTEXT = 10

_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "@": "&#64;", "#": "&#35;"}
_SPECIAL = re.compile(r"([\\`*_\[\]|~<>&@#])")  # parentheses and `!` are inert once `[`, `]` are escaped


def _escape(m: re.Match[str]) -> str:
    c = m.group(1)
    return _ENTITIES.get(c, "\\" + c)


def md_text(value: Any) -> str:
    """A cell or inline value as inert Markdown text (null -> '-')."""
    from analyzer._pandas import pd

    if value is None or (not isinstance(value, list | tuple) and pd.isna(value)):
        return "-"
    if isinstance(value, list | tuple):
        value = ", ".join(str(v) for v in value)
    text = printable(str(value), tabs=False)
    return _SPECIAL.sub(_escape, text)


def _num(value: Any) -> str:
    from analyzer._pandas import pd

    return "-" if value is None or pd.isna(value) else f"{int(value):,}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def render_markdown(summary: Summary) -> str:
    """The summary as GitHub-flavoured Markdown."""
    from analyzer.report.html import nbytes  # imports no matplotlib: the Markdown form draws nothing

    n = summary.numbers
    lines = [f"## intransit: {md_text(n['subject'])}", "", f"**{md_text(n['verdict']['sentence'])}**", ""]
    flows, sev = n["flows"], n["findings"]["by_severity"]
    lines += [f"Flows: {flows['total']:,} ({flows['ok']:,} ok, {flows['warn']:,} warn, {flows['fail']:,} fail, "
              f"{flows['unknown']:,} not judged). Findings: {n['findings']['total']:,} ("
              + ", ".join(f"{sev[s]:,} {s}" for s in sev) + f"), {n['findings']['suppressed']:,} suppressed.", ""]
    if n["changes"]:
        c = n["changes"]
        lines += [f"Since the baseline {md_text(c['baseline'])}: **{c['new']:,} new**, {c['unchanged']:,} unchanged, "
                  f"{c['resolved']:,} resolved.", ""]

    lines += ["### Traffic by protection", ""]
    if n["traffic"]:
        rows = [[md_text(d)] + [f"{r[p]['flows']:,} ({nbytes(r[p]['bytes'])})" for p in
                                ("encrypted", "cleartext", "undecided")] for d, r in n["traffic"].items()]
        lines += _table(["direction", "encrypted", "cleartext", "undecided"], rows)
    if not n["method"]["vpc"] and not n["method"]["zones_file"]:
        lines += ["No VPC or zones were given: no flow is called egress.", ""]

    clear = summary.tables["cleartext"].head(CLEARTEXT)
    if len(clear):
        lines += ["Cleartext traffic, egress first:", ""]
        lines += _table(["direction", "server", "protocol", "HTTP Host", "User-Agent", "flows", "bytes"], [
            [md_text(r["direction"]), md_text(f"{r['server_ip']}:{r['server_port']}"), md_text(r["app_protocol"]),
             md_text(r["http_host"]), md_text(r["http_user_agent"]), _num(r["flows"]), nbytes(r["bytes"])]
            for r in clear.to_dict("records")])

    lines += ["### Findings by rule", ""]
    if not summary.rule_groups:
        lines += ["No findings.", ""]
    for g in summary.rule_groups:
        extra = f", {g['suppressed']:,} suppressed" if g["suppressed"] else ""
        if n["changes"]:
            extra += f"; {g['new']:,} new, {g['resolved']:,} resolved"
        lines += [f"<details><summary><b>{md_text(g['severity'])}</b> {md_text(g['rule'])}: {md_text(g['title'])} "
                  f"({g['findings']:,}{extra})</summary>", ""]
        ex = g["examples"].head(EXAMPLES)
        rows = [([md_text(r.get("change"))] if n["changes"] else [])
                + [md_text(r.get("client_ip")), md_text(f"{r.get('server_ip')}:{r.get('server_port')}"),
                   md_text(r.get("server_name")), md_text(r.get("evidence"))]
                for r in ex.to_dict("records")]
        rows += [["resolved", md_text(r.get("client_ip")), md_text(f"{r.get('server_ip')}:{r.get('server_port')}"),
                  md_text(r.get("server_name")), md_text(r.get("evidence"))]
                 for r in g["resolved_examples"].head(EXAMPLES).to_dict("records")] if n["changes"] else []
        if rows:
            lines += _table((["change"] if n["changes"] else []) + ["client", "server", "name", "evidence"], rows)
        shown = len(ex)
        if shown < g["findings"] + g["suppressed"]:
            lines += [f"… and {g['findings'] + g['suppressed'] - shown:,} more.", ""]
        lines += ["</details>", ""]

    dest = summary.tables["destinations"].head(DESTINATIONS)
    lines += ["### Worst destinations", ""]
    if len(dest):
        lines += _table(["grade", "score", "destination", "zone", "flows", "bytes", "findings"], [
            [md_text(r["grade"]), _num(r["score"]), md_text(f"{r['destination']}:{_num(r['server_port'])}"),
             md_text(r["server_zone"]), _num(r["flows"]), nbytes(r["bytes"]), _num(r["findings"])]
            for r in dest.to_dict("records")])
    else:
        lines += ["No destinations.", ""]

    certs = summary.tables["certificates"].head(CERTIFICATES)
    ct = n["certificates"]
    lines += ["### Certificates", "", f"{ct['total']:,} seen: {ct['expired']:,} expired, {ct['expiring_30_days']:,} "
              f"expiring within 30 days, {ct['self_signed']:,} self-signed.", ""]
    if len(certs):
        lines += _table(["subject CN", "issuer CN", "days left", "key"], [
            [md_text(r.get("subject_cn")), md_text(r.get("issuer_cn")), _num(r.get("days_left")),
             md_text(f"{r.get('key_type')} {_num(r.get('key_bits'))}")] for r in certs.to_dict("records")])

    tls = n["tls"]
    lines += ["### TLS", "", f"{tls['sessions']:,} sessions. Versions: " + (", ".join(
        f"{md_text(v)} {c:,}" for v, c in tls["versions"].items()) or "none") + ".", ""]

    cov, nj = n["coverage"], n["coverage"]["not_judged"]
    lines += ["### Coverage", "",
              f"{cov['captures_read']:,} captures read ({cov['captures_not_read']:,} not read), {cov['packets']:,} "
              f"packets, {cov['truncated_flows']:,} flows cut short (snap length, or a handshake message cut), "
              f"{cov['anomalies']:,} anomalies. "
              f"Not judged: {nj['total']:,} flows ({nj['no_payload']:,} without payload, "
              f"{nj['unrecognised_protocol']:,} protocol not recognised, {nj['undecided']:,} undecided).", ""]
    problems = summary.tables["captures"]
    problems = problems[problems["status"].ne("ok").fillna(True) | problems["anomalies"].gt(0).fillna(False)]
    if len(problems):
        lines += _table(["capture", "status", "packets", "anomalies", "problem"], [
            [md_text(r["source"]), md_text(r["status"]), _num(r["packets"]), _num(r["anomalies"]),
             md_text(r["problem"])] for r in problems.to_dict("records")])
    m = n["method"]
    lines += [f"<sub>Profile {md_text(m['profile'])}; zones {md_text(', '.join(m['zones']) or 'none')}; "
              f"capture {md_text(n['capture']['first_packet'])} to {md_text(n['capture']['last_packet'])}; "
              f"{n['tool']['name']} {n['tool']['version']}.</sub>", ""]
    return "\n".join(lines)
