"""Continuous-depth graph layers: GDEConv and the graph-bound vector field."""
from .augment import SecondOrderGDEConv, TimeConcat
from .diffusion import LinearDiffusion
from .forecast import HistoricalAverage, RecurrentForecaster
from .gcgru import GCGRUCell, gcn_operator
from .gde_gru import GDEGRU, batch_graph
from .gru_ode import GraphGRUODE
from .field import GraphVectorField
from .gde import GDEConv
from .sparse import SparseOperator

__all__ = ["GDEConv", "GraphVectorField", "SecondOrderGDEConv", "TimeConcat", "SparseOperator",
           "LinearDiffusion", "GCGRUCell", "gcn_operator", "GDEGRU", "batch_graph", "GraphGRUODE",
           "RecurrentForecaster", "HistoricalAverage"]
