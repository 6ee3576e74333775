"""Continuous-depth graph layers: GDEConv and the graph-bound vector field."""
from .augment import SecondOrderGDEConv, TimeConcat
from .field import GraphVectorField
from .gde import GDEConv
from .sparse import SparseOperator

__all__ = ["GDEConv", "GraphVectorField", "SecondOrderGDEConv", "TimeConcat", "SparseOperator"]
