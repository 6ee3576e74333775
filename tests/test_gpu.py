"""GPU checks: they run where CUDA is present and are skipped (with the reason) elsewhere."""
import pytest
import torch

from graphode import solve
from graphode.nn import GDEConv

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_fixed_step_solve_does_not_synchronise():
    from torch_geometric.nn import GCNConv
    x = torch.randn(2708, 64, device="cuda")
    ei = torch.randint(0, 2708, (2, 10556), device="cuda")
    conv = GCNConv(64, 64, cached=True).cuda()
    conv(x, ei)  # build the conv's cache before the guarded region
    field = lambda t, h: torch.tanh(conv(h, ei))  # noqa: E731
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        ys = solve(field, x, [0.0, 1.0], method="rk4", step_size=0.1, check_finite=False).ys
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert ys.shape == (2, 2708, 64) and torch.isfinite(ys).all()


@cuda
def test_gdeconv_on_cuda_matches_cpu():
    from torch_geometric.nn import GCNConv
    x = torch.randn(100, 8, dtype=torch.float64)
    ei = torch.randint(0, 100, (2, 400))
    layer = GDEConv(GCNConv(8, 8).double(), method="rk4", step_size=0.1)
    cpu = layer(x, ei)
    gpu = layer.cuda()(x.cuda(), ei.cuda())
    assert (gpu.cpu() - cpu).abs().max() <= 1e-10


@cuda
def test_reduce_overhead_captures_the_solve_and_matches_eager():
    from torch_geometric.nn import GCNConv
    torch.manual_seed(0)
    x = torch.randn(2708, 64, device="cuda", requires_grad=True)
    ei = torch.randint(0, 2708, (2, 10556), device="cuda")
    conv = GCNConv(64, 64).cuda()
    kwargs = dict(method="rk4", step_size=0.1, gradient="autograd", check_finite=False)
    graphed = GDEConv([conv, torch.nn.Tanh()], compile="reduce-overhead", **kwargs)
    eager = GDEConv([conv, torch.nn.Tanh()], **kwargs)
    for _ in range(3):  # warm-up, record, replay
        out = graphed(x, ei)
        (g,) = torch.autograd.grad(out.pow(2).sum(), x)
        out, g = out.detach().clone(), g.clone()
    ref = eager(x, ei)
    (g_ref,) = torch.autograd.grad(ref.pow(2).sum(), x)
    assert (out - ref).abs().max() <= 1e-4
    assert (g - g_ref).abs().max() <= 1e-3 * g_ref.abs().max()


@cuda
def test_expm_on_cuda_matches_cpu():
    from torch_geometric.utils import to_undirected

    from graphode.nn import LinearDiffusion
    x = torch.randn(200, 8, dtype=torch.float64)
    ei = to_undirected(torch.randint(0, 200, (2, 800)))
    layer = GDEConv(LinearDiffusion(-1, weight=False, rate=50.0), t_span=(0.0, 2.0),
                    method="expm", gradient="autograd", rtol=1e-9, atol=1e-12)
    cpu = layer(x, ei)
    gpu = layer.cuda()(x.cuda(), ei.cuda())
    assert (gpu.cpu() - cpu).abs().max() <= 1e-10
