"""AIO-P as the estimator of a FLOPs-reduction search (predictor.reduce), checked against true labels.

Per task (NAS-Bench-201 cifar10 and the 7 TransNAS-Bench-101 micro tasks): 20 start architectures
drawn (seeded) from the task's top quartile of labels, 5 search seeds. Predictor per task: AIO-P
pre-trained on the classification families (NB101 + NB201 + NB301 for TransNAS tasks; NB101 +
NB301 only for NB201 cifar10, so no NB201 label is seen in pre-training), then a head fine-tuned
on N=50 labelled architectures of the task drawn from outside the starts. Those 50 are also
removed from the architectures the searches may return, so the predictor has seen the label of
no start and no returned architecture.

Modes (each row says which one it used):

* ``labelled``: mutations restricted to the task's labelled architectures (the data files hold
  ~711 of 4,096 TransNAS cells and ~725 of 15,625 NB201 cells), so every returned architecture
  has a true label.
* ``open``: the whole search space (minus the 50 fine-tuning archs); returned architectures
  without a label are counted as unlabelled, never guessed.

Methods, all with the same number of estimator evaluations per run (the number the AIO-P search
used): ``AIO-P`` returns its predicted Pareto front (K archs); ``random`` returns K archs drawn
from a pool of that many random FLOPs-reducing mutations (same mutation operator, parents drawn
from the pool); ``FLOPs only`` returns the K lowest-FLOPs archs of the same pool.

Tolerance (the issue's "1 percentage point or the task's equivalent"): accuracies in percent
(cifar10, class_scene, class_object, jigsaw) and segmentsemantic (a percent score, 91.9-94.8 in the
file) use 1.0 point; autoencoder and normal are SSIM-like scores on a 0-1 scale, so 1 point is 0.01;
room_layout is a negative L2 loss with no percent scale, so we use 1% of its label range in the file
(0.0048). FLOPs: the benchmark's own count (predictor.reduce.BenchmarkFlops: the data file's FLOPs of
the full-size networks, exactly additive over (edge, op), so defined for every encoding).

    nice -n 10 python benchmarks/aiop_reduce.py [--quick] [--modes labelled,open] [--seeds 5]
    nice -n 10 python benchmarks/aiop_reduce.py --ceiling | --label-noise | --finetune-validation | --validation-summary

The ``oracle`` column is the same search with the true labels as the estimator: everything it
returns is within tolerance, so its median cut shows whether the 25% target is reachable at all
with this search and budget.

Estimator (default): 10 heads fine-tuned on bootstrap resamples of the N archs; the search keeps
a child if mean - kappa x std over members of its predicted difference to the start is >=
-factor x tolerance (``--members 10 --kappa --search-tolerance``, defaults predictor.reduce.default_search
of N: kappa 2 and factor 0.25 for 50 labels, 1.5 and 1 for 200). Every choice is made on two
validation tasks that are in no table (NB201 cifar100 and ImageNet16-120). The heads'
fine-tuning (predictor.reduce.FINETUNE) by the lowest near-boundary difference error
(``--finetune-validation``, results/aiop_reduce.finetune.md); then the configuration by one rule:
the highest mean share within tolerance with a median cut >= 25% on both, or >= the oracle's
median cut where that is lower. results/aiop_reduce.validation.md renders the committed
validation_*.json runs (``--validation-summary``) and names the choice among 10 members at
several kappas and one head at search-tolerance factors 1 to -2 (``--members 1 --kappa 0
--search-tolerance=F``). The choice at 50 labels is 10 members with a fixed margin on top of their
spread: kappa 2 and search-tolerance factor 0.25 (the pessimistic predicted drop may use a quarter of
the tolerance): 76.7% mean share (cifar100 73% / 28.9%, ImageNet16-120 81% / 10.50%, the oracle's cut
there), against 73.1% for kappa 2.5 with the whole tolerance, the choice before factors below 1 were
tried with 10 members (kappa 2 and 2.5, factors 0-0.75; the others lose ImageNet16-120's cut floor or
share).

More labels: ``--modes labelled --n 200 --name aiop_reduce.n200`` (results/aiop_reduce.n200.md) is the
table with 200 fine-tuning labels and the kappa validated for 200 (the validation runs
``--n 200 --name aiop_reduce.validation_n200_<choice>_m10k<kappa>``; the rule picks per N).

``--finetune-choice near`` fine-tunes on the N labelled archs fewest edits from a start instead of
a random N. It lowers the near-boundary difference error on the validation tasks (50 labels:
1.44 -> 1.13 and 1.65 -> 1.39 tolerances) but no kappa tried (1.5-3 at 50 labels, 1-2.5 at 200)
makes it win under the rule (results/aiop_reduce.validation.md): with 50 labels the searches
return nothing more often, and with 200 they cut cifar100 by 16-24% at most.

``--pretrain leave-task-out`` pre-trains AIO-P also on the task family's other tasks (AIO-P's own
transfer setting: the same architectures' labels on other tasks are seen, never the task's own;
one pre-training per task, about 4-6 min each). It lowers the near-boundary difference error on
both validation tasks (50 labels: 1.44 -> 1.05 and 1.65 -> 1.25 tolerances) and on 4 of the 8
table tasks, yet loses on the validation tasks under the rule at every kappa tried (1.5-3: mean
share 51-56%, cifar100 cut 5-14%; results/aiop_reduce.validation.md): what the search returns with
it is optimistic (cifar100, kappa 2.5: the returned children's pessimistic predicted difference to
the start averages -0.08 points, their true one -1.70). ``--pretrain families,leave-task-out``
ensembles ``--members`` heads on each base (20 heads: 60.5% and 55.6% at kappa 2 and 2.5, not
eligible either). For the record, not chosen: the table with it,
``--modes labelled --pretrain leave-task-out --kappa 2.5 --search-tolerance=1 --name aiop_reduce.lto`` (results/aiop_reduce.lto.md):
1/8 tasks, cifar10 88% within tolerance but a 9.3% median cut.

``--pretrain-seeds 5 --members 2`` ensembles 2 bootstrap heads on each of 5 pre-trainings (seeds
0-4), so the members also differ in what pre-training leaves wrong, which bootstrap heads of one
base share. Difference error 1.36 and 1.36 tolerances on the validation tasks (1.44 and 1.65 with
one base), yet under the rule (kappa 2.5, 3, 3.5) at most 71.5% mean share (kappa 3), below the
73.1% of one base's 10 heads at kappa 2.5. Both variants show the same thing: a lower error on all near-boundary children does
not carry over to what the search picks, whose predictions stay optimistic (cifar100: pessimistic
predicted difference -0.06 to -0.09 points against true -0.64 to -1.70).

``--cut-correction`` attacks that optimism where it looked to come from. On the validation tasks the heads'
error of the child-minus-start difference grows with the FLOPs cut (over all near children: +2.51 and +2.24
tolerances per unit of cut, results/aiop_reduce.validation_m10k2.5.json), and the Pareto front seeks the largest
cuts, so it collects that error. predictor.reduce.cut_bias estimates that slope from the N fine-tuning archs alone
(cross-fitted heads, their FLOPs-reducing pairs within 3 edits; 3.16 and 2.89 there) and the search subtracts it x
the cut. On the validation tasks it does what it is for: at kappa
2 the pick bias falls to +0.25 and +0.19 tolerances (+0.53 and +0.71 without it at kappa 2.5) and the share
within tolerance reaches 80% and 81%, but the median cut falls to 10.5% and 8.1% (kappa 1-2: 8-15%), under the cut
floor on both, so the rule does not choose it (results/aiop_reduce.validation.md). On the table tasks the slope is
not a property of the estimator: the tables' "error slope with the cut" (over all near children, with the
task's labels) is +1.2 to +2.9 tolerances per unit of cut on cifar10, autoencoder, jigsaw and room_layout and
-1.5 to -0.1 on the other four, and cut_bias's estimate from the 50 labels does not follow it (0 to 0.73, and 10.0
on room_layout). For the record, ``--modes labelled --kappa 2 --search-tolerance=1 --cut-correction --name aiop_reduce.cut``
(results/aiop_reduce.cut.md): 2/8 (cifar10 83% / 29.6%, segmentsemantic),
but against the table of that time (kappa 2.5, whole tolerance) lower shares on 4 of the other 6 (room_layout
equal, jigsaw 57% against 44%).

``--estimator-baselines`` (results/aiop_reduce.baselines.md, about 2.5 min a task; rows resume): is
any other use of the same N labels a more accurate estimator of what the search decides on? The
near-boundary difference error of one fine-tuned head, the pre-trained heads' zero-shot score mapped
by least squares, a GP on the pre-trained encoder's embeddings, a GNN of AIO-P's size trained from
scratch on the N labels, and the transfer study's XGBoost, against the table's bootstrap heads. No
estimator is best on most tasks; the GNN from scratch is as accurate as the fine-tuned heads (lowest
on 4 of 10 tasks): on these near-neighbour differences pre-training adds little, which is why
``--scratch-members`` mixes such GNNs into the ensemble.

``--scratch-members 10`` adds 10 GNNs trained from scratch on the same bootstrap resamples
(predictor.reduce.bootstrap_scratch) to the 10 heads: members whose errors owe nothing to
pre-training, which the heads' spread cannot see. On the validation tasks the mean of the 20 errs a
little less (difference error 1.31 and 1.64 against 1.44 and 1.65) and the picks are about unbiased
(pick bias -0.22 and +0.39 tolerances at kappa 2.75), and it trades differently: ImageNet16-120
keeps cuts of 24-32% (the heads: 8-13%) at shares of 64-76%. Under the rule it does not win: the
best eligible, kappa 2.75, has a mean share of 71.3% (cifar100 78% / 25.3%, ImageNet16-120
64% / 32.4%) against the chosen 76.7%; higher kappas or margins reach 79-100% on cifar100 only with
its cut at or just under 25% or ImageNet16-120's under 10.5%, and empty fronts in 43-76% of runs
(results/aiop_reduce.validation.md).

``--ceiling`` (results/aiop_reduce.ceiling.md, about 2 h of one core: its slow part, per task in
results/aiop_reduce.ceiling.curve.jsonl, resumes, and a second process given the last tasks with
``--tasks`` halves it): what estimator error the target needs. The same searches with the true labels plus per-architecture Gaussian noise of sigma
tolerances, and with a sibling task's true labels (hindsight on every label), against the table
estimator's *difference error*: the RMS error of its predicted child-minus-start difference on
the decisions near the boundary, in the noisy oracle's units. The target needs sigma of about
0.5 tolerance; the table estimator's error is also given for 20-400 fine-tuning labels.

``--label-noise`` (results/aiop_reduce.noise.md, seconds): each encoding's label is its own training run.
The data files hold functionally identical encodings trained separately (edges that cannot reach
the cell output differ; predictor.spaces.canonical), whose labels differ by run-to-run noise
alone; their pooled SD per task, and the table's search with a simulated perfect predictor of
expected performance scored against labels drawn again with that noise: how much of the target
the noise leaves to any estimator.

Rows are appended to results/<name>.rows.jsonl as they finish (rerun to resume; a changed
configuration refuses to mix with old rows unless --fresh).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benchmarks' baselines

from predictor import data, graphs, spaces  # noqa: E402
from predictor import reduce as R  # noqa: E402
from predictor.aiop import AIOP, FeatureCache, head_name  # noqa: E402
from predictor.model import embeddings, spearman  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TASKS = [("nb201", "cifar10")] + [("tnb101", t) for t in data.TNB_TASKS]
METHODS = ("AIO-P", "random", "FLOPs only")
#: the same search with the true labels as the estimator (labelled mode only): every arch it returns
#: is within tolerance, so its median cut is what the search can reach at this budget with a perfect
#: predictor, the ceiling for the 25% target.
ORACLE = "oracle"


#: the issue's target: >= this share of returned archs within tolerance with >= this median FLOPs cut
TARGET_SHARE, TARGET_CUT_PCT = 0.8, 25.0


def meets_target(stats: dict) -> bool:
    """Whether one method's summary (share_within, median_cut_pct) on one task meets the target."""
    share, cut = stats["share_within"], stats["median_cut_pct"]
    return share is not None and cut is not None and share >= TARGET_SHARE and cut >= TARGET_CUT_PCT


