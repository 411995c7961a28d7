"""Profiles: which rules run, at which severity, with which options, as data (TOML).

Built-in profiles live in `analyzer/policy/builtin_profiles/*.toml`:

- ``sec09`` (default): AWS Well-Architected SEC09-BP02, "Enforce encryption in transit".
- ``strict``: everything on, CBC and non-AEAD suites flagged, higher severities.
- ``nist-800-52r2``: NIST SP 800-52 Rev. 2 (TLS 1.2 shall, 1.3 should; CBC allowed; no
  certificate lifetime rule).
- ``mozilla-intermediate``: Mozilla Server Side TLS 6.0 intermediate (TLS 1.2/1.3, ECDHE with AEAD
  only, certificates at most 366 days).
- ``pci-dss-4``: PCI DSS 4.0 requirement 4.2.1 and Appendix A2 (no SSL/early TLS, trusted and
  unexpired certificates, strong cryptography over public networks).

A profile file::

    name = "my-profile"
    extends = "sec09"            # a built-in name or a path (relative to this file); optional
    description = "..."
    [verdict]
    fail_at = "high"             # a flow with an unsuppressed finding at this severity or above: fail
    warn_at = "low"              # ... at this severity or above (below fail_at): warn

    [rules.cert-expiring]
    severity = "high"
    options = { runway_days = 60 }

    [rules.unknown-egress]
    enabled = false

Every rule not named keeps its state from the profile it extends (or its own default: enabled, at
its declared severity and options). Unknown rule ids, option names, option types and severities
are errors naming the file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.policy._rule import SEVERITIES
from analyzer.policy.errors import PolicyError
from analyzer.policy.rules import RULES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BUILTIN_PROFILES", "DEFAULT_PROFILE", "Profile", "RuleSetting", "load_profile", "rules_table"]

BUILTIN_PROFILES = ("sec09", "strict", "nist-800-52r2", "mozilla-intermediate", "pci-dss-4")
DEFAULT_PROFILE = "sec09"
_MAX_DEPTH = 8


@dataclass(frozen=True)
class RuleSetting:
    """A rule's state in a profile."""

    enabled: bool
    severity: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class Profile:
    """A resolved profile: every rule's setting, and the verdict thresholds."""

    name: str
    description: str
    settings: Mapping[str, RuleSetting]
    fail_at: str = "high"
    warn_at: str = "low"
    references: tuple[str, ...] = field(default_factory=tuple)

    def enabled(self) -> list[str]:
        """Ids of the enabled rules, in the catalogue's order."""
        return [rid for rid in RULES if self.settings[rid].enabled]


def _defaults() -> dict[str, RuleSetting]:
    return {rid: RuleSetting(True, r.severity, dict(r.options)) for rid, r in RULES.items()}


