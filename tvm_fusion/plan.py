"""Fusion plans: a partition of OpGraph nodes into fusion groups, validated once.

Invariants every consumer relies on (searches, the Relax pass, the explainer):

- every node is in exactly one group;
- every group is weakly connected and convex (no data-flow path leaves the group and
  re-enters it), so a group can run as one fused kernel;
- the condensed graph (one vertex per group) is a DAG; groups are stored as sorted node-id
  tuples, in a deterministic topological order of that DAG.

Convexity is checked with reachability bitsets (Python ints, one per node) built once per
graph, because searches check thousands of candidate groups.
"""

from __future__ import annotations

import heapq
import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .graph import OpGraph

PLAN_FORMAT = "tvm-fusion-plan/1"


class PlanError(ValueError):
    """A partition is not a valid fusion plan (names the group and the offending nodes)."""


class GraphIndex:
    """Adjacency lists and reachability bitsets of an OpGraph (node ids are topological).

    ``reach[v]`` has bit ``u`` set when ``u`` is reachable from ``v`` (``v`` included).
    """

    def __init__(self, graph: OpGraph):
        n = len(graph.nodes)
        for i, node in enumerate(graph.nodes):
            if node.id != i:
                raise PlanError(f"OpGraph {graph.name!r}: node {node.name!r} has id {node.id}, expected {i} "
                                "(node ids must be their positions in topological order)")
        self.n = n
        self.preds = [graph.preds(v) for v in range(n)]
        self.succs = [graph.succs(v) for v in range(n)]
        self.neighbours = [sorted(set(self.preds[v]) | set(self.succs[v])) for v in range(n)]
        reach = [0] * n
        for v in range(n - 1, -1, -1):
            r = 1 << v
            for s in self.succs[v]:
                if s <= v:
                    raise PlanError(f"OpGraph {graph.name!r}: edge {graph.nodes[v].name} -> "
                                    f"{graph.nodes[s].name} goes backwards; nodes must be in topological order")
                r |= reach[s]
            reach[v] = r
        self.reach = reach
        self.edges = [(u, v) for u in range(n) for v in self.succs[u]]


def graph_index(graph: OpGraph) -> GraphIndex:
    """The (cached) GraphIndex of ``graph``; the cache lives on the graph object."""
    idx = graph.__dict__.get("_plan_graph_index")
    if idx is None or idx.n != len(graph.nodes):
        idx = GraphIndex(graph)
        graph.__dict__["_plan_graph_index"] = idx
    return idx


def mask_of(group: Iterable[int]) -> int:
    m = 0
    for v in group:
        m |= 1 << v
    return m


def is_connected(graph: OpGraph, group: Iterable[int]) -> bool:
    """True if ``group`` is non-empty and weakly connected in the data-flow graph."""
    return _is_connected(graph_index(graph), list(group))


def _is_connected(idx: GraphIndex, group: Sequence[int]) -> bool:
    return bool(group) and len(components(idx, group)) == 1


def is_convex(graph: OpGraph, group: Iterable[int]) -> bool:
    """True if no data-flow path leaves ``group`` and re-enters it."""
    group = list(group)
    return _is_convex(graph_index(graph), group, mask_of(group))


def _is_convex(idx: GraphIndex, group: Sequence[int], mask: int) -> bool:
    out = 0
    reach, succs = idx.reach, idx.succs
    for v in group:
        for s in succs[v]:
            if not (mask >> s) & 1:
                out |= reach[s]
    return not (out & mask)


def components(idx: GraphIndex, group: Sequence[int]) -> list[tuple[int, ...]]:
    """Weakly connected components of ``group`` (each sorted), ordered by smallest node."""
    members = set(group)
    seen: set[int] = set()
    comps = []
    for v in sorted(members):
        if v in seen:
            continue
        comp = [v]
        seen.add(v)
        stack = [v]
        while stack:
            u = stack.pop()
            for w in idx.neighbours[u]:
                if w in members and w not in seen:
                    seen.add(w)
                    comp.append(w)
                    stack.append(w)
        comps.append(tuple(sorted(comp)))
    return comps


