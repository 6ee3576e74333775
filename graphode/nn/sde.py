"""GraphSDE: a stochastic GDE block, ``dH = f(t, H; G) dt + g(t, H; G) dW``."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

from ..sde.brownian import _mix
from ..sde.solve import GRADIENTS, sdeint
from .field import GraphVectorField, channels_of
from .sparse import to_edge_index
from .validate import check_graph

__all__ = ["GraphSDE"]


class _Terms:
    """The drift and diffusion of one forward, in the shape ``sdeint`` takes."""
    noise_type = "diagonal"

    def __init__(self, block: "GraphSDE", field: Module, noise_field: Optional[Module]):
        # the fields bound for this forward (snapshots: a later bind leaves them be)
        self.block, self.sde_type = block, block.sde_type
        self.field, self.noise_field = field, noise_field

    def f(self, t: Tensor, h: Tensor) -> Tensor:
        return self.field(t, h)

    def g(self, t: Tensor, h: Tensor) -> Tensor:
        block = self.block
        if block.diffusion == "constant":
            return F.softplus(block.noise).expand_as(h)
        if block.diffusion == "node":
            return F.softplus(block.noise_layer(h))
        assert self.noise_field is not None, "a graph-layer diffusion is bound in forward"
        return self.noise_field(t, h)


class GraphSDE(Module):
    r"""A graph neural SDE block (Bergna et al., `"Graph Neural Stochastic Differential
    Equations" <https://arxiv.org/abs/2308.12316>`_): node features follow

    .. math::
        d\mathbf{H} = f\big(t, \mathbf{H}; \mathcal{G}\big)\,dt
        + g\big(t, \mathbf{H}\big)\,d\mathbf{W}_t, \qquad \mathbf{H}(t_0) = \mathbf{X},

    with diagonal noise, and the block returns samples of :math:`\mathbf{H}(t_1)`.

    Args:
        field: the drift: anything :class:`GDEConv` accepts (a message-passing layer, or a
            sequence of layers and activations).
        diffusion: ``"constant"`` (a learned scale per channel), ``"node"`` (a scale per node
            and channel from the state, ``softplus(Linear(H))``), or a graph layer (or
            sequence) whose output is the diffusion.
        channels: the state's channels (needed by ``"constant"`` and ``"node"`` when the
            field's layers do not tell).
        noise_scale: the initial scale of ``"constant"`` and ``"node"``.
        t_span: integration interval.
        method, sde_type, dt: passed to :func:`graphode.sdeint` (``"euler"`` for Ito,
            ``"reversible_heun"`` or ``"midpoint"`` for Stratonovich, ...).
        num_samples: paths drawn side by side in one solve (the graph is repeated as a
            disjoint union, so one sparse product serves all samples).
        gradient: ``"autograd"``, ``"checkpoint"`` or ``"adjoint"`` (reversible Heun's exact
            adjoint with ``method="reversible_heun"``, the backsolve adjoint otherwise; both
            refuse a drift that draws random numbers, such as dropout).
    """

    def __init__(self, field: Union[Module, Sequence[Module]],
                 diffusion: Union[str, Module, Sequence[Module]] = "constant", *,
                 channels: Optional[int] = None, noise_scale: float = 0.1,
                 t_span: Tuple[float, float] = (0.0, 1.0), method: str = "euler",
                 sde_type: str = "ito", dt: float = 0.1, num_samples: int = 1,
                 gradient: str = "autograd", validate: bool = True):
        super().__init__()
        self.field = field if isinstance(field, GraphVectorField) else GraphVectorField(field)
        if channels is None:
            known = [c for m in self.field.layers if (c := channels_of(m)) is not None]
            channels = known[-1][1] if known else None
        if isinstance(diffusion, str):
            if diffusion not in ("constant", "node"):
                raise ValueError(f"diffusion must be 'constant', 'node' or a graph layer, got "
                                 f"{diffusion!r}")
            if channels is None:
                raise ValueError(f"diffusion={diffusion!r} needs the number of channels: pass "
                                 f"channels=")
            # softplus^-1(noise_scale): the scale starts at noise_scale
            start = float(torch.log(torch.expm1(torch.tensor(float(noise_scale)))))
            if diffusion == "constant":
                self.noise = torch.nn.Parameter(torch.full((channels,), start))
            else:
                self.noise_layer = torch.nn.Linear(channels, channels)
                torch.nn.init.zeros_(self.noise_layer.weight)
                torch.nn.init.constant_(self.noise_layer.bias, start)
            self.diffusion = diffusion
        else:
            self.noise_field = GraphVectorField(diffusion)
            self.diffusion = "graph"
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        self.t_span = (float(t_span[0]), float(t_span[1]))
        self.method, self.sde_type, self.dt = method, sde_type, dt
        self.num_samples, self.gradient, self.validate = num_samples, gradient, validate

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None,
                batch: Optional[Tensor] = None,
                entropy: Union[int, Sequence[int], Tensor, None] = None,
                times: Optional[Sequence[float]] = None) -> Tensor:
        """Samples of the final state: ``(N, C)``, or ``(num_samples, N, C)``; with
        ``times`` (increasing output times, the first the start, default ``t_span``) the
        samples at every one of them, ``(len(times), N, C)`` or ``(len(times), num_samples, N,
        C)``, one path through all.

        ``entropy`` seeds the Brownian motion (one seed per graph with ``batch``, so a
        graph's samples do not depend on its batch mates); by default it is drawn from
        torch's generator, so ``torch.manual_seed`` makes a forward reproducible."""
        edge_index, edge_weight = to_edge_index(edge_index, edge_weight)
        if self.validate:
            check_graph(x, edge_index, edge_weight, batch, [self.field])
        n, samples = x.size(0), self.num_samples
        if samples > 1:
            offsets = torch.arange(samples, device=x.device).repeat_interleave(
                edge_index.size(1)) * n
            edge_index = edge_index.repeat(1, samples) + offsets
            edge_weight = None if edge_weight is None else edge_weight.repeat(samples)
        h0 = x.repeat(samples, 1) if samples > 1 else x
        field = self.field.bind(edge_index, edge_weight, h0.size(0), x.dtype, x.device)
        noise = getattr(self, "noise_field", None)
        noise_field = None if noise is None else \
            noise.bind(edge_index, edge_weight, h0.size(0), x.dtype, x.device)
        seeds, rows = self._seeds(entropy, batch, n, x.device)
        params: list = [*self.parameters()]
        if edge_weight is not None and edge_weight.requires_grad:
            params.append(edge_weight)
        ts = list(self.t_span) if times is None else [float(t) for t in times]
        ys = sdeint(_Terms(self, field, noise_field), h0, ts, method=self.method, dt=self.dt,
                    gradient=self.gradient, adjoint_params=params, entropy=seeds, batch=rows)
        if samples > 1:
            ys = ys.view(len(ts), samples, n, -1)
        return ys[-1] if times is None else ys

    def _seeds(self, entropy, batch: Optional[Tensor], n: int, device: torch.device):
        """Seeds and the graph index of every row of the repeated state."""
        if entropy is None:
            entropy = int(torch.randint(0, 2 ** 62, ()).item())
        if batch is None:
            if not isinstance(entropy, int):
                raise ValueError("a sequence of seeds (one per graph) needs batch=")
            if self.num_samples == 1:
                return entropy, None
            rows = torch.arange(self.num_samples, device=device).repeat_interleave(n)
            return [_mix(entropy, s) for s in range(self.num_samples)], rows
        graphs = int(batch.max()) + 1 if batch.numel() else 0
        per_graph = [_mix(entropy, g) for g in range(graphs)] if isinstance(entropy, int) \
            else [int(e) for e in (entropy.tolist() if isinstance(entropy, Tensor) else entropy)]
        if len(per_graph) != graphs:
            raise ValueError(f"entropy holds {len(per_graph)} seeds for {graphs} graphs")
        seeds = [_mix(seed, s) if self.num_samples > 1 else seed
                 for s in range(self.num_samples) for seed in per_graph]
        rows = torch.cat([batch + s * graphs for s in range(self.num_samples)])
        return seeds, rows

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({list(self.field.layers)}, diffusion="
                f"'{self.diffusion}', method='{self.method}', num_samples={self.num_samples})")
