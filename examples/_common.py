"""What the example scripts share: the flags they have in common, checking them before any
work, one-line exits on a user's errors, the settings a resumed run must keep, figures, and
running in a process group.

Command-line concerns live here, beside the examples; :mod:`graphode.training` keeps the
library parts (atomic checkpoints, random state, divergence checks)."""
from __future__ import annotations

import importlib.util
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, Optional

import torch

from graphode import SolveError, distributed
from graphode.data import DataFormatError, DataNotFoundError
from graphode.training import CheckpointError, CheckpointMismatch, TrainingDiverged

try:
    from tqdm import tqdm
except ImportError:  # the progress bar is a nicety
    class tqdm:  # noqa: N801 - stands in for tqdm.tqdm
        def __init__(self, iterable=(), **_):
            self.iterable = iterable

        def __iter__(self):
            return iter(self.iterable)

        def update(self, *_):
            pass

        def set_postfix(self, *_, **__):
            pass

        def close(self):
            pass

__all__ = ["OUTPUTS", "FLAGS", "add_flags", "settings", "check_args", "exit_on_user_error",
           "figure", "epochs", "run_example", "tqdm"]

# The flags several examples take, spelt once. An example adds the ones it uses with
# ``add_flags`` and may give its own default or help.
FLAGS = {
    "root": dict(help="data root (else $GRAPHODE_DATA, else datasets/ in a source checkout or "
                         "~/.cache/graphode once installed, else download)"),
    "method": dict(help="solver, e.g. rk4 or dopri5"),
    "gradient": dict(choices=["adjoint", "autograd", "checkpoint"],
                     help="how gradients flow through the solve"),
    "rtol": dict(type=float, default=1e-3, help="relative tolerance of adaptive solvers"),
    "atol": dict(type=float, default=1e-4, help="absolute tolerance of adaptive solvers"),
    "step_size": dict(type=float, help="fixed step size"),
    "t_end": dict(type=float, help="integration time of the GDE block"),
    "hidden": dict(type=int, help="hidden channels"),
    "dropout": dict(type=float),
    "lr": dict(type=float, help="learning rate (Adam)"),
    "weight_decay": dict(type=float),
    "epochs": dict(type=int),
    "patience": dict(type=int, help="stop after this many epochs without a better validation score"),
    "batch_size": dict(type=int),
    "seeds": dict(type=int, default=1, help="number of seeds (0, 1, ...)"),
    "distributed": dict(action="store_true",
                        help="DistributedDataParallel under torchrun (gloo on CPU, NCCL on GPU): "
                             "each process trains on its share; only rank 0 prints and writes"),
    "device": dict(default="cpu"),
    "json": dict(help="write a summary JSON here"),
    "checkpoint": dict(help="save the training state here after every epoch (atomically: a "
                            "killed run leaves the last one whole)"),
    "resume": dict(action="store_true",
                   help="continue from --checkpoint; ends exactly as an uninterrupted run"),
}


def add_flags(parser, *names: str, **defaults: Any) -> None:
    """Add the shared flags ``names`` (keys of :data:`FLAGS`) to ``parser``; a keyword gives
    a flag this example's default, or, as a dict, any of its ``add_argument`` settings."""
    for name in names:
        spec = dict(FLAGS[name])
        own = defaults.get(name)
        if isinstance(own, dict):
            spec.update(own)
        elif name in defaults:
            spec["default"] = own
        parser.add_argument("--" + name.replace("_", "-"), **spec)


