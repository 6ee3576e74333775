"""A reproducible Brownian motion, queried on any interval.

The path is fixed by an entropy seed and a grid of cells (by default the solver's step grid).
The increment of each cell, and its space-time Levy area when asked for, is drawn from a
generator seeded by ``(entropy, cell)``; inside a cell the path is refined by a virtual
binary tree of Brownian bridges whose nodes are seeded by their position. Every value is
therefore a pure function of the seed and of the interval asked for: the same path comes
back on every call, in any query order, forwards and backwards (what the reversible adjoint
and rejected adaptive steps need), and across a solve that is stopped and resumed.

For a batch of graphs, ``batch`` and one seed per graph give every graph its own path: a
graph's noise depends on its own seed and size only, never on its batch mates.
"""
from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

_MASK = (1 << 64) - 1
_DEPTH = 40  # tree depth inside a cell: interval ends are resolved to cell width / 2^40


def _mix(*keys: int) -> int:
    """A 63-bit seed from integer keys (splitmix64 finaliser over the keys in turn)."""
    x = 0x9E3779B97F4A7C15
    for key in keys:
        x = ((x ^ (key & _MASK)) * 0xBF58476D1CE4E5B9) & _MASK
        x ^= x >> 31
        x = (x * 0x94D049BB133111EB) & _MASK
        x ^= x >> 29
    return x >> 1


Piece = Tuple[float, Tensor, Optional[Tensor]]  # (length h, increment W, U = int (W_r - W_a) dr)


def _join(a: Piece, b: Piece) -> Piece:
    """The increment and time integral of two adjacent intervals joined."""
    ha, wa, ua = a
    hb, wb, ub = b
    u = None if ua is None or ub is None else ua + ub + hb * wa
    return ha + hb, wa + wb, u


