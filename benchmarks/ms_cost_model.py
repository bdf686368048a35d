"""Offline evaluation of the AIO-P MetaSchedule cost model against TVM's XGBModel/MLPModel.

Leave-one-workload-out over the records in benchmarks/ms_records/ (collected by
collect_ms_records.py). For each held-out workload W and k in --shots (default 0 16 64):
k records of W (seeded sample) are the fine-tuning data, the rest of W is the test set.

* AIO-P: GNN pre-trained on all other workloads, then fine-tuned on the k records.
* AIO-P (no edges): ablation, the same GNN trained on graphs without data-flow edges.
* XGB (k only): MetaSchedule's XGBModel trained on the k records of W alone (k = 0 ->
  random scores, what XGBModel does before its warm-up).
* XGB (transfer): XGBModel trained on all other workloads + the k records.
* MLP (transfer): MetaSchedule's MLPModel (segment-sum MLP), same data as XGB transfer.

All models see the same PerStoreFeature vectors (extracted once and cached). Metrics on
the successfully measured test records: Spearman rank correlation (SRCC) between score
and throughput, top-1 recall (the measured best is the predicted best) and top-5 recall
(|predicted top-5 ∩ measured top-5| / 5), averaged over held-out workloads.

    python benchmarks/ms_cost_model.py [--epochs 30] [--save benchmarks/results/ms_aiop_pretrained.pt]
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tvm.ir.utils import derived_object  # noqa: E402
from tvm.s_tir.meta_schedule.cost_model import XGBModel  # noqa: E402
from tvm.s_tir.meta_schedule.cost_model.mlp_model import MLPModel  # noqa: E402
from tvm.s_tir.meta_schedule.feature_extractor import PyFeatureExtractor  # noqa: E402
from tvm.s_tir.meta_schedule.runner import RunnerResult  # noqa: E402
from tvm.s_tir.meta_schedule.utils import shash2hex  # noqa: E402

from predictor import metaschedule as aiop  # noqa: E402

HERE = Path(__file__).resolve().parent
RECORDS = HERE / "ms_records"
RESULTS = HERE / "results"
TARGET = {"kind": "llvm", "num-cores": 2}


@derived_object
class CachedFeatures(PyFeatureExtractor):
    """Hands MetaSchedule models the PerStoreFeature tensors extracted once up front
    (keyed by the candidate object's handle), so baselines do not re-extract per fit."""

    def __init__(self, table: dict):
        super().__init__()
        self.table = table

    def extract_from(self, context, candidates):
        return [self.table[c.__chandle__()] for c in candidates]


def recall_at(pred: np.ndarray, thr: np.ndarray, k: int) -> float:
    """|top-k by prediction ∩ top-k by measured throughput| / k."""
    k = min(k, len(thr))
    return len(set(np.argsort(-pred)[:k]) & set(np.argsort(-thr)[:k])) / k


def metrics(pred: np.ndarray, costs: np.ndarray) -> dict:
    ok = costs < aiop.FAILED_COST
    p, thr = pred[ok], 1.0 / costs[ok]
    return {
        "srcc": float(spearmanr(p, thr).statistic) if len(p) > 2 and np.ptp(p) > 0 else 0.0,
        "top1": recall_at(p, thr, 1),
        "top5": recall_at(p, thr, 5),
    }


def fit_xgb(table: dict, parts: list[tuple[aiop.WorkloadRecords, np.ndarray]]) -> XGBModel:
    """MetaSchedule's XGBModel fed (workload, record indices) parts through its own
    ``update``. Its adaptive training is used to skip the re-training after every part
    but the last (one training on all the data instead of one per workload)."""
    xgb = XGBModel(extractor=CachedFeatures(table), num_warmup_samples=0, adaptive_training=True, num_tuning_cores=1)
    parts = [(wr, idx) for wr, idx in parts if len(idx)]
    for j, (wr, idx) in enumerate(parts):
        xgb.last_train_size = 0 if j == len(parts) - 1 else 1 << 60
        cands = [wr.candidates[i] for i in idx]
        res = [RunnerResult([float(wr.costs[i])], None) if wr.costs[i] < aiop.FAILED_COST else RunnerResult(None, "failed") for i in idx]
        xgb.update(wr.context, cands, res)
    return xgb


def fit_predict_mlp(table: dict, others, held: aiop.WorkloadRecords, tr: np.ndarray, te: np.ndarray) -> np.ndarray:
    """MetaSchedule's MLPModel: one full training on the other workloads (its own
    train_full, which holds out 20 % of the workloads for model selection), then its
    incremental update on the k records of the held-out workload; scores of ``te``."""
    mlp = MLPModel()
    trainer = mlp.trainer
    for w in others:
        feats = [table[c.__chandle__()].numpy().astype("float32") for c in w.candidates]
        trainer.state.add_to_group(feats, w.costs.astype("float32"), shash2hex(w.context.mod))
    trainer.train_full()
    if len(tr):
        feats = [table[held.candidates[i].__chandle__()].numpy().astype("float32") for i in tr]
        trainer.update(feats, held.costs[tr].astype("float32"), shash2hex(held.context.mod))
    return np.asarray(trainer.predict_incremental([table[held.candidates[i].__chandle__()].numpy().astype("float32") for i in te]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shots", type=int, nargs="*", default=[0, 16, 64])
    ap.add_argument("--min-records", type=int, default=24, help="skip workloads with fewer records")
    ap.add_argument("--epochs", type=int, default=30, help="AIO-P pre-training epochs")
    ap.add_argument("--finetune-epochs", type=int, default=20)
    ap.add_argument("--no-mlp", action="store_true", help="skip MetaSchedule's MLPModel baseline")
    ap.add_argument("--save", default=None, help="also pre-train on all workloads and save the model here")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    random.seed(args.seed)  # MLPModel's train/validation split of workloads
    logging.getLogger("tvm.s_tir.meta_schedule").setLevel(logging.WARNING)

    dirs = sorted(d for d in RECORDS.iterdir() if (d / "database_tuning_record.json").is_file())
    workloads: list[aiop.WorkloadRecords] = []
    for d in tqdm(dirs, desc="read records"):
        n = sum(1 for line in (d / "database_tuning_record.json").open() if line.strip())
        if n >= args.min_records:
            workloads.append(aiop.read_records(d, TARGET))
    if len(workloads) < 2:
        raise SystemExit(f"need >= 2 workloads with >= {args.min_records} records in {RECORDS}; run collect_ms_records.py")
    extractor = aiop.PerStoreFeature()
    # MLPModel's segment-sum MLP expects the 8 workload-embedding features appended
    mlp_extractor = aiop.PerStoreFeature(extract_workload=True)
    graphs, table, mlp_table = {}, {}, {}
    extract_s = 0.0
    for wr in tqdm(workloads, desc="extract features"):
        t0 = time.perf_counter()
        feats = extractor.extract_from(wr.context, wr.candidates)
        extract_s += time.perf_counter() - t0
        for c, f in zip(wr.candidates, feats):
            table[c.__chandle__()] = f
        graphs[wr.name] = aiop.encode(extractor, wr.context, wr.candidates)
        if not args.no_mlp:
            for c, f in zip(wr.candidates, mlp_extractor.extract_from(wr.context, wr.candidates)):
                mlp_table[c.__chandle__()] = f
    no_edges = {n: [(x, np.zeros((2, 0), np.int64)) for x, _ in gs] for n, gs in graphs.items()}
    n_cands = sum(len(w.candidates) for w in workloads)
    extract_ms = 1000 * extract_s / n_cands

    rng = np.random.default_rng(args.seed)
    rows = []
    for held in tqdm(workloads, desc="held-out workloads"):
        others = [w for w in workloads if w is not held]
        torch.manual_seed(args.seed)
        pre = aiop.StoreGNN(aiop.GNNConfig())
        pre.set_normalisation([g for w in others for g in graphs[w.name]])
        aiop.train(pre, [(graphs[w.name], w.costs) for w in others], epochs=args.epochs, seed=args.seed)
        # ablation: the same GNN with the data-flow edges removed (nodes only)
        torch.manual_seed(args.seed)
        pre_ne = aiop.StoreGNN(aiop.GNNConfig())
        pre_ne.set_normalisation([g for w in others for g in graphs[w.name]])
        aiop.train(pre_ne, [(no_edges[w.name], w.costs) for w in others], epochs=args.epochs, seed=args.seed)
        perm = rng.permutation(len(held.candidates))
        for k in args.shots:
            if len(perm) - k < 10:
                continue
            tr, te = perm[:k], perm[k:]
            test_g, test_c = [graphs[held.name][i] for i in te], held.costs[te]
            row = {"workload": held.name, "k": k, "n_test": int((test_c < aiop.FAILED_COST).sum()), "n_train_other": sum(len(w.candidates) for w in others)}
            gnn = aiop.StoreGNN(aiop.GNNConfig())
            gnn.load_state_dict(pre.state_dict())
            if k:
                aiop.train(gnn, [([graphs[held.name][i] for i in tr], held.costs[tr])], epochs=args.finetune_epochs, lr=3e-4, seed=args.seed)
            row["aiop"] = metrics(aiop.score(gnn, test_g), test_c)
            gnn.load_state_dict(pre_ne.state_dict())
            if k:
                aiop.train(gnn, [([no_edges[held.name][i] for i in tr], held.costs[tr])], epochs=args.finetune_epochs, lr=3e-4, seed=args.seed)
            row["aiop_no_edges"] = metrics(aiop.score(gnn, [no_edges[held.name][i] for i in te]), test_c)
            test_cands = [held.candidates[i] for i in te]
            if k:
                xgb = fit_xgb(table, [(held, tr)])
                row["xgb_k_only"] = metrics(np.asarray(xgb.predict(held.context, test_cands)), test_c)
            else:  # XGBModel scores uniformly at random before it has data
                row["xgb_k_only"] = metrics(rng.uniform(size=len(te)), test_c)
            xgb = fit_xgb(table, [(w, np.arange(len(w.candidates))) for w in others] + [(held, tr)])
            row["xgb_transfer"] = metrics(np.asarray(xgb.predict(held.context, test_cands)), test_c)
            if not args.no_mlp:
                try:
                    row["mlp_transfer"] = metrics(fit_predict_mlp(mlp_table, others, held, tr, te), test_c)
                except Exception as err:  # noqa: BLE001  (baseline is optional: record why it failed)
                    row["mlp_transfer"] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
                    args.no_mlp = True
            rows.append(row)

    # predict timing: one batch of 512 graphs (GNN only; feature extraction is separate)
    batch = [g for w in workloads for g in graphs[w.name]]
    batch = (batch * (512 // len(batch) + 1))[:512]
    aiop.score(pre, batch)
    t0 = time.perf_counter()
    for _ in range(10):
        aiop.score(pre, batch)
    gnn_ms = 1000 * (time.perf_counter() - t0) / 10

    models = ["aiop", "aiop_no_edges", "xgb_k_only", "xgb_transfer"] + ([] if "mlp_transfer" not in rows[0] or "error" in rows[0]["mlp_transfer"] else ["mlp_transfer"])
    summary = {}
    for k in args.shots:
        rk = [r for r in rows if r["k"] == k]
        if rk:
            summary[k] = {m: {s: float(np.mean([r[m][s] for r in rk if s in r[m]])) for s in ("srcc", "top1", "top5")} for m in models}
    out = {
        "workloads": {w.name: len(w.candidates) for w in workloads},
        "records_total": n_cands,
        "args": vars(args),
        "summary": summary,
        "rows": rows,
        "timing": {"gnn_ms_per_512": gnn_ms, "feature_extraction_ms_per_candidate": extract_ms},
        "mlp_error": next((r["mlp_transfer"]["error"] for r in rows if "error" in r.get("mlp_transfer", {})), None),
    }
    lines = [
        f"# AIO-P vs MetaSchedule cost models (leave-one-workload-out, {len(workloads)} workloads, {n_cands} records)",
        "",
        "| k | held-out workloads | model | SRCC | top-1 recall | top-5 recall |",
        "|---|---|---|---|---|---|",
    ]
    for k, per in summary.items():
        n_wl = sum(1 for r in rows if r["k"] == k)
        for m, s in per.items():
            lines.append(f"| {k} | {n_wl} | {m} | {s['srcc']:.3f} | {s['top1']:.3f} | {s['top5']:.3f} |")
    lines += ["", f"GNN scoring: {gnn_ms:.1f} ms per 512 candidates; PerStoreFeature extraction: {extract_ms:.1f} ms per candidate (1 thread)."]
    if out["mlp_error"]:
        lines.append(f"MLPModel baseline did not run: {out['mlp_error']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ms_cost_model.json").write_text(json.dumps(out, indent=1))
    (RESULTS / "ms_cost_model.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    if args.save:
        model = aiop.AIOPCostModel(seed=args.seed)
        torch.manual_seed(args.seed)
        gnn = aiop.StoreGNN(aiop.GNNConfig())
        gnn.set_normalisation([g for w in workloads for g in graphs[w.name]])
        aiop.train(gnn, [(graphs[w.name], w.costs) for w in workloads], epochs=args.epochs, seed=args.seed, progress=True)
        model.model = gnn
        model.save(args.save)
        print(f"saved pre-trained model to {args.save}")


if __name__ == "__main__":
    main()
