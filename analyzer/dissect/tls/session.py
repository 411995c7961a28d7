"""What a TLS session amounts to, from what its two directions said (`records.Side`): whether it
was established, why it failed, its first alert, and its `history`.

`history` follows Zeek's `ssl_history` letters and case: **client-sent letters are uppercase,
server-sent lowercase** (C client_hello, s server_hello, j hello_retry_request, x certificate,
k server_key_exchange, r certificate_request, n server_hello_done, y certificate_verify,
g client_key_exchange, t new_session_ticket, u certificate_status, i change_cipher_spec, l alert,
b heartbeat, v hello_verify_request, h hello_request, z other handshake types, q unknown record
type). Encrypted records add no letters. The two directions are merged by capture time when the
flow layer supplied segment timestamps, else by handshake flights (`FlightPlans`, memoised per
dissector instance).

Facts, never judgements: weak versions, ciphers or certificates are left to `policy/`.
"""

from __future__ import annotations

from bisect import bisect_right
from operator import itemgetter
from typing import NamedTuple

from analyzer.dissect.base import FlowPayload, StreamPrefix
from analyzer.dissect.tls.constants import alert_description_name
from analyzer.dissect.tls.handshake import ClientHello, ServerHello
from analyzer.dissect.tls.records import HS_NAMES, ShapedHello, Side

__all__ = ["Event", "FlightPlans", "Outcome", "decide", "first_alert", "first_event", "merged", "time_at"]

_FIRST = itemgetter(0)  # (letter, offset, alert) -> letter
_new = tuple.__new__

_SSL2_ERRORS = {
    1: "NO-CIPHER-ERROR",
    2: "NO-CERTIFICATE-ERROR",
    4: "BAD-CERTIFICATE-ERROR",
    6: "UNSUPPORTED-CERTIFICATE-TYPE-ERROR",
}


class Outcome(NamedTuple):
    """What a session amounted to."""

    established: bool
    # The flow column: established, or a hello agreed and nothing failed; None (undecided) when the
    # server's side shows nothing (not captured, or not answered) and the client's alone proves nothing.
    encrypted: bool | None
    failure: str | None
    alert: tuple[int, int, str] | None  # (level, description, who) of the session's alert
    events: list[Event]  # both directions' events in history order (empty when not needed)
    history: str


