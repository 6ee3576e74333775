"""GCGRUCell: a GRU whose gates are graph convolutions (T-GCN's recurrent cell)."""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor
from torch.nn import Linear, Module

from .sparse import SparseOperator

__all__ = ["GCGRUCell", "gcn_operator"]


def gcn_operator(edge_index: Tensor, edge_weight: Optional[Tensor], num_nodes: int,
                 dtype: torch.dtype = torch.float32,
                 device: Optional[torch.device] = None) -> SparseOperator:
    r"""The normalised adjacency with self loops, :math:`\hat{\mathbf{A}} =
    \mathbf{D}^{-1/2}(\mathbf{A} + \mathbf{I})\mathbf{D}^{-1/2}`, as a reusable operator."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    edge_index, edge_weight = gcn_norm(edge_index, edge_weight, num_nodes, dtype=dtype)
    return SparseOperator(edge_index, edge_weight, num_nodes, dtype,
                          device if device is not None else edge_index.device)


class GCGRUCell(Module):
    r"""A graph-convolutional GRU cell (Zhao et al., `"T-GCN"
    <https://arxiv.org/abs/1811.05320>`_): the gates of a GRU, each computed by a graph
    convolution of the input and the hidden state,

    .. math::
        \mathbf{r}, \mathbf{u} &= \sigma\big(\mathbf{Z}_g \mathbf{W}_g +
            \hat{\mathbf{A}} \mathbf{Z}_g \mathbf{V}_g + \mathbf{b}_g\big), \quad
            \mathbf{Z}_g = [\mathbf{X}, \mathbf{H}] \\
        \mathbf{c} &= \tanh\big(\mathbf{Z}_c \mathbf{W}_c + \hat{\mathbf{A}}
            \mathbf{Z}_c \mathbf{V}_c + \mathbf{b}_c\big), \quad
            \mathbf{Z}_c = [\mathbf{X}, \mathbf{r} \odot \mathbf{H}] \\
        \mathbf{H}' &= \mathbf{u} \odot \mathbf{H} + (1 - \mathbf{u}) \odot \mathbf{c}.

    Each gate sees a node's own input and state (the :math:`\mathbf{W}` terms, as the
    zeroth diffusion step of DCRNN) besides their graph average: with the average alone (T-GCN's
    cell) a node's own reading is blurred with its neighbours', and on Los-loop that cell lost
    to a GRU blind to the graph (MAE 3.50 against 3.24 at 15 minutes).

    Args:
        in_channels: input features per node.
        hidden_channels: hidden state size per node.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, hidden state
          :math:`(|\mathcal{V}|, H)` (or ``None`` for zeros), edge indices
          :math:`(2, |\mathcal{E}|)` or a prebuilt :func:`gcn_operator` (build it once per
          sequence), optional edge weights :math:`(|\mathcal{E}|)`
        - **output:** hidden state :math:`(|\mathcal{V}|, H)`
    """

    def __init__(self, in_channels: int, hidden_channels: int):
        super().__init__()
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        width = 2 * (in_channels + hidden_channels)  # [own, graph average]
        self.gates = Linear(width, 2 * hidden_channels)
        self.candidate = Linear(width, hidden_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.gates.reset_parameters()
        self.candidate.reset_parameters()
        # Start with the update gate leaning to "keep the state", as T-GCN does (bias 1).
        torch.nn.init.constant_(self.gates.bias, 1.0)

    def forward(self, x: Tensor, h: Optional[Tensor], edge_index: Union[Tensor, SparseOperator],
                edge_weight: Optional[Tensor] = None) -> Tensor:
        if x.dim() != 2 or x.size(-1) != self.in_channels:
            raise ValueError(f"x must have shape (num_nodes, {self.in_channels}), got "
                             f"{tuple(x.shape)}")
        if h is None:
            h = x.new_zeros(x.size(0), self.hidden_channels)
        op = edge_index if isinstance(edge_index, SparseOperator) else \
            gcn_operator(edge_index, edge_weight, x.size(0), x.dtype, x.device)
        # Z W + A_hat Z V = [Z, A_hat Z] [W; V]: propagate the narrow input, then mix once.
        z = torch.cat([x, h], -1)
        r, u = torch.sigmoid(self.gates(torch.cat([z, op.mm(z)], -1))).chunk(2, -1)
        z = torch.cat([x, r * h], -1)
        c = torch.tanh(self.candidate(torch.cat([z, op.mm(z)], -1)))
        return u * h + (1 - u) * c

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.hidden_channels})"
