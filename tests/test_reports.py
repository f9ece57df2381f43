"""Reports: numbers checked against plain-Python computations over the source data."""

from __future__ import annotations

import io
import json
import random
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crmkit.cli import build_cli
from crmkit.kernel import Kernel
from crmkit.kinds import Report, Table
from crmkit.reports import ALL, CONTACT_COLUMNS, REPORTS, ReportOptions, build_report
from crmkit.sample import generate
from crmkit.settings import Settings

DAY = 86_400
REPORTERS = ("terminal", "json", "csv", "jsonl", "html")


def _kernel(path: Path) -> Kernel:
    return Kernel(Settings(db=path / "crm.db", disable_plugin_autoload=True))


def _table(report: Report, title: str) -> Table:
    found = [t for t in report.tables if t.title == title]
    assert len(found) == 1, f"{title!r} in {[t.title for t in report.tables]}"
    return found[0]


def _month(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m")


def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _pct(a: float, b: float) -> float | None:
    return round(100.0 * a / b, 1) if b else None


class Sample:
    """A generated base imported into a store, and its source lines."""

    def __init__(self, root: Path) -> None:
        info = generate(root / "data", contacts=700, seed=7)
        self.kernel = _kernel(root)
        self.kernel.import_file(info.contacts_path)
        assert info.interactions_path is not None
        imported = self.kernel.import_file(info.interactions_path)
        self.lines = [
            json.loads(x) for x in info.interactions_path.read_text(encoding="utf-8").splitlines()
        ]
        assert imported.interactions_added == len(self.lines), "every interaction imported"
        conn: sqlite3.Connection = self.kernel.store.conn  # type: ignore[attr-defined]
        self.contacts = [
            dict(zip([d[0] for d in cur.description], row, strict=True))
            for cur in [conn.execute("SELECT * FROM contacts WHERE merged_into IS NULL")]
            for row in cur.fetchall()
        ]
        # Identity only: which contact an email of the source file belongs to.
        by_email = {c["email"].lower(): c["id"] for c in self.contacts if c["email"]}
        for d in self.lines:
            d["cid"] = by_email[d["email"].strip().lower()]
            d["t"] = _epoch(d["occurred_at"])


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
    s = Sample(tmp_path_factory.mktemp("reports"))
    yield s
    s.kernel.close()


# -- sales --------------------------------------------------------------------------------


def test_revenue_by_month_matches_the_source_file(sample: Sample) -> None:
    rev: dict[str, float] = defaultdict(float)
    orders: Counter[str] = Counter()
    buyers: dict[str, set[int]] = defaultdict(set)
    for d in sample.lines:
        if d["kind"] == "purchase":
            m = d["occurred_at"][:7]
            rev[m] += d["amount"]
            orders[m] += 1
            buyers[m].add(d["cid"])
    table = _table(sample.kernel.report("sales"), "Revenue by month")
    got = {r[0]: r[1:] for r in table.rows}
    assert set(rev) <= set(got)
    for m, (revenue, n, b) in got.items():
        assert revenue == pytest.approx(rev.get(m, 0.0), abs=0.01), m
        assert n == orders.get(m, 0)
        assert b == len(buyers.get(m, ()))
    assert table.note is not None and "summed as recorded" in table.note, "mixed currencies"


def test_lead_conversion_and_first_touch(sample: Sample) -> None:
    first: dict[int, int] = {}
    bought: set[int] = set()
    for d in sample.lines:
        first[d["cid"]] = min(first.get(d["cid"], d["t"]), d["t"])
        if d["kind"] == "purchase":
            bought.add(d["cid"])
    rep = sample.kernel.report("sales")
    lead = dict(_table(rep, "Lead conversion").rows)
    assert lead["contacts"] == len(sample.contacts)
    assert lead["customers (bought at least once)"] == len(bought)
    assert lead["conversion %"] == _pct(len(bought), len(sample.contacts))
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for cid, t in first.items():
        per[_month(t)][0] += 1
        per[_month(t)][1] += cid in bought
    rows = {r[0]: r[1:] for r in _table(rep, "Conversion by first-touch month").rows}
    for m, (n, c) in per.items():
        assert rows[m] == [n, c, _pct(c, n)]


def test_retention_cohort_triangle(sample: Sample) -> None:
    months: dict[int, set[int]] = defaultdict(set)
    for d in sample.lines:
        if d["kind"] == "purchase":
            y, m = int(d["occurred_at"][:4]), int(d["occurred_at"][5:7])
            months[d["cid"]].add(y * 12 + m - 1)
    last = max(max(v) for v in months.values())
    cohorts: dict[int, list[set[int]]] = defaultdict(list)
    for _cid, ms in months.items():
        cohorts[min(ms)].append(ms)
    width = ReportOptions().cohort_months
    table = _table(sample.kernel.report("sales"), "Retention by first-purchase month")
    assert table.chart == "cohort"
    assert len(table.rows) == min(width, len(cohorts))
    for row in table.rows:
        c = int(row[0][:4]) * 12 + int(row[0][5:7]) - 1
        members = cohorts[c]
        assert row[1] == len(members)
        for k in range(width):
            want = (
                _pct(sum(1 for ms in members if c + k in ms), len(members))
                if c + k <= last
                else None
            )
            assert row[2 + k] == want, (row[0], k)


def test_feedback_scores_by_month(sample: Sample) -> None:
    scores: dict[str, list[int]] = defaultdict(list)
    for d in sample.lines:
        if d["kind"] == "feedback":
            scores[d["occurred_at"][:7]].append(d["score"])
    assert scores, "the sample has feedback"
    table = _table(sample.kernel.report("sales"), "Feedback scores by month")
    got = {r[0]: r[1:] for r in table.rows}
    assert set(got) == set(scores)
    for m, s in scores.items():
        n = len(s)
        promoters = sum(1 for x in s if x >= 9)
        detractors = sum(1 for x in s if x <= 6)
        nps = round(100.0 * (promoters - detractors) / n, 1)
        csat = _pct(sum(1 for x in s if x >= 8), n)
        assert got[m] == [nps, csat, round(sum(s) / n, 2), n]


def test_engagement_by_campaign(sample: Sample) -> None:
    opened: dict[str, set[int]] = defaultdict(set)
    clicked: dict[str, dict[int, int]] = defaultdict(dict)
    purchases: dict[int, list[int]] = defaultdict(list)
    for d in sample.lines:
        if d["kind"] == "email_open":
            opened[d["campaign"]].add(d["cid"])
        elif d["kind"] == "email_click":
            prev = clicked[d["campaign"]].get(d["cid"])
            clicked[d["campaign"]][d["cid"]] = d["t"] if prev is None else min(prev, d["t"])
        elif d["kind"] == "purchase":
            purchases[d["cid"]].append(d["t"])
    table = _table(sample.kernel.report("campaigns"), "Email engagement by campaign")
    assert table.rows
    for name, o, k, _ctr, conv, _rate in table.rows:
        assert o == len(opened[name])
        assert k == len(clicked[name])
        want = sum(
            1
            for cid, t in clicked[name].items()
            if any(t <= p < t + 30 * DAY for p in purchases[cid])
        )
        assert conv == want, name


# -- customers ----------------------------------------------------------------------------


def test_customers_counts_and_completeness(sample: Sample) -> None:
    rep = sample.kernel.report("customers")
    n = len(sample.contacts)
    countries = Counter(c["country"] or "(none)" for c in sample.contacts)
    rows = {r[0]: r[1:] for r in _table(rep, "Contacts by country").rows}
    for country, count in countries.most_common(ReportOptions().top):
        assert rows[country] == [count, _pct(count, n)]
    assert sum(r[0] for r in rows.values()) == n
    sources = Counter(c["source"] for c in sample.contacts)
    assert {r[0]: r[1] for r in _table(rep, "Contacts by source").rows} == dict(sources)

    filled = {r[0]: r[2] for r in _table(rep, "Field completeness").rows}
    for col in CONTACT_COLUMNS:
        want = sum(
            1
            for c in sample.contacts
            if c[col] not in (None, "") and not (col == "tags" and json.loads(c[col]) == [])
        )
        assert filled[col] == want, col
    attrs = [json.loads(c["attrs"]) if c["attrs"] else {} for c in sample.contacts]
    assert filled["plan"] == sum(1 for a in attrs if a.get("plan") not in (None, ""))

    signups = Counter(a["signed_up"][:7] for a in attrs if a.get("signed_up"))
    shown = {r[0]: r[1] for r in _table(rep, "Sign-ups by month").rows}
    for m, count in shown.items():
        assert count == signups.get(m, 0)
    growth = _table(rep, "Contacts added by month").rows
    assert growth[-1][2] == n


# -- synthetic outbox, segments and merges ------------------------------------------------


def _seed_operations(kernel: Kernel, seed: int) -> dict[str, Any]:
    """Random deliveries, segment runs, memberships and merges written straight to the store."""
    rng = random.Random(seed)
    conn: sqlite3.Connection = kernel.store.conn  # type: ignore[attr-defined]
    ids = [r[0] for r in conn.execute("SELECT id FROM contacts WHERE merged_into IS NULL")]
    t0 = 1_700_000_000
    purchases = [(rng.choice(ids), t0 + rng.randint(-5, 60) * DAY) for _ in range(300)]
    with kernel.store.transaction():
        conn.executemany(
            "INSERT INTO interactions (contact_id, kind, occurred_at, amount) "
            "VALUES (?, 'purchase', ?, 10.0)",
            purchases,
        )
        deliveries = []
        statuses = ["queued", "sent", "delivered", "delivered", "bounced", "complained", "failed"]
        for i in range(400):
            deliveries.append(
                (
                    f"k{i}",
                    rng.choice(["a", "b", None]),
                    rng.choice(ids),
                    rng.choice(["email", "sms"]),
                    rng.choice(statuses),
                    t0 + rng.randint(0, 20) * DAY,
                )
            )
        conn.executemany(
            "INSERT INTO deliveries (key, campaign, contact_id, channel, status, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, 0)",
            deliveries,
        )
        segs = ["s1", "s2", "s3"]
        conn.executemany(
            "INSERT INTO segments (name, created_at, updated_at) VALUES (?, 0, 0)",
            [(s,) for s in segs],
        )
        members: dict[str, set[int]] = {s: set() for s in segs}
        history: list[tuple[int, str, int, int]] = []  # run, segment, entered, exited
        sizes: dict[tuple[int, str], int] = {}
        for run in range(1, 5):
            conn.execute(
                "INSERT INTO segment_runs (id, started_at, as_of) VALUES (?, ?, ?)",
                (run, t0 + run * DAY, t0 + run * DAY),
            )
            for s in segs:
                want = {c for c in ids if rng.random() < 0.3}
                gone, new = members[s] - want, want - members[s]
                conn.executemany(
                    "UPDATE memberships SET exited_at = ?, exited_run = ? "
                    "WHERE segment = ? AND contact_id = ? AND exited_at IS NULL",
                    [(t0 + run * DAY, run, s, c) for c in gone],
                )
                conn.executemany(
                    "INSERT INTO memberships (segment, contact_id, entered_at, entered_run) "
                    "VALUES (?, ?, ?, ?)",
                    [(s, c, t0 + run * DAY, run) for c in new],
                )
                members[s] = want
                history.append((run, s, len(new), len(gone)))
                sizes[(run, s)] = len(want)
        merges = []
        for i in range(25):
            merges.append(
                (
                    ids[i],
                    json.dumps(ids[-1 - i : len(ids) - i][:1] + ([ids[-30]] if i % 5 == 0 else [])),
                    round(rng.uniform(0.5, 1.0), 3),
                    t0 + rng.randint(0, 90) * DAY,
                    t0 + 100 * DAY if i % 4 == 0 else None,
                )
            )
        conn.executemany(
            "INSERT INTO merges (survivor_id, merged_ids, score, created_at, undone_at) "
            "VALUES (?, ?, ?, ?, ?)",
            merges,
        )
    return {
        "purchases": purchases,
        "deliveries": deliveries,
        "members": members,
        "history": history,
        "sizes": sizes,
        "merges": merges,
        "segments": segs,
    }


@pytest.fixture(scope="module")
def operated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kernel, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("ops")
    info = generate(root / "data", contacts=300, seed=3, with_interactions=False)
    k = _kernel(root)
    k.import_file(info.contacts_path)
    truth = _seed_operations(k, seed=11)
    yield k, truth
    k.close()


def test_campaign_funnel(operated: tuple[Kernel, dict[str, Any]]) -> None:
    kernel, truth = operated
    days = 14
    rep = build_report(kernel, "campaigns", options=ReportOptions(conversion_days=days))
    buys: dict[int, list[int]] = defaultdict(list)
    for cid, t in truth["purchases"]:
        buys[cid].append(t)
    expect: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for _key, campaign, cid, channel, status, t in truth["deliveries"]:
        c = expect[(campaign or "(none)", channel)]
        c["queued"] += 1
        c["sent"] += status in ("sent", "delivered", "bounced", "complained")
        c["delivered"] += status in ("delivered", "complained")
        c["status:" + status] += 1
        c["converted"] += status in ("sent", "delivered", "complained") and any(
            t <= p < t + days * DAY for p in buys[cid]
        )
    rows = _table(rep, "Funnel by campaign and channel").rows
    assert len(rows) == len(expect)
    for camp, ch, q, s, d, b, cp, f, cv, drate, crate in rows:
        e = expect[(camp, ch)]
        assert [q, s, d, b, cp, f, cv] == [
            e["queued"],
            e["sent"],
            e["delivered"],
            e["status:bounced"],
            e["status:complained"],
            e["status:failed"],
            e["converted"],
        ]
        assert drate == _pct(e["delivered"], e["sent"])
        assert crate == _pct(e["converted"], e["sent"])
    total: Counter[str] = sum(expect.values(), Counter())
    funnel = {r[0]: r[1] for r in _table(rep, "Campaign funnel").rows}
    assert funnel == {
        "queued": total["queued"],
        "sent": total["sent"],
        "delivered": total["delivered"],
        "bounced": total["status:bounced"],
        "complained": total["status:complained"],
        "converted": total["converted"],
    }
    assert total["converted"] > 0, "the data exercises conversions"


def test_segments_over_runs_and_overlap(operated: tuple[Kernel, dict[str, Any]]) -> None:
    kernel, truth = operated
    rep = kernel.report("segments")
    sizes = {r[0]: r[1] for r in _table(rep, "Segment sizes").rows}
    assert sizes == {s: len(m) for s, m in truth["members"].items()}
    over = _table(rep, "Segment sizes over runs")
    segs = over.columns[2:]
    for row in over.rows:
        run = int(row[0][1:])
        assert row[2:] == [truth["sizes"][(run, s)] for s in segs]
    moves = {(int(r[0][1:]), r[2]): r[3:] for r in _table(rep, "Entered and exited per run").rows}
    for run, s, entered, exited in truth["history"]:
        assert moves[(run, s)] == [entered, exited, truth["sizes"][(run, s)]]
    overlap = _table(rep, "Segment overlap")
    names = overlap.columns[1:]
    for row in overlap.rows:
        for b, n in zip(names, row[1:], strict=True):
            assert n == len(truth["members"][row[0]] & truth["members"][b])
    revenue = {r[0]: r[1:] for r in _table(kernel.report("sales"), "Revenue by segment").rows}
    spent: Counter[int] = Counter()
    for cid, _t in truth["purchases"]:
        spent[cid] += 10
    for s, m in truth["members"].items():
        assert revenue[s][0] == pytest.approx(sum(spent[c] for c in m))
        assert revenue[s][1:] == [len(m), sum(1 for c in m if spent[c])]


def test_quality_merges_and_scores(operated: tuple[Kernel, dict[str, Any]]) -> None:
    kernel, truth = operated
    rep = kernel.report("quality")
    m = dict(_table(rep, "Merges").rows)
    merges = truth["merges"]
    undone = [x for x in merges if x[4] is not None]
    assert m["merges applied"] == len(merges)
    assert m["merges undone"] == len(undone)
    assert m["merges standing"] == len(merges) - len(undone)
    assert m["records merged by standing merges"] == sum(
        len(json.loads(x[1])) for x in merges if x[4] is None
    )
    hist = _table(rep, "Match score distribution").rows
    assert sum(r[1] for r in hist) == len(merges)
    for label, n in hist:
        lo, hi = (float(x) for x in label.split("-"))
        inside = [x for x in merges if lo <= x[2] < hi or (hi == 1.0 and x[2] == 1.0)]
        assert n == len(inside), label
    by_month = {r[0]: r[1:] for r in _table(rep, "Merges by month").rows}
    made = Counter(_month(x[3]) for x in merges)
    gone = Counter(_month(x[4]) for x in undone)
    for month in set(made) | set(gone):
        assert by_month[month] == [made[month], gone[month]]


def test_rfm_grid_when_scores_exist(
    operated: tuple[Kernel, dict[str, Any]], tmp_path: Path
) -> None:
    kernel, _truth = operated
    assert not [t for t in kernel.report("segments").tables if t.title.startswith("RFM")]
    k = _kernel(tmp_path)
    info = generate(tmp_path / "d", contacts=60, seed=5, with_interactions=False)
    k.import_file(info.contacts_path)
    ids = [c.id for c in k.find_contacts(limit=1000)]
    rng = random.Random(2)
    r = [rng.randint(1, 3) for _ in ids]
    f = [rng.randint(1, 2) for _ in ids]
    with k.store.transaction():
        k.store.declare_attributes({"rfm_r": "integer", "rfm_f": "integer"}, source="test")
        k.store.set_attributes(ids, {"rfm_r": r, "rfm_f": f})
    grid = _table(k.report("segments"), "RFM grid: contacts")
    assert grid.chart == "heatmap"
    assert grid.columns == ["R \\ F", "F1", "F2"]
    count = Counter(zip(r, f, strict=True))
    assert grid.rows == [[f"R{x}", count[(x, 1)], count[(x, 2)]] for x in (3, 2, 1)]
    k.close()


# -- edges --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*REPORTS, ALL])
def test_every_report_on_an_empty_store(tmp_path: Path, name: str) -> None:
    k = _kernel(tmp_path)
    rep = k.report(name)
    assert rep.tables
    for use in REPORTERS:
        cfg: dict[str, Any] = {"path": str(tmp_path / "r.html")} if use == "html" else {}
        k.render(rep, use, cfg, out=io.StringIO())
    k.close()


@pytest.mark.parametrize("name", [*REPORTS, ALL])
def test_every_report_with_one_contact(tmp_path: Path, name: str) -> None:
    (tmp_path / "c.csv").write_text("email,first_name,country\nann@example.com,Ann,FR\n")
    (tmp_path / "i.jsonl").write_text(
        json.dumps(
            {
                "email": "ann@example.com",
                "kind": "purchase",
                "occurred_at": "2025-03-04T05:06:07Z",
                "amount": 12.5,
            }
        )
        + "\n"
        + json.dumps(
            {
                "email": "ann@example.com",
                "kind": "feedback",
                "occurred_at": "2025-03-05T05:06:07Z",
                "score": 10,
            }
        )
        + "\n"
    )
    k = _kernel(tmp_path)
    k.import_file(tmp_path / "c.csv")
    k.import_file(tmp_path / "i.jsonl")
    rep = k.report(name)
    for use in REPORTERS:
        cfg: dict[str, Any] = {"path": str(tmp_path / "r.html")} if use == "html" else {}
        k.render(rep, use, cfg, out=io.StringIO())
    if name in ("sales", ALL):
        assert _table(rep, "Revenue by month").rows == [["2025-03", 12.5, 1, 1]]
        assert _table(rep, "Retention by first-purchase month").rows[0][:3] == ["2025-03", 1, 100.0]
        assert _table(rep, "Feedback scores by month").rows == [["2025-03", 100.0, 100.0, 10.0, 1]]
    k.close()


def test_unknown_report(tmp_path: Path) -> None:
    from crmkit.errors import ConfigError

    k = _kernel(tmp_path)
    with pytest.raises(ConfigError, match="unknown report 'nope'"):
        k.report("nope")
    k.close()


def test_all_holds_every_report_as_sections(tmp_path: Path) -> None:
    k = _kernel(tmp_path)
    seen: list[str] = []
    rep = build_report(k, ALL, progress=seen.append)
    assert seen == list(REPORTS)
    sections = list(dict.fromkeys(t.section for t in rep.tables))
    assert sections == [build_report(k, n).title for n in REPORTS]
    k.close()


# -- CLI ----------------------------------------------------------------------------------


def test_cli_report_formats(tmp_path: Path) -> None:
    db = str(tmp_path / "crm.db")
    runner = CliRunner()
    cli = build_cli()
    res = runner.invoke(cli, ["--db", db, "report", "sales", "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["title"] == "Sales and service"
    out = tmp_path / "r.html"
    res = runner.invoke(cli, ["--db", db, "report", "all", "--format", "html", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    res = runner.invoke(cli, ["--db", db, "report", "all", "--format", "html"])
    assert res.exit_code == 2
    assert "--out is required" in res.stderr
    res = runner.invoke(cli, ["--db", db, "report", "nope"])
    assert res.exit_code == 2
