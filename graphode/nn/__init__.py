"""Continuous-depth graph layers: GDEConv and the graph-bound vector field."""
from .augment import SecondOrderGDEConv, TimeConcat
from .continuous import (
    AntisymmetricField,
    AttentionDiffusion,
    GraphCONCoupling,
    HamiltonianForce,
    Reaction,
    ReactionDiffusionConv,
)
from .diffusion import LinearDiffusion
from .field import GraphVectorField, register_plan
from .forecast import HistoricalAverage, Persistence, RecurrentForecaster
from .gcgru import GCGRUCell, gcn_operator
from .gde import GDEConv, SwitchingGDEConv, solve_on_leaves
from .gde_gru import GDEGRU, StochasticGDEGRU, batch_graph, batch_graphs
from .gru_ode import GraphGRUODE
from .grud import GRUD
from .latent import LatentGDE
from .ncde import GraphCDEField, GraphNCDE
from .sde import GraphSDE
from .sparse import SparseOperator
from .stats import SolverStatsRecorder
from .stgode import STGODE, TensorODEField

__all__ = ["GDEConv", "GraphSDE", "SolverStatsRecorder", "GraphVectorField", "register_plan", "SecondOrderGDEConv", "TimeConcat", "SparseOperator",
           "LinearDiffusion", "GCGRUCell", "gcn_operator", "GDEGRU", "StochasticGDEGRU", "batch_graph",
           "batch_graphs", "GraphGRUODE",
           "RecurrentForecaster", "HistoricalAverage",
           "Persistence", "AttentionDiffusion", "GraphCONCoupling", "AntisymmetricField",
           "HamiltonianForce", "Reaction", "ReactionDiffusionConv", "solve_on_leaves", "GRUD",
           "GraphCDEField", "GraphNCDE", "SwitchingGDEConv", "STGODE",
           "TensorODEField", "LatentGDE"]
