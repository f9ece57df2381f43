"""Outbox and suppression operations of the SQLite store (its private part).

:class:`~crmkit.store.sqlite.SQLiteStore` implements the outbox and
suppression sections of the :class:`~crmkit.store.base.Store` protocol with
these functions; callers use the protocol methods. The delivery state
machine is described at :class:`~crmkit.store.base.OutboxRow`.

A claimed (``sending``) row holds its claim in ``error``
(``claim:<host>:<pid>:<nonce>``) and a lease end in ``next_attempt_at``; a
claim whose process is gone (same host) or whose lease ran out (another
host) becomes ``unknown``, never ``queued``: whether its message left is not
known, so it is reconciled, not re-sent.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from crmkit.errors import StoreError
from crmkit.store.base import CLAIM_PREFIX, OutboxRow, owner_alive, owner_token
from crmkit.store.sqlite import SQLiteStore, found_in, in_lists

_payload_dec = msgspec.json.Decoder(dict[str, Any])
_COLS = (
    "id, key, campaign, step, contact_id, channel, status, attempts, provider_id, error, "
    "payload, next_attempt_at"
)


def _row(r: tuple[Any, ...]) -> OutboxRow:
    return OutboxRow(
        id=r[0],
        key=r[1],
        campaign=r[2],
        step=r[3] or 0,
        contact_id=r[4],
        channel=r[5],
        status=r[6],
        attempts=r[7],
        provider_id=r[8],
        error=r[9],
        payload=_payload_dec.decode(r[10]) if r[10] else {},
        next_attempt_at=r[11],
    )


def enqueue(store: SQLiteStore, rows: Iterable[tuple[Any, ...]]) -> int:
    """Insert outbox rows; a key already present is left alone. Returns rows inserted.

    Each row is ``(key, campaign, step, contact_id, channel, payload_json,
    next_attempt_at)``; ``payload_json`` is the encoded message.
    """
    now = int(time.time())
    with store.transaction():
        before = store.conn.total_changes
        store.conn.executemany(
            "INSERT OR IGNORE INTO deliveries(key, campaign, step, contact_id, channel, status, "
            "payload, next_attempt_at, created_at, updated_at) "
            f"VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, {now}, {now})",
            rows,
        )
        return store.conn.total_changes - before


def existing_keys(store: SQLiteStore, keys: Sequence[str]) -> set[str]:
    """The subset of ``keys`` already in the outbox."""
    return found_in(store.conn, "deliveries", "key", keys)


def claim(
    store: SQLiteStore,
    *,
    owner: str,
    limit: int,
    lease: int,
    campaign: str | None = None,
    channel: str | None = None,
    now: int | None = None,
) -> list[OutboxRow]:
    """Atomically move up to ``limit`` due queued rows to ``sending`` for ``owner``.

    One ``UPDATE … RETURNING`` inside an immediate transaction: two processes
    claiming at once never get the same row. Each claim counts as an attempt.
    """
    now = int(time.time()) if now is None else now
    cond = ["status = 'queued'", "(next_attempt_at IS NULL OR next_attempt_at <= ?)"]
    args: list[Any] = [now]
    if campaign is not None:
        cond.append("campaign = ?")
        args.append(campaign)
    if channel is not None:
        cond.append("channel = ?")
        args.append(channel)
    sql = (
        "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, error = ?, "
        "next_attempt_at = ?, updated_at = ? WHERE id IN (SELECT id FROM deliveries WHERE "
        + " AND ".join(cond)
        + f" ORDER BY id LIMIT ?) RETURNING {_COLS}"
    )
    try:
        with store.transaction():
            got = store.conn.execute(sql, (owner, now + lease, now, *args, limit)).fetchall()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"store {store.path}: cannot claim outbox rows: {exc}") from None
    return sorted((_row(r) for r in got), key=lambda r: r.id)


def finish(store: SQLiteStore, updates: Iterable[tuple[Any, ...]]) -> None:
    """Record send outcomes: ``(status, provider_id, error, next_attempt_at, key)`` each.

    Must run inside the caller's transaction when it goes with other writes
    (interactions); runs in its own otherwise.
    """
    now = int(time.time())
    with store.transaction():
        store.conn.executemany(
            "UPDATE deliveries SET status = ?, provider_id = COALESCE(?, provider_id), "
            f"error = ?, next_attempt_at = ?, updated_at = {now} WHERE key = ?",
            list(updates),
        )


def set_status(
    store: SQLiteStore,
    keys: Sequence[str],
    status: str,
    *,
    error: str | None = None,
    only_from: Sequence[str] | None = None,
) -> int:
    """Set ``status`` (and ``error``) on rows by key, optionally only from some statuses."""
    now = int(time.time())
    cond = ""
    extra: tuple[Any, ...] = ()
    if only_from:
        cond = f" AND status IN ({','.join('?' * len(only_from))})"
        extra = tuple(only_from)
    with store.transaction():
        before = store.conn.total_changes
        store.conn.executemany(
            f"UPDATE deliveries SET status = ?, error = ?, updated_at = {now} WHERE key = ?{cond}",
            [(status, error, k, *extra) for k in keys],
        )
        return store.conn.total_changes - before


def recover_stale(store: SQLiteStore, *, now: int | None = None) -> int:
    """Turn abandoned claims into ``unknown``; returns how many.

    A ``sending`` row is abandoned when its owner was a process of this host
    that is gone (killed mid-send), or, for an owner on another host, when its
    lease ended. A live local owner keeps its rows however long it takes.
    """
    now = int(time.time()) if now is None else now
    rows = store.conn.execute(
        "SELECT key, error, next_attempt_at FROM deliveries WHERE status = 'sending'"
    ).fetchall()
    alive: dict[str, bool | None] = {}
    stale: list[str] = []
    for key, owner, lease_end in rows:
        owner = owner or ""
        if owner not in alive:
            alive[owner] = owner_alive(owner) if owner.startswith(CLAIM_PREFIX) else False
        state = alive[owner]
        expired = lease_end is not None and lease_end <= now
        if state is False or (state is None and expired):
            stale.append(key)
    if not stale:
        return 0
    return set_status(
        store,
        stale,
        "unknown",
        error="interrupted while sending: outcome unknown",
        only_from=["sending"],
    )


def rows(
    store: SQLiteStore,
    *,
    statuses: Sequence[str] | None = None,
    campaign: str | None = None,
    keys: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[OutboxRow]:
    """Outbox rows filtered by status, campaign or keys, in id order."""
    cond: list[str] = []
    args: list[Any] = []
    if statuses:
        cond.append(f"status IN ({','.join('?' * len(statuses))})")
        args.extend(statuses)
    if campaign is not None:
        cond.append("campaign = ?")
        args.append(campaign)
    where = (" WHERE " + " AND ".join(cond)) if cond else ""
    tail = " ORDER BY id" + (f" LIMIT {int(limit)}" if limit is not None else "")
    if keys is None:
        return [
            _row(r)
            for r in store.conn.execute(f"SELECT {_COLS} FROM deliveries{where}{tail}", args)
        ]
    out: list[OutboxRow] = []
    for chunk in in_lists(keys):
        marks = ",".join("?" * len(chunk))
        kw = f"{where} AND" if where else " WHERE"
        out.extend(
            _row(r)
            for r in store.conn.execute(
                f"SELECT {_COLS} FROM deliveries{kw} key IN ({marks}){tail}", [*args, *chunk]
            )
        )
    return sorted(out, key=lambda r: r.id)


def by_provider_ids(store: SQLiteStore, provider_ids: Sequence[str]) -> dict[str, OutboxRow]:
    """Delivery rows by the provider's message id."""
    out: dict[str, OutboxRow] = {}
    for chunk in in_lists(provider_ids):
        marks = ",".join("?" * len(chunk))
        for r in store.conn.execute(
            f"SELECT {_COLS} FROM deliveries WHERE provider_id IN ({marks})", chunk
        ):
            row = _row(r)
            if row.provider_id is not None:
                out[row.provider_id] = row
    return out


