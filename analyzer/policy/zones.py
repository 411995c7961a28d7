"""Zones: which network each address belongs to, and which way each flow goes.

A *zone* is a name for a set of CIDRs. Three kinds, from most to least authoritative:

1. **Internal zones**, given by the user: `--vpc CIDR` (each becomes a zone named ``vpc`` unless
   the zones file names it) and a zones TOML file::

       [[zone]]
       name = "prod-vpc"
       cidrs = ["10.0.0.0/16", "fd00:10::/56"]
       vni = [4242]                         # optional: mirror sessions (VXLAN/GENEVE VNI) watching it
       gwlb_endpoint = ["0a1b2c3d4e5f6071"] # optional: GWLB endpoint ids (flows' gwlb_endpoint_id)

       [[zone]]
       name = "on-prem"
       cidrs = ["192.168.0.0/16"]

   Only internal zones decide a flow's direction. When several internal zones hold an address
   the longest prefix wins (a subnet zone inside a VPC zone), then the one listed first. The
   `vni` / `gwlb_endpoint` mapping is for captures that hold several VPCs whose CIDRs overlap: a
   flow that arrived through a mapped VNI or GWLB endpoint takes that zone for any of its
   addresses inside that zone's CIDRs, whatever the global lookup said.
2. **AWS ranges**: the bundled copy of AWS's published ``ip-ranges.json``
   (`data/aws-ip-ranges.json.gz`, a compact derivative of the file with createDate
   2026-08-22-15-17-05, syncToken 1787411825: prefixes, service and region only; see
   `AWS_RANGES_DATE`). An address in it gets the zone ``aws:<service>:<region>``, e.g.
   ``aws:S3:us-east-1``. AWS lists most prefixes twice, under a specific service and under the
   catch-all ``AMAZON``; the specific service is preferred, then the longest prefix. Pass
   ``aws_ip_ranges=PATH`` (an ``ip-ranges.json``, plain or gzipped, or this module's compact form)
   to use a newer copy, or ``aws_ip_ranges=False`` for none.
3. **Special-purpose ranges**: ``rfc1918`` (10/8, 172.16/12, 192.168/16), ``rfc6598`` (100.64/10,
   carrier-grade NAT), ``loopback`` (127/8, ::1), ``link-local`` (169.254/16, fe80::/10; includes
   the EC2 instance metadata service 169.254.169.254), ``ula`` (fc00::/7), ``multicast`` (224/4,
   ff00::/8). Any other address is ``internet``; a missing or unparsable one has no zone (null).

**Direction** of a flow (client = the side that opened it):

- ``egress``: client in an internal zone, server outside every internal zone;
- ``ingress``: the reverse;
- ``internal``: both ends in the same internal zone (east-west);
- ``cross_zone``: both internal, in different zones (peered VPCs, VPC to on-premises);
- ``external``: neither end internal although internal zones were given (e.g. a mirror that also
  sees traffic of networks nobody declared);
- ``unknown``: no internal zone was given at all. Then nothing is called egress: a rule about
  traffic leaving the VPC cannot be judged without knowing where the VPC is.

How it is fast: every address is packed into a 17-byte big-endian key (one family byte, 4 or 6,
then the 128-bit address), so IPv4 and IPv6 share one sorted key space and numpy compares the
keys as fixed-width bytes. All prefixes (user, AWS, special) are flattened once into sorted,
disjoint intervals, each carrying the label of the most specific prefix covering it (user zones
first, then specific AWS service, then prefix length), and each *distinct* address of a flow
column is parsed once (`socket.inet_pton`) and located with one `np.searchsorted`.
Measured 2026-12-06 with `bench/policy_zones.py` (1,000,000 flows, 60,000 distinct addresses,
a fifth IPv6, one VPC zone + the full AWS table + the special ranges, 8,116 flattened intervals):
0.23-0.29 s of CPU per call (0.34-0.8 s wall: this machine's 2 cores were shared with four other
jobs, load average 5-8), most of it pandas factorizing the two address columns; parsing the
distinct addresses and the searchsorted are under 0.1 s. Building the zone map takes ~0.17 s of
CPU; it is cached per set of zones in the process and on disk (~/.cache/intransit/zones, keyed by
the zones, the AWS file's bytes and this module's code), so an audit's start reads it in ~2 ms.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import socket
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer.policy.errors import PolicyError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "AWS_RANGES_DATE",
    "DIRECTIONS",
    "SPECIAL_RANGES",
    "Zone",
    "ZoneMap",
    "build_zones",
    "compact_aws_ip_ranges",
    "load_zones_file",
    "pack_addresses",
    "zone_cols",
    "zone_flows",
]

AWS_RANGES_DATE = "2026-08-22"  # createDate 2026-08-22-15-17-05 of the bundled copy
_AWS_RESOURCE = "aws-ip-ranges.json.gz"

DIRECTIONS = ("egress", "ingress", "internal", "cross_zone", "external", "unknown")

# IANA special-purpose ranges that say something about where an address lives.
SPECIAL_RANGES: tuple[tuple[str, str], ...] = (
    ("rfc1918", "10.0.0.0/8"),
    ("rfc1918", "172.16.0.0/12"),
    ("rfc1918", "192.168.0.0/16"),
    ("rfc6598", "100.64.0.0/10"),
    ("loopback", "127.0.0.0/8"),
    ("loopback", "::1/128"),
    ("link-local", "169.254.0.0/16"),
    ("link-local", "fe80::/10"),
    ("ula", "fc00::/7"),
    ("multicast", "224.0.0.0/4"),
    ("multicast", "ff00::/8"),
)
OUTSIDE = "internet"  # an address no range names

_KEY = "S17"  # family byte + 16 address bytes; numpy compares 'S' arrays as unsigned bytes


@dataclass(frozen=True, slots=True)
class Zone:
    """One internal zone: a name, its CIDRs, and the mirror sessions / GWLB endpoints that watch it."""

    name: str
    cidrs: tuple[str, ...]
    vnis: tuple[int, ...] = ()
    gwlb_endpoints: tuple[str, ...] = ()


# --- packing ---------------------------------------------------------------------------------


def _key_int(family: int, value: int) -> int:
    return (family << 128) | value


def _to_key(value: int) -> bytes:
    return value.to_bytes(17, "big")


def _parse_one(text: object) -> bytes | None:
    """The 17-byte key of one address string, or None (null, empty, not an address)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        if ":" in text:
            raw = socket.inet_pton(socket.AF_INET6, text.split("%", 1)[0])  # drop a zone index
            return b"\x06" + raw
        raw = socket.inet_pton(socket.AF_INET, text)
        return b"\x04" + b"\x00" * 12 + raw
    except (OSError, ValueError):
        return None


