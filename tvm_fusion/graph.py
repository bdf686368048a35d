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
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
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

    # ---- import / serialisation ------------------------------------------------------
    @staticmethod
    def from_relax(mod, name: str | None = None, canonical: bool = False) -> "OpGraph":
        """OpGraph of ``mod["main"]``; runs ``canonicalize`` first unless ``canonical``.

        Raises UnsupportedOpError naming the binding for unknown ops, tuple-producing ops,
        dynamic shapes or a ``main`` without exactly one dataflow block.
        """
        return _from_relax(mod, name, canonical)

    def to_json(self) -> str:
        """Lossless JSON text (``OpGraph.from_json`` inverts it)."""
        return _to_json(self)

    @staticmethod
    def from_json(text: str) -> "OpGraph":
        return _from_json(text)

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


# =====================================================================================
# Import: Relax / torch / ONNX  ->  OpGraph
# =====================================================================================

#: JSON schema version of ``OpGraph.to_json``; bump when the serialised fields change.
JSON_VERSION = 1


class ModelImportError(RuntimeError):
    """A frontend (torch.export, the Relax torch/ONNX importer, canonicalisation) failed."""


@dataclass(frozen=True)
class _OpSpec:
    kind: str
    row_class: int
    flops: str  # default FLOP rule: "elementwise" | "none" | "reduce"; others set in _op_details


def _ew(kind: str) -> _OpSpec:
    return _OpSpec(kind, ROW_LOCAL, "elementwise")


#: Relax op name -> (canonical kind, row class, FLOP rule). To support a new op add one
#: entry here; ops needing attributes (kernel, stride, axis, ...) also get a branch in
#: ``_op_details``. Row classes of reshape-like ops are GLOBAL because they re-interpret
#: the row axis; a few entries are refined per call in ``_op_details`` (concat, mean,
#: strided_slice, adaptive pooling).
OP_TABLE: dict[str, _OpSpec] = {
    "relax.nn.conv2d": _OpSpec("conv2d", WINDOWED, "conv"),
    "relax.nn.max_pool2d": _OpSpec("max_pool2d", WINDOWED, "window"),
    "relax.nn.avg_pool2d": _OpSpec("avg_pool2d", WINDOWED, "window"),
    "relax.nn.adaptive_avg_pool2d": _OpSpec("adaptive_avg_pool2d", GLOBAL, "reduce"),
    "relax.image.resize2d": _OpSpec("resize2d", WINDOWED, "elementwise"),
    "relax.nn.pad": _OpSpec("pad", WINDOWED, "none"),
    "relax.matmul": _OpSpec("matmul", GLOBAL, "matmul"),
    "relax.mean": _OpSpec("mean", GLOBAL, "reduce"),
    "relax.sum": _OpSpec("sum", GLOBAL, "reduce"),
    "relax.max": _OpSpec("max", GLOBAL, "reduce"),
    "relax.nn.softmax": _OpSpec("softmax", GLOBAL, "reduce"),
    "relax.nn.log_softmax": _OpSpec("log_softmax", GLOBAL, "reduce"),
    "relax.reshape": _OpSpec("reshape", GLOBAL, "none"),
    "relax.flatten": _OpSpec("flatten", GLOBAL, "none"),
    "relax.nn.batch_flatten": _OpSpec("flatten", GLOBAL, "none"),
    "relax.permute_dims": _OpSpec("permute", GLOBAL, "none"),
    "relax.squeeze": _OpSpec("squeeze", GLOBAL, "none"),
    "relax.expand_dims": _OpSpec("expand_dims", GLOBAL, "none"),
    "relax.concat": _OpSpec("concat", ROW_LOCAL, "none"),
    "relax.strided_slice": _OpSpec("slice", ROW_LOCAL, "none"),
    "relax.astype": _OpSpec("cast", ROW_LOCAL, "none"),
    "relax.add": _ew("add"),
    "relax.subtract": _ew("sub"),
    "relax.multiply": _ew("mul"),
    "relax.divide": _ew("div"),
    "relax.maximum": _ew("maximum"),
    "relax.minimum": _ew("minimum"),
    "relax.power": _ew("power"),
    "relax.clip": _ew("clip"),
    "relax.nn.relu": _ew("relu"),
    "relax.nn.leakyrelu": _ew("leaky_relu"),
    "relax.nn.prelu": _ew("prelu"),
    "relax.nn.silu": _ew("silu"),
    "relax.nn.gelu": _ew("gelu"),
    "relax.nn.gelu_tanh": _ew("gelu"),
    "relax.sigmoid": _ew("sigmoid"),
    "relax.tanh": _ew("tanh"),
    "relax.exp": _ew("exp"),
    "relax.sqrt": _ew("sqrt"),
    "relax.rsqrt": _ew("rsqrt"),
    "relax.negative": _ew("neg"),
    "relax.abs": _ew("abs"),
}

