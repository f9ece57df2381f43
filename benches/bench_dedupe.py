"""End-to-end dedupe over the store: read contacts → match → clusters → merge plan.

What a user waits for in ``crmkit dedupe --dry-run``. The store is built once per
session (import of the generated sample with ``key = "external_id"``) and is not
timed. Run for real with ``pytest benches/bench_dedupe.py --benchmark-enable -s``
(100k contacts; ``CRMKIT_BENCH_ROWS`` overrides); by default
(``--benchmark-disable``) each bench runs once on 3,000 rows as a smoke test.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from crmkit.dedupe import DedupeResult, find_duplicates
from crmkit.kernel import Kernel
from crmkit.merge import MergePlan, build_plan
from crmkit.sample import generate


@pytest.fixture
def kernel(request: pytest.FixtureRequest, tmp_path: Path, bench_size: Any) -> Any:
    n = bench_size(100_000)
    info = generate(tmp_path, contacts=n, with_interactions=False, with_companies=False)
    k = Kernel.open(tmp_path / "crm.db", disable_plugin_autoload=True)
    t0 = time.perf_counter()
    k.import_file(info.contacts_path, key="external_id")
    print(f"\nrows={n} import={time.perf_counter() - t0:.2f}s (not timed)")
    yield k
    k.close()


def test_store_to_clusters_to_plan(benchmark: Any, kernel: Kernel) -> None:
    times: dict[str, float] = {}

    def run() -> tuple[DedupeResult, MergePlan]:
        marks: list[tuple[str, float]] = [("start", time.perf_counter())]

        def step(name: str) -> None:
            marks.append((name, time.perf_counter()))

        res = find_duplicates(kernel.store, progress=step)
        plan = build_plan(kernel.store, res, progress=step)
        marks.append(("end", time.perf_counter()))
        for (name, t0), (_, t1) in itertools.pairwise(marks):
            times[name] = t1 - t0
        times["total"] = marks[-1][1] - marks[0][1]
        return res, plan

    res, plan = benchmark.pedantic(run, rounds=1, iterations=1)
    parts = " ".join(f"{k}={v:.2f}s" for k, v in times.items() if k != "start")
    print(
        f"\ncontacts={len(res.ids)} clusters={len(res.clusters)} merges={len(plan)} "
        f"merged={plan.merged} {parts}"
    )
    assert len(plan) == len(res.clusters) and plan.merged == res.duplicates


def test_match_a_new_record_against_the_store(benchmark: Any, kernel: Kernel) -> None:
    """One sign-up matched against every live contact (the index built once,
    not timed): what an app pays per record with ``Kernel.match_index``."""
    t0 = time.perf_counter()
    index = kernel.match_index()
    built = time.perf_counter() - t0
    c = kernel.store.get_contacts([len(index) // 2])[0]
    record = {
        "first_name": c.first_name,
        "last_name": c.last_name,
        "email": c.email,
        "phone": c.phone,
        "postcode": c.postcode,
        "country": c.country,
    }
    hits = benchmark(index.match, record)
    print(f"\ncontacts={len(index)} index built in {built:.2f}s; best={hits[:1]}")
    assert c.id in [h.contact_id for h in hits]
