"""FLOPs reduction search (predictor.reduce) with stub estimators, plus AIOPEstimator and the CLI."""

import itertools
import json
import random

import numpy as np
import pytest

from predictor import reduce as R
from predictor.reduce import Candidate, Space, UnsupportedFamilyError

# per-op MFLOPs and "accuracy" of a toy additive world (codes index the NB201 op order:
# skip, none, conv3x3, conv1x1, avgpool); conv3x3 is best and most expensive
OP_FLOPS = (0.0, 0.0, 9.0, 1.0, 0.5)
OP_SCORE = (0.4, 0.0, 1.0, 0.7, 0.3)


def flops_fn(arch):
    return 10.0 + sum(OP_FLOPS[c] for c in arch)


def score_fn(archs):
    return [sum(OP_SCORE[c] for c in a) for a in archs]


@pytest.mark.parametrize("family", ["nb201", "tnb101"])
def test_neighbours_stay_in_space(family):
    sp = R.space_for(family)
    n = len(sp.ops)
    rng = random.Random(0)
    for _ in range(20):
        a = tuple(rng.randrange(n) for _ in range(6))
        nb = sp.neighbours(a, 2)
        assert len(nb) == len(set(nb)) == 6 * (n - 1) + 15 * (n - 1) ** 2
        assert all(sp.contains(b) for b in nb)
        assert {sum(x != y for x, y in zip(a, b)) for b in nb} == {1, 2}
    # edge removal (op -> none) is one of the mutations
    assert (1, 2, 2, 2, 2, 2) in sp.neighbours((2,) * 6, 1)
    assert sp.ops[sp.none_code] == "none"
    with pytest.raises(ValueError, match=f"{family} encoding"):
        sp.check((0, 0, 0, 0, 0, len(sp.ops)))


def test_search_results_reduce_flops_and_respect_the_threshold():
    sp = R.space_for("nb201")
    start = (2, 2, 3, 2, 4, 2)
    res = R.reduce(start, sp, score_fn, flops_fn, tolerance=0.5, budget=60, seed=3, progress=False)
    assert res.evaluations == 60 == len(res.evaluated)
    assert len({c.arch for c in res.evaluated}) == 60 and start not in {c.arch for c in res.evaluated}
    assert res.start.score == pytest.approx(5.0) and res.threshold == pytest.approx(4.5)
    assert res.front
    for c in res.front:
        assert sp.contains(c.arch)
        assert c.flops < res.start.flops and c.flops == flops_fn(c.arch)
        assert c.score >= res.threshold
    # the front is non-dominated and sorted by FLOPs with strictly rising scores
    assert [c.flops for c in res.front] == sorted(c.flops for c in res.front)
    assert all(a.score < b.score for a, b in zip(res.front, res.front[1:]))
    # with a 0.5 budget the best move swaps one conv3x3 for conv1x1 (-8 MFLOPs, -0.3)
    assert min(c.flops for c in res.front) <= res.start.flops - 8


def test_exhaustive_search_finds_the_brute_force_front():
    """On a toy space small enough to cover (3 ops, 4 edges), every arch is a start neighbour."""
    sp = Space("toy", ("skip", "none", "conv"), num_edges=4)
    f = {0: 1.0, 1: 0.0, 2: 5.0}
    s = {0: 0.5, 1: 0.0, 2: 1.0}
    fl = lambda a: 1.0 + sum(f[c] for c in a)  # noqa: E731
    sc = lambda archs: [sum(s[c] for c in a) - 0.01 * a[0] for a in archs]  # noqa: E731
    start = (2, 2, 2, 2)
    res = R.reduce(start, sp, sc, fl, tolerance=1.6, budget=1000, seed=0, max_edits=4, progress=False)
    s0 = sc([start])[0]
    brute = [Candidate(a, fl(a), sc([a])[0]) for a in itertools.product(range(3), repeat=4)]
    want = R.pareto_front([c for c in brute if c.flops < fl(start) and c.score >= s0 - 1.6])
    # equal (FLOPs, score) pairs are interchangeable, so compare the values
    assert [(c.flops, c.score) for c in res.front] == [(c.flops, c.score) for c in want]
    assert all(c.flops == fl(c.arch) and c.score == sc([c.arch])[0] for c in res.front)
    assert res.evaluations == sum(c.flops < fl(start) for c in brute)  # only FLOPs-reducing archs are scored


