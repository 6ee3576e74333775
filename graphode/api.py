"""The public solver API: :func:`solve` (the torchdiffeq-compatible :func:`~graphode.odeint`
and :func:`~graphode.odeint_adjoint` live in :mod:`graphode.compat`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .gradients import (
    GRADIENT_MODES,
    Adjoint,
    FieldAudit,
    Problem,
    adjoint_solve,
    attach_time_gradients,
    checkpoint_solve,
    resolve_params,
)
from .solvers.base import Solver, resolve_method
from .solvers.compiled import compile_options, integrate_compiled
from .solvers.controllers import PIController
from .solvers.imex import split_of
from .solvers.integrate import IntegrationConfig, SolveError, SolverStats, integrate, to_device
from .solvers.per_graph import integrate_per_graph
from .solvers.stabilized import RKC
from .solvers.tableaux import ButcherTableau

__all__ = ["Solution", "solve"]

Times = Union[Tensor, Sequence[float]]


@dataclass
class Solution:
    """The result of :func:`solve`.

    Attributes:
        ys: states at the output times, shape ``(len(t), *y0.shape)``.
        ts: the output times (float64, on the state's device).
        stats: :class:`~graphode.SolverStats` of the forward solve; the backward fields fill
            in when gradients are computed.
    """

    ys: Tensor
    ts: Tensor
    stats: SolverStats


class _Field:
    """Calls the user's field and checks at every call that it returns ``dy/dt`` with the
    state's shape and dtype (a field that changed either would be broadcast or promoted
    silently). With an ``audit``, the first call goes through it (see
    :class:`~graphode.gradients.FieldAudit`); the wrapper keeps no other state, so a compiled
    solve checks while tracing and leaves no guard behind."""

    def __init__(self, func: Callable, y0: Tensor, audit: Optional[FieldAudit] = None):
        self.func, self.shape, self.dtype, self.audit = func, y0.shape, y0.dtype, audit
        # what the field knows of its Jacobian (the implicit methods use it)
        self.jacobian_operator = getattr(func, "jacobian_operator", None)

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        if self.audit is not None:
            audit, self.audit = self.audit, None
            out = audit(self.func, t, y)
        else:
            out = self.func(t, y)
        if not isinstance(out, Tensor) or out.shape != self.shape or out.dtype != self.dtype:
            raise self._mismatch(out)
        return out

    def _mismatch(self, out: Any) -> Exception:
        if not isinstance(out, Tensor):
            return TypeError(f"func must return a tensor, got {type(out).__name__}")
        if out.shape != self.shape:
            return ValueError(
                f"func returned a tensor of shape {tuple(out.shape)} for a state of shape "
                f"{tuple(self.shape)}; the vector field must return dy/dt with the state's "
                f"shape at every call")
        return TypeError(
            f"func returned dtype {out.dtype} for a state of dtype {self.dtype}; the vector "
            f"field must return dy/dt in the state's dtype (convert the state, e.g. "
            f"y0.to({out.dtype}), or the field's parameters, e.g. field.to({self.dtype}))")


def _check_state(y0: Any, name: str = "y0") -> Tensor:
    if not isinstance(y0, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(y0).__name__}")
    if not y0.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {y0.dtype}; "
                        f"convert it first, e.g. {name}.float() or {name}.double()")
    if y0.dtype in (torch.float16, torch.bfloat16):
        raise TypeError(f"{name} has dtype {y0.dtype}: step-size control and the time grid need "
                        f"float32 or float64 states (half precision loses the error estimate); "
                        f"keep {name} in float32 and run the field under torch.autocast for "
                        f"half-precision arithmetic")
    return y0


def _check_times(t: Times, y0: Tensor) -> Tuple[Tensor, List[float]]:
    """Validate ``t``; return it as a float64 tensor on ``y0``'s device and as Python floats."""
    if isinstance(t, Tensor):
        if t.device != y0.device and t.device.type != "cpu":
            raise ValueError(f"t is on {t.device} but y0 is on {y0.device}; put t on the same "
                             f"device as y0 (or on the CPU)")
        if t.dim() != 1:
            raise ValueError(f"t must be a 1-D tensor of output times, got shape {tuple(t.shape)}")
        if t.is_complex():
            raise TypeError("t must be real, got a complex tensor")
        values = t.detach().to("cpu", torch.float64).tolist()
        ts = t if t.device == y0.device else to_device(t, y0.device)
    else:
        try:
            if isinstance(t, (str, bytes)):
                raise TypeError
            values = [float(v) for v in t]
        except (TypeError, ValueError):
            raise TypeError(f"t must be a 1-D tensor or a sequence of numbers, got "
                            f"{type(t).__name__}") from None
        ts = to_device(torch.tensor(values, dtype=torch.float64), y0.device)
    if len(values) == 0:
        raise ValueError("t is empty; give at least the initial time")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"t must be finite, got {values}")
    steps = [b - a for a, b in zip(values, values[1:])]
    if steps and not (all(s > 0 for s in steps) or all(s < 0 for s in steps)):
        raise ValueError(f"t must be strictly increasing or strictly decreasing, got {values}; "
                         f"sort it and remove repeated times")
    return ts, values


