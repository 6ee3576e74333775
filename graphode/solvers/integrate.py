"""The integration loops: a fixed grid, or adaptive steps with dense output.

Both loops take the output times as Python floats (read once per solve) and return the states
at those times. Nothing here knows about autograd modes or graphs; :mod:`graphode.solve`
chooses how gradients flow and :mod:`graphode.nn` binds graphs into the vector field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .controllers import Norm, PIController, error_ratio, initial_step_size
from .interpolation import hermite, linear, rk_dense
from .rk import RungeKutta
from .tableaux import ButcherTableau

if TYPE_CHECKING:
    from .base import Solver

__all__ = ["SolverStats", "SolveError", "Callbacks", "Event", "IntegrationConfig", "Step", "Replay",
           "integrate",
           "replay_step", "fixed_grid", "grid_of", "check_finite_outputs"]

Func = Callable[[Tensor, Tensor], Tensor]


@dataclass
class SolverStats:
    """Counters of one solve.

    Attributes:
        nfe: function evaluations of the forward solve.
        n_accepted, n_rejected: steps of the forward solve.
        nfe_backward: function evaluations during the backward pass (adjoint solve or
            checkpoint recomputation; 0 for plain autograd, which replays the stored graph).
        n_accepted_backward, n_rejected_backward: steps of the adjoint solve.
        switches: ``(t, method)`` where a switching method (``method="auto"``) began each
            stretch of the forward solve (the first entry is the start).
        graph_switches: ``(graph, t, method)`` where a graph of a per-graph ``auto`` solve
            switched (every graph starts on dopri5).
    """

    nfe: int = 0
    n_accepted: int = 0
    n_rejected: int = 0
    nfe_backward: int = 0
    n_accepted_backward: int = 0
    n_rejected_backward: int = 0
    switches: List[Tuple[float, str]] = field(default_factory=list)
    graph_switches: List[Tuple[int, float, str]] = field(default_factory=list)

    @property
    def n_steps(self) -> int:
        return self.n_accepted + self.n_rejected

    def __add__(self, other: "SolverStats") -> "SolverStats":
        if not isinstance(other, SolverStats):
            return NotImplemented
        sums = {f: getattr(self, f) + getattr(other, f) for f in _STAT_FIELDS}
        return SolverStats(**sums, switches=self.switches + other.switches,
                           graph_switches=self.graph_switches + other.graph_switches)

    def __radd__(self, other: object) -> "SolverStats":
        # sum(stats_list) starts from 0
        return self if other == 0 else NotImplemented


_STAT_FIELDS = ("nfe", "n_accepted", "n_rejected", "nfe_backward", "n_accepted_backward",
                "n_rejected_backward")


class SolveError(RuntimeError):
    """A solve that could not finish.

    Attributes:
        t: the time reached.
        step_size: the step size at failure.
        ys: the states at the output times reached before the failure (nothing is lost).
    """

    def __init__(self, message: str, t: float, step_size: float, ys: Sequence[Tensor]):
        super().__init__(message)
        self.t, self.step_size, self.ys = t, step_size, list(ys)


@dataclass
class Callbacks:
    """Functions the loops call around each step, as torchdiffeq calls a field's
    ``callback_step``, ``callback_accept_step`` and ``callback_reject_step``: each receives
    ``(t0, y0, dt)`` with ``t0`` and ``dt`` as 0-dim float64 tensors."""

    step: Optional[Callable[[Tensor, Tensor, Tensor], None]] = None
    accept: Optional[Callable[[Tensor, Tensor, Tensor], None]] = None
    reject: Optional[Callable[[Tensor, Tensor, Tensor], None]] = None

    def mapped(self, state: Callable[[Tensor], Any]) -> "Callbacks":
        """The same callbacks, receiving ``state(y)`` in place of the solver's flat state."""
        def wrap(callback):
            return None if callback is None else lambda t0, y0, dt: callback(t0, state(y0), dt)
        return Callbacks(wrap(self.step), wrap(self.accept), wrap(self.reject))

    def __call__(self, which: str, t0: float, y0: Tensor, dt: float) -> None:
        callback = getattr(self, which)
        if callback is not None:
            # torch.full fills on the device: no host-to-device copy, no synchronisation
            as_tensor = lambda v: torch.full((), v, dtype=torch.float64, device=y0.device)  # noqa: E731
            callback(as_tensor(t0), y0, as_tensor(dt))


