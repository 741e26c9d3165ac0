"""GANs: losses, one training step, toy and image models, and training loops.

Lecture 02 (``notebooks/02_gan_theory.ipynb``) writes the losses and one step
out in full and then uses :func:`gan_step` and :func:`train_toy_gan`; lecture
03 (``notebooks/03_gans_mnist.ipynb``) does the same for images with
:func:`train_gan`.

Conventions:

- Discriminators return **logits** (N,), not probabilities: the losses use
  ``binary_cross_entropy_with_logits``, which is numerically stable and safe
  under mixed precision. ``torch.sigmoid(D(x))`` is the probability "real".
- Image generators output (N, 1, 28, 28) in [-1, 1] (Tanh); :func:`train_gan`
  takes images in [0, 1] (as :func:`course_utils.load_mnist` gives them) and
  rescales them.
- Conditional models take ``labels`` (N,) int64 in 0..n_classes-1.
- Toy models hold ``n_models`` independent networks (one per seed) in stacked
  weights, so several seeds train at once: inputs (S, B, dim) -> (S, B, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from course_utils.checks import (
    check_choice,
    check_ids,
    check_min_rows,
    check_positive,
    check_tensor,
    check_values,
)
from course_utils.devices import autocast
from course_utils.engine import (
    check_loss,
    make_optimizer,
    prepare_model,
    to_memory_format,
    uses_channels_last,
)
from course_utils.resume import Resumer

G_LOSSES = ("non_saturating", "saturating")
IMAGE_SHAPE = (1, 28, 28)


# --------------------------------------------------------------------------- losses
def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss -V(D, G) = -E[log D(x)] - E[log(1 - D(G(z)))] (a scalar).

    Args:
        real_logits, fake_logits: D's logits on real and generated samples, any shape.
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def g_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """Generator loss on D's logits for generated samples (a scalar).

    ``"saturating"``: E[log(1 - D(G(z)))] (minimised; the minimax game as written).
    ``"non_saturating"``: -E[log D(G(z))] (the one used in practice; lecture 02,
    "Saturating vs non-saturating").
    """
    check_choice(kind, "generator loss", G_LOSSES)
    if kind == "saturating":
        # log(1 - sigmoid(l)) = -softplus(l)
        return -F.softplus(fake_logits).mean()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def gan_step(
    G: nn.Module,
    D: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    z: torch.Tensor,
    labels: torch.Tensor | None = None,
    loss: str = "non_saturating",
) -> torch.Tensor:
    """One GAN update: a discriminator step, then a generator step on the same z.

    Args:
        real: a batch of real samples, in the shape D expects.
        z: latent codes for a batch of the same size, in the shape G expects.
        labels: class labels (N,) for conditional models, else None.
        loss: the generator loss, ``"non_saturating"`` or ``"saturating"``.

    Returns:
        A (4,) tensor on the device, not synchronised: D loss, G loss, mean
        D(x) and mean D(G(z)) (probabilities, before the updates).
    """
    extra = () if labels is None else (labels,)
    with autocast(real.device):
        fake = G(z, *extra)
        real_logits = D(real, *extra)
        fake_logits = D(fake.detach(), *extra)  # detach: this step must not update G
        loss_d = d_loss(real_logits, fake_logits)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    with autocast(real.device):
        fake_logits_g = D(fake, *extra)  # D was just updated: score the fakes again
        loss_g = g_loss(fake_logits_g, loss)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    with torch.no_grad():
        return torch.stack(
            [
                loss_d.float(),
                loss_g.float(),
                torch.sigmoid(real_logits.float()).mean(),
                torch.sigmoid(fake_logits.float()).mean(),
            ]
        )


def _history_append(history: dict, total: torch.Tensor, count: int, step: int,
                    steps: int) -> None:
    """Log the means of the last ``count`` steps (ending at ``step`` of ``steps``), or stop
    with :class:`course_utils.engine.DivergenceError` if one is NaN or infinite."""
    means = (total / count).tolist()  # one synchronisation per logging interval
    last = f"D {history['D'][-1]:.4g}, G {history['G'][-1]:.4g}" if history["D"] else None
    check_loss(means, f"in steps {step - count + 1}-{step} (of {steps})", last)
    for key, v in zip(("D", "G", "D(x)", "D(G(z))"), means, strict=True):
        history[key].append(v)


def _same_device(G: nn.Module, D: nn.Module) -> torch.device:
    device, d_device = next(G.parameters()).device, next(D.parameters()).device
    if device != d_device:
        raise ValueError(f"G and D must be on one device; G is on {device}, D on {d_device}")
    return device


# --------------------------------------------------------------------------- toy models
class StackedLinear(nn.Module):
    """``n_models`` independent linear layers: (S, B, in) -> (S, B, out), via ``baddbmm``."""

    def __init__(self, n_models: int, in_features: int, out_features: int):
        super().__init__()
        bound = 1 / math.sqrt(in_features)  # the same init as nn.Linear
        self.weight = nn.Parameter(torch.empty(n_models, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_models, 1, out_features))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


def _stacked_mlp(n_models, sizes, act):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(StackedLinear(n_models, a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def _stacked_input(x, name, n_models, dim):
    """Accept (S, B, dim), or (B, dim) when S == 1; return (S, B, dim) and whether it was 2-D."""
    check_tensor(x, name, floating=True)
    if x.dim() == 2 and n_models == 1:
        x = x.unsqueeze(0)
        flat = True
    else:
        flat = False
    check_tensor(x, name, shape=(n_models, None, dim))
    return x, flat


class ToyGenerator(nn.Module):
    """MLP generator for toy data, ``n_models`` copies at once.

    z (S, B, latent_dim) -> x (S, B, out_dim); with ``n_models == 1`` also
    (B, latent_dim) -> (B, out_dim). ReLU hidden layers of width ``hidden``;
    the output is multiplied by ``scale`` (the data's size, e.g. 4 for the grid).
    """

    def __init__(self, out_dim=2, latent_dim=2, hidden=128, depth=3, n_models=1, scale=1.0):
        super().__init__()
        for v, n in ((out_dim, "out_dim"), (latent_dim, "latent_dim"), (hidden, "hidden"),
                     (depth, "depth"), (n_models, "n_models")):
            check_positive(v, n, integer=True)
        check_positive(scale, "scale")
        self.latent_dim, self.out_dim, self.n_models = latent_dim, out_dim, n_models
        self.scale = float(scale)  # the network works in units of `scale` (data / scale ~ 1)
        self.net = _stacked_mlp(n_models, [latent_dim] + [hidden] * depth + [out_dim], nn.ReLU)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z, flat = _stacked_input(z, "z", self.n_models, self.latent_dim)
        x = self.net(z) * self.scale
        return x[0] if flat else x

    def sample_z(self, batch_size: int, device=None) -> torch.Tensor:
        """Standard normal latent codes (S, batch_size, latent_dim)."""
        return torch.randn(self.n_models, batch_size, self.latent_dim, device=device)


class ToyDiscriminator(nn.Module):
    """MLP discriminator for toy data, ``n_models`` copies, optionally *packed* (PacGAN).

    x (S, B, in_dim) -> logits (S, B // pack). With ``pack = m`` the
    discriminator judges m samples at once: consecutive samples are
    concatenated into one input of size m * in_dim, so B must be divisible by m.
    With ``minibatch_std`` it also sees the batch's standard deviation (one
    extra input feature), so a generator whose samples are too alike is caught.
    Inputs are divided by ``scale`` (the generator's ``scale``) first.
    """

    def __init__(self, in_dim=2, hidden=128, depth=3, n_models=1, pack=1, scale=1.0,
                 minibatch_std=False):
        super().__init__()
        for v, n in ((in_dim, "in_dim"), (hidden, "hidden"), (depth, "depth"),
                     (n_models, "n_models"), (pack, "pack")):
            check_positive(v, n, integer=True)
        check_positive(scale, "scale")
        self.in_dim, self.n_models, self.pack = in_dim, n_models, pack
        self.scale, self.minibatch_std = float(scale), bool(minibatch_std)
        sizes = [in_dim * pack + self.minibatch_std] + [hidden] * depth + [1]
        self.net = _stacked_mlp(n_models, sizes, lambda: nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, flat = _stacked_input(x, "x", self.n_models, self.in_dim)
        s, b, d = x.shape
        if b % self.pack:
            raise ValueError(f"batch size {b} is not divisible by pack={self.pack}")
        h = (x / self.scale).reshape(s, b // self.pack, d * self.pack)
        if self.minibatch_std:  # Karras et al. 2018: the batch's spread as one more input
            spread = h.std(dim=1, keepdim=True).mean(dim=2, keepdim=True)  # (S, 1, 1)
            h = torch.cat([h, spread.expand(-1, h.shape[1], 1)], dim=2)
        logits = self.net(h).squeeze(-1)
        return logits[0] if flat else logits


def train_toy_gan(
    dist,
    G: ToyGenerator,
    D: ToyDiscriminator,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.999),
    loss: str = "non_saturating",
    lr_decay: bool = True,
    snapshot_at: tuple[int, ...] = (),
    n_snapshot: int = 1000,
    log_every: int = 50,
    progress: bool = True,
    callback: Callable[[int], None] | None = None,
    resume=None,
) -> dict:
    """Train toy GANs (all ``G.n_models`` seeds at once) on a :class:`course_utils.toy.Mixture`.

    Each model gets its own real batch (B samples) and latent batch every step.
    With ``lr_decay`` the learning rate falls linearly to 0 over the run, which
    lets the generator settle sharply on the modes at the end.

    Returns:
        ``{"D": [...], "G": [...], "D(x)": [...], "D(G(z))": [...],
        "snapshots": {step: (S, n_snapshot, dim) samples on the CPU}}``, the
        losses averaged over models and over each ``log_every`` steps.
        ``callback(step)``, if given, is called at each step in ``snapshot_at``
        (to draw the discriminator as training goes, for example).

    A NaN or infinite loss stops the run at the next logging sync
    (:class:`course_utils.engine.DivergenceError`). ``resume``: a folder for resume files
    (``None``: the one :func:`course_utils.load_or_train` sets, else none); an interrupted
    run continues from its last one (:mod:`course_utils.resume`).
    """
    check_positive(steps, "steps", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    check_positive(lr, "lr")
    check_positive(log_every, "log_every", integer=True)
    check_choice(loss, "generator loss", G_LOSSES)
    check_tensor(getattr(dist, "means", None), "dist.means", shape=(None, None), floating=True)
    check_values(dist.means, "dist.means")
    check_positive(dist.std, "dist.std")
    if batch_size % D.pack:
        raise ValueError(f"batch_size must be divisible by D.pack = {D.pack} (the discriminator "
                         f"judges packs of {D.pack} samples), got {batch_size}")
    if G.n_models != D.n_models or G.out_dim != dist.dim or D.in_dim != dist.dim:
        raise ValueError(
            f"G ({G.n_models} models, out_dim {G.out_dim}), D ({D.n_models} models, in_dim "
            f"{D.in_dim}) and the data (dim {dist.dim}) do not match"
        )
    device = _same_device(G, D)
    opt_g = make_optimizer("adam", G.parameters(), lr=lr, betas=betas)
    opt_d = make_optimizer("adam", D.parameters(), lr=lr, betas=betas)
    scheds = [
        torch.optim.lr_scheduler.LambdaLR(o, lambda i: 1 - i / steps if lr_decay else 1.0)
        for o in (opt_g, opt_d)
    ]
    means = dist.means.to(device)
    s = G.n_models
    history = {"D": [], "G": [], "D(x)": [], "D(G(z))": [], "snapshots": {}}
    total, count = torch.zeros(4, device=device), 0
    res = Resumer("train_toy_gan", resume, {"G": G, "D": D}, {"G": opt_g, "D": opt_d},
                  {"G": scheds[0], "D": scheds[1]}, total=steps, settings=dict(
                      means=dist.means, std=dist.std, steps=steps, batch_size=batch_size,
                      lr=lr, betas=betas, loss=loss, lr_decay=lr_decay, log_every=log_every,
                      snapshot_at=snapshot_at, n_snapshot=n_snapshot))
    saved = res.restore()
    done = 0 if saved is None else saved["done"]
    history = history if saved is None else saved["history"]
    for step in tqdm(range(done + 1, steps + 1), initial=done, total=steps, disable=not progress,
                     leave=False, desc="toy GAN"):
        k = torch.randint(len(means), (s, batch_size), device=device)
        real = means[k] + dist.std * torch.randn(s, batch_size, dist.dim, device=device)
        total += gan_step(G, D, opt_g, opt_d, real, G.sample_z(batch_size, device), loss=loss)
        for sched in scheds:
            sched.step()
        count += 1
        logged = step % log_every == 0 or step == steps
        if logged:
            _history_append(history, total, count, step, steps)
            total, count = torch.zeros(4, device=device), 0
        if step in snapshot_at:
            history["snapshots"][step] = toy_samples(G, n_snapshot)
            if callback is not None:
                callback(step)
        if logged:
            res.save(step, history)
    res.finish()
    return history


@torch.no_grad()
def toy_samples(G: ToyGenerator, n: int) -> torch.Tensor:
    """``n`` samples from each of G's models: (S, n, out_dim) on the CPU."""
    check_positive(n, "n", integer=True)
    device = next(G.parameters()).device
    return G(G.sample_z(n, device)).float().cpu()


# --------------------------------------------------------------------------- image models
def _one_hot(labels, n_classes, n):
    check_tensor(labels, "labels", shape=(n,), dtype=torch.int64)
    if labels.device.type == "cpu" and n and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"labels must be in 0..{n_classes - 1}, got values in "
            f"{int(labels.min())}..{int(labels.max())}"
        )
    return F.one_hot(labels, n_classes).float()


class _Conditional(nn.Module):
    """Shared argument checks of the image generators and discriminators."""

    n_classes: int = 0

    def _labels(self, labels, n):
        if self.n_classes == 0:
            if labels is not None:
                raise ValueError(f"{type(self).__name__} is unconditional: pass no labels")
            return None
        if labels is None:
            raise ValueError(
                f"{type(self).__name__} is conditional on {self.n_classes} classes: "
                "pass labels (N,)"
            )
        return _one_hot(labels, self.n_classes, n)

    def _z(self, z):
        return check_tensor(z, "z", shape=(None, self.latent_dim), floating=True)

    @staticmethod
    def _images(x):
        return check_tensor(x, "images", shape=(None, *IMAGE_SHAPE), floating=True)


class MLPGenerator(_Conditional):
    """Fully connected generator: z (N, latent_dim) [+ labels (N,)] -> images (N, 1, 28, 28).

    ``hidden=(128, 256)`` is the 100->128->256->784 network of the widely copied tutorial GAN,
    ``(256, 512, 1024)`` its wider one. LeakyReLU(0.2) hidden layers, Tanh output.
    """

    def __init__(self, latent_dim=100, hidden=(256, 512, 1024), n_classes=0):
        super().__init__()
        self.latent_dim, self.n_classes = latent_dim, n_classes
        sizes = [latent_dim + n_classes, *hidden]
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], 784), nn.Tanh())

    def forward(self, z, labels=None):
        z = self._z(z)
        y = self._labels(labels, len(z))
        h = z if y is None else torch.cat([z, y.to(z.dtype)], dim=1)
        return self.net(h).reshape(len(z), *IMAGE_SHAPE)


