"""Which files a run reads: paths named, directories walked, globs expanded - and what was left out.

Nothing is left out without a word. A directory scan opens only regular files (a FIFO in a scanned
directory used to block the run forever), and everything it passes over that could have been a
capture - a FIFO or socket, a hidden file, a `.pcap` whose content is no capture, a directory it
cannot list, a symbolic link to a directory (not followed: it could loop) - comes back as a `Skipped` with the
reason, for a warning, an anomalies row and a `sources` row (fatal under strict). Files that are
plainly not captures (a README, a script, a key log) are left alone silently, as before.

The same capture given twice - `x.pcap` and `x.pcap.gz`, one file under two paths, a path named
twice - is read once: reading both counted every packet of its flows twice. "The same" is decided
by content (the decompressed bytes), never by name: `x.pcap.gz` beside a *different* `x.pcap` used
to be skipped by name and hid a cleartext HTTP flow.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from analyzer.errors import CaptureError
from analyzer.sources.batch import Problem

LEAD_BYTES = 1 << 16  # decompressed bytes hashed for every file; whole streams only on a match
_CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".ntar", ".erf")
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zstd")

PathArg = str | bytes | os.PathLike[str] | os.PathLike[bytes]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A path the scan did not read, and why."""

    path: str  # as given or found (may hold surrogate escapes); `name` is how messages show it
    kind: str
    detail: str
    duplicate_of: str | None = None  # the path read instead (kind "duplicate")

    @property
    def name(self) -> str:
        from analyzer.sources.readers import display_path

        return "<stdin>" if self.path == "-" else display_path(self.path)

    @property
    def fatal_in_strict(self) -> bool:
        return self.kind != "duplicate"  # nothing is lost: the same bytes are read once

    @property
    def status(self) -> str:
        """The `sources` frame's status for this path."""
        return "duplicate" if self.kind == "duplicate" else "skipped"

    def problem(self) -> Problem:
        return Problem(source=self.name, offset=None, kind=self.kind, detail=self.detail,
                       fatal_in_strict=self.fatal_in_strict)


@dataclass(slots=True)
class Scan:
    """The files to read, in order, and what was passed over."""

    files: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def as_path_list(paths: PathArg | Iterable[PathArg]) -> list[str]:
    """One path or many -> a list of str paths. `analyze(b"/p")` used to iterate the bytes."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    return [os.fsdecode(p) for p in paths]  # bytes -> str with surrogate escapes, reversible


def named_like_capture(name: str) -> bool:
    low = name.lower()
    for ext in _COMPRESSED_SUFFIXES:
        if low.endswith(ext):
            low = low[: -len(ext)]
            break
    return low.endswith(_CAPTURE_SUFFIXES)


def _sniff(path: str) -> bytes | None:
    """The first bytes of a regular file (None when it cannot be opened: the reader says why)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(6)
    except OSError:
        return None


def looks_like_capture(path: str) -> bool:
    """True when the file starts like a pcap, a pcapng or a compressed stream."""
    head = _sniff(path)
    return head is None or _capture_head(head)


def _capture_head(head: bytes) -> bool:
    from analyzer.sources import compression
    from analyzer.sources.readers import PCAP_MAGICS, PCAPNG_SHB

    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_SHB or compression.compression_of(head) is not None


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _consider(path: str, name: str, scan: Scan) -> None:
    """A file met in a directory scan or a glob: read it, skip it with a reason, or leave it."""
    try:
        st = os.stat(path)
    except OSError as exc:
        reason = f"cannot read: {exc.strerror or exc}"
        if os.path.islink(path):
            reason += " (a broken symbolic link?)"
        scan.skipped.append(Skipped(path, "unreadable", reason))
        return
    if stat.S_ISDIR(st.st_mode):
        scan.skipped.append(Skipped(path, "directory_not_scanned",
                                    "a directory matched by a pattern: not scanned (name it to scan it)"))
        return
    if not stat.S_ISREG(st.st_mode):
        scan.skipped.append(Skipped(path, "not_regular_file",
                                    f"{_file_kind(st.st_mode)}, not opened in a scan (it could block "
                                    "the run); name it alone to read it as a stream"))
        return
    head = _sniff(path)
    capture = head is None or _capture_head(head)
    if name.startswith("."):
        if capture or named_like_capture(name):
            scan.skipped.append(Skipped(path, "hidden", "hidden file (its name starts with '.'): not "
                                                        "read in a directory scan; name it to read it"))
        return
    if capture:
        scan.files.append(path)
    elif named_like_capture(name):
        shown = f"0x{head.hex()}" if head else "nothing (empty)"
        scan.skipped.append(Skipped(path, "not_a_capture",
                                    f"named like a capture but starts with {shown}: not a pcap, pcapng "
                                    "or compressed stream"))


def _walk(top: str, scan: Scan) -> None:
    def unlistable(exc: OSError) -> None:
        where = exc.filename if isinstance(exc.filename, str) else top
        scan.skipped.append(Skipped(where, "unlistable_directory",
                                    f"cannot list this directory: {exc.strerror or exc}"))

    for root, dirs, files in os.walk(top, onerror=unlistable):
        keep = []
        for d in sorted(dirs):
            full = os.path.join(root, d)
            # hidden directories are walked, as they always were (only hidden files are passed over)
            if os.path.islink(full):
                scan.skipped.append(Skipped(full, "symlink_not_followed",
                                            "symbolic link to a directory: not followed (it could loop); "
                                            "name it to scan it"))
            else:
                keep.append(d)
        dirs[:] = keep
        for name in sorted(files):
            _consider(os.path.join(root, name), name, scan)


