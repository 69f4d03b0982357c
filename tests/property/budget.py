"""How many examples the slow, simulator-backed stateful tests run under the active profile.

Each stateful example starts both simulators and drives the real controller, so the `ci`
profile keeps a handful of them; the `thorough` profile (HYPOTHESIS_PROFILE=thorough or
`pytest --hypothesis-profile=thorough`) scales them by the same factor as every other
property test, so a thorough run explores the stateful machines too.
"""

from hypothesis import settings

# The `ci` profile's max_examples (tests/property/conftest.py); the scale is relative to it.
_CI_EXAMPLES = 60


def stateful_settings(ci_examples: int, steps: int) -> settings:
    """Settings for a stateful test: `ci_examples` under `ci`, proportionally more otherwise."""
    scale = max(1, settings.default.max_examples // _CI_EXAMPLES)
    return settings(max_examples=ci_examples * scale, stateful_step_count=steps, deadline=None)
