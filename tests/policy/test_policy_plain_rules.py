"""The plaintext rules on hand-made frames: STARTTLS states, FTP data channels (and their link to the
data flows), HTTP redirects to HTTPS, SSH 1. The bundled captures are in test_policy_captures."""

from __future__ import annotations

import pytest
from support.policy_helpers import T0, flows, frame

from analyzer import policy
from analyzer._pandas import pd
from analyzer.policy.facts import frame_cols
from analyzer.policy.rules_plain import FTP_DATA_COLUMNS
from analyzer.policy.rules_plain import link_ftp_data as link_cols

VPC = ["10.0.0.0/16"]
S = pd.Timedelta(seconds=1)


def _rules(res: policy.PolicyResult, uid: str) -> set[str]:
    return set(res.findings.loc[res.findings["uid"] == uid, "rule"])


def _eval(f, **kw):
    kw.setdefault("zones", VPC)
    return policy.evaluate(f, **kw)


def _evidence(res: policy.PolicyResult, uid: str, rule: str) -> str:
    f = res.findings
    return str(f.loc[(f["uid"] == uid) & (f["rule"] == rule), "evidence"].iloc[0])


# --- STARTTLS ------------------------------------------------------------------------------------


def test_starttls_states():
    clear = {"encrypted": False, "server_ip": "10.0.3.3", "server_port": 25}
    f = flows(
        {**clear, "app_protocol": "smtp", "starttls": "offered_not_used"},
        {**clear, "app_protocol": "smtp", "starttls": "not_offered"},
        {**clear, "app_protocol": "imap", "starttls": "requested_refused", "server_port": 143},
        {"app_protocol": "smtp", "starttls": "completed", "encrypted": True},
        {**clear, "app_protocol": "smtp", "starttls": None},  # too little seen: not judged
        # a protocol no dissector states today joins by its value (the LDAP/XMPP/NNTP dissectors)
        {**clear, "app_protocol": "ldap", "starttls": "not_offered", "server_port": 389},
    )
    res = _eval(f)
    plain = {"starttls-not-used", "starttls-unavailable"}
    assert _rules(res, "C0") & plain == {"starttls-not-used"}
    assert _rules(res, "C1") & plain == {"starttls-unavailable"}
    assert _rules(res, "C2") & plain == {"starttls-unavailable"}
    assert _rules(res, "C3") & plain == set() and _rules(res, "C4") & plain == set()
    assert _rules(res, "C5") & plain == {"starttls-unavailable"}
    assert _evidence(res, "C0", "starttls-not-used") == (
        "server offered STARTTLS; the client went on in the clear (smtp port 25)")
    assert _evidence(res, "C2", "starttls-unavailable") == (
        "imap server refused STARTTLS; the session stayed in the clear (port 143)")


def test_starttls_offered_but_encrypted_anyway_is_not_flagged():
    """A flow shown encrypted (the dissector saw TLS after all) is never called cleartext."""
    f = flows({"app_protocol": "smtp", "starttls": "offered_not_used", "encrypted": True})
    assert _rules(_eval(f), "C0") == set()


def test_starttls_unavailable_protocols_option(tmp_path):
    prof = tmp_path / "p.toml"
    prof.write_text('extends = "sec09"\n[rules.starttls-unavailable]\noptions = { protocols = ["SMTP"], '
                    'states = ["not_offered"] }\n')
    f = flows({"app_protocol": "smtp", "starttls": "not_offered", "encrypted": False},
              {"app_protocol": "pop3", "starttls": "not_offered", "encrypted": False},
              {"app_protocol": "smtp", "starttls": "requested_refused", "encrypted": False})
    res = _eval(f, profile=prof)
    hit = set(res.findings.loc[res.findings["rule"] == "starttls-unavailable", "uid"])
    assert hit == {"C0"}


# --- FTP data channels ---------------------------------------------------------------------------


def _ftp_data(*rows):
    return frame(FTP_DATA_COLUMNS, list(rows))


