"""The small U-Net that lecture 12's diffusion and flow-matching models share, and an MLP denoiser.

Lecture 12 (``notebooks/12_diffusion_and_flow_matching.ipynb``, section 4) explains it. Both
networks have the signature every sampler in :mod:`course_utils.diffusion` expects::

    out = model(x, t, labels)    # x (N, ...), t (N,) floats in [0, 1], labels (N,) or None
                                 # -> out: the same shape as x (a noise or velocity prediction)

**Time** is a float in [0, 1]: the diffusion models pass ``t / T``, the flow models their
own time. It enters through sinusoidal features (as in the Transformer's positions) and a
small MLP, giving an embedding ``emb`` (N, emb_dim) that every residual block adds to its
channels.

**Labels** (class-conditional models, ``n_classes > 0``): an embedding table with one extra
row, index ``n_classes``, the "no label" token. Passing ``labels=None`` to a conditional
model means "no label" for every row (the unconditional model used by classifier-free
guidance), and training drops labels by replacing them with that token.

The U-Net for 28 x 28 images, with ``channels = (c0, c1, c2)``::

    x (N, 1, 28, 28) -> stem conv -> (N, c0, 28, 28) -> ResBlock ----------------- skip0 --+
      -> stride-2 conv -> (N, c0, 14, 14) -> ResBlock -> (N, c1, 14, 14) --------- skip1 --|-+
      -> stride-2 conv -> (N, c1, 7, 7) -> ResBlock -> ResBlock -> (N, c2, 7, 7)          | |
      -> upsample x2 -> concat skip1 -> (N, c2 + c1, 14, 14) -> ResBlock -> (N, c1, ...) <-|-+
      -> upsample x2 -> concat skip0 -> (N, c1 + c0, 28, 28) -> ResBlock -> (N, c0, ...) <-+
      -> GroupNorm, SiLU, conv -> (N, 1, 28, 28)

The skip connections carry fine detail past the coarse 7 x 7 bottleneck, where the network
sees the whole digit at once. The output convolution starts at zero, so an untrained model
predicts 0 (the mean of the noise), a good starting point for both objectives.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.checks import check_positive, check_tensor

__all__ = ["MLPDenoiser", "ResBlock", "UNet", "count_parameters", "time_embedding"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def time_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of times t (N,) in [0, 1]: (N, dim), cosines then sines.

    Feature k is cos/sin(1000 t / max_period^(k / (dim/2))): the scale 1000 makes the
    fastest frequency resolve one step of a 1000-step diffusion (t = 1/1000).
    """
    check_tensor(t, "t", shape=(None,))
    if dim % 2:
        raise ValueError(f"the time-embedding dimension must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=1)


class _Embedding(nn.Module):
    """Time (and label) -> one vector (N, emb_dim) that conditions every block."""

    def __init__(self, emb_dim: int, n_classes: int):
        super().__init__()
        self.emb_dim, self.n_classes = emb_dim, n_classes
        self.time_mlp = nn.Sequential(
            nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # row n_classes is the "no label" token of classifier-free guidance
        self.label = nn.Embedding(n_classes + 1, emb_dim) if n_classes else None

    def forward(self, t: torch.Tensor, labels: torch.Tensor | None, n: int) -> torch.Tensor:
        check_tensor(t, "t", shape=(n,))
        if not t.is_floating_point():
            raise TypeError(
                f"t must hold floating-point times in [0, 1], got dtype {t.dtype}; a diffusion "
                "model passes t / T for an integer step t"
            )
        emb = self.time_mlp(time_embedding(t, self.emb_dim))
        if self.label is None:
            if labels is not None:
                raise ValueError("this model is unconditional (n_classes=0): pass labels=None")
            return emb
        if labels is None:  # the unconditional model: "no label" for every row
            labels = torch.full((n,), self.n_classes, dtype=torch.int64, device=t.device)
        check_tensor(labels, "labels", shape=(n,), dtype=torch.int64)
        on_cpu = labels.device.type == "cpu"  # (a range check on a GPU would synchronise)
        if on_cpu and n and (labels.min() < 0 or labels.max() > self.n_classes):
            raise ValueError(
                f"labels must lie in 0..{self.n_classes} ({self.n_classes} = no label), got "
                f"values in {int(labels.min())}..{int(labels.max())}"
            )
        return emb + self.label(labels)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv 3x3, + the embedding, -> GroupNorm -> SiLU -> conv 3x3, + skip.

    x (N, c_in, H, W), emb (N, emb_dim) -> (N, c_out, H, W). The embedding is projected
    to c_out numbers and added to every pixel of the corresponding channels: this is how
    time and label reach each level of the network.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int = 8):
        super().__init__()
        self.norm1 = nn.GroupNorm(math.gcd(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(math.gcd(groups, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class UNet(nn.Module):
    """A three-level U-Net: x (N, C, H, W), t (N,), labels (N,) or None -> (N, C, H, W).

    H and W must be divisible by 4 (28 x 28 -> 14 x 14 -> 7 x 7). See the module docstring
    for the diagram.

    Args:
        channels: (c0, c1, c2), the widths at full, half and quarter resolution.
        in_channels: C, image channels (1 for MNIST).
        n_classes: 0 for an unconditional model; K for labels 0..K-1 (and K = no label).
        emb_dim: width of the time/label embedding.
        groups: GroupNorm groups (reduced to a divisor of each width).
    """

    def __init__(self, channels: tuple[int, int, int] = (32, 64, 64), in_channels: int = 1,
                 n_classes: int = 0, emb_dim: int = 128, groups: int = 8):
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"channels must be three widths (c0, c1, c2), got {channels!r}")
        for v, name in [(c, f"channels[{i}]") for i, c in enumerate(channels)] + [
                (in_channels, "in_channels"), (emb_dim, "emb_dim"), (groups, "groups")]:
            check_positive(v, name, integer=True)
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 0:
            raise ValueError(f"n_classes must be an int >= 0, got {n_classes!r}")
        c0, c1, c2 = channels
        self.channels, self.in_channels, self.n_classes = tuple(channels), in_channels, n_classes
        self.embed = _Embedding(emb_dim, n_classes)
        self.stem = nn.Conv2d(in_channels, c0, 3, padding=1)
        self.down0 = ResBlock(c0, c0, emb_dim, groups)  # full resolution
        self.pool0 = nn.Conv2d(c0, c0, 3, stride=2, padding=1)  # H -> H/2
        self.down1 = ResBlock(c0, c1, emb_dim, groups)  # half resolution
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)  # H/2 -> H/4
        self.mid1 = ResBlock(c1, c2, emb_dim, groups)  # quarter resolution
        self.mid2 = ResBlock(c2, c2, emb_dim, groups)
        self.up1 = ResBlock(c2 + c1, c1, emb_dim, groups)  # half, after concat with skip1
        self.up0 = ResBlock(c1 + c0, c0, emb_dim, groups)  # full, after concat with skip0
        self.out_norm = nn.GroupNorm(math.gcd(groups, c0), c0)
        self.out = nn.Conv2d(c0, in_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # an untrained model predicts 0
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        check_tensor(x, "x", shape=(None, self.in_channels, None, None), floating=True)
        if x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(
                f"the U-Net halves the image twice: height and width must be divisible by 4, "
                f"got {tuple(x.shape[2:])}"
            )
        emb = self.embed(t, labels, len(x))  # (N, emb_dim)
        h = self.stem(x)  # (N, c0, H, W)
        skip0 = self.down0(h, emb)  # (N, c0, H, W)
        skip1 = self.down1(self.pool0(skip0), emb)  # (N, c1, H/2, W/2)
        h = self.mid2(self.mid1(self.pool1(skip1), emb), emb)  # (N, c2, H/4, W/4)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (N, c2, H/2, W/2)
        h = self.up1(torch.cat([h, skip1], dim=1), emb)  # (N, c1, H/2, W/2)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (N, c1, H, W)
        h = self.up0(torch.cat([h, skip0], dim=1), emb)  # (N, c0, H, W)
        return self.out(F.silu(self.out_norm(h)))  # (N, C, H, W)


class MLPDenoiser(nn.Module):
    """An MLP for vectors: x (N, dim), t (N,), labels (N,) or None -> (N, dim).

    The denoiser of lecture 12's latent diffusion (dim = 20, the VAE's latent size):
    ``depth`` residual blocks ``h + Linear(SiLU(Linear(LayerNorm(h)) + emb))`` of width
    ``hidden``, conditioned on time (and label) like :class:`UNet`.
    """

    def __init__(self, dim: int = 20, hidden: int = 256, depth: int = 3, n_classes: int = 0,
                 emb_dim: int = 128):
        super().__init__()
        for v, name in ((dim, "dim"), (hidden, "hidden"), (depth, "depth"),
                        (emb_dim, "emb_dim")):
            check_positive(v, name, integer=True)
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 0:
            raise ValueError(f"n_classes must be an int >= 0, got {n_classes!r}")
        self.dim, self.n_classes = dim, n_classes
        self.embed = _Embedding(emb_dim, n_classes)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"norm": nn.LayerNorm(hidden), "fc1": nn.Linear(hidden, hidden),
                           "emb": nn.Linear(emb_dim, hidden), "fc2": nn.Linear(hidden, hidden)})
            for _ in range(depth))
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        check_tensor(x, "x", shape=(None, self.dim), floating=True)
        emb = self.embed(t, labels, len(x))  # (N, emb_dim)
        h = self.inp(x)  # (N, hidden)
        for b in self.blocks:
            h = h + b["fc2"](F.silu(b["fc1"](b["norm"](h)) + b["emb"](emb)))
        return self.out(h)  # (N, dim)
