"""LinearDiffusion: the graph diffusion field of GRAND-l and CGNN."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.conv.gcn_conv import gcn_norm

__all__ = ["LinearDiffusion"]


class LinearDiffusion(MessagePassing):
    r"""Linear diffusion on the normalised adjacency with self loops,

    .. math::
        f(\mathbf{X}) = k \left((1 - \alpha) \hat{\mathbf{A}} \mathbf{X} \mathbf{W} - \mathbf{X}\right),
        \qquad \hat{\mathbf{A}} = \mathbf{D}^{-1/2} (\mathbf{A} + \mathbf{I}) \mathbf{D}^{-1/2},

    the continuous analogue of stacked GCN propagation (GRAND-l, Chamberlain et al., 2021;
    with a source term ``GDEConv(..., control="add")`` it is CGNN's
    :math:`\dot{\mathbf{X}} = (\hat{\mathbf{A}} - \mathbf{I})\mathbf{X} + \mathbf{X}_0`,
    Xhonneux et al., 2020). ``W`` starts at the identity. A damping ``alpha > 0`` makes the
    flow contract; with the source term its fixed point is
    :math:`(\mathbf{I} - (1 - \alpha)\hat{\mathbf{A}})^{-1} \mathbf{X}_0`, personalised
    PageRank up to the factor :math:`1/\alpha`: the continuous analogue of APPNP's propagation
    (Gasteiger et al., 2019).

    Args:
        channels: feature channels (input = output); ``-1`` without ``weight``: any number,
            as the input has.
        weight: learn the channel mixing ``W``; without it ``W = I``.
        alpha: damping (teleport probability) in ``[0, 1)``.
        rate: the diffusivity ``k > 0`` (1 by default); a large rate makes the flow stiff, a
            case for the implicit methods (``method="kvaerno3"`` and others), which solve
            their stages with the sparse operator itself when the layer is bound by
            :class:`~graphode.nn.GraphVectorField`.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, C)`, edge indices
          :math:`(2, |\mathcal{E}|)`, optional edge weights :math:`(|\mathcal{E}|)`
        - **output:** node features :math:`(|\mathcal{V}|, C)`
    """

    def __init__(self, channels: int, weight: bool = True, alpha: float = 0.0,
                 rate: float = 1.0):
        super().__init__(aggr="add")
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must lie in [0, 1), got {alpha}")
        if channels <= 0 and (weight or channels != -1):
            raise ValueError(f"channels must be a positive number, or -1 (any) with "
                             f"weight=False, got channels={channels}, weight={weight}")
        self.in_channels = self.out_channels = channels
        if not (isinstance(rate, (int, float)) and 0.0 < rate < float("inf")):
            raise ValueError(f"rate must be a positive finite number, got {rate!r}")
        self.alpha = float(alpha)
        self.rate = float(rate)
        self.weight = torch.nn.Parameter(torch.empty(channels, channels)) if weight else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.weight is not None:
            torch.nn.init.eye_(self.weight)

    def mix(self, x: Tensor) -> Tensor:
        """``(1 - alpha) X W``: everything but the propagation."""
        x = x if self.weight is None else x @ self.weight
        return x if self.alpha == 0.0 else x * (1.0 - self.alpha)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None) -> Tensor:
        edge_index, edge_weight = gcn_norm(edge_index, edge_weight, x.size(0), dtype=x.dtype)
        out = self.propagate(edge_index, x=self.mix(x), edge_weight=edge_weight) - x
        return out if self.rate == 1.0 else out * self.rate

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.view(-1, 1) * x_j

    def __repr__(self) -> str:
        alpha = f", alpha={self.alpha:g}" if self.alpha else ""
        rate = f", rate={self.rate:g}" if self.rate != 1.0 else ""
        return (f"{type(self).__name__}({self.in_channels}, weight={self.weight is not None}"
                f"{alpha}{rate})")
