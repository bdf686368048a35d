"""Tutorial: fuse a torch ResNet-18 for a 256 KB LBDF accelerator, compile it with TVM, run it.

Steps: import the network into Relax and its OpGraph; search a fusion plan with the C++ cost
model; compare the plan's DRAM traffic with no fusion, TVM's own FuseOps grouping (made legal
for the buffer by the random splitter) and the compulsory-traffic lower bound; compile with
the registered "tvm_fusion" Relax pipeline (FuseOps replaced by our plan); check the result
against torch; draw the plan (one colour per fusion group)::

    python tutorials/fuse_resnet.py [--input-size 224] [--budget 2000] [--out tutorials/out]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import tvm
from tvm import relax

import tvm_fusion.pipeline  # noqa: F401  (registers the "tvm_fusion" Relax pipeline)
from tvm_fusion import zoo
from tvm_fusion.cost import CostModel
from tvm_fusion.graph import OpGraph, from_torch
from tvm_fusion.hardware import Accelerator
from tvm_fusion.plan import Plan
from tvm_fusion.relax_pass import fuseops_plan
from tvm_fusion.search import search


def plot_plan(graph: OpGraph, plan: Plan, path: Path, title: str) -> list[Path]:
    """Draw the OpGraph left to right by depth, nodes coloured by fusion group; PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depth = [0] * len(graph.nodes)
    for node in graph.nodes:  # nodes are in topological order
        depth[node.id] = 1 + max((depth[p] for p in graph.preds(node.id)), default=-1)
    row: dict[int, int] = {}
    ypos = []
    for node in graph.nodes:
        ypos.append(row.get(depth[node.id], 0))
        row[depth[node.id]] = ypos[-1] + 1
    group_of = plan.group_of()
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(max(8, 0.28 * max(depth) + 2), 3.5))
    for p, c in graph.edges:  # edges inside a group thick in its colour, cut edges dashed grey
        same = group_of[p] == group_of[c]
        ax.plot([depth[p], depth[c]], [ypos[p], ypos[c]], zorder=1,
                color=cmap(group_of[p] % 20) if same else "0.6", lw=3 if same else 0.7,
                ls="-" if same else "--")
    ax.scatter(depth, ypos, s=60, zorder=2, edgecolors="k", linewidths=0.4,
               c=[cmap(group_of[v] % 20) for v in range(len(graph.nodes))])
    for node in graph.nodes:
        ax.annotate(node.kind, (depth[node.id], ypos[node.id]), fontsize=4, rotation=60,
                    xytext=(2, 4), textcoords="offset points")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("depth (longest path from the input)")
    ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    outs = [path.with_suffix(".png"), path.with_suffix(".svg")]
    for out in outs:
        fig.savefig(out, dpi=200)
    plt.close(fig)
    return outs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--net", default="resnet18", choices=zoo.NAMES)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--accelerator", default="lbdf-256kb", choices=Accelerator.PRESETS)
    parser.add_argument("--algorithm", default="ls")
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = parser.parse_args()
    torch.set_num_threads(1)

    # 1. torch -> canonical Relax module + OpGraph (node names = Relax binding names)
    net, x = zoo.build(args.net, args.input_size, seed=args.seed)
    graph, mod = from_torch(net, x, name=args.net, return_module=True)
    accel = Accelerator.preset(args.accelerator)
    print(f"{args.net} {tuple(x.shape)}: {len(graph.nodes)} ops; accelerator: {accel}")

    # 2. search a plan; evaluate TVM's FuseOps grouping with the same cost model
    result = search(graph, accel, args.algorithm, args.budget, args.seed)
    tvm_plan, num_split = fuseops_plan(graph, mod, accel, seed=args.seed)
    cost_model = CostModel(graph, accel)
    tvm_totals = tvm_plan.totals(cost_model)
    rows = [("no fusion", cost_model.no_fusion_dram(), len(graph.nodes)),
            (f"TVM FuseOps ({num_split} groups split to fit)", tvm_totals.dram_bytes,
             tvm_totals.num_groups),
            (f"ours ({result.algorithm}, {result.evaluated_plans} plans)",
             result.totals.dram_bytes, result.totals.num_groups),
            ("lower bound", cost_model.lower_bound_dram(), None)]
    print(f"\n{'plan':<44}{'DRAM MB':>10}{'groups':>8}")
    for label, dram, groups in rows:
        print(f"{label:<44}{dram / 1e6:>10.3f}{'' if groups is None else groups:>8}")

    # 3. compile with the plan (no second search) and check against torch
    pipe = relax.get_pipeline("tvm_fusion", accelerator=accel, plan=result.plan)
    t0 = time.perf_counter()
    ex = tvm.compile(mod, target="llvm", relax_pipeline=pipe)
    print(f"\ncompiled in {time.perf_counter() - t0:.1f} s")
    vm = relax.VirtualMachine(ex, tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(x.numpy()))
    while not hasattr(out, "numpy"):
        out = out[0]
    with torch.no_grad():
        ref = net(x).numpy()
    err = float(np.abs(out.numpy() - ref).max())
    print(f"max |TVM - torch| = {err:.2e}")
    assert np.allclose(out.numpy(), ref, rtol=1e-3, atol=1e-3), "fused module disagrees with torch"

    # 4. draw both plans
    for plan, tag in ((result.plan, "ours"), (tvm_plan, "tvm_fuseops")):
        files = plot_plan(graph, plan, args.out / f"{args.net}_{args.accelerator}_{tag}",
                          f"{args.net}, {accel}: {tag} ({len(plan)} groups, "
                          f"{plan.totals(cost_model).dram_bytes / 1e6:.2f} MB DRAM)")
        print("wrote", ", ".join(str(f) for f in files))


if __name__ == "__main__":
    main()