def pack_addresses(values: Iterable[object]) -> tuple[np.ndarray, np.ndarray]:
    """Keys (dtype S17) and a validity mask for address strings; an invalid one gets a zero key."""
    keys = []
    ok = []
    for v in values:
        k = _parse_one(v)
        ok.append(k is not None)
        keys.append(k if k is not None else b"\x00" * 17)
    return np.array(keys, dtype=_KEY).reshape(-1), np.array(ok, dtype=bool).reshape(-1)


def _cidr_bounds(cidr: str) -> tuple[int, int, int]:
    """(first key, last key, prefix length) of a CIDR as ints; PolicyError when it is not one.

    The plain `address/length` form goes through inet_pton (the ~17k AWS prefixes are read at every
    audit's start: `ipaddress` took a quarter of a second of it); anything else, and every error,
    through `ipaddress`, whose rules and messages stay the reference."""
    fast = _cidr_bounds_fast(cidr)
    if fast is not None:
        return fast
    try:
        net = ipaddress.ip_network(cidr.strip(), strict=False)
    except (ValueError, TypeError, AttributeError) as exc:
        raise PolicyError(f"not a CIDR: {cidr!r}") from exc
    fam = 4 if net.version == 4 else 6
    first = int(net.network_address)
    last = int(net.broadcast_address)
    # IPv4 sits in the low 32 bits of its family's space (the family byte keeps v4 and v6 apart)
    return _key_int(fam, first), _key_int(fam, last), net.prefixlen


