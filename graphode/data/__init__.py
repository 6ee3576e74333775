"""Datasets: offline-safe loaders that never write beside raw files, and synthetic graphs."""
from .planetoid import PLANETOID, load_planetoid
from .root import DataNotFoundError, candidate_roots, find_data
from .synthetic import contextual_sbm

__all__ = ["PLANETOID", "load_planetoid", "DataNotFoundError", "candidate_roots", "find_data",
           "contextual_sbm"]
