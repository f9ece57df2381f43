"""Shared helpers for the benches.

Benches run once on small inputs as smoke tests (``--benchmark-disable`` is in
addopts); with ``--benchmark-enable`` they run on full-size inputs, which
``CRMKIT_BENCH_ROWS`` overrides.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest


def benchmarks_enabled(config: pytest.Config) -> bool:
    """True when pytest-benchmark really measures (``--benchmark-enable``)."""
    return bool(config.getoption("benchmark_enable")) or not config.getoption("benchmark_disable")


@pytest.fixture
def bench_size(request: pytest.FixtureRequest) -> Callable[[int, int], int]:
    """``bench_size(full, smoke=3000)``: the input size for this run."""

    def size(full: int, smoke: int = 3000) -> int:
        if benchmarks_enabled(request.config):
            return int(os.environ.get("CRMKIT_BENCH_ROWS", full))
        return smoke

    return size
