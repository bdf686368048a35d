"""AIO-P end to end: pre-training, knowledge infusion (adapters), fine-tuning, prediction, checkpoints.

Head names are ``"<family>/<task>"``. The zero-shot score of a network for a task with no
head is the mean of the standardised scores of the pre-training heads (a rank score, no units).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from . import features
from .model import Predictor, Standardizer, mlp, predict_z, train

ZERO_SHOT = "zeroshot"
CHECKPOINT_VERSION = 1
#: Fine-tuning loss = MSE + this x pairwise ranking loss. Chosen on a validation setting that is
#: none of the TransNAS-Bench-101 targets (pre-train without NB201, fine-tune on N=20 labels of
#: each NB201 dataset, 5 seeds): SRCC 0.832/0.858 (MSE) -> 0.850/0.859 (cifar10/cifar100) with
#: MAE about the same; a pure ranking loss ruins MAE (the scale is lost). (Measured as
#: 0.5 MSE + 0.5 ranking, the same objective up to a scale that Adam's updates ignore.)
FINETUNE_RANK_WEIGHT = 1.0


def head_name(family: str, task: str) -> str:
    return f"{family}/{task}"


class FeatureCache:
    """PyG items per OpGraph key, built once (many records share one graph)."""

    def __init__(self, graphs: dict, kinds=features.KINDS):
        self.graphs, self.kinds, self._data = graphs, tuple(kinds), {}

    def item(self, key, y: float = 0.0, head: int = 0):
        if key not in self._data:
            g = self.graphs[key]
            d = features.to_data(g, self.kinds)
            d.mflops = g.total_flops / 1e6
            self._data[key] = d
        d = copy.copy(self._data[key])
        d.y = torch.tensor([float(y)])
        d.head = torch.tensor([int(head)])
        return d

    def mflops(self, key) -> float:
        return self.graphs[key].total_flops / 1e6


class AIOP:
    """A trained predictor: model + op-kind vocabulary + per-head label standardisers."""

    def __init__(self, model: Predictor, kinds, standardizers: dict, config: dict):
        self.model, self.kinds, self.standardizers, self.config = model, tuple(kinds), dict(standardizers), dict(config)

    @property
    def pretrain_heads(self) -> list[str]:
        return list(self.config["pretrain_heads"])

    # ---- training ---------------------------------------------------------------------
    @classmethod
    def pretrain(cls, records, feats: FeatureCache, key_fn, epochs: int = 30, seed: int = 0,
                 flops_scale: bool = False, hidden: int = 64, layers: int = 4, lr: float = 1e-3,
                 progress: bool = True, rank_weight: float = 0.0) -> "AIOP":
        """Multi-head pre-training, one head and one Standardizer per (family, task).
        ``rank_weight``: see :func:`~predictor.model.train` (0 for the shipped checkpoint)."""
        by_head: dict[str, list] = {}
        for r in records:
            by_head.setdefault(head_name(r.family, r.task), []).append(r)
        heads = sorted(by_head)
        torch.manual_seed(seed)
        model = Predictor(features.num_features(feats.kinds), heads, hidden, layers)
        stds, items = {}, []
        for hi, h in enumerate(heads):
            rs = by_head[h]
            keys = [key_fn(r) for r in rs]
            fl = [feats.mflops(k) for k in keys]
            stds[h] = Standardizer.fit([r.label for r in rs], fl, flops_scale)
            z = stds[h].transform([r.label for r in rs], fl)
            items += [feats.item(k, zi, hi) for k, zi in zip(keys, z)]
        train(model, items, heads, epochs, lr, seed=seed, progress=progress, desc="pretrain", rank_weight=rank_weight)
        config = {"hidden": hidden, "layers": layers, "flops_scale": flops_scale, "pretrain_heads": heads,
                  "adapter_layers": None}
        return cls(model, feats.kinds, stds, config)

    def infuse(self, records, feats: FeatureCache, key_fn, proxy: str, epochs: int = 20, seed: int = 0,
               adapter_layers: int = 2, lr: float = 1e-3, progress: bool = True) -> "AIOP":
        """Knowledge infusion: a copy with an adapter trained (base frozen) on z-scored proxy
        pseudo-labels of ``records`` (no measured labels are used)."""
        new = self.copy()
        m = new.model
        m.add_adapter(adapter_layers)
        pseudo = f"pseudo/{proxy}"
        m.add_head(pseudo, init_from=self.pretrain_heads[0])
        vals = np.array([r.proxies[proxy] for r in records], dtype=np.float64)
        ok = np.isfinite(vals) & (np.abs(vals) < 1e7)  # the files use -1e8 for failed proxies
        if ok.sum() < 2:
            raise ValueError(f"proxy {proxy!r} has fewer than 2 valid scores on these records")
        std = Standardizer.fit(vals[ok])
        items = [feats.item(key_fn(r), z, 0) for r, z, good in zip(records, std.transform(vals), ok) if good]
        for p in m.parameters():
            p.requires_grad_(False)
        params = list(m.adapter.parameters()) + list(m.adapter_proj.parameters()) + list(m.heads[pseudo].parameters())
        for p in params:
            p.requires_grad_(True)
        train(m, items, [pseudo], epochs, lr, seed=seed, params=params, progress=progress, desc=f"adapter[{proxy}]")
        for p in m.parameters():
            p.requires_grad_(True)
        new.config["adapter_layers"] = adapter_layers
        return new

    def finetune(self, records, feats: FeatureCache, key_fn, head: str, steps: int = 100, seed: int = 0,
                 lr: float = 5e-4, progress: bool = False, rank_weight: float = FINETUNE_RANK_WEIGHT,
                 epochs: int | None = None) -> "AIOP":
        """A copy with a new head ``head`` trained (with the encoder) on these few labelled records,
        for about ``steps`` optimiser steps (batches of <= 64), or for ``epochs`` passes over the
        records when given: a length that grows with the number of records."""
        new = self.copy()
        keys = [key_fn(r) for r in records]
        fl = [feats.mflops(k) for k in keys]
        std = Standardizer.fit([r.label for r in records], fl, self.config["flops_scale"])
        new.standardizers[head] = std
        new.config.setdefault("finetune_labels", {})[head] = len(records)  # what predictor.reduce.default_search reads
        new.model.add_head(head, init_from=self.pretrain_heads)  # starts as the zero-shot predictor
        z = std.transform([r.label for r in records], fl)
        items = [feats.item(k, zi, 0) for k, zi in zip(keys, z)]
        batch = min(len(items), 64)
        if epochs is None:
            epochs = max(1, steps // max(1, -(-len(items) // batch)))
        train(new.model, items, [head], epochs, lr, batch_size=batch, seed=seed, progress=progress, desc="finetune",
              rank_weight=rank_weight)
        return new

    # ---- prediction -------------------------------------------------------------------
    def scores(self, items, head: str) -> np.ndarray:
        """Standardised scores of PyG items for ``head`` (or ZERO_SHOT)."""
        if head == ZERO_SHOT:
            return predict_z(self.model, items, self.pretrain_heads).mean(1)
        if head not in self.model.heads:
            raise KeyError(f"no head {head!r}; heads: {sorted(self.model.heads)} or {ZERO_SHOT!r}")
        return predict_z(self.model, items, [head])[:, 0]

    def predict(self, network, task: str = ZERO_SHOT, example_inputs=None) -> float:
        """Predicted performance of a torch module (with ``example_inputs``) or an OpGraph.

        In the task's label units when the head has a Standardizer, else a standardised score.
        """
        from tvm_fusion.graph import OpGraph, from_torch

        if isinstance(network, OpGraph):
            graph = network
        elif isinstance(network, torch.nn.Module):
            if example_inputs is None:
                raise ValueError("predict(torch module) needs example_inputs (e.g. torch.randn(1, 3, 32, 32))")
            graph = from_torch(network, example_inputs)
        else:
            raise TypeError(f"predict() takes an OpGraph or a torch.nn.Module, got {type(network).__name__}")
        d = features.to_data(graph, self.kinds)
        z = self.scores([d], task)[0]
        std = self.standardizers.get(task)
        return float(std.inverse([z], [graph.total_flops / 1e6])[0]) if std else float(z)

    # ---- persistence ------------------------------------------------------------------
    def copy(self) -> "AIOP":
        return AIOP(copy.deepcopy(self.model), self.kinds, copy.deepcopy(self.standardizers), copy.deepcopy(self.config))

    def save(self, path) -> None:
        heads = list(self.model.heads)
        torch.save({"version": CHECKPOINT_VERSION, "config": self.config, "kinds": list(self.kinds), "heads": heads,
                    "standardizers": {h: vars(s) for h, s in self.standardizers.items()},
                    "state": self.model.state_dict()}, str(path))

    @classmethod
    def load(cls, path) -> "AIOP":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"AIO-P checkpoint {path} not found; create one with `aiop pretrain`")
        ck = torch.load(str(path), map_location="cpu", weights_only=False)
        if ck.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint {path} has version {ck.get('version')}, expected {CHECKPOINT_VERSION}; "
                             "re-create it with `aiop pretrain`")
        cfg = ck["config"]
        kinds = tuple(ck["kinds"])
        model = Predictor(features.num_features(kinds), ck["heads"], cfg["hidden"], cfg["layers"])
        for h in ck["heads"]:  # heads made by mean_of_heads are wider than the default
            width = ck["state"][f"heads.{h}.0.weight"].shape[0]
            if width != cfg["hidden"]:
                model.heads[h] = mlp(cfg["hidden"], width=width)
        if cfg.get("adapter_layers"):
            model.add_adapter(cfg["adapter_layers"])
        model.load_state_dict(ck["state"])
        model.eval()
        stds = {h: Standardizer(**s) for h, s in ck["standardizers"].items()}
        return cls(model, kinds, stds, cfg)
