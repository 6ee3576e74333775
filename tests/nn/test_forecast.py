"""GCGRUCell, GDEGRU and the discrete forecasting baselines."""
import pytest
import torch

from graphode import solve
from graphode.nn import (
    GDEGRU,
    GRUD,
    STGODE,
    GCGRUCell,
    GraphNCDE,
    HistoricalAverage,
    LatentGDE,
    Persistence,
    RecurrentForecaster,
    StochasticGDEGRU,
    batch_graph,
    batch_graphs,
    gcn_operator,
)

EDGES = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])


def test_gcgru_cell_matches_its_equations():
    torch.manual_seed(0)
    cell = GCGRUCell(2, 3).double()
    x, h = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    a_hat = torch.zeros(4, 4, dtype=torch.float64)
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    ei, w = gcn_norm(EDGES, None, 4, dtype=torch.float64)
    a_hat[ei[1], ei[0]] = w
    z = torch.cat([x, h], -1)
    r, u = torch.sigmoid(cell.gates(torch.cat([z, a_hat @ z], -1))).chunk(2, -1)
    z = torch.cat([x, r * h], -1)
    c = torch.tanh(cell.candidate(torch.cat([z, a_hat @ z], -1)))
    expected = u * h + (1 - u) * c
    assert torch.allclose(cell(x, h, EDGES), expected)
    op = gcn_operator(EDGES, None, 4, torch.float64)
    assert torch.allclose(cell(x, h, op), expected)
    assert cell(x, None, EDGES).shape == (4, 3)
    assert str(cell) == "GCGRUCell(2, 3)"
    with pytest.raises(ValueError, match=r"x must have shape \(num_nodes, 2\)"):
        cell(torch.randn(4, 5), h, EDGES)


def test_batch_graph():
    ei, ew = batch_graph(EDGES, torch.ones(6), 4, 3)
    assert ei.shape == (2, 18) and ew.shape == (18,)
    assert torch.equal(ei[:, 6:12], EDGES + 4)


def gde_gru(**kw):
    torch.manual_seed(0)
    return GDEGRU(1, 8, 1, **kw).double()


def test_gde_gru_shapes_and_stats():
    model = gde_gru()
    x = torch.randn(2, 5, 4, 1, dtype=torch.float64)
    out = model(x, EDGES, torch.arange(5.0), torch.tensor([5.0, 6.0, 7.0]))
    assert out.shape == (2, 3, 4, 1)
    assert model.stats.nfe == (4 + 3) * 4  # rk4, step 1: 4 gaps, then 3 steps ahead
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert "GDEGRU(1, 8, 1" in str(model)


def test_gde_gru_flows_over_the_true_gaps():
    """Uneven time stamps: the state between observations is the ODE flow over the real gap."""
    model = gde_gru(method="dopri5", step_size=None, rtol=1e-10, atol=1e-12)
    x = torch.randn(1, 3, 4, 1, dtype=torch.float64)
    times = torch.tensor([0.0, 0.3, 2.0])
    out = model(x, EDGES, times, torch.tensor([2.5]))
    # By hand: update, flow 0 -> 0.3, update, flow 0.3 -> 2.0, update, flow 2.0 -> 2.5, decode.
    field = model.field.bind(EDGES, None, 4, torch.float64, torch.device("cpu"))

    def flow(h, a, b):
        return solve(field, h, [a, b], rtol=1e-10, atol=1e-12).ys[-1]

    h = model.cell(x[0, 0], None, EDGES)
    h = model.cell(x[0, 1], flow(h, 0.0, 0.3), EDGES)
    h = model.cell(x[0, 2], flow(h, 0.3, 2.0), EDGES)
    expected = model.decoder(flow(h, 2.0, 2.5))
    assert torch.allclose(out[0, 0], expected, atol=1e-8)


