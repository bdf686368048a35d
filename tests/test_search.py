"""Search algorithms on synthetic graphs: validity, budgets, determinism, optimality oracles."""

from __future__ import annotations

import itertools
import random

import pytest

from random_graphs import chain, diamond, random_dag
from tvm_fusion.hardware import Accelerator
from tvm_fusion.plan import Plan, _is_convex, graph_index, is_connected, mask_of
from tvm_fusion.search import RandomSplitter, make_splitter, search
from tvm_fusion.search.exhaustive import _connected_sets
from tvm_fusion.search.base import SearchContext
from tvm_fusion.search.interval_dp import interval_dp

cost = pytest.importorskip("tvm_fusion.cost", reason="C++ cost model not built")

BUDGETED = ("rs", "ls", "nsga2")
ALL = BUDGETED + ("dp", "exhaustive")
ACCELS = [Accelerator("2KB"), Accelerator("3KB", "brr")]


def _check_result(g, acc, r):
    plan = Plan.from_groups(g, r.plan.groups)  # valid partition
    assert plan.groups == r.plan.groups
    cm = cost.CostModel(g, acc)
    t = plan.totals(cm)
    assert t == r.totals and t.legal
    assert t.lower_bound_bytes <= t.dram_bytes
    for v in cm.unfusable():
        assert (v,) in plan.groups
    drams = [d for _, d in r.history]
    assert drams == sorted(drams, reverse=True) and drams[-1] == t.dram_bytes


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("acc", ACCELS, ids=str)
def test_every_search_valid_within_budget_and_exhaustive_is_best(seed, acc):
    g = random_dag(11, seed)
    results = {a: search(g, acc, a, budget=60, seed=seed, progress=False) for a in ALL}
    for a, r in results.items():
        _check_result(g, acc, r)
        assert r.evaluated_plans == (60 if a in BUDGETED else 1)
    best = results["exhaustive"].totals.dram_bytes
    assert all(best <= r.totals.dram_bytes for r in results.values())
    assert results["exhaustive"].totals.dram_bytes <= results["dp"].totals.dram_bytes


@pytest.mark.parametrize("seed", range(4))
def test_interval_dp_equals_exhaustive_on_chains(seed):
    g = chain(12, seed)
    for acc in (Accelerator("2KB"), Accelerator("4KB"), Accelerator("3KB", "brr")):
        dp = search(g, acc, "dp", progress=False).totals.dram_bytes
        ex = search(g, acc, "exhaustive", progress=False).totals.dram_bytes
        assert dp == ex


def _set_partitions(n):
    """All set partitions of range(n) as restricted growth strings."""
    def rec(labels, top):
        if len(labels) == n:
            yield labels
            return
        for lab in range(top + 2):
            yield from rec(labels + [lab], max(top, lab))
    yield from rec([0], 0) if n else iter([[]])


def _brute_force_optimum(g, acc):
    cm = cost.CostModel(g, acc)
    best = None
    for labels in _set_partitions(len(g)):
        groups = {}
        for v, lab in enumerate(labels):
            groups.setdefault(lab, []).append(v)
        try:
            plan = Plan.from_groups(g, groups.values())
        except ValueError:
            continue
        t = plan.totals(cm)
        if t.legal and (best is None or t.dram_bytes < best):
            best = t.dram_bytes
    return best


def test_diamond_optimum_by_brute_force():
    """Every set partition of the diamond is tried; all searches must find the cheapest legal one."""
    g = diamond()
    acc = Accelerator("2KB")
    best = _brute_force_optimum(g, acc)
    assert sum(1 for _ in _set_partitions(5)) == 52  # Bell(5)
    for a in ALL:
        assert search(g, acc, a, budget=100, seed=0, progress=False).totals.dram_bytes == best


@pytest.mark.parametrize("seed", range(3))
def test_exhaustive_matches_brute_force_on_random_dags(seed):
    g = random_dag(8, seed + 10, skip_prob=0.4)
    for acc in (Accelerator("2KB"), Accelerator("3KB", "brr")):
        assert search(g, acc, "exhaustive", progress=False).totals.dram_bytes == _brute_force_optimum(g, acc)


@pytest.mark.parametrize("algorithm", ALL)
def test_same_seed_same_plan(algorithm):
    g = random_dag(30, 7)
    acc = Accelerator("2KB")
    if algorithm == "exhaustive":
        g = random_dag(10, 7)
    a = search(g, acc, algorithm, budget=150, seed=3, progress=False)
    b = search(g, acc, algorithm, budget=150, seed=3, progress=False)
    assert a.plan == b.plan and a.history == b.history
    _check_result(g, acc, a)


def test_larger_graph_searches_beat_no_fusion():
    g = random_dag(80, 11)
    acc = Accelerator("4KB")
    for a in ("rs", "ls", "nsga2", "dp"):
        r = search(g, acc, a, budget=300, seed=0, progress=False)
        _check_result(g, acc, r)
        assert r.totals.dram_bytes < r.totals.no_fusion_bytes


def test_unfusable_ops_stay_alone():
    g = diamond()
    acc_small = Accelerator(1024)  # a 3x3 conv alone needs 1088 B here
    cm_small = cost.CostModel(g, acc_small)
    assert cm_small.unfusable() == [0, 1]
    for a in ALL:
        r = search(g, acc_small, a, budget=50, seed=1, progress=False)
        assert (0,) in r.plan.groups and (1,) in r.plan.groups
        _check_result(g, acc_small, r)


