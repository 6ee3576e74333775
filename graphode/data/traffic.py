"""Readers for spatio-temporal graph signals in the formats users have.

Every reader returns a :class:`GraphSeries`: a ``(T, N)`` signal (speed, flow, cases) on a fixed
graph of ``N`` nodes. Readers read the raw files in place (a read-only folder is fine), check
what they read, and raise :class:`SeriesFormatError` naming the file, the problem and what was
expected; nothing half-loaded is returned.

Formats:

- T-GCN CSV (Los-loop, SZ-taxi): ``*_speed.csv`` (a header of N sensor ids, then T rows) and
  ``*_adj.csv`` (an N x N matrix, no header).
- DCRNN (METR-LA, PEMS-BAY): a pandas HDF5 file of speeds (rows: time stamps, columns: sensor
  ids) and ``adj_mx.pkl``, the pickled tuple ``(sensor_ids, sensor_id_to_ind, adj_mx)``.
- PeMS (PEMS04/08): ``pems04.npz`` with ``data`` of shape (T, N, F) and ``distance.csv`` with
  ``from,to,cost`` rows.
- PyTorch Geometric Temporal JSON: ``edges`` (+ ``weights``) with ``FX``/``X``/``y``; the
  dynamic ``edge_mapping`` form (weights averaged over the snapshots); and networkx node-link.
  Their values are counts or scores, where zero is a reading: ``missing`` is ``None``.
"""
from __future__ import annotations

import csv
import json
import math
import pickle
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .root import (
    DataFormatError,
    DataNotFoundError,
    cleanup_on_failure,
    default_root,
    find_data,
    not_found,
)

__all__ = ["GraphSeries", "SeriesFormatError", "read_tgcn_csv", "read_dcrnn", "read_pems",
           "read_pyg_temporal", "load_series", "SERIES"]

PathLike = Union[str, Path]


class SeriesFormatError(DataFormatError):
    """A data file is not in the expected format; the message names the file and the fix."""


@dataclass
class GraphSeries:
    """A signal on the nodes of a fixed graph, sampled at regular time steps.

    Attributes:
        name: dataset name.
        signal: ``(T, N)`` float tensor; zeros mark missing values in traffic data.
        edge_index: ``(2, E)`` directed edges (self loops removed: GCN layers add their own).
        edge_weight: ``(E,)`` positive weights, or ``None`` for an unweighted graph.
        interval: minutes between two time steps, or ``None`` when not in minutes.
        node_ids: the node (sensor) ids in signal column order.
        missing: the value that marks a missing reading (``0.0`` in traffic speeds, which are
            never truly zero), or ``None`` when every value is a reading (counts, where zero
            is an observation). Scalers, losses and metrics leave the marked values out.
        snapshots: for a graph that changes with time (england-covid's daily mobility), the
            graph ``(edge_index, edge_weight)`` of every time step; ``edge_index`` and
            ``edge_weight`` are then their mean. ``None`` for a fixed graph.
    """

    name: str
    signal: Tensor
    edge_index: Tensor
    edge_weight: Optional[Tensor]
    interval: Optional[float] = None
    node_ids: List[str] = field(default_factory=list)
    missing: Optional[float] = 0.0
    snapshots: Optional[List[Tuple[Tensor, Optional[Tensor]]]] = None

    @property
    def num_nodes(self) -> int:
        return self.signal.size(1)

    @property
    def num_steps(self) -> int:
        return self.signal.size(0)

    def __repr__(self) -> str:
        every = f", every {self.interval:g} min" if self.interval else ""
        return (f"GraphSeries({self.name}: {self.num_steps} steps x {self.num_nodes} nodes, "
                f"{self.edge_index.size(1)} edges{every})")


# --------------------------------------------------------------------------- checks
def _fail(path: PathLike, problem: str, expected: str) -> SeriesFormatError:
    return SeriesFormatError(f"{path}: {problem}; expected {expected}")


