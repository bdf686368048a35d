"""MetaSchedule build helpers that avoid the 55 s ``tvm.s_tir.tensor_intrin`` import.

TVM 0.27's ``LocalBuilder`` default build function imports ``tvm.s_tir.tensor_intrin``
inside every worker process, which takes ~55 s on this machine and trips the builder's
30 s timeout, so every candidate fails to build. The tensor intrinsics are only needed
for tensorized schedules (CUDA / ARM / VNNI), never for the generic ``llvm`` target used
here, so :func:`build_without_tensor_intrin` does the same build without that import.
``TuneContext.__init__`` does the same import in the main process;
:func:`skip_tensor_intrin_import` avoids that one while a tuning call runs.
"""
from __future__ import annotations

import contextlib
import sys
import types

import cloudpickle
from tvm.s_tir.meta_schedule.builder import LocalBuilder
from tvm.s_tir.meta_schedule.runner import EvaluatorConfig, LocalRunner

# Worker processes (tvm.exec.popen_worker) may not have this repository on sys.path:
# ship this module's functions by value instead of by import path.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

_TENSOR_INTRIN = "tvm.s_tir.tensor_intrin"


def build_without_tensor_intrin(mod, target, _params):
    """Build ``mod`` for ``target`` exactly like MetaSchedule's default_build, minus the
    tensor-intrinsic registration import (unused for the generic llvm target)."""
    from tvm.driver import build as tvm_build  # noqa: PLC0415
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock  # noqa: PLC0415

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


def make_builder(max_workers: int = 2, timeout_sec: float = 60.0) -> LocalBuilder:
    """LocalBuilder using :func:`build_without_tensor_intrin`."""
    return LocalBuilder(
        max_workers=max_workers, timeout_sec=timeout_sec, f_build=build_without_tensor_intrin
    )


def make_runner(number: int = 3, timeout_sec: float = 30.0) -> LocalRunner:
    """LocalRunner with a short evaluator config (no 100 ms minimum repeat) so that a
    measurement costs a few runs of the kernel rather than 100 ms each."""
    config = EvaluatorConfig(number=number, repeat=1, min_repeat_ms=0, enable_cpu_cache_flush=False)
    return LocalRunner(timeout_sec=timeout_sec, evaluator_config=config)


@contextlib.contextmanager
def skip_tensor_intrin_import():
    """Temporarily make ``import tvm.s_tir.tensor_intrin`` a no-op (TuneContext does it on
    construction). If the real module is already imported nothing changes; the stub is
    removed on exit so a later real import still works."""
    if _TENSOR_INTRIN in sys.modules:
        yield
        return
    stub = types.ModuleType(_TENSOR_INTRIN)
    sys.modules[_TENSOR_INTRIN] = stub
    try:
        yield
    finally:
        if sys.modules.get(_TENSOR_INTRIN) is stub:
            del sys.modules[_TENSOR_INTRIN]
