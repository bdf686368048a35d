"""GET: graph explanation for operator fusion (validity classifier, explainers, tree split).

``tvm_fusion.search.make_splitter("get", explainer=...)`` builds the :class:`GETSplitter`.
"""

from .splitter import GETSplitter

__all__ = ["GETSplitter"]
