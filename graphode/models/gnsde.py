"""A graph neural SDE classifier: the GCDE with Brownian noise in its continuous block."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GCNConv

from ..nn import GraphSDE
from ._input import input_dropout, nonzeros
from .consistency import consistency_loss

__all__ = ["GNSDE"]


class GNSDE(nn.Module):
    r"""A graph neural SDE node classifier (after Bergna et al., `"Graph Neural Stochastic
    Differential Equations" <https://arxiv.org/abs/2308.12316>`_): the architecture of
    :class:`~graphode.models.GCDE` (input dropout, a GCN encoder, a continuous block, a GCN
    decoder) with the block made stochastic,

    .. math::
        d\mathbf{H} = \mathrm{softplus}\big(\mathrm{GCN}(\mathrm{dropout}(\mathbf{H}))\big)\,dt
        + \mathrm{diag}(\sigma)\,d\mathbf{W}_t,

    :math:`\sigma` a learned scale per channel (:class:`~graphode.nn.GraphSDE` with
    ``diffusion="constant"``), Euler-Maruyama steps of ``dt``.

    Training draws one path per step (the noise acts as a regulariser, as dropout does), or
    ``samples`` passes, each with its own dropout masks and Brownian path, whose logits come
    back stacked for the mean cross-entropy plus :meth:`consistency_loss` (the GCDE's
    multi-pass training with the path as one more source of randomness). In
    evaluation the block draws ``eval_samples`` paths side by side in one solve and the model
    returns the log of the mean predicted probabilities, so ``argmax`` is the prediction and
    ``exp`` the predictive distribution that calibration and out-of-distribution scores read.

    Args:
        in_channels, hidden, classes: feature, hidden and class counts.
        dropout, field_dropout, input_dropout, encoder_init: as for
            :class:`~graphode.models.GCDE`.
        noise_scale: the initial diffusion scale :math:`\sigma`.
        t_end, dt: integration time and Euler-Maruyama step.
        eval_samples: paths averaged in evaluation.
        samples: random passes per training step.
        consistency, temperature: weight and sharpening temperature of the consistency loss.
        gradient: ``"autograd"`` or ``"checkpoint"`` (the field's dropout rules out the
            adjoint).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)`
        - **output:** logits :math:`(|\mathcal{V}|, classes)` in training, or
          :math:`(samples, |\mathcal{V}|, classes)` with ``samples`` > 1; log mean
          probabilities in evaluation
    """

    def __init__(self, in_channels: int, hidden: int, classes: int, dropout: float = 0.5,
                 field_dropout: float = 0.0, input_dropout: Optional[float] = None,
                 encoder_init: str = "glorot", noise_scale: float = 0.5, t_end: float = 1.0,
                 dt: float = 0.1, eval_samples: int = 16, gradient: str = "autograd",
                 samples: int = 1, consistency: float = 0.0, temperature: float = 0.5):
        super().__init__()
        if encoder_init not in ("glorot", "uniform"):
            raise ValueError(f"encoder_init must be 'glorot' or 'uniform', got {encoder_init!r}")
        if not isinstance(eval_samples, int) or eval_samples < 1:
            raise ValueError(f"eval_samples must be a positive integer, got {eval_samples!r}")
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        self.samples, self.consistency, self.temperature = samples, consistency, temperature
        self.dropout, self.eval_samples = dropout, eval_samples
        self.input_dropout = dropout if input_dropout is None else input_dropout
        self.encoder = GCNConv(in_channels, hidden)
        field = [nn.Dropout(field_dropout), GCNConv(hidden, hidden), nn.Softplus()]
        self.sde = GraphSDE(field, "constant", channels=hidden, noise_scale=noise_scale,
                            t_span=(0.0, t_end), dt=dt, gradient=gradient)
        self.decoder = GCNConv(hidden, classes)
        if encoder_init == "uniform":
            for param in (self.encoder.lin.weight, self.encoder.bias):
                nn.init.uniform_(param, -hidden ** -0.5, hidden ** -0.5)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        # mostly-zero (bag-of-words) features: input dropout draws for the nonzeros only
        index = nonzeros(x) if self.training and self.input_dropout > 0 else None
        if self.training and self.samples > 1:
            return torch.stack([self.one_pass(x, edge_index, index)
                                for _ in range(self.samples)])
        return self.one_pass(x, edge_index, index)

    def one_pass(self, x: Tensor, edge_index: Tensor, index: Optional[Tensor] = None) -> Tensor:
        """One pass with its own dropout masks: logits ``(N, classes)`` in training, one
        Brownian path; the log mean probabilities of ``eval_samples`` paths in evaluation.
        ``index``: the nonzero entries of ``x`` (:func:`nonzeros`), for a sparse dropout."""
        x = input_dropout(x, self.input_dropout, self.training, index)
        h = F.relu(self.encoder(x, edge_index))
        samples = 1 if self.training else self.eval_samples
        self.sde.num_samples = samples
        h = self.sde(h, edge_index)
        h = F.dropout(h, self.dropout, self.training)
        if samples == 1:
            return self.decoder(h, edge_index)
        logits = torch.stack([self.decoder(s, edge_index) for s in h])
        return torch.logsumexp(logits.log_softmax(-1), 0) - torch.log(
            torch.tensor(float(samples), dtype=logits.dtype, device=logits.device))

    def consistency_loss(self, logits: Tensor) -> Tensor:
        """``consistency`` times :func:`~graphode.models.consistency_loss` of stacked passes."""
        return self.consistency * consistency_loss(logits, self.temperature)

    @property
    def noise(self) -> Tensor:
        """The learned diffusion scale per channel."""
        return F.softplus(self.sde.noise.detach())

    def extra_repr(self) -> str:
        return f"eval_samples={self.eval_samples}, samples={self.samples}"
