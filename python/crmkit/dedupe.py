"""Find duplicate contacts: over the store, or over a CSV/JSONL file with no store.

The matching itself runs in Rust (:class:`crmkit._core.Matcher`: blocking,
Fellegi-Sunter weights trained by EM, clusters). This module validates the
settings, turns stored (display-form) values into match keys, and shapes the
result. Example::

    from crmkit import Kernel
    from crmkit.dedupe import DedupeConfig, find_duplicates

    with Kernel.open("crm.db") as k:
        found = find_duplicates(k.store, DedupeConfig(threshold=0.8))
        for cluster_id, ids in found.clusters.items():
            print(cluster_id, ids)

Messages and warnings name fields and row numbers, never values.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crmkit import _core
from crmkit.bulk import collector_paused
from crmkit.errors import ConfigError, SourceError
from crmkit.plugins import format_validation_error

if TYPE_CHECKING:
    from crmkit.kernel import Kernel
    from crmkit.store.base import Store
    from crmkit.workflow import DedupeSection

MatchField = Literal[
    "first_name",
    "last_name",
    "email",
    "phone",
    "postcode",
    "city",
    "street",
    "birth_date",
    "company",
    "country",
    "region",
]
MATCH_FIELDS: tuple[str, ...] = get_args(MatchField)
"""The contact fields the matcher compares."""

_TRANSFORMS = frozenset(
    {
        "exact",
        "phonetic",
        "initial",
        "year",
        "local",
        "domain",
        "nick",
        "nickinitial",
        "letters",
        "sorted",
    }
)
_PART = re.compile(r"^([a-z_]+(?:\+[a-z_]+)*)(?::([a-z]+\d*))?$")

Progress = Callable[[str], None]
"""Called with the name of each long step as it starts (``"reading"``, ``"matching"`` …)."""


class DedupeConfig(BaseModel):
    """Dedupe settings (the ``[dedupe]`` workflow section and the CLI options).

    Every setting is optional; the defaults suit contacts. ``blocking`` is a list
    of rules, each a list of ``field[+field][:transform]`` parts (transforms:
    ``exact``, ``prefixN``, ``suffixN``, ``phonetic``, ``initial``, ``year``, ``local``,
    ``domain``, ``letters``, ``nick``, ``nickinitial``, ``sorted``); pairs sharing every part of any rule
    are compared.
    """

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Match probability at or above which two contacts are duplicates (default 0.5)."""
    fields: list[MatchField] | None = None
    """The fields compared (default: every field present)."""
    blocking: list[list[str]] | None = None
    """Blocking rules (default: the engine's rules for contacts)."""
    max_block: int | None = Field(default=None, ge=2)
    """Blocks larger than this are compared within a sorted window only."""
    window: int | None = Field(default=None, ge=1)
    """The sorted window's width for oversized blocks."""
    max_pairs_per_record: float | None = Field(default=None, gt=0)
    """Hard cap on candidate pairs per record (default 3): the rules yielding
    the fewest pairs go in first and the rest are cut, with a warning."""
    guard: float | None = Field(default=None, ge=0.0, le=1.0)
    """Chaining guard (default 0.5; 0 turns it off, giving plain connected
    components): two clusters join only when the match weights of all pairs
    between them sum to more than zero, so a namesake who disagrees with the
    rest of a cluster stays out; joins too large to weigh (over 4,096 pairs)
    need this share of their pairs matched."""
    seed: int | None = None
    """Random seed of the training sample."""
    keep_undone_apart: bool = True
    """Over the store: the contacts of a merge that was undone never share a
    cluster again (a person split them); ``false`` lets them."""

    @field_validator("blocking")
    @classmethod
    def _rules(cls, rules: list[list[str]] | None) -> list[list[str]] | None:
        if rules is None:
            return None
        if not rules:
            raise ValueError("give at least one blocking rule, or leave blocking out")
        for i, rule in enumerate(rules):
            if not rule:
                raise ValueError(f"rule {i} is empty")
            for part in rule:
                m = _PART.match(part)
                if m is None:
                    raise ValueError(f"rule {i}: {part!r} is not field[+field][:transform]")
                for f in m.group(1).split("+"):
                    if f not in MATCH_FIELDS:
                        raise ValueError(
                            f"rule {i}: unknown field {f!r} (known: {', '.join(MATCH_FIELDS)})"
                        )
                t = m.group(2)
                if (
                    t is not None
                    and t not in _TRANSFORMS
                    and not re.fullmatch(r"(prefix|suffix)\d+", t)
                ):
                    raise ValueError(f"rule {i}: unknown transform {t!r}")
        return rules

    def engine_config(self) -> dict[str, Any]:
        """The settings as the Rust matcher takes them (unset keys left out)."""
        return {k: v for k, v in self.model_dump().items() if v is not None and k in _ENGINE_KEYS}