def _cidr_bounds_fast(cidr: str) -> tuple[int, int, int] | None:
    """`_cidr_bounds` of `a.b.c.d/n` or `x:y::z/n` by inet_pton; None for any other form."""
    if not isinstance(cidr, str):
        return None
    addr, slash, plen = cidr.strip().partition("/")
    if not slash or not plen.isdigit() or len(plen) > 3:
        return None
    fam, bits, af = (6, 128, socket.AF_INET6) if ":" in addr else (4, 32, socket.AF_INET)
    n = int(plen)
    if n > bits:
        return None
    try:
        value = int.from_bytes(socket.inet_pton(af, addr), "big")
    except (OSError, ValueError):
        return None
    host = (1 << (bits - n)) - 1
    first = value & ~host
    return _key_int(fam, first), _key_int(fam, first | host), n


# --- flattening nested prefixes ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Intervals:
    """Sorted disjoint [start, end] key intervals, each with a label index."""

    starts: np.ndarray  # S17
    ends: np.ndarray  # S17
    labels: np.ndarray  # int32 into the label list


def _flatten(prefixes: Sequence[tuple[int, int, tuple[Any, ...], int]]) -> _Intervals:
    """Disjoint intervals from (first, last, priority, label) prefixes, each keeping the label of the
    highest-priority prefix covering it.

    CIDRs are laminar (two are nested or disjoint), so a sweep in (first, -size) order keeps a stack
    of the prefixes open at the cursor; each stack entry remembers the best label among itself and
    its ancestors, so the label of any point is the top of the stack's best.
    """
    order = sorted(prefixes, key=lambda p: (p[0], -(p[1] - p[0])))
    out_s: list[int] = []
    out_e: list[int] = []
    out_l: list[int] = []

    def emit(lo: int, hi: int, label: int) -> None:
        if lo > hi:
            return
        if out_e and out_l[-1] == label and out_e[-1] + 1 == lo:
            out_e[-1] = hi  # merge with the previous interval when contiguous and equal
            return
        out_s.append(lo)
        out_e.append(hi)
        out_l.append(label)

    stack: list[tuple[int, tuple[Any, ...], int]] = []  # (last, best priority, best label)
    cursor = 0
    for first, last, prio, label in order:
        # close every open prefix that ends before this one starts
        while stack and stack[-1][0] < first:
            top_last, _, top_label = stack.pop()
            emit(cursor, top_last, top_label)
            cursor = top_last + 1
        if stack:  # the enclosing prefix's part before this one
            emit(cursor, first - 1, stack[-1][2])
        cursor = first
        if stack and stack[-1][1] >= prio:  # an enclosing prefix outranks this one (ties: the outer)
            stack.append((last, stack[-1][1], stack[-1][2]))
        else:
            stack.append((last, prio, label))
    while stack:
        top_last, _, top_label = stack.pop()
        emit(cursor, top_last, top_label)
        cursor = top_last + 1
    return _Intervals(
        np.array([_to_key(v) for v in out_s], dtype=_KEY).reshape(-1),
        np.array([_to_key(v) for v in out_e], dtype=_KEY).reshape(-1),
        np.array(out_l, dtype=np.int32),
    )


