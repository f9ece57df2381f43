"""Bulk statements bound in Rust on a sqlite3 connection's own handle.

Every behaviour is checked against ``executemany`` on the same input: the two
paths must leave identical tables and raise the same kinds of error.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit import _core
from crmkit.store import bulkio
from crmkit.store.bulkio import execute_columns


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    c.execute("CREATE TABLE t (a, b, c, d)")
    c.execute("CREATE UNIQUE INDEX t_a ON t(a)")
    yield c
    c.close()


def _rows(c: sqlite3.Connection, table: str = "t") -> list[tuple[Any, ...]]:
    return c.execute(
        f"SELECT typeof(a), a, typeof(b), b, typeof(c), c, typeof(d), d FROM {table} ORDER BY rowid"
    ).fetchall()


@pytest.mark.skipif(
    sys.implementation.name != "cpython" or not sys.platform.startswith("linux"),
    reason="checked where Python's sqlite3 links a shared SQLite library",
)
def test_available_on_cpython() -> None:
    assert _core.sqlite_bulk_available()
    assert bulkio.native() or os.environ.get("CRMKIT_SQLITE_BULK") == "0"


def test_values_round_trip_as_executemany_binds_them(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE u (a, b, c, d)")
    cols: list[Any] = [
        [5, -(2**63), 2**63 - 1, True, 0],
        ["", "né\u00e9", "emoji \U0001f600", "nul\x00inside", None],
        [1.5, float("inf"), -0.0, None, 1e-300],
        [b"", b"\x00\xff", None, b"blob", b"x" * 1000],
    ]
    conn.execute("BEGIN")
    assert _core.sqlite_execute_columns(conn, "INSERT INTO t VALUES (?, ?, ?, ?)", cols, 5) == 5
    conn.executemany("INSERT INTO u VALUES (?, ?, ?, ?)", zip(*cols, strict=True))
    conn.execute("COMMIT")
    assert _rows(conn) == _rows(conn, "u")


def test_constants_tuples_and_the_changes_count(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    n = _core.sqlite_execute_columns(
        conn, "INSERT INTO t VALUES (?, ?, ?, ?)", [(1, 2, 3), "same", None, 7.0], 3
    )
    assert n == 3
    changed = _core.sqlite_execute_columns(
        conn, "UPDATE t SET b = ? WHERE a = ?", ["new", [1, 3, 99]], 3
    )
    conn.execute("COMMIT")
    assert changed == 2  # no row has a = 99
    assert conn.execute("SELECT a, b, c, d FROM t ORDER BY a").fetchall() == [
        (1, "new", None, 7.0),
        (2, "same", None, 7.0),
        (3, "new", None, 7.0),
    ]


def test_a_failing_row_raises_sqlite3s_error_and_rolls_back(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO t VALUES (0, 'kept', NULL, NULL)")
    conn.execute("BEGIN")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE") as info:
        _core.sqlite_execute_columns(
            conn, "INSERT INTO t VALUES (?, ?, ?, ?)", [[5, 6, 5], "x", None, None], 3
        )
    assert info.value.sqlite_errorcode & 0xFF == 19
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT a, b FROM t").fetchall() == [(0, "kept")]
    # The connection is still usable from Python afterwards.
    conn.execute("INSERT INTO t VALUES (1, 'after', NULL, NULL)")
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)


@pytest.mark.parametrize(
    ("sql", "cols", "rows", "error", "match"),
    [
        ("INSERT INTO t VALUES (?, ?, ?, ?)", [[1, 2], 1, 1, 1], 3, ValueError, "column 0 has 2"),
        ("INSERT INTO t VALUES (?, ?, ?, ?)", [1, 1, 1], 1, ValueError, "4 parameters, 3"),
        ("SELECT * FROM t WHERE a = ?", [1], 1, ValueError, "INSERT, UPDATE or DELETE"),
        ("INSERT INTO t VALUES (?, 1, 1, 1) RETURNING a", [[1]], 1, ValueError, "RETURNING"),
        ("INSERT INTO t VALUES (?, ?, ?, ?)", [[{"x": 1}], 1, 1, 1], 1, TypeError, "column 0"),
        ("INSERT INTO t VALUES (?, ?, ?, ?)", [[2**64], 1, 1, 1], 1, OverflowError, "too large"),
        ("INSERT INTO nowhere VALUES (?)", [[1]], 1, sqlite3.OperationalError, "no such table"),
    ],
)
def test_bad_calls_are_clear_errors(
    conn: sqlite3.Connection, sql: str, cols: list[Any], rows: int, error: type, match: str
) -> None:
    conn.execute("BEGIN")
    with pytest.raises(error, match=match):
        _core.sqlite_execute_columns(conn, sql, cols, rows)
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_an_unsupported_value_is_not_shown(conn: sqlite3.Connection) -> None:
    class Secret:
        def __repr__(self) -> str:
            return "ann@example.com"

    conn.execute("BEGIN")
    with pytest.raises(TypeError) as info:
        _core.sqlite_execute_columns(conn, "INSERT INTO t VALUES (?, 1, 1, 1)", [[Secret()]], 1)
    conn.execute("ROLLBACK")
    assert "example.com" not in str(info.value)
    assert "Secret" in str(info.value)


def test_needs_an_open_connection_and_a_transaction(conn: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.ProgrammingError, match="transaction"):
        _core.sqlite_execute_columns(conn, "INSERT INTO t VALUES (?, 1, 1, 1)", [[1]], 1)
    with pytest.raises(TypeError, match=r"sqlite3\.Connection"):
        _core.sqlite_execute_columns(object(), "INSERT INTO t VALUES (?, 1, 1, 1)", [[1]], 1)
    other = sqlite3.connect(":memory:", isolation_level=None)
    other.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        _core.sqlite_execute_columns(other, "INSERT INTO t VALUES (?, 1, 1, 1)", [[1]], 1)


_value = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(_value, _value, _value), max_size=80),
    same=_value,
)
def test_matches_executemany_on_random_columns(rows: list[tuple[Any, ...]], same: Any) -> None:
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.execute("CREATE TABLE t (a, b, c, d)")
    c.execute("CREATE TABLE u (a, b, c, d)")
    cols: list[Any] = [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], same]
    c.execute("BEGIN")
    execute_columns(c, "INSERT INTO t VALUES (?, ?, ?, ?)", cols, len(rows))
    c.executemany("INSERT INTO u VALUES (?, ?, ?, ?)", [(*r, same) for r in rows])
    c.execute("COMMIT")
    assert _rows(c) == _rows(c, "u")
    c.close()


def test_fallback_gives_the_same_tables(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    cols: list[Any] = [[1, 2, 3], ["a", None, "c"], 2.5, [b"x", None, b"z"]]
    conn.execute("BEGIN")
    assert execute_columns(conn, "INSERT INTO t VALUES (?, ?, ?, ?)", cols, 3) == 3
    conn.execute("COMMIT")
    native = _rows(conn)
    conn.execute("DELETE FROM t")
    monkeypatch.setenv("CRMKIT_SQLITE_BULK", "0")
    bulkio.native.cache_clear()
    try:
        assert not bulkio.native()
        conn.execute("BEGIN")
        assert execute_columns(conn, "INSERT INTO t VALUES (?, ?, ?, ?)", cols, 3) == 3
        conn.execute("COMMIT")
        with pytest.raises(ValueError, match="column 0 has 2"):
            execute_columns(conn, "INSERT INTO t VALUES (?, ?, ?, ?)", [[1, 2], 1, 1, 1], 3)
    finally:
        bulkio.native.cache_clear()
    assert _rows(conn) == native


def test_an_import_gives_the_same_store_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmkit.kernel import Kernel
    from crmkit.sample import generate

    info = generate(tmp_path / "data", contacts=400, seed=3)
    tables = {}
    for mode in ("1", "0"):
        monkeypatch.setenv("CRMKIT_SQLITE_BULK", mode)
        bulkio.native.cache_clear()
        try:
            with Kernel.open(tmp_path / f"crm{mode}.db", disable_plugin_autoload=True) as k:
                k.import_file(info.contacts_path, key="external_id")
                if info.interactions_path is not None:
                    k.import_file(info.interactions_path)
                conn = k.store.conn  # type: ignore[attr-defined]
                tables[mode] = (
                    conn.execute(
                        "SELECT id, email, first_name, last_name, phone, city, postcode, tags, "
                        "attrs, source_line, rev FROM contacts ORDER BY id"
                    ).fetchall(),
                    conn.execute("SELECT * FROM identities ORDER BY contact_id").fetchall(),
                    conn.execute(
                        "SELECT contact_id, kind, occurred_at, amount, props, key FROM interactions "
                        "ORDER BY id"
                    ).fetchall(),
                )
        finally:
            bulkio.native.cache_clear()
    assert tables["1"] == tables["0"]
    assert len(tables["1"][0]) > 300 and tables["1"][2]


def test_index_runs_the_rows_it_lists_in_order(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    cols: list[Any] = [[10, 11, 12, 13], ["a", "b", "c", "d"], None, ("w", "x", "y", "z")]
    got = {}
    for mode in ("1", "0"):
        monkeypatch.setenv("CRMKIT_SQLITE_BULK", mode)
        bulkio.native.cache_clear()
        try:
            conn.execute("DELETE FROM t")
            conn.execute("BEGIN")
            n = execute_columns(conn, "INSERT INTO t VALUES (?, ?, ?, ?)", cols, 4, [3, 0, 2])
            assert execute_columns(conn, "INSERT INTO t VALUES (?, ?, ?, ?)", cols, 4, []) == 0
            with pytest.raises((ValueError, OverflowError)):
                execute_columns(conn, "INSERT INTO t VALUES (?, ?, ?, ?)", cols, 4, [4])
            conn.execute("COMMIT")
            assert n == 3
            got[mode] = conn.execute("SELECT a, b, d FROM t ORDER BY rowid").fetchall()
        finally:
            bulkio.native.cache_clear()
    assert got["1"] == got["0"] == [(13, "d", "z"), (10, "a", "w"), (12, "c", "y")]


def test_rows_bound_many_per_statement_change_what_single_rows_do(
    conn: sqlite3.Connection,
) -> None:
    assert bulkio.ROWS_PER_STATEMENT > 1
    n = bulkio.ROWS_PER_STATEMENT * 3 + 5
    conn.execute("CREATE TABLE u (a, b, c, d)")
    conn.execute("CREATE UNIQUE INDEX u_a ON u(a)")
    # Keys repeat inside and across groups: OR IGNORE keeps the first of each.
    keys = [i // 3 for i in range(n)]
    cols: list[Any] = [keys, [f"v{i}" for i in range(n)], None, 1.5]
    conn.execute("BEGIN")
    got = execute_columns(conn, "INSERT OR IGNORE INTO t VALUES (?, ?, ?, ?)", cols, n)
    want = conn.executemany(
        "INSERT OR IGNORE INTO u VALUES (?, ?, ?, ?)",
        [(keys[i], f"v{i}", None, 1.5) for i in range(n)],
    ).rowcount
    conn.execute("COMMIT")
    assert got == want == len(set(keys))
    assert _rows(conn) == _rows(conn, "u")
    # A failing row fails the call; the transaction rolls back to what it was.
    conn.execute("BEGIN")
    with pytest.raises(sqlite3.IntegrityError):
        execute_columns(conn, "INSERT INTO t VALUES (?, ?, ?, ?)", [keys, "x", None, None], n)
    conn.execute("ROLLBACK")
    assert _rows(conn) == _rows(conn, "u")


# -- the bulk writer: the same statements on a thread of their own ------------------


def test_writer_runs_queued_statements_in_order(conn: sqlite3.Connection) -> None:
    bulk = _core.BulkWriter(conn)
    conn.execute("BEGIN")
    a = [1, 2, 3]
    b = ["x", "né", None]
    bulk.submit("INSERT INTO t VALUES (?, ?, ?, ?)", [a, b, 1.5, b"z"], 3)
    bulk.submit("UPDATE t SET b = ? WHERE a = ?", [["y"], [2]], 1)
    bulk.submit("DELETE FROM t WHERE a = ?", [[3]], 1)
    # The values were read at submit time: changing the lists afterwards
    # changes nothing queued.
    a[0], b[0] = 99, "changed"
    del b[1:]
    assert bulk.drain() == 5
    conn.execute("COMMIT")
    assert conn.execute("SELECT a, b, c, d FROM t ORDER BY a").fetchall() == [
        (1, "x", 1.5, b"z"),
        (2, "y", 1.5, b"z"),
    ]
    assert bulk.drain() == 0
    bulk.close()


def test_writer_holds_a_bounded_queue_and_keeps_every_value(conn: sqlite3.Connection) -> None:
    # Far more rows than the writer lets wait: submit blocks for the thread
    # now and then, and lets go of the values of what has run. Every value
    # must still land as given (freed too early, the text would be garbage).
    bulk = _core.BulkWriter(conn)
    conn.execute("BEGIN")
    per, batches = 20_000, 30
    for b in range(batches):
        ids = list(range(b * per, (b + 1) * per))
        bulk.submit("INSERT INTO t(a, b) VALUES (?, ?)", [ids, [f"v{i}-é" for i in ids]], per)
    assert bulk.drain() == per * batches
    conn.execute("COMMIT")
    got = conn.execute("SELECT count(*), sum(a), count(DISTINCT b) FROM t").fetchone()
    assert got == (per * batches, sum(range(per * batches)), per * batches)
    bad = conn.execute("SELECT count(*) FROM t WHERE b != 'v' || a || '-é'").fetchone()[0]
    assert bad == 0
    bulk.close()


def test_writer_raises_the_first_error_at_drain_and_skips_the_rest(
    conn: sqlite3.Connection,
) -> None:
    bulk = _core.BulkWriter(conn)
    conn.execute("BEGIN")
    bulk.submit("INSERT INTO t(a) VALUES (?)", [[1, 2]], 2)
    bulk.submit("INSERT INTO t(a) VALUES (?)", [[2]], 1)  # t_a is unique
    bulk.submit("INSERT INTO t(a) VALUES (?)", [[3]], 1)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE") as err:
        bulk.drain()
    assert "2" not in str(err.value)  # no values in messages
    assert [r[0] for r in conn.execute("SELECT a FROM t ORDER BY a")] == [1, 2]
    conn.execute("ROLLBACK")
    # The writer is usable again after the error.
    conn.execute("BEGIN")
    bulk.submit("INSERT INTO t(a) VALUES (?)", [[7]], 1)
    assert bulk.drain() == 1
    conn.execute("COMMIT")
    assert [r[0] for r in conn.execute("SELECT a FROM t")] == [7]
    bulk.close()


def test_writer_checks_calls_when_they_are_made(conn: sqlite3.Connection) -> None:
    bulk = _core.BulkWriter(conn)
    with pytest.raises(sqlite3.ProgrammingError, match="BEGIN first"):
        bulk.submit("INSERT INTO t(a) VALUES (?)", [[1]], 1)
    conn.execute("BEGIN")
    with pytest.raises(ValueError, match="expected 2"):
        bulk.submit("INSERT INTO t(a) VALUES (?)", [[1]], 2)
    with pytest.raises(TypeError, match="not supported"):
        bulk.submit("INSERT INTO t(a) VALUES (?)", [[object()]], 1)
    bulk.submit("SELECT ?", [[1]], 1)
    with pytest.raises(ValueError, match="INSERT, UPDATE or DELETE"):
        bulk.drain()
    conn.execute("ROLLBACK")
    bulk.close()
    with pytest.raises(ValueError, match="closed"):
        bulk.submit("INSERT INTO t(a) VALUES (?)", [[1]], 1)
    with pytest.raises(TypeError, match=r"sqlite3\.Connection"):
        _core.BulkWriter(object())


@settings(max_examples=30, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 40), st.none() | st.text(max_size=5)), max_size=30),
        max_size=6,
    )
)
def test_writer_leaves_what_execute_columns_leaves(
    batches: list[list[tuple[int, str | None]]],
) -> None:
    sql = "INSERT OR REPLACE INTO t(a, b) VALUES (?, ?)"
    out = []
    for queued in (False, True):
        c = sqlite3.connect(":memory:", isolation_level=None)
        c.execute("CREATE TABLE t (a PRIMARY KEY, b)")
        c.execute("BEGIN")
        bulk = _core.BulkWriter(c) if queued else None
        for batch in batches:
            cols = [[a for a, _ in batch], [b for _, b in batch]]
            if bulk is not None:
                bulkio.submit_columns(bulk, sql, cols, len(batch))
            else:
                execute_columns(c, sql, cols, len(batch))
        if bulk is not None:
            bulk.drain()
            bulk.close()
        c.execute("COMMIT")
        out.append(c.execute("SELECT a, b FROM t ORDER BY a").fetchall())
        c.close()
    assert out[0] == out[1]
