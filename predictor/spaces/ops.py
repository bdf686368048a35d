"""Operations shared by the cell-based search spaces (NAS-Bench-201, TransNAS-Bench-101, DARTS)."""

from __future__ import annotations

import torch
from torch import nn


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BN, the edge op of NAS-Bench-201 / TransNAS-Bench-101."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1,
                 groups: int = 1):
        pad = dilation * (kernel - 1) // 2
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, pad, dilation, groups, bias=False),
                         nn.BatchNorm2d(c_out))


def conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Conv -> BN -> ReLU (stems, NAS-Bench-101 ops, decoders)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class ResidualReduction(nn.Module):
    """NAS-Bench-201's ResNet basic block between stages: halves H/W and doubles channels."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.a = ReLUConvBN(c_in, c_out, 3, 2)
        self.b = ReLUConvBN(c_out, c_out, 3, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


class EdgeCell(nn.Module):
    """A 4-node cell where node j = sum over i < j of op_ij(node i); output is node 3.

    ``make_op(code, i)`` returns the module of an edge leaving node ``i``, or ``None`` for the
    Zero op. Zero edges are dropped from the graph; a node with no live input is zero and
    propagates nothing (if the output node is dead, the cell emits ``0 * x``).
    """

    EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))

    def __init__(self, codes, make_op):
        super().__init__()
        if len(codes) != 6:
            raise ValueError(f"a 4-node cell needs 6 edge op codes, got {codes}")
        self.ops = nn.ModuleDict()
        live = {0}
        for (i, j), code in zip(self.EDGES, codes):
            if i not in live:
                continue
            op = make_op(int(code), i)
            if op is not None:
                self.ops[f"{i}_{j}"] = op
                live.add(j)
        self.output_live = 3 in live

    @classmethod
    def canonical(cls, codes, zero_code: int) -> tuple:
        """``codes`` with every edge whose head node cannot reach the output set to ``zero_code``.

        Such an edge never affects the output, so encodings with the same canonical form train the
        same function and differ only in the random initialisation of unused ops: their labels in a
        benchmark differ by run-to-run noise alone. (Edges leaving a node with no live input are
        kept: the op sees zeros, but a BatchNorm's learned shift can still pass a constant on.)
        """
        codes = tuple(int(c) for c in codes)
        reaches_output = {3}
        for (i, j), c in reversed(list(zip(cls.EDGES, codes))):  # sorted by tail: heads are settled first
            if c != zero_code and j in reaches_output:
                reaches_output.add(i)
        return tuple(c if j in reaches_output else zero_code for (_, j), c in zip(cls.EDGES, codes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: dict[int, torch.Tensor] = {0: x}
        for i, j in self.EDGES:
            key = f"{i}_{j}"
            if key in self.ops:
                y = self.ops[key](nodes[i])
                nodes[j] = y if j not in nodes else nodes[j] + y
        return nodes[3] if self.output_live else x * 0.0


class BackboneHead(nn.Module):
    """``head(backbone(x))``: the searched cells and the task decoder as two modules, so one
    backbone class serves every task of a family."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
