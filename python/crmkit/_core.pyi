"""Type stubs for the Rust extension ``crmkit._core``."""

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, final

from crmkit._base import CrmkitError

__version__: str

# -- errors ------------------------------------------------------------------
class CoreError(CrmkitError): ...
class InvalidInputError(CoreError): ...
class RuleError(CoreError): ...
class ConfigError(CoreError): ...
class EnginePanic(CoreError): ...

def _panic_for_tests() -> None: ...

# -- normalize ---------------------------------------------------------------
# Column functions: one value per row, None in -> None out; invalid values -> None.
# The GIL is released while the columns are processed (rayon, all cores).

def normalize_emails(
    values: list[str | None], *, strip_plus: bool = False, fold_gmail_dots: bool = False
) -> list[str | None]:
    """Trimmed, lowercased addresses; optional plus-tag stripping and Gmail dot folding."""

def normalize_phones(values: list[str | None], default_region: str = "US") -> list[str | None]:
    """E.164 numbers (``+14155552671``); ``default_region`` (ISO alpha-2) reads numbers
    without a country code. Extensions are dropped. Raises InvalidInputError for an
    unknown region."""

def clean_names(values: list[str | None]) -> list[str | None]:
    """Display form: NFC, trimmed, whitespace collapsed, all-upper or all-lower values
    proper-cased (``"MCDONALD"`` -> ``"McDonald"``, ``"van der berg"`` kept lowercase particles)."""

def name_keys(values: list[str | None]) -> list[str | None]:
    """Match keys: ASCII-folded, lowercase, punctuation removed, titles and suffixes dropped."""

def normalize_countries(values: list[str | None]) -> list[str | None]:
    """ISO 3166 alpha-2 codes from codes, names and variants (``"U.S."`` -> ``"US"``)."""

def normalize_postcodes(
    values: list[str | None], countries: list[str | None] | None = None
) -> list[str | None]:
    """Clean postal codes; with each row's country (alpha-2) its shape rules apply
    (``"sw1a1aa"``/GB -> ``"SW1A 1AA"``, ``"2134"``/US -> ``"02134"``)."""

def convert_column(
    values: list[Any], typ: str, list_separator: str = ";"
) -> tuple[list[Any], list[int]]:
    """``values`` (``str | None``) converted to attribute type ``typ``, and the indexes
    of the values not converted (bad values, rare forms, non-text values), which are
    ``None`` in the list for the caller to convert one by one."""

def encode_json_objects(names: list[str], columns: list[list[Any]]) -> list[bytes | None] | None:
    """One JSON object per row from typed columns, ``None`` values left out; ``None``
    for a row without values. ``None`` as a whole when a value is of a kind it does
    not encode (a dict, a big integer)."""

def parse_epochs(values: list[Any]) -> tuple[list[int | None], list[int]]:
    """Epoch seconds for ISO 8601 times (``str | None``; UTC when no offset is written),
    and the indexes of the values not parsed (other forms, times before 1970, values
    that are not strings), which are ``None`` in the list for the caller to parse."""

def normalize_contact_columns(
    columns: dict[str, list[str | None]],
    *,
    default_region: str = "US",
    strip_plus: bool = False,
    fold_gmail_dots: bool = False,
) -> tuple[dict[str, list[str | None]], list[tuple[int, str, str]]]:
    """Normalize the known fields present (email, phone, first_name, last_name, country,
    postcode) in one call; other columns pass through as the same objects. Phones and
    postcodes use each row's recognised country, else ``default_region`` for phones.
    Returns the columns and ``(row, field, reason)`` issues for non-blank values that
    normalized to None, ordered by row then field; reasons never contain values."""

# -- csv reader ----------------------------------------------------------
_CsvChunk = tuple[list[list[str | None]], list[int], list[int], list[tuple[int, str]]]

