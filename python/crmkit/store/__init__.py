"""Stores: the system of record. See :class:`crmkit.store.base.Store`.

``base`` holds the protocol and the types it speaks; ``sqlite`` (with its
private parts ``outbox``, ``merges`` and ``report_queries``) is the built-in
backend, which callers reach only through the protocol.
"""

from crmkit.store.base import (
    ErasureCounts,
    MergeConflictError,
    MergeSpec,
    OutboxRow,
    Store,
    UpsertResult,
)

__all__ = [
    "ErasureCounts",
    "MergeConflictError",
    "MergeSpec",
    "OutboxRow",
    "Store",
    "UpsertResult",
]