def _check_file(path: PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise _fail(path, "the file is empty", "data")
    return path


def _check_signal(values: np.ndarray, path: PathLike, what: str) -> Tensor:
    if values.ndim != 2 or min(values.shape) == 0:
        raise _fail(path, f"the {what} has shape {values.shape}", "a non-empty (T, N) array")
    bad = ~np.isfinite(values)
    if bad.any():
        t, n = np.argwhere(bad)[0]
        raise _fail(path, f"the {what} holds {int(bad.sum())} NaN/inf value(s), the first at "
                          f"time step {t}, node {n}", "finite numbers (mark missing values with 0)")
    return torch.as_tensor(values, dtype=torch.float32)


def _dense_to_graph(adj: np.ndarray, path: PathLike, num_nodes: int
                    ) -> Tuple[Tensor, Optional[Tensor]]:
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
        raise _fail(path, f"the adjacency has shape {adj.shape}", "a square N x N matrix")
    if adj.shape[0] != num_nodes:
        raise _fail(path, f"the adjacency has {adj.shape[0]} nodes but the series has "
                          f"{num_nodes}", "one row and column per node of the series")
    if not np.isfinite(adj).all() or (adj < 0).any():
        raise _fail(path, "the adjacency holds NaN/inf or negative values",
                    "non-negative finite weights")
    adj = adj.copy()
    np.fill_diagonal(adj, 0.0)
    row, col = np.nonzero(adj)
    # Edge (j -> i) for A[i, j] != 0 would be the other convention; the matrices here are
    # (near-)symmetric road graphs and DCRNN reads A[i, j] as "from i to j".
    edge_index = torch.as_tensor(np.stack([row, col]), dtype=torch.long)
    weight = torch.as_tensor(adj[row, col], dtype=torch.float32)
    return edge_index, None if bool((weight == 1).all()) else weight


def _read_numeric_csv(path: Path, header: bool) -> Tuple[List[str], np.ndarray]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError as err:
        raise _fail(path, f"not UTF-8 text (byte {err.start} cannot be decoded)",
                    "a comma-separated text file") from None
    if not rows:
        raise _fail(path, "no rows", "comma-separated numbers")
    head: List[str] = []
    if header:
        head, rows = [c.strip() for c in rows[0]], rows[1:]
        if not rows:
            raise _fail(path, "a header but no data rows", "a header row, then one row per time step")
    width = len(head) if header else len(rows[0])
    values = np.empty((len(rows), width), dtype=np.float64)
    for i, r in enumerate(rows):
        line = i + 1 + int(header)
        if len(r) != width:
            raise _fail(path, f"line {line} has {len(r)} cells", f"{width} like the first line")
        try:
            values[i] = [float(c) for c in r]
        except ValueError:
            bad = next(c for c in r if not _is_float(c))
            raise _fail(path, f"line {line} holds the non-numeric cell {bad!r}", "numbers") from None
    return head, values


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------- readers
def read_tgcn_csv(speed_path: PathLike, adj_path: PathLike, name: str = "T-GCN",
                  interval: Optional[float] = 5.0) -> GraphSeries:
    """Read the T-GCN CSV format: a ``T x N`` speed table with a header of sensor ids, and an
    ``N x N`` adjacency without header (Los-loop, SZ-taxi)."""
    speed_path, adj_path = _check_file(speed_path), _check_file(adj_path)
    ids, speed = _read_numeric_csv(speed_path, header=True)
    if len(set(ids)) != len(ids):
        raise _fail(speed_path, "the header repeats sensor ids", "one unique id per column")
    signal = _check_signal(speed, speed_path, "speed table")
    _, adj = _read_numeric_csv(adj_path, header=False)
    edge_index, weight = _dense_to_graph(adj, adj_path, signal.size(1))
    return GraphSeries(name, signal, edge_index, weight, interval, ids)


def _load_pickle(path: Path):
    try:
        with open(path, "rb") as f:
            # DCRNN pickled with Python 2: latin1 decodes its byte strings losslessly.
            return pickle.load(f, encoding="latin1")
    except Exception as err:
        raise _fail(path, f"not a readable pickle ({type(err).__name__}: {err})",
                    "DCRNN's (sensor_ids, sensor_id_to_ind, adj_mx) tuple") from None


def read_dcrnn(h5_path: PathLike, adj_path: PathLike, name: str = "DCRNN") -> GraphSeries:
    """Read the DCRNN format: a pandas HDF5 table of speeds (rows: time stamps, columns: sensor
    ids) and ``adj_mx.pkl``. Columns are reordered to the adjacency's sensor order. Needs
    pandas and PyTables (``pip install graphode[traffic]``)."""
    h5_path, adj_path = _check_file(h5_path), _check_file(adj_path)
    try:
        import pandas as pd
    except ImportError as err:
        raise ImportError("reading DCRNN .h5 files needs pandas and PyTables: "
                          "pip install 'graphode[traffic]'") from err
    try:
        df = pd.read_hdf(h5_path)
    except ImportError as err:  # pandas reads HDF5 through PyTables
        raise ImportError("reading DCRNN .h5 files needs PyTables: "
                          "pip install 'graphode[traffic]'") from err
    except Exception as err:
        raise _fail(h5_path, f"not a readable pandas HDF5 table ({type(err).__name__}: {err})",
                    "a DataFrame of speeds written by DataFrame.to_hdf") from None
    if not isinstance(df, pd.DataFrame):
        raise _fail(h5_path, f"holds a {type(df).__name__}", "a DataFrame of speeds")
    content = _load_pickle(adj_path)
    if not (isinstance(content, (tuple, list)) and len(content) == 3):
        raise _fail(adj_path, f"holds a {type(content).__name__}",
                    "the tuple (sensor_ids, sensor_id_to_ind, adj_mx)")
    sensor_ids, _, adj = content
    sensor_ids = [str(s) for s in sensor_ids]
    columns = [str(c) for c in df.columns]
    if sorted(columns) != sorted(sensor_ids):
        missing = sorted(set(sensor_ids) - set(columns))[:5]
        raise _fail(h5_path, f"its {len(columns)} sensor columns do not match the "
                             f"{len(sensor_ids)} sensors of {adj_path.name} (e.g. missing "
                             f"{missing})", "the same sensor ids in both files")
    try:
        values = df.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(h5_path, "holds non-numeric values", "numeric speeds") from None
    order = [columns.index(s) for s in sensor_ids]
    signal = _check_signal(values[:, order], h5_path, "speed table")
    edge_index, weight = _dense_to_graph(np.asarray(adj, dtype=np.float64), adj_path,
                                         signal.size(1))
    interval = None
    if isinstance(df.index, pd.DatetimeIndex) and len(df.index) > 1:
        interval = df.index.to_series().diff().median().total_seconds() / 60.0
    return GraphSeries(name, signal, edge_index, weight, interval, sensor_ids)


def read_pems(npz_path: PathLike, distance_path: PathLike, name: str = "PeMS", channel: int = 0,
              interval: Optional[float] = 5.0) -> GraphSeries:
    """Read the PeMS format (PEMS03/04/07/08): ``data`` of shape ``(T, N, F)`` in an ``.npz``
    (``channel`` 0 is flow) and ``distance.csv`` (``from,to,cost``). Edges are made undirected
    and weighted by a Gaussian kernel of the distance, ``exp(-(d / std(d))^2)``, as in DCRNN."""
    npz_path, distance_path = _check_file(npz_path), _check_file(distance_path)
    try:
        with np.load(npz_path) as archive:
            if "data" not in archive.files:
                raise _fail(npz_path, f"the arrays are {archive.files}", "an array named 'data'")
            data = np.asarray(archive["data"], dtype=np.float64)
    except SeriesFormatError:
        raise
    except Exception as err:
        raise _fail(npz_path, f"not a readable .npz ({type(err).__name__}: {err})",
                    "numpy.savez output with an array 'data' of shape (T, N, F)") from None
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3 or not 0 <= channel < data.shape[2]:
        raise _fail(npz_path, f"'data' has shape {data.shape} and channel {channel} was asked "
                              "for", "shape (T, N, F) with the channel within F")
    signal = _check_signal(data[..., channel], npz_path, "'data' array")
    n = signal.size(1)
    try:
        with open(distance_path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r]
    except UnicodeDecodeError as err:
        raise _fail(distance_path, f"not UTF-8 text (byte {err.start} cannot be decoded)",
                    "a comma-separated text file of from,to,cost") from None
    if rows and not _is_float(rows[0][0]):
        rows = rows[1:]  # a header
    if not rows:
        raise _fail(distance_path, "no edges", "rows of from,to,cost")
    edges = []
    for i, r in enumerate(rows):
        if len(r) != 3 or not all(_is_float(c) for c in r):
            raise _fail(distance_path, f"row {i + 1} is {r}", "three numbers: from,to,cost")
        a, b, d = float(r[0]), float(r[1]), float(r[2])
        if a != int(a) or b != int(b) or not (0 <= a < n and 0 <= b < n):
            raise _fail(distance_path, f"row {i + 1} names node {r[0]} or {r[1]}",
                        f"integer node ids in 0..{n - 1} (the series has {n} nodes)")
        if not math.isfinite(d) or d < 0:
            raise _fail(distance_path, f"row {i + 1} has distance {r[2]}",
                        "a finite non-negative cost")
        if a != b:
            edges.append((int(a), int(b), d))
    dist = np.array([e[2] for e in edges])
    sigma = dist.std() if dist.size > 1 and dist.std() > 0 else max(dist.mean(), 1.0)
    src = [e[0] for e in edges] + [e[1] for e in edges]
    dst = [e[1] for e in edges] + [e[0] for e in edges]
    w = np.exp(-((np.concatenate([dist, dist]) / sigma) ** 2))
    edge_index = torch.tensor([src, dst], dtype=torch.long)
    weight = torch.as_tensor(w, dtype=torch.float32)
    edge_index, weight = _coalesce(edge_index, weight, n)
    return GraphSeries(name, signal, edge_index, weight, interval, [str(i) for i in range(n)])


def _coalesce(edge_index: Tensor, weight: Tensor, n: int) -> Tuple[Tensor, Tensor]:
    from torch_geometric.utils import coalesce
    return coalesce(edge_index, weight, n, reduce="max")


def read_pyg_temporal(json_path: PathLike, name: Optional[str] = None) -> GraphSeries:
    """Read a PyTorch Geometric Temporal JSON dataset: the static ``edges`` (+ ``weights``) with
    ``FX``, ``X`` or ``y`` (chickenpox, pedalme); the dynamic ``edge_mapping`` form (england
    covid; the weights are averaged over the snapshots); or networkx node-link (montevideo
    bus; each node holds its series in ``y``)."""
    json_path = _check_file(json_path)
    name = name or json_path.stem
    try:
        with open(json_path) as f:
            doc = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _fail(json_path, f"not valid JSON ({err})", "a PyG-Temporal dataset") from None
    if not isinstance(doc, dict):
        raise _fail(json_path, f"the top level is a {type(doc).__name__}", "a JSON object")
    if "links" in doc and "nodes" in doc:
        return _node_link(doc, json_path, name)
    key = next((k for k in ("FX", "X", "y") if k in doc), None)
    if key is None:
        raise _fail(json_path, f"no series among the keys {sorted(doc)}",
                    "a series under 'FX', 'X' or 'y'")
    signal = _check_signal(_as_array(doc[key], json_path, key), json_path, f"'{key}' series")
    n = signal.size(1)
    if "edges" in doc:
        edges = _as_array(doc["edges"], json_path, "edges")
        weights = _as_array(doc["weights"], json_path, "weights") if "weights" in doc \
            else np.ones(len(edges))
    elif "edge_mapping" in doc:
        edges, weights, snapshots = _snapshot_graphs(doc["edge_mapping"], json_path, n)
        if len(snapshots) != signal.size(0):
            raise _fail(json_path, f"{len(snapshots)} graph snapshots for a series of "
                                   f"{signal.size(0)} steps", "one snapshot per time step")
    else:
        raise _fail(json_path, f"no graph among the keys {sorted(doc)}",
                    "'edges' or 'edge_mapping'")
    if edges.ndim != 2 or edges.shape[1] != 2 or weights.shape != (edges.shape[0],):
        raise _fail(json_path, f"edges of shape {edges.shape} with {weights.shape} weights",
                    "a list of [source, target] pairs and one weight per edge")
    if edges.size and (edges.min() < 0 or edges.max() >= n or (edges != edges.round()).any()):
        raise _fail(json_path, f"edges name nodes outside 0..{n - 1}",
                    f"integer node ids below {n}, the series' node count")
    edge_index, weight = _without_loops(edges, weights)
    return GraphSeries(name, signal, edge_index, weight, None, [str(i) for i in range(n)],
                       missing=None, snapshots=snapshots if "edge_mapping" in doc else None)


def _without_loops(edges: np.ndarray, weights: np.ndarray) -> Tuple[Tensor, Optional[Tensor]]:
    """``(E, 2)`` pairs and their weights as ``(edge_index, edge_weight)``, self loops dropped
    (GCN layers add their own); ``None`` weights when all are 1."""
    edge_index = torch.as_tensor(edges.reshape(-1, 2).T.astype(np.int64))
    keep = edge_index[0] != edge_index[1]
    weight = torch.as_tensor(weights, dtype=torch.float32)[keep]
    return edge_index[:, keep], None if bool((weight == 1).all()) else weight


def _as_array(value, path: Path, key: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(path, f"'{key}' is ragged or holds non-numeric values",
                    "a rectangular array of numbers") from None


def _snapshot_graphs(mapping, path: Path, n: int):
    """The mean graph of the snapshots (pairs and weights, as numpy arrays) and the snapshots
    themselves as ``(edge_index, edge_weight)`` tensors, in time order."""
    try:
        snaps = [(np.asarray(mapping["edge_index"][k], dtype=np.int64).reshape(-1, 2),
                  np.asarray(mapping["edge_weight"][k], dtype=np.float64))
                 for k in sorted(mapping["edge_index"], key=int)]
    except (KeyError, TypeError, ValueError):
        raise _fail(path, "'edge_mapping' is malformed",
                    "edge_index and edge_weight dicts keyed by snapshot") from None
    for k, (edges, weights) in enumerate(snaps):
        if len(weights) != len(edges):
            raise _fail(path, f"snapshot {k} has {len(edges)} edges and {len(weights)} weights",
                        "one weight per edge")
        if edges.size and (edges.min() < 0 or edges.max() >= n):
            raise _fail(path, f"snapshot {k} names nodes outside 0..{n - 1}",
                        f"integer node ids below {n}, the series' node count")
    total: dict = {}
    for edges, weights in snaps:
        for (a, b), w in zip(edges.tolist(), weights.tolist()):
            total[(a, b)] = total.get((a, b), 0.0) + w / len(snaps)
    pairs = sorted(total)
    return (np.array(pairs, dtype=np.float64).reshape(-1, 2), np.array([total[p] for p in pairs]),
            [_without_loops(edges, weights) for edges, weights in snaps])


def _node_link(doc, path: Path, name: str) -> GraphSeries:
    try:
        ids = [node["id"] if "id" in node else node["bus_stop"] for node in doc["nodes"]]
        series = np.asarray([node["y"] for node in doc["nodes"]], dtype=np.float64).T
        index = {v: i for i, v in enumerate(ids)}
        links = [(index[link["source"]], index[link["target"]], float(link.get("weight", 1.0)))
                 for link in doc["links"]]
    except (KeyError, TypeError, ValueError) as err:
        raise _fail(path, f"a node or link is malformed ({type(err).__name__}: {err})",
                    "node-link JSON whose nodes carry an id and a 'y' series") from None
    signal = _check_signal(series, path, "node series")
    links = [link for link in links if link[0] != link[1]]
    edge_index = torch.tensor([[a for a, _, _ in links], [b for _, b, _ in links]], dtype=torch.long)
    weight = torch.tensor([w for _, _, w in links], dtype=torch.float32)
    return GraphSeries(name, signal, edge_index.view(2, -1), weight, None, [str(i) for i in ids],
                       missing=None)


# --------------------------------------------------------------------------- by name
#: dataset name -> (folder under the data root, files, reader)
SERIES = {
    "los-loop": ("traffic/Los-loop", ("los_speed.csv", "los_adj.csv"), "tgcn"),
    "sz-taxi": ("traffic/SZ-taxi", ("sz_speed.csv", "sz_adj.csv"), "tgcn"),
    "metr-la": ("traffic/METR-LA", ("metr-la.h5", "adj_mx.pkl"), "dcrnn"),
    "pems-bay": ("traffic/PEMS-BAY", ("pems-bay.h5", "adj_mx_bay.pkl"), "dcrnn"),
    "pems04": ("traffic/PEMS04", ("pems04.npz", "distance.csv"), "pems"),
    "pems08": ("traffic/PEMS08", ("pems08.npz", "distance.csv"), "pems"),
    "chickenpox": ("temporal", ("chickenpox.json",), "json"),
    "pedalme": ("temporal", ("pedalme_london.json",), "json"),
    "england-covid": ("temporal", ("england_covid.json",), "json"),
    "montevideo-bus": ("temporal", ("montevideo_bus.json",), "json"),
}
_TGCN = "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/T-GCN/T-GCN-PyTorch/data/"
_PYGT = "https://raw.githubusercontent.com/benedekrozemberczki/pytorch_geometric_temporal/master/dataset/"
#: canonical sources of the datasets that can be downloaded file by file
_URLS = {"los-loop": _TGCN, "chickenpox": _PYGT, "pedalme": _PYGT, "england-covid": _PYGT,
         "montevideo-bus": _PYGT}
_PROPER = {"los-loop": "Los-loop", "sz-taxi": "SZ-taxi", "metr-la": "METR-LA",
           "pems-bay": "PEMS-BAY", "pems04": "PEMS04", "pems08": "PEMS08"}


def _download(base_url: str, files: Sequence[str], folder: Path) -> bool:
    """Fetch ``files`` from ``base_url`` into the writable ``folder``; ``False`` when offline."""
    import urllib.request
    try:
        with cleanup_on_failure(folder):
            folder.mkdir(parents=True, exist_ok=True)
            for name in files:
                if not (folder / name).is_file():
                    tmp = folder / (name + ".part")
                    try:
                        with urllib.request.urlopen(base_url + name, timeout=30) as r, \
                                open(tmp, "wb") as f:
                            shutil.copyfileobj(r, f)
                    except BaseException:
                        tmp.unlink(missing_ok=True)
                        raise
                    tmp.rename(folder / name)
        return True
    except OSError:
        return False


def load_series(name: str, root: Optional[str] = None) -> GraphSeries:
    """Load a spatio-temporal dataset by name from the first data root that holds it
    (``root``, then ``$GRAPHODE_DATA``, then ``datasets/``): Los-loop, SZ-taxi, METR-LA,
    PEMS-BAY, PEMS04, PEMS08, chickenpox, pedalme, england-covid, montevideo-bus."""
    key = name.lower().replace("_", "-")
    if key not in SERIES:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(SERIES)}")
    folder_name, files, kind = SERIES[key]
    proper = _PROPER.get(key, key)
    folder = find_data([folder_name], files, root)
    if folder is None and key in _URLS and _download(_URLS[key], files, default_root() / folder_name):
        folder = default_root() / folder_name
    if folder is None:
        online = " or go online so that it can be downloaded" if key in _URLS else ""
        raise DataNotFoundError(not_found(f"{proper} ({', '.join(files)})", [folder_name], root,
                                          online.strip()))
    paths: Sequence[Path] = [folder / f for f in files]
    if kind == "tgcn":
        return read_tgcn_csv(paths[0], paths[1], name=proper)
    if kind == "dcrnn":
        return read_dcrnn(paths[0], paths[1], name=proper)
    if kind == "pems":
        return read_pems(paths[0], paths[1], name=proper)
    return read_pyg_temporal(paths[0], name=key)
