"""Toy 1-D and 2-D distributions for GANs, and the mode-coverage metrics.

Lecture 02 (``notebooks/02_gan_theory.ipynb``) trains small GANs on these and
measures mode collapse with :func:`mode_coverage`.

=============== ========================================================================
name            distribution
=============== ========================================================================
``mixture_1d``  1-D mixture of Gaussians (default: means -2, 2, std 0.5, equal weights)
``ring``        8 Gaussians on the unit circle, std 0.01 (the PacGAN benchmark)
``grid``        25 Gaussians at {-4, -2, 0, 2, 4}^2, std 0.05 (the PacGAN benchmark)
=============== ========================================================================

Every distribution is a :class:`Mixture` of isotropic Gaussians with equal
weights: ``means`` (K, D), one shared ``std``. ``sample`` returns (N, D) float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from course_utils.checks import check_choice, check_positive, check_tensor

TOY_NAMES = ("mixture_1d", "ring", "grid")


@dataclass(frozen=True)
class Mixture:
    """An equal-weight mixture of isotropic Gaussians.

    Attributes:
        name: a short label.
        means: (K, D) float32 tensor of mode centres.
        std: the standard deviation of every component (same in each dimension).
    """

    name: str
    means: torch.Tensor
    std: float

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_modes(self) -> int:
        return self.means.shape[0]

    def sample(
        self, n: int, generator: torch.Generator | None = None, device=None
    ) -> torch.Tensor:
        """Draw ``n`` samples: returns (n, D) float32 on ``device`` (default CPU).

        Pass a CPU ``generator`` for a private random stream; otherwise the
        global torch seed is used.
        """
        check_positive(n, "n", integer=True)
        k = torch.randint(self.n_modes, (n,), generator=generator)
        noise = torch.randn(n, self.dim, generator=generator)
        x = self.means[k] + self.std * noise
        return x.to(device or "cpu")

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density of points ``x`` (N, D): returns (N,)."""
        check_tensor(x, "x", shape=(None, self.dim), floating=True)
        means = self.means.to(x.device, x.dtype)
        sq = torch.cdist(x, means).pow(2)  # (N, K)
        log_comp = -0.5 * sq / self.std**2 - self.dim * math.log(self.std * math.sqrt(2 * math.pi))
        return torch.logsumexp(log_comp, dim=1) - math.log(self.n_modes)


def ring(n_modes: int = 8, radius: float = 1.0, std: float = 0.01) -> Mixture:
    """``n_modes`` Gaussians evenly spaced on a circle (PacGAN: 8 modes, radius 1, std 0.01)."""
    check_positive(n_modes, "n_modes", integer=True)
    check_positive(radius, "radius")
    check_positive(std, "std")
    angles = torch.arange(n_modes, dtype=torch.float64) * 2 * math.pi / n_modes
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return Mixture("ring", means.float(), float(std))


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Mixture:
    """A ``side`` x ``side`` grid of Gaussians centred on 0 (PacGAN: {-4,..,4}^2, std 0.05)."""
    check_positive(side, "side", integer=True)
    check_positive(spacing, "spacing")
    check_positive(std, "std")
    ticks = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    yy, xx = torch.meshgrid(ticks, ticks, indexing="ij")
    means = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    return Mixture("grid", means, float(std))


def mixture_1d(means=(-2.0, 2.0), std: float = 0.5) -> Mixture:
    """A 1-D mixture of Gaussians with equal weights and a shared ``std``."""
    check_positive(std, "std")
    m = torch.as_tensor(means, dtype=torch.float32).reshape(-1, 1)
    if len(m) == 0:
        raise ValueError("means must hold at least one value")
    return Mixture("mixture_1d", m, float(std))


def make_toy(name: str, **kwargs) -> Mixture:
    """Build a toy distribution by name: ``"mixture_1d"``, ``"ring"`` or ``"grid"``."""
    check_choice(name, "toy distribution", TOY_NAMES)
    return {"mixture_1d": mixture_1d, "ring": ring, "grid": grid}[name](**kwargs)


def mode_coverage(
    samples: torch.Tensor,
    means: torch.Tensor,
    std: float,
    n_std: float = 3.0,
    min_count: int = 20,
) -> dict:
    """Mode-collapse metrics (lecture 02, "Mode collapse, measured").

    A sample is *high quality* if it lies within ``n_std`` standard deviations
    (Euclidean distance ``n_std * std``) of its nearest mode. A mode is
    *covered* if at least ``min_count`` high-quality samples have it as their
    nearest mode.

    Args:
        samples: (N, D) generated points.
        means: (K, D) mode centres.
        std: the modes' standard deviation.
        n_std: the quality radius in standard deviations (3 in PacGAN).
        min_count: high-quality samples a mode needs to count as covered.

    Returns:
        ``{"modes": int, "high_quality": float, "counts": (K,) int64 tensor}``:
        modes covered, the share of high-quality samples in [0, 1], and the
        number of high-quality samples per mode.
    """
    check_tensor(samples, "samples", shape=(None, None), floating=True)
    check_tensor(means, "means", shape=(None, samples.shape[1]), floating=True)
    check_positive(std, "std")
    check_positive(n_std, "n_std")
    check_positive(min_count, "min_count", integer=True)
    if len(samples) == 0:
        raise ValueError("samples is empty: nothing to measure")
    x = samples.detach().float().cpu()
    dist = torch.cdist(x, means.detach().float().cpu())  # (N, K)
    d_min, nearest = dist.min(dim=1)
    good = d_min <= n_std * std
    counts = torch.bincount(nearest[good], minlength=len(means))
    return {
        "modes": int((counts >= min_count).sum()),
        "high_quality": float(good.float().mean()),
        "counts": counts,
    }


def modes_covered(samples, means, std, n_std: float = 3.0, min_count: int = 20) -> int:
    """Number of modes with at least ``min_count`` high-quality samples (:func:`mode_coverage`)."""
    return mode_coverage(samples, means, std, n_std, min_count)["modes"]


def high_quality_share(samples, means, std, n_std: float = 3.0) -> float:
    """Share of samples within ``n_std * std`` of their nearest mode (see :func:`mode_coverage`)."""
    return mode_coverage(samples, means, std, n_std, 1)["high_quality"]


def density_1d(mix: Mixture, x: np.ndarray) -> np.ndarray:
    """The density of a 1-D mixture at points ``x`` (a NumPy array of any shape)."""
    if mix.dim != 1:
        raise ValueError(f"density_1d needs a 1-D mixture, got dimension {mix.dim}")
    x = np.asarray(x, dtype=np.float64)
    m = mix.means.double().numpy().reshape(-1)
    z = (x[..., None] - m) / mix.std
    return np.exp(-0.5 * z**2).sum(-1) / (len(m) * mix.std * math.sqrt(2 * math.pi))
