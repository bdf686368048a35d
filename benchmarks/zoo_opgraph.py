"""Cold-cache OpGraph import time per zoo network at its default input size.

Times ``zoo.opgraph(name, refresh=True)`` (build the torch module, torch.export, Relax
import, canonicalize, OpGraph) and rewrites the shared cache entry. Single torch thread.
Writes benchmarks/results/zoo_opgraph.{json,md} after every network.

    python benchmarks/zoo_opgraph.py [--nets resnet18,vgg16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report import write_table  # noqa: E402
from tvm_fusion import zoo  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def write(rows: list[dict], out: Path) -> None:
    write_table(out, {"graph_version": zoo.GRAPH_VERSION, "rows": rows}, "Zoo OpGraph import time (cold cache)",
                "`python benchmarks/zoo_opgraph.py`; 1 torch thread on a shared 2-core machine, so "
                "times are indicative. MFLOPs = sum of node FLOPs (2 x MACs for conv/dense).",
                ["net", "input", "ops", "conv2d", "weights (M)", "MFLOPs", "seconds"], 2,
                [[r["net"], r["input"], str(r["ops"]), str(r["conv2d"]), f"{r['weights_m']:.3f}",
                  f"{r['mflops']:.0f}", f"{r['seconds']:.1f}"] for r in rows])


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default=",".join(zoo.NAMES), help="comma-separated zoo names")
    ap.add_argument("--out", default=str(RESULTS / "zoo_opgraph"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows: list[dict] = []
    for name in tqdm([n for n in args.nets.split(",") if n], desc="zoo nets"):
        t0 = time.perf_counter()
        g = zoo.opgraph(name, refresh=True)
        seconds = time.perf_counter() - t0
        size = zoo.default_input_size(name)
        rows.append({"net": name, "input": f"{size}x{size}", "ops": len(g),
                     "conv2d": sum(n.kind == "conv2d" for n in g.nodes),
                     "weights_m": sum(n.weight_elems for n in g.nodes) / 1e6,
                     "mflops": g.total_flops / 1e6, "seconds": round(seconds, 2)})
        write(rows, Path(args.out))
    print(Path(args.out).with_suffix(".md").read_text())
    return rows


if __name__ == "__main__":
    main()
