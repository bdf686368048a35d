"""Builds the C++ libraries (cpp/: fusion cost model, TIR data-flow graphs) with CMake against apache-tvm-ffi.

There is no Python fallback: if CMake or the compiler fails, installation fails.
"""

import os
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
LIB_DIR = ROOT / "tvm_fusion" / "lib"


def build_cost_model() -> None:
    build_dir = ROOT / "build"
    build_dir.mkdir(exist_ok=True)
    cmake_dir = subprocess.check_output([sys.executable, "-m", "tvm_ffi.config", "--cmakedir"], text=True).strip()
    configure = ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                 f"-Dtvm_ffi_DIR={cmake_dir}", f"-DTVM_FUSION_LIB_DIR={LIB_DIR}"]
    try:
        subprocess.check_call(configure)
        subprocess.check_call(["cmake", "--build", str(build_dir), "--parallel", str(os.cpu_count() or 1)])
    except (OSError, subprocess.CalledProcessError) as err:
        raise SystemExit(f"tvm_fusion: building the C++ cost model with CMake failed ({err}); "
                         "install cmake>=3.18 and a C++17 compiler, then retry `pip install -e .`") from err


class BuildWithCostModel(build_py):
    def run(self):
        build_cost_model()
        super().run()


cmdclass = {"build_py": BuildWithCostModel}
try:  # editable installs (`pip install -e .`) go through editable_wheel, not build_py
    from setuptools.command.editable_wheel import editable_wheel

    class EditableWheelWithCostModel(editable_wheel):
        def run(self):
            build_cost_model()
            super().run()

    cmdclass["editable_wheel"] = EditableWheelWithCostModel
except ImportError:  # pragma: no cover - old setuptools
    pass

setup(cmdclass=cmdclass)
