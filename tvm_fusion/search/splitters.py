"""Splitters repair a candidate group that exceeds the on-chip buffer.

Protocol: ``split(group, cost_model, rng) -> list[tuple[int, ...]]`` returns connected, convex
groups that cover ``group`` exactly, whose multi-op members fit the buffer (singletons always
run), and whose dependencies among themselves are acyclic. The search scores the repaired
plan. ``RandomSplitter`` is the paper's baseline; ``"get"`` builds GET's splitter (tvm_fusion.explain).
"""

from __future__ import annotations

import random
from typing import Callable, Protocol, Sequence

from ..plan import graph_index
from .partition import random_cut


class Splitter(Protocol):
    def split(self, group: Sequence[int], cost_model, rng: random.Random) -> list[tuple[int, ...]]: ...


class RandomSplitter:
    """Recursively cut a non-fitting group at a random point of a random linear extension,
    ignoring DRAM, until every piece fits or is a single op (the paper's random split)."""

    name = "random"

    def split(self, group: Sequence[int], cost_model, rng: random.Random) -> list[tuple[int, ...]]:
        idx = graph_index(cost_model.graph)
        done: list[tuple[int, ...]] = []
        todo = [tuple(sorted(group))]
        while todo:
            costs = cost_model.evaluate(todo)
            nxt = []
            for g, fits in zip(todo, costs.fits):
                if len(g) == 1 or bool(fits):
                    done.append(g)
                else:
                    nxt.extend(random_cut(idx, g, rng))
            todo = nxt
        return sorted(done)


#: name -> factory(**options) -> Splitter. Other modules register theirs (GET adds "get").
def _get_splitter(**options) -> Splitter:
    """GET lives in tvm_fusion.explain (torch, PyG); import it only when asked for."""
    from ..explain.splitter import GETSplitter

    return GETSplitter(**options)


SPLITTERS: dict[str, Callable[..., Splitter]] = {"random": RandomSplitter, "get": _get_splitter}


def make_splitter(name: str, **options) -> Splitter:
    """Build a registered splitter by name (raises ValueError listing the known names)."""
    try:
        factory = SPLITTERS[name]
    except KeyError:
        raise ValueError(f"unknown splitter {name!r}; available: {', '.join(sorted(SPLITTERS))}") from None
    return factory(**options)
