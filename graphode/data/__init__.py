"""Datasets: offline-safe loaders that never write beside raw files, and synthetic graphs."""
from .heterophily import HETEROPHILY, load_heterophily
from .planetoid import PLANETOID, load_planetoid
from .root import DataFormatError, DataNotFoundError, candidate_roots, default_root, find_data
from .semantic import dtw_distances, semantic_graph
from .series import (
                     StandardScaler,
                     Windows,
                     chronological_split,
                     drop_observations,
                     drop_readings,
                     drop_steps,
                     sliding_windows,
                     window_masks,
)
from .synthetic import contextual_sbm, large_contextual_sbm
from .traffic import (
                     SERIES,
                     GraphSeries,
                     SeriesFormatError,
                     load_series,
                     read_dcrnn,
                     read_pems,
                     read_pyg_temporal,
                     read_tgcn_csv,
)
from .trajectories import SCENES, Scene, leave_one_out, load_eth_ucy, read_eth_ucy, scene_windows
from .tu import TU, load_tu, stratified_folds

__all__ = ["PLANETOID", "load_planetoid", "HETEROPHILY", "load_heterophily", "DataNotFoundError", "DataFormatError", "candidate_roots", "find_data", "default_root",
           "contextual_sbm", "large_contextual_sbm", "GraphSeries", "SeriesFormatError", "SERIES", "load_series",
           "read_tgcn_csv", "read_dcrnn", "read_pems", "read_pyg_temporal", "StandardScaler",
           "Windows", "chronological_split", "drop_observations", "drop_readings", "drop_steps", "window_masks",
           "sliding_windows", "dtw_distances", "semantic_graph", "TU", "load_tu", "stratified_folds",
           "SCENES", "Scene", "leave_one_out", "load_eth_ucy", "read_eth_ucy", "scene_windows"]
