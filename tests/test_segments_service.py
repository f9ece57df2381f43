"""Segments over the store: definitions, runs with history, preview, explain, CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmkit import _core
from crmkit.cli import build_cli
from crmkit.errors import NotFoundError, RuleError
from crmkit.kernel import Kernel
from crmkit.plugins import make_plugin_manager
from crmkit.records import Segment
from crmkit.settings import Settings

DAY = 86400
AS_OF = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(Settings(db=tmp_path / "crm.db", disable_plugin_autoload=True))
    r = k.store.upsert_contacts(
        {
            "email": [f"c{i}@example.com" for i in range(6)],
            "country": ["US", "US", "GB", None, "US", "DE"],
            "tags": [["vip"], [], ["vip", "new"], None, ["new"], ["vip"]],
            "plan": ["pro", "free", "pro", None, "pro", "free"],
        },
        key="email",
        source="t",
    )
    k.store.declare_attributes({"plan": "string"}, source="t")
    ids = [i for i in r.ids if i is not None]
    # purchases: contact 0 buys 3 times recently, contact 1 once long ago
    k.store.add_interactions(
        {
            "contact_id": [ids[0]] * 3 + [ids[1]],
            "kind": ["purchase"] * 4,
            "occurred_at": [AS_OF - 1 * DAY, AS_OF - 10 * DAY, AS_OF - 30 * DAY, AS_OF - 400 * DAY],
            "amount": [10.0, 20.0, 30.0, 99.0],
            "key": ["a", "b", "c", "d"],
        },
        source="t",
    )
    yield k
    k.close()


def ids_of(k: Kernel, emails: list[str]) -> list[int]:
    found = k.store.lookup_contacts("email", emails)
    return sorted(found[e] for e in emails)


def test_run_records_entered_and_exited_with_history(kernel: Kernel) -> None:
    kernel.segments.add(
        [
            Segment(name="us", rule="country = 'US'"),
            Segment(name="buyers", rule="count(purchase, 90 days) >= 3"),
            Segment(name="vip_us", rule="in_segment('us') and tags contains 'vip'"),
            Segment(name="pro", rule="plan = 'pro'"),
        ]
    )
    r1 = kernel.segments.run(as_of=AS_OF)
    assert r1.counts == {"us": 3, "buyers": 1, "vip_us": 1, "pro": 3}
    assert kernel.segments.members("us") == ids_of(
        kernel, ["c0@example.com", "c1@example.com", "c4@example.com"]
    )
    # The clock moves 70 days: two of contact 0's purchases fall out of the window.
    r2 = kernel.segments.run(as_of=AS_OF + 70 * DAY)
    assert r2.exited == {"buyers": 1} and r2.entered == {}
    hist = kernel.segments.history("buyers")
    assert hist[0]["exited_at"] == AS_OF + 70 * DAY and hist[0]["entered_at"] == AS_OF
    # A changed contact moves between segments on the next run.
    kernel.store.upsert_contacts(
        {"email": ["c3@example.com"], "country": ["US"]}, key="email", source="t"
    )
    r3 = kernel.segments.run(as_of=AS_OF + 70 * DAY)
    assert r3.entered == {"us": 1}


def test_segment_changed_event_carries_the_batch(kernel: Kernel) -> None:
    seen = []

    class Rec:
        from crmkit import hookimpl

        @hookimpl
        def crmkit_segment_changed(self, changes):  # type: ignore[no-untyped-def]
            seen.extend(changes)

    kernel.manager.pm.register(Rec(), name="rec")
    kernel.segments.add([Segment(name="us", rule="country = 'US'")])
    kernel.segments.run(as_of=AS_OF)
    assert [(c.segment, len(c.entered), len(c.exited)) for c in seen] == [("us", 3, 0)]


def test_bad_rules_name_the_field_with_a_caret(kernel: Kernel) -> None:
    with pytest.raises(RuleError) as e:
        kernel.segments.add([Segment(name="x", rule="contry = 'US'")])
    assert "did you mean 'country'" in str(e.value) and "^" in str(e.value)
    assert kernel.segments.definitions() == []
    with pytest.raises(RuleError):
        kernel.segments.add(
            [Segment(name="a", rule="in_segment('b')"), Segment(name="b", rule="in_segment('a')")]
        )


def test_preview_and_explain(kernel: Kernel) -> None:
    p = kernel.segments.preview("sum(purchase.amount, 365 days) > 50", as_of=AS_OF)
    assert p["count"] == 1
    kernel.segments.add([Segment(name="vip_us", rule="country = 'US' and tags contains 'vip'")])
    c1 = ids_of(kernel, ["c1@example.com"])[0]
    tree = kernel.segments.explain(c1, "vip_us", as_of=AS_OF)
    assert tree["value"] is False
    assert [ch["value"] for ch in tree["children"]] == [True, False]
    with pytest.raises(NotFoundError):
        kernel.segments.explain(c1, "nope", as_of=AS_OF)


def test_cli_segments(tmp_path: Path, kernel: Kernel) -> None:
    kernel.close()
    cli = build_cli(make_plugin_manager(Settings(disable_plugin_autoload=True)))
    db = str(tmp_path / "crm.db")
    rules = tmp_path / "segs.txt"
    rules.write_text("# bulk\nus: country = 'US'\nvip: tags contains 'vip'\n")
    runner = CliRunner()
    r = runner.invoke(cli, ["--db", db, "segments", "add", "--file", str(rules)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["--db", db, "segments", "run", "--as-of", "2026-03-01", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"] == {"us": 3, "vip": 3}
    # A kept snapshot is trusted while the store's change log says it is
    # current; --rebuild reads every contact again.
    snap_file = Path(db + "-segments.snapshot")
    held, meta = _core.Snapshot.load(snap_file)
    _core.Snapshot([], {}, held.schema).save(snap_file, meta)
    r = runner.invoke(cli, ["--db", db, "segments", "run", "--dry-run", "--json"])
    assert json.loads(r.stdout)["counts"] == {"us": 0, "vip": 0}
    r = runner.invoke(
        cli, ["--db", db, "segments", "run", "--as-of", "2026-03-01", "--rebuild", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"] == {"us": 3, "vip": 3}
    r = runner.invoke(cli, ["--db", db, "segments", "preview", "country in ('GB', 'DE')", "--json"])
    assert json.loads(r.stdout)["count"] == 2
    r = runner.invoke(cli, ["--db", db, "segments", "list", "--json"])
    assert {s["name"]: s["members"] for s in json.loads(r.stdout)} == {"us": 3, "vip": 3}


def test_large_runs_rebuild_the_by_contact_index(
    kernel: Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run recording many entries drops and rebuilds the memberships'
    by-contact index in its transaction: the index is there afterwards and
    the history is the same."""
    from crmkit.store.sqlite import SQLiteStore

    monkeypatch.setattr(SQLiteStore, "MEMBERSHIP_INDEX_REBUILD", 2)
    kernel.segments.add([Segment(name="us", rule="country = 'US'")])
    r = kernel.segments.run(as_of=AS_OF)
    assert r.entered == {"us": 3}
    conn = kernel.store.conn  # type: ignore[attr-defined]
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "memberships_contact" in names
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM memberships WHERE contact_id = 1"
    ).fetchall()
    assert "memberships_contact" in str(plan)
    assert kernel.segments.members("us") == ids_of(
        kernel, ["c0@example.com", "c1@example.com", "c4@example.com"]
    )
