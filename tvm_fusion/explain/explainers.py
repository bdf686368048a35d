"""Graph explainers that rank a group's edges by responsibility for it being invalid.

Every explainer answers ``rank_edges(encoder, group, buffer_bytes) -> [(u, v), ...]``: the
group's own data-flow edges (global node ids), most responsible for "does not fit" first.
The tree split cuts at these edges.

- ``gnne``: PyG GNNExplainer (soft edge mask optimised per group, phenomenon = invalid).
- ``pg``: PyG PGExplainer (an MLP over edge embeddings, trained once per fusion type and
  buffer on invalid groups, then one forward pass per group).
- ``rg``: a connected-subgraph search in the spirit of RG-Explainer: grow a connected
  subgraph from the most suspicious seeds, each step adding the neighbour that raises the
  classifier's invalid logit most, until the subgraph alone is predicted invalid. It is a
  greedy beam search, not RG-Explainer's trained RL policy.
"""

from __future__ import annotations

import copy
import random
import warnings

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.explain import Explainer, GNNExplainer, PGExplainer

from .classifier import ValidityGNN
from .dataset import GroupEncoder, bfs_group

_MODEL_CONFIG = dict(mode="binary_classification", task_level="graph", return_type="raw")
_INVALID = torch.tensor([1])


class _MarginView(nn.Module):
    """A private copy of the classifier whose output is its logit over the scale s, i.e. in
    log2 units of F_hat / buffer (same sign). The explainers' losses need it: at s ~ 10 the raw
    logit of a group twice the buffer is ~ 10, its sigmoid rounds to 1 in float32, and
    GNNExplainer's gradient, hence every mask, is exactly 0."""

    def __init__(self, model: ValidityGNN):
        super().__init__()
        self.model = copy.deepcopy(model)

    def forward(self, x, edge_index, batch=None, edge_weight=None):
        return self.model(x, edge_index, batch, edge_weight) / self.model.log_scale.exp()


def _rank_by_mask(data, edge_mask: torch.Tensor) -> list[tuple[int, int]]:
    """Score each data-flow edge by the mask of both its directions; stable ranking."""
    e = len(data.edges)
    score = (edge_mask[:e] + edge_mask[e:2 * e]).detach().numpy()
    order = np.argsort(-score, kind="stable")
    return [data.edges[i] for i in order]


class GNNExplainerRanker:
    """PyG GNNExplainer on a private copy of the classifier (it leaves mask state behind)."""

    name = "gnne"

    def __init__(self, model: ValidityGNN, epochs: int = 30, lr: float = 0.05, seed: int = 0):
        self.seed = seed
        self.explainer = Explainer(model=_MarginView(model), algorithm=GNNExplainer(epochs=epochs, lr=lr),
                                   explanation_type="phenomenon", node_mask_type=None,
                                   edge_mask_type="object", model_config=_MODEL_CONFIG)

    def rank_edges(self, encoder: GroupEncoder, group, buffer_bytes: int) -> list[tuple[int, int]]:
        data = encoder.encode(group, buffer_bytes)
        if not data.edges:
            return []
        torch.manual_seed(self.seed)  # GNNExplainer initialises its mask randomly
        exp = self.explainer(data.x, data.edge_index, target=_INVALID)
        return _rank_by_mask(data, exp.edge_mask)