_ENGINE_KEYS = frozenset(
    {
        "threshold",
        "fields",
        "blocking",
        "max_block",
        "window",
        "max_pairs_per_record",
        "guard",
        "seed",
    }
)


def parse_config(data: Mapping[str, Any] | None, *, where: str = "dedupe") -> DedupeConfig:
    """Validate ``data`` into a :class:`DedupeConfig`; errors name the field."""
    try:
        return DedupeConfig.model_validate(dict(data or {}))
    except ValidationError as exc:
        lines = format_validation_error(exc).splitlines()
        raise ConfigError(
            f"{where}: invalid settings: {'; '.join(x.strip() for x in lines)}"
        ) from None


class Pair(msgspec.Struct, frozen=True):
    """Two contact ids judged duplicates, with the match probability."""

    left: int
    right: int
    probability: float


class DedupeResult(msgspec.Struct, kw_only=True):
    """Clusters of duplicates and the scored pairs behind them (ids only).

    ``clusters`` maps a cluster id (its smallest contact id, stable across runs
    while the cluster is unchanged) to its ids in ascending order; only clusters
    of two or more are listed. ``assignment`` holds every id's cluster id.
    """

    ids: list[int]
    assignment: list[int]
    clusters: dict[int, list[int]]
    pairs: list[Pair]
    warnings: list[str]
    stats: dict[str, float]
    matcher: Any = None
    """The fitted :class:`crmkit._core.Matcher` (for :func:`explain`), or None."""

    @property
    def duplicates(self) -> int:
        """Records that would be merged away (cluster sizes minus one, summed)."""
        return sum(len(v) - 1 for v in self.clusters.values())

    def cluster_pairs(self) -> dict[int, list[Pair]]:
        """The scored pairs inside each cluster, by cluster id."""
        where = dict(zip(self.ids, self.assignment, strict=True))
        out: dict[int, list[Pair]] = {}
        for p in self.pairs:
            c = where.get(p.left)
            if c is not None and c == where.get(p.right):
                out.setdefault(c, []).append(p)
        return out

    def summary(self) -> dict[str, Any]:
        """Counts only (no personal data), for logs, audit and ``--json``."""
        sizes: dict[int, int] = {}
        for v in self.clusters.values():
            sizes[len(v)] = sizes.get(len(v), 0) + 1
        return {
            "records": len(self.ids),
            "clusters": len(self.clusters),
            "duplicates": self.duplicates,
            "pairs": len(self.pairs),
            "cluster_sizes": {str(k): v for k, v in sorted(sizes.items())},
            "warnings": list(self.warnings),
            "stats": dict(self.stats),
        }


# -- labelled pairs ------------------------------------------------------------


class LabelledPair(msgspec.Struct, frozen=True):
    """Two records a person has judged: the same person (``match``) or not.

    Over the store, ``left`` and ``right`` are contact ids; over a file, they
    are 1-based row numbers (the numbering of ``cluster_id``). Labelled pairs
    join the unlabelled ones when m and u are estimated, as pairs whose class
    is known, and a pair labelled distinct never shares a cluster.
    """

    left: int
    right: int
    match: bool
    where: str = ""
    """Where the label was read (``file:line``), for messages."""


_LABEL_COLUMNS = {
    "left": ("left", "a", "id_a", "left_id", "id1", "id_l"),
    "right": ("right", "b", "id_b", "right_id", "id2", "id_r"),
    "match": ("match", "is_match", "label", "same", "duplicate"),
}
_YES = frozenset({"1", "yes", "y", "true", "t", "match", "same", "duplicate"})
_NO = frozenset({"0", "no", "n", "false", "f", "distinct", "different", "non-match", "no-match"})


