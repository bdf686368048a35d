"""Shared test setup: one torch thread (the machine is shared) and a fixed seed."""

import random

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def seed() -> int:
    """Seeds python, numpy and torch RNGs; returns the seed for code under test."""
    s = 0
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
    return s
