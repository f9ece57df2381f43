"""The Rust segment engine against a plain-Python oracle, on random data and rules.

The oracle evaluates the JSON condition tree per contact with the documented
semantics: any predicate on a missing value is false except ``is null`` /
``is not null``; ``not x`` negates the evaluated clause; ``t within N days``
means ``as_of - N*86400 <= t <= as_of``; interactions after ``as_of`` are
ignored; ``count`` and ``sum`` are 0 over nothing, the other aggregates null.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit._core import (
    RuleError,
    SegmentPlan,
    SegmentResult,
    Snapshot,
    parse_rule,
    rule_to_text,
)

DAY = 86_400
AS_OF = 1_767_225_600  # 2026-01-01T00:00:00Z

SCHEMA: dict[str, str] = {
    "country": "string",
    "city": "string",
    "age": "integer",
    "score": "number",
    "vip": "boolean",
    "signed_up": "date",
    "last_seen": "datetime",
    "tags": "list",
}
STRS = ["US", "CA", "ß", "é", "", "日本", "a'b", "U", "San José", "b\\c"]
KINDS = ["purchase", "email_open"]
WINDOWS = [0, 1, 7, 30]
DATES = ["2025-12-02", "2025-12-31", "2026-01-01", "2026-01-02", "2026-01-01T00:00:01"]
REGEXES = ["^U", "S$", "é|ß", "^$", "J.s"]

Contact = dict[str, Any]
Event = tuple[int, str, int, float | None]


def to_epoch(s: str) -> int:
    """Epoch seconds of a 'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM:SS' literal (UTC)."""
    return int(datetime.fromisoformat(s).replace(tzinfo=UTC).timestamp())


# -- the oracle -------------------------------------------------------------------


def agg_value(tree: dict[str, Any], events: list[Event], as_of: int) -> Any:
    kind, func = tree["kind"], tree["agg"]
    # first/last take no window: their "days" belongs to "within".
    days = tree.get("days") if func not in ("first", "last") else None
    lo = as_of - days * DAY if days is not None else None
    sel = [e for e in events if e[1] == kind and e[2] <= as_of and (lo is None or e[2] >= lo)]
    amounts = [e[3] for e in sel if e[3] is not None]
    if func == "count":
        return len(sel)
    if func == "sum":
        return sum(amounts, 0.0)
    if func == "avg":
        return sum(amounts, 0.0) / len(amounts) if amounts else None
    if func == "min":
        return min(amounts) if amounts else None
    if func == "max":
        return max(amounts) if amounts else None
    times = [e[2] for e in sel]
    if func == "first":
        return min(times) if times else None
    return max(times) if times else None


def leaf_type(tree: dict[str, Any]) -> str:
    if "field" in tree:
        return SCHEMA[tree["field"]]
    return {"count": "integer", "first": "datetime", "last": "datetime"}.get(tree["agg"], "number")


def pred(tree: dict[str, Any], v: Any, ty: str, as_of: int) -> bool:
    op = tree["op"]
    if op == "is null":
        return v is None
    if op == "is not null":
        return v is not None
    if v is None:
        return False
    lit: Any = tree.get("value")
    if ty in ("date", "datetime") and op not in ("within",):
        lit = [to_epoch(x) for x in lit] if isinstance(lit, list) else to_epoch(lit)
    if ty == "list":
        if op == "contains":
            return bool(lit in v)
        hit = any(x in lit for x in v)
        return hit if op == "in" else not hit
    if op == "=":
        return bool(v == lit)
    if op == "!=":
        return bool(v != lit)
    if op == "<":
        return bool(v < lit)
    if op == "<=":
        return bool(v <= lit)
    if op == ">":
        return bool(v > lit)
    if op == ">=":
        return bool(v >= lit)
    if op == "in":
        return v in lit
    if op == "not in":
        return v not in lit
    if op == "between":
        return bool(lit[0] <= v <= lit[1])
    if op == "starts_with":
        return bool(v.startswith(lit))
    if op == "ends_with":
        return bool(v.endswith(lit))
    if op == "contains":
        return lit in v
    if op == "matches":
        return re.search(lit, v) is not None
    if op == "within":
        return bool(as_of - tree["days"] * DAY <= v <= as_of)
    if op == "before":
        return bool(v < lit)
    if op == "after":
        return bool(v > lit)
    raise AssertionError(op)


def oracle(
    tree: dict[str, Any],
    c: Contact,
    events: list[Event],
    as_of: int,
    segs: dict[str, dict[str, Any]],
) -> bool:
    if "and" in tree:
        return all(oracle(t, c, events, as_of, segs) for t in tree["and"])
    if "or" in tree:
        return any(oracle(t, c, events, as_of, segs) for t in tree["or"])
    if "not" in tree:
        return not oracle(tree["not"], c, events, as_of, segs)
    if "in_segment" in tree:
        return oracle(segs[tree["in_segment"]], c, events, as_of, segs)
    v = c.get(tree["field"]) if "field" in tree else agg_value(tree, events, as_of)
    return pred(tree, v, leaf_type(tree), as_of)


# -- strategies --------------------------------------------------------------------

times = st.builds(
    lambda d, e: AS_OF - d * DAY + e,
    st.sampled_from([*WINDOWS, -1, 400]),
    st.sampled_from([-1, 0, 1]),
)
halves = st.integers(-8, 8).map(lambda i: i / 2)


def value_for(ty: str) -> st.SearchStrategy[Any]:
    base: st.SearchStrategy[Any] = {
        "string": st.sampled_from(STRS),
        # Now and then a value past 32 bits: the column is then stored in 64.
        "integer": st.integers(-5, 5) | st.sampled_from([-(2**40), 2**40]),
        "number": halves,
        "boolean": st.booleans(),
        "date": st.sampled_from(DATES[:4]).map(to_epoch),
        "datetime": times,
        "list": st.lists(st.sampled_from(STRS[:5]), max_size=3),
    }[ty]
    return st.none() | base


contacts = st.lists(
    st.fixed_dictionaries({f: value_for(t) for f, t in SCHEMA.items()}), max_size=25
)


def lit_for(ty: str) -> st.SearchStrategy[Any]:
    return {
        "string": st.sampled_from(STRS),
        "integer": st.integers(-5, 5) | halves | st.sampled_from([2**33, -(2**40)]),
        "number": halves | st.integers(-4, 4),
        "date": st.sampled_from(DATES),
        "datetime": st.sampled_from(DATES),
    }[ty]


def ops_for(ty: str) -> list[str]:
    common = ["is null", "is not null"]
    return {
        "string": [
            "=",
            "!=",
            "<",
            ">=",
            "in",
            "not in",
            "starts_with",
            "ends_with",
            "contains",
            "matches",
        ],
        "integer": ["=", "!=", "<", "<=", ">", ">=", "in", "not in", "between"],
        "number": ["=", "!=", "<", "<=", ">", ">=", "in", "not in", "between"],
        "boolean": ["=", "!="],
        "date": ["=", "<", ">=", "between", "within", "before", "after"],
        "datetime": ["=", "<=", ">", "within", "before", "after", "in"],
        "list": ["contains", "in", "not in"],
    }[ty] + common


@st.composite
def leaf(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.integers(0, 3)) == 0:
        func = draw(st.sampled_from(["count", "sum", "avg", "min", "max", "first", "last"]))
        tree: dict[str, Any] = {"agg": func, "kind": draw(st.sampled_from(KINDS))}
        if func not in ("first", "last") and draw(st.booleans()):
            tree["days"] = draw(st.sampled_from(WINDOWS))
    else:
        tree = {"field": draw(st.sampled_from(list(SCHEMA)))}
    ty = leaf_type(tree)
    op = draw(st.sampled_from(ops_for(ty)))
    tree["op"] = op
    if op in ("is null", "is not null"):
        return tree
    if op == "within":
        tree["days"] = draw(st.sampled_from(WINDOWS))
    elif ty == "boolean":
        tree["value"] = draw(st.booleans())
    elif ty == "list":
        tree["value"] = (
            draw(st.sampled_from(STRS))
            if op == "contains"
            else draw(st.lists(st.sampled_from(STRS), min_size=1, max_size=3))
        )
    elif op in ("in", "not in"):
        tree["value"] = draw(st.lists(lit_for(ty), min_size=1, max_size=3))
    elif op == "between":
        tree["value"] = [draw(lit_for(ty)), draw(lit_for(ty))]
    elif op == "matches":
        tree["value"] = draw(st.sampled_from(REGEXES))
    elif op in ("before", "after"):
        tree["value"] = draw(st.sampled_from(DATES))
    else:
        tree["value"] = draw(lit_for(ty))
    return tree


rules = st.recursive(
    leaf(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda cs: {"and": cs}),
        st.lists(inner, min_size=2, max_size=3).map(lambda cs: {"or": cs}),
        inner.map(lambda c: {"not": c}),
    ),
    max_leaves=6,
)


@st.composite
def events_for(draw: st.DrawFn, n: int) -> list[Event]:
    if n == 0:
        return []
    return draw(
        st.lists(
            st.tuples(
                st.integers(0, n - 1),
                st.sampled_from(KINDS),
                times,
                st.none() | halves,
            ),
            max_size=40,
        )
    )


def build(people: list[Contact], events: list[Event], ids: list[int]) -> Snapshot:
    columns = {f: [c[f] for c in people] for f in SCHEMA}
    inter = {
        "contact_id": [ids[e[0]] for e in events],
        "kind": [e[1] for e in events],
        "time": [e[2] for e in events],
        "amount": [e[3] for e in events],
    }
    return Snapshot(ids, columns, SCHEMA, inter)


def expected(
    plan_rules: list[tuple[str, dict[str, Any]]],
    people: list[Contact],
    events: list[Event],
    ids: list[int],
    as_of: int,
) -> dict[str, list[int]]:
    segs = dict(plan_rules)
    out: dict[str, list[int]] = {}
    for name, tree in plan_rules:
        out[name] = [
            ids[i]
            for i, c in enumerate(people)
            if oracle(tree, c, [e for e in events if e[0] == i], as_of, segs)
        ]
    return out


# -- differential tests -------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_engine_matches_oracle(data: st.DataObject) -> None:
    people = data.draw(contacts)
    events = data.draw(events_for(len(people)))
    trees = data.draw(st.lists(rules, min_size=1, max_size=5))
    plan_rules = [(f"s{i}", t) for i, t in enumerate(trees)]
    if len(plan_rules) > 1 and data.draw(st.booleans()):
        plan_rules.append(("combo", {"and": [{"in_segment": "s0"}, {"not": {"in_segment": "s1"}}]}))
    ids = [1000 + 7 * i for i in range(len(people))]
    snap = build(people, events, ids)
    plan = SegmentPlan(plan_rules, SCHEMA)
    as_of = data.draw(st.sampled_from([AS_OF, AS_OF + 1, AS_OF - DAY]))
    res = plan.evaluate(snap, as_of)
    want = expected(plan_rules, people, events, ids, as_of)
    for name, members in want.items():
        assert res.members(name) == members, (name, plan.rules()[name])
    assert res.counts() == {n: len(m) for n, m in want.items()}
    # Text form and tree form compile to the same memberships.
    by_text = SegmentPlan([(n, plan.rules()[n]) for n, _ in plan_rules], SCHEMA).evaluate(
        snap, as_of
    )
    assert by_text == res
    # Exclusive labels: first segment (in order) that contains the contact.
    labels = plan.exclusive(snap, as_of, other="none")
    for i, cid in enumerate(ids):
        first = next((n for n, _ in plan_rules if cid in want[n]), "none")
        assert labels[i] == first


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_incremental_equals_full_rerun(data: st.DataObject) -> None:
    people = data.draw(contacts)
    events = data.draw(events_for(len(people)))
    trees = data.draw(st.lists(rules, min_size=1, max_size=4))
    plan_rules = [(f"s{i}", t) for i, t in enumerate(trees)]
    ids = [10 * i for i in range(len(people))]
    snap = build(people, events, ids)
    plan = SegmentPlan(plan_rules, SCHEMA)
    res = plan.evaluate(snap, AS_OF)
    now = AS_OF
    steps = data.draw(st.integers(1, 8))
    for _ in range(steps):
        pick_existing = data.draw(st.booleans())
        if people and pick_existing:
            row = data.draw(st.integers(0, len(people) - 1))
        else:
            people.append(dict.fromkeys(SCHEMA))
            ids.append(10 * len(ids) + 5)
            row = len(people) - 1
        fields = data.draw(st.lists(st.sampled_from(list(SCHEMA)), max_size=3, unique=True))
        values = {f: data.draw(value_for(SCHEMA[f])) for f in fields}
        new_events = data.draw(
            st.lists(st.tuples(st.sampled_from(KINDS), times, st.none() | halves), max_size=2)
        )
        # The members are read (which applies the pending flips) before and
        # after some updates only, so that flips also pile up unapplied.
        check = data.draw(st.booleans())
        before = {n: ids[row] in res.members(n) for n, _ in plan_rules} if check else {}
        pending = res.pending
        entered, exited = plan.update_contact(snap, res, ids[row], values, new_events)
        assert res.pending == pending + len(entered) + len(exited)
        people[row].update(values)
        events.extend((row, k, t, a) for k, t, a in new_events)
        if check:
            after = {n: ids[row] in res.members(n) for n, _ in plan_rules}
            assert res.pending == 0
            assert sorted(entered) == sorted(n for n in after if after[n] and not before[n])
            assert sorted(exited) == sorted(n for n in after if before[n] and not after[n])
        if data.draw(st.integers(0, 3)) == 0:
            # The clock moves between updates (pending flips applied first).
            now += data.draw(st.sampled_from([DAY, -DAY, 2 * DAY + 1]))
            plan.advance(snap, res, now)
            assert res.pending == 0
            assert res == plan.evaluate(snap, now)
    full = plan.evaluate(snap, now)
    assert full == res
    want = expected(plan_rules, people, events, ids, now)
    for name, members in want.items():
        assert res.members(name) == members
    # Moving the clock recomputes exactly what a full run gives.
    later = plan.advance_clock(snap, res, now + 3 * DAY)
    assert later == plan.evaluate(snap, now + 3 * DAY)
    # In place too, with the exact entered and exited ids.
    diff = later.diff(res)
    changes = plan.advance(snap, res, now + 3 * DAY)
    assert res == later
    assert changes.to_dict() == {n: d for n, d in diff.items() if d[0] or d[1]}
    assert changes.counts() == {n: (len(e), len(x)) for n, (e, x) in changes.to_dict().items()}
    for n in changes.names:
        assert (changes.entered(n), changes.exited(n)) == diff[n]


@settings(max_examples=200, deadline=None)
@given(rules)
def test_tree_text_tree_round_trip(tree: dict[str, Any]) -> None:
    text = rule_to_text(tree)
    back = parse_rule(text, SCHEMA)
    assert rule_to_text(back) == text
    assert parse_rule(back) == back


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(RuleError):
        parse_rule(text, SCHEMA)


# -- examples -------------------------------------------------------------------------


def small() -> tuple[Snapshot, SegmentPlan]:
    people: list[Contact] = [
        {"country": "US", "age": 40, "tags": ["vip"], "last_seen": AS_OF - 3 * DAY},
        {"country": "CA", "age": None, "tags": [], "last_seen": None},
        {"country": None, "age": 20, "tags": None, "last_seen": AS_OF},
    ]
    full = [{f: p.get(f) for f in SCHEMA} for p in people]
    snap = build(
        full, [(0, "purchase", AS_OF - DAY, 12.5), (0, "purchase", AS_OF - 2 * DAY, 7.5)], [1, 2, 3]
    )
    plan = SegmentPlan(
        [
            ("vip", "tags contains 'vip' and sum(purchase.amount, 30 days) >= 20"),
            ("north", {"field": "country", "op": "in", "value": ["CA"]}),
            ("older", "not (age <= 30)"),
            ("recent", "last_seen within 7 days and in_segment('older')"),
        ],
        SCHEMA,
    )
    return snap, plan


def test_results_api_and_diff() -> None:
    snap, plan = small()
    res = plan.evaluate(snap, AS_OF)
    assert res.counts() == {"vip": 1, "north": 1, "older": 2, "recent": 1}
    assert res.members("older") == [1, 2]  # null age: `not (age <= 30)` is true
    assert res.rows("older") == [0, 1]
    assert isinstance(res.bitmap("vip"), bytes) and res.bitmap("vip") == res.bitmap("vip")
    later = plan.advance_clock(snap, res, AS_OF + 5 * DAY)
    assert later.diff(res) == {
        "vip": ([], []),
        "north": ([], []),
        "older": ([], []),
        "recent": ([], [1]),
    }
    entered, exited = plan.update_contact(snap, res, 2, {"country": "US", "age": 70})
    assert (entered, exited) == ([], ["north"])
    entered, _ = plan.update_contact(snap, res, 9, {"age": 50}, [("purchase", AS_OF, 1.0)])
    assert entered == ["older"]
    assert res.members("older") == [1, 2, 9]
    with pytest.raises(Exception, match="no segment named"):
        res.members("nope")
    moved = plan.advance(snap, res, AS_OF + 5 * DAY)
    assert moved.names == ["recent"] and moved.exited("recent") == [1] and len(moved) == 1
    with pytest.raises(Exception, match="did not change"):
        moved.entered("vip")
    other, _ = small()
    with pytest.raises(Exception, match="another snapshot"):
        plan.advance(other, res, AS_OF)


def test_evaluating_some_segments_matches_the_full_run() -> None:
    snap, plan = small()
    full = plan.evaluate(snap, AS_OF)
    part = plan.evaluate(snap, AS_OF, ["recent", "vip"])
    assert part.names == ["recent", "vip"]
    assert part.counts() == {"recent": full.counts()["recent"], "vip": full.counts()["vip"]}
    assert part.members("recent") == full.members("recent")
    with pytest.raises(Exception, match="no segment named"):
        plan.evaluate(snap, AS_OF, ["nope"])
    # A partial result cannot be updated in place or moved in time.
    with pytest.raises(Exception, match="another plan"):
        plan.update_contact(snap, part, 1, {"age": 50})
    with pytest.raises(Exception, match="another plan"):
        plan.advance_clock(snap, part, AS_OF + DAY)


def test_explain_shows_each_clause() -> None:
    snap, plan = small()
    ex = plan.explain(snap, 2, "recent", AS_OF)
    assert ex["value"] is False
    children: list[Any] = ex["children"]
    assert [c["text"] for c in children] == ["last_seen within 7 days", "in_segment('older')"]
    assert children[0]["value"] is False and children[0]["null"] is True
    assert children[1]["value"] is True


def test_rule_errors_show_caret_and_suggestion() -> None:
    with pytest.raises(RuleError) as err:
        SegmentPlan([("x", "contry = 'US'")], SCHEMA)
    msg = str(err.value)
    assert "did you mean 'country'?" in msg
    assert msg.splitlines()[-1] == "  ^^^^^^"
    with pytest.raises(RuleError, match="type error"):
        parse_rule("age = 'old'", SCHEMA)
    with pytest.raises(RuleError, match="cycle"):
        SegmentPlan([("a", "in_segment('b')"), ("b", "in_segment('a')")], SCHEMA)
    with pytest.raises(RuleError, match="unknown op"):
        parse_rule({"field": "age", "op": "~", "value": 1})


def test_json_tree_schema() -> None:
    tree = parse_rule("count(purchase, 90 days) >= 3 and last(email_open) within 14 days")
    assert tree == {
        "and": [
            {"agg": "count", "kind": "purchase", "days": 90, "op": ">=", "value": 3},
            {"agg": "last", "kind": "email_open", "op": "within", "days": 14},
        ]
    }
    assert rule_to_text({"not": {"field": "tags", "op": "contains", "value": "vip"}}) == (
        "not tags contains 'vip'"
    )


def test_results_are_kept_with_their_snapshot() -> None:
    snap, plan = small()
    other, _ = small()
    res: SegmentResult = plan.evaluate(snap, AS_OF)
    with pytest.raises(Exception, match="not computed on this snapshot"):
        plan.update_contact(other, res, 1, {"age": 1})


# -- lenient column conversion (coerce=True) ---------------------------------------

LOOSE = st.one_of(
    st.none(),
    st.integers(-(2**33), 2**33),
    st.floats(-1e10, 1e10, allow_nan=False),
    st.booleans(),
    st.sampled_from(
        [
            "2024-02-29",
            "2024-02-29T10:11:12",
            "2024-02-29T10:11:12Z",
            "2024-02-29 10:11",
            "2024-02-29T10:11:12.5+02:00",
            "2024-02-29T10:11:12-05:30",
            "1969-12-31T23:59:59.5",
            "2024-13-01",
            "garbage",
            "",
            " 42 ",
            "-7",
            "3.25",
            "1e3",
            "ß",
        ]
    ),
    st.lists(st.sampled_from(["vip", "x", "é"]), max_size=3),
)


def py_convert(typ: str, v: Any) -> Any:
    """The conversion a Python caller would write, value by value (the oracle)."""
    from crmkit.segments import _epoch_day

    if v is None:
        return None
    if typ in ("date", "datetime"):
        return _epoch_day(v) if not isinstance(v, list) else _epoch_day(str(v))
    if typ == "list":
        return list(v) if isinstance(v, list | tuple) else None
    if typ == "boolean":
        return bool(v)
    if typ == "integer":
        return int(v)
    if typ == "number":
        return float(v)
    return str(v)


@settings(max_examples=150, deadline=None)
@given(
    typ=st.sampled_from(["string", "integer", "number", "boolean", "datetime", "list"]),
    vals=st.lists(LOOSE, min_size=1, max_size=12),
)
def test_coerce_matches_python_conversion(typ: str, vals: list[Any]) -> None:
    try:
        want = [py_convert(typ, v) for v in vals]
    except (ValueError, TypeError, OverflowError):
        with pytest.raises(Exception, match="holds a value that is not"):
            Snapshot(list(range(len(vals))), {"f": vals}, {"f": typ}, coerce=True)
        return
    ids = list(range(len(vals)))
    loose = Snapshot(ids, {"f": vals}, {"f": typ}, coerce=True)
    exact = Snapshot(ids, {"f": want}, {"f": typ})
    # One segment per distinct value (equality), plus the null checks: the two
    # snapshots must give every contact the same memberships.
    rules: list[tuple[str, Any]] = [("null", {"field": "f", "op": "is null"})]
    for i, w in enumerate({repr(w): w for w in want if w is not None}.values()):
        if typ == "list":
            cond = [{"field": "f", "op": "contains", "value": x} for x in w] or [
                {"field": "f", "op": "is not null"}
            ]
            rules.append((f"v{i}", {"and": cond}))
        elif typ == "datetime":
            lo = datetime.fromtimestamp(w - 1, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            hi = datetime.fromtimestamp(w + 1, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            rules.append(
                (
                    f"v{i}",
                    {
                        "and": [
                            {"field": "f", "op": "after", "value": lo},
                            {"field": "f", "op": "before", "value": hi},
                        ]
                    },
                )
            )
        else:
            rules.append((f"v{i}", {"field": "f", "op": "=", "value": w}))
    plan = SegmentPlan(rules, {"f": typ})
    a, b = plan.evaluate(loose, AS_OF), plan.evaluate(exact, AS_OF)
    for name, _ in rules:
        assert a.members(name) == b.members(name), name
