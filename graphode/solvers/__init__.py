"""Explicit Runge-Kutta tableaux, the generic step, step-size control and the loops; solver
objects for the other families."""
from . import adams, exponential, imex, implicit, scipy_wrapper, stabilized, symplectic  # noqa: F401  (register their methods)
from .adams import Adams
from .base import SOLVERS, Solver, method_names, resolve_method
from .controllers import PIController, rms_norm
from .exponential import Exponential
from .imex import IMEX, Split
from .implicit import DIRKTableau, Implicit, JacobianOperator
from .integrate import IntegrationConfig, SolveError, SolverStats, integrate
from .rk import RungeKutta
from .stabilized import RKC, AutoSwitch
from .symplectic import Symplectic
from .tableaux import FIXED_GRID_METHODS, METHODS, ButcherTableau, get_tableau

__all__ = ["Solver", "Adams", "RKC", "AutoSwitch", "Symplectic", "Exponential", "Implicit", "DIRKTableau", "JacobianOperator", "IMEX", "Split", "SOLVERS", "resolve_method", "method_names", "ButcherTableau", "METHODS", "FIXED_GRID_METHODS", "get_tableau", "RungeKutta",
           "PIController", "rms_norm", "IntegrationConfig", "SolverStats", "SolveError",
           "integrate"]
