"""Greedy tree-based recursive split of an invalid fusion group (GET, Algorithm 1).

Given a connected convex group that does not fit the buffer, cut it at the edges an
explainer ranks most responsible, and recurse:

- a cut at edge (u, v) that disconnects the group into convex halves is used as is;
- skip-connection rule: when removing (u, v) leaves the group connected (a parallel path
  or a nested skip such as squeeze-excite joins the halves) or a half is not convex, the
  cut also removes every other edge from u's side to v's side, where a side is closed
  under ancestors (u's ancestors in the group) or under descendants (v's descendants).
  Both sides of such a cut are convex, and so is every connected component of a side,
  so each piece is a legal group;
- Category 1: some cut leaves every piece fitting -> take the one with least DRAM, stop;
- Category 2: some cut leaves a fitting piece -> keep the cut whose fitting pieces are
  largest, recurse on the pieces that do not fit;
- Category 3: no piece fits -> recurse on all pieces of the best ``branch`` cuts and take
  the split with least DRAM.

Results are memoised per group. Singletons always run (tiled, as without fusion), so the
recursion always ends with fitting pieces; a group whose explainer gives no usable cut, or
that is reached after the explanation budget ran out, goes to the fallback splitter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..plan import mask_of
from .reach import Reach, members_of

Group = tuple[int, ...]
#: groups -> (fits bool array, dram bytes array), one batch per call (the cost model's shape)
CostFn = Callable[[list[Group]], tuple[np.ndarray, np.ndarray]]
#: group -> its data-flow edges ranked most responsible for "invalid" first
RankFn = Callable[[Group], list[tuple[int, int]]]
#: group -> fitting connected convex pieces covering it (used when GET has no usable cut)
FallbackFn = Callable[[Group], list[Group]]


@dataclass
class SplitStats:
    """Counts for the rectify rate: invalid groups fixed by GET cuts alone / all split."""

    split_calls: int = 0  # invalid groups handed to the splitter
    rectified: int = 0  # ... fixed with explanation cuts only
    fallbacks: int = 0  # subgroups handed to the fallback splitter
    explanations: int = 0  # explainer calls
    categories: dict = field(default_factory=lambda: {1: 0, 2: 0, 3: 0})

    @property
    def rectify_rate(self) -> float:
        return self.rectified / self.split_calls if self.split_calls else float("nan")

    def as_dict(self) -> dict:
        return {"split_calls": self.split_calls, "rectified": self.rectified, "fallbacks": self.fallbacks,
                "explanations": self.explanations, "categories": dict(self.categories),
                "rectify_rate": self.rectify_rate}


class TreeSplit:
    """Algorithm 1 over one graph and one accelerator (memo is valid for that pair)."""

    def __init__(self, reach: Reach, cost: CostFn, rank: RankFn, fallback: FallbackFn,
                 top_k: int = 3, branch: int = 2, budget: int = 256):
        if top_k < 1 or branch < 1:
            raise ValueError(f"TreeSplit: top_k ({top_k}) and branch ({branch}) must be >= 1")
        self.reach, self.cost, self.rank, self.fallback = reach, cost, rank, fallback
        self.top_k, self.branch, self.budget = top_k, branch, budget
        self.memo: dict[Group, tuple[list[Group], int, bool]] = {}
        self._ok: dict[Group, tuple[bool, int]] = {}
        self.stats = SplitStats()
        self._left = budget

    # ---- cost cache ---------------------------------------------------------------------
    def _costs(self, groups: Sequence[Group]) -> list[tuple[bool, int]]:
        todo = sorted({g for g in groups if g not in self._ok})
        if todo:
            fits, dram = self.cost(todo)
            for g, f, d in zip(todo, fits, dram):
                self._ok[g] = (bool(f) or len(g) == 1, int(d))
        return [self._ok[g] for g in groups]

    # ---- cuts ---------------------------------------------------------------------------
    def cuts(self, group: Group, edge: tuple[int, int]) -> list[list[Group]]:
        """Candidate cuts at ``edge``: lists of connected convex pieces covering ``group``."""
        u, v = edge
        gmask = mask_of(group)
        out: list[list[Group]] = []
        reach = self.reach
        # plain cut: drop only (u, v)
        comps = reach.components_without(group, edge)
        if len(comps) == 2 and all(reach.is_convex(c) for c in comps):
            out.append(comps)
        # skip-connection rule: ancestor-closed side of u / descendant-closed side of v
        # (the group is convex, so ancestry inside it is graph ancestry masked by the group)
        for side in (reach.anc[u] & gmask, gmask & ~(reach.desc[v] & gmask)):
            a, b = members_of(side), members_of(gmask & ~side)
            if a and b:
                pieces = sorted(reach.components(a) + reach.components(b))
                if pieces not in out:
                    out.append(pieces)
        return out

    # ---- recursion ----------------------------------------------------------------------
    def split(self, group: Sequence[int]) -> list[Group]:
        """Fitting, connected, convex pieces covering ``group`` (``[group]`` if it fits)."""
        g = tuple(sorted(int(n) for n in group))
        if self._costs([g])[0][0]:
            return [g]
        self.stats.split_calls += 1
        self._left = self.budget
        pieces, _, clean = self._split(g)
        self.stats.rectified += int(clean)
        return pieces

    def _total(self, pieces: list[Group]) -> int:
        return sum(d for _, d in self._costs(pieces))

    def _split(self, g: Group) -> tuple[list[Group], int, bool]:
        if g in self.memo:
            return self.memo[g]
        ok, dram = self._costs([g])[0]
        if ok:
            res = ([g], dram, True)
        else:
            res = self._split_invalid(g)
        self.memo[g] = res
        return res

    def _use_fallback(self, g: Group) -> tuple[list[Group], int, bool]:
        self.stats.fallbacks += 1
        pieces = sorted(tuple(sorted(int(n) for n in p)) for p in self.fallback(g))
        return pieces, self._total(pieces), False

    def _split_invalid(self, g: Group) -> tuple[list[Group], int, bool]:
        if self._left <= 0:
            return self._use_fallback(g)
        self._left -= 1
        self.stats.explanations += 1
        members = set(g)
        edges = [e for e in self.rank(g) if e[0] in members and e[1] in members][:self.top_k]
        cands: list[list[Group]] = []
        for e in edges:
            for c in self.cuts(g, e):
                if c not in cands:
                    cands.append(c)
        if not cands:
            return self._use_fallback(g)
        info = []
        for c in cands:
            costs = self._costs(c)
            info.append((c, [f for f, _ in costs], sum(d for _, d in costs)))
        cat1 = [(d, c) for c, f, d in info if all(f)]
        if cat1:
            self.stats.categories[1] += 1
            d, c = min(cat1)
            return c, d, True
        cat2 = [(sum(len(p) for p, ok in zip(c, f) if ok), -d, c, f) for c, f, d in info if any(f)]
        if cat2:
            self.stats.categories[2] += 1
            _, _, c, f = max(cat2, key=lambda t: t[:2])
            return self._recurse(c, f)
        self.stats.categories[3] += 1
        results = [self._recurse(c, f) for c, f, _ in info[:self.branch]]
        return min(results, key=lambda r: (r[1], len(r[0])))

    def _recurse(self, pieces: list[Group], fits: list[bool]) -> tuple[list[Group], int, bool]:
        out: list[Group] = []
        total, clean = 0, True
        for p, ok in zip(pieces, fits):
            sub, d, c = ([p], self._costs([p])[0][1], True) if ok else self._split(p)
            out += sub
            total += d
            clean &= c
        return sorted(out), total, clean

