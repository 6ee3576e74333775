"""Smoke test of an installed graphode (run outside the source tree, against the wheel)."""
import os
import sys
from pathlib import Path

import torch
from torch_geometric.nn import GCNConv

import graphode
from graphode import odeint
from graphode.nn import GDEConv

here = Path(graphode.__file__).resolve()
assert "site-packages" in here.parts, f"imported the source tree ({here}), not the wheel"
expected = sys.argv[1] if len(sys.argv) > 1 else graphode.__version__
assert graphode.__version__ == expected, (graphode.__version__, expected)

y = odeint(lambda t, y: -y, torch.ones(3, dtype=torch.float64),
           torch.tensor([0.0, 1.0], dtype=torch.float64), rtol=1e-10, atol=1e-12)
assert torch.allclose(y[-1], torch.full((3,), torch.e ** -1, dtype=torch.float64), atol=1e-8)

# An installed graphode keeps its downloads in the user cache, never inside site-packages.
from graphode.data import default_root  # noqa: E402

assert "site-packages" not in default_root().parts, default_root()
assert default_root().name == "graphode", default_root()
if os.environ.get("GRAPHODE_DATA"):  # CI points it at the shared data: found from the wheel
    from graphode.data import load_planetoid  # noqa: E402
    assert load_planetoid("Cora", download=False).num_nodes == 2708

edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
gde = GDEConv(GCNConv(4, 4), t_span=(0.0, 1.0), method="dopri5", gradient="adjoint")
x = torch.randn(3, 4, requires_grad=True)
gde(x, edge_index).sum().backward()
assert x.grad is not None and torch.isfinite(x.grad).all() and gde.stats.nfe_backward > 0
print(f"graphode {graphode.__version__} wheel OK ({here.parent})")
