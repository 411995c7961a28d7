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

__all__ = ["KEYWORDS", "MAX_FLOWS", "MAX_PAYLOAD_BUDGET", "MAX_TIMEOUT", "MIN_FLOWS", "DecodeOptions",
           "DissectOptions", "FlowOptions", "Options", "OutputOptions"]


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
    # so a flood of distinct 5-tuples cannot grow memory without bound (~1.7 KB per live flow).
    max_flows: int = 1 << 18
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
    "vxlan_ports": ("decode", "vxlan_ports"),
    "geneve_ports": ("decode", "geneve_ports"),
    "dissect": ("dissect", "enabled"),
    "ja4x": ("dissect", "ja4x"),
    "credential_key": ("dissect", "credential_key"),
    "keylog": ("dissect", "keylog"),
    "frames": ("output", "frames"),
    "strict": ("", "strict"),
}

