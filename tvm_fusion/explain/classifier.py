"""Validity classifier: does a fusion group exceed the on-chip buffer?

A k-GNN (PyG ``GraphConv``, Morris et al. 2019)::

    h_i^{l+1} = ReLU(W_1 h_i^l + W_2 sum_{j in N(i)} e_ji h_j^l + W_3 sum_{j in N(i)} d_ji h_j^l)

over the group's subgraph (edges in both directions; d_ji = +1 from a producer, -1 from a
consumer), sum pooling (buffer occupancy is an extensive quantity, and the node features
carry sizes relative to the buffer, so the pooled sum is on the buffer's scale), and an MLP
to one logit: > 0 means "invalid" (does not fit). One model per fusion type; the buffer size
is an input, so one model covers all sizes. The decision threshold is chosen on validation
groups of training networks and folded into the last bias.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.loader import DataLoader
from torch_geometric.nn import GraphConv, global_add_pool
from tqdm import tqdm

from .dataset import NUM_FEATURES, VERSION

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


class ValidityGNN(nn.Module):
    """(GraphConv pair) x ``layers`` -> sum pool -> MLP -> invalid logit, shape [num_graphs, 1].

    Each layer is two GraphConvs over the same (both-direction) edges: one sums all
    neighbours, the other weighs a message +1 from a producer and -1 from a consumer, so
    the pair can tell inputs from outputs (which tensors enter, leave or stay in the group)
    while every conv still sees the full edge set the PyG explainers mask.
    """

    def __init__(self, in_dim: int = NUM_FEATURES, hidden: int = 64, layers: int = 3):
        super().__init__()
        self.config = {"in_dim": in_dim, "hidden": hidden, "layers": layers}
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        dims = [in_dim] + [hidden] * layers
        self.convs = nn.ModuleList(GraphConv(a, b, aggr="add") for a, b in zip(dims[:-1], dims[1:]))
        self.dir_convs = nn.ModuleList(GraphConv(a, b, aggr="add", bias=False) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None,
                edge_weight: Tensor | None = None) -> Tensor:
        h = (x - self.mean) / self.std
        # node ids are topological within a group, so source < target means producer -> consumer
        direction = (edge_index[0] < edge_index[1]).to(h.dtype) * 2 - 1
        if edge_weight is not None:
            direction = direction * edge_weight
        for conv, dconv in zip(self.convs, self.dir_convs):
            h = torch.relu(conv(h, edge_index, edge_weight) + dconv(h, edge_index, direction))
        if batch is None:
            batch = torch.zeros(h.size(0), dtype=torch.long, device=h.device)
        return self.head(global_add_pool(h, batch))

    def set_normalisation(self, xs: Tensor) -> None:
        self.mean.copy_(xs.mean(0))
        self.std.copy_(xs.std(0).clamp_min(1e-3))

    @torch.no_grad()
    def shift_threshold(self, threshold: float) -> None:
        """Make ``logit > 0`` mean ``old logit > threshold`` (explainers rely on the sign)."""
        self.head[-1].bias -= threshold


@dataclass
class Metrics:
    accuracy: float
    f1: float
    precision: float
    recall: float
    n: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _metrics(pred: np.ndarray, y: np.ndarray) -> Metrics:
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return Metrics(float((pred == y).mean()) if len(y) else 0.0, f1, prec, rec, int(len(y)))


@torch.no_grad()
def logits(model: ValidityGNN, data: list, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(invalid logits, labels) of a list of labelled ``Data``."""
    model.eval()
    out, ys = [], []
    for b in DataLoader(data, batch_size=batch_size):
        out.append(model(b.x, b.edge_index, b.batch).view(-1).numpy())
        ys.append(b.y.view(-1).long().numpy())
    return np.concatenate(out), np.concatenate(ys)


def evaluate(model: ValidityGNN, data: list, batch_size: int = 512) -> Metrics:
    """Accuracy / F1 of the "invalid" class on a list of labelled ``Data``."""
    z, y = logits(model, data, batch_size)
    return _metrics((z > 0).astype(np.int64), y)


