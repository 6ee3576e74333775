"""Training that loses nothing: atomic checkpoints, exact resumption, divergence guards.

A checkpoint is a dict saved with :func:`save_atomic` (written to a temporary file beside the
target, flushed to disk, then renamed over it, so a run killed mid-write leaves the previous
checkpoint whole). :func:`rng_state` and :func:`set_rng_state` carry the random streams, so
that a resumed run draws the same dropout masks and batches as one never stopped.
"""
from __future__ import annotations

import importlib.util
import math
import os
import random
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional

import torch

__all__ = ["save_atomic", "load_checkpoint", "rng_state", "set_rng_state", "TrainingDiverged",
           "check_loss", "CheckpointMismatch", "CheckpointError", "run_seeds", "settings",
           "run_example", "check_args", "exit_on_user_error"]

# Flags of the examples that do not change a result: a resumed run may change them.
OUTPUTS = ("json", "plot", "checkpoint", "resume", "device", "distributed")


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite (or exploded past a bound)."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be read: truncated, corrupt, or not written by graphode."""


class CheckpointMismatch(ValueError):
    """A checkpoint was written by a run with other settings than the one resuming it."""


def save_atomic(state: Mapping[str, Any], path) -> None:
    """``torch.save(state, path)`` such that ``path`` holds either the old or the new
    checkpoint, never a torn one, even if the process is killed while writing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path, expect: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Load a checkpoint and check that the settings it was written with (its ``"config"``
    entry) agree with ``expect`` on every key they share.

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        CheckpointError: the file cannot be read (loaded with ``weights_only=True``).
        CheckpointMismatch: a setting differs; the message names it and both values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: run once with --checkpoint {path} "
                                f"(without --resume) to create it")
    try:
        # weights_only: a checkpoint holds tensors and plain Python values only, so a crafted
        # file cannot run code when it is loaded.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} cannot be read ({reason[:200]}): it is "
                              f"truncated, corrupt or not a graphode checkpoint; delete it "
                              f"or point --checkpoint at another file") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a "
                              f"graphode checkpoint (a dict of training state)")
    saved = state.get("config", {})
    for key, value in (expect or {}).items():
        if key in saved and saved[key] != value:
            raise CheckpointMismatch(
                f"checkpoint {path} was written with {key}={saved[key]!r}, but this run has "
                f"{key}={value!r}; resume with the same settings or start a new checkpoint")
    return state


def rng_state() -> Dict[str, Any]:
    """The random streams a training loop draws from: torch (CPU and every CUDA device) and
    Python's ``random``."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_loss(loss: float, epoch: int, limit: float = 1e8) -> None:
    """Stop training when the loss is NaN, infinite or above ``limit``, with a message that
    names the epoch and what to change.

    Raises:
        TrainingDiverged
    """
    if math.isfinite(loss) and abs(loss) <= limit:
        return
    what = "is not finite" if not math.isfinite(loss) else f"exploded past {limit:g}"
    raise TrainingDiverged(
        f"the training loss {what} ({loss}) at epoch {epoch}. Lower --lr, or make the solve "
        f"more careful: a smaller --step-size, tighter --rtol / --atol, or an adaptive "
        f"--method such as dopri5. The last good checkpoint (if --checkpoint was given) is kept.")


def run_seeds(seeds: Iterable[int], run_one: Callable[..., Dict[str, Any]],
              checkpoint=None, resume: bool = False, config: Optional[Mapping[str, Any]] = None,
              write: bool = True) -> List[Dict[str, Any]]:
    """Run ``run_one(seed, saved, save)`` for every seed, with checkpoints.

    ``run_one`` trains one seed: it continues from ``saved`` (its own state dict from an
    earlier ``save``, or ``None`` for a fresh start) and calls ``save(state)`` after every
    epoch. With ``checkpoint`` the finished runs and the current seed's latest state are
    written there atomically (only where ``write``, e.g. on rank 0); with ``resume`` finished
    seeds are skipped and the interrupted one continues. ``config`` holds the settings a
    resumed run must share with the one that wrote the checkpoint.
    """
    config = dict(config or {})
    state = load_checkpoint(checkpoint, config) if resume else \
        dict(config=config, runs=[], current=None)
    runs = state["runs"]

    def save(current):
        if checkpoint and write:
            save_atomic(dict(state, runs=runs, current=current), checkpoint)

    for seed in seeds:
        if seed < len(runs):
            continue
        current = state["current"]
        saved = current["state"] if current and current["seed"] == seed else None
        runs.append(run_one(seed, saved, lambda s, seed=seed: save(dict(seed=seed, state=s))))
        save(None)
    return runs


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
    from .data import DataFormatError, DataNotFoundError
    try:
        yield
    except (DataNotFoundError, DataFormatError, CheckpointError, CheckpointMismatch,
            FileNotFoundError) as err:
        print(f"{Path(script).name}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def run_example(report: Callable[[Any, Any], Any], args, script: str):
    """Call ``report(args, ctx)`` as the examples' ``main`` does: in the process group
    torchrun describes when ``args.distributed`` is set, in one process otherwise, leaving
    the group afterwards. A diverged run exits with its message instead of a traceback; missing or malformed
    data and unreadable checkpoints exit with one line and code 2."""
    from . import distributed

    if args.distributed and not distributed.launched():
        raise SystemExit(f"--distributed runs under torchrun, e.g. torchrun --standalone "
                         f"--nproc_per_node 2 {script} --distributed")
    ctx = distributed.setup(args.device) if args.distributed else \
        distributed.Context(device=torch.device(args.device))
    try:
        with exit_on_user_error(script):
            return report(args, ctx)
    except TrainingDiverged as err:
        raise SystemExit(f"stopped: {err}") from err
    finally:
        distributed.teardown()
