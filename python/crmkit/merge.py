"""Merge plans: from clusters of duplicates to golden records, and back.

A plan holds, for each cluster, the survivor (the record that stays; by
default the oldest) and the value chosen for each field by a survivorship
rule. It can be reviewed as a diff (:meth:`MergePlan.diff`) before
:func:`apply_plan` writes it in one transaction; every merge is recorded with
field-level provenance and a before image, and :func:`undo` restores it.

Survivorship rules
------------------

A rule picks, for one field of one cluster, the contact whose value wins::

    def rule(field: str, candidates: Sequence[Candidate], options: Mapping[str, Any]) -> int | None

``candidates`` are the cluster's contacts that have a value for the field,
survivor first then by id; the rule returns one of their ids (or ``None`` for
the survivor's own value). ``field`` is a contact field or ``"address"`` (street,
city, region, postcode and country move together). Built in:
``most_complete`` (the value of the most complete record), ``most_recent``
(of the most recently updated record) and ``source_priority`` (of the record
whose source comes first in ``options["sources"]``, then the most recent).
:func:`register_rule` adds one.

Emails and phones that lose are kept in the survivor's attributes
(``alt_emails``, ``alt_phones``); tags are united; custom attributes are
filled from the merged records where the survivor has none.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from crmkit.bulk import collector_paused
from crmkit.errors import ConfigError
from crmkit.records import MergeEvent
from crmkit.store.base import MergeSpec

if TYPE_CHECKING:
    from crmkit.dedupe import DedupeResult
    from crmkit.kernel import Kernel
    from crmkit.store.base import Store


Candidate = Mapping[str, Any]
"""A stored contact row (``id``, fields, ``tags``, ``attrs``, ``source``, ``updated_at`` …)."""

SurvivorshipRule = Callable[[str, Sequence[Candidate], Mapping[str, Any]], "int | None"]
"""``rule(field, candidates, options) -> winning contact id`` (``None``: the survivor's)."""

ADDRESS: tuple[str, ...] = ("street", "city", "region", "postcode", "country")
"""Address parts, chosen together from one record."""

SINGLE_FIELDS: tuple[str, ...] = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "company",
    "job_title",
    "birth_date",
    "lifecycle_stage",
)
"""Fields chosen one by one."""

_DATA_FIELDS = SINGLE_FIELDS + ADDRESS


_DATA_VALUES = operator.itemgetter(*_DATA_FIELDS)


def _completeness(row: Candidate) -> int:
    """How many data fields ``row`` fills (rules call this per field and candidate)."""
    vals: tuple[Any, ...]
    try:
        vals = _DATA_VALUES(row)
    except KeyError:
        vals = tuple(row.get(f) for f in _DATA_FIELDS)
    return len(vals) - vals.count(None) - vals.count("")


def most_complete(field: str, candidates: Sequence[Candidate], options: Mapping[str, Any]) -> int:
    """The value of the record with the most fields filled (ties: survivor, then lowest id)."""
    best = max(enumerate(candidates), key=lambda t: (_completeness(t[1]), -t[0]))
    return int(best[1]["id"])


def most_recent(field: str, candidates: Sequence[Candidate], options: Mapping[str, Any]) -> int:
    """The value of the most recently updated record (ties: survivor, then lowest id)."""
    best = max(enumerate(candidates), key=lambda t: (t[1].get("updated_at") or 0, -t[0]))
    return int(best[1]["id"])


def source_priority(field: str, candidates: Sequence[Candidate], options: Mapping[str, Any]) -> int:
    """The value from the first source in ``options["sources"]``; then the most recent."""
    order = list(options.get("sources") or [])
    rank = {s: i for i, s in enumerate(order)}

    def key(t: tuple[int, Candidate]) -> tuple[int, int, int]:
        pos, row = t
        return (-rank.get(row.get("source") or "", len(order)), row.get("updated_at") or 0, -pos)

    return int(max(enumerate(candidates), key=key)[1]["id"])


RULES: dict[str, SurvivorshipRule] = {
    "most_complete": most_complete,
    "most_recent": most_recent,
    "source_priority": source_priority,
}
"""Survivorship rules by name."""


def register_rule(name: str, rule: SurvivorshipRule, *, replace: bool = False) -> None:
    """Make ``rule`` available under ``name`` (a plugin's survivorship rule)."""
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"survivorship rule name {name!r} must be letters, digits, - or _")
    if name in RULES and not replace:
        raise ConfigError(f"survivorship rule {name!r} is already registered")
    RULES[name] = rule


class FieldChange(msgspec.Struct, frozen=True, kw_only=True):
    """One field of the survivor changed by a merge: its old and new value and their origin."""

    field: str
    old: Any
    new: Any
    from_id: int | None
    """The contact the new value comes from; None when combined from all (tags, attributes)."""