def link_ftp_data(ftp_data, flows, window_s=300.0):
    """`link_ftp_data` (Arrow columns) on pandas frames, its links as a frame."""
    made = link_cols(frame_cols(ftp_data), frame_cols(flows), window_s)
    return pd.DataFrame({c: a.to_pylist() for c, a in made.items()})


CONTROL = {"app_protocol": "ftp", "encrypted": False, "client_ip": "10.0.0.1", "server_ip": "10.0.0.2",
           "server_port": 21, "ts_start": T0, "ts_end": T0 + 60 * S}


def _data_flow(**kw):
    base = {"client_ip": "10.0.0.1", "server_ip": "10.0.0.2", "server_port": 30007, "ts_start": T0 + 5 * S,
            "ts_end": T0 + 6 * S}
    return {**base, **kw}


def test_link_passive_and_active_mode():
    f = flows(
        CONTROL,
        _data_flow(),  # passive: client -> server's announced port
        # active (PORT): the server connects from port 20 to the client's announced address
        _data_flow(client_ip="10.0.0.2", client_port=20, server_ip="10.0.0.1", server_port=40123),
        _data_flow(server_port=30008),  # announced by nobody
    )
    d = _ftp_data({"uid": "C0", "command": "EPSV", "host": "10.0.0.2", "port": 30007, "protected": False},
                  {"uid": "C0", "command": "PORT", "host": "10.0.0.1", "port": 40123, "protected": False})
    links = link_ftp_data(d, f)
    assert sorted(zip(links["uid"], links["control_uid"], links["command"], strict=True)) == [
        ("C1", "C0", "EPSV"), ("C2", "C0", "PORT")]
    made = link_cols(frame_cols(d), frame_cols(f))
    assert {c: str(a.type) for c, a in made.items()} == {"uid": "large_string", "control_uid": "large_string",
                                                         "command": "large_string", "protected": "bool"}


def test_link_time_bounds_and_latest_announcement():
    f = flows(
        CONTROL,
        _data_flow(ts_start=T0 - 10 * S),  # before the control session: another flow on that port
        _data_flow(ts_start=T0 + 60 * S + 301 * S),  # past the window after the control's end
        _data_flow(ts_start=T0 + 60 * S + 299 * S),  # inside it
        {**CONTROL, "ts_start": T0 + 30 * S},  # a second control session (C4)
        _data_flow(ts_start=T0 + 40 * S, server_port=30009),
    )
    d = _ftp_data({"uid": "C0", "command": "PASV", "host": "10.0.0.2", "port": 30007, "protected": False},
                  {"uid": "C0", "command": "PASV", "host": "10.0.0.2", "port": 30009, "protected": True},
                  {"uid": "C4", "command": "EPSV", "host": "10.0.0.2", "port": 30009, "protected": False})
    links = link_ftp_data(d, f)
    got = dict(zip(links["uid"], zip(links["control_uid"], links["protected"], strict=True), strict=True))
    # C5 fits both control sessions: the one that started last before it wins
    assert got == {"C3": ("C0", False), "C5": ("C4", False)}
    assert set(link_ftp_data(d, f, window_s=400)["uid"]) == {"C2", "C3", "C5"}


def test_link_without_the_control_flow_and_never_to_itself():
    f = flows(_data_flow(), {**CONTROL, "server_port": 30007, "uid": "X"})
    d = _ftp_data({"uid": "X", "command": "EPSV", "host": "10.0.0.2", "port": 30007, "protected": False},
                  {"uid": "gone", "command": "EPSV", "host": "10.0.0.2", "port": 30007, "protected": False})
    links = link_ftp_data(d, f)
    # X announced its own address: not a data flow of itself; C0 links to the X control session
    assert list(links["uid"]) == ["C0"]
    assert link_ftp_data(_ftp_data(), f).empty and link_ftp_data(d, f.iloc[:0]).empty
    # a control flow absent from the flows (or a time unknown) links nothing: no time to bound it by
    assert link_ftp_data(d.iloc[1:], f).empty
    assert link_ftp_data(d, flows(_data_flow(), {**CONTROL, "server_port": 30007, "uid": "X", "ts_end": None})).empty


