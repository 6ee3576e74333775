"""Paths from observations (splines, missing values) and cdeint."""
import pytest
import torch
from torch import nn

from graphode import CubicSpline, LinearInterpolation, cdeint, solve
from graphode.cde import fill_missing

T = torch.tensor([0.0, 0.5, 1.3, 2.0, 3.1, 4.0], dtype=torch.float64)
QUERY = torch.linspace(-0.5, 4.5, 41, dtype=torch.float64)


def cubic(coef, s):
    """``sum_k coef[..., k, :] s^k`` at times ``s`` ``(K,)``: ``(..., K, C)``."""
    c = coef.unsqueeze(-3)
    s = s.view(-1, 1)
    return c[..., 0, :] + c[..., 1, :] * s + c[..., 2, :] * s ** 2 + c[..., 3, :] * s ** 3


def cubic_slope(coef, s):
    c = coef.unsqueeze(-3)
    s = s.view(-1, 1)
    return c[..., 1, :] + 2 * c[..., 2, :] * s + 3 * c[..., 3, :] * s ** 2


def test_not_a_knot_spline_is_exact_on_cubic_data_and_its_derivative():
    torch.manual_seed(0)
    coef = torch.randn(3, 5, 4, 2, dtype=torch.float64)  # 15 series of 2 channels
    spline = CubicSpline(cubic(coef, T), T)
    assert (spline.evaluate(QUERY) - cubic(coef, QUERY)).abs().max() < 1e-12
    assert (spline.derivative(QUERY) - cubic_slope(coef, QUERY)).abs().max() < 1e-12
    one = spline.evaluate(torch.tensor(1.7, dtype=torch.float64))
    assert one.shape == (3, 5, 2)
    assert torch.allclose(one, cubic(coef, torch.tensor([1.7], dtype=torch.float64))[..., 0, :])


@pytest.mark.parametrize("boundary", ["natural", "not-a-knot"])
def test_spline_matches_scipy(boundary):
    interpolate = pytest.importorskip("scipy.interpolate")
    torch.manual_seed(1)
    y = torch.randn(6, 3, dtype=torch.float64)
    theirs = interpolate.CubicSpline(T.numpy(), y.numpy(), bc_type=boundary)
    ours = CubicSpline(y, T, boundary=boundary)
    assert abs(theirs(QUERY.numpy()) - ours.evaluate(QUERY).numpy()).max() < 1e-12
    assert abs(theirs(QUERY.numpy(), 1) - ours.derivative(QUERY).numpy()).max() < 1e-12


def test_linear_interpolation_and_its_derivative():
    y = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    path = LinearInterpolation(y, torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64))
    s = torch.tensor([0.5, 1.5, 2.5], dtype=torch.float64)
    assert path.evaluate(s).flatten().tolist() == [0.5, 2.0, 4.0]
    assert path.derivative(s).flatten().tolist() == [1.0, 2.0, 2.0]
    assert path.knots == [1.0]