def tolerance(family: str, task: str, labels) -> tuple[float, str]:
    """The task's equivalent of 1 percentage point, with the reason (see module docstring)."""
    if task in ("autoencoder", "normal"):
        return 0.01, "1 point of a 0-1 SSIM-like score"
    if task == "room_layout":
        return 0.01 * (max(labels) - min(labels)), "1% of the label range (negative L2 loss)"
    return 1.0, "1 percentage point"


def key_fn(r):
    return graphs.graph_key(r.family, r.task, r.arch)


def task_labels(recs, fam, task):
    """(the task's records, arch -> true label, tolerance, the tolerance's reason)."""
    task_recs = [r for r in recs if r.family == fam and r.task == task]
    labels = {r.arch: r.label for r in task_recs}
    return (task_recs, labels, *tolerance(fam, task, list(labels.values())))


def pretraining_families(fam) -> tuple:
    """The classification families AIO-P is pre-trained on for a task of ``fam``: all but ``fam``,
    so no label of the task's own family is seen."""
    return tuple(f for f in data.CLASSIFICATION_FAMILIES if f != fam)


#: what AIO-P is pre-trained on for a task (``--pretrain``). ``families``: :func:`pretraining_families`,
#: no label of the task's family. ``leave-task-out``: those plus the task family's other tasks, AIO-P's
#: transfer to an unseen task: the labels of the same architectures on the other tasks are seen, never
#: the task's own.
PRETRAIN_CHOICES = ("families", "leave-task-out")


#: the report's words for each PRETRAIN_CHOICES entry
PRETRAIN_TEXT = {"families": "on NB101+NB201+NB301 (NB101+NB301 for nb201/cifar10)",
                 "leave-task-out": "on NB101+NB201+NB301 (NB101+NB301 for nb201/cifar10) and the task family's other "
                                   "tasks (leave-task-out: the labels of the same architectures on other tasks are "
                                   "seen, never the task's own)"}


def pretraining_records(recs, fam, task, choice: str) -> list:
    """The records AIO-P is pre-trained on for ``fam``/``task`` (PRETRAIN_CHOICES)."""
    if choice not in PRETRAIN_CHOICES:
        raise ValueError(f"pre-training choice must be one of {PRETRAIN_CHOICES}, got {choice!r}")
    families = pretraining_families(fam)
    return [r for r in recs if r.family in families
            or (choice == "leave-task-out" and r.family == fam and r.task != task)]


def pretraining_tag(fam, task, choice: str) -> str:
    """What a pre-training depends on, for its cache file and to share it between tasks."""
    tag = "-".join(pretraining_families(fam))
    return tag + (f"+{fam}-but-{task}" if choice == "leave-task-out" else "")


def pretrain_choices(config: dict) -> list:
    """The PRETRAIN_CHOICES of a run's configuration (or ``vars(args)``); runs from before the
    option pre-trained on the families only."""
    return config.get("pretrain", "families").split(",")


def total_heads(config: dict) -> int:
    """Members of a run's estimator: ``members`` heads per pre-trained base, one base per
    pre-training choice and seed, plus the GNNs trained from scratch (``scratch_members``)."""
    return (config["members"] * config.get("pretrain_seeds", 1) * len(pretrain_choices(config))
            + config.get("scratch_members", 0))


def pretrained(recs, fam, task, choice, args, progress, seeds=(0,)) -> list:
    """AIO-P pre-trained on :func:`pretraining_records` of ``fam``/``task``, one per seed (cached on
    disk by configuration; the graphs are built once for the seeds not yet cached)."""
    epochs, per_family = args.pretrain_epochs, args.pretrain_per_family
    root = Path(os.environ.get("AIOP_CACHE", Path.home() / ".cache" / "aiop")) / "reduce-bench"
    tag = pretraining_tag(fam, task, choice)
    paths = {seed: root / f"pre-{tag}-e{epochs}-p{per_family}-g{graphs.GRAPH_VERSION}{f'-s{seed}' if seed else ''}.pt"
             for seed in seeds}
    missing = [seed for seed, path in paths.items() if not path.is_file()]
    if missing:
        pre = data.subsample(pretraining_records(recs, fam, task, choice), per_family)
        feats = FeatureCache(graphs.build_graphs(pre, progress=progress))
        root.mkdir(parents=True, exist_ok=True)
        for seed in missing:
            t0 = time.time()
            AIOP.pretrain(pre, feats, key_fn, epochs=epochs, seed=seed, progress=progress).save(paths[seed])
            print(f"pre-trained on {tag} ({len(pre)} records, {epochs} epochs, seed {seed}) in {time.time() - t0:.0f} s")
    return [AIOP.load(paths[seed]) for seed in seeds]


def pick_starts(task_recs, n: int, seed: int = 0):
    """``n`` archs drawn (seeded) from the top quartile of labels."""
    q75 = float(np.quantile([r.label for r in task_recs], 0.75))
    top = sorted((r for r in task_recs if r.label >= q75), key=lambda r: repr(r.arch))
    return random.Random(seed).sample(top, min(n, len(top)))


def labels_near(starts, candidates, n: int, seed: int = 0) -> list:
    """The ``n`` of ``candidates`` (records with an ``arch``) fewest edge edits away from any of
    ``starts`` (encodings), ties broken seeded-randomly: a fine-tuning budget spent where the
    search decides. The search compares a start with its few-edit neighbours, and heads fine-tuned
    there err less on those differences than heads fine-tuned on a random sample of the space,
    most of it poor networks far from any start (results/aiop_reduce.validation.md)."""
    starts = [tuple(s) for s in starts]
    if not starts:
        raise ValueError("labels_near needs at least one start encoding")
    rng = random.Random(seed)
    keyed = [(min(sum(a != b for a, b in zip(r.arch, s)) for s in starts), rng.random(), i)
             for i, r in enumerate(candidates)]
    return [candidates[i] for *_, i in sorted(keyed)[:n]]


#: how the benchmark picks the N fine-tuning archs among the labelled non-starts (``--finetune-choice``)
FINETUNE_CHOICES = ("random", "near")


def split_task(task_recs, n_starts: int, n_finetune: int, choice: str = "random"):
    """(starts, the other labelled records, the ``n_finetune`` of those the head is fine-tuned on:
    a random sample, or ``near``: those fewest edits from a start, labels_near);
    seeded, so every study of a task uses the same starts and fine-tuning set."""
    starts = pick_starts(task_recs, n_starts)
    start_set = {r.arch for r in starts}
    rest = sorted((r for r in task_recs if r.arch not in start_set), key=lambda r: repr(r.arch))
    if choice == "near":
        return starts, rest, labels_near([s.arch for s in starts], rest, n_finetune, seed=1)
    return starts, rest, random.Random(1).sample(rest, n_finetune)


