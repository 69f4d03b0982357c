"""Autoscaling: the desired count of a pool from Nomad's own signals.

The pool spec's `policy` item (YAML) holds checks, each a metric and a strategy,
with the Nomad Autoscaler's names and meanings, so a migrated policy keeps its
behaviour. Everything here is pure: the planner calls ``decide`` with metrics
computed from the observed world (``signals.pool_signals``) and the last
scaling decision read back from the pool's status variable, so cooldowns
survive a restart.

    parse_policy(text) -> Policy                    policy.py (PolicyError lists problems)
    pool_signals(spec, observed) -> Signals          signals.py
    decide(policy, signals, members=..., ...) -> Decision   decide.py
"""

from reconciler.scaling.decide import CheckResult, Decision, LastScale, decide
from reconciler.scaling.policy import Check, Policy, PolicyError, parse_policy
from reconciler.scaling.signals import Signals, pool_signals

__all__ = [
    "Check",
    "CheckResult",
    "Decision",
    "LastScale",
    "Policy",
    "PolicyError",
    "Signals",
    "decide",
    "parse_policy",
    "pool_signals",
]
