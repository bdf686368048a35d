"""AIO-P as a MetaSchedule cost model (predictor/metaschedule.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import tvm
import tvm.s_tir.meta_schedule as ms
from tvm import te
from tvm.s_tir import Schedule
from tvm.s_tir.meta_schedule.arg_info import ArgInfo
from tvm.s_tir.meta_schedule.runner import RunnerResult
from tvm.s_tir.schedule import Trace

import benchmark_scripts
from predictor import metaschedule as aiop
from predictor.ms_build import make_builder, make_runner, skip_tensor_intrin_import

TARGET = {"kind": "llvm", "num-cores": 2}


def _matmul(n: int = 64, relu: bool = False, diamond: bool = False):
    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    if not relu:
        return te.create_prim_func([a, b, c])
    d = te.compute((n, n), lambda i, j: te.max(c[i, j], tvm.tirx.const(0.0, "float32")), name="D")
    if not diamond:
        return te.create_prim_func([a, b, d])
    e = te.compute((n, n), lambda i, j: c[i, j] + d[i, j], name="E")
    return te.create_prim_func([a, b, e])


def _collector():
    return benchmark_scripts.load("collect_ms_records")


def _context(func):
    with skip_tensor_intrin_import():
        return ms.TuneContext(mod=tvm.IRModule({"main": func}), target=TARGET, space_generator="post-order-apply", num_threads=1)


def _candidates(func, count: int):
    """``count`` distinct random schedules of ``func``: MetaSchedule's design spaces with
    their sampling decisions dropped, re-sampled under different seeds."""
    ctx = _context(func)
    spaces = ctx.generate_design_space()
    args_info = ArgInfo.from_prim_func(func)
    cands = []
    for i in range(count):
        sch = Schedule(ctx.mod, seed=i + 1)
        Trace(spaces[i % len(spaces)].trace.insts, {}).apply_to_schedule(sch, remove_postproc=True)
        cands.append(ms.MeasureCandidate(sch, args_info))
    return ctx, cands


def test_dataflow_edges_hand_built():
    """Nodes follow the per-store feature rows; edges follow producer -> consumer."""
    func = _matmul(relu=True, diamond=True)  # C -> D, C -> E, D -> E
    ctx = _context(func)
    sch = Schedule(ctx.mod)
    cand = ms.MeasureCandidate(sch, ArgInfo.from_prim_func(func))
    ((x, edges),) = aiop.encode(aiop.PerStoreFeature(), ctx, [cand])
    assert x.shape == (3, 164)
    assert sorted(map(tuple, edges.T.tolist())) == [(0, 1), (0, 2), (1, 2)]
    # cache_write adds a producer C_global in front of C: chain C_global -> C -> D
    sch = Schedule(tvm.IRModule({"main": _matmul(relu=True)}))
    sch.cache_write(sch.get_sblock("C"), 0, "global")
    cand = ms.MeasureCandidate(sch, ArgInfo.from_prim_func(func))
    extractor = aiop.PerStoreFeature()
    ((x, edges),) = aiop.encode(extractor, ctx, [cand])
    assert x.shape[0] == 3
    assert sorted(map(tuple, edges.T.tolist())) == [(0, 1), (1, 2)]
    # features the caller already extracted give the same graph
    ((x2, edges2),) = aiop.encode(extractor, ctx, [cand], extractor.extract_from(ctx, [cand]))
    assert np.array_equal(x2, x) and np.array_equal(edges2, edges)


def test_dataflow_edges_count_mismatch_falls_back_to_chain():
    mod = tvm.IRModule({"main": _matmul(relu=True)})  # 2 written buffers: C -> D
    same, more = aiop.dataflow_edges([mod, mod], [2, 4])
    assert same.tolist() == [[0], [1]]
    assert more.tolist() == [[0, 1, 2], [1, 2, 3]]


def test_dataflow_edges_rejects_a_module_without_one_prim_func():
    mod = tvm.IRModule({"a": _matmul(), "b": _matmul(relu=True)})
    with pytest.raises(aiop.CostModelError, match="module 0 holds 2 PrimFuncs"):
        aiop.dataflow_edges([mod], [1])


def test_predict_order_and_save_load_round_trip(tmp_path, seed):
    ctx, cands = _candidates(_matmul(), 12)
    model = aiop.AIOPCostModel(seed=seed)
    graphs = aiop.encode(model.extractor, ctx, cands)
    # a few training steps so that the weights are not the initial ones
    costs = np.array([float(g[0][:, :4].sum()) + 1.0 for g in graphs])
    aiop.train(model.model, [(graphs, costs)], epochs=3, seed=seed)
    pred = model.predict(ctx, cands)
    assert pred.shape == (12,) and pred.dtype == np.float64
    assert len(np.unique(np.round(pred, 6))) > 1, "distinct schedules must get distinct scores"
    np.testing.assert_allclose(model.predict(ctx, cands[::-1]), pred[::-1], rtol=1e-6)
    path = tmp_path / "aiop.pt"
    model.save(str(path))
    loaded = aiop.load_cost_model(path)
    np.testing.assert_array_equal(loaded.predict(ctx, cands), pred)


def test_load_errors(tmp_path):
    with pytest.raises(aiop.CostModelError, match="no model file"):
        aiop.load_cost_model(tmp_path / "missing.pt")
    torch.save({"something": 1}, tmp_path / "bad.pt")
    with pytest.raises(aiop.CostModelError, match="not an AIO-P"):
        aiop.load_cost_model(tmp_path / "bad.pt")
    # weights of another layout (here: a missing layer) name the file
    weights = aiop.StoreGNN(aiop.GNNConfig()).state_dict()
    weights.pop("head.0.weight")
    torch.save({"config": {"in_dim": 164, "hidden": 64, "layers": 3}, "weights": weights}, tmp_path / "old.pt")
    with pytest.raises(aiop.CostModelError, match="old.pt do not fit"):
        aiop.load_cost_model(tmp_path / "old.pt")


def test_train_learns_ranking(seed):
    """On random graphs whose cost is a function of the node features, training must
    reach a clearly positive rank correlation on held-out graphs."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)

    def graphs(n):
        out = []
        for _ in range(n):
            k = int(rng.integers(1, 4))
            out.append((rng.normal(size=(k, 164)).astype(np.float32), np.array([np.arange(k - 1), np.arange(1, k)])))
        return out

    def cost(gs):
        return np.array([np.exp(0.5 * g[0][:, 0].sum()) for g in gs])

    train_g, test_g = graphs(400), graphs(100)
    model = aiop.StoreGNN(aiop.GNNConfig())
    model.set_normalisation(train_g)
    losses = aiop.train(model, [(train_g, cost(train_g))], epochs=15, seed=seed)
    assert losses[-1] < losses[0]
    rho = spearmanr(aiop.score(model, test_g), -cost(test_g)).statistic
    assert rho > 0.6


