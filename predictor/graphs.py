"""OpGraphs of benchmark architectures, composed from per-module pieces imported through Relax.

Every network is built in torch (predictor.spaces) and turned into an OpGraph by
``tvm_fusion.compose.compose_torch``: each distinct piece (a ReLU-conv-BN of given channels,
an add of given shapes, a task decoder, ...) goes once through the same
``from_torch`` -> Relax -> canonicalize path users use, and the network's graph is spliced from
the pieces along its torch.fx data flow. The ~7.7k graphs of the shipped data need a few hundred
piece imports instead of one import per architecture (seconds each). Pieces are cached as
OpGraph JSON, and so is every composed network (atomic writes, so an interrupted build
resumes). The network cache folder name carries GRAPH_VERSION: bump it whenever a builder in
predictor.spaces changes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from tvm_fusion import zoo
from tvm_fusion.compose import PieceCache, compose_torch
from tvm_fusion.graph import OpGraph, read_cached, write_cached

from . import spaces

GRAPH_VERSION = 3  # 3: TransNAS-Bench-101 encoding read as the benchmark's own (see spaces/tnb101.py)


def _root() -> Path:
    return Path(os.environ.get("AIOP_CACHE", Path.home() / ".cache" / "aiop"))


def cache_dir() -> Path:
    """Composed networks: ``$AIOP_CACHE`` (default ``~/.cache/aiop``) / ``graphs-v<GRAPH_VERSION>``."""
    return _root() / f"graphs-v{GRAPH_VERSION}"


_PIECES: dict[Path, PieceCache] = {}


def piece_cache() -> PieceCache:
    """The process-wide piece cache. Pieces are keyed by their own content, so they survive a
    builder change; only an OpGraph importer change (tvm_fusion.zoo.GRAPH_VERSION) voids them."""
    d = _root() / f"pieces-v{zoo.GRAPH_VERSION}"
    if d not in _PIECES:
        _PIECES[d] = PieceCache(d)
    return _PIECES[d]


def network_graph(family: str, task: str, arch, cache: bool = True) -> OpGraph:
    """The OpGraph of benchmark network (family, task, arch), composed from cached pieces.

    With ``cache`` the composed graph is also stored (one JSON per graph_key), so later runs
    load it in milliseconds instead of re-tracing the torch network.
    """
    gtask = spaces.graph_task(family, task)
    path = cache_dir() / "networks" / f"{family}-{gtask}-{hashlib.sha1(repr(arch).encode()).hexdigest()[:16]}.json"
    graph = read_cached(path) if cache else None
    if graph is None:
        with torch.device("meta"):  # no weight initialisation: only shapes matter here
            net, x = spaces.build(family, task, arch)
        graph = compose_torch(net, x, piece_cache(), name=f"{family}/{gtask}")
        if cache:
            write_cached(path, graph)
    return graph


def graph_key(family: str, task: str, arch) -> tuple:
    """Records with equal keys have identical network graphs."""
    return (family, spaces.graph_task(family, task), arch)


def build_graphs(records, progress: bool = True) -> dict[tuple, OpGraph]:
    """OpGraphs for every unique graph_key among ``records`` (tqdm progress)."""
    from tqdm import tqdm

    keys: dict[tuple, tuple] = {}
    for r in records:
        keys.setdefault(graph_key(r.family, r.task, r.arch), (r.family, r.task, r.arch))
    out: dict[tuple, OpGraph] = {}
    for key, (fam, task, arch) in tqdm(keys.items(), desc="OpGraphs", disable=not progress):
        out[key] = network_graph(fam, task, arch)
    return out
