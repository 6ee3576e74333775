"""Random propagation by a diffusion GDE with consistency regularisation (GRAND-style)."""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn import GDEConv, LinearDiffusion
from .consistency import consistency_loss

__all__ = ["GDECR"]


class GDECR(nn.Module):
    r"""Random propagation by a diffusion GDE, trained with consistency regularisation, in
    the spirit of GRAND (Feng et al., `"Graph Random Neural Network for Semi-Supervised
    Learning on Graphs" <https://arxiv.org/abs/2005.11079>`_).

    Each training pass drops whole nodes (DropNode) from the linearly encoded features
    :math:`\mathbf{H}_0 = \mathbf{X}\mathbf{W}`, which then flow by

    .. math::
        \frac{d\mathbf{H}}{dt} = (1 - \alpha)\hat{\mathbf{A}}\mathbf{H} - \mathbf{H}
        + \mathbf{H}_0

    before a ReLU and a linear head (scaled by ``alpha``, the flow tends to personalised
    PageRank of :math:`\mathbf{H}_0`). Training draws ``samples`` passes at once (one solve
    carries them side by side in the channels); the loss adds to their mean cross-entropy
    :meth:`consistency_loss`. Evaluation is one pass without dropout or DropNode.

    Args:
        in_channels, hidden, classes: feature, hidden and class counts.
        dropout: dropout on the input features.
        hidden_dropout: dropout before the output layer.
        dropnode: the probability of dropping a node in a training pass.
        samples: random passes per training step.
        consistency, temperature: weight and sharpening temperature of the consistency loss.
        solver: keyword arguments of :class:`~graphode.nn.GDEConv`.
        alpha: the damping of the diffusion.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)`
        - **output:** logits :math:`(|\mathcal{V}|, classes)`; in training
          :math:`(samples, |\mathcal{V}|, classes)`
    """

    def __init__(self, in_channels: int, hidden: int, classes: int, dropout: float = 0.5,
                 hidden_dropout: float = 0.5, dropnode: float = 0.5, samples: int = 4,
                 consistency: float = 1.0, temperature: float = 0.5,
                 solver: Optional[Dict[str, Any]] = None, alpha: float = 0.1):
        super().__init__()
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        if not 0.0 <= dropnode < 1.0:
            raise ValueError(f"dropnode must lie in [0, 1), got {dropnode!r}")
        self.dropout, self.hidden_dropout, self.dropnode = dropout, hidden_dropout, dropnode
        self.samples, self.consistency, self.temperature = samples, consistency, temperature
        self.alpha = alpha
        self.encoder = nn.Linear(in_channels, hidden, bias=False)
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.head = nn.Linear(hidden, classes)
        self.gde = GDEConv(LinearDiffusion(-1, weight=False, alpha=alpha), control="add",
                           **(solver or {}))

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        samples = self.samples if self.training else 1
        h = self.encoder(F.dropout(x, self.dropout, self.training))
        h = h.repeat(1, samples)  # the passes share one solve, side by side in the channels
        if self.training and self.dropnode > 0:
            keep = torch.rand(h.size(0), samples, 1, device=h.device) >= self.dropnode
            h = (h.view(h.size(0), samples, -1) * keep / (1 - self.dropnode)).flatten(1)
        h = self.alpha * self.gde(h, edge_index)
        h = h.view(h.size(0), samples, -1).transpose(0, 1) + self.bias
        h = F.dropout(F.relu(h), self.hidden_dropout, self.training)
        out = self.head(h)
        return out if self.training else out[0]

    def consistency_loss(self, logits: Tensor) -> Tensor:
        """``consistency`` times :func:`~graphode.models.consistency_loss` of stacked passes."""
        return self.consistency * consistency_loss(logits, self.temperature)
