"""End-to-end import speed: a generated contacts CSV into a fresh SQLite store.

The issue-2 target is 1,000,000 rows at ≥ 150,000 rows/s with peak memory
under 500 MB. The default size keeps the smoke run short; set
``CRMKIT_BENCH_IMPORT_ROWS=1000000`` for the real measurement::

    CRMKIT_BENCH_IMPORT_ROWS=1000000 pytest benches/bench_ingest.py --benchmark-enable -s

The import runs as the real CLI in a child process so that its peak RSS is
measured alone (the child's own ``ru_maxrss``), once keyed by the record id
(a CRM export re-imported) and once by email (the default).

A second bench imports the interactions of a generated customer base (about
4.4 interactions per contact, JSON lines) into a store that holds its
contacts; ``CRMKIT_BENCH_INTERACTION_CONTACTS`` sets its size (default 2,000,
100,000 for a real measurement)::

    CRMKIT_BENCH_INTERACTION_CONTACTS=100000 pytest benches/bench_ingest.py \
        --benchmark-enable -s -k interactions
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from crmkit.sample import CONTACT_HEADER, generate, generate_contacts_rows

ROWS = int(os.environ.get("CRMKIT_BENCH_IMPORT_ROWS", "20000"))
INTERACTION_CONTACTS = int(os.environ.get("CRMKIT_BENCH_INTERACTION_CONTACTS", "2000"))


@pytest.fixture(scope="module")
def contacts_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = Path(os.environ.get("CRMKIT_BENCH_CACHE", tmp_path_factory.mktemp("data")))
    path = cache / f"contacts-{ROWS}.csv"
    if not path.exists():
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(CONTACT_HEADER)
            w.writerows(generate_contacts_rows(ROWS, seed=7))
    return path


def _import(csv_path: Path, db: Path, key: str, *, fresh: bool = True) -> dict[str, Any]:
    if fresh:
        for p in db.parent.glob(db.name + "*"):
            p.unlink()
    out, err = db.with_suffix(".out"), db.with_suffix(".err")
    t0 = time.perf_counter()
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from crmkit.cli import main; main()",
                "--db",
                str(db),
                "import",
                str(csv_path),
                "--json",
                "--key",
                key,
            ],
            stdout=fo,
            stderr=fe,
            env={**os.environ, "CRMKIT_DISABLE_PLUGIN_AUTOLOAD": "1"},
        )
        # Reap the child here: wait4 gives its own peak RSS.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, err.read_text()
    return {"wall": wall, "stdout": out.read_text(), "peak_kb": usage.ru_maxrss}


@pytest.mark.parametrize("key", ["external_id", "email"])
def test_import_contacts_csv(benchmark: Any, contacts_csv: Path, tmp_path: Path, key: str) -> None:
    db = tmp_path / "bench.db"
    out = benchmark.pedantic(_import, args=(contacts_csv, db, key), rounds=1, iterations=1)
    import json

    report = json.loads(out["stdout"])
    assert report["rows"] == ROWS
    assert report["created"] > ROWS * 0.5
    peak_mb = out["peak_kb"] / 1024
    rate = ROWS / out["wall"]
    benchmark.extra_info.update(
        {"rows": ROWS, "key": key, "rows_per_s": round(rate), "peak_rss_mb": round(peak_mb)}
    )
    print(
        f"\nimport {ROWS:,} rows keyed by {key}: {out['wall']:.2f} s, {rate:,.0f} rows/s, "
        f"peak RSS {peak_mb:,.0f} MB"
    )


def test_import_interactions_jsonl(
    benchmark: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cache = (
        Path(os.environ.get("CRMKIT_BENCH_CACHE", tmp_path_factory.mktemp("data")))
        / f"sample-{INTERACTION_CONTACTS}"
    )
    if not (cache / "interactions.jsonl").exists():
        generate(cache, contacts=INTERACTION_CONTACTS, seed=3, with_companies=False)
    db = tmp_path_factory.mktemp("store") / "bench.db"
    _import(cache / "contacts.csv", db, "email")
    out = benchmark.pedantic(
        _import,
        args=(cache / "interactions.jsonl", db, "email"),
        kwargs={"fresh": False},
        rounds=1,
        iterations=1,
    )
    import json

    report = json.loads(out["stdout"])
    rows = report["rows"]
    assert report["kind"] == "interactions"
    assert report["interactions_added"] == rows > INTERACTION_CONTACTS
    rate = rows / out["wall"]
    benchmark.extra_info.update(
        {"rows": rows, "rows_per_s": round(rate), "peak_rss_mb": round(out["peak_kb"] / 1024)}
    )
    print(
        f"\nimport {rows:,} interactions for {INTERACTION_CONTACTS:,} contacts: "
        f"{out['wall']:.2f} s, {rate:,.0f} rows/s, peak RSS {out['peak_kb'] / 1024:,.0f} MB"
    )
