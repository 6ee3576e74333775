"""Jump diffusions: exact jumps on a known solution (Merton's model), the compound-Poisson
mean, the rate's likelihood, reproducibility and bad input."""
import math

import pytest
import torch

from graphode import BrownianMotion
from graphode.sde.jumps import sdeint_jump

DT = torch.float64
MU, SIGMA, J = 0.3, 0.4, 0.5


class _GBM:
    noise_type, sde_type = "diagonal", "ito"

    def f(self, t, y):
        return MU * y

    def g(self, t, y):
        return SIGMA * y


class _Still:
    """No drift, no noise: the path is the jumps alone."""
    noise_type, sde_type = "diagonal", "ito"

    def f(self, t, y):
        return torch.zeros_like(y)

    def g(self, t, y):
        return torch.zeros_like(y)


def test_merton_jump_diffusion_against_its_exact_solution():
    y0 = torch.ones(3, 2, dtype=DT)
    bm = BrownianMotion(0.0, 1.0, (3, 2), dtype=DT, entropy=5, dt=2e-4)
    sol = sdeint_jump(_GBM(), y0, [0.0, 0.3, 1.0], jump=lambda t, y: J * y, rate=1.0,
                      jump_times=[(0.3, [0, 2]), (0.7, [1, 2])], bm=bm, method="milstein",
                      dt=2e-4)
    jumps = torch.tensor([1.0, 1.0, 2.0], dtype=DT).view(3, 1)
    exact = torch.exp((MU - SIGMA ** 2 / 2) + SIGMA * bm(0.0, 1.0)) * (1 + J) ** jumps
    assert (sol.ys[-1] - exact).abs().max().item() < 1e-3
    # at a jump time the path is right-continuous: the jump has happened
    first = torch.tensor([1.0, 0.0, 1.0], dtype=DT).view(3, 1)
    at = torch.exp((MU - SIGMA ** 2 / 2) * 0.3 + SIGMA * bm(0.0, 0.3)) * (1 + J) ** first
    assert (sol.ys[1] - at).abs().max().item() < 1e-3
    assert [t for t, _ in sol.jumps] == [0.3, 0.7]


def test_compound_poisson_mean():
    rows, rate = 800, 2.0
    sol = sdeint_jump(_Still(), torch.ones(rows, 1, dtype=DT), [0.0, 1.0],
                      jump=lambda t, y: J * y, rate=rate, entropy=0, method="euler", dt=0.5)
    final = sol.ys[-1].squeeze(1)
    # y(1) = (1 + J)^N with N ~ Poisson(rate): E y(1) = exp(rate J)
    mean, se = final.mean().item(), final.std().item() / math.sqrt(rows)
    assert abs(mean - math.exp(rate * J)) < 4 * se
    counts = torch.log(final) / math.log(1 + J)
    assert abs(counts.mean().item() - rate) < 4 * math.sqrt(rate / rows)


def test_the_rate_is_fitted_by_its_likelihood():
    rows = 50
    rate = torch.tensor(3.0, dtype=DT, requires_grad=True)
    sol = sdeint_jump(_Still(), torch.ones(rows, 1, dtype=DT), [0.0, 2.0],
                      jump=lambda t, y: torch.ones_like(y), rate=rate, entropy=1, dt=1.0)
    n = sum(len(r) for _, r in sol.jumps)
    assert n == int((sol.ys[-1] - 1).sum().item())  # every sampled jump was applied
    best = torch.tensor(n / (rows * 2.0), dtype=DT, requires_grad=True)
    again = sdeint_jump(_Still(), torch.ones(rows, 1, dtype=DT), [0.0, 2.0],
                        jump=lambda t, y: torch.ones_like(y), rate=best,
                        jump_times=sol.jumps, dt=1.0)
    (slope,) = torch.autograd.grad(again.log_likelihood, best)
    assert abs(slope.item()) < 1e-10  # the maximum likelihood rate: jumps / (rows * time)
    (slope,) = torch.autograd.grad(sol.log_likelihood, rate)
    assert slope.item() == pytest.approx(n / 3.0 - rows * 2.0)


def test_jumps_and_paths_are_reproducible_and_differentiable():
    y0 = torch.ones(4, 2, dtype=DT, requires_grad=True)
    scale = torch.tensor(0.2, dtype=DT, requires_grad=True)
    runs = [sdeint_jump(_GBM(), y0, [0.0, 0.5, 1.0], jump=lambda t, y: scale * y, rate=2.0,
                        entropy=7, dt=0.01) for _ in range(2)]
    assert torch.equal(runs[0].ys, runs[1].ys)
    assert [t for t, _ in runs[0].jumps] == [t for t, _ in runs[1].jumps]
    grads = torch.autograd.grad(runs[0].ys[-1].sum(), [y0, scale])
    assert all(torch.isfinite(g).all() for g in grads) and grads[1].item() != 0.0


def test_bad_jump_input_is_refused():
    y0 = torch.ones(2, 1, dtype=DT)
    kw = dict(jump=lambda t, y: y, dt=0.1)
    with pytest.raises(ValueError, match="positive"):
        sdeint_jump(_Still(), y0, [0.0, 1.0], rate=0.0, **kw)
    with pytest.raises(ValueError, match="one per row"):
        sdeint_jump(_Still(), y0, [0.0, 1.0], rate=torch.ones(3), **kw)
    with pytest.raises(ValueError, match="outside"):
        sdeint_jump(_Still(), y0, [0.0, 1.0], rate=1.0, jump_times=[(1.5, [0])], **kw)
    with pytest.raises(ValueError, match="index"):
        sdeint_jump(_Still(), y0, [0.0, 1.0], rate=1.0, jump_times=[(0.5, [2])], **kw)
    with pytest.raises(ValueError, match="adaptive"):
        sdeint_jump(_Still(), y0, [0.0, 1.0], rate=1.0, adaptive=True, **kw)
