"""Stores: the system of record. See :class:`crmkit.store.base.Store`."""

from crmkit.store.base import Store, UpsertResult

__all__ = ["Store", "UpsertResult"]
