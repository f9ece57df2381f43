"""Bulk loads that resolve upsert keys in memory give the store an indexed load gives."""

from __future__ import annotations

import csv
import json
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from crmkit import _core
from crmkit.errors import StoreError
from crmkit.kernel import Kernel
from crmkit.settings import Settings
from crmkit.store.base import MergeSpec
from crmkit.store.sqlite import SQLiteStore

HEADER = ["Record ID", "First Name", "Email", "City", "Plan", "Tags"]
VOLATILE = {"created_at", "updated_at"}


def _kernel(db: Path) -> Kernel:
    return Kernel(Settings(db=db, disable_plugin_autoload=True))


def _write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def _messy_rows(
    rnd: random.Random, n: int, people: int, *, shared_ids: bool = False
) -> list[list[str]]:
    """Rows drawn from ``people`` emails, so many repeat, some with case and
    whitespace variants, some without an email, and blanks that must not
    overwrite known values. With ``shared_ids`` the record ids repeat too,
    and a record id often comes with another record's email (emails that
    move, and emails another contact holds)."""
    out = []
    for i in range(n):
        p = rnd.randrange(people)
        email = rnd.choice([f"p{p}@x.org", f" P{p}@X.org ", f"p{p}@x.org", ""])
        rid = f"R{rnd.randrange(people) if rnd.random() < 0.3 else p}" if shared_ids else f"R{i}"
        out.append(
            [
                rid,
                rnd.choice([f"Name{p}", "", f"Other{i}"]),
                email,
                rnd.choice(["", f"City{i % 7}"]),
                rnd.choice(["", "pro", "free"]),
                rnd.choice(["", "a;b", "c"]),
            ]
        )
    return out


