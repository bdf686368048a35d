"""predictor: AIO-P, an all-in-one neural performance predictor over OpGraphs.

``predictor.AIOP.load(path).predict(module_or_opgraph, task=...)``; heavy modules (torch,
torch_geometric, tvm) load only when ``AIOP`` is first touched.
"""


def __getattr__(name):
    if name == "AIOP":
        from .aiop import AIOP

        return AIOP
    raise AttributeError(f"module 'predictor' has no attribute {name!r}")
