"""Model zoo: published parameter counts, layer counts, OpGraph import and its disk cache."""

import pytest
import torch
from torch import nn

from tvm_fusion import zoo

# torchvision's published parameter totals
PUBLISHED = {
    "resnet18": 11_689_512, "resnet50": 25_557_032, "resnet101": 44_549_160, "resnet152": 60_192_808,
    "vgg16": 138_357_544, "squeezenet1_0": 1_248_424, "mobilenet_v2": 3_504_872,
    "mobilenet_v3_small": 2_542_856, "mobilenet_v3_large": 5_483_032, "efficientnet_b0": 5_288_548,
    "efficientnet_b3": 12_233_232,
}


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _count(m: nn.Module, cls) -> int:
    return sum(isinstance(x, cls) for x in m.modules())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_match_published(name):
    m, x = zoo.build(name, 32)
    assert abs(_params(m) / PUBLISHED[name] - 1) < 0.005
    assert x.shape == (1, 3, 32, 32)


def test_layer_counts():
    m, _ = zoo.build("resnet50")
    assert _count(m, nn.Conv2d) == 53  # 49 + 4 downsample
    m, _ = zoo.build("vgg16")
    assert (_count(m, nn.Conv2d), _count(m, nn.Linear)) == (13, 3)
    m, _ = zoo.build("resnet18")
    assert _count(m, nn.Conv2d) == 20


def test_names_defaults_and_errors():
    assert set(PUBLISHED) | {"deeplabv3plus_mobilenetv3"} == set(zoo.NAMES)
    assert zoo.build("efficientnet_b3")[1].shape == (1, 3, 300, 300)
    assert zoo.default_input_size("deeplabv3plus_mobilenetv3") == 513
    with pytest.raises(KeyError, match="resnet18"):
        zoo.build("resnet19")


def test_build_is_seeded_and_leaves_global_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    m1, x1 = zoo.build("squeezenet1_0", 64)
    assert torch.equal(torch.rand(1), before)
    m2, x2 = zoo.build("squeezenet1_0", 64)
    assert torch.equal(x1, x2)
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))


def test_deeplab_forward_shape():
    m, x = zoo.build("deeplabv3plus_mobilenetv3", 65)
    with torch.no_grad():
        assert m(x).shape == (1, 21, 65, 65)


def _bn_channels(m: nn.Module) -> int:
    return sum(b.num_features for b in m.modules() if isinstance(b, nn.BatchNorm2d))


@pytest.mark.parametrize("name", ["resnet18", "squeezenet1_0", "mobilenet_v3_small"])
def test_opgraph_small_input(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TVM_FUSION_CACHE", str(tmp_path))
    g = zoo.opgraph(name, 64)
    m, _ = zoo.build(name, 64)
    assert sum(n.kind == "conv2d" for n in g.nodes) == _count(m, nn.Conv2d)
    assert sum(n.kind == "dense" for n in g.nodes) == _count(m, nn.Linear)
    # BN folding: gamma/beta (2 per channel) disappear, each BN'd conv gains 1 bias per channel
    assert sum(n.weight_elems for n in g.nodes) == _params(m) - _bn_channels(m)
    assert g.tensors[g.inputs[0]].shape == (1, 3, 64, 64)
    assert [g.tensors[o].shape for o in g.outputs] == [(1, 1000)]
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [f"{name}_64x64_v{zoo.GRAPH_VERSION}.json"]
    cached = zoo.opgraph(name, 64)  # second call reads the cache
    assert cached.nodes == g.nodes and cached.fingerprint() == g.fingerprint()


def test_cache_is_keyed_by_input_size(tmp_path, monkeypatch):
    monkeypatch.setenv("TVM_FUSION_CACHE", str(tmp_path))
    a, b = zoo.opgraph("squeezenet1_0", 64), zoo.opgraph("squeezenet1_0", (96, 64))
    assert a.tensors[0].shape == (1, 3, 64, 64) and b.tensors[0].shape == (1, 3, 96, 64)
    assert len(list(tmp_path.iterdir())) == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.NAMES)
def test_opgraph_full_size(name):
    """Every zoo net at its default size imports (uses the shared cache)."""
    g = zoo.opgraph(name)
    size = zoo.default_input_size(name)
    assert g.tensors[g.inputs[0]].shape == (1, 3, size, size)
    m, _ = zoo.build(name)
    assert sum(n.kind == "conv2d" for n in g.nodes) == _count(m, nn.Conv2d)
    assert sum(n.weight_elems for n in g.nodes) == _params(m) - _bn_channels(m)
