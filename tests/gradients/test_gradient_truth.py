"""Gradient truth: every documented GDEConv configuration, in every gradient mode, with a
method of every family (fixed grid, FSAL adaptive, non-FSAL adaptive), in float64.

The reference is plain autograd through the same solve. Checkpointing differentiates the same
discrete solution, so it must agree to 1e-9; the adjoint solves the continuous adjoint
equation, so it agrees to the solve's tolerance. A combination a mode cannot differentiate
must be refused with a message, never answered with a wrong or missing gradient. Gradients
are compared for x, the edge weights (when learned), and every parameter."""
import pytest
import torch
from torch import nn
from torch_geometric.nn import GATConv, GCNConv

from graphode import odeint, odeint_adjoint, solve
from graphode.nn import GDEConv, LinearDiffusion, SecondOrderGDEConv

DT = torch.float64
N, C, E = 12, 4, 36
# The three families. Checkpointing is exact at any tolerance; the adjoint agrees with
# autograd to the accuracy of the solve, so it runs tighter and is compared to that accuracy.
METHODS = {
    "rk4": dict(method="rk4", step_size=0.05),
    "dopri5": dict(method="dopri5", rtol=1e-10, atol=1e-12),
    "adaptive_heun": dict(method="adaptive_heun", rtol=1e-5, atol=1e-7),
}
ADJOINT = {"adaptive_heun": dict(method="adaptive_heun", rtol=1e-7, atol=1e-9, max_steps=10 ** 5)}
TOL = {"checkpoint": 1e-9, "adjoint": 1e-5}


def settings(method, mode):
    return ADJOINT.get(method, METHODS[method]) if mode == "adjoint" else METHODS[method]


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, C, generator=g, dtype=DT)
    ei = torch.randint(0, N, (2, E), generator=g)
    w = torch.rand(E, generator=g, dtype=DT) + 0.5
    return x, ei, w


class TimeGCN(nn.Module):
    """A time-dependent field: the layer's forward takes ``t``."""

    def __init__(self):
        super().__init__()
        self.conv = GCNConv(C, C)

    def forward(self, x, edge_index, edge_weight=None, t=None):
        return torch.tanh(self.conv(x, edge_index, edge_weight)) * (1.0 + 0.5 * torch.sin(t))


CONFIGS = {
    "plain": lambda kw: GDEConv([GCNConv(C, C), nn.Tanh()], **kw),
    "control-concat": lambda kw: GDEConv([GCNConv(2 * C, C), nn.Tanh()], control="concat", **kw),
    "control-add": lambda kw: GDEConv([GCNConv(C, C), nn.Tanh()], control="add", **kw),
    "augment": lambda kw: GDEConv([GCNConv(C + 2, C + 2), nn.Tanh()], augment=2, **kw),
    "time-dependent": lambda kw: GDEConv(TimeGCN(), **kw),
    "t-eval": lambda kw: GDEConv([GCNConv(C, C), nn.Tanh()], t_eval=[0.3, 0.7, 1.0], **kw),
    "linear-diffusion-add": lambda kw: GDEConv(LinearDiffusion(C), control="add", **kw),
    "second-order": lambda kw: SecondOrderGDEConv([GCNConv(2 * C, C), nn.Tanh()], **kw),
}


def run(config, mode, method, learned_weight):
    torch.manual_seed(0)
    solver = settings(method, "adjoint" if mode == "autograd-for-adjoint" else mode)
    mode = "autograd" if mode == "autograd-for-adjoint" else mode
    layer = CONFIGS[config](dict(solver, gradient=mode)).to(DT)
    x, ei, w = inputs()
    x.requires_grad_(True)
    w = w.requires_grad_(True) if learned_weight else None
    out = layer(x, ei, w)
    weights = torch.linspace(-1.0, 1.0, out.numel(), dtype=DT).view_as(out)
    (out * weights).sum().backward()
    return [x.grad] + ([w.grad] if learned_weight else []) + [p.grad for p in layer.parameters()]


def assert_close(got, ref, tol, what):
    assert len(got) == len(ref)
    for i, (a, b) in enumerate(zip(got, ref)):
        assert a is not None, f"{what}: gradient {i} is missing"
        err = ((a - b).norm() / b.norm().clamp(min=1e-30)).item()
        assert err <= tol, f"{what}: gradient {i} off by {err:.2g} (relative)"


