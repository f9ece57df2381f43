"""Records: the data that flows through crmkit.

Hot-path records are :class:`msgspec.Struct` classes (frozen, keyword-only):
fast to build, encode and decode. Bulk paths do not build one record per row:
they pass :class:`Batch` objects that hold whole columns.

Times are timezone-aware UTC :class:`datetime.datetime` values; ids are integers
assigned by the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

RecordKind = Literal["contacts", "companies", "interactions"]
"""The kinds of record a source can produce."""

AttributeType = Literal["string", "integer", "number", "boolean", "date", "datetime", "list"]
"""Types a custom attribute can be declared with (``list`` is a list of strings)."""

CONTACT_FIELDS: tuple[str, ...] = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "company",
    "job_title",
    "street",
    "city",
    "region",
    "postcode",
    "country",
    "birth_date",
    "lifecycle_stage",
    "tags",
    "external_id",
)
"""Built-in contact fields. Anything else a source provides is a custom attribute."""

COMPANY_FIELDS: tuple[str, ...] = ("name", "domain", "industry", "size", "country", "external_id")
"""Built-in company fields."""

INTERACTION_FIELDS: tuple[str, ...] = (
    "contact_email",
    "contact_external_id",
    "kind",
    "channel",
    "occurred_at",
    "amount",
    "subject",
    "external_id",
)
"""Built-in interaction fields; other columns go to ``properties``."""

INTERACTION_KINDS: tuple[str, ...] = (
    "purchase",
    "email",
    "email_open",
    "email_click",
    "call",
    "meeting",
    "ticket",
    "feedback",
    "form",
    "visit",
    "message",
    "refund",
    "note",
)
"""Well-known interaction kinds. Plugins may use others (lowercase identifiers)."""


class Provenance(msgspec.Struct, frozen=True, kw_only=True):
    """Where a value came from: the source, the file and line, and when."""

    source: str
    file: str | None = None
    line: int | None = None
    at: datetime | None = None


class Contact(msgspec.Struct, frozen=True, kw_only=True):
    """A person. ``email`` and ``phone`` hold normalized values (E.164 for phones)."""

    id: int
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    company: str | None = None
    job_title: str | None = None
    street: str | None = None
    city: str | None = None
    region: str | None = None
    postcode: str | None = None
    country: str | None = None
    birth_date: str | None = None
    lifecycle_stage: str | None = None
    tags: tuple[str, ...] = ()
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    external_ids: dict[str, str] = msgspec.field(default_factory=dict)
    source: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    merged_into: int | None = None

    @property
    def display_name(self) -> str:
        """First and last name joined, or an empty string."""
        return " ".join(p for p in (self.first_name, self.last_name) if p)


class Company(msgspec.Struct, frozen=True, kw_only=True):
    """An organization contacts belong to."""

    id: int
    name: str
    domain: str | None = None
    industry: str | None = None
    size: int | None = None
    country: str | None = None
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)


class Interaction(msgspec.Struct, frozen=True, kw_only=True):
    """An append-only timeline event for a contact.

    ``key`` is an idempotency key: adding the same key twice stores one event.
    """

    id: int
    contact_id: int
    kind: str
    occurred_at: datetime
    channel: str | None = None
    amount: float | None = None
    subject: str | None = None
    properties: dict[str, Any] = msgspec.field(default_factory=dict)
    key: str | None = None
    source: str | None = None


ConsentStatus = Literal["given", "withdrawn"]


class Consent(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the append-only consent ledger."""

    contact_id: int
    channel: str
    purpose: str
    status: ConsentStatus
    source: str
    evidence: str | None = None
    recorded_at: datetime | None = None


SegmentKind = Literal["dynamic", "static"]


class Segment(msgspec.Struct, frozen=True, kw_only=True):
    """A named group of contacts: a rule (dynamic) or a list (static)."""

    name: str
    rule: str | None = None
    kind: SegmentKind = "dynamic"
    description: str | None = None
    owner: str | None = None