def _check_tolerances(rtol: Any, atol: Any) -> Tuple[float, float]:
    out = []
    for name, value in (("rtol", rtol), ("atol", atol)):
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise ValueError(f"{name} must be a scalar, got a tensor of shape "
                                 f"{tuple(value.shape)}")
            value = value.item()
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
        out.append(float(value))
    if out[0] == 0 and out[1] == 0:
        raise ValueError("rtol and atol are both 0: no step could ever be accepted; set one > 0")
    return out[0], out[1]


def _check_positive(name: str, value: Optional[float]) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, Tensor):
        value = value.item()
    if not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _check_norm(norm: Optional[Callable[..., Any]]) -> Optional[Callable[..., Tensor]]:
    """Wrap a user's error norm so that a norm returning anything but one number is named."""
    if norm is None:
        return None
    if not callable(norm):
        raise TypeError(f"norm must be a callable returning a scalar, got {type(norm).__name__}")

    def checked(x: Any) -> Tensor:
        value = norm(x)
        if not isinstance(value, Tensor):
            value = torch.as_tensor(value, dtype=torch.float64)
        if value.numel() != 1 or value.is_complex():
            raise ValueError(f"norm must return a real scalar (one number per state), got a "
                             f"tensor of shape {tuple(value.shape)}; reduce it, e.g. with "
                             f".max() or torch.linalg.vector_norm")
        return value.reshape(())
    return checked


def _check_grid(grid: Optional[Times], values: List[float]) -> Optional[List[float]]:
    if grid is None:
        return None
    g = grid.detach().to("cpu", torch.float64).tolist() if isinstance(grid, Tensor) else [
        float(v) for v in grid]
    if len(g) < 2 or g[0] != values[0] or g[-1] != values[-1]:
        raise ValueError(f"grid must start at t[0]={values[0]} and end at t[-1]={values[-1]}, "
                         f"got {g[:1]} ... {g[-1:]}")
    direction = 1.0 if values[-1] > values[0] else -1.0
    if any(direction * (b - a) <= 0 for a, b in zip(g, g[1:])):
        raise ValueError("grid must be strictly monotonic in the direction of t")
    return g


def _non_finite_inputs(func: Any, y0: Tensor) -> str:
    """Name the inputs that hold NaN or inf (checked only after a solve has failed)."""
    bad = ["y0"] if not bool(torch.isfinite(y0.detach()).all()) else []
    if isinstance(func, torch.nn.Module):
        bad += [f"parameter {name!r}" for name, p in func.named_parameters()
                if not bool(torch.isfinite(p.detach()).all())]
    return f" Non-finite before the solve: {', '.join(bad[:5])}." if bad else ""