@final
class CsvReader:
    """Stream a CSV file as column chunks with flat memory.

    Each chunk is ``(columns, lines, byte_ends, rejects)``: columns aligned with
    ``headers`` (cells trimmed; blank cells are None), the 1-based physical line where each record
    starts, the byte offset just after each record (pass one as ``start_byte`` to
    resume after it), and ``(line, reason)`` for rows with the wrong number of fields,
    a field over ``max_field_bytes`` or undecodable bytes. Reasons name columns, never
    values. A missing or unreadable file raises OSError naming it; a bad header,
    encoding or option raises InvalidInputError.
    """

    def __new__(
        cls,
        path: str | os.PathLike[str],
        *,
        encoding: str | None = None,
        delimiter: str | None = None,
        chunk_rows: int = 50000,
        max_field_bytes: int = 1048576,
        start_byte: int = 0,
    ) -> CsvReader: ...
    @property
    def path(self) -> str:
        """The file's path."""
    @property
    def encoding(self) -> str:
        """The encoding used: from a BOM, else utf-8 if the first MiB is valid, else windows-1252."""
    @property
    def delimiter(self) -> str:
        """The delimiter used (sniffed from the header line among , ; tab |)."""
    @property
    def headers(self) -> list[str]:
        """Header names, trimmed, BOM stripped."""
    @property
    def position(self) -> int:
        """Byte offset just after the last record read, accepted or rejected."""
    def __iter__(self) -> CsvReader: ...
    def __next__(self) -> _CsvChunk: ...

# -- dedupe ------------------------------------------------------------------
# Fields: first_name, last_name, email, phone, postcode, city, street,
# birth_date (YYYY-MM-DD), company; values already normalized (lowercase).
#
# config keys (all optional): threshold (0-1, default 0.5), blocking
# (list of rules, each a list of "field[+field][:transform]" parts; transforms:
# exact, prefixN, suffixN, phonetic, initial, year, local, domain, letters, nick,
# nickinitial, sorted), max_block (5), window (1), all_pairs_prior (true),
# max_pairs_per_record (3.0: a hard cap on candidate pairs, least selective rules
# cut first, with a warning), train_pairs
# (300000), random_pairs (300000), em_max_iter (200), em_tol (1e-6), guard
# (chaining guard, 0-1, default 0.5), seed, fields (list of field names).

@final
class MatchResult:
    """Scored pairs at or above the threshold, and clusters."""

    @property
    def left(self) -> list[int]: ...
    @property
    def right(self) -> list[int]: ...
    @property
    def probability(self) -> list[float]: ...
    @property
    def clusters(self) -> list[int]:
        """Cluster id per row, in input order: the smallest id of the cluster."""
    @property
    def warnings(self) -> list[str]: ...
    @property
    def stats(self) -> dict[str, float]: ...
    @property
    def duplicates(self) -> int:
        """Rows that are not the first of their cluster (cluster sizes minus one, summed)."""
    def __len__(self) -> int: ...

@final
class MatchInput:
    """Contact rows read from a file as match keys (from :func:`read_match_csv`)."""

    @property
    def rejected(self) -> int:
        """Rows the CSV reader rejected."""
    def __len__(self) -> int: ...

def read_match_csv(
    path: str | os.PathLike[str],
    columns: list[tuple[str, int]],
    *,
    country: int | None = None,
    default_region: str = "US",
) -> MatchInput:
    """Read the CSV columns ``(field, column index)`` into match keys, normalized as
    an import does (phones and postcodes read with the ``country`` column's value)."""

def write_clusters_csv(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    result: MatchResult,
    *,
    column: str = "cluster_id",
    offset: int = 1,
) -> int:
    """Write ``src``'s rows to ``dst`` (UTF-8, cells trimmed) with ``column`` holding
    each row's cluster id plus ``offset``; returns the rows written."""

def jsonl_keys(path: str | os.PathLike[str]) -> tuple[list[str], int, int]:
    """``(keys, rows, rejected)``: the member keys of a JSON Lines file's objects in the
    order they first appear, the object lines and the other non-blank lines."""

