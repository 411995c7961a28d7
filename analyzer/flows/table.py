"""The flow table: decoded batches in, ended flows out (columns + payload prefixes).

Flows stay in the compiled table while live; they end on idle/active timeout, TCP close (after a
short delay for late packets), port reuse, or the end of input. Ended flows are exported as numpy
columns plus one `FlowPayload` per flow that carried payload, then their memory is recycled, so
memory is bounded by the number of live flows. Feeding several captures into one table merges
flows that span rotated files; a live feed calls `expire(now)` between micro-batches.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from analyzer.config import MIN_FLOWS, FlowOptions, memory_shares
from analyzer.decode import DecodedBatch, is_one_of, tunnel_name
from analyzer.flows import _kernel as K
from analyzer.flows.community_id import community_id_packed, community_ids
from analyzer.flows.payload import Datagram, FlowPayload, StreamPrefix

SERVICE_PORTS = (
    443, 8443, 8080, 8000, 8008, 8888, 3306, 5432, 6379, 27017, 9200, 9300, 5671, 5672, 1883, 8883,
    4433, 4443, 5061, 5060, 3389, 5900, 1433, 1521, 2049, 2375, 2376, 6443, 9092, 9093, 11211,
    3478, 5349, 4789, 6081, 8472, 500, 4500, 1194, 51820, 6514, 5222, 5223, 5269, 6667, 6697,
    9000, 9443, 10250, 2379, 2380, 8200, 8500, 50051, 1812, 1813, 853, 784, 8853,
)  # fmt: skip


TCP_FLAG_LETTERS = ((0x02, "S"), (0x10, "A"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x20, "U"),
                    (0x40, "E"), (0x80, "C"))  # fmt: skip
CLIENT_BY = np.array(["first_packet", "syn", "synack", "port", "icmp", "continued"], dtype=object)
TRANSPORT = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6", 50: "esp", 51: "ah", 47: "gre", 132: "sctp",
             136: "udplite", 33: "dccp", 2: "igmp", 89: "ospf", 103: "pim", 112: "vrrp", 4: "ipip",
             41: "ipv6"}  # fmt: skip


def _flag_letters(v: int) -> str:
    return "".join(ch for bit, ch in TCP_FLAG_LETTERS if v & bit)


_FLAG_TABLE = np.array([_flag_letters(v) for v in range(256)], dtype=object)
_TRANSPORT_TABLE = np.array([TRANSPORT.get(p, f"ip-{p}") for p in range(256)], dtype=object)
_TUNNEL_TABLE = np.array([tunnel_name(b) for b in range(256)], dtype=object)


@dataclass(slots=True)
class EndedFlows:
    """A chunk of ended flows: columns for the flows frame and payloads for the dissectors."""

    columns: dict[str, Any]
    payloads: list[FlowPayload] = field(default_factory=list)
    payload_bytes: int = 0  # the payloads' stream bytes (what holding the chunk costs)

    def __len__(self) -> int:
        return len(self.columns["uid"])


# Ended flows exported together: each export has a fixed cost, but with payload capture every
# exported flow holds up to 2 x budget bytes until dissected, so keep chunks modest.
EXPORT_CHUNK = 4096
EXPORT_CHUNK_WITH_PAYLOAD = 256  # up to 2 x budget bytes each are copied out per exported flow
# Bytes of one flow record besides its page table (R, RU, OO, DG, its free-list slot, its share of
# the hash index): the unit of the memory budget's records share.
RECORD_BYTES = K.NR * 8 + K.NRU * 8 + 2 * K.NOOO * 2 * 8 + K.MAXDG * K.NDG * 8 + 8 + 64
# the memory budget lowers the payload budget down to 4 KiB, or two pages where pages are larger
FLOOR_BYTES = 4096
FLOOR_PAGES = 2
MIN_PAYLOAD_PAGES = 2


def _physical_memory() -> int:
    """The host's memory in bytes (a bound for reservations; 1 TiB when it cannot be known)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return 1 << 40