def summarise(rows, tols) -> dict:
    """Per (mode, task, method): returned, labelled, share within tolerance, median FLOPs cut; for
    AIO-P also the pick bias: the mean over returned labelled archs of (search score - start's) -
    (label - start's), in tolerances. Positive = what the search picked was predicted too well, the
    selection effect a margin must cover and a low error over all near-boundary children need not cure."""
    out: dict = {}
    for row in rows:
        tol = tols[row["task"]]
        for m in row["methods"]:
            s = out.setdefault(row["mode"], {}).setdefault(row["task"], {}).setdefault(
                m, {"runs": 0, "empty": 0, "returned": 0, "labelled": 0, "within": 0, "evaluations": 0, "cuts": [],
                    "biases": []})
            ret = row["methods"][m]
            s["runs"] += 1
            s["evaluations"] += row["evaluations"]
            s["empty"] += not ret
            for a in ret:
                s["returned"] += 1
                s["cuts"].append(100.0 * (1 - a["mflops"] / row["start_mflops"]))
                if a["label"] is not None:
                    s["labelled"] += 1
                    s["within"] += a["label"] >= row["start_label"] - tol
                    if m == "AIO-P":  # the method whose search scores (start_predicted, predicted) the row holds
                        s["biases"].append((a["predicted"] - row["start_predicted"] - a["label"] + row["start_label"]) / tol)
    for per_task in out.values():
        for per_m in per_task.values():
            for m, s in per_m.items():
                s["share_within"] = s["within"] / s["labelled"] if s["labelled"] else None
                s["mean_evaluations"] = s.pop("evaluations") / s["runs"]
                s["median_cut_pct"] = statistics.median(s["cuts"]) if s["cuts"] else None
                biases = s.pop("biases")
                if m == "AIO-P":
                    s["pick_bias_tol"] = statistics.fmean(biases) if biases else None
                del s["cuts"]
    return out


#: difference_error counts children whose true difference to the start is within this many
#: tolerances of the decision boundary (-1 tolerance): the decisions an error of that size can flip
BOUNDARY_BAND = 2.0


def neighbour_differences(score_fn, flops_fn, space, starts, labels, allowed, max_edits, tol, band=None):
    """Per start and labelled FLOPs-reducing neighbour within ``max_edits`` edits (in ``allowed``):
    (predicted minus true child-minus-start difference in tolerances, FLOPs cut as a fraction of the
    start's). ``band``: only children whose true difference is within that many tolerances of the
    boundary (-1 tolerance), scored alone. Ensembles: the members' mean."""
    errors, cuts = [], []
    for s in starts:
        start_flops = flops_fn(s.arch)
        nb = {a: flops_fn(a) for a in space.neighbours(s.arch, max_edits) if a in allowed}
        nb = {a: f for a, f in nb.items() if f < start_flops
              and (band is None or abs(labels[a] - s.label + tol) <= band * tol)}
        pred = np.asarray(score_fn([s.arch, *nb]), dtype=np.float64).reshape(len(nb) + 1, -1).mean(1)
        errors += list((pred[1:] - pred[0] - (np.array([labels[a] for a in nb]) - s.label)) / tol)
        cuts += [1 - f / start_flops for f in nb.values()]
    return np.array(errors), np.array(cuts)


def difference_error(score_fn, flops_fn, space, starts, labels, allowed, max_edits, tol) -> float:
    """An estimator's error on what the search decides, in tolerances: RMS over starts and their
    labelled FLOPs-reducing neighbours near the boundary (true child-minus-start difference within
    BOUNDARY_BAND tolerances of -1 tolerance) of (predicted - true) difference, / sqrt 2. The
    ceiling study's noisy oracle errs by sigma sqrt 2 on every difference, so it scores sigma.
    Far-off children are left out: a child 30 points worse is rejected whatever the error, and
    tasks with heavy tails would otherwise be dominated by them. Ensembles: the members' mean."""
    errors, _ = neighbour_differences(score_fn, flops_fn, space, starts, labels, allowed, max_edits, tol,
                                      BOUNDARY_BAND)
    return float(np.sqrt(np.mean(np.square(errors)) / 2)) if len(errors) else float("nan")


def cut_slope(score_fn, flops_fn, space, starts, labels, allowed, max_edits, tol) -> float:
    """How fast an estimator's error of the child-minus-start difference grows with the FLOPs cut
    over every labelled FLOPs-reducing neighbour of the starts (least-squares slope with an
    intercept, tolerances per unit of cut; positive: larger cuts are predicted too well, which a
    search for the largest cuts collects). What predictor.reduce.cut_bias estimates from the
    fine-tuning labels alone, measured on the task's own children."""
    errors, cuts = neighbour_differences(score_fn, flops_fn, space, starts, labels, allowed, max_edits, tol)
    return R.slope_on_cut(cuts, errors)


def run_task(fam, task, recs, bases, args, mode_seeds, done, write, progress):
    """All runs of one task: fine-tune the heads (``args.members`` per pre-trained base), then
    (mode, seed, start) searches."""
    task_recs, labels, tol, reason = task_labels(recs, fam, task)
    starts, rest, ft = split_task(task_recs, args.starts, args.n, args.finetune_choice)
    ft_set = {r.arch for r in ft}
    head = head_name(fam, task)
    ft_feats = FeatureCache(graphs.build_graphs(ft, progress=False))
    if args.members == 1 and len(bases) == 1 and not args.scratch_members:  # one head, fine-tuned on all N
        heads = bases[0].finetune(ft, ft_feats, key_fn, head, seed=0, **R.FINETUNE)
    else:
        heads = [h for base in bases for h in R.bootstrap_heads(base, ft, ft_feats, key_fn, head, args.members, seed=0)]
        heads += R.bootstrap_scratch(ft, ft_feats, key_fn, args.scratch_members, seed=0) if args.scratch_members else []
    est = R.AIOPEstimator(heads, fam, task, records=task_recs)
    space = R.space_for(fam)
    cut_penalty = R.cut_bias(bases[0], ft, ft_feats, key_fn, head, space, est.flops) if args.cut_correction else 0.0
    held = [r for r in rest if r.arch not in ft_set]
    held = random.Random(2).sample(held, min(args.srcc_archs, len(held)))
    pred = np.asarray(est([r.arch for r in held])).reshape(len(held), -1).mean(1)  # ensemble: the members' mean
    srcc = spearman(pred, [r.label for r in held])  # context: predictor quality
    labelled_allowed = set(labels) - ft_set
    info = {"tolerance": tol, "finetune_archs": len(ft), "heldout_srcc": srcc, "heldout_archs": len(held),
            "difference_error_tol": difference_error(est, est.flops, space, starts, labels, labelled_allowed,
                                                     args.max_edits_labelled, tol),
            "cut_slope_tol": cut_slope(est, est.flops, space, starts, labels, labelled_allowed,
                                       args.max_edits_labelled, tol),
            "cut_penalty_tol": cut_penalty / tol, "tolerance_reason": reason, "pretrain": [pretraining_tag(fam, task, c) for c in pretrain_choices(vars(args))]}
    print(f"{fam}/{task}: tolerance {tol:.4g}, held-out SRCC of the fine-tuned head {srcc:.3f} ({len(held)} archs)")
    everything = set(itertools.product(range(len(space.ops)), repeat=space.num_edges)) - ft_set
    for mode, seeds, n_starts in mode_seeds:
        if mode == "open" and f"{fam}/{task}" not in args.open_tasks.split(","):
            continue
        allowed = labelled_allowed if mode == "labelled" else everything
        max_edits = args.max_edits_labelled if mode == "labelled" else args.max_edits_open
        from tqdm import tqdm

        jobs = [(seed, s) for seed in seeds for s in starts[:n_starts] if (mode, f"{fam}/{task}", seed, repr(s.arch)) not in done]
        for seed, s in tqdm(jobs, desc=f"{mode} {fam}/{task}", disable=not progress):
            res = R.reduce(s.arch, space, est, est.flops, tol * args.search_tolerance, args.budget, seed,
                           max_edits=max_edits, allowed=allowed, progress=False, kappa=args.kappa,
                           cut_penalty=cut_penalty)
            k = len(res.front)
            pool = R.random_reductions(s.arch, space, est.flops, res.evaluations, seed, max_edits, allowed)
            rnd = random.Random(seed).sample(pool, min(k, len(pool)))
            cheap = sorted(pool, key=lambda c: (c.flops, c.arch))[:k]
            methods = {"AIO-P": res.front, "random": rnd, "FLOPs only": cheap}
            if mode == "labelled":
                methods[ORACLE] = R.reduce(s.arch, space, lambda archs: [labels[a] for a in archs], est.flops, tol,
                                           args.budget, seed, max_edits=max_edits, allowed=allowed,
                                           progress=False).front

            def rows(cands):
                return [{"arch": list(c.arch), "mflops": c.flops, "label": labels.get(c.arch),
                         "predicted": None if np.isnan(c.score) else c.score} for c in cands]

            write({"mode": mode, "task": f"{fam}/{task}", "seed": seed, "start": list(s.arch),
                   "start_label": s.label, "start_mflops": res.start.flops, "start_predicted": res.start.score,
                   "evaluations": res.evaluations, "pool": len(pool), "max_edits": max_edits,
                   "methods": {m: rows(c) for m, c in methods.items()}})
    return info


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:.1f}%"


def _signed(v) -> str:
    return "n/a" if v is None else f"{v:+.2f}"


def _share_cut(stats) -> str:
    """One method's summary on one task as "share within tolerance / median cut"."""
    return "n/a" if stats is None or stats["share_within"] is None else \
        f"{100 * stats['share_within']:.0f}% / {_pct(stats['median_cut_pct'])}"


def _main_table() -> dict:
    """results/aiop_reduce.json, the table the studies compare AIO-P with (empty if not yet run)."""
    path = RESULTS / "aiop_reduce.json"
    return json.loads(path.read_text()) if path.is_file() else {"summary": {"labelled": {}}, "tasks": {}}


