"""Jump diffusions: an SDE plus a compound-Poisson jump term (neural jump SDEs).

``dy = f dt + g dW + J(t, y-) dN`` where every row of the state (a node) has its own Poisson
process ``N`` of rate ``lambda``. Between the jumps the SDE is solved by :func:`sdeint` on one
Brownian path; the solve stops at every jump time, the rows that jump receive ``J(t, y-)``,
and it restarts from there, so jumps happen exactly at their times. The jump times are either
sampled (reproducibly, from ``entropy``) or given, e.g. observed events; the log-likelihood
of the jump times under the rate is returned with the path, so that a learned rate is fitted
by maximising it (Jia and Benson, Neural Jump Stochastic Differential Equations, 2019).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .brownian import BrownianMotion
from .solve import _resolve_method, _times, sdeint
from .terms import Terms

__all__ = ["JumpSolution", "sdeint_jump"]

Events = Sequence[Tuple[float, Union[Sequence[int], Tensor]]]


@dataclass
class JumpSolution:
    """The result of :func:`sdeint_jump`.

    Attributes:
        ys: the states at ``ts``, shape ``(len(ts), *y0.shape)``; at a jump time, the state
            after the jump (paths are right-continuous).
        jumps: ``(t, rows)`` for every jump time, ``rows`` the indices of the rows that jumped.
        log_likelihood: the log-likelihood of the jump times under the rate,
            ``sum_i n_i log(lambda_i) - lambda_i (t1 - t0)`` (differentiable in the rate).
    """

    ys: Tensor
    jumps: List[Tuple[float, Tensor]]
    log_likelihood: Tensor


def _sample(rates: Tensor, t0: float, t1: float, entropy: Optional[int]) -> List[Tuple[float, Tensor]]:
    """Poisson jump times of every row on ``(t0, t1)``, grouped by time."""
    generator = torch.Generator().manual_seed(
        int(torch.randint(0, 2 ** 62, ()).item()) if entropy is None else int(entropy))
    counts = torch.poisson(rates.detach().double().cpu() * (t1 - t0), generator=generator).long()
    rows = torch.repeat_interleave(torch.arange(rates.numel()), counts)
    times = t0 + (t1 - t0) * torch.rand(rows.numel(), generator=generator, dtype=torch.float64)
    order = torch.argsort(times)
    events: List[Tuple[float, Tensor]] = []
    for t, r in zip(times[order].tolist(), rows[order]):
        if t <= t0 or t >= t1:
            continue
        if events and events[-1][0] == t:
            events[-1] = (t, torch.cat([events[-1][1], r.view(1)]))
        else:
            events.append((t, r.view(1)))
    return events


def sdeint_jump(sde: Any, y0: Tensor, ts: Any, *, jump: Callable[[Tensor, Tensor], Tensor],
                rate: Union[float, Tensor], jump_times: Optional[Events] = None,
                bm: Any = None, method: Optional[str] = None, dt: float = 1e-3,
                entropy: Optional[int] = None, **kwargs: Any) -> JumpSolution:
    """Solve the jump diffusion ``dy = f dt + g dW + J(t, y-) dN`` (see the module).

    Args:
        sde: the SDE between jumps, as for :func:`sdeint` (``g = 0`` gives an ODE with jumps).
        y0: the initial state; every row (the leading dimension) has its own Poisson process.
        ts: output times, strictly increasing.
        jump: ``J(t, y)``: the jump of every row, evaluated on the state just before the jump
            (only the rows that jump receive it).
        rate: the jump rate ``lambda > 0``: a number, or a tensor of one rate or one rate per
            row (which may require a gradient: see ``log_likelihood``).
        jump_times: given jumps, ``[(t, rows), ...]`` with ``t`` inside ``(ts[0], ts[-1])``,
            in place of sampled ones (observed events).
        bm: the Brownian motion (default: a :class:`BrownianMotion` from ``entropy``).
        method, dt, kwargs: for :func:`sdeint` (further keywords: ``gradient``, ``names``,
            ``options``, ...; fixed steps, so ``adaptive`` is not taken).
        entropy: the seed of the jump times and of the default Brownian motion.
    """
    if kwargs.get("adaptive"):
        raise ValueError("sdeint_jump steps with fixed dt between jumps: leave adaptive=False")
    if not callable(jump):
        raise TypeError("jump must be a callable J(t, y) returning the jump of every row")
    times = _times(ts, y0)
    t0, t1 = times[0], times[-1]
    rows = y0.size(0)
    rates = torch.as_tensor(rate, dtype=y0.dtype, device=y0.device)
    if rates.dim() == 0:
        rates = rates.expand(rows)
    if rates.shape != (rows,):
        raise ValueError(f"rate must be a number or a tensor of 1 or {rows} (one per row) rates, "
                         f"got shape {tuple(rates.shape)}")
    if not bool((rates > 0).all()):
        raise ValueError("rate must be positive")
    if jump_times is None:
        events = _sample(rates, t0, t1, entropy)
    else:
        events = []
        for t, r in sorted(jump_times, key=lambda e: float(e[0])):
            r = torch.as_tensor(r, dtype=torch.long).view(-1)
            if not t0 < float(t) < t1:
                raise ValueError(f"jump time {t} lies outside ({t0}, {t1})")
            if r.numel() and (int(r.min()) < 0 or int(r.max()) >= rows):
                raise ValueError(f"jump rows must index the {rows} rows of y0, got {r.tolist()}")
            events.append((float(t), r))
    counts = torch.zeros(rows, dtype=y0.dtype, device=y0.device)
    for _, r in events:
        counts.index_add_(0, r.to(y0.device), torch.ones(r.numel(), dtype=y0.dtype, device=y0.device))
    log_likelihood = (counts * rates.log() - rates * (t1 - t0)).sum()
    if bm is None:
        terms = Terms(sde, kwargs.get("names"))
        start = torch.full((), t0, dtype=y0.dtype, device=y0.device)
        m = terms.check(start, y0, None)
        solver = _resolve_method(method, terms, kwargs.get("options"))
        size = tuple(y0.shape) if terms.noise_type == "diagonal" else (*y0.shape[:-1], m)
        bm = BrownianMotion(t0, t1, size, dtype=y0.dtype, device=y0.device, entropy=entropy,
                            dt=dt, levy_area=solver.levy_area)
    # every output time and jump time, in order; a jump at an output time comes first
    marks = sorted({*times, *(t for t, _ in events)})
    by_time = dict(events)
    outputs = {t: i for i, t in enumerate(times)}
    ys: List[Optional[Tensor]] = [None] * len(times)
    y = y0
    ys[0] = y0
    for a, b in zip(marks, marks[1:]):
        y = sdeint(sde, y, [a, b], bm=bm, method=method, dt=min(dt, b - a), **kwargs)[-1]
        if b in by_time:
            mask = torch.zeros(rows, dtype=torch.bool, device=y.device)
            mask[by_time[b].to(y.device)] = True
            mask = mask.view(rows, *([1] * (y.dim() - 1)))
            y = torch.where(mask, y + jump(torch.full((), b, dtype=y.dtype, device=y.device), y), y)
        if b in outputs:
            ys[outputs[b]] = y
    assert all(v is not None for v in ys)
    return JumpSolution(torch.stack(ys), events, log_likelihood)  # type: ignore[arg-type]
