"""Dedupe side by side: crmkit, Splink (DuckDB backend) and recordlinkage on one input.

The input is :func:`crmkit.sample.generate` output (``contacts.csv`` with its
``truth.csv``), generated once per size and seed and cached under the system
temp folder (``CRMKIT_BENCH_CACHE`` overrides the folder). Each tool runs in its
own child process, from the CSV file to one cluster label per row, so its peak
RSS (``wait4`` rusage of that child) is its own; wall and CPU time cover the
file read, cleaning, blocking, training, scoring and clustering, not the
interpreter start or library imports. The parent scores the labels against the
truth: pairwise precision, recall and F1 (pairs implied by the clusters) and
cluster F1 (exact cluster matches).

- crmkit: :func:`crmkit.dedupe.dedupe_file` with its default settings (its
  time includes writing the file back with ``cluster_id``, as the CLI does).
- Splink 5, DuckDB backend, as its quickstart and tutorials do it: light
  cleaning, ``SettingsCreator`` (``dedupe_only``, comparison library
  comparisons, ``block_on`` rules), λ from deterministic rules, u from random
  sampling, EM once per blocking rule, ``predict()`` with no threshold and
  ``cluster_pairwise_predictions_at_threshold`` at match probability 0.5 (a
  match is more likely than not). F1 at 0.95 (the quickstart's clustering
  threshold) is reported too, untimed.
- recordlinkage 0.16, as its tutorials do it with no labels: ``Index`` (blocks
  plus a sorted neighbourhood), ``Compare`` (Jaro-Winkler with a threshold,
  exact, date), the unsupervised ``ECMClassifier``, then connected components
  of the predicted pairs.

Run for real (100k rows; ``CRMKIT_BENCH_ROWS`` overrides, e.g. 1000000)::

    .venv/bin/pytest benches/bench_dedupe_peers.py --benchmark-enable -s

``CRMKIT_BENCH_STRAY_RATE`` (default 1) is the generator's ``stray_rate``: at 0
every duplicate keeps one of the person's own contact points, so that the
figures show what each tool makes of the evidence there is (see
:func:`crmkit.sample.generate`).

By default (``--benchmark-disable``) each tool runs once on 2,000 rows as a smoke
test that fails when a tool's clusters are garbage (pairwise F1 ≤ 0.5); at full
size only crmkit is held to that, the peers' figures are reported as they come.
A test is skipped when its library is not installed. One tool by hand::

    .venv/bin/python benches/bench_dedupe_peers.py splink contacts.csv labels.txt
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

SEED = 7
"""Seed of the generated input (the same for every tool and size)."""

TOOLS = ("crmkit", "splink", "recordlinkage")
"""The tools compared, in table order."""

SPLINK_THRESHOLD = 0.5
"""Splink clustering threshold (match probability) for the headline figures."""

SPLINK_README_THRESHOLD = 0.95
"""Splink's quickstart clustering threshold, reported as a second figure."""


# -- data ----------------------------------------------------------------------


def stray_rate() -> float:
    """The generator's ``stray_rate`` for the benches' input (``CRMKIT_BENCH_STRAY_RATE``)."""
    return float(os.environ.get("CRMKIT_BENCH_STRAY_RATE") or 1.0)


def sample_dir(n: int, seed: int = SEED) -> Path:
    """A folder holding ``contacts.csv`` and ``truth.csv`` for ``n`` rows (cached)."""
    from crmkit.sample import generate

    root = Path(os.environ.get("CRMKIT_BENCH_CACHE") or tempfile.gettempdir())
    stray = stray_rate()
    d = root / f"crmkit-bench-peers-{n}-seed{seed}" / ("" if stray == 1.0 else f"stray{stray:g}")
    if not (d / "ready").exists():
        generate(
            d,
            contacts=n,
            seed=seed,
            with_interactions=False,
            with_companies=False,
            stray_rate=stray,
        )
        (d / "ready").touch()
    return d


