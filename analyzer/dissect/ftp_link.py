"""FTP data channels linked to their control flow: a join across flows, after both exist.

The FTP dissector sees one flow; from a control flow it makes `ftp_data` rows (the data channel
addresses announced by PORT/EPRT and the answers to PASV/EPSV, and whether PROT P was in force). A
data connection is its own TCP flow, and it usually ENDS BEFORE its control flow (the transfer
finishes, then QUIT), so it is dissected before its announcement is known. The link is therefore
made by the collector (`analyzer.pipeline.Collector`) with this object, at two moments:

1. when a control flow's `ftp_data` rows arrive, each row gets `data_uid`: the uid of the TCP flow
   that ended earlier in the run whose SERVER side is the announced address and port (passive mode:
   the FTP server's data port; active mode, PORT/EPRT: the client's listening address, to which the
   server connects), started within the control flow's lifetime (`ended` keeps the columns of the
   last 65,536 ended flows, searched with numpy only when an announcement arrives: nothing per flow);
2. before a chunk of flows is kept or written (`apply`), and over every kept chunk at the end of an
   in-memory run, each data flow that matches an announcement gets `ftp_control_uid` (the control
   flow's uid), `app_protocol` "ftp-data", `protection` "tls" when its payload was TLS (PROT P),
   else "none", and `encrypted` (the TLS dissector's value, False for cleartext payload; null with
   `no_payload` for an empty channel).

Streamed output (`flows` to a csv/jsonl/parquet sink): flows are written in chunks of 16,384, so a
data flow that ended in a chunk already written before its control flow ended keeps no link in
`.flows`; the link then lives in the `ftp_data` frame (`data_uid`), which is always filled when the
data flow ended first. In memory (the Python API, the table format) every link is in both.

Stages (`analyze(stages=...)`, the policy hook) see a chunk after its links are set; a data flow
linked only at the end of an in-memory run (its chunk was kept before the announcement) was seen
by the stages without its link.

An FTPS session whose control channel is encrypted (AUTH TLS before PASV) announces nothing in the
clear: its data flows are TLS flows that are not linked (nothing is guessed from ports).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["FtpDataLink"]

MAX_INDEX = 65536  # ended flows remembered (their chunks' columns) for `data_uid`
MAX_ANNOUNCED = 65536
SLACK_NS = 5_000_000_000  # a data flow may start a little after the control flow's last packet


class FtpDataLink:
    """The run's announcements and recently ended TCP flows (see the module docstring)."""

    def __init__(self) -> None:
        # (host, port) -> (control uid, control start ns, control end ns, protected)
        self.announced: dict[tuple[str, int], tuple[str, int, int, bool]] = {}
        # the engine's columns of recently ended chunks (uid, server_ip, server_port, ts_start, tcp
        # mask), searched only when an announcement arrives: nothing is paid per flow otherwise
        self.recent: deque[tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = deque()
        self._recent_rows = 0
        self._linked: set[str] = set()  # data uids already given to an announcement

    def ended(self, cols: Mapping[str, Any]) -> None:
        """Remember a chunk of ended flows (the engine's columns), the newest MAX_INDEX flows at most."""
        n = len(cols["uid"])
        if not n:
            return
        self.recent.append((cols["uid"], np.asarray(cols["server_ip"], object), np.asarray(cols["server_port"]),
                            np.asarray(cols["ts_start"]), np.asarray(cols["transport"] == "tcp")))
        self._recent_rows += n
        while self._recent_rows - len(self.recent[0][0]) >= MAX_INDEX:
            self._recent_rows -= len(self.recent.popleft()[0])

    def _ended_to(self, host: str, port: int, start_ns: int, end_ns: int) -> list[str]:
        """Uids of the remembered TCP flows whose server is host:port, started in [start, end + slack]."""
        out: list[str] = []
        for uid, sip, sport, ts, tcp in self.recent:
            hit = np.flatnonzero(tcp & (sport == port) & (ts >= start_ns) & (ts <= end_ns + SLACK_NS))
            out.extend(uid[i] for i in hit.tolist() if sip[i] == host)
        return out

    def announce(self, control_uid: str, start_ns: int, end_ns: int,
                 rows: list[dict[str, object]]) -> list[dict[str, object]]:
        """A control flow's `ftp_data` rows: each gets `data_uid` when its data flow already ended."""
        out = []
        for row in rows:
            host, port = row.get("host"), row.get("port")
            if not isinstance(host, str) or not isinstance(port, int):
                out.append(row)
                continue
            if len(self.announced) >= MAX_ANNOUNCED:  # drop the oldest half: bounded on long runs
                for key in list(self.announced)[: MAX_ANNOUNCED // 2]:
                    del self.announced[key]
            self.announced.pop((host, port), None)  # re-inserted last: the newest announcement wins
            self.announced[(host, port)] = (control_uid, start_ns, end_ns, bool(row.get("protected")))
            seen = [u for u in self._ended_to(host, port, start_ns, end_ns) if u not in self._linked]
            if seen:  # the first of them not yet linked: a port announced twice names two flows in turn
                self._linked.add(seen[0])
                if len(self._linked) > MAX_ANNOUNCED:
                    self._linked.clear()
                row = {**row, "data_uid": seen[0]}
            out.append(row)
        return out

    def apply(self, chunk: dict[str, pa.Array], schema: Mapping[str, str], arrow_column: Any) -> None:
        """Set the link columns of the data flows in a chunk of flows (Arrow columns, in place)."""
        if not self.announced:
            return
        sip = chunk["server_ip"].to_pylist()
        sport = chunk["server_port"].to_pylist()
        transport = chunk["transport"].to_pylist()
        hits = [(i, self.announced[(ip, port)])
                for i, (ip, port, t) in enumerate(zip(sip, sport, transport, strict=True))
                if t == "tcp" and (ip, port) in self.announced]
        if not hits:
            return
        ts = chunk["ts_start"].view(pa.int64()).to_pylist()
        hits = [(i, a) for i, a in hits if ts[i] is not None and a[1] <= ts[i] <= a[2] + SLACK_NS]
        if not hits:
            return
        names = ("ftp_control_uid", "app_protocol", "protection", "encrypted", "undecided_reason", "payload_shape")
        values = {name: chunk[name].to_pylist() for name in names}
        tls = chunk["tls_version"].to_pylist() if "tls_version" in chunk else [None] * len(sip)
        payload = [a + b for a, b in zip(chunk["payload_bytes_to_server"].to_pylist(),
                                         chunk["payload_bytes_to_client"].to_pylist(), strict=True)]
        for i, (control_uid, _start, _end, protected) in hits:
            values["ftp_control_uid"][i] = control_uid
            is_tls = values["app_protocol"][i] == "tls" or tls[i] is not None
            values["app_protocol"][i] = "ftp-data"
            values["payload_shape"][i] = None  # the shape is said of unrecognised payload only
            if is_tls:
                values["protection"][i] = "tls"
            elif payload[i]:
                values["protection"][i], values["encrypted"][i], values["undecided_reason"][i] = "none", False, None
            else:  # an empty channel: what it would have been
                values["protection"][i] = "tls" if protected else "none"
        for name in names:
            chunk[name] = arrow_column(values[name], schema[name])
