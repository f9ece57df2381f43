"""The segment snapshot kept beside the store: brought up to date from the
store's change log, it always gives the memberships a fresh snapshot gives."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crmkit import _core
from crmkit.kernel import Kernel
from crmkit.merge import build_plan
from crmkit.records import Segment
from crmkit.segments import SNAPSHOT_FILE
from crmkit.settings import Settings
from crmkit.store.base import ChangePosition

DAY = 86400
AS_OF = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
COUNTRIES = ["US", "GB", "DE", "FR", None]
PLANS = ["pro", "free", None]
TAGS = [["vip"], [], ["vip", "new"], None, ["new"]]
RULES = {
    "us": "country = 'US'",
    "pro_vip": "plan = 'pro' and tags contains 'vip'",
    "buyers": "count(purchase, 60 days) >= 2 or sum(purchase.amount) > 50",
    "recent": "created_at within 3650 days and not in_segment('us')",
    "score": "score between 3 and 7",
}


def open_kernel(db: Path, *, cache: bool) -> Kernel:
    return Kernel(Settings(db=db, disable_plugin_autoload=True, snapshot_cache=cache))


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Kernel, Kernel]]:
    """Two kernels on one store: one keeps the snapshot file, one never does."""
    db = tmp_path / "crm.db"
    cached = open_kernel(db, cache=True)
    cached.store.declare_attributes({"plan": "string", "score": "integer"}, source="t")
    cached.segments.add([Segment(name=n, rule=r) for n, r in RULES.items()])
    fresh = open_kernel(db, cache=False)
    yield cached, fresh
    cached.close()
    fresh.close()


def members(k: Kernel) -> dict[str, list[int]]:
    defs = [(s.name, s.rule or "") for s in k.segments.definitions()]
    plan = _core.SegmentPlan(defs, k.segments.schema())
    result = plan.evaluate(k.segments.snapshot(plan.fields()), AS_OF)
    return {n: result.members(n) for n in result.names}


def random_contacts(rng: random.Random, start: int, n: int) -> dict[str, list[object]]:
    return {
        "email": [f"p{start + i}@example.com" for i in range(n)],
        "country": [rng.choice(COUNTRIES) for _ in range(n)],
        "plan": [rng.choice(PLANS) for _ in range(n)],
        "tags": [rng.choice(TAGS) for _ in range(n)],
        "score": [rng.choice([None, 1, 3, 5, 7, 9]) for _ in range(n)],
    }


def live_ids(k: Kernel) -> list[int]:
    ids, _ = k.store.contact_columns([])
    return ids


@pytest.mark.parametrize("seed", range(4))
def test_kept_snapshot_matches_a_fresh_one_after_any_writes(
    pair: tuple[Kernel, Kernel], seed: int
) -> None:
    cached, fresh = pair
    rng = random.Random(seed)
    made = 0
    key = 0
    for _step in range(30):
        op = rng.choice(["new", "update", "attrs", "events", "events", "merge", "erase", "none"])
        ids = live_ids(cached)
        if op == "new" or len(ids) < 4:
            n = rng.randint(1, 20)
            cached.store.upsert_contacts(random_contacts(rng, made, n), key="email", source="t")
            made += n
        elif op == "update":
            picks = rng.sample(range(made), min(made, 5))
            cols = random_contacts(rng, 0, len(picks))
            cols["email"] = [f"p{i}@example.com" for i in picks]
            cached.store.upsert_contacts(cols, key="email", source="t")
        elif op == "attrs":
            picks = rng.sample(ids, min(len(ids), 4))
            cached.store.set_attributes(
                picks, {"score": [rng.choice([None, 2, 4, 6]) for _ in picks]}
            )
        elif op == "events":
            n = rng.randint(1, 15)
            cached.store.add_interactions(
                {
                    "contact_id": [rng.choice(ids) for _ in range(n)],
                    "kind": [rng.choice(["purchase", "email_open"]) for _ in range(n)],
                    "occurred_at": [AS_OF - rng.randint(0, 120) * DAY for _ in range(n)],
                    "amount": [rng.choice([None, 5.0, 40.0]) for _ in range(n)],
                    "key": [f"k{key + i}" for i in range(n)],
                },
                source="t",
            )
            key += n
        elif op == "merge":
            a, b = rng.sample(ids, 2)
            cached.merge(build_plan(cached.store, {1: [a, b]}))
        elif op == "erase":
            cached.erase_contacts([rng.choice(ids)])
        assert members(cached) == members(fresh), f"step {_step}: {op}"
    assert cached.store.cache_path(SNAPSHOT_FILE) is not None
    assert fresh.segments.kernel.settings.snapshot_cache is False


def test_runs_read_only_what_changed(pair: tuple[Kernel, Kernel], tmp_path: Path) -> None:
    cached, _ = pair
    rng = random.Random(7)
    cached.store.upsert_contacts(random_contacts(rng, 0, 50), key="email", source="t")
    path = cached.store.cache_path(SNAPSHOT_FILE)
    assert path is not None and not path.exists()
    first = cached.segments.run(as_of=AS_OF)
    assert path.exists()
    stamp = path.stat().st_ino  # each save renames a new file in
    # Nothing changed: the file is read, not rewritten.
    again = cached.segments.run(as_of=AS_OF)
    assert again.counts == first.counts and path.stat().st_ino == stamp
    # One contact changes: the snapshot is brought up to date, not rebuilt.
    position = cached.store.change_position()
    cached.store.upsert_contacts(
        {"email": ["p0@example.com"], "country": ["US"], "plan": ["pro"], "tags": [["vip"]]},
        key="email",
        source="t",
    )
    changes = cached.store.changes_since(position)
    assert changes is not None and len(changes.contact_ids) == 1
    run = cached.segments.run(as_of=AS_OF)
    assert run.counts["pro_vip"] >= 1 and path.stat().st_ino != stamp


def test_a_damaged_file_is_rebuilt_with_a_warning(
    pair: tuple[Kernel, Kernel], caplog: pytest.LogCaptureFixture
) -> None:
    cached, fresh = pair
    cached.store.upsert_contacts(random_contacts(random.Random(3), 0, 30), key="email", source="t")
    before = members(cached)
    path = cached.store.cache_path(SNAPSHOT_FILE)
    assert path is not None
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="crmkit.segments"):
        assert members(cached) == before == members(fresh)
    assert "unusable" in caplog.text and "damaged" in caplog.text
    # No contact data in the message.
    assert "@example.com" not in caplog.text
    path.write_bytes(b"not a snapshot")
    assert members(cached) == before


def test_new_fields_and_schema_changes_rebuild(pair: tuple[Kernel, Kernel]) -> None:
    cached, fresh = pair
    cached.store.upsert_contacts(random_contacts(random.Random(5), 0, 30), key="email", source="t")
    members(cached)
    path = cached.store.cache_path(SNAPSHOT_FILE)
    assert path is not None
    held, _ = _core.Snapshot.load(path)
    assert "city" not in held.schema
    # A rule on a field the file does not hold: rebuilt with both sets.
    cached.segments.add([Segment(name="city", rule="city is null")])
    assert members(cached) == members(fresh)
    held, _ = _core.Snapshot.load(path)
    assert {"city", "country", "score"} <= set(held.schema)
    # A newly declared attribute changes the schema.
    cached.store.declare_attributes({"tier": "integer"}, source="t")
    cached.store.set_attributes(live_ids(cached)[:3], {"tier": [1, 2, 3]})
    cached.segments.add([Segment(name="tier", rule="tier >= 2")])
    got = members(cached)
    assert got == members(fresh) and len(got["tier"]) == 2


def test_erasure_removes_the_file(pair: tuple[Kernel, Kernel]) -> None:
    cached, _ = pair
    r = cached.store.upsert_contacts(
        random_contacts(random.Random(9), 0, 10), key="email", source="t"
    )
    members(cached)
    path = cached.store.cache_path(SNAPSHOT_FILE)
    assert path is not None and path.exists()
    cached.erase_contacts([r.ids[0] or 0])
    assert not path.exists()


def test_change_log_positions(tmp_path: Path) -> None:
    k = open_kernel(tmp_path / "c.db", cache=True)
    store = k.store
    start = store.change_position()
    assert start == ChangePosition(generation=start.generation, rev=start.rev, interaction=0)
    r = store.upsert_contacts({"email": ["a@x.io", "b@x.io"]}, key="email", source="t")
    c1 = store.changes_since(start)
    assert c1 is not None and c1.contact_ids == sorted(i for i in r.ids if i)
    store.add_interactions(
        {"contact_id": [r.ids[0]], "kind": ["purchase"], "occurred_at": [AS_OF], "key": ["x"]},
        source="t",
    )
    c2 = store.changes_since(c1.position)
    assert c2 is not None and c2.contact_ids == [] and c2.interactions["contact_id"] == [r.ids[0]]
    c3 = store.changes_since(c2.position)
    assert c3 is not None and c3.contact_ids == [] and c3.interactions["contact_id"] == []
    # A write the log cannot replay moves the generation on.
    with store.transaction():
        store.conn.execute("UPDATE contacts SET city = 'x'")  # type: ignore[attr-defined]
    assert store.changes_since(c2.position) is None
    k.close()


def random_step(k: Kernel, rng: random.Random, step: int) -> None:
    """One random write (the same on two stores given the same ``rng`` state)."""
    ids = live_ids(k)
    op = rng.choice(["new", "update", "events", "merge", "erase", "drop", "none"])
    if op == "new" or len(ids) < 4:
        k.store.upsert_contacts(random_contacts(rng, 1000 * step, 12), key="email", source="t")
    elif op == "update":
        picks = rng.sample(ids, 4)
        k.store.set_attributes(picks, {"country": [rng.choice(COUNTRIES) for _ in picks]})
    elif op == "events":
        k.store.add_interactions(
            {
                "contact_id": [rng.choice(ids) for _ in range(6)],
                "kind": ["purchase"] * 6,
                "occurred_at": [AS_OF - rng.randint(0, 90) * DAY for _ in range(6)],
                "amount": [30.0] * 6,
                "key": [f"s{step}-{i}" for i in range(6)],
            },
            source="t",
        )
    elif op == "merge":
        a, b = rng.sample(ids, 2)
        k.merge(build_plan(k.store, {1: [a, b]}))
    elif op == "erase":
        k.erase_contacts([rng.choice(ids)])
    elif op == "drop":
        name = rng.choice(sorted(RULES))
        k.segments.remove(name)
        k.segments.add([Segment(name=name, rule=RULES[name])])


@pytest.mark.parametrize("seed", range(3))
def test_runs_with_kept_members_record_what_runs_without_them_record(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A removed segment's members exit at the wall-clock time: one clock for
    # both kernels, so that a second ticking over between them is no change.
    monkeypatch.setattr(time, "time", lambda: float(AS_OF + 30 * DAY))
    kernels = []
    for cache in (True, False):
        k = open_kernel(tmp_path / f"{cache}.db", cache=cache)
        k.store.declare_attributes({"plan": "string", "score": "integer"}, source="t")
        k.segments.add([Segment(name=n, rule=r) for n, r in RULES.items()])
        kernels.append(k)
    rngs = [random.Random(seed), random.Random(seed)]
    for step in range(20):
        runs = []
        for k, rng in zip(kernels, rngs, strict=True):
            random_step(k, rng, step)
            r = k.segments.run(as_of=AS_OF + step * DAY)
            runs.append((r.counts, r.entered, r.exited))
        assert runs[0] == runs[1], f"step {step}"
        for name in RULES:
            assert kernels[0].segments.members(name) == kernels[1].segments.members(name)
            assert kernels[0].segments.history(name) == kernels[1].segments.history(name)
    cached = kernels[0]
    path = cached.store.cache_path("segments.members")
    assert path is not None and path.exists()
    kept, _ = _core.MemberSets.load(path)
    assert kept.counts() == {n: len(cached.segments.members(n)) for n in RULES}
    for k in kernels:
        k.close()


def test_interactions_added_while_a_snapshot_is_built_count_once(
    pair: tuple[Kernel, Kernel], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer adds an interaction between the change-log position a build
    reads and the data it reads: the next run brings it in once."""
    cached, fresh = pair
    r = cached.store.upsert_contacts(
        random_contacts(random.Random(2), 0, 5), key="email", source="t"
    )
    cid = r.ids[0]
    store = cached.store
    real = store.change_position
    added: list[int] = []

    def racing() -> ChangePosition:
        pos = real()
        if not added:
            added.append(1)
            store.add_interactions(
                {
                    "contact_id": [cid],
                    "kind": ["purchase"],
                    "occurred_at": [AS_OF - DAY],
                    "amount": [60.0],
                    "key": ["race"],
                },
                source="t",
            )
        return pos

    monkeypatch.setattr(store, "change_position", racing)
    first = members(cached)  # built while the interaction was added
    monkeypatch.setattr(store, "change_position", real)
    again = members(cached)  # brought up to date from the log
    assert again == members(fresh)
    assert cid in again["buyers"] and first != again
    # Counted once, not once by the build and again from the log.
    plan = _core.SegmentPlan([("one", "count(purchase) = 1")], cached.segments.schema())
    assert cid in plan.evaluate(cached.segments.snapshot(plan.fields()), AS_OF).members("one")