class MLPDiscriminator(_Conditional):
    """Fully connected discriminator: images (N, 1, 28, 28) [+ labels] -> logits (N,).

    ``hidden=(512, 256)`` is that tutorial's 784->512->256->1 network (there
    with a Sigmoid: here logits), ``(1024, 512, 256)`` with dropout its wider one.
    """

    def __init__(self, hidden=(1024, 512, 256), dropout=0.3, n_classes=0):
        super().__init__()
        self.n_classes = n_classes
        sizes = [784 + n_classes, *hidden]
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
            if dropout:
                layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))

    def forward(self, x, labels=None):
        x = self._images(x).flatten(1)
        y = self._labels(labels, len(x))
        h = x if y is None else torch.cat([x, y.to(x.dtype)], dim=1)
        return self.net(h).squeeze(1)


class DCGenerator(_Conditional):
    """DCGAN generator for 28x28: z [+ one-hot label] -> 7x7 -> 14x14 -> 28x28, Tanh.

    z (N, latent_dim) [+ labels (N,)] -> images (N, 1, 28, 28). Transposed
    convolutions with batch norm and ReLU (Radford et al. 2016), ``width``
    channels at 14x14 and ``2 * width`` at 7x7.
    """

    def __init__(self, latent_dim=64, width=32, n_classes=0):
        super().__init__()
        self.latent_dim, self.n_classes, self.width = latent_dim, n_classes, width
        self.fc = nn.Sequential(
            nn.Linear(latent_dim + n_classes, 2 * width * 7 * 7, bias=False),
            nn.BatchNorm1d(2 * width * 7 * 7),
            nn.ReLU(),
        )
        self.conv = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False),  # 7 -> 14
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, 2, 1),  # 14 -> 28
            nn.Tanh(),
        )

    def forward(self, z, labels=None):
        z = self._z(z)
        y = self._labels(labels, len(z))
        h = z if y is None else torch.cat([z, y.to(z.dtype)], dim=1)
        return self.conv(self.fc(h).reshape(len(z), 2 * self.width, 7, 7))


