"""AIO-P model: a k-GNN (GraphConv) encoder, mean pooling, one MLP head per (family, task).

* :class:`GraphEncoder` is generic (any node-feature dimension), so other predictors (e.g. the
  MetaSchedule cost model) reuse it on their own graphs.
* :class:`Standardizer` z-scores labels per head, fitted on training labels only; optionally
  (AIO-P's FLOPs scaling) labels are first divided by log(1 + MFLOPs) of the network.
* :class:`Predictor` adds an optional parallel *adapter* encoder (K-Adapter style knowledge
  infusion): its embedding is added through a zero-initialised projection, so inserting an
  adapter leaves predictions unchanged until it is trained.
* :func:`train` is the one training loop (pre-training, adapter training, fine-tuning).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class GraphEncoder(nn.Module):
    """k-GNN encoder: ``layers`` x (GraphConv -> ReLU), then pooling over each graph's nodes.

    ``h_i' = W1 h_i + W2 sum_{j in N(i)} h_j`` (Morris et al., 1-GNN). The defaults are AIO-P's
    encoder: edges used in both directions (information flows up- and downstream of an op),
    mean pooling. The MetaSchedule cost model uses the options: ``undirected=False`` (messages
    follow data flow only), ``input_projection`` (a Linear + ReLU to ``hidden`` first, for
    wide raw features), ``residual`` (``h + ReLU(conv(h))``) and ``pooling="sum_max"`` (sum and
    max pooled side by side: a schedule's cost adds up over its stores, but one slow store can
    dominate).
    """

    POOLINGS = ("mean", "sum_max")

    def __init__(self, in_dim: int, hidden: int = 64, layers: int = 4, *, undirected: bool = True,
                 input_projection: bool = False, residual: bool = False, pooling: str = "mean"):
        super().__init__()
        from torch_geometric.nn import GraphConv

        if pooling not in self.POOLINGS:
            raise ValueError(f"GraphEncoder: pooling must be one of {self.POOLINGS}, got {pooling!r}")
        if residual and not input_projection and in_dim != hidden:
            raise ValueError(f"GraphEncoder: residual layers need in_dim == hidden ({in_dim} != {hidden}) or an input projection")
        self.in_dim, self.hidden = in_dim, hidden
        self.undirected, self.residual, self.pooling = undirected, residual, pooling
        self.inp = nn.Linear(in_dim, hidden) if input_projection else None
        dims = [hidden if input_projection else in_dim] + [hidden] * layers
        self.convs = nn.ModuleList(GraphConv(a, b, aggr="add") for a, b in zip(dims[:-1], dims[1:]))

    @property
    def out_dim(self) -> int:
        return 2 * self.hidden if self.pooling == "sum_max" else self.hidden

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor | None = None,
                num_graphs: int | None = None) -> torch.Tensor:
        from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool
        from torch_geometric.utils import to_undirected

        if x.shape[-1] != self.in_dim:
            raise ValueError(f"GraphEncoder expects {self.in_dim} node features, got {x.shape[-1]}")
        ei = to_undirected(edge_index, num_nodes=x.shape[0]) if self.undirected else edge_index
        h = x if self.inp is None else torch.relu(self.inp(x))
        for conv in self.convs:
            h = h + torch.relu(conv(h, ei)) if self.residual else torch.relu(conv(h, ei))
        if batch is None:
            batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        if self.pooling == "sum_max":
            return torch.cat([global_add_pool(h, batch, num_graphs), global_max_pool(h, batch, num_graphs)], dim=1)
        return global_mean_pool(h, batch, num_graphs)


def mlp(hidden: int, out: int = 1, width: int | None = None) -> nn.Sequential:
    width = width or hidden
    return nn.Sequential(nn.Linear(hidden, width), nn.ReLU(), nn.Linear(width, out))


def mean_of_heads(heads: list[nn.Sequential]) -> nn.Sequential:
    """One MLP whose output equals the mean of ``heads``' outputs (their hidden layers side by
    side, output weights divided by their number): a new task head that starts as the
    zero-shot predictor, so few-shot fine-tuning refines the zero-shot ranking."""
    k = len(heads)
    first = [h[0] for h in heads]
    last = [h[2] for h in heads]
    out = mlp(first[0].in_features, last[0].out_features, sum(f.out_features for f in first))
    with torch.no_grad():
        out[0].weight.copy_(torch.cat([f.weight for f in first], 0))
        out[0].bias.copy_(torch.cat([f.bias for f in first], 0))
        out[2].weight.copy_(torch.cat([w.weight for w in last], 1) / k)
        out[2].bias.copy_(torch.stack([w.bias for w in last], 0).mean(0))
    return out


@dataclass
class Standardizer:
    """z-score per head; with ``flops_scale`` labels are divided by log(1 + MFLOPs) first."""

    mean: float = 0.0
    std: float = 1.0
    flops_scale: bool = False

    @staticmethod
    def _scale(flops) -> np.ndarray:
        return np.log1p(np.maximum(np.asarray(flops, dtype=np.float64), 0.0)) + 1e-9

    def _pre(self, y, flops) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.flops_scale:
            if flops is None:
                raise ValueError("this Standardizer scales by FLOPs: pass the networks' MFLOPs")
            y = y / self._scale(flops)
        return y

    @classmethod
    def fit(cls, y, flops=None, flops_scale: bool = False) -> "Standardizer":
        s = cls(flops_scale=flops_scale)
        v = s._pre(y, flops)
        if v.size == 0:
            raise ValueError("cannot fit a Standardizer on zero labels")
        s.mean = float(v.mean())
        s.std = float(v.std()) if v.size > 1 and v.std() > 1e-12 else 1.0
        return s

    def transform(self, y, flops=None) -> np.ndarray:
        return (self._pre(y, flops) - self.mean) / self.std

    def inverse(self, z, flops=None) -> np.ndarray:
        v = np.asarray(z, dtype=np.float64) * self.std + self.mean
        if self.flops_scale:
            v = v * self._scale(flops)
        return v


class Predictor(nn.Module):
    """Encoder (+ optional adapter) -> per-head MLP giving a standardised score."""

    def __init__(self, in_dim: int, heads: list[str], hidden: int = 64, layers: int = 4):
        super().__init__()
        self.encoder = GraphEncoder(in_dim, hidden, layers)
        self.heads = nn.ModuleDict({h: mlp(hidden) for h in heads})
        self.adapter: GraphEncoder | None = None
        self.adapter_proj: nn.Linear | None = None

    def add_adapter(self, layers: int = 2) -> None:
        """A parallel encoder whose embedding is added via a zero-initialised linear map."""
        self.adapter = GraphEncoder(self.encoder.in_dim, self.encoder.hidden, layers)
        self.adapter_proj = nn.Linear(self.encoder.hidden, self.encoder.hidden)
        nn.init.zeros_(self.adapter_proj.weight)
        nn.init.zeros_(self.adapter_proj.bias)

    def add_head(self, name: str, init_from: str | list[str] | None = None) -> None:
        """A new head: fresh, a copy of head ``init_from``, or the mean of a list of heads."""
        if init_from is None:
            h = mlp(self.encoder.hidden)
        elif isinstance(init_from, str):
            h = copy.deepcopy(self.heads[init_from])
        else:
            h = mean_of_heads([self.heads[n] for n in init_from])
        self.heads[name] = h

    def embed(self, x, edge_index, batch=None) -> torch.Tensor:
        e = self.encoder(x, edge_index, batch)
        if self.adapter is not None:
            e = e + self.adapter_proj(torch.relu(self.adapter(x, edge_index, batch)))
        return e

    def forward(self, x, edge_index, batch, head_names: list[str]) -> torch.Tensor:
        """``[num_graphs, len(head_names)]`` standardised scores."""
        e = self.embed(x, edge_index, batch)
        return torch.cat([self.heads[h](e) for h in head_names], 1)


def pairwise_rank_loss(pred: torch.Tensor, y: torch.Tensor, group: torch.Tensor | None = None) -> torch.Tensor:
    """Pairwise logistic ranking loss: mean of ``softplus(pred_j - pred_i)`` over the ordered pairs
    with ``y_i > y_j`` in the same ``group`` (labels of different tasks/workloads are not comparable).
    0 (with a gradient path) when no pair qualifies."""
    better = y[:, None] > y[None, :] + 1e-6
    if group is not None:
        better &= group[:, None] == group[None, :]
    if not better.any():
        return pred.sum() * 0.0
    diff = pred[:, None] - pred[None, :]
    return nn.functional.softplus(-diff[better]).mean()


def train(model: Predictor, items: list, head_names: list[str], epochs: int, lr: float = 1e-3,
          batch_size: int = 64, seed: int = 0, params=None, progress: bool = True, desc: str = "train",
          rank_weight: float = 0.0) -> list[float]:
    """MSE on standardised labels, plus ``rank_weight`` x :func:`pairwise_rank_loss` within each
    head (useful with few labels: 20 labels give 190 ordered comparisons). ``items``: PyG Data with
    ``y`` (standardised) and ``head`` (index into ``head_names``). ``params``: what to optimise
    (default: all). Returns epoch losses.
    """
    from torch_geometric.loader import DataLoader
    from tqdm import tqdm

    if not items:
        raise ValueError("train() got no training items")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(items, batch_size=batch_size, shuffle=True, generator=gen)
    opt = torch.optim.Adam(params if params is not None else model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        total, count = 0.0, 0
        for b in loader:
            out = model(b.x, b.edge_index, b.batch, head_names)
            pred = out.gather(1, b.head.view(-1, 1)).squeeze(1)
            loss = torch.mean((pred - b.y) ** 2)
            if rank_weight:
                loss = loss + rank_weight * pairwise_rank_loss(pred, b.y, b.head)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * b.num_graphs
            count += b.num_graphs
        losses.append(total / count)
    model.eval()
    return losses


@torch.no_grad()
def _batched(model: Predictor, items: list, batch_size: int, fn, width: int) -> np.ndarray:
    """``fn(batch)`` over PyG ``items`` in eval mode, rows in item order (``width`` columns when empty)."""
    from torch_geometric.loader import DataLoader

    model.eval()
    outs = [fn(b) for b in DataLoader(items, batch_size=batch_size)]
    return torch.cat(outs, 0).numpy() if outs else np.zeros((0, width))


def predict_z(model: Predictor, items: list, head_names: list[str], batch_size: int = 256) -> np.ndarray:
    """``[len(items), len(head_names)]`` standardised scores, in item order."""
    return _batched(model, items, batch_size, lambda b: model(b.x, b.edge_index, b.batch, head_names),
                    len(head_names))


def embeddings(model: Predictor, items: list, batch_size: int = 256) -> np.ndarray:
    """``[len(items), hidden]`` graph embeddings (encoder and adapter): what every head reads."""
    return _batched(model, items, batch_size, lambda b: model.embed(b.x, b.edge_index, b.batch), model.encoder.hidden)


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    r = spearmanr(a, b).correlation
    return float(r) if r is not None and not math.isnan(r) else 0.0
