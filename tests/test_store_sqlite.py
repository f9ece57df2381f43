"""The SQLite store: the conformance suite plus SQLite-specific behaviour."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmkit.errors import StoreError
from crmkit.store.schema import DEFERRABLE_INDEXES, KEY_INDEXES, SCHEMA_VERSION
from crmkit.store.sqlite import SQLiteStore
from crmkit.testing.stores import StoreConformance


class TestSQLiteStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SQLiteStore]:
        s = SQLiteStore(tmp_path / "crm.db")
        yield s
        s.close()


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "a.db")
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.schema_version() == SCHEMA_VERSION
    s.close()
    # Reopening does not migrate again and keeps data.
    s2 = SQLiteStore(f"sqlite:///{tmp_path / 'a.db'}")
    assert s2.schema_version() == SCHEMA_VERSION
    s2.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "a.db").close()
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this crmkit"):
        SQLiteStore(tmp_path / "a.db")


def test_not_a_database(tmp_path: Path) -> None:
    p = tmp_path / "junk.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a crmkit SQLite store"):
        SQLiteStore(p)


def test_locked_store_is_a_clear_error_and_nothing_changes(tmp_path: Path) -> None:
    p = tmp_path / "a.db"
    s = SQLiteStore(p, timeout=0.2)
    s.upsert_contacts({"email": ["a@x.com"]}, key="email", source="t")
    other = sqlite3.connect(p, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="locked by another process"):
            s.upsert_contacts({"email": ["b@x.com"]}, key="email", source="t")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert s.count_contacts() == 1
    s.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_store(tmp_path: Path) -> None:
    p = tmp_path / "a.db"
    SQLiteStore(p).close()
    p.chmod(0o444)
    with pytest.raises(StoreError):
        s = SQLiteStore(p)
        s.upsert_contacts({"email": ["a@x.com"]}, key="email", source="t")


def test_read_only_connection_write_is_a_store_error(tmp_path: Path) -> None:
    p = tmp_path / "a.db"
    SQLiteStore(p).close()
    s = SQLiteStore(p)
    s.conn.execute("PRAGMA query_only = ON")
    with pytest.raises(StoreError):
        s.upsert_contacts({"email": ["a@x.com"]}, key="email", source="t")
    assert s.count_contacts() == 0
    s.close()


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        SQLiteStore(tmp_path / "nope" / "a.db")


def test_a_merged_away_email_resolves_to_its_survivor(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "a.db")
    r = s.upsert_contacts({"email": ["a@x.com", "b@x.com"]}, key="email", source="t")
    a, b = r.ids
    s.conn.execute("UPDATE contacts SET merged_into = ? WHERE id = ?", (a, b))
    assert s.lookup_contacts("email", ["b@x.com"]) == {"b@x.com": a}
    again = s.upsert_contacts({"email": ["b@x.com"], "city": ["Paris"]}, key="email", source="t")
    assert again.updated == [a] and again.created == []
    assert s.count_contacts() == 1
    s.close()


def _indexes(s: SQLiteStore) -> set[str]:
    return {r[0] for r in s.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_bulk_load_defers_index_upkeep_and_rebuilds(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "a.db")
    with s.bulk_load():
        assert not _indexes(s) & set(DEFERRABLE_INDEXES)
        s.upsert_contacts({"email": ["a@x.com"], "phone": ["+15550001"]}, key="email", source="t")
    assert set(DEFERRABLE_INDEXES) <= _indexes(s)
    plan = s.conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM contacts WHERE phone = '+15550001'"
    ).fetchall()
    assert "contacts_phone" in str(plan)
    s.close()


def test_bulk_load_killed_midway_is_whole_again_on_open(tmp_path: Path) -> None:
    p = tmp_path / "a.db"
    SQLiteStore(p).close()
    conn = sqlite3.connect(p)
    dropped = {**DEFERRABLE_INDEXES, **KEY_INDEXES}
    for name in dropped:  # what a process killed inside a bulk load leaves
        conn.execute(f"DROP INDEX {name}")
    conn.commit()
    conn.close()
    s = SQLiteStore(p)
    assert set(dropped) <= _indexes(s)
    s.close()


def test_bulk_load_keeps_indexes_on_a_large_store(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "a.db")
    s.BULK_LOAD_MAX_ROWS = 2
    s.upsert_contacts({"email": ["a@x.com", "b@x.com"]}, key="email", source="t")
    with s.bulk_load():
        assert set(DEFERRABLE_INDEXES) <= _indexes(s)
    s.close()


def test_email_lookups_never_scan_the_contacts_table(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "a.db")
    s.upsert_contacts({"email": [f"u{i}@x.com" for i in range(50)]}, key="email", source="t")
    s.conn.execute("ANALYZE")
    plans: list[str] = []
    s.conn.set_trace_callback(plans.append)
    s.lookup_contacts("email", ["u1@x.com", "zz@x.com"])
    s.conn.set_trace_callback(None)
    queries = [q for q in plans if q.startswith("SELECT email")]
    assert len(queries) == 2
    for q in queries:
        detail = str(s.conn.execute("EXPLAIN QUERY PLAN " + q).fetchall())
        assert "SCAN contacts" not in detail, detail
    s.close()


def test_lookup_of_emails_all_live_or_all_missing(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "a.db")
    r = s.upsert_contacts({"email": ["a@x.com", "b@x.com", "c@x.com"]}, key="email", source="t")
    assert s.lookup_contacts("email", ["a@x.com", "b@x.com", "c@x.com"]) == dict(
        zip(["a@x.com", "b@x.com", "c@x.com"], r.ids, strict=True)
    )
    assert s.lookup_contacts("email", ["z@x.com"] * 3) == {}
    s.close()
