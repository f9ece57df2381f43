"""Erasure on request (the right to be forgotten).

:func:`erase_contacts` removes a person from the store: their contact record
and every record merged into it, their source identities, interactions,
consent entries and segment memberships, the before-images that merges kept
of them, and the rendered copies of messages in the outbox (whose rows stay,
without content, so that their idempotency keys still stop a second send).
Nothing of it can be undone — that is the point — so the audit log records
only how many records went.

What remains is a keyed hash (HMAC-SHA256, see :mod:`crmkit.consent`) of each
email address and phone number, in the suppression list under the person's
channels and under the ``erased`` scope: no campaign reaches the address
again, and an import skips a row carrying it (listed in the reject file as
"erased on request") instead of bringing the person back. The hash cannot be
read back into an address without the store's secret key.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from crmkit.errors import NotFoundError

if TYPE_CHECKING:
    from crmkit.kernel import Kernel
    from crmkit.store.sqlite import SQLiteStore

ERASED_SCOPE = "erased"
"""Suppression scope of the addresses of erased contacts (checked on import)."""

_CHANNEL_OF = {"email": "email", "phone": "sms"}


class EraseResult(msgspec.Struct, kw_only=True):
    """What an erasure removed (counts only)."""

    contacts: int = 0
    """Contact records deleted: the ones asked for and every record merged into them."""
    interactions: int = 0
    consents: int = 0
    memberships: int = 0
    merges: int = 0
    deliveries_scrubbed: int = 0
    suppressed: int = 0
    """Addresses newly added to the suppression list."""


def _family(store: SQLiteStore, survivors: set[int]) -> list[int]:
    """``survivors`` and every contact merged into one of them, at any depth."""
    from crmkit.store.sqlite import in_lists

    family = set(survivors)
    frontier = list(survivors)
    while frontier:
        found: list[int] = []
        for chunk in in_lists(frontier):
            found.extend(
                r[0]
                for r in store.conn.execute(
                    f"SELECT id FROM contacts WHERE merged_into IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                if r[0] not in family
            )
        family.update(found)
        frontier = found
    return sorted(family)


def erase_contacts(kernel: Kernel, ids: Sequence[int], *, actor: str = "api") -> EraseResult:
    """Erase the people behind contact ``ids`` (a merged id erases its survivor).

    Runs in one transaction; fires ``crmkit_contacts_erased`` after it commits
    with every contact id removed. Raises :class:`NotFoundError` when an id
    names no contact, before anything is changed.
    """
    from crmkit.consent import load_secret
    from crmkit.merge import sqlite_store
    from crmkit.store import outbox
    from crmkit.store.sqlite import in_lists

    store = sqlite_store(kernel.store)
    wanted = list(dict.fromkeys(int(i) for i in ids))
    resolved = store.resolve_ids(wanted)
    survivors = {resolved.get(i, i) for i in wanted}
    present = {c.id for c in store.get_contacts(sorted(survivors))}
    missing = sorted(survivors - present)
    if missing:
        raise NotFoundError(f"no contact with id {', '.join(map(str, missing[:5]))}")
    family = _family(store, survivors)
    key = load_secret(store)
    out = EraseResult()
    now = int(time.time())
    with store.transaction():
        conn = store.conn
        addresses: dict[str, set[str]] = {"email": set(), "phone": set()}
        for chunk in in_lists(family):
            marks = ",".join("?" * len(chunk))
            for email, phone in conn.execute(
                f"SELECT email, phone FROM contacts WHERE id IN ({marks})", chunk
            ):
                if email:
                    addresses["email"].add(email)
                if phone:
                    addresses["phone"].add(phone)
        for kind, values in addresses.items():
            hashes = [key.address_hash(v) for v in sorted(values)]
            for scope in (_CHANNEL_OF[kind], ERASED_SCOPE):
                out.suppressed += outbox.add_suppressions(
                    store, hashes, scope=scope, reason="erased on request"
                )

        def delete(table: str, column: str, chunk: list[int]) -> int:
            marks = ",".join("?" * len(chunk))
            return conn.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk).rowcount

        for chunk in in_lists(family):
            out.interactions += delete("interactions", "contact_id", chunk)
            out.consents += delete("consents", "contact_id", chunk)
            out.memberships += delete("memberships", "contact_id", chunk)
            out.merges += delete("merges", "survivor_id", chunk)
            delete("identities", "contact_id", chunk)
            out.deliveries_scrubbed += conn.execute(
                "UPDATE deliveries SET payload = NULL, error = CASE WHEN status IN "
                "('queued', 'unknown') THEN 'contact erased' ELSE error END, "
                "status = CASE WHEN status IN ('queued', 'unknown') THEN 'failed' ELSE status END, "
                f"updated_at = ? WHERE contact_id IN ({','.join('?' * len(chunk))})",
                (now, *chunk),
            ).rowcount
            out.contacts += delete("contacts", "id", chunk)
        store.audit(
            "erase",
            actor=actor,
            details={"contacts": out.contacts, "interactions": out.interactions},
        )
    # The kept segment snapshot holds copies of contact fields: drop it now
    # rather than at the next segment run.
    kernel.segments.drop_snapshot()
    kernel.hooks.contacts_erased(kernel, family)
    return out


def erased_rows(
    kernel: Kernel, emails: Sequence[str | None], phones: Sequence[str | None]
) -> list[bool]:
    """For each row, whether its email or phone belongs to an erased person."""
    from crmkit.consent import load_secret, suppressed_addresses
    from crmkit.store import outbox
    from crmkit.store.sqlite import SQLiteStore

    n = len(emails)
    if not isinstance(kernel.store, SQLiteStore):  # erasure needs SQLite, so none happened
        return [False] * n
    store = kernel.store
    if not outbox.has_suppressions(store, scopes=[ERASED_SCOPE]):
        return [False] * n
    key = load_secret(store)
    by_email = suppressed_addresses(store, key, emails, scopes=[ERASED_SCOPE])
    by_phone = suppressed_addresses(store, key, phones, scopes=[ERASED_SCOPE])
    return [a or b for a, b in zip(by_email, by_phone, strict=True)]


__all__ = ["ERASED_SCOPE", "EraseResult", "erase_contacts", "erased_rows"]
