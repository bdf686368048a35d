"""Random partitions of an OpGraph into connected, convex groups with an acyclic condensation.

Public because GET samples its training groups with :func:`random_convex_partition`.

Why intervals of a linear extension: a set of convex groups can still depend on each other
in a cycle (A -> B through one pair of ops, B -> A through another), so merging groups
edge by edge is not enough. A plan is valid exactly when some topological order of the ops
lists every group contiguously. Cutting a random topological order into intervals and taking
each interval's connected components therefore reaches every valid plan, and every result
is valid: an interval of a topological order is convex, its components are convex and
independent of each other, and all edges between intervals point forward.
"""

from __future__ import annotations

import random
from typing import Iterable, Sequence

from ..graph import OpGraph
from ..plan import GraphIndex, components, graph_index


def random_linear_extension(idx: GraphIndex, nodes: Sequence[int], rng: random.Random,
                            follow: float = 0.0) -> list[int]:
    """A random topological order of ``nodes`` (of their induced subgraph).

    With probability ``follow`` the next op is a ready successor of the previous one, so
    chains tend to stay contiguous; otherwise any ready op is picked uniformly.
    """
    members = set(nodes)
    indeg = {v: sum(1 for p in idx.preds[v] if p in members) for v in nodes}
    ready = sorted(v for v in nodes if indeg[v] == 0)
    order: list[int] = []
    last_succs: list[int] = []
    while ready:
        pick = None
        if last_succs and rng.random() < follow:
            pick = last_succs[rng.randrange(len(last_succs))]
        if pick is None:
            pick = ready[rng.randrange(len(ready))]
        ready.remove(pick)
        order.append(pick)
        last_succs = []
        for s in idx.succs[pick]:
            if s in members:
                indeg[s] -= 1
                if indeg[s] == 0:
                    ready.append(s)
                    last_succs.append(s)
    return order


def intervals_to_groups(idx: GraphIndex, order: Sequence[int], starts: Iterable[int]) -> list[tuple[int, ...]]:
    """Cut ``order`` before each position in ``starts``; each interval becomes its components."""
    cuts = sorted({0, len(order), *starts})
    groups: list[tuple[int, ...]] = []
    for a, b in zip(cuts, cuts[1:]):
        groups.extend(components(idx, order[a:b]))
    return groups


def random_convex_partition(graph: OpGraph, rng: random.Random, merge_prob: float | None = None,
                            singletons: Iterable[int] = (), max_group_size: int | None = None,
                            follow: float = 0.8) -> list[tuple[int, ...]]:
    """A random valid partition of all nodes (sorted tuples, sorted by first node).

    A random topological order (chain-following with probability ``follow``) is cut before
    each op with probability ``1 - merge_prob`` (``merge_prob`` ~ U(0.3, 0.95) when None, so
    group sizes vary between calls), always around ``singletons`` (e.g. the cost model's
    unfusable ops) and at least every ``max_group_size`` ops. Buffer limits are not checked.
    """
    idx = graph_index(graph)
    if merge_prob is None:
        merge_prob = rng.uniform(0.3, 0.95)
    frozen = set(singletons)
    order = random_linear_extension(idx, range(idx.n), rng, follow)
    starts = []
    run = 0
    for pos, v in enumerate(order):
        cut = rng.random() >= merge_prob or v in frozen or (pos > 0 and order[pos - 1] in frozen)
        if max_group_size is not None and run >= max_group_size:
            cut = True
        if cut:
            starts.append(pos)
            run = 0
        run += 1
    return sorted(intervals_to_groups(idx, order, starts))


def random_cut(idx: GraphIndex, group: Sequence[int], rng: random.Random) -> list[tuple[int, ...]]:
    """Cut a convex group of 2+ ops in two at a random point of a random linear extension;
    each side falls into its connected components (all connected and convex, and the pieces
    only depend first side -> second side, so the plan stays acyclic)."""
    order = random_linear_extension(idx, group, rng)
    k = rng.randrange(1, len(order))
    return components(idx, order[:k]) + components(idx, order[k:])
