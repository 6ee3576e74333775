"""Semantic graphs of a graph signal: nodes joined by the similarity of their series (dynamic
time warping), as STGODE's second graph (Fang et al., KDD 2021)."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ["dtw_distances", "semantic_graph"]


def dtw_distances(series: Tensor, chunk: int = 2048) -> Tensor:
    """Dynamic time warping distances between every pair of rows of ``series`` ``(N, L)``:
    the least total ``|a_i - b_j|`` along a monotone alignment of the two series (exact, no
    window), computed for many pairs at once along the anti-diagonals of the cost matrix.

    Returns:
        ``(N, N)``, symmetric, zero on the diagonal.
    """
    if series.dim() != 2 or series.size(1) < 1:
        raise ValueError(f"series must have shape (num_series, length), got "
                         f"{tuple(series.shape)}")
    n, length = series.shape
    series = series.double()
    rows, cols = torch.triu_indices(n, n, 1)
    out = torch.zeros(n, n, dtype=torch.float64)
    inf = float("inf")
    for start in range(0, rows.numel(), chunk):
        a, b = series[rows[start:start + chunk]], series[cols[start:start + chunk]]
        cost = (a.unsqueeze(2) - b.unsqueeze(1)).abs()  # (P, L, L)
        acc = torch.full((a.size(0), length + 1, length + 1), inf, dtype=torch.float64)
        acc[:, 0, 0] = 0.0
        for d in range(2, 2 * length + 1):  # cells with i + j = d (1-based) depend on d-1, d-2
            i = torch.arange(max(1, d - length), min(length, d - 1) + 1)
            j = d - i
            best = torch.minimum(torch.minimum(acc[:, i - 1, j], acc[:, i, j - 1]),
                                 acc[:, i - 1, j - 1])
            acc[:, i, j] = cost[:, i - 1, j - 1] + best
        dist = acc[:, length, length]
        out[rows[start:start + chunk], cols[start:start + chunk]] = dist
        out[cols[start:start + chunk], rows[start:start + chunk]] = dist
    return out


def semantic_graph(signal: Tensor, period: Optional[int] = None, k: int = 5,
                   missing: Optional[float] = 0.0, bins: Optional[int] = 48
                   ) -> Tuple[Tensor, Tensor]:
    """STGODE's semantic graph: each node joined to the ``k`` nodes whose series are closest
    under dynamic time warping, both ways.

    Args:
        signal: ``(T, N)``, the training part alone (the test part must not shape the graph).
        period: steps per period (288 for a day of 5-minute steps): the series compared are
            each node's mean profile over the periods, as STGODE compares daily profiles;
            ``None`` compares the whole series.
        k: neighbours per node.
        missing: the value that marks a missing reading (left out of the means), or ``None``.
        bins: average each profile into this many bins before the comparison (48: half
            hours of a day; DTW costs the square of the length); ``None`` keeps every step.

    Returns:
        ``edge_index`` ``(2, E)`` without self loops and ``edge_weight`` ``(E,)`` (ones).
    """
    if signal.dim() != 2:
        raise ValueError(f"signal must have shape (time, num_nodes), got {tuple(signal.shape)}")
    steps, n = signal.shape
    if not 1 <= k < n:
        raise ValueError(f"k must lie in 1..{n - 1} (the other nodes), got {k}")
    values = signal.double()
    seen = torch.ones_like(values) if missing is None else (values != missing).double()
    if period is not None:
        if not 1 <= period <= steps:
            raise ValueError(f"period must lie in 1..{steps} (the series' length), got {period}")
        whole = steps - steps % period
        total = (values * seen)[:whole].view(-1, period, n).sum(0)
        count = seen[:whole].view(-1, period, n).sum(0)
        profiles = (total / count.clamp(min=1)).T  # (N, period)
    else:
        profiles = (values * seen).T
    if bins is not None and profiles.size(1) > bins:
        profiles = torch.nn.functional.adaptive_avg_pool1d(profiles.unsqueeze(0), bins)[0]
    dist = dtw_distances(profiles)
    dist.fill_diagonal_(float("inf"))
    nearest = dist.topk(k, dim=1, largest=False).indices  # (N, k)
    adj = torch.zeros(n, n, dtype=torch.bool)
    adj[torch.arange(n).repeat_interleave(k), nearest.reshape(-1)] = True
    adj = adj | adj.T
    edge_index = adj.nonzero().T.contiguous()
    return edge_index, torch.ones(edge_index.size(1))
