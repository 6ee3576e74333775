"""A graph's propagation operator, built once per solve and applied at every evaluation.

Many message-passing layers are ``(linear map) -> (fixed sparse matrix) -> (linear map)``: GCN
multiplies by the normalised adjacency, SAGE by the mean-aggregation matrix, GIN and GraphConv
by the plain adjacency, Cheb by the scaled Laplacian. Inside an ODE solve the graph does not
change, so the matrix is built once, stored as CSR together with its transpose, and each
evaluation costs one sparse-dense product forward and one backward. (Autograd's own backward
for CSR products is two orders of magnitude slower on CPU; hence the explicit transpose.)
"""
from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor

__all__ = ["SparseOperator", "to_edge_index"]


class _SpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, op: "SparseOperator", x: Tensor) -> Tensor:
        ctx.op = op
        return torch.sparse.mm(op.matrix, x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, torch.sparse.mm(ctx.op.transpose, grad)


def _csr(row: Tensor, col: Tensor, values: Tensor, n: int) -> Tensor:
    with warnings.catch_warnings():
        # torch flags CSR support as beta; the products used here are stable and tested.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        coo = torch.sparse_coo_tensor(torch.stack([row, col]), values, (n, n),
                                      check_invariants=False)
        return coo.coalesce().to_sparse_csr()


class SparseOperator:
    """A fixed sparse ``N x N`` matrix ``M`` with ``M[i, j]`` the weight of the edge ``j -> i``.

    Args:
        edge_index: ``(2, E)`` edges ``source -> target``.
        weight: ``(E,)`` edge weights (duplicates are summed).
        num_nodes: ``N``.
        dtype, device: of the stored values (the state's).
    """

    def __init__(self, edge_index: Tensor, weight: Tensor, num_nodes: int, dtype: torch.dtype,
                 device: torch.device):
        src, dst = edge_index[0].to(device), edge_index[1].to(device)
        values = weight.detach().to(device=device, dtype=dtype)
        self.matrix = _csr(dst, src, values, num_nodes)
        self.transpose = _csr(src, dst, values, num_nodes)
        self.src, self.dst, self.values, self.num_nodes = src, dst, values, num_nodes

    def mm(self, x: Tensor) -> Tensor:
        """``M @ x`` for ``x`` of shape ``(N, ...)``."""
        if torch.compiler.is_compiling():
            # Compilers do not trace sparse CSR products; a gather and a scatter-add compute
            # the same product and fuse into the surrounding kernels.
            messages = x[self.src] * self.values.view(-1, *([1] * (x.dim() - 1)))
            return x.new_zeros((self.num_nodes, *x.shape[1:])).index_add_(0, self.dst, messages)
        if x.dim() != 2:
            lead = x.shape[1:]
            return _SpMM.apply(self, x.reshape(x.shape[0], -1)).view(x.shape[0], *lead)
        return _SpMM.apply(self, x)


def to_edge_index(adjacency: object, edge_weight: Optional[Tensor]):
    """``(edge_index, edge_weight)`` from an ``edge_index`` tensor or a sparse adjacency.

    A sparse adjacency follows PyG's convention ``adj_t[target, source]`` (a ``torch.sparse``
    COO/CSR tensor, or a ``torch_sparse.SparseTensor``); its values become the edge weights.
    """
    if isinstance(adjacency, Tensor) and adjacency.layout != torch.strided:
        if edge_weight is not None:
            raise ValueError("pass edge weights as the values of the sparse adjacency, not "
                             "also as edge_weight")
        coo = adjacency.to_sparse_coo().coalesce()
        row, col = coo.indices()
        values = coo.values()
        weight = None if bool((values == 1).all()) else values
        return torch.stack([col, row]), weight
    if hasattr(adjacency, "coo") and not isinstance(adjacency, Tensor):  # torch_sparse.SparseTensor
        row, col, values = adjacency.coo()
        return torch.stack([col, row]), values
    if not isinstance(adjacency, Tensor) or adjacency.dim() != 2 or adjacency.size(0) != 2:
        raise ValueError(f"edge_index must be a (2, E) integer tensor or a sparse adjacency, got "
                         f"{type(adjacency).__name__}"
                         f"{tuple(adjacency.shape) if isinstance(adjacency, Tensor) else ''}")
    if adjacency.is_floating_point():
        raise TypeError(f"edge_index must hold integer node indices, got dtype {adjacency.dtype}")
    return adjacency, edge_weight
