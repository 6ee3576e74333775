"""GraphGRUODE: the continuous GRU of GRU-ODE-Bayes with graph-convolutional gates."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor
from torch.nn import Linear, Module

from .gcgru import gcn_operator
from .sparse import SparseOperator

__all__ = ["GraphGRUODE"]


class GraphGRUODE(Module):
    r"""A GRU turned into a vector field (De Brouwer et al., `"GRU-ODE-Bayes"
    <https://arxiv.org/abs/1905.12374>`_), with graph-convolutional gates:

    .. math::
        \mathbf{z} = \sigma(\hat{\mathbf{A}} \mathbf{H} \mathbf{W}_z + \mathbf{b}_z), \quad
        \mathbf{g} = \tanh(\hat{\mathbf{A}} \mathbf{H} \mathbf{W}_g + \mathbf{b}_g), \qquad
        f(\mathbf{H}) = (1 - \mathbf{z}) \odot (\mathbf{g} - \mathbf{H}).

    Unlike GRU-ODE-Bayes there is no reset gate: one propagation :math:`\hat{\mathbf{A}}
    \mathbf{H}` feeds both gates, so an evaluation costs one sparse product, not two.

    The state is drawn toward :math:`\mathbf{g} \in (-1, 1)` and never leaves
    :math:`[-1, 1]` once inside, so long flows (forecasts far ahead) stay bounded.

    Args:
        channels: state channels (input = output).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, C)`, edge indices
          :math:`(2, |\mathcal{E}|)`, optional edge weights :math:`(|\mathcal{E}|)`
        - **output:** node features :math:`(|\mathcal{V}|, C)`
    """

    def __init__(self, channels: int):
        super().__init__()
        self.in_channels = self.out_channels = channels
        self.lin = Linear(channels, 2 * channels)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def _evaluate(self, op: SparseOperator, h: Tensor) -> Tensor:
        z, g = self.lin(op.mm(h)).chunk(2, -1)
        return torch.sigmoid(-z) * (torch.tanh(g) - h)  # 1 - sigmoid(z) = sigmoid(-z)

    def graph_plan(self, edge_index: Tensor, edge_weight: Optional[Tensor], num_nodes: int,
                   dtype: torch.dtype, device: torch.device) -> Callable[[Tensor], Tensor]:
        """Build the normalised adjacency once; :class:`GraphVectorField` calls this per solve."""
        op = gcn_operator(edge_index, edge_weight, num_nodes, dtype, device)
        return lambda h: self._evaluate(op, h)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None) -> Tensor:
        return self._evaluate(gcn_operator(edge_index, edge_weight, x.size(0), x.dtype, x.device), x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels})"