_WEIGHTED_KINDS = ("conv2d", "dense")


def canonicalize(mod):
    """Inference canonicalisation shared by the OpGraph importer and the Relax fusion pass.

    Batch norms that follow a conv2d are folded into its weights (plus one per-channel
    ``add`` of the folded bias), the remaining batch norms are decomposed into elementwise
    ops, constants are folded (so transforms of weights such as ``permute_dims`` disappear)
    and trivial var-to-var bindings are removed; hardswish / hardsigmoid decompositions get
    one form (``_canonical_hard_activations``). Frontends differ in exactly these places,
    so a torch model and its ONNX export give the same OpGraph after this.
    """
    import tvm
    from tvm import relax

    seq = tvm.transform.Sequential([
        relax.transform.FoldBatchnormToConv2D(),
        relax.transform.DecomposeOpsForInference(),
        _FoldConstantsNumpy(),
        relax.transform.FoldConstant(),
        relax.transform.CanonicalizeBindings(),
    ])
    mod = seq(mod)
    for gv, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            mod[gv] = _canonical_hard_activations(func)
    return _unique_binding_names(relax.transform.CanonicalizeBindings()(mod))


def _canonical_hard_activations(func):
    """Rewrite hardsigmoid / hardswish decompositions into one form: ``clip(x * a + b, lo, hi)``.

    torch decomposes hardsigmoid into ``clip(clip(x + 3, 0, inf), -inf, 6) / 6`` and hardswish
    into ``x * clip(clip(...)) / 6``; the ONNX frontend gives ``clip(x * (1/6) + 0.5, 0, 1)`` and
    ``x * (clip(x + 3, 0, 6) / 6)``. Three exact (up to float rounding) rules unify them:
    consecutive clips merge into one clip with the intersected bounds,
    ``(a * clip(..)) / c`` becomes ``a * (clip(..) / c)``, and for a scalar ``c > 0``
    ``clip(x + b, lo, hi) / c`` becomes ``clip(x * (1/c) + b/c, lo/c, hi/c)``.
    """
    import numpy as np
    from tvm import relax
    from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard

    def scalar(expr):  # a rank-0 / one-element float constant as a Python float, else None
        v = _const_array(expr)
        return float(v.reshape(-1)[0]) if v is not None and v.size == 1 and v.dtype.kind == "f" else None

    def bound(prim):  # a clip bound: PrimValue of an IntImm/FloatImm (or already a Python number)
        v = prim.value
        return float(getattr(v, "value", v))

    def const(v: float, like):
        return relax.const(np.array(v, dtype=_const_array(like).dtype))

    x, lo1, hi1, lo2, hi2 = wildcard(), wildcard(), wildcard(), wildcard(), wildcard()
    inner = is_op("relax.clip")(x, lo1, hi1)
    two_clips = is_op("relax.clip")(inner, lo2, hi2)

    def merge_clips(orig, m):
        return relax.op.clip(m[x], max(bound(m[lo1]), bound(m[lo2])), min(bound(m[hi1]), bound(m[hi2])))

    a, c = wildcard(), is_const()
    clipped = is_op("relax.clip")(wildcard(), wildcard(), wildcard())
    div_of_mul_l = is_op("relax.divide")(is_op("relax.multiply")(a, clipped), c)
    div_of_mul_r = is_op("relax.divide")(is_op("relax.multiply")(clipped, a), c)

    def push_div_l(orig, m):
        return relax.op.multiply(m[a], relax.op.divide(m[clipped], m[c])) if scalar(m[c]) is not None else orig

    def push_div_r(orig, m):
        return relax.op.multiply(relax.op.divide(m[clipped], m[c]), m[a]) if scalar(m[c]) is not None else orig

    b = is_const()
    shifted_clip_div = is_op("relax.divide")(is_op("relax.clip")(is_op("relax.add")(x, b), lo1, hi1), c)

    def scale_into_clip(orig, m):
        cv, bv = scalar(m[c]), scalar(m[b])
        if cv is None or bv is None or cv <= 0:
            return orig
        y = relax.op.add(relax.op.multiply(m[x], const(1.0 / cv, m[c])), const(bv / cv, m[b]))
        return relax.op.clip(y, bound(m[lo1]) / cv, bound(m[hi1]) / cv)

    for pattern, rewriter in ((two_clips, merge_clips), (div_of_mul_l, push_div_l), (div_of_mul_r, push_div_r),
                              (shifted_clip_div, scale_into_clip)):
        func = rewrite_call(pattern, rewriter, func)
    return func