def test_same_seed_same_result_and_allowed_set():
    sp = R.space_for("tnb101")
    start = (2, 2, 3, 2, 0, 2)
    a = R.reduce(start, sp, score_fn, flops_fn, 0.8, budget=40, seed=7, progress=False)
    b = R.reduce(start, sp, score_fn, flops_fn, 0.8, budget=40, seed=7, progress=False)
    c = R.reduce(start, sp, score_fn, flops_fn, 0.8, budget=40, seed=8, progress=False)
    assert a.evaluated == b.evaluated and a.front == b.front
    assert [x.arch for x in a.evaluated] != [x.arch for x in c.evaluated]
    rng = random.Random(1)
    allowed = {tuple(rng.randrange(4) for _ in range(6)) for _ in range(800)}
    d = R.reduce(start, sp, score_fn, flops_fn, 0.8, budget=500, seed=1, allowed=allowed, progress=False)
    assert 0 < d.evaluations < 500  # the restricted neighbourhood runs out before the budget
    assert all(x.arch in allowed for x in d.evaluated)
    base = R.random_reductions(start, sp, flops_fn, 30, seed=2)
    assert [x.arch for x in base] == [x.arch for x in R.random_reductions(start, sp, flops_fn, 30, seed=2)]
    assert len(base) == 30 and all(x.flops < flops_fn(start) for x in base)


def test_family_without_mutation_space_is_a_clear_error(tmp_path):
    for fam in ("nb101", "nb301", "resnet"):
        with pytest.raises(UnsupportedFamilyError, match=f"'{fam}'.*nb201, tnb101"):
            R.space_for(fam)
    from predictor.cli import main

    with pytest.raises(SystemExit, match="no mutation space for family 'nb101'"):
        main(["reduce", "--checkpoint", str(tmp_path / "x.pt"), "--task", "nb101/cifar10",
              "--start", "[0]"])


def _tiny_model(tmp_path):
    from predictor.aiop import AIOP, FeatureCache

    from test_predictor import _synthetic

    recs, graphs = _synthetic(20, 1)
    m = AIOP.pretrain([r for r in recs if r.family == "src"], FeatureCache(graphs), lambda r: ("syn", r.arch),
                      epochs=2, seed=0, hidden=16, layers=2, progress=False)
    m = m.finetune([r for r in recs if r.family == "src"][:10], FeatureCache(graphs), lambda r: ("syn", r.arch),
                   "nb201/cifar10", steps=5)
    path = tmp_path / "m.pt"
    m.save(path)
    return m, path


def _fake_graph(family, task, arch):
    """A chain whose ops follow the cell codes, so FLOPs and features depend on the encoding."""
    from test_predictor import chain

    names = {0: "relu", 1: "relu", 2: "conv3", 3: "conv1", 4: "pool"}
    return chain([names[c] for c in arch if c != 1] or ["relu"], c=8, h=8)