def test_link_one_row_per_data_flow_sorted_first_announcement_on_a_tie():
    f = flows(CONTROL, _data_flow(uid="b"), _data_flow(uid="a", server_port=30008))
    d = _ftp_data({"uid": "C0", "command": "PASV", "host": "10.0.0.2", "port": 30007, "protected": True},
                  {"uid": "C0", "command": "EPSV", "host": "10.0.0.2", "port": 30007, "protected": False},
                  {"uid": "C0", "command": "PORT", "host": "10.0.0.2", "port": 30008, "protected": None})
    links = link_ftp_data(d, f)
    assert links.values.tolist() == [["a", "C0", "PORT", None], ["b", "C0", "PASV", True]]


def test_ftp_data_unprotected_rule():
    f = flows(
        CONTROL,
        _data_flow(),  # cleartext data under PROT C
        _data_flow(server_port=30008, app_protocol="tls", encrypted=True),  # PROT P: TLS data flow
        _data_flow(server_port=30009, payload_bytes_to_server=0, payload_bytes_to_client=0),  # nothing sent
        _data_flow(server_port=30010),  # PROT P announced, encryption not decided: not judged
        _data_flow(server_port=30011, encrypted=False, app_protocol="ftp-data"),  # PROT P, but clear
    )
    d = _ftp_data(*({"uid": "C0", "command": "EPSV", "host": "10.0.0.2", "port": p, "protected": prot}
                    for p, prot in ((30007, False), (30008, True), (30009, False), (30010, True), (30011, True))))
    res = _eval(f, ftp_data=d)
    hit = set(res.findings.loc[res.findings["rule"] == "ftp-data-unprotected", "uid"])
    assert hit == {"C1", "C5"}
    assert _evidence(res, "C1", "ftp-data-unprotected") == (
        "FTP data channel in the clear (EPSV on control flow C0, PROT P not in force), 1000 payload bytes")
    assert set(_eval(f).findings["rule"]) & {"ftp-data-unprotected"} == set()  # no ftp_data frame given


# --- HTTP redirect, SSH 1 ------------------------------------------------------------------------


def test_http_redirect_only():
    f = flows(
        {"app_protocol": "http", "encrypted": False, "http_host": "shop.example", "server_port": 80,
         "http_redirect_to_https": True, "http_location": "https://shop.example/"},
        {"app_protocol": "http", "encrypted": False, "http_redirect_to_https": False},
        {"app_protocol": "http", "encrypted": False},  # no response read: not judged
    )
    res = _eval(f)
    assert [set(res.findings.loc[res.findings["uid"] == u, "rule"]) & {"http-redirect-only"}
            for u in ("C0", "C1", "C2")] == [{"http-redirect-only"}, set(), set()]
    assert _evidence(res, "C0", "http-redirect-only") == (
        "http://shop.example answered with a redirect to https://shop.example/: the first request went in the clear")


@pytest.mark.parametrize(("version", "flagged"), [("1.5", True), ("1.3", True), ("2.0", False), ("1.99", True),
                                                    (None, False)])
def test_ssh_legacy(version, flagged):
    """`ssh_protocol` is the version in use: the dissector reports 1.99 on both sides as 2.0, so a
    1.99 here would be a session that really ran SSH 1 (flagged)."""
    f = flows({"app_protocol": "ssh", "encrypted": True, "ssh_protocol": version, "server_port": 22,
               "ssh_server_software": "OpenSSH_2.3", "ssh_client_software": "PuTTY_0.50"})
    res = _eval(f)
    assert ("ssh-legacy" in _rules(res, "C0")) == flagged
    if flagged:
        assert _evidence(res, "C0", "ssh-legacy") == f"SSH protocol {version} (server OpenSSH_2.3, client PuTTY_0.50)"
        assert list(res.flows["verdict"]) == ["fail"]  # high in sec09


def test_plain_rules_severities_by_profile():
    f = flows({"app_protocol": "ssh", "encrypted": True, "ssh_protocol": "1.5"})
    assert list(_eval(f, profile="strict").findings["severity"]) == ["critical"]
    assert list(_eval(f, profile="sec09").findings["severity"]) == ["high"]
