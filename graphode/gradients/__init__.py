"""How gradients flow through a solve: autograd, the adjoint method, or checkpointing."""
from .adjoint import adjoint_solve
from .audit import FieldAudit, unlisted_tensors
from .checkpoint import checkpoint_solve
from .common import GRADIENT_MODES, Adjoint, Problem, resolve_params
from .times import attach_time_gradients

__all__ = ["GRADIENT_MODES", "Adjoint", "Problem", "adjoint_solve", "checkpoint_solve",
           "attach_time_gradients", "resolve_params", "FieldAudit", "unlisted_tensors"]
