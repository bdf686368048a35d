"""OpGraph import: torch / ONNX / hand-built Relax, canonicalisation, JSON round trip."""

import hashlib
import io

import numpy as np
import onnx
import pytest
import torch
import tvm
from torch import nn
from tvm import relax

from tvm_fusion.graph import (GLOBAL, ROW_LOCAL, WINDOWED, ModelImportError, OpGraph, UnsupportedOpError,
                              canonicalize, from_onnx, from_torch)


class ConvBnResidual(nn.Module):
    """conv-BN-ReLU, conv(+bias) residual add, strided max pool, global pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = torch.relu(self.bn(self.c1(x)))
        y = self.pool(y + self.c2(y))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


def _small_net(seed: int) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    m = ConvBnResidual().eval()
    with torch.no_grad():  # non-trivial BN statistics so folding is visible in numerics
        m.bn.running_mean.uniform_(-1, 1)
        m.bn.running_var.uniform_(0.5, 2)
    return m, torch.randn(1, 3, 16, 16)


def _onnx_model(module: nn.Module, x: torch.Tensor) -> onnx.ModelProto:
    buf = io.BytesIO()
    # legacy (TorchScript) exporter: the dynamo exporter needs onnxscript, not installed
    torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=17)
    return onnx.load_from_string(buf.getvalue())


def _structure(g: OpGraph):
    """Everything but names and binding order: what 'same graph up to names' means.

    Each node is keyed by its attributes and, recursively, the keys of its inputs in
    argument order (frontends may emit independent branches in different orders).
    """
    keys: dict[int, str] = {t: repr(g.tensors[t].shape) for t in g.inputs}
    for n in g.nodes:
        t = g.tensors[n.output]
        own = (n.kind, n.relax_op, n.row_class, n.weight_elems, n.weight_bytes, n.out_channels, n.kernel,
               n.stride, n.padding, n.dilation, n.groups, n.has_bias, n.flops, sorted(n.attrs.items()),
               t.shape, t.dtype)
        keys[n.output] = hashlib.sha256(repr((own, [keys[i] for i in n.inputs])).encode()).hexdigest()
    return sorted(keys[n.output] for n in g.nodes), [keys[o] for o in g.outputs]


def _check_invariants(g: OpGraph) -> None:
    assert len({n.name for n in g.nodes}) == len(g.nodes)
    for n in g.nodes:
        assert g.tensors[n.output].producer == n.id
        for t in n.inputs:  # binding order is topological
            assert g.tensors[t].producer < n.id
    for o in g.outputs:
        assert g.tensors[o].producer >= 0


def test_small_net_hand_checked(seed):
    m, x = _small_net(seed)
    g = from_torch(m, x, name="small")
    _check_invariants(g)
    kinds = [n.kind for n in g.nodes]
    assert kinds == ["conv2d", "bias_add", "relu", "conv2d", "bias_add", "add", "max_pool2d", "mean",
                     "reshape", "dense", "bias_add"]
    c1, b1, relu, c2, b2, res, pool, mean, _, fc, _ = g.nodes
    # BN folded: conv keeps its 8x3x3x3 weights, BN shift becomes an 8-element bias add
    assert (c1.weight_elems, c1.weight_bytes, b1.weight_elems) == (216, 864, 8)
    assert c1.has_bias and c2.has_bias and fc.has_bias
    assert c1.flops == 2 * (8 * 16 * 16) * (3 * 3 * 3)
    assert (c1.kernel, c1.stride, c1.padding, c1.row_class, c1.out_channels) == ((3, 3), (1, 1), (1, 1, 1, 1),
                                                                                 WINDOWED, 8)
    assert res.inputs == (relu.output, b2.output) and g.preds(res.id) == [relu.id, b2.id]
    assert g.succs(relu.id) == [c2.id, res.id]
    assert res.row_class == ROW_LOCAL and res.flops == 8 * 16 * 16
    assert (pool.kernel, pool.stride, pool.padding) == ((3, 3), (2, 2), (1, 1, 1, 1))
    assert g.tensors[pool.output].shape == (1, 8, 8, 8) and pool.flops == 8 * 8 * 8 * 9
    assert mean.row_class == GLOBAL and mean.kernel == (8, 8)
    assert (fc.out_channels, fc.weight_elems, fc.flops, fc.row_class) == (10, 80, 2 * 10 * 8, GLOBAL)
    assert g.tensors[g.outputs[0]].shape == (1, 10)
    assert g.total_weight_bytes == 4 * (216 + 8 + 576 + 8 + 80 + 10)


def test_canonicalize_preserves_numerics(seed):
    m, x = _small_net(seed)
    g, mod = from_torch(m, x, return_module=True)
    ops = [b.value.op.name for b in mod["main"].body.blocks[0].bindings if hasattr(b.value, "op")]
    assert "relax.nn.batch_norm" not in ops and "relax.permute_dims" not in ops
    assert len(g) == len(ops)
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(x.numpy()))[0]  # the torch importer returns a 1-tuple
    with torch.no_grad():
        np.testing.assert_allclose(out.numpy(), m(x).numpy(), rtol=1e-4, atol=1e-4)


def test_torch_and_onnx_give_same_graph(seed):
    m, x = _small_net(seed)
    g_torch = from_torch(m, x)
    g_onnx = from_onnx(_onnx_model(m, x))
    assert _structure(g_torch) == _structure(g_onnx)
    assert g_torch.fingerprint() == g_onnx.fingerprint()


def test_zoo_net_torch_and_onnx_agree():
    from tvm_fusion import zoo

    m, x = zoo.build("resnet18", 64)
    g_torch = from_torch(m, x, name="resnet18")
    g_onnx = from_onnx(_onnx_model(m, x), name="resnet18")
    assert _structure(g_torch) == _structure(g_onnx)



@pytest.mark.parametrize("act", [nn.Hardswish, nn.Hardsigmoid])
def test_hard_activations_torch_and_onnx_agree(act, seed):
    """torch decomposes into add-clip-clip(-mul)-div, ONNX into one clip; canonicalize unifies both."""
    m = nn.Sequential(nn.Conv2d(3, 4, 1), act()).eval()
    x = 4 * torch.randn(1, 3, 8, 8)  # spans both clip bounds (-3 and 3)
    g_torch, mod = from_torch(m, x, return_module=True)
    g_onnx = from_onnx(_onnx_model(m, x))
    assert _structure(g_torch) == _structure(g_onnx)
    hs = ["mul"] if act is nn.Hardswish else []  # the hardsigmoid core, then x * it for hardswish
    assert [n.kind for n in g_torch.nodes] == ["conv2d", "bias_add", "mul", "add", "clip"] + hs
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(x.numpy()))[0]
    with torch.no_grad():
        np.testing.assert_allclose(out.numpy(), m(x).numpy(), rtol=1e-5, atol=1e-5)


def test_mobilenet_v3_small_torch_and_onnx_agree():
    from tvm_fusion import zoo

    m, x = zoo.build("mobilenet_v3_small", 32)
    g_torch = from_torch(m, x, name="mobilenet_v3_small")
    g_onnx = from_onnx(_onnx_model(m, x), name="mobilenet_v3_small")
    assert _structure(g_torch) == _structure(g_onnx)

def test_onnx_from_path(tmp_path, seed):
    m, x = _small_net(seed)
    path = tmp_path / "small.onnx"
    onnx.save(_onnx_model(m, x), str(path))
    assert from_onnx(path).fingerprint() == from_torch(m, x).fingerprint()


def test_json_round_trip(seed):
    m, x = _small_net(seed)
    g = from_torch(m, x, name="small")
    g2 = OpGraph.from_json(g.to_json())
    assert g2.nodes == g.nodes and g2.tensors == g.tensors and g2.outputs == g.outputs
    assert [n.attrs for n in g2.nodes] == [n.attrs for n in g.nodes]
    assert g2.name == "small" and g2.fingerprint() == g.fingerprint()
    assert g2.to_json() == g.to_json()
    assert g2.edges == g.edges


def test_tuple_outputs_and_concat(seed):
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 4, 1)
            self.b = nn.Conv2d(3, 6, 3, stride=2, padding=2, dilation=2)

        def forward(self, x):
            a = self.a(x)
            up = nn.functional.interpolate(self.b(x), scale_factor=2.0, mode="bilinear")
            return torch.cat([a, up], 1), torch.sigmoid(a)

    torch.manual_seed(seed)
    g = from_torch(TwoHeads(), torch.randn(1, 3, 8, 8))
    _check_invariants(g)
    assert [g.tensors[o].shape for o in g.outputs] == [(1, 10, 8, 8), (1, 4, 8, 8)]
    cat = next(n for n in g.nodes if n.kind == "concat")
    assert cat.row_class == ROW_LOCAL and len(cat.inputs) == 2 and cat.attrs["axis"] == 1
    b = next(n for n in g.nodes if n.kind == "conv2d" and n.out_channels == 6)
    assert b.dilation == (2, 2) and b.kernel_h_eff == 5 and b.stride == (2, 2)
    rs = next(n for n in g.nodes if n.kind == "resize2d")
    assert rs.row_class == WINDOWED and rs.attrs["scale"] == [2.0, 2.0]


def test_unsupported_op_names_op_and_binding():
    class Cum(nn.Module):
        def forward(self, x):
            return torch.cumsum(x, 1)

    with pytest.raises(UnsupportedOpError, match=r"relax\.cumsum.*binding.*OP_TABLE"):
        from_torch(Cum(), torch.randn(1, 4))


def test_dynamic_shape_rejected():
    bb = relax.BlockBuilder()
    n = tvm.tirx.Var("n", "int64")
    x = relax.Var("x", relax.TensorType([n, 4], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(bb.emit(relax.op.nn.relu(x)))
        bb.emit_func_output(out)
    with pytest.raises(UnsupportedOpError, match="dynamic dimension"):
        OpGraph.from_relax(bb.get())


def test_static_hand_built_relax_module():
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, 4, 6, 6], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            p = bb.emit(relax.op.nn.avg_pool2d(x, pool_size=2, strides=2))
            out = bb.emit_output(bb.emit(relax.op.nn.relu(p)))
        bb.emit_func_output(out)
    g = OpGraph.from_relax(canonicalize(bb.get()), canonical=True, name="hand")
    assert [n.kind for n in g.nodes] == ["avg_pool2d", "relu"]
    assert g.nodes[0].flops == 4 * 3 * 3 * 4 and g.nodes[0].stride == (2, 2)
    assert g.inputs == [0] and g.tensors[0].name == "x"


def test_frontend_failure_names_the_model(tmp_path):
    class DataDependent(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x  # not exportable: data-dependent branch

    with pytest.raises(ModelImportError, match="torch.export failed for model 'dd'"):
        from_torch(DataDependent(), torch.randn(1, 4), name="dd")
    with pytest.raises(ModelImportError, match="missing.onnx"):
        from_onnx(tmp_path / "missing.onnx")


def test_main_without_dataflow_block_rejected():
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, 4], "float32"))
    with bb.function("main", [x]):
        out = bb.emit(relax.op.nn.relu(x))
        bb.emit_func_output(out)
    with pytest.raises(UnsupportedOpError, match="exactly one non-empty dataflow block"):
        OpGraph.from_relax(bb.get(), canonical=True)