def due_campaigns(store: SQLiteStore, *, now: int | None = None) -> list[tuple[str | None, str]]:
    """``(campaign, channel)`` pairs that have due queued rows or unknown rows."""
    now = int(time.time()) if now is None else now
    return [
        (r[0], r[1])
        for r in store.conn.execute(
            "SELECT DISTINCT campaign, channel FROM deliveries WHERE "
            "(status = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)) "
            "OR status = 'unknown' ORDER BY campaign, channel",
            (now,),
        )
    ]


def counts(store: SQLiteStore, *, campaign: str | None = None) -> dict[str, int]:
    """Rows per status (``scheduled`` counts queued rows not yet due)."""
    now = int(time.time())
    sql = (
        "SELECT CASE WHEN status = 'queued' AND next_attempt_at > ? THEN 'scheduled' "
        "ELSE status END AS s, COUNT(*) FROM deliveries"
    )
    args: list[Any] = [now]
    if campaign is not None:
        sql += " WHERE campaign = ?"
        args.append(campaign)
    return dict(store.conn.execute(sql + " GROUP BY s ORDER BY s", args).fetchall())


# -- suppressions -------------------------------------------------------------------


def add_suppressions(store: SQLiteStore, hashes: Sequence[str], *, scope: str, reason: str) -> int:
    """Add keyed address hashes to the suppression list for ``scope``; returns new ones."""
    now = int(time.time())
    with store.transaction():
        before = store.conn.total_changes
        store.conn.executemany(
            "INSERT OR IGNORE INTO suppressions(hash, channel, reason, created_at) "
            "VALUES (?, ?, ?, ?)",
            [(h, scope, reason, now) for h in hashes],
        )
        return store.conn.total_changes - before


