"""Ensemble estimators in the FLOPs-reduction search: the pessimistic child-minus-start score,
bootstrap heads and the multi-model AIOPEstimator."""

import numpy as np
import pytest

from predictor import reduce as R
from predictor.reduce import Space

SP = Space("toy", ("skip", "none", "conv"), num_edges=3)
FLOPS = {0: 1.0, 1: 0.0, 2: 5.0}


def flops_fn(arch):
    return 1.0 + sum(FLOPS[c] for c in arch)


# two members per arch; start (2, 2, 2)
MEMBERS = {
    (2, 2, 2): (10.0, 12.0),
    (0, 2, 2): (9.0, 11.0),    # both members: -1 -> mean -1, std 0
    (2, 0, 2): (11.0, 9.0),    # +1 and -3 -> mean -1, std 2
    (2, 2, 0): (8.0, 14.0),    # -2 and +2 -> mean 0, std 2
}


def members_fn(archs):
    return np.array([MEMBERS.get(a, (0.0, 0.0)) for a in archs])


def test_pessimistic_difference_hand_worked():
    res = R.reduce((2, 2, 2), SP, members_fn, flops_fn, tolerance=1.5, budget=100, seed=0, max_edits=1,
                   kappa=0.5, progress=False)
    assert res.start.score == 11.0 and res.threshold == 9.5
    got = {c.arch: c.score for c in res.evaluated}
    # score = 11 + mean(d) - 0.5 * std(d), d = member-wise child - start
    assert got[(0, 2, 2)] == pytest.approx(10.0)
    assert got[(2, 0, 2)] == pytest.approx(9.0)
    assert got[(2, 2, 0)] == pytest.approx(10.0)
    front = {c.arch for c in res.front}
    # the child whose members disagree (std 2, mean -1) is held back; mean alone (kappa 0) keeps it
    assert (2, 0, 2) not in front and front & {(0, 2, 2), (2, 2, 0)}  # equal (FLOPs, score): either one
    mean_only = R.reduce((2, 2, 2), SP, members_fn, flops_fn, tolerance=1.5, budget=100, seed=0, max_edits=1,
                         progress=False)
    assert {c.arch: c.score for c in mean_only.evaluated}[(2, 0, 2)] == pytest.approx(10.0)


def test_identical_members_equal_a_single_estimator():
    def single(archs):
        return [sum(c for c in a) + 0.1 * a[0] for a in archs]

    one = R.reduce((2, 2, 2), SP, single, flops_fn, 1.0, budget=20, seed=4, max_edits=2, kappa=3.0, progress=False)
    many = R.reduce((2, 2, 2), SP, lambda archs: np.repeat(np.asarray(single(archs))[:, None], 4, 1), flops_fn, 1.0,
                    budget=20, seed=4, max_edits=2, kappa=3.0, progress=False)
    assert [c.arch for c in one.evaluated] == [c.arch for c in many.evaluated]
    assert [c.score for c in one.evaluated] == pytest.approx([c.score for c in many.evaluated])


def test_bad_ensemble_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="kappa must be >= 0"):
        R.reduce((2, 2, 2), SP, members_fn, flops_fn, 1.0, kappa=-1, progress=False)
    calls = []

    def changing(archs):
        calls.append(len(archs))
        return np.zeros((len(archs), 2 if len(calls) == 1 else 3))

    with pytest.raises(ValueError, match="3 members for children but 2 for the start"):
        R.reduce((2, 2, 2), SP, changing, flops_fn, 1.0, progress=False)
    with pytest.raises(ValueError, match="score_fn must return 1 values"):
        R.reduce((2, 2, 2), SP, lambda archs: [1.0, 2.0], flops_fn, 1.0, progress=False)