class DCDiscriminator(_Conditional):
    """DCGAN discriminator for 28x28: strided convolutions with LeakyReLU -> logits (N,).

    images (N, 1, 28, 28) [+ labels (N,), given as ``n_classes`` constant
    one-hot channels] -> 14x14 -> 7x7 -> a linear layer.
    """

    def __init__(self, width=32, n_classes=0):
        super().__init__()
        self.n_classes = n_classes
        self.net = nn.Sequential(
            nn.Conv2d(1 + n_classes, width, 4, 2, 1),  # 28 -> 14
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False),  # 14 -> 7
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, 1),
        )

    def forward(self, x, labels=None):
        x = self._images(x)
        y = self._labels(labels, len(x))
        if y is not None:
            x = torch.cat([x, y.to(x.dtype)[:, :, None, None].expand(-1, -1, 28, 28)], dim=1)
        return self.net(x).squeeze(1)


IMAGE_MODELS = {
    "mlp": (MLPGenerator, MLPDiscriminator),
    "dcgan": (DCGenerator, DCDiscriminator),
}


def make_image_gan(name: str, n_classes: int = 0, **kwargs) -> tuple[nn.Module, nn.Module]:
    """Build ``(G, D)`` by name: ``"mlp"`` or ``"dcgan"`` (``kwargs`` go to G)."""
    check_choice(name, "GAN model", tuple(IMAGE_MODELS))
    g_cls, d_cls = IMAGE_MODELS[name]
    return g_cls(n_classes=n_classes, **kwargs), d_cls(n_classes=n_classes)