def write_report(rows, infos, config, seconds, name, resumed):
    tols = {t: i["tolerance"] for t, i in infos.items()}
    summ = summarise([r for r in rows if r["task"] in tols], tols)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"config": config, "tasks": infos, "summary": summ,
                                                          "seconds": seconds, "resumed_rows": resumed}, indent=1))
    lines = ["# AIO-P-guided FLOPs reduction vs baselines", "",
             f"{config['starts']} starts per task (top quartile of labels), seeds {config['seeds']}, budget "
             f"{config['budget']} estimator evaluations per run (baselines get as many as the AIO-P search used). "
             f"Predictor: AIO-P pre-trained ({config['pretrain_epochs']} epochs, "
             f"{config['pretrain_per_family'] or 'all'} archs per family) "
             + " and, as a second base, ".join(PRETRAIN_TEXT[c] for c in pretrain_choices(config))
             + (f", each with {config['pretrain_seeds']} seeds" if config.get("pretrain_seeds", 1) > 1 else "")
             + f", head fine-tuned ({config['finetune']}) on N={config['n']} labelled archs of the task "
             + ("fewest edits from a start " if config.get("finetune_choice") == "near" else "drawn at random ")
             + "(not starts, never returned). "
             f"Search tolerance = {config['search_tolerance']} x the evaluation tolerance. "
             + ("The search also holds each child back by the heads' bias with the FLOPs cut, cross-fitted on the N "
                "archs (predictor.reduce.cut_bias, `--cut-correction`). " if config.get("cut_correction") else "")
             + ("Estimator: one head. " if total_heads(config) == 1 else
                f"Estimator: {config['members']} heads per base fine-tuned on bootstrap resamples of the N archs"
                + (f" and {config['scratch_members']} GNNs trained from scratch on the same resamples "
                   "(predictor.reduce.bootstrap_scratch)" if config.get("scratch_members") else "")
                + f"; the search "
                f"scores a child by mean - {config['kappa']} x std over members of its predicted difference to the "
                "start and keeps it if that is >= -(search tolerance) (kappa and search tolerance as chosen for "
                "this N on the validation tasks NB201 cifar100 and ImageNet16-120 with the default pre-training, "
                "never on these: results/aiop_reduce.validation.md). ")
             + "FLOPs = the benchmark's own count (the data file's, extended exactly to every encoding by "
             "predictor.reduce.BenchmarkFlops). "
             f"Wall time of this invocation {seconds / 60:.1f} min (nice -n 10, 1 torch thread; {resumed} of "
             f"{len(rows)} rows resumed from an earlier invocation).", "",
             "Cells: share of returned labelled archs whose true performance is within tolerance of the start "
             "(returned / unlabelled in brackets), median FLOPs cut of returned archs. Difference error: RMS of the "
             "estimator's error of the child-minus-start difference over each start's labelled FLOPs-reducing "
             f"neighbours whose true difference is within {BOUNDARY_BAND:g} tolerances of the boundary, / sqrt 2, in "
             "tolerances; results/aiop_reduce.ceiling.md shows what the target needs (`--ceiling`). Error slope with the "
             "cut: least-squares slope of that error on the FLOPs cut over all of those neighbours (not only near the "
             "boundary), tolerances per unit of cut (positive: larger cuts are predicted too well)"
             + ("; the search's penalty is what predictor.reduce.cut_bias estimated from the N fine-tuning archs alone "
                "and the search subtracted, x the cut" if config.get("cut_correction") else "") + ". Pick bias: the "
             "mean over the returned labelled archs of the search's (pessimistic) predicted difference to the start "
             "minus the true one, in tolerances; positive = the picks were predicted too well.", ""]
    for mode, per_task in summ.items():
        oracle = any(ORACLE in per_m for per_m in per_task.values())
        lines += [f"## mode: {mode}", "", "| task | tolerance | SRCC (held-out) | " + " | ".join(
            f"{m} within tol | {m} median cut" for m in METHODS) + (" | oracle median cut" if oracle else "")
            + " | AIO-P difference error (tolerances) | AIO-P error slope with the cut"
            + (" / search's penalty" if config.get("cut_correction") else "")
            + " | AIO-P pick bias (tolerances) | AIO-P empty fronts | evaluations per run |",
            "|---" * (9 + 2 * len(METHODS) + oracle) + "|"]
        wins, met = 0, []
        for task, per_m in per_task.items():
            cells = []
            for m in METHODS:
                s = per_m[m]
                sh = "n/a" if s["share_within"] is None else f"{100 * s['share_within']:.0f}%"
                cells += [f"{sh} ({s['returned']}/{s['returned'] - s['labelled']})", _pct(s["median_cut_pct"])]
            if oracle:
                cells.append(_pct(per_m[ORACLE]["median_cut_pct"]) if ORACLE in per_m else "n/a")
            a, r, f = (per_m[m]["share_within"] for m in METHODS)
            wins += a is not None and a > (r or 0) and a > (f or 0)
            if meets_target(per_m["AIO-P"]):
                met.append(task)
            i = infos[task]
            lines.append(f"| {task} | {i['tolerance']:.3g} | {i['heldout_srcc']:.3f} | "
                         + " | ".join(cells)
                         + f" | {i['difference_error_tol']:.2f} | {_signed(i['cut_slope_tol'])}"
                         + (f" / {i['cut_penalty_tol']:.2f}" if config.get("cut_correction") else "")
                         + f" | {_signed(per_m['AIO-P']['pick_bias_tol'])} | "
                         f"{per_m['AIO-P']['empty']}/{per_m['AIO-P']['runs']} | "
                         f"{per_m['AIO-P']['mean_evaluations']:.1f} |")
        lines += ["", f"AIO-P beats both baselines on share within tolerance on {wins}/{len(per_task)} tasks.",
                  f"AIO-P keeps >= 80% within tolerance with a median cut >= 25% on {len(met)}/{len(per_task)} tasks"
                  f"{': ' + ', '.join(met) if met else ''}.", ""]
    lines += ["Tolerances: " + "; ".join(f"{t}: {i['tolerance']:.4g} ({i['tolerance_reason']})"
                                         for t, i in infos.items()), ""]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


#: the tasks the estimator configurations are chosen on (never in the tables)
VALIDATION_TASKS = ("nb201/cifar100", "nb201/ImageNet16-120")


def meets_cut_floor(cut_pct: float, floor_pct: float) -> bool:
    """Whether a median cut reaches the validation rule's floor. Equal cuts count as reaching it even
    when their floating-point sums differ in the last digits (the same architectures' cut reached in
    another order, e.g. 10.504631457755465 against the oracle's 10.504631457755575)."""
    return cut_pct >= floor_pct - 1e-9


