"""Keep captures/manifest.json honest: every fact it states about a sample capture is re-derived
from the capture itself with tshark (and, for certificates, with ``cryptography`` on the DER bytes
tshark extracts). The project's analyzer is checked against the same manifest elsewhere; this test
only makes sure the manifest describes what really crossed the wire.

Every key of a manifest entry must be known here (checked, or purely descriptive), so a new fact
cannot slip into the manifest unchecked.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import shutil
import struct
import subprocess
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from analyzer.dissect.tls.constants import VERSION_NAMES

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
MANIFEST = CAPTURES / "manifest.json"
TSHARK = shutil.which("tshark")

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")

# version code -> name: the package's one table (unknown codes stay hex here, as tshark shows them)
VERSIONS = VERSION_NAMES
HRR_RANDOM = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
LINKTYPES = {1: "EN10MB", 101: "RAW", 113: "LINUX_SLL", 276: "LINUX_SLL2"}
CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA = 20, 21, 22, 23
HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_HVR, HS_ENC_EXT, HS_CERTIFICATE = 1, 2, 3, 8, 11
EXT_PRE_SHARED_KEY = 41

FIELDS = [
    "frame.number",
    "frame.len",
    "frame.cap_len",
    "frame.interface_id",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.stream",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.flags.reset",
    "tcp.payload",
    "udp.srcport",
    "udp.dstport",
    "vxlan.vni",
    "geneve.vni",
    "geneve.proto_type",
    "geneve.option.class",
    "geneve.option.type",
    "tls.record.content_type",
    "tls.record.opaque_type",
    "tls.handshake.type",
    "tls.handshake.version",
    "tls.handshake.random",
    "tls.handshake.session_id",
    "tls.handshake.ciphersuite",
    "tls.handshake.extensions.supported_version",
    "tls.handshake.extensions_server_name",
    "tls.handshake.extensions_alpn_str",
    "tls.handshake.extension.type",
    "tls.handshake.extensions_key_share_group",
    "tls.handshake.certificate",
    "tls.alert_message.desc",
    "dtls.record.content_type",
    "dtls.handshake.type",
    "dtls.handshake.version",
    "dtls.handshake.ciphersuite",
    "dtls.handshake.extensions_server_name",
    "dtls.handshake.certificate",
    "dtls.handshake.fragment_length",
    "dtls.handshake.length",
    "quic.version",
    "quic.header_form",
    "http.request.method",
    "http.host",
    "http.request.uri",
    "http.response.code",
    "http.authbasic",
    "smtp.command_line",
    "smtp.auth.username",
    "smtp.auth.password",
    "ftp.request.command",
    "ftp.request.arg",
    "ssh.protocol",
]

# keys that only describe (not checked against the capture)
DESCRIPTIVE = {"description", "tool", "tshark_decode_as", "keylog"}


# ------------------------------------------------------------------ manifest and tshark plumbing
def load_manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text())


def manifest_entries() -> list[tuple[str, dict[str, Any]]]:
    if not MANIFEST.exists():
        return []
    return sorted(load_manifest()["captures"].items())


Frame = dict[str, list[str]]


def tshark_json(path: Path, decode_as: Iterable[str] = (), prefs: Iterable[str] = ()) -> list[Frame]:
    args = [str(TSHARK), "-n", "-r", str(path), "-T", "json", "-o", "smtp.decryption:TRUE"]
    for d in decode_as:
        args += ["-d", d]
    for p in prefs:
        args += ["-o", p]
    for f in FIELDS:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    return [p["_source"]["layers"] for p in json.loads(out or "[]")]


@cache
def value_names(field: str) -> dict[int, str]:
    """tshark's own value strings for a field (e.g. cipher-suite id -> IANA name)."""
    return _all_value_names().get(field, {})