@pytest.mark.parametrize("seed", range(3))
def test_random_splitter_contract(seed):
    g = random_dag(40, seed)
    acc = Accelerator("2KB")
    cm = cost.CostModel(g, acc)
    idx = graph_index(g)
    ctx = SearchContext(g, acc, 10, seed, progress=False, cost_model=cm)
    splitter = make_splitter("random")
    assert isinstance(splitter, RandomSplitter)
    rng = random.Random(seed)
    checked = 0
    for _ in range(30):
        for group in ctx.random_partition(merge_prob=1.0):
            if len(group) < 2 or cm.group_cost(group)[2]:
                continue
            pieces = splitter.split(group, cm, rng)
            assert sorted(itertools.chain.from_iterable(pieces)) == list(group)
            for p in pieces:
                assert is_connected(g, p) and _is_convex(idx, p, mask_of(p))
                assert len(p) == 1 or cm.group_cost(p)[2]
            checked += 1
    assert checked > 0
    with pytest.raises(ValueError, match="unknown splitter 'nope'; available: .*random"):
        make_splitter("nope")


def test_connected_set_enumeration_is_complete_and_unique():
    g = random_dag(9, 4)
    ctx = SearchContext(g, Accelerator("1MB"), None, 0, progress=False)
    free = set(range(len(g)))
    got = list(_connected_sets(ctx, 0, free))
    assert len(got) == len(set(got))
    want = {c for k in range(1, len(g) + 1) for c in itertools.combinations(range(len(g)), k)
            if 0 in c and is_connected(g, c)}
    assert set(got) == want


def test_bad_arguments():
    g = chain(6)
    with pytest.raises(ValueError, match="unknown search algorithm 'foo'"):
        search(g, Accelerator("2KB"), "foo", progress=False)
    with pytest.raises(ValueError, match="positive number of plans"):
        search(g, Accelerator("2KB"), "rs", budget=0, progress=False)
    with pytest.raises(ValueError, match="limited to 20 ops"):
        search(random_dag(25, 0), Accelerator("2KB"), "exhaustive", progress=False)


def test_dp_interval_cap_still_valid():
    g = random_dag(50, 2)
    acc = Accelerator("4KB")
    ctx = SearchContext(g, acc, None, 0, progress=False)
    capped = interval_dp(ctx, max_interval=3)
    full = search(g, acc, "dp", progress=False)
    _check_result(g, acc, capped)
    assert full.totals.dram_bytes <= capped.totals.dram_bytes


def test_cli_optimize_writes_a_loadable_plan(tmp_path, monkeypatch, capsys):
    from tvm_fusion import cli

    g = random_dag(30, 5)
    monkeypatch.setattr(cli, "load_model", lambda model, input_size: g)
    out = tmp_path / "plan.json"
    assert cli.main(["optimize", "anything", "--buffer", "4KB", "--algorithm", "ls", "--budget", "50",
                     "--seed", "2", "--no-progress", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    plan = Plan.load(out, g)
    r = search(g, Accelerator("4KB"), "ls", budget=50, seed=2, progress=False)
    assert plan.groups == r.plan.groups and plan.accelerator["buffer_bytes"] == 4096
    assert f"{r.totals.dram_bytes / 2**20:.3f} MB" in text and "50 plans evaluated" in text


@pytest.mark.parametrize("argv, message", [
    (["optimize", "m", "--buffer", "12XB"], "cannot parse size '12XB'"),
    (["optimize", "m", "--budget", "0"], "expected a positive integer, got 0"),
    (["optimize", "m", "--algorithm", "sa"], "invalid choice: 'sa'"),
    (["optimize", "m", "--splitter", "nope"], "unknown splitter 'nope'"),
    (["optimize", "missing.onnx"], "ONNX file 'missing.onnx' does not exist"),
    (["optimize", "no_such_net"], "unknown model 'no_such_net'"),
])
def test_cli_bad_input_gives_argparse_errors(argv, message, capsys):
    from tvm_fusion import cli

    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_cli_corrupt_onnx(tmp_path, capsys):
    from tvm_fusion import cli

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(SystemExit):
        cli.main(["optimize", str(bad)])
    assert "is not a readable ONNX model" in capsys.readouterr().err


@pytest.mark.parametrize("seed", range(3))
def test_nsga2_genome_round_trip(seed):
    from tvm_fusion.search.nsga2 import _decode, _encode

    g = random_dag(60, seed)
    ctx = SearchContext(g, Accelerator("4KB"), None, seed, progress=False)
    for _ in range(10):
        groups = sorted(ctx.random_partition())
        assert sorted(_decode(ctx, _encode(ctx, groups))) == groups


def _tiny_onnx(path):
    """conv3x3+relu x6 with a residual add, written with onnx.helper (no exporter needed)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, nodes, prev = [], [], "x"
    for i in range(6):
        inits.append(numpy_helper.from_array(rng.standard_normal((8, 8, 3, 3)).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev = f"r{i}"
    nodes.append(helper.make_node("Add", ["r5", "r2"], ["y"]))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def test_cli_on_onnx_file(tmp_path, capsys):
    from tvm_fusion import cli

    _tiny_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "plan.json"
    assert cli.main(["optimize", str(tmp_path / "tiny.onnx"), "--buffer", "2KB", "--algorithm", "dp",
                     "--no-progress", "-o", str(out)]) == 0
    g = cli.load_model(str(tmp_path / "tiny.onnx"), None)
    plan = Plan.load(out, g)
    assert plan.totals(cost.CostModel(g, Accelerator("2KB"))).legal
    assert "model      tiny:" in capsys.readouterr().out
