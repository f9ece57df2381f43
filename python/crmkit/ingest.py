"""Ingest: source batches → typed, normalized columns → the store.

For each batch the host converts custom attributes to their declared (or
inferred) types, normalizes emails, phones, names, countries and postcodes in
Rust over whole columns, and writes the batch together with the source's
checkpoint in one transaction. An interrupted import re-run therefore resumes
after the last committed batch and ends with the same store a clean run gives.

Nothing is dropped silently: every row not imported, and every value not kept,
is written to the reject file with its file, line, field and reason.
"""

from __future__ import annotations

import csv
import hashlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from crmkit.bulk import collector_paused
from crmkit.errors import ConfigError, CrmkitError
from crmkit.mapping import clean_text_column, convert_column, infer_type
from crmkit.records import (
    CONTACT_FIELDS,
    INTERACTION_FIELDS,
    AttributeType,
    Batch,
    Checkpoint,
    Reject,
)
from crmkit.store.sqlite import to_epoch

if TYPE_CHECKING:
    from crmkit.kernel import Kernel
    from crmkit.kinds import Source

_NORMALIZED = ("email", "phone", "first_name", "last_name", "country", "postcode")
_TEXT_FIELDS = tuple(f for f in CONTACT_FIELDS if f != "tags")

_Prepared = tuple[dict[str, list[Any]], list[tuple[int, str, str]]]
"""A batch of contacts prepared for the store: its columns cleaned and
normalized, and the issues normalizing found (row, field, reason)."""


class IngestReport(msgspec.Struct, kw_only=True):
    """What one import did (counts only: no personal data)."""

    source: str
    kind: str | None = None
    file: str | None = None
    rows: int = 0
    created: int = 0
    updated: int = 0
    interactions_added: int = 0
    companies: int = 0
    consents_given: int = 0
    consents_withdrawn: int = 0
    rejected_rows: int = 0
    dropped_values: int = 0
    resumed: bool = False
    dry_run: bool = False
    attribute_types: dict[str, str] = msgspec.field(default_factory=dict)
    inferred: list[str] = msgspec.field(default_factory=list)
    rejects_path: str | None = None


class ConsentColumn(msgspec.Struct, frozen=True, kw_only=True):
    """A column of an import that carries consent (an opt-in or an opt-out flag)."""

    column: str
    """The column's field name after mapping (``Newsletter`` → ``newsletter``)."""
    channel: str = "email"
    purpose: str = "marketing"
    opt_out: bool = False
    """True for "do not contact" columns, where a yes withdraws consent."""


class _Rollback(Exception):
    """Raised to roll a dry run back."""


class RejectWriter:
    """Appends rejects to a CSV file, created on the first reject."""

    HEADER = ("file", "line", "field", "reason", "action")

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh: Any = None
        self._writer: Any = None
        self.rows = 0
        self.values = 0

    def add(self, reject: Reject, action: str) -> None:
        if action == "row skipped":
            self.rows += 1
        else:
            self.values += 1
        if self.path is None:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._fh)
            self._writer.writerow(self.HEADER)
        self._writer.writerow(
            (reject.file or "", reject.line, reject.field or "", reject.reason, action)
        )

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


