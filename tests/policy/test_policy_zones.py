"""Zones: the vectorised lookup against `ipaddress` as the oracle, AWS ranges, directions, zones files."""

from __future__ import annotations

import gzip
import ipaddress
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.policy_helpers import flows as make_flows

from analyzer.policy import PolicyError, Zone, build_zones, zone_flows
from analyzer.policy.zones import AWS_RANGES_DATE, SPECIAL_RANGES, compact_aws_ip_ranges

SHARED_AWS = Path("/work/shared/data/aws-ip-ranges-2026-08-22.json")


def _oracle(address: str, zones: list[Zone]) -> str:
    """The expected zone of one address, with ipaddress: user zones by longest prefix then order,
    else the special ranges by longest prefix, else internet."""
    ip = ipaddress.ip_address(address)
    best: tuple[int, int, str] | None = None
    for order, z in enumerate(zones):
        for c in z.cidrs:
            net = ipaddress.ip_network(c, strict=False)
            if net.version == ip.version and ip in net:
                key = (net.prefixlen, -order, z.name)
                if best is None or key[:2] > best[:2]:
                    best = key
    if best is not None:
        return best[2]
    special = [(ipaddress.ip_network(c).prefixlen, n) for n, c in SPECIAL_RANGES
               if ipaddress.ip_network(c).version == ip.version and ip in ipaddress.ip_network(c)]
    return max(special)[1] if special else "internet"


def _near(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    """Addresses on and just outside a prefix's edges."""
    top = (1 << net.max_prefixlen) - 1
    lo, hi = int(net.network_address), int(net.broadcast_address)
    cls = ipaddress.IPv4Address if net.version == 4 else ipaddress.IPv6Address
    return [str(cls(v)) for v in (lo - 1, lo, lo + 1, hi - 1, hi, hi + 1) if 0 <= v <= top]


@st.composite
def _nets(draw, version: int):
    bits = 32 if version == 4 else 128
    # nest prefixes often: derive from a few bases so that prefixes overlap and contain each other
    base = draw(st.sampled_from([0x0A000000, 0xC0A80000, 0x34000000] if version == 4 else
                                [0xFD00 << 112, 0x2406DA << 104, 0xFE80 << 112]))
    offset = draw(st.one_of(st.integers(0, 1023), st.integers(0, (1 << (bits - 8)) - 1)))
    plen = draw(st.integers(8, bits))
    return ipaddress.ip_network(f"{ipaddress.ip_address(base + offset)}/{plen}", strict=False)


_zone_lists = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.lists(st.one_of(_nets(4), _nets(6)), min_size=1, max_size=4)),
    min_size=0, max_size=5,
)


@settings(max_examples=150, deadline=None)
@given(_zone_lists, st.lists(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), max_size=20))
def test_lookup_matches_ipaddress(zone_specs, extra):
    zones = []
    used: set[str] = set()
    for i, (name, nets) in enumerate(zone_specs):
        zname = f"{name}{i}" if name in used else name
        used.add(zname)
        zones.append(Zone(zname, tuple(str(n) for n in nets)))
    addresses = [str(a) for a in extra]
    for z in zones:
        for c in z.cidrs:
            addresses += _near(ipaddress.ip_network(c))
    for _, c in SPECIAL_RANGES:
        addresses += _near(ipaddress.ip_network(c))
    zmap = build_zones(zones=zones, aws_ip_ranges=False)
    assert zmap.zone_of(addresses) == [_oracle(a, zones) for a in addresses]


def test_invalid_addresses_have_no_zone():
    zmap = build_zones(aws_ip_ranges=False)
    assert zmap.zone_of(["", None, "10.0.0.256", "not an ip", "1.2.3", "::g"]) == [None] * 6
    assert zmap.zone_of(["fe80::1%eth0", "::ffff:10.1.2.3"]) == ["link-local", "internet"]


