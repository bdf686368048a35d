"""AIO-P predictor: data loading, builders, features, standardisation, training, checkpoints."""

import json
import math
import random

import numpy as np
import pytest
import torch

from predictor import data, features, spaces
from predictor.aiop import AIOP, FeatureCache
from predictor.data import DataError, Record
from predictor.model import GraphEncoder, Standardizer, pairwise_rank_loss, spearman
from tvm_fusion.graph import WINDOWED, OpGraph, OpNode, TensorInfo


# ---- hand-built OpGraphs ------------------------------------------------------------------
def chain(ops, c=8, h=16, name="chain"):
    """A chain network built by hand: ops in ("conv3", "conv1", "relu", "pool")."""
    tensors = [TensorInfo(0, "x", (1, c, h, h), "float32", -1)]
    nodes = []
    for i, op in enumerate(ops):
        prev = tensors[-1]
        out = prev.shape
        kw = {}
        if op in ("conv3", "conv1"):
            k = 3 if op == "conv3" else 1
            kw = dict(kind="conv2d", relax_op="relax.nn.conv2d", row_class=WINDOWED, weight_elems=c * c * k * k,
                      weight_bytes=4 * c * c * k * k, out_channels=c, kernel=(k, k), has_bias=True,
                      flops=2 * c * c * k * k * h * h)
        elif op == "relu":
            kw = dict(kind="relu", relax_op="relax.nn.relu", flops=c * h * h)
        else:
            kw = dict(kind="avg_pool2d", relax_op="relax.nn.avg_pool2d", row_class=WINDOWED, kernel=(3, 3),
                      flops=9 * c * h * h)
        tensors.append(TensorInfo(i + 1, f"t{i}", out, "float32", i))
        nodes.append(OpNode(id=i, name=f"n{i}", inputs=(prev.id,), output=i + 1, **kw))
    return OpGraph(nodes, tensors, [len(tensors) - 1], name)