def train_gan(
    G: nn.Module,
    D: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    loss: str = "non_saturating",
    fixed_z: torch.Tensor | None = None,
    fixed_labels: torch.Tensor | None = None,
    snapshot_every: int = 1,
    log_every: int = 50,
    progress: bool = True,
    callback: Callable[[int], None] | None = None,
    compile: bool | None = None,
    resume=None,
) -> dict:
    """Train an image GAN (lecture 03) on ``images`` (N, 1, 28, 28) in [0, 1].

    The data stays on its device and is batched there (:func:`course_utils.batches`);
    on CUDA: mixed precision (bfloat16), fused Adam, channels_last for the DCGAN
    (:mod:`course_utils.engine`). ``compile``: ``torch.compile`` G and D (``None``:
    ``$COURSE_COMPILE``, off by default). Conditional models (with
    ``G.n_classes > 0``) need ``labels`` (N,).

    Args:
        fixed_z: (M, latent_dim) codes whose samples are saved every
            ``snapshot_every`` epochs (and before training), to show progress.
        fixed_labels: (M,) labels for ``fixed_z`` (conditional models).
        callback: called with the epoch number after each epoch.
        resume: a folder for resume files (``None``: the one :func:`course_utils.load_or_train`
            sets, else none); an interrupted run continues from the last epoch saved
            (:mod:`course_utils.resume`).

    The data are checked once (finite, in [0, 1], at least one full batch, labels in
    range) and moved to G's device once; a NaN or infinite loss stops the run at the
    next logging sync (:class:`course_utils.engine.DivergenceError`).

    Returns:
        ``{"D": [...], "G": [...], "D(x)": [...], "D(G(z))": [...],
        "snapshots": [(epoch, (M, 1, 28, 28) images in [0, 1] on the CPU), ...]}``
        with the losses averaged over each ``log_every`` steps.
    """
    from course_utils.data import batches

    check_tensor(images, "images", shape=(None, *IMAGE_SHAPE), floating=True)
    check_positive(epochs, "epochs", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    check_positive(lr, "lr")
    check_positive(log_every, "log_every", integer=True)
    check_choice(loss, "generator loss", G_LOSSES)
    device = _same_device(G, D)
    # channels_last on CUDA, compiled if asked. One process only, refused under torchrun
    # before any data check: data-parallel GAN training would need z drawn for the global
    # batch and sharded, per-shard loss scaling in gan_step, and SyncBatchNorm for the
    # DCGAN's batch statistics (appendix 11, exercise 3)
    G_net = prepare_model(G, compile, data_parallel=False)
    D_net = prepare_model(D, compile, data_parallel=False)
    images = check_values(images.to(device), "images", 0, 1, hint=(
        "train_gan takes images in [0, 1], as load_mnist gives them, and rescales them to "
        "the generator's [-1, 1]: divide bytes by 255, or use (x + 1) / 2"))
    check_min_rows(len(images), "images", batch_size,
                   "one full batch of batch_size: train_gan drops an incomplete last batch")
    n_classes = getattr(G, "n_classes", 0)
    if n_classes:
        if labels is None:
            raise ValueError("a conditional GAN needs labels (N,) for the images")
        check_tensor(labels, "labels", shape=(len(images),), dtype=torch.int64)
        labels = labels.to(device)
        check_ids(labels, "labels", n_classes, "n_classes")  # checked once, here
    opt_g = make_optimizer("adam", G.parameters(), lr=lr, betas=betas)
    opt_d = make_optimizer("adam", D.parameters(), lr=lr, betas=betas)
    channels_last = uses_channels_last(D)
    history = {"D": [], "G": [], "D(x)": [], "D(G(z))": [], "snapshots": []}

    def snapshot(epoch):
        if fixed_z is None:
            return
        G.eval()
        with torch.no_grad():
            extra = () if not n_classes else (fixed_labels,)
            x = G(fixed_z.to(device), *extra).float()
        G.train()
        history["snapshots"].append((epoch, ((x + 1) / 2).clamp(0, 1).cpu()))

    G.train()
    D.train()
    per_epoch = len(images) // batch_size
    res = Resumer("train_gan", resume, {"G": G, "D": D}, {"G": opt_g, "D": opt_d},
                  total=epochs, unit="epoch", settings=dict(
                      images=images, labels=labels if n_classes else None, epochs=epochs,
                      batch_size=batch_size, lr=lr, betas=betas, loss=loss, fixed_z=fixed_z,
                      fixed_labels=fixed_labels, snapshot_every=snapshot_every,
                      log_every=log_every))
    saved = res.restore()
    total, count, step, done = torch.zeros(4, device=device), 0, 0, 0
    if saved is None:
        snapshot(0)
    else:
        history, done = saved["history"], saved["done"]
        total, count = saved["extra"]["total"].to(device), saved["extra"]["count"]
        step = done * per_epoch
    tensors = (images,) if not n_classes else (images, labels)
    bar = tqdm(total=epochs * -(-len(images) // batch_size), initial=done * per_epoch,
               disable=not progress, leave=False, desc=type(G).__name__)
    for epoch in range(done + 1, epochs + 1):
        for batch in batches(*tensors, batch_size=batch_size, drop_last=True):
            real = to_memory_format(batch[0] * 2 - 1, channels_last)  # [0, 1] -> [-1, 1]
            z = torch.randn(len(real), G.latent_dim, device=device)
            total += gan_step(G_net, D_net, opt_g, opt_d, real, z, *batch[1:], loss=loss)
            count += 1
            step += 1
            if count == log_every:
                _history_append(history, total, count, step, epochs * per_epoch)
                total, count = torch.zeros(4, device=device), 0
            bar.update()
        if epoch % snapshot_every == 0 or epoch == epochs:
            snapshot(epoch)
        if callback is not None:
            callback(epoch)
        res.save(epoch, history, {"total": total, "count": count})
    bar.close()
    if count:
        _history_append(history, total, count, step, epochs * per_epoch)
    res.finish()
    G.eval()
    D.eval()
    return history


@torch.no_grad()
def generate(G: nn.Module, n: int, labels: torch.Tensor | None = None, z=None) -> torch.Tensor:
    """``n`` images from G in [0, 1]: (n, 1, 28, 28) on G's device (eval mode).

    Pass ``labels`` (n,) for a conditional G, and ``z`` (n, latent_dim) to fix the codes.
    """
    check_positive(n, "n", integer=True)
    device = next(G.parameters()).device
    if z is None:
        z = torch.randn(n, G.latent_dim, device=device)
    was_training = G.training
    G.eval()
    extra = () if labels is None else (labels.to(device),)
    x = G(z.to(device), *extra).float()
    G.train(was_training)
    return ((x + 1) / 2).clamp(0, 1)


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """Linear interpolation between latent codes (latent_dim,): returns (steps, latent_dim)."""
    check_positive(steps, "steps", integer=True)
    check_tensor(z0, "z0", shape=(None,), floating=True)
    check_tensor(z1, "z1", shape=(len(z0),), floating=True)
    t = torch.linspace(0, 1, steps, device=z0.device)[:, None]
    return (1 - t) * z0 + t * z1


def load_or_train_gan(
    name: str,
    path,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    n_classes: int = 0,
    seed: int = 0,
    model_kwargs: dict | None = None,
    n_fixed: int = 0,
    **train_kwargs,
) -> tuple[nn.Module, dict]:
    """Build an image GAN by name; load it from ``path``, or train it and save it there.

    The pair (G, D) is saved as one checkpoint (an ``nn.ModuleDict``): delete the
    file to train again. ``seed`` seeds everything before the models are built,
    so the same call gives the same models.

    Args:
        name: ``"mlp"`` or ``"dcgan"``; ``n_classes``: 0, or 10 for a conditional GAN.
        path: the checkpoint file.
        images: (N, 1, 28, 28) in [0, 1], on the device to train on;
            labels: (N,) int64 (conditional GANs only).
        model_kwargs: passed to :func:`make_image_gan` (e.g. ``latent_dim``).
        n_fixed: draw this many fixed latent codes (labels ``0, 1, ..., 9, 0, ...`` for a
            conditional GAN) whose samples are kept as snapshots while training.
        **train_kwargs: passed to :func:`train_gan` (``epochs``, ``batch_size``, ``lr``...).

    Returns:
        ``(G, history)``: the generator in eval mode on the images' device, and
        :func:`train_gan`'s history (the saved one when loaded).
    """
    from course_utils.checkpoint import load_or_train
    from course_utils.devices import seed_everything

    seed_everything(seed)
    G, D = make_image_gan(name, n_classes=n_classes, **(model_kwargs or {}))
    pair = nn.ModuleDict({"G": G, "D": D}).to(images.device)
    if n_fixed:
        train_kwargs["fixed_z"] = torch.randn(n_fixed, G.latent_dim, device=images.device)
        if n_classes:
            train_kwargs["fixed_labels"] = torch.arange(n_fixed, device=images.device) % n_classes
    history = load_or_train(pair, path, lambda: train_gan(
        G, D, images, labels if n_classes else None, **train_kwargs))
    G.eval()
    D.eval()
    return G, history
