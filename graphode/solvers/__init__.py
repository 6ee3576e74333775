"""Explicit Runge-Kutta tableaux, the generic step, step-size control and the loops."""
from .controllers import PIController, rms_norm
from .integrate import IntegrationConfig, SolveError, SolverStats, integrate
from .rk import RungeKutta
from .tableaux import FIXED_GRID_METHODS, METHODS, ButcherTableau, get_tableau

__all__ = ["ButcherTableau", "METHODS", "FIXED_GRID_METHODS", "get_tableau", "RungeKutta",
           "PIController", "rms_norm", "IntegrationConfig", "SolverStats", "SolveError",
           "integrate"]