def _run(func: Callable, y0: Tensor, t: Tensor, times: List[float], config: IntegrationConfig,
         gradient: str, adjoint_params: Optional[Sequence[Tensor]],
         adjoint_config: Optional[IntegrationConfig], adjoint_seminorm: bool,
         param_source: Any, adjoint_norm: Optional[Callable] = None
         ) -> Tuple[Tensor, SolverStats]:
    """Dispatch to the gradient mode; returns the stacked outputs and the stats. A solve that
    fails on a non-finite value says whether y0 or a parameter held it to begin with."""
    try:
        return _dispatch(func, y0, t, times, config, gradient, adjoint_params, adjoint_config,
                         adjoint_seminorm, param_source, adjoint_norm)
    except SolveError as err:
        detail = _non_finite_inputs(param_source, y0) if "non-finite" in str(err) else ""
        if not detail:
            raise
        raise SolveError(str(err) + detail, err.t, err.step_size, err.ys) from None


def _dispatch(func: Callable, y0: Tensor, t: Tensor, times: List[float], config: IntegrationConfig,
         gradient: str, adjoint_params: Optional[Sequence[Tensor]],
         adjoint_config: Optional[IntegrationConfig], adjoint_seminorm: bool,
         param_source: Any, adjoint_norm: Optional[Callable] = None
         ) -> Tuple[Tensor, SolverStats]:
    if gradient not in GRADIENT_MODES:
        raise ValueError(f"unknown gradient mode {gradient!r}; valid modes are: "
                         f"{', '.join(GRADIENT_MODES)}")
    stats = SolverStats()
    params: Tuple[Tensor, ...] = ()
    if gradient != "autograd":
        params = resolve_params(param_source, adjoint_params, gradient)
    wants_t_grad = torch.is_grad_enabled() and t.requires_grad
    needs_graph = torch.is_grad_enabled() and (
        y0.requires_grad or wants_t_grad or any(p.requires_grad for p in params))
    if config.solver is not None and not getattr(config.solver, "differentiable", True) \
            and torch.is_grad_enabled():
        wants = ["y0"] if y0.requires_grad else []
        wants += ["t"] if wants_t_grad else []
        if isinstance(param_source, torch.nn.Module):
            wants += [f"parameter {n!r}" for n, p in param_source.named_parameters()
                      if p.requires_grad][:3]
        if wants:
            raise ValueError(
                f"method={config.solver.name!r} computes no gradients, but {', '.join(wants)} "
                f"require one: run the solve under torch.no_grad() (or detach them), or use a "
                f"differentiable method")
    audit = None
    if gradient != "autograd" and needs_graph:
        # the adjoint's backward solve, and the replayed Newton iterations of a solver object
        # under checkpointing, evaluate the field in another order than the forward solve
        audit = FieldAudit(gradient, params, forbid_random=gradient == "adjoint" or (
            gradient == "checkpoint" and config.solver is not None
            and not config.solver.replays_random))
    field = _Field(func, y0, audit)
    problem = Problem(field, times, config, stats, adjoint_config, adjoint_seminorm, adjoint_norm)

    if gradient == "autograd" or not needs_graph:
        if gradient == "autograd" and wants_t_grad:
            ys = attach_time_gradients(field, t, lambda y: integrate(field, y, times, config, stats), y0)
        else:
            ys = integrate(field, y0, times, config, stats)
        return torch.stack(ys), stats
    if gradient == "checkpoint":
        if wants_t_grad:
            ys = attach_time_gradients(field, t, lambda y: list(checkpoint_solve(problem, y, params)), y0)
            return torch.stack(ys), stats
        return checkpoint_solve(problem, y0, params), stats
    return adjoint_solve(problem, y0, t if wants_t_grad else None, params), stats


