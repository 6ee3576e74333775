"""Peak memory of one forward + backward against the number of steps, per gradient mode.

Each measurement is a fresh subprocess (peak RSS from resource.getrusage): rk4 with 20, 100
and 400 fixed steps on a 100,000 x 32 state with a tanh(Linear(32, 32)) field. The adjoint
should stay flat, checkpointing grow by one state (12.8 MB) per step, autograd by the whole
graph of a step. Autograd at 400 steps would need about 40 GB and is skipped.

The children run with a fixed ``MALLOC_MMAP_THRESHOLD_=65536`` so that every large tensor is its
own mapping and peak RSS is the live memory: with glibc's adaptive threshold, freed stage
tensors fragment the heap and checkpointing appeared to grow by 1.8 states per step instead
of the one it keeps.

    python -m benchmarks.gradient_memory
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from benchmarks.common import RESULTS, print_environment, pyplot, results_name, write_results

CHILD = r"""
import resource, sys, torch, graphode
steps, mode, nodes = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
torch.manual_seed(0)
class Field(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(32, 32)
    def forward(self, t, y):
        return torch.tanh(self.lin(y))
field = Field()
y0 = torch.randn(nodes, 32, requires_grad=True)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sol = graphode.solve(field, y0, [0.0, 1.0], method="rk4", gradient=mode, step_size=1.0 / steps)
sol.ys[-1].sum().backward()
print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

SKIP = {("autograd", 400)}


def measure(steps: int, mode: str, nodes: int) -> tuple:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", CHILD, str(steps), mode, str(nodes)],
                         capture_output=True,
                         text=True, timeout=900, check=True, env=env)
    base, peak = (int(v) / 1024 for v in out.stdout.split())
    return base, peak


def plot(rows, path) -> None:
    """Peak RSS against steps, one line per gradient mode (``results/gradient_memory.png``)."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5, 4))
    for mode, style in (("adjoint", "o-"), ("checkpoint", "s--"), ("autograd", "^:")):
        points = [(r["steps"], r["peak_MiB"] / 1024) for r in rows if r["mode"] == mode]
        if points:
            ax.plot(*zip(*points), style, label=mode)
    ax.set(xlabel="rk4 steps", ylabel="peak RSS, GiB", title="one forward + backward")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 100, 400])
    parser.add_argument("--nodes", type=int, default=100_000, help="rows of the state")
    parser.add_argument("--replot", action="store_true",
                        help="redraw the PNG from the last results JSON, measuring nothing")
    args = parser.parse_args(argv)
    name = results_name("gradient_memory")
    if args.replot:
        rows = json.loads((RESULTS / f"{name}.json").read_text())["rows"]
        plot(rows, RESULTS / f"{name}.png")
        return rows
    state_mb = args.nodes * 32 * 4 / 2 ** 20
    print_environment()
    rows = []
    for mode in ("adjoint", "checkpoint", "autograd"):
        peaks = {}
        for steps in args.steps:
            if (mode, steps) in SKIP:
                continue
            base, peak = measure(steps, mode, args.nodes)
            peaks[steps] = peak
            rows.append({"mode": mode, "steps": steps, "peak_MiB": peak,
                         "above_import_MiB": peak - base,
                         "vs_fewest_steps": peak / peaks[min(peaks)]})
        if len(peaks) > 1:
            lo, hi = min(peaks), max(peaks)
            per_step = (peaks[hi] - peaks[lo]) / (hi - lo)
            print(f"{mode}: {per_step:.1f} MiB per extra step (one state is {state_mb:.1f} MiB)")
    write_results("gradient_memory", rows,
                  ["mode", "steps", "peak_MiB", "above_import_MiB", "vs_fewest_steps"])
    plot(rows, RESULTS / f"{name}.png")
    return rows


if __name__ == "__main__":
    main()
