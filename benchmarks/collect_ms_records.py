"""Collect MetaSchedule tuning records for zoo-network layers (training data for the
AIO-P MetaSchedule cost model, predictor/metaschedule.py).

Each workload is a single layer (NCHW, batch 1, float32) whose shape comes from a zoo
network layer named in WORKLOADS. Every workload is tuned with MetaSchedule on the
target {"kind": "llvm", "num-cores": 2}; each measured candidate is appended to a
MetaSchedule JSON database under benchmarks/ms_records/<workload>/
(database_workload.json + database_tuning_record.json), one line per record, so an
interrupted run loses at most the batch in flight.

Workloads are tuned round-robin in chunks (--chunk trials per call), so a short run still
covers every workload; re-running resumes (a workload with >= --target records is
skipped). --until HH:MM (UTC) stops before starting a chunk that would begin after it.

    nice -n 19 timeout -s INT -k 120 80m python benchmarks/collect_ms_records.py --until 22:45
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tvm  # noqa: E402
import tvm.s_tir.meta_schedule as ms  # noqa: E402
from tvm import te, tirx  # noqa: E402

from predictor.ms_build import make_builder, make_runner, skip_tensor_intrin_import  # noqa: E402

RECORDS_DIR = Path(__file__).resolve().parent / "ms_records"
TARGET = {"kind": "llvm", "num-cores": 2}


@dataclass(frozen=True)
class Workload:
    """One layer: kind in {conv2d, depthwise, dense, maxpool, avgpool}; shape parameters
    (c_in, hw, c_out, k, stride, pad) for conv/pool, (c_in, c_out) for dense."""

    name: str
    kind: str
    source: str
    c_in: int
    c_out: int = 0
    hw: int = 1
    k: int = 1
    stride: int = 1
    pad: int = 0

    def prim_func(self) -> tirx.PrimFunc:
        """The layer as a TE compute turned into a TIR PrimFunc."""
        if self.kind == "dense":
            x = te.placeholder((1, self.c_in), name="x")
            w = te.placeholder((self.c_out, self.c_in), name="w")
            r = te.reduce_axis((0, self.c_in), name="r")
            y = te.compute((1, self.c_out), lambda i, j: te.sum(x[i, r] * w[j, r], axis=r), name="dense")
            return te.create_prim_func([x, w, y])
        x = te.placeholder((1, self.c_in, self.hw, self.hw), name="x")
        out_hw = (self.hw + 2 * self.pad - self.k) // self.stride + 1
        if self.pad:
            pad_value = -3.4e38 if self.kind == "maxpool" else 0.0
            xp = te.compute(
                (1, self.c_in, self.hw + 2 * self.pad, self.hw + 2 * self.pad),
                lambda n, c, h, w_: tvm.tirx.if_then_else(
                    tvm.tirx.all(h >= self.pad, h < self.hw + self.pad, w_ >= self.pad, w_ < self.hw + self.pad),
                    x[n, c, h - self.pad, w_ - self.pad],
                    tvm.tirx.const(pad_value, "float32"),
                ),
                name="pad",
            )
        else:
            xp = x
        rh = te.reduce_axis((0, self.k), name="rh")
        rw = te.reduce_axis((0, self.k), name="rw")
        s = self.stride
        shape = (1, self.c_out if self.kind == "conv2d" else self.c_in, out_hw, out_hw)
        if self.kind == "conv2d":
            w = te.placeholder((self.c_out, self.c_in, self.k, self.k), name="w")
            rc = te.reduce_axis((0, self.c_in), name="rc")
            y = te.compute(
                shape,
                lambda n, f, h, w_: te.sum(xp[n, rc, h * s + rh, w_ * s + rw] * w[f, rc, rh, rw], axis=[rc, rh, rw]),
                name="conv2d",
            )
            return te.create_prim_func([x, w, y])
        if self.kind == "depthwise":
            w = te.placeholder((self.c_in, 1, self.k, self.k), name="w")
            y = te.compute(
                shape,
                lambda n, c, h, w_: te.sum(xp[n, c, h * s + rh, w_ * s + rw] * w[c, 0, rh, rw], axis=[rh, rw]),
                name="depthwise_conv2d",
            )
            return te.create_prim_func([x, w, y])
        if self.kind == "maxpool":
            y = te.compute(shape, lambda n, c, h, w_: te.max(xp[n, c, h * s + rh, w_ * s + rw], axis=[rh, rw]), name="maxpool")
            return te.create_prim_func([x, y])
        if self.kind == "avgpool":
            acc = te.compute(shape, lambda n, c, h, w_: te.sum(xp[n, c, h * s + rh, w_ * s + rw], axis=[rh, rw]), name="pool_sum")
            y = te.compute(shape, lambda n, c, h, w_: acc[n, c, h, w_] / float(self.k * self.k), name="avgpool")
            return te.create_prim_func([x, y])
        raise ValueError(f"workload {self.name}: unknown kind {self.kind!r} (conv2d, depthwise, dense, maxpool, avgpool)")


W = Workload
WORKLOADS: list[Workload] = [
    # ResNet-50 (torchvision v1.5: stride on the 3x3 conv)
    W("r50_conv1", "conv2d", "resnet50 conv1 7x7/2", 3, 64, 224, 7, 2, 3),
    W("r50_maxpool", "maxpool", "resnet50 maxpool 3x3/2", 64, 0, 112, 3, 2, 1),
    W("r50_l1_1x1_reduce", "conv2d", "resnet50 layer1.1.conv1", 256, 64, 56, 1),
    W("r50_l1_3x3", "conv2d", "resnet50 layer1.0.conv2", 64, 64, 56, 3, 1, 1),
    W("r50_l1_1x1_expand", "conv2d", "resnet50 layer1.0.conv3", 64, 256, 56, 1),
    W("r50_l2_3x3_s2", "conv2d", "resnet50 layer2.0.conv2", 128, 128, 56, 3, 2, 1),
    W("r50_l3_3x3", "conv2d", "resnet50 layer3.1.conv2", 256, 256, 14, 3, 1, 1),
    W("r50_l4_1x1_expand", "conv2d", "resnet50 layer4.0.conv3", 512, 2048, 7, 1),
    W("r50_avgpool", "avgpool", "resnet50 avgpool (global 7x7)", 2048, 0, 7, 7),
    W("r50_fc", "dense", "resnet50 fc", 2048, 1000),
    # MobileNetV2
    W("mv2_stem", "conv2d", "mobilenet_v2 features.0 3x3/2", 3, 32, 224, 3, 2, 1),
    W("mv2_dw_112", "depthwise", "mobilenet_v2 features.1 dw 3x3", 32, 0, 112, 3, 1, 1),
    W("mv2_dw_112_s2", "depthwise", "mobilenet_v2 features.2 dw 3x3/2", 96, 0, 112, 3, 2, 1),
    W("mv2_dw_14", "depthwise", "mobilenet_v2 features.8 dw 3x3", 384, 0, 14, 3, 1, 1),
    W("mv2_pw_expand_28", "conv2d", "mobilenet_v2 features.5 expand 1x1", 32, 192, 28, 1),
    W("mv2_pw_project_7", "conv2d", "mobilenet_v2 features.17 project 1x1", 960, 320, 7, 1),
    W("mv2_classifier", "dense", "mobilenet_v2 classifier", 1280, 1000),
    # EfficientNet-B0
    W("effb0_dw5_s2", "depthwise", "efficientnet_b0 stage3 block0 dw 5x5/2", 144, 0, 56, 5, 2, 2),
    W("effb0_dw5_14", "depthwise", "efficientnet_b0 stage5 dw 5x5", 672, 0, 14, 5, 1, 2),
    W("effb0_se_reduce", "dense", "efficientnet_b0 stage5 SE reduce", 672, 28),
    W("effb0_head", "conv2d", "efficientnet_b0 head 1x1", 320, 1280, 7, 1),
    # VGG-16
    W("vgg_conv5", "conv2d", "vgg16 features.26 conv5_2", 512, 512, 14, 3, 1, 1),
    W("vgg_maxpool1", "maxpool", "vgg16 features.4 maxpool 2x2/2", 64, 0, 224, 2, 2, 0),
    W("vgg_fc7", "dense", "vgg16 classifier.3 fc7", 4096, 4096),
]
BY_NAME = {w.name: w for w in WORKLOADS}


def database(name: str) -> ms.database.JSONDatabase:
    """The JSON database of workload ``name`` (created if absent)."""
    d = RECORDS_DIR / name
    d.mkdir(parents=True, exist_ok=True)
    return ms.database.JSONDatabase(
        path_workload=str(d / "database_workload.json"),
        path_tuning_record=str(d / "database_tuning_record.json"),
        allow_missing=True,
    )


def count_records(name: str) -> int:
    """Number of stored tuning records of ``name`` (lines in the record file)."""
    path = RECORDS_DIR / name / "database_tuning_record.json"
    if not path.exists():
        return 0
    with path.open() as f:
        return sum(1 for line in f if line.strip())


def parse_until(hhmm: str | None) -> dt.datetime | None:
    """The next UTC time HH:MM (None if not given): the --until of the MetaSchedule scripts."""
    if not hhmm:
        return None
    hh, mm = (int(x) for x in hhmm.split(":"))
    now = dt.datetime.now(dt.timezone.utc)
    t = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    return t if t > now else t + dt.timedelta(days=1)


def tune_chunk(w: Workload, trials: int, seed: int, trials_per_iter: int, population: int) -> None:
    """Tune ``w`` for ``trials`` more measured candidates, appending to its database.

    The evolutionary search is shrunk (``population``, 2 genetic iterations, 25 % random
    picks): most of its default cost is feature extraction for 4 x 512 candidates per
    iteration, and random picks make the records more diverse training data."""
    db = database(w.name)
    strategy = ms.search_strategy.EvolutionarySearch(
        population_size=population, init_min_unmeasured=min(50, population), genetic_num_iters=2, eps_greedy=0.25
    )
    with tempfile.TemporaryDirectory(prefix=f"ms_{w.name}_") as work_dir, skip_tensor_intrin_import():
        ms.tune_tir(
            w.prim_func(),
            TARGET,
            work_dir,
            max_trials_global=trials,
            num_trials_per_iter=trials_per_iter,
            builder=make_builder(),
            runner=make_runner(),
            database=db,
            strategy=strategy,
            seed=seed,
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", type=int, default=384, help="records wanted per workload")
    ap.add_argument("--chunk", type=int, default=64, help="trials per workload per round")
    ap.add_argument("--trials-per-iter", type=int, default=32)
    ap.add_argument("--population", type=int, default=128, help="evolutionary search population")
    ap.add_argument("--workloads", nargs="*", default=None, help="subset of workload names")
    ap.add_argument("--until", default=None, help="HH:MM UTC: start no chunk after this time")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    names = args.workloads or [w.name for w in WORKLOADS]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; known: {sorted(BY_NAME)}")
    deadline = parse_until(args.until)
    logging.getLogger("tvm.s_tir.meta_schedule").setLevel(logging.WARNING)
    counts = {n: count_records(n) for n in names}
    total = args.target * len(names)
    bar = tqdm(total=total, initial=min(total, sum(min(c, args.target) for c in counts.values())), unit="rec")
    round_idx = 0
    while any(c < args.target for c in counts.values()):
        round_idx += 1
        for n in names:
            if counts[n] >= args.target:
                continue
            if deadline and dt.datetime.now(dt.timezone.utc) >= deadline:
                bar.close()
                print(f"deadline {args.until} reached; records: {counts}", flush=True)
                return
            trials = min(args.chunk, args.target - counts[n])
            bar.set_postfix_str(f"{n} round {round_idx}")
            # seed differs per round so a resumed workload explores new candidates
            tune_chunk(BY_NAME[n], trials, seed=args.seed + 1000 * counts[n] + round_idx, trials_per_iter=args.trials_per_iter, population=args.population)
            new = count_records(n)
            bar.update(min(new, args.target) - min(counts[n], args.target))
            counts[n] = new
            print(f"[{dt.datetime.now(dt.timezone.utc):%H:%M:%S}] {n}: {new} records", flush=True)
    bar.close()
    print(f"done; records: {counts}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TVM_NUM_THREADS", "2")
    main()
