"""The judgement layer: facts + zones -> findings, verdicts, destination grades.

Dissectors state facts ("TLS 1.0 was negotiated"); this package judges them ("legacy TLS leaving
the VPC: high"), as Zeek keeps its `policy/` scripts apart from its analyzers. Nothing here changes
a fact, and nothing in `dissect/` imports from here (policy may read dissect's constant tables,
such as the cipher-suite table, never the other way round).

    import analyzer
    from analyzer import policy
    r = analyzer.analyze(["captures/"])
    p = policy.evaluate(r.flows, r.tls, r.certs, zones=["10.77.0.0/24"], profile="sec09",
                        suppressions="suppress.toml")
    p.findings        # one row per finding (schema: policy.FINDINGS)
    p.flows           # flows + client_zone, server_zone, direction, verdict, finding_count
    p.destinations    # one row per server name/address + port + zone, with a 0-100 score and grade

Modules: `zones` (CIDRs, zones TOML, AWS ranges, direction), `rules` (the catalogue; the rules
themselves in `rules_tls`, `rules_cert`, `rules_traffic`), `profiles` (TOML, built-in ones in
`builtin_profiles/`), `suppressions` (TOML), `evaluate` (findings, verdicts, destinations and the score).
"""

from __future__ import annotations

from analyzer.policy.errors import PolicyError
from analyzer.policy.evaluate import DESTINATIONS, FINDINGS, FLOW_COLUMNS, PolicyResult, evaluate
from analyzer.policy.profiles import BUILTIN_PROFILES, DEFAULT_PROFILE, Profile, load_profile, rules_table
from analyzer.policy.rules import RULES, Rule
from analyzer.policy.suppressions import Suppression, load_suppressions
from analyzer.policy.zones import AWS_RANGES_DATE, Zone, ZoneMap, build_zones, load_zones_file, zone_flows

__all__ = [
    "AWS_RANGES_DATE",
    "BUILTIN_PROFILES",
    "DEFAULT_PROFILE",
    "DESTINATIONS",
    "FINDINGS",
    "FLOW_COLUMNS",
    "RULES",
    "PolicyError",
    "PolicyResult",
    "Profile",
    "Rule",
    "Suppression",
    "Zone",
    "ZoneMap",
    "build_zones",
    "evaluate",
    "load_profile",
    "load_suppressions",
    "load_zones_file",
    "rules_table",
    "zone_flows",
]