class ClusterPlan(msgspec.Struct, kw_only=True):
    """The merge of one cluster: survivor, merged ids and the survivor's new values."""

    cluster_id: int
    survivor_id: int
    merged_ids: list[int]
    changes: list[FieldChange]
    values: dict[str, Any]
    provenance: dict[str, int]
    score: float | None = None
    pairs: list[tuple[int, int, float]] = msgspec.field(default_factory=list)

    def spec(self) -> MergeSpec:
        """What the store needs to apply this merge."""
        return MergeSpec(
            survivor_id=self.survivor_id,
            merged_ids=tuple(self.merged_ids),
            values=self.values,
            score=self.score,
            explanation={"pairs": [list(p) for p in self.pairs]} if self.pairs else {},
            provenance={"fields": dict(self.provenance), "cluster_id": self.cluster_id},
        )


class MergePlan(msgspec.Struct, kw_only=True):
    """Merges to review (:meth:`diff`) and apply (:func:`apply_plan`)."""

    rule: str
    survivor: str
    clusters: list[ClusterPlan]

    def __len__(self) -> int:
        return len(self.clusters)

    @property
    def merged(self) -> int:
        """Records that would be merged away."""
        return sum(len(c.merged_ids) for c in self.clusters)

    def diff(self, *, values: bool = False) -> list[dict[str, Any]]:
        """Per cluster: survivor, merged ids and field changes.

        Without ``values`` each change names the field and the contact it comes
        from only (safe for logs); with ``values`` it adds old and new values, for
        showing to the user who asked.
        """
        out = []
        for c in self.clusters:
            changes = []
            for ch in c.changes:
                d: dict[str, Any] = {"field": ch.field, "from": ch.from_id}
                if values:
                    d["old"], d["new"] = ch.old, ch.new
                changes.append(d)
            out.append(
                {
                    "cluster_id": c.cluster_id,
                    "survivor": c.survivor_id,
                    "merged": list(c.merged_ids),
                    "score": c.score,
                    "changes": changes,
                }
            )
        return out


def _pick_survivor(rows: Sequence[Candidate], how: str) -> Candidate:
    if how == "oldest":
        return min(rows, key=lambda r: (r.get("created_at") or 0, r["id"]))
    return max(rows, key=lambda r: (_completeness(r), -(r.get("created_at") or 0), -r["id"]))


def _plan_cluster(
    cluster_id: int,
    rows: Sequence[Candidate],
    survivor: str,
    rule: SurvivorshipRule,
    options: Mapping[str, Any],
) -> ClusterPlan:
    surv = _pick_survivor(rows, survivor)
    ordered = [surv, *sorted((r for r in rows if r is not surv), key=lambda r: r["id"])]
    by_id = {r["id"]: r for r in ordered}
    values: dict[str, Any] = {}
    provenance: dict[str, int] = {}
    changes: list[FieldChange] = []

    def choose(name: str, has: Callable[[Candidate], bool]) -> int:
        cands = [r for r in ordered if has(r)]
        if not cands:
            return int(surv["id"])
        won = rule(name, cands, options)
        if won is None:
            won = int(surv["id"]) if has(surv) else int(cands[0]["id"])
        if won not in by_id or not has(by_id[won]):
            raise ConfigError(
                f"survivorship rule returned contact {won}, which is not a candidate for {name}"
            )
        return int(won)

    def take(f: str, src: int) -> None:
        new = by_id[src].get(f)
        provenance[f] = src
        if new != surv.get(f):
            values[f] = new
            changes.append(FieldChange(field=f, old=surv.get(f), new=new, from_id=src))

    def filled(f: str) -> Callable[[Candidate], bool]:
        return lambda r: r.get(f) not in (None, "")

    for f in SINGLE_FIELDS:
        take(f, choose(f, filled(f)))
    src = choose("address", lambda r: any(r.get(p) not in (None, "") for p in ADDRESS))
    for p in ADDRESS:
        take(p, src)

    tags: list[str] = []
    for r in ordered:
        for t in r.get("tags") or []:
            if t not in tags:
                tags.append(t)
    if tags != list(surv.get("tags") or []):
        values["tags"] = tags
        changes.append(
            FieldChange(field="tags", old=surv.get("tags") or [], new=tags, from_id=None)
        )

    attrs = dict(surv.get("attrs") or {})
    for r in ordered[1:]:
        for k, v in (r.get("attrs") or {}).items():
            if k not in ("alt_emails", "alt_phones") and attrs.get(k) is None and v is not None:
                attrs[k] = v
                provenance[f"attrs.{k}"] = int(r["id"])
    final_email = values.get("email", surv.get("email"))
    final_phone = values.get("phone", surv.get("phone"))
    for key, f, final in (
        ("alt_emails", "email", final_email),
        ("alt_phones", "phone", final_phone),
    ):
        alts: list[str] = []
        for r in ordered:
            for v in [r.get(f), *((r.get("attrs") or {}).get(key) or [])]:
                if v not in (None, "", final) and v not in alts:
                    alts.append(v)
        if alts:
            attrs[key] = alts
    if attrs != (surv.get("attrs") or {}):
        values["attrs"] = attrs
        changes.append(
            FieldChange(field="attributes", old=surv.get("attrs") or {}, new=attrs, from_id=None)
        )
    return ClusterPlan(
        cluster_id=cluster_id,
        survivor_id=int(surv["id"]),
        merged_ids=[int(r["id"]) for r in ordered[1:]],
        changes=changes,
        values=values,
        provenance=provenance,
    )