def test_bootstrap_heads_and_ensemble_estimator(tmp_path, monkeypatch):
    from predictor import graphs
    from predictor.aiop import FeatureCache

    from test_predictor import _synthetic
    from test_predictor_reduce import _fake_graph, _tiny_model

    monkeypatch.setattr(graphs, "network_graph", lambda f, t, a: _fake_graph(f, t, a))
    base, _ = _tiny_model(tmp_path)
    recs, gs = _synthetic(20, 1)
    recs = [r for r in recs if r.family == "src"][:12]
    feats, key = FeatureCache(gs), (lambda r: ("syn", r.arch))
    heads = R.bootstrap_heads(base, recs, feats, key, "nb201/cifar10", members=3, seed=5)
    again = R.bootstrap_heads(base, recs, feats, key, "nb201/cifar10", members=3, seed=5)
    archs = [(2, 2, 2, 2, 2, 2), (1, 3, 2, 1, 0, 4), (0, 0, 3, 3, 4, 4)]
    est = R.AIOPEstimator(heads, "nb201", "cifar10")
    got = est(archs)
    assert got.shape == (3, 3)
    np.testing.assert_allclose(got, R.AIOPEstimator(again, "nb201", "cifar10")(archs))  # same seed, same heads
    for j, h in enumerate(heads):  # each column is that member alone
        np.testing.assert_allclose(got[:, j], R.AIOPEstimator(h, "nb201", "cifar10")(archs), rtol=1e-6)
    assert np.ptp(got, axis=1).max() > 0  # the resamples make the members differ
    with pytest.raises(ValueError, match=">= 1 members"):
        R.bootstrap_heads(base, recs, feats, key, "nb201/cifar10", members=0)


