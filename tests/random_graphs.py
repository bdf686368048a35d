"""Small synthetic OpGraphs for plan/search tests: chains, a diamond and random DAGs.

All tensors are NCHW with the same shape (3x3 convs and pools use stride 1, padding 1), so
any wiring is shape-consistent and the cost model sees realistic line-buffer ops.
"""

from __future__ import annotations

import random

from tvm_fusion.graph import ROW_LOCAL, WINDOWED, OpGraph, OpNode, TensorInfo


def _node(i: int, kind: str, inputs: tuple[int, ...], shape: tuple[int, ...]) -> OpNode:
    c, h, w = shape[1], shape[2], shape[3]
    if kind in ("conv3x3", "conv1x1"):
        k = 3 if kind == "conv3x3" else 1
        p = k // 2
        welems = c * c * k * k
        return OpNode(i, f"{kind}_{i}", "conv2d", "relax.nn.conv2d", inputs, i + 1, WINDOWED,
                      weight_elems=welems, weight_bytes=welems * 4, out_channels=c, kernel=(k, k),
                      padding=(p, p, p, p), flops=2 * welems * h * w)
    if kind == "max_pool2d":
        return OpNode(i, f"pool_{i}", "max_pool2d", "relax.nn.max_pool2d", inputs, i + 1, WINDOWED,
                      kernel=(3, 3), padding=(1, 1, 1, 1), flops=9 * c * h * w)
    if kind == "add":
        return OpNode(i, f"add_{i}", "add", "relax.add", inputs, i + 1, ROW_LOCAL, flops=c * h * w)
    if kind == "relu":
        return OpNode(i, f"relu_{i}", "relu", "relax.nn.relu", inputs, i + 1, ROW_LOCAL, flops=c * h * w)
    raise ValueError(kind)


def build(kinds_inputs: list[tuple[str, tuple[int, ...]]], shape=(1, 8, 16, 16), name="synthetic") -> OpGraph:
    """OpGraph from (kind, input tensor ids) per node; tensor 0 is the graph input,
    tensor i+1 the output of node i; unconsumed outputs are graph outputs."""
    tensors = [TensorInfo(0, "x", shape, "float32", -1)]
    nodes = []
    for i, (kind, inputs) in enumerate(kinds_inputs):
        nodes.append(_node(i, kind, tuple(inputs), shape))
        tensors.append(TensorInfo(i + 1, f"t{i}", shape, "float32", i))
    consumed = {t for n in nodes for t in n.inputs}
    outputs = [t.id for t in tensors[1:] if t.id not in consumed]
    return OpGraph(nodes, tensors, outputs, name)


def chain(n: int, seed: int = 0, shape=(1, 8, 16, 16)) -> OpGraph:
    """A chain of n ops (random kinds among conv3x3/conv1x1/relu/pool)."""
    rng = random.Random(seed)
    kinds = [rng.choice(["conv3x3", "conv1x1", "relu", "max_pool2d"]) for _ in range(n)]
    return build([(k, (i,)) for i, k in enumerate(kinds)], shape, name=f"chain{n}_s{seed}")


def diamond(shape=(1, 8, 16, 16)) -> OpGraph:
    """conv0 -> (conv1, relu2) -> add3 -> relu4: a residual diamond."""
    return build([("conv3x3", (0,)), ("conv3x3", (1,)), ("relu", (1,)), ("add", (2, 3)), ("relu", (4,))],
                 shape, name="diamond")


def random_dag(n: int, seed: int = 0, shape=(1, 8, 16, 16), skip_prob: float = 0.3) -> OpGraph:
    """A random connected DAG of n ops: mostly a backbone with residual adds and branches."""
    rng = random.Random(seed)
    spec: list[tuple[str, tuple[int, ...]]] = []
    for i in range(n):
        last = i  # tensor id of the previous node's output (or the graph input)
        if i >= 2 and rng.random() < skip_prob:
            other = rng.randrange(0, i)  # a skip connection from an earlier tensor
            spec.append(("add", (last, other)))
        else:
            src = last if rng.random() < 0.8 else rng.randrange(0, i + 1)
            spec.append((rng.choice(["conv3x3", "conv1x1", "relu", "max_pool2d"]), (src,)))
    return build(spec, shape, name=f"dag{n}_s{seed}")

