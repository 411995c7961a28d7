"""A bounded reader of BER (ITU-T X.690) for the dissectors of BER protocols (LDAP, SNMP).

Not a dissector. Only what these protocols use: one-byte tags (a multi-byte tag, 0x1f, is refused),
definite lengths in short form or long form of at most 4 length bytes (LDAP, RFC 4511 5.1, and
SNMP forbid the indefinite form), and INTEGER / ENUMERATED values of at most 8 bytes. Every read
checks that the element lies within its container: wire data is hostile, so a length is never
trusted beyond the bytes at hand.
"""

from __future__ import annotations

__all__ = ["Element", "children", "integer", "read"]

SEQUENCE, INTEGER, OCTET_STRING, ENUMERATED = 0x30, 0x02, 0x04, 0x0A


class Element:
    """One TLV: its tag byte, and where its value starts and ends in the buffer."""

    __slots__ = ("end", "start", "tag")

    def __init__(self, tag: int, start: int, end: int) -> None:
        self.tag = tag
        self.start = start
        self.end = end


def read(data: bytes, pos: int, limit: int | None = None) -> Element | None:
    """The element at `pos`, which must end by `limit` (default: the end of `data`); None when it is
    malformed or does not fit (a truncated element)."""
    if limit is None:
        limit = len(data)
    if pos + 2 > limit:
        return None
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        return None
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        count = n & 0x7F
        if count == 0 or count > 4 or pos + count > limit:
            return None
        n = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + n > limit:
        return None
    return Element(tag, pos, pos + n)


def header_length(data: bytes, pos: int) -> tuple[int, int] | None:
    """(tag, total length of the element) from its header alone, without requiring its value to be
    present (to frame a message whose end is beyond the bytes at hand); None when malformed."""
    if pos + 2 > len(data) or data[pos] & 0x1F == 0x1F:
        return None
    n = data[pos + 1]
    head = 2
    if n & 0x80:
        count = n & 0x7F
        if count == 0 or count > 4 or pos + 2 + count > len(data):
            return None
        n = int.from_bytes(data[pos + 2:pos + 2 + count], "big")
        head += count
    return data[pos], head + n


def children(data: bytes, parent: Element, most: int = 64) -> list[Element]:
    """The elements inside a constructed element, at most `most`; stops at the first malformed one."""
    out: list[Element] = []
    pos = parent.start
    while pos < parent.end and len(out) < most:
        child = read(data, pos, parent.end)
        if child is None:
            break
        out.append(child)
        pos = child.end
    return out


def integer(data: bytes, element: Element) -> int | None:
    """The value of an INTEGER or ENUMERATED element (two's complement), None when empty or longer
    than 8 bytes."""
    if not 0 < element.end - element.start <= 8:
        return None
    return int.from_bytes(data[element.start:element.end], "big", signed=True)
