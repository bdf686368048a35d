"""Cost model (C++ via tvm-ffi) against hand-worked numbers (docs/cost_model.md), plus
invariants on random DAGs. All accelerators use 1 byte per element, so bytes = elements."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tvm_fusion.graph import GLOBAL, ROW_LOCAL, WINDOWED, OpGraph, OpNode, TensorInfo
from tvm_fusion.hardware import Accelerator, FusionType, parse_size

cost = pytest.importorskip("tvm_fusion.cost", reason="C++ cost model not built (pip install -e .)")
CostModel = cost.CostModel


# ---- a tiny graph builder --------------------------------------------------------------
class G:
    """Builds an OpGraph op by op; tensor 0.. are graph inputs given to the constructor."""

    def __init__(self, *input_shapes):
        self.tensors = [TensorInfo(i, f"x{i}", s, "float32", -1) for i, s in enumerate(input_shapes)]
        self.nodes: list[OpNode] = []

    def op(self, kind, inputs, out_shape, row_class=ROW_LOCAL, k=1, s=1, w=0, oc=1):
        nid, tid = len(self.nodes), len(self.tensors)
        self.nodes.append(OpNode(nid, f"{kind}_{nid}", kind, f"relax.{kind}", tuple(inputs), tid,
                                 row_class, weight_elems=w, weight_bytes=4 * w, out_channels=oc,
                                 kernel=(k, k), stride=(s, s)))
        self.tensors.append(TensorInfo(tid, f"t{tid}", tuple(out_shape), "float32", nid))
        return tid

    def conv(self, x, cout, k=3, s=1, groups=1):
        n, cin, h, w = self.tensors[x].shape
        return self.op("conv2d", (x,), (n, cout, h // s, w // s), WINDOWED, k, s,
                       w=cout * (cin // groups) * k * k, oc=cout)

    def graph(self, outputs=None):
        consumed = {t for n in self.nodes for t in n.inputs}
        if outputs is None:
            outputs = [t.id for t in self.tensors if t.producer >= 0 and t.id not in consumed]
        return OpGraph(self.nodes, self.tensors, outputs, "test")


def lbdf(b):
    return Accelerator(b, FusionType.LBDF)


def brr(b):
    return Accelerator(b, FusionType.BRR)


def conv_chain():
    # x 1x4x8x8 (R=32) -> conv3x3 4->8 (W=288) -> y1 1x8x8x8 (R=64) -> conv3x3 8->8 (W=576) -> y2
    g = G((1, 4, 8, 8))
    g.conv(g.conv(0, 8), 8)
    return g.graph()


def residual_block():
    # x 1x8x8x8 (R=64) -> conv3x3 (W=576) -> relu -> conv3x3 (W=576) -> add(., x)
    g = G((1, 8, 8, 8))
    y2 = g.op("relu", (g.conv(0, 8),), (1, 8, 8, 8))
    y3 = g.conv(y2, 8)
    g.op("add", (y3, 0), (1, 8, 8, 8))
    return g.graph()


def dw_separable():
    # x 1x8x8x8 -> depthwise 3x3 (W=72, 8 filters) -> pointwise 8->16 (W=128, 16 filters)
    g = G((1, 8, 8, 8))
    g.conv(g.conv(0, 8, groups=8), 16, k=1)
    return g.graph()


def squeeze_excite():
    # x 1x8x8x8 -> gap -> s 1x8x1x1 -> fc1 8->2 (W=16) -> fc2 2->8 (W=16) -> sigmoid -> mul(x, .)
    g = G((1, 8, 8, 8))
    s = g.op("mean", (0,), (1, 8, 1, 1), GLOBAL)
    c = g.op("sigmoid", (g.conv(g.conv(s, 2, k=1), 8, k=1),), (1, 8, 1, 1))
    g.op("multiply", (0, c), (1, 8, 8, 8))
    return g.graph()


# ---- hand-worked examples --------------------------------------------------------------
def test_conv_chain_lbdf():
    m = CostModel(conv_chain(), lbdf(1024))
    # rows held: x 3 (k+s-1) * 32 = 96, y1 3 * 64 = 192, y2 (output) 1 * 64 = 64 -> F_feat 352
    # F_beta = W 864 + 352 = 1216; F_D = x 256 + y2 512 + W 864 = 1632
    assert m.group_cost([0, 1]) == (1216, 1632, False)
    # singletons: conv0: 96 + 64 + 288 = 448, F_D 256 + 512 + 288 = 1056
    #             conv1: 192 + 64 + 576 = 832, F_D 512 + 512 + 576 = 1600
    assert m.group_cost([0]) == (448, 1056, True)
    assert m.group_cost([1]) == (832, 1600, True)
    assert m.no_fusion_dram() == 2656
    assert m.lower_bound_dram() == 1632
    assert m.unfusable() == []
    assert CostModel(conv_chain(), lbdf(512)).unfusable() == [1]
    # bytes_per_element scales every byte count
    assert CostModel(conv_chain(), Accelerator(4096, bytes_per_element=2)).group_cost([0, 1]) == \
        (2432, 3264, True)


def test_conv_chain_brr():
    # one filter: conv0 288/8 = 36, conv1 576/8 = 72 -> F_beta = 352 + 72 = 424
    assert CostModel(conv_chain(), brr(2048)).group_cost([0, 1]) == (424, 1632, True)  # W fits
    # B = 1024: W + F_feat = 1216 > B; no tensor held whole, lines = 352
    # h = floor((1024 - 72) / 352) = 2 rows, T = ceil(8 / 2) = 4: F_D = 768 + 4 * 864 = 4224
    assert CostModel(conv_chain(), brr(1024)).group_cost([0, 1]) == (424, 4224, True)
    # B = 400 < F_beta: does not fit, reported with h = 1: F_D = 768 + 8 * 864 = 7680
    assert CostModel(conv_chain(), brr(400)).group_cost([0, 1]) == (424, 7680, False)


def test_residual_block_skip_holds_five_rows():
    # lags: y1 = y2 = 2/8, y3 = 4/8; the add merges y3 (lag 0.5) with x (lag 0):
    # x needs 1 + ceil(0.5 * 8) = 5 rows (> 3 for conv0). F_feat = x 5*64 + y1 64 + y2 3*64
    # + y3 64 + y4 64 = 704; W = 1152 -> F_beta 1856; F_D = 512 + 512 + 1152 = 2176
    g = residual_block()
    assert CostModel(g, lbdf(2048)).group_cost(range(4)) == (1856, 2176, True)
    # without the add the skip is not a merge: x holds 3 rows, y3 becomes an output (1 row)
    # F_feat = 192 + 64 + 192 + 64 = 512; F_D = x 512 + out y3 512 + W 1152 (x read once)
    assert CostModel(g, lbdf(2048)).group_cost([0, 1, 2]) == (1664, 2176, True)
    # BRR, B = 1600: F_beta = 704 + 72 = 776; h = floor((1600 - 72) / 704) = 2, T = 4
    # F_D = 1024 + 4 * 1152 = 5632
    assert CostModel(g, brr(1600)).group_cost(range(4)) == (776, 5632, True)
    assert CostModel(g, brr(2048)).group_cost(range(4)) == (776, 2176, True)


def test_depthwise_separable():
    # x 3*64 = 192, y1 1*64 (1x1 conv), y2 out 1*128 -> F_feat 384; W = 72 + 128 = 200
    g = dw_separable()
    assert CostModel(g, lbdf(1024)).group_cost([0, 1]) == (584, 1736, True)
    # BRR: max filter = 72/8 = 9 -> F_beta 393; B = 512 < 584: h = floor(503 / 384) = 1,
    # T = 8: F_D = 512 + 1024 + 8 * 200 = 3136
    assert CostModel(g, brr(512)).group_cost([0, 1]) == (393, 3136, True)
    assert CostModel(g, lbdf(512)).group_cost([0, 1]) == (584, 1736, False)


def test_squeeze_excite_holds_x_whole():
    # lags: s = a = b = c = 1 (after the global pool), mul merges x (0) and c (1):
    # x needs 1 + ceil(1 * 8) = 9 -> min(8, 9) = 8 rows: 512; s 8, a 2, b 8, c 8, y out 64
    # F_feat = 602, W = 32 -> F_beta 634, F_D = 512 + 512 + 32 = 1056
    g = squeeze_excite()
    assert CostModel(g, lbdf(640)).group_cost(range(5)) == (634, 1056, True)
    # BRR, B = 620: one filter max(16/2, 16/8) = 8 -> F_beta 610; whole = x 512 + s,a,b,c 26
    # = 538, lines = y 64: h = floor((620 - 8 - 538) / 64) = 1, T = 8 -> F_D 1024 + 8 * 32 = 1280
    assert CostModel(g, brr(620)).group_cost(range(5)) == (610, 1280, True)
    assert CostModel(g, brr(600)).group_cost(range(5)) == (610, 1280, False)
    assert CostModel(g, brr(640)).group_cost(range(5)) == (610, 1056, True)
    # the mean alone is a streamed reduction: x 1 row (64) + s 8 = 72, F_D = 512 + 8
    assert CostModel(g, lbdf(640)).group_cost([0]) == (72, 520, True)


def test_non_reduction_global_holds_its_input_whole():
    # reshape x 1x8x8x8 -> 1x512 (H = 1): x held whole 512 + output row 512 = 1024
    g = G((1, 8, 8, 8))
    g.op("reshape", (0,), (1, 512), GLOBAL)
    assert CostModel(g.graph(), lbdf(1024)).group_cost([0]) == (1024, 1024, True)


# ---- API behaviour ---------------------------------------------------------------------
def test_batch_equals_single_and_cache_and_order():
    g = residual_block()
    groups = [(0,), (0, 1), (1, 2, 3), (3, 2, 1, 0), (2,), (0, 1)]
    for cache in (True, False):
        m = CostModel(g, brr(1600), cache=cache)
        batch = m.evaluate(groups)
        assert len(batch) == len(groups)
        for i, grp in enumerate(groups):
            assert m.group_cost(grp) == (batch.buffer_bytes[i], batch.dram_bytes[i], batch.fits[i])
        assert batch.buffer_bytes.dtype == np.int64 and batch.fits.dtype == bool
    assert CostModel(g, brr(1600)).evaluate([]).buffer_bytes.shape == (0,)


@pytest.mark.parametrize("bad, match", [
    ([[0, 7]], "node id 7"), ([[-1]], "node id -1"), ([[0, 0]], "twice"), ([[]], "empty"),
    ([["a"]], "int node ids"), ([3], "iterable of node ids"),
])
def test_bad_groups_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        CostModel(conv_chain(), lbdf(1024), cache=False).evaluate(bad)
    with pytest.raises(ValueError, match=match):
        CostModel(conv_chain(), lbdf(1024)).evaluate(bad)


def test_bad_graph_raises():
    g = conv_chain()
    g.nodes[1] = OpNode(1, "conv", "conv2d", "relax.nn.conv2d", (2,), 2, WINDOWED, kernel=(3, 3))
    with pytest.raises(ValueError, match="node 1 reads tensor 2"):
        CostModel(g, lbdf(1024))
    with pytest.raises(TypeError, match="Accelerator"):
        CostModel(conv_chain(), 1024)


def test_accelerator_and_parse_size():
    assert parse_size("128KB") == parse_size("128 KiB") == parse_size(131072) == 131072
    assert parse_size("256 KB") == 262144 and parse_size("1MiB") == parse_size("1MB") == 1 << 20
    assert parse_size("131072") == 131072
    for bad in ("12 parsecs", "", "-1KB", "0", "1.5B"):
        with pytest.raises(ValueError):
            parse_size(bad)
    a = Accelerator.preset("BRR-256KB")
    assert a == Accelerator(262144, FusionType.BRR, 1) and str(a) == "BRR 256KB buffer, 1 B/element"
    assert Accelerator("128KB", "lbdf").buffer_bytes == 131072
    with pytest.raises(ValueError, match="preset"):
        Accelerator.preset("tpu-1mb")
    with pytest.raises(ValueError, match="fusion"):
        Accelerator(1024, "xyz")
    with pytest.raises(ValueError, match="buffer_bytes"):
        Accelerator(0)
    with pytest.raises(ValueError, match="bytes_per_element"):
        Accelerator(1024, bytes_per_element=0)


# ---- invariants on random DAGs ---------------------------------------------------------
def random_graph(n, seed):
    """Random DAG with convs (k 1/3/5, stride 1/2), pools, relus, merges and global pools."""
    rng = random.Random(seed)
    g = G((1, rng.choice([3, 8]), 16, 16))
    for _ in range(n):
        src = len(g.tensors) - 1 if rng.random() < 0.7 else rng.randrange(len(g.tensors))
        shape = g.tensors[src].shape
        r = rng.random()
        if r < 0.35:
            g.conv(src, rng.choice([4, 8, 16]), k=rng.choice([1, 3, 5]),
                   s=2 if shape[2] > 2 and rng.random() < 0.2 else 1)
        elif r < 0.5:
            g.op("relu", (src,), shape)
        elif r < 0.6:
            g.op("max_pool2d", (src,), shape, WINDOWED, k=3)
        elif r < 0.7:
            g.op(rng.choice(["mean", "reshape"]), (src,), shape[:2] + (1, 1), GLOBAL)
        else:
            same = [t.id for t in g.tensors if t.shape == shape and t.id != src]
            if same:
                g.op(rng.choice(["add", "multiply"]), (src, rng.choice(same)), shape)
            else:
                g.op("relu", (src,), shape)
    return g.graph()


@pytest.mark.parametrize("seed", range(6))
def test_random_dag_invariants(seed):
    rng = np.random.default_rng(seed)
    graph = random_graph(25, seed)
    n = len(graph.nodes)
    huge = 1 << 40
    for acc in (lbdf(huge), brr(huge)):
        m = CostModel(graph, acc)
        assert m.group_cost(range(n))[1] == m.lower_bound_dram()
        assert m.no_fusion_dram() >= m.lower_bound_dram()
    # intervals of a topological order are convex; merging two adjacent ones never adds traffic
    triples = [tuple(sorted(rng.choice(np.arange(n + 1), 3, replace=False))) for _ in range(40)]
    for size in (256, 2048, 16384):
        ml, mb = CostModel(graph, lbdf(size)), CostModel(graph, brr(size))
        for i, j, k in triples:
            if i == j or j == k:
                continue
            a, b, ab = range(i, j), range(j, k), range(i, k)
            cl = ml.evaluate([a, b, ab])
            assert cl.dram_bytes[2] <= cl.dram_bytes[0] + cl.dram_bytes[1]
            cb = mb.evaluate([a, b, ab])
            assert np.all(cb.dram_bytes >= cl.dram_bytes)
            assert np.all(cb.fits[cl.fits])
            assert np.all(cb.buffer_bytes <= cl.buffer_bytes)
        groups = [tuple(int(v) for v in rng.choice(n, rng.integers(1, 8), replace=False))
                  for _ in range(50)]
        batch = mb.evaluate(groups)
        single = [mb.group_cost(grp) for grp in groups]
        assert [s[:2] for s in single] == list(zip(batch.buffer_bytes, batch.dram_bytes))


def test_cost_model_version_follows_the_source_not_the_checkout(tmp_path, monkeypatch):
    """Saved fusion benchmark rows are keyed by this version: the same source in another
    checkout must key the same, an edited source differently."""
    from tvm_fusion import cost

    shipped = cost.cost_model_version()
    copy = tmp_path / "elsewhere" / "cost_model.cc"
    copy.parent.mkdir()
    copy.write_bytes(cost.COST_SOURCE.read_bytes())
    monkeypatch.setattr(cost, "COST_SOURCE", copy)
    assert cost.cost_model_version() == shipped
    copy.write_bytes(cost.COST_SOURCE.read_bytes() + b"\n// edited\n")
    assert cost.cost_model_version() != shipped
    monkeypatch.setattr(cost, "COST_SOURCE", tmp_path / "missing.cc")
    with pytest.raises(FileNotFoundError, match="source checkout"):
        cost.cost_model_version()
