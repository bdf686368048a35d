"""Load the NAS-Bench-Suite-Zero subsets (architecture -> measured label, FLOPs, params, proxies).

The files live in ``shared/data/nas`` next to the repository (override with env ``AIOP_DATA``).
Every family is parsed into flat :class:`Record` rows so that the rest of the predictor never
looks at the per-file JSON layouts. A missing or corrupt file raises :class:`DataError` naming
the file and what to do.
"""

from __future__ import annotations

import ast
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

#: family name -> (file name, tasks in file order)
FAMILIES: dict[str, str] = {
    "nb101": "zc_nasbench101.json",
    "nb201": "zc_nasbench201.json",
    "nb301": "zc_nasbench301.json",
    "tnb101": "zc_transbench101_micro.json",
}
#: families with image-classification labels (the AIO-P pre-training pool)
CLASSIFICATION_FAMILIES = ("nb101", "nb201", "nb301")
TNB_TASKS = ("class_scene", "class_object", "autoencoder", "normal", "jigsaw", "room_layout",
             "segmentsemantic")
_NOT_PROXIES = {"idx", "arch", "val_accuracy", "flops", "params"}


class DataError(ValueError):
    """A benchmark data file is missing, unreadable or not in the expected layout."""


@dataclass(frozen=True)
class Record:
    """One (architecture, task) measurement."""

    family: str  # "nb101", "nb201", "nb301", "tnb101"
    task: str  # e.g. "cifar10", "ImageNet16-120", "segmentsemantic"
    arch: tuple  # parsed encoding (see parse_arch)
    label: float  # val_accuracy (higher is better everywhere)
    flops: float  # MFLOPs as stored
    params: float  # M params as stored
    proxies: dict = field(default_factory=dict, compare=False, hash=False)  # name -> score

    @property
    def key(self) -> tuple:
        """Identity of the network graph: depends on the cell and, for TransNAS, the task decoder."""
        return (self.family, self.task if self.family == "tnb101" else "", self.arch)


def data_dir() -> Path:
    """``$AIOP_DATA`` if set, else ``<repo>/../shared/data/nas``."""
    env = os.environ.get("AIOP_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "nas"


def parse_arch(family: str, text: str) -> tuple:
    """Parse a NASLib encoding string into a hashable tuple.

    nb101 -> (adjacency 7x7 as tuple of row tuples, op codes tuple of 7);
    nb201/tnb101 -> 6 edge op codes; nb301 -> ((8 (input, op) pairs normal), (8 pairs reduce)).
    """
    value = ast.literal_eval(text)
    if family == "nb101":
        flat = [int(v) for v in value]
        if len(flat) != 56:
            raise ValueError(f"NAS-Bench-101 encoding needs 49 adjacency + 7 op values, got {len(flat)}")
        adj = tuple(tuple(flat[r * 7:(r + 1) * 7]) for r in range(7))
        return (adj, tuple(flat[49:]))
    if family in ("nb201", "tnb101"):
        ops = tuple(int(v) for v in value)
        limit = 5 if family == "nb201" else 4
        if len(ops) != 6 or not all(0 <= o < limit for o in ops):
            raise ValueError(f"{family} encoding needs 6 op codes in [0, {limit}), got {ops}")
        return ops
    if family == "nb301":
        cells = tuple(tuple((int(i), int(o)) for i, o in cell) for cell in value)
        if len(cells) != 2 or any(len(c) != 8 for c in cells):
            raise ValueError(f"NAS-Bench-301 encoding needs 2 cells of 8 (input, op) pairs, got {text}")
        return cells
    raise ValueError(f"unknown family {family!r}; known: {sorted(FAMILIES)}")


def _score(value) -> float:
    """Values are stored as a number, ``{"score": x}``, or a list of pairs (first pair's value)."""
    if isinstance(value, dict):
        value = value["score"]
    if isinstance(value, (list, tuple)):
        value = value[0][1] if value and isinstance(value[0], (list, tuple)) else value[0]
    return float(value)


def load_family(family: str, root: Path | None = None) -> list[Record]:
    """All records of one family, in file order. Raises DataError naming the file on any problem."""
    if family not in FAMILIES:
        raise DataError(f"unknown family {family!r}; known: {sorted(FAMILIES)}")
    path = Path(root or data_dir()) / FAMILIES[family]
    if not path.is_file():
        raise DataError(f"data file {path} not found; put the NAS-Bench-Suite-Zero files there "
                        f"or point env AIOP_DATA at their folder")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"data file {path} is not readable JSON ({err}); restore the original file") from err
    if not isinstance(raw, dict):
        raise DataError(f"data file {path}: expected a JSON object of tasks, got {type(raw).__name__}")
    if family == "nb101":  # {"nasbench101": {"cifar10": {arch: {...}}}}
        raw = raw.get("nasbench101", raw)
    records: list[Record] = []
    for task, archs in raw.items():
        if not isinstance(archs, dict):
            raise DataError(f"data file {path}: task {task!r} is not an object of architectures")
        for arch_text, row in archs.items():
            try:
                label = float(row["val_accuracy"])
                flops, params = _score(row["flops"]), _score(row["params"])
                proxies = {k: _score(v) for k, v in row.items() if k not in _NOT_PROXIES}
                arch = parse_arch(family, row.get("arch", arch_text))
            except (KeyError, TypeError, ValueError, SyntaxError, IndexError) as err:
                raise DataError(f"data file {path}: task {task!r}, arch {arch_text!r} is malformed "
                                f"({type(err).__name__}: {err}); restore the original file") from err
            if not math.isfinite(label):
                raise DataError(f"data file {path}: task {task!r}, arch {arch_text!r} has label {label}")
            records.append(Record(family, task, arch, label, flops, params, proxies))
    if not records:
        raise DataError(f"data file {path} holds no architectures")
    return records


def load_all(families=tuple(FAMILIES), root: Path | None = None) -> list[Record]:
    out: list[Record] = []
    for fam in families:
        out.extend(load_family(fam, root))
    return out


def subsample(records: list[Record], per_family: int | None, seed: int = 0) -> list[Record]:
    """Records of ``per_family`` architectures per family (seeded, all tasks of each kept arch).

    Used to work on a reproducible subset when building every OpGraph would take too long.
    """
    if per_family is None:
        return list(records)
    import random

    keep: set = set()
    for fam in sorted({r.family for r in records}):
        archs = sorted({r.arch for r in records if r.family == fam}, key=repr)
        random.Random(seed).shuffle(archs)
        keep.update((fam, a) for a in archs[:per_family])
    return [r for r in records if (r.family, r.arch) in keep]
