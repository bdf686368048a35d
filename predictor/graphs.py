"""OpGraphs of benchmark architectures, built through ``tvm_fusion.graph.from_torch`` and cached.

A benchmark network is ``head(backbone(x))`` (predictor.spaces). The backbone depends only on
the cell encoding and the head only on the task (and the backbone's output shape), so we build
one OpGraph per unique backbone and one per head and splice them: ~2.7k imports instead of
~7.7k for the four families. Each piece is cached as OpGraph JSON in its own file (atomic
write), so an interrupted build resumes where it stopped. The cache folder name carries
GRAPH_VERSION: bump it whenever a builder in predictor.spaces changes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import torch

from tvm_fusion.graph import OpGraph, TensorInfo

from . import spaces

GRAPH_VERSION = 1


def cache_dir() -> Path:
    """``$AIOP_CACHE`` or ``~/.cache/aiop``, then ``graphs-v<GRAPH_VERSION>``."""
    root = Path(os.environ.get("AIOP_CACHE", Path.home() / ".cache" / "aiop"))
    return root / f"graphs-v{GRAPH_VERSION}"


def splice(backbone: OpGraph, head: OpGraph, name: str) -> OpGraph:
    """Feed ``backbone``'s single output into ``head``'s single input; one OpGraph.

    Head node names get a ``head/`` prefix so names stay unique.
    """
    if len(backbone.outputs) != 1 or len(head.inputs) != 1:
        raise ValueError(f"splice needs a one-output backbone and a one-input head, got "
                         f"{len(backbone.outputs)} outputs and {len(head.inputs)} inputs ({name})")
    joint = backbone.outputs[0]
    h_in = head.inputs[0]
    if backbone.tensors[joint].shape != head.tensors[h_in].shape:
        raise ValueError(f"splice {name}: backbone output {backbone.tensors[joint].shape} != head input "
                         f"{head.tensors[h_in].shape}")
    tmap: dict[int, int] = {h_in: joint}
    tensors = list(backbone.tensors)
    n0 = len(backbone.nodes)
    for t in head.tensors:
        if t.id == h_in:
            continue
        tmap[t.id] = len(tensors)
        tensors.append(TensorInfo(len(tensors), "head/" + t.name, t.shape, t.dtype,
                                  t.producer + n0 if t.producer >= 0 else -1))
    nodes = list(backbone.nodes)
    for n in head.nodes:
        nodes.append(replace(n, id=n.id + n0, name="head/" + n.name, output=tmap[n.output],
                             inputs=tuple(tmap[t] for t in n.inputs)))
    return OpGraph(nodes, tensors, [tmap[o] for o in head.outputs], name)


def _load(path: Path) -> OpGraph | None:
    if path.is_file():
        try:
            return OpGraph.from_json(path.read_text())
        except Exception:  # a torn or stale file: rebuild it
            path.unlink()
    return None


def _store(path: Path, graph: OpGraph) -> OpGraph:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(graph.to_json())
    tmp.replace(path)
    return graph


def _digest(obj) -> str:
    return hashlib.sha1(repr(obj).encode()).hexdigest()[:16]


_HEADS: dict[Path, OpGraph] = {}


def network_graph(family: str, task: str, arch, cache: bool = True) -> OpGraph:
    """The OpGraph of benchmark network (family, task, arch): backbone and task head spliced.

    The torch network is only instantiated when a piece is missing from the cache.
    """
    from tvm_fusion.graph import from_torch

    gtask = spaces.graph_task(family, task)
    root = cache_dir()
    bpath = root / "backbone" / f"{family}-{_digest(arch)}.json"
    net = None
    back = _load(bpath) if cache else None
    if back is None:
        net, x = spaces.build(family, task, arch)
        back = from_torch(net.backbone, (x,), name=f"{family}-backbone")
        if cache:
            _store(bpath, back)
    mid_shape = back.tensors[back.outputs[0]].shape
    hpath = root / "head" / f"{family}-{gtask}-{'x'.join(map(str, mid_shape))}.json"
    head = _HEADS.get(hpath) if cache else None
    if head is None:
        head = _load(hpath) if cache else None
        if head is None:
            if net is None:
                net, _ = spaces.build(family, task, arch)
            head = from_torch(net.head, (torch.zeros(mid_shape),), name=f"{family}-{gtask}-head")
            if cache:
                _store(hpath, head)
        _HEADS[hpath] = head
    return splice(back, head, f"{family}/{gtask}")


def graph_key(family: str, task: str, arch) -> tuple:
    """Records with equal keys have identical network graphs."""
    return (family, spaces.graph_task(family, task), arch)


def build_graphs(records, progress: bool = True) -> dict[tuple, OpGraph]:
    """OpGraphs for every unique graph_key among ``records`` (cached, resumable, tqdm progress)."""
    from tqdm import tqdm

    keys: dict[tuple, tuple] = {}
    for r in records:
        keys.setdefault(graph_key(r.family, r.task, r.arch), (r.family, r.task, r.arch))
    out: dict[tuple, OpGraph] = {}
    for key, (fam, task, arch) in tqdm(keys.items(), desc="OpGraphs", disable=not progress):
        out[key] = network_graph(fam, task, arch)
    return out


def is_cached(family: str, arch) -> bool:
    """Whether the backbone OpGraph of ``arch`` is already on disk (heads are few and cheap)."""
    return (cache_dir() / "backbone" / f"{family}-{_digest(arch)}.json").is_file()
