"""FLOPs reduction with a performance estimator: search an architecture's neighbourhood for
variants with fewer FLOPs whose *predicted* performance stays within a tolerance of the start's.

Search spaces with a mutation operator (:data:`SPACES`): NAS-Bench-201 and TransNAS-Bench-101
micro, both 6 cell edges with one op code each (``predictor.data.parse_arch``). A mutation
changes the op of 1..``max_edits`` edges: an op swap, or an edge removal (op -> ``none``, the
Zero op) when the new op is ``none``. Every proposal lowers FLOPs relative to its parent.

The search (:func:`reduce`) is a seeded multi-objective local search: each generation picks
parents uniformly among the *feasible* architectures found so far (predicted performance >=
start's prediction - tolerance; the start is feasible), proposes FLOPs-reducing mutations and
scores them in one batch. It returns the Pareto front (min FLOPs, max predicted performance)
of the feasible architectures with fewer FLOPs than the start. ``budget`` counts estimator
evaluations (unique architectures scored, the start excluded).

Ensembles: an estimator may return one column per member (``(n, M)``). The search then scores
a child by a pessimistic estimate of its difference to the start, taken member by member:
``score = mean_m pred_m(start) + mean_m(d) - kappa * std_m(d)`` with ``d_m = pred_m(child) -
pred_m(start)``. A member's error that is shared by the child and the start (a near neighbour)
cancels in ``d_m``; where the members disagree on the difference the child is held back. The
validated settings (:data:`SEARCH_BY_LABELS`) also give the search only a fraction of the user's
tolerance, a margin for what the members' spread misses.
:func:`bootstrap_heads` builds such members by fine-tuning on bootstrap resamples, and
:func:`bootstrap_scratch` members trained from scratch on the same resamples.

Cut correction (optional, ``cut_penalty``): a child's score also loses ``cut_penalty`` x its FLOPs cut
(fraction of the start's). Heads fine-tuned on a few labels overrate children that drop heavy ops
more the larger the cut, and a search for the largest cuts collects exactly that error;
:func:`cut_bias` measures the rate from the fine-tuning labels alone. Off by default: on the
validation tasks it removes most of the search's optimism but also most of its cut, and on the
benchmark's tasks the rate differs in sign between tasks (benchmarks/aiop_reduce.py --cut-correction).

The estimator and the FLOPs counter are parameters (``score_fn(archs) -> values``,
``flops_fn(arch) -> float``) so that tests and baselines can plug in anything;
:class:`AIOPEstimator` provides both for an AIO-P checkpoint. FLOPs are the benchmark's own
(:class:`BenchmarkFlops`): the data files count them on the full-size networks (NB201: 5 cells
per stage; TransNAS: 256x256 inputs and the real decoders), and their counts are exactly additive
over (edge, op), so a table fitted to the labelled architectures gives every encoding's FLOPs.
The predictor's graphs are smaller on purpose (1 cell per stage, 32x32 inputs: same structure,
cheaper to encode), so their ``total_flops`` rank architectures differently (Spearman 0.8-0.9)
and are never used as FLOPs here.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class SearchSetting:
    """How the search decides with an ensemble estimator (see the module docstring)."""

    kappa: float  # members' standard deviations subtracted from a child's mean predicted difference to the start
    tolerance_factor: float  # a child is kept if that pessimistic difference is >= -(this x the tolerance)


#: ensembles: the search setting per number of fine-tuning labels, chosen on validation tasks only
#: (benchmarks/results/aiop_reduce.validation.md). With 50 labels the members' spread is not margin
#: enough, so the pessimistic drop is also held to a quarter of the tolerance; heads fine-tuned on
#: 200 labels err less, and the margin that keeps children within tolerance with 50 cuts little there.
SEARCH_BY_LABELS = {50: SearchSetting(kappa=2.0, tolerance_factor=0.25),
                    200: SearchSetting(kappa=1.5, tolerance_factor=1.0)}
#: fine-tuning of an estimator's heads (AIOP.finetune arguments): plain MSE, no ranking term, and
#: longer than the transfer study's ranking-oriented default, because the search decides on
#: child-minus-start differences, not ranks. Chosen on validation tasks only by the error of
#: those differences near the tolerance boundary (benchmarks/results/aiop_reduce.finetune.md,
#: 50 labels, where an epoch is one step). In epochs, so more labels get more steps: a fixed
#: 300 steps underfits 200 labels (cifar100 error 0.95 vs 0.76 tolerances at 1,500 steps).
FINETUNE = {"epochs": 300, "lr": 1e-3, "rank_weight": 0.0}


def default_search(finetune_labels: int | None, members: int) -> SearchSetting:
    """The validated search setting for ``members`` heads fine-tuned on ``finetune_labels`` labels:
    that of the nearest validated count on a log scale; the smallest count's (the most cautious)
    when unknown (checkpoints fine-tuned before the count was recorded). The settings were
    validated for ensembles: one model keeps the whole tolerance (its kappa has no effect)."""
    if not finetune_labels:
        setting = SEARCH_BY_LABELS[min(SEARCH_BY_LABELS)]
    else:
        setting = SEARCH_BY_LABELS[min(SEARCH_BY_LABELS, key=lambda n: abs(np.log(n / finetune_labels)))]
    return setting if members > 1 else dataclasses.replace(setting, tolerance_factor=1.0)


class UnsupportedFamilyError(ValueError):
    """The family has no mutation space (or no network builder) for FLOPs reduction."""


@dataclass(frozen=True)
class Space:
    """A cell space of ``num_edges`` edges, each carrying one op code indexing ``ops``."""

    family: str
    ops: tuple[str, ...]
    num_edges: int = 6
    none_op: str = "none"

    @property
    def none_code(self) -> int:
        return self.ops.index(self.none_op)

    def contains(self, arch) -> bool:
        return (isinstance(arch, tuple) and len(arch) == self.num_edges
                and all(isinstance(c, int) and 0 <= c < len(self.ops) for c in arch))

    def check(self, arch) -> tuple:
        arch = tuple(arch)
        if not self.contains(arch):
            raise ValueError(f"{self.family} encoding must be {self.num_edges} op codes in [0, {len(self.ops)}) "
                             f"indexing {self.ops}, got {arch}")
        return arch

    def neighbours(self, arch: tuple, max_edits: int) -> list[tuple]:
        """Every encoding differing from ``arch`` on 1..max_edits edges, in a fixed order."""
        out = []
        n_ops = len(self.ops)
        for k in range(1, max_edits + 1):
            for edges in itertools.combinations(range(self.num_edges), k):
                choices = [[c for c in range(n_ops) if c != arch[e]] for e in edges]
                for new in itertools.product(*choices):
                    a = list(arch)
                    for e, c in zip(edges, new):
                        a[e] = c
                    out.append(tuple(a))
        return out

    def describe(self, parent: tuple, child: tuple) -> str:
        """Human-readable mutation, e.g. ``e2:nor_conv_3x3->none``."""
        return ",".join(f"e{e}:{self.ops[a]}->{self.ops[b]}" for e, (a, b) in enumerate(zip(parent, child)) if a != b)


def _spaces() -> dict[str, Space]:
    from .spaces import nb201, tnb101

    return {"nb201": Space("nb201", nb201.OPS), "tnb101": Space("tnb101", tnb101.OPS)}


SPACES: dict[str, Space] = _spaces()


def space_for(family: str) -> Space:
    """The mutation space of ``family``; a clear error for families without one."""
    if family not in SPACES:
        raise UnsupportedFamilyError(
            f"FLOPs reduction has no mutation space for family {family!r}; supported families: "
            f"{', '.join(sorted(SPACES))} (a family needs a network builder in predictor.spaces and a "
            f"Space entry in predictor.reduce.SPACES)")
    return SPACES[family]


class BenchmarkFlops:
    """MFLOPs of any encoding of one (family, task) as the benchmark's data file counts them.

    The file's FLOPs are a base plus one term per (edge, op) (checked at construction: the fit
    must reproduce every labelled architecture to 1e-9 relative, else :class:`DataError`), so the
    table fitted by least squares extends them exactly to unlabelled encodings.
    """

    def __init__(self, family: str, task: str, records=None):
        from .data import DataError, load_family

        space = space_for(family)
        recs = [r for r in (records if records is not None else load_family(family)) if r.task == task
                and r.family == family]
        if not recs:
            raise DataError(f"no {family}/{task} architectures in the data files: the benchmark's FLOPs of that task "
                            "are unknown (tasks of a family are the top-level keys of its file)")
        self.space, self.family, self.task = space, family, task
        x = np.zeros((len(recs), space.num_edges * len(space.ops) + 1))
        x[:, -1] = 1.0  # the base
        for i, r in enumerate(recs):
            x[i, self._columns(r.arch)] = 1.0
        n_ops = len(space.ops)
        unseen = [f"edge {k // n_ops} op {space.ops[k % n_ops]}" for k in np.flatnonzero(~x[:, :-1].any(0))]
        if unseen:
            raise DataError(f"{family}/{task}: the data file has no architecture with {', '.join(unseen)}, so its FLOPs "
                            "table is undetermined")
        y = np.array([r.flops for r in recs], dtype=np.float64)
        self.weights = np.linalg.lstsq(x, y, rcond=None)[0]
        worst = float(np.abs(x @ self.weights - y).max())
        if worst > 1e-9 * float(np.abs(y).max()):
            raise DataError(f"{family}/{task}: the data file's FLOPs are not additive over (edge, op) (a fit misses "
                            f"by up to {worst:.3g} MFLOPs), so they cannot be extended to unlabelled encodings")

    def _columns(self, arch) -> list[int]:
        """The table's entries of ``arch``: one (edge, op) column per edge."""
        return [e * len(self.space.ops) + c for e, c in enumerate(self.space.check(arch))]

    def __call__(self, arch) -> float:
        return float(self.weights[-1] + self.weights[self._columns(arch)].sum())


