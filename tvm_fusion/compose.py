"""OpGraphs of many similar torch networks, composed from memoised per-module pieces.

Importing a network through torch.export -> Relax -> canonicalize (``graph.from_torch``)
costs seconds. Search spaces such as NAS benchmarks hold thousands of networks built from a
few dozen distinct modules (a ReLU-conv-BN of given channels, an add of given shapes, ...).
``compose_torch`` traces the network at module level with torch.fx, imports each *distinct*
piece once through the same ``from_torch`` path, and splices the pieces' OpGraphs along the
fx data flow. The result is the OpGraph ``from_torch`` gives for the whole network, provided
no canonicalisation crosses a piece boundary (batch-norm folding needs conv and BN in one
piece): pieces are therefore whole ``nn.Sequential`` chains of standard torch.nn modules,
single standard modules, and single function calls (``+``, ``torch.cat``, ...). Tests compare
composed and directly imported graphs of every benchmark family by fingerprint.
"""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import replace
from pathlib import Path

import torch
from torch import fx, nn

from .graph import OpGraph, TensorInfo, UnsupportedOpError, from_torch, read_cached, write_cached

#: modules that return their input unchanged in eval mode: no piece, the tensor passes through
_PASS_THROUGH = (nn.Identity, nn.Dropout)


def _is_standard(m: nn.Module) -> bool:
    return type(m).__module__.startswith("torch.nn.")


class _PieceTracer(fx.Tracer):
    """Leaves: standard torch.nn modules and Sequentials made only of them (at any depth)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, nn.Sequential):
            return all(_is_standard(c) and not isinstance(c, nn.ModuleList) for c in m.modules() if c is not m)
        return _is_standard(m) and not isinstance(m, (nn.ModuleList, nn.ModuleDict))


class _Slot:
    """Position of a piece input inside a function call's arguments."""

    def __init__(self, index: int):
        self.index = index

    def __repr__(self) -> str:
        return f"${self.index}"


def _fill(template, xs):
    if isinstance(template, _Slot):
        return xs[template.index]
    if isinstance(template, (tuple, list)):
        return type(template)(_fill(t, xs) for t in template)
    if isinstance(template, dict):
        return {k: _fill(v, xs) for k, v in template.items()}
    return template


class _Call(nn.Module):
    """One fx ``call_function``/``call_method`` as a module, so it can be imported on its own."""

    def __init__(self, op: str, target, args, kwargs):
        super().__init__()
        self.op, self.target, self.args, self.kwargs = op, target, args, kwargs

    def forward(self, *xs):
        args, kwargs = _fill(self.args, xs), _fill(self.kwargs, xs)
        if self.op == "call_method":
            return getattr(args[0], self.target)(*args[1:], **kwargs)
        return self.target(*args, **kwargs)


def _module_signature(m: nn.Module) -> str:
    """Everything about a module that can change its OpGraph: classes, plain attributes, shapes."""
    parts = []
    for name, sub in m.named_modules():
        attrs = sorted((k, v) for k, v in vars(sub).items()
                       if not k.startswith("_") and isinstance(v, (int, float, bool, str, tuple, type(None))))
        parts.append((name, type(sub).__module__, type(sub).__qualname__, attrs))
    parts.append([(n, tuple(p.shape)) for n, p in m.named_parameters()])
    parts.append([(n, tuple(b.shape)) for n, b in m.named_buffers()])
    return repr(parts)


def _target_name(target) -> str:
    if isinstance(target, str):
        return target
    return f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', repr(target))}"


