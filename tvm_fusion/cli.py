"""Command line: ``tvm-fusion optimize MODEL`` searches a fusion plan and writes it as JSON.

Subcommands register through :func:`build_parser` (one ``add_<name>_parser`` per command).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .hardware import Accelerator, FusionType, parse_size


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except (ValueError, TypeError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _zoo_names() -> list[str]:
    try:
        from . import zoo
    except ImportError:
        return []
    return list(zoo.NAMES)


def load_model(model: str, input_size: int | None):
    """OpGraph of a zoo network name or an .onnx file (ValueError with a hint otherwise)."""
    if model.lower().endswith(".onnx"):
        path = Path(model)
        if not path.is_file():
            raise ValueError(f"ONNX file {model!r} does not exist")
        if input_size is not None:
            raise ValueError("--input-size applies to zoo models only; an ONNX file fixes its input shape")
        import onnx

        from .graph import from_onnx

        try:
            proto = onnx.load(str(path))
        except Exception as e:  # protobuf raises its own error types for corrupt files
            raise ValueError(f"{model!r} is not a readable ONNX model ({type(e).__name__}: {e})") from None
        return from_onnx(proto, name=path.stem)
    names = _zoo_names()
    if model not in names:
        raise ValueError(f"unknown model {model!r}: give a path ending in .onnx or a zoo name "
                         f"({', '.join(names) if names else 'tvm_fusion.zoo is not available'})")
    from . import zoo

    return zoo.opgraph(model, input_size=input_size)


def add_optimize_parser(sub) -> None:
    from .search import ALGORITHMS

    p = sub.add_parser(
        "optimize", help="search a layer-fusion plan for a network and write it as JSON",
        description="Search a layer-fusion plan that minimises DRAM traffic on an accelerator with "
                    "an on-chip buffer, print a summary and write the plan (JSON, loadable with "
                    "tvm_fusion.plan.Plan.load).")
    p.add_argument("model", help="zoo network name (e.g. resnet18) or a path to an .onnx file")
    p.add_argument("--buffer", type=_size, default=parse_size("128KB"), metavar="SIZE",
                   help="on-chip buffer size, e.g. 128KB, 256KB, 1MB (1 KB = 1024 B; default 128KB)")
    p.add_argument("--fusion", choices=[f.value for f in FusionType], default="lbdf",
                   help="fusion type: lbdf = line-buffer depth-first, brr = buffer requirement "
                        "reduction (default lbdf)")
    p.add_argument("--algorithm", choices=list(ALGORITHMS), default="ls",
                   help="rs = random search, ls = local search, nsga2 = NSGA-II, dp = exact interval "
                        "DP over a topological order, exhaustive = all plans (<= 20 ops) (default ls)")
    p.add_argument("--budget", type=_positive_int, default=2000, metavar="PLANS",
                   help="plans evaluated by rs/ls/nsga2 (dp and exhaustive ignore it; default 2000)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed; same seed, same plan (default 0)")
    p.add_argument("--splitter", default="random",
                   help="how groups over the buffer are split: random (the baseline) or get "
                        "(graph explanation: validity GNN + explainer + greedy tree split) (default random)")
    p.add_argument("--explainer", choices=["rg", "gnne", "pg"], default="rg",
                   help="GET explainer, with --splitter get: rg = connected-subgraph search, "
                        "gnne = GNNExplainer, pg = PGExplainer (default rg)")
    p.add_argument("--bytes-per-element", type=_positive_int, default=1, metavar="B",
                   help="bytes per tensor element and weight (1 = int8; default 1)")
    p.add_argument("--input-size", type=_positive_int, default=None, metavar="N",
                   help="input height/width for zoo models (default: the model's own)")
    p.add_argument("--output", "-o", default="plan.json", metavar="PATH", help="plan file to write (default plan.json)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run_optimize, subparser=p)


def run_optimize(args, parser) -> int:
    from .search import SPLITTERS, make_splitter, search

    if args.splitter not in SPLITTERS:
        parser.error(f"--splitter: unknown splitter {args.splitter!r}; available: {', '.join(sorted(SPLITTERS))}")
    splitter = make_splitter("get", explainer=args.explainer) if args.splitter == "get" else args.splitter
    accel = Accelerator(args.buffer, FusionType(args.fusion), args.bytes_per_element)
    from .graph import ModelImportError

    try:
        graph = load_model(args.model, args.input_size)
    except (ValueError, ModelImportError) as e:  # includes UnsupportedOpError
        parser.error(str(e))
    try:
        result = search(graph, accel, args.algorithm, args.budget, args.seed, splitter,
                        progress=not args.no_progress)
    except ValueError as e:
        parser.error(str(e))
    out = result.plan.save(args.output, graph)
    t = result.totals
    mb = 2**20
    fused = sum(1 for g in result.plan.groups if len(g) > 1)
    print(f"model      {graph.name}: {len(graph)} ops")
    print(f"target     {accel}")
    print(f"search     {result.algorithm}, {result.evaluated_plans} plan{'s' if result.evaluated_plans != 1 else ''} evaluated, seed {args.seed}, "
          f"splitter {args.splitter}, {result.seconds:.2f} s")
    print(f"DRAM       {t.dram_bytes / mb:.3f} MB  (no fusion {t.no_fusion_bytes / mb:.3f} MB, "
          f"lower bound {t.lower_bound_bytes / mb:.3f} MB)")
    print(f"ratio      {t.dram_bytes / t.lower_bound_bytes:.3f}x lower bound, "
          f"{100 * (1 - t.dram_bytes / t.no_fusion_bytes):.1f}% less than no fusion")
    print(f"groups     {t.num_groups} ({fused} fused), max buffer {t.max_buffer_bytes / 1024:.1f} KB "
          f"of {accel.buffer_bytes / 1024:.1f} KB")
    print(f"plan       {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tvm-fusion", description="Layer fusion for DNN accelerators.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_optimize_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args, args.subparser)


if __name__ == "__main__":
    sys.exit(main())
