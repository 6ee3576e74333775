"""The drift and diffusion of an SDE, checked once and evaluated by the methods."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

NOISE_TYPES = ("diagonal", "additive", "scalar", "general")
SDE_TYPES = ("ito", "stratonovich")


def expected_shapes(noise_type: str, y_shape: Tuple[int, ...]) -> Tuple[Tuple, Tuple]:
    """``(g's shape, W's shape)`` for a state of ``y_shape``; ``m`` is the number of Brownian
    motions (any positive integer for additive and general noise, 1 for scalar)."""
    lead = tuple(y_shape[:-1])
    if noise_type == "diagonal":
        return tuple(y_shape), tuple(y_shape)
    if noise_type == "scalar":
        return (*y_shape, 1), (*lead, 1)
    return (*y_shape, "m"), (*lead, "m")


class Terms:
    """An SDE object (torchsde's shape: ``f(t, y)``, ``g(t, y)``, ``noise_type``, ``sde_type``,
    optionally ``h(t, y)`` for the prior drift of ``logqp``) with the products the methods
    need. ``names`` renames the methods, as in torchsde (``{"drift": "f_mean"}``)."""

    def __init__(self, sde: Any, names: Optional[Dict[str, str]] = None):
        names = dict(names or {})
        unknown = set(names) - {"drift", "diffusion", "prior_drift"}
        if unknown:
            raise ValueError(f"names takes the keys 'drift', 'diffusion' and 'prior_drift', "
                             f"got {sorted(unknown)}")
        self.sde = sde
        self.f: Callable = self._method(sde, names.get("drift", "f"), "drift")
        self.g: Callable = self._method(sde, names.get("diffusion", "g"), "diffusion")
        prior = names.get("prior_drift", "h")
        self.h: Optional[Callable] = getattr(sde, prior, None)
        noise_type = getattr(sde, "noise_type", None)
        sde_type = getattr(sde, "sde_type", None)
        if noise_type not in NOISE_TYPES:
            raise ValueError(f"sde.noise_type must be one of {NOISE_TYPES}, got {noise_type!r}")
        if sde_type not in SDE_TYPES:
            raise ValueError(f"sde.sde_type must be one of {SDE_TYPES}, got {sde_type!r}")
        self.noise_type: str = noise_type
        self.sde_type: str = sde_type

    @staticmethod
    def _method(sde: Any, name: str, role: str) -> Callable:
        fn = getattr(sde, name, None)
        if not callable(fn):
            raise TypeError(f"the SDE object has no {role} method {name!r}; give it "
                            f"'{name}(t, y)' or rename it with names={{'{role}': ...}}")
        return fn

    def prod(self, g: Tensor, dw: Tensor) -> Tensor:
        """The diffusion applied to a Brownian increment, ``g dW``."""
        if self.noise_type == "diagonal":
            return g * dw
        if self.noise_type == "scalar":
            return g.squeeze(-1) * dw
        return (g @ dw.unsqueeze(-1)).squeeze(-1)

    def diagonal(self, g: Tensor) -> Tensor:
        """The diffusion as a tensor of the state's shape (diagonal and scalar noise)."""
        return g.squeeze(-1) if self.noise_type == "scalar" else g

    def check(self, t0: Tensor, y0: Tensor, bm_shape: Optional[Tuple[int, ...]]) -> int:
        """Evaluate ``f`` and ``g`` once and check their shapes; returns ``m``, the number of
        Brownian motions per row. Called before the solve starts."""
        with torch.no_grad():
            f = self.f(t0, y0)
            g = self.g(t0, y0)
        if not isinstance(f, Tensor) or f.shape != y0.shape:
            raise ValueError(f"the drift must return a tensor of the state's shape "
                             f"{tuple(y0.shape)}, got {_shape(f)}")
        g_shape, w_shape = expected_shapes(self.noise_type, tuple(y0.shape))
        if not isinstance(g, Tensor):
            raise ValueError(f"the diffusion must return a tensor, got {type(g).__name__}")
        if self.noise_type == "diagonal":
            ok = g.shape == y0.shape
        elif self.noise_type == "scalar":
            ok = g.shape == (*y0.shape, 1)
        else:
            ok = g.dim() == y0.dim() + 1 and g.shape[:-1] == y0.shape
        if not ok:
            raise ValueError(
                f"noise_type={self.noise_type!r}: the diffusion must have shape {g_shape} for a "
                f"state of shape {tuple(y0.shape)}, got {tuple(g.shape)} (diagonal noise: the "
                f"state's shape; scalar: state + (1,); additive/general: state + (m,))")
        m = y0.shape[-1] if self.noise_type == "diagonal" else g.shape[-1]
        want = tuple(y0.shape) if self.noise_type == "diagonal" else (*y0.shape[:-1], m)
        if bm_shape is not None and tuple(bm_shape) != want:
            raise ValueError(f"noise_type={self.noise_type!r} with a state of shape "
                             f"{tuple(y0.shape)} and a diffusion of shape {tuple(g.shape)} needs "
                             f"Brownian increments of shape {want}, but bm has shape "
                             f"{tuple(bm_shape)}")
        return m


