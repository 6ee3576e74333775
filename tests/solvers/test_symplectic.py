"""Symplectic Euler and leapfrog: orders, energy conservation, gradients, GraphCON's scheme."""
import math

import pytest
import torch
from torch_geometric.nn import GCNConv

from graphode import solve
from graphode.nn import GraphCONCoupling, GraphVectorField, HamiltonianForce, SecondOrderGDEConv
from graphode.nn.augment import _SecondOrderField
from graphode.solvers import Symplectic

D = torch.float64


def oscillator(t, y):
    return torch.cat([y[..., 1:], -y[..., :1]], -1)


@pytest.mark.parametrize("method, order", [("symplectic_euler", 1), ("leapfrog", 2)])
def test_order_of_convergence_on_the_harmonic_oscillator(method, order):
    y0 = torch.tensor([[1.0, 0.0]], dtype=D)
    exact = torch.tensor([[math.cos(2.0), -math.sin(2.0)]], dtype=D)
    errors = [float((solve(oscillator, y0, [0.0, 2.0], method=method, step_size=h).ys[-1]
                     - exact).abs().max()) for h in (0.1, 0.05, 0.025)]
    slopes = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(abs(s - order) < 0.3 for s in slopes), slopes


@pytest.fixture(scope="module")
def hamiltonian():
    """A separable graph Hamiltonian on a random undirected graph, and its first-order system."""
    torch.manual_seed(0)
    n, c = 20, 4
    ei = torch.randint(0, n, (2, 60))
    ei = torch.cat([ei, ei.flip(0)], 1)
    force = HamiltonianForce(c).double()
    with torch.no_grad():
        force.weight.mul_(2.0)
    field = GraphVectorField(force).bind(ei, None, n, D, torch.device("cpu"))
    z0 = torch.randn(n, 2 * c, dtype=D)
    return force, ei, _SecondOrderField(field, c), z0


def energy_errors(hamiltonian, method, h, steps):
    force, ei, system, z0 = hamiltonian
    with torch.no_grad():
        ys = solve(system, z0, [i * h for i in range(steps + 1)], method=method, step_size=h).ys
        energy = torch.stack([force.energy(z, ei) for z in ys])
    return (energy - energy[0]).abs() / energy[0].abs()


def test_leapfrog_conserves_the_graph_hamiltonian_to_1e_6_over_1000_steps(hamiltonian):
    errors = energy_errors(hamiltonian, Symplectic("leapfrog", separable=True), 1e-3, 1000)
    assert errors.max() < 1e-6


def test_leapfrog_energy_error_stays_bounded_where_rk4_drifts(hamiltonian):
    # 4,000 large steps: leapfrog's error oscillates within a bound; rk4 dissipates the
    # energy step after step.
    leapfrog = energy_errors(hamiltonian, Symplectic("leapfrog", separable=True), 0.5, 4000)
    rk4 = energy_errors(hamiltonian, "rk4", 0.5, 4000)
    quarters = [slice(i * 1000, (i + 1) * 1000 + 1) for i in range(4)]
    assert leapfrog[quarters[3]].max() <= 1.5 * leapfrog[quarters[0]].max()
    rk4_maxima = [float(rk4[q].max()) for q in quarters]
    assert rk4_maxima == sorted(rk4_maxima) and rk4[-1] > 0.5
    assert rk4[-1] > 5 * leapfrog.max()


def test_the_force_is_minus_the_gradient_of_the_potential(hamiltonian):
    force, ei, system, z0 = hamiltonian
    z = z0.clone().requires_grad_()
    grad, = torch.autograd.grad(force.energy(z, ei), z)
    assert torch.allclose(force(z0, ei), -grad[:, :4], atol=1e-12)


def test_separable_reuse_gives_the_same_steps_with_fewer_evaluations(hamiltonian):
    _, _, system, z0 = hamiltonian
    plain = solve(system, z0, [0.0, 0.3, 1.0], method="leapfrog", step_size=0.1)
    shared = solve(system, z0, [0.0, 0.3, 1.0], method=Symplectic("leapfrog", separable=True),
                   step_size=0.1)
    assert torch.allclose(plain.ys, shared.ys, atol=1e-13)
    assert shared.stats.nfe < plain.stats.nfe


@pytest.mark.parametrize("method", ["symplectic_euler", "leapfrog"])
def test_checkpoint_gradients_equal_autograd(method):
    w = torch.tensor(1.3, dtype=D, requires_grad=True)
    y0 = torch.tensor([[1.0, 0.5], [0.2, -0.3]], dtype=D, requires_grad=True)

    def pendulum(t, y):  # damped, time-dependent: not separable
        return torch.cat([y[..., 1:], -w * torch.sin(y[..., :1]) - 0.1 * y[..., 1:] * t], -1)

    grads = {}
    for mode in ("autograd", "checkpoint"):
        sol = solve(pendulum, y0, [0.0, 0.75, 2.0], method=method, step_size=0.1,
                    gradient=mode, adjoint_params=[w])
        grads[mode] = torch.autograd.grad(sol.ys.pow(2).sum(), [y0, w])
    for a, b in zip(grads["autograd"], grads["checkpoint"]):
        assert torch.allclose(a, b, atol=1e-12)