def write_validation_summary() -> dict:
    """results/aiop_reduce.validation.md from the committed validation_*.json runs: per
    configuration the AIO-P share within tolerance and median cut on VALIDATION_TASKS, and per
    number of fine-tuning labels N the choice by the rule (highest mean share with a median cut
    >= 25%, or >= the oracle's median cut where that is lower, on both tasks). The oracle clause:
    where even the true labels cut less than 25% (ImageNet16-120: 10.5%), demanding 25% would
    reward returning wrong architectures. Returns {N: the chosen configuration}."""
    configs = []
    for path in sorted(RESULTS.glob("aiop_reduce.validation_*.json")):
        d = json.loads(path.read_text())
        c, per_task = d["config"], d["summary"]["labelled"]
        stats = [per_task[t]["AIO-P"] for t in VALIDATION_TASKS]
        configs.append({
            "file": path.stem.removeprefix("aiop_reduce."), "n": c["n"], "choice": c.get("finetune_choice", "random"),
            "pretrain": c.get("pretrain", "families") + (f" x {c['pretrain_seeds']} seeds" if c.get("pretrain_seeds", 1) > 1
                                                         else ""),
            "members": total_heads(c), "scratch": c.get("scratch_members", 0),
            "cut_correction": c.get("cut_correction", False),
            "kappa": c["kappa"], "factor": c["search_tolerance"],
            "biases": [s_.get("pick_bias_tol") for s_ in stats],
            "shares": [s_["share_within"] for s_ in stats], "cuts": [s_["median_cut_pct"] for s_ in stats],
            "floors": [min(TARGET_CUT_PCT, per_task[t][ORACLE]["median_cut_pct"]) for t in VALIDATION_TASKS],
            "empty": sum(s_["empty"] for s_ in stats) / sum(s_["runs"] for s_ in stats)})
    configs.sort(key=lambda c: (c["n"], c["pretrain"], c["choice"] != "random", c["cut_correction"], c["scratch"],
                                c["members"], c["kappa"], -c["factor"]))
    for c in configs:
        c["mean_share"] = statistics.fmean(c["shares"])
        c["eligible"] = all(meets_cut_floor(x, f) for x, f in zip(c["cuts"], c["floors"]))
    chosen = {n: max((c for c in configs if c["eligible"] and c["n"] == n), key=lambda c: c["mean_share"], default=None)
              for n in sorted({c["n"] for c in configs})}
    lines = ["# FLOPs reduction: estimator choice on the validation tasks", "",
             f"{' and '.join(VALIDATION_TASKS)} only (never in the tables), the protocol of results/aiop_reduce.md "
             "(20 starts x 5 seeds, budget 50, labelled mode, heads fine-tuned as predictor.reduce.FINETUNE on N "
             "labelled archs: a random sample of the non-starts, or the N fewest edits from a start, `near`). Cells: "
             "AIO-P share of returned archs truly within tolerance of the start / median FLOPs cut. Rule, per N: the "
             "highest mean share with a median cut >= 25% on both tasks, or >= the oracle's median cut (the same "
             "search with the true labels) where that is lower. Pick bias: the mean over returned labelled archs of "
             "the search's predicted difference to the start minus the true one, in tolerances, per task (n/a: runs "
             "from before it was recorded). Cut correction: the search holds children back by the heads' bias with "
             "the FLOPs cut (`--cut-correction`, predictor.reduce.cut_bias). Rendered by "
             "`python benchmarks/aiop_reduce.py --validation-summary` from results/aiop_reduce.<file>.json.", "",
             "| N | pre-training | fine-tuning archs | members | cut correction | kappa | search tolerance factor | file | "
             + " | ".join(VALIDATION_TASKS) + " | cut floor | mean share | cut floor met on both | runs with an empty front "
             "| pick bias (tolerances) |",
             "|---" * (13 + len(VALIDATION_TASKS)) + "|"]
    for c in configs:
        cells = [f"{100 * sh:.0f}% / {cut:.2f}%" for sh, cut in zip(c["shares"], c["cuts"])]
        members = f"{c['members']}" + (f" ({c['scratch']} from scratch)" if c["scratch"] else "")
        lines.append(f"| {c['n']} | {c['pretrain']} | {c['choice']} | {members} | "
                     f"{'yes' if c['cut_correction'] else 'no'} | {c['kappa']:g} | {c['factor']:g} | {c['file']}"
                     f"{' (chosen)' if c is chosen[c['n']] else ''} | " + " | ".join(cells)
                     + " | " + " / ".join(f"{f:.1f}%" for f in c["floors"])
                     + f" | {100 * c['mean_share']:.1f}% | {'yes' if c['eligible'] else 'no'} | {100 * c['empty']:.1f}% | "
                     + " / ".join(map(_signed, c["biases"])) + " |")
    lines.append("")
    for n, c in chosen.items():
        if c is None:
            lines.append(f"At N={n} no configuration meets the cut floor on both tasks: none is chosen.")
            continue
        lines.append(f"Chosen at N={n}: {c['file']} ({100 * c['mean_share']:.1f}%).")
        single = [x for x in configs if x["eligible"] and x["members"] == 1 and x["n"] == n]
        if single:
            best = max(single, key=lambda x: x["mean_share"])
            lines.append(f"The best one-head threshold at N={n} ({best['file']}, {100 * best['mean_share']:.1f}%, empty "
                         f"front in {100 * best['empty']:.1f}% of runs) is the control for the ensembles: the choice is "
                         f"{100 * (c['mean_share'] - best['mean_share']):+.1f} points above it.")
    (RESULTS / "aiop_reduce.validation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return chosen


#: per-architecture error of the noisy-oracle estimators, in units of the task's tolerance
CEILING_SIGMAS = (0.25, 0.5, 1.0, 2.0)
#: fine-tuning label counts of the ceiling study's difference-error curve
CEILING_LABELS = (20, 50, 100, 200, 400)


#: the ceiling study's difference error against fine-tuning labels, one row per finished task
CEILING_CURVE = RESULTS / "aiop_reduce.ceiling.curve.jsonl"


def _finished_tasks(path: Path, config) -> dict:
    """task -> its difference errors, of the per-task rows in ``path`` (a study's jsonl, appended to
    as each task finishes so that reruns resume) made with ``config``."""
    done = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a torn last line from an interrupted run
            continue
        if row["config"] == config:
            done[row["task"]] = row["difference_error_tol"]
    return done


def _append_task(path: Path, task: str, config, errors: dict) -> None:
    """Append one task's row to ``path`` (on a line of its own after a torn last line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = False
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
    with path.open("a") as fh:
        fh.write(("\n" if torn else "") + json.dumps({"task": task, "config": config, "difference_error_tol": errors})
                 + "\n")


def sibling_labels(fam, task, recs) -> tuple[str, float, dict]:
    """The same family's other task whose true labels correlate best (Pearson, over shared archs) with
    this task's, mapped onto this task's scale by least squares: (task, r, arch -> mapped label). Both
    choices use every label with hindsight, so this is a ceiling, not an estimator anyone has."""
    by_task: dict = {}
    for r in recs:
        if r.family == fam:
            by_task.setdefault(r.task, {})[r.arch] = r.label
    own, best = by_task[task], None
    for other, labels in sorted(by_task.items()):
        if other == task:
            continue
        shared = sorted(set(own) & set(labels))
        x, y = np.array([labels[a] for a in shared]), np.array([own[a] for a in shared])
        r = float(np.corrcoef(x, y)[0, 1])
        if best is None or r > best[1]:
            slope, icept = np.polyfit(x, y, 1)
            best = (other, r, {a: slope * v + icept for a, v in labels.items()})
    return best


def run_ceiling(tasks, recs, args) -> None:
    """results/aiop_reduce.ceiling.{json,md}: the table's search and protocol (starts, seeds, budget,
    fine-tuning archs excluded from the returns) with estimators better than any 50-label predictor:
    true labels plus independent per-arch Gaussian noise of sigma x tolerance (sigma 0 is the table's
    oracle), and the best-correlated sibling task's true labels. Shows what estimator error the
    80%-within-1-point target needs; then the table's estimator's difference error for
    CEILING_LABELS fine-tuning labels, i.e. how far more labels get towards it."""
    import zlib

    from tqdm import tqdm

    t0, rows, infos = time.time(), [], {}
    for fam, task in tasks:
        task_recs, labels, tol, reason = task_labels(recs, fam, task)
        starts, _, ft = split_task(task_recs, args.starts, args.n)
        allowed = set(labels) - {r.arch for r in ft}
        space = R.space_for(fam)
        flops = R.BenchmarkFlops(fam, task, task_recs)
        sib_task, sib_r, sib = sibling_labels(fam, task, recs)
        infos[f"{fam}/{task}"] = {"tolerance": tol, "tolerance_reason": reason, "sibling": sib_task, "sibling_r": sib_r,
                                  "sibling_difference_error_tol": difference_error(
                                      lambda archs: [sib[a] for a in archs], flops, space, starts, labels, allowed,
                                      args.max_edits_labelled, tol)}
        ordered = sorted(labels)
        for seed in tqdm(range(args.seeds), desc=f"ceiling {fam}/{task}"):
            z = np.random.default_rng([seed, zlib.crc32(f"{fam}/{task}".encode())]).standard_normal(len(ordered))
            noise = dict(zip(ordered, z))
            estimators = {ORACLE: labels.__getitem__, "sibling": sib.__getitem__}
            estimators.update({f"sigma={sg:g}": (lambda a, sg=sg: labels[a] + sg * tol * noise[a]) for sg in CEILING_SIGMAS})
            for s in starts:
                methods = {}
                for name, f in estimators.items():
                    res = R.reduce(s.arch, space, lambda archs, f=f: [f(a) for a in archs], flops, tol, args.budget,
                                   seed, max_edits=args.max_edits_labelled, allowed=allowed, progress=False)
                    methods[name] = [{"arch": list(c.arch), "mflops": c.flops, "label": labels[c.arch]} for c in res.front]
                rows.append({"mode": "labelled", "task": f"{fam}/{task}", "seed": seed, "start_label": s.label,
                             "start_mflops": res.start.flops, "evaluations": res.evaluations, "methods": methods})
    # the curve is the slow part (about 12 min a task): each task's is kept in CEILING_CURVE as it
    # finishes and reused by a rerun of the same configuration, so runs resume, and processes
    # given disjoint --tasks can share the work
    curve_config = {"labels": list(CEILING_LABELS), "finetune": R.FINETUNE, "graph_version": graphs.GRAPH_VERSION,
                    **{k: getattr(args, k) for k in ("starts", "members", "max_edits_labelled", "pretrain_epochs",
                                                     "pretrain_per_family")}}
    reused = 0
    for fam, task in tqdm(tasks, desc="difference error vs labels"):
        name = f"{fam}/{task}"
        done = _finished_tasks(CEILING_CURVE, curve_config)  # read per task: another process may have added it
        if name in done:
            infos[name]["difference_error_tol"] = {int(n): e for n, e in done[name].items()}
            reused += 1
            continue
        task_recs, labels, tol, _ = task_labels(recs, fam, task)
        base, = pretrained(recs, fam, task, "families", args, progress=False)
        curve = infos[name]["difference_error_tol"] = {}
        # nested fine-tuning sets, all scored on the children outside the largest
        starts, _, pool = split_task(task_recs, args.starts, max(CEILING_LABELS))
        unseen = set(labels) - {r.arch for r in pool}
        for n in CEILING_LABELS:
            ft = pool[:n]
            est = R.AIOPEstimator(R.bootstrap_heads(base, ft, FeatureCache(graphs.build_graphs(ft, progress=False)),
                                                    key_fn, head_name(fam, task), args.members, seed=0), fam, task,
                                  records=task_recs)
            curve[n] = difference_error(est, est.flops, R.space_for(fam), starts, labels, unseen,
                                        args.max_edits_labelled, tol)
        _append_task(CEILING_CURVE, name, curve_config, curve)
    summ = summarise(rows, {t: i["tolerance"] for t, i in infos.items()})["labelled"]
    names = [ORACLE] + [f"sigma={sg:g}" for sg in CEILING_SIGMAS] + ["sibling"]
    aiop = _main_table()
    RESULTS.mkdir(exist_ok=True)
    config = {k: getattr(args, k) for k in ("starts", "seeds", "budget", "n", "max_edits_labelled", "members",
                                            "pretrain_epochs", "pretrain_per_family")}
    (RESULTS / "aiop_reduce.ceiling.json").write_text(json.dumps(
        {"config": config, "sigmas": CEILING_SIGMAS, "labels": CEILING_LABELS, "tasks": infos, "summary": summ, "seconds": time.time() - t0}, indent=1))

    lines = ["# FLOPs reduction: what estimator error the target needs", "",
             f"The protocol of results/aiop_reduce.md ({args.starts} top-quartile starts x {args.seeds} seeds per task, "
             f"budget {args.budget}, labelled mode, the same {args.n} fine-tuning archs never returned) with estimators "
             "better than any predictor fine-tuned on 50 labels. oracle: the true labels (every return is within "
             "tolerance). sigma=s: the true label plus independent Gaussian noise of s x tolerance per architecture "
             "(drawn per seed), so s=1 is an estimator whose error is 1 point on a 1-point tolerance. sibling: the "
             "true labels of the same family's best-correlated other task, mapped onto this task's scale by least "
             "squares (task and Pearson r in the column; hindsight on every label). AIO-P: the table's estimator "
             "(results/aiop_reduce.md). Cells: share of returned archs truly within tolerance / median FLOPs cut; the "
             "difference errors are in tolerances (see the second table); the "
             "target is >= 80% with >= 25%. `nice -n 10 python benchmarks/aiop_reduce.py --ceiling` "
             f"({(time.time() - t0) / 60:.1f} min; the label curves of {reused} of {len(tasks)} tasks were taken from "
             "results/aiop_reduce.ceiling.curve.jsonl, about 12 min of one core each).", "",
             "| task | tolerance | " + " | ".join(names[:-1]) + " | sibling (task, r, difference error) | sibling | AIO-P (table; difference error) |",
             "|---" * (len(names) + 4) + "|"]
    for task, per_m in summ.items():
        i = infos[task]
        lines.append(f"| {task} | {i['tolerance']:.3g} | " + " | ".join(_share_cut(per_m[n]) for n in names[:-1])
                     + f" | {i['sibling']}, r {i['sibling_r']:.3f}, error {i['sibling_difference_error_tol']:.2f} | "
                     f"{_share_cut(per_m['sibling'])} | "
                     + _share_cut(aiop["summary"]["labelled"].get(task, {}).get("AIO-P"))
                     + (f", error {aiop['tasks'][task]['difference_error_tol']:.2f}" if task in aiop["tasks"] else "") + " |")
    met = {n: sum(meets_target(per_m[n]) for per_m in summ.values()) for n in names}
    lines += ["", "Tasks meeting the target: " + ", ".join(f"{n} {k}/{len(summ)}" for n, k in met.items()) + ".", "",
              "## The table's estimator: difference error against fine-tuning labels", "",
              f"{args.members} bootstrap heads fine-tuned ({R.FINETUNE['epochs']} epochs, so more steps for more "
              f"labels) on the first N of {max(CEILING_LABELS)} labelled archs of the "
              "task drawn once (never starts; nested sets), the rest of the table's pre-training and protocol "
              "unchanged. Every N is scored on the same children: each start's labelled FLOPs-reducing neighbours (<= "
              f"{args.max_edits_labelled} edits) outside all {max(CEILING_LABELS)}, so N=50 differs from the table's "
              "column (another fine-tuning set and fewer children). Cells: RMS of the error of the predicted "
              "child-minus-start difference over those whose true difference is within "
              f"{BOUNDARY_BAND:g} tolerances of the boundary (-1 tolerance), / sqrt 2, in tolerances: the sigma of "
              "the noisy oracle above that errs as much on those decisions. Label noise: the labels' run-to-run SD "
              "(results/aiop_reduce.noise.md, `--label-noise`), about what a perfect predictor of expected "
              "performance would score here.", "",
              "| task | " + " | ".join(f"N={n}" for n in CEILING_LABELS) + " | label noise |",
              "|---" * (2 + len(CEILING_LABELS)) + "|"]
    noise_file = RESULTS / "aiop_reduce.noise.json"
    noise = json.loads(noise_file.read_text())["tasks"] if noise_file.is_file() else {}
    lines += [f"| {task} | " + " | ".join(f"{i['difference_error_tol'][n]:.2f}" for n in CEILING_LABELS)
              + (f" | {noise[task]['run_to_run_sd_tol']:.2f} |" if task in noise else " | n/a |") for task, i in infos.items()]
    (RESULTS / "aiop_reduce.ceiling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


#: safety margins (tolerances) a perfect predictor of expected performance may keep above the
#: boundary in --label-noise: it accepts a child predicted >= start - (1 - margin) tolerance
NOISE_MARGINS = (0.0, 0.5, 1.0, 2.0, 3.0)
#: fresh-noise draws per returned architecture in --label-noise
NOISE_DRAWS = 50


def run_to_run_sd(fam, labels) -> tuple[float, int, int]:
    """The labels' run-to-run noise: the pooled SD within groups of functional duplicates (the same
    :func:`predictor.spaces.canonical` form, trained separately by the benchmark), over the groups
    whose mean is at or above the task's median label (starts and their near-boundary children live
    there; broken networks below it scatter far more). (SD, degrees of freedom, groups)."""
    groups: dict = {}
    for arch, y in labels.items():
        groups.setdefault(spaces.canonical(fam, arch), []).append(y)
    median = float(np.median(list(labels.values())))
    dup = [np.array(v) for v in groups.values() if len(v) >= 2 and np.mean(v) >= median]
    dof = sum(len(v) - 1 for v in dup)
    if not dof:
        raise ValueError(f"{fam}: no functional duplicates above the median label; run-to-run noise unmeasurable")
    return float(np.sqrt(sum(np.sum((v - v.mean()) ** 2) for v in dup) / dof)), dof, len(dup)


def run_label_noise(tasks, recs, args) -> None:
    """results/aiop_reduce.noise.{json,md}: how much of the target any estimator can reach when
    "true performance" is one training run. Measures each task's run-to-run SD (run_to_run_sd),
    then simulates a perfect predictor of expected performance: the table's search (starts, seeds,
    budget, fine-tuning archs excluded) with the labels as the expected performance, accepting
    children down to (1 - margin) tolerances below the start, scored against re-drawn labels
    (label + SD x N(0, 1), NOISE_DRAWS per returned arch and start)."""
    import math
    import zlib

    from tqdm import tqdm

    t0, infos = time.time(), {}
    for fam, task in tasks:
        name = f"{fam}/{task}"
        task_recs, labels, tol, reason = task_labels(recs, fam, task)
        starts, _, ft = split_task(task_recs, args.starts, args.n)
        allowed = set(labels) - {r.arch for r in ft}
        space, flops = R.space_for(fam), R.BenchmarkFlops(fam, task, task_recs)
        sd, dof, n_groups = run_to_run_sd(fam, labels)
        info = infos[name] = {"tolerance": tol, "tolerance_reason": reason, "run_to_run_sd": sd,
                              "run_to_run_sd_tol": sd / tol, "dof": dof, "groups": n_groups,
                              # a child as good as the start in expectation: P(N(0, 2 sd^2) >= -tol)
                              "equal_child_within": 0.5 * (1 + math.erf(tol / (2 * sd))), "margins": {}}
        for margin in tqdm(NOISE_MARGINS, desc=f"label noise {name}"):
            within = total = 0
            cuts = []
            for seed in range(args.seeds):
                for k, s in enumerate(starts):
                    front = R.reduce(s.arch, space, lambda archs: [labels[a] for a in archs], flops, tol * (1 - margin),
                                     args.budget, seed, max_edits=args.max_edits_labelled, allowed=allowed,
                                     progress=False).front
                    if not front:
                        continue
                    rng = np.random.default_rng([seed, k, zlib.crc32(name.encode())])
                    redrawn = np.array([s.label] + [labels[c.arch] for c in front]) + sd * rng.standard_normal(
                        (NOISE_DRAWS, len(front) + 1))
                    within += int(np.sum(redrawn[:, 1:] >= redrawn[:, :1] - tol))
                    total += redrawn[:, 1:].size
                    cuts += [100.0 * (1 - c.flops / flops(s.arch)) for c in front]
            info["margins"][margin] = {"share_within": within / total if total else None,
                                       "median_cut_pct": statistics.median(cuts) if cuts else None}
        info["perfect_meets_target_at"] = [m for m, st in info["margins"].items() if meets_target(st)]
    aiop = _main_table()["summary"]["labelled"]
    RESULTS.mkdir(exist_ok=True)
    config = {k: getattr(args, k) for k in ("starts", "seeds", "budget", "n", "max_edits_labelled")}
    (RESULTS / "aiop_reduce.noise.json").write_text(json.dumps(
        {"config": config, "margins": NOISE_MARGINS, "draws": NOISE_DRAWS, "tasks": infos,
         "seconds": time.time() - t0}, indent=1))

    lines = ["# FLOPs reduction: the labels' run-to-run noise and what it leaves of the target", "",
             "Run-to-run SD: the benchmark trained functionally identical encodings separately (edges that cannot "
             "reach the cell output differ; predictor.spaces.canonical), so their labels differ by training noise "
             "alone. Pooled SD within such groups whose mean is at or above the task's median, in tolerances (degrees "
             "of freedom, groups). Equal child: the chance that a child exactly as good as the start in expectation "
             "has a label within tolerance of the start's, Phi(tolerance / (SD sqrt 2)).", "",
             f"Perfect predictor: the protocol of results/aiop_reduce.md ({args.starts} top-quartile starts x "
             f"{args.seeds} seeds, budget {args.budget}, labelled mode, the {args.n} fine-tuning archs never returned) "
             "with an estimator that knows each architecture's expected performance, taken to be its label, and "
             "accepts a child down to (1 - margin) tolerances below the start; what it returns is scored against "
             f"labels drawn again (label + SD x N(0, 1), {NOISE_DRAWS} draws each for the start and every returned "
             "arch). Using the labels as expected performance adds the noise variance to their spread, so this is an "
             "approximation of a perfect predictor, not a bound. Cells: share within tolerance / median FLOPs cut; "
             f"the target is >= 80% with >= 25%. `nice -n 10 python benchmarks/aiop_reduce.py --label-noise` "
             f"({(time.time() - t0) / 60:.1f} min).", "",
             "| task | tolerance | run-to-run SD (tolerances) | equal child within tolerance | "
             + " | ".join(f"margin {m:g}" for m in NOISE_MARGINS) + " | perfect predictor meets the target | "
             "AIO-P (table) |", "|---" * (6 + len(NOISE_MARGINS)) + "|"]
    for name, i in infos.items():
        at = i["perfect_meets_target_at"]
        lines.append(f"| {name} | {i['tolerance']:.3g} | {i['run_to_run_sd_tol']:.2f} ({i['dof']}, {i['groups']}) | "
                     f"{100 * i['equal_child_within']:.0f}% | "
                     + " | ".join(_share_cut(i["margins"][m]) for m in NOISE_MARGINS)
                     + f" | {'at margin ' + ', '.join(f'{m:g}' for m in at) if at else 'no'} | "
                     + _share_cut(aiop.get(name, {}).get("AIO-P")) + " |")
    reachable = [n for n, i in infos.items() if i["perfect_meets_target_at"]]
    lines += ["", f"A perfect predictor of expected performance meets the target on {len(reachable)}/{len(infos)} "
              f"tasks at some margin: {', '.join(reachable) or 'none'}."]
    (RESULTS / "aiop_reduce.noise.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


#: fine-tuning settings compared by --finetune-validation (the first is AIOP.finetune's default,
#: the transfer study's ranking-oriented one)
FINETUNE_SETTINGS = ({"steps": 100, "lr": 5e-4, "rank_weight": 1.0}, {"steps": 300, "lr": 5e-4, "rank_weight": 1.0},
                     {"steps": 300, "lr": 1e-3, "rank_weight": 1.0}, {"steps": 100, "lr": 5e-4, "rank_weight": 3.0},
                     {"steps": 100, "lr": 5e-4, "rank_weight": 0.0}, {"steps": 300, "lr": 5e-4, "rank_weight": 0.0},
                     {"steps": 300, "lr": 1e-3, "rank_weight": 0.3}, {"steps": 300, "lr": 1e-3, "rank_weight": 0.0},
                     {"steps": 1000, "lr": 1e-3, "rank_weight": 0.0})


def run_finetune_validation(recs, args) -> None:
    """results/aiop_reduce.finetune.{json,md}: the near-boundary difference error (what the search
    decides on) of the 10-head ensemble for FINETUNE_SETTINGS, on the validation tasks only."""
    from tqdm import tqdm

    t0, out = time.time(), {}
    for task_name in tqdm(VALIDATION_TASKS, desc="finetune validation"):
        fam, task = task_name.split("/")
        task_recs, labels, tol, _ = task_labels(recs, fam, task)
        starts, _, ft = split_task(task_recs, args.starts, args.n)
        base, = pretrained(recs, fam, task, "families", args, progress=False)
        feats = FeatureCache(graphs.build_graphs(ft, progress=False))
        for i, setting in enumerate(FINETUNE_SETTINGS):
            est = R.AIOPEstimator(R.bootstrap_heads(base, ft, feats, key_fn, head_name(fam, task), args.members, 0,
                                                    setting), fam, task, records=task_recs)
            out.setdefault(i, {})[task_name] = difference_error(est, est.flops, R.space_for(fam), starts, labels,
                                                                set(labels) - {r.arch for r in ft},
                                                                args.max_edits_labelled, tol)
    best = min(out, key=lambda i: statistics.fmean(out[i].values()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "aiop_reduce.finetune.json").write_text(json.dumps(
        {"settings": FINETUNE_SETTINGS, "difference_error_tol": out, "chosen": FINETUNE_SETTINGS[best],
         "seconds": time.time() - t0}, indent=1))
    lines = ["# FLOPs reduction: fine-tuning of the estimator's heads", "",
             f"{' and '.join(VALIDATION_TASKS)} only, the table's protocol ({args.members} bootstrap heads on N={args.n}, "
             f"{args.starts} top-quartile starts). Cells: near-boundary difference error in tolerances (see "
             "results/aiop_reduce.ceiling.md; lower is better). The lowest mean is chosen (predictor.reduce.FINETUNE). "
             f"`nice -n 10 python benchmarks/aiop_reduce.py --finetune-validation` ({(time.time() - t0) / 60:.1f} min).",
             "", "| steps | lr | rank weight | " + " | ".join(VALIDATION_TASKS) + " | mean |", "|---" * 6 + "|"]
    for i, st in enumerate(FINETUNE_SETTINGS):
        errs = [out[i][t] for t in VALIDATION_TASKS]
        lines.append(f"| {st['steps']} | {st['lr']:g} | {st['rank_weight']:g} | " + " | ".join(f"{e:.2f}" for e in errs)
                     + f" | {statistics.fmean(errs):.2f}{' (chosen)' if i == best else ''} |")
    (RESULTS / "aiop_reduce.finetune.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


#: the estimators results/aiop_reduce.baselines.md compares, all fitted on the same N labels
BASELINES = ("AIO-P, bootstrap heads (the table's)", "AIO-P, one head", "AIO-P zero-shot, linear fit",
             "GP on AIO-P embeddings", "GNN on the N labels only", "XGBoost (hand-made)")
#: per-task rows of --estimator-baselines, so that reruns resume
BASELINES_ROWS = RESULTS / "aiop_reduce.baselines.rows.jsonl"


def gp_posterior_mean(x, y, x_new, lengthscales, noises=(0.01, 0.03, 0.1, 0.3, 1.0)) -> np.ndarray:
    """Posterior mean at ``x_new`` of a Gaussian process on standardised ``y`` with a unit-variance
    RBF kernel plus noise, the length scale and noise variance picked from the grids by marginal
    likelihood (ML-II): the textbook few-label regressor, here on AIO-P's frozen embeddings."""
    x, x_new, y = (np.asarray(v, dtype=np.float64) for v in (x, x_new, y))
    mu, sd = y.mean(), y.std() or 1.0
    z = (y - mu) / sd
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    best = None
    for ls in lengthscales:
        for noise in noises:
            chol = np.linalg.cholesky(np.exp(-0.5 * d2 / ls ** 2) + noise * np.eye(len(x)))
            alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, z))
            evidence = -0.5 * z @ alpha - np.log(np.diag(chol)).sum()
            if best is None or evidence > best[0]:
                best = (evidence, ls, alpha)
    _, ls, alpha = best
    return mu + sd * np.exp(-0.5 * ((x_new[:, None] - x[None]) ** 2).sum(-1) / ls ** 2) @ alpha


