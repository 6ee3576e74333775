"""Where data lives: ``--root``, then ``$GRAPHODE_DATA``, then the repository's ``datasets/``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence

__all__ = ["DataNotFoundError", "DataFormatError", "candidate_roots", "find_data", "default_root"]


class DataNotFoundError(FileNotFoundError):
    """No data root holds the files; the message lists the places searched and the fixes."""


class DataFormatError(ValueError):
    """A data file is not in the expected format: the message names the file, the problem and
    what was expected. Nothing half-loaded is returned."""


def format_error(path, problem: str, expected: str) -> DataFormatError:
    return DataFormatError(f"{path}: {problem}; expected {expected}")


def default_root() -> Path:
    """The repository's ``datasets/`` folder (writable: downloads go here, git-ignored)."""
    return Path(__file__).resolve().parents[2] / "datasets"


def candidate_roots(root: Optional[str] = None) -> List[Path]:
    """The data roots to search, in order."""
    roots = []
    if root:
        roots.append(Path(root).expanduser())
    env = os.environ.get("GRAPHODE_DATA")
    if env:
        roots.append(Path(env).expanduser())
    roots.append(default_root())
    return roots


def find_data(relative: Sequence[str], required: Sequence[str], root: Optional[str] = None
              ) -> Optional[Path]:
    """The first ``<root>/<relative>`` folder that holds every file in ``required``.

    ``relative`` lists alternative sub-paths (e.g. ``planetoid/Cora/raw`` and ``Cora/raw``).
    """
    for base in candidate_roots(root):
        for rel in relative:
            folder = base / rel
            if all((folder / name).is_file() for name in required):
                return folder
    return None


def not_found(what: str, relative: Sequence[str], root: Optional[str], extra: str = "") -> str:
    places = [str(base / rel) for base in candidate_roots(root) for rel in relative]
    return (f"{what} not found. Searched: " + "; ".join(places) + ". Fix: pass --root DIR (or "
            f"set GRAPHODE_DATA=DIR) where DIR/{relative[0]} holds the raw files"
            + (f", {extra}" if extra else "") + ".")
