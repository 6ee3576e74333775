"""Where data lives: ``--root``, then ``$GRAPHODE_DATA``, then the repository's ``datasets/`` in a
source checkout or the user cache directory (``~/.cache/graphode``) once installed."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

__all__ = ["DataNotFoundError", "DataFormatError", "candidate_roots", "find_data", "default_root",
           "cleanup_on_failure"]


class DataNotFoundError(FileNotFoundError):
    """No data root holds the files; the message lists the places searched and the fixes."""


class DataFormatError(ValueError):
    """A data file is not in the expected format: the message names the file, the problem and
    what was expected. Nothing half-loaded is returned."""


def format_error(path, problem: str, expected: str) -> DataFormatError:
    return DataFormatError(f"{path}: {problem}; expected {expected}")


def default_root(package: Optional[Path] = None) -> Path:
    """The writable root that downloads go to and that is searched last.

    In a source checkout it is the repository's ``datasets/`` folder (git-ignored). An
    installed graphode uses the user's cache directory, ``$XDG_CACHE_HOME/graphode`` or
    ``~/.cache/graphode`` (as PyG users know from its own cache), never a folder inside
    site-packages. ``package`` is the ``graphode`` package folder (default: this one)."""
    package = Path(__file__).resolve().parents[1] if package is None else Path(package)
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "datasets").is_dir():
        return checkout / "datasets"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "graphode"


def candidate_roots(root: Optional[str] = None) -> List[Path]:
    """The data roots to search, in order."""
    roots = []
    if root:
        roots.append(Path(root).expanduser())
    env = os.environ.get("GRAPHODE_DATA")
    if env:
        path = Path(env).expanduser()
        roots.append(path)
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
            for name in required:
                if (folder / name).exists() and not (folder / name).is_file():
                    raise format_error(folder / name, "is not a regular file (a folder?)",
                                       f"the data file {name}")
    return None


def not_found(what: str, relative: Sequence[str], root: Optional[str], extra: str = "") -> str:
    places = [str(base / rel) for base in candidate_roots(root) for rel in relative]
    env = os.environ.get("GRAPHODE_DATA")
    note = ""
    if env and not Path(env).expanduser().is_dir():
        # A relative path resolves against the current folder: say where it was looked for.
        note = (f" GRAPHODE_DATA={env} is not a folder (from the current folder {Path.cwd()} it "
                f"resolves to {Path(env).expanduser().resolve()}); give an absolute path.")
    return (f"{what} not found. Searched: " + "; ".join(places) + "." + note + " Fix: pass "
            f"--root DIR (or set GRAPHODE_DATA=DIR) where DIR/{relative[0]} holds the raw files"
            + (f", {extra}" if extra else "") + ".")


@contextmanager
def cleanup_on_failure(folder: Path) -> Iterator[None]:
    """Remove the folders a failed download created (an offline run leaves nothing behind);
    folders that existed before are kept as they were."""
    folder = Path(folder)
    first_new: Optional[Path] = None
    probe = folder
    while not probe.exists():
        first_new, probe = probe, probe.parent
    try:
        yield
    except BaseException:
        if first_new is not None:
            shutil.rmtree(first_new, ignore_errors=True)
        raise