def _const_array(expr):
    """The numpy value of a Relax constant (``.value`` in TVM 0.27, ``.data`` before), else None."""
    t = getattr(expr, "value", None) if not hasattr(expr, "data") else expr.data
    return t.numpy() if hasattr(t, "numpy") else None


def _FoldConstantsNumpy():  # noqa: N802 - a pass factory, named like TVM's
    """Evaluate in numpy the constant-only bindings the importers and the BN fold leave.

    FoldBatchnormToConv2D emits ``gamma / sqrt(var + eps)`` etc. as Relax ops over
    constants, and the frontends reshape biases and transpose dense weights; FoldConstant
    compiles one LLVM kernel per distinct op and shape for those (about half of a zoo
    net's import time). Ops outside ``_NUMPY_FOLD`` are left to FoldConstant.
    """
    import numpy as np
    import tvm
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    _Const = tvm.ir.expr.GenericConst

    def scalar(x):
        return x.value if isinstance(x, (tvm.tirx.FloatImm, tvm.tirx.IntImm)) else None

    @mutator
    class _Folder(PyExprMutator):
        def __init__(self, mod) -> None:
            super().__init__(mod)
            self.values: dict = {}  # folded var -> its constant

        def visit_dataflow_var_(self, var):
            return self.values.get(var, var)

        def visit_var_binding_(self, binding) -> None:
            val = self.visit_expr(binding.value)
            folded = self._fold(val) if isinstance(binding.var, relax.DataflowVar) else None
            if folded is None:
                self.builder_.emit_normalized(relax.VarBinding(binding.var, val))
            else:
                self.values[binding.var] = folded

        def _fold(self, call):
            op = getattr(getattr(call, "op", None), "name", None)
            fn = _NUMPY_FOLD.get(op)
            if fn is None or not call.args or not isinstance(call.args[0], _Const):
                return None
            dtype = str(call.args[0].value.dtype)
            args = []
            for x in call.args:
                if isinstance(x, _Const):
                    args.append(x.value.numpy())
                elif isinstance(x, relax.ShapeExpr):
                    args.append([int(v) for v in x.values])
                elif scalar(x) is not None:
                    args.append(np.asarray(scalar(x), dtype=dtype))
                else:
                    return None
            out = np.asarray(fn(call, *args))
            if str(out.dtype) != dtype:
                out = out.astype(dtype)
            return relax.const(np.ascontiguousarray(out), dtype)

    @tvm.transform.module_pass(opt_level=0, name="FoldConstantsNumpy")
    def _pass(mod, _ctx):
        out = mod.clone()
        for gv, func in mod.functions_items():
            if isinstance(func, relax.Function):
                out.update_func(gv, _Folder(mod).visit_expr(func))
        return out

    return _pass


def _np_permute(call, x):
    import numpy as np

    axes = call.attrs.axes
    return np.transpose(x, None if axes is None else [int(a) for a in axes])


#: Relax op -> numpy evaluation ``fn(call, *args)`` used by _FoldConstantsNumpy.
_NUMPY_FOLD = {
    "relax.reshape": lambda call, x, shape: x.reshape(shape),
    "relax.permute_dims": _np_permute,
    "relax.add": lambda call, a, b: a + b,
    "relax.subtract": lambda call, a, b: a - b,
    "relax.multiply": lambda call, a, b: a * b,
    "relax.divide": lambda call, a, b: a / b,
    "relax.sqrt": lambda call, x: x ** 0.5,
}