def test_missing_values_are_filled_linearly_in_time():
    y = torch.tensor([[1.0, 9.0, 9.0], [9.0, 9.0, 9.0], [5.0, 2.0, 9.0], [9.0, 4.0, 9.0]])
    mask = torch.tensor([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=torch.bool)
    times = torch.tensor([0.0, 1.0, 4.0, 6.0])
    filled = fill_missing(y, mask, times)
    # channel 0: between 1 (t=0) and 5 (t=4), then the last value; channel 1: the first value
    # before the first observation; channel 2: never observed, zeros
    assert filled[:, 0].tolist() == [1.0, 2.0, 5.0, 5.0]
    assert filled[:, 1].tolist() == [2.0, 2.0, 2.0, 4.0]
    assert filled[:, 2].tolist() == [0.0, 0.0, 0.0, 0.0]
    # a mask per time stamp applies to every channel; the spline runs through the fill
    spline = CubicSpline(y, times, mask=mask[:, 0])
    assert torch.allclose(spline.evaluate(times)[:, 0], filled[:, 0])


def test_path_input_checks():
    with pytest.raises(ValueError, match="at least 2 time stamps"):
        CubicSpline(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="strictly increasing"):
        CubicSpline(torch.zeros(3, 1), torch.tensor([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match=r"times must have shape \(3,\)"):
        CubicSpline(torch.zeros(3, 1), torch.arange(4.0))
    with pytest.raises(ValueError, match="mask must have values' shape"):
        CubicSpline(torch.zeros(3, 2), mask=torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        CubicSpline(torch.zeros(3, 2), mask=torch.ones(3, 2))
    with pytest.raises(ValueError, match="boundary"):
        CubicSpline(torch.zeros(3, 2), boundary="clamped")


class MatrixField(nn.Module):
    """``F(z) = tanh(W z)`` reshaped to ``(hidden, C)``."""

    def __init__(self, hidden=3, channels=2):
        super().__init__()
        self.lin = nn.Linear(hidden, hidden * channels).double()
        self.hidden, self.channels = hidden, channels

    def forward(self, t, z):
        return torch.tanh(self.lin(z)).view(*z.shape, self.channels)


@pytest.mark.parametrize("kind", [CubicSpline, LinearInterpolation])
def test_a_cde_on_a_path_linear_in_time_is_the_ode_it_reduces_to(kind):
    torch.manual_seed(2)
    func = MatrixField()
    slope = torch.tensor([0.7, -1.2], dtype=torch.float64)
    path = kind(torch.tensor([1.0, 2.0], dtype=torch.float64) + T.view(-1, 1) * slope, T)
    z0 = torch.randn(4, 3, dtype=torch.float64)
    t = [0.0, 1.0, 4.0]
    cde = cdeint(path, func, z0, t, method="dopri5", rtol=1e-10, atol=1e-12).ys
    ode = solve(lambda s, z: func(s, z) @ slope, z0, t, method="dopri5", rtol=1e-10,
                atol=1e-12).ys
    assert (cde - ode).abs().max() < 1e-9


@pytest.mark.parametrize("mode", ["adjoint", "checkpoint"])
def test_cdeint_gradients_equal_autograd(mode):
    torch.manual_seed(3)
    func = MatrixField()
    y = torch.randn(4, 6, 2, dtype=torch.float64, requires_grad=True)
    z0 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    grads = {}
    for gradient in ("autograd", mode):
        path = CubicSpline(y * 1.0, T)  # coefficients computed from a leaf
        kw = dict(method="rk4", step_size=0.25) if gradient != "adjoint" else \
            dict(method="dopri5", rtol=1e-11, atol=1e-12)
        if gradient == "autograd" and mode == "adjoint":
            kw = dict(method="dopri5", rtol=1e-11, atol=1e-12)
        ys = cdeint(path, func, z0, [0.0, 2.0, 4.0], gradient=gradient, **kw).ys
        inputs = [y, z0, *func.parameters()]
        grads[gradient] = torch.autograd.grad((ys ** 2).sum(), inputs)
    tol = 1e-10 if mode == "checkpoint" else 1e-6
    for a, b in zip(grads["autograd"], grads[mode]):
        assert (a - b).abs().max() < tol * (1 + a.abs().max())


def test_cdeint_refuses_a_field_of_the_wrong_shape():
    path = CubicSpline(torch.randn(4, 3, dtype=torch.float64))
    func = MatrixField(hidden=2, channels=2)  # 2 columns, the path has 3 channels
    with pytest.raises(ValueError, match=r"must return \(\*z.shape, C\)"):
        cdeint(path, func, torch.zeros(5, 2, dtype=torch.float64), [0.0, 1.0])
    with pytest.raises(TypeError, match="CubicSpline or LinearInterpolation"):
        cdeint(torch.zeros(3), func, torch.zeros(5, 2), [0.0, 1.0])
