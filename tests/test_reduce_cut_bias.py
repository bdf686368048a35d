"""The FLOPs-cut correction of the reduction search: cut_bias's cross-fitted slope and reduce's
cut_penalty, on hand-worked values."""

from types import SimpleNamespace

import numpy as np
import pytest

from predictor import reduce as R
from test_reduce_ensemble import SP, flops_fn, members_fn

A, B, C = (1, 1, 1, 1, 1, 1), (0, 1, 1, 1, 1, 1), (0, 0, 1, 1, 1, 1)
ARCH_FLOPS = {A: 100.0, B: 80.0, C: 50.0}


class _Identity:
    def inverse(self, z, flops=None):
        return np.asarray(z, dtype=np.float64)


class _FakeBase:
    """finetune() returns a 'head' predicting label + offset[arch], whatever it is trained on."""

    def __init__(self, labels, offset):
        self.labels, self.offset, self.trained_on = labels, offset, []

    def finetune(self, records, feats, key_fn, head, seed=0, **kw):
        self.trained_on.append(sorted(r.arch for r in records))
        return SimpleNamespace(scores=lambda items, h: np.array([self.labels[a] + self.offset[a] for a in items]),
                               standardizers={head: _Identity()})


FEATS = SimpleNamespace(item=lambda key: key, mflops=lambda key: 1.0)


def _bias(offset, folds=3):
    labels = {A: 70.0, B: 69.0, C: 65.0}
    records = [SimpleNamespace(arch=a, label=labels[a]) for a in (A, B, C)]
    base = _FakeBase(labels, offset)
    slope = R.cut_bias(base, records, FEATS, lambda r: r.arch, "h", R.space_for("nb201"), ARCH_FLOPS.get,
                       folds=folds)
    return slope, base


def test_cut_bias_hand_worked_slope():
    # FLOPs-reducing pairs (cut, error of the predicted difference): A->B (0.2, 1), A->C (0.5, 2), B->C (0.375, 1).
    # Least squares with an intercept: mean cut 0.358333, Sxy 0.141667, Sxx 0.045417 -> slope 3.11927.
    slope, base = _bias({A: 0.0, B: 1.0, C: 2.0})
    assert slope == pytest.approx(0.141667 / 0.0454167, rel=1e-4)
    # cross-fitted: each of the 3 heads was fine-tuned without the record it predicts
    assert sorted(map(tuple, base.trained_on)) == sorted([(B, A), (C, A), (C, B)])


def test_cut_bias_is_zero_for_an_exact_or_offset_predictor_and_clipped_when_pessimistic():
    assert _bias({A: 0.0, B: 0.0, C: 0.0})[0] == 0.0
    assert _bias({A: 5.0, B: 5.0, C: 5.0})[0] == pytest.approx(0.0, abs=1e-9)
    assert _bias({A: 0.0, B: -1.0, C: -2.0})[0] == 0.0  # children predicted too poorly: no bonus


def test_cut_bias_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="at least one record per fold"):
        _bias({A: 0.0, B: 0.0, C: 0.0}, folds=4)
    far = (4, 4, 4, 4, 4, 4)  # 6 edits from A: no pair within 3 edits
    records = [SimpleNamespace(arch=a, label=1.0) for a in (A, far)]
    with pytest.raises(ValueError, match="found 0 FLOPs-reducing pairs within 3 edits"):
        R.cut_bias(_FakeBase({A: 1.0, far: 1.0}, {A: 0.0, far: 0.0}), records, FEATS, lambda r: r.arch, "h",
                   R.space_for("nb201"), {A: 10.0, far: 5.0}.get, folds=2)


def test_cut_penalty_hand_worked():
    # start (2, 2, 2): 16 FLOPs; a conv made skip: 12 FLOPs, cut 0.25; a conv made none: 11, cut 0.3125
    res = R.reduce((2, 2, 2), SP, members_fn, flops_fn, tolerance=1.5, budget=100, seed=0, max_edits=1,
                   kappa=0.5, cut_penalty=4.0, progress=False)
    got = {c.arch: c.score for c in res.evaluated}
    # the pessimistic scores of test_pessimistic_difference_hand_worked minus 4 x cut
    assert got[(0, 2, 2)] == pytest.approx(10.0 - 1.0)
    assert got[(2, 2, 0)] == pytest.approx(10.0 - 1.0)
    assert got[(2, 0, 2)] == pytest.approx(9.0 - 1.0)
    assert {c.arch for c in res.front} == set()  # threshold 9.5: the penalty holds every child back
    single = R.reduce((2, 2, 2), SP, lambda archs: [10.0] * len(archs), flops_fn, tolerance=1.0, budget=100, seed=0,
                      max_edits=1, cut_penalty=3.5, progress=False)
    # one member: 10 - 3.5 x cut; cut 0.25 -> 9.125 (kept, >= 9), cut 0.3125 -> 8.906 (held back)
    scores = {c.arch: c.score for c in single.evaluated}
    assert scores[(2, 1, 2)] == pytest.approx(10 - 3.5 * 0.3125) and scores[(2, 0, 2)] == pytest.approx(9.125)
    assert single.front and {c.arch for c in single.front} <= {(0, 2, 2), (2, 0, 2), (2, 2, 0)}
    with pytest.raises(ValueError, match="cut_penalty must be >= 0"):
        R.reduce((2, 2, 2), SP, members_fn, flops_fn, 1.0, cut_penalty=-1.0, progress=False)
