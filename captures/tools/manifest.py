#!/usr/bin/env python3
"""Write captures/manifest.json from the expectations make_captures.sh declared while recording.

Input: a TSV of ``file<TAB>json`` lines (the intended facts of each capture, written next to the
command that made it), the temporary PKI directory, and the captures directory. Certificate names
in ``cert`` / ``cert_chain`` are replaced by facts read from the PEM files (fingerprint, subject,
key, signature hash, validity), so the manifest states what the servers were *configured* with;
tests/captures/test_captures_manifest.py then checks each capture really contains that (with tshark).
"""

import argparse
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PKI_NAMES = [
    "root",
    "int",
    "good",
    "ecdsa",
    "mail",
    "ftp",
    "other",
    "expired",
    "future",
    "rsa1024",
    "sha1",
    "selfsigned",
]


def cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def cert_facts(name: str, pem: bytes, now: dt.datetime) -> dict[str, object]:
    c = x509.load_pem_x509_certificate(pem)
    der = c.public_bytes(serialization.Encoding.DER)
    key = c.public_key()
    facts: dict[str, object] = {"name": name}
    facts["sha256"] = hashlib.sha256(der).hexdigest()
    facts["serial"] = c.serial_number
    facts["subject"] = c.subject.rfc4514_string()
    facts["issuer"] = c.issuer.rfc4514_string()
    facts["subject_cn"] = cn(c.subject)
    facts["issuer_cn"] = cn(c.issuer)
    try:
        san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        facts["san_dns"] = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        facts["san_dns"] = []
    try:
        facts["is_ca"] = c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        facts["is_ca"] = False
    if isinstance(key, rsa.RSAPublicKey):
        facts["key_type"], facts["key_bits"], facts["curve"] = "RSA", key.key_size, None
    elif isinstance(key, ec.EllipticCurvePublicKey):
        facts["key_type"], facts["key_bits"], facts["curve"] = "EC", key.curve.key_size, key.curve.name
    else:  # pragma: no cover - the PKI only makes RSA and EC keys
        facts["key_type"], facts["key_bits"], facts["curve"] = type(key).__name__, None, None
    facts["signature_algorithm"] = c.signature_algorithm_oid._name
    facts["signature_hash"] = c.signature_hash_algorithm.name if c.signature_hash_algorithm else None
    nb, na = c.not_valid_before_utc, c.not_valid_after_utc
    facts["not_before"] = nb.strftime("%Y-%m-%dT%H:%M:%SZ")
    facts["not_after"] = na.strftime("%Y-%m-%dT%H:%M:%SZ")
    facts["validity_days"] = round((na - nb).total_seconds() / 86400, 2)
    facts["self_signed"] = c.subject == c.issuer
    facts["expired"] = na < now
    facts["not_yet_valid"] = nb > now
    return facts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--expect", required=True, type=Path)
    ap.add_argument("--pki", required=True, type=Path)
    ap.add_argument("--captures", required=True, type=Path)
    ap.add_argument("--tools", default="{}", help="JSON object of tool versions")
    ap.add_argument("-o", "--output", required=True, type=Path)
    a = ap.parse_args()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    pki = {n: cert_facts(n, (a.pki / f"{n}.crt").read_bytes(), now) for n in PKI_NAMES}
    captures: dict[str, dict[str, object]] = {}
    for lineno, line in enumerate(a.expect.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fname, _, js = line.partition("\t")
        try:
            facts = json.loads(js)
        except json.JSONDecodeError as e:
            print(f"{a.expect}:{lineno}: bad JSON for {fname}: {e}", file=sys.stderr)
            return 1
        path = a.captures / fname
        if not path.exists():
            print(f"warning: {fname} was not produced", file=sys.stderr)
            continue
        if fname.endswith(".pcapng"):
            facts.setdefault("format", "pcapng")
        elif fname.endswith(".gz"):
            facts.setdefault("format", "pcap.gz")
        else:
            facts.setdefault("format", "pcap")
        if facts["format"] == "pcap":
            facts.setdefault("ts_precision", "us")
            facts.setdefault("linktypes", ["EN10MB"])
        if isinstance(facts.get("cert"), str):
            facts["cert"] = pki[facts["cert"]]
        if "cert_chain" in facts:
            facts["cert_chain"] = [pki[n]["sha256"] for n in facts["cert_chain"]]
        if "keylog" in facts and not (a.captures / str(facts["keylog"])).exists():
            del facts["keylog"]
        captures[fname] = facts
    manifest = {
        "schema": 1,
        "generated_by": "captures/make_captures.sh",
        "recorded_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tools": json.loads(a.tools),
        "notes": [
            "Facts state what the recording configured; tests/captures/test_captures_manifest.py checks them.",
            "cert.expired / cert.not_yet_valid are judged at recorded_at (judge certs at capture time).",
            "cert_chain lists the SHA-256 fingerprints of the certificates the server sent, leaf first.",
            "cert_visible is false for TLS 1.3 / QUIC, where the Certificate message is encrypted.",
        ],
        "pki": pki,
        "captures": captures,
    }
    a.output.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    print(f"wrote {a.output} ({len(captures)} captures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
