"""The step-size controller and the initial step, checked on their own."""
import math

import pytest
import torch

from graphode.solvers.controllers import PIController, error_ratio, initial_step_size


def test_the_default_is_the_classic_i_controller():
    c = PIController(order=5)
    for ratio in (0.01, 0.3, 0.9):
        expected = min(10.0, max(0.2, 0.9 * ratio ** -0.2))
        assert c.next_step(0.1, ratio, accepted=True) == pytest.approx(0.1 * expected)


def test_a_rejection_never_grows_the_step_and_limits_hold():
    c = PIController(order=5, max_step=0.5)
    assert c.next_step(0.1, 3.0, accepted=False) < 0.1
    assert c.next_step(0.1, 1.0001, accepted=False) <= 0.1
    assert c.next_step(0.1, 0.0, accepted=True) == pytest.approx(0.5)  # ifactor, then max_step
    assert c.next_step(0.1, math.inf, accepted=False) == pytest.approx(0.02)  # dfactor
    assert c.next_step(-0.1, 0.5, accepted=True) < 0  # the direction is kept


def test_the_pi_part_uses_the_previous_ratio():
    c = PIController(order=5, beta1=0.14, beta2=0.08)
    first = c.next_step(0.1, 0.5, accepted=True)
    second = c.next_step(0.1, 0.5, accepted=True)
    assert first != second  # the second sees the first ratio
    c.reset()
    assert c.next_step(0.1, 0.5, accepted=True) == pytest.approx(first)


@pytest.mark.parametrize("kw, message", [
    (dict(safety=0.0), "`safety` must be a positive finite number"),
    (dict(dfactor=2.0), "need dfactor <= 1 <= ifactor"),
    (dict(min_step=1.0, max_step=0.5), "need 0 <= min_step <= max_step"),
])
def test_bad_settings_are_named(kw, message):
    with pytest.raises(ValueError, match=message):
        PIController(order=5, **kw)


def test_error_ratio_scales_by_the_tolerances():
    y0, y1 = torch.tensor([1.0, 100.0]), torch.tensor([1.0, 100.0])
    error = torch.tensor([1e-3, 1e-1])
    # each component's error is exactly its tolerance: rtol * |y| + atol
    assert error_ratio(error, y0, y1, rtol=1e-3, atol=0.0, norm=None).item() == pytest.approx(1.0)


def test_initial_step_is_signed_and_sized_by_the_derivative():
    f = lambda t, y: -10.0 * y  # noqa: E731
    y0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    h = initial_step_size(f, 0.0, y0, f(0.0, y0), 1.0, 5, 1e-6, 1e-9, None)
    slow = initial_step_size(lambda t, y: -y, 0.0, y0, -y0, 1.0, 5, 1e-6, 1e-9, None)
    assert 0 < h < slow  # a faster field starts with a smaller step
    assert initial_step_size(f, 0.0, y0, f(0.0, y0), -1.0, 5, 1e-6, 1e-9, None) == -h
    bad = torch.tensor([math.inf, 1.0], dtype=torch.float64)
    assert math.isnan(initial_step_size(f, 0.0, y0, bad, 1.0, 5, 1e-6, 1e-9, None))


def test_a_controller_object_sets_the_pi_exponents_in_solve():
    import graphode
    from graphode.solvers import PIController

    def f(t, y):
        return torch.stack([y[1], -y[0] + 0.5 * torch.cos(3 * t) * y[1]])
    y0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    plain = graphode.solve(f, y0, [0.0, 10.0], method="dopri5", rtol=1e-8, atol=1e-10)
    same = graphode.solve(f, y0, [0.0, 10.0], method="dopri5", rtol=1e-8, atol=1e-10,
                          controller=PIController())
    assert torch.equal(plain.ys, same.ys) and plain.stats.nfe == same.stats.nfe
    pi = graphode.solve(f, y0, [0.0, 10.0], method="dopri5", rtol=1e-8, atol=1e-10,
                        controller=PIController(beta1=0.7 / 5, beta2=0.4 / 5, safety=0.8))
    assert pi.stats.n_accepted != plain.stats.n_accepted  # the PI exponents act
    assert (pi.ys[-1] - plain.ys[-1]).abs().max().item() < 1e-6
    capped = graphode.solve(f, y0, [0.0, 10.0], method="dopri5", rtol=1e-3, atol=1e-6,
                            controller=PIController(max_step=0.1))
    assert capped.stats.n_accepted >= 100
    with pytest.raises(ValueError, match="safety given both"):
        graphode.solve(f, y0, [0.0, 1.0], safety=0.5, controller=PIController())
    with pytest.raises(TypeError, match="PIController"):
        graphode.solve(f, y0, [0.0, 1.0], controller={"safety": 0.5})
