"""The built-in SQLite store: one file, WAL mode, one transaction per batch."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from crmkit.bulk import collector_paused
from crmkit.errors import ConfigError, NotFoundError, StoreError
from crmkit.records import (
    CONTACT_FIELDS,
    AttributeType,
    AuditEntry,
    Consent,
    ConsentStatus,
    Contact,
    Interaction,
    MergeEvent,
    Segment,
)
from crmkit.store.base import (
    ChangePosition,
    Changes,
    ContactQuery,
    ErasureCounts,
    MergeSpec,
    OutboxRow,
    UpsertResult,
)
from crmkit.store.bulkio import execute_columns, submit_columns, writer
from crmkit.store.report_queries import ReportQueriesMixin
from crmkit.store.schema import DEFERRABLE_INDEXES, KEY_INDEXES, MIGRATIONS, SCHEMA_VERSION

_json_encode = msgspec.json.encode
_json_decode = msgspec.json.decode

# Built-in contact columns stored as plain TEXT columns (tags and external_id aside).
_PLAIN: tuple[str, ...] = tuple(f for f in CONTACT_FIELDS if f not in ("tags", "external_id"))
_CHUNK = 8192  # bound parameters per IN (...) query; SQLite allows 32,766
ATTRIBUTE_TYPES: frozenset[str] = frozenset(
    {"string", "integer", "number", "boolean", "date", "datetime", "list"}
)


def to_epoch(value: Any) -> int | None:
    """Epoch seconds from a datetime, a number or an ISO-8601 string (UTC if naive)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a boolean is not a time")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp())
    raise TypeError(f"not a time: {type(value).__name__}")


def from_epoch(value: int | None) -> datetime | None:
    """A UTC datetime from epoch seconds."""
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def _path_from_url(url: str) -> Path:
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    if url.startswith("sqlite://"):
        return Path(url[len("sqlite://") :])
    if "://" in url:
        raise ConfigError(f"not a SQLite URL: {url.split('://', 1)[0]}://…")
    return Path(url)


def _padded(values: Sequence[Any]) -> list[Any]:
    """``values`` for an ``IN (...)`` list, padded to a power-of-two length by
    repeating the last value (which changes no result). The connection caches
    one compiled statement per distinct SQL text, and a statement with a long
    IN list is large: without padding, every batch of an import would add one
    more to the cache."""
    out = list(values)
    if out:
        out.extend([out[-1]] * ((1 << (len(out) - 1).bit_length()) - len(out)))
    return out


def _decode_json_column(values: Sequence[Any]) -> list[Any]:
    """A column of JSON texts (str, bytes or None) decoded in one call."""
    parts = [(v if v.__class__ is bytes else v.encode()) if v else b"null" for v in values]
    return list(_json_decode(b"[" + b",".join(parts) + b"]")) if parts else []


AUDIT_INSERT = "INSERT INTO audit(at, actor, action, ids, details) VALUES (?, ?, ?, ?, ?)"
"""The statement that writes an audit entry, with :func:`audit_values`."""


def audit_values(
    action: str, actor: str, ids: Sequence[int] = (), details: Mapping[str, Any] | None = None
) -> tuple[Any, ...]:
    """The parameters of :data:`AUDIT_INSERT` for one entry, stamped now."""
    return (
        int(time.time()),
        actor,
        action,
        _json_encode(list(ids)).decode() if ids else None,
        _json_encode(dict(details)).decode() if details else None,
    )


