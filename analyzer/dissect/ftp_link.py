"""FTP data channels linked to their control flow: a join across flows, after both exist.

The FTP dissector sees one flow; from a control flow it makes `ftp_data` rows (the data channel
addresses announced by PORT/EPRT and the answers to PASV/EPSV, and whether PROT P was in force). A
data connection is its own TCP flow, and it usually ENDS BEFORE its control flow (the transfer
finishes, then QUIT), so it is dissected before its announcement is known. The link is therefore
made by the collector (`analyzer.pipeline.Collector`) with this object, at two moments:

1. when a control flow's `ftp_data` rows arrive, each row gets `data_uid`: the uid of the TCP flow
   that ended earlier in the run whose SERVER side is the announced address and port (passive mode:
   the FTP server's data port; active mode, PORT/EPRT: the client's listening address, to which the
   server connects), started within the control flow's lifetime (`ended` keeps a bounded index of
   ended TCP flows by server address and port);
2. before a chunk of flows is kept or written (`apply`), and over every kept chunk at the end of an
   in-memory run, each data flow that matches an announcement gets `ftp_control_uid` (the control
   flow's uid), `app_protocol` "ftp-data", `protection` "tls" when its payload was TLS (PROT P),
   else "none", and `encrypted` (the TLS dissector's value, False for cleartext payload; null with
   `no_payload` for an empty channel).

Streamed output (`flows` to a csv/jsonl/parquet sink): flows are written in chunks of 16,384, so a
data flow that ended in a chunk already written before its control flow ended keeps no link in
`.flows`; the link then lives in the `ftp_data` frame (`data_uid`), which is always filled when the
data flow ended first. In memory (the Python API, the table format) every link is in both.

An FTPS session whose control channel is encrypted (AUTH TLS before PASV) announces nothing in the
clear: its data flows are TLS flows that are not linked (nothing is guessed from ports).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["FtpDataLink"]

MAX_INDEX = 65536  # ended TCP flows remembered by (server address, port) for `data_uid`
MAX_ANNOUNCED = 65536
SLACK_NS = 5_000_000_000  # a data flow may start a little after the control flow's last packet


class FtpDataLink:
    """The run's announcements and recently ended TCP flows (see the module docstring)."""

    def __init__(self) -> None:
        # (host, port) -> (control uid, control start ns, control end ns, protected)
        self.announced: dict[tuple[str, int], tuple[str, int, int, bool]] = {}
        # (server ip, server port) -> [(uid, ts_start ns)], ended TCP flows in end order
        self.index: dict[tuple[str, int], list[tuple[str, int]]] = {}
        self._indexed = 0
        self._linked: set[str] = set()  # data uids already given to an announcement

    def ended(self, cols: Mapping[str, Any]) -> None:
        """Remember the TCP flows of a chunk of ended flows (the engine's columns)."""
        transport = cols["transport"]
        rows = np.flatnonzero(transport == "tcp") if isinstance(transport, np.ndarray) else [
            i for i, t in enumerate(transport) if t == "tcp"]
        if not len(rows):
            return
        uid, sip, sport, ts = cols["uid"], cols["server_ip"], cols["server_port"], cols["ts_start"]
        for i in (rows.tolist() if isinstance(rows, np.ndarray) else rows):
            self.index.setdefault((sip[i], int(sport[i])), []).append((uid[i], int(ts[i])))
        self._indexed += len(rows)
        if self._indexed > MAX_INDEX:  # drop the oldest keys: memory stays bounded on long runs
            for key in list(self.index)[: len(self.index) // 2]:
                del self.index[key]
            self._indexed = sum(len(v) for v in self.index.values())
            self._linked.clear()

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
            seen = [u for u, ts in self.index.get((host, port), ()) if start_ns <= ts <= end_ns + SLACK_NS
                    and u not in self._linked]
            if seen:  # the first of them not yet linked: a port announced twice names two flows in turn
                self._linked.add(seen[0])
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
        names = ("ftp_control_uid", "app_protocol", "protection", "encrypted", "undecided_reason")
        values = {name: chunk[name].to_pylist() for name in names}
        tls = chunk["tls_version"].to_pylist() if "tls_version" in chunk else [None] * len(sip)
        payload = [a + b for a, b in zip(chunk["payload_bytes_to_server"].to_pylist(),
                                         chunk["payload_bytes_to_client"].to_pylist(), strict=True)]
        for i, (control_uid, _start, _end, protected) in hits:
            values["ftp_control_uid"][i] = control_uid
            is_tls = values["app_protocol"][i] == "tls" or tls[i] is not None
            values["app_protocol"][i] = "ftp-data"
            if is_tls:
                values["protection"][i] = "tls"
            elif payload[i]:
                values["protection"][i], values["encrypted"][i], values["undecided_reason"][i] = "none", False, None
            else:  # an empty channel: what it would have been
                values["protection"][i] = "tls" if protected else "none"
        for name in names:
            chunk[name] = arrow_column(values[name], schema[name])
