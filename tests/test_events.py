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


# --------------------------------------------------------------------------- per-graph events
SIZES = [3, 5, 2, 4]


def _graph_mean(v, batch, num_graphs):
    total = torch.zeros(num_graphs, dtype=v.dtype).index_add(0, batch, v)
    return total / torch.zeros(num_graphs, dtype=v.dtype).index_add(0, batch, torch.ones_like(v))


def _decay_events(rates, batch, threshold, method="dopri5", **kw):
    """Every graph decays at its own rate from 1 and stops when its mean reaches the
    threshold: t* = log(1 / threshold) / rate."""
    num_graphs = rates.numel()
    y0 = torch.ones(batch.numel(), 2, dtype=DT)
    field = lambda t, y: -rates[batch].unsqueeze(-1) * y * (1.0 + 0.0 * t)  # noqa: E731
    event = lambda t, y: _graph_mean(y.mean(-1), batch, num_graphs) - threshold  # noqa: E731
    return odeint_event(field, y0, torch.tensor(0.0, dtype=DT), event_fn=event, per_graph=batch,
                        method=method, rtol=1e-10, atol=1e-12, **kw)


@pytest.mark.parametrize("method", ["dopri5", "bosh3"])
def test_per_graph_events_stop_each_graph_at_its_own_crossing(method):
    batch = torch.repeat_interleave(torch.arange(4), torch.tensor(SIZES))
    rates = torch.tensor([0.5, 2.0, 7.0, 1.3], dtype=DT)
    t_ev, sol = _decay_events(rates, batch, 0.5, method)
    exact = math.log(2.0) / rates
    assert t_ev.shape == (4,) and sol.shape == (2, batch.numel(), 2)
    assert (t_ev - exact).abs().max().item() < 1e-8
    assert (sol[1] - 0.5).abs().max().item() < 1e-8  # each graph's state at its own event
    # each graph in the batch equals that graph solved alone
    start = 0
    for g, n in enumerate(SIZES):
        t_alone, sol_alone = _decay_events(rates[g:g + 1], torch.zeros(n, dtype=torch.long),
                                           0.5, method)
        assert (t_alone[0] - t_ev[g]).abs().item() < 1e-14
        assert (sol_alone[1] - sol[1, start:start + n]).abs().max().item() < 1e-14
        start += n


def test_per_graph_event_times_differentiate_to_the_rates_and_the_event():
    batch = torch.repeat_interleave(torch.arange(4), torch.tensor(SIZES))
    rates = torch.tensor([0.5, 2.0, 7.0, 1.3], dtype=DT, requires_grad=True)
    threshold = torch.tensor(0.3, dtype=DT, requires_grad=True)
    t_ev, sol = _decay_events(rates, batch, threshold)
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=DT)
    got = torch.autograd.grad((t_ev * weights).sum() + sol[1].sum(), [rates, threshold])
    # t* = -log(c) / k; the state at the event is c on every node, whatever the rate
    c, k = threshold.detach(), rates.detach()
    assert torch.allclose(got[0], weights * math.log(c) / k ** 2, rtol=1e-7, atol=1e-10)
    want_c = (weights * -1.0 / (c * k)).sum() + batch.numel() * 2
    assert got[1].item() == pytest.approx(want_c.item(), rel=1e-7)
    # and against central differences of the solve itself
    eps = 1e-6
    for g in range(4):
        bump = torch.zeros(4, dtype=DT)
        bump[g] = eps
        with torch.no_grad():
            up = _decay_events(rates.detach() + bump, batch, c)[0]
            down = _decay_events(rates.detach() - bump, batch, c)[0]
        fd = ((up - down) * weights).sum().item() / (2 * eps)
        assert got[0][g].item() == pytest.approx(fd, rel=1e-5)


def test_per_graph_event_refusals():
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([2, 3]))
    y0 = torch.ones(5, 1, dtype=DT)
    decay = lambda t, y: -y  # noqa: E731
    with pytest.raises(ValueError, match=r"one value per graph, shape \(2,\)"):
        odeint_event(decay, y0, 0.0, event_fn=lambda t, y: y.sum() - 0.5, per_graph=batch)
    with pytest.raises(ValueError, match="zero at the initial time for graph 1"):
        odeint_event(decay, y0, 0.0, per_graph=batch,
                     event_fn=lambda t, y: torch.tensor([1.0, 0.0], dtype=DT) * (t + 1))
    with pytest.raises(ValueError, match="adaptive explicit Runge-Kutta"):
        odeint_event(decay, y0, 0.0, per_graph=batch, method="rk4",
                     event_fn=lambda t, y: _graph_mean(y[:, 0], batch, 2) - 0.5)


def test_per_graph_events_in_reverse_time():
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([2, 3]))
    rates = torch.tensor([1.0, 3.0], dtype=DT)
    t_ev, _ = odeint_event(lambda t, y: rates[batch].unsqueeze(-1) * y,
                           torch.ones(5, 1, dtype=DT), torch.tensor(0.0, dtype=DT),
                           event_fn=lambda t, y: _graph_mean(y[:, 0], batch, 2) - 0.5,
                           per_graph=batch, reverse_time=True, rtol=1e-10, atol=1e-12)
    assert torch.allclose(t_ev, -math.log(2.0) / rates, atol=1e-9)
