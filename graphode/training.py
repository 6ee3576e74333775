"""Training that loses nothing: atomic checkpoints, exact resumption, divergence guards.

A checkpoint is a dict saved with :func:`save_atomic` (written to a temporary file beside the
target, flushed to disk, then renamed over it, so a run killed mid-write leaves the previous
checkpoint whole). :func:`rng_state` and :func:`set_rng_state` carry the random streams, so
that a resumed run draws the same dropout masks and batches as one never stopped.
"""
from __future__ import annotations

import math
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

import torch

__all__ = ["save_atomic", "load_checkpoint", "rng_state", "set_rng_state", "training_state",
           "restore_training_state", "TrainingDiverged",
           "check_loss", "CheckpointMismatch", "CheckpointError", "run_seeds"]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN, infinite or huge.

    Attributes:
        loss: the loss seen.
        epoch: the epoch it was seen in.
        problem: what is wrong with it (``"is not finite"``, ``"exploded past 1e+08"``).
    """

    def __init__(self, message: str, loss: float = math.nan, epoch: int = 0,
                 problem: str = "is not finite"):
        super().__init__(message)
        self.loss, self.epoch, self.problem = loss, epoch, problem


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
        raise FileNotFoundError(f"no checkpoint at {path}: nothing to resume from; train once "
                                f"with checkpoints written to {path} to create it")
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


def training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, /,
                   **progress: Any) -> Dict[str, Any]:
    """What a resumed run needs to go on exactly: the state dicts of ``model`` and
    ``optimizer``, the random streams, and the loop's own ``progress`` (epoch, best score,
    counters), under their own keys."""
    reserved = {"model", "optimizer", "rng"} & set(progress)
    if reserved:
        raise ValueError(f"training_state keeps the model, optimizer and random state itself: "
                         f"rename the progress entries {sorted(reserved)}")
    return dict(model=model.state_dict(), optimizer=optimizer.state_dict(), rng=rng_state(),
                **progress)


def restore_training_state(saved: Mapping[str, Any], model: torch.nn.Module,
                           optimizer: torch.optim.Optimizer) -> Dict[str, Any]:
    """Load what :func:`training_state` saved into ``model`` and ``optimizer``, restore the
    random streams, and return the progress entries."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    set_rng_state(saved["rng"])
    return {k: v for k, v in saved.items() if k not in ("model", "optimizer", "rng")}


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
        f"the training loss {what} ({loss}) at epoch {epoch}. Lower the learning rate, or make "
        f"the solve more careful: a smaller step size, tighter rtol / atol, or an adaptive "
        f"method such as dopri5. The last good checkpoint (if one was being written) is kept.",
        loss, epoch, what)


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