def _lookup(table: _Intervals, keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Label index of each key (-1 where no interval holds it or the key is invalid)."""
    if len(table.starts) == 0 or len(keys) == 0:
        return np.full(len(keys), -1, dtype=np.int32)
    i = np.searchsorted(table.starts, keys, side="right") - 1
    clipped = np.clip(i, 0, None)
    hit = (i >= 0) & (keys <= table.ends[clipped]) & valid
    return np.where(hit, table.labels[clipped], -1).astype(np.int32)


# --- AWS ranges -------------------------------------------------------------------------------


def compact_aws_ip_ranges(data: dict[str, Any]) -> dict[str, Any]:
    """The compact form of an ``ip-ranges.json`` document: the file's createDate and syncToken, the
    service and region names once, and each distinct (prefix, service, region) as a triple of a
    prefix and two indexes. `network_border_group` is dropped (a zone names the region)."""
    services: dict[str, int] = {}
    regions: dict[str, int] = {}
    rows: list[list[Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for key, field_name in (("prefixes", "ip_prefix"), ("ipv6_prefixes", "ipv6_prefix")):
        for p in data.get(key, ()):
            triple = (str(p[field_name]), str(p.get("service", "AMAZON")), str(p.get("region", "GLOBAL")))
            if triple in seen:
                continue
            seen.add(triple)
            s = services.setdefault(triple[1], len(services))
            r = regions.setdefault(triple[2], len(regions))
            rows.append([triple[0], s, r])
    return {
        "source": "https://ip-ranges.amazonaws.com/ip-ranges.json",
        "createDate": data.get("createDate"),
        "syncToken": data.get("syncToken"),
        "services": list(services),
        "regions": list(regions),
        "prefixes": rows,
    }


def _aws_bytes(path: Path | None) -> bytes:
    """The bytes of the AWS ranges file: the bundled one, or `path`."""
    if path is None:
        return resources.files("analyzer.policy").joinpath("data").joinpath(_AWS_RESOURCE).read_bytes()
    return Path(path).read_bytes()


def _read_aws(path: Path | None) -> dict[str, Any]:
    """The compact AWS document: the bundled one, or `path` (full or compact, plain or gzipped)."""
    try:
        raw = _aws_bytes(path)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        data = json.loads(raw)
    except (OSError, ValueError, EOFError) as exc:
        raise PolicyError(f"{path or _AWS_RESOURCE}: cannot read AWS ip ranges: {exc}") from exc
    if not isinstance(data, dict) or "prefixes" not in data:
        raise PolicyError(f"{path}: not an AWS ip-ranges.json (no 'prefixes')")
    if "services" in data:
        return data
    return compact_aws_ip_ranges(data)


# --- the zone map -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneMap:
    """Everything needed to zone addresses: the flattened table, the labels, which are internal."""

    zones: tuple[Zone, ...]
    labels: tuple[str, ...]
    internal: np.ndarray  # bool per label
    table: _Intervals
    aws_create_date: str | None = None
    aws_sync_token: str | None = None
    _per_zone: dict[str, _Intervals] = field(default_factory=dict, repr=False)

    @property
    def has_internal(self) -> bool:
        """Whether any internal zone was given (without one, no flow is called egress)."""
        return bool(self.zones)

    def label_index(self, keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Label index per packed key; addresses no range names get the ``internet`` label."""
        idx = _lookup(self.table, keys, valid)
        outside = self.labels.index(OUTSIDE)
        return np.where(valid & (idx < 0), outside, idx).astype(np.int32)

    def zone_of(self, addresses: Sequence[object]) -> list[str | None]:
        """The zone name of each address (a convenience for a handful; flows use `zone_flows`)."""
        keys, valid = pack_addresses(addresses)
        idx = self.label_index(keys, valid)
        return [self.labels[i] if i >= 0 else None for i in idx]


def load_zones_file(path: str | Path) -> tuple[Zone, ...]:
    """Internal zones from a zones TOML file (format in the module docstring)."""
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read zones file: {exc}") from exc
    return _zones_from_doc(doc, str(path))


def _zones_from_doc(doc: dict[str, Any], where: str) -> tuple[Zone, ...]:
    entries = doc.get("zone", [])
    if not isinstance(entries, list):
        raise PolicyError(f"{where}: 'zone' must be an array of tables ([[zone]])")
    unknown = set(doc) - {"zone"}
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {sorted(unknown)}")
    zones = []
    for n, z in enumerate(entries, 1):
        if not isinstance(z, dict):
            raise PolicyError(f"{where}: zone {n} is not a table")
        bad = set(z) - {"name", "cidrs", "vni", "gwlb_endpoint"}
        if bad:
            raise PolicyError(f"{where}: zone {n}: unknown key(s) {sorted(bad)}")
        name = z.get("name")
        cidrs = z.get("cidrs", [])
        if not isinstance(name, str) or not name:
            raise PolicyError(f"{where}: zone {n} has no name")
        if not isinstance(cidrs, list) or not cidrs or not all(isinstance(c, str) for c in cidrs):
            raise PolicyError(f"{where}: zone {name!r}: cidrs must be a non-empty list of strings")
        vnis = z.get("vni", [])
        vnis = [vnis] if isinstance(vnis, int) else vnis
        if not isinstance(vnis, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in vnis):
            raise PolicyError(f"{where}: zone {name!r}: vni must be an integer or a list of integers")
        eps = z.get("gwlb_endpoint", [])
        eps = [eps] if isinstance(eps, str) else eps
        if not isinstance(eps, list) or not all(isinstance(e, str) for e in eps):
            raise PolicyError(f"{where}: zone {name!r}: gwlb_endpoint must be a string or a list of strings")
        for c in cidrs:
            _cidr_bounds(c)  # validate now, with the file named
        zones.append(Zone(name, tuple(cidrs), tuple(vnis), tuple(e.lower().removeprefix("0x") for e in eps)))
    names = [z.name for z in zones]
    if len(set(names)) != len(names):
        raise PolicyError(f"{where}: zone names must be unique")
    return tuple(zones)


def build_zones(
    vpc: Sequence[str] = (),
    zones: Sequence[Zone] | str | Path | None = None,
    aws_ip_ranges: str | Path | bool | None = None,
) -> ZoneMap:
    """The zone map from `--vpc` CIDRs, a zones file (path) or Zone objects, and the AWS ranges
    (None/True: the bundled copy; a path: that file; False: none)."""
    declared = load_zones_file(zones) if isinstance(zones, str | Path) else tuple(zones or ())
    if vpc:
        declared = (*declared, Zone("vpc", tuple(vpc)))
        for c in vpc:
            _cidr_bounds(c)
    if aws_ip_ranges is False:
        aws_key: tuple[Any, ...] | None = None
    elif aws_ip_ranges in (None, True):
        aws_key = ("bundled",)
    else:
        path = Path(str(aws_ip_ranges))
        try:
            st = path.stat()
        except OSError as exc:
            raise PolicyError(f"{path}: cannot read AWS ip ranges: {exc}") from exc
        aws_key = (str(path), st.st_mtime_ns, st.st_size)  # a changed file is read again
    return _build(declared, aws_key)


@lru_cache(maxsize=16)
def _build(declared: tuple[Zone, ...], aws_key: tuple[Any, ...] | None) -> ZoneMap:
    """The zone map (cached in memory, as a ZoneMap is immutable, and on disk: see `_cached_build`)."""
    return _cached_build(declared, aws_key)


# --- the compiled zone map on disk ------------------------------------------------------------
#
# Parsing the ~17k AWS prefixes and flattening them took ~0.17 s of CPU at every audit's start (half
# the audit's start-up beyond `flows`'). The result depends only on the declared zones, the AWS file's
# bytes and this module's code, so it is kept under ~/.cache/intransit/zones (XDG_CACHE_HOME, or
# INTRANSIT_CACHE_DIR), named by a hash of all three: a changed file or a changed module makes a
# new name, never a stale hit. Reading it takes ~2 ms. A cache that cannot be read or written is
# ignored (the map is built as before): the cache never decides a zone.

CACHE_DIR_ENV = "INTRANSIT_CACHE_DIR"


def _cache_dir() -> Path:
    import os

    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]) / "zones"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "intransit" / "zones"


