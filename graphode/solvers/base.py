"""Solver objects: the methods that are not one explicit Runge-Kutta tableau.

An explicit Runge-Kutta method is data (a :class:`~graphode.solvers.tableaux.ButcherTableau`)
run by the shared loops of :mod:`graphode.solvers.integrate`. Every other family (multistep
Adams methods, stabilised Runge-Kutta-Chebyshev, stiffness switching, SciPy's integrators) is
a :class:`Solver`: an object with its own settings and its own ``integrate``, which the same
:func:`~graphode.solve`, :func:`~graphode.odeint` and gradient modes call. ``method=`` takes
a name, a tableau or a solver object.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

from torch import Tensor

from .tableaux import METHODS, ButcherTableau

if TYPE_CHECKING:
    from .integrate import IntegrationConfig, SolverStats

__all__ = ["Solver", "SOLVERS", "register", "resolve_method", "method_names"]

Func = Callable[[Tensor, Tensor], Tensor]


class Solver:
    """A solver family that runs its own integration loop.

    Subclasses set:

    - ``name``: the ``method=`` name;
    - ``adaptive``: whether it controls its step from ``rtol``/``atol`` (else it steps on a
      fixed grid: ``t``, ``step_size`` or ``grid``);
    - ``tableau``: the explicit tableau whose order and interpolant the shared settings fall
      back on (a multistep method's starter, a switching method's non-stiff member);
    - ``gradients``: the gradient modes it supports (``"checkpoint"`` needs steps that can be
      replayed one at a time: ``integrate`` appends them to ``record`` as
      :class:`~graphode.solvers.integrate.Replay` entries);
    - ``gradient_notes``: the reason a mode outside ``gradients`` is refused, by mode;
    - ``replays_random``: its ``Replay`` entries carry the random state before their step
      (``rng``), whose evaluations replay in the forward's order, so checkpointing a field that
      draws random numbers (dropout) is exact; otherwise such a field is refused under
      ``"checkpoint"``;
    - ``options``: the extra option names it takes (through :meth:`configure`).
    """

    name: str = ""
    adaptive: bool = True
    tableau: ButcherTableau = METHODS["dopri5"]
    gradients: Tuple[str, ...] = ("autograd", "adjoint")
    #: why a gradient mode outside ``gradients`` is refused, where the reason is the solver's own
    gradient_notes: Dict[str, str] = {}
    replays_random: bool = False
    options: FrozenSet[str] = frozenset()

    def configure(self, **options: Any) -> "Solver":
        """A copy with ``options`` (a subset of :attr:`options`) set."""
        unknown = set(options) - set(self.options)
        if unknown:
            raise ValueError(f"{self.name} takes the options {sorted(self.options) or 'none'}, "
                             f"got {sorted(unknown)}")
        if not options:
            return self
        solver = type(self)(**{**self.settings(), **options})
        solver.name = self.name
        return solver

    def settings(self) -> Dict[str, Any]:
        """The keyword arguments that rebuild this solver."""
        return {}

    def integrate(self, func: Func, y0: Tensor, times: Sequence[float],
                  config: "IntegrationConfig", stats: "SolverStats",
                  record: Optional[List[Any]] = None) -> List[Tensor]:
        """The states at every time in ``times`` (Python floats, strictly monotonic)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({args})"


SOLVERS: Dict[str, Callable[[], Solver]] = {}


def register(name: str) -> Callable[[Callable[[], Solver]], Callable[[], Solver]]:
    """Register a solver factory under ``method=name``."""
    def wrap(factory: Callable[[], Solver]) -> Callable[[], Solver]:
        SOLVERS[name] = factory
        return factory
    return wrap


def method_names() -> List[str]:
    """Every name ``method=`` accepts."""
    return sorted(set(METHODS) | set(SOLVERS))


def resolve_method(method: Any) -> Tuple[ButcherTableau, Optional[Solver]]:
    """``(tableau, solver)`` for a method name, a tableau or a solver object; ``solver`` is
    ``None`` for the explicit Runge-Kutta methods. Raises ``ValueError`` naming the valid
    names."""
    if isinstance(method, ButcherTableau):
        return method, None
    if isinstance(method, Solver):
        return method.tableau, method
    if isinstance(method, str):
        if method in METHODS:
            return METHODS[method], None
        if method in SOLVERS:
            solver = SOLVERS[method]()
            return solver.tableau, solver
    raise ValueError(f"unknown method {method!r}; valid methods are: {', '.join(method_names())} "
                     f"(or a ButcherTableau or Solver object)")
