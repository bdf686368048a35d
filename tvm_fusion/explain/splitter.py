"""GET splitter: the search's ``Splitter`` protocol backed by explanation-guided tree splits.

``make_splitter("get", explainer="rg"|"gnne"|"pg", fusion=None, ...)`` (rg is the default;
benchmarks/results/get_fusion.md compares the three on DRAM and wall time). The classifier of the
accelerator's fusion type is loaded from tvm_fusion/data/ (or ``weights=``); one
:class:`TreeSplit` (with its memo) is kept per cost model, i.e. per (graph, accelerator).
Groups with no usable explanation cut go to the random splitter; ``stats`` counts them.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from ..search.splitters import RandomSplitter
from . import classifier
from .dataset import GroupEncoder
from .explainers import EXPLAINERS, make_explainer
from .tree_split import SplitStats, TreeSplit


class GETSplitter:
    """Explain why a group is invalid, cut there (Algorithm 1), fall back to random cuts."""

    name = "get"

    def __init__(self, explainer: str = "rg", fusion: str | None = None, weights: str | Path | None = None,
                 top_k: int = 3, branch: int = 2, budget: int = 256, **explainer_options):
        self.explainer_name, self.fusion, self.weights = explainer, fusion, weights
        self.top_k, self.branch, self.budget = top_k, branch, budget
        self.explainer_options = explainer_options
        if explainer not in EXPLAINERS:
            raise ValueError(f"GET splitter: unknown explainer {explainer!r}; choose one of {sorted(EXPLAINERS)}")
        self._rankers: dict[str, object] = {}
        self._trees: dict[int, tuple[object, TreeSplit]] = {}
        self._fallback = RandomSplitter()
        self._rng: random.Random | None = None

    def _ranker(self, fusion: str):
        if fusion not in self._rankers:
            model = classifier.load(fusion, self.weights)
            self._rankers[fusion] = make_explainer(self.explainer_name, model, **self.explainer_options)
        return self._rankers[fusion]

    def tree(self, cost_model) -> TreeSplit:
        """The TreeSplit (and memo) of this cost model, built on first use."""
        key = id(cost_model)
        if key in self._trees:
            return self._trees[key][1]
        accel = cost_model.accel
        fusion = accel.fusion.value
        if self.fusion is not None and str(self.fusion).lower() != fusion:
            raise ValueError(f"GET splitter built for fusion {self.fusion!r} used with a {fusion!r} accelerator; "
                             f"pass fusion={fusion!r} or leave it unset")
        ranker = self._ranker(fusion)
        encoder = GroupEncoder(cost_model.graph)

        def cost(groups):
            c = cost_model.evaluate(groups)
            return c.fits, c.dram_bytes

        def rank(group):
            return ranker.rank_edges(encoder, group, accel.buffer_bytes // accel.bytes_per_element)

        def fallback(group):
            return self._fallback.split(group, cost_model, self._rng or random.Random(0))

        tree = TreeSplit(encoder.reach, cost, rank, fallback, self.top_k, self.branch, self.budget)
        self._trees[key] = (cost_model, tree)  # keep the cost model alive so its id stays unique
        return tree

    def split(self, group: Sequence[int], cost_model, rng: random.Random) -> list[tuple[int, ...]]:
        self._rng = rng
        return self.tree(cost_model).split(group)

    def reset(self) -> None:
        """Forget memos and counters (keeps loaded classifiers and trained explainers)."""
        self._trees.clear()

    @property
    def stats(self) -> SplitStats:
        """Counters summed over every (graph, accelerator) this splitter has served."""
        total = SplitStats()
        for _, tree in self._trees.values():
            s = tree.stats
            total.split_calls += s.split_calls
            total.rectified += s.rectified
            total.fallbacks += s.fallbacks
            total.explanations += s.explanations
            for k, v in s.categories.items():
                total.categories[k] += v
        return total

