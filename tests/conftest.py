"""Shared test settings: hypothesis profiles.

`HYPOTHESIS_PROFILE=quick` (the default) keeps the local loop fast;
`HYPOTHESIS_PROFILE=thorough` is what CI runs against the built wheel. Both
are derandomized, so CI runs exactly the examples a developer ran before
pushing and never fails by the luck of the draw. `HYPOTHESIS_PROFILE=explore`
draws fresh random examples, many more of them: run it to hunt for new bugs
(and turn what it finds into a test or an `@example`).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "quick",
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    max_examples=1000,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))
