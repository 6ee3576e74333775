"""What every gradient mode shares: the problem bundle and the parameter lookup."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Set, Tuple

import torch
from torch import Tensor

from ..solvers.integrate import IntegrationConfig, SolverStats

__all__ = ["GRADIENT_MODES", "Adjoint", "Problem", "resolve_params"]

GRADIENT_MODES = ("autograd", "adjoint", "checkpoint")


@dataclass(frozen=True)
class Adjoint:
    """``gradient="adjoint"`` with its own settings, as one object:
    ``solve(..., gradient=Adjoint(rtol=1e-6, seminorm=True))``.

    Args:
        method: the backward solve's method (default: the forward one).
        rtol, atol: the backward solve's tolerances (default: the forward ones).
        step_size: the backward solve's fixed step.
        seminorm: leave the parameter adjoints out of the backward error norm.
        params: the tensors to differentiate besides the state (default: the field's
            parameters).
    """

    method: Optional[object] = None
    rtol: Optional[float] = None
    atol: Optional[float] = None
    step_size: Optional[float] = None
    seminorm: bool = False
    params: Optional[Sequence[Tensor]] = None

    def solve_kwargs(self) -> dict:
        """The equivalent ``adjoint_*`` keywords of :func:`graphode.solve`."""
        return {"adjoint_method": self.method, "adjoint_rtol": self.rtol,
                "adjoint_atol": self.atol, "adjoint_step_size": self.step_size,
                "adjoint_seminorm": self.seminorm, "adjoint_params": self.params}


@dataclass
class Problem:
    """One solve, bundled so that autograd Functions take it as a single argument.

    ``func(t, y)`` receives ``t`` as a 0-dim tensor in the state's dtype. ``adjoint`` is the
    configuration of the backward solve (adjoint mode only); ``adjoint_norm``, if given,
    replaces its error norm and receives the augmented state as the tuple
    ``(t, y, a, *parameter_adjoints)`` (``t`` a 0-dim zero, as torchdiffeq passes it), and
    the backward configuration's callbacks receive the same tuple as their state.
    """

    func: Callable[[Tensor, Tensor], Tensor]
    times: List[float]
    config: IntegrationConfig
    stats: SolverStats
    adjoint: Optional[IntegrationConfig] = None
    adjoint_seminorm: bool = False
    adjoint_norm: Optional[Callable[[Tuple[Tensor, ...]], Tensor]] = None


def resolve_params(func: object, adjoint_params: Optional[Sequence[Tensor]], mode: str
                   ) -> Tuple[Tensor, ...]:
    """The tensors whose gradients ``mode`` must compute itself."""
    if adjoint_params is None:
        if not isinstance(func, torch.nn.Module):
            raise ValueError(
                f"gradient={mode!r} needs to know the vector field's parameters: pass `func` as "
                f"an nn.Module, or give them as `adjoint_params=[...]` (use `adjoint_params=()` "
                f"if the field has none); got func of type {type(func).__name__}")
        adjoint_params = list(func.parameters())
    seen, params = set(), []
    for p in adjoint_params:
        if not isinstance(p, Tensor):
            raise TypeError(f"adjoint_params must hold tensors, got {type(p).__name__}")
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            params.append(p)
    if torch.is_grad_enabled():
        _check_independent(params, mode)
    return tuple(params)


def _check_independent(params: List[Tensor], mode: str, limit: int = 100_000) -> None:
    """Raise if a computed parameter's history reaches another parameter.

    The adjoint and checkpoint modes take the field's vector-Jacobian product with every
    parameter; with ``w`` computed from ``p`` (an edge weight from the field's own attention,
    say), the product for ``p`` would run on through ``w``'s history, which the surrounding
    backward pass follows too (counting that path twice) or has already freed."""
    computed = [(i, p) for i, p in enumerate(params) if p.grad_fn is not None]
    if not computed:
        return
    position = {id(p): i for i, p in enumerate(params)}
    for i, p in computed:
        stack: List[Any] = [p.grad_fn]
        visited: Set[Any] = set()
        while stack and len(visited) < limit:
            node = stack.pop()
            if node is None or node in visited:
                continue
            visited.add(node)
            variable = getattr(node, "variable", None)
            if variable is not None and id(variable) in position and position[id(variable)] != i:
                raise ValueError(
                    f"adjoint_params[{i}] is computed from adjoint_params"
                    f"[{position[id(variable)]}]: gradient={mode!r} would differentiate through "
                    f"that computation itself. Solve on a detached leaf copy of it and hand its "
                    f"gradient back (graphode.nn.solve_on_leaves does both; GDEConv and "
                    f"SecondOrderGDEConv do it for learned edge weights), or use "
                    f"gradient='autograd'")
            stack.extend(next_fn for next_fn, _ in node.next_functions)