def read_match_jsonl(
    path: str | os.PathLike[str],
    names: list[str],
    columns: list[tuple[str, int]],
    *,
    country: int | None = None,
    default_region: str = "US",
) -> MatchInput:
    """Read the members ``(field, index into names)`` of a JSON Lines file into match
    keys, normalized as an import does (values read as text; see ``dedupe_file``)."""

def write_clusters_jsonl(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    result: MatchResult,
    *,
    column: str = "cluster_id",
    offset: int = 1,
) -> int:
    """Write ``src``'s object lines to ``dst``, each as it was with member ``column``
    set to its cluster id plus ``offset``; returns the rows written."""

def phone_keys(values: list[str | None]) -> list[str | None]:
    """Match keys of phones: the last nine digits of numbers of seven digits or more."""

def lower_keys(values: list[str | None]) -> list[str | None]:
    """Match keys of free text: lowercase, white space collapsed; ``None`` when blank."""

def date_keys(
    values: list[str | None], countries: list[str | None] | None = None
) -> list[str | None]:
    """Match keys of dates: ``YYYY-MM-DD`` as written, or read from ``d.m.yyyy`` and
    ``d/m/yyyy`` (``m/d/yyyy`` for a US row or one without a country); a number over
    12 is the day whatever the order."""

def region_keys(values: list[str | None]) -> list[str | None]:
    """Match keys of states, provinces or regions: lowercase, dots dropped, a US state or
    Canadian province named in full turned into its two-letter code."""

def match_keys_of_cells(
    columns: Mapping[str, Sequence[str | None]], *, default_region: str = "US"
) -> dict[str, list[str | None]]:
    """The match keys :func:`read_match_csv` makes of raw cells (``country`` read and
    keyed); columns of equal length."""

@final
class MatchIndex:
    """Fitted rows indexed for incremental matching."""

    def match_one(
        self, record: dict[str, str | None], threshold: float | None = None
    ) -> list[tuple[int, float]]:
        """``(row id, probability)`` of matching rows, best first."""
    def match_many(
        self,
        columns: dict[str, list[str | None]],
        threshold: float | None = None,
        limit: int = 1,
    ) -> list[list[tuple[int, float]]]:
        """The ``limit`` best matches of each record given as columns of match keys."""
    def match_jsonl(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        names: list[str],
        columns: list[tuple[str, int]],
        *,
        country: int | None = None,
        default_region: str = "US",
        threshold: float | None = None,
    ) -> tuple[int, int, int]:
        """Write each object line of ``src`` to ``dst`` with ``match_id`` and
        ``match_probability`` set; ``(rows, matched, rejected)``."""
    def __len__(self) -> int: ...

@final
class Matcher:
    """Duplicate finder: blocking, Fellegi-Sunter scoring trained by EM, clusters."""

    def __new__(
        cls, config: dict[str, Any] | None = None, model: dict[str, Any] | None = None
    ) -> Matcher: ...
    def fit(
        self,
        columns: dict[str, list[str | None]],
        ids: list[int] | None = None,
        *,
        labels: list[tuple[int, int, bool]] | None = None,
        consume: bool = False,
    ) -> None:
        """Block and train (EM, unless a model was given). ``ids`` default to 0..n-1.

        With ``consume``, ``columns`` is emptied once read, so its strings can be
        freed while blocking and training run."""
    def fit_input(
        self, input: MatchInput, *, labels: list[tuple[int, int, bool]] | None = None
    ) -> None:
        """:meth:`fit` over rows from :func:`read_match_csv` (moved in: an input fits once)."""
    def predict(
        self, threshold: float | None = None, *, apart: list[tuple[int, int]] | None = None
    ) -> MatchResult:
        """Score and cluster; no cluster holds both ids of a pair in ``apart``."""
    def candidate_pairs(self) -> tuple[list[int], list[int]]: ...
    def explain(self, left: int, right: int) -> dict[str, Any]:
        """Per field: level, weight (log2 Bayes factor), tf_adjustment; total and probability."""
    def model(self) -> dict[str, Any]:
        """``{"prior", "iterations", "fields": {field: {level: {"m", "u", "weight"}}}}``."""
    def index(self) -> MatchIndex: ...