def _shape(x: Any) -> str:
    return str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__


class LogqpSDE(torch.nn.Module):
    """The SDE augmented with the log-ratio of a latent SDE (torchsde's ``logqp``): on the
    flattened state ``z = [y, L]`` of shape ``(rows, D + 1)``,

        dL = 0.5 |u|^2 dt,  g u = f - h

    (``u = (f - h) / g`` for diagonal noise, the pseudo-inverse otherwise), where ``h`` is the
    prior drift; ``L`` has no noise. Integrated with the solver's own method, as torchsde
    integrates it. ``shape`` is the original state's."""

    def __init__(self, terms: "Terms", shape: Tuple[int, ...]):
        super().__init__()
        if terms.h is None:
            raise ValueError("logqp=True needs the prior drift: give the SDE a method h(t, y) "
                             "(or name it with names={'prior_drift': ...})")
        if terms.noise_type != "diagonal" and len(shape) != 2:
            raise ValueError(f"logqp with {terms.noise_type} noise needs a state of shape "
                             f"(rows, channels), got {tuple(shape)}: each row has one Brownian "
                             f"motion of m columns (diagonal noise takes any shape)")
        self.terms, self.shape, self.prior = terms, tuple(shape), terms.h
        self.noise_type, self.sde_type = terms.noise_type, terms.sde_type
        if isinstance(terms.sde, torch.nn.Module):
            self.inner = terms.sde  # its parameters are this module's

    def _state(self, z: Tensor) -> Tensor:
        return z[:, :-1].reshape(self.shape)

    def f(self, t: Tensor, z: Tensor) -> Tensor:
        y = self._state(z)
        f, g, h = self.terms.f(t, y), self.terms.g(t, y), self.prior(t, y)
        rows = z.size(0)
        if self.noise_type == "diagonal":
            tiny = torch.finfo(g.dtype).tiny
            safe = torch.where(g.abs() < tiny, torch.full_like(g, tiny), g)
            u = ((f - h) / safe).reshape(rows, -1)
        else:
            gm = g.reshape(rows, -1, g.size(-1))
            u = (torch.linalg.pinv(gm) @ (f - h).reshape(rows, -1, 1)).squeeze(-1)
        return torch.cat([f.reshape(rows, -1), 0.5 * u.square().sum(1, keepdim=True)], dim=1)

    def g(self, t: Tensor, z: Tensor) -> Tensor:
        g = self.terms.g(t, self._state(z))
        rows = z.size(0)
        if self.noise_type == "diagonal":
            return torch.cat([g.reshape(rows, -1), g.new_zeros(rows, 1)], dim=1)
        gm = g.reshape(rows, -1, g.size(-1))
        return torch.cat([gm, gm.new_zeros(rows, 1, gm.size(-1))], dim=1)


class PaddedBrownian:
    """A diagonal-noise Brownian motion with one more, unused, column (the log-ratio's): the
    path of the state's own columns is unchanged."""

    def __init__(self, bm: Any, rows: int):
        self.bm, self.rows = bm, rows
        shape = getattr(bm, "shape", None)
        self.shape = None if shape is None else (rows, int(torch.Size(shape).numel()) // rows + 1)

    def _pad(self, w: Optional[Tensor]) -> Optional[Tensor]:
        if w is None:
            return None
        w = w.reshape(self.rows, -1)
        return torch.cat([w, w.new_zeros(self.rows, 1)], dim=1)

    def __call__(self, ta: Any, tb: Any = None, return_U: bool = False) -> Any:
        if return_U:
            w, u = self.bm(ta, tb, return_U=True)
            return self._pad(w), self._pad(u)
        return self._pad(self.bm(ta, tb))
