"""Plan validation, totals and persistence on hand-checkable graphs and random DAGs."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from random_graphs import build, chain, diamond, random_dag
from tvm_fusion.hardware import Accelerator
from tvm_fusion.plan import Plan, PlanError, graph_index, is_connected, is_convex
from tvm_fusion.search.partition import random_convex_partition, random_cut

cost = pytest.importorskip("tvm_fusion.cost", reason="C++ cost model not built")


def test_valid_plan_is_sorted_in_topological_order():
    g = diamond()  # 0:conv -> (1:conv, 2:relu) -> 3:add -> 4:relu
    plan = Plan.from_groups(g, [[4, 3, 1, 2], [0]])
    assert plan.groups == ((0,), (1, 2, 3, 4))
    assert plan.group_of() == [0, 1, 1, 1, 1]
    assert Plan.no_fusion(g).groups == tuple((v,) for v in range(5))


def test_non_convex_group_names_the_path():
    g = diamond()
    with pytest.raises(PlanError, match=r"group 0 \(conv3x3_0, conv3x3_1, add_3\) is not convex.*relu_2"):
        Plan.from_groups(g, [[0, 1, 3], [2], [4]])


def test_disconnected_missing_and_duplicate_nodes():
    g = diamond()
    with pytest.raises(PlanError, match="not connected"):
        Plan.from_groups(g, [[0], [1, 2], [3], [4]])
    with pytest.raises(PlanError, match="in no group: relu_4"):
        Plan.from_groups(g, [[0], [1, 2, 3]])
    with pytest.raises(PlanError, match="exactly one group"):
        Plan.from_groups(g, [[0, 1], [1], [2], [3], [4]])
    with pytest.raises(PlanError, match="node id 9"):
        Plan.from_groups(g, [[0], [1], [2], [3], [4, 9]])


def test_cycle_between_convex_groups_is_rejected():
    # 0 and 1 read the input; 2 = add(0, 1); 3 = add(1, 0).  {1, 3} and {0, 2} are each
    # connected and convex, but 1 -> 2 and 0 -> 3 make them depend on each other.
    g = build([("conv3x3", (0,)), ("conv3x3", (0,)), ("add", (1, 2)), ("add", (2, 1))])
    assert is_convex(g, [1, 3]) and is_convex(g, [0, 2])
    with pytest.raises(PlanError, match="cycle"):
        Plan.from_groups(g, [[1, 3], [0, 2]])


def _brute_convex(g, group):
    idx = graph_index(g)
    s = set(group)
    for w in range(len(g)):  # w outside, reachable from s and reaching s
        if w not in s and any((idx.reach[v] >> w) & 1 for v in s) and any((idx.reach[w] >> v) & 1 for v in s):
            return False
    return True


@pytest.mark.parametrize("seed", range(4))
def test_convexity_and_connectivity_match_brute_force(seed):
    g = random_dag(12, seed)
    idx = graph_index(g)
    rng = random.Random(seed)
    for _ in range(300):
        group = rng.sample(range(len(g)), rng.randint(1, 6))
        assert is_convex(g, group) == _brute_convex(g, group), group
        # connectivity: flood fill over undirected edges
        seen, todo = {group[0]}, [group[0]]
        while todo:
            v = todo.pop()
            for w in idx.neighbours[v]:
                if w in group and w not in seen:
                    seen.add(w)
                    todo.append(w)
        assert is_connected(g, group) == (len(seen) == len(group))


@pytest.mark.parametrize("seed", range(5))
def test_random_partitions_and_cuts_are_valid_plans(seed):
    g = random_dag(40, seed)
    rng = random.Random(seed)
    sizes = set()
    for _ in range(20):
        groups = random_convex_partition(g, rng)
        Plan.from_groups(g, groups)  # raises if invalid
        sizes.update(len(x) for x in groups)
        big = max(groups, key=len)
        if len(big) > 1:
            pieces = random_cut(graph_index(g), big, rng)
            assert sorted(itertools.chain.from_iterable(pieces)) == list(big)
            Plan.from_groups(g, [x for x in groups if x != big] + pieces)
    assert max(sizes) > 1
    assert all(len(x) <= 3 for _ in range(5) for x in random_convex_partition(g, rng, 1.0, max_group_size=3))
    frozen = {3, 7}
    for groups in (random_convex_partition(g, rng, merge_prob=1.0, singletons=frozen) for _ in range(5)):
        assert (3,) in groups and (7,) in groups


def test_random_partitions_valid_on_larger_branchy_graphs():
    # convex groups can still form dependency cycles; the generator must never produce them
    for seed in range(3):
        g = random_dag(300, seed, skip_prob=0.15)
        rng = random.Random(seed)
        for _ in range(10):
            Plan.from_groups(g, random_convex_partition(g, rng))


def test_random_partition_same_seed_same_result():
    g = random_dag(30, 3)
    assert random_convex_partition(g, random.Random(5)) == random_convex_partition(g, random.Random(5))


def test_totals_one_batch_and_illegal_groups():
    g = diamond()
    cm = cost.CostModel(g, Accelerator(1024))
    plan = Plan.from_groups(g, [[0], [1, 2, 3, 4]])
    t = plan.totals(cm)
    (b0, d0, _), (b1, d1, f1) = cm.group_cost([0]), cm.group_cost([1, 2, 3, 4])
    assert t.dram_bytes == d0 + d1 and t.max_buffer_bytes == b1 and t.num_groups == 2
    assert not f1 and t.illegal_groups == ((1, 2, 3, 4),) and not t.legal
    nf = Plan.no_fusion(g).totals(cm)
    assert nf.dram_bytes == nf.no_fusion_bytes == cm.no_fusion_dram()
    assert nf.max_buffer_bytes == 0 and nf.legal and nf.lower_bound_bytes <= t.dram_bytes <= nf.dram_bytes


def test_save_load_round_trip_and_wrong_graph(tmp_path):
    g = diamond()
    acc = Accelerator("2KB")
    plan = Plan.from_groups(g, [[0], [1, 2, 3, 4]], acc)
    path = plan.save(tmp_path / "p.json", g)
    data = json.loads(path.read_text())
    assert data["accelerator"] == {"buffer_bytes": 2048, "fusion": "lbdf", "bytes_per_element": 1}
    assert data["group_names"][1] == ["conv3x3_1", "relu_2", "add_3", "relu_4"]
    assert Plan.load(path, g) == plan
    with pytest.raises(PlanError, match="different graph.*'diamond'.*chain5"):
        Plan.load(path, chain(5))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PlanError, match="not valid JSON"):
        Plan.load(tmp_path / "bad.json", g)
    with pytest.raises(PlanError, match="does not exist"):
        Plan.load(tmp_path / "missing.json", g)
    data["groups"] = [[0, 1, 3], [2], [4]]
    (tmp_path / "nonconvex.json").write_text(json.dumps(data))
    with pytest.raises(PlanError, match="not convex"):
        Plan.load(tmp_path / "nonconvex.json", g)
