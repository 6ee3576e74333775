"""The torchdiffeq-compatible interface: :func:`odeint` and :func:`odeint_adjoint`.

Code written for torchdiffeq 0.2.5 moves over by changing one import. Where a torchdiffeq user
would notice, the semantics are torchdiffeq's:

- options a method does not take (``step_size`` on an adaptive method, a misspelled key) are
  ignored with a ``UserWarning``, as torchdiffeq's ``Unexpected arguments`` warning; the
  strict :func:`~graphode.solve` refuses them instead;
- tuple states may mix shapes and ranks, 0-dim parts included;
- the field's ``callback_step``, ``callback_accept_step`` and ``callback_reject_step`` are
  called with ``(t0, y0, dt)``, and their ``_adjoint`` variants during the adjoint's backward
  solve; a callback the method never calls, or an unknown ``callback_*`` name, warns;
- ``adjoint_options`` default to ``options`` without ``norm``; ``norm="seminorm"`` leaves the
  parameter adjoints out of the error; a callable ``norm`` there receives the augmented state
  as the tuple ``(t, y, adj_y, *adj_params)``.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .api import (
    _check_grid,
    _check_norm,
    _check_positive,
    _check_state,
    _check_times,
    _check_tolerances,
    _run,
)
from .gradients import resolve_params
from .solvers.base import resolve_method
from .solvers.integrate import Callbacks, IntegrationConfig

__all__ = ["odeint", "odeint_adjoint"]

State = Union[Tensor, Tuple[Tensor, ...]]

_FIXED_OPTIONS = frozenset({"step_size", "grid_constructor", "perturb", "interp", "norm"})
_ADAPTIVE_OPTIONS = frozenset({"first_step", "max_num_steps", "min_step", "max_step", "step_t",
                               "jump_t", "norm", "safety", "ifactor", "dfactor", "dtype"})
_CALLBACKS = ("callback_step", "callback_accept_step", "callback_reject_step")
_FIXED_CALLBACKS = frozenset({"callback_step"})


class _Shapes:
    """Flattens a tuple state into one vector and back (torchdiffeq's tuple states)."""

    def __init__(self, shapes: List[torch.Size]):
        self.shapes = shapes
        self.sizes = [math.prod(s) for s in shapes]

    def split(self, flat: Tensor) -> Tuple[Tensor, ...]:
        lead = flat.shape[:-1]
        return tuple(part.reshape(lead + shape) for part, shape in
                     zip(torch.split(flat, self.sizes, dim=-1), self.shapes))

    def field(self, func: Callable) -> Callable[[Tensor, Tensor], Tensor]:
        count = len(self.shapes)

        def flat_field(t: Tensor, y: Tensor) -> Tensor:
            out = func(t, self.split(y))
            if not isinstance(out, (tuple, list)) or len(out) != count:
                raise ValueError(f"func must return a tuple of {count} tensors for a tuple state, "
                                 f"got {type(out).__name__}")
            return torch.cat([o.reshape(-1) for o in out])
        return flat_field


def _flatten_state(y0: Any) -> Tuple[Tensor, Optional[_Shapes]]:
    if isinstance(y0, (tuple, list)):
        if len(y0) == 0:
            raise ValueError("y0 is an empty tuple")
        parts = [_check_state(y, f"y0[{i}]") for i, y in enumerate(y0)]
        if len({p.device for p in parts}) > 1:
            raise ValueError("the tensors of a tuple y0 must share one device")
        dtype = parts[0].dtype
        for p in parts[1:]:
            dtype = torch.promote_types(dtype, p.dtype)
        return (torch.cat([p.reshape(-1).to(dtype) for p in parts]),
                _Shapes([p.shape for p in parts]))
    return _check_state(y0), None


def _unflatten(ys: Tensor, shapes: Optional[_Shapes]) -> State:
    return ys if shapes is None else shapes.split(ys)


def _callbacks(func: Any, fixed: bool, shapes: Optional[_Shapes], suffix: str = ""
               ) -> Optional[Callbacks]:
    """The field's torchdiffeq callbacks (``suffix="_adjoint"``: the backward solve's)."""
    found = {name: getattr(func, name + suffix) for name in _CALLBACKS
             if callable(getattr(func, name + suffix, None))}
    if not suffix:
        known = set(_CALLBACKS) | {name + "_adjoint" for name in _CALLBACKS}
        stray = sorted(n for n in dir(type(func)) if n.startswith("callback_") and n not in known)
        if stray:
            warnings.warn(f"func defines {stray}, which no solver calls; the callbacks are "
                          f"{', '.join(_CALLBACKS)} and their '_adjoint' variants", stacklevel=3)
        if fixed and set(found) - _FIXED_CALLBACKS:
            warnings.warn(f"A fixed-grid solver does not support callbacks "
                          f"{set(found) - _FIXED_CALLBACKS}", stacklevel=3)
    if not found:
        return None
    callbacks = Callbacks(found.get("callback_step"), found.get("callback_accept_step"),
                          found.get("callback_reject_step"))
    return callbacks if shapes is None or suffix else callbacks.mapped(shapes.split)


def _config(method: Optional[str], rtol: Any, atol: Any, options: Optional[Dict[str, Any]],
            values: List[float], func: Optional[Callable], y0: State, t: Tensor,
            shapes: Optional[_Shapes]) -> IntegrationConfig:
    """The integration settings of one torchdiffeq call; unknown options warn."""
    method = "dopri5" if method is None else method
    tableau, solver = resolve_method(method)
    options = dict(options or {})
    fixed = not (solver.adaptive if solver is not None else tableau.adaptive)
    valid = (_FIXED_OPTIONS if fixed else _ADAPTIVE_OPTIONS) | (
        solver.options if solver is not None else frozenset())
    unexpected = {k: v for k, v in options.items() if k not in valid}
    if unexpected:
        warnings.warn(f"{method}: Unexpected arguments {unexpected}; they are ignored, as "
                      f"torchdiffeq ignores them (valid options: {', '.join(sorted(valid))})",
                      stacklevel=3)
        options = {k: v for k, v in options.items() if k in valid}
    if solver is not None:
        solver = solver.configure(**{k: options.pop(k) for k in list(options)
                                     if k in solver.options})
    rtol, atol = _check_tolerances(rtol, atol)
    grid = None
    if options.get("grid_constructor") is not None and func is not None:
        if options.get("step_size") is not None:
            raise ValueError("give either step_size or grid_constructor, not both")
        grid = _check_grid(options["grid_constructor"](func, y0, t), values)
    norm = options.get("norm") if not fixed else None
    if norm is not None and shapes is not None:
        user_norm, split = norm, shapes.split
        norm = lambda x: user_norm(split(x))  # noqa: E731
    max_num_steps = options.get("max_num_steps", 2 ** 31 - 1)
    if not isinstance(max_num_steps, int) or max_num_steps < 1:
        raise ValueError(f"max_num_steps must be a positive integer, got {max_num_steps!r}")
    as_floats = lambda v: tuple(  # noqa: E731
        (v.detach().to("cpu", torch.float64).tolist() if isinstance(v, Tensor) else v) or ())
    config = IntegrationConfig(
        tableau=tableau, rtol=rtol, atol=atol, adaptive=not fixed, solver=solver,
        step_size=_check_positive("step_size", options.get("step_size")), grid=grid,
        first_step=_check_positive("first_step", options.get("first_step")),
        max_steps=max_num_steps, min_step=float(options.get("min_step", 0.0)),
        max_step=float(options.get("max_step", math.inf)),
        safety=float(options.get("safety", 0.9)), ifactor=float(options.get("ifactor", 10.0)),
        dfactor=float(options.get("dfactor", 0.2)), norm=_check_norm(norm),
        step_t=tuple(float(s) for s in as_floats(options.get("step_t"))),
        jump_t=tuple(float(s) for s in as_floats(options.get("jump_t"))),
        perturb=bool(options.get("perturb", False)), interp=options.get("interp", "linear"),
        callbacks=_callbacks(func, fixed, shapes))
    config.controller()
    config.output_mode()
    return config


def odeint(func: Callable, y0: State, t: Tensor, *, rtol: float = 1e-7, atol: float = 1e-9,
           method: Optional[str] = None, options: Optional[Dict[str, Any]] = None) -> State:
    """Drop-in replacement for ``torchdiffeq.odeint`` (explicit Runge-Kutta methods).

    Same signature, defaults, output shape ``(len(t), *y0.shape)``, tuple states, callbacks
    and options (``step_size``, ``grid_constructor``, ``perturb``, ``interp`` for fixed-grid
    methods; ``first_step``, ``max_num_steps``, ``min_step``, ``max_step``, ``step_t``,
    ``jump_t``, ``norm``, ``safety``, ``ifactor``, ``dfactor`` for adaptive ones). As in
    torchdiffeq, options the method does not take are ignored with a warning. Gradients
    flow by autograd. Unknown methods raise ``ValueError``.
    """
    flat, shapes = _flatten_state(y0)
    field = func if shapes is None else shapes.field(func)
    ts, values = _check_times(t, flat)
    config = _config(method, rtol, atol, options, values, func, y0, t, shapes)
    ys, _ = _run(field, flat, ts, values, config, "autograd", None, None, False, func)
    return _unflatten(ys, shapes)


def _adjoint_norm(forward_norm: Optional[Callable], option: Any, shapes: Optional[_Shapes]
                  ) -> Tuple[Optional[Callable], bool]:
    """``(norm of the augmented tuple or None, seminorm)`` for the backward solve."""
    if option is not None and option != "seminorm":
        if not callable(option):
            raise ValueError(f"adjoint_options['norm'] must be 'seminorm' or a callable, got "
                             f"{option!r}")
        if shapes is None:
            return _check_norm(option), False

        def tuple_norm(aug: Tuple[Tensor, ...]) -> Tensor:
            t, y, adj, *params = aug
            return option((t, *shapes.split(y), *shapes.split(adj), *params))
        return _check_norm(tuple_norm), False
    seminorm = option == "seminorm"
    if forward_norm is None:
        return None, seminorm  # the default: RMS of y, of adj_y and of each parameter's part

    def default(aug: Tuple[Tensor, ...]) -> Tensor:
        _, y, adj, *params = aug
        parts = [forward_norm(y), forward_norm(adj)]
        if not seminorm:
            parts += [torch.linalg.vector_norm(p) / math.sqrt(max(p.numel(), 1)) for p in params]
        return torch.stack([torch.as_tensor(v, dtype=y.dtype, device=y.device)
                            for v in parts]).max()
    return default, seminorm


def odeint_adjoint(func: Callable, y0: State, t: Tensor, *, rtol: float = 1e-7,
                   atol: float = 1e-9, method: Optional[str] = None,
                   options: Optional[Dict[str, Any]] = None, adjoint_rtol: Optional[float] = None,
                   adjoint_atol: Optional[float] = None, adjoint_method: Optional[str] = None,
                   adjoint_options: Optional[Dict[str, Any]] = None,
                   adjoint_params: Optional[Sequence[Tensor]] = None) -> State:
    """Drop-in replacement for ``torchdiffeq.odeint_adjoint``: O(1)-memory adjoint gradients.

    ``func`` must be an ``nn.Module`` unless ``adjoint_params`` is given; every tensor the
    field reads that requires a gradient must be among them (a field that reads another one,
    or draws random numbers, is refused with an error instead of getting a wrong gradient).
    ``adjoint_options`` default to ``options`` without ``norm`` and take the same keys, with
    ``norm="seminorm"`` or a callable norm of ``(t, y, adj_y, *adj_params)``.
    """
    if adjoint_params is None and not isinstance(func, torch.nn.Module):
        resolve_params(func, None, "adjoint")  # raises the explanatory error
    if adjoint_method is not None and adjoint_method != method and options is not None \
            and adjoint_options is None:
        raise ValueError("adjoint_method differs from method, so adjoint_options cannot be "
                         "inferred from options: pass adjoint_options too (as torchdiffeq asks)")
    flat, shapes = _flatten_state(y0)
    field = func if shapes is None else shapes.field(func)
    ts, values = _check_times(t, flat)
    config = _config(method, rtol, atol, options, values, func, y0, t, shapes)
    if adjoint_options is None:
        adjoint_options = {k: v for k, v in (options or {}).items() if k != "norm"}
    adjoint_options = dict(adjoint_options)
    norm_option = adjoint_options.pop("norm", None)
    # The backward solve steps on the forward grid between output times (see adjoint.py).
    adjoint_options.pop("grid_constructor", None)
    back_method = adjoint_method or method or "dopri5"
    back = _config(back_method, rtol if adjoint_rtol is None else adjoint_rtol,
                   atol if adjoint_atol is None else adjoint_atol, adjoint_options, values,
                   None, y0, t, None)
    back.callbacks = _callbacks(func, not back.adaptive, shapes, suffix="_adjoint")
    adjoint_norm, seminorm = _adjoint_norm(config.norm, norm_option, shapes)
    ys, _ = _run(field, flat, ts, values, config, "adjoint", adjoint_params, back, seminorm, func,
                 adjoint_norm=adjoint_norm)
    return _unflatten(ys, shapes)