class Event:
    """Stops an adaptive solve where ``fn(t, y)`` first changes sign (any component).

    After each accepted step the event is checked at the step's end; a crossing is located
    by bisection on the step's interpolant to ``tol`` in time, and the solve returns the
    interpolated state there as its last output. ``t`` holds the event time afterwards."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor], tol: float):
        self.fn, self.tol = fn, tol
        self.sign0: Optional[Tensor] = None
        self.t: Optional[float] = None

    def value(self, t: Tensor, y: Tensor) -> Tensor:
        """The events as one number, positive before any crossing (the smallest of each
        component times its initial sign)."""
        assert self.sign0 is not None
        return (self.fn(t, y) * self.sign0).min()

    def start(self, t: float, y: Tensor) -> None:
        with torch.no_grad():
            value = self.fn(_time_tensor(t, y), y)
            if not isinstance(value, Tensor) or not value.is_floating_point():
                raise TypeError("event_fn must return a floating-point tensor")
            self.sign0 = torch.sign(value)
            if bool((self.sign0 == 0).any()):
                raise ValueError(f"event_fn is zero at the initial time t={t:g}: an event "
                                 f"needs a non-zero value to start from")

    def locate(self, t0: float, t1: float, interp: Callable[[float], Tensor], y1: Tensor
               ) -> Optional[Tensor]:
        """The state at the first crossing inside the step ``(t0, t1]``, or ``None``."""
        h = t1 - t0
        with torch.no_grad():
            if self.value(_time_tensor(t1, y1), y1).item() > 0:
                return None
            lo, hi = 0.0, 1.0
            while (hi - lo) * abs(h) > self.tol and t0 + 0.5 * (lo + hi) * h not in (
                    t0 + lo * h, t0 + hi * h):
                mid = 0.5 * (lo + hi)
                if self.value(_time_tensor(t0 + mid * h, y1), interp(mid)).item() > 0:
                    lo = mid
                else:
                    hi = mid
        theta = 0.5 * (lo + hi)
        self.t = t0 + theta * h
        return interp(theta)


@dataclass
class IntegrationConfig:
    """Everything one integration needs besides the field and the initial state."""

    tableau: ButcherTableau
    rtol: float = 1e-7
    atol: float = 1e-9
    adaptive: bool = True
    step_size: Optional[float] = None
    grid: Optional[Sequence[float]] = None
    first_step: Optional[float] = None
    max_steps: int = 10_000
    safety: float = 0.9
    ifactor: float = 10.0
    dfactor: float = 0.2
    beta1: Optional[float] = None
    beta2: Optional[float] = None
    min_step: float = 0.0
    max_step: float = math.inf
    norm: Optional[Norm] = None
    step_t: Tuple[float, ...] = ()
    jump_t: Tuple[float, ...] = ()
    perturb: bool = False
    interp: str = "auto"
    check_finite: bool = True
    callbacks: Optional[Callbacks] = None
    solver: Optional["Solver"] = None
    event: Optional[Event] = None

    @property
    def name(self) -> str:
        """The method's name."""
        return self.solver.name if self.solver is not None else self.tableau.name

    @property
    def fixed(self) -> bool:
        """Whether this integration steps on a fixed grid (no error control)."""
        return not self.adaptive or self.step_size is not None or self.grid is not None

    def output_mode(self) -> str:
        """How outputs between steps are formed: "linear", "dense" or "hermite".

        Adaptive solves always use the best available interpolant; fixed grids follow
        ``interp`` ("linear" as torchdiffeq's default, "cubic", or "auto").
        """
        if self.interp not in ("auto", "linear", "cubic", "hermite"):
            raise ValueError(f"interp must be 'auto', 'linear' or 'cubic', got {self.interp!r}")
        has_dense = self.tableau.dense is not None
        if not self.fixed:
            return "dense" if has_dense else "hermite"
        if self.interp == "linear":
            return "linear"
        return "dense" if (self.interp == "auto" and has_dense) else "hermite"

    def order(self) -> int:
        """The order the step-size controller works with: the error estimate's plus one."""
        return (self.tableau.error_order or self.tableau.order) + 1

    def controller(self) -> PIController:
        return PIController(order=self.order(),
                            safety=self.safety, ifactor=self.ifactor, dfactor=self.dfactor,
                            beta1=self.beta1, beta2=self.beta2, min_step=self.min_step,
                            max_step=self.max_step)