@collector_paused()
def build_plan(
    store: Store,
    clusters: Mapping[int, Sequence[int]] | DedupeResult,
    *,
    rule: str = "most_complete",
    survivor: Literal["oldest", "most_complete"] = "oldest",
    options: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    rules: Mapping[str, SurvivorshipRule] | None = None,
) -> MergePlan:
    """A merge plan for ``clusters`` (cluster id → contact ids, or a dedupe result).

    ``rule`` names a survivorship rule of ``rules`` (default :data:`RULES`, the
    built-ins; :attr:`crmkit.Kernel.survivorship_rules` adds the plugins'); ``survivor`` is
    ``oldest`` (earliest created, then lowest id) or ``most_complete``;
    ``options`` go to the rule (``{"sources": [...]}`` for ``source_priority``).
    """
    rules = RULES if rules is None else rules
    if rule not in rules:
        raise ConfigError(f"unknown survivorship rule {rule!r} (known: {', '.join(sorted(rules))})")
    if survivor not in ("oldest", "most_complete"):
        raise ConfigError(f"survivor must be 'oldest' or 'most_complete', not {survivor!r}")
    opts = dict(options or {})
    if rule == "source_priority" and not opts.get("sources"):
        raise ConfigError("survivorship rule 'source_priority' needs a list of sources")
    fn = rules[rule]
    pairs: dict[int, list[tuple[int, int, float]]] = {}
    groups: Mapping[int, Sequence[int]]
    if isinstance(clusters, Mapping):
        groups = clusters
    else:
        groups = clusters.clusters
        for c, ps in clusters.cluster_pairs().items():
            pairs[c] = [(p.left, p.right, p.probability) for p in ps]
    if progress:
        progress("planning")
    rows = store.contact_rows([i for ids in groups.values() for i in ids])
    plans: list[ClusterPlan] = []
    for cid, ids in sorted(groups.items()):
        live = [rows[i] for i in ids if i in rows and rows[i]["merged_into"] is None]
        if len(live) < 2:
            continue
        cp = _plan_cluster(cid, live, survivor, fn, opts)
        cp.pairs = pairs.get(cid, [])
        if cp.pairs:
            cp.score = min(p[2] for p in cp.pairs)
        plans.append(cp)
    return MergePlan(rule=rule, survivor=survivor, clusters=plans)


@collector_paused()
def apply_plan(
    kernel: Kernel,
    plan: MergePlan,
    *,
    actor: str = "crmkit",
    on_merge: Callable[[int], None] | None = None,
) -> list[MergeEvent]:
    """Apply every merge of ``plan`` in one transaction, then fire ``contacts_merged``.

    Nothing is written if any merge fails (a contact merged since the plan was
    built, a store error, ``on_merge`` raising).
    """
    events = kernel.store.apply_merges(
        [c.spec() for c in plan.clusters], actor=actor, on_merge=on_merge
    )
    if events:
        kernel.hooks.contacts_merged(kernel, events)
    return events


def undo(
    kernel: Kernel, merge_id: int, *, actor: str = "crmkit", force: bool = False
) -> MergeEvent:
    """Undo merge ``merge_id`` (see :meth:`crmkit.store.base.Store.undo_merge`)."""
    return kernel.store.undo_merge(merge_id, actor=actor, force=force)


__all__ = [
    "ADDRESS",
    "RULES",
    "SINGLE_FIELDS",
    "Candidate",
    "ClusterPlan",
    "FieldChange",
    "MergePlan",
    "SurvivorshipRule",
    "apply_plan",
    "build_plan",
    "most_complete",
    "most_recent",
    "register_rule",
    "source_priority",
    "undo",
]
