"""TLS cipher suites: the IANA registry as a table with attributes, plus SSLv2 cipher kinds.

`lookup(code)` never raises: assigned and widely deployed codes give their row, GREASE values
(RFC 8701: 0x0a0a, 0x1a1a, ..., 0xfafa) give a row named "GREASE" with `grease=True`, anything else
gives a row named ``unknown_0x....`` with `known=False`.

Where the table comes from (checked when it was written):
- IANA "TLS Cipher Suites" registry (tls-parameters-4): every assigned code point, 356 of them,
  names as IANA spells them. Transcribed from IANA's CSV (a 2023 snapshot) and cross-checked against
  a table generated from the registry in 2026 (which adds the four Ascon suites 0x006e-0x0071 and
  spells 0x1306 TLS_AEGIS_256_SHA512, as the registry now does) and against Wireshark 4.0's value
  string (`tshark -G values`): the 350 codes tshark knows carry the same names; tshark lacks
  0x006e-0x0071, 0x1306 and 0x1307.
- Codes outside the registry that real traffic carries and Wireshark names (`iana=False`):
  SSL 3.0 FORTEZZA (0x001c-0x001d), the 1024-bit export drafts (0x0060-0x0066), the CryptoPro
  GOST drafts (0x0080-0x0083), EC J-PAKE (0xc0ff), the pre-RFC 7905 ChaCha20 code points
  (0xcc13-0xcc15, named with BoringSSL's ``_OLD`` suffix to keep names unique), the Chinese
  GM/T 0024 (TLCP) suites (0xe001-0xe05a), the Salsa20 draft (0xe410-0xe41f) and Netscape's FIPS
  suites (0xfefe-0xfeff, and 0xffe0-0xffe1 named ``SSL_RSA_OLDFIPS_...`` as NSS does).
- SSLv2 CIPHER-KINDs (3 bytes) live in a separate table, `lookup_sslv2`.

Attributes are derived from the name (the names are systematic) with explicit tables for the
irregular parts; they state what the suite is, never whether it is acceptable:
- `kx`: key exchange (RSA, DH, DHE, ECDH, ECDHE, PSK, DHE_PSK, ECDHE_PSK, RSA_PSK, SRP, KRB5,
  ECCPWD, ECJPAKE, GOSTR341094, GOSTR341001, GOSTR341112_256, FORTEZZA_KEA, ECC, IBC, IBSDH,
  NULL; "any" for TLS 1.3 suites, which do not fix it). ``DH_anon``/``ECDH_anon`` give kx DH/ECDH
  with auth "anon" (as OpenSSL prints them); their keys are ephemeral.
- `auth`: server authentication (RSA, DSS, ECDSA, anon, PSK, KRB5, SRP, ECCPWD, ECJPAKE, SM2, IBC,
  GOST..., NULL; "any" for TLS 1.3). RSA_PSK suites authenticate the server with an RSA
  certificate, so auth is "RSA".
- `enc`: bulk cipher (AES_128, AES_256, CHACHA20, 3DES_EDE, DES, DES40, RC4_128, RC4_56, RC4_40,
  RC2, IDEA, SEED, CAMELLIA_128/256, ARIA_128/256, SM4, SM1, KUZNYECHIK, MAGMA, GOST28147,
  AEGIS_256, AEGIS_128L, ASCON128, SALSA20, ESTREAM_SALSA20, FORTEZZA, NULL).
- `mode`: CBC, GCM, CCM, CCM_8, POLY1305, MGM_L, MGM_S, AEGIS, ASCON, CTR, CNT, CFB64, stream,
  or NULL.
- `mac`: HMAC hash of the record MAC (MD5, SHA = SHA-1, SHA256, SHA384, SM3, GOSTR3411), OMAC or
  IMIT (GOST), "AEAD" for AEAD modes, NULL for TLS_NULL_WITH_NULL_NULL.
- `bits`: effective symmetric key bits: 40 / 56 for export ciphers, 56 for DES, 112 for 3DES
  (168-bit key, 112-bit strength), 0 for NULL; 0 and meaningless when `known` is False or for
  SCSV/GREASE rows.
- flags: `null_cipher` (no confidentiality, including the RFC 9150 integrity-only TLS 1.3 suites),
  `export`, `anonymous` (auth anon or NULL), `rc4`, `des` (single DES incl. 40-bit), `triple_des`,
  `cbc`, `aead`, `forward_secrecy`, `tls13`, `scsv`, `known`, `grease`, `iana`, `sslv2`.
  `forward_secrecy` is True for ephemeral (EC)DH key exchange (DHE, ECDHE, DHE_PSK, ECDHE_PSK,
  DH_anon, ECDH_anon, TLCP ECDHE), the PAKEs with ephemeral secrets (SRP, ECCPWD, ECJPAKE), and
  every TLS 1.3 suite: a TLS 1.3 session resumed with psk_ke only has none, which the suite
  cannot show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

__all__ = [
    "CipherSuite",
    "all_sslv2",
    "all_suites",
    "as_rows",
    "is_grease",
    "lookup",
    "lookup_name",
    "lookup_sslv2",
]


@dataclass(frozen=True, slots=True)
class CipherSuite:
    """One cipher suite (or SSLv2 cipher kind) and what it is made of."""

    code: int
    name: str
    kx: str
    auth: str
    enc: str
    mode: str
    mac: str
    bits: int
    null_cipher: bool
    export: bool
    anonymous: bool
    rc4: bool
    des: bool
    triple_des: bool
    cbc: bool
    aead: bool
    forward_secrecy: bool
    tls13: bool
    scsv: bool
    known: bool
    grease: bool
    iana: bool
    sslv2: bool = False

    @property
    def hex(self) -> str:
        """The code as written in captures: 0x1301, or 0x010080 for an SSLv2 cipher kind."""
        return f"0x{self.code:06x}" if self.sslv2 and self.code > 0xFFFF else f"0x{self.code:04x}"


# --- the data --------------------------------------------------------------------------------

# IANA TLS Cipher Suites registry: every assigned code point (hex code, IANA name).
_IANA = """
0000 TLS_NULL_WITH_NULL_NULL
0001 TLS_RSA_WITH_NULL_MD5
0002 TLS_RSA_WITH_NULL_SHA
0003 TLS_RSA_EXPORT_WITH_RC4_40_MD5
0004 TLS_RSA_WITH_RC4_128_MD5
0005 TLS_RSA_WITH_RC4_128_SHA
0006 TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5
0007 TLS_RSA_WITH_IDEA_CBC_SHA
0008 TLS_RSA_EXPORT_WITH_DES40_CBC_SHA
0009 TLS_RSA_WITH_DES_CBC_SHA
000a TLS_RSA_WITH_3DES_EDE_CBC_SHA
000b TLS_DH_DSS_EXPORT_WITH_DES40_CBC_SHA
000c TLS_DH_DSS_WITH_DES_CBC_SHA
000d TLS_DH_DSS_WITH_3DES_EDE_CBC_SHA
000e TLS_DH_RSA_EXPORT_WITH_DES40_CBC_SHA
000f TLS_DH_RSA_WITH_DES_CBC_SHA
0010 TLS_DH_RSA_WITH_3DES_EDE_CBC_SHA
0011 TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA
0012 TLS_DHE_DSS_WITH_DES_CBC_SHA
0013 TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA
0014 TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA
0015 TLS_DHE_RSA_WITH_DES_CBC_SHA
0016 TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA
0017 TLS_DH_anon_EXPORT_WITH_RC4_40_MD5
0018 TLS_DH_anon_WITH_RC4_128_MD5
0019 TLS_DH_anon_EXPORT_WITH_DES40_CBC_SHA
001a TLS_DH_anon_WITH_DES_CBC_SHA
001b TLS_DH_anon_WITH_3DES_EDE_CBC_SHA
001e TLS_KRB5_WITH_DES_CBC_SHA
001f TLS_KRB5_WITH_3DES_EDE_CBC_SHA
0020 TLS_KRB5_WITH_RC4_128_SHA
0021 TLS_KRB5_WITH_IDEA_CBC_SHA
0022 TLS_KRB5_WITH_DES_CBC_MD5
0023 TLS_KRB5_WITH_3DES_EDE_CBC_MD5
0024 TLS_KRB5_WITH_RC4_128_MD5
0025 TLS_KRB5_WITH_IDEA_CBC_MD5
0026 TLS_KRB5_EXPORT_WITH_DES_CBC_40_SHA
0027 TLS_KRB5_EXPORT_WITH_RC2_CBC_40_SHA
0028 TLS_KRB5_EXPORT_WITH_RC4_40_SHA
0029 TLS_KRB5_EXPORT_WITH_DES_CBC_40_MD5
002a TLS_KRB5_EXPORT_WITH_RC2_CBC_40_MD5
002b TLS_KRB5_EXPORT_WITH_RC4_40_MD5
002c TLS_PSK_WITH_NULL_SHA
002d TLS_DHE_PSK_WITH_NULL_SHA
002e TLS_RSA_PSK_WITH_NULL_SHA
002f TLS_RSA_WITH_AES_128_CBC_SHA
0030 TLS_DH_DSS_WITH_AES_128_CBC_SHA
0031 TLS_DH_RSA_WITH_AES_128_CBC_SHA
0032 TLS_DHE_DSS_WITH_AES_128_CBC_SHA
0033 TLS_DHE_RSA_WITH_AES_128_CBC_SHA
0034 TLS_DH_anon_WITH_AES_128_CBC_SHA
0035 TLS_RSA_WITH_AES_256_CBC_SHA
0036 TLS_DH_DSS_WITH_AES_256_CBC_SHA
0037 TLS_DH_RSA_WITH_AES_256_CBC_SHA
0038 TLS_DHE_DSS_WITH_AES_256_CBC_SHA
0039 TLS_DHE_RSA_WITH_AES_256_CBC_SHA
003a TLS_DH_anon_WITH_AES_256_CBC_SHA
003b TLS_RSA_WITH_NULL_SHA256
003c TLS_RSA_WITH_AES_128_CBC_SHA256
003d TLS_RSA_WITH_AES_256_CBC_SHA256
003e TLS_DH_DSS_WITH_AES_128_CBC_SHA256
003f TLS_DH_RSA_WITH_AES_128_CBC_SHA256
0040 TLS_DHE_DSS_WITH_AES_128_CBC_SHA256
0041 TLS_RSA_WITH_CAMELLIA_128_CBC_SHA
0042 TLS_DH_DSS_WITH_CAMELLIA_128_CBC_SHA
0043 TLS_DH_RSA_WITH_CAMELLIA_128_CBC_SHA
0044 TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA
0045 TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA
0046 TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA
0067 TLS_DHE_RSA_WITH_AES_128_CBC_SHA256
0068 TLS_DH_DSS_WITH_AES_256_CBC_SHA256
0069 TLS_DH_RSA_WITH_AES_256_CBC_SHA256
006a TLS_DHE_DSS_WITH_AES_256_CBC_SHA256
006b TLS_DHE_RSA_WITH_AES_256_CBC_SHA256
006c TLS_DH_anon_WITH_AES_128_CBC_SHA256
006d TLS_DH_anon_WITH_AES_256_CBC_SHA256
006e TLS_ASCONAEAD128_ASCONHASH256
006f TLS_ASCONAEAD128_SHA256
0070 TLS_AES_128_GCM_ASCONHASH256
0071 TLS_AES_128_CCM_ASCONHASH256
0084 TLS_RSA_WITH_CAMELLIA_256_CBC_SHA
0085 TLS_DH_DSS_WITH_CAMELLIA_256_CBC_SHA
0086 TLS_DH_RSA_WITH_CAMELLIA_256_CBC_SHA
0087 TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA
0088 TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA
0089 TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA
008a TLS_PSK_WITH_RC4_128_SHA
008b TLS_PSK_WITH_3DES_EDE_CBC_SHA
008c TLS_PSK_WITH_AES_128_CBC_SHA
008d TLS_PSK_WITH_AES_256_CBC_SHA
008e TLS_DHE_PSK_WITH_RC4_128_SHA
008f TLS_DHE_PSK_WITH_3DES_EDE_CBC_SHA
0090 TLS_DHE_PSK_WITH_AES_128_CBC_SHA
0091 TLS_DHE_PSK_WITH_AES_256_CBC_SHA
0092 TLS_RSA_PSK_WITH_RC4_128_SHA
0093 TLS_RSA_PSK_WITH_3DES_EDE_CBC_SHA
0094 TLS_RSA_PSK_WITH_AES_128_CBC_SHA
0095 TLS_RSA_PSK_WITH_AES_256_CBC_SHA
0096 TLS_RSA_WITH_SEED_CBC_SHA
0097 TLS_DH_DSS_WITH_SEED_CBC_SHA
0098 TLS_DH_RSA_WITH_SEED_CBC_SHA
0099 TLS_DHE_DSS_WITH_SEED_CBC_SHA
009a TLS_DHE_RSA_WITH_SEED_CBC_SHA
009b TLS_DH_anon_WITH_SEED_CBC_SHA
009c TLS_RSA_WITH_AES_128_GCM_SHA256
009d TLS_RSA_WITH_AES_256_GCM_SHA384
009e TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
009f TLS_DHE_RSA_WITH_AES_256_GCM_SHA384
00a0 TLS_DH_RSA_WITH_AES_128_GCM_SHA256
00a1 TLS_DH_RSA_WITH_AES_256_GCM_SHA384
00a2 TLS_DHE_DSS_WITH_AES_128_GCM_SHA256
00a3 TLS_DHE_DSS_WITH_AES_256_GCM_SHA384
00a4 TLS_DH_DSS_WITH_AES_128_GCM_SHA256
00a5 TLS_DH_DSS_WITH_AES_256_GCM_SHA384
00a6 TLS_DH_anon_WITH_AES_128_GCM_SHA256
00a7 TLS_DH_anon_WITH_AES_256_GCM_SHA384
00a8 TLS_PSK_WITH_AES_128_GCM_SHA256
00a9 TLS_PSK_WITH_AES_256_GCM_SHA384
00aa TLS_DHE_PSK_WITH_AES_128_GCM_SHA256
00ab TLS_DHE_PSK_WITH_AES_256_GCM_SHA384
00ac TLS_RSA_PSK_WITH_AES_128_GCM_SHA256
00ad TLS_RSA_PSK_WITH_AES_256_GCM_SHA384
00ae TLS_PSK_WITH_AES_128_CBC_SHA256
00af TLS_PSK_WITH_AES_256_CBC_SHA384
00b0 TLS_PSK_WITH_NULL_SHA256
00b1 TLS_PSK_WITH_NULL_SHA384
00b2 TLS_DHE_PSK_WITH_AES_128_CBC_SHA256
00b3 TLS_DHE_PSK_WITH_AES_256_CBC_SHA384
00b4 TLS_DHE_PSK_WITH_NULL_SHA256
00b5 TLS_DHE_PSK_WITH_NULL_SHA384
00b6 TLS_RSA_PSK_WITH_AES_128_CBC_SHA256
00b7 TLS_RSA_PSK_WITH_AES_256_CBC_SHA384
00b8 TLS_RSA_PSK_WITH_NULL_SHA256
00b9 TLS_RSA_PSK_WITH_NULL_SHA384
00ba TLS_RSA_WITH_CAMELLIA_128_CBC_SHA256
00bb TLS_DH_DSS_WITH_CAMELLIA_128_CBC_SHA256
00bc TLS_DH_RSA_WITH_CAMELLIA_128_CBC_SHA256
00bd TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA256
00be TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256
00bf TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA256
00c0 TLS_RSA_WITH_CAMELLIA_256_CBC_SHA256
00c1 TLS_DH_DSS_WITH_CAMELLIA_256_CBC_SHA256
00c2 TLS_DH_RSA_WITH_CAMELLIA_256_CBC_SHA256
00c3 TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA256
00c4 TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256
00c5 TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA256
00c6 TLS_SM4_GCM_SM3
00c7 TLS_SM4_CCM_SM3
00ff TLS_EMPTY_RENEGOTIATION_INFO_SCSV
1301 TLS_AES_128_GCM_SHA256
1302 TLS_AES_256_GCM_SHA384
1303 TLS_CHACHA20_POLY1305_SHA256
1304 TLS_AES_128_CCM_SHA256
1305 TLS_AES_128_CCM_8_SHA256
1306 TLS_AEGIS_256_SHA512
1307 TLS_AEGIS_128L_SHA256
5600 TLS_FALLBACK_SCSV
c001 TLS_ECDH_ECDSA_WITH_NULL_SHA
c002 TLS_ECDH_ECDSA_WITH_RC4_128_SHA
c003 TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA
c004 TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA
c005 TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA
c006 TLS_ECDHE_ECDSA_WITH_NULL_SHA
c007 TLS_ECDHE_ECDSA_WITH_RC4_128_SHA
c008 TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA
c009 TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
c00a TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
c00b TLS_ECDH_RSA_WITH_NULL_SHA
c00c TLS_ECDH_RSA_WITH_RC4_128_SHA
c00d TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA
c00e TLS_ECDH_RSA_WITH_AES_128_CBC_SHA
c00f TLS_ECDH_RSA_WITH_AES_256_CBC_SHA
c010 TLS_ECDHE_RSA_WITH_NULL_SHA
c011 TLS_ECDHE_RSA_WITH_RC4_128_SHA
c012 TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA
c013 TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
c014 TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
c015 TLS_ECDH_anon_WITH_NULL_SHA
c016 TLS_ECDH_anon_WITH_RC4_128_SHA
c017 TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA
c018 TLS_ECDH_anon_WITH_AES_128_CBC_SHA
c019 TLS_ECDH_anon_WITH_AES_256_CBC_SHA
c01a TLS_SRP_SHA_WITH_3DES_EDE_CBC_SHA
c01b TLS_SRP_SHA_RSA_WITH_3DES_EDE_CBC_SHA
c01c TLS_SRP_SHA_DSS_WITH_3DES_EDE_CBC_SHA
c01d TLS_SRP_SHA_WITH_AES_128_CBC_SHA
c01e TLS_SRP_SHA_RSA_WITH_AES_128_CBC_SHA
c01f TLS_SRP_SHA_DSS_WITH_AES_128_CBC_SHA
c020 TLS_SRP_SHA_WITH_AES_256_CBC_SHA
c021 TLS_SRP_SHA_RSA_WITH_AES_256_CBC_SHA
c022 TLS_SRP_SHA_DSS_WITH_AES_256_CBC_SHA
c023 TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
c024 TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384
c025 TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256
c026 TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384
c027 TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
c028 TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384
c029 TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256
c02a TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384
c02b TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
c02c TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
c02d TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256
c02e TLS_ECDH_ECDSA_WITH_AES_256_GCM_SHA384
c02f TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
c030 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
c031 TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256
c032 TLS_ECDH_RSA_WITH_AES_256_GCM_SHA384
c033 TLS_ECDHE_PSK_WITH_RC4_128_SHA
c034 TLS_ECDHE_PSK_WITH_3DES_EDE_CBC_SHA
c035 TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA
c036 TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA
c037 TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256
c038 TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384
c039 TLS_ECDHE_PSK_WITH_NULL_SHA
c03a TLS_ECDHE_PSK_WITH_NULL_SHA256
c03b TLS_ECDHE_PSK_WITH_NULL_SHA384
c03c TLS_RSA_WITH_ARIA_128_CBC_SHA256
c03d TLS_RSA_WITH_ARIA_256_CBC_SHA384
c03e TLS_DH_DSS_WITH_ARIA_128_CBC_SHA256
c03f TLS_DH_DSS_WITH_ARIA_256_CBC_SHA384
c040 TLS_DH_RSA_WITH_ARIA_128_CBC_SHA256
c041 TLS_DH_RSA_WITH_ARIA_256_CBC_SHA384
c042 TLS_DHE_DSS_WITH_ARIA_128_CBC_SHA256
c043 TLS_DHE_DSS_WITH_ARIA_256_CBC_SHA384
c044 TLS_DHE_RSA_WITH_ARIA_128_CBC_SHA256
c045 TLS_DHE_RSA_WITH_ARIA_256_CBC_SHA384
c046 TLS_DH_anon_WITH_ARIA_128_CBC_SHA256
c047 TLS_DH_anon_WITH_ARIA_256_CBC_SHA384
c048 TLS_ECDHE_ECDSA_WITH_ARIA_128_CBC_SHA256
c049 TLS_ECDHE_ECDSA_WITH_ARIA_256_CBC_SHA384
c04a TLS_ECDH_ECDSA_WITH_ARIA_128_CBC_SHA256
c04b TLS_ECDH_ECDSA_WITH_ARIA_256_CBC_SHA384
c04c TLS_ECDHE_RSA_WITH_ARIA_128_CBC_SHA256
c04d TLS_ECDHE_RSA_WITH_ARIA_256_CBC_SHA384
c04e TLS_ECDH_RSA_WITH_ARIA_128_CBC_SHA256
c04f TLS_ECDH_RSA_WITH_ARIA_256_CBC_SHA384
c050 TLS_RSA_WITH_ARIA_128_GCM_SHA256
c051 TLS_RSA_WITH_ARIA_256_GCM_SHA384
c052 TLS_DHE_RSA_WITH_ARIA_128_GCM_SHA256
c053 TLS_DHE_RSA_WITH_ARIA_256_GCM_SHA384
c054 TLS_DH_RSA_WITH_ARIA_128_GCM_SHA256
c055 TLS_DH_RSA_WITH_ARIA_256_GCM_SHA384
c056 TLS_DHE_DSS_WITH_ARIA_128_GCM_SHA256
c057 TLS_DHE_DSS_WITH_ARIA_256_GCM_SHA384
c058 TLS_DH_DSS_WITH_ARIA_128_GCM_SHA256
c059 TLS_DH_DSS_WITH_ARIA_256_GCM_SHA384
c05a TLS_DH_anon_WITH_ARIA_128_GCM_SHA256
c05b TLS_DH_anon_WITH_ARIA_256_GCM_SHA384
c05c TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256
c05d TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384
c05e TLS_ECDH_ECDSA_WITH_ARIA_128_GCM_SHA256
c05f TLS_ECDH_ECDSA_WITH_ARIA_256_GCM_SHA384
c060 TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256
c061 TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384
c062 TLS_ECDH_RSA_WITH_ARIA_128_GCM_SHA256
c063 TLS_ECDH_RSA_WITH_ARIA_256_GCM_SHA384
c064 TLS_PSK_WITH_ARIA_128_CBC_SHA256
c065 TLS_PSK_WITH_ARIA_256_CBC_SHA384
c066 TLS_DHE_PSK_WITH_ARIA_128_CBC_SHA256
c067 TLS_DHE_PSK_WITH_ARIA_256_CBC_SHA384
c068 TLS_RSA_PSK_WITH_ARIA_128_CBC_SHA256
c069 TLS_RSA_PSK_WITH_ARIA_256_CBC_SHA384
c06a TLS_PSK_WITH_ARIA_128_GCM_SHA256
c06b TLS_PSK_WITH_ARIA_256_GCM_SHA384
c06c TLS_DHE_PSK_WITH_ARIA_128_GCM_SHA256
c06d TLS_DHE_PSK_WITH_ARIA_256_GCM_SHA384
c06e TLS_RSA_PSK_WITH_ARIA_128_GCM_SHA256
c06f TLS_RSA_PSK_WITH_ARIA_256_GCM_SHA384
c070 TLS_ECDHE_PSK_WITH_ARIA_128_CBC_SHA256
c071 TLS_ECDHE_PSK_WITH_ARIA_256_CBC_SHA384
c072 TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256
c073 TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384
c074 TLS_ECDH_ECDSA_WITH_CAMELLIA_128_CBC_SHA256
c075 TLS_ECDH_ECDSA_WITH_CAMELLIA_256_CBC_SHA384
c076 TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256
c077 TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384
c078 TLS_ECDH_RSA_WITH_CAMELLIA_128_CBC_SHA256
c079 TLS_ECDH_RSA_WITH_CAMELLIA_256_CBC_SHA384
c07a TLS_RSA_WITH_CAMELLIA_128_GCM_SHA256
c07b TLS_RSA_WITH_CAMELLIA_256_GCM_SHA384
c07c TLS_DHE_RSA_WITH_CAMELLIA_128_GCM_SHA256
c07d TLS_DHE_RSA_WITH_CAMELLIA_256_GCM_SHA384
c07e TLS_DH_RSA_WITH_CAMELLIA_128_GCM_SHA256
c07f TLS_DH_RSA_WITH_CAMELLIA_256_GCM_SHA384
c080 TLS_DHE_DSS_WITH_CAMELLIA_128_GCM_SHA256
c081 TLS_DHE_DSS_WITH_CAMELLIA_256_GCM_SHA384
c082 TLS_DH_DSS_WITH_CAMELLIA_128_GCM_SHA256
c083 TLS_DH_DSS_WITH_CAMELLIA_256_GCM_SHA384
c084 TLS_DH_anon_WITH_CAMELLIA_128_GCM_SHA256
c085 TLS_DH_anon_WITH_CAMELLIA_256_GCM_SHA384
c086 TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_GCM_SHA256
c087 TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_GCM_SHA384
c088 TLS_ECDH_ECDSA_WITH_CAMELLIA_128_GCM_SHA256
c089 TLS_ECDH_ECDSA_WITH_CAMELLIA_256_GCM_SHA384
c08a TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256
c08b TLS_ECDHE_RSA_WITH_CAMELLIA_256_GCM_SHA384
c08c TLS_ECDH_RSA_WITH_CAMELLIA_128_GCM_SHA256
c08d TLS_ECDH_RSA_WITH_CAMELLIA_256_GCM_SHA384
c08e TLS_PSK_WITH_CAMELLIA_128_GCM_SHA256
c08f TLS_PSK_WITH_CAMELLIA_256_GCM_SHA384
c090 TLS_DHE_PSK_WITH_CAMELLIA_128_GCM_SHA256
c091 TLS_DHE_PSK_WITH_CAMELLIA_256_GCM_SHA384
c092 TLS_RSA_PSK_WITH_CAMELLIA_128_GCM_SHA256
c093 TLS_RSA_PSK_WITH_CAMELLIA_256_GCM_SHA384
c094 TLS_PSK_WITH_CAMELLIA_128_CBC_SHA256
c095 TLS_PSK_WITH_CAMELLIA_256_CBC_SHA384
c096 TLS_DHE_PSK_WITH_CAMELLIA_128_CBC_SHA256
c097 TLS_DHE_PSK_WITH_CAMELLIA_256_CBC_SHA384
c098 TLS_RSA_PSK_WITH_CAMELLIA_128_CBC_SHA256
c099 TLS_RSA_PSK_WITH_CAMELLIA_256_CBC_SHA384
c09a TLS_ECDHE_PSK_WITH_CAMELLIA_128_CBC_SHA256
c09b TLS_ECDHE_PSK_WITH_CAMELLIA_256_CBC_SHA384
c09c TLS_RSA_WITH_AES_128_CCM
c09d TLS_RSA_WITH_AES_256_CCM
c09e TLS_DHE_RSA_WITH_AES_128_CCM
c09f TLS_DHE_RSA_WITH_AES_256_CCM
c0a0 TLS_RSA_WITH_AES_128_CCM_8
c0a1 TLS_RSA_WITH_AES_256_CCM_8
c0a2 TLS_DHE_RSA_WITH_AES_128_CCM_8
c0a3 TLS_DHE_RSA_WITH_AES_256_CCM_8
c0a4 TLS_PSK_WITH_AES_128_CCM
c0a5 TLS_PSK_WITH_AES_256_CCM
c0a6 TLS_DHE_PSK_WITH_AES_128_CCM
c0a7 TLS_DHE_PSK_WITH_AES_256_CCM
c0a8 TLS_PSK_WITH_AES_128_CCM_8
c0a9 TLS_PSK_WITH_AES_256_CCM_8
c0aa TLS_PSK_DHE_WITH_AES_128_CCM_8
c0ab TLS_PSK_DHE_WITH_AES_256_CCM_8
c0ac TLS_ECDHE_ECDSA_WITH_AES_128_CCM
c0ad TLS_ECDHE_ECDSA_WITH_AES_256_CCM
c0ae TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8
c0af TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8
c0b0 TLS_ECCPWD_WITH_AES_128_GCM_SHA256
c0b1 TLS_ECCPWD_WITH_AES_256_GCM_SHA384
c0b2 TLS_ECCPWD_WITH_AES_128_CCM_SHA256
c0b3 TLS_ECCPWD_WITH_AES_256_CCM_SHA384
c0b4 TLS_SHA256_SHA256
c0b5 TLS_SHA384_SHA384
c100 TLS_GOSTR341112_256_WITH_KUZNYECHIK_CTR_OMAC
c101 TLS_GOSTR341112_256_WITH_MAGMA_CTR_OMAC
c102 TLS_GOSTR341112_256_WITH_28147_CNT_IMIT
c103 TLS_GOSTR341112_256_WITH_KUZNYECHIK_MGM_L
c104 TLS_GOSTR341112_256_WITH_MAGMA_MGM_L
c105 TLS_GOSTR341112_256_WITH_KUZNYECHIK_MGM_S
c106 TLS_GOSTR341112_256_WITH_MAGMA_MGM_S
cca8 TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
cca9 TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
ccaa TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256
ccab TLS_PSK_WITH_CHACHA20_POLY1305_SHA256
ccac TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256
ccad TLS_DHE_PSK_WITH_CHACHA20_POLY1305_SHA256
ccae TLS_RSA_PSK_WITH_CHACHA20_POLY1305_SHA256
d001 TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256
d002 TLS_ECDHE_PSK_WITH_AES_256_GCM_SHA384
d003 TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256
d005 TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256"""

# Not in the IANA registry, but deployed and named by Wireshark (see the module docstring).
_DEPLOYED = """
001c SSL_FORTEZZA_KEA_WITH_NULL_SHA
001d SSL_FORTEZZA_KEA_WITH_FORTEZZA_CBC_SHA
0060 TLS_RSA_EXPORT1024_WITH_RC4_56_MD5
0061 TLS_RSA_EXPORT1024_WITH_RC2_CBC_56_MD5
0062 TLS_RSA_EXPORT1024_WITH_DES_CBC_SHA
0063 TLS_DHE_DSS_EXPORT1024_WITH_DES_CBC_SHA
0064 TLS_RSA_EXPORT1024_WITH_RC4_56_SHA
0065 TLS_DHE_DSS_EXPORT1024_WITH_RC4_56_SHA
0066 TLS_DHE_DSS_WITH_RC4_128_SHA
0080 TLS_GOSTR341094_WITH_28147_CNT_IMIT
0081 TLS_GOSTR341001_WITH_28147_CNT_IMIT
0082 TLS_GOSTR341094_WITH_NULL_GOSTR3411
0083 TLS_GOSTR341001_WITH_NULL_GOSTR3411
c0ff TLS_ECJPAKE_WITH_AES_128_CCM_8
cc13 TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD
cc14 TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256_OLD
cc15 TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD
e001 ECDHE_SM1_SM3
e003 ECC_SM1_SM3
e005 IBSDH_SM1_SM3
e007 IBC_SM1_SM3
e009 RSA_SM1_SM3
e00a RSA_SM1_SHA1
e011 ECDHE_SM4_CBC_SM3
e013 ECC_SM4_CBC_SM3
e015 IBSDH_SM4_CBC_SM3
e017 IBC_SM4_CBC_SM3
e019 RSA_SM4_CBC_SM3
e01a RSA_SM4_CBC_SHA1
e01c RSA_SM4_CBC_SHA256
e051 ECDHE_SM4_GCM_SM3
e053 ECC_SM4_GCM_SM3
e055 IBSDH_SM4_GCM_SM3
e057 IBC_SM4_GCM_SM3
e059 RSA_SM4_GCM_SM3
e05a RSA_SM4_GCM_SHA256
e410 TLS_RSA_WITH_ESTREAM_SALSA20_SHA1
e411 TLS_RSA_WITH_SALSA20_SHA1
e412 TLS_ECDHE_RSA_WITH_ESTREAM_SALSA20_SHA1
e413 TLS_ECDHE_RSA_WITH_SALSA20_SHA1
e414 TLS_ECDHE_ECDSA_WITH_ESTREAM_SALSA20_SHA1
e415 TLS_ECDHE_ECDSA_WITH_SALSA20_SHA1
e416 TLS_PSK_WITH_ESTREAM_SALSA20_SHA1
e417 TLS_PSK_WITH_SALSA20_SHA1
e418 TLS_ECDHE_PSK_WITH_ESTREAM_SALSA20_SHA1
e419 TLS_ECDHE_PSK_WITH_SALSA20_SHA1
e41a TLS_RSA_PSK_WITH_ESTREAM_SALSA20_SHA1
e41b TLS_RSA_PSK_WITH_SALSA20_SHA1
e41c TLS_DHE_PSK_WITH_ESTREAM_SALSA20_SHA1
e41d TLS_DHE_PSK_WITH_SALSA20_SHA1
e41e TLS_DHE_RSA_WITH_ESTREAM_SALSA20_SHA1
e41f TLS_DHE_RSA_WITH_SALSA20_SHA1
fefe SSL_RSA_FIPS_WITH_DES_CBC_SHA
feff SSL_RSA_FIPS_WITH_3DES_EDE_CBC_SHA
ffe0 SSL_RSA_OLDFIPS_WITH_3DES_EDE_CBC_SHA
ffe1 SSL_RSA_OLDFIPS_WITH_DES_CBC_SHA"""

# SSLv2 CIPHER-KINDs (3 bytes): code, name, enc, mode, bits, export. Key exchange is always RSA
# and the MAC MD5. 0x080080 (RC4_64), 0xff0800 and 0xff0810 come from Netscape / OpenSSL, not from
# the SSL 2.0 draft.
_SSLV2 = (
    (0x010080, "SSL_CK_RC4_128_WITH_MD5", "RC4_128", "stream", 128, False),
    (0x020080, "SSL_CK_RC4_128_EXPORT40_WITH_MD5", "RC4_40", "stream", 40, True),
    (0x030080, "SSL_CK_RC2_128_CBC_WITH_MD5", "RC2", "CBC", 128, False),
    (0x040080, "SSL_CK_RC2_128_CBC_EXPORT40_WITH_MD5", "RC2", "CBC", 40, True),
    (0x050080, "SSL_CK_IDEA_128_CBC_WITH_MD5", "IDEA", "CBC", 128, False),
    (0x060040, "SSL_CK_DES_64_CBC_WITH_MD5", "DES", "CBC", 56, False),
    (0x0700C0, "SSL_CK_DES_192_EDE3_CBC_WITH_MD5", "3DES_EDE", "CBC", 112, False),
    (0x080080, "SSL_CK_RC4_64_WITH_MD5", "RC4_64", "stream", 64, False),
    (0xFF0800, "SSL_CK_DES_64_CFB64_WITH_MD5_1", "DES", "CFB64", 56, False),
    (0xFF0810, "SSL_CK_NULL", "NULL", "NULL", 0, False),
)

_SCSV = frozenset({0x00FF, 0x5600})

# Suites whose name carries no key exchange: TLS 1.3 (RFC 8446, RFC 8998 SM4, RFC 9150
# integrity-only, RFC 9367 GOST, AEGIS, Ascon).
_TLS13 = frozenset(
    [*range(0x1301, 0x1308), 0x00C6, 0x00C7, 0xC0B4, 0xC0B5, *range(0xC103, 0xC107),
     *range(0x006E, 0x0072)]
)  # fmt: skip

# Left of "_WITH_" (prefix and EXPORT markers removed) -> (kx, auth)
_KX_AUTH: dict[str, tuple[str, str]] = {
    "NULL": ("NULL", "NULL"),
    "RSA": ("RSA", "RSA"),
    "DH_DSS": ("DH", "DSS"),
    "DH_RSA": ("DH", "RSA"),
    "DHE_DSS": ("DHE", "DSS"),
    "DHE_RSA": ("DHE", "RSA"),
    "DH_anon": ("DH", "anon"),
    "KRB5": ("KRB5", "KRB5"),
    "PSK": ("PSK", "PSK"),
    "DHE_PSK": ("DHE_PSK", "PSK"),
    "PSK_DHE": ("DHE_PSK", "PSK"),  # RFC 6655 spells 0xc0aa/0xc0ab this way round
    "RSA_PSK": ("RSA_PSK", "RSA"),
    "ECDHE_PSK": ("ECDHE_PSK", "PSK"),
    "ECDH_ECDSA": ("ECDH", "ECDSA"),
    "ECDHE_ECDSA": ("ECDHE", "ECDSA"),
    "ECDH_RSA": ("ECDH", "RSA"),
    "ECDHE_RSA": ("ECDHE", "RSA"),
    "ECDH_anon": ("ECDH", "anon"),
    "SRP_SHA": ("SRP", "SRP"),
    "SRP_SHA_RSA": ("SRP", "RSA"),
    "SRP_SHA_DSS": ("SRP", "DSS"),
    "ECCPWD": ("ECCPWD", "ECCPWD"),
    "ECJPAKE": ("ECJPAKE", "ECJPAKE"),
    "GOSTR341094": ("GOSTR341094", "GOSTR341094"),
    "GOSTR341001": ("GOSTR341001", "GOSTR341001"),
    "GOSTR341112_256": ("GOSTR341112_256", "GOSTR341012"),
    "FORTEZZA_KEA": ("FORTEZZA_KEA", "FORTEZZA_KEA"),
    "RSA_FIPS": ("RSA", "RSA"),
    "RSA_OLDFIPS": ("RSA", "RSA"),
    # GM/T 0024 (TLCP) names have no "_WITH_": the first word is the key exchange
    "ECDHE": ("ECDHE", "SM2"),
    "ECC": ("ECC", "SM2"),
    "IBSDH": ("IBSDH", "IBC"),
    "IBC": ("IBC", "IBC"),
}

# Bulk cipher at the start of the part right of "_WITH_" -> (enc, mode, bits); "{n}" takes the
# first group. Order matters (CCM_8 before CCM, DES40 / DES_CBC_40 before DES_CBC).
_CIPHERS: tuple[tuple[re.Pattern[str], str, str, int | None], ...] = tuple(
    (re.compile(p), e, m, b)
    for p, e, m, b in (
        (r"NULL", "NULL", "NULL", 0),
        (r"RC4_(40|56|64|128)", "RC4_{n}", "stream", None),
        (r"RC2_CBC_(40|56)", "RC2", "CBC", None),
        (r"IDEA_CBC", "IDEA", "CBC", 128),
        (r"DES40_CBC", "DES40", "CBC", 40),
        (r"DES_CBC_40", "DES40", "CBC", 40),
        (r"DES_CBC", "DES", "CBC", 56),
        (r"3DES_EDE_CBC", "3DES_EDE", "CBC", 112),
        (r"AES_(128|256)_GCM", "AES_{n}", "GCM", None),
        (r"AES_(128|256)_CCM_8", "AES_{n}", "CCM_8", None),
        (r"AES_(128|256)_CCM", "AES_{n}", "CCM", None),
        (r"AES_(128|256)_CBC", "AES_{n}", "CBC", None),
        (r"CAMELLIA_(128|256)_GCM", "CAMELLIA_{n}", "GCM", None),
        (r"CAMELLIA_(128|256)_CBC", "CAMELLIA_{n}", "CBC", None),
        (r"ARIA_(128|256)_GCM", "ARIA_{n}", "GCM", None),
        (r"ARIA_(128|256)_CBC", "ARIA_{n}", "CBC", None),
        (r"SEED_CBC", "SEED", "CBC", 128),
        (r"CHACHA20_POLY1305", "CHACHA20", "POLY1305", 256),
        (r"SM4_GCM", "SM4", "GCM", 128),
        (r"SM4_CCM", "SM4", "CCM", 128),
        (r"SM4_CBC", "SM4", "CBC", 128),
        (r"SM1", "SM1", "CBC", 128),
        (r"(KUZNYECHIK|MAGMA)_CTR", "{n}", "CTR", 256),
        (r"(KUZNYECHIK|MAGMA)_MGM_L", "{n}", "MGM_L", 256),
        (r"(KUZNYECHIK|MAGMA)_MGM_S", "{n}", "MGM_S", 256),
        (r"28147_CNT", "GOST28147", "CNT", 256),
        (r"AEGIS_256", "AEGIS_256", "AEGIS", 256),
        (r"AEGIS_128L", "AEGIS_128L", "AEGIS", 128),
        (r"ASCONAEAD128", "ASCON128", "ASCON", 128),
        (r"ESTREAM_SALSA20", "ESTREAM_SALSA20", "stream", 256),
        (r"SALSA20", "SALSA20", "stream", 256),
        (r"FORTEZZA_CBC", "FORTEZZA", "CBC", 80),
        (r"SHA(256|384)(?=_SHA)", "NULL", "NULL", 0),  # RFC 9150 TLS_SHA256_SHA256: integrity only
    )
)

_AEAD_MODES = frozenset({"GCM", "CCM", "CCM_8", "POLY1305", "MGM_L", "MGM_S", "AEGIS", "ASCON"})
_MACS = frozenset({"MD5", "SHA", "SHA256", "SHA384", "SM3", "OMAC", "IMIT", "GOSTR3411", "NULL"})
_FS_KX = frozenset({"DHE", "ECDHE", "DHE_PSK", "ECDHE_PSK", "SRP", "ECCPWD", "ECJPAKE"})


# --- building the table ------------------------------------------------------------------------


def _parse_name(code: int, name: str) -> tuple[str, str, str, str, str, int]:
    """(kx, auth, enc, mode, mac, bits) from a suite name; ValueError if it does not parse."""
    if "_WITH_" in name:
        left, right = name.split("_WITH_", 1)
        left = left.removeprefix("TLS_").removeprefix("SSL_")
        left = left.replace("_EXPORT1024", "").replace("_EXPORT", "")
        kx, auth = _KX_AUTH[left]
    elif code in _TLS13:
        kx, auth, right = "any", "any", name.removeprefix("TLS_")
    else:  # GM/T 0024: KX_CIPHER_MAC
        left, right = name.split("_", 1)
        kx, auth = _KX_AUTH[left]
    if code in _TLS13:
        kx = auth = "any"
    for pattern, enc, mode, bits in _CIPHERS:
        m = pattern.match(right)
        if m is None:
            continue
        group = m.group(1) if m.groups() else ""
        enc = enc.replace("{n}", group)
        nbits = int(group) if bits is None else bits
        rest = right[m.end() :].lstrip("_")
        mac = "SHA" if rest == "SHA1" else rest
        if mode in _AEAD_MODES:
            mac = "AEAD"
        elif mac not in _MACS:
            raise ValueError(f"{name}: unexpected MAC {rest!r}")
        return kx, auth, enc, mode, mac, nbits
    raise ValueError(f"{name}: unknown bulk cipher in {right!r}")


def _placeholder(
    code: int,
    name: str,
    *,
    scsv: bool = False,
    known: bool,
    grease: bool = False,
    iana: bool,
    sslv2: bool = False,
) -> CipherSuite:
    """A row with no algorithms: SCSV, GREASE or unknown."""
    return CipherSuite(
        code=code, name=name, kx="", auth="", enc="", mode="", mac="", bits=0, null_cipher=False,
        export=False, anonymous=False, rc4=False, des=False, triple_des=False, cbc=False,
        aead=False, forward_secrecy=False, tls13=False, scsv=scsv, known=known, grease=grease,
        iana=iana, sslv2=sslv2,
    )  # fmt: skip


def _make(code: int, name: str, iana: bool) -> CipherSuite:
    if code in _SCSV:
        return _placeholder(code, name, scsv=True, known=True, grease=False, iana=iana)
    kx, auth, enc, mode, mac, bits = _parse_name(code, name)
    return CipherSuite(
        code=code,
        name=name,
        kx=kx,
        auth=auth,
        enc=enc,
        mode=mode,
        mac=mac,
        bits=bits,
        null_cipher=enc == "NULL",
        export="_EXPORT" in name,
        anonymous=auth in ("anon", "NULL"),
        rc4=enc.startswith("RC4"),
        des=enc in ("DES", "DES40"),
        triple_des=enc == "3DES_EDE",
        cbc=mode == "CBC",
        aead=mode in _AEAD_MODES,
        forward_secrecy=kx == "any" or kx in _FS_KX or auth == "anon",
        tls13=code in _TLS13,
        scsv=False,
        known=True,
        grease=False,
        iana=iana,
    )


def _rows(text: str) -> list[tuple[int, str]]:
    out = []
    for line in text.split("\n"):
        if line:
            code, name = line.split(" ")
            out.append((int(code, 16), name))
    return out


def _build() -> tuple[dict[int, CipherSuite], dict[int, CipherSuite]]:
    table: dict[int, CipherSuite] = {}
    for text, iana in ((_IANA, True), (_DEPLOYED, False)):
        for code, name in _rows(text):
            if code in table:
                raise ValueError(f"duplicate cipher suite code 0x{code:04x}")
            table[code] = _make(code, name, iana)
    v2: dict[int, CipherSuite] = {}
    for code, name, enc, mode, bits, export in _SSLV2:
        v2[code] = CipherSuite(
            code, name, "RSA", "RSA", enc, mode, "MD5" if enc != "NULL" else "NULL", bits,
            null_cipher=enc == "NULL", export=export, anonymous=False, rc4=enc.startswith("RC4"),
            des=enc == "DES", triple_des=enc == "3DES_EDE", cbc=mode == "CBC", aead=False,
            forward_secrecy=False, tls13=False, scsv=False, known=True, grease=False, iana=False,
            sslv2=True,
        )  # fmt: skip
    return table, v2


_TABLE, _SSLV2_TABLE = _build()
_BY_NAME = {s.name: s for s in (*_TABLE.values(), *_SSLV2_TABLE.values())}
_ALL = tuple(sorted(_TABLE.values(), key=lambda s: s.code))
_ALL_V2 = tuple(sorted(_SSLV2_TABLE.values(), key=lambda s: s.code))


def is_grease(code: int) -> bool:
    """True for the RFC 8701 GREASE values 0x0a0a, 0x1a1a, ..., 0xfafa."""
    return 0 <= code <= 0xFFFF and (code & 0x0F0F) == 0x0A0A and (code >> 8) == (code & 0xFF)


# GREASE values are reserved in the IANA registry (RFC 8701): known, iana, but no algorithms.
_GREASE = {
    c: _placeholder(c, "GREASE", known=True, grease=True, iana=True) for c in range(0x0A0A, 0x10000, 0x1010)
}


def _unknown(code: int, sslv2: bool) -> CipherSuite:
    # Made afresh each time (no memo: unassigned codes are rare, and a memo shared by every
    # analysis of the process is what dissect/ avoids; a hostile hello only costs the work).
    width = 6 if sslv2 and code > 0xFFFF else 4
    return _placeholder(code, f"unknown_0x{code:0{width}x}", known=False, iana=False, sslv2=sslv2)


# --- API -----------------------------------------------------------------------------------------


def lookup(code: int) -> CipherSuite:
    """The suite for a 2-byte code; GREASE and unassigned codes give placeholder rows. Never raises."""
    suite = _TABLE.get(code)
    if suite is not None:
        return suite
    grease = _GREASE.get(code)
    if grease is not None:
        return grease
    return _unknown(code, False)


def lookup_sslv2(code: int) -> CipherSuite:
    """The SSLv2 CIPHER-KIND for a 3-byte code from an SSLv2(-compatible) ClientHello.

    Codes 0x00XXXX are TLS suites carried in an SSLv2-format hello and give `lookup(code)`.
    Never raises.
    """
    if 0 <= code <= 0xFFFF:
        return lookup(code)
    suite = _SSLV2_TABLE.get(code)
    return suite if suite is not None else _unknown(code, True)


def lookup_name(name: str) -> CipherSuite | None:
    """The suite (or SSLv2 kind) with this exact name, or None."""
    return _BY_NAME.get(name)


def all_suites() -> tuple[CipherSuite, ...]:
    """Every known 2-byte suite (IANA-assigned and deployed extras), by code."""
    return _ALL


def all_sslv2() -> tuple[CipherSuite, ...]:
    """Every known SSLv2 cipher kind, by code."""
    return _ALL_V2


def as_rows(include_sslv2: bool = False) -> list[dict[str, object]]:
    """The table as rows (one dict per suite: its fields plus a `hex` column). Building a frame
    from them is the caller's business: dissect/ does not import pandas."""
    suites = _ALL + _ALL_V2 if include_sslv2 else _ALL
    names = [f.name for f in fields(CipherSuite)]
    return [{"code": s.code, "hex": s.hex, **{n: getattr(s, n) for n in names if n != "code"}} for s in suites]
