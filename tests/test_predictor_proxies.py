import math

import pytest
import torch
from torch import nn

from predictor.proxies import nwot, synflow


def test_synflow_is_depth_times_output_for_homogeneous_net():
    # bias-free linear/ReLU net with |params| is 1-homogeneous in each layer's weights, so by
    # Euler's theorem sum(theta * dR/dtheta) over one layer = R, and the score = layers * R.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False))
    w1, w2 = net[0].weight.detach().abs().double(), net[2].weight.detach().abs().double()
    r = float((w2 @ (w1 @ torch.ones(3, dtype=torch.float64))).sum())
    assert synflow(net, (1, 3)) == pytest.approx(2 * r, rel=1e-9)
    assert net[0].weight.min() < 0  # the module itself is not modified


def test_nwot_hand_worked_kernel():
    # codes [1,0] and [0,1]: K = [[2,0],[0,2]], log det = log 4
    net = nn.Sequential(nn.ReLU())
    x = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    assert nwot(net, x) == pytest.approx(math.log(4.0))
    with pytest.raises(ValueError, match="no nn.ReLU"):
        nwot(nn.Sequential(nn.Identity()), x)
