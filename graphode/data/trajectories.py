"""ETH/UCY pedestrian trajectories (multi-agent forecasting, the GDE paper's multi-agent
task): the scenes, windows of observed and predicted steps, and leave-one-scene-out."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .root import DataFormatError, DataNotFoundError, find_data, not_found

__all__ = ["SCENES", "Scene", "read_eth_ucy", "scene_windows", "load_eth_ucy",
           "leave_one_out"]

#: the five benchmark scenes and their files (UNIV joins the two students recordings and
#: uni_examples, as Social-GAN and Trajectron++ do)
SCENES: Dict[str, Tuple[str, ...]] = {
    "eth": ("biwi_eth.txt",),
    "hotel": ("biwi_hotel.txt",),
    "univ": ("students001.txt", "students003.txt", "uni_examples.txt"),
    "zara1": ("crowds_zara01.txt",),
    "zara2": ("crowds_zara02.txt",),
}
FOLDER = "trajectories/eth_ucy"


@dataclass
class Scene:
    """The windows of one scene: ``windows[k]`` is ``(A_k, obs + pred, 2)`` positions in
    metres of the ``A_k`` agents present in all of window ``k``'s frames (steps of 0.4 s)."""

    name: str
    windows: List[Tensor]

    def __len__(self) -> int:
        return len(self.windows)


def read_eth_ucy(path: Union[str, Path]) -> np.ndarray:
    """The rows ``frame, agent, x, y`` of one recording, checked (whitespace-separated, as
    Social-GAN and Trajectron++ store them)."""
    path = Path(path)
    try:
        rows = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise DataFormatError(f"{path}: not a table of numbers ({err}); expected rows of "
                              f"'frame agent x y'") from None
    if rows.shape[1] != 4 or not np.isfinite(rows).all():
        raise DataFormatError(f"{path}: expected 4 finite columns 'frame agent x y', got "
                              f"{rows.shape[1]} columns")
    return rows


def scene_windows(rows: np.ndarray, obs: int = 8, pred: int = 12, stride: int = 1
                  ) -> List[Tensor]:
    """Every window of ``obs + pred`` consecutive frames (starting at every ``stride``-th
    frame) with the agents present in all of them; windows without agents are left out."""
    frames = np.unique(rows[:, 0])
    length = obs + pred
    by_frame = {f: rows[rows[:, 0] == f] for f in frames}
    out = []
    for start in range(0, len(frames) - length + 1, stride):
        span = frames[start:start + length]
        tables = [by_frame[f] for f in span]
        agents = set(tables[0][:, 1])
        for table in tables[1:]:
            agents &= set(table[:, 1])
        if not agents:
            continue
        ids = sorted(agents)
        pos = np.stack([np.stack([t[t[:, 1] == a][0, 2:] for a in ids]) for t in tables], 1)
        out.append(torch.as_tensor(pos, dtype=torch.float32))  # (A, length, 2)
    return out


def load_eth_ucy(scene: str, root: Optional[str] = None, obs: int = 8,
                 pred: int = 12) -> Scene:
    """One benchmark scene (``eth``, ``hotel``, ``univ``, ``zara1``, ``zara2``)."""
    key = scene.lower()
    if key not in SCENES:
        raise ValueError(f"scene must be one of {sorted(SCENES)}, got {scene!r}")
    files = SCENES[key]
    root = None if root is None else str(root)
    folder = find_data([FOLDER], files, root)
    if folder is None:
        raise DataNotFoundError(not_found(f"ETH/UCY {key} ({', '.join(files)})", [FOLDER],
                                          root, ""))
    windows: List[Tensor] = []
    for name in files:
        windows += scene_windows(read_eth_ucy(folder / name), obs, pred)
    return Scene(key, windows)


def leave_one_out(test: str, scenes: Sequence[str] = tuple(SCENES)) -> Tuple[List[str], str]:
    """The training scenes and the test scene of one leave-one-scene-out fold."""
    if test not in scenes:
        raise ValueError(f"test scene must be one of {list(scenes)}, got {test!r}")
    return [s for s in scenes if s != test], test
