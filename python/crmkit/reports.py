"""Reports as plain data: the kernel computes numbers, reporters render them.

Each report is a :class:`crmkit.kinds.Report`: a title and tables of plain
values (strings, numbers, ``None``). Every table is computed with a handful of
SQL aggregates over the store, so a report over a million contacts reads the
tables once per section and never loops over contacts in Python.

The reports (names in :data:`REPORTS`):

- ``summary``: a compact overview of the base, interactions and outbox;
- ``customers``: contacts by source, lifecycle stage and country, growth by
  month, completeness of each field (columns and declared attributes);
- ``quality``: merges applied and undone, merges by month, the match-score
  distribution, possible duplicates left among live contacts;
- ``segments``: current sizes, sizes over runs, entered/exited per run, the
  overlap matrix and, when RFM score attributes exist, the RFM grid as heat
  maps of contacts and revenue;
- ``campaigns``: the outbox funnel queued → sent → delivered → bounced /
  complained → converted (a purchase within ``conversion_days`` after the
  message was queued), overall and by campaign and channel, and the email
  engagement recorded on the timeline (opens, clicks, conversions);
- ``sales``: lead conversion, revenue by month, by lifecycle stage and by
  segment, retention cohorts by first-purchase month (a cohort triangle) and
  feedback scores (NPS, CSAT) by month.

``build_report(kernel, "all")`` puts every report into one, each table tagged
with its report's title in :attr:`Table.section`.

Chart hints (:attr:`Table.chart`) and the shape of table each expects; the
columns plotted are :attr:`Table.chart_columns` when set:

- ``bar``: the first column holds category labels; the second column (or
  each of ``chart_columns``) is a bar series.
- ``line``: the first column holds ordered x labels (months, runs); every
  numeric column (or each of ``chart_columns``) is a series.
- ``heatmap``: the first column holds row labels, every other column is a
  column of the grid and holds numbers (or ``None``).
- ``funnel``: the first column names a stage, the second counts it.
- ``cohort``: the first column names a cohort, the second holds its size,
  the others are percentages for period 0, 1, ... (``None`` where the period
  has not happened yet): a triangle.

Definitions:

- a **live** contact is one not merged into another; interactions and
  deliveries of a merged contact count for its survivor;
- **months** are calendar months in UTC, labelled ``YYYY-MM``;
- **revenue** is the sum of ``amount`` of purchase interactions, as recorded
  (a note says when several currencies are mixed);
- **NPS** (on 0-10 scores) is the share of scores 9-10 minus the share of
  0-6, in points; **CSAT** is the share of scores in the top fifth of the
  scale (8-10 of 10, or 4-5 of 5).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crmkit.errors import ConfigError
from crmkit.records import CONTACT_FIELDS, Report, Table

if TYPE_CHECKING:
    from crmkit.kernel import Kernel

REPORTS: tuple[str, ...] = ("summary", "customers", "quality", "segments", "campaigns", "sales")
"""The names :func:`build_report` knows, besides ``all``."""

ALL = "all"
"""The name that builds every report of :data:`REPORTS` into one."""

SENT_STATUSES: tuple[str, ...] = ("sent", "delivered", "bounced", "complained")
"""Delivery statuses of a message that left the outbox."""

DELIVERED_STATUSES: tuple[str, ...] = ("delivered", "complained")
"""Delivery statuses of a message that reached its recipient."""

CONTACT_COLUMNS: tuple[str, ...] = tuple(f for f in CONTACT_FIELDS if f != "external_id")
"""The contact columns whose completeness the ``customers`` report measures."""

SIGNUP_ATTRIBUTES: tuple[str, ...] = ("signed_up", "signup_date", "signup", "joined", "joined_at")
"""Date attributes read as the sign-up date, first found wins."""

_RFM_PATTERNS = {
    axis: re.compile(rf"^(rfm[._]?)?({axis}|{word})([._]?score)?$")
    for axis, word in (("r", "recency"), ("f", "frequency"))
}

_DAY = 86_400


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """Knobs of the reports; the defaults suit most bases."""

    conversion_days: int = 30
    """A purchase within this many days after a message or click converts it."""
    purchase_kind: str = "purchase"
    """The interaction kind that counts as a purchase."""
    feedback_kind: str = "feedback"
    """The interaction kind that carries a feedback score."""
    score_property: str = "score"
    """The property of a feedback interaction that holds the score."""
    top: int = 12
    """Longest category list (countries, segments in the overlap matrix, ...)."""
    max_runs: int = 24
    """Segment runs shown, the latest ones."""
    max_months: int = 36
    """Months shown in monthly series, the latest ones."""
    cohort_months: int = 12
    """Cohorts (and periods per cohort) in the retention triangle."""


Progress = Callable[[str], None]
"""Called with a report's name when its computation starts."""