@pytest.mark.parametrize("learned_weight", [False, True], ids=["fixed-graph", "learned-weights"])
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("mode", ["checkpoint", "adjoint"])
def test_gdeconv_gradients_equal_autograd(config, method, mode, learned_weight):
    ref = run(config, "autograd" if mode == "checkpoint" else "autograd-for-adjoint", method,
              learned_weight)
    got = run(config, mode, method, learned_weight)
    assert_close(got, ref, TOL[mode], f"{config}, {method}, gradient={mode}")


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("field", ["dropout", "dropout1d", "functional", "gat-attention"])
def test_random_fields_checkpoint_exactly_and_the_adjoint_refuses(field, method):
    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = GCNConv(C, C)

        def forward(self, x, edge_index, edge_weight=None):
            return torch.tanh(self.conv(nn.functional.dropout(x, 0.3, self.training),
                                        edge_index, edge_weight))

    make = {
        "dropout": lambda: [nn.Dropout(0.3), GCNConv(C, C), nn.Tanh()],
        "dropout1d": lambda: [nn.Dropout1d(0.3), GCNConv(C, C), nn.Tanh()],
        "functional": lambda: Noisy(),
        "gat-attention": lambda: [GATConv(C, C, dropout=0.6), nn.Tanh()],
    }[field]
    x, ei, _ = inputs()
    # Each evaluation draws new masks, so an adaptive solve runs at GDEConv's default
    # tolerances (a tight one would reject step after step); replay is exact at any tolerance.
    solver = dict(method=method, step_size=0.25) if method == "rk4" else dict(method=method)
    grads = {}
    for mode in ("autograd", "checkpoint"):
        torch.manual_seed(0)
        layer = GDEConv(make(), gradient=mode, **solver).to(DT)
        xi = x.clone().requires_grad_(True)
        torch.manual_seed(1)
        layer(xi, ei).square().sum().backward()
        grads[mode] = [xi.grad] + [p.grad for p in layer.parameters()]
    assert_close(grads["checkpoint"], grads["autograd"], 1e-9, f"{field} with checkpoint")
    torch.manual_seed(0)
    layer = GDEConv(make(), gradient="adjoint", **solver).to(DT)
    with pytest.raises(ValueError, match="draws random numbers .* gradient='checkpoint'"):
        layer(x.clone().requires_grad_(True), ei)
    layer.eval()  # no random draws in evaluation: the adjoint is exact then
    layer(x.clone().requires_grad_(True), ei).sum().backward()


@pytest.mark.parametrize("mode", ["adjoint", "checkpoint"])
def test_per_graph_steps_are_refused_outside_autograd(mode):
    with pytest.raises(ValueError, match="per_graph_steps=True needs .* gradient='autograd'"):
        GDEConv(GCNConv(C, C), per_graph_steps=True, gradient=mode)


# ------------------------------------------------------------- solve / odeint with captures
class Captures(nn.Module):
    """A field that reads a tensor from outside, as a field built around a learned embedding
    or a graph operator would."""

    def __init__(self, outside):
        super().__init__()
        self.W = nn.Parameter(torch.randn(C, C, dtype=DT, generator=torch.Generator().manual_seed(3)) * 0.3)
        self.outside = outside

    def forward(self, t, y):
        return torch.tanh(y @ self.W + self.outside)


def captured_grads(mode, listed, method="dopri5", reference=None):
    outside = torch.randn(N, C, dtype=DT, generator=torch.Generator().manual_seed(4))
    outside = (outside * 1.0).requires_grad_(True)
    field = Captures(outside)
    y0 = inputs()[0].requires_grad_(True)
    params = [field.W, outside] if listed else None
    ys = solve(field, y0, [0.0, 0.5, 1.0], gradient=mode, adjoint_params=params,
               **settings(method, "adjoint" if reference == "adjoint" else mode)).ys
    (ys * torch.linspace(-1, 1, ys.numel(), dtype=DT).view_as(ys)).sum().backward()
    return [y0.grad, outside.grad, field.W.grad]


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("mode", ["adjoint", "checkpoint"])
def test_captured_tensors_are_refused_unless_listed(mode, method):
    with pytest.raises(ValueError, match=r"reads 1 tensor\(s\) that require a gradient .* "
                                         r"adjoint_params"):
        captured_grads(mode, listed=False, method=method)
    ref = captured_grads("autograd", listed=False, method=method, reference=mode)
    assert_close(captured_grads(mode, listed=True, method=method), ref, TOL[mode],
                 f"captured tensor in adjoint_params, gradient={mode}")


def test_odeint_adjoint_refuses_a_captured_tensor_and_takes_it_in_adjoint_params():
    outside = torch.randn(N, C, dtype=DT, requires_grad=True)
    field = Captures(outside)
    y0 = inputs()[0].requires_grad_(True)
    t = torch.linspace(0, 1, 3, dtype=DT)
    with pytest.raises(ValueError, match="not inputs of the solve"):
        odeint_adjoint(field, y0, t)
    kw = dict(rtol=1e-10, atol=1e-12)
    odeint_adjoint(field, y0, t, adjoint_params=[field.W, outside], **kw).sum().backward()
    got = [y0.grad.clone(), outside.grad.clone(), field.W.grad.clone()]
    for p in (y0, outside, field.W):
        p.grad = None
    odeint(field, y0, t, **kw).sum().backward()
    assert_close(got, [y0.grad, outside.grad, field.W.grad], 1e-6, "odeint_adjoint")


def test_an_upstream_graph_is_not_mistaken_for_a_capture():
    """y0 produced by an encoder, and a control input that is its output, stay legal."""
    encoder = nn.Linear(C, C).to(DT)
    layer = GDEConv([GCNConv(2 * C, C), nn.Tanh()], control="concat", gradient="adjoint").to(DT)
    x, ei, _ = inputs()
    layer(encoder(x), ei).sum().backward()
    assert encoder.weight.grad is not None and encoder.weight.grad.abs().sum() > 0
