"""Train the GET validity classifiers (one per fusion type) and ship their weights.

Groups of zoo networks are labelled by the C++ cost model at 128..2048 KB (see
tvm_fusion/explain/dataset.py); the networks in --held-out are never seen in training and
give the test numbers. Writes tvm_fusion/data/get_validity_<fusion>.pt and
benchmarks/results/train_validity.{json,md} (or both into --out-dir). The decision threshold
is picked on a validation split of groups from the training networks only.

    python benchmarks/train_validity.py                # both fusion types, default split (~1-2 min each)
    python benchmarks/train_validity.py --fusion brr   # one type; keeps the other's row in the results
    python benchmarks/train_validity.py --eval-only    # re-evaluate the shipped weights, rewrite the results
    python benchmarks/train_validity.py --quick        # small, for a smoke run (does not ship weights)
    python benchmarks/train_validity.py --out-dir /tmp/x   # weights and results in /tmp/x, nothing shipped
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tvm_fusion import zoo  # noqa: E402
from tvm_fusion.explain import classifier  # noqa: E402
from tvm_fusion.explain.dataset import BUFFER_KB, VERSION, build_dataset  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
HELD_OUT = ("resnet18", "mobilenet_v2", "squeezenet1_0")
RATIO_BINS = (0, 0.5, 0.8, 0.95, 1.05, 1.25, 2, float("inf"))  # F_beta / buffer, for the error breakdown


def _acc_in(row: dict, bins: tuple[str, ...]) -> float:
    """Pooled test accuracy over some F_beta/buffer bins of a results row."""
    cells = [row.get("test_per_fbeta_ratio", {}).get(b) for b in bins]
    n = sum(c["n"] for c in cells if c and c["n"])
    return sum(c["n"] * c["accuracy"] for c in cells if c and c["n"]) / n if n else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fusion", default="lbdf,brr")
    p.add_argument("--nets", default=None, help="comma-separated zoo names (default: all of zoo.NAMES)")
    p.add_argument("--held-out", default=",".join(HELD_OUT), help="networks kept out of training (test set)")
    p.add_argument("--val-nets", default="vgg16",
                   help="training networks kept out of fitting and used, with 10%% of the other training "
                        "networks' groups, to pick the epoch and the threshold (never a held-out network)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=3, help="GraphConv layers")
    p.add_argument("--partitions", type=int, default=10, help="random convex partitions per network")
    p.add_argument("--bfs", type=int, default=300, help="BFS-grown groups per network")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bce-weight", type=float, default=1.0,
                   help="weight of the BCE on the margin logits next to the log2 F_beta regression (0: regression only)")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="write get_validity_<fusion>.pt and train_validity.{json,md} here instead of shipping them")
    p.add_argument("--threads", type=int, default=1, help="torch threads (2 is slower than 1 on a loaded 2-core box)")
    p.add_argument("--eval-only", action="store_true",
                   help="evaluate the shipped weights without training (keeps the training record in the json)")
    p.add_argument("--quick", action="store_true", help="tiny run; writes results/train_validity_quick.*, no weights")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    nets = args.nets.split(",") if args.nets else list(zoo.NAMES)
    held = [n for n in args.held_out.split(",") if n]
    unknown = [n for n in nets + held if n not in zoo.NAMES]
    if unknown:
        p.error(f"unknown zoo networks {unknown}; available: {', '.join(zoo.NAMES)}")
    if args.quick:
        nets, args.epochs, args.partitions, args.bfs = nets[:4], 3, 3, 40
        held = [n for n in held if n in nets][:1] or nets[-1:]
    train_nets = [n for n in nets if n not in held]
    test_nets = [n for n in nets if n in held]
    graphs = {n: zoo.opgraph(n) for n in nets}

    report = {"version": VERSION, "val_networks": args.val_nets, "buffer_kb": list(BUFFER_KB),
              "train_networks": train_nets, "test_networks": test_nets, "epochs": args.epochs, "seed": args.seed, "fusion": {}}
    results = args.out_dir or RESULTS
    old_path = results / ("train_validity_quick.json" if args.quick else "train_validity.json")
    old = json.loads(old_path.read_text()) if old_path.exists() else {}
    for fusion in args.fusion.split(","):
        t0 = time.time()
        ds = build_dataset(train_nets + test_nets, fusion, seed=args.seed, n_partitions=args.partitions,
                           n_bfs=args.bfs)
        t_data = time.time() - t0
        net_of = np.array(ds.networks)[ds.network_of]
        is_test = np.isin(net_of, test_nets)
        rng = np.random.default_rng(args.seed)
        val_nets = [n for n in args.val_nets.split(",") if n and n in train_nets]
        is_val = ~is_test & ((rng.random(len(ds.groups)) < 0.1) | np.isin(net_of, val_nets))
        train = ds.pyg_groups(graphs, ~is_test & ~is_val)  # each group once, labels at every buffer
        val = ds.pyg_groups(graphs, is_val)
        test = ds.pyg(graphs, is_test)
        t1 = time.time()
        weights = args.out_dir / f"get_validity_{fusion}.pt" if args.out_dir else classifier.weights_path(fusion)
        if args.eval_only:
            model, prev = classifier.load(fusion, weights), old.get("fusion", {}).get(fusion, {})
            history, t_train = prev.get("history", []), prev.get("train_seconds", float("nan"))
        else:
            model, history = classifier.train(train, val, epochs=args.epochs, hidden=args.hidden,
                                              layers=args.layers, seed=args.seed, bce_weight=args.bce_weight)
            t_train = time.time() - t1
        # ds.pyg orders samples group-major, buffer-minor
        per_kb = {kb: classifier.evaluate(model, test[j::len(ds.buffer_kb)]).as_dict() if test else None
                  for j, kb in enumerate(ds.buffer_kb)}
        z, y = classifier.logits(model, test)
        ratio = (ds.f_beta[is_test] / (np.array(ds.buffer_kb) * 1024.0)).reshape(-1)
        per_ratio = {}
        for lo, hi in zip(RATIO_BINS[:-1], RATIO_BINS[1:]):
            sel = (ratio >= lo) & (ratio < hi)
            per_ratio[f"{lo}-{hi}"] = {"n": int(sel.sum()),
                                       "accuracy": float(((z[sel] > 0) == y[sel]).mean()) if sel.any() else None}
        sample_net = np.repeat(net_of[is_test], len(ds.buffer_kb))  # the network of each sample of test
        per_net = {n: classifier.evaluate(model, [d for d, m in zip(test, sample_net) if m == n]).as_dict()
                   for n in test_nets}
        sens = classifier.edge_sensitivity(model, [d for d in test if float(d.y) == 1])
        test_groups = ds.pyg_groups(graphs, is_test)
        row = {"samples": {"train": len(train) * len(ds.buffer_kb), "val": len(val) * len(ds.buffer_kb),
                           "test": len(test)},
               "groups": {"train": len(train), "val": len(val), "test": len(test_groups)},
               "val_log2_mae": classifier.log2_error(model, val) if val else None,
               "test_log2_mae": classifier.log2_error(model, test_groups),
               "edge_sensitivity_test_invalid": sens,
               "invalid_fraction": float(1 - ds.fits.mean()),
               "val": classifier.evaluate(model, val).as_dict() if val else None,
               "test": classifier.evaluate(model, test).as_dict() if test else None,
               "test_per_buffer_kb": per_kb, "test_per_network": per_net,
               "test_per_fbeta_ratio": per_ratio, "dataset_seconds": t_data,
               "train_seconds": t_train,
               "threshold": history[-1].get("threshold") if history else None, "history": history}
        report["fusion"][fusion] = row
        if not args.quick and not args.eval_only:
            classifier.save(model, weights,
                            meta={k: report[k] for k in ("train_networks", "test_networks", "epochs", "seed")})
        print(f"{fusion}: {len(train)} train / {len(test)} test samples, dataset {t_data:.0f} s, "
              f"train {t_train:.0f} s, test {row['test']}")

    name = "train_validity_quick" if args.quick else "train_validity"
    results.mkdir(parents=True, exist_ok=True)
    same = {k: old.get(k) for k in ("version", "train_networks", "test_networks", "val_networks")} == \
        {k: report[k] for k in ("version", "train_networks", "test_networks", "val_networks")}
    if same:  # a run of one fusion type keeps the other's row
        report["fusion"] = {**{f: r for f, r in old["fusion"].items() if f not in report["fusion"]}, **report["fusion"]}
    (results / f"{name}.json").write_text(json.dumps(report, indent=1))
    lines = [f"# GET validity classifier ({VERSION})", "",
             f"Train networks: {', '.join(train_nets)}  ", f"Held-out test networks: {', '.join(test_nets)}", "",
             "| fusion | train samples (groups) | test samples | invalid % | val acc | val F1 | test acc | test F1 "
             "| test log2 F_beta MAE | edge sensitivity | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for fusion, r in report["fusion"].items():
        v, t = r["val"] or {}, r["test"] or {}
        sens = r.get("edge_sensitivity_test_invalid") or {}
        lines.append(f"| {fusion} | {r['samples']['train']} ({r.get('groups', {}).get('train', '-')}) "
                     f"| {r['samples']['test']} | {100 * r['invalid_fraction']:.1f} "
                     f"| {v.get('accuracy', float('nan')):.4f} | {v.get('f1', float('nan')):.4f} "
                     f"| {t.get('accuracy', float('nan')):.4f} | {t.get('f1', float('nan')):.4f} "
                     f"| {r.get('test_log2_mae', float('nan')):.3f} "
                     f"| {sens.get('mean', float('nan')):.3f} / {sens.get('median', float('nan')):.3f} "
                     f"| {r['train_seconds']:.0f} |")
    lines += ["", "Target (issue 4): >= 0.95 test accuracy and F1. " + "; ".join(
        f"{f}: accuracy {'met' if (r['test'] or {}).get('accuracy', 0) >= 0.95 else 'NOT met'}, "
        f"F1 {'met' if (r['test'] or {}).get('f1', 0) >= 0.95 else 'NOT met'}" for f, r in report["fusion"].items())
        + ". Accuracy by distance to the boundary (last table): " + "; ".join(
        f"{f}: {_acc_in(r, ('0.8-0.95', '0.95-1.05', '1.05-1.25')):.3f} with F_beta within 0.8-1.25x the buffer, "
        f"{_acc_in(r, ('0-0.5', '2-inf')):.3f} below 0.5x or above 2x" for f, r in report["fusion"].items()) + "."]
    lines += ["", "Test accuracy / F1 per buffer size (held-out networks):", "",
              "| fusion | " + " | ".join(f"{kb} KB" for kb in BUFFER_KB) + " |", "|---" * (len(BUFFER_KB) + 1) + "|"]
    for fusion, r in report["fusion"].items():
        cells = ["-" if not m else f"{m['accuracy']:.3f} / n.a. (no invalid group)" if m["recall"] == 0 and
                 m["accuracy"] == 1 else f"{m['accuracy']:.3f} / {m['f1']:.3f}" for m in r["test_per_buffer_kb"].values()]
        lines.append(f"| {fusion} | " + " | ".join(cells) + " |")
    lines[2:2] = [
        "Node features: op type as an 8-family one-hot (conv, depthwise, dense, merge, pool, global reduce, "
        "data movement, elementwise), row class, output shape (C, H, W), kernel height, stride, fan-in/out, "
        "FLOPs, and log2 element counts of the op's own cost-model terms (inputs, one input row, input rows the op "
        "needs, rows it holds incl. a merge's early branch under whole-graph lags, the same shared among a "
        "tensor's readers, output, one output row, rows its consumers hold, weights, one filter; "
        "dataset.node_size_table); none depends on the buffer or the group. Model: 3 layers of paired GraphConvs "
        "(undirected + producer/consumer-signed); every node gates its own cost terms with sigmoids of its "
        "GNN state, and the gated terms are sum pooled (its filter max pooled) into a predicted F_beta; "
        "the buffer enters only the logit, "
        "s * (log2 F_hat - log2 buffer) + bias (s learnt). Loss: Huber on log2 F_beta (each distinct group "
        f"once) + {args.bce_weight:g} x BCE on the logits at all 5 buffer sizes (invalid class weighted by "
        "sqrt(#valid/#invalid)). The cost model's F_beta is a training target, never a feature. Epoch and "
        "decision threshold picked on validation groups of the training networks (all groups of the --val-nets "
        "network, not fitted, plus 10% of the other training networks' groups; never the held-out networks). "
        "Edge sensitivity: per held-out invalid sample, mean over edges of |d logit / d edge weight| over "
        "|logit|; mean / median over samples. "
        f"Validation networks: {args.val_nets}.", ""]
    lines += ["", "Test accuracy / F1 per held-out network:", "",
              "| fusion | " + " | ".join(test_nets) + " |", "|---" * (len(test_nets) + 1) + "|"]
    for fusion, r in report["fusion"].items():
        cells = [f"{m['accuracy']:.3f} / {m['f1']:.3f}" for m in r["test_per_network"].values()]
        lines.append(f"| {fusion} | " + " | ".join(cells) + " |")
    lines += ["", "Test accuracy by the cost model's F_beta / buffer (label: invalid iff > 1; diagnostic only, "
              "F_beta is not a classifier input):", "",
              "| fusion | " + " | ".join(f"{lo}-{hi}" for lo, hi in zip(RATIO_BINS[:-1], RATIO_BINS[1:])) + " |",
              "|---" * len(RATIO_BINS) + "|"]
    for fusion, r in report["fusion"].items():
        cells = [f"{m['accuracy']:.3f} (n={m['n']})" if m["n"] else "-" for m in r.get("test_per_fbeta_ratio", {}).values()]
        lines.append(f"| {fusion} | " + " | ".join(cells) + " |")
    (results / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
