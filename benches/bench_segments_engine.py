"""Segment engine benches: 10/100/1000 generated segments over generated contacts.

By default (``--benchmark-disable``) every bench runs once on a small table as a
smoke test. For real figures::

    BENCH_SEGMENTS_SIZES=100000,1000000 .venv/bin/pytest benches/bench_segments_engine.py \\
        --benchmark-enable
    BENCH_SEGMENTS_SIZES=1000000 .venv/bin/python benches/bench_segments_engine.py  # table with CPU-s

(the table ends with the peak RSS of a process that loads the snapshot from a
file, evaluates the 1000 segments and moves the clock: the memory the engine
needs, without the generator's Python lists.)

(``CRMKIT_BENCH_ROWS`` is read too when ``BENCH_SEGMENTS_SIZES`` is not set.)

The contact table has ~20 typed columns (numbers, dates, skewed categoricals of
5-200 levels, free-text city and email, a tag list, booleans, nulls) and
interactions (purchases, email opens). Rules mix every clause kind, nested
and/or/not, about a third of the clauses drawn from a shared pool and about half
of the segments with a time window. When Polars and DuckDB are installed the same
memberships are computed with Polars lazy (all segments in one select) and DuckDB
(one query with a ``count_if`` per segment), and the counts must be identical.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crmkit._core import SegmentPlan, Snapshot

DAY = 86_400
AS_OF = 1_767_225_600  # 2026-01-01T00:00:00Z
SIZES = [
    int(x)
    for x in os.environ.get(
        "BENCH_SEGMENTS_SIZES", os.environ.get("CRMKIT_BENCH_ROWS", "20000")
    ).split(",")
    if x
]
RULE_COUNTS = [10, 100, 1000]
Tree = dict[str, Any]

TAGS = [f"tag{i}" for i in range(20)] + ["vip", "newsletter"]
DOMAINS = [f"mail{i}.com" for i in range(20)] + ["uni.edu", "college.edu", "corp.io", "gmail.com"]
CITY_PREFIX = ["San ", "Los ", "New ", "Port ", "", "", "", "Saint "]


def zipf_levels(rng: random.Random, prefix: str, k: int) -> Callable[[], str]:
    levels = [f"{prefix}{i}" for i in range(k)]
    weights = [1.0 / (i + 1) ** 1.1 for i in range(k)]
    cum = list(itertools.accumulate(weights))
    total = cum[-1]
    return lambda: levels[min(bisect.bisect(cum, rng.random() * total), k - 1)]


CATS = {"country": 60, "region": 50, "plan": 5, "industry": 200, "source": 12, "lifecycle": 6}

SCHEMA: dict[str, str] = {
    **dict.fromkeys(CATS, "string"),
    "company": "string",
    "city": "string",
    "email": "string",
    "age": "integer",
    "n_orders": "integer",
    "score": "number",
    "total_spent": "number",
    "vip": "boolean",
    "opted_in": "boolean",
    "signed_up": "date",
    "birthday": "date",
    "last_seen": "datetime",
    "last_order": "datetime",
    "tags": "list",
}


def maybe(rng: random.Random, p: float, v: Any) -> Any:
    return None if rng.random() < p else v


@functools.cache
def dataset(n: int) -> tuple[list[int], dict[str, list[Any]], dict[str, list[Any]]]:
    rng = random.Random(n)
    gens = {c: zipf_levels(rng, c[:2], k) for c, k in CATS.items()}
    company = zipf_levels(rng, "co", 1000)
    cols: dict[str, list[Any]] = {}
    for c, g in gens.items():
        cols[c] = [maybe(rng, 0.02, g()) for _ in range(n)]
    cols["company"] = [maybe(rng, 0.4, company()) for _ in range(n)]
    cols["city"] = [
        maybe(rng, 0.05, rng.choice(CITY_PREFIX) + f"ville{int(rng.paretovariate(1.2)) % 5000}")
        for _ in range(n)
    ]
    cols["email"] = [maybe(rng, 0.03, f"user{i}@{rng.choice(DOMAINS)}") for i in range(n)]
    cols["age"] = [maybe(rng, 0.05, rng.randint(18, 90)) for _ in range(n)]
    cols["n_orders"] = [int(rng.expovariate(0.3)) for _ in range(n)]
    cols["score"] = [maybe(rng, 0.1, round(rng.random() * 100, 2)) for _ in range(n)]
    cols["total_spent"] = [maybe(rng, 0.05, float(int(rng.expovariate(0.002)))) for _ in range(n)]
    cols["vip"] = [rng.random() < 0.1 for _ in range(n)]
    cols["opted_in"] = [maybe(rng, 0.03, rng.random() < 0.7) for _ in range(n)]
    cols["signed_up"] = [AS_OF - rng.randint(0, 1100) * DAY for _ in range(n)]
    cols["birthday"] = [
        maybe(rng, 0.3, AS_OF - rng.randint(18 * 365, 80 * 365) * DAY) for _ in range(n)
    ]
    cols["last_seen"] = [maybe(rng, 0.15, AS_OF - rng.randint(0, 400 * DAY)) for _ in range(n)]
    cols["last_order"] = [maybe(rng, 0.3, AS_OF - rng.randint(0, 700 * DAY)) for _ in range(n)]
    cols["tags"] = [
        maybe(rng, 0.1, rng.sample(TAGS, k=min(len(TAGS), int(rng.expovariate(0.8)))))
        for _ in range(n)
    ]
    ids = list(range(1, n + 1))
    ev: dict[str, list[Any]] = {"contact_id": [], "kind": [], "time": [], "amount": []}
    for cid in ids:
        for kind, rate in (("purchase", 0.5), ("email_open", 0.35)):
            for _ in range(int(rng.expovariate(rate))):
                ev["contact_id"].append(cid)
                ev["kind"].append(kind)
                ev["time"].append(AS_OF - rng.randint(-2 * DAY, 400 * DAY))
                ev["amount"].append(float(rng.randint(1, 300)) if kind == "purchase" else None)
    return ids, cols, ev


def date_str(t: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def clause(rng: random.Random, timed: bool) -> Tree:
    if timed:
        c = rng.randrange(5)
        if c == 0:
            return {
                "field": rng.choice(["last_seen", "last_order"]),
                "op": "within",
                "days": rng.choice([7, 30, 90, 365]),
            }
        if c == 1:
            return {
                "agg": "count",
                "kind": rng.choice(["purchase", "email_open"]),
                "days": rng.choice([30, 90, 365]),
                "op": ">=",
                "value": rng.randint(1, 3),
            }
        if c == 2:
            return {
                "agg": "sum",
                "kind": "purchase",
                "prop": "amount",
                "days": rng.choice([90, 365]),
                "op": ">",
                "value": rng.choice([50, 200, 500]),
            }
        if c == 3:
            return {
                "agg": "last",
                "kind": rng.choice(["purchase", "email_open"]),
                "op": "within",
                "days": rng.choice([14, 30, 90]),
            }
        return {"field": "signed_up", "op": "within", "days": rng.choice([30, 180, 365])}
    c = rng.randrange(12)
    cat = rng.choice(list(CATS))
    lv = CATS[cat]

    def pick() -> str:
        return f"{cat[:2]}{min(int(rng.paretovariate(1.0)) - 1, lv - 1)}"

    if c == 0:
        return {"field": cat, "op": "=", "value": pick()}
    if c == 1:
        return {
            "field": cat,
            "op": "in",
            "value": sorted({pick() for _ in range(rng.randint(2, 5))}),
        }
    if c == 2:
        if rng.random() < 0.5:
            return {"field": cat, "op": "!=", "value": pick()}
        return {
            "field": cat,
            "op": "not in",
            "value": sorted({pick() for _ in range(rng.randint(1, 3))}),
        }
    if c == 3:
        f = rng.choice(["age", "n_orders", "score", "total_spent"])
        op = rng.choice(["<", "<=", ">", ">=", "between"])
        hi = {"age": 90, "n_orders": 10, "score": 100, "total_spent": 1000}[f]
        if op == "between":
            a = rng.randint(0, hi // 2)
            return {"field": f, "op": op, "value": [a, a + rng.randint(1, hi // 2)]}
        return {"field": f, "op": op, "value": rng.randint(0, hi)}
    if c == 4:
        return {
            "field": rng.choice(["company", "score", "birthday", "age", "tags"]),
            "op": rng.choice(["is null", "is not null"]),
        }
    if c == 5:
        return {"field": rng.choice(["vip", "opted_in"]), "op": "=", "value": rng.random() < 0.5}
    if c == 6:
        return {"field": "tags", "op": "contains", "value": rng.choice(TAGS)}
    if c == 7:
        return {"field": "tags", "op": rng.choice(["in", "not in"]), "value": rng.sample(TAGS, 2)}
    if c == 8:
        return rng.choice(
            [
                {"field": "city", "op": "starts_with", "value": rng.choice(["San", "New", "Port"])},
                {"field": "email", "op": "ends_with", "value": ".edu"},
                {"field": "city", "op": "contains", "value": f"ville{rng.randint(1, 9)}"},
                {"field": "email", "op": "matches", "value": f"^user{rng.randint(1, 9)}[0-9]*@"},
            ]
        )
    if c == 9:
        return {
            "field": rng.choice(["signed_up", "birthday"]),
            "op": rng.choice(["before", "after"]),
            "value": date_str(AS_OF - rng.randint(30, 2000) * DAY),
        }
    if c == 10:
        return {
            "field": "company",
            "op": "in",
            "value": [f"co{rng.randint(0, 50)}" for _ in range(3)],
        }
    return {
        "field": "industry",
        "op": "not in",
        "value": [f"in{rng.randint(0, 30)}" for _ in range(4)],
    }


@functools.cache
def ruleset(k: int) -> list[tuple[str, Tree]]:
    rng = random.Random(1000 + k)
    pool = [clause(rng, timed=i % 3 == 0) for i in range(150)]

    def leaf(timed: bool) -> Tree:
        if not timed and rng.random() < 1 / 3:
            return rng.choice(pool)
        return clause(rng, timed)

    def tree(depth: int, n_leaves: int, timed: bool) -> Tree:
        if n_leaves <= 1 or depth > 3:
            t = leaf(timed)
            return {"not": t} if rng.random() < 0.1 else t
        split = rng.randint(1, n_leaves - 1)
        kids = [tree(depth + 1, split, timed), tree(depth + 1, n_leaves - split, False)]
        node: Tree = {rng.choice(["and", "and", "or"]): kids}
        return {"not": node} if rng.random() < 0.08 else node

    out: list[tuple[str, Tree]] = []
    for i in range(k):
        t = tree(0, rng.randint(1, 5), timed=i % 2 == 0)
        if i >= 10 and rng.random() < 0.05:
            t = {"and": [{"in_segment": out[rng.randrange(i)][0]}, t]}
        out.append((f"seg{i}", t))
    return out


@functools.cache
def snapshot(n: int) -> Snapshot:
    ids, cols, ev = dataset(n)
    return Snapshot(ids, cols, SCHEMA, ev)


@functools.cache
def plan(k: int) -> SegmentPlan:
    return SegmentPlan(ruleset(k), SCHEMA)


# -- peers ---------------------------------------------------------------------------


def agg_keys(rules: list[tuple[str, Tree]]) -> list[tuple[str, str, int | None]]:
    keys: set[tuple[str, str, int | None]] = set()

    def walk(t: Tree) -> None:
        for k in ("and", "or"):
            if k in t:
                for c in t[k]:
                    walk(c)
        if "not" in t:
            walk(t["not"])
        if "agg" in t:
            keys.add(
                (t["agg"], t["kind"], t.get("days") if t["agg"] not in ("first", "last") else None)
            )

    for _, t in rules:
        walk(t)
    return sorted(keys, key=str)


def agg_col(t: Tree) -> str:
    days = t.get("days") if t["agg"] not in ("first", "last") else None
    return f"agg_{t['agg']}_{t['kind']}_{days}"


def polars_counts(n: int, k: int) -> Callable[[], dict[str, int]]:
    import polars as pl

    _ids, cols, ev = dataset(n)
    rules = dict(ruleset(k))
    df = pl.DataFrame(
        {"row": list(range(n)), **cols}, schema_overrides={"tags": pl.List(pl.String)}
    )
    events = pl.DataFrame(
        {
            "row": [c - 1 for c in ev["contact_id"]],
            "kind": ev["kind"],
            "time": ev["time"],
            "amount": ev["amount"],
        },
        schema_overrides={"amount": pl.Float64},
    )

    def leaf(t: Tree) -> pl.Expr:
        c = pl.col(agg_col(t)) if "agg" in t else pl.col(t["field"])
        op: str = t["op"]
        v: Any = t.get("value")
        ty = SCHEMA.get(t.get("field", ""), "")
        if op == "is null":
            return c.is_null()
        if op == "is not null":
            return c.is_not_null()
        if ty in ("date", "datetime") and op in ("before", "after"):
            ts = int(time.mktime(time.strptime(v, "%Y-%m-%d"))) - time.timezone
            e = c < ts if op == "before" else c > ts
        elif op == "within":
            e = c.is_between(AS_OF - t["days"] * DAY, AS_OF)
        elif ty == "list":
            vals = [v] if op == "contains" else v
            anyof = functools.reduce(lambda a, b: a | b, [c.list.contains(x) for x in vals])
            e = (c.is_not_null() & ~anyof) if op == "not in" else anyof
        elif op == "=":
            e = c == v
        elif op == "!=":
            e = c != v
        elif op in ("<", "<=", ">", ">="):
            e = {"<": c < v, "<=": c <= v, ">": c > v, ">=": c >= v}[op]
        elif op == "in":
            e = c.is_in(v)
        elif op == "not in":
            e = c.is_not_null() & ~c.is_in(v)
        elif op == "between":
            e = c.is_between(v[0], v[1])
        elif op == "starts_with":
            e = c.str.starts_with(v)
        elif op == "ends_with":
            e = c.str.ends_with(v)
        elif op == "contains":
            e = c.str.contains(v, literal=True)
        elif op == "matches":
            e = c.str.contains(v)
        else:
            raise AssertionError(op)
        return e.fill_null(False)

    def expr(t: Tree) -> pl.Expr:
        if "and" in t:
            return functools.reduce(lambda a, b: a & b, [expr(c) for c in t["and"]])
        if "or" in t:
            return functools.reduce(lambda a, b: a | b, [expr(c) for c in t["or"]])
        if "not" in t:
            return ~expr(t["not"])
        if "in_segment" in t:
            return expr(rules[t["in_segment"]])
        return leaf(t)

    exprs = [expr(t).sum().alias(name) for name, t in rules.items()]

    def run() -> dict[str, int]:
        lf = df.lazy()
        ev_lf = events.lazy().filter(pl.col("time") <= AS_OF)
        for func, kind, days in agg_keys(list(rules.items())):
            sel = ev_lf.filter(pl.col("kind") == kind)
            if days is not None:
                sel = sel.filter(pl.col("time") >= AS_OF - days * DAY)
            name = f"agg_{func}_{kind}_{days}"
            a = {
                "count": pl.len(),
                "sum": pl.col("amount").sum(),
                "last": pl.col("time").max(),
                "first": pl.col("time").min(),
            }[func]
            g = sel.group_by("row").agg(a.alias(name))
            lf = lf.join(g, on="row", how="left")
            if func in ("count", "sum"):
                lf = lf.with_columns(pl.col(name).fill_null(0))
        out = lf.select(exprs).collect()
        return {k: int(v[0]) for k, v in out.to_dict(as_series=False).items()}

    return run


def duckdb_counts(n: int, k: int, tmp: Path) -> Callable[[], dict[str, int]]:
    import duckdb
    import polars as pl

    _ids, cols, ev = dataset(n)
    rules = dict(ruleset(k))
    pl.DataFrame(
        {"row": list(range(n)), **cols}, schema_overrides={"tags": pl.List(pl.String)}
    ).write_parquet(tmp / "c.parquet")
    pl.DataFrame(
        {
            "row": [c - 1 for c in ev["contact_id"]],
            "kind": ev["kind"],
            "time": ev["time"],
            "amount": ev["amount"],
        },
        schema_overrides={"amount": pl.Float64},
    ).write_parquet(tmp / "e.parquet")
    con = duckdb.connect()
    con.execute(f"CREATE TABLE contacts AS SELECT * FROM '{tmp / 'c.parquet'}'")
    con.execute(f"CREATE TABLE events AS SELECT * FROM '{tmp / 'e.parquet'}'")

    def q(v: Any) -> str:
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        return repr(v)

    def leaf(t: Tree) -> str:
        c = agg_col(t) if "agg" in t else f'"{t["field"]}"'
        op: str = t["op"]
        v: Any = t.get("value")
        ty = SCHEMA.get(t.get("field", ""), "")
        if op == "is null":
            return f"({c} IS NULL)"
        if op == "is not null":
            return f"({c} IS NOT NULL)"
        if op in ("before", "after"):
            ts = int(time.mktime(time.strptime(v, "%Y-%m-%d"))) - time.timezone
            e = f"{c} {'<' if op == 'before' else '>'} {ts}"
        elif op == "within":
            e = f"{c} BETWEEN {AS_OF - t['days'] * DAY} AND {AS_OF}"
        elif ty == "list":
            vals = [v] if op == "contains" else v
            anyof = f"list_has_any({c}, [{', '.join(q(x) for x in vals)}])"
            e = f"({c} IS NOT NULL AND NOT {anyof})" if op == "not in" else anyof
        elif op in ("=", "!=", "<", "<=", ">", ">="):
            e = f"{c} {op} {q(v)}"
        elif op == "in":
            e = f"{c} IN ({', '.join(q(x) for x in v)})"
        elif op == "not in":
            e = f"{c} NOT IN ({', '.join(q(x) for x in v)})"
        elif op == "between":
            e = f"{c} BETWEEN {q(v[0])} AND {q(v[1])}"
        elif op == "starts_with":
            e = f"starts_with({c}, {q(v)})"
        elif op == "ends_with":
            e = f"ends_with({c}, {q(v)})"
        elif op == "contains":
            e = f"contains({c}, {q(v)})"
        elif op == "matches":
            e = f"regexp_matches({c}, {q(v)})"
        else:
            raise AssertionError(op)
        return f"coalesce({e}, FALSE)"

    def expr(t: Tree) -> str:
        if "and" in t:
            return "(" + " AND ".join(expr(c) for c in t["and"]) + ")"
        if "or" in t:
            return "(" + " OR ".join(expr(c) for c in t["or"]) + ")"
        if "not" in t:
            return f"(NOT {expr(t['not'])})"
        if "in_segment" in t:
            return expr(rules[t["in_segment"]])
        return leaf(t)

    ctes, joins, cols_sql = [], [], []
    for i, (func, kind, days) in enumerate(agg_keys(list(rules.items()))):
        name = f"agg_{func}_{kind}_{days}"
        a = {"count": "count(*)", "sum": "sum(amount)", "last": "max(time)", "first": "min(time)"}[
            func
        ]
        win = f" AND time >= {AS_OF - days * DAY}" if days is not None else ""
        ctes.append(
            f"a{i} AS (SELECT row, {a} AS v FROM events WHERE kind = {q(kind)} AND time <= {AS_OF}{win} GROUP BY row)"
        )
        joins.append(f"LEFT JOIN a{i} ON a{i}.row = contacts.row")
        val = f"coalesce(a{i}.v, 0)" if func in ("count", "sum") else f"a{i}.v"
        cols_sql.append(f"{val} AS {name}")
    base = (
        "SELECT contacts.*"
        + "".join(f", {c}" for c in cols_sql)
        + " FROM contacts "
        + " ".join(joins)
    )
    sql = (
        ("WITH " + ", ".join([*ctes, f"base AS ({base})"]) + " ")
        + "SELECT "
        + ", ".join(f'count_if({expr(t)}) AS "{name}"' for name, t in rules.items())
        + " FROM base"
    )

    def run() -> dict[str, int]:
        row = con.execute(sql).fetchone()
        assert row is not None
        return {name: int(v) for name, v in zip(rules, row, strict=True)}

    return run


def have(mod: str) -> bool:
    try:
        __import__(mod)
    except ImportError:
        return False
    return True


# -- benches --------------------------------------------------------------------------


@pytest.mark.parametrize("k", RULE_COUNTS)
def test_compile(benchmark: Any, k: int) -> None:
    benchmark.group = "segments: compile"
    rules = ruleset(k)
    p = benchmark(SegmentPlan, rules, SCHEMA)
    assert len(p.names) == k


@pytest.mark.parametrize("n", SIZES)
def test_snapshot_build(benchmark: Any, n: int) -> None:
    benchmark.group = f"segments: snapshot build n={n}"
    ids, cols, ev = dataset(n)
    s = benchmark.pedantic(Snapshot, args=(ids, cols, SCHEMA, ev), rounds=1, iterations=1)
    assert len(s) == n


@pytest.mark.parametrize("k", RULE_COUNTS)
@pytest.mark.parametrize("n", SIZES)
def test_evaluate_engine(benchmark: Any, n: int, k: int) -> None:
    benchmark.group = f"segments: evaluate n={n} k={k}"
    snap, p = snapshot(n), plan(k)
    res = benchmark(p.evaluate, snap, AS_OF)
    assert len(res.counts()) == k


@pytest.mark.skipif(not have("polars"), reason="polars not installed")
@pytest.mark.parametrize("k", RULE_COUNTS)
@pytest.mark.parametrize("n", SIZES)
def test_evaluate_polars_lazy(benchmark: Any, n: int, k: int) -> None:
    benchmark.group = f"segments: evaluate n={n} k={k}"
    run = polars_counts(n, k)
    counts = benchmark.pedantic(run, rounds=1, iterations=1)
    assert counts == plan(k).evaluate(snapshot(n), AS_OF).counts()


@pytest.mark.skipif(not (have("duckdb") and have("polars")), reason="duckdb/polars not installed")
@pytest.mark.parametrize("k", RULE_COUNTS)
@pytest.mark.parametrize("n", SIZES)
def test_evaluate_duckdb(benchmark: Any, n: int, k: int, tmp_path: Path) -> None:
    benchmark.group = f"segments: evaluate n={n} k={k}"
    run = duckdb_counts(n, k, tmp_path)
    counts = benchmark.pedantic(run, rounds=1, iterations=1)
    assert counts == plan(k).evaluate(snapshot(n), AS_OF).counts()


@pytest.mark.parametrize("n", SIZES)
def test_advance_clock_one_day(benchmark: Any, n: int) -> None:
    """The clock moves one day: the result is moved in place and the exact
    entered / exited ids of every segment that changed come back."""
    benchmark.group = f"segments: clock +1 day n={n} k=1000"
    snap, p = snapshot(n), plan(1000)
    moved: list[Any] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        moved.append(p.evaluate(snap, AS_OF))
        return (snap, moved[-1], AS_OF + DAY), {}

    changes = benchmark.pedantic(p.advance, setup=setup, rounds=3)
    later = p.evaluate(snap, AS_OF + DAY)
    assert moved[-1] == later
    full = later.diff(p.evaluate(snap, AS_OF))
    assert changes.to_dict() == {name: d for name, d in full.items() if d[0] or d[1]}


def preview_plan(i: int) -> tuple[SegmentPlan, str]:
    """The 1000-rule plan plus a copy of rule ``i`` as ``__preview__`` (as the service previews)."""
    rules = ruleset(1000)
    name, tree = rules[i]
    return SegmentPlan([*rules, ("__preview__", tree)], SCHEMA), name


@pytest.mark.parametrize("n", SIZES)
def test_preview_one_rule(benchmark: Any, n: int) -> None:
    benchmark.group = f"segments: preview one rule n={n}"
    snap = snapshot(n)
    p, name = preview_plan(4)
    res = benchmark(p.evaluate, snap, AS_OF, ["__preview__"])
    assert res.counts()["__preview__"] == plan(1000).evaluate(snap, AS_OF).counts()[name]


def update_cycle(n: int, count: int = 20_000) -> Callable[[], Any]:
    """One single-contact update per call: ``count`` distinct changes (a random
    contact and field each, so that nearly every call changes something), then
    they repeat (and change nothing)."""
    ids, cols, _ = dataset(n)
    snap = Snapshot(ids, cols, SCHEMA)
    p = plan(1000)
    res = p.evaluate(snap, AS_OF)
    rng = random.Random(7)
    changes = []
    for _ in range(count):
        f = rng.choice(["country", "age", "plan", "tags", "total_spent", "vip", "last_seen"])
        v = {
            "country": "co1",
            "age": rng.randint(18, 90),
            "plan": "pl2",
            "tags": ["vip"],
            "total_spent": 400.0,
            "vip": True,
            "last_seen": AS_OF - DAY,
        }[f]
        changes.append((rng.choice(ids), {f: v}))
    it = iter(range(10**12))

    def one() -> Any:
        cid, vals = changes[next(it) % len(changes)]
        return p.update_contact(snap, res, cid, vals)

    one.result = res  # type: ignore[attr-defined]
    return one


@pytest.mark.parametrize("n", SIZES)
def test_update_one_contact(benchmark: Any, n: int) -> None:
    benchmark.group = "segments: update one contact (1000 segments)"
    one = update_cycle(n)
    entered, exited = benchmark(one)
    assert isinstance(entered, list) and isinstance(exited, list)


@pytest.mark.parametrize("n", SIZES)
def test_update_then_read(benchmark: Any, n: int) -> None:
    """1000 single-contact updates, then the counts read: an update only
    journals its flips and the read applies them in one batch, so a round
    divided by 1000 is an update's latency plus the amortised cost of
    applying its flips."""
    benchmark.group = "segments: 1000 updates then a read (1000 segments)"
    one = update_cycle(n)
    res = one.result  # type: ignore[attr-defined]

    def batch() -> Any:
        for _ in range(1000):
            one()
        return res.counts()

    counts = benchmark(batch)
    assert res.pending == 0 and len(counts) == 1000


# -- side-by-side table ------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def report(label: str, wall: float, cpu: float, note: str = "") -> None:
    print(f"{label:44} {wall:9.4f} {cpu:9.4f}  {note}", flush=True)


def memory_child(path: str) -> None:
    """In a process of its own: load the snapshot saved at ``path``, evaluate
    the 1000 segments and move the clock one day; print the peak RSS (bytes)
    after each step, as JSON."""
    import json

    def peak() -> int:
        # VmHWM, not ru_maxrss: the latter starts from the parent's peak
        # (it is kept through fork and exec on Linux).
        with open("/proc/self/status", encoding="ascii") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        return kib * 1024

    out = {"start": peak()}
    snap, _ = Snapshot.load(path)
    out["loaded"] = peak()
    p = plan(1000)
    res = p.evaluate(snap, AS_OF)
    out["evaluated"] = peak()
    p.advance(snap, res, AS_OF + DAY)
    out["advanced"] = peak()
    print(json.dumps(out))


def memory_report(n: int, snap: Snapshot) -> None:
    """Peak RSS of a process that holds only the snapshot (loaded from a
    file), the plan and the results: what the engine's memory target counts."""
    import json
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "snap.bin")
        snap.save(path, "")
        got = subprocess.run(
            [sys.executable, __file__, "--memory", path], capture_output=True, text=True, check=True
        )
    m = json.loads(got.stdout)
    gb = {k: v / 1e9 for k, v in m.items()}
    print(
        f"memory n={n} k=1000 (peak RSS, GB): interpreter {gb['start']:.2f}, "
        f"snapshot loaded {gb['loaded']:.2f}, evaluated {gb['evaluated']:.2f}, "
        f"clock moved {gb['advanced']:.2f}",
        flush=True,
    )


