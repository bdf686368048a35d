"""NAS-Bench-301 (DARTS) networks: stem -> normal, reduce, normal, reduce, normal cells -> GAP -> FC.

The benchmark stacks 8 cells (C = 32); we use one normal cell per stage (5 cells, C = 16) to
keep graphs small; each cell type still appears, so the genotype is fully represented.
A cell preprocesses its two inputs with 1x1 ReLUConvBN (a stride-2 one when the previous
previous input is at twice the resolution; DARTS uses FactorizedReduce there), builds 4 nodes
each summing two (input, op) edges, and concatenates the 4 nodes. In reduction cells the edges
from the cell inputs have stride 2; skip_connect with stride 2 is a stride-2 1x1 ReLUConvBN.
"""

from __future__ import annotations

import torch
from torch import nn

from .ops import BackboneHead, ReLUConvBN

OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
       "dil_conv_3x3", "dil_conv_5x5")


def sep_conv(c: int, k: int, stride: int) -> nn.Sequential:
    """DARTS separable conv: (ReLU, depthwise kxk, pointwise 1x1, BN) twice."""
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(c, c, k, stride, k // 2, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c),
        nn.ReLU(), nn.Conv2d(c, c, k, 1, k // 2, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c))


def dil_conv(c: int, k: int, stride: int) -> nn.Sequential:
    """DARTS dilated conv: ReLU, depthwise kxk dilation 2, pointwise 1x1, BN."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, stride, k - 1, dilation=2, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))


def make_op(code: int, c: int, stride: int) -> nn.Module:
    if code == 0:
        return nn.MaxPool2d(3, stride, 1)
    if code == 1:
        return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    if code == 2:
        return nn.Identity() if stride == 1 else ReLUConvBN(c, c, 1, stride)
    if code in (3, 4):
        return sep_conv(c, 3 if code == 3 else 5, stride)
    if code in (5, 6):
        return dil_conv(c, 3 if code == 5 else 5, stride)
    raise ValueError(f"NAS-Bench-301 op code {code} out of range; codes index {OPS}")


class DartsCell(nn.Module):
    def __init__(self, pairs, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.pre0 = ReLUConvBN(c_pp, c, 1, 2 if reduction_prev else 1)
        self.pre1 = ReLUConvBN(c_p, c, 1)
        self.inputs = []
        self.ops = nn.ModuleList()
        for k, (src, code) in enumerate(pairs):
            if not 0 <= src < 2 + k // 2:
                raise ValueError(f"NAS-Bench-301 edge {k} reads node {src}, which is not built yet")
            self.inputs.append(int(src))
            self.ops.append(make_op(int(code), c, 2 if reduction and src < 2 else 1))

    def forward(self, s0, s1):
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(4):
            a, b = 2 * node, 2 * node + 1
            states.append(self.ops[a](states[self.inputs[a]]) + self.ops[b](states[self.inputs[b]]))
        return torch.cat(states[2:], 1)


class DartsBackbone(nn.Module):
    def __init__(self, genotype, channels: int = 16):
        super().__init__()
        normal, reduce = genotype
        self.stem = nn.Sequential(nn.Conv2d(3, 3 * channels, 3, 1, 1, bias=False), nn.BatchNorm2d(3 * channels))
        c_pp, c_p, c = 3 * channels, 3 * channels, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        for kind in ("n", "r", "n", "r", "n"):
            reduction = kind == "r"
            if reduction:
                c *= 2
            self.cells.append(DartsCell(reduce if reduction else normal, c_pp, c_p, c, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, 4 * c
        self.out_channels = c_p

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return s1


class NB301Network(BackboneHead):
    def __init__(self, genotype, num_classes: int = 10, channels: int = 16):
        backbone = DartsBackbone(genotype, channels)
        super().__init__(backbone, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                                 nn.Linear(backbone.out_channels, num_classes)))
