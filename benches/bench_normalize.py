"""Throughput of bulk normalization and of the streaming CSV reader.

Run for real with ``pytest benches/bench_normalize.py --benchmark-enable``; rows/s
is in each benchmark's ``extra_info``.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from crmkit import _core

ROWS = 100_000
CSV_ROWS = 200_000
FIRST = ["ann", "BOB", "Chloé", "dmitri", "Eve", "o'brien", "MARY-ANN", "van der berg"]
LAST = ["Lee", "SMITH", "müller", "McDonald", "garcía", "Nguyen", "O'NEIL", "de la cruz"]
COUNTRIES = ["US", "USA", "United States", "UK", "Deutschland", "france", "", "Canada"]


def _row(rng: random.Random, i: int) -> dict[str, str | None]:
    shape = rng.randrange(6)
    phone = [
        f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}",
        f"+1 {rng.randint(201, 989)} {rng.randint(200, 999)} {rng.randint(0, 9999):04d}",
        f"020 7946 {rng.randint(0, 9999):04d}",
        f"+49 30 {rng.randint(100000, 9999999)}",
        f"{rng.randint(201, 989)}.{rng.randint(200, 999)}.{rng.randint(0, 9999):04d} x12",
        "n/a",
    ][shape]
    return {
        "email": f" User{i}+tag@Example{i % 50}.COM " if i % 13 else "not-an-email",
        "phone": phone,
        "first_name": rng.choice(FIRST),
        "last_name": rng.choice(LAST),
        "country": rng.choice(COUNTRIES) or None,
        "postcode": f"{rng.randint(1000, 99999)}",
        "company": f"Company {i % 1000}",
    }


def _columns(n: int) -> dict[str, list[str | None]]:
    rng = random.Random(7)
    rows = [_row(rng, i) for i in range(n)]
    return {k: [r[k] for r in rows] for k in rows[0]}


def test_bench_normalize_contact_columns(benchmark: BenchmarkFixture) -> None:
    cols = _columns(ROWS)
    out, issues = benchmark(_core.normalize_contact_columns, cols, default_region="US")
    assert len(out["email"]) == ROWS
    assert issues
    if benchmark.stats:
        benchmark.extra_info["rows_per_s"] = round(ROWS / benchmark.stats.stats.mean)


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "contacts.csv"
    rng = random.Random(11)
    with path.open("w", encoding="utf-8") as f:
        f.write("email,phone,first_name,last_name,country,postcode,company\n")
        for i in range(CSV_ROWS):
            r = _row(rng, i)
            f.write(",".join(f'"{v}"' if v and "," in v else (v or "") for v in r.values()))
            f.write("\n")
    return path


def test_bench_csv_reader(benchmark: BenchmarkFixture, big_csv: Path) -> None:
    def read() -> int:
        n = 0
        for _, lines, _, _ in _core.CsvReader(big_csv):
            n += len(lines)
        return n

    assert benchmark(read) == CSV_ROWS
    if benchmark.stats:
        benchmark.extra_info["rows_per_s"] = round(CSV_ROWS / benchmark.stats.stats.mean)


def test_bench_csv_then_normalize(benchmark: BenchmarkFixture, big_csv: Path) -> None:
    def pipeline() -> int:
        n = 0
        reader = _core.CsvReader(big_csv)
        for columns, lines, _, _ in reader:
            cols = dict(zip(reader.headers, columns, strict=True))
            _core.normalize_contact_columns(cols)
            n += len(lines)
        return n

    assert benchmark(pipeline) == CSV_ROWS
    if benchmark.stats:
        benchmark.extra_info["rows_per_s"] = round(CSV_ROWS / benchmark.stats.stats.mean)
