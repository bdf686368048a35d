"""tvm_fusion: layer fusion for DNN accelerators with graph explanation (GET), as a TVM plugin."""

from .graph import OpGraph, OpNode, TensorInfo, UnsupportedOpError

__all__ = ["OpGraph", "OpNode", "TensorInfo", "UnsupportedOpError"]
