"""GET: dataset encoding, validity classifier, explainers, tree split and the "get" splitter."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from random_graphs import build, diamond, random_dag
from tvm_fusion.cost import CostModel
from tvm_fusion.hardware import Accelerator
from tvm_fusion.plan import is_connected, is_convex
from tvm_fusion.explain import classifier
from tvm_fusion.explain.dataset import NUM_FEATURES, SIZES, GroupEncoder, bfs_group, sample_groups
from tvm_fusion.explain.explainers import EXPLAINERS, make_explainer
from tvm_fusion.explain.reach import internal_edges
from tvm_fusion.explain.tree_split import TreeSplit
from tvm_fusion.search.splitters import RandomSplitter, make_splitter


SHAPE = (1, 16, 32, 32)
BUFFERS_KB = (4, 8, 16, 32)


def _labelled(seeds, n_bfs=80):
    out = []
    for s in seeds:
        g = random_dag(40, seed=s, shape=SHAPE)
        enc = GroupEncoder(g)
        groups = sample_groups(g, random.Random(s), 3, n_bfs, max_bfs_size=24)
        for kb in BUFFERS_KB:
            costs = CostModel(g, Accelerator(kb * 1024)).evaluate(groups)
            for grp, fits in zip(groups, costs.fits):
                d = enc.encode(grp, kb * 1024)
                out.append(Data(x=d.x, edge_index=d.edge_index, y=torch.tensor([float(not fits)])))
    return out


@pytest.fixture(scope="module")
def model():
    """A tiny classifier trained here on synthetic DAGs (a few seconds on one thread)."""
    m, _ = classifier.train(_labelled(range(4)), epochs=20, hidden=64, seed=0, progress=False)
    return m


def _cost_fn(cm):
    def cost(groups):
        c = cm.evaluate(groups)
        return c.fits, c.dram_bytes
    return cost


def _invalid_groups(g, cm, n, min_size=4, seed=0):
    groups = sample_groups(g, random.Random(seed), 3, 200, max_bfs_size=30)
    fits = cm.evaluate(groups).fits
    return [grp for grp, f in zip(groups, fits) if not f and len(grp) >= min_size][:n]


def _check_pieces(g, cm, group, pieces):
    assert sorted(v for p in pieces for v in p) == sorted(group), "pieces must cover the group exactly"
    for p in pieces:
        assert is_connected(g, p) and is_convex(g, p), p
        assert len(p) == 1 or cm.group_cost(p)[2], f"piece {p} does not fit"


def test_encoder_features_and_edges():
    g = diamond(SHAPE)
    d = GroupEncoder(g).encode([1, 0, 3, 2], 8192)
    assert d.x.shape == (4, NUM_FEATURES)
    assert d.nodes == [0, 1, 2, 3]
    assert d.edges == [(0, 1), (0, 2), (1, 3), (2, 3)]
    assert d.edge_index.shape == (2, 8)  # both directions
    assert torch.all(d.x[:, -1] == 13.0)  # log2(8192) broadcast to every node
    with pytest.raises(ValueError, match="empty group"):
        GroupEncoder(g).encode([], 8192)


def test_sizes_relative_to_the_buffer_are_hand_worked():
    # diamond, 16x32x32: conv0 reads x (3x3 window: 3 rows of 16*32), its output feeds conv1
    # (3 rows) and relu2 (1 row); x has one reader, t1 two.
    g = diamond(SHAPE)
    x = GroupEncoder(g).encode([0, 1], 4096).x.numpy()
    lin = x[:, NUM_FEATURES - 1 - 2 * len(SIZES):NUM_FEATURES - 1 - len(SIZES)]
    log = x[:, NUM_FEATURES - 1 - len(SIZES):NUM_FEATURES - 1]
    col = {name: i for i, name in enumerate(SIZES)}
    row, numel, w = 16 * 32, 16 * 32 * 32, 16 * 16 * 9
    assert lin[0, col["in_window"]] == pytest.approx(3 * row / 4096)
    assert lin[1, col["in_window_shared"]] == pytest.approx(3 * row / 2 / 4096)  # t1 read by conv1 and relu2
    assert lin[0, col["out_window"]] == pytest.approx(3 * row / 4096)
    assert lin[0, col["weight"]] == pytest.approx(w / 4096)
    assert lin[0, col["filter"]] == pytest.approx(16 * 9 / 4096)
    assert lin[0, col["out"]] == pytest.approx(numel / 4096)  # 4: below the clip
    assert log[0, col["out"]] == pytest.approx(np.log2(numel / 4096))
    big = GroupEncoder(g).encode([0], 1024).x.numpy()
    assert big[0, NUM_FEATURES - 1 - 2 * len(SIZES) + col["out"]] == 8.0  # 16x the buffer, clipped at 8


def test_threshold_is_picked_on_validation_logits():
    z = np.array([-3.0, -2.0, -1.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1])  # the best cut lies between 1.0 and 1.5
    t = classifier.best_threshold(z, y)
    assert 1.0 < t < 1.5
    m = classifier.ValidityGNN(hidden=8, layers=1)
    d = GroupEncoder(diamond(SHAPE)).encode(range(5), 4096)
    with torch.no_grad():
        before = float(m(d.x, d.edge_index))
        m.shift_threshold(t)
        assert float(m(d.x, d.edge_index)) == pytest.approx(before - t, abs=1e-5)


def test_classifier_sees_edge_direction():
    # the same two nodes with the edge reversed must be distinguishable (producer vs consumer)
    torch.manual_seed(0)
    m = classifier.ValidityGNN(hidden=8, layers=2)
    x = torch.randn(2, NUM_FEATURES)
    fw = torch.tensor([[0, 1], [1, 0]])  # forward first, then reverse: 0 -> 1
    swapped = x.flip(0)  # node 1 is now the producer
    assert not torch.allclose(m(x, fw), m(swapped, fw))


def test_bfs_groups_are_connected_and_convex():
    g = random_dag(60, seed=3, shape=SHAPE)
    enc = GroupEncoder(g)
    rng = random.Random(0)
    for _ in range(100):
        grp = bfs_group(enc.reach, rng, 20)
        assert is_connected(g, grp) and is_convex(g, grp)


def test_classifier_accuracy_on_held_out_graphs(model):
    test = _labelled(range(100, 102))
    m = classifier.evaluate(model, test)
    assert 0.2 < float(np.mean([d.y.item() for d in test])) < 0.8  # both classes present
    assert m.accuracy > 0.85 and m.f1 > 0.85, m


def test_classifier_save_load_round_trip(model, tmp_path):
    path = tmp_path / "w.pt"
    classifier.save(model, path)
    again = classifier.load(path=path)
    d = GroupEncoder(diamond(SHAPE)).encode(range(5), 4096)
    assert torch.allclose(model(d.x, d.edge_index), again(d.x, d.edge_index))
    with pytest.raises(FileNotFoundError, match="train_validity.py"):
        classifier.load(path=tmp_path / "missing.pt")


@pytest.mark.parametrize("name", sorted(EXPLAINERS))
def test_explainers_rank_the_group_edges(model, name):
    g = random_dag(40, seed=7, shape=SHAPE)
    cm = CostModel(g, Accelerator(8 * 1024))
    enc = GroupEncoder(g)
    opts = {"epochs": 2, "train_groups": 4} if name == "pg" else {"epochs": 10} if name == "gnne" else {}
    ex = make_explainer(name, model, **opts)
    for grp in _invalid_groups(g, cm, 2):
        ranked = ex.rank_edges(enc, grp, 8 * 1024)
        assert sorted(ranked) == internal_edges(enc.reach, grp)  # every group edge, once
    assert ex.rank_edges(enc, [0], 8192) == []
    with pytest.raises(ValueError, match="unknown explainer"):
        make_explainer("nope", model)


def test_skip_connection_cut_also_cuts_the_parallel_path():
    # diamond: 0 -> 1 -> 3, 0 -> 2 -> 3, 3 -> 4; removing (1, 3) alone leaves it connected
    g = diamond(SHAPE)
    tree = TreeSplit(GroupEncoder(g).reach, None, None, None)
    assert tree.cuts((0, 1, 2, 3, 4), (1, 3)) == [[(0, 1), (2, 3, 4)], [(0, 1, 2), (3, 4)]]
    # a chain edge: the plain cut is the only distinct one
    assert tree.cuts((0, 1, 2, 3, 4), (3, 4)) == [[(0, 1, 2, 3), (4,)]]


def test_categories_on_a_chain_with_a_size_oracle():
    """Oracle: a group fits iff it has <= 2 ops; DRAM = 10 per group. Hand-worked."""
    g = build([("conv3x3", (i,)) for i in range(6)], SHAPE, name="chain6")
    calls = []

    def cost(groups):
        calls.append(list(groups))
        return np.array([len(x) <= 2 for x in groups]), np.array([10] * len(groups))

    def middle(group):  # rank the middle edge of the chain first
        k = len(group) // 2
        return [(group[k - 1], group[k])]

    tree = TreeSplit(GroupEncoder(g).reach, cost, middle, fallback=None, top_k=1)
    # 6 ops -> cut 3|3 (Category 3) -> each 3 -> 1|2 (Category 2: keep the pair, singleton fits)
    assert tree.split(range(6)) == [(0,), (1, 2), (3,), (4, 5)]
    assert tree.stats.categories == {1: 2, 2: 0, 3: 1}
    assert tree.stats.rectify_rate == 1.0
    # 4 ops -> 2|2: Category 1
    assert tree.split((0, 1, 2, 3)) == [(0, 1), (2, 3)]


def test_tree_split_property_and_memo(model):
    for seed in (11, 12):
        g = random_dag(50, seed=seed, shape=SHAPE)
        cm = CostModel(g, Accelerator(8 * 1024))
        enc = GroupEncoder(g)
        ex = make_explainer("rg", model)
        rs = RandomSplitter()
        tree = TreeSplit(enc.reach, _cost_fn(cm), lambda grp: ex.rank_edges(enc, grp, 8192),
                         lambda grp: rs.split(grp, cm, random.Random(0)))
        groups = _invalid_groups(g, cm, 8, seed=seed)
        assert groups
        first = [tree.split(grp) for grp in groups]
        for grp, pieces in zip(groups, first):
            _check_pieces(g, cm, grp, pieces)
        n_expl = tree.stats.explanations
        assert [tree.split(grp) for grp in groups] == first  # memo: identical, no new explanations
        assert tree.stats.explanations == n_expl


def test_fallback_when_explainer_gives_nothing():
    g = random_dag(40, seed=5, shape=SHAPE)
    cm = CostModel(g, Accelerator(4 * 1024))
    rs = RandomSplitter()
    tree = TreeSplit(GroupEncoder(g).reach, _cost_fn(cm), lambda grp: [],
                     lambda grp: rs.split(grp, cm, random.Random(0)))
    grp = _invalid_groups(g, cm, 1)[0]
    _check_pieces(g, cm, grp, tree.split(grp))
    assert tree.stats.fallbacks == 1 and tree.stats.rectify_rate == 0.0


def test_get_splitter_via_registry(model, tmp_path):
    path = tmp_path / "w.pt"
    classifier.save(model, path)
    g = random_dag(40, seed=21, shape=SHAPE)
    cm = CostModel(g, Accelerator(8 * 1024))
    sp = make_splitter("get", explainer="rg", weights=path)
    for grp in _invalid_groups(g, cm, 4, seed=21):
        _check_pieces(g, cm, grp, sp.split(grp, cm, random.Random(0)))
    assert sp.stats.split_calls == 4
    with pytest.raises(ValueError, match="fusion"):
        make_splitter("get", explainer="rg", fusion="brr", weights=path).split((0, 1), cm, random.Random(0))
    with pytest.raises(ValueError, match="unknown explainer"):
        make_splitter("get", explainer="xyz")


@pytest.mark.parametrize("fusion", ["lbdf", "brr"])
def test_shipped_classifier_accuracy_floor_on_a_held_out_network(fusion):
    """Shipped weights on 150 fixed groups of resnet18 (never trained on) at 128/256/512 KB."""
    from tvm_fusion import zoo

    g = zoo.opgraph("resnet18")
    groups = sample_groups(g, random.Random(1234), 2, 150, max_bfs_size=40)[:150]
    enc, data = GroupEncoder(g), []
    for kb in (128, 256, 512):
        costs = CostModel(g, Accelerator(kb * 1024, fusion=fusion)).evaluate(groups)
        data += [Data(x=d.x, edge_index=d.edge_index, y=torch.tensor([float(not f)]))
                 for d, f in ((enc.encode(grp, kb * 1024), f) for grp, f in zip(groups, costs.fits))]
    m = classifier.evaluate(classifier.load(fusion), data)
    assert m.accuracy > 0.9 and m.f1 > 0.8, m  # measured 0.945 / 0.966 (lbdf), 0.950 / 0.887 (brr)


@pytest.mark.parametrize("fusion", ["lbdf", "brr"])
def test_shipped_weights_match_the_encoder(fusion):
    """tvm_fusion/data/ weights load for the current features (else: rerun train_validity.py)."""
    m = classifier.load(fusion)
    d = GroupEncoder(diamond(SHAPE)).encode(range(5), 128 * 1024)
    assert m(d.x, d.edge_index).shape == (1, 1)
