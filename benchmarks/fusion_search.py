"""Fusion-plan search benchmark: DRAM traffic of RS, LS, NSGA-II and the interval DP on the
paper's networks (random splitter, the paper's baseline).

Tables:
  a  LBDF, 256KB buffer, 5000 plans: efficientnet_b3, resnet152, deeplabv3plus_mobilenetv3
  b  LBDF and BRR, 128KB buffer, 2000 plans: mobilenet_v2, vgg16, resnet50, resnet18, squeezenet1_0

RS/LS/NSGA-II: mean ± sample std over seeds 0..2 (DRAM MB, 1 MB = 2^20 B); every run gets a
fresh CostModel so its time includes its own cost evaluations. best/LB = the best plan of
any method over the compulsory-traffic lower bound. Rows are appended to
benchmarks/results/fusion_search.json as they finish; rows already there are skipped
(delete the file or pass --redo to recompute; rows computed with another version of the C++
cost model (cpp/cost_model.cc) are recomputed and replace the old ones). --quick: one seed, budget 200.
--dp-zoo times the interval DP alone on every zoo network (LBDF and BRR, 128KB and 256KB)
and writes benchmarks/results/fusion_search.dp.json/.md.

    python benchmarks/fusion_search.py [--quick] [--nets resnet18,vgg16] [--tables a,b]
    python benchmarks/fusion_search.py --dp-zoo
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tvm_fusion import cost, zoo  # noqa: E402
from tvm_fusion.cost import CostModel  # noqa: E402
from tvm_fusion.hardware import Accelerator, parse_size  # noqa: E402
from tvm_fusion.search import search  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TABLES = {
    "a": [("lbdf", "256KB", 5000, ["efficientnet_b3", "resnet152", "deeplabv3plus_mobilenetv3"])],
    "b": [(f, "128KB", 2000, ["mobilenet_v2", "vgg16", "resnet50", "resnet18", "squeezenet1_0"])
          for f in ("lbdf", "brr")],
}
STOCHASTIC = (("rs", "RS"), ("ls", "LS"), ("nsga2", "NSGA-II"))
MB = 2**20


#: Rows are keyed by the cost-model version too, so a changed cost model recomputes them.
COST_LIB = cost.cost_model_version()


def row_key(table, net, fusion, buffer, budget, seeds) -> str:
    return f"{table}|{net}|{fusion}|{buffer}|{budget}|{','.join(map(str, seeds))}|{COST_LIB}"


def run_row(table, net, fusion, buffer, budget, seeds) -> dict:
    graph = zoo.opgraph(net)
    accel = Accelerator(parse_size(buffer), fusion)
    row = {"key": row_key(table, net, fusion, buffer, budget, seeds), "table": table, "net": net,
           "ops": len(graph), "fusion": fusion, "buffer": buffer, "budget": budget, "seeds": list(seeds)}
    best = None
    for algo, label in STOCHASTIC:
        drams, secs, groups = [], [], []
        for seed in seeds:
            r = search(graph, accel, algo, budget, seed, progress=False, cost_model=CostModel(graph, accel))
            if r.evaluated_plans > budget or not r.totals.legal:
                raise RuntimeError(f"{algo} on {net}: {r.evaluated_plans} plans for budget {budget}, "
                                   f"illegal groups {r.totals.illegal_groups[:3]}")
            drams.append(r.totals.dram_bytes / MB)
            secs.append(r.seconds)
            groups.append(r.totals.num_groups)
            best = r.totals.dram_bytes if best is None else min(best, r.totals.dram_bytes)
        row[label] = {"mean": statistics.fmean(drams), "std": statistics.stdev(drams) if len(drams) > 1 else 0.0,
                      "runs": drams, "seconds": statistics.fmean(secs), "groups": statistics.fmean(groups)}
    dp = search(graph, accel, "dp", progress=False, cost_model=CostModel(graph, accel))
    row["DP"] = {"mean": dp.totals.dram_bytes / MB, "seconds": dp.seconds, "groups": dp.totals.num_groups}
    best = min(best, dp.totals.dram_bytes)
    row["no_fusion"] = dp.totals.no_fusion_bytes / MB
    row["lower_bound"] = dp.totals.lower_bound_bytes / MB
    row["best_over_lb"] = best / dp.totals.lower_bound_bytes
    return row


def markdown(rows: list[dict]) -> str:
    head = ("| table | net | ops | fusion | buffer | plans | seeds | RS | LS | NSGA-II | DP | no fusion | "
            "lower bound | best/LB | time RS/LS/NSGA-II/DP (s) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [r["table"], r["net"], str(r["ops"]), r["fusion"].upper(), r["buffer"], str(r["budget"]),
                 str(len(r["seeds"]))]
        cells += [f"{r[k]['mean']:.3f} ± {r[k]['std']:.3f}" for _, k in STOCHASTIC]
        cells += [f"{r['DP']['mean']:.3f}", f"{r['no_fusion']:.3f}", f"{r['lower_bound']:.3f}",
                  f"{r['best_over_lb']:.3f}",
                  "/".join(f"{r[k]['seconds']:.1f}" for k in ("RS", "LS", "NSGA-II", "DP"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def save(rows: list[dict], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"unit": "DRAM MB (2^20 bytes)", "rows": rows}, indent=1))
    os.replace(tmp, path)
    md = path.with_suffix(".md")
    md.write_text("# Fusion search benchmark (random splitter)\n\nDRAM traffic in MB (2^20 B); RS/LS/NSGA-II "
                  "mean ± sample std over the listed seeds; times are per run. Cost-model source "
                  f"{COST_LIB}. Produced by `benchmarks/fusion_search.py`.\n\n"
                  + markdown(rows))


def dp_zoo(names) -> int:
    """Interval-DP wall time on each zoo net (the DP's target is < 5 s per net)."""
    rows = []
    for name in tqdm(names, desc="dp", unit="net"):
        graph = zoo.opgraph(name)
        for fusion in ("lbdf", "brr"):
            for buffer in ("128KB", "256KB"):
                accel = Accelerator(parse_size(buffer), fusion)
                r = search(graph, accel, "dp", progress=False, cost_model=CostModel(graph, accel))
                rows.append({"net": name, "ops": len(graph), "fusion": fusion, "buffer": buffer,
                             "dram_mb": r.totals.dram_bytes / MB, "seconds": r.seconds})
    lines = ["| net | ops | fusion | buffer | DP DRAM (MB) | DP time (s) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['net']} | {r['ops']} | {r['fusion'].upper()} | {r['buffer']} | {r['dram_mb']:.3f} | "
              f"{r['seconds']:.2f} |" for r in rows]
    (RESULTS / "fusion_search.dp.json").write_text(json.dumps({"cost_lib": COST_LIB, "rows": rows}, indent=1))
    (RESULTS / "fusion_search.dp.md").write_text("# Interval DP time per zoo network\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one seed and budget 200 (rows keyed separately)")
    ap.add_argument("--budget", type=int, help="override the plan budget of every row")
    ap.add_argument("--nets", help="comma-separated subset of networks")
    ap.add_argument("--tables", default="a,b", help="comma-separated tables to run (a, b)")
    ap.add_argument("--redo", action="store_true", help="recompute rows already in the results file")
    ap.add_argument("--output", type=Path, default=RESULTS / "fusion_search.json")
    ap.add_argument("--dp-zoo", action="store_true", help="only time the interval DP on every zoo net")
    args = ap.parse_args(argv)
    seeds = (0,) if args.quick else (0, 1, 2)
    nets = set(args.nets.split(",")) if args.nets else None
    unknown = (nets or set()) - set(zoo.NAMES)
    if unknown:
        ap.error(f"unknown network(s) {sorted(unknown)}; zoo has {', '.join(zoo.NAMES)}")
    if args.dp_zoo:
        return dp_zoo([n for n in zoo.NAMES if nets is None or n in nets])
    todo = []
    for table in args.tables.split(","):
        if table not in TABLES:
            ap.error(f"unknown table {table!r}; choose from {', '.join(TABLES)}")
        for fusion, buffer, budget, names in TABLES[table]:
            budget = args.budget or (200 if args.quick else budget)
            todo += [(table, n, fusion, buffer, budget, seeds) for n in names if nets is None or n in nets]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(args.output.read_text())["rows"] if args.output.exists() else []
    done = {r["key"] for r in rows}
    for spec in tqdm(todo, desc="rows", unit="row"):
        key = row_key(*spec)
        if key in done and not args.redo:
            continue
        t0 = time.perf_counter()
        row = run_row(*spec)
        row["wall_seconds"] = time.perf_counter() - t0
        stale = key.rsplit("|", 1)[0]  # same row with another cost-model version
        rows = [r for r in rows if r["key"].rsplit("|", 1)[0] != stale] + [row]
        save(rows, args.output)
        tqdm.write(markdown([row]).splitlines()[-1])
    print(markdown([r for r in rows if r["key"] in {row_key(*s) for s in todo}]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