def in_lists(seq: Sequence[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    """``seq`` in padded chunks for ``IN (...)`` lists (see :func:`_padded`)."""
    for i in range(0, len(seq), size):
        yield _padded(seq[i : i + size])


def found_in(conn: sqlite3.Connection, table: str, column: str, values: Sequence[Any]) -> set[Any]:
    """The subset of ``values`` present in ``table.column``, looked up in chunks."""
    out: set[Any] = set()
    for chunk in in_lists(values):
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT {column} FROM {table} WHERE {column} IN ({marks})"
        out.update(r[0] for r in conn.execute(sql, chunk))
    return out


class _Checkpointer:
    """Copies the WAL into the database file from a thread and a connection
    of its own while a bulk load goes on, so that the load's commits do not
    wait for it; the load's connection stops checkpointing until :meth:`stop`."""

    INTERVAL = 0.25
    """Seconds between checkpoints."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._stop = threading.Event()
        conn.execute("PRAGMA wal_autocheckpoint=0")
        self._thread = threading.Thread(
            target=self._run, args=(path,), name="crmkit-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return
        try:
            while not self._stop.wait(self.INTERVAL):
                # PASSIVE: copies what is committed, never waits for the writer.
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # the load's connection checkpoints again once the load ends
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        with suppress(sqlite3.ProgrammingError):  # the store was closed meanwhile
            self._conn.execute("PRAGMA wal_autocheckpoint=1000")


class SQLiteStore(ReportQueriesMixin):
    """A :class:`crmkit.store.Store` in one SQLite file.

    Opening creates the file when missing and migrates the schema. The file is
    in WAL mode with ``synchronous=NORMAL``; every write method is one
    transaction unless called inside :meth:`transaction`.
    """

    def __init__(self, url: str | Path, *, timeout: float = 5.0) -> None:
        self.path = _path_from_url(str(url))
        self.url = f"sqlite:///{self.path}"
        self._depth = 0
        self._bulk = False
        # Upsert keys held in memory during a bulk load (see bulk_load).
        self._keys: Any = None
        self._keys_kind = "email"
        self._keys_source: str | None = None
        self._keys_allowed = False
        # While the map is live, the change-log stamp and the next contact id
        # are counted here, so that an upsert needs nothing from the connection
        # and is queued while the previous one is still being written.
        self._rev: int | None = None
        self._next_id: int | None = None
        self._lock = threading.RLock()
        # During a bulk load: the writer whose thread runs the bulk statements,
        # whether any are queued, and the thread that checkpoints the WAL.
        self._writer: Any = None
        self._queued = False
        self._checkpointer: _Checkpointer | None = None
        name = self.path.name
        if self.path.parent and not self.path.parent.exists():
            raise StoreError(f"store {self.path}: folder {self.path.parent} does not exist")
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            (mode,) = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()
            self._wal = str(mode).lower() == "wal"
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA temp_store=MEMORY")
            self.conn.execute("PRAGMA cache_size=-65536")
            self._migrate()
            self._restore_indexes()
        except sqlite3.DatabaseError as exc:
            raise StoreError(_explain(exc, self.path)) from None
        self._name = name

    # -- lifecycle -------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """The store's connection, once every bulk statement queued on it has
        run (a bulk load queues them on a thread of their own; see
        :meth:`bulk_load`). Raises the first error they met."""
        if self._queued:
            self._drain()
        return self._conn

    def _drain(self) -> None:
        """Wait for the queued bulk statements; raise the first error they met."""
        self._queued = False
        if self._writer is not None:
            self._writer.drain()

    def _drain_quietly(self) -> None:
        """Wait for the queued bulk statements, whatever they met (before a
        rollback, which undoes them anyway)."""
        with suppress(sqlite3.Error, ValueError):
            self._drain()

    def _exec(
        self,
        conn: sqlite3.Connection,
        sql: str,
        columns: Sequence[Any],
        rows: int,
        index: Sequence[int] | None = None,
    ) -> None:
        """Run a bulk statement inside the open transaction: queued on the
        bulk load's writer when there is one (it runs while the caller goes
        on, and the next use of :attr:`conn` waits for it), else at once."""
        if self._writer is not None:
            submit_columns(self._writer, sql, columns, rows, index)
            self._queued = True
        else:
            execute_columns(conn, sql, columns, rows, index)

    def close(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            self._stop_writer()
            conn.close()
            self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise StoreError(_explain(exc, self.path)) from None
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._forget_keys()
                self._drain_quietly()
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            try:
                self.conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                self._forget_keys()
                self._drain_quietly()
                self._conn.execute("ROLLBACK")
                raise StoreError(_explain(exc, self.path)) from None

    BULK_LOAD_MAX_ROWS = 200_000
    """A bulk load defers index upkeep only while the store holds fewer
    contacts than this: rebuilding an index costs time in proportion to the
    whole table, which must stay small next to what the load saves."""

    BULK_KEYS_MAX = 2_000_000
    """A bulk load holds at most about this many keys (emails and record ids,
    about 60 bytes each) in memory; past it, the unique email index is rebuilt
    and the rest of the load resolves keys through the indexes, so that memory
    stays bounded however large the import."""

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Defer index upkeep to the end of the block (see :meth:`Store.bulk_load`).

        In a store with fewer than :attr:`BULK_LOAD_MAX_ROWS` contacts, the
        indexes no upsert reads are dropped for the block, and the first
        upsert loads every email (and, keyed by record id, the source's record
        ids) into a :class:`KeyMap` and drops the unique email index too: keys
        then resolve in memory, by the same rules as outside a bulk load, and
        the index is rebuilt once, at the end. Any other write of contacts in
        the block (or an upsert with the other key) rebuilds it first, and a
        rollback forgets the map.

        In the block, upserts queue their statements on a thread of their
        own, which writes one batch while the caller prepares the next
        (:attr:`conn` waits for it), and another thread copies the WAL into
        the database file, so that commits do not wait for that.
        """
        if self._bulk or self._depth:
            yield
            return
        (count,) = self.conn.execute("SELECT count(*) FROM contacts").fetchone()
        if count >= self.BULK_LOAD_MAX_ROWS:
            yield
            return
        present = self._present_indexes()
        with self._write() as conn:
            for name in DEFERRABLE_INDEXES:
                if name in present:
                    conn.execute(f"DROP INDEX {name}")
        self._bulk = True
        self._keys_allowed = True
        self._writer = writer(self._conn)
        if self._wal:
            self._checkpointer = _Checkpointer(self.path, self._conn)
        try:
            yield
        finally:
            try:
                self._stop_writer()
                self._bulk = False
                self._keys_allowed = False
                self._drop_keys()
                self._restore_indexes()
            finally:
                if self._checkpointer is not None:
                    self._checkpointer.stop()
                    self._checkpointer = None

    def _stop_writer(self) -> None:
        """End the bulk load's writer (its statements were drained by the
        commit or rollback that ended their transaction)."""
        bulk, self._writer = self._writer, None
        if bulk is not None:
            self._queued = False
            bulk.close()

    def _present_indexes(self) -> set[str]:
        return {
            r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }

    def _restore_indexes(self) -> None:
        wanted = {**KEY_INDEXES, **DEFERRABLE_INDEXES}
        missing = [n for n in wanted if n not in self._present_indexes()]
        if missing:
            with self._write() as conn:
                for name in missing:
                    conn.execute(wanted[name])

    def _bulk_keys(self, conn: sqlite3.Connection, key: str, source: str) -> Any:
        """The in-memory key map of this bulk load, made on first use (see
        :meth:`bulk_load`); None outside a bulk load, or once a write other
        than an upsert with the map's key ended it. Call inside a write
        transaction."""
        if not (self._bulk and self._keys_allowed):
            return None
        if self._keys is not None and self._keys_kind != key:
            self._end_keys(conn)
            return None
        if self._keys is None:
            from crmkit import _core

            keys = _core.KeyMap(track_current=key == "external_id")
            live = conn.execute(
                "SELECT email, id FROM contacts WHERE email IS NOT NULL AND merged_into IS NULL"
            ).fetchall()
            if live:
                keys.add_current([e for e, _ in live], [cid for _, cid in live])
            merged = conn.execute(
                "SELECT email, id FROM contacts WHERE email IS NOT NULL "
                "AND merged_into IS NOT NULL ORDER BY id"
            ).fetchall()
            if merged:
                survivor = self._resolve(conn, [cid for _, cid in merged])
                keys.add_emails([e for e, _ in merged], [survivor[cid] for _, cid in merged])
            for name in KEY_INDEXES:
                conn.execute(f"DROP INDEX IF EXISTS {name}")
            self._keys, self._keys_kind, self._keys_source = keys, key, None
        if key == "external_id" and self._keys_source != source:
            self._keys.clear_external()
            rows = conn.execute(
                "SELECT external_id, contact_id FROM identities WHERE source = ?", (source,)
            ).fetchall()
            if rows:
                survivor = self._resolve(conn, [cid for _, cid in rows])
                self._keys.add_external([k for k, _ in rows], [survivor[c] for _, c in rows])
            self._keys_source = source
        return self._keys

    def _batch_keys(
        self,
        conn: sqlite3.Connection,
        key: str,
        keys: Sequence[str | None],
        emails: Sequence[str | None] | None,
        source: str,
    ) -> Any:
        """A key map holding what the store's indexes say of one batch's keys
        (and, by record id, its emails and their contacts' current emails):
        the batch then resolves by the same rules as in a bulk load."""
        from crmkit import _core

        km = _core.KeyMap(track_current=key == "external_id")
        if key == "email":
            found = self._lookup(conn, "email", [k for k in keys if k is not None], source)
            km.add_emails(list(found), list(found.values()))
            return km
        by_ext = self._lookup(conn, "external_id", [k for k in keys if k is not None], source)
        km.add_external(list(by_ext), list(by_ext.values()))
        by_email: dict[str, int] = {}
        if emails is not None:
            by_email = self._lookup(conn, "email", [e for e in emails if e is not None], source)
        ids = list(dict.fromkeys([*by_ext.values(), *by_email.values()]))
        for chunk in in_lists(ids):
            rows = conn.execute(
                f"SELECT email, id FROM contacts WHERE id IN ({','.join('?' * len(chunk))}) "
                "AND email IS NOT NULL AND merged_into IS NULL",
                chunk,
            ).fetchall()
            if rows:
                km.add_current([e for e, _ in rows], [cid for _, cid in rows])
        km.add_emails(list(by_email), list(by_email.values()))
        return km

    def _end_keys(self, conn: sqlite3.Connection) -> None:
        """Rebuild the indexes the email map stood in for, before a write that
        needs them; the rest of the bulk load uses the indexes."""
        self._drain()
        self._keys_allowed = False
        if self._keys is not None:
            self._drop_keys()
            for sql in KEY_INDEXES.values():
                conn.execute(sql)

    def _keys_done(self) -> None:
        """End the email map before a write of contacts other than an upsert
        by email (see :meth:`_end_keys`)."""
        if self._keys is not None or self._keys_allowed:
            with self._write() as conn:
                self._end_keys(conn)

    def _forget_keys(self) -> None:
        """A rollback undoes what the map recorded: drop it for the rest of
        the block (the rollback restores an index dropped in the same
        transaction; :meth:`_restore_indexes` rebuilds one dropped earlier)."""
        self._drop_keys()
        self._keys_allowed = False

    def _drop_keys(self) -> None:
        """Forget the key map and the counters kept with it."""
        self._keys = None
        self._rev = None
        self._next_id = None

    def _live_keys(self, key: str, source: str) -> tuple[Any, int] | None:
        """The bulk load's key map and the next contact id, if the map is live
        for ``key`` (and, keyed by record id, for ``source``) with its
        counters, so that an upsert needs nothing from the connection; else
        None."""
        km, next_id = self._keys, self._next_id
        if km is None or next_id is None or self._rev is None:
            return None
        if not (self._bulk and self._keys_allowed) or self._keys_kind != key:
            return None
        if key == "external_id" and self._keys_source != source:
            return None
        return km, next_id

    @contextmanager
    def _write(self, *, drain: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction (joining the open one, if any) and the
        connection; with ``drain=False`` the bulk statements queued so far may
        still be running, and the caller must only queue more."""
        try:
            with self.transaction():
                yield self.conn if drain else self._conn
        except sqlite3.DatabaseError as exc:
            raise StoreError(_explain(exc, self.path)) from None

    def schema_version(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {current}, newer than this crmkit "
                f"({SCHEMA_VERSION}): upgrade crmkit"
            )
        for version in range(current, SCHEMA_VERSION):
            with self.transaction():
                for stmt in MIGRATIONS[version]:
                    if version == 0 and stmt.startswith("CREATE TABLE IF NOT EXISTS meta"):
                        continue
                    self.conn.execute(stmt)
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(version + 1),),
                )

    # -- contacts --------------------------------------------------------------

    def upsert_contacts(
        self,
        columns: Mapping[str, Sequence[Any]],
        *,
        key: str,
        source: str,
        file: str | None = None,
        lines: Sequence[int] | None = None,
    ) -> UpsertResult:
        if key not in ("email", "external_id"):
            raise ConfigError(f"upsert key must be 'email' or 'external_id', not {key!r}")
        if key not in columns:
            raise ConfigError(f"upsert key {key!r} is not among the columns")
        n = len(columns[key])
        for name, col in columns.items():
            if len(col) != n:
                raise ConfigError(f"column {name!r} has {len(col)} values, expected {n}")
        if n == 0:
            return UpsertResult()
        now = int(time.time())
        plain = [f for f in _PLAIN if f in columns]
        custom = [c for c in columns if c not in CONTACT_FIELDS]
        keys = columns[key]
        emails = columns.get("email")
        ext = columns.get("external_id")
        tags = columns.get("tags")
        line_col: Sequence[int | None] = lines if lines is not None else [None] * n

        with self._write(drain=False) as conn:
            live = self._live_keys(key, source)
            if live is not None:
                # Nothing read from the store: the previous batch's writes may
                # still be running on the writer's thread.
                keymap, next_id = live
            else:
                conn = self.conn
                keymap = self._bulk_keys(conn, key, source)
                if keymap is None:
                    keymap = self._batch_keys(conn, key, keys, emails, source)
                next_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM contacts").fetchone()[0]
                next_id += 1
            rev = self._stamp(conn)
            ids: list[int | None]
            new_idx: list[int]
            conflicts: list[int] = []
            key_list = keys if isinstance(keys, list) else list(keys)
            if key == "email":
                ids, new_idx, created, updated, _ = keymap.assign(key_list, next_id)
            else:
                email_list = [None] * n if emails is None else list(emails)
                ids, new_idx, created, updated, _, conflicts, held = keymap.assign_external(
                    key_list, email_list, next_id
                )
                if conflicts or held:
                    # The email of these rows is not written: another contact
                    # holds it, or their own contact does already.
                    for i in (*conflicts, *held):
                        email_list[i] = None
                    columns = {**columns, "email": email_list}
            is_new_row = bytearray(n)
            for i in new_idx:
                is_new_row[i] = 1
            # Updates in id order (stable: one contact's rows keep theirs), so that
            # the table's pages are visited in order.
            upd_idx = [i for i in range(n) if ids[i] is not None and not is_new_row[i]]
            upd_idx.sort(key=lambda i: ids[i] or 0)

            # The rows of one contact in this batch are written once, folded
            # the way upserting them one after the other would leave it.
            from crmkit import _core

            written: dict[str, Sequence[Any]] = {f: columns[f] for f in (*plain, *custom)}
            if tags is not None:
                written["tags"] = tags
            unfolded = (written, line_col)
            folded = _core.fold_rows(ids, [*written.values(), line_col])
            if folded is not None:
                cols_f = folded[1]
                written = dict(zip(written, cols_f, strict=False))
                line_col = cols_f[-1]

            # Whole-column work at C speed: encoded tags and attrs, then rows zipped
            # from the columns of the rows to insert and of the rows to update.
            enc = _json_encode

            def encode_tags(src: Sequence[Any] | None) -> list[bytes | None]:
                if src is None:
                    return [None] * n
                return [None if t is None else enc(list(t)) for t in src]

            tag_col = encode_tags(written.get("tags"))
            attr_col: list[bytes | None] | None = [None] * n
            if custom:
                attr_col = _core.encode_json_objects(custom, [list(written[c]) for c in custom])
            if attr_col is None:  # values Rust does not encode (dicts from JSON lines)
                if folded is not None:
                    # json_patch merges nested objects, which a fold does not:
                    # write these rows one by one.
                    (written, line_col), folded = unfolded, None
                    tag_col = encode_tags(tags)
                attr_col = [
                    enc(d) if d else None
                    for d in (
                        {c: v for c, v in zip(custom, row, strict=True) if v is not None}
                        for row in zip(*[written[c] for c in custom], strict=True)
                    )
                ]
            if folded is not None:
                is_rep = bytearray(n)
                for i in folded[0]:
                    is_rep[i] = 1
                new_idx = [i for i in new_idx if is_rep[i]]
                upd_idx = [i for i in upd_idx if is_rep[i]]

            ins_sql = (
                f"INSERT INTO contacts(id, {', '.join(plain)}{', ' if plain else ''}tags, attrs, "
                "source, source_file, source_line, created_at, updated_at, rev) VALUES "
                f"({', '.join('?' * (len(plain) + 9))})"
            )
            # An update keyed by email keeps the contact's email: a key that
            # resolved through a merged-away record names the survivor, whose
            # own email stays.
            upd_plain = [f for f in plain if f != "email"] if key == "email" else plain
            sets = ", ".join(f"{f} = COALESCE(?, {f})" for f in upd_plain)
            upd_sql = (
                f"UPDATE contacts SET {sets}{', ' if upd_plain else ''}"
                "tags = COALESCE(?, tags), "
                "attrs = CASE WHEN ?1 IS NULL THEN attrs ELSE json_patch(COALESCE(attrs, '{}'), ?1) END, "
                "source = ?, source_file = ?, source_line = ?, updated_at = ?, rev = ? WHERE id = ?"
            ).replace("?1", f"?{len(upd_plain) + 2}")
            value_cols = [*(written[f] for f in plain), tag_col, attr_col]
            upd_cols = [*(written[f] for f in upd_plain), tag_col, attr_col]

            if key != "email" and "email" in written:
                # Contacts whose email moves let go of the old one first: the
                # rows are written in id order (and folded), not in the order
                # that freed an email before another row took it.
                new_email = written["email"]
                movers = [ids[i] for i in upd_idx if new_email[i] is not None]
                if movers:
                    self._exec(
                        conn, "UPDATE contacts SET email = NULL WHERE id = ?", [movers], len(movers)
                    )
            if new_idx:
                self._exec(
                    conn,
                    ins_sql,
                    [ids, *value_cols, source, file, line_col, now, now, rev],
                    n,
                    None if len(new_idx) == n else new_idx,
                )
            if upd_idx:
                self._exec(
                    conn,
                    upd_sql,
                    [*upd_cols, source, file, line_col, now, rev, ids],
                    n,
                    upd_idx,
                )
            if ext is not None:
                known = [i for i in range(n) if ext[i] is not None and ids[i] is not None]
                self._exec(
                    conn,
                    "INSERT OR IGNORE INTO identities(source, external_id, contact_id) VALUES (?, ?, ?)",
                    [source, ext, ids],
                    n,
                    None if len(known) == n else known,
                )
            if keymap is self._keys:
                self._rev = rev
                self._next_id = max(next_id, max(created, default=0) + 1)
            if self._keys is not None and len(self._keys) > self.BULK_KEYS_MAX:
                self._end_keys(conn)
        return UpsertResult(created=created, updated=updated, ids=ids, conflicts=conflicts)

    def _lookup(
        self, conn: sqlite3.Connection, field: str, values: Sequence[str], source: str | None
    ) -> dict[str, int]:
        out: dict[str, int] = {}
        uniq = list(dict.fromkeys(values))
        if field == "email" and self._keys is not None:
            # A bulk load holds every email in memory (see bulk_load).
            return {
                v: cid for v, cid in zip(uniq, self._keys.get(uniq), strict=True) if cid is not None
            }
        for chunk in in_lists(uniq):
            marks = ",".join("?" * len(chunk))
            if field == "external_id":
                rows = conn.execute(
                    f"SELECT external_id, contact_id FROM identities WHERE source = ? AND external_id IN ({marks})",
                    (source, *chunk),
                ).fetchall()
            elif field == "email":
                # Live contacts first; a value held only by a merged-away record
                # resolves to the survivor it was merged into. Two queries, so
                # that each uses its partial index.
                rows = conn.execute(
                    f"SELECT email, id FROM contacts WHERE email IN ({marks}) "
                    "AND merged_into IS NULL",
                    tuple(chunk),
                ).fetchall()
                found = {v for v, _ in rows}
                rest = _padded(list(dict.fromkeys(v for v in chunk if v not in found)))
                if rest:
                    rows += conn.execute(
                        "SELECT email, id FROM contacts INDEXED BY contacts_email_merged "
                        f"WHERE email IN ({','.join('?' * len(rest))}) "
                        "AND merged_into IS NOT NULL ORDER BY id",
                        tuple(rest),
                    ).fetchall()
            elif field == "phone":
                rows = conn.execute(
                    f"SELECT phone, id FROM contacts WHERE phone IN ({marks}) "
                    "ORDER BY merged_into IS NOT NULL, id",
                    tuple(chunk),
                ).fetchall()
            else:
                raise ConfigError(f"cannot look contacts up by {field!r}")
            for v, cid in rows:
                out.setdefault(v, cid)
        if out:
            resolved = self._resolve(conn, list(out.values()))
            out = {k: resolved[v] for k, v in out.items()}
        return out

    def lookup_contacts(
        self, field: str, values: Sequence[str], *, source: str | None = None
    ) -> dict[str, int]:
        return self._lookup(self.conn, field, values, source)

    def _resolve(self, conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, int]:
        out = {i: i for i in ids}
        pending = list(dict.fromkeys(ids))
        for _ in range(64):  # merge chains are short; bound the walk
            if not pending:
                break
            nxt: list[int] = []
            step: dict[int, int] = {}
            for chunk in in_lists(pending):
                marks = ",".join("?" * len(chunk))
                for cid, target in conn.execute(
                    f"SELECT id, merged_into FROM contacts WHERE id IN ({marks}) AND merged_into IS NOT NULL",
                    tuple(chunk),
                ):
                    step[cid] = target
                    nxt.append(target)
            if not step:
                break
            for k, v in out.items():
                if v in step:
                    out[k] = step[v]
            pending = nxt
        return out

    def resolve_ids(self, ids: Sequence[int]) -> dict[int, int]:
        return self._resolve(self.conn, ids)

    _SELECT = (
        "SELECT id, email, first_name, last_name, phone, company, job_title, street, city, "
        "region, postcode, country, birth_date, lifecycle_stage, tags, attrs, source, "
        "created_at, updated_at, merged_into FROM contacts"
    )

    def _contacts(self, rows: list[tuple[Any, ...]]) -> list[Contact]:
        if not rows:
            return []
        idents: dict[int, dict[str, str]] = {}
        for chunk in in_lists([r[0] for r in rows]):
            marks = ",".join("?" * len(chunk))
            for src, ext, cid in self.conn.execute(
                f"SELECT source, external_id, contact_id FROM identities WHERE contact_id IN ({marks})",
                tuple(chunk),
            ):
                idents.setdefault(cid, {})[src] = ext
        out = []
        for r in rows:
            out.append(
                Contact(
                    id=r[0],
                    email=r[1],
                    first_name=r[2],
                    last_name=r[3],
                    phone=r[4],
                    company=r[5],
                    job_title=r[6],
                    street=r[7],
                    city=r[8],
                    region=r[9],
                    postcode=r[10],
                    country=r[11],
                    birth_date=r[12],
                    lifecycle_stage=r[13],
                    tags=tuple(_json_decode(r[14])) if r[14] else (),
                    attributes=_json_decode(r[15]) if r[15] else {},
                    external_ids=idents.get(r[0], {}),
                    source=r[16],
                    created_at=from_epoch(r[17]),
                    updated_at=from_epoch(r[18]),
                    merged_into=r[19],
                )
            )
        return out

    def get_contacts(self, ids: Sequence[int]) -> list[Contact]:
        found: dict[int, tuple[Any, ...]] = {}
        for chunk in in_lists(list(ids)):
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(f"{self._SELECT} WHERE id IN ({marks})", tuple(chunk)):
                found[row[0]] = row
        return self._contacts([found[i] for i in ids if i in found])

    def find_contacts(self, query: ContactQuery) -> list[Contact]:
        where: list[str] = []
        args: list[Any] = []
        if not query.include_merged:
            where.append("merged_into IS NULL")
        if query.email:
            where.append("email = ?")
            args.append(query.email.strip().lower())
        if query.phone:
            where.append("phone = ?")
            args.append(query.phone)
        if query.lifecycle_stage:
            where.append("lifecycle_stage = ?")
            args.append(query.lifecycle_stage)
        if query.text:
            like = f"%{query.text.strip().lower()}%"
            where.append(
                "(lower(COALESCE(first_name,'') || ' ' || COALESCE(last_name,'')) LIKE ? "
                "OR email LIKE ? OR lower(company) LIKE ? OR lower(city) LIKE ?)"
            )
            args.extend([like] * 4)
        sql = self._SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id LIMIT ? OFFSET ?"
        args.extend([query.limit, query.offset])
        return self._contacts(self.conn.execute(sql, args).fetchall())

    def count_contacts(self, *, include_merged: bool = False) -> int:
        sql = "SELECT COUNT(*) FROM contacts"
        if not include_merged:
            sql += " WHERE merged_into IS NULL"
        return int(self.conn.execute(sql).fetchone()[0])

    def _stamp(self, conn: sqlite3.Connection) -> int:
        """A new change-log stamp for the contact rows this write touches.

        While a bulk load's key map is live the counter is kept in memory and
        its new value queued behind the load's writes (every stamp comes from
        here, so the two agree)."""
        if self._rev is not None:
            self._rev += 1
            self._exec(conn, "UPDATE meta SET value = ? WHERE key = 'rev'", [self._rev], 1)
            return self._rev
        (rev,) = conn.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'rev' RETURNING value"
        ).fetchone()
        return int(rev)

    def change_position(self) -> ChangePosition:
        with self._lock:
            own = not self._depth
            if own:
                self.conn.execute("BEGIN")
            try:
                meta = dict(
                    self.conn.execute(
                        "SELECT key, value FROM meta WHERE key IN ('rev', 'generation')"
                    ).fetchall()
                )
                (last,) = self.conn.execute(
                    "SELECT COALESCE(MAX(id), 0) FROM interactions"
                ).fetchone()
            finally:
                if own:
                    self.conn.execute("COMMIT")
        return ChangePosition(
            generation=int(meta.get("generation", 0)), rev=int(meta.get("rev", 0)), interaction=last
        )

    def changes_since(self, position: ChangePosition) -> Changes | None:
        now = self.change_position()
        if now.generation != position.generation:
            return None
        ids = [
            r[0]
            for r in self.conn.execute(
                "SELECT id FROM contacts WHERE rev > ? AND merged_into IS NULL ORDER BY id",
                (position.rev,),
            )
        ]
        inter = self._interaction_columns(
            "i.id > ? AND i.id <= ?", [position.interaction, now.interaction]
        )
        return Changes(position=now, contact_ids=ids, interactions=inter)

    def cache_path(self, name: str) -> Path | None:
        if str(self.path) == ":memory:":
            return None
        return self.path.with_name(f"{self.path.name}-{name}")

    def contact_columns(
        self, fields: Sequence[str], *, ids: Sequence[int] | None = None
    ) -> tuple[list[int], dict[str, list[Any]]]:
        with collector_paused():
            return self._contact_columns(fields, ids)

    def _contact_columns(
        self, fields: Sequence[str], ids: Sequence[int] | None
    ) -> tuple[list[int], dict[str, list[Any]]]:
        plain = [
            f for f in fields if f in _PLAIN or f in ("tags", "id", "created_at", "updated_at")
        ]
        custom = [f for f in fields if f not in plain]
        for f in custom:
            if not f.replace("_", "").isalnum():
                raise ConfigError(f"not an attribute name: {f!r}")
        exprs = [*plain, *(["attrs"] if custom else [])]
        sql = f"SELECT id{', ' if exprs else ''}{', '.join(exprs)} FROM contacts WHERE merged_into IS NULL"
        rows: list[tuple[Any, ...]]
        if ids is None:
            rows = self.conn.execute(sql + " ORDER BY id").fetchall()
        else:
            rows = []
            for chunk in in_lists(list(ids)):
                marks = ",".join("?" * len(chunk))
                rows.extend(self.conn.execute(sql + f" AND id IN ({marks})", tuple(chunk)))
            rows.sort()
        cols = list(zip(*rows, strict=True)) if rows else [() for _ in range(len(exprs) + 1)]
        out = {f: list(cols[i + 1]) for i, f in enumerate(plain)}
        if "tags" in out:
            out["tags"] = [t or [] for t in _decode_json_column(out["tags"])]
        if custom:
            # One decode of every row's attributes, then one pass per attribute:
            # cheaper than SQLite parsing each row's JSON once per attribute.
            objs = _decode_json_column(cols[-1])
            types = self.attribute_types()
            for f in custom:
                col = [o.get(f) if o else None for o in objs]
                out[f] = [v or [] for v in col] if types.get(f) == "list" else col
        return list(cols[0]), {f: out[f] for f in fields}

    def set_attributes(self, ids: Sequence[int], columns: Mapping[str, Sequence[Any]]) -> int:
        plain = [f for f in columns if f in _PLAIN]
        custom = [c for c in columns if c not in CONTACT_FIELDS]
        now = int(time.time())
        rows = []
        for i, cid in enumerate(ids):
            vals = [columns[f][i] for f in plain]
            patch = {c: columns[c][i] for c in custom}
            rows.append((*vals, _json_encode(patch) if custom else None, now, cid))
        sets = "".join(f"{f} = ?, " for f in plain)
        n = len(plain) + 1
        self._keys_done()
        sql = (
            f"UPDATE contacts SET {sets}attrs = CASE WHEN ?{n} IS NULL THEN attrs "
            f"ELSE json_patch(COALESCE(attrs, '{{}}'), ?{n}) END, updated_at = ?{n + 1}, "
            f"rev = ?{n + 3} WHERE id = ?{n + 2}"
        )
        with self._write() as conn:
            rev = self._stamp(conn)
            conn.executemany(sql, ((*r, rev) for r in rows))
        return len(rows)

    def declare_attributes(self, types: Mapping[str, AttributeType], *, source: str) -> None:
        now = int(time.time())
        current = self.attribute_types()
        for name, typ in types.items():
            if typ not in ATTRIBUTE_TYPES:
                raise ConfigError(f"attribute {name!r}: unknown type {typ!r}")
            if name in CONTACT_FIELDS:
                raise ConfigError(f"attribute {name!r} is a built-in contact field")
            if name in current and current[name] != typ:
                raise ConfigError(f"attribute {name!r} is declared as {current[name]}, not {typ}")
        with self._write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO attributes(name, type, source, declared_at) VALUES (?, ?, ?, ?)",
                [(n, t, source, now) for n, t in types.items()],
            )

    def attribute_types(self) -> dict[str, AttributeType]:
        return dict(self.conn.execute("SELECT name, type FROM attributes ORDER BY name").fetchall())

    # -- companies -------------------------------------------------------------

    def upsert_companies(
        self, columns: Mapping[str, Sequence[Any]], *, source: str
    ) -> UpsertResult:
        names = columns.get("name")
        if names is None:
            raise ConfigError("companies need a 'name' column")
        n = len(names)
        domains = columns.get("domain") or [None] * n
        fields = [f for f in ("industry", "size", "country") if f in columns]
        custom = [
            c
            for c in columns
            if c not in ("name", "domain", "industry", "size", "country", "external_id")
        ]
        now = int(time.time())
        created: list[int] = []
        updated: list[int] = []
        ids: list[int | None] = []
        with self._write() as conn:
            for i in range(n):
                name, dom = names[i], domains[i]
                if not name:
                    ids.append(None)
                    continue
                if dom:
                    row = conn.execute(
                        "SELECT id FROM companies WHERE domain = ?", (dom,)
                    ).fetchone()
                else:
                    row = conn.execute(
                        "SELECT id FROM companies WHERE domain IS NULL AND name = ?", (name,)
                    ).fetchone()
                vals = [columns[f][i] for f in fields]
                attrs = {c: columns[c][i] for c in custom if columns[c][i] is not None}
                if row is None:
                    cur = conn.execute(
                        f"INSERT INTO companies(name, domain, {''.join(f + ', ' for f in fields)}attrs, source, created_at, updated_at) "
                        f"VALUES (?, ?, {'?, ' * len(fields)}?, ?, ?, ?)",
                        (
                            name,
                            dom,
                            *vals,
                            _json_encode(attrs) if attrs else None,
                            source,
                            now,
                            now,
                        ),
                    )
                    cid = int(cur.lastrowid or 0)
                    created.append(cid)
                else:
                    cid = int(row[0])
                    conn.execute(
                        f"UPDATE companies SET name = ?, {''.join(f + ' = COALESCE(?, ' + f + '), ' for f in fields)}updated_at = ? WHERE id = ?",
                        (name, *vals, now, cid),
                    )
                    updated.append(cid)
                ids.append(cid)
        return UpsertResult(created=created, updated=updated, ids=ids)

    def count_companies(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM companies").fetchone()[0])

    # -- interactions ------------------------------------------------------------

    def add_interactions(
        self,
        columns: Mapping[str, Sequence[Any]],
        *,
        source: str,
        file: str | None = None,
        lines: Sequence[int] | None = None,
    ) -> int:
        for req in ("contact_id", "kind", "occurred_at"):
            if req not in columns:
                raise ConfigError(f"interactions need a {req!r} column")
        n = len(columns["contact_id"])
        none = [None] * n
        channel = columns.get("channel", none)
        amount = columns.get("amount", none)
        subject = columns.get("subject", none)
        props = columns.get("properties", none)
        keys = columns.get("key", none)
        line_col = lines if lines is not None else none
        occurred = [v if v.__class__ is int else to_epoch(v) for v in columns["occurred_at"]]
        props_col = [_json_encode(p) if p else None for p in props]
        with self._write() as conn:
            before = conn.total_changes
            execute_columns(
                conn,
                "INSERT OR IGNORE INTO interactions(contact_id, kind, channel, occurred_at, amount, "
                "subject, props, key, source, source_file, source_line) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    columns["contact_id"],
                    columns["kind"],
                    channel,
                    occurred,
                    amount,
                    subject,
                    props_col,
                    keys,
                    source,
                    file,
                    line_col,
                ],
                n,
            )
            return conn.total_changes - before

    def timeline(self, contact_id: int, *, limit: int = 50) -> list[Interaction]:
        rows = self.conn.execute(
            "SELECT id, contact_id, kind, channel, occurred_at, amount, subject, props, key, source "
            "FROM interactions WHERE contact_id = ? ORDER BY occurred_at DESC, id DESC LIMIT ?",
            (contact_id, limit),
        ).fetchall()
        return [
            Interaction(
                id=r[0],
                contact_id=r[1],
                kind=r[2],
                channel=r[3],
                occurred_at=from_epoch(r[4]) or datetime.fromtimestamp(0, UTC),
                amount=r[5],
                subject=r[6],
                properties=_json_decode(r[7]) if r[7] else {},
                key=r[8],
                source=r[9],
            )
            for r in rows
        ]

    def count_interactions(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM interactions").fetchone()[0])

    def interaction_columns(
        self, *, kinds: Sequence[str] | None = None, upto: ChangePosition | None = None
    ) -> dict[str, list[Any]]:
        where, args = ["1"], list[Any]()
        if kinds:
            where.append(f"i.kind IN ({','.join('?' * len(kinds))})")
            args.extend(kinds)
        if upto is not None:
            where.append("i.id <= ?")
            args.append(upto.interaction)
        return self._interaction_columns(" AND ".join(where), args)

    def _interaction_columns(self, where: str, args: Sequence[Any]) -> dict[str, list[Any]]:
        sql = (
            "SELECT i.contact_id, i.kind, i.occurred_at, i.amount FROM interactions i "
            f"JOIN contacts c ON c.id = i.contact_id WHERE c.merged_into IS NULL AND {where}"
        )
        with collector_paused():
            rows = self.conn.execute(
                sql + " ORDER BY i.contact_id, i.occurred_at, i.id", args
            ).fetchall()
            cols = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
        return {
            "contact_id": list(cols[0]),
            "kind": list(cols[1]),
            "occurred_at": list(cols[2]),
            "amount": list(cols[3]),
        }

    def first_interactions(
        self, *, kind: str, key_prefix: str, until: int
    ) -> list[tuple[int, int]]:
        return [
            (r[0], r[1])
            for r in self.conn.execute(
                "SELECT contact_id, MIN(occurred_at) FROM interactions WHERE kind = ? "
                "AND key >= ? AND key < ? AND occurred_at <= ? GROUP BY contact_id "
                "ORDER BY contact_id",
                (kind, key_prefix, key_prefix + "\uffff", until),
            )
        ]

    def contacts_with_interactions(
        self, since: Mapping[int, int], *, kinds: Sequence[str]
    ) -> set[int]:
        out: set[int] = set()
        if not kinds:
            return out
        marks = ",".join("?" * len(kinds))
        for cid, at in since.items():
            hit = self.conn.execute(
                f"SELECT 1 FROM interactions WHERE contact_id = ? AND occurred_at >= ? "
                f"AND kind IN ({marks}) LIMIT 1",
                (cid, at, *kinds),
            ).fetchone()
            if hit:
                out.add(cid)
        return out

    # -- consent ---------------------------------------------------------------

    def record_consents(self, entries: Sequence[Consent]) -> None:
        now = int(time.time())
        rows = [
            (
                e.contact_id,
                e.channel,
                e.purpose,
                e.status,
                e.source,
                e.evidence,
                to_epoch(e.recorded_at) if e.recorded_at else now,
            )
            for e in entries
        ]
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO consents(contact_id, channel, purpose, status, source, evidence, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def consent_status(
        self, contact_ids: Sequence[int], *, channel: str, purpose: str
    ) -> dict[int, ConsentStatus]:
        out: dict[int, ConsentStatus] = {}
        for chunk in in_lists(list(contact_ids)):
            marks = ",".join("?" * len(chunk))
            for cid, status in self.conn.execute(
                f"SELECT contact_id, status FROM consents WHERE id IN ("
                f"SELECT MAX(id) FROM consents WHERE channel = ? AND purpose = ? "
                f"AND contact_id IN ({marks}) GROUP BY contact_id)",
                (channel, purpose, *chunk),
            ):
                out[cid] = status
        return out

    def consent_history(self, contact_id: int) -> list[Consent]:
        rows = self.conn.execute(
            "SELECT channel, purpose, status, source, evidence, recorded_at FROM consents "
            "WHERE contact_id = ? ORDER BY id",
            (contact_id,),
        ).fetchall()
        return [
            Consent(
                contact_id=contact_id,
                channel=r[0],
                purpose=r[1],
                status=r[2],
                source=r[3],
                evidence=r[4],
                recorded_at=from_epoch(r[5]),
            )
            for r in rows
        ]

    def consent_purposes(self, channel: str) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT purpose FROM consents WHERE channel = ? ORDER BY purpose",
                (channel,),
            )
        ]

    # -- segments ----------------------------------------------------------------

    def save_segments(self, segments: Sequence[Segment]) -> None:
        now = int(time.time())
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO segments(name, rule, kind, description, owner, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET rule = excluded.rule, "
                "kind = excluded.kind, description = excluded.description, owner = excluded.owner, "
                "updated_at = excluded.updated_at",
                [(g.name, g.rule, g.kind, g.description, g.owner, now, now) for g in segments],
            )

    def list_segments(self) -> list[Segment]:
        rows = self.conn.execute(
            "SELECT name, rule, kind, description, owner FROM segments ORDER BY name"
        ).fetchall()
        return [
            Segment(name=r[0], rule=r[1], kind=r[2], description=r[3], owner=r[4]) for r in rows
        ]

    def memberships_version(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'memberships'").fetchone()
        return int(row[0]) if row else 0

    def _memberships_changed(self, conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'memberships'")

    def delete_segment(self, name: str) -> bool:
        with self._write() as conn:
            self._memberships_changed(conn)
            cur = conn.execute("DELETE FROM segments WHERE name = ?", (name,))
            conn.execute(
                "UPDATE memberships SET exited_at = ? WHERE segment = ? AND exited_at IS NULL",
                (int(time.time()), name),
            )
            return cur.rowcount > 0

    def segment_members(self, name: str) -> list[int]:
        return [
            r[0]
            for r in self.conn.execute(
                # DISTINCT: a merge relinks the merged contact's rows to the
                # survivor, which may then hold two open rows of one segment.
                "SELECT DISTINCT contact_id FROM memberships WHERE segment = ? "
                "AND exited_at IS NULL ORDER BY contact_id",
                (name,),
            )
        ]

    MEMBERSHIP_INDEX_REBUILD = 500_000
    """A segment run recording more entries than this rebuilds the memberships'
    by-contact index at its end instead of updating it entry by entry."""

    def record_segment_run(
        self, as_of: int, changes: Mapping[str, tuple[Sequence[int], Sequence[int]]]
    ) -> int:
        now = int(time.time())
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO segment_runs(started_at, as_of) VALUES (?, ?)", (now, as_of)
            )
            run = int(cur.lastrowid or 0)
            self._memberships_changed(conn)
            # Many entries (a first run): rebuilding the by-contact index once
            # at the end is cheaper than keeping it in order row by row.
            rebuild = sum(len(e) for e, _ in changes.values()) > self.MEMBERSHIP_INDEX_REBUILD
            if rebuild:
                conn.execute("DROP INDEX IF EXISTS memberships_contact")
            for seg, (entered, exited) in changes.items():
                if entered:
                    execute_columns(
                        conn,
                        "INSERT INTO memberships(segment, contact_id, entered_at, entered_run) "
                        "VALUES (?, ?, ?, ?)",
                        [seg, entered, as_of, run],
                        len(entered),
                    )
                if exited:
                    execute_columns(
                        conn,
                        "UPDATE memberships SET exited_at = ?, exited_run = ? "
                        "WHERE segment = ? AND contact_id = ? AND exited_at IS NULL",
                        [as_of, run, seg, exited],
                        len(exited),
                    )
            if rebuild:
                conn.execute("CREATE INDEX memberships_contact ON memberships(contact_id)")
            summary = {s: [len(e), len(x)] for s, (e, x) in changes.items()}
            conn.execute(
                "UPDATE segment_runs SET finished_at = ?, summary = ? WHERE id = ?",
                (int(time.time()), _json_encode(summary).decode(), run),
            )
        return run

    def segment_history(
        self, name: str, *, since: int | None = None, limit: int = 1000
    ) -> list[tuple[int, int, int | None]]:
        sql = "SELECT contact_id, entered_at, exited_at FROM memberships WHERE segment = ?"
        args: list[Any] = [name]
        if since is not None:
            sql += " AND (entered_at >= ? OR exited_at >= ?)"
            args += [since, since]
        sql += " ORDER BY COALESCE(exited_at, entered_at) DESC, contact_id, id DESC LIMIT ?"
        args.append(limit)
        return [(r[0], r[1], r[2]) for r in self.conn.execute(sql, args)]

    def segment_entries(self, name: str, *, since: int = 0) -> list[tuple[int, int]]:
        return [
            (r[0], r[1])
            for r in self.conn.execute(
                "SELECT contact_id, MIN(entered_at) FROM memberships WHERE segment = ? "
                "AND exited_at IS NULL AND entered_at >= ? GROUP BY contact_id ORDER BY contact_id",
                (name, since),
            )
        ]

    # -- outbox (SQL in crmkit.store.outbox) ---------------------------------------

    def enqueue_deliveries(
        self, rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]
    ) -> int:
        from crmkit.store import outbox

        if isinstance(rows, Mapping):
            n = len(rows["key"])
            for name, col in rows.items():
                if len(col) != n:
                    raise ConfigError(f"column {name!r} has {len(col)} values, expected {n}")
            none: Sequence[Any] = [None] * n
            payload = rows.get("payload", none)
            if not all(p.__class__ is str for p in payload):
                payload = [p if p.__class__ is str else _json_encode(p).decode() for p in payload]
            return outbox.enqueue(
                self,
                zip(
                    rows["key"],
                    rows.get("campaign", none),
                    rows.get("step", [0] * n),
                    rows["contact_id"],
                    rows["channel"],
                    payload,
                    rows.get("next_attempt_at", none),
                    strict=True,
                ),
            )
        tuples = [
            (
                r["key"],
                r.get("campaign"),
                r.get("step", 0),
                r["contact_id"],
                r["channel"],
                p if (p := r.get("payload")).__class__ is str else _json_encode(p).decode(),
                r.get("next_attempt_at"),
            )
            for r in rows
        ]
        with self._write():
            return outbox.enqueue(self, tuples)

    def queued_deliveries(
        self, *, campaign: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        sql = "SELECT id, key, campaign, contact_id, channel, payload, attempts FROM deliveries WHERE status = 'queued'"
        args: list[Any] = []
        if campaign is not None:
            sql += " AND campaign = ?"
            args.append(campaign)
        rows = self.conn.execute(sql + " ORDER BY id LIMIT ?", (*args, limit)).fetchall()
        return [
            {
                "id": r[0],
                "key": r[1],
                "campaign": r[2],
                "contact_id": r[3],
                "channel": r[4],
                "payload": _json_decode(r[5]) if r[5] else None,
                "attempts": r[6],
            }
            for r in rows
        ]

    def update_deliveries(self, updates: Sequence[Mapping[str, Any]]) -> None:
        now = int(time.time())
        with self._write() as conn:
            conn.executemany(
                "UPDATE deliveries SET status = ?, provider_id = COALESCE(?, provider_id), error = ?, "
                "attempts = attempts + ?, updated_at = ? WHERE key = ?",
                [
                    (
                        u["status"],
                        u.get("provider_id"),
                        u.get("error"),
                        u.get("attempt", 1),
                        now,
                        u["key"],
                    )
                    for u in updates
                ],
            )

    def delivery_counts(
        self, *, campaign: str | None = None, scheduled: bool = False
    ) -> dict[str, int]:
        if scheduled:
            from crmkit.store import outbox

            return outbox.counts(self, campaign=campaign)
        sql = "SELECT status, COUNT(*) FROM deliveries"
        args: tuple[Any, ...] = ()
        if campaign is not None:
            sql += " WHERE campaign = ?"
            args = (campaign,)
        return dict(self.conn.execute(sql + " GROUP BY status", args).fetchall())

    def existing_delivery_keys(self, keys: Sequence[str]) -> set[str]:
        from crmkit.store import outbox

        return outbox.existing_keys(self, keys)

    def has_deliveries(self, *, campaign: str, step: int) -> bool:
        from crmkit.store import outbox

        return outbox.has_rows(self, campaign=campaign, step=step)

    def claim_deliveries(
        self,
        *,
        owner: str,
        lease: int,
        limit: int,
        campaign: str | None = None,
        channel: str | None = None,
        now: int | None = None,
    ) -> list[OutboxRow]:
        from crmkit.store import outbox

        return outbox.claim(
            self, owner=owner, limit=limit, lease=lease, campaign=campaign, channel=channel, now=now
        )

    def finish_deliveries(self, outcomes: Mapping[str, Sequence[Any]]) -> None:
        from crmkit.store import outbox

        keys = outcomes["key"]
        none: Sequence[Any] = [None] * len(keys)
        outbox.finish(
            self,
            zip(
                outcomes["status"],
                outcomes.get("provider_id", none),
                outcomes.get("error", none),
                outcomes.get("next_attempt_at", none),
                keys,
                strict=True,
            ),
        )

    def set_delivery_status(
        self,
        keys: Sequence[str],
        status: str,
        *,
        error: str | None = None,
        only_from: Sequence[str] | None = None,
    ) -> int:
        from crmkit.store import outbox

        return outbox.set_status(self, keys, status, error=error, only_from=only_from)

    def recover_stale_deliveries(self, *, now: int | None = None) -> int:
        from crmkit.store import outbox

        return outbox.recover_stale(self, now=now)

    def delivery_rows(
        self,
        *,
        statuses: Sequence[str] | None = None,
        campaign: str | None = None,
        keys: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[OutboxRow]:
        from crmkit.store import outbox

        return outbox.rows(self, statuses=statuses, campaign=campaign, keys=keys, limit=limit)

    def deliveries_by_provider_id(self, provider_ids: Sequence[str]) -> dict[str, OutboxRow]:
        from crmkit.store import outbox

        return outbox.by_provider_ids(self, provider_ids)

    def due_delivery_campaigns(self, *, now: int | None = None) -> list[tuple[str | None, str]]:
        from crmkit.store import outbox

        return outbox.due_campaigns(self, now=now)

    # -- suppressions (SQL in crmkit.store.outbox) ------------------------------------

    def add_suppressions(self, hashes: Sequence[str], *, scope: str, reason: str) -> int:
        from crmkit.store import outbox

        return outbox.add_suppressions(self, hashes, scope=scope, reason=reason)

    def has_suppressions(self, *, scopes: Sequence[str]) -> bool:
        from crmkit.store import outbox

        return outbox.has_suppressions(self, scopes=scopes)

    def suppressed_hashes(self, hashes: Sequence[str], *, scopes: Sequence[str]) -> set[str]:
        from crmkit.store import outbox

        return outbox.suppressed(self, hashes, scopes=scopes)

    # -- merges (SQL in crmkit.store.merges) ------------------------------------------

    def contact_rows(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        from crmkit.store import merges

        return merges.contact_rows(self, ids)

    def apply_merges(
        self,
        specs: Sequence[MergeSpec],
        *,
        actor: str = "crmkit",
        on_merge: Callable[[int], None] | None = None,
    ) -> list[MergeEvent]:
        from crmkit.store import merges

        self._keys_done()
        return merges.apply_merges(self, specs, actor=actor, on_merge=on_merge)

    def undo_merge(
        self, merge_id: int, *, actor: str = "crmkit", force: bool = False
    ) -> MergeEvent:
        from crmkit.store import merges

        self._keys_done()
        return merges.undo_merge(self, merge_id, actor=actor, force=force)

    def list_merges(self, *, limit: int = 50, include_undone: bool = True) -> list[MergeEvent]:
        from crmkit.store import merges

        return merges.list_merges(self, limit=limit, include_undone=include_undone)

    def get_merge(self, merge_id: int) -> MergeEvent:
        from crmkit.store import merges

        return merges.get_merge(self, merge_id)

    def undone_merges(self) -> list[tuple[int, ...]]:
        from crmkit.store import merges

        return merges.undone_merges(self)

    def label_pairs(self, pairs: Sequence[tuple[int, int, bool]], *, actor: str) -> int:
        rows = {(min(a, b), max(a, b)): bool(same) for a, b, same in pairs}
        if any(a == b for a, b in rows):
            raise ConfigError("a reviewed pair needs two different contacts")
        ids = sorted({i for pair in rows for i in pair})
        known = found_in(self.conn, "contacts", "id", ids)
        missing = [i for i in ids if i not in known]
        if missing:
            raise NotFoundError(f"no contact with id {missing[0]}")
        now = int(time.time())
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO match_labels(left_id, right_id, same, actor, at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(a, b, int(same), actor, now) for (a, b), same in rows.items()],
            )
            conn.execute(
                AUDIT_INSERT,
                audit_values("dedupe.label", actor, ids, {"pairs": len(rows)}),
            )
        return len(rows)

    def labelled_pairs(self) -> list[tuple[int, int, bool]]:
        return [
            (a, b, bool(same))
            for a, b, same in self.conn.execute(
                "SELECT left_id, right_id, same FROM match_labels ORDER BY left_id, right_id"
            )
        ]

    def merge_before(self, merge_id: int) -> dict[str, Any]:
        from crmkit.store import merges

        return merges.merge_before(self, merge_id)

    def undo_check(self, merge_id: int) -> dict[str, Any]:
        from crmkit.store import merges

        return dict(merges.undo_check(self, merge_id))

    # -- erasure -------------------------------------------------------------------------

    def merged_family(self, ids: Sequence[int]) -> list[int]:
        family = set(ids)
        frontier = list(family)
        while frontier:
            found: list[int] = []
            for chunk in in_lists(frontier):
                found.extend(
                    r[0]
                    for r in self.conn.execute(
                        f"SELECT id FROM contacts WHERE merged_into IN ({','.join('?' * len(chunk))})",
                        chunk,
                    )
                    if r[0] not in family
                )
            family.update(found)
            frontier = found
        return sorted(family)

    def erase_contacts(self, ids: Sequence[int]) -> ErasureCounts:
        self._keys_done()
        out = ErasureCounts()
        now = int(time.time())
        with self._write() as conn:

            def delete(table: str, column: str, chunk: list[int]) -> int:
                marks = ",".join("?" * len(chunk))
                return conn.execute(
                    f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk
                ).rowcount

            for chunk in in_lists(list(dict.fromkeys(ids))):
                out.interactions += delete("interactions", "contact_id", chunk)
                out.consents += delete("consents", "contact_id", chunk)
                out.memberships += delete("memberships", "contact_id", chunk)
                out.merges += delete("merges", "survivor_id", chunk)
                delete("identities", "contact_id", chunk)
                delete("match_labels", "left_id", chunk)
                delete("match_labels", "right_id", chunk)
                out.deliveries_scrubbed += conn.execute(
                    "UPDATE deliveries SET payload = NULL, error = CASE WHEN status IN "
                    "('queued', 'unknown') THEN 'contact erased' ELSE error END, "
                    "status = CASE WHEN status IN ('queued', 'unknown') THEN 'failed' ELSE status END, "
                    f"updated_at = ? WHERE contact_id IN ({','.join('?' * len(chunk))})",
                    (now, *chunk),
                ).rowcount
                out.contacts += delete("contacts", "id", chunk)
        return out

    # -- state, audit ------------------------------------------------------------

    def get_state(self, name: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT state FROM source_state WHERE name = ?", (name,)).fetchone()
        return _json_decode(row[0]) if row else None

    def set_state(self, name: str, state: Mapping[str, Any] | None) -> None:
        try:
            with self.transaction():
                if state is None:
                    self.conn.execute("DELETE FROM source_state WHERE name = ?", (name,))
                else:
                    # Queued behind a bulk load's upserts, like them.
                    self._exec(
                        self._conn,
                        "INSERT OR REPLACE INTO source_state(name, state, updated_at) "
                        "VALUES (?, ?, ?)",
                        [name, _json_encode(dict(state)).decode(), int(time.time())],
                        1,
                    )
        except sqlite3.DatabaseError as exc:
            raise StoreError(_explain(exc, self.path)) from None

    def state_names(self, prefix: str) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT name FROM source_state WHERE substr(name, 1, ?) = ? ORDER BY name",
                (len(prefix), prefix),
            )
        ]

    def audit(
        self,
        action: str,
        *,
        actor: str,
        ids: Sequence[int] = (),
        details: Mapping[str, Any] | None = None,
    ) -> None:
        with self._write() as conn:
            conn.execute(AUDIT_INSERT, audit_values(action, actor, ids, details))

    def audit_log(self, *, limit: int = 100) -> list[AuditEntry]:
        rows = self.conn.execute(
            "SELECT id, at, actor, action, ids, details FROM audit ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            AuditEntry(
                id=r[0],
                at=from_epoch(r[1]) or datetime.fromtimestamp(0, UTC),
                actor=r[2],
                action=r[3],
                ids=tuple(_json_decode(r[4])) if r[4] else (),
                details=_json_decode(r[5]) if r[5] else {},
            )
            for r in rows
        ]

    def iter_table(self, table: str) -> Iterator[tuple[Any, ...]]:
        known = {
            r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if table not in known:
            raise ConfigError(f"no table {table!r}")
        order = "rowid" if table not in ("identities", "suppressions") else "1, 2"
        yield from self.conn.execute(f"SELECT * FROM {table} ORDER BY {order}")


def _explain(exc: sqlite3.DatabaseError, path: Path) -> str:
    msg = str(exc)
    if "locked" in msg or "busy" in msg:
        return f"store {path} is locked by another process; try again when it finishes"
    if "readonly" in msg or "read-only" in msg:
        return f"store {path} is read-only; check the file's permissions"
    if "unable to open" in msg:
        return f"store {path} cannot be opened; check that the folder exists and is writable"
    if "not a database" in msg or "malformed" in msg:
        return f"store {path} is not a crmkit SQLite store (or it is damaged)"
    return f"store {path}: {msg}"
