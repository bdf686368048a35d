"""FuseByPlan and the "tvm_fusion" pipeline: fused modules compute what the unfused ones do,
one fused PrimFunc per plan group, and bad plans fail with errors that name the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import tvm
from tvm import relax

from tvm_fusion.plan import Plan, PlanError
from tvm_fusion.relax_pass import (GROUP_FUNC_PREFIX, PLAN_ATTR, FuseByPlan, op_binding_names,
                                   tvm_fuseops_groups)

TARGET = "llvm"


def _hand_module() -> tvm.IRModule:
    """conv -> +bias -> relu -> conv2 -> +skip(relu) -> *0.5 -> maxpool -> mean (8 ops)."""
    rng = np.random.RandomState(0)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 3, 16, 16), "float32"))
    w1 = relax.const(rng.rand(8, 3, 3, 3).astype("float32") - 0.5)
    w2 = relax.const(rng.rand(8, 8, 3, 3).astype("float32") - 0.5)
    b = relax.const(rng.rand(1, 8, 1, 1).astype("float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            c = bb.emit(relax.op.nn.conv2d(x, w1, padding=1), name_hint="conv")
            a = bb.emit(relax.op.add(c, b), name_hint="bias")
            r = bb.emit(relax.op.nn.relu(a), name_hint="relu")
            c2 = bb.emit(relax.op.nn.conv2d(r, w2, padding=1), name_hint="conv2")
            s = bb.emit(relax.op.add(c2, r), name_hint="skip")
            h = bb.emit(relax.op.multiply(s, relax.const(0.5, "float32")), name_hint="half")
            p = bb.emit(relax.op.nn.max_pool2d(h, pool_size=2, strides=2), name_hint="pool")
            m = bb.emit(relax.op.mean(p, axis=[2, 3]), name_hint="gap")
            out = bb.emit_output(m)
        bb.emit_func_output(out)
    return bb.get()


def _lower(mod: tvm.IRModule, groups) -> tvm.IRModule:
    """FuseByPlan followed by the legalisation passes of the tvm_fusion pipeline."""
    seq = tvm.transform.Sequential([FuseByPlan(groups), relax.transform.LegalizeOps(),
                                    relax.transform.AnnotateTIROpPattern(),
                                    relax.transform.FoldConstant(), relax.transform.FuseTIR()])
    with tvm.target.Target(TARGET):
        return seq(mod)


def _run(mod: tvm.IRModule, *inputs: np.ndarray, pipeline="default") -> np.ndarray:
    ex = tvm.compile(mod, target=TARGET, relax_pipeline=pipeline)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    out = vm["main"](*[tvm.runtime.tensor(a) for a in inputs])
    while not hasattr(out, "numpy"):  # torch-exported mains return a tuple
        out = out[0]
    return out.numpy()


def _fused_primfuncs(mod: tvm.IRModule) -> list[str]:
    return sorted(gv.name_hint for gv, f in mod.functions_items()
                  if isinstance(f, tvm.tirx.PrimFunc) and gv.name_hint.startswith(GROUP_FUNC_PREFIX))


def _fused_calls(mod: tvm.IRModule) -> int:
    """Calls of fused PrimFuncs in main (call_tir, or direct calls once lowered for the VM).

    Structurally equal PrimFuncs (e.g. two singleton relu groups) are deduplicated by the
    lowering, so call sites, not functions, count the groups of a fully compiled module.
    """
    fused = set(_fused_primfuncs(mod))
    n = 0
    for block in mod["main"].body.blocks:
        for b in block.bindings:
            v = b.value
            if isinstance(v, relax.Call):
                callee = v.op if isinstance(v.op, relax.GlobalVar) else (
                    v.args[0] if v.args and isinstance(v.args[0], relax.GlobalVar) else None)
                n += callee is not None and callee.name_hint in fused
    return n


HAND_PLANS = {
    "three groups": [["conv", "bias"], ["relu", "conv2", "skip"], ["half", "pool", "gap"]],
    "one per op": [[n] for n in ["conv", "bias", "relu", "conv2", "skip", "half", "pool", "gap"]],
    "one group": [["conv", "bias", "relu", "conv2", "skip", "half", "pool", "gap"]],
    # relu and conv2 both leave the first group: a two-output (tuple) group function
    "two outputs": [["conv", "bias", "relu", "conv2"], ["skip", "half"], ["pool", "gap"]],
}


@pytest.mark.parametrize("name", list(HAND_PLANS))
def test_fused_module_matches_unfused(name):
    mod = _hand_module()
    groups = HAND_PLANS[name]
    x = np.random.RandomState(1).rand(1, 3, 16, 16).astype("float32")
    ref = _run(mod, x)
    lowered = _lower(mod, groups)
    assert _fused_primfuncs(lowered) == sorted(
        gv.name_hint for gv in FuseByPlan(groups)(mod).get_global_vars() if gv.name_hint != "main")
    assert len(_fused_primfuncs(lowered)) == _fused_calls(lowered) == len(groups)
    # every operator ends up in a fused PrimFunc: main calls nothing else
    assert all(isinstance(f, tvm.tirx.PrimFunc) == gv.name_hint.startswith(GROUP_FUNC_PREFIX)
               for gv, f in lowered.functions_items() if gv.name_hint != "main")
    np.testing.assert_allclose(_run(lowered, x, pipeline="default"), ref, rtol=1e-5, atol=1e-5)


def test_group_function_shape():
    """Primitive attribute, constants lifted to parameters like FuseOps, names kept in main."""
    fused = FuseByPlan(HAND_PLANS["two outputs"])(_hand_module())
    funcs = {gv.name_hint: f for gv, f in fused.functions_items() if gv.name_hint != "main"}
    assert len(funcs) == 3
    first = funcs["fused_g0_conv2d_add_relu_conv2d"]
    assert int(first.attrs["Primitive"]) == 1
    # x, conv weight, bias, conv2 weight; two outputs -> a tuple
    assert [p.name for p in first.params][0] == "x" and len(first.params) == 4
    assert isinstance(first.ret_ty, relax.TupleType) or "Tuple" in type(first.ret_ty).__name__
    main_names = [b.var.name for b in fused["main"].body.blocks[0].bindings]
    assert {"relu", "conv2", "half", "gap"} <= set(main_names)
    relax.analysis.well_formed(fused)  # raises on a malformed module


def test_non_convex_plan_is_rejected():
    mod = _hand_module()
    # relu -> conv2 -> skip and relu -> skip: {relu, skip} without conv2 is not convex
    groups = [["conv", "bias"], ["relu", "skip"], ["conv2"], ["half", "pool", "gap"]]
    with pytest.raises(PlanError, match=r"not convex.*group 1: \[.relu., .skip.\]; group 2: \[.conv2.\]\. Split"):
        FuseByPlan(groups)(mod)


def test_bad_names_are_rejected():
    mod = _hand_module()
    names = op_binding_names(mod)
    with pytest.raises(PlanError, match="'nope'.*not an operator binding"):
        FuseByPlan([names, ["nope"]])(mod)
    with pytest.raises(PlanError, match="in no group.*gap"):
        FuseByPlan([names[:-1]])(mod)
    with pytest.raises(PlanError, match="'conv' is in groups 0 and 1"):
        FuseByPlan([names, ["conv"]])(mod)
    with pytest.raises(PlanError, match="no groups given.*tvm_fusion.plan"):
        FuseByPlan()(mod)


def test_groups_from_module_attribute():
    mod = _hand_module()
    record = {"groups": [{"bindings": g} for g in HAND_PLANS["three groups"]]}
    fused = FuseByPlan()(mod.with_attr(PLAN_ATTR, json.dumps(record)))
    assert len([gv for gv in fused.get_global_vars() if gv.name_hint != "main"]) == 3


def test_tvm_fuseops_groups_hand_module():
    """FuseOps fuses conv+add+relu and conv2+add+multiply; pool and mean stay alone."""
    groups = tvm_fuseops_groups(_hand_module())
    assert groups == [["conv", "bias", "relu"], ["conv2", "skip", "half"], ["pool"], ["gap"]]


# ---- the registered pipeline on a torch network ---------------------------------------------

class SmallNet(torch.nn.Module):
    """conv-bn-relu, a residual conv-bn block, max-pool, global average pool, linear."""

    def __init__(self):
        super().__init__()
        self.c1, self.b1 = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
        self.c2, self.b2 = torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        z = torch.relu(self.b2(self.c2(y)) + y)
        z = torch.nn.functional.max_pool2d(z, 2)
        return self.fc(z.mean((2, 3)))


@pytest.fixture(scope="module")
def small_net():
    from tvm_fusion.graph import from_torch

    torch.manual_seed(0)
    net = SmallNet().eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial BN so folding is exercised
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 32, 32)
    graph, mod = from_torch(net, x, return_module=True)
    with torch.no_grad():
        ref = net(x).numpy()
    return graph, mod, x.numpy(), ref


def _pipeline_module(mod, **kwargs) -> tvm.IRModule:
    import tvm_fusion.pipeline  # noqa: F401  (registers "tvm_fusion")

    with tvm.target.Target(TARGET):
        return relax.get_pipeline("tvm_fusion", **kwargs)(mod)


def test_pipeline_matches_torch(small_net):
    import tvm_fusion.pipeline  # noqa: F401

    graph, mod, x, ref = small_net
    pipe = relax.get_pipeline("tvm_fusion", accelerator="lbdf-256kb", algorithm="ls", budget=50)
    np.testing.assert_allclose(_run(mod, x, pipeline=pipe), ref, rtol=1e-4, atol=1e-4)


def test_pipeline_attaches_plan_and_fuses_per_group(small_net):
    from tvm_fusion.pipeline import PlanFusion

    graph, mod, _, _ = small_net
    with tvm.target.Target(TARGET):
        planned = PlanFusion("lbdf-256kb", algorithm="dp")(mod)
    record = json.loads(str(planned.attrs[PLAN_ATTR]))
    names = sorted(n for g in record["groups"] for n in g["bindings"])
    assert names == sorted(n.name for n in graph.nodes)
    assert record["dram_bytes"] == sum(g["dram_bytes"] for g in record["groups"])
    assert record["lower_bound_bytes"] <= record["dram_bytes"] <= record["no_fusion_bytes"]
    assert all(g["fits"] or len(g["nodes"]) == 1 for g in record["groups"])
    lowered = _pipeline_module(mod, accelerator="lbdf-256kb", algorithm="dp")
    assert _fused_calls(lowered) == len(record["groups"])


@pytest.mark.parametrize("kind", ["no fusion", "one group"])
def test_pipeline_with_given_plan(small_net, kind):
    graph, mod, x, ref = small_net
    groups = [[v] for v in range(len(graph.nodes))] if kind == "no fusion" \
        else [list(range(len(graph.nodes)))]
    plan = Plan.from_groups(graph, groups)
    lowered = _pipeline_module(mod, accelerator="lbdf-256kb", plan=plan)
    assert _fused_calls(lowered) == len(groups)
    import tvm_fusion.pipeline  # noqa: F401

    pipe = relax.get_pipeline("tvm_fusion", accelerator="lbdf-256kb", plan=plan)
    np.testing.assert_allclose(_run(mod, x, pipeline=pipe), ref, rtol=1e-4, atol=1e-4)


def test_stale_plan_is_rejected(small_net):
    from tvm_fusion.graph import from_torch

    graph, mod, _, _ = small_net
    other_graph, _ = from_torch(SmallNet().eval(), torch.randn(1, 3, 16, 16), return_module=True)
    stale = Plan.from_groups(other_graph, [[v] for v in range(len(other_graph.nodes))])
    with pytest.raises(PlanError, match="stale"):
        _pipeline_module(mod, accelerator="lbdf-256kb", plan=stale)


def test_fuseops_plan_is_legal_and_covers_graph(small_net):
    """TVM's grouping mapped onto the OpGraph; a tiny buffer forces splits, all of which fit."""
    from tvm_fusion.cost import CostModel
    from tvm_fusion.hardware import Accelerator
    from tvm_fusion.relax_pass import fuseops_plan

    graph, mod, _, _ = small_net
    raw = tvm_fuseops_groups(mod)
    assert sorted(n for g in raw for n in g) == sorted(n.name for n in graph.nodes)
    big, split_big = fuseops_plan(graph, mod, Accelerator(64 * 1024 * 1024))
    assert split_big == 0 and len(big) == len(raw)
    tiny = Accelerator(2048)
    plan, num_split = fuseops_plan(graph, mod, tiny, seed=3)
    assert num_split > 0 and len(plan) > len(raw)
    assert plan == fuseops_plan(graph, mod, tiny, seed=3)[0]  # seeded
    assert fuseops_plan(graph, mod, tiny, seed=3, groups=raw) == (plan, num_split)
    assert not plan.totals(CostModel(graph, tiny)).illegal_groups