@contextmanager
def figure(path: str, rows: int = 1, cols: int = 1, **kwargs) -> Iterator[Any]:
    """Yield the axes of a new figure (``check_args`` has made sure matplotlib is there) and
    save it to ``path`` afterwards."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(rows, cols, **kwargs)
    yield axes
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def epochs(progress: Dict[str, Any], total: int, patience: int, desc: str,
           show: bool = True) -> Iterator[Any]:
    """Early stopping: yield a progress bar once per epoch, counting ``progress["epoch"]`` up
    from where it stands (a resumed run goes on from its checkpoint), while fewer than
    ``total`` epochs have run and the best one (``progress["best"]["epoch"]``) is fewer than
    ``patience`` epochs back."""
    bar = tqdm(total=total, initial=progress["epoch"], desc=desc, leave=False, disable=not show)
    try:
        while progress["epoch"] < total and progress["epoch"] - progress["best"]["epoch"] < patience:
            progress["epoch"] += 1
            yield bar
            bar.update(1)
    finally:
        bar.close()


# Flags that do not change a result: a resumed run may change them.
OUTPUTS = ("json", "plot", "checkpoint", "resume", "device", "distributed")


def settings(args, exclude: Iterable[str] = OUTPUTS) -> Dict[str, Any]:
    """The parsed flags that shape a run's result (an ``argparse.Namespace`` less its
    output and placement flags): the ``config`` a resumed run must share."""
    return {k: v for k, v in vars(args).items() if k not in set(exclude)}


def _writable(path: str, flag: str) -> Optional[str]:
    """Why ``path`` cannot be written (``None`` if it can), checked before any training."""
    target = Path(path).expanduser()
    if target.is_dir():
        return f"{flag} {path} is a folder; give a file name"
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        return f"{flag} {path}: the folder {folder} does not exist; create it first"
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        return f"{flag} {path}: no permission to write there"
    return None


def check_args(parser, args) -> None:
    """Refuse, before any work, what would fail only after a whole run: non-positive counts,
    outputs that cannot be written, ``--plot`` without matplotlib, a CUDA device that is not
    there. ``parser.error`` prints one line and exits with code 2."""
    for flag in ("epochs", "seeds", "hidden", "folds", "batch_size", "horizon"):
        value = getattr(args, flag, None)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if getattr(args, "resume", False) and not args.checkpoint:
        parser.error("--resume continues from a checkpoint: give its path with --checkpoint PATH")
    for flag in ("json", "plot", "checkpoint"):
        path = getattr(args, flag, None)
        if path and not (flag == "checkpoint" and getattr(args, "resume", False)):
            problem = _writable(path, f"--{flag}")
            if problem:
                parser.error(problem)
    if getattr(args, "plot", None):
        if importlib.util.find_spec("matplotlib") is None:
            parser.error("--plot needs matplotlib: pip install matplotlib (or the [plot] extra)")
    device = getattr(args, "device", None)
    if device is not None:
        try:
            kind = torch.device(device).type
        except (RuntimeError, ValueError):
            parser.error(f"--device {device} is not a device name; use cpu, cuda or cuda:N")
        if kind == "cuda" and not torch.cuda.is_available():
            parser.error(f"--device {device}: this machine has no CUDA device (or torch was "
                         f"built without CUDA); use --device cpu")


@contextmanager
def exit_on_user_error(script: str) -> Iterator[None]:
    """Turn a user's error (missing or malformed data, an unreadable or mismatched
    checkpoint) into one clear line on stderr and exit code 2, as argparse does."""
    try:
        yield
    except (DataNotFoundError, DataFormatError, CheckpointError, CheckpointMismatch,
            FileNotFoundError) as err:
        print(f"{Path(script).name}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def run_example(report: Callable[[Any, Any], Any], args, script: str):
    """Call ``report(args, ctx)`` as the examples' ``main`` does: in the process group
    torchrun describes when ``args.distributed`` is set, in one process otherwise, leaving
    the group afterwards. A diverged run or a failed solve exits with its message instead of a
    traceback (it starts with "stopped:"); missing or malformed
    data and unreadable checkpoints exit with one line and code 2."""
    if args.distributed and not distributed.launched():
        raise SystemExit(f"--distributed runs under torchrun, e.g. torchrun --standalone "
                         f"--nproc_per_node 2 {script} --distributed")
    ctx = distributed.setup(args.device) if args.distributed else \
        distributed.Context(device=torch.device(args.device))
    try:
        with exit_on_user_error(script):
            return report(args, ctx)
    except TrainingDiverged as err:
        raise SystemExit(
            f"stopped: the training loss {err.problem} ({err.loss}) at epoch {err.epoch}. Lower "
            f"--lr, or make the solve more careful: a smaller --step-size, tighter --rtol / "
            f"--atol, or an adaptive --method such as dopri5. The last good checkpoint (if "
            f"--checkpoint was given) is kept.") from err
    except SolveError as err:  # a solve inside training failed: where and why, no traceback
        raise SystemExit(f"stopped: a solve failed during training: {err} Lower --lr or "
                         f"--step-size, or try another --method.") from err
    finally:
        distributed.teardown()
