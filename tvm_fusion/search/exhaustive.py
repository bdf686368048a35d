"""Exhaustive search (test oracle for small graphs): the DRAM-optimal plan over all
partitions into connected, convex groups that fit the buffer (or are single ops) and whose
condensed graph is a DAG.

Branching: the lowest unassigned node starts a group; every connected set of unassigned,
fusable nodes containing it is enumerated once (reverse search: each candidate neighbour
is either added or forbidden for later siblings), kept if convex and fitting, and the rest
is searched recursively. Branch and bound on the DRAM of the groups chosen so far.
"""

from __future__ import annotations

from typing import Iterator

from ..plan import _is_convex, condensed_order, mask_of
from .base import SearchContext, SearchResult

MAX_NODES = 20


def _connected_sets(ctx: SearchContext, start: int, free: set[int]) -> Iterator[tuple[int, ...]]:
    nbrs = ctx.idx.neighbours
    unfus = ctx.unfusable

    def grow(group: list[int], ext: set[int], forbidden: set[int]) -> Iterator[tuple[int, ...]]:
        yield tuple(sorted(group))
        ext = set(ext)
        forbidden = set(forbidden)
        while ext:
            w = min(ext)
            ext.discard(w)
            new_ext = ext | {x for x in nbrs[w] if x in free and x not in unfus and x not in forbidden
                             and x not in group and x != w}
            yield from grow(group + [w], new_ext, forbidden | {w})
            forbidden.add(w)

    if start in unfus:
        yield (start,)
        return
    yield from grow([start], {x for x in nbrs[start] if x in free and x not in unfus}, {start})


def exhaustive(ctx: SearchContext, max_nodes: int = MAX_NODES) -> SearchResult:
    n = ctx.idx.n
    if n > max_nodes:
        raise ValueError(f"exhaustive search enumerates all partitions and is limited to {max_nodes} ops; "
                         f"graph {ctx.graph.name!r} has {n}. Use the interval DP ('dp') instead.")
    best = [float("inf"), None]

    def rec(free: set[int], chosen: list[tuple[int, ...]], dram: int) -> None:
        if dram >= best[0]:
            return
        if not free:
            if condensed_order(ctx.idx, chosen) is not None:
                best[0], best[1] = dram, list(chosen)
            return
        start = min(free)
        for group in _connected_sets(ctx, start, free):
            if len(group) > 1 and not _is_convex(ctx.idx, group, mask_of(group)):
                continue
            buf, d, fits = ctx.costs([group])[0]
            if len(group) > 1 and not fits:
                continue
            chosen.append(group)
            rec(free - set(group), chosen, dram + d)
            chosen.pop()

    rec(set(range(n)), [], 0)
    ctx.score(best[1])
    return ctx.result()