def test_aws_service_preferred_over_amazon_then_longest_prefix(tmp_path):
    doc = {"syncToken": "1", "createDate": "2099-01-01-00-00-00", "prefixes": [
        {"ip_prefix": "52.0.0.0/8", "service": "AMAZON", "region": "us-east-1"},
        {"ip_prefix": "52.1.0.0/16", "service": "EC2", "region": "us-east-1"},
        {"ip_prefix": "52.1.0.0/16", "service": "AMAZON", "region": "us-east-1"},
        {"ip_prefix": "52.1.2.0/24", "service": "AMAZON", "region": "us-east-1"},
        {"ip_prefix": "52.1.2.128/25", "service": "S3", "region": "us-east-1"},
    ], "ipv6_prefixes": [
        {"ipv6_prefix": "2600:1f00::/24", "service": "AMAZON", "region": "GLOBAL"},
        {"ipv6_prefix": "2600:1f14::/35", "service": "EC2", "region": "eu-west-1"},
    ]}
    path = tmp_path / "ip-ranges.json"
    path.write_text(json.dumps(doc))
    zmap = build_zones(aws_ip_ranges=path)
    assert zmap.zone_of(["52.1.2.1", "52.1.2.130", "52.2.0.1", "52.1.255.255", "2600:1f14::1", "2600:1f00::1"]) == [
        "aws:EC2:us-east-1", "aws:S3:us-east-1", "aws:AMAZON:us-east-1", "aws:EC2:us-east-1",
        "aws:EC2:eu-west-1", "aws:AMAZON:GLOBAL"]
    assert zmap.aws_create_date == "2099-01-01-00-00-00"
    gz = tmp_path / "compact.json.gz"
    gz.write_bytes(gzip.compress(json.dumps(compact_aws_ip_ranges(doc)).encode()))
    assert build_zones(aws_ip_ranges=gz).zone_of(["52.1.2.130"]) == ["aws:S3:us-east-1"]


def test_user_zone_outranks_aws(tmp_path):
    zmap = build_zones(vpc=["3.4.12.0/24"])
    assert zmap.zone_of(["3.4.12.4"]) == ["vpc"]


def test_bundled_aws_copy_states_its_date():
    zmap = build_zones()
    assert AWS_RANGES_DATE == "2026-08-22"
    assert zmap.aws_create_date.startswith(AWS_RANGES_DATE) and zmap.aws_sync_token == "1787411825"
    assert zmap.zone_of(["3.4.12.4"]) == ["aws:AMAZON:eu-west-1"]  # the file's first prefix


@pytest.mark.skipif(not SHARED_AWS.exists(), reason="needs ../shared/data's ip-ranges.json")
def test_bundled_copy_matches_the_published_file():
    """Every published prefix's first address gets an aws zone whose service and region the file
    lists for a prefix holding it (the compact copy lost nothing)."""
    doc = json.loads(SHARED_AWS.read_text())
    entries = [(p["ip_prefix"], p["service"], p["region"]) for p in doc["prefixes"]] + [
        (p["ipv6_prefix"], p["service"], p["region"]) for p in doc["ipv6_prefixes"]]
    zmap = build_zones()
    sample = entries[::37]
    got = zmap.zone_of([str(ipaddress.ip_network(c).network_address) for c, _, _ in sample])
    nets = [(ipaddress.ip_network(c), s, r) for c, s, r in entries]
    for (c, _, _), zone in zip(sample, got, strict=True):
        addr = ipaddress.ip_network(c).network_address
        allowed = {f"aws:{s}:{r}" for n, s, r in nets if n.version == addr.version and addr in n}
        assert zone in allowed, (c, zone)


