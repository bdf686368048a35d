"""Torch builders for the benchmark search spaces: ``build(family, task, arch) -> (module, example_input)``.

Networks are built in eval mode on 1x3x32x32 inputs; their OpGraphs come from
``tvm_fusion.graph.from_torch`` exactly as a user's network would (see predictor.graphs).
"""

from __future__ import annotations

import torch

INPUT_SIZE = 32


def graph_task(family: str, task: str) -> str:
    """The part of the task that changes the network graph (the decoder), '' if none."""
    if family == "tnb101":
        from .tnb101 import decoder_id

        return decoder_id(task)
    if family == "nb201":
        return task  # the classifier width differs per dataset
    return ""


def canonical(family: str, arch) -> tuple:
    """The encoding with every cell edge that cannot reach the cell output set to Zero
    (:meth:`~predictor.spaces.ops.EdgeCell.canonical`): encodings with the same canonical form
    train the same function, so their benchmark labels differ by run-to-run noise only."""
    if family == "nb201":
        from .nb201 import canonical as cell_canonical
    elif family == "tnb101":
        from .tnb101 import canonical as cell_canonical
    else:
        raise ValueError(f"canonical forms are defined for the 6-edge cell families nb201 and tnb101, not {family!r}")
    return cell_canonical(arch)


def build(family: str, task: str, arch) -> tuple[torch.nn.Module, torch.Tensor]:
    """A network of ``family`` for ``task`` from a parsed encoding (predictor.data.parse_arch)."""
    if family == "nb201":
        from .nb201 import NUM_CLASSES, NB201Network

        net = NB201Network(arch, NUM_CLASSES.get(task, 10))
    elif family == "tnb101":
        from .tnb101 import TNB101Network

        net = TNB101Network(arch, task)
    elif family == "nb101":
        from .nb101 import NB101Network

        net = NB101Network(*arch)
    elif family == "nb301":
        from .nb301 import NB301Network

        net = NB301Network(arch)
    else:
        raise ValueError(f"unknown family {family!r}; known: nb101, nb201, nb301, tnb101")
    return net.eval(), torch.randn(1, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0))
