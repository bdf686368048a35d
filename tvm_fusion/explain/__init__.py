"""GET: graph explanation for operator fusion (validity classifier, explainers, tree split).

Importing this package registers the ``"get"`` splitter in ``tvm_fusion.search.SPLITTERS``.
"""

from .splitter import GETSplitter

__all__ = ["GETSplitter"]