def read_truth(path: Path) -> list[str]:
    """The entity id of every row of ``truth.csv``, in row order."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows)
        return [r[1] for r in rows]


# -- accuracy ------------------------------------------------------------------


def _pairs(sizes: Iterator[int]) -> int:
    return sum(k * (k - 1) // 2 for k in sizes)


def pairwise_counts(pred: Sequence[str], truth: Sequence[str]) -> tuple[int, int, int]:
    """(true positive, predicted, true) pairs implied by two clusterings, in O(rows).

    Counted from cluster sizes rather than by listing the pairs, so one giant
    predicted cluster costs no memory.
    """
    both = Counter(zip(pred, truth, strict=True))
    return (
        _pairs(iter(both.values())),
        _pairs(iter(Counter(pred).values())),
        _pairs(iter(Counter(truth).values())),
    )


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _cluster_f1(pred: list[str], truth: list[str]) -> float:
    """Cluster F1 as crmkit's file bench computes it (exact cluster matches)."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    from bench_dedupe_file import _scores

    return _scores(pred, truth)[1]


# -- results -------------------------------------------------------------------


@dataclass
class Run:
    """One tool's figures on one input."""

    tool: str
    rows: int
    wall_s: float
    cpu_s: float
    process_wall_s: float
    peak_rss_mb: float
    candidate_pairs: int
    precision: float
    recall: float
    pair_f1: float
    cluster_f1: float
    clusters: int
    extra: dict[str, Any] = field(default_factory=dict)


_RESULTS: dict[str, Run] = {}


def run_tool(tool: str, data: Path, work: Path, truth: list[str]) -> Run:
    """Run ``tool`` in a child process on ``data/contacts.csv`` and score its labels."""
    labels_path = work / f"{tool}-labels.txt"
    cmd = [sys.executable, str(Path(__file__).resolve()), tool, str(data / "contacts.csv")]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*cmd, str(labels_path)], stdout=subprocess.PIPE, text=True, cwd=str(work)
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    process_wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} child failed with exit code {proc.returncode}")
    stats: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    pred = labels_path.read_text(encoding="utf-8").split()
    assert len(pred) == len(truth), f"{tool}: {len(pred)} labels for {len(truth)} rows"
    tp, npred, ntrue = pairwise_counts(pred, truth)
    precision, recall = _ratio(tp, npred), _ratio(tp, ntrue)
    extra: dict[str, Any] = stats.get("extra", {})
    extra["predicted_pairs"] = npred
    extra["true_pairs"] = ntrue
    for name, other in stats.get("alt_labels", {}).items():
        # Another threshold's clusters, from the same child run (untimed there).
        tp2, np2, _ = pairwise_counts(other, truth)
        p2, r2 = _ratio(tp2, np2), _ratio(tp2, ntrue)
        extra[f"{name}_precision"] = round(p2, 4)
        extra[f"{name}_recall"] = round(r2, 4)
        extra[f"{name}_pair_f1"] = round(_f1(p2, r2), 4)
        extra[f"{name}_cluster_f1"] = round(_cluster_f1(list(other), truth), 4)
    return Run(
        tool=tool,
        rows=len(truth),
        wall_s=stats["wall_s"],
        cpu_s=stats["cpu_s"],
        process_wall_s=process_wall,
        peak_rss_mb=usage.ru_maxrss / 1024,
        candidate_pairs=int(stats["candidate_pairs"]),
        precision=precision,
        recall=recall,
        pair_f1=_f1(precision, recall),
        cluster_f1=_cluster_f1(pred, truth),
        clusters=len(set(pred)),
        extra=extra,
    )


def format_table(runs: Sequence[Run]) -> str:
    """The runs side by side, one column per tool."""
    rows: list[tuple[str, Callable[[Run], str]]] = [
        ("rows", lambda r: f"{r.rows:,}"),
        ("wall (s)", lambda r: f"{r.wall_s:.2f}"),
        ("cpu (s)", lambda r: f"{r.cpu_s:.2f}"),
        ("process wall (s)", lambda r: f"{r.process_wall_s:.2f}"),
        ("peak RSS (MB)", lambda r: f"{r.peak_rss_mb:,.0f}"),
        ("candidate pairs", lambda r: f"{r.candidate_pairs:,}"),
        ("pairs/record", lambda r: f"{r.candidate_pairs / max(1, r.rows):.2f}"),
        ("pair precision", lambda r: f"{r.precision:.4f}"),
        ("pair recall", lambda r: f"{r.recall:.4f}"),
        ("pair F1", lambda r: f"{r.pair_f1:.4f}"),
        ("cluster F1", lambda r: f"{r.cluster_f1:.4f}"),
        ("clusters", lambda r: f"{r.clusters:,}"),
    ]
    head = ["", *(r.tool for r in runs)]
    body = [[name, *(fmt(r) for r in runs)] for name, fmt in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in [head, *body]
    ]
    return "\n".join(lines)


