"""The ``"tvm_fusion"`` Relax pipeline: TVM's default CPU pipeline with FuseOps replaced.

``import tvm_fusion.pipeline`` registers it, after which compiling with fusion for an
accelerator is one argument::

    pipe = relax.get_pipeline("tvm_fusion", accelerator="lbdf-256kb")
    ex = tvm.compile(mod, target="llvm", relax_pipeline=pipe)

``PlanFusion`` canonicalises the module unless it already is canonical (the same
``graph.canonicalize`` the OpGraph importer uses, so binding names are OpGraph node names), searches a plan (or validates a
given one) and attaches it, with per-group F_β/F_D, as the module attribute
``"tvm_fusion.plan"`` (JSON). ``FuseByPlan`` then groups the bindings as the plan says, and
the rest is TVM's own CPU pipeline minus ``FuseOps``.
"""

from __future__ import annotations

import json
from pathlib import Path

import tvm
from tvm.relax.backend.cpu_generic import pipeline as cpu_generic
from tvm.relax.pipeline import PIPELINE_MAP, register_pipeline

from .graph import OpGraph, canonicalize
from .hardware import Accelerator
from .plan import Plan, PlanError
from .relax_pass import PLAN_ATTR, FuseByPlan


def as_accelerator(accelerator) -> Accelerator:
    """An Accelerator from itself, a preset name ("lbdf-256kb") or a buffer size ("256KB")."""
    if isinstance(accelerator, Accelerator):
        return accelerator
    if isinstance(accelerator, str) and "-" in accelerator:
        return Accelerator.preset(accelerator)
    return Accelerator(accelerator)


def plan_record(graph: OpGraph, plan: Plan, accel: Accelerator, how: str) -> dict:
    """The JSON-able plan attached to the module: groups as binding names with F_β and F_D."""
    from .cost import CostModel

    cost_model = CostModel(graph, accel)
    costs = cost_model.evaluate(plan.groups)
    totals = plan.totals(cost_model)
    return {
        "graph_fingerprint": plan.graph_fingerprint,
        "accelerator": str(accel),
        "how": how,
        "dram_bytes": totals.dram_bytes,
        "no_fusion_bytes": totals.no_fusion_bytes,
        "lower_bound_bytes": totals.lower_bound_bytes,
        "groups": [
            {"nodes": list(g), "bindings": [graph.nodes[v].name for v in g],
             "buffer_bytes": int(buf), "dram_bytes": int(dram), "fits": bool(fits)}
            for g, buf, dram, fits in zip(plan.groups, costs.buffer_bytes, costs.dram_bytes,
                                          costs.fits)
        ],
    }


@tvm.transform.module_pass(opt_level=0, name="PlanFusion")
class PlanFusion:
    """Canonicalise ``main``, find (or check) a fusion plan and attach it as ``"tvm_fusion.plan"``.

    A module that ``OpGraph.from_relax(..., canonical=True)`` accepts is used as is: the
    canonicalisation's FoldConstant over all weights costs ~2 s on ResNet-50 (15% of
    ``tvm.compile``) and changes nothing on a module that ``from_torch`` already canonicalised.

    Parameters
    ----------
    accelerator : Accelerator, preset name or buffer size
    algorithm, budget, seed, splitter : passed to ``tvm_fusion.search.search``
    plan : Plan, path of a saved plan, or None to search
        A given plan must have been made for this module's OpGraph (same fingerprint).
    """

    def __init__(self, accelerator, algorithm: str = "ls", budget: int = 2000, seed: int = 0,
                 splitter: str = "random", plan: Plan | str | Path | None = None,
                 progress: bool = False):
        self.accel = as_accelerator(accelerator)
        self.algorithm, self.budget, self.seed = algorithm, budget, seed
        self.splitter, self.plan, self.progress = splitter, plan, progress

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        try:  # already canonical (e.g. from graph.from_torch): skip canonicalize's FoldConstant
            graph = OpGraph.from_relax(mod, canonical=True)
        except ValueError:  # UnsupportedOpError (batch norm, constant-only ops) or repeated names
            mod = canonicalize(mod)
            graph = OpGraph.from_relax(mod, canonical=True)
        if self.plan is None:
            from .search import search

            result = search(graph, self.accel, self.algorithm, self.budget, self.seed,
                            self.splitter, progress=self.progress)
            plan, how = result.plan, f"search {result.algorithm} budget={self.budget} seed={self.seed}"
        elif isinstance(self.plan, Plan):
            if self.plan.graph_fingerprint != graph.fingerprint():
                raise PlanError(
                    f"the given plan was made for a graph with fingerprint "
                    f"{self.plan.graph_fingerprint}, but this module's OpGraph has "
                    f"{graph.fingerprint()}; it is stale: re-plan for this module")
            plan, how = Plan.from_groups(graph, self.plan.groups, self.accel), "given plan"
        else:
            plan, how = Plan.load(self.plan, graph), f"plan file {self.plan}"
        record = plan_record(graph, plan, self.accel, how)
        return mod.with_attr(PLAN_ATTR, json.dumps(record))


def _without_fuseops(passes: list) -> list:
    kept = [p for p in passes if p.info.name != "FuseOps"]
    if len(kept) != len(passes) - 1:
        raise RuntimeError("TVM's CPU legalize_passes no longer contain exactly one FuseOps; "
                           "tvm_fusion.pipeline must be updated for this TVM version")
    return kept


def tvm_fusion_pipeline(accelerator, algorithm: str = "ls", budget: int = 2000, seed: int = 0,
                        splitter: str = "random", plan: Plan | str | Path | None = None,
                        progress: bool = False) -> tvm.transform.Pass:
    """TVM's default CPU (llvm) Relax pipeline with FuseOps replaced by PlanFusion + FuseByPlan."""

    @tvm.transform.module_pass(opt_level=0, name="tvm_fusion_pipeline")
    def _pipeline(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        target = tvm.target.Target.current(allow_none=True) or tvm.target.Target("llvm")
        with target:
            seq = tvm.transform.Sequential(
                [PlanFusion(accelerator, algorithm, budget, seed, splitter, plan, progress),
                 FuseByPlan()]
                + cpu_generic.library_dispatch_passes(target)
                + _without_fuseops(cpu_generic.legalize_passes(target))
                + cpu_generic.dataflow_lower_passes(target)
                + cpu_generic.finalize_passes(target)
            )
            return seq(mod)

    return _pipeline


if "tvm_fusion" not in PIPELINE_MAP:  # importing twice (e.g. a reload) must not fail
    register_pipeline("tvm_fusion")(tvm_fusion_pipeline)
