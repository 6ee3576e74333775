"""Forecasting the change from the last observation, for any forecaster of graph series."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from ..nn.forecast import last_observed

__all__ = ["ChangeForecaster", "last_observed"]


class ChangeForecaster(nn.Module):
    r"""Wraps a forecaster of graph series so that it predicts the change from the last
    observed value of the first input channel (a skip connection across the horizon):

    .. math::
        \hat{\mathbf{y}}_{t+h} = \mathbf{x}_{\text{last}} + f(\mathbf{x}_{1..T})_{h}

    Traffic speeds persist, and learning the change is far easier than learning the level
    from scratch; the persistence forecast is what the wrapped model starts from.

    Args:
        forecaster: a module with ``forward(x, edge_index, times, query_times, mask=None,
            edge_weight=None)`` returning ``(B, Q, N, 1)`` (``GDEGRU``,
            ``RecurrentForecaster``).

    Shapes:
        - **input:** windows :math:`(B, T, N, C)` whose channel 0 is the forecast quantity,
          observation times :math:`(T)`, query times :math:`(Q)`, optional mask :math:`(B, T)`
        - **output:** :math:`(B, Q, N, 1)`
    """

    def __init__(self, forecaster: nn.Module):
        super().__init__()
        self.forecaster = forecaster

    def forward(self, x: Tensor, edge_index: Tensor, times: Tensor, query_times: Tensor,
                mask: Optional[Tensor] = None, edge_weight: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """``kwargs`` go to the wrapped forecaster (e.g. :class:`GDEGRU`'s
        ``step_graphs``)."""
        change = self.forecaster(x, edge_index, times, query_times, mask, edge_weight, **kwargs)
        return change + last_observed(x[..., :1], mask).unsqueeze(-1)
