"""Zero-cost proxies on torch modules, for networks that are not in the benchmark data files.

* ``synflow`` (Tanaka et al. 2020, as a NAS proxy by Abdelfattah et al. 2021): with every
  parameter replaced by its absolute value and an all-ones input, R = sum(output);
  score = sum over weights of |theta * dR/dtheta|. Computed in float64, in eval mode.
* ``nwot`` (Mellor et al. 2021, "NASWOT"): for a batch of B inputs, the binary activation
  codes c_i of every ``nn.ReLU`` module give K_ij = c_i.c_j + (1-c_i).(1-c_j);
  score = log|det K|. Only ``nn.ReLU`` modules are observed (functional relu calls are not).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


def synflow(module: nn.Module, input_shape: tuple[int, ...]) -> float:
    """SynFlow score of ``module`` for one input of ``input_shape`` (batch dim included)."""
    net = copy.deepcopy(module).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad()
    out = net(torch.ones(input_shape, dtype=torch.float64))
    torch.sum(out).backward()
    score = 0.0
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)) and m.weight.grad is not None:
            score += float((m.weight * m.weight.grad).abs().sum())
    return score


def nwot(module: nn.Module, inputs: torch.Tensor) -> float:
    """NASWOT score: log|det K| of the ReLU activation-code kernel over the batch ``inputs``."""
    if inputs.shape[0] < 2:
        raise ValueError(f"nwot needs a batch of at least 2 inputs, got shape {tuple(inputs.shape)}")
    net = copy.deepcopy(module).eval()
    b = inputs.shape[0]
    kernel = torch.zeros(b, b, dtype=torch.float64)

    def hook(_mod, _inp, out):
        c = (out.detach().reshape(b, -1) > 0).double()
        kernel.add_(c @ c.t() + (1 - c) @ (1 - c).t())

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    if not handles:
        raise ValueError(f"nwot: {type(module).__name__} has no nn.ReLU modules to observe")
    try:
        with torch.no_grad():
            net(inputs)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = np.linalg.slogdet(kernel.numpy())
    return float(logdet) if sign != 0 else float("-inf")
