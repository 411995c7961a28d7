"""Test helper: ancillary data (struct cmsghdr) written into the control buffers recvmmsg fills."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def cmsg_writer(ctl: np.ndarray) -> Callable[[int, int, int, int, bytes], int]:
    """`put(row, at, level, kind, data)`: one control message at byte `at` of message `row` of `ctl`
    (uint8, one row per message, as analyzer.sources._mmsg lays them out: 64-bit cmsg_len, then
    level and type, data aligned to 8 bytes); returns where the next one starts."""
    words = ctl.view("<u4")

    def put(row: int, at: int, level: int, kind: int, data: bytes) -> int:
        words[row, at // 4] = 16 + len(data)
        words[row, at // 4 + 2], words[row, at // 4 + 3] = level, kind
        ctl[row, at + 16:at + 16 + len(data)] = np.frombuffer(data, np.uint8)
        return at + ((16 + len(data) + 7) & ~7)

    return put
