"""Spend and savings as the admin API shows them, next to each key's and user's usage."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from pydantic import Field

from chatgate.gateway.pricing import NANOS, from_nanos
from chatgate.storage.keys import MAX_BUDGET

# A budget in currency units that the nano-unit column holds once rounded (1e-10 would round
# to 0 nano-units, a value the table refuses: the API bounds say so first, as a 422).
MIN_COST = 1 / NANOS
MAX_COST = float(MAX_BUDGET // NANOS)
BudgetCost = Annotated[
    float | None,
    Field(
        ge=MIN_COST, le=MAX_COST, description="Spending budget, all time, in `pricing.currency`."
    ),
]
SPEND = "All-time spend by currency (what upstreams charged, from their usage)."
SAVED = "All-time savings by currency (answers from chatgate's cache, at upstream prices)."


class Totals(Protocol):
    @property
    def cost(self) -> dict[str, int]: ...
    @property
    def saved(self) -> dict[str, int]: ...


def money(
    budget_nanos: int | None, used_nanos: int | None, totals: Totals | None
) -> dict[str, Any]:
    """The record fields ``budget_cost``, ``cost_used``, ``spend``, ``saved``."""
    return {
        "budget_cost": None if budget_nanos is None else from_nanos(budget_nanos),
        "cost_used": from_nanos(used_nanos or 0),
        "spend": {c: from_nanos(n) for c, n in totals.cost.items()} if totals else {},
        "saved": {c: from_nanos(n) for c, n in totals.saved.items()} if totals else {},
    }
