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


@hookimpl
def crmkit_register_categorizers(register):  # type: ignore[no-untyped-def]
    register(LifecycleCategorizer)