def has_suppressions(store: SQLiteStore, *, scopes: Sequence[str]) -> bool:
    """Whether any address is suppressed in one of ``scopes``."""
    marks = ",".join("?" * len(scopes))
    row = store.conn.execute(
        f"SELECT 1 FROM suppressions WHERE channel IN ({marks}) LIMIT 1", list(scopes)
    ).fetchone()
    return row is not None


def has_rows(store: SQLiteStore, *, campaign: str, step: int) -> bool:
    """Whether the outbox holds any row of ``campaign``'s ``step``."""
    row = store.conn.execute(
        "SELECT 1 FROM deliveries WHERE campaign = ? AND step = ? LIMIT 1", (campaign, step)
    ).fetchone()
    return row is not None


def suppressed(store: SQLiteStore, hashes: Sequence[str], *, scopes: Sequence[str]) -> set[str]:
    """The subset of ``hashes`` suppressed in any of ``scopes``."""
    out: set[str] = set()
    uniq = list(dict.fromkeys(hashes))
    smarks = ",".join("?" * len(scopes))
    for chunk in in_lists(uniq):
        marks = ",".join("?" * len(chunk))
        out.update(
            r[0]
            for r in store.conn.execute(
                f"SELECT hash FROM suppressions WHERE channel IN ({smarks}) AND hash IN ({marks})",
                [*scopes, *chunk],
            )
        )
    return out


__all__ = [
    "CLAIM_PREFIX",
    "OutboxRow",
    "add_suppressions",
    "by_provider_ids",
    "claim",
    "counts",
    "due_campaigns",
    "enqueue",
    "existing_keys",
    "finish",
    "has_rows",
    "has_suppressions",
    "owner_alive",
    "owner_token",
    "recover_stale",
    "rows",
    "set_status",
    "suppressed",
]