def baseline_predictions(base: AIOP, fam, task, task_recs, ft, archs, members: int) -> dict:
    """{BASELINES entry: estimator of ``archs``}, each fitted on the records ``ft`` only: the table's
    bootstrap heads and one head fine-tuned as predictor.reduce.FINETUNE; the pre-trained heads'
    mean score mapped onto the labels by least squares; a GP on the pre-trained encoder's
    embeddings; a GNN of the same size trained from scratch with the heads' loss and length; and the
    transfer study's XGBoost on hand-made features. AIO-P estimators are returned as they are
    (ensembles as members), the others as ``{arch: prediction}`` lookups."""
    from predictor import features
    from predictor.aiop import ZERO_SHOT

    from aiop_transfer import xgb_predict

    head = head_name(fam, task)
    feats = FeatureCache(graphs.build_graphs(ft, progress=False))
    y = np.array([r.label for r in ft], dtype=np.float64)
    fi = [archs.index(r.arch) for r in ft]
    items = [features.to_data(graphs.network_graph(fam, task, a), base.kinds) for a in archs]
    zero_shot = base.scores(items, ZERO_SHOT)
    emb = embeddings(base.model, items)
    emb = (emb - emb[fi].mean(0)) / (emb[fi].std(0) + 1e-9)
    by_arch = {r.arch: r for r in task_recs}
    lookups = {
        "AIO-P zero-shot, linear fit": np.polyval(np.polyfit(zero_shot[fi], y, 1), zero_shot),
        "GP on AIO-P embeddings": gp_posterior_mean(emb[fi], y, emb, np.sqrt(emb.shape[1]) * np.array([0.25, 0.5, 1, 2, 4])),
        "XGBoost (hand-made)": xgb_predict(ft, [by_arch[a] for a in archs], seed=0)}
    out = {"AIO-P, bootstrap heads (the table's)": R.bootstrap_heads(base, ft, feats, key_fn, head, members, seed=0),
           "AIO-P, one head": base.finetune(ft, feats, key_fn, head, seed=0, **R.FINETUNE),
           "GNN on the N labels only": R.scratch_model(ft, feats, key_fn, seed=0)}
    out = {name: R.AIOPEstimator(m, fam, task, records=task_recs) for name, m in out.items()}
    out.update({name: (lambda batch, v=dict(zip(archs, values)): np.array([v[a] for a in batch]))
                for name, values in lookups.items()})
    return {name: out[name] for name in BASELINES}