def decide(
    flow: FlowPayload,
    cs: StreamPrefix,
    sc: StreamPrefix,
    client: Side,
    server: Side,
    ch: ClientHello | ShapedHello | None,
    sh: ServerHello | None,
    tls13: bool,
    plans: FlightPlans,
    with_history: bool,
) -> Outcome:
    """Established / failure / alert / history of a session (`with_history` False: the merged
    events and history are made only when an alert or a reset needs them)."""
    established = False
    probable_alert = False
    if server.ssl2_server_hello:
        established = client.cke and server.ssl2_error is None and client.ssl2_error is None
    elif sh is not None:
        if tls13:
            apps = client.app_lengths
            # A lone 19-byte record is an encrypted 2-byte alert (1 type + 16 tag bytes).
            probable_alert = len(apps) == 1 and apps[0] == 19 and client.stop not in ("budget", "gap")
            established = bool(apps) and not probable_alert
        else:
            # a server-only view: application data after the server's CCS means it got the client's
            # Finished (TLS 1.2 and below send no application data before)
            established = server.ccs and (client.ccs or (not cs.data and bool(server.app_lengths)))
    elif ch is None and client.app_lengths and server.app_lengths:
        established = True  # picked up mid-stream: application data flows both ways
    if client.alerts or server.alerts or flow.reset:
        events, history = merged(client, server, cs, sc, plans)
    elif with_history:  # the history alone: the merged events are read only for an alert or a reset
        events, history = [], merged_history(client, server, cs, sc, plans)
    else:  # flows mode without an alert or a reset reads neither
        events, history = [], ""
    # Only an alert record carries an alert event: without one, none needs looking for.
    alert = first_alert(events) if client.alerts or server.alerts else None
    failure: str | None = None
    if alert is not None and alert[0] == 2 and not established:
        failure = f"{alert[2]} alert: {alert_description_name(alert[1])}"
    elif client.ssl2_error is not None or server.ssl2_error is not None:
        code = server.ssl2_error if server.ssl2_error is not None else client.ssl2_error
        failure = f"sslv2 error: {_SSL2_ERRORS.get(code or 0, f'0x{code or 0:04x}')}"
        established = False
    elif not established:
        if probable_alert:
            failure = "client encrypted alert (probable) after the server flight"
        elif ch is not None and server.stop == "not_tls":
            failure = "server answered with non-TLS data"
        elif flow.reset and (ch is not None or sh is not None) and cs.data and sc.data:
            # (a one-sided view cannot tell a reset before the handshake's end from one after it)
            failure = f"reset before handshake completed (last: {last_message(events)})"
        elif alert is not None:
            failure = f"{alert[2]} alert: {alert_description_name(alert[1])}"
    encrypted: bool | None = established or (failure is None and (sh is not None or server.ssl2_server_hello))
    if not encrypted and failure is None and not sc.data:
        # Nothing from the server (a one-sided mirror, or no answer yet): encrypted records after
        # the client's hello (its Finished or application data, TLS 1.3's encrypted flight) prove an
        # encrypted session; a hello alone does not prove one, nor cleartext.
        encrypted = True if ch is not None and client.app_lengths else None
    elif not encrypted and failure is None and ch is None and sh is None:
        # Picked up mid-stream, no hello on either side: well-formed application-data records (the
        # record layer chains type, version and length across segments) are encrypted by definition.
        encrypted = True if client.app_lengths or server.app_lengths else None
    # tuple.__new__ directly: the NamedTuple's own __new__ is a Python-level call (once per session)
    return _new(Outcome, (established, encrypted, failure, alert, events, history))


Event = tuple[str, int, "tuple[int, int] | None"]


def merged(
    client: Side, server: Side, cs: StreamPrefix | None, sc: StreamPrefix | None, plans: FlightPlans
) -> tuple[list[Event], str]:
    """Both directions' events in one order, and the history (the first 100 letters in that
    order): capture time decides when both directions carry segment timestamps; handshake
    flights decide otherwise and break ties."""
    ce, se = client.events, server.events
    if not se:
        return ce, _history_of(ce)
    if not ce:
        return se, _history_of(se)
    chunks, history = plans.plan("".join(map(_FIRST, ce)), "".join(map(_FIRST, se)))
    out: list[Event] = []
    for c0, c1, s0, s1 in chunks:
        out += ce[c0:c1]
        out += se[s0:s1]
    if cs is not None and sc is not None and cs.times and sc.times:
        keyed = []
        for rank, ev in enumerate(out):
            ts = time_at(cs if ev[0].isupper() else sc, ev[1])
            keyed.append((ts if ts is not None else 0.0, rank))
        keyed.sort()
        out = [out[rank] for _ts, rank in keyed]
        history = _history_of(out)
    return out, history


def merged_history(client: Side, server: Side, cs: StreamPrefix | None, sc: StreamPrefix | None,
                   plans: FlightPlans) -> str:
    """`merged(...)[1]` without the merged events: the flight plan's history when no capture time
    orders the events (the flow table records none), else the merge's."""
    ce, se = client.events, server.events
    if cs is not None and sc is not None and cs.times and sc.times and ce and se:
        return merged(client, server, cs, sc, plans)[1]
    if not se:
        return _history_of(ce)
    if not ce:
        return _history_of(se)
    return plans.plan("".join(map(_FIRST, ce)), "".join(map(_FIRST, se)))[1]


