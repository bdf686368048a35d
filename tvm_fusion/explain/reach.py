"""Reachability helpers GET needs on top of plan.GraphIndex.

Two structural operations plan.py does not offer: the convex closure of a node set (to turn
a BFS-grown set into a legal group) and ancestor/descendant-closed sides of a cut (cutting
a convex group into an ancestor-closed part and the rest leaves both sides convex). Both are
bit operations on plan.GraphIndex's reachability masks plus an ancestor mask per node.
"""

from __future__ import annotations

from ..graph import OpGraph
from ..plan import GraphIndex, _is_convex, components, graph_index, mask_of


def members_of(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


class Reach:
    """plan.GraphIndex plus ancestor masks (``anc[v]`` includes ``v``)."""

    def __init__(self, graph: OpGraph):
        self.graph = graph
        self.idx: GraphIndex = graph_index(graph)
        self.preds, self.succs, self.desc = self.idx.preds, self.idx.succs, self.idx.reach
        self.anc = [0] * self.idx.n
        for v in range(self.idx.n):  # node ids are topological
            m = 1 << v
            for p in self.preds[v]:
                m |= self.anc[p]
            self.anc[v] = m

    def convex_closure(self, nodes) -> list[int]:
        """Smallest convex superset: every node on a path between two members."""
        nodes = list(nodes)
        a = d = 0
        for v in nodes:
            a |= self.anc[v]
            d |= self.desc[v]
        return members_of((a & d) | mask_of(nodes))

    def is_convex(self, nodes) -> bool:
        nodes = list(nodes)
        return _is_convex(self.idx, nodes, mask_of(nodes))

    def components(self, nodes) -> list[tuple[int, ...]]:
        """Weakly connected components (a component of a convex set is convex)."""
        return components(self.idx, list(nodes))

    def components_without(self, nodes, edge: tuple[int, int]) -> list[tuple[int, ...]]:
        """Weak components of ``nodes`` once the data-flow edge ``edge`` is removed."""
        u, v = edge
        left, comps = set(nodes), []
        while left:
            start = min(left)
            left.discard(start)
            stack, comp = [start], [start]
            while stack:
                x = stack.pop()
                for w in self.idx.neighbours[x]:
                    if w in left and {x, w} != {u, v}:
                        left.discard(w)
                        stack.append(w)
                        comp.append(w)
            comps.append(tuple(sorted(comp)))
        return sorted(comps)


def internal_edges(reach: Reach, group) -> list[tuple[int, int]]:
    """Data-flow edges (u, v) with both ends in ``group``, sorted."""
    members = set(int(n) for n in group)
    return sorted((u, v) for u in members for v in reach.succs[u] if v in members)
