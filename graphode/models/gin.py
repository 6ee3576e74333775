"""Graph classifiers with the GIN paper's every-layer readout: GIN-0 and its continuous
analogues, a GDE block whose state is read out at several times."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from torch import Tensor, nn
from torch_geometric.nn import GCNConv, GINConv, global_add_pool

from ..nn import GDEConv

__all__ = ["Readout", "GIN", "GDEClassifier", "GINGDEClassifier", "gin_mlp"]


def gin_mlp(in_channels: int, hidden: int) -> nn.Sequential:
    """A GIN layer's MLP, ``Linear-BN-ReLU-Linear-BN-ReLU`` as in the GIN paper's code
    (without the last normalisation, sum readouts of large graphs grow until training
    collapses)."""
    return nn.Sequential(nn.Linear(in_channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU())


class Readout(nn.Module):
    """The GIN paper's readout: the sum-pooled node states of every layer (or time), each
    scored by its own linear layer after dropout, and the scores added. Linear on purpose: a
    ReLU hidden layer on sums over graphs of hundreds of nodes died on PROTEINS, and training
    fell back to the majority class.

    Args:
        channels: the channels of each state read out.
        classes: the number of classes.
        dropout: dropout before each linear score.
    """

    def __init__(self, channels: Sequence[int], classes: int, dropout: float = 0.5):
        super().__init__()
        self.scores = nn.ModuleList(nn.Linear(c, classes) for c in channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, states: Sequence[Tensor], batch: Tensor) -> Tensor:
        return sum(score(self.dropout(global_add_pool(h, batch)))
                   for score, h in zip(self.scores, states))


class GIN(nn.Module):
    """GIN-0 with the readout of every layer (Xu et al., `"How Powerful are Graph Neural
    Networks?" <https://arxiv.org/abs/1810.00826>`_).

    Shapes:
        - **input:** node features :math:`(|\\mathcal{V}|, F_{in})`, edge indices, the batch
          vector :math:`(|\\mathcal{V}|)`
        - **output:** logits :math:`(|\\mathcal{G}|, classes)`
    """

    def __init__(self, in_channels: int, hidden: int, classes: int, layers: int = 5,
                 dropout: float = 0.5):
        super().__init__()
        self.convs = nn.ModuleList(GINConv(gin_mlp(in_channels if i == 0 else hidden, hidden))
                                   for i in range(layers))
        self.readout = Readout([in_channels] + [hidden] * layers, classes, dropout)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor) -> Tensor:
        states = [x]
        for conv in self.convs:
            states.append(conv(states[-1], edge_index))
        return self.readout(states, batch)


class GDEClassifier(nn.Module):
    """A linear encoder, a GDE block with a ``[GCNConv, tanh]`` field (Poli et al., `"Graph
    Neural Ordinary Differential Equations" <https://arxiv.org/abs/1911.07532>`_), and the
    GIN readout of the input, the encoding and the GDE's end state.

    Args:
        in_channels, hidden, classes: feature, hidden and class counts.
        dropout: dropout of the readout.
        solver: keyword arguments of :class:`~graphode.nn.GDEConv`.
    """

    def __init__(self, in_channels: int, hidden: int, classes: int, dropout: float = 0.5,
                 solver: Optional[Dict[str, Any]] = None):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU())
        self.gde = GDEConv([GCNConv(hidden, hidden), nn.Tanh()], **(solver or {}))
        self.readout = Readout([in_channels, hidden, hidden], classes, dropout)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor) -> Tensor:
        h0 = self.encoder(x)
        return self.readout([x, h0, self.gde(h0, edge_index, batch=batch)], batch)


class GINGDEClassifier(nn.Module):
    """The continuous analogue of GIN: a GIN encoder layer, then a GDE block whose field is a
    GIN layer (sum aggregation, an MLP without batch norm, tanh), with the readout of the
    state at ``readouts`` equally spaced times (as GIN reads out every layer).

    Args:
        in_channels, hidden, classes: feature, hidden and class counts.
        dropout: dropout of the readout.
        solver: keyword arguments of :class:`~graphode.nn.GDEConv` (``t_span`` sets the
            readout times).
        readouts: how many times the state is read out, the last at ``t_span[1]``.
    """

    def __init__(self, in_channels: int, hidden: int, classes: int, dropout: float = 0.5,
                 solver: Optional[Dict[str, Any]] = None, readouts: int = 4):
        super().__init__()
        solver = dict(solver or {})
        self.encoder = GINConv(gin_mlp(in_channels, hidden))
        t0, t1 = solver.pop("t_span", (0.0, 1.0))
        times = [t0 + (t1 - t0) * (k + 1) / readouts for k in range(readouts)]
        field = GINConv(nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(),
                                      nn.Linear(hidden, hidden)))
        self.gde = GDEConv([field, nn.Tanh()], t_span=(t0, t1), t_eval=times, **solver)
        self.readout = Readout([in_channels] + [hidden] * (1 + readouts), classes, dropout)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor) -> Tensor:
        h0 = self.encoder(x, edge_index)
        return self.readout([x, h0, *self.gde(h0, edge_index, batch=batch)], batch)
