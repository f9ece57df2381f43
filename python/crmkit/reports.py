"""Reports as plain data: the kernel computes numbers, reporters render them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from crmkit.errors import ConfigError
from crmkit.kinds import Report, Table

if TYPE_CHECKING:
    from crmkit.kernel import Kernel

REPORTS = ("summary",)


def build_report(kernel: Kernel, name: str) -> Report:
    """The report called ``name``."""
    if name != "summary":
        raise ConfigError(f"unknown report {name!r} (known: {', '.join(REPORTS)})")
    store = kernel.store
    conn = store.conn  # type: ignore[attr-defined]
    tables = [
        Table(
            title="Customer base",
            columns=["measure", "value"],
            rows=[
                ["contacts", store.count_contacts()],
                ["merged away", store.count_contacts(include_merged=True) - store.count_contacts()],
                ["companies", store.count_companies()],
                ["interactions", store.count_interactions()],
            ],
        ),
        Table(
            title="Contacts by lifecycle stage",
            columns=["stage", "contacts"],
            rows=[
                list(r)
                for r in conn.execute(
                    "SELECT COALESCE(lifecycle_stage, '(none)'), COUNT(*) FROM contacts "
                    "WHERE merged_into IS NULL GROUP BY 1 ORDER BY 2 DESC"
                )
            ],
            chart="bar",
        ),
        Table(
            title="Contacts by country",
            columns=["country", "contacts"],
            rows=[
                list(r)
                for r in conn.execute(
                    "SELECT COALESCE(country, '(none)'), COUNT(*) FROM contacts "
                    "WHERE merged_into IS NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
                )
            ],
            chart="bar",
        ),
        Table(
            title="Interactions by kind",
            columns=["kind", "count", "amount"],
            rows=[
                [k, c, round(a or 0.0, 2)]
                for k, c, a in conn.execute(
                    "SELECT kind, COUNT(*), SUM(amount) FROM interactions GROUP BY 1 ORDER BY 2 DESC"
                )
            ],
        ),
        Table(
            title="Outbox",
            columns=["channel", "status", "messages"],
            rows=[
                list(r)
                for r in conn.execute(
                    "SELECT channel, status, COUNT(*) FROM deliveries GROUP BY 1, 2 ORDER BY 1, 2"
                )
            ],
        ),
    ]
    return Report(title="crmkit summary", tables=tables, generated_at=datetime.now(UTC).isoformat())
