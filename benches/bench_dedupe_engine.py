"""Benches of the Rust dedupe matcher: fit + predict at 100k rows, pair scoring.

Run for real with ``pytest benches/bench_dedupe_engine.py --benchmark-enable -s``;
by default (``--benchmark-disable``) each runs once on a small input as a smoke test.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from crmkit import _core

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_dedupe_engine import _cluster_f1, _f1, _pairs_of, _sample


def test_fit_predict(benchmark: Any, request: pytest.FixtureRequest, bench_size: Any) -> None:
    n = bench_size(100_000)
    cols, truth = _sample(n)

    def run() -> Any:
        m = _core.Matcher()
        m.fit(cols)
        return m.predict()

    res = benchmark.pedantic(run, rounds=1, iterations=1)
    true_pairs = _pairs_of(truth)
    pair_f1 = _f1(_pairs_of(res.clusters), true_pairs)
    cluster_f1 = _cluster_f1(res.clusters, truth)
    m = _core.Matcher()
    t0 = time.perf_counter()
    m.fit(cols)
    fit_s = time.perf_counter() - t0
    cand = set(zip(*m.candidate_pairs(), strict=True))
    recall = len(true_pairs & cand) / max(1, len(true_pairs))
    print(
        f"\nrows={n} pair_f1={pair_f1:.4f} cluster_f1={cluster_f1:.4f} "
        f"blocking_recall={recall:.4f} "
        f"pairs/record={res.stats['candidate_pairs_per_record']:.2f} fit={fit_s:.2f}s"
    )
    assert pair_f1 > 0.8


def test_pair_scoring_throughput(
    benchmark: Any, request: pytest.FixtureRequest, bench_size: Any
) -> None:
    n = bench_size(100_000)
    cols, _ = _sample(n)
    m = _core.Matcher()
    m.fit(cols)
    res = benchmark.pedantic(lambda: m.predict(), rounds=3, iterations=1)
    walls, cpus = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        m.predict()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    dt, cpu = min(walls), min(cpus)
    pairs = res.stats["candidate_pairs"]
    full = res.stats["pairs_scored_in_full"]
    # CPU seconds, summed over threads, give pairs per second per core even
    # when other jobs share the machine.
    print(
        f"\ncandidate pairs={pairs:.0f} (scored in full: {full:.0f}) scored+clustered in "
        f"{dt:.3f}s: {pairs / dt:,.0f} pairs/s, {pairs / max(cpu, 1e-9):,.0f} pairs/s/core"
    )


def test_match_one_against_index(
    benchmark: Any, request: pytest.FixtureRequest, bench_size: Any
) -> None:
    n = bench_size(100_000)
    cols, _ = _sample(n)
    m = _core.Matcher()
    m.fit(cols)
    idx = m.index()
    record = {k: v[n // 2] for k, v in cols.items()}
    hits = benchmark(idx.match_one, record)
    assert n // 2 in [h[0] for h in hits]