def main() -> None:
    print(f"{'what':44} {'wall s':>9} {'CPU s':>9}")
    for k in RULE_COUNTS:
        rules = ruleset(k)
        w, c, _ = timed(functools.partial(SegmentPlan, rules, SCHEMA))
        report(f"compile k={k}", w, c)
    for n in SIZES:
        ids, cols, ev = dataset(n)
        w, c, snap = timed(functools.partial(Snapshot, ids, cols, SCHEMA, ev))
        report(f"snapshot build n={n}", w, c)
        for k in RULE_COUNTS:
            p = plan(k)
            p.evaluate(snap, AS_OF)
            w, c, res = timed(functools.partial(p.evaluate, snap, AS_OF))
            report(f"engine      n={n} k={k}", w, c)
            counts = res.counts()
            with tempfile.TemporaryDirectory() as d:
                peers: list[tuple[str, Callable[[], Callable[[], dict[str, int]]]]] = []
                if have("polars"):
                    peers.append(("polars-lazy", functools.partial(polars_counts, n, k)))
                    if have("duckdb"):
                        peers.append(("duckdb", functools.partial(duckdb_counts, n, k, Path(d))))
                for label, make in peers:
                    run = make()
                    w, c, other = timed(run)
                    same = "same counts" if other == counts else "COUNTS DIFFER"
                    report(f"{label:11} n={n} k={k}", w, c, same)
        p = plan(1000)
        base = p.evaluate(snap, AS_OF)
        full = base.counts()
        # The result moves in place: `base` is at AS_OF + 1 day afterwards.
        w, c, changes = timed(functools.partial(p.advance, snap, base, AS_OF + DAY))
        flips = sum(e + x for e, x in changes.counts().values())
        report(f"clock +1 day n={n} k=1000", w, c, f"{flips} memberships flipped (exact diffs)")
        took = []
        for i in range(0, 1000, 25):
            pp, name = preview_plan(i)
            w, c, r = timed(functools.partial(pp.evaluate, snap, AS_OF, ["__preview__"]))
            assert r.counts()["__preview__"] == full[name]
            took.append(w * 1000)
        took.sort()
        print(
            f"preview one rule n={n} (40 rules): median {statistics.median(took):.1f} ms, "
            f"p90 {took[int(len(took) * 0.9)]:.1f} ms",
            flush=True,
        )
        one = update_cycle(n)
        lat = []
        for _ in range(20000):
            t0 = time.perf_counter_ns()
            one()
            lat.append(time.perf_counter_ns() - t0)
        lat.sort()
        med, p99 = statistics.median(lat) / 1000, lat[int(len(lat) * 0.99)] / 1000
        print(f"update one contact n={n} k=1000: median {med:.1f} us, p99 {p99:.1f} us")
        memory_report(n, snap)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--memory"]:
        memory_child(sys.argv[2])
    else:
        main()
