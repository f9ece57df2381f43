"""Segments: rules compiled once by the Rust engine, matched over a columnar
snapshot of the store, with membership history.

A run compiles every dynamic segment into one plan, evaluates it at an
"as of" time, compares each segment's members with the stored ones and
records who entered and who exited (one transaction), then fires
``crmkit_segment_changed`` with the batch of changes.

The NULL rule (the engine's, documented in docs/segments.md): a comparison
with a missing value is false, except ``is null`` / ``is not null``; ``not``
negates the evaluated clause.
"""

from __future__ import annotations

import contextlib
import logging
import time
import tomllib
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from crmkit import _core
from crmkit.errors import ConfigError, InvalidInputError, NotFoundError
from crmkit.records import Segment, SegmentChange
from crmkit.store.base import ChangePosition

if TYPE_CHECKING:
    from crmkit.kernel import Kernel

BUILTIN_SCHEMA: dict[str, str] = {
    "id": "integer",
    "email": "string",
    "email_domain": "string",
    "first_name": "string",
    "last_name": "string",
    "phone": "string",
    "company": "string",
    "job_title": "string",
    "street": "string",
    "city": "string",
    "region": "string",
    "postcode": "string",
    "country": "string",
    "birth_date": "date",
    "lifecycle_stage": "string",
    "tags": "list",
    "created_at": "datetime",
    "updated_at": "datetime",
}
"""Fields every rule can use; custom and categorizer attributes are added from the store."""


SNAPSHOT_FILE = "segments.snapshot"
"""Name of the snapshot file kept beside the store (see :meth:`Segments.snapshot`)."""

log = logging.getLogger("crmkit.segments")


MEMBERS_FILE = "segments.members"
"""Name of the file beside the store holding the last run's members by id."""


class _MembersMeta(msgspec.Struct, kw_only=True):
    """What a kept members file says about itself."""

    store: str
    version: int


class _SnapshotMeta(msgspec.Struct, kw_only=True):
    """What a kept snapshot file says about itself."""

    store: str
    position: ChangePosition