def test_gde_gru_answers_horizons_not_seen_in_training():
    model = gde_gru(method="dopri5", step_size=None, rtol=1e-9, atol=1e-11)
    x = torch.randn(2, 4, 4, 1, dtype=torch.float64)
    times = torch.arange(4.0)
    # Trained (say) on 1..2 steps ahead; asked for 1.5 and 20 steps ahead, out of order.
    out = model(x, EDGES, times, torch.tensor([23.0, 4.5]))
    assert out.shape == (2, 2, 4, 1) and torch.isfinite(out).all()
    one = model(x, EDGES, times, torch.tensor([4.5]))
    assert torch.allclose(out[:, 1], one[:, 0], atol=1e-6)
    with pytest.raises(ValueError, match="at or after the last observation"):
        model(x, EDGES, times, torch.tensor([2.0]))


def test_masked_steps_are_skipped():
    """A sample whose step is masked keeps flowing instead of updating: dropping an observation
    equals never having had it, and the other samples in the batch are unaffected."""
    model = gde_gru()
    x = torch.randn(2, 4, 4, 1, dtype=torch.float64)
    mask = torch.tensor([[True, False, True, True], [True, True, True, True]])
    times, q = torch.arange(4.0), torch.tensor([4.0])
    out = model(x, EDGES, times, q, mask)
    alone = model(x[1:], EDGES, times, q)
    assert torch.allclose(out[1], alone[0])
    changed = x.clone()
    changed[0, 1] = 100.0  # the dropped observation does not matter
    assert torch.allclose(model(changed, EDGES, times, q, mask)[0], out[0])


@pytest.mark.parametrize("graph", [True, False])
def test_recurrent_forecaster(graph):
    torch.manual_seed(0)
    model = RecurrentForecaster(1, 8, horizon=3, graph=graph, time_gaps=True)
    x = torch.randn(2, 5, 4, 1)
    times = torch.arange(5.0)
    out = model(x, EDGES, times, torch.tensor([5.0, 6.0, 7.0]))
    assert out.shape == (2, 3, 4, 1)
    assert torch.allclose(model(x, EDGES, times, torch.tensor([7.0]))[:, 0], out[:, 2])
    with pytest.raises(ValueError, match="only its trained horizons.*Use GDEGRU"):
        model(x, EDGES, times, torch.tensor([5.5]))
    mask = torch.tensor([[True, False, True, True, True]] * 2)
    changed = x.clone()
    changed[:, 1] = 50.0
    assert torch.allclose(model(changed, EDGES, times, torch.tensor([5.0]), mask),
                          model(x, EDGES, times, torch.tensor([5.0]), mask))


def test_historical_average():
    x = torch.tensor([1.0, 2.0, 6.0]).view(1, 3, 1, 1).expand(2, 3, 2, 1)
    mask = torch.tensor([[True, True, True], [True, False, True]])
    out = HistoricalAverage()(x, EDGES, torch.arange(3.0), torch.tensor([3.0, 4.0]), mask)
    assert out.shape == (2, 2, 2, 1)
    assert out[0, 0, 0, 0] == 3.0 and out[1, 1, 1, 0] == 3.5


def test_persistence_repeats_the_last_observed_snapshot():
    x = torch.arange(24.0).view(2, 3, 2, 2)
    mask = torch.tensor([[True, True, True], [True, True, False]])  # window 1 misses its last
    out = Persistence()(x, EDGES, torch.arange(3.0), torch.tensor([3.0, 4.0, 6.0]), mask)
    assert out.shape == (2, 3, 2, 2)
    assert torch.equal(out[0], x[0, 2].expand(3, -1, -1))
    assert torch.equal(out[1], x[1, 1].expand(3, -1, -1))
    assert torch.equal(Persistence()(x, EDGES, torch.arange(3.0), torch.tensor([3.0]))[:, 0],
                       x[:, 2])


def test_input_checks():
    model = gde_gru()
    with pytest.raises(ValueError, match=r"x must have shape \(batch, time, num_nodes"):
        model(torch.randn(5, 4, 1), EDGES, torch.arange(5.0), torch.tensor([5.0]))
    x = torch.randn(1, 3, 4, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="strictly increasing"):
        model(x, EDGES, torch.tensor([0.0, 2.0, 1.0]), torch.tensor([5.0]))
    with pytest.raises(ValueError, match="one time per observation step"):
        model(x, EDGES, torch.arange(4.0), torch.tensor([5.0]))
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\) = \(1, 3\)"):
        model(x, EDGES, torch.arange(3.0), torch.tensor([5.0]), torch.ones(1, 2, dtype=torch.bool))


