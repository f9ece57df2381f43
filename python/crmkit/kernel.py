"""The Kernel: the facade that embedding applications and the CLI use.

Example::

    from crmkit import Kernel

    with Kernel.open("crm.db") as k:
        report = k.import_file("contacts.csv")
        print(report.created, "new contacts")
        for c in k.find_contacts("smith"):
            print(c.id, c.display_name)
        k.run_workflow("workflow.toml")
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from crmkit.errors import ConfigError, NotFoundError, PluginError
from crmkit.ingest import ConsentColumn, Ingester, IngestReport
from crmkit.kinds import Categorizer, Report, Reporter, Source
from crmkit.plugins import Hooks, PluginManager, Registry, make_plugin_manager
from crmkit.records import AttributeType, Contact, Interaction
from crmkit.settings import Settings, load_settings
from crmkit.store.base import ContactQuery, Store

if TYPE_CHECKING:
    from crmkit.dedupe import ContactIndex, DedupeResult, LabelledPair
    from crmkit.merge import MergePlan
    from crmkit.privacy import EraseResult
    from crmkit.records import MergeEvent
    from crmkit.segments import Segments


def _changed_rows(
    current: Mapping[str, Sequence[Any]], new: Mapping[str, Sequence[Any]], n: int
) -> list[int]:
    """Rows where any of ``new``'s columns differs from the current value."""
    none: list[Any] = [None] * n
    old_rows = zip(*(current.get(c, none) for c in new), strict=True)
    new_rows = zip(*new.values(), strict=True)
    return [i for i, (a, b) in enumerate(zip(old_rows, new_rows, strict=True)) if a != b]