def fixed_grid(times: Sequence[float], step_size: float, max_steps: Optional[int] = None
               ) -> List[float]:
    """Equal steps of ``step_size`` from ``times[0]`` to ``times[-1]``; the last may be shorter.

    Raises ``ValueError`` before building the grid when it would need more than
    ``max_steps`` steps."""
    t0, t1 = times[0], times[-1]
    span = abs(t1 - t0)
    if span == 0.0:
        return [t0]
    # A small relative slack keeps 1.0 / 0.1 from producing an eleventh, vanishing step.
    n = max(1, math.ceil(span / step_size * (1.0 - 1e-12)))
    if max_steps is not None and n > max_steps:
        raise ValueError(
            f"step_size={step_size:g} over [{t0:g}, {t1:g}] needs {n} steps, more than "
            f"max_steps={max_steps}: use a larger step_size, or raise max_steps if you mean it")
    direction = math.copysign(1.0, t1 - t0)
    return [t0 + direction * i * step_size for i in range(n)] + [t1]


def _time_tensor(t: float, like: Tensor, toward: Optional[float] = None) -> Tensor:
    """``t`` as a 0-dim tensor in the state's dtype; with ``toward``, the neighbouring
    representable value in that direction (a one-sided limit at a discontinuity)."""
    # torch.full launches a fill, never a host-to-device copy, so it does not synchronise.
    out = torch.full((), t, dtype=like.dtype, device=like.device)
    if toward is not None:
        out = torch.nextafter(out, torch.full((), toward, dtype=like.dtype, device=like.device))
    return out


def check_step(t: float, h: float, min_step: float, attempts: int, config: "IntegrationConfig",
               stats: SolverStats, end: float, ys: Sequence[Tensor], method: Optional[str] = None,
               hint: str = "check the field") -> None:
    """Raise :class:`SolveError` for a step-size underflow or too many steps (the solver
    loops' shared guard; ``method`` names what was stepping, ``hint`` what to suspect)."""
    if not math.isfinite(h) or abs(h) < min_step or t + h == t:
        by = f" with method={method}" if method else ""
        below = f" below min_step={min_step:g}" if min_step else ""
        raise SolveError(
            f"step size underflow at t={t:.6g}{by}: the controller asked for a step of "
            f"{h:.3g}{below}; {hint}; loosen rtol/atol or use a fixed step_size", t, h, ys)
    if attempts >= config.max_steps:
        raise SolveError(
            f"max_steps={config.max_steps} exceeded at t={t:.6g} (step size {h:.3g}, "
            f"{stats.n_accepted} accepted, {stats.n_rejected} rejected) before reaching "
            f"t={end:.6g}: raise max_steps or loosen rtol/atol; {hint}", t, h, ys)


