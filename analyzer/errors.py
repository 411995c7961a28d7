"""The package's own exceptions. Parsers raise only these; the CLI turns them into one-line errors."""

from __future__ import annotations


class IntransitError(Exception):
    """Base class of every error the package raises on purpose."""


class CaptureError(IntransitError):
    """A capture file cannot be read (wrong magic, corrupt header, unreadable).

    `offset` is the byte offset in the (decompressed) stream where the problem was found.
    """

    def __init__(self, path: str, offset: int | None, message: str) -> None:
        self.path = path
        self.offset = offset
        self.message = message
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{path}{where}: {message}")


class ParseError(IntransitError):
    """Bytes from the wire do not follow the protocol. Becomes an `anomalies` row, never a crash."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        super().__init__(message if offset is None else f"{message} (at byte {offset})")


class NeedMoreData(IntransitError):
    """The bytes end before the structure does (a prefix cut by the budget, a gap or the capture end)."""

    def __init__(self, needed: int | None = None) -> None:
        self.needed = needed
        super().__init__("need more data" if needed is None else f"need {needed} more bytes")


class UsageError(IntransitError):
    """A bad option value or combination from the user."""