def scan_paths(paths: PathArg | Iterable[PathArg], *, dedupe: bool = True) -> Scan:
    """Files named (always tried, FIFOs and pipes included: read as streams), directories walked
    (sorted), globs expanded; '-' stays stdin. With `dedupe`, identical content is kept once."""
    scan = Scan()
    for p in as_path_list(paths):
        if p == "-":
            scan.files.append(p)
        elif os.path.isdir(p):
            _walk(p, scan)
        elif any(c in p for c in "*?[") and not os.path.exists(p):
            import glob

            matches = sorted(glob.glob(p, recursive=True))
            if not matches:
                raise CaptureError(p, None, "no file matches this pattern")
            for m in matches:
                _consider(m, os.path.basename(m), scan)
        else:
            scan.files.append(p)
    if dedupe:
        _dedupe(scan)
    return scan


def expand_paths(paths: PathArg | Iterable[PathArg]) -> list[str]:
    """The files `scan_paths` would read (what it skipped is dropped: use scan_paths to say so)."""
    return scan_paths(paths).files


# ------------------------------------------------------------------------- duplicate content
class _Content:
    """Lazily computed content fingerprints of one regular file (of its decompressed bytes)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lead: tuple[bytes, bool] | bool | None = False  # False: not computed yet
        self._full: bytes | bool | None = False

    def _open(self) -> Any:
        from analyzer.sources.readers import open_capture_stream

        return open_capture_stream(self.path)[0]

    def lead(self) -> tuple[bytes, bool] | None:
        """(hash of the first LEAD_BYTES decompressed bytes, whether that was all of them)."""
        import hashlib  # here: loading OpenSSL costs every run's start-up, and most runs read one file

        if self._lead is False:
            try:
                stream = self._open()
                try:
                    data = _read_upto(stream, LEAD_BYTES + 1)
                finally:
                    stream.close()
                damaged = getattr(stream, "problem", None) is not None
                self._lead = None if damaged else (hashlib.sha256(data[:LEAD_BYTES]).digest(),
                                                   len(data) <= LEAD_BYTES)
            except (OSError, CaptureError):
                self._lead = None  # unreadable: the reader reports it; never a duplicate
        return self._lead if self._lead is not False else None  # type: ignore[return-value]

    def full(self) -> bytes | None:
        if self._full is False:
            lead = self.lead()
            if lead is not None and lead[1]:
                self._full = lead[0]  # the whole stream fitted in the lead
            else:
                import hashlib

                try:
                    stream = self._open()
                    try:
                        h = hashlib.sha256()
                        buf = bytearray(1 << 20)
                        view = memoryview(buf)
                        while n := stream.readinto(view):
                            h.update(view[:n])
                    finally:
                        stream.close()
                    self._full = None if getattr(stream, "problem", None) is not None else h.digest()
                except (OSError, CaptureError):
                    self._full = None
        return self._full  # type: ignore[return-value]


def _read_upto(stream: Any, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    buf = bytearray(min(n, 1 << 16))
    while got < n:
        k = stream.readinto(memoryview(buf)[: n - got])
        if not k:
            break
        parts.append(bytes(buf[:k]))
        got += k
    return b"".join(parts)


def _dedupe(scan: Scan) -> None:
    """Keep the first of every set of paths holding the same capture; the others become Skipped."""
    kept: list[str] = []
    seen_names: dict[str, str] = {}
    seen_inodes: dict[tuple[int, int], str] = {}
    contents: list[_Content] = []  # regular files kept, for the content comparison
    dup: dict[str, str] = {}  # path -> the path read instead
    for path in scan.files:
        if path in seen_names:
            dup_of = seen_names[path]
        else:
            dup_of = None
            seen_names[path] = path
            if path != "-":
                try:
                    st = os.stat(path)
                except OSError:
                    st = None
                if st is not None and stat.S_ISREG(st.st_mode):
                    ident = (st.st_dev, st.st_ino)
                    dup_of = seen_inodes.get(ident)
                    if dup_of is None:
                        seen_inodes[ident] = path
                        contents.append(_Content(path))
        if dup_of is not None:
            dup[path] = dup_of
        else:
            kept.append(path)
    if len(contents) > 1:
        # Hash the leading decompressed bytes of each file; only files whose leads match are
        # hashed whole (rotated or unrelated captures differ in their first packets).
        by_lead: dict[bytes, list[_Content]] = {}
        for c in contents:
            lead = c.lead()
            if lead is not None:
                by_lead.setdefault(lead[0], []).append(c)
        for group in by_lead.values():
            first_by_full: dict[bytes, str] = {}
            for c in group if len(group) > 1 else ():
                full = c.full()
                if full is None:
                    continue
                if full in first_by_full:
                    dup[c.path] = first_by_full[full]
                else:
                    first_by_full[full] = c.path
    if not dup:
        return
    from analyzer.sources.readers import display_path

    scan.files = [p for p in scan.files if p not in dup or dup[p] == p]
    # a path named twice is kept once: the first occurrence stays, the repeats are dropped
    out: list[str] = []
    named: set[str] = set()
    for p in scan.files:
        if p not in named:
            named.add(p)
            out.append(p)
    scan.files = out
    for p, first in dup.items():
        why = ("named twice" if p == first else f"same content as {display_path(first)}")
        scan.skipped.append(Skipped(p, "duplicate", f"{why}: read once, so its packets are not "
                                                    "counted twice", duplicate_of=first))
