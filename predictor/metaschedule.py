"""AIO-P as a MetaSchedule cost model: a GNN over the data-flow graph of a scheduled TIR.

Each measure candidate becomes a small graph:

* nodes = the buffers written by non-constant stores, one row of MetaSchedule's
  per-store features (``PerStoreFeature``, 164 values) each, in the extractor's order
  (first non-constant store in program order);
* edges = producer -> consumer data flow: buffer A -> buffer B when a block that writes B
  reads A (from the blocks' read/write regions of the scheduled TIR).

AIO-P's k-GNN encoder (``predictor.model.GraphEncoder``, GraphConv with sum aggregation) pools the node embeddings
into one score = predicted normalised throughput (min cost / cost of the workload, the same
target as MetaSchedule's XGBModel). It is pre-trained on records of other workloads
(:func:`train`). Online, :meth:`AIOPCostModel.update` fits a small per-workload XGBoost ranker on
the workload's own records, and ``predict`` blends it with the (unchanged) GNN, the ranker's
weight growing with the records (:func:`hybrid_score`; benchmarks/ms_finetune_validation.md).

Usage::

    model = load_cost_model("benchmarks/results/ms_aiop_pretrained.pt")
    ms.tune_tir(mod, target, work_dir, 64, cost_model=model, ...)
    ms.relax_integration.tune_relax(relax_mod, params, target, work_dir, 64, cost_model=model, ...)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import xgboost
from torch import nn
from tvm import tirx
from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.cost_model import PyCostModel
from tvm.s_tir.meta_schedule.feature_extractor import PerStoreFeature
from tvm.s_tir.meta_schedule.utils import shash2hex

from tvm_fusion.native import global_function

from .model import GraphEncoder, mlp, pairwise_rank_loss

#: a candidate graph: (node features [n, FEATURE_DIM] float32, edges [2, m] int64)
Graph = tuple[np.ndarray, np.ndarray]
FAILED_COST = 1e10  # MetaSchedule's convention for a failed build/run
#: GNN fine-tuning recipe, when enabled (AIOPCostModel(finetune_epochs=FINETUNE_EPOCHS)): the best
#: mean SRCC of the fine-tuning recipes on validation workloads that are none of the online
#: benchmark's (benchmarks/results/ms_finetune_validation.md). Not the default any more: the
#: pre-trained GNN + online ranker (below) ranks the top of a workload better there.
FINETUNE_EPOCHS = 40
FINETUNE_LR = 1e-4
#: online ranker of update(): XGBoost pairwise ranking on each candidate's per-store features
#: summed over stores (XGBModel sums per-store predictions instead), fitted on the workload's own
#: records; ms_finetune_validation also compares XGBModel on those records alone. Settings and the
#: blend below chosen on the same validation workloads (ms_finetune_validation.md).
RANKER_PARAMS = {"objective": "rank:pairwise", "max_depth": 6, "eta": 0.2, "gamma": 0.001, "min_child_weight": 0}
RANKER_ROUNDS = 50
#: records at which the ranker and the GNN weigh equally in predict (weight n / (n + BLEND_HALF))
BLEND_HALF = 64
#: records of a workload before update() fits its ranker
MIN_RECORDS = 8
#: what a tuning run of AIOPCostModel's defaults depends on besides the pre-trained weights
ONLINE_RECIPE = {"finetune_epochs": 0, "ranker": RANKER_PARAMS, "ranker_rounds": RANKER_ROUNDS, "blend_half": BLEND_HALF,
                 "min_records": MIN_RECORDS}


class CostModelError(ValueError):
    """Bad input to the AIO-P MetaSchedule cost model (file, candidate list, results)."""


# ---------------------------------------------------------------------------------- graphs
_dataflow_graphs = global_function("tvm_fusion_tir", "tvm_fusion.tir.dataflow_graphs")


def dataflow_edges(mods, num_nodes) -> list[np.ndarray]:
    """Producer -> consumer edges between the written buffers of each scheduled module
    (``mods[i]`` holds one PrimFunc), as [2, m] int64 arrays.

    Node i is the i-th buffer (by name) written in program order by a non-constant block,
    matching the row order of PerStoreFeature; the walk is C++ (cpp/tir_dataflow.cc: from
    Python it took more than the whole predict budget). Where the buffer count disagrees with
    ``num_nodes[i]`` (the feature extractor dropped or merged a buffer), the graph falls back
    to a chain 0 -> 1 -> ..., so that a graph is always well formed.
    """
    mods = list(mods)
    if len(mods) != len(num_nodes):
        raise CostModelError(f"dataflow_edges: {len(mods)} modules but {len(num_nodes)} node counts")
    try:
        flat = np.asarray(_dataflow_graphs(mods), dtype=np.int64)
    except ValueError as err:
        raise CostModelError(str(err)) from None
    edges, at = [], 0
    for n in num_nodes:
        buffers, m = int(flat[at]), int(flat[at + 1])
        pairs = flat[at + 2 : at + 2 + 2 * m]
        at += 2 + 2 * m
        if buffers != n:
            src = np.arange(max(n - 1, 0), dtype=np.int64)
            edges.append(np.stack([src, src + 1]))
        else:
            edges.append(pairs.reshape(-1, 2).T.copy())
    return edges


def prim_func(mod) -> tirx.PrimFunc:
    """The (single) PrimFunc of a tuning task's module."""
    funcs = [f for _, f in mod.functions_items() if isinstance(f, tirx.PrimFunc)]
    if len(funcs) != 1:
        raise CostModelError(f"expected one PrimFunc per tuning task, got {len(funcs)}")
    return funcs[0]


