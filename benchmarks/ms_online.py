"""Online MetaSchedule tuning with the AIO-P cost model vs TVM's default XGBModel.

Part (b) of issue 7. Four workloads of benchmarks/collect_ms_records.py are held out: the
AIO-P GNN is pre-trained on the records of all the other workloads only (saved to
results/ms_online_pretrained.pt). Each held-out workload is then tuned with
``ms.tune_tir`` (target {"kind": "llvm", "num-cores": 2}, LocalBuilder with
predictor/ms_build.py's f_build) for --trials trials, 3 seeds, with

* ``aiop``: AIOPCostModel loaded from that file, with its defaults: the pre-trained GNN blended
  with an online ranker that ``update`` fits on the run's measured records;
* ``xgb``: ``cost_model="xgb"``, TVM's default XGBModel (random scores until it has 100
  measured samples: its default ``num_warmup_samples``; so within 64 trials it never ranks);
* ``xgb_nowarmup``: the same XGBModel with ``num_warmup_samples=0``, ranking from its first
  measured batch: the stronger baseline of the two.

Both use the same search strategy and seed. For each budget in --budgets the tables use,
per seed, the shortest run reaching it; a budget below a run's --trials is read from its
first measured records (the search is sequential, so a 128-trial run is a 64-trial run
continued: same seed, same batches of --trials-per-iter).

One JSON row per run is appended to results/ms_online_runs.jsonl; a rerun skips the runs
already there (resumable). Latencies measured during tuning are noisy on a shared CPU,
so at the end the best schedule of every run (per budget) is rebuilt and re-measured
with the same runner settings, interleaved across runs, --repeats times: the tables
report the tuning-time best and the re-measured min and median.

    nice -n 5 python benchmarks/ms_online.py --until 01:05
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling benchmark scripts

import tvm  # noqa: E402
import tvm.s_tir.meta_schedule as ms  # noqa: E402
from tvm.s_tir import Schedule  # noqa: E402
from tvm.s_tir.meta_schedule.arg_info import ArgInfo  # noqa: E402
from tvm.s_tir.meta_schedule.builder import BuilderInput  # noqa: E402
from tvm.s_tir.meta_schedule.runner import RunnerInput  # noqa: E402
from tvm.s_tir.schedule import Trace  # noqa: E402

from collect_ms_records import BY_NAME, TARGET, parse_until  # noqa: E402
from ms_cost_model import RESULTS, load_workloads  # noqa: E402
from predictor import metaschedule as aiop  # noqa: E402
from predictor.ms_build import make_builder, make_runner, skip_tensor_intrin_import  # noqa: E402

HELD_OUT = ("r50_l3_3x3", "mv2_dw_14", "mv2_classifier", "effb0_head")
RUNS = RESULTS / "ms_online_runs.jsonl"
#: the cost models AIO-P is compared with (see the module docstring)
BASELINES = ("xgb", "xgb_nowarmup")
PRETRAINED = RESULTS / "ms_online_pretrained.pt"


def pretrain_held_out(held_out: tuple[str, ...], epochs: int, seed: int) -> None:
    """Pre-train the AIO-P GNN on every workload except ``held_out`` and save it."""
    workloads = load_workloads(24, exclude=held_out)
    extractor = aiop.PerStoreFeature()
    groups = [(aiop.encode(extractor, w.context, w.candidates), w.costs) for w in tqdm(workloads, desc="encode")]
    model = aiop.AIOPCostModel(seed=seed)
    model.model = aiop.pretrain(groups, epochs=epochs, seed=seed, progress=True)
    model.save(str(PRETRAINED))
    meta = {"held_out": list(held_out), "trained_on": {w.name: len(w.candidates) for w in workloads}, "epochs": epochs, "seed": seed}
    PRETRAINED.with_suffix(".json").write_text(json.dumps(meta, indent=1))


def records_in_order(record_file: Path) -> list[tuple[list, float]]:
    """(trace JSON, median seconds or FAILED_COST) of each record, in measurement order."""
    out = []
    for line in record_file.read_text().splitlines():
        if line.strip():
            trace, secs = json.loads(line)[1][:2]
            ok = secs and max(secs) < aiop.FAILED_COST
            out.append((trace, float(np.median(secs)) if ok else aiop.FAILED_COST))
    return out


def model_recipe(model: str) -> dict | None:
    """What a run's result depends on besides its settings: AIO-P's online recipe (runs made
    with another one are stale and rerun; XGBModel's runs never go stale)."""
    return aiop.ONLINE_RECIPE if model == "aiop" else None


def tune(name: str, model: str, trials: int, seed: int, args) -> dict:
    """One tuning run; its best record within each budget of --budgets (<= trials)."""
    func = BY_NAME[name].prim_func()
    strategy = ms.search_strategy.EvolutionarySearch(population_size=args.population, genetic_num_iters=args.genetic_iters)
    if model == "aiop":
        cost_model = aiop.load_cost_model(PRETRAINED, seed=seed)
    elif model == "xgb_nowarmup":
        cost_model = ms.cost_model.XGBModel(num_warmup_samples=0, num_tuning_cores=TARGET["num-cores"], tree_method="auto")
    else:
        cost_model = "xgb"
    with tempfile.TemporaryDirectory(prefix=f"ms_online_{name}_") as work_dir, skip_tensor_intrin_import():
        db = ms.database.JSONDatabase(path_workload=f"{work_dir}/wl.json", path_tuning_record=f"{work_dir}/rec.json")
        t0 = time.perf_counter()
        ms.tune_tir(
            func,
            TARGET,
            work_dir,
            max_trials_global=trials,
            num_trials_per_iter=args.trials_per_iter,
            builder=make_builder(),
            runner=make_runner(),
            database=db,
            cost_model=cost_model,
            strategy=strategy,
            seed=seed,
        )
        seconds = time.perf_counter() - t0
        records = records_in_order(Path(work_dir) / "rec.json")
    costs = np.array([c for _, c in records])
    row = {"workload": name, "model": model, "trials": trials, "seed": seed, "measured": len(records), "tune_seconds": seconds,
           "recipe": model_recipe(model)}
    row["best"] = {}
    for budget in (b for b in args.budgets if b <= trials):
        if len(costs[:budget]) and costs[:budget].min() < aiop.FAILED_COST:
            i = int(np.argmin(costs[:budget]))
            row["best"][str(budget)] = {"seconds": float(costs[i]), "index": i, "trace": records[i][0]}
    row["curve"] = np.minimum.accumulate(costs).tolist() if len(costs) else []
    return row


def remeasure(rows: list[dict], repeats: int) -> dict[tuple[str, int, str], list[float]]:
    """Rebuild the best schedule of every (run, budget) and measure it ``repeats`` times
    with the tuning runner's settings, interleaved (round r measures every schedule once).
    Keys: (workload, run id, budget)."""
    items = []
    for r in rows:
        for budget, best in r["best"].items():
            items.append(((r["workload"], f"{r['model']}/t{r['trials']}/s{r['seed']}", int(budget)), best["trace"]))
    builder, runner = make_builder(), make_runner()
    target = tvm.target.Target(TARGET)
    inputs, arg_infos = [], []
    for (name, _, _), trace in items:
        func = BY_NAME[name].prim_func()
        sch = Schedule(tvm.IRModule({"main": func}))
        Trace.apply_json_to_schedule(trace, sch)
        inputs.append(BuilderInput(sch.mod, target))
        arg_infos.append(ArgInfo.from_prim_func(func))
    print(f"rebuilding {len(inputs)} best schedules", flush=True)
    artifacts = []
    for (name, run, budget), res, info in zip((k for k, _ in items), builder.build(inputs), arg_infos):
        if res.error_msg:
            raise RuntimeError(f"re-measure: best schedule of {name} {run} @{budget} no longer builds: {res.error_msg[:300]}")
        artifacts.append((res.artifact_path, info))
    secs: dict = {key: [] for key, _ in items}
    for _ in tqdm(range(repeats), desc="re-measure rounds"):
        futures = runner.run([RunnerInput(path, "cpu", info) for path, info in artifacts])
        for (key, _), fut in zip(items, futures):
            res = fut.result()
            if res.error_msg is None:  # a failed round (timeout under load) is left out and logged
                secs[key].append(float(np.median([float(s) for s in res.run_secs])))
            else:
                print(f"re-measure of {key} failed: {res.error_msg.splitlines()[-1][:200]}", flush=True)
    for path, _ in artifacts:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    return secs


def _mean(values: list) -> float | None:
    """Mean of the non-None values (None if there are none)."""
    ok = [v for v in values if v is not None]
    return float(np.mean(ok)) if ok else None


def write_tables(rows: list[dict], secs: dict, args, argv: list[str]) -> None:
    """results/ms_online.json and .md: per workload and budget, mean over seeds of the
    best latency (tuning-time and re-measured min / median) per cost model."""
    budgets = sorted({int(b) for r in rows for b in r["best"]})
    models = sorted({r["model"] for r in rows})
    baselines = [m for m in BASELINES if m in models]
    table = []
    verdict = {x: {"remeasured_median": {}, "remeasured_min": {}, "tuning_time": {}} for x in baselines}
    for name in args.workloads:
        for b in budgets:
            # per model and seed, the shortest run reaching budget b (a 64-trial run rather
            # than a 128-trial prefix); only seeds run by every model are compared (paired)
            by_seed: dict[str, dict[int, dict]] = {m: {} for m in models}
            for r in rows:
                if r["workload"] == name and str(b) in r["best"]:
                    old = by_seed[r["model"]].get(r["seed"])
                    if old is None or r["trials"] < old["trials"]:
                        by_seed[r["model"]][r["seed"]] = r
            seeds = sorted(set.intersection(*(set(v) for v in by_seed.values())))
            entry = {"workload": name, "budget": b, "seeds": seeds, "unpaired": {m: sorted(set(v) - set(seeds)) for m, v in by_seed.items()}}
            for m in models:
                runs = [by_seed[m][sd] for sd in seeds]
                keys = [(name, f"{m}/t{r['trials']}/s{r['seed']}", b) for r in runs]
                entry[m] = {
                    "tuning_ms": [1e3 * r["best"][str(b)]["seconds"] for r in runs],
                    "remeasured_min_ms": [1e3 * min(secs[k]) if secs.get(k) else None for k in keys],
                    "remeasured_median_ms": [1e3 * float(np.median(secs[k])) if secs.get(k) else None for k in keys],
                }
            table.append(entry)
            for base in baselines if seeds and "aiop" in models else ():
                for kind in verdict[base]:
                    field = "tuning_ms" if kind == "tuning_time" else f"{kind}_ms"
                    a, x = (_mean(entry[m][field]) for m in ("aiop", base))
                    if a is not None and x is not None:
                        verdict[base][kind].setdefault(b, {})[name] = bool(a <= x)
    out = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "held_out": list(args.workloads), "table": table, "aiop_equal_or_better": verdict,
           "remeasured_seconds": {"|".join(map(str, k)): v for k, v in secs.items()}, "runs": rows}
    (RESULTS / "ms_online.json").write_text(json.dumps(out, indent=1))

    def fmt(v: list) -> str:
        ok = [x for x in v if x is not None]
        failed = f", {len(v) - len(ok)} failed" if len(ok) < len(v) else ""
        return f"{np.mean(ok):.3f} ± {np.std(ok):.3f} (n={len(ok)}{failed})" if ok else "-"

    lines = [
        "# Online tuning: AIO-P cost model vs TVM's XGBModel (held-out workloads)",
        "",
        "xgb = TVM's default XGBModel (random scores until 100 measured samples); xgb_nowarmup = the same with"
        " num_warmup_samples=0.",
        "",
        f"Command: `nice -n 5 python benchmarks/ms_online.py {' '.join(argv)}`. Target {json.dumps(TARGET)};",
        f"EvolutionarySearch(population {args.population}, genetic iters {args.genetic_iters}), {args.trials_per_iter} trials per iteration;",
        "AIO-P pre-trained without these workloads (results/ms_online_pretrained.json), not fine-tuned, blended in predict()"
        f" with an XGBoost ranker that update() fits on the run's records (weight n/(n+{aiop.BLEND_HALF:g}) after n records;"
        " chosen in ms_finetune_validation.md). Best latency in ms, mean ± std over",
        f"seeds. Re-measured: the best schedule of each run rebuilt and run {args.repeats} times (same runner settings,",
        "interleaved over all runs); min and median of those runs per schedule, then mean over seeds.",
        "",
        f"Runs: {len(rows)} from {args.runs_file.name} (trials per run: {sorted({r['trials'] for r in rows})}; tuning seconds per run"
        f" {min(r['tune_seconds'] for r in rows):.0f}-{max(r['tune_seconds'] for r in rows):.0f} under shared load).",
        "",
        "| workload | trials | model | tuning-time best | re-measured min | re-measured median |",
        "|---|---|---|---|---|---|",
    ]
    for e in table:
        for m in models:
            v = e[m]
            lines.append(f"| {e['workload']} | {e['budget']} | {m} | {fmt(v['tuning_ms'])} | {fmt(v['remeasured_min_ms'])} | {fmt(v['remeasured_median_ms'])} |")
    lines.append("")
    for base, per_kind in verdict.items():
        for kind, per_budget in per_kind.items():
            for b, per in per_budget.items():
                wins = [n for n, ok in per.items() if ok]
                lines.append(f"- vs {base}, {b} trials, {kind.replace('_', ' ')}: AIO-P equal or better (mean over paired seeds) on"
                             f" {len(wins)}/{len(per)} workloads: {', '.join(wins) or 'none'}.")
        for b in budgets:
            pairs = [(a, x) for e in table if e["budget"] == b
                     for a, x in zip(e["aiop"]["remeasured_median_ms"], e[base]["remeasured_median_ms"])
                     if a is not None and x is not None]
            if pairs:
                lines.append(f"- vs {base}, {b} trials: AIO-P equal or better in {sum(a <= x for a, x in pairs)}/{len(pairs)}"
                             " (workload, seed) pairs (re-measured median).")
    for e in table:
        missing = {m: v for m, v in e["unpaired"].items() if v}
        if missing:
            lines.append(f"- {e['workload']} @{e['budget']}: seeds run by one model only, left out of the comparison: {missing}.")
    (RESULTS / "ms_online.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", nargs="*", default=list(HELD_OUT))
    ap.add_argument("--models", nargs="*", default=["aiop", *BASELINES], choices=["aiop", *BASELINES])
    ap.add_argument("--trials", type=int, default=128, help="trials per run (budgets below it are read from its prefix)")
    ap.add_argument("--budgets", type=int, nargs="*", default=[64, 128])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--trials-per-iter", type=int, default=16)
    ap.add_argument("--population", type=int, default=256)
    ap.add_argument("--genetic-iters", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30, help="AIO-P pre-training epochs")
    ap.add_argument("--repeats", type=int, default=5, help="re-measurement rounds")
    ap.add_argument("--until", default=None, help="HH:MM UTC: start no run after this time")
    ap.add_argument("--runs-file", type=Path, default=RUNS, help="JSONL of finished runs (resume from it)")
    ap.add_argument("--tables-only", action="store_true", help="skip tuning; re-measure and write the tables")
    args = ap.parse_args(argv)
    unknown = [n for n in args.workloads if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; known: {sorted(BY_NAME)}")
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    logging.getLogger("tvm.s_tir.meta_schedule").setLevel(logging.WARNING)
    RESULTS.mkdir(exist_ok=True)
    meta = PRETRAINED.with_suffix(".json")
    if not PRETRAINED.is_file() or not meta.is_file() or sorted(json.loads(meta.read_text())["held_out"]) != sorted(args.workloads):
        pretrain_held_out(tuple(args.workloads), args.epochs, seed=0)

    runs_file = args.runs_file
    rows = [json.loads(line) for line in runs_file.read_text().splitlines() if line.strip()] if runs_file.is_file() else []
    # AIO-P runs of another online recipe (or of one recorded before recipes were) are stale
    rows = [r for r in rows if r.get("recipe") == model_recipe(r["model"])]
    done = {(r["workload"], r["model"], r["trials"], r["seed"]) for r in rows}
    todo = [(n, m, args.trials, s) for s in args.seeds for n in args.workloads for m in args.models if (n, m, args.trials, s) not in done]
    deadline = parse_until(args.until)
    for n, m, t, s in (tqdm(todo, desc="tuning runs") if not args.tables_only else []):
        if deadline and dt.datetime.now(dt.timezone.utc) >= deadline:
            print(f"deadline {args.until} reached; {len(rows)} runs done", flush=True)
            break
        row = tune(n, m, t, s, args)
        rows.append(row)
        with runs_file.open("a") as f:
            f.write(json.dumps(row) + "\n")
        best = {b: f"{1e3 * v['seconds']:.3f} ms" for b, v in row["best"].items()}
        print(f"[{dt.datetime.now(dt.timezone.utc):%H:%M:%S}] {n} {m} seed {s}: best {best} ({row['tune_seconds']:.0f} s)", flush=True)
    rows = [r for r in rows if r["workload"] in args.workloads and r["model"] in args.models]
    write_tables(rows, remeasure(rows, args.repeats), args, argv)


if __name__ == "__main__":
    os.environ.setdefault("TVM_NUM_THREADS", "2")
    main()