def _check_gradient_support(solver: Optional[Solver], gradient: str, per_graph: Any,
                            compile: Any, name: str = "method") -> None:
    """Refuse, before any work, what a solver object cannot do."""
    if solver is None:
        return
    if gradient in GRADIENT_MODES and gradient not in solver.gradients:
        raise ValueError(
            f"{name}={solver.name!r} supports gradient={' or '.join(map(repr, solver.gradients))}, "
            f"got {gradient!r}" + (
                ": checkpointing replays recorded Runge-Kutta steps one at a time; use "
                "gradient='adjoint' or 'autograd', or a Runge-Kutta method"
                if gradient == "checkpoint" else "") + (
                f": {solver.gradient_notes[gradient]}" if gradient in solver.gradient_notes
                else ""))
    if per_graph is not None and not (isinstance(solver, RKC)
                                      and getattr(solver, "stiff_method", "rkc") == "rkc"):
        raise ValueError(f"per_graph step control needs an explicit Runge-Kutta method (dopri5, "
                         f"tsit5, bosh3) or method='rkc'/'auto' (with stiff_method='rkc'), got "
                         f"{name}={solver.name!r}")
    if compile:
        raise ValueError(f"compile needs an explicit Runge-Kutta method on a fixed grid, got "
                         f"{name}={solver.name!r}")


_CONTROLLER_DEFAULTS = {"safety": 0.9, "ifactor": 10.0, "dfactor": 0.2, "min_step": 0.0,
                        "max_step": math.inf}


def _from_controller(controller: Any, **given: float) -> Tuple[Any, ...]:
    """The settings of a ``controller=`` object; refuses the same settings given twice."""
    if not isinstance(controller, PIController):
        raise TypeError(f"controller must be a graphode.solvers.PIController, got "
                        f"{type(controller).__name__}")
    twice = [k for k, v in given.items() if v != _CONTROLLER_DEFAULTS[k]]
    if twice:
        raise ValueError(f"{', '.join(twice)} given both directly and through controller=: "
                         f"set them on the PIController only")
    # beta1 is None only when neither it nor the order was given: 1/order of the method then
    return (controller.safety, controller.ifactor, controller.dfactor, controller.min_step,
            controller.max_step, controller.beta1, controller.beta2)


