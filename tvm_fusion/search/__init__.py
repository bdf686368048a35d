"""Fusion-plan search: random search, local search, NSGA-II, an exact interval DP and an
exhaustive oracle for small graphs, all scored by the C++ cost model (tvm_fusion.cost).

``search(graph, accel, algorithm, budget, seed)`` is the one entry point. ``budget`` counts
evaluated (repaired) plans for "rs", "ls" and "nsga2"; "dp" and "exhaustive" are
deterministic and score exactly one plan (their group evaluations are not plans).
"""

from __future__ import annotations

from typing import Callable

from ..graph import OpGraph
from .base import SearchContext, SearchResult
from .exhaustive import exhaustive
from .interval_dp import interval_dp
from .local_search import local_search
from .nsga2 import nsga2
from .partition import random_convex_partition
from .random_search import random_search
from .splitters import SPLITTERS, RandomSplitter, Splitter, make_splitter

ALGORITHMS: dict[str, Callable[..., SearchResult]] = {
    "rs": random_search,
    "ls": local_search,
    "nsga2": nsga2,
    "dp": interval_dp,
    "exhaustive": exhaustive,
}
ALIASES = {"random": "rs", "local": "ls", "nsga-ii": "nsga2", "interval-dp": "dp"}


def search(graph: OpGraph, accel, algorithm: str = "ls", budget: int = 2000, seed: int = 0,
           splitter: str | Splitter = "random", progress: bool = True, cost_model=None,
           **options) -> SearchResult:
    """Best fusion plan for ``graph`` on ``accel`` found by ``algorithm`` within ``budget`` plans.

    ``options`` go to the algorithm (e.g. ``pool_size`` for "ls", ``pop_size`` for "nsga2").
    Pass ``cost_model`` to share memoised group costs between runs on the same accelerator.
    """
    name = ALIASES.get(algorithm.lower(), algorithm.lower())
    if name not in ALGORITHMS:
        raise ValueError(f"unknown search algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    ctx = SearchContext(graph, accel, budget if name in ("rs", "ls", "nsga2") else None, seed,
                        splitter, progress, cost_model, algorithm=name)
    return ALGORITHMS[name](ctx, **options)


__all__ = ["ALGORITHMS", "SPLITTERS", "RandomSplitter", "SearchContext", "SearchResult", "Splitter",
           "make_splitter", "random_convex_partition", "search"]
