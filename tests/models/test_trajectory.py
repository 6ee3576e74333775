"""TrajectoryGDE and its radius-graph field."""
import pytest
import torch

from graphode.models import RadiusInteraction, TrajectoryGDE, pad_windows


def test_the_radius_field_is_its_pairwise_sum():
    torch.manual_seed(0)
    field = RadiusInteraction(hidden=3, width=5, radius=1.5).double()
    state = torch.randn(2, 4, 7, dtype=torch.float64) * 2
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    out = field.bind(mask)(torch.tensor(0.0), state)
    p, v, h = state[..., :2], state[..., 2:4], state[..., 4:]
    for b in range(2):
        for i in range(4):
            if not mask[b, i]:
                assert (out[b, i] == 0).all()  # padding does not move
                continue
            push = torch.zeros(2, dtype=torch.float64)
            for j in range(4):
                if j == i or not mask[b, j]:
                    continue
                rel = torch.cat([p[b, j] - p[b, i], v[b, j] - v[b, i], h[b, i]])
                w = torch.sigmoid((1.5 - (p[b, j] - p[b, i]).norm()) / field.softness)
                push = push + w * field.pair_out(torch.tanh(field.pair_in(rel)))
            accel = field.max_accel * torch.tanh(field.own(torch.cat([v[b, i], h[b, i]])) + push)
            assert torch.allclose(out[b, i], torch.cat([v[b, i], accel, torch.zeros(3)]))


def test_far_apart_agents_do_not_interact_and_shapes():
    torch.manual_seed(1)
    model = TrajectoryGDE(hidden=4, width=8).double()
    walk = torch.arange(8.0, dtype=torch.float64).view(1, 8, 1) * torch.tensor([0.3, 0.0])
    a, b = walk, walk + torch.tensor([0.0, 50.0])  # 50 m apart
    pos, mask = pad_windows([torch.cat([a, b]), a], obs=8)
    out = model(pos, mask, 12)
    assert out.shape == (2, 2, 12, 2) and model.stats.nfe > 0
    # agent a alone (window 1) moves as with a far-away companion (window 0)
    assert torch.allclose(out[0, 0], out[1, 0], atol=1e-12)
    with pytest.raises(ValueError, match=r"observed must have shape \(batch, agents"):
        model(pos[:, :, :1], mask, 12)


@pytest.mark.parametrize("mode", ["checkpoint", "adjoint"])
def test_trajectory_gradients_equal_autograd(mode):
    torch.manual_seed(2)
    pos = torch.randn(2, 3, 4, 2, dtype=torch.float64).cumsum(2) * 0.3
    mask = torch.tensor([[True, True, False], [True, True, True]])
    grads = {}
    for gradient in ("autograd", mode):
        torch.manual_seed(3)
        kw = dict(method="rk4", step_size=0.5) if mode == "checkpoint" else \
            dict(method="dopri5", step_size=None, rtol=1e-10, atol=1e-12)
        model = TrajectoryGDE(hidden=3, width=6, gradient=gradient, **kw).double()
        out = model(pos, mask, 3)
        grads[gradient] = torch.autograd.grad(out.square().sum(), list(model.parameters()))
    for x, y in zip(grads["autograd"], grads[mode]):
        assert torch.allclose(x, y, atol=1e-7)