class PieceCache:
    """OpGraphs of pieces keyed by (piece signature, input shapes), in memory and optionally on disk."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else None
        self._mem: dict[str, OpGraph] = {}
        self.imports = 0  # pieces imported through Relax (cache misses), for progress reports

    def get(self, signature: str, module: nn.Module, shapes: list[tuple[int, ...]]) -> OpGraph:
        key = hashlib.sha1(repr((signature, shapes)).encode()).hexdigest()[:20]
        graph = self._mem.get(key)
        if graph is not None:
            return graph
        path = self.directory / f"{key}.json" if self.directory is not None else None
        if path is not None:
            graph = read_cached(path)
        if graph is None:
            graph = from_torch(_materialize(module), tuple(torch.zeros(s) for s in shapes), name=f"piece-{key}")
            self.imports += 1
            if path is not None:
                write_cached(path, graph)
        self._mem[key] = graph
        return graph


def _materialize(module: nn.Module) -> nn.Module:
    """A CPU copy of a module that may live on the meta device (values do not shape the graph,
    but batch-norm folding must not see garbage, so parameters are re-initialised)."""
    if not any(t.is_meta for t in [*module.parameters(), *module.buffers()]):
        return module
    module = copy.deepcopy(module).to_empty(device="cpu")
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
        if hasattr(m, "reset_running_stats"):
            m.reset_running_stats()
    return module


def compose_torch(module: nn.Module, example_inputs, pieces: PieceCache | None = None,
                  name: str | None = None) -> OpGraph:
    """The OpGraph of ``module`` (as ``from_torch`` would give), built from memoised pieces.

    Shapes propagate through the pieces' OpGraphs, so the network never runs: build it under
    ``torch.device("meta")`` to skip weight initialisation too (most of the cost once pieces
    are cached); only missing pieces are materialised on the CPU and imported.

    ``example_inputs``: a tensor or tuple of tensors fixing the shapes. Raises
    UnsupportedOpError naming the fx node when a piece is not one-tensor-out or the module
    reads parameters directly in ``forward`` (wrap such code in a module).
    """
    pieces = pieces if pieces is not None else PieceCache()
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    gname = name or type(module).__name__
    module = module.eval()
    gm = fx.GraphModule(module, _PieceTracer().trace(module))
    examples = iter(example_inputs)

    tensors: list[TensorInfo] = []
    nodes = []
    env: dict[fx.Node, int] = {}
    outputs: list[int] = []
    for fxn in gm.graph.nodes:
        where = f"fx node {fxn.name!r} ({fxn.op} {_target_name(fxn.target)}) of {gname!r}"
        if fxn.op == "placeholder":
            x = next(examples)
            env[fxn] = len(tensors)
            tensors.append(TensorInfo(len(tensors), fxn.name, tuple(x.shape), str(x.dtype).removeprefix("torch."), -1))
            continue
        if fxn.op == "output":
            fx.node.map_arg(fxn.args[0], lambda n: outputs.append(env[n]))
            continue
        if fxn.op == "get_attr":
            raise UnsupportedOpError(f"{where} reads a parameter in forward(); wrap that code in a module")
        ins: list[fx.Node] = []
        fx.node.map_arg((fxn.args, fxn.kwargs), lambda n: ins.append(n) if n not in ins else None)
        if fxn.op == "call_module":
            sub = gm.get_submodule(fxn.target)
            if isinstance(sub, _PASS_THROUGH):
                env[fxn] = env[fxn.args[0]]
                continue
            piece, signature = sub, _module_signature(sub)
        else:
            slots = {n: _Slot(i) for i, n in enumerate(ins)}
            args, kwargs = fx.node.map_arg((fxn.args, fxn.kwargs), lambda n: slots[n])
            piece = _Call(fxn.op, fxn.target, args, kwargs)
            signature = repr((fxn.op, _target_name(fxn.target), args, kwargs))
        sub_graph = pieces.get(signature, piece, [tensors[env[n]].shape for n in ins])
        if len(sub_graph.outputs) != 1:
            raise UnsupportedOpError(f"{where} produces {len(sub_graph.outputs)} tensors; OpGraph pieces must "
                                     "produce one")
        env[fxn] = _splice_piece(sub_graph, [env[n] for n in ins], fxn.name, nodes, tensors)
    return _simplify(nodes, tensors, outputs, gname)


def _simplify(nodes: list, tensors: list, outputs: list[int], name: str) -> OpGraph:
    """Do what torch.export does to a whole network: drop nodes no output depends on (a cell
    node that feeds only Zero edges) and weightless nodes that repeat an earlier node on the
    same inputs (two pieces' ReLUs of one tensor). Ids are renumbered; order is otherwise kept."""
    live = set(outputs)
    for n in reversed(nodes):
        if n.output in live:
            live.update(n.inputs)
    tmap: dict[int, int] = {t.id: t.id for t in tensors if t.producer < 0}
    new_tensors = [t for t in tensors if t.producer < 0]
    seen: dict[tuple, int] = {}
    kept = []
    for n in nodes:
        if n.output not in live:
            continue
        ins = tuple(tmap[t] for t in n.inputs)
        key = (n.kind, n.relax_op, ins, n.kernel, n.stride, n.padding, n.dilation, n.groups,
               tensors[n.output].shape, repr(sorted(n.attrs.items())))
        if n.weight_elems == 0 and key in seen:
            tmap[n.output] = seen[key]
            continue
        tid = len(new_tensors)
        new_tensors.append(replace(tensors[n.output], id=tid, producer=len(kept)))
        tmap[n.output] = tid
        if n.weight_elems == 0:
            seen[key] = tid
        kept.append(replace(n, id=len(kept), inputs=ins, output=tid))
    return OpGraph(kept, new_tensors, [tmap[o] for o in outputs], name)


def _splice_piece(piece: OpGraph, input_ids: list[int], prefix: str, nodes: list, tensors: list) -> int:
    """Append ``piece``'s nodes (names prefixed) reading ``input_ids``; returns its output tensor id."""
    tmap = dict(zip(piece.inputs, input_ids))
    n0 = len(nodes)
    for t in piece.tensors:
        if t.id not in tmap:
            tmap[t.id] = len(tensors)
            tensors.append(TensorInfo(len(tensors), f"{prefix}/{t.name}", t.shape, t.dtype, t.producer + n0))
    for n in piece.nodes:
        nodes.append(replace(n, id=n.id + n0, name=f"{prefix}/{n.name}", output=tmap[n.output],
                             inputs=tuple(tmap[t] for t in n.inputs)))
    (out,) = piece.outputs
    return tmap[out]
