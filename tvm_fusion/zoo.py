"""Model zoo: the paper's benchmark networks as plain torch modules, and their OpGraphs.

Architectures follow torchvision's definitions (same layer shapes, so the same parameter
counts) but are written here in plain torch: no torchvision dependency, no pretrained
weights (fusion and performance prediction depend on shapes only). Weights are randomly
initialised under a fixed seed. ``deeplabv3plus_mobilenetv3`` is DeepLabV3+ (ASPP plus a
low-level-feature decoder) on a dilated MobileNetV3-Large backbone (output stride 16).

``opgraph(name)`` imports a network through ``graph.from_torch`` and caches the OpGraph as
JSON (importing the large nets takes seconds to minutes).
"""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F

from .graph import OpGraph, from_torch, read_cached, write_cached

#: Bump when the zoo definitions or the OpGraph importer change what a graph contains;
#: cached graphs of other versions are ignored.
GRAPH_VERSION = 3


# ---- building blocks -------------------------------------------------------------------

def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding (to a multiple of 8, never more than 10% down)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _conv_bn_act(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, dilation: int = 1,
                 act: Callable[[], nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, (k - 1) // 2 * dilation, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


# ---- ResNet -----------------------------------------------------------------------------

class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn_act(cin, planes, 3, stride), _conv_bn_act(planes, planes, 3, act=None))
        self.down = None
        if stride != 1 or cin != planes:
            self.down = _conv_bn_act(cin, planes, 1, stride, act=None)

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        return F.relu(self.body(x) + identity)


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        cout = planes * 4
        self.body = nn.Sequential(_conv_bn_act(cin, planes, 1), _conv_bn_act(planes, planes, 3, stride),
                                  _conv_bn_act(planes, cout, 1, act=None))
        self.down = None
        if stride != 1 or cin != cout:
            self.down = _conv_bn_act(cin, cout, 1, stride, act=None)

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        return F.relu(self.body(x) + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers: list[int], num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_bn_act(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], 64
        for i, n in enumerate(layers):
            planes = 64 * 2 ** i
            for j in range(n):
                stages.append(block(cin, planes, 2 if (j == 0 and i > 0) else 1))
                cin = planes * block.expansion
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---- VGG / SqueezeNet ---------------------------------------------------------------------

class VGG16(nn.Module):
    CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in self.CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
                cin = v
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(nn.Linear(512 * 49, 4096), nn.ReLU(), nn.Dropout(),
                                        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
                                        nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class _Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.e1 = nn.Conv2d(squeeze, e1, 1)
        self.e3 = nn.Conv2d(squeeze, e3, 3, padding=1)

    def forward(self, x):
        s = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.e1(s)), F.relu(self.e3(s))], 1)


class SqueezeNet10(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        pool = partial(nn.MaxPool2d, 3, 2, ceil_mode=True)
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 7, 2), nn.ReLU(), pool(),
            _Fire(96, 16, 64, 64), _Fire(128, 16, 64, 64), _Fire(128, 32, 128, 128), pool(),
            _Fire(256, 32, 128, 128), _Fire(256, 48, 192, 192), _Fire(384, 48, 192, 192),
            _Fire(384, 64, 256, 256), pool(), _Fire(512, 64, 256, 256))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, num_classes, 1), nn.ReLU(),
                                        nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


# ---- MobileNetV2 ----------------------------------------------------------------------

