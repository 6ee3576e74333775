"""Step-size control: error norms, the PI controller and the initial step.

All step-size arithmetic is done on Python floats: an adaptive step reads one scalar (its
error ratio) from the device, and everything after that costs no kernel launches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

__all__ = ["rms_norm", "max_norm", "PIController", "initial_step_size", "error_ratio"]

Norm = Callable[[Tensor], Tensor]


def rms_norm(x: Tensor) -> Tensor:
    """Root mean square over all elements (torchdiffeq's default)."""
    return torch.linalg.vector_norm(x) / math.sqrt(max(x.numel(), 1))


def max_norm(x: Tensor) -> Tensor:
    return x.abs().max()


def error_ratio(error: Tensor, y0: Tensor, y1: Tensor, rtol: float, atol: float,
                norm: Optional[Norm]) -> Tensor:
    """``norm(error / (atol + rtol * max(|y0|, |y1|)))``: the step is accepted when <= 1."""
    scale = torch.maximum(y0.abs(), y1.abs()).mul_(rtol).add_(atol)
    scaled = error / scale
    return rms_norm(scaled) if norm is None else norm(scaled)


@dataclass
class PIController:
    """Proportional-integral step-size controller (Hairer, Norsett and Wanner, II.4).

    ``h_next = h * clamp(safety * r**-beta1 * r_prev**beta2, dfactor, ifactor)`` for an
    accepted step with error ratio ``r``; after a rejection only the integral part acts and
    the step never grows. The default ``beta1 = 1/order, beta2 = 0`` is the classic I
    controller (torchdiffeq's); on short GDE horizons it took fewer evaluations than Hairer's
    stabilised PI (``beta2 = 0.2/order``, ``beta1 = 1/order - 0.75 beta2``): 14 against 20
    for dopri5 on a Cora-sized GCN field at rtol 1e-3, at the same accuracy.

    Passed to :func:`graphode.solve` as ``controller=``, the method's own order is used and
    ``order`` may be left out (then ``beta1`` left unset means ``1/order`` of that method).
    ``PIController(beta1=0.7 / 5, beta2=0.4 / 5)`` is Hairer's PI controller for dopri5.

    Args:
        order: order of the embedded error estimate plus one (5 for dopri5).
        safety: safety factor.
        ifactor: largest growth per step.
        dfactor: largest shrink per step.
        beta1, beta2: exponents of the current and previous error ratios.
        min_step, max_step: bounds on ``|h|``; a step below ``min_step`` is an underflow.
    """

    order: Optional[int] = None
    safety: float = 0.9
    ifactor: float = 10.0
    dfactor: float = 0.2
    beta1: Optional[float] = None
    beta2: Optional[float] = None
    min_step: float = 0.0
    max_step: float = math.inf

    def __post_init__(self) -> None:
        if self.order is not None and (not isinstance(self.order, int) or self.order < 1):
            raise ValueError(f"order must be a positive integer, got {self.order!r}")
        if self.beta2 is None:
            self.beta2 = 0.0
        if self.beta1 is None and self.order is not None:
            self.beta1 = 1.0 / self.order
        for name in ("safety", "ifactor", "dfactor"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
        if self.dfactor > 1.0 or self.ifactor < 1.0:
            raise ValueError(f"need dfactor <= 1 <= ifactor, got dfactor={self.dfactor}, "
                             f"ifactor={self.ifactor}")
        if self.min_step < 0 or self.max_step <= 0 or self.min_step > self.max_step:
            raise ValueError(f"need 0 <= min_step <= max_step and max_step > 0, got "
                             f"min_step={self.min_step}, max_step={self.max_step}")
        self._previous = 1e-4

    def reset(self) -> None:
        self._previous = 1e-4

    def clip(self, h: float) -> float:
        return math.copysign(min(abs(h), self.max_step), h)

    def next_step(self, h: float, ratio: float, accepted: bool) -> float:
        """The next signed step size after a step of size ``h`` with error ratio ``ratio``."""
        if ratio == 0.0:
            factor = self.ifactor
        elif accepted:
            assert self.beta1 is not None and self.beta2 is not None  # set in __post_init__
            factor = self.safety * ratio ** -self.beta1 * self._previous ** self.beta2
            self._previous = max(ratio, 1e-4)
        elif math.isinf(ratio):
            factor = self.dfactor
        else:
            assert self.order is not None, "the solver sets the method's order"
            factor = min(1.0, self.safety * ratio ** (-1.0 / self.order))
        factor = min(self.ifactor, max(self.dfactor, factor))
        return self.clip(h * factor)


    def next_steps(self, h: Tensor, ratio: Tensor, accepted: Tensor, previous: Tensor
                   ) -> Tuple[Tensor, Tensor]:
        """:meth:`next_step` elementwise, for one step per graph of a batch: ``h``,
        ``ratio``, ``accepted`` and the last accepted ratios ``previous`` are tensors; returns
        the next signed steps and the updated ``previous``."""
        assert self.order is not None and self.beta1 is not None and self.beta2 is not None
        safe = ratio.clamp(min=1e-10)
        grow = self.safety * safe ** (-self.beta1) * previous ** self.beta2
        shrink = (self.safety * safe ** (-1.0 / self.order)).clamp(max=1.0)
        factor = torch.where(accepted, grow, shrink)
        factor = torch.where(ratio == 0, torch.full_like(factor, self.ifactor), factor)
        factor = factor.clamp(self.dfactor, self.ifactor)
        previous = torch.where(accepted, ratio.clamp(min=1e-4), previous)
        return (h * factor).clamp(-self.max_step, self.max_step), previous


def initial_step_size(func: Callable[[float, Tensor], Tensor], t0: float, y0: Tensor, f0: Tensor,
                      direction: float, order: int, rtol: float, atol: float,
                      norm: Optional[Norm]) -> float:
    """Hairer's starting step (Hairer, Norsett and Wanner, II.4), one extra evaluation.

    Returns a signed step in ``direction``.
    """
    norm = rms_norm if norm is None else norm
    scale = y0.abs().mul(rtol).add_(atol)
    d0, d1 = torch.stack([norm(y0 / scale), norm(f0 / scale)]).tolist()
    if not (math.isfinite(d0) and math.isfinite(d1)):
        return math.nan  # y0 or f(t0, y0) is not finite: the caller reports it
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    y1 = y0 + (direction * h0) * f0
    f1 = func(t0 + direction * h0, y1)
    d2 = norm((f1 - f0) / scale).item() / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / order)
    return direction * min(100.0 * h0, h1)