def _non_finite(where: str, t: float, h: float, ys: Sequence[Tensor]) -> SolveError:
    return SolveError(
        f"the state or its derivative became non-finite (NaN or inf) {where} t={t:.6g} with "
        f"step size {h:.3g}: check y0 and the field's parameters for NaN or inf; if they are "
        f"finite, the solution diverged there: lower the step size or tolerances, or check "
        f"the field for overflow.", t, h, ys)


@dataclass
class Replay:
    """An accepted step of a solver object's own loop, as checkpointing replays it.

    ``run(y, carry)`` recomputes the step under autograd from its start state ``y`` and the
    tensors the loop carries from one step to the next (``carry``: the field at the step's
    start, say), returning ``(y1, carry1, outputs)``: the end state, the carry into the next
    step and the outputs that fall inside the step, one per entry of ``outputs`` (``(index,
    theta)``, as in :class:`Step`). ``stats`` counts the replay's evaluations. A loop's first
    record maps ``y0`` to itself and its first carry. ``rng``: the random state before the
    step's first evaluation in the forward solve, restored for the replay (a solver that
    records it sets ``replays_random``)."""

    y: Tensor
    carry: Tuple[Tensor, ...]
    outputs: List[Tuple[int, float]]
    run: Callable[[Tensor, Tuple[Tensor, ...]],
                  Tuple[Tensor, Tuple[Tensor, ...], List[Tensor]]]
    stats: "SolverStats"
    rng: Optional["RngState"] = None


Record = Optional[List[Any]]


RngState = Tuple[Tensor, Optional[Tensor]]


@dataclass
class Step:
    """An accepted step, as checkpointing replays it: from ``(t, y)`` with size ``h``,
    producing the outputs ``(index, theta)`` that fall inside it (``theta == 1``: the end).

    ``rng`` holds the random state before the step's first stage was evaluated (for an FSAL
    method that is inside the previous step) and before its second stage, so that a field
    that draws random numbers replays with the forward's draws."""

    t: float
    h: float
    y: Tensor
    outputs: List[Tuple[int, float]]
    rng: Optional[Tuple[RngState, RngState]] = None


def rng_state(device: torch.device) -> RngState:
    """The random state now (CPU, and the state's CUDA device)."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: RngState, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


class _RngTap:
    """Wraps the field while steps are recorded: remembers the random state before its
    latest call, which is where the next step's first stage drew from."""

    def __init__(self, func: Func, device: torch.device):
        self.func, self.device = func, device
        self.before: Optional[RngState] = None

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        self.before = rng_state(self.device)
        return self.func(t, y)


def integrate(func: Func, y0: Tensor, times: Sequence[float], config: IntegrationConfig,
              stats: SolverStats, record: Record = None) -> List[Tensor]:
    """Solve ``dy/dt = func(t, y)`` from ``y0`` at ``times[0]``; states at every time in ``times``.

    ``times`` are Python floats, strictly monotonic (either direction). With ``record`` a
    list, every accepted step is appended to it as a :class:`Step`.
    """
    if len(times) == 1:
        return [y0]
    if config.solver is not None:
        return config.solver.integrate(func, y0, times, config, stats, record)
    if not config.fixed:
        return _integrate_adaptive(func, y0, times, config, stats, record)
    return _integrate_fixed(func, y0, times, grid_of(times, config), config, stats, record)


