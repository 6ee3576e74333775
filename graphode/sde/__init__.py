"""Stochastic graph differential equations: torchsde's ``sdeint``/``sdeint_adjoint`` on states
of any shape, a reproducible Brownian motion with one path per graph, and the methods of
torchsde (Euler-Maruyama, Milstein, stochastic Runge-Kutta, Heun-type and reversible Heun),
and jump diffusions (:func:`sdeint_jump`)."""
from .brownian import BrownianMotion
from .jumps import JumpSolution, sdeint_jump
from .methods import METHODS
from .solve import sdeint, sdeint_adjoint

__all__ = ["sdeint", "sdeint_adjoint", "sdeint_jump", "JumpSolution", "BrownianMotion", "METHODS"]