# ---- every zoo network compiles with our pipeline and computes what torch computes ------------

def _zoo_params():
    from tvm_fusion import zoo

    fast = {"squeezenet1_0"}
    return [pytest.param(n, marks=() if n in fast else pytest.mark.slow) for n in zoo.NAMES]


@pytest.mark.parametrize("name", _zoo_params())
def test_zoo_net_matches_torch(name):
    import tvm_fusion.pipeline  # noqa: F401
    from tvm_fusion import zoo
    from tvm_fusion.graph import from_torch

    net, x = zoo.build(name, 32)
    _, mod = from_torch(net, x, name=name, return_module=True)
    pipe = relax.get_pipeline("tvm_fusion", accelerator="lbdf-128kb", algorithm="ls", budget=20)
    out = _run(mod, x.numpy(), pipeline=pipe)
    with torch.no_grad():
        ref = net(x).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()))


def test_pipeline_canonicalises_raw_module(small_net):
    """A module straight from torch's importer (batch norms, weight reshapes) is canonicalised
    first, so its plan and result are those of the canonical module."""
    from tvm.relax.frontend.torch import from_exported_program

    from tvm_fusion.pipeline import PlanFusion

    graph, mod, x, ref = small_net
    torch.manual_seed(0)
    net = SmallNet().eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2.0)
    raw = from_exported_program(torch.export.export(net, (torch.from_numpy(x),)),
                                keep_params_as_input=False)
    with tvm.target.Target(TARGET):
        record = json.loads(str(PlanFusion("lbdf-256kb", algorithm="dp")(raw).attrs[PLAN_ATTR]))
    assert record["graph_fingerprint"] == graph.fingerprint()
    import tvm_fusion.pipeline  # noqa: F401

    pipe = relax.get_pipeline("tvm_fusion", accelerator="lbdf-256kb", algorithm="dp")
    np.testing.assert_allclose(_run(raw, x, pipeline=pipe), ref, rtol=1e-4, atol=1e-4)
