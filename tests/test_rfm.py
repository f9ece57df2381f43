"""RFM scores against a plain-Python oracle, and the named groups through the kernel."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit import _core
from crmkit.builtin.categorizers import RFM_GROUPS
from crmkit.kernel import Kernel
from crmkit.settings import Settings

DAY = 86400


def oracle_scores(values: dict[int, float], bins: int) -> dict[int, int]:
    """Rank ascending; ties take the score of their first position."""
    order = sorted(values, key=lambda i: (values[i], i))
    total = len(order)
    out: dict[int, int] = {}
    first = 0
    for pos, i in enumerate(order):
        if pos and values[i] != values[order[pos - 1]]:
            first = pos
        out[i] = min(bins, 1 + first * bins // total)
    return out


purchases = st.lists(
    st.tuples(
        st.integers(0, 7),
        st.integers(0, 40),
        st.one_of(st.none(), st.sampled_from([5.0, 10.0, 12.5, 99.0])),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(purchases, st.integers(2, 6))
def test_scores_match_the_oracle(rows: list[tuple[int, int, float | None]], bins: int) -> None:
    n = 8
    as_of = 30 * DAY
    ids = [100 + i for i in range(n)]
    days, freq, money, r, f, m = _core.rfm_scores(
        ids,
        [ids[c] for c, _, _ in rows],
        [d * DAY for _, d, _ in rows],
        [a for _, _, a in rows],
        as_of,
        bins=bins,
    )
    live = [(c, d, a) for c, d, a in rows if d * DAY <= as_of]
    buyers = sorted({c for c, _, _ in live})
    last = {c: max(d for cc, d, _ in live if cc == c) for c in buyers}
    fr = {c: sum(1 for cc, _, _ in live if cc == c) for c in buyers}
    mo = {c: sum(a or 0.0 for cc, _, a in live if cc == c) for c in buyers}
    want_r = oracle_scores({c: float(last[c]) for c in buyers}, bins) if buyers else {}
    want_f = oracle_scores({c: float(v) for c, v in fr.items()}, bins) if buyers else {}
    want_m = oracle_scores(mo, bins) if buyers else {}
    for c in range(n):
        if c in buyers:
            assert days[c] == (as_of - last[c] * DAY) // DAY
            assert (freq[c], r[c], f[c], m[c]) == (fr[c], want_r[c], want_f[c], want_m[c])
            assert money[c] == pytest.approx(mo[c])
        else:
            assert (days[c], r[c], f[c], m[c], freq[c]) == (None, None, None, None, 0)


def test_default_groups_cover_every_cell() -> None:
    schema = {"rfm_r": "integer", "rfm_fm": "integer"}
    cells = [(r, fm) for r in range(1, 6) for fm in range(1, 6)]
    snap = _core.Snapshot(
        list(range(25)), {"rfm_r": [c[0] for c in cells], "rfm_fm": [c[1] for c in cells]}, schema
    )
    labels = _core.SegmentPlan(RFM_GROUPS, schema).exclusive(snap, 0)
    assert "other" not in labels
    lookup = dict(zip(cells, labels, strict=True))
    assert (
        lookup[(5, 5)] == "champions"
        and lookup[(1, 1)] == "lost"
        and lookup[(1, 5)] == "cannot_lose"
    )
    assert lookup[(5, 1)] == "new" and lookup[(2, 4)] == "at_risk"


def test_rfm_categorizer_through_the_kernel(tmp_path: Path) -> None:
    k = Kernel(Settings(db=tmp_path / "crm.db", disable_plugin_autoload=True))
    emails = [f"c{i}@x.com" for i in range(6)]
    ids = k.store.upsert_contacts({"email": emails}, key="email", source="t").ids
    # Contact i (0..4) buys i+1 times for 10*(i+1) each, last i days before as_of; contact 5 never.
    cols: dict[str, list[object]] = {
        "contact_id": [],
        "kind": [],
        "occurred_at": [],
        "amount": [],
        "key": [],
    }
    for i in range(5):
        for j in range(i + 1):
            cols["contact_id"].append(ids[i])
            cols["kind"].append("purchase")
            cols["occurred_at"].append((100 - (4 - i) * 20 - j) * DAY)
            cols["amount"].append(10.0 * (i + 1))
            cols["key"].append(f"{i}-{j}")
    k.store.add_interactions(cols, source="t")  # type: ignore[arg-type]
    assert k.categorize(["rfm"], as_of=100 * DAY) == {"rfm": 6}
    got = {x.id: x.attributes for x in k.store.get_contacts(ids)}  # type: ignore[arg-type]
    best, worst = got[ids[4]], got[ids[0]]
    assert (best["rfm_r"], best["rfm_f"], best["rfm_m"], best["rfm_segment"]) == (
        5,
        5,
        5,
        "champions",
    )
    assert (worst["rfm_r"], worst["rfm_f"], worst["rfm_m"], worst["rfm_segment"]) == (
        1,
        1,
        1,
        "lost",
    )
    assert best["rfm_frequency"] == 5 and worst["rfm_recency_days"] == 80
    assert "rfm_segment" not in got[ids[5]], "non-buyers carry no RFM attributes"
    assert k.segments.preview("rfm_segment = 'champions'", as_of=100 * DAY)["count"] == 2
    # A re-run writes only what changed: nothing at the same time, the moved ones later.
    first = k.categorize(["rfm", "lifecycle"], as_of=100 * DAY)
    assert first["rfm"] == 0 and first["lifecycle"] > 0
    assert k.categorize(["rfm", "lifecycle"], as_of=100 * DAY) == {"rfm": 0, "lifecycle": 0}
    later = k.categorize(["rfm"], as_of=160 * DAY)["rfm"]
    assert 0 < later <= 5
    k.close()
