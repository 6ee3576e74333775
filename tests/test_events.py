"""odeint_event: event times against closed forms, gradients through the event time against
their analytic values and torchdiffeq, and the refusals."""
import math

import pytest
import torch

from graphode import odeint_event

DT = torch.float64
G = 9.81


def fall(t, y):
    return torch.stack([y[1], torch.full_like(y[1], -G)])


def ground(t, y):
    return y[0]


@pytest.mark.parametrize("method", ["dopri5", "tsit5", "dopri8", "bosh3"])
def test_falling_ball_hits_the_ground_on_time(method):
    t_ev, sol = odeint_event(fall, torch.tensor([1.0, 0.0], dtype=DT), torch.tensor(0.0, dtype=DT),
                             event_fn=ground, method=method, rtol=1e-10, atol=1e-12)
    assert float(t_ev) == pytest.approx(math.sqrt(2 / G), abs=1e-9)
    assert sol.shape == (2, 2)
    assert sol[0].tolist() == [1.0, 0.0]
    assert sol[1, 0].abs().item() < 1e-9
    assert sol[1, 1].item() == pytest.approx(-math.sqrt(2 * G), rel=1e-9)


def test_gradient_through_the_event_time():
    h0 = torch.tensor(1.0, dtype=DT, requires_grad=True)
    y0 = torch.stack([h0, torch.zeros((), dtype=DT)])
    t_ev, sol = odeint_event(fall, y0, torch.tensor(0.0, dtype=DT), event_fn=ground,
                             rtol=1e-10, atol=1e-12)
    # t* = sqrt(2 h0 / g): dt*/dh0 = 1 / (g t*); the impact speed -g t* moves with it.
    t_star = math.sqrt(2 / G)
    (dt,) = torch.autograd.grad(t_ev, h0, retain_graph=True)
    assert dt.item() == pytest.approx(1 / (G * t_star), rel=1e-8)
    (dv,) = torch.autograd.grad(sol[-1, 1], h0)
    assert dv.item() == pytest.approx(-1 / t_star, rel=1e-8)


def test_gradient_to_event_and_field_parameters_matches_torchdiffeq():
    torchdiffeq = pytest.importorskip("torchdiffeq")

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.k = torch.nn.Parameter(torch.tensor(0.8, dtype=DT))

        def forward(self, t, y):
            return -self.k * y + torch.sin(t)

    class Threshold(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.level = torch.nn.Parameter(torch.tensor(0.5, dtype=DT))

        def forward(self, t, y):
            return y.sum() - self.level

    grads = []
    for impl in (odeint_event, torchdiffeq.odeint_event):
        torch.manual_seed(0)
        field, event = Field(), Threshold()
        y0 = torch.tensor([1.0, 0.7], dtype=DT, requires_grad=True)
        t_ev, sol = impl(field, y0, torch.tensor(0.0, dtype=DT), event_fn=event,
                         rtol=1e-10, atol=1e-12)
        loss = t_ev + (sol[-1] ** 2).sum()
        grads.append(torch.autograd.grad(loss, (y0, field.k, event.level), allow_unused=True))
    for ours, theirs in zip(grads[0][:2], grads[1][:2]):
        assert torch.allclose(ours, theirs, rtol=1e-6, atol=1e-9)
    # torchdiffeq gives the event function's parameters no gradient; graphode does, and it
    # matches central differences.
    assert grads[1][2] is None

    def loss_at(level):
        event = Threshold()
        event.level.data.fill_(level)
        with torch.no_grad():
            t_ev, sol = odeint_event(Field(), torch.tensor([1.0, 0.7], dtype=DT),
                                     torch.tensor(0.0, dtype=DT), event_fn=event,
                                     rtol=1e-12, atol=1e-14)
        return (t_ev + (sol[-1] ** 2).sum()).item()
    eps = 1e-5
    fd = (loss_at(0.5 + eps) - loss_at(0.5 - eps)) / (2 * eps)
    assert grads[0][2].item() == pytest.approx(fd, rel=1e-5)


def test_several_events_reverse_time_and_tuple_states():
    # Two events; the first to change sign stops the solve.
    t_ev, _ = odeint_event(lambda t, y: torch.ones_like(y), torch.zeros(2, dtype=DT),
                           torch.tensor(0.0, dtype=DT),
                           event_fn=lambda t, y: torch.stack([y[0] - 2.0, y[1] - 1.0]),
                           rtol=1e-10, atol=1e-12)
    assert float(t_ev) == pytest.approx(1.0, abs=1e-9)
    t_ev, _ = odeint_event(lambda t, y: -y, torch.ones(1, dtype=DT), torch.tensor(0.0, dtype=DT),
                           event_fn=lambda t, y: y[0] - 2.0, reverse_time=True,
                           rtol=1e-10, atol=1e-12)
    assert float(t_ev) == pytest.approx(-math.log(2.0), abs=1e-8)
    t_ev, (x, v) = odeint_event(lambda t, s: (s[1], -torch.ones_like(s[1])),
                                (torch.ones(1, dtype=DT), torch.zeros(1, dtype=DT)),
                                torch.tensor(0.0, dtype=DT), event_fn=lambda t, s: s[0][0],
                                rtol=1e-10, atol=1e-12)
    assert float(t_ev) == pytest.approx(math.sqrt(2.0), abs=1e-9)
    assert x.shape == (2, 1) and v[-1].item() == pytest.approx(-math.sqrt(2.0), rel=1e-8)


def test_refusals():
    y0, t0 = torch.tensor([1.0, 0.0], dtype=DT), torch.tensor(0.0, dtype=DT)
    with pytest.raises(ValueError, match="adaptive explicit Runge-Kutta"):
        odeint_event(fall, y0, t0, event_fn=ground, method="rk4")
    with pytest.raises(ValueError, match="zero at the initial time"):
        odeint_event(fall, torch.zeros(2, dtype=DT), t0, event_fn=ground)
    with pytest.raises(ValueError, match="t0"):
        odeint_event(fall, y0, torch.tensor(0.0, dtype=DT, requires_grad=True), event_fn=ground)