def build_report(
    kernel: Kernel,
    name: str,
    *,
    options: ReportOptions | None = None,
    progress: Progress | None = None,
) -> Report:
    """The report called ``name`` (one of :data:`REPORTS`, or ``all``)."""
    if name != ALL and name not in _BUILDERS:
        raise ConfigError(f"unknown report {name!r} (known: {', '.join((*REPORTS, ALL))})")
    conn: sqlite3.Connection | None = getattr(kernel.store, "conn", None)
    if conn is None:
        raise ConfigError("reports need an SQL store (this store has no SQL connection)")
    q = _Query(conn, options or ReportOptions())
    now = datetime.now(UTC).isoformat()
    if name == ALL:
        tables: list[Table] = []
        for each in REPORTS:
            if progress is not None:
                progress(each)
            title, part = _BUILDERS[each](q)
            for t in part:
                t.section = title
            tables.extend(part)
        return Report(title="crmkit reports", tables=tables, generated_at=now)
    if progress is not None:
        progress(name)
    title, tables = _BUILDERS[name](q)
    return Report(title=title, tables=tables, generated_at=now)


# -- helpers -------------------------------------------------------------------------------


class _Query:
    """The connection, the options and the small SQL helpers every section uses."""

    def __init__(self, conn: sqlite3.Connection, options: ReportOptions) -> None:
        self.conn = conn
        self.o = options
        self._attrs: dict[str, str] | None = None

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[list[Any]]:
        return [list(r) for r in self.conn.execute(sql, args)]

    def one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(sql, args).fetchone()
        return row[0] if row else None

    def attributes(self) -> dict[str, str]:
        """Declared attribute names and types."""
        if self._attrs is None:
            self._attrs = {
                str(n): str(t)
                for n, t in self.conn.execute("SELECT name, type FROM attributes ORDER BY name")
            }
        return self._attrs

    def live_count(self) -> int:
        return int(self.one("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL") or 0)


def _month(col: str) -> str:
    return f"strftime('%Y-%m', {col}, 'unixepoch')"


def _month_index(col: str) -> str:
    return (
        f"(CAST(strftime('%Y', {col}, 'unixepoch') AS INTEGER) * 12"
        f" + CAST(strftime('%m', {col}, 'unixepoch') AS INTEGER) - 1)"
    )


def _json_path(name: str) -> str:
    return '$."' + name.replace('"', '\\"') + '"'


# Interactions with their owner: a merged contact's events count for its survivor.
_OWNED = (
    "SELECT i.*, COALESCE(c.merged_into, i.contact_id) AS owner FROM interactions i "
    "LEFT JOIN contacts c ON c.id = i.contact_id"
)

# Revenue per owner (one ``?``: the purchase kind).
_REVENUE = f"SELECT owner, SUM(amount) AS v FROM ({_OWNED}) WHERE kind = ? GROUP BY 1"


def _pct(part: float | None, whole: float | None) -> float | None:
    if not whole:
        return None
    return round(100.0 * (part or 0) / whole, 1)


def _money(x: float | None) -> float:
    return round(float(x or 0.0), 2)


