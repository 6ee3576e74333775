"""Validation of a graph before it is bound into a vector field.

PyG's own layers raise an ``IndexError`` for an out-of-range index, but the precomputed
operators of :class:`~graphode.nn.GraphVectorField` index memory directly: a bad index there
is a crash or silently wrong numbers. Every forward of :class:`~graphode.nn.GDEConv` therefore
checks its graph once (one host synchronisation for the index range, none per evaluation);
``validate=False`` skips the checks where the caller guarantees the input.
"""
from __future__ import annotations

import itertools
from typing import Iterable, Optional

import torch
from torch import Tensor
from torch.nn import Module

from ..api import _check_state

__all__ = ["check_graph"]


def _first_floating(module: Module) -> Optional[Tensor]:
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        if tensor.is_floating_point():
            return tensor
    return None


def check_graph(x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor],
                batch: Optional[Tensor], modules: Iterable[Module]) -> None:
    """Raise ``ValueError``/``TypeError`` naming the argument if the graph input is invalid.

    Checks the dtypes and devices of ``x``, ``edge_index``, ``edge_weight`` and ``batch``
    against each other and against the field's parameters, the edge-weight length, and the
    range of the node indices."""
    _check_state(x, "x")  # floating point, not half precision
    num_nodes = x.size(0)
    for name, tensor in (("edge_index", edge_index), ("edge_weight", edge_weight),
                         ("batch", batch)):
        if tensor is not None and tensor.device != x.device:
            raise ValueError(f"{name} is on {tensor.device} but x is on {x.device}; move both "
                             f"to one device, e.g. {name}.to(x.device)")
    if edge_index.dtype not in (torch.long, torch.int32):
        raise TypeError(f"edge_index must hold int64 (or int32) node indices, got dtype "
                        f"{edge_index.dtype}; convert it with edge_index.long()")
    num_edges = edge_index.size(1)
    if num_edges:
        lo, hi = torch.stack(torch.aminmax(edge_index)).tolist()
        if lo < 0 or hi >= num_nodes:
            bad = lo if lo < 0 else hi
            column = int((edge_index == bad).any(0).nonzero()[0])
            raise ValueError(
                f"edge_index holds node index {bad} (in column {column}), but x has {num_nodes} "
                f"nodes, so indices must lie in [0, {num_nodes - 1}]; check that edge_index "
                f"and x belong to the same graph (negative indices are not allowed)")
    if edge_weight is not None:
        if not edge_weight.is_floating_point():
            raise TypeError(f"edge_weight must be floating point, got dtype {edge_weight.dtype}; "
                            f"convert it with edge_weight.to(x.dtype)")
        if edge_weight.dim() != 1 or edge_weight.numel() != num_edges:
            raise ValueError(f"edge_weight must have one weight per edge, shape ({num_edges},) for "
                             f"edge_index of shape {tuple(edge_index.shape)}, got shape "
                             f"{tuple(edge_weight.shape)}")
        if edge_weight.dtype != x.dtype:
            raise TypeError(f"edge_weight has dtype {edge_weight.dtype} but x has {x.dtype}; "
                            f"use one dtype, e.g. edge_weight.to(x.dtype)")
    if batch is not None:
        if batch.dim() != 1 or batch.numel() != num_nodes:
            raise ValueError(f"batch must give one graph index per node, shape ({num_nodes},), "
                             f"got shape {tuple(batch.shape)}")
        if batch.dtype not in (torch.long, torch.int32):
            raise TypeError(f"batch must hold integer graph indices, got dtype {batch.dtype}")
    for module in modules:
        tensor = _first_floating(module)
        if tensor is None:
            continue
        if tensor.dtype != x.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the vector field's parameters are "
                            f"{tensor.dtype}; convert one of them, e.g. x.to({tensor.dtype}) "
                            f"or gde.to({x.dtype})")
        if tensor.device != x.device:
            raise ValueError(f"x is on {x.device} but the vector field's parameters are on "
                             f"{tensor.device}; move one of them, e.g. gde.to(x.device)")
        break