# -- pytest --------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _table() -> Iterator[None]:
    """Print all tools' figures side by side once the module's tests have run."""
    _RESULTS.clear()
    load_before = os.getloadavg()[0]
    yield
    if _RESULTS:
        runs = [_RESULTS[t] for t in TOOLS if t in _RESULTS]
        print(
            f"\n\ndedupe side by side ({os.cpu_count()} cpus, 1-min load average "
            f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after)"
        )
        print(format_table(runs))
        for r in runs:
            if r.extra:
                print(f"{r.tool}: {json.dumps(r.extra, sort_keys=True)}")


@pytest.mark.parametrize("tool", TOOLS)
def test_dedupe_side_by_side(benchmark: Any, bench_size: Any, tmp_path: Path, tool: str) -> None:
    if tool == "splink":
        pytest.importorskip("duckdb", reason="Splink's DuckDB backend needs duckdb")
        pytest.importorskip("splink", reason="pip install 'splink>=5,<6' to compare with Splink")
    elif tool == "recordlinkage":
        pytest.importorskip(
            "recordlinkage", reason="pip install 'recordlinkage>=0.16' to compare with it"
        )
    n = bench_size(100_000, 2000)
    data = sample_dir(n)
    truth = read_truth(data / "truth.csv")
    run = benchmark.pedantic(lambda: run_tool(tool, data, tmp_path, truth), rounds=1, iterations=1)
    _RESULTS[tool] = run
    benchmark.extra_info.update({k: v for k, v in asdict(run).items() if k != "extra"})
    benchmark.extra_info.update(run.extra)
    print(
        f"\n{tool}: rows={n} wall={run.wall_s:.2f}s cpu={run.cpu_s:.2f}s "
        f"peak_rss={run.peak_rss_mb:.0f}MB pairs={run.candidate_pairs} "
        f"P={run.precision:.4f} R={run.recall:.4f} F1={run.pair_f1:.4f} "
        f"cluster_F1={run.cluster_f1:.4f}"
    )
    if tool == "crmkit" or benchmark.disabled:
        # A peer's accuracy at full size is a figure to report, not a failure
        # (Splink's clusters chain into a giant one at 1M rows); garbage output
        # on the small input, or from crmkit at any size, is.
        assert run.pair_f1 > 0.5, f"{tool}: pairwise F1 {run.pair_f1:.3f} on generated truth"


# -- the tools (each runs in a child process) ----------------------------------


def _run_crmkit(src: Path, work: Path) -> tuple[list[str], dict[str, Any]]:
    import crmkit.dedupe as dd

    out = work / "crmkit-out.csv"
    t0, c0 = time.perf_counter(), time.process_time()
    report = dd.dedupe_file(src, out)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stats: dict[str, float] = dict(getattr(report, "stats", {}))
    with out.open(newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows)
        labels = [r[-1] for r in rows]
    out.unlink()
    return labels, {
        "wall_s": wall,
        "cpu_s": cpu,
        "candidate_pairs": stats.get("candidate_pairs", -1),
        "extra": {f"crmkit_{k}": v for k, v in stats.items()},
    }


_PEER_COLUMNS = {
    "First Name": "first_name",
    "Last Name": "surname",
    "Email": "email",
    "Phone": "phone",
    "City": "city",
    "Postcode": "postcode",
    "Birth Date": "dob",
}


def _peer_frame(src: Path) -> Any:
    """The CSV read with pandas and cleaned the way the peers' tutorials advise:
    lower case, accents folded, phone digits (national part), blank as null."""
    import pandas as pd  # type: ignore[import-untyped]

    df = pd.read_csv(src, dtype=str, keep_default_na=False, usecols=list(_PEER_COLUMNS))
    df = df.rename(columns=_PEER_COLUMNS)

    def text(s: Any) -> Any:
        s = s.str.strip().str.lower().str.normalize("NFKD")
        return s.str.encode("ascii", "ignore").str.decode("ascii")

    for c in ("first_name", "surname", "city"):
        df[c] = text(df[c]).str.replace(r"[^a-z ]", "", regex=True).str.strip()
    df["email"] = df["email"].str.strip().str.lower()
    df["postcode"] = df["postcode"].str.lower().str.replace(" ", "", regex=False)
    digits = df["phone"].str.replace(r"\D", "", regex=True)
    df["phone"] = digits.str[-9:].where(digits.str.len() >= 7, "")
    df["dob"] = df["dob"].str.strip()
    df = df.mask(df == "")
    df.insert(0, "unique_id", range(len(df)))
    return df


