"""``aiop`` command line: pretrain | finetune | evaluate | predict.

Examples::

    aiop pretrain --out aiop.pt --epochs 30            # classification families NB101/201/301
    aiop finetune --checkpoint aiop.pt --task tnb101/segmentsemantic --n 20 --out seg.pt
    aiop evaluate --checkpoint seg.pt --task tnb101/segmentsemantic
    aiop predict --checkpoint aiop.pt --onnx net.onnx [--task nb201/cifar10]
"""

from __future__ import annotations

import argparse
import random
import sys


def _records(families, cached_only: bool, per_family: int | None = None):
    from . import data, graphs

    recs = data.subsample(data.load_all(families), per_family)
    if cached_only:
        recs = [r for r in recs if graphs.is_cached(r.family, r.arch)]
        if not recs:
            raise SystemExit(f"no cached OpGraphs for {families}; run without --cached-only to build them")
    return recs


def _features(recs):
    from . import graphs
    from .aiop import FeatureCache

    return FeatureCache(graphs.build_graphs(recs)), (lambda r: graphs.graph_key(r.family, r.task, r.arch))


def _split_task(task: str) -> tuple[str, str]:
    if "/" not in task:
        raise SystemExit(f"--task must be <family>/<task>, e.g. tnb101/segmentsemantic, got {task!r}")
    return tuple(task.split("/", 1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="aiop", description="AIO-P neural performance predictor")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pretrain", help="pre-train on the classification families")
    a.add_argument("--out", required=True)
    a.add_argument("--families", default="nb101,nb201,nb301")
    a.add_argument("--epochs", type=int, default=30)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--flops-scale", action="store_true", help="divide labels by log(1+MFLOPs) before z-scoring")
    a.add_argument("--cached-only", action="store_true", help="use only architectures whose OpGraph is cached")
    a.add_argument("--per-family", type=int, default=None, help="seeded subset: this many archs per family")
    f = sub.add_parser("finetune", help="fine-tune a new head on N labelled architectures of a task")
    f.add_argument("--checkpoint", required=True)
    f.add_argument("--task", required=True, help="<family>/<task>, e.g. tnb101/segmentsemantic")
    f.add_argument("--n", type=int, default=20)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--infuse", default=None, help="zero-cost proxy for adapter pseudo-labels, e.g. nwot")
    f.add_argument("--out", required=True)
    f.add_argument("--cached-only", action="store_true")
    e = sub.add_parser("evaluate", help="SRCC/MAE of a head (or zeroshot) on a task's architectures")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--task", required=True)
    e.add_argument("--head", default=None, help="default: the task's head if present, else zeroshot")
    e.add_argument("--cached-only", action="store_true")
    q = sub.add_parser("predict", help="predict the performance of an ONNX model or OpGraph JSON")
    q.add_argument("--checkpoint", required=True)
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--onnx")
    g.add_argument("--opgraph", help="OpGraph JSON (OpGraph.to_json)")
    q.add_argument("--task", default="zeroshot")
    args = p.parse_args(argv)

    from .aiop import AIOP, ZERO_SHOT
    from .model import spearman

    if args.cmd == "pretrain":
        recs = _records(tuple(args.families.split(",")), args.cached_only, args.per_family)
        feats, key_fn = _features(recs)
        m = AIOP.pretrain(recs, feats, key_fn, epochs=args.epochs, seed=args.seed, flops_scale=args.flops_scale)
        m.save(args.out)
        print(f"pre-trained on {len(recs)} records, heads {m.pretrain_heads} -> {args.out}")
    elif args.cmd == "finetune":
        fam, task = _split_task(args.task)
        recs = [r for r in _records((fam,), args.cached_only) if r.task == task]
        feats, key_fn = _features(recs)
        m = AIOP.load(args.checkpoint)
        if args.infuse:
            m = m.infuse(recs, feats, key_fn, args.infuse, seed=args.seed)
        train = random.Random(args.seed).sample(recs, min(args.n, len(recs)))
        m = m.finetune(train, feats, key_fn, args.task, seed=args.seed)
        m.save(args.out)
        print(f"fine-tuned head {args.task} on {len(train)} labels -> {args.out}")
    elif args.cmd == "evaluate":
        fam, task = _split_task(args.task)
        recs = [r for r in _records((fam,), args.cached_only) if r.task == task]
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