@cache
def _all_value_names() -> dict[str, dict[int, str]]:
    out = subprocess.run([str(TSHARK), "-G", "values"], capture_output=True, text=True, check=True).stdout
    names: dict[str, dict[int, str]] = {}
    for line in out.splitlines():
        p = line.split("\t")
        if len(p) == 4 and p[0] == "V":
            try:
                names.setdefault(p[1], {})[int(p[2], 0)] = p[3]
            except ValueError:
                continue
    return names


def ints(f: Frame, key: str) -> list[int]:
    out = []
    for v in f.get(key, []):
        for part in str(v).split(","):
            out.append(int(part, 0) if part not in ("True", "False") else int(part == "True"))
    return out


def last(f: Frame, *keys: str) -> str | None:
    for k in keys:
        if f.get(k):
            return f[k][-1]
    return None


def src_port(f: Frame) -> int | None:
    v = last(f, "tcp.srcport") or last(f, "udp.srcport")
    return int(v) if v is not None else None


def inner_src(f: Frame) -> str | None:
    return last(f, "ipv6.src", "ip.src")


def inner_dst(f: Frame) -> str | None:
    return last(f, "ipv6.dst", "ip.dst")


class Capture:
    """A capture's frames with (D)TLS handshake views, whatever the layer it is found in."""

    def __init__(self, frames: list[Frame], dtls: bool = False) -> None:
        self.frames = frames
        self.p = "dtls" if dtls else "tls"

    def hs(self, f: Frame) -> list[int]:
        return ints(f, f"{self.p}.handshake.type")

    def with_hs(self, t: int) -> list[Frame]:
        return [f for f in self.frames if t in self.hs(f)]

    def is_hrr(self, f: Frame) -> bool:
        return HRR_RANDOM in [r.replace(":", "").lower() for r in f.get(f"{self.p}.handshake.random", [])]

    def client_hellos(self) -> list[Frame]:
        return self.with_hs(HS_CLIENT_HELLO)

    def server_hellos(self) -> list[Frame]:
        return [f for f in self.with_hs(HS_SERVER_HELLO) if not self.is_hrr(f)]

    def server_ports(self) -> set[int]:
        return {p for f in self.server_hellos() + self.with_hs(HS_HVR) if (p := src_port(f)) is not None}

    def negotiated_version(self, f: Frame) -> str:
        sv = ints(f, f"{self.p}.handshake.extensions.supported_version")
        v = sv[-1] if sv else ints(f, f"{self.p}.handshake.version")[-1]
        return VERSIONS.get(v, hex(v))

    def record_types(self, from_server: bool) -> set[int]:
        ports = self.server_ports()
        out: set[int] = set()
        for f in self.frames:
            if (src_port(f) in ports) == from_server:
                # TLS 1.3 records without keys show up as opaque_type (always 23 on the wire)
                out.update(ints(f, f"{self.p}.record.content_type") + ints(f, f"{self.p}.record.opaque_type"))
        return out

    def certificates(self) -> list[list[bytes]]:
        """DER certificates of every plaintext Certificate message (one list per message)."""
        out = []
        for f in self.with_hs(HS_CERTIFICATE):
            ders = [bytes.fromhex(h.replace(":", "")) for h in f.get(f"{self.p}.handshake.certificate", [])]
            if ders:
                out.append(ders)
        return out