def _cache_path(declared: tuple[Zone, ...], aws_key: tuple[Any, ...] | None) -> Path | None:
    """The cache file of this zone map (None: the AWS file cannot be read; the build will say why)."""
    import hashlib

    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(repr((declared, SPECIAL_RANGES, OUTSIDE, np.__version__)).encode())
    if aws_key is not None:
        try:
            h.update(_aws_bytes(None if aws_key == ("bundled",) else Path(aws_key[0])))
        except OSError:
            return None
    else:
        h.update(b"no-aws")
    return _cache_dir() / f"zones-{h.hexdigest()[:32]}.npz"


def _cached_build(declared: tuple[Zone, ...], aws_key: tuple[Any, ...] | None) -> ZoneMap:
    try:
        path = _cache_path(declared, aws_key)
    except OSError:
        path = None
    if path is not None:
        cached = _load_zone_map(path, declared)
        if cached is not None:
            return cached
    zmap = _build_zone_map(declared, aws_key)
    if path is not None:
        _save_zone_map(path, zmap)
    return zmap


def _save_zone_map(path: Path, zmap: ZoneMap) -> None:
    """Write `zmap`'s compiled tables to `path` atomically; any OSError leaves no cache."""
    import os
    import tempfile

    meta = {"labels": list(zmap.labels), "aws_create_date": zmap.aws_create_date,
            "aws_sync_token": zmap.aws_sync_token, "per_zone": list(zmap._per_zone)}
    arrays: dict[str, np.ndarray] = {
        "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), "internal": zmap.internal,
        "starts": zmap.table.starts, "ends": zmap.table.ends, "labels": zmap.table.labels}
    for i, name in enumerate(zmap._per_zone):
        t = zmap._per_zone[name]
        arrays.update({f"z{i}_starts": t.starts, f"z{i}_ends": t.ends, f"z{i}_labels": t.labels})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".zones-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy stubs type **kwds as allow_pickle
            os.replace(tmp, path)  # readers see a whole file or none
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return