def test_update_finetunes_and_checks_lengths(seed):
    ctx, cands = _candidates(_matmul(), 8)
    model = aiop.AIOPCostModel(seed=seed, min_records=4, finetune_epochs=2)
    weights = [p.detach().clone() for p in model.model.parameters()]
    results = [RunnerResult([1e-3 * (i + 1)], None) for i in range(7)] + [RunnerResult(None, "failed")]
    model.update(ctx, cands, results)
    assert any(not torch.equal(a, b) for a, b in zip(weights, model.model.parameters())), "finetune_epochs=2 trains the GNN"
    with pytest.raises((aiop.CostModelError, RuntimeError), match="8 candidates but 1 results"):
        model.update(ctx, cands, results[:1])
    with pytest.raises(aiop.CostModelError, match="min_records >= 1"):
        aiop.AIOPCostModel(min_records=0)


def test_update_fits_the_online_ranker(seed):
    """Default: the GNN stays as pre-trained; once min_records records exist, predict is the
    blend with the workload's ranker (weight n / (n + 64)), in the candidates' order."""
    ctx, cands = _candidates(_matmul(), 12)
    model = aiop.AIOPCostModel(seed=seed, min_records=6)
    graphs = aiop.encode(model.extractor, ctx, cands)
    weights = [p.detach().clone() for p in model.model.parameters()]
    gnn = aiop.score(model.model, graphs)
    results = [RunnerResult([1e-3 * (1 + (i * 7) % 5)], None) for i in range(5)]
    model.update(ctx, cands[:5], results)  # 5 < min_records: GNN only
    assert not model.rankers
    np.testing.assert_array_equal(model.predict(ctx, cands), gnn)
    model.update(ctx, cands[5:8], results[:2] + [RunnerResult(None, "failed")])
    assert all(torch.equal(a, b) for a, b in zip(weights, model.model.parameters())), "default does not fine-tune"
    (ranker,) = model.rankers.values()
    pred = model.predict(ctx, cands)
    assert pred.shape == (12,) and not np.allclose(pred, gnn)
    np.testing.assert_allclose(pred, aiop.hybrid_score(model.model, graphs, ranker, 8))
    np.testing.assert_allclose(model.predict(ctx, cands[::-1]), pred[::-1], rtol=1e-6)