def grid_of(times: Sequence[float], config: IntegrationConfig) -> List[float]:
    """The step points of a fixed-grid solve: ``grid``, else steps of ``step_size``, else
    ``times`` themselves."""
    if config.grid is not None:
        return list(config.grid)
    if config.step_size is not None:
        return fixed_grid(times, config.step_size, config.max_steps)
    return list(times)


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """A CPU tensor on ``device`` without a host sync: a plain copy to a GPU waits for the
    copy to finish, so the copy goes through pinned memory, asynchronously (in a compiled
    solve the copy is the graph's own)."""
    if device.type != "cuda" or t.device == device or torch.compiler.is_compiling():
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _stage_times(grid: Sequence[float], rk: RungeKutta, like: Tensor, perturb: bool
                 ) -> List[List[Tensor]]:
    """Every stage time of a fixed grid as a tensor view, built once (no per-step copies)."""
    g = torch.tensor(grid, dtype=torch.float64)
    c = torch.tensor(rk.c, dtype=torch.float64)
    table = (g[:-1, None] + c[None, :] * (g[1:] - g[:-1])[:, None]).to(like.dtype)
    if perturb:
        # Evaluate just inside each step so that a discontinuity on the grid is seen from the
        # correct side (torchdiffeq's `perturb`).
        toward_end = (g[1:] - g[:-1]).sign().to(like.dtype)[:, None]
        first = (c == 0.0)
        last = (c == 1.0)
        table[:, first] = torch.nextafter(table[:, first], table[:, first] + toward_end)
        table[:, last] = torch.nextafter(table[:, last], table[:, last] - toward_end)
    table = to_device(table, like.device)
    return [list(row.unbind(0)) for row in table.unbind(0)]


def _interpolate(mode: str, rk: RungeKutta, y: Tensor, y1: Tensor, ks: Sequence[Tensor],
                 k1: Tensor, k_end: Callable[[], Tensor], h: float, theta: float) -> Tensor:
    if theta == 1.0:
        return y1
    if mode == "linear":
        return linear(y, y1, theta)
    if mode == "dense":
        return rk_dense(rk, y, ks, h, theta)
    return hermite(y, y1, k1, k_end(), h, theta)


def _emit(times: Sequence[float], j: int, direction: float, t0: float, t1: float
          ) -> List[Tuple[int, float]]:
    """The outputs ``(index, theta)`` that fall in the step ``(t0, t1]``, from index ``j`` on."""
    out = []
    h = t1 - t0
    while j < len(times) and direction * (times[j] - t1) <= 0:
        out.append((j, 1.0 if times[j] == t1 else (times[j] - t0) / h))
        j += 1
    return out


class _EndDerivative:
    """``f(t1, y1)`` on demand, evaluated at most once and reused as the next step's ``k1``."""

    def __init__(self, f: Callable[[float, Tensor], Tensor], t1: float, y1: Tensor,
                 known: Optional[Tensor]):
        self.f, self.t1, self.y1, self.value = f, t1, y1, known

    def __call__(self) -> Tensor:
        if self.value is None:
            self.value = self.f(self.t1, self.y1)
        return self.value


def replay_step(func: Func, rk: RungeKutta, mode: str, step: Step, y: Tensor
                ) -> Tuple[Tensor, List[Tensor]]:
    """Recompute one recorded step from ``y`` (checkpointing's backward pass).

    The random states the step's stages drew from are restored, so a stochastic field
    (dropout) replays with the same masks, FSAL stages included; the caller's random state is
    left as it was.
    """
    if step.rng is None:
        return _replay(func, rk, mode, step, y)
    devices = [y.device] if y.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return _replay(func, rk, mode, step, y)


def _replay(func: Func, rk: RungeKutta, mode: str, step: Step, y: Tensor
            ) -> Tuple[Tensor, List[Tensor]]:
    t, h = step.t, step.h
    f = lambda s, z: func(_time_tensor(s, y), z)  # noqa: E731
    if step.rng is not None:
        _set_rng_state(step.rng[0], y.device)
    k1 = f(t, y)
    if step.rng is not None:
        _set_rng_state(step.rng[1], y.device)
    y1, _, ks = rk.step(func, lambda i: _time_tensor(t + rk.c[i] * h, y), y, k1, h,
                        with_error=False)
    k_end = _EndDerivative(f, t + h, y1, ks[-1] if rk.fsal else None)
    outs = [_interpolate(mode, rk, y, y1, ks, k1, k_end, h, theta) for _, theta in step.outputs]
    return y1, outs


def _rngs(k1: Optional[RngState], stages: Optional[RngState]
          ) -> Optional[Tuple[RngState, RngState]]:
    return None if k1 is None or stages is None else (k1, stages)


