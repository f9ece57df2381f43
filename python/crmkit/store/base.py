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
  seconds inside columnar reads, outbox rows, raw contact rows and report
  aggregates.
- **No SQL outside the store.** Outbox, suppressions, merges, erasure and the
  report aggregates are protocol methods (grouped in :class:`DeliveryStore`,
  :class:`SuppressionStore`, :class:`MergeStore`, :class:`ErasureStore` and
  :class:`ReportQueries`, which :class:`Store` inherits), so a backend computes
  them its own way and callers need only :class:`Store`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import msgspec

from crmkit.errors import StoreError
from crmkit.records import (
    AttributeType,
    AuditEntry,
    Consent,
    ConsentStatus,
    Contact,
    Interaction,
    MergeEvent,
    Segment,
)


class UpsertResult(msgspec.Struct, kw_only=True):
    """What a bulk upsert did: ids created and updated, in input order."""

    created: list[int] = msgspec.field(default_factory=list)
    updated: list[int] = msgspec.field(default_factory=list)
    ids: list[int | None] = msgspec.field(default_factory=list)
    """The contact id of each input row (``None`` for a row that was skipped)."""
    conflicts: list[int] = msgspec.field(default_factory=list)
    """Rows (by position) of an upsert by record id whose email another
    contact holds: their contact keeps its own email, since two contacts never
    share one."""


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


# -- outbox types ------------------------------------------------------------------------

CLAIM_PREFIX = "claim:"
"""The start of a claim owner token (see :func:`owner_token`)."""


class OutboxRow(msgspec.Struct, kw_only=True):
    """A delivery row as the sender sees it.

    The delivery state machine::

        queued ──claim──▶ sending ──result──▶ sent ──callback──▶ delivered/bounced/complained/failed
          ▲                  │  └──result──▶ failed
          └──retry(backoff)──┤  └──result/crash──▶ unknown ──reconcile──▶ sent | queued | failed

    A ``queued`` row is due when ``next_attempt_at`` is ``None`` or in the
    past. A claimed (``sending``) row holds its owner token in ``error`` and
    its lease end in ``next_attempt_at``.
    """

    id: int
    key: str
    campaign: str | None
    step: int
    contact_id: int
    channel: str
    status: str
    attempts: int
    provider_id: str | None
    error: str | None
    payload: dict[str, Any]
    next_attempt_at: int | None


def owner_token() -> str:
    """This process's claim owner: ``claim:<host>:<pid>:<nonce>``."""
    return f"{CLAIM_PREFIX}{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def owner_alive(owner: str) -> bool | None:
    """Whether the process behind a claim owner token lives: ``None`` when it
    ran on another host (only its lease can expire it)."""
    parts = owner[len(CLAIM_PREFIX) :].rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname():
        return None
    try:
        pid = int(parts[1])
    except ValueError:
        return None
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- merge and erasure types ---------------------------------------------------------------


class MergeSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One merge to apply: the survivor's new column values and the ids merged into it.

    ``values`` maps contacts columns (plain fields, ``tags`` as a list,
    ``attrs`` as a dict) to the survivor's values after the merge; columns not
    named keep their value. ``provenance`` says which contact each field came
    from; ``explanation`` holds the scored pairs (ids and probabilities).
    """

    survivor_id: int
    merged_ids: tuple[int, ...]
    values: dict[str, Any] = msgspec.field(default_factory=dict)
    score: float | None = None
    explanation: dict[str, Any] = msgspec.field(default_factory=dict)
    provenance: dict[str, Any] = msgspec.field(default_factory=dict)


class MergeConflictError(StoreError):
    """A merge cannot be applied or undone in the store's current state."""


class ErasureCounts(msgspec.Struct, kw_only=True):
    """What :meth:`Store.erase_contacts` removed (counts only)."""

    contacts: int = 0
    interactions: int = 0
    consents: int = 0
    memberships: int = 0
    merges: int = 0
    """Merge events whose survivor was erased (their before images held the people)."""
    deliveries_scrubbed: int = 0
    """Outbox rows whose rendered message was removed (the rows stay)."""