def _unique_binding_names(mod):
    """Rename repeated binding names in ``main`` (``name``, ``name_1``, ...).

    OpGraph nodes are identified by binding name, but FoldBatchnormToConv2D emits fresh
    ``lvN`` vars from its own counter, which can repeat names already in the function.
    """
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    func = mod["main"]
    names = [b.var.name for blk in func.body.blocks for b in blk.bindings]
    if len(names) == len(set(names)):
        return mod
    taken = set(names) | {p.name for p in func.params}

    @mutator
    class _Renamer(PyExprMutator):
        def __init__(self) -> None:
            super().__init__(mod)
            self.seen: set[str] = set()

        def visit_var_binding_(self, binding) -> None:
            value = self.visit_expr(binding.value)
            name = binding.var.name
            if name in self.seen:
                i = 1
                while f"{name}_{i}" in taken:
                    i += 1
                name = f"{name}_{i}"
                taken.add(name)
            self.seen.add(name)
            new_var = type(binding.var)(name, binding.var.ty)
            self.builder_.emit_normalized(relax.VarBinding(new_var, value))
            self.set_var_remap(binding.var, new_var)

    out = mod.clone()
    out.update_func(out.get_global_var("main"), _Renamer().visit_expr(func))
    return out


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _pad4(padding) -> tuple[int, int, int, int]:
    """Relax 2-D padding (1, 2 or 4 values) as (top, left, bottom, right)."""
    p = _ints(padding)
    if len(p) == 1:
        return (p[0],) * 4
    if len(p) == 2:
        return (p[0], p[1], p[0], p[1])
    return p  # type: ignore[return-value]


