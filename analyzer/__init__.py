"""intransit: passive audit of encryption in transit from packet captures.

    >>> import analyzer
    >>> result = analyzer.analyze(["captures/"])
    >>> result.flows[["client_ip", "server_ip", "server_port", "tls_version"]]
"""

from analyzer._version import __version__
from analyzer._warm import warm_up
from analyzer.errors import CaptureError, IntransitError, NeedMoreData, ParseError, UsageError
from analyzer.pipeline import Analysis, Options, analyze
from analyzer.schema import FLOWS, FLOWS_CONTRACT

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
    "warm_up",
]