def condensed_order(idx: GraphIndex, groups: Sequence[Sequence[int]]) -> list[int] | None:
    """Indices of ``groups`` in a topological order of the condensed graph, or None if cyclic.

    Ties are broken by the smallest node id of a group, so the order is deterministic.
    """
    label = [-1] * idx.n
    for g, group in enumerate(groups):
        for v in group:
            label[v] = g
    out_edges: list[set[int]] = [set() for _ in groups]
    for u, v in idx.edges:
        a, b = label[u], label[v]
        if a != b:
            out_edges[a].add(b)
    order = priority_topological_order(out_edges, [min(group) for group in groups])
    return order if len(order) == len(groups) else None


def priority_topological_order(successors: Sequence[Iterable[int]], priority: Sequence[int]) -> list[int]:
    """Kahn's algorithm over items 0..n-1, smallest ``priority`` first among the ready ones.

    Deterministic; items on (or behind) a cycle are left out, so a short result means a cycle.
    """
    indeg = [0] * len(priority)
    for succ in successors:
        for h in succ:
            indeg[h] += 1
    heap = [(priority[g], g) for g in range(len(priority)) if indeg[g] == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        _, g = heapq.heappop(heap)
        order.append(g)
        for h in successors[g]:
            indeg[h] -= 1
            if indeg[h] == 0:
                heapq.heappush(heap, (priority[h], h))
    return order


def _names(graph: OpGraph, nodes: Iterable[int]) -> str:
    return ", ".join(graph.nodes[v].name for v in nodes)


def _reentry_path(graph: OpGraph, idx: GraphIndex, group: Sequence[int]) -> list[int]:
    """A path that leaves ``group`` and re-enters it (for error messages)."""
    members = set(group)
    parent: dict[int, int] = {}
    queue: deque[int] = deque()
    for v in sorted(members):
        for s in idx.succs[v]:
            if s not in members and s not in parent:
                parent[s] = v
                queue.append(s)
    while queue:
        u = queue.popleft()
        for w in idx.succs[u]:
            if w in members:
                path = [w, u]
                while path[-1] not in members:
                    path.append(parent[path[-1]])
                return path[::-1]
            if w not in parent:
                parent[w] = u
                queue.append(w)
    return []


def accelerator_dict(accel) -> dict | None:
    """JSON form of an Accelerator (stored in plan files for the record)."""
    if accel is None:
        return None
    fusion = getattr(accel, "fusion", None)
    return {"buffer_bytes": int(accel.buffer_bytes),
            "fusion": str(getattr(fusion, "value", fusion)),
            "bytes_per_element": int(getattr(accel, "bytes_per_element", 1))}


@dataclass(frozen=True)
class PlanTotals:
    """Whole-plan figures from one batched cost-model call."""

    dram_bytes: int
    max_buffer_bytes: int  # over groups of two or more ops (0 if there are none)
    num_groups: int
    no_fusion_bytes: int
    lower_bound_bytes: int
    illegal_groups: tuple[tuple[int, ...], ...]  # groups of 2+ ops that exceed the buffer

    @property
    def legal(self) -> bool:
        return not self.illegal_groups


@dataclass(frozen=True)
class Plan:
    """A validated partition of an OpGraph's nodes into fusion groups (see module doc)."""

    groups: tuple[tuple[int, ...], ...]
    graph_fingerprint: str
    accelerator: dict | None = None

    @classmethod
    def from_groups(cls, graph: OpGraph, groups: Iterable[Iterable[int]], accel=None) -> "Plan":
        """Validate ``groups`` against ``graph``; raises PlanError naming the offending group."""
        idx = graph_index(graph)
        norm = []
        owner: dict[int, int] = {}
        for g, group in enumerate(groups):
            nodes = tuple(sorted(int(v) for v in group))
            if not nodes:
                raise PlanError(f"group {g} is empty")
            for v in nodes:
                if not 0 <= v < idx.n:
                    raise PlanError(f"group {g} contains node id {v}, but graph {graph.name!r} "
                                    f"has nodes 0..{idx.n - 1}")
                if v in owner:
                    raise PlanError(f"node {graph.nodes[v].name} (id {v}) is in group {owner[v]} "
                                    f"and group {g}; every node must be in exactly one group")
                owner[v] = g
            norm.append(nodes)
        missing = [v for v in range(idx.n) if v not in owner]
        if missing:
            raise PlanError(f"{len(missing)} node(s) of graph {graph.name!r} are in no group: "
                            f"{_names(graph, missing[:10])}{' ...' if len(missing) > 10 else ''}")
        for g, nodes in enumerate(norm):
            if not _is_connected(idx, nodes):
                comps = components(idx, nodes)
                raise PlanError(f"group {g} ({_names(graph, nodes)}) is not connected: it falls apart into "
                                + " | ".join(f"[{_names(graph, c)}]" for c in comps))
            if not _is_convex(idx, nodes, mask_of(nodes)):
                path = _reentry_path(graph, idx, nodes)
                raise PlanError(f"group {g} ({_names(graph, nodes)}) is not convex: the path "
                                f"{' -> '.join(graph.nodes[v].name for v in path)} leaves the group "
                                "and re-enters it")
        order = condensed_order(idx, norm)
        if order is None:
            raise PlanError("the groups depend on each other in a cycle (the condensed graph is not a DAG); "
                            "merge or re-split the groups involved")
        return cls(tuple(norm[g] for g in order), graph.fingerprint(), accelerator_dict(accel))

    @classmethod
    def no_fusion(cls, graph: OpGraph, accel=None) -> "Plan":
        return cls.from_groups(graph, [[v] for v in range(len(graph.nodes))], accel)

    def __len__(self) -> int:
        return len(self.groups)

    def group_of(self) -> list[int]:
        """Node id -> index of its group."""
        label = [0] * sum(len(g) for g in self.groups)
        for g, group in enumerate(self.groups):
            for v in group:
                label[v] = g
        return label

    def totals(self, cost_model) -> PlanTotals:
        """DRAM, buffer and legality of this plan, with one batched ``evaluate`` call."""
        costs = cost_model.evaluate(self.groups)
        dram = int(sum(int(x) for x in costs.dram_bytes))
        max_buf = 0
        illegal = []
        for group, buf, fits in zip(self.groups, costs.buffer_bytes, costs.fits):
            if len(group) >= 2:
                max_buf = max(max_buf, int(buf))
                if not bool(fits):
                    illegal.append(group)
        return PlanTotals(dram, max_buf, len(self.groups), int(cost_model.no_fusion_dram()),
                          int(cost_model.lower_bound_dram()), tuple(illegal))

    # ---- persistence ---------------------------------------------------------------
    def to_json(self, graph: OpGraph | None = None) -> dict:
        data = {"format": PLAN_FORMAT, "graph_fingerprint": self.graph_fingerprint,
                "accelerator": self.accelerator, "groups": [list(g) for g in self.groups]}
        if graph is not None:
            data["graph_name"] = graph.name
            data["num_nodes"] = len(graph.nodes)
            data["group_names"] = [[graph.nodes[v].name for v in g] for g in self.groups]
        return data

    def save(self, path: str | Path, graph: OpGraph | None = None) -> Path:
        """Write the plan as JSON (with node names when ``graph`` is given, for reading)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(graph), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path, graph: OpGraph) -> "Plan":
        """Read a plan file written by :meth:`save` and validate it against ``graph``."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise PlanError(f"plan file {path} does not exist") from None
        except json.JSONDecodeError as e:
            raise PlanError(f"plan file {path} is not valid JSON ({e})") from None
        if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT or "groups" not in data:
            raise PlanError(f"{path} is not a tvm-fusion plan file (expected format {PLAN_FORMAT!r})")
        fp = graph.fingerprint()
        if data.get("graph_fingerprint") != fp:
            made_for = data.get("graph_name", "?")
            raise PlanError(f"plan file {path} was made for a different graph ({made_for!r}, fingerprint "
                            f"{data.get('graph_fingerprint')}) than {graph.name!r} (fingerprint {fp}); "
                            "re-run `tvm-fusion optimize` for this model")
        plan = cls.from_groups(graph, data["groups"])
        return cls(plan.groups, plan.graph_fingerprint, data.get("accelerator"))
