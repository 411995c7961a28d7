"""Syslog dissector (analyzer/dissect/syslog.py): RFC 3164 and RFC 5424 headers, PRI bounds, the probe
(port 514 a hint only) and hostile input. Real capture: tests/captures/test_net_captures.py (logger)."""

from __future__ import annotations

import time

from analyzer.dissect.base import Datagram, FlowPayload
from analyzer.dissect.syslog import SyslogDissector, parse_syslog


def udp(payloads: list[bytes], port: int = 514) -> FlowPayload:
    return FlowPayload(uid="L1", transport="udp", client_ip="10.0.0.1", server_ip="10.0.0.2", client_port=40000,
                       server_port=port, ts_start=0.0,
                       datagrams=[Datagram(float(i), True, p) for i, p in enumerate(payloads)])


def test_rfc5424_and_rfc3164():
    d = SyslogDissector()
    msg = b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 - An application event"
    fp = udp([msg, b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"], port=5140)
    assert d.probe(fp)
    assert d.dissect(fp).flow == {"app_protocol": "syslog", "encrypted": False, "protection": "none",
                                  "syslog_facility": 20, "syslog_severity": 5, "syslog_format": "rfc5424",
                                  "syslog_hostname": "mymachine.example.com", "syslog_messages": 2}
    assert parse_syslog(b"<34>Oct  1 22:14:15 host tag: x") == (34, "rfc3164", b"host")
    assert parse_syslog(b"<0>1 - - - - - -") == (0, "rfc5424", None)


def test_bare_pri_only_on_514_and_refusals():
    d = SyslogDissector()
    assert d.probe(udp([b"<13>kernel: something happened"]))
    assert not d.probe(udp([b"<13>kernel: something happened"], port=9999))
    for payload in [b"<192>1 - - - - - -", b"<013>Oct 11 22:14:15 h t", b"<13>", b"<html><body>", b"\x00<13>x",
                    b"<1000>x", b"<13>\x00\x01\x02\x03"]:
        assert not d.probe(udp([payload])), payload


def test_hostile_input_never_raises():
    d = SyslogDissector()
    started = time.perf_counter()
    for payload in [b"<1>" + b"x" * 70_000, b"<" * 5000, b"<13>1 " + b" " * 5000, bytes(range(256)) * 8]:
        facts = d.dissect(udp([payload] * 32))
        assert facts.flow["app_protocol"] == "syslog"
    assert time.perf_counter() - started < 0.5
