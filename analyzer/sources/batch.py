"""A batch of packets: one byte buffer plus numpy arrays, the unit every later layer works on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Link types (DLT / LINKTYPE values) the decoder understands.
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_PPP = 9
LINKTYPE_RAW_12 = 12
LINKTYPE_RAW_14 = 14
LINKTYPE_PPP_HDLC = 50
LINKTYPE_IEEE802_11 = 105
LINKTYPE_IEEE802_11_RADIOTAP = 127
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_NFLOG = 239
LINKTYPE_LINUX_SLL2 = 276

SUPPORTED_LINKTYPES = frozenset({
    LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_PPP, LINKTYPE_RAW_12, LINKTYPE_RAW_14,
    LINKTYPE_PPP_HDLC, LINKTYPE_RAW, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_IPV4,
    LINKTYPE_IPV6, LINKTYPE_NFLOG, LINKTYPE_LINUX_SLL2, LINKTYPE_IEEE802_11, LINKTYPE_IEEE802_11_RADIOTAP,
})  # fmt: skip


@dataclass(slots=True)
class Problem:
    """A non-fatal reading problem (the reader stopped early or skipped something)."""

    source: str
    offset: int | None
    kind: str
    detail: str
    fatal_in_strict: bool = True


@dataclass(slots=True)
class PacketBatch:
    """Packets read from one source.

    `buf` holds the raw bytes; packet i is buf[offset[i] : offset[i] + caplen[i]]. `ts_ns` is
    nanoseconds since the epoch. `wirelen` is the original length on the wire (larger than
    caplen when the packet was cut by snaplen). `linktype` is per packet because pcapng
    interfaces differ.
    """

    source: str
    buf: np.ndarray  # uint8
    offset: np.ndarray  # int64
    caplen: np.ndarray  # int32
    wirelen: np.ndarray  # int32
    ts_ns: np.ndarray  # int64
    linktype: np.ndarray  # int16
    first_index: int = 0  # packet number of the first packet in its source (0-based)
    problems: list[Problem] = field(default_factory=list)
    # NSS key log text of the pcapng Decryption Secrets Blocks read with this batch (TLS secrets:
    # never shown, so not in the repr); analyzer.keylog parses it, the engine hands it to the run.
    secrets: list[bytes] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    def packet(self, i: int) -> bytes:
        o = int(self.offset[i])
        return bytes(self.buf[o : o + int(self.caplen[i])])

    @staticmethod
    def empty(source: str) -> PacketBatch:
        return PacketBatch(
            source=source,
            buf=np.zeros(0, np.uint8),
            offset=np.zeros(0, np.int64),
            caplen=np.zeros(0, np.int32),
            wirelen=np.zeros(0, np.int32),
            ts_ns=np.zeros(0, np.int64),
            linktype=np.zeros(0, np.int16),
        )