def _run_splink(src: Path, work: Path) -> tuple[list[str], dict[str, Any]]:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    t0, c0 = time.perf_counter(), time.process_time()
    df = _peer_frame(src)
    db_api = DuckDBAPI()
    sdf = db_api.register(df, dataset_display_name="contacts")
    rules: list[Any] = [
        block_on("email"),
        block_on("phone"),
        block_on("first_name", "surname"),
        block_on("surname", "postcode"),
    ]
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.EmailComparison("email"),
            cl.LevenshteinAtThresholds("phone", [1, 2]),
            cl.DateOfBirthComparison("dob", input_is_string=True),
            cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
            cl.ExactMatch("city").configure(term_frequency_adjustments=True),
        ],
        blocking_rules_to_generate_predictions=rules,
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    linker = Linker(sdf, settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name", "surname", "dob"), block_on("email")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=SEED)
    for rule in rules:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=SPLINK_THRESHOLD
    )
    got = clusters.as_duckdbpyrelation().project("unique_id, cluster_id").fetchall()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0

    def labels_of(rows: list[tuple[Any, ...]]) -> list[str]:
        by_id = {int(u): str(c) for u, c in rows}
        return [by_id[i] for i in range(len(df))]

    pairs = int(predictions.as_duckdbpyrelation().aggregate("count(*)").fetchall()[0][0])
    alt = (
        linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=SPLINK_README_THRESHOLD
        )
        .as_duckdbpyrelation()
        .project("unique_id, cluster_id")
        .fetchall()
    )
    return labels_of(got), {
        "wall_s": wall,
        "cpu_s": cpu,
        "candidate_pairs": pairs,
        "alt_labels": {f"splink_at_{SPLINK_README_THRESHOLD}": labels_of(alt)},
        "extra": {"splink_threshold": SPLINK_THRESHOLD},
    }


def _run_recordlinkage(src: Path, work: Path) -> tuple[list[str], dict[str, Any]]:
    import numpy as np
    import pandas as pd
    import recordlinkage as rl  # type: ignore[import-untyped]
    from scipy.sparse import coo_matrix  # type: ignore[import-untyped]
    from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]

    t0, c0 = time.perf_counter(), time.process_time()
    df = _peer_frame(src).set_index("unique_id")
    df["dob"] = pd.to_datetime(df["dob"], format="%Y-%m-%d", errors="coerce")
    indexer = rl.Index()
    indexer.block("email")
    indexer.block("phone")
    indexer.block(["first_name", "surname"])
    indexer.sortedneighbourhood("surname", window=5, block_on=["postcode"])
    candidates = indexer.index(df)
    compare = rl.Compare()
    for c in ("first_name", "surname", "city"):
        compare.string(c, c, method="jarowinkler", threshold=0.85, label=c)
    for c in ("email", "phone", "postcode"):
        compare.exact(c, c, label=c)
    compare.date("dob", "dob", label="dob")
    features = compare.compute(candidates, df)
    # Unsupervised: no labels. A day/month swap (0.5) counts as agreement.
    matches = rl.ECMClassifier(binarize=0.4).fit_predict(features)
    n = len(df)
    left = np.asarray(matches.get_level_values(0), dtype=np.int64)
    right = np.asarray(matches.get_level_values(1), dtype=np.int64)
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return [str(c) for c in comp.tolist()], {
        "wall_s": wall,
        "cpu_s": cpu,
        "candidate_pairs": len(candidates),
        "extra": {"recordlinkage_predicted_links": len(matches)},
    }


_RUNNERS: dict[str, Callable[[Path, Path], tuple[list[str], dict[str, Any]]]] = {
    "crmkit": _run_crmkit,
    "splink": _run_splink,
    "recordlinkage": _run_recordlinkage,
}


def main(argv: Sequence[str]) -> int:
    """``TOOL CONTACTS_CSV LABELS_OUT``: one label per row to LABELS_OUT, stats as JSON."""
    if len(argv) != 3 or argv[0] not in _RUNNERS:
        print(f"usage: bench_dedupe_peers.py {{{','.join(TOOLS)}}} CONTACTS_CSV LABELS_OUT")
        return 2
    tool, src, dst = argv[0], Path(argv[1]), Path(argv[2])
    labels, stats = _RUNNERS[tool](src, dst.parent)
    dst.write_text("\n".join(labels) + "\n", encoding="utf-8")
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
