"""Reports as plain data: the kernel computes numbers, reporters render them.

Each report is a :class:`crmkit.kinds.Report`: a title and tables of plain
values (strings, numbers, ``None``). Every table is computed from a handful of
aggregates the store computes (:class:`crmkit.store.base.ReportQueries`), so a
report over a million contacts reads the tables once per section and never
loops over contacts in Python.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crmkit.errors import ConfigError
from crmkit.records import CONTACT_FIELDS, Report, Table

if TYPE_CHECKING:
    from crmkit.kernel import Kernel
    from crmkit.store.base import Store

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
    q = _Query(kernel.store, options or ReportOptions())
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
    """The store, the options and the attribute types every section uses."""

    def __init__(self, store: Store, options: ReportOptions) -> None:
        self.store = store
        self.o = options
        self._attrs: dict[str, str] | None = None

    def attributes(self) -> dict[str, str]:
        """Declared attribute names and types, by name."""
        if self._attrs is None:
            self._attrs = {str(n): str(t) for n, t in sorted(self.store.attribute_types().items())}
        return self._attrs

    def live_count(self) -> int:
        return self.store.count_contacts()


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
    st = q.store
    live = q.live_count()
    everyone = st.count_contacts(include_merged=True)
    revenue, orders, buyers = st.purchase_totals(q.o.purchase_kind)
    tables = [
        Table(
            title="Customer base",
            columns=["measure", "value"],
            rows=[
                ["contacts", live],
                ["merged away", everyone - live],
                ["companies", st.count_companies()],
                ["interactions", st.count_interactions()],
                ["customers (bought at least once)", buyers],
                ["orders", orders],
                ["revenue", _money(revenue)],
                ["segments", len(st.list_segments())],
                ["messages in the outbox", sum(st.delivery_counts().values())],
            ],
        ),
        Table(
            title="Contacts by lifecycle stage",
            columns=["stage", "contacts"],
            rows=st.contact_breakdown("lifecycle_stage"),
            chart="bar",
        ),
        Table(
            title="Contacts by country",
            columns=["country", "contacts"],
            rows=st.contact_breakdown("country", limit=q.o.top),
            chart="bar",
        ),
        Table(
            title="Interactions by kind",
            columns=["kind", "count", "amount"],
            rows=[[k, c, _money(a)] for k, c, a in st.interaction_kinds()],
        ),
        Table(
            title="Outbox",
            columns=["channel", "status", "messages"],
            rows=st.delivery_status_counts(),
        ),
    ]
    return "crmkit summary", tables


# -- customers -----------------------------------------------------------------------------


def _customers(q: _Query) -> tuple[str, list[Table]]:
    st = q.store
    live = q.live_count()
    sources = st.contact_breakdown("source")
    stages = st.contact_breakdown("lifecycle_stage")
    countries = st.contact_breakdown("country", blank_as_none=True)
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
    added = st.contacts_added_by_month()
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
        rows = st.attribute_months(signup)
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
    attrs = [a for a in q.attributes() if a not in CONTACT_COLUMNS]
    names = [*CONTACT_COLUMNS, *attrs]
    counts = q.store.filled_counts(names)
    rows = [[n, _pct(c, live), c] for n, c in zip(names, counts, strict=True)]
    return Table(
        title="Field completeness",
        columns=["field", "filled %", "filled"],
        rows=rows,
        chart="bar",
        note=f"share of the {live} live contacts with a value",
    )


# -- quality -------------------------------------------------------------------------------


def _quality(q: _Query) -> tuple[str, list[Table]]:
    st = q.store
    applied, undone, records, avg_score = st.merge_totals()
    away = st.count_contacts(include_merged=True) - q.live_count()
    tables = [
        Table(
            title="Merges",
            columns=["measure", "value"],
            rows=[
                ["merges applied", applied],
                ["merges undone", undone],
                ["merges standing", applied - undone],
                ["records merged by standing merges", records],
                ["contacts merged away", away],
                [
                    "average match score",
                    round(float(avg_score), 4) if avg_score is not None else None,
                ],
            ],
        )
    ]
    months = st.merges_by_month()
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
                [label, *st.duplicate_groups(cols, ignore_case=_NAMES)]
                for label, cols in (
                    ("same phone", ("phone",)),
                    ("same name and postcode", (*_NAMES, "postcode")),
                    ("same name and birth date", (*_NAMES, "birth_date")),
                )
            ],
            note="live contacts sharing exact values; a hint for the next dedupe run",
        )
    )
    return "Data quality", tables


_NAMES = ("first_name", "last_name")
"""Fields compared case-insensitively when looking for duplicates left."""


def _score_histogram(q: _Query, bins: int = 10) -> Table:
    lo, hi = q.store.merge_score_range()
    rows: list[list[Any]] = []
    if lo is not None and hi is not None:
        lo_f, hi_f = float(lo), float(hi)
        if lo_f >= 0.0 and hi_f <= 1.0:
            lo_f, hi_f = 0.0, 1.0
        width = (hi_f - lo_f) / bins or 1.0
        counts = q.store.merge_score_bins(lo_f, width, bins)
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
    current = q.store.segment_sizes()
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


def _segment_runs(q: _Query, segments: list[str]) -> list[Table]:
    runs = q.store.segment_runs()
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
    delta: dict[tuple[str, int], list[int]] = {}
    for seg, run, entered, exited in q.store.segment_moves(segments):
        moved = delta.setdefault((seg, run), [0, 0])
        moved[0] += entered
        moved[1] += exited
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
        for a, b, n in q.store.segment_overlap(segments):
            cells[(a, b)] = cells[(b, a)] = n
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
    cells = q.store.rfm_cells(r_name, f_name, kind=q.o.purchase_kind)
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


def _campaigns(q: _Query) -> tuple[str, list[Table]]:
    window = q.o.conversion_days * _DAY
    rows = q.store.campaign_funnel(
        sent=SENT_STATUSES, delivered=DELIVERED_STATUSES, kind=q.o.purchase_kind, window=window
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
    rows = q.store.email_engagement(kind=q.o.purchase_kind, window=window, limit=q.o.max_months)
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
    st = q.store
    pk = q.o.purchase_kind
    live = q.live_count()
    customers = st.purchasers(pk)
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
    first_touch = st.first_touch_by_month(pk)
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
    monthly = st.revenue_by_month(pk)
    filled, cut = _fill_months(monthly, 3, q.o.max_months)
    currencies = [str(c) for c in st.property_values(pk, "currency")]
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
    by_stage = st.revenue_by_stage(pk)
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
    by_segment = st.revenue_by_segment(pk, limit=q.o.top)
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
    width = q.o.cohort_months
    counts = {(a, b): n for a, b, n in q.store.purchase_cohorts(q.o.purchase_kind)}
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
    rows = q.store.feedback_by_month(q.o.feedback_kind, q.o.score_property)
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
