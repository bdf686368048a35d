"""Python side of the fusion cost model: buffer occupancy F_β and DRAM traffic F_D per group.

The equations live only in C++ (``cpp/cost_model.cc``, documented in docs/cost_model.md).
This module flattens an :class:`~tvm_fusion.graph.OpGraph` into int64 arrays once, hands them
to the global function ``tvm_fusion.cost.make_evaluator`` and then evaluates whole batches of
groups with one FFI call each (arrays cross by DLPack, without copies).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from .graph import GLOBAL, OpGraph
from .hardware import Accelerator, FusionType
from .native import global_function

#: the cost model's C++ source (beside the package in a source checkout)
COST_SOURCE = Path(__file__).resolve().parents[1] / "cpp" / "cost_model.cc"
_make_evaluator = global_function("tvm_fusion_cost", "tvm_fusion.cost.make_evaluator")
_FUSION_CODE = {FusionType.LBDF: 0, FusionType.BRR: 1}
#: GLOBAL ops that accumulate their input row by row: they wait for the whole input (lag
#: +1) but hold only one input row (docs/cost_model.md, "Rows held on chip").
STREAMED_REDUCTIONS = frozenset({"mean", "sum", "max", "adaptive_avg_pool2d"})
_GLOBAL_REDUCE = 3


def cost_model_version() -> str:
    """sha256[:12] of the cost model's C++ source; the fusion benchmarks key their saved rows by
    it, so a changed cost model recomputes them. The source and not the built binary: the binary
    embeds the checkout's path, so one source would key differently in every clone."""
    if not COST_SOURCE.is_file():
        raise FileNotFoundError(f"{COST_SOURCE} not found: the cost-model version is read from the source "
                                "checkout; run the benchmarks from a clone of the repository")
    return hashlib.sha256(COST_SOURCE.read_bytes()).hexdigest()[:12]


@dataclass(frozen=True)
class GroupCosts:
    """Costs of a batch of groups, index-aligned with the groups passed to ``evaluate``."""

    buffer_bytes: np.ndarray  # int64, F_β
    dram_bytes: np.ndarray  # int64, F_D
    fits: np.ndarray  # bool, F_β <= buffer

    def __len__(self) -> int:
        return len(self.buffer_bytes)


class _FlatGraph(NamedTuple):
    """The arrays ``make_evaluator`` takes, in its argument order (pass as ``*flat``)."""

    row_class: np.ndarray
    kernel_h_eff: np.ndarray
    stride_h: np.ndarray
    weight_elems: np.ndarray
    out_channels: np.ndarray
    output: np.ndarray
    in_ptr: np.ndarray  # node v's distinct input tensors are in_idx[in_ptr[v]:in_ptr[v + 1]]
    in_idx: np.ndarray
    rows: np.ndarray  # per tensor from here on
    row_elems: np.ndarray
    producer: np.ndarray
    is_output: np.ndarray


def _flatten(graph: OpGraph) -> _FlatGraph:
    """``graph`` as the C++ cost model's flat arrays."""
    for i, node in enumerate(graph.nodes):
        if node.id != i:
            raise ValueError(f"OpGraph {graph.name!r}: node {node.name!r} has id {node.id} at "
                             f"position {i}; node ids must equal their position")
    for i, t in enumerate(graph.tensors):
        if t.id != i:
            raise ValueError(f"OpGraph {graph.name!r}: tensor {t.name!r} has id {t.id} at "
                             f"position {i}; tensor ids must equal their position")
    nodes, tensors = graph.nodes, graph.tensors
    distinct_inputs = [list(dict.fromkeys(n.inputs)) for n in nodes]
    in_ptr = np.zeros(len(nodes) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in distinct_inputs], out=in_ptr[1:])
    outputs = set(graph.outputs)

    def arr(values):
        return np.fromiter(values, dtype=np.int64)

    return _FlatGraph(
        arr(_GLOBAL_REDUCE if n.row_class == GLOBAL and n.kind in STREAMED_REDUCTIONS else n.row_class
            for n in nodes),
        arr(n.kernel_h_eff for n in nodes),
        arr(n.stride[0] for n in nodes),
        arr(n.weight_elems for n in nodes),
        arr(max(1, n.out_channels) for n in nodes),
        arr(n.output for n in nodes),
        in_ptr,
        arr(chain.from_iterable(distinct_inputs)),
        arr(t.rows for t in tensors),
        arr(t.row_elems for t in tensors),
        arr(t.producer for t in tensors),
        arr(int(t.id in outputs) for t in tensors),
    )


def stream_rows(graph: OpGraph) -> list[dict[int, tuple[int, int]]]:
    """Per node, per distinct input tensor: (rows the node needs of it by its row class, rows it
    holds when the whole graph streams as one group, i.e. plus a merge's skew), both capped at
    the tensor's rows. Computed by the C++ cost model, so the GET features restate none of its
    rules (docs/cost_model.md, "Lag" and "Rows held on chip")."""
    flat = _flatten(graph)
    in_ptr, in_idx = flat.in_ptr, flat.in_idx
    own, held = np.empty(len(in_idx), dtype=np.int64), np.empty(len(in_idx), dtype=np.int64)
    _make_evaluator(*flat)["stream_terms"](own, held)
    return [{int(in_idx[i]): (int(own[i]), int(held[i])) for i in range(in_ptr[v], in_ptr[v + 1])}
            for v in range(len(graph.nodes))]


