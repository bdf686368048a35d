"""What every search shares: budget accounting, memoised group costs, splitter repair,
best-so-far tracking and the SearchResult."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Sequence

from tqdm.auto import tqdm

from ..graph import OpGraph
from ..plan import Plan, PlanTotals, graph_index
from .partition import random_convex_partition
from .splitters import Splitter, make_splitter

Groups = tuple[tuple[int, ...], ...]


@dataclass
class SearchResult:
    """Best plan found. ``history`` lists (evaluated plans, best DRAM bytes) at each improvement."""

    algorithm: str
    plan: Plan
    totals: PlanTotals
    evaluated_plans: int
    seconds: float
    history: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Candidate:
    """A scored plan: sorted groups (all legal after repair), total DRAM, max multi-op buffer."""

    groups: Groups
    dram: int
    max_buffer: int


class BudgetExhausted(Exception):
    """Raised by :meth:`SearchContext.score` when the plan budget is used up."""


class SearchContext:
    """Shared state of one search run over ``graph`` on ``accel``.

    Unfusable ops (``cost_model.unfusable()``) are forced singletons: searches only merge
    along ``fusable_edges``. ``score`` repairs non-fitting groups with the splitter, counts one
    evaluated plan against the budget and keeps the DRAM-best candidate.
    """

    def __init__(self, graph: OpGraph, accel, budget: int | None, seed: int,
                 splitter: str | Splitter = "random", progress: bool = True, cost_model=None,
                 algorithm: str = ""):
        if cost_model is None:
            from ..cost import CostModel  # deferred: needs the built C++ extension

            cost_model = CostModel(graph, accel)
        if budget is not None and budget < 1:
            raise ValueError(f"search budget must be a positive number of plans, got {budget}")
        self.graph, self.accel, self.cm = graph, accel, cost_model
        self.idx = graph_index(graph)
        self.budget = budget
        self.rng = random.Random(seed)
        self.splitter = make_splitter(splitter) if isinstance(splitter, str) else splitter
        self.unfusable = frozenset(cost_model.unfusable())
        self.fusable_edges = [(u, v) for u, v in self.idx.edges
                              if u not in self.unfusable and v not in self.unfusable]
        self.evaluated = 0
        self.best: Candidate | None = None
        self.history: list[tuple[int, int]] = []
        self._costs: dict[tuple[int, ...], tuple[int, int, bool]] = {}
        self._start = time.perf_counter()
        self.algorithm = algorithm
        self._bar = tqdm(total=budget, desc=f"{algorithm or 'search'} {graph.name}", unit="plan",
                         disable=not progress, leave=False)

    # ---- costs ---------------------------------------------------------------------
    def costs(self, groups: Sequence[tuple[int, ...]]) -> list[tuple[int, int, bool]]:
        """(F_β, F_D, fits) per group; groups not seen before go to the cost model in one batch."""
        memo = self._costs
        missing = list(dict.fromkeys(g for g in groups if g not in memo))
        if missing:
            c = self.cm.evaluate(missing)
            for g, b, d, f in zip(missing, c.buffer_bytes.tolist(), c.dram_bytes.tolist(), c.fits.tolist()):
                memo[g] = (b, d, f)
        return [memo[g] for g in groups]

    # ---- scoring -------------------------------------------------------------------
    @property
    def exhausted(self) -> bool:
        return self.budget is not None and self.evaluated >= self.budget

    def score(self, groups: Sequence[Sequence[int]]) -> Candidate:
        """Repair, score and count one candidate plan (groups must be connected and convex)."""
        if self.exhausted:
            raise BudgetExhausted
        groups = [g if isinstance(g, tuple) else tuple(sorted(g)) for g in groups]
        repaired: list[tuple[int, ...]] = []
        for g, (_, _, fits) in zip(groups, self.costs(groups)):
            if len(g) == 1 or fits:
                repaired.append(g)
            else:
                repaired.extend(tuple(sorted(p)) for p in self.splitter.split(g, self.cm, self.rng))
        repaired.sort()
        costs = self.costs(repaired)
        dram = sum(c[1] for c in costs)
        max_buf = max((c[0] for g, c in zip(repaired, costs) if len(g) > 1), default=0)
        cand = Candidate(tuple(repaired), dram, max_buf)
        self.evaluated += 1
        self._bar.update(1)
        if self.best is None or dram < self.best.dram:
            self.best = cand
            self.history.append((self.evaluated, dram))
            self._bar.set_postfix(best_MB=f"{dram / 2**20:.3f}")
        return cand

    def result(self) -> SearchResult:
        """Validate the best plan and compute its totals (one batched cost call)."""
        self._bar.close()
        if self.best is None:
            raise RuntimeError(f"{self.algorithm}: no plan was evaluated")
        plan = Plan.from_groups(self.graph, self.best.groups, self.accel)
        totals = plan.totals(self.cm)
        if totals.illegal_groups:  # a splitter broke its contract
            raise RuntimeError(f"{self.algorithm}: splitter {type(self.splitter).__name__} left groups "
                               f"that exceed the buffer: {totals.illegal_groups[:3]}")
        return SearchResult(self.algorithm, plan, totals, self.evaluated,
                            time.perf_counter() - self._start, list(self.history))

    def random_partition(self, merge_prob: float | None = None) -> list[tuple[int, ...]]:
        return random_convex_partition(self.graph, self.rng, merge_prob, singletons=self.unfusable)