class _InvertedResidualV2(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = int(round(cin * expand))
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_act(cin, hidden, 1, act=nn.ReLU6))
        layers += [_conv_bn_act(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   _conv_bn_act(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    SETTINGS = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                [6, 160, 3, 2], [6, 320, 1, 1]]

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_act(3, 32, 3, 2, act=nn.ReLU6)]
        cin = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(_InvertedResidualV2(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_conv_bn_act(cin, 1280, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# ---- MobileNetV3 / EfficientNet ---------------------------------------------------------

class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeeze: int, act: Callable[[], nn.Module],
                 gate: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.act, self.gate = act(), gate()

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class _InvertedResidualV3(nn.Module):
    def __init__(self, cin: int, k: int, hidden: int, cout: int, se: bool, act: str, stride: int,
                 dilation: int) -> None:
        super().__init__()
        act_layer = nn.Hardswish if act == "HS" else nn.ReLU
        layers: list[nn.Module] = []
        if hidden != cin:
            layers.append(_conv_bn_act(cin, hidden, 1, act=act_layer))
        stride = 1 if dilation > 1 else stride
        layers.append(_conv_bn_act(hidden, hidden, k, stride, groups=hidden, dilation=dilation, act=act_layer))
        if se:
            layers.append(_SqueezeExcite(hidden, _make_divisible(hidden // 4), nn.ReLU, nn.Hardsigmoid))
        layers.append(_conv_bn_act(hidden, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


# (cin, kernel, expanded, cout, SE, activation, stride, dilated-in-segmentation)
_V3_LARGE = [(16, 3, 16, 16, False, "RE", 1, False), (16, 3, 64, 24, False, "RE", 2, False),
             (24, 3, 72, 24, False, "RE", 1, False), (24, 5, 72, 40, True, "RE", 2, False),
             (40, 5, 120, 40, True, "RE", 1, False), (40, 5, 120, 40, True, "RE", 1, False),
             (40, 3, 240, 80, False, "HS", 2, False), (80, 3, 200, 80, False, "HS", 1, False),
             (80, 3, 184, 80, False, "HS", 1, False), (80, 3, 184, 80, False, "HS", 1, False),
             (80, 3, 480, 112, True, "HS", 1, False), (112, 3, 672, 112, True, "HS", 1, False),
             (112, 5, 672, 160, True, "HS", 2, True), (160, 5, 960, 160, True, "HS", 1, True),
             (160, 5, 960, 160, True, "HS", 1, True)]
_V3_SMALL = [(16, 3, 16, 16, True, "RE", 2, False), (16, 3, 72, 24, False, "RE", 2, False),
             (24, 3, 88, 24, False, "RE", 1, False), (24, 5, 96, 40, True, "HS", 2, False),
             (40, 5, 240, 40, True, "HS", 1, False), (40, 5, 240, 40, True, "HS", 1, False),
             (40, 5, 120, 48, True, "HS", 1, False), (48, 5, 144, 48, True, "HS", 1, False),
             (48, 5, 288, 96, True, "HS", 2, True), (96, 5, 576, 96, True, "HS", 1, True),
             (96, 5, 576, 96, True, "HS", 1, True)]


def _mobilenet_v3_features(config, dilated: bool) -> nn.Sequential:
    """Stem, bottlenecks and the final 1x1 conv (6x channels); ``dilated`` gives output stride 16."""
    layers: list[nn.Module] = [_conv_bn_act(3, 16, 3, 2, act=nn.Hardswish)]
    for cin, k, hidden, cout, se, act, stride, dil in config:
        layers.append(_InvertedResidualV3(cin, k, hidden, cout, se, act, stride, 2 if (dilated and dil) else 1))
    last = config[-1][3]
    layers.append(_conv_bn_act(last, 6 * last, 1, act=nn.Hardswish))
    return nn.Sequential(*layers)


class MobileNetV3(nn.Module):
    def __init__(self, config, last_channel: int, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = _mobilenet_v3_features(config, dilated=False)
        c = 6 * config[-1][3]
        self.classifier = nn.Sequential(nn.Linear(c, last_channel), nn.Hardswish(), nn.Dropout(0.2),
                                        nn.Linear(last_channel, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class _MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = _make_divisible(cin * expand)
        layers: list[nn.Module] = []
        if hidden != cin:
            layers.append(_conv_bn_act(cin, hidden, 1, act=nn.SiLU))
        layers += [_conv_bn_act(hidden, hidden, k, stride, groups=hidden, act=nn.SiLU),
                   _SqueezeExcite(hidden, max(1, cin // 4), nn.SiLU, nn.Sigmoid),
                   _conv_bn_act(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class EfficientNet(nn.Module):
    # (expand ratio, kernel, stride, cin, cout, layers) of EfficientNet-B0
    STAGES = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
              (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]

    def __init__(self, width: float, depth: float, num_classes: int = 1000) -> None:
        super().__init__()
        ch = lambda c: _make_divisible(c * width)  # noqa: E731
        layers: list[nn.Module] = [_conv_bn_act(3, ch(32), 3, 2, act=nn.SiLU)]
        for expand, k, stride, cin, cout, n in self.STAGES:
            cin, cout = ch(cin), ch(cout)
            for i in range(int(math.ceil(n * depth))):
                layers.append(_MBConv(cin if i == 0 else cout, cout, k, stride if i == 0 else 1, expand))
        last_in = ch(320)
        layers.append(_conv_bn_act(last_in, 4 * last_in, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(4 * last_in, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# ---- DeepLabV3+ -------------------------------------------------------------------------

class _ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and image pooling, projected."""

    def __init__(self, cin: int, cout: int = 256, rates=(6, 12, 18)) -> None:
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn_act(cin, cout, 1)] +
                                      [_conv_bn_act(cin, cout, 3, dilation=r) for r in rates])
        self.pool = _conv_bn_act(cin, cout, 1)
        self.project = nn.Sequential(_conv_bn_act(cout * (len(rates) + 2), cout, 1), nn.Dropout(0.5))

    def forward(self, x):
        outs = [b(x) for b in self.branches]
        pooled = self.pool(F.adaptive_avg_pool2d(x, 1))
        outs.append(F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.project(torch.cat(outs, 1))


class DeepLabV3PlusMobileNetV3(nn.Module):
    """DeepLabV3+ with a dilated MobileNetV3-Large backbone; low-level features at stride 4."""

    LOW_LEVEL = 4  # features[:4] ends at stride 4 (24 channels)

    def __init__(self, num_classes: int = 21) -> None:
        super().__init__()
        feats = _mobilenet_v3_features(_V3_LARGE, dilated=True)
        self.low = feats[:self.LOW_LEVEL]
        self.high = feats[self.LOW_LEVEL:]
        self.aspp = _ASPP(960)
        self.low_proj = _conv_bn_act(24, 48, 1)
        self.decoder = nn.Sequential(_conv_bn_act(256 + 48, 256, 3), _conv_bn_act(256, 256, 3),
                                     nn.Conv2d(256, num_classes, 1))

    def forward(self, x):
        low = self.low(x)
        high = self.aspp(self.high(low))
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        out = self.decoder(torch.cat([high, self.low_proj(low)], 1))
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


# ---- registry -----------------------------------------------------------------------------

_BUILDERS: dict[str, tuple[Callable[[], nn.Module], int]] = {
    "resnet18": (lambda: ResNet(_BasicBlock, [2, 2, 2, 2]), 224),
    "resnet50": (lambda: ResNet(_Bottleneck, [3, 4, 6, 3]), 224),
    "resnet101": (lambda: ResNet(_Bottleneck, [3, 4, 23, 3]), 224),
    "resnet152": (lambda: ResNet(_Bottleneck, [3, 8, 36, 3]), 224),
    "vgg16": (VGG16, 224),
    "squeezenet1_0": (SqueezeNet10, 224),
    "mobilenet_v2": (MobileNetV2, 224),
    "mobilenet_v3_small": (lambda: MobileNetV3(_V3_SMALL, 1024), 224),
    "mobilenet_v3_large": (lambda: MobileNetV3(_V3_LARGE, 1280), 224),
    "efficientnet_b0": (lambda: EfficientNet(1.0, 1.0), 224),
    "efficientnet_b3": (lambda: EfficientNet(1.2, 1.4), 300),
    "deeplabv3plus_mobilenetv3": (DeepLabV3PlusMobileNetV3, 513),
}

#: Names accepted by ``build`` and ``opgraph``.
NAMES: tuple[str, ...] = tuple(_BUILDERS)


def _check_name(name: str) -> None:
    if name not in _BUILDERS:
        raise KeyError(f"unknown zoo network {name!r}; choose one of {', '.join(NAMES)}")


def default_input_size(name: str) -> int:
    _check_name(name)
    return _BUILDERS[name][1]


def _hw(name: str, input_size) -> tuple[int, int]:
    size = default_input_size(name) if input_size is None else input_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 32 or w < 32:
        raise ValueError(f"input size {h}x{w} of {name!r} is too small (the nets downsample 32x)")
    return int(h), int(w)


def build(name: str, input_size=None, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """``(module in eval mode, example input (1, 3, H, W))``; weights seeded, global RNG untouched."""
    _check_name(name)
    h, w = _hw(name, input_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = _BUILDERS[name][0]()
        example = torch.randn(1, 3, h, w)
    return module.eval(), example


def cache_dir() -> Path:
    return Path(os.environ.get("TVM_FUSION_CACHE", Path.home() / ".cache" / "tvm_fusion"))


def opgraph(name: str, input_size=None, use_cache: bool = True, refresh: bool = False) -> OpGraph:
    """OpGraph of a zoo network at batch 1, read from / written to the JSON cache (keyed by
    name, input size and GRAPH_VERSION). ``refresh`` rebuilds and overwrites the entry."""
    h, w = _hw(name, input_size)
    path = cache_dir() / f"{name}_{h}x{w}_v{GRAPH_VERSION}.json"
    graph = read_cached(path) if use_cache and not refresh else None
    if graph is None:
        module, example = build(name, (h, w))
        graph = from_torch(module, (example,), name=name)
        if use_cache:
            write_cached(path, graph)
    return graph