def test_features_of_hand_built_graph():
    g = OpGraph(
        [OpNode(0, "conv", "conv2d", "relax.nn.conv2d", (0,), 1, WINDOWED, 3 * 8 * 9, 4 * 3 * 8 * 9, 8,
                (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, True, 0),
         OpNode(1, "relu", "relu", "relax.nn.relu", (1,), 2)],
        [TensorInfo(0, "x", (1, 3, 32, 32), "float32", -1), TensorInfo(1, "c", (1, 8, 16, 16), "float32", 0),
         TensorInfo(2, "r", (1, 8, 16, 16), "float32", 1)], [2])
    x = features.node_features(g)
    k = len(features.KINDS)
    assert x.shape == (2, features.num_features())
    assert x[0, features.KINDS.index("conv2d")] == 1 and x[1, features.KINDS.index("relu")] == 1
    assert x[:, :k].sum(1).tolist() == [1.0, 1.0]
    num = dict(zip(features.NUMERIC, x[0, k:].tolist()))
    assert num["h_in"] == 1.0 and num["h_out"] == 0.5 and num["w_out"] == 0.5
    assert num["c_in"] == pytest.approx(2 / 10) and num["c_out"] == pytest.approx(math.log2(9) / 10)
    assert num["kernel_h"] == pytest.approx(3 / 7) and num["stride_h"] == pytest.approx(0.5)
    assert num["has_bias"] == 1 and num["has_weight"] == 1 and num["depthwise"] == 0
    assert dict(zip(features.NUMERIC, x[1, k:].tolist()))["has_weight"] == 0
    d = features.to_data(g)
    assert d.edge_index.tolist() == [[0], [1]]
    # unknown kinds fall into "other"
    other = OpGraph([OpNode(0, "q", "my_op", "relax.my_op", (0,), 1)],
                    [TensorInfo(0, "x", (1, 4), "float32", -1), TensorInfo(1, "y", (1, 4), "float32", 0)], [1])
    assert features.node_features(other)[0, k - 1] == 1


# ---- data ---------------------------------------------------------------------------------
def test_load_families_counts_and_encodings():
    nb201 = data.load_family("nb201")
    assert {r.task for r in nb201} == {"cifar10", "cifar100", "ImageNet16-120"}
    assert sum(r.task == "cifar10" for r in nb201) == 725
    r = nb201[0]
    assert len(r.arch) == 6 and r.flops > 0 and "nwot" in r.proxies and "arch" not in r.proxies
    nb101 = data.load_family("nb101")
    assert len(nb101) == 500 and nb101[0].arch[1][0] == 0 and nb101[0].arch[1][-1] == 1
    assert len(data.load_family("nb301")[0].arch) == 2


def test_corrupt_or_missing_file_names_the_file(tmp_path):
    (tmp_path / "zc_nasbench201.json").write_text('{"cifar10": {"(0, 1')
    with pytest.raises(DataError, match="zc_nasbench201.json.*not readable JSON"):
        data.load_family("nb201", tmp_path)
    (tmp_path / "zc_nasbench201.json").write_text(json.dumps({"cifar10": {"(0, 9, 0, 0, 0, 0)": {
        "arch": "(0, 9, 0, 0, 0, 0)", "val_accuracy": 1.0, "flops": 1.0, "params": 1.0}}}))
    with pytest.raises(DataError, match=r"zc_nasbench201.json.*malformed"):
        data.load_family("nb201", tmp_path)
    with pytest.raises(DataError, match="zc_nasbench301.json not found"):
        data.load_family("nb301", tmp_path)


# ---- builders -----------------------------------------------------------------------------
@pytest.mark.parametrize("family,task", [("nb201", "cifar100"), ("nb101", "cifar10"), ("nb301", "cifar10"),
                                         ("tnb101", "class_object"), ("tnb101", "segmentsemantic"),
                                         ("tnb101", "room_layout")])
def test_builders_run_on_real_encodings(family, task):
    rec = next(r for r in data.load_family(family) if r.task == task)
    net, x = spaces.build(family, task, rec.arch)
    with torch.no_grad():
        y = net(x)
    expect = {"cifar100": (1, 100), "cifar10": (1, 10), "class_object": (1, 100),
              "segmentsemantic": (1, 17, 32, 32), "room_layout": (1, 9)}[task]
    assert tuple(y.shape) == expect


def test_nb101_prunes_dangling_vertices_and_zero_cells():
    from predictor.spaces.nb101 import prune

    adj = [[0, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]] + [[0] * 7] * 4
    keep_adj, ops = prune(adj, [0, 3, 4, 2, 2, 2, 1])  # vertex 2 feeds nothing, 3-5 unreachable
    assert ops == [0, 3, 1] and keep_adj == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    # a NAS-Bench-201 cell whose output node is only reachable through Zero edges emits zeros
    net, x = spaces.build("nb201", "cifar10", (2, 2, 1, 2, 1, 1))
    assert torch.equal(net.backbone[1](torch.ones(1, 16, 4, 4)), torch.zeros(1, 16, 4, 4))


@pytest.mark.parametrize("family,task", [("nb201", "cifar10"), ("tnb101", "class_scene")])
def test_canonical_form_names_functional_duplicates(family, task):
    """Edges that cannot reach the cell output are set to Zero, so the canonical form, idempotent,
    builds the same network graph as the encoding it came from."""
    from predictor import graphs
    from predictor.reduce import space_for

    # hand-worked, NB201 order (1,2),(1,3),(1,4),(2,3),(2,4),(3,4), Zero = 1: (3,4) is Zero, so node 3
    # feeds nothing and (1,3), (2,3) go; with (2,4) Zero too, node 2 feeds only dead node 3: (1,2) goes
    assert spaces.canonical("nb201", (2, 2, 2, 2, 2, 1)) == (2, 1, 2, 1, 2, 1)
    assert spaces.canonical("nb201", (2, 2, 2, 2, 1, 1)) == (1, 1, 2, 1, 1, 1)
    # TransNAS file order (1,2),(1,3),(2,3),(1,4),(2,4),(3,4), Zero = 0: (3,4) is Zero, so (1,3) and
    # (2,3) go; (2,4) keeps node 2 alive
    assert spaces.canonical("tnb101", (1, 3, 2, 3, 2, 0)) == (1, 0, 0, 3, 2, 0)
    space = space_for(family)
    rng, checked = random.Random(0), 0
    while checked < 6:
        arch = tuple(rng.randrange(len(space.ops)) for _ in range(space.num_edges))
        canon = spaces.canonical(family, arch)
        if canon == arch:
            continue
        assert spaces.canonical(family, canon) == canon
        assert (graphs.network_graph(family, task, arch, cache=False).fingerprint()
                == graphs.network_graph(family, task, canon, cache=False).fingerprint()), (arch, canon)
        checked += 1
    with pytest.raises(ValueError, match="nb201 and tnb101"):
        spaces.canonical("nb101", ((0,) * 49, (0,) * 7))


# ---- model --------------------------------------------------------------------------------
def test_standardizer_round_trip_and_train_only_statistics():
    rng = np.random.default_rng(0)
    y, fl = rng.normal(70, 5, 50), rng.uniform(10, 500, 50)
    for scale in (False, True):
        s = Standardizer.fit(y[:20], fl[:20], scale)
        assert np.allclose(s.inverse(s.transform(y, fl), fl), y)
        z = s.transform(y[:20], fl[:20])
        assert abs(z.mean()) < 1e-9 and abs(z.std() - 1) < 1e-9  # fitted on the training part only
        assert abs(s.transform(y[20:], fl[20:]).mean()) > 1e-6
    with pytest.raises(ValueError, match="MFLOPs"):
        Standardizer.fit(y, None, True)


def test_pairwise_rank_loss_hand_worked():
    """Ordered pairs with y_i > y_j contribute softplus(pred_j - pred_i); groups separate tasks."""
    pred, y = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 0.0, 2.0])
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    # pairs (0 over 1): pred diff -1; (2 over 0): +2; (2 over 1): +1
    assert float(pairwise_rank_loss(pred, y)) == pytest.approx((sp(1) + sp(-2) + sp(-1)) / 3, rel=1e-6)
    assert float(pairwise_rank_loss(pred, y, torch.tensor([0, 0, 1]))) == pytest.approx(sp(1), rel=1e-6)
    none = pairwise_rank_loss(pred.requires_grad_(), y, torch.tensor([0, 1, 2]))
    assert float(none) == 0.0 and none.requires_grad


