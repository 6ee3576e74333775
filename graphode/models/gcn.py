"""Kipf and Welling's two-layer GCN: the discrete baseline the GDE models are measured against."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GCNConv

__all__ = ["GCN"]


class GCN(nn.Module):
    r"""The two-layer graph convolutional network of Kipf and Welling, `"Semi-Supervised
    Classification with Graph Convolutional Networks" <https://arxiv.org/abs/1609.02907>`_:
    dropout, GCN, ReLU, dropout, GCN. Returns the class logits of every node."""

    def __init__(self, in_channels: int, hidden: int, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.conv1 = GCNConv(in_channels, hidden)
        self.conv2 = GCNConv(hidden, num_classes)
        self.dropout = dropout

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = F.dropout(x, self.dropout, self.training)
        x = F.relu(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)
