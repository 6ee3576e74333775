"""The GCDE of the GDE paper for node classification."""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GCNConv

from ..nn import GDEConv
from .consistency import consistency_loss

__all__ = ["GCDE"]


class GCDE(nn.Module):
    r"""The graph convolutional differential equation of Poli et al., `"Graph Neural Ordinary
    Differential Equations" <https://arxiv.org/abs/1911.07532>`_: input dropout, a GCN
    encoder, a GDE block

    .. math::
        \frac{d\mathbf{H}}{dt} = \mathrm{softplus}\big(\mathrm{GCN}(\mathrm{dropout}(\mathbf{H}))\big)

    and a GCN decoder, as in the paper's code.

    The encoder uses ReLU: with row-normalised features, the softplus encoder of the GDE
    paper's torchdyn tutorial maps every node near log 2 and trained to 40% on Cora.
    ``encoder_init="uniform"`` draws the encoder's weights and biases uniformly from
    :math:`\pm 1/\sqrt{hidden}`, as the GCN layer of the paper's code does; PyG's Glorot
    initialisation draws from a range 2 (Cora) to 3 (CiteSeer) times narrower.

    With ``samples`` > 1, training draws that many passes with their own dropout masks (one
    solve each) and returns their logits stacked, ``(samples, N, classes)``, for
    :meth:`consistency_loss`; evaluation is one pass without dropout.

    Args:
        in_channels, hidden, classes: feature, hidden and class counts.
        dropout: dropout after the GDE block (and on the input, unless ``input_dropout``).
        field_dropout: dropout inside the vector field. Training with it needs
            ``gradient="checkpoint"`` or ``"autograd"`` in ``solver``: the adjoint refuses a
            field that draws random numbers.
        solver: keyword arguments of :class:`~graphode.nn.GDEConv` (``t_span``, ``method``,
            ``step_size``, ``gradient``, ...).
        encoder, decoder: ``"gcn"`` or ``"linear"``.
        encoder_init: ``"glorot"`` (PyG's) or ``"uniform"`` (the paper's code).
        input_dropout: dropout on the input features (default: ``dropout``).
        samples: random passes per training step.
        consistency, temperature: weight and sharpening temperature of the consistency loss.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)`
        - **output:** logits :math:`(|\mathcal{V}|, classes)`, or
          :math:`(samples, |\mathcal{V}|, classes)` in training with ``samples`` > 1
    """

    def __init__(self, in_channels: int, hidden: int, classes: int, dropout: float = 0.5,
                 field_dropout: float = 0.0, solver: Optional[Dict[str, Any]] = None,
                 encoder: str = "gcn", decoder: str = "gcn", encoder_init: str = "glorot",
                 input_dropout: Optional[float] = None, samples: int = 1,
                 consistency: float = 0.0, temperature: float = 0.5):
        super().__init__()
        for name, value in (("encoder", encoder), ("decoder", decoder)):
            if value not in ("gcn", "linear"):
                raise ValueError(f"{name} must be 'gcn' or 'linear', got {value!r}")
        if encoder_init not in ("glorot", "uniform"):
            raise ValueError(f"encoder_init must be 'glorot' or 'uniform', got {encoder_init!r}")
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        self.dropout = dropout
        self.samples, self.consistency, self.temperature = samples, consistency, temperature
        self.input_dropout = dropout if input_dropout is None else input_dropout
        self.encoder = GCNConv(in_channels, hidden) if encoder == "gcn" else \
            nn.Linear(in_channels, hidden)
        field = [nn.Dropout(field_dropout), GCNConv(hidden, hidden), nn.Softplus()]
        self.gde = GDEConv(field, **(solver or {}))
        self.decoder = GCNConv(hidden, classes) if decoder == "gcn" else nn.Linear(hidden, classes)
        if encoder_init == "uniform":
            linear = self.encoder.lin if isinstance(self.encoder, GCNConv) else self.encoder
            for param in (linear.weight, self.encoder.bias):
                nn.init.uniform_(param, -hidden ** -0.5, hidden ** -0.5)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        if self.training and self.samples > 1:
            return torch.stack([self.one_pass(x, edge_index) for _ in range(self.samples)])
        return self.one_pass(x, edge_index)

    def one_pass(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """One pass with its own dropout masks: logits ``(N, classes)``."""
        x = F.dropout(x, self.input_dropout, self.training)
        h = F.relu(self.encoder(x, edge_index) if isinstance(self.encoder, GCNConv) else
                   self.encoder(x))
        h = F.dropout(self.gde(h, edge_index), self.dropout, self.training)
        return self.decoder(h, edge_index) if isinstance(self.decoder, GCNConv) else self.decoder(h)

    def consistency_loss(self, logits: Tensor) -> Tensor:
        """``consistency`` times :func:`~graphode.models.consistency_loss` of stacked passes."""
        return self.consistency * consistency_loss(logits, self.temperature)
