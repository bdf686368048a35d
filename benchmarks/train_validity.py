"""Train the GET validity classifiers (one per fusion type) and ship their weights.

Groups of zoo networks are labelled by the C++ cost model at 128..2048 KB (see
tvm_fusion/explain/dataset.py); the networks in --held-out are never seen in training and
give the test numbers. Writes tvm_fusion/data/get_validity_<fusion>.pt and
benchmarks/results/get_validity.{json,md}.

    python benchmarks/train_validity.py                # both fusion types, default split
    python benchmarks/train_validity.py --quick        # small, for a smoke run (does not ship weights)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from tvm_fusion import zoo
from tvm_fusion.explain import classifier
from tvm_fusion.explain.dataset import BUFFER_KB, VERSION, build_dataset

RESULTS = Path(__file__).resolve().parent / "results"
HELD_OUT = ("resnet18", "mobilenet_v2", "squeezenet1_0")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fusion", default="lbdf,brr")
    p.add_argument("--nets", default=None, help="comma-separated zoo names (default: all of zoo.NAMES)")
    p.add_argument("--held-out", default=",".join(HELD_OUT), help="networks kept out of training (test set)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--partitions", type=int, default=10, help="random convex partitions per network")
    p.add_argument("--bfs", type=int, default=300, help="BFS-grown groups per network")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (2 is slower than 1 on a loaded 2-core box)")
    p.add_argument("--quick", action="store_true", help="tiny run; writes results/get_validity_quick.*, no weights")
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

    report = {"version": VERSION, "buffer_kb": list(BUFFER_KB), "train_networks": train_nets,
              "test_networks": test_nets, "epochs": args.epochs, "seed": args.seed, "fusion": {}}
    for fusion in args.fusion.split(","):
        t0 = time.time()
        ds = build_dataset(train_nets + test_nets, fusion, seed=args.seed, n_partitions=args.partitions,
                           n_bfs=args.bfs)
        t_data = time.time() - t0
        is_test = np.isin(np.array(ds.networks)[ds.network_of], test_nets)
        rng = np.random.default_rng(args.seed)
        is_val = ~is_test & (rng.random(len(ds.groups)) < 0.1)
        train = ds.pyg(graphs, ~is_test & ~is_val)
        val = ds.pyg(graphs, is_val)
        test = ds.pyg(graphs, is_test)
        t1 = time.time()
        model, history = classifier.train(train, val, epochs=args.epochs, hidden=args.hidden, seed=args.seed)
        t_train = time.time() - t1
        # ds.pyg orders samples group-major, buffer-minor
        per_kb = {kb: classifier.evaluate(model, test[j::len(ds.buffer_kb)]).as_dict() if test else None
                  for j, kb in enumerate(ds.buffer_kb)}
        row = {"samples": {"train": len(train), "val": len(val), "test": len(test)},
               "invalid_fraction": float(1 - ds.fits.mean()),
               "val": classifier.evaluate(model, val).as_dict() if val else None,
               "test": classifier.evaluate(model, test).as_dict() if test else None,
               "test_per_buffer_kb": per_kb, "dataset_seconds": t_data, "train_seconds": t_train,
               "history": history}
        report["fusion"][fusion] = row
        if not args.quick:
            classifier.save(model, classifier.weights_path(fusion),
                            meta={k: report[k] for k in ("train_networks", "test_networks", "epochs", "seed")})
        print(f"{fusion}: {len(train)} train / {len(test)} test samples, dataset {t_data:.0f} s, "
              f"train {t_train:.0f} s, test {row['test']}")

    name = "get_validity_quick" if args.quick else "get_validity"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=1))
    lines = [f"# GET validity classifier ({VERSION})", "",
             f"Train networks: {', '.join(train_nets)}  ", f"Held-out test networks: {', '.join(test_nets)}", "",
             "| fusion | train samples | test samples | invalid % | val acc | val F1 | test acc | test F1 | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for fusion, r in report["fusion"].items():
        v, t = r["val"] or {}, r["test"] or {}
        lines.append(f"| {fusion} | {r['samples']['train']} | {r['samples']['test']} | {100 * r['invalid_fraction']:.1f} "
                     f"| {v.get('accuracy', float('nan')):.4f} | {v.get('f1', float('nan')):.4f} "
                     f"| {t.get('accuracy', float('nan')):.4f} | {t.get('f1', float('nan')):.4f} | {r['train_seconds']:.0f} |")
    lines += ["", "Test accuracy / F1 per buffer size (held-out networks):", "",
              "| fusion | " + " | ".join(f"{kb} KB" for kb in BUFFER_KB) + " |", "|---" * (len(BUFFER_KB) + 1) + "|"]
    for fusion, r in report["fusion"].items():
        cells = [f"{m['accuracy']:.3f} / {m['f1']:.3f}" if m else "-" for m in r["test_per_buffer_kb"].values()]
        lines.append(f"| {fusion} | " + " | ".join(cells) + " |")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