def test_graph_gru_ode_field():
    from graphode.nn import GDEConv, GraphGRUODE
    torch.manual_seed(0)
    layer = GraphGRUODE(3).double()
    x = torch.rand(4, 3, dtype=torch.float64) * 2 - 1
    plan = layer.graph_plan(EDGES, None, 4, torch.float64, torch.device("cpu"))
    assert torch.allclose(plan(x), layer(x, EDGES))
    assert str(layer) == "GraphGRUODE(3)"
    # A long flow stays inside [-1, 1] (the field points inward on the box's faces).
    gde = GDEConv(layer, t_span=(0.0, 50.0), method="dopri5", gradient="autograd")
    out = gde(x, EDGES)
    assert out.abs().max() <= 1.0 and torch.isfinite(out).all()


def _sde_and_ode(noise_scale, **kwargs):
    from graphode.nn import StochasticGDEGRU
    torch.manual_seed(0)
    sde = StochasticGDEGRU(2, 6, 1, method="euler", noise_scale=noise_scale, **kwargs).double()
    ode = GDEGRU(2, 6, 1, method="euler").double()
    ode.load_state_dict({k: v for k, v in sde.state_dict().items() if not k.startswith("sde.")})
    return sde, ode


def test_stochastic_gde_gru_without_noise_is_the_gde_gru():
    # The forecast SDE's drift is the flow's own field: with the noise at 1e-12 its
    # Euler-Maruyama steps are the ODE's Euler steps, sample by sample.
    sde, ode = _sde_and_ode(1e-12, num_samples=3, eval_samples=5)
    x = torch.randn(2, 4, 4, 2, dtype=torch.float64)
    times, query = torch.arange(4.0).double(), torch.tensor([3.0, 5.0, 4.0, 7.0]).double()
    mask = torch.tensor([[True, False, True, True], [True, True, True, True]])
    expected = ode(x, EDGES, times, query, mask)
    samples = sde(x, EDGES, times, query, mask)
    assert samples.shape == (3, 2, 4, 4, 1)
    torch.testing.assert_close(samples, expected.expand_as(samples), atol=1e-9, rtol=0)
    sde.eval()
    assert sde(x, EDGES, times, query, mask).shape == (5, 2, 4, 4, 1)


def test_stochastic_gde_gru_samples_spread_with_the_horizon():
    sde, _ = _sde_and_ode(0.3, num_samples=400)
    x = torch.randn(1, 3, 4, 2, dtype=torch.float64)
    # the last observation (t = 2), one step later, six steps later
    times, query = torch.arange(3.0).double(), torch.tensor([2.0, 3.0, 8.0]).double()
    torch.manual_seed(1)
    samples = sde(x, EDGES, times, query)
    spread = samples.std(0).mean((0, 2, 3))  # per query time
    assert spread[0] == 0 and spread[2] > 1.2 * spread[1] > 0
    torch.manual_seed(1)
    assert torch.equal(sde(x, EDGES, times, query), samples)  # torch's seed fixes the paths
    # the CRPS reaches the diffusion's parameters
    from graphode.metrics import crps_ensemble
    crps_ensemble(samples[:, 0], torch.zeros_like(samples[0, 0])).backward()
    assert sde.sde.noise_layer.bias.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        _sde_and_ode(0.1, num_samples=0)


