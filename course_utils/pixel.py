"""An autoregressive pixel model: a small PixelCNN for binarised MNIST, with its exact NLL.

Lecture 13 (``notebooks/13_pretraining_to_applications.ipynb``, "A sequence model as an
image generator") reads an image as a sequence of 784 pixels in raster order (row by row,
left to right) and factorises ``p(x) = prod_i p(x_i | x_<i)``, each factor a Bernoulli
whose logit a masked convolutional network computes for all pixels at once (van den Oord
et al. 2016, "Pixel Recurrent Neural Networks"). Unlike the VAE's ELBO, ``-log p(x)`` is
then exact: the sum of 784 binary cross-entropies. Contents:

- :class:`MaskedConv2d`       a convolution that sees only earlier pixels (mask 'A' or 'B')
- :class:`PixelCNN`           mask-A 7x7 layer, masked residual blocks, one logit per pixel
- :func:`binarise`            grey images in [0, 1] -> {0, 1}: threshold, or Bernoulli draws
- :func:`nll`                 exact -log p(x) per image in nats
- :func:`sample`              784 forward passes, one pixel at a time, in raster order
- :func:`train_pixel_model`   Adam over on-device batches, the course's divergence stop

Shapes: images are (N, 1, 28, 28) (or (N, 784), reshaped for you) floats in {0, 1}.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from course_utils import distributed
from course_utils.checks import check_choice, check_positive, check_tensor, check_values
from course_utils.data import batches
from course_utils.devices import autocast
from course_utils.engine import (
    check_loss,
    make_optimizer,
    prepare_model,
    to_memory_format,
    uses_channels_last,
)
from course_utils.resume import Resumer

__all__ = [
    "MaskedConv2d",
    "PixelCNN",
    "binarise",
    "nll",
    "sample",
    "train_pixel_model",
]

SIZE = 28
"""Image height and width (MNIST)."""

BINARISE_MODES = ("fixed", "stochastic_once", "dynamic")


# ----------------------------------------------------------------------------- the model
class MaskedConv2d(nn.Conv2d):
    """A k x k convolution whose output at a pixel sees only pixels before it in raster order.

    The kernel is multiplied by a fixed 0/1 mask: rows below the centre and the pixels right
    of the centre in its row are zero. Mask ``'A'`` also zeroes the centre (the first layer:
    pixel i's prediction must not see pixel i itself); mask ``'B'`` keeps it (later layers:
    the feature at i already depends only on pixels < i). For a 3 x 3 kernel::

        'A': 1 1 1    'B': 1 1 1
             1 0 0         1 1 0
             0 0 0         0 0 0

    Args:
        in_channels, out_channels: as for ``nn.Conv2d``.
        kernel_size: an odd int k (zero padding k // 2 keeps the image size).
        mask_type: ``'A'`` or ``'B'``.

    ``forward(x)``: (N, in_channels, H, W) -> (N, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 mask_type: str = "B", bias: bool = True):
        check_choice(mask_type, "mask_type", ("A", "B"))
        check_positive(kernel_size, "kernel_size", integer=True)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (the mask is centred), got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                         bias=bias)
        self.mask_type = mask_type
        c = kernel_size // 2
        mask = torch.ones(kernel_size, kernel_size)
        mask[c, c + (mask_type == "B"):] = 0  # the centre row: the centre ('A') and the right
        mask[c + 1:] = 0  # the rows below
        self.register_buffer("mask", mask[None, None].expand_as(self.weight).clone(),
                             persistent=False)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mask_type={self.mask_type!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class _ResidualBlock(nn.Module):
    """x + 1x1(ReLU(masked k x k 'B'(ReLU(x)))): a causal residual block."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, kernel_size, "B")
        self.mix = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.relu(self.conv(F.relu(x))))


class PixelCNN(nn.Module):
    """A small PixelCNN over one binary channel (van den Oord et al. 2016).

    A 7 x 7 mask-'A' convolution (1 -> C channels), ``n_layers`` residual blocks
    (ReLU, k x k mask-'B' convolution, ReLU, 1 x 1 convolution, plus the input), then
    ReLU, 1 x 1 (C -> C), ReLU, 1 x 1 (C -> 1): one Bernoulli logit per pixel. Pixels enter
    as 2x - 1 (in {-1, 1}), so the zero padding of the convolutions differs from a black
    pixel. The defaults (C = 48, 5 blocks, k = 3) have 120,481 parameters, counting the
    kernel entries the masks zero (24 of 49 in the first layer, 5 of 9 in the blocks are
    used); a forward pass costs about 94 million multiply-adds per image, and on a 2-core
    CPU training runs at roughly 200 images per second (an epoch of 60,000 in about 5 min).

    Every layer is causal, so the logit of pixel i depends on pixels 0..i-1 only: a single
    forward pass scores all 784 factors of p(x) (training and :func:`nll`), but sampling
    needs 784 passes. A known flaw, left in on purpose: a stack of such masked convolutions
    has a *blind spot*, a wedge of earlier pixels to the upper right that never influences
    pixel i however deep the stack (here: in the row just above, every pixel more than 3
    columns to the right; one column more per row higher up). Van den Oord et al. (2016b,
    "Conditional Image Generation with PixelCNN Decoders") remove it with separate vertical
    and horizontal stacks.

    Args:
        channels: C, the width of every hidden layer.
        n_layers: the number of residual blocks.
        kernel_size: k, odd, of the blocks' masked convolutions (the first layer is 7 x 7).

    ``forward(x)``: (N, 1, H, W) floats in {0, 1} -> (N, 1, H, W) logits (any H, W; the
    course uses 28 x 28).
    """

    def __init__(self, channels: int = 48, n_layers: int = 5, kernel_size: int = 3):
        super().__init__()
        check_positive(channels, "channels", integer=True)
        check_positive(n_layers, "n_layers", integer=True)
        self.first = MaskedConv2d(1, channels, 7, "A")
        self.blocks = nn.Sequential(*(_ResidualBlock(channels, kernel_size)
                                      for _ in range(n_layers)))
        self.hidden = nn.Conv2d(channels, channels, 1)
        self.head = nn.Conv2d(channels, 1, 1)
        # how many rows above a pixel can influence its logit (sample() crops to these)
        self.reach = 7 // 2 + n_layers * (kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", shape=(None, 1, None, None), floating=True)
        h = self.blocks(self.first(2 * x - 1))
        return self.head(F.relu(self.hidden(F.relu(h))))


# ----------------------------------------------------------------------------- data
def binarise(x: torch.Tensor, mode: str = "fixed", generator: torch.Generator | None = None,
             seed: int = 0) -> torch.Tensor:
    """Grey images in [0, 1] -> binary images {0., 1.} of the same shape and dtype.

    Modes:

    - ``"fixed"``: deterministic thresholding, pixel > 0.5 -> 1. Simple, but not what papers
      mean by "fixed binarisation".
    - ``"stochastic_once"``: one Bernoulli draw per pixel, ``P(1) = x``, from a generator
      seeded with ``seed``, so every call returns the same images: the binarised MNIST of
      Larochelle & Murray (2011, "The Neural Autoregressive Distribution Estimator"), drawn
      once and then fixed.
    - ``"dynamic"``: a fresh Bernoulli draw on every call (with ``generator``, or the global
      one): training on a new binarisation every epoch (``train_pixel_model(dynamic=True)``
      does it per batch) is a regulariser, and likelihoods are then not comparable with
      those on a fixed binarisation.

    Args:
        x: floats in [0, 1], any shape (e.g. (N, 1, 28, 28)).
        generator: for ``"dynamic"``: a ``torch.Generator`` on x's device.
        seed: for ``"stochastic_once"``.
    """
    check_choice(mode, "binarisation mode", BINARISE_MODES)
    check_tensor(x, "x", floating=True)
    check_values(x, "x", 0, 1, hint="binarise takes grey levels in [0, 1] (x / 255 for bytes)")
    if mode == "fixed":
        return (x > 0.5).to(x.dtype)
    if mode == "stochastic_once":
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        generator = torch.Generator(device=x.device).manual_seed(seed)
    return torch.bernoulli(x, generator=generator)


def _images(x: torch.Tensor, name: str = "x", binary: bool = True) -> torch.Tensor:
    """Check images once: (N, 1, 28, 28) or (N, 784), finite, binary (else in [0, 1])."""
    check_tensor(x, name)
    if not x.is_floating_point():  # bool or integer 0/1 images
        x = x.float()
    if x.dim() == 2 and x.shape[1] == SIZE * SIZE:
        x = x.reshape(len(x), 1, SIZE, SIZE)
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, SIZE, SIZE):
        raise ValueError(f"{name} must have shape (N, 1, {SIZE}, {SIZE}) or (N, {SIZE * SIZE}), "
                         f"got {tuple(x.shape)}")
    check_values(x, name, 0 if not binary else None, 1 if not binary else None)
    if binary:
        bad = int(((x != 0) & (x != 1)).sum())
        if bad:
            raise ValueError(
                f"{name} must be binary (every pixel 0 or 1) for a Bernoulli pixel model, got "
                f"{bad} value(s) of {x.numel()} that are neither; binarise the images first: "
                "binarise(x) thresholds at 0.5, binarise(x, 'stochastic_once') draws them once")
    return x


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# ----------------------------------------------------------------------------- likelihood
@torch.no_grad()
def nll(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Exact negative log-likelihood ``-log p(x)`` of each image, in nats.

    The sum over the 784 pixels of the Bernoulli negative log-likelihood,
    ``BCE(logit_i, x_i) = softplus(logit_i) - x_i logit_i``, computed in float32 (no
    autocast) with the model in eval mode (its mode is restored afterwards). Divide by
    784 ln 2 for bits per pixel.

    Args:
        x: (N, 1, 28, 28) or (N, 784) binary images.
        batch_size: images per forward pass.

    Returns:
        (N,) float32 on the model's device.
    """
    check_positive(batch_size, "batch_size", integer=True)
    x = _images(x).to(_device(model))
    was_training = model.training
    model.eval()
    out = []
    for (xb,) in batches(x, batch_size=batch_size, shuffle=False):
        logits = model(xb).float()
        out.append(F.binary_cross_entropy_with_logits(logits, xb, reduction="none")
                   .flatten(1).sum(1))
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def sample(model: nn.Module, n: int, generator: torch.Generator | None = None,
           seed: int | None = None, batch_size: int = 100) -> torch.Tensor:
    """Draw ``n`` images pixel by pixel in raster order: 784 forward passes per batch.

    Pixel (r, c) is drawn from Bernoulli(sigmoid(logit)) given the pixels already drawn.
    Each pass feeds only the rows that can influence row r: rows r - ``model.reach`` .. r
    (a model without ``reach``: rows 0..r). The network is causal, so the logits of row r
    are the same as with the whole image (up to rounding); for the default model (reach 8)
    a pass reads 7.7 of the 28 rows on average. On CUDA the passes run under bf16
    autocast.

    Args:
        n: number of images.
        generator: a ``torch.Generator`` on the model's device; or ``seed`` (an int) to make
            one (give at most one of the two; neither: the global generator).
        batch_size: images sampled together.

    Returns:
        (n, 1, 28, 28) float32 in {0, 1}, on the model's device.
    """
    check_positive(n, "n", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    device = _device(model)
    if seed is not None:
        if generator is not None:
            raise ValueError("give a generator or a seed, not both")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        generator = torch.Generator(device=device).manual_seed(seed)
    reach = getattr(model, "reach", None)
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        x = torch.zeros(m, 1, SIZE, SIZE, device=device)
        for r in range(SIZE):
            lo = 0 if reach is None else max(0, r - reach)
            for c in range(SIZE):
                with autocast(device):
                    logit = model(x[:, :, lo:r + 1])[:, 0, r - lo, c].float()  # (m,)
                u = torch.rand(m, device=device, generator=generator)
                x[:, 0, r, c] = (u < torch.sigmoid(logit)).float()
        out.append(x)
    model.train(was_training)
    return torch.cat(out)


# ----------------------------------------------------------------------------- training
def train_pixel_model(model: nn.Module, x: torch.Tensor, epochs: int = 1, batch_size: int = 64,
                      lr: float = 1e-3, seed: int | None = 0, dynamic: bool = False,
                      grad_clip: float | None = 1.0, progress: bool = True,
                      compile: bool | None = None, resume=None) -> dict:
    """Train a pixel model by maximum likelihood with Adam, in the style of ``vae.train_vae``.

    The loss is the exact NLL in nats per image (BCE with logits summed over the 784 pixels,
    averaged over the batch). The data are checked once (shape, finite, binary), moved to the
    model's device once and sliced there (:func:`course_utils.batches`); the loss is summed on
    the device and read once per epoch, when a NaN or infinite loss stops the run
    (:class:`course_utils.engine.DivergenceError`). On CUDA: bf16 autocast, fused Adam,
    channels_last (:mod:`course_utils.engine`); under ``torchrun`` each process takes its
    shard of every batch (:mod:`course_utils.distributed`).

    Args:
        x: (N, 1, 28, 28) or (N, 784) images in {0, 1} (with ``dynamic=True``: grey levels in
            [0, 1], binarised afresh in every batch with the training generator).
        epochs, batch_size: positive ints; lr: a positive number.
        seed: seeds the shuffling (and the dynamic draws); ``None``: the global generator.
        grad_clip: clip the gradient norm to this (``None`` or 0: no clipping).
        progress: a tqdm bar over epochs (``leave=False``).
        compile: ``torch.compile`` the model (``None``: ``$COURSE_COMPILE``, off by default).
        resume: a folder for resume files (``None``: the one :func:`course_utils.load_or_train`
            sets, else none); an interrupted run continues from its last epoch
            (:mod:`course_utils.resume`).

    Returns:
        history: ``{"loss": per-epoch mean NLL per image (nats), "epoch_time": seconds}``.
    """
    check_positive(epochs, "epochs", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    check_positive(lr, "lr")
    if grad_clip is not None and grad_clip != 0:
        check_positive(grad_clip, "grad_clip")
    device = _device(model)
    x = _images(x, binary=not dynamic).to(device)
    gen = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    opt = make_optimizer("adam", [p for p in model.parameters() if p.requires_grad], lr=lr)
    channels_last = uses_channels_last(model)
    net = prepare_model(model, compile)  # DDP under torchrun, compiled if asked; else model
    hist = {"loss": [], "epoch_time": []}
    res = Resumer("train_pixel_model", resume, {"model": model}, {"opt": opt},
                  generators=[gen], settings=dict(x=x, epochs=epochs, batch_size=batch_size,
                                                  lr=lr, seed=seed, dynamic=dynamic,
                                                  grad_clip=grad_clip),
                  total=epochs, unit="epoch")
    saved = res.restore()
    start = 0 if saved is None else saved["done"]
    hist = hist if saved is None else saved["history"]
    model.train()
    show = progress and distributed.is_main()
    for epoch in tqdm(range(start, epochs), initial=start, total=epochs, desc="epochs",
                      leave=False, disable=not show):
        t0 = time.perf_counter()
        total = torch.zeros((), device=device)
        for (xb,) in batches(x, batch_size=batch_size, generator=gen):
            if dynamic:
                xb = torch.bernoulli(xb, generator=gen)
            n_global = len(xb)
            (xb,) = distributed.shard(xb)  # this process's rows (all of them without torchrun)
            xb = to_memory_format(xb, channels_last)
            with autocast(device):
                logits = net(xb)
            loss = F.binary_cross_entropy_with_logits(logits.float(), xb,
                                                      reduction="sum") / len(xb)
            opt.zero_grad(set_to_none=True)
            distributed.scale_loss(loss, len(xb), n_global).backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            total += loss.detach() * len(xb)
        mean = float(distributed.all_reduce_sum(total)) / len(x)  # one sync per epoch
        check_loss([mean], f"in epoch {epoch + 1} of {epochs}",
                   hist["loss"][-1] if hist["loss"] else None)
        hist["loss"].append(mean)
        hist["epoch_time"].append(time.perf_counter() - t0)
        res.save(epoch + 1, hist)
    model.eval()
    res.finish()
    return hist
