"""TLS key logs: the NSS key log format (SSLKEYLOGFILE of browsers, curl, OpenSSL's -keylogfile) and
the same text from a pcapng Decryption Secrets Block, reduced to what the handshake decryption reads.

A line is `LABEL <client random, 64 hex digits> <secret, hex>`; `#` starts a comment. Of the labels
(https://www.ietf.org/archive/id/draft-ietf-tls-keylogfile-02.html) only the two handshake traffic
secrets are KEPT: CLIENT_HANDSHAKE_TRAFFIC_SECRET and SERVER_HANDSHAKE_TRAFFIC_SECRET, which decrypt
a TLS 1.3 or QUIC handshake and nothing after it. Every other label (CLIENT_RANDOM, the application
traffic secrets, EXPORTER_SECRET, EARLY_*, ...) is understood and dropped on reading, so the secrets
that would decrypt application data are never held. A line that is not understood is counted (its
number kept, never its text: it may hold a secret), not fatal.

Nothing here prints a secret: `repr` counts sessions, errors name files and line numbers only.
This module is part of the foundation (no layer import): `config` reads key log files with it,
`sources` hands it Decryption Secrets Block text through the engines, `dissect` looks secrets up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from analyzer.errors import UsageError

__all__ = ["CLIENT_HS", "MAX_KEYLOG_BYTES", "SERVER_HS", "KeyLog", "KeyStore", "parse_keylog", "read_keylog"]

CLIENT_HS = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
SERVER_HS = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
KEPT = (CLIENT_HS, SERVER_HS)
# Understood and dropped: what they decrypt is application data (or TLS <= 1.2, not read here).
DROPPED = frozenset({
    "CLIENT_RANDOM", "RSA", "CLIENT_EARLY_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0",
    "EXPORTER_SECRET", "EARLY_EXPORTER_SECRET", "EARLY_EXPORTER_MASTER_SECRET", "ECH_SECRET", "ECH_CONFIG",
})  # fmt: skip
MAX_KEYLOG_BYTES = 256 << 20  # a key log line is ~200 bytes: a million sessions is 200 MB
_HEX = re.compile(rb"[0-9a-fA-F]+")
_SECRET_SIZES = frozenset({32, 48, 64})  # SHA-256 / SHA-384 (/ SHA-512) hash lengths


@dataclass(frozen=True, slots=True)
class KeyLog:
    """Handshake traffic secrets by ClientHello random (32 bytes): (client's, server's), either None.

    `lines`: lines with a label (comments and blank lines not counted); `bad_lines` of them not
    understood, the first at line `first_bad` (1-based) of `source`."""

    secrets: Mapping[bytes, tuple[bytes | None, bytes | None]]
    lines: int = 0
    bad_lines: int = 0
    first_bad: int | None = None
    source: str = ""

    def __repr__(self) -> str:  # never the secrets
        return f"KeyLog({len(self.secrets)} sessions, {self.bad_lines} of {self.lines} lines not understood)"

    def __hash__(self) -> int:
        return hash((len(self.secrets), self.lines, self.bad_lines))

    def __len__(self) -> int:
        return len(self.secrets)

    def get(self, client_random: bytes) -> tuple[bytes | None, bytes | None] | None:
        return self.secrets.get(client_random)

    def merged(self, other: KeyLog) -> KeyLog:
        """Both logs' secrets (a secret given twice: the later one); counts added."""
        return KeyLog(_merge(dict(self.secrets), other.secrets), self.lines + other.lines,
                      self.bad_lines + other.bad_lines,
                      self.first_bad if self.first_bad is not None else other.first_bad,
                      ", ".join(s for s in (self.source, other.source) if s))


def _merge(into: dict[bytes, tuple[bytes | None, bytes | None]],
           more: Mapping[bytes, tuple[bytes | None, bytes | None]]) -> dict[bytes, tuple[bytes | None, bytes | None]]:
    for random, (c, s) in more.items():
        old = into.get(random)
        into[random] = (c, s) if old is None else (c or old[0], s or old[1])
    return into


def parse_keylog(text: bytes | str, source: str = "") -> KeyLog:
    """The handshake secrets of NSS key log text (see the module docstring); never raises for content."""
    data = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text)
    found: dict[bytes, tuple[bytes | None, bytes | None]] = {}
    lines = bad = 0
    first_bad: int | None = None
    for number, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        lines += 1
        parts = line.split()
        label = parts[0].decode("ascii", "replace")
        ok = len(parts) == 3 and all(_HEX.fullmatch(p) for p in parts[1:])
        if ok and label in KEPT:
            random, secret = bytes.fromhex(parts[1].decode()), bytes.fromhex(parts[2].decode())
            ok = len(random) == 32 and len(secret) in _SECRET_SIZES
            if ok:
                entry = found.get(random, (None, None))
                found[random] = (secret, entry[1]) if label == CLIENT_HS else (entry[0], secret)
        elif ok:
            ok = label in DROPPED
        if not ok:
            bad += 1
            if first_bad is None:
                first_bad = number
    return KeyLog(found, lines, bad, first_bad, source)


def read_keylog(path: str | os.PathLike[str]) -> KeyLog:
    """A key log file's handshake secrets. A file that cannot be read, is too large, or has lines
    of which none is a key log line raises UsageError (one line, naming the file, never its content);
    some lines not understood among good ones are counted (`KeyLog.bad_lines`)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read(MAX_KEYLOG_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"key log {name}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_KEYLOG_BYTES:
        raise UsageError(f"key log {name}: larger than {MAX_KEYLOG_BYTES >> 20} MiB")
    log = parse_keylog(data, name)
    if log.lines and log.bad_lines == log.lines:
        raise UsageError(f"key log {name}: not an NSS key log (no line of the form LABEL <client random> <secret>; "
                         f"line {log.first_bad} is the first)")
    return log


def as_keylog(value: object) -> KeyLog | None:
    """`analyze(keylog=...)`: a KeyLog, a path, or a sequence of them (merged); None for none."""
    if value is None or isinstance(value, KeyLog):
        return value
    if isinstance(value, (str, os.PathLike)):
        return read_keylog(value)
    if isinstance(value, bytes) or not isinstance(value, Iterable):
        raise UsageError("keylog must be a path, a sequence of paths or an analyzer.keylog.KeyLog")
    logs = [as_keylog(v) for v in value]
    out: KeyLog | None = None
    for log in logs:
        if log is not None:
            out = log if out is None else out.merged(log)
    return out


class KeyStore:
    """One run's secrets: the given key logs' and those its captures carry (pcapng Decryption
    Secrets Blocks, added as they are read). Looked up by ClientHello random, so a capture's secrets
    decrypt that capture's sessions (and a session cut across rotated files)."""

    __slots__ = ("_secrets", "bad_lines")

    def __init__(self, keylog: KeyLog | None = None) -> None:
        self._secrets: dict[bytes, tuple[bytes | None, bytes | None]] = dict(keylog.secrets) if keylog else {}
        self.bad_lines = 0

    def __repr__(self) -> str:
        return f"KeyStore({len(self._secrets)} sessions)"

    def __len__(self) -> int:
        return len(self._secrets)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def add_text(self, text: bytes) -> KeyLog:
        """Add the secrets of key log text (a Decryption Secrets Block's); returns what was parsed."""
        log = parse_keylog(text)
        _merge(self._secrets, log.secrets)
        self.bad_lines += log.bad_lines
        return log

    def get(self, client_random: bytes) -> tuple[bytes | None, bytes | None] | None:
        return self._secrets.get(client_random)
