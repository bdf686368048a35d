"""``aiop`` command line: pretrain | finetune | evaluate | predict | reduce.

Examples::

    aiop pretrain --out aiop.pt --epochs 30            # classification families NB101/201/301
    aiop pretrain --out lto.pt --families nb101,nb201,nb301,tnb101 --exclude-tasks tnb101/jigsaw
    aiop finetune --checkpoint aiop.pt --task tnb101/segmentsemantic --n 20 --out seg.pt
    aiop evaluate --checkpoint seg.pt --task tnb101/segmentsemantic
    aiop predict --checkpoint aiop.pt --onnx net.onnx [--task nb201/cifar10]
    aiop reduce --checkpoint seg.pt --task tnb101/segmentsemantic --start "[2, 2, 3, 2, 0, 2]" --out front
    # the ensemble benchmarks/aiop_reduce.md uses: 10 heads on bootstrap resamples, seg-0.pt .. seg-9.pt
    aiop finetune --checkpoint aiop.pt --task tnb101/segmentsemantic --n 50 --members 10 --out seg.pt
    aiop reduce --checkpoint seg-*.pt --task tnb101/segmentsemantic --start "[2, 2, 3, 2, 0, 2]"
"""

from __future__ import annotations

import argparse
import random
import sys
import time


def _records(families, per_family: int | None = None):
    from . import data

    return data.subsample(data.load_all(families), per_family)


def _features(recs):
    from . import graphs
    from .aiop import FeatureCache

    return FeatureCache(graphs.build_graphs(recs)), (lambda r: graphs.graph_key(r.family, r.task, r.arch))


def _split_task(task: str) -> tuple[str, str]:
    if "/" not in task:
        raise SystemExit(f"--task must be <family>/<task>, e.g. tnb101/segmentsemantic, got {task!r}")
    return tuple(task.split("/", 1))


