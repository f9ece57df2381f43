"""Built-in categorizers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field

from crmkit.hookspecs import hookimpl
from crmkit.kinds import Categorizer, PluginConfig, Snapshot
from crmkit.records import AttributeType

DAY = 86400.0


class LifecycleCategorizer(Categorizer):
    """Lifecycle stage from purchase history.

    - ``lead``: never bought;
    - ``new_customer``: one purchase, within ``active_days``;
    - ``repeat``: two or more purchases, the last within ``active_days``;
    - ``at_risk``: last purchase between ``active_days`` and ``churn_days`` ago;
    - ``churned``: last purchase more than ``churn_days`` ago.
    """

    name = "lifecycle"
    description = "Lifecycle stage (lead, new_customer, repeat, at_risk, churned) from purchases."
    produces: ClassVar[Mapping[str, AttributeType]] = {
        "lifecycle_stage": "string",
        "purchases": "integer",
        "last_purchase_days": "integer",
    }

    class Config(PluginConfig):
        """Settings of the ``lifecycle`` categorizer."""

        purchase_kind: str = "purchase"
        active_days: int = Field(default=180, ge=1)
        churn_days: int = Field(default=365, ge=1)

    config: Config

    def categorize(self, snapshot: Snapshot) -> Mapping[str, Sequence[Any]]:
        n = len(snapshot.ids)
        count = [0] * n
        last: list[float | None] = [None] * n
        kind_col = snapshot.interactions["kind"]
        when = snapshot.interactions["occurred_at"]
        idx = snapshot.interactions["contact_index"]
        pk = self.config.purchase_kind
        for k, t, i in zip(kind_col, when, idx, strict=True):
            if k == pk and t <= snapshot.as_of:
                count[i] += 1
                if last[i] is None or t > last[i]:
                    last[i] = t
        stage: list[str] = []
        days: list[int | None] = []
        for i in range(n):
            t = last[i]
            if t is None:
                stage.append("lead")
                days.append(None)
                continue
            d = int((snapshot.as_of - t) // DAY)
            days.append(d)
            if d > self.config.churn_days:
                stage.append("churned")
            elif d > self.config.active_days:
                stage.append("at_risk")
            elif count[i] >= 2:
                stage.append("repeat")
            else:
                stage.append("new_customer")
        return {"lifecycle_stage": stage, "purchases": count, "last_purchase_days": days}


RFM_GROUPS: list[tuple[str, str]] = [
    ("champions", "rfm_r >= 4 and rfm_fm >= 4"),
    ("cannot_lose", "rfm_r <= 1 and rfm_fm >= 5"),
    ("loyal", "rfm_r >= 3 and rfm_fm >= 4"),
    ("at_risk", "rfm_r <= 2 and rfm_fm >= 3"),
    ("new", "rfm_r = 5 and rfm_fm <= 1"),
    ("potential_loyalists", "rfm_r >= 4 and rfm_fm >= 2"),
    ("promising", "rfm_r = 4 and rfm_fm <= 1"),
    ("need_attention", "rfm_r = 3 and rfm_fm = 3"),
    ("about_to_sleep", "rfm_r = 3 and rfm_fm <= 2"),
    ("lost", "rfm_r = 1 and rfm_fm <= 1"),
    ("hibernating", "rfm_r <= 2 and rfm_fm <= 2"),
]
"""Default named RFM groups, first match wins. ``rfm_fm`` is the rounded mean of
the frequency and monetary scores. With five bins every (R, FM) cell is covered."""


class RfmGroup(PluginConfig):
    """One named RFM group: a segment rule over rfm_r, rfm_f, rfm_m and rfm_fm."""

    name: str
    rule: str


class RfmCategorizer(Categorizer):
    """Recency, frequency and monetary quintile scores from purchases, and the
    named group of each customer (champions … lost; ``none`` for non-buyers).

    Scoring runs in Rust over the whole snapshot; ties share a score. Groups
    are an exclusive segment set evaluated by the segment engine in priority
    order (configurable with ``groups``).
    """

    name = "rfm"
    description = "RFM scores (rfm_r, rfm_f, rfm_m) and named groups (rfm_segment)."
    produces: ClassVar[Mapping[str, AttributeType]] = {
        "rfm_r": "integer",
        "rfm_f": "integer",
        "rfm_m": "integer",
        "rfm_fm": "integer",
        "rfm_segment": "string",
        "rfm_recency_days": "integer",
        "rfm_frequency": "integer",
        "rfm_monetary": "number",
    }

    class Config(PluginConfig):
        """Settings of the ``rfm`` categorizer."""

        purchase_kind: str = "purchase"
        bins: int = Field(default=5, ge=2, le=10)
        groups: list[RfmGroup] = Field(
            default_factory=lambda: [RfmGroup(name=n, rule=r) for n, r in RFM_GROUPS]
        )
        other: str = "other"

    config: Config

    def categorize(self, snapshot: Snapshot) -> Mapping[str, Sequence[Any]]:
        from crmkit import _core

        n = len(snapshot.ids)
        inter = snapshot.interactions
        pk = self.config.purchase_kind
        rows = [i for i, k in enumerate(inter["kind"]) if k == pk]
        idx, when, amt = inter["contact_index"], inter["occurred_at"], inter["amount"]
        as_of = int(snapshot.as_of)
        days, freq, money, r, f, m = _core.rfm_scores(
            list(range(n)),
            [idx[i] for i in rows],
            [int(when[i]) for i in rows],
            [amt[i] for i in rows],
            as_of,
            bins=self.config.bins,
        )
        fm = [
            None if a is None or b is None else int((a + b) / 2 + 0.5)
            for a, b in zip(f, m, strict=True)
        ]
        schema = {"rfm_r": "integer", "rfm_f": "integer", "rfm_m": "integer", "rfm_fm": "integer"}
        snap = _core.Snapshot(
            list(range(n)), {"rfm_r": r, "rfm_f": f, "rfm_m": m, "rfm_fm": fm}, schema
        )
        plan = _core.SegmentPlan([(g.name, g.rule) for g in self.config.groups], schema)
        labels = plan.exclusive(snap, as_of, other=self.config.other)
        group = [lab if r[i] is not None else None for i, lab in enumerate(labels)]
        return {
            "rfm_r": r,
            "rfm_f": f,
            "rfm_m": m,
            "rfm_fm": fm,
            "rfm_segment": group,
            "rfm_recency_days": days,
            "rfm_frequency": freq,
            "rfm_monetary": money,
        }


@hookimpl
def crmkit_register_categorizers(register):  # type: ignore[no-untyped-def]
    register(LifecycleCategorizer)
    register(RfmCategorizer)
