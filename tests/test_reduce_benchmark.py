"""Helpers of benchmarks/aiop_reduce.py that its ceiling study rests on, hand-worked."""

import math

import numpy as np
import pytest

import benchmark_scripts
from predictor import reduce as R
from predictor.data import Record

bench = benchmark_scripts.load("aiop_reduce")

OP_FLOPS = (0.0, 0.0, 9.0, 1.0, 0.5)  # NB201 op order: skip, none, conv3x3, conv1x1, avgpool


def flops_fn(arch):
    return 10.0 + sum(OP_FLOPS[c] for c in arch)


def test_difference_error_hand_worked():
    """Errors of the child-minus-start difference over allowed FLOPs-reducing neighbours near the
    boundary only: children a (+1.5) and b (-0.5) against the start (+0.5) err by +1 and -1, so
    RMS 1, / sqrt 2, in tolerances (0.5 here)."""
    space = R.space_for("nb201")
    start = (2,) * 6
    a, b, finetuned = (3, 2, 2, 2, 2, 2), (0, 2, 2, 2, 2, 2), (2, 2, 2, 2, 2, 4)
    far = (1, 2, 2, 2, 2, 2)  # 5 tolerances below the start: outside the band
    labels = {start: 90.0, a: 89.0, b: 88.5, finetuned: 89.0, far: 87.5}
    noise = {start: 0.5, a: 1.5, b: -0.5, finetuned: 100.0, far: 100.0}
    starts = [Record("nb201", "cifar10", start, 90.0, 0.0, 0.0)]
    allowed = {a, b, far}  # a fine-tuning arch is never returned; it would dominate the error if counted

    def est(archs):
        return [labels[x] + noise[x] for x in archs]

    err = bench.difference_error(est, flops_fn, space, starts, labels, allowed, max_edits=1, tol=0.5)
    assert err == pytest.approx(1 / math.sqrt(2) / 0.5)
    # an error shared by child and start cancels
    assert bench.difference_error(lambda archs: [labels[x] + 7.0 for x in archs], flops_fn, space, starts, labels,
                                  allowed, 1, 0.5) == pytest.approx(0.0)
    # ensembles: the members' mean is the prediction
    ens = bench.difference_error(lambda archs: np.array([[labels[x] + 2 * noise[x], labels[x]] for x in archs]),
                                 flops_fn, space, starts, labels, allowed, 1, 0.5)
    assert ens == pytest.approx(err)


def test_cut_slope_hand_worked():
    """The error of the predicted difference regressed on the FLOPs cut over every allowed
    FLOPs-reducing neighbour (no band): conv3x3 -> conv1x1 cuts 8/64, -> skip or none 9/64; errors
    0.5 and 2 tolerances at those cuts, so the slope is 1.5 / (1/64) = 96."""
    space = R.space_for("nb201")
    start = (2,) * 6
    a, b, far = (3, 2, 2, 2, 2, 2), (0, 2, 2, 2, 2, 2), (1, 2, 2, 2, 2, 2)
    labels = {start: 90.0, a: 89.0, b: 88.5, far: 70.0}
    noise = {start: 0.0, a: 0.25, b: 1.0, far: 1.0}
    starts = [Record("nb201", "cifar10", start, 90.0, 0.0, 0.0)]
    slope = bench.cut_slope(lambda archs: [labels[x] + noise[x] for x in archs], flops_fn, space, starts, labels,
                            {a, b, far}, max_edits=1, tol=0.5)
    assert slope == pytest.approx(96.0)
    assert bench.cut_slope(lambda archs: [labels[x] for x in archs], flops_fn, space, starts, labels, {a, b, far},
                           1, 0.5) == pytest.approx(0.0, abs=1e-9)


