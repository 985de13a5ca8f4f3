"""pytest hooks, fixtures and hypothesis profiles (the helpers tests import are in tests/helpers.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_sessionstart(session):
    """The tests run the full sweeps (random tapes use every op): no sweeps specialised per tape."""
    from tapead import runtime

    runtime.specialise = False


def pytest_collection_finish(session):
    """On a cold cache, a large run compiles the sweeps in parallel processes (tapead warmup)
    before the first test needs them: Numba compiles on one core. A small run compiles only
    the sweeps its tests use, when they use them."""
    from tapead.cli import warmup
    from tapead.runtime import kernels_cached

    if len(session.items) > 100 and not kernels_cached():
        warmup()


@pytest.fixture
def rng():
    return np.random.default_rng(20261129)