def _pages(o: FlowOptions) -> tuple[int, int]:
    """(page size, pages per direction) of a flow's payload prefix under these options."""
    budget = o.payload_budget if o.collect_payload else 0
    # 1 KiB pages up to a 64 KiB budget (the default): a short flow (DNS, NTP, a refused connection)
    # holds one page per direction until its idle timeout, and at 150k datagrams/s of new flows 2 KiB
    # pages filled the memory budget's payload share within ~30 s (82,870 flows ended early in 60 s;
    # with 1 KiB pages none, the same CPU per datagram: bench/RESULTS.md, eleventh stop). 1 KiB is the
    # smallest page whose list page (page / 4 int32 entries) holds a whole handshake extension.
    page = 1024
    while budget and page * 64 < budget:
        page *= 2
    return page, (max(1, -(-budget // page)) if budget else 1)


def record_limit(o: FlowOptions) -> int:
    """Live flows a table keeps at most: max_flows, or fewer when the memory budget's records share
    (config.memory_shares) holds fewer records."""
    npg = _pages(o)[1]
    return max(MIN_FLOWS, min(o.max_flows, memory_shares(o.memory_budget).records // (RECORD_BYTES + 2 * npg * 4)))


class FlowTable:
    R: np.ndarray  # int64 [capacity, K.NR] per-flow fields
    RU: np.ndarray  # uint64 [capacity, K.NRU] addresses and tunnel ids
    PT: np.ndarray  # int32 [capacity, 2, pages] payload page table
    OO: np.ndarray  # int64 out-of-order intervals
    DG: np.ndarray  # int64 datagram index for UDP flows
    PLAN: np.ndarray  # int64 [capacity, 2] evict_largest: (record, pages held), most pages first
    RFREE: np.ndarray
    PFREE: np.ndarray
    POOL: np.ndarray
    HT: np.ndarray
    def __init__(self, options: FlowOptions | None = None, capacity: int = 1 << 14) -> None:
        self.options = o = options or FlowOptions()
        budget = o.payload_budget if o.collect_payload else 0
        page, npg = _pages(o)
        # TLS handshake records may run past the budget (K.HANDSHAKE_EXTENSION)
        xpg = -(-K.HANDSHAKE_EXTENSION // page) if budget else 0
        assert xpg <= page // 4, "a handshake extension's pages must fit its list page"
        self.page, self.npg, self.xpg, self.budget = page, npg, xpg, budget
        self.O = np.zeros(K.NO, np.int64)
        ns = 1_000_000_000
        self.O[K.O_IDLE_TCP] = int(o.idle_timeout_tcp * ns)
        self.O[K.O_IDLE_UDP] = int(o.idle_timeout_udp * ns)
        self.O[K.O_IDLE_OTHER] = int(o.idle_timeout_other * ns)
        self.O[K.O_ACTIVE] = int(o.active_timeout * ns)
        self.O[K.O_CLOSE_DELAY] = int(o.close_delay * ns)
        self.O[K.O_BUDGET] = budget
        self.O[K.O_PAGE] = page
        self.O[K.O_NPG] = npg
        self.O[K.O_TLS_TRIM] = int(o.tls_trim)
        self.O[K.O_XPG] = xpg
        self.O[K.O_XSLOTS] = K.HANDSHAKE_EXTENSION_SLOTS
        self.G = np.zeros(K.NG, np.int64)
        self.svc = np.zeros(65536, np.bool_)
        self.svc[:1024] = True
        self.svc[list(SERVICE_PORTS)] = True
        self.FRAG = np.zeros((4096, 3), np.int64)
        self.ENDED = np.zeros(4 * EXPORT_CHUNK, np.int64)
        # The memory budget (config.memory_shares): the records may take half of the table's share
        # (beyond it the least recently active flows end early, as at max_flows), the payload pages
        # the other half, and flows exported and waiting for the dissectors the in-flight share.
        shares = memory_shares(o.memory_budget)
        self.record_limit = record_limit(o)
        if budget:
            per_flow = 2 * 2 * budget  # both directions, gathered then copied out once
            self.export_chunk = max(8, min(EXPORT_CHUNK_WITH_PAYLOAD, shares.in_flight // per_flow))
            pool_pages = max(shares.table // 2 // page, 4 * (MIN_PAYLOAD_PAGES + 2) + xpg + 1)
        else:
            self.export_chunk = EXPORT_CHUNK
            pool_pages = 4 * (npg + 2)
        # with payload, ended flows are exported in chunks of export_chunk (the kernel stops at a full
        # ENDED): each holds up to 2 x budget bytes, copied out twice while exported
        self._ended = self.ENDED[: self.export_chunk + 2] if budget else self.ENDED
        self.memory_events: list[tuple[str, int, str]] = []  # (kind, count, detail), drained by the engine
        self.memory_evicted = 0  # flows ended early by the memory budget (reason 7)
        self.budget_lowered_to = 0  # the lowest payload budget the memory budget imposed (0: never)
        self._alloc_records(min(capacity, max(self.record_limit, 2)))
        self._alloc_pool(pool_pages)
        # The largest budget whose worst packet still finds pages with three others' budgets in use:
        # a payload budget too large for the memory budget is lowered from the start.
        most = (self.POOL.shape[0] // 4 - 2) * page
        if budget > most:
            self._lower_budget(max(page, most), "the payload budget does not fit the memory budget")
        self.packets_not_ip = 0
        self._ip_cache: dict[tuple[int, int, int], str] = {}
        self._last_expire = -(1 << 62)
        self.evicted = 0  # flows ended early because the table was at max_flows
        self.source_names: list[str] = []
        self._source_ids: dict[str, int] = {}

    # ---------------------------------------------------------------- allocation
    def _alloc_records(self, cap: int) -> None:
        old = getattr(self, "R", None)
        R = np.zeros((cap, K.NR), np.int64)
        RU = np.zeros((cap, K.NRU), np.uint64)
        PT = np.full((cap, 2, self.npg), -1, np.int32)
        OO = np.zeros((cap, 2, K.NOOO, 2), np.int64)
        DG = np.zeros((cap, K.MAXDG, K.NDG), np.int64)
        first_new = 0
        if old is not None:
            n = old.shape[0]
            R[:n], RU[:n], PT[:n], OO[:n], DG[:n] = self.R, self.RU, self.PT, self.OO, self.DG
            first_new = n
            free = self.RFREE[: self.G[K.G_RFREE_TOP]]
        else:
            free = np.zeros(0, np.int64)
        self.R, self.RU, self.PT, self.OO, self.DG = R, RU, PT, OO, DG
        self.PLAN = np.zeros((cap, 2), np.int64)  # evict_largest's order of the live flows (pages untouched until used)
        RFREE = np.zeros(cap, np.int64)
        new_ids = np.arange(cap - 1, first_new - 1, -1, dtype=np.int64)
        stack = np.concatenate([new_ids, free])
        RFREE[: len(stack)] = stack
        self.RFREE = RFREE
        self.G[K.G_RFREE_TOP] = len(stack)
        self.HT = np.full(_pow2(cap * 4), K.EMPTY, np.int64)
        K.rehash(self.HT, self.R, self.RU, self.G)

    def _alloc_pool(self, pages: int) -> None:
        """The payload pages, all reserved at once and never copied: np.zeros maps them untouched, a
        page becomes resident when first written, and freed pages are reused first (a stack), so
        the resident part is the most pages ever live at once, within the memory budget's share."""
        pages = max(4 * (MIN_PAYLOAD_PAGES + 2), min(pages, _physical_memory() // self.page))
        while True:
            try:  # beyond what the host can map (a huge budget), take less: the budget is lowered under pressure
                self.POOL = np.zeros((pages, self.page), np.uint8)
                break
            except MemoryError:
                if pages <= 4 * (MIN_PAYLOAD_PAGES + 2):
                    raise
                pages //= 2
        self.PFREE = np.arange(pages - 1, -1, -1, dtype=np.int64)
        self.G[K.G_PFREE_TOP] = pages

    # ---------------------------------------------------------------- the memory budget
    def _lower_budget(self, budget: int, why: str) -> None:
        """Lower the payload budget of every flow, live and new, to `budget` (whole pages): live
        prefixes beyond it are cut and their pages freed. One `payload_budget_lowered` event."""
        budget = max(self.page, budget // self.page * self.page)
        before = int(self.O[K.O_BUDGET])
        self.O[K.O_BUDGET] = budget
        self.O[K.O_NPG] = -(-budget // self.page)
        cut = int(K.shrink(budget, self.R, self.PT, self.POOL, self.PFREE, self.G, self.OO, self.DG, self.page))
        self.budget_lowered_to = budget
        self.memory_events.append((
            "payload_budget_lowered", cut,
            f"payload budget lowered from {before} to {budget} bytes per flow and direction ({why}); "
            f"{cut} live prefixes cut to it, flows from now on keep at most that"))

    def _relieve_pages(self) -> Iterator[EndedFlows]:
        """The payload pages are all in use (the memory budget's share): export ended flows if any,
        else halve the payload budget down to FLOOR_BYTES (or FLOOR_PAGES pages), else end the flows
        holding the most payload (the least recently active first among equals) until an eighth of the pool is free."""
        if self.G[K.G_NENDED]:
            yield self._export()
            return
        budget = int(self.O[K.O_BUDGET])
        floor = max(FLOOR_BYTES, FLOOR_PAGES * self.page)
        if budget > floor:
            self._lower_budget(max(floor, budget // 2), f"the payload pages reached their share of the memory "
                                                      f"budget, {self.options.memory_budget} bytes")
            if self.G[K.G_PFREE_TOP] >= int(self.O[K.O_NPG]) + self.xpg + 3:
                return
        target = max(self.POOL.shape[0] // 8, int(self.O[K.O_NPG]) + self.xpg + 3)
        ended = 0
        self.G[K.G_EVICT_N] = 0  # a new plan: the live flows by the pages they hold, made once
        while self.G[K.G_PFREE_TOP] < target:
            n = int(K.evict_largest(target - int(self.G[K.G_PFREE_TOP]), self.HT, self.R, self.RU, self.PT, self.POOL,
                                    self.G, self._ended, self.PLAN))
            ended += n
            if self.G[K.G_NENDED]:
                yield self._export()
            if n == 0:
                break
        K.rehash(self.HT, self.R, self.RU, self.G)
        self.memory_evicted += ended
        self.memory_events.append((
            "flows_ended_memory", ended,
            f"{ended} flows ended early, those holding the most payload: the payload pages reached their share "
            f"of the memory budget ({self.options.memory_budget} bytes) at the lowest payload budget, "
            f"{int(self.O[K.O_BUDGET])} bytes (their later packets start new flows)"))

    # ---------------------------------------------------------------- feeding
    def update(self, decoded: DecodedBatch) -> list[EndedFlows]:
        """Fold one decoded batch in; returns the flows that ended meanwhile (`feed` yields them one
        export at a time instead: an engine takes each before the next is made, so the payloads in
        flight stay within the memory budget)."""
        return list(self.feed(decoded))

    def feed(self, decoded: DecodedBatch) -> Iterator[EndedFlows]:
        """Fold one decoded batch in, yielding the flows that end meanwhile, a chunk at a time. The
        batch is folded in only as far as the chunks are taken: consume the iterator."""
        batch = decoded.batch
        self.G[K.G_PKT_BASE] = batch.first_index
        if batch.source not in self._source_ids:
            self._source_ids[batch.source] = len(self.source_names)
            self.source_names.append(batch.source)
        self.G[K.G_SOURCE] = self._source_ids[batch.source]
        i = 0
        while True:
            i, status = K.process(i, decoded.cols, decoded.ucols, batch.ts_ns, batch.buf, self.svc, self.HT,
                                  self.R, self.RU, self.PT, self.POOL, self.PFREE, self.RFREE, self.OO,
                                  self.DG, self.FRAG, self.G, self.O, self._ended)
            if status == K.DONE:
                break
            if status == K.NEED_RECORDS:
                cap = self.R.shape[0]
                if cap >= self.record_limit:
                    # at the cap: end the least recently active eighth, export them, carry on
                    self.evicted += int(K.evict(max(2, cap // 8), self.HT, self.R, self.RU, self.G, self._ended))
                    while self.G[K.G_NENDED]:
                        yield self._export()
                    K.rehash(self.HT, self.R, self.RU, self.G)
                else:
                    self._alloc_records(min(cap * 2, max(self.record_limit, 2)))
            elif status == K.NEED_PAGES:
                yield from self._relieve_pages()
            elif status == K.NEED_EXPORT:
                yield self._export()
            elif status == K.NEED_REHASH:
                if self.G[K.G_HT_LIVE] * 4 > self.HT.shape[0]:
                    self.HT = np.full(self.HT.shape[0] * 2, K.EMPTY, np.int64)
                K.rehash(self.HT, self.R, self.RU, self.G)
        now = int(self.G[K.G_NOW])
        # Scanning the table costs O(capacity): do it once per second of capture time, not per batch.
        if now - self._last_expire >= 1_000_000_000:
            self._last_expire = now
            yield from self.expire_iter(now, export_below=self.export_chunk)
        elif self.G[K.G_NENDED] >= self.export_chunk:
            yield self._export()

    @property
    def last_expire_ns(self) -> int:
        """When `feed` last scanned the table for idle flows (packet time, ns)."""
        return self._last_expire

    def expire(self, now_ns: int, force: bool = False, export_below: int = 0) -> list[EndedFlows]:
        """End flows idle at time `now_ns` (or every flow when `force`) and export ended flows.

        With `export_below`, fewer ended flows than that are kept for a later, larger export
        (exporting in chunks amortizes the per-chunk cost); a live feed passes 0.
        """
        return list(self.expire_iter(now_ns, force, export_below))

    def expire_iter(self, now_ns: int, force: bool = False, export_below: int = 0) -> Iterator[EndedFlows]:
        """`expire`, yielding each export as it is made (consume it)."""
        self.G[K.G_EXPIRE_AT] = 0  # a new scan (one left unfinished by a consumer that stopped is dropped)
        while True:
            n = K.expire(now_ns, force, self.HT, self.R, self.RU, self.G, self.O, self._ended)
            if self.G[K.G_NENDED] and (n < 0 or self.G[K.G_NENDED] >= export_below):
                yield self._export()
            if n >= 0:
                break
        if self.G[K.G_HT_TOMB] * 4 > self.HT.shape[0]:
            K.rehash(self.HT, self.R, self.RU, self.G)

    def flush(self) -> list[EndedFlows]:
        return list(self.flush_iter())

    def flush_iter(self) -> Iterator[EndedFlows]:
        """End every flow, yielding each export as it is made."""
        return self.expire_iter(int(self.G[K.G_NOW]), force=True)

    @property
    def live_flows(self) -> int:
        return int(self.G[K.G_HT_LIVE])

    # ---------------------------------------------------------------- export
    def _ip(self, hi: int, lo: int, ver: int) -> str:
        key = (hi, lo, ver)
        s = self._ip_cache.get(key)
        if s is None:
            if ver == 4:
                s = str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
            else:
                s = str(ipaddress.IPv6Address((hi << 64) | lo))
            if len(self._ip_cache) > 200_000:
                self._ip_cache.clear()
            self._ip_cache[key] = s
        return s

    def _ips(self, hi: np.ndarray, lo: np.ndarray, ver: np.ndarray) -> np.ndarray:
        """Address text per row; each distinct address is formatted once."""
        out = np.empty(len(hi), dtype=object)
        v4 = ver == 4
        if v4.any():
            uniq, inv = np.unique(lo[v4] & np.uint64(0xFFFFFFFF), return_inverse=True)
            packed = uniq.astype(">u4").tobytes()
            ntoa = socket.inet_ntoa  # C, ~10x faster than ipaddress; same dotted-quad text
            text = np.array([ntoa(packed[k : k + 4]) for k in range(0, len(packed), 4)] + [""], dtype=object)[:-1]
            out[v4] = text[inv]
        other = np.flatnonzero(~v4)
        for j in other.tolist():
            out[j] = self._ip(int(hi[j]), int(lo[j]), int(ver[j]))
        return out

    def _export(self) -> EndedFlows:
        """Columns for the ended flows: vectorized except Community ID, uid and address text."""
        n = int(self.G[K.G_NENDED])
        idx = self.ENDED[:n].copy()
        self.G[K.G_NENDED] = 0
        R = self.R[idx]
        RU = self.RU[idx]
        cia = R[:, K.R_CLIENT_IS_A] == 1
        # client/server from the canonical A/B sides
        c_hi = np.where(cia, RU[:, K.RU_AHI], RU[:, K.RU_BHI])
        c_lo = np.where(cia, RU[:, K.RU_ALO], RU[:, K.RU_BLO])
        s_hi = np.where(cia, RU[:, K.RU_BHI], RU[:, K.RU_AHI])
        s_lo = np.where(cia, RU[:, K.RU_BLO], RU[:, K.RU_ALO])
        c_port = np.where(cia, R[:, K.R_PORTA], R[:, K.R_PORTB])
        s_port = np.where(cia, R[:, K.R_PORTB], R[:, K.R_PORTA])
        proto = R[:, K.R_PROTO]
        ipver = R[:, K.R_IPVER]
        client_ip = self._ips(c_hi, c_lo, ipver)
        server_ip = self._ips(s_hi, s_lo, ipver)
        ts0 = R[:, K.R_TS_FIRST]
        tunbits = R[:, K.R_TUNBITS]
        oipver = R[:, K.R_OIPVER]
        has_ports = is_one_of(proto, (6, 17, 132, 136, 33))
        d0, d1 = K.D0, K.D0 + K.DW
        cols: dict[str, Any] = {}
        cids = community_ids(c_hi, c_lo, s_hi, s_lo, ipver, proto, c_port, s_port)
        icmp_rows = np.flatnonzero((proto == 1) | (proto == 58))
        if len(icmp_rows):  # ICMP pairs type and code per row: the scalar definition
            icmp = R[icmp_rows, K.R_ICMP].tolist()
            cpk = _packed(c_hi[icmp_rows], c_lo[icmp_rows], ipver[icmp_rows])
            spk = _packed(s_hi[icmp_rows], s_lo[icmp_rows], ipver[icmp_rows])
            for k, (j, p, cp, sp, ic) in enumerate(zip(icmp_rows.tolist(), proto[icmp_rows].tolist(),
                                                       c_port[icmp_rows].tolist(), s_port[icmp_rows].tolist(),
                                                       icmp, strict=True)):
                if ic >= 0:
                    cp, sp = ic >> 8, ic & 0xFF
                cids[j] = community_id_packed(cpk[k], spk[k], p, cp, sp)
        blake = hashlib.blake2b
        uids = ["C" + blake(f"{cid}|{t}|{tun}".encode(), digest_size=9).hexdigest()
                for cid, t, tun in zip(cids, ts0.tolist(), RU[:, K.RU_TUN].tolist(), strict=True)]
        cols["uid"] = uids
        cols["community_id"] = cids
        cols["ts_start"] = ts0
        cols["ts_end"] = R[:, K.R_TS_LAST]
        cols["duration"] = (R[:, K.R_TS_LAST] - ts0) / 1e9
        cols["transport"] = _TRANSPORT_TABLE[proto & 0xFF]
        cols["ip_version"] = ipver
        cols["client_ip"] = client_ip
        cols["client_port"] = np.where(has_ports, c_port, -1)
        cols["server_ip"] = server_ip
        cols["server_port"] = np.where(has_ports, s_port, -1)
        cols["client_by"] = CLIENT_BY[R[:, K.R_CLIENT_BY]]
        cols["packets_to_server"] = R[:, d0 + K.D_PKTS]
        cols["packets_to_client"] = R[:, d1 + K.D_PKTS]
        cols["ip_bytes_to_server"] = R[:, d0 + K.D_IPB]
        cols["ip_bytes_to_client"] = R[:, d1 + K.D_IPB]
        cols["payload_bytes_to_server"] = R[:, d0 + K.D_PLB]
        cols["payload_bytes_to_client"] = R[:, d1 + K.D_PLB]
        not_tcp = proto != 6
        f0 = _FLAG_TABLE[R[:, d0 + K.D_FLAGS] & 0xFF]
        f1 = _FLAG_TABLE[R[:, d1 + K.D_FLAGS] & 0xFF]
        f0[not_tcp] = None
        f1[not_tcp] = None
        cols["tcp_flags_to_server"] = f0
        cols["tcp_flags_to_client"] = f1
        cols["conn_state"] = conn_state(R)
        cols["retransmitted_bytes"] = R[:, d0 + K.D_RETX] + R[:, d1 + K.D_RETX]
        cols["truncated"] = R[:, K.R_TRUNC] != 0
        cols["vni"] = R[:, K.R_VNI]
        cols["tunnel"] = _TUNNEL_TABLE[tunbits & 0xFF]
        cols["outer_src_ip"] = self._sparse_ips(RU[:, K.RU_OSHI], RU[:, K.RU_OSLO], oipver)
        cols["outer_dst_ip"] = self._sparse_ips(RU[:, K.RU_ODHI], RU[:, K.RU_ODLO], oipver)
        cols["gwlb_endpoint_id"] = _sparse_hex(RU[:, K.RU_GWEP], RU[:, K.RU_GWEP] != 0, 16)
        cols["gwlb_attachment_id"] = _sparse_hex(RU[:, K.RU_GWATT], RU[:, K.RU_GWATT] != 0, 16)
        cols["gwlb_flow_cookie"] = _sparse_hex(RU[:, K.RU_GWCK], R[:, K.R_GWCK_SET] != 0, 8)
        cols["vlan"] = R[:, K.R_VLAN]
        names = np.array([*self.source_names, ""], dtype=object)
        cols["source"] = names[R[:, K.R_SOURCE]]
        payloads, missing, held = self._payloads(idx, R, cols)
        cols["missing_bytes"] = missing
        K.free_records(idx, self.R, self.PT, self.POOL, self.PFREE, self.RFREE, self.G)
        return EndedFlows(cols, payloads, held)

    def _sparse_ips(self, hi: np.ndarray, lo: np.ndarray, ver: np.ndarray) -> np.ndarray:
        out = np.full(len(hi), None, dtype=object)
        m = np.flatnonzero(ver)
        if len(m):
            out[m] = self._ips(hi[m], lo[m], ver[m])
        return out

    def _direction(self, d: int, R: np.ndarray, idx: np.ndarray) -> tuple[list, ...]:
        """Per-row facts of one direction, as lists: start known, first hole (offset or None) and its
        length, budget hit, segments. Reassembly stops at the first hole; its length runs to the
        lowest out-of-order segment kept beyond it, else to the highest byte seen (within budget)."""
        base = K.D0 + d * K.DW
        contig = R[:, base + K.D_CONTIG]
        limit = R[:, base + K.D_LIMIT]  # the TLS framing may have ended the prefix before the budget
        budget = int(self.O[K.O_BUDGET])  # the payload budget now (the memory budget may have lowered it)
        # (or a TLS handshake extended it past the budget: K.HANDSHAKE_EXTENSION)
        room = np.where(R[:, base + K.D_XPT] > 0, budget + self.xpg * self.page, budget)
        seen_end = np.minimum(R[:, base + K.D_MAXEND], np.where(limit > 0, np.minimum(limit, room), room))
        gap_end = seen_end.copy()
        n_oo = R[:, base + K.D_NOOO]
        for j in np.flatnonzero(n_oo).tolist():  # rare: segments kept beyond a hole
            oo_first = int(self.OO[idx[j], d, : n_oo[j], 0].min())
            if oo_first > contig[j]:
                gap_end[j] = oo_first
        has_gap = contig < seen_end
        gap_len = np.where(has_gap, gap_end - contig, 0)
        gap_at = np.where(has_gap, contig, -1).tolist()
        return ((R[:, base + K.D_HAVE_START] == 1).tolist(), [None if g < 0 else g for g in gap_at],
                gap_len.tolist(), (R[:, base + K.D_BUDGET_HIT] != 0).tolist(), R[:, base + K.D_SEGS].tolist())

    def _payloads(self, idx: np.ndarray, R: np.ndarray, cols: dict) -> tuple[list[FlowPayload], np.ndarray, int]:
        """FlowPayloads for the ended flows that carried payload (one gather for the whole chunk),
        the missing bytes per flow, and the payload bytes copied out."""
        out: list[FlowPayload] = []
        missing = np.zeros(len(idx), np.int64)
        if not self.budget:
            return out, missing, 0
        d0, d1 = K.D0, K.D0 + K.DW
        # ESP (IP protocol 50) keeps no payload bytes, but its IP header already names the protocol: it
        # gets an empty FlowPayload so that a dissector of transport "esp" states its encryption state
        has = np.flatnonzero((R[:, d0 + K.D_CONTIG] > 0) | (R[:, d1 + K.D_CONTIG] > 0) | (R[:, K.R_NDG] > 0)
                             | (R[:, K.R_PROTO] == 50))
        if not len(has):
            return out, missing, 0
        Rh, ih = R[has], idx[has]
        lens = np.stack([Rh[:, d0 + K.D_CONTIG], Rh[:, d1 + K.D_CONTIG]], axis=1).reshape(-1)
        rows = np.repeat(ih, 2)
        dirs = np.tile(np.array([0, 1], np.int64), len(has))
        buf = np.empty(int(lens.sum()), np.uint8)
        K.gather(rows, dirs, lens, self.R, self.PT, self.POOL, self.page, buf)
        ends = np.cumsum(lens).tolist()
        starts = [0, *ends[:-1]]
        tcp = Rh[:, K.R_PROTO] == 6
        up = self._direction(0, Rh, ih)
        down = self._direction(1, Rh, ih)
        missing[has] = np.where(tcp, np.array(up[2]) + np.array(down[2]), 0)
        closed, hist = Rh[:, K.R_CLOSED], Rh[:, K.R_HIST]
        reset = (closed & 4) != 0
        rejected = ((hist & 1) != 0) & ((hist & 2) == 0) & reset
        uid, transport = cols["uid"], cols["transport"]
        cip, sip = cols["client_ip"], cols["server_ip"]
        cport, sport = cols["client_port"][has].tolist(), cols["server_port"][has].tolist()
        # Each prefix is copied once, straight from the gathered buffer into its bytes object (a
        # memoryview slice's tobytes): copying the whole buffer into one bytes object first and
        # slicing that cost 10x more, in page faults of the extra MB-sized allocation per export.
        view = memoryview(cast(Any, buf))  # numpy's stubs do not see an ndarray as a Buffer
        up_start, up_gap, up_gap_len, up_budget, up_segs = up
        dn_start, dn_gap, dn_gap_len, dn_budget, dn_segs = down
        for k, (j, r, is_tcp, ts0, rst, rej, ndg) in enumerate(zip(
                has.tolist(), ih.tolist(), tcp.tolist(), (Rh[:, K.R_TS_FIRST] / 1e9).tolist(), reset.tolist(),
                rejected.tolist(), Rh[:, K.R_NDG].tolist(), strict=True)):
            s0, e0, s1, e1 = starts[2 * k], ends[2 * k], starts[2 * k + 1], ends[2 * k + 1]
            if is_tcp:
                out.append(FlowPayload(
                    uid[j], transport[j], cip[j], sip[j], cport[k], sport[k], ts0,
                    StreamPrefix(view[s0:e0].tobytes(), up_start[k], up_gap[k], up_gap_len[k], up_budget[k],
                                 up_segs[k], []),
                    StreamPrefix(view[s1:e1].tobytes(), dn_start[k], dn_gap[k], dn_gap_len[k], dn_budget[k],
                                 dn_segs[k], []),
                    [], rej, rst))
            else:
                fp = FlowPayload(uid[j], transport[j], cip[j], sip[j], cport[k], sport[k], ts0)
                streams = (view[s0:e0].tobytes(), view[s1:e1].tobytes())
                pos = [0, 0]  # a direction's datagrams lie back to back in its prefix
                for t, len_dir in self.DG[r, :ndg].tolist():
                    dr, ln = len_dir & 1, len_dir >> 1
                    fp.datagrams.append(Datagram(t / 1e9, dr == 0, streams[dr][pos[dr] : pos[dr] + ln]))
                    pos[dr] += ln
                out.append(fp)
        return out, missing, len(buf)


def conn_state(R: np.ndarray) -> np.ndarray:
    """Zeek's conn_state letters (None for non-TCP), from Zeek's endpoint states kept by the kernel.

    Zeek's Conn::conn_state() over the originator (client) and responder (server) TCP endpoint
    states: S0 SYN unanswered; S1 established; SF both closed (also mid-stream); REJ SYN answered by
    RST; S2/S3 only the client/server closed; RSTO/RSTR reset by the client/server; RSTOS0 client
    SYN then client RST; RSTRH/SHR server reset/closed without the client ever established;
    SH client closed without the server established; OTH anything else (mid-stream, no close).
    """
    d0, d1 = K.D0, K.D0 + K.DW
    os_, rs = R[:, d0 + K.D_ZST], R[:, d1 + K.D_ZST]
    o_inactive = (os_ == K.Z_INACTIVE) | (os_ == K.Z_PARTIAL)
    r_inactive = (rs == K.Z_INACTIVE) | (rs == K.Z_PARTIAL)
    no_data = (R[:, d0 + K.D_PLB] == 0) & (R[:, d1 + K.D_PLB] == 0)
    r_reset, o_reset = rs == K.Z_RESET, os_ == K.Z_RESET
    o_closed, r_closed = os_ == K.Z_CLOSED, rs == K.Z_CLOSED
    conds = [
        R[:, K.R_PROTO] != 6,
        r_reset & ((os_ == K.Z_SYN_SENT) | (os_ == K.Z_SYN_ACK_SENT) | (o_reset & no_data)),
        r_reset & o_inactive,
        r_reset,
        o_reset & r_inactive & (R[:, K.R_ZHIST] == 2),
        o_reset & r_inactive,
        o_reset,
        o_closed & r_closed,
        o_closed & r_inactive,
        o_closed,
        r_closed & o_inactive,
        r_closed,
        (os_ == K.Z_SYN_SENT) & (rs == K.Z_INACTIVE),
        (os_ == K.Z_ESTABLISHED) & (rs == K.Z_ESTABLISHED),
    ]
    choices = [None, "REJ", "RSTRH", "RSTR", "RSTOS0", "OTH", "RSTO", "SF", "SH", "S2", "SHR", "S3", "S0",
               "S1"]
    return np.select(conds, np.array(choices, dtype=object), default="OTH")


def _packed(hi: np.ndarray, lo: np.ndarray, ver: np.ndarray) -> list[bytes]:
    """Network-order address bytes per row (4 bytes for IPv4, 16 for IPv6)."""
    raw = np.empty((len(hi), 2), ">u8")
    raw[:, 0] = hi
    raw[:, 1] = lo
    b = raw.tobytes()
    return [b[16 * j + 12 : 16 * j + 16] if v == 4 else b[16 * j : 16 * j + 16]
            for j, v in enumerate(ver.tolist())]


def _sparse_hex(values: np.ndarray, present: np.ndarray, width: int) -> np.ndarray:
    out = np.full(len(values), None, dtype=object)
    for j in np.flatnonzero(present):
        out[j] = f"{int(values[j]):0{width}x}"
    return out


def _pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p