def _reduce(args) -> int:
    """``aiop reduce``: the predicted Pareto front (FLOPs vs performance) around a start architecture."""
    import json
    from pathlib import Path

    from . import data, reduce
    from .aiop import AIOP

    fam, task = _split_task(args.task)
    try:
        space = reduce.space_for(fam)
        start = data.parse_arch(fam, args.start)
    except reduce.UnsupportedFamilyError as err:
        raise SystemExit(str(err)) from None
    except (ValueError, SyntaxError) as err:
        raise SystemExit(f"--start {args.start!r} is not a {fam} encoding: {err}") from None
    models = [AIOP.load(c) for c in args.checkpoint]
    try:
        est = reduce.AIOPEstimator(models[0] if len(models) == 1 else models, fam, task, args.head)
    except KeyError as err:
        raise SystemExit(err.args[0]) from None
    setting = reduce.default_search(est.finetune_labels, len(models))
    kappa = setting.kappa if args.kappa is None else args.kappa
    factor = setting.tolerance_factor if args.search_factor is None else args.search_factor
    allowed = None
    if args.labelled_only:
        allowed = {x.arch for x in data.load_family(fam) if x.task == task}
    res = reduce.reduce(start, space, est, est.flops, args.tolerance * factor, args.budget, args.seed,
                        max_edits=args.max_edits, allowed=allowed, kappa=kappa)
    print(f"{args.task} head={est.head} start predicted {res.start.score:.4g}, {res.start.flops:.4g} MFLOPs; "
          f"{res.evaluations} evaluations, {len(res.front)} on the front (tolerance {args.tolerance}, search factor "
          f"{factor:g}" + (f", {len(models)} members, kappa {kappa:g})" if len(models) > 1 else ")"))
    print(reduce.format_table(res, space, args.format), end="")
    if args.out:
        out = Path(args.out)
        meta = {"task": args.task, "head": est.head, "checkpoints": args.checkpoint, "kappa": kappa,
                "tolerance": args.tolerance, "search_factor": factor, "budget": args.budget,
                "seed": args.seed, "max_edits": args.max_edits, "labelled_only": args.labelled_only,
                "evaluations": res.evaluations, "flops_source": "the benchmark's data file (predictor.reduce.BenchmarkFlops)",
                "start": {"arch": list(res.start.arch), "mflops": res.start.flops, "predicted": res.start.score},
                "front": res.rows()}
        out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
        reduce.plot_front(res, out.with_suffix(".png"), f"{args.task} from {list(start)}")
        print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="aiop", description="AIO-P neural performance predictor")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pretrain", help="pre-train on the classification families")
    a.add_argument("--out", required=True)
    a.add_argument("--families", default="nb101,nb201,nb301")
    a.add_argument("--epochs", type=int, default=30)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--flops-scale", action="store_true", help="divide labels by log(1+MFLOPs) before z-scoring")
    a.add_argument("--per-family", type=int, default=None, help="seeded subset: this many archs per family")
    a.add_argument("--exclude-tasks", default="",
                   help="comma-separated <family>/<task> left out of pre-training, e.g. --families "
                        "nb101,nb201,nb301,tnb101 --exclude-tasks tnb101/jigsaw to transfer to an unseen task of a "
                        "family whose other tasks are seen (benchmarks/aiop_reduce.py --pretrain leave-task-out)")
    f = sub.add_parser("finetune", help="fine-tune a new head on N labelled architectures of a task")
    f.add_argument("--checkpoint", required=True)
    f.add_argument("--task", required=True, help="<family>/<task>, e.g. tnb101/segmentsemantic")
    f.add_argument("--n", type=int, default=20)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--infuse", default=None, help="zero-cost proxy for adapter pseudo-labels, e.g. nwot")
    f.add_argument("--members", type=int, default=1,
                   help="> 1: that many heads, each on a bootstrap resample of the N labels (an ensemble for "
                        "`aiop reduce`, fine-tuned as predictor.reduce.FINETUNE says), written to "
                        "<out stem>-<i><out suffix>")
    f.add_argument("--out", required=True)
    e = sub.add_parser("evaluate", help="SRCC/MAE of a head (or zeroshot) on a task's architectures")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--task", required=True)
    e.add_argument("--head", default=None, help="default: the task's head if present, else zeroshot")
    q = sub.add_parser("predict", help="predict the performance of an ONNX model or OpGraph JSON")
    q.add_argument("--checkpoint", required=True)
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--onnx")
    g.add_argument("--opgraph", help="OpGraph JSON (OpGraph.to_json)")
    q.add_argument("--task", default="zeroshot")
    r = sub.add_parser("reduce", help="cut FLOPs of an architecture keeping predicted performance within a tolerance")
    r.add_argument("--checkpoint", required=True, nargs="+",
                   help="one checkpoint, or the members of an ensemble (`aiop finetune --members`)")
    r.add_argument("--task", required=True, help="<family>/<task>, e.g. nb201/cifar10 (families: nb201, tnb101)")
    r.add_argument("--start", required=True, help="start encoding as in the data files, e.g. \"[2, 2, 3, 2, 0, 2]\"")
    r.add_argument("--head", default=None, help="predictor head (default: the task's own head; or zeroshot)")
    r.add_argument("--tolerance", type=float, default=1.0, help="allowed predicted drop, in the head's units")
    r.add_argument("--kappa", type=float, default=None,
                   help="ensembles: a child counts as mean - kappa x std over members of its predicted difference "
                        "to the start (default: the value chosen on validation tasks for the number of labels the "
                        "heads were fine-tuned on, predictor.reduce.SEARCH_BY_LABELS)")
    r.add_argument("--search-factor", type=float, default=None,
                   help="keep a child whose (pessimistic) predicted drop is at most this x --tolerance (default: "
                        "ensembles the value chosen with kappa, predictor.reduce.SEARCH_BY_LABELS; one model 1)")
    r.add_argument("--budget", type=int, default=200, help="estimator evaluations")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--max-edits", type=int, default=2, help="edges changed per mutation (1..)")
    r.add_argument("--labelled-only", action="store_true", help="visit only architectures labelled in the data file")
    r.add_argument("--format", choices=("md", "csv"), default="md")
    r.add_argument("--out", default=None, help="prefix for <out>.json and <out>.png (the front)")
    args = p.parse_args(argv)
    from .data import DataError

    try:
        return _reduce(args) if args.cmd == "reduce" else _train_or_use(args)
    except DataError as err:  # a missing or corrupt data file: its message says which and what to do
        raise SystemExit(f"aiop {args.cmd}: {err}") from None