def best_threshold(z: np.ndarray, y: np.ndarray) -> float:
    """Logit threshold that maximises accuracy + F1 on (z, y); midpoints between sorted logits."""
    cands = np.unique(np.quantile(z, np.linspace(0.0, 1.0, 401)))
    cands = np.concatenate([[0.0], (cands[:-1] + cands[1:]) / 2]) if len(cands) > 1 else np.array([0.0])

    def score(t):
        m = _metrics((z > t).astype(np.int64), y)
        return m.accuracy + m.f1

    return float(max(cands, key=lambda t: (score(t), -abs(t))))


def train(train_data: list, val_data: list | None = None, epochs: int = 30, hidden: int = 64,
          layers: int = 3, lr: float = 3e-3, batch_size: int = 128, seed: int = 0, class_weight: bool = True,
          progress: bool = True) -> tuple[ValidityGNN, list[dict]]:
    """Adam + BCE (invalid class weighted by sqrt(#valid / #invalid) when ``class_weight``).

    With ``val_data``: keeps the epoch with the best validation accuracy + F1, then moves
    the decision threshold to the one that is best on ``val_data`` (never on test data).
    """
    if not train_data:
        raise ValueError("train(): empty training set; build a dataset with more groups")
    torch.manual_seed(seed)
    model = ValidityGNN(NUM_FEATURES, hidden, layers)
    model.set_normalisation(torch.cat([d.x for d in train_data]))
    pos = float(sum(float(d.y) for d in train_data))
    pos_weight = torch.tensor(math.sqrt((len(train_data) - pos) / pos)) if class_weight and pos else None
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(train_data, batch_size=batch_size, shuffle=True, generator=gen)
    history, best, best_score = [], None, -1.0
    for epoch in tqdm(range(epochs), desc="train validity GNN", disable=not progress):
        model.train()
        total = 0.0
        for b in loader:
            opt.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(
                model(b.x, b.edge_index, b.batch).view(-1), b.y.view(-1), pos_weight=pos_weight)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * b.num_graphs
        sched.step()
        row = {"epoch": epoch, "loss": total / len(train_data)}
        if val_data:
            m = evaluate(model, val_data)
            row.update(val_accuracy=m.accuracy, val_f1=m.f1)
            if m.accuracy + m.f1 > best_score:
                best_score, best = m.accuracy + m.f1, copy.deepcopy(model.state_dict())
        history.append(row)
    if best is not None:
        model.load_state_dict(best)
    if val_data:
        t = best_threshold(*logits(model, val_data))
        model.shift_threshold(t)
        history.append({"threshold": t})
    model.eval()
    return model, history


def weights_path(fusion: str) -> Path:
    return DATA_DIR / f"get_validity_{fusion}.pt"


def save(model: ValidityGNN, path: Path, meta: dict | None = None) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"version": VERSION, "config": model.config, "state": model.state_dict(), "meta": meta or {}}, path)


def load(fusion: str | None = None, path: Path | None = None) -> ValidityGNN:
    """Load shipped (or given) weights; errors say how to regenerate them."""
    path = Path(path) if path is not None else weights_path(str(fusion))
    if not path.exists():
        raise FileNotFoundError(f"no validity classifier weights at {path}: run "
                                f"`python benchmarks/train_validity.py --fusion {fusion}` to train them")
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if blob.get("version") != VERSION:
        raise ValueError(f"weights {path} were trained for dataset version {blob.get('version')}, "
                         f"features are now {VERSION}: rerun benchmarks/train_validity.py")
    if blob["config"]["in_dim"] != NUM_FEATURES:
        raise ValueError(f"weights {path} expect {blob['config']['in_dim']} node features, the encoder makes "
                         f"{NUM_FEATURES}: rerun benchmarks/train_validity.py")
    model = ValidityGNN(**blob["config"])
    model.load_state_dict(blob["state"])
    model.eval()
    return model
