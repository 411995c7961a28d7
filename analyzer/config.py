"""Every analysis option, declared once with its default, as typed value objects (httpx's `_config.py`).

One value object per layer: `DecodeOptions` (tunnel ports), `FlowOptions` (timeouts, payload budget,
live-flow bound), `DissectOptions` (dissection on/off, JA4X), `OutputOptions` (which frames to build);
`Options` holds one of each plus `strict`. The layers take their own part; `analyze()` takes an
`Options` or the same values by keyword (`Options.with_values`); the CLI reads its defaults here.
This module imports nothing heavy, so `intransit --help` stays fast.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, replace
from typing import Any

from analyzer.errors import UsageError
from analyzer.keylog import KeyLog, as_keylog

# The ranges every option is checked against (the CLI's option types use the same): beyond them a value is
# a mistake, and the arithmetic that follows (nanosecond timestamps in int64, page pools) would overflow.
MIN_FLOWS, MAX_FLOWS = 16, 1 << 24  # ~1.7 KB each when live: 16M flows is ~28 GB
MAX_PAYLOAD_BUDGET = 64 << 20  # per flow and direction; the dissectors read hellos and chains, not bulk data
MAX_TIMEOUT = 365 * 86400.0  # seconds; as int64 nanoseconds this is far from overflow
MIN_KEY_BYTES, MAX_KEY_BYTES = 16, 1024  # a credential fingerprint key: at least 128 bits
# The run's memory budget (FlowOptions.memory_budget): below 32 MiB the fixed parts (a few export
# chunks, the first flow records) no longer fit; 1 TiB is beyond any host this runs on.
MIN_MEMORY_BUDGET, MAX_MEMORY_BUDGET = 32 << 20, 1 << 40

__all__ = ["KEYWORDS", "MAX_FLOWS", "MAX_MEMORY_BUDGET", "MAX_PAYLOAD_BUDGET", "MAX_TIMEOUT", "MIN_FLOWS",
           "MIN_MEMORY_BUDGET", "DecodeOptions", "DissectOptions", "FlowOptions", "MemoryShares", "Options",
           "OutputOptions", "memory_shares", "parse_size"]


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """UDP ports that carry VXLAN (RFC 7348; AWS Traffic Mirroring) / GENEVE (RFC 8926; AWS Gateway
    Load Balancer). A datagram is decapsulated when either of its ports is one of them and its first
    bytes pass the tunnel's header check (`decode._kernel._vxlan_header_ok`, `_geneve_header_ok`);
    otherwise it is ordinary UDP (a DNS query from port 4789)."""

    vxlan_ports: tuple[int, ...] = (4789,)
    geneve_ports: tuple[int, ...] = (6081,)


@dataclass(frozen=True, slots=True)
class FlowOptions:
    """The flow table: when flows end, how much payload each keeps, how many live at once."""

    idle_timeout_tcp: float = 300.0
    idle_timeout_udp: float = 60.0
    idle_timeout_other: float = 60.0
    active_timeout: float = 3600.0
    close_delay: float = 5.0  # keep a closed TCP flow this long for late packets
    payload_budget: int = 64 * 1024  # per flow and direction; 0 disables payload capture
    # Live flows kept at most; beyond it the least recently active are ended early ("evicted"),
    # so a flood of distinct 5-tuples cannot grow memory without bound (~1.9 KB per live flow).
    max_flows: int = 1 << 18
    # What the run may hold beyond the interpreter and its libraries: flow records, payload pages,
    # payloads in flight to the dissectors, the certificate cache and dedup (`memory_shares`).
    # Past it the payload budget is lowered, then flows holding the most payload end early.
    memory_budget: int = 768 << 20
    collect_payload: bool = True
    # End a TCP stream's prefix that starts with TLS records after the records the TLS dissector
    # reads (three from the first application-data record): the TLS facts are the same, the rest
    # of a TLS flow is encrypted bytes no dissector reads. False keeps the whole budget.
    tls_trim: bool = True


@dataclass(frozen=True, slots=True)
class DissectOptions:
    """Dissection options, with their defaults (declared once: the CLI and analyze() read them)."""

    enabled: bool = True  # False: count flows only (`--no-dissect`)
    ja4x: bool = False  # FoxIO JA4X per certificate (FoxIO License 1.1; see README)
    # The key of the credentials' HMAC fingerprints. None: 32 random bytes per run (fingerprints
    # compare within one run only); a key the user keeps lets two runs see the same secret reused.
    # Never shown (repr=False): it is what keeps the fingerprints from being a dictionary-attackable hash.
    credential_key: bytes | None = field(default=None, repr=False)
    # TLS 1.3 / QUIC handshake secrets (`--keylog`; analyzer.keylog): the handshakes of the sessions
    # they name are decrypted to read their certificates and encrypted extensions. Never shown.
    keylog: KeyLog | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class OutputOptions:
    """Which frames to build: None builds every frame; a tuple names them (`flows` and the registered
    frames); the others come back empty with their schema. Dissection runs in full either way (the
    flows frame's columns need it); what is saved is keeping and converting rows nobody reads:
    `intransit flows` asks for ("flows",). `anomalies` and `sources` are always built."""

    frames: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Options:
    """Every analysis option, declared once with its default, in one value object per layer: the CLI
    reads its defaults from these; `analyze()` takes them (or the same names as keywords)."""

    decode: DecodeOptions = field(default_factory=DecodeOptions)
    flows: FlowOptions = field(default_factory=FlowOptions)
    dissect: DissectOptions = field(default_factory=DissectOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    strict: bool = False  # a damaged capture is fatal instead of a warning and a `sources` row

    def with_values(self, **values: Any) -> Options:
        """A copy with options given by their keyword names (those of `analyze()`); None keeps the
        current value. Unknown names and out-of-range values raise UsageError."""
        unknown = set(values) - set(KEYWORDS)
        if unknown:
            raise UsageError(f"unknown option(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(KEYWORDS))}")
        parts: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            if value is None:
                continue
            part, attr = KEYWORDS[name]
            parts.setdefault(part, {})[attr] = value
        opts = self
        top = parts.pop("", {})
        for part, changes in parts.items():
            opts = replace(opts, **{part: replace(getattr(opts, part), **changes)})
        opts = replace(opts, **top)
        return opts.checked()

    def checked(self) -> Options:
        """Validate ranges and normalise sequences (tuples), as the CLI's option types do."""
        f, d, o = self.flows, self.decode, self.output
        _in_range("max_flows", f.max_flows, MIN_FLOWS, MAX_FLOWS)
        _in_range("payload_budget", f.payload_budget, 0, MAX_PAYLOAD_BUDGET)
        _in_range("memory_budget", f.memory_budget, MIN_MEMORY_BUDGET, MAX_MEMORY_BUDGET)
        for name in ("idle_timeout_tcp", "idle_timeout_udp", "idle_timeout_other", "active_timeout", "close_delay"):
            value = getattr(f, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT:
                raise UsageError(f"{name} must be a number of seconds above 0 and at most {MAX_TIMEOUT:g} "
                                 f"(one year), not {value!r}")
        for ports in (d.vxlan_ports, d.geneve_ports):
            if isinstance(ports, (str, bytes)):
                raise UsageError("ports must be a sequence of port numbers")
        for p in (*d.vxlan_ports, *d.geneve_ports):
            if not 0 < int(p) < 65536:
                raise UsageError(f"port {p} is out of range")
        key = self.dissect.credential_key
        if key is not None and (not isinstance(key, bytes) or not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES):
            raise UsageError(f"credential_key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes")
        keylog = as_keylog(self.dissect.keylog)  # paths are read here: a bad file is a one-line UsageError
        frames = o.frames
        if isinstance(frames, str):
            raise UsageError("frames must be a sequence of frame names, not a string")
        return replace(self, decode=replace(d, vxlan_ports=tuple(d.vxlan_ports), geneve_ports=tuple(d.geneve_ports)),
                       dissect=replace(self.dissect, keylog=keylog),
                       output=replace(o, frames=None if frames is None else tuple(frames)))


def _in_range(name: str, value: object, low: int, high: int) -> None:
    try:
        number = operator.index(value)  # type: ignore[arg-type]  # ints and numpy integers, not 1.5
    except TypeError:
        number = None
    if isinstance(value, bool) or number is None or not low <= number <= high:
        raise UsageError(f"{name} must be an integer from {low:,} to {high:,}, not {value!r}")


# analyze()'s keyword names -> (part of Options, attribute); "" is Options itself.
KEYWORDS: dict[str, tuple[str, str]] = {
    "payload_budget": ("flows", "payload_budget"),
    "tls_trim": ("flows", "tls_trim"),
    "idle_timeout_tcp": ("flows", "idle_timeout_tcp"),
    "idle_timeout_udp": ("flows", "idle_timeout_udp"),
    "active_timeout": ("flows", "active_timeout"),
    "max_flows": ("flows", "max_flows"),
    "memory_budget": ("flows", "memory_budget"),
    "vxlan_ports": ("decode", "vxlan_ports"),
    "geneve_ports": ("decode", "geneve_ports"),
    "dissect": ("dissect", "enabled"),
    "ja4x": ("dissect", "ja4x"),
    "credential_key": ("dissect", "credential_key"),
    "keylog": ("dissect", "keylog"),
    "frames": ("output", "frames"),
    "strict": ("", "strict"),
}



@dataclass(frozen=True, slots=True)
class MemoryShares:
    """How one memory budget is split (bytes): the flow table (records and payload pages together;
    the records may take at most half of it), payloads exported and waiting for the dissectors,
    the certificate cache, and the rows of deduplicated frames (certs) kept until the end."""

    table: int
    records: int
    in_flight: int
    cert_cache: int
    dedup: int


def memory_shares(budget: int) -> MemoryShares:
    """The split of `budget`: 5/8 flow table (at most half of it records), 1/8 payloads in flight,
    1/8 certificate cache, 1/8 dedup rows. The collector's own buffers (16,384 flows before they
    become Arrow columns, 4,096 rows per frame) and the spill runs are fixed and small beside these."""
    table = budget * 5 // 8
    eighth = budget // 8
    return MemoryShares(table=table, records=table // 2, in_flight=eighth, cert_cache=eighth, dedup=eighth)


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
               "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40,
               "tib": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from "805306368", "768M", "768MiB", "1.5G" (binary units: K = 1024); UsageError otherwise."""
    raw = str(text).strip().lower().replace(" ", "")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(number):]
    try:
        value = float(number)
    except ValueError:
        value = float("nan")
    if unit not in _SIZE_UNITS or not value == value or value < 0 or value > 2 * MAX_MEMORY_BUDGET:
        raise UsageError(f"not a size: {text!r} (e.g. 768M, 2G, 805306368)")
    return int(value * _SIZE_UNITS[unit])
