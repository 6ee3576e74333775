"""GRAND's consistency loss (Feng et al., 2020, `"Graph Random Neural Network for
Semi-Supervised Learning on Graphs" <https://arxiv.org/abs/2005.11079>`_)."""
from __future__ import annotations

from torch import Tensor

__all__ = ["consistency_loss"]


def consistency_loss(logits: Tensor, temperature: float = 0.5) -> Tensor:
    r"""The mean squared distance of each pass's class probabilities from their sharpened mean.

    .. math::
        \bar p = \frac{1}{S}\sum_s p_s, \quad
        \tilde p \propto \bar p^{1/T}, \quad
        \mathcal{L} = \frac{1}{N} \sum_i \frac{1}{S} \sum_s \lVert p_{s,i} - \tilde p_i \rVert^2

    Args:
        logits: ``(S, N, classes)``, the logits of ``S`` random passes over ``N`` nodes.
        temperature: the sharpening temperature ``T`` (lower is sharper).

    Returns:
        A scalar; the sharpened mean is a target, so no gradient flows through it.
    """
    p = logits.softmax(-1)
    sharp = p.mean(0).pow(1 / temperature)
    sharp = (sharp / sharp.sum(-1, keepdim=True)).detach()
    return (p - sharp).pow(2).sum(-1).mean()