def _check_option(where: str, rid: str, name: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int | float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif isinstance(default, list):
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise PolicyError(f"{where}: rule {rid}: option {name} must be like {default!r}, not {value!r}")
    return value


def _apply(doc: Mapping[str, Any], base: dict[str, RuleSetting], where: str) -> dict[str, RuleSetting]:
    rules = doc.get("rules", {})
    if not isinstance(rules, dict):
        raise PolicyError(f"{where}: [rules] must be a table")
    out = dict(base)
    for rid, spec in rules.items():
        if rid not in RULES:
            raise PolicyError(f"{where}: unknown rule {rid!r} (see `intransit rules`)")
        if not isinstance(spec, dict):
            raise PolicyError(f"{where}: rules.{rid} must be a table")
        bad = set(spec) - {"enabled", "severity", "options"}
        if bad:
            raise PolicyError(f"{where}: rules.{rid}: unknown key(s) {sorted(bad)}")
        cur = out[rid]
        enabled = spec.get("enabled", cur.enabled)
        if not isinstance(enabled, bool):
            raise PolicyError(f"{where}: rules.{rid}.enabled must be true or false")
        severity = spec.get("severity", cur.severity)
        if severity not in SEVERITIES:
            raise PolicyError(f"{where}: rules.{rid}.severity must be one of {', '.join(SEVERITIES)}")
        options = dict(cur.options)
        given = spec.get("options", {})
        if not isinstance(given, dict):
            raise PolicyError(f"{where}: rules.{rid}.options must be a table")
        defaults = RULES[rid].options
        for name, value in given.items():
            if name not in defaults:
                raise PolicyError(f"{where}: rule {rid} has no option {name!r} (options: {sorted(defaults)})")
            options[name] = _check_option(where, rid, name, value, defaults[name])
        out[rid] = RuleSetting(enabled, severity, options)
    return out


def _read(source: str | Path) -> tuple[dict[str, Any], str, Path | None]:
    """(document, where, directory) of a built-in profile name or a profile file path."""
    if isinstance(source, str) and source in BUILTIN_PROFILES:
        folder = resources.files("analyzer.policy").joinpath("builtin_profiles")
        raw = folder.joinpath(f"{source}.toml").read_text("utf-8")
        where = f"profile {source}"
        directory = None
    else:
        path = Path(source)
        if not path.is_file():
            raise PolicyError(f"{source}: no such profile (built-in: {', '.join(BUILTIN_PROFILES)})")
        try:
            raw = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{source}: cannot read profile: {exc}") from exc
        where = str(path)
        directory = path.parent
    try:
        return tomllib.loads(raw), where, directory
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{where}: not valid TOML: {exc}") from exc


def load_profile(source: str | Path | Profile | None = None, _depth: int = 0) -> Profile:
    """A built-in profile by name, or a user's profile TOML file (format in the module docstring)."""
    if isinstance(source, Profile):
        return source
    if _depth > _MAX_DEPTH:
        raise PolicyError(f"{source}: profiles extend each other too deeply (a cycle?)")
    doc, where, directory = _read(DEFAULT_PROFILE if source is None else source)
    bad = set(doc) - {"name", "extends", "description", "references", "verdict", "rules"}
    if bad:
        raise PolicyError(f"{where}: unknown key(s) {sorted(bad)}")
    parent_ref = doc.get("extends")
    if parent_ref:
        if not isinstance(parent_ref, str):
            raise PolicyError(f"{where}: extends must be a profile name or path")
        if parent_ref not in BUILTIN_PROFILES and directory is not None:
            parent_ref = str(directory / parent_ref)
        parent = load_profile(parent_ref, _depth + 1)
        base, fail_at, warn_at = dict(parent.settings), parent.fail_at, parent.warn_at
    else:
        base, fail_at, warn_at = _defaults(), "high", "low"
    verdict = doc.get("verdict", {})
    if not isinstance(verdict, dict) or set(verdict) - {"fail_at", "warn_at"}:
        raise PolicyError(f"{where}: [verdict] takes fail_at and warn_at only")
    fail_at = verdict.get("fail_at", fail_at)
    warn_at = verdict.get("warn_at", warn_at)
    for key, value in (("fail_at", fail_at), ("warn_at", warn_at)):
        if value not in SEVERITIES:
            raise PolicyError(f"{where}: verdict.{key} must be one of {', '.join(SEVERITIES)}")
    if SEVERITIES.index(warn_at) > SEVERITIES.index(fail_at):
        raise PolicyError(f"{where}: verdict.warn_at may not be above fail_at")
    builtin = isinstance(source, str) and source in BUILTIN_PROFILES
    name = doc.get("name") or (source if builtin else Path(str(source)).stem)
    refs = doc.get("references", [])
    return Profile(
        name=str(name),
        description=str(doc.get("description", "")),
        settings=_apply(doc, base, where),
        fail_at=fail_at,
        warn_at=warn_at,
        references=tuple(str(r) for r in refs) if isinstance(refs, list) else (),
    )


def rules_table() -> pd.DataFrame:
    """The catalogue for `intransit rules`: one row per rule with its title, default severity, its
    severity in each built-in profile ("off" where disabled), default options, what it reads, facts
    it still needs, references and rationale."""
    from analyzer._pandas import pd

    profiles = {name: load_profile(name) for name in BUILTIN_PROFILES}
    rows = []
    for rid, rule in RULES.items():
        row: dict[str, Any] = {"rule": rid, "title": rule.title, "default_severity": rule.severity}
        for name, prof in profiles.items():
            s = prof.settings[rid]
            row[name] = s.severity if s.enabled else "off"
        row["options"] = ", ".join(f"{k}={v!r}" for k, v in rule.options.items())
        row["reads"] = rule.reads
        row["needs"] = rule.needs
        row["references"] = "; ".join(rule.references)
        row["rationale"] = rule.rationale
        rows.append(row)
    return pd.DataFrame(rows).astype("string")
