import os

import pytest
import torch

# Under pytest-xdist (`pytest -n auto`, as the README and CI run the suite) each worker computes
# on one thread: two workers on two cores, not four threads contending for them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


def stable_matrix(n=8, seed=0, dtype=torch.float64):
    """A random stable, non-normal matrix (eigenvalues in the left half plane)."""
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, generator=g, dtype=dtype)
    return -(M @ M.T) / n - 0.5 * torch.eye(n, dtype=dtype) + (M - M.T) / n
