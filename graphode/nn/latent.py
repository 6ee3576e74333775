"""LatentGDE: a latent graph ODE (Rubanova et al., 2019) with an ODE-RNN graph encoder."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear, Module, Parameter

from ..api import solve
from ..solvers.integrate import SolverStats
from .field import GraphVectorField
from .gde import with_graph_inputs
from .gde_gru import GDEGRU, batch_graph
from .gru_ode import GraphGRUODE

__all__ = ["LatentGDE"]


class LatentGDE(Module):
    r"""A latent ODE on a graph, after Rubanova et al., `"Latent ODEs for Irregularly-Sampled
    Time Series" <https://arxiv.org/abs/1907.03907>`_, with graph neural ODEs in both halves.

    The encoder is an ODE-RNN (a :class:`GDEGRU`) run backwards in time over the observed
    window; its state at the first observation time :math:`t_0` gives, per node, the
    approximate posterior :math:`q(\mathbf{z}_0 \mid \mathbf{X}) = \mathcal{N}(\mu,
    \operatorname{diag}\sigma^2)`. A draw of :math:`\mathbf{z}_0` follows the decoder's graph
    neural ODE through every observation and query time, and a linear map turns each latent
    state into the mean of a Gaussian over the readings, with one learned noise scale:

    .. math::
        \mathbf{Z}(t) = \mathbf{Z}_0 + \int_{t_0}^{t} g\big(\mathbf{Z}(s); \mathcal{G}\big)\,ds,
        \qquad \mathbf{X}(t) \sim \mathcal{N}\big(W\mathbf{Z}(t) + b, s^2 I\big).

    (Anchoring the posterior at the last observation instead, and integrating the decoder
    backwards to reconstruct the window, was tried on Los-loop and forecast far worse: the
    default field contracts forwards in time, so it expands backwards.)

    The model is generative: it reconstructs the observed window and extrapolates it from the
    same latent path, at any times. :meth:`elbo` scores the last forward's reconstruction (and
    forecast, when the targets are given) against the data: the evidence lower bound
    :math:`\mathbb{E}_q[\log p(\mathbf{X} \mid \mathbf{Z})] - \mathrm{KL}(q \,\|\, \mathcal{N}(0,
    I))`, per reading. Train on its negative.

    In training the forward draws :math:`\mathbf{z}_0` from the posterior (reparameterised);
    in evaluation it takes the posterior mean, which gives the point forecast. Set
    ``sample_posterior=True`` to draw in evaluation too, as an ELBO estimate needs.

    Args:
        in_channels: input features per node and observation.
        hidden_channels: the encoder's hidden state size per node.
        latent_channels: the latent state size per node (default ``hidden_channels``).
        out_channels: reconstructed and forecast features per node (the first
            ``out_channels`` input features are the ones reconstructed).
        field: the decoder's vector field, any :class:`GDEConv` field (default
            :class:`GraphGRUODE` on the latent state).
        encoder_field: the encoder's, as ``field`` of :class:`GDEGRU`.
        noise_std: the initial scale :math:`s` of the Gaussian over readings (learned).
        method, step_size, rtol, atol, gradient: the solver of both flows (see
            :func:`graphode.solve`); times are in the caller's units.
        **solver_kwargs: further keywords for :func:`graphode.solve`.

    Shapes:
        - **input:** as :class:`GDEGRU`: observations :math:`(B, T, |\mathcal{V}|, F_{in})`
          at ``times`` :math:`(T)`, an optional mask :math:`(B, T)` or :math:`(B, T,
          |\mathcal{V}|)`, ``query_times`` :math:`(Q)` at or after ``times[-1]``, edge
          indices, optional edge weights
        - **output:** forecasts :math:`(B, Q, |\mathcal{V}|, F_{out})`, the decoded means
    """

    def __init__(self, in_channels: int, hidden_channels: int,
                 latent_channels: Optional[int] = None, out_channels: int = 1,
                 field: Optional[Union[Module, Sequence[Module]]] = None,
                 encoder_field: Optional[Union[Module, Sequence[Module]]] = None,
                 noise_std: float = 0.5, method: str = "rk4", step_size: Optional[float] = 1.0,
                 rtol: float = 1e-3, atol: float = 1e-4, gradient: str = "autograd",
                 **solver_kwargs):
        super().__init__()
        if out_channels > in_channels:
            raise ValueError(f"out_channels ({out_channels}) must not exceed in_channels "
                             f"({in_channels}): the decoder reconstructs the first "
                             f"out_channels input features")
        if not noise_std > 0:
            raise ValueError(f"noise_std must be positive, got {noise_std!r}")
        latent_channels = latent_channels or hidden_channels
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.latent_channels, self.out_channels = latent_channels, out_channels
        self.encoder = GDEGRU(in_channels, hidden_channels, 2 * latent_channels,
                              field=encoder_field, method=method, step_size=step_size,
                              rtol=rtol, atol=atol, gradient=gradient, **solver_kwargs)
        self.field = GraphVectorField(field if field is not None
                                      else GraphGRUODE(latent_channels))
        self.decoder = Linear(latent_channels, out_channels)
        # s = softplus(raw): the raw value that gives noise_std
        self._raw_noise0 = math.log(math.expm1(noise_std))
        self.raw_noise = Parameter(torch.tensor(self._raw_noise0))
        self.solver = dict(method=method, step_size=step_size, rtol=rtol, atol=atol,
                           gradient=gradient, **solver_kwargs)
        self.sample_posterior: Optional[bool] = None
        self._stats: List[SolverStats] = []
        self._last: Optional[dict] = None

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        self.field.reset_parameters()
        self.decoder.reset_parameters()
        with torch.no_grad():
            self.raw_noise.fill_(self._raw_noise0)

    @property
    def noise_std(self) -> Tensor:
        """The learned scale :math:`s` of the Gaussian over readings."""
        return F.softplus(self.raw_noise)

    @property
    def last_solves(self) -> List[SolverStats]:
        """The statistics of every solve of the last forward, the encoder's first."""
        return self.encoder.last_solves + list(self._stats)

    def posterior(self, x: Tensor, edge_index: Tensor, times: Tensor,
                  mask: Optional[Tensor] = None, edge_weight: Optional[Tensor] = None):
        """The mean and standard deviation of :math:`q(\\mathbf{z}_0 \\mid \\mathbf{X})`, each
        ``(B * N, latent)``: the encoder reads the window from its last observation back to
        its first (time runs backwards: ``-times`` reversed)."""
        back = -torch.flip(torch.as_tensor(times, dtype=x.dtype, device=x.device), [0])
        h, *_ = self.encoder._encode(x.flip(1), edge_index, back, back[-1:],
                                     None if mask is None else mask.flip(1), edge_weight)
        mean, raw = self.encoder.decoder(h).chunk(2, dim=-1)
        return mean, F.softplus(raw) + 1e-4

    def forward(self, x: Tensor, edge_index: Tensor, times: Tensor, query_times: Tensor,
                mask: Optional[Tensor] = None, edge_weight: Optional[Tensor] = None) -> Tensor:
        batch, steps, n, _ = x.shape
        mean, std = self.posterior(x, edge_index, times, mask, edge_weight)
        sample = self.training if self.sample_posterior is None else self.sample_posterior
        z0 = mean + std * torch.randn_like(std) if sample else mean
        t_obs = [float(v) for v in times]
        t_query = [float(v) for v in torch.as_tensor(query_times).reshape(-1)]
        if not t_query or min(t_query) < t_obs[-1]:
            raise ValueError(f"query_times must be non-empty and at or after the last "
                             f"observation time {t_obs[-1]:g}, got {t_query}")
        ei, ew = batch_graph(edge_index, edge_weight, n, batch)
        bound = self.field.bind(ei, ew, batch * n, x.dtype, x.device)
        grid = sorted(set(t_obs) | set(t_query))
        if len(grid) > 1:
            sol = solve(bound, z0, grid, **with_graph_inputs(self.solver,
                                                             self.solver["gradient"], bound, ew))
            self._stats = [sol.stats]
            decoded = self.decoder(sol.ys)  # (len(grid), B * N, out)
        else:  # one observation, queried at its own time
            self._stats = []
            decoded = self.decoder(z0).unsqueeze(0)
        at = {t: i for i, t in enumerate(grid)}

        def pick(ts: List[float]) -> Tensor:
            out = decoded[torch.tensor([at[t] for t in ts], device=x.device)]
            return out.view(len(ts), batch, n, self.out_channels).transpose(0, 1)

        kl = (-torch.log(std) + 0.5 * (std ** 2 + mean ** 2) - 0.5).sum(-1)  # (B * N,)
        self._last = dict(reconstruction=pick(t_obs), kl=kl.view(batch, n))
        return pick(t_query)

    def elbo(self, x: Tensor, mask: Optional[Tensor] = None, forecast: Optional[Tensor] = None,
             target: Optional[Tensor] = None, target_mask: Optional[Tensor] = None) -> Tensor:
        """The evidence lower bound of the last forward, per reading (a scalar): see
        :meth:`evidence`, whose sum it divides by the number of readings scored."""
        total, count = self.evidence(x, mask, forecast, target, target_mask)
        return total / count.clamp(min=1)

    def evidence(self, x: Tensor, mask: Optional[Tensor] = None,
                 forecast: Optional[Tensor] = None, target: Optional[Tensor] = None,
                 target_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """The evidence lower bound of the last forward, summed over its windows, and the
        number of readings it scored (to average over several batches).

        Args:
            x: the observations that forward read, ``(B, T, N, F_in)``: the first
                ``out_channels`` features are scored.
            mask: which of them were observed, ``(B, T)`` or ``(B, T, N)`` (default all).
            forecast: forward's output; with ``target`` ``(B, Q, N, F_out)``, the forecast
                is scored too (in training: the future is part of the data the model fits).
            target_mask: which targets were observed, ``(B, Q, N)`` (default all).

        The KL term counts once per node, the log-likelihood once per observed reading.
        """
        if self._last is None:
            raise RuntimeError("LatentGDE.elbo scores the last forward: call the model first")
        recon, kl = self._last["reconstruction"], self._last["kl"]
        if recon.shape[:3] != x.shape[:3]:
            raise ValueError(f"x has shape {tuple(x.shape)} but the last forward read windows "
                             f"of shape {tuple(recon.shape[:3])} (batch, time, nodes)")
        seen = torch.ones(x.shape[:3], dtype=torch.bool, device=x.device) if mask is None \
            else mask if mask.dim() == 3 else mask.unsqueeze(-1).expand(x.shape[:3])
        parts = [(recon, x[..., :self.out_channels], seen)]
        if target is not None:
            if forecast is None:
                raise ValueError("elbo scores the targets against the forecast: pass both")
            future = torch.ones(target.shape[:3], dtype=torch.bool, device=target.device) \
                if target_mask is None else target_mask
            parts.append((forecast, target, future))
        std = self.noise_std
        loglik, count = x.new_zeros(()), x.new_zeros(())
        for mean, value, where in parts:
            log_p = -0.5 * ((value - mean) / std) ** 2 - torch.log(std) \
                - 0.5 * math.log(2 * math.pi)
            loglik = loglik + (log_p.sum(-1) * where).sum()
            count = count + where.sum() * self.out_channels
        return loglik - kl.sum(), count

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, {self.hidden_channels}, "
                f"latent={self.latent_channels}, out={self.out_channels}, "
                f"method='{self.solver['method']}')")
