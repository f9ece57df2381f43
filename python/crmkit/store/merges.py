"""Merges and their undo over the SQLite store (its private part).

:class:`~crmkit.store.sqlite.SQLiteStore` implements the merge section of the
:class:`~crmkit.store.base.Store` protocol with these functions; callers use
the protocol methods.

:func:`apply_merges` writes a batch of merges in one transaction: it updates
each survivor, points the merged contacts at it (``merged_into``), relinks
their interactions, consents and segment memberships, and records a merge
event holding a ``before`` image of every row it touched. :func:`undo_merge`
puts those rows back exactly as they were.

Everything is keyed by ids; nothing personal goes into the audit log.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from crmkit.errors import NotFoundError
from crmkit.records import CONTACT_FIELDS, MergeEvent
from crmkit.store.base import MergeConflictError, MergeSpec
from crmkit.store.sqlite import AUDIT_INSERT, SQLiteStore, audit_values, from_epoch, in_lists

_encode = msgspec.json.encode
_decode = msgspec.json.decode

LINKED_TABLES: tuple[str, ...] = ("interactions", "consents", "memberships")
"""Tables whose ``contact_id`` moves to the survivor on a merge."""


_WRITABLE = frozenset({*(f for f in CONTACT_FIELDS if f != "external_id"), "attrs"})


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _contact_columns(conn: sqlite3.Connection) -> list[str]:
    return [r[1] for r in conn.execute("PRAGMA table_info(contacts)")]


def contact_rows(store: SQLiteStore, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Whole contacts rows by id, as stored (``tags``/``attrs`` decoded from JSON)."""
    conn = store.conn
    names = _contact_columns(conn)
    out: dict[int, dict[str, Any]] = {}
    uniq = list(dict.fromkeys(ids))
    for chunk in in_lists(uniq):
        for row in conn.execute(
            f"SELECT * FROM contacts WHERE id IN ({_marks(len(chunk))})", tuple(chunk)
        ):
            d = dict(zip(names, row, strict=True))
            d["tags"] = _decode(d["tags"]) if d.get("tags") else []
            d["attrs"] = _decode(d["attrs"]) if d.get("attrs") else {}
            out[d["id"]] = d
    return out


