"""Merge plans, merges in one transaction, and undo back to the exact prior state."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.errors import ConfigError, NotFoundError
from crmkit.hookspecs import hookimpl
from crmkit.kernel import Kernel
from crmkit.merge import RULES, MergePlan, apply_plan, build_plan, register_rule, undo
from crmkit.records import Consent, MergeEvent
from crmkit.store import merges as merges_module
from crmkit.store.merges import MergeConflictError, list_merges, undo_check
from crmkit.store.sqlite import SQLiteStore

TABLES = ("contacts", "interactions", "consents", "memberships", "identities", "companies")


def _snapshot(store: SQLiteStore) -> dict[str, list[tuple[Any, ...]]]:
    return {t: list(store.iter_table(t)) for t in TABLES}


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel.open(tmp_path / "crm.db", disable_plugin_autoload=True)
    yield k
    k.close()


def _seed(k: Kernel) -> SQLiteStore:
    """Eight contacts (three clusters and two loners) with linked rows of every kind."""
    s = k.store
    assert isinstance(s, SQLiteStore)
    s.upsert_contacts(
        {
            "external_id": [f"R{i}" for i in range(1, 9)],
            "email": [
                "ann@x.org",
                "ann.lee@y.org",
                None,
                "bob@x.org",
                "robert@z.org",
                "cy@x.org",
                "cy2@x.org",
                "dee@x.org",
            ],
            "first_name": ["Ann", "Ann", "Ann", "Bob", "Robert", "Cy", None, "Dee"],
            "last_name": ["Lee", "Lee", "Lee", "Ray", "Ray", "Moe", "Moe", "Day"],
            "phone": [None, "+15550001", "+15550002", "+15550003", None, None, None, None],
            "city": ["Oslo", None, "Bergen", "Rome", "Rome", None, "Lima", None],
            "street": ["1 Main St", None, "2 Side St", None, "3 Via", None, None, None],
            "company": [None, None, None, None, "Ray Co", None, None, None],
            "postcode": [None, None, "5003", None, None, None, None, None],
            "tags": [["vip"], ["b2b"], None, None, ["vip", "x"], None, None, None],
            "plan": ["Pro", None, "Free", None, "Free", None, None, None],
        },
        key="external_id",
        source="crm",
    )
    s.add_interactions(
        {
            "contact_id": [1, 2, 2, 3, 5, 7, 8],
            "kind": ["purchase"] * 7,
            "occurred_at": [1_700_000_000 + i for i in range(7)],
            "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        },
        source="shop",
    )
    s.record_consents(
        [
            Consent(contact_id=2, channel="email", purpose="marketing", status="given", source="t"),
            Consent(
                contact_id=5, channel="sms", purpose="marketing", status="withdrawn", source="t"
            ),
        ]
    )
    with s.transaction():
        s.conn.executemany(
            "INSERT INTO memberships(segment, contact_id, entered_at) VALUES (?, ?, ?)",
            [("vip", 3, 1), ("vip", 5, 1), ("all", 8, 1)],
        )
    return s


CLUSTERS = {1: [1, 2, 3], 4: [4, 5], 6: [6, 7]}


def test_plan_most_complete_keeps_alternates_and_unites_tags(kernel: Kernel) -> None:
    s = _seed(kernel)
    plan = build_plan(s, CLUSTERS)
    assert [(c.survivor_id, c.merged_ids) for c in plan.clusters] == [
        (1, [2, 3]),
        (4, [5]),
        (6, [7]),
    ]
    ann = plan.clusters[0]
    # Contact 3 is the most complete record of cluster 1: its phone and address win.
    assert ann.values["phone"] == "+15550002"
    assert (ann.values["city"], ann.values["street"], ann.values["postcode"]) == (
        "Bergen",
        "2 Side St",
        "5003",
    )
    assert ann.provenance["city"] == ann.provenance["street"] == 3
    assert "email" not in ann.values  # the survivor's own email stays
    attrs = ann.values["attrs"]
    assert attrs["alt_emails"] == ["ann.lee@y.org"]
    assert attrs["alt_phones"] == ["+15550001"]
    assert attrs["plan"] == "Pro"
    assert ann.values["tags"] == ["vip", "b2b"]
    # The diff names fields and ids only unless values are asked for.
    d = plan.diff()
    assert all("old" not in ch for c in d for ch in c["changes"])
    dv = plan.diff(values=True)
    phone = next(ch for ch in dv[0]["changes"] if ch["field"] == "phone")
    assert (phone["old"], phone["new"], phone["from"]) == (None, "+15550002", 3)


def test_rules_most_recent_and_source_priority(kernel: Kernel) -> None:
    s = _seed(kernel)
    s.conn.execute("UPDATE contacts SET updated_at = updated_at + 100, source = 'web' WHERE id = 5")
    rec = build_plan(s, {4: [4, 5]}, rule="most_recent")
    assert rec.clusters[0].values["first_name"] == "Robert"
    assert rec.clusters[0].values["email"] == "robert@z.org"
    assert rec.clusters[0].values["attrs"]["alt_emails"] == ["bob@x.org"]
    pri = build_plan(s, {4: [4, 5]}, rule="source_priority", options={"sources": ["crm", "web"]})
    assert "first_name" not in pri.clusters[0].values  # crm (contact 4) wins
    pri2 = build_plan(s, {4: [4, 5]}, rule="source_priority", options={"sources": ["web"]})
    assert pri2.clusters[0].values["first_name"] == "Robert"
    surv = build_plan(s, {4: [4, 5]}, survivor="most_complete")
    assert surv.clusters[0].survivor_id == 5
    with pytest.raises(ConfigError, match="needs a list of sources"):
        build_plan(s, CLUSTERS, rule="source_priority")
    with pytest.raises(ConfigError, match="unknown survivorship rule 'nope'"):
        build_plan(s, CLUSTERS, rule="nope")


def test_a_registered_rule_is_used_and_checked(kernel: Kernel) -> None:
    s = _seed(kernel)

    def last_id(field: str, cands: Sequence[Mapping[str, Any]], opts: Mapping[str, Any]) -> int:
        return int(cands[-1]["id"])

    register_rule("test_last_id", last_id)
    try:
        plan = build_plan(s, {4: [4, 5]}, rule="test_last_id")
        assert plan.clusters[0].values["first_name"] == "Robert"
        with pytest.raises(ConfigError, match="already registered"):
            register_rule("test_last_id", last_id)
        register_rule("test_bad", lambda f, c, o: 999)
        with pytest.raises(ConfigError, match="not a candidate"):
            build_plan(s, {4: [4, 5]}, rule="test_bad")
    finally:
        RULES.pop("test_last_id", None)
        RULES.pop("test_bad", None)


def test_apply_relinks_everything_and_undo_restores_every_table(kernel: Kernel) -> None:
    s = _seed(kernel)
    before = _snapshot(s)
    plan = build_plan(s, CLUSTERS)
    events = apply_plan(kernel, plan)
    assert len(events) == 3 and len(list_merges(s)) == 3
    assert s.count_contacts() == 4
    assert s.resolve_ids([2, 3, 5, 7, 8]) == {2: 1, 3: 1, 5: 4, 7: 6, 8: 8}
    assert {r[1] for r in s.iter_table("interactions")} == {1, 4, 6, 8}
    assert {r[1] for r in s.iter_table("consents")} == {1, 4}
    assert {r[2] for r in s.iter_table("memberships")} == {1, 4, 8}
    assert kernel.contact(3).id == 1
    assert kernel.contact(1).attributes["alt_phones"] == ["+15550001"]
    audit = [a for a in s.audit_log() if a.action == "contacts.merge"]
    assert sorted(a.ids for a in audit) == [(1, 2, 3), (4, 5), (6, 7)]
    assert all(set(a.details) == {"merge_id"} for a in audit)
    ev = events[0]
    assert ev.provenance["fields"]["phone"] == 3
    for e in reversed(events):
        undo(kernel, e.id)
    assert _snapshot(s) == before
    with pytest.raises(MergeConflictError, match="already undone"):
        undo(kernel, events[0].id)
    with pytest.raises(NotFoundError, match="no merge with id 999"):
        undo(kernel, 999)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.integers(min_value=0, max_value=7), min_size=8, max_size=8),
    st.sampled_from(["most_complete", "most_recent"]),
    st.permutations(range(3)),
    st.sampled_from([1, 2, 2048]),
)
def test_any_partition_merges_and_undoes_exactly(
    tmp_path_factory: pytest.TempPathFactory,
    labels: list[int],
    rule: str,
    undo_order: list[int],
    step: int,
) -> None:
    """Random clusterings of the seeded contacts: merge (``step`` merges written
    at a time), undo in any allowed order, same store."""
    k = Kernel.open(tmp_path_factory.mktemp("p") / "crm.db", disable_plugin_autoload=True)
    default_step, merges_module._STEP = merges_module._STEP, step
    try:
        s = _seed(k)
        groups: dict[int, list[int]] = {}
        for cid, lab in zip(range(1, 9), labels, strict=True):
            groups.setdefault(lab, []).append(cid)
        clusters = {min(v): v for v in groups.values() if len(v) > 1}
        before = _snapshot(s)
        events = apply_plan(k, build_plan(s, clusters, rule=rule))
        assert s.count_contacts() == 8 - sum(len(v) - 1 for v in clusters.values())
        # Merges of disjoint clusters can be undone in any order.
        order = [i for i in undo_order if i < len(events)] + list(range(3, len(events)))
        assert [e.id for e in events] == list(range(1, len(events) + 1))
        for i in order:
            undo(k, events[i].id)
        assert _snapshot(s) == before
    finally:
        merges_module._STEP = default_step
        k.close()


def test_undo_refused_after_a_later_merge_involving_the_survivor(kernel: Kernel) -> None:
    s = _seed(kernel)
    first = apply_plan(kernel, build_plan(s, {1: [1, 2]}))[0]
    second = apply_plan(kernel, build_plan(s, {1: [1, 3]}))[0]
    assert not undo_check(s, first.id)["ok"]
    with pytest.raises(MergeConflictError, match=f"undo merge {second.id} first"):
        undo(kernel, first.id)
    undo(kernel, second.id)
    undo(kernel, first.id)
    assert s.count_contacts() == 8


def test_undo_refused_when_the_survivor_changed_unless_forced(kernel: Kernel) -> None:
    s = _seed(kernel)
    before = _snapshot(s)
    ev = apply_plan(kernel, build_plan(s, {4: [4, 5]}))[0]
    s.conn.execute("UPDATE contacts SET updated_at = updated_at + 5, company = 'Acme' WHERE id = 4")
    with pytest.raises(MergeConflictError, match="changed after the merge"):
        undo(kernel, ev.id)
    undo(kernel, ev.id, force=True)
    assert _snapshot(s) == before


def test_a_failure_mid_apply_leaves_the_store_as_before(kernel: Kernel) -> None:
    s = _seed(kernel)
    before = _snapshot(s)
    merges_before = list(s.iter_table("merges"))
    audit_before = list(s.iter_table("audit"))
    plan = build_plan(s, CLUSTERS)

    def boom(n: int) -> None:
        if n == 2:
            raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected"):
        apply_plan(kernel, plan, on_merge=boom)
    assert _snapshot(s) == before
    assert list(s.iter_table("merges")) == merges_before
    assert list(s.iter_table("audit")) == audit_before
    # A store error half way (a constraint) also rolls everything back.
    s.conn.execute(
        "CREATE TRIGGER no_merge_6 BEFORE UPDATE OF merged_into ON contacts "
        "WHEN NEW.id = 7 BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    with pytest.raises((MergeConflictError, sqlite3.DatabaseError)):
        apply_plan(kernel, plan)
    assert _snapshot(s) == before
    assert list(s.iter_table("merges")) == merges_before


def test_stale_plans_and_overlaps_are_refused_whole(kernel: Kernel) -> None:
    s = _seed(kernel)
    plan = build_plan(s, CLUSTERS)
    apply_plan(kernel, build_plan(s, {4: [4, 5]}))
    snap = _snapshot(s)
    with pytest.raises(MergeConflictError, match="already merged into contact 4"):
        apply_plan(kernel, plan)
    assert _snapshot(s) == snap
    # A plan built now leaves out what was merged since.
    assert [c.survivor_id for c in build_plan(s, CLUSTERS).clusters] == [1, 6]
    overlap = MergePlan(rule="x", survivor="oldest", clusters=plan.clusters[:1] + plan.clusters[:1])
    with pytest.raises(MergeConflictError, match="more than one merge"):
        apply_plan(kernel, overlap)


def test_contacts_merged_hook_fires_after_commit(tmp_path: Path) -> None:
    seen: list[tuple[list[MergeEvent], int]] = []

    class Listener:
        @hookimpl
        def crmkit_contacts_merged(self, kernel: Kernel, events: Sequence[MergeEvent]) -> None:
            # After the commit: a fresh connection sees the merges.
            conn = sqlite3.connect(kernel.store.path)  # type: ignore[attr-defined]
            n = conn.execute("SELECT COUNT(*) FROM merges").fetchone()[0]
            conn.close()
            seen.append((list(events), n))

    k = Kernel.open(tmp_path / "crm.db", disable_plugin_autoload=True)
    try:
        k.manager.pm.register(Listener(), name="listener")
        s = _seed(k)
        events = apply_plan(k, build_plan(s, CLUSTERS))
        assert len(seen) == 1 and seen[0][0] == events and seen[0][1] == 3
    finally:
        k.close()


def test_hook_register_survivorship_rules(tmp_path: Path) -> None:
    """A plugin's survivorship rule is chosen by name and decides the merged values."""
    from crmkit import hookimpl
    from crmkit.kernel import Kernel
    from crmkit.plugins import make_plugin_manager
    from crmkit.settings import Settings

    def newest_first_name(field, candidates, options):  # type: ignore[no-untyped-def]
        if field != "first_name":
            return None
        return max(candidates, key=lambda r: r["id"])["id"]

    class Plugin:
        @hookimpl
        def crmkit_register_survivorship_rules(self, register):  # type: ignore[no-untyped-def]
            register("newest_first_name", newest_first_name)

    settings = Settings(db=tmp_path / "crm.db", disable_plugin_autoload=True)
    mgr = make_plugin_manager(settings)
    mgr.pm.register(Plugin(), name="rules-plugin")
    k = Kernel(settings, manager=mgr)
    ids = k.store.upsert_contacts(
        {"email": ["a@x.com", "b@x.com"], "first_name": ["Ann", "Annie"]}, key="email", source="t"
    ).ids
    assert "newest_first_name" in k.survivorship_rules
    plan = k.plan_merges({1: list(ids)}, rule="newest_first_name")  # type: ignore[arg-type]
    events = k.merge(plan)
    assert k.contact(ids[1]).first_name == "Annie"  # type: ignore[arg-type]
    k.undo_merge(events[0].id)
    assert k.contact(ids[0]).first_name == "Ann"  # type: ignore[arg-type]
    # A second plugin taking the same name is named in the error.
    from crmkit.errors import PluginError
    from crmkit.plugins import Registry

    mgr.pm.register(type("Again", (Plugin,), {})(), name="again")
    with pytest.raises(PluginError, match="already registered by plugin 'rules-plugin'"):
        Registry(mgr, strict=True)
    k.close()
