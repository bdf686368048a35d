"""AIO-P transfer benchmark: pre-train on classification families, evaluate on TransNAS-Bench-101.

Per TransNAS task (held out): SRCC/MAE on every architecture not used for fine-tuning, for
N = 0 (zero-shot, with and without a proxy-trained adapter), 5, 20, 50 target labels, over
several seeds (fine-tuning splits; pre-training uses one seed). Baselines on the same test
archs: FLOPs, params, each zero-cost proxy of the data file, XGBoost on hand-made encoding
features with the same N labels, and the GNN trained only on the N labels. Cross-family:
pre-train without NB201, test on NB201 cifar10.

    python benchmarks/aiop_transfer.py [--quick] [--cached-only] [--seeds 5]

``--cached-only`` restricts every family to architectures whose OpGraph is already cached
(building all ~2.7k OpGraphs through tvm_fusion.graph.from_torch is slow); the output says so.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from predictor import data, graphs  # noqa: E402
from predictor.aiop import AIOP, ZERO_SHOT, FeatureCache  # noqa: E402
from predictor.model import spearman  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NS = (5, 20, 50)
NOTE_CACHED = ("Only architectures whose OpGraph was already cached were used: building a graph through "
               "tvm_fusion.graph.from_torch took ~10-25 s per backbone on the shared 2-core machine, so the "
               "pre-training pool here is tiny (see archs per task) and these numbers are not comparable to "
               "the paper's. N=0 rows are over all archs of the task; N>0 rows over the archs not used for "
               "fine-tuning. Zero-shot/proxy rows have no seed variance (one pre-training, seed 0).")


def key_fn(r):
    return graphs.graph_key(r.family, r.task, r.arch)


def handmade(r) -> list[float]:
    """One-hot of each edge op of the cell (TransNAS / NB201 encodings) + log FLOPs + log params."""
    codes = r.arch if isinstance(r.arch[0], int) else ()
    onehot = [float(c == k) for c in codes for k in range(5)]
    return onehot + [float(np.log1p(r.flops)), float(np.log1p(r.params))]


def xgb_predict(train, test, seed) -> np.ndarray:
    import xgboost

    params = {"max_depth": 3, "eta": 0.1, "seed": seed, "nthread": 1, "objective": "reg:squarederror"}
    dtrain = xgboost.DMatrix(np.array([handmade(r) for r in train]), label=np.array([r.label for r in train]))
    booster = xgboost.train(params, dtrain, num_boost_round=100)
    return booster.predict(xgboost.DMatrix(np.array([handmade(r) for r in test])))


def mae(pred, truth) -> float:
    return float(np.mean(np.abs(np.asarray(pred) - np.asarray(truth))))


def evaluate_target(model: AIOP, infused: AIOP | None, recs, feats, seeds, ns, epochs_scratch, hidden, layers):
    """Every method on one target task; returns {method: {"srcc": [..], "mae": [..]}} per N."""
    out: dict = {}
    items = {key_fn(r): feats.item(key_fn(r)) for r in recs}
    truth_all = [r.label for r in recs]
    z = model.scores([items[key_fn(r)] for r in recs], ZERO_SHOT)
    out["N=0 AIO-P zero-shot"] = {"srcc": [spearman(z, truth_all)]}
    if infused is not None:
        zi = infused.scores([items[key_fn(r)] for r in recs], ZERO_SHOT)
        out["N=0 AIO-P+adapter zero-shot"] = {"srcc": [spearman(zi, truth_all)]}
    for name in ["flops", "params"] + sorted(recs[0].proxies):
        vals = [getattr(r, name) if name in ("flops", "params") else r.proxies[name] for r in recs]
        out[f"N=0 {name}"] = {"srcc": [spearman(vals, truth_all)]}
    head = f"{recs[0].family}/{recs[0].task}"
    for n in ns:
        if n >= len(recs) - 5:
            continue
        for seed in seeds:
            rng = random.Random(seed)
            idx = list(range(len(recs)))
            rng.shuffle(idx)
            train = [recs[i] for i in idx[:n]]
            test = [recs[i] for i in idx[n:]]
            truth = [r.label for r in test]
            titems = [items[key_fn(r)] for r in test]
            methods = {"AIO-P fine-tune": model.finetune(train, feats, key_fn, head, seed=seed)}
            if infused is not None:
                methods["AIO-P+adapter fine-tune"] = infused.finetune(train, feats, key_fn, head, seed=seed)
            methods["GNN on N labels only"] = AIOP.pretrain(train, feats, key_fn, epochs=epochs_scratch, seed=seed,
                                                              hidden=hidden, layers=layers, progress=False)
            for name, m in methods.items():
                s = m.scores(titems, head)
                pred = m.standardizers[head].inverse(s, [feats.mflops(key_fn(r)) for r in test])
                rec = out.setdefault(f"N={n} {name}", {"srcc": [], "mae": []})
                rec["srcc"].append(spearman(s, truth))
                rec["mae"].append(mae(pred, truth))
            pred = xgb_predict(train, test, seed)
            rec = out.setdefault(f"N={n} XGBoost (hand-made)", {"srcc": [], "mae": []})
            rec["srcc"].append(spearman(pred, truth))
            rec["mae"].append(mae(pred, truth))
    return out


def summarise(res: dict) -> dict:
    return {k: {m: {metric: [float(np.mean(v)), float(np.std(v)), len(v)] for metric, v in mv.items()}
                for m, mv in d.items()} for k, d in res.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 seeds, 15 pre-training epochs")
    p.add_argument("--cached-only", action="store_true")
    p.add_argument("--per-family", type=int, default=None, help="seeded subset of archs per family")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--proxy", default="nwot", help="pseudo-label proxy for the adapter")
    p.add_argument("--tasks", default=",".join(data.TNB_TASKS))
    p.add_argument("--name", default="aiop_transfer")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    seeds = list(range(2 if args.quick else args.seeds))
    epochs = 15 if args.quick else args.epochs
    hidden, layers = 64, 4

    recs = data.subsample(data.load_all(), args.per_family)
    if args.cached_only:
        recs = [r for r in recs if graphs.is_cached(r.family, r.arch)]
    counts = {}
    for r in recs:
        counts[f"{r.family}/{r.task}"] = counts.get(f"{r.family}/{r.task}", 0) + 1
    print("records per task:", counts)
    t0 = time.time()
    feats = FeatureCache(graphs.build_graphs(recs))
    graph_seconds = time.time() - t0

    pre = [r for r in recs if r.family in data.CLASSIFICATION_FAMILIES]
    t0 = time.time()
    base = AIOP.pretrain(pre, feats, key_fn, epochs=epochs, seed=0, hidden=hidden, layers=layers)
    pretrain_seconds = time.time() - t0
    print(f"pre-training on {len(pre)} records: {pretrain_seconds:.1f} s")

    results = {}
    for task in args.tasks.split(","):
        target = [r for r in recs if r.family == "tnb101" and r.task == task]
        if len(target) < 10:
            print(f"skip {task}: {len(target)} archs")
            continue
        infused = base.infuse(target, feats, key_fn, args.proxy, epochs=10, seed=0, progress=False)
        results[f"tnb101/{task}"] = evaluate_target(base, infused, target, feats, seeds, NS, epochs * 4, hidden, layers)
        print(task, {k: round(float(np.mean(v["srcc"])), 3) for k, v in results[f"tnb101/{task}"].items()})

    # cross-family: pre-train without NB201, test on NB201 cifar10
    pre_x = [r for r in pre if r.family != "nb201"]
    target = [r for r in recs if r.family == "nb201" and r.task == "cifar10"]
    if pre_x and len(target) >= 10:
        base_x = AIOP.pretrain(pre_x, feats, key_fn, epochs=epochs, seed=0, hidden=hidden, layers=layers)
        results["cross-family nb201/cifar10"] = evaluate_target(base_x, None, target, feats, seeds, (20,),
                                                                  epochs * 4, hidden, layers)

    summary = summarise(results)
    meta = {"seeds": len(seeds), "quick": args.quick, "cached_only": args.cached_only, "per_family": args.per_family, "records": counts,
            "pretrain_epochs": epochs, "pretrain_seconds": pretrain_seconds, "graph_seconds": graph_seconds,
            "adapter_proxy": args.proxy, "torch_threads": 1}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"meta": meta, "results": summary}, indent=1))
    methods = sorted({m for d in summary.values() for m in d}, key=lambda m: (int(m.split()[0][2:]), m))
    lines = [f"# AIO-P transfer ({'quick, ' if args.quick else ''}{len(seeds)} seeds"
             f"{', cached archs only' if args.cached_only else ''}"
             f"{f', {args.per_family} archs per family' if args.per_family else ''})", "",
             f"Pre-training: {len(pre)} records, {epochs} epochs, {pretrain_seconds:.0f} s (1 thread). "
             f"Archs per task: {counts}", "",
             "SRCC mean ± std over seeds (MAE in label units in brackets where defined)", "",
             "| method | " + " | ".join(summary) + " |", "|---" * (len(summary) + 1) + "|"]
    for m in methods:
        row = []
        for d in summary.values():
            if m not in d:
                row.append("")
                continue
            s = d[m]
            cell = f"{s['srcc'][0]:.3f}±{s['srcc'][1]:.3f}"
            if "mae" in s:
                cell += f" ({s['mae'][0]:.3g})"
            row.append(cell)
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    if args.cached_only:
        lines += ["", NOTE_CACHED]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
