"""Checks that make the adjoint and checkpoint modes refuse what they cannot differentiate.

Both modes compute gradients only for the state and for the tensors they are told about
(``adjoint_params``, by default ``func.parameters()``). A field that reads another tensor which
needs a gradient (a learned edge weight, a control input, an embedding computed outside the
field) would silently get none, and a field that draws random numbers (dropout) would see
other masks in the adjoint's backward solve than in the forward one. The first evaluation of
every solve in these modes is therefore made with autograd on, and its graph is walked once:
any leaf that requires a gradient and is not an input is named in the error. The random state
is compared before and after the same evaluation.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..solvers.integrate import rng_state

__all__ = ["unlisted_tensors", "FieldAudit"]


def _same_rng(a: Tuple[Tensor, Optional[Tensor]], b: Tuple[Tensor, Optional[Tensor]]) -> bool:
    return torch.equal(a[0], b[0]) and (a[1] is None or b[1] is None or torch.equal(a[1], b[1]))


def unlisted_tensors(out: Tensor, inputs: Sequence[Tensor]) -> List[Tensor]:
    """The tensors ``out`` depends on through autograd that are not among ``inputs``.

    The walk stops at every input (a leaf, or a non-leaf at its ``grad_fn``), so what lies
    upstream of an input (the encoder that produced ``y0``, say) is never reported."""
    leaves = {id(p) for p in inputs if p.grad_fn is None}
    stops = {p.grad_fn for p in inputs if p.grad_fn is not None}
    found: List[Tensor] = []
    seen = set()
    stack = [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen or node in stops:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if variable is not None:  # an AccumulateGrad node: a leaf that requires a gradient
            if id(variable) not in leaves:
                found.append(variable)
            continue
        stack.extend(fn for fn, _ in node.next_functions)
    return found


def _describe(p: Tensor) -> str:
    kind = "nn.Parameter" if isinstance(p, torch.nn.Parameter) else "tensor"
    return f"a {kind} of shape {tuple(p.shape)} ({p.dtype})"


class FieldAudit:
    """Audits the first evaluation of a field in a gradient mode other than autograd.

    Args:
        mode: the gradient mode, for the messages.
        inputs: the tensors the mode differentiates besides the state.
        forbid_random: refuse a field that changes the random state (the adjoint, and
            checkpointing through a solver object's iterations).
    """

    def __init__(self, mode: str, inputs: Sequence[Tensor], forbid_random: bool):
        self.mode, self.inputs, self.forbid_random = mode, tuple(inputs), forbid_random

    @property
    def _backward(self) -> str:
        return ("adjoint's backward solve" if self.mode == "adjoint" else
                "checkpointed backward pass (it replays the stage solves' iterations)")

    @property
    def _instead(self) -> str:
        return ("gradient='checkpoint' with a Runge-Kutta method (which replays the forward's "
                "draws) or gradient='autograd'" if self.mode == "adjoint" else
                "gradient='autograd', or a Runge-Kutta or symplectic method (whose steps replay "
                "the forward's "
                "draws)")

    def __call__(self, func: Callable[[Tensor, Tensor], Tensor], t: Tensor, y: Tensor) -> Tensor:
        before = rng_state(y.device) if self.forbid_random else None
        with torch.enable_grad():
            state = y.detach().requires_grad_(True)
            out = func(t, state)
        if before is not None and not _same_rng(before, rng_state(y.device)):
            raise ValueError(
                f"gradient={self.mode!r}: the vector field draws random numbers (dropout, "
                f"attention dropout, noise) during the solve, so the {self._backward} would see "
                f"other random draws than the forward solve and its gradients would be wrong: "
                f"use {self._instead}, put the field in eval() mode, or move the randomness "
                f"outside the solve")
        if isinstance(out, Tensor):
            missing = unlisted_tensors(out, (state,) + self.inputs)
            if missing:
                what = "; ".join(_describe(p) for p in missing[:3])
                more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
                raise ValueError(
                    f"gradient={self.mode!r}: the vector field reads {len(missing)} tensor(s) that "
                    f"require a gradient but are not inputs of the solve ({what}{more}), so they "
                    f"would silently get no gradient. Pass every such tensor in "
                    f"adjoint_params=[*func.parameters(), ...] (GDEConv passes its edge weights "
                    f"and control input itself), detach it if it needs no gradient, or use "
                    f"gradient='autograd'")
            out = out.detach()
        return out