@dataclass(frozen=True)
class Candidate:
    arch: tuple
    flops: float  # MFLOPs
    score: float  # predicted performance (estimator units; higher is better; ensembles: the pessimistic score)


@dataclass
class ReduceResult:
    start: Candidate
    threshold: float  # start.score - tolerance
    front: list[Candidate]  # Pareto front, ascending FLOPs; every entry has flops < start.flops
    evaluated: list[Candidate] = field(repr=False)  # every scored candidate, in evaluation order
    evaluations: int = 0  # estimator evaluations used (<= budget; fewer if the neighbourhood ran out)

    def rows(self) -> list[dict]:
        s = self.start
        return [{"arch": list(c.arch), "mflops": c.flops, "flops_cut_pct": 100.0 * (1 - c.flops / s.flops),
                 "predicted": c.score, "predicted_delta": c.score - s.score} for c in self.front]


def pareto_front(cands: Sequence[Candidate]) -> list[Candidate]:
    """Non-dominated candidates (lower FLOPs, higher score), ascending FLOPs; ties keep the first seen."""
    best: list[Candidate] = []
    for c in sorted(cands, key=lambda c: (c.flops, -c.score)):
        if not best or c.score > best[-1].score:
            best.append(c)
    return best


class _Proposer:
    """FLOPs-reducing mutations of a parent (shared by the search and the random baselines)."""

    def __init__(self, space: Space, flops_fn, max_edits: int, allowed, rng: random.Random):
        self.space, self.flops_fn, self.max_edits, self.rng = space, flops_fn, max_edits, rng
        self.allowed = None if allowed is None else set(allowed)
        self.flops: dict[tuple, float] = {}
        self._open: dict[tuple, list[tuple]] = {}  # parent -> neighbours not yet tried (shuffled)

    def f(self, arch) -> float:
        if arch not in self.flops:
            self.flops[arch] = float(self.flops_fn(arch))
        return self.flops[arch]

    def propose(self, parent: tuple, seen: set) -> tuple | None:
        """A not-yet-seen neighbour of ``parent`` with fewer FLOPs, or None if there is none left."""
        todo = self._open.get(parent)
        if todo is None:
            todo = [a for a in self.space.neighbours(parent, self.max_edits)
                    if self.allowed is None or a in self.allowed]
            self.rng.shuffle(todo)
            self._open[parent] = todo
        pf = self.f(parent)
        while todo:
            a = todo.pop()
            if a not in seen and self.f(a) < pf:
                return a
        return None

    def child_of(self, pool: list, exhausted: set, seen: set) -> tuple | None:
        """A new child (added to ``seen``) of a uniformly drawn parent of ``pool`` that still has
        FLOPs-reducing neighbours; parents found without any are added to ``exhausted``."""
        while True:
            parents = [a for a in pool if a not in exhausted]
            if not parents:
                return None
            parent = self.rng.choice(parents)
            child = self.propose(parent, seen)
            if child is None:
                exhausted.add(parent)
                continue
            seen.add(child)
            return child