def test_directions():
    zones = [Zone("prod", ("10.0.0.0/16",)), Zone("onprem", ("192.168.0.0/16",))]
    f = make_flows(
        {"client_ip": "10.0.1.1", "server_ip": "198.51.100.7"},   # egress
        {"client_ip": "198.51.100.7", "server_ip": "10.0.1.1"},   # ingress
        {"client_ip": "10.0.1.1", "server_ip": "10.0.2.2"},       # internal
        {"client_ip": "10.0.1.1", "server_ip": "192.168.1.1"},    # cross_zone
        {"client_ip": "198.51.100.7", "server_ip": "8.8.8.8"},    # external
        {"client_ip": None, "server_ip": "10.0.2.2"},             # unknown
    )
    out = zone_flows(f, build_zones(zones=zones, aws_ip_ranges=False))
    assert list(out["direction"]) == ["egress", "ingress", "internal", "cross_zone", "external", "unknown"]
    assert list(out["client_zone"])[:4] == ["prod", "internet", "prod", "prod"]
    nozones = zone_flows(f, build_zones(aws_ip_ranges=False))
    assert set(nozones["direction"]) == {"unknown"}  # nothing is egress without a zone
    assert list(nozones["server_zone"])[:3] == ["internet", "rfc1918", "rfc1918"]


def test_vni_and_gwlb_mapping_separate_overlapping_vpcs(tmp_path):
    path = tmp_path / "zones.toml"
    path.write_text(
        '[[zone]]\nname = "vpc-a"\ncidrs = ["10.0.0.0/16"]\nvni = [1]\n\n'
        '[[zone]]\nname = "vpc-b"\ncidrs = ["10.0.0.0/16"]\nvni = 2\ngwlb_endpoint = "0x0A1B2C3D4E5F6071"\n'
    )
    f = make_flows(
        {"client_ip": "10.0.0.5", "server_ip": "10.0.0.6", "vni": 1},
        {"client_ip": "10.0.0.5", "server_ip": "10.0.0.6", "vni": 2},
        {"client_ip": "10.0.0.5", "server_ip": "1.1.1.1", "gwlb_endpoint_id": "0a1b2c3d4e5f6071"},
        {"client_ip": "10.0.0.5", "server_ip": "10.0.0.6"},
    )
    out = zone_flows(f, build_zones(zones=path, aws_ip_ranges=False))
    assert list(out["client_zone"]) == ["vpc-a", "vpc-b", "vpc-b", "vpc-a"]  # unmapped: first listed
    assert list(out["direction"]) == ["internal", "internal", "egress", "internal"]


@pytest.mark.parametrize("text, message", [
    ('[[zone]]\nname = "x"\ncidrs = ["10.0.0.0/33"]\n', "not a CIDR"),
    ('[[zone]]\ncidrs = ["10.0.0.0/8"]\n', "has no name"),
    ('[[zone]]\nname = "x"\ncidrs = []\n', "non-empty list"),
    ('[[zone]]\nname = "x"\ncidrs = ["10.0.0.0/8"]\nvni = "one"\n', "vni must be"),
    ('[[zone]]\nname = "x"\ncidrs = ["10.0.0.0/8"]\ncolour = 1\n', "unknown key"),
    ('[[zone]]\nname = "x"\ncidrs = ["10.0.0.0/8"]\n[[zone]]\nname = "x"\ncidrs = ["10.1.0.0/16"]\n', "unique"),
    ('zone = [', "cannot read"),
])
def test_bad_zones_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "z.toml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=message) as info:
        build_zones(zones=path, aws_ip_ranges=False)
    assert str(path) in str(info.value) or "CIDR" in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_vpc_cidr():
    with pytest.raises(PolicyError, match="not a CIDR"):
        build_zones(vpc=["10.0.0.0/8", "banana"], aws_ip_ranges=False)


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "10.1.2.3/8", "0.0.0.0/0", "255.255.255.255/32", "fd77::/64",
                                  "2001:db8::1/128", "::/0", " 10.0.0.0/24 ", "::ffff:1.2.3.4/120", "1.2.3.4/33",
                                  "010.0.0.0/8", "1.2.3/24", "10.0.0.0", "fe80::1%eth0/64", "10.0.0.0/-1", "a/b", ""])
