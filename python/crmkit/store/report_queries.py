"""The report aggregates of the SQLite store (its private part).

:class:`ReportQueriesMixin` implements the
:class:`~crmkit.store.base.ReportQueries` section of the Store protocol in SQL:
each method is one or two aggregate queries over the tables.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from crmkit.errors import ConfigError
from crmkit.records import CONTACT_FIELDS

_COLUMNS = frozenset(f for f in CONTACT_FIELDS if f != "external_id")
"""Contact columns; any other name in :meth:`filled_counts` is a custom attribute."""
_GROUPABLE = _COLUMNS | {"source"}
"""Columns that contacts can be grouped by."""

# Interactions with their owner: a merged contact's events count for its survivor.
_OWNED = (
    "SELECT i.*, COALESCE(c.merged_into, i.contact_id) AS owner FROM interactions i "
    "LEFT JOIN contacts c ON c.id = i.contact_id"
)

# Revenue per owner (one ``?``: the purchase kind).
_REVENUE = f"SELECT owner, SUM(amount) AS v FROM ({_OWNED}) WHERE kind = ? GROUP BY 1"


def _month(col: str) -> str:
    return f"strftime('%Y-%m', {col}, 'unixepoch')"


def _month_index(col: str) -> str:
    return (
        f"(CAST(strftime('%Y', {col}, 'unixepoch') AS INTEGER) * 12"
        f" + CAST(strftime('%m', {col}, 'unixepoch') AS INTEGER) - 1)"
    )


def _json_path(name: str) -> str:
    return '$."' + name.replace('"', '\\"') + '"'


def _column(name: str) -> str:
    if name not in _GROUPABLE:
        raise ConfigError(f"not a contact column: {name!r}")
    return name


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


class ReportQueriesMixin:
    """Report aggregates over ``self.conn`` (mixed into the SQLite store)."""

    @property
    def conn(self) -> sqlite3.Connection:
        """The store's connection (the store this is mixed into gives it)."""
        raise NotImplementedError

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[list[Any]]:
        return [list(r) for r in self.conn.execute(sql, args)]

    # -- contacts ------------------------------------------------------------------------

    def contact_breakdown(
        self, field: str, *, blank_as_none: bool = False, limit: int | None = None
    ) -> list[list[Any]]:
        col = _column(field)
        value = f"NULLIF({col}, '')" if blank_as_none else col
        sql = (
            f"SELECT COALESCE({value}, '(none)'), COUNT(*) FROM contacts "
            "WHERE merged_into IS NULL GROUP BY 1 ORDER BY 2 DESC, 1"
        )
        if limit is None:
            return self._rows(sql)
        return self._rows(sql + " LIMIT ?", (limit,))

    def contacts_added_by_month(self) -> list[list[Any]]:
        return self._rows(
            f"SELECT {_month('created_at')}, COUNT(*) FROM contacts "
            "WHERE merged_into IS NULL GROUP BY 1 ORDER BY 1"
        )

    def attribute_months(self, name: str) -> list[list[Any]]:
        return self._rows(
            "SELECT substr(v, 1, 7), COUNT(*) FROM (SELECT json_extract(CAST(attrs AS TEXT), ?) "
            "AS v FROM contacts WHERE merged_into IS NULL) WHERE v IS NOT NULL GROUP BY 1 ORDER BY 1",
            (_json_path(name),),
        )

    def filled_counts(self, fields: Sequence[str]) -> list[int]:
        if not fields:
            return []
        exprs: list[str] = []
        args: list[Any] = []
        for f in fields:
            if f in _COLUMNS:
                exprs.append(
                    f"SUM(NULLIF(CAST({f} AS TEXT), '') IS NOT NULL AND CAST({f} AS TEXT) <> '[]')"
                )
            else:
                exprs.append("SUM(NULLIF(json_extract(CAST(attrs AS TEXT), ?), '') IS NOT NULL)")
                args.append(_json_path(f))
        counts = self.conn.execute(
            f"SELECT {', '.join(exprs)} FROM contacts WHERE merged_into IS NULL", args
        ).fetchone()
        return [int(c or 0) for c in counts]

    def duplicate_groups(
        self, fields: Sequence[str], *, ignore_case: Sequence[str] = ()
    ) -> tuple[int, int]:
        cols = [f"lower({_column(f)})" if f in ignore_case else _column(f) for f in fields]
        if not cols:
            raise ConfigError("duplicate groups need at least one field")
        where = " AND ".join(f"{c} IS NOT NULL AND {c} <> ''" for c in cols)
        groups, members = self.conn.execute(
            f"SELECT COUNT(*), SUM(n) FROM (SELECT COUNT(*) AS n FROM contacts "
            f"WHERE merged_into IS NULL AND {where} GROUP BY {', '.join(cols)} HAVING COUNT(*) > 1)"
        ).fetchone()
        return int(groups or 0), int(members or 0)

    # -- interactions and outbox -----------------------------------------------------------

    def interaction_kinds(self) -> list[list[Any]]:
        return self._rows(
            "SELECT kind, COUNT(*), SUM(amount) FROM interactions GROUP BY 1 ORDER BY 2 DESC, 1"
        )

    def purchase_totals(self, kind: str) -> tuple[float | None, int, int]:
        revenue, orders, buyers = self.conn.execute(
            "SELECT SUM(amount), COUNT(*), COUNT(DISTINCT contact_id) FROM interactions "
            "WHERE kind = ?",
            (kind,),
        ).fetchone()
        return revenue, int(orders or 0), int(buyers or 0)

    def delivery_status_counts(self) -> list[list[Any]]:
        return self._rows(
            "SELECT channel, status, COUNT(*) FROM deliveries GROUP BY 1, 2 ORDER BY 1, 2"
        )

    # -- merges --------------------------------------------------------------------------

    def merge_totals(self) -> tuple[int, int, int, float | None]:
        applied, undone, records, avg_score = self.conn.execute(
            "SELECT COUNT(*), SUM(undone_at IS NOT NULL), "
            "SUM(CASE WHEN undone_at IS NULL THEN json_array_length(CAST(merged_ids AS TEXT)) END), "
            "AVG(score) FROM merges"
        ).fetchone()
        return int(applied or 0), int(undone or 0), int(records or 0), avg_score

    def merges_by_month(self) -> list[list[Any]]:
        return self._rows(
            f"SELECT m, SUM(d), SUM(u) FROM ("
            f"SELECT {_month('created_at')} AS m, 1 AS d, 0 AS u FROM merges UNION ALL "
            f"SELECT {_month('undone_at')}, 0, 1 FROM merges WHERE undone_at IS NOT NULL"
            f") GROUP BY 1 ORDER BY 1"
        )

    def merge_score_range(self) -> tuple[float | None, float | None]:
        lo, hi = self.conn.execute(
            "SELECT MIN(score), MAX(score) FROM merges WHERE score IS NOT NULL"
        ).fetchone()
        return lo, hi

    def merge_score_bins(self, low: float, width: float, bins: int) -> dict[int, int]:
        return dict(
            self.conn.execute(
                "SELECT MIN(CAST((score - ?) / ? AS INTEGER), ?), COUNT(*) FROM merges "
                "WHERE score IS NOT NULL GROUP BY 1",
                (low, width, bins - 1),
            ).fetchall()
        )

    # -- segments ------------------------------------------------------------------------

    def segment_sizes(self) -> list[list[Any]]:
        return self._rows(
            "SELECT name, kind, COALESCE(n, 0) FROM ("
            "SELECT s.name AS name, s.kind AS kind, m.n AS n FROM segments s LEFT JOIN "
            "(SELECT segment, COUNT(*) AS n FROM memberships WHERE exited_at IS NULL GROUP BY 1) m "
            "ON m.segment = s.name UNION ALL "
            "SELECT segment, '(unknown)', COUNT(*) FROM memberships WHERE exited_at IS NULL "
            "AND segment NOT IN (SELECT name FROM segments) GROUP BY 1"
            ") ORDER BY 3 DESC, 1"
        )

    def segment_runs(self) -> list[tuple[int, int]]:
        return [
            (r[0], r[1])
            for r in self.conn.execute("SELECT id, as_of FROM segment_runs ORDER BY id")
        ]

    def segment_moves(self, segments: Sequence[str]) -> list[tuple[str, int, int, int]]:
        if not segments:
            return []

        def run_of(kind: str) -> str:
            return (
                f"COALESCE({kind}_run, (SELECT MAX(r.id) FROM segment_runs r "
                f"WHERE r.started_at <= m.{kind}_at), 0)"
            )

        marks = ", ".join("?" * len(segments))
        delta: dict[tuple[str, int], list[int]] = {}
        for seg, run, n in self.conn.execute(
            f"SELECT segment, {run_of('entered')}, COUNT(*) FROM memberships m "
            f"WHERE segment IN ({marks}) GROUP BY 1, 2",
            list(segments),
        ):
            delta.setdefault((seg, int(run)), [0, 0])[0] += int(n)
        for seg, run, n in self.conn.execute(
            f"SELECT segment, {run_of('exited')}, COUNT(*) FROM memberships m "
            f"WHERE segment IN ({marks}) AND exited_at IS NOT NULL GROUP BY 1, 2",
            list(segments),
        ):
            delta.setdefault((seg, int(run)), [0, 0])[1] += int(n)
        return [(s, r, e, x) for (s, r), (e, x) in delta.items()]

    def segment_overlap(self, segments: Sequence[str]) -> list[tuple[str, str, int]]:
        if not segments:
            return []
        marks = ", ".join("?" * len(segments))
        return [
            (a, b, int(n))
            for a, b, n in self.conn.execute(
                f"SELECT a.segment, b.segment, COUNT(*) FROM memberships a JOIN memberships b "
                f"ON a.contact_id = b.contact_id AND a.segment <= b.segment "
                f"WHERE a.exited_at IS NULL AND b.exited_at IS NULL "
                f"AND a.segment IN ({marks}) AND b.segment IN ({marks}) GROUP BY 1, 2",
                [*segments, *segments],
            )
        ]

    def rfm_cells(self, recency: str, frequency: str, *, kind: str) -> list[list[Any]]:
        attr = "CAST(json_extract(CAST({t}attrs AS TEXT), ?) AS INTEGER)"
        return self._rows(
            f"SELECT r, f, SUM(n), SUM(v) FROM ("
            f"SELECT {attr.format(t='')} AS r, {attr.format(t='')} AS f, 1 AS n, 0.0 AS v "
            "FROM contacts WHERE merged_into IS NULL UNION ALL "
            f"SELECT {attr.format(t='c.')}, {attr.format(t='c.')}, 0, rv.v FROM ({_REVENUE}) rv "
            "CROSS JOIN contacts c ON c.id = rv.owner WHERE c.merged_into IS NULL"
            ") WHERE r IS NOT NULL AND f IS NOT NULL GROUP BY 1, 2",
            # In the order the ``?`` appear: both paths twice, then the kind
            # inside the revenue subquery (which follows the select list).
            (
                _json_path(recency),
                _json_path(frequency),
                _json_path(recency),
                _json_path(frequency),
                kind,
            ),
        )

    # -- campaigns -----------------------------------------------------------------------

    def campaign_funnel(
        self,
        *,
        sent: Sequence[str],
        delivered: Sequence[str],
        kind: str,
        window: int,
    ) -> list[list[Any]]:
        s, d = _in(sent), _in(delivered)
        return self._rows(
            "SELECT COALESCE(campaign, '(none)'), channel, COUNT(*), "
            f"SUM(status IN {s}), SUM(status IN {d}), SUM(status = 'bounced'), "
            "SUM(status = 'complained'), SUM(status = 'failed'), "
            f"SUM(status IN {s} AND status <> 'bounced' AND EXISTS ("
            "SELECT 1 FROM interactions i WHERE i.kind = ? AND i.contact_id = "
            "COALESCE((SELECT merged_into FROM contacts c WHERE c.id = d.contact_id), d.contact_id) "
            "AND i.occurred_at >= d.created_at AND i.occurred_at < d.created_at + ?)) "
            "FROM deliveries d GROUP BY 1, 2 ORDER BY 1, 2",
            (kind, window),
        )

    def email_engagement(self, *, kind: str, window: int, limit: int) -> list[list[Any]]:
        return self._rows(
            "WITH e AS (SELECT json_extract(CAST(props AS TEXT), '$.campaign') AS c, kind, "
            "owner, occurred_at FROM ("
            + _OWNED
            + ") WHERE kind IN ('email_open', 'email_click')), "
            "clicks AS (SELECT c, owner, MIN(occurred_at) AS t FROM e WHERE kind = 'email_click' "
            "AND c IS NOT NULL GROUP BY 1, 2), "
            "conv AS (SELECT c, SUM(EXISTS (SELECT 1 FROM interactions p "
            "WHERE p.kind = ? AND p.contact_id = clicks.owner AND p.occurred_at >= clicks.t "
            "AND p.occurred_at < clicks.t + ?)) AS n FROM clicks GROUP BY 1), "
            "agg AS (SELECT c, MIN(occurred_at) AS first, "
            "COUNT(DISTINCT CASE WHEN kind = 'email_open' THEN owner END) AS opened, "
            "COUNT(DISTINCT CASE WHEN kind = 'email_click' THEN owner END) AS clicked "
            "FROM e WHERE c IS NOT NULL GROUP BY 1) "
            "SELECT agg.c, agg.opened, agg.clicked, COALESCE(conv.n, 0) FROM agg "
            "LEFT JOIN conv ON conv.c = agg.c ORDER BY agg.first DESC, agg.c LIMIT ?",
            (kind, window, limit),
        )

    # -- sales ---------------------------------------------------------------------------

    def purchasers(self, kind: str) -> int:
        row = self.conn.execute(
            f"SELECT COUNT(DISTINCT owner) FROM ({_OWNED}) WHERE kind = ?", (kind,)
        ).fetchone()
        return int(row[0] or 0) if row else 0

    def first_touch_by_month(self, kind: str) -> list[list[Any]]:
        return self._rows(
            f"SELECT {_month('t')}, COUNT(*), SUM(b) FROM (SELECT owner, MIN(occurred_at) AS t, "
            f"MAX(kind = ?) AS b FROM ({_OWNED}) GROUP BY owner) GROUP BY 1 ORDER BY 1",
            (kind,),
        )

    def revenue_by_month(self, kind: str) -> list[list[Any]]:
        return self._rows(
            f"SELECT {_month('occurred_at')}, SUM(amount), COUNT(*), COUNT(DISTINCT owner) "
            f"FROM ({_OWNED}) WHERE kind = ? GROUP BY 1 ORDER BY 1",
            (kind,),
        )

    def property_values(self, kind: str, name: str) -> list[Any]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT json_extract(CAST(props AS TEXT), ?) FROM interactions "
                "WHERE kind = ? AND props IS NOT NULL ORDER BY 1",
                (_json_path(name), kind),
            )
            if r[0] is not None
        ]

    def revenue_by_stage(self, kind: str) -> list[list[Any]]:
        # Each revenue row drives one indexed look-up (CROSS JOIN keeps that order).
        return self._rows(
            "SELECT stage, SUM(n), SUM(b), SUM(v) FROM ("
            "SELECT COALESCE(lifecycle_stage, '(none)') AS stage, 1 AS n, 0 AS b, 0.0 AS v "
            "FROM contacts WHERE merged_into IS NULL UNION ALL "
            f"SELECT COALESCE(c.lifecycle_stage, '(none)'), 0, 1, rv.v FROM ({_REVENUE}) rv "
            "CROSS JOIN contacts c ON c.id = rv.owner WHERE c.merged_into IS NULL"
            ") GROUP BY 1 ORDER BY 4 DESC, 1",
            (kind,),
        )

    def revenue_by_segment(self, kind: str, *, limit: int) -> list[list[Any]]:
        return self._rows(
            "SELECT segment, SUM(n), SUM(b), SUM(v) FROM ("
            "SELECT segment, 1 AS n, 0 AS b, 0.0 AS v FROM memberships WHERE exited_at IS NULL "
            f"UNION ALL SELECT m.segment, 0, 1, rv.v FROM ({_REVENUE}) rv "
            "CROSS JOIN memberships m ON m.contact_id = rv.owner WHERE m.exited_at IS NULL"
            ") GROUP BY 1 ORDER BY 4 DESC, 1 LIMIT ?",
            (kind, limit),
        )

    def purchase_cohorts(self, kind: str) -> list[tuple[int, int, int]]:
        mi = _month_index("occurred_at")
        return [
            (int(a), int(b), int(n))
            for a, b, n in self.conn.execute(
                f"WITH p AS (SELECT DISTINCT owner, {mi} AS m FROM ({_OWNED}) WHERE kind = ?), "
                "f AS (SELECT owner, MIN(m) AS fm FROM p GROUP BY 1) "
                "SELECT f.fm, p.m - f.fm, COUNT(*) FROM p JOIN f ON f.owner = p.owner "
                "GROUP BY 1, 2",
                (kind,),
            )
        ]

    def feedback_by_month(self, kind: str, prop: str) -> list[list[Any]]:
        return self._rows(
            f"SELECT {_month('occurred_at')}, COUNT(*), AVG(s), SUM(s >= 9), SUM(s <= 6), "
            "SUM(s >= 8), SUM(s >= 4), MAX(s) FROM (SELECT occurred_at, "
            "json_extract(CAST(props AS TEXT), ?) AS s FROM interactions WHERE kind = ?) "
            "WHERE typeof(s) IN ('integer', 'real') GROUP BY 1 ORDER BY 1",
            ("$." + prop, kind),
        )


__all__ = ["ReportQueriesMixin"]
