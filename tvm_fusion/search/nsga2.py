"""NSGA-II over fusion plans with two objectives: total DRAM and the largest buffer use.

Genome, per op: a priority key and a "starts a new group" bit. Decoding lists the ops in
the topological order that always takes the ready op of smallest key, cuts it before every
op whose bit is set and makes each interval's connected components groups; as in
``partition.py`` every genome decodes to a valid plan (convex, connected groups, acyclic
condensation) and every valid plan has a genome. After the splitter's repair the genome is
rewritten from the repaired plan (Lamarckian), so selection sees the plan that was scored.
The DRAM-best plan found (all are legal after repair) is reported.
"""

from __future__ import annotations

import heapq
import random

from ..plan import condensed_order
from .base import BudgetExhausted, Candidate, SearchContext, SearchResult
from .partition import intervals_to_groups


def _encode(ctx: SearchContext, groups) -> tuple[list[float], list[bool]]:
    """Keys = positions in a topological order listing each group contiguously; a start bit
    marks each group's first op. Decoding this genome gives back exactly ``groups``."""
    keys, starts = [0.0] * ctx.idx.n, [False] * ctx.idx.n
    pos = 0
    for g in condensed_order(ctx.idx, groups):
        starts[groups[g][0]] = True
        for v in groups[g]:
            keys[v] = float(pos)
            pos += 1
    return keys, starts


def _decode(ctx: SearchContext, genome: tuple[list[float], list[bool]]) -> list[tuple[int, ...]]:
    """Topological order by smallest key among ready ops, cut at start bits (and around
    unfusable ops); each interval becomes its connected components."""
    keys, starts = genome
    idx = ctx.idx
    indeg = [len(p) for p in idx.preds]
    heap = [(keys[v], v) for v in range(idx.n) if indeg[v] == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        _, v = heapq.heappop(heap)
        order.append(v)
        for s in idx.succs[v]:
            indeg[s] -= 1
            if indeg[s] == 0:
                heapq.heappush(heap, (keys[s], s))
    unf = ctx.unfusable
    cuts = [p for p, v in enumerate(order) if starts[v] or v in unf or (p and order[p - 1] in unf)]
    return intervals_to_groups(idx, order, cuts)


def _dominates(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[0] and a[1] <= b[1] and a != b


def nondominated_fronts(objs: list[tuple[int, int]]) -> list[list[int]]:
    """Fast non-dominated sorting (Deb et al. 2002): indices per front, best front first."""
    n = len(objs)
    dominated_by = [[] for _ in range(n)]
    count = [0] * n
    fronts: list[list[int]] = [[]]
    for i in range(n):
        for j in range(n):
            if i != j:
                if _dominates(objs[i], objs[j]):
                    dominated_by[i].append(j)
                elif _dominates(objs[j], objs[i]):
                    count[i] += 1
        if count[i] == 0:
            fronts[0].append(i)
    while fronts[-1]:
        nxt = []
        for i in fronts[-1]:
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    nxt.append(j)
        fronts.append(nxt)
    return fronts[:-1]


def crowding(objs: list[tuple[int, int]], front: list[int]) -> dict[int, float]:
    dist = {i: 0.0 for i in front}
    for m in range(2):
        order = sorted(front, key=lambda i: objs[i][m])
        lo, hi = objs[order[0]][m], objs[order[-1]][m]
        dist[order[0]] = dist[order[-1]] = float("inf")
        if hi == lo:
            continue
        for k in range(1, len(order) - 1):
            dist[order[k]] += (objs[order[k + 1]][m] - objs[order[k - 1]][m]) / (hi - lo)
    return dist


def _rank(objs: list[tuple[int, int]], keep: int) -> tuple[list[int], dict[int, tuple[int, float]]]:
    """Indices of the ``keep`` survivors and each survivor's (front rank, crowding distance)."""
    chosen: list[int] = []
    info: dict[int, tuple[int, float]] = {}
    for r, front in enumerate(nondominated_fronts(objs)):
        dist = crowding(objs, front)
        for i in front:
            info[i] = (r, dist[i])
        if len(chosen) + len(front) <= keep:
            chosen.extend(front)
        else:
            chosen.extend(sorted(front, key=lambda i: -dist[i])[: keep - len(chosen)])
            break
    return chosen, info


def nsga2(ctx: SearchContext, pop_size: int = 40, crossover_prob: float = 0.9) -> SearchResult:
    rng: random.Random = ctx.rng
    n = ctx.idx.n
    pop: list[tuple[tuple[list[float], list[bool]], Candidate]] = []

    def evaluate(groups) -> None:
        cand = ctx.score(groups)
        pop.append((_encode(ctx, cand.groups), cand))

    try:
        for _ in range(pop_size):
            evaluate(ctx.random_partition())
        if n < 2:
            return ctx.result()
        while True:
            objs = [(c.dram, c.max_buffer) for _, c in pop]
            survivors, info = _rank(objs, pop_size)
            parents = [pop[i] for i in survivors]
            pinfo = [info[i] for i in survivors]

            def tournament() -> tuple[list[float], list[bool]]:
                i, j = rng.randrange(len(parents)), rng.randrange(len(parents))
                (ri, di), (rj, dj) = pinfo[i], pinfo[j]
                return parents[i if (ri, -di) <= (rj, -dj) else j][0]

            pop = list(parents)
            for _ in range(pop_size):
                (ka, sa), (kb, sb) = tournament(), tournament()
                keys, starts = list(ka), list(sa)
                if rng.random() < crossover_prob:  # two-point crossover over node ids
                    i, j = sorted(rng.sample(range(n + 1), 2))
                    keys[i:j], starts[i:j] = kb[i:j], sb[i:j]
                rate = 1.5 / n
                flips = [k for k in range(n) if rng.random() < rate] or [rng.randrange(n)]
                for k in flips:
                    starts[k] = not starts[k]
                if rng.random() < 0.3:  # move an op next to a neighbour in the order
                    v = rng.randrange(n)
                    if ctx.idx.neighbours[v]:
                        keys[v] = keys[rng.choice(ctx.idx.neighbours[v])] + rng.choice((-0.5, 0.5))
                evaluate(_decode(ctx, (keys, starts)))
    except BudgetExhausted:
        pass
    return ctx.result()
