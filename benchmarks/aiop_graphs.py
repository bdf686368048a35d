"""Time to build the OpGraph of every architecture in the NAS data from an empty cache.

Issue target: under 15 minutes on this machine. Graphs are composed from per-module pieces
(predictor/graphs.py, tvm_fusion/compose.py); this measures the cold path: every piece
imported through Relax once, every network composed and cached.

    python benchmarks/aiop_graphs.py            # uses a fresh temporary AIOP_CACHE
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report import write_table  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def write(out: dict, path: Path) -> None:
    write_table(path, out, "OpGraphs of all NAS benchmark architectures (cold cache)",
                f"{out['graphs']} graphs for {out['records']} records in {out['seconds'] / 60:.1f} min "
                f"({out['piece_imports']} distinct pieces imported through Relax; 1-min load average at the end "
                f"{out['load_average_1min_at_end']:.1f} on the shared 2-core machine). Target: < 15 min. "
                "Command: `python benchmarks/aiop_graphs.py`.",
                ["family", "graphs", "mean nodes"], 1,
                [[f, str(r["graphs"]), str(r["mean_nodes"])] for f, r in sorted(out["per_family"].items())])


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
    out = {"records": len(recs), "graphs": len(built), "seconds": round(seconds, 1), "piece_imports": imports,
           "load_average_1min_at_end": round(os.getloadavg()[0], 2), "per_family": rows}
    write(out, RESULTS / "aiop_graphs")
    print((RESULTS / "aiop_graphs.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
