"""Training data for the GET validity classifier: fusion groups labelled by the cost model.

A sample is (network, group, buffer size) -> fits. Groups come from two samplers: the
search's own random convex partitions (the groups a search actually proposes) and convex
closures of BFS-grown connected sets (to get enough large, invalid groups). Labels come
from the C++ cost model, never from a Python re-derivation. The dataset is cached on disk
as npz keyed by :data:`VERSION`, the zoo's graph version, fusion type and sampling options.

Node features (:class:`GroupEncoder`) are per op and depend on neither the group nor the
buffer: op family, row class, shape scalars, and log2 element counts of the op's own terms
of the cost model's buffer requirement (:func:`node_size_table`). Which of them count in a
group, and how they add up, is left to the GNN; the classifier regresses the group's F_beta
(a training target, never a feature) and compares it with the buffer.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from tqdm import tqdm

from ..cost import stream_rows
from ..graph import GLOBAL, OpGraph
from .reach import Reach, internal_edges

#: Bump when features, samplers or labels change: invalidates caches and shipped weights.
VERSION = "get-ds-6"

#: Buffer sizes the classifier is trained on (KiB), the paper's range.
BUFFER_KB = (128, 256, 512, 1024, 2048)

#: Op type as a family one-hot. Families, not kinds: with one slot per kind (sigmoid, hardswish,
#: concat, ...) the classifier learnt network-specific op mixes. Fitted on the other training
#: networks and tested on deeplabv3plus / vgg16, per-kind one-hots scored LBDF accuracy 0.938 /
#: 0.932, families 0.972 / 0.973 (BRR, per-kind vs no op type: 0.937 / 0.873 vs 0.977 / 0.959).
FAMILIES = ("conv2d", "depthwise_conv2d", "dense", "merge", "pool", "global_reduce", "data_movement", "elementwise")
_FAMILY_OF = {"conv2d": "conv2d", "depthwise_conv2d": "depthwise_conv2d", "dense": "dense", "matmul": "dense",
              "add": "merge", "sub": "merge", "mul": "merge", "div": "merge", "maximum": "merge",
              "minimum": "merge", "concat": "merge", "max_pool2d": "pool", "avg_pool2d": "pool",
              "adaptive_avg_pool2d": "global_reduce", "mean": "global_reduce", "sum": "global_reduce",
              "max": "global_reduce", "softmax": "global_reduce", "reshape": "data_movement",
              "flatten": "data_movement", "permute": "data_movement", "pad": "data_movement",
              "slice": "data_movement", "resize2d": "data_movement"}
_FAMILY_INDEX = {f: i for i, f in enumerate(FAMILIES)}

#: Element counts per node, given as log2(1 + elements) (see node_size_table).
SIZES = ("in", "in_row", "in_rows", "in_held", "in_held_shared", "out", "out_row", "out_held", "weight", "filter")

_STATIC = len(FAMILIES) + 3 + 11  # op family, row class, shape/op scalars
NUM_FEATURES = _STATIC + len(SIZES) + 1  # + log2 absolute sizes, log2 buffer (last column)
SIZE_COLUMNS = list(range(_STATIC, _STATIC + len(SIZES)))  # "filter" last


def _log2p(x: float) -> float:
    return math.log2(1.0 + float(x))


def _family_slot(node) -> int:
    kind = node.kind
    if kind == "conv2d" and node.groups > 1 and node.groups == node.out_channels:
        kind = "depthwise_conv2d"
    return _FAMILY_INDEX[_FAMILY_OF.get(kind, "elementwise")]


def node_feature_table(graph: OpGraph) -> np.ndarray:
    """Per-node features that depend on neither the group nor the buffer (float32 [N, _STATIC])."""
    rows, outputs = [], set(graph.outputs)
    for node in graph.nodes:
        f = np.zeros(_STATIC, dtype=np.float32)
        f[_family_slot(node)] = 1.0
        k = len(FAMILIES)
        f[k + node.row_class] = 1.0
        out = graph.tensors[node.output]
        shape = list(out.shape[1:4]) + [1] * (3 - len(out.shape[1:4]))
        f[k + 3:] = [
            _log2p(shape[0]), _log2p(shape[1]), _log2p(shape[2]), float(node.kernel_h_eff), float(node.stride[0]),
            float(len(graph.succs(node.id))), float(len(set(node.inputs))), _log2p(node.flops),
            _log2p(out.rows), float(node.output in outputs),
            float(any(graph.nodes[c].row_class == GLOBAL for c in graph.succs(node.id))),
        ]
        rows.append(f)
    return np.stack(rows) if rows else np.zeros((0, _STATIC), np.float32)


def node_size_table(graph: OpGraph) -> np.ndarray:
    """Per-node element counts (float64 [N, len(SIZES)]) from shapes, weights and graph lags only.

    These are the per-op terms of the cost model's buffer requirement, computed from the op's
    own tensors and never from the group (the group's F_beta is not a feature; which terms add
    up, and how, is left to the GNN):

    - in / in_row: all input elements and one row of each input;
    - in_rows: sum over inputs x of r(v, x) * R_x, the rows the op itself needs (kernel height +
      stride - 1 for windowed ops, the whole map for global ops except streamed reductions,
      one row otherwise; docs/cost_model.md, "Rows held on chip");
    - in_held: in_rows, plus at a merge of >= 2 tensors the rows an early branch is kept until
      the late one catches up, 1 + ceil(skew * H_x), with the lags of the whole graph streamed
      as one group (they do not depend on the group, and the skew between a merge's inputs
      equals the group's whenever the group holds the whole fork-merge block; the GNN sees
      when it does not);
    - in_held_shared: in_held with each input's term divided among that tensor's readers (a
      tensor read by two ops of a group is held once, at the larger need);
    - out / out_row: output elements and one output row (the row staged for a write-back);
    - out_held: the largest in_held term any consumer has for the output (one row if none);
    - weight: weight elements (LBDF keeps them all on chip, an additive term);
    - filter: one filter's weights (BRR keeps the largest one, a max term).
    """
    tensors = graph.tensors
    readers = [0] * len(tensors)
    for node in graph.nodes:
        for t in set(node.inputs):
            readers[t] += 1
    needed: list[int] = []  # per node: elements of its inputs it needs itself
    held: list[dict[int, int]] = []  # per node: input tensor id -> elements it holds
    for rows in stream_rows(graph):  # the cost model's own rules, from C++
        needed.append(sum(own * tensors[x].row_elems for x, (own, _) in rows.items()))
        held.append({x: h * tensors[x].row_elems for x, (_, h) in rows.items()})
    rows = []
    for node, need, h in zip(graph.nodes, needed, held):
        out = tensors[node.output]
        ins = [tensors[t] for t in h]
        rows.append([
            sum(t.numel for t in ins), sum(t.row_elems for t in ins), need, sum(h.values()),
            sum(v / max(1, readers[x]) for x, v in h.items()),
            out.numel, out.row_elems,
            max([held[c][node.output] for c in graph.succs(node.id)], default=out.row_elems),
            node.weight_elems, -(-node.weight_elems // max(1, node.out_channels)),
        ])
    return np.array(rows, dtype=np.float64).reshape(len(graph.nodes), len(SIZES))


class GroupEncoder:
    """Turns (group, buffer) into a PyG ``Data`` for one graph (cached node tables).

    Node features never depend on the buffer: sizes are absolute (log2 elements), so the
    classifier can regress the buffer-free F_beta. The buffer enters only as the last
    column, log2(buffer elements), broadcast to every node, which the classifier subtracts
    from its predicted log2 F_beta (see classifier.ValidityGNN).

    ``buffer_bytes`` is in elements of the accelerator's data type, i.e. bytes at the
    default 1 byte per element (callers with wider elements pass buffer_bytes // b).
    """

    def __init__(self, graph: OpGraph):
        self.graph = graph
        self.reach = Reach(graph)
        self.table = node_feature_table(graph)
        self.sizes = np.log2(1.0 + node_size_table(graph)).astype(np.float32)

    def encode(self, group, buffer_bytes: int) -> Data:
        nodes = sorted(int(n) for n in group)
        if not nodes:
            raise ValueError(f"empty group for network {self.graph.name!r}")
        if buffer_bytes <= 0:
            raise ValueError(f"buffer size must be positive, got {buffer_bytes} for network {self.graph.name!r}")
        local = {n: i for i, n in enumerate(nodes)}
        edges = internal_edges(self.reach, nodes)
        x = np.empty((len(nodes), NUM_FEATURES), dtype=np.float32)
        x[:, :_STATIC] = self.table[nodes]
        x[:, _STATIC:-1] = self.sizes[nodes]
        x[:, -1] = math.log2(buffer_bytes)  # graph-level feature broadcast to every node
        if edges:
            fw = np.array([[local[u] for u, _ in edges], [local[v] for _, v in edges]], dtype=np.int64)
            ei = np.concatenate([fw, fw[::-1]], axis=1)  # both directions: E forward, then E reverse
        else:
            ei = np.zeros((2, 0), dtype=np.int64)
        data = Data(x=torch.from_numpy(x), edge_index=torch.from_numpy(ei))
        data.nodes = nodes
        data.edges = edges
        return data


# ---- sampling -----------------------------------------------------------------------------
def bfs_group(reach: Reach, rng: random.Random, max_size: int) -> list[int]:
    """Convex closure of a randomly grown connected set of about 2..``max_size`` nodes."""
    target = rng.randint(2, max_size)
    start = rng.randrange(len(reach.preds))
    group = {start}
    frontier = set(reach.idx.neighbours[start])
    while frontier and len(group) < target:
        v = sorted(frontier)[rng.randrange(len(frontier))]
        group = set(reach.convex_closure(group | {v}))
        frontier = {w for u in group for w in reach.idx.neighbours[u]} - group
    return sorted(group)


def sample_groups(graph: OpGraph, rng: random.Random, n_partitions: int, n_bfs: int,
                  max_bfs_size: int = 48) -> list[tuple[int, ...]]:
    """Distinct groups (2+ nodes) from random convex partitions and BFS growth."""
    from ..search.partition import random_convex_partition

    reach = Reach(graph)
    seen: set[tuple[int, ...]] = set()
    for _ in range(n_partitions):
        for g in random_convex_partition(graph, rng):
            if len(g) >= 2:
                seen.add(tuple(sorted(int(n) for n in g)))
    for _ in range(n_bfs):
        g = bfs_group(reach, rng, max_bfs_size)
        if len(g) >= 2:
            seen.add(tuple(g))
    return sorted(seen)


@dataclass
class GroupDataset:
    """Groups of several networks with cost-model labels at every buffer size.

    ``fits[i, j]`` is the label of group ``i`` at ``buffer_kb[j]``; ``f_beta[i, j]`` the
    buffer occupancy the cost model computed.
    """

    fusion: str
    networks: list[str]
    network_of: np.ndarray  # int [G] index into networks
    groups: list[tuple[int, ...]]
    buffer_kb: tuple[int, ...]
    fits: np.ndarray  # bool [G, B]
    f_beta: np.ndarray  # int64 [G, B]

    def __len__(self) -> int:
        return len(self.groups) * len(self.buffer_kb)

    def save(self, path: Path) -> None:
        lengths = np.array([len(g) for g in self.groups], dtype=np.int64)
        flat = np.concatenate([np.array(g, dtype=np.int64) for g in self.groups]) if self.groups else np.zeros(0, np.int64)
        np.savez_compressed(path, fusion=self.fusion, networks=np.array(self.networks), network_of=self.network_of,
                            lengths=lengths, flat=flat, buffer_kb=np.array(self.buffer_kb), fits=self.fits,
                            f_beta=self.f_beta, version=VERSION)

    @classmethod
    def load(cls, path: Path) -> "GroupDataset":
        z = np.load(path, allow_pickle=False)
        if str(z["version"]) != VERSION:
            raise ValueError(f"dataset {path} has version {z['version']}, expected {VERSION}: delete it to rebuild")
        flat, groups, pos = z["flat"], [], 0
        for n in z["lengths"]:
            groups.append(tuple(int(v) for v in flat[pos:pos + n]))
            pos += int(n)
        return cls(str(z["fusion"]), [str(s) for s in z["networks"]], z["network_of"], groups,
                   tuple(int(b) for b in z["buffer_kb"]), z["fits"], z["f_beta"])

    def pyg_groups(self, graphs: dict[str, OpGraph], mask: np.ndarray | None = None) -> list[Data]:
        """One ``Data`` per group with all buffer sizes (see :func:`group_sample`): what training uses."""
        encoders = {name: GroupEncoder(graphs[name]) for name in self.networks}
        idx = np.arange(len(self.groups)) if mask is None else np.flatnonzero(mask)
        buffers = [kb * 1024 for kb in self.buffer_kb]
        return [group_sample(encoders[self.networks[self.network_of[i]]], self.groups[i], buffers,
                             self.f_beta[i], self.fits[i]) for i in idx]

    def pyg(self, graphs: dict[str, OpGraph], mask: np.ndarray | None = None) -> list[Data]:
        """One ``Data`` per (group, buffer size) with ``y`` = 1 when the group does NOT fit."""
        encoders = {name: GroupEncoder(graphs[name]) for name in self.networks}
        out = []
        idx = np.arange(len(self.groups)) if mask is None else np.flatnonzero(mask)
        for i in idx:
            enc = encoders[self.networks[self.network_of[i]]]
            for j, kb in enumerate(self.buffer_kb):
                d = enc.encode(self.groups[i], kb * 1024)
                out.append(Data(x=d.x, edge_index=d.edge_index,
                                y=torch.tensor([float(not self.fits[i, j])])))
        return out


def group_sample(encoder: GroupEncoder, group, buffer_bytes, f_beta, fits) -> Data:
    """A group labelled at several buffer sizes, for training and validation.

    ``y`` [1, B] is 1 where the group does NOT fit ``buffer_bytes[j]``, ``log_buffer`` [1, B]
    the log2 buffers, ``log_fbeta`` [1] the log2 of the cost model's F_beta (the same at every
    buffer size; the regression target). x carries log2 of the first buffer in its last column.
    """
    f_beta = np.asarray(f_beta, dtype=np.float64).reshape(-1)
    if len(f_beta) and np.any(f_beta != f_beta[0]):
        raise ValueError(f"group {tuple(group)} of {encoder.graph.name!r}: F_beta differs across buffer sizes "
                         f"({f_beta.tolist()}); the classifier regresses one F_beta per group")
    d = encoder.encode(group, int(buffer_bytes[0]))
    return Data(x=d.x, edge_index=d.edge_index,
                y=torch.tensor([[float(not f) for f in fits]]),
                log_buffer=torch.tensor([[math.log2(b) for b in buffer_bytes]]),
                log_fbeta=torch.tensor([math.log2(max(float(f_beta[0]), 1.0))]))


def cache_dir() -> Path:
    path = Path(os.environ.get("TVM_FUSION_CACHE", Path.home() / ".cache" / "tvm_fusion")) / "get"
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_dataset(networks: list[str], fusion: str, seed: int = 0, n_partitions: int = 20, n_bfs: int = 400,
                  buffer_kb=BUFFER_KB, cache: bool = True, progress: bool = True) -> GroupDataset:
    """Sample and label groups of ``networks`` for one fusion type (cached by options)."""
    from .. import zoo
    from ..cost import CostModel
    from ..hardware import Accelerator, FusionType

    # graph version: a zoo change (e.g. a new canonical form) changes node ids and labels
    key = json.dumps([VERSION, zoo.GRAPH_VERSION, sorted(networks), fusion, seed, n_partitions, n_bfs,
                      list(buffer_kb)])
    path = cache_dir() / f"{fusion}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
    if cache and path.exists():
        return GroupDataset.load(path)
    rng = random.Random(seed)
    net_of, groups, fits, fb = [], [], [], []
    for ni, name in enumerate(tqdm(networks, desc=f"GET dataset ({fusion})", disable=not progress)):
        graph = zoo.opgraph(name)
        gs = sample_groups(graph, rng, n_partitions, n_bfs)
        cols_fit, cols_fb = [], []
        for kb in buffer_kb:
            costs = CostModel(graph, Accelerator(kb * 1024, fusion=FusionType(fusion))).evaluate(gs)
            cols_fit.append(np.asarray(costs.fits, dtype=bool))
            cols_fb.append(np.asarray(costs.buffer_bytes, dtype=np.int64))
        net_of += [ni] * len(gs)
        groups += gs
        fits.append(np.stack(cols_fit, axis=1))
        fb.append(np.stack(cols_fb, axis=1))
    ds = GroupDataset(fusion, list(networks), np.array(net_of, dtype=np.int64), groups, tuple(buffer_kb),
                      np.concatenate(fits), np.concatenate(fb))
    if cache:
        ds.save(path)
    return ds
