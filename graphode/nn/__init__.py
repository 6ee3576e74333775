"""Continuous-depth graph layers: GDEConv and the graph-bound vector field."""
from .augment import SecondOrderGDEConv, TimeConcat
from .diffusion import LinearDiffusion
from .field import GraphVectorField
from .gde import GDEConv
from .sparse import SparseOperator

__all__ = ["GDEConv", "GraphVectorField", "SecondOrderGDEConv", "TimeConcat", "SparseOperator",
           "LinearDiffusion"]
