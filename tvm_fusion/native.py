"""The package's C++ libraries (built from cpp/ by `pip install -e .`), loaded once each."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import tvm_ffi

LIB_DIR = Path(__file__).resolve().parent / "lib"


@cache
def load_library(name: str) -> tvm_ffi.Module:
    """Load ``lib<name>.so``; loading runs its static initialisers, which register its
    global functions. A missing library is an ImportError that says how to build it."""
    path = LIB_DIR / f"lib{name}.so"
    if not path.exists():
        raise ImportError(f"tvm_fusion: the C++ library {path} is not built; run "
                          "`pip install -e . --no-build-isolation --no-deps` in the repository root "
                          "(needs cmake>=3.18 and a C++17 compiler)")
    return tvm_ffi.load_module(str(path))


def global_function(library: str, name: str) -> tvm_ffi.Function:
    """The global function ``name`` registered by ``lib<library>.so``."""
    load_library(library)
    return tvm_ffi.get_global_func(name)