def test_hybrid_score_blend_hand_worked(seed):
    assert aiop.blend_weight(0) == 0.0
    assert aiop.blend_weight(64) == 0.5 and aiop.blend_weight(192) == 0.75
    assert aiop.blend_weight(16, half=16) == 0.5
    rng = np.random.default_rng(seed)
    graphs = [(rng.normal(size=(2, 164)).astype(np.float32), np.array([[0], [1]])) for _ in range(30)]
    costs = np.exp(-np.array([g[0][:, 0].sum() for g in graphs]))
    gnn_model = aiop.StoreGNN(aiop.GNNConfig())
    ranker = aiop.fit_ranker(graphs, costs, seed=seed)
    gnn = aiop.score(gnn_model, graphs)
    np.testing.assert_array_equal(aiop.hybrid_score(gnn_model, graphs), gnn)  # no ranker: GNN alone
    np.testing.assert_allclose(aiop.hybrid_score(gnn_model, graphs, ranker, 0), (gnn - gnn.mean()) / gnn.std())
    ranked = ranker.predict(aiop.xgboost.DMatrix(aiop.summed_features(graphs)))
    zr = (ranked - ranked.mean()) / ranked.std()
    zg = (gnn - gnn.mean()) / gnn.std()
    np.testing.assert_allclose(aiop.hybrid_score(gnn_model, graphs, ranker, 192), 0.25 * zg + 0.75 * zr, rtol=1e-5)