class DeliveryStore(Protocol):
    """The outbox: one row per message, keyed, written before anything is sent.

    See :class:`OutboxRow` for the state machine. Times are epoch seconds.
    """

    def enqueue_deliveries(
        self, rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]
    ) -> int:
        """Add outbox rows as ``queued``; a key already present is left alone.

        ``rows`` is a sequence of rows or, for bulk callers, columns (one
        sequence per name). Names: ``key``, ``contact_id``, ``channel``,
        optional ``campaign``, ``step`` (default 0), ``payload`` (a mapping,
        or its JSON text as a ``str``) and ``next_attempt_at`` (a scheduled
        send; ``None``: due now). Atomic: columns of unequal lengths are a
        :class:`~crmkit.errors.ConfigError` and nothing is written. Returns how
        many rows are new."""

    def queued_deliveries(
        self, *, campaign: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Queued outbox rows, oldest first (``id``, ``key``, ``campaign``,
        ``contact_id``, ``channel``, ``payload``, ``attempts``)."""

    def update_deliveries(self, updates: Sequence[Mapping[str, Any]]) -> None:
        """Set ``status`` (and ``provider_id`` unless ``None``, ``error``) of
        deliveries by ``key``, counting ``attempt`` (default 1) more attempts. Atomic."""

    def delivery_counts(
        self, *, campaign: str | None = None, scheduled: bool = False
    ) -> dict[str, int]:
        """Deliveries per status, by status name; with ``scheduled``, queued
        rows not yet due count under ``scheduled`` instead of ``queued``."""

    def existing_delivery_keys(self, keys: Sequence[str]) -> set[str]:
        """The subset of ``keys`` already in the outbox (empty for no keys)."""

    def has_deliveries(self, *, campaign: str, step: int) -> bool:
        """Whether the outbox holds any row of ``campaign``'s ``step``."""

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
        """Atomically move up to ``limit`` due queued rows (oldest first) to
        ``sending`` for ``owner`` (see :func:`owner_token`) until ``now + lease``.

        Two processes claiming at once never get the same row. Each claim
        counts as an attempt. Returns the claimed rows in id order."""

    def finish_deliveries(self, outcomes: Mapping[str, Sequence[Any]]) -> None:
        """Record send outcomes, as columns: ``key``, ``status`` and optional
        ``provider_id`` (``None`` keeps the stored one), ``error`` and
        ``next_attempt_at`` (both set as given, ``None`` included).

        Atomic; joins the caller's transaction, so that outcomes and the
        interactions recording them commit together."""

    def set_delivery_status(
        self,
        keys: Sequence[str],
        status: str,
        *,
        error: str | None = None,
        only_from: Sequence[str] | None = None,
    ) -> int:
        """Set ``status`` and ``error`` on the rows with these keys, only on rows
        in one of ``only_from`` when given. Atomic. Returns rows changed."""

    def recover_stale_deliveries(self, *, now: int | None = None) -> int:
        """Turn abandoned claims into ``unknown`` (never ``queued``: whether their
        message left is not known); returns how many.

        A ``sending`` row is abandoned when its owner was a process of this
        host that is gone (see :func:`owner_alive`), or, for an owner on
        another host, when its lease ended by ``now``."""

    def delivery_rows(
        self,
        *,
        statuses: Sequence[str] | None = None,
        campaign: str | None = None,
        keys: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[OutboxRow]:
        """Outbox rows filtered by status, campaign and keys (all given filters
        hold), in id order; ``keys=[]`` finds none."""

    def deliveries_by_provider_id(self, provider_ids: Sequence[str]) -> dict[str, OutboxRow]:
        """Outbox rows by the provider's message id (unknown ids are left out)."""

    def due_delivery_campaigns(self, *, now: int | None = None) -> list[tuple[str | None, str]]:
        """Distinct ``(campaign, channel)`` pairs that have due queued rows or
        ``unknown`` rows, sorted."""


class SuppressionStore(Protocol):
    """The suppression list: keyed hashes of addresses that must not be reached,
    per scope (a channel, or ``channel/purpose``). See :mod:`crmkit.consent`."""

    def add_suppressions(self, hashes: Sequence[str], *, scope: str, reason: str) -> int:
        """Add address hashes to ``scope``; ones already there are left alone.
        Atomic. Returns how many are new."""

    def has_suppressions(self, *, scopes: Sequence[str]) -> bool:
        """Whether any hash is suppressed in one of ``scopes``."""

    def suppressed_hashes(self, hashes: Sequence[str], *, scopes: Sequence[str]) -> set[str]:
        """The subset of ``hashes`` suppressed in any of ``scopes``."""


class MergeStore(Protocol):
    """Merges of duplicates into golden records, with enough kept to undo them."""

    def contact_rows(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Whole contacts as stored, by id (merged ones too; unknown ids left
        out): every contact field, ``tags`` (a list), ``attrs`` (a dict),
        ``source``, ``created_at``/``updated_at`` (epoch seconds) and
        ``merged_into``."""

    def apply_merges(
        self,
        specs: Sequence[MergeSpec],
        *,
        actor: str = "crmkit",
        on_merge: Callable[[int], None] | None = None,
    ) -> list[MergeEvent]:
        """Apply ``specs`` in one transaction and return their merge events.

        Each merge sets the survivor's ``values``, points the merged contacts
        at it, moves their interactions, consents and memberships to it,
        audits it and keeps a before image. Every id must be a live contact
        in one spec only; otherwise nothing is written and
        :class:`MergeConflictError` names the id. ``on_merge`` is called with
        the count applied so far (progress); if it raises, nothing is written."""

    def undo_merge(
        self, merge_id: int, *, actor: str = "crmkit", force: bool = False
    ) -> MergeEvent:
        """Put back every row merge ``merge_id`` touched, as it was before. Atomic.

        Refused (:class:`MergeConflictError`, nothing written) when already
        undone, when a later merge still in force involves its contacts, or
        when the survivor changed since (``force`` restores anyway);
        :class:`~crmkit.errors.NotFoundError` for an unknown id. Returns the
        event with ``undone_at`` set."""

    def list_merges(self, *, limit: int = 50, include_undone: bool = True) -> list[MergeEvent]:
        """Merge events, newest first."""

    def get_merge(self, merge_id: int) -> MergeEvent:
        """One merge event; :class:`~crmkit.errors.NotFoundError` when unknown."""

    def undone_merges(self) -> list[tuple[int, ...]]:
        """The contacts of every undone merge (survivor first), oldest merge
        first: groups a person has split again, which dedupe keeps apart."""

    def label_pairs(self, pairs: Sequence[tuple[int, int, bool]], *, actor: str) -> int:
        """Record reviewed pairs of contacts ``(a, b, same person?)``; a pair
        already labelled takes the new verdict (either order of ids). Every id
        must be a contact (live or merged), else
        :class:`~crmkit.errors.NotFoundError` names it and nothing is written
        (:class:`~crmkit.errors.ConfigError` for a pair of one contact).
        Audited; returns the number of pairs recorded."""

    def labelled_pairs(self) -> list[tuple[int, int, bool]]:
        """Every reviewed pair ``(smaller id, larger id, same person?)``, by ids."""

    def merge_before(self, merge_id: int) -> dict[str, Any]:
        """The before image of a merge: ``{"contacts": [row, …], "links":
        {table: {row id: contact id}}}``; :class:`~crmkit.errors.NotFoundError`
        when unknown."""

    def undo_check(self, merge_id: int) -> dict[str, Any]:
        """Whether merge ``merge_id`` can be undone now:
        ``{"ok": bool, "reason": str | None}`` (nothing written)."""


class ErasureStore(Protocol):
    """Erasure on request (see :mod:`crmkit.privacy`)."""

    def merged_family(self, ids: Sequence[int]) -> list[int]:
        """``ids`` and every contact merged into one of them, at any depth (sorted)."""

    def erase_contacts(self, ids: Sequence[int]) -> ErasureCounts:
        """Delete these contacts with their identities, interactions, consents,
        memberships, reviewed pairs and the merge events they survived; remove the rendered
        message of their outbox rows (the rows and keys stay, and queued or
        unknown ones become ``failed``). Atomic; joins the caller's transaction.
        Does not follow merges: pass :meth:`merged_family`."""


class ReportQueries(Protocol):
    """Aggregates the reports read (see :mod:`crmkit.reports`), each computed
    in the store in one pass, never by loading contacts.

    Conventions: a **live** contact is one not merged into another; an
    interaction's **owner** is its contact's survivor (itself when live);
    **months** are calendar months in UTC labelled ``YYYY-MM``; counts are
    ints and sums floats (``None`` over no rows). Rows are lists, ordered as
    each method says. Nothing is written.
    """

    def contact_breakdown(
        self, field: str, *, blank_as_none: bool = False, limit: int | None = None
    ) -> list[list[Any]]:
        """``[value, live contacts]`` per value of the contact column ``field``
        (or ``source``); ``"(none)"`` for ``None``, and for ``""`` too with
        ``blank_as_none``; most contacts first then by value, at most ``limit`` rows."""

    def contacts_added_by_month(self) -> list[list[Any]]:
        """``[month, live contacts created]`` by ``created_at`` month, ascending."""

    def attribute_months(self, name: str) -> list[list[Any]]:
        """``[first 7 characters of the value, live contacts]`` for the date
        attribute ``name`` (contacts without it left out), ascending."""

    def filled_counts(self, fields: Sequence[str]) -> list[int]:
        """For each contact column or custom attribute of ``fields``, how many live
        contacts hold a value (not ``None``, not ``""``, not an empty list)."""

    def duplicate_groups(
        self, fields: Sequence[str], *, ignore_case: Sequence[str] = ()
    ) -> tuple[int, int]:
        """``(groups, contacts)``: groups of two or more live contacts sharing
        the same non-empty values of every contact column of ``fields``
        (compared case-insensitively for those in ``ignore_case``)."""

    def interaction_kinds(self) -> list[list[Any]]:
        """``[kind, interactions, sum of amount]``, most interactions first then by kind."""

    def purchase_totals(self, kind: str) -> tuple[float | None, int, int]:
        """``(sum of amount, interactions, distinct contact ids)`` of ``kind``."""

    def delivery_status_counts(self) -> list[list[Any]]:
        """``[channel, status, deliveries]`` ordered by channel and status."""

    def merge_totals(self) -> tuple[int, int, int, float | None]:
        """``(merges, undone, contacts merged by merges in force, average score)``."""

    def merges_by_month(self) -> list[list[Any]]:
        """``[month, merges made, merges undone]`` (each by its own time), ascending."""

    def merge_score_range(self) -> tuple[float | None, float | None]:
        """``(lowest, highest)`` merge score (``None`` when no merge is scored)."""

    def merge_score_bins(self, low: float, width: float, bins: int) -> dict[int, int]:
        """Scored merges per bin: bin ``int((score - low) / width)``, capped at
        ``bins - 1``; empty bins left out."""

    def segment_sizes(self) -> list[list[Any]]:
        """``[segment, kind, open memberships]`` for every defined segment and for
        undefined ones that still have open memberships (kind ``"(unknown)"``),
        largest first then by name."""

    def segment_runs(self) -> list[tuple[int, int]]:
        """``(run id, as of)`` of every recorded segment run, in id order."""

    def segment_moves(self, segments: Sequence[str]) -> list[tuple[str, int, int, int]]:
        """``(segment, run id, entered, exited)`` memberships of ``segments`` per run
        (a membership without its run id counts for the latest run started at
        or before its time, else run 0); pairs with no move are left out."""

    def segment_overlap(self, segments: Sequence[str]) -> list[tuple[str, str, int]]:
        """``(a, b, contacts)`` open memberships in both segments, for ``a <= b``
        among ``segments`` (``a == b``: the size); empty pairs left out."""

    def rfm_cells(self, recency: str, frequency: str, *, kind: str) -> list[list[Any]]:
        """``[r, f, live contacts, revenue]`` per pair of integer values of the
        attributes ``recency`` and ``frequency``; revenue is the sum of amounts
        of the owners' interactions of ``kind``."""

    def campaign_funnel(
        self,
        *,
        sent: Sequence[str],
        delivered: Sequence[str],
        kind: str,
        window: int,
    ) -> list[list[Any]]:
        """Per ``[campaign or "(none)", channel]``, ordered by both: deliveries,
        in ``sent`` statuses, in ``delivered`` statuses, bounced, complained,
        failed, and converted (sent, not bounced, and the owner has an
        interaction of ``kind`` within ``window`` seconds after the delivery
        was queued)."""

    def email_engagement(self, *, kind: str, window: int, limit: int) -> list[list[Any]]:
        """``[campaign, owners who opened, owners who clicked, clickers converted]``
        from ``email_open``/``email_click`` interactions (``campaign`` property);
        converted: an interaction of ``kind`` within ``window`` seconds after
        the owner's first click. The ``limit`` campaigns whose first event is
        latest, latest first."""

    def purchasers(self, kind: str) -> int:
        """Distinct owners with an interaction of ``kind``."""

    def first_touch_by_month(self, kind: str) -> list[list[Any]]:
        """``[month, owners, owners with an interaction of kind]`` by the month of
        each owner's first interaction, ascending."""

    def revenue_by_month(self, kind: str) -> list[list[Any]]:
        """``[month, sum of amount, interactions, distinct owners]`` of ``kind``, ascending."""

    def property_values(self, kind: str, name: str) -> list[Any]:
        """Distinct non-null values of property ``name`` of interactions of ``kind``, sorted."""

    def revenue_by_stage(self, kind: str) -> list[list[Any]]:
        """``[lifecycle stage or "(none)", live contacts, buyers, revenue]``, most
        revenue first then by stage; revenue is the sum of amounts of ``kind``."""

    def revenue_by_segment(self, kind: str, *, limit: int) -> list[list[Any]]:
        """``[segment, open memberships, buying members, revenue]``, most revenue
        first then by segment, at most ``limit`` rows."""

    def purchase_cohorts(self, kind: str) -> list[tuple[int, int, int]]:
        """``(first month, months since, owners)``: owners by the month of their
        first interaction of ``kind`` and each later month they had one (months
        as ``year * 12 + month - 1``)."""

    def feedback_by_month(self, kind: str, prop: str) -> list[list[Any]]:
        """Numeric values of property ``prop`` of interactions of ``kind`` per
        month, ascending: ``[month, responses, average, >= 9, <= 6, >= 8, >= 4,
        highest]``."""


@runtime_checkable
class Store(DeliveryStore, SuppressionStore, MergeStore, ErasureStore, ReportQueries, Protocol):
    """The contract between crmkit and a storage backend: the sections below
    and those of the protocols it inherits."""

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

    def first_interactions(
        self, *, kind: str, key_prefix: str, until: int
    ) -> list[tuple[int, int]]:
        """``(contact_id, earliest occurred_at)`` per contact, in contact id order,
        over interactions of ``kind`` whose key starts with ``key_prefix`` and
        that occurred at or before ``until`` (epoch seconds)."""

    def contacts_with_interactions(
        self, since: Mapping[int, int], *, kinds: Sequence[str]
    ) -> set[int]:
        """The contacts of ``since`` (contact id → epoch seconds) that have an
        interaction of one of ``kinds`` at or after their time."""

    # -- consent ---------------------------------------------------------------

    def record_consents(self, entries: Sequence[Consent]) -> None:
        """Append entries to the consent ledger."""

    def consent_status(
        self, contact_ids: Sequence[int], *, channel: str, purpose: str
    ) -> dict[int, ConsentStatus]:
        """The latest consent per contact for (channel, purpose); absent when none."""

    def consent_history(self, contact_id: int) -> list[Consent]:
        """A contact's ledger entries, oldest first (``recorded_at`` set)."""

    def consent_purposes(self, channel: str) -> list[str]:
        """The distinct purposes recorded in the ledger for ``channel``, sorted."""

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
        """(contact id, entered at, exited at or None), newest change first;
        the changes of one time in contact id order (whatever order they were
        recorded in)."""

    def segment_entries(self, name: str, *, since: int = 0) -> list[tuple[int, int]]:
        """``(contact id, entered at)`` of the current members of segment ``name``
        who entered at or after ``since``, in id order (the earliest open entry)."""

    # -- source state, runs, audit ------------------------------------------------

    def get_state(self, name: str) -> dict[str, Any] | None:
        """Stored state of source ``name`` (see :class:`crmkit.records.Checkpoint`)."""

    def set_state(self, name: str, state: Mapping[str, Any] | None) -> None:
        """Store (or with ``None`` clear) the state of source ``name``."""

    def state_names(self, prefix: str) -> list[str]:
        """The names of stored states that start with ``prefix``, sorted."""

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
