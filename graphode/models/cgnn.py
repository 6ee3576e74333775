"""A CGNN-style diffusion with a source term for node classification."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch.nn.functional as F
from torch import Tensor, nn

from ..nn import GDEConv, LinearDiffusion

__all__ = ["CGNN"]


class CGNN(nn.Module):
    r"""Diffusion with a source, in the spirit of CGNN (Xhonneux et al., `"Continuous Graph
    Neural Networks" <https://arxiv.org/abs/1912.00967>`_): an MLP encodes each node into class
    scores :math:`\mathbf{X}_0`, which then flow by

    .. math::
        \frac{d\mathbf{X}}{dt} = (1 - \alpha)\hat{\mathbf{A}}\mathbf{X} - \mathbf{X}
        + \mathbf{X}_0

    (:class:`~graphode.nn.LinearDiffusion` with damping ``alpha``, no weights, and
    ``control="add"``). The flow tends to personalised PageRank of :math:`\mathbf{X}_0`, the
    continuous analogue of APPNP. :meth:`param_groups` puts weight decay on the first layer
    only, as in GCN and APPNP.

    Args:
        in_channels, hidden, classes: feature, hidden and class counts.
        dropout: dropout on the input and the hidden layer.
        solver: keyword arguments of :class:`~graphode.nn.GDEConv`.
        alpha: the damping of the diffusion.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)`
        - **output:** logits :math:`(|\mathcal{V}|, classes)`
    """

    def __init__(self, in_channels: int, hidden: int, classes: int, dropout: float = 0.5,
                 solver: Optional[Dict[str, Any]] = None, alpha: float = 0.1):
        super().__init__()
        self.dropout = dropout
        self.lin1, self.lin2 = nn.Linear(in_channels, hidden), nn.Linear(hidden, classes)
        self.gde = GDEConv(LinearDiffusion(classes, weight=False, alpha=alpha), control="add",
                           **(solver or {}))

    def param_groups(self, weight_decay: float) -> List[Dict[str, Any]]:
        """Optimizer groups: ``weight_decay`` on the first layer, none elsewhere."""
        rest = [p for n, p in self.named_parameters() if not n.startswith("lin1.")]
        return [dict(params=self.lin1.parameters(), weight_decay=weight_decay),
                dict(params=rest, weight_decay=0.0)]

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = F.dropout(x, self.dropout, self.training)
        h = F.dropout(F.relu(self.lin1(x)), self.dropout, self.training)
        return self.gde(self.lin2(h), edge_index)
