"""Hypothesis profiles: `ci` (default, fast), `thorough` and `mutation` (HYPOTHESIS_PROFILE=...)."""

import os

from hypothesis import HealthCheck, settings

# ci: the same examples every run (derandomize), so a red CI run is reproducible and a
# green one is not luck; `thorough` explores fresh random examples, many more of them.
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# mutation: `make mutation` runs the property tests once per mutant, under mutmut's
# per-call trampolines (several times slower): the first 10 of the `ci` examples.
settings.register_profile(
    "mutation",
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
