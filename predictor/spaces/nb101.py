"""NAS-Bench-101 networks: conv stem (128 ch) -> 3 stacks of cells, max-pool between stacks -> GAP -> FC.

The benchmark stacks 3 cells per stack; we use 1 (the cell repeats, so the structure is kept
and the graph is 3x smaller). Cell: 7-vertex DAG (vertex 0 input, 6 output) from the 7x7
upper-triangular adjacency. Vertices not on an input->output path are pruned, as the
benchmark does. The input reaches an interior vertex through a 1x1 projection; interior
vertices sum their inputs; the output concatenates the interior vertices that feed it and adds
a 1x1 projection of the input when the input feeds it directly. Every interior vertex has
C_out // k channels (k = interior vertices feeding the output), so sums never need the
benchmark's channel truncation; only rounding differs from its exact channel split.
"""

from __future__ import annotations

import torch
from torch import nn

from .ops import BackboneHead, conv_bn_relu

OPS = ("input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")


def prune(adj, ops) -> tuple[list[list[int]], list[int]]:
    """Drop vertices that are not on a path from vertex 0 to the last vertex."""
    n = len(ops)
    fwd, bwd = {0}, {n - 1}
    for j in range(n):
        if any(i in fwd and adj[i][j] for i in range(j)):
            fwd.add(j)
    for i in reversed(range(n)):
        if any(j in bwd and adj[i][j] for j in range(i + 1, n)):
            bwd.add(i)
    keep = sorted(fwd & bwd)
    if 0 not in keep or n - 1 not in keep:
        raise ValueError("NAS-Bench-101 cell has no path from input to output")
    return [[int(adj[i][j]) for j in keep] for i in keep], [int(ops[i]) for i in keep]


class NB101Cell(nn.Module):
    def __init__(self, adj, ops, c_in: int, c_out: int):
        super().__init__()
        self.adj, self.op_codes = prune(adj, ops)
        n = len(self.op_codes)
        feeding = [i for i in range(1, n - 1) if self.adj[i][n - 1]]
        self.c = c_out // max(len(feeding), 1)
        self.ops = nn.ModuleDict()
        self.proj = nn.ModuleDict()
        for v in range(1, n - 1):
            code = self.op_codes[v]
            if code == 2:
                self.ops[str(v)] = nn.MaxPool2d(3, 1, 1)
            elif code in (3, 4):
                self.ops[str(v)] = conv_bn_relu(self.c, self.c, 1 if code == 3 else 3)
            else:
                raise ValueError(f"NAS-Bench-101 interior vertex {v} has op code {code}; expected 2..4 of {OPS}")
            if self.adj[0][v]:
                self.proj[str(v)] = conv_bn_relu(c_in, self.c, 1)
        self.feeding = feeding
        # rounding: the real output width, reported to the next stage
        self.c_out = len(feeding) * self.c if feeding else c_out
        if self.adj[0][n - 1]:
            self.proj[str(n - 1)] = conv_bn_relu(c_in, self.c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.op_codes)
        vals: dict[int, torch.Tensor] = {}
        for v in range(1, n - 1):
            parts = [vals[i] for i in range(1, v) if self.adj[i][v] and i in vals]
            if str(v) in self.proj:
                parts.append(self.proj[str(v)](x))
            s = parts[0]
            for p in parts[1:]:
                s = s + p
            vals[v] = self.ops[str(v)](s)
        out = None
        if self.feeding:
            out = torch.cat([vals[i] for i in self.feeding], 1) if len(self.feeding) > 1 else vals[self.feeding[0]]
        if str(n - 1) in self.proj:
            p = self.proj[str(n - 1)](x)
            out = p if out is None else out + p
        return out


class NB101Network(BackboneHead):
    def __init__(self, adj, ops, num_classes: int = 10, channels: int = 128, cells_per_stack: int = 1):
        layers: list[nn.Module] = [conv_bn_relu(3, channels, 3)]
        c_in, c = channels, channels
        for stack in range(3):
            if stack:
                layers.append(nn.MaxPool2d(2, 2))
                c *= 2
            for _ in range(cells_per_stack):
                cell = NB101Cell(adj, ops, c_in, c)
                layers.append(cell)
                c_in = cell.c_out
        head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
        super().__init__(nn.Sequential(*layers), nn.Sequential(*head))
