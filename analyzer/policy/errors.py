"""The policy layer's one error: a zones, profile or suppressions file (or option) that cannot be used.

It is a `UsageError`, so the CLI turns it into one line (naming the file and the problem) and exit
code 2; it never carries a traceback to the user.
"""

from __future__ import annotations

from analyzer.errors import UsageError

__all__ = ["PolicyError"]


class PolicyError(UsageError):
    """A policy input (zones TOML, profile TOML, suppressions TOML, CIDR, option value) is invalid."""
