"""Variational autoencoders: the models, the loss, training, and the numbers we report.

Lecture 04 (``notebooks/04_vae_theory.ipynb``) derives everything here; lecture 05
(``notebooks/05_vae_mnist.ipynb``) writes the loss and one training step out in full,
then uses this module. Contents:

- :func:`gaussian_kl`         closed-form KL(N(mu, diag(exp(logvar))) || N(0, I)) (lecture 04)
- :class:`VAE`, :class:`CVAE` the 784-400-20 VAE of the PyTorch examples, and a conditional one
- :func:`vae_loss`            reconstruction (Bernoulli cross-entropy) + beta * KL, per image
- :func:`train_vae`           Adam over on-device batches, a progress bar, a loss history
- :func:`evaluate_vae`        the test loss the pytorch/examples VAE prints
- :func:`negative_elbo`       one score per image (anomaly detection, 05)
- :func:`iwae_log_likelihood` the importance-weighted estimate of log p(x)    (05, "IWAE")
- :func:`roc_auc`             area under the ROC curve (ties counted as 1/2)

Shapes: ``x`` is (N, 784) floats in [0, 1] (or (N, 1, 28, 28), flattened for you);
``y`` is (N,) int64 class labels for the CVAE; ``z`` is (N, latent_dim).
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from course_utils import distributed
from course_utils.checks import check_ids, check_positive, check_tensor, check_values
from course_utils.data import batches
from course_utils.devices import autocast
from course_utils.engine import check_loss, make_optimizer, prepare_model
from course_utils.resume import Resumer

__all__ = [
    "CVAE",
    "VAE",
    "evaluate_vae",
    "gaussian_kl",
    "iwae_log_likelihood",
    "load_or_train_vae",
    "negative_elbo",
    "roc_auc",
    "train_vae",
    "vae_loss",
]

LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) for each row, in nats.

    ``0.5 * sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)``, derived in lecture 04.

    Args:
        mu, logvar: (N, d) means and log-variances of q(z|x).

    Returns:
        (N,) the KL of each row.
    """
    check_tensor(mu, "mu", shape=(None, None), floating=True)
    check_tensor(logvar, "logvar", shape=tuple(mu.shape), floating=True)
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(dim=1)


def _flat(x: torch.Tensor, in_dim: int, name: str = "x") -> torch.Tensor:
    check_tensor(x, name, floating=True)
    if x.dim() == 4:
        x = x.reshape(len(x), -1)
    if x.dim() != 2 or x.shape[1] != in_dim:
        raise ValueError(
            f"{name} must have shape (N, {in_dim}) or (N, 1, 28, 28), got {tuple(x.shape)}"
        )
    return x


class VAE(nn.Module):
    """The VAE of the PyTorch examples: 784 -> 400 -> (20 means, 20 log-variances) -> 400 -> 784.

    ``decode`` ends in a sigmoid (pixel intensities); training uses the logits
    from ``decode_logits`` with ``binary_cross_entropy_with_logits``, which is
    the same loss computed stably.

    Args:
        in_dim: pixels per image (784).
        hidden: width of the hidden layers (400).
        latent_dim: d, the size of z (20; 2 for a latent map).
    """

    def __init__(self, in_dim: int = 784, hidden: int = 400, latent_dim: int = 20):
        super().__init__()
        for v, n in ((in_dim, "in_dim"), (hidden, "hidden"), (latent_dim, "latent_dim")):
            check_positive(v, n, integer=True)
        self.in_dim, self.latent_dim = in_dim, latent_dim
        self.fc1 = nn.Linear(in_dim + self._extra(), hidden)
        self.fc21 = nn.Linear(hidden, latent_dim)  # means
        self.fc22 = nn.Linear(hidden, latent_dim)  # log-variances
        self.fc3 = nn.Linear(latent_dim + self._extra(), hidden)
        self.fc4 = nn.Linear(hidden, in_dim)

    def _extra(self) -> int:
        return 0

    def _cond(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return h

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """(N, 784) images -> ``(mu, logvar)``, each (N, latent_dim)."""
        x = _flat(x, self.in_dim)
        h = F.relu(self.fc1(self._cond(x, y)))
        return self.fc21(h), self.fc22(h)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I): a sample that gradients flow through."""
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(N, latent_dim) codes -> (N, 784) Bernoulli logits."""
        check_tensor(z, "z", shape=(None, self.latent_dim), floating=True)
        return self.fc4(F.relu(self.fc3(self._cond(z, y))))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(N, latent_dim) codes -> (N, 784) pixel means in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z, y))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """Returns ``(logits, mu, logvar)``: (N, 784), (N, d), (N, d)."""
        mu, logvar = self.encode(x, y)
        z = self.reparameterize(mu, logvar)
        return self.decode_logits(z, y), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """n images (n, 784) decoded from z ~ N(0, I)."""
        check_positive(n, "n", integer=True)
        z = torch.randn(n, self.latent_dim, device=self.fc4.weight.device)
        return self.decode(z, y)


