"""Shared helpers: paired alternating timing and the standard workloads of BENCHMARKS.md."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics as st
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch

RESULTS = Path(__file__).resolve().parent / "results"
# ``python -m benchmarks --quick`` writes results/<name>_quick.*, leaving full runs in place.
SUFFIX = {"value": ""}
WRITTEN: List[Path] = []  # the markdown tables written so far in this process


def results_name(name: str) -> str:
    """The file stem a benchmark's results go to."""
    return name + SUFFIX["value"]
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


def environment() -> Dict[str, object]:
    """What a reader needs to judge a figure: versions, threads, allocator settings."""
    info = {
        "torch": torch.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads(), "machine": platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "allocator_env_set": all(os.environ.get(k) == v for k, v in ALLOCATOR.items()),
    }
    for baseline in ("torchdiffeq", "torchode"):
        try:
            info[baseline] = importlib.import_module(baseline).__version__
        except ImportError:
            info[baseline] = None
    return info


def print_environment() -> None:
    env = environment()
    print(" ".join(f"{k}={v}" for k, v in env.items()))
    if not env["allocator_env_set"] and not env["cuda"]:
        print("note: set " + " ".join(f"{k}={v}" for k, v in ALLOCATOR.items())
              + " for stable CPU timings (see BENCHMARKS.md)")


def bench_args(doc: str, argv=None, **extra) -> "argparse.Namespace":
    """The flags every benchmark takes (``--reps``, ``--device``) plus ``extra`` ones; prints
    the environment."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15, help="alternating pairs to time")
    parser.add_argument("--device", default="cpu")
    for flag, kwargs in extra.items():
        parser.add_argument(flag, **kwargs)
    args = parser.parse_args(argv)
    args.device = torch.device(args.device)
    torch.manual_seed(0)
    print_environment()
    return args


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CPU = torch.device("cpu")


def paired(a: Callable[[], object], b: Callable[[], object], reps: int = 15, warmup: int = 2,
           device: torch.device = CPU) -> Dict[str, float]:
    """Time ``a`` and ``b`` alternately; the median of the per-pair ratios a/b, and the spread."""
    for _ in range(warmup):
        a(), b()
    ta: List[float] = []
    tb: List[float] = []
    for _ in range(reps):
        for fn, out in ((a, ta), (b, tb)):
            synchronize(device)
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            out.append(time.perf_counter() - t0)
    ratios = [x / y for x, y in zip(ta, tb)]
    return {"ratio": st.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "ms_graphode": st.median(ta) * 1e3, "ms_baseline": st.median(tb) * 1e3}


def random_graph(num_nodes: int, num_edges: int, seed: int = 0) -> torch.Tensor:
    """A random directed edge_index of the given size (reproducible)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_nodes, (2, num_edges), generator=g)


def cora_graph():
    """Cora's edge_index, or a random graph of its size; and which one it is."""
    try:
        from graphode.data import load_planetoid
        return load_planetoid("Cora").edge_index, "Cora"
    except Exception:  # no data and no network: the benchmark still runs
        return random_graph(2708, 10556), "random graph of Cora's size"


class CallCounter(torch.nn.Module):
    """Wraps a vector field ``f(t, h)`` and counts its calls (the NFE either library makes)."""

    def __init__(self, field: torch.nn.Module):
        super().__init__()
        self.field = field
        self.calls = 0

    def forward(self, t, h):
        self.calls += 1
        return self.field(t, h)

    def count(self, fn: Callable[[], object]) -> int:
        self.calls = 0
        fn()
        return self.calls


def write_results(name: str, rows: List[Dict[str, object]], columns: List[str]) -> None:
    """Write ``results/<name>.json`` and ``results/<name>.md`` (a markdown table)."""
    RESULTS.mkdir(exist_ok=True)
    name = results_name(name)
    payload = {"environment": environment(), "rows": rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    WRITTEN.append(RESULTS / f"{name}.md")
    print("\n".join(lines))


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.2f}"
    return str(v)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or ``None`` (with a note) without it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no plot: pip install matplotlib")
        return None
    return plt
