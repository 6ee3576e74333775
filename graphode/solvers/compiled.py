"""Fixed-step solves compiled with ``torch.compile``.

A fixed grid has a step count known before the solve starts, so the whole loop unrolls into
one graph: every stage, every output and the stacking of the outputs. Inductor then fuses the
Runge-Kutta combinations into the field's kernels, and ``mode="reduce-overhead"`` on CUDA
records the solve as a CUDA graph, so a forward replays with one launch and no host
synchronisation. Graphs and fields are inputs of the compiled function, not constants: a new
graph of the same size reuses the compiled code; a new size compiles once more (then
dynamically).
"""
from __future__ import annotations

import types
from dataclasses import replace
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .integrate import IntegrationConfig, SolverStats, check_finite_outputs, grid_of, integrate

__all__ = ["compile_options", "integrate_compiled"]

Func = Callable[[Tensor, Tensor], Tensor]

_COMPILED: Dict[Tuple[Any, ...], Callable] = {}


def compile_options(value: Any) -> Optional[Dict[str, Any]]:
    """Keyword arguments of ``torch.compile`` from ``solve``'s ``compile`` argument, or
    ``None`` when compilation is off.

    ``True`` compiles with the defaults, a string is a ``torch.compile`` mode
    (``"reduce-overhead"`` captures CUDA graphs on a GPU, ``"max-autotune"``, ...), and a dict
    is passed to ``torch.compile`` as it is (``{"backend": "aot_eager"}``, ``{"dynamic": True}``).
    """
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, str):
        return {"mode": value}
    if isinstance(value, dict):
        return dict(value)
    raise TypeError(f"compile must be True, False, a torch.compile mode such as "
                    f"'reduce-overhead', or a dict of torch.compile keyword arguments, got "
                    f"{type(value).__name__}")


def _fixed_solve(func: Func, y0: Tensor, times: Tuple[float, ...], config: IntegrationConfig
                 ) -> Tuple[Tensor, int, int]:
    # Traced once per configuration: the counters are Python ints fixed by the grid, so they
    # leave the compiled function as constants.
    stats = SolverStats()
    ys = integrate(func, y0, times, config, stats)
    return torch.stack(ys), stats.nfe, stats.n_accepted


def integrate_compiled(func: Func, y0: Tensor, times: Sequence[float], config: IntegrationConfig,
                       stats: SolverStats, options: Dict[str, Any]) -> Tensor:
    """:func:`~graphode.solvers.integrate` on a fixed grid, compiled; the stacked outputs.

    The finiteness check (``config.check_finite``) runs after the compiled solve, eagerly,
    so that the compiled graph holds no synchronisation.
    """
    check_finite, config = config.check_finite, replace(config, check_finite=False)
    times = tuple(times)
    key = (tuple(sorted((k, repr(v)) for k, v in options.items())), times, repr(config))
    solve = _COMPILED.get(key)
    if solve is None:
        # A copy of the code object per grid and configuration: Dynamo caps the compiled
        # variants of one code object (recompile_limit), so sharing one would silently fall
        # back to eager after a few grids.
        code = _fixed_solve.__code__.replace()
        fresh = types.FunctionType(code, _fixed_solve.__globals__, _fixed_solve.__name__)
        solve = _COMPILED[key] = torch.compile(fresh, **options)
    ys, nfe, steps = solve(func, y0, times, config)
    stats.nfe += nfe
    stats.n_accepted += steps
    if check_finite:
        check_finite_outputs(ys.unbind(0), times, grid_of(times, config))
    return ys