def solve(func: Callable[[Tensor, Tensor], Tensor], y0: Tensor, t: Times, *,
          method: Union[str, ButcherTableau, Solver] = "dopri5", rtol: float = 1e-7, atol: float = 1e-9,
          step_size: Optional[float] = None, grid: Optional[Times] = None,
          first_step: Optional[float] = None, max_steps: int = 10_000,
          min_step: float = 0.0, max_step: float = math.inf,
          safety: float = 0.9, ifactor: float = 10.0, dfactor: float = 0.2,
          controller: Optional[PIController] = None,
          norm: Optional[Callable[[Tensor], Tensor]] = None, interp: str = "auto",
          step_t: Sequence[float] = (), jump_t: Sequence[float] = (), perturb: bool = False,
          gradient: Union[str, Adjoint] = "autograd", adjoint_params: Optional[Sequence[Tensor]] = None,
          adjoint_method: Optional[str] = None, adjoint_rtol: Optional[float] = None,
          adjoint_atol: Optional[float] = None, adjoint_step_size: Optional[float] = None,
          adjoint_seminorm: bool = False, check_finite: bool = True,
          per_graph: Optional[Tensor] = None, compile: Union[bool, str, Dict[str, Any]] = False
          ) -> Solution:
    """Solve ``dy/dt = func(t, y)``, ``y(t[0]) = y0`` and return the states at every ``t``.

    Args:
        func: the vector field ``f(t, y)``; ``t`` arrives as a 0-dim tensor in ``y``'s dtype.
        y0: initial state, a floating-point tensor of any shape, on any device.
        t: output times, strictly increasing or decreasing (a tensor on ``y0``'s device or
            the CPU, or a sequence of floats; a CPU ``t`` keeps a GPU solve free of syncs).
        method: an explicit Runge-Kutta method (``euler``, ``midpoint``, ``heun2``, ``heun3``,
            ``rk4`` (3/8 rule, as torchdiffeq), ``rk4_classic``, ``adaptive_heun``,
            ``fehlberg2``, ``bosh3``, ``dopri5``, ``tsit5``, ``dopri8``) or a
            :class:`~graphode.ButcherTableau`; or another family by name or as a
            :class:`~graphode.Solver` object: ``explicit_adams``, ``implicit_adams``,
            ``fixed_adams`` (fixed grids), ``rkc`` (Runge-Kutta-Chebyshev for stiff
            diffusion), ``auto`` (dopri5, switching to RKC where the problem is stiff),
            the implicit ``implicit_euler``, ``trapezoid`` (fixed grids), ``trbdf2``,
            ``kvaerno3``, ``kvaerno5`` (see :mod:`graphode.solvers.implicit`), the IMEX
            ``kencarp3`` (:mod:`graphode.solvers.imex`), ``expm`` (the exact flow of a
            symmetric linear graph diffusion by a Chebyshev series,
            :mod:`graphode.solvers.exponential`), ``scipy_solver`` (no gradients).
            Checkpointing, per-graph control and ``compile`` need a Runge-Kutta method.
        rtol, atol: relative and absolute tolerances of adaptive solves.
        step_size: fixed step size; the methods without an error estimate step on ``t`` itself
            when neither ``step_size`` nor ``grid`` is given.
        grid: an explicit fixed grid from ``t[0]`` to ``t[-1]``.
        first_step: initial step of adaptive solves (default: Hairer's selection).
        max_steps: most step attempts (accepted and rejected) of an adaptive solve, and most
            steps of a fixed grid.
        min_step, max_step: bounds on the adaptive step size.
        safety, ifactor, dfactor: PI controller settings (see :class:`PIController`).
        controller: a :class:`~graphode.solvers.PIController` object, in place of ``safety``,
            ``ifactor``, ``dfactor``, ``min_step`` and ``max_step``; it also sets the PI
            exponents ``beta1`` and ``beta2`` (the default is I control, ``beta1 = 1/order``,
            ``beta2 = 0``). Its ``order`` is ignored: the method's is used.
        norm: error norm applied to the scaled error (default: RMS).
        interp: outputs between fixed-grid points: ``"auto"`` (the tableau's own interpolant,
            else cubic Hermite), ``"cubic"`` or ``"linear"``.
        step_t, jump_t: times adaptive steps must land on; at ``jump_t`` the field is
            re-evaluated after the step (discontinuities).
        perturb: evaluate fixed-grid stages just inside each step (torchdiffeq's ``perturb``).
        gradient: ``"autograd"`` (backprop through the steps), ``"adjoint"`` (continuous
            backsolve adjoint, memory flat in the number of steps) or ``"checkpoint"`` (exact
            gradients of the discrete solution, one stored state per step); or an
            :class:`~graphode.gradients.Adjoint` object carrying the adjoint's settings (in
            place of the ``adjoint_*`` keywords).
        adjoint_params: tensors to differentiate in the adjoint / checkpoint modes (default:
            ``func.parameters()`` when ``func`` is an ``nn.Module``). The rule, as in
            torchdiffeq: every tensor the field reads that requires a gradient must be here
            or be the state. Unlike torchdiffeq, a field that reads one that is not is
            refused with an error naming it (the first evaluation's graph is checked), and
            under ``"adjoint"`` so is a field that draws random numbers (dropout), whose
            backward solve would see other draws; ``"checkpoint"`` replays them exactly.
        adjoint_method, adjoint_rtol, adjoint_atol, adjoint_step_size: backward-solve settings
            of the adjoint (default: the forward ones).
        adjoint_seminorm: leave the parameter adjoints out of the backward error norm (Kidger
            et al., 2021), which usually saves backward steps.
        check_finite: check once after a fixed-grid solve that the outputs are finite (one
            synchronisation per solve; turn off for sync-free GPU loops).
        per_graph: opt-in per-graph step control for a disjoint batch of graphs: the
            node-to-graph vector (``Batch.batch``) or ``Batch.ptr``. Each graph then gets its
            own adaptive step and error control (see
            :func:`~graphode.solvers.per_graph.integrate_per_graph`); ``y0`` is node-major,
            ``func`` receives each node's own time as a ``(N, 1)`` tensor, and a graph's
            solution does not depend on its batch mates. Adaptive methods and
            ``gradient="autograd"`` only.
        compile: compile a fixed-step solve with ``torch.compile``: the loop unrolls into one
            graph and the Runge-Kutta arithmetic fuses with the field. ``True`` (the defaults),
            a ``torch.compile`` mode (``"reduce-overhead"`` records the solve as a CUDA graph
            on a GPU: one launch per forward, no host synchronisation) or a dict of
            ``torch.compile`` keyword arguments. The first call compiles (seconds to
            minutes); later calls with the same grid and shapes reuse the code. Fixed steps
            and ``gradient="autograd"`` only. The field must not change Python state at each
            call (a call counter, say): that would force a new trace every time.

    Returns:
        A :class:`Solution` with ``ys`` of shape ``(len(t), *y0.shape)``, ``ts`` and ``stats``.

    Raises:
        ValueError, TypeError: for bad input, naming the argument and the fix. Half-precision
            states are refused (keep the state in float32 and use ``torch.autocast``), and a
            fixed grid longer than ``max_steps`` is refused before it is built.
        SolveError: (a ``RuntimeError``) for step-size underflow, non-finite states or
            ``max_steps`` exceeded, with the time reached and the partial solution.
    """
    if isinstance(gradient, Adjoint):
        given = [k for k, v in (("adjoint_method", adjoint_method), ("adjoint_rtol", adjoint_rtol),
                                ("adjoint_atol", adjoint_atol),
                                ("adjoint_step_size", adjoint_step_size),
                                ("adjoint_params", adjoint_params)) if v is not None]
        if given or adjoint_seminorm:
            raise ValueError(f"{', '.join(given or ['adjoint_seminorm'])} given both directly and "
                             f"through gradient=Adjoint(...): set them on the Adjoint only")
        kw = gradient.solve_kwargs()
        adjoint_method, adjoint_rtol, adjoint_atol = (kw["adjoint_method"], kw["adjoint_rtol"],
                                                      kw["adjoint_atol"])
        adjoint_step_size, adjoint_seminorm = kw["adjoint_step_size"], kw["adjoint_seminorm"]
        adjoint_params, gradient = kw["adjoint_params"], "adjoint"
    y0 = _check_state(y0)
    ts, times = _check_times(t, y0)
    tableau, solver = resolve_method(method)
    _check_gradient_support(solver, gradient, per_graph, compile)
    rtol, atol = _check_tolerances(rtol, atol)
    beta1 = beta2 = None
    if controller is not None:
        safety, ifactor, dfactor, min_step, max_step, beta1, beta2 = _from_controller(
            controller, safety=safety, ifactor=ifactor, dfactor=dfactor, min_step=min_step,
            max_step=max_step)
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    config = IntegrationConfig(
        tableau=tableau, rtol=rtol, atol=atol,
        adaptive=solver.adaptive if solver is not None else tableau.adaptive, solver=solver,
        step_size=_check_positive("step_size", step_size), grid=_check_grid(grid, times),
        first_step=_check_positive("first_step", first_step), max_steps=max_steps,
        safety=safety, ifactor=ifactor, dfactor=dfactor, beta1=beta1, beta2=beta2,
        min_step=float(min_step), max_step=float(max_step), norm=_check_norm(norm), interp=interp,
        step_t=tuple(float(s) for s in step_t), jump_t=tuple(float(s) for s in jump_t),
        perturb=bool(perturb), check_finite=check_finite)
    config.controller()  # validates the controller settings up front
    config.output_mode()
    adjoint_config = None
    if gradient == "adjoint":
        back, back_solver = (resolve_method(adjoint_method) if adjoint_method is not None
                             else (tableau, solver))
        _check_gradient_support(back_solver, gradient, None, False, "adjoint_method")
        if back_solver is not None and getattr(back_solver, "needs_split", False) \
                and split_of(func) is None:
            raise TypeError(f"adjoint_method={back_solver.name!r} needs the field split into "
                            f"its stiff and non-stiff parts: pass graphode.solvers.imex.Split("
                            f"implicit=..., explicit=...) as the field")
        b_rtol, b_atol = _check_tolerances(rtol if adjoint_rtol is None else adjoint_rtol,
                                           atol if adjoint_atol is None else adjoint_atol)
        same = back is tableau and back_solver is solver
        adjoint_config = replace(
            config, tableau=back, solver=back_solver,
            adaptive=back_solver.adaptive if back_solver is not None else back.adaptive,
            rtol=b_rtol, atol=b_atol, norm=None,
            step_size=_check_positive("adjoint_step_size", adjoint_step_size)
            if adjoint_step_size is not None else (config.step_size if same else None),
            step_t=(), jump_t=(), first_step=None)
    compile_with = compile_options(compile)
    if compile_with is not None:
        return _solve_compiled(func, y0, ts, times, config, gradient, per_graph, compile_with)
    if per_graph is not None:
        return _solve_per_graph(func, y0, ts, times, config, gradient, per_graph)
    ys, stats = _run(func, y0, ts, times, config, gradient, adjoint_params, adjoint_config,
                     adjoint_seminorm, func)
    return Solution(ys=ys, ts=ts, stats=stats)


