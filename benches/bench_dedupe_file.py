"""File to clusters: ``dedupe_file`` on a generated CSV, with accuracy against its truth.

What a user waits for in ``crmkit dedupe FILE --out FILE``: read, normalize,
block, train, score, cluster, write. The file is generated once (not timed).
Run for real with ``pytest benches/bench_dedupe_file.py --benchmark-enable -s``
(1M rows; ``CRMKIT_BENCH_ROWS`` overrides); by default (``--benchmark-disable``)
it runs once on 3,000 rows as a smoke test. Peak memory is the process's
(``ru_maxrss``), so run this file alone to read it.
"""

from __future__ import annotations

import csv
import itertools
import resource
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from crmkit.dedupe import FileDedupeReport, dedupe_file
from crmkit.sample import CONTACT_HEADER, iter_contacts


def _write_sample(d: Path, n: int) -> tuple[Path, list[str]]:
    path = d / "contacts.csv"
    truth: list[str] = []
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CONTACT_HEADER)
        for row, entity in iter_contacts(n, seed=7):
            w.writerow(row)
            truth.append(entity)
    return path, truth


def _groups(labels: list[str]) -> list[list[int]]:
    g: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        g[label].append(i)
    return list(g.values())


def _scores(pred: list[str], truth: list[str]) -> tuple[float, float]:
    """Pairwise F1 and cluster F1 (exact cluster matches)."""
    gp, gt = _groups(pred), _groups(truth)

    def pairs(gs: list[list[int]]) -> set[tuple[int, int]]:
        return {(a, b) for g in gs for a, b in itertools.combinations(g, 2)}

    pp, pt = pairs(gp), pairs(gt)
    tp = len(pp & pt)
    prec, rec = tp / max(1, len(pp)), tp / max(1, len(pt))
    pair_f1 = 2 * prec * rec / max(1e-12, prec + rec)
    cp, ct = {tuple(g) for g in gp}, {tuple(g) for g in gt}
    ctp = len(cp & ct)
    cprec, crec = ctp / len(cp), ctp / len(ct)
    return pair_f1, 2 * cprec * crec / max(1e-12, cprec + crec)


def test_file_to_clusters(benchmark: Any, tmp_path: Path, bench_size: Any) -> None:
    n = bench_size(1_000_000)
    src, truth = _write_sample(tmp_path, n)
    out = tmp_path / "out.csv"
    times: dict[str, float] = {}

    def run() -> FileDedupeReport:
        marks: list[tuple[str, float]] = [("start", time.perf_counter())]
        rep = dedupe_file(src, out, progress=lambda s: marks.append((s, time.perf_counter())))
        marks.append(("end", time.perf_counter()))
        for (name, t0), (_, t1) in itertools.pairwise(marks):
            times[name] = t1 - t0
        times["total"] = marks[-1][1] - marks[0][1]
        return rep

    rep = benchmark.pedantic(run, rounds=1, iterations=1)
    with out.open(newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows)
        pred = [r[-1] for r in rows]
    assert len(pred) == rep.rows == n
    pair_f1, cluster_f1 = _scores(pred, truth)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    parts = " ".join(f"{k}={v:.2f}s" for k, v in times.items() if k != "start")
    print(
        f"\nrows={n} pair_f1={pair_f1:.4f} cluster_f1={cluster_f1:.4f} "
        f"peak_rss={peak_mb:.0f}MB {parts}"
    )
    assert pair_f1 > 0.8
