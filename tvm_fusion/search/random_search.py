"""Random search: score random convex partitions (repaired by the splitter), keep the best."""

from __future__ import annotations

from .base import BudgetExhausted, SearchContext, SearchResult


def random_search(ctx: SearchContext) -> SearchResult:
    try:
        while True:
            ctx.score(ctx.random_partition())
    except BudgetExhausted:
        pass
    return ctx.result()
