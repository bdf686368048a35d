"""OpGraph: the one canonical view of a network for fusion search and performance prediction.

One node per operator binding of a Relax ``main`` dataflow block (after inference
canonicalisation), in binding order, which is a topological order. Tensors are first-class:
every node reads activation tensors and writes exactly one tensor; graph inputs are tensors
with no producer. Weights (Relax constants) are not tensors of the graph: they are counted
per node in ``weight_elems``/``weight_bytes``.

Shapes and bytes are computed here once; the cost model and the predictor read them from
here and never re-derive them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Iterator


class UnsupportedOpError(ValueError):
    """A Relax binding cannot be represented in an OpGraph (names the op and binding)."""


#: How an op consumes the rows (the H axis of an NCHW tensor) of its input.
#: The cost model's line-buffer rules depend only on this class.
ROW_LOCAL = 0  # one input row gives one output row (elementwise, channel concat, ...)
WINDOWED = 1  # a kh x kw window with stride (conv2d, pooling, resize)
GLOBAL = 2  # needs its whole input before any output (global pooling, dense, reshape, ...)


@dataclass(frozen=True)
class TensorInfo:
    """An activation tensor: a graph input or the output of one node."""

    id: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    producer: int  # node id, or -1 for a graph input

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * dtype_bytes(self.dtype)

    @property
    def rows(self) -> int:
        """Rows a line buffer streams: H for NCHW tensors, else the tensor is one row."""
        return int(self.shape[2]) if len(self.shape) == 4 else 1

    @property
    def row_elems(self) -> int:
        return self.numel // self.rows


@dataclass(frozen=True)
class OpNode:
    """One operator binding. ``name`` is the Relax binding variable (unique in ``main``)."""

    id: int
    name: str
    kind: str  # canonical kind, e.g. "conv2d", "dense", "max_pool2d", "add", "relu"
    relax_op: str  # the Relax op, e.g. "relax.nn.conv2d"
    inputs: tuple[int, ...]  # activation tensor ids read, in argument order
    output: int  # tensor id written
    row_class: int = ROW_LOCAL  # ROW_LOCAL, WINDOWED or GLOBAL
    weight_elems: int = 0
    weight_bytes: int = 0
    out_channels: int = 1  # output channels (filters) for weighted ops; 1 otherwise
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    has_bias: bool = False
    flops: int = 0
    attrs: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def kernel_h_eff(self) -> int:
        """Dilated kernel height: rows of input one output row depends on."""
        return self.dilation[0] * (self.kernel[0] - 1) + 1


@dataclass
class OpGraph:
    """Nodes in topological order, their tensors, and which tensors leave the network."""

    nodes: list[OpNode]
    tensors: list[TensorInfo]
    outputs: list[int]  # tensor ids that are graph outputs
    name: str = "network"

    def __post_init__(self) -> None:
        self._consumers: list[list[int]] = [[] for _ in self.tensors]
        for node in self.nodes:
            for t in node.inputs:
                self._consumers[t].append(node.id)

    # ---- structure -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[OpNode]:
        return iter(self.nodes)

    @property
    def inputs(self) -> list[int]:
        """Tensor ids of the graph inputs."""
        return [t.id for t in self.tensors if t.producer < 0]

    def consumers(self, tensor_id: int) -> list[int]:
        return self._consumers[tensor_id]

    def preds(self, node_id: int) -> list[int]:
        """Producer nodes of a node's inputs (deduplicated, graph inputs excluded)."""
        seen: list[int] = []
        for t in self.nodes[node_id].inputs:
            p = self.tensors[t].producer
            if p >= 0 and p not in seen:
                seen.append(p)
        return seen

    def succs(self, node_id: int) -> list[int]:
        return sorted(set(self._consumers[self.nodes[node_id].output]))

    @property
    def edges(self) -> list[tuple[int, int]]:
        """Data-flow edges (producer node, consumer node), deduplicated, sorted."""
        out = set()
        for node in self.nodes:
            for p in self.preds(node.id):
                out.add((p, node.id))
        return sorted(out)

    def node_by_name(self, name: str) -> OpNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node bound to Relax variable {name!r} in OpGraph {self.name!r}")

    # ---- identity --------------------------------------------------------------------
    def fingerprint(self) -> str:
        """Hash of the structure (kinds, shapes, attributes, edges), independent of names."""
        payload = {
            "nodes": [
                [n.kind, list(n.inputs), n.output, n.weight_elems, list(n.kernel), list(n.stride),
                 list(n.padding), list(n.dilation), n.groups]
                for n in self.nodes
            ],
            "tensors": [[list(t.shape), t.dtype, t.producer] for t in self.tensors],
            "outputs": list(self.outputs),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def total_weight_bytes(self) -> int:
        return sum(n.weight_bytes for n in self.nodes)

    @property
    def total_flops(self) -> int:
        return sum(n.flops for n in self.nodes)


_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "uint8": 1,
                "int16": 2, "int32": 4, "int64": 8, "bool": 1}


def dtype_bytes(dtype: str) -> int:
    try:
        return _DTYPE_BYTES[str(dtype)]
    except KeyError:
        raise ValueError(f"unsupported tensor dtype {dtype!r}; supported: {sorted(_DTYPE_BYTES)}") from None
