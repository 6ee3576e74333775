"""Ready models built from graphode's GDE blocks, as the examples train them.

Node classification: :class:`GCN` (the discrete baseline), :class:`GCDE` (Poli et al.), :class:`CGNN` (a CGNN-style diffusion with a
source) and :class:`GDECR` (GRAND-style random propagation with :func:`consistency_loss`); :class:`GNSDE`, the GCDE
with Brownian noise in its block, for calibrated probabilities. The continuous-depth GNNs of
the literature: :class:`GRAND` (GRAND-l and GRAND-nl), :class:`GRANDPlusPlus`,
:class:`GraphCON`, :class:`ADGN`, :class:`HamGNN` and :class:`GREAD`, beside the graph-free
:class:`MLP`.
Graph classification: :class:`GIN` and the GDE classifiers :class:`GDEClassifier` and
:class:`GINGDEClassifier`, all with the GIN paper's every-layer :class:`Readout`.
Forecasting: :class:`ChangeForecaster` makes any forecaster predict the change from the last
observation.
"""
from .cgnn import CGNN
from .consistency import consistency_loss
from .continuous import ADGN, GRAND, GREAD, MLP, GRANDPlusPlus, GraphCON, HamGNN
from .forecast import ChangeForecaster, last_observed
from .gcde import GCDE
from .gcn import GCN
from .gde_cr import GDECR
from .gin import GIN, GDEClassifier, GINGDEClassifier, Readout, gin_mlp
from .gnsde import GNSDE
from .trajectory import RadiusInteraction, TrajectoryGDE, pad_windows

__all__ = ["MLP", "GRAND", "GRANDPlusPlus", "GraphCON", "ADGN", "HamGNN", "GREAD", "GCN", "GCDE", "CGNN", "GDECR", "GNSDE", "consistency_loss", "GIN", "GDEClassifier",
           "GINGDEClassifier", "Readout", "gin_mlp", "ChangeForecaster", "last_observed",
           "TrajectoryGDE", "RadiusInteraction", "pad_windows"]
