"""The Store protocol: every backend (SQLite built in, PostgreSQL as a plugin)
implements it, and every caller uses only it.

Design rules:

- **Bulk in, bulk out.** Writes take columns (``Mapping[str, Sequence]``), one
  value per row; reads that feed engines return columns.
- **Transactions.** Every write method is atomic on its own; inside
  ``with store.transaction():`` several writes commit or roll back together
  (nested ``transaction()`` blocks join the outer one).
- **Ids.** Contacts have integer ids assigned by the store. A merged contact
  keeps its row (for undo) with ``merged_into`` set; :meth:`Store.resolve_ids`
  maps any id to its survivor.
- **Times** are timezone-aware UTC datetimes at the API and integer epoch
  seconds inside columnar reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import msgspec

from crmkit.records import (
    AttributeType,
    AuditEntry,
    Consent,
    ConsentStatus,
    Contact,
    Interaction,
    Segment,
)


class UpsertResult(msgspec.Struct, kw_only=True):
    """What a bulk upsert did: ids created and updated, in input order."""

    created: list[int] = msgspec.field(default_factory=list)
    updated: list[int] = msgspec.field(default_factory=list)
    ids: list[int | None] = msgspec.field(default_factory=list)
    """The contact id of each input row (``None`` for a row that was skipped)."""


class ChangePosition(msgspec.Struct, kw_only=True, frozen=True):
    """A point in a store's change log (see :meth:`Store.changes_since`)."""

    generation: int = 0
    """Bumped by every change the log cannot replay (a contact removed or
    merged away, an interaction moved or removed): data derived at another
    generation must be rebuilt."""
    rev: int = 0
    """The stamp of the latest contact write."""
    interaction: int = 0
    """The id of the latest interaction added."""


class Changes(msgspec.Struct, kw_only=True):
    """What changed between two points of a store's change log."""

    position: ChangePosition
    """Where the log stood when read: pass it to the next call."""
    contact_ids: list[int] = msgspec.field(default_factory=list)
    """Live contacts created or updated since (sorted); some may have changed
    again after ``position``, so reading them gives data at least as new."""
    interactions: dict[str, list[Any]] = msgspec.field(default_factory=dict)
    """Interactions added since, up to ``position``, as the columns of
    :meth:`Store.interaction_columns`."""


class ContactQuery(msgspec.Struct, kw_only=True, frozen=True):
    """Filters for :meth:`Store.find_contacts`; all given filters must hold."""

    text: str | None = None
    """Case-insensitive substring of name, email, company or city."""
    email: str | None = None
    phone: str | None = None
    lifecycle_stage: str | None = None
    include_merged: bool = False
    limit: int = 50
    offset: int = 0