def _events(inter: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """Store interaction columns as the engine's event columns."""
    return {
        "contact_id": inter.get("contact_id", []),
        "kind": inter.get("kind", []),
        "time": inter.get("occurred_at", []),
        "amount": inter.get("amount", []),
    }


class RunResult(msgspec.Struct, kw_only=True):
    """What a segment run did (counts only)."""

    run_id: int | None
    as_of: int
    counts: dict[str, int]
    entered: dict[str, int]
    exited: dict[str, int]
    seconds: float


def _epoch_day(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    try:
        s = str(value)
        if len(s) == 10:
            return int(
                datetime.combine(date.fromisoformat(s), datetime.min.time(), UTC).timestamp()
            )
        d = datetime.fromisoformat(s.replace("Z", "+00:00"))
        if d.tzinfo is None:
            d = d.replace(tzinfo=UTC)
        return int(d.timestamp())
    except ValueError:
        return None


def parse_as_of(value: str | int | float | datetime | None) -> int:
    """Epoch seconds for ``--as-of`` values (ISO date or date-time, or epoch); default now."""
    if value is None:
        return int(time.time())
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
    if isinstance(value, int | float):
        return int(value)
    out = _epoch_day(value.strip())
    if out is None:
        raise ConfigError(f"not a date or date-time: {value!r} (use YYYY-MM-DD or ISO 8601)")
    return out


class Segments:
    """The segment service of one kernel: ``kernel.segments``."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    @property
    def store(self) -> Any:
        return self.kernel.store

    # -- schema and snapshot -----------------------------------------------------

    def schema(self) -> dict[str, str]:
        """Field → type for rules: built-in fields plus declared attributes."""
        out = dict(BUILTIN_SCHEMA)
        out.update({k: str(v) for k, v in self.store.attribute_types().items()})
        return out

    def snapshot(self, fields: Sequence[str] | None = None) -> _core.Snapshot:
        """A columnar snapshot of live contacts and their interactions.

        ``fields`` (default: every field of :meth:`schema`) are the columns
        rules may read. With the ``snapshot_cache`` setting (on by default)
        the snapshot is kept in a file beside the store and brought up to date
        from the store's change log: only contacts written and interactions
        added since the last run are read. The file is rebuilt when the log
        cannot replay what happened (merges, erasures), when the schema
        changed, or when it is damaged; it may hold more fields than asked.
        """
        schema = self.schema()
        wanted = sorted(f for f in (fields if fields is not None else schema) if f in schema)
        path = self.store.cache_path(SNAPSHOT_FILE) if self.kernel.settings.snapshot_cache else None
        if path is not None and path.exists():
            snap, held = self._refreshed(path, schema, wanted)
            if snap is not None:
                return snap
            # Keep the fields the file held, so that runs asking for other
            # fields do not rebuild it in turn (the new file replaces it).
            wanted = sorted(set(wanted) | {f for f in held if f in schema})
        position = self.store.change_position()  # before the data it describes
        snap = self._build(schema, wanted, position)
        if path is not None:
            self._save(snap, path, position)
        return snap

    def _build(
        self, schema: Mapping[str, str], wanted: Sequence[str], position: ChangePosition
    ) -> _core.Snapshot:
        ids, columns = self._columns(wanted, None)
        # Contacts read past `position` are read again next time (an upsert
        # is idempotent); interactions past it would be appended twice.
        inter = self.store.interaction_columns(upto=position)
        snap_schema = {f: schema[f] for f in wanted}
        return _core.Snapshot(ids, columns, snap_schema, _events(inter), coerce=True)

    def _columns(
        self, wanted: Sequence[str], ids: Sequence[int] | None
    ) -> tuple[list[int], dict[str, Any]]:
        """Snapshot columns of live contacts (all, or those of ``ids``)."""
        stored = [f for f in wanted if f not in ("id", "email_domain")]
        if "email_domain" in wanted and "email" not in stored:
            stored.append("email")
        got_ids, cols = self.store.contact_columns(stored, ids=ids)
        # Values are converted in Rust as the snapshot reads them (coerce=True):
        # no per-record Python work on this path.
        columns: dict[str, Any] = {}
        for f in wanted:
            if f == "id":
                columns[f] = got_ids
            elif f == "email_domain":
                columns[f] = _core.email_domains(cols["email"])
            else:
                columns[f] = cols[f]
        return got_ids, columns

    def _refreshed(
        self, path: Path, schema: Mapping[str, str], wanted: Sequence[str]
    ) -> tuple[_core.Snapshot | None, list[str]]:
        """The snapshot kept at ``path`` brought up to date, or None when it
        must be rebuilt (the reason is logged, without any contact data); and
        the fields the file held."""
        try:
            snap, meta_text = _core.Snapshot.load(path)
            meta = msgspec.json.decode(meta_text, type=_SnapshotMeta)
        except (InvalidInputError, OSError, msgspec.DecodeError) as exc:
            log.warning("segment snapshot %s is unusable (%s): rebuilding", path.name, exc)
            return None, []
        held = snap.schema
        fields = sorted(held)
        if meta.store != self.store.url or any(schema.get(f) != t for f, t in held.items()):
            log.info("segment snapshot %s: the schema changed, rebuilding", path.name)
            return None, fields
        if not set(wanted) <= set(held):
            log.info("segment snapshot %s: rules read new fields, rebuilding", path.name)
            return None, fields
        changes = self.store.changes_since(meta.position)
        if changes is None:
            log.info("segment snapshot %s: contacts were merged or removed, rebuilding", path.name)
            return None, fields
        n_new = len(changes.contact_ids) + len(changes.interactions.get("contact_id", ()))
        if n_new * 4 > max(len(snap), 4096):
            log.info("segment snapshot %s: most rows changed, rebuilding", path.name)
            return None, fields
        if changes.position == meta.position:
            return snap, fields
        try:
            if n_new:
                ids, columns = self._columns(fields, changes.contact_ids)
                snap.upsert(ids, columns, _events(changes.interactions), coerce=True)
        except InvalidInputError as exc:
            log.warning("segment snapshot %s could not be updated (%s): rebuilding", path.name, exc)
            return None, fields
        self._save(snap, path, changes.position)
        return snap, fields

    def _kept_members(self, version: int) -> _core.MemberSets | None:
        """The last run's members from the kept file, when it is at ``version``."""
        path = self._members_path()
        if path is None or not path.exists():
            return None
        try:
            kept, meta_text = _core.MemberSets.load(path)
            meta = msgspec.json.decode(meta_text, type=_MembersMeta)
        except (InvalidInputError, OSError, msgspec.DecodeError) as exc:
            log.warning("segment members %s are unusable (%s): reading the store", path.name, exc)
            return None
        if meta.store != self.store.url or meta.version != version:
            return None
        return kept

    def _keep_members(self, members: _core.MemberSets) -> None:
        """Keep a run's members for the next run's comparison (at the store's
        memberships version after the run was recorded)."""
        path = self._members_path()
        if path is None:
            return
        meta = _MembersMeta(store=self.store.url, version=self.store.memberships_version())
        try:
            members.save(path, msgspec.json.encode(meta).decode())
        except (InvalidInputError, OSError) as exc:
            log.warning("segment members %s were not saved (%s)", path.name, exc)

    def _members_path(self) -> Path | None:
        if not self.kernel.settings.snapshot_cache:
            return None
        path: Path | None = self.store.cache_path(MEMBERS_FILE)
        return path

    def drop_snapshot(self) -> None:
        """Delete the kept snapshot and members files, if any (the next run
        rebuilds them).
        Erasing contacts calls this, so that no copy of their data is left."""
        for name in (SNAPSHOT_FILE, MEMBERS_FILE):
            path = self.store.cache_path(name)
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def _save(self, snap: _core.Snapshot, path: Path, position: ChangePosition) -> None:
        meta = _SnapshotMeta(store=self.store.url, position=position)
        try:
            snap.save(path, msgspec.json.encode(meta).decode())
        except (InvalidInputError, OSError) as exc:
            log.warning("segment snapshot %s was not saved (%s)", path.name, exc)

    def _plan(self, segments: Sequence[tuple[str, str | dict[str, Any]]]) -> _core.SegmentPlan:
        return _core.SegmentPlan(list(segments), self.schema())

    # -- definitions ---------------------------------------------------------------

    def definitions(self) -> list[Segment]:
        """Every stored segment."""
        return list(self.store.list_segments())

    def get(self, name: str) -> Segment:
        """One stored segment by name."""
        for s in self.definitions():
            if s.name == name:
                return s
        raise NotFoundError(f"no segment {name!r}")

    def add(self, segments: Sequence[Segment]) -> None:
        """Validate (compile together with the stored ones) and save segments."""
        merged = {s.name: s for s in self.definitions()}
        for s in segments:
            if s.kind == "dynamic" and not s.rule:
                raise ConfigError(f"segment {s.name!r}: a dynamic segment needs a rule")
            merged[s.name] = s
        self._plan([(s.name, s.rule) for s in merged.values() if s.kind == "dynamic" and s.rule])
        self.store.save_segments(list(segments))

    def remove(self, name: str) -> None:
        """Delete a segment; its members exit now."""
        if not self.store.delete_segment(name):
            raise NotFoundError(f"no segment {name!r}")

    # -- evaluation ------------------------------------------------------------------

    def run(self, *, as_of: int | None = None, dry_run: bool = False) -> RunResult:
        """Evaluate every dynamic segment and record who entered and exited."""
        t0 = time.perf_counter()
        when = as_of if as_of is not None else int(time.time())
        defs = [s for s in self.definitions() if s.kind == "dynamic" and s.rule]
        if not defs:
            return RunResult(run_id=None, as_of=when, counts={}, entered={}, exited={}, seconds=0.0)
        plan = self._plan([(s.name, s.rule or "") for s in defs])
        result = plan.evaluate(self.snapshot(plan.fields()), when)
        counts = result.counts()
        names = list(result.names)
        # Who entered and exited: the new members against the last run's,
        # compared in Rust; the last run's come from the kept file when it is
        # still exact, else from the store.
        version = self.store.memberships_version()
        before = self._kept_members(version)
        if before is None:
            before = _core.MemberSets({n: self.store.segment_members(n) for n in names})
        now = result.member_sets()
        changes: dict[str, tuple[list[int], list[int]]] = {
            n: (entered, exited)
            for n, entered, exited in before.diff(now, names)
            if entered or exited
        }
        run_id = None
        if not dry_run:
            run_id = self.store.record_segment_run(when, changes)
            self._keep_members(now)
            if changes:
                self.kernel.hooks.segment_changed(
                    self.kernel,
                    [
                        SegmentChange(segment=n, run_id=run_id, entered=tuple(e), exited=tuple(x))
                        for n, (e, x) in changes.items()
                    ],
                )
        return RunResult(
            run_id=run_id,
            as_of=when,
            counts=counts,
            entered={n: len(e) for n, (e, _) in changes.items() if e},
            exited={n: len(x) for n, (_, x) in changes.items() if x},
            seconds=round(time.perf_counter() - t0, 3),
        )

    def preview(self, rule: str, *, as_of: int | None = None, sample: int = 10) -> dict[str, Any]:
        """Count and a sample of ids for a rule, saving nothing."""
        when = as_of if as_of is not None else int(time.time())
        others = [
            (s.name, s.rule or "") for s in self.definitions() if s.kind == "dynamic" and s.rule
        ]
        plan = self._plan([*others, ("__preview__", rule)])
        # Only the new rule (and the segments it reads) is evaluated.
        result = plan.evaluate(self.snapshot(plan.fields()), when, ["__preview__"])
        members = result.members("__preview__")
        return {"count": len(members), "sample": members[:sample], "as_of": when}

    def explain(self, contact_id: int, segment: str, *, as_of: int | None = None) -> dict[str, Any]:
        """Why a contact is or is not in a segment, clause by clause."""
        when = as_of if as_of is not None else int(time.time())
        self.get(segment)
        defs = [
            (s.name, s.rule or "") for s in self.definitions() if s.kind == "dynamic" and s.rule
        ]
        live = self.store.resolve_ids([contact_id]).get(contact_id, contact_id)
        plan = self._plan(defs)
        try:
            return dict(plan.explain(self.snapshot(plan.fields()), live, segment, when))
        except Exception as exc:
            from crmkit.errors import CrmkitError

            if isinstance(exc, CrmkitError):
                raise NotFoundError(f"contact {contact_id} or segment {segment!r}: {exc}") from None
            raise

    def members(self, name: str) -> list[int]:
        """Current members of a stored segment."""
        self.get(name)
        return list(self.store.segment_members(name))

    def history(
        self, name: str, *, since: int | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Entries and exits of a segment, newest first."""
        self.get(name)
        return [
            {"contact_id": c, "entered_at": e, "exited_at": x}
            for c, e, x in self.store.segment_history(name, since=since, limit=limit)
        ]


def load_segment_file(path: Path) -> list[Segment]:
    """Segments from a TOML (``[[segments]]``), JSON (a list) or text file
    (``name: rule`` per line; ``#`` comments)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    items: list[Mapping[str, Any]]
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            items = tomllib.loads(text).get("segments", [])
        elif suffix == ".json":
            data = msgspec.json.decode(text.encode())
            items = data["segments"] if isinstance(data, dict) else data
        else:
            items = []
            for n, line in enumerate(text.splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                if ":" not in line:
                    raise ConfigError(f"{path}:{n}: expected 'name: rule'")
                name, rule = line.split(":", 1)
                items.append({"name": name.strip(), "rule": rule.strip()})
    except (tomllib.TOMLDecodeError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse: {exc}") from None
    out = []
    for i, it in enumerate(items):
        try:
            out.append(msgspec.convert(dict(it), Segment))
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{path}: segments[{i}]: {exc}") from None
    return out