def encode(extractor: PerStoreFeature, context, candidates, features=None) -> list[Graph]:
    """Graphs of ``candidates`` (same order). A candidate without stores gets one zero node.
    ``features``: ``extractor``'s output for these candidates when the caller already has it
    (extraction is most of the cost)."""
    feats = extractor.extract_from(context, candidates) if features is None else features
    xs = [f.numpy().astype(np.float32) for f in feats]
    stored = [i for i, x in enumerate(xs) if x.shape[0]]
    edges = dataflow_edges([candidates[i].sch.mod for i in stored], [xs[i].shape[0] for i in stored])
    graphs: list[Graph] = [(np.zeros((1, extractor.feature_vector_length), np.float32), np.zeros((2, 0), np.int64))] * len(xs)
    for i, e in zip(stored, edges):
        graphs[i] = (xs[i], e)
    return graphs


def collate(graphs: list[Graph]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Disjoint union of ``graphs``: (x, edge_index, batch) without PyG's slower Batch."""
    sizes = np.array([g[0].shape[0] for g in graphs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    x = torch.from_numpy(np.concatenate([g[0] for g in graphs]))
    edge_index = torch.from_numpy(np.concatenate([g[1] + o for g, o in zip(graphs, offsets)], axis=1))
    batch = torch.from_numpy(np.repeat(np.arange(len(graphs)), sizes))
    return x, edge_index, batch


# ----------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class GNNConfig:
    """Hyper-parameters of :class:`StoreGNN` (saved with the weights)."""

    in_dim: int = 164
    hidden: int = 64
    layers: int = 3


class StoreGNN(nn.Module):
    """Standardised store features -> :class:`~predictor.model.GraphEncoder` (directed data
    flow, input projection, residual layers, sum + max pooling) -> MLP head -> one score."""

    def __init__(self, cfg: GNNConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = GraphEncoder(cfg.in_dim, cfg.hidden, cfg.layers, undirected=False, input_projection=True,
                                    residual=True, pooling="sum_max")
        self.head = mlp(self.encoder.out_dim, 1, width=cfg.hidden)
        self.register_buffer("mean", torch.zeros(cfg.in_dim))
        self.register_buffer("std", torch.ones(cfg.in_dim))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        return self.head(self.encoder((x - self.mean) / self.std, edge_index, batch, num_graphs)).squeeze(1)

    def set_normalisation(self, graphs: list[Graph]) -> None:
        """Standardise node features with statistics of ``graphs`` (pre-training data)."""
        x = np.concatenate([g[0] for g in graphs])
        self.mean.copy_(torch.from_numpy(x.mean(0)))
        self.std.copy_(torch.from_numpy(x.std(0) + 1e-3))


def normalised_throughput(costs: np.ndarray) -> np.ndarray:
    """min cost / cost within one workload (1 = best measured, 0 = failed)."""
    costs = np.asarray(costs, dtype=np.float64)
    ok = costs < FAILED_COST
    if not ok.any():
        return np.zeros_like(costs)
    return np.where(ok, costs[ok].min() / np.where(ok, costs, 1.0), 0.0)


def train(
    model: StoreGNN,
    groups: list[tuple[list[Graph], np.ndarray]],
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Fit ``model`` on ``groups`` = [(graphs, measured costs) per workload]; loss =
    MSE on normalised throughput + pairwise ranking loss within a workload. Returns the
    mean loss per epoch."""
    graphs = [g for gs, _ in groups for g in gs]
    if not graphs:
        raise CostModelError("train(): no graphs given; collect records first (benchmarks/collect_ms_records.py)")
    ys = np.concatenate([normalised_throughput(c) for _, c in groups]).astype(np.float32)
    gid = np.concatenate([np.full(len(gs), i) for i, (gs, _) in enumerate(groups)])
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    epoch_iter = range(epochs)
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        epoch_iter = tqdm(epoch_iter, desc="train AIO-P cost model")
    for _ in epoch_iter:
        perm = rng.permutation(len(graphs))
        total = 0.0
        for start in range(0, len(perm), batch_size):
            idx = perm[start : start + batch_size]
            x, ei, b = collate([graphs[i] for i in idx])
            pred = model(x, ei, b, len(idx))
            y = torch.from_numpy(ys[idx])
            loss = nn.functional.mse_loss(pred, y) + pairwise_rank_loss(pred, y, torch.from_numpy(gid[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(perm))
    model.eval()
    return losses


def pretrain(
    groups: list[tuple[list[Graph], np.ndarray]], *, epochs: int, seed: int = 0, progress: bool = False
) -> StoreGNN:
    """A fresh :class:`StoreGNN` standardised on and trained on ``groups`` (one
    (graphs, costs) pair per workload): the cross-workload pre-training of AIO-P."""
    torch.manual_seed(seed)
    model = StoreGNN(GNNConfig())
    model.set_normalisation([g for gs, _ in groups for g in gs])
    train(model, groups, epochs=epochs, seed=seed, progress=progress)
    return model


@torch.no_grad()
def score(model: StoreGNN, graphs: list[Graph]) -> np.ndarray:
    """Predicted normalised throughput of each graph (float64, same order)."""
    if not graphs:
        return np.zeros(0)
    model.eval()
    x, ei, b = collate(graphs)
    return model(x, ei, b, len(graphs)).double().numpy()


# ---------------------------------------------------------------------------- online ranker
def summed_features(graphs: list[Graph]) -> np.ndarray:
    """One row per candidate: its per-store features summed over stores [len, FEATURE_DIM]."""
    return np.stack([g[0].sum(0) for g in graphs]).astype(np.float32)


def fit_ranker(graphs: list[Graph], costs, *, seed: int = 0, objective: str = RANKER_PARAMS["objective"]) -> xgboost.Booster:
    """The per-workload online ranker: XGBoost (RANKER_PARAMS, RANKER_ROUNDS, one thread) fitted
    on ``graphs``' summed features to rank their normalised throughput (failed = worst).
    ``objective``: another XGBoost objective (the validation compares reg:squarederror)."""
    if len(graphs) != len(costs) or not graphs:
        raise CostModelError(f"fit_ranker: need >= 1 graph and one cost per graph, got {len(graphs)} and {len(costs)}")
    data = xgboost.DMatrix(summed_features(graphs), label=normalised_throughput(costs))
    data.set_group([len(graphs)])  # all records of one workload are comparable
    params = {**RANKER_PARAMS, "objective": objective, "nthread": 1, "seed": seed}
    return xgboost.train(params, data, num_boost_round=RANKER_ROUNDS)


def ranker_scores(ranker: xgboost.Booster, graphs: list[Graph]) -> np.ndarray:
    """The online ranker's scores of ``graphs`` (higher = predicted faster)."""
    return ranker.predict(xgboost.DMatrix(summed_features(graphs))).astype(np.float64)


def blend_weight(records: int, half: float = BLEND_HALF) -> float:
    """Weight of the online ranker once ``records`` of the workload are measured: grows from 0
    (no data: GNN only) towards 1, 1/2 at ``half`` records."""
    return records / (records + half)


def _zscore(s: np.ndarray) -> np.ndarray:
    return (s - s.mean()) / (s.std() + 1e-12)  # constant scores -> all 0


def hybrid_score(model: StoreGNN, graphs: list[Graph], ranker: xgboost.Booster | None = None, records: int = 0,
                 half: float = BLEND_HALF) -> np.ndarray:
    """Scores of ``graphs``: the GNN's alone without a ranker, else (1 - w) z(GNN) + w z(ranker)
    with w = blend_weight(records, half) and z = standardisation over this batch (the two
    score scales differ; only the order matters to MetaSchedule)."""
    gnn = score(model, graphs)
    if ranker is None or not graphs:
        return gnn
    w = blend_weight(records, half)
    return (1 - w) * _zscore(gnn) + w * _zscore(ranker_scores(ranker, graphs))


# ------------------------------------------------------------------------ MetaSchedule glue
@derived_object
class AIOPCostModel(PyCostModel):
    """MetaSchedule cost model scoring candidates with :class:`StoreGNN` and, once a workload
    has ``min_records`` measured records, with an online ranker fitted on them (:func:`hybrid_score`).

    ``update`` stores the measured candidates of each workload (keyed by the structural hash of
    the task) and refits that workload's ranker. ``finetune_epochs`` > 0 also fine-tunes the GNN
    on the workload's records (off by default: the frozen pre-trained GNN blended with the
    ranker was better on validation, benchmarks/results/ms_finetune_validation.md).
    """

    def __init__(
        self,
        *,
        config: GNNConfig | None = None,
        finetune_epochs: int = 0,
        finetune_lr: float = FINETUNE_LR,
        min_records: int = MIN_RECORDS,
        blend_half: float = BLEND_HALF,
        seed: int = 0,
    ):
        super().__init__()
        if min_records < 1 or blend_half <= 0 or finetune_epochs < 0:
            raise CostModelError(f"AIOPCostModel: need min_records >= 1, blend_half > 0, finetune_epochs >= 0 "
                                 f"(got {min_records}, {blend_half}, {finetune_epochs})")
        torch.manual_seed(seed)
        self.model = StoreGNN(config or GNNConfig())
        self.model.eval()
        self.extractor = PerStoreFeature()
        self.finetune_epochs = finetune_epochs
        self.finetune_lr = finetune_lr
        self.min_records = min_records
        self.blend_half = blend_half
        self.seed = seed
        self.data: dict[str, tuple[list[Graph], list[float]]] = {}
        self.rankers: dict[str, xgboost.Booster] = {}

    def load(self, path: str) -> None:
        """Load weights + config saved by :meth:`save` (online data and rankers are not kept)."""
        self.model = _read_model(path)
        self.data = {}
        self.rankers = {}

    def save(self, path: str) -> None:
        """Save weights + config to ``path`` (a torch file)."""
        torch.save({"config": asdict(self.model.cfg), "weights": self.model.state_dict()}, path)

    def update(self, context, candidates, results) -> None:
        if len(candidates) != len(results):
            raise CostModelError(f"AIOPCostModel.update: {len(candidates)} candidates but {len(results)} results")
        if not candidates:
            return
        key = shash2hex(context.mod)
        graphs, costs = self.data.setdefault(key, ([], []))
        graphs.extend(encode(self.extractor, context, candidates))
        costs.extend(_mean_cost(r) for r in results)
        if len(costs) < self.min_records:
            return
        measured = np.array(costs)
        self.rankers[key] = fit_ranker(graphs, measured, seed=self.seed + len(costs))
        if self.finetune_epochs > 0:
            train(self.model, [(graphs, measured)], epochs=self.finetune_epochs, lr=self.finetune_lr,
                  seed=self.seed + len(costs))

    def predict(self, context, candidates) -> np.ndarray:
        key = shash2hex(context.mod)
        records = len(self.data[key][1]) if key in self.data else 0
        return hybrid_score(self.model, encode(self.extractor, context, candidates), self.rankers.get(key), records,
                            self.blend_half)


def _mean_cost(result) -> float:
    """Median run time of a RunnerResult, FAILED_COST when it has none (as XGBModel)."""
    if result.error_msg is not None or not result.run_secs:
        return FAILED_COST
    secs = [float(s) for s in result.run_secs]
    return float(np.median(secs)) if all(math.isfinite(s) for s in secs) else FAILED_COST


def _read_model(path: str | Path) -> StoreGNN:
    """The StoreGNN saved at ``path`` (eval mode); CostModelError if the file is missing, is not
    an AIO-P model, or holds weights of another StoreGNN layout."""
    p = Path(path)
    if not p.is_file():
        raise CostModelError(f"AIOPCostModel.load: no model file {p}; train one with benchmarks/ms_cost_model.py --save")
    state = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "config" not in state or "weights" not in state:
        raise CostModelError(f"AIOPCostModel.load: {p} is not an AIO-P MetaSchedule model (keys config/weights missing)")
    model = StoreGNN(GNNConfig(**state["config"]))
    try:
        model.load_state_dict(state["weights"])
    except RuntimeError as err:
        raise CostModelError(f"AIOPCostModel.load: the weights in {p} do not fit this version's StoreGNN "
                             f"({str(err).splitlines()[0]}); re-train with benchmarks/ms_cost_model.py --save") from None
    return model.eval()


def load_cost_model(path: str | Path, **kwargs) -> AIOPCostModel:
    """An :class:`AIOPCostModel` with the weights saved at ``path`` (kwargs: fine-tuning
    options of the constructor). Use this rather than ``AIOPCostModel().load``: errors
    raised inside ``load`` reach Python through TVM's FFI as a plain RuntimeError."""
    model = AIOPCostModel(**kwargs)
    model.model = _read_model(path)
    return model


# ------------------------------------------------------------------------------- records
@dataclass
class WorkloadRecords:
    """Measured candidates of one workload read from a MetaSchedule JSON database."""

    name: str
    context: object  # TuneContext of the workload (for feature extraction)
    candidates: list  # MeasureCandidate, one per record
    costs: np.ndarray  # median run seconds, FAILED_COST for failed records


def read_records(directory: str | Path, target: dict | str, num_threads: int = 1) -> WorkloadRecords:
    """Replay the traces of ``directory``/database_tuning_record.json on its workload.

    ``directory`` holds a MetaSchedule JSONDatabase (database_workload.json +
    database_tuning_record.json), as written by benchmarks/collect_ms_records.py.
    """
    from tvm.s_tir import Schedule  # noqa: PLC0415
    from tvm.s_tir.meta_schedule import MeasureCandidate, TuneContext  # noqa: PLC0415
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo  # noqa: PLC0415
    from tvm.s_tir.meta_schedule.database import JSONDatabase  # noqa: PLC0415

    from .ms_build import skip_tensor_intrin_import  # noqa: PLC0415

    d = Path(directory)
    wl_path, rec_path = d / "database_workload.json", d / "database_tuning_record.json"
    if not wl_path.is_file() or not rec_path.is_file():
        raise CostModelError(f"read_records: {d} has no MetaSchedule JSON database (run benchmarks/collect_ms_records.py)")
    db = JSONDatabase(path_workload=str(wl_path), path_tuning_record=str(rec_path), allow_missing=False)
    records = db.get_all_tuning_records()
    if not records:
        raise CostModelError(f"read_records: {rec_path} holds no tuning records")
    mod = records[0].workload.mod
    with skip_tensor_intrin_import():
        context = TuneContext(mod=mod, target=target, num_threads=num_threads)
    args_info = ArgInfo.from_prim_func(prim_func(mod))
    candidates, costs = [], []
    for rec in records:
        sch = Schedule(mod)
        rec.trace.apply_to_schedule(sch, remove_postproc=False)
        candidates.append(MeasureCandidate(sch, args_info))
        secs = [float(s) for s in rec.run_secs] if rec.run_secs is not None else []
        costs.append(float(np.median(secs)) if secs and max(secs) < FAILED_COST else FAILED_COST)
    return WorkloadRecords(d.name, context, candidates, np.array(costs))