def run_estimator_baselines(tasks, recs, args) -> None:
    """results/aiop_reduce.baselines.{json,md}: the near-boundary difference error (what the search
    decides on) of BASELINES, each fitted on the table's N fine-tuning archs, on the validation and
    the given tasks: whether any other use of the N labels would give the search a more accurate
    estimator than the table's heads."""
    from tqdm import tqdm

    t0 = time.time()
    config = {"finetune": R.FINETUNE, "graph_version": graphs.GRAPH_VERSION,
              **{k: getattr(args, k) for k in ("starts", "n", "members", "max_edits_labelled", "pretrain_epochs",
                                               "pretrain_per_family")}}
    names = list(dict.fromkeys([*VALIDATION_TASKS, *(f"{f}/{t}" for f, t in tasks)]))  # as the report lists them
    # the given tasks first, so that processes given disjoint --tasks do not start on the same task
    for name in tqdm(names[len(VALIDATION_TASKS):] + names[:len(VALIDATION_TASKS)], desc="estimator baselines"):
        if name in _finished_tasks(BASELINES_ROWS, config):  # read per task: another process may have added it
            continue
        fam, task = name.split("/")
        task_recs, labels, tol, _ = task_labels(recs, fam, task)
        starts, _, ft = split_task(task_recs, args.starts, args.n)
        allowed = set(labels) - {r.arch for r in ft}
        space = R.space_for(fam)
        archs = sorted({r.arch for r in ft} | {s.arch for s in starts}
                       | {a for s in starts for a in space.neighbours(s.arch, args.max_edits_labelled) if a in allowed})
        base, = pretrained(recs, fam, task, "families", args, progress=False)
        ests = baseline_predictions(base, fam, task, task_recs, ft, archs, args.members)
        flops = R.BenchmarkFlops(fam, task, task_recs)
        _append_task(BASELINES_ROWS, name, config, {
            m: difference_error(f, flops, space, starts, labels, allowed, args.max_edits_labelled, tol)
            for m, f in ests.items()})
    done = _finished_tasks(BASELINES_ROWS, config)
    missing = [t for t in names if t not in done]
    if missing:
        raise SystemExit(f"--estimator-baselines: no row for {', '.join(missing)} in {BASELINES_ROWS}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "aiop_reduce.baselines.json").write_text(json.dumps(
        {"config": config, "difference_error_tol": {t: done[t] for t in names}}, indent=1))
    lines = ["# FLOPs reduction: other estimators from the same labels", "",
             f"The near-boundary difference error (results/aiop_reduce.ceiling.md; lower is better; the target needs "
             f"about 0.5) of estimators fitted on the table's N={args.n} fine-tuning archs, on the children of its "
             f"{args.starts} top-quartile starts (<= {args.max_edits_labelled} edits). The validation tasks come first; "
             "the lowest error of each task is in bold. AIO-P is pre-trained on the families as in the table "
             f"(results/aiop_reduce.md); its bootstrap heads ({args.members}) and one head are fine-tuned as "
             "predictor.reduce.FINETUNE; the zero-shot score is the pre-trained heads' mean mapped onto the N labels by "
             "least squares; the GP (RBF kernel, ML-II) reads the pre-trained encoder's embeddings; the GNN from "
             "scratch has AIO-P's size and the heads' loss and length; XGBoost is the transfer study's "
             "(benchmarks/aiop_transfer.py: one-hot ops, log FLOPs, log params). "
             f"`nice -n 10 python benchmarks/aiop_reduce.py --estimator-baselines` (rows resume from "
             f"results/{BASELINES_ROWS.name}; this invocation {(time.time() - t0) / 60:.1f} min).", "",
             "| task | " + " | ".join(BASELINES) + " |", "|---" * (1 + len(BASELINES)) + "|"]
    for t in names:
        errs = [done[t][m] for m in BASELINES]
        lines.append(f"| {t} | " + " | ".join(f"**{e:.2f}**" if e == min(errs) else f"{e:.2f}" for e in errs) + " |")
    best = {m: sum(done[t][m] == min(done[t].values()) for t in names) for m in BASELINES}
    lines += ["", "Lowest error on: " + ", ".join(f"{m} {k}/{len(names)}" for m, k in best.items() if k) + "."]
    (RESULTS / "aiop_reduce.baselines.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 tasks, 5 starts, 2 seeds, small pre-training")
    p.add_argument("--tasks", default=",".join(f"{f}/{t}" for f, t in TASKS))
    p.add_argument("--modes", default="labelled,open")
    p.add_argument("--starts", type=int, default=20)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--open-tasks", default="nb201/cifar10,tnb101/class_scene",
                   help="tasks run in the open mode (every unlabelled arch visited costs a graph build)")
    p.add_argument("--open-starts", type=int, default=5, help="first starts of each task used in the open mode")
    p.add_argument("--open-seeds", type=int, default=1, help="seeds for the open mode")
    p.add_argument("--srcc-archs", type=int, default=100, help="held-out labelled archs for the SRCC context column")
    p.add_argument("--budget", type=int, default=50)
    p.add_argument("--n", type=int, default=50, help="labelled archs for fine-tuning the task head")
    p.add_argument("--max-edits-labelled", type=int, default=3)
    p.add_argument("--max-edits-open", type=int, default=2)
    p.add_argument("--pretrain-epochs", type=int, default=30)
    p.add_argument("--pretrain-per-family", type=int, default=None)
    p.add_argument("--pretrain", default="families",
                   help="pre-train on the classification families other than the task's (families) or also on the "
                        "task family's other tasks (leave-task-out); both, comma-separated: --members heads on each")
    p.add_argument("--pretrain-seeds", type=int, default=1,
                   help="pre-train each base with this many seeds; --members bootstrap heads on each (an ensemble "
                        "whose members also differ in pre-training, not only in fine-tuning data)")
    p.add_argument("--name", default=None, help="results/<name>.{json,md,rows.jsonl}; default aiop_reduce[.quick]")
    p.add_argument("--search-tolerance", type=float, default=None,
                   help="the search keeps predicted >= start - this x tolerance (evaluation always uses 1x; default: "
                        "ensembles predictor.reduce.default_search of --n, one head 1)")
    p.add_argument("--finetune-choice", choices=FINETUNE_CHOICES, default="random",
                   help="the table's N fine-tuning archs: a random sample of the labelled non-starts, or those fewest "
                        "edits from a start (labels_near); the studies (--ceiling etc.) use random")
    p.add_argument("--members", type=int, default=10,
                   help="ensemble heads fine-tuned on bootstrap resamples of the N archs (1: one head on all N)")
    p.add_argument("--scratch-members", type=int, default=0,
                   help="also this many GNNs trained from scratch on bootstrap resamples of the N archs in the "
                        "ensemble (predictor.reduce.bootstrap_scratch): members whose errors owe nothing to pre-training")
    p.add_argument("--kappa", type=float, default=None,
                   help="ensemble only: the search scores a child by mean - kappa x std over members of its "
                        "predicted difference to the start (default: predictor.reduce.default_search of --n)")
    p.add_argument("--cut-correction", action="store_true",
                   help="hold children back by the estimator's bias with the FLOPs cut, measured by cross-fitting on "
                        "the N fine-tuning archs (predictor.reduce.cut_bias)")
    p.add_argument("--fresh", action="store_true", help="discard rows of an earlier run")
    p.add_argument("--ceiling", action="store_true",
                   help="only run the estimator-error study (results/aiop_reduce.ceiling.md): the search with noisy "
                        "true labels and a sibling task's labels as estimators, and the estimator's difference error "
                        "against the number of fine-tuning labels")
    p.add_argument("--label-noise", action="store_true",
                   help="only measure the labels' run-to-run noise and simulate a perfect predictor of expected "
                        "performance under it (results/aiop_reduce.noise.md)")
    p.add_argument("--finetune-validation", action="store_true",
                   help="only compare fine-tuning settings of the estimator on the validation tasks "
                        "(results/aiop_reduce.finetune.md)")
    p.add_argument("--estimator-baselines", action="store_true",
                   help="only compare the near-boundary difference error of other estimators fitted on the same N "
                        "labels (results/aiop_reduce.baselines.md)")
    p.add_argument("--validation-summary", action="store_true",
                   help="only rewrite results/aiop_reduce.validation.md from the validation_*.json runs")
    args = p.parse_args(argv)
    bad = [c for c in pretrain_choices(vars(args)) if c not in PRETRAIN_CHOICES]
    if bad:
        p.error(f"--pretrain {','.join(bad)}: choose from {', '.join(PRETRAIN_CHOICES)} (comma-separated)")
    if args.pretrain_seeds < 1:
        p.error(f"--pretrain-seeds must be >= 1, got {args.pretrain_seeds}")
    if args.scratch_members < 0:
        p.error(f"--scratch-members must be >= 0, got {args.scratch_members}")
    setting = R.default_search(args.n, total_heads(vars(args)))
    if args.kappa is None:
        args.kappa = setting.kappa
    if args.search_tolerance is None:
        args.search_tolerance = setting.tolerance_factor
    if args.validation_summary:
        write_validation_summary()
        return 0
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    if args.quick:
        args.tasks, args.starts, args.seeds, args.open_seeds = "nb201/cifar10,tnb101/class_scene", 5, 2, 1
        args.open_starts, args.srcc_archs, args.budget = 2, 30, 20
        args.pretrain_epochs, args.pretrain_per_family = 5, 30
    tasks = [tuple(t.split("/", 1)) for t in args.tasks.split(",")]
    if args.ceiling:
        run_ceiling(tasks, data.load_all(), args)
        return 0
    if args.finetune_validation:
        run_finetune_validation(data.load_all(), args)
        return 0
    if args.label_noise:
        run_label_noise(tasks, data.load_all(), args)
        return 0
    if args.estimator_baselines:
        run_estimator_baselines(tasks, data.load_all(), args)
        return 0
    name = args.name or ("aiop_reduce.quick" if args.quick else "aiop_reduce")
    rows_path = RESULTS / f"{name}.rows.jsonl"
    modes = args.modes.split(",")
    config = {k: v for k, v in vars(args).items()  # what the rows depend on; not which of them or what to render
              if k not in ("fresh", "tasks", "modes", "open_tasks", "name", "ceiling", "validation_summary",
                           "finetune_validation", "label_noise", "estimator_baselines")}
    config["seeds"] = list(range(args.seeds))
    config["graph_version"] = graphs.GRAPH_VERSION
    config["flops"] = "benchmark"  # predictor.reduce.BenchmarkFlops (rows before it used the graphs' FLOPs)
    config["finetune"] = R.FINETUNE

    done, rows = set(), []
    RESULTS.mkdir(exist_ok=True)
    if rows_path.is_file() and not args.fresh:
        lines = rows_path.read_text().splitlines()
        if lines and json.loads(lines[0]).get("config") != config:
            raise SystemExit(f"{rows_path} holds rows of another configuration; rerun with --fresh to discard them")
        for line in lines[1:]:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a torn last line from an interrupted run
                continue
            rows.append(row)
            done.add((row["mode"], row["task"], row["seed"], repr(tuple(row["start"]))))
    else:
        rows_path.write_text(json.dumps({"config": config}) + "\n")

    def write(row):
        with rows_path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        rows.append(row)

    t0, resumed = time.time(), len(rows)
    recs = data.load_all()
    bases = {}
    infos = {}
    mode_seeds = [(m, range(args.seeds), args.starts) if m == "labelled" else (m, range(args.open_seeds), args.open_starts)
                  for m in modes]
    for fam, task in tasks:
        task_bases = []
        for choice in pretrain_choices(vars(args)):
            tag = pretraining_tag(fam, task, choice)
            if tag not in bases:
                bases[tag] = pretrained(recs, fam, task, choice, args, True, range(args.pretrain_seeds))
            task_bases += bases[tag]
        infos[f"{fam}/{task}"] = run_task(fam, task, recs, task_bases, args, mode_seeds, done, write, progress=True)
    write_report(rows, infos, config, time.time() - t0, name, resumed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