def read_labels(path: str | Path) -> list[LabelledPair]:
    """Read labelled pairs from a CSV file with a header row.

    The columns are ``left``, ``right`` (ids, or row numbers for a file) and
    ``match`` (``yes``/``no``, ``true``/``false``, ``1``/``0``, ``match``/
    ``distinct``); other columns (a reviewer, a note) are ignored, as are
    blank lines. An error names the file, the line and the column.
    """
    import csv

    src = Path(path)
    try:
        text = src.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SourceError(f"{src}: no such file") from None
    except UnicodeDecodeError:
        raise SourceError(f"{src}: not UTF-8 text") from None
    except OSError as exc:
        raise SourceError(f"{src}: cannot read ({exc.strerror})") from None
    rows = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(rows, [])]
    at: dict[str, int] = {}
    for col, names in _LABEL_COLUMNS.items():
        found = [i for i, h in enumerate(header) if h in names]
        if not found:
            raise SourceError(f"{src}:1: no '{col}' column (the header needs left, right, match)")
        at[col] = found[0]
    out: list[LabelledPair] = []
    for line, row in enumerate(rows, start=2):
        if not any(c.strip() for c in row):
            continue
        where = f"{src}:{line}"
        if len(row) <= max(at.values()):
            raise SourceError(f"{where}: expected {len(header)} fields, found {len(row)}")
        ids: list[int] = []
        for col in ("left", "right"):
            cell = row[at[col]].strip()
            try:
                ids.append(int(cell))
            except ValueError:
                raise SourceError(f"{where}: {col}: not a whole number") from None
        verdict = row[at["match"]].strip().lower()
        if verdict not in _YES and verdict not in _NO:
            raise SourceError(f"{where}: match: expected yes or no")
        if ids[0] == ids[1]:
            raise SourceError(f"{where}: left and right are the same record")
        out.append(LabelledPair(ids[0], ids[1], verdict in _YES, where))
    return out


def labels_from(given: Sequence[LabelledPair] | str | Path | None) -> Sequence[LabelledPair]:
    """Labelled pairs as given, or read from the CSV at that path
    (:func:`read_labels`); none for None."""
    if given is None:
        return []
    return read_labels(given) if isinstance(given, str | Path) else given


def _reviewed(
    store: Store, labels: Sequence[LabelledPair], *, undone: bool
) -> tuple[list[LabelledPair], list[tuple[int, int]], int]:
    """The pairs reviewed in the store (:meth:`Store.label_pairs`) then
    ``labels``, and (with ``undone``) the pairs of undone merges to keep
    apart, each id replaced by the live contact it was merged into since.
    Pairs now inside one contact are dropped; the labels naming a contact
    that no longer exists (erased, or an unknown id) are counted."""
    every = [*(LabelledPair(a, b, same) for a, b, same in store.labelled_pairs()), *labels]
    apart = [
        pair
        for group in (store.undone_merges() if undone else [])
        for pair in itertools.combinations(group, 2)
    ]
    ids = {i for p in every for i in (p.left, p.right)} | {i for pair in apart for i in pair}
    to = store.resolve_ids(sorted(ids)) if ids else {}
    kept: list[LabelledPair] = []
    gone = 0
    for p in every:
        a, b = to.get(p.left), to.get(p.right)
        if a is None or b is None:
            gone += 1
        elif a != b:
            kept.append(LabelledPair(a, b, p.match, p.where))
    moved = [(to[a], to[b]) for a, b in apart if a in to and b in to and to[a] != to[b]]
    return kept, moved, gone


def _store_labels(
    labels: Sequence[LabelledPair], ids: Sequence[int]
) -> tuple[list[tuple[int, int, bool]], int]:
    """The labels whose two contacts are both live, and how many were not."""
    live = set(ids)
    used = [(p.left, p.right, p.match) for p in labels if p.left in live and p.right in live]
    return used, len(labels) - len(used)


def _file_labels(labels: Sequence[LabelledPair], rows: int) -> list[tuple[int, int, bool]]:
    """Row-numbered labels as the engine's 0-based row ids; an error names a
    row past the end."""
    out = []
    for i, p in enumerate(labels, start=1):
        for n in (p.left, p.right):
            if not 1 <= n <= rows:
                where = p.where or f"labelled pair {i}"
                raise ConfigError(f"{where}: row {n} is not among the {rows:,} rows read")
        out.append((p.left - 1, p.right - 1, p.match))
    return out