class Kernel:
    """One customer base: settings, plugins, a store and the services over them.

    Create with :meth:`open`; close with :meth:`close` or a ``with`` block.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        manager: PluginManager | None = None,
        store: Store | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.manager = manager or make_plugin_manager(self.settings)
        self.registry = Registry(self.manager, strict=self.settings.strict_plugins)
        self.hooks = Hooks(self.manager)
        self._store = store

    @classmethod
    def open(cls, db: str | Path | None = None, **settings: Any) -> Kernel:
        """A kernel over the store at ``db`` (a path or URL; default from settings)."""
        return cls(load_settings(db=db, **settings))

    # -- lifecycle -------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The store, opened (and migrated) on first use."""
        if self._store is None:
            self._store = self.open_store(self.settings.store_url)
        return self._store

    def open_store(self, url: str) -> Store:
        """Open a store through the backend registered for the URL's scheme."""
        scheme = url.split("://", 1)[0] if "://" in url else "sqlite"
        for name in self.registry.names("store"):
            reg = self.registry.get("store", name)
            if scheme in getattr(reg.cls, "schemes", ()):
                backend = self.registry.create("store", name, {})
                store: Store = backend.open(url)
                return store
        raise ConfigError(f"no store backend for {scheme}:// URLs (is its plugin installed?)")

    def close(self) -> None:
        """Close the store."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plugins ---------------------------------------------------------------

    def plugin(
        self,
        kind: str,
        use: str,
        config: Mapping[str, Any] | None = None,
        *,
        base_dir: Path | None = None,
        where: str = "",
    ) -> Any:
        """A configured instance of plugin ``use`` of ``kind`` (source, channel, …)."""
        return self.registry.create(
            kind, use, config or {}, base_dir=base_dir, kernel=self, where=where
        )

    # -- ingest ----------------------------------------------------------------

    def ingest(
        self,
        source: Source,
        *,
        name: str | None = None,
        key: str = "email",
        attributes: Mapping[str, AttributeType] | None = None,
        rejects: str | Path | None = None,
        dry_run: bool = False,
        full: bool = False,
        on_batch: Callable[[int], None] | None = None,
        consent: Sequence[ConsentColumn] = (),
    ) -> IngestReport:
        """Import everything new from ``source`` into the store.

        ``name`` identifies the source across runs (its checkpoint and its
        identities); ``key`` is the upsert key (``email`` or ``external_id``);
        ``rejects`` is the CSV file that lists every row or value not imported;
        ``full`` ignores the checkpoint and reads everything again;
        ``consent`` names columns whose values are recorded in the consent
        ledger with the file and line as evidence.
        """
        ing = Ingester(
            self,
            source,
            name=name or source.name,
            key=key,
            attributes=attributes,
            rejects=Path(rejects) if rejects else None,
            dry_run=dry_run,
            full=full,
            on_batch=on_batch,
            consent=consent,
        )
        return ing.run()

    def import_file(
        self,
        path: str | Path,
        *,
        kind: str | None = None,
        format: str | None = None,
        key: str = "email",
        preset: str | None = None,
        columns: Mapping[str, str] | None = None,
        rejects: str | Path | None = None,
        dry_run: bool = False,
        name: str | None = None,
        on_batch: Callable[[int], None] | None = None,
        consent: Sequence[ConsentColumn] = (),
        attributes: Mapping[str, AttributeType] | None = None,
        full: bool = False,
    ) -> IngestReport:
        """Import one CSV or JSONL file; the format is guessed from its name and contents.

        ``attributes`` declares the types of custom columns; undeclared ones are
        inferred (and shown in the report). ``full`` reads the whole file again
        instead of resuming after the last imported row."""
        p = Path(path)
        fmt = format or guess_format(p)
        config: dict[str, Any] = {"path": str(p.resolve())}
        if kind:
            config["kind"] = kind
        if preset:
            config["preset"] = preset
        if columns:
            config["columns"] = dict(columns)
        source = self.plugin("source", fmt, config)
        if rejects is None:
            rejects = p.with_name(p.name + ".rejects.csv")
        return self.ingest(
            source,
            name=name or f"file:{p.name}",
            key=key,
            rejects=rejects,
            dry_run=dry_run,
            on_batch=on_batch,
            consent=consent,
            attributes=attributes,
            full=full,
        )

    # -- contacts --------------------------------------------------------------

    def find_contacts(
        self, text: str | None = None, *, limit: int = 50, offset: int = 0, **filters: Any
    ) -> list[Contact]:
        """Live contacts matching ``text`` (name, email, company, city) and filters."""
        return self.store.find_contacts(
            ContactQuery(text=text, limit=limit, offset=offset, **filters)
        )

    def contact(self, contact_id: int) -> Contact:
        """One contact by id; a merged id resolves to its survivor."""
        live = self.store.resolve_ids([contact_id]).get(contact_id, contact_id)
        found = self.store.get_contacts([live])
        if not found:
            raise NotFoundError(f"no contact with id {contact_id}")
        return found[0]

    def timeline(self, contact_id: int, *, limit: int = 50) -> list[Interaction]:
        """A contact's interactions, newest first."""
        return self.store.timeline(self.contact(contact_id).id, limit=limit)

    def export_contacts(
        self,
        out: str | Path,
        *,
        fields: Sequence[str] | None = None,
        segment: str | None = None,
        fmt: Literal["csv", "jsonl"] | None = None,
    ) -> int:
        """Write live contacts, or the members of ``segment``, to a CSV or JSON Lines
        file (see :mod:`crmkit.export`); returns how many were written."""
        from crmkit.export import export_contacts

        return export_contacts(self.store, Path(out), fields=fields, segment=segment, fmt=fmt)

    def erase_contacts(self, ids: Sequence[int], *, actor: str = "api") -> EraseResult:
        """Erase the people behind ``ids`` for good (right to be forgotten); see
        :mod:`crmkit.privacy` for what goes and the keyed hash that stays."""
        from crmkit.privacy import erase_contacts

        return erase_contacts(self, ids, actor=actor)

    # -- segments ----------------------------------------------------------------

    @property
    def segments(self) -> Segments:
        """The segment service: add, run, preview, explain, members, history."""
        from crmkit.segments import Segments

        return Segments(self)

    # -- dedupe and merges -------------------------------------------------------

    @property
    def survivorship_rules(self) -> dict[str, Any]:
        """Survivorship rules by name: the built-ins and those plugins registered."""
        from crmkit.merge import RULES

        return {**RULES, **{n: r for n, (r, _) in self.registry.survivorship.items()}}

    def dedupe(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        labels: Sequence[LabelledPair] | str | Path = (),
    ) -> DedupeResult:
        """Find duplicate clusters among live contacts (nothing is changed).

        ``labels``: reviewed pairs of contact ids that refine the model, or
        the path of a CSV of them (see :func:`crmkit.dedupe.read_labels`).
        """
        from crmkit.dedupe import find_duplicates, labels_from, parse_config

        pairs = labels_from(labels)
        return find_duplicates(self.store, parse_config(dict(config or {})), labels=pairs)

    def label_pairs(self, pairs: Sequence[LabelledPair] | str | Path, *, actor: str = "api") -> int:
        """Record reviewed pairs of contacts in the store (the same person or
        not), or a CSV of them (:func:`crmkit.dedupe.read_labels`): every
        later dedupe trains on them and keeps a "not the same" pair apart.
        A pair labelled again takes the new verdict. Returns the pairs recorded."""
        from crmkit.dedupe import labels_from

        given = labels_from(pairs)
        return self.store.label_pairs([(p.left, p.right, p.match) for p in given], actor=actor)

    def match_index(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        labels: Sequence[LabelledPair] | str | Path = (),
    ) -> ContactIndex:
        """Live contacts fitted and indexed for matching new records against
        them: ``k.match_index().match({"email": ..., "first_name": ...})``.

        Build it once (it trains like :meth:`dedupe`) and keep it: each match
        then takes microseconds. It is a snapshot; build it again to take in
        contacts added since.
        """
        from crmkit.dedupe import build_index, labels_from, parse_config

        return build_index(self.store, parse_config(dict(config or {})), labels=labels_from(labels))

    def plan_merges(
        self,
        result: DedupeResult,
        *,
        rule: str = "most_complete",
        survivor: str = "oldest",
        options: Mapping[str, Any] | None = None,
    ) -> MergePlan:
        """A reviewable merge plan for a dedupe result (``plan.diff()``)."""
        from crmkit.merge import build_plan

        return build_plan(
            self.store,
            result,
            rule=rule,
            survivor=survivor,  # type: ignore[arg-type]
            options=options,
            rules=self.survivorship_rules,
        )

    def merge(self, plan: MergePlan, *, actor: str = "api") -> list[MergeEvent]:
        """Apply a merge plan in one transaction; returns one merge event per cluster."""
        from crmkit.merge import apply_plan

        return apply_plan(self, plan, actor=actor)

    def undo_merge(self, merge_id: int, *, actor: str = "api", force: bool = False) -> MergeEvent:
        """Undo a merge exactly, from its record."""
        from crmkit.merge import undo

        return undo(self, merge_id, actor=actor, force=force)

    # -- categorize ------------------------------------------------------------

    def categorize(
        self,
        uses: Sequence[str | tuple[str, Mapping[str, Any]]] | None = None,
        *,
        as_of: float | None = None,
    ) -> dict[str, int]:
        """Run categorizers over the whole base; returns, per categorizer, how many
        contacts' values it changed.

        All of them read one snapshot taken before the first runs, so none sees
        another's output of this call (run them in separate calls for that).
        Their results are written together in one transaction, and only for the
        contacts whose values changed, so that a daily re-run writes little.
        """
        from crmkit.bulk import collector_paused
        from crmkit.snapshot import build_snapshot

        items: list[tuple[str, Mapping[str, Any]]] = []
        for u in uses if uses is not None else self.registry.names("categorizer"):
            items.append((u, {}) if isinstance(u, str) else (u[0], u[1]))
        # One snapshot for every categorizer: reading the store is the costly part.
        snap = build_snapshot(self.store, as_of=as_of)
        n = len(snap.ids)
        out: dict[str, int] = {}
        declared: list[tuple[str, dict[str, AttributeType]]] = []
        merged: dict[str, Sequence[Any]] = {}
        owner: dict[str, str] = {}
        changed: set[int] = set()
        with collector_paused():
            for use, cfg in items:
                cat: Categorizer = self.plugin("categorizer", use, cfg)
                cols = cat.categorize(snap)
                for name, col in cols.items():
                    if name in owner:
                        raise ConfigError(
                            f"categorizers {owner[name]!r} and {use!r} both produce {name!r}"
                        )
                    if len(col) != n:
                        raise PluginError(use, f"{name!r} has {len(col)} values for {n} contacts")
                    owner[name] = use
                declared.append(
                    (use, {k: v for k, v in cat.produces.items() if k != "lifecycle_stage"})
                )
                mine = _changed_rows(snap.contacts, cols, n)
                out[use] = len(mine)
                changed.update(mine)
                merged.update(cols)
            rows = sorted(changed)
            with self.store.transaction():
                for use, types in declared:
                    if types:
                        self.store.declare_attributes(types, source=f"categorizer:{use}")
                if rows:
                    self.store.set_attributes(
                        [snap.ids[i] for i in rows],
                        {c: [v[i] for i in rows] for c, v in merged.items()},
                    )
        return out

    # -- reports ---------------------------------------------------------------

    def report(self, name: str = "summary") -> Report:
        """A named report as plain data (see :mod:`crmkit.reports`)."""
        from crmkit.reports import build_report

        return build_report(self, name)

    def render(
        self,
        report: Report,
        use: str = "terminal",
        config: Mapping[str, Any] | None = None,
        *,
        out: Any = None,
        base_dir: Path | None = None,
    ) -> None:
        """Render a report with reporter plugin ``use``."""
        reporter: Reporter = self.plugin("reporter", use, config or {}, base_dir=base_dir)
        reporter.render(report, out)

    # -- workflows -------------------------------------------------------------

    def run_workflow(
        self, path: str | Path, *, dry_run: bool = False, progress: Any = None
    ) -> dict[str, Any]:
        """Validate then run a workflow file; returns a summary of each step."""
        from crmkit.workflow import load_workflow, run_workflow

        wf = load_workflow(Path(path), self.registry)
        return run_workflow(self, wf, dry_run=dry_run, progress=progress)

    @staticmethod
    def new_run_id() -> str:
        """A fresh run id."""
        return uuid.uuid4().hex[:12]


def guess_format(path: Path) -> str:
    """``csv`` or ``jsonl`` from a file's name, else from its first bytes."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    try:
        with path.open("rb") as f:
            head = f.read(256).lstrip()
    except OSError:
        return "csv"
    return "jsonl" if head.startswith(b"{") else "csv"