def test_encoder_accepts_any_feature_dimension():
    enc = GraphEncoder(5, hidden=8, layers=2)
    out = enc(torch.randn(4, 5), torch.tensor([[0, 1, 2], [1, 2, 3]]))
    assert out.shape == (1, 8)
    with pytest.raises(ValueError, match="expects 5"):
        enc(torch.randn(4, 6), torch.tensor([[0], [1]]))


def test_encoder_options_hand_worked():
    """Directed residual sum+max encoder on a 3-node chain 0 -> 1 -> 2, with every weight set by hand:
    input projection = identity, GraphConv h_i' = h_i + sum over in-neighbours j of 2 h_j."""
    enc = GraphEncoder(2, hidden=2, layers=1, undirected=False, input_projection=True, residual=True, pooling="sum_max")
    with torch.no_grad():
        enc.inp.weight.copy_(torch.eye(2)), enc.inp.bias.zero_()
        conv = enc.convs[0]
        conv.lin_root.weight.copy_(torch.eye(2)), conv.lin_rel.weight.copy_(2 * torch.eye(2)), conv.lin_rel.bias.zero_()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    chain_edges = torch.tensor([[0, 1], [1, 2]])
    # conv: node0 (no in-edge) [1,0]; node1 [0,1]+2[1,0] = [2,1]; node2 [1,1]+2[0,1] = [1,3]; residual adds x
    h = torch.tensor([[2.0, 0.0], [2.0, 2.0], [2.0, 4.0]])
    out = enc(x, chain_edges)
    assert enc.out_dim == 4 and torch.allclose(out, torch.cat([h.sum(0), h.max(0).values]).unsqueeze(0))
    # undirected, the same edges also carry messages downstream -> a different embedding
    both = GraphEncoder(2, hidden=2, layers=1, undirected=True, input_projection=True, residual=True, pooling="sum_max")
    both.load_state_dict(enc.state_dict())
    assert not torch.allclose(both(x, chain_edges), out)
    with pytest.raises(ValueError, match="pooling must be one of"):
        GraphEncoder(2, pooling="attention")
    with pytest.raises(ValueError, match="residual layers need"):
        GraphEncoder(3, hidden=2, residual=True)


