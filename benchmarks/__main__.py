"""Every benchmark of BENCHMARKS.md in one run, each side by side with torchdiffeq:

    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 python -m benchmarks
    python -m benchmarks --quick              # fewer repetitions and sizes, a few minutes on CPU
    python -m benchmarks --device cuda        # the GPU run

Each benchmark writes ``benchmarks/results/<name>.json`` and ``.md`` (``<name>_quick`` with
``--quick``); this entry point adds ``summary_<device>[_quick].md``, their tables in one file.
"""
from __future__ import annotations

import argparse
import time

from benchmarks import (
    common,
    compiled,
    gradient_memory,
    per_graph,
    scaling,
    sde,
    solver_overhead,
    stiff,
    stiff_classifier,
    symplectic,
    training_step,
)


def plan(quick: bool, device: str):
    """(name, module, argv) of every benchmark, quick or full."""
    dev = ["--device", device]
    reps = ["--reps", "3" if quick else "15"]
    return [
        ("solver overhead (Cora-sized field)", solver_overhead, reps + dev),
        ("training step (Cora, encoder + GDE + decoder)", training_step, reps + dev),
        ("per-graph step control (64 graphs of mixed stiffness)", per_graph,
         reps + dev + ["--graphs", "64"]),
        ("stiff graph diffusion (method='auto' against dopri5)", stiff,
         ["--reps", "1" if quick else "3"] + dev
         + (["--rates", "100", "1000", "--graphs", "16"] if quick else [])),
        ("GRAND-style classifier to t = 18 (implicit against explicit)", stiff_classifier,
         dev + (["--epochs", "10", "--seeds", "1"] if quick else [])),
        ("graph SDE against torchsde (Cora-sized, diagonal noise)", sde,
         ["--reps", "3" if quick else "7"] + dev
         + (["--methods", "euler", "reversible_heun", "adjoint"] if quick else [])),
        ("GraphCON's second-order flow (symplectic Euler, kinematic drifts)", symplectic,
         reps + dev),
        ("scaling with edges", scaling,
         reps + dev + ["--nodes"] + (["10000", "100000"] if quick else
                                     ["10000", "100000", "1000000"])),
    ] + ([] if device != "cpu" else [
        ("gradient memory against steps (peak RSS of fresh processes)", gradient_memory,
         ["--steps", "10", "40", "--nodes", "20000"] if quick else ["--steps", "20", "100", "400"])
    ]) + ([] if quick else [
        # Left out of --quick: a cold Inductor cache alone takes about 2 minutes on 2 cores.
        ("compiled fixed-step solves (torch.compile; torchode where installed)", compiled,
         reps + dev),
    ])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run, a few minutes on CPU")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="+", help="run only the benchmarks whose module "
                                                  "names are given, e.g. scaling per_graph")
    args = parser.parse_args(argv)
    common.SUFFIX["value"] = "_quick" if args.quick else ""
    sections = []
    for title, module, module_argv in plan(args.quick, args.device):
        name = module.__name__.rsplit(".", 1)[-1]
        if args.only and name not in args.only:
            continue
        print(f"\n== {title}: python -m benchmarks.{name} {' '.join(module_argv)}")
        start, before = time.perf_counter(), len(common.WRITTEN)
        module.main(module_argv)
        seconds = time.perf_counter() - start
        table = "".join(p.read_text() for p in common.WRITTEN[before:])
        sections.append(f"## {title}\n\n`python -m benchmarks.{name} {' '.join(module_argv)}` "
                        f"({seconds:.0f} s)\n\n{table}")
    env = common.environment()
    header = "# graphode benchmarks\n\n" + ", ".join(f"{k}={v}" for k, v in env.items()) + "\n\n"
    out = common.RESULTS / f"summary_{args.device.split(':')[0]}{common.SUFFIX['value']}.md"
    out.write_text(header + "\n".join(sections))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
