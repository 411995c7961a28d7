#!/usr/bin/env python3
"""Print what tshark sees in each capture (for captures/README.md): packets, conversations,
negotiated (D)TLS version and cipher, SNI, ALPN, tunnel ids. Usage: summarize.py CAPTURES_DIR"""

import json
import subprocess
import sys
from pathlib import Path

VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3",
            0xFEFF: "DTLS 1.0", 0xFEFD: "DTLS 1.2", 0xFEFC: "DTLS 1.3"}
FIELDS = ["tls.handshake.type", "tls.handshake.version", "tls.handshake.extensions.supported_version",
          "tls.handshake.ciphersuite", "tls.handshake.extensions_server_name", "tls.handshake.extensions_alpn_str",
          "dtls.handshake.type", "dtls.handshake.version", "dtls.handshake.ciphersuite", "vxlan.vni", "geneve.vni",
          "quic.version", "tcp.stream", "udp.stream", "tls.alert_message.desc"]


def tshark(*args: str) -> str:
    return subprocess.run(["tshark", *args], capture_output=True, text=True, check=False).stdout


def cipher_names() -> dict[int, str]:
    names = {}
    for line in tshark("-G", "values").splitlines():
        p = line.split("\t")
        if len(p) == 4 and p[0] == "V" and p[1] == "tls.handshake.ciphersuite":
            names[int(p[2])] = p[3]
    return names


def main() -> int:
    d = Path(sys.argv[1])
    manifest = json.loads((d / "manifest.json").read_text())["captures"]
    names = cipher_names()
    for fname, facts in manifest.items():
        args = ["-r", str(d / fname)]
        for da in facts.get("tshark_decode_as", []):
            args += ["-d", da]
        out = tshark(*args, "-T", "json", *sum((["-e", f] for f in FIELDS), []))
        pkts = json.loads(out or "[]")
        tcp, udp, sv, cs, sni, alpn, vni, quic, alerts = set(), set(), [], [], [], [], set(), set(), []
        for p in pkts:
            f = p["_source"]["layers"]
            tcp.update(f.get("tcp.stream", []))
            udp.update(f.get("udp.stream", []))
            for pre in ("tls", "dtls"):
                types = f.get(f"{pre}.handshake.type", [])
                if "2" in types:
                    v = f.get(f"{pre}.handshake.extensions.supported_version") or f.get(f"{pre}.handshake.version", [])
                    if pre == "tls" and "1" in types and f.get(f"{pre}.handshake.version"):
                        v = f.get(f"{pre}.handshake.version", [])[-1:]
                    sv += [VERSIONS.get(int(x, 0), x) for x in v[-1:]]
                    cs += [names.get(int(x, 0), x) for x in f.get(f"{pre}.handshake.ciphersuite", [])[-1:]]
                if "1" in types:
                    sni += f.get(f"{pre}.handshake.extensions_server_name", [])
                    alpn += f.get("tls.handshake.extensions_alpn_str", [])
            vni.update(f.get("vxlan.vni", []) + f.get("geneve.vni", []))
            quic.update(f.get("quic.version", []))
            alerts += f.get("tls.alert_message.desc", [])
        uniq = lambda xs: ",".join(dict.fromkeys(xs)) or "-"  # noqa: E731
        print(f"{fname:32} pkts={len(pkts):<4} tcp_conv={len(tcp)} udp_conv={len(udp)} version={uniq(sv)} "
              f"cipher={uniq(cs)} sni={uniq(sni)} alpn_offered={uniq(alpn)}"
              + (f" vni={uniq(sorted(vni))}" if vni else "") + (f" quic={uniq(sorted(quic))}" if quic else "")
              + (f" alerts={uniq(alerts)}" if alerts else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