def test_persistence_metric_on_a_hand_computed_series():
    from graphode.metrics import forecast_metrics
    # one sensor, speeds 10, 12, 15, 11, 14, 20: windows of 2 inputs and 2 targets
    series = torch.tensor([10.0, 12.0, 15.0, 11.0, 14.0, 20.0])
    x = series.unfold(0, 4, 1)[:, :2].reshape(3, 2, 1, 1)
    y = series.unfold(0, 4, 1)[:, 2:].reshape(3, 2, 1)
    pred = Persistence()(x, EDGES[:, :0], torch.arange(2.0), torch.tensor([2.0, 3.0]))
    metrics = forecast_metrics(pred.squeeze(-1), y, steps=(1, 2), interval=None)
    # step 1: last inputs 12, 15, 11 against 15, 11, 14: errors 3, 4, 3
    assert metrics["step1"]["mae"] == pytest.approx(10 / 3)
    assert metrics["step1"]["rmse"] == pytest.approx(((9 + 16 + 9) / 3) ** 0.5)
    # step 2: against 11, 14, 20: errors 1, 1, 9
    assert metrics["step2"]["mae"] == pytest.approx(11 / 3)
    assert metrics["step2"]["mape"] == pytest.approx((1 / 11 + 1 / 14 + 9 / 20) / 3)