# ------------------------------------------------------------------ file-level facts
def file_header(path: Path) -> tuple[str, str, list[str], int | None]:
    """(format, ts precision, link types, snaplen) straight from the file bytes."""
    raw = path.read_bytes()
    fmt = "pcap"
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
        fmt = "pcap.gz"
    magic = raw[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        linktypes, off = [], 0
        endian = "<" if raw[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        while off + 12 <= len(raw):
            btype, blen = struct.unpack_from(endian + "II", raw, off)
            if btype == 1:
                linktypes.append(LINKTYPES.get(struct.unpack_from(endian + "H", raw, off + 8)[0], "?"))
            off += blen
        return "pcapng", "us", linktypes, None
    for endian in "<>":
        (m,) = struct.unpack_from(endian + "I", raw, 0)
        if m in (0xA1B2C3D4, 0xA1B23C4D):
            snaplen, linktype = struct.unpack_from(endian + "II", raw, 16)
            prec = "ns" if m == 0xA1B23C4D else "us"
            return fmt, prec, [LINKTYPES.get(linktype & 0xFFFF, str(linktype))], snaplen
    raise AssertionError(f"{path.name}: not a pcap/pcapng file")


def cert_facts_from_der(der: bytes, at: dt.datetime) -> dict[str, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    c = x509.load_der_x509_certificate(der)
    key = c.public_key()
    cn = c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    try:
        san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        san = []
    facts: dict[str, Any] = {
        "sha256": hashlib.sha256(der).hexdigest(),
        "subject_cn": str(cn[0].value) if cn else None,
        "san_dns": san,
        "signature_hash": c.signature_hash_algorithm.name if c.signature_hash_algorithm else None,
        "not_before": c.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": c.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "self_signed": c.subject == c.issuer,
        "expired": c.not_valid_after_utc < at,
        "not_yet_valid": c.not_valid_before_utc > at,
    }
    if isinstance(key, rsa.RSAPublicKey):
        facts.update(key_type="RSA", key_bits=key.key_size)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        facts.update(key_type="EC", key_bits=key.curve.key_size, curve=key.curve.name)
    return facts


def name_matches(name: str, sans: list[str]) -> bool:
    return any(san == name or (san.startswith("*.") and name.split(".", 1)[-1] == san[2:]) for san in sans)


# ------------------------------------------------------------------ the checks
def check_tls(
    name: str, facts: dict[str, Any], cap: Capture, checked: set[str], recorded_at: dt.datetime
) -> None:
    cipher_ids = {v: k for k, v in value_names(f"{cap.p}.handshake.ciphersuite").items()}
    shs, chs = cap.server_hellos(), cap.client_hellos()

    if "tls_version" in facts or "dtls_version" in facts:
        want = facts.get("tls_version", facts.get("dtls_version"))
        assert shs, f"{name}: no ServerHello"
        assert {cap.negotiated_version(f) for f in shs} == {want}
        checked.update({"tls_version", "dtls_version"})
    if "tls_cipher" in facts:
        got = {ints(f, f"{cap.p}.handshake.ciphersuite")[-1] for f in shs}
        assert got == {cipher_ids[facts["tls_cipher"]]}, (
            name,
            [value_names(f"{cap.p}.handshake.ciphersuite").get(g) for g in got],
        )
        checked.add("tls_cipher")
    if "server_name" in facts:
        sni = {s for f in chs for s in f.get(f"{cap.p}.handshake.extensions_server_name", [])}
        assert sni == {facts["server_name"]}, (name, sni)
        checked.add("server_name")
    if "alpn_offered" in facts:
        assert chs and chs[0].get("tls.handshake.extensions_alpn_str", []) == facts["alpn_offered"]
        checked.add("alpn_offered")
    if "alpn" in facts and facts.get("tls_version") in ("TLS 1.0", "TLS 1.1", "TLS 1.2"):
        assert {a for f in shs for a in f.get("tls.handshake.extensions_alpn_str", [])} == {facts["alpn"]}
        checked.add("alpn")
    if "handshake_complete" in facts:
        if facts.get("quic_version"):
            # QUIC: both sides reach 1-RTT (short header) packets
            ports = cap.server_ports()
            short = {src_port(f) in ports for f in cap.frames if "0" in f.get("quic.header_form", [])}
            done = bool(shs) and short == {True, False}
        else:
            v = cap.negotiated_version(shs[0]) if shs else None
            marker = CT_APPDATA if v == "TLS 1.3" else CT_CCS
            done = bool(shs) and marker in cap.record_types(True) and marker in cap.record_types(False)
        assert done == facts["handshake_complete"], name
        checked.add("handshake_complete")
    if "client_hellos" in facts:
        assert len(chs) == facts["client_hellos"]
        checked.add("client_hellos")
    if "hello_retry_request" in facts:
        assert any(cap.is_hrr(f) for f in cap.with_hs(HS_SERVER_HELLO)) == facts["hello_retry_request"]
        checked.add("hello_retry_request")
    groups = value_names("tls.handshake.extensions_key_share_group")
    if "key_share_groups_offered" in facts:
        offered = [groups.get(g, str(g)) for g in ints(chs[0], "tls.handshake.extensions_key_share_group")]
        assert offered == facts["key_share_groups_offered"]
        checked.add("key_share_groups_offered")
    if "key_share_group" in facts:
        chosen = {
            groups.get(g, str(g)) for f in shs for g in ints(f, "tls.handshake.extensions_key_share_group")
        }
        assert chosen == {facts["key_share_group"]}
        checked.add("key_share_group")
    if "client_supported_versions" in facts:
        versions = [
            VERSIONS.get(v, hex(v)) for v in ints(chs[0], "tls.handshake.extensions.supported_version")
        ]
        assert versions == facts["client_supported_versions"]
        checked.add("client_supported_versions")
    if "tls_connections" in facts:
        # tshark 4.0 does not follow FTP "AUTH TLS", so also count streams whose payload starts with a
        # TLS handshake record holding a ClientHello
        streams = {last(f, "tcp.stream") for f in chs} | {
            last(f, "tcp.stream")
            for f in cap.frames
            for p in f.get("tcp.payload", [])
            if (b := bytes.fromhex(p.replace(":", "")))[:2] == b"\x16\x03"
            and len(b) > 5
            and b[5] == HS_CLIENT_HELLO
        }
        assert len(streams) == facts["tls_connections"], (name, streams)
        checked.add("tls_connections")
    if "resumption" in facts:
        resumed = 0
        if facts["resumption"] == "psk":
            resumed = sum(EXT_PRE_SHARED_KEY in ints(f, "tls.handshake.extension.type") for f in shs)
        elif facts["resumption"] == "session_id":
            ch_sid = {last(f, "tcp.stream"): last(f, "tls.handshake.session_id") for f in chs}
            cert_streams = {last(f, "tcp.stream") for f in cap.with_hs(HS_CERTIFICATE)}
            for f in shs:
                stream, sid = last(f, "tcp.stream"), last(f, "tls.handshake.session_id")
                if sid and sid == ch_sid.get(stream) and stream not in cert_streams:
                    resumed += 1
        assert resumed == facts["resumed_connections"], name
        checked.update({"resumption", "resumed_connections"})
    if "tls_alert" in facts:
        desc = {k: v.lower().replace(" ", "_") for k, v in value_names("tls.alert_message.desc").items()}
        alerts = [(src_port(f), desc.get(d)) for f in cap.frames for d in ints(f, "tls.alert_message.desc")]
        assert any(d == facts["tls_alert"] for _, d in alerts), alerts
        if facts.get("tls_alert_from") == "server":
            assert any(p == facts["server_port"] and d == facts["tls_alert"] for p, d in alerts)
        checked.update({"tls_alert", "tls_alert_from"})
    if "hello_verify_request" in facts:
        assert bool(cap.with_hs(HS_HVR)) == facts["hello_verify_request"]
        checked.add("hello_verify_request")
    if "handshake_fragmented" in facts:
        frag = any(
            fl < hl
            for f in cap.frames
            for fl, hl in zip(
                ints(f, "dtls.handshake.fragment_length"), ints(f, "dtls.handshake.length"), strict=False
            )
        )
        assert frag == facts["handshake_fragmented"]
        checked.add("handshake_fragmented")
    if "cert_visible" in facts:
        certs = cap.certificates()
        assert bool(certs) == facts["cert_visible"], name
        checked.add("cert_visible")
        if certs:
            check_certs(name, facts, certs, recorded_at)
            checked.update({"cert", "cert_chain", "sni_matches_cert"})
        elif "keylog" not in facts:
            # encrypted Certificate and no keys shipped: "cert" only says what the server was given
            checked.update({"cert", "cert_chain", "sni_matches_cert"})


def check_certs(name: str, facts: dict[str, Any], certs: list[list[bytes]], at: dt.datetime) -> None:
    """Every plaintext Certificate message carries exactly the chain the manifest names."""
    for chain in certs:
        if "cert_chain" in facts:
            assert [hashlib.sha256(d).hexdigest() for d in chain] == facts["cert_chain"], name
        if "cert" in facts:
            got = cert_facts_from_der(chain[0], at)
            want = facts["cert"]
            for k, v in got.items():
                assert want.get(k) == v, (name, k, want.get(k), v)
            if "sni_matches_cert" in facts:
                assert name_matches(facts["server_name"], got["san_dns"]) == facts["sni_matches_cert"]


def check_keylog(name: str, facts: dict[str, Any], path: Path, at: dt.datetime) -> None:
    """TLS 1.3: decrypt with the shipped keylog, then the certificate and the selected ALPN must match."""
    keylog = CAPTURES / facts["keylog"]
    assert keylog.exists(), f"{name}: keylog {keylog.name} missing"
    cap = Capture(tshark_json(path, facts.get("tshark_decode_as", []), [f"tls.keylog_file:{keylog}"]))
    certs = cap.certificates()
    assert certs, f"{name}: no Certificate after decryption with {keylog.name}"
    check_certs(name, facts, certs, at)
    if "alpn" in facts:
        got = {a for f in cap.with_hs(HS_ENC_EXT) for a in f.get("tls.handshake.extensions_alpn_str", [])}
        assert got == {facts["alpn"]}


def check_endpoints(name: str, facts: dict[str, Any], frames: list[Frame], checked: set[str]) -> None:
    transport = facts.get("transport")
    client = facts.get("client", facts.get("inner_client"))
    server = facts.get("server", facts.get("inner_server"))
    if transport == "tcp":
        syns = [
            f for f in frames if ints(f, "tcp.flags.syn")[-1:] == [1] and ints(f, "tcp.flags.ack")[-1:] == [0]
        ]
        assert syns, f"{name}: no TCP SYN"
        if client and server:
            assert any(inner_src(f) == client and inner_dst(f) == server for f in syns), name
            if "server_port" in facts:
                assert any(int(last(f, "tcp.dstport") or 0) == facts["server_port"] for f in syns)
    elif transport == "udp":
        first = frames[0]
        assert (inner_src(first), inner_dst(first)) == (client, server), name
        assert int(last(first, "udp.dstport") or 0) == facts["server_port"]
    checked.update({"transport", "client", "server", "server_port", "inner_client", "inner_server"})
    if "ip_version" in facts:
        assert all(("ipv6.src" in f) == (facts["ip_version"] == 6) for f in frames)
        checked.add("ip_version")


def check_tunnel(name: str, facts: dict[str, Any], frames: list[Frame], checked: set[str]) -> None:
    kind = facts["tunnel"]
    vnis = {v for f in frames for v in ints(f, f"{kind}.vni")}
    assert vnis == {facts["vni"]}, (name, vnis)
    assert all(f.get(f"{kind}.vni") for f in frames), f"{name}: a frame is not {kind}-encapsulated"
    outer = {(f["ip.src"][0], f["ip.dst"][0]) for f in frames}
    if "outer_addresses" in facts:
        assert {a for pair in outer for a in pair} == set(facts["outer_addresses"])
    if "outer_src" in facts:
        assert {s for s, _ in outer} == {facts["outer_src"]} and {d for _, d in outer} == {facts["outer_dst"]}
    if facts.get("mirror_one_way"):
        assert len(outer) == 1, f"{name}: mirror feed should flow one way only: {outer}"
    assert {int(f["udp.dstport"][0]) for f in frames} == {facts["outer_udp_dport"]}
    if "geneve_proto_type" in facts:
        assert {p for f in frames for p in ints(f, "geneve.proto_type")} == {facts["geneve_proto_type"]}
    if "geneve_options" in facts:
        want = [list(o) for o in facts["geneve_options"]]
        for f in frames:
            got = [
                list(o)
                for o in zip(ints(f, "geneve.option.class"), ints(f, "geneve.option.type"), strict=True)
            ]
            assert got == want, (name, got)
    checked.update(
        {
            "tunnel",
            "vni",
            "outer_addresses",
            "outer_src",
            "outer_dst",
            "mirror_one_way",
            "outer_udp_dport",
            "geneve_proto_type",
            "geneve_options",
        }
    )


def check_cleartext(name: str, facts: dict[str, Any], frames: list[Frame], checked: set[str]) -> None:
    if "http_requests" in facts:
        reqs = [
            {
                "method": last(f, "http.request.method"),
                "host": last(f, "http.host"),
                "uri": last(f, "http.request.uri"),
            }
            for f in frames
            if f.get("http.request.method")
        ]
        for want in facts["http_requests"]:
            assert want in reqs, (name, reqs)
        checked.add("http_requests")
    if "http_status" in facts:
        codes = {c for f in frames for c in ints(f, "http.response.code")}
        assert set(facts["http_status"]) <= codes, (name, codes)
        checked.add("http_status")
    if "http_basic_auth" in facts:
        creds = {c for f in frames for c in f.get("http.authbasic", [])}
        a = facts["http_basic_auth"]
        assert creds == {f"{a['user']}:{a['password']}"}
        checked.add("http_basic_auth")
    # (smtp.req.command cuts STARTTLS to "STAR"; take the first word of the command line instead)
    cmds = [c.split()[0].upper() for f in frames for c in f.get("smtp.command_line", []) if c.split()]
    if "smtp_commands" in facts:
        assert set(facts["smtp_commands"]) <= set(cmds), (name, cmds)
        checked.add("smtp_commands")
    if "starttls" in facts:
        assert ("STARTTLS" in cmds) == facts["starttls"]
        if facts["starttls"]:
            assert any(f.get("tls.handshake.type") for f in frames), f"{name}: no TLS after STARTTLS"
        checked.add("starttls")
    if "smtp_auth" in facts:
        users = {u for f in frames for u in f.get("smtp.auth.username", [])}
        pws = {p for f in frames for p in f.get("smtp.auth.password", [])}
        assert users == {facts["smtp_auth"]["user"]} and pws == {facts["smtp_auth"]["password"]}
        checked.add("smtp_auth")
    ftp = [
        (c.upper(), f.get("ftp.request.arg", [""])[0])
        for f in frames
        for c in f.get("ftp.request.command", [])
    ]
    if "ftp_commands" in facts:
        assert set(facts["ftp_commands"]) <= {c for c, _ in ftp}, (name, ftp)
        checked.add("ftp_commands")
    if "ftp_user" in facts:
        assert ("USER", facts["ftp_user"]) in ftp and ("PASS", facts["ftp_password"]) in ftp
        checked.update({"ftp_user", "ftp_password"})
    if "ftp_auth" in facts:
        assert ("AUTH", facts["ftp_auth"]) in ftp, ftp[:3]
        assert any(f.get("tls.handshake.type") for f in frames)
        checked.add("ftp_auth")
    if "ftp_data_ports" in facts:
        lo, hi = facts["ftp_data_ports"]
        assert any(lo <= int(last(f, "tcp.dstport") or 0) <= hi for f in frames), (
            f"{name}: no data connection"
        )
        checked.add("ftp_data_ports")
    if "ssh_client_banner_prefix" in facts:
        banners = [b for f in frames for b in f.get("ssh.protocol", [])]
        assert len(banners) == 2, banners
        assert all(b.startswith(facts["ssh_client_banner_prefix"]) for b in banners), banners
        checked.update({"ssh_client_banner_prefix", "ssh_server_banner_prefix"})
    if "quic_version" in facts:
        versions = {v for f in frames for v in ints(f, "quic.version")}
        assert versions == {facts["quic_version"]}, versions
        checked.add("quic_version")
    if "server_plaintext_prefix" in facts:
        port = facts["server_port"]
        payload = b"".join(
            bytes.fromhex(p.replace(":", ""))
            for f in frames
            if src_port(f) == port
            for p in f.get("tcp.payload", [])
        )
        assert payload.startswith(facts["server_plaintext_prefix"].encode()), payload[:40]
        assert not any(f.get("tls.handshake.type") for f in frames if src_port(f) == port)
        checked.add("server_plaintext_prefix")
    if "tcp_rst_from_server" in facts:
        rst = any(
            ints(f, "tcp.flags.reset")[-1:] == [1] and src_port(f) == facts["server_port"] for f in frames
        )
        assert rst == facts["tcp_rst_from_server"]
        checked.add("tcp_rst_from_server")


# ------------------------------------------------------------------ tests
def test_manifest_lists_every_capture() -> None:
    assert MANIFEST.exists(), "captures/manifest.json missing: run captures/make_captures.sh"
    listed = set(load_manifest()["captures"])
    for group in sorted(CAPTURES.glob("manifest.*.json")):  # the capture groups' own manifests
        listed |= set(json.loads(group.read_text())["captures"])
    on_disk = {p.name for p in CAPTURES.iterdir() if p.name.endswith((".pcap", ".pcapng", ".pcap.gz"))}
    assert listed == on_disk
    readme = (CAPTURES / "README.md").read_text()
    assert all(f"`{n}`" in readme for n in listed), "every capture is described in captures/README.md"


def test_captures_are_small() -> None:
    files = [p for p in CAPTURES.iterdir() if p.name.endswith((".pcap", ".pcapng", ".pcap.gz"))]
    assert all(p.stat().st_size < 200_000 for p in files)
    assert sum(p.stat().st_size for p in files) < 3_000_000


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize(("name", "facts"), manifest_entries(), ids=[n for n, _ in manifest_entries()])
def test_capture_matches_manifest(name: str, facts: dict[str, Any]) -> None:
    path = CAPTURES / name
    recorded_at = dt.datetime.strptime(load_manifest()["recorded_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.UTC
    )
    checked: set[str] = set(DESCRIPTIVE)

    fmt, prec, linktypes, snaplen = file_header(path)
    assert fmt == facts["format"]
    checked.add("format")
    if "ts_precision" in facts:
        assert prec == facts["ts_precision"]
        checked.add("ts_precision")
    if "linktypes" in facts:
        assert linktypes == facts["linktypes"]
        checked.add("linktypes")
    if "same_as" in facts:
        assert gzip.decompress(path.read_bytes()) == (CAPTURES / facts["same_as"]).read_bytes()
        checked.add("same_as")
        return

    frames = tshark_json(path, facts.get("tshark_decode_as", []))
    assert frames, f"{name}: tshark read no packets"
    if "snaplen" in facts:
        assert snaplen == facts["snaplen"]
        assert all(int(f["frame.cap_len"][0]) <= facts["snaplen"] for f in frames)
        checked.add("snaplen")
    if "truncated" in facts:
        cut = any(int(f["frame.cap_len"][0]) < int(f["frame.len"][0]) for f in frames)
        assert cut == facts["truncated"]
        checked.add("truncated")
    if "linktypes" in facts and len(facts["linktypes"]) > 1:
        assert {int(f["frame.interface_id"][0]) for f in frames} == set(range(len(facts["linktypes"])))

    check_endpoints(name, facts, frames, checked)
    if "tunnel" in facts:
        check_tunnel(name, facts, frames, checked)
    is_dtls = "dtls_version" in facts
    check_tls(name, facts, Capture(frames, dtls=is_dtls), checked, recorded_at)
    check_cleartext(name, facts, frames, checked)
    if "keylog" in facts:
        check_keylog(name, facts, path, recorded_at)
        checked.update({"cert", "cert_chain", "alpn", "sni_matches_cert"})

    unchecked = set(facts) - checked
    assert not unchecked, f"{name}: manifest keys nobody checks: {sorted(unchecked)}"
