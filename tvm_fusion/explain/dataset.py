"""Training data for the GET validity classifier: fusion groups labelled by the cost model.

A sample is (network, group, buffer size) -> fits. Groups come from two samplers: the
search's own random convex partitions (the groups a search actually proposes) and convex
closures of BFS-grown connected sets (to get enough large, invalid groups). Labels come
from the C++ cost model, never from a Python re-derivation. The dataset is cached on disk
as npz keyed by :data:`VERSION`, fusion type and sampling options.
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

from ..graph import OpGraph
from .reach import Reach, internal_edges

#: Bump when features, samplers or labels change: invalidates caches and shipped weights.
VERSION = "get-ds-1"

#: Buffer sizes the classifier is trained on (KiB), the paper's range.
BUFFER_KB = (128, 256, 512, 1024, 2048)

#: Op kinds with their own one-hot slot; anything else maps to "other".
KINDS = ("conv2d", "depthwise_conv2d", "dense", "matmul", "add", "sub", "mul", "div", "maximum", "minimum",
         "relu", "clip", "sigmoid", "silu", "hardswish", "hardsigmoid", "gelu", "tanh",
         "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "mean", "concat", "resize2d",
         "reshape", "flatten", "permute", "pad", "slice", "softmax", "other")
_KIND_INDEX = {k: i for i, k in enumerate(KINDS)}

NUM_FEATURES = len(KINDS) + 3 + 13 + 1  # kind, row class, shapes/weights, buffer


def _log2p(x: float) -> float:
    return math.log2(1.0 + float(x))


def _kind_slot(node) -> int:
    kind = node.kind
    if kind == "conv2d" and node.groups > 1 and node.groups == node.out_channels:
        kind = "depthwise_conv2d"
    return _KIND_INDEX.get(kind, _KIND_INDEX["other"])


def node_feature_table(graph: OpGraph) -> np.ndarray:
    """Per-node features that do not depend on the group or the buffer (float32 [N, F-1])."""
    rows = []
    for node in graph.nodes:
        f = np.zeros(NUM_FEATURES - 1, dtype=np.float32)
        f[_kind_slot(node)] = 1.0
        k = len(KINDS)
        f[k + node.row_class] = 1.0
        out = graph.tensors[node.output]
        ins = [graph.tensors[t] for t in node.inputs]
        in_bytes = sum(t.nbytes for t in ins)
        in_row = sum(t.nbytes // max(t.rows, 1) for t in ins)
        shape = list(out.shape[1:4]) + [1] * (3 - len(out.shape[1:4]))
        f[k + 3:k + 16] = [
            _log2p(in_bytes), _log2p(in_row), _log2p(out.nbytes), _log2p(out.nbytes // max(out.rows, 1)),
            _log2p(shape[0]), _log2p(shape[1]), _log2p(shape[2]),
            _log2p(node.weight_bytes), float(node.kernel_h_eff), float(node.stride[0]),
            float(len(graph.succs(node.id))), float(len(ins)), _log2p(node.flops),
        ]
        rows.append(f)
    return np.stack(rows) if rows else np.zeros((0, NUM_FEATURES - 1), np.float32)


class GroupEncoder:
    """Turns (group, buffer bytes) into a PyG ``Data`` for one graph (cached node table)."""

    def __init__(self, graph: OpGraph):
        self.graph = graph
        self.reach = Reach(graph)
        self.table = node_feature_table(graph)

    def encode(self, group, buffer_bytes: int) -> Data:
        nodes = sorted(int(n) for n in group)
        if not nodes:
            raise ValueError(f"empty group for network {self.graph.name!r}")
        local = {n: i for i, n in enumerate(nodes)}
        edges = internal_edges(self.reach, nodes)
        x = np.empty((len(nodes), NUM_FEATURES), dtype=np.float32)
        x[:, :-1] = self.table[nodes]
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

    key = json.dumps([VERSION, sorted(networks), fusion, seed, n_partitions, n_bfs, list(buffer_kb)])
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
