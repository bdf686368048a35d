"""AIO-P node features from an OpGraph, so any torch / ONNX / Relax network can be encoded.

Per OpNode: a one-hot of the op kind, then numeric features: input and output H, W (relative
to the graph input's H/W) and C (log2-scaled), kernel size, stride, dilation, depthwise flag,
has_bias and weight presence (AIO-P's shape vector plus its "extras" for weighted ops). Edges
are the OpGraph's data-flow edges. Everything is read from the OpGraph; nothing is re-derived.
"""

from __future__ import annotations

import math

import torch

from tvm_fusion.graph import OP_TABLE, OpGraph

#: op-kind vocabulary (index = one-hot position); the last entry catches unknown kinds.
#: Stored in checkpoints, so a model keeps working if OP_TABLE later grows.
KINDS: tuple[str, ...] = tuple(sorted({s.kind for s in OP_TABLE.values()} | {"bias_add", "dense"})) + ("other",)
NUMERIC = ("h_in", "w_in", "c_in", "h_out", "w_out", "c_out", "kernel_h", "kernel_w", "stride_h",
           "stride_w", "dilation", "depthwise", "has_bias", "has_weight")


def num_features(kinds: tuple[str, ...] = KINDS) -> int:
    return len(kinds) + len(NUMERIC)


def _hwc(shape: tuple[int, ...], ref_h: float, ref_w: float) -> tuple[float, float, float]:
    """(H, W) relative to the graph input, C as log2(1 + C) / 10; non-4D tensors count as 1x1xC."""
    if len(shape) == 4:
        return shape[2] / ref_h, shape[3] / ref_w, math.log2(1 + shape[1]) / 10
    c = shape[-1] if shape else 1
    return 0.0, 0.0, math.log2(1 + c) / 10


def node_features(graph: OpGraph, kinds: tuple[str, ...] = KINDS) -> torch.Tensor:
    """``[num_nodes, len(kinds) + len(NUMERIC)]`` float32 feature matrix."""
    index = {k: i for i, k in enumerate(kinds)}
    other = index[kinds[-1]]
    ins = [graph.tensors[t].shape for t in graph.inputs]
    ref = next((s for s in ins if len(s) == 4), None)
    ref_h, ref_w = (float(ref[2]), float(ref[3])) if ref else (1.0, 1.0)
    x = torch.zeros(len(graph.nodes), num_features(kinds))
    k0 = len(kinds)
    for n in graph.nodes:
        x[n.id, index.get(n.kind, other)] = 1.0
        in_shape = graph.tensors[n.inputs[0]].shape if n.inputs else ()
        out_shape = graph.tensors[n.output].shape
        c_in = in_shape[1] if len(in_shape) == 4 else 0
        num = [*_hwc(in_shape, ref_h, ref_w), *_hwc(out_shape, ref_h, ref_w),
               n.kernel[0] / 7, n.kernel[1] / 7, n.stride[0] / 4, n.stride[1] / 4,
               (max(n.dilation) - 1) / 4, float(n.groups > 1 and n.groups == c_in),
               float(n.has_bias), float(n.weight_elems > 0)]
        x[n.id, k0:] = torch.tensor(num)
    return x


def edge_index(graph: OpGraph) -> torch.Tensor:
    e = graph.edges
    if not e:
        return torch.zeros(2, 0, dtype=torch.long)
    return torch.tensor(e, dtype=torch.long).t().contiguous()


def to_data(graph: OpGraph, kinds: tuple[str, ...] = KINDS):
    """A torch_geometric ``Data(x, edge_index)`` for the GNN."""
    from torch_geometric.data import Data

    return Data(x=node_features(graph, kinds), edge_index=edge_index(graph), num_nodes=len(graph.nodes))
