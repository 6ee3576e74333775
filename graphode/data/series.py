"""From a long graph signal to forecasting examples: chronological splits, a scaler fitted on
the training part only, sliding windows, and irregular sampling by dropped observations."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["StandardScaler", "chronological_split", "sliding_windows", "drop_observations",
           "drop_steps", "drop_readings", "window_masks", "Windows"]


class StandardScaler:
    """Z-score scaling with one mean and std for the whole signal, fitted on training data.

    Zeros are missing values in traffic data: ``fit`` ignores them (``missing=0.0``); pass
    ``missing=None`` to use every value.
    """

    def __init__(self, missing: Optional[float] = 0.0):
        self.missing = missing
        self.mean: Optional[float] = None
        self.std: Optional[float] = None

    def fit(self, x: Tensor) -> "StandardScaler":
        values = x if self.missing is None else x[x != self.missing]
        if values.numel() == 0:
            raise ValueError("StandardScaler.fit got no observed values (all missing): fit it on "
                             "a training part that holds data")
        self.mean = float(values.double().mean())
        std = float(values.double().std()) if values.numel() > 1 else 0.0
        self.std = std if std > 0 else 1.0
        return self

    def _check(self) -> Tuple[float, float]:
        if self.mean is None or self.std is None:
            raise RuntimeError("StandardScaler is not fitted: call fit(train_part) first")
        return self.mean, self.std

    def transform(self, x: Tensor) -> Tensor:
        mean, std = self._check()
        return (x - mean) / std

    def inverse_transform(self, x: Tensor) -> Tensor:
        mean, std = self._check()
        return x * std + mean

    def __repr__(self) -> str:
        return f"StandardScaler(mean={self.mean}, std={self.std})"


def chronological_split(num_steps: int, ratios: Sequence[float] = (0.7, 0.1, 0.2),
                        floor: bool = False) -> Tuple[slice, ...]:
    """Split ``range(num_steps)`` into consecutive train / val / test slices by ``ratios``.

    The part sizes are rounded to the nearest step; ``floor=True`` ends each part at
    ``int(fraction so far * num_steps)`` instead, as PyTorch Geometric Temporal's
    ``temporal_signal_split`` does, so that the test part is the same as that library's."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"ratios must be three non-negative fractions that sum to 1, got "
                         f"{tuple(ratios)}")
    if floor:  # a small tolerance: 0.7 + 0.1 is 0.7999999999999999 in floating point
        a = int(num_steps * ratios[0] + 1e-9)
        b = max(a, int(num_steps * (ratios[0] + ratios[1]) + 1e-9))
    else:
        a = round(num_steps * ratios[0])
        b = a + round(num_steps * ratios[1])
    return slice(0, a), slice(a, b), slice(b, num_steps)


def sliding_windows(signal: Tensor, history: int, horizon: int) -> Tuple[Tensor, Tensor]:
    """All windows of ``history`` inputs followed by ``horizon`` targets.

    Args:
        signal: ``(T, N)`` or ``(T, N, F)``.

    Returns:
        ``x`` of shape ``(S, history, N, ...)`` and ``y`` of shape ``(S, horizon, N, ...)`` with
        ``S = T - history - horizon + 1`` (views, no copy).
    """
    if history < 1 or horizon < 1:
        raise ValueError(f"history and horizon must be >= 1, got {history} and {horizon}")
    total = history + horizon
    if signal.size(0) < total:
        raise ValueError(f"a series of {signal.size(0)} steps is too short for windows of "
                         f"history {history} + horizon {horizon}: use a shorter window or a "
                         f"larger split")
    win = signal.unfold(0, total, 1)  # (S, N, ..., total)
    win = win.movedim(-1, 1)  # (S, total, N, ...)
    return win[:, :history], win[:, history:]


def drop_observations(num_windows: int, history: int, p: float,
                      generator: Optional[torch.Generator] = None) -> Tensor:
    """Irregular sampling drawn per window: a ``(num_windows, history)`` mask that drops each
    observation (a whole snapshot of the graph) with probability ``p``. Each window keeps at
    least one observation: where every one was dropped, one is restored at random.

    Overlapping windows draw independently here, so they disagree on whether a step was seen;
    :func:`drop_steps` draws once per series step instead (what the examples use)."""
    _check_probability("the drop probability", p)
    keep = torch.rand(num_windows, history, generator=generator) >= p
    empty = ~keep.any(1)
    if empty.any():
        pick = torch.randint(history, (int(empty.sum()),), generator=generator)
        keep[empty.nonzero().squeeze(1), pick] = True
    return keep


def _check_probability(name: str, p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {p}")


def drop_steps(num_steps: int, p: float, history: int = 1,
               generator: Optional[torch.Generator] = None) -> Tensor:
    """Irregular sampling of a series: a ``(num_steps,)`` mask that drops each step (a whole
    snapshot of the graph) with probability ``p``, once for the series, so that overlapping
    windows agree on which snapshots they saw.

    Every run of ``history`` consecutive steps keeps at least one observation (each window
    sees something): where a run lost them all, its last step is restored."""
    _check_probability("the drop probability", p)
    keep = torch.rand(num_steps, generator=generator) >= p
    gap = 0  # dropped steps since the last kept one
    for i, kept in enumerate(keep.tolist()):
        gap = 0 if kept else gap + 1
        if gap == history:
            keep[i], gap = True, 0
    return keep


def drop_readings(num_steps: int, num_nodes: int, p: float,
                  generator: Optional[torch.Generator] = None) -> Tensor:
    """Missing values: a ``(num_steps, num_nodes)`` mask that drops each sensor reading with
    probability ``p``, once for the series (overlapping windows agree)."""
    _check_probability("the missing probability", p)
    return torch.rand(num_steps, num_nodes, generator=generator) >= p


def window_masks(observed: Tensor, history: int, horizon: int) -> Tensor:
    """The input part of every sliding window of a series mask: ``(T,)`` gives ``(S, history)``
    and ``(T, N)`` gives ``(S, history, N)``, ``S = T - history - horizon + 1``, the windows
    of :func:`sliding_windows`."""
    x, _ = sliding_windows(observed, history, horizon)
    return x


@dataclass
class Windows:
    """Forecasting examples of one split: inputs, targets and observation mask."""

    x: Tensor  # (S, H, N) scaled inputs
    y: Tensor  # (S, P, N) targets in original units (zeros = missing)
    mask: Tensor  # (S, H) observed steps, or (S, H, N) observed readings
    start: Optional[Tensor] = None  # (S,) the series step of each window's first input

    def __len__(self) -> int:
        return self.x.size(0)

    def subset(self, index: Tensor) -> "Windows":
        """The windows at ``index`` (e.g. one process's share under data parallelism)."""
        return Windows(self.x[index], self.y[index], self.mask[index],
                       None if self.start is None else self.start[index])

    def batches(self, batch_size: int, shuffle: bool = False,
                generator: Optional[torch.Generator] = None, index: bool = False):
        """``(x, y, mask)`` of each batch, and the windows' positions in this split too with
        ``index=True``."""
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        for i in range(0, len(self), batch_size):
            idx = order[i:i + batch_size]
            yield (self.x[idx], self.y[idx], self.mask[idx]) + ((idx,) if index else ())
