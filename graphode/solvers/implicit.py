"""Implicit (diagonally implicit) Runge-Kutta methods for stiff graph ODEs.

A diagonally implicit method solves one equation per stage,

    Z_i = y + h * sum_{j<i} a_ij f(t_j, Z_j) + h * gamma * f(t_i, Z_i),

by Newton's method, and never forms a Jacobian: each Newton correction solves
``(I - h gamma J) d = -r`` with a Krylov method (GMRES, or preconditioned conjugate gradients
when the Jacobian is symmetric) whose products ``J v`` are one finite difference of the field
each (counted as evaluations in :class:`~graphode.SolverStats`).

**The graph operator.** A field that can say what its Jacobian is (a method
``jacobian_operator(t, y)`` returning a :class:`JacobianOperator`) skips the finite
differences; a linear one (``linear=True``, such as :class:`~graphode.nn.LinearDiffusion`
bound by :class:`~graphode.nn.GraphVectorField`) needs a single linear solve per stage, by
Jacobi-preconditioned CG on ``I - h gamma A`` with the sparse propagation operator itself.

**Gradients.** The Newton iterations run without autograd. A solved stage ``Z*`` is attached
to the autograd graph by the implicit function theorem: one evaluation ``f(t, Z*)`` carries
the field's graph to its parameters, and the backward pass solves ``(I - h gamma J^T) w = g``
for the incoming gradient ``g`` (Krylov again, with vector-Jacobian products), so gradients
are exact up to the linear solver's tolerance and the iterations are never unrolled. The
stage derivative is ``(Z* - base) / (h gamma)``, not ``f(t, Z*)``, in every mode: the forward
values do not depend on whether gradients are taken, and the solve's residual is not
amplified by the stiff Jacobian. ``gradient="adjoint"`` solves the adjoint equation with the same method.

Methods (all stiffly accurate: the last stage is the new solution):

- ``implicit_euler`` (order 1, L-stable) and ``trapezoid`` (Crank-Nicolson, order 2,
  A-stable) on fixed grids;
- ``trbdf2``: TR-BDF2 (Bank et al., 1985; as an ESDIRK pair by Hosea and Shampine, Appl.
  Numer. Math. 20 (1996) 21-37), order 2 with a third-order error estimate, L-stable;
- ``kvaerno3`` and ``kvaerno5``: Kvaerno's ESDIRK 3(2) and 5(4) pairs (BIT 44 (2004)
  489-502), L-stable.

The adaptive ones also step on fixed grids (``step_size=`` or ``grid=``). Outputs between
steps are cubic Hermite interpolants.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .base import Func, Solver, register
from .controllers import error_ratio, initial_step_size, rms_norm
from .interpolation import hermite
from .tableaux import METHODS

__all__ = ["DIRKTableau", "JacobianOperator", "Implicit", "DIRK_METHODS", "gmres", "cg"]


# --------------------------------------------------------------------------- tableaux
@dataclass(frozen=True)
class DIRKTableau:
    """A stiffly accurate diagonally implicit Runge-Kutta method.

    Attributes:
        name: the ``method=`` name.
        a: the rows of the lower-triangular matrix, row ``i`` holding ``a_i0 .. a_ii``; a zero
            first row is an explicit first stage (ESDIRK).
        c: the stage times in units of ``h``.
        order: the order of the solution (the last row).
        b_error: ``b - b_hat`` of an embedded method, or ``None`` (fixed grids only).
        error_order: the order of the embedded method.
    """

    name: str
    a: Tuple[Tuple[float, ...], ...]
    c: Tuple[float, ...]
    order: int
    b_error: Optional[Tuple[float, ...]] = None
    error_order: Optional[int] = None

    def __post_init__(self) -> None:
        for i, row in enumerate(self.a):
            assert len(row) == i + 1, f"{self.name}: row {i} must have {i + 1} entries"
            assert abs(sum(row) - self.c[i]) < 1e-12, f"{self.name}: row {i} does not sum to c"
        assert self.c[-1] == 1.0, f"{self.name} must be stiffly accurate (c_s = 1)"

    @property
    def explicit_first(self) -> bool:
        return self.a[0][0] == 0.0

    @property
    def adaptive(self) -> bool:
        return self.b_error is not None


def _kvaerno3() -> DIRKTableau:
    # gamma: the root of 6 g^3 - 18 g^2 + 9 g - 1 in (1/6, 1/2) that makes the method L-stable
    g = 0.43586652150845899942
    a31 = (-4 * g * g + 6 * g - 1) / (4 * g)
    a32 = (-2 * g + 1) / (4 * g)
    a41 = (6 * g - 1) / (12 * g)
    a42 = -1 / ((24 * g - 12) * g)
    a43 = (-6 * g * g + 6 * g - 1) / (6 * g - 3)
    return DIRKTableau(
        "kvaerno3", a=((0.0,), (g, g), (a31, a32, g), (a41, a42, a43, g)),
        c=(0.0, 2 * g, 1.0, 1.0), order=3,
        b_error=(a41 - a31, a42 - a32, a43 - g, g), error_order=2)


def _kvaerno5() -> DIRKTableau:
    g = 0.26
    rows = ((0.0,), (g, g), (0.13, 0.84033320996790809, g),
            (0.22371961478320505, 0.47675532319799699, -0.06470895363112615, g),
            (0.16648564323248321, 0.10450018841591720, 0.03631482272098715,
             -0.13090704451073998, g),
            (0.13855640231268224, 0.0, -0.04245337201752043, 0.02446657898003141,
             0.61943039072480676, g),
            (0.13659751177640291, 0.0, -0.05496908796538376, -0.04118626728321046,
             0.62993304899016403, 0.06962479448202728, g))
    c = tuple(sum(r) for r in rows[:-1]) + (1.0,)
    b_error = tuple(x - y for x, y in zip(rows[6], rows[5] + (0.0,)))
    return DIRKTableau("kvaerno5", a=rows, c=c, order=5, b_error=b_error, error_order=4)


def _trbdf2() -> DIRKTableau:
    d = 1.0 - math.sqrt(2.0) / 2.0
    w = math.sqrt(2.0) / 4.0
    b_hat = ((1.0 - w) / 3.0, (3.0 * w + 1.0) / 3.0, d / 3.0)
    return DIRKTableau("trbdf2", a=((0.0,), (d, d), (w, w, d)), c=(0.0, 2.0 * d, 1.0),
                       order=2, b_error=tuple(b - bh for b, bh in zip((w, w, d), b_hat)),
                       error_order=3)


DIRK_METHODS: Dict[str, DIRKTableau] = {
    "implicit_euler": DIRKTableau("implicit_euler", a=((1.0,),), c=(1.0,), order=1),
    "trapezoid": DIRKTableau("trapezoid", a=((0.0,), (0.5, 0.5)), c=(0.0, 1.0), order=2),
    "trbdf2": _trbdf2(),
    "kvaerno3": _kvaerno3(),
    "kvaerno5": _kvaerno5(),
}


# --------------------------------------------------------------------------- linear algebra
@dataclass
class JacobianOperator:
    """What a field knows about its Jacobian ``J = df/dy`` at one point.

    Attributes:
        matvec: ``v -> J v`` for a tensor of the state's shape.
        diagonal: the diagonal of ``J`` in the state's shape (a Jacobi preconditioner), or
            ``None``.
        symmetric: whether ``J`` is symmetric (then the stage systems are solved by CG).
        linear: whether the field is affine in ``y`` with this ``J`` at every state and time
            (then a stage needs one linear solve and no Newton iteration).
        spectrum: ``(low, high)``, an interval of the real axis holding every eigenvalue of
            a symmetric ``J``, or ``None`` when unknown (``method="expm"`` needs it).
    """

    matvec: Callable[[Tensor], Tensor]
    diagonal: Optional[Tensor] = None
    symmetric: bool = False
    linear: bool = False
    spectrum: Optional[Tuple[float, float]] = None


def _dot(x: Tensor, y: Tensor) -> Tensor:
    return torch.vdot(x.reshape(-1), y.reshape(-1))


def cg(apply: Callable[[Tensor], Tensor], rhs: Tensor, tol: Callable[[Tensor], Tensor],
       max_iters: int, precondition: Optional[Tensor] = None, check_every: int = 4
       ) -> Tuple[Tensor, int, bool]:
    """Preconditioned conjugate gradients for a symmetric positive definite ``apply``, from
    zero. ``tol(residual)`` is a 0-dim tensor, the residual's norm relative to the wanted
    accuracy (converged below 1); it is read every ``check_every`` iterations, so the loop
    synchronises with the device once per ``check_every`` products. Returns ``(x, products,
    converged)``; ``precondition`` multiplies the residual (the inverse diagonal)."""
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    z = r if precondition is None else r * precondition
    p = z.clone()
    rz = _dot(r, z)
    for k in range(1, max_iters + 1):
        ap = apply(p)
        alpha = rz / _dot(p, ap).clamp_min(torch.finfo(rhs.dtype).tiny)
        x.add_(alpha * p)
        r.sub_(alpha * ap)
        if k % check_every == 0 or k == max_iters:
            if float(tol(r)) <= 1.0:
                return x, k, True
        z = r if precondition is None else r * precondition
        rz_new = _dot(r, z)
        p = z + (rz_new / rz.clamp_min(torch.finfo(rhs.dtype).tiny)) * p
        rz = rz_new
    return x, max_iters, False


def gmres(apply: Callable[[Tensor], Tensor], rhs: Tensor, tol: Callable[[Tensor], Tensor],
          max_iters: int, restart: int = 20, check_every: int = 4) -> Tuple[Tensor, int, bool]:
    """Restarted GMRES from zero for a general ``apply`` (see :func:`cg` for ``tol``).

    The Krylov basis is one ``(restart + 1, n)`` matrix, orthogonalised by classical
    Gram-Schmidt applied twice (two matrix products per step); the small least-squares
    problem is solved on the device and the residual formed from the Arnoldi relation
    ``A V_j = V_{j+1} H`` (no extra product); it is read every ``check_every`` products.
    Returns ``(x, products, converged)``."""
    shape, n = rhs.shape, rhs.numel()
    x = torch.zeros(n, dtype=rhs.dtype, device=rhs.device)
    r = rhs.reshape(-1)
    used = 0
    tiny = torch.finfo(rhs.dtype).tiny
    while used < max_iters:
        m = min(restart, max_iters - used)
        basis = torch.empty(m + 1, n, dtype=rhs.dtype, device=rhs.device)
        hess = torch.zeros(m + 1, m, dtype=rhs.dtype, device=rhs.device)
        beta = torch.linalg.vector_norm(r)
        basis[0] = r / beta.clamp_min(tiny)
        update = torch.zeros_like(x)
        residual = r
        for j in range(m):
            w = apply(basis[j].view(shape)).reshape(-1)
            used += 1
            v = basis[:j + 1]
            h = v @ w
            w = w - h @ v
            h2 = v @ w  # the second pass restores orthogonality lost to rounding
            w = w - h2 @ v
            norm_w = torch.linalg.vector_norm(w)
            hess[:j + 1, j] = h + h2
            hess[j + 1, j] = norm_w
            basis[j + 1] = w / norm_w.clamp_min(tiny)
            if (j + 1) % check_every == 0 or j == m - 1:
                sub = hess[:j + 2, :j + 1]
                e1 = torch.zeros(j + 2, dtype=rhs.dtype, device=rhs.device)
                e1[0] = beta
                coeffs = torch.linalg.pinv(sub) @ e1
                update = coeffs @ basis[:j + 1]
                residual = r - (sub @ coeffs) @ basis[:j + 2]
                if float(tol(residual.view(shape))) <= 1.0:
                    return (x + update).view(shape), used, True
        x, r = x + update, residual
    return x.view(shape), used, False


# --------------------------------------------------------------------------- autograd
class _Stage(torch.autograd.Function):
    """Attach a solved stage ``Z* = base + hg f(t, Z*)`` to the autograd graph by the implicit
    function theorem.

    Inputs: ``base`` and ``fz = f(t, Z*)`` evaluated at the detached solution (carrying the
    field's own graph to its parameters). Outputs: ``Z*`` itself and ``k = (Z* - base) / hg``
    (which equals ``f(t, Z*)`` up to the solve's tolerance, without amplifying its error by
    the stiff Jacobian). With ``J = df/dZ`` at ``Z*``, ``dL/dbase = w`` and ``dL/dfz = hg w +
    g_k`` where ``(I - hg J^T) w = g_Z + J^T g_k``."""

    @staticmethod
    def forward(ctx, base: Tensor, fz: Tensor, z: Tensor, hg: float, vjp: Callable,
                solve_transposed: Callable) -> Tuple[Tensor, Tensor]:
        ctx.hg, ctx.vjp, ctx.solve_transposed = hg, vjp, solve_transposed
        return z.clone(), (z - base) / hg

    @staticmethod
    def backward(ctx, grad_z: Tensor, grad_k: Tensor):
        w = ctx.solve_transposed(grad_z + ctx.vjp(grad_k))
        return w, grad_k + ctx.hg * w, None, None, None, None


# --------------------------------------------------------------------------- the solver
class Implicit(Solver):
    """A diagonally implicit Runge-Kutta method with Newton-Krylov stage solves (see the
    module).

    Args:
        method: a name in :data:`DIRK_METHODS` or a :class:`DIRKTableau`.
        newton_tol: a stage has converged when the Newton correction's RMS norm, relative to
            ``atol + rtol |y|``, is below this.
        max_newton: Newton iterations per stage before the step is rejected (adaptive) or the
            solve fails (fixed grid).
        linear_solver: ``"auto"`` (CG when the field's :class:`JacobianOperator` says the
            Jacobian is symmetric, else GMRES), ``"gmres"`` or ``"cg"``.
        krylov_tol: a linear solve stops when its residual's RMS norm, relative to ``atol +
            rtol |y|``, is below this (the gradient's transposed solves use ``krylov_tol *
            rtol`` relative to the incoming gradient).
        max_krylov: products per linear solve.
        use_operator: use the field's ``jacobian_operator`` when it has one (else finite
            differences of the field).
        precondition: precondition CG by the inverse diagonal of ``I - h gamma J`` where the
            operator gives the diagonal (Jacobi). Off by default: on Cora's GCN-normalised
            diffusion it doubled the number of CG products (3031 against 1811 for kvaerno5,
            k = 1e4, rtol 1e-4), because low-degree nodes have large diagonal entries.
    """

    gradients: Tuple[str, ...] = ("autograd", "adjoint", "checkpoint")
    options = frozenset({"newton_tol", "max_newton", "linear_solver", "krylov_tol", "max_krylov",
                         "use_operator", "precondition"})
    tableau = METHODS["dopri5"]  # unused: the step is the DIRK tableau's own

    def __init__(self, method: Any = "kvaerno3", newton_tol: float = 0.03, max_newton: int = 8,
                 linear_solver: str = "auto", krylov_tol: float = 0.01, max_krylov: int = 200,
                 use_operator: bool = True, precondition: bool = False):
        if isinstance(method, str):
            if method not in DIRK_METHODS:
                raise ValueError(f"unknown implicit method {method!r}; valid: "
                                 f"{', '.join(DIRK_METHODS)}")
            method = DIRK_METHODS[method]
        if not isinstance(method, DIRKTableau):
            raise TypeError(f"method must be a name or a DIRKTableau, got {type(method).__name__}")
        if linear_solver not in ("auto", "gmres", "cg"):
            raise ValueError(f"linear_solver must be 'auto', 'gmres' or 'cg', got {linear_solver!r}")
        for name, value in (("newton_tol", newton_tol), ("krylov_tol", krylov_tol)):
            if not (isinstance(value, (int, float)) and 0 < value < 1):
                raise ValueError(f"{name} must lie in (0, 1), got {value!r}")
        for name, value in (("max_newton", max_newton), ("max_krylov", max_krylov)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.dirk, self.name, self.adaptive = method, method.name, method.adaptive
        self.newton_tol, self.max_newton, self.linear_solver = newton_tol, max_newton, linear_solver
        self.krylov_tol, self.max_krylov, self.use_operator = krylov_tol, max_krylov, use_operator
        self.precondition = precondition

    def settings(self) -> Dict[str, Any]:
        return {"method": self.dirk, "newton_tol": self.newton_tol, "max_newton": self.max_newton,
                "linear_solver": self.linear_solver, "krylov_tol": self.krylov_tol,
                "max_krylov": self.max_krylov, "use_operator": self.use_operator,
                "precondition": self.precondition}

    def integrate(self, func: Func, y0: Tensor, times: Sequence[float], config: Any, stats: Any,
                  record: Optional[List[Any]] = None) -> List[Tensor]:
        return _Loop(self, func, y0, times, config, stats).run(record)


class _NewtonFailure(Exception):
    pass


class _Loop:
    """One solve with an :class:`Implicit` method, adaptive or on a fixed grid."""

    def __init__(self, solver: Implicit, func: Func, y0: Tensor, times: Sequence[float],
                 config: Any, stats: Any):
        self.solver, self.func, self.y0, self.times, self.config, self.stats = (
            solver, func, y0, times, config, stats)
        self.dirk = solver.dirk
        self.norm = config.norm or rms_norm
        self.implicit = self.implicit_part(func)
        source = getattr(self.implicit, "jacobian_operator", None)
        self.operator = source if (solver.use_operator and callable(source)) else None

    def implicit_part(self, func: Func) -> Func:
        """The part of the field the stages treat implicitly (all of it here)."""
        return func

    # ---------------------------------------------------------------- evaluations
    def fi(self, t: float, y: Tensor) -> Tensor:
        """The implicit part at ``(t, y)``, counted as an evaluation."""
        self.stats.nfe += 1
        return self.implicit(self._time(t), y)

    def f(self, t: float, y: Tensor, toward: Optional[float] = None) -> Tensor:
        from .integrate import _time_tensor
        self.stats.nfe += 1
        return self.func(_time_tensor(t, self.y0, toward), y)

    def _jacobian(self, t: float, z: Tensor, fz: Tensor, scale: Tensor) -> JacobianOperator:
        if self.operator is not None:
            from .integrate import _time_tensor
            op = self.operator(_time_tensor(t, z), z)
            if op is not None:
                return JacobianOperator(self._counted(op.matvec), op.diagonal, op.symmetric,
                                        op.linear)
        root_eps = math.sqrt(torch.finfo(z.dtype).eps)
        size = root_eps * (1.0 + self.norm(z / scale))

        def matvec(v: Tensor) -> Tensor:
            # A forward difference whose perturbation is sqrt(eps) of the state measured in
            # the error norm, so that small components (atol-sized) are not swamped.
            eps = size / self.norm(v / scale).clamp_min(torch.finfo(z.dtype).tiny)
            return (self.fi(t, z + eps * v) - fz) / eps
        return JacobianOperator(matvec)

    def _counted(self, matvec: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
        """``matvec``, counting each product as a field evaluation."""
        def counted(v: Tensor) -> Tensor:
            self.stats.nfe += 1
            return matvec(v)
        return counted

    def _linear_solve(self, apply: Callable[[Tensor], Tensor], rhs: Tensor, symmetric: bool,
                      tol: Callable[[Tensor], Tensor], precondition: Optional[Tensor]
                      ) -> Tuple[Tensor, bool]:
        kind = self.solver.linear_solver
        # On a CPU reading the residual costs nothing; on a GPU it waits for the device, so
        # it is read every fourth product.
        every = 1 if rhs.device.type == "cpu" else 4
        if kind == "cg" or (kind == "auto" and symmetric):
            x, _, ok = cg(apply, rhs, tol, self.solver.max_krylov, precondition, every)
        else:
            x, _, ok = gmres(apply, rhs, tol, self.solver.max_krylov, check_every=every)
        return x, ok

    # ---------------------------------------------------------------- one stage
    def stage(self, t: float, base: Tensor, hg: float, guess: Tensor, scale: Tensor
              ) -> Tuple[Tensor, Tensor]:
        """Solve ``Z = base + hg f(t, Z)``; returns ``(Z, k)``, ``k = (Z - base) / hg`` (which
        is ``f(t, Z)`` to the solve's tolerance), attached to autograd."""
        solver = self.solver
        weighted = lambda v: self.norm(v / scale)  # noqa: E731
        with torch.no_grad():
            z, previous = guess.detach(), math.inf
            for _ in range(solver.max_newton):
                fz = self.fi(t, z)
                residual = z - base.detach() - hg * fz
                jac = self._jacobian(t, z, fz, scale)
                apply = lambda v, _j=jac: v - hg * _j.matvec(v)  # noqa: E731
                precondition = (None if jac.diagonal is None or not solver.precondition
                                else 1.0 / (1.0 - hg * jac.diagonal))
                tol = lambda r: weighted(r) / solver.krylov_tol  # noqa: E731
                delta, converged = self._linear_solve(apply, -residual, jac.symmetric, tol,
                                                      precondition)
                z = z + delta
                if jac.linear:
                    if not converged:  # the one solve is the stage: it must have converged
                        raise _NewtonFailure(
                            f"the linear stage solve did not converge in max_krylov="
                            f"{solver.max_krylov} products at t={t:.6g}")
                    break
                size = float(weighted(delta))
                if not math.isfinite(size) or size > 2.0 * previous:
                    raise _NewtonFailure(f"Newton diverged at t={t:.6g} (correction {size:.3g})")
                if size <= solver.newton_tol:
                    break
                previous = size
            else:
                raise _NewtonFailure(f"Newton did not converge in {solver.max_newton} iterations "
                                     f"at t={t:.6g}")
        return self._attach(t, base, hg, z)

    def _attach(self, t: float, base: Tensor, hg: float, z: Tensor) -> Tuple[Tensor, Tensor]:
        """``(Z, k)`` for the solved stage ``z``; under autograd one more evaluation at ``z``
        carries the field's graph to its parameters (see :class:`_Stage`)."""
        if not torch.is_grad_enabled():
            return z, (z - base) / hg
        z = z.detach()
        fz = self.fi(t, z)
        if not (fz.requires_grad or base.requires_grad):
            return z, (z - base) / hg
        solver, stats = self.solver, self.stats
        rtol = self.config.rtol
        graph: List[Tensor] = []

        def vjp(v: Tensor) -> Tensor:
            if not graph:  # the field's graph with respect to the state, built once
                leaf = z.detach().requires_grad_(True)
                with torch.enable_grad():
                    graph.extend([leaf, self.implicit(self._time(t), leaf)])
                stats.nfe_backward += 1
            leaf, out = graph
            stats.nfe_backward += 1
            if not out.requires_grad:
                return torch.zeros_like(v)
            (grad,) = torch.autograd.grad(out, leaf, v, retain_graph=True, allow_unused=True)
            return torch.zeros_like(v) if grad is None else grad

        def solve_transposed(u: Tensor) -> Tensor:
            symmetric = self._jacobian_for_transpose(t, z)
            scale = (torch.linalg.vector_norm(u) / math.sqrt(max(u.numel(), 1))).clamp_min(
                torch.finfo(u.dtype).tiny) * (solver.krylov_tol * rtol)
            tol = lambda r: self.norm(r) / scale  # noqa: E731
            w, converged = self._linear_solve(lambda v: v - hg * vjp(v), u, symmetric, tol,
                                              None)
            if not converged:  # never a silently inaccurate gradient
                raise RuntimeError(
                    f"{solver.name}: the transposed stage system of the gradient at t={t:.6g} "
                    f"did not converge in max_krylov={solver.max_krylov} products; raise "
                    f"max_krylov (Implicit({solver.name!r}, max_krylov=...)) or use "
                    f"gradient='adjoint'")
            return w
        return _Stage.apply(base, fz, z, hg, vjp, solve_transposed)

    def _time(self, t: float) -> Tensor:
        from .integrate import _time_tensor
        return _time_tensor(t, self.y0)

    def _jacobian_for_transpose(self, t: float, z: Tensor) -> bool:
        """Whether the transposed system is symmetric (CG) — known only from the field."""
        if self.operator is None:
            return False
        from .integrate import _time_tensor
        with torch.no_grad():
            op = self.operator(_time_tensor(t, z), z.detach())
        return bool(op is not None and op.symmetric)

    # ---------------------------------------------------------------- one step
    def start(self, t: float, y: Tensor, toward: Optional[float] = None) -> Any:
        """What a step needs of the field at its start (here ``f(t, y)``)."""
        return self.f(t, y, toward)

    def total(self, start: Any) -> Tensor:
        """The derivative ``f(t, y)`` from :meth:`start`'s value."""
        return start

    def pack(self, start: Any) -> Tuple[Tensor, ...]:
        """:meth:`start`'s value as a tuple of tensors (what checkpointing carries)."""
        return (start,)

    def unpack(self, carry: Tuple[Tensor, ...]) -> Any:
        return carry[0]

    def step(self, t: float, y: Tensor, f0: Any, h: float, estimate: bool = True
             ) -> Tuple[Tensor, Any, Optional[Tensor]]:
        """``(y1, start(t + h, y1), error)`` for a step of size ``h`` (``error`` is ``None``
        without ``estimate``: a replayed step was accepted already)."""
        dirk, config = self.dirk, self.config
        with torch.no_grad():
            scale = y.detach().abs().mul(config.rtol).add_(config.atol)
        ks: List[Tensor] = []
        guess = y
        z = y
        for i, row in enumerate(dirk.a):
            if i == 0 and dirk.explicit_first:
                ks.append(f0)
                continue
            base = y
            for j, a in enumerate(row[:-1]):
                if a != 0.0:
                    base = base + (h * a) * ks[j]
            z, k = self.stage(t + dirk.c[i] * h, base, h * row[-1], guess, scale)
            ks.append(k)
            guess = z
        error: Optional[Tensor] = None
        for e, k in zip(dirk.b_error if estimate and dirk.b_error else (), ks):
            if e != 0.0:
                error = (h * e) * k if error is None else error + (h * e) * k
        return z, ks[-1], error

    # ---------------------------------------------------------------- the loop
    def replay(self, t: float, h: float, t1: float, outputs: List[Tuple[int, float]],
               restart: Optional[float], y: Tensor, carry: Tuple[Tensor, ...]
               ) -> Tuple[Tensor, Tuple[Tensor, ...], List[Tensor]]:
        """Recompute an accepted step (see :class:`~graphode.solvers.integrate.Replay`): the
        same Newton iterations from the same values, now with the stages attached to autograd.
        ``t1`` is where it ended, and ``restart`` the time the next step's start is re-evaluated
        toward after a jump."""
        f0 = self.unpack(carry)
        y1, f1, _ = self.step(t, y, f0, h, estimate=False)
        outs = [y1 if theta == 1.0 else hermite(y, y1, self.total(f0), self.total(f1), h, theta)
                for _, theta in outputs]
        if restart is not None:
            f1 = self.start(t1, y1, toward=restart)
        return y1, self.pack(f1), outs

    def _recorder(self, record: Optional[List[Any]], y0: Tensor) -> Optional[Callable[..., None]]:
        """``add(t, h, t1, y, f0, outputs, restart)`` appending replayable steps to ``record``; the
        first entry maps ``y0`` to its start value. The replays run on a copy of this loop
        that counts its evaluations apart."""
        if record is None:
            return None
        from .integrate import Replay, SolverStats
        again = type(self)(self.solver, self.func, self.y0, self.times, self.config,
                           SolverStats())
        t0 = self.times[0]
        record.append(Replay(y0, (), [], lambda y, _: (y, again.pack(again.start(t0, y)), []),
                             again.stats))

        def add(t: float, h: float, t1: float, y: Tensor, f0: Any,
                outputs: List[Tuple[int, float]], restart: Optional[float]) -> None:
            record.append(Replay(y.detach(), tuple(c.detach() for c in self.pack(f0)),
                                 list(outputs), partial(again.replay, t, h, t1, outputs, restart),
                                 again.stats))
        return add

    def run(self, record: Optional[List[Any]] = None) -> List[Tensor]:
        from .integrate import SolveError, _emit, _non_finite, _stops, check_step, grid_of
        add = self._recorder(record, self.y0)
        solver, config, stats, times = self.solver, self.config, self.stats, self.times
        direction = math.copysign(1.0, times[-1] - times[0])
        fixed = config.fixed
        if fixed:
            grid = grid_of(times, config)
            stops = [(g, False) for g in grid[1:]]
        else:
            stops = _stops(times, config, direction)
        dirk = self.dirk
        order = min(dirk.order, dirk.error_order or dirk.order) + 1
        controller = replace_order(config.controller(), order, config.beta1)
        t, y = times[0], self.y0
        f0 = self.start(t, y)
        if fixed:
            h = stops[0][0] - t
            # the adaptive path meets a non-finite start in its first step size; a fixed grid
            # would meet it inside the Krylov solver, as a linear-algebra failure
            if not bool(torch.isfinite(y).all() & torch.isfinite(self.total(f0)).all()):
                raise _non_finite("at the initial state,", t, h, ys=[])
        elif config.first_step is not None:
            h = controller.clip(direction * abs(config.first_step))
        else:
            h = initial_step_size(self.f, t, y, self.total(f0), direction, order, config.rtol, config.atol,
                                  config.norm)
            if not math.isfinite(h):
                raise _non_finite("at the initial state,", t, h, ys=[])
            h = controller.clip(h)
        ys = [self.y0]
        j, stop_index, attempts = 1, 0, 0
        while j < len(times):
            stop, is_jump = stops[stop_index]
            landing = fixed or direction * (t + h * (1.0 + 1e-10) - stop) >= 0
            if landing:
                h = stop - t
            check_step(t, h, controller.min_step, attempts, config, stats, times[-1], ys,
                       repr(solver.name))
            attempts += 1
            if config.callbacks is not None:
                config.callbacks("step", t, y, h)
            try:
                y1, f1, error = self.step(t, y, f0, h)
            except _NewtonFailure as failure:
                if fixed:
                    raise SolveError(f"{failure} with method={solver.name!r} on a fixed step of "
                                     f"{h:.3g}: use a smaller step_size, or raise max_newton",
                                     t, h, ys) from None
                stats.n_rejected += 1
                if config.callbacks is not None:
                    config.callbacks("reject", t, y, h)
                h = controller.clip(0.25 * h)
                continue
            if fixed or error is None:
                ratio = 0.0
                if config.check_finite and not bool(torch.isfinite(y1).all()):
                    raise _non_finite("in the step from", t, h, ys)
            else:
                ratio = float(error_ratio(error.detach(), y.detach(), y1.detach(), config.rtol,
                                          config.atol, config.norm))
                if math.isnan(ratio):
                    raise _non_finite("in the step from", t, h, ys)
            accepted = fixed or ratio <= 1.0
            if config.callbacks is not None:
                config.callbacks("accept" if accepted else "reject", t, y, h)
            if not accepted:
                stats.n_rejected += 1
                h = controller.next_step(h, ratio, False)
                continue
            stats.n_accepted += 1
            t1 = stop if landing else t + h
            outputs = _emit(times, j, direction, t, t1)
            for _, theta in outputs:
                ys.append(y1 if theta == 1.0 else hermite(y, y1, self.total(f0), self.total(f1),
                                                             h, theta))
            j += len(outputs)
            if landing:
                stop_index = min(stop_index + 1, len(stops) - 1)
            restart = t1 + direction if landing and is_jump else None
            if add is not None:
                add(t, h, t1, y, f0, outputs, restart)
            if restart is not None:
                f1 = self.start(t1, y1, toward=restart)
            t, y, f0 = t1, y1, f1
            if fixed:
                if j < len(times):
                    h = stops[stop_index][0] - t
            else:
                h = controller.next_step(h, ratio, True)
        return ys


def replace_order(controller: Any, order: int, beta1: Optional[float]) -> Any:
    """The controller for the error estimate's ``order`` (the user's ``beta1`` kept)."""
    from dataclasses import replace
    return replace(controller, order=order, beta1=beta1)


def _register(name: str) -> None:
    register(name)(lambda: Implicit(name))


for _name in DIRK_METHODS:
    _register(_name)
