"""TrajectoryGDE: multi-agent forecasting by a second-order graph ODE whose graph (who
interacts with whom) is recomputed from the agents' positions at every evaluation."""
from __future__ import annotations

import copy
from typing import Any, Dict, Optional

import torch
from torch import Tensor, nn

from ..api import solve
from ..solvers.integrate import SolverStats

__all__ = ["RadiusInteraction", "TrajectoryGDE", "pad_windows"]


def pad_windows(windows, obs: int):
    """A list of ``(A_k, L, 2)`` windows as one padded batch: positions ``(B, A, L, 2)`` and
    the agent mask ``(B, A)``."""
    agents = max(w.size(0) for w in windows)
    length = windows[0].size(1)
    pos = windows[0].new_zeros(len(windows), agents, length, 2)
    mask = torch.zeros(len(windows), agents, dtype=torch.bool)
    for k, w in enumerate(windows):
        pos[k, : w.size(0)] = w
        mask[k, : w.size(0)] = True
    return pos, mask


class RadiusInteraction(nn.Module):
    r"""The field of :class:`TrajectoryGDE` on the state :math:`[\mathbf{p}, \mathbf{v},
    \mathbf{h}]` of every agent (position, velocity, a constant intent code),

    .. math::
        \dot{\mathbf{p}}_i = \mathbf{v}_i, \quad
        \dot{\mathbf{v}}_i = a\big(\mathbf{v}_i, \mathbf{h}_i\big) + \sum_{j \ne i}
            w\big(\lVert \mathbf{p}_j - \mathbf{p}_i \rVert\big)\,
            m\big(\mathbf{p}_j - \mathbf{p}_i, \mathbf{v}_j - \mathbf{v}_i, \mathbf{h}_i\big),
        \quad \dot{\mathbf{h}}_i = 0,

    where :math:`w(d) = \sigma((r - d) / s)` is a smooth radius graph: agents within about
    ``radius`` metres of each other interact, and the graph is recomputed from the positions
    at every evaluation, as the agents move. :math:`a` and :math:`m` are MLPs (bounded by
    ``tanh``, scaled by ``max_accel``).
    """

    def __init__(self, hidden: int, width: int = 64, radius: float = 2.0,
                 softness: float = 0.2, max_accel: float = 0.5):
        super().__init__()
        self.hidden, self.radius, self.softness, self.max_accel = hidden, radius, softness, \
            max_accel
        self.own = nn.Sequential(nn.Linear(2 + hidden, width), nn.Tanh(), nn.Linear(width, 2))
        # m's first layer is linear in (p_j - p_i, v_j - v_i, h_i): computed per agent, then
        # differenced per pair, so only its second layer runs on the A^2 pairs
        self.pair_in = nn.Linear(4 + hidden, width)
        self.pair_out = nn.Linear(width, 2)
        self.mask: Optional[Tensor] = None
        self.pairs: Optional[Tensor] = None

    def bind(self, mask: Tensor) -> "RadiusInteraction":
        """Which padded agents are real ``(B, A)``, and so which pairs can interact (once per
        solve); returns a bound snapshot to solve with."""
        self.mask = mask
        eye = torch.eye(mask.size(1), dtype=torch.bool, device=mask.device)
        self.pairs = mask.unsqueeze(1) & mask.unsqueeze(2) & ~eye
        return copy.copy(self)

    def forward(self, t: Tensor, state: Tensor) -> Tensor:
        assert self.mask is not None and self.pairs is not None, "bind(mask) first"
        p, v, h = state[..., :2], state[..., 2:4], state[..., 4:]
        rel_p = p.unsqueeze(1) - p.unsqueeze(2)  # (B, A_i, A_j, 2): p_j - p_i
        dist = rel_p.norm(dim=-1)
        weight = torch.sigmoid((self.radius - dist) / self.softness) * self.pairs
        w = self.pair_in.weight
        motion = torch.cat([p, v], -1) @ w[:, :4].T  # (B, A, width)
        own = h @ w[:, 4:].T + self.pair_in.bias
        hidden = torch.tanh(motion.unsqueeze(1) - motion.unsqueeze(2) + own.unsqueeze(2))
        push = self.pair_out((weight.unsqueeze(-1) * hidden).sum(2)) + \
            (weight.sum(2, keepdim=True) - 1) * self.pair_out.bias
        accel = self.max_accel * torch.tanh(self.own(torch.cat([v, h], -1)) + push)
        return torch.cat([v, accel, torch.zeros_like(h)], -1) * self.mask.unsqueeze(-1)


class TrajectoryGDE(nn.Module):
    r"""Forecasts the positions of interacting agents (the GDE paper's multi-agent task): a
    GRU reads each agent's observed steps into an intent code, and from the last observation
    a second-order graph ODE (:class:`RadiusInteraction`) moves every agent, its neighbours
    found anew from the positions at each evaluation. Times are in observation steps.

    Args:
        hidden: size of the intent code.
        width: width of the field's MLPs.
        radius: interaction radius (metres).
        method, step_size, rtol, atol, gradient: the solver (see :func:`graphode.solve`).

    Shapes:
        - **input:** observed positions :math:`(B, A, T_{obs}, 2)`, agent mask :math:`(B, A)`,
          ``pred`` steps to forecast
        - **output:** positions :math:`(B, A, T_{pred}, 2)`
    """

    def __init__(self, hidden: int = 32, width: int = 64, radius: float = 2.0,
                 method: str = "midpoint", step_size: Optional[float] = 1.0, rtol: float = 1e-3,
                 atol: float = 1e-4, gradient: str = "autograd"):
        super().__init__()
        self.encoder = nn.GRU(2, hidden, batch_first=True)
        self.field = RadiusInteraction(hidden, width, radius)
        self.solver: Dict[str, Any] = dict(method=method, step_size=step_size, rtol=rtol,
                                           atol=atol, gradient=gradient)
        self.stats = SolverStats()

    @property
    def last_solves(self):
        return [self.stats]

    def forward(self, observed: Tensor, mask: Tensor, pred: int) -> Tensor:
        if observed.dim() != 4 or observed.size(-1) != 2 or observed.size(2) < 2:
            raise ValueError(f"observed must have shape (batch, agents, steps >= 2, 2), got "
                             f"{tuple(observed.shape)}")
        batch, agents, steps, _ = observed.shape
        steps_v = observed[:, :, 1:] - observed[:, :, :-1]  # (B, A, T-1, 2)
        _, h = self.encoder(steps_v.reshape(batch * agents, steps - 1, 2))
        h = h[-1].view(batch, agents, -1)
        state = torch.cat([observed[:, :, -1], steps_v[:, :, -1], h], -1)
        field = self.field.bind(mask.to(observed.device))
        sol = solve(field, state, [float(k) for k in range(pred + 1)],
                    adjoint_params=list(self.field.parameters()), **self.solver)
        self.stats = sol.stats
        return sol.ys[1:, ..., :2].permute(1, 2, 0, 3)  # (B, A, pred, 2)
