"""Our fusion plans vs TVM's FuseOps grouping, per zoo network at 128 KB and 256 KB (LBDF).

DRAM (C++ cost model) of: TVM's FuseOps groups, with the groups that overflow the buffer
split by the random splitter (how many is reported); ours = the better of local search
(budget 2000) and the interval DP. Compile time of ``tvm.compile`` (llvm) with TVM's default
CPU pipeline (FuseOps) and with the "tvm_fusion" pipeline given our plan (search excluded),
and the time of our two passes alone (PlanFusion with a given plan + FuseByPlan).
Results are rewritten after every network, so an interrupt keeps what is done::

    python benchmarks/vs_tvm_fuseops.py [--nets resnet18,resnet50] [--compile-nets resnet50]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import tvm
from tqdm import tqdm
from tvm.relax.backend.cpu_generic import pipeline as cpu_generic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package

from tvm_fusion import zoo  # noqa: E402
from tvm_fusion.cost import CostModel  # noqa: E402
from tvm_fusion.graph import from_torch  # noqa: E402
from tvm_fusion.hardware import Accelerator  # noqa: E402
from tvm_fusion.pipeline import PlanFusion, tvm_fusion_pipeline  # noqa: E402
from tvm_fusion.relax_pass import FuseByPlan, fuseops_plan, tvm_fuseops_groups  # noqa: E402
from tvm_fusion.search import search  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PRESETS = ("lbdf-128kb", "lbdf-256kb")
TARGET = "llvm"
MB = 1e6


def best_plan(graph, accel, budget: int, seed: int):
    """The lower-DRAM plan of local search and the interval DP, with both numbers."""
    ls = search(graph, accel, "ls", budget, seed, progress=False)
    dp = search(graph, accel, "dp", progress=False)
    best = min((ls, dp), key=lambda r: r.totals.dram_bytes)
    return best, ls.totals.dram_bytes, dp.totals.dram_bytes, ls.seconds + dp.seconds


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def compile_times(mod, accel, plan) -> dict:
    """Seconds of tvm.compile with TVM's CPU pipeline and with ours; of our passes alone."""
    target = tvm.target.Target(TARGET)
    _, t_tvm = timed(lambda: tvm.compile(mod, target=target,
                                         relax_pipeline=cpu_generic.get_default_pipeline(target)))
    pipe = tvm_fusion_pipeline(accel, plan=plan)
    _, t_ours = timed(lambda: tvm.compile(mod, target=target, relax_pipeline=pipe))
    with target:
        _, t_pass = timed(lambda: FuseByPlan()(PlanFusion(accel, plan=plan)(mod)))
    return {"compile_tvm_s": round(t_tvm, 2), "compile_ours_s": round(t_ours, 2),
            "our_passes_s": round(t_pass, 3),
            "our_passes_pct_of_tvm_compile": round(100 * t_pass / t_tvm, 2)}


def write(rows: list[dict], meta: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = ["# Ours vs TVM FuseOps grouping", "",
             f"`python benchmarks/vs_tvm_fuseops.py {meta['argv']}`. DRAM in MB (10^6 bytes), "
             "int8, LBDF. TVM = FuseOps' groups with overflowing groups split by the random "
             "splitter (`split` = how many). Ours = better of local search (budget "
             f"{meta['budget']}) and interval DP. Input sizes: {meta['input_sizes']}.", "",
             "| net | accelerator | ops | no fusion | TVM FuseOps | split | ours | ours/TVM | "
             "lower bound | search s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['net']} | {r['accelerator']} | {r['ops']} | {r['no_fusion_mb']:.3f} | "
                     f"{r['tvm_mb']:.3f} | {r['tvm_groups_split']} | {r['ours_mb']:.3f} | "
                     f"{r['ours_mb'] / r['tvm_mb']:.3f} | {r['lower_bound_mb']:.3f} | "
                     f"{r['search_s']:.1f} |")
    timing = [r for r in rows if "compile_tvm_s" in r]
    if timing:
        lines += ["", "Compile time (llvm, shared 2-core machine; our passes = PlanFusion with a "
                  "given plan + FuseByPlan, search excluded):", "",
                  "| net | accelerator | tvm.compile, FuseOps s | tvm.compile, ours s | "
                  "our passes s | our passes % of tvm.compile |", "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {r['net']} | {r['accelerator']} | {r['compile_tvm_s']:.1f} | "
                  f"{r['compile_ours_s']:.1f} | {r['our_passes_s']:.2f} | "
                  f"{r['our_passes_pct_of_tvm_compile']:.1f} |" for r in timing]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", default=",".join(zoo.NAMES), help="comma-separated zoo names")
    parser.add_argument("--input-size", type=int, default=None,
                        help="input H=W for every net (default: each net's own size)")
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile-nets", default="resnet50",
                        help="nets whose compile time is measured (at 256 KB), comma-separated")
    parser.add_argument("--out", type=Path, default=RESULTS / "vs_tvm_fuseops")
    args = parser.parse_args()
    torch.set_num_threads(1)
    nets = [n for n in args.nets.split(",") if n]
    compile_nets = set(filter(None, args.compile_nets.split(",")))
    meta = {"argv": " ".join(f"--{k.replace('_', '-')} {v}" for k, v in
                             (("nets", args.nets), ("budget", args.budget), ("seed", args.seed),
                              ("compile_nets", args.compile_nets)) if v != ""),
            "budget": args.budget, "input_sizes": {}, "target": TARGET}
    if args.input_size is not None:
        meta["argv"] += f" --input-size {args.input_size}"
    rows: list[dict] = []
    for name in tqdm(nets, desc="nets"):
        net, x = zoo.build(name, args.input_size, seed=args.seed)
        meta["input_sizes"][name] = list(x.shape[2:])
        graph, mod = from_torch(net, x, name=name, return_module=True)
        tvm_groups = tvm_fuseops_groups(mod)
        for preset in PRESETS:
            accel = Accelerator.preset(preset)
            cost_model = CostModel(graph, accel)
            tvm_plan, num_split = fuseops_plan(graph, mod, accel, seed=args.seed, groups=tvm_groups)
            best, ls_dram, dp_dram, search_s = best_plan(graph, accel, args.budget, args.seed)
            row = {"net": name, "accelerator": preset, "ops": len(graph.nodes),
                   "no_fusion_mb": cost_model.no_fusion_dram() / MB,
                   "tvm_mb": tvm_plan.totals(cost_model).dram_bytes / MB,
                   "tvm_groups": len(tvm_plan), "tvm_groups_split": num_split,
                   "ours_mb": best.totals.dram_bytes / MB, "ours_algorithm": best.algorithm,
                   "ours_groups": len(best.plan), "ls_mb": ls_dram / MB, "dp_mb": dp_dram / MB,
                   "lower_bound_mb": cost_model.lower_bound_dram() / MB,
                   "search_s": round(search_s, 2)}
            if name in compile_nets and preset == "lbdf-256kb":
                row.update(compile_times(mod, accel, best.plan))
            rows.append(row)
            tqdm.write(f"{name} {preset}: TVM {row['tvm_mb']:.3f} MB ({num_split} split), "
                       f"ours {row['ours_mb']:.3f} MB ({best.algorithm})"
                       + (f", compile TVM {row['compile_tvm_s']} s / ours {row['compile_ours_s']}"
                          f" s, our passes {row['our_passes_s']} s" if "compile_tvm_s" in row else ""))
            write(rows, meta, args.out)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
