"""Local search: keep the K best plans; mutate a random one (move a boundary op to a
neighbouring group, merge two adjacent groups, or split a group) and keep improvements.

Every mutation keeps groups connected and convex and the condensed graph a DAG (merges and
moves are checked; a split along a linear extension cannot create a cycle), so the child
only needs the splitter's repair of groups that exceed the buffer.
"""

from __future__ import annotations

import bisect

from ..plan import _is_convex, components, condensed_order, mask_of
from .base import BudgetExhausted, Candidate, Groups, SearchContext, SearchResult
from .partition import random_cut

_MAX_FAILED_MUTATIONS = 2000  # consecutive failures mean no mutation can change the plan


def _crossing_edge(ctx: SearchContext, label: list[int], tries: int = 30) -> tuple[int, int] | None:
    """A random fusable edge between two different groups (None if none was found)."""
    edges = ctx.fusable_edges
    if not edges:
        return None
    for _ in range(tries):
        u, v = edges[ctx.rng.randrange(len(edges))]
        if label[u] != label[v]:
            return u, v
    return None


def mutate(ctx: SearchContext, groups: Groups) -> list[tuple[int, ...]] | None:
    """One random neighbour of ``groups`` (None when the drawn move is not convex)."""
    rng, idx = ctx.rng, ctx.idx
    label = [0] * idx.n
    for g, group in enumerate(groups):
        for v in group:
            label[v] = g
    kind = rng.random()
    if kind < 0.2:  # split a group
        multi = [g for g, group in enumerate(groups) if len(group) > 1]
        if not multi:
            return None
        g = rng.choice(multi)
        return [x for h, x in enumerate(groups) if h != g] + random_cut(idx, groups[g], rng)
    edge = _crossing_edge(ctx, label)
    if edge is None:
        return None
    u, v = edge
    a, b = label[u], label[v]
    if kind < 0.6:  # merge the two groups joined by the edge
        union = groups[a] + groups[b]
        if not _is_convex(idx, union, mask_of(union)):
            return None
        child = [x for h, x in enumerate(groups) if h not in (a, b)] + [tuple(sorted(union))]
        return child if condensed_order(idx, child) is not None else None
    # move one endpoint of the edge into the other endpoint's group
    x, src, dst = (u, a, b) if rng.random() < 0.5 else (v, b, a)
    target = groups[dst] + (x,)
    rest = [w for w in groups[src] if w != x]
    if not _is_convex(idx, target, mask_of(target)):
        return None
    if rest and not _is_convex(idx, rest, mask_of(rest)):
        return None
    pieces = components(idx, rest) if rest else []
    child = [y for h, y in enumerate(groups) if h not in (src, dst)] + pieces + [tuple(sorted(target))]
    if condensed_order(idx, child) is None:
        return None
    return child


def local_search(ctx: SearchContext, pool_size: int = 10) -> SearchResult:
    pool: list[Candidate] = []  # sorted by DRAM
    keys: list[int] = []
    members: set[Groups] = set()

    def offer(c: Candidate) -> None:
        if c.groups in members or (len(pool) >= pool_size and c.dram >= pool[-1].dram):
            return
        i = bisect.bisect_right(keys, c.dram)
        pool.insert(i, c)
        keys.insert(i, c.dram)
        members.add(c.groups)
        if len(pool) > pool_size:
            members.discard(pool.pop().groups)
            keys.pop()

    try:
        for _ in range(pool_size):
            offer(ctx.score(ctx.random_partition()))
        failed = 0
        while failed < _MAX_FAILED_MUTATIONS:
            child = mutate(ctx, ctx.rng.choice(pool).groups)
            if child is None:
                failed += 1
                continue
            failed = 0
            offer(ctx.score(child))
    except BudgetExhausted:
        pass
    return ctx.result()
