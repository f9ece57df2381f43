"""What evidence the true duplicate pairs of the generated data carry: a ceiling for any matcher.

The accuracy targets of dedupe are measured on :func:`crmkit.sample.generate`
output. Some of its duplicates share nothing a matcher could use, or only a
name that other people carry too; no matcher can find those without labels.
:func:`evidence_census` sorts every true pair (two rows of one entity in
``truth.csv``) by what its raw cells share, with simple comparisons that do
not depend on crmkit's matcher:

- ``identified``: an identifier agrees: email (whole address or local part),
  phone (last seven digits, or one digit off), postcode, street (first word
  and number), birth date or company;
- ``name_only_unique``: only the names agree (first and last name, written the
  same after case folding, or swapped), and no row of another entity carries
  that name: a matcher with exact name frequencies could still find it;
- ``name_only_shared``: only the names agree, and another entity has the same
  name: the pair is a coin toss between namesakes;
- ``weak``: no identifier and not the full name, but some cell agrees (one of
  the names, city, state);
- ``none``: no cell agrees at all (``hopeless``).

Run on the peers bench's cached input (``CRMKIT_BENCH_ROWS`` rows, default
100,000)::

    .venv/bin/pytest benches/bench_dedupe_evidence.py --benchmark-enable -s

By default (``--benchmark-disable``) it runs once on 2,000 rows as a smoke test.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

CLASSES = ("identified", "name_only_unique", "name_only_shared", "weak", "none")
"""The classes of :func:`evidence_census`, strongest evidence first."""


def _fold(s: str) -> str:
    return " ".join(s.lower().replace(".", " ").replace(",", " ").split())


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def _one_off(a: str, b: str) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) <= 1


def _agrees(a: str, b: str) -> bool:
    return bool(a) and a == b


def _identifier(x: dict[str, str], y: dict[str, str]) -> bool:
    """Whether rows `x` and `y` agree on an identifier (see the module doc)."""
    ea, eb = _fold(x["email"]), _fold(y["email"])
    if ea and eb and (ea == eb or ea.split("@")[0] == eb.split("@")[0]):
        return True
    pa, pb = _digits(x["phone"])[-7:], _digits(y["phone"])[-7:]
    if len(pa) == 7 and len(pb) == 7 and _one_off(pa, pb):
        return True
    if _agrees(_fold(x["postcode"]).replace(" ", ""), _fold(y["postcode"]).replace(" ", "")):
        return True
    sa, sb = _fold(x["street"]).split()[:2], _fold(y["street"]).split()[:2]
    if sa and sa == sb:
        return True
    return _agrees(x["birth"].strip(), y["birth"].strip()) or _agrees(
        _fold(x["company"]), _fold(y["company"])
    )


_COLUMNS = {
    "first": "First Name",
    "last": "Last Name",
    "email": "Email",
    "phone": "Phone",
    "postcode": "Postcode",
    "street": "Street",
    "city": "City",
    "state": "State",
    "birth": "Birth Date",
    "company": "Company",
}


def evidence_census(contacts: Path, truth: Sequence[str]) -> dict[str, int]:
    """Count the true pairs of ``contacts`` (rows grouped by ``truth``) per class of
    :data:`CLASSES`."""
    with contacts.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        at = {k: header.index(h) for k, h in _COLUMNS.items()}
        rows = [{k: r[j] for k, j in at.items()} for r in reader]
    names = [(_fold(r["first"]), _fold(r["last"])) for r in rows]
    owners: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for (first, last), entity in zip(names, truth, strict=True):
        if first and last:
            owners[tuple(sorted((first, last)))].add(entity)
    groups: dict[str, list[int]] = defaultdict(list)
    for r, entity in enumerate(truth):
        groups[entity].append(r)
    out: Counter[str] = Counter({c: 0 for c in CLASSES})
    for rs in groups.values():
        for a, b in combinations(rs, 2):
            x, y = rows[a], rows[b]
            (fa, la), (fb, lb) = names[a], names[b]
            if _identifier(x, y):
                out["identified"] += 1
            elif fa and la and {fa, la} == {fb, lb}:
                key = tuple(sorted((fa, la)))
                shared = len(owners[key]) > 1
                out["name_only_shared" if shared else "name_only_unique"] += 1
            elif (
                _agrees(fa, fb)
                or _agrees(la, lb)
                or _agrees(_fold(x["city"]), _fold(y["city"]))
                or _agrees(_fold(x["state"]), _fold(y["state"]))
            ):
                out["weak"] += 1
            else:
                out["none"] += 1
    return dict(out)


def _root(parent: dict[int, int], x: int) -> int:
    while parent[x] != x:
        x = parent[x]
    return x


def linked_pairs(contacts: Path, truth: Sequence[str]) -> tuple[int, int]:
    """``(linked, total)``: the true pairs whose two rows are joined by a chain of
    rows of their entity, each link agreeing on an identifier (see
    :func:`evidence_census`), and all true pairs. Clusters may be found through
    such chains, so this is the recall a matcher reaches with identifiers only."""
    with contacts.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        at = {k: header.index(h) for k, h in _COLUMNS.items()}
        rows = [{k: r[j] for k, j in at.items()} for r in reader]
    groups: dict[str, list[int]] = defaultdict(list)
    for r, entity in enumerate(truth):
        groups[entity].append(r)
    linked = total = 0
    for rs in groups.values():
        parent = {r: r for r in rs}
        for a, b in combinations(rs, 2):
            if _identifier(rows[a], rows[b]):
                parent[_root(parent, a)] = _root(parent, b)
        sizes = Counter(_root(parent, r) for r in rs)
        linked += sum(k * (k - 1) // 2 for k in sizes.values())
        total += len(rs) * (len(rs) - 1) // 2
    return linked, total


def test_evidence_census(benchmark: Any, bench_size: Any) -> None:
    """Print the share of true pairs in each class (a smoke test when disabled)."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    from bench_dedupe_peers import read_truth, sample_dir

    n = bench_size(100_000, 2000)
    d = sample_dir(n)
    truth = read_truth(d / "truth.csv")
    counts = benchmark.pedantic(
        evidence_census, args=(d / "contacts.csv", truth), rounds=1, iterations=1
    )
    total = sum(counts.values())
    assert total > 0 and set(counts) == set(CLASSES)
    print(f"\ntrue pairs at {n:,} rows: {total:,}")
    for c in CLASSES:
        print(f"  {c:18s} {counts[c]:9,d}  {counts[c] / total:7.2%}")
    linked, all_pairs = linked_pairs(d / "contacts.csv", truth)
    assert all_pairs == total and counts["identified"] <= linked <= total
    print(f"  linked by identifiers, through chains: {linked:,} ({linked / total:.2%})")