def test_cli_reduce_with_an_ensemble(tmp_path, monkeypatch, capsys):
    """`aiop reduce --checkpoint a.pt b.pt`: the start is the members' mean, the front is below its FLOPs."""
    import json

    from predictor import graphs
    from predictor.aiop import FeatureCache
    from predictor.cli import main

    from test_predictor import _synthetic
    from test_predictor_reduce import _fake_graph, _tiny_model

    monkeypatch.setattr(graphs, "network_graph", lambda f, t, a: _fake_graph(f, t, a))
    base, _ = _tiny_model(tmp_path)
    recs, gs = _synthetic(20, 1)
    heads = R.bootstrap_heads(base, [r for r in recs if r.family == "src"][:12], FeatureCache(gs),
                              lambda r: ("syn", r.arch), "nb201/cifar10", members=2, seed=1)
    paths = [tmp_path / f"seg-{i}.pt" for i in range(2)]
    for h, p in zip(heads, paths):
        h.save(p)
    start = (2, 2, 2, 2, 2, 2)
    out = tmp_path / "front"
    assert main(["reduce", "--checkpoint", *map(str, paths), "--kappa", "1", "--search-factor", "1", "--task",
                 "nb201/cifar10", "--start", str(list(start)), "--tolerance", "100", "--budget", "12",
                 "--out", str(out)]) == 0
    assert "search factor 1, 2 members, kappa 1)" in capsys.readouterr().out
    meta = json.loads(out.with_suffix(".json").read_text())
    members = R.AIOPEstimator(heads, "nb201", "cifar10")([start])[0]
    assert meta["checkpoints"] == list(map(str, paths)) and meta["kappa"] == 1.0 and meta["search_factor"] == 1.0
    assert meta["start"]["predicted"] == pytest.approx(members.mean(), rel=1e-6)
    assert meta["front"] and all(r["mflops"] < meta["start"]["mflops"] for r in meta["front"])
    # without --kappa and --search-factor: the setting validated for the heads' 12 fine-tuning labels (nearest
    # count 50), whose factor leaves the search a quarter of the tolerance
    assert all(h.config["finetune_labels"] == {"nb201/cifar10": 12} for h in heads)
    assert main(["reduce", "--checkpoint", *map(str, paths), "--task", "nb201/cifar10", "--start", str(list(start)),
                 "--tolerance", "100", "--budget", "12", "--out", str(out)]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert (meta["kappa"], meta["search_factor"]) == (2.0, 0.25) == (R.SEARCH_BY_LABELS[50].kappa,
                                                                     R.SEARCH_BY_LABELS[50].tolerance_factor)
    assert all(r["predicted_delta"] >= -25.0 - 1e-9 for r in meta["front"])  # 0.25 x the tolerance of 100
    # one model: the whole tolerance unless told
    assert main(["reduce", "--checkpoint", str(paths[0]), "--task", "nb201/cifar10", "--start", str(list(start)),
                 "--tolerance", "100", "--budget", "12", "--out", str(out)]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["search_factor"] == 1.0
    with pytest.raises(SystemExit, match="--members must be >= 1"):
        main(["finetune", "--checkpoint", str(paths[0]), "--task", "nb201/cifar10", "--members", "0", "--out", "x.pt"])


def test_default_search_is_the_nearest_validated_label_count():
    """Nearest on a log scale: 100 is the midpoint of 50 and 200; unknown counts get the cautious
    50-label setting (kappa 2, a quarter of the tolerance); one model gets the whole tolerance."""
    fifty, two_hundred = R.SearchSetting(2.0, 0.25), R.SearchSetting(1.5, 1.0)
    assert R.SEARCH_BY_LABELS == {50: fifty, 200: two_hundred}
    assert [R.default_search(n, 10) for n in (None, 12, 50, 99, 101, 200, 1000)] == [fifty] * 4 + [two_hundred] * 3
    # the factor was validated for ensembles: one model keeps the whole tolerance
    assert R.default_search(50, 1) == R.SearchSetting(2.0, 1.0)


def test_bootstrap_scratch_members_mix_with_heads(tmp_path, monkeypatch):
    """GNNs trained from scratch on bootstrap resamples: seeded, different from each other, and
    usable beside fine-tuned heads in one ensemble, each column being that member alone."""
    import dataclasses

    from predictor import graphs
    from predictor.aiop import FeatureCache

    from test_predictor import _synthetic
    from test_predictor_reduce import _fake_graph, _tiny_model

    monkeypatch.setattr(graphs, "network_graph", lambda f, t, a: _fake_graph(f, t, a))
    base, _ = _tiny_model(tmp_path)
    recs, gs = _synthetic(20, 1)
    # the task's own records: a scratch member's head is named after their task, as the heads are
    recs = [dataclasses.replace(r, family="nb201", task="cifar10") for r in recs if r.family == "src"][:12]
    feats, key = FeatureCache(gs), (lambda r: ("syn", r.arch))
    scratch = R.bootstrap_scratch(recs, feats, key, members=2, seed=5)
    again = R.bootstrap_scratch(recs, feats, key, members=2, seed=5)
    heads = R.bootstrap_heads(base, recs, feats, key, "nb201/cifar10", members=2, seed=5)
    archs = [(2, 2, 2, 2, 2, 2), (1, 3, 2, 1, 0, 4), (0, 0, 3, 3, 4, 4)]
    got = R.AIOPEstimator(heads + scratch, "nb201", "cifar10")(archs)
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got[:, 2:], R.AIOPEstimator(again, "nb201", "cifar10")(archs))  # same seed
    for j, m in enumerate(heads + scratch):
        np.testing.assert_allclose(got[:, j], R.AIOPEstimator(m, "nb201", "cifar10")(archs), rtol=1e-6)
    assert np.ptp(got[:, 2:], axis=1).max() > 0
    other = scratch[0].copy()
    other.kinds = other.kinds[:-1]
    with pytest.raises(ValueError, match="encode op kinds differently"):
        R.AIOPEstimator([scratch[1], other], "nb201", "cifar10")
    with pytest.raises(ValueError, match=">= 1 members"):
        R.bootstrap_scratch(recs, feats, key, members=0)


def test_bootstrap_scratch_trains_on_the_heads_resamples(monkeypatch):
    """Scratch members see exactly the resamples bootstrap heads of the same seed fine-tune on, so a
    mixed ensemble's two kinds of members differ in pre-training only."""
    from predictor.aiop import AIOP

    seen = {"heads": [], "scratch": []}

    class Base:
        def finetune(self, sample, *args, **kwargs):
            seen["heads"].append([r for r in sample])

    monkeypatch.setattr(AIOP, "pretrain", classmethod(lambda cls, sample, *a, **k: seen["scratch"].append(list(sample))))
    records = list(range(7))
    R.bootstrap_heads(Base(), records, None, None, "h", members=3, seed=2)
    R.bootstrap_scratch(records, None, None, members=3, seed=2)
    assert seen["heads"] == seen["scratch"] and len(seen["heads"]) == 3
    assert len({tuple(s) for s in seen["heads"]}) == 3  # resampled per member