def test_fit_ranker_learns_ranking_and_is_seeded(seed):
    """Costs that fall with one summed feature: the ranker must order unseen graphs by it."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    graphs = [(rng.normal(size=(int(rng.integers(1, 4)), 164)).astype(np.float32), np.zeros((2, 0), np.int64))
              for _ in range(120)]
    costs = np.exp(-np.array([g[0][:, 3].sum() for g in graphs]))
    costs[:4] = aiop.FAILED_COST
    a = aiop.fit_ranker(graphs[:64], costs[:64], seed=seed)
    b = aiop.fit_ranker(graphs[:64], costs[:64], seed=seed)
    test = aiop.xgboost.DMatrix(aiop.summed_features(graphs[64:]))
    np.testing.assert_array_equal(a.predict(test), b.predict(test))
    assert spearmanr(a.predict(test), -costs[64:]).statistic > 0.6  # 0.72-0.86 over seeds 0-2; random ~0
    with pytest.raises(aiop.CostModelError, match="one cost per graph"):
        aiop.fit_ranker(graphs[:3], costs[:2])


def test_normalised_throughput_failed_is_zero():
    y = aiop.normalised_throughput(np.array([2.0, 1.0, aiop.FAILED_COST, 4.0]))
    np.testing.assert_allclose(y, [0.5, 1.0, 0.0, 0.25])


@pytest.mark.slow
def test_tune_tir_end_to_end(tmp_path, seed):
    """tune_tir with the AIO-P cost model finishes and its best schedule computes A @ B."""
    func = _matmul(64)
    strategy = ms.search_strategy.EvolutionarySearch(population_size=32, init_min_unmeasured=16, genetic_num_iters=1)
    with skip_tensor_intrin_import():
        db = ms.tune_tir(
            func,
            TARGET,
            str(tmp_path),
            max_trials_global=8,
            num_trials_per_iter=4,
            builder=make_builder(),
            runner=make_runner(number=1),
            database=ms.database.MemoryDatabase(),
            cost_model=aiop.AIOPCostModel(seed=seed, min_records=4),  # the default: GNN + online ranker
            strategy=strategy,
            seed=seed,
        )
        sch = ms.tir_integration.compile_tir(db, func, TARGET)
    assert sch is not None, "no successful measurement"
    lib = tvm.compile(sch.mod, target=tvm.target.Target(TARGET))
    rng = np.random.default_rng(seed)
    a, b = (rng.normal(size=(64, 64)).astype("float32") for _ in range(2))
    c = tvm.runtime.tensor(np.zeros((64, 64), "float32"))
    lib["main"](tvm.runtime.tensor(a), tvm.runtime.tensor(b), c)
    np.testing.assert_allclose(c.numpy(), a @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_tune_relax_end_to_end(tmp_path, seed):
    """tune_relax over a Relax module's tasks (matmul, relu) with the AIO-P cost model; the VM
    built from the tuned database computes relu(x @ w)."""
    from tvm import relax

    bb = relax.BlockBuilder()
    x, w = (relax.Var(n, relax.TensorType((32, 32), "float32")) for n in ("x", "w"))
    with bb.function("main", [x, w]):
        with bb.dataflow():
            out = bb.emit_output(bb.emit(relax.op.nn.relu(bb.emit(relax.op.matmul(x, w)))))
        bb.emit_func_output(out)
    mod = relax.transform.LegalizeOps()(bb.get())
    target = tvm.target.Target(TARGET)
    strategy = ms.search_strategy.EvolutionarySearch(population_size=32, init_min_unmeasured=16, genetic_num_iters=1)
    with skip_tensor_intrin_import():
        db = ms.relax_integration.tune_relax(
            mod, {}, target, str(tmp_path), max_trials_global=8, num_trials_per_iter=4, builder=make_builder(),
            runner=make_runner(number=1), database=ms.database.MemoryDatabase(),
            cost_model=aiop.AIOPCostModel(seed=seed, min_records=4), strategy=strategy, seed=seed)
        executable = ms.relax_integration.compile_relax(db, mod, target, params=None)
    assert len(db.get_all_tuning_records()) >= 2, "both tasks measured"
    rng = np.random.default_rng(seed)
    a, b = (rng.normal(size=(32, 32)).astype("float32") for _ in range(2))
    got = relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(a), tvm.runtime.tensor(b)).numpy()
    np.testing.assert_allclose(got, np.maximum(a @ b, 0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "kind,shape",
    [
        ("conv2d", dict(c_in=3, c_out=4, hw=7, k=3, stride=2, pad=1)),
        ("depthwise", dict(c_in=5, hw=8, k=5, stride=2, pad=2)),
        ("maxpool", dict(c_in=2, hw=7, k=3, stride=2, pad=1)),
        ("avgpool", dict(c_in=3, hw=4, k=4)),
        ("dense", dict(c_in=6, c_out=5)),
    ],
)
def test_collector_workloads_match_torch(kind, shape, seed):
    """The TE layers tuned by benchmarks/collect_ms_records.py compute what their zoo
    layer computes (small shapes, unscheduled build vs torch)."""
    collect = _collector()
    w = collect.Workload("t", kind, "test", **shape)
    lib = tvm.compile(tvm.IRModule({"main": w.prim_func()}), target="llvm")
    g = torch.Generator().manual_seed(seed)
    if kind == "dense":
        x, wt = torch.randn(1, w.c_in, generator=g), torch.randn(w.c_out, w.c_in, generator=g)
        ref = x @ wt.T
        ins = [x, wt]
    else:
        x = torch.randn(1, w.c_in, w.hw, w.hw, generator=g)
        ins = [x]
        if kind == "conv2d":
            wt = torch.randn(w.c_out, w.c_in, w.k, w.k, generator=g)
            ref, ins = F.conv2d(x, wt, stride=w.stride, padding=w.pad), [x, wt]
        elif kind == "depthwise":
            wt = torch.randn(w.c_in, 1, w.k, w.k, generator=g)
            ref, ins = F.conv2d(x, wt, stride=w.stride, padding=w.pad, groups=w.c_in), [x, wt]
        elif kind == "maxpool":
            ref = F.max_pool2d(x, w.k, w.stride, w.pad)
        else:
            ref = F.avg_pool2d(x, w.k, w.stride, w.pad)
    out = tvm.runtime.tensor(np.zeros(tuple(ref.shape), "float32"))
    lib["main"](*[tvm.runtime.tensor(t.numpy()) for t in ins], out)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-4, atol=1e-4)


def test_collector_has_20_distinct_workloads():
    collect = _collector()
    keys = {(w.kind, w.c_in, w.c_out, w.hw, w.k, w.stride, w.pad) for w in collect.WORKLOADS}
    assert len(keys) == len(collect.WORKLOADS) >= 20
    assert {w.kind for w in collect.WORKLOADS} == {"conv2d", "depthwise", "dense", "maxpool", "avgpool"}


def test_pretrain_is_seeded():
    """Same seed -> same pre-trained scores; another seed -> different ones."""
    rng = np.random.default_rng(0)
    graphs = [(rng.normal(size=(2, 164)).astype(np.float32), np.array([[0], [1]])) for _ in range(40)]
    groups = [(graphs[:20], rng.uniform(1, 2, 20)), (graphs[20:], rng.uniform(1, 2, 20))]
    a, b, c = (aiop.score(aiop.pretrain(groups, epochs=2, seed=s), graphs) for s in (3, 3, 4))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_online_records_in_order(tmp_path):
    """ms_online reads a JSON database's records in measurement order; failed -> FAILED_COST."""
    online = benchmark_scripts.load("ms_online")
    lines = [[0, [["t0"], [3e-3, 1e-3, 2e-3], {}, []]], [0, [["t1"], [1e10], {}, []]], [0, [["t2"], [5e-4], {}, []]]]
    path = tmp_path / "rec.json"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert online.records_in_order(path) == [(["t0"], 2e-3), (["t1"], aiop.FAILED_COST), (["t2"], 5e-4)]


def test_mlp_steplr_shim_is_scoped():
    """The MLPModel shim accepts StepLR(verbose=...) inside its context only."""
    shim = benchmark_scripts.load("ms_cost_model").steplr_without_verbose
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    original = torch.optim.lr_scheduler.StepLR
    with shim():
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5, verbose=True)
        opt.step()
        sched.step()
    assert torch.optim.lr_scheduler.StepLR is original
    assert opt.param_groups[0]["lr"] == 0.5
