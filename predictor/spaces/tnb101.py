"""TransNAS-Bench-101 micro networks: stem -> macro skeleton "41414" of cells -> task decoder.

Skeleton (as the benchmark's "64-41414" code): a stride-2 conv stem to 64 channels, then five
cells whose digits mean 4 = halve H/W and double channels, 1 = keep. In a reducing cell the
edges leaving the cell input carry the stride and channel change (the Identity edge becomes a
1x1 ReLUConvBN projection there). Decoders per task, as in the benchmark's Taskonomy setup:

* ``class_scene`` (47 classes), ``class_object`` (100), ``jigsaw`` (1000 permutations):
  global average pool + linear classifier. (The benchmark's jigsaw runs a siamese encoder
  over 9 tiles; we keep one encoder pass, so jigsaw differs from the other heads in width only.)
* ``room_layout``: global pool + two-layer MLP regressor (9 outputs).
* ``autoencoder``, ``normal`` (3 output channels), ``segmentsemantic`` (17): a generative
  decoder that upsamples back to the input resolution with conv-BN-ReLU stages.

Input 32x32 (the benchmark uses 256x256 / 720x1080 crops; the graph structure is the same).
"""

from __future__ import annotations

from torch import nn

from .ops import BackboneHead, EdgeCell, ReLUConvBN, conv_bn_relu

#: op code -> name in the data file's encoding, which is TransNAS-Bench-101's own
#: ("64-41414-a_bc_def": 0 zero, 1 skip, 2 conv1x1, 3 conv3x3), edges listed per target node:
#: (1,2), (1,3), (2,3), (1,4), (2,4), (3,4). (Checked on the data: its FLOPs are exactly additive
#: with code 3 costing ~9x code 2, and code 1 costing extra only on edges leaving the cell input.)
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")
#: file edge k -> EdgeCell.EDGES index (NB201 order (1,2),(1,3),(1,4),(2,3),(2,4),(3,4))
_TO_EDGECELL = (0, 1, 3, 2, 4, 5)
MACRO = "41414"
BASE_CHANNELS = 64

#: task -> (decoder kind, output size)
DECODERS = {
    "class_scene": ("classifier", 47),
    "class_object": ("classifier", 100),
    "jigsaw": ("classifier", 1000),
    "room_layout": ("regressor", 9),
    "autoencoder": ("dense", 3),
    "normal": ("dense", 3),
    "segmentsemantic": ("dense", 17),
}


def decoder_id(task: str) -> str:
    """Tasks with the same decoder give the same graph (autoencoder and normal)."""
    kind, out = _decoder(task)
    return f"{kind}{out}"


def _decoder(task: str) -> tuple[str, int]:
    try:
        return DECODERS[task]
    except KeyError:
        raise ValueError(f"unknown TransNAS-Bench-101 task {task!r}; known: {sorted(DECODERS)}") from None


def make_edge_op(code: int, c_in: int, c_out: int, stride: int) -> nn.Module | None:
    if code == 0:
        return None
    if code == 1:
        return nn.Identity() if (c_in == c_out and stride == 1) else ReLUConvBN(c_in, c_out, 1, stride)
    if code == 2:
        return ReLUConvBN(c_in, c_out, 1, stride)
    if code == 3:
        return ReLUConvBN(c_in, c_out, 3, stride)
    raise ValueError(f"TransNAS-Bench-101 micro op code {code} out of range; codes index {OPS}")


class TNB101Network(BackboneHead):
    def __init__(self, codes, task: str):
        kind, out = _decoder(task)
        c = BASE_CHANNELS
        layers: list[nn.Module] = [conv_bn_relu(3, c // 2, 3, 2), conv_bn_relu(c // 2, c, 3, 1)]
        downs = 0
        for digit in MACRO:
            stride, c_out = (2, 2 * c) if digit == "4" else (1, c)
            downs += stride == 2

            def make(code, i, c=c, c_out=c_out, stride=stride):
                return make_edge_op(code, c, c_out, stride) if i == 0 else make_edge_op(code, c_out, c_out, 1)

            cell = EdgeCell(_edgecell_codes(codes), make)
            if not cell.output_live and (stride != 1 or c_out != c):
                # a dead cell must still change the shape: a zero-weighted projection keeps it
                cell = nn.Sequential(nn.Conv2d(c, c_out, 1, stride, bias=False), _Scale0())
            layers.append(cell)
            c = c_out
        head: list[nn.Module] = []
        if kind == "classifier":
            head += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, out)]
        elif kind == "regressor":
            head += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 512), nn.ReLU(), nn.Linear(512, out)]
        else:  # dense: upsample back to input resolution (stem /2 and one /2 per reducing cell)
            for _ in range(downs + 1):
                head += [nn.Upsample(scale_factor=2, mode="nearest"), conv_bn_relu(c, c // 2, 3)]
                c //= 2
            head.append(nn.Conv2d(c, out, 3, 1, 1))
        super().__init__(nn.Sequential(*layers), nn.Sequential(*head))


def _edgecell_codes(codes) -> tuple:
    """The file's node-wise edge order -> EdgeCell's (NB201) edge order."""
    out = [0] * 6
    for k, c in enumerate(codes):
        out[_TO_EDGECELL[k]] = c
    return tuple(out)


def canonical(codes) -> tuple:
    """:meth:`EdgeCell.canonical` of an encoding, in the file's edge order."""
    cell = EdgeCell.canonical(_edgecell_codes(codes), OPS.index("none"))
    return tuple(cell[_TO_EDGECELL[k]] for k in range(6))


class _Scale0(nn.Module):
    """Multiplies by zero: the output of a cell whose every path is a Zero op."""

    def forward(self, x):
        return x * 0.0
