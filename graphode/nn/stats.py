"""Solver statistics of a whole model: every solve of every GDE block, forward and backward."""
from __future__ import annotations

from typing import Any, List, Optional

from torch.nn import Module

from ..solvers.integrate import SolverStats

__all__ = ["SolverStatsRecorder"]


class SolverStatsRecorder:
    """Records the solver statistics of every GDE block in ``module`` over all the calls made
    while the context is open, including the function evaluations of backward passes run
    inside it (the adjoint's backward solve, checkpoint recomputation).

    A GDE block is any submodule with a ``last_solves`` attribute listing the
    :class:`~graphode.SolverStats` of its last forward (``GDEConv``, ``SecondOrderGDEConv``,
    ``GDEGRU``). A block called several times in one forward is counted every time.

    Example::

        >>> import torch
        >>> from torch_geometric.nn import GCNConv
        >>> from graphode.nn import GDEConv, SolverStatsRecorder
        >>> model = torch.nn.Sequential(torch.nn.Identity())
        >>> model.gde = GDEConv(GCNConv(4, 4), method="rk4", step_size=0.25)
        >>> x, edge_index = torch.randn(3, 4), torch.tensor([[0, 1], [1, 2]])
        >>> with SolverStatsRecorder(model) as recorded:
        ...     model.gde(model.gde(x, edge_index), edge_index).sum().backward()
        >>> recorded.stats.nfe, recorded.calls
        (32, 2)
    """

    def __init__(self, module: Module):
        self.module = module
        self._solves: List[SolverStats] = []
        self._calls = 0
        self._hooks: List[Any] = []

    def _record(self, block: Module, args: Any, output: Any) -> None:
        self._calls += 1
        solves: List[SolverStats] = block.last_solves  # type: ignore[assignment]
        self._solves.extend(solves)

    def __enter__(self) -> "SolverStatsRecorder":
        self._hooks = [m.register_forward_hook(self._record) for m in self.module.modules()
                       if hasattr(m, "last_solves")]
        return self

    def __exit__(self, *exc: Optional[BaseException]) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    @property
    def calls(self) -> int:
        """Forward calls of GDE blocks recorded."""
        return self._calls

    @property
    def stats(self) -> SolverStats:
        """The sum over every recorded solve (read it after the backward pass to include it)."""
        return sum(self._solves, SolverStats())