class CVAE(VAE):
    """A conditional VAE: the one-hot label is appended to the encoder's and decoder's input.

    Every method takes labels ``y`` (N,) int64 in 0..n_classes-1; ``sample(n, y)``
    generates the requested digits.
    """

    def __init__(self, in_dim: int = 784, hidden: int = 400, latent_dim: int = 20,
                 n_classes: int = 10):
        check_positive(n_classes, "n_classes", integer=True)
        self.n_classes = n_classes
        super().__init__(in_dim, hidden, latent_dim)

    def _extra(self) -> int:
        return self.n_classes

    def _cond(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ValueError("a CVAE needs labels y (N,) int64; got None")
        check_tensor(y, "y", shape=(len(h),), dtype=torch.int64)
        if len(y) and (y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(
                f"labels y must lie in 0..{self.n_classes - 1}, got values in "
                f"{int(y.min())}..{int(y.max())}"
            )
        return torch.cat([h, F.one_hot(y, self.n_classes).to(h.dtype)], dim=1)


def vae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0):
    """The negative ELBO (beta = 1) averaged over the batch, in nats per image.

    ``loss = distortion + beta * rate``, where, for each image,
    distortion = BCE summed over the 784 pixels and rate = KL(q(z|x) || N(0, I)).

    Args:
        logits: (N, 784) decoder logits; x: (N, 784) or (N, 1, 28, 28) targets in [0, 1];
        mu, logvar: (N, d).
        beta: weight of the KL term (> 0).

    Returns:
        ``(loss, distortion, rate)``: three scalar tensors (means over the batch).
    """
    check_positive(beta, "beta")
    check_tensor(logits, "logits", shape=(None, None), floating=True)
    x = _flat(x, logits.shape[1])
    if len(x) != len(logits):
        raise ValueError(f"x has {len(x)} rows but logits has {len(logits)}")
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
    kl = gaussian_kl(mu, logvar).mean()
    return rec + beta * kl, rec, kl


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _data(model: VAE, x: torch.Tensor, y: torch.Tensor | None):
    """Check the data once and move it to the model's device: x (N, in_dim), y (N,) or None.

    x must hold finite values in [0, 1] (the Bernoulli loss scores pixel intensities);
    a CVAE needs labels in 0..n_classes-1.
    """
    device = _device(model)
    x = check_values(_flat(x, model.in_dim).to(device), "x", 0, 1, hint=(
        "the Bernoulli loss scores pixel intensities in [0, 1]: rescale the images "
        "(e.g. (x + 1) / 2 for images in [-1, 1], x / 255 for bytes)"))
    if isinstance(model, CVAE):
        if y is None:
            raise ValueError("a CVAE needs labels y (N,) int64; got None")
        check_tensor(y, "y", shape=(len(x),), dtype=torch.int64)
        check_ids(y, "labels y", model.n_classes, "n_classes")
    return x, (None if y is None else y.to(device))


def train_vae(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, epochs: int = 10,
              batch_size: int = 128, lr: float = 1e-3, beta: float = 1.0,
              progress: bool = True, seed: int | None = 0, compile: bool | None = None,
              resume=None) -> dict:
    """Train ``model`` with Adam on in-memory data, the way lecture 05 writes it out.

    The data are checked once (finite, in [0, 1], labels in range), moved to the model's
    device once and sliced there (:func:`course_utils.batches`); losses are summed on the
    device and read once per epoch (no ``.item()`` per step), when a NaN or infinite loss
    stops the run (:class:`course_utils.engine.DivergenceError`).
    On CUDA the forward pass runs under bf16 autocast and Adam is fused
    (:mod:`course_utils.engine`). Under ``torchrun`` it trains data-parallel
    (:mod:`course_utils.distributed`): each process takes its shard of every batch.

    Args:
        x: (N, 784) or (N, 1, 28, 28) floats in [0, 1]; y: (N,) labels (CVAE only).
        epochs, batch_size: positive ints; lr, beta: positive numbers.
        progress: show a tqdm bar over epochs (``leave=False``).
        seed: seeds the shuffling generator (``None``: the global generator).
        compile: ``torch.compile`` the model (``None``: ``$COURSE_COMPILE``, off by default).
        resume: a folder for resume files (``None``: the one :func:`course_utils.load_or_train`
            sets, else none); an interrupted run continues from its last one
            (:mod:`course_utils.resume`).

    Returns:
        history: ``{"loss", "rec", "kl": per-epoch means per image, "epoch_time": seconds}``.
    """
    check_positive(epochs, "epochs", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    check_positive(lr, "lr")
    check_positive(beta, "beta")
    device = _device(model)
    x, y = _data(model, x, y)
    tensors = (x,) if y is None else (x, y)
    gen = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    opt = make_optimizer("adam", model.parameters(), lr=lr)
    net = prepare_model(model, compile)  # DDP under torchrun, compiled if asked; else model
    hist = {"loss": [], "rec": [], "kl": [], "epoch_time": []}
    res = Resumer("train_vae", resume, {"model": model}, {"opt": opt}, generators=[gen],
                  settings=dict(x=x, y=y, epochs=epochs, batch_size=batch_size, lr=lr,
                                beta=beta, seed=seed), total=epochs, unit="epoch")
    saved = res.restore()
    start = 0 if saved is None else saved["done"]
    hist = hist if saved is None else saved["history"]
    model.train()
    show = progress and distributed.is_main()
    for epoch in tqdm(range(start, epochs), initial=start, total=epochs, desc="epochs",
                      leave=False, disable=not show):
        t0 = time.perf_counter()
        sums = torch.zeros(3, device=device)
        for b in batches(*tensors, batch_size=batch_size, generator=gen):
            n_global = len(b[0])
            b = distributed.shard(*b)  # this process's rows (all of them without torchrun)
            xb, yb = b[0], (b[1] if len(b) > 1 else None)
            with autocast(device):
                logits, mu, logvar = net(xb, yb)
            loss, rec, kl = vae_loss(logits.float(), xb, mu.float(), logvar.float(), beta)
            opt.zero_grad(set_to_none=True)
            distributed.scale_loss(loss, len(xb), n_global).backward()
            opt.step()
            sums += torch.stack([loss, rec, kl]).detach() * len(xb)
        sums = (distributed.all_reduce_sum(sums) / len(x)).tolist()  # one sync per epoch
        check_loss(sums, f"in epoch {epoch + 1} of {epochs}",
                   hist["loss"][-1] if hist["loss"] else None)
        for k, v in zip(("loss", "rec", "kl"), sums, strict=True):
            hist[k].append(v)
        hist["epoch_time"].append(time.perf_counter() - t0)
        res.save(epoch + 1, hist)
    model.eval()
    res.finish()
    return hist


def load_or_train_vae(path, x: torch.Tensor, y: torch.Tensor | None = None, seed: int = 0,
                      model: VAE | None = None, **train_kwargs) -> tuple[VAE, dict]:
    """Load a VAE from ``path``, or train it with :func:`train_vae` and save it there.

    Everything is seeded with ``seed`` before the model is built (and the shuffling
    uses it too), so the same call gives the same model; delete the file to train again.

    Args:
        x: (N, 784) or (N, 1, 28, 28) in [0, 1], on the device to train on; y: (N,) (CVAE).
        model: the (untrained) model to use; default ``VAE()`` (784-400-20).
        **train_kwargs: passed to :func:`train_vae` (``epochs``, ``batch_size``...).

    Returns:
        ``(model, history)``: the model in eval mode on ``x``'s device, and the history.
    """
    from course_utils.checkpoint import load_or_train
    from course_utils.devices import seed_everything

    seed_everything(seed)
    model = (model if model is not None else VAE()).to(x.device)
    train_kwargs.setdefault("progress", False)
    history = load_or_train(model, path, lambda: train_vae(model, x, y, seed=seed,
                                                           **train_kwargs))
    model.eval()
    return model, history


def _eval_batches(model: VAE, x: torch.Tensor, y: torch.Tensor | None, batch_size: int):
    """Yield ``(xb, yb)`` in stored order on the model's device: xb (B, in_dim), yb (B,) or None."""
    check_positive(batch_size, "batch_size", integer=True)
    x, y = _data(model, x, y)
    tensors = (x,) if y is None else (x, y)
    for b in batches(*tensors, batch_size=batch_size, shuffle=False):
        yield b[0], (b[1] if len(b) > 1 else None)


@torch.no_grad()
def evaluate_vae(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None,
                 beta: float = 1.0, batch_size: int = 1000) -> dict:
    """Mean loss, distortion and rate per image over a dataset, with one z sample per image.

    With beta = 1 this is the test loss the pytorch/examples VAE prints.

    Returns:
        ``{"loss": float, "rec": float, "kl": float}`` in nats per image.
    """
    model.eval()
    sums = torch.zeros(3, device=_device(model))
    for xb, yb in _eval_batches(model, x, y, batch_size):
        logits, mu, logvar = model(xb, yb)
        sums += torch.stack(vae_loss(logits, xb, mu, logvar, beta)) * len(xb)
    loss, rec, kl = (sums / len(x)).tolist()
    return {"loss": loss, "rec": rec, "kl": kl}


@torch.no_grad()
def negative_elbo(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None,
                  batch_size: int = 1000) -> torch.Tensor:
    """-ELBO of each image (one z sample), shape (N,): large means "unlike the training data"."""
    out = []
    for xb, yb in _eval_batches(model, x, y, batch_size):
        logits, mu, logvar = model(xb, yb)
        rec = F.binary_cross_entropy_with_logits(logits, xb, reduction="none").sum(1)
        out.append(rec + gaussian_kl(mu, logvar))
    return torch.cat(out)


@torch.no_grad()
def iwae_log_likelihood(model: VAE, x: torch.Tensor, k: int = 100, y: torch.Tensor | None = None,
                        batch_size: int = 100) -> torch.Tensor:
    """Importance-weighted lower bound on log p(x) (Burda et al. 2016), per image, shape (N,).

    ``log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x)`` with z_i ~ q(z|x). With k = 1 its
    expectation is the ELBO; it increases with k towards log p(x). "log p(x|z)" is the
    negative summed BCE, as in the training loss (see lecture 05 on what that means for
    grayscale pixels).
    """
    check_positive(k, "k", integer=True)
    device = _device(model)
    out = []
    for xb, yb in _eval_batches(model, x, y, batch_size):
        mu, logvar = model.encode(xb, yb)
        std = torch.exp(0.5 * logvar)
        eps = torch.randn(k, *mu.shape, device=device)  # (k, B, d)
        z = mu + std * eps
        log_q = (-0.5 * (eps.pow(2) + LOG_2PI) - 0.5 * logvar).sum(-1)  # (k, B)
        log_pz = (-0.5 * (z.pow(2) + LOG_2PI)).sum(-1)
        yk = None if yb is None else yb.repeat(k)
        logits = model.decode_logits(z.reshape(-1, model.latent_dim), yk)
        xk = xb.repeat(k, 1)
        log_px = -F.binary_cross_entropy_with_logits(logits, xk, reduction="none").sum(1)
        log_w = log_px.reshape(k, len(xb)) + log_pz - log_q
        out.append(torch.logsumexp(log_w, dim=0) - math.log(k))
    return torch.cat(out)


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count 1/2.

    Computed from ranks (the Mann-Whitney U statistic), O(N log N).

    Args:
        scores: (N,) floats, larger = "more likely positive".
        labels: (N,) 0/1 or bool, 1 = positive (e.g. the held-out digit).
    """
    s = torch.as_tensor(scores).detach().double().cpu()
    lab = torch.as_tensor(labels).detach().cpu()
    if s.dim() != 1 or lab.shape != s.shape:
        raise ValueError(
            f"scores and labels must both have shape (N,), got {tuple(s.shape)} and "
            f"{tuple(lab.shape)}"
        )
    if not bool(((lab == 0) | (lab == 1)).all()):
        raise ValueError("labels must be 0/1 (or bool)")
    pos = lab.bool()
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need both classes; got {n_pos} positives and {n_neg} negatives")
    # average ranks (1-based) with ties sharing their mean rank
    sorted_s, order = torch.sort(s)
    _, inverse, counts = torch.unique_consecutive(sorted_s, return_inverse=True,
                                                  return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    mean_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(s)
    ranks[order] = mean_rank[inverse]
    u = ranks[pos].sum().item() - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)