@runtime_checkable
class Store(Protocol):
    """The contract between crmkit and a storage backend."""

    url: str
    """Where the store lives (``sqlite:///path``, ``postgresql://…``)."""

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        """Close connections. Safe to call twice."""

    def transaction(self) -> AbstractContextManager[None]:
        """A transaction; nested calls join the outermost one."""

    def schema_version(self) -> int:
        """The schema version of the opened store (migrated to the latest on open)."""

    def bulk_load(self) -> AbstractContextManager[None]:
        """A hint that many writes follow (an import): the store may defer
        index upkeep to the end of the block. Every read and write inside the
        block stays correct; a store killed inside the block is whole again
        when next opened. Nested calls join the outermost one."""

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
        """Create or update contacts by natural ``key`` (``email`` or ``external_id``).

        ``columns`` holds built-in contact fields (see
        :data:`crmkit.records.CONTACT_FIELDS`) and custom attributes (any other
        name). A ``None`` value never overwrites a stored one. ``external_id``
        values are kept as identities of ``source``. Rows whose key is missing
        are skipped (``ids`` holds ``None`` for them). Rows of one call that
        share a key update the same contact, in order.
        """

    def get_contacts(self, ids: Sequence[int]) -> list[Contact]:
        """The contacts with these ids, in the given order; unknown ids are left out."""

    def find_contacts(self, query: ContactQuery) -> list[Contact]:
        """Contacts matching ``query``, ordered by id."""

    def count_contacts(self, *, include_merged: bool = False) -> int:
        """How many contacts there are."""

    def lookup_contacts(
        self, field: str, values: Sequence[str], *, source: str | None = None
    ) -> dict[str, int]:
        """Map values of ``email``, ``phone`` or ``external_id`` (of ``source``) to live ids."""

    def resolve_ids(self, ids: Sequence[int]) -> dict[int, int]:
        """Map each id to the id of the live contact it was merged into (itself if live)."""

    def contact_columns(
        self, fields: Sequence[str], *, ids: Sequence[int] | None = None
    ) -> tuple[list[int], dict[str, list[Any]]]:
        """Live contacts as columns: ids and one list per field (custom attributes
        too; ``created_at`` and ``updated_at`` as epoch seconds)."""

    def change_position(self) -> ChangePosition:
        """Where the change log stands now."""

    def changes_since(self, position: ChangePosition) -> Changes | None:
        """Contacts written and interactions added since ``position``; ``None``
        when the log cannot tell (the generation moved on): rebuild instead.

        Read the position before the data it describes: data read after it is
        at least as new, and the next call lists those contacts again."""

    def cache_path(self, name: str) -> Path | None:
        """A file beside the store for data derived from it that can always be
        rebuilt (the segment snapshot), or ``None`` when the store has no
        local folder."""

    def set_attributes(self, ids: Sequence[int], columns: Mapping[str, Sequence[Any]]) -> int:
        """Set attributes (built-in fields or custom) on contacts; returns rows changed."""

    def declare_attributes(self, types: Mapping[str, AttributeType], *, source: str) -> None:
        """Declare custom attribute types; redeclaring with another type is an error."""

    def attribute_types(self) -> dict[str, AttributeType]:
        """Declared custom attributes and their types."""

    # -- companies -------------------------------------------------------------

    def upsert_companies(
        self, columns: Mapping[str, Sequence[Any]], *, source: str
    ) -> UpsertResult:
        """Create or update companies by domain (else by name)."""

    def count_companies(self) -> int:
        """How many companies there are."""

    # -- interactions ------------------------------------------------------------

    def add_interactions(
        self,
        columns: Mapping[str, Sequence[Any]],
        *,
        source: str,
        file: str | None = None,
        lines: Sequence[int] | None = None,
    ) -> int:
        """Append interactions; returns how many were new.

        Columns: ``contact_id``, ``kind``, ``occurred_at`` (epoch seconds or
        datetime), optional ``channel``, ``amount``, ``subject``, ``properties``
        (dicts) and ``key``. A row whose ``key`` is already stored is ignored,
        so re-importing is idempotent.
        """

    def timeline(self, contact_id: int, *, limit: int = 50) -> list[Interaction]:
        """A contact's interactions, newest first."""

    def count_interactions(self) -> int:
        """How many interactions there are."""

    def interaction_columns(
        self, *, kinds: Sequence[str] | None = None, upto: ChangePosition | None = None
    ) -> dict[str, list[Any]]:
        """Interactions of live contacts as columns: contact_id, kind, occurred_at,
        amount. With ``upto``, only those added up to that change-log position
        (so that data derived from them and brought up to date with
        :meth:`changes_since` never counts one twice)."""

    # -- consent ---------------------------------------------------------------

    def record_consents(self, entries: Sequence[Consent]) -> None:
        """Append entries to the consent ledger."""

    def consent_status(
        self, contact_ids: Sequence[int], *, channel: str, purpose: str
    ) -> dict[int, ConsentStatus]:
        """The latest consent per contact for (channel, purpose); absent when none."""

    # -- segments ----------------------------------------------------------------

    def save_segments(self, segments: Sequence[Segment]) -> None:
        """Create or replace segment definitions by name."""

    def list_segments(self) -> list[Segment]:
        """Every segment definition, by name."""

    def delete_segment(self, name: str) -> bool:
        """Remove a segment (its current members exit now); False when unknown."""

    def segment_members(self, name: str) -> list[int]:
        """Current members of a segment (ids, ascending)."""

    def memberships_version(self) -> int:
        """A number that changes whenever current memberships change: a run
        recorded, a segment deleted, contacts merged or erased. A copy of the
        members made at one version is still exact while it holds."""

    def record_segment_run(
        self, as_of: int, changes: Mapping[str, tuple[Sequence[int], Sequence[int]]]
    ) -> int:
        """Record a run: for each segment the ids that entered and exited at ``as_of``.
        Returns the run id. One transaction."""

    def segment_history(
        self, name: str, *, since: int | None = None, limit: int = 1000
    ) -> list[tuple[int, int, int | None]]:
        """(contact id, entered at, exited at or None), newest change first."""

    # -- outbox ------------------------------------------------------------------

    def enqueue_deliveries(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Add outbox rows (``key``, ``campaign``, ``step``, ``contact_id``, ``channel``,
        ``payload``) as ``queued``; a key already present is left alone. Returns how many are new."""

    def queued_deliveries(
        self, *, campaign: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Queued outbox rows, oldest first."""

    def update_deliveries(self, updates: Sequence[Mapping[str, Any]]) -> None:
        """Set ``status`` (and ``provider_id``, ``error``) of deliveries by ``key``."""

    def delivery_counts(self, *, campaign: str | None = None) -> dict[str, int]:
        """Deliveries per status."""

    # -- source state, runs, audit ------------------------------------------------

    def get_state(self, name: str) -> dict[str, Any] | None:
        """Stored state of source ``name`` (see :class:`crmkit.records.Checkpoint`)."""

    def set_state(self, name: str, state: Mapping[str, Any] | None) -> None:
        """Store (or with ``None`` clear) the state of source ``name``."""

    def audit(
        self,
        action: str,
        *,
        actor: str,
        ids: Sequence[int] = (),
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append an audit entry. ``details`` must not hold personal data."""

    def audit_log(self, *, limit: int = 100) -> list[AuditEntry]:
        """The newest audit entries first."""

    def iter_table(self, table: str) -> Iterator[tuple[Any, ...]]:
        """Every row of a table in primary-key order (for tests and exports)."""