def _member_matrix(values, n: int) -> np.ndarray:
    """Estimator output as ``(n, members)``: a 1-D result is one member."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim not in (1, 2) or v.shape[0] != n:
        raise ValueError(f"score_fn must return {n} values or an ({n}, members) array, got shape {v.shape}")
    return v.reshape(n, -1)


def reduce(start, space: Space, score_fn: Callable[[list], Sequence[float]], flops_fn: Callable[[tuple], float],
           tolerance: float, budget: int = 100, seed: int = 0, max_edits: int = 2, batch: int = 8,
           allowed=None, progress: bool = True, kappa: float = 0.0, cut_penalty: float = 0.0) -> ReduceResult:
    """Minimise FLOPs subject to ``score >= score(start) - tolerance`` (see module docstring).

    ``allowed``: optional set of encodings the search may visit (e.g. only labelled ones).
    ``kappa``: with an ensemble ``score_fn`` (one column per member), how many member standard
    deviations of the child-minus-start difference are subtracted from its mean (no effect
    with a single member).
    ``cut_penalty``: estimator units subtracted from a child's score per unit of FLOPs cut
    (fraction of the start's), the estimator's bias with the cut as :func:`cut_bias` measures it.
    """
    from tqdm import tqdm

    start = space.check(start)
    if budget < 1 or batch < 1 or max_edits < 1:
        raise ValueError(f"budget, batch and max_edits must be >= 1, got {budget}, {batch}, {max_edits}")
    if kappa < 0:
        raise ValueError(f"kappa must be >= 0 (a pessimistic estimate), got {kappa}")
    if cut_penalty < 0:
        raise ValueError(f"cut_penalty must be >= 0 (a correction can only hold children back), got {cut_penalty}")
    rng = random.Random(seed)
    prop = _Proposer(space, flops_fn, max_edits, allowed, rng)
    m0 = _member_matrix(score_fn([start]), 1)
    s0 = Candidate(start, prop.f(start), float(m0.mean()))

    def scores(archs) -> np.ndarray:
        m = _member_matrix(score_fn(archs), len(archs))
        if m.shape[1] != m0.shape[1]:
            raise ValueError(f"score_fn returned {m.shape[1]} members for children but {m0.shape[1]} for the start")
        penalty = cut_penalty * (1 - np.array([prop.f(a) for a in archs]) / s0.flops)
        if m.shape[1] == 1:  # one member: its values as they are
            return m[:, 0] - penalty
        d = m - m0
        return s0.score + d.mean(1) - kappa * d.std(1) - penalty
    threshold = s0.score - tolerance
    feasible, exhausted = [s0], set()
    seen, evaluated = {start}, []
    bar = tqdm(total=budget, desc=f"reduce {space.family}", disable=not progress, leave=False)
    while len(evaluated) < budget:
        want = min(batch, budget - len(evaluated))
        new: list[tuple] = []
        while len(new) < want:
            child = prop.child_of([c.arch for c in feasible], exhausted, seen)
            if child is None:
                break
            new.append(child)
        if not new:
            break
        for a, s in zip(new, scores(new)):
            c = Candidate(a, prop.f(a), float(s))
            evaluated.append(c)
            if c.score >= threshold:
                feasible.append(c)
        bar.update(len(new))
    bar.close()
    front = pareto_front([c for c in feasible[1:] if c.flops < s0.flops])
    return ReduceResult(s0, threshold, front, evaluated, len(evaluated))


def random_reductions(start, space: Space, flops_fn, budget: int, seed: int = 0, max_edits: int = 2,
                      allowed=None) -> list[Candidate]:
    """Baseline candidate pool without an estimator: ``budget`` random FLOPs-reducing mutations,
    each of the start or of an earlier candidate (uniform parent), so the pool spans the same
    mutation depths the search reaches. Scores are NaN (nothing was estimated)."""
    start = space.check(start)
    rng = random.Random(seed)
    prop = _Proposer(space, flops_fn, max_edits, allowed, rng)
    pool, seen, dead = [start], {start}, set()
    out: list[Candidate] = []
    while len(out) < budget:
        child = prop.child_of(pool, dead, seen)
        if child is None:
            break
        pool.append(child)
        out.append(Candidate(child, prop.f(child), float("nan")))
    return out


def _bootstrap_samples(records, members: int, seed: int):
    """(member index, bootstrap resample of ``records``) for ``members`` members, seeded by ``seed``
    and the index, so that ensembles built from the same seed see the same resamples."""
    if members < 1:
        raise ValueError(f"an ensemble needs >= 1 members, got {members}")
    records = list(records)
    for m in range(members):
        rng = random.Random(f"{seed}/{m}")
        yield m, [rng.choice(records) for _ in records]


def bootstrap_heads(base, records, feats, key_fn, head: str, members: int, seed: int = 0, finetune=None) -> list:
    """``members`` copies of ``base`` with head ``head`` fine-tuned (``finetune``: AIOP.finetune
    arguments, default :data:`FINETUNE`) on bootstrap resamples of ``records`` (resample and
    fine-tuning seeded by ``seed`` and the member index), for an ensemble :class:`AIOPEstimator`.
    Resampling is what makes the members differ: with a few dozen records a fine-tuning epoch is
    one full batch, so the seed alone barely matters."""
    return [base.finetune(sample, feats, key_fn, head, seed=seed * 1000 + m, **(finetune or FINETUNE))
            for m, sample in _bootstrap_samples(records, members, seed)]


def scratch_model(records, feats, key_fn, seed: int = 0):
    """A GNN of AIO-P's default size trained from scratch on ``records`` with the heads' loss, length
    and learning rate (:data:`FINETUNE`): what the fine-tuned heads are worth without pre-training.
    Its head is the records' task head, as the fine-tuned heads'."""
    from .aiop import AIOP

    return AIOP.pretrain(records, feats, key_fn, epochs=FINETUNE["epochs"], lr=FINETUNE["lr"],
                         rank_weight=FINETUNE["rank_weight"], seed=seed, progress=False)


def bootstrap_scratch(records, feats, key_fn, members: int, seed: int = 0) -> list:
    """``members`` :func:`scratch_model` GNNs trained on bootstrap resamples of ``records`` (the
    resamples :func:`bootstrap_heads` draws with the same seed). Mixed into an ensemble with
    fine-tuned heads: bootstrap heads of one pre-trained base share what pre-training left wrong, so
    their spread misses it, while these members owe nothing to pre-training
    (benchmarks/aiop_reduce.py ``--scratch-members``)."""
    return [scratch_model(sample, feats, key_fn, seed=seed * 1000 + m)
            for m, sample in _bootstrap_samples(records, members, seed)]


def cut_bias(base, records, feats, key_fn, head: str, space: Space, flops_fn, folds: int = 5, max_edits: int = 3,
             seed: int = 0, finetune=None) -> float:
    """How much a head fine-tuned on ``records`` overrates a child's difference to its parent per
    unit of FLOPs cut (estimator units; >= 0), measured on ``records`` alone, for
    :func:`reduce`'s ``cut_penalty``.

    Cross-fitted: ``folds`` heads, each fine-tuned (``finetune``, default :data:`FINETUNE`) on the
    other folds, predict their fold. Over every ordered pair of records at most ``max_edits``
    edits apart whose second has fewer FLOPs (the moves the search makes), the error of the
    predicted difference is regressed on the cut with an intercept; the slope is returned,
    clipped at 0. Why: on the validation tasks the heads' error of the difference grows with the
    cut (a child that drops heavy ops is predicted too well), so the search's Pareto front, which
    seeks the largest cuts, collects that error; the intercept is left out because it does not
    carry over from random pairs to a start chosen for its high label.
    """
    records = list(records)
    if folds < 2 or len(records) < folds:
        raise ValueError(f"cut_bias needs >= 2 folds and at least one record per fold, got {folds} folds for "
                         f"{len(records)} records")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    predicted = np.zeros(len(records))
    for k in range(folds):
        held = order[k::folds]
        rest = [records[i] for i in sorted(set(order) - set(held))]
        model = base.finetune(rest, feats, key_fn, head, seed=seed * 1000 + k, **(finetune or FINETUNE))
        z = model.scores([feats.item(key_fn(records[i])) for i in held], head)
        predicted[held] = model.standardizers[head].inverse(z, [feats.mflops(key_fn(records[i])) for i in held])
    archs = [space.check(r.arch) for r in records]
    flops = [flops_fn(a) for a in archs]
    cuts, errors = [], []
    for i, j in itertools.permutations(range(len(records)), 2):
        if flops[j] < flops[i] and sum(x != y for x, y in zip(archs[i], archs[j])) <= max_edits:
            cuts.append(1 - flops[j] / flops[i])
            errors.append(predicted[j] - predicted[i] - (records[j].label - records[i].label))
    if len(cuts) < 3:
        raise ValueError(f"cut_bias found {len(cuts)} FLOPs-reducing pairs within {max_edits} edits among "
                         f"{len(records)} records; it needs at least 3 (fine-tune on more labels)")
    return max(0.0, slope_on_cut(cuts, errors))


def slope_on_cut(cuts, errors) -> float:
    """Least-squares slope, with an intercept, of errors of predicted differences on the FLOPs cuts
    (fractions) they were made at: the rate :func:`cut_bias` estimates, and the one a benchmark
    measures on a task's own children to check it. NaN with fewer than 3 points."""
    if len(cuts) < 3:
        return float("nan")
    return float(np.linalg.lstsq(np.c_[cuts, np.ones(len(cuts))], np.asarray(errors, dtype=np.float64),
                                 rcond=None)[0][0])


class AIOPEstimator:
    """Predicted performance and MFLOPs of encodings of one (family, task) from an AIO-P model.

    ``model`` is one AIOP (scores are ``(n,)``) or a list of AIOPs, ensemble members sharing the
    head name (scores are ``(n, members)``, which :func:`reduce` turns into a pessimistic
    difference to the start). Graphs come from ``predictor.graphs.network_graph``; only each
    architecture's scores are kept (graphs and features are dropped once scored). MFLOPs are the
    benchmark's (:class:`BenchmarkFlops`, from ``records`` or the data file). Predictions are in
    the task's label units when the head has a Standardizer (fine-tuned heads do), else
    standardised scores.
    """

    def __init__(self, model, family: str, task: str, head: str | None = None, records=None):
        from .aiop import ZERO_SHOT, head_name

        self.flops = BenchmarkFlops(family, task, records)
        self.single = not isinstance(model, (list, tuple))
        self.models = [model] if self.single else list(model)
        if not self.models:
            raise ValueError("AIOPEstimator needs at least one model")
        self.family, self.task = family, task
        self.head = head or head_name(family, task)
        for m in self.models:
            if self.head != ZERO_SHOT and self.head not in m.model.heads:
                raise KeyError(f"checkpoint has no head {self.head!r} (heads: {sorted(m.model.heads)}); fine-tune "
                               f"one with `aiop finetune --task {family}/{task}` or pass --head {ZERO_SHOT}")
        if len({m.kinds for m in self.models}) > 1:
            raise ValueError("ensemble members encode op kinds differently (checkpoints of different feature "
                             "versions); re-train them with one version of predictor.features")
        self.stds = [m.standardizers.get(self.head) for m in self.models]
        #: labels the head was fine-tuned on (None: zero-shot, or a checkpoint from before this was recorded)
        self.finetune_labels = self.models[0].config.get("finetune_labels", {}).get(self.head)
        self._scores: dict[tuple, np.ndarray] = {}

    def __call__(self, archs) -> np.ndarray:
        from . import features, graphs

        todo = [a for a in dict.fromkeys(archs) if a not in self._scores]
        if todo:
            built = [graphs.network_graph(self.family, self.task, a) for a in todo]
            items = [features.to_data(g, self.models[0].kinds) for g in built]
            fl = [g.total_flops / 1e6 for g in built]  # the Standardizers' FLOPs scaling is the graphs' own
            cols = []
            for m, std in zip(self.models, self.stds):
                z = m.scores(items, self.head)
                cols.append(np.asarray(std.inverse(z, fl) if std else z, dtype=np.float64))
            self._scores.update(zip(todo, np.stack(cols, 1)))
        out = np.array([self._scores[a] for a in archs], dtype=np.float64).reshape(len(archs), len(self.models))
        return out[:, 0] if self.single else out


def plot_front(result: ReduceResult, path, title: str = "") -> None:
    """PNG: every evaluated candidate (grey), the feasibility threshold, the front and the start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ev = result.evaluated
    ax.scatter([c.flops for c in ev], [c.score for c in ev], s=10, c="0.7", label="evaluated")
    ax.axhline(result.threshold, color="tab:red", ls="--", lw=1, label="start - tolerance")
    fr = result.front
    ax.plot([c.flops for c in fr], [c.score for c in fr], "o-", color="tab:blue", label="Pareto front")
    ax.scatter([result.start.flops], [result.start.score], marker="*", s=150, c="tab:orange", zorder=5,
               label="start")
    ax.set_xlabel("MFLOPs (the benchmark's count)")
    ax.set_ylabel("predicted performance")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(str(path), dpi=120)
    plt.close(fig)


def format_table(result: ReduceResult, space: Space, fmt: str = "md") -> str:
    """The start and the front as a markdown or CSV table."""
    if fmt not in ("md", "csv"):
        raise ValueError(f"table format must be 'md' or 'csv', got {fmt!r}")
    s = result.start
    head = ["rank", "arch", "mutation", "MFLOPs", "FLOPs cut %", "predicted", "predicted - start"]
    rows = [["start", str(list(s.arch)), "", f"{s.flops:.4g}", "0.0", f"{s.score:.4g}", "0"]]
    for i, (c, r) in enumerate(zip(result.front, result.rows()), 1):
        rows.append([str(i), str(r["arch"]), space.describe(s.arch, c.arch), f"{c.flops:.4g}",
                     f"{r['flops_cut_pct']:.1f}", f"{c.score:.4g}", f"{r['predicted_delta']:+.3g}"])
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([head] + rows)
        return buf.getvalue()
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