def _label_month(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _month_to_index(label: str) -> int:
    return int(label[:4]) * 12 + int(label[5:7]) - 1


def _fill_months(rows: Iterable[list[Any]], width: int, limit: int) -> tuple[list[list[Any]], int]:
    """Rows keyed by ``YYYY-MM`` with missing months filled by zeros, latest ``limit``.

    Returns the rows and how many earlier months were left out.
    """
    by = {r[0]: r[1:] for r in rows if isinstance(r[0], str) and len(r[0]) == 7}
    if not by:
        return [], 0
    lo, hi = _month_to_index(min(by)), _month_to_index(max(by))
    labels = [_label_month(i) for i in range(lo, hi + 1)]
    cut = max(0, len(labels) - limit)
    return [[m, *by.get(m, [0] * width)] for m in labels[cut:]], cut


def _top_with_other(rows: list[list[Any]], top: int) -> list[list[Any]]:
    """The first ``top`` rows of ``[label, count]`` rows, the rest summed as ``(other)``."""
    if len(rows) <= top:
        return rows
    rest = sum(int(r[1]) for r in rows[top:])
    return [*rows[:top], ["(other)", rest]]


def _with_share(rows: list[list[Any]], total: int) -> list[list[Any]]:
    return [[label, n, _pct(n, total)] for label, n in rows]


# -- summary -------------------------------------------------------------------------------


def _summary(q: _Query) -> tuple[str, list[Table]]:
    live = q.live_count()
    everyone = int(q.one("SELECT COUNT(*) FROM contacts") or 0)
    pk = q.o.purchase_kind
    revenue, orders, buyers = q.conn.execute(
        "SELECT SUM(amount), COUNT(*), COUNT(DISTINCT contact_id) FROM interactions WHERE kind = ?",
        (pk,),
    ).fetchone()
    tables = [
        Table(
            title="Customer base",
            columns=["measure", "value"],
            rows=[
                ["contacts", live],
                ["merged away", everyone - live],
                ["companies", int(q.one("SELECT COUNT(*) FROM companies") or 0)],
                ["interactions", int(q.one("SELECT COUNT(*) FROM interactions") or 0)],
                ["customers (bought at least once)", int(buyers or 0)],
                ["orders", int(orders or 0)],
                ["revenue", _money(revenue)],
                ["segments", int(q.one("SELECT COUNT(*) FROM segments") or 0)],
                ["messages in the outbox", int(q.one("SELECT COUNT(*) FROM deliveries") or 0)],
            ],
        ),
        Table(
            title="Contacts by lifecycle stage",
            columns=["stage", "contacts"],
            rows=q.rows(
                "SELECT COALESCE(lifecycle_stage, '(none)'), COUNT(*) FROM contacts "
                "WHERE merged_into IS NULL GROUP BY 1 ORDER BY 2 DESC, 1"
            ),
            chart="bar",
        ),
        Table(
            title="Contacts by country",
            columns=["country", "contacts"],
            rows=q.rows(
                "SELECT COALESCE(country, '(none)'), COUNT(*) FROM contacts "
                "WHERE merged_into IS NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?",
                (q.o.top,),
            ),
            chart="bar",
        ),
        Table(
            title="Interactions by kind",
            columns=["kind", "count", "amount"],
            rows=[
                [k, c, _money(a)]
                for k, c, a in q.conn.execute(
                    "SELECT kind, COUNT(*), SUM(amount) FROM interactions "
                    "GROUP BY 1 ORDER BY 2 DESC, 1"
                )
            ],
        ),
        Table(
            title="Outbox",
            columns=["channel", "status", "messages"],
            rows=q.rows(
                "SELECT channel, status, COUNT(*) FROM deliveries GROUP BY 1, 2 ORDER BY 1, 2"
            ),
        ),
    ]
    return "crmkit summary", tables


# -- customers -----------------------------------------------------------------------------


def _customers(q: _Query) -> tuple[str, list[Table]]:
    live = q.live_count()
    by = "FROM contacts WHERE merged_into IS NULL GROUP BY 1 ORDER BY 2 DESC, 1"
    sources = q.rows(f"SELECT COALESCE(source, '(none)'), COUNT(*) {by}")
    stages = q.rows(f"SELECT COALESCE(lifecycle_stage, '(none)'), COUNT(*) {by}")
    countries = q.rows(f"SELECT COALESCE(NULLIF(country, ''), '(none)'), COUNT(*) {by}")
    tables = [
        Table(
            title="Contacts by source",
            columns=["source", "contacts", "share %"],
            rows=_with_share(_top_with_other(sources, q.o.top), live),
            chart="bar",
        ),
        Table(
            title="Contacts by lifecycle stage",
            columns=["stage", "contacts", "share %"],
            rows=_with_share(stages, live),
            chart="bar",
        ),
        Table(
            title="Contacts by country",
            columns=["country", "contacts", "share %"],
            rows=_with_share(_top_with_other(countries, q.o.top), live),
            chart="bar",
        ),
    ]
    # Growth: contacts added to the store by month, with the running total.
    added = q.rows(
        f"SELECT {_month('created_at')}, COUNT(*) FROM contacts "
        "WHERE merged_into IS NULL GROUP BY 1 ORDER BY 1"
    )
    filled, cut = _fill_months(added, 1, q.o.max_months)
    running = sum(int(r[1]) for r in added) - sum(int(r[1]) for r in filled)
    growth = []
    for month, n in filled:
        running += int(n)
        growth.append([month, n, running])
    tables.append(
        Table(
            title="Contacts added by month",
            columns=["month", "added", "total"],
            rows=growth,
            chart="line",
            chart_columns=["total"],
            note=f"{cut} earlier months not shown" if cut else None,
        )
    )
    signup = next(
        (a for a in SIGNUP_ATTRIBUTES if q.attributes().get(a) in ("date", "datetime")), None
    )
    if signup is not None:
        rows = q.rows(
            "SELECT substr(v, 1, 7), COUNT(*) FROM (SELECT json_extract(CAST(attrs AS TEXT), ?) "
            "AS v FROM contacts WHERE merged_into IS NULL) WHERE v IS NOT NULL GROUP BY 1 ORDER BY 1",
            (_json_path(signup),),
        )
        filled, cut = _fill_months(rows, 1, q.o.max_months)
        tables.append(
            Table(
                title="Sign-ups by month",
                columns=["month", "sign-ups"],
                rows=filled,
                chart="line",
                note=f"from the {signup!r} attribute"
                + (f"; {cut} earlier months not shown" if cut else ""),
            )
        )
    tables.append(_completeness(q, live))
    return "Customer base", tables


def _completeness(q: _Query, live: int) -> Table:
    exprs = [
        f"SUM(NULLIF(CAST({c} AS TEXT), '') IS NOT NULL AND CAST({c} AS TEXT) <> '[]')"
        for c in CONTACT_COLUMNS
    ]
    attrs = [a for a in q.attributes() if a not in CONTACT_COLUMNS]
    args: list[Any] = []
    for a in attrs:
        exprs.append("SUM(NULLIF(json_extract(CAST(attrs AS TEXT), ?), '') IS NOT NULL)")
        args.append(_json_path(a))
    counts = q.conn.execute(
        f"SELECT {', '.join(exprs)} FROM contacts WHERE merged_into IS NULL", args
    ).fetchone()
    names = [*CONTACT_COLUMNS, *attrs]
    rows = [[n, _pct(int(c or 0), live), int(c or 0)] for n, c in zip(names, counts, strict=True)]
    return Table(
        title="Field completeness",
        columns=["field", "filled %", "filled"],
        rows=rows,
        chart="bar",
        note=f"share of the {live} live contacts with a value",
    )


# -- quality -------------------------------------------------------------------------------


def _quality(q: _Query) -> tuple[str, list[Table]]:
    applied, undone, records, avg_score = q.conn.execute(
        "SELECT COUNT(*), SUM(undone_at IS NOT NULL), "
        "SUM(CASE WHEN undone_at IS NULL THEN json_array_length(CAST(merged_ids AS TEXT)) END), "
        "AVG(score) FROM merges"
    ).fetchone()
    away = int(q.one("SELECT COUNT(*) FROM contacts WHERE merged_into IS NOT NULL") or 0)
    tables = [
        Table(
            title="Merges",
            columns=["measure", "value"],
            rows=[
                ["merges applied", int(applied or 0)],
                ["merges undone", int(undone or 0)],
                ["merges standing", int(applied or 0) - int(undone or 0)],
                ["records merged by standing merges", int(records or 0)],
                ["contacts merged away", away],
                [
                    "average match score",
                    round(float(avg_score), 4) if avg_score is not None else None,
                ],
            ],
        )
    ]
    months = q.rows(
        f"SELECT m, SUM(d), SUM(u) FROM ("
        f"SELECT {_month('created_at')} AS m, 1 AS d, 0 AS u FROM merges UNION ALL "
        f"SELECT {_month('undone_at')}, 0, 1 FROM merges WHERE undone_at IS NOT NULL"
        f") GROUP BY 1 ORDER BY 1"
    )
    filled, cut = _fill_months(months, 2, q.o.max_months)
    tables.append(
        Table(
            title="Merges by month",
            columns=["month", "merged", "undone"],
            rows=filled,
            chart="line",
            note=f"{cut} earlier months not shown" if cut else None,
        )
    )
    tables.append(_score_histogram(q))
    tables.append(
        Table(
            title="Possible duplicates left",
            columns=["rule", "groups", "contacts"],
            rows=[
                [label, *_dup_groups(q, cols)]
                for label, cols in (
                    ("same phone", ("phone",)),
                    (
                        "same name and postcode",
                        ("lower(first_name)", "lower(last_name)", "postcode"),
                    ),
                    (
                        "same name and birth date",
                        ("lower(first_name)", "lower(last_name)", "birth_date"),
                    ),
                )
            ],
            note="live contacts sharing exact values; a hint for the next dedupe run",
        )
    )
    return "Data quality", tables


def _dup_groups(q: _Query, cols: Sequence[str]) -> list[int]:
    where = " AND ".join(f"{c} IS NOT NULL AND {c} <> ''" for c in cols)
    groups, members = q.conn.execute(
        f"SELECT COUNT(*), SUM(n) FROM (SELECT COUNT(*) AS n FROM contacts "
        f"WHERE merged_into IS NULL AND {where} GROUP BY {', '.join(cols)} HAVING COUNT(*) > 1)"
    ).fetchone()
    return [int(groups or 0), int(members or 0)]


def _score_histogram(q: _Query, bins: int = 10) -> Table:
    lo, hi = q.conn.execute(
        "SELECT MIN(score), MAX(score) FROM merges WHERE score IS NOT NULL"
    ).fetchone()
    rows: list[list[Any]] = []
    if lo is not None:
        lo_f, hi_f = float(lo), float(hi)
        if lo_f >= 0.0 and hi_f <= 1.0:
            lo_f, hi_f = 0.0, 1.0
        width = (hi_f - lo_f) / bins or 1.0
        counts = dict(
            q.conn.execute(
                "SELECT MIN(CAST((score - ?) / ? AS INTEGER), ?), COUNT(*) FROM merges "
                "WHERE score IS NOT NULL GROUP BY 1",
                (lo_f, width, bins - 1),
            ).fetchall()
        )
        first = min(counts) if lo_f == 0.0 and hi_f == 1.0 else 0
        for b in range(first, bins):
            a = lo_f + b * width
            rows.append([f"{a:.2f}-{a + width:.2f}", int(counts.get(b, 0))])
    return Table(
        title="Match score distribution",
        columns=["score", "merges"],
        rows=rows,
        chart="bar",
        note=None if rows else "no scored merges yet",
    )


# -- segments ------------------------------------------------------------------------------


def _segments(q: _Query) -> tuple[str, list[Table]]:
    live = q.live_count()
    current = q.rows(
        "SELECT name, kind, COALESCE(n, 0) FROM ("
        "SELECT s.name AS name, s.kind AS kind, m.n AS n FROM segments s LEFT JOIN "
        "(SELECT segment, COUNT(*) AS n FROM memberships WHERE exited_at IS NULL GROUP BY 1) m "
        "ON m.segment = s.name UNION ALL "
        "SELECT segment, '(unknown)', COUNT(*) FROM memberships WHERE exited_at IS NULL "
        "AND segment NOT IN (SELECT name FROM segments) GROUP BY 1"
        ") ORDER BY 3 DESC, 1"
    )
    tables = [
        Table(
            title="Segment sizes",
            columns=["segment", "members", "share %", "kind"],
            rows=[[n, c, _pct(c, live), k] for n, k, c in current],
            chart="bar",
        )
    ]
    top = [r[0] for r in current[: q.o.top]]
    tables.extend(_segment_runs(q, top[:8]))
    tables.append(_overlap(q, top))
    tables.extend(_rfm_grid(q))
    return "Segments", tables


def _run_of(kind: str) -> str:
    """The run a membership entered or exited in; by time when the run id is missing."""
    return (
        f"COALESCE({kind}_run, (SELECT MAX(r.id) FROM segment_runs r "
        f"WHERE r.started_at <= m.{kind}_at), 0)"
    )


def _segment_runs(q: _Query, segments: list[str]) -> list[Table]:
    runs = q.rows("SELECT id, as_of FROM segment_runs ORDER BY id")
    if not segments or not runs:
        return [
            Table(
                title="Segment sizes over runs",
                columns=["run", "as of", *segments],
                rows=[],
                chart="line",
                note="no segment runs yet",
            )
        ]
    marks = ", ".join("?" * len(segments))
    delta: dict[tuple[str, int], list[int]] = {}
    for seg, run, n in q.conn.execute(
        f"SELECT segment, {_run_of('entered')}, COUNT(*) FROM memberships m "
        f"WHERE segment IN ({marks}) GROUP BY 1, 2",
        segments,
    ):
        delta.setdefault((seg, int(run)), [0, 0])[0] += int(n)
    for seg, run, n in q.conn.execute(
        f"SELECT segment, {_run_of('exited')}, COUNT(*) FROM memberships m "
        f"WHERE segment IN ({marks}) AND exited_at IS NOT NULL GROUP BY 1, 2",
        segments,
    ):
        delta.setdefault((seg, int(run)), [0, 0])[1] += int(n)
    size = {
        s: sum(v[0] - v[1] for (s2, r), v in delta.items() if s2 == s and r == 0) for s in segments
    }
    wide: list[list[Any]] = []
    moves: list[list[Any]] = []
    for run_id, as_of in runs:
        row: list[Any] = [f"#{run_id}", _day(as_of)]
        for s in segments:
            entered, exited = delta.get((s, int(run_id)), [0, 0])
            size[s] += entered - exited
            row.append(size[s])
            moves.append([f"#{run_id}", _day(as_of), s, entered, exited, size[s]])
        wide.append(row)
    shown = wide[-q.o.max_runs :]
    cut = len(wide) - len(shown)
    keep = {r[0] for r in shown}
    return [
        Table(
            title="Segment sizes over runs",
            columns=["run", "as of", *segments],
            rows=shown,
            chart="line",
            chart_columns=list(segments),
            note=f"{cut} earlier runs not shown" if cut else None,
        ),
        Table(
            title="Entered and exited per run",
            columns=["run", "as of", "segment", "entered", "exited", "size"],
            rows=[m for m in moves if m[0] in keep],
        ),
    ]


def _day(epoch: Any) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(int(epoch), UTC).date().isoformat()


def _overlap(q: _Query, segments: list[str]) -> Table:
    cells: dict[tuple[str, str], int] = {}
    if segments:
        marks = ", ".join("?" * len(segments))
        for a, b, n in q.conn.execute(
            f"SELECT a.segment, b.segment, COUNT(*) FROM memberships a JOIN memberships b "
            f"ON a.contact_id = b.contact_id AND a.segment <= b.segment "
            f"WHERE a.exited_at IS NULL AND b.exited_at IS NULL "
            f"AND a.segment IN ({marks}) AND b.segment IN ({marks}) GROUP BY 1, 2",
            [*segments, *segments],
        ):
            cells[(a, b)] = cells[(b, a)] = int(n)
    return Table(
        title="Segment overlap",
        columns=["segment", *segments],
        rows=[[a, *(cells.get((a, b), 0) for b in segments)] for a in segments],
        chart="heatmap",
        note="current members in both segments; the diagonal is each segment's size",
    )


def _rfm_axes(q: _Query) -> tuple[str, str] | None:
    found: dict[str, str] = {}
    for name in q.attributes():
        for axis, pattern in _RFM_PATTERNS.items():
            if axis not in found and pattern.match(name.lower()):
                found[axis] = name
    if "r" in found and "f" in found:
        return found["r"], found["f"]
    return None


def _rfm_grid(q: _Query) -> list[Table]:
    axes = _rfm_axes(q)
    if axes is None:
        return []
    r_name, f_name = axes
    attr = "CAST(json_extract(CAST({t}attrs AS TEXT), ?) AS INTEGER)"
    cells = q.rows(
        f"SELECT r, f, SUM(n), SUM(v) FROM ("
        f"SELECT {attr.format(t='')} AS r, {attr.format(t='')} AS f, 1 AS n, 0.0 AS v "
        "FROM contacts WHERE merged_into IS NULL UNION ALL "
        f"SELECT {attr.format(t='c.')}, {attr.format(t='c.')}, 0, rv.v FROM ({_REVENUE}) rv "
        "CROSS JOIN contacts c ON c.id = rv.owner WHERE c.merged_into IS NULL"
        ") WHERE r IS NOT NULL AND f IS NOT NULL GROUP BY 1, 2",
        (
            _json_path(r_name),
            _json_path(f_name),
            q.o.purchase_kind,
            _json_path(r_name),
            _json_path(f_name),
        ),
    )
    rs = sorted({int(c[0]) for c in cells}, reverse=True)
    fs = sorted({int(c[1]) for c in cells})
    count = {(int(c[0]), int(c[1])): int(c[2]) for c in cells}
    revenue = {(int(c[0]), int(c[1])): _money(c[3]) for c in cells}
    cols = ["R \\ F", *(f"F{f}" for f in fs)]
    note = f"recency from {r_name!r} (rows), frequency from {f_name!r} (columns)"
    return [
        Table(
            title="RFM grid: contacts",
            columns=cols,
            rows=[[f"R{r}", *(count.get((r, f), 0) for f in fs)] for r in rs],
            chart="heatmap",
            note=note,
        ),
        Table(
            title="RFM grid: revenue",
            columns=cols,
            rows=[[f"R{r}", *(revenue.get((r, f), 0.0) for f in fs)] for r in rs],
            chart="heatmap",
            note=note,
        ),
    ]


# -- campaigns -----------------------------------------------------------------------------


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _campaigns(q: _Query) -> tuple[str, list[Table]]:
    window = q.o.conversion_days * _DAY
    sent, delivered = _in(SENT_STATUSES), _in(DELIVERED_STATUSES)
    rows = q.rows(
        "SELECT COALESCE(campaign, '(none)'), channel, COUNT(*), "
        f"SUM(status IN {sent}), SUM(status IN {delivered}), SUM(status = 'bounced'), "
        "SUM(status = 'complained'), SUM(status = 'failed'), "
        f"SUM(status IN {sent} AND status <> 'bounced' AND EXISTS ("
        "SELECT 1 FROM interactions i WHERE i.kind = ? AND i.contact_id = "
        "COALESCE((SELECT merged_into FROM contacts c WHERE c.id = d.contact_id), d.contact_id) "
        "AND i.occurred_at >= d.created_at AND i.occurred_at < d.created_at + ?)) "
        "FROM deliveries d GROUP BY 1, 2 ORDER BY 1, 2",
        (q.o.purchase_kind, window),
    )
    totals = [sum(int(r[i] or 0) for r in rows) for i in range(2, 9)]
    queued, n_sent, n_deliv, bounced, complained, failed, converted = totals
    funnel = (
        []
        if not queued
        else [
            ["queued", queued, _pct(queued, queued)],
            ["sent", n_sent, _pct(n_sent, queued)],
            ["delivered", n_deliv, _pct(n_deliv, queued)],
            ["bounced", bounced, _pct(bounced, queued)],
            ["complained", complained, _pct(complained, queued)],
            ["converted", converted, _pct(converted, queued)],
        ]
    )
    by = [
        [
            c,
            ch,
            int(qd),
            int(s or 0),
            int(d or 0),
            int(b or 0),
            int(cp or 0),
            int(f or 0),
            int(cv or 0),
            _pct(d, s),
            _pct(cv, s),
        ]
        for c, ch, qd, s, d, b, cp, f, cv in rows
    ]
    rule = (
        f"converted: a {q.o.purchase_kind!r} interaction within {q.o.conversion_days} days "
        "after the message was queued"
    )
    tables = [
        Table(
            title="Campaign funnel",
            columns=["stage", "messages", "% of queued"],
            rows=funnel,
            chart="funnel",
            note=(rule + (f"; {failed} failed" if failed else ""))
            if queued
            else "no messages in the outbox yet",
        ),
        Table(
            title="Funnel by campaign and channel",
            columns=[
                "campaign",
                "channel",
                "queued",
                "sent",
                "delivered",
                "bounced",
                "complained",
                "failed",
                "converted",
                "delivery %",
                "conversion %",
            ],
            rows=by,
            note=rule + "; rates are shares of the messages sent",
        ),
        _engagement(q),
    ]
    return "Campaigns", tables


def _engagement(q: _Query) -> Table:
    window = q.o.conversion_days * _DAY
    rows = q.rows(
        "WITH e AS (SELECT json_extract(CAST(props AS TEXT), '$.campaign') AS c, kind, "
        "owner, occurred_at FROM (" + _OWNED + ") WHERE kind IN ('email_open', 'email_click')), "
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
        (q.o.purchase_kind, window, q.o.max_months),
    )
    rows.reverse()
    return Table(
        title="Email engagement by campaign",
        columns=["campaign", "opened", "clicked", "click %", "converted", "conversion %"],
        rows=[[c, o, k, _pct(k, o), v, _pct(v, k)] for c, o, k, v in rows],
        chart="line",
        chart_columns=["click %", "conversion %"],
        note=(
            "contacts who opened or clicked, from the timeline; converted: a "
            f"{q.o.purchase_kind!r} within {q.o.conversion_days} days after the first click"
        ),
    )


# -- sales ---------------------------------------------------------------------------------


def _sales(q: _Query) -> tuple[str, list[Table]]:
    pk = q.o.purchase_kind
    live = q.live_count()
    customers = int(
        q.one(f"SELECT COUNT(DISTINCT owner) FROM ({_OWNED}) WHERE kind = ?", (pk,)) or 0
    )
    tables = [
        Table(
            title="Lead conversion",
            columns=["measure", "value"],
            rows=[
                ["contacts", live],
                ["customers (bought at least once)", customers],
                ["conversion %", _pct(customers, live)],
            ],
        )
    ]
    first_touch = q.rows(
        f"SELECT {_month('t')}, COUNT(*), SUM(b) FROM (SELECT owner, MIN(occurred_at) AS t, "
        f"MAX(kind = ?) AS b FROM ({_OWNED}) GROUP BY owner) GROUP BY 1 ORDER BY 1",
        (pk,),
    )
    filled, cut = _fill_months(first_touch, 2, q.o.max_months)
    tables.append(
        Table(
            title="Conversion by first-touch month",
            columns=["month", "contacts", "converted", "conversion %"],
            rows=[[m, n, c, _pct(c, n)] for m, n, c in filled],
            chart="line",
            chart_columns=["conversion %"],
            note="contacts by the month of their first interaction; converted: bought since"
            + (f"; {cut} earlier months not shown" if cut else ""),
        )
    )
    monthly = q.rows(
        f"SELECT {_month('occurred_at')}, SUM(amount), COUNT(*), COUNT(DISTINCT owner) "
        f"FROM ({_OWNED}) WHERE kind = ? GROUP BY 1 ORDER BY 1",
        (pk,),
    )
    filled, cut = _fill_months(monthly, 3, q.o.max_months)
    currencies = [
        r[0]
        for r in q.rows(
            "SELECT DISTINCT json_extract(CAST(props AS TEXT), '$.currency') FROM interactions "
            "WHERE kind = ? AND props IS NOT NULL ORDER BY 1",
            (pk,),
        )
        if r[0] is not None
    ]
    mixed = (
        f"amounts in {', '.join(currencies)} summed as recorded" if len(currencies) > 1 else None
    )
    tables.append(
        Table(
            title="Revenue by month",
            columns=["month", "revenue", "orders", "customers"],
            rows=[[m, _money(v), o, c] for m, v, o, c in filled],
            chart="line",
            chart_columns=["revenue"],
            note="; ".join(
                x for x in (mixed, f"{cut} earlier months not shown" if cut else None) if x
            )
            or None,
        )
    )
    # Each revenue row drives one indexed look-up (CROSS JOIN keeps that order).
    by_stage = q.rows(
        "SELECT stage, SUM(n), SUM(b), SUM(v) FROM ("
        "SELECT COALESCE(lifecycle_stage, '(none)') AS stage, 1 AS n, 0 AS b, 0.0 AS v "
        "FROM contacts WHERE merged_into IS NULL UNION ALL "
        f"SELECT COALESCE(c.lifecycle_stage, '(none)'), 0, 1, rv.v FROM ({_REVENUE}) rv "
        "CROSS JOIN contacts c ON c.id = rv.owner WHERE c.merged_into IS NULL"
        ") GROUP BY 1 ORDER BY 4 DESC, 1",
        (pk,),
    )
    tables.append(
        Table(
            title="Revenue by lifecycle stage",
            columns=["stage", "revenue", "contacts", "customers", "revenue per contact"],
            rows=[
                [s, _money(v), n, b, round(float(v or 0) / n, 2) if n else None]
                for s, n, b, v in by_stage
            ],
            chart="bar",
        )
    )
    by_segment = q.rows(
        "SELECT segment, SUM(n), SUM(b), SUM(v) FROM ("
        "SELECT segment, 1 AS n, 0 AS b, 0.0 AS v FROM memberships WHERE exited_at IS NULL "
        f"UNION ALL SELECT m.segment, 0, 1, rv.v FROM ({_REVENUE}) rv "
        "CROSS JOIN memberships m ON m.contact_id = rv.owner WHERE m.exited_at IS NULL"
        ") GROUP BY 1 ORDER BY 4 DESC, 1 LIMIT ?",
        (pk, q.o.top),
    )
    tables.append(
        Table(
            title="Revenue by segment",
            columns=["segment", "revenue", "members", "customers"],
            rows=[[s, _money(v), n, b] for s, n, b, v in by_segment],
            chart="bar",
            note="current members' revenue over all time; a contact counts in each of its segments",
        )
    )
    tables.append(_cohorts(q))
    tables.append(_feedback(q))
    return "Sales and service", tables


def _cohorts(q: _Query) -> Table:
    mi = _month_index("occurred_at")
    rows = q.rows(
        f"WITH p AS (SELECT DISTINCT owner, {mi} AS m FROM ({_OWNED}) WHERE kind = ?), "
        "f AS (SELECT owner, MIN(m) AS fm FROM p GROUP BY 1) "
        "SELECT f.fm, p.m - f.fm, COUNT(*) FROM p JOIN f ON f.owner = p.owner GROUP BY 1, 2",
        (q.o.purchase_kind,),
    )
    width = q.o.cohort_months
    counts = {(int(a), int(b)): int(n) for a, b, n in rows}
    cohorts = sorted({a for a, _ in counts})
    last = max((a + b for a, b in counts), default=0)
    shown = cohorts[-width:]
    out = []
    for c in shown:
        size = counts.get((c, 0), 0)
        cells: list[Any] = []
        for k in range(width):
            cells.append(_pct(counts.get((c, k), 0), size) if c + k <= last else None)
        out.append([_label_month(c), size, *cells])
    return Table(
        title="Retention by first-purchase month",
        columns=["cohort", "customers", *(f"month {k}" for k in range(width))],
        rows=out,
        chart="cohort",
        note="share of each cohort's customers who bought again k months after their first month",
    )


def _feedback(q: _Query) -> Table:
    rows = q.rows(
        f"SELECT {_month('occurred_at')}, COUNT(*), AVG(s), SUM(s >= 9), SUM(s <= 6), "
        "SUM(s >= 8), SUM(s >= 4), MAX(s) FROM (SELECT occurred_at, "
        "json_extract(CAST(props AS TEXT), ?) AS s FROM interactions WHERE kind = ?) "
        "WHERE typeof(s) IN ('integer', 'real') GROUP BY 1 ORDER BY 1",
        ("$." + q.o.score_property, q.o.feedback_kind),
    )
    ten = any(float(r[7]) > 5 for r in rows)
    out = []
    for m, n, avg, promo, detr, top8, top4, _mx in rows[-q.o.max_months :]:
        nps = round(100.0 * (promo - detr) / n, 1) if ten else None
        csat = _pct(top8 if ten else top4, n)
        out.append([m, nps, csat, round(float(avg), 2), n])
    return Table(
        title="Feedback scores by month",
        columns=["month", "NPS", "CSAT %", "average score", "responses"],
        rows=out,
        chart="line",
        chart_columns=["NPS", "CSAT %"],
        note=(
            f"{q.o.feedback_kind!r} interactions' {q.o.score_property!r}; "
            + ("NPS: % 9-10 minus % 0-6; CSAT: % 8-10" if ten else "CSAT: % 4-5 (1-5 scale)")
        ),
    )


_BUILDERS: dict[str, Callable[[_Query], tuple[str, list[Table]]]] = {
    "summary": _summary,
    "customers": _customers,
    "quality": _quality,
    "segments": _segments,
    "campaigns": _campaigns,
    "sales": _sales,
}

__all__ = [
    "ALL",
    "CONTACT_COLUMNS",
    "DELIVERED_STATUSES",
    "REPORTS",
    "SENT_STATUSES",
    "SIGNUP_ATTRIBUTES",
    "Progress",
    "ReportOptions",
    "build_report",
]
