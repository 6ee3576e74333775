"""Regressions of the edge cases a hostile user found: each bad input gets a clear error that
names the argument before any long work starts, and nothing changes meaning silently."""
import pytest
import torch
from torch_geometric.nn import GCNConv

import graphode
from graphode import SolveError, odeint, solve
from graphode.nn import GDEConv

Y0 = torch.randn(4, 3)


def test_a_fixed_grid_obeys_max_steps_before_building_it():
    with pytest.raises(ValueError, match=r"step_size=1e-09 over \[0, 1\] needs 1000000000 steps, "
                                         r"more than max_steps=10000"):
        solve(lambda t, y: -y, Y0, [0.0, 1.0], method="euler", step_size=1e-9)
    layer = GDEConv(GCNConv(3, 3), method="rk4", step_size=1e-8)
    with pytest.raises(ValueError, match="max_steps"):
        layer(Y0, torch.tensor([[0, 1], [1, 2]]))
    # raising max_steps is the way to ask for a long grid
    assert solve(lambda t, y: -y, Y0, [0.0, 1.0], method="euler", step_size=1e-4,
                 max_steps=10_000).ys.shape == (2, 4, 3)


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
@pytest.mark.parametrize("where", ["weight", "bias-inf", "y0"])
def test_non_finite_parameters_are_named_not_called_stiff(method, where):
    field = torch.nn.Linear(3, 3)
    y0 = Y0.clone()
    with torch.no_grad():
        if where == "weight":
            field.weight[0, 0] = float("nan")
        elif where == "bias-inf":
            field.bias[1] = float("inf")
        else:
            y0[0, 0] = float("nan")
    wrapped = torch.nn.Module()
    wrapped.lin = field
    wrapped.forward = lambda t, y: field(y)
    kw = dict(step_size=0.1) if method == "rk4" else {}
    with pytest.raises(SolveError, match="non-finite") as err:
        solve(wrapped, y0, [0.0, 1.0], method=method, **kw)
    assert "stiff" not in str(err.value)
    named = {"weight": "parameter 'lin.weight'", "bias-inf": "parameter 'lin.bias'", "y0": "y0"}
    assert f"Non-finite before the solve: {named[where]}" in str(err.value)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_states_are_refused_up_front(dtype):
    with pytest.raises(TypeError, match=f"y0 has dtype {dtype}.*torch.autocast"):
        solve(lambda t, y: -y, Y0.to(dtype), [0.0, 1.0])
    with pytest.raises(TypeError, match=f"x has dtype {dtype}"):
        GDEConv(GCNConv(3, 3))(Y0.to(dtype), torch.tensor([[0, 1], [1, 2]]))


def test_a_norm_must_return_a_scalar():
    with pytest.raises(ValueError, match=r"norm must return a real scalar .* shape \(4, 3\)"):
        solve(lambda t, y: -y, Y0, [0.0, 1.0], norm=lambda x: x.abs())
    with pytest.raises(ValueError, match="norm must return a real scalar"):
        odeint(lambda t, y: -y, Y0, torch.tensor([0.0, 1.0]), options=dict(norm=lambda x: x[0]))


def test_a_field_that_changes_its_output_shape_or_dtype_is_named():
    calls = [0]

    def shrinking(t, y):
        calls[0] += 1
        return -y if calls[0] < 5 else -y[:1]  # would broadcast silently
    with pytest.raises(ValueError, match=r"shape \(1, 3\) for a state of shape \(4, 3\)"):
        solve(shrinking, Y0, [0.0, 1.0])
    with pytest.raises(TypeError, match="func returned dtype torch.float64 for a state of dtype "
                                        "torch.float32"):
        solve(lambda t, y: -y.double(), Y0, [0.0, 1.0])


@pytest.mark.parametrize("t_eval", [[0.5, 0.2], [0.2, 0.2, 0.7]])
def test_unsorted_or_repeated_t_eval_is_refused_at_construction(t_eval):
    with pytest.raises(ValueError, match="t_eval must run from t_span"):
        GDEConv(GCNConv(3, 3), t_eval=t_eval)


def test_graph_errors_name_the_argument():
    x, ei = torch.randn(5, 3), torch.tensor([[0, 1, 2], [1, 2, 3]])
    layer = GDEConv(GCNConv(3, 3), method="rk4", step_size=0.5)
    with pytest.raises(ValueError, match=r"edge_weight must have one weight per edge, shape \(3,\)"):
        layer(x, ei, torch.rand(4))
    with pytest.raises(TypeError, match="x has dtype torch.float64 but the vector field's "
                                        "parameters are torch.float32"):
        layer(x.double(), ei)
    with pytest.raises(ValueError, match=r"edge_index holds node index 7 \(in column 1\), but x "
                                         r"has 5 nodes"):
        layer(x, torch.tensor([[0, 7, 2], [1, 2, 3]]))
    with pytest.raises(ValueError, match="edge_index is on meta but x is on cpu"):
        layer(x, ei.to("meta"))
    # validate=False skips the checks (the caller vouches for the graph)
    assert GDEConv(GCNConv(3, 3), validate=False, method="rk4", step_size=0.5)(x, ei).shape == (5, 3)


def test_the_adjoint_keeps_learned_edge_weights_in_the_graph():
    x, ei = torch.randn(6, 3, dtype=torch.float64), torch.tensor([[0, 1, 2, 4], [1, 2, 3, 5]])
    w = torch.rand(4, dtype=torch.float64, requires_grad=True)
    GDEConv(GCNConv(3, 3).double())(x, ei, w).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_odeint_is_exported_from_the_compat_module():
    assert graphode.odeint is graphode.compat.odeint
