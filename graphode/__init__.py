"""graphode: graph neural ODEs for PyTorch Geometric.

One shared solver (:func:`solve`, and the torchdiffeq-compatible :func:`odeint`,
:func:`odeint_adjoint` and :func:`odeint_event`) integrates every continuous-depth block:
explicit Runge-Kutta methods, Adams methods, Runge-Kutta-Chebyshev for stiff diffusion with
automatic switching (``method="auto"``), implicit and IMEX Runge-Kutta methods with
Newton-Krylov stage solves, and SciPy's integrators for reference solutions.
Gradients flow by autograd, the adjoint method or exact checkpointing. Stochastic blocks
use :func:`sdeint` and :func:`sdeint_adjoint` (torchsde's interface, any state shape).
"""
__version__ = "0.1.0"

from .api import Solution, solve
from .cde import CubicSpline, LinearInterpolation, cdeint
from .compat import odeint, odeint_adjoint
from .events import odeint_event
from .gradients import Adjoint
from .sde import BrownianMotion, sdeint, sdeint_adjoint
from .solvers.base import Solver
from .solvers.controllers import PIController
from .solvers.integrate import SolveError, SolverStats
from .solvers.tableaux import METHODS, ButcherTableau

__all__ = ["__version__", "solve", "odeint", "odeint_adjoint", "odeint_event", "sdeint",
           "cdeint", "CubicSpline", "LinearInterpolation",
           "sdeint_adjoint", "BrownianMotion", "Solution",
           "SolverStats", "SolveError", "ButcherTableau", "Solver", "PIController", "Adjoint",
           "METHODS"]
