"""The rule catalogue: every rule the policy layer knows, by stable id.

A rule is one declaration (`analyzer.policy._rule.Rule`): id, title, default severity (info, low,
medium, high, critical), rationale, references, options with defaults, and a vectorised predicate
over the facts returning the flagged flows with an evidence text. Profiles (`profiles.py`) enable
rules and set severities and options; suppressions (`suppressions.py`) silence matching findings
until they expire. What each rule flags and why is in the docstrings of the modules declaring them:

- `rules_tls`: tls-legacy-version, tls-client-legacy-only, tls-handshake-version-failure,
  aws-endpoint-legacy-tls, tls-weak-cipher, tls-no-forward-secrecy;
- `rules_cert`: cert-expired, cert-not-yet-valid, cert-expiring, cert-self-signed, cert-weak-key,
  cert-weak-signature, cert-name-mismatch, cert-validity-too-long;
- `rules_chain`: cert-chain-expired, cert-chain-weak (the certificates above the leaf);
- `rules_traffic`: cleartext-egress, cleartext-internal, cleartext-credentials, unknown-egress;
- `rules_plain`: starttls-not-used, starttls-unavailable, ftp-data-unprotected, http-redirect-only,
  ssh-legacy;
- here: suppression-expired (a suppression past its expiry date is itself a finding; it has no
  predicate over traffic: `evaluate` produces it from the suppressions file).

"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from analyzer.policy._cols import Hits, no_hits
from analyzer.policy._rule import Rule
from analyzer.policy.rules_cert import CERT_RULES
from analyzer.policy.rules_chain import CHAIN_RULES
from analyzer.policy.rules_plain import PLAIN_RULES
from analyzer.policy.rules_tls import TLS_RULES
from analyzer.policy.rules_traffic import TRAFFIC_RULES

if TYPE_CHECKING:
    from analyzer.policy.facts import Facts

__all__ = ["RULES", "SUPPRESSION_EXPIRED", "Rule"]

SUPPRESSION_EXPIRED = "suppression-expired"


def _no_traffic(f: Facts, opts: Mapping[str, Any]) -> Hits:
    return no_hits()


_SUPPRESSION_RULE = Rule(
    id=SUPPRESSION_EXPIRED,
    title="Suppression past its expiry date",
    severity="low",
    rationale="A suppression is a time-boxed exception; once expired, the findings it silenced "
    "are reported again and the stale exception itself must be renewed or removed.",
    references=("AWS Well-Architected SEC09-BP02 (Enforce encryption in transit)",),
    predicate=_no_traffic,
    reads="suppressions",
)

RULES: dict[str, Rule] = {r.id: r for r in (*TLS_RULES, *CERT_RULES, *CHAIN_RULES, *TRAFFIC_RULES, *PLAIN_RULES,
                                                  _SUPPRESSION_RULE)}
