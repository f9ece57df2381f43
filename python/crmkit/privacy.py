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

from collections.abc import Sequence
from typing import TYPE_CHECKING

from crmkit.errors import NotFoundError
from crmkit.store.base import ErasureCounts

if TYPE_CHECKING:
    from crmkit.kernel import Kernel

ERASED_SCOPE = "erased"
"""Suppression scope of the addresses of erased contacts (checked on import)."""

_CHANNEL_OF = {"email": "email", "phone": "sms"}


class EraseResult(ErasureCounts, kw_only=True):
    """What an erasure removed (counts only): the store's counts, where
    ``contacts`` holds the records asked for and every record merged into
    them, plus the addresses suppressed."""

    suppressed: int = 0
    """Addresses newly added to the suppression list."""


def erase_contacts(kernel: Kernel, ids: Sequence[int], *, actor: str = "api") -> EraseResult:
    """Erase the people behind contact ``ids`` (a merged id erases its survivor).

    Runs in one transaction; fires ``crmkit_contacts_erased`` after it commits
    with every contact id removed. Raises :class:`NotFoundError` when an id
    names no contact, before anything is changed.
    """
    from crmkit.consent import load_secret

    store = kernel.store
    wanted = list(dict.fromkeys(int(i) for i in ids))
    resolved = store.resolve_ids(wanted)
    survivors = {resolved.get(i, i) for i in wanted}
    present = {c.id for c in store.get_contacts(sorted(survivors))}
    missing = sorted(survivors - present)
    if missing:
        raise NotFoundError(f"no contact with id {', '.join(map(str, missing[:5]))}")
    family = store.merged_family(sorted(survivors))
    key = load_secret(store)
    out = EraseResult()
    with store.transaction():
        addresses: dict[str, set[str]] = {"email": set(), "phone": set()}
        for c in store.get_contacts(family):
            if c.email:
                addresses["email"].add(c.email)
            if c.phone:
                addresses["phone"].add(c.phone)
        for kind, values in addresses.items():
            hashes = [key.address_hash(v) for v in sorted(values)]
            for scope in (_CHANNEL_OF[kind], ERASED_SCOPE):
                out.suppressed += store.add_suppressions(
                    hashes, scope=scope, reason="erased on request"
                )
        gone = store.erase_contacts(family)
        for name in ErasureCounts.__struct_fields__:
            setattr(out, name, getattr(gone, name))
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

    n = len(emails)
    store = kernel.store
    if not store.has_suppressions(scopes=[ERASED_SCOPE]):
        return [False] * n
    key = load_secret(store)
    by_email = suppressed_addresses(store, key, emails, scopes=[ERASED_SCOPE])
    by_phone = suppressed_addresses(store, key, phones, scopes=[ERASED_SCOPE])
    return [a or b for a, b in zip(by_email, by_phone, strict=True)]


__all__ = ["ERASED_SCOPE", "EraseResult", "erase_contacts", "erased_rows"]
