"""graphode: graph neural ODEs for PyTorch Geometric.

One shared explicit Runge-Kutta solver (:func:`solve`, and the torchdiffeq-compatible
:func:`odeint` / :func:`odeint_adjoint`) integrates every continuous-depth block; gradients flow
by autograd, the adjoint method or exact checkpointing.
"""
__version__ = "0.1.0"

from .api import Solution, solve
from .compat import odeint, odeint_adjoint
from .solvers.controllers import PIController
from .solvers.integrate import SolveError, SolverStats
from .solvers.tableaux import METHODS, ButcherTableau

__all__ = ["__version__", "solve", "odeint", "odeint_adjoint", "Solution", "SolverStats",
           "SolveError", "ButcherTableau", "PIController", "METHODS"]
