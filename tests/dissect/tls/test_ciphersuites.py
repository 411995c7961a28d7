"""The cipher-suite table: spot checks, structure, and agreement with tshark and the corpus oracle."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.dissect.tls import ciphersuites as cs
from analyzer.dissect.tls.ciphersuites import lookup, lookup_sslv2

CORPUS = Path(os.environ.get("INTRANSIT_CORPUS", Path(__file__).resolve().parents[4] / "shared" / "corpus"))
ORACLE = CORPUS / "oracle"


def _ranges(*spans: tuple[int, int]) -> set[int]:
    return {c for a, b in spans for c in range(a, b + 1)}


# The assigned (non-reserved) code points of the IANA registry, by block.
IANA_CODES = _ranges(
    (0x0000, 0x001B), (0x001E, 0x0046), (0x0067, 0x006D), (0x006E, 0x0071), (0x0084, 0x00C7),
    (0x00FF, 0x00FF), (0x1301, 0x1307), (0x5600, 0x5600), (0xC001, 0xC0B5), (0xC100, 0xC106),
    (0xCCA8, 0xCCAE), (0xD001, 0xD003), (0xD005, 0xD005),
)  # fmt: skip

# Where our names deliberately differ from Wireshark's value strings: code -> tshark's name. Ours
# add BoringSSL's "_OLD" to the pre-RFC ChaCha20 code points and NSS's "OLDFIPS" to 0xffe0/0xffe1,
# so that names stay unique.
TSHARK_NAME_DIFFERENCES = {
    0xCC13: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCC14: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCC15: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xFFE0: "SSL_RSA_FIPS_WITH_3DES_EDE_CBC_SHA",
    0xFFE1: "SSL_RSA_FIPS_WITH_DES_CBC_SHA",
}
# Registered after Wireshark 4.0: tshark 4.0.17 has no name for them.
NEWER_THAN_TSHARK_40 = {0x006E, 0x006F, 0x0070, 0x0071, 0x1306, 0x1307}
# Codes offered in the corpus that neither tshark 4.0 nor we name (0x00fd/0x00fe from a fuzzed
# hello, 0xff85 is the private-use legacy GOST 2012 suite of OpenSSL's GOST engine).
CORPUS_UNNAMED = {0x00FD, 0x00FE, 0xFF85}


def tshark_name(code: int, name: str) -> str:
    """Our name as tshark spells it."""
    if code in TSHARK_NAME_DIFFERENCES:
        return TSHARK_NAME_DIFFERENCES[code]
    if name == "GREASE":
        return "Reserved (GREASE)"
    if name.startswith("SSL_CK_"):
        return "SSL2_" + name.removeprefix("SSL_CK_")
    return name


# --- spot checks -------------------------------------------------------------------------------


def test_tls13_aes128():
    s = lookup(0x1301)
    assert s.name == "TLS_AES_128_GCM_SHA256"
    assert s.tls13 and s.aead and s.forward_secrecy and s.known and s.iana
    assert (s.kx, s.auth, s.enc, s.mode, s.mac, s.bits) == ("any", "any", "AES_128", "GCM", "AEAD", 128)
    assert not (s.cbc or s.rc4 or s.export or s.null_cipher or s.scsv or s.grease)


def test_ecdhe_rsa_gcm():
    s = lookup(0xC02F)
    assert s.name == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert (s.kx, s.auth, s.enc, s.mode, s.mac, s.bits) == ("ECDHE", "RSA", "AES_128", "GCM", "AEAD", 128)
    assert s.forward_secrecy and s.aead and not s.tls13 and not s.cbc


def test_rsa_rc4():
    s = lookup(0x0005)
    assert s.name == "TLS_RSA_WITH_RC4_128_SHA"
    assert s.rc4 and not s.forward_secrecy and not s.aead
    assert (s.kx, s.auth, s.enc, s.mode, s.mac, s.bits) == ("RSA", "RSA", "RC4_128", "stream", "SHA", 128)


def test_3des():
    s = lookup(0x000A)
    assert s.name == "TLS_RSA_WITH_3DES_EDE_CBC_SHA"
    assert s.triple_des and s.cbc and not s.des and s.bits == 112 and s.enc == "3DES_EDE"


def test_export_rc4_40():
    s = lookup(0x0003)
    assert s.name == "TLS_RSA_EXPORT_WITH_RC4_40_MD5"
    assert s.export and s.rc4 and s.bits == 40 and s.mac == "MD5" and s.enc == "RC4_40"


def test_anon():
    s = lookup(0x0018)
    assert s.name == "TLS_DH_anon_WITH_RC4_128_MD5"
    assert s.anonymous and s.auth == "anon" and s.kx == "DH" and s.rc4


def test_chacha20():
    s = lookup(0xCCA8)
    assert s.name == "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
    assert (s.enc, s.mode, s.bits) == ("CHACHA20", "POLY1305", 256) and s.aead and s.forward_secrecy
    old = lookup(0xCC13)
    assert old.known and not old.iana and old.enc == "CHACHA20" and old.name.endswith("_OLD")


@pytest.mark.parametrize(
    ("code", "name"), [(0x00FF, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"), (0x5600, "TLS_FALLBACK_SCSV")]
)
def test_scsv(code, name):
    s = lookup(code)
    assert s.name == name and s.scsv and s.known and s.iana
    assert not (s.aead or s.cbc or s.null_cipher or s.forward_secrecy or s.tls13) and s.enc == ""


@pytest.mark.parametrize(
    ("code", "expect"),
    [
        (0x0000, dict(kx="NULL", auth="NULL", enc="NULL", mac="NULL", null_cipher=True, anonymous=True)),
        (0x0002, dict(kx="RSA", enc="NULL", mac="SHA", null_cipher=True, anonymous=False, bits=0)),
        (0x0006, dict(enc="RC2", mode="CBC", bits=40, export=True)),
        (0x0007, dict(enc="IDEA", bits=128, cbc=True)),
        (0x0009, dict(enc="DES", bits=56, des=True)),
        (0x0008, dict(enc="DES40", bits=40, des=True, export=True)),
        (0x0026, dict(kx="KRB5", enc="DES40", bits=40, export=True)),
        (0x0013, dict(kx="DHE", auth="DSS", triple_des=True, forward_secrecy=True)),
        (0x0030, dict(kx="DH", auth="DSS", forward_secrecy=False)),
        (0x008A, dict(kx="PSK", auth="PSK", rc4=True, forward_secrecy=False)),
        (0x0092, dict(kx="RSA_PSK", auth="RSA", forward_secrecy=False)),
        (0x00AA, dict(kx="DHE_PSK", auth="PSK", forward_secrecy=True, aead=True)),
        (0xC0AA, dict(kx="DHE_PSK", auth="PSK", mode="CCM_8", aead=True)),
        (0x0096, dict(enc="SEED", bits=128)),
        (0x00C6, dict(name="TLS_SM4_GCM_SM3", tls13=True, enc="SM4", mode="GCM", kx="any")),
        (0xC005, dict(kx="ECDH", auth="ECDSA", forward_secrecy=False, enc="AES_256", bits=256)),
        (0xC019, dict(kx="ECDH", auth="anon", anonymous=True, forward_secrecy=True)),
        (0xC01B, dict(kx="SRP", auth="RSA", forward_secrecy=True)),
        (0xC01A, dict(kx="SRP", auth="SRP", anonymous=False)),
        (0xC03D, dict(enc="ARIA_256", mode="CBC", mac="SHA384")),
        (0xC07A, dict(enc="CAMELLIA_128", mode="GCM", aead=True)),
        (0xC09C, dict(name="TLS_RSA_WITH_AES_128_CCM", mode="CCM", aead=True, forward_secrecy=False)),
        (0xC0AE, dict(mode="CCM_8", kx="ECDHE", auth="ECDSA")),
        (0xC0B0, dict(kx="ECCPWD", auth="ECCPWD", mode="GCM")),
        (0xC0B4, dict(name="TLS_SHA256_SHA256", tls13=True, null_cipher=True, aead=False, mac="SHA256")),
        (0xC100, dict(kx="GOSTR341112_256", enc="KUZNYECHIK", mode="CTR", mac="OMAC", tls13=False)),
        (0xC102, dict(enc="GOST28147", mode="CNT", mac="IMIT")),
        (0xC106, dict(tls13=True, enc="MAGMA", mode="MGM_S", aead=True)),
        (0xD003, dict(name="TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256", mode="CCM_8", kx="ECDHE_PSK")),
        (0x1306, dict(name="TLS_AEGIS_256_SHA512", enc="AEGIS_256", aead=True, tls13=True)),
        (0x1307, dict(name="TLS_AEGIS_128L_SHA256", enc="AEGIS_128L", bits=128)),
        (0x006E, dict(name="TLS_ASCONAEAD128_ASCONHASH256", enc="ASCON128", aead=True, tls13=True)),
        (0x0070, dict(name="TLS_AES_128_GCM_ASCONHASH256", enc="AES_128", mode="GCM", tls13=True)),
        (0x0062, dict(name="TLS_RSA_EXPORT1024_WITH_DES_CBC_SHA", export=True, bits=56, iana=False)),
        (0x0064, dict(enc="RC4_56", bits=56, export=True, iana=False)),
        (0x0081, dict(kx="GOSTR341001", enc="GOST28147", iana=False)),
        (0x001C, dict(name="SSL_FORTEZZA_KEA_WITH_NULL_SHA", null_cipher=True, iana=False)),
        (0xE013, dict(name="ECC_SM4_CBC_SM3", kx="ECC", enc="SM4", mac="SM3", forward_secrecy=False)),
        (0xE051, dict(kx="ECDHE", mode="GCM", aead=True, forward_secrecy=True)),
        (0xE410, dict(enc="ESTREAM_SALSA20", mode="stream", mac="SHA", bits=256)),
        (0xFEFF, dict(name="SSL_RSA_FIPS_WITH_3DES_EDE_CBC_SHA", triple_des=True, iana=False)),
        (0xC0FF, dict(kx="ECJPAKE", mode="CCM_8")),
    ],
)
def test_attributes(code, expect):
    s = lookup(code)
    assert s.known
    for key, value in expect.items():
        assert getattr(s, key) == value, (hex(code), key, getattr(s, key))


# --- structure -----------------------------------------------------------------------------


def test_counts():
    suites = cs.all_suites()
    assert len([s for s in suites if s.iana]) == len(IANA_CODES) == 356
    assert {s.code for s in suites if s.iana} == IANA_CODES
    assert len(suites) == 412  # 356 IANA + 56 deployed outside the registry
    assert len(cs.all_sslv2()) == 10
    assert [s.code for s in suites] == sorted(s.code for s in suites)


def test_no_duplicates():
    every = [*cs.all_suites(), *cs.all_sslv2()]
    assert len({s.code for s in every}) == len(every)
    assert len({s.name for s in every}) == len(every)


def test_every_row_complete():
    for s in cs.all_suites():
        assert s.known and not s.grease
        if s.scsv:
            continue
        assert s.kx and s.auth and s.enc and s.mode and s.mac, s
        assert s.aead == (s.mac == "AEAD")
        assert s.null_cipher == (s.bits == 0)
        assert s.tls13 == (s.kx == "any")
        if s.enc.endswith(("_128", "_256")):
            assert s.bits == int(s.enc[-3:]), s
        if s.export:
            assert s.bits in (40, 56), s
        assert not (s.cbc and s.aead)
        assert s.name == s.name.strip() and " " not in s.name


def test_lookup_name():
    assert cs.lookup_name("TLS_AES_256_GCM_SHA384") is lookup(0x1302)
    assert cs.lookup_name("SSL_CK_RC4_128_WITH_MD5") is lookup_sslv2(0x010080)
    assert cs.lookup_name("nope") is None


def test_grease():
    grease = [c for c in range(0x10000) if cs.is_grease(c)]
    assert grease == [0x0A0A + 0x1010 * i for i in range(16)]
    for c in grease:
        s = lookup(c)
        assert s.name == "GREASE" and s.grease and s.known and s.code == c
        assert not (s.aead or s.cbc or s.forward_secrecy or s.scsv)
    assert not lookup(0x0A1A).grease


def test_unknown():
    s = lookup(0x1234)
    assert s.name == "unknown_0x1234" and not s.known and not s.grease and not s.iana
    assert lookup(0x1234) == s  # made afresh (no process-wide memo), equal each time
    assert lookup(0x00FD).name == "unknown_0x00fd"
    assert lookup(0x0047).name == "unknown_0x0047"  # reserved by IANA, never assigned


def test_unknown_codes_keep_nothing():
    """Unassigned codes are answered without a process-wide memo (nothing grows per code)."""
    for code in range(0x7000, 0x7000 + 5000):
        assert lookup(code).known is cs.is_grease(code)
    assert not hasattr(cs._unknown, "cache_info")


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_lookup_never_raises(code):
    s = lookup(code)
    assert s.code == code
    v2 = lookup_sslv2(code)
    assert v2.code == code


def test_sslv2():
    s = lookup_sslv2(0x010080)
    assert s.name == "SSL_CK_RC4_128_WITH_MD5" and s.sslv2 and s.rc4 and s.bits == 128 and s.hex == "0x010080"
    assert lookup_sslv2(0x020080).export and lookup_sslv2(0x020080).bits == 40
    assert lookup_sslv2(0x0700C0).triple_des and lookup_sslv2(0x0700C0).bits == 112
    assert lookup_sslv2(0x060040).des and lookup_sslv2(0x060040).bits == 56
    assert lookup_sslv2(0x00002F) is lookup(0x002F)  # a TLS suite in an SSLv2-format hello
    u = lookup_sslv2(0x123456)
    assert u.name == "unknown_0x123456" and not u.known and u.sslv2


def test_frame():
    from analyzer.report.tables import cipher_suites

    df = cipher_suites()
    assert len(df) == 412 and df["code"].is_unique and df["name"].is_unique
    assert str(df["name"].dtype) == "string" and df["aead"].dtype == bool
    row = df.set_index("code").loc[0xC02F]
    assert row["hex"] == "0xc02f" and bool(row["forward_secrecy"])
    assert len(cipher_suites(include_sslv2=True)) == 422


def test_rows():
    rows = cs.as_rows()
    assert len(rows) == 412
    assert len({r["code"] for r in rows}) == 412 and len({r["name"] for r in rows}) == 412
    assert list(rows[0])[:3] == ["code", "hex", "name"] and isinstance(rows[0]["aead"], bool)
    row = next(r for r in rows if r["code"] == 0xC02F)
    assert row["hex"] == "0xc02f" and row["forward_secrecy"] is True
    assert len(cs.as_rows(include_sslv2=True)) == 422


# --- agreement with Wireshark and with the corpus oracle -------------------------------------------


def _tshark_values() -> tuple[dict[int, str], dict[int, str]]:
    out = subprocess.run(["tshark", "-G", "values"], capture_output=True, text=True, check=True).stdout
    tls: dict[int, str] = {}
    v2: dict[int, str] = {}
    for line in out.splitlines():
        p = line.split("\t")
        if len(p) >= 4 and p[0] == "V" and p[1] == "tls.handshake.ciphersuite":
            tls[int(p[2])] = p[3]
        elif len(p) >= 4 and p[0] == "V" and p[1] == "tls.handshake.cipherspec":
            v2[int(p[2])] = p[3]
    return tls, v2


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_names_agree_with_tshark():
    tls, v2 = _tshark_values()
    ours = {s.code: s for s in cs.all_suites()}
    differ = []
    for code, name in tls.items():
        s = lookup(code)
        assert s.known, f"tshark names 0x{code:04x} {name} but we do not"
        if tshark_name(code, s.name) != name:
            differ.append((hex(code), s.name, name))
    assert differ == []
    assert set(ours) - set(tls) == NEWER_THAN_TSHARK_40
    # SSLv2 kinds: tshark knows 8 of our 10 (not the two OpenSSL-only kinds 0xff08xx)
    for code, name in v2.items():
        if code > 0xFFFF:
            assert tshark_name(code, lookup_sslv2(code).name) == name


def _oracle_rows():
    csv.field_size_limit(1 << 30)
    for path in sorted(ORACLE.glob("*/*.csv")):
        with path.open(newline="") as fh:
            yield from csv.DictReader(fh)


@pytest.mark.corpus
@pytest.mark.skipif(not ORACLE.is_dir(), reason=f"corpus oracle not found at {ORACLE}")
def test_corpus_codes_known_and_named_like_tshark():
    offered: set[str] = set()
    selected: dict[str, set[str]] = {}
    for row in _oracle_rows():
        offered.update(c for c in (row.get("ch_ciphers") or "").split("|") if c)
        codes = [c for c in (row.get("selected_cipher") or "").split("|") if c]
        names = (row.get("selected_cipher_name") or "").split("|")
        for code, name in zip(codes, names, strict=False):
            selected.setdefault(code, set()).add(name)
    assert offered and selected
    unknown = set()
    for text in offered | set(selected):
        code = int(text, 16)
        s = lookup_sslv2(code) if len(text) > 6 else lookup(code)
        if not s.known:
            unknown.add(code)
    assert unknown == CORPUS_UNNAMED
    mismatched = []
    for text, names in selected.items():
        code = int(text, 16)
        s = lookup_sslv2(code) if len(text) > 6 else lookup(code)
        for name in names - {""}:
            if tshark_name(code, s.name) != name:
                mismatched.append((text, s.name, name))
    assert mismatched == []


@pytest.mark.corpus
@pytest.mark.tshark
@pytest.mark.skipif(not ORACLE.is_dir(), reason=f"corpus oracle not found at {ORACLE}")
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_corpus_unnamed_codes_are_unnamed_by_tshark_too():
    tls, _ = _tshark_values()
    assert not CORPUS_UNNAMED & set(tls)
