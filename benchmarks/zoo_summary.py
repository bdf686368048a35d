"""Per zoo network and accelerator: op count, unfusable ops, no-fusion and lower-bound DRAM.

The reference points every fusion result is read against. Accelerators: LBDF and BRR at
128 KB and 256 KB (int8). Writes benchmarks/results/zoo_summary.{json,md}; results already
written survive an interrupt (the files are rewritten after every network).

    python benchmarks/zoo_summary.py [--nets resnet18,efficientnet_b3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from report import write_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package

from tvm_fusion.cost import CostModel  # noqa: E402
from tvm_fusion.hardware import Accelerator  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PRESETS = ("lbdf-128kb", "brr-128kb", "lbdf-256kb", "brr-256kb")
MB = 1e6


def summarize(name: str, graph) -> list[dict]:
    rows = []
    for preset in PRESETS:
        cm = CostModel(graph, Accelerator.preset(preset))
        rows.append({"net": name, "accelerator": preset, "ops": len(graph.nodes),
                     "unfusable_ops": len(cm.unfusable()),
                     "no_fusion_mb": round(cm.no_fusion_dram() / MB, 3),
                     "lower_bound_mb": round(cm.lower_bound_dram() / MB, 3)})
    return rows


def write(rows: list[dict], build_s: dict, out: Path) -> None:
    write_table(out, {"rows": rows, "opgraph_build_s": build_s}, "Zoo summary",
                "DRAM in MB (10^6 bytes), int8 (1 byte/element). No fusion = every op its own "
                "group; lower bound = every weight, graph input and output moved once; unfusable = "
                "ops whose own F_β exceeds the buffer. `python benchmarks/zoo_summary.py`.",
                ["net", "accelerator", "ops", "unfusable", "no-fusion MB", "lower-bound MB",
                 "OpGraph s (build or cache load)"], 2,
                [[r["net"], r["accelerator"], str(r["ops"]), str(r["unfusable_ops"]), f"{r['no_fusion_mb']:.3f}",
                  f"{r['lower_bound_mb']:.3f}", f"{build_s[r['net']]:.1f}"] for r in rows])


def main(argv=None) -> list[dict]:
    from tvm_fusion import zoo  # noqa: PLC0415 - slow import, only needed here

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default=",".join(zoo.NAMES), help="comma-separated zoo names")
    ap.add_argument("--out", default=str(RESULTS / "zoo_summary"))
    args = ap.parse_args(argv)
    nets = [n for n in args.nets.split(",") if n]
    unknown = sorted(set(nets) - set(zoo.NAMES))
    if unknown:
        raise SystemExit(f"unknown zoo nets {unknown}; available: {list(zoo.NAMES)}")
    rows: list[dict] = []
    build_s: dict[str, float] = {}
    for name in tqdm(nets, desc="zoo nets"):
        t0 = time.perf_counter()
        graph = zoo.opgraph(name)
        build_s[name] = round(time.perf_counter() - t0, 2)
        rows += summarize(name, graph)
        write(rows, build_s, Path(args.out))
    print(Path(args.out).with_suffix(".md").read_text())
    return rows


if __name__ == "__main__":
    main()