# -- match keys ----------------------------------------------------------------


def match_keys(
    columns: Mapping[str, Sequence[Any]], *, default_region: str = "US"
) -> dict[str, list[str | None]]:
    """Match keys for the matcher from contact columns (field → values).

    Names become ASCII-folded lowercase keys (a whole name in one name field
    with the other empty, ``"Baker, James"`` or ``"James Baker"``, is split
    into the two first), emails drop ``+tags`` and Gmail dots, phones keep
    their last nine digits (so national and international forms agree, read
    in the row's ``country`` or ``default_region``), dates become
    ``YYYY-MM-DD`` (``d/m/yyyy`` read as ``m/d/yyyy`` for the US or no
    country, ``d.m.yyyy``), US states and Canadian provinces named in full
    become their two-letter codes, other text is lowercased with its
    whitespace collapsed. Columns that are not match fields are left out.
    Values other than text (numbers) are read as their text. The same keys as
    :func:`dedupe_file` makes of a file's cells.
    """
    cells = {f: col for f, col in columns.items() if f in MATCH_FIELDS}
    if not cells:
        return {}
    try:
        return _core.match_keys_of_cells(cells, default_region=default_region)
    except TypeError:
        return _core.match_keys_of_cells(
            {f: _text(col) for f, col in cells.items()}, default_region=default_region
        )


def _text(col: Sequence[Any]) -> list[str | None]:
    return [None if v is None else str(v) for v in col]


# -- matching ------------------------------------------------------------------


def run_matcher(
    columns: Mapping[str, Sequence[Any]],
    ids: Sequence[int],
    config: DedupeConfig | None = None,
    *,
    progress: Progress | None = None,
    labels: Sequence[LabelledPair] = (),
    apart: Sequence[tuple[int, int]] = (),
) -> DedupeResult:
    """Match rows given as normalized columns; ``ids`` name the rows (unique).

    ``labels`` (pairs of ``ids``) refine the trained model, and the pairs
    they call distinct never share a cluster, nor do the pairs in ``apart``;
    labels naming an id not in ``ids`` are skipped, with a warning.
    """
    return _run_keys(
        match_keys(columns), ids, config, progress=progress, labels=labels, apart=apart
    )


def _skipped_warning(skipped: int) -> list[str]:
    if not skipped:
        return []
    return [f"{skipped} labelled pair(s) name a contact that does not exist (erased?): not used"]


def _distinct(labels: Sequence[tuple[int, int, bool]]) -> list[tuple[int, int]]:
    """The pairs ``(a, b, same)`` labels call different people (kept apart
    when clustering)."""
    return [(a, b) for a, b, same in labels if not same]


def _with_labels(stats: dict[str, float], used: int) -> dict[str, float]:
    if used:
        stats["labelled_pairs"] = float(used)
    return stats


def _fit(
    keys: dict[str, list[str | None]],
    ids: Sequence[int],
    cfg: DedupeConfig,
    labels: Sequence[LabelledPair],
) -> tuple[_core.Matcher, list[tuple[int, int, bool]], int]:
    """A matcher fitted on ``keys`` (emptied once read), the labels it used
    and how many it skipped."""
    if cfg.fields:
        for f in [f for f in keys if f not in cfg.fields]:
            del keys[f]
    if not keys:
        raise ConfigError(f"nothing to match on: no column holds any of {', '.join(MATCH_FIELDS)}")
    matcher = _new_matcher(cfg)
    used, skipped = _store_labels(labels, ids)
    matcher.fit(keys, list(ids), consume=True, labels=used)
    return matcher, used, skipped


