"""Solver statistics that add up: SolverStats sums, and the recorder counts every solve of
every GDE block of a model, forward and backward, however often a block is called."""
import doctest

import torch
from torch_geometric.nn import GCNConv

import graphode.nn.stats
from graphode import SolverStats
from graphode.nn import GDEGRU, GDEConv, SecondOrderGDEConv, SolverStatsRecorder


def test_solver_stats_add_up():
    a, b = SolverStats(1, 2, 3, 4, 5, 6), SolverStats(10, 20, 30, 40, 50, 60)
    assert a + b == SolverStats(11, 22, 33, 44, 55, 66)
    assert sum([a, b]) == a + b and (a + b).n_steps == 55


def test_the_recorder_counts_every_call_and_the_backward_pass():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.first = GDEConv(GCNConv(4, 4), method="rk4", step_size=0.5, gradient="adjoint")
            self.second = SecondOrderGDEConv(GCNConv(8, 4), method="rk4", step_size=0.25,
                                             gradient="checkpoint")

        def forward(self, x, edge_index):
            h = self.first(self.first(x, edge_index), edge_index)  # one block, two calls
            return self.second(h, edge_index)

    model = Model()
    x, ei = torch.randn(5, 4, requires_grad=True), torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    with SolverStatsRecorder(model) as recorded:
        model(x, ei).sum().backward()
    stats = recorded.stats
    assert recorded.calls == 3
    assert stats.nfe == 2 * 2 * 4 + 4 * 4  # two rk4 steps per call of `first`, four of `second`
    assert stats.nfe_backward > 0 and stats.n_accepted == 2 + 2 + 4
    with SolverStatsRecorder(model) as idle:
        pass
    assert idle.calls == 0 and idle.stats == SolverStats()
    model(x, ei)  # hooks are removed on exit: nothing more is recorded
    assert recorded.calls == 3


def test_a_recurrent_block_reports_each_of_its_solves():
    model = GDEGRU(1, 4, method="rk4", step_size=1.0)
    x = torch.randn(2, 3, 5, 1)
    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    with SolverStatsRecorder(model) as recorded:
        model(x, ei, torch.arange(3.0), torch.tensor([3.0, 4.0]))
    assert recorded.stats.nfe == model.stats.nfe > 0
    assert len(model.last_solves) == 3  # two gaps between observations and the forecast


def test_docstring_example():
    assert doctest.testmod(graphode.nn.stats).failed == 0