class SegmentChange(msgspec.Struct, frozen=True, kw_only=True):
    """Who entered and who left one segment in one run."""

    segment: str
    run_id: int
    entered: tuple[int, ...] = ()
    exited: tuple[int, ...] = ()


class MergeEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One merge of duplicates into a survivor; holds enough to undo it."""

    id: int
    survivor_id: int
    merged_ids: tuple[int, ...]
    score: float | None = None
    explanation: dict[str, Any] = msgspec.field(default_factory=dict)
    provenance: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: datetime | None = None
    undone_at: datetime | None = None


DeliveryStatus = Literal[
    "queued", "sending", "sent", "delivered", "bounced", "complained", "failed", "unknown"
]


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """A rendered message ready for a channel."""

    key: str
    contact_id: int
    channel: str
    to: str
    body: str
    subject: str | None = None
    html: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


SendStatus = Literal["sent", "failed", "retry", "unknown"]


class SendResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a channel reports for one message of a batch."""

    key: str
    status: SendStatus
    provider_id: str | None = None
    error: str | None = None
    retry_after: float | None = None


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """An outbox row: one message to one contact, keyed for idempotency."""

    id: int
    key: str
    contact_id: int
    channel: str
    status: DeliveryStatus
    campaign: str | None = None
    attempts: int = 0
    provider_id: str | None = None
    error: str | None = None
    updated_at: datetime | None = None


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """Who did what to which ids. Never holds personal data."""

    id: int
    at: datetime
    actor: str
    action: str
    ids: tuple[int, ...] = ()
    details: dict[str, Any] = msgspec.field(default_factory=dict)


class Reject(msgspec.Struct, frozen=True, kw_only=True):
    """A row that was not imported, with where it was and why."""

    file: str | None
    line: int
    reason: str
    field: str | None = None


class Batch(msgspec.Struct, kw_only=True):
    """A batch of records as columns, the unit every bulk path moves.

    ``columns`` maps a field name to one value per row (``None`` for missing);
    ``lines`` holds each row's line number in ``file`` (for provenance and
    rejects). ``rejects`` are rows the source could not parse at all.
    """

    kind: RecordKind
    columns: dict[str, list[Any]]
    lines: list[int]
    file: str | None = None
    rejects: list[Reject] = msgspec.field(default_factory=list)
    trimmed: bool = False
    """True when every value is a ``str`` without surrounding white space, or
    ``None`` (blank cells included), so the host can skip cleaning it."""

    def __len__(self) -> int:
        return len(self.lines)


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """Source state to persist once every batch before it is stored.

    A re-run passes the last stored state back to the source so that it reads
    only what is new.
    """

    state: dict[str, Any]


__all__ = [
    "COMPANY_FIELDS",
    "CONTACT_FIELDS",
    "INTERACTION_FIELDS",
    "INTERACTION_KINDS",
    "AttributeType",
    "AuditEntry",
    "Batch",
    "Checkpoint",
    "Company",
    "Consent",
    "ConsentStatus",
    "Contact",
    "Delivery",
    "DeliveryStatus",
    "Interaction",
    "MergeEvent",
    "Message",
    "Provenance",
    "RecordKind",
    "Reject",
    "Segment",
    "SegmentChange",
    "SegmentKind",
    "SendResult",
    "SendStatus",
]


class Table(msgspec.Struct, kw_only=True):
    """A titled table of plain values, the unit of every report."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    chart: str | None = None
    """A chart hint for rich reporters: ``bar``, ``line``, ``heatmap``, ``funnel``,
    ``cohort`` or ``None`` (see :mod:`crmkit.reports` for the shape each expects)."""
    note: str | None = None
    section: str | None = None
    """The report this table belongs to when several reports are rendered together."""
    chart_columns: list[str] | None = None
    """The columns the chart plots; ``None`` lets the chart choose (see :mod:`crmkit.reports`)."""


class Report(msgspec.Struct, kw_only=True):
    """A report: a title and its tables, plain data that any reporter renders."""

    title: str
    tables: list[Table]
    generated_at: str | None = None