def test_aiop_estimator_and_cli(tmp_path, monkeypatch, capsys):
    from predictor import graphs

    calls = []
    monkeypatch.setattr(graphs, "network_graph", lambda f, t, a: calls.append(a) or _fake_graph(f, t, a))
    m, ck = _tiny_model(tmp_path)
    est = R.AIOPEstimator(m, "nb201", "cifar10")
    a, b = (2, 2, 2, 2, 2, 2), (1, 3, 2, 1, 0, 4)
    got = est([a, b, a])
    assert got[0] == got[2] and got[0] == pytest.approx(m.predict(_fake_graph("nb201", "cifar10", a),
                                                                  task="nb201/cifar10"), rel=1e-5)
    assert est.flops(a) == pytest.approx(222.860992)  # the benchmark's count, not the graph's
    assert calls == [a, b]  # one graph per architecture, then cached
    with pytest.raises(KeyError, match="aiop finetune"):
        R.AIOPEstimator(m, "nb201", "cifar100")
    out = tmp_path / "front"
    assert main_reduce(ck, out) == 0
    text = capsys.readouterr().out
    assert "| start | [2, 2, 2, 2, 2, 2] |" in text
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["start"]["arch"] == [2] * 6 and out.with_suffix(".png").stat().st_size > 1000
    assert all(r["mflops"] < meta["start"]["mflops"] for r in meta["front"])
    assert np.all(np.diff([r["mflops"] for r in meta["front"]]) > 0)


def main_reduce(ck, out):
    from predictor.cli import main

    return main(["reduce", "--checkpoint", str(ck), "--task", "nb201/cifar10", "--start", "[2, 2, 2, 2, 2, 2]",
                 "--tolerance", "100", "--budget", "12", "--out", str(out)])


def test_benchmark_flops_hand_worked():
    """NB201 cells hold C^2 H W MACs per 1x1 conv edge at every stage (channels double as H and W
    halve), 16^2 * 32^2 on CIFAR, in 5 cells x 3 stages; a 3x3 conv holds 9x that. So one edge
    going from conv3x3 to conv1x1 saves 15 * 8 * 16^2 * 32^2 MACs, a quarter of it at 16x16."""
    a, b = (2,) * 6, (3, 2, 2, 2, 2, 2)
    for task, hw in (("cifar10", 32), ("ImageNet16-120", 16)):
        f = R.BenchmarkFlops("nb201", task)
        assert f(a) - f(b) == pytest.approx(15 * 8 * 16**2 * hw**2 / 1e6, rel=1e-12)
    # every labelled architecture's own count is reproduced, and unlabelled encodings get one too
    from predictor import data

    recs = [r for r in data.load_family("tnb101") if r.task == "room_layout"]
    f = R.BenchmarkFlops("tnb101", "room_layout", recs)
    assert all(f(r.arch) == pytest.approx(r.flops, rel=1e-9) for r in recs)
    labelled = {r.arch for r in recs}
    assert any(x not in labelled and f(x) > 0 for x in itertools.product(range(4), repeat=6))


def test_benchmark_flops_refuses_what_it_cannot_extend():
    from predictor.data import DataError, Record

    def rec(arch, flops):
        return Record("nb201", "t", arch, 0.0, flops, 0.0)

    def cost(arch):  # additive: 1 + (edge + 1) * op code
        return 1.0 + sum((e + 1) * c for e, c in enumerate(arch))

    # every (edge, op) once: the all-skip cell with one edge changed
    single = [tuple(c if i == e else 0 for i in range(6)) for e in range(6) for c in range(5)]
    f = R.BenchmarkFlops("nb201", "t", [rec(a, cost(a)) for a in single])
    assert f((4, 3, 2, 1, 0, 4)) == pytest.approx(cost((4, 3, 2, 1, 0, 4)))  # an encoding it never saw
    with pytest.raises(DataError, match="not additive"):
        R.BenchmarkFlops("nb201", "t", [rec(a, cost(a)) for a in single] + [rec((4, 4, 0, 0, 0, 0), 999.0)])
    with pytest.raises(DataError, match="no architecture with edge 2 op none.*undetermined"):
        R.BenchmarkFlops("nb201", "t", [rec(a, cost(a)) for a in single if a != (0, 0, 1, 0, 0, 0)])
    with pytest.raises(DataError, match="no nb201/missing architectures"):
        R.BenchmarkFlops("nb201", "missing", [rec(a, cost(a)) for a in single])