def _static_shape(sinfo, what: str) -> tuple[tuple[int, ...], str]:
    """(shape, dtype) of a Relax tensor type (``expr.ty``); raises unless static."""
    import tvm
    from tvm import relax

    if not isinstance(sinfo, relax.TensorType):
        raise UnsupportedOpError(f"{what} is not a tensor (type {sinfo}); OpGraph nodes "
                                 "must produce exactly one tensor")
    if sinfo.shape is None or not isinstance(sinfo.shape, relax.ShapeExpr):
        raise UnsupportedOpError(f"{what} has an unknown shape; OpGraph needs static shapes "
                                 "(export the model with a fixed input size)")
    dims = []
    for d in sinfo.shape.values:
        if not isinstance(d, tvm.tirx.IntImm):
            raise UnsupportedOpError(f"{what} has a dynamic dimension {d} in shape "
                                     f"{list(sinfo.shape.values)}; OpGraph needs static shapes "
                                     "(export the model with a fixed input size)")
        dims.append(int(d))
    return tuple(dims), str(sinfo.dtype)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _op_details(call, spec: _OpSpec, in_shapes: list[tuple[int, ...]], consts: list,
                out_shape: tuple[int, ...]) -> dict:
    """Kind, row class, window attributes, out_channels and FLOPs of one operator call.

    FLOP convention: 2 x multiply-accumulates for conv2d and matmul/dense (weights and
    bias adds are separate ops); output numel for elementwise ops and resize; output
    numel x window size for max/avg pooling; input numel for reductions (mean, sum,
    adaptive pooling, softmax); 0 for pure data movement (reshape, permute, concat, slice,
    pad, cast).
    """
    a = call.attrs
    d: dict = {"kind": spec.kind, "row_class": spec.row_class, "attrs": {}}
    out_numel = _numel(out_shape)
    in_numel = _numel(in_shapes[0]) if in_shapes else 0
    kind = spec.kind
    if kind == "conv2d":
        if str(a.data_layout) != "NCHW" or str(a.kernel_layout) != "OIHW":
            raise UnsupportedOpError(f"conv2d with layout {a.data_layout}/{a.kernel_layout}; only "
                                     "NCHW/OIHW is supported (import before layout conversion)")
        w = consts[0] if consts else None
        w_shape = tuple(int(x) for x in (w.value.shape if w is not None else call.args[1].ty.shape.values))
        d.update(kernel=(w_shape[2], w_shape[3]), stride=_ints(a.strides), padding=_pad4(a.padding),
                 dilation=_ints(a.dilation), groups=int(a.groups), out_channels=w_shape[0],
                 flops=2 * out_numel * w_shape[1] * w_shape[2] * w_shape[3])
    elif kind in ("max_pool2d", "avg_pool2d"):
        k = _ints(a.pool_size)
        d.update(kernel=k, stride=_ints(a.strides), padding=_pad4(a.padding), dilation=_ints(a.dilation),
                 flops=out_numel * k[0] * k[1])
        d["attrs"]["ceil_mode"] = bool(a.ceil_mode)
        if kind == "avg_pool2d":
            d["attrs"]["count_include_pad"] = bool(a.count_include_pad)
    elif kind == "adaptive_avg_pool2d":
        ih, iw = in_shapes[0][2], in_shapes[0][3]
        oh, ow = out_shape[2], out_shape[3]
        d["flops"] = in_numel
        if (oh, ow) == (1, 1):
            d["kernel"] = (ih, iw)
        elif ih % oh == 0 and iw % ow == 0:  # exact windows: a plain average pool
            k = (ih // oh, iw // ow)
            d.update(row_class=WINDOWED, kernel=k, stride=k)
    elif kind in ("mean", "sum", "max"):
        rank = len(in_shapes[0])
        axes = sorted(int(x) % rank for x in a.axis) if a.axis is not None else list(range(rank))
        d["attrs"].update(axis=axes, keepdims=bool(a.keepdims))
        d["flops"] = in_numel
        if rank == 4 and axes == [2, 3]:
            d["kernel"] = (in_shapes[0][2], in_shapes[0][3])
    elif kind in ("softmax", "log_softmax"):
        d["flops"] = in_numel
        d["attrs"]["axis"] = int(a.axis)
    elif kind == "matmul":
        # dense = activation x constant 2-D weight (the importers transpose it at fold time)
        if consts and len(consts[0].value.shape) == 2 and len(call.args) == 2 \
                and call.args[1].same_as(consts[0]):
            d["kind"] = "dense"
            d["out_channels"] = int(consts[0].value.shape[1])
        a0 = call.args[0]
        k = a0.value.shape[-1] if consts and a0.same_as(consts[0]) else in_shapes[0][-1]
        d["flops"] = 2 * out_numel * int(k)
    elif kind == "resize2d":
        method = str(a.method)
        ih, iw = in_shapes[0][2], in_shapes[0][3]
        k = 1 if method == "nearest_neighbor" else (4 if method == "cubic" else 2)
        d.update(kernel=(k, k), flops=out_numel)
        d["attrs"].update(method=method, coordinate_transformation_mode=str(a.coordinate_transformation_mode),
                          scale=[out_shape[2] / ih, out_shape[3] / iw])
        if out_shape[2] <= ih and ih % out_shape[2] == 0:  # downscaling: a strided window
            d["stride"] = (ih // out_shape[2], iw // max(out_shape[3], 1))
    elif kind == "pad":
        pw = _ints(a.pad_width)
        if len(pw) == 8 and pw[:4] == (0, 0, 0, 0):
            d["padding"] = (pw[4], pw[6], pw[5], pw[7])
        else:
            d["row_class"] = GLOBAL
        d["attrs"]["pad_width"] = list(pw)
    elif kind == "concat":
        rank = len(out_shape)
        axis = int(a.axis) % rank if a.axis is not None else 0
        d["attrs"]["axis"] = axis
        if not (rank == 4 and axis == 1):
            d["row_class"] = GLOBAL
    elif kind == "slice":
        rank = len(in_shapes[0])
        if rank != 4 or any(ax != 1 for ax in _slice_axes(call, rank)):
            d["row_class"] = GLOBAL
    elif spec.flops == "elementwise":
        d["flops"] = out_numel
    if "flops" not in d:
        d["flops"] = 0 if spec.flops == "none" else (in_numel if spec.flops == "reduce" else out_numel)
    return d


def _slice_axes(call, rank: int) -> list[int]:
    from tvm import relax

    axes = call.args[1] if len(call.args) > 1 else None
    if isinstance(axes, relax.Tuple):
        return [int(x.value) % rank for x in axes.fields]
    return list(range(rank))  # unknown axes: be conservative


def _unsupported_op_message(op_name: str, binding: str) -> str:
    return (f"Relax op {op_name!r} (binding {binding!r}) is not supported by OpGraph; to add it, "
            f"put an entry in tvm_fusion.graph.OP_TABLE (kind, row class, FLOP rule) and, if it "
            f"has window or axis attributes, a branch in _op_details")


def _from_relax(mod, name: str | None, canonical: bool) -> "OpGraph":
    import tvm
    from tvm import relax

    _Const = tvm.ir.expr.GenericConst  # Relax constants (tensor in ``.value``) in TVM 0.27

    if not canonical:
        mod = canonicalize(mod)
    gname = name or "network"
    if "main" not in [gv.name_hint for gv in mod.get_global_vars()]:
        raise ValueError(f"IRModule of {gname!r} has no 'main' function")
    func = mod["main"]
    if not isinstance(func, relax.Function):
        raise ValueError(f"'main' of {gname!r} is not a Relax function")
    body = func.body
    blocks = [b for b in body.blocks if len(b.bindings) > 0]
    if len(blocks) != 1 or not isinstance(blocks[0], relax.DataflowBlock):
        raise UnsupportedOpError(
            f"'main' of {gname!r} must hold exactly one non-empty dataflow block, found "
            f"{[type(b).__name__ for b in blocks]}; import the model with a Relax frontend "
            "(which emits one dataflow block) and do not run passes that split it")

    tensors: list[TensorInfo] = []
    nodes: list[OpNode] = []
    env: dict = {}  # relax.Var -> tensor id | _Const | list (tuple of those)

    for p in func.params:
        shape, dtype = _static_shape(p.ty, f"input {p.name!r}")
        env[p] = len(tensors)
        tensors.append(TensorInfo(len(tensors), p.name, shape, dtype, -1))

    def resolve(expr, where: str):
        if isinstance(expr, relax.Var):
            if expr not in env:
                raise UnsupportedOpError(f"{where}: variable {expr.name!r} is not bound in main's "
                                         "dataflow block or parameters")
            return env[expr]
        if isinstance(expr, _Const):
            return expr
        if isinstance(expr, relax.Tuple):
            return [resolve(f, where) for f in expr.fields]
        return None  # shapes, prim values, data types: attributes, not data

    def flatten(v):
        if isinstance(v, list):
            for x in v:
                yield from flatten(x)
        elif v is not None:
            yield v

    names: set[str] = set()
    for b in blocks[0].bindings:
        var = b.var
        where = f"binding {var.name!r} of {gname!r}"
        if isinstance(b, relax.MatchCast):
            raise UnsupportedOpError(f"{where} is a match_cast (dynamic shapes); OpGraph needs "
                                     "static shapes")
        val = b.value
        if isinstance(val, (relax.Var, _Const, relax.Tuple)):
            env[var] = resolve(val, where)
            continue
        if isinstance(val, relax.TupleGetItem):
            tup = resolve(val.tuple_value, where)
            if not isinstance(tup, list):
                producer = val.tuple_value
                raise UnsupportedOpError(
                    f"{where} takes element {val.index} of a tuple-producing op"
                    f" ({getattr(producer, 'name_hint', producer)}); tuple-producing ops are not "
                    "supported by OpGraph (canonicalize() removes batch_norm tuples)")
            env[var] = tup[int(val.index)]
            continue
        if not isinstance(val, relax.Call) or not isinstance(val.op, tvm.ir.Op):
            raise UnsupportedOpError(f"{where} is a {type(val).__name__} ({val.op if isinstance(val, relax.Call) else ''}); "
                                     "only calls of Relax operators are supported (no call_tir or "
                                     "calls of sub-functions: import before legalisation/fusion)")
        op_name = str(val.op.name)
        spec = OP_TABLE.get(op_name)
        if spec is None:
            raise UnsupportedOpError(_unsupported_op_message(op_name, var.name))
        out_shape, out_dtype = _static_shape(var.ty, f"output of {where} ({op_name})")
        if var.name in names:
            raise ValueError(f"binding name {var.name!r} occurs twice in 'main' of {gname!r}; "
                             "OpGraph node names must be unique (they identify Relax bindings)")
        names.add(var.name)
        in_ids: list[int] = []
        consts: list = []  # weights
        scalars: list = []  # rank-0 constants (the 3 and 6 of a decomposed hardswish): immediates
        for arg in val.args:
            for v in flatten(resolve(arg, where)):
                if not isinstance(v, _Const):
                    in_ids.append(v)
                else:
                    (consts if len(v.value.shape) > 0 else scalars).append(v)
        if not in_ids:
            raise UnsupportedOpError(f"{where} ({op_name}) reads only constants; run canonicalize() "
                                     "(FoldConstant) first or pass canonical=False")
        in_shapes = [tensors[t].shape for t in in_ids]
        try:
            det = _op_details(val, spec, in_shapes, consts, out_shape)
        except UnsupportedOpError as e:
            raise UnsupportedOpError(f"{where} ({op_name}): {e}") from None
        if scalars:
            det["attrs"]["scalars"] = [c.value.numpy().item() for c in scalars]
        w_elems = sum(_numel(c.value.shape) for c in consts)
        w_bytes = sum(_numel(c.value.shape) * dtype_bytes(c.value.dtype) for c in consts)
        tid = len(tensors)
        tensors.append(TensorInfo(tid, var.name, out_shape, out_dtype, len(nodes)))
        env[var] = tid
        nodes.append(OpNode(
            id=len(nodes), name=var.name, kind=det["kind"], relax_op=op_name,
            inputs=tuple(in_ids), output=tid, row_class=det["row_class"],
            weight_elems=w_elems, weight_bytes=w_bytes,
            out_channels=det.get("out_channels", 1), kernel=tuple(det.get("kernel", (1, 1))),
            stride=tuple(det.get("stride", (1, 1))), padding=tuple(det.get("padding", (0, 0, 0, 0))),
            dilation=tuple(det.get("dilation", (1, 1))), groups=det.get("groups", 1),
            flops=int(det["flops"]), attrs=det["attrs"]))

    out = resolve(body.body, f"return value of 'main' of {gname!r}")
    outputs = list(flatten(out if isinstance(out, list) else [out]))
    for o in outputs:
        if not isinstance(o, int) or tensors[o].producer < 0:
            raise UnsupportedOpError(f"'main' of {gname!r} returns a constant or an input unchanged; "
                                     "every graph output must be computed by an operator")
    return OpGraph(_mark_bias(nodes), tensors, outputs, gname)


def _mark_bias(nodes: list[OpNode]) -> list[OpNode]:
    """Label per-channel constant adds right after conv2d/dense as ``bias_add``.

    Relax has no fused conv-with-bias op, so a bias (or a folded batch norm's shift) is an
    ``add`` of a constant with one value per output channel. That add keeps its own node
    (one node per binding) and its bias weights; the weighted op gets ``has_bias=True``.
    """
    consumers: dict[int, list[int]] = {}
    for n in nodes:
        for t in n.inputs:
            consumers.setdefault(t, []).append(n.id)
    nodes = list(nodes)
    for n in list(nodes):
        if n.kind not in _WEIGHTED_KINDS:
            continue
        cons = consumers.get(n.output, [])
        if len(cons) != 1:
            continue
        a = nodes[cons[0]]
        if a.kind == "add" and len(a.inputs) == 1 and a.weight_elems == n.out_channels:
            nodes[a.id] = replace(a, kind="bias_add")
            nodes[n.id] = replace(n, has_bias=True)
    return nodes


def _wrap_frontend_error(stage: str, model: str, err: Exception) -> ModelImportError:
    msg = str(err).strip().splitlines()
    head = next((line for line in msg if "nsupported" in line or "rror" in line), msg[0] if msg else "")
    return ModelImportError(f"{stage} failed for model {model!r}: {type(err).__name__}: {head[:500]}")


def from_torch(module, example_inputs, name: str | None = None, return_module: bool = False):
    """OpGraph of a torch module: torch.export (eval, no grad) -> Relax -> canonicalize.

    ``example_inputs`` is a tensor or a tuple of tensors whose shapes fix the graph's
    shapes. Weights stay Relax constants, so they are counted per node. With
    ``return_module=True`` returns ``(graph, canonical IRModule)``: the fusion pass works
    on that module and node names are its binding names.
    """
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    gname = name or type(module).__name__
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    module = module.eval()
    try:
        with torch.no_grad():
            ep = torch.export.export(module, tuple(example_inputs))
    except Exception as e:  # torch.export errors are long; keep the first useful line
        raise _wrap_frontend_error("torch.export", gname, e) from e
    try:
        mod = from_exported_program(ep, keep_params_as_input=False)
    except Exception as e:
        raise _wrap_frontend_error("Relax torch import (from_exported_program)", gname, e) from e
    return _finish(mod, gname, return_module)


def from_onnx(path_or_model, name: str | None = None, return_module: bool = False):
    """OpGraph of an ONNX model (a path or an ``onnx.ModelProto``), via Relax's ONNX importer."""
    import onnx
    from tvm.relax.frontend.onnx import from_onnx as relax_from_onnx

    if isinstance(path_or_model, (str, bytes)) or hasattr(path_or_model, "__fspath__"):
        gname = name or str(path_or_model)
        try:
            model = onnx.load(path_or_model)
        except Exception as e:
            raise ModelImportError(f"cannot read ONNX file {str(path_or_model)!r}: {e}") from e
    else:
        model = path_or_model
        gname = name or (model.graph.name or "onnx_model")
    try:
        mod = relax_from_onnx(model)
    except Exception as e:
        raise _wrap_frontend_error("Relax ONNX import (from_onnx)", gname, e) from e
    return _finish(mod, gname, return_module)


def _finish(mod, gname: str, return_module: bool):
    try:
        mod = canonicalize(mod)
    except Exception as e:
        raise _wrap_frontend_error("canonicalize", gname, e) from e
    graph = OpGraph.from_relax(mod, name=gname, canonical=True)
    return (graph, mod) if return_module else graph


def read_cached(path: Path) -> "OpGraph | None":
    """The OpGraph cached at ``path``, or None if absent; a torn or stale file is deleted."""
    if not path.is_file():
        return None
    try:
        return OpGraph.from_json(path.read_text())
    except Exception:
        path.unlink(missing_ok=True)
        return None


def write_cached(path: Path, graph: "OpGraph") -> None:
    """Write ``graph`` to ``path`` atomically: parallel readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(graph.to_json())
    os.replace(tmp, path)


def _node_to_dict(n: OpNode) -> dict:
    return {"id": n.id, "name": n.name, "kind": n.kind, "relax_op": n.relax_op, "inputs": list(n.inputs),
            "output": n.output, "row_class": n.row_class, "weight_elems": n.weight_elems,
            "weight_bytes": n.weight_bytes, "out_channels": n.out_channels, "kernel": list(n.kernel),
            "stride": list(n.stride), "padding": list(n.padding), "dilation": list(n.dilation),
            "groups": n.groups, "has_bias": n.has_bias, "flops": n.flops, "attrs": n.attrs}


def _node_from_dict(d: dict) -> OpNode:
    tup = ("inputs", "kernel", "stride", "padding", "dilation")
    return OpNode(**{k: (tuple(v) if k in tup else v) for k, v in d.items()})


def _to_json(graph: "OpGraph") -> str:
    return json.dumps({
        "version": JSON_VERSION, "name": graph.name, "outputs": list(graph.outputs),
        "tensors": [[t.id, t.name, list(t.shape), t.dtype, t.producer] for t in graph.tensors],
        "nodes": [_node_to_dict(n) for n in graph.nodes],
    })


def _from_json(s: str) -> "OpGraph":
    d = json.loads(s)
    if d.get("version") != JSON_VERSION:
        raise ValueError(f"OpGraph JSON version {d.get('version')!r} != supported {JSON_VERSION}; "
                         "rebuild the graph (e.g. delete the zoo cache)")
    tensors = [TensorInfo(i, n, tuple(s_), dt, p) for i, n, s_, dt, p in d["tensors"]]
    return OpGraph([_node_from_dict(n) for n in d["nodes"]], tensors, list(d["outputs"]), d["name"])