def _synthetic(n, seed):
    """Random chain graphs; label = a noisy function of structure (shared by two 'families')."""
    rnd = random.Random(seed)
    recs, graphs = [], {}
    for i in range(n):
        ops = [rnd.choice(["conv3", "conv1", "relu", "pool"]) for _ in range(rnd.randint(3, 9))]
        key = ("syn", tuple(ops))
        graphs[key] = chain(ops)
        base = 2 * ops.count("conv3") + ops.count("conv1") - 0.5 * ops.count("pool")
        for fam, w in (("src", 1.0), ("dst", 0.8)):
            recs.append(Record(fam, "t", tuple(ops), base * w + rnd.gauss(0, 0.3), 1.0, 1.0, {"p": base}))
    return recs, graphs


def test_pretrain_and_finetune_improve_srcc_then_checkpoint_round_trip(tmp_path):
    recs, graphs = _synthetic(120, 0)
    key_fn = lambda r: ("syn", r.arch)  # noqa: E731
    feats = FeatureCache(graphs)
    src = [r for r in recs if r.family == "src"]
    dst = [r for r in recs if r.family == "dst"]
    test = dst[20:]
    items = [feats.item(key_fn(r)) for r in test]
    truth = [r.label for r in test]
    untrained = AIOP.pretrain(src[:1], feats, key_fn, epochs=0, seed=0, hidden=32, layers=2, progress=False)
    m = AIOP.pretrain(src, feats, key_fn, epochs=30, seed=0, hidden=32, layers=2, progress=False)
    s0 = spearman(untrained.scores(items, "zeroshot"), truth)
    s_zero = spearman(m.scores(items, "zeroshot"), truth)
    ft = m.finetune(dst[:20], feats, key_fn, "dst/t", steps=50, seed=0)
    s_ft = spearman(ft.scores(items, "dst/t"), truth)
    assert s_zero > s0 + 0.2 and s_zero > 0.6 and s_ft > 0.6
    # epochs count passes: on 100 records (batches of 64, 2 per epoch) 3 epochs are 6 steps
    by_epochs = m.finetune(dst[:100], feats, key_fn, "dst/t", epochs=3, seed=0)
    for steps, same in ((6, True), (5, False)):  # 5 steps are 2 epochs
        by_steps = m.finetune(dst[:100], feats, key_fn, "dst/t", steps=steps, seed=0)
        assert np.array_equal(by_epochs.scores(items, "dst/t"), by_steps.scores(items, "dst/t")) is same
    # same seed -> same model
    again = AIOP.pretrain(src, feats, key_fn, epochs=30, seed=0, hidden=32, layers=2, progress=False)
    assert np.allclose(again.scores(items, "zeroshot"), m.scores(items, "zeroshot"))
    # adapters: inserted at zero, trained on proxies, and checkpoints keep predictions identical
    inf = m.infuse(dst, feats, key_fn, "p", epochs=3, seed=0, progress=False)
    ft2 = inf.finetune(dst[:20], feats, key_fn, "dst/t", steps=20, seed=0)
    path = tmp_path / "aiop.pt"
    ft2.save(path)
    loaded = AIOP.load(path)
    g = graphs[key_fn(test[0])]
    assert loaded.predict(g, task="dst/t") == ft2.predict(g, task="dst/t")
    assert np.array_equal(loaded.scores(items, "zeroshot"), ft2.scores(items, "zeroshot"))
    with pytest.raises(KeyError, match="no head"):
        loaded.scores(items, "nope/x")