class FlightPlans:
    """Flight plans by the two directions' letters, which repeat from session to session (one
    memo per dissector instance; bounded: long letter strings are not kept, a full memo is
    emptied)."""

    __slots__ = ("_memo",)

    def __init__(self) -> None:
        self._memo: dict[tuple[str, str], tuple[tuple[tuple[int, int, int, int], ...], str]] = {}

    def plan(self, client_letters: str, server_letters: str) -> tuple[tuple[tuple[int, int, int, int], ...], str]:
        """The flight-by-flight interleaving of the two directions, as (client start, client end,
        server start, server end) index ranges, and the history letters it gives."""
        key = (client_letters, server_letters)
        memo = self._memo
        found = memo.get(key)
        if found is None:
            found = _flight_plan(client_letters, server_letters)
            if len(client_letters) + len(server_letters) <= 256:
                if len(memo) >= 4096:
                    memo.clear()
                memo[key] = found
        return found


def _flight_plan(client_letters: str, server_letters: str) -> tuple[tuple[tuple[int, int, int, int], ...], str]:
    cf = _flights(client_letters, True)
    sf = _flights(server_letters, False)
    chunks = []
    cpos = spos = 0
    for i in range(max(len(cf), len(sf))):
        cn = cf[i] if i < len(cf) else 0
        sn = sf[i] if i < len(sf) else 0
        chunks.append((cpos, cpos + cn, spos, spos + sn))
        cpos += cn
        spos += sn
    history = "".join([client_letters[c0:c1] + server_letters[s0:s1] for c0, c1, s0, s1 in chunks])[:100]
    return tuple(chunks), history


def _flights(letters: str, is_client: bool) -> list[int]:
    """Sizes of one direction's flights (`letters`: its events' history letters): runs of
    messages ending where that side waits for its peer (client: after a ClientHello, an alert,
    or its ChangeCipherSpec unless a second ClientHello follows; server: after ServerHelloDone,
    ChangeCipherSpec, an alert, or a HelloRetryRequest / ServerHello that nothing of the same
    flight follows)."""
    sizes: list[int] = []
    cur = 0
    n = len(letters)
    for i in range(n):
        letter = letters[i]
        cur += 1
        nxt = letters[i + 1] if i + 1 < n else ""
        if is_client:
            end = letter in _CLIENT_FLIGHT_END or (letter == "I" and nxt != "C")
        else:
            end = letter in _SERVER_FLIGHT_END or (letter in "js" and nxt not in _SERVER_FLIGHT_GOES_ON)
        if end:
            sizes.append(cur)
            cur = 0
    if cur:
        sizes.append(cur)
    return sizes


_CLIENT_FLIGHT_END = frozenset("CL")
_SERVER_FLIGHT_END = frozenset("nil")
_SERVER_FLIGHT_GOES_ON = frozenset("ixkrnut")


def _history_of(merged: list[Event]) -> str:
    return "".join([ev[0] for ev in merged[:100]])


def first_alert(merged: list[Event]) -> tuple[int, int, str] | None:
    """(level, description, who) of the first fatal plaintext alert in history order, else of the
    first alert."""
    first: tuple[int, int, str] | None = None
    for letter, _off, alert in merged:
        if alert is None:
            continue
        found = (alert[0], alert[1], "client" if letter == "L" else "server")
        if alert[0] == 2:
            return found
        if first is None:
            first = found
    return first


def first_event(side: Side, letter: str) -> int | None:
    for ev in side.events:
        if ev[0] == letter:
            return ev[1]
    return None


def time_at(prefix: StreamPrefix, offset: int | None) -> float | None:
    if offset is None or not prefix.times:
        return None
    times = prefix.times
    i = bisect_right(times, (offset, float("inf"))) - 1
    return times[i][1] if i >= 0 else times[0][1]


def last_message(merged: list[Event]) -> str:
    if not merged:
        return "nothing"
    last = merged[-1][0]
    who = "client" if last.isupper() else "server"
    return f"{who} {HS_NAMES.get(last.lower(), last)}"
