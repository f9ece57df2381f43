"""Columnar snapshots of the store for bulk work (categorizers, engines)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from crmkit.kinds import Snapshot
from crmkit.records import CONTACT_FIELDS
from crmkit.store.base import Store


def build_snapshot(
    store: Store,
    *,
    fields: Sequence[str] | None = None,
    as_of: float | None = None,
    kinds: Sequence[str] | None = None,
) -> Snapshot:
    """Live contacts as columns plus their interactions, as of ``as_of`` (default now).

    ``fields`` defaults to every built-in field and declared attribute.
    Interactions carry ``contact_index`` (position in ``ids``) instead of ids.
    """
    if fields is None:
        fields = [f for f in CONTACT_FIELDS if f != "external_id"] + sorted(store.attribute_types())
    from crmkit import _core

    ids, cols = store.contact_columns(list(fields))
    inter = store.interaction_columns(kinds=kinds)
    # Positions are looked up in Rust: no per-record Python work.
    inter["contact_index"] = _core.row_positions(ids, inter.pop("contact_id"))
    return Snapshot(ids=ids, contacts=cols, interactions=inter, as_of=as_of or time.time())
