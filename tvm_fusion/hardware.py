"""The accelerator a fusion plan targets: on-chip buffer size, element width and fusion type.

The cost model (``tvm_fusion.cost``) reads only these three numbers; docs/cost_model.md says
how each enters the equations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class FusionType(str, Enum):
    """How a fused group keeps its data on chip (docs/cost_model.md)."""

    LBDF = "lbdf"  # line-buffer depth-first: all weights of the group stay on chip
    BRR = "brr"  # buffer requirement reduction: weights streamed, re-read per row tile


_UNITS = {"": 1, "B": 1, "KB": 1024, "KIB": 1024, "K": 1024, "MB": 1024**2, "MIB": 1024**2,
          "M": 1024**2, "GB": 1024**3, "GIB": 1024**3, "G": 1024**3}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str | int) -> int:
    """``"128KB"``, ``"256 KB"``, ``"1MiB"``, ``"131072"`` -> bytes (KB = KiB = 1024 bytes)."""
    if isinstance(text, bool):
        raise TypeError(f"buffer size must be a string like '128KB' or an int, got {text!r}")
    if isinstance(text, int):
        size = text
    else:
        match = _SIZE_RE.match(str(text))
        unit = match.group(2).upper() if match else None
        if match is None or unit not in _UNITS:
            raise ValueError(f"cannot parse size {text!r}: use a number with an optional unit "
                             f"B, KB/KiB, MB/MiB or GB/GiB (1 KB = 1024 bytes), e.g. '128KB'")
        value = float(match.group(1)) * _UNITS[unit]
        if value != int(value):
            raise ValueError(f"size {text!r} is not a whole number of bytes")
        size = int(value)
    if size <= 0:
        raise ValueError(f"size {text!r} must be positive")
    return size


def _format_size(n: int) -> str:
    for unit, scale in (("MB", 1024**2), ("KB", 1024)):
        if n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n}B"


@dataclass(frozen=True)
class Accelerator:
    """On-chip buffer of ``buffer_bytes``; every tensor element and weight takes
    ``bytes_per_element`` bytes (1 = int8, the paper's setting)."""

    buffer_bytes: int
    fusion: FusionType = FusionType.LBDF
    bytes_per_element: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.buffer_bytes, str):
            object.__setattr__(self, "buffer_bytes", parse_size(self.buffer_bytes))
        if isinstance(self.buffer_bytes, bool) or not isinstance(self.buffer_bytes, int) \
                or self.buffer_bytes <= 0:
            raise ValueError(f"Accelerator.buffer_bytes must be a positive int (or a size like "
                             f"'128KB'), got {self.buffer_bytes!r}")
        try:
            object.__setattr__(self, "fusion", FusionType(self.fusion))
        except ValueError:
            raise ValueError(f"Accelerator.fusion must be one of "
                             f"{[f.value for f in FusionType]}, got {self.fusion!r}") from None
        if isinstance(self.bytes_per_element, bool) or not isinstance(self.bytes_per_element, int) \
                or self.bytes_per_element <= 0:
            raise ValueError(f"Accelerator.bytes_per_element must be a positive int, got "
                             f"{self.bytes_per_element!r}")

    PRESETS = ("lbdf-64kb", "lbdf-128kb", "lbdf-256kb", "lbdf-512kb",
               "brr-64kb", "brr-128kb", "brr-256kb", "brr-512kb")

    @classmethod
    def preset(cls, name: str) -> "Accelerator":
        """``"<fusion>-<size>"``, e.g. ``"lbdf-128kb"`` or ``"brr-256kb"`` (int8 elements)."""
        key = str(name).strip().lower()
        if key not in cls.PRESETS:
            raise ValueError(f"unknown accelerator preset {name!r}; choose one of {list(cls.PRESETS)}")
        fusion, size = key.split("-")
        return cls(parse_size(size), FusionType(fusion))

    def __str__(self) -> str:
        return (f"{self.fusion.value.upper()} {_format_size(self.buffer_bytes)} buffer, "
                f"{self.bytes_per_element} B/element")