def test_sibling_labels_picks_the_best_correlated_task_and_maps_it():
    archs = [(i % 5, (i // 5) % 5, 0, 0, 0, 0) for i in range(20)]
    x = np.arange(20, dtype=float)
    rng = np.random.default_rng(0)
    recs = [Record("nb201", "target", a, v, 0.0, 0.0) for a, v in zip(archs, x)]
    recs += [Record("nb201", "linear", a, 2 * v + 1, 0.0, 0.0) for a, v in zip(archs, x)]
    recs += [Record("nb201", "noisy", a, v + rng.normal(0, 5), 0.0, 0.0) for a, v in zip(archs, x)]
    recs += [Record("tnb101", "other_family", a, v, 0.0, 0.0) for a, v in zip(archs, x)]
    task, r, mapped = bench.sibling_labels("nb201", "target", recs)
    assert task == "linear" and r == pytest.approx(1.0)
    assert [mapped[a] for a in archs] == pytest.approx(list(x))  # (2x + 1) mapped back onto x


def test_run_to_run_sd_pools_functional_duplicates_above_the_median():
    """NB201, Zero = 1. With (3,4) and (2,4) Zero, edges (1,2), (1,3), (2,3) are dead, so x1, x2, x3
    are one function (labels 90, 91, 92: squared deviations 2, 2 dof) and y1, y2 another (88, 86:
    2, 1 dof); pooled SD sqrt(4 / 3). z1, z2 (50, 60) duplicate too but lie below the median, and
    u, v are unique."""
    x1, x2, x3 = (2, 2, 2, 2, 1, 1), (0, 2, 2, 0, 1, 1), (4, 4, 2, 3, 1, 1)
    y1, y2 = (3, 3, 3, 3, 1, 1), (0, 3, 3, 3, 1, 1)
    z1, z2 = (2, 2, 1, 2, 1, 1), (3, 3, 1, 2, 1, 1)  # output reached by Zero edges only
    u, v, w = (2,) * 6, (3,) * 6, (4,) * 6
    labels = {x1: 90.0, x2: 91.0, x3: 92.0, y1: 88.0, y2: 86.0, z1: 50.0, z2: 60.0, u: 40.0, v: 30.0, w: 20.0}
    sd, dof, groups = bench.run_to_run_sd("nb201", labels)
    assert (dof, groups) == (3, 2)
    assert sd == pytest.approx(math.sqrt(4 / 3))
    with pytest.raises(ValueError, match="no functional duplicates"):
        bench.run_to_run_sd("nb201", {u: 1.0, v: 2.0})


def test_labels_near_orders_by_edits_to_the_nearest_start():
    """Candidates come fewest edits from any start first (here 0, 1, 1, 2, 2, 4 edits); a tie is
    broken by the seed, the same seed gives the same pick, and no start is a clear error."""
    from types import SimpleNamespace as Rec

    starts = [(0, 0, 0, 0), (3, 3, 3, 3)]
    cands = [Rec(arch=a) for a in [(1, 2, 1, 2), (0, 0, 1, 1), (3, 3, 3, 3), (3, 3, 3, 0), (0, 1, 0, 0),
                                   (0, 2, 2, 0)]]
    edits = [4, 2, 0, 1, 1, 2]  # to the nearest start, by hand
    picked = bench.labels_near(starts, cands, 3, seed=0)
    assert [edits[cands.index(c)] for c in picked] == [0, 1, 1]
    assert {c.arch for c in picked} == {(3, 3, 3, 3), (3, 3, 3, 0), (0, 1, 0, 0)}
    full = bench.labels_near(starts, cands, 10, seed=0)
    assert sorted(edits[cands.index(c)] for c in full) == [edits[cands.index(c)] for c in full] and len(full) == 6
    ties = {tuple(c.arch for c in bench.labels_near(starts, cands, 4, seed=s))[3] for s in range(20)}
    assert ties == {(0, 0, 1, 1), (0, 2, 2, 0)}  # the 2-edit pair, either way round
    assert bench.labels_near(starts, cands, 4, seed=7) == bench.labels_near(starts, cands, 4, seed=7)
    with pytest.raises(ValueError, match="at least one start"):
        bench.labels_near([], cands, 2)


def test_pretraining_records_leave_the_task_or_its_family_out():
    arch = (0,) * 6
    recs = [Record(f, t, arch, 1.0, 0.0, 0.0) for f, t in
            [("nb101", "cifar10"), ("nb201", "cifar10"), ("nb201", "cifar100"), ("nb301", "cifar10"),
             ("tnb101", "class_scene"), ("tnb101", "jigsaw")]]

    def picked(fam, task, choice):
        return sorted((r.family, r.task) for r in bench.pretraining_records(recs, fam, task, choice))

    assert picked("tnb101", "jigsaw", "families") == [("nb101", "cifar10"), ("nb201", "cifar10"),
                                                       ("nb201", "cifar100"), ("nb301", "cifar10")]
    assert picked("tnb101", "jigsaw", "leave-task-out") == picked("tnb101", "jigsaw", "families") + [
        ("tnb101", "class_scene")]
    assert picked("nb201", "cifar10", "families") == [("nb101", "cifar10"), ("nb301", "cifar10")]
    assert picked("nb201", "cifar10", "leave-task-out") == [("nb101", "cifar10"), ("nb201", "cifar100"),
                                                             ("nb301", "cifar10")]
    # one cache file per held-out task under leave-task-out, one per family otherwise
    assert bench.pretraining_tag("tnb101", "jigsaw", "families") == bench.pretraining_tag("tnb101", "normal",
                                                                                         "families")
    assert bench.pretraining_tag("tnb101", "jigsaw", "leave-task-out") != bench.pretraining_tag(
        "tnb101", "normal", "leave-task-out")
    with pytest.raises(ValueError, match="pre-training choice"):
        bench.pretraining_records(recs, "nb201", "cifar10", "everything")


@pytest.mark.slow  # real pre-trainings (tiny ones): about 15-30 s
def test_pretrained_bases_differ_by_seed_and_come_back_from_the_cache(tmp_path, monkeypatch):
    import argparse

    import torch

    from predictor import data

    monkeypatch.setenv("AIOP_CACHE", str(tmp_path))
    args = argparse.Namespace(pretrain_epochs=1, pretrain_per_family=2)
    recs = data.load_family("tnb101")  # the family's other tasks alone: a small pre-training
    first = bench.pretrained(recs, "tnb101", "jigsaw", "leave-task-out", args, False, seeds=(0, 1))
    assert "tnb101/jigsaw" not in first[0].pretrain_heads and "tnb101/normal" in first[0].pretrain_heads
    weights = [torch.cat([p.flatten() for p in m.model.parameters()]) for m in first]
    assert not torch.equal(weights[0], weights[1])
    assert len(list((tmp_path / "reduce-bench").glob("pre-*.pt"))) == 2
    again = bench.pretrained(recs, "tnb101", "jigsaw", "leave-task-out", args, False, seeds=(1,))
    assert torch.equal(torch.cat([p.flatten() for p in again[0].model.parameters()]), weights[1])


def test_summarise_share_cut_and_pick_bias_hand_worked():
    """Two runs, tolerance 0.5. AIO-P returns a (cut 50%, true -0.25, within) and b (cut 20%, true
    -1.0, not within), then nothing. Its picks' predicted differences (+0.25 and -0.25) exceed the true
    ones by 0.5 and 0.75 points: pick bias 0.625 / 0.5 = 1.25 tolerances. The oracle gets no bias
    (its scores are not the row's start_predicted's)."""
    row = {"mode": "labelled", "task": "t", "start_label": 90.0, "start_mflops": 100.0, "start_predicted": 80.0,
           "evaluations": 10}
    a = {"mflops": 50.0, "label": 89.75, "predicted": 80.25}
    b = {"mflops": 80.0, "label": 89.0, "predicted": 79.75}
    rows = [dict(row, methods={"AIO-P": [a, b], "oracle": [a]}),
            dict(row, evaluations=20, methods={"AIO-P": [], "oracle": [a]})]
    s = bench.summarise(rows, {"t": 0.5})["labelled"]["t"]
    aiop = s["AIO-P"]
    assert (aiop["runs"], aiop["empty"], aiop["returned"], aiop["within"]) == (2, 1, 2, 1)
    assert aiop["share_within"] == 0.5 and aiop["median_cut_pct"] == pytest.approx(35.0)
    assert aiop["mean_evaluations"] == 15.0
    assert aiop["pick_bias_tol"] == pytest.approx(1.25)
    assert "pick_bias_tol" not in s["oracle"] and s["oracle"]["share_within"] == 1.0


def test_gp_posterior_mean_hand_worked():
    """Two points y(0)=0, y(1)=1, standardised to z = -1, +1 (mean 0.5, SD 0.5); length scale 1,
    noise 0.01: K = [[1.01, e^-1/2], [e^-1/2, 1.01]], so alpha = z / (1.01 - e^-1/2) = -+2.4785 and the
    mean at x is 0.5 + 0.5 (k(x, 1) - k(x, 0)) 2.4785: 0.0124 at 0, 0.5 midway, 1.0839 at 2."""
    pred = bench.gp_posterior_mean([[0.0], [1.0]], [0.0, 1.0], [[0.0], [0.5], [2.0]], lengthscales=[1.0],
                                   noises=[0.01])
    assert pred == pytest.approx([0.01239, 0.5, 1.08393], abs=1e-4)


def test_gp_posterior_mean_picks_the_length_scale_by_marginal_likelihood():
    """A smooth function is far likelier under a length scale of 1 than of 0.01 (white noise), so a
    grid holding both predicts as the length scale 1 alone does, and close to the function."""
    x = np.linspace(0, 3, 12)[:, None]
    y = np.sin(x[:, 0])
    x_new = np.array([[0.4], [1.7]])
    both = bench.gp_posterior_mean(x, y, x_new, lengthscales=[0.01, 1.0])
    assert both == pytest.approx(bench.gp_posterior_mean(x, y, x_new, lengthscales=[1.0]))
    assert both == pytest.approx(np.sin(x_new[:, 0]), abs=0.05)


def test_study_rows_resume_only_their_configuration(tmp_path):
    """A study's per-task rows come back for the configuration that made them; a torn last line
    (an interrupted run) and other configurations' rows are skipped, and a row appended after a
    torn line starts a line of its own."""
    path = tmp_path / "rows.jsonl"
    bench._append_task(path, "nb201/cifar100", {"n": 50}, {"heads": 1.44})
    bench._append_task(path, "nb201/cifar100", {"n": 200}, {"heads": 0.9})
    with path.open("a") as fh:
        fh.write('{"task": "nb201/ImageNet16-120", "con')
    assert bench._finished_tasks(path, {"n": 50}) == {"nb201/cifar100": {"heads": 1.44}}
    bench._append_task(path, "tnb101/jigsaw", {"n": 50}, {"heads": 1.94})  # after the torn line, not glued to it
    assert bench._finished_tasks(path, {"n": 50}) == {"nb201/cifar100": {"heads": 1.44}, "tnb101/jigsaw": {"heads": 1.94}}
    assert bench._finished_tasks(tmp_path / "missing.jsonl", {"n": 50}) == {}


def test_cut_floor_counts_equal_cuts_summed_in_another_order():
    """The validation rule's floor: the same cut reached in another floating-point order meets it,
    a cut a thousandth of a point short does not."""
    assert bench.meets_cut_floor(10.504631457755465, 10.504631457755575)
    assert bench.meets_cut_floor(25.0, 25.0) and bench.meets_cut_floor(31.9, 25.0)
    assert not bench.meets_cut_floor(24.996164276726564, 25.0)
