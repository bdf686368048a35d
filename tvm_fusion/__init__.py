"""tvm_fusion: layer fusion for DNN accelerators with graph explanation (GET), as a TVM plugin."""

from .graph import (ModelImportError, OpGraph, OpNode, TensorInfo, UnsupportedOpError, canonicalize,
                    from_onnx, from_torch)

__all__ = ["ModelImportError", "OpGraph", "OpNode", "TensorInfo", "UnsupportedOpError", "canonicalize",
           "from_onnx", "from_torch"]