def _run_keys(
    keys: dict[str, list[str | None]],
    ids: Sequence[int],
    config: DedupeConfig | None = None,
    *,
    progress: Progress | None = None,
    with_pairs: bool = True,
    labels: Sequence[LabelledPair] = (),
    apart: Sequence[tuple[int, int]] = (),
) -> DedupeResult:
    """:func:`run_matcher` on match keys; empties ``keys`` once the engine has
    read them, so their strings are freed before scoring. Without
    ``with_pairs`` the result lists no scored pairs and keeps no matcher
    (clusters only), which frees the engine's memory early. No cluster holds
    both ids of a pair in ``apart``, nor of a pair ``labels`` call distinct."""
    cfg = config or DedupeConfig()
    if progress:
        progress("matching")
    matcher, used, skipped = _fit(keys, ids, cfg, labels)
    res = matcher.predict(cfg.threshold, apart=[*apart, *_distinct(used)])
    assignment = list(res.clusters)
    groups: dict[int, list[int]] = {}
    for i, c in zip(ids, assignment, strict=True):
        groups.setdefault(c, []).append(i)
    clusters = {c: sorted(v) for c, v in sorted(groups.items()) if len(v) > 1}
    pairs = (
        [Pair(a, b, p) for a, b, p in zip(res.left, res.right, res.probability, strict=True)]
        if with_pairs
        else []
    )
    return DedupeResult(
        ids=list(ids),
        assignment=assignment,
        clusters=clusters,
        pairs=pairs,
        warnings=list(res.warnings) + _skipped_warning(skipped),
        stats=_with_labels(dict(res.stats), len(used)),
        matcher=matcher if with_pairs else None,
    )


@collector_paused()
def find_duplicates(
    store: Store,
    config: DedupeConfig | None = None,
    *,
    progress: Progress | None = None,
    labels: Sequence[LabelledPair] = (),
) -> DedupeResult:
    """Find clusters of duplicates among the store's live contacts.

    The pairs reviewed in the store (:meth:`Store.label_pairs`) and
    ``labels`` (see :func:`read_labels`) refine the trained model, and two
    contacts labelled distinct never share a cluster. A label naming a
    contact merged since applies to the contact it was merged into (and is
    dropped once both are one); one naming a contact that does not exist is
    skipped with a warning. The contacts of an undone merge stay apart too,
    unless ``config.keep_undone_apart`` is off.
    """
    cfg = config or DedupeConfig()
    fields = list(cfg.fields or MATCH_FIELDS)
    if progress:
        progress("reading")
    ids, cols = store.contact_columns(fields)
    if not ids:
        return DedupeResult(ids=[], assignment=[], clusters={}, pairs=[], warnings=[], stats={})
    labels, apart, gone = _reviewed(store, labels, undone=cfg.keep_undone_apart)
    res = run_matcher(cols, ids, cfg, progress=progress, labels=labels, apart=apart)
    res.warnings.extend(_skipped_warning(gone))
    return res


def explain(result: DedupeResult, left: int, right: int) -> dict[str, Any]:
    """Each field's comparison level and weight for contacts ``left`` and ``right``.

    Both ids must be among the records matched. The total weight is the prior
    plus every field's weight and term-frequency adjustment.
    """
    if result.matcher is None:
        raise ConfigError("nothing was matched; run dedupe over some records first")
    known = set(result.ids)
    for i in (left, right):
        if i not in known:
            raise ConfigError(f"contact {i} is not among the live contacts matched")
    out: dict[str, Any] = result.matcher.explain(left, right)
    return out


# -- matching new records against the store -------------------------------------


class Match(msgspec.Struct, frozen=True):
    """A live contact that a new record matches, with the match probability."""

    contact_id: int
    probability: float


class ContactIndex:
    """The store's live contacts, fitted and indexed once, to match new
    records against them without refitting (see :func:`build_index`).

    A record holds contact fields as an import reads them (``first_name``,
    ``email``, ``phone``, ``postcode``, ``country`` …): emails, phones and
    names are normalized here, phones read with the record's ``country``.
    Other keys are ignored. The index is a snapshot of the contacts when it
    was built; build it again to take in later ones.
    """

    def __init__(self, index: _core.MatchIndex, *, default_region: str = "US") -> None:
        self._index = index
        self._region = default_region

    def __len__(self) -> int:
        """The number of contacts indexed."""
        return len(self._index)

    def match(
        self, record: Mapping[str, Any], *, threshold: float | None = None, limit: int = 5
    ) -> list[Match]:
        """The ``limit`` contacts ``record`` most likely is, best first, at or
        above ``threshold`` (default: the dedupe threshold)."""
        return self.match_many([record], threshold=threshold, limit=limit)[0]

    def match_many(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        threshold: float | None = None,
        limit: int = 1,
    ) -> list[list[Match]]:
        """:meth:`match` for many records at once (in Rust, in parallel)."""
        columns: dict[str, list[Any]] = {f: [] for f in MATCH_FIELDS}
        for rec in records:
            for f, col in columns.items():
                col.append(rec.get(f))
        return self.match_columns(columns, threshold=threshold, limit=limit)

    def match_columns(
        self,
        columns: Mapping[str, Sequence[Any]],
        *,
        threshold: float | None = None,
        limit: int = 1,
    ) -> list[list[Match]]:
        """:meth:`match_many` for records given as columns (field → values)."""
        hits = self._hits(columns, threshold, limit)
        return [[Match(i, p) for i, p in row] for row in hits]

    def _hits(
        self, columns: Mapping[str, Sequence[Any]], threshold: float | None, limit: int
    ) -> list[list[tuple[int, float]]]:
        """The engine's ``(contact id, probability)`` matches of each record."""
        _check_threshold(threshold)
        keys = match_keys(columns, default_region=self._region)
        return self._index.match_many(keys, threshold, limit)