# -- segments ----------------------------------------------------------------
# Rule text or a JSON condition tree ({"and": [...]}, {"field": ..., "op": ..., "value": ...},
# {"agg": "count", "kind": ..., "days": ..., "op": ..., "value": ...}, {"in_segment": ...}).
# Schema: {field: "string" | "integer" | "number" | "boolean" | "date" | "datetime" | "list"}.
# Dates and datetimes are epoch seconds (UTC). NULL rule: any predicate on a missing value is
# false except `is null` / `is not null`; `not x` negates the evaluated clause.
# `t within N days` means as_of - N*86400 <= t <= as_of.

def parse_rule(rule: str | dict[str, Any], schema: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON condition tree of a rule; with a schema, fields and types are checked too."""

def rule_to_text(rule: str | dict[str, Any]) -> str:
    """The canonical text form of a rule (tree or text)."""

def email_domains(emails: Sequence[str | None]) -> list[str | None]:
    """The domain of each email (text after the last ``@``; ``None`` without one)."""

def row_positions(ids: Sequence[int], keys: Sequence[int]) -> list[int]:
    """The position in ``ids`` of each key (raises when a key is not in ``ids``)."""

@final
class Snapshot:
    """A columnar snapshot of contacts (and their interactions) for the segment engine."""

    def __new__(
        cls,
        ids: Sequence[int],
        columns: dict[str, Any],
        schema: dict[str, str],
        interactions: dict[str, Any] | None = None,
        *,
        coerce: bool = False,
    ) -> Snapshot:
        """Columns hold one value (or None) per id; interactions are parallel lists
        ``contact_id``, ``kind``, ``time`` (epoch seconds) and optional ``amount``.
        With ``coerce`` values are converted leniently while read (``str(v)`` for
        strings, ``int``/``float`` of text, ``bool(v)``, ISO 8601 text to epoch
        seconds for dates; unparsable dates and non-list tags become None)."""

    def __len__(self) -> int: ...
    @property
    def ids(self) -> list[int]:
        """Contact ids in row order."""
    @property
    def schema(self) -> dict[str, str]:
        """{field: type name} of the snapshot's columns."""
    def save(self, path: str | os.PathLike[str], meta: str) -> None:
        """Write to ``path`` with a ``meta`` text, atomically (temporary file, then rename)."""
    @staticmethod
    def load(path: str | os.PathLike[str]) -> tuple[Snapshot, str]:
        """Read a file written by :meth:`save`: (snapshot, meta); InvalidInputError
        when it is damaged or of another format version."""
    def upsert(
        self,
        ids: Sequence[int],
        columns: dict[str, Any],
        interactions: dict[str, Any] | None = None,
        *,
        coerce: bool = False,
    ) -> int:
        """Bring the rows of ``ids`` (appended when new) up to date with ``columns``
        (fields not given keep their values) and append ``interactions``; returns
        the rows appended. After an error the snapshot must be rebuilt."""

@final
class SegmentResult:
    """Memberships of every segment of a plan at one as-of time."""

    @property
    def as_of(self) -> int:
        """The as-of time (epoch seconds)."""
    @property
    def names(self) -> list[str]:
        """Segment names in plan order."""
    @property
    def pending(self) -> int:
        """Membership flips of ``update_contact`` calls not yet applied to the
        bitmaps; every read of the members applies them first, in one batch."""
    def counts(self) -> dict[str, int]:
        """Members per segment."""
    def members(self, name: str) -> list[int]:
        """Contact ids of a segment's members (snapshot row order)."""
    def member_sets(self) -> MemberSets:
        """Every segment's members by contact id, to compare with the next run."""
    def rows(self, name: str) -> list[int]:
        """Snapshot row indices of a segment's members."""
    def bitmap(self, name: str) -> bytes:
        """Members' row indices as a serialized roaring bitmap."""
    def diff(self, previous: SegmentResult) -> dict[str, tuple[list[int], list[int]]]:
        """{segment: (entered ids, exited ids)} since ``previous``."""
    def __eq__(self, other: object, /) -> bool:
        """Same segment names, as-of time and memberships."""

@final
class SegmentChanges:
    """The members that entered and exited each changed segment of one move."""

    @property
    def names(self) -> list[str]:
        """Segments that changed, in plan order."""
    def counts(self) -> dict[str, tuple[int, int]]:
        """{segment: (entered count, exited count)}."""
    def entered(self, name: str) -> list[int]:
        """Contact ids that entered ``name``."""
    def exited(self, name: str) -> list[int]:
        """Contact ids that exited ``name``."""
    def to_dict(self) -> dict[str, tuple[list[int], list[int]]]:
        """{segment: (entered ids, exited ids)} for every changed segment."""
    def __len__(self) -> int: ...

@final
class MemberSets:
    """Members of each segment by contact id, kept between runs."""

    def __new__(cls, lists: dict[str, list[int]]) -> MemberSets:
        """From {segment: [contact id, ...]}."""
    @property
    def names(self) -> list[str]:
        """Segment names, sorted."""
    def counts(self) -> dict[str, int]:
        """Number of members of each segment."""
    def diff(self, new: MemberSets, names: list[str]) -> list[tuple[str, list[int], list[int]]]:
        """For each of ``names``: (name, entered ids, exited ids) from these members
        to ``new``, ascending (a segment missing on a side is empty there)."""
    def save(self, path: str | os.PathLike[str], meta: str) -> None:
        """Write to ``path`` with a ``meta`` text, atomically."""
    @staticmethod
    def load(path: str | os.PathLike[str]) -> tuple[MemberSets, str]:
        """Read a file written by :meth:`save`: (member sets, meta);
        InvalidInputError when it is damaged."""

@final
class SegmentPlan:
    """Segments compiled into one predicate graph with shared sub-expressions."""

    def __new__(
        cls, segments: Iterable[tuple[str, str | dict[str, Any]]], schema: dict[str, str]
    ) -> SegmentPlan:
        """Compile (name, rule) pairs in priority order; raises RuleError."""
    @property
    def names(self) -> list[str]:
        """Segment names in plan order."""
    def fields(self) -> list[str]:
        """The fields the plan's rules read, sorted."""
    def rules(self) -> dict[str, str]:
        """{segment: canonical rule text}."""
    def stats(self) -> tuple[int, int]:
        """(distinct clauses, distinct nodes) after sharing."""
    def evaluate(
        self, snapshot: Snapshot, as_of: int, segments: Sequence[str] | None = None
    ) -> SegmentResult:
        """Every segment's members at ``as_of`` (epoch seconds).

        With ``segments``, only those are evaluated (a preview): the result
        holds just them and cannot be updated in place or moved in time.
        """
    def advance_clock(
        self, snapshot: Snapshot, previous: SegmentResult, as_of: int
    ) -> SegmentResult:
        """Re-evaluate at a new time; only clock-dependent segments are recomputed."""
    def advance(self, snapshot: Snapshot, result: SegmentResult, as_of: int) -> SegmentChanges:
        """Move ``result`` to a new time in place (only clock-dependent segments are
        recomputed); returns the exact entered and exited members of each segment
        that changed."""
    def update_contact(
        self,
        snapshot: Snapshot,
        result: SegmentResult,
        contact_id: int,
        values: dict[str, Any] | None = None,
        interactions: Sequence[tuple[str, int, float | None]] | None = None,
    ) -> tuple[list[str], list[str]]:
        """Apply one contact's change in place; returns (entered, exited) segment names.
        The result's bitmaps take the change when they are next read."""
    def explain(
        self, snapshot: Snapshot, contact_id: int, segment: str, as_of: int
    ) -> dict[str, Any]:
        """Clause tree {"text", "value", "null", "children"} for one contact."""
    def exclusive(self, snapshot: Snapshot, as_of: int, other: str = "other") -> list[str]:
        """First matching segment (plan order) per contact, in row order, else ``other``."""

# -- sqlite bulk statements --------------------------------------------------
def sqlite_bulk_available() -> bool:
    """Whether bulk statements can run on ``sqlite3`` connections here (checked once)."""

def sqlite_execute_columns(
    conn: Any,
    sql: str,
    columns: list[Any],
    rows: int,
    index: list[int] | None = None,
    many: tuple[str, int] | None = None,
) -> int:
    """Run INSERT/UPDATE/DELETE ``sql`` once per row inside the caller's transaction,
    parameter *k* of row *r* from ``columns[k][r]`` (a list or tuple) or ``columns[k]``
    (any other value: the same for every row); with ``index``, only the rows it lists,
    in its order; with ``many = (sql_many, per)``, ``per`` rows at a time through
    ``sql_many`` and the rest through ``sql``. Returns the rows changed."""

@final
class BulkWriter:
    """Runs bulk statements on a ``sqlite3.Connection`` in a thread of its own, in
    the order given, inside the caller's transaction; the caller must not use the
    connection between :meth:`submit` and :meth:`drain`."""

    def __new__(cls, conn: Any) -> BulkWriter: ...
    def submit(
        self,
        sql: str,
        columns: list[Any],
        rows: int,
        index: list[int] | None = None,
        many: tuple[str, int] | None = None,
    ) -> None:
        """Queue ``sql`` for every row, as :func:`sqlite_execute_columns` takes them;
        waits for the thread first while more than about two batches of rows are queued."""

    def drain(self) -> int:
        """Wait for every queued statement; the rows changed, or the first error."""

    def close(self) -> None:
        """Wait for what is queued, discard any error, and stop the thread."""

# -- upsert keys -------------------------------------------------------------
@final
class KeyMap:
    """Upsert keys to contact ids, held in Rust: emails (with each live contact's
    current one, with ``track_current``) and one source's record ids."""

    def __new__(cls, *, track_current: bool = False) -> KeyMap: ...
    def __len__(self) -> int:
        """The number of keys held: emails and record ids."""
    def add_current(self, emails: list[str], ids: list[int]) -> None:
        """Record that live contact ``ids[i]`` holds ``emails[i]`` (the first wins)."""

    def add_emails(self, emails: list[str], ids: list[int]) -> None:
        """Resolve ``emails[i]`` to ``ids[i]`` unless held already."""

    def add_external(self, keys: list[str], ids: list[int]) -> None:
        """Resolve record id ``keys[i]`` to ``ids[i]`` unless held already."""

    def clear_external(self) -> None:
        """Forget every record id."""

    def get(self, keys: list[str | None]) -> list[int | None]:
        """The contact id each email resolves to, or ``None``."""

    def assign(
        self, keys: list[str | None], next_id: int
    ) -> tuple[list[int | None], list[int], list[int], list[int], int]:
        """Resolve a batch keyed by email: ``(ids, new_rows, created, updated, next_id)``."""

    def assign_external(
        self, keys: list[str | None], emails: list[str | None], next_id: int
    ) -> tuple[list[int | None], list[int], list[int], list[int], int, list[int], list[int]]:
        """Resolve a batch keyed by record id: ``(ids, new_rows, created, updated,
        next_id, conflicts, held)``."""

def fold_rows(
    ids: list[int | None], columns: list[Any]
) -> tuple[list[int], list[list[Any]]] | None:
    """Fold the rows sharing an id into the first of them (each column takes the last
    value that is not ``None``): ``(first rows, folded column copies)``, or ``None``
    when no id repeats."""

# -- rfm ---------------------------------------------------------------------
def rfm_scores(
    ids: list[int],
    contact_id: list[int],
    time: list[int],
    amount: list[float | None],
    as_of: int,
    *,
    bins: int = 5,
) -> tuple[
    list[int | None], list[int], list[float], list[int | None], list[int | None], list[int | None]
]:
    """RFM measures and scores aligned with ``ids``: recency_days, frequency, monetary,
    r, f, m (scores 1..bins, ties share a score; ``None`` for contacts without a
    purchase at or before ``as_of``)."""
