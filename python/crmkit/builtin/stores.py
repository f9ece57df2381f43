"""The built-in ``sqlite`` store backend."""

from __future__ import annotations

from crmkit.hookspecs import hookimpl
from crmkit.kinds import StoreBackend
from crmkit.store.base import Store


class SQLiteBackend(StoreBackend):
    """Opens ``sqlite:///path`` stores (and bare paths)."""

    name = "sqlite"
    schemes = ("sqlite",)
    description = "One SQLite file (WAL); the embedded default."

    def open(self, url: str) -> Store:
        from crmkit.store.sqlite import SQLiteStore

        return SQLiteStore(url)


@hookimpl
def crmkit_register_stores(register):  # type: ignore[no-untyped-def]
    register(SQLiteBackend)
