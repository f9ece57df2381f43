"""Report benches: every report over a generated, imported customer base.

By default (``--benchmark-disable``) each report is built once over a small base
as a smoke test. For real figures (the store is generated and imported once per
size, then cached under the system temp folder)::

    BENCH_REPORTS_CONTACTS=100000 .venv/bin/pytest benches/bench_reports.py --benchmark-enable
    BENCH_REPORTS_CONTACTS=100000 .venv/bin/python benches/bench_reports.py   # a plain table

The base comes from :func:`crmkit.sample.generate` (contacts, companies and a
year of interactions), plus a synthetic outbox (one message per five contacts),
three segment runs over two segments and a few hundred merges, so every
section has data to read.
"""

from __future__ import annotations

import io
import json
import os
import random
import tempfile
import time
from pathlib import Path

import pytest

from crmkit.kernel import Kernel
from crmkit.reports import ALL, REPORTS
from crmkit.sample import generate
from crmkit.settings import Settings

CONTACTS = int(os.environ.get("BENCH_REPORTS_CONTACTS", "2000"))


def _store(contacts: int) -> Path:
    root = Path(tempfile.gettempdir()) / f"crmkit-bench-reports-{contacts}"
    db = root / "crm.db"
    if (root / "ready").exists():
        return db
    root.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)
    t = time.perf_counter()
    info = generate(root / "data", contacts=contacts, seed=1)
    k = Kernel(Settings(db=db, disable_plugin_autoload=True))
    k.import_file(info.contacts_path)
    assert info.interactions_path is not None
    k.import_file(info.interactions_path)
    rng = random.Random(1)
    conn = k.store.conn  # type: ignore[attr-defined]
    ids = [r[0] for r in conn.execute("SELECT id FROM contacts WHERE merged_into IS NULL")]
    t0 = int(conn.execute("SELECT MAX(occurred_at) FROM interactions").fetchone()[0] or 0)
    statuses = ["delivered"] * 6 + ["sent", "bounced", "complained", "failed"]
    with k.store.transaction():
        conn.executemany(
            "INSERT INTO deliveries (key, campaign, contact_id, channel, status, created_at, "
            "updated_at) VALUES (?, ?, ?, 'email', ?, ?, 0)",
            [
                (f"k{n}", f"c{n % 4}", i, rng.choice(statuses), t0 - 40 * 86_400)
                for n, i in enumerate(ids[::5])
            ],
        )
        conn.executemany(
            "INSERT INTO segments (name, created_at, updated_at) VALUES (?, 0, 0)",
            [("a",), ("b",)],
        )
        for run in (1, 2, 3):
            conn.execute(
                "INSERT INTO segment_runs (id, started_at, as_of) VALUES (?, ?, ?)",
                (run, t0 + run, t0 + run),
            )
            conn.executemany(
                "INSERT INTO memberships (segment, contact_id, entered_at, entered_run) "
                "VALUES (?, ?, ?, ?)",
                [(s, i, t0 + run, run) for s in "ab" for i in ids if rng.random() < 0.05],
            )
        conn.executemany(
            "INSERT INTO merges (survivor_id, merged_ids, score, created_at) VALUES (?, ?, ?, ?)",
            [
                (ids[n], json.dumps([ids[-n - 1]]), rng.random(), t0)
                for n in range(min(300, len(ids) // 2))
            ],
        )
    counts = (
        k.store.count_contacts(),
        k.store.count_interactions(),
    )
    k.close()
    (root / "ready").write_text(
        f"contacts={counts[0]} interactions={counts[1]} built_in={time.perf_counter() - t:.1f}s\n"
    )
    return db


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel(Settings(db=_store(CONTACTS), disable_plugin_autoload=True))


@pytest.mark.parametrize("name", [*REPORTS, ALL])
def test_report(benchmark: pytest.FixtureRequest, kernel: Kernel, name: str) -> None:
    rep = benchmark(kernel.report, name)  # type: ignore[operator]
    assert rep.tables


def test_render_html(benchmark: pytest.FixtureRequest, kernel: Kernel) -> None:
    rep = kernel.report(ALL)
    benchmark(lambda: kernel.render(rep, "html", {"path": "unused.html"}, out=io.StringIO()))  # type: ignore[operator]


def main() -> None:
    """Print one line per report: wall seconds (best of 3) over the configured base."""
    db = _store(CONTACTS)
    print((db.parent / "ready").read_text().strip())
    k = Kernel(Settings(db=db, disable_plugin_autoload=True))
    for name in (*REPORTS, ALL):
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            rep = k.report(name)
            best = min(best, time.perf_counter() - t)
        print(f"{name:10s} {best:7.3f} s  {len(rep.tables)} tables")
    rep = k.report(ALL)
    t = time.perf_counter()
    buf = io.StringIO()
    k.render(rep, "html", {"path": "unused.html"}, out=buf)
    print(f"html       {time.perf_counter() - t:7.3f} s  {len(buf.getvalue()) // 1024} KiB")
    k.close()


if __name__ == "__main__":
    main()