def _load_zone_map(path: Path, declared: tuple[Zone, ...]) -> ZoneMap | None:
    """The zone map cached at `path`, or None when there is none or it does not read back whole."""
    import zipfile

    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes())

            def table(prefix: str) -> _Intervals:
                return _Intervals(data[prefix + "starts"], data[prefix + "ends"], data[prefix + "labels"])

            labels = tuple(str(x) for x in meta["labels"])
            internal = data["internal"]
            main = table("")
            per_zone = {str(name): table(f"z{i}_") for i, name in enumerate(meta["per_zone"])}
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None
    consistent = (main.starts.dtype == np.dtype(_KEY) and main.ends.dtype == np.dtype(_KEY)
                  and len(main.starts) == len(main.ends) == len(main.labels) and len(internal) == len(labels)
                  and internal.dtype == np.bool_ and OUTSIDE in labels
                  and (not len(main.labels) or int(main.labels.max()) < len(labels)))
    if not consistent:
        return None
    return ZoneMap(declared, labels, internal, main, meta["aws_create_date"], meta["aws_sync_token"], per_zone)


def _build_zone_map(declared: tuple[Zone, ...], aws_key: tuple[Any, ...] | None) -> ZoneMap:
    """The zone map compiled from the declared zones, the AWS ranges and the special ranges."""
    labels: list[str] = [OUTSIDE]
    label_ix: dict[str, int] = {OUTSIDE: 0}

    def ix(name: str) -> int:
        if name not in label_ix:
            label_ix[name] = len(labels)
            labels.append(name)
        return label_ix[name]

    prefixes: list[tuple[int, int, tuple[Any, ...], int]] = []
    order = 0
    for z in declared:
        for c in z.cidrs:
            lo, hi, plen = _cidr_bounds(c)
            prefixes.append((lo, hi, (2, 0, plen, -order), ix(z.name)))
            order += 1
    internal_names = {z.name for z in declared}
    create = token = None
    if aws_key is not None:
        doc = _read_aws(None if aws_key == ("bundled",) else Path(aws_key[0]))
        create, token = doc.get("createDate"), doc.get("syncToken")
        services, regions = doc["services"], doc["regions"]
        for cidr, s, r in doc["prefixes"]:
            lo, hi, plen = _cidr_bounds(cidr)
            svc = services[s]
            # specific service first, then longer prefix: AMAZON is the catch-all AWS lists beside it
            prefixes.append((lo, hi, (1, int(svc != "AMAZON"), plen, 0), ix(f"aws:{svc}:{regions[r]}")))
    for name, cidr in SPECIAL_RANGES:
        lo, hi, plen = _cidr_bounds(cidr)
        prefixes.append((lo, hi, (0, 0, plen, 0), ix(name)))
    if any(n in internal_names for n in ("internet",)):
        raise PolicyError("a zone may not be called 'internet' (the name of addresses no range holds)")
    table = _flatten(prefixes)
    internal = np.array([name in internal_names for name in labels], dtype=bool)
    per_zone = {}
    for z in declared:
        if z.vnis or z.gwlb_endpoints:
            zone_prefixes = []
            for c in z.cidrs:
                lo, hi, plen = _cidr_bounds(c)
                zone_prefixes.append((lo, hi, (plen,), label_ix[z.name]))
            per_zone[z.name] = _flatten(zone_prefixes)
    return ZoneMap(tuple(declared), tuple(labels), internal, table, create, token, per_zone)


def _factorized_labels(zmap: ZoneMap, column: pa.Array) -> np.ndarray:
    """Label index per row of an address column (Arrow strings), parsing each distinct address once."""
    from analyzer.policy import _compute as pc
    from analyzer.policy._cols import fill, numpy_of

    encoded = pc.dictionary_encode(column)
    codes = numpy_of(fill(encoded.indices, -1)).astype(np.int64, copy=False)
    keys, valid = pack_addresses(encoded.dictionary.to_pylist())
    per_unique = zmap.label_index(keys, valid)
    out = np.full(len(codes), -1, dtype=np.int32)
    has = codes >= 0
    out[has] = per_unique[codes[has]]
    return out


