"""NAS-Bench-201 networks: stem (16 ch) -> 3 stages of N cells with residual reductions -> GAP -> FC.

The benchmark uses N = 5 cells per stage. We default to N = 1: the cell repeats identically,
so N = 1 keeps every structural difference between architectures while making the OpGraph
five times smaller (faster to build and to encode). Input 32x32.
"""

from __future__ import annotations

from torch import nn

from .ops import BackboneHead, EdgeCell, ReLUConvBN, ResidualReduction

#: op code -> name (NASLib's encoding order)
OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")


def canonical(codes) -> tuple:
    """:meth:`EdgeCell.canonical` of an encoding (already in EdgeCell's edge order)."""
    return EdgeCell.canonical(codes, OPS.index("none"))


def make_edge_op(code: int, channels: int) -> nn.Module | None:
    if code == 0:
        return nn.Identity()
    if code == 1:
        return None
    if code == 2:
        return ReLUConvBN(channels, channels, 3)
    if code == 3:
        return ReLUConvBN(channels, channels, 1)
    if code == 4:
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise ValueError(f"NAS-Bench-201 op code {code} out of range; codes index {OPS}")


class NB201Network(BackboneHead):
    def __init__(self, codes, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 1):
        stem = nn.Sequential(nn.Conv2d(3, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = [stem]
        c = channels
        for stage in range(3):
            if stage:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            for _ in range(cells_per_stage):
                layers.append(EdgeCell(codes, lambda code, i, c=c: make_edge_op(code, c)))
        head = [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
        super().__init__(nn.Sequential(*layers), nn.Sequential(*head))


NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}