def _check_threshold(threshold: float | None) -> None:
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ConfigError("threshold must be between 0 and 1")


@collector_paused()
def build_index(
    store: Store,
    config: DedupeConfig | None = None,
    *,
    labels: Sequence[LabelledPair] = (),
    default_region: str = "US",
    progress: Progress | None = None,
) -> ContactIndex:
    """Fit the matcher on the store's live contacts and index them, so that
    new records (a sign-up, a lead list) are matched against them in
    microseconds each, without refitting. Training is as in
    :func:`find_duplicates`, reviewed pairs included."""
    cfg = config or DedupeConfig()
    if progress:
        progress("reading")
    ids, cols = store.contact_columns(list(cfg.fields or MATCH_FIELDS))
    if not ids:
        raise ConfigError("no live contacts to match against")
    if progress:
        progress("indexing")
    labels, _apart, _gone = _reviewed(store, labels, undone=False)
    matcher, _used, _skipped = _fit(match_keys(cols), ids, cfg, labels)
    return ContactIndex(matcher.index(), default_region=default_region)


class MatchFileReport(msgspec.Struct, kw_only=True):
    """What :func:`match_file` did (counts only)."""

    rows: int
    matched: int
    rejected: int
    out: str


def match_file(
    index: ContactIndex,
    path: str | Path,
    out: str | Path,
    *,
    threshold: float | None = None,
    format: str | None = None,
    preset: str | None = None,
    columns: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> MatchFileReport:
    """Match each row of a CSV or JSON Lines file against ``index`` and write
    the rows to ``out`` with ``match_id`` (the best matching contact, blank or
    ``null`` when none) and ``match_probability``.

    ``format`` is ``csv`` or ``jsonl`` (default: guessed from the file). A CSV
    is written back as UTF-8 with its cells trimmed and the two columns
    added; a JSON Lines file line by line as it was, with the two members set
    or added. Headers and member keys are mapped to fields as imports map
    them (``preset``, ``columns`` overrides); the file is read chunk by chunk,
    so memory stays flat. Rows the reader rejects (JSON Lines: lines holding
    anything but an object) are left out and counted.
    """
    import csv

    _check_threshold(threshold)
    src, fmt, reader, headers, at = _open_file(path, format, preset, columns)
    dst = Path(out)
    if not at:
        raise _unmapped(src)
    counts = {"rows": 0, "matched": 0, "rejected": 0}

    def write_jsonl(tmp: Path) -> None:
        if progress:
            progress("matching rows…")
        try:
            got = index._index.match_jsonl(
                src,
                tmp,
                headers,
                list(at.items()),
                country=at.get("country"),
                default_region=index._region,
                threshold=threshold,
            )
        except _core.InvalidInputError as exc:
            raise _csv_error(src, exc) from None
        counts.update(zip(("rows", "matched", "rejected"), got, strict=True))

    def write_csv(tmp: Path) -> None:
        assert reader is not None
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow([*headers, "match_id", "match_probability"])
            try:
                for cols, _lines, _ends, rejects in reader:
                    if progress:
                        progress(f"matching rows {counts['rows'] + 1:,}…")
                    counts["rejected"] += len(rejects)
                    hits = index._hits({f: cols[j] for f, j in at.items()}, threshold, 1)
                    ids = [h[0][0] if h else None for h in hits]
                    probs = [round(h[0][1], 4) if h else None for h in hits]
                    # The csv module writes None as an empty cell.
                    w.writerows(zip(*cols, ids, probs, strict=True))
                    counts["matched"] += len(ids) - ids.count(None)
                    counts["rows"] += len(ids)
            except _core.InvalidInputError as exc:
                raise _csv_error(src, exc) from None

    _write_out(dst, write_csv if fmt == "csv" else write_jsonl)
    return MatchFileReport(**counts, out=str(dst))


# -- files (no store) ----------------------------------------------------------


class FileDedupeReport(msgspec.Struct, kw_only=True):
    """What :func:`dedupe_file` did (counts and field names only)."""

    rows: int
    clusters: int
    duplicates: int
    fields: list[str]
    rejected: int
    warnings: list[str]
    out: str
    stats: dict[str, float] = msgspec.field(default_factory=dict)
    """The matcher's counters (candidate pairs, pairs scored, EM iterations, ...)."""


def _open_file(
    path: str | Path,
    format: str | None,
    preset: str | None,
    columns: Mapping[str, str] | None,
) -> tuple[Path, str, Any, list[str], dict[str, int]]:
    """A contacts file to match: its path, format (``format``, else guessed),
    CSV reader (None for JSON Lines), headers (CSV) or member keys (JSON
    Lines), and the first column of each match field they map to
    (``preset``, ``columns`` overrides, as imports map them)."""
    from crmkit.kernel import guess_format
    from crmkit.mapping import map_headers

    src = Path(path)
    if not src.is_file():
        raise SourceError(f"{src}: no such file")
    fmt = format or guess_format(src)
    if fmt not in ("csv", "jsonl"):
        raise ConfigError(f"unknown format {fmt!r} (csv or jsonl)")
    try:
        reader = _core.CsvReader(src) if fmt == "csv" else None
        headers = list(reader.headers) if reader else _core.jsonl_keys(src)[0]
    except _core.InvalidInputError as exc:
        raise _csv_error(src, exc) from None
    where: dict[str, int] = {}
    for j, f in enumerate(map_headers(headers, "contacts", preset=preset, overrides=columns)):
        if f in MATCH_FIELDS and f not in where:
            where[f] = j
    return src, fmt, reader, headers, where


def _unmapped(src: Path) -> ConfigError:
    """The error for a file none of whose columns maps to a match field."""
    return ConfigError(
        f"{src}: no column maps to a field to match on ({', '.join(MATCH_FIELDS)}); "
        "map one with --map HEADER=FIELD"
    )


def _csv_error(path: Path, exc: Exception) -> SourceError:
    msg = str(exc)
    return SourceError(msg if path.name in msg else f"{path}: {msg}")


def _new_matcher(cfg: DedupeConfig) -> _core.Matcher:
    try:
        return _core.Matcher(cfg.engine_config())
    except _core.ConfigError as exc:
        raise ConfigError(f"dedupe: {exc}") from None


def _write_out(dst: Path, write: Callable[[Path], object]) -> None:
    """Write ``dst`` through a temporary file beside it, replaced at the end."""
    tmp = dst.with_name(dst.name + ".tmp")
    try:
        write(tmp)
        tmp.replace(dst)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SourceError(f"{dst}: cannot write ({exc.strerror})") from None
    except _core.InvalidInputError as exc:
        # The input could not be read again as it was (it changed meanwhile).
        tmp.unlink(missing_ok=True)
        raise SourceError(f"{dst}: not written: {exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def dedupe_file(
    path: str | Path,
    out: str | Path,
    config: DedupeConfig | None = None,
    *,
    format: str | None = None,
    preset: str | None = None,
    columns: Mapping[str, str] | None = None,
    default_region: str = "US",
    progress: Progress | None = None,
    labels: Sequence[LabelledPair] = (),
) -> FileDedupeReport:
    """Find duplicates in a CSV or JSONL file of contacts and write it back with ``cluster_id``.

    Every row read is written to ``out`` with a ``cluster_id``: the 1-based
    row number of the cluster's first row, so every row of one cluster shares
    it and a row with no duplicate has its own number. CSV in, CSV out (UTF-8,
    cells trimmed as the CSV reader gives them, one more column); JSON Lines
    in, JSON Lines out (each object line as it was, with a ``cluster_id``
    member set or added; blank lines and lines holding anything but an object
    are rejected and left out). Headers (CSV) and member keys (JSON Lines)
    are mapped to fields as imports map them (``preset``, ``columns``
    overrides). No store is opened.

    Either format goes from file to clusters and back in Rust: the cells are
    normalized and turned into match keys chunk by chunk, and only the
    distinct keys are kept in memory. JSON values are read as text: strings
    as they are, numbers as written, ``true``/``false`` as ``True``/``False``;
    ``null``, objects and arrays count as missing.

    ``labels`` name rows by their 1-based number among the rows read (the
    numbering of ``cluster_id``); they refine the trained model, and two rows
    labelled distinct never share a cluster.
    """
    cfg = config or DedupeConfig()
    if progress:
        progress("reading")
    src, fmt, _reader, headers, where = _open_file(path, format, preset, columns)
    dst = Path(out)
    keep = [(f, j) for f, j in where.items() if not cfg.fields or f in cfg.fields]
    matcher = _new_matcher(cfg)
    try:
        if fmt == "csv":
            rows = _core.read_match_csv(
                src, keep, country=where.get("country"), default_region=default_region
            )
        else:
            rows = _core.read_match_jsonl(
                src, headers, keep, country=where.get("country"), default_region=default_region
            )
    except _core.InvalidInputError as exc:
        raise _csv_error(src, exc) from None
    n, rejected = len(rows), rows.rejected
    if n == 0:
        raise SourceError(f"{src}: no rows to deduplicate")
    if not where:
        raise _unmapped(src)
    if not keep:
        raise ConfigError(f"nothing to match on: no column holds any of {', '.join(MATCH_FIELDS)}")
    lab = _file_labels(labels, n)
    if progress:
        progress("matching")
    matcher.fit_input(rows, labels=lab)
    found = matcher.predict(cfg.threshold, apart=_distinct(lab))
    del matcher, rows  # frees the keys and candidate pairs before writing
    if progress:
        progress("writing")
    write = _core.write_clusters_csv if fmt == "csv" else _core.write_clusters_jsonl
    _write_out(dst, lambda tmp: write(src, tmp, found))
    return FileDedupeReport(
        rows=n,
        clusters=int(found.stats.get("clusters", 0)),
        duplicates=found.duplicates,
        fields=[f for f in MATCH_FIELDS if f in where],
        rejected=rejected,
        warnings=list(found.warnings),
        out=str(dst),
        stats=_with_labels(dict(found.stats), len(lab)),
    )


__all__ = [
    "MATCH_FIELDS",
    "ContactIndex",
    "DedupeConfig",
    "DedupeResult",
    "FileDedupeReport",
    "LabelledPair",
    "Match",
    "MatchFileReport",
    "Pair",
    "build_index",
    "dedupe_file",
    "explain",
    "find_duplicates",
    "labels_from",
    "match_file",
    "match_keys",
    "parse_config",
    "read_labels",
    "run_dedupe_step",
    "run_matcher",
]


# -- workflow step -------------------------------------------------------------


def run_dedupe_step(
    kernel: Kernel,
    section: DedupeSection,
    *,
    dry_run: bool = False,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """The workflow's ``[dedupe]`` step: find, plan and (unless ``dry_run`` or
    ``apply = false``) merge; returns counts for the run summary.

    ``section.labels`` is read relative to ``base_dir`` (the workflow's folder).
    """
    from crmkit.merge import apply_plan, build_plan

    cfg = DedupeConfig.model_validate({k: getattr(section, k) for k in DedupeConfig.model_fields})
    labels = labels_from((base_dir or Path(".")) / section.labels if section.labels else None)
    res = find_duplicates(kernel.store, cfg, labels=labels)
    out: dict[str, Any] = {
        "contacts": len(res.ids),
        "clusters": len(res.clusters),
        "duplicates": res.duplicates,
        "warnings": len(res.warnings),
    }
    if labels:
        out["labelled_pairs"] = int(res.stats.get("labelled_pairs", 0))
    if not res.clusters or dry_run or not section.apply:
        out["merged"] = 0
        return out
    opts = {"sources": list(section.sources)} if section.sources else {}
    plan = build_plan(
        kernel.store,
        res,
        rule=section.rule,
        survivor=section.survivor,
        options=opts,
        rules=kernel.survivorship_rules,
    )
    events = apply_plan(kernel, plan, actor="workflow")
    out["merged"] = sum(len(e.merged_ids) for e in events)
    out["merges"] = len(events)
    return out