def _as_tuple(index: int, group) -> tuple:
    try:
        return tuple(group)
    except TypeError:
        raise ValueError(f"group {index} must be an iterable of node ids, got {group!r}") from None


class CostModel:
    """F_β / F_D of fusion groups of one graph on one accelerator.

    ``cache=True`` memoises costs per group (key: sorted node ids), which the searches rely
    on; benchmarks switch it off to time the evaluator itself.
    """

    def __init__(self, graph: OpGraph, accel: Accelerator, cache: bool = True):
        if not isinstance(accel, Accelerator):
            raise TypeError(f"CostModel needs a tvm_fusion.hardware.Accelerator, got {accel!r}")
        self.graph = graph
        self.accel = accel
        self.cache_enabled = cache
        self._cache: dict[tuple[int, ...], tuple[int, int]] = {}
        self._num_nodes = len(graph.nodes)
        fns = _make_evaluator(*_flatten(graph))
        self._evaluate = fns["evaluate"]
        self._lower_bound = fns["lower_bound"]
        self._args = (accel.buffer_bytes, accel.bytes_per_element, _FUSION_CODE[accel.fusion])

    # ---- batch evaluation --------------------------------------------------------------
    def _call(self, groups: Sequence[Sequence[int]]) -> np.ndarray:
        """One FFI call for all ``groups``; returns int64 [len(groups), 2] of (F_β, F_D)."""
        out = np.empty((len(groups), 2), dtype=np.int64)
        if not groups:
            return out
        ptr = np.zeros(len(groups) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, groups), dtype=np.int64, count=len(groups)), out=ptr[1:])
        ids: list = []
        extend = ids.extend
        for g in groups:  # list.extend + np.array beats np.fromiter(chain(...)) by ~1.5x
            extend(g)
        try:
            flat = np.array(ids, dtype=np.int64)
        except (TypeError, ValueError, OverflowError) as err:
            raise ValueError(f"fusion groups must be iterables of int node ids: {err}") from None
        if len(flat) and (flat.min() < 0 or flat.max() >= self._num_nodes):
            bad = int(np.flatnonzero((flat < 0) | (flat >= self._num_nodes))[0])
            gid = int(np.searchsorted(ptr, bad, side="right") - 1)
            raise ValueError(f"group {tuple(groups[gid])} names node id {int(flat[bad])}, but "
                             f"OpGraph {self.graph.name!r} has node ids 0..{self._num_nodes - 1}")
        try:
            self._evaluate(ptr, flat, *self._args, out)
        except ValueError as err:  # name the group by its nodes, not its index in this batch
            msg = re.sub(r"group (\d+)", lambda m: f"group {tuple(groups[int(m.group(1))])}", str(err))
            raise ValueError(msg) from None
        return out

    def evaluate(self, groups: Iterable[Iterable[int]]) -> GroupCosts:
        """Costs of many groups (each an iterable of node ids) with at most one FFI call."""
        groups = [g if isinstance(g, (tuple, list)) else _as_tuple(i, g) for i, g in enumerate(groups)]
        if not self.cache_enabled:
            res = self._call(groups)
        else:
            keys = [tuple(sorted(g)) for g in groups]
            cache = self._cache
            missing = list(dict.fromkeys(k for k in keys if k not in cache))
            if missing:
                for key, row in zip(missing, self._call(missing).tolist()):
                    cache[key] = (row[0], row[1])
            res = np.array([cache[k] for k in keys], dtype=np.int64).reshape(len(keys), 2)
        buffer_bytes = np.ascontiguousarray(res[:, 0])
        return GroupCosts(buffer_bytes, np.ascontiguousarray(res[:, 1]),
                          buffer_bytes <= self.accel.buffer_bytes)

    def group_cost(self, group: Iterable[int]) -> tuple[int, int, bool]:
        """(F_β bytes, F_D bytes, fits) of one group."""
        c = self.evaluate([group])
        return int(c.buffer_bytes[0]), int(c.dram_bytes[0]), bool(c.fits[0])

    def clear_cache(self) -> None:
        self._cache.clear()

    # ---- whole-graph reference points --------------------------------------------------
    def _singletons(self) -> GroupCosts:
        return self.evaluate([(v,) for v in range(self._num_nodes)])

    def unfusable(self) -> list[int]:
        """Node ids whose own F_β exceeds the buffer: they can only run alone."""
        return [int(v) for v in np.flatnonzero(~self._singletons().fits)]

    def no_fusion_dram(self) -> int:
        """F_D with every op in its own group."""
        return int(self._singletons().dram_bytes.sum())

    def lower_bound_dram(self) -> int:
        """Compulsory traffic: every weight, consumed graph input and graph output moved once."""
        return int(self._lower_bound(self.accel.bytes_per_element))
