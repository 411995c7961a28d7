"""The second look at a TCP flow picked up mid-stream that no dissector's probe claimed (issue 17 §2).

A probe looks at the first bytes of each direction, which is right when the capture saw the
connection open. A mirror session started on a busy interface, or a rotated capture, begins in the
middle of established connections: the first bytes are then the middle of a message (a response
body, a DATA section), and the protocol shows itself only at a later message boundary. Flows whose
start was not captured (`StreamPrefix.start_known` False in a direction) and that no probe claimed
get this second look: every dissector with a `resync(flow)` method scans the first
`lines.RESYNC_WINDOW` bytes of each direction for a line that starts one of its messages (an HTTP
request or status line, an SMTP `MAIL FROM:` or enhanced status reply, an IMAP tagged command or
`* OK`, a POP3 `+OK` with text, an FTP `PASV` or `227` reply, ...) and returns the offset of the
first such message in each direction (None where that direction shows none).

The dissector then reads the flow from those offsets (`rebased`): its usual `dissect` on the stream
that starts there, marked `start_known` False, so it does not take a reply for a greeting. The facts
are what those messages say (`encrypted` False, protection none, for a cleartext protocol; a STARTTLS
hand-over if one is seen); nothing is inferred from what was not captured, and the flow's
`visibility` (mid_stream, from the engine) says the start was missing. A hand-over's offsets are
moved back to the flow's own stream offsets (`shifted`), so the TLS dissector reads the original
prefix.

Several dissectors may recognise a line (a quoted request in a mail body): a dissector whose
messages are found in both directions wins over one found in a single direction, then the registry
order decides. Encrypted payload never forms these lines (each needs a printable line of a protocol's
own grammar ending in LF), and the TLS/SSH probes have claimed their mid-stream flows before this.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from analyzer.dissect.base import Facts, FlowPayload, HandOver, StreamPrefix

__all__ = ["rebased", "second_look", "shifted"]

Offsets = tuple[int | None, int | None]


def _cut(prefix: StreamPrefix, at: int) -> StreamPrefix:
    """The direction's prefix from `at` on (a start that was not captured: start_known False)."""
    if at <= 0:
        return prefix
    gap_at = None if prefix.gap_at is None else max(prefix.gap_at - at, 0)
    times = [(off - at, ts) for off, ts in prefix.times if off >= at]
    return replace(prefix, data=prefix.data[at:], start_known=False, gap_at=gap_at, times=times)


def rebased(flow: FlowPayload, to_server: int, to_client: int) -> FlowPayload:
    """The flow as if each direction's capture began at these offsets (a direction read from its
    start keeps what the flow table knew of it)."""
    return replace(flow, to_server=_cut(flow.to_server, to_server), to_client=_cut(flow.to_client, to_client))


def shifted(facts: Facts, to_server: int, to_client: int) -> Facts:
    """Facts of a rebased flow, with a hand-over's offsets moved back to the flow's own streams."""
    h = facts.handover
    if h is not None:
        facts.handover = HandOver(h.to, h.to_server_offset + to_server, h.to_client_offset + to_client)
    return facts


def picked_up_late(flow: FlowPayload) -> bool:
    """A TCP flow whose start was not captured in a direction that carried payload, or one seen
    from one side only (the probes' first bytes of the other side are missing too)."""
    cs, sc = flow.to_server, flow.to_client
    return flow.transport == "tcp" and (
        (not cs.start_known and bool(cs.data)) or (not sc.start_known and bool(sc.data))
        or not cs.data or not sc.data)


def second_look(dissectors: Iterable[Any], flow: FlowPayload) -> tuple[Any, int, int] | None:
    """The dissector that recognises a later message of this mid-stream flow, with the offsets of
    each direction to read it from (a direction where none was found is skipped whole). Dissectors
    found in both directions win over those found in one; then the registry order."""
    best: tuple[Any, int, int] | None = None
    for d in dissectors:
        found: Offsets | None = d.resync(flow)
        if found is None or (found[0] is None and found[1] is None):
            continue
        c, s = found
        at = (d, len(flow.to_server.data) if c is None else c, len(flow.to_client.data) if s is None else s)
        if c is not None and s is not None:
            return at
        if best is None:
            best = at
    return best