def test_new_head_starts_as_the_mean_of_the_pretraining_heads(tmp_path):
    from predictor import features
    from predictor.model import Predictor

    torch.manual_seed(0)
    heads = ["a/t", "b/t", "c/t"]
    model = Predictor(features.num_features(), heads, hidden=16, layers=2)
    model.add_head("new/t", init_from=heads)
    d = features.to_data(chain(["conv3", "relu", "pool", "conv1"]))
    out = model(d.x, d.edge_index, None, heads + ["new/t"]).detach()
    assert torch.allclose(out[0, 3], out[0, :3].mean(), atol=1e-6)
    m = AIOP(model, features.KINDS, {}, {"hidden": 16, "layers": 2, "pretrain_heads": heads, "flops_scale": False})
    m.save(tmp_path / "m.pt")  # the wider head must load back
    assert AIOP.load(tmp_path / "m.pt").scores([d], "new/t")[0] == pytest.approx(float(out[0, 3]), abs=1e-6)


def test_task_decoders_and_subsample():
    assert spaces.graph_task("tnb101", "autoencoder") == spaces.graph_task("tnb101", "normal")
    assert spaces.graph_task("tnb101", "class_scene") != spaces.graph_task("tnb101", "segmentsemantic")
    assert spaces.graph_task("nb101", "cifar10") == ""
    recs = data.load_family("nb201")
    sub = data.subsample(recs, 4, seed=1)
    assert len({r.arch for r in sub}) == 4 and len(sub) == 12  # all three tasks of each kept arch
    assert sub == data.subsample(recs, 4, seed=1)


def test_network_graph_pieces_are_cached(tmp_path, monkeypatch):
    from predictor import graphs

    monkeypatch.setenv("AIOP_CACHE", str(tmp_path))
    g = graphs.network_graph("nb201", "cifar10", (0, 2, 3, 4, 1, 2))
    kinds = {n.kind for n in g}
    assert {"conv2d", "avg_pool2d", "dense"} <= kinds
    from tvm_fusion import zoo

    assert list((tmp_path / f"pieces-v{zoo.GRAPH_VERSION}").glob("*.json"))
    assert list((tmp_path / f"graphs-v{graphs.GRAPH_VERSION}" / "networks").glob("*.json"))
    assert graphs.network_graph("nb201", "cifar10", (0, 2, 3, 4, 1, 2)).fingerprint() == g.fingerprint()
    d = features.to_data(g)
    assert d.x.shape[0] == len(g) and d.edge_index.shape[1] == len(g.edges)


@pytest.mark.parametrize("family,task", [("nb201", "cifar10"), ("tnb101", "class_scene")])
def test_builders_read_the_encodings_as_the_benchmark_does(family, task):
    """Our networks' FLOPs must rank like the data file's: a misread op order or edge order
    (as TransNAS-Bench-101's once was here, SRCC 0.15-0.32) builds different networks."""
    from predictor import graphs
    from predictor.model import spearman

    recs = [r for r in data.subsample(data.load_family(family), 40, seed=2) if r.task == task]
    ours = [graphs.network_graph(r.family, r.task, r.arch).total_flops for r in recs]
    assert spearman(ours, [r.flops for r in recs]) > 0.7