def test_masks_of_readings():
    """A mask per reading ``(B, T, N)``: the same as a mask per step where it does not vary
    across nodes, and each node's own where it does."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 4, 1, dtype=torch.float64)
    times, query = torch.arange(4.0), torch.tensor([4.0, 5.0])
    steps = torch.tensor([[True, False, True, True], [True, True, False, False]])
    readings = steps.unsqueeze(-1).expand(-1, -1, 4)
    models = [gde_gru(), RecurrentForecaster(1, 6, 2, time_gaps=True).double(),
              RecurrentForecaster(1, 6, 2, graph=False, time_gaps=True).double(),
              HistoricalAverage(), Persistence(), GRUD(1, 6, 2).double(),
              GraphNCDE(1, 6, 2).double()]
    for model in models:
        a = model(x, EDGES, times, query, steps)
        b = model(x, EDGES, times, query, readings)
        assert torch.allclose(a, b), type(model).__name__
    # node 2 of window 0 is missing its last two readings: persistence repeats its step 1
    mask = torch.ones(2, 4, 4, dtype=torch.bool)
    mask[0, 2:, 2] = False
    out = Persistence()(x, EDGES, times, query, mask)
    assert torch.equal(out[0, :, 2], x[0, 1, 2].expand(2, 1))
    assert torch.equal(out[0, :, 1], x[0, 3, 1].expand(2, 1))
    out = HistoricalAverage()(x, EDGES, times, query, mask)
    assert torch.allclose(out[0, 0, 2], x[0, :2, 2].mean(0))
    # a node's unobserved readings reach no model: not the node itself, and not its
    # neighbours through a graph layer
    hidden = x.clone()
    hidden[0, 2:, 2] = 99.0
    models += [STGODE(1, 6, 2, 4, 4).double(), LatentGDE(1, 6).double().eval()]
    for model in models:
        assert torch.allclose(model(x, EDGES, times, query, mask),
                              model(hidden, EDGES, times, query, mask)), type(model).__name__
    torch.manual_seed(0)
    sde = StochasticGDEGRU(1, 6, eval_samples=3).double().eval()
    torch.manual_seed(1)
    a = sde(x, EDGES, times, query, mask)
    torch.manual_seed(1)
    assert torch.allclose(a, sde(hidden, EDGES, times, query, mask))


def test_gru_d_decays_missing_inputs_towards_the_mean():
    torch.manual_seed(0)
    model = GRUD(1, 5, 1, mean=0.0).double()
    x = torch.randn(1, 6, 2, 1, dtype=torch.float64)
    mask = torch.ones(1, 6, 2, dtype=torch.bool)
    mask[0, 1:, 0] = False  # node 0 seen once, at t = 0
    with torch.no_grad():
        model.input_rate.fill_(1.0)
        model.input_bias.zero_()
    # node 0's input decays from its reading at t = 0 as exp(-t) towards the mean, 0
    seen_inputs = []
    model.cell.register_forward_pre_hook(lambda m, args: seen_inputs.append(args[0][:, 0]))
    model(x, EDGES[:, :0], torch.arange(6.0), torch.tensor([6.0]), mask)
    decay = torch.exp(-torch.arange(6.0, dtype=torch.float64))
    assert torch.allclose(torch.stack(seen_inputs)[:, 0], x[0, 0, 0, 0] * decay)
    assert torch.allclose(torch.stack(seen_inputs)[:, 1], x[0, :, 1, 0])


def test_graph_ncde_shapes_stats_and_gradient_modes():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, 2, dtype=torch.float64)
    mask = torch.rand(2, 5, 4) > 0.3
    fixed, tight = dict(method="rk4", step_size=0.5), \
        dict(method="dopri5", step_size=None, rtol=1e-10, atol=1e-12)
    results = {}
    for gradient, kw in (("autograd", fixed), ("checkpoint", fixed), ("autograd-tight", tight),
                         ("adjoint", tight)):
        torch.manual_seed(1)
        model = GraphNCDE(2, 6, 3, gradient=gradient.split("-")[0], **kw).double()
        out = model(x, EDGES, torch.arange(5.0), torch.tensor([5.0, 7.0]), mask)
        assert out.shape == (2, 2, 4, 1)
        results[gradient] = out, torch.autograd.grad(out.square().sum(),
                                                     list(model.parameters()))
        assert model.last_solves[0].nfe > 0
    for mode, reference, tol in (("checkpoint", "autograd", 1e-10),
                                 ("adjoint", "autograd-tight", 1e-6)):
        assert torch.allclose(results[mode][0], results[reference][0], atol=tol)
        for a, b in zip(results[mode][1], results[reference][1]):
            assert torch.allclose(a, b, atol=tol), mode
    with pytest.raises(ValueError, match="trained horizons"):
        GraphNCDE(2, 6, 3)(x, EDGES, torch.arange(5.0), torch.tensor([9.0]))


def test_stgode_shapes_branches_and_gradient_modes():
    semantic = (torch.tensor([[0, 3, 1, 2], [3, 0, 2, 1]]), None)
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, 1, dtype=torch.float64)
    mask = torch.rand(2, 5, 4) > 0.3
    fixed = dict(method="rk4", step_size=0.25)
    tight = dict(method="dopri5", step_size=None, rtol=1e-10, atol=1e-12)
    results = {}
    for name, gradient, kw in (("autograd", "autograd", fixed), ("checkpoint", "checkpoint", fixed),
                               ("autograd-tight", "autograd", tight), ("adjoint", "adjoint", tight)):
        torch.manual_seed(1)
        model = STGODE(1, 6, 3, 5, 4, semantic=semantic, gradient=gradient, **kw).double()
        out = model(x, EDGES, torch.arange(5.0), torch.tensor([5.0, 7.0]), mask)
        assert out.shape == (2, 2, 4, 1) and len(model.last_solves) == 4  # 2 branches x 2
        results[name] = out, torch.autograd.grad(out.square().sum(), list(model.parameters()))
    for mode, reference, tol in (("checkpoint", "autograd", 1e-10),
                                 ("adjoint", "autograd-tight", 1e-6)):
        assert torch.allclose(results[mode][0], results[reference][0], atol=tol)
        for a, b in zip(results[mode][1], results[reference][1]):
            assert torch.allclose(a, b, atol=tol), mode
    one = STGODE(1, 6, 3, 5, 4).double()  # the sensor graph alone
    assert len(one.branches) == 1
    assert one(x, EDGES, torch.arange(5.0), torch.tensor([5.0])).shape == (2, 1, 4, 1)
    with pytest.raises(ValueError, match="built for 5 steps of 4 nodes"):
        one(x[:, :4], EDGES, torch.arange(4.0), torch.tensor([4.0]))


def test_latent_gde_elbo_is_the_likelihood_minus_the_kl():
    from torch.distributions import Normal, kl_divergence
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, 2, dtype=torch.float64)
    mask = torch.rand(2, 5, 4) > 0.3
    target = torch.randn(2, 2, 4, 1, dtype=torch.float64)
    seen = torch.rand(2, 2, 4) > 0.2
    model = LatentGDE(2, 6, 3, method="rk4", step_size=0.5).double().eval()
    forecast = model(x, EDGES, torch.arange(5.0), torch.tensor([5.0, 7.0]), mask)
    assert forecast.shape == (2, 2, 4, 1)
    mean, std = model.posterior(x, EDGES, torch.arange(5.0), mask)
    kl = kl_divergence(Normal(mean, std), Normal(0.0, 1.0)).sum()
    recon = model._last["reconstruction"]
    noise = Normal(0.0, model.noise_std)
    loglik = (noise.log_prob(x[..., :1] - recon).squeeze(-1) * mask).sum() \
        + (noise.log_prob(target - forecast).squeeze(-1) * seen).sum()
    expected = (loglik - kl) / (mask.sum() + seen.sum())
    assert torch.allclose(model.elbo(x, mask, forecast, target, seen), expected)
    total, count = model.evidence(x, mask, forecast, target, seen)
    assert int(count) == int(mask.sum() + seen.sum())
    assert torch.allclose(total, loglik - kl)
    # in evaluation the forecast starts from the posterior mean: repeatable; a training
    # forward draws from the posterior
    again = model(x, EDGES, torch.arange(5.0), torch.tensor([5.0, 7.0]), mask)
    assert torch.equal(again, forecast)
    model.train()
    assert not torch.equal(model(x, EDGES, torch.arange(5.0), torch.tensor([5.0, 7.0]), mask),
                           forecast)


def test_latent_gde_ignores_unobserved_readings_and_reconstructs_at_the_observations():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, 1, dtype=torch.float64)
    mask = torch.rand(2, 5, 4) > 0.4
    model = LatentGDE(1, 6, method="rk4", step_size=0.25).double().eval()
    times, query = torch.tensor([0.0, 0.5, 2.0, 2.5, 4.0]), torch.tensor([6.0, 4.5])
    out = model(x, EDGES, times, query, mask)
    elbo = model.elbo(x, mask)
    noisy = torch.where(mask.unsqueeze(-1), x, torch.randn_like(x) * 100)
    assert torch.equal(model(noisy, EDGES, times, query, mask), out)
    assert torch.equal(model.elbo(noisy, mask), elbo)
    # one path through the observation and query times: reconstruction and forecast are
    # the decoder's ODE solution from z0 at those times, in the order asked
    from graphode import solve
    mean, _ = model.posterior(x, EDGES, times, mask)
    grid = [0.0, 0.5, 2.0, 2.5, 4.0, 4.5, 6.0]
    bound = model.field.bind(*batch_graph(EDGES, None, 4, 2), 8, x.dtype, x.device)
    ys = model.decoder(solve(bound, mean, grid, method="rk4", step_size=0.25).ys)
    ys = ys.view(7, 2, 4, 1).transpose(0, 1)
    assert torch.allclose(model._last["reconstruction"], ys[:, :5])
    assert torch.allclose(out, ys[:, [6, 5]])
    with pytest.raises(ValueError, match="at or after the last observation"):
        model(x, EDGES, times, torch.tensor([3.0]))
    with torch.no_grad():
        model.raw_noise.add_(1.0)
    model.reset_parameters()
    assert float(model.noise_std) == pytest.approx(0.5)


def test_latent_gde_gradient_modes():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 4, 1, dtype=torch.float64)
    fixed = dict(method="rk4", step_size=0.5)
    tight = dict(method="dopri5", step_size=None, rtol=1e-10, atol=1e-12)
    results = {}
    for name, gradient, kw in (("autograd", "autograd", fixed), ("checkpoint", "checkpoint", fixed),
                               ("autograd-tight", "autograd", tight), ("adjoint", "adjoint", tight)):
        torch.manual_seed(1)
        model = LatentGDE(1, 5, 3, gradient=gradient, **kw).double().eval()
        out = model(x, EDGES, torch.arange(4.0), torch.tensor([4.0, 6.0]))
        loss = -model.elbo(x, None, out, torch.ones_like(out))
        results[name] = loss, torch.autograd.grad(loss, list(model.parameters()))
    for mode, reference, tol in (("checkpoint", "autograd", 1e-10),
                                 ("adjoint", "autograd-tight", 1e-6)):
        assert torch.allclose(results[mode][0], results[reference][0], atol=tol)
        for a, b in zip(results[mode][1], results[reference][1]):
            assert torch.allclose(a, b, atol=tol), mode


def test_tensor_ode_field_is_its_equation():
    from graphode.nn import TensorODEField
    torch.manual_seed(0)
    n, steps, channels = 4, 5, 3
    field = TensorODEField(n, steps, channels).double()
    with torch.no_grad():
        for p in field.parameters():
            p.add_(0.3 * torch.randn_like(p))
    ei, _ = batch_graph(EDGES, None, n, 2)
    op = gcn_operator(ei, None, 2 * n, torch.float64, torch.device("cpu"))
    h, h0 = torch.randn(2 * n, steps, channels, dtype=torch.float64), \
        torch.randn(2 * n, steps, channels, dtype=torch.float64)
    bound = field.bind(op, h0)
    dense = op.mm(torch.eye(2 * n, dtype=torch.float64))
    rate = torch.sigmoid(field.alpha).repeat(2).view(-1, 1, 1) / 2
    wt = (field.time_weight * field.time_scale.clamp(0, 1)) @ field.time_weight.T
    wc = (field.channel_weight * field.channel_scale.clamp(0, 1)) @ field.channel_weight.T
    expected = rate * torch.einsum("ij,jtc->itc", dense, h) - h \
        + torch.einsum("rtc,ts->rsc", h, wt) - h + torch.einsum("rtc,cd->rtd", h, wc) - h + h0
    torch.testing.assert_close(bound(torch.tensor(0.0), h), expected)


def test_gde_gru_on_a_graph_per_step():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 4, 1, dtype=torch.float64)
    times, query = torch.arange(4.0), torch.tensor([4.0, 5.5])
    model = gde_gru()
    static = model(x, EDGES, times, query)
    same = [batch_graph(EDGES, None, 4, 3)] * 4
    assert torch.allclose(model(x, EDGES, times, query, step_graphs=same), static)
    # each window its own graph at each step (a ring, a path, no edges): a window's forecast
    # is the one it gets alone, so the batch is numbered as batch_graphs says
    ring = torch.tensor([[0, 1, 2, 3, 1, 2, 3, 0], [1, 2, 3, 0, 0, 1, 2, 3]])
    graphs = [[(EDGES, None), (ring, None), (EDGES[:, :0], None)][(b + k) % 3]
              for k in range(4) for b in range(3)]
    per_step = [batch_graphs(graphs[3 * k:3 * k + 3], 4) for k in range(4)]
    out = model(x, EDGES, times, query, step_graphs=per_step)
    for b in range(3):
        alone = model(x[b:b + 1], EDGES, times, query,
                      step_graphs=[graphs[3 * k + b] for k in range(4)])
        assert torch.allclose(out[b], alone[0])
    assert not torch.allclose(out, static)
    # weights where some windows' graphs have them: the others weigh 1, in the same dtype
    weighted = batch_graphs([(EDGES, torch.full((6,), 2.0, dtype=torch.float64)),
                             (ring, None)], 4)
    assert weighted[1].dtype == torch.float64 and weighted[1].tolist() == [2.0] * 6 + [1.0] * 8
    # the last step's graph carries the forecast: changing it changes the forecast, changing
    # the first one changes the state every later step starts from
    for k in (0, 3):
        changed = list(per_step)
        changed[k] = batch_graph(ring, None, 4, 3)
        assert not torch.allclose(model(x, EDGES, times, query, step_graphs=changed), out)
    with pytest.raises(ValueError, match="one graph per observation step"):
        model(x, EDGES, times, query, step_graphs=per_step[:3])
    with pytest.raises(ValueError, match="build each step's graph with batch_graphs"):
        model(x, EDGES, times, query, step_graphs=[(ring + 20, None)] * 4)
