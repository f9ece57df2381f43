"""Bulk statements over columns on a SQLite connection (private to the SQLite store).

:func:`execute_columns` runs one INSERT, UPDATE or DELETE per row, its
parameters bound from columns. Where the Rust extension can bind on the
connection's own handle (CPython 3.11–3.14 with a shared SQLite library,
checked once per process) the rows never become Python tuples; elsewhere,
or with ``CRMKIT_SQLITE_BULK=0`` in the environment, it is ``executemany``.
Either way the statements run inside the caller's transaction.

During a bulk load the store queues them on a :func:`writer` instead, whose
thread runs them while the next batch is prepared.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Sequence
from functools import cache
from itertools import repeat
from typing import Any

_VALUES = re.compile(r"^(\s*INSERT\b.*\bVALUES\s*)(\([\s?,]*\))\s*$", re.IGNORECASE | re.DOTALL)
"""An ``INSERT … VALUES (?, …)`` statement, which may take many rows at once."""

ROWS_PER_STATEMENT = 32
"""Rows an INSERT binds per statement step (far fewer steps for small rows)."""

_PASSED = (str, int, float, bytes, list, tuple)
"""Column values passed as they are: scalars (the same for every row) and sequences."""


@cache
def native() -> bool:
    """Whether statements are bound in Rust here (see the module docstring)."""
    if os.environ.get("CRMKIT_SQLITE_BULK", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    from crmkit import _core

    return bool(_core.sqlite_bulk_available())


def _prepared(
    sql: str, columns: Sequence[Any], rows: int
) -> tuple[list[Any], tuple[str, int] | None]:
    """The columns as the binder takes them (checked against ``rows``) and,
    for an ``INSERT … VALUES``, the statement for :data:`ROWS_PER_STATEMENT`
    rows at once."""
    cols: list[Any] = [c if c is None or isinstance(c, _PASSED) else list(c) for c in columns]
    for k, c in enumerate(cols):
        if isinstance(c, list | tuple) and len(c) != rows:
            raise ValueError(f"column {k} has {len(c)} values, expected {rows}")
    m = _VALUES.match(sql)
    many = (
        (m.group(1) + ", ".join([m.group(2)] * ROWS_PER_STATEMENT), ROWS_PER_STATEMENT)
        if m
        else None
    )
    return cols, many


def execute_columns(
    conn: sqlite3.Connection,
    sql: str,
    columns: Sequence[Any],
    rows: int,
    index: Sequence[int] | None = None,
) -> int:
    """Run ``sql`` once per row, parameter *k* of row *r* from ``columns[k][r]``.

    A column is a sequence of ``rows`` values, or a single ``str``, ``int``,
    ``float``, ``bytes`` or ``None`` used for every row. Values are ``str``,
    ``int``, ``float``, ``bytes`` or ``None``. With ``index``, only the rows it
    lists run, in its order. An ``INSERT … VALUES (?, …)`` binds
    :data:`ROWS_PER_STATEMENT` rows per statement where it can (the same rows
    change; a failing row fails its whole statement, and the caller rolls the
    transaction back either way). Returns the rows changed. The caller holds the
    transaction (``BEGIN`` first); errors are ``sqlite3``'s.
    """
    cols, many = _prepared(sql, columns, rows)
    order = None if index is None else list(index)
    if (rows if order is None else len(order)) == 0:
        return 0
    if native():
        from crmkit import _core

        return int(_core.sqlite_execute_columns(conn, sql, cols, rows, order, many))
    if order is not None:
        if any(not 0 <= r < rows for r in order):
            raise ValueError(f"an index is out of range for {rows} rows")
        cols = [[c[r] for r in order] if isinstance(c, list | tuple) else c for c in cols]
        rows = len(order)
    cur = conn.executemany(
        sql,
        zip(*(c if isinstance(c, list | tuple) else repeat(c, rows) for c in cols), strict=False),
    )
    return max(cur.rowcount, 0)


def writer(conn: sqlite3.Connection) -> Any:
    """A :class:`crmkit._core.BulkWriter` for ``conn``, or None where statements
    are not bound in Rust here or the SQLite library is not serialized (the
    writer's thread and the caller's share the connection)."""
    if not native() or sqlite3.threadsafety != 3:
        return None
    from crmkit import _core

    return _core.BulkWriter(conn)


def submit_columns(
    bulk: Any,
    sql: str,
    columns: Sequence[Any],
    rows: int,
    index: Sequence[int] | None = None,
) -> None:
    """Queue what :func:`execute_columns` would run on ``bulk`` (a
    :func:`writer`): it runs on the writer's thread, after what was queued
    before, while the caller goes on; its errors come with ``bulk.drain()``."""
    cols, many = _prepared(sql, columns, rows)
    order = None if index is None else list(index)
    if (rows if order is None else len(order)) == 0:
        return
    bulk.submit(sql, cols, rows, order, many)
