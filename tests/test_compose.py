"""compose_torch must give exactly the OpGraph that from_torch gives for the whole network."""

import pytest
import torch
from torch import nn

from tvm_fusion.compose import PieceCache, compose_torch
from tvm_fusion.graph import UnsupportedOpError, from_torch


class Branchy(nn.Module):
    """Two modules reading one tensor (their leading ReLUs become one node), an Identity,
    a concat and a scalar multiply: every splice path of the composer."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.a = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.b = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8))
        self.skip = nn.Identity()
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 5))

    def forward(self, x):
        s = self.stem(x)
        y = torch.cat([self.a(s), self.b(s), self.skip(s) * 0.5], 1)
        return self.head(self.pool(y) + 1.0)


def test_composed_graph_equals_direct_import():
    net, x = Branchy().eval(), torch.randn(1, 3, 16, 16)
    direct = from_torch(net, x)
    composed = compose_torch(net, x)
    assert composed.fingerprint() == direct.fingerprint()
    assert [n.kind for n in composed].count("relu") == 1  # a's and b's ReLU of s merged, as in Relax
    assert composed.total_flops == direct.total_flops
    assert composed.total_weight_bytes == direct.total_weight_bytes
    assert len({n.name for n in composed}) == len(composed)


def test_pieces_are_imported_once_and_reloaded_from_disk(tmp_path):
    net, x = Branchy().eval(), torch.randn(1, 3, 16, 16)
    cache = PieceCache(tmp_path)
    g = compose_torch(net, x, cache)
    first = cache.imports
    assert first > 0 and len(list(tmp_path.glob("*.json"))) == first
    assert compose_torch(net, x, cache).fingerprint() == g.fingerprint() and cache.imports == first
    fresh = PieceCache(tmp_path)
    assert compose_torch(net, x, fresh).fingerprint() == g.fingerprint() and fresh.imports == 0
    # other shapes are other pieces
    compose_torch(net, torch.randn(1, 3, 8, 8), fresh)
    assert fresh.imports > 0


def test_parameter_read_in_forward_is_a_clear_error():
    class RawParam(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(4))

        def forward(self, x):
            return x * self.w

    with pytest.raises(UnsupportedOpError, match="reads a parameter.*wrap that code in a module"):
        compose_torch(RawParam(), torch.randn(1, 4))


FAMILY_CASES = [("nb201", "cifar100", (0, 2, 3, 4, 1, 2)), ("tnb101", "segmentsemantic", (3, 0, 1, 2, 2, 1))]
SLOW_CASES = [("tnb101", "room_layout", (1, 1, 1, 1, 1, 1)), ("tnb101", "class_object", (0, 1, 1, 1, 1, 0))]


def _check_family(family, task, arch):
    from predictor import spaces

    net, x = spaces.build(family, task, arch)
    assert compose_torch(net, x).fingerprint() == from_torch(net, x).fingerprint()


@pytest.mark.parametrize("family,task,arch", FAMILY_CASES)
def test_benchmark_networks_compose_exactly(family, task, arch):
    _check_family(family, task, arch)


@pytest.mark.slow
@pytest.mark.parametrize("family,task,arch", SLOW_CASES)
def test_dead_cells_compose_exactly(family, task, arch):
    _check_family(family, task, arch)


@pytest.mark.slow
def test_every_family_composes_exactly():
    from predictor import data

    for family in ("nb101", "nb301"):
        for r in data.subsample(data.load_family(family), 2, seed=3):
            _check_family(family, r.task, r.arch)
