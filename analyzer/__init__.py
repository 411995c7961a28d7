"""intransit: passive audit of encryption in transit from packet captures.

    >>> import analyzer
    >>> result = analyzer.analyze(["captures/"])
    >>> result.flows[["client_ip", "server_ip", "server_port", "tls_version"]]

The heavy parts (pandas, numba kernels) load on first use of `analyze` and friends, so that
`intransit --help` and `--version` answer at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analyzer._lazy import lazy_attributes
from analyzer._version import __version__
from analyzer.errors import CaptureError, IntransitError, NeedMoreData, ParseError, UsageError

if TYPE_CHECKING:
    from analyzer._warm import warm_up
    from analyzer.auditor import audit
    from analyzer.config import Options
    from analyzer.dissect import FLOWS
    from analyzer.pipeline import Analysis, analyze
    from analyzer.schema import FLOWS_CONTRACT

_LAZY = {
    "analyze": "analyzer.pipeline",
    "audit": "analyzer.auditor",
    "Analysis": "analyzer.pipeline",
    "Options": "analyzer.config",
    "warm_up": "analyzer._warm",
    "FLOWS": "analyzer.dissect",
    "FLOWS_CONTRACT": "analyzer.schema",
}

__all__ = [
    "FLOWS",
    "FLOWS_CONTRACT",
    "Analysis",
    "CaptureError",
    "IntransitError",
    "NeedMoreData",
    "Options",
    "ParseError",
    "UsageError",
    "__version__",
    "analyze",
    "audit",
    "warm_up",
]


__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