class BrownianMotion:
    """Brownian motion on ``[t0, t1]``, torchsde-compatible: ``bm(s, t)`` is the increment
    ``W(t) - W(s)``, ``bm(s, t, return_U=True)`` adds ``U = int_s^t (W(r) - W(s)) dr`` (which
    carries the space-time Levy area that the ``srk`` methods use).

    Args:
        t0, t1: the interval.
        size: shape of ``W``: the state's shape for diagonal noise, ``(*state.shape[:-1], m)``
            for ``m`` Brownian motions (general, additive and scalar noise).
        dtype, device: of the increments.
        entropy: an integer seed; ``None`` draws one from torch's global generator (so
            ``torch.manual_seed`` fixes it). With ``batch``, a sequence or tensor of one seed
            per graph.
        dt: width of the cells, usually the solver's step. Queries on cell boundaries cost one
            normal draw; others walk the bridge tree inside a cell.
        grid: the cell boundaries themselves, from ``t0`` to ``t1`` (instead of ``dt``).
        levy_area: also draw the space-time Levy area (``return_U`` needs it).
        batch: graph index of every row of ``size[0]`` (PyG's ``batch``, sorted), for one
            path per graph.
        cache_size: how many tree nodes to keep.
    """

    def __init__(self, t0: float, t1: float, size: Sequence[int], *,
                 dtype: Optional[torch.dtype] = None, device: Union[str, torch.device, None] = None,
                 entropy: Union[int, Sequence[int], Tensor, None] = None,
                 dt: Optional[float] = None, grid: Optional[Sequence[float]] = None,
                 levy_area: bool = False, batch: Optional[Tensor] = None, cache_size: int = 64):
        t0, t1 = float(t0), float(t1)
        if not t1 > t0:
            raise ValueError(f"BrownianMotion needs t0 < t1, got t0={t0}, t1={t1}")
        self.t0, self.t1 = t0, t1
        self.size = torch.Size(size)
        self.dtype = dtype if dtype is not None else torch.get_default_dtype()
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.levy_area = levy_area
        self._grid = self._make_grid(t0, t1, dt, grid)
        self._cache: "OrderedDict[tuple, Tuple[Tensor, Optional[Tensor]]]" = OrderedDict()
        self._cache_size = cache_size
        self._counts: Optional[List[int]] = None
        if batch is not None:
            if batch.dim() != 1 or batch.numel() != self.size[0]:
                raise ValueError(f"batch must hold one graph index per row of size[0]="
                                 f"{self.size[0]}, got shape {tuple(batch.shape)}")
            if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
                raise ValueError("batch must be sorted (PyG's batch vector is)")
            self._counts = torch.bincount(batch).tolist()
        self.entropy = self._seeds(entropy)

    def _seeds(self, entropy) -> List[int]:
        graphs = 1 if self._counts is None else len(self._counts)
        if entropy is None:
            entropy = int(torch.randint(0, 2 ** 62, ()).item())
        if isinstance(entropy, Tensor):
            entropy = entropy.tolist()
        if isinstance(entropy, int):
            return [entropy] if graphs == 1 and self._counts is None else \
                [_mix(entropy, g) for g in range(graphs)]
        seeds = [int(e) for e in entropy]
        if len(seeds) != graphs:
            raise ValueError(f"entropy holds {len(seeds)} seeds for {graphs} graphs; pass one "
                             f"seed per graph of batch, or a single integer")
        return seeds

    @staticmethod
    def _make_grid(t0: float, t1: float, dt: Optional[float], grid) -> List[float]:
        if grid is not None:
            cells = [float(g) for g in grid]
            if cells[0] != t0 or cells[-1] != t1 or any(b <= a for a, b in zip(cells, cells[1:])):
                raise ValueError(f"grid must increase strictly from t0={t0} to t1={t1}")
            return cells
        if dt is None:
            return [t0, t1]
        if not dt > 0:
            raise ValueError(f"dt must be positive, got {dt}")
        return step_grid(t0, t1, dt)

    # -- drawing -------------------------------------------------------------------------------
    def _normal(self, *key: int) -> Tensor:
        if self._counts is None:
            return self._draw(self.size, _mix(self.entropy[0], *key))
        parts = [self._draw((n, *self.size[1:]), _mix(seed, *key))
                 for seed, n in zip(self.entropy, self._counts)]
        return torch.cat(parts)

    def _draw(self, size, seed: int) -> Tensor:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        return torch.randn(size, generator=generator, dtype=self.dtype, device=self.device)

    def _node(self, cell: int, depth: int, index: int, cache: bool = True
              ) -> Tuple[Tensor, Optional[Tensor]]:
        """Increment and space-time Levy area of node ``index`` at ``depth`` of a cell's tree."""
        key = (cell, depth, index)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        h = (self._grid[cell + 1] - self._grid[cell]) / 2 ** depth
        if depth == 0:
            # scaled in place: a second state-sized allocation per step costs more than the draw
            w = self._normal(cell, 0, 0, 0).mul_(math.sqrt(h))
            area = self._normal(cell, 0, 0, 1).mul_(math.sqrt(h / 12)) if self.levy_area else None
            value = (w, area)
        else:
            parent_w, parent_h = self._node(cell, depth - 1, index // 2)
            value = self._split(parent_w, parent_h, 2 * h, index % 2, (cell, depth - 1, index // 2))
        if not cache:
            return value
        self._cache[key] = value
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return value

    def _split(self, w: Tensor, area: Optional[Tensor], h: float, right: int, key: tuple
               ) -> Tuple[Tensor, Optional[Tensor]]:
        """One half of an interval, given the whole; both halves draw the same normals."""
        x1 = self._normal(*key, 2)
        half = h / 2
        if area is None:
            left_w = 0.5 * w + math.sqrt(h / 4) * x1
            return (w - left_w if right else left_w), None
        # Foster's bridge for (W, H) at the midpoint: the halves' increments and space-time
        # Levy areas given the whole interval's, with two fresh normals.
        x2 = self._normal(*key, 3)
        v = 0.5 * math.sqrt(half * half / (2 * half ** 3))
        a = v * half * half / h
        c = v / math.sqrt(3.0)
        third = 2 * (2 * a * half) / h
        if right:
            return (0.5 * w - 1.5 * area - third * x1,
                    0.25 * area - a * x1 - c * half * x2)
        return (0.5 * w + 1.5 * area + third * x1,
                0.25 * area - a * x1 + c * half * x2)

    # -- queries -------------------------------------------------------------------------------
    def _cell_piece(self, cell: int, lo: int, hi: int) -> Piece:
        """The part of a cell between tree positions ``lo`` and ``hi`` (units of 2^-depth)."""
        h_cell = self._grid[cell + 1] - self._grid[cell]
        pieces: List[Piece] = []
        # Canonical dyadic decomposition of [lo, hi): the largest aligned nodes, left to right.
        pos = lo
        while pos < hi:
            level = _DEPTH if pos == 0 else min((pos & -pos).bit_length() - 1, _DEPTH)
            while pos + (1 << level) > hi:
                level -= 1
            depth = _DEPTH - level
            # a whole cell (the fixed-step query) is one draw, not worth a cache slot
            w, area = self._node(cell, depth, pos >> level, cache=depth > 0 or hi - lo < 1 << _DEPTH)
            h = h_cell / 2 ** depth
            u = None if area is None else h * (0.5 * w + area)
            pieces.append((h, w, u))
            pos += 1 << level
        out = pieces[0]
        for p in pieces[1:]:
            out = _join(out, p)
        return out

    def _locate(self, t: float) -> Tuple[int, int]:
        """Cell of ``t`` and its position inside, rounded to the tree's finest level."""
        cell = min(max(bisect.bisect_right(self._grid, t) - 1, 0), len(self._grid) - 2)
        a, b = self._grid[cell], self._grid[cell + 1]
        pos = min(max(int(round((t - a) / (b - a) * 2 ** _DEPTH)), 0), 1 << _DEPTH)
        if pos == 1 << _DEPTH and cell < len(self._grid) - 2:
            return cell + 1, 0
        return cell, pos

    def increment(self, s: float, t: float) -> Piece:
        """``(t - s, W(t) - W(s), U)`` for ``t0 <= s < t <= t1``."""
        if s < self.t0 - 1e-12 * (self.t1 - self.t0) or t > self.t1 + 1e-12 * (self.t1 - self.t0):
            raise ValueError(f"Brownian motion on [{self.t0}, {self.t1}] queried on [{s}, {t}]")
        c0, p0 = self._locate(s)
        c1, p1 = self._locate(t)
        full = 1 << _DEPTH
        if p1 == 0 and c1 > c0:
            c1, p1 = c1 - 1, full
        if c0 == c1:
            if p1 <= p0:  # shorter than the tree resolves
                zero = torch.zeros(self.size, dtype=self.dtype, device=self.device)
                return t - s, zero, zero if self.levy_area else None
            return self._cell_piece(c0, p0, p1)
        out = self._cell_piece(c0, p0, full)
        for cell in range(c0 + 1, c1):
            out = _join(out, self._cell_piece(cell, 0, full))
        if p1 > 0:
            out = _join(out, self._cell_piece(c1, 0, p1))
        return out

    def __call__(self, ta, tb=None, return_U: bool = False):
        """torchsde's interface: ``bm(s, t)`` the increment, ``bm(t)`` the value ``W(t)``."""
        if tb is None:
            ta, tb = self.t0, ta
        ta, tb = float(ta), float(tb)
        sign = 1.0
        if tb < ta:
            ta, tb, sign = tb, ta, -1.0
        if tb == ta:
            zero = torch.zeros(self.size, dtype=self.dtype, device=self.device)
            return (zero, zero) if return_U else zero
        if return_U and not self.levy_area:
            raise ValueError("return_U needs the space-time Levy area: build the "
                             "BrownianMotion with levy_area=True")
        _, w, u = self.increment(ta, tb)
        if sign < 0:  # W(s) - W(t); U over a reversed interval is not defined
            return (-w, None) if return_U else -w
        return (w, u) if return_U else w

    @property
    def shape(self) -> torch.Size:
        return self.size

    def __repr__(self) -> str:
        return (f"BrownianMotion(t0={self.t0}, t1={self.t1}, size={tuple(self.size)}, "
                f"cells={len(self._grid) - 1}, levy_area={self.levy_area})")


def step_grid(t0: float, t1: float, dt: float) -> List[float]:
    """The fixed-step grid ``t0, t0 + dt, ...`` clipped at ``t1``, accumulated as the solver
    steps (so that its times and the cells of a Brownian motion built on it agree exactly)."""
    grid = [t0]
    t = t0
    while t < t1:
        t = min(t + dt, t1)
        grid.append(t)
    return grid
