"""``sdeint`` and ``sdeint_adjoint``: torchsde's interface on states of any shape.

The solve steps on a grid (fixed ``dt``, or accepted adaptive steps) and returns the states
at ``ts`` by linear interpolation between the steps around them, as torchsde does, so that
the two agree on the same Brownian path. Gradients:

* ``"autograd"``: through the steps;
* ``"checkpoint"``: the forward solve keeps one state per step and no graph; the backward pass
  replays each step with autograd, exact for every method;
* ``"adjoint"`` (``sdeint_adjoint``): reversible Heun's adjoint (Kidger et al., 2021), which
  rebuilds every state backwards from the last one: memory flat in the number of steps,
  gradients equal to autograd's up to floating point; with any other method, the backsolve
  adjoint of Li et al. (2020) (:mod:`graphode.sde.backsolve`), flat in memory too, whose
  gradients converge as ``dt`` shrinks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ..gradients.audit import _same_rng, unlisted_tensors
from ..solvers.integrate import SolveError, rng_state
from .backsolve import BACKSOLVE_METHODS, backsolve, check_backsolve
from .brownian import BrownianMotion, step_grid
from .methods import DEFAULTS, METHODS, Method
from .terms import LogqpSDE, PaddedBrownian, Terms

Times = Union[Tensor, Sequence[float]]
GRADIENTS = ("autograd", "checkpoint", "adjoint")


@dataclass
class _Plan:
    """Everything a solve and its backward pass share."""
    terms: Terms
    method: Method
    bm: Any
    ts: List[float]
    grid: List[float] = field(default_factory=list)
    outputs: List[Tuple[int, float]] = field(default_factory=list)  # (step, fraction)
    params: Tuple[Tensor, ...] = ()
    adaptive: Optional[Dict[str, float]] = None


def _times(ts: Times, y0: Tensor) -> List[float]:
    values = ts.detach().cpu().tolist() if isinstance(ts, Tensor) else [float(t) for t in ts]
    if isinstance(ts, Tensor) and ts.dim() != 1:
        raise ValueError(f"ts must be 1-D, got shape {tuple(ts.shape)}")
    if len(values) < 1 or any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"ts must be strictly increasing, got {values[:6]}"
                         f"{'...' if len(values) > 6 else ''}")
    if not all(math.isfinite(t) for t in values):
        raise ValueError("ts must be finite")
    return values


def _output_map(grid: List[float], ts: List[float]) -> List[Tuple[int, float]]:
    """For each output time after the first, the step it falls in and where."""
    out, n = [], 0
    for t in ts[1:]:
        while grid[n + 1] < t:
            n += 1
        a, b = grid[n], grid[n + 1]
        out.append((n, 1.0 if t == b else (t - a) / (b - a)))
    return out


def _interp(y: Tensor, y1: Tensor, u: float) -> Tensor:
    if u == 1.0:
        return y1
    if u == 0.0:
        return y
    return y + u * (y1 - y)


def _run(plan: _Plan, y0: Tensor, keep: str = "none"):
    """The forward solve. ``keep``: ``"none"``, ``"all"`` (the state and extra before every
    step, for checkpointing) or ``"last"`` (the final state and extra, for the reversible
    adjoint). Adaptive solves record their accepted grid in the plan."""
    terms, method, bm = plan.terms, plan.method, plan.bm
    extra = method.init(terms, plan.ts[0], y0)
    ys = [y0]
    saved = [(y0, extra)] if keep == "all" else []
    y = y0
    if plan.adaptive is None:
        j = 0
        for n in range(len(plan.grid) - 1):
            y1, extra1 = method.step(terms, bm, plan.grid[n], plan.grid[n + 1], y, extra)
            while j < len(plan.outputs) and plan.outputs[j][0] == n:
                ys.append(_interp(y, y1, plan.outputs[j][1]))
                j += 1
            y, extra = y1, extra1
            if keep == "all":
                saved.append((y, extra))
    else:
        y, extra = _run_adaptive(plan, y0, extra, ys, saved if keep == "all" else None)
    if keep == "last":
        saved = [(y, extra)]
    out = torch.stack(ys)
    if plan.adaptive is None and not bool(torch.isfinite(out).all()):
        # one read after the loop, as the fixed-grid ODE solves check theirs
        first = int((~torch.isfinite(out.reshape(len(ys), -1))).any(1).nonzero()[0])
        raise SolveError(
            f"sdeint: the state became non-finite (NaN or inf) by output time "
            f"t={plan.ts[first]:.6g}: check y0 and the drift's and diffusion's parameters for "
            f"NaN or inf; if they are finite, the solution diverged: lower dt, or check the "
            f"drift and diffusion for overflow", plan.ts[first],
            plan.grid[1] - plan.grid[0] if len(plan.grid) > 1 else 0.0, ys[:first])
    return out, saved


def _run_adaptive(plan: _Plan, y0: Tensor, extra, ys: List[Tensor], saved):
    """Step doubling: a step of ``h`` against two of ``h/2`` on the same Brownian path; the
    two-step result is kept. The step size follows the error with the usual safety factor."""
    opts = plan.adaptive
    assert opts is not None
    terms, method, bm = plan.terms, plan.method, plan.bm
    order = opts["order"]
    grid = [plan.ts[0]]
    outputs: List[Tuple[int, float]] = []
    t, y, h = plan.ts[0], y0, opts["dt"]
    end = plan.ts[-1]
    j = 1
    while t < end:
        t1 = min(t + h, end)
        mid = 0.5 * (t + t1)
        coarse, _ = method.step(terms, bm, t, t1, y, extra)
        half, _ = method.step(terms, bm, t, mid, y, extra)
        fine, _ = method.step(terms, bm, mid, t1, half, extra)
        with torch.no_grad():
            scale = opts["atol"] + opts["rtol"] * torch.maximum(y.abs(), fine.abs())
            error = float(((fine - coarse) / scale).square().mean().sqrt())
        if not math.isfinite(error):
            raise SolveError(f"sdeint: the state became non-finite in the step from t={t} "
                             f"to t={t1} (step {h:.3g})", t, h, list(ys))
        if error <= 1.0 or t1 - t <= opts["dt_min"]:
            # the two half steps are kept, as steps of their own, so that a backward pass
            # replays exactly what was accepted
            for a, b, start, stop in ((t, mid, y, half), (mid, t1, half, fine)):
                n = len(grid) - 1
                grid.append(b)
                while j < len(plan.ts) and plan.ts[j] <= b:
                    u = 1.0 if plan.ts[j] == b else (plan.ts[j] - a) / (b - a)
                    outputs.append((n, u))
                    ys.append(_interp(start, stop, u))
                    j += 1
                if saved is not None:
                    saved.append((stop, extra))
            t, y = t1, fine
        factor = 10.0 if error == 0 else min(10.0, max(0.2, 0.9 * error ** (-1.0 / (order + 0.5))))
        h = max((t1 - t if error > 1.0 else h) * factor, opts["dt_min"])
    plan.grid, plan.outputs = grid, outputs
    return y, extra


def _vjp(outputs: Sequence[Tensor], inputs: Sequence[Tensor], grads: Sequence[Optional[Tensor]]
         ) -> List[Optional[Tensor]]:
    pairs = [(o, g) for o, g in zip(outputs, grads) if g is not None and o.requires_grad]
    if not pairs:
        return [None] * len(inputs)
    return list(torch.autograd.grad([o for o, _ in pairs], inputs, [g for _, g in pairs],
                                    allow_unused=True))


def _add(a: Optional[Tensor], b: Optional[Tensor]) -> Optional[Tensor]:
    return b if a is None else a if b is None else a + b


class _StepwiseGradient(torch.autograd.Function):
    """Gradients by replaying one step at a time: from stored states (checkpoint) or from
    states rebuilt backwards (reversible adjoint)."""

    @staticmethod
    def forward(ctx, plan: _Plan, mode: str, y0: Tensor, *params: Tensor) -> Tensor:
        with torch.no_grad():
            ys, saved = _run(plan, y0, keep="all" if mode == "checkpoint" else "last")
        ctx.plan, ctx.mode, ctx.saved = plan, mode, saved
        ctx.save_for_backward(y0)
        return ys

    @staticmethod
    def backward(ctx, grad_ys: Tensor):
        plan, mode, saved = ctx.plan, ctx.mode, ctx.saved
        y0, = ctx.saved_tensors
        terms, method, bm, grid = plan.terms, plan.method, plan.bm, plan.grid
        params = plan.params
        steps = len(grid) - 1
        by_step: Dict[int, List[Tuple[float, Tensor]]] = {}
        for (n, u), g in zip(plan.outputs, grad_ys[1:]):
            by_step.setdefault(n, []).append((u, g))
        a_y: Optional[Tensor] = None
        a_extra: List[Optional[Tensor]] = [None] * len(saved[-1][1])
        a_params: List[Optional[Tensor]] = [None] * len(params)
        state, extra = saved[-1]
        for n in range(steps - 1, -1, -1):
            pending: Optional[Tensor] = None
            for u, g in by_step.get(n, ()):
                a_y = _add(a_y, u * g)
                pending = _add(pending, (1.0 - u) * g)
            with torch.no_grad():
                if mode == "checkpoint":
                    state, extra = saved[n]
                else:
                    state, extra = method.unstep(terms, bm, grid[n], grid[n + 1], state, extra)
            y_in = state.detach().requires_grad_(True)
            extra_in = tuple(e.detach().requires_grad_(True) for e in extra)
            with torch.enable_grad():
                y1, extra1 = method.step(terms, bm, grid[n], grid[n + 1], y_in, extra_in)
                grads = _vjp((y1, *extra1), (y_in, *extra_in, *params), (a_y, *a_extra))
            a_y = _add(grads[0], pending)
            a_extra = list(grads[1:1 + len(extra_in)])
            for i, g in enumerate(grads[1 + len(extra_in):]):
                a_params[i] = _add(a_params[i], g)
        a_y = _add(a_y, grad_ys[0])
        if any(a is not None for a in a_extra):  # the extra state's start depends on y0
            y_in = y0.detach().requires_grad_(True)
            with torch.enable_grad():
                extra0 = method.init(terms, plan.ts[0], y_in)
                grads = _vjp(extra0, (y_in, *params), a_extra)
            a_y = _add(a_y, grads[0])
            for i, g in enumerate(grads[1:]):
                a_params[i] = _add(a_params[i], g)
        if a_y is None:
            a_y = torch.zeros_like(y0)
        return (None, None, a_y, *a_params)


def _resolve_method(method: Optional[str], terms: Terms, options: Optional[Dict[str, Any]]
                    ) -> Method:
    name = method if method is not None else DEFAULTS[terms.sde_type]
    if terms.noise_type == "general" and method is None:
        name = "euler" if terms.sde_type == "ito" else "midpoint"
    if name not in METHODS:
        raise ValueError(f"unknown SDE method {name!r}; choose one of {sorted(METHODS)}")
    cls = METHODS[name]
    if terms.sde_type not in cls.sde_types:
        valid = sorted(n for n, c in METHODS.items() if terms.sde_type in c.sde_types)
        raise ValueError(f"method {name!r} solves {' and '.join(cls.sde_types)} SDEs; for "
                         f"sde_type={terms.sde_type!r} use one of {valid}")
    if terms.noise_type not in cls.noise_types:
        raise ValueError(f"method {name!r} needs {', '.join(cls.noise_types)} noise, not "
                         f"noise_type={terms.noise_type!r}; use 'euler' (Ito) or 'midpoint' "
                         f"(Stratonovich) for general noise")
    options = dict(options or {})
    derivative_free = bool(options.pop("grad_free", options.pop("derivative_free", False)))
    if options:
        raise ValueError(f"unknown SDE options {sorted(options)}; the methods take "
                         f"'grad_free' (Milstein without the derivative of g)")
    if derivative_free and name != "milstein":
        raise ValueError("options={'grad_free': True} applies to method='milstein' only")
    return cls(derivative_free=derivative_free)


def sdeint(sde: Any, y0: Tensor, ts: Times, bm: Any = None, method: Optional[str] = None,
           dt: float = 1e-3, adaptive: bool = False, rtol: float = 1e-5, atol: float = 1e-4,
           dt_min: float = 1e-5, options: Optional[Dict[str, Any]] = None,
           names: Optional[Dict[str, str]] = None, logqp: bool = False, extra: bool = False,
           extra_solver_state: Any = None, *, gradient: str = "autograd",
           adjoint_params: Optional[Sequence[Tensor]] = None,
           entropy: Union[int, Sequence[int], Tensor, None] = None,
           batch: Optional[Tensor] = None, adjoint_method: Optional[str] = None) -> Any:
    """Solve ``dy = f(t, y) dt + g(t, y) dW`` from ``y(ts[0]) = y0``; returns the states at
    ``ts``, shape ``(len(ts), *y0.shape)``. torchsde's signature and semantics, on states of
    any shape (node features ``(N, C)`` included).

    Args:
        sde: an object with ``f(t, y)`` (drift) and ``g(t, y)`` (diffusion), and attributes
            ``noise_type`` (``"diagonal"``: ``g`` has the state's shape; ``"scalar"``: state
            + ``(1,)``; ``"additive"``/``"general"``: state + ``(m,)``) and ``sde_type``
            (``"ito"`` or ``"stratonovich"``).
        y0: the initial state, any shape; the leading dimensions are rows that each get their
            own Brownian motion.
        ts: output times, strictly increasing.
        bm: the Brownian motion: a :class:`BrownianMotion`, or torchsde's ``BrownianInterval``
            / ``BrownianPath`` (so results can be compared on the same path). ``None`` builds
            a :class:`BrownianMotion` on the step grid from ``entropy`` (and ``batch``).
        method: ``"euler"``, ``"milstein"``, ``"srk"`` (Ito); ``"euler_heun"``, ``"heun"``,
            ``"midpoint"``, ``"milstein"``, ``"reversible_heun"`` (Stratonovich). Default:
            ``"srk"`` for Ito, ``"midpoint"`` for Stratonovich (``"euler"`` for general Ito
            noise).
        dt: the step, or the first step of an adaptive solve.
        adaptive, rtol, atol, dt_min: adaptive steps by step doubling; a rejected step is
            retried on the same Brownian path.
        options: ``{"grad_free": True}`` for Milstein without the derivative of ``g``.
        names: rename the SDE's methods, e.g. ``{"drift": "f_mean", "diffusion": "g_std"}``.
        logqp: also return the log-ratio of a latent SDE (torchsde's): the SDE needs the prior
            drift ``h(t, y)``; the result is ``(ys, log_ratio)`` with ``log_ratio`` of shape
            ``(len(ts) - 1, rows)``, the integral of ``0.5 |u|^2`` (``g u = f - h``) between
            consecutive output times, per row of ``y0``, integrated with the solve's method
            (every gradient mode).
        extra, extra_solver_state: torchsde's solver-state output; not supported yet, and
            refused.
        gradient: ``"autograd"``, ``"checkpoint"`` (exact, one stored state per step, no
            graph) or ``"adjoint"`` (see :func:`sdeint_adjoint`): reversible Heun's exact
            adjoint with ``method="reversible_heun"``, the backsolve adjoint
            (:mod:`graphode.sde.backsolve`) with any other method.
        adjoint_method: the backsolve adjoint's backward method (``"midpoint"``), or
            ``"adjoint_reversible_heun"`` (reversible Heun's own, the default for it).
        adjoint_params: the tensors the ``"checkpoint"``/``"adjoint"`` modes differentiate
            besides ``y0`` (default: the SDE module's parameters).
        entropy: the seed of the default Brownian motion (one per graph with ``batch``).
        batch: graph index of every row of ``y0`` (PyG's ``batch``): each graph gets its own
            path, so a graph's sample does not depend on its batch mates.
    """
    if extra or extra_solver_state is not None:
        raise ValueError("sdeint: extra and extra_solver_state are not supported yet; leave "
                         "them at their defaults")
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
    if not isinstance(y0, Tensor) or not y0.is_floating_point() or y0.dim() < 1:
        raise ValueError(f"y0 must be a floating-point tensor with at least one dimension, "
                         f"got {y0.shape if isinstance(y0, Tensor) else type(y0).__name__}")
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt}")
    terms = Terms(sde, names)
    solver = _resolve_method(method, terms, options)
    times = _times(ts, y0)
    t0 = torch.full((), times[0], dtype=y0.dtype, device=y0.device)
    bm_shape = getattr(bm, "shape", None) if bm is not None else None
    m = terms.check(t0, y0, bm_shape)
    if len(times) == 1:
        return (y0.unsqueeze(0), y0.new_zeros(0, y0.size(0))) if logqp else y0.unsqueeze(0)
    if adaptive and solver.init(terms, times[0], y0.detach()):
        raise ValueError(f"method {solver.name!r} keeps a state between steps and runs with "
                         f"fixed steps only (adaptive=False)")
    grid = [] if adaptive else step_grid(times[0], times[-1], dt)
    if bm is None:
        size = tuple(y0.shape) if terms.noise_type == "diagonal" else (*y0.shape[:-1], m)
        bm = BrownianMotion(times[0], times[-1], size, dtype=y0.dtype, device=y0.device,
                            entropy=entropy, grid=None if adaptive else grid, dt=dt if adaptive
                            else None, levy_area=solver.levy_area, batch=batch)
    elif entropy is not None or batch is not None:
        raise ValueError("entropy and batch build the default Brownian motion; with bm= given, "
                         "pass them to BrownianMotion instead")
    shape = tuple(y0.shape)
    if logqp:
        # torchsde's latent-SDE penalty: one more state column integrated by the same method
        rows = y0.size(0)
        sde = LogqpSDE(terms, shape)
        if terms.noise_type == "diagonal":
            bm = PaddedBrownian(bm, rows)
        terms = Terms(sde)
        y0 = torch.cat([y0.reshape(rows, -1), y0.new_zeros(rows, 1)], dim=1)
    plan = _Plan(terms, solver, bm, times, grid, _output_map(grid, times) if grid else [],
                 adaptive=dict(dt=dt, rtol=rtol, atol=atol, dt_min=dt_min,
                               order=_ORDER.get(solver.name, 0.5)) if adaptive else None)
    if gradient == "autograd":
        ys, _ = _run(plan, y0)
        return _split_logqp(ys, shape) if logqp else ys
    backsolve_with = _backsolve_method(solver.name, gradient, adjoint_method)
    if backsolve_with is not None:
        check_backsolve(terms, adaptive, backsolve_with, t0, y0)
    if gradient == "adjoint" and adaptive:
        raise ValueError("gradient='adjoint' runs with fixed steps (adaptive=False)")
    plan.params = _adjoint_params(sde, adjoint_params, terms, t0, y0, gradient)
    if backsolve_with is not None:
        ys = _BacksolveGradient.apply(plan, y0, *plan.params)
    else:
        ys = _StepwiseGradient.apply(plan, gradient, y0, *plan.params)
    return _split_logqp(ys, shape) if logqp else ys


def _backsolve_method(method: str, gradient: str, adjoint_method: Optional[str]
                      ) -> Optional[str]:
    """The backward method of a backsolve adjoint, or ``None`` for reversible Heun's exact
    adjoint and the other gradient modes."""
    if gradient != "adjoint":
        return None
    if method == "reversible_heun" and adjoint_method in (None, "adjoint_reversible_heun"):
        return None
    if adjoint_method == "adjoint_reversible_heun":
        raise ValueError(f"adjoint_method='adjoint_reversible_heun' inverts reversible Heun's "
                         f"steps: solve with method='reversible_heun', not {method!r}")
    return adjoint_method or BACKSOLVE_METHODS[0]


class _BacksolveGradient(torch.autograd.Function):
    """The backsolve adjoint (:mod:`graphode.sde.backsolve`): no graph kept forward."""

    @staticmethod
    def forward(ctx, plan: _Plan, y0: Tensor, *params: Tensor) -> Tensor:
        with torch.no_grad():
            ys, _ = _run(plan, y0)
        ctx.plan = plan
        ctx.save_for_backward(ys)
        return ys

    @staticmethod
    def backward(ctx, grad_ys: Tensor):
        plan = ctx.plan
        ys, = ctx.saved_tensors
        a_y, a_params = backsolve(plan.terms, plan.bm, plan.grid, plan.outputs, ys, grad_ys,
                                  plan.params)
        return (None, a_y, *a_params)


def _split_logqp(ys: Tensor, shape: Tuple[int, ...]) -> Tuple[Tensor, Tensor]:
    """``(ys, log_ratio_increments)`` from the augmented solution, as torchsde returns them:
    the states in their own shape, and the log-ratio gained between consecutive output times,
    shape ``(len(ts) - 1, rows)``."""
    states = ys[..., :-1].reshape(ys.size(0), *shape)
    log_ratio = ys[..., -1]
    return states, log_ratio[1:] - log_ratio[:-1]


_ORDER = {"euler": 0.5, "milstein": 1.0, "srk": 1.5, "euler_heun": 0.5, "heun": 0.5,
          "midpoint": 0.5}


def _adjoint_params(sde: Any, adjoint_params, terms: Terms, t0: Tensor, y0: Tensor,
                    gradient: str) -> Tuple[Tensor, ...]:
    """The tensors to differentiate besides ``y0``; refuses a drift or diffusion that reads
    another tensor needing a gradient (it would silently get none), or that draws random
    numbers (the backward pass would draw others)."""
    if adjoint_params is None:
        if not isinstance(sde, torch.nn.Module):
            raise ValueError("the SDE is not a torch.nn.Module: pass adjoint_params=, the "
                             "tensors its drift and diffusion should be differentiated for")
        adjoint_params = list(sde.parameters())
    params = tuple(p for p in adjoint_params if isinstance(p, Tensor) and p.requires_grad)
    if not torch.is_grad_enabled():
        return params
    y_in = y0.detach().requires_grad_(True)
    before = rng_state(y0.device)
    with torch.enable_grad():
        out = terms.f(t0, y_in).sum() + terms.g(t0, y_in).sum()
    if not _same_rng(before, rng_state(y0.device)):
        raise ValueError(f"gradient={gradient!r}: the SDE's drift or diffusion draws random "
                         f"numbers (dropout, say), so the backward pass, which evaluates them "
                         f"again, would see other draws than the forward solve and its "
                         f"gradients would be wrong: use gradient='autograd', put the model in "
                         f"eval() mode, or move the randomness outside the solve")
    missed = unlisted_tensors(out, [y_in, *params])
    if missed:
        p = missed[0]
        raise ValueError(f"the SDE reads a tensor of shape {tuple(p.shape)} that needs a "
                         f"gradient but is not in adjoint_params; add it there (or use "
                         f"gradient='autograd')")
    return params


def sdeint_adjoint(sde: Any, y0: Tensor, ts: Times, bm: Any = None,
                   method: str = "reversible_heun", adjoint_method: Optional[str] = None,
                   dt: float = 1e-3, adaptive: bool = False, adjoint_adaptive: bool = False,
                   rtol: float = 1e-5, adjoint_rtol: float = 1e-5, atol: float = 1e-4,
                   adjoint_atol: float = 1e-4, dt_min: float = 1e-5,
                   options: Optional[Dict[str, Any]] = None,
                   adjoint_options: Optional[Dict[str, Any]] = None,
                   adjoint_params: Optional[Sequence[Tensor]] = None,
                   names: Optional[Dict[str, str]] = None, logqp: bool = False,
                   extra: bool = False, extra_solver_state: Any = None, **kwargs: Any) -> Any:
    """torchsde's ``sdeint_adjoint``: memory flat in the number of steps.

    With ``method="reversible_heun"`` (the default) the adjoint is reversible Heun's
    (``adjoint_method="adjoint_reversible_heun"``): it inverts the forward steps, and its
    gradients equal autograd's up to floating point. With any other method (or
    ``adjoint_method="midpoint"``) it is the backsolve adjoint of Li et al. (2020), which
    solves the adjoint SDE backwards on the forward's step grid and Brownian path
    (:mod:`graphode.sde.backsolve`): its gradients converge to the exact ones as ``dt``
    shrinks. ``sdeint(..., gradient="checkpoint")`` is exact for every method."""
    if adjoint_adaptive or adjoint_options:
        raise ValueError("the adjoint retraces the forward's step grid: adjoint_adaptive and "
                         "adjoint_options do not apply")
    return sdeint(sde, y0, ts, bm, method, dt, adaptive, rtol, atol, dt_min, options, names,
                  logqp, extra, extra_solver_state, gradient="adjoint",
                  adjoint_params=adjoint_params, adjoint_method=adjoint_method, **kwargs)