class PGExplainerRanker:
    """PyG PGExplainer, trained on the first use for a (graph, buffer) on invalid groups."""

    name = "pg"

    def __init__(self, model: ValidityGNN, epochs: int = 20, lr: float = 3e-3, train_groups: int = 48,
                 seed: int = 0):
        self.model, self.epochs, self.lr, self.train_groups, self.seed = model, epochs, lr, train_groups, seed
        self._trained: dict[tuple[str, int], Explainer] = {}

    def _explainer(self, encoder: GroupEncoder, buffer_bytes: int) -> Explainer:
        key = (encoder.graph.fingerprint(), int(buffer_bytes))
        if key in self._trained:
            return self._trained[key]
        torch.manual_seed(self.seed)
        explainer = Explainer(model=_MarginView(self.model), algorithm=PGExplainer(epochs=self.epochs, lr=self.lr),
                              explanation_type="phenomenon", edge_mask_type="object", model_config=_MODEL_CONFIG)
        rng = random.Random(self.seed)
        pool = []
        for _ in range(self.train_groups * 4):  # prefer groups the classifier calls invalid
            d = encoder.encode(bfs_group(encoder.reach, rng, 48), buffer_bytes)
            if d.edges:
                with torch.no_grad():
                    pool.append((float(self.model(d.x, d.edge_index)), d))
        pool.sort(key=lambda t: -t[0])
        train = [d for _, d in pool[:self.train_groups]]
        if not train:
            raise ValueError(f"PGExplainer: network {encoder.graph.name!r} has no multi-op group to train on")
        with warnings.catch_warnings():  # PyG's train() converts its loss with float(), which warns
            warnings.simplefilter("ignore", UserWarning)
            for epoch in range(self.epochs):
                for d in train:
                    explainer.algorithm.train(epoch, explainer.model, d.x, d.edge_index, target=_INVALID)
        self._trained[key] = explainer
        return explainer

    def rank_edges(self, encoder: GroupEncoder, group, buffer_bytes: int) -> list[tuple[int, int]]:
        data = encoder.encode(group, buffer_bytes)
        if not data.edges:
            return []
        exp = self._explainer(encoder, buffer_bytes)(data.x, data.edge_index, target=_INVALID)
        return _rank_by_mask(data, exp.edge_mask)


class SubgraphSearchRanker:
    """Connected-subgraph explainer (RG-Explainer style seed-and-grow, greedy beam).

    Finds a small connected subgraph the classifier already calls invalid; its internal
    edges, latest-added first, are the cut candidates (cutting the edge that tipped the
    subgraph over breaks the culprit), then the edges on its boundary, then the rest.
    """

    name = "rg"

    def __init__(self, model: ValidityGNN, seeds: int = 3):
        self.model, self.seeds = model, seeds

    @torch.no_grad()
    def _scores(self, encoder: GroupEncoder, sets: list[list[int]], buffer_bytes: int) -> np.ndarray:
        batch = Batch.from_data_list([encoder.encode(s, buffer_bytes) for s in sets])
        return self.model(batch.x, batch.edge_index, batch.batch).view(-1).numpy()

    def _grow(self, encoder, members: set[int], seed: int, buffer_bytes: int) -> tuple[list[int], float]:
        nbrs = {v: [w for w in encoder.reach.idx.neighbours[v] if w in members] for v in members}
        order, chosen = [seed], {seed}
        score = float(self._scores(encoder, [order], buffer_bytes)[0])
        while score <= 0 and len(chosen) < len(members):
            frontier = sorted({w for v in chosen for w in nbrs[v]} - chosen)
            if not frontier:
                break
            cand = self._scores(encoder, [order + [w] for w in frontier], buffer_bytes)
            best = int(np.argmax(cand))
            order.append(frontier[best])
            chosen.add(frontier[best])
            score = float(cand[best])
        return order, score

    def rank_edges(self, encoder: GroupEncoder, group, buffer_bytes: int) -> list[tuple[int, int]]:
        members = set(int(n) for n in group)
        data = encoder.encode(members, buffer_bytes)
        if not data.edges:
            return []
        nodes = sorted(members)
        single = self._scores(encoder, [[v] for v in nodes], buffer_bytes)
        seeds = [nodes[i] for i in np.argsort(-single, kind="stable")[:self.seeds]]
        # smallest subgraph predicted invalid wins; otherwise the highest score
        order, _ = min((self._grow(encoder, members, s, buffer_bytes) for s in seeds),
                       key=lambda r: (r[1] <= 0, len(r[0]) if r[1] > 0 else -r[1]))
        pos = {v: i for i, v in enumerate(order)}
        inside = [e for e in data.edges if e[0] in pos and e[1] in pos]
        inside.sort(key=lambda e: -max(pos[e[0]], pos[e[1]]))
        boundary = [e for e in data.edges if (e[0] in pos) != (e[1] in pos)]
        rest = [e for e in data.edges if e[0] not in pos and e[1] not in pos]
        return inside + boundary + rest


EXPLAINERS = {"gnne": GNNExplainerRanker, "pg": PGExplainerRanker, "rg": SubgraphSearchRanker}


def make_explainer(name: str, model: ValidityGNN, **options):
    try:
        cls = EXPLAINERS[name]
    except KeyError:
        raise ValueError(f"unknown explainer {name!r}; choose one of {sorted(EXPLAINERS)}") from None
    return cls(model, **options)
