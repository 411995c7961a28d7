#!/usr/bin/env python3
"""Print what tshark sees in each capture listed in manifest.json (for captures/README.md):
packets, TCP/UDP conversations, negotiated (D)TLS version and cipher, SNI, offered ALPN, tunnel ids,
QUIC version, alerts.  Usage: summarize.py CAPTURES_DIR"""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Its own table on purpose: this script is the tshark side of the manifest check, so it must not
# borrow the package's names (analyzer.dissect.tls.constants) that the check is about.
VERSIONS = {
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
    0xFEFF: "DTLS 1.0",
    0xFEFD: "DTLS 1.2",
    0xFEFC: "DTLS 1.3",
}
HRR_RANDOM = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
FIELDS = [
    "tls.handshake.type",
    "tls.handshake.version",
    "tls.handshake.extensions.supported_version",
    "tls.handshake.ciphersuite",
    "tls.handshake.extensions_server_name",
    "tls.handshake.extensions_alpn_str",
    "tls.handshake.random",
    "dtls.handshake.type",
    "dtls.handshake.version",
    "dtls.handshake.ciphersuite",
    "dtls.handshake.extensions_server_name",
    "vxlan.vni",
    "geneve.vni",
    "quic.version",
    "tcp.stream",
    "udp.stream",
    "tls.alert_message.desc",
]


def tshark(*args: str) -> str:
    return subprocess.run(["tshark", *args], capture_output=True, text=True, check=False).stdout


def value_names(field: str) -> dict[int, str]:
    names = {}
    for line in tshark("-G", "values").splitlines():
        p = line.split("\t")
        if len(p) == 4 and p[0] == "V" and p[1] == field:
            names[int(p[2])] = p[3]
    return names


def uniq(xs: list[str]) -> str:
    return ",".join(dict.fromkeys(xs)) or "-"


def describe(d: Path, fname: str, facts: dict, names: dict[int, str]) -> str:
    args = ["-n", "-r", str(d / fname)]
    for da in facts.get("tshark_decode_as", []):
        args += ["-d", da]
    for f in FIELDS:
        args += ["-e", f]
    pkts = json.loads(tshark(*args, "-T", "json") or "[]")
    tcp: set[str] = set()
    udp: set[str] = set()
    vni: set[str] = set()
    quic: set[str] = set()
    sv: list[str] = []
    cs: list[str] = []
    sni: list[str] = []
    alpn: list[str] = []
    alerts: list[str] = []
    hrr = False
    for p in pkts:
        f = p["_source"]["layers"]
        tcp.update(f.get("tcp.stream", []))
        udp.update(f.get("udp.stream", []))
        for pre in ("tls", "dtls"):
            types = f.get(f"{pre}.handshake.type", [])
            if "2" in types:
                if HRR_RANDOM in [r.replace(":", "") for r in f.get("tls.handshake.random", [])]:
                    hrr = True
                    continue
                v = f.get(f"{pre}.handshake.extensions.supported_version") or f.get(
                    f"{pre}.handshake.version", []
                )
                sv += [VERSIONS.get(int(x, 0), x) for x in v[-1:]]
                cs += [names.get(int(x, 0), x) for x in f.get(f"{pre}.handshake.ciphersuite", [])[-1:]]
            if "1" in types:
                sni += f.get(f"{pre}.handshake.extensions_server_name", [])
                alpn += f.get("tls.handshake.extensions_alpn_str", [])
        vni.update(f.get("vxlan.vni", []) + f.get("geneve.vni", []))
        quic.update(f.get("quic.version", []))
        alerts += f.get("tls.alert_message.desc", [])
    return (
        f"{fname:30} pkts={len(pkts):<3} tcp={len(tcp)} udp={len(udp)} version={uniq(sv)} "
        f"cipher={uniq(cs)} sni={uniq(sni)} alpn_offered={uniq(alpn)}"
        + (" hrr=yes" if hrr else "")
        + (f" vni={uniq(sorted(str(int(v, 0)) for v in vni))}" if vni else "")
        + (f" quic_version={uniq(sorted(quic))}" if quic else "")
        + (f" alert={uniq(alerts)}" if alerts else "")
    )


def main() -> int:
    d = Path(sys.argv[1])
    manifest = json.loads((d / "manifest.json").read_text())["captures"]
    names = value_names("tls.handshake.ciphersuite")
    with ThreadPoolExecutor(max_workers=4) as pool:
        for line in pool.map(lambda item: describe(d, item[0], item[1], names), manifest.items()):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