def test_graphcon_under_symplectic_euler_is_the_papers_recursion():
    torch.manual_seed(1)
    n, c, dt, steps = 12, 5, 0.5, 6
    ei = torch.randint(0, n, (2, 30))
    conv = GCNConv(c, c).double()
    ode = SecondOrderGDEConv(GraphCONCoupling(conv, gamma=0.7, alpha=0.3), t_span=(0.0, dt * steps),
                             method="symplectic_euler", step_size=dt, gradient="autograd")
    x0 = torch.randn(n, c, dtype=D)
    x, y = x0, x0
    for _ in range(steps):  # Rusch et al.'s explicit scheme
        y = y + dt * (torch.relu(conv(x, ei)) - 0.7 * x - 0.3 * y)
        x = x + dt * y
    assert torch.allclose(ode(x0, ei, velocity=x0), x, atol=1e-12)


def test_graphcon_with_unit_damping_and_force_at_unit_steps_is_a_deep_gcn():
    # alpha = gamma = 1 and dt = 1 cancel the velocity and the position inside each step:
    # X_{n+1} = relu(F(X_n)), a plain stack of one shared GCN layer (why it oversmooths)
    torch.manual_seed(0)
    n, c = 30, 8
    ei = torch.randint(0, n, (2, 80))
    conv = GCNConv(c, c).double()
    ode = SecondOrderGDEConv(GraphCONCoupling(conv, gamma=1.0, alpha=1.0), t_span=(0.0, 5.0),
                             method="symplectic_euler", step_size=1.0, gradient="autograd")
    x0 = torch.randn(n, c, dtype=D)
    x = x0
    for _ in range(5):
        x = torch.relu(conv(x, ei))
    assert torch.allclose(ode(x0, ei, velocity=x0), x, atol=1e-12)


def test_graphcon_dropout_draws_a_mask_per_step_and_replays_under_checkpoint():
    torch.manual_seed(2)
    n, c, dt, steps, p = 12, 5, 0.5, 6, 0.4
    ei = torch.randint(0, n, (2, 30))
    conv = GCNConv(c, c).double()
    field = GraphCONCoupling(conv, gamma=0.7, alpha=0.3, residual=True, dropout=p)
    x0 = torch.randn(n, c, dtype=D)

    def ode(gradient):
        return SecondOrderGDEConv(field, t_span=(0.0, dt * steps), method="symplectic_euler",
                                  step_size=dt, gradient=gradient)

    field.residual.double()
    torch.manual_seed(5)
    out = ode("autograd")(x0, ei, velocity=x0)
    torch.manual_seed(5)  # the same draws, one mask per step on the positions the coupling reads
    x, y = x0, x0
    for _ in range(steps):
        seen = torch.nn.functional.dropout(x, p, True)
        y = y + dt * (torch.relu(conv(seen, ei) + field.residual(seen)) - 0.7 * x - 0.3 * y)
        x = x + dt * y
    assert torch.allclose(out, x, atol=1e-12)
    layer = ode("autograd")
    assert not torch.allclose(layer(x0, ei, velocity=x0), out)  # fresh draws
    # the positions' rate is the velocity: one evaluation of the coupling per step
    assert layer.stats.nfe == steps
    grads = {}
    for mode in ("autograd", "checkpoint"):
        torch.manual_seed(7)
        w = conv.lin.weight
        grads[mode] = torch.autograd.grad(ode(mode)(x0, ei, velocity=x0).pow(2).sum(), w)[0]
    assert torch.allclose(grads["autograd"], grads["checkpoint"], atol=1e-10)
    field.eval()  # no dropout in evaluation: deterministic
    assert torch.equal(ode("autograd")(x0, ei, velocity=x0), ode("autograd")(x0, ei, velocity=x0))
    with pytest.raises(ValueError, match=r"dropout .* give a number in \[0, 1\)"):
        GraphCONCoupling(conv, dropout=1.0)


def test_bad_settings_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="not an even number: give split="):
        solve(oscillator, torch.zeros(1, 3), [0.0, 1.0], method="leapfrog", step_size=0.1)
    with pytest.raises(ValueError, match="must leave both positions and momenta"):
        solve(oscillator, torch.zeros(1, 2), [0.0, 1.0], method=Symplectic(split=2),
              step_size=0.1)
    with pytest.raises(ValueError, match="scheme must be one of"):
        Symplectic("verlet")
    with pytest.raises(ValueError, match="supports gradient='autograd' or 'checkpoint'"):
        solve(oscillator, torch.zeros(1, 2), [0.0, 1.0], method="leapfrog", step_size=0.1,
              gradient="adjoint")
    # one position, two momenta: q' = p_1, p' = (-q, 0)
    uneven = solve(lambda t, y: torch.cat([y[..., 1:2], -y[..., :1], 0 * y[..., :1]], -1),
                   torch.tensor([[1.0, 0.0, 2.0]], dtype=D), [0.0, 1.0],
                   method=Symplectic(split=1), step_size=0.01)
    assert abs(float(uneven.ys[-1, 0, 0]) - math.cos(1.0)) < 1e-4
    assert float(uneven.ys[-1, 0, 2]) == 2.0
