"""Diffusion models and flow matching: schedules, losses, samplers, guidance, training.

Lecture 12 (``notebooks/12_diffusion_and_flow_matching.ipynb``) derives each piece and checks
it numerically; this module is the reusable version. Contents:

- :class:`NoiseSchedule`   beta_t, alpha_bar_t, the forward process q(x_t | x_0), one chain step,
  the posterior q(x_{t-1} | x_t, x_0), the signal-to-noise ratio  (sections 1-2)
- :func:`diffusion_loss`   the "simple" noise-prediction loss of Ho et al. (2020)   (section 3)
- :func:`flow_matching_loss`  regress the velocity of a straight noise -> data path  (section 8)
- :func:`guided_prediction`   classifier-free guidance, (1 + w) f(x, y) - w f(x, no label)
- :func:`ddim_step`, :func:`sample_diffusion`  DDPM (eta = 1) and DDIM (eta = 0) sampling
- :func:`sample_flow`      Euler and Heun ODE solvers for a velocity model
- :class:`EMA`, :func:`train_diffusion`  the training loop of both objectives

Conventions (the usual sources of sign and off-by-one slips, each tested in
``tests/test_diffusion.py``):

- **Diffusion time** is an integer t = 0..T; t = 0 is the data, t = T (almost) pure noise.
  ``alpha_bar[0] = 1``; beta_t for t = 1..T is ``betas[t]`` (``betas[0] = 0`` is a
  placeholder). The network sees the float ``t / T``.
- **Flow time** runs the other way, as in Lipman et al. (2023) and Liu et al. (2023):
  x_t = t x_1 + (1 - t) x_0 with x_0 ~ N(0, I) the noise at t = 0 and x_1 the data at t = 1.
  The velocity is dx_t/dt = x_1 - x_0 (data minus noise), and sampling integrates from
  t = 0 to t = 1.
- **Guidance weight** w: w = 0 is the plain conditional model, w = -1 the unconditional one,
  w > 0 pushes away from the unconditional prediction.
- **Pixels**: images are (N, 1, 28, 28) in [0, 1] (as :func:`course_utils.load_mnist` gives
  them); the models work in [-1, 1]. :func:`to_images` maps samples back.
- **Models** are called ``model(x, t, labels)`` with t (N,) floats in [0, 1] and labels (N,)
  int64 or None (see :mod:`course_utils.unet`); conditional models have ``n_classes > 0`` and
  read label ``n_classes`` as "no label".
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from course_utils.checks import check_choice, check_positive, check_tensor
from course_utils.devices import autocast
from course_utils.engine import make_optimizer, prepare_model, to_memory_format, uses_channels_last

__all__ = [
    "EMA",
    "NoiseSchedule",
    "OBJECTIVES",
    "ddim_step",
    "diffusion_loss",
    "flow_matching_loss",
    "guided_prediction",
    "sample_diffusion",
    "sample_flow",
    "to_images",
    "train_diffusion",
]

OBJECTIVES = ("eps", "velocity")
"""``"eps"``: a diffusion model that predicts the noise; ``"velocity"``: flow matching."""


# ------------------------------------------------------------------------------ schedule
class NoiseSchedule:
    """The variance schedule beta_1..beta_T and everything derived from it (Ho et al. 2020).

    Forward process: q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I); in closed
    form q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) with
    alpha_bar_t = prod_{s <= t} (1 - beta_s).

    Attributes (float64 tensors of length T + 1, indexed by t = 0..T):
        betas (``betas[0] = 0``), alphas = 1 - betas, alpha_bars (``alpha_bars[0] = 1``).

    Args:
        betas: (T,) the variances beta_1..beta_T, each in (0, 1).
    """

    def __init__(self, betas: torch.Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64).cpu()
        if betas.dim() != 1 or len(betas) == 0:
            raise ValueError(f"betas must have shape (T,) with T >= 1, got {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(
                f"every beta_t must lie in (0, 1), got values in "
                f"[{betas.min().item():.3g}, {betas.max().item():.3g}]"
            )
        self.T = len(betas)
        self.betas = torch.cat([torch.zeros(1, dtype=torch.float64), betas])
        self.alphas = 1 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, 0)
        self._cache: dict = {}

    @classmethod
    def linear(cls, T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> NoiseSchedule:
        """Ho et al. (2020): beta_t linear from ``beta_1`` to ``beta_T`` (their T = 1000)."""
        check_positive(T, "T", integer=True)
        return cls(torch.linspace(beta_1, beta_T, T, dtype=torch.float64))

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
        """Nichol & Dhariwal (2021): abar_t = f(t) / f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2)."""
        check_positive(T, "T", integer=True)
        u = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        return cls((1 - abar[1:] / abar[:-1]).clamp(max=max_beta))

    def __repr__(self) -> str:
        return (f"NoiseSchedule(T={self.T}, beta_1={self.betas[1].item():.3g}, "
                f"beta_T={self.betas[-1].item():.3g}, "
                f"alpha_bar_T={self.alpha_bars[-1].item():.3g})")

    def check_t(self, t: torch.Tensor, low: int = 0, name: str = "t") -> torch.Tensor:
        """Check that t (N,) holds integer steps in ``low``..T and return it."""
        check_tensor(t, name, shape=(None,), dtype=(torch.int64, torch.int32))
        if len(t) and (int(t.min()) < low or int(t.max()) > self.T):
            raise ValueError(
                f"{name} must hold integer steps in {low}..{self.T} (T = {self.T}), got values "
                f"in {int(t.min())}..{int(t.max())}"
            )
        return t

    def _get(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``self.<name>[t]`` as like's dtype and device, shaped (N, 1, 1, ...) to broadcast."""
        key = (name, like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = getattr(self, name).to(device=like.device, dtype=like.dtype)
        return self._cache[key][t.to(like.device)].reshape(-1, *[1] * (like.dim() - 1))

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) (float64); t in 1..T."""
        t = self.check_t(torch.as_tensor(t).reshape(-1), low=1)
        ab = self.alpha_bars[t.cpu()]
        return ab / (1 - ab)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise, a draw of q(x_t | x_0).

        Args:
            x0: (N, ...) data; t: (N,) int steps in 0..T; noise: like x0, standard normal.
        """
        check_tensor(x0, "x0", floating=True)
        check_tensor(noise, "noise", shape=tuple(x0.shape))
        self.check_t(t)
        if len(t) != len(x0):
            raise ValueError(f"t has {len(t)} entries but x0 has {len(x0)} rows")
        ab = self._get("alpha_bars", t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def q_step(self, x_prev: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """One step of the chain: x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) noise, t in 1..T."""
        check_tensor(x_prev, "x_prev", floating=True)
        check_tensor(noise, "noise", shape=tuple(x_prev.shape))
        self.check_t(t, low=1)
        b = self._get("betas", t, x_prev)
        return (1 - b).sqrt() * x_prev + b.sqrt() * noise

    def posterior(self, x0: torch.Tensor, xt: torch.Tensor,
                  t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (N, ...) and variance (N, 1, ...) of q(x_{t-1} | x_t, x_0), t in 1..T.

        mean = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
               + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
        var  = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t         (Ho et al. 2020, eq. 7)
        """
        check_tensor(x0, "x0", floating=True)
        check_tensor(xt, "xt", shape=tuple(x0.shape), floating=True)
        self.check_t(t, low=1)
        ab, ab_prev = self._get("alpha_bars", t, x0), self._get("alpha_bars", t - 1, x0)
        b, a = self._get("betas", t, x0), self._get("alphas", t, x0)
        mean = ab_prev.sqrt() * b / (1 - ab) * x0 + a.sqrt() * (1 - ab_prev) / (1 - ab) * xt
        return mean, (1 - ab_prev) / (1 - ab) * b

    def timesteps(self, steps: int) -> torch.Tensor:
        """``steps + 1`` integer times from T down to 0, evenly spaced: the sampler's grid."""
        _check_steps(steps)
        if steps > self.T:
            raise ValueError(f"steps must be at most T = {self.T}, got {steps}")
        return torch.linspace(self.T, 0, steps + 1, dtype=torch.float64).round().long()


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"the number of sampling steps must be an int >= 1, got {steps!r}")
    return steps


def to_images(x: torch.Tensor) -> torch.Tensor:
    """Model space [-1, 1] -> pixel intensities in [0, 1], clamped: (N, ...) -> (N, ...)."""
    return ((x.float() + 1) / 2).clamp(0, 1)


# ------------------------------------------------------------------------------ losses
def _drop_labels(labels: torch.Tensor | None, n_classes: int, p_uncond: float,
                 generator: torch.Generator | None = None) -> torch.Tensor | None:
    """Replace each label by the "no label" token n_classes with probability p_uncond."""
    if labels is None or p_uncond == 0:
        return labels
    drop = torch.rand(labels.shape, device=labels.device, generator=generator) < p_uncond
    return torch.where(drop, torch.full_like(labels, n_classes), labels)


def diffusion_loss(model: nn.Module, x0: torch.Tensor, schedule: NoiseSchedule,
                   labels: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """The "simple" loss of Ho et al. (2020): E_{t, eps} |eps - eps_theta(x_t, t)|^2 (a scalar).

    t is uniform on 1..T, eps ~ N(0, I), x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps;
    the network sees t / T. The mean is over pixels and batch.

    Args:
        x0: (N, ...) data in model space ([-1, 1] for images); labels: (N,) or None.
    """
    t = torch.randint(1, schedule.T + 1, (len(x0),), device=x0.device, generator=generator)
    eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    xt = schedule.q_sample(x0, t, eps)
    with autocast(x0.device):
        pred = model(xt, t.to(x0.dtype) / schedule.T, labels)
    return F.mse_loss(pred.float(), eps.float())


def flow_matching_loss(model: nn.Module, x1: torch.Tensor, labels: torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Conditional flow matching on straight paths: E |v_theta(x_t, t) - (x1 - x0)|^2 (a scalar).

    x0 ~ N(0, I) (noise), x1 = the data, t ~ U(0, 1), x_t = t x1 + (1 - t) x0: the velocity
    of this path is x1 - x0, data minus noise (Lipman et al. 2023; Liu et al. 2023).

    Args:
        x1: (N, ...) data in model space; labels: (N,) or None.
    """
    x0 = torch.randn(x1.shape, device=x1.device, dtype=x1.dtype, generator=generator)
    t = torch.rand(len(x1), device=x1.device, dtype=x1.dtype, generator=generator)
    tb = t.reshape(-1, *[1] * (x1.dim() - 1))
    xt = tb * x1 + (1 - tb) * x0
    with autocast(x1.device):
        pred = model(xt, t, labels)
    return F.mse_loss(pred.float(), (x1 - x0).float())


# ------------------------------------------------------------------------------ guidance
def _check_guidance(model: nn.Module, labels, w, n: int):
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
        raise ValueError(f"the guidance weight w must be a finite number, got {w!r}")
    n_classes = getattr(model, "n_classes", 0)
    if labels is None:
        if w not in (0, -1) and n_classes:
            raise ValueError(f"guidance (w = {w}) needs labels (N,): it contrasts the "
                             "conditional and the unconditional predictions")
        return None
    if not n_classes:
        raise ValueError("this model is unconditional (n_classes = 0): pass labels=None")
    check_tensor(labels, "labels", shape=(n,), dtype=torch.int64)
    if n and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got values in "
                         f"{int(labels.min())}..{int(labels.max())}")
    return labels


def guided_prediction(model: nn.Module, x: torch.Tensor, t: torch.Tensor,
                      labels: torch.Tensor | None, w: float = 0.0) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022): (1 + w) f(x, t, y) - w f(x, t, no label).

    w = 0 is the conditional model f(x, t, y) and w = -1 the unconditional f(x, t, no label)
    (one network evaluation each); any other w evaluates both, in one batch of 2N. Works for
    noise and velocity predictions alike: the combination is linear.

    Args:
        x: (N, ...) the current state; t: (N,) floats in [0, 1]; labels: (N,) int64 or None.
    """
    if w == -1 or labels is None:
        return model(x, t, None)
    if w == 0:
        return model(x, t, labels)
    null = torch.full_like(labels, model.n_classes)
    both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))
    cond, uncond = both.float().chunk(2)
    return (1 + w) * cond - w * uncond


# ------------------------------------------------------------------------------ samplers
def ddim_step(schedule: NoiseSchedule, x_t: torch.Tensor, eps: torch.Tensor, t: int, s: int,
              eta: float = 0.0, noise: torch.Tensor | None = None,
              clip: bool = False) -> torch.Tensor:
    """One DDIM update from step t to an earlier step s (Song et al. 2021, eq. 12).

    x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)          (the predicted data)
    sigma  = eta sqrt((1 - abar_s) / (1 - abar_t)) sqrt(1 - abar_t / abar_s)
    x_s    = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps + sigma noise

    eta = 0 is deterministic (DDIM); eta = 1 with s = t - 1 is the ancestral DDPM step: its
    mean is the posterior mean of q(x_{t-1} | x_t, x0_hat) and sigma^2 the posterior variance.

    Args:
        x_t, eps: (N, ...) the state and the predicted noise; t, s: ints, 0 <= s < t <= T.
        noise: like x_t, standard normal (needed when eta > 0).
        clip: clamp x0_hat to [-1, 1] (the pixel range) and recompute eps from it.
    """
    if not (isinstance(t, int) and isinstance(s, int) and 0 <= s < t <= schedule.T):
        raise ValueError(f"need integer steps 0 <= s < t <= T = {schedule.T}, got t={t!r}, s={s!r}")
    if not (isinstance(eta, (int, float)) and 0 <= eta <= 1):
        raise ValueError(f"eta must be a number in [0, 1], got {eta!r}")
    ab_t, ab_s = schedule.alpha_bars[t].item(), schedule.alpha_bars[s].item()
    x0 = (x_t - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)
    if clip:
        x0 = x0.clamp(-1, 1)
        eps = (x_t - math.sqrt(ab_t) * x0) / math.sqrt(1 - ab_t)
    sigma = eta * math.sqrt((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s))
    out = math.sqrt(ab_s) * x0 + math.sqrt(max(1 - ab_s - sigma**2, 0.0)) * eps
    if sigma > 0:
        if noise is None:
            raise ValueError("eta > 0 needs noise (a standard normal tensor like x_t)")
        out = out + sigma * noise
    return out


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _prepare_sampling(model, n, shape, labels, w, batch_size):
    check_positive(n, "n", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    device = _model_device(model)
    if labels is not None:
        labels = labels.to(device)
    labels = _check_guidance(model, labels, w, n)
    return device, tuple(shape), labels


@torch.no_grad()
def sample_diffusion(model: nn.Module, schedule: NoiseSchedule, n: int, steps: int = 50,
                     eta: float = 0.0, labels: torch.Tensor | None = None, w: float = 0.0,
                     shape: tuple[int, ...] = (1, 28, 28), clip: bool = True,
                     generator: torch.Generator | None = None, batch_size: int = 1000,
                     return_path: bool = False):
    """Sample from a noise-prediction model with ``steps`` DDIM updates from t = T to t = 0.

    ``eta = 0``: DDIM (deterministic given x_T); ``eta = 1``: ancestral DDPM sampling (with
    ``steps = T``, exactly Ho et al.'s algorithm 2; fewer steps skip along the same grid).
    The network is evaluated ``steps`` times per sample (twice as many rows under guidance).

    Args:
        n: number of samples; shape: one sample's shape (C, H, W), or (D,) for latents.
        labels: (n,) requested classes (conditional models); w: the guidance weight.
        clip: clamp the predicted x_0 to [-1, 1] at every step (images; not for latents).
        generator: a torch.Generator on the model's device for the noise.
        return_path: also return the list of x0 predictions at every step (for figures).

    Returns:
        (n, *shape) samples in model space (use :func:`to_images` for pixels), and the path.
    """
    device, shape, labels = _prepare_sampling(model, n, shape, labels, w, batch_size)
    if not (isinstance(eta, (int, float)) and 0 <= eta <= 1):
        raise ValueError(f"eta must be a number in [0, 1], got {eta!r}")
    grid = schedule.timesteps(steps).tolist()
    was_training = model.training
    model.eval()
    out, path = [], []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        yb = None if labels is None else labels[start:start + m]
        x = torch.randn(m, *shape, device=device, generator=generator)
        for t, s in zip(grid[:-1], grid[1:], strict=True):
            tt = torch.full((m,), t / schedule.T, device=device)
            with autocast(device):
                eps = guided_prediction(model, x, tt, yb, w).float()
            noise = torch.randn(x.shape, device=device, generator=generator) if eta else None
            if return_path and start == 0:
                ab = schedule.alpha_bars[t].item()
                path.append((x - math.sqrt(1 - ab) * eps) / math.sqrt(ab))
            x = ddim_step(schedule, x, eps, t, s, eta, noise, clip)
        out.append(x)
    model.train(was_training)
    x = torch.cat(out)
    return (x, path) if return_path else x


@torch.no_grad()
def sample_flow(model: nn.Module, n: int, steps: int = 20, method: str = "euler",
                labels: torch.Tensor | None = None, w: float = 0.0,
                shape: tuple[int, ...] = (1, 28, 28), generator: torch.Generator | None = None,
                batch_size: int = 1000, return_path: bool = False):
    """Integrate dx/dt = v_theta(x, t) from noise at t = 0 to data at t = 1.

    Euler: x <- x + h v(x, t), one network evaluation per step. Heun (the trapezoidal
    predictor-corrector): x' = x + h v(x, t); x <- x + h/2 [v(x, t) + v(x', t + h)], two per
    step. Steps are equal, h = 1 / steps.

    Args: as :func:`sample_diffusion`; ``method`` is ``"euler"`` or ``"heun"``.

    Returns:
        (n, *shape) samples in model space, and (``return_path``) the states after each step.
    """
    check_choice(method, "ODE solver", ("euler", "heun"))
    _check_steps(steps)
    device, shape, labels = _prepare_sampling(model, n, shape, labels, w, batch_size)
    was_training = model.training
    model.eval()
    h = 1.0 / steps
    out, path = [], []

    def velocity(x, t, yb):
        tt = torch.full((len(x),), t, device=device)
        with autocast(device):
            return guided_prediction(model, x, tt, yb, w).float()

    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        yb = None if labels is None else labels[start:start + m]
        x = torch.randn(m, *shape, device=device, generator=generator)
        for i in range(steps):
            t = i * h
            v = velocity(x, t, yb)
            if method == "heun":
                x_pred = x + h * v
                x = x + h / 2 * (v + velocity(x_pred, t + h, yb))
            else:
                x = x + h * v
            if return_path and start == 0:
                path.append(x)
        out.append(x)
    model.train(was_training)
    x = torch.cat(out)
    return (x, path) if return_path else x


# ------------------------------------------------------------------------------ training
class EMA:
    """An exponential moving average of a model's weights, for sampling.

    After each optimizer step, ``ema.update(model)`` sets
    theta_ema <- d theta_ema + (1 - d) theta with d = min(decay, (1 + k) / (10 + k)) at
    update k: the warm-up keeps the average from remembering the random initial weights in a
    short run. ``ema.model`` is a frozen copy of the model, in eval mode.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not (isinstance(decay, (int, float)) and 0 <= decay < 1):
            raise ValueError(f"the EMA decay must be a number in [0, 1), got {decay!r}")
        self.decay, self.updates = float(decay), 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_p = list(self.model.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in model.parameters()], 1 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)


def _check_training_data(model, x, labels, rescale, objective):
    check_choice(objective, "objective", OBJECTIVES)
    check_tensor(x, "images" if rescale else "x", floating=True)
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(f"the training data must have shape (N, ...) with N >= 1, got "
                         f"{tuple(x.shape)}")
    device = _model_device(model)
    if x.device != device:
        raise ValueError(f"the data are on {x.device} but the model is on {device}: move one "
                         "of them (the data stay on the model's device and are batched there)")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"the training data contain {int((~torch.isfinite(x)).sum())} NaN or "
                         "infinite values")
    if rescale and (float(x.min()) < 0 or float(x.max()) > 1):
        raise ValueError(
            f"images must be pixel intensities in [0, 1] (they are rescaled to [-1, 1], the "
            f"range the model and the clipping assume), got values in "
            f"[{float(x.min()):.3g}, {float(x.max()):.3g}]"
        )
    n_classes = getattr(model, "n_classes", 0)
    if n_classes and labels is None:
        raise ValueError(f"the model is conditional on {n_classes} classes: pass labels (N,)")
    if labels is not None:
        if not n_classes:
            raise ValueError("the model is unconditional (n_classes = 0): pass labels=None")
        check_tensor(labels, "labels", shape=(len(x),), dtype=torch.int64)
        if labels.device != device:
            raise ValueError(f"the labels are on {labels.device} but the model is on {device}")
        if int(labels.min()) < 0 or int(labels.max()) >= n_classes:
            raise ValueError(f"labels must lie in 0..{n_classes - 1}, got values in "
                             f"{int(labels.min())}..{int(labels.max())}")


def train_diffusion(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    steps: int = 1000,
    objective: str = "eps",
    schedule: NoiseSchedule | None = None,
    batch_size: int = 128,
    lr: float = 2e-3,
    warmup: int = 50,
    p_uncond: float = 0.1,
    ema: EMA | None = None,
    rescale: bool = True,
    log_every: int = 50,
    callback: Callable[[int], None] | None = None,
    callback_every: int = 0,
    progress: bool = True,
    seed: int | None = 0,
    compile: bool | None = None,
) -> dict:
    """Train a diffusion (``objective="eps"``) or flow-matching (``"velocity"``) model.

    The course's training conventions: the data stay on the model's device and batches are
    sliced there (:func:`course_utils.batches`); bf16 autocast, fused AdamW and channels_last
    on CUDA (:mod:`course_utils.engine`); the loss is summed on the device and read once per
    ``log_every`` steps, and a non-finite loss is caught there (a flag kept on the device, so
    no ``.item()`` per step). AdamW with a linear warm-up over ``warmup`` steps, then a cosine
    decay to 0 at ``steps``.

    Args:
        x: images (N, C, H, W) in [0, 1] (``rescale=True``: mapped to [-1, 1]), or any
            (N, ...) data already in model space (``rescale=False``, e.g. VAE latents).
        labels: (N,) int64 in 0..n_classes-1 for a conditional model, else None.
        steps: optimizer steps (batches of ``batch_size``, reshuffled every epoch).
        schedule: the noise schedule (``"eps"`` only; default ``NoiseSchedule.linear()``).
        p_uncond: for conditional models, the share of labels replaced by "no label" (the
            label dropout that lets one network serve classifier-free guidance).
        ema: an :class:`EMA` updated after every step.
        callback: called as ``callback(step)`` every ``callback_every`` steps (snapshots).
        seed: seeds the shuffling and the noise (``None``: the global generator).

    Returns:
        ``{"loss": [...] (mean over each log_every steps), "step": [...], "train_time": s}``
        (seconds of training, not counting the callbacks).
    """
    check_positive(steps, "steps", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    check_positive(lr, "lr")
    check_positive(log_every, "log_every", integer=True)
    if not (isinstance(p_uncond, (int, float)) and 0 <= p_uncond < 1):
        raise ValueError(f"p_uncond must be a probability in [0, 1), got {p_uncond!r}")
    _check_training_data(model, x, labels, rescale, objective)
    if len(x) < batch_size:
        raise ValueError(f"need at least one full batch: {len(x)} examples for batch_size "
                         f"{batch_size}")
    if objective == "eps":
        schedule = schedule if schedule is not None else NoiseSchedule.linear()
    elif schedule is not None:
        raise ValueError("flow matching (objective='velocity') uses no noise schedule")
    from course_utils.data import batches

    device = x.device
    gen = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    opt = make_optimizer("adamw", model.parameters(), lr=lr, weight_decay=0.0)
    warmup = min(warmup, steps - 1)

    def lr_factor(i):
        if i < warmup:
            return (i + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (i - warmup) / max(steps - warmup, 1)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    net = prepare_model(model, compile, data_parallel=False)
    channels_last = uses_channels_last(model)
    n_classes = getattr(model, "n_classes", 0)
    tensors = (x,) if labels is None else (x, labels)
    history = {"loss": [], "step": [], "train_time": 0.0}
    total = torch.zeros((), device=device)
    bad = torch.zeros((), dtype=torch.bool, device=device)
    count, step = 0, 0
    model.train()
    bar = tqdm(total=steps, disable=not progress, leave=False, desc=f"train ({objective})")
    t0, callback_time = time.perf_counter(), 0.0
    while step < steps:
        for batch in batches(*tensors, batch_size=batch_size, drop_last=True, generator=gen):
            xb = batch[0] * 2 - 1 if rescale else batch[0]
            xb = to_memory_format(xb, channels_last)
            yb = _drop_labels(batch[1] if n_classes else None, n_classes, p_uncond, gen)
            if objective == "eps":
                loss = diffusion_loss(net, xb, schedule, yb, gen)
            else:
                loss = flow_matching_loss(net, xb, yb, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update(model)
            loss = loss.detach()
            bad |= ~torch.isfinite(loss)
            total += loss
            count += 1
            step += 1
            bar.update()
            if count == log_every or step == steps:
                if bool(bad):  # one synchronisation per logging interval
                    bar.close()
                    raise FloatingPointError(
                        f"the {objective} loss became NaN or infinite between steps "
                        f"{step - count + 1} and {step}: lower the learning rate (lr={lr}) or "
                        "check the data"
                    )
                history["loss"].append(float(total) / count)
                history["step"].append(step)
                total.zero_()
                count = 0
            if callback is not None and callback_every and step % callback_every == 0:
                c0 = time.perf_counter()
                model.eval()
                callback(step)
                model.train()
                callback_time += time.perf_counter() - c0
            if step == steps:
                break
    bar.close()
    history["train_time"] = time.perf_counter() - t0 - callback_time  # without the callbacks
    model.eval()
    return history
