"""Exact dynamic program over contiguous intervals of one topological order.

Family: partitions of the node order (OpGraph binding order) into contiguous intervals.
An interval is convex by construction (a path between two of its nodes only visits nodes
between them in the order), so it is always a valid "slice"; when an interval is not
connected it becomes its connected components (each convex; no edges between them), so
one interval may stand for several groups. Unfusable ops are intervals of their own.

``best[j] = min_i best[i] + cost(i..j-1)`` where cost is the summed F_D of the interval's
components, admissible when every multi-op component fits. For a fixed start the interval
is extended until a multi-op component stops fitting; stopping there assumes F_β does not
shrink when a group grows (no violation in ~10k interval extensions of resnet50,
mobilenet_v2 and efficientnet_b0, LBDF and BRR; the tests compare the DP with the exhaustive
oracle on chains), under which the result is the optimum of the family. The components of ``[i, j]`` are maintained
incrementally with a union-find, and new components are evaluated in batches.
"""

from __future__ import annotations

from ..plan import components
from .base import SearchContext, SearchResult

_BATCH = 32


def interval_dp(ctx: SearchContext, max_interval: int | None = None) -> SearchResult:
    idx, n = ctx.idx, ctx.idx.n
    unfus = ctx.unfusable
    inf = float("inf")
    best = [0] + [inf] * n
    choice = [0] * (n + 1)
    single = ctx.costs([(v,) for v in range(n)])
    for i in range(n):
        if best[i] == inf:
            continue
        # [i, i] is always admissible (a singleton runs alone)
        if best[i] + single[i][1] < best[i + 1]:
            best[i + 1], choice[i + 1] = best[i] + single[i][1], i
        if i in unfus:
            continue
        root = list(range(n))  # union-find over [i, j]; roots keep member lists and costs
        members: dict[int, list[int]] = {i: [i]}
        comp_dram: dict[int, int] = {i: single[i][1]}
        total = single[i][1]

        def find(x: int) -> int:
            while root[x] != x:
                root[x] = root[root[x]]
                x = root[x]
            return x

        j = i + 1
        stop = False
        limit = n if max_interval is None else min(n, i + max_interval)
        while j < limit and not stop:
            chunk = []  # (j, merged roots, new component) for a batch of extensions
            for jj in range(j, min(limit, j + _BATCH)):
                if jj in unfus:
                    limit = jj
                    break
                merged = {find(p) for p in idx.preds[jj] if i <= p < jj}
                comp = [jj]
                for r in merged:
                    comp.extend(members.pop(r))
                    root[r] = jj
                members[jj] = comp
                chunk.append((jj, merged, tuple(sorted(comp))))
            if not chunk:
                break
            costs = ctx.costs([c for _, _, c in chunk])
            for (jj, merged, comp), (_, dram, fits) in zip(chunk, costs):
                if len(comp) > 1 and not fits:
                    stop = True
                    break
                total += dram - sum(comp_dram.pop(r) for r in merged)
                comp_dram[jj] = dram
                if best[i] + total < best[jj + 1]:
                    best[jj + 1], choice[jj + 1] = best[i] + total, i
            j = chunk[-1][0] + 1
    groups: list[tuple[int, ...]] = []
    j = n
    while j > 0:
        i = choice[j]
        groups.extend(components(idx, range(i, j)))
        j = i
    ctx.score(groups)
    return ctx.result()