def _solve_compiled(func: Callable, y0: Tensor, ts: Tensor, times: List[float],
                    config: IntegrationConfig, gradient: str, per_graph: Optional[Tensor],
                    options: Dict[str, Any]) -> Solution:
    if not config.fixed:
        raise ValueError(f"compile needs a fixed-step solve, got method={config.tableau.name!r} "
                         f"without step_size or grid: pass step_size=... (or a fixed-grid method "
                         f"such as rk4), or drop compile (adaptive steps are decided on the host)")
    if gradient != "autograd":
        raise ValueError(f"compile supports gradient='autograd' only, got {gradient!r}: the "
                         f"adjoint and checkpoint modes run their own solves in backward; drop "
                         f"compile or use gradient='autograd'")
    if per_graph is not None:
        raise ValueError("compile and per_graph cannot be combined: per-graph control needs "
                         "adaptive steps; drop one of them")
    if torch.is_grad_enabled() and ts.requires_grad:
        raise ValueError("compile does not differentiate with respect to t: pass t without "
                         "requires_grad, or drop compile")
    if len(times) == 1:
        return Solution(ys=y0.unsqueeze(0), ts=ts, stats=SolverStats())
    stats = SolverStats()
    ys = integrate_compiled(_Field(func, y0), y0, times, config, stats, options)
    return Solution(ys=ys, ts=ts, stats=stats)


def _solve_per_graph(func: Callable, y0: Tensor, ts: Tensor, times: List[float],
                     config: IntegrationConfig, gradient: str, batch: Tensor) -> Solution:
    if not config.adaptive or config.fixed:
        raise ValueError(f"per_graph step control needs an adaptive method without step_size or "
                         f"grid, got method={config.tableau.name!r}"
                         f"{' with a fixed step' if config.adaptive else ''}: use dopri5, tsit5 "
                         f"or bosh3, or drop per_graph (a fixed grid is shared anyway)")
    if gradient != "autograd":
        raise ValueError(f"per_graph step control supports gradient='autograd' only, got "
                         f"{gradient!r}: each graph's steps differ, so use autograd (or a shared "
                         f"step with the adjoint)")
    if y0.dim() < 1:
        raise ValueError("per_graph needs a node-major state of shape (num_nodes, ...)")
    stats = SolverStats()
    ys = integrate_per_graph(_Field(func, y0), y0, times, batch.to(y0.device), config, stats)
    return Solution(ys=torch.stack(ys), ts=ts, stats=stats)