class Ingester:
    """Runs one source into the kernel's store. Use :meth:`Kernel.ingest`."""

    def __init__(
        self,
        kernel: Kernel,
        source: Source,
        *,
        name: str,
        key: str = "email",
        attributes: Mapping[str, AttributeType] | None = None,
        rejects: Path | None = None,
        dry_run: bool = False,
        full: bool = False,
        list_separator: str = ";",
        on_batch: Callable[[int], None] | None = None,
        consent: Sequence[ConsentColumn] = (),
    ) -> None:
        if key not in ("email", "external_id"):
            raise ConfigError(f"key must be 'email' or 'external_id', not {key!r}")
        self.kernel = kernel
        self.store = kernel.store
        self.source = source
        self.name = name
        self.key = key
        self.declared = dict(attributes or {})
        self.dry_run = dry_run
        self.full = full
        self.list_separator = list_separator
        self.on_batch = on_batch
        self.consent = list(consent)
        self.rejects = RejectWriter(rejects)
        self.report = IngestReport(
            source=name, dry_run=dry_run, rejects_path=str(rejects) if rejects else None
        )
        self.region = kernel.settings.default_region
        # The open commit group (see GROUP_ROWS) and the ids it upserted.
        self._group = ExitStack()
        self._group_rows = 0
        self._group_started: float | None = None
        self._upserted: tuple[list[int], list[int]] = ([], [])
        self._known_types: dict[str, AttributeType] | None = None
        self._erasures: bool | None = None

    # -- the loop --------------------------------------------------------------

    def run(self) -> IngestReport:
        state_key = f"source:{self.name}"
        state = None if self.full else self.store.get_state(state_key)
        self.report.resumed = bool(state)
        try:
            if self.dry_run:
                try:
                    with self.store.transaction():
                        self._loop(state, state_key)
                        raise _Rollback
                except _Rollback:
                    pass
            else:
                with self.store.bulk_load():
                    self._loop(state, state_key)
                self.store.audit(
                    "import",
                    actor=f"source:{self.name}",
                    details={
                        "rows": self.report.rows,
                        "created": self.report.created,
                        "updated": self.report.updated,
                        "interactions": self.report.interactions_added,
                        "rejected": self.report.rejected_rows,
                    },
                )
        finally:
            self.rejects.close()
        self.report.rejected_rows = self.rejects.rows
        self.report.dropped_values = self.rejects.values
        if self.rejects.rows == 0 and self.rejects.values == 0:
            self.report.rejects_path = None
        return self.report

    def _items(self, state: Mapping[str, Any] | None) -> Iterator[Batch | Checkpoint]:
        try:
            yield from self.source.read(state)
        except CrmkitError:
            raise
        except Exception as exc:
            from crmkit.errors import PluginError

            raise PluginError(self.source.name, f"source failed while reading: {exc}") from exc

    GROUP_ROWS = 250_000
    """Consecutive batches share one transaction up to about this many rows.
    Each commit writes out every index page its rows touched, so a few large
    commits write far less than many small ones; a re-run after an
    interruption redoes at most one group."""

    GROUP_SECONDS = 10.0
    """…and for at most about this long, so that a slow source never holds the
    store's write lock for long."""

    def _units(
        self, state: Mapping[str, Any] | None
    ) -> Iterator[tuple[Batch | None, Mapping[str, Any] | None]]:
        """What to commit, in order: each batch with the checkpoint that
        follows it (if one does before the next batch), or a checkpoint alone."""
        pending: Batch | None = None
        for item in self._items(state):
            got: object = item
            if not isinstance(got, Batch | Checkpoint):  # a plugin broke the contract
                from crmkit.errors import PluginError

                raise PluginError(self.source.name, f"read() yielded {type(got).__name__}")
            if isinstance(item, Checkpoint):
                yield pending, item.state
                pending = None
            elif isinstance(item, Batch):
                if pending is not None:
                    yield pending, None
                pending = item
        if pending is not None:
            yield pending, None

    def _loop(self, state: Mapping[str, Any] | None, state_key: str) -> None:
        # One batch ahead: a batch of contacts is prepared (cleaned and
        # normalized, in Rust without the GIL) on a thread while the one
        # before it is stored. The cycle collector stays paused throughout
        # (see crmkit.bulk): reading rows allocates containers by the million,
        # and pausing it only while each batch was stored left it 5% of the CPU.
        ahead: tuple[Batch | None, Mapping[str, Any] | None, Future[_Prepared] | None] | None
        ahead = None
        try:
            with (
                collector_paused(),
                ThreadPoolExecutor(1, thread_name_prefix="crmkit-prepare") as pool,
            ):
                for batch, checkpoint in self._units(state):
                    prepared = (
                        pool.submit(self._prepare_contacts, batch)
                        if batch is not None and batch.kind == "contacts"
                        else None
                    )
                    if ahead is not None:
                        self._commit(*ahead, state_key)
                    ahead = (batch, checkpoint, prepared)
                if ahead is not None:
                    self._commit(*ahead, state_key)
        except BaseException as exc:
            self._group.__exit__(type(exc), exc, exc.__traceback__)  # rolls the group back
            raise
        self._end_group()

    def _end_group(self) -> None:
        """Commit the open group, then tell listeners which contacts it upserted."""
        self._group.close()
        self._group = ExitStack()
        self._group_rows = 0
        self._group_started = None
        created, updated = self._upserted
        self._upserted = ([], [])
        if created or updated:
            self.kernel.hooks.contacts_upserted(self.kernel, created, updated, self.name)

    def _commit(
        self,
        batch: Batch | None,
        state: Mapping[str, Any] | None,
        prepared: Future[_Prepared] | None,
        state_key: str,
    ) -> None:
        created: list[int] = []
        updated: list[int] = []
        if self._group_started is None:
            self._group.enter_context(self.store.transaction())
            self._group_started = time.monotonic()
        with self.store.transaction():  # joins the group's transaction
            if batch is not None:
                self.report.kind = batch.kind
                self.report.file = batch.file
                self.report.rows += len(batch) + len(batch.rejects)
                for r in batch.rejects:
                    self.rejects.add(r, "row skipped")
                if batch.kind == "contacts":
                    created, updated = self._contacts(
                        batch,
                        self._prepare_contacts(batch) if prepared is None else prepared.result(),
                    )
                elif batch.kind == "interactions":
                    self._interactions(batch)
                elif batch.kind == "companies":
                    res = self.store.upsert_companies(batch.columns, source=self.name)
                    self.report.companies += len(res.created) + len(res.updated)
            if state is not None:
                self.store.set_state(state_key, state)
        self._upserted[0].extend(created)
        self._upserted[1].extend(updated)
        self._group_rows += len(batch) if batch is not None else 0
        if (
            self._group_rows >= self.GROUP_ROWS
            or time.monotonic() - self._group_started >= self.GROUP_SECONDS
        ):
            self._end_group()
        if self.on_batch is not None and batch is not None:
            self.on_batch(len(batch))

    # -- contacts --------------------------------------------------------------

    def _types_for(self, batch: Batch, custom: Sequence[str]) -> dict[str, AttributeType]:
        # Read once per run (a read waits for the bulk writes queued before it);
        # the types this run declares are added as it declares them.
        if self._known_types is None:
            self._known_types = self.store.attribute_types()
        known = self._known_types
        types: dict[str, AttributeType] = {}
        new: dict[str, AttributeType] = {}
        for c in custom:
            if c in self.declared:
                types[c] = self.declared[c]
            elif c in known:
                types[c] = known[c]
            else:
                types[c] = infer_type(batch.columns[c][:1000])
                self.report.inferred.append(c)
            if known.get(c) != types[c]:
                new[c] = types[c]
        if new:
            self.store.declare_attributes(new, source=self.name)
            known.update(new)
        self.report.attribute_types.update(types)
        return types

    def _prepare_contacts(self, batch: Batch) -> _Prepared:
        """A batch's text columns cleaned, its tags split, and its emails,
        phones, names, countries and postcodes normalized, with the issues
        normalizing found: nothing here reads the store or writes a reject,
        so it runs on the preparing thread (see :meth:`_loop`)."""
        from crmkit import _core

        cols: dict[str, list[Any]] = {}
        for f in _TEXT_FIELDS:
            if f in batch.columns:
                col = batch.columns[f]
                cols[f] = col if batch.trimmed else clean_text_column(col)
        if "tags" in batch.columns:
            cols["tags"], _ = convert_column(
                batch.columns["tags"], "list", list_separator=self.list_separator
            )
        issues: list[tuple[int, str, str]] = []
        to_norm = {f: cols[f] for f in _NORMALIZED if f in cols}
        if to_norm:
            normalized, issues = _core.normalize_contact_columns(
                to_norm, default_region=self.region
            )
            cols.update(normalized)
        return cols, issues

    def _contacts(self, batch: Batch, prepared: _Prepared) -> tuple[list[int], list[int]]:
        from crmkit.privacy import ERASED_SCOPE, erased_rows

        n = len(batch)
        file = batch.file
        bad_row = [False] * n
        cols, issues = prepared

        def drop(i: int, field: str, reason: str) -> None:
            self.rejects.add(
                Reject(file=file, line=batch.lines[i], field=field, reason=reason), "value dropped"
            )

        for i, field, reason in issues:
            if field == self.key:
                bad_row[i] = True
                self.rejects.add(
                    Reject(
                        file=file,
                        line=batch.lines[i],
                        field=field,
                        reason=f"{reason} (the upsert key)",
                    ),
                    "row skipped",
                )
            else:
                drop(i, field, reason)
        custom = [c for c in batch.columns if c not in CONTACT_FIELDS]
        types = self._types_for(batch, custom)
        for c in custom:
            if types[c] == "string" and batch.trimmed:
                # Already what converting to text gives: trimmed, blanks None.
                cols[c] = batch.columns[c]
                continue
            cols[c], errors = convert_column(
                batch.columns[c], types[c], list_separator=self.list_separator
            )
            for i, reason in errors:
                drop(i, c, reason)

        if self.key not in cols:
            raise ConfigError(
                f"{file or self.name}: no column maps to the upsert key {self.key!r}; "
                'map one with columns = {"<header>" = "' + self.key + '"} or choose another key'
            )
        keys = cols[self.key]
        none: list[Any] = [None] * n
        if self._erasures is None:  # an import erases nothing: asked once per run
            self._erasures = self.store.has_suppressions(scopes=[ERASED_SCOPE])
        gone_rows = (
            erased_rows(self.kernel, cols.get("email", none), cols.get("phone", none))
            if self._erasures
            else []
        )
        for i, gone in enumerate(gone_rows):
            if gone and not bad_row[i]:
                bad_row[i] = True
                self.rejects.add(
                    Reject(file=file, line=batch.lines[i], reason="erased on request"),
                    "row skipped",
                )
        for i in range(n):
            if keys[i] is None and not bad_row[i]:
                bad_row[i] = True
                self.rejects.add(
                    Reject(
                        file=file,
                        line=batch.lines[i],
                        field=self.key,
                        reason=f"missing {self.key} (the upsert key)",
                    ),
                    "row skipped",
                )
        if any(bad_row):
            keys = cols[self.key] = [None if bad_row[i] else k for i, k in enumerate(keys)]
        res = self.store.upsert_contacts(
            cols, key=self.key, source=self.name, file=file, lines=batch.lines
        )
        self.report.created += len(res.created)
        self.report.updated += len(res.updated)
        for i in res.conflicts:
            drop(i, "email", "another contact has this email; the contact keeps its own")
        if self.consent:
            self._consents(batch, res.ids)
        return res.created, res.updated

    def _consents(self, batch: Batch, ids: Sequence[int | None]) -> None:
        from crmkit.consent import consent_from_column

        for cc in self.consent:
            values = batch.columns.get(cc.column)
            if values is None:
                continue
            counts = consent_from_column(
                self.store,
                ids,
                values,
                channel=cc.channel,
                purpose=cc.purpose,
                source=self.name,
                file=batch.file,
                lines=batch.lines,
                opt_out=cc.opt_out,
            )
            self.report.consents_given += counts.get("given", 0)
            self.report.consents_withdrawn += counts.get("withdrawn", 0)

    # -- interactions ----------------------------------------------------------

    def _interactions(self, batch: Batch) -> None:
        from crmkit import _core

        n = len(batch)
        c = batch.columns
        file = batch.file
        lines = batch.lines
        none: list[Any] = [None] * n
        text = clean_text_column
        emails_raw = text(c.get("contact_email", none))
        emails = _core.normalize_emails(emails_raw)
        ext_ids = text(c.get("contact_external_id", none))
        by_email = self.store.lookup_contacts("email", [e for e in emails if e])
        by_ext = (
            self.store.lookup_contacts("external_id", [e for e in ext_ids if e], source=self.name)
            if any(ext_ids)
            else {}
        )
        kinds = text(c.get("kind", none))
        raw_times = list(c.get("occurred_at", none))
        times, unsure = _core.parse_epochs(raw_times)
        bad_time: set[int] = set()
        for i in unsure:  # forms the Rust parser leaves to Python
            try:
                times[i] = to_epoch(raw_times[i])
            except (TypeError, ValueError):
                bad_time.add(i)
        amounts, amount_errors = convert_column(c.get("amount", none), "number")
        bad_amount = {i for i, _ in amount_errors}
        channels = text(c.get("channel", none))
        subjects = text(c.get("subject", none))
        ids = text(c.get("external_id", none))
        extra = [k for k in c if k not in INTERACTION_FIELDS]
        extra_cols = list(zip(extra, [c[k] for k in extra], strict=True))
        rejects = self.rejects
        prefix = f"{self.name}:"

        def reject(i: int, field: str, reason: str) -> None:
            rejects.add(Reject(file=file, line=lines[i], field=field, reason=reason), "row skipped")

        # Whole columns first; the rows that fail (few) are then told apart
        # one by one, in file order, with the first check each fails.
        cids: list[int | None] = [by_email.get(e) if e else None for e in emails]
        if by_ext:
            cids = [
                cid if cid is not None or not x else by_ext.get(x)
                for cid, x in zip(cids, ext_ids, strict=True)
            ]
        bad = bad_time | bad_amount
        good = [
            i
            for i, (cid, kind, ts) in enumerate(zip(cids, kinds, times, strict=True))
            if cid is not None and kind and ts is not None and i not in bad
        ]
        if len(good) < n:
            kept = set(good)
            for i in range(n):
                if i in kept:
                    continue
                if cids[i] is None:
                    if emails_raw[i] and not emails[i]:
                        reject(i, "contact_email", "not an email address")
                    elif emails_raw[i] or ext_ids[i]:
                        reject(i, "contact_email", "no contact with this email or id")
                    else:
                        reject(i, "contact_email", "no contact reference (email or contact id)")
                elif not kinds[i]:
                    reject(i, "kind", "missing kind")
                elif i in bad_time:
                    reject(i, "occurred_at", "not a date-time (ISO 8601)")
                elif times[i] is None:
                    reject(i, "occurred_at", "missing occurred_at")
                else:
                    reject(i, "amount", "not a number")

        def pick(col: Sequence[Any]) -> list[Any]:
            return list(col) if len(good) == n else [col[i] for i in good]

        props: list[dict[str, Any] | None] = [
            {k: col[i] for k, col in extra_cols if col[i] is not None} or None for i in good
        ]
        out_cids, out_kinds, out_times = pick(cids), pick(kinds), pick(times)
        out_amounts, out_subjects = pick(amounts), pick(subjects)
        keys: list[str] = []
        for j, ext in enumerate(pick(ids)):
            if ext:
                keys.append(prefix + ext)
            else:
                p = props[j]
                basis = (
                    f"{out_cids[j]}|{out_kinds[j]}|{out_times[j]}|{out_amounts[j]}|"
                    f"{out_subjects[j]}|{sorted(p.items()) if p else []}"
                )
                keys.append(f"{prefix}h:{hashlib.sha1(basis.encode()).hexdigest()}")
        out: dict[str, list[Any]] = {
            "contact_id": out_cids,
            "kind": [k.lower() for k in out_kinds],
            "occurred_at": out_times,
            "channel": pick(channels),
            "amount": out_amounts,
            "subject": out_subjects,
            "properties": props,
            "key": keys,
        }
        keep_lines = pick(lines)
        if out["contact_id"]:
            self.report.interactions_added += self.store.add_interactions(
                out, source=self.name, file=file, lines=keep_lines
            )
