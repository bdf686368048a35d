"""Time to build the OpGraph of every architecture in the NAS data from an empty cache.

Issue target: under 15 minutes on this machine. Graphs are composed from per-module pieces
(predictor/graphs.py, tvm_fusion/compose.py); this measures the cold path: every piece
imported through Relax once, every network composed and cached.

    python benchmarks/aiop_graphs.py            # uses a fresh temporary AIOP_CACHE
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AIOP_CACHE"] = tmp
        from predictor import data, graphs

        recs = data.load_all()
        t0 = time.time()
        built = graphs.build_graphs(recs)
        seconds = time.time() - t0
        imports = graphs.piece_cache().imports
    rows = {}
    for (family, gtask, _), g in built.items():
        r = rows.setdefault(family, {"graphs": 0, "nodes": 0})
        r["graphs"] += 1
        r["nodes"] += len(g)
    for r in rows.values():
        r["mean_nodes"] = round(r.pop("nodes") / r["graphs"], 1)
    load = os.getloadavg()[0]
    out = {"records": len(recs), "graphs": len(built), "seconds": round(seconds, 1), "piece_imports": imports,
           "load_average_1min_at_end": round(load, 2), "per_family": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "aiop_graphs.json").write_text(json.dumps(out, indent=1))
    lines = ["# OpGraphs of all NAS benchmark architectures (cold cache)", "",
             f"{len(built)} graphs for {len(recs)} records in {seconds / 60:.1f} min "
             f"({imports} distinct pieces imported through Relax; 1-min load average at the end {load:.1f} "
             "on the shared 2-core machine). Target: < 15 min.", "",
             "| family | graphs | mean nodes |", "|---|---:|---:|"]
    lines += [f"| {f} | {r['graphs']} | {r['mean_nodes']} |" for f, r in sorted(rows.items())]
    lines += ["", "Command: `python benchmarks/aiop_graphs.py`"]
    (RESULTS / "aiop_graphs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