def _integrate_fixed(func: Func, y0: Tensor, times: Sequence[float], grid: Sequence[float],
                     config: IntegrationConfig, stats: SolverStats, record: Record) -> List[Tensor]:
    rk = RungeKutta(config.tableau)
    mode = config.output_mode()
    stage_times = _stage_times(grid, rk, y0, config.perturb)
    direction = math.copysign(1.0, times[-1] - times[0])

    def f(t: float, y: Tensor) -> Tensor:
        stats.nfe += 1
        return func(_time_tensor(t, y0), y)

    tap = None if record is None else _RngTap(func, y0.device)
    if tap is not None:
        func = tap
    ys = [y0]
    y, k1 = y0, None
    k1_rng: Optional[RngState] = None
    for n in range(len(grid) - 1):
        t0, t1 = grid[n], grid[n + 1]
        h = t1 - t0
        row = stage_times[n]
        if k1 is None:
            k1 = func(row[0], y)
            stats.nfe += 1
            k1_rng = tap.before if tap is not None else None
        stage_rng = rng_state(y.device) if tap is not None else None
        if config.callbacks is not None:
            config.callbacks("step", t0, y, h)
        y1, _, ks = rk.step(func, row.__getitem__, y, k1, h, with_error=False)
        stats.nfe += rk.stages - 1
        stats.n_accepted += 1
        k_end = _EndDerivative(f, t1, y1, ks[-1] if rk.fsal else None)
        outputs = _emit(times, len(ys), direction, t0, t1)
        ys.extend(_interpolate(mode, rk, y, y1, ks, k1, k_end, h, theta) for _, theta in outputs)
        if record is not None:
            record.append(Step(t0, h, y, outputs, _rngs(k1_rng, stage_rng)))
            k1_rng = tap.before if tap is not None and k_end.value is not None else None
        y, k1 = y1, k_end.value
    if config.check_finite:
        check_finite_outputs(ys, times, grid)
    return ys


def check_finite_outputs(ys: Sequence[Tensor], times: Sequence[float], grid: Sequence[float]
                         ) -> None:
    """Raise :class:`SolveError` at the first non-finite output of a fixed-grid solve.

    One synchronisation after the loop, never inside it."""
    finite = torch.stack([torch.isfinite(y).all() for y in ys]).tolist()
    if all(finite):
        return
    first = finite.index(False)
    h = abs(grid[1] - grid[0]) if len(grid) > 1 else 0.0
    raise _non_finite("by output time", times[first], h, list(ys[:first]))


def _stops(times: Sequence[float], config: IntegrationConfig, direction: float) -> List[Tuple[float, bool]]:
    """Times the adaptive loop must land on exactly, in order: (time, is_jump)."""
    t0, t1 = times[0], times[-1]
    inside = lambda s: direction * (s - t0) > 0 and direction * (t1 - s) > 0  # noqa: E731
    stops = {float(s): False for s in config.step_t if inside(float(s))}
    stops.update({float(s): True for s in config.jump_t if inside(float(s))})
    stops[t1] = False
    return sorted(stops.items(), key=lambda item: direction * item[0])