def _freeze(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as JSON-safe data that keeps BLOBs apart from TEXT (``{"$blob": hex}``)."""
    return {k: {"$blob": v.hex()} if isinstance(v, bytes) else v for k, v in row.items()}


def _thaw(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: bytes.fromhex(v["$blob"]) if isinstance(v, dict) and "$blob" in v else v
        for k, v in row.items()
    }


def _event(row: tuple[Any, ...]) -> MergeEvent:
    return MergeEvent(
        id=row[0],
        survivor_id=row[1],
        merged_ids=tuple(_decode(row[2])),
        score=row[3],
        explanation=_decode(row[4]) if row[4] else {},
        provenance=_decode(row[5]) if row[5] else {},
        created_at=from_epoch(row[6]),
        undone_at=from_epoch(row[7]),
    )


_EVENT_COLS = "id, survivor_id, merged_ids, score, explanation, provenance, created_at, undone_at"


_STEP = 2048
"""Merges written per step: their rows are read and written with a handful of
statements (``IN`` lists and ``executemany``), not a dozen per merge."""


def apply_merges(
    store: SQLiteStore,
    specs: Sequence[MergeSpec],
    *,
    actor: str = "crmkit",
    on_merge: Callable[[int], None] | None = None,
) -> list[MergeEvent]:
    """Apply ``specs`` in one transaction and return their merge events.

    Every id must be a live contact (not merged, present) and appear in one
    spec only; otherwise nothing is written and :class:`MergeConflictError`
    says which id. ``on_merge`` is called with the count applied so far after
    each merge (progress); if it raises, nothing is written.
    """
    seen: set[int] = set()
    for s in specs:
        if s.survivor_id in s.merged_ids or not s.merged_ids:
            raise MergeConflictError(
                f"merge of contact {s.survivor_id}: merged ids must be other contacts"
            )
        for i in (s.survivor_id, *s.merged_ids):
            if i in seen:
                raise MergeConflictError(f"contact {i} appears in more than one merge")
            seen.add(i)
    for k in (k for s in specs for k in s.values):
        if k not in _WRITABLE:
            raise MergeConflictError(f"cannot set contacts column {k!r} in a merge")
    now = int(time.time())
    events: list[MergeEvent] = []
    conn = store.conn
    names = _contact_columns(conn)
    try:
        with store.transaction():
            next_id = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM merges").fetchone()[0])
            for at in range(0, len(specs), _STEP):
                step = specs[at : at + _STEP]
                events += _apply_step(store, conn, names, step, now, next_id + at + 1, actor)
                if on_merge is not None:
                    for n in range(at + 1, at + len(step) + 1):
                        on_merge(n)
    except sqlite3.IntegrityError as exc:
        raise MergeConflictError(f"merge not applied: a store constraint failed ({exc})") from None
    return events


def _apply_step(
    store: SQLiteStore,
    conn: sqlite3.Connection,
    names: list[str],
    specs: Sequence[MergeSpec],
    now: int,
    first_id: int,
    actor: str,
) -> list[MergeEvent]:
    """Write ``specs`` (disjoint, checked by the caller) as merges ``first_id``….

    Every row is read before any is written; as the merges share no contact,
    each one's ``before`` image is what applying them one by one would record.
    """
    ids = [i for s in specs for i in (s.survivor_id, *s.merged_ids)]
    found: dict[int, dict[str, Any]] = {}
    for chunk in in_lists(ids):
        for r in conn.execute(
            f"SELECT * FROM contacts WHERE id IN ({_marks(len(chunk))})", tuple(chunk)
        ):
            found[r[0]] = dict(zip(names, r, strict=True))
    for i in ids:
        r = found.get(i)
        if r is None:
            raise MergeConflictError(f"contact {i} does not exist")
        if r["merged_into"] is not None:
            raise MergeConflictError(
                f"contact {i} was already merged into contact {r['merged_into']}"
            )
    survivor_of = {m: s.survivor_id for s in specs for m in s.merged_ids}
    merged = list(survivor_of)
    links: dict[int, dict[str, dict[str, int]]] = {
        s.survivor_id: {t: {} for t in LINKED_TABLES} for s in specs
    }
    for table in LINKED_TABLES:
        moved: list[tuple[int, int]] = []
        rows: list[tuple[int, int]] = []
        for chunk in in_lists(merged):
            rows += conn.execute(
                f"SELECT id, contact_id FROM {table} WHERE contact_id IN ({_marks(len(chunk))})",
                tuple(chunk),
            ).fetchall()
        rows.sort()
        for rid, cid in rows:
            links[survivor_of[cid]][table][str(rid)] = cid
        for cid in dict.fromkeys(cid for _, cid in rows):
            moved.append((survivor_of[cid], cid))
        conn.executemany(f"UPDATE {table} SET contact_id = ? WHERE contact_id = ?", moved)
    # Merged rows leave the live set first, so that a survivor may take their email.
    conn.executemany(
        "UPDATE contacts SET merged_into = ?, updated_at = ? WHERE id = ?",
        [(sid, now, m) for m, sid in survivor_of.items()],
    )
    by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for s in specs:
        vals = dict(s.values)
        if "tags" in vals:
            vals["tags"] = _encode(list(vals["tags"])) if vals["tags"] else None
        if "attrs" in vals:
            vals["attrs"] = _encode(dict(vals["attrs"])) if vals["attrs"] else None
        cols = tuple(sorted(vals))
        by_columns.setdefault(cols, []).append((*(vals[c] for c in cols), now, s.survivor_id))
    for cols, params in by_columns.items():
        sets = "".join(f"{c} = ?, " for c in cols)
        conn.executemany(f"UPDATE contacts SET {sets}updated_at = ? WHERE id = ?", params)
    events: list[MergeEvent] = []
    merge_rows: list[tuple[Any, ...]] = []
    audit_rows: list[tuple[Any, ...]] = []
    for mid, s in enumerate(specs, first_id):
        gone = list(s.merged_ids)
        provenance = {**s.provenance, "survivor_updated_at": now}
        image = {
            "contacts": [_freeze(found[i]) for i in sorted((s.survivor_id, *gone))],
            "links": links[s.survivor_id],
        }
        merge_rows.append(
            (
                mid,
                s.survivor_id,
                _encode(gone).decode(),
                s.score,
                _encode(s.explanation).decode() if s.explanation else None,
                _encode(provenance).decode(),
                _encode(image).decode(),
                now,
            )
        )
        audit_rows.append(
            audit_values("contacts.merge", actor, (s.survivor_id, *gone), {"merge_id": mid})
        )
        events.append(
            MergeEvent(
                id=mid,
                survivor_id=s.survivor_id,
                merged_ids=tuple(gone),
                score=s.score,
                explanation=dict(s.explanation),
                provenance=provenance,
                created_at=datetime.fromtimestamp(now, UTC),
            )
        )
    conn.executemany(
        "INSERT INTO merges(id, survivor_id, merged_ids, score, explanation, provenance, "
        "before, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        merge_rows,
    )
    conn.executemany(AUDIT_INSERT, audit_rows)
    return events


def list_merges(
    store: SQLiteStore, *, limit: int = 50, include_undone: bool = True
) -> list[MergeEvent]:
    """Merge events, newest first."""
    sql = f"SELECT {_EVENT_COLS} FROM merges"
    if not include_undone:
        sql += " WHERE undone_at IS NULL"
    rows = store.conn.execute(sql + " ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [_event(r) for r in rows]


def get_merge(store: SQLiteStore, merge_id: int) -> MergeEvent:
    """One merge event; :class:`NotFoundError` when there is none with that id."""
    row = store.conn.execute(
        f"SELECT {_EVENT_COLS} FROM merges WHERE id = ?", (merge_id,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no merge with id {merge_id}")
    return _event(row)


def undone_merges(store: SQLiteStore) -> list[tuple[int, ...]]:
    """The contacts of every undone merge, survivor first, oldest merge first."""
    rows = store.conn.execute(
        "SELECT survivor_id, merged_ids FROM merges WHERE undone_at IS NOT NULL ORDER BY id"
    ).fetchall()
    return [(r[0], *_decode(r[1])) for r in rows]


def merge_before(store: SQLiteStore, merge_id: int) -> dict[str, Any]:
    """The ``before`` image of a merge: ``{"contacts": [row, …], "links": {table: {id: contact_id}}}``."""
    row = store.conn.execute("SELECT before FROM merges WHERE id = ?", (merge_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no merge with id {merge_id}")
    image: dict[str, Any] = _decode(row[0]) if row[0] else {"contacts": [], "links": {}}
    return image


def undo_merge(
    store: SQLiteStore, merge_id: int, *, actor: str = "crmkit", force: bool = False
) -> MergeEvent:
    """Put back every row merge ``merge_id`` touched, exactly as it was before it.

    Refused (:class:`MergeConflictError`, nothing written) when the merge was
    already undone, when a later merge that is still in force involves one of
    its contacts (undo that one first), or when the survivor changed after the
    merge (an import updated it): ``force=True`` restores the pre-merge values
    anyway, losing that later change to the survivor's fields.
    """
    conn = store.conn
    ev = get_merge(store, merge_id)
    if ev.undone_at is not None:
        raise MergeConflictError(f"merge {merge_id} was already undone")
    ids = {ev.survivor_id, *ev.merged_ids}
    for later in conn.execute(
        "SELECT id, survivor_id, merged_ids FROM merges WHERE id > ? AND undone_at IS NULL "
        "ORDER BY id",
        (merge_id,),
    ):
        if ids & {later[1], *_decode(later[2])}:
            raise MergeConflictError(
                f"merge {merge_id} cannot be undone: later merge {later[0]} involves "
                f"its contacts; undo merge {later[0]} first"
            )
    image = merge_before(store, merge_id)
    stamp = ev.provenance.get("survivor_updated_at")
    now = int(time.time())
    try:
        with store.transaction():
            cur = conn.execute(
                "SELECT updated_at, merged_into FROM contacts WHERE id = ?", (ev.survivor_id,)
            ).fetchone()
            if cur is None:
                raise MergeConflictError(
                    f"merge {merge_id} cannot be undone: contact {ev.survivor_id} no longer exists"
                )
            if cur[1] is not None:
                raise MergeConflictError(
                    f"merge {merge_id} cannot be undone: contact {ev.survivor_id} was merged "
                    f"into contact {cur[1]} since"
                )
            if not force and stamp is not None and cur[0] != stamp:
                raise MergeConflictError(
                    f"merge {merge_id}: contact {ev.survivor_id} changed after the merge; "
                    "undo with force to restore the pre-merge values anyway"
                )
            rows = [_thaw(r) for r in image["contacts"]]
            # The survivor first: merged rows rejoin the live set after it gives back their email.
            rows = sorted(rows, key=lambda r: r["id"] != ev.survivor_id)
            for r in rows:
                cols = [c for c in r if c != "id"]
                conn.execute(
                    f"UPDATE contacts SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
                    (*(r[c] for c in cols), r["id"]),
                )
            for table, moved in image["links"].items():
                if table not in LINKED_TABLES:
                    continue
                conn.executemany(
                    f"UPDATE {table} SET contact_id = ? WHERE id = ?",
                    [(old, int(i)) for i, old in moved.items()],
                )
            conn.execute("UPDATE merges SET undone_at = ? WHERE id = ?", (now, merge_id))
            store.audit(
                "contacts.merge.undo",
                actor=actor,
                ids=sorted(ids),
                details={"merge_id": merge_id},
            )
    except sqlite3.IntegrityError:
        raise MergeConflictError(
            f"merge {merge_id} cannot be undone: another live contact now has the email "
            "of one of its merged contacts"
        ) from None
    return MergeEvent(
        id=ev.id,
        survivor_id=ev.survivor_id,
        merged_ids=ev.merged_ids,
        score=ev.score,
        explanation=ev.explanation,
        provenance=ev.provenance,
        created_at=ev.created_at,
        undone_at=datetime.fromtimestamp(now, UTC),
    )


def undo_check(store: SQLiteStore, merge_id: int) -> Mapping[str, Any]:
    """Whether merge ``merge_id`` can be undone now: ``{"ok": bool, "reason": str | None}``."""
    ev = get_merge(store, merge_id)
    if ev.undone_at is not None:
        return {"ok": False, "reason": "already undone"}
    ids = {ev.survivor_id, *ev.merged_ids}
    for later in store.conn.execute(
        "SELECT id, survivor_id, merged_ids FROM merges WHERE id > ? AND undone_at IS NULL",
        (merge_id,),
    ):
        if ids & {later[1], *_decode(later[2])}:
            return {"ok": False, "reason": f"later merge {later[0]} involves its contacts"}
    return {"ok": True, "reason": None}


__all__ = [
    "LINKED_TABLES",
    "MergeConflictError",
    "MergeSpec",
    "apply_merges",
    "contact_rows",
    "get_merge",
    "list_merges",
    "merge_before",
    "undo_check",
    "undo_merge",
]