def _train_or_use(args) -> int:
    """``aiop pretrain | finetune | evaluate | predict``."""
    from .aiop import AIOP, ZERO_SHOT
    from .model import spearman

    if args.cmd == "pretrain":
        recs = _records(tuple(args.families.split(",")), args.per_family)
        excluded = {t for t in args.exclude_tasks.split(",") if t}
        unknown = excluded - {f"{r.family}/{r.task}" for r in recs}
        if unknown:
            raise SystemExit(f"--exclude-tasks {', '.join(sorted(unknown))}: no such task in the pre-training families "
                             f"{args.families} (tasks are <family>/<task>, e.g. tnb101/jigsaw)")
        recs = [r for r in recs if f"{r.family}/{r.task}" not in excluded]
        t0 = time.time()
        feats, key_fn = _features(recs)
        t1 = time.time()
        m = AIOP.pretrain(recs, feats, key_fn, epochs=args.epochs, seed=args.seed, flops_scale=args.flops_scale)
        m.save(args.out)
        print(f"pre-trained on {len(recs)} records, heads {m.pretrain_heads} -> {args.out}; "
              f"OpGraphs {t1 - t0:.0f} s, training {time.time() - t1:.0f} s")
    elif args.cmd == "finetune":
        if args.members < 1:
            raise SystemExit(f"--members must be >= 1, got {args.members}")
        fam, task = _split_task(args.task)
        recs = [r for r in _records((fam,)) if r.task == task]
        feats, key_fn = _features(recs)
        m = AIOP.load(args.checkpoint)
        if args.infuse:
            m = m.infuse(recs, feats, key_fn, args.infuse, seed=args.seed)
        train = random.Random(args.seed).sample(recs, min(args.n, len(recs)))
        if args.members > 1:
            from pathlib import Path

            from .reduce import bootstrap_heads

            out = Path(args.out)
            paths = [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(args.members)]
            for path, head in zip(paths, bootstrap_heads(m, train, feats, key_fn, args.task, args.members, args.seed)):
                head.save(path)
            print(f"fine-tuned {args.members} heads {args.task} on bootstrap resamples of {len(train)} labels -> "
                  f"{paths[0]} .. {paths[-1]}")
        else:
            m = m.finetune(train, feats, key_fn, args.task, seed=args.seed)
            m.save(args.out)
            print(f"fine-tuned head {args.task} on {len(train)} labels -> {args.out}")
    elif args.cmd == "evaluate":
        fam, task = _split_task(args.task)
        recs = [r for r in _records((fam,)) if r.task == task]
        m = AIOP.load(args.checkpoint)
        feats, key_fn = _features(recs)
        head = args.head or (args.task if args.task in m.model.heads else ZERO_SHOT)
        s = m.scores([feats.item(key_fn(r)) for r in recs], head)
        print(f"{args.task} head={head} archs={len(recs)} SRCC={spearman(s, [r.label for r in recs]):.4f}")
    else:
        m = AIOP.load(args.checkpoint)
        if args.onnx:
            from tvm_fusion.graph import from_onnx

            graph = from_onnx(args.onnx)
        else:
            from pathlib import Path

            from tvm_fusion.graph import OpGraph

            graph = OpGraph.from_json(Path(args.opgraph).read_text())
        print(f"{m.predict(graph, task=args.task):.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
