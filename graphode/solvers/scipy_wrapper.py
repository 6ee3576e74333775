"""``method="scipy_solver"``: SciPy's ``solve_ivp`` integrators (LSODA, Radau, BDF, RK45, ...).

For reference solutions and comparisons, as torchdiffeq's wrapper: the field runs on the
state's device, the integrator on the host in float64, and no gradient flows through it (a
solve that would need one is refused before it starts).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .base import Func, Solver, register

__all__ = ["ScipySolver"]

_SCIPY_METHODS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")


class ScipySolver(Solver):
    """SciPy's ``solve_ivp`` with ``rtol``, ``atol``, ``max_step`` (and ``min_step`` for LSODA).

    Args:
        solver: the ``solve_ivp`` method: ``"LSODA"`` (default, as torchdiffeq), ``"Radau"``,
            ``"BDF"``, ``"RK45"``, ``"RK23"`` or ``"DOP853"``.
    """

    name = "scipy_solver"
    differentiable = False
    gradients = ("autograd",)
    options = frozenset({"solver"})

    def __init__(self, solver: str = "LSODA"):
        if solver not in _SCIPY_METHODS:
            raise ValueError(f"solver must be one of {', '.join(_SCIPY_METHODS)}, got {solver!r}")
        self.solver = solver

    def settings(self) -> Dict[str, Any]:
        return {"solver": self.solver}

    def integrate(self, func: Func, y0: Tensor, times: Sequence[float], config: Any, stats: Any,
                  record: Optional[List[Any]] = None) -> List[Tensor]:
        from scipy.integrate import solve_ivp

        from .integrate import SolveError
        shape, dtype, device = y0.shape, y0.dtype, y0.device

        def field(t: float, y: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                state = torch.as_tensor(y, dtype=torch.float64).to(device, dtype).reshape(shape)
                out = func(torch.full((), t, dtype=dtype, device=device), state)
            return out.detach().to("cpu", torch.float64).reshape(-1).numpy()

        if torch.is_grad_enabled():
            # One evaluation with autograd on: a field whose output carries a graph reads
            # tensors that want gradients (parameters), which this solve would drop silently.
            probe = func(torch.full((), times[0], dtype=dtype, device=device), y0)
            stats.nfe += 1
            if probe.requires_grad:
                raise ValueError(
                    "method='scipy_solver' computes no gradients, but the field's output "
                    "requires one (it reads parameters or a y0 that require grad): run the "
                    "solve under torch.no_grad(), or use a differentiable method")
        extra: Dict[str, Any] = {}
        if math.isfinite(config.max_step):
            extra["max_step"] = config.max_step
        if self.solver == "LSODA" and config.min_step > 0:
            extra["min_step"] = config.min_step
        if config.first_step is not None:
            extra["first_step"] = config.first_step
        start = y0.detach().to("cpu", torch.float64).reshape(-1).numpy()
        sol = solve_ivp(field, (times[0], times[-1]), start, method=self.solver, t_eval=times,
                        rtol=config.rtol, atol=config.atol, **extra)
        stats.nfe += int(sol.nfev)
        ys = [torch.as_tensor(sol.y[:, i]).to(device, dtype).reshape(shape)
              for i in range(sol.y.shape[1])]
        if not sol.success:
            reached = float(sol.t[-1]) if len(sol.t) else times[0]
            raise SolveError(f"scipy_solver ({self.solver}) failed at t={reached:.6g}: "
                             f"{sol.message}", reached, math.nan, ys)
        return [y0] + ys[1:]


@register("scipy_solver")
def _scipy_solver() -> Solver:
    return ScipySolver()