def _dump(
    db: Path,
) -> tuple[list[dict[str, object]], list[tuple[object, ...]], list[tuple[object, ...]]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    # JSON columns hold text or the same text as a blob (both read alike).
    contacts = [
        {
            k: v.decode() if isinstance(v, bytes) else v
            for k, v in dict(r).items()
            if k not in VOLATILE
        }
        for r in conn.execute("SELECT * FROM contacts ORDER BY id")
    ]
    identities = [tuple(r) for r in conn.execute("SELECT * FROM identities ORDER BY 1, 2")]
    # The change-log counter a bulk load keeps in memory lands as SQL leaves it.
    meta = [tuple(r) for r in conn.execute("SELECT * FROM meta WHERE key = 'rev'")]
    conn.close()
    return contacts, identities, meta


def _indexes(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    finally:
        conn.close()


def _seed(db: Path, rnd: random.Random) -> None:
    """A store with contacts, one of them merged away into another."""
    k = _kernel(db)
    src = k.plugin(
        "source", "csv", {"path": str(_write(db.parent / "seed.csv", _messy_rows(rnd, 60, 40)))}
    )
    k.ingest(src, name="seed")
    ids = sorted(k.store.resolve_ids(list(range(1, 10))))
    k.store.apply_merges([MergeSpec(survivor_id=ids[0], merged_ids=(ids[1], ids[2]))])
    k.close()


@pytest.mark.parametrize("key", ["email", "external_id"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_bulk_load_matches_a_load_through_the_indexes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, key: str
) -> None:
    rnd = random.Random(seed)
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    fast.mkdir()
    slow.mkdir()
    _seed(fast / "crm.db", rnd)
    shutil.copy(fast / "crm.db", slow / "crm.db")
    data = _write(
        tmp_path / "more.csv", _messy_rows(rnd, 400, 120, shared_ids=key == "external_id")
    )

    def load(db: Path) -> int:
        k = _kernel(db)
        src = k.plugin("source", "csv", {"path": str(data), "batch_rows": 37})
        report = k.ingest(src, name="more", key=key)
        k.close()
        return report.dropped_values

    dropped = load(fast / "crm.db")
    monkeypatch.setattr(SQLiteStore, "BULK_LOAD_MAX_ROWS", 0)  # no bulk load: every key via SQL
    assert load(slow / "crm.db") == dropped
    assert _dump(fast / "crm.db") == _dump(slow / "crm.db")
    assert "contacts_email" in _indexes(fast / "crm.db")
    if key == "external_id":
        assert dropped > 0  # some rows brought an email another contact holds


def test_an_email_another_contact_holds_stays_with_it(tmp_path: Path) -> None:
    k = _kernel(tmp_path / "crm.db")
    first = _write(
        tmp_path / "a.csv",
        [["R1", "Ann", "a@x.org", "", "", ""], ["R2", "Bo", "b@x.org", "", "", ""]],
    )
    k.ingest(k.plugin("source", "csv", {"path": str(first)}), name="crm", key="external_id")
    # R1 now claims b@x.org, which R2's contact holds; R1 also moves its city.
    second = _write(tmp_path / "b.csv", [["R1", "", "b@x.org", "Oslo", "", ""]])
    rejects = tmp_path / "rejects.csv"
    report = k.ingest(
        k.plugin("source", "csv", {"path": str(second)}),
        name="crm",
        key="external_id",
        rejects=rejects,
    )
    assert (report.updated, report.dropped_values) == (1, 1)
    rows = k.store.conn.execute("SELECT email, city FROM contacts ORDER BY id").fetchall()
    assert rows == [("a@x.org", "Oslo"), ("b@x.org", None)]
    with rejects.open(encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    assert [(r["line"], r["field"], r["action"]) for r in got] == [("2", "email", "value dropped")]
    assert "b@x.org" not in rejects.read_text(encoding="utf-8")
    k.close()


def test_a_load_past_the_key_budget_goes_on_through_the_indexes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _write(tmp_path / "d.csv", _messy_rows(random.Random(5), 300, 150, shared_ids=True))
    ended: list[int] = []
    end_keys = SQLiteStore._end_keys

    def spy(self: SQLiteStore, conn: sqlite3.Connection) -> None:
        if self._keys is not None:
            ended.append(len(self._keys))
        end_keys(self, conn)

    def load(db: Path) -> list[dict[str, object]]:
        k = _kernel(db)
        k.ingest(
            k.plugin("source", "csv", {"path": str(data), "batch_rows": 20}),
            name="d",
            key="external_id",
        )
        k.close()
        return _dump(db)[0]

    monkeypatch.setattr(SQLiteStore, "_end_keys", spy)
    monkeypatch.setattr(SQLiteStore, "BULK_KEYS_MAX", 60)
    budgeted = load(tmp_path / "a.db")
    assert ended and ended[0] > 60  # the map gave way part of the way through
    monkeypatch.setattr(SQLiteStore, "BULK_LOAD_MAX_ROWS", 0)
    assert budgeted == load(tmp_path / "b.db")
    assert "contacts_email" in _indexes(tmp_path / "a.db")


def test_a_merged_away_email_resolves_to_its_survivor(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "crm.db")
    res = store.upsert_contacts({"email": ["a@x.org", "b@x.org"]}, key="email", source="s")
    a, b = res.ids
    assert a is not None and b is not None
    store.apply_merges([MergeSpec(survivor_id=a, merged_ids=(b,))])
    with store.bulk_load():
        again = store.upsert_contacts(
            {"email": ["b@x.org", "c@x.org"], "city": ["Oslo", None]}, key="email", source="s"
        )
    assert again.ids[0] == a
    assert again.updated == [a]
    assert store.lookup_contacts("email", ["b@x.org", "c@x.org"]) == {
        "b@x.org": a,
        "c@x.org": again.ids[1],
    }
    store.close()


def test_another_write_of_contacts_restores_the_index_first(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    store = SQLiteStore(db)
    with store.bulk_load():
        first = store.upsert_contacts({"email": ["a@x.org"]}, key="email", source="s")
        assert "contacts_email" not in _indexes(db)
        cid = first.ids[0]
        assert cid is not None
        store.set_attributes([cid], {"city": ["Oslo"]})
        assert "contacts_email" in _indexes(db)
        # Keys now resolve through the index again, and never twice.
        second = store.upsert_contacts({"email": ["a@x.org", "b@x.org"]}, key="email", source="s")
        assert second.ids[0] == cid
        assert second.created == [cid + 1]
    assert store.count_contacts() == 2
    store.close()


def test_a_rollback_forgets_the_keys_it_recorded(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    store = SQLiteStore(db)
    with store.bulk_load():
        store.upsert_contacts({"email": ["a@x.org"]}, key="email", source="s")
        with pytest.raises(RuntimeError), store.transaction():
            store.upsert_contacts({"email": ["b@x.org"]}, key="email", source="s")
            raise RuntimeError("interrupted")
        res = store.upsert_contacts({"email": ["b@x.org", "a@x.org"]}, key="email", source="s")
        assert res.created == [2]
        assert res.updated == [1]
    assert store.count_contacts() == 2
    assert "contacts_email" in _indexes(db)
    store.close()


def test_key_map_assigns_like_the_store() -> None:
    km = _core.KeyMap()
    km.add_current(["a", "b"], [1, 2])
    km.add_emails(["a"], [9])
    assert len(km) == 2
    ids, new_rows, created, updated, nxt = km.assign(["c", None, "a", "c", "d"], 3)
    assert ids == [3, None, 1, 3, 4]
    assert new_rows == [0, 4]
    assert created == [3, 4]
    assert updated == [1]
    assert nxt == 5
    assert km.get(["d", "zz", None]) == [4, None, None]
    with pytest.raises(ValueError):
        km.add_emails(["x"], [1, 2])
    with pytest.raises(ValueError, match="track_current"):
        km.assign_external(["R1"], ["a"], 9)
    ext = _core.KeyMap(track_current=True)
    ext.add_current(["a"], [1])
    ids, _, created, updated, _, conflicts, held = ext.assign_external(
        ["R1", "R2", "R1"], ["b", "a", "a"], 5
    )
    assert ids == [5, 1, 5]
    assert (created, updated, conflicts, held) == ([5], [1], [2], [1])


def test_rows_of_one_contact_in_a_batch_fold_as_one_by_one_upserts(tmp_path: Path) -> None:
    data = _write(tmp_path / "d.csv", _messy_rows(random.Random(7), 300, 60))

    def load(db: Path, batch: int) -> list[dict[str, object]]:
        k = _kernel(db)
        k.ingest(k.plugin("source", "csv", {"path": str(data), "batch_rows": batch}), name="d")
        k.close()
        return [{c: v for c, v in r.items() if c != "rev"} for r in _dump(db)[0]]

    folded = load(tmp_path / "a.db", 100)
    assert len(folded) < 300  # rows did repeat within batches
    assert folded == load(tmp_path / "b.db", 1)


def test_nested_objects_are_merged_as_one_by_one_upserts_merge_them(tmp_path: Path) -> None:
    rnd = random.Random(3)
    emails = [f"p{rnd.randrange(5)}@x.org" for _ in range(40)]
    prefs: list[object] = [
        rnd.choice([None, {"a": {"x": i}}, {"a": {"y": i}, "b": i}, {"a": i}]) for i in range(40)
    ]
    cities = [rnd.choice([None, "Oslo", "Rome"]) for _ in range(40)]
    one, each = SQLiteStore(tmp_path / "one.db"), SQLiteStore(tmp_path / "each.db")
    one.upsert_contacts({"email": emails, "city": cities, "prefs": prefs}, key="email", source="s")
    for e, c, p in zip(emails, cities, prefs, strict=True):
        each.upsert_contacts({"email": [e], "city": [c], "prefs": [p]}, key="email", source="s")
    one.close()
    each.close()

    def rows(db: Path) -> list[tuple[object, ...]]:
        conn = sqlite3.connect(db)
        try:
            return [
                (r[0], r[1], json.loads(r[2]) if r[2] is not None else None)
                for r in conn.execute("SELECT email, city, attrs FROM contacts ORDER BY id")
            ]
        finally:
            conn.close()

    assert rows(tmp_path / "one.db") == rows(tmp_path / "each.db")


def test_a_write_failing_behind_the_load_rolls_its_group_back(tmp_path: Path) -> None:
    """Upserts in a bulk load are written on the store's writer thread; an
    error there surfaces at the next use of the connection and rolls the whole
    transaction back, as a failing statement in the caller's thread would."""
    store = SQLiteStore(tmp_path / "s.db")
    store.upsert_contacts({"email": ["kept@example.com"]}, key="email", source="t")
    before = store.conn.execute("SELECT * FROM contacts ORDER BY id").fetchall()
    with pytest.raises(StoreError), store.bulk_load(), store.transaction():
        store.upsert_contacts(
            {"email": [f"n{i}@example.com" for i in range(50)]}, key="email", source="t"
        )
        assert store._queued  # written behind the caller
        # A row that breaks the table's primary key, queued the same way.
        store._exec(store._conn, "INSERT INTO contacts(id) VALUES (?)", [[1]], 1)
        store.set_state("source:t", {"offset": 1})
    assert store.conn.execute("SELECT * FROM contacts ORDER BY id").fetchall() == before
    assert store.get_state("source:t") is None
    assert store._writer is None
    (auto,) = store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()
    assert auto == 1000
    store.close()
