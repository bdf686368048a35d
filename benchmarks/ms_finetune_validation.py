"""How should the AIO-P MetaSchedule cost model fine-tune online? A validation study that
never touches the online benchmark's held-out workloads.

Leave-one-workload-out over the recorded workloads minus ms_online.py's 4 held-out ones: for
each validation workload, pre-train on the others (30 epochs, as ms_online's checkpoint), then
fine-tune a copy on k records of it (k = 16, 32, 48: what ``update()`` sees during a 64-trial
run; 3 seeded draws each) with each recipe (epochs x learning rate), and score the rest of the
workload's records (Spearman rank correlation with measured throughput). Recipe "none" is the
pre-trained model unchanged.

    python benchmarks/ms_finetune_validation.py
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling benchmark scripts

from ms_cost_model import RESULTS, load_workloads  # noqa: E402
from ms_online import HELD_OUT  # noqa: E402
from predictor import metaschedule as aiop  # noqa: E402

#: (epochs, learning rate) per recipe; None = no fine-tuning
RECIPES = {
    "none": None,
    "20 ep, lr 3e-4": (20, 3e-4),
    "20 ep, lr 1e-4": (20, 1e-4),
    "40 ep, lr 1e-4": (40, 1e-4),
    "10 ep, lr 1e-4": (10, 1e-4),
    "5 ep, lr 3e-4": (5, 3e-4),
    "20 ep, lr 3e-5": (20, 3e-5),
}
SHOTS = (16, 32, 48)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=3, help="random k-record draws per workload and k")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    workloads = load_workloads(24, exclude=HELD_OUT)
    extractor = aiop.PerStoreFeature()
    graphs = {w.name: aiop.encode(extractor, w.context, w.candidates) for w in tqdm(workloads, desc="graphs")}
    srcc: dict[str, dict[int, list[float]]] = {r: {k: [] for k in SHOTS} for r in RECIPES}
    for held in tqdm(workloads, desc="validation workloads"):
        pre = aiop.pretrain([(graphs[w.name], w.costs) for w in workloads if w is not held], epochs=30, seed=args.seed)
        gs = graphs[held.name]
        for k in SHOTS:
            for draw in range(args.draws):
                perm = np.random.default_rng([args.seed, k, draw]).permutation(len(gs))
                train_idx, test_idx = perm[:k], perm[k:]
                ok = held.costs[test_idx] < aiop.FAILED_COST
                for name, recipe in RECIPES.items():
                    model = copy.deepcopy(pre)
                    if recipe is not None:
                        aiop.train(model, [([gs[i] for i in train_idx], held.costs[train_idx])],
                                   epochs=recipe[0], lr=recipe[1], seed=args.seed + k)
                    score = aiop.score(model, [gs[i] for i in test_idx])
                    srcc[name][k].append(float(spearmanr(score[ok], -held.costs[test_idx][ok]).correlation))
    names = [w.name for w in workloads]
    lines = [
        "# Online fine-tuning recipe of the AIO-P MetaSchedule cost model (validation)",
        "",
        f"Command: `python benchmarks/ms_finetune_validation.py {' '.join(argv if argv is not None else sys.argv[1:])}`."
        f" Leave-one-workload-out over {len(names)} workloads (all recorded ones except ms_online's held-out"
        f" {', '.join(HELD_OUT)}); {args.draws} draws of k records each. Mean SRCC on the rest of the workload:",
        "",
        "| recipe | " + " | ".join(f"k={k}" for k in SHOTS) + " | mean |",
        "|---|" + "---|" * (len(SHOTS) + 1),
    ]
    for name, per in srcc.items():
        means = [float(np.mean(per[k])) for k in SHOTS]
        lines.append(f"| {name} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {np.mean(means):.3f} |")
    best = max((n for n in RECIPES if RECIPES[n]), key=lambda n: np.mean([np.mean(srcc[n][k]) for k in SHOTS]))
    lines += ["", f"Best mean over k: {best} (AIOPCostModel's default: "
              f"{aiop.FINETUNE_EPOCHS} ep, lr {aiop.FINETUNE_LR:g})."]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ms_finetune_validation.json").write_text(json.dumps({"workloads": names, "shots": SHOTS, "srcc": srcc}, indent=1))
    (RESULTS / "ms_finetune_validation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