def _apply_mirror_mapping(zmap: ZoneMap, addresses: pa.Array, idx: np.ndarray, flows: Mapping[str, pa.Array]) -> None:
    """Override the label of addresses inside a mapped zone's CIDRs for flows seen through its VNI
    or GWLB endpoint (in place)."""
    if not zmap._per_zone:
        return
    import pyarrow as pa

    from analyzer.policy import _compute as pc
    from analyzer.policy._cols import isin

    n = len(addresses)
    vni = flows["vni"] if "vni" in flows else pa.nulls(n, pa.int64())
    ep = flows["gwlb_endpoint_id"] if "gwlb_endpoint_id" in flows else pa.nulls(n, pa.large_string())
    ep_norm = pc.replace_substring_regex(pc.utf8_lower(pc.cast(ep, pa.large_string())), pattern="^0x", replacement="")
    for z in zmap.zones:
        table = zmap._per_zone.get(z.name)
        if table is None:
            continue
        mask = np.zeros(n, dtype=bool)
        if z.vnis:
            mask |= isin(vni, z.vnis)
        if z.gwlb_endpoints:
            mask |= isin(ep_norm, z.gwlb_endpoints)
        if not mask.any():
            continue
        rows = np.flatnonzero(mask)
        keys, valid = pack_addresses(pc.take(addresses, pa.array(rows)).to_pylist())
        hit = _lookup(table, keys, valid)
        idx[rows[hit >= 0]] = hit[hit >= 0]


def zone_cols(flows: Mapping[str, pa.Array], zmap: ZoneMap) -> dict[str, pa.Array]:
    """`client_zone`, `server_zone` and `direction` (Arrow large_string arrays) of each flow of the
    Arrow columns `flows` (client_ip, server_ip, and vni / gwlb_endpoint_id when present)."""
    from analyzer.policy._cols import as_cols, from_codes

    flows = as_cols({c: flows[c] for c in ("client_ip", "server_ip", "vni", "gwlb_endpoint_id") if c in flows})
    cidx = _factorized_labels(zmap, flows["client_ip"])
    sidx = _factorized_labels(zmap, flows["server_ip"])
    _apply_mirror_mapping(zmap, flows["client_ip"], cidx, flows)
    _apply_mirror_mapping(zmap, flows["server_ip"], sidx, flows)
    internal = np.append(zmap.internal, False)  # index -1 (no address) is not internal
    cin = internal[cidx]
    sin = internal[sidx]
    if not zmap.has_internal:
        dcode = np.full(len(cidx), DIRECTIONS.index("unknown"), dtype=np.int32)
    else:
        dcode = np.select(
            [cin & sin & (cidx == sidx), cin & sin, cin, sin],
            [DIRECTIONS.index(d) for d in ("internal", "cross_zone", "egress", "ingress")],
            default=DIRECTIONS.index("external"),
        ).astype(np.int32)
        dcode[(cidx < 0) | (sidx < 0)] = DIRECTIONS.index("unknown")  # an end without an address
    return {"client_zone": from_codes(zmap.labels, cidx), "server_zone": from_codes(zmap.labels, sidx),
            "direction": from_codes(DIRECTIONS, dcode)}


def zone_flows(flows: pd.DataFrame, zmap: ZoneMap) -> pd.DataFrame:
    """`client_zone`, `server_zone` and `direction` for each flow of a pandas frame (same index as
    `flows`): `zone_cols` of its columns, as pandas strings."""
    import pyarrow as pa

    from analyzer._pandas import pd
    from analyzer.schema import pandas_array

    cols = {c: pa.array(flows[c], from_pandas=True) for c in ("client_ip", "server_ip", "vni", "gwlb_endpoint_id")
            if c in flows}
    if "client_ip" not in cols or "server_ip" not in cols:
        raise KeyError("client_ip" if "client_ip" not in cols else "server_ip")
    zoned = zone_cols(cols, zmap)
    return pd.DataFrame({c: pandas_array(a.cast(pa.string()), "string") for c, a in zoned.items()}, index=flows.index)