def test_fast_cidr_parse_equals_ipaddress(cidr):
    """The inet_pton path of _cidr_bounds (AWS prefixes at start-up) gives what ipaddress gives, or
    declines (None) and leaves the form to ipaddress."""
    import ipaddress
    import sys

    zm = sys.modules["analyzer.policy.zones"]
    fast = zm._cidr_bounds_fast(cidr)
    try:
        net = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        assert fast is None
        return
    fam = 4 if net.version == 4 else 6
    ref = (zm._key_int(fam, int(net.network_address)), zm._key_int(fam, int(net.broadcast_address)), net.prefixlen)
    assert fast is None or fast == ref
    assert zm._cidr_bounds(cidr) == ref


def _same_map(a, b) -> None:
    assert a.labels == b.labels and a.zones == b.zones
    assert (a.aws_create_date, a.aws_sync_token) == (b.aws_create_date, b.aws_sync_token)
    assert a.internal.tolist() == b.internal.tolist()
    for x, y in [(a.table, b.table), *((a._per_zone[k], b._per_zone[k]) for k in b._per_zone)]:
        assert x.starts.tolist() == y.starts.tolist() and x.ends.tolist() == y.ends.tolist()
        assert x.labels.tolist() == y.labels.tolist()
    assert sorted(a._per_zone) == sorted(b._per_zone)


def test_compiled_zone_map_cache_reads_back_what_was_built(tmp_path, monkeypatch):
    """The on-disk cache of the compiled map (AWS + special + user zones, VNI/GWLB tables) gives the
    map a fresh build gives; another set of zones or another AWS file gets another cache file."""
    from analyzer.policy import zones as zmod

    monkeypatch.setenv(zmod.CACHE_DIR_ENV, str(tmp_path))
    declared = (Zone("vpc-a", ("10.0.0.0/16", "fd00::/8"), vnis=(1,)), Zone("vpc", ("10.0.0.0/8",)))
    fresh = zmod._build_zone_map(declared, ("bundled",))
    first = zmod._cached_build(declared, ("bundled",))  # builds and writes
    files = list((tmp_path / "zones").glob("zones-*.npz"))
    assert len(files) == 1
    second = zmod._cached_build(declared, ("bundled",))  # reads
    _same_map(first, fresh)
    _same_map(second, fresh)
    zmod._cached_build(declared[:1], ("bundled",))
    zmod._cached_build(declared, None)
    assert len(list((tmp_path / "zones").glob("zones-*.npz"))) == 3
    assert second.zone_of(["10.0.5.5", "3.5.140.2", "8.8.8.8"]) == fresh.zone_of(["10.0.5.5", "3.5.140.2", "8.8.8.8"])


@pytest.mark.parametrize("damage", [b"", b"not a zip file", "truncate"])
def test_damaged_zone_map_cache_is_rebuilt(tmp_path, monkeypatch, damage):
    from analyzer.policy import zones as zmod

    monkeypatch.setenv(zmod.CACHE_DIR_ENV, str(tmp_path))
    declared = (Zone("vpc", ("10.0.0.0/8",)),)
    zmod._cached_build(declared, ("bundled",))
    (path,) = (tmp_path / "zones").glob("zones-*.npz")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if damage == "truncate" else damage)
    _same_map(zmod._cached_build(declared, ("bundled",)), zmod._build_zone_map(declared, ("bundled",)))
    assert path.read_bytes() == raw  # written again whole


def test_unwritable_zone_map_cache_is_ignored(tmp_path, monkeypatch):
    from analyzer.policy import zones as zmod

    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would be")
    monkeypatch.setenv(zmod.CACHE_DIR_ENV, str(blocker))
    declared = (Zone("vpc", ("10.0.0.0/8",)),)
    _same_map(zmod._cached_build(declared, ("bundled",)), zmod._build_zone_map(declared, ("bundled",)))