def _integrate_adaptive(func: Func, y0: Tensor, times: Sequence[float], config: IntegrationConfig,
                        stats: SolverStats, record: Record) -> List[Tensor]:
    rk = RungeKutta(config.tableau)
    mode = config.output_mode()
    controller = config.controller()
    rtol, atol, norm = config.rtol, config.atol, config.norm
    direction = math.copysign(1.0, times[-1] - times[0])
    stops = _stops(times, config, direction)

    def f(t: float, y: Tensor) -> Tensor:
        stats.nfe += 1
        return func(_time_tensor(t, y0), y)

    tap = None if record is None else _RngTap(func, y0.device)
    if tap is not None:
        func = tap
    t, y = times[0], y0
    first = f(t, y)
    k1: Optional[Tensor] = first
    k1_rng = tap.before if tap is not None else None
    if config.first_step is not None:
        h = direction * abs(config.first_step)
    else:
        h = initial_step_size(f, t, y, first, direction, config.order(), rtol, atol, norm)
        if not math.isfinite(h):  # y0 or f(t0, y0) holds a NaN or inf
            raise _non_finite("at the initial state,", t, h, ys=[])
    h = controller.clip(h)
    ys = [y0]
    if config.event is not None:
        config.event.start(t, y)
    j, stop_index, attempts = 1, 0, 0
    after_jump = False
    while j < len(times):
        stop, is_jump = stops[stop_index]
        # Land exactly on the next stop when the step would reach (or nearly reach) it.
        landing = direction * (t + h * (1.0 + 1e-10) - stop) >= 0
        if landing:
            h = stop - t
        if math.isnan(h):
            raise _non_finite("in the step from", t, h, ys)
        check_step(t, h, controller.min_step, attempts, config, stats, times[-1], ys,
                   hint="the problem may be stiff here (try method='auto' or an implicit "
                        "method such as 'kvaerno5') or the field non-smooth")
        attempts += 1
        if k1 is None:
            # After a jump the field is evaluated as the limit from inside the new step.
            k1 = func(_time_tensor(t, y0, toward=t + h if after_jump else None), y)
            stats.nfe += 1
            k1_rng = tap.before if tap is not None else None
        stage_rng = rng_state(y.device) if tap is not None else None
        if config.callbacks is not None:
            config.callbacks("step", t, y, h)
        at_jump = landing and is_jump

        def t_stage(i: int, _t: float = t, _h: float = h, _jump: bool = at_jump) -> Tensor:
            if _jump and rk.c[i] == 1.0:  # the left limit at the discontinuity
                return _time_tensor(_t + _h, y0, toward=_t)
            return _time_tensor(_t + rk.c[i] * _h, y0)
        y1, error, ks = rk.step(func, t_stage, y, k1, h)
        assert error is not None  # adaptive methods have an embedded error estimate
        stats.nfe += rk.stages - 1
        ratio = error_ratio(error, y, y1, rtol, atol, norm).item()  # the one sync of a step
        if math.isnan(ratio):
            raise _non_finite("in the step from", t, h, ys)
        accepted = ratio <= 1.0
        if config.callbacks is not None:
            config.callbacks("accept" if accepted else "reject", t, y, h)
        if accepted:
            stats.n_accepted += 1
            t1 = stop if landing else t + h
            k_end = _EndDerivative(f, t1, y1, ks[-1] if rk.fsal else None)
            outputs = _emit(times, j, direction, t, t1)
            ys.extend(_interpolate(mode, rk, y, y1, ks, k1, k_end, h, theta)
                      for _, theta in outputs)
            j += len(outputs)
            if config.event is not None:
                def interp(theta: float, _y: Tensor = y, _y1: Tensor = y1, _k1: Tensor = k1,
                           _ks: List[Tensor] = ks, _ke: _EndDerivative = k_end,
                           _h: float = h) -> Tensor:
                    return _interpolate(mode, rk, _y, _y1, _ks, _k1, _ke, _h, theta)
                hit = config.event.locate(t, t1, interp, y1)
                if hit is not None:
                    ys.append(hit)
                    return ys
            if record is not None:
                record.append(Step(t, t1 - t, y, outputs, _rngs(k1_rng, stage_rng)))
                k1_rng = tap.before if tap is not None and k_end.value is not None else None
            k_next = k_end.value
            after_jump = at_jump
            if landing:
                stop_index = min(stop_index + 1, len(stops) - 1)
                if is_jump:
                    k_next = None  # the field is discontinuous here: re-evaluate after the jump
            t, y, k1 = t1, y1, k_next
        else:
            stats.n_rejected += 1
        h = controller.next_step(h, ratio, accepted)
    return ys
